/* runner.c - evaluate a model on a task (see evalrun.h): the runner and its loaded-task cache,
 * model info and config resolution, the canonical config and its hash, embedding through the
 * cache, and evalrun_task, which drives load -> embed -> score and builds and stores the result
 * JSON. The metric calls are in runner_score.c, reading stored results in runner_results.c. */
#define _GNU_SOURCE
#include "evalrun_internal.h"
#include "am_base.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DATA 32  /* loaded tasks kept by a runner */

struct EvalRunner {
    EmbCache *cache;
    TaskData *data;
    EvalRunnerStats st;
};

EvalRunner *evalrun_new(void) {
    EvalRunner *r = xcalloc(1, sizeof *r);
    r->cache = embcache_new();
    return r;
}

static void drop_data(EvalRunner *r) {
    for (TaskData *d = r->data, *n; d; d = n) {
        n = d->next;
        taskdata_delete(d);
    }
    r->data = NULL;
}

void evalrun_delete(EvalRunner *r) {
    if (!r) return;
    embcache_delete(r->cache);
    drop_data(r);
    free(r);
}

void evalrun_clear(EvalRunner *r) {
    embcache_clear(r->cache);
    drop_data(r);
}

void evalrun_set_disk_cap(EvalRunner *r, size_t bytes) { embcache_set_disk_cap(r->cache, bytes); }

void evalrun_stats(const EvalRunner *r, EvalRunnerStats *out) {
    *out = r->st;
    EmbCacheCounts c;
    embcache_counts(r->cache, &c);
    out->encode_calls = c.encode_calls;
    out->texts_encoded = c.texts_encoded;
    out->texts_cached = c.texts_cached;
    out->disk_loads = c.disk_loads;
}

void eval_config_default(EvalConfig *c) {
    memset(c, 0, sizeof *c);
    c->mode = AM_EVAL_FULL;
    c->layer = -1;
    c->dim = 0;
    c->pooling = -1;
    c->normalize = -1;
    c->max_len = 0;
    c->batch = 64;
}

/* ---------------------------------------------------------------- models and configs */

void evalrun_model_info(const EmbedModel *em, EvalModelInfo *out) {
    memset(out, 0, sizeof *out);
    if (em->id[0]) {
        snprintf(out->id, sizeof out->id, "%s", em->id);
    } else {
        size_t vlen = 0;
        const char *vt = vocab_text(em->vocab, &vlen);
        store_model_id(em->model, vt, vlen, out->id);
    }
    const EncoderConfig *cfg = &em->model->cfg;
    out->layers = cfg->num_layers;
    out->hidden = cfg->hidden_size;
    out->max_position = cfg->max_position;
    out->pooling = em->info.pooling;
    out->normalize = em->info.normalize;
    out->max_seq_length = em->info.max_seq_length;
    out->do_lower_case = em->info.do_lower_case;
    out->strip_accents = em->info.strip_accents;
}

int evalrun_model_info_meta(const char *id, const char *meta_json, EvalModelInfo *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", id);
    cJSON *j = cJSON_Parse(meta_json ? meta_json : "");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    const cJSON *L = cJSON_GetObjectItemCaseSensitive(cfg, "num_hidden_layers");
    const cJSON *C = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_size");
    const cJSON *P = cJSON_GetObjectItemCaseSensitive(cfg, "max_position_embeddings");
    if (!cJSON_IsNumber(L) || !cJSON_IsNumber(C) || !cJSON_IsNumber(P)) {
        cJSON_Delete(j);
        return am_error(AM_EFORMAT, "model %.12s: meta has no config (num_hidden_layers, hidden_size, "
                        "max_position_embeddings)", id);
    }
    out->layers = L->valueint;
    out->hidden = C->valueint;
    out->max_position = P->valueint;
    cJSON_Delete(j);
    HfInfo info;
    hf_info_default(&info);
    int rc = embed_info_from_meta(meta_json, &info);
    if (rc) return rc;
    if (info.max_seq_length <= 0 || info.max_seq_length > out->max_position) info.max_seq_length = out->max_position;
    out->pooling = info.pooling;
    out->normalize = info.normalize;
    out->max_seq_length = info.max_seq_length;
    out->do_lower_case = info.do_lower_case;
    out->strip_accents = info.strip_accents;
    return AM_OK;
}

