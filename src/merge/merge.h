/* merge.h - merging K encoders that share one parameter table, without data.
 *
 * Methods and their defaults follow mergekit (arcee-ai/mergekit, mergekit/merge_methods/ *.py,
 * mergekit/sparsify.py); the method names, parameter names and defaults are mergekit's, so a
 * mergekit YAML translates one to one. Every method works per tensor on flattened buffers:
 *
 *   linear            Σ w_m θ_m / Σ w_m (model soup; normalize=true by default)
 *   task_arithmetic   θ_b + λ Σ w_m δ_m, δ_m = θ_m − θ_b (normalize=false: no division by Σ w)
 *   ties              δ_m kept at its top-`density` magnitudes (per tensor), weighted, sign
 *                     elected per element as sign(Σ w_m δ_m) (≥ 0 → +), disjoint mean over the
 *                     agreeing entries (divided by Σ w_m over them; normalize=true), × λ, + θ_b
 *   dare_linear       δ_m Bernoulli(density)-masked, rescaled, then task arithmetic
 *   dare_ties         the same masks, then TIES' sign election and disjoint sum (normalize=false)
 *   della             per row, keep probability from density−ε (smallest |δ|) to density+ε
 *                     (largest) by magnitude rank; rescaled; TIES consensus (normalize=true)
 *   della_linear      the same without consensus (normalize=false)
 *   breadcrumbs       drop the top-γ largest and then the smallest |δ| down to `density`;
 *                     task arithmetic (normalize=false, rescale=false)
 *   breadcrumbs_ties  the same masks with TIES consensus
 *   slerp             2 models; the first is the base (t=0 returns it), the second is t=1;
 *                     SLERP of the flattened tensors, lerp when |cos| > 0.9995
 *   nuslerp           2 models (+ optional base: then on task vectors), t = w_2/(w_1+w_2);
 *                     flattened (nuslerp_flatten=1) or per row (nuslerp_row_wise=1) or per
 *                     column (both 0); lerp where sin θ < 1e-8
 *   multislerp        K ≥ 2, optional base; barycentric SLERP through the tangent space at the
 *                     normalised weighted mean of the unit vectors (BOOM's merge; mergekit's
 *                     multislerp.py): result scaled by Σ w_m ‖x_m‖; normalize=true makes Σw=1
 *   karcher           K ≥ 2; iterated Riemannian mean of the unit vectors (max_iter 10, tol
 *                     1e-5), scaled by Σ α_m ‖θ_m‖ with equal α (mergekit ignores weights; so do we)
 *   model_stock       base + K ≥ 2; t = K·cosθ / (1 + (K−1)·cosθ), cosθ = mean pairwise cosine
 *                     of the δ_m (per tensor, or per row with filter_wise=1);
 *                     θ = t·mean(θ_m) + (1−t)·θ_b
 *
 * Sparsification (ties/dare/della/breadcrumbs) is per tensor per model, as mergekit's; with
 * rescale=true the kept entries are scaled to give the L1 norm of the unmasked δ (mergekit).
 *
 * Where mergekit departs from the papers, `paper = 1` gives the paper's behaviour instead
 * (default 0 = mergekit's):
 *   - TIES / DARE-TIES / DELLA / breadcrumbs_ties: mergekit elects the sign on the *weighted*
 *     task vectors (mergekit issue #474); the paper elects on the unweighted trimmed vectors
 *     and applies the weights after. paper=1 elects on Σ δ_m.
 *   - DARE / DELLA rescale: mergekit preserves the tensor's L1 norm; the papers divide the
 *     kept entries by the keep probability (1/density for DARE, 1/p_i for DELLA). paper=1.
 *
 *   - DARE / DELLA paper=1 without rescale keeps the survivors as they are; magnitude methods
 *     (TIES, breadcrumbs) never rescale in paper mode (the papers do not).
 * Small departures from mergekit, where it fails or is ill-defined:
 *   - TIES keeps at least one entry per tensor (mergekit asserts int(density·n) > 0);
 *   - breadcrumbs keeps the magnitude ranks [n_bot, n − n_top) (mergekit's slice [n_bot:-0]
 *     keeps nothing when γ·n < 1);
 *   - DELLA ranks equal magnitudes by position; a one-element row gets p = density;
 *   - magnitude thresholds keep every entry equal to the k-th largest (ties may keep a few more);
 *   - multislerp of a tensor whose inputs (task vectors) are all zero returns the base (or zero)
 *     where mergekit raises; its result otherwise equals mergekit's: the tangent vectors at the
 *     normalised weighted mean μ of the unit vectors sum to zero, so multislerp is
 *     μ·Σ w_m‖x_m‖ (an nlerp; equal to SLERP only at the midpoint of equal-norm vectors).
 *
 * Randomness (DARE, DELLA) is seeded and reproducible: model k's mask of tensor i draws from
 * its own xorshift64* stream (src/base am_rng) seeded with merge_stream_seed(seed, k, i), in
 * element order, keep iff am_rng_uniform() < p. tests/ref/merge/gen_fixture.py reproduces it.
 *
 * ---- Granularity -------------------------------------------------------------------------
 * Every numeric parameter (weight, density, lambda, t, epsilon, gamma) resolves per model and
 * per tensor through rules; merge_param_at is the one resolver the methods call. A rule says
 *   param, model (k, or −1 = every model), classes (module classes, 0 = all),
 *   pattern (tensor-name substring, or a glob with '*'; "" = all), values (n ≥ 1).
 * n = 1 is a constant; n > 1 is a mergekit "gradient": interpolated over the encoder's layers
 * at x = layer/(L−1) · (n−1) (linear between neighbours); tensors outside encoder.layer.N
 * (embeddings, pooler, head) take x = 0 as mergekit's pre/post weights do.
 * The LAST added rule that matches (param, model, class, pattern) wins, so add general rules
 * first and specific ones after (per model after global, per tensor after per class). When no
 * rule matches, the method's default applies (merge_param_default; NaN = required).
 * Per element: MergeInputs.elem_weight[k] (optional) multiplies model k's resolved weight
 * element by element (linear and the task-arithmetic family only).
 *
 * Module classes of the BERT names (src/model/model.h): LayerNorm tensors (anywhere) are
 * LAYERNORM; other embeddings.* are EMBEDDINGS; *.attention.* ATTENTION; intermediate.* and
 * output.dense.* of a layer FFN; pooler.* POOLER; cls.* HEAD.
 *
 * ---- Errors --------------------------------------------------------------------------------
 * merge_run returns AM_OK or a negative AM_E* code with a message (am_errmsg):
 *   AM_EINVAL   unknown method/parameter/option (with the closest name), wrong model count,
 *               a method that needs a base without one (or with one it cannot use), all weights
 *               zero for a tensor, density outside (0, 1], epsilon making density ± ε leave
 *               (0, 1), a required parameter (slerp's t) missing, elem_weight with a method
 *               that cannot use it, multislerp's weighted mean of ≥ 3 unit vectors ~ 0
 *   AM_ESHAPE   models whose tables differ (names the first mismatching tensor and both shapes)
 *   AM_EVOCAB   models with different vocab sizes (merge_models)
 *   AM_EFORMAT  a NaN or Inf in an input tensor (names model and tensor)
 *   AM_ENOMEM   scratch allocation failed
 */
