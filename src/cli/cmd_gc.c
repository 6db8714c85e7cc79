/* cmd_gc.c - amalgam rm, gc, du: what the store holds, what it needs, and giving space back.
 *
 *   rm MODEL|RUN... [--force] [--dry-run]   a model: meta, tensors, names, eval results,
 *        embedding cache and its unnamed task vector; refused while another model names it as
 *        parent or base, or an unfinished run starts from it (--force removes it anyway). A run:
 *        its record, metrics, trainer state and the checkpoints/task vectors it made that have no
 *        name; refused while it is training (its pid alive).
 *   gc [--dry-run] [--compact]   trainer state of finished runs (unless the run kept it), what no
 *        model references (store_gc), embedding caches of removed models; --compact rewrites
 *        data.mdb without its free pages (LMDB reuses freed pages but never shrinks the file).
 *   du [--json]   bytes per kind (also `amalgam info` without an argument).
 *
 * Runs are read and removed through the run API (src/store/store_runs.h).
 */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "store_gc.h"
#include "store_runs.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- shared with ls (cli.h) */

const char *cli_bytes(double b, char buf[24]) {
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) { b /= 1000; i++; }
    if (i == 0) snprintf(buf, 24, "%.0f B", b);
    else snprintf(buf, 24, b < 10 ? "%.2f %s" : b < 100 ? "%.1f %s" : "%.0f %s", b, u[i]);
    return buf;
}

const char *cli_jstr(const cJSON *j, const char *k, const char *def) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(x) ? x->valuestring : def;
}

double cli_jnum(const cJSON *j, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

const char *cli_model_kind(const cJSON *meta) {
    const char *kind = cli_jstr(meta, "kind", "?"), *src = cli_jstr(meta, "source", "");
    /* stores written before kind "init" existed called a random init "pretrained" */
    if (strcmp(kind, "pretrained") == 0 && (strncmp(src, "init-model ", 11) == 0 || strncmp(src, "init_model{", 11) == 0))
        return "init";
    return kind;
}

/* ---------------------------------------------------------------- the model table */

typedef struct {
    char id[AM_ID_HEX + 1];
    cJSON *meta;
    char names[512];  /* comma-separated */
    size_t bytes;
    int remove;       /* rm: in the removal set */
} MRow;

typedef struct { MRow *r; int n, cap; } MTab;

static int mtab_add(void *ud, const char *id, const char *meta_json) {
    MTab *t = ud;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->r = xrealloc(t->r, (size_t)t->cap * sizeof *t->r);
    }
    MRow *r = &t->r[t->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->meta = cJSON_Parse(meta_json);
    if (!r->meta) r->meta = cJSON_CreateObject();
    return 0;
}

static int mtab_name(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    MTab *t = ud;
    if (vlen != AM_ID_HEX) return 0;
    for (int i = 0; i < t->n; i++)
        if (memcmp(t->r[i].id, val, AM_ID_HEX) == 0) {
            size_t l = strlen(t->r[i].names);
            snprintf(t->r[i].names + l, sizeof t->r[i].names - l, "%s%.*s", l ? "," : "", (int)klen, (const char *)key);
        }
    return 0;
}

static void mtab_free(MTab *t) {
    for (int i = 0; i < t->n; i++) cJSON_Delete(t->r[i].meta);
    free(t->r);
    memset(t, 0, sizeof *t);
}

static int mtab_load(Store *st, MTab *t, int sizes) {
    int rc = store_model_list(st, mtab_add, t);
    if (!rc) rc = store_iter(st, "names", NULL, 0, mtab_name, t);
    for (int i = 0; sizes && !rc && i < t->n; i++) rc = store_model_bytes(st, t->r[i].id, &t->r[i].bytes);
    return rc;
}

static MRow *mtab_find(MTab *t, const char *id) {
    for (int i = 0; id && i < t->n; i++)
        if (strcmp(t->r[i].id, id) == 0) return &t->r[i];
    return NULL;
}

/* does model a need model id: does its meta name id as a parent or its base? (A task vector's
 * "checkpoint" is provenance: the vector holds its own weights.) */
static int needs(const MRow *a, const char *id) {
    const cJSON *p, *parents = cJSON_GetObjectItemCaseSensitive(a->meta, "parents");
    cJSON_ArrayForEach(p, parents) if (strcmp(cli_jstr(p, "id", ""), id) == 0) return 1;
    return strcmp(cli_jstr(a->meta, "base", ""), id) == 0;
}

/* "name" or "run@step" or "-" for a model (what ls and rm show) */
const char *cli_model_label(const char *names, const cJSON *meta, char *buf, size_t cap) {
    if (names && names[0]) return snprintf(buf, cap, "%s", names), buf;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(meta, "step");
    const char *run = cli_jstr(meta, "run", NULL);
    if (run && cJSON_IsNumber(step)) return snprintf(buf, cap, "%s@%d", run, (int)step->valuedouble), buf;
    return snprintf(buf, cap, "-"), buf;
}

static const char *row_label(MTab *t, const MRow *r, char *buf, size_t cap) {
    if (!r->names[0] && strcmp(cli_model_kind(r->meta), "task_vector") == 0) {
        /* an unnamed task vector: the label of the checkpoint it belongs to, + ".tau" */
        MRow *ck = mtab_find(t, cli_jstr(r->meta, "checkpoint", NULL));
        if (ck) {
            char cb[320];
            snprintf(buf, cap, "%s.tau", cli_model_label(ck->names, ck->meta, cb, sizeof cb));
            return buf;
        }
    }
    return cli_model_label(r->names, r->meta, buf, cap);
}

/* ---------------------------------------------------------------- runs (store_runs.h) */

typedef struct { char *id; cJSON *rec; size_t state_bytes, metric_rows, metric_bytes, rec_bytes; int remove; } RRow;
typedef struct { RRow *r; int n, cap; } RTab;

static int rtab_add(void *ud, const char *id, const char *json) {
    RTab *t = ud;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->r = xrealloc(t->r, (size_t)t->cap * sizeof *t->r);
    }
    RRow *r = &t->r[t->n++];
    memset(r, 0, sizeof *r);
    r->id = xstrdup(id);
    r->rec = cJSON_Parse(json);
    if (!r->rec) r->rec = cJSON_CreateObject();
    return 0;
}

