/* tensor.h - tensor views, the compute thread pool, BLAS wrappers and the kernels.
 *
 * Conventions (read these before calling anything here):
 *
 *  - Every buffer is row-major float32. Kernels take raw pointers, llm.c style: OUTPUTS FIRST,
 *    then inputs, then parameters (weights), then dims LAST. Every pointer parameter carries a
 *    shape comment. Dimension legend (shared with src/model):
 *      B = batch, T = tokens per sequence, C = channels (hidden size), NH = heads,
 *      HS = C / NH head size, FF = FFN size, N = rows (usually B*T), IC/OC = in/out features,
 *      D = pooled / kept features (D <= C), V = vocab, P = positions, TV = token types.
 *
 *  - Linear layers store weights as PyTorch does, W (OC, IC) row-major, and compute
 *      out (N, OC) = inp (N, IC) · Wᵀ + b
 *    so the forward GEMM is "NT", the input gradient "NN" (dinp = dout · W) and the weight
 *    gradient "TN" (dW += doutᵀ · inp).
 *
 *  - Forward kernels WRITE their outputs. Backward kernels ACCUMULATE (+=) into parameter
 *    gradients (dw, db, dwte, ...) so several losses / micro-batches can add up, and their
 *    input gradient is either accumulated (+=) or written (=) as each function documents;
 *    where written, the kernel may be called with dinp aliasing an input as noted.
 *
 *  - Padding mask: a float (B, T) array, 1 = real token, 0 = padding (any non-zero counts as
 *    real). Attention ignores padded KEYS (queries at padded positions are still computed,
 *    as Hugging Face does, so every hidden state matches BertModel). Hugging Face adds
 *    (1 - mask) * M to the scores with M = -10000 (older BERT, tools/bench/torch_peer.py)
 *    or M = finfo(float32).min (recent transformers). Both make exp() of a masked score
 *    underflow to exactly 0 in float32 whenever |scores| << 1e4, which is always the case in
 *    practice, so we implement the mask as EXCLUSION: masked keys get probability exactly 0
 *    and gradient exactly 0. This is equal to both conventions and removes the need for a
 *    magic constant. A sequence whose mask is all zero would make a row with no key at all
 *    (HF would then attend uniformly to the padding); that cannot happen with a tokenizer
 *    that always emits [CLS], and the encoder rejects it with AM_EINVAL.
 *
 *  - GELU is the exact (erf) form of HF "gelu": x·0.5·(1 + erf(x/√2)). kernel_rows.h evaluates
 *    erf with the Abramowitz-Stegun 7.1.26 formula (|error| ≤ 1.5e-7, the formula PyTorch's
 *    own vectorised CPU erf uses) on 8 lanes at a time; ref_kernels.c uses libm erff.
 *
 *  - Dropout is counter based: whether element i of a dropout site is kept depends only on
 *    (key, i), where key comes from the step seed and the site (dropout_key()). So the result
 *    does not depend on the thread count or on how work is split, and backward recomputes the
 *    mask instead of storing it. Kept elements are scaled by 1/(1-p) (inverted dropout, as
 *    torch.nn.Dropout).
 *
 *  - Threads: kernels with a "parallel" note split their work over a process-wide pool
 *    (parallel.c; the caller is thread 0) in fixed chunks handed out dynamically
 *    (am_parallel_for): chunk boundaries never depend on the thread count and reductions
 *    (LayerNorm dw/db) add per-chunk partials in chunk order, so the encoder's forward and
 *    backward are bit-identical run to run and between 1 and 2 threads (tested), and a
 *    thread that loses its core to another process only delays the chunk it holds.
 *    OpenBLAS itself is kept at ONE thread (openblas_set_num_threads(1), re-checked at every
 *    pool dispatch): we split GEMMs over our own pool instead, which measured ~1.6x faster
 *    than OpenBLAS's own threading on these shapes (4096x384x384: 157 vs 91 GFLOPS) and
 *    avoids two thread pools fighting over 2 cores. Anyone calling cblas directly gets one
 *    thread: use blas_*_par for a large standalone GEMM that should use every thread.
 *
 *  - GEMMs: the linear layers' forward and input gradient (dinp) run on our own packed AVX2
 *    kernel (blas_gemm_packed: weights packed once per call and shared by the threads,
 *    activations packed per block by each thread, bias added at the store), and so do the
 *    weight gradient (blas_gemm_tn_packed: both operands packed per K block by each thread,
 *    the bias gradient summed while packing) and attention's per-head products
 *    (blas_gemm_{nt,nn,tn}_packed); everything else (LoRA, eval, k-means) on OpenBLAS.
 *    Measured, per pattern, in blas.c / linear.c / attention.c comments.
 */
