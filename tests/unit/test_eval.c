/* test_eval.c - the evaluation engine (src/eval) against fixtures made by scikit-learn, scipy,
 * numpy/Python RNGs and a port of trec_eval (tests/ref/eval/gen_fixture.py), plus hand-computed
 * cases, brute-force cross-checks and a timing line for retrieval at benchmark scale. */
#include "am_base.h"
#include "harness.h"
#include "metrics.h"
#include "tensor.h"

#include <ctype.h>

#ifndef AM_TEST_DIR
#define AM_TEST_DIR "tests"
#endif

/* ------------------------------------------------------------------ fixture reader */

typedef struct { char name[64]; int n; double *v; } FxArr;
typedef struct { FxArr *a; int n, cap; void **owned; int nowned, capowned; } Fx;

static void fx_own(Fx *fx, void *p) {
    if (fx->nowned == fx->capowned) {
        fx->capowned = fx->capowned ? 2 * fx->capowned : 64;
        fx->owned = xrealloc(fx->owned, (size_t)fx->capowned * sizeof *fx->owned);
    }
    fx->owned[fx->nowned++] = p;
}

static int fx_load(Fx *fx, const char *file) {
    memset(fx, 0, sizeof *fx);
    char *path = xasprintf("%s/ref/eval/%s", AM_TEST_DIR, file), *buf = NULL;
    size_t len = 0;
    int rc = am_read_file(path, &buf, &len);
    free(path);
    if (rc) return rc;
    char *p = buf;
    while (*p) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (*p == '#') { while (*p && *p != '\n') p++; continue; }
        if (*p != '@') { if (*p) { free(buf); return am_error(AM_EFORMAT, "%s: expected @name", file); } break; }
        p++;
        if (fx->n == fx->cap) { fx->cap = fx->cap ? 2 * fx->cap : 64; fx->a = xrealloc(fx->a, (size_t)fx->cap * sizeof *fx->a); }
        FxArr *a = &fx->a[fx->n++];
        int k = 0;
        while (*p && !isspace((unsigned char)*p) && k < 63) a->name[k++] = *p++;
        a->name[k] = 0;
        a->n = (int)strtol(p, &p, 10);
        a->v = xmalloc((size_t)(a->n > 0 ? a->n : 1) * sizeof *a->v);
        for (int i = 0; i < a->n; i++) a->v[i] = strtod(p, &p);
    }
    free(buf);
    return AM_OK;
}

static void fx_free(Fx *fx) {
    for (int i = 0; i < fx->n; i++) free(fx->a[i].v);
    for (int i = 0; i < fx->nowned; i++) free(fx->owned[i]);
    free(fx->a); free(fx->owned);
}

static const double *fx_get(const Fx *fx, const char *name, int *n) {
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->a[i].name, name) == 0) { if (n) *n = fx->a[i].n; return fx->a[i].v; }
    printf("  fixture array %s missing\n", name);
    AM_ASSERT(0);
    return NULL;
}
static float *fx_floats(Fx *fx, const char *name, int *n) {
    int m;
    const double *v = fx_get(fx, name, &m);
    float *f = xmalloc((size_t)(m > 0 ? m : 1) * sizeof *f);
    for (int i = 0; i < m; i++) f[i] = (float)v[i];
    fx_own(fx, f);
    if (n) *n = m;
    return f;
}
static int *fx_ints(Fx *fx, const char *name, int *n) {
    int m;
    const double *v = fx_get(fx, name, &m);
    int *r = xmalloc((size_t)(m > 0 ? m : 1) * sizeof *r);
    for (int i = 0; i < m; i++) r[i] = (int)v[i];
    fx_own(fx, r);
    if (n) *n = m;
    return r;
}

/* ------------------------------------------------------------------ random streams */

TEST(rng_numpy_python_streams) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "random.txt"));
    AmMt r;
    int n;
    const double *u = fx_get(&fx, "np42_u32", &n);
    mt_seed(&r, 42);
    for (int i = 0; i < n; i++) CHECK(mt_u32(&r) == (uint32_t)u[i]);
    const double *d = fx_get(&fx, "np42_double", &n);
    mt_seed(&r, 42);
    for (int i = 0; i < n; i++) CHECK(mt_double(&r) == d[i]);
    const double *ri = fx_get(&fx, "np7_randint", &n);
    mt_seed(&r, 7);
    for (int i = 0; i < n; i++) CHECK_EQ_INT(mt_interval(&r, 999), ri[i]);
    const double *sh = fx_get(&fx, "np42_shuffle25", &n);
    int a[25];
    for (int i = 0; i < 25; i++) a[i] = i;
    mt_seed(&r, 42);
    mt_shuffle(&r, a, 25);
    for (int i = 0; i < 25; i++) CHECK_EQ_INT(a[i], sh[i]);
    const double *py = fx_get(&fx, "py42_random", &n);
    mt_seed_python(&r, 42);
    for (int i = 0; i < n; i++) CHECK(mt_double(&r) == py[i]);
    const double *ch = fx_get(&fx, "py42_choices", &n);
    int idx[10];
    mt_seed_python(&r, 42);
    mt_choices_python(&r, idx, 10, 1000);
    for (int i = 0; i < n; i++) CHECK_EQ_INT(idx[i], ch[i]);
    const double *pb = fx_get(&fx, "pybig_random", &n);
    mt_seed_python(&r, ((uint64_t)1 << 40) + 5);
    for (int i = 0; i < n; i++) CHECK(mt_double(&r) == pb[i]);
    fx_free(&fx);
}

/* ------------------------------------------------------------------ retrieval */

static const char *const RM_NAMES[AM_RM_COUNT] = { "ndcg", "map", "recall", "precision", "mrr", "hit_rate" };

static const double *rs_field(const RetrievalScores *s, int m) {
    switch (m) {
    case AM_RM_NDCG: return s->ndcg;
    case AM_RM_MAP: return s->map;
    case AM_RM_RECALL: return s->recall;
    case AM_RM_PRECISION: return s->precision;
    case AM_RM_MRR: return s->mrr;
    default: return s->hit_rate;
    }
}

