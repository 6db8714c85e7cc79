/* kernels.c - the fast kernels: *_forward / *_backward pairs, llm.c style.
 *
 * Outputs first, inputs, weights, dims last. Dims legend:
 *   B batch, T tokens, C channels, NH heads, HS = C/NH head size, N rows (= B*T),
 *   IC/OC input/output features of a linear layer, D kept channels.
 *
 * Every public kernel here is parallel over the pool in parallel.c, in fixed chunks handed
 * out dynamically (am_parallel_for): chunk boundaries never depend on the thread count, so
 * results are bit-identical at any thread count (reductions add per-chunk partials in chunk
 * order). GEMMs go through blas.c: our packed kernel for the linear layers (forward, dinp, dW)
 * and attention's per-head products, each call single-threaded on a disjoint slice. Hot element-wise code is
 * written with AVX2 + FMA intrinsics (masked loads/stores for the tails, so a row of any length takes the same
 * code path and every lane computes the same formula); a plain C fallback is used when the
 * compiler does not target AVX2. The readable definitions are in ref_kernels.c.
 */
#include "tensor.h"
#include "am_base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define AM_AVX2 1
#endif

#define MIN_PAR_WORK AM_PAR_MIN_WORK /* floats touched below which a kernel runs inline */
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

int dropout_keep(uint32_t key, size_t index, float p) {
    if (p <= 0) return 1;
    return (drop_hash(key, (uint32_t)index) >> 8) >= drop_thr(p);
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
uint32_t dropout_key(uint64_t seed, uint32_t site) {
    return (uint32_t)(splitmix64(splitmix64(seed) ^ (0xD1B54A32D192ED03ull * (site + 1))) >> 32);
}

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
static void dropout_range(float *out, const float *inp, size_t n, float p, uint32_t key, size_t offset) {
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

static void gelu_range(float *out, const float *inp, size_t n) {
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
static void gelu_bwd_range(float *d, const float *x, const float *dout, size_t n) {
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
static void ln_row(float *out, float *mean_o, float *rstd_o, const float *x,
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

/* LayerNorm backward of one row. dx written (acc=0) or accumulated (acc=1); dw, db += . */
static void ln_bwd_row(float *dx, int acc, float *dw, float *db, const float *dy, const float *x,
                       const float *w, float mean, float rstd, int C) {
#ifdef AM_AVX2
    const __m256 vm = _mm256_set1_ps(mean), vr = _mm256_set1_ps(rstd);
    __m256 s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 y = _mm256_loadu_ps(dy + c);
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        __m256 dn = _mm256_mul_ps(_mm256_loadu_ps(w + c), y);
        s1 = _mm256_add_ps(s1, dn);
        s2 = _mm256_fmadd_ps(dn, xh, s2);
        _mm256_storeu_ps(dw + c, _mm256_fmadd_ps(y, xh, _mm256_loadu_ps(dw + c)));
        _mm256_storeu_ps(db + c, _mm256_add_ps(y, _mm256_loadu_ps(db + c)));
    }
    __m256i tm = tail_mask(C - c);
    if (c < C) {
        __m256 y = _mm256_maskload_ps(dy + c, tm);
        __m256 xh = _mm256_and_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + c, tm), vm), vr), _mm256_castsi256_ps(tm));
        __m256 dn = _mm256_mul_ps(_mm256_maskload_ps(w + c, tm), y);
        s1 = _mm256_add_ps(s1, dn);
        s2 = _mm256_fmadd_ps(dn, xh, s2);
        _mm256_maskstore_ps(dw + c, tm, _mm256_fmadd_ps(y, xh, _mm256_maskload_ps(dw + c, tm)));
        _mm256_maskstore_ps(db + c, tm, _mm256_add_ps(y, _mm256_maskload_ps(db + c, tm)));
    }
    const __m256 m1 = _mm256_set1_ps(hsum(s1) / (float)C), m2 = _mm256_set1_ps(hsum(s2) / (float)C);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vr);
        __m256 dn = _mm256_mul_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(dy + c));
        __m256 g = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(dn, m1), _mm256_mul_ps(xh, m2)), vr);
        if (acc) g = _mm256_add_ps(g, _mm256_loadu_ps(dx + c));
        _mm256_storeu_ps(dx + c, g);
    }
    if (c < C) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + c, tm), vm), vr);
        __m256 dn = _mm256_mul_ps(_mm256_maskload_ps(w + c, tm), _mm256_maskload_ps(dy + c, tm));
        __m256 g = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(dn, m1), _mm256_mul_ps(xh, m2)), vr);
        if (acc) g = _mm256_add_ps(g, _mm256_maskload_ps(dx + c, tm));
        _mm256_maskstore_ps(dx + c, tm, g);
    }
#else
    float s1 = 0, s2 = 0;
    for (int c = 0; c < C; c++) {
        float xh = (x[c] - mean) * rstd, dn = w[c] * dy[c];
        s1 += dn;
        s2 += dn * xh;
        dw[c] += dy[c] * xh;
        db[c] += dy[c];
    }
    s1 /= (float)C;
    s2 /= (float)C;
    for (int c = 0; c < C; c++) {
        float xh = (x[c] - mean) * rstd, dn = w[c] * dy[c];
        float g = (dn - s1 - xh * s2) * rstd;
        dx[c] = acc ? dx[c] + g : g;
    }
#endif
}

/* softmax of one row of n entries, in place allowed; keymask (n) or NULL */
static void softmax_row(float *p, const float *s, const float *keymask, int n, float scale) {
#ifdef AM_AVX2
    const __m256 ninf = _mm256_set1_ps(-INFINITY), vsc = _mm256_set1_ps(scale);
    if (keymask) { /* masked keys -> -inf, then the plain path (exp(-inf) = 0) */
        for (int j = 0; j < n; j++) p[j] = keymask[j] != 0 ? s[j] * scale : -INFINITY;
        s = p;
        scale = 1.0f;
    }
    const __m256 sc = keymask ? _mm256_set1_ps(1.0f) : vsc;
    __m256 mx = ninf;
    int j = 0;
    for (; j + 8 <= n; j += 8) mx = _mm256_max_ps(mx, _mm256_mul_ps(_mm256_loadu_ps(s + j), sc));
    __m256i tm = tail_mask(n - j);
    if (j < n) mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_maskload_ps(s + j, tm), sc), _mm256_castsi256_ps(tm)));
    const __m256 vmx = _mm256_set1_ps(hmax(mx));
    __m256 sum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 e = exp_v(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), sc, vmx));
        sum = _mm256_add_ps(sum, e);
        _mm256_storeu_ps(p + j, e);
    }
    if (j < n) {
        __m256 e = _mm256_and_ps(exp_v(_mm256_fmsub_ps(_mm256_maskload_ps(s + j, tm), sc, vmx)), _mm256_castsi256_ps(tm));
        sum = _mm256_add_ps(sum, e);
        _mm256_maskstore_ps(p + j, tm, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), inv));
    if (j < n) _mm256_maskstore_ps(p + j, tm, _mm256_mul_ps(_mm256_maskload_ps(p + j, tm), inv));
