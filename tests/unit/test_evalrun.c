/* test_evalrun.c - the evaluation runner (src/evalrun) on the fixtures of tests/ref/evalrun/
 * (gen_fixtures.py) with the tiny HF fixture model (tests/ref/hf/bert_tiny):
 *   - every task type's scores equal a direct computation (embed_model_encode + metrics.h);
 *   - the embedding cache: a second run encodes nothing, dims are derived exactly, another layer
 *     is another space, the disk cache serves a fresh runner, a corrupt cache file is ignored;
 *   - quick subsamples are deterministic and keep the judged docs;
 *   - results are stored, reused, listed, and keyed by a config hash that follows layer/dim/mode;
 *   - bad specs and files give clear errors; a cancelled evaluation stores nothing. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "embed.h"
#include "evalrun.h"
#include "evalrun_internal.h"
#include "harness.h"
#include "store_gc.h"
#include "metrics.h"
#include "tensor.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef AM_TEST_DIR
#define AM_TEST_DIR "tests"
#endif
#define FX AM_TEST_DIR "/ref/evalrun"

static EmbedModel *g_em;
static char g_tmp[64];

static EmbedModel *load_model(void) {
    Model *m = NULL;
    Vocab *v = NULL;
    HfInfo info;
    int rc = hf_import(AM_TEST_DIR "/ref/hf/bert_tiny", &m, &v, &info);
    if (rc) { printf("hf_import: %s\n", am_lasterror()); exit(1); }
    EmbedModel *em = NULL;
    rc = embed_model_wrap(m, v, &info, &em);
    if (rc) { printf("embed_model_wrap: %s\n", am_lasterror()); exit(1); }
    return em;
}

static char *tmpdir(const char *tag) {
    char *d = xasprintf("%s/%s", g_tmp, tag);
    am_mkdir_p(d);
    return d;
}

static void make_task(EvalTask *t, const char *name, EvalTaskType type, const char *path) {
    evaltask_init(t);
    t->name = xstrdup(name);
    t->type = type;
    t->path = xstrdup(path);
}

static double jget(const char *json, const char *obj, const char *key) {
    cJSON *j = cJSON_Parse(json);
    const cJSON *o = obj ? cJSON_GetObjectItemCaseSensitive(j, obj) : j;
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    double v = cJSON_IsNumber(x) ? x->valuedouble : (double)NAN;
    cJSON_Delete(j);
    return v;
}

static char *jstr(const char *json, const char *key) {
    cJSON *j = cJSON_Parse(json);
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    char *s = cJSON_IsString(x) ? xstrdup(x->valuestring) : NULL;
    cJSON_Delete(j);
    return s;
}

/* evaluate in memory only (no store, no disk cache) */
static char *run_mem(EvalRunner *r, const EvalTask *t, EvalMode mode, int layer, int dim) {
    EvalConfig c;
    eval_config_default(&c);
    c.mode = mode;
    c.layer = layer;
    c.dim = dim;
    char *json = NULL;
    int rc = evalrun_task(r, NULL, g_em, t, &c, &json, NULL);
    if (rc) printf("  evalrun_task(%s): %s\n", t->name, am_lasterror());
    return json;
}

static float *encode(const char *const *texts, int n, int dim) {
    EmbedOptions o;
    embed_options_default(&o);
    o.dim = dim;
    float *x = xmalloc((size_t)(n ? n : 1) * embed_model_dim(g_em, &o) * sizeof *x);
    int rc = embed_model_encode(g_em, texts, n, &o, x, NULL, NULL);
    if (rc) printf("  encode: %s\n", am_lasterror());
    return x;
}

static char *strip_doc(const char *title, const char *text) {
    char *s = xasprintf("%s %s", title, text), *b = s;
    while (*b == ' ') b++;
    size_t n = strlen(b);
    while (n && b[n - 1] == ' ') n--;
    memmove(s, b, n);
    s[n] = 0;
    return s;
}

/* ------------------------------------------------------------------ direct computations */

/* json (a bitext run) has the f1 and accuracy eval_bitext gives for src against the targets
 * (gold NULL: row i's is target i) */
static BitextScores check_bitext(const char *json, const char *const *src, int n, const char *const *tgt, int nt,
                                 const int *gold) {
    float *S = encode(src, n, 0), *T = encode(tgt, nt, 0);
    BitextScores bs = {0};
    CHECK_OK(eval_bitext(&bs, S, n, T, nt, embed_model_dim(g_em, NULL), gold));
    CHECK(json != NULL);
    if (json) {
        CHECK_NEAR(jget(json, "scores", "f1"), bs.f1, 1e-9);
        CHECK_NEAR(jget(json, "scores", "accuracy"), bs.accuracy, 1e-9);
    }
    free(S);
    free(T);
    return bs;
}