#ifndef AM_TENSOR_H
#define AM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ thread pool */

/* fn runs once on every thread of the pool with tid in [0, nth); the caller is tid 0.
 * am_parallel_run returns when all have finished. A call made from inside a task, or while
 * another thread is using the pool, runs fn(ctx, 0, 1) inline instead (never deadlocks). */
typedef void (*AmTaskFn)(void *ctx, int tid, int nth);

/* Set the pool size (n >= 1; 0 = default: $AM_THREADS, else the number of online CPUs).
 * Not thread-safe against concurrent am_parallel_run; call it at start-up or between steps. */
void am_parallel_set_threads(int n);
int am_parallel_get_threads(void);
void am_parallel_run(AmTaskFn fn, void *ctx);
/* Run on the pool only when work >= min_work (in arbitrary units, e.g. floats touched);
 * otherwise inline as fn(ctx, 0, 1). */
void am_parallel_run_min(AmTaskFn fn, void *ctx, size_t work, size_t min_work);

/* Dynamic scheduling: fn(ctx, lo, hi, tid) is called for every chunk [k*grain, (k+1)*grain)
 * of [0, n) (the last one shorter), each chunk exactly once, by whichever pool thread takes it
 * next. Chunk boundaries do not depend on the thread count, so a kernel whose chunks are
 * independent gives bit-identical results at any thread count, and a thread that loses its
 * core to another process only delays its current chunk. Workers join a job only while it
 * has chunks left, and the caller waits only for workers that joined, so a worker without a
 * core never holds the others up. Runs inline (same chunks, tid 0) when n <= grain, `work`
 * (roughly: floats touched) < AM_PAR_MIN_WORK, when nested in a task, or when another thread
 * holds the pool. */
#define AM_PAR_MIN_WORK 32768
/* Cap the pool threads that the calling thread's am_parallel_for jobs use at n (1 = inline;
 * 0 = all; more than the pool's size = all of it; the pool is not resized). Thread-local;
 * returns the previous cap, to restore it. Chunks stay the same, so results do not change.
 * (MergeSpec.threads.) */
int am_parallel_limit(int n);
typedef void (*AmRangeFn)(void *ctx, size_t lo, size_t hi, int tid);
void am_parallel_for(AmRangeFn fn, void *ctx, size_t n, size_t grain, size_t work);

/* [lo, hi) of n items for thread tid of nth (static, contiguous, balanced). */
static inline void am_split(size_t n, int tid, int nth, size_t *lo, size_t *hi) {
    size_t q = n / (size_t)nth, r = n % (size_t)nth, t = (size_t)tid;
    *lo = t * q + (t < r ? t : r);
    *hi = *lo + q + (t < r ? 1 : 0);
}
/* Same, but boundaries rounded to a multiple of `align` items (the last range takes the rest). */
void am_split_aligned(size_t n, size_t align, int tid, int nth, size_t *lo, size_t *hi);

/* ------------------------------------------------------------------ blas.c */

/* One wrapper per sgemm pattern, single-threaded (call them from inside pool tasks), with
 * explicit leading dimensions (row strides, in floats). All assert their shapes.
 *   nt: C (M,N) = alpha · A (M,K) · B (N,K)ᵀ + beta · C      Q·Kᵀ, dP = dctx·Vᵀ
 *   nn: C (M,N) = alpha · A (M,K) · B (K,N)   + beta · C      P·V, dS·K
 *   tn: C (M,N) = alpha · A (K,M)ᵀ · B (K,N)  + beta · C      dW += doutᵀ·inp, Pᵀ·dctx, dSᵀ·Q
 * beta = 0 means C is write-only (may hold garbage / NaN). These go to OpenBLAS; the linear
 * forward uses blas_gemm_packed below. */