int evalrun_resolve(const EvalModelInfo *mi, const EvalConfig *c, EvalResolved *out) {
    out->mode = c->mode;
    out->layer = c->layer < 0 ? mi->layers : c->layer;
    if (out->layer > mi->layers)
        return am_error(AM_EINVAL, "layer %d out of range: model %.12s has %d layers (0 = embeddings)", c->layer, mi->id,
                        mi->layers);
    out->dim = c->dim <= 0 ? mi->hidden : c->dim;
    if (out->dim > mi->hidden)
        return am_error(AM_EINVAL, "dim %d out of range: model %.12s has %d features", c->dim, mi->id, mi->hidden);
    out->pooling = c->pooling >= 0 ? c->pooling : mi->pooling;
    out->normalize = c->normalize >= 0 ? c->normalize : mi->normalize;
    out->max_len = c->max_len > 0 ? c->max_len : mi->max_seq_length;
    if (out->max_len > mi->max_position) out->max_len = mi->max_position;
    if (out->max_len < 2) return am_error(AM_EINVAL, "max_len %d too small (needs [CLS] and [SEP])", out->max_len);
    return AM_OK;
}

/* the resolved config for one task: quick mode may cap the tokens per text */
static EvalResolved for_task(const EvalResolved *rs, const EvalTask *t) {
    EvalResolved r = *rs;
    if (r.mode == AM_EVAL_QUICK && t->quick_max_len >= 2 && t->quick_max_len < r.max_len) r.max_len = t->quick_max_len;
    return r;
}

static int eff_experiments(const EvalTask *t, EvalMode m) {
    return m == AM_EVAL_QUICK && t->quick_experiments > 0 ? t->quick_experiments : t->experiments;
}
static int eff_cluster_sample(const EvalTask *t, EvalMode m) {
    return m == AM_EVAL_QUICK && t->quick_cluster_sample > 0 ? t->quick_cluster_sample : t->cluster_sample;
}

static const int retrieval_ks[] = AM_EVAL_DEFAULT_KS;
#define NKS AM_EVAL_DEFAULT_NKS