TEST(retrieval_matches_direct) {
    EvalRunner *r = evalrun_new();
    EvalTask t;
    make_task(&t, "ret", AM_TASK_RETRIEVAL, FX "/beir");
    char *json = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    CHECK(json != NULL);
    /* direct: BEIR test split, queries with judgments, the whole corpus */
    Dataset *ds = NULL;
    CHECK_OK(dataset_load_beir(FX "/beir", "test", &ds));
    int nd = (int)ds->n_docs, nq = 0;
    const char **dt = xmalloc((size_t)nd * sizeof *dt);
    for (int i = 0; i < nd; i++) dt[i] = strip_doc(ds->doc_title[i], ds->doc_text[i]);
    int *has = xcalloc((size_t)ds->n, sizeof *has), *qrow = xmalloc((size_t)ds->n * sizeof *qrow);
    for (int64_t i = 0; i < ds->n_qrels; i++) has[ds->qrel_query[i]] = 1;
    for (int q = 0; q < ds->n; q++)
        if (has[q]) qrow[nq++] = q;
    const char **qt = xmalloc((size_t)nq * sizeof *qt);
    for (int i = 0; i < nq; i++) qt[i] = ds->text[qrow[i]];
    int *off = xcalloc((size_t)nq + 1, sizeof *off), *doc = xmalloc((size_t)ds->n_qrels * sizeof *doc),
        *grade = xmalloc((size_t)ds->n_qrels * sizeof *grade);
    int k = 0;
    for (int i = 0; i < nq; i++) {
        for (int64_t j = 0; j < ds->n_qrels; j++)
            if (ds->qrel_query[j] == qrow[i]) { doc[k] = (int)ds->qrel_doc[j]; grade[k++] = ds->qrel_grade[j]; }
        off[i + 1] = k;
    }
    float *Q = encode(qt, nq, 0), *D = encode(dt, nd, 0);
    int dim = embed_model_dim(g_em, NULL);
    Qrels qr = {nq, off, doc, grade};
    RetrievalOptions o = {.sim = AM_SIM_COSINE, .doc_ids = ds->doc_id};
    const int ks[] = AM_EVAL_DEFAULT_KS;
    RetrievalScores rs;
    CHECK_OK(eval_retrieval(&rs, Q, nq, D, nd, dim, &qr, ks, AM_EVAL_DEFAULT_NKS, &o));
    if (json) {
        CHECK_NEAR(jget(json, "scores", "ndcg_at_10"), rs.ndcg[3], 1e-6);
        CHECK_NEAR(jget(json, "scores", "mrr_at_10"), rs.mrr[3], 1e-6);
        CHECK_NEAR(jget(json, "scores", "recall_at_1"), rs.recall[0], 1e-6);
        CHECK_NEAR(jget(json, "scores", "recall_at_100"), rs.recall[5], 1e-6);
        CHECK_NEAR(jget(json, "scores", "map_at_100"), rs.map[5], 1e-6);
        CHECK_NEAR(jget(json, "scores", "hit_rate_at_1"), rs.hit_rate[0], 1e-12);
        CHECK_NEAR(jget(json, "scores", "hit_rate_at_10"), rs.hit_rate[3], 1e-12);
        CHECK(rs.hit_rate[3] > 0 && rs.hit_rate[3] >= rs.recall[3] - 1e-12);
        CHECK(strstr(json, "\"mteb\":\"2\"") != NULL && strstr(json, "\"ignore_identical_ids\":false") != NULL);
        CHECK_NEAR(jget(json, NULL, "main_score"), rs.ndcg[3], 1e-6);
        CHECK_EQ_INT(jget(json, "sizes", "queries"), 12);
        CHECK_EQ_INT(jget(json, "sizes", "docs"), 40);
        char *mode = jstr(json, "mode"), *ty = jstr(json, "type");
        CHECK(mode && strcmp(mode, "full") == 0);
        CHECK(ty && strcmp(ty, "retrieval") == 0);
        free(mode);
        free(ty);
    }
    for (int i = 0; i < nd; i++) free((char *)dt[i]);
    free(dt); free(qt); free(has); free(qrow); free(off); free(doc); free(grade); free(Q); free(D); free(json);
    dataset_delete(ds);
    /* a split that does not exist is a clear error */
    free(t.split);
    t.split = xstrdup("nope");
    char *j2 = NULL;
    EvalConfig c;
    eval_config_default(&c);
    CHECK(evalrun_task(r, NULL, g_em, &t, &c, &j2, NULL) == AM_ENOTFOUND);
    CHECK(strstr(am_lasterror(), "no qrels split 'nope'") != NULL && strstr(am_lasterror(), "dev, test") != NULL);
    evaltask_free(&t);
    evalrun_delete(r);
}

TEST(sts_and_pairclass_match_direct) {
    EvalRunner *r = evalrun_new();
    EvalTask t;
    make_task(&t, "sts", AM_TASK_STS, FX "/sts.tsv");
    char *json = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    Dataset *ds = NULL;
    CHECK_OK(dataset_load(AM_DS_GRADED, FX "/sts.tsv", AM_FMT_AUTO, &ds));
    int n = (int)ds->n, dim = embed_model_dim(g_em, NULL);
    float *A = encode(ds->text, n, 0), *B = encode(ds->text2, n, 0);
    StsScores s;
    CHECK_OK(eval_sts(&s, A, B, ds->score, n, dim));
    CHECK(json != NULL);
    if (json) {
        CHECK_NEAR(jget(json, "scores", "cosine_spearman"), s.cosine_spearman, 1e-9);
        CHECK_NEAR(jget(json, "scores", "cosine_pearson"), s.cosine_pearson, 1e-6);
        CHECK_NEAR(jget(json, NULL, "main_score"), s.cosine_spearman, 1e-9);
        CHECK_EQ_INT(jget(json, "sizes", "pairs"), 24);
    }
    free(A); free(B); free(json);
    dataset_delete(ds);
    evaltask_free(&t);

    make_task(&t, "pc", AM_TASK_PAIRCLASS, FX "/pairclass.jsonl");
    json = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    CHECK_OK(dataset_load(AM_DS_GRADED, FX "/pairclass.jsonl", AM_FMT_AUTO, &ds));
    n = (int)ds->n;
    int *lab = xmalloc((size_t)n * sizeof *lab);
    for (int i = 0; i < n; i++) lab[i] = ds->score[i] == 1.0;
    A = encode(ds->text, n, 0);
    B = encode(ds->text2, n, 0);
    PairClassScores p;
    CHECK_OK(eval_pair_classification(&p, A, B, lab, n, dim));
    CHECK(json != NULL);
    if (json) {
        CHECK_NEAR(jget(json, "scores", "max_ap"), p.max_ap, 1e-6);
        CHECK_NEAR(jget(json, "scores", "cosine_ap"), p.cosine.ap, 1e-6);
        CHECK_NEAR(jget(json, NULL, "main_score"), p.max_ap, 1e-6);
    }
    free(A); free(B); free(lab); free(json);
    dataset_delete(ds);
    evaltask_free(&t);
    evalrun_delete(r);
}

