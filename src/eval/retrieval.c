/* retrieval.c - dense top-k retrieval and trec_eval's measures (see metrics.h).
 *
 * Search: queries are taken in fixed blocks of QB rows and the corpus in chunks of DB rows;
 * S = Q_blk · D_chunkᵀ (one single-threaded sgemm, scaled by inverse norms for cosine), then
 * every score of a query row is offered to that query's candidate buffer. The buffer holds up
 * to 2k candidates; when full it is cut back to the best k (quickselect) and the k-th best
 * becomes the admission threshold, so most scores are rejected by one comparison and no full
 * sort ever happens. Query blocks are spread over the compute pool; every block does the same
 * arithmetic whatever the thread count, so results are identical at any thread count.
 *
 * Order: score descending, then trec_eval's tie-break (docno descending by strcmp, or doc index
 * descending without ids). The same strict total order decides which docs enter the top k,
 * so a tie at the k-th place is resolved deterministically too.
 */
#include "metrics.h"
#include "am_base.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { QB = 64, DB = 4096 };

typedef struct { float s; int id; } Cand;

static inline int better(Cand a, Cand b, const char *const *ids) {
    if (a.s != b.s) return a.s > b.s;
    if (ids && a.id != b.id) {
        int c = strcmp(ids[a.id], ids[b.id]);
        if (c != 0) return c > 0;
    }
    return a.id > b.id;
}

/* Rearrange a[0..n) so that a[0..kth) are the kth best (any order) and a[kth-1] is the worst
 * of them. 1 <= kth <= n. Iterative quickselect, median-of-three pivot. */