#else
    float mx = -INFINITY;
    for (int j = 0; j < n; j++)
        if (!keymask || keymask[j] != 0) mx = fmaxf(mx, s[j] * scale);
    float sum = 0;
    for (int j = 0; j < n; j++) {
        float e = (!keymask || keymask[j] != 0) ? expf(s[j] * scale - mx) : 0.0f;
        p[j] = e;
        sum += e;
    }
    for (int j = 0; j < n; j++) p[j] /= sum;
#endif
}

/* ds = scale * p * (dp - Σ dp·p), in place allowed */
static void softmax_bwd_row(float *ds, const float *dp, const float *p, int n, float scale) {
#ifdef AM_AVX2
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(dp + j), _mm256_loadu_ps(p + j), acc);
    __m256i tm = tail_mask(n - j);
    if (j < n) acc = _mm256_fmadd_ps(_mm256_maskload_ps(dp + j, tm), _mm256_maskload_ps(p + j, tm), acc);
    const __m256 dot = _mm256_set1_ps(hsum(acc)), sc = _mm256_set1_ps(scale);
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 pv = _mm256_mul_ps(_mm256_loadu_ps(p + j), sc);
        _mm256_storeu_ps(ds + j, _mm256_mul_ps(pv, _mm256_sub_ps(_mm256_loadu_ps(dp + j), dot)));
    }
    if (j < n) {
        __m256 pv = _mm256_mul_ps(_mm256_maskload_ps(p + j, tm), sc);
        _mm256_maskstore_ps(ds + j, tm, _mm256_mul_ps(pv, _mm256_sub_ps(_mm256_maskload_ps(dp + j, tm), dot)));
    }
#else
    float dot = 0;
    for (int j = 0; j < n; j++) dot += dp[j] * p[j];
    for (int j = 0; j < n; j++) ds[j] = scale * p[j] * (dp[j] - dot);
#endif
}

/* y[0..n) += x[0..n) */
static inline void add_into(float *y, const float *x, int n) {
    int i = 0;
#ifdef AM_AVX2
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] += x[i];
}

/* Rows per GEMM chunk (a unit of dynamic scheduling). The epilogue (bias, GELU, residual,
 * LayerNorm) runs on a chunk right after its GEMM while it is still in cache. The weights are
 * packed once per call, so small chunks cost nothing measurable (64..2048 rows within +-3 %,
 * interleaved CPU-time runs on tiny and small); 128 rows gives many chunks, which balances
 * the threads and bounds the stall when a thread loses its core on a shared machine. */
int am_tune_chunk_rows = 0;
int am_tune_openblas = 0;
static int chunk_rows(int OC) {
    (void)OC;
    return am_tune_chunk_rows > 0 ? am_tune_chunk_rows : 128;
}

/* ================================================================== linear */

typedef struct {
    float *out, *pre, *res, *mean, *rstd;
    const float *inp, *w, *b, *resid, *lnw, *lnb;
    int N, IC, OC;
    float eps, p;
    uint32_t key;
    int kind; /* 0 linear, 1 linear+gelu, 2 linear+dropout+residual+layernorm */
    const LinearHook *hook;
    const float *wp; /* w packed by blas_pack_nt, shared by all threads */
    int ncb, pcb;    /* plain linear only: column blocks per row chunk, panels per block */
} LinFwd;

static void lin_fwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const LinFwd *j = ctx;
    const int OC = j->OC, IC = j->IC;
    if (j->ncb > 1) { /* plain linear, few rows: items are (row chunk, column block) tiles */
        const int cr = chunk_rows(OC), np = blas_packed_panels(OC);
        for (size_t it = lo; it < hi; it++) {
            const size_t r0 = it / (size_t)j->ncb * (size_t)cr;
            const int rows = (int)((size_t)j->N - r0 < (size_t)cr ? (size_t)j->N - r0 : (size_t)cr);
            const int p0 = (int)(it % (size_t)j->ncb) * j->pcb, p1 = p0 + j->pcb < np ? p0 + j->pcb : np;
            blas_gemm_packed_panels(j->out + r0 * (size_t)OC, OC, j->inp + r0 * (size_t)IC, IC, 0, j->wp, j->b, rows,
                                    OC, IC, 0.0f, p0, p1);
        }
        return;
    }
    { /* one chunk of rows */
        const size_t r0 = lo;
        const int rows = (int)(hi - lo);
        float *dst = j->kind == 0 ? j->out : j->kind == 1 ? j->pre : j->res;
        dst += r0 * (size_t)OC;
        blas_gemm_packed(dst, OC, j->inp + r0 * (size_t)IC, IC, 0, j->wp, j->b, rows, OC, IC, 0.0f);
        if (j->hook && j->hook->fn) j->hook->fn(j->hook->ud, dst, j->inp + r0 * (size_t)IC, rows, r0);
        if (j->kind == 1) {
            gelu_range(j->out + r0 * (size_t)OC, dst, (size_t)rows * OC);
        } else if (j->kind == 2) {
            for (int r = 0; r < rows; r++) {
                size_t row = r0 + (size_t)r;
                float *res = dst + (size_t)r * OC;
                dropout_range(res, res, (size_t)OC, j->p, j->key, row * (size_t)OC);
                add_into(res, j->resid + row * (size_t)OC, OC);
                ln_row(j->out + row * (size_t)OC, j->mean ? &j->mean[row] : NULL,
                       j->rstd ? &j->rstd[row] : NULL, res, j->lnw, j->lnb, OC, j->eps);
            }
        }
    }
    (void)tid;
}

static size_t work3(int a, int b, int c) { return (size_t)a * (size_t)b * (size_t)(c > 0 ? c : 1); }

/* Pack W (OC, IC) into the calling thread's scratch slot 0, panels split over the pool. */
typedef struct { float *wp; const float *w; int OC, IC, nn; } PackJob;
static void pack_task(void *ctx, size_t lo, size_t hi, int tid) {
    const PackJob *j = ctx;
    if (hi <= lo) return;
    if (j->nn) blas_pack_nn_panels(j->wp, j->w, j->IC, j->OC, j->IC, (int)lo, (int)hi);
    else blas_pack_nt_panels(j->wp, j->w, j->IC, j->OC, j->IC, (int)lo, (int)hi);
    (void)tid;
}
/* nn = 0: packed for out = inp · Wᵀ (N = OC, K = IC); nn = 1: for dinp = dout · W (N = IC, K = OC) */
static const float *pack_weights(const float *w, int OC, int IC, int nn) {
    PackJob j = { blas_scratch(0, nn ? blas_packed_floats(IC, OC) : blas_packed_floats(OC, IC)), w, OC, IC, nn };
    am_parallel_for(pack_task, &j, (size_t)blas_packed_panels(nn ? IC : OC), 2, (size_t)OC * IC);
    return j.wp;
}