void blas_gemm_nt(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                  int M, int N, int K, float alpha, float beta);
void blas_gemm_nn(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                  int M, int N, int K, float alpha, float beta);
void blas_gemm_tn(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                  int M, int N, int K, float alpha, float beta);
/* Strided batch: for i in [0, batch): C_i = alpha·op(A_i)·op(B_i) + beta·C_i, with
 * X_i = X + i*strideX; ta/tb = 0 (no transpose) or 1 (transpose). For per-head matmuls (heads
 * are strided by HS inside a (T, 3C) row); attention_* call the single wrappers per (b, h)
 * instead, to run the softmax and dropout between the two products while they are in cache. */
void blas_gemm_batched(int ta, int tb, float *c, int ldc, size_t stride_c,
                       const float *a, int lda, size_t stride_a,
                       const float *b, int ldb, size_t stride_b,
                       int M, int N, int K, float alpha, float beta, int batch);

/* The same three patterns in double precision (OpenBLAS dgemm), for the losses and the
 * evaluation probes that accumulate in double. */
void blas_dgemm_nt(double *c, int ldc, const double *a, int lda, const double *b, int ldb,
                   int M, int N, int K, double alpha, double beta);
void blas_dgemm_nn(double *c, int ldc, const double *a, int lda, const double *b, int ldb,
                   int M, int N, int K, double alpha, double beta);
void blas_dgemm_tn(double *c, int ldc, const double *a, int lda, const double *b, int ldb,
                   int M, int N, int K, double alpha, double beta);
/* Solve A X = B for a symmetric A (n, n): b holds nrhs right-hand sides column after column
 * (b[j*n + i], LAPACK's layout) and receives X. Cholesky (LAPACK dposv) first; when A is not
 * positive definite (a feature never active), LU with pivoting (dgesv) on the original A and B.
 * a and b are overwritten. Returns 0, or LAPACK's info > 0 when A is singular (b then undefined). */
int blas_dsolve_sym(double *a, double *b, int n, int nrhs);
/* The OpenBLAS kernels in use, "corename (config)", for benchmark headers. Static storage. */
const char *blas_backend(void);
/* The packed GEMM's AVX-512 micro-kernel (6 x 32, bit-identical to the AVX2 6 x 16 one): 1 when
 * it runs, i.e. the CPU has AVX-512F (checked at run time) and it is not switched off
 * (AMALGAM_NO_AVX512=1, or blas_set_wide(0) for tests and A/B runs; -1 = back to the default). */
int blas_wide_kernel(void);
void blas_set_wide(int on);

/* Parallel (over the pool) versions for large standalone GEMMs: rows of C are split. */
void blas_gemm_nt_par(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                      int M, int N, int K, float alpha, float beta);
void blas_gemm_nn_par(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                      int M, int N, int K, float alpha, float beta);
void blas_gemm_tn_par(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                      int M, int N, int K, float alpha, float beta);
/* Packed-B GEMM: our AVX2 kernel for the linear layers (blas.c explains the layout).
 *   blas_pack_nt(Bp, B (N,K), ldb, N, K): pack B for C = A·Bᵀ   (weights (OC, IC), forward)
 *   blas_pack_nn(Bp, B (K,N), ldb, K, N): pack B for C = A·B    (weights for dinp, inputs for dW)
 *   blas_gemm_packed: C (M,N) = [beta·C +] A·B [+ bias (N)], A (M,K) row-major (ta = 0) or
 *                     A (K,M) read transposed (ta = 1); beta must be 0 or 1. Single-threaded:
 *                     split rows of C (or columns, packing only those) over the pool.
 * Bp needs blas_packed_floats(N, K) floats. */