static void retrieval_case(Fx *fx, const char *name, const float *q, const float *d, int nq, int nd,
                           int dim, const Qrels *qr, const char *const *ids, const int *self_doc) {
    char key[64];
    int n;
    snprintf(key, sizeof key, "%s_flags", name);
    const double *flags = fx_get(fx, key, NULL);
    snprintf(key, sizeof key, "%s_ks", name);
    int *ks = fx_ints(fx, key, &n);
    int nks = n;
    RetrievalOptions opt = { AM_SIM_COSINE, flags[1] ? self_doc : NULL, flags[0] ? ids : NULL, (int)flags[2], NULL };
    RetrievalScores s;
    CHECK_OK(eval_retrieval(&s, q, nq, d, nd, dim, qr, ks, nks, &opt));
    CHECK_EQ_INT(s.n_evaluated, flags[3]);
    for (int m = 0; m < AM_RM_COUNT; m++) {
        snprintf(key, sizeof key, "%s_%s", name, RM_NAMES[m]);
        const double *e = fx_get(fx, key, NULL);
        for (int c = 0; c < nks; c++)
            CHECKF(fabs(rs_field(&s, m)[c] - e[c]) <= 1e-12, "%s %s@%d = %.15g, expected %.15g", name,
                   RM_NAMES[m], ks[c], rs_field(&s, m)[c], e[c]);
    }
    /* per query, from the search + the single-query measures */
    int kmax = ks[nks - 1];
    int *idx = xmalloc((size_t)nq * kmax * sizeof *idx), *nret = xmalloc((size_t)nq * sizeof *nret);
    CHECK_OK(retrieval_search(idx, NULL, nret, q, nq, d, nd, dim, kmax, &opt));
    snprintf(key, sizeof key, "%s_perq", name);
    const double *pq = fx_get(fx, key, &n);
    int row = 1 + AM_RM_COUNT * nks;
    double *m = xmalloc((size_t)AM_RM_COUNT * nks * sizeof *m);
    for (int r = 0; r < n / row; r++) {
        const double *e = pq + (size_t)r * row;
        int qi = (int)e[0], o0 = qr->offsets[qi], o1 = qr->offsets[qi + 1];
        retrieval_query_measures(m, idx + (size_t)qi * kmax, nret[qi], qr->doc + o0, qr->grade + o0, o1 - o0, ks, nks);
        for (int t = 0; t < AM_RM_COUNT * nks; t++)
            CHECKF(fabs(m[t] - e[1 + t]) <= 1e-12, "%s query %d %s@%d = %.15g, expected %.15g", name, qi,
                   RM_NAMES[t / nks], ks[t % nks], m[t], e[1 + t]);
    }
    free(m); free(idx); free(nret);
}

TEST(retrieval_vs_trec_eval_fixture) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "retrieval.txt"));
    const double *dims = fx_get(&fx, "dims", NULL);
    int nq = (int)dims[0], nd = (int)dims[1], dim = (int)dims[2];
    float *q = fx_floats(&fx, "q", NULL), *d = fx_floats(&fx, "d", NULL);
    int *self_doc = fx_ints(&fx, "self_doc", NULL);
    int *code = fx_ints(&fx, "doc_id_code", NULL);
    char **ids = xmalloc((size_t)nd * sizeof *ids);
    for (int i = 0; i < nd; i++) ids[i] = code[i] >= 0 ? xasprintf("%d", code[i]) : xasprintf("Q%d", -code[i] - 1);
    Qrels qr = { nq, fx_ints(&fx, "qrels_offsets", NULL), fx_ints(&fx, "qrels_doc", NULL), fx_ints(&fx, "qrels_grade", NULL) };
    retrieval_case(&fx, "r1", q, d, nq, nd, dim, &qr, (const char *const *)ids, self_doc);
    retrieval_case(&fx, "r2", q, d, nq, nd, dim, &qr, (const char *const *)ids, self_doc);
    retrieval_case(&fx, "r3", q, d, nq, nd, dim, &qr, (const char *const *)ids, self_doc);
    for (int i = 0; i < nd; i++) free(ids[i]);
    free(ids);
    fx_free(&fx);
}

TEST(retrieval_hand_computed) {
    /* ranking d0 (grade 2), d1 (0), d2 (3), d3 (unjudged); d4 (grade 1) judged, not retrieved */
    int ranked[4] = { 0, 1, 2, 3 };
    int jd[4] = { 4, 2, 1, 0 }, jg[4] = { 1, 3, 0, 2 };
    int ks[5] = { 1, 2, 3, 4, 5 };
    double m[AM_RM_COUNT * 5];
    CHECK_EQ_INT(retrieval_query_measures(m, ranked, 4, jd, jg, 4, ks, 5), 3);
    double idcg1 = 3, idcg3 = 3 + 2 / log2(3.0) + 1 / log2(4.0);
    CHECK_NEAR(m[AM_RM_NDCG * 5 + 0], 2 / idcg1, 1e-15);
    CHECK_NEAR(m[AM_RM_NDCG * 5 + 2], (2 + 3 / log2(4.0)) / idcg3, 1e-15);
    CHECK_NEAR(m[AM_RM_NDCG * 5 + 4], (2 + 3 / log2(4.0)) / idcg3, 1e-15);   /* ideal has 3 entries only */
    CHECK_NEAR(m[AM_RM_MAP * 5 + 0], 1.0 / 3, 1e-15);
    CHECK_NEAR(m[AM_RM_MAP * 5 + 4], (1 + 2.0 / 3) / 3, 1e-15);
    CHECK_NEAR(m[AM_RM_RECALL * 5 + 1], 1.0 / 3, 1e-15);
    CHECK_NEAR(m[AM_RM_RECALL * 5 + 4], 2.0 / 3, 1e-15);
    CHECK_NEAR(m[AM_RM_PRECISION * 5 + 2], 2.0 / 3, 1e-15);
    CHECK_NEAR(m[AM_RM_PRECISION * 5 + 4], 2.0 / 5, 1e-15);                  /* divides by k */
    CHECK_NEAR(m[AM_RM_MRR * 5 + 0], 1.0, 0);
    CHECK_NEAR(m[AM_RM_HIT * 5 + 0], 1.0, 0);
    /* first relevant at rank 3 */
    int ranked2[3] = { 3, 1, 2 };
    CHECK_EQ_INT(retrieval_query_measures(m, ranked2, 3, jd, jg, 4, ks, 5), 3);
    CHECK_NEAR(m[AM_RM_MRR * 5 + 1], 0.0, 0);
    CHECK_NEAR(m[AM_RM_MRR * 5 + 2], 1.0 / 3, 1e-15);
    CHECK_NEAR(m[AM_RM_HIT * 5 + 1], 0.0, 0);
    CHECK_NEAR(m[AM_RM_NDCG * 5 + 2], (3 / 2.0) / idcg3, 1e-15);
    /* pytrec_eval's own unit tests (tests/pytrec_eval_tests.py, test_ndcg / test_ndcg_cut):
     * qrels q1 = {d1: 0, d2: 1, d3: 0}; run {d1: 1.0, d2: 0.0, d3: 1.5} ranks d3, d1, d2 ->
     * ndcg_cut_{1,2,3,1000} = 0, 0, 0.5, 0.5; run {d1: 4.0, d2: 2.0, d3: 1.5} ranks d1, d2, d3 ->
     * ndcg = 0.6309297535714575 (= 1/log2(3): trec_eval 9's log2(rank+1) discount) */
    {
        int pj[3] = { 1, 2, 3 }, pg[3] = { 0, 1, 0 }, pk[4] = { 1, 2, 3, 1000 };
        int run1[3] = { 3, 1, 2 }, run2[3] = { 1, 2, 3 };
        double pm[AM_RM_COUNT * 4];
        retrieval_query_measures(pm, run1, 3, pj, pg, 3, pk, 4);
        CHECK_NEAR(pm[AM_RM_NDCG * 4 + 0], 0.0, 0);
        CHECK_NEAR(pm[AM_RM_NDCG * 4 + 1], 0.0, 0);
        CHECK_NEAR(pm[AM_RM_NDCG * 4 + 2], 0.5, 1e-15);
        CHECK_NEAR(pm[AM_RM_NDCG * 4 + 3], 0.5, 1e-15);
        retrieval_query_measures(pm, run2, 3, pj, pg, 3, pk, 4);
        CHECK_NEAR(pm[AM_RM_NDCG * 4 + 3], 0.6309297535714575, 1e-15);
    }
    /* duplicate judgment */
    int jd2[2] = { 1, 1 }, jg2[2] = { 1, 2 };
    CHECK_EQ_INT(retrieval_query_measures(m, ranked, 4, jd2, jg2, 2, ks, 5), -1);

    /* end to end with score ties: 1 query, docs with cosine 1, √½, √½ (exactly equal), 0 */
    float qv[2] = { 1, 0 };
    float dv[8] = { 3, 0, 1, 1, 2, 2, 0, 1 };
    int offs[2] = { 0, 1 }, qd[1] = { 1 }, qg[1] = { 1 };
    Qrels qr = { 1, offs, qd, qg };
    int k1[2] = { 1, 2 };
    RetrievalScores s;
    /* ties by index: doc 2 before doc 1 (index descending, as trec_eval's docno descending) */
    int idx[4], nret[1];
    float sc[4];
    CHECK_OK(retrieval_search(idx, sc, nret, qv, 1, dv, 4, 2, 4, NULL));
    CHECK(nret[0] == 4 && idx[0] == 0 && idx[1] == 2 && idx[2] == 1 && idx[3] == 3);
    CHECK_OK(eval_retrieval(&s, qv, 1, dv, 4, 2, &qr, k1, 2, NULL));
    CHECK_NEAR(s.mrr[1], 0.0, 0);          /* the relevant doc 1 is at rank 3 */
    /* with ids, "b" > "a": doc 1 named "b" now wins the tie */
    const char *ids[4] = { "x", "b", "a", "y" };
    RetrievalOptions o = { AM_SIM_COSINE, NULL, ids, 0, NULL };
    CHECK_OK(eval_retrieval(&s, qv, 1, dv, 4, 2, &qr, k1, 2, &o));
    CHECK_NEAR(s.mrr[1], 0.5, 0);
    CHECK_NEAR(s.ndcg[1], 1 / log2(3.0), 1e-15);
    /* self hit dropped after top-k: query 0 "is" doc 0 */
    int self[1] = { 0 };
    o.self_doc = self;
    CHECK_OK(retrieval_search(idx, sc, nret, qv, 1, dv, 4, 2, 2, &o));
    CHECK(nret[0] == 1 && idx[0] == 1 && idx[1] == -1);
    /* argument errors */
    int bad_ks[2] = { 5, 5 };
    CHECK_EQ_INT(eval_retrieval(&s, qv, 1, dv, 4, 2, &qr, bad_ks, 2, NULL), AM_EINVAL);
    int qd_bad[1] = { 9 };
    Qrels qr_bad = { 1, offs, qd_bad, qg };
    CHECK_EQ_INT(eval_retrieval(&s, qv, 1, dv, 4, 2, &qr_bad, k1, 2, NULL), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "doc 9") != NULL);
}

