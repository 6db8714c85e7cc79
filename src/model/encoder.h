/* encoder.h - the post-LN BERT encoder (Hugging Face BertModel), forward and backward.
 *
 * Architecture, exactly as transformers' BertModel (without the pooler head):
 *   h0 = dropout(LayerNorm(wte[ids] + wpe[0..T) + wtt[type_ids]))
 *   for each layer l:  a  = LayerNorm(h + dropout(SelfAttention(h, mask) · Woᵀ + bo))
 *                      h' = LayerNorm(a + dropout(gelu(a · W1ᵀ + b1) · W2ᵀ + b2))
 *   SelfAttention: per head softmax(q·kᵀ/√HS over real keys) -> attention-probs dropout -> ·v
 * with LayerNorm eps and the dropout rates from the EncoderConfig, exact (erf) GELU, absolute
 * positions 0..T-1, padding handled as tensor.h explains (padded keys excluded; padded
 * queries still computed, so every hidden state matches HF). Dims legend: see model.h.
 *
 * Memory: activations live in one arena owned by the Encoder, laid out for the (B, T) of
 * each call and REUSED: it only grows (never shrinks) when a call needs more than any before.
 * Nothing is allocated per step once the largest shape has been seen.
 *
 * Threads: every kernel runs on the pool in src/tensor (am_parallel_set_threads). An Encoder
 * is not thread-safe; use one per thread (they can share a const Model). Results are
 * bit-identical run to run and between 1 and 2 threads (fixed chunking, counter-based
 * dropout); encoder_backward must run at the thread count of its encoder_forward.
 *
 * Speed: every linear layer is one GEMM fused with its epilogue (bias, GELU, dropout +
 * residual + LayerNorm) on row chunks while they are in cache; Q, K, V are one (3C, C) GEMM;
 * attention runs per (sequence, head) with the softmax between its two products; padded keys
 * are skipped; encoder_embed computes the real tokens only (see there), and so does training
 * with encoder_set_skip_padding.
 */
#ifndef AM_ENCODER_H
#define AM_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct Encoder Encoder;

/* Pooling over tokens: the one enum for the encoder, the trainer, HfInfo (io/hf.h) and the
 * option strings of the CLI and Lua (pool_names is indexed by it, NULL-terminated as
 * luaL_checkoption wants). */
typedef enum { AM_POOL_MEAN = 0, AM_POOL_CLS = 1 } AmPooling;
extern const char *const pool_names[3]; /* "mean", "cls", NULL */

/* The four linear layers of a BERT layer, in forward order (for adapters such as LoRA). */
enum { AM_LIN_QKV = 0, AM_LIN_ATTN_OUT = 1, AM_LIN_FFN_IN = 2, AM_LIN_FFN_OUT = 3, AM_LIN_COUNT = 4 };

/* Borrow m (it must outlive the encoder). Parameters are read from m->params at every call,
 * so an optimiser may update them in place between steps. AM_OK (no failure mode beyond
 * aborting on a small allocation; activations are allocated by the first forward). */
int encoder_new(const Model *m, Encoder **out);
void encoder_delete(Encoder *e);

/* Forward pass over a batch, keeping every activation needed by encoder_backward.
 *   ids      (B, T) token ids in [0, V)
 *   type_ids (B, T) token type ids in [0, TV), or NULL = all 0
 *   mask     (B, T) 1 = token, 0 = padding, or NULL = no padding. Every sequence needs at
 *            least one real token ([CLS] is always there).
 *   training 1 = dropout on (hidden and attention-probability dropout, rates from the config,
 *            masks from `seed`: the same seed gives the same masks at any thread count);
 *            0 = eval (no dropout; backward still works, e.g. for gradient checks)
 * Errors: AM_ESHAPE (B or T < 1, T > max_position), AM_EINVAL (id / type id out of range,
 * naming the value and position; an all-padding sequence), AM_ENOMEM (activations). */
int encoder_forward(Encoder *e, const int32_t *ids, const int32_t *type_ids, const float *mask,
                    int B, int T, int training, uint64_t seed);

/* Hidden states (B, T, C) of the last encoder_forward: layer 0 = embeddings output (after
 * LayerNorm and dropout), layer L = last layer. Borrowed: valid until the next
 * encoder_forward / encoder_embed on this encoder. NULL if layer is out of range, or the last
 * call was encoder_embed or failed (use encoder_pool_hidden after encoder_embed). */
const float *encoder_hidden(const Encoder *e, int layer);
/* (B, T) of the last forward, and the model. */
void encoder_shape(const Encoder *e, int *B, int *T);
const Model *encoder_model(const Encoder *e);

/* Backward pass of the last encoder_forward.
 *   dhidden  L+1 entries; dhidden[l] is the loss gradient w.r.t. encoder_hidden(e, l),
 *            (B, T, C), or NULL where the loss does not touch that layer. Not modified.
 *   grads    flat gradient buffer laid out by the model's ParamTable (same size as params);
 *            gradients are ACCUMULATED (+=): zero it yourself at the start of a step.
 * Layers above the highest non-NULL dhidden are skipped; the pooler (if present) gets no
 * gradient, and neither does the word-embedding row of pad_token_id (HF's padding_idx).
 * Can be called more than once per forward (e.g. two losses), each call adds.
 * Errors: AM_EINVAL if there is no forward to differentiate (encoder_embed does not count). */