size_t blas_packed_floats(int N, int K);
void blas_pack_nt(float *Bp, const float *B, int ldb, int N, int K);
void blas_pack_nn(float *Bp, const float *B, int ldb, int K, int N);
/* The same for panels [p0, p1) of 16 columns only (to pack in parallel). */
int blas_packed_panels(int N);
void blas_pack_nt_panels(float *Bp, const float *B, int ldb, int N, int K, int p0, int p1);
void blas_pack_nn_panels(float *Bp, const float *B, int ldb, int K, int N, int p0, int p1);
void blas_gemm_packed(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                      int M, int N, int K, float beta);
/* The same restricted to the column panels [p0, p1) (columns 16*p0 .. min(16*p1, N)). */
void blas_gemm_packed_panels(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                             int M, int N, int K, float beta, int p0, int p1);
/* Weight-gradient GEMM on the packed kernel: C (M,N) = [beta·C +] A (K,M)ᵀ · B (K,N), beta 0
 * or 1; if colsum_a is not NULL, colsum_a (M) += Σ_k A(k, ·) (the bias gradient, taken while A
 * is packed). Single-threaded (split rows or columns of C over the pool); uses scratch slots 1
 * and 2 of the calling thread. */
void blas_gemm_tn_packed(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                         int M, int N, int K, float beta, float *colsum_a);
/* C (M,N) = [beta·C +] A (M,K) · B (N,K)ᵀ (nt) or A · B (K,N) (nn) on the packed kernel, B
 * packed on every call (scratch slots 1 and 2 of the calling thread); beta 0 or 1. For small
 * products such as attention's per-head GEMMs. */
void blas_gemm_nt_packed(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                         int M, int N, int K, float beta);
void blas_gemm_nn_packed(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                         int M, int N, int K, float beta);
/* A per-thread scratch buffer (64-byte aligned, grows, freed at thread exit), for packing.
 * Valid until the next call with the same slot on the same thread. */
#define BLAS_SCRATCH_SLOTS 3
float *blas_scratch(int slot, size_t n);

/* Called automatically (every am_parallel_run); keeps OpenBLAS at one thread (see the top). */
void blas_init(void);

/* ------------------------------------------------------------------ linear.c (+ fused epilogues) */

/* Linear layer. out (N, OC) = inp (N, IC) · w (OC, IC)ᵀ + b (OC) [b may be NULL]. parallel. */
void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    int N, int IC, int OC);
/* dinp (N, IC) += dout · w   (skipped if dinp == NULL)
 * dw   (OC, IC) += doutᵀ · inp (skipped if dw == NULL)
 * db   (OC) += Σ_rows dout     (skipped if db == NULL). parallel. */
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int IC, int OC);

/* dinp (N, IC) = dout · w (WRITTEN, not accumulated); dw, db accumulate as above. parallel. */
void linear_backward_set(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int N, int IC, int OC);
/* Backward through [GELU -> linear], the second FFN matrix:
 *   dpre (N, IC) = (dout (N, OC) · w (OC, IC)) ∘ gelu'(pre)   (WRITES)
 *   dw (OC, IC) += doutᵀ · act,  db (OC) += Σ dout,  where act = gelu(pre) (N, IC). parallel. */
void gelu_linear_backward(float *dpre, float *dw, float *db, const float *dout, const float *act,
                          const float *pre, const float *w, int N, int IC, int OC);

/* Optional per-chunk hook of the fused linear kernels, called right after the GEMM (bias
 * included) on a chunk of rows and before the epilogue (GELU / dropout+residual+LayerNorm):
 *   fn(ud, out (rows, OC), inp (rows, IC), rows, row0)   with row0 the chunk's first row.
 * It runs on pool threads on disjoint chunks: it must be thread-safe and single-threaded
 * (nested am_parallel_run calls run inline anyway). This is where LoRA adds x·Aᵀ·Bᵀ·s. */
typedef struct {
    void (*fn)(void *ud, float *out, const float *inp, int rows, size_t row0);
    void *ud;
} LinearHook;

/* linear_forward with a hook (NULL = none). */
void linear_forward_ex(float *out, const float *inp, const float *w, const float *b,
                       int N, int IC, int OC, const LinearHook *hook);

/* pre (N,OC) = inp·wᵀ + b; out (N,OC) = gelu(pre). pre may equal out (no-grad inference,
 * keeps only the GELU output). parallel over row chunks (GEMM + epilogue while hot). */
void linear_gelu_forward(float *pre, float *out, const float *inp, const float *w, const float *b,
                         int N, int IC, int OC, const LinearHook *hook);
