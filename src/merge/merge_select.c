/* merge_select.c - exact k-th smallest |x − b| per model for the magnitude masks of TIES and
 * breadcrumbs: a branch-free out-of-place selection, a sampled bracket with one counting pass
 * over all models, and radix passes as the exact fallback. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "merge.h"
#include "merge_internal.h"
#include "tensor.h"

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
    return merge_select_kth(a, n, k);
}

/* k-th smallest (0-based) of a[0..n) in place (Hoare quickselect, median of three). */
float merge_select_kth(float *a, size_t n, size_t k) {
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
/* the band pass's chunks: 16384 entries, so a 384 x 384 matrix is 9 chunks for the threads to
 * share (65536 left one of two threads idle for a third of it) */
#define BAND_CH 16384
static void band_flush(BandM *bm, const float *loc, size_t nl) {
    size_t at = __atomic_fetch_add(&bm->cnt, nl, __ATOMIC_RELAXED);
    if (at + nl <= bm->cap) memcpy(bm->band + at, loc, nl * sizeof *loc);
    else __atomic_store_n(&bm->over, 1, __ATOMIC_RELAXED);
}

#ifdef __AVX512F__
/* band_range for K <= 8: the models interleaved per 16 entries (as ties_fused reads them: the
 * K + 1 streams advance together, b is loaded once per vector), the counters in registers */
static void band_range_v(BandCtx *c, size_t e0, size_t e1, float (*loc)[BAND_LOC], size_t *nl, size_t *below) {
    const int K = c->K;
    const float *b = c->b;
    const float *xs[8];
    __m512 vl[8], vh[8];
    __m512i cnt[8];
    int act[8], na = 0;
    for (int m = 0; m < K; m++) {
        BandM *bm = &c->bm[m];
        if (!bm->want) continue;
        xs[na] = bm->x;
        vl[na] = _mm512_set1_ps(bm->lo);
        vh[na] = _mm512_set1_ps(bm->hi);
        cnt[na] = _mm512_setzero_si512();
        act[na++] = m;
    }
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), one = _mm512_set1_epi32(1);
    __mmask16 nanm = 0;
    size_t e = e0;
    for (; e + 16 <= e1; e += 16) {
        const __m512 bv = _mm512_loadu_ps(b + e);
        for (int q = 0; q < na; q++) {
            const int m = act[q];
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(xs[q] + e), bv);
            __m512 av = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d), absm));
            __mmask16 lt = _mm512_cmp_ps_mask(av, vl[q], _CMP_LT_OQ);
            cnt[q] = _mm512_mask_add_epi32(cnt[q], lt, cnt[q], one);
            nanm |= _mm512_cmp_ps_mask(av, av, _CMP_UNORD_Q);
            __mmask16 in = _mm512_mask_cmp_ps_mask((__mmask16)~lt, av, vh[q], _CMP_LE_OQ);
            size_t n_l = nl[m];
            if (n_l + 16 > BAND_LOC) { band_flush(&c->bm[m], loc[m], n_l); n_l = 0; }
            _mm512_storeu_ps(loc[m] + n_l, _mm512_maskz_compress_ps(in, av));
            nl[m] = n_l + (size_t)__builtin_popcount(in);
        }
    }
    for (int q = 0; q < na; q++) {
        const int m = act[q];
        BandM *bm = &c->bm[m];
        const float *x = xs[q];
        float l = bm->lo, h = bm->hi;
        size_t bl = (size_t)_mm512_reduce_add_epi32(cnt[q]), nn = 0;
        if (nanm) /* exact count, as the scalar path keeps it (only "any" is used) */
            for (size_t r = e0; r < e; r++) {
                float a = fabsf(x[r] - b[r]);
                nn += a != a;
            }
        for (size_t r = e; r < e1; r++) {
            float a = fabsf(x[r] - b[r]);
            bl += a < l;
            nn += a != a;
            if (a >= l && a <= h) {
                if (nl[m] == BAND_LOC) { band_flush(bm, loc[m], nl[m]); nl[m] = 0; }
                loc[m][nl[m]++] = a;
            }
        }
        below[m] += bl;
        if (nn) __atomic_fetch_add(&bm->nans, nn, __ATOMIC_RELAXED);
    }
}
#endif