TEST(classification_clustering_bitext_match_direct) {
    EvalRunner *r = evalrun_new();
    int dim = embed_model_dim(g_em, NULL);
    /* classification: train.jsonl beside test.jsonl; only the undersampled rows are encoded */
    EvalTask t;
    make_task(&t, "cls", AM_TASK_CLASSIFICATION, FX "/labels");
    char *json = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    Dataset *tr = NULL, *te = NULL;
    CHECK_OK(dataset_load(AM_DS_LABELLED, FX "/labels/train.jsonl", AM_FMT_AUTO, &tr));
    CHECK_OK(dataset_load(AM_DS_LABELLED, FX "/labels/test.jsonl", AM_FMT_AUTO, &te));
    float *X = encode(tr->text, (int)tr->n, 0), *Y = encode(te->text, (int)te->n, 0);
    ClassifOptions o;
    classif_options_default(&o);
    ClassifScores cs;
    CHECK_OK(eval_classification(&cs, X, tr->label, (int)tr->n, Y, te->label, (int)te->n, dim, tr->n_labels, &o));
    CHECK(json != NULL);
    if (json) {
        CHECK_NEAR(jget(json, "scores", "accuracy"), cs.accuracy, 1e-9);
        CHECK_NEAR(jget(json, "scores", "f1"), cs.f1, 1e-9);
        CHECK_EQ_INT(jget(json, "sizes", "train"), 45);
        CHECK_EQ_INT(jget(json, "sizes", "test"), 24);
        double emb = jget(json, "sizes", "train_embedded"); /* union of 10 draws of 8 per label */
        CHECKF(emb >= 24 && emb <= 45, "train_embedded %g", emb);
    }
    free(X); free(Y); free(json);
    dataset_delete(tr);
    dataset_delete(te);
    evaltask_free(&t);

    make_task(&t, "clu", AM_TASK_CLUSTERING, FX "/clustering.jsonl");
    t.cluster_sample = 64;
    t.experiments = 3;
    json = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    Dataset *cl = NULL;
    CHECK_OK(dataset_load(AM_DS_LABELLED, FX "/clustering.jsonl", AM_FMT_AUTO, &cl));
    X = encode(cl->text, (int)cl->n, 0);
    ClusterOptions co;
    cluster_options_default(&co);
    co.sample_size = 64;
    co.n_experiments = 3;
    ClusterScores ks;
    CHECK_OK(eval_clustering(&ks, X, cl->label, (int)cl->n, dim, &co));
    CHECK(json != NULL);
    if (json) CHECK_NEAR(jget(json, "scores", "v_measure"), ks.v_measure, 1e-9);
    free(X); free(json);
    dataset_delete(cl);
    evaltask_free(&t);

    /* bitext, MTEB's one-to-one default: row i's source against every row's target (the first
     * positive; negatives unused), gold = row i */
    make_task(&t, "bt", AM_TASK_BITEXT, FX "/bitext.jsonl");
    json = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    Dataset *bt = NULL;
    CHECK_OK(dataset_load(AM_DS_PAIRS, FX "/bitext.jsonl", AM_FMT_AUTO, &bt));
    int n = (int)bt->n;
    {
        const char **tg1 = xmalloc((size_t)n * sizeof *tg1);
        for (int i = 0; i < n; i++) tg1[i] = bt->pos[bt->pos_start[i]];
        BitextScores bs = check_bitext(json, bt->text, n, tg1, n, NULL);
        if (json) {
            CHECK_NEAR(jget(json, NULL, "main_score"), bs.f1, 1e-9);
            CHECK_EQ_INT(jget(json, "sizes", "targets"), n);
            CHECK(strstr(json, "\"candidates\":\"one_to_one\"") != NULL);
        }
        free(tg1); free(json);
        /* duplicate targets stay separate rows (MTEB): rows 0 and 1 with one target text */
        char *dd = tmpdir("bitext_dup");
        char *fp = xasprintf("%s/bt.jsonl", dd);
        FILE *f = fopen(fp, "w");
        fprintf(f, "{\"query\": \"cat dog\", \"positive\": \"model merge\"}\n"
                   "{\"query\": \"dog cat\", \"positive\": \"model merge\"}\n"
                   "{\"query\": \"text token\", \"positive\": \"text token word\", \"negative\": \"cat\"}\n");
        fclose(f);
        EvalTask td;
        make_task(&td, "btdup", AM_TASK_BITEXT, fp);
        char *jd = run_mem(r, &td, AM_EVAL_FULL, -1, 0);
        CHECK(jd != NULL);
        if (jd) {
            CHECK_EQ_INT(jget(jd, "sizes", "targets"), 3);
            CHECK_EQ_INT(jget(jd, "sizes", "texts"), 5);          /* embedded once */
            CHECKF(jget(jd, "scores", "accuracy") < 0.99, "accuracy %g: one duplicate row must miss", jget(jd, "scores", "accuracy"));
        }
        free(jd);
        td.candidate_pool = 1;                                    /* pool: 3 distinct targets, both rows right */
        jd = run_mem(r, &td, AM_EVAL_FULL, -1, 0);
        if (jd) CHECK_EQ_INT(jget(jd, "sizes", "targets"), 3);
        free(jd);
        evaltask_free(&td);
        free(fp); free(dd);
    }
    /* the candidate pool (#candidate_pool): every distinct positive and negative */
    t.candidate_pool = 1;
    json = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    /* targets: positives then negatives in order of appearance (all distinct here) */
    const char **tg = xmalloc((size_t)2 * n * sizeof *tg);
    int *gold = xmalloc((size_t)n * sizeof *gold), nt = 0;
    for (int i = 0; i < n; i++) {
        gold[i] = nt;
        tg[nt++] = bt->pos[bt->pos_start[i]];
        tg[nt++] = bt->neg[bt->neg_start[i]];
    }
    check_bitext(json, bt->text, n, tg, nt, gold);
    if (json) {
        CHECK_EQ_INT(jget(json, "sizes", "targets"), 30);
        CHECK(strstr(json, "\"candidates\":\"pool\"") != NULL);
    }
    free(tg); free(gold); free(json);
    dataset_delete(bt);
    evaltask_free(&t);
    evalrun_delete(r);
}

/* ignore_identical_ids: a BEIR set whose queries are also docs (ArguAna-like). The query's own
 * doc ranks first; MTEB drops it for such tasks, and so does the option. */
