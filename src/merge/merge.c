/* merge.c - merge_run: checks, then every method one tensor at a time over flat buffers.
 *
 * Two kernel shapes cover all methods:
 *  - elementwise (linear, task arithmetic and its sparsified/consensus family): one blocked pass
 *    that reads each input once and writes the output once (after a per-model selection pass
 *    for the magnitude-based masks, or an RNG pass for the L1 rescale of random masks);
 *  - Gram (slerp, nuslerp, multislerp, karcher, model_stock): every one of these methods
 *    returns a linear combination Σ c_m x_m + c_b θ_b whose coefficients depend only on the
 *    inner products of the inputs, so one pass computes the Gram matrix (double accumulation),
 *    a few scalars give the coefficients, and a second pass writes. Karcher's iteration runs
 *    on coefficients in the span of the unit vectors, so it costs no extra passes either.
 * Passes are cache-blocked and split over the tensor thread pool in fixed chunks (results do
 * not depend on the thread count); random masks are drawn sequentially per (model, tensor).
 *
 * NaN/Inf inputs are found through the output (or the Gram matrix) of each block: only then
 * are the inputs of that block scanned to name the model. On an error `out` is unspecified.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "merge.h"
#include "tensor.h"

#define BLK 2048          /* elementwise block (floats): K+2 blocks stay in L1/L2 */
#define GCHUNK 32768      /* Gram / write chunk handed to a pool thread */
#define GB 256            /* Gram inner block */

typedef struct {
    const MergeSpec *s;
    const MergeInputs *in;
    const MergeMethodInfo *info;
    MergeStats *st;
    float *out;
    const ParamInfo *pi;
    int ti, layer, K;
    const float *const *x; /* K tensor pointers (offset applied) */
    const float *b;        /* base tensor or NULL */
    float *o;
    size_t n;
    const float *const *ew; /* per-element weights (offset applied) or NULL */
} Tj;

static const char *mname(const MergeInputs *in, int k, char *buf, size_t len) {
    if (k < 0) return in->base_name ? in->base_name : "the base model";
    if (in->names && in->names[k]) return in->names[k];
    snprintf(buf, len, "model %d", k + 1);
    return buf;
}

static int nonfinite_at(const float *x, size_t n, size_t *at) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) == 0x7f800000u) { *at = i; return 1; }
    }
    return 0;
}

static int block_bad(const float *x, size_t n) {
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad != 0;
}

/* Name the input with a NaN/Inf in [lo, hi) of the current tensor, or report overflow. */
static int report_nonfinite(const Tj *j, size_t lo, size_t hi) {
    char buf[32];
    size_t at;
    for (int m = -1; m < j->K; m++) {
        const float *p = m < 0 ? j->b : j->x[m];
        if (!p) continue;
        if (nonfinite_at(p + lo, hi - lo, &at))
            return am_error(AM_EFORMAT, "merge: %s has a %s in tensor %s (element %zu)",
                            mname(j->in, m, buf, sizeof buf), isnan(p[lo + at]) ? "NaN" : "Inf",
                            j->pi->name, lo + at);
    }
    return am_error(AM_EINVAL, "merge: tensor %s overflows (non-finite result near element %zu); "
                    "check the weights", j->pi->name, lo);
}

static float par(const Tj *j, MergeParam p, int k) {
    return merge_param_at(j->s, p, k, j->pi->name, j->layer, j->in->n_layers);
}

static int opt_normalize(const Tj *j) { return j->s->normalize >= 0 ? j->s->normalize : j->info->normalize; }
static int opt_rescale(const Tj *j) { return j->s->rescale >= 0 ? j->s->rescale : j->info->rescale; }

/* ------------------------------------------------------------------------- linear */

typedef struct { const Tj *j; const double *c; int bad; size_t bad_lo, bad_hi; } LinCtx;