static void band_range(void *vctx, size_t lo, size_t hi, int tid) {
    BandCtx *c = vctx;
    (void)tid;
    int K = c->K;
    size_t e1 = hi * BAND_CH < c->n ? hi * BAND_CH : c->n;
    const float *b = c->b;
    float loc[K][BAND_LOC];
    size_t nl[K], below[K];
    for (int m = 0; m < K; m++) nl[m] = below[m] = 0;
#ifdef __AVX512F__
    if (K <= 8) {
        band_range_v(c, lo * BAND_CH, e1, loc, nl, below);
        goto done;
    }
#endif
    /* the models interleaved per 2048 entries: K streams in flight, as a linear merge reads */
    for (size_t s0 = lo * BAND_CH; s0 < e1; s0 += 2048) {
        size_t s1 = s0 + 2048 < e1 ? s0 + 2048 : e1;
        for (int m = 0; m < K; m++) {
            BandM *bm = &c->bm[m];
            if (!bm->want) continue;
            const float *x = bm->x;
            float l = bm->lo, h = bm->hi;
            size_t e = s0, n_l = nl[m], bl = 0, nn = 0;
            float *lc = loc[m];
#ifdef __AVX512F__
            /* compress-store the in-band entries: no branch per entry; the counts stay in
             * vector registers (a lane counter per lane, a NaN mask) until the sub-block ends */
            __m512 vl = _mm512_set1_ps(l), vh = _mm512_set1_ps(h);
            __m512i absm = _mm512_set1_epi32(0x7fffffff), one = _mm512_set1_epi32(1);
            __m512i cnt = _mm512_setzero_si512();
            __mmask16 nanm = 0;
            for (; e + 16 <= s1; e += 16) {
                __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + e), _mm512_loadu_ps(b + e));
                __m512 av = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d), absm));
                __mmask16 lt = _mm512_cmp_ps_mask(av, vl, _CMP_LT_OQ);
                cnt = _mm512_mask_add_epi32(cnt, lt, cnt, one);
                nanm |= _mm512_cmp_ps_mask(av, av, _CMP_UNORD_Q);
                /* not below and <= hi: a NaN is neither (ordered compares are false) */
                __mmask16 in = _mm512_mask_cmp_ps_mask((__mmask16)~lt, av, vh, _CMP_LE_OQ);
                /* no branch on `in` (about 1 vector in 6 has an in-band entry: a mispredicted
                 * branch cost more than this store); the flush branch is rarely taken */
                if (n_l + 16 > BAND_LOC) { band_flush(bm, lc, n_l); n_l = 0; }
                _mm512_storeu_ps(lc + n_l, _mm512_maskz_compress_ps(in, av));
                n_l += (size_t)__builtin_popcount(in);
            }
            bl += (size_t)_mm512_reduce_add_epi32(cnt);
            if (nanm) { /* exact count, as the scalar path keeps it (only "any" is used) */
                for (size_t q = s0; q < e; q++) {
                    float a = fabsf(x[q] - b[q]);
                    nn += a != a;
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
#ifdef __AVX512F__
done:
#endif
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

/* One model's bracket: a pseudo-random sample of δ_m (one 16-float line in every 2^shift) and the
 * sample quantiles around rank k ± 6 standard deviations; per-model scratch (ws[K + 3 + 3m ..]),
 * so the models run in parallel. */
typedef struct {
    const float *const *x;
    const float *b;
    size_t n, ns;
    const size_t *k;
    BandM *bm;
    WsBuf *ws;
    int K, bad, nomem;
    int shift;  /* one 16-float line in every 2^shift lines (st = 2^shift entries per sample) */
} SampleCtx;

static void sample_task(void *vctx, size_t lo, size_t hi, int tid) {
    SampleCtx *c = vctx;
    (void)tid;
    for (size_t mm = lo; mm < hi; mm++) {
        const int m = (int)mm;
        if (c->k[m] == SIZE_MAX) continue;
        const size_t ns = c->ns, n = c->n;
        WsBuf *w = c->ws + c->K + 3 + 3 * (size_t)m;
        float *smp = merge_ws_get(&w[0], ns), *tmp = merge_ws_get(&w[1], ns), *cp = merge_ws_get(&w[2], ns);
        if (!smp || !tmp || !cp) { __atomic_store_n(&c->nomem, 1, __ATOMIC_RELAXED); continue; }
        const float *x = c->x[m], *b = c->b;
        const size_t st = (size_t)1 << c->shift;
        /* one 16-float cache line at a pseudo-random place in every 2^shift lines: few cache misses;
         * the lines PF draws ahead are prefetched (the hardware prefetcher cannot guess them) */
        enum { PF = 8 };
        uint64_t h = 0x9E3779B97F4A7C15ull, hp = h;
        for (size_t i = 0; i < PF * 16 && i + 16 <= ns; i += 16) {
            hp ^= hp >> 12; hp ^= hp << 25; hp ^= hp >> 27;
            size_t p0 = i * st + 16 * (size_t)((hp * 0x2545F4914F6CDD1Dull) >> (64 - c->shift));
            __builtin_prefetch(x + p0, 0, 0);
            __builtin_prefetch(b + p0, 0, 0);
        }
        for (size_t i = 0; i + 16 <= ns; i += 16) {
            h ^= h >> 12; h ^= h << 25; h ^= h >> 27;
            size_t e0 = i * st + 16 * (size_t)((h * 0x2545F4914F6CDD1Dull) >> (64 - c->shift));
            size_t ip = i + PF * 16;
            if (ip + 16 <= ns) {
                hp ^= hp >> 12; hp ^= hp << 25; hp ^= hp >> 27;
                size_t p0 = ip * st + 16 * (size_t)((hp * 0x2545F4914F6CDD1Dull) >> (64 - c->shift));
                __builtin_prefetch(x + p0, 0, 0);
                __builtin_prefetch(b + p0, 0, 0);
            }
            for (size_t q = 0; q < 16; q++) smp[i + q] = fabsf(x[e0 + q] - b[e0 + q]);
        }
        if (block_bad(smp, ns)) { /* the first such model is reported */
            int cur = __atomic_load_n(&c->bad, __ATOMIC_RELAXED);
            while ((cur < 0 || m < cur) &&
                   !__atomic_compare_exchange_n(&c->bad, &cur, m, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
            continue;
        }
        /* rank k/n in the sample ± 6 standard deviations of a sample quantile (and ± 32 entries);
         * a miss (about 2e-9 per tensor and model) only costs the radix passes */
        double p = (double)c->k[m] / (double)n, sd = sqrt(p * (1 - p) / (double)ns) * (double)ns;
        double mg = 6 * sd + 32, rl = p * (double)ns - mg, rh = p * (double)ns + mg;
        BandM *bm = &c->bm[m];
        bm->x = x;
        memcpy(cp, smp, ns * sizeof *cp);
        bm->lo = rl <= 0 ? 0.0f : select_kth_bf(cp, tmp, ns, (size_t)rl);
        bm->hi = rh >= (double)(ns - 1) ? INFINITY : select_kth_bf(smp, tmp, ns, (size_t)rh);
        bm->cap = (size_t)(4 * (rh - rl + 1)) * st + 4096;
        bm->band = merge_ws_get(&c->ws[m], bm->cap);
        bm->want = bm->band != NULL;
    }
}

/* One model's k-th from its band (or the radix passes when the bracket missed) */
typedef struct {
    const float *const *x;
    const float *b;
    size_t n;
    const size_t *k;
    BandM *bm;
    WsBuf *ws;
    int K;
    float *out;
    int *bad_m; /* (K) the radix passes found a NaN/Inf */
} FinishCtx;

/* The r-th smallest of band[0..cnt) (tmp: cnt floats). For a large band, a sub-sample of it (one in
 * 16) brackets rank r again in [lo2, hi2], one branch-free pass counts the entries below lo2 and
 * keeps those in [lo2, hi2] (about a tenth), and the selection runs on those; if that bracket
 * missed, on the whole band (which the pass left intact). Exact either way. */
float merge_band_kth(float *band, float *tmp, size_t cnt, size_t r) {
    const size_t ss = cnt / 16;
    if (cnt < 8192) return select_kth_bf(band, tmp, cnt, r);
    double p = (double)r / (double)cnt, sd = sqrt(p * (1 - p) / (double)ss) * (double)ss;
    double mg = 5 * sd + 16, rl = p * (double)ss - mg, rh = p * (double)ss + mg;
    if (rl <= 0 || rh >= (double)(ss - 1)) return select_kth_bf(band, tmp, cnt, r);
    float *s1 = tmp, *s2 = tmp + ss, *pp = tmp + 2 * ss;
    for (size_t i = 0; i < ss; i++) s1[i] = s2[i] = band[16 * i + (i * 7 & 15)];
    const float lo2 = select_kth_bf(s1, pp, ss, (size_t)rl), hi2 = select_kth_bf(s2, pp, ss, (size_t)rh);
    size_t below = 0, ns = 0, e = 0;
#ifdef __AVX512F__
    const __m512 vl = _mm512_set1_ps(lo2), vh = _mm512_set1_ps(hi2);
    for (; e + 16 <= cnt; e += 16) {
        const __m512 v = _mm512_loadu_ps(band + e);
        const __mmask16 lt = _mm512_cmp_ps_mask(v, vl, _CMP_LT_OQ);
        const __mmask16 in = _mm512_mask_cmp_ps_mask((__mmask16)~lt, v, vh, _CMP_LE_OQ);
        below += (size_t)__builtin_popcount(lt);
        _mm512_storeu_ps(tmp + ns, _mm512_maskz_compress_ps(in, v));
        ns += (size_t)__builtin_popcount(in);
    }
#endif
    for (; e < cnt; e++) {
        const float v = band[e];
        below += v < lo2;
        tmp[ns] = v;
        ns += (v >= lo2) & (v <= hi2);
    }
    if (below <= r && r < below + ns) return select_kth_bf(tmp, band, ns, r - below);
    return select_kth_bf(band, tmp, cnt, r);
}

static void finish_task(void *vctx, size_t lo, size_t hi, int tid) {
    FinishCtx *c = vctx;
    (void)tid;
    for (size_t mm = lo; mm < hi; mm++) {
        const int m = (int)mm;
        BandM *bm = &c->bm[m];
        if (c->k[m] == SIZE_MAX || bm->nans) continue;
        size_t km = c->k[m];
        int ok = bm->want && !bm->over && bm->below <= km && km < bm->below + bm->cnt;
        float *tmp = ok ? merge_ws_get(&c->ws[c->K + 3 + 3 * (size_t)m + 1], bm->cnt) : NULL;
        if (ok && tmp) c->out[m] = merge_band_kth(bm->band, tmp, bm->cnt, km - bm->below);
        else if (ok) c->out[m] = merge_select_kth(bm->band, bm->cnt, km - bm->below);
        else if (abs_delta_kth(c->x[m], c->b, c->n, km, &c->out[m])) c->bad_m[m] = 1; /* NaN/Inf end here */
    }
}

/* k[m]-th smallest |x_m − b| for every model with k[m] != SIZE_MAX, in one pass over the inputs
 * for large tensors: a pseudo-random sample of each δ_m (one entry per 64, a quarter of the cache
 * lines) brackets rank k in [lo, hi] with a wide margin; one pass counts the entries below lo and
 * collects those in [lo, hi]; the exact k-th is selected among the collected. Where a bracket
 * missed, the radix passes decide. Small tensors are copied and selected in cache.
 * Returns the first model whose δ has a NaN/Inf, or −1. */
int merge_abs_delta_kth_multi(const float *const *x, const float *b, size_t n, int K, const size_t *k, float *out,
                              WsBuf *ws) {
    if (n < ((size_t)1 << 14)) {
        float *t = merge_ws_get(&ws[K], n);
        if (!t) return abs_delta_kth_radix_all(x, b, n, K, k, out);
        for (int m = 0; m < K; m++) {
            if (k[m] == SIZE_MAX) continue;
            for (size_t e = 0; e < n; e++) t[e] = fabsf(x[m][e] - b[e]);
            if (block_bad(t, n)) return m;
            out[m] = merge_select_kth(t, n, k[m]);
        }
        return -1;
    }
    /* one line in 64 (at least 256 entries for n >= 2^14); in 256 from 2^22 entries on: a
     * quarter of the sample's random reads and selections for a band about twice as wide
     * (measured on the word embeddings of small: the sample cost more than the band) */
    const int shift = n >= ((size_t)1 << 22) ? 8 : 6;
    size_t ns = n / ((size_t)1 << shift) / 16 * 16;
    BandM bm[K];
    memset(bm, 0, sizeof bm);
    /* brackets: each model's sample and its two selections, the models in parallel */
    SampleCtx sc = {x, b, n, ns, k, bm, ws, K, -1, 0, shift};
    am_parallel_for(sample_task, &sc, (size_t)K, 1, ns * (size_t)K * 8);
    if (sc.nomem) return abs_delta_kth_radix_all(x, b, n, K, k, out);
    if (sc.bad >= 0) return sc.bad;
    BandCtx c = {b, n, K, bm};
    am_parallel_for(band_range, &c, (n + BAND_CH - 1) / BAND_CH, 1, n * (size_t)(K + 1));
    /* the exact k-th among each model's collected band, the models in parallel */
    int bad_m[K];
    memset(bad_m, 0, sizeof bad_m);
    FinishCtx fc = {x, b, n, k, bm, ws, K, out, bad_m};
    am_parallel_for(finish_task, &fc, (size_t)K, 1, n);
    int bad = -1;
    for (int m = 0; m < K; m++)
        if (k[m] != SIZE_MAX && (bm[m].nans || bad_m[m]) && bad < 0) bad = m;
    return bad;
}
