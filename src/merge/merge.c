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
 * Finished output blocks go out with streaming stores (AVX-512), so a linear merge moves about
 * the bytes it is credited with (measured above the triad's bandwidth with two models).
 * TIES' per-model thresholds (the k-th largest |δ|) cost one extra pass for all models: a
 * sample brackets the threshold, the pass counts what lies below the bracket and collects what
 * lies inside, and a branch-free selection finishes; exact, with radix passes as the fallback.
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

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define BLK 2048          /* elementwise block (floats): K+2 blocks stay in L1/L2 */
#define GCHUNK 32768      /* Gram / write chunk handed to a pool thread */
#define GB 256            /* Gram inner block */
#define GSB 256           /* task-arithmetic sub-block */

/* Grow-only scratch kept across the tensors of one merge_run (fresh large allocations would be
 * fresh pages: page faults on every tensor). */
typedef struct { float *p; size_t cap; } WsBuf;

static float *ws_get(WsBuf *w, size_t need) {
    if (need > w->cap) {
        am_free_aligned(w->p);
        w->p = am_alloc_floats(need);
        w->cap = w->p ? need : 0;
    }
    return w->p;
}

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
    WsBuf *ws;              /* K + 3 scratch buffers: band per model, sample, select ping-pong, copy */
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

/* Store n floats of a finished output block. The output is not read again during the merge,
 * so with AVX-512 the aligned part goes around the cache (streaming stores: no read for
 * ownership, which is a third of the traffic of a two-model linear merge). */
static void store_out(float *dst, const float *src, size_t n) {
    size_t i = 0;
#ifdef __AVX512F__
    while (i < n && ((uintptr_t)(dst + i) & 63)) { dst[i] = src[i]; i++; }
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#endif
    for (; i < n; i++) dst[i] = src[i];
}

static void store_fence(void) {
#ifdef __AVX512F__
    _mm_sfence(); /* streaming stores are visible to the joining thread */
#endif
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

static float select_kth(float *a, size_t n, size_t k);

/* k-th smallest (0-based) of a[0..n), destroying a, with tmp (n floats) as the other half of a
 * ping-pong: each round partitions out of place without branches (every entry is written to
 * both ends, one end advances), which on random data is several times faster than a quickselect
 * whose comparisons the branch predictor cannot guess. */
static float select_kth_bf(float *a, float *tmp, size_t n, size_t k) {
    while (n > 64) {
        float x = a[0], y = a[n / 2], z = a[n - 1], piv;
        piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t lo = 0, hi = n - 1;
        for (size_t i = 0; i < n; i++) {
            float v = a[i];
            size_t c = v < piv;
            tmp[lo] = v;
            tmp[hi] = v;
            lo += c;
            hi -= 1 - c;
        }
        /* tmp[0..lo) < piv <= tmp[lo..n) */
        if (k < lo) { n = lo; }
        else if (lo > 0) { tmp += lo; n -= lo; k -= lo; }
        else {
            /* piv is the minimum: split off the entries equal to it */
            size_t eq = 0;
            for (size_t i = 0; i < n; i++) eq += a[i] == piv;
            if (k < eq) return piv;
            size_t o = 0;
            for (size_t i = 0; i < n; i++) { tmp[o] = a[i]; o += a[i] != piv; }
            n = o; k -= eq;
        }
        float *t = a; a = tmp; tmp = t;
    }
    return select_kth(a, n, k);
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

/* The k-th smallest (0-based) of |x − b| over a tensor, exactly, without a scratch copy: two
 * histogram passes over the float bits (non-negative floats order as their bit patterns), the
 * top 16 bits and then the low 16 bits inside the bin that holds rank k. Per-thread histograms;
 * integer counts, so the result does not depend on the thread count. Returns 1 if |x − b| has a
 * NaN or Inf. */
#define RADIX_CH 65536
typedef struct { const float *x, *b; size_t n; int bin; uint32_t *hist; } RadixCtx;

static void radix_range(void *vctx, size_t lo, size_t hi, int tid) {
    RadixCtx *c = vctx;
    uint32_t *h = c->hist + (size_t)tid * 65536;
    const float *x = c->x, *b = c->b;
    size_t e1 = hi * RADIX_CH < c->n ? hi * RADIX_CH : c->n;
    if (c->bin < 0) {
        for (size_t e = lo * RADIX_CH; e < e1; e++) {
            float a = fabsf(x[e] - b[e]);
            uint32_t u;
            memcpy(&u, &a, 4);
            h[u >> 16]++;
        }
    } else {
        uint32_t bin = (uint32_t)c->bin;
        for (size_t e = lo * RADIX_CH; e < e1; e++) {
            float a = fabsf(x[e] - b[e]);
            uint32_t u;
            memcpy(&u, &a, 4);
            if ((u >> 16) == bin) h[u & 0xffff]++;
        }
    }
}

static int abs_delta_kth(const float *x, const float *b, size_t n, size_t k, float *out) {
    int nth = am_parallel_get_threads();
    uint32_t *hist = xcalloc((size_t)nth * 65536, sizeof *hist);
    size_t *tot = xcalloc(65536, sizeof *tot);
    RadixCtx c = {x, b, n, -1, hist};
    size_t nch = (n + RADIX_CH - 1) / RADIX_CH, cum = 0, r = k;
    int bad = 0;
    uint32_t v = 0;
    for (int pass = 0; pass < 2 && !bad; pass++) {
        am_parallel_for(radix_range, &c, nch, 1, n * 2);
        memset(tot, 0, 65536 * sizeof *tot);
        for (int t = 0; t < nth; t++)
            for (size_t i = 0; i < 65536; i++) tot[i] += hist[(size_t)t * 65536 + i];
        if (pass == 0)
            for (size_t i = 0x7f80; i < 65536; i++) bad |= tot[i] != 0;
        size_t i;
        cum = 0;
        for (i = 0; i < 65536; i++) {
            if (cum + tot[i] > r) break;
            cum += tot[i];
        }
        AM_ASSERT(i < 65536);
        if (pass == 0) { c.bin = (int)i; r -= cum; v = (uint32_t)i << 16; }
        else v |= (uint32_t)i;
        memset(hist, 0, (size_t)nth * 65536 * sizeof *hist);
    }
    free(hist);
    free(tot);
    memcpy(out, &v, 4);
    return bad;
}

/* The same, faster for large tensors: a pseudo-random sample (one entry per 64, a quarter of
 * the cache lines) brackets rank k in [lo, hi] with a wide margin; one pass counts the entries
 * below lo and collects those in [lo, hi]; the exact k-th is then selected among the collected.
 * If the bracket missed (or collected too much), the radix passes decide. Small tensors are
 * copied and selected in cache. */
typedef struct { const float *x; float lo, hi; size_t below, cnt, cap, nans; float *band; int over, want; } BandM;
typedef struct { const float *b; size_t n; int K; BandM *bm; } BandCtx;

#define BAND_LOC 512
static void band_flush(BandM *bm, const float *loc, size_t nl) {
    size_t at = __atomic_fetch_add(&bm->cnt, nl, __ATOMIC_RELAXED);
    if (at + nl <= bm->cap) memcpy(bm->band + at, loc, nl * sizeof *loc);
    else __atomic_store_n(&bm->over, 1, __ATOMIC_RELAXED);
}

static void band_range(void *vctx, size_t lo, size_t hi, int tid) {
    BandCtx *c = vctx;
    (void)tid;
    int K = c->K;
    size_t e1 = hi * RADIX_CH < c->n ? hi * RADIX_CH : c->n;
    const float *b = c->b;
    float loc[K][BAND_LOC];
    size_t nl[K], below[K];
    for (int m = 0; m < K; m++) nl[m] = below[m] = 0;
    /* the models interleaved per 2048 entries: K streams in flight, as a linear merge reads */
    for (size_t s0 = lo * RADIX_CH; s0 < e1; s0 += 2048) {
        size_t s1 = s0 + 2048 < e1 ? s0 + 2048 : e1;
        for (int m = 0; m < K; m++) {
            BandM *bm = &c->bm[m];
            if (!bm->want) continue;
            const float *x = bm->x;
            float l = bm->lo, h = bm->hi;
            size_t e = s0, n_l = nl[m], bl = 0, nn = 0;
            float *lc = loc[m];
#ifdef __AVX512F__
            /* compress-store the in-band entries: no branch per entry */
            __m512 vl = _mm512_set1_ps(l), vh = _mm512_set1_ps(h);
            __m512i absm = _mm512_set1_epi32(0x7fffffff);
            for (; e + 16 <= s1; e += 16) {
                __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + e), _mm512_loadu_ps(b + e));
                __m512 av = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d), absm));
                __mmask16 lt = _mm512_cmp_ps_mask(av, vl, _CMP_LT_OQ);
                __mmask16 in = _mm512_cmp_ps_mask(av, vl, _CMP_GE_OQ) & _mm512_cmp_ps_mask(av, vh, _CMP_LE_OQ);
                bl += (size_t)__builtin_popcount(lt);
                nn += (size_t)__builtin_popcount(_mm512_cmp_ps_mask(av, av, _CMP_UNORD_Q));
                if (in) {
                    if (n_l + 16 > BAND_LOC) { band_flush(bm, lc, n_l); n_l = 0; }
                    _mm512_mask_compressstoreu_ps(lc + n_l, in, av);
                    n_l += (size_t)__builtin_popcount(in);
                }
            }
#endif
            for (; e < s1; e++) {
                float a = fabsf(x[e] - b[e]);
                bl += a < l;
                nn += a != a;
                if (a >= l && a <= h) {
                    if (n_l == BAND_LOC) { band_flush(bm, lc, n_l); n_l = 0; }
                    lc[n_l++] = a;
                }
            }
            nl[m] = n_l;
            below[m] += bl;
            if (nn) __atomic_fetch_add(&bm->nans, nn, __ATOMIC_RELAXED); /* NaN: outside every count */
        }
    }
    for (int m = 0; m < K; m++) {
        if (!c->bm[m].want) continue;
        band_flush(&c->bm[m], loc[m], nl[m]);
        __atomic_fetch_add(&c->bm[m].below, below[m], __ATOMIC_RELAXED);
    }
}