/* brute force: full sort of every row under the same order */
static const char *const *g_ids;
static const float *g_row;
static int cmp_brute(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    if (g_row[x] != g_row[y]) return g_row[x] > g_row[y] ? -1 : 1;
    if (g_ids) { int c = strcmp(g_ids[x], g_ids[y]); if (c) return -c; }
    return (x < y) - (x > y);
}

static void fill_quantised(float *x, size_t n, AmRng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((int)(am_rng_normal(r) * 2)) * 0.25f;
}

TEST(retrieval_search_matches_brute_force) {
    int nq = 150, nd = 9000, dim = 8, k = 100;   /* several corpus chunks and query blocks */
    AmRng r;
    am_rng_seed(&r, 3);
    float *q = xmalloc((size_t)nq * dim * sizeof *q), *d = xmalloc((size_t)nd * dim * sizeof *d);
    fill_quantised(q, (size_t)nq * dim, &r);
    fill_quantised(d, (size_t)nd * dim, &r);
    char **ids = xmalloc((size_t)nd * sizeof *ids);
    for (int i = 0; i < nd; i++) ids[i] = xasprintf("%u", am_rng_u32(&r) % 100000u * 100000u + (unsigned)i);
    int *idx = xmalloc((size_t)nq * k * sizeof *idx), *nret = xmalloc((size_t)nq * sizeof *nret);
    int *idx1 = xmalloc((size_t)nq * k * sizeof *idx1);
    float *sc = xmalloc((size_t)nq * k * sizeof *sc), *row = xmalloc((size_t)nd * sizeof *row);
    int *ord = xmalloc((size_t)nd * sizeof *ord);
    for (int variant = 0; variant < 3; variant++) {
        RetrievalOptions o = { variant == 2 ? AM_SIM_DOT : AM_SIM_COSINE, NULL,
                               variant == 1 ? (const char *const *)ids : NULL, 0, NULL };
        CHECK_OK(retrieval_search(idx, sc, nret, q, nq, d, nd, dim, k, &o));
        int bad = 0;
        for (int qi = 0; qi < nq; qi++) {
            const float *qq = q + (size_t)qi * dim;
            double nq2 = 0;
            for (int j = 0; j < dim; j++) nq2 += (double)qq[j] * (double)qq[j];
            for (int t = 0; t < nd; t++) {
                /* the same float arithmetic as the search: sgemm dot, then · inv norms */
                const float *dd = d + (size_t)t * dim;
                double nd2 = 0;
                float dot = 0;
                for (int j = 0; j < dim; j++) { dot += qq[j] * dd[j]; nd2 += (double)dd[j] * (double)dd[j]; }
                float iq = nq2 > 0 ? (float)(1.0 / sqrt(nq2)) : 0.0f, id = nd2 > 0 ? (float)(1.0 / sqrt(nd2)) : 0.0f;
                row[t] = o.sim == AM_SIM_DOT ? dot : dot * iq * id;
                ord[t] = t;
            }
            g_row = row; g_ids = o.doc_ids;
            qsort(ord, (size_t)nd, sizeof *ord, cmp_brute);
            if (nret[qi] != k) bad++;
            for (int t = 0; t < k; t++) if (idx[(size_t)qi * k + t] != ord[t]) { bad++; break; }
        }
        CHECKF(bad == 0, "variant %d: %d queries differ from the brute-force ranking", variant, bad);
    }
    /* thread count does not change anything */
    int nth = am_parallel_get_threads();
    am_parallel_set_threads(1);
    CHECK_OK(retrieval_search(idx1, NULL, nret, q, nq, d, nd, dim, k, NULL));
    am_parallel_set_threads(nth > 1 ? nth : 2);
    CHECK_OK(retrieval_search(idx, NULL, nret, q, nq, d, nd, dim, k, NULL));
    CHECK(memcmp(idx, idx1, (size_t)nq * k * sizeof *idx) == 0);
    am_parallel_set_threads(nth);
    /* k larger than the corpus */
    CHECK_OK(retrieval_search(idx, NULL, nret, q, 2, d, 30, dim, 50, NULL));
    CHECK(nret[0] == 30 && idx[29] >= 0 && idx[30] == -1);
    for (int i = 0; i < nd; i++) free(ids[i]);
    free(ids); free(q); free(d); free(idx); free(idx1); free(nret); free(sc); free(row); free(ord);
}

