/* merge_data.h - the data-driven merges, computed from statistics gathered on data.
 *
 * This layer never runs a model: the statistics (Fisher diagonals, Gram matrices, losses,
 * gradients of a merged model) come from src/api/merge_stats.h, which runs the encoder; here
 * they are combined. Buffers are laid out by one ParamTable (src/model/model.h), as merge.h's.
 *
 *   fisher          θ = Σ w_k (F_k + ε) θ_k / Σ w_k (F_k + ε), per element (Matena & Raffel,
 *                   arXiv 2111.09832; bloomberg/dataless-model-merging avg_merger.py:
 *                   fisher_smooth ε = 1e-10). F_k = mean of squared gradients of model k's own
 *                   task loss over a sample.
 *   regmean         per linear weight W (out, in): W = (Σ_k G̃_k)⁻¹ Σ_k G̃_k W_kᵀ, transposed
 *                   back, G̃ = diag(G) + α·offdiag(G) (regmean_reduce_nondiag; α = 0.9 as the
 *                   paper), G_k = X_kᵀX_k / N of that linear's inputs under model k (Jin et al.,
 *                   ICLR 2023). LAPACK dposv (dgesv if not positive definite). Every other tensor
 *                   (biases, LayerNorm, embeddings) is the weighted average.
 *   lm_cocktail     weights w = softmax(−loss_k / T) (T = 5, FlagEmbedding's LM_Cocktail
 *                   compute_weights), then θ = Σ w_k θ_k.
 *   codiemb_fusion  θ = θ0 + Σ_c ω_c δ_c, δ_c = θ_c − θ0, ω_c ∝ g(|δ_c|) normalised over the
 *                   checkpoints c (CoDiEmb arXiv 2508.11442's delta-guided fusion; its code is not
 *                   published, so g and the axis are options): g = abs | square | softmax (ω =
 *                   softmax_c(|δ_c| / T)); axis = element | row | tensor (|δ| averaged over the
 *                   row / tensor first). Where every g is 0 the weights are uniform.
 *   self positioning θ(λ) = θ0 + Σ_k λ_k τ_k with λ learned on a probe set (Li et al., arXiv
 *                   2410.15035): ∂L/∂λ_k = ⟨∇θ L(θ(λ)), τ_k⟩ (per layer group: the dot restricted
 *                   to the group), plus a regulariser μ‖λ − 1/K‖² or μ‖λ‖², SGD or Adam, and an
 *                   optional projection of each group's λ onto the simplex {λ ≥ 0, Σ λ = 1}.
 *
 * Errors: AM_EINVAL (bad option, count, non-finite weight or statistic, negative Fisher, all
 * weights zero), AM_EFORMAT (NaN / Inf in a model), AM_ESHAPE (a Gram of the wrong size),
 * AM_ENOMEM. Messages name the model and tensor.
 */
#ifndef AM_MERGE_DATA_H
#define AM_MERGE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* ---- Fisher ---- */
/* out = Σ w_k (F_k + eps) θ_k / Σ w_k (F_k + eps). weights NULL = 1 each; eps ≥ 0 (1e-10). */
int merge_fisher(const ParamTable *tab, int k, const float *const *models, const float *const *fisher,
                 const double *weights, double eps, float *out);
/* The authors' fisher_normalize (bloomberg/dataless-model-merging avg_merger.py): each model's
 * weight times c_k = (1 / (‖F_k‖ + eps)) / Σ_j 1 / (‖F_j‖ + eps), ‖F_k‖ the L2 norm of its Fisher
 * over each tensor (PARAM) or over the whole model (MODEL), so a model with a larger Fisher
 * does not dominate by scale alone. NONE = merge_fisher. */
typedef enum { MERGE_FISHER_NORM_NONE, MERGE_FISHER_NORM_PARAM, MERGE_FISHER_NORM_MODEL } MergeFisherNorm;
int merge_fisher_norm_from_name(const char *name, MergeFisherNorm *n); /* "none" | "param" | "model" */
int merge_fisher_normalized(const ParamTable *tab, int k, const float *const *models, const float *const *fisher,
                            const double *weights, double eps, MergeFisherNorm norm, float *out);

/* ---- RegMean ---- */
/* The 2-D weights of the encoder's linear layers (query, key, value, attention output,
 * intermediate, output of each layer; also pooler.dense): tensor indices into tab, at most cap.
 * in_features = shape[1]. Returns the count. */
