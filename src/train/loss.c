/* loss.c - losses on pooled embeddings (see loss.h for every definition); loss_spec.c composes
 * them into LossSpec trees (Matryoshka, Starbucks, random 2D) and evaluates those.
 *
 * Dims legend: n examples, P positives and K hard negatives per example, R = n(1+P+K) rows,
 * M = nP + nK candidate rows, d = features used (first d of each row), L layers, C hidden size.
 *
 * Each loss is one static function `x_eval(in, opts, demb, w)` that returns the loss and, when demb
 * is non-NULL, adds w·∂L/∂emb into it; the public x_forward / x_backward are thin wrappers. Inside,
 * rows are copied to double (normalised for cosine), score matrices come from dgemm, softmaxes and
 * logs are double, and the gradient flows back through the normalisation into the float rows.
 */
#include "loss.h"
#include "loss_internal.h"
#include "am_base.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NORM_EPS 1e-12 /* torch F.normalize */

/* ------------------------------------------------------------------ rows in double */

typedef struct {
    int R, d;
    double *x;    /* (R, d) rows as the similarity sees them (normalised if cosine) */
    double *nrm;  /* (R) norms of the raw rows */
    double *dx;   /* (R, d) ∂L/∂x, zeroed; NULL without gradient */
} Rows;

static void rows_init(Rows *r, const LossInput *in, int sim, int grad) {
    const int R = loss_input_rows(in), d = in->dim;
    r->R = R;
    r->d = d;
    r->x = xmalloc((size_t)R * d * sizeof(double));
    r->nrm = xmalloc((size_t)R * sizeof(double));
    r->dx = grad ? xcalloc((size_t)R * d, sizeof(double)) : NULL;
    for (int i = 0; i < R; i++) {
        const float *e = in->emb + (size_t)i * in->ld;
        double *x = r->x + (size_t)i * d, ss = 0;
        for (int c = 0; c < d; c++) {
            x[c] = (double)e[c];
            ss += x[c] * x[c];
        }
        r->nrm[i] = sqrt(ss);
        if (sim == AM_SIM_COS) {
            double inv = 1.0 / (r->nrm[i] > NORM_EPS ? r->nrm[i] : NORM_EPS);
            for (int c = 0; c < d; c++) x[c] *= inv;
        }
    }
}

static void rows_free(Rows *r) {
    free(r->x);
    free(r->nrm);
    free(r->dx);
}

/* demb (R, ld) += w · ∂L/∂emb, through the normalisation when sim is cosine */
static void rows_backward(const Rows *r, const LossInput *in, int sim, float *demb, double w) {
    const int d = r->d;
    for (int i = 0; i < r->R; i++) {
        const double *g = r->dx + (size_t)i * d, *x = r->x + (size_t)i * d;
        float *o = demb + (size_t)i * in->ld;
        if (sim == AM_SIM_COS) {
            if (r->nrm[i] > NORM_EPS) {
                double dot = 0;
                for (int c = 0; c < d; c++) dot += g[c] * x[c];
                double inv = w / r->nrm[i];
                for (int c = 0; c < d; c++) o[c] += (float)((g[c] - x[c] * dot) * inv);
            } else {
                for (int c = 0; c < d; c++) o[c] += (float)(g[c] * w / NORM_EPS);
            }
        } else {
            for (int c = 0; c < d; c++) o[c] += (float)(g[c] * w);
        }
    }
}

/* S (m, k) = A (m, d) · B (k, d)ᵀ · alpha */
static void dgemm_nt(double *S, const double *A, int m, const double *B, int k, int d, double alpha) {
    blas_dgemm_nt(S, k, A, d, B, d, m, k, d, alpha, 0.0);
}
/* C (m, n) += A (m, k) · B (k, n) */
static void dgemm_nn_acc(double *Cm, const double *A, const double *B, int m, int k, int n) {
    blas_dgemm_nn(Cm, n, A, k, B, n, m, n, k, 1.0, 1.0);
}
/* C (m, n) += A (k, m)ᵀ · B (k, n) */
static void dgemm_tn_acc(double *Cm, const double *A, const double *B, int m, int k, int n) {
    blas_dgemm_tn(Cm, n, A, m, B, n, m, n, k, 1.0, 1.0);
}

