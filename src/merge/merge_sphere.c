/* merge_sphere.c - the Gram methods: SLERP, NuSLERP, Multi-SLERP, Karcher mean, model stock.
 * Each returns Σ c_m x_m + c_b θ_b with coefficients from the inputs' inner products: one pass
 * builds the Gram matrix, a second writes the combination. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "merge.h"
#include "merge_internal.h"
#include "tensor.h"

/* ---------------------------------------------------------------- Gram methods */

static double dotf(const float *a, const float *b, size_t n) {
    float acc[8] = {0};
    size_t e = 0;
    for (; e + 8 <= n; e += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[e + l] * b[e + l];
    double s = 0;
    for (int l = 0; l < 8; l++) s += (double)acc[l];
    for (; e < n; e++) s += (double)a[e] * (double)b[e];
    return s;
}

/* G (K×K, upper triangle filled, then mirrored) += Σ_e v_i[e] v_j[e] over [lo, hi) with
 * v = x − b (b may be NULL); per GB block in float, across blocks in double. */
static void gram_accum(int K, const float *const *x, const float *b, size_t lo, size_t hi,
                       double *G, float *tmp /* K*GB */) {
    const float *v[K];
    for (size_t s = lo; s < hi; s += GB) {
        size_t len = s + GB < hi ? GB : hi - s;
        for (int m = 0; m < K; m++) {
            if (b) {
                float *t = tmp + (size_t)m * GB;
                const float *xm = x[m] + s, *bb = b + s;
                for (size_t e = 0; e < len; e++) t[e] = xm[e] - bb[e];
                v[m] = t;
            } else v[m] = x[m] + s;
        }
        for (int i = 0; i < K; i++)
            for (int jj = i; jj < K; jj++) G[i * K + jj] += dotf(v[i], v[jj], len);
    }
}

static void gram_mirror(int K, double *G) {
    for (int i = 0; i < K; i++)
        for (int jj = 0; jj < i; jj++) G[i * K + jj] = G[jj * K + i];
}

typedef struct { int K; const float *const *x; const float *b; size_t n; double *part; } GramCtx;

static void gram_range(void *vctx, size_t lo, size_t hi, int tid) {
    GramCtx *c = vctx;
    (void)tid;
    float tmp[c->K * GB];
    for (size_t ch = lo; ch < hi; ch++) {
        size_t s = ch * GCHUNK, e1 = s + GCHUNK < c->n ? s + GCHUNK : c->n;
        double *G = c->part + ch * (size_t)c->K * c->K;
        memset(G, 0, (size_t)c->K * c->K * sizeof *G);
        gram_accum(c->K, c->x, c->b, s, e1, G, tmp);
    }
}

/* Whole-tensor Gram of x_m − b (b may be NULL), chunk partials added in chunk order. */
static int gram_tensor(const Tj *j, const float *b, double *G) {
    int K = j->K;
    size_t nch = (j->n + GCHUNK - 1) / GCHUNK;
    double *part = malloc(nch * (size_t)K * K * sizeof *part);
    if (!part) return am_error(AM_ENOMEM, "merge: no memory for Gram partials");
    GramCtx c = {K, j->x, b, j->n, part};
    am_parallel_for(gram_range, &c, nch, 1, j->n * (size_t)K);
    memset(G, 0, (size_t)K * K * sizeof *G);
    for (size_t ch = 0; ch < nch; ch++)
        for (int i = 0; i < K * K; i++) G[i] += part[ch * (size_t)K * K + i];
    free(part);
    gram_mirror(K, G);
    for (int i = 0; i < K * K; i++)
        if (!isfinite(G[i])) return merge_report_nonfinite(j, 0, j->n);
    return AM_OK;
}

/* out = Σ c_m x_m + cb·b over [lo, hi) */
typedef struct { const Tj *j; const double *c; double cb; const float *b; int bad; } CombCtx;

static int comb_block(const Tj *j, const double *c, double cb, const float *b, size_t lo, size_t hi) {
    float t[BLK];
    int bad = 0;
    for (size_t s = lo; s < hi; s += BLK) {
        size_t len = s + BLK < hi ? BLK : hi - s;
        if (b) { float f = (float)cb; for (size_t e = 0; e < len; e++) t[e] = f * b[s + e]; }
        else for (size_t e = 0; e < len; e++) t[e] = 0;
        for (int m = 0; m < j->K; m++) {
            float f = (float)c[m];
            const float *x = j->x[m] + s;
            for (size_t e = 0; e < len; e++) t[e] += f * x[e];
        }
        bad |= block_bad(t, len);
        store_out(j->o + s, t, len);
    }
    return bad;
}

static void comb_range(void *vctx, size_t lo, size_t hi, int tid) {
    CombCtx *c = vctx;
    (void)tid;
    for (size_t ch = lo; ch < hi; ch++) {
        size_t s = ch * BLK, e1 = s + BLK < c->j->n ? s + BLK : c->j->n;
        if (comb_block(c->j, c->c, c->cb, c->b, s, e1)) c->bad = 1;
    }
    store_fence();
}

static int combine(const Tj *j, const double *c, double cb, const float *b) {
    CombCtx ctx = {j, c, cb, b, 0};
    am_parallel_for(comb_range, &ctx, (j->n + BLK - 1) / BLK, 8, j->n * (size_t)(j->K + 1));
    if (ctx.bad) return merge_report_nonfinite(j, 0, j->n);
    return AM_OK;
}

/* SLERP coefficients from the Gram of (v0, v1): mergekit's slerp.py */
static void slerp_coef(double t, const double *G, double *c, size_t *fallbacks) {
    const double eps = 1e-8;
    double n0 = sqrt(G[0]), n1 = sqrt(G[3]);
    double a0 = n0 > eps ? 1 / n0 : 1, a1 = n1 > eps ? 1 / n1 : 1;
    double dot = G[1] * a0 * a1;
    if (fabs(dot) > 0.9995) { c[0] = 1 - t; c[1] = t; (*fallbacks)++; return; }
    double th0 = acos(dot), s = sin(th0), tht = th0 * t;
    c[0] = sin(th0 - tht) / s;
    c[1] = sin(tht) / s;
}

/* NuSLERP coefficients (mergekit's nuslerp.py: norms clamped at 1e-7, lerp where sin θ < 1e-8) */
static void nuslerp_coef(double t, double g00, double g01, double g11, double *c, size_t *fallbacks) {
    double n0 = fmax(sqrt(g00), 1e-7), n1 = fmax(sqrt(g11), 1e-7);
    double cs = g01 / (n0 * n1);
    if (cs > 1) cs = 1;
    if (cs < -1) cs = -1;
    double th = acos(cs), s = sin(th);
    if (fabs(s) < 1e-8) { c[0] = 1 - t; c[1] = t; (*fallbacks)++; return; }
    c[0] = sin((1 - t) * th) / s;
    c[1] = sin(t * th) / s;
}

int merge_run_slerp(const Tj *j) {
    double t = par(j, MERGE_P_T, -1), G[4], c[2];
    int rc = gram_tensor(j, NULL, G);
    if (rc) return rc;
    slerp_coef(t, G, c, &j->st->lerp_fallbacks);
    return combine(j, c, 0, NULL);
}

int merge_run_nuslerp(const Tj *j) {
    double w0 = par(j, MERGE_P_WEIGHT, 0), w1 = par(j, MERGE_P_WEIGHT, 1);
    double t = fabs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
    const float *b = j->b;
    double c[2];
    if (j->s->nuslerp_flatten || j->pi->ndim < 2) {
        double G[4];
        int rc = gram_tensor(j, b, G);
        if (rc) return rc;
        nuslerp_coef(t, G[0], G[1], G[3], c, &j->st->lerp_fallbacks);
        return combine(j, c, b ? 1 - c[0] - c[1] : 0, b);
    }
    size_t rows = (size_t)j->pi->shape[0], cols = j->n / rows;
    const float *x0 = j->x[0], *x1 = j->x[1];
    if (!j->s->nuslerp_row_wise) {
        /* vectors along the last dim: each row */
        float tmp[2 * GB];
        for (size_t r = 0; r < rows; r++) {
            double G[4] = {0};
            gram_accum(2, j->x, b, r * cols, (r + 1) * cols, G, tmp);
            nuslerp_coef(t, G[0], G[1], G[3], c, &j->st->lerp_fallbacks);
            comb_block(j, c, b ? 1 - c[0] - c[1] : 0, b, r * cols, (r + 1) * cols);
        }
    } else {
        /* nuslerp_row_wise: vectors along dim 0, i.e. each column */
        double *g = calloc(3 * cols, sizeof *g);
        if (!g) return am_error(AM_ENOMEM, "merge: no memory");
        for (size_t r = 0; r < rows; r++)
            for (size_t cc = 0; cc < cols; cc++) {
                size_t e = r * cols + cc;
                double v0 = (double)x0[e] - (b ? (double)b[e] : 0), v1 = (double)x1[e] - (b ? (double)b[e] : 0);
                g[3 * cc] += v0 * v0; g[3 * cc + 1] += v0 * v1; g[3 * cc + 2] += v1 * v1;
            }
        double *cf = malloc(2 * cols * sizeof *cf);
        if (!cf) { free(g); return am_error(AM_ENOMEM, "merge: no memory"); }
        for (size_t cc = 0; cc < cols; cc++)
            nuslerp_coef(t, g[3 * cc], g[3 * cc + 1], g[3 * cc + 2], cf + 2 * cc, &j->st->lerp_fallbacks);
        for (size_t r = 0; r < rows; r++)
            for (size_t cc = 0; cc < cols; cc++) {
                size_t e = r * cols + cc;
                double c0 = cf[2 * cc], c1 = cf[2 * cc + 1];
                double v = c0 * (double)x0[e] + c1 * (double)x1[e];
                if (b) v += (1 - c0 - c1) * (double)b[e];
                j->o[e] = (float)v;
            }
        free(g);
        free(cf);
    }
    if (block_bad(j->o, j->n)) return merge_report_nonfinite(j, 0, j->n);
    return AM_OK;
}

/* Multi-SLERP as mergekit's multislerp.py. Its tangent step adds nothing: the tangent vectors
 * at μ = normalize(Σ w_m u_m) sum (weighted) to Σ w u − ‖Σ w u‖ μ = 0, so the result is
 * μ · cos(0 + eps) · Σ w_m ‖x_m‖ — computed here from the Gram matrix, to within rounding of
 * mergekit's. */
int merge_run_multislerp(const Tj *j) {
    int K = j->K, norm = opt_normalize(j);
    double eps = j->s->eps, w[K], sw = 0, G[K * K];
    for (int m = 0; m < K; m++) { w[m] = par(j, MERGE_P_WEIGHT, m); sw += w[m]; }
    if (norm) {
        if (sw == 0)
            return am_error(AM_EINVAL, "merge multislerp: all weights are zero for tensor %s (they sum to zero)",
                            j->pi->name);
        for (int m = 0; m < K; m++) w[m] /= sw;
    }
    const float *b = j->b;
    int rc = gram_tensor(j, b, G);
    if (rc) return rc;
    double a[K], c[K], avg = 0, mn2 = 0;
    for (int m = 0; m < K; m++) {
        double nm = sqrt(G[m * K + m]);
        a[m] = 1 / (nm + eps);
        avg += w[m] * nm;
    }
    for (int i = 0; i < K; i++)
        for (int jj = 0; jj < K; jj++) mn2 += w[i] * w[jj] * a[i] * a[jj] * G[i * K + jj];
    double mn = sqrt(fmax(mn2, 0));
    if (avg == 0) {
        /* every input is zero (a tensor no model changed, with a base): the result is the base
         * (or zero). mergekit raises here for K > 2; an untouched LayerNorm is no error. */
        for (int m = 0; m < K; m++) c[m] = 0;
        return combine(j, c, b ? 1 : 0, b);
    }
    if (mn < eps) {
        if (K != 2)
            return am_error(AM_EINVAL, "merge multislerp: the weighted sum of the unit vectors of tensor %s is "
                            "zero (antipodal models with balancing weights?); try other weights", j->pi->name);
        c[0] = w[0]; c[1] = w[1];
        j->st->lerp_fallbacks++;
    } else {
        double f = cos(eps) * avg / mn;
        for (int m = 0; m < K; m++) c[m] = f * w[m] * a[m];
    }
    double sc = 0;
    for (int m = 0; m < K; m++) sc += c[m];
    return combine(j, c, b ? 1 - sc : 0, b);
}

/* ‖Σ v_i û_i‖ from the unit Gram U */
static double unorm(int K, const double *U, const double *v) {
    double s = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) s += v[i] * v[j] * U[i * K + j];
    return sqrt(fmax(s, 0));
}

