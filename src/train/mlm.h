/* mlm.h - masked language modelling: BERT's token masking and BertForMaskedLM's head.
 *
 * Masking (transformers DataCollatorForLanguageModeling, mlm_probability 0.15):
 *   every real token (mask != 0) whose id is neither pad_token_id nor one of o->special is selected
 *   with probability o->prob; a selected token becomes mask_token_id with probability mask_frac
 *   (0.8), a uniform random id in [0, V) with probability random_frac (0.1, as HF: the whole vocab),
 *   and stays unchanged otherwise (0.1). labels = the original id at selected positions, -100
 *   elsewhere (the PyTorch ignore index). Draws come from one xorshift stream seeded by `seed`,
 *   token by token in row-major order: the same seed gives the same masks everywhere.
 *
 * Head (HF BertOnlyMLMHead), on the hidden states h (N, C) of the last layer:
 *   t      = LayerNorm(gelu(h · Wtᵀ + bt))       cls.predictions.transform.{dense, LayerNorm}
 *   logits = t · wteᵀ + bias                     decoder tied to embeddings.word_embeddings.weight,
 *                                                bias = cls.predictions.bias (V)
 *   loss   = mean over labelled rows of CE(logits, label)   (0 if no row is labelled)
 * Only the labelled rows (M ≈ 0.15·N) go through the head, so the (M, V) decoder GEMMs are ~7x
 * cheaper than running the head on every token. The model needs cfg.has_mlm_head.
 */
#ifndef AM_MLM_H
#define AM_MLM_H

#include <stdint.h>

#include "loss.h"
#include "model.h"

#define AM_MLM_IGNORE (-100)

/* ids_out (N) = masked copy of ids (N); labels (N) OUT; mask (N) or NULL (all real).
 * Returns the number of selected tokens (>= 0). ids_out may alias ids. */
int mlm_mask_tokens(int32_t *ids_out, int32_t *labels, const int32_t *ids, const float *mask, int N, int V,
                    int pad_token_id, const MlmOptions *o, uint64_t seed);

typedef struct MlmHead MlmHead; /* activations and scratch, reused across calls (grow only) */

typedef struct {
    double loss;      /* mean cross-entropy over the labelled rows */
    int n_masked;     /* labelled rows */
    int n_correct;    /* of which the argmax is the label */
} MlmStats;

void mlm_head_new(MlmHead **out);
void mlm_head_delete(MlmHead *h);

/* Forward over the rows of hidden (N, C) whose label >= 0, keeping what backward needs.
 * Borrows m until the backward. AM_EINVAL if m has no MLM head or a label is outside [0, V);
 * AM_ENOMEM for the (M, V) logits. parallel. */
int mlm_head_forward(MlmHead *h, const Model *m, const float *hidden, const int32_t *labels, int N, MlmStats *out);

/* Backward of the last forward, times `scale`:
 *   dhidden (N, C) += ∂loss/∂hidden   (labelled rows only; may be NULL)
 *   grads (flat buffer of the model's table) += ∂loss/∂(head parameters), and, if grad_wte, the
 *   tied decoder's gradient into embeddings.word_embeddings.weight.
 * Destroys the saved logits (call once per forward). parallel. */
int mlm_head_backward(MlmHead *h, float *dhidden, float *grads, float scale, int grad_wte);

#endif