/* log Σ exp(t) over m entries */
static double lse(const double *t, int m) {
    double mx = -(double)INFINITY;
    for (int i = 0; i < m; i++) mx = t[i] > mx ? t[i] : mx;
    if (isinf(mx) && mx < 0) return mx;
    double s = 0;
    for (int i = 0; i < m; i++) s += exp(t[i] - mx);
    return mx + log(s);
}

/* cross-entropy of logits t (m) against target; g (m) = softmax - onehot (if non-NULL) */
static double ce_row(const double *t, int m, int target, double *g) {
    double z = lse(t, m);
    if (g) {
        for (int i = 0; i < m; i++) g[i] = exp(t[i] - z);
        g[target] -= 1.0;
    }
    return z - t[target];
}

/* ------------------------------------------------------------------ InfoNCE */

/* the weight of each trained (query, positive slot): valid query and a real positive */
static int infonce_pair_ok(const LossInput *in, const uint8_t *valid, int i, int j) {
    return valid[i] && (!in->cand || in->cand[i * in->n_pos + j]);
}

double loss_infonce_eval(const LossInput *in, const InfoNCEOptions *o, float *demb, double w) {
    const int n = in->n, P = in->n_pos, K = in->n_neg, d = in->dim, M = n * P + n * K;
    AM_ASSERT(n >= 1 && P >= 1 && K >= 0 && d >= 1 && d <= in->ld);
    const int use_thr = in->gold && isfinite(o->threshold);
    const int lse_mode = o->multi_pos == AM_MULTIPOS_LSE && P > 1;
    uint8_t *valid = xmalloc((size_t)n);
    int nv = 0, npairs = 0;
    for (int i = 0; i < n; i++) valid[i] = !use_thr || in->gold[i] >= o->threshold;
    for (int i = 0; i < n; i++) {
        int real = 0;
        for (int j = 0; j < P; j++) real += infonce_pair_ok(in, valid, i, j);
        npairs += real;
        if (lse_mode && !real) valid[i] = 0; /* no own positive to score */
        nv += valid[i];
    }
    if (nv == 0 || npairs == 0) {
        free(valid);
        return 0.0;
    }
    Rows r;
    rows_init(&r, in, o->sim, demb != NULL);
    const double s = (double)o->scale;
    const double *Xq = r.x, *Xc = r.x + (size_t)n * d;
    double *S = xmalloc((size_t)n * M * sizeof(double));
    double *dS = demb ? xcalloc((size_t)n * M, sizeof(double)) : NULL;
    dgemm_nt(S, Xq, n, Xc, M, d, s);
    if (in->cand) /* padding is nobody's candidate: e^-inf = 0 in every softmax, no gradient */
        for (int i = 0; i < n; i++)
            for (int c = 0; c < M; c++)
                if (!in->cand[c]) S[(size_t)i * M + c] = -(double)INFINITY;
    const int mrow = M + n; /* longest logit row: n + nK (slot), M (all) or n (symmetric) */
    double *t = xmalloc((size_t)mrow * sizeof(double)), *g = xmalloc((size_t)mrow * sizeof(double));
    double loss_f = 0, loss_b = 0;
    if (lse_mode) {
        const double wr = 1.0 / nv;
        for (int i = 0; i < n; i++) {
            if (!valid[i]) continue;
            const double *Si = S + (size_t)i * M;
            double za = lse(Si, M), zp;
            for (int j = 0; j < P; j++) t[j] = Si[i * P + j];
            zp = lse(t, P);
            loss_f += (za - zp) * wr;
            if (dS) {
                double *dSi = dS + (size_t)i * M;
                for (int c = 0; c < M; c++) dSi[c] += exp(Si[c] - za) * wr;
                for (int j = 0; j < P; j++) dSi[i * P + j] -= exp(t[j] - zp) * wr;
            }
        }
    } else {
        const double wr = 1.0 / npairs;
        const int m = n + n * K;
        for (int j = 0; j < P; j++)
            for (int i = 0; i < n; i++) {
                if (!infonce_pair_ok(in, valid, i, j)) continue;
                const double *Si = S + (size_t)i * M;
                for (int a = 0; a < n; a++) t[a] = Si[a * P + j];
                for (int k = 0; k < n * K; k++) t[n + k] = Si[n * P + k];
                loss_f += ce_row(t, m, i, dS ? g : NULL) * wr;
                if (dS) {
                    double *dSi = dS + (size_t)i * M;
                    for (int a = 0; a < n; a++) dSi[a * P + j] += g[a] * wr;
                    for (int k = 0; k < n * K; k++) dSi[n * P + k] += g[n + k] * wr;
                }
            }
    }
    double loss = loss_f;
    if (o->symmetric) { /* positives -> queries: p_{i,j} against every query, target q_i */
        const double wr = 1.0 / npairs;
        for (int j = 0; j < P; j++)
            for (int i = 0; i < n; i++) {
                if (!infonce_pair_ok(in, valid, i, j)) continue;
                const int col = i * P + j;
                for (int a = 0; a < n; a++) t[a] = S[(size_t)a * M + col];
                loss_b += ce_row(t, n, i, dS ? g : NULL) * wr;
                if (dS)
                    for (int a = 0; a < n; a++) dS[(size_t)a * M + col] += g[a] * wr;
            }
        loss = 0.5 * (loss_f + loss_b);
    }
    if (dS) {
        const double f = (o->symmetric ? 0.5 : 1.0) * s;
        for (size_t i = 0; i < (size_t)n * M; i++) dS[i] *= f;
        dgemm_nn_acc(r.dx, dS, Xc, n, M, d);                       /* dXq = dS · Xc */
        dgemm_tn_acc(r.dx + (size_t)n * d, dS, Xq, M, n, d);       /* dXc = dSᵀ · Xq */
        rows_backward(&r, in, o->sim, demb, w);
    }
    free(t);
    free(g);
    free(S);
    free(dS);
    free(valid);
    rows_free(&r);
    return loss;
}