static void lin_range(void *vctx, size_t lo, size_t hi, int tid) {
    LinCtx *c = vctx;
    const Tj *j = c->j;
    (void)tid;
    for (size_t s = lo * BLK; s < hi * BLK && s < j->n; s += BLK) {
        size_t e1 = s + BLK < j->n ? s + BLK : j->n;
        float *o = j->o;
        float c0 = (float)c->c[0];
        const float *x0 = j->x[0];
        for (size_t e = s; e < e1; e++) o[e] = c0 * x0[e];
        for (int m = 1; m < j->K; m++) {
            float cm = (float)c->c[m];
            const float *xm = j->x[m];
            for (size_t e = s; e < e1; e++) o[e] += cm * xm[e];
        }
        if (block_bad(o + s, e1 - s) && !c->bad) { c->bad = 1; c->bad_lo = s; c->bad_hi = e1; }
    }
}

static int run_linear(const Tj *j) {
    int K = j->K, norm = opt_normalize(j);
    double w[K], sw = 0;
    for (int m = 0; m < K; m++) { w[m] = par(j, MERGE_P_WEIGHT, m); sw += w[m]; }
    if (j->ew) {
        /* per element: Σ w_m e_m x_m / Σ w_m e_m */
        for (size_t e = 0; e < j->n; e++) {
            double num = 0, den = 0;
            for (int m = 0; m < K; m++) {
                double we = w[m] * (j->ew[m] ? (double)j->ew[m][e] : 1.0);
                num += we * (double)j->x[m][e];
                den += we;
            }
            if (norm) {
                if (den == 0)
                    return am_error(AM_EINVAL, "merge linear: the weights sum to zero at element %zu of "
                                    "tensor %s", e, j->pi->name);
                num /= den;
            }
            j->o[e] = (float)num;
            if (!isfinite(j->o[e])) return report_nonfinite(j, e, e + 1);
        }
        return AM_OK;
    }
    if (norm && sw == 0)
        return am_error(AM_EINVAL, "merge linear: all weights are zero for tensor %s (they sum to zero)",
                        j->pi->name);
    double c[K];
    for (int m = 0; m < K; m++) c[m] = norm ? w[m] / sw : w[m];
    LinCtx ctx = {j, c, 0, 0, 0};
    size_t nb = (j->n + BLK - 1) / BLK;
    am_parallel_for(lin_range, &ctx, nb, 8, j->n * (size_t)(K + 1));
    if (ctx.bad) return report_nonfinite(j, ctx.bad_lo, ctx.bad_hi);
    return AM_OK;
}

/* ------------------------------------------------------- task arithmetic family */

enum { SP_NONE, SP_MAGNITUDE, SP_RANDOM, SP_OUTLIERS, SP_DELLA };

typedef struct {
    double w, density, eps, gamma, scale;
    int active;          /* sparsify this model on this tensor (density < 1) */
    float lo, hi;        /* keep lo <= |δ| <= hi (magnitude, outliers) */
    int keep_none;
    AmRng rng;           /* random / della stream */
} GtaModel;

static int sparse_kind(MergeMethod m) {
    switch (m) {
    case MERGE_TIES: return SP_MAGNITUDE;
    case MERGE_DARE_LINEAR: case MERGE_DARE_TIES: return SP_RANDOM;
    case MERGE_DELLA: case MERGE_DELLA_LINEAR: return SP_DELLA;
    case MERGE_BREADCRUMBS: case MERGE_BREADCRUMBS_TIES: return SP_OUTLIERS;
    default: return SP_NONE;
    }
}
static int consensus(MergeMethod m) {
    return m == MERGE_TIES || m == MERGE_DARE_TIES || m == MERGE_DELLA || m == MERGE_BREADCRUMBS_TIES;
}

/* k-th smallest (0-based) of a[0..n) in place (Hoare quickselect, median of three). */
static float select_kth(float *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi], piv;
        piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, jj = hi;
        while (i <= jj) {
            while (a[i] < piv) i++;
            while (a[jj] > piv) jj--;
            if (i <= jj) {
                float t = a[i]; a[i] = a[jj]; a[jj] = t;
                i++;
                if (jj == 0) break;
                jj--;
            }
        }
        if (k <= jj) hi = jj;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