static void rtab_free(RTab *t) {
    for (int i = 0; i < t->n; i++) {
        free(t->r[i].id);
        cJSON_Delete(t->r[i].rec);
    }
    free(t->r);
    memset(t, 0, sizeof *t);
}

/* every run with its sizes (metrics: whether to count its rows too) */
static int rtab_load(Store *st, RTab *t, int metrics) {
    int rc = store_run_list(st, rtab_add, t);
    for (int i = 0; !rc && i < t->n; i++) {
        StoreRunSize z;
        rc = store_run_size(st, t->r[i].id, &z);
        t->r[i].rec_bytes = z.record_bytes;
        t->r[i].state_bytes = z.state_bytes;
        if (metrics) {
            t->r[i].metric_rows = z.metric_rows;
            t->r[i].metric_bytes = z.metric_bytes;
        }
    }
    return rc;
}

static const char *run_status(const RRow *r) { return cli_jstr(r->rec, "status", "?"); }
static int run_keeps_state(const RRow *r) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->rec, "keep_state")); }

/* ---------------------------------------------------------------- run deletion */

/* drop a run's trainer state (state_only) or the whole run: record, state, metrics */
static int run_delete(Store *st, const char *id, int state_only) {
    int rc = state_only ? store_run_state_del(st, id, NULL) : store_run_delete(st, id);
    if (rc == AM_ENOTFOUND) {
        am_clearerror();
        rc = AM_OK;
    }
    return rc;
}

/* ---------------------------------------------------------------- files */

static size_t dir_bytes(const char *path) {
    size_t b = 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0) b += S_ISDIR(st.st_mode) ? dir_bytes(p) : (size_t)st.st_size;
        free(p);
    }
    closedir(d);
    return b;
}

