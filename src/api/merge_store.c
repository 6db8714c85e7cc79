/* merge_store.c - merges of stored models: loading the inputs (through the last-merge cache),
 * materialisation of a canonical spec into a model, and storing / naming the result (merge_store.h).
 * The canonical spec itself, its checks and its id are in merge_spec.c. */
#define _GNU_SOURCE
#include "merge_store.h"
#include "merge_store_internal.h"
#include "am_base.h"
#include "store_recipe.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- loading the inputs */

static int meta_of(Store *st, const char *id, cJSON **out) {
    char *m = NULL;
    *out = NULL;
    int rc = store_model_meta(st, id, &m);
    if (rc) return rc;
    *out = cJSON_Parse(m);
    free(m);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return am_error(AM_EFORMAT, "model %s: meta is not a JSON object", id);
    }
    return AM_OK;
}

static int model_exists(Store *st, const char *id) {
    char *m = NULL;
    int rc = store_model_meta(st, id, &m);
    free(m);
    return rc != AM_ENOTFOUND;
}

int merge_store_is_recipe(Store *st, const char *id) {
    cJSON *m = NULL;
    if (meta_of(st, id, &m)) {
        am_clearerror();
        return 0;
    }
    int r = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "recipe_only"));
    cJSON_Delete(m);
    return r;
}

/* m without its MLM head (the head is at the end of the buffer, model.h) */
static int strip_head(Model **m) {
    if (!(*m)->cfg.has_mlm_head) return AM_OK;
    EncoderConfig c = (*m)->cfg;
    c.has_mlm_head = 0;
    Model *e = NULL;
    int rc = model_new(&c, &e);
    if (rc) return rc;
    memcpy(e->params, (*m)->params, e->tab.total * sizeof(float));
    model_delete(*m);
    *m = e;
    return AM_OK;
}

typedef struct { const char *id; char name[128]; } FirstName;

static int first_name(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    FirstName *f = ud;
    if (vlen != AM_ID_HEX || memcmp(val, f->id, AM_ID_HEX) != 0 || klen >= sizeof f->name) return 0;
    memcpy(f->name, key, klen);
    f->name[klen] = 0;
    return 1;
}

/* "name (id prefix)" or the id prefix, for messages */
static char *label_of(Store *st, const char *id) {
    FirstName f = {.id = id, .name = ""};
    if (store_iter(st, "names", NULL, 0, first_name, &f)) am_clearerror();
    char buf[160];
    if (f.name[0]) snprintf(buf, sizeof buf, "%s (%.12s)", f.name, id);
    else snprintf(buf, sizeof buf, "%.12s", id);
    return xstrdup(buf);
}

static int compute(Store *st, const cJSON *spec, int depth, Model **out, char **vocab, size_t *vlen, MergeStats *stats,
                   cJSON **first_meta);

/* ---------------------------------------------------------------- the last computed merge
 * A recipe is computed where it is used; a sweep merges a point and then evaluates it, a Lua
 * handle opened on a new merge loads it: the last result is kept (one copy, per process) so the
 * second use copies instead of merging again. Keyed by id alone: a recipe id names its content. */
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { char id[AM_ID_HEX + 1]; Model *m; char *vocab; size_t vlen; } cache;
static MergeStoreCounts counts; /* under cache_mu */

void merge_store_counts(MergeStoreCounts *c) {
    pthread_mutex_lock(&cache_mu);
    *c = counts;
    pthread_mutex_unlock(&cache_mu);
}

static void count(size_t *field) {
    pthread_mutex_lock(&cache_mu);
    (*field)++;
    pthread_mutex_unlock(&cache_mu);
}

static Model *model_copy(const Model *m) {
    Model *c = NULL;
    if (model_new(&m->cfg, &c)) return NULL;
    memcpy(c->params, m->params, m->tab.total * sizeof(float));
    return c;
}