/* Karcher mean as mergekit's karcher.py, on coefficients: u = Σ c_i û_i with the unit Gram U. */
int merge_run_karcher(const Tj *j) {
    int K = j->K;
    double tol = j->s->tol, G[K * K], nrm[K], U[K * K], al[K], c[K], d[K], tau[K];
    int rc = gram_tensor(j, NULL, G);
    if (rc) return rc;
    int valid[K], nv = 0;
    for (int m = 0; m < K; m++) { nrm[m] = sqrt(G[m * K + m]); valid[m] = nrm[m] > tol; nv += valid[m]; }
    double out_c[K];
    if (!nv) { memset(out_c, 0, sizeof out_c); return combine(j, out_c, 0, NULL); }
    for (int i = 0; i < K; i++)
        for (int jj = 0; jj < K; jj++)
            U[i * K + jj] = nrm[i] > 0 && nrm[jj] > 0 ? G[i * K + jj] / (nrm[i] * nrm[jj]) : 0;
    for (int m = 0; m < K; m++) al[m] = valid[m] ? 1.0 / nv : 0;
    for (int m = 0; m < K; m++) c[m] = al[m];
    double nu = unorm(K, U, c);
    if (nu < tol) { memset(c, 0, sizeof c); for (int m = 0; m < K; m++) if (valid[m]) { c[m] = 1; break; } }
    else for (int m = 0; m < K; m++) c[m] /= nu;
    int it;
    for (it = 0; it < j->s->max_iter; it++) {
        memset(tau, 0, sizeof tau);
        for (int i = 0; i < K; i++) {
            if (!valid[i]) continue;
            double dd = 0;
            for (int jj = 0; jj < K; jj++) dd += c[jj] * U[jj * K + i];
            d[i] = fmin(1, fmax(-1, dd));
            double th = acos(d[i]);
            if (th < tol) continue;
            double f = al[i] * th / sin(th);
            tau[i] += f;
            for (int jj = 0; jj < K; jj++) tau[jj] -= f * d[i] * c[jj];
        }
        double nt = unorm(K, U, tau);
        if (nt < tol) break;
        for (int m = 0; m < K; m++) c[m] = cos(nt) * c[m] + sin(nt) * tau[m] / nt;
        double nc = unorm(K, U, c);
        if (nc > tol) for (int m = 0; m < K; m++) c[m] /= nc;
    }
    if (it > j->st->karcher_iters) j->st->karcher_iters = it;
    double s = 0;
    for (int m = 0; m < K; m++) s += nrm[m] / K; /* equal α over all models, zero norms included */
    for (int m = 0; m < K; m++) out_c[m] = nrm[m] > 0 ? s * c[m] / nrm[m] : 0;
    return combine(j, out_c, 0, NULL);
}