/* the canonical config object (fixed key order) */
static cJSON *config_json(const EvalResolved *rc, const EvalTask *t, const char *data_hash) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "runner", AM_EVALRUN_VERSION);
    cJSON_AddStringToObject(j, "mode", evalrun_mode_name(rc->mode));
    cJSON_AddStringToObject(j, "type", evalrun_type_name(t->type));
    cJSON_AddNumberToObject(j, "layer", rc->layer);
    cJSON_AddNumberToObject(j, "dim", rc->dim);
    cJSON_AddStringToObject(j, "pooling", pool_name(rc->pooling == AM_POOL_CLS ? AM_POOL_CLS : AM_POOL_MEAN));
    cJSON_AddBoolToObject(j, "normalize", rc->normalize);
    cJSON_AddNumberToObject(j, "max_len", rc->max_len);
    if (t->split) cJSON_AddStringToObject(j, "split", t->split);
    else cJSON_AddNullToObject(j, "split");
    if (t->format && strcmp(t->format, "auto") != 0) cJSON_AddStringToObject(j, "format", t->format);
    cJSON_AddNumberToObject(j, "seed", (double)t->seed);
    cJSON *p = cJSON_AddObjectToObject(j, "protocol");
    /* the protocols followed: MTEB v2's abstasks, and the scikit-learn they run on */
    cJSON_AddStringToObject(p, "mteb", AM_EVAL_MTEB_VERSION);
    cJSON_AddStringToObject(p, "similarity", "cosine");
    switch (t->type) {
    case AM_TASK_RETRIEVAL:
        cJSON_AddItemToObject(p, "ks", cJSON_CreateIntArray(retrieval_ks, NKS));
        cJSON_AddBoolToObject(p, "ignore_identical_ids", t->ignore_identical_ids);
        break;
    case AM_TASK_CLASSIFICATION:
        cJSON_AddNumberToObject(p, "samples_per_label", t->samples_per_label);
        cJSON_AddNumberToObject(p, "experiments", eff_experiments(t, rc->mode));
        cJSON_AddStringToObject(p, "classifier", "logreg(C=1,max_iter=100,tol=1e-4)");
        cJSON_AddStringToObject(p, "sklearn", am_sklearn_name(t->sklearn));
        break;
    case AM_TASK_CLUSTERING:
        cJSON_AddNumberToObject(p, "experiments", eff_experiments(t, rc->mode));
        cJSON_AddNumberToObject(p, "sample", eff_cluster_sample(t, rc->mode));
        cJSON_AddNumberToObject(p, "batch", 512);
        cJSON_AddStringToObject(p, "sklearn", am_sklearn_name(t->sklearn));
        break;
    case AM_TASK_BITEXT:
        cJSON_AddStringToObject(p, "candidates", t->candidate_pool ? "pool" : "one_to_one");
        break;
    default:
        break;
    }
    if (rc->mode == AM_EVAL_QUICK) {
        cJSON *q = cJSON_AddObjectToObject(j, "quick");
        cJSON_AddNumberToObject(q, "n", t->quick_n);
        if (t->type == AM_TASK_RETRIEVAL || (t->type == AM_TASK_BITEXT && t->candidate_pool))
            cJSON_AddNumberToObject(q, "docs", t->quick_docs);
        if (t->type == AM_TASK_CLASSIFICATION) cJSON_AddNumberToObject(q, "train", t->quick_train);
        /* labelled quick samples spread over the labels (evalrun_pick_stratified) */
        if (t->type == AM_TASK_CLASSIFICATION || t->type == AM_TASK_CLUSTERING) cJSON_AddStringToObject(q, "sample", "stratified");
    } else {
        cJSON_AddNullToObject(j, "quick");
    }
    cJSON_AddStringToObject(j, "data", data_hash);
    return j;
}

static void hash_config(const cJSON *cfg, char out[33]) {
    char *s = cJSON_PrintUnformatted(cfg);
    AM_ASSERT(s);
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, "amalgam-evalconfig|", 19);
    am_hasher_update(h, s, strlen(s));
    am_hasher_hex(h, out);
    am_hasher_delete(h);
    free(s);
}

/* the runner's TaskData for t: fingerprinted always, parsed when `parse` */
static int get_data(EvalRunner *r, const EvalTask *t, int parse, TaskData **out) {
    char key[33];
    evaltask_files_key(t, key);
    TaskData **pp = &r->data;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0) break;
    if (*pp) {
        TaskData *d = *pp;
        if (taskdata_fresh(d)) {
            int rc = parse ? taskdata_parse(t, d) : AM_OK;
            if (rc) return rc;
            d->used = am_now();
            *out = d;
            return AM_OK;
        }
        *pp = d->next;
        taskdata_delete(d);
    }
    TaskData *d = NULL;
    int rc = taskdata_load(t, parse, &d);
    if (rc) return rc;
    d->used = am_now();
    d->next = r->data;
    r->data = d;
    /* keep at most MAX_DATA: drop the least recently used */
    int n = 0;
    for (TaskData *x = r->data; x; x = x->next) n++;
    while (n-- > MAX_DATA) {
        TaskData **victim = NULL;
        for (TaskData **q = &r->data; *q; q = &(*q)->next)
            if (*q != d && (!victim || (*q)->used < (*victim)->used)) victim = q;
        if (!victim) break;
        TaskData *v = *victim;
        *victim = v->next;
        taskdata_delete(v);
    }
    *out = d;
    return AM_OK;
}

static int config_hash_resolved(EvalRunner *r, const EvalResolved *rs0, const EvalTask *t, char hash[33],
                                char **config_out, char data_hash[33]) {
    TaskData *d;
    int rc = get_data(r, t, 0, &d);
    if (rc) return rc;
    EvalResolved rs1 = for_task(rs0, t);
    const EvalResolved *rs = &rs1;
    cJSON *cfg = config_json(rs, t, d->data_hash);
    hash_config(cfg, hash);
    if (config_out) *config_out = cJSON_PrintUnformatted(cfg);
    if (data_hash) memcpy(data_hash, d->data_hash, 33);
    cJSON_Delete(cfg);
    return AM_OK;
}

