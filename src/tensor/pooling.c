/* pooling.c - pooling over tokens (mean with mask, CLS) and L2 normalisation of rows,
 * forward and backward.
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