TEST(retrieval_timing_12k_by_1k) {
    int nq = 1000, nd = 12000, dim = 128;
    AmRng r;
    am_rng_seed(&r, 5);
    float *q = xmalloc((size_t)nq * dim * sizeof *q), *d = xmalloc((size_t)nd * dim * sizeof *d);
    for (size_t i = 0; i < (size_t)nq * dim; i++) q[i] = am_rng_normal(&r);
    for (size_t i = 0; i < (size_t)nd * dim; i++) d[i] = am_rng_normal(&r);
    int *offs = xmalloc((size_t)(nq + 1) * sizeof *offs), *jd = xmalloc((size_t)nq * 3 * sizeof *jd),
        *jg = xmalloc((size_t)nq * 3 * sizeof *jg);
    offs[0] = 0;
    for (int i = 0; i < nq; i++) {
        for (int t = 0; t < 3; t++) { jd[3 * i + t] = (int)am_rng_below(&r, (uint32_t)nd / 3) * 3 + t; jg[3 * i + t] = 1 + t % 2; }
        offs[i + 1] = 3 * (i + 1);
    }
    Qrels qr = { nq, offs, jd, jg };
    int ks[] = AM_EVAL_DEFAULT_KS;
    RetrievalScores s;
    double t0 = am_now();
    CHECK_OK(eval_retrieval(&s, q, nq, d, nd, dim, &qr, ks, AM_EVAL_DEFAULT_NKS, NULL));
    double t1 = am_now();
    int k10[] = { 1, 3, 5, 10 };
    CHECK_OK(eval_retrieval(&s, q, nq, d, nd, dim, &qr, k10, 4, NULL));
    double t2 = am_now();
    CHECK_EQ_INT(s.n_evaluated, nq);
    printf("  info: retrieval %d queries x %d docs x %d dims on %d threads: %.3f s with k = 1000, %.3f s with k = 10\n",
           nq, nd, dim, am_parallel_get_threads(), t1 - t0, t2 - t1);
    free(q); free(d); free(offs); free(jd); free(jg);
}

/* ------------------------------------------------------------------ correlations, AP */

TEST(spearman_pearson_with_ties) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "stats.txt"));
    int n;
    const double *x = fx_get(&fx, "corr_x", &n), *y = fx_get(&fx, "corr_y", NULL);
    const double *rx = fx_get(&fx, "corr_rank_x", NULL), *e = fx_get(&fx, "corr_expect", NULL);
    double *rank = xmalloc((size_t)n * sizeof *rank);
    stats_rank_average(rank, x, n);
    for (int i = 0; i < n; i++) CHECK(rank[i] == rx[i]);
    CHECK_NEAR(stats_pearson(x, y, n), e[0], 1e-13);
    CHECK_NEAR(stats_spearman(x, y, n), e[1], 1e-13);
    free(rank);
    /* hand: ranks of {10, 20, 20, 30} = 1, 2.5, 2.5, 4; constant input -> NAN */
    double a[4] = { 10, 20, 20, 30 }, ra[4], c[4] = { 1, 1, 1, 1 };
    stats_rank_average(ra, a, 4);
    CHECK(ra[0] == 1 && ra[1] == 2.5 && ra[2] == 2.5 && ra[3] == 4);
    CHECK(isnan(stats_pearson(a, c, 4)) && isnan(stats_spearman(c, a, 4)));
    double b[4] = { 1, 2, 3, 4 }, bm[4] = { 8, 6, 4, 2 };
    CHECK_NEAR(stats_spearman(b, bm, 4), -1.0, 1e-15);
    CHECK_NEAR(stats_pearson(b, bm, 4), -1.0, 1e-15);
    fx_free(&fx);
}

TEST(average_precision_vs_sklearn) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "stats.txt"));
    for (int t = 0; t < 3; t++) {
        char k1[32], k2[32], k3[32];
        snprintf(k1, sizeof k1, "ap%d_scores", t); snprintf(k2, sizeof k2, "ap%d_labels", t); snprintf(k3, sizeof k3, "ap%d_expect", t);
        int n;
        const double *s = fx_get(&fx, k1, &n);
        int *l = fx_ints(&fx, k2, NULL);
        CHECK_NEAR(metric_average_precision(s, l, n), fx_get(&fx, k3, NULL)[0], 1e-14);
    }
    /* hand: [0.9 +, 0.8 -, 0.7 +] -> 1/2·1 + 1/2·2/3; a tie [0.5 +, 0.5 -] is ONE threshold -> 0.5 */
    double s1[3] = { 0.9, 0.8, 0.7 }, s2[2] = { 0.5, 0.5 };
    int l1[3] = { 1, 0, 1 }, l2[2] = { 1, 0 }, l0[2] = { 0, 0 };
    CHECK_NEAR(metric_average_precision(s1, l1, 3), 0.5 + 0.5 * 2 / 3.0, 1e-15);
    CHECK_NEAR(metric_average_precision(s2, l2, 2), 0.5, 1e-15);
    CHECK_NEAR(metric_average_precision(s2, l0, 2), 0.0, 0);
    fx_free(&fx);
}

TEST(sts_vs_scipy) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "stats.txt"));
    const double *dims = fx_get(&fx, "sts_dims", NULL);
    int n = (int)dims[0], dim = (int)dims[1];
    float *a = fx_floats(&fx, "sts_a", NULL), *b = fx_floats(&fx, "sts_b", NULL);
    const double *gold = fx_get(&fx, "sts_gold", NULL), *e = fx_get(&fx, "sts_expect", NULL);
    StsScores s;
    CHECK_OK(eval_sts(&s, a, b, gold, n, dim));
    /* sklearn computes the distances in float32; ranks are unaffected, Pearson to ~1e-7 */
    CHECK_NEAR(s.cosine_pearson, e[0], 1e-6);
    CHECK_NEAR(s.cosine_spearman, e[1], 1e-12);
    CHECK_NEAR(s.manhattan_pearson, e[2], 1e-6);
    CHECK_NEAR(s.manhattan_spearman, e[3], 1e-12);
    CHECK_NEAR(s.euclidean_pearson, e[4], 1e-6);
    CHECK_NEAR(s.euclidean_spearman, e[5], 1e-12);
    CHECK(s.main_score == s.cosine_spearman);
    CHECK_EQ_INT(eval_sts(&s, a, b, gold, 1, dim), AM_EINVAL);
    fx_free(&fx);
}

static void check_pc(const PairClassMetrics *m, const double *e, const char *what) {
    CHECKF(fabs(m->accuracy - e[0]) <= 1e-12, "%s accuracy %.12g vs %.12g", what, m->accuracy, e[0]);
    CHECKF(fabs(m->accuracy_threshold - e[1]) <= 1e-5, "%s acc threshold %.9g vs %.9g", what, m->accuracy_threshold, e[1]);
    CHECKF(fabs(m->f1 - e[2]) <= 1e-12, "%s f1 %.12g vs %.12g", what, m->f1, e[2]);
    CHECKF(fabs(m->f1_threshold - e[3]) <= 1e-5, "%s f1 threshold %.9g vs %.9g", what, m->f1_threshold, e[3]);
    CHECKF(fabs(m->precision - e[4]) <= 1e-12, "%s precision %.12g vs %.12g", what, m->precision, e[4]);
    CHECKF(fabs(m->recall - e[5]) <= 1e-12, "%s recall %.12g vs %.12g", what, m->recall, e[5]);
    CHECKF(fabs(m->ap - e[6]) <= 1e-12, "%s ap %.12g vs %.12g", what, m->ap, e[6]);
}