/* The post-LN sublayer tail of BERT:
 *   res (N,C) = resid + dropout(inp (N,IC) · w (C,IC)ᵀ + b)   [dropout site (p, key)]
 *   out (N,C) = LayerNorm(res; lnw, lnb, eps), mean/rstd (N) saved.
 * out may alias resid (no-grad path). parallel over row chunks. */
void linear_residual_layernorm_forward(float *out, float *res, float *mean, float *rstd,
                                       const float *inp, const float *w, const float *b,
                                       const float *resid, const float *lnw, const float *lnb,
                                       int N, int IC, int C, float eps, float p, uint32_t key,
                                       const LinearHook *hook);

/* Tuning knob for benchmarks: rows per GEMM chunk in the fused linear kernels (0 = auto). */
extern int am_tune_chunk_rows;
/* Benchmark knob: 1 = the weight-gradient and attention GEMMs on OpenBLAS instead of our
 * packed kernel (blas_gemm_{tn,nt,nn}_packed), for A/B comparisons. */
extern int am_tune_openblas;

/* ------------------------------------------------------------------ embeddings.c */

/* Embeddings: out (B,T,C) = wte[ids] + wpe[t] + wtt[type_ids]; type_ids NULL = all 0.
 * Ids are NOT range-checked here (the encoder checks them). parallel. */
void embeddings_forward(float *out, const int32_t *ids, const int32_t *type_ids,
                        const float *wte, const float *wpe, const float *wtt, int B, int T, int C);
/* dwte (V,C) += scatter(dout), dwpe (P,C) += Σ_b dout[b,t], dwtt (TV,C) += scatter.
 * Any of the three may be NULL. Tokens whose id is pad_id get no word-embedding gradient
 * (torch nn.Embedding padding_idx, as HF BertEmbeddings does; -1 = no such id); their position
 * and type rows still do. parallel over channels (race free, deterministic). */
void embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                         const int32_t *ids, const int32_t *type_ids, int B, int T, int C, int pad_id);
/* The same for a list of N rows with explicit position ids (packed sequences). */
void embeddings_backward_rows(float *dwte, float *dwpe, float *dwtt, const float *dout, const int32_t *ids,
                              const int32_t *type_ids, const int32_t *positions, int N, int C, int pad_id);

/* Fused embeddings -> LayerNorm -> dropout (BERT's embedding block):
 *   emb (B,T,C) = embeddings (kept for backward; NULL = not kept)
 *   out (B,T,C) = dropout(LayerNorm(emb; lnw, lnb, eps); p, key); mean, rstd (B*T) or NULL.
 * positions (B*T) gives each row's position id (NULL = row % T); with it, rows can be any
 * list of tokens (B = 1, T = number of rows). parallel over rows. */
void embeddings_layernorm_forward(float *out, float *emb, float *mean, float *rstd,
                                  const int32_t *ids, const int32_t *type_ids, const int32_t *positions,
                                  const float *wte, const float *wpe, const float *wtt,
                                  const float *lnw, const float *lnb,
                                  int B, int T, int C, float eps, float p, uint32_t key);

/* ------------------------------------------------------------------ layernorm.c */

/* LayerNorm over the last dim: out (N,C) = (inp - mean) * rstd * w + b, with mean, rstd (N)
 * saved for backward; rstd = 1/sqrt(var + eps), biased variance (as torch). parallel. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C, float eps);
/* dinp (N,C) += ..., dw (C) += Σ dout·x̂, db (C) += Σ dout. parallel. */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C);

/* Backward of LayerNorm followed by dropout, for the residual sublayer tail:
 *   dres (N,C) = LN-backward(dout)    (WRITES; the gradient reaching the residual input)
 *   dproj (N,C) = dropout_backward(dres)  (WRITES; the gradient reaching the linear output)
 *   dlnw, dlnb (C) += ...
 * dres may alias dout; dproj may equal dres only when p == 0 (then nothing is copied).
 * partials: layernorm_partials_floats(N, C) floats of scratch. parallel; the parameter
 * gradients are reduced in a fixed order, so they do not depend on the thread count. */
