/* embeddings.c - the embedding block: word + position + type embeddings, optionally fused
 * with LayerNorm and dropout, and the scatter-add backward.
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
