/* layernorm.c - LayerNorm forward and backward (two-pass statistics, as torch), and the
 * backward of the residual sublayer tail (LayerNorm then dropout); parameter gradients are
 * reduced per chunk in a fixed order.
 *
 * Outputs first, inputs, weights, dims last. Dims legend:
 *   B batch, T tokens, C channels, NH heads, HS = C/NH head size, N rows (= B*T),
 *   IC/OC input/output features of a linear layer, D kept channels.
 * Parallel over the pool (parallel.c) in fixed chunks handed out dynamically: chunk boundaries
 * never depend on the thread count, so results are bit-identical at any thread count. The
 * readable definitions are in ref_kernels.c. */
#include "kernel_rows.h"
#include "am_base.h"

#include <stdlib.h>
#include <string.h>


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
