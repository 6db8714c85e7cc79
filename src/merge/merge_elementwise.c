/* merge_elementwise.c - the methods that read each input once per element: linear, task
 * arithmetic, TIES, DARE (linear, ties), DELLA (linear, ties), breadcrumbs (plain, ties). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "merge.h"
#include "merge_internal.h"
#include "tensor.h"

/* ------------------------------------------------------------------------- linear */

typedef struct { const Tj *j; const double *c; int bad; size_t bad_lo, bad_hi; } LinCtx;

static void lin_range(void *vctx, size_t lo, size_t hi, int tid) {
    LinCtx *c = vctx;
    const Tj *j = c->j;
    (void)tid;
    float t[BLK];
    for (size_t s = lo * BLK; s < hi * BLK && s < j->n; s += BLK) {
        size_t e1 = s + BLK < j->n ? s + BLK : j->n, len = e1 - s;
        float c0 = (float)c->c[0];
        const float *x0 = j->x[0] + s;
        for (size_t e = 0; e < len; e++) t[e] = c0 * x0[e];
        for (int m = 1; m < j->K; m++) {
            float cm = (float)c->c[m];
            const float *xm = j->x[m] + s;
            for (size_t e = 0; e < len; e++) t[e] += cm * xm[e];
        }
        if (block_bad(t, len) && !c->bad) { c->bad = 1; c->bad_lo = s; c->bad_hi = e1; }
        store_out(j->o + s, t, len);
    }
    store_fence();
}

int merge_run_linear(const Tj *j) {
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
            if (!isfinite(j->o[e])) return merge_report_nonfinite(j, e, e + 1);
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
    if (ctx.bad) return merge_report_nonfinite(j, ctx.bad_lo, ctx.bad_hi);
    return AM_OK;
}

/* ------------------------------------------------------- task arithmetic family */


typedef struct {
    double w, density, eps, gamma, scale;
    int active;          /* sparsify this model on this tensor (density < 1) */
    float lo, hi;        /* keep lo <= |δ| <= hi (magnitude, outliers) */
    int keep_none;
    AmRng rng;           /* random / della stream */
} GtaModel;