typedef struct { int dirs; size_t bytes; } CacheFreed;

/* the embedding cache directories (STORE/cache/emb/<space>) whose space.json names model
 * only_id (NULL: any model not in mt) */
static void embcache_drop(const char *store_dir, MTab *mt, const char *only_id, int dry, CacheFreed *cf) {
    char *root = xasprintf("%s/cache/emb", store_dir);
    DIR *d = opendir(root);
    if (!d) { free(root); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *sub = xasprintf("%s/%s", root, e->d_name), *sj = xasprintf("%s/space.json", sub);
        char *text = NULL;
        size_t len = 0;
        int drop = 0;
        if (am_read_file(sj, &text, &len) == AM_OK) {
            cJSON *j = cJSON_ParseWithLength(text, len);
            const char *model = cli_jstr(j, "model", "");
            drop = only_id ? strcmp(model, only_id) == 0 : (model[0] && !mtab_find(mt, model));
            cJSON_Delete(j);
        }
        am_clearerror();
        if (drop) {
            cf->dirs++;
            cf->bytes += dir_bytes(sub);
            if (!dry) am_rm_tree(sub);
        }
        free(text);
        free(sj);
        free(sub);
    }
    closedir(d);
    free(root);
}

/* ---------------------------------------------------------------- rm */

static RRow *rtab_find(RTab *t, const char *id) {
    for (int i = 0; id && i < t->n; i++)
        if (strcmp(t->r[i].id, id) == 0) return &t->r[i];
    return NULL;
}

/* mark one argument: an exact run id, a model (name or id prefix), or a unique run id prefix */
static int rm_mark(Store *st, MTab *mt, RTab *rt, const char *q) {
    RRow *run = rtab_find(rt, q);
    if (run) return run->remove = 1, AM_OK;
    char id[AM_ID_HEX + 1];
    int rc = store_resolve(st, q, id);
    if (rc == AM_OK) {
        MRow *m = mtab_find(mt, id);
        AM_ASSERT(m != NULL);
        m->remove = 1;
        return AM_OK;
    }
    if (rc != AM_ENOTFOUND) return rc;
    am_clearerror();
    RRow *hit = NULL;
    int n = 0;
    size_t ql = strlen(q);
    for (int i = 0; ql >= 4 && i < rt->n; i++)
        if (strncmp(rt->r[i].id, q, ql) == 0) hit = &rt->r[i], n++;
    if (n == 1) return hit->remove = 1, AM_OK;
    if (n > 1) return am_error(AM_EINVAL, "rm: run id prefix '%s' is ambiguous (%d runs match; see amalgam ls runs)", q, n);
    return am_error(AM_ENOTFOUND, "rm: no model or run '%s'%s (see amalgam ls models, amalgam ls runs)", q,
                    ql < 4 ? "; an id prefix needs at least 4 characters" : "");
}

/* the models a run made: meta "run" = its id, and the task vectors of those checkpoints */
static int made_by(MTab *mt, const MRow *m, const char *run_id) {
    if (strcmp(cli_jstr(m->meta, "run", ""), run_id) == 0) return 1;
    const MRow *ck = mtab_find(mt, cli_jstr(m->meta, "checkpoint", NULL));
    return ck && strcmp(cli_jstr(ck->meta, "run", ""), run_id) == 0;
}

