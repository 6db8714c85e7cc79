/* merge_internal.h - what the merge method files share: the per-tensor job (Tj), block sizes,
 * grow-only scratch, output stores, NaN/Inf reporting, and one entry point per method family.
 * merge.c drives (checks, loop over tensors); merge_elementwise.c holds linear and the
 * task-arithmetic family, merge_select.c the exact k-th |δ| selection TIES-style masks use,
 * merge_sphere.c the Gram methods (SLERP, NuSLERP, Multi-SLERP, Karcher, model stock). */
#ifndef AM_MERGE_INTERNAL_H
#define AM_MERGE_INTERNAL_H

#include <stdint.h>
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
typedef struct { float *p; size_t cap, bytes; } WsBuf; /* from the buffer pool (am_pool_take) */

float *merge_ws_get(WsBuf *w, size_t need);
void merge_ws_free(WsBuf *w, size_t n);
#define MERGE_WS(K) (4 * (size_t)(K) + 3)

/* One tensor of one merge_run. */
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
    WsBuf *ws;              /* MERGE_WS(K) scratch buffers: band per model, sample, select ping-pong, copy,
                             * then sample, ping-pong and copy per model (the selections run in parallel) */
} Tj;

const char *merge_input_name(const MergeInputs *in, int k, char *buf, size_t len);
/* Name the input with a NaN/Inf in [lo, hi) of the current tensor, or report overflow. */
int merge_report_nonfinite(const Tj *j, size_t lo, size_t hi);

static inline int block_bad(const float *x, size_t n) {
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
static inline void store_out(float *dst, const float *src, size_t n) {
    size_t i = 0;
#ifdef __AVX512F__
    while (i < n && ((uintptr_t)(dst + i) & 63)) { dst[i] = src[i]; i++; }
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#endif
    for (; i < n; i++) dst[i] = src[i];
}

static inline void store_fence(void) {
#ifdef __AVX512F__
    _mm_sfence(); /* streaming stores are visible to the joining thread */
#endif
}

static inline float par(const Tj *j, MergeParam p, int k) {
    return merge_param_at(j->s, p, k, j->pi->name, j->layer, j->in->n_layers);
}

static inline int opt_normalize(const Tj *j) { return j->s->normalize >= 0 ? j->s->normalize : j->info->normalize; }
static inline int opt_rescale(const Tj *j) { return j->s->rescale >= 0 ? j->s->rescale : j->info->rescale; }

/* Sparsification of the task-arithmetic family (merge_elementwise.c). */
enum { SP_NONE, SP_MAGNITUDE, SP_RANDOM, SP_OUTLIERS, SP_DELLA };
int merge_sparse_kind(MergeMethod m);

/* merge_select.c: k-th smallest (0-based) of a[0..n), destroying a */
float merge_select_kth(float *a, size_t n, size_t k);
/* k[m]-th smallest |x_m − b| for every model with k[m] != SIZE_MAX (ws: K + 3 scratch buffers);
 * returns the first model whose δ has a NaN/Inf, or −1 */
int merge_abs_delta_kth_multi(const float *const *x, const float *b, size_t n, int K, const size_t *k, float *out,
                              WsBuf *ws);
/* the r-th smallest of band[0..cnt) (destroyed; tmp: cnt floats of scratch), through a sub-sampled
 * bracket when cnt is large */
float merge_band_kth(float *band, float *tmp, size_t cnt, size_t r);

/* One tensor (j) per call; AM_OK or a negative AM_E* with the message set. */
int merge_run_linear(const Tj *j);     /* merge_elementwise.c */
int merge_run_gta(const Tj *j);        /* task arithmetic, TIES, DARE, DELLA, breadcrumbs */
int merge_run_slerp(const Tj *j);      /* merge_sphere.c */
int merge_run_nuslerp(const Tj *j);
int merge_run_multislerp(const Tj *j);
int merge_run_karcher(const Tj *j);
int merge_run_model_stock(const Tj *j);

#endif
