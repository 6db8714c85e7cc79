/* stats.c - correlations, average precision, V-measure, label metrics, and the STS, pair
 * classification and bitext mining protocols built on them (see metrics.h for what each
 * matches). Everything is double precision; sorts are stable (index tie-break).
 */
#include "metrics.h"
#include "am_base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ sorting helpers */

typedef struct { double v; int i; } KeyIdx;

static int cmp_key_asc(const void *a, const void *b) {
    const KeyIdx *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}
/* descending by value, ascending index among equal values (Python's sorted(reverse=True)) */
static int cmp_key_desc(const void *a, const void *b) {
    const KeyIdx *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* ------------------------------------------------------------------ correlations */

void stats_rank_average(double *rank, const double *x, int n) {
    KeyIdx *k = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *k);
    for (int i = 0; i < n; i++) { k[i].v = x[i]; k[i].i = i; }
    qsort(k, (size_t)n, sizeof *k, cmp_key_asc);
    for (int s = 0; s < n;) {
        int e = s + 1;
        while (e < n && k[e].v == k[s].v) e++;
        double r = 0.5 * (double)(s + 1 + e);   /* mean of ranks s+1 .. e */
        for (int t = s; t < e; t++) rank[k[t].i] = r;
        s = e;
    }
    free(k);
}

double stats_pearson(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= n; my /= n;
    double sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        double a = x[i] - mx, b = y[i] - my;
        sxx += a * a; syy += b * b;
    }
    double nx = sqrt(sxx), ny = sqrt(syy);
    if (!(nx > 0) || !(ny > 0)) return NAN;
    double r = 0;
    for (int i = 0; i < n; i++) r += ((x[i] - mx) / nx) * ((y[i] - my) / ny);
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

double stats_spearman(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *rx = xmalloc((size_t)n * sizeof *rx), *ry = xmalloc((size_t)n * sizeof *ry);
    stats_rank_average(rx, x, n);
    stats_rank_average(ry, y, n);
    double r = stats_pearson(rx, ry, n);
    free(rx); free(ry);
    return r;
}

/* ------------------------------------------------------------------ average precision */

double metric_average_precision(const double *scores, const int *labels, int n) {
    int npos = 0;
    for (int i = 0; i < n; i++) npos += labels[i] == 1;
    if (npos == 0) return 0.0;
    KeyIdx *k = xmalloc((size_t)n * sizeof *k);
    for (int i = 0; i < n; i++) { k[i].v = scores[i]; k[i].i = i; }
    qsort(k, (size_t)n, sizeof *k, cmp_key_desc);
    double ap = 0, rprev = 0;
    int tp = 0;
    for (int s = 0; s < n;) {
        int e = s;
        while (e < n && k[e].v == k[s].v) { tp += labels[k[e].i] == 1; e++; }
        double r = (double)tp / npos, p = (double)tp / e;
        ap += (r - rprev) * p;
        rprev = r;
        s = e;
    }
    free(k);
    return ap;
}

/* ------------------------------------------------------------------ V-measure */

/* Map arbitrary int labels to 0..m-1 (order of first sorted appearance); returns m. */
static int dense_labels(int *out, const int *lab, int n) {
    KeyIdx *k = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *k);
    for (int i = 0; i < n; i++) { k[i].v = lab[i]; k[i].i = i; }
    qsort(k, (size_t)n, sizeof *k, cmp_key_asc);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && k[i].v != k[i - 1].v) m++;
        out[k[i].i] = m;
    }
    free(k);
    return n > 0 ? m + 1 : 0;
}

static double entropy_counts(const long *cnt, int m, long total) {
    double h = 0, lt = log((double)total);
    for (int i = 0; i < m; i++)
        if (cnt[i] > 0) h -= ((double)cnt[i] / total) * (log((double)cnt[i]) - lt);
    return h;
}