/* Pack the weights once (shared by every thread), then run the row tasks. Hooks run inside the
 * tasks and must not call the linear_* kernels (they would repack scratch slot 0). */
static void lin_fwd_run(LinFwd *j) {
    j->wp = pack_weights(j->w, j->OC, j->IC, 0);
    const size_t work = work3(j->N, j->IC, j->OC), cr = (size_t)chunk_rows(j->OC);
    const size_t nrc = ((size_t)j->N + cr - 1) / cr;
    const int np = blas_packed_panels(j->OC);
    /* a wide output with few rows (e.g. MLM logits over the vocabulary): also split columns,
     * into blocks of at least 8 panels, aiming at >= 8 tiles per thread; only for the plain
     * linear without a hook (the epilogues and hooks need whole rows) */
    if (j->kind == 0 && !j->hook && nrc < 8 && np >= 16) {
        int want = 8 * am_parallel_get_threads() / (int)nrc;
        int pcb = np / (want > 1 ? want : 1);
        j->pcb = pcb < 8 ? 8 : pcb;
        j->ncb = (np + j->pcb - 1) / j->pcb;
        if (j->ncb > 1) {
            am_parallel_for(lin_fwd_task, j, nrc * (size_t)j->ncb, 1, work);
            return;
        }
    }
    j->ncb = 0;
    am_parallel_for(lin_fwd_task, j, (size_t)j->N, cr, work);
}

void linear_forward_ex(float *out, const float *inp, const float *w, const float *b,
                       int N, int IC, int OC, const LinearHook *hook) {
    LinFwd j = { .out = out, .inp = inp, .w = w, .b = b, .N = N, .IC = IC, .OC = OC, .kind = 0, .hook = hook };
    lin_fwd_run(&j);
}
void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC) {
    linear_forward_ex(out, inp, w, b, N, IC, OC, NULL);
}

void linear_gelu_forward(float *pre, float *out, const float *inp, const float *w, const float *b,
                         int N, int IC, int OC, const LinearHook *hook) {
    LinFwd j = { .out = out, .pre = pre, .inp = inp, .w = w, .b = b, .N = N, .IC = IC, .OC = OC, .kind = 1,
                 .hook = hook };
    lin_fwd_run(&j);
}

void linear_residual_layernorm_forward(float *out, float *res, float *mean, float *rstd,
                                       const float *inp, const float *w, const float *b,
                                       const float *resid, const float *lnw, const float *lnb,
                                       int N, int IC, int C, float eps, float p, uint32_t key,
                                       const LinearHook *hook) {
    LinFwd j = { .hook = hook, .out = out, .res = res, .mean = mean, .rstd = rstd, .inp = inp, .w = w, .b = b,
                 .resid = resid, .lnw = lnw, .lnb = lnb, .N = N, .IC = IC, .OC = C, .eps = eps,
                 .p = p, .key = key, .kind = 2 };
    lin_fwd_run(&j);
}

typedef struct {
    float *dinp, *dw, *db;
    const float *dout, *inp, *w, *pre;
    int N, IC, OC;
    float beta; /* 0 = write dinp, 1 = accumulate */
    const float *wp; /* w packed by blas_pack_nn (for dinp) */
    int nw;          /* weight-gradient blocks (one per pool thread) */
    int dw_split_oc; /* split dW along OC (rows) or IC (columns) */
} LinBwd;

/* Backward GEMM choices, measured on this project's shapes (interleaved A/B, CPU time):
 * dinp = dout · W uses our packed kernel (W packed once per call, A packed per block: 5-10 %
 * faster than OpenBLAS on small's shapes, 2 threads). dW = doutᵀ · inp uses our kernel too
 * (blas_gemm_tn_packed: inp and dout packed per 384-token block by the thread that owns the
 * dW block, rows read once each with software prefetch, db summed while dout is packed);
 * against OpenBLAS plus a separate db pass, linear_backward(dw, db) on small's four shapes
 * (4096 tokens) took 166 vs 177 CPU ms per layer single-threaded (84-89 vs 78-83 GFLOP/s),
 * 178 vs 192 with 2 threads (78-85 vs 73-77 GFLOP/s per thread). An earlier version that packed inp once for all K
 * (shared) and had no prefetch was ~10 % slower than OpenBLAS. dW is split along its larger
 * side (the other operand is packed by both blocks). am_tune_openblas = 1 restores the
 * OpenBLAS path for A/B runs. */

/* Work items of one linear backward, taken dynamically: first the nw weight-gradient blocks
 * (largest first), then the dinp row chunks. dW is split along its larger side so that
 * OpenBLAS re-packs the smaller operand in each block. */
static void lin_bwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const LinBwd *j = ctx;
    const int IC = j->IC, OC = j->OC;
    (void)tid;
    for (size_t it = lo; it < hi; it++) {
        if ((int)it < j->nw) {
            size_t a, b;
            if (!am_tune_openblas && j->dw) {
                /* our kernel; the bias gradient is summed while dout is packed */
                if (j->dw_split_oc) { /* rows a..b of dW: dout[:, a:b]ᵀ · inp */
                    am_split_aligned((size_t)OC, 16, (int)it, j->nw, &a, &b);
                    if (b > a)
                        blas_gemm_tn_packed(j->dw + a * (size_t)IC, IC, j->dout + a, OC, j->inp, IC, (int)(b - a), IC,
                                            j->N, 1.0f, j->db ? j->db + a : NULL);
                } else { /* columns a..b of dW: doutᵀ · inp[:, a:b]; the first block sums db */
                    am_split_aligned((size_t)IC, 16, (int)it, j->nw, &a, &b);
                    if (b > a)
                        blas_gemm_tn_packed(j->dw + a, IC, j->dout, OC, j->inp + a, IC, OC, (int)(b - a), j->N, 1.0f,
                                            j->db && a == 0 ? j->db : NULL);
                }
                continue;
            }
            if (j->dw_split_oc) {
                am_split_aligned((size_t)OC, 16, (int)it, j->nw, &a, &b);
                if (b <= a) continue;
                if (j->dw) /* rows a..b of dW: dout[:, a:b]ᵀ · inp */
                    blas_gemm_tn(j->dw + a * (size_t)IC, IC, j->dout + a, OC, j->inp, IC, (int)(b - a), IC, j->N, 1.0f, 1.0f);
                if (j->db) for (int r = 0; r < j->N; r++) add_into(j->db + a, j->dout + (size_t)r * OC + a, (int)(b - a));
            } else {
                am_split_aligned((size_t)IC, 16, (int)it, j->nw, &a, &b);
                if (b > a && j->dw) /* columns a..b of dW: doutᵀ · inp[:, a:b] */
                    blas_gemm_tn(j->dw + a, IC, j->dout, OC, j->inp + a, IC, OC, (int)(b - a), j->N, 1.0f, 1.0f);
                size_t c, d; /* the bias gradient is split along OC */
                am_split_aligned((size_t)OC, 16, (int)it, j->nw, &c, &d);
                if (d > c && j->db) for (int r = 0; r < j->N; r++) add_into(j->db + c, j->dout + (size_t)r * OC + c, (int)(d - c));
            }
            continue;
        }
        /* dinp rows of one chunk: (dout · w), optionally times gelu'(pre) */
        const int cr = chunk_rows(IC);
        const size_t r0 = (it - (size_t)j->nw) * (size_t)cr;
        const int rows = (int)((size_t)j->N - r0 < (size_t)cr ? (size_t)j->N - r0 : (size_t)cr);
        float *d = j->dinp + r0 * (size_t)IC;
        const float *dout = j->dout + r0 * (size_t)OC;
        if (j->wp) blas_gemm_packed(d, IC, dout, OC, 0, j->wp, NULL, rows, IC, OC, j->beta);
        else blas_gemm_nn(d, IC, dout, OC, j->w, IC, rows, IC, OC, 1.0f, j->beta);
        if (j->pre) gelu_bwd_range(d, j->pre + r0 * (size_t)IC, d, (size_t)rows * IC);
    }
}