int evalrun_config_hash(EvalRunner *r, const EvalModelInfo *mi, const EvalTask *t, const EvalConfig *c, char hash[33],
                        char **config_json_out) {
    if (config_json_out) *config_json_out = NULL;
    EvalResolved rs;
    int rc = evalrun_resolve(mi, c, &rs);
    if (rc) return rc;
    return config_hash_resolved(r, &rs, t, hash, config_json_out, NULL);
}

int evalrun_lookup(EvalRunner *r, Store *st, const EvalModelInfo *mi, const EvalTask *t, const EvalConfig *c,
                   char **result_json) {
    *result_json = NULL;
    char hash[33];
    int rc = evalrun_config_hash(r, mi, t, c, hash, NULL);
    if (rc) return rc;
    rc = evalrun_get_stored(st, mi->id, t->name, hash, result_json);
    if (rc == AM_OK) r->st.results_stored++;
    return rc;
}

/* ---------------------------------------------------------------- embedding */

static int embed_info(EvalRunner *r, EmbedModel *em, const EvalModelInfo *mi, const EvalResolved *c, int batch,
                      const char *disk_dir, const char *group, const char *const *texts, int n, float *out,
                      int *encoded, EmbedProgress progress, void *ud) {
    EmbSpaceKey k = {.model_id = mi->id, .layer = c->layer, .pooling = c->pooling, .max_len = c->max_len,
                     .do_lower_case = mi->do_lower_case, .strip_accents = mi->strip_accents, .hidden = mi->hidden};
    return embcache_embed(r->cache, em, &k, batch, disk_dir, group, texts, n, c->dim, c->normalize, out, encoded,
                          progress, ud);
}

int evalrun_embed(EvalRunner *r, EmbedModel *em, const EvalResolved *c, int batch, const char *disk_dir,
                  const char *group, const char *const *texts, int n, float *out, int *encoded,
                  EmbedProgress progress, void *ud) {
    EvalModelInfo mi;
    evalrun_model_info(em, &mi);
    return embed_info(r, em, &mi, c, batch, disk_dir, group, texts, n, out, encoded, progress, ud);
}

/* ---------------------------------------------------------------- evaluation */

typedef struct {
    const EvalConfig *c;
    const char *task;
} ProgCtx;

static int emit(const EvalConfig *c, const char *task, int stage, int done, int total) {
    if (!c->progress) return 0;
    EvalProgress p = {stage, task, done, total};
    return c->progress(c->ud, &p);
}

static int encode_progress(void *ud, int done, int total) {
    ProgCtx *p = ud;
    return emit(p->c, p->task, AM_EVAL_STAGE_ENCODE, done, total);
}

static void iso_now(char *buf, size_t n) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* a result and its per-example scores ('x' key), written in one transaction */
typedef struct {
    uint8_t key[512];
    size_t kl, bl;
    const char *json;
    void *blob;
} ResultPut;

static int put_result(StoreTxn *txn, void *ud) {
    ResultPut *w = ud;
    int rc = store_txn_put(txn, "results", w->key, w->kl, w->json, strlen(w->json));
    if (!rc && w->blob) {
        uint8_t kx[sizeof w->key];
        memcpy(kx, w->key, w->kl);
        kx[w->kl] = 0;
        kx[w->kl + 1] = 'x';
        rc = store_txn_put(txn, "results", kx, w->kl + 2, w->blob, w->bl);
    }
    return rc;
}