double infonce_forward(const LossInput *in, const InfoNCEOptions *o) { return loss_infonce_eval(in, o, NULL, 0); }
void infonce_backward(float *demb, const LossInput *in, const InfoNCEOptions *o, double dloss) {
    loss_infonce_eval(in, o, demb, dloss);
}

/* ------------------------------------------------------------------ in-batch entropy */

double loss_entropy_eval(const LossInput *in, const EntropyOptions *o, float *demb, double w) {
    const int n = in->n, P = in->n_pos, K = in->n_neg, d = in->dim, M = n * P + n * K;
    AM_ASSERT(n >= 1 && P >= 1 && K >= 0 && d >= 1 && d <= in->ld);
    Rows r;
    rows_init(&r, in, o->sim, demb != NULL);
    const double s = (double)o->scale;
    const double *Xq = r.x, *Xc = r.x + (size_t)n * d;
    double *S = xmalloc((size_t)n * M * sizeof(double));
    double *dS = demb ? xcalloc((size_t)n * M, sizeof(double)) : NULL;
    dgemm_nt(S, Xq, n, Xc, M, d, s);
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double *Si = S + (size_t)i * M;
        if (in->cand)
            for (int c = 0; c < M; c++)
                if (!in->cand[c]) Si[c] = -(double)INFINITY;
        const double z = lse(Si, M);
        double H = 0;
        for (int c = 0; c < M; c++) {
            if (isinf(Si[c])) continue; /* padding: p = 0, 0·log 0 = 0 */
            const double lp = Si[c] - z;
            H -= exp(lp) * lp;
        }
        loss += H / n;
        if (dS)
            for (int c = 0; c < M; c++) {
                if (isinf(Si[c])) continue;
                const double lp = Si[c] - z;
                dS[(size_t)i * M + c] = -exp(lp) * (lp + H) * s / n;
            }
    }
    if (dS) {
        dgemm_nn_acc(r.dx, dS, Xc, n, M, d);                       /* dXq = dS · Xc */
        dgemm_tn_acc(r.dx + (size_t)n * d, dS, Xq, M, n, d);       /* dXc = dSᵀ · Xq */
        rows_backward(&r, in, o->sim, demb, w);
    }
    free(S);
    free(dS);
    rows_free(&r);
    return loss;
}