TEST(pair_classification_vs_mteb) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "stats.txt"));
    const double *dims = fx_get(&fx, "pc_dims", NULL);
    int n = (int)dims[0], dim = (int)dims[1];
    float *a = fx_floats(&fx, "pc_a", NULL), *b = fx_floats(&fx, "pc_b", NULL);
    int *lab = fx_ints(&fx, "pc_labels", NULL);
    const double *e = fx_get(&fx, "pc_expect", NULL);
    PairClassScores s;
    CHECK_OK(eval_pair_classification(&s, a, b, lab, n, dim));
    check_pc(&s.cosine, e, "cosine");
    check_pc(&s.dot, e + 7, "dot");
    check_pc(&s.manhattan, e + 14, "manhattan");
    check_pc(&s.euclidean, e + 21, "euclidean");
    double mx = 0;
    for (int i = 0; i < 4; i++) mx = fmax(mx, e[7 * i + 6]);
    CHECK_NEAR(s.max_ap, mx, 1e-12);
    CHECK(s.main_score == s.max_ap);
    /* raw scores with ties */
    int m;
    const double *rs = fx_get(&fx, "pcr_scores", &m);
    int *rl = fx_ints(&fx, "pcr_labels", NULL);
    PairClassMetrics pm;
    pair_class_metrics(&pm, rs, rl, m, 1);
    check_pc(&pm, fx_get(&fx, "pcr_expect", NULL), "raw");
    int badl[2] = { 0, 2 };
    CHECK_EQ_INT(eval_pair_classification(&s, a, b, badl, 2, dim), AM_EINVAL);
    fx_free(&fx);
}

TEST(v_measure_vs_sklearn) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "stats.txt"));
    int nc = (int)fx_get(&fx, "vm_ncases", NULL)[0];
    for (int i = 0; i < nc; i++) {
        char k1[32], k2[32], k3[32];
        snprintf(k1, sizeof k1, "vm%d_true", i); snprintf(k2, sizeof k2, "vm%d_pred", i); snprintf(k3, sizeof k3, "vm%d_expect", i);
        int n;
        int *t = fx_ints(&fx, k1, &n), *p = fx_ints(&fx, k2, NULL);
        const double *e = fx_get(&fx, k3, NULL);
        double h, c, v = metric_v_measure(t, p, n, &h, &c);
        CHECKF(fabs(h - e[0]) <= 1e-12 && fabs(c - e[1]) <= 1e-12 && fabs(v - e[2]) <= 1e-12,
               "case %d: h %.15g c %.15g v %.15g, expected %.15g %.15g %.15g", i, h, c, v, e[0], e[1], e[2]);
    }
    /* hand: identical partitions with other names -> 1; two clusters splitting two classes evenly -> 0 */
    int a[4] = { 0, 0, 1, 1 }, b[4] = { 7, 7, 3, 3 }, x[4] = { 0, 1, 0, 1 };
    CHECK_NEAR(metric_v_measure(a, b, 4, NULL, NULL), 1.0, 1e-15);
    CHECK_NEAR(metric_v_measure(a, x, 4, NULL, NULL), 0.0, 1e-15);
    fx_free(&fx);
}

/* ------------------------------------------------------------------ classification */

TEST(label_metrics_vs_sklearn) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "classif.txt"));
    int n;
    int *t = fx_ints(&fx, "lm_true", &n), *p = fx_ints(&fx, "lm_pred", NULL);
    const double *e = fx_get(&fx, "lm_expect", NULL);
    LabelMetrics m;
    CHECK_OK(metric_labels(&m, t, p, n, 5));
    double got[7] = { m.accuracy, m.precision, m.recall, m.f1, m.precision_weighted, m.recall_weighted, m.f1_weighted };
    for (int i = 0; i < 7; i++) CHECKF(fabs(got[i] - e[i]) <= 1e-14, "metric %d: %.15g vs %.15g", i, got[i], e[i]);
    fx_free(&fx);
}

static void logreg_case(Fx *fx, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "%s_dims", name);
    const double *dims = fx_get(fx, key, NULL);
    int n = (int)dims[0], nt = (int)dims[1], dim = (int)dims[2], k = (int)dims[3];
    snprintf(key, sizeof key, "%s_xtr", name); float *xtr = fx_floats(fx, key, NULL);
    snprintf(key, sizeof key, "%s_ytr", name); int *ytr = fx_ints(fx, key, NULL);
    snprintf(key, sizeof key, "%s_xte", name); float *xte = fx_floats(fx, key, NULL);
    snprintf(key, sizeof key, "%s_yte", name); int *yte = fx_ints(fx, key, NULL);
    snprintf(key, sizeof key, "%s_pred", name); int *epred = fx_ints(fx, key, NULL);
    snprintf(key, sizeof key, "%s_acc", name); double eacc = fx_get(fx, key, NULL)[0];
    snprintf(key, sizeof key, "%s_proba", name); const double *eproba = fx_get(fx, key, NULL);
    snprintf(key, sizeof key, "%s_coef", name); const double *ecoef = fx_get(fx, key, NULL);
    /* the optimum: tight tolerance on both sides */
    LogReg lr;
    CHECK_OK(logreg_fit(&lr, xtr, ytr, n, dim, k, 1.0, 100000, 0, AM_SKLEARN_1_2));
    CHECK(lr.converged);
    double *proba = xmalloc((size_t)nt * k * sizeof *proba);
    logreg_predict_proba(&lr, xte, nt, proba);
    double md = 0, mc = 0;
    for (int i = 0; i < nt * k; i++) md = fmax(md, fabs(proba[i] - eproba[i]));
    for (int r = 0; r < lr.n_rows; r++) {
        for (int j = 0; j < dim; j++) mc = fmax(mc, fabs(lr.coef[(size_t)r * dim + j] - ecoef[(size_t)r * (dim + 1) + j]));
        mc = fmax(mc, fabs(lr.intercept[r] - ecoef[(size_t)r * (dim + 1) + dim]));
    }
    CHECKF(md <= 1e-7, "%s: max |proba - sklearn| = %.3g", name, md);
    CHECKF(mc <= 1e-6, "%s: max |coef - sklearn| = %.3g", name, mc);
    printf("  info: %s tight fit: %d iterations, max |proba - sklearn| %.2g, max |coef - sklearn| %.2g\n", name, lr.n_iter, md, mc);
    logreg_free(&lr);
    /* MTEB's settings: max_iter 100, tol 1e-4 */
    CHECK_OK(logreg_fit(&lr, xtr, ytr, n, dim, k, 1.0, 100, 1e-4, AM_SKLEARN_1_2));
    int *pred = xmalloc((size_t)nt * sizeof *pred), diff = 0, correct = 0;
    logreg_predict(&lr, xte, nt, pred);
    for (int i = 0; i < nt; i++) { diff += pred[i] != epred[i]; correct += pred[i] == yte[i]; }
    CHECKF(diff == 0, "%s: %d test predictions differ from sklearn's", name, diff);
    CHECK_NEAR((double)correct / nt, eacc, 1e-12);
    printf("  info: %s default fit: %d iterations, accuracy %.4f (sklearn %.4f)\n", name, lr.n_iter, (double)correct / nt, eacc);
    int it12 = lr.n_iter;
    double *c12 = xmalloc((size_t)lr.n_rows * (dim + 1) * sizeof *c12);
    for (int r = 0; r < lr.n_rows; r++) {
        memcpy(c12 + (size_t)r * (dim + 1), lr.coef + (size_t)r * dim, (size_t)dim * sizeof *c12);
        c12[(size_t)r * (dim + 1) + dim] = lr.intercept[r];
    }
    logreg_free(&lr);
    /* scikit-learn >= 1.4 (MTEB 2, the default): the mean loss with ftol 64 eps stops elsewhere,
     * checked against the port in tests/ref/eval/sklearn14.py */
    snprintf(key, sizeof key, "%s_pred14", name); int *epred14 = fx_ints(fx, key, NULL);
    snprintf(key, sizeof key, "%s_coef14", name); const double *ecoef14 = fx_get(fx, key, NULL);
    snprintf(key, sizeof key, "%s_niter14", name); const double *eit = fx_get(fx, key, NULL);
    CHECK_OK(logreg_fit(&lr, xtr, ytr, n, dim, k, 1.0, 100, 1e-4, AM_SKLEARN_1_4));
    logreg_predict(&lr, xte, nt, pred);
    diff = 0;
    for (int i = 0; i < nt; i++) diff += pred[i] != epred14[i];
    CHECKF(diff == 0, "%s: %d test predictions differ from sklearn 1.4's", name, diff);
    double d14 = 0, d12 = 0;   /* distance to the 1.4 port's stopping point, and to our 1.2 one */
    for (int r = 0; r < lr.n_rows; r++)
        for (int j = 0; j <= dim; j++) {
            double v = j < dim ? lr.coef[(size_t)r * dim + j] : lr.intercept[r];
            d14 = fmax(d14, fabs(v - ecoef14[(size_t)r * (dim + 1) + j]));
            d12 = fmax(d12, fabs(v - c12[(size_t)r * (dim + 1) + j]));
        }
    printf("  info: %s 1.4 fit: %d iterations (scipy %d; 1.2: ours %d, sklearn %d), max |coef - 1.4 port| %.2g, "
           "max |coef - our 1.2 fit| %.2g\n", name, lr.n_iter, (int)eit[0], it12, (int)eit[1], d14, d12);
    CHECK(lr.n_iter < it12);
    CHECKF(d14 <= 1e-4, "%s: max |coef - 1.4 port| = %.3g", name, d14);
    CHECKF(d14 < d12, "%s: the 1.4 fit is nearer 1.2's stopping point (%.3g) than the 1.4 port's (%.3g)", name, d12, d14);
    logreg_free(&lr);
    free(proba); free(pred); free(c12);
}

