/* ref_kernels.c - naive loops: the oracle for tests and the readable definition of every kernel.
 *
 * Same signatures and write/accumulate semantics as kernels.c (see tensor.h), single-threaded,
 * double accumulators, libm erff/expf. Slow on purpose; never used on a hot path.
 * Dims legend: B batch, T tokens, C channels, NH heads, HS head size, N rows, IC/OC in/out.
 */
#include "tensor.h"
#include "am_base.h"

#include <math.h>
#include <string.h>

/* The oracle accumulates in double on purpose: every float -> double promotion is intended. */
#pragma GCC diagnostic ignored "-Wdouble-promotion"

void ref_gemm(int ta, int tb, float *c, int ldc, const float *a, int lda, const float *b, int ldb,
              int M, int N, int K, float alpha, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double av = ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k];
                double bv = tb ? b[(size_t)j * ldb + k] : b[(size_t)k * ldb + j];
                s += av * bv;
            }
            float *cij = &c[(size_t)i * ldc + j];
            *cij = (float)(alpha * s + (beta == 0 ? 0.0 : (double)beta * *cij));
        }
}

void ref_linear_forward(float *out, const float *inp, const float *w, const float *b,
                        int N, int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += (double)inp[(size_t)n * IC + i] * w[(size_t)o * IC + i];
            out[(size_t)n * OC + o] = (float)s;
        }
}

void ref_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int N, int IC, int OC) {
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IC; i++) {
                double s = 0;
                for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * w[(size_t)o * IC + i];
                dinp[(size_t)n * IC + i] += (float)s;
            }
    if (dw)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * IC + i];
                dw[(size_t)o * IC + i] += (float)s;
            }
    if (db)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            db[o] += (float)s;
        }
}

void ref_embeddings_forward(float *out, const int32_t *ids, const int32_t *type_ids,
                            const float *wte, const float *wpe, const float *wtt, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            int tt = type_ids ? type_ids[bt] : 0;
            for (int c = 0; c < C; c++)
                out[bt * C + c] = wte[(size_t)ids[bt] * C + c] + wpe[(size_t)t * C + c] + wtt[(size_t)tt * C + c];
        }
}

void ref_embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                             const int32_t *ids, const int32_t *type_ids, int B, int T, int C, int pad_id) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            int tt = type_ids ? type_ids[bt] : 0;
            for (int c = 0; c < C; c++) {
                float d = dout[bt * C + c];
                if (dwte && ids[bt] != pad_id) dwte[(size_t)ids[bt] * C + c] += d;
                if (dwpe) dwpe[(size_t)t * C + c] += d;
                if (dwtt) dwtt[(size_t)tt * C + c] += d;
            }
        }
}

void ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        double s = 1.0 / sqrt(v + eps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (float)((x[c] - m) * s * w[c] + b[c]);
        mean[n] = (float)m;
        rstd[n] = (float)s;
    }
}

void ref_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        double dnm = 0, dnnm = 0;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - mean[n]) * (double)rstd[n];
            double dn = (double)w[c] * dy[c];
            dnm += dn;
            dnnm += dn * xh;
        }
        dnm /= C;
        dnnm /= C;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - mean[n]) * (double)rstd[n];
            double dn = (double)w[c] * dy[c];
            dinp[(size_t)n * C + c] += (float)((dn - dnm - xh * dnnm) * rstd[n]);
            dw[c] += (float)(dy[c] * xh);
            db[c] += dy[c];
        }
    }
}

void ref_gelu_forward(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
    }
}

void ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        double x = inp[i];
        double cdf = 0.5 * (1.0 + erf(x * M_SQRT1_2));
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
        dinp[i] = (float)((cdf + x * pdf) * dout[i]);
    }
}

void ref_softmax_forward(float *probs, const float *scores, const float *keymask, int R, int T, float scale) {
    for (int r = 0; r < R; r++) {
        const float *s = scores + (size_t)r * T;
        float *p = probs + (size_t)r * T;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++)
            if (!keymask || keymask[j] != 0) mx = fmax(mx, (double)scale * s[j]);
        AM_ASSERT(mx > -INFINITY);
        double e[T > 0 ? T : 1];
        for (int j = 0; j < T; j++) {
            e[j] = (!keymask || keymask[j] != 0) ? exp((double)scale * s[j] - mx) : 0.0;
            sum += e[j];
        }
        for (int j = 0; j < T; j++) p[j] = (float)(e[j] / sum);
    }
}