/* DELLA row: keep probabilities p[c] from rank by |δ| ascending (ties by position). */
typedef struct { float v; uint32_t i; } RankEnt;
static int rank_cmp(const void *a, const void *b) {
    const RankEnt *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}
static void della_probs(const float *x, const float *b, size_t cols, double d, double eps,
                        RankEnt *tmp, double *p) {
    for (size_t c = 0; c < cols; c++) { tmp[c].v = fabsf(x[c] - b[c]); tmp[c].i = (uint32_t)c; }
    qsort(tmp, cols, sizeof *tmp, rank_cmp);
    for (size_t r = 0; r < cols; r++) {
        double rn = cols > 1 ? (double)r / (double)(cols - 1) : 0.5;
        p[tmp[r].i] = (d - eps) + rn * 2 * eps;
    }
}

static size_t della_rows(const ParamInfo *pi, size_t *cols) {
    if (pi->ndim < 2) { *cols = pi->numel; return 1; }
    *cols = pi->numel / (size_t)pi->shape[0];
    return (size_t)pi->shape[0];
}

/* Per-model preparation: thresholds and the L1 rescale factor. */
static int gta_prepare(const Tj *j, int kind, GtaModel *gm, float *scratch, RankEnt *rk, double *pr) {
    const float *b = j->b;
    size_t n = j->n;
    int rescale = opt_rescale(j), paper = j->s->paper;
    for (int m = 0; m < j->K; m++) {
        GtaModel *g = &gm[m];
        const float *x = j->x[m];
        g->scale = 1;
        g->lo = 0;
        g->hi = INFINITY;
        g->keep_none = 0;
        g->active = kind != SP_NONE && g->density < 1;
        if (!g->active) continue;
        am_rng_seed(&g->rng, merge_stream_seed(j->s->seed, m, j->ti));
        double before = 0, after = 0;
        if (kind == SP_MAGNITUDE || kind == SP_OUTLIERS) {
            for (size_t e = 0; e < n; e++) { scratch[e] = fabsf(x[e] - b[e]); before += (double)scratch[e]; }
            if (!isfinite(before)) return report_nonfinite(j, 0, n);
            if (kind == SP_MAGNITUDE) {
                size_t k = (size_t)(g->density * (double)n);
                if (k < 1) k = 1; /* mergekit asserts k > 0; we keep the largest entry */
                g->lo = select_kth(scratch, n, n - k);
            } else {
                /* drop the γ·n largest, then the smallest down to density·n (mergekit's
                 * magnitude_outliers; with γ·n < 1 mergekit's slice [n_bot:-0] keeps nothing,
                 * we drop no large entries instead) */
                long long target = (long long)(g->density * (double)n);
                long long n_top = (long long)(g->gamma * (double)n);
                long long n_bot = (long long)n - target - n_top;
                if (n_bot < 0) { n_top += n_bot; n_bot = 0; }
                long long last = (long long)n - n_top - 1;
                if (last < n_bot) { g->keep_none = 1; }
                else {
                    g->hi = select_kth(scratch, n, (size_t)last);
                    g->lo = select_kth(scratch, n, (size_t)n_bot);
                }
            }
            if (rescale && !paper) {
                for (size_t e = 0; e < n; e++) {
                    float a = fabsf(x[e] - b[e]);
                    if (!g->keep_none && a >= g->lo && a <= g->hi) after += (double)a;
                }
            }
        } else if (kind == SP_RANDOM) {
            if (!rescale || paper) continue;
            AmRng r = g->rng;
            float dd = (float)g->density;
            for (size_t e = 0; e < n; e++) {
                float a = fabsf(x[e] - b[e]);
                before += (double)a;
                if (am_rng_uniform(&r) < dd) after += (double)a;
            }
        } else { /* DELLA */
            if (!rescale || paper) continue;
            AmRng r = g->rng;
            size_t cols, rows = della_rows(j->pi, &cols);
            for (size_t row = 0; row < rows; row++) {
                const float *xr = x + row * cols, *br = b + row * cols;
                della_probs(xr, br, cols, g->density, g->eps, rk, pr);
                for (size_t c = 0; c < cols; c++) {
                    float a = fabsf(xr[c] - br[c]);
                    before += (double)a;
                    if ((double)am_rng_uniform(&r) < pr[c]) after += (double)a;
                }
            }
        }
        if (rescale && !paper && before >= 1e-7 && after >= 1e-7) g->scale = before / after;
    }
    return AM_OK;
}