static void lin_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                    const float *w, const float *pre, int N, int IC, int OC, float beta) {
    LinBwd j = { dinp, dw, db, dout, inp, w, pre, N, IC, OC, beta, NULL, 0, 0 };
    if (dinp) j.wp = pack_weights(w, OC, IC, 1); /* W is B (K = OC, N = IC) */
    int nth = am_parallel_get_threads();
    j.nw = (dw || db) ? (nth > 2 ? nth : 2) : 0; /* >= 2 so that 1 and 2 threads split alike */
    j.dw_split_oc = OC >= IC;
    size_t ndinp = dinp ? ((size_t)N + (size_t)chunk_rows(IC) - 1) / (size_t)chunk_rows(IC) : 0;
    am_parallel_for(lin_bwd_task, &j, (size_t)j.nw + ndinp, 1, work3(N, IC, OC));
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int IC, int OC) {
    lin_bwd(dinp, dw, db, dout, inp, w, NULL, N, IC, OC, 1.0f);
}
void linear_backward_set(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int N, int IC, int OC) {
    lin_bwd(dinp, dw, db, dout, inp, w, NULL, N, IC, OC, 0.0f);
}
void gelu_linear_backward(float *dpre, float *dw, float *db, const float *dout, const float *act,
                          const float *pre, const float *w, int N, int IC, int OC) {
    AM_ASSERT(dpre != NULL && pre != NULL);
    lin_bwd(dpre, dw, db, dout, act, w, pre, N, IC, OC, 0.0f);
}

/* ================================================================== embeddings */

typedef struct {
    float *out, *emb, *mean, *rstd;
    const int32_t *ids, *tt, *pos;
    const float *wte, *wpe, *wtt, *lnw, *lnb;
    int B, T, C;
    float eps, p;
    uint32_t key;
    int ln;
} EmbFwd;

static void emb_fwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const EmbFwd *j = ctx;
    const int C = j->C, T = j->T;
    float tmp[C];
    for (size_t bt = lo; bt < hi; bt++) {
        int t = j->pos ? j->pos[bt] : (int)(bt % (size_t)T), tt = j->tt ? j->tt[bt] : 0;
        const float *a = j->wte + (size_t)j->ids[bt] * C, *b = j->wpe + (size_t)t * C, *c = j->wtt + (size_t)tt * C;
        float *e = j->ln ? (j->emb ? j->emb + bt * C : tmp) : j->out + bt * C;
        int i = 0;
#ifdef AM_AVX2
        for (; i + 8 <= C; i += 8)
            _mm256_storeu_ps(e + i, _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)),
                                                  _mm256_loadu_ps(c + i)));
#endif
        for (; i < C; i++) e[i] = a[i] + b[i] + c[i];
        if (!j->ln) continue;
        float *o = j->out + bt * C;
        ln_row(o, j->mean ? &j->mean[bt] : NULL, j->rstd ? &j->rstd[bt] : NULL, e, j->lnw, j->lnb, C, j->eps);
        dropout_range(o, o, (size_t)C, j->p, j->key, bt * (size_t)C);
    }
    (void)tid;
}

void embeddings_forward(float *out, const int32_t *ids, const int32_t *type_ids,
                        const float *wte, const float *wpe, const float *wtt, int B, int T, int C) {
    EmbFwd j = { .out = out, .ids = ids, .tt = type_ids, .wte = wte, .wpe = wpe, .wtt = wtt,
                 .B = B, .T = T, .C = C, .ln = 0 };
    am_parallel_for(emb_fwd_task, &j, (size_t)B * T, ROW_GRAIN, (size_t)B * T * C);
}

void embeddings_layernorm_forward(float *out, float *emb, float *mean, float *rstd,
                                  const int32_t *ids, const int32_t *type_ids, const int32_t *positions,
                                  const float *wte, const float *wpe, const float *wtt,
                                  const float *lnw, const float *lnb,
                                  int B, int T, int C, float eps, float p, uint32_t key) {
    EmbFwd j = { .out = out, .emb = emb, .mean = mean, .rstd = rstd, .ids = ids, .tt = type_ids, .pos = positions,
                 .wte = wte, .wpe = wpe, .wtt = wtt, .lnw = lnw, .lnb = lnb,
                 .B = B, .T = T, .C = C, .eps = eps, .p = p, .key = key, .ln = 1 };
    am_parallel_for(emb_fwd_task, &j, (size_t)B * T, ROW_GRAIN, (size_t)B * T * C);
}

typedef struct {
    float *dwte, *dwpe, *dwtt;
    const float *dout;
    const int32_t *ids, *tt, *pos;
    int B, T, C, pad_id;
} EmbBwd;

/* chunks of 16 channels: each walks every token, so no two threads touch the same floats */
static void emb_bwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const EmbBwd *j = ctx;
    const int C = j->C;
    const size_t c0 = lo * 16, c1 = hi * 16 < (size_t)C ? hi * 16 : (size_t)C;
    const int n = (int)(c1 - c0);
    (void)tid;
    for (size_t bt = 0; bt < (size_t)j->B * j->T; bt++) {
        const float *d = j->dout + bt * C + c0;
        if (j->dwte && j->ids[bt] != j->pad_id) add_into(j->dwte + (size_t)j->ids[bt] * C + c0, d, n);
        if (j->dwpe) add_into(j->dwpe + (j->pos ? (size_t)j->pos[bt] : bt % (size_t)j->T) * C + c0, d, n);
        if (j->dwtt) add_into(j->dwtt + (size_t)(j->tt ? j->tt[bt] : 0) * C + c0, d, n);
    }
}

void embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                         const int32_t *ids, const int32_t *type_ids, int B, int T, int C, int pad_id) {
    EmbBwd j = { dwte, dwpe, dwtt, dout, ids, type_ids, NULL, B, T, C, pad_id };
    am_parallel_for(emb_bwd_task, &j, ((size_t)C + 15) / 16, 1, (size_t)B * T * C);
}

void embeddings_backward_rows(float *dwte, float *dwpe, float *dwtt, const float *dout, const int32_t *ids,
                              const int32_t *type_ids, const int32_t *positions, int N, int C, int pad_id) {
    EmbBwd j = { dwte, dwpe, dwtt, dout, ids, type_ids, positions, 1, N, C, pad_id };
    am_parallel_for(emb_bwd_task, &j, ((size_t)C + 15) / 16, 1, (size_t)N * C);
}

/* ================================================================== layernorm */

typedef struct {
    float *out, *mean, *rstd;
    const float *inp, *w, *b;
    int N, C;
    float eps;
} LnFwd;

static void ln_fwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const LnFwd *j = ctx;
    for (size_t r = lo; r < hi; r++)
        ln_row(j->out + r * j->C, &j->mean[r], &j->rstd[r], j->inp + r * j->C, j->w, j->b, j->C, j->eps);
    (void)tid;
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C, float eps) {
    LnFwd j = { out, mean, rstd, inp, w, b, N, C, eps };
    am_parallel_for(ln_fwd_task, &j, (size_t)N, ROW_GRAIN, (size_t)N * C);
}

typedef struct {
    float *dinp, *dproj, *partials;
    const float *dout, *inp, *w, *mean, *rstd;
    int N, C, acc;
    float p;
    uint32_t key;
} LnBwd;

/* Rows are processed in LN_GRAIN-row chunks; chunk k writes its dw/db partial sums to slot k,
 * and the slots are added in chunk order: deterministic at any thread count. */
#define LN_GRAIN 64

size_t layernorm_partials_floats(int N, int C) {
    return ((size_t)N + LN_GRAIN - 1) / LN_GRAIN * 2 * (size_t)C;
}

static void ln_bwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const LnBwd *j = ctx;
    const int C = j->C;
    float *dw = j->partials + lo / LN_GRAIN * 2 * (size_t)C, *db = dw + C;
    memset(dw, 0, 2 * (size_t)C * sizeof(float));
    for (size_t r = lo; r < hi; r++) {
        float *dx = j->dinp + r * C;
        ln_bwd_row(dx, j->acc, dw, db, j->dout + r * C, j->inp + r * C, j->w, j->mean[r], j->rstd[r], C);
        if (j->dproj && j->dproj != j->dinp) dropout_range(j->dproj + r * C, dx, (size_t)C, j->p, j->key, r * (size_t)C);
    }
    (void)tid;
}

static void ln_bwd_run(LnBwd *j, float *dw, float *db) {
    const int C = j->C;
    am_parallel_for(ln_bwd_task, j, (size_t)j->N, LN_GRAIN, (size_t)j->N * C * 2);
    const size_t nchunks = ((size_t)j->N + LN_GRAIN - 1) / LN_GRAIN;
    for (size_t k = 0; k < nchunks; k++) {
        if (dw) add_into(dw, j->partials + k * 2 * C, C);
        if (db) add_into(db, j->partials + k * 2 * C + C, C);
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    float *partials = xmalloc(layernorm_partials_floats(N, C) * sizeof(float) + 1);
    LnBwd j = { .dinp = dinp, .partials = partials, .dout = dout, .inp = inp, .w = w, .mean = mean,
                .rstd = rstd, .N = N, .C = C, .acc = 1 };
    ln_bwd_run(&j, dw, db);
    free(partials);
}

void residual_layernorm_backward(float *dres, float *dproj, float *dlnw, float *dlnb,
                                 const float *dout, const float *res, const float *lnw,
                                 const float *mean, const float *rstd, float *partials,
                                 int N, int C, float p, uint32_t key) {
    AM_ASSERT(dproj != dres || p == 0);
    LnBwd j = { .dinp = dres, .dproj = dproj, .partials = partials, .dout = dout, .inp = res, .w = lnw,
                .mean = mean, .rstd = rstd, .N = N, .C = C, .acc = 0, .p = p, .key = key };
    ln_bwd_run(&j, dlnw, dlnb);
}

/* ================================================================== vector add, GELU, dropout */

typedef struct { float *y; const float *x; size_t n; } AddJob;
static void add_task(void *ctx, size_t lo, size_t hi, int tid) {
    const AddJob *j = ctx;
    for (size_t i = lo; i < hi; i += 1u << 30) {
        size_t n = hi - i < (1u << 30) ? hi - i : (1u << 30);
        add_into(j->y + i, j->x + i, (int)n);
    }
    (void)tid;
}
void vec_add(float *y, const float *x, size_t n) {
    AddJob j = { y, x, n };
    am_parallel_for(add_task, &j, n, EW_GRAIN, n);
}

typedef struct { float *out; const float *inp, *dout; size_t n; float p; uint32_t key; size_t offset; int kind; } EwJob;

static void ew_task(void *ctx, size_t lo, size_t hi, int tid) {
    const EwJob *j = ctx;
    if (hi <= lo) return;
    switch (j->kind) {
    case 0: gelu_range(j->out + lo, j->inp + lo, hi - lo); break;
    case 1: gelu_bwd_range(j->out + lo, j->inp + lo, j->dout + lo, hi - lo); break;
    default: dropout_range(j->out + lo, j->inp + lo, hi - lo, j->p, j->key, j->offset + lo); break;
    }
    (void)tid;
}

void gelu_forward(float *out, const float *inp, size_t N) {
    EwJob j = { .out = out, .inp = inp, .n = N, .kind = 0 };
    am_parallel_for(ew_task, &j, N, EW_GRAIN, N * 8);
}
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    EwJob j = { .out = dinp, .inp = inp, .dout = dout, .n = N, .kind = 1 };
    am_parallel_for(ew_task, &j, N, EW_GRAIN, N * 8);
}
void dropout_forward(float *out, const float *inp, size_t N, float p, uint32_t key, size_t offset) {
    EwJob j = { .out = out, .inp = inp, .n = N, .p = p, .key = key, .offset = offset, .kind = 2 };
    am_parallel_for(ew_task, &j, N, EW_GRAIN, N);
}
void dropout_backward(float *dinp, const float *dout, size_t N, float p, uint32_t key, size_t offset) {
    dropout_forward(dinp, dout, N, p, key, offset); /* same mask, same scale */
}