double entropy_forward(const LossInput *in, const EntropyOptions *o) { return loss_entropy_eval(in, o, NULL, 0); }
void entropy_backward(float *demb, const LossInput *in, const EntropyOptions *o, double dloss) {
    loss_entropy_eval(in, o, demb, dloss);
}

/* ------------------------------------------------------------------ losses of the pair similarities */


static void pair_sims(double *c, const Rows *r, int n) {
    const int d = r->d;
    for (int i = 0; i < n; i++) {
        const double *a = r->x + (size_t)i * d, *b = r->x + (size_t)(n + i) * d;
        double s = 0;
        for (int k = 0; k < d; k++) s += a[k] * b[k];
        c[i] = s;
    }
}

/* dx += dc_i · (∂c_i/∂q_i, ∂c_i/∂p_i) */
static void pair_sims_backward(Rows *r, const double *dc, int n) {
    const int d = r->d;
    for (int i = 0; i < n; i++) {
        const double *a = r->x + (size_t)i * d, *b = r->x + (size_t)(n + i) * d;
        double *da = r->dx + (size_t)i * d, *db = r->dx + (size_t)(n + i) * d;
        for (int k = 0; k < d; k++) {
            da[k] += dc[i] * b[k];
            db[k] += dc[i] * a[k];
        }
    }
}

static void assert_graded(const LossInput *in) {
    AM_ASSERT(in->n >= 1 && in->n_pos == 1 && in->n_neg == 0 && in->gold != NULL && in->dim >= 1 && in->dim <= in->ld);
}

double loss_pair_eval(const LossInput *in, int sim, PairFn fn, const void *opt, float *demb, double w) {
    assert_graded(in);
    const int n = in->n;
    Rows r;
    rows_init(&r, in, sim, demb != NULL);
    double *c = xmalloc((size_t)n * sizeof(double)), *dc = demb ? xcalloc((size_t)n, sizeof(double)) : NULL;
    pair_sims(c, &r, n);
    double loss = fn(c, in->gold, n, opt, dc);
    if (demb) {
        pair_sims_backward(&r, dc, n);
        rows_backward(&r, in, sim, demb, w);
    }
    free(c);
    free(dc);
    rows_free(&r);
    return loss;
}

/* CoSENT: log(1 + Σ_{y_i > y_j} exp(s (c_j - c_i))) */
double loss_cosent_fn(const double *c, const float *y, int n, const void *opt, double *dc) {
    const double s = (double)((const CoSENTOptions *)opt)->scale;
    double mx = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (y[i] > y[j] && s * (c[j] - c[i]) > mx) mx = s * (c[j] - c[i]);
    double sum = exp(-mx);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (y[i] > y[j]) sum += exp(s * (c[j] - c[i]) - mx);
    if (dc)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (y[i] > y[j]) {
                    double p = exp(s * (c[j] - c[i]) - mx) / sum;
                    dc[j] += s * p;
                    dc[i] -= s * p;
                }
    return mx + log(sum);
}