/* Mix [s, e1) given each model's sparsified δ in D[m][0..len). */
static void gta_mix(const Tj *j, GtaModel *gm, float *const *D, size_t s, size_t len, int cons,
                    int norm, double lambda, size_t *conflicts) {
    int K = j->K, paper = j->s->paper;
    const float *b = j->b;
    float *o = j->o;
    float lam = (float)lambda;
    for (size_t e = 0; e < len; e++) {
        float mixed = 0, div = 0;
        if (cons) {
            float sw = 0;
            for (int m = 0; m < K; m++) {
                float w = (float)gm[m].w * (j->ew && j->ew[m] ? j->ew[m][s + e] : 1.0f);
                sw += paper ? D[m][e] : w * D[m][e];
            }
            float maj = sw >= 0 ? 1.0f : -1.0f;
            for (int m = 0; m < K; m++) {
                float w = (float)gm[m].w * (j->ew && j->ew[m] ? j->ew[m][s + e] : 1.0f);
                float wd = w * D[m][e];
                float sg = paper ? D[m][e] : wd;
                if ((sg > 0 && maj > 0) || (sg < 0 && maj < 0)) { mixed += wd; div += w; }
                else if (sg != 0) (*conflicts)++;
            }
            if (div == 0) div = 1;
        } else {
            for (int m = 0; m < K; m++) {
                float w = (float)gm[m].w * (j->ew && j->ew[m] ? j->ew[m][s + e] : 1.0f);
                mixed += w * D[m][e];
                div += w;
            }
            if (fabsf(div) < 1e-8f) div = 1;
        }
        if (norm) mixed /= div;
        o[s + e] = b[s + e] + lam * mixed;
    }
}

typedef struct { const Tj *j; GtaModel *gm; int kind, cons, norm; double lambda;
                 int bad; size_t bad_lo, bad_hi, kept, conflicts; } GtaCtx;

/* magnitude / outliers / no sparsification: independent blocks, parallel */
static void gta_range(void *vctx, size_t lo, size_t hi, int tid) {
    GtaCtx *c = vctx;
    const Tj *j = c->j;
    (void)tid;
    int K = j->K;
    float buf[K][BLK];
    float *D[K];
    for (int m = 0; m < K; m++) D[m] = buf[m];
    size_t kept = 0, conf = 0;
    for (size_t s = lo * BLK; s < hi * BLK && s < j->n; s += BLK) {
        size_t len = s + BLK < j->n ? BLK : j->n - s;
        for (int m = 0; m < K; m++) {
            const GtaModel *g = &c->gm[m];
            const float *x = j->x[m] + s, *b = j->b + s;
            float sc = (float)g->scale;
            if (!g->active) { for (size_t e = 0; e < len; e++) D[m][e] = x[e] - b[e]; continue; }
            for (size_t e = 0; e < len; e++) {
                float d = x[e] - b[e], a = fabsf(d);
                int k = !g->keep_none && a >= g->lo && a <= g->hi;
                D[m][e] = k ? d * sc : 0.0f;
                kept += (size_t)k;
            }
        }
        gta_mix(j, c->gm, D, s, len, c->cons, c->norm, c->lambda, &conf);
        if (block_bad(j->o + s, len) && !c->bad) { c->bad = 1; c->bad_lo = s; c->bad_hi = s + len; }
    }
    __atomic_fetch_add(&c->kept, kept, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->conflicts, conf, __ATOMIC_RELAXED);
}

