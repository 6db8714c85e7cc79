/* optim.h - AdamW over flat buffers, learning-rate schedules, global-norm gradient clipping.
 *
 * Parameters, gradients and the two moments are flat float buffers of the same layout (a Model's
 * ParamTable, or a LoRA table). An OptimGroup names the four buffers and the trainable ranges
 * (segments) inside them, each with its weight-decay flag; several groups (model + LoRA) are
 * updated as one, with one global gradient norm. Everything outside the segments is untouched.
 *
 * AdamW is torch.optim.AdamW (amsgrad off, maximize off), for update number t = 1, 2, ...:
 *   p ← p·(1 − lr·wd)                      (decoupled decay; wd = 0 on no-decay segments)
 *   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
 * with g = grad_scale · gradient (grad_scale = the clipping coefficient).
 * Defaults (adamw_config_default): lr 5e-5, β 0.9/0.999, eps 1e-8, wd 0.01 (torch's default).
 *
 * No-decay rule (HF Trainer get_decay_parameter_names): a tensor whose name contains "bias" or
 * "LayerNorm" gets no weight decay (biases, every LayerNorm weight and bias, cls.predictions.bias).
 *
 * Schedules are transformers' get_{constant,linear,cosine}_schedule_with_warmup as a LambdaLR:
 * update number k = 0, 1, ... (0-based) uses lr = base_lr · factor(k), where
 *   k < warmup:  factor = k / max(1, warmup)          (so the very first update has lr 0 when warmup > 0)
 *   linear:      max(0, (total − k) / max(1, total − warmup))
 *   cosine:      progress = (k − warmup) / max(1, total − warmup);
 *                max(0, 0.5·(1 + cos(π · cycles · 2 · progress)))      cycles = 0.5
 *   constant:    1
 *
 * Clipping is torch.nn.utils.clip_grad_norm_ (L2): coef = min(1, max_norm / (norm + 1e-6)).
 *
 * Threads: the norm and the update run on the pool with a static split of the concatenated
 * segments, so results are bit-identical run to run at a fixed thread count. The update loop is
 * AVX2/FMA vectorised (8 floats per iteration), with a scalar tail and fallback.
 */
#ifndef AM_OPTIM_H
#define AM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum { AM_SCHED_CONSTANT = 0, AM_SCHED_LINEAR = 1, AM_SCHED_COSINE = 2 };

typedef struct {
    int kind;              /* AM_SCHED_*; default LINEAR */
    int64_t warmup_steps;  /* 0 */
    int64_t total_steps;   /* number of updates of the run (linear / cosine decay to 0 at total) */
    float num_cycles;      /* cosine: 0.5 (half a cosine, from 1 to 0) */
} LRSchedule;

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWConfig;

typedef struct {
    size_t offset, numel;  /* in floats, into the group's buffers */
    uint8_t decay;         /* 1 = apply weight decay */
} OptimSegment;

typedef struct {
    float *p, *g, *m, *v;      /* (n) each; borrowed */
    const OptimSegment *seg;   /* nseg trainable ranges, ascending, non-overlapping; borrowed */
    int nseg;
} OptimGroup;

void adamw_config_default(AdamWConfig *c);
void lr_schedule_default(LRSchedule *s);
/* "constant" / "linear" / "cosine" -> AM_SCHED_*, -1 if unknown */
int lr_schedule_from_name(const char *name);

/* The multiplier of base_lr for update number `step` (0-based). */
double lr_schedule_factor(const LRSchedule *s, int64_t step);

/* 1 if the HF no-decay rule applies to this tensor name */
int optim_is_no_decay(const char *name);

/* Segments for a table: tensor i is included if trainable == NULL or trainable[i]; its decay flag
 * is !(exclude_no_decay && optim_is_no_decay(name)). Adjacent tensors with the same flag are merged.
 * Returns the count; *out is malloc'd (free it). */
int optim_segments_from_table(const ParamTable *tab, const uint8_t *trainable, int exclude_no_decay,
                              OptimSegment **out);

/* Global L2 norm of the gradients inside the segments of every group (double accumulation). parallel. */
double optim_grad_norm(const OptimGroup *groups, int ng);
/* torch clip_grad_norm_ coefficient; 1 if max_norm <= 0 (no clipping). */
float optim_clip_coef(double norm, float max_norm);

/* One AdamW update of every segment of every group: lr = the scheduled learning rate of this
 * update, t = the 1-based update count (bias correction), g scaled by grad_scale first. If
 * zero_grads, the gradients of the segments are set to 0 in the same pass. parallel. */
void adamw_update(const OptimGroup *groups, int ng, const AdamWConfig *c, float lr, int64_t t,
                  float grad_scale, int zero_grads);

/* Set the gradients of the segments to 0. parallel. */
void optim_zero_grads(const OptimGroup *groups, int ng);

#endif