double metric_v_measure(const int *labels_true, const int *labels_pred, int n, double *h, double *c) {
    if (n == 0) { if (h) *h = 1; if (c) *c = 1; return 1.0; }
    int *a = xmalloc((size_t)n * sizeof *a), *b = xmalloc((size_t)n * sizeof *b);
    int na = dense_labels(a, labels_true, n), nb = dense_labels(b, labels_pred, n);
    long *ca = xcalloc((size_t)na, sizeof *ca), *cb = xcalloc((size_t)nb, sizeof *cb);
    for (int i = 0; i < n; i++) { ca[a[i]]++; cb[b[i]]++; }
    double hc = entropy_counts(ca, na, n), hk = entropy_counts(cb, nb, n);
    /* mutual information from the nonzero cells of the contingency table (sparse: sort pairs) */
    KeyIdx *cell = xmalloc((size_t)n * sizeof *cell);
    for (int i = 0; i < n; i++) { cell[i].v = (double)a[i] * nb + b[i]; cell[i].i = i; }
    qsort(cell, (size_t)n, sizeof *cell, cmp_key_asc);
    double mi = 0, ln = log((double)n);
    for (int s = 0; s < n;) {
        int e = s + 1;
        while (e < n && cell[e].v == cell[s].v) e++;
        long nij = e - s;
        int ia = a[cell[s].i], ib = b[cell[s].i];
        double pij = (double)nij / n;
        double t = pij * (log((double)nij) - ln) + pij * (-log((double)ca[ia] * (double)cb[ib]) + ln + ln);
        if (fabs(t) >= 2.220446049250313e-16) mi += t;   /* sklearn zeroes |term| < eps */
        s = e;
    }
    if (mi < 0) mi = 0;
    double hom = hc != 0 ? mi / hc : 1.0, com = hk != 0 ? mi / hk : 1.0;
    double v = hom + com == 0 ? 0.0 : 2.0 * hom * com / (hom + com);
    if (h) *h = hom;
    if (c) *c = com;
    free(a); free(b); free(ca); free(cb); free(cell);
    return v;
}

/* ------------------------------------------------------------------ label metrics */

int metric_labels(LabelMetrics *out, const int *y_true, const int *y_pred, int n, int n_labels) {
    memset(out, 0, sizeof *out);
    if (n < 1 || n_labels < 1) return am_error(AM_EINVAL, "metric_labels: n=%d n_labels=%d", n, n_labels);
    long *tp = xcalloc((size_t)n_labels, sizeof *tp), *np_ = xcalloc((size_t)n_labels, sizeof *np_),
         *nt = xcalloc((size_t)n_labels, sizeof *nt);
    long correct = 0;
    for (int i = 0; i < n; i++) {
        int t = y_true[i], p = y_pred[i];
        if (t < 0 || t >= n_labels || p < 0 || p >= n_labels) {
            free(tp); free(np_); free(nt);
            return am_error(AM_EINVAL, "metric_labels: label %d / prediction %d at %d outside [0, %d)", t, p, i, n_labels);
        }
        nt[t]++; np_[p]++;
        if (t == p) { tp[t]++; correct++; }
    }
    int nl = 0;
    for (int l = 0; l < n_labels; l++) {
        if (nt[l] == 0 && np_[l] == 0) continue;
        nl++;
        double p = np_[l] ? (double)tp[l] / np_[l] : 0.0;
        double r = nt[l] ? (double)tp[l] / nt[l] : 0.0;
        double f = (np_[l] + nt[l]) ? 2.0 * tp[l] / (double)(np_[l] + nt[l]) : 0.0;
        out->precision += p; out->recall += r; out->f1 += f;
        out->precision_weighted += p * nt[l]; out->recall_weighted += r * nt[l]; out->f1_weighted += f * nt[l];
    }
    out->precision /= nl; out->recall /= nl; out->f1 /= nl;
    out->precision_weighted /= n; out->recall_weighted /= n; out->f1_weighted /= n;
    out->accuracy = (double)correct / n;
    free(tp); free(np_); free(nt);
    return AM_OK;
}

/* ------------------------------------------------------------------ pair similarities */