int merge_linear_tensors(const ParamTable *tab, int *idx, int cap);

/* grams[k * n_lin + j]: model k's Gram (in x in, double, symmetric) for tensor lin[j];
 * out as above; weights (NULL = 1) scale each model's Gram and the averaged tensors. */
int merge_regmean(const ParamTable *tab, int k, const float *const *models, int n_lin, const int *lin,
                  const double *const *grams, double alpha, const double *weights, float *out);

/* ---- LM-Cocktail ---- */
/* w = softmax(−loss / T), T > 0. */
int merge_lm_cocktail_weights(const double *loss, int k, double T, double *w);

/* ---- CoDiEmb delta-guided fusion ---- */
typedef enum { MERGE_G_ABS, MERGE_G_SQUARE, MERGE_G_SOFTMAX } MergeFusionG;
typedef enum { MERGE_AXIS_ELEMENT, MERGE_AXIS_ROW, MERGE_AXIS_TENSOR } MergeFusionAxis;
int merge_fusion_g_from_name(const char *name, MergeFusionG *g);       /* "abs" | "square" | "softmax" */
int merge_fusion_axis_from_name(const char *name, MergeFusionAxis *a); /* "element" | "row" | "tensor" */
/* T > 0 for softmax (ignored otherwise). */
int merge_codiemb_fusion(const ParamTable *tab, int k, const float *const *models, const float *base,
                         MergeFusionG g, double T, MergeFusionAxis axis, float *out);

/* ---- Self Positioning ---- */
typedef enum { MERGE_SP_REG_NONE, MERGE_SP_REG_UNIFORM, MERGE_SP_REG_ZERO } MergeSpReg;

typedef struct {
    int per_layer;      /* 0: one λ per task vector; 1: one per (task vector, layer group) */
    int steps;          /* 100 */
    double lr;          /* 5e-3 (the third-party reproduction's) */
    int adam;           /* 1 = Adam (β 0.9 / 0.999, eps 1e-8), 0 = SGD */
    double mu;          /* regulariser weight (0) */
    MergeSpReg reg;     /* MERGE_SP_REG_UNIFORM: μ Σ (λ − 1/K)²; ZERO: μ Σ λ² */
    int simplex;        /* project each group's λ onto the simplex after every step */
    int clamp;          /* clip each λ to [0, 1] after every step (AdaMerging clamps λ to [0, 1]) */
    double init;        /* initial λ (NaN = 1/K) */
} MergeSpConfig;
void merge_sp_config_default(MergeSpConfig *c);

/* Layer groups: 0 = embeddings, 1 + l = encoder.layer.l, n_layers + 1 = the rest (pooler, head).
 * n_groups = n_layers + 2 with per_layer, else 1. */
int merge_sp_groups(const MergeSpConfig *c, int n_layers);
int merge_sp_group_of(const char *tensor_name, int n_layers);

/* out = base + Σ_k λ[k * G + g(tensor)] τ_k. */
void merge_sp_apply(const ParamTable *tab, int n_layers, int G, int k, const float *base,
                    const float *const *taus, const double *lambda, float *out);
/* dlambda[k * G + g] = ⟨grad, τ_k⟩ restricted to group g. */
void merge_sp_grad(const ParamTable *tab, int n_layers, int G, int k, const float *const *taus,
                   const float *grad, double *dlambda);
/* Euclidean projection of v (n) onto {x ≥ 0, Σ x = 1}. */
void merge_simplex_project(double *v, int n);

/* The probe loss and its gradient at θ: *loss, grad (tab->total floats, overwritten). */
typedef int (*MergeLossGrad)(void *ud, const float *theta, double *loss, float *grad);

typedef struct {
    int steps, K, G;
    double *lambda;     /* (steps + 1) x K x G: λ before each step and the final one */
    double *loss;       /* (steps + 1): probe loss (without the regulariser) at each λ */
    double seconds;
} MergeSpTrace;
void merge_sp_trace_free(MergeSpTrace *t);

/* Learn λ (k x G, OUT: lambda) and write θ(λ) to out. The callback is called steps + 1 times
 * (the last for the final λ's loss). trace may be NULL. */
int merge_self_position(const MergeSpConfig *c, const ParamTable *tab, int n_layers, int k, const float *base,
                        const float *const *taus, MergeLossGrad fn, void *ud, double *lambda, float *out,
                        MergeSpTrace *trace);

#endif