static double stock_t(int K, const double *G) {
    double sum = 0;
    int np = 0;
    for (int i = 0; i < K; i++)
        for (int jj = i + 1; jj < K; jj++) {
            double den = fmax(sqrt(G[i * K + i]) * sqrt(G[jj * K + jj]), 1e-6);
            double cs = G[i * K + jj] / den;
            sum += fmin(1, fmax(-1, cs));
            np++;
        }
    double cs = sum / np;
    return K * cs / (1 + (K - 1) * cs);
}

int merge_run_model_stock(const Tj *j) {
    int K = j->K;
    double G[K * K], c[K];
    if (!j->s->filter_wise || j->pi->ndim < 2) {
        int rc = gram_tensor(j, j->b, G);
        if (rc) return rc;
        double t = stock_t(K, G);
        j->st->model_stock_t += t;
        for (int m = 0; m < K; m++) c[m] = t / K;
        return combine(j, c, 1 - t, j->b);
    }
    size_t rows = (size_t)j->pi->shape[0], cols = j->n / rows;
    float tmp[K * GB];
    double tsum = 0;
    for (size_t r = 0; r < rows; r++) {
        memset(G, 0, sizeof G);
        gram_accum(K, j->x, j->b, r * cols, (r + 1) * cols, G, tmp);
        gram_mirror(K, G);
        double t = stock_t(K, G);
        tsum += t;
        for (int m = 0; m < K; m++) c[m] = t / K;
        comb_block(j, c, 1 - t, j->b, r * cols, (r + 1) * cols);
    }
    j->st->model_stock_t += tsum / (double)rows;
    if (block_bad(j->o, j->n)) return merge_report_nonfinite(j, 0, j->n);
    return AM_OK;
}