TEST(retrieval_ignore_identical_ids) {
    char *dir = tmpdir("selfret");
    char *qd = xasprintf("%s/qrels", dir);
    am_mkdir_p(qd);
    static const char *const docs[][2] = {
        {"a", "cat cats dog model"}, {"b", "merge merged model text"}, {"c", "token tokenizer word text"},
        {"d", "dog cat cats on"}, {"e", "model merge merged runner"}, {"f", "tokenizer token words texts"},
        {"g", "hello that with was"}, {"h", "runner runner in on"}};
    char *p = xasprintf("%s/corpus.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 8; i++) fprintf(f, "{\"_id\": \"%s\", \"text\": \"%s\"}\n", docs[i][0], docs[i][1]);
    fclose(f);
    free(p);
    p = xasprintf("%s/queries.jsonl", dir);
    f = fopen(p, "w");
    for (int i = 0; i < 3; i++) fprintf(f, "{\"_id\": \"%s\", \"text\": \"%s\"}\n", docs[i][0], docs[i][1]);
    fclose(f);
    free(p);
    p = xasprintf("%s/test.tsv", qd);
    f = fopen(p, "w");
    fprintf(f, "query-id\tcorpus-id\tscore\na\td\t1\nb\te\t1\nc\tf\t1\n");
    fclose(f);
    free(p);
    EvalRunner *r = evalrun_new();
    EvalTask t;
    make_task(&t, "self", AM_TASK_RETRIEVAL, dir);
    char *j0 = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    const char *tail[4] = {0};
    int nt = am_log_tail(tail, 4), warned = 0;
    for (int i = 0; i < nt; i++) warned |= tail[i] && strstr(tail[i], "3 of 3 query ids are also doc ids") != NULL;
    CHECKF(warned, "no warning about identical ids (last log: %s)", nt ? tail[nt - 1] : "-");
    EvalTask t1;
    CHECK_OK(evaltask_from_spec(&t1, "beir:x#ignore_identical_ids"));
    CHECK(t1.ignore_identical_ids == 1 && t1.split == NULL);
    free(t1.path);
    t1.path = xstrdup(dir);
    char *j1 = run_mem(r, &t1, AM_EVAL_FULL, -1, 0);
    CHECK(j0 && j1);
    /* direct: the same ranking with and without the self docs (queries a, b, c = docs 0, 1, 2) */
    const char *dt[8], *qt[3], *ids[8];
    for (int i = 0; i < 8; i++) { dt[i] = docs[i][1]; ids[i] = docs[i][0]; }
    for (int i = 0; i < 3; i++) qt[i] = docs[i][1];
    float *Q = encode(qt, 3, 0), *D = encode(dt, 8, 0);
    int dim = embed_model_dim(g_em, NULL);
    int off[4] = {0, 1, 2, 3}, jd[3] = {3, 4, 5}, jg[3] = {1, 1, 1}, self[3] = {0, 1, 2};
    Qrels qr = {3, off, jd, jg};
    const int ks[] = AM_EVAL_DEFAULT_KS;
    RetrievalOptions o = {.sim = AM_SIM_COSINE, .doc_ids = ids};
    RetrievalScores keep, drop;
    CHECK_OK(eval_retrieval(&keep, Q, 3, D, 8, dim, &qr, ks, AM_EVAL_DEFAULT_NKS, &o));
    o.self_doc = self;
    CHECK_OK(eval_retrieval(&drop, Q, 3, D, 8, dim, &qr, ks, AM_EVAL_DEFAULT_NKS, &o));
    if (j0 && j1) {
        CHECK_NEAR(jget(j0, "scores", "ndcg_at_10"), keep.ndcg[3], 1e-9);
        CHECK_NEAR(jget(j1, "scores", "ndcg_at_10"), drop.ndcg[3], 1e-9);
        CHECK_NEAR(jget(j1, "scores", "mrr_at_1"), drop.mrr[0], 1e-9);
        CHECK_NEAR(jget(j0, "scores", "mrr_at_1"), 0.0, 1e-12);  /* the query's own text ranks first */
        CHECKF(drop.ndcg[3] > keep.ndcg[3], "ndcg %g (ignored) vs %g (kept)", drop.ndcg[3], keep.ndcg[3]);
        CHECK_EQ_INT(jget(j1, "sizes", "identical_ids"), 3);
        CHECK(strstr(j1, "\"ignore_identical_ids\":true") != NULL);
        CHECK(strcmp(jstr(j0, "config_hash"), jstr(j1, "config_hash")) != 0);
    }
    free(Q); free(D); free(j0); free(j1); free(qd); free(dir);
    evaltask_free(&t);
    evaltask_free(&t1);
    evalrun_delete(r);
}

/* ------------------------------------------------------------------ cache */

TEST(cache_second_run_encodes_nothing) {
    EvalRunner *r = evalrun_new();
    EvalTask t;
    make_task(&t, "ret", AM_TASK_RETRIEVAL, FX "/beir");
    EvalRunnerStats s0, s1, s2, s3;
    char *j1 = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    evalrun_stats(r, &s0);
    CHECK_EQ_INT(s0.encode_calls, 1);
    CHECK_EQ_INT(s0.texts_encoded, 52);           /* 12 queries + 40 docs, all distinct */
    char *j2 = run_mem(r, &t, AM_EVAL_FULL, -1, 0);
    evalrun_stats(r, &s1);
    CHECK_EQ_INT(s1.encode_calls, 1);             /* nothing encoded the second time */
    CHECK_EQ_INT(s1.texts_encoded, 52);
    CHECK(j1 && j2 && jget(j1, NULL, "main_score") == jget(j2, NULL, "main_score"));
    CHECK_EQ_INT(jget(j2, "sizes", "encoded"), 0);
    /* quick mode reuses the same texts; a truncated dim is derived from cached rows */
    char *j3 = run_mem(r, &t, AM_EVAL_QUICK, -1, 0);
    char *j4 = run_mem(r, &t, AM_EVAL_FULL, -1, 16);
    evalrun_stats(r, &s2);
    CHECK_EQ_INT(s2.encode_calls, 1);
    /* another layer is another space */
    char *j5 = run_mem(r, &t, AM_EVAL_FULL, 1, 0);
    evalrun_stats(r, &s3);
    CHECK_EQ_INT(s3.encode_calls, 2);
    CHECK_EQ_INT(s3.texts_encoded, 104);
    free(j1); free(j2); free(j3); free(j4); free(j5);
    evaltask_free(&t);
    evalrun_delete(r);
}

TEST(cache_dim_and_normalize_exact) {
    EvalRunner *r = evalrun_new();
    const char *texts[] = {"hello world", "the cat and the dog", "merge the models", "hello world"};
    EvalModelInfo mi;
    evalrun_model_info(g_em, &mi);
    CHECK_EQ_INT(strlen(mi.id), 32);
    for (int v = 0; v < 4; v++) {
        EvalConfig c;
        eval_config_default(&c);
        c.dim = v & 1 ? 16 : 0;
        c.normalize = v >> 1;
        EvalResolved rs;
        CHECK_OK(evalrun_resolve(&mi, &c, &rs));
        float got[4 * 32], want[4 * 32];
        int enc = -1;
        CHECK_OK(evalrun_embed(r, g_em, &rs, 64, NULL, NULL, texts, 4, got, &enc, NULL, NULL));
        CHECK_EQ_INT(enc, v == 0 ? 3 : 0);        /* duplicates encoded once; later variants derived */
        EmbedOptions o;
        embed_options_default(&o);
        o.dim = c.dim;
        o.normalize = c.normalize;
        CHECK_OK(embed_model_encode(g_em, texts, 4, &o, want, NULL, NULL));
        double md = 0;
        for (int i = 0; i < 4 * rs.dim; i++) md = fmax(md, fabs((double)got[i] - (double)want[i]));
        CHECKF(md < 1e-6, "variant %d: max diff %g", v, md);
    }
    evalrun_delete(r);
}

static int count_files(const char *dir, const char *suffix) {
    char *cmd = xasprintf("find '%s' -name '*%s' 2>/dev/null | wc -l", dir, suffix);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    free(cmd);
    return n;
}

TEST(disk_cache_serves_a_fresh_runner) {
    char *sd = tmpdir("store_disk");
    Store *st = NULL;
    CHECK_OK(store_open(sd, 0, &st));
    EvalTask t;
    make_task(&t, "sts", AM_TASK_STS, FX "/sts.tsv");
    EvalConfig c;
    eval_config_default(&c);
    c.flags = AM_EVAL_NO_STORE;
    char *j1 = NULL, *j2 = NULL, *j3 = NULL;
    EvalRunner *a = evalrun_new();
    CHECK_OK(evalrun_task(a, st, g_em, &t, &c, &j1, NULL));
    char *cache = xasprintf("%s/cache/emb", sd);
    CHECK_EQ_INT(count_files(cache, ".emb"), 1);
    CHECK_EQ_INT(count_files(cache, "space.json"), 1);
    EvalRunner *b = evalrun_new();
    CHECK_OK(evalrun_task(b, st, g_em, &t, &c, &j2, NULL));
    EvalRunnerStats s;
    evalrun_stats(b, &s);
    CHECK_EQ_INT(s.encode_calls, 0);
    CHECK_EQ_INT(s.disk_loads, 1);
    CHECK(j1 && j2 && jget(j1, NULL, "main_score") == jget(j2, NULL, "main_score"));
    /* a corrupt file is ignored (and rewritten) */
    char *cmd = xasprintf("for f in $(find '%s' -name '*.emb'); do printf 'garbage' | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null; done", cache);
    CHECK(system(cmd) == 0);
    free(cmd);
    EvalRunner *e = evalrun_new();
    CHECK_OK(evalrun_task(e, st, g_em, &t, &c, &j3, NULL));
    evalrun_stats(e, &s);
    CHECK_EQ_INT(s.encode_calls, 1);
    CHECK_EQ_INT(s.disk_loads, 0);
    CHECK(j3 && j1 && jget(j1, NULL, "main_score") == jget(j3, NULL, "main_score"));
    /* the disk cap evicts: a cap of 1 byte keeps only the file just written */
    EvalTask t2;
    make_task(&t2, "pc", AM_TASK_PAIRCLASS, FX "/pairclass.jsonl");
    evalrun_set_disk_cap(e, 1);
    char *j4 = NULL;
    CHECK_OK(evalrun_task(e, st, g_em, &t2, &c, &j4, NULL));
    CHECK_EQ_INT(count_files(cache, ".emb"), 1);
    /* disk cache off: nothing read */
    evalrun_set_disk_cap(e, 0);
    EvalRunner *f = evalrun_new();
    evalrun_set_disk_cap(f, 0);
    char *j5 = NULL;
    CHECK_OK(evalrun_task(f, st, g_em, &t2, &c, &j5, NULL));
    evalrun_stats(f, &s);
    CHECK_EQ_INT(s.disk_loads, 0);
    CHECK_EQ_INT(s.encode_calls, 1);
    free(j1); free(j2); free(j3); free(j4); free(j5); free(cache); free(sd);
    evaltask_free(&t);
    evaltask_free(&t2);
    evalrun_delete(a);
    evalrun_delete(b);
    evalrun_delete(e);
    evalrun_delete(f);
    store_close(st);
}

/* ------------------------------------------------------------------ quick mode */

TEST(quick_subsample_deterministic) {
    EvalTask t;
    make_task(&t, "ret", AM_TASK_RETRIEVAL, FX "/beir");
    t.quick_n = 5;
    t.quick_docs = 15;
    TaskData *d = NULL;
    CHECK_OK(taskdata_load(&t, 1, &d));
    EvalInst a, b, f;
    CHECK_OK(evalinst_build(&t, d, AM_EVAL_QUICK, &a));
    CHECK_OK(evalinst_build(&t, d, AM_EVAL_QUICK, &b));
    CHECK_OK(evalinst_build(&t, d, AM_EVAL_FULL, &f));
    CHECK_EQ_INT(a.na, 5);
    CHECK_EQ_INT(a.nb, 15);
    CHECK_EQ_INT(f.na, 12);
    CHECK_EQ_INT(f.nb, 40);
    CHECK_EQ_INT(a.ntexts, b.ntexts);
    int same = a.ntexts == b.ntexts;
    for (int i = 0; same && i < a.ntexts; i++) same = strcmp(a.texts[i], b.texts[i]) == 0;
    CHECK(same);
    /* every judged doc of a chosen query is in the sample, with its grade */
    int judged = 0;
    for (int q = 0; q < a.na; q++)
        for (int j = a.qoff[q]; j < a.qoff[q + 1]; j++) {
            CHECK(a.qdoc[j] >= 0 && a.qdoc[j] < a.nb);
            judged++;
        }
    int total = 0;
    for (int64_t i = d->test->qrel_start[d->split]; i < d->test->qrel_start[d->split + 1]; i++) {
        const char *qt = d->test->text[d->test->qrel_query[i]];
        for (int q = 0; q < a.na; q++) total += strcmp(a.texts[a.a[q]], qt) == 0;
    }
    CHECK_EQ_INT(judged, total);
    /* another seed gives another sample */
    t.seed = 7;
    EvalInst c;
    CHECK_OK(evalinst_build(&t, d, AM_EVAL_QUICK, &c));
    int differs = c.na != a.na;
    for (int i = 0; !differs && i < a.na; i++) differs = strcmp(a.texts[a.a[i]], c.texts[c.a[i]]) != 0;
    CHECK(differs);
    evalinst_free(&a);
    evalinst_free(&b);
    evalinst_free(&c);
    evalinst_free(&f);
    taskdata_delete(d);
    evaltask_free(&t);
    /* pick: k distinct ascending, same for the same seed */
    int p1[10], p2[10];
    CHECK_EQ_INT(evalrun_pick(100, 10, 3, p1), 10);
    CHECK_EQ_INT(evalrun_pick(100, 10, 3, p2), 10);
    CHECK(memcmp(p1, p2, sizeof p1) == 0);
    for (int i = 1; i < 10; i++) CHECK(p1[i] > p1[i - 1]);
    CHECK_EQ_INT(evalrun_pick(5, 10, 3, p1), 5);
    /* quick classification: test and train subsampled, experiments overridden */
    EvalRunner *r = evalrun_new();
    make_task(&t, "cls", AM_TASK_CLASSIFICATION, FX "/labels/test.jsonl");
    t.quick_n = 10;
    t.quick_train = 20;
    t.quick_experiments = 2;
    char *j = run_mem(r, &t, AM_EVAL_QUICK, -1, 0);
    CHECK(j != NULL);
    if (j) {
        CHECK_EQ_INT(jget(j, "sizes", "test"), 10);
        CHECK_EQ_INT(jget(j, "sizes", "train"), 20);
        CHECK_EQ_INT(jget(j, "sizes", "experiments"), 2);
    }
    char *j2 = run_mem(r, &t, AM_EVAL_QUICK, -1, 0);
    CHECK(j && j2 && jget(j, NULL, "main_score") == jget(j2, NULL, "main_score"));
    free(j);
    free(j2);
    evaltask_free(&t);
    evalrun_delete(r);
}

/* ------------------------------------------------------------------ results */

static int count_cb(void *ud, const char *id, const char *task, const char *hash, const char *json) {
    (void)id; (void)hash; (void)json; (void)task;
    (*(int *)ud)++;
    return 0;
}

TEST(results_stored_and_reused) {
    char *sd = tmpdir("store_res");
    Store *st = NULL;
    CHECK_OK(store_open(sd, 0, &st));
    EvalRunner *r = evalrun_new();
    EvalTask t;
    make_task(&t, "sts", AM_TASK_STS, FX "/sts.tsv");
    t.tag = xstrdup("ood");
    EvalConfig c;
    eval_config_default(&c);
    char *j1 = NULL, *j2 = NULL, *j3 = NULL;
    int fs = -1;
    CHECK_OK(evalrun_task(r, st, g_em, &t, &c, &j1, &fs));
    CHECK_EQ_INT(fs, 0);
    CHECK_OK(evalrun_task(r, st, g_em, &t, &c, &j2, &fs));
    CHECK_EQ_INT(fs, 1);
    CHECK(j1 && j2 && strcmp(j1, j2) == 0);
    char *tag = j1 ? jstr(j1, "tag") : NULL;
    CHECK(tag && strcmp(tag, "ood") == 0);
    free(tag);
    /* a fresh runner (another process) finds it too, without encoding */
    EvalRunner *r2 = evalrun_new();
    CHECK_OK(evalrun_task(r2, st, g_em, &t, &c, &j3, &fs));
    CHECK_EQ_INT(fs, 1);
    EvalRunnerStats s;
    evalrun_stats(r2, &s);
    CHECK_EQ_INT(s.encode_calls, 0);
    CHECK_EQ_INT(s.results_stored, 1);
    /* lookup by model info from the meta-less path */
    EvalModelInfo mi;
    evalrun_model_info(g_em, &mi);
    char *j4 = NULL;
    CHECK_OK(evalrun_lookup(r2, st, &mi, &t, &c, &j4));
    CHECK(j4 && j1 && strcmp(j4, j1) == 0);
    /* force recomputes */
    c.flags = AM_EVAL_FORCE;
    char *j5 = NULL;
    CHECK_OK(evalrun_task(r2, st, g_em, &t, &c, &j5, &fs));
    CHECK_EQ_INT(fs, 0);
    CHECK(j5 && j1 && jget(j5, NULL, "main_score") == jget(j1, NULL, "main_score"));
    /* quick mode is another result */
    c.flags = 0;
    c.mode = AM_EVAL_QUICK;
    char *j6 = NULL;
    CHECK_OK(evalrun_task(r2, st, g_em, &t, &c, &j6, &fs));
    CHECK_EQ_INT(fs, 0);
    char *mode = j6 ? jstr(j6, "mode") : NULL;
    CHECK(mode && strcmp(mode, "quick") == 0);
    free(mode);
    int n = 0;
    CHECK_OK(evalrun_results_list(st, NULL, count_cb, &n));
    CHECK_EQ_INT(n, 2);
    n = 0;
    CHECK_OK(evalrun_results_list(st, mi.id, count_cb, &n));
    CHECK_EQ_INT(n, 2);
    n = 0;
    CHECK_OK(evalrun_results_list(st, "0123456789abcdef0123456789abcdef", count_cb, &n));
    CHECK_EQ_INT(n, 0);
    /* NO_STORE writes nothing */
    c.mode = AM_EVAL_FULL;
    c.dim = 8;
    c.flags = AM_EVAL_NO_STORE;
    char *j7 = NULL;
    CHECK_OK(evalrun_task(r2, st, g_em, &t, &c, &j7, &fs));
    n = 0;
    CHECK_OK(evalrun_results_list(st, NULL, count_cb, &n));
    CHECK_EQ_INT(n, 2);
    /* a caller-supplied content id (an unstored merge) keys the result instead of hashing */
    c.model_id = "00112233445566778899aabbccddeeff";
    c.flags = AM_EVAL_NO_STORE;
    char *j8 = NULL;
    CHECK_OK(evalrun_task(r2, st, g_em, &t, &c, &j8, &fs));
    char *mid = j8 ? jstr(j8, "model") : NULL;
    CHECK(mid && strcmp(mid, c.model_id) == 0);
    free(mid);
    free(j1); free(j2); free(j3); free(j4); free(j5); free(j6); free(j7); free(j8); free(sd);
    evaltask_free(&t);
    evalrun_delete(r);
    evalrun_delete(r2);
    store_close(st);
}

/* every task type keeps per-example scores whose statistic is the main score, and a bootstrap SE */
TEST(per_example_scores_and_se) {
    char *sd = tmpdir("store_px");
    Store *st = NULL;
    CHECK_OK(store_open(sd, 0, &st));
    EvalRunner *r = evalrun_new();
    struct { const char *name; EvalTaskType type; const char *path; int kind; } cases[] = {
        {"ret", AM_TASK_RETRIEVAL, FX "/beir", AM_PX_MEAN},
        {"sts", AM_TASK_STS, FX "/sts.tsv", AM_PX_SPEARMAN},
        {"pc", AM_TASK_PAIRCLASS, FX "/pairclass.jsonl", AM_PX_MAX_AP},
        {"cls", AM_TASK_CLASSIFICATION, FX "/labels", AM_PX_MEAN},
        {"clu", AM_TASK_CLUSTERING, FX "/clustering.jsonl", AM_PX_MEAN},
        {"bt", AM_TASK_BITEXT, FX "/bitext.jsonl", AM_PX_F1},
    };
    EvalModelInfo mi;
    evalrun_model_info(g_em, &mi);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        EvalTask t;
        make_task(&t, cases[k].name, cases[k].type, cases[k].path);
        EvalConfig c;
        eval_config_default(&c);
        char *j = NULL;
        CHECK_OK(evalrun_task(r, st, g_em, &t, &c, &j, NULL));
        char *hash = j ? jstr(j, "config_hash") : NULL;
        PerExample px;
        int rc = hash ? evalrun_examples_get(st, mi.id, t.name, hash, &px) : AM_EINVAL;
        CHECK_OK(rc);
        if (rc == AM_OK) {
            CHECK_EQ_INT(px.kind, cases[k].kind);
            double main = jget(j, NULL, "main_score"), se = jget(j, NULL, "main_se");
            CHECK_NEAR(px_statistic(&px, NULL, 0), main, 1e-5);
            CHECK(se >= 0 && !isnan(se));
            CHECK_EQ_INT((int)jget(j, "uncertainty", "n"), px.n);
            PairedTest pt;
            CHECK_OK(px_paired_test(&pt, &px, &px, 50, 1));
            CHECK(pt.delta == 0 && pt.p_value == 1.0);
            px_free(&px);
        } else {
            printf("  %s: %s\n", cases[k].name, am_lasterror());
        }
        free(hash);
        free(j);
        evaltask_free(&t);
    }
    /* a result without them */
    PerExample px;
    CHECK(evalrun_examples_get(st, mi.id, "nope", "0123", &px) == AM_ENOTFOUND);
    am_clearerror();
    int n = 0;
    CHECK_OK(evalrun_results_list(st, NULL, count_cb, &n));
    CHECK_EQ_INT(n, 6);   /* the per-example entries are not results */
    /* `amalgam rm` counts results, not their per-example entries, and deletes both */
    size_t nd = 0, bytes = 0;
    CHECK_OK(store_results_delete(st, mi.id, &nd, &bytes));
    CHECK_EQ_INT((int)nd, 6);
    n = 0;
    CHECK_OK(evalrun_results_list(st, NULL, count_cb, &n));
    CHECK_EQ_INT(n, 0);
    CHECK(evalrun_examples_get(st, mi.id, "sts", "x", &px) == AM_ENOTFOUND);
    am_clearerror();
    evalrun_delete(r);
    store_close(st);
    free(sd);
}