TEST(logreg_vs_sklearn) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "classif.txt"));
    logreg_case(&fx, "lrb");
    logreg_case(&fx, "lrm");
    LogReg lr;
    float x[4] = { 0, 1, 2, 3 };
    int y[4] = { 0, 0, 2, 2 };   /* class 1 absent */
    CHECK_EQ_INT(logreg_fit(&lr, x, y, 4, 1, 3, 1.0, 100, 1e-4, AM_SKLEARN_1_4), AM_EINVAL);
    logreg_free(&lr);
    fx_free(&fx);
}

TEST(classification_protocol_vs_mteb) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "classif.txt"));
    const double *dims = fx_get(&fx, "cl_dims", NULL);
    int ntr = (int)dims[0], nte = (int)dims[1], dim = (int)dims[2], k = (int)dims[3];
    float *xtr = fx_floats(&fx, "cl_xtr", NULL), *xte = fx_floats(&fx, "cl_xte", NULL);
    int *ytr = fx_ints(&fx, "cl_ytr", NULL), *yte = fx_ints(&fx, "cl_yte", NULL);
    int nsel;
    int *esel = fx_ints(&fx, "cl_sel", &nsel);
    const double *e = fx_get(&fx, "cl_expect", NULL);
    /* undersampling picks MTEB's indices, experiment by experiment */
    int *idxs = xmalloc((size_t)ntr * sizeof *idxs), *sel = xmalloc((size_t)ntr * sizeof *sel);
    for (int i = 0; i < ntr; i++) idxs[i] = i;
    int off = 0, bad = 0;
    for (int ex = 0; ex < 10; ex++) {
        int m = classif_undersample(sel, idxs, ytr, ntr, k, 8, 42);
        CHECK_EQ_INT(m, 8 * k);
        for (int t = 0; t < m && off + t < nsel; t++) bad += sel[t] != esel[off + t];
        off += m;
    }
    CHECK_EQ_INT(off, nsel);
    CHECK_EQ_INT(bad, 0);
    const double *e14 = fx_get(&fx, "cl_expect14", NULL);
    ClassifOptions o;
    classif_options_default(&o);
    CHECK(o.sklearn == AM_SKLEARN_1_4);
    ClassifScores s;
    CHECK_OK(eval_classification(&s, xtr, ytr, ntr, xte, yte, nte, dim, k, &o));
    double got[7] = { s.accuracy, s.f1, s.f1_weighted, s.precision, s.precision_weighted, s.recall, s.recall_weighted };
    for (int i = 0; i < 7; i++) CHECKF(fabs(got[i] - e14[i]) <= 1e-12, "metric %d: %.15g vs MTEB/sklearn 1.4 %.15g", i, got[i], e14[i]);
    CHECK(isnan(s.ap) && s.main_score == s.accuracy && s.n_experiments == 10);
    o.sklearn = AM_SKLEARN_1_2;
    CHECK_OK(eval_classification(&s, xtr, ytr, ntr, xte, yte, nte, dim, k, &o));
    double got12[7] = { s.accuracy, s.f1, s.f1_weighted, s.precision, s.precision_weighted, s.recall, s.recall_weighted };
    for (int i = 0; i < 7; i++) CHECKF(fabs(got12[i] - e[i]) <= 1e-12, "metric %d: %.15g vs MTEB/sklearn 1.2 %.15g", i, got12[i], e[i]);
    o.sklearn = AM_SKLEARN_1_4;
    /* full train set: one fit */
    o.samples_per_label = 0;
    CHECK_OK(eval_classification(&s, xtr, ytr, ntr, xte, yte, nte, dim, k, &o));
    CHECK(s.accuracy > 0.8);
    /* binary task reports AP of the hard predictions */
    int *yb = xmalloc((size_t)ntr * sizeof *yb), *ybt = xmalloc((size_t)nte * sizeof *ybt);
    for (int i = 0; i < ntr; i++) yb[i] = ytr[i] == 0;
    for (int i = 0; i < nte; i++) ybt[i] = yte[i] == 0;
    classif_options_default(&o);
    CHECK_OK(eval_classification(&s, xtr, yb, ntr, xte, ybt, nte, dim, 2, &o));
    CHECK(!isnan(s.ap) && s.ap > 0 && s.ap <= 1);
    free(idxs); free(sel); free(yb); free(ybt);
    fx_free(&fx);
}

/* ------------------------------------------------------------------ bitext */

