/* linear.c - the linear layers, forward and backward, with their fused epilogues
 * (bias, GELU, dropout + residual + LayerNorm) run on each chunk of rows right after its GEMM.
 * GEMMs go through blas.c: our packed kernel for the forward, dinp and dW, each call
 * single-threaded on a disjoint slice.
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