size_t layernorm_partials_floats(int N, int C);
void residual_layernorm_backward(float *dres, float *dproj, float *dlnw, float *dlnb,
                                 const float *dout, const float *res, const float *lnw,
                                 const float *mean, const float *rstd, float *partials,
                                 int N, int C, float p, uint32_t key);

/* ------------------------------------------------------------------ elementwise.c */

/* y (n) += x (n). parallel. */
void vec_add(float *y, const float *x, size_t n);

/* GELU (exact erf form). out (N) may alias inp. parallel. */
void gelu_forward(float *out, const float *inp, size_t N);
/* dinp (N) = gelu'(inp) · dout (WRITES; dinp may alias dout). parallel. */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);

/* Dropout (inverted). out[i] = keep(key, offset+i) ? inp[i] / (1-p) : 0. p == 0 copies.
 * out may alias inp. `offset` lets chunks of one site use global element indices. */
void dropout_forward(float *out, const float *inp, size_t N, float p, uint32_t key, size_t offset);
/* dinp[i] = keep ? dout[i] / (1-p) : 0 (WRITES; may alias dout). */
void dropout_backward(float *dinp, const float *dout, size_t N, float p, uint32_t key, size_t offset);
/* Key of one dropout site: a hash of (seed, site). Different sites give independent masks. */
uint32_t dropout_key(uint64_t seed, uint32_t site);
/* 1 if element `index` is kept under (p, key); the primitive every dropout kernel uses. */
int dropout_keep(uint32_t key, size_t index, float p);

/* ------------------------------------------------------------------ attention.c (+ softmax, row packing) */

/* Row softmax with key mask. probs (R,T) = softmax_j(scale · scores[r,j]) over the keys j with
 * keymask[j] != 0 (keymask (T) or NULL = all keys); masked keys get probability 0.
 * At least one key must be unmasked. probs may alias scores. parallel over rows. */
void softmax_forward(float *probs, const float *scores, const float *keymask, int R, int T, float scale);
/* dscores (R,T) = scale · probs ∘ (dprobs - Σ_j dprobs·probs)  (WRITES; may alias dprobs). */
void softmax_backward(float *dscores, const float *dprobs, const float *probs, int R, int T, float scale);

/* Multi-head self-attention core (the part between the QKV and output projections).
 *   qkv  (B, T, 3C): per token [q | k | v], head h at columns h*HS .. h*HS+HS-1 of each
 *   mask (B, T) padding mask (NULL = no padding)
 *   att  (B, NH, T, T) OUT: softmax probabilities, saved for backward (NULL = not kept)
 *   ctx  (B, T, C) OUT: Σ_j dropout(att)[b,h,i,j] · v[b,j,h]   (heads concatenated, HF layout)
 * scores = q·kᵀ / sqrt(HS). The dropped-out probabilities are never stored: backward
 * recomputes them from att and the dropout key. Sequences whose mask is a prefix (right
 * padding) only touch their first Σmask keys. scratch: attention_scratch_floats(T) floats per
 * pool thread (times am_parallel_get_threads()). parallel over (b, h). */
void attention_forward(float *ctx, float *att, float *scratch, const float *qkv, const float *mask,
                       int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key);
/* dqkv (B,T,3C) WRITES. Same scratch rule. parallel over (b, h). */
void attention_backward(float *dqkv, float *scratch, const float *dctx, const float *qkv,
                        const float *att, const float *mask,
                        int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key);
size_t attention_scratch_floats(int T);
/* Attention over variable-length sequences packed back to back (no padding rows): sequence b
 * occupies rows off[b] .. off[b]+len[b]-1 of qkv (rows, 3C) and ctx (rows, C); T >= every len
 * is the padded length. att (packed probabilities) holds the (len_b, len_b) block of (b, h) at
 * att + att_off[b] + h*len_b*len_b (NULL = not kept; size and att_off from
 * attention_varlen_att_offsets). Dropout uses the element indices of the padded (B,NH,T,T)
 * layout, so it drops exactly what attention_forward would on the real tokens. scratch as
 * attention_forward. parallel over (b, h). */