/* labelled quick samples spread over the labels: every label gets its share (or all it has) */
TEST(stratified_pick) {
    int n = 200, lab[200], out[200];
    for (int i = 0; i < n; i++) lab[i] = i < 150 ? 0 : i < 190 ? 1 : i < 197 ? 2 : 3;   /* 150/40/7/3 */
    int m = evalrun_pick_stratified(lab, n, 4, 32, 7, out);
    CHECK_EQ_INT(m, 32);
    int cnt[4] = {0};
    for (int i = 0; i < m; i++) {
        cnt[lab[out[i]]]++;
        if (i) CHECK(out[i] > out[i - 1]);
    }
    CHECK(cnt[3] == 3 && cnt[2] == 7 && cnt[0] == 11 && cnt[1] == 11);
    int out2[200];
    CHECK_EQ_INT(evalrun_pick_stratified(lab, n, 4, 32, 7, out2), 32);
    CHECK(memcmp(out, out2, 32 * sizeof *out) == 0);                 /* seeded */
    CHECK_EQ_INT(evalrun_pick_stratified(lab, n, 4, 0, 7, out2), n);   /* k <= 0: all */
    /* the first rows of a larger sample are the smaller one's (shared texts across tasks) */
    int small[200], big[200];
    int ms = evalrun_pick_stratified(lab, n, 4, 8, 3, small), mb = evalrun_pick_stratified(lab, n, 4, 16, 3, big);
    int found = 0;
    for (int i = 0; i < ms; i++)
        for (int j = 0; j < mb; j++) found += small[i] == big[j];
    CHECK_EQ_INT(found, ms);
}