/* 1 - Pearson(c, y) with population statistics */
static double pearson_fn(const double *c, const float *y, int n, const void *opt, double *dc) {
    (void)opt;
    double mc = 0, my = 0, ymin = (double)y[0], ymax = (double)y[0];
    for (int i = 0; i < n; i++) {
        const double yi = (double)y[i];
        mc += c[i];
        my += yi;
        ymin = yi < ymin ? yi : ymin;
        ymax = yi > ymax ? yi : ymax;
    }
    if (ymin == ymax) return 0.0;
    mc /= n;
    my /= n;
    double vc = 0, vy = 0, cov = 0;
    for (int i = 0; i < n; i++) {
        vc += (c[i] - mc) * (c[i] - mc);
        vy += ((double)y[i] - my) * ((double)y[i] - my);
        cov += (c[i] - mc) * ((double)y[i] - my);
    }
    vc /= n;
    vy /= n;
    cov /= n;
    double sc = sqrt(vc), sy = sqrt(vy);
    if (!(sc > 0)) return 1.0; /* [U] undefined in the reference (0/0); no gradient */
    double rho = cov / (sc * sy);
    if (dc)
        for (int i = 0; i < n; i++)
            dc[i] += -(((double)y[i] - my) / (sc * sy) - rho * (c[i] - mc) / vc) / n;
    return 1.0 - rho;
}

typedef struct { double T, eps; } TempOpt;

/* KL(softmax(ideal/T) ‖ softmax(c/T)) / n, ideal from the average descending ranks of y */
static double rankkl_fn(const double *c, const float *y, int n, const void *opt, double *dc) {
    const double T = ((const TempOpt *)opt)->T;
    double *pl = xmalloc((size_t)n * sizeof(double)), *ql = xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        int gt = 0, eq = 0;
        for (int j = 0; j < n; j++) {
            gt += y[j] > y[i];
            eq += y[j] == y[i];
        }
        double rank = gt + (eq - 1) * 0.5; /* scipy rankdata(-y, 'average') - 1 */
        double ideal = n > 1 ? (n - 1 - rank) / (n - 1) : 0.0;
        pl[i] = ideal / T;
        ql[i] = c[i] / T;
    }
    double zp = lse(pl, n), zq = lse(ql, n), kl = 0;
    for (int i = 0; i < n; i++) {
        double p = exp(pl[i] - zp), lq = ql[i] - zq;
        if (p > 0) kl += p * ((pl[i] - zp) - lq);
        if (dc) dc[i] += (exp(lq) - p) / (n * T);
    }
    free(pl);
    free(ql);
    return kl / n;
}

typedef struct { int i; float y; } IdxY;
static int cmp_idxy(const void *a, const void *b) {
    const IdxY *x = a, *z = b;
    if (x->y != z->y) return x->y > z->y ? -1 : 1; /* descending */
    return x->i - z->i;
}

/* PRO (CoDiEmb PROLoss) */
static double pro_fn(const double *c, const float *y, int n, const void *opt, double *dc) {
    const TempOpt *o = opt;
    if (n < 2) return 0.0;
    IdxY *ord = xmalloc((size_t)n * sizeof *ord);
    for (int i = 0; i < n; i++) ord[i] = (IdxY){ i, y[i] };
    qsort(ord, (size_t)n, sizeof *ord, cmp_idxy);
    double *lg = xmalloc((size_t)(n + 1) * sizeof(double)), *wt = xmalloc((size_t)(n + 1) * sizeof(double));
    int *ix = xmalloc((size_t)(n + 1) * sizeof(int));
    double total = 0;
    int count = 0;
    /* first pass: count the terms (needed to scale the gradient) */
    for (int k = 0; k < n - 1; k++) {
        int any = 0;
        for (int j = k + 1; j < n && !any; j++) any = (double)ord[k].y - (double)ord[j].y > o->eps;
        count += any;
    }
    if (count == 0) goto done;
    for (int k = 0; k < n - 1; k++) {
        int m = 1;
        double wk = 0;
        for (int j = k + 1; j < n; j++) {
            double diff = (double)ord[k].y - (double)ord[j].y;
            if (!(diff > o->eps)) continue;
            ix[m] = ord[j].i;
            wt[m] = diff;
            wk = diff > wk ? diff : wk;
            m++;
        }
        if (m == 1) continue;
        ix[0] = ord[k].i;
        wt[0] = wk;
        for (int a = 0; a < m; a++) lg[a] = wt[a] * c[ix[a]] / o->T;
        double z = lse(lg, m);
        total += z - lg[0];
        if (dc)
            for (int a = 0; a < m; a++) {
                double ga = exp(lg[a] - z) - (a == 0);
                dc[ix[a]] += ga * wt[a] / o->T / count;
            }
    }
done:
    free(ord);
    free(lg);
    free(wt);
    free(ix);
    return count ? total / count : 0.0;
}

