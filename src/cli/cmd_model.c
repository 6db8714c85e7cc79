/* cmd_model.c - init-model, import, export, ls, info. */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "embed.h"
#include "merge_store.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* store_open's "no store at 'DIR'" is the one wording for a missing store */
static int open_store(CliArgs *a, unsigned flags, Store **st) { return store_open(a->store_dir, flags, st); }

/* the id `name` points at now ("" if none), read before storing under it ... */
static void name_before(Store *st, const char *name, char old[AM_ID_HEX + 1]) {
    void *v = NULL;
    size_t n = 0;
    old[0] = 0;
    if (store_get(st, "names", name, strlen(name), &v, &n) == AM_OK && n >= AM_ID_HEX) {
        memcpy(old, v, AM_ID_HEX);
        old[AM_ID_HEX] = 0;
    }
    free(v);
    am_clearerror();
}

/* ... so a re-pointed tag is reported (the same model stored again is not a move) */
static void report_name(const char *name, const char *old, const char *id) {
    if (old[0] && strcmp(old, id) != 0) printf("note: name '%s' moves from %.12s to %.12s\n", name, old, id);
}

int cmd_init_model(CliArgs *a) {
    const char *config = cli_get(a, "config"), *name = cli_get(a, "name"), *vpath = cli_get(a, "vocab");
    int seed, maxlen, rc;
    if ((rc = cli_get_int(a, "seed", 42, &seed)) || (rc = cli_get_int(a, "max-seq-length", 128, &maxlen))) return rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (!name || !*name) return am_error(AM_EINVAL, "init-model: --name N is required");
    EncoderConfig cfg;
    if ((rc = encoder_config_preset(&cfg, config ? config : "tiny"))) return rc;
    if (!vpath) vpath = vocab_default_path();
    Vocab *v = NULL;
    if ((rc = vocab_load(vpath, &v)))
        return am_error_wrap(rc, "init-model: cannot load the vocabulary%s",
                             vpath == vocab_default_path() ? " (HINT: ./amalgam fetches it; or pass --vocab FILE)" : "");
    cfg.vocab_size = vocab_size(v);
    cfg.pad_token_id = vocab_specials(v).pad;
    Model *m = NULL;
    if ((rc = model_new(&cfg, &m))) { vocab_delete(v); return rc; }
    model_init_bert(m, (uint64_t)seed);
    HfInfo info;
    hf_info_default(&info);
    info.max_seq_length = maxlen;
    snprintf(info.source, sizeof info.source, "init-model --config %s --seed %d", config ? config : "tiny", seed);
    Store *st = NULL;
    char id[AM_ID_HEX + 1], old[AM_ID_HEX + 1];
    size_t vlen;
    const char *vtext = vocab_text(v, &vlen);
    if (!(rc = open_store(a, 0, &st))) {
        name_before(st, name, old);
        rc = embed_store_model(st, m, vtext, vlen, &info, name, "init", NULL, id);
        if (!rc) report_name(name, old, id);
    }
    if (!rc)
        printf("model %s  id %s  (%s: %d layers, hidden %d, %d heads, vocab %d, %.2fM parameters)\n", name, id,
               config ? config : "tiny", cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.vocab_size,
               m->tab.total / 1e6);
    store_close(st);
    model_delete(m);
    vocab_delete(v);
    return rc;
}

int cmd_import(CliArgs *a) {
    const char *name = cli_get(a, "name");
    int rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos != 1) return am_error(AM_EINVAL, "import: usage: amalgam import HF_DIR --name N");
    if (!name || !*name) return am_error(AM_EINVAL, "import: --name N is required");
    Model *m = NULL;
    Vocab *v = NULL;
    HfInfo info;
    if ((rc = hf_import(a->pos[0], &m, &v, &info))) return rc;
    Store *st = NULL;
    char id[AM_ID_HEX + 1], old[AM_ID_HEX + 1];
    size_t vlen;
    const char *vtext = vocab_text(v, &vlen);
    if (!(rc = open_store(a, 0, &st))) {
        name_before(st, name, old);
        rc = embed_store_model(st, m, vtext, vlen, &info, name, "pretrained", NULL, id);
        if (!rc) report_name(name, old, id);
    }
    if (!rc)
        printf("imported %s as %s  id %s  (%d layers, hidden %d, vocab %d, %s, %s pooling%s%s)\n", a->pos[0], name,
               id, m->cfg.num_layers, m->cfg.hidden_size, m->cfg.vocab_size, info.dtype,
               pool_name(info.pooling), info.normalize ? ", normalized" : "",
               info.n_ignored ? ", unused tensors ignored" : "");
    store_close(st);
    model_delete(m);
    vocab_delete(v);
    return rc;
}