int cmd_rm(CliArgs *a) {
    int force = cli_flag(a, "force"), dry = cli_flag(a, "dry-run"), rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos < 1) return am_error(AM_EINVAL, "rm: usage: amalgam rm MODEL|RUN... [--force] [--dry-run]");
    Store *st = NULL;
    MTab mt = {0};
    RTab rt = {0};
    char lb[320], bb[24];
    if ((rc = store_open(a->store_dir, dry ? AM_STORE_RDONLY : AM_STORE_EXISTING, &st))) return rc;
    if ((rc = mtab_load(st, &mt, 1)) || (rc = rtab_load(st, &rt, 1))) goto done;
    for (int i = 0; i < a->npos; i++)
        if ((rc = rm_mark(st, &mt, &rt, a->pos[i]))) goto done;
    /* a removed run takes the models it made that have no name along */
    for (int r = 0; r < rt.n; r++) {
        if (!rt.r[r].remove) continue;
        for (int i = 0; i < mt.n; i++) {
            if (!made_by(&mt, &mt.r[i], rt.r[r].id) || mt.r[i].remove) continue;
            if (mt.r[i].names[0])
                printf("keeping %s (%.12s): a named model of run %s (amalgam rm %.*s removes it)\n", mt.r[i].names,
                       mt.r[i].id, rt.r[r].id, (int)strcspn(mt.r[i].names, ","), mt.r[i].names);
            else mt.r[i].remove = 2;
        }
    }
    /* a run that is training right now would write its record again at the next checkpoint */
    for (int r = 0; r < rt.n; r++) {
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(rt.r[r].rec, "pid");
        if (!rt.r[r].remove || strcmp(run_status(&rt.r[r]), "running") != 0 || !cJSON_IsNumber(pid) ||
            pid->valueint <= 0 || (kill((pid_t)pid->valueint, 0) != 0 && errno == ESRCH) || force)
            continue;
        rc = am_error(AM_EINVAL, "rm: run %s is running (pid %d); stop it first (Ctrl-C or kill %d), or pass --force",
                      rt.r[r].id, pid->valueint, pid->valueint);
        goto done;
    }
    /* a removed checkpoint takes its unnamed task vector along */
    for (int i = 0; i < mt.n; i++) {
        MRow *ck = mtab_find(&mt, cli_jstr(mt.r[i].meta, "checkpoint", NULL));
        if (ck && ck->remove && !mt.r[i].remove && !mt.r[i].names[0]) mt.r[i].remove = 2;
    }
    /* what a kept model or an unfinished run needs */
    int blocked = 0;
    for (int i = 0; i < mt.n; i++) {
        MRow *x = &mt.r[i];
        if (!x->remove) continue;
        char who[1024] = "";
        int nb = 0;
        for (int k = 0; k < mt.n; k++) {
            if (mt.r[k].remove || !needs(&mt.r[k], x->id)) continue;
            size_t l = strlen(who);
            if (nb++ < 4) snprintf(who + l, sizeof who - l, "%smodel %s (%.12s)", l ? ", " : "",
                                   row_label(&mt, &mt.r[k], lb, sizeof lb), mt.r[k].id);
        }
        for (int r = 0; r < rt.n; r++) {
            if (rt.r[r].remove || strcmp(run_status(&rt.r[r]), "done") == 0 ||
                strcmp(cli_jstr(rt.r[r].rec, "init", ""), x->id) != 0)
                continue;
            size_t l = strlen(who);
            if (nb++ < 4) snprintf(who + l, sizeof who - l, "%s%s run %s (resumes from it)", l ? ", " : "",
                                   run_status(&rt.r[r]), rt.r[r].id);
        }
        if (!nb) continue;
        blocked++;
        fprintf(stderr, "amalgam: rm: %s (%.12s) is needed by %s%s\n", row_label(&mt, x, lb, sizeof lb), x->id, who,
                nb > 4 ? ", ..." : "");
    }
    if (blocked && !force) {
        rc = am_error(AM_EINVAL, "rm: nothing removed: remove what needs %s too, or pass --force (the dependents "
                      "stay and show the missing parent by id)", blocked > 1 ? "them" : "it");
        goto done;
    }
    size_t total = 0;
    const char *verb = dry ? "would remove" : "removed";
    for (int i = 0; i < mt.n; i++) {
        MRow *x = &mt.r[i];
        if (!x->remove) continue;
        char label[320];
        row_label(&mt, x, label, sizeof label);
        size_t nres = 0, rbytes = 0;
        CacheFreed cf = {0};
        if (!dry) {
            if ((rc = store_model_delete(st, x->id)) || (rc = store_results_delete(st, x->id, &nres, &rbytes))) goto done;
        }
        embcache_drop(a->store_dir, &mt, x->id, dry, &cf);
        total += x->bytes + rbytes + cf.bytes;
        printf("%s model %s (%.12s, %s)  %s", verb, label, x->id, cli_model_kind(x->meta), cli_bytes((double)x->bytes, bb));
        if (nres) printf(", %zu eval results", nres);
        if (cf.dirs) printf(", embedding cache %s", cli_bytes((double)cf.bytes, bb));
        printf("\n");
    }
    for (int r = 0; r < rt.n; r++) {
        RRow *x = &rt.r[r];
        if (!x->remove) continue;
        if (!dry && (rc = run_delete(st, x->id, 0))) goto done;
        total += x->rec_bytes + x->metric_bytes + x->state_bytes;
        printf("%s run %s (%s): record, %zu metrics rows (%s)", verb, x->id, run_status(x), x->metric_rows,
               cli_bytes((double)x->metric_bytes, bb));
        if (x->state_bytes) printf(", trainer state %s", cli_bytes((double)x->state_bytes, bb));
        printf("\n");
    }
    printf("%s %s in the store%s\n", dry ? "would free" : "freed", cli_bytes((double)total, bb),
           dry ? "" : " (LMDB reuses the pages for new writes; amalgam gc --compact shrinks data.mdb)");