double cosent_forward(const LossInput *in, const CoSENTOptions *o) { return loss_pair_eval(in, o->sim, loss_cosent_fn, o, NULL, 0); }
void cosent_backward(float *demb, const LossInput *in, const CoSENTOptions *o, double dloss) {
    loss_pair_eval(in, o->sim, loss_cosent_fn, o, demb, dloss);
}
double pearson_forward(const LossInput *in, int sim) { return loss_pair_eval(in, sim, pearson_fn, NULL, NULL, 0); }
void pearson_backward(float *demb, const LossInput *in, int sim, double dloss) {
    loss_pair_eval(in, sim, pearson_fn, NULL, demb, dloss);
}
double rankkl_forward(const LossInput *in, int sim, float temperature) {
    TempOpt o = { (double)temperature, 0 };
    return loss_pair_eval(in, sim, rankkl_fn, &o, NULL, 0);
}
void rankkl_backward(float *demb, const LossInput *in, int sim, float temperature, double dloss) {
    TempOpt o = { (double)temperature, 0 };
    loss_pair_eval(in, sim, rankkl_fn, &o, demb, dloss);
}
double pro_forward(const LossInput *in, int sim, float temperature, float eps) {
    TempOpt o = { (double)temperature, (double)eps };
    return loss_pair_eval(in, sim, pro_fn, &o, NULL, 0);
}
void pro_backward(float *demb, const LossInput *in, int sim, float temperature, float eps, double dloss) {
    TempOpt o = { (double)temperature, (double)eps };
    loss_pair_eval(in, sim, pro_fn, &o, demb, dloss);
}

/* ------------------------------------------------------------------ CoDiEmb composite */

void loss_add_term(LossResult *r, const char *prefix, const char *name, double v) {
    if (!r) return;
    if (r->n_terms >= AM_LOSS_MAX_TERMS) return;
    char *dst = r->term[r->n_terms].name;
    const size_t cap = sizeof r->term[0].name;
    size_t lp = prefix ? strlen(prefix) : 0;
    if (lp >= cap) lp = cap - 1;
    memcpy(dst, prefix ? prefix : "", lp);
    size_t ln = strlen(name);
    if (ln > cap - 1 - lp) ln = cap - 1 - lp;
    memcpy(dst + lp, name, ln);
    dst[lp + ln] = 0;
    r->term[r->n_terms].value = v;
    r->n_terms++;
}

float loss_codiemb_mid_threshold(const CoDiEmbOptions *o, const float *gold, int n) {
    if (!isnan(o->mid.threshold)) return o->mid.threshold;
    double lo = (double)o->score_lo, hi = (double)o->score_hi;
    if (isnan(lo) || isnan(hi)) { /* no dataset range given: the batch's */
        lo = hi = (double)gold[0];
        for (int i = 1; i < n; i++) {
            lo = fmin(lo, (double)gold[i]);
            hi = fmax(hi, (double)gold[i]);
        }
    }
    return (float)(lo + (double)o->mid_threshold_frac * (hi - lo));
}