#ifndef AM_MERGE_H
#define AM_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum {
    MERGE_LINEAR, MERGE_TASK_ARITHMETIC, MERGE_TIES, MERGE_DARE_LINEAR, MERGE_DARE_TIES,
    MERGE_DELLA, MERGE_DELLA_LINEAR, MERGE_BREADCRUMBS, MERGE_BREADCRUMBS_TIES,
    MERGE_SLERP, MERGE_NUSLERP, MERGE_MULTISLERP, MERGE_KARCHER, MERGE_MODEL_STOCK,
    MERGE_METHOD_COUNT
} MergeMethod;

/* Per-model / per-tensor parameters (mergekit names in merge_param_name). */
typedef enum {
    MERGE_P_WEIGHT, MERGE_P_DENSITY, MERGE_P_LAMBDA, MERGE_P_T, MERGE_P_EPSILON, MERGE_P_GAMMA,
    MERGE_PARAM_COUNT
} MergeParam;

enum { MERGE_BASE_NONE, MERGE_BASE_OPTIONAL, MERGE_BASE_REQUIRED };

typedef struct {
    const char *name;       /* mergekit's method name */
    const char *title;      /* "TIES", "Model Stock", ... */
    const char *reference;  /* paper URL */
    int base;               /* MERGE_BASE_* */
    int min_models, max_models; /* models besides the base; max 0 = no limit */
    unsigned params;        /* bit (1u << MergeParam) for each parameter the method reads */
    int normalize, rescale; /* defaults */
} MergeMethodInfo;