static void cache_put(const char *id, const Model *m, const char *vocab, size_t vlen) {
    double t0 = am_now();
    Model *c = model_copy(m);
    if (!c) {
        am_clearerror();
        return;
    }
    pthread_mutex_lock(&cache_mu);
    model_delete(cache.m);
    free(cache.vocab);
    snprintf(cache.id, sizeof cache.id, "%s", id);
    cache.m = c;
    cache.vocab = vlen ? xmalloc(vlen + 1) : NULL;
    if (vlen) {
        memcpy(cache.vocab, vocab, vlen);
        cache.vocab[vlen] = 0;
    }
    cache.vlen = vlen;
    pthread_mutex_unlock(&cache_mu);
    am_phase_add(AM_PHASE_MERGE, am_now() - t0);
}

static int cache_get(const char *id, Model **m, char **vocab, size_t *vlen) {
    int hit = 0;
    double t0 = am_now();
    pthread_mutex_lock(&cache_mu);
    if (cache.m && strcmp(cache.id, id) == 0 && (*m = model_copy(cache.m))) {
        hit = 1;
        counts.reused++;
        *vlen = cache.vlen;
        *vocab = NULL;
        if (cache.vlen) {
            *vocab = xmalloc(cache.vlen + 1);
            memcpy(*vocab, cache.vocab, cache.vlen + 1);
        }
    }
    pthread_mutex_unlock(&cache_mu);
    if (!hit) am_clearerror();
    am_phase_add(AM_PHASE_MERGE, am_now() - t0);
    return hit;
}