/* Returns the (unweighted) composite; gradients are scaled by gw, the reported terms by tw. */
double loss_codiemb_eval(const LossInput *last, const LossInput *mid, const CoDiEmbOptions *o,
                         float *dlast, float *dmid, double gw, double tw, LossResult *terms, const char *prefix) {
    assert_graded(last);
    const int n = last->n;
    double lmid = 0;
    if (o->w_mid != 0 && mid) {
        InfoNCEOptions mo = o->mid;
        mo.threshold = loss_codiemb_mid_threshold(o, last->gold, n);
        lmid = loss_infonce_eval(mid, &mo, dmid, gw * (double)o->w_mid);
    }
    Rows r;
    rows_init(&r, last, o->sim, dlast != NULL);
    double *c = xmalloc((size_t)n * sizeof(double)), *dc = xcalloc((size_t)n, sizeof(double));
    double *tmp = dlast ? xcalloc((size_t)n, sizeof(double)) : NULL;
    pair_sims(c, &r, n);
    TempOpt po = { (double)o->pro_temperature, (double)o->pro_eps }, ko = { (double)o->rankkl_temperature, 0 };
    const struct { PairFn fn; const void *opt; double wt; const char *name; } parts[3] = {
        { pro_fn, &po, (double)o->w_pro, "pro" }, { pearson_fn, NULL, (double)o->w_pearson, "pearson" },
        { rankkl_fn, &ko, (double)o->w_rankkl, "rankkl" },
    };
    double total = (double)o->w_mid * lmid;
    if (mid && o->w_mid != 0) loss_add_term(terms, prefix, "mid", tw * (double)o->w_mid * lmid);
    for (int k = 0; k < 3; k++) {
        if (parts[k].wt == 0) continue;
        if (tmp) memset(tmp, 0, (size_t)n * sizeof(double));
        double v = parts[k].fn(c, last->gold, n, parts[k].opt, tmp);
        total += parts[k].wt * v;
        loss_add_term(terms, prefix, parts[k].name, tw * parts[k].wt * v);
        if (tmp)
            for (int i = 0; i < n; i++) dc[i] += parts[k].wt * tmp[i];
    }
    if (dlast) {
        pair_sims_backward(&r, dc, n);
        rows_backward(&r, last, o->sim, dlast, gw);
    }
    free(c);
    free(dc);
    free(tmp);
    rows_free(&r);
    return total;
}

double codiemb_sts_forward(const LossInput *last, const LossInput *mid, const CoDiEmbOptions *o, LossResult *terms) {
    return loss_codiemb_eval(last, mid, o, NULL, NULL, 0.0, 1.0, terms, NULL);
}
void codiemb_sts_backward(float *dlast, float *dmid, const LossInput *last, const LossInput *mid,
                          const CoDiEmbOptions *o, double dloss) {
    loss_codiemb_eval(last, mid, o, dlast, dmid, dloss, 0.0, NULL, NULL);
}

/* ------------------------------------------------------------------ KL between distributions */

/* KL(softmax(tl) ‖ softmax(sl)) over m logits; gs (m) += ∂/∂sl = q − p, gt (m) += ∂/∂tl =
 * p·(log p − log q − KL) (each if non-NULL) */
static double kl_rows(const double *tl, const double *sl, int m, double *gt, double *gs) {
    double zt = lse(tl, m), zs = lse(sl, m), kl = 0;
    for (int c = 0; c < m; c++) {
        double lp = tl[c] - zt, p = exp(lp), lq = sl[c] - zs;
        if (p > 0) kl += p * (lp - lq);
        if (gs) gs[c] += exp(lq) - p;
    }
    if (gt)
        for (int c = 0; c < m; c++) {
            double lp = tl[c] - zt, p = exp(lp);
            if (p > 0) gt[c] += p * (lp - (sl[c] - zs) - kl);
        }
    return kl;
}

