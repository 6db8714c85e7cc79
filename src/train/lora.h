/* lora.h - LoRA adapters on the encoder's linear layers (PEFT LoraConfig semantics).
 *
 * For a targeted linear y = x·Wᵀ + b (W (OC, IC)), LoRA adds
 *   y += s · (dropout(x) · Aᵀ) · Bᵀ         A (r, IC), B (OC, r), s = alpha / r
 * Init as PEFT (init_lora_weights=True): A ~ kaiming_uniform(a=√5) = U(−1/√IC, 1/√IC) like
 * nn.Linear, B = 0, so the adapted model starts equal to the base.
 *
 * Targets (PEFT module names in a BertModel): query, key, value, attention.output.dense,
 * intermediate.dense, output.dense. Our encoder fuses query/key/value into one (3C, C) linear;
 * each of q, k, v is still its own adapter acting on its third of the fused output columns
 * (rows of W), exactly as PEFT's separate modules. Default targets: query + value (PEFT's BERT
 * default). `layers` selects layers (bit l = layer l; 0 = all).
 * Dropout (lora_dropout) applies to the adapter's input only, with its own counter-based mask
 * per (step seed, layer, target); 0 at eval.
 *
 * Parameters live in one flat buffer described by a ParamTable whose names follow PEFT without
 * the "base_model.model." prefix and adapter name: "encoder.layer.0.attention.self.query.lora_A.weight"
 * (r, IC) and "...lora_B.weight" (OC, r), A then B per target, targets in layer order.
 *
 * Usage: lora_new, lora_init (or load params), lora_attach(encoder) before encoder_forward;
 * lora_prepare(l, B*T) before every forward with grad (sizes the saved activations); the
 * encoder's backward then accumulates into lora_grads(). Merge with lora_merge for saving.
 */
#ifndef AM_LORA_H
#define AM_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "model.h"

enum {
    AM_LORA_QUERY = 1 << 0, AM_LORA_KEY = 1 << 1, AM_LORA_VALUE = 1 << 2,
    AM_LORA_ATTN_OUT = 1 << 3,  /* attention.output.dense */
    AM_LORA_FFN_IN = 1 << 4,    /* intermediate.dense */
    AM_LORA_FFN_OUT = 1 << 5,   /* output.dense */
    AM_LORA_ALL = 63,
};

typedef struct {
    int rank;            /* r >= 1 (0 = LoRA off, for configs that embed this) */
    float alpha;         /* scaling = alpha / r; PEFT default 8 */
    float dropout;       /* lora_dropout in [0, 1); 0 */
    unsigned targets;    /* AM_LORA_* bits; default QUERY | VALUE */
    uint64_t layers;     /* bit l = layer l; 0 = every layer */
} LoraConfig;

typedef struct Lora Lora;

void lora_config_default(LoraConfig *c);  /* PEFT: rank 8, alpha 8, dropout 0, query + value, all layers */
/* "query" "key" "value" "attention.output" "intermediate" "output" -> bit; 0 if unknown */
unsigned lora_target_from_name(const char *name);

/* Create adapters for m (borrowed: must outlive the Lora). Parameters zeroed (call lora_init).
 * AM_EINVAL for a bad config (rank outside [1, 256], no target, dropout outside [0,1), layer bits
 * past L). */
int lora_new(const Model *m, const LoraConfig *c, Lora **out);
void lora_delete(Lora *l);
const LoraConfig *lora_config(const Lora *l);

/* PEFT init from a seed: A uniform(±1/√IC), B = 0. */
void lora_init(Lora *l, uint64_t seed);

/* Flat buffers (table order): parameters and their gradients, lora_table(l)->total floats each.
 * Borrowed, valid until lora_delete. */
const ParamTable *lora_table(const Lora *l);
float *lora_params(Lora *l);
float *lora_grads(Lora *l);

/* Attach to an encoder (encoder_set_adapter; encoder_set_adapter(e, NULL) detaches). The
 * encoder must use l's model. */
void lora_attach(Lora *l, Encoder *e);
/* Size the saved activations for a forward over N = B*T rows. AM_ENOMEM. Call before every
 * encoder_forward whose backward you will run (cheap when the size did not grow). */
int lora_prepare(Lora *l, int N);

/* params (a Model-shaped flat buffer) += s · B·A on every target: W_target += (alpha/r)·B·A. */
void lora_merge(const Lora *l, float *params);

/* delta (Model-shaped flat buffer) += s · B·A on every target (the adapters as a task vector). */
void lora_delta(const Lora *l, float *delta);

/* 1 if some adapter sits on (layer, which) (AM_LIN_*). */
int lora_active(const Lora *l, int layer, int which);

#endif