static void select_best(Cand *a, int n, int kth, const char *const *ids) {
    int lo = 0, hi = n - 1, target = kth - 1;
    while (hi > lo) {
        int mid = lo + (hi - lo) / 2;
        /* order a[lo], a[mid], a[hi] best-first and use a[mid] as pivot */
        if (better(a[mid], a[lo], ids)) { Cand t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
        if (better(a[hi], a[lo], ids)) { Cand t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
        if (better(a[hi], a[mid], ids)) { Cand t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
        Cand p = a[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (better(a[i], p, ids)) i++;
            while (better(p, a[j], ids)) j--;
            if (i <= j) { Cand t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else return;
    }
}

/* Stable merge sort best-first; tmp has room for n. */
static void sort_best(Cand *a, Cand *tmp, int n, const char *const *ids) {
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = better(a[j], a[i], ids) ? a[j++] : a[i++];
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
        }
        memcpy(a, tmp, (size_t)n * sizeof *a);
    }
}

typedef struct {
    const float *q, *d;
    const float *invq, *invd;     /* NULL for dot */
    int nq, nd, dim, k, kk, cap;
    const RetrievalOptions *opt;
    int *idx; float *score; int *nret;
} SearchCtx;

static void search_task(void *vctx, int tid, int nth) {
    SearchCtx *c = vctx;
    const char *const *ids = c->opt->doc_ids;
    int nblocks = (c->nq + QB - 1) / QB;
    size_t blo, bhi;
    am_split((size_t)nblocks, tid, nth, &blo, &bhi);
    if (blo >= bhi) return;
    float *S = xmalloc((size_t)QB * DB * sizeof *S);
    Cand *buf = xmalloc((size_t)QB * c->cap * sizeof *buf);
    Cand *tmp = xmalloc((size_t)c->cap * sizeof *tmp);
    int cnt[QB], full[QB];
    Cand thr[QB];
    for (size_t b = blo; b < bhi; b++) {
        int q0 = (int)b * QB, nqb = c->nq - q0 < QB ? c->nq - q0 : QB;
        for (int i = 0; i < nqb; i++) { cnt[i] = 0; full[i] = 0; }
        for (int d0 = 0; d0 < c->nd; d0 += DB) {
            int ndb = c->nd - d0 < DB ? c->nd - d0 : DB;
            blas_gemm_nt(S, ndb, c->q + (size_t)q0 * c->dim, c->dim, c->d + (size_t)d0 * c->dim, c->dim,
                         nqb, ndb, c->dim, 1.0f, 0.0f);
            for (int i = 0; i < nqb; i++) {
                float *row = S + (size_t)i * ndb;
                Cand *qb = buf + (size_t)i * c->cap;
                if (c->invq) {
                    float iq = c->invq[q0 + i];
                    const float *id = c->invd + d0;
                    for (int j = 0; j < ndb; j++) row[j] = row[j] * iq * id[j];
                }
                for (int j = 0; j < ndb; j++) {
                    float s = row[j];
                    if (full[i] && s < thr[i].s) continue;   /* the common case: one compare */
                    if (s != s) s = -INFINITY;               /* NaN ranks last */
                    Cand cd = { s, d0 + j };
                    if (full[i] && !better(cd, thr[i], ids)) continue;
                    qb[cnt[i]++] = cd;
                    if (cnt[i] == c->cap) {
                        select_best(qb, cnt[i], c->kk, ids);
                        cnt[i] = c->kk;
                        thr[i] = qb[c->kk - 1];
                        /* the k-th best is the worst of the kept ones: find it */
                        for (int t = 0; t < c->kk - 1; t++)
                            if (better(thr[i], qb[t], ids)) thr[i] = qb[t];
                        full[i] = 1;
                    }
                }
            }
        }
        for (int i = 0; i < nqb; i++) {
            int qi = q0 + i;
            Cand *qb = buf + (size_t)i * c->cap;
            int n = cnt[i];
            if (n > c->kk) { select_best(qb, n, c->kk, ids); n = c->kk; }
            sort_best(qb, tmp, n, ids);
            int self = c->opt->self_doc ? c->opt->self_doc[qi] : -1, m = 0;
            int *orow = c->idx + (size_t)qi * c->k;
            float *srow = c->score ? c->score + (size_t)qi * c->k : NULL;
            for (int t = 0; t < n; t++) {
                if (qb[t].id == self) continue;
                orow[m] = qb[t].id;
                if (srow) srow[m] = qb[t].s;
                m++;
            }
            c->nret[qi] = m;
            for (int t = m; t < c->k; t++) { orow[t] = -1; if (srow) srow[t] = -INFINITY; }
        }
    }
    free(S); free(buf); free(tmp);
}

static float *inv_norms(const float *x, int n, int dim) {
    float *inv = am_alloc_floats((size_t)(n > 0 ? n : 1));
    if (!inv) return NULL;
    for (int i = 0; i < n; i++) {
        double s = 0;
        const float *r = x + (size_t)i * dim;
        for (int j = 0; j < dim; j++) s += (double)r[j] * (double)r[j];
        inv[i] = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    }
    return inv;
}

int retrieval_search(int *idx, float *score, int *nret, const float *q, int nq, const float *d,
                     int nd, int dim, int k, const RetrievalOptions *opt) {
    RetrievalOptions def = { 0 };
    if (!opt) opt = &def;
    if (nq < 0 || nd < 0 || dim < 1 || k < 1)
        return am_error(AM_EINVAL, "retrieval_search: bad shape nq=%d nd=%d dim=%d k=%d", nq, nd, dim, k);
    if (opt->sim != AM_SIM_COSINE && opt->sim != AM_SIM_DOT)
        return am_error(AM_EINVAL, "retrieval_search: unknown similarity %d", (int)opt->sim);
    if (opt->self_doc)
        for (int i = 0; i < nq; i++)
            if (opt->self_doc[i] < -1 || opt->self_doc[i] >= nd)
                return am_error(AM_EINVAL, "retrieval_search: self_doc[%d] = %d outside [-1, %d)", i, opt->self_doc[i], nd);
    if (nq == 0) return AM_OK;
    if (nd == 0) {
        for (int i = 0; i < nq; i++) {
            nret[i] = 0;
            for (int t = 0; t < k; t++) { idx[(size_t)i * k + t] = -1; if (score) score[(size_t)i * k + t] = -INFINITY; }
        }
        return AM_OK;
    }
    float *invq = NULL, *invd = NULL;
    if (opt->sim == AM_SIM_COSINE) {
        invq = inv_norms(q, nq, dim);
        invd = inv_norms(d, nd, dim);
        if (!invq || !invd) {
            am_free_aligned(invq); am_free_aligned(invd);
            return am_error(AM_ENOMEM, "retrieval_search: norms of %d + %d rows", nq, nd);
        }
    }
    int kk = k < nd ? k : nd;
    SearchCtx c = { q, d, invq, invd, nq, nd, dim, k, kk, 2 * kk, opt, idx, score, nret };
    size_t work = (size_t)nq * nd * (size_t)dim;
    am_parallel_run_min(search_task, &c, work, (size_t)1 << 22);
    am_free_aligned(invq);
    am_free_aligned(invd);
    return AM_OK;
}

/* ------------------------------------------------------------------ measures */

typedef struct { int doc, grade; } Judg;

static int cmp_judg_doc(const void *a, const void *b) {
    int x = ((const Judg *)a)->doc, y = ((const Judg *)b)->doc;
    return (x > y) - (x < y);
}
static int cmp_int_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int retrieval_query_measures(double *out, const int *ranked, int nret, const int *jdoc,
                             const int *jgrade, int nj, const int *ks, int nks) {
    Judg *j = xmalloc((size_t)(nj > 0 ? nj : 1) * sizeof *j);
    int *g = xmalloc((size_t)(nj > 0 ? nj : 1) * sizeof *g);
    int nrel = 0;
    for (int i = 0; i < nj; i++) {
        j[i].doc = jdoc[i]; j[i].grade = jgrade[i]; g[i] = jgrade[i];
        if (jgrade[i] >= 1) nrel++;
    }
    qsort(j, (size_t)nj, sizeof *j, cmp_judg_doc);
    qsort(g, (size_t)nj, sizeof *g, cmp_int_desc);
    for (int i = 1; i < nj; i++)
        if (j[i].doc == j[i - 1].doc) { free(j); free(g); return -1; }

    int kmax = ks[nks - 1];
    int n = nret < kmax ? nret : kmax;
    double dcg = 0, ap = 0, idcg = 0;
    int rel_so_far = 0, first_rel = 0;   /* 1-based rank of the first relevant, 0 = none */
    int ci = 0;                          /* next cutoff to record */
    for (int i = 0; i < kmax && ci < nks; i++) {
        if (i < n) {
            int grade = 0, lo = 0, hi = nj - 1;
            while (lo <= hi) {
                int mid = (lo + hi) / 2;
                if (j[mid].doc == ranked[i]) { grade = j[mid].grade; break; }
                if (j[mid].doc < ranked[i]) lo = mid + 1; else hi = mid - 1;
            }
            if (grade > 0) dcg += grade / log2((double)(i + 2));
            if (grade >= 1) {
                rel_so_far++;
                ap += (double)rel_so_far / (double)(i + 1);
                if (!first_rel) first_rel = i + 1;
            }
        }
        if (i < nj && g[i] > 0) idcg += g[i] / log2((double)(i + 2));
        while (ci < nks && ks[ci] == i + 1) {
            int k = ks[ci];
            out[AM_RM_NDCG * nks + ci] = idcg > 0 ? dcg / idcg : 0.0;
            out[AM_RM_MAP * nks + ci] = nrel ? ap / nrel : 0.0;
            out[AM_RM_RECALL * nks + ci] = nrel ? (double)rel_so_far / nrel : 0.0;
            out[AM_RM_PRECISION * nks + ci] = (double)rel_so_far / k;
            out[AM_RM_MRR * nks + ci] = first_rel ? 1.0 / first_rel : 0.0;
            out[AM_RM_HIT * nks + ci] = rel_so_far > 0 ? 1.0 : 0.0;
            ci++;
        }
    }
    free(j);
    free(g);
    return nrel;
}

static int check_ks(const int *ks, int nks) {
    if (nks < 1 || nks > AM_EVAL_MAX_K)
        return am_error(AM_EINVAL, "retrieval: %d cutoffs (need 1..%d)", nks, AM_EVAL_MAX_K);
    for (int i = 0; i < nks; i++)
        if (ks[i] < 1 || (i > 0 && ks[i] <= ks[i - 1]))
            return am_error(AM_EINVAL, "retrieval: cutoffs must be >= 1, ascending and distinct (ks[%d] = %d)", i, ks[i]);
    return AM_OK;
}

int eval_retrieval_ranked(RetrievalScores *out, const int *ranked, const int *nret, int stride,
                          const Qrels *qrels, const int *ks, int nks, const RetrievalOptions *opt) {
    RetrievalOptions def = { 0 };
    if (!opt) opt = &def;
    int rc = check_ks(ks, nks);
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    out->nks = nks;
    memcpy(out->ks, ks, (size_t)nks * sizeof *ks);
    double *m = xmalloc((size_t)AM_RM_COUNT * nks * sizeof *m);
    for (int qi = 0; qi < qrels->nq; qi++) {
        int o0 = qrels->offsets[qi], o1 = qrels->offsets[qi + 1];
        if (o1 < o0) { free(m); return am_error(AM_EINVAL, "qrels: offsets decrease at query %d", qi); }
        for (int t = o0; t < o1; t++)
            if (qrels->grade[t] < 0) { free(m); return am_error(AM_EINVAL, "qrels: query %d has negative grade %d", qi, qrels->grade[t]); }
        if (opt->per_query) opt->per_query[qi] = NAN;
        if (o1 == o0) { out->n_skipped++; continue; }
        int nrel = retrieval_query_measures(m, ranked + (size_t)qi * stride, nret[qi], qrels->doc + o0,
                                            qrels->grade + o0, o1 - o0, ks, nks);
        if (nrel < 0) { free(m); return am_error(AM_EINVAL, "qrels: query %d judges a doc twice", qi); }
        if (nrel == 0 && opt->skip_no_relevant) { out->n_skipped++; continue; }
        if (opt->per_query) {
            int mc = 0;
            for (int c = 0; c < nks; c++) if (ks[c] <= 10) mc = c;
            opt->per_query[qi] = m[AM_RM_NDCG * nks + mc];
        }
        for (int c = 0; c < nks; c++) {
            out->ndcg[c] += m[AM_RM_NDCG * nks + c];
            out->map[c] += m[AM_RM_MAP * nks + c];
            out->recall[c] += m[AM_RM_RECALL * nks + c];
            out->precision[c] += m[AM_RM_PRECISION * nks + c];
            out->mrr[c] += m[AM_RM_MRR * nks + c];
            out->hit_rate[c] += m[AM_RM_HIT * nks + c];
        }
        out->n_evaluated++;
    }
    free(m);
    if (out->n_evaluated > 0)
        for (int c = 0; c < nks; c++) {
            double n = out->n_evaluated;
            out->ndcg[c] /= n; out->map[c] /= n; out->recall[c] /= n;
            out->precision[c] /= n; out->mrr[c] /= n; out->hit_rate[c] /= n;
        }
    int main = 0;
    for (int c = 0; c < nks; c++) if (ks[c] <= 10) main = c;
    out->main_score = out->ndcg[main];
    return AM_OK;
}

static int check_qrels(const Qrels *qr, int nq, int nd) {
    if (!qr || qr->nq != nq)
        return am_error(AM_EINVAL, "retrieval: qrels for %d queries, embeddings for %d", qr ? qr->nq : -1, nq);
    if (qr->offsets[0] != 0) return am_error(AM_EINVAL, "qrels: offsets[0] = %d, expected 0", qr->offsets[0]);
    int *seen = xcalloc((size_t)(nd > 0 ? nd : 1), sizeof *seen);   /* stamp = query + 1 */
    for (int qi = 0; qi < nq; qi++) {
        if (qr->offsets[qi + 1] < qr->offsets[qi]) { free(seen); return am_error(AM_EINVAL, "qrels: offsets decrease at query %d", qi); }
        for (int t = qr->offsets[qi]; t < qr->offsets[qi + 1]; t++) {
            int dd = qr->doc[t];
            if (dd < 0 || dd >= nd) { free(seen); return am_error(AM_EINVAL, "qrels: query %d names doc %d outside [0, %d)", qi, dd, nd); }
            if (seen[dd] == qi + 1) { free(seen); return am_error(AM_EINVAL, "qrels: query %d judges doc %d twice", qi, dd); }
            seen[dd] = qi + 1;
        }
    }
    free(seen);
    return AM_OK;
}

int eval_retrieval(RetrievalScores *out, const float *q, int nq, const float *d, int nd, int dim,
                   const Qrels *qrels, const int *ks, int nks, const RetrievalOptions *opt) {
    int rc = check_ks(ks, nks);
    if (rc) return rc;
    if ((rc = check_qrels(qrels, nq, nd))) return rc;
    int k = ks[nks - 1];
    int *idx = malloc((size_t)(nq > 0 ? nq : 1) * k * sizeof *idx);
    int *nret = malloc((size_t)(nq > 0 ? nq : 1) * sizeof *nret);
    if (!idx || !nret) { free(idx); free(nret); return am_error(AM_ENOMEM, "eval_retrieval: top-%d lists for %d queries", k, nq); }
    rc = retrieval_search(idx, NULL, nret, q, nq, d, nd, dim, k, opt);
    if (rc == AM_OK) rc = eval_retrieval_ranked(out, idx, nret, k, qrels, ks, nks, opt);
    free(idx);
    free(nret);
    return rc;
}