void ref_softmax_backward(float *dscores, const float *dprobs, const float *probs, int R, int T, float scale) {
    for (int r = 0; r < R; r++) {
        const float *dp = dprobs + (size_t)r * T, *p = probs + (size_t)r * T;
        double dot = 0;
        for (int j = 0; j < T; j++) dot += (double)dp[j] * p[j];
        for (int j = 0; j < T; j++) dscores[(size_t)r * T + j] = (float)(scale * p[j] * (dp[j] - dot));
    }
}

void ref_dropout_forward(float *out, const float *inp, size_t N, float p, uint32_t key, size_t offset) {
    float s = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    for (size_t i = 0; i < N; i++) out[i] = dropout_keep(key, offset + i, p) ? inp[i] * s : 0.0f;
}

void ref_attention_forward(float *ctx, float *att, const float *qkv, const float *mask,
                           int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key) {
    const int HS = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
    float scores[T > 0 ? T : 1], attd[T > 0 ? T : 1];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * C3 + h * HS;
                for (int j = 0; j < T; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * C3 + C + h * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++) s += (double)q[d] * k[d];
                    scores[j] = (float)s;
                }
                size_t row = (((size_t)b * NH + h) * T + i) * T;
                ref_softmax_forward(att + row, scores, mask ? mask + (size_t)b * T : NULL, 1, T, scale);
                ref_dropout_forward(attd, att + row, T, dropout_p, dropout_key, row);
                const float *pd = attd;
                float *o = ctx + ((size_t)b * T + i) * C + h * HS;
                for (int d = 0; d < HS; d++) {
                    double s = 0;
                    for (int j = 0; j < T; j++) s += (double)pd[j] * qkv[((size_t)b * T + j) * C3 + 2 * C + h * HS + d];
                    o[d] = (float)s;
                }
            }
}

void ref_attention_backward(float *dqkv, const float *dctx, const float *qkv,
                            const float *att, const float *mask,
                            int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key) {
    const int HS = C / NH, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)HS);
    const float keep_scale = dropout_p > 0 ? 1.0f / (1.0f - dropout_p) : 1.0f;
    memset(dqkv, 0, (size_t)B * T * C3 * sizeof(float));
    float dp[T > 0 ? T : 1], ds[T > 0 ? T : 1], pd[T > 0 ? T : 1];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                size_t row = (((size_t)b * NH + h) * T + i) * T;
                const float *p = att + row;
                ref_dropout_forward(pd, p, T, dropout_p, dropout_key, row);
                const float *dc = dctx + ((size_t)b * T + i) * C + h * HS;
                for (int j = 0; j < T; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * C3 + 2 * C + h * HS;
                    float *dv = dqkv + ((size_t)b * T + j) * C3 + 2 * C + h * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++) { s += (double)dc[d] * v[d]; dv[d] += pd[j] * dc[d]; }
                    dp[j] = (float)s; /* gradient wrt attd */
                    if (dropout_p > 0) dp[j] = dropout_keep(dropout_key, row + j, dropout_p) ? dp[j] * keep_scale : 0.0f;
                }
                ref_softmax_backward(ds, dp, p, 1, T, (float)scale);
                (void)mask; /* masked keys have p == 0, so ds == 0 there */
                const float *q = qkv + ((size_t)b * T + i) * C3 + h * HS;
                float *dq = dqkv + ((size_t)b * T + i) * C3 + h * HS;
                for (int j = 0; j < T; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * C3 + C + h * HS;
                    float *dk = dqkv + ((size_t)b * T + j) * C3 + C + h * HS;
                    for (int d = 0; d < HS; d++) { dq[d] += ds[j] * k[d]; dk[d] += ds[j] * q[d]; }
                }
            }
}

void ref_pool_mean_forward(float *out, const float *inp, const float *mask, int B, int T, int C, int D) {
    for (int b = 0; b < B; b++) {
        double cnt = 0;
        for (int t = 0; t < T; t++) cnt += mask ? mask[(size_t)b * T + t] : 1.0f;
        if (cnt < 1e-9) cnt = 1e-9;
        for (int d = 0; d < D; d++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += (double)(mask ? mask[(size_t)b * T + t] : 1.0f) * inp[((size_t)b * T + t) * C + d];
            out[(size_t)b * D + d] = (float)(s / cnt);
        }
    }
}

void ref_l2norm_forward(float *out, const float *inp, int B, int D) {
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)inp[(size_t)b * D + d] * inp[(size_t)b * D + d];
        double n = sqrt(s);
        if (n < 1e-12) n = 1e-12;
        for (int d = 0; d < D; d++) out[(size_t)b * D + d] = (float)(inp[(size_t)b * D + d] / n);
    }
}