int cmd_export(CliArgs *a) {
    int rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos != 2) return am_error(AM_EINVAL, "export: usage: amalgam export MODEL DIR");
    Store *st = NULL;
    if ((rc = open_store(a, AM_STORE_RDONLY, &st))) return rc;
    EmbedModel *em = NULL;
    if (!(rc = embed_model_load(st, a->pos[0], &em))) {
        size_t vlen;
        const char *vtext = vocab_text(em->vocab, &vlen);
        rc = hf_export_vocab_text(a->pos[1], em->model, vtext, vlen, &em->info);
        if (!rc)
            printf("exported %s (%.12s) to %s (sentence-transformers layout, %s pooling%s)\n", a->pos[0], em->id,
                   a->pos[1], pool_name(em->info.pooling),
                   em->info.normalize ? " + Normalize" : "");
    }
    embed_model_delete(em);
    store_close(st);
    return rc;
}

/* ---------------------------------------------------------------- ls / info */

typedef struct { char id[AM_ID_HEX + 1]; char name[128]; } NameRow;
typedef struct { NameRow *rows; int n, cap; } Names;

static int collect_name(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    Names *ns = ud;
    if (vlen < AM_ID_HEX || klen >= sizeof ns->rows[0].name) return 0;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? 2 * ns->cap : 32;
        ns->rows = xrealloc(ns->rows, (size_t)ns->cap * sizeof *ns->rows);
    }
    NameRow *r = &ns->rows[ns->n++];
    memcpy(r->id, val, AM_ID_HEX);
    r->id[AM_ID_HEX] = 0;
    memcpy(r->name, key, klen);
    r->name[klen] = 0;
    return 0;
}

/* comma-separated names of id, into buf */
static const char *names_of(const Names *ns, const char *id, char *buf, size_t cap) {
    buf[0] = 0;
    for (int i = 0; i < ns->n; i++) {
        if (strcmp(ns->rows[i].id, id) != 0) continue;
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%s", l ? "," : "", ns->rows[i].name);
    }
    return buf;
}

int cmd_ls(CliArgs *a) {
    int json = cli_flag(a, "json"), rc;
    if ((rc = cli_check_unused(a))) return rc;
    const char *what = a->npos ? a->pos[0] : "models";
    if (strcmp(what, "datasets") == 0) return cmd_ls_datasets(a, json); /* cmd_prepare.c */
    if (strcmp(what, "results") == 0) return cmd_ls_results(a, json); /* cmd_eval.c */
    if (strcmp(what, "runs") == 0) {
        Store *st = NULL;
        if ((rc = open_store(a, AM_STORE_RDONLY, &st))) return rc;
        rc = cmd_ls_runs(a, st, json); /* cmd_runs.c */
        store_close(st);
        return rc;
    }
    if (strcmp(what, "models") != 0)
        return am_error(AM_EINVAL, "ls: unknown kind '%s' (available: models, datasets, results, runs)", what);
    return cmd_ls_models(a, json); /* cmd_gc.c */
}

/* parents chain: "parent (weight) <- grandparent ..." printed as a tree */
static void print_lineage(Store *st, const Names *ns, const char *id, int depth) {
    char *meta = NULL;
    if (depth > 16 || store_model_meta(st, id, &meta) != AM_OK) {
        am_clearerror();
        return;
    }
    cJSON *j = cJSON_Parse(meta);
    free(meta);
    const cJSON *parents = cJSON_GetObjectItemCaseSensitive(j, "parents"), *p;
    cJSON_ArrayForEach(p, parents) {
        const char *pid = cli_jstr(p, "id", NULL);
        if (!pid) continue;
        char nb[256];
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(p, "weight");
        printf("  %*s└─ %.12s %s", 2 * depth, "", pid, names_of(ns, pid, nb, sizeof nb));
        if (cJSON_IsNumber(w)) printf(" (weight %g)", w->valuedouble);
        char *pm = NULL;
        if (store_model_meta(st, pid, &pm) != AM_OK) { /* amalgam rm --force took it */
            am_clearerror();
            printf(" (removed from the store)");
        }
        free(pm);
        printf("\n");
        print_lineage(st, ns, pid, depth + 1);
    }
    cJSON_Delete(j);
}