const MergeMethodInfo *merge_method_info(MergeMethod m);
const char *merge_method_name(MergeMethod m);
/* AM_EINVAL "unknown merge method 'tie' (did you mean 'ties'?)" when unknown. */
int merge_method_from_name(const char *name, MergeMethod *out);
const char *merge_param_name(MergeParam p);
int merge_param_from_name(const char *name, MergeParam *out); /* AM_EINVAL with suggestion */
/* The candidate closest to `name` by edit distance, or NULL when none is close (≤ 1/3 of the
 * longer name's length, at least 2). Used for every "did you mean" here. */
const char *merge_closest_name(const char *name, const char *const *cands, int n);
/* Method default of p: weight 1, density 1, lambda 1, epsilon 0.15, gamma 0.01; t has none (NaN). */
float merge_param_default(MergeMethod m, MergeParam p);

/* Module classes */
enum {
    MERGE_CLS_EMBEDDINGS = 1 << 0, MERGE_CLS_ATTENTION = 1 << 1, MERGE_CLS_FFN = 1 << 2,
    MERGE_CLS_LAYERNORM = 1 << 3, MERGE_CLS_POOLER = 1 << 4, MERGE_CLS_HEAD = 1 << 5,
    MERGE_CLS_ALL = 63
};
unsigned merge_tensor_class(const char *tensor_name);  /* exactly one MERGE_CLS_* bit */
int merge_tensor_layer(const char *tensor_name);       /* N of encoder.layer.N., else −1 */
/* "embeddings", "attention", "ffn" (also "mlp"), "layernorm" (also "norm"), "pooler", "head";
 * AM_EINVAL with suggestion. */
int merge_class_from_name(const char *name, unsigned *out);

typedef struct {
    MergeParam param;
    int model;              /* 0..K−1, or −1 = every model */
    unsigned classes;       /* MERGE_CLS_* mask, 0 = every class */
    char pattern[AM_NAME_MAX]; /* "" = every tensor; substring, or glob if it contains '*' */
    int n;                  /* number of values: 1 constant, > 1 gradient over layers */
    float *values;          /* owned */
} MergeRule;

typedef struct {
    MergeMethod method;
    int n_rules, cap_rules;
    MergeRule *rules;       /* in the order added; the last match wins */
    /* options (mergekit names; −1 = the method's default) */
    int normalize;          /* linear/GTA: divide by Σ w; multislerp: normalize_weights */
    int rescale;            /* dare/della/breadcrumbs: rescale kept δ */
    int paper;              /* 0 = mergekit's behaviour (default), 1 = the paper's (see top) */
    uint64_t seed;          /* dare/della masks (default 0) */
    double eps;             /* multislerp (1e-8) */
    int max_iter;           /* karcher (10) */
    double tol;             /* karcher (1e-5) */
    int nuslerp_flatten;    /* 1 (default) */
    int nuslerp_row_wise;   /* 0 (default) */
    int filter_wise;        /* model_stock: per row (0) */
    int threads;            /* pool threads this merge uses (0 = all of the pool; capped at its size) */
} MergeSpec;

