/* elementwise.c - element-wise kernels: vector add, GELU (exact erf form), dropout, and the
 * dropout mask primitives (dropout_key, dropout_keep).
 *
 * Outputs first, inputs, weights, dims last. Dims legend:
 *   B batch, T tokens, C channels, NH heads, HS = C/NH head size, N rows (= B*T),
 *   IC/OC input/output features of a linear layer, D kept channels.
 * Parallel over the pool (parallel.c) in fixed chunks handed out dynamically: chunk boundaries
 * never depend on the thread count, so results are bit-identical at any thread count. The
 * readable definitions are in ref_kernels.c. */
#include "kernel_rows.h"
#include "am_base.h"

#include <stddef.h>

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