int encoder_backward(Encoder *e, const float *const *dhidden, float *grads);

/* Inference in one call: eval-mode forward up to `layer` (0..L, or -1 = L), pooling of that
 * layer's hidden states over the mask (AM_POOL_MEAN / AM_POOL_CLS), keep the first `dim`
 * features (1..C, or 0 = C), then L2-normalise if `normalize`.
 *   out (B, dim) OUT.
 * Uses less memory than encoder_forward (one layer's activations, no backward state). When
 * every mask is a prefix (right padding, what tokenizers produce), padded tokens are not
 * computed at all: the rows of the real tokens are packed back to back, which gives the same
 * embeddings (padded positions never influence real ones) and saves the padding's share of
 * the work. Same errors as encoder_forward, plus AM_EINVAL for pooling / layer / dim. */
int encoder_embed(Encoder *e, const int32_t *ids, const int32_t *type_ids, const float *mask,
                  int B, int T, int pooling, int normalize, int layer, int dim, float *out);

/* Pool (and normalise) another computed layer of the last encoder_embed / encoder_forward:
 * one pass gives every (layer, dim) embedding of a 2D-Matryoshka grid, e.g.
 *   encoder_embed(e, ..., layer = L, ...); for l < L: encoder_pool_hidden(e, l, ...).
 * Same arguments as encoder_embed. AM_EINVAL if the layer was not computed in that pass. */
int encoder_pool_hidden(const Encoder *e, int layer, int pooling, int normalize, int dim, float *out);

/* ---- pooling over tokens (thin dispatch over the tensor kernels) ----
 * out (B, D) = pooled inp (B, T, C) keeping the first D <= C channels; mask (B,T) or NULL.
 * pool_backward ACCUMULATES into dinp (B, T, C). l2norm_forward / l2norm_backward (tensor.h)
 * normalise rows. AM_EINVAL for an unknown pooling or bad D. */
int pool_forward(float *out, const float *inp, const float *mask, int B, int T, int C, int D, int pooling);
int pool_backward(float *dinp, const float *dout, const float *mask, int B, int T, int C, int D, int pooling);
/* "mean" / "cls" -> AM_POOL_*; -1 if unknown (or NULL). */
int pool_from_name(const char *name);
/* AM_POOL_* -> "mean" / "cls"; NULL if unknown. Static storage. */
const char *pool_name(int pooling);

/* ---- extension points for training (issue 4) ---- */

/* Where an adapter call happens. */
typedef struct {
    int layer, which;   /* which linear (AM_LIN_*) of which layer */
    int training;       /* as passed to encoder_forward */
    uint64_t seed;      /* as passed to encoder_forward */
    int N, IC, OC;      /* rows of the whole batch (B*T), in / out features */
} EncoderLinearInfo;

/* An adapter adds a learned delta to chosen linear layers (LoRA: out += s·(x·Aᵀ)·Bᵀ).
 *   active(ud, layer, which)   nonzero if the adapter touches that linear
 *   forward: out (rows, OC) += delta(inp (rows, IC)) for rows row0..row0+rows of the batch.
 *            Called on pool threads on disjoint chunks right after the base GEMM (bias
 *            included) and before GELU / dropout / residual / LayerNorm: thread-safe and
 *            single-threaded please; blas_gemm_* are fine, the linear_* kernels are not
 *            (they reuse the caller's packing scratch). Rows are the B*T tokens of the batch
 *            (encoder_embed with right padding passes only the real tokens, packed).
 *   backward: called once per active linear from the calling thread (may use the pool):
 *            dinp (N, IC) += ∂(delta)/∂inp given dout (N, OC), and accumulate the adapter's
 *            own parameter gradients. inp is the (N, IC) input the forward saw. dinp is NULL
 *            when no gradient is needed below this linear (frozen layers and embeddings
 *            underneath): still accumulate the adapter's own gradients. */
typedef struct {
    void *ud;
    int (*active)(void *ud, int layer, int which);
    void (*forward)(void *ud, const EncoderLinearInfo *li, float *out, const float *inp, int rows, size_t row0);
    void (*backward)(void *ud, const EncoderLinearInfo *li, float *dinp, const float *dout, const float *inp);
} EncoderAdapter;

/* Skip padding in training too (default off). With right padding (every mask a prefix),
 * encoder_forward / encoder_backward then compute only the real tokens, packed back to back:
 * faster in proportion to the padding. Exact (same hidden states on real tokens, same
 * parameter gradients up to rounding) for every loss that gives padded positions no gradient
 * (mean / CLS pooling over the mask, MLM on real tokens). What changes: encoder_hidden
 * returns zeros at padded positions (not BertModel's values there), gradients given at
 * padded positions are ignored, and the hidden-dropout masks differ from the padded mode
 * (still a function of the seed). encoder_embed packs regardless of this flag. */
void encoder_set_skip_padding(Encoder *e, int on);

/* Attach (copied) or detach (NULL) an adapter. */
void encoder_set_adapter(Encoder *e, const EncoderAdapter *a);

/* Which parameter tensors need gradients: trainable[i] for tensor i of the ParamTable
 * (0 = frozen), or NULL = everything (the default). Weight GEMMs of frozen linears are
 * skipped, and so is the whole backward below the lowest layer that still needs a gradient
 * (no trainable tensor and no active adapter further down). Copied. */
void encoder_set_trainable(Encoder *e, const uint8_t *trainable);

#endif