TEST(config_hash_follows_layer_dim_mode) {
    EvalRunner *r = evalrun_new();
    EvalTask t;
    make_task(&t, "sts", AM_TASK_STS, FX "/sts.tsv");
    EvalModelInfo mi;
    evalrun_model_info(g_em, &mi);
    EvalConfig c;
    eval_config_default(&c);
    char h0[33], h1[33], h2[33], h3[33], h4[33], h5[33];
    CHECK_OK(evalrun_config_hash(r, &mi, &t, &c, h0, NULL));
    c.layer = mi.layers;                       /* the default, made explicit: same hash */
    CHECK_OK(evalrun_config_hash(r, &mi, &t, &c, h1, NULL));
    CHECK(strcmp(h0, h1) == 0);
    c.layer = 1;
    CHECK_OK(evalrun_config_hash(r, &mi, &t, &c, h2, NULL));
    CHECK(strcmp(h0, h2) != 0);
    c.layer = -1;
    c.dim = 16;
    CHECK_OK(evalrun_config_hash(r, &mi, &t, &c, h3, NULL));
    CHECK(strcmp(h0, h3) != 0 && strcmp(h2, h3) != 0);
    c.dim = mi.hidden;                         /* all features = the default */
    CHECK_OK(evalrun_config_hash(r, &mi, &t, &c, h4, NULL));
    CHECK(strcmp(h0, h4) == 0);
    c.dim = 0;
    c.mode = AM_EVAL_QUICK;
    char *cj = NULL;
    CHECK_OK(evalrun_config_hash(r, &mi, &t, &c, h5, &cj));
    CHECK(strcmp(h0, h5) != 0);
    CHECK(cj && strstr(cj, "\"mode\":\"quick\"") != NULL);
    free(cj);
    c.mode = AM_EVAL_FULL;
    c.layer = 5;
    CHECK(evalrun_config_hash(r, &mi, &t, &c, h5, NULL) == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "layer 5 out of range") != NULL);
    c.layer = -1;
    c.dim = 4096;
    CHECK(evalrun_config_hash(r, &mi, &t, &c, h5, NULL) == AM_EINVAL);
    /* the data is part of the hash: a copy with one changed score gets another hash */
    char *sd = tmpdir("data_copy");
    char *cp = xasprintf("sed 's/4.17/4.18/' '%s' > '%s/sts.tsv'", FX "/sts.tsv", sd);
    CHECK(system(cp) == 0);
    free(cp);
    EvalTask t2;
    char *p2 = xasprintf("%s/sts.tsv", sd);
    make_task(&t2, "sts", AM_TASK_STS, p2);
    c.dim = 0;
    char h6[33];
    CHECK_OK(evalrun_config_hash(r, &mi, &t2, &c, h6, NULL));
    CHECK(strcmp(h0, h6) != 0);
    free(p2);
    free(sd);
    evaltask_free(&t2);
    /* the scikit-learn protocol is named in the config and so in the hash */
    EvalTask tc;
    make_task(&tc, "cls", AM_TASK_CLASSIFICATION, FX "/labels");
    char h7[33], h8[33];
    CHECK_OK(evalrun_config_hash(r, &mi, &tc, &c, h7, &cj));
    CHECK(cj && strstr(cj, "\"sklearn\":\"1.4\"") && strstr(cj, "\"mteb\":\"2\""));
    free(cj);
    tc.sklearn = AM_SKLEARN_1_2;
    CHECK_OK(evalrun_config_hash(r, &mi, &tc, &c, h8, &cj));
    CHECK(cj && strstr(cj, "\"sklearn\":\"1.2\""));
    CHECK(strcmp(h7, h8) != 0);
    free(cj);
    evaltask_free(&tc);
    /* results key */
    uint8_t key[512];
    size_t kl = evalrun_result_key(key, sizeof key, "abc", "task", "h");
    CHECK_EQ_INT(kl, 10);
    CHECK(memcmp(key, "abc\0task\0h", 10) == 0);
    evaltask_free(&t);
    evalrun_delete(r);
}