static int abs_delta_kth_radix_all(const float *const *x, const float *b, size_t n, int K, const size_t *k,
                                   float *out) {
    for (int m = 0; m < K; m++)
        if (k[m] != SIZE_MAX && abs_delta_kth(x[m], b, n, k[m], &out[m])) return m;
    return -1;
}

/* k[m]-th smallest |x_m − b| for every model with k[m] != SIZE_MAX, in one pass over the inputs
 * for large tensors: a pseudo-random sample of each δ_m (one entry per 64, a quarter of the cache
 * lines) brackets rank k in [lo, hi] with a wide margin; one pass counts the entries below lo and
 * collects those in [lo, hi]; the exact k-th is selected among the collected. Where a bracket
 * missed, the radix passes decide. Small tensors are copied and selected in cache.
 * Returns the first model whose δ has a NaN/Inf, or −1. */
static int abs_delta_kth_multi(const float *const *x, const float *b, size_t n, int K, const size_t *k, float *out,
                               WsBuf *ws) {
    if (n < ((size_t)1 << 14)) {
        float *t = ws_get(&ws[K], n);
        if (!t) return abs_delta_kth_radix_all(x, b, n, K, k, out);
        for (int m = 0; m < K; m++) {
            if (k[m] == SIZE_MAX) continue;
            for (size_t e = 0; e < n; e++) t[e] = fabsf(x[m][e] - b[e]);
            if (block_bad(t, n)) return m;
            out[m] = select_kth(t, n, k[m]);
        }
        return -1;
    }
    size_t ns = n / 64 / 16 * 16; /* n >= 2^14: at least 256 */
    BandM bm[K];
    memset(bm, 0, sizeof bm);
    float *smp = ws_get(&ws[K], ns);
    if (!smp) return abs_delta_kth_radix_all(x, b, n, K, k, out);
    for (int m = 0; m < K; m++) {
        if (k[m] == SIZE_MAX) continue;
        /* one 16-float cache line at a pseudo-random place in every 64 lines: few cache misses */
        uint64_t h = 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i + 16 <= ns; i += 16) {
            h ^= h >> 12; h ^= h << 25; h ^= h >> 27;
            size_t e0 = i * 64 + 16 * (size_t)((h * 0x2545F4914F6CDD1Dull) >> 58);
            for (size_t q = 0; q < 16; q++) smp[i + q] = fabsf(x[m][e0 + q] - b[e0 + q]);
        }
        if (block_bad(smp, ns)) return m;
        /* rank k/n in the sample ± 6 standard deviations of a sample quantile (and ± 32 entries);
         * a miss (about 2e-9 per tensor and model) only costs the radix passes */
        double p = (double)k[m] / (double)n, sd = sqrt(p * (1 - p) / (double)ns) * (double)ns;
        double mg = 6 * sd + 32, rl = p * (double)ns - mg, rh = p * (double)ns + mg;
        bm[m].x = x[m];
        float *cp = ws_get(&ws[K + 2], ns), *tmp = ws_get(&ws[K + 1], ns);
        if (!cp || !tmp) return abs_delta_kth_radix_all(x, b, n, K, k, out);
        memcpy(cp, smp, ns * sizeof *cp);
        bm[m].lo = rl <= 0 ? 0.0f : select_kth_bf(cp, tmp, ns, (size_t)rl);
        bm[m].hi = rh >= (double)(ns - 1) ? INFINITY : select_kth_bf(smp, tmp, ns, (size_t)rh);
        bm[m].cap = (size_t)(4 * (rh - rl + 1)) * 64 + 4096;
        bm[m].band = ws_get(&ws[m], bm[m].cap);
        bm[m].want = bm[m].band != NULL;
    }
    BandCtx c = {b, n, K, bm};
    am_parallel_for(band_range, &c, (n + RADIX_CH - 1) / RADIX_CH, 1, n * (size_t)(K + 1));
    int bad = -1;
    for (int m = 0; m < K; m++) {
        if (k[m] == SIZE_MAX) continue;
        if (bm[m].nans) { if (bad < 0) bad = m; continue; }
        int ok = bm[m].want && !bm[m].over && bm[m].below <= k[m] && k[m] < bm[m].below + bm[m].cnt;
        float *tmp = ok ? ws_get(&ws[K + 1], bm[m].cnt) : NULL;
        if (ok && tmp) out[m] = select_kth_bf(bm[m].band, tmp, bm[m].cnt, k[m] - bm[m].below);
        else if (ok) out[m] = select_kth(bm[m].band, bm[m].cnt, k[m] - bm[m].below);
        else if (abs_delta_kth(x[m], b, n, k[m], &out[m]) && bad < 0) bad = m; /* NaN/Inf end here */
    }
    return bad;
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
        int bad = abs_delta_kth_multi(j->x, b, n, j->K, ks, th, j->ws);
        if (bad >= 0) return report_nonfinite(j, 0, n);
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
                if (block_bad(scratch, n)) return report_nonfinite(j, 0, n);
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
    if (cons) {
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
    for (size_t s = lo * BLK; s < hi * BLK && s < j->n; s += GSB) {
        size_t len = s + GSB < j->n ? GSB : j->n - s;
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
    if (kind == SP_NONE && !cons && !j->ew) {
        double div = 0;
        for (int m = 0; m < K; m++) div += gm[m].w;
        if (fabs(div) < 1e-8 || !norm) div = 1;
        float c[K];
        for (int m = 0; m < K; m++) c[m] = (float)(lambda * gm[m].w / div);
        TaCtx ctx = {j, c, 0, 0, 0};
        am_parallel_for(ta_range, &ctx, (j->n + BLK - 1) / BLK, 8, j->n * (size_t)(K + 2));
        return ctx.bad ? report_nonfinite(j, ctx.bad_lo, ctx.bad_hi) : AM_OK;
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
    if (ctx.bad) return report_nonfinite(j, 0, j->n);
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
    WsBuf *ws = xcalloc((size_t)K + 3, sizeof *ws);
    j.ws = ws;
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
    for (int m = 0; m < K + 3; m++) am_free_aligned(ws[m].p);
    free(ws);
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
