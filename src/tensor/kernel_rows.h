/* kernel_rows.h - what the parallel kernels share (internal to src/tensor): the AVX2 helpers
 * (exp, erf-based GELU, dropout hash on 8 lanes, masked tails), their scalar fallbacks, and
 * the serial row kernels several files call inside their pool tasks: dropout_range,
 * gelu_range, gelu_bwd_range, ln_row, add_into.
 *
 * Hot element-wise code is written with AVX2 + FMA intrinsics (masked loads/stores for the
 * tails, so a row of any length takes the same code path and every lane computes the same
 * formula); the plain C fallback is used when the compiler does not target AVX2. Everything
 * here is static inline: each kernel file gets its own copy, inlined into its tasks. */
#ifndef AM_KERNEL_ROWS_H
#define AM_KERNEL_ROWS_H

#include "tensor.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define AM_AVX2 1
#endif

#define ROW_GRAIN 64       /* rows per dynamic chunk of row-wise kernels */
#define EW_GRAIN 16384     /* elements per chunk of element-wise kernels (multiple of 8) */

/* ================================================================== SIMD helpers */

#define A_S_P 0.3275911f /* Abramowitz & Stegun 7.1.26 */
#define A_S_A1 0.254829592f
#define A_S_A2 -0.284496736f
#define A_S_A3 1.421413741f
#define A_S_A4 -1.453152027f
#define A_S_A5 1.061405429f
#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

/* dropout hash: a Weyl step + lowbias32 (Wellons), 32-bit lanes so AVX2 can do 8 at once */
#define DROP_GOLDEN 0x9E3779B9u
#define DROP_M1 0x7feb352du
#define DROP_M2 0x846ca68bu
static inline uint32_t drop_hash(uint32_t key, uint32_t idx) {
    uint32_t x = (idx * DROP_GOLDEN) ^ key;
    x ^= x >> 16; x *= DROP_M1;
    x ^= x >> 15; x *= DROP_M2;
    x ^= x >> 16;
    return x;
}
/* keep iff (hash >> 8) >= thr, thr = p * 2^24: P(keep) = 1 - p to 2^-24 */
static inline uint32_t drop_thr(float p) { return (uint32_t)((double)p * 16777216.0); }


#ifdef AM_AVX2
static inline __m256i tail_mask(int n) { /* first n lanes (0..8) set */
    static const int32_t m[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* exp(x), Cephes polynomial (~1 ulp); exactly 0 below -87.33 (incl. -inf), clamped at 88. */
static inline __m256 exp_v(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), lo);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, y);
}
/* Φ(x) = 0.5(1 + erf(x/√2)) and, if pdf != NULL, φ(x) = exp(-x²/2)/√(2π). */
static inline __m256 cdf_v(__m256 x, __m256 *pdf) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(INV_SQRT2));
    __m256 az = _mm256_andnot_ps(sign, z);
    /* t = 1 / (1 + p|z|): rcp (12 bits) + one Newton step (~23 bits), cheaper than vdivps */
    __m256 den = _mm256_fmadd_ps(_mm256_set1_ps(A_S_P), az, _mm256_set1_ps(1.0f));
    __m256 t = _mm256_rcp_ps(den);
    t = _mm256_mul_ps(t, _mm256_fnmadd_ps(den, t, _mm256_set1_ps(2.0f)));
    __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(A_S_A5), t, _mm256_set1_ps(A_S_A4));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(A_S_A3));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(A_S_A2));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(A_S_A1));
    r = _mm256_mul_ps(r, t);
    __m256 e = exp_v(_mm256_xor_ps(_mm256_mul_ps(z, z), sign)); /* exp(-z²) = exp(-x²/2) */
    __m256 erfa = _mm256_fnmadd_ps(r, e, _mm256_set1_ps(1.0f)); /* erf(|z|) */
    __m256 erf = _mm256_or_ps(erfa, _mm256_and_ps(sign, z));
    if (pdf) *pdf = _mm256_mul_ps(e, _mm256_set1_ps(INV_SQRT_2PI));
    return _mm256_fmadd_ps(erf, _mm256_set1_ps(0.5f), _mm256_set1_ps(0.5f));
}
static inline __m256 gelu_v(__m256 x) { return _mm256_mul_ps(x, cdf_v(x, NULL)); }
static inline __m256 gelu_grad_v(__m256 x) {
    __m256 pdf, cdf = cdf_v(x, &pdf);
    return _mm256_fmadd_ps(x, pdf, cdf);
}
/* all-ones lanes where element idx0+lane is kept */
static inline __m256 drop_keep_v(uint32_t key, uint32_t idx0, __m256i thr_m1) {
    __m256i x = _mm256_add_epi32(_mm256_set1_epi32((int)idx0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    x = _mm256_xor_si256(_mm256_mullo_epi32(x, _mm256_set1_epi32((int)DROP_GOLDEN)), _mm256_set1_epi32((int)key));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)DROP_M1));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)DROP_M2));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_srli_epi32(x, 8), thr_m1));
}
#endif