static int consensus(MergeMethod m) {
    return m == MERGE_TIES || m == MERGE_DARE_TIES || m == MERGE_DELLA || m == MERGE_BREADCRUMBS_TIES;
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
    if (kind == SP_MAGNITUDE) {
        /* every model's threshold in one pass over the inputs */
        size_t ks[j->K];
        float th[j->K];
        for (int m = 0; m < j->K; m++) {
            size_t k = (size_t)(gm[m].density * (double)n);
            if (k < 1) k = 1; /* mergekit asserts k > 0; we keep the largest entry */
            ks[m] = gm[m].density < 1 ? n - k : SIZE_MAX;
        }
        int bad = merge_abs_delta_kth_multi(j->x, b, n, j->K, ks, th, j->ws);
        if (bad >= 0) return merge_report_nonfinite(j, 0, n);
        for (int m = 0; m < j->K; m++) gm[m].lo = th[m];
    }
    for (int m = 0; m < j->K; m++) {
        GtaModel *g = &gm[m];
        const float *x = j->x[m];
        g->scale = 1;
        if (kind != SP_MAGNITUDE) g->lo = 0;
        g->hi = INFINITY;
        g->keep_none = 0;
        g->active = kind != SP_NONE && g->density < 1;
        if (!g->active) continue;
        am_rng_seed(&g->rng, merge_stream_seed(j->s->seed, m, j->ti));
        double before = 0, after = 0;
        if (kind == SP_MAGNITUDE || kind == SP_OUTLIERS) {
            if (kind == SP_OUTLIERS) {
                for (size_t e = 0; e < n; e++) scratch[e] = fabsf(x[e] - b[e]);
                if (block_bad(scratch, n)) return merge_report_nonfinite(j, 0, n);
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
                    g->hi = merge_select_kth(scratch, n, (size_t)last);
                    g->lo = merge_select_kth(scratch, n, (size_t)n_bot);
                }
            }
            if (rescale && !paper) {
                for (size_t e = 0; e < n; e++) {
                    float a = fabsf(x[e] - b[e]);
                    before += (double)a;
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

/* Mix [s, s+len) given each model's sparsified δ in D[m][0..len): loops over elements innermost
 * and branch-free so they vectorise. */
/* w_m per element of [s, s+len): the scalar, or scalar × elem_weight */
static const float *weights_of(const Tj *j, const GtaModel *gm, int m, size_t s, size_t len, float *wbuf) {
    float ws = (float)gm[m].w;
    if (j->ew && j->ew[m]) {
        const float *ew = j->ew[m] + s;
        for (size_t e = 0; e < len; e++) wbuf[e] = ws * ew[e];
    } else {
        for (size_t e = 0; e < len; e++) wbuf[e] = ws;
    }
    return wbuf;
}

static int gta_mix_blk(const Tj *j, GtaModel *gm, float *const *D, size_t s, size_t len, int cons,
                       int norm, double lambda, size_t *conflicts) {
    int K = j->K, paper = j->s->paper;
    const float *b = j->b + s;
    float *o = j->o + s;
    float lam = (float)lambda;
    float mixed[BLK], div[BLK], vote[BLK], wbuf[BLK];
    for (size_t e = 0; e < len; e++) { mixed[e] = 0; div[e] = 0; vote[e] = 0; }
    if (cons && !j->ew) {
        /* the same arithmetic with each model's scalar weight broadcast instead of a filled
         * weight array (two fewer passes over a block per model; bit-identical) */
        for (int m = 0; m < K; m++) {
            const float *d = D[m];
            const float ws = (float)gm[m].w;
            if (paper) { for (size_t e = 0; e < len; e++) vote[e] += d[e]; continue; }
            for (size_t e = 0; e < len; e++) vote[e] += ws * d[e];
        }
        float maj[BLK];
        for (size_t e = 0; e < len; e++) maj[e] = vote[e] >= 0 ? 1.0f : -1.0f;
        uint32_t nz = 0, ag = 0;
        for (int m = 0; m < K; m++) {
            const float *d = D[m];
            const float ws = (float)gm[m].w;
            for (size_t e = 0; e < len; e++) {
                float wd = ws * d[e], sg = paper ? d[e] : wd;
                int agree = sg * maj[e] > 0;
                mixed[e] += agree ? wd : 0.0f;
                div[e] += agree ? ws : 0.0f;
                nz += sg != 0;
                ag += (uint32_t)agree;
            }
        }
        size_t conf = nz - ag;
        *conflicts += conf;
        for (size_t e = 0; e < len; e++) div[e] = div[e] == 0 ? 1.0f : div[e];
    } else if (cons) {
        for (int m = 0; m < K; m++) {
            const float *d = D[m];
            if (paper) { for (size_t e = 0; e < len; e++) vote[e] += d[e]; continue; }
            const float *w_ = weights_of(j, gm, m, s, len, wbuf);
            for (size_t e = 0; e < len; e++) vote[e] += w_[e] * d[e];
        }
        float maj[BLK];
        for (size_t e = 0; e < len; e++) maj[e] = vote[e] >= 0 ? 1.0f : -1.0f;
        uint32_t nz = 0, ag = 0; /* 32-bit counters keep the loop in one vector width */
        for (int m = 0; m < K; m++) {
            const float *d = D[m];
            const float *w_ = weights_of(j, gm, m, s, len, wbuf);
            for (size_t e = 0; e < len; e++) {
                float wd = w_[e] * d[e], sg = paper ? d[e] : wd;
                int agree = sg * maj[e] > 0;
                mixed[e] += agree ? wd : 0.0f;
                div[e] += agree ? w_[e] : 0.0f;
                nz += sg != 0;
                ag += (uint32_t)agree;
            }
        }
        size_t conf = nz - ag;
        *conflicts += conf;
        for (size_t e = 0; e < len; e++) div[e] = div[e] == 0 ? 1.0f : div[e];
    } else {
        for (int m = 0; m < K; m++) {
            const float *d = D[m];
            const float *w_ = weights_of(j, gm, m, s, len, wbuf);
            for (size_t e = 0; e < len; e++) { mixed[e] += w_[e] * d[e]; div[e] += w_[e]; }
        }
        for (size_t e = 0; e < len; e++) div[e] = fabsf(div[e]) < 1e-8f ? 1.0f : div[e];
    }
    if (norm) for (size_t e = 0; e < len; e++) mixed[e] = b[e] + lam * (mixed[e] / div[e]);
    else for (size_t e = 0; e < len; e++) mixed[e] = b[e] + lam * mixed[e];
    int bad = block_bad(mixed, len);
    store_out(o, mixed, len);
    return bad;
}

static int gta_mix(const Tj *j, GtaModel *gm, float *const *D, size_t s, size_t len, int cons,
                   int norm, double lambda, size_t *conflicts) {
    int K = j->K, bad = 0;
    for (size_t q = 0; q < len; q += BLK) { /* DELLA rows may be longer than a block */
        float *Dq[K];
        for (int m = 0; m < K; m++) Dq[m] = D[m] + q;
        bad |= gta_mix_blk(j, gm, Dq, s + q, len - q < BLK ? len - q : BLK, cons, norm, lambda, conflicts);
    }
    return bad;
}

typedef struct { const Tj *j; GtaModel *gm; int kind, cons, norm; double lambda;
                 int bad; size_t bad_lo, bad_hi, kept, conflicts; } GtaCtx;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TIES_FUSED 1
/* TIES (consensus, scalar weights, up to 8 models) for the 16-aligned part of [s, s+len): the
 * masked δ of every model, the sign vote, the agreeing mean and the output of 16 entries at a
 * time in AVX-512 registers, one pass, instead of gta_range's per-model arrays and
 * gta_mix_blk's passes over them. The same operations per element in the same order as those
 * (bit-identical; tests/unit test_merge checks it against the portable path). Used when the
 * CPU has AVX-512F/DQ (checked at run time). Returns the entries done. */
__attribute__((target("avx512f,avx512dq,fma"))) static size_t ties_fused(const Tj *j, const GtaModel *gm, size_t s,
                                                                          size_t len, int paper, int norm, float lam,
                                                                          size_t *kept, size_t *conf, int *bad) {
    const int K = j->K;
    const size_t n16 = len / 16 * 16;
    const float *b = j->b + s;
    float *o = j->o + s;
    const float *xs[8];
    __m512 vlo[8], vhi[8], vsc[8], vw[8];
    int mode[8]; /* 0 keep all (not active), 1 none, 2 magnitude window */
    for (int m = 0; m < K; m++) {
        xs[m] = j->x[m] + s;
        vlo[m] = _mm512_set1_ps(gm[m].lo);
        vhi[m] = _mm512_set1_ps(gm[m].hi);
        vsc[m] = _mm512_set1_ps((float)gm[m].scale);
        vw[m] = _mm512_set1_ps((float)gm[m].w);
        mode[m] = !gm[m].active ? 0 : gm[m].keep_none ? 1 : 2;
    }
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), mone = _mm512_set1_ps(-1.0f);
    const __m512 vlam = _mm512_set1_ps(lam);
    const __m512i ione = _mm512_set1_epi32(1);
    __m512i vkept = _mm512_setzero_si512(), vnz = vkept, vag = vkept;
    __mmask16 badm = 0;
    for (size_t e = 0; e < n16; e += 16) {
        const __m512 bv = _mm512_loadu_ps(b + e);
        __m512 d[8], vote = zero;
        for (int m = 0; m < K; m++) {
            const __m512 v = _mm512_sub_ps(_mm512_loadu_ps(xs[m] + e), bv);
            if (mode[m] == 0) d[m] = v;
            else if (mode[m] == 1) d[m] = zero;
            else {
                const __m512 a = _mm512_abs_ps(v);
                const __mmask16 k = _mm512_cmp_ps_mask(a, vlo[m], _CMP_GE_OQ) & _mm512_cmp_ps_mask(a, vhi[m], _CMP_LE_OQ);
                d[m] = _mm512_maskz_mul_ps(k, v, vsc[m]);
                vkept = _mm512_mask_add_epi32(vkept, k, vkept, ione);
            }
            vote = paper ? _mm512_add_ps(vote, d[m]) : _mm512_fmadd_ps(vw[m], d[m], vote);
        }
        const __m512 maj = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(vote, zero, _CMP_GE_OQ), mone, one);
        __m512 mixed = zero, div = zero;
        for (int m = 0; m < K; m++) {
            const __m512 wd = _mm512_mul_ps(vw[m], d[m]), sg = paper ? d[m] : wd;
            const __mmask16 agree = _mm512_cmp_ps_mask(_mm512_mul_ps(sg, maj), zero, _CMP_GT_OQ);
            /* the portable path's compiled form: w·d used once (paper) fuses into the sum */
            mixed = paper ? _mm512_mask3_fmadd_ps(vw[m], d[m], mixed, agree)
                          : _mm512_add_ps(mixed, _mm512_maskz_mov_ps(agree, wd));
            div = _mm512_add_ps(div, _mm512_maskz_mov_ps(agree, vw[m]));
            vnz = _mm512_mask_add_epi32(vnz, _mm512_cmp_ps_mask(sg, zero, _CMP_NEQ_UQ), vnz, ione);
            vag = _mm512_mask_add_epi32(vag, agree, vag, ione);
        }
        div = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(div, zero, _CMP_EQ_OQ), div, one);
        const __m512 out = norm ? _mm512_fmadd_ps(vlam, _mm512_div_ps(mixed, div), bv) : _mm512_fmadd_ps(vlam, mixed, bv);
        badm |= _mm512_fpclass_ps_mask(out, 0x99); /* NaN or ±Inf */
        if (((uintptr_t)(o + e) & 63) == 0) _mm512_stream_ps(o + e, out);
        else _mm512_storeu_ps(o + e, out);
    }
    *kept += (size_t)_mm512_reduce_add_epi32(vkept);
    *conf += (size_t)((uint32_t)_mm512_reduce_add_epi32(vnz) - (uint32_t)_mm512_reduce_add_epi32(vag));
    *bad = badm != 0;
    return n16;
}

#endif

static int g_simd = -1; /* -1: not decided yet */
static int ties_fused_ok(void) {
    int x = __atomic_load_n(&g_simd, __ATOMIC_RELAXED);
    if (x < 0) {
#ifdef TIES_FUSED
        const char *off = getenv("AMALGAM_NO_AVX512");
        __builtin_cpu_init();
        x = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
            !(off && *off && strcmp(off, "0") != 0);
#else
        x = 0;
#endif
        __atomic_store_n(&g_simd, x, __ATOMIC_RELAXED);
    }
    return x;
}
int merge_simd(void) { return ties_fused_ok(); }
void merge_set_simd(int on) {
    __atomic_store_n(&g_simd, -1, __ATOMIC_RELAXED);
    if (on >= 0) __atomic_store_n(&g_simd, on && ties_fused_ok(), __ATOMIC_RELAXED);
}

/* magnitude / outliers / no sparsification: independent blocks, parallel */
static void gta_range(void *vctx, size_t lo, size_t hi, int tid) {
    GtaCtx *c = vctx;
    const Tj *j = c->j;
    (void)tid;
    int K = j->K;
    /* sub-blocks of GSB: the K masked δ and the mix's arrays stay in L1 */
    float buf[K][GSB];
    float *D[K];
    for (int m = 0; m < K; m++) D[m] = buf[m];
    size_t kept = 0, conf = 0;
#ifdef TIES_FUSED
    const int fused = c->cons && !j->ew && K <= 8 && ties_fused_ok();
#endif
    for (size_t s0 = lo * BLK; s0 < hi * BLK && s0 < j->n; s0 += GSB) {
        size_t s = s0, len = s0 + GSB < j->n ? GSB : j->n - s0;
#ifdef TIES_FUSED
        if (fused) {
            int fbad = 0;
            size_t done = ties_fused(j, c->gm, s, len, j->s->paper, c->norm, (float)c->lambda, &kept, &conf, &fbad);
            if (fbad && !c->bad) { c->bad = 1; c->bad_lo = s; c->bad_hi = s + len; }
            if (done == len) continue;
            s += done; /* the tail (< 16 entries): the portable path below */
            len -= done;
        }
#endif
        for (int m = 0; m < K; m++) {
            const GtaModel *g = &c->gm[m];
            const float *x = j->x[m] + s, *b = j->b + s;
            float sc = (float)g->scale, l = g->lo, h = g->hi;
            float *d = D[m];
            if (!g->active) { for (size_t e = 0; e < len; e++) d[e] = x[e] - b[e]; continue; }
            if (g->keep_none) { for (size_t e = 0; e < len; e++) d[e] = 0; continue; }
            uint32_t kb = 0;
            for (size_t e = 0; e < len; e++) {
                float v = x[e] - b[e], a = fabsf(v);
                int k = (a >= l) & (a <= h);
                d[e] = k ? v * sc : 0.0f;
                kb += (uint32_t)k;
            }
            kept += kb;
        }
        if (gta_mix_blk(j, c->gm, D, s, len, c->cons, c->norm, c->lambda, &conf) && !c->bad) {
            c->bad = 1; c->bad_lo = s; c->bad_hi = s + len;
        }
    }
    store_fence();
    __atomic_fetch_add(&c->kept, kept, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->conflicts, conf, __ATOMIC_RELAXED);
}

/* Task arithmetic without masks or element weights: out = b + Σ c_m (x_m − b), one pass */
typedef struct { const Tj *j; const float *c; int bad; size_t bad_lo, bad_hi; } TaCtx;

static void ta_range(void *vctx, size_t lo, size_t hi, int tid) {
    TaCtx *c = vctx;
    const Tj *j = c->j;
    (void)tid;
    float t[BLK];
    for (size_t s = lo * BLK; s < hi * BLK && s < j->n; s += BLK) {
        size_t len = s + BLK < j->n ? BLK : j->n - s;
        const float *b = j->b + s;
        for (size_t e = 0; e < len; e++) t[e] = 0;
        for (int m = 0; m < j->K; m++) {
            const float *x = j->x[m] + s;
            float cm = c->c[m];
            for (size_t e = 0; e < len; e++) t[e] += cm * (x[e] - b[e]);
        }
        for (size_t e = 0; e < len; e++) t[e] += b[e];
        if (block_bad(t, len) && !c->bad) { c->bad = 1; c->bad_lo = s; c->bad_hi = s + len; }
        store_out(j->o + s, t, len);
    }
    store_fence();
}

int merge_run_gta(const Tj *j) {
    int K = j->K, kind = merge_sparse_kind(j->s->method), cons = consensus(j->s->method);
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
    if (kind == SP_NONE && !cons && !j->ew) {
        double div = 0;
        for (int m = 0; m < K; m++) div += gm[m].w;
        if (fabs(div) < 1e-8 || !norm) div = 1;
        float c[K];
        for (int m = 0; m < K; m++) c[m] = (float)(lambda * gm[m].w / div);
        TaCtx ctx = {j, c, 0, 0, 0};
        am_parallel_for(ta_range, &ctx, (j->n + BLK - 1) / BLK, 8, j->n * (size_t)(K + 2));
        return ctx.bad ? merge_report_nonfinite(j, ctx.bad_lo, ctx.bad_hi) : AM_OK;
    }
    float *scratch = NULL;
    RankEnt *rk = NULL;
    double *pr = NULL;
    size_t cols = 0;
    if (kind == SP_OUTLIERS) {
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
            if (gta_mix(j, gm, D, s, len, cons, norm, lambda, &ctx.conflicts) && !ctx.bad) {
                ctx.bad = 1; ctx.bad_lo = s; ctx.bad_hi = s + len;
            }
        }
        am_free_aligned(buf);
        (void)rows;
    }
    free(rk);
    free(pr);
    if (rc) return rc;
    if (ctx.bad) return merge_report_nonfinite(j, ctx.bad_lo, ctx.bad_hi);
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