/* The full weights of stored model id: its tensors; a task vector plus its parent; a recipe computed. */
static int load_full(Store *st, const char *id, int depth, Model **out, char **vocab, size_t *vlen) {
    *out = NULL;
    *vocab = NULL;
    *vlen = 0;
    if (depth > 32) return am_error(AM_EINVAL, "merge: lineage deeper than 32 models at %.12s (a cycle?)", id);
    cJSON *meta = NULL;
    int rc = meta_of(st, id, &meta);
    if (rc) return rc;
    const char *kind = merge_store_jstr(meta, "kind");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only")) && cache_get(id, out, vocab, vlen)) {
        rc = AM_OK;
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only"))) {
        rc = compute(st, cJSON_GetObjectItemCaseSensitive(meta, "merge"), depth + 1, out, vocab, vlen, NULL, NULL);
        const char *want = merge_store_jstr(meta, "content");
        if (!rc && want) {
            char got[AM_ID_HEX + 1];
            store_model_id(*out, *vocab, *vlen, got);
            if (strcmp(got, want) != 0)
                rc = am_error(AM_EFORMAT, "merged model %.12s: recomputed content %.12s differs from the recorded "
                              "%.12s (an input changed?)", id, got, want);
        }
        if (!rc) cache_put(id, *out, *vocab, *vlen);
    } else if ((rc = store_model_get(st, id, out, NULL, vocab, vlen)) == AM_OK && kind &&
               (strcmp(kind, "task_vector") == 0 || strcmp(kind, "lora") == 0)) {
        /* θ = θ0 + τ, θ0 the model the run started from */
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(meta, "parents");
        const char *pid = merge_store_jstr(cJSON_GetArrayItem(ps, 0), "id");
        Model *b = NULL;
        char *bv = NULL;
        size_t bl = 0;
        if (!pid) rc = am_error(AM_EFORMAT, "task vector %.12s names no parent model (θ0)", id);
        else if ((rc = load_full(st, pid, depth + 1, &b, &bv, &bl)))
            rc = am_error_wrap(rc, "task vector %.12s: its base model %.12s", id, pid);
        else if ((*out)->cfg.has_mlm_head || (rc = strip_head(&b))) {
            if (!rc) rc = am_error(AM_EFORMAT, "task vector %.12s has an MLM head", id);
        } else if (b->tab.total != (*out)->tab.total) {
            rc = am_error(AM_ESHAPE, "task vector %.12s and its base %.12s have different shapes", id, pid);
        } else {
            for (size_t i = 0; i < b->tab.total; i++) (*out)->params[i] += b->params[i];
        }
        model_delete(b);
        free(bv);
    }
    cJSON_Delete(meta);
    if (rc) {
        model_delete(*out);
        free(*vocab);
        *out = NULL;
        *vocab = NULL;
        *vlen = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- stored inputs, kept
 * The weights behind a stored (not recipe-only) model id never change (ids are content
 * hashes), so the inputs of merges stay loaded between merges: the Merge panel merges the same
 * parents at every step, and reading, hashing and copying them out of LMDB into fresh memory
 * cost more than the merge. Entries are shared read-only (refs counts the merges using one);
 * `finite` records that the NaN/Inf check passed. Least recently used unreferenced entries
 * go when the total exceeds AMALGAM_MERGE_CACHE_MB (default 512; 0 = off). */
typedef struct Kept {
    char id[AM_ID_HEX + 1];
    Model *m;
    char *vocab;
    size_t vlen;
    int refs, finite;
    uint64_t used;
    struct Kept *next;
} Kept;
static Kept *kept;          /* under cache_mu */
static uint64_t kept_tick;

static size_t kept_cap(void) {
    const char *e = getenv("AMALGAM_MERGE_CACHE_MB");
    char *end = NULL;
    double mb = e && *e ? strtod(e, &end) : 512;
    if (e && *e && (end == e || mb < 0)) mb = 512;
    return (size_t)(mb * 1048576.0);
}

static size_t kept_bytes(const Kept *k) { return k->m->tab.total * sizeof(float) + k->vlen; }

static void kept_free(Kept *k) {
    model_delete(k->m);
    free(k->vocab);
    free(k);
}

/* drop unreferenced entries, oldest first, until the rest fits cap; under cache_mu */
static void kept_trim(size_t cap, Kept **dropped) {
    for (;;) {
        size_t total = 0;
        Kept **victim = NULL;
        for (Kept **p = &kept; *p; p = &(*p)->next) {
            total += kept_bytes(*p);
            if (!(*p)->refs && (!victim || (*p)->used < (*victim)->used)) victim = p;
        }
        if (total <= cap || !victim) return;
        Kept *v = *victim;
        *victim = v->next;
        v->next = *dropped;
        *dropped = v;
    }
}

/* A stored model's weights for reading: the kept entry (referenced; give it back with
 * kept_release) or, for recipes, a fresh load (*entry = NULL, the caller owns *m). vocab is
 * the entry's (do not free) or the caller's. */
static int load_input(Store *st, const char *id, int depth, Model **m, char **vocab, size_t *vlen, Kept **entry) {
    *entry = NULL;
    size_t cap = kept_cap();
    cJSON *meta = NULL;
    int rc = meta_of(st, id, &meta); /* still in the store (rm may have removed it since it was kept) */
    if (rc) return rc;
    const int recipe = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only"));
    cJSON_Delete(meta);
    if (!cap || recipe) return load_full(st, id, depth, m, vocab, vlen);
    pthread_mutex_lock(&cache_mu);
    for (Kept *k = kept; k; k = k->next)
        if (strcmp(k->id, id) == 0) {
            k->refs++;
            k->used = ++kept_tick;
            *entry = k;
            counts.inputs_kept++;
            break;
        }
    pthread_mutex_unlock(&cache_mu);
    if (!*entry) {
        if ((rc = load_full(st, id, depth, m, vocab, vlen))) return rc;
        count(&counts.inputs_loaded);
        Kept *k = xcalloc(1, sizeof *k);
        snprintf(k->id, sizeof k->id, "%s", id);
        k->m = *m;
        k->vocab = *vocab;
        k->vlen = *vlen;
        k->refs = 1;
        Kept *dropped = NULL;
        pthread_mutex_lock(&cache_mu);
        k->used = ++kept_tick;
        k->next = kept;
        kept = k;
        kept_trim(cap, &dropped);
        pthread_mutex_unlock(&cache_mu);
        for (Kept *d; (d = dropped);) {
            dropped = d->next;
            kept_free(d);
        }
        *entry = k;
    }
    *m = (*entry)->m;
    *vocab = (*entry)->vocab;
    *vlen = (*entry)->vlen;
    return AM_OK;
}

static void kept_release(Kept *k, int finite) {
    if (!k) return;
    Kept *dropped = NULL;
    pthread_mutex_lock(&cache_mu);
    k->refs--;
    if (finite) __atomic_store_n(&k->finite, 1, __ATOMIC_RELEASE);
    kept_trim(kept_cap(), &dropped);
    pthread_mutex_unlock(&cache_mu);
    for (Kept *d; (d = dropped);) {
        dropped = d->next;
        kept_free(d);
    }
}

void merge_store_forget_inputs(void) {
    Kept *dropped = NULL;
    pthread_mutex_lock(&cache_mu);
    kept_trim(0, &dropped);
    pthread_mutex_unlock(&cache_mu);
    for (Kept *d; (d = dropped);) {
        dropped = d->next;
        kept_free(d);
    }
}

/* strip_head for an input that may be a kept entry: that one is copied and released */
static int strip_input(Model **m, Kept **e, int finite) {
    if (!*e) return strip_head(m);
    if (!(*m)->cfg.has_mlm_head) return AM_OK;
    Model *c = model_copy(*m);
    if (!c) return am_error(AM_ENOMEM, "merge: cannot copy an input model");
    kept_release(*e, finite);
    *e = NULL;
    *m = c;
    return strip_head(m);
}

/* index of the first NaN/Inf in x[0, n), or n: blocks reduced branch-free (vectorised), then
 * the block that has one searched */
static size_t first_nonfinite(const float *x, size_t n) {
    size_t i = 0;
    for (; i + 1024 <= n; i += 1024) {
        uint32_t bad = 0;
        for (size_t j = 0; j < 1024; j++) {
            uint32_t b;
            memcpy(&b, x + i + j, 4);
            bad |= (b & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) break;
    }
    for (; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* Run a canonical spec: load the inputs, check vocabularies, merge. first_meta (may be NULL)
 * gets the first model's meta (pooling and tokenizer keys). */
static _Thread_local int compute_nest; /* phase timers: only the outermost compute counts */

static int compute(Store *st, const cJSON *spec, int depth, Model **out, char **vocab, size_t *vlen, MergeStats *stats,
                   cJSON **first_meta) {
    *out = NULL;
    *vocab = NULL;
    *vlen = 0;
    if (first_meta) *first_meta = NULL;
    double t_start = am_now(), t_load = 0, t0;
    const char *method = merge_store_jstr(spec, "method");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(spec, "models");
    if (!method || !cJSON_IsArray(models)) return am_error(AM_EFORMAT, "merge recipe: no method or models");
    MergeMethod mm;
    int rc = merge_method_from_name(method, &mm);
    if (rc) return rc;
    MergeSpec ms;
    merge_spec_init(&ms, mm);
    cJSON *params = NULL;
    char *pj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(spec, "params"));
    rc = merge_store_params_canonical(mm, pj, &params, &ms);
    free(pj);
    cJSON_Delete(params);
    const int outer = compute_nest++ == 0;
    int k = cJSON_GetArraySize(models);
    Model **in = xcalloc((size_t)k + 1, sizeof *in);
    Kept **ent = xcalloc((size_t)k + 1, sizeof *ent); /* ent[k]: the base's */
    char **names = xcalloc((size_t)k + 1, sizeof *names);
    Model *base = NULL, *res = NULL;
    char *bvocab = NULL, *v0 = NULL;
    size_t bl = 0, l0 = 0;
    int base_kept = 0;
    int heads = 1;
    const char *base_id = merge_store_jstr(spec, "base");
    for (int i = 0; i < k && !rc; i++) {
        const cJSON *e = cJSON_GetArrayItem(models, i);
        const char *id = merge_store_jstr(e, "id");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(e, "weight");
        if (!id || !cJSON_IsNumber(w)) { rc = am_error(AM_EFORMAT, "merge recipe: model %d has no id or weight", i + 1); break; }
        names[i] = label_of(st, id);
        float wf = (float)w->valuedouble;
        if ((rc = merge_spec_set(&ms, MERGE_P_WEIGHT, i, 0, "", &wf, 1))) break;
        char *vt = NULL;
        size_t vl = 0;
        t0 = am_now();
        rc = load_input(st, id, depth, &in[i], &vt, &vl, &ent[i]);
        t_load += am_now() - t0;
        if (rc) {
            if (rc == AM_ENOTFOUND && !model_exists(st, id))
                rc = am_error(AM_ENOTFOUND, "merge: input %d (%.12s) is no longer in the store (amalgam rm --force?), "
                              "so this merge cannot be computed", i + 1, id);
            break;
        }
        if (i == 0) {
            v0 = vt;
            l0 = vl;
            if (ent[i] && vl) { /* the kept entry's: the caller gets its own copy */
                v0 = xmalloc(vl + 1);
                memcpy(v0, vt, vl);
                v0[vl] = 0;
            }
            if (first_meta && (rc = meta_of(st, id, first_meta))) break;
        } else {
            int same = vl == l0 && (vl == 0 || memcmp(vt, v0, vl) == 0);
            if (!ent[i]) free(vt);
            if (!same) {
                rc = am_error(AM_EVOCAB, "merge: model %d (%.12s) has a different vocabulary than model 1 (%.12s)", i + 1,
                              id, merge_store_jstr(cJSON_GetArrayItem(models, 0), "id"));
                break;
            }
        }
        heads &= in[i]->cfg.has_mlm_head;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(spec, "rules");
    if (!rc && rules) { /* after the weights: the more specific rules win */
        cJSON *tmp = NULL;
        rc = merge_store_rules_canonical(mm, k, rules, &tmp, &ms);
        cJSON_Delete(tmp);
    }
    if (!rc && base_id) {
        t0 = am_now();
        rc = load_input(st, base_id, depth, &base, &bvocab, &bl, &ent[k]);
        base_kept = ent[k] != NULL;
        t_load += am_now() - t0;
        if (rc) {
            if (rc == AM_ENOTFOUND && !model_exists(st, base_id))
                rc = am_error(AM_ENOTFOUND, "merge: the base (%.12s) is no longer in the store (amalgam rm --force?), "
                              "so this merge cannot be computed", base_id);
            else rc = am_error_wrap(rc, "merge: base");
        }
        else if (bl != l0 || (bl && memcmp(bvocab, v0, bl) != 0))
            rc = am_error(AM_EVOCAB, "merge: the base (%.12s) has a different vocabulary than model 1", base_id);
        if (base) heads &= base->cfg.has_mlm_head;
    }
    /* a NaN/Inf in any input is an error, also where a method would trim it away */
    int *finite = xcalloc((size_t)k + 1, sizeof *finite); /* checked here (kept entries remember it) */
    for (int i = 0; i <= k && !rc; i++) {
        const Model *x = i < k ? in[i] : base;
        if (!x) continue;
        if (ent[i] && __atomic_load_n(&ent[i]->finite, __ATOMIC_ACQUIRE)) { /* set once, never unset */
            finite[i] = 1;
            continue;
        }
        for (int t = 0; t < x->tab.n && !rc; t++) {
            const ParamInfo *p = &x->tab.t[t];
            const float *v = x->params + p->offset;
            const size_t e = first_nonfinite(v, p->numel);
            if (e < p->numel) {
                char *blab = i < k ? NULL : label_of(st, base_id);
                rc = am_error(AM_EFORMAT, "merge: %s%s has a%s in tensor %s (element %zu)", i < k ? "" : "the base ",
                              i < k ? names[i] : blab, isnan(v[e]) ? " NaN" : "n Inf", p->name, e);
                free(blab);
            }
        }
        finite[i] = !rc;
    }
    /* a rule's pattern that matches no tensor is a typo, not a no-op */
    const cJSON *rule;
    cJSON_ArrayForEach(rule, rules) {
        const char *pat = merge_store_jstr(rule, "pattern");
        if (rc || !pat || !in[0]) continue;
        int hit = 0;
        for (int t = 0; t < in[0]->tab.n && !hit; t++) {
            const char *tn = in[0]->tab.t[t].name;
            hit = strchr(pat, '*') ? fnmatch(pat, tn, 0) == 0 : strstr(tn, pat) != NULL;
        }
        if (!hit) {
            static const char *const cls[] = {"embeddings", "attention", "ffn", "mlp", "layernorm", "norm", "pooler", "head"};
            const char *c = merge_closest_name(pat, cls, 8);
            char hint[80] = "";
            if (c) snprintf(hint, sizeof hint, " (did you mean the class '%s'?)", c);
            rc = am_error(AM_EINVAL, "merge %s: the rule pattern '%s' matches no tensor%s", method, pat, hint);
        }
    }
    /* an input without an MLM head (a task vector, an imported encoder): merge the encoders */
    for (int i = 0; i < k && !rc && !heads; i++) rc = strip_input(&in[i], &ent[i], finite[i]);
    if (!rc && base && !heads) rc = strip_input(&base, &ent[k], finite[k]);
    if (!rc) rc = model_new(&in[0]->cfg, &res);
    if (!rc) {
        MergeStats s0;
        rc = merge_models(&ms, in, (const char *const *)names, k, base, res, stats ? stats : &s0);
        count(&counts.computed);
    }
    for (int i = 0; i < k; i++) {
        if (ent[i]) kept_release(ent[i], finite[i]);
        else model_delete(in[i]);
        free(names[i]);
    }
    free(in);
    free(names);
    if (ent[k]) kept_release(ent[k], finite[k]);
    else model_delete(base);
    if (!base_kept) free(bvocab); /* a kept base's vocab is its entry's, also after strip_input copied the model */
    free(ent);
    free(finite);
    merge_spec_free(&ms);
    if (--compute_nest, outer) { /* a nested recipe's time is inside its parent's */
        am_phase_add(AM_PHASE_PARENTS, t_load);
        am_phase_add(AM_PHASE_MERGE, am_now() - t_start - t_load);
    }
    if (rc) {
        model_delete(res);
        free(v0);
        if (first_meta) {
            cJSON_Delete(*first_meta);
            *first_meta = NULL;
        }
        return rc;
    }
    *out = res;
    *vocab = v0;
    *vlen = l0;
    return AM_OK;
}

int merge_store_load_weights(Store *st, const char *id, Model **m, char **vocab, size_t *vocab_len) {
    char *v = NULL;
    size_t vl = 0;
    int rc = load_full(st, id, 0, m, &v, &vl);
    if (vocab) *vocab = v;
    else free(v);
    if (vocab_len) *vocab_len = vl;
    return rc;
}

int merge_store_load(Store *st, const char *id, Model **m, char **vocab, size_t *vocab_len) {
    char *v = NULL;
    size_t vl = 0;
    *m = NULL;
    int rc;
    if (merge_store_is_recipe(st, id)) rc = load_full(st, id, 0, m, &v, &vl);
    else rc = store_model_get(st, id, m, NULL, &v, &vl);
    if (vocab) *vocab = v;
    else free(v);
    if (vocab_len) *vocab_len = vl;
    return rc;
}

/* ---------------------------------------------------------------- storing */

/* The stored meta of a merge: the first model's embedding keys + kind, parents, base, spec. */
static char *merged_meta(const cJSON *spec, const cJSON *first, const char *name, const char *source,
                         const MergeStats *st) {
    cJSON *j = cJSON_CreateObject();
    if (name) cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "kind", "merged");
    static const char *const keep[] = {"pooling", "normalize", "max_seq_length", "do_lower_case", "strip_accents"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(first, keep[i]);
        if (x) cJSON_AddItemToObject(j, keep[i], cJSON_Duplicate(x, 1));
    }
    if (source) cJSON_AddStringToObject(j, "source", source);
    cJSON *parents = cJSON_AddArrayToObject(j, "parents");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(spec, "models")) cJSON_AddItemToArray(parents, cJSON_Duplicate(e, 1));
    const char *base = merge_store_jstr(spec, "base");
    if (base) cJSON_AddStringToObject(j, "base", base);
    cJSON_AddItemToObject(j, "merge", cJSON_Duplicate(spec, 1));
    /* what the method did: how much of the task vectors it kept, how many entries voted down */
    cJSON *x = cJSON_AddObjectToObject(j, "merge_stats");
    cJSON_AddNumberToObject(x, "seconds", st->seconds);
    if (st->delta_total) {
        cJSON_AddNumberToObject(x, "delta_total", (double)st->delta_total);
        cJSON_AddNumberToObject(x, "delta_kept", (double)st->delta_kept);
    }
    if (st->sign_conflicts) cJSON_AddNumberToObject(x, "sign_conflicts", (double)st->sign_conflicts);
    if (st->lerp_fallbacks) cJSON_AddNumberToObject(x, "lerp_fallbacks", (double)st->lerp_fallbacks);
    if (st->karcher_iters) cJSON_AddNumberToObject(x, "karcher_iters", st->karcher_iters);
    if (st->model_stock_t != 0) cJSON_AddNumberToObject(x, "model_stock_t", st->model_stock_t);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    AM_ASSERT(s != NULL);
    return s;
}

int merge_store_merge(Store *st, const MergeRequest *r, MergeResult *out) {
    memset(out, 0, sizeof *out);
    cJSON *spec = NULL;
    int rc = merge_store_request_spec(st, r, &spec);
    if (rc) return rc;
    char *s = cJSON_PrintUnformatted(spec);
    merge_store_recipe_id(s, out->id);
    free(s);
    cJSON *have = NULL;
    if (meta_of(st, out->id, &have) == AM_OK) { /* the same merge is stored: nothing to compute */
        int recipe = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(have, "recipe_only"));
        cJSON_Delete(have);
        cJSON_Delete(spec);
        out->found = 1;
        out->stored_tensors = !recipe;
        if (r->name) rc = merge_store_name(st, r->name, out->id);
        else if (r->materialize && recipe) rc = merge_store_name(st, NULL, out->id);
        if (!rc && (r->name || r->materialize)) out->stored_tensors = 1;
        return rc;
    }
    am_clearerror();
    Model *m = NULL;
    char *vocab = NULL;
    size_t vlen = 0;
    cJSON *first = NULL;
    if ((rc = compute(st, spec, 0, &m, &vocab, &vlen, &out->stats, &first))) {
        cJSON_Delete(spec);
        return rc;
    }
    char *meta = merged_meta(spec, first, r->name, r->source, &out->stats);
    int tensors = r->name || r->materialize;
    rc = store_merged_put(st, out->id, m, meta, vocab, vlen, !tensors);
    if (!rc && !tensors) cache_put(out->id, m, vocab, vlen);
    free(meta);
    free(vocab);
    cJSON_Delete(first);
    cJSON_Delete(spec);
    if (rc) {
        model_delete(m);
        return rc;
    }
    out->stored_tensors = tensors;
    out->model = m;
    return AM_OK;
}

int merge_store_name(Store *st, const char *name, const char *id) {
    cJSON *meta = NULL;
    int rc = meta_of(st, id, &meta);
    if (rc) return rc;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only"))) {
        cJSON_Delete(meta);
        return name ? store_name_set(st, name, id) : AM_OK;
    }
    /* saving a recipe by name stores its tensors: the same meta, with them */
    Model *m = NULL;
    char *vocab = NULL;
    size_t vlen = 0;
    if ((rc = load_full(st, id, 0, &m, &vocab, &vlen)) == AM_OK) {
        static const char *const derived[] = {"format", "id", "config", "has_pooler", "vocab", "n_params",
                                              "n_tensors", "recipe_only", "content", "name"};
        for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++)
            cJSON_DeleteItemFromObjectCaseSensitive(meta, derived[i]);
        if (name) cJSON_AddStringToObject(meta, "name", name);
        char *mj = cJSON_PrintUnformatted(meta);
        rc = store_merged_put(st, id, m, mj, vocab, vlen, 0);
        free(mj);
    }
    model_delete(m);
    free(vocab);
    cJSON_Delete(meta);
    return rc;
}