TEST(bitext_vs_sklearn) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "classif.txt"));
    const double *dims = fx_get(&fx, "bt_dims", NULL);
    int n = (int)dims[0], dim = (int)dims[1];
    float *src = fx_floats(&fx, "bt_src", NULL), *tgt = fx_floats(&fx, "bt_tgt", NULL);
    const double *e = fx_get(&fx, "bt_expect", NULL);
    BitextScores s;
    CHECK_OK(eval_bitext(&s, src, n, tgt, n, dim, NULL));
    CHECK_NEAR(s.accuracy, e[0], 1e-14);
    CHECK_NEAR(s.precision, e[1], 1e-14);
    CHECK_NEAR(s.recall, e[2], 1e-14);
    CHECK_NEAR(s.f1, e[3], 1e-14);
    CHECK(s.main_score == s.f1);
    /* hand: targets 0 and 1 identical -> both sources pick target 1 (tie: higher index);
     * gold 0->0 (wrong), 1->1 (right), 2->2 (right).
     * precision_1 = 1/2, recall_1 = 1, f1_1 = 2/3; label 0: 0/0/0; label 2: 1/1/1 */
    float sv[6] = { 1, 0, 1, 0, 0, 1 }, tv[6] = { 1, 0, 1, 0, 0, 1 };
    CHECK_OK(eval_bitext(&s, sv, 3, tv, 3, 2, NULL));
    CHECK_NEAR(s.accuracy, 2.0 / 3, 1e-15);
    CHECK_NEAR(s.recall, 2.0 / 3, 1e-15);
    CHECK_NEAR(s.precision, (0 + 0.5 + 1) / 3, 1e-15);
    CHECK_NEAR(s.f1, (0 + 2.0 / 3 + 1) / 3, 1e-15);
    fx_free(&fx);
}

/* ------------------------------------------------------------------ k-means, clustering */

TEST(kmeans_vs_sklearn_minibatch) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "random.txt"));
    const double *dims = fx_get(&fx, "km_dims", NULL);
    int n = (int)dims[0], dim = (int)dims[1], k = (int)dims[2];
    float *x = fx_floats(&fx, "km_x", NULL);
    int *y = fx_ints(&fx, "km_y", NULL);
    /* scikit-learn >= 1.4's k-means++ (the default; fixture from the port in sklearn14.py) and 1.2's */
    const char *names[4] = { "km_a14", "km_b14", "km_a", "km_b" };
    int batches[4] = { 64, 512, 64, 512 };
    int *lab = xmalloc((size_t)n * sizeof *lab), *lab2 = xmalloc((size_t)n * sizeof *lab2);
    int *first_labels = NULL;
    for (int c = 0; c < 4; c++) {
        char key[64];
        snprintf(key, sizeof key, "%s_labels", names[c]); int *el = fx_ints(&fx, key, NULL);
        snprintf(key, sizeof key, "%s_steps", names[c]); int esteps = (int)fx_get(&fx, key, NULL)[0];
        snprintf(key, sizeof key, "%s_v", names[c]); double ev = fx_get(&fx, key, NULL)[0];
        KMeansOptions o = { batches[c], 100, 42, c < 2 ? AM_SKLEARN_1_4 : AM_SKLEARN_1_2 };
        KMeans km;
        CHECK_OK(kmeans_fit(&km, lab, x, n, dim, k, &o));
        if (c == 0) {
            first_labels = xmalloc((size_t)n * sizeof *lab);
            memcpy(first_labels, lab, (size_t)n * sizeof *lab);
        }
        if (c == 2) CHECK(memcmp(lab, first_labels, (size_t)n * sizeof *lab) != 0);   /* another start */
        int diff = 0;
        for (int i = 0; i < n; i++) diff += lab[i] != el[i];
        double v = metric_v_measure(y, lab, n, NULL, NULL);
        printf("  info: %s (batch %d): %d steps (sklearn %d), %d/%d labels differ from sklearn, V %.6f (sklearn %.6f)\n",
               names[c], batches[c], km.n_steps, esteps, diff, n, v, ev);
        CHECKF(diff == 0, "%s: %d labels differ from sklearn's MiniBatchKMeans", names[c], diff);
        CHECK_EQ_INT(km.n_steps, esteps);
        CHECK_NEAR(v, ev, 1e-12);
        /* deterministic */
        KMeans km2;
        CHECK_OK(kmeans_fit(&km2, lab2, x, n, dim, k, &o));
        CHECK(memcmp(lab, lab2, (size_t)n * sizeof *lab) == 0);
        kmeans_free(&km2);
        kmeans_free(&km);
    }
    free(lab); free(lab2); free(first_labels);
    fx_free(&fx);
}

TEST(kmeans_separated_blobs) {
    int k = 5, per = 80, dim = 16, n = k * per;
    AmRng r;
    am_rng_seed(&r, 9);
    float *x = xmalloc((size_t)n * dim * sizeof *x), *ctr = xmalloc((size_t)k * dim * sizeof *ctr);
    int *y = xmalloc((size_t)n * sizeof *y), *lab = xmalloc((size_t)n * sizeof *lab);
    for (int i = 0; i < k * dim; i++) ctr[i] = am_rng_normal(&r) * 20.0f;
    for (int i = 0; i < n; i++) {
        y[i] = (int)am_rng_below(&r, (uint32_t)k);
        for (int j = 0; j < dim; j++) x[(size_t)i * dim + j] = ctr[y[i] * dim + j] + am_rng_normal(&r) * 0.5f;
    }
    for (int c = 0; c < k; c++) y[c] = c;
    for (int c = 0; c < k; c++) for (int j = 0; j < dim; j++) x[(size_t)c * dim + j] = ctr[c * dim + j];
    KMeans km;
    KMeansOptions o = { 64, 100, 1, AM_SKLEARN_1_4 };
    CHECK_OK(kmeans_fit(&km, lab, x, n, dim, k, &o));
    CHECK_NEAR(metric_v_measure(y, lab, n, NULL, NULL), 1.0, 1e-12);
    kmeans_free(&km);
    ClusterOptions co;
    cluster_options_default(&co);
    co.sample_size = 0;   /* every experiment on all points, seeds 42..51 */
    ClusterScores cs;
    CHECK_OK(eval_clustering(&cs, x, y, n, dim, &co));
    CHECK_NEAR(cs.v_measure, 1.0, 1e-12);
    CHECK_NEAR(cs.v_measure_std, 0.0, 1e-12);
    CHECK_EQ_INT(kmeans_fit(&km, lab, x, 3, dim, 4, &o), AM_EINVAL);
    kmeans_free(&km);
    free(x); free(ctr); free(y); free(lab);
}

TEST(clustering_protocol_vs_mteb) {
    Fx fx;
    CHECK_OK(fx_load(&fx, "random.txt"));
    const double *dims = fx_get(&fx, "km_dims", NULL);
    int n = (int)dims[0], dim = (int)dims[1];
    float *x = fx_floats(&fx, "km_x", NULL);
    int *y = fx_ints(&fx, "km_y", NULL);
    for (int v = 0; v < 2; v++) {   /* the default (sklearn >= 1.4's k-means++), then 1.2 */
        const double *e = fx_get(&fx, v == 0 ? "kmc_expect14" : "kmc_expect", NULL);
        ClusterOptions o;
        cluster_options_default(&o);
        CHECK(o.sklearn == AM_SKLEARN_1_4);
        o.sample_size = 256;
        o.sklearn = v == 0 ? AM_SKLEARN_1_4 : AM_SKLEARN_1_2;
        ClusterScores s;
        CHECK_OK(eval_clustering(&s, x, y, n, dim, &o));
        printf("  info: clustering bootstrap (sklearn %s): V %.6f ± %.6f (MTEB/sklearn %.6f ± %.6f)\n",
               am_sklearn_name(o.sklearn), s.v_measure, s.v_measure_std, e[0], e[1]);
        CHECK_NEAR(s.v_measure, e[0], 1e-12);
        CHECK_NEAR(s.v_measure_std, e[1], 1e-12);
        CHECK(s.main_score == s.v_measure && s.n_experiments == 10);
    }
    fx_free(&fx);
}

