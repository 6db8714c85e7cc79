/* attention.c - multi-head self-attention (padded and packed variable-length), the row
 * softmax it uses, and the packed <-> padded row copies. Per (b, h): Q·Kᵀ, softmax, dropout
 * and P·V on blas.c's packed kernel while the head's rows are in cache.
 *
 * Outputs first, inputs, weights, dims last. Dims legend:
 *   B batch, T tokens, C channels, NH heads, HS = C/NH head size, N rows (= B*T),
 *   IC/OC input/output features of a linear layer, D kept channels.
 * Parallel over the pool (parallel.c) in fixed chunks handed out dynamically: chunk boundaries
 * never depend on the thread count, so results are bit-identical at any thread count. The
 * readable definitions are in ref_kernels.c. */
#include "kernel_rows.h"
#include "am_base.h"

#include <math.h>
#include <string.h>

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