static void pair_sims(double *cosv, double *dotv, double *l1, double *l2, const float *a,
                      const float *b, int n, int dim) {
    for (int i = 0; i < n; i++) {
        const float *x = a + (size_t)i * dim, *y = b + (size_t)i * dim;
        double dot = 0, xx = 0, yy = 0, s1 = 0, s2 = 0;
        for (int j = 0; j < dim; j++) {
            double u = x[j], v = y[j], dd = u - v;
            dot += u * v; xx += u * u; yy += v * v;
            s1 += fabs(dd); s2 += dd * dd;
        }
        if (cosv) cosv[i] = (xx > 0 && yy > 0) ? dot / (sqrt(xx) * sqrt(yy)) : 0.0;
        if (dotv) dotv[i] = dot;
        if (l1) l1[i] = s1;
        if (l2) l2[i] = sqrt(s2);
    }
}

int eval_sts(StsScores *out, const float *a, const float *b, const double *gold, int n, int dim) {
    memset(out, 0, sizeof *out);
    if (n < 2 || dim < 1) return am_error(AM_EINVAL, "eval_sts: need >= 2 pairs and dim >= 1 (n=%d dim=%d)", n, dim);
    double *cs = xmalloc((size_t)n * sizeof *cs), *l1 = xmalloc((size_t)n * sizeof *l1),
           *l2 = xmalloc((size_t)n * sizeof *l2);
    pair_sims(cs, NULL, l1, l2, a, b, n, dim);
    for (int i = 0; i < n; i++) { l1[i] = -l1[i]; l2[i] = -l2[i]; }
    out->cosine_pearson = stats_pearson(gold, cs, n);
    out->cosine_spearman = stats_spearman(gold, cs, n);
    out->manhattan_pearson = stats_pearson(gold, l1, n);
    out->manhattan_spearman = stats_spearman(gold, l1, n);
    out->euclidean_pearson = stats_pearson(gold, l2, n);
    out->euclidean_spearman = stats_spearman(gold, l2, n);
    out->main_score = out->cosine_spearman;
    free(cs); free(l1); free(l2);
    return AM_OK;
}

/* ------------------------------------------------------------------ pair classification */

void pair_class_metrics(PairClassMetrics *out, const double *scores, const int *labels, int n,
                        int high_is_similar) {
    memset(out, 0, sizeof *out);
    KeyIdx *k = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *k);
    for (int i = 0; i < n; i++) { k[i].v = scores[i]; k[i].i = i; }
    qsort(k, (size_t)n, sizeof *k, high_is_similar ? cmp_key_desc : cmp_key_asc);
    long npos = 0, nneg = 0;
    for (int i = 0; i < n; i++) { npos += labels[i] == 1; nneg += labels[i] == 0; }

    /* _find_best_acc_and_threshold */
    double max_acc = 0, acc_thr = -1.0;
    long pos_so_far = 0, rem_neg = nneg;
    for (int i = 0; i < n - 1; i++) {
        if (labels[k[i].i] == 1) pos_so_far++; else rem_neg--;
        double acc = (double)(pos_so_far + rem_neg) / n;
        if (acc > max_acc) { max_acc = acc; acc_thr = 0.5 * (k[i].v + k[i + 1].v); }
    }
    /* _find_best_f1_and_threshold */
    double best_f1 = 0, best_p = 0, best_r = 0, f1_thr = 0;
    long nextract = 0, ncorrect = 0;
    for (int i = 0; i < n - 1; i++) {
        nextract++;
        if (labels[k[i].i] == 1) ncorrect++;
        if (ncorrect > 0) {
            double p = (double)ncorrect / nextract, r = (double)ncorrect / npos;
            double f1 = 2 * p * r / (p + r);
            if (f1 > best_f1) { best_f1 = f1; best_p = p; best_r = r; f1_thr = 0.5 * (k[i].v + k[i + 1].v); }
        }
    }
    free(k);
    out->accuracy = max_acc; out->accuracy_threshold = acc_thr;
    out->f1 = best_f1; out->precision = best_p; out->recall = best_r; out->f1_threshold = f1_thr;
    if (high_is_similar) {
        out->ap = metric_average_precision(scores, labels, n);
    } else {
        double *neg = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *neg);
        for (int i = 0; i < n; i++) neg[i] = -scores[i];
        out->ap = metric_average_precision(neg, labels, n);
        free(neg);
    }
}