/* ------------------------------------------------------------------ uncertainty (boot.c) */

static void px_from(PerExample *p, int kind, const double *v, int n) {
    CHECK(px_init(p, kind, n) == AM_OK);
    for (int i = 0; i < n * p->ncols; i++) p->col[i] = (float)v[i];
}

TEST(bootstrap_and_paired_vs_numpy) {
    Fx fx;
    CHECK(fx_load(&fx, "boot.txt") == AM_OK);
    const double *par = fx_get(&fx, "params", NULL);
    int B = (int)par[0];
    uint32_t seed = (uint32_t)par[1];
    int n;
    PerExample p[4], pb[2];
    const double *v = fx_get(&fx, "mean_a", &n);
    px_from(&p[0], AM_PX_MEAN, v, n);
    v = fx_get(&fx, "mean_b", &n);
    px_from(&pb[0], AM_PX_MEAN, v, n);
    int ns;
    const double *gold = fx_get(&fx, "sp_gold", &ns), *sa = fx_get(&fx, "sp_a", NULL), *sb = fx_get(&fx, "sp_b", NULL);
    CHECK(px_init(&p[1], AM_PX_SPEARMAN, ns) == AM_OK && px_init(&pb[1], AM_PX_SPEARMAN, ns) == AM_OK);
    for (int i = 0; i < ns; i++) {
        p[1].col[i] = (float)sa[i];
        pb[1].col[i] = (float)sb[i];
        p[1].col[ns + i] = pb[1].col[ns + i] = (float)gold[i];
    }
    v = fx_get(&fx, "ap_cols", &n);
    px_from(&p[2], AM_PX_MAX_AP, v, n / 5);
    v = fx_get(&fx, "f1_cols", &n);
    px_from(&p[3], AM_PX_F1, v, n / 2);
    const double *es = fx_get(&fx, "expect_stat", NULL), *ese = fx_get(&fx, "expect_se", NULL);
    for (int k = 0; k < 4; k++) {
        CHECK_NEAR(px_statistic(&p[k], NULL, 0), es[k], 1e-12);
        CHECK_NEAR(px_bootstrap_se(&p[k], B, seed), ese[k], 1e-10);
    }
    const char *names[2] = {"expect_paired_mean", "expect_paired_spearman"};
    for (int k = 0; k < 2; k++) {
        const double *e = fx_get(&fx, names[k], NULL);
        PairedTest t;
        CHECK(px_paired_test(&t, &p[k], &pb[k], B, 11) == AM_OK);
        CHECK_NEAR(t.delta, e[0], 1e-12);
        CHECK_NEAR(t.se, e[1], 1e-10);
        CHECK_NEAR(t.p_value, e[2], 1e-15);
    }
    /* serialisation round trip, bad buffers */
    size_t len;
    void *buf = px_encode(&p[2], &len);
    PerExample q;
    CHECK(px_decode(&q, buf, len) == AM_OK);
    CHECK(q.kind == AM_PX_MAX_AP && q.n == p[2].n && memcmp(q.col, p[2].col, (size_t)5 * q.n * 4) == 0);
    px_free(&q);
    CHECK(px_decode(&q, buf, len - 1) == AM_EFORMAT);
    ((char *)buf)[0] = 'X';
    CHECK(px_decode(&q, buf, len) == AM_EFORMAT);
    am_clearerror();
    free(buf);
    for (int k = 0; k < 4; k++) px_free(&p[k]);
    px_free(&pb[0]);
    px_free(&pb[1]);
    fx_free(&fx);
}

/* two models whose per-query scores differ by a known amount: the test finds it; the same model
 * twice: no difference */
TEST(paired_test_known_difference_and_identical) {
    int n = 300;
    PerExample a, b, c;
    px_init(&a, AM_PX_MEAN, n);
    px_init(&b, AM_PX_MEAN, n);
    px_init(&c, AM_PX_MEAN, n);
    AmMt r;
    mt_seed(&r, 5);
    for (int i = 0; i < n; i++) {
        double base = mt_double(&r);
        a.col[i] = (float)base;
        b.col[i] = (float)(base + 0.03 + 0.05 * (mt_double(&r) - 0.5));   /* +0.03 on average */
        c.col[i] = a.col[i];
    }
    PairedTest t;
    CHECK(px_paired_test(&t, &b, &a, 1000, 42) == AM_OK);
    CHECK(t.delta > 0.025 && t.delta < 0.035);
    CHECK(t.p_value < 0.01);
    CHECK(t.se > 0 && t.se < 0.005);
    CHECK(fabs(t.delta) > 3 * t.se);
    CHECK(px_paired_test(&t, &c, &a, 1000, 42) == AM_OK);
    CHECK(t.delta == 0 && t.se == 0 && t.p_value == 1.0);
    /* a difference far below the noise is not significant */
    for (int i = 0; i < n; i++) c.col[i] = (float)((double)a.col[i] + (i % 2 ? 0.2 : -0.2) + (i == 0 ? 0.001 : 0));
    CHECK(px_paired_test(&t, &c, &a, 1000, 42) == AM_OK);
    CHECK(t.p_value > 0.5);
    /* SE of a mean ~ sd / sqrt(n) */
    double se = px_bootstrap_se(&a, 1000, 1);
    CHECK(se > 0.8 * sqrt(1.0 / 12 / n) && se < 1.2 * sqrt(1.0 / 12 / n));
    px_free(&c);
    px_init(&c, AM_PX_MEAN, n - 1);
    CHECK(px_paired_test(&t, &c, &a, 10, 1) == AM_EINVAL);
    am_clearerror();
    px_free(&a);
    px_free(&b);
    px_free(&c);
}

int main(void) {
    RUN(rng_numpy_python_streams);
    RUN(retrieval_vs_trec_eval_fixture);
    RUN(retrieval_hand_computed);
    RUN(retrieval_search_matches_brute_force);
    RUN(retrieval_timing_12k_by_1k);
    RUN(spearman_pearson_with_ties);
    RUN(average_precision_vs_sklearn);
    RUN(sts_vs_scipy);
    RUN(pair_classification_vs_mteb);
    RUN(v_measure_vs_sklearn);
    RUN(label_metrics_vs_sklearn);
    RUN(logreg_vs_sklearn);
    RUN(classification_protocol_vs_mteb);
    RUN(bitext_vs_sklearn);
    RUN(kmeans_vs_sklearn_minibatch);
    RUN(kmeans_separated_blobs);
    RUN(clustering_protocol_vs_mteb);
    RUN(bootstrap_and_paired_vs_numpy);
    RUN(paired_test_known_difference_and_identical);
    return test_report();
}
