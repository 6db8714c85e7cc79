/* merge_stats.h - the statistics the data-driven merges need (src/merge/merge_data.h), gathered
 * by running the encoder: losses and gradients of a task loss on a sample, diagonal Fisher
 * (squared gradients), Gram matrices of every linear layer's inputs, and the Self Positioning
 * search (its probe loss and gradient at each θ(λ)).
 *
 * A probe is one micro-batch with its task's loss (trainer.h's TrainBatch and loss.h's
 * LossSpec); a sample is a list of them, e.g. a few batches of each task's training data. The
 * trainer should be made with dropout = 0 (deterministic statistics); its model's parameters
 * are what is measured (merge_stats_self_position overwrites them with each θ(λ)).
 *
 * Fisher: the empirical Fisher of a micro-batch is the square of its mean-loss gradient; the
 * diagonal is averaged over the probes (batches of 1 give the per-example estimate).
 * Grams: G = XᵀX / N over every real token of the texts (N rows), eval mode; one Gram per
 * linear of the encoder: query, key and value share their input's.
 */
#ifndef AM_MERGE_STATS_H
#define AM_MERGE_STATS_H

#include "merge_data.h"
#include "trainer.h"

typedef struct {
    const TrainBatch *batch;
    const LossSpec *loss;
} MergeProbe;

/* Mean loss over the probes; grad (may be NULL) = the mean gradient. */
int merge_stats_loss_grad(Trainer *t, const MergeProbe *p, int n, double *loss, float *grad);
/* fisher (model-sized) = mean over probes of grad²; loss (may be NULL) = mean loss. */
int merge_stats_fisher(Trainer *t, const MergeProbe *p, int n, float *fisher, double *loss);

typedef struct {
    int n_lin;
    int lin[4 * AM_MAX_LAYERS];  /* tensor indices (merge_linear_tensors' order) */
    double *G[4 * AM_MAX_LAYERS]; /* (in x in) each, owned */
    size_t rows;                 /* N */
} MergeGrams;
void merge_grams_free(MergeGrams *g);

/* The Grams of model m over texts (n token groups). AM_EINVAL for no tokens. */
int merge_stats_grams(const Model *m, const TrainTokens *texts, int n, MergeGrams *out);

/* Self Positioning on the probes: t's model is the work buffer (overwritten with θ(λ) at
 * every step; θ(λ*) at the end, also in out). See merge_self_position. */
int merge_stats_self_position(const MergeSpConfig *c, Trainer *t, const float *base, const float *const *taus,
                              int k, const MergeProbe *p, int n, double *lambda, float *out, MergeSpTrace *trace);

#endif