int cmd_info(CliArgs *a) {
    int json = cli_flag(a, "json"), tensors = cli_flag(a, "tensors"), rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos == 0 && !tensors) return cmd_du(a); /* the store itself: sizes per kind */
    if (a->npos != 1) return am_error(AM_EINVAL, "info: usage: amalgam info [MODEL|RUN] [--tensors] [--json]");
    Store *st = NULL;
    if ((rc = open_store(a, AM_STORE_RDONLY, &st))) return rc;
    char id[AM_ID_HEX + 1];
    char *meta = NULL;
    Model *m = NULL;
    Names ns = {0};
    /* a run id, a model (name or id prefix), a run id prefix */
    if ((rc = cli_info_run(st, a->pos[0], json, 0)) <= 0) goto done;
    if ((rc = store_resolve(st, a->pos[0], id))) {
        char *why = xstrdup(am_lasterror());
        int rrc = rc == AM_ENOTFOUND ? cli_info_run(st, a->pos[0], json, 1) : 1;
        if (rrc <= 0) rc = rrc;
        else am_error(rc, "%s; no run matches it either (see amalgam ls runs)", why);
        free(why);
        goto done;
    }
    if ((rc = store_model_meta(st, id, &meta))) goto done;
    if (json && !tensors) {
        puts(meta);
        goto done;
    }
    if ((rc = store_iter(st, "names", NULL, 0, collect_name, &ns))) goto done;
    cJSON *j = cJSON_Parse(meta);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    char nb[512];
    printf("model    %s\n", id);
    printf("names    %s\n", names_of(&ns, id, nb, sizeof nb)[0] ? nb : "-");
    printf("kind     %s\n", cli_jstr(j, "kind", "?"));
    printf("created  %s\n", cli_jstr(j, "created", "?"));
    if (cli_jstr(j, "source", NULL)) printf("source   %s\n", cli_jstr(j, "source", ""));
    printf("config   %d layers, hidden %d, %d heads, FFN %d, vocab %d, %d positions, %d token types, eps %g\n",
           (int)cli_jnum(cfg, "num_hidden_layers"), (int)cli_jnum(cfg, "hidden_size"), (int)cli_jnum(cfg, "num_attention_heads"),
           (int)cli_jnum(cfg, "intermediate_size"), (int)cli_jnum(cfg, "vocab_size"),
           (int)cli_jnum(cfg, "max_position_embeddings"), (int)cli_jnum(cfg, "type_vocab_size"), cli_jnum(cfg, "layer_norm_eps"));
    printf("size     %.3fM parameters in %d tensors (%.1f MB float32)\n", cli_jnum(j, "n_params") / 1e6,
           (int)cli_jnum(j, "n_tensors"), cli_jnum(j, "n_params") * 4 / 1e6);
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(j, "normalize");
    printf("pooling  %s%s, max_seq_length %d, %s\n", cli_jstr(j, "pooling", "mean"), cJSON_IsTrue(nz) ? " + normalize" : "",
           (int)cli_jnum(j, "max_seq_length"),
           cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "do_lower_case")) ? "cased" : "uncased");
    cli_print_model_run(st, meta); /* cmd_runs.c */
    cli_print_merge(st, meta);     /* cmd_merge.c */
    printf("lineage  %.12s\n", id);
    print_lineage(st, &ns, id, 0);
    cJSON_Delete(j);
    if (tensors) {
        if ((rc = merge_store_load(st, id, &m, NULL, NULL))) goto done; /* a merge recipe is computed */
        printf("\n%-52s %-14s %12s %12s\n", "TENSOR", "SHAPE", "L2 NORM", "MAX |x|");
        for (int i = 0; i < m->tab.n; i++) {
            const ParamInfo *p = &m->tab.t[i];
            const float *w = m->params + p->offset;
            double ss = 0, mx = 0;
            for (size_t k = 0; k < p->numel; k++) {
                ss += (double)w[k] * (double)w[k];
                if (fabs((double)w[k]) > mx) mx = fabs((double)w[k]);
            }
            char shape[32];
            if (p->ndim == 1) snprintf(shape, sizeof shape, "(%lld)", (long long)p->shape[0]);
            else snprintf(shape, sizeof shape, "(%lld, %lld)", (long long)p->shape[0], (long long)p->shape[1]);
            printf("%-52s %-14s %12.5g %12.5g\n", p->name, shape, sqrt(ss), mx);
        }
    }
done:
    model_delete(m);
    free(meta);
    free(ns.rows);
    store_close(st);
    return rc;
}