/* The AVX-512 TIES kernel (one pass per block, bit-identical to the portable code): 1 when it
 * runs, i.e. the CPU has AVX-512F/DQ (checked at run time) and AMALGAM_NO_AVX512 is unset;
 * merge_set_simd(0 / 1) for tests and A/B runs, -1 = back to the default. */
int merge_simd(void);
void merge_set_simd(int on);

void merge_spec_init(MergeSpec *s, MergeMethod m); /* defaults; init/free pair */
void merge_spec_free(MergeSpec *s);
/* Add a rule (values copied). AM_EINVAL for n < 1, a NaN value, model < −1. */
int merge_spec_set(MergeSpec *s, MergeParam p, int model, unsigned classes, const char *pattern,
                   const float *values, int n);
/* Set an option by mergekit name: normalize (normalize_weights), rescale, paper, seed, eps,
 * max_iter, tol, nuslerp_flatten, nuslerp_row_wise, filter_wise, threads. AM_EINVAL with the
 * closest name for an unknown one; int8_mask is accepted and ignored (we merge in fp32). */
int merge_spec_set_option(MergeSpec *s, const char *name, double value);

/* The value of p for model k (−1 for model-independent parameters: lambda, t) on one tensor:
 * the last matching rule, interpolated at `layer` (−1 outside the layers) of n_layers, else the
 * method default. */
float merge_param_at(const MergeSpec *s, MergeParam p, int model_k, const char *tensor_name,
                     int layer, int n_layers);

typedef struct {
    const ParamTable *tab;        /* names, shapes, offsets shared by every buffer */
    int n_layers;                 /* for gradient lists (cfg.num_layers) */
    int k;                        /* models besides the base */
    const float *const *models;   /* k buffers of tab->total floats */
    const float *base;            /* NULL = none */
    const char *const *names;     /* optional: k labels for messages ("model 2" otherwise) */
    const char *base_name;        /* optional */
    const float *const *elem_weight; /* optional: k buffers (entries may be NULL) of per-element
                                        weight multipliers, tab->total each */
} MergeInputs;

typedef struct {
    double seconds;
    size_t bytes_read, bytes_written; /* one pass over inputs and output (the bandwidth floor) */
    size_t n_tensors, n_elements;
    size_t delta_total, delta_kept;   /* sparsified methods: δ entries before / after the masks */
    size_t sign_conflicts;            /* consensus methods: nonzero δ entries against the vote */
    size_t lerp_fallbacks;            /* slerp family: tensors (or rows) that fell back to lerp */
    int karcher_iters;                /* karcher: most iterations any tensor took */
    double model_stock_t;             /* model_stock: mean t over tensors */
} MergeStats;

/* The seed of model k's mask stream on tensor i (splitmix-style mixing, documented for the
 * reference generator): seed ^ (0x9E3779B97F4A7C15·(k+1)) ^ (0xC2B2AE3D27D4EB4F·(i+1)), mod 2^64. */
uint64_t merge_stream_seed(uint64_t seed, int k, int tensor_index);

/* Merge in->models (and in->base) into out (tab->total floats; must not alias an input).
 * stats may be NULL. Counts, base and every tensor's parameters are checked before anything is
 * written; a NaN/Inf input is found while merging (AM_EFORMAT), and on any error out's contents
 * are unspecified. */
int merge_run(const MergeSpec *spec, const MergeInputs *in, float *out, MergeStats *stats);

/* Same over Model objects: checks configs (AM_EVOCAB for vocab size, AM_ESHAPE naming the first
 * tensor whose name or shape differs), then merges into `out` (a model of the same config). */
int merge_models(const MergeSpec *spec, Model *const *models, const char *const *names, int k,
                 const Model *base, Model *out, MergeStats *stats);

#endif