/* ================================================================== softmax */

typedef struct { float *out; const float *a, *b, *keymask; int R, T; float scale; int bwd; } SmJob;

static void sm_task(void *ctx, size_t lo, size_t hi, int tid) {
    const SmJob *j = ctx;
    for (size_t r = lo; r < hi; r++) {
        size_t o = r * (size_t)j->T;
        if (j->bwd) softmax_bwd_row(j->out + o, j->a + o, j->b + o, j->T, j->scale);
        else softmax_row(j->out + o, j->a + o, j->keymask, j->T, j->scale);
    }
    (void)tid;
}

void softmax_forward(float *probs, const float *scores, const float *keymask, int R, int T, float scale) {
    SmJob j = { probs, scores, NULL, keymask, R, T, scale, 0 };
    am_parallel_for(sm_task, &j, (size_t)R, ROW_GRAIN, (size_t)R * T * 4);
}
void softmax_backward(float *dscores, const float *dprobs, const float *probs, int R, int T, float scale) {
    SmJob j = { dscores, dprobs, probs, NULL, R, T, scale, 1 };
    am_parallel_for(sm_task, &j, (size_t)R, ROW_GRAIN, (size_t)R * T * 4);
}

/* ================================================================== attention */

/* The per-head products (alpha 1, beta 0) on our packed kernel (B packed on every call), or on
 * OpenBLAS (am_tune_openblas, or a side under 16: the 16-column panels and 6-row tiles are
 * then mostly padding). 4096 tokens, HS = 64, 6 heads, CPU ms per layer forward / backward,
 * 2 threads, ours vs OpenBLAS: T = 64: 7.1 / 13.8 vs 9.6 / 16.7 (OpenBLAS runs a beta pass
 * and its own copies on every 64 x 64 product); T = 16: 5.1 / 8.7 vs 6.2 / 10.9; T = 128:
 * 14.1 / 24.9 vs 16.5 / 28.6; T = 8: 6.6 / 11.5 vs 5.7 / 10.6 (hence the cut). */
static int att_ours(int M, int N, int K) { return !am_tune_openblas && M >= 16 && N >= 16 && K >= 16; }
static void att_nt(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M, int N, int K) {
    if (att_ours(M, N, K)) blas_gemm_nt_packed(c, ldc, a, lda, b, ldb, M, N, K, 0.0f);
    else blas_gemm_nt(c, ldc, a, lda, b, ldb, M, N, K, 1.0f, 0.0f);
}
static void att_nn(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M, int N, int K) {
    if (att_ours(M, N, K)) blas_gemm_nn_packed(c, ldc, a, lda, b, ldb, M, N, K, 0.0f);
    else blas_gemm_nn(c, ldc, a, lda, b, ldb, M, N, K, 1.0f, 0.0f);
}
static void att_tn(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M, int N, int K) {
    if (att_ours(M, N, K)) blas_gemm_tn_packed(c, ldc, a, lda, b, ldb, M, N, K, 0.0f, NULL);
    else blas_gemm_tn(c, ldc, a, lda, b, ldb, M, N, K, 1.0f, 0.0f);
}

size_t attention_scratch_floats(int T) {
    return ((2 * (size_t)T * T) + 15) & ~(size_t)15;
}

/* Keys of sequence b: *nk = number of keys to look at, *keymask = NULL when the real tokens
 * form a prefix (right padding), else the (T) mask row and nk = T. */
static void seq_keys(const float *mask_b, int T, int *nk, const float **keymask) {
    *keymask = NULL;
    *nk = T;
    if (!mask_b) return;
    int n = 0;
    while (n < T && mask_b[n] != 0) n++;
    for (int t = n; t < T; t++)
        if (mask_b[t] != 0) { *keymask = mask_b; return; }
    AM_ASSERT(n > 0); /* the encoder rejects all-padding sequences */
    *nk = n;
}

typedef struct {
    float *ctx, *att, *scratch, *dqkv;
    const float *qkv, *mask, *dctx, *att_c;
    int B, T, C, NH;
    float p;
    uint32_t key;
} AttJob;

static void att_fwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const AttJob *j = ctx;
    const int T = j->T, C = j->C, NH = j->NH, HS = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
    float *scr = j->scratch + (size_t)tid * attention_scratch_floats(T);
    for (size_t it = lo; it < hi; it++) {
        const int b = (int)(it / NH), h = (int)(it % NH);
        int nk;
        const float *km;
        seq_keys(j->mask ? j->mask + (size_t)b * T : NULL, T, &nk, &km);
        const float *q = j->qkv + (size_t)b * T * C3 + h * HS, *k = q + C, *v = q + 2 * C;
        const size_t base = it * (size_t)T * T; /* element index of (b, h, 0, 0) */
        float *P = j->att ? j->att + base : scr;
        /* P (T, nk) = Q · K[:nk]ᵀ, row stride T (the 1/sqrt(HS) scale is applied in the softmax) */
        att_nt(P, T, q, C3, k, C3, T, nk, HS);
        for (int i = 0; i < T; i++) {
            float *row = P + (size_t)i * T;
            softmax_row(row, row, km, nk, scale);
            if (nk < T) memset(row + nk, 0, (size_t)(T - nk) * sizeof(float));
        }
        const float *Pd = P;
        if (j->p > 0) {
            float *D = j->att ? scr : P; /* no saved probs: drop in place */
            for (int i = 0; i < T; i++)
                dropout_range(D + (size_t)i * T, P + (size_t)i * T, (size_t)nk, j->p, j->key, base + (size_t)i * T);
            Pd = D;
        }
        /* ctx_h (T, HS) = Pd[:, :nk] · V[:nk] */
        att_nn(j->ctx + (size_t)b * T * C + h * HS, C, Pd, T, v, C3, T, HS, nk);
    }
}

typedef struct {
    float *ctx, *att, *scratch, *dqkv;
    const float *qkv, *dctx, *att_c;
    const int *off, *len;
    const size_t *att_off;
    int T, C, NH;
    float p;
    uint32_t key;
} AttVarJob;

size_t attention_varlen_att_offsets(size_t *att_off, const int *len, int B, int NH) {
    size_t total = 0;
    for (int b = 0; b < B; b++) {
        att_off[b] = total;
        total += (size_t)NH * (size_t)len[b] * (size_t)len[b];
    }
    return total;
}

/* element index of (b, h, i, 0) in the padded (B, NH, T, T) layout: the dropout counter */
static size_t padded_row_index(int b, int h, int i, int NH, int T) {
    return (((size_t)b * NH + h) * T + i) * T;
}