done:
    mtab_free(&mt);
    rtab_free(&rt);
    store_close(st);
    return rc;
}

/* ---------------------------------------------------------------- gc */

static void stat_line(Store *st) {
    StoreStat ss;
    char b1[24], b2[24], b3[24];
    if (store_stat(st, &ss) != AM_OK) {
        am_clearerror();
        return;
    }
    printf("data.mdb: %s on disk, %s in use, %s in free pages (%zu of %zu pages; LMDB reuses them, the file never "
           "shrinks by itself)\n",
           cli_bytes((double)ss.file_size, b1), cli_bytes((double)(ss.used - ss.free_pages * ss.page_size), b2),
           cli_bytes((double)(ss.free_pages * ss.page_size), b3), ss.free_pages, ss.used / ss.page_size);
}

int cmd_gc(CliArgs *a) {
    int dry = cli_flag(a, "dry-run"), compact = cli_flag(a, "compact"), rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos) return am_error(AM_EINVAL, "gc: usage: amalgam gc [--dry-run] [--compact]");
    Store *st = NULL;
    MTab mt = {0};
    RTab rt = {0};
    char bb[24], lb[24];
    if ((rc = store_open(a->store_dir, dry ? AM_STORE_RDONLY : AM_STORE_EXISTING, &st))) return rc;
    if ((rc = mtab_load(st, &mt, 0)) || (rc = rtab_load(st, &rt, 0))) goto done;
    const char *verb = dry ? "would drop" : "dropped";
    /* 1. trainer state of finished runs: only a resume needs it, and a done run is not resumed
     * unless it was started with keep_state = true */
    size_t nstate = 0, state_bytes = 0, kept = 0;
    for (int r = 0; r < rt.n; r++) {
        RRow *x = &rt.r[r];
        if (!x->state_bytes || strcmp(run_status(x), "done") != 0) continue;
        if (run_keeps_state(x)) { kept++; continue; }
        if (!dry && (rc = run_delete(st, x->id, 1))) goto done;
        nstate++;
        state_bytes += x->state_bytes;
    }
    if (nstate) printf("%s the trainer state of %zu finished runs: %s\n", verb, nstate, cli_bytes((double)state_bytes, bb));
    if (kept) printf("kept the trainer state of %zu finished runs started with keep_state = true\n", kept);
    /* 2. what no model references */
    StoreGcFreed f;
    if ((rc = store_gc(st, dry, &f))) goto done;
    if (f.tensors) printf("%s %zu tensors of models that are gone: %s\n", verb, f.tensors, cli_bytes((double)f.tensor_bytes, bb));
    if (f.results)
        printf("%s %zu eval results of models that are gone: %s\n", verb, f.results, cli_bytes((double)f.result_bytes, bb));
    if (f.vocabs) printf("%s %zu unused vocabularies: %s\n", verb, f.vocabs, cli_bytes((double)f.vocab_bytes, bb));
    if (f.names) printf("%s %zu names of missing models\n", verb, f.names);
    /* 3. embedding caches of models that are gone (files, freed at once) */
    CacheFreed cf = {0};
    embcache_drop(a->store_dir, &mt, NULL, dry, &cf);
    if (cf.dirs)
        printf("%s %d embedding caches of models that are gone: %s (files in %s/cache/emb)\n", verb, cf.dirs,
               cli_bytes((double)cf.bytes, bb), a->store_dir);
    size_t in_store = state_bytes + f.tensor_bytes + f.result_bytes + f.vocab_bytes;
    if (!nstate && !f.tensors && !f.results && !f.vocabs && !f.names && !cf.dirs) printf("nothing to drop\n");
    else
        printf("%s %s in the store and %s of files\n", dry ? "would free" : "freed", cli_bytes((double)in_store, bb),
               cli_bytes((double)cf.bytes, lb));
    stat_line(st);
    store_close(st);
    st = NULL;
    if (compact && !dry) {
        size_t before, after;
        char b1[24];
        if ((rc = store_compact(a->store_dir, &before, &after))) goto done;
        printf("compacted data.mdb: %s -> %s\n", cli_bytes((double)before, b1), cli_bytes((double)after, bb));
    } else if (!compact) {
        printf("(amalgam gc --compact rewrites data.mdb without the free pages, like mdb_copy -c)\n");
    }