/* ------------------------------------------------------------------ specs and errors */

TEST(task_specs) {
    EvalTask t;
    CHECK_OK(evaltask_from_json(&t, "{\"name\":\"wn-def\",\"type\":\"retrieval\",\"path\":\"/x\",\"tag\":\"id\","
                                    "\"quick\":{\"n\":50,\"docs\":300},\"seed\":3}"));
    CHECK(t.type == AM_TASK_RETRIEVAL && t.quick_n == 50 && t.quick_docs == 300 && t.seed == 3);
    CHECK(strcmp(t.tag, "id") == 0);
    char *js = evaltask_to_json(&t);
    EvalTask u;
    CHECK_OK(evaltask_from_json(&u, js));
    CHECK(u.quick_docs == 300 && strcmp(u.name, "wn-def") == 0);
    free(js);
    evaltask_free(&u);
    evaltask_free(&t);
    CHECK(evaltask_from_json(&t, "{\"name\":\"x\",\"type\":\"retrieval\",\"path\":\"/x\",\"qiuck\":{}}") == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "unknown key 'qiuck'") != NULL);
    CHECK(evaltask_from_json(&t, "{\"name\":\"x\",\"type\":\"ranking\",\"path\":\"/x\"}") == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "unknown task type 'ranking'") != NULL);
    CHECK(evaltask_from_json(&t, "{\"name\":\"x\",\"type\":\"sts\"}") == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "'path' is required") != NULL);
    CHECK(evaltask_from_json(&t, "{\"name\":\"x\",\"type\":\"sts\",\"path\":\"p\",\"tag\":\"both\"}") == AM_EINVAL);
    CHECK(evaltask_from_json(&t, "[1]") == AM_EINVAL);
    CHECK_OK(evaltask_from_spec(&t, "beir:/some/dir#dev"));
    CHECK(t.type == AM_TASK_RETRIEVAL && strcmp(t.path, "/some/dir") == 0 && strcmp(t.split, "dev") == 0);
    CHECK(strcmp(t.name, "beir:/some/dir#dev") == 0);
    evaltask_free(&t);
    CHECK_OK(evaltask_from_spec(&t, "sts:a.tsv"));
    CHECK(t.type == AM_TASK_STS);
    evaltask_free(&t);
    CHECK_OK(evaltask_from_spec(&t, "pairs:a.jsonl"));
    CHECK(t.type == AM_TASK_PAIRCLASS);
    evaltask_free(&t);
    CHECK_OK(evaltask_from_spec(&t, "labels:dir"));
    CHECK(t.type == AM_TASK_CLASSIFICATION);
    evaltask_free(&t);
    CHECK_OK(evaltask_from_spec(&t, "bitext:/d#dev#candidate_pool"));
    CHECK(t.type == AM_TASK_BITEXT && t.candidate_pool && strcmp(t.split, "dev") == 0 && strcmp(t.path, "/d") == 0);
    evaltask_free(&t);
    CHECK_OK(evaltask_from_spec(&t, "bitext:/d"));
    CHECK(!t.candidate_pool && !t.split);
    evaltask_free(&t);
    CHECK_OK(evaltask_from_spec(&t, "labels:dir#sklearn-1.2"));
    CHECK(t.sklearn == AM_SKLEARN_1_2 && strcmp(t.path, "dir") == 0);
    js = evaltask_to_json(&t);
    CHECK_OK(evaltask_from_json(&u, js));
    CHECK(u.sklearn == AM_SKLEARN_1_2);
    free(js);
    evaltask_free(&u);
    evaltask_free(&t);
    CHECK(evaltask_from_spec(&t, "sts:a.tsv#candidate_pool") == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "unknown option '#candidate_pool'") != NULL);
    CHECK(evaltask_from_spec(&t, "clustering:a#sklearn-1.3") == AM_EINVAL);
    CHECK(evaltask_from_json(&t, "{\"name\":\"x\",\"type\":\"retrieval\",\"path\":\"/x\",\"ignore_identical_ids\":1}") == AM_EINVAL);
    CHECK_OK(evaltask_from_json(&t, "{\"name\":\"x\",\"type\":\"bitext\",\"path\":\"/x\",\"candidate_pool\":true,"
                                    "\"ignore_identical_ids\":true}"));
    CHECK(t.candidate_pool && t.ignore_identical_ids && t.sklearn == AM_SKLEARN_1_4);
    evaltask_free(&t);
    CHECK(evaltask_from_spec(&t, "wn-def") == AM_EINVAL);
    CHECK(evaltask_from_spec(&t, "foo:bar") == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "unknown kind 'foo'") != NULL);
}