static int run_gta(const Tj *j) {
    int K = j->K, kind = sparse_kind(j->s->method), cons = consensus(j->s->method);
    int norm = opt_normalize(j), paper = j->s->paper;
    GtaModel gm[K];
    memset(gm, 0, sizeof gm);
    for (int m = 0; m < K; m++) {
        gm[m].w = par(j, MERGE_P_WEIGHT, m);
        gm[m].density = par(j, MERGE_P_DENSITY, m);
        gm[m].eps = par(j, MERGE_P_EPSILON, m);
        gm[m].gamma = par(j, MERGE_P_GAMMA, m);
    }
    double lambda = par(j, MERGE_P_LAMBDA, -1);
    float *scratch = NULL;
    RankEnt *rk = NULL;
    double *pr = NULL;
    size_t cols = 0;
    if (kind == SP_MAGNITUDE || kind == SP_OUTLIERS) {
        scratch = am_alloc_floats(j->n);
        if (!scratch) return am_error(AM_ENOMEM, "merge: no memory for a %zu-float scratch", j->n);
    }
    if (kind == SP_DELLA) {
        della_rows(j->pi, &cols);
        rk = xmalloc(cols * sizeof *rk);
        pr = xmalloc(cols * sizeof *pr);
    }
    int rc = gta_prepare(j, kind, gm, scratch, rk, pr);
    am_free_aligned(scratch);
    GtaCtx ctx = {j, gm, kind, cons, norm, lambda, 0, 0, 0, 0, 0};
    if (rc == AM_OK && (kind == SP_NONE || kind == SP_MAGNITUDE || kind == SP_OUTLIERS)) {
        size_t nb = (j->n + BLK - 1) / BLK;
        am_parallel_for(gta_range, &ctx, nb, 4, j->n * (size_t)(K + 2));
    } else if (rc == AM_OK) {
        /* random masks: one sequential stream per (model, tensor), in element order */
        size_t step = BLK, rows = 1;
        if (kind == SP_DELLA) { rows = della_rows(j->pi, &cols); step = cols; }
        float *buf = am_alloc_floats((size_t)K * step);
        if (!buf) rc = am_error(AM_ENOMEM, "merge: no memory for a %zu-float scratch", (size_t)K * step);
        float *D[K];
        for (int m = 0; m < K && buf; m++) D[m] = buf + (size_t)m * step;
        for (size_t s = 0; buf && s < j->n; s += step) {
            size_t len = s + step < j->n ? step : j->n - s;
            for (int m = 0; m < K; m++) {
                GtaModel *g = &gm[m];
                const float *x = j->x[m] + s, *b = j->b + s;
                if (!g->active) { for (size_t e = 0; e < len; e++) D[m][e] = x[e] - b[e]; continue; }
                if ((block_bad(x, len) || block_bad(b, len)) && !ctx.bad) {
                    ctx.bad = 1; ctx.bad_lo = s; ctx.bad_hi = s + len; /* a NaN may fall in a dropped entry */
                }
                if (kind == SP_DELLA) della_probs(x, b, len, g->density, g->eps, rk, pr);
                float sc = (float)g->scale, dd = (float)g->density;
                for (size_t e = 0; e < len; e++) {
                    float d = x[e] - b[e], u = am_rng_uniform(&g->rng);
                    int k = kind == SP_DELLA ? (double)u < pr[e] : u < dd;
                    float v = 0;
                    if (k) v = paper && opt_rescale(j) ? (float)((double)d / (kind == SP_DELLA ? pr[e] : g->density))
                                                       : d * sc;
                    D[m][e] = v;
                    ctx.kept += (size_t)k;
                }
            }
            gta_mix(j, gm, D, s, len, cons, norm, lambda, &ctx.conflicts);
            if (block_bad(j->o + s, len) && !ctx.bad) { ctx.bad = 1; ctx.bad_lo = s; ctx.bad_hi = s + len; }
        }
        am_free_aligned(buf);
        (void)rows;
    }
    free(rk);
    free(pr);
    if (rc) return rc;
    if (ctx.bad) return report_nonfinite(j, ctx.bad_lo, ctx.bad_hi);
    if (kind != SP_NONE) {
        for (int m = 0; m < K; m++) {
            j->st->delta_total += j->n;
            if (!gm[m].active) j->st->delta_kept += j->n;
        }
        j->st->delta_kept += ctx.kept;
    }
    j->st->sign_conflicts += ctx.conflicts;
    return AM_OK;
}

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
        if (!isfinite(G[i])) return report_nonfinite(j, 0, j->n);
    return AM_OK;
}