double loss_kl_eval(const LossInput *te, const LossInput *st, int sim, const KLOptions *o, float *dte,
                    float *dst, double w) {
    AM_ASSERT(te->n == st->n && te->n_pos == st->n_pos && te->n_neg == st->n_neg);
    const double T = (double)o->temperature;
    const int n = st->n, R = loss_input_rows(st);
    if (o->detach) dte = NULL;
    double loss = 0;
    if (o->mode == AM_KL_EMBEDDINGS) {
        const int rs_sim = o->normalize ? AM_SIM_COS : AM_SIM_DOT;
        LossInput tt = *te;
        tt.dim = st->dim; /* teacher truncated to the student's dim */
        AM_ASSERT(tt.dim <= te->ld);
        Rows rs, rt;
        rows_init(&rs, st, rs_sim, dst != NULL);
        rows_init(&rt, &tt, rs_sim, dte != NULL);
        const int d = st->dim;
        double *a = xmalloc((size_t)d * sizeof(double)), *b = xmalloc((size_t)d * sizeof(double));
        int nr = 0;
        for (int i = 0; i < R; i++) nr += i < n || !st->cand || st->cand[i - n];
        for (int i = 0; i < R; i++) {
            if (i >= n && st->cand && !st->cand[i - n]) continue; /* padding */
            for (int c = 0; c < d; c++) {
                a[c] = rt.x[(size_t)i * d + c] / T;
                b[c] = rs.x[(size_t)i * d + c] / T;
            }
            double *gt = dte ? rt.dx + (size_t)i * d : NULL, *gs = dst ? rs.dx + (size_t)i * d : NULL;
            loss += kl_rows(a, b, d, gt, gs);
        }
        loss /= nr;
        /* ∂/∂x = ∂/∂logit / T, and the mean over the real rows */
        for (size_t i = 0; dst && i < (size_t)R * d; i++) rs.dx[i] /= nr * T;
        for (size_t i = 0; dte && i < (size_t)R * d; i++) rt.dx[i] /= nr * T;
        if (dst) rows_backward(&rs, st, rs_sim, dst, w);
        if (dte) rows_backward(&rt, &tt, rs_sim, dte, w);
        free(a);
        free(b);
        rows_free(&rt);
        rows_free(&rs);
    } else {
        Rows rs, rt;
        rows_init(&rs, st, sim, dst != NULL);
        rows_init(&rt, te, sim, dte != NULL);
        const int M = R - n, ds = st->dim, dt = te->dim;
        double *St = xmalloc((size_t)n * M * sizeof(double)), *Ss = xmalloc((size_t)n * M * sizeof(double));
        double *dS = dst ? xcalloc((size_t)n * M, sizeof(double)) : NULL;
        double *dT = dte ? xcalloc((size_t)n * M, sizeof(double)) : NULL;
        dgemm_nt(St, rt.x, n, rt.x + (size_t)n * dt, M, dt, 1.0 / T);
        dgemm_nt(Ss, rs.x, n, rs.x + (size_t)n * ds, M, ds, 1.0 / T);
        if (st->cand) /* padding is in neither distribution */
            for (int i = 0; i < n; i++)
                for (int c = 0; c < M; c++)
                    if (!st->cand[c]) St[(size_t)i * M + c] = Ss[(size_t)i * M + c] = -(double)INFINITY;
        for (int i = 0; i < n; i++)
            loss += kl_rows(St + (size_t)i * M, Ss + (size_t)i * M, M, dT ? dT + (size_t)i * M : NULL,
                            dS ? dS + (size_t)i * M : NULL);
        loss /= n;
        if (dS) {
            for (size_t i = 0; i < (size_t)n * M; i++) dS[i] /= n * T;
            dgemm_nn_acc(rs.dx, dS, rs.x + (size_t)n * ds, n, M, ds);
            dgemm_tn_acc(rs.dx + (size_t)n * ds, dS, rs.x, M, n, ds);
            rows_backward(&rs, st, sim, dst, w);
        }
        if (dT) {
            for (size_t i = 0; i < (size_t)n * M; i++) dT[i] /= n * T;
            dgemm_nn_acc(rt.dx, dT, rt.x + (size_t)n * dt, n, M, dt);
            dgemm_tn_acc(rt.dx + (size_t)n * dt, dT, rt.x, M, n, dt);
            rows_backward(&rt, te, sim, dte, w);
        }
        free(St);
        free(Ss);
        free(dS);
        free(dT);
        rows_free(&rt);
        rows_free(&rs);
    }
    return loss;
}

double kl_forward(const LossInput *teacher, const LossInput *student, int sim, const KLOptions *o) {
    return loss_kl_eval(teacher, student, sim, o, NULL, NULL, 0);
}
void kl_backward(float *dteacher, float *dstudent, const LossInput *teacher, const LossInput *student, int sim,
                 const KLOptions *o, double dloss) {
    loss_kl_eval(teacher, student, sim, o, dteacher, dstudent, dloss);
}