static int cancel_cb(void *ud, const EvalProgress *p) {
    int *calls = ud;
    (*calls)++;
    return p->stage == AM_EVAL_STAGE_ENCODE && p->done > 0;
}

TEST(bad_input_and_cancel) {
    EvalRunner *r = evalrun_new();
    EvalConfig c;
    eval_config_default(&c);
    char *j = NULL;
    EvalTask t;
    make_task(&t, "missing", AM_TASK_RETRIEVAL, "/nonexistent/beir");
    CHECK(evalrun_task(r, NULL, g_em, &t, &c, &j, NULL) == AM_ENOTFOUND);
    CHECK(strstr(am_lasterror(), "/nonexistent/beir does not exist") != NULL);
    evaltask_free(&t);
    make_task(&t, "notbeir", AM_TASK_RETRIEVAL, FX "/labels");
    CHECK(evalrun_task(r, NULL, g_em, &t, &c, &j, NULL) == AM_ENOTFOUND);
    CHECK(strstr(am_lasterror(), "corpus.jsonl") != NULL);
    evaltask_free(&t);
    /* STS scores are not 0/1: not a pair classification file */
    make_task(&t, "pc", AM_TASK_PAIRCLASS, FX "/sts.tsv");
    CHECK(evalrun_task(r, NULL, g_em, &t, &c, &j, NULL) == AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "needs 0/1 scores") != NULL);
    evaltask_free(&t);
    /* a file of the wrong kind: the loader names file:line */
    make_task(&t, "sts", AM_TASK_STS, FX "/labels/test.jsonl");
    CHECK(evalrun_task(r, NULL, g_em, &t, &c, &j, NULL) == AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "test.jsonl:1") != NULL);
    evaltask_free(&t);
    /* main metric that the type does not produce */
    make_task(&t, "sts", AM_TASK_STS, FX "/sts.tsv");
    t.main_metric = xstrdup("ndcg_at_10");
    CHECK(evalrun_task(r, NULL, g_em, &t, &c, &j, NULL) == AM_EINVAL);
    free(t.main_metric);
    t.main_metric = NULL;
    /* cancel during encoding (a fresh runner: nothing cached): AM_EINTR and nothing stored */
    evalrun_delete(r);
    r = evalrun_new();
    char *sd = tmpdir("store_cancel");
    Store *st = NULL;
    CHECK_OK(store_open(sd, 0, &st));
    int calls = 0;
    c.progress = cancel_cb;
    c.ud = &calls;
    c.batch = 4;
    c.flags = AM_EVAL_NO_DISK_CACHE;
    CHECK(evalrun_task(r, st, g_em, &t, &c, &j, NULL) == AM_EINTR);
    CHECK(calls >= 2);
    int n = 0;
    CHECK_OK(evalrun_results_list(st, NULL, count_cb, &n));
    CHECK_EQ_INT(n, 0);
    c.progress = NULL;
    CHECK_OK(evalrun_task(r, st, g_em, &t, &c, &j, NULL));
    free(j);
    free(sd);
    store_close(st);
    evaltask_free(&t);
    evalrun_delete(r);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/am_evalrun_XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    setenv("AMALGAM_EMBCACHE_MB", "1024", 1);
    am_log_set_echo(AM_LOG_ERROR); /* the corrupt-cache test warns on purpose */
    g_em = load_model();
    RUN(retrieval_matches_direct);
    RUN(retrieval_ignore_identical_ids);
    RUN(sts_and_pairclass_match_direct);
    RUN(classification_clustering_bitext_match_direct);
    RUN(cache_second_run_encodes_nothing);
    RUN(cache_dim_and_normalize_exact);
    RUN(disk_cache_serves_a_fresh_runner);
    RUN(quick_subsample_deterministic);
    RUN(results_stored_and_reused);
    RUN(per_example_scores_and_se);
    RUN(stratified_pick);
    RUN(config_hash_follows_layer_dim_mode);
    RUN(task_specs);
    RUN(bad_input_and_cancel);
    embed_model_delete(g_em);
    char *cmd = xasprintf("rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", g_tmp);
    free(cmd);
    return test_report();
}