static void att_var_task(void *ctx, size_t lo, size_t hi, int tid) {
    const AttVarJob *j = ctx;
    const int C = j->C, NH = j->NH, HS = C / NH, C3 = 3 * C, T = j->T;
    const float scale = 1.0f / sqrtf((float)HS);
    float *scr = j->scratch + (size_t)tid * attention_scratch_floats(T);
    for (size_t it = lo; it < hi; it++) {
        const int b = (int)(it / NH), h = (int)(it % NH), n = j->len[b];
        const float *q = j->qkv + (size_t)j->off[b] * C3 + h * HS, *k = q + C, *v = q + 2 * C;
        float *P = j->att ? j->att + j->att_off[b] + (size_t)h * n * n : scr;
        att_nt(P, n, q, C3, k, C3, n, n, HS);
        for (int i = 0; i < n; i++) softmax_row(P + (size_t)i * n, P + (size_t)i * n, NULL, n, scale);
        const float *Pd = P;
        if (j->p > 0) {
            float *D = j->att ? scr : P;
            for (int i = 0; i < n; i++)
                dropout_range(D + (size_t)i * n, P + (size_t)i * n, (size_t)n, j->p, j->key,
                              padded_row_index(b, h, i, NH, T));
            Pd = D;
        }
        att_nn(j->ctx + (size_t)j->off[b] * C + h * HS, C, Pd, n, v, C3, n, HS, n);
    }
}

void attention_forward_varlen(float *ctx, float *att, float *scratch, const float *qkv, const int *off,
                              const int *len, const size_t *att_off, int B, int T, int C, int NH,
                              float dropout_p, uint32_t dropout_key) {
    AM_ASSERT(C % NH == 0 && (att == NULL || att_off != NULL));
    for (int b = 0; b < B; b++) AM_ASSERT(len[b] >= 1 && len[b] <= T);
    AttVarJob j = { .ctx = ctx, .att = att, .scratch = scratch, .qkv = qkv, .off = off, .len = len,
                    .att_off = att_off, .T = T, .C = C, .NH = NH, .p = dropout_p, .key = dropout_key };
    am_parallel_for(att_var_task, &j, (size_t)B * NH, 1, (size_t)B * NH * T * T * (C / NH));
}

static void att_var_bwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const AttVarJob *j = ctx;
    const int C = j->C, NH = j->NH, HS = C / NH, C3 = 3 * C, T = j->T;
    const float scale = 1.0f / sqrtf((float)HS);
    float *dP = j->scratch + (size_t)tid * attention_scratch_floats(T), *Pd = dP + (size_t)T * T;
    for (size_t it = lo; it < hi; it++) {
        const int b = (int)(it / NH), h = (int)(it % NH), n = j->len[b];
        const size_t r0 = (size_t)j->off[b];
        const float *q = j->qkv + r0 * C3 + h * HS, *k = q + C, *v = q + 2 * C;
        const float *P = j->att_c + j->att_off[b] + (size_t)h * n * n, *dc = j->dctx + r0 * C + h * HS;
        float *dq = j->dqkv + r0 * C3 + h * HS, *dk = dq + C, *dv = dq + 2 * C;
        const float *Pdrop = P;
        if (j->p > 0) {
            for (int i = 0; i < n; i++)
                dropout_range(Pd + (size_t)i * n, P + (size_t)i * n, (size_t)n, j->p, j->key,
                              padded_row_index(b, h, i, NH, T));
            Pdrop = Pd;
        }
        att_nt(dP, n, dc, C, v, C3, n, n, HS);
        att_tn(dv, C3, Pdrop, n, dc, C, n, HS, n);
        for (int i = 0; i < n; i++) {
            float *row = dP + (size_t)i * n;
            if (j->p > 0) dropout_range(row, row, (size_t)n, j->p, j->key, padded_row_index(b, h, i, NH, T));
            softmax_bwd_row(row, row, P + (size_t)i * n, n, scale);
        }
        att_nn(dq, C3, dP, n, k, C3, n, HS, n);
        att_tn(dk, C3, dP, n, q, C3, n, HS, n);
    }
}

void attention_backward_varlen(float *dqkv, float *scratch, const float *dctx, const float *qkv, const float *att,
                               const int *off, const int *len, const size_t *att_off, int B, int T, int C, int NH,
                               float dropout_p, uint32_t dropout_key) {
    AM_ASSERT(C % NH == 0);
    AttVarJob j = { .dqkv = dqkv, .scratch = scratch, .dctx = dctx, .qkv = qkv, .att_c = att, .off = off,
                    .len = len, .att_off = att_off, .T = T, .C = C, .NH = NH, .p = dropout_p, .key = dropout_key };
    am_parallel_for(att_var_bwd_task, &j, (size_t)B * NH, 1, (size_t)B * NH * T * T * (C / NH));
}

typedef struct { float *padded, *packed; const float *src; const int *off, *len; int T, C, acc, unpack; } SeqJob;

static void seq_task(void *ctx, size_t lo, size_t hi, int tid) {
    const SeqJob *j = ctx;
    const size_t C = (size_t)j->C;
    (void)tid;
    for (size_t b = lo; b < hi; b++) {
        const size_t n = (size_t)j->len[b];
        float *pad = j->padded + b * (size_t)j->T * C, *pk = j->packed + (size_t)j->off[b] * C;
        if (j->unpack) {
            memcpy(pad, pk, n * C * sizeof(float));
            memset(pad + n * C, 0, ((size_t)j->T - n) * C * sizeof(float));
        } else if (j->acc) {
            for (size_t r = 0; r < n; r++) add_into(pk + r * C, pad + r * C, (int)C);
        } else {
            memcpy(pk, pad, n * C * sizeof(float));
        }
    }
}

void seq_unpack(float *padded, const float *packed, const int *off, const int *len, int B, int T, int C) {
    SeqJob j = { padded, (float *)packed, NULL, off, len, T, C, 0, 1 };
    am_parallel_for(seq_task, &j, (size_t)B, 1, (size_t)B * T * C);
}

void seq_pack(float *packed, const float *padded, const int *off, const int *len, int B, int T, int C, int accumulate) {
    SeqJob j = { (float *)padded, packed, NULL, off, len, T, C, accumulate, 0 };
    am_parallel_for(seq_task, &j, (size_t)B, 1, (size_t)B * T * C);
}

void attention_forward(float *ctx, float *att, float *scratch, const float *qkv, const float *mask,
                       int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key) {
    AM_ASSERT(C % NH == 0);
    AttJob j = { .ctx = ctx, .att = att, .scratch = scratch, .qkv = qkv, .mask = mask,
                 .B = B, .T = T, .C = C, .NH = NH, .p = dropout_p, .key = dropout_key };
    am_parallel_for(att_fwd_task, &j, (size_t)B * NH, 1, (size_t)B * NH * T * T * (C / NH));
}