done:
    mtab_free(&mt);
    rtab_free(&rt);
    store_close(st);
    return rc;
}

/* ---------------------------------------------------------------- du */

static void add_kind(cJSON *kinds, const char *name, size_t count, size_t bytes, const char *note) {
    cJSON *k = cJSON_CreateObject();
    cJSON_AddStringToObject(k, "kind", name);
    cJSON_AddNumberToObject(k, "count", (double)count);
    cJSON_AddNumberToObject(k, "bytes", (double)bytes);
    if (note && *note) cJSON_AddStringToObject(k, "note", note);
    cJSON_AddItemToArray(kinds, k);
}

int cmd_du(CliArgs *a) {
    int json = cli_flag(a, "json"), rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos) return am_error(AM_EINVAL, "du: usage: amalgam du [--json]");
    Store *st = NULL;
    MTab mt = {0};
    RTab rt = {0};
    cJSON *out = cJSON_CreateObject(), *kinds = cJSON_AddArrayToObject(out, "kinds");
    if ((rc = store_open(a->store_dir, AM_STORE_RDONLY, &st))) goto done;
    if ((rc = mtab_load(st, &mt, 1)) || (rc = rtab_load(st, &rt, 1))) goto done;
    StoreStat ss;
    if ((rc = store_stat(st, &ss))) goto done;
    /* models by kind */
    const char *seen[32];
    int nseen = 0;
    for (int i = 0; i < mt.n; i++) {
        const char *k = cli_model_kind(mt.r[i].meta);
        int dup = 0;
        for (int s = 0; s < nseen; s++) dup |= strcmp(seen[s], k) == 0;
        if (dup || nseen == 32) continue;
        seen[nseen++] = k;
        size_t n = 0, b = 0;
        for (int j = 0; j < mt.n; j++)
            if (strcmp(cli_model_kind(mt.r[j].meta), k) == 0) n++, b += mt.r[j].bytes;
        char *kn = xasprintf("models: %s", k);
        add_kind(kinds, kn, n, b, "");
        free(kn);
    }
    size_t nst = 0, stb = 0, ndone = 0, doneb = 0, mrows = 0, mb = 0, recb = 0;
    for (int r = 0; r < rt.n; r++) {
        RRow *x = &rt.r[r];
        recb += x->rec_bytes;
        mrows += x->metric_rows;
        mb += x->metric_bytes;
        if (!x->state_bytes) continue;
        nst++;
        stb += x->state_bytes;
        if (strcmp(run_status(x), "done") == 0 && !run_keeps_state(x)) ndone++, doneb += x->state_bytes;
    }
    char note[160] = "", bb[24];
    if (ndone) snprintf(note, sizeof note, "%zu of finished runs (%s): amalgam gc drops them", ndone,
                        cli_bytes((double)doneb, bb));
    add_kind(kinds, "run trainer state", nst, stb, note);
    add_kind(kinds, "run records", (size_t)rt.n, recb, "");
    add_kind(kinds, "run metrics rows", mrows, mb, "");
    size_t b = 0;
    if ((rc = store_db_bytes(st, "results", NULL, 0, &b))) goto done;
    add_kind(kinds, "eval results", ss.entries[AM_DB_RESULTS], b, "");
    if ((rc = store_db_bytes(st, "datasets", NULL, 0, &b))) goto done;
    add_kind(kinds, "dataset registry", ss.entries[AM_DB_DATASETS], b, "");
    if ((rc = store_db_bytes(st, "vocab", NULL, 0, &b))) goto done;
    add_kind(kinds, "vocabularies", ss.entries[AM_DB_VOCAB], b, "");
    /* files next to data.mdb */
    char *p = xasprintf("%s/datasets", a->store_dir);
    add_kind(kinds, "files: datasets/", 0, dir_bytes(p), "");
    free(p);
    p = xasprintf("%s/cache/emb", a->store_dir);
    size_t emb = dir_bytes(p);
    free(p);
    add_kind(kinds, "files: cache/emb/ (embedding cache)", 0, emb, "capped by $AMALGAM_EMBCACHE_MB (1024)");
    p = xasprintf("%s/cache", a->store_dir);
    add_kind(kinds, "files: cache/ (downloads, vocab)", 0, dir_bytes(p) - emb, "");
    free(p);
    cJSON_AddStringToObject(out, "store", a->store_dir);
    cJSON_AddNumberToObject(out, "file_bytes", (double)ss.file_size);
    cJSON_AddNumberToObject(out, "used_bytes", (double)ss.used);
    cJSON_AddNumberToObject(out, "free_bytes", (double)(ss.free_pages * ss.page_size));
    cJSON_AddNumberToObject(out, "map_bytes", (double)ss.mapsize);
    if (json) {
        char *s = cJSON_Print(out);
        puts(s);
        free(s);
        goto done;
    }
    char b1[24], b2[24], b3[24];
    printf("store %s: data.mdb %s on disk, %s of it in free pages (reused by new writes; amalgam gc --compact "
           "shrinks the file)\n\n", a->store_dir, cli_bytes((double)ss.file_size, b1),
           cli_bytes((double)(ss.free_pages * ss.page_size), b2));
    printf("%-36s %7s %10s\n", "KIND", "COUNT", "SIZE");
    const cJSON *k;
    double sum = 0;
    cJSON_ArrayForEach(k, kinds) {
        const char *kn = cli_jstr(k, "kind", "");
        double n = cJSON_GetObjectItem(k, "count")->valuedouble, by = cJSON_GetObjectItem(k, "bytes")->valuedouble;
        if (strncmp(kn, "files:", 6) != 0) sum += by;
        char cnt[24] = "";
        if (strncmp(kn, "files:", 6) != 0) snprintf(cnt, sizeof cnt, "%.0f", n);
        printf("%-36s %7s %10s%s%s\n", kn, cnt, cli_bytes(by, b3), cli_jstr(k, "note", NULL) ? "  " : "", cli_jstr(k, "note", ""));
    }
    printf("%-36s %7s %10s\n", "total in data.mdb (keys + values)", "", cli_bytes(sum, b3));
    printf("\nIdentical models share one content id and are stored once; tensors are stored per model.\n");