int evalrun_task(EvalRunner *r, Store *st, EmbedModel *em, const EvalTask *t, const EvalConfig *c, char **result_json,
                 int *from_store) {
    *result_json = NULL;
    if (from_store) *from_store = 0;
    double t0 = am_now();
    EvalModelInfo mi;
    if (c->model_id && strlen(c->model_id) == AM_ID_HEX && !em->id[0]) {
        EmbedModel tmp = *em;             /* the caller knows the content id: skip hashing weights */
        memcpy(tmp.id, c->model_id, AM_ID_HEX + 1);
        evalrun_model_info(&tmp, &mi);
    } else {
        evalrun_model_info(em, &mi);
    }
    EvalResolved rs;
    int rc = evalrun_resolve(&mi, c, &rs);
    if (rc) return rc;
    rs = for_task(&rs, t);
    char hash[33], data_hash[33];
    if ((rc = config_hash_resolved(r, &rs, t, hash, NULL, data_hash))) return rc;
    if (st && !(c->flags & AM_EVAL_FORCE)) {
        char *json = NULL;
        rc = evalrun_get_stored(st, mi.id, t->name, hash, &json);
        if (rc == AM_OK) {
            r->st.results_stored++;
            if (from_store) *from_store = 1;
            *result_json = json;
            emit(c, t->name, AM_EVAL_STAGE_DONE, 1, 1);
            return AM_OK;
        }
        if (rc != AM_ENOTFOUND) return rc;
    }
    if (emit(c, t->name, AM_EVAL_STAGE_LOAD, 0, 1)) return am_error(AM_EINTR, "evaluation interrupted");
    TaskData *d;
    if ((rc = get_data(r, t, 1, &d))) return rc;
    EvalInst in;
    if ((rc = evalinst_build(t, d, rs.mode, &in))) return rc;
    double t1 = am_now();
    /* embed the unique texts */
    float *X = am_alloc_floats((size_t)(in.ntexts ? in.ntexts : 1) * rs.dim);
    if (!X) {
        evalinst_free(&in);
        return am_error(AM_ENOMEM, "task '%s': %d x %d embeddings", t->name, in.ntexts, rs.dim);
    }
    char *disk = NULL;
    /* not for a merge kept as its recipe (sweep points, the Merge panel's slider positions): its
     * results are stored, its embeddings are rarely asked for again, and each such model would
     * add a cache directory (and a scan of the cache per write) */
    if (st && !(c->flags & AM_EVAL_NO_DISK_CACHE) && !em->recipe_only)
        disk = xasprintf("%s/cache/emb", store_dir(st));
    ProgCtx pc = {c, t->name};
    int encoded = 0;
    if (emit(c, t->name, AM_EVAL_STAGE_ENCODE, 0, in.ntexts)) rc = am_error(AM_EINTR, "evaluation interrupted");
    if (!rc) rc = embed_info(r, em, &mi, &rs, c->batch, disk, data_hash, in.texts, in.ntexts, X, &encoded,
                             encode_progress, &pc);
    free(disk);
    double t2 = am_now();
    cJSON *res = NULL, *scores = NULL, *sizes = NULL;
    PerExample px = {0};
    if (!rc && emit(c, t->name, AM_EVAL_STAGE_SCORE, 0, 1)) rc = am_error(AM_EINTR, "evaluation interrupted");
    if (!rc) {
        scores = cJSON_CreateObject();
        sizes = cJSON_CreateObject();
        if (in.size_a) cJSON_AddNumberToObject(sizes, in.size_a, in.na);
        if (in.size_b) cJSON_AddNumberToObject(sizes, in.size_b, in.nb);
        cJSON_AddNumberToObject(sizes, "texts", in.ntexts);
        cJSON_AddNumberToObject(sizes, "encoded", encoded);
        rc = evalrun_score(t, &in, X, rs.dim, scores, sizes, &px);
    }
    am_free_aligned(X);
    evalinst_free(&in);
    double t3 = am_now();
    am_phase_add(AM_PHASE_DATA, t1 - t0);
    if (rc) {
        cJSON_Delete(scores);
        cJSON_Delete(sizes);
        px_free(&px);
        return rc;
    }
    /* main score */
    const char *main = t->main_metric ? t->main_metric : evalrun_type_main_metric(t->type);
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(scores, main);
    if (!mv) {
        cJSON_Delete(scores);
        cJSON_Delete(sizes);
        px_free(&px);
        return am_error(AM_EINVAL, "task '%s': main metric '%s' is not among the %s scores", t->name, main,
                        evalrun_type_name(t->type));
    }
    double main_score = cJSON_IsNumber(mv) ? mv->valuedouble : (double)NAN;
    evalrun_add_num(scores, "main_score", main_score);
    int nboot = rs.mode == AM_EVAL_QUICK ? AM_EVAL_BOOT_B_QUICK : AM_EVAL_BOOT_B;
    double se = px.kind ? px_bootstrap_se(&px, nboot, (uint32_t)t->seed) : (double)NAN;
    double t4 = am_now();
    am_phase_add(AM_PHASE_METRICS, t4 - t2);

    res = cJSON_CreateObject();
    cJSON_AddNumberToObject(res, "version", 1);
    cJSON_AddStringToObject(res, "model", mi.id);
    cJSON_AddStringToObject(res, "task", t->name);
    if (t->dataset) cJSON_AddStringToObject(res, "dataset", t->dataset);
    else cJSON_AddNullToObject(res, "dataset");
    cJSON_AddStringToObject(res, "type", evalrun_type_name(t->type));
    if (t->tag) cJSON_AddStringToObject(res, "tag", t->tag);
    else cJSON_AddNullToObject(res, "tag");
    cJSON_AddStringToObject(res, "mode", evalrun_mode_name(rs.mode));
    cJSON_AddStringToObject(res, "config_hash", hash);
    cJSON_AddStringToObject(res, "data_hash", data_hash);
    cJSON_AddItemToObject(res, "config", config_json(&rs, t, data_hash));
    cJSON_AddItemToObject(res, "scores", scores);
    cJSON_AddStringToObject(res, "main_metric", main);
    evalrun_add_num(res, "main_score", main_score);
    evalrun_add_num(res, "main_se", se);
    if (px.kind) {
        cJSON *u = cJSON_AddObjectToObject(res, "uncertainty");
        cJSON_AddStringToObject(u, "method", "bootstrap");
        cJSON_AddStringToObject(u, "unit", t->type == AM_TASK_CLUSTERING ? "experiments"
                                : t->type == AM_TASK_RETRIEVAL ? "queries"
                                : t->type == AM_TASK_CLASSIFICATION ? "test_rows"
                                : t->type == AM_TASK_BITEXT ? "sources" : "pairs");
        cJSON_AddNumberToObject(u, "n", px.n);
        cJSON_AddNumberToObject(u, "replicates", nboot);
        cJSON_AddNumberToObject(u, "seed", (double)(uint32_t)t->seed);
        cJSON_AddBoolToObject(u, "per_example", 1);
        evalrun_add_num(u, "time", t4 - t3);
    }
    cJSON_AddItemToObject(res, "sizes", sizes);
    cJSON *tm = cJSON_AddObjectToObject(res, "time");
    evalrun_add_num(tm, "load", t1 - t0);
    evalrun_add_num(tm, "encode", t2 - t1);
    evalrun_add_num(tm, "score", t3 - t2);
    evalrun_add_num(tm, "total", t3 - t0);
    char now[32];
    iso_now(now, sizeof now);
    cJSON_AddStringToObject(res, "created", now);
    char *json = cJSON_PrintUnformatted(res);
    cJSON_Delete(res);
    AM_ASSERT(json);
    r->st.results_computed++;
    if (st && !(c->flags & AM_EVAL_NO_STORE)) {
        double ts = am_now();
        ResultPut w = {.json = json};
        w.kl = evalrun_result_key(w.key, sizeof w.key - 2, mi.id, t->name, hash);
        if (!w.kl) rc = am_error(AM_EINVAL, "task name '%s' too long for a results key", t->name);
        else {
            if (px.kind) w.blob = px_encode(&px, &w.bl);
            rc = store_write(st, strlen(json) + w.bl + 2 * w.kl, put_result, &w); /* one commit (one sync) */
            free(w.blob);
        }
        am_phase_add(AM_PHASE_STORE, am_now() - ts);
        if (rc) {
            free(json);
            px_free(&px);
            return rc;
        }
    }
    px_free(&px);
    emit(c, t->name, AM_EVAL_STAGE_DONE, 1, 1);
    *result_json = json;
    return AM_OK;
}