static void att_bwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const AttJob *j = ctx;
    const int T = j->T, C = j->C, NH = j->NH, HS = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
    float *dP = j->scratch + (size_t)tid * attention_scratch_floats(T), *Pd = dP + (size_t)T * T;
    for (size_t it = lo; it < hi; it++) {
        const int b = (int)(it / NH), h = (int)(it % NH);
        int nk;
        const float *km;
        seq_keys(j->mask ? j->mask + (size_t)b * T : NULL, T, &nk, &km);
        const size_t tok0 = (size_t)b * T, base = it * (size_t)T * T;
        const float *q = j->qkv + tok0 * C3 + h * HS, *k = q + C, *v = q + 2 * C;
        const float *P = j->att_c + base, *dc = j->dctx + tok0 * C + h * HS;
        float *dq = j->dqkv + tok0 * C3 + h * HS, *dk = dq + C, *dv = dq + 2 * C;
        const float *Pdrop = P;
        if (j->p > 0) {
            for (int i = 0; i < T; i++)
                dropout_range(Pd + (size_t)i * T, P + (size_t)i * T, (size_t)nk, j->p, j->key, base + (size_t)i * T);
            Pdrop = Pd;
        }
        /* dPd (T, nk) = dctx_h · V[:nk]ᵀ ; dV[:nk] = Pdᵀ · dctx_h */
        att_nt(dP, T, dc, C, v, C3, T, nk, HS);
        att_tn(dv, C3, Pdrop, T, dc, C, nk, HS, T);
        for (int i = 0; i < T; i++) {
            float *row = dP + (size_t)i * T;
            if (j->p > 0) dropout_range(row, row, (size_t)nk, j->p, j->key, base + (size_t)i * T);
            softmax_bwd_row(row, row, P + (size_t)i * T, nk, scale);
        }
        /* dQ = dS · K[:nk] ; dK[:nk] = dSᵀ · Q */
        att_nn(dq, C3, dP, T, k, C3, T, HS, nk);
        att_tn(dk, C3, dP, T, q, C3, nk, HS, T);
        for (int t = nk; t < T; t++) { /* keys never looked at get zero gradient */
            memset(dk + (size_t)t * C3, 0, (size_t)HS * sizeof(float));
            memset(dv + (size_t)t * C3, 0, (size_t)HS * sizeof(float));
        }
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dctx, const float *qkv,
                        const float *att, const float *mask,
                        int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key) {
    AM_ASSERT(C % NH == 0);
    AttJob j = { .dqkv = dqkv, .scratch = scratch, .dctx = dctx, .qkv = qkv, .att_c = att, .mask = mask,
                 .B = B, .T = T, .C = C, .NH = NH, .p = dropout_p, .key = dropout_key };
    am_parallel_for(att_bwd_task, &j, (size_t)B * NH, 1, (size_t)B * NH * T * T * (C / NH));
}

/* ================================================================== pooling, L2 norm */

static float mask_count(const float *mask_b, int T) {
    double s = 0;
    for (int t = 0; t < T; t++) s += mask_b ? (double)mask_b[t] : 1.0;
    return (float)(s < 1e-9 ? 1e-9 : s);
}

typedef struct { float *out; const float *inp, *mask; int B, T, C, D; } PoolJob;

static void pool_fwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const PoolJob *j = ctx;
    const int T = j->T, C = j->C, D = j->D;
    for (size_t b = lo; b < hi; b++) {
        const float *mb = j->mask ? j->mask + b * T : NULL;
        float *o = j->out + b * D;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int t = 0; t < T; t++) {
            float m = mb ? mb[t] : 1.0f;
            if (m == 0) continue;
            const float *x = j->inp + (b * T + t) * C;
            if (m == 1.0f) add_into(o, x, D);
            else for (int d = 0; d < D; d++) o[d] += m * x[d];
        }
        float inv = 1.0f / mask_count(mb, T);
        for (int d = 0; d < D; d++) o[d] *= inv;
    }
    (void)tid;
}

static void pool_bwd_task(void *ctx, size_t lo, size_t hi, int tid) {
    const PoolJob *j = ctx; /* out = dinp, inp = dout */
    const int T = j->T, C = j->C, D = j->D;
    for (size_t b = lo; b < hi; b++) {
        const float *mb = j->mask ? j->mask + b * T : NULL;
        float inv = 1.0f / mask_count(mb, T);
        const float *g = j->inp + b * D;
        for (int t = 0; t < T; t++) {
            float s = (mb ? mb[t] : 1.0f) * inv;
            if (s == 0) continue;
            float *dx = j->out + (b * T + t) * C;
            for (int d = 0; d < D; d++) dx[d] += s * g[d];
        }
    }
    (void)tid;
}

void pool_mean_forward(float *out, const float *inp, const float *mask, int B, int T, int C, int D) {
    AM_ASSERT(D > 0 && D <= C);
    PoolJob j = { out, inp, mask, B, T, C, D };
    am_parallel_for(pool_fwd_task, &j, (size_t)B, 1, (size_t)B * T * D);
}

void pool_mean_backward(float *dinp, const float *dout, const float *mask, int B, int T, int C, int D) {
    AM_ASSERT(D > 0 && D <= C);
    PoolJob j = { dinp, dout, mask, B, T, C, D };
    am_parallel_for(pool_bwd_task, &j, (size_t)B, 1, (size_t)B * T * D);
}

void pool_cls_forward(float *out, const float *inp, int B, int T, int C, int D) {
    AM_ASSERT(D > 0 && D <= C && T > 0);
    for (int b = 0; b < B; b++) memcpy(out + (size_t)b * D, inp + (size_t)b * T * C, (size_t)D * sizeof(float));
}

void pool_cls_backward(float *dinp, const float *dout, int B, int T, int C, int D) {
    AM_ASSERT(D > 0 && D <= C && T > 0);
    for (int b = 0; b < B; b++) add_into(dinp + (size_t)b * T * C, dout + (size_t)b * D, D);
}

#define L2_EPS 1e-12

void l2norm_forward(float *out, const float *inp, int B, int D) {
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)x[d] * (double)x[d];
        double n = sqrt(s);
        float inv = (float)(1.0 / (n > L2_EPS ? n : L2_EPS));
        for (int d = 0; d < D; d++) out[(size_t)b * D + d] = x[d] * inv;
    }
}

void l2norm_backward(float *dinp, const float *dout, const float *inp, int B, int D) {
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * D, *g = dout + (size_t)b * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)x[d] * (double)x[d];
        double n = sqrt(s);
        float *dx = dinp + (size_t)b * D;
        if (n <= L2_EPS) { /* out = x / eps: linear */
            for (int d = 0; d < D; d++) dx[d] += (float)((double)g[d] / L2_EPS);
            continue;
        }
        double dot = 0; /* y·g with y = x/n */
        for (int d = 0; d < D; d++) dot += (double)x[d] / n * (double)g[d];
        for (int d = 0; d < D; d++) dx[d] += (float)(((double)g[d] - (double)x[d] / n * dot) / n);
    }
}
