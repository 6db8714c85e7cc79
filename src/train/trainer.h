/* trainer.h - one training step of the encoder: forward, loss, backward, accumulation, clipping,
 * schedule and AdamW, with state save / load for exact resume. The Lua trainer drives it.
 *
 * A Trainer borrows a Model (its parameters are updated in place) and owns everything else: the
 * gradient buffer and the two AdamW moments (flat, the model's ParamTable layout), one Encoder,
 * the optional LoRA adapters with their own gradients and moments, the MLM head's scratch, the
 * step counters and a snapshot θ0 of the parameters at creation (for the task vector).
 *
 * One call = one micro-batch:
 *   1. the batch's token groups are concatenated into ONE encoder forward (rows padded to the
 *      longest group with pad_token_id and mask 0; the encoder excludes padded keys, so results
 *      equal separate forwards), in training mode (dropout from the config);
 *   2. the hidden states of every layer the loss needs are pooled (mean / CLS); the LossSpec is
 *      evaluated on them (loss.h) — 2D Matryoshka pools several layers of the SAME forward;
 *      MLM runs the tied head on the masked tokens (mlm.h);
 *   3. gradients flow back through the loss, the pooling, every touched layer, into the flat
 *      gradient buffer (and the LoRA buffer), scaled by 1/grad_accum;
 *   4. every grad_accum-th call: global gradient norm, clipping, the scheduled lr, the AdamW
 *      update of the trainable tensors (gradients zeroed in the same pass), step += 1.
 * Only tensors that receive a gradient are updated (as torch skips parameters whose .grad is
 * None): the pooler never, the MLM head only in windows that contained an MLM micro-batch.
 *
 * Seeds: micro-batch (step, micro) uses seed' = hash(run seed, step, micro) for dropout, the MLM
 * masks and the RANDOM_2D draw; LoRA init uses the run seed. So a run is a pure function of
 * (model, config, batches), bit-identical at a fixed thread count, and the state blob (which
 * holds step and micro) resumes it exactly.
 *
 * Errors: AM_EINVAL (batch / spec mismatch, with the option named), AM_ESHAPE (sequence too long),
 * AM_ENOMEM, and AM_EFORMAT for a non-finite loss or gradient norm: then NOTHING is updated, the
 * partial accumulation window is discarded (gradients zeroed, micro = 0) and the step counter does
 * not move; the message names the step and the loss terms.
 */
#ifndef AM_TRAINER_H
#define AM_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "lora.h"
#include "loss.h"
#include "mlm.h"
#include "model.h"
#include "optim.h"

/* Tokens of one group of sequences (field-compatible with src/text's TokenBatch). */
typedef struct {
    const int32_t *ids;       /* (B, T) */
    const int32_t *type_ids;  /* (B, T) or NULL = all 0 */
    const float *mask;        /* (B, T) 1 = token, 0 = padding; NULL = no padding */
    int B, T;                 /* B = 0: the group is absent */
} TrainTokens;

/* A micro-batch. Layout as loss.h: n = a.B examples.
 *   contrastive: a = n queries, pos = n·P positives (query-major), neg = n·K hard negatives
 *                (query-major, B = 0 if none), scores NULL (or gold for a thresholded InfoNCE);
 *   graded:      a = n sentence1, pos = n sentence2, scores = n gold scores;
 *   MLM:         a = the text; pos / neg absent. */
typedef struct {
    TrainTokens a, pos, neg;
    const float *scores;      /* (n) or NULL */
    const uint8_t *cand;      /* (pos.B + neg.B) 0 = a padding row (a query with fewer positives /
                                 negatives than the batch's P / K: loss.h's LossInput.cand), NULL = all real */
} TrainBatch;

typedef struct {
    uint64_t seed;            /* run seed (42) */
    AmPooling pooling;        /* AM_POOL_MEAN (default) or AM_POOL_CLS */
    int dropout;              /* 1 = the model's dropout rates (and LoRA's) in training steps, 0 = none */
    AdamWConfig adamw;        /* lr 5e-5, betas 0.9/0.999, eps 1e-8, wd 0.01 */
    int no_decay_bias_ln;     /* 1 = no weight decay on biases and LayerNorm (HF Trainer) */
    LRSchedule sched;         /* linear, warmup 0, total_steps 0 (= constant after warmup if 0) */
    float max_grad_norm;      /* 1.0 (HF default); <= 0 = no clipping */
    int grad_accum;           /* micro-batches per update (1) */
    int train_base;           /* 1 = the base model's tensors train (full fine-tuning); 0 = frozen */
    const uint8_t *trainable; /* per tensor of the model's table (NULL = all); copied at creation */
    LoraConfig lora;          /* rank 0 = no LoRA */
    int keep_theta0;          /* 1 = keep θ0 for trainer_task_vector (one more model-sized buffer) */
    int skip_padding;         /* 1 = the encoder computes only real tokens when every mask is right
                                 padding (encoder_set_skip_padding): exact for these losses, faster
                                 in proportion to the padding; dropout masks differ from 0 */
} TrainConfig;