/* out = Σ c_m x_m + cb·b over [lo, hi) */
typedef struct { const Tj *j; const double *c; double cb; const float *b; } CombCtx;

static void comb_block(const Tj *j, const double *c, double cb, const float *b, size_t lo, size_t hi) {
    float *o = j->o;
    if (b) { float f = (float)cb; for (size_t e = lo; e < hi; e++) o[e] = f * b[e]; }
    else for (size_t e = lo; e < hi; e++) o[e] = 0;
    for (int m = 0; m < j->K; m++) {
        float f = (float)c[m];
        const float *x = j->x[m];
        for (size_t e = lo; e < hi; e++) o[e] += f * x[e];
    }
}

static void comb_range(void *vctx, size_t lo, size_t hi, int tid) {
    CombCtx *c = vctx;
    (void)tid;
    for (size_t ch = lo; ch < hi; ch++) {
        size_t s = ch * BLK, e1 = s + BLK < c->j->n ? s + BLK : c->j->n;
        comb_block(c->j, c->c, c->cb, c->b, s, e1);
    }
}

static int combine(const Tj *j, const double *c, double cb, const float *b) {
    CombCtx ctx = {j, c, cb, b};
    am_parallel_for(comb_range, &ctx, (j->n + BLK - 1) / BLK, 8, j->n * (size_t)(j->K + 1));
    if (block_bad(j->o, j->n)) return report_nonfinite(j, 0, j->n);
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

static int run_slerp(const Tj *j) {
    double t = par(j, MERGE_P_T, -1), G[4], c[2];
    int rc = gram_tensor(j, NULL, G);
    if (rc) return rc;
    slerp_coef(t, G, c, &j->st->lerp_fallbacks);
    return combine(j, c, 0, NULL);
}

static int run_nuslerp(const Tj *j) {
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
    if (block_bad(j->o, j->n)) return report_nonfinite(j, 0, j->n);
    return AM_OK;
}

/* Multi-SLERP as mergekit's multislerp.py. Its tangent step adds nothing: the tangent vectors
 * at μ = normalize(Σ w_m u_m) sum (weighted) to Σ w u − ‖Σ w u‖ μ = 0, so the result is
 * μ · cos(0 + eps) · Σ w_m ‖x_m‖ — computed here from the Gram matrix, to within rounding of
 * mergekit's. */
static int run_multislerp(const Tj *j) {
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
static int run_karcher(const Tj *j) {
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

static int run_model_stock(const Tj *j) {
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
    if (block_bad(j->o, j->n)) return report_nonfinite(j, 0, j->n);
    return AM_OK;
}

/* ------------------------------------------------------------------------ checks */

static int check_params(const MergeSpec *s, const MergeInputs *in) {
    const MergeMethodInfo *info = merge_method_info(s->method);
    int kind = sparse_kind(s->method);
    char buf[32];
    for (int ti = 0; ti < in->tab->n; ti++) {
        const ParamInfo *pi = &in->tab->t[ti];
        int layer = merge_tensor_layer(pi->name);
        if (info->params & (1u << MERGE_P_T)) {
            float t = merge_param_at(s, MERGE_P_T, -1, pi->name, layer, in->n_layers);
            if (isnan(t))
                return am_error(AM_EINVAL, "merge %s: needs t (0 = the first model, 1 = the second) for "
                                "tensor %s", info->name, pi->name);
        }
        if (kind == SP_NONE) continue;
        for (int m = 0; m < in->k; m++) {
            float d = merge_param_at(s, MERGE_P_DENSITY, m, pi->name, layer, in->n_layers);
            if (!(d > 0 && d <= 1))
                return am_error(AM_EINVAL, "merge %s: density %g of %s for tensor %s is outside (0, 1]",
                                info->name, (double)d, mname(in, m, buf, sizeof buf), pi->name);
            if (kind == SP_DELLA && d < 1) {
                float e = merge_param_at(s, MERGE_P_EPSILON, m, pi->name, layer, in->n_layers);
                if (!(d - e > 0 && d + e < 1))
                    return am_error(AM_EINVAL, "merge %s: density %g ± epsilon %g of %s for tensor %s leaves "
                                    "(0, 1)\nHINT: choose epsilon < min(density, 1 − density)", info->name,
                                    (double)d, (double)e, mname(in, m, buf, sizeof buf), pi->name);
            }
            if (kind == SP_OUTLIERS) {
                float g = merge_param_at(s, MERGE_P_GAMMA, m, pi->name, layer, in->n_layers);
                if (!(g >= 0 && g < 1))
                    return am_error(AM_EINVAL, "merge %s: gamma %g of %s for tensor %s is outside [0, 1)",
                                    info->name, (double)g, mname(in, m, buf, sizeof buf), pi->name);
            }
        }
    }
    return AM_OK;
}

static int check_inputs(const MergeSpec *s, const MergeInputs *in) {
    if ((unsigned)s->method >= MERGE_METHOD_COUNT) return am_error(AM_EINVAL, "merge: bad method %d", (int)s->method);
    const MergeMethodInfo *info = merge_method_info(s->method);
    if (!in || !in->tab || !in->models) return am_error(AM_EINVAL, "merge %s: no input models", info->name);
    if (in->k < info->min_models)
        return am_error(AM_EINVAL, "merge %s: needs at least %d model%s%s, got %d", info->name, info->min_models,
                        info->min_models == 1 ? "" : "s", info->base == MERGE_BASE_REQUIRED ? " besides the base" : "",
                        in->k);
    if (info->max_models && in->k > info->max_models)
        return am_error(AM_EINVAL, "merge %s: takes exactly %d models, got %d%s", info->name, info->max_models, in->k,
                        s->method == MERGE_SLERP ? "\nHINT: multislerp merges more than two" : "");
    if (info->base == MERGE_BASE_REQUIRED && !in->base)
        return am_error(AM_EINVAL, "merge %s: needs a base model (it merges the task vectors θ_m − θ_base)",
                        info->name);
    if (info->base == MERGE_BASE_NONE && in->base)
        return am_error(AM_EINVAL, "merge %s: takes no base model%s", info->name,
                        s->method == MERGE_SLERP ? " (the first model is t = 0, the second t = 1)" : "");
    for (int m = 0; m < in->k; m++)
        if (!in->models[m]) return am_error(AM_EINVAL, "merge %s: model %d is missing", info->name, m + 1);
    if (in->elem_weight) {
        int ok = s->method == MERGE_LINEAR || sparse_kind(s->method) != SP_NONE ||
                 s->method == MERGE_TASK_ARITHMETIC;
        if (!ok)
            return am_error(AM_EINVAL, "merge %s: per-element weights apply to linear and the task-arithmetic "
                            "family only", info->name);
    }
    return check_params(s, in);
}

int merge_run(const MergeSpec *spec, const MergeInputs *in, float *out, MergeStats *stats) {
    MergeStats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    int rc = check_inputs(spec, in);
    if (rc) return rc;
    double t0 = am_now();
    int K = in->k;
    const float *x[K], *ew[K];
    Tj j = {0};
    j.s = spec;
    j.in = in;
    j.info = merge_method_info(spec->method);
    j.st = stats;
    j.out = out;
    j.K = K;
    for (int ti = 0; ti < in->tab->n && rc == AM_OK; ti++) {
        const ParamInfo *pi = &in->tab->t[ti];
        for (int m = 0; m < K; m++) {
            x[m] = in->models[m] + pi->offset;
            ew[m] = in->elem_weight && in->elem_weight[m] ? in->elem_weight[m] + pi->offset : NULL;
        }
        j.pi = pi;
        j.ti = ti;
        j.layer = merge_tensor_layer(pi->name);
        j.x = x;
        j.ew = in->elem_weight ? ew : NULL;
        j.b = in->base ? in->base + pi->offset : NULL;
        j.o = out + pi->offset;
        j.n = pi->numel;
        switch (spec->method) {
        case MERGE_LINEAR: rc = run_linear(&j); break;
        case MERGE_SLERP: rc = run_slerp(&j); break;
        case MERGE_NUSLERP: rc = run_nuslerp(&j); break;
        case MERGE_MULTISLERP: rc = run_multislerp(&j); break;
        case MERGE_KARCHER: rc = run_karcher(&j); break;
        case MERGE_MODEL_STOCK: rc = run_model_stock(&j); break;
        default: rc = run_gta(&j); break;
        }
        stats->n_tensors++;
        stats->n_elements += pi->numel;
    }
    if (rc) return rc;
    if (spec->method == MERGE_MODEL_STOCK && stats->n_tensors) stats->model_stock_t /= (double)stats->n_tensors;
    stats->seconds = am_now() - t0;
    size_t nin = (size_t)K + (in->base ? 1 : 0);
    stats->bytes_read = stats->n_elements * nin * sizeof(float);
    stats->bytes_written = stats->n_elements * sizeof(float);
    return AM_OK;
}

int merge_models(const MergeSpec *spec, Model *const *models, const char *const *names, int k,
                 const Model *base, Model *out, MergeStats *stats) {
    if (k < 1 || !models || !out) return am_error(AM_EINVAL, "merge: no input models");
    const Model *ref = base ? base : models[0];
    char buf[32];
    for (int m = -1; m < k; m++) {
        const Model *x = m < 0 ? base : models[m];
        if (!x) continue;
        const char *nm = m < 0 ? "the base model" : names && names[m] ? names[m] : (snprintf(buf, sizeof buf, "model %d", m + 1), buf);
        if (x->cfg.vocab_size != ref->cfg.vocab_size)
            return am_error(AM_EVOCAB, "merge: %s has a vocabulary of %d tokens, %s has %d; models merge only "
                            "over the same vocabulary", nm, x->cfg.vocab_size,
                            base ? "the base model" : (names && names[0] ? names[0] : "model 1"), ref->cfg.vocab_size);
        for (int ti = 0; ti < ref->tab.n || ti < x->tab.n; ti++) {
            const ParamInfo *a = ti < ref->tab.n ? &ref->tab.t[ti] : NULL, *bb = ti < x->tab.n ? &x->tab.t[ti] : NULL;
            if (!a || !bb)
                return am_error(AM_ESHAPE, "merge: %s %s tensor %s", nm, a ? "lacks" : "has an extra",
                                a ? a->name : bb->name);
            int same = strcmp(a->name, bb->name) == 0 && a->ndim == bb->ndim && a->numel == bb->numel;
            for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == bb->shape[d];
            if (!same) {
                if (strcmp(a->name, bb->name) != 0)
                    return am_error(AM_ESHAPE, "merge: %s has tensor %s where the others have %s", nm, bb->name, a->name);
                return am_error(AM_ESHAPE, "merge: tensor %s of %s has shape (%lld, %lld), the others (%lld, %lld)",
                                a->name, nm, (long long)bb->shape[0], (long long)(bb->ndim > 1 ? bb->shape[1] : 1),
                                (long long)a->shape[0], (long long)(a->ndim > 1 ? a->shape[1] : 1));
            }
        }
    }
    if (out->tab.total != ref->tab.total)
        return am_error(AM_ESHAPE, "merge: the output model has %zu parameters, the inputs %zu", out->tab.total,
                        ref->tab.total);
    const float *xs[k];
    for (int m = 0; m < k; m++) xs[m] = models[m]->params;
    MergeInputs in = {0};
    in.tab = &ref->tab;
    in.n_layers = ref->cfg.num_layers;
    in.k = k;
    in.models = xs;
    in.base = base ? base->params : NULL;
    in.names = names;
    return merge_run(spec, &in, out->params, stats);
}