int eval_pair_classification(PairClassScores *out, const float *a, const float *b,
                             const int *labels, int n, int dim) {
    memset(out, 0, sizeof *out);
    if (n < 2 || dim < 1) return am_error(AM_EINVAL, "eval_pair_classification: need >= 2 pairs and dim >= 1 (n=%d dim=%d)", n, dim);
    for (int i = 0; i < n; i++)
        if (labels[i] != 0 && labels[i] != 1)
            return am_error(AM_EINVAL, "eval_pair_classification: label %d of pair %d is not 0/1", labels[i], i);
    double *cs = xmalloc((size_t)n * sizeof *cs), *dt = xmalloc((size_t)n * sizeof *dt),
           *l1 = xmalloc((size_t)n * sizeof *l1), *l2 = xmalloc((size_t)n * sizeof *l2);
    pair_sims(cs, dt, l1, l2, a, b, n, dim);
    pair_class_metrics(&out->cosine, cs, labels, n, 1);
    pair_class_metrics(&out->dot, dt, labels, n, 1);
    pair_class_metrics(&out->manhattan, l1, labels, n, 0);
    pair_class_metrics(&out->euclidean, l2, labels, n, 0);
    const PairClassMetrics *m[4] = { &out->cosine, &out->dot, &out->manhattan, &out->euclidean };
    out->max_accuracy = out->max_f1 = out->max_precision = out->max_recall = out->max_ap = -INFINITY;
    for (int i = 0; i < 4; i++) {
        out->max_accuracy = fmax(out->max_accuracy, m[i]->accuracy);
        out->max_f1 = fmax(out->max_f1, m[i]->f1);
        out->max_precision = fmax(out->max_precision, m[i]->precision);
        out->max_recall = fmax(out->max_recall, m[i]->recall);
        out->max_ap = fmax(out->max_ap, m[i]->ap);
    }
    out->main_score = out->max_ap;
    free(cs); free(dt); free(l1); free(l2);
    return AM_OK;
}

/* ------------------------------------------------------------------ bitext mining */

int eval_bitext(BitextScores *out, const float *src, int n, const float *tgt, int nt, int dim,
                const int *gold) {
    memset(out, 0, sizeof *out);
    if (n < 1 || nt < 1 || dim < 1)
        return am_error(AM_EINVAL, "eval_bitext: bad shape n=%d nt=%d dim=%d", n, nt, dim);
    if (!gold && nt < n) return am_error(AM_EINVAL, "eval_bitext: identity gold needs nt >= n (n=%d nt=%d)", n, nt);
    int *g = xmalloc((size_t)n * sizeof *g), *pred = xmalloc((size_t)n * sizeof *pred),
        *nret = xmalloc((size_t)n * sizeof *nret);
    for (int i = 0; i < n; i++) {
        g[i] = gold ? gold[i] : i;
        if (g[i] < 0 || g[i] >= nt) {
            int bad = g[i];
            free(g); free(pred); free(nret);
            return am_error(AM_EINVAL, "eval_bitext: gold[%d] = %d outside [0, %d)", i, bad, nt);
        }
    }
    RetrievalOptions opt = { .sim = AM_SIM_COSINE };
    int rc = retrieval_search(pred, NULL, nret, src, n, tgt, nt, dim, 1, &opt);
    if (rc == AM_OK) {
        LabelMetrics lm;
        rc = metric_labels(&lm, g, pred, n, nt);
        if (rc == AM_OK) {
            out->accuracy = lm.accuracy;
            out->precision = lm.precision_weighted;
            out->recall = lm.recall_weighted;
            out->f1 = lm.f1_weighted;
            out->main_score = out->f1;
        }
    }
    free(g); free(pred); free(nret);
    return rc;
}

const char *am_sklearn_name(AmSklearn v) { return v == AM_SKLEARN_1_2 ? "1.2" : "1.4"; }