void train_config_default(TrainConfig *c);

#define AM_TRAIN_MAX_TERMS AM_LOSS_MAX_TERMS

typedef struct {
    double loss;              /* this micro-batch's loss (not divided by grad_accum) */
    LossResult terms;         /* its terms (MLM: one term "mlm") */
    int updated;              /* 1 if this call applied an optimiser update */
    int64_t step;             /* updates done after this call */
    double grad_norm;         /* global norm before clipping (if updated) */
    float clip_coef;          /* applied to the gradients (if updated) */
    double lr;                /* lr of this update (if updated) or of the next one */
    int64_t tokens;           /* real tokens in the micro-batch */
    int sequences;
    int mlm_masked, mlm_correct; /* MLM: masked tokens and argmax hits */
    double ms_forward, ms_loss, ms_backward, ms_optim; /* wall time of the parts (loss: pooling,
                                    loss, MLM head forward+backward, pooling backward) */
} StepStats;

typedef struct Trainer Trainer;

/* Borrow m (it must outlive the trainer; its parameters are updated in place). With cfg->lora.rank
 * > 0, LoRA adapters are created and initialised from the seed. AM_EINVAL (bad config), AM_ENOMEM. */
int trainer_new(Model *m, const TrainConfig *cfg, Trainer **out);
void trainer_delete(Trainer *t);

/* One micro-batch (see the top). out may be NULL. */
int trainer_step(Trainer *t, const TrainBatch *b, const LossSpec *loss, StepStats *out);

/* The gradient of the loss of one batch at the current parameters, without an update: grad
 * (model-sized, may be NULL) = ∂loss/∂θ (unscaled by grad_accum; zero for frozen tensors), out
 * as trainer_step's (its loss). No step, no accumulation, no state change (the merges'
 * statistics, src/api/merge_stats.h; use dropout = 0 for deterministic values). AM_EINVAL in
 * the middle of an accumulation window or with LoRA; trainer_step's errors. */
int trainer_gradient(Trainer *t, const TrainBatch *b, const LossSpec *loss, float *grad, StepStats *out);

/* Borrowed views, valid until trainer_delete. The encoder has the LoRA adapters attached, so
 * encoder_embed on it evaluates the adapted model. */
Encoder *trainer_encoder(Trainer *t);
Lora *trainer_lora(Trainer *t);                 /* NULL without LoRA */
const TrainConfig *trainer_config(const Trainer *t); /* its trainable pointer is NULL */
int64_t trainer_steps(const Trainer *t);         /* updates done */
/* Move the end of the lr schedule to `total` updates (resuming a run with a higher step target):
 * warm-up stays, the decay is recomputed for the new total, as Hugging Face's Trainer does when
 * a checkpoint is resumed with more steps. AM_EINVAL if total < the updates done (or < 1). */
int trainer_set_total_steps(Trainer *t, int64_t total);

/* out (model-sized) = θ with the LoRA adapters merged (W += (alpha/r)·B·A): the model to save. */
void trainer_merged_params(Trainer *t, float *out);
/* out (model-sized) = merged θ − θ0: the task vector. AM_EINVAL if θ0 was not kept. */
int trainer_task_vector(Trainer *t, float *out);

/* The whole state in one flat blob (malloc'd, caller frees): config, counters, parameters,
 * moments, LoRA, the pending accumulation (if mid-window) and θ0 (if kept). Little-endian,
 * "AMTS" + version header. */
int trainer_state_save(const Trainer *t, void **blob, size_t *len);
/* Restore into a trainer made for the same model shape (and the same LoRA shape, if any): the
 * model's parameters, the config (seed, optimiser, schedule, masks, accumulation) and all state are
 * replaced, so stepping on continues the saved run bit for bit. θ0 comes from the blob when it has
 * one, else it becomes the loaded parameters. Nothing changes on error: AM_EFORMAT (bad blob: magic,
 * version, checksum, size, config), AM_ESHAPE (other model / LoRA shape, LoRA rank/alpha/dropout). */
int trainer_state_load(Trainer *t, const void *blob, size_t len);

#endif