done:
    cJSON_Delete(out);
    mtab_free(&mt);
    rtab_free(&rt);
    store_close(st);
    return rc;
}

/* ---------------------------------------------------------------- ls models */

/* display width of UTF-8 text (code points; names are printable, no wide-character handling) */
static int u8width(const char *s) {
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/* byte offset of column c of s */
static size_t u8off(const char *s, int c) {
    const char *p = s;
    while (*p && c > 0) {
        p++;
        while (((unsigned char)*p & 0xC0) == 0x80) p++;
        c--;
    }
    return (size_t)(p - s);
}

/* s in w columns, padded; a longer s loses its middle to "…" (the end has the step of a
 * checkpoint label and the unique part of a run id) */
static void put_col(const char *s, int w) {
    int sw = u8width(s);
    if (sw <= w) {
        printf("%s%*s", s, w - sw, "");
        return;
    }
    int tail = w / 3, head = w - 1 - tail;
    printf("%.*s…%s", (int)u8off(s, head), s, s + u8off(s, sw - tail));
}

static int by_created(const void *a, const void *b) {
    const MRow *x = a, *y = b;
    int c = strcmp(cli_jstr(x->meta, "created", ""), cli_jstr(y->meta, "created", ""));
    return c ? c : strcmp(x->id, y->id);
}

#define NAME_MAX_COLS 40

int cmd_ls_models(CliArgs *a, int json) {
    Store *st = NULL;
    MTab mt = {0};
    int rc = store_open(a->store_dir, AM_STORE_RDONLY, &st);
    if (rc) return rc;
    if ((rc = mtab_load(st, &mt, 1))) goto done;
    qsort(mt.r, (size_t)mt.n, sizeof *mt.r, by_created);
    char lb[320], bb[24];
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (int i = 0; i < mt.n; i++) {
            cJSON *j = cJSON_Duplicate(mt.r[i].meta, 1);
            cJSON_AddItemToObject(j, "names", cJSON_CreateString(mt.r[i].names));
            cJSON_AddItemToObject(j, "label", cJSON_CreateString(row_label(&mt, &mt.r[i], lb, sizeof lb)));
            cJSON_AddItemToObject(j, "bytes", cJSON_CreateNumber((double)mt.r[i].bytes));
            cJSON_ReplaceItemInObjectCaseSensitive(j, "kind", cJSON_CreateString(cli_model_kind(mt.r[i].meta)));
            cJSON_AddItemToArray(arr, j);
        }
        char *s = cJSON_Print(arr);
        puts(s);
        free(s);
        cJSON_Delete(arr);
        goto done;
    }
    if (mt.n == 0) {
        printf("(no models in %s; try: amalgam init-model --config tiny --name base-tiny)\n", a->store_dir);
        goto done;
    }
    int wn = 4, wk = 4;
    for (int i = 0; i < mt.n; i++) {
        int w = u8width(row_label(&mt, &mt.r[i], lb, sizeof lb));
        if (w > wn) wn = w;
        w = (int)strlen(cli_model_kind(mt.r[i].meta));
        if (w > wk) wk = w;
    }
    if (wn > NAME_MAX_COLS) wn = NAME_MAX_COLS;
    put_col("NAME", wn);
    printf("  %-12s  ", "ID");
    put_col("KIND", wk);
    printf("  %6s %6s %8s %9s  %-7s %s\n", "LAYERS", "HIDDEN", "PARAMS", "SIZE", "POOLING", "CREATED");
    for (int i = 0; i < mt.n; i++) {
        const MRow *r = &mt.r[i];
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(r->meta, "config");
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(cfg, "num_hidden_layers"),
                    *hs = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_size"),
                    *np = cJSON_GetObjectItemCaseSensitive(r->meta, "n_params");
        put_col(row_label(&mt, r, lb, sizeof lb), wn);
        printf("  %-12.12s  ", r->id);
        put_col(cli_model_kind(r->meta), wk);
        printf("  %6d %6d %7.2fM %9s  %-7s %s\n", cJSON_IsNumber(nl) ? nl->valueint : 0,
               cJSON_IsNumber(hs) ? hs->valueint : 0, cJSON_IsNumber(np) ? np->valuedouble / 1e6 : 0,
               cli_bytes((double)r->bytes, bb), cli_jstr(r->meta, "pooling", "mean"), cli_jstr(r->meta, "created", ""));
    }
done:
    mtab_free(&mt);
    store_close(st);
    return rc;
}