void attention_forward_varlen(float *ctx, float *att, float *scratch, const float *qkv, const int *off,
                              const int *len, const size_t *att_off, int B, int T, int C, int NH,
                              float dropout_p, uint32_t dropout_key);
/* dqkv (rows, 3C) WRITES. */
void attention_backward_varlen(float *dqkv, float *scratch, const float *dctx, const float *qkv, const float *att,
                               const int *off, const int *len, const size_t *att_off, int B, int T, int C, int NH,
                               float dropout_p, uint32_t dropout_key);
/* att_off (B) OUT; returns the floats of the packed probabilities (Σ_b NH·len_b²). */
size_t attention_varlen_att_offsets(size_t *att_off, const int *len, int B, int NH);

/* Packed rows <-> padded (B, T, C): sequence b's first len[b] tokens are rows off[b]... of
 *   packed (rows, C).  seq_unpack: padded = packed rows, padding rows set to zero.
 *   seq_pack: packed (+)= the real rows of padded (accumulate = 0 writes, 1 adds). parallel. */
void seq_unpack(float *padded, const float *packed, const int *off, const int *len, int B, int T, int C);
void seq_pack(float *packed, const float *padded, const int *off, const int *len, int B, int T, int C, int accumulate);

/* ------------------------------------------------------------------ pooling.c */

/* Pooling over tokens, keeping the first D <= C channels. inp (B,T,C), mask (B,T) or NULL.
 *   mean: out[b,:] = Σ_t mask·inp[b,t,:D] / max(Σ_t mask, 1e-9)   (sentence-transformers)
 *   cls:  out[b,:] = inp[b,0,:D]
 * out (B, D). Backward accumulates into dinp (B,T,C) (first D channels). */
void pool_mean_forward(float *out, const float *inp, const float *mask, int B, int T, int C, int D);
void pool_mean_backward(float *dinp, const float *dout, const float *mask, int B, int T, int C, int D);
void pool_cls_forward(float *out, const float *inp, int B, int T, int C, int D);
void pool_cls_backward(float *dinp, const float *dout, int B, int T, int C, int D);

/* L2 normalisation of rows: out (B,D) = inp / max(‖inp‖, 1e-12) (torch F.normalize). out may
 * alias inp. Backward accumulates into dinp (B,D) (must not alias dout). */
void l2norm_forward(float *out, const float *inp, int B, int D);
void l2norm_backward(float *dinp, const float *dout, const float *inp, int B, int D);

/* ------------------------------------------------------------------ ref_kernels.c */

/* Naive loops: the oracle for tests and the readable definition of each kernel. Same
 * signatures and write/accumulate semantics as above, single-threaded, erff from libm. */
void ref_gemm(int ta, int tb, float *c, int ldc, const float *a, int lda, const float *b, int ldb,
              int M, int N, int K, float alpha, float beta);
void ref_linear_forward(float *out, const float *inp, const float *w, const float *b,
                        int N, int IC, int OC);
void ref_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int N, int IC, int OC);
void ref_embeddings_forward(float *out, const int32_t *ids, const int32_t *type_ids,
                            const float *wte, const float *wpe, const float *wtt, int B, int T, int C);
void ref_embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                             const int32_t *ids, const int32_t *type_ids, int B, int T, int C, int pad_id);
void ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C, float eps);
void ref_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C);
void ref_gelu_forward(float *out, const float *inp, size_t N);
void ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);
void ref_softmax_forward(float *probs, const float *scores, const float *keymask, int R, int T, float scale);
void ref_softmax_backward(float *dscores, const float *dprobs, const float *probs, int R, int T, float scale);
void ref_attention_forward(float *ctx, float *att, const float *qkv, const float *mask,
                           int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key);
void ref_attention_backward(float *dqkv, const float *dctx, const float *qkv,
                            const float *att, const float *mask,
                            int B, int T, int C, int NH, float dropout_p, uint32_t dropout_key);
void ref_dropout_forward(float *out, const float *inp, size_t N, float p, uint32_t key, size_t offset);
void ref_pool_mean_forward(float *out, const float *inp, const float *mask, int B, int T, int C, int D);
void ref_l2norm_forward(float *out, const float *inp, int B, int D);

#endif