/* scalar versions (non-AVX2 builds); same formulas */
static inline float cdf_s(float x, float *pdf) {
    float z = x * INV_SQRT2, az = fabsf(z);
    float t = 1.0f / (1.0f + A_S_P * az);
    float r = ((((A_S_A5 * t + A_S_A4) * t + A_S_A3) * t + A_S_A2) * t + A_S_A1) * t;
    float e = expf(-z * z);
    float erfa = 1.0f - r * e;
    if (pdf) *pdf = e * INV_SQRT_2PI;
    return 0.5f + 0.5f * (z < 0 ? -erfa : erfa);
}

/* ================================================================== row kernels (serial) */

/* out[0..n) = inp * keep / (1-p) for global indices offset..offset+n */
static inline void dropout_range(float *out, const float *inp, size_t n, float p, uint32_t key, size_t offset) {
    if (p <= 0) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    size_t i = 0;
#ifdef AM_AVX2
    const __m256i thr = _mm256_set1_epi32((int)drop_thr(p) - 1);
    const __m256 vs = _mm256_set1_ps(scale);
    for (; i + 8 <= n; i += 8) {
        __m256 k = drop_keep_v(key, (uint32_t)(offset + i), thr);
        _mm256_storeu_ps(out + i, _mm256_and_ps(k, _mm256_mul_ps(_mm256_loadu_ps(inp + i), vs)));
    }
    if (i < n) {
        __m256i m = tail_mask((int)(n - i));
        __m256 k = drop_keep_v(key, (uint32_t)(offset + i), thr);
        _mm256_maskstore_ps(out + i, m, _mm256_and_ps(k, _mm256_mul_ps(_mm256_maskload_ps(inp + i, m), vs)));
    }
#else
    const uint32_t thr = drop_thr(p);
    for (; i < n; i++) out[i] = (drop_hash(key, (uint32_t)(offset + i)) >> 8) >= thr ? inp[i] * scale : 0.0f;
#endif
}

static inline void gelu_range(float *out, const float *inp, size_t n) {
    size_t i = 0;
#ifdef AM_AVX2
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gelu_v(_mm256_loadu_ps(inp + i)));
    if (i < n) {
        __m256i m = tail_mask((int)(n - i));
        _mm256_maskstore_ps(out + i, m, gelu_v(_mm256_maskload_ps(inp + i, m)));
    }
#else
    for (; i < n; i++) out[i] = inp[i] * cdf_s(inp[i], NULL);
#endif
}

/* d[i] = gelu'(x[i]) * dout[i] */
static inline void gelu_bwd_range(float *d, const float *x, const float *dout, size_t n) {
    size_t i = 0;
#ifdef AM_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_mul_ps(gelu_grad_v(_mm256_loadu_ps(x + i)), _mm256_loadu_ps(dout + i)));
    if (i < n) {
        __m256i m = tail_mask((int)(n - i));
        _mm256_maskstore_ps(d + i, m, _mm256_mul_ps(gelu_grad_v(_mm256_maskload_ps(x + i, m)), _mm256_maskload_ps(dout + i, m)));
    }
#else
    for (; i < n; i++) {
        float pdf, cdf = cdf_s(x[i], &pdf);
        d[i] = (cdf + x[i] * pdf) * dout[i];
    }
#endif
}

/* LayerNorm of one row (two-pass mean/variance, as torch) */
static inline void ln_row(float *out, float *mean_o, float *rstd_o, const float *x,
                   const float *w, const float *b, int C, float eps) {
    float m, v;
#ifdef AM_AVX2
    __m256 acc = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= C; c += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + c));
    __m256i tm = tail_mask(C - c);
    if (c < C) acc = _mm256_add_ps(acc, _mm256_maskload_ps(x + c, tm));
    m = hsum(acc) / (float)C;
    __m256 vm = _mm256_set1_ps(m);
    acc = _mm256_setzero_ps();
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + c), vm);
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    if (c < C) {
        __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + c, tm), vm), _mm256_castsi256_ps(tm));
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    v = hsum(acc) / (float)C;
    float s = 1.0f / sqrtf(v + eps);
    __m256 vs = _mm256_set1_ps(s);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vs);
        _mm256_storeu_ps(out + c, _mm256_fmadd_ps(xh, _mm256_loadu_ps(w + c), _mm256_loadu_ps(b + c)));
    }
    if (c < C) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + c, tm), vm), vs);
        _mm256_maskstore_ps(out + c, tm, _mm256_fmadd_ps(xh, _mm256_maskload_ps(w + c, tm), _mm256_maskload_ps(b + c, tm)));
    }
#else
    m = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= (float)C;
    v = 0;
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (int c = 0; c < C; c++) out[c] = (x[c] - m) * s * w[c] + b[c];
#endif
    if (mean_o) *mean_o = m;
    if (rstd_o) *rstd_o = s;
}

/* y[0..n) += x[0..n) */
static inline void add_into(float *y, const float *x, int n) {
    int i = 0;
#ifdef AM_AVX2
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] += x[i];
}

#endif
