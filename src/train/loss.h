/* loss.h - training losses on pooled sentence embeddings, and the LossSpec tree that composes them.
 *
 * Everything here works on POOLED embeddings (one row per sequence). The trainer pools the hidden
 * states of the layers a loss needs (one encoder forward), calls loss_eval, and back-propagates the
 * embedding gradients through pooling into the encoder. MLM works on token states: see mlm.h.
 *
 * ---- batch layout (LossInput) -----------------------------------------------------------------
 * A batch of n examples has R = n·(1 + P + K) embedding rows:
 *   rows [0, n)                   queries / anchors / sentence1            q_i      = row i
 *   rows [n, n + n·P)             positives, query-major                   p_{i,j}  = row n + i·P + j
 *   rows [n + n·P, R)             hard negatives, query-major              neg_{i,k}= row n + n·P + i·K + k
 * Graded pairs (STS) are the case P = 1, K = 0 with gold scores y (n): sentence2_i = row n + i.
 * Only the first `dim` columns of each row are used (Matryoshka truncation); rows are `ld` floats
 * apart. Gradients have the same (R, ld) layout and are ACCUMULATED (+=) into the first dim columns.
 *
 * ---- similarity ------------------------------------------------------------------------------
 * sim = AM_SIM_COS (default): cosine, i.e. both rows L2-normalised (torch F.normalize, eps 1e-12)
 * over their first dim features, then the dot product. Truncation happens BEFORE normalisation, as
 * sentence-transformers' MatryoshkaLoss + cos_sim does. AM_SIM_DOT: raw dot product of the first
 * dim features (Starbucks retrieval without --normalize).
 * All losses compute in double internally from the float inputs (the batch is small next to the
 * encoder), so finite differences and PyTorch float64 references agree to ~1e-7.
 *
 * ---- the losses (each a *_forward / *_backward pair) ------------------------------------------
 * x_forward(in, opts) returns the loss. x_backward(demb, in, opts, dloss) adds dloss·∂L/∂emb to
 * demb; it recomputes what it needs from `in` (losses are stateless), so the two can be called
 * independently and in any order. Layout violations (e.g. CoSENT without gold scores) are bugs
 * (AM_ASSERT); loss_spec_check reports them as AM_EINVAL before a step instead.
 *
 * InfoNCE / MultipleNegativesRankingLoss (sentence-transformers), scale s = 1/temperature (20):
 *   candidates of query i for positive slot j:  C_j = { p_{i',j} : i' < n } ∪ { every hard negative }
 *   (so in-batch negatives are the other queries' positives and everybody's hard negatives, as
 *   ST does when negatives are appended as extra columns; CoDiEmb's ContrastiveLoss ir_mode="all").
 *   S_ij = s·sim(q_i, c_j).  Multi-positive (P > 1):
 *     AM_MULTIPOS_AVG (default, CoDiEmb):  L = (1/P) Σ_j (1/|V|) Σ_{i∈V} CE(S over C_j, target p_{i,j})
 *     AM_MULTIPOS_LSE (MultiPositiveInfoNCE): candidates = every positive and negative row,
 *        L = (1/|V|) Σ_{i∈V} [ logΣ_{all c} e^{S_ic} − logΣ_{c ∈ own positives} e^{S_ic} ]
 *   With P = 1 both are MultipleNegativesRankingLoss. Padded rows (LossInput.cand = 0, a query
 *   with fewer positives / negatives than P / K) are no candidate of anyone and no target: AVG
 *   averages over the real (i, j), LSE over the real own positives. V = the valid queries: all of them, or, when
 *   gold scores are given and threshold is finite, those with y_i >= threshold (CoDiEmb's STS
 *   InfoNCE: low-scored pairs are not positives but stay candidates). No valid query: L = 0.
 *   symmetric = 1 (MultipleNegativesSymmetricRankingLoss): L = (L_q→d + L_d→q) / 2 where L_d→q
 *   averages, over slots j and valid i, CE of p_{i,j} against all n queries (target q_i).
 *
 * Entropy (AdaMerging's objective, EnnengYang/AdaMerging softmax_entropy, for embedders): no labels;
 *   each query's distribution over every real candidate row (all positives and hard negatives of
 *   the batch; graded pairs: every sentence2), p_i = softmax(s·sim(q_i, ·)), s = 1/temperature,
 *   L = (1/n) Σ_i H(p_i) = −(1/n) Σ_i Σ_c p_ic log p_ic;  ∂H_i/∂S_ic = −p_ic (log p_ic + H_i).
 *   Gold scores, if any, are ignored. Low entropy = each query confidently picks one candidate.
 *
 * CoSENT (ST CoSENTLoss, graded layout): c_i = sim(q_i, p_i),
 *   L = log(1 + Σ_{(i,j): y_i > y_j} exp(s·(c_j − c_i)))       s = scale (20)
 *
 * CoDiEmb STS terms (TencentCloudADP/youtu-embedding training/CoDiEmb/train/loss.py, model.py;
 * graded layout, c_i = sim(q_i, p_i), y = gold):
 *   Pearson:  L = 1 − Σ(c−c̄)(y−ȳ) / (n·σ_c·σ_y)   (population σ). 0 (no gradient) if all y are equal
 *             or σ_c = 0 ([U] the reference divides by zero there).
 *   RankKL:   r_i = 0-based average rank of y_i in DESCENDING order (ties share the mean rank),
 *             ideal_i = (n−1−r_i)/(n−1) (0 if n = 1); P = softmax(ideal/T); Q = softmax(c/T);
 *             L = KL(P‖Q)/n  (F.kl_div "batchmean" on a 1-D input divides by n). T = 0.05.
 *   PRO:      sort by y descending; for each k with a non-empty tail J_k = {j after k : y_k − y_j > eps}:
 *             w_j = y_k − y_j, w_k = max_j w_j, logits = [w_k·c_k/T, w_j·c_j/T for j ∈ J_k],
 *             term_k = −log_softmax(logits)[0]; L = mean over such k (0 if none). T = 0.05, eps 1e-8.
 *   L_mid:    InfoNCE (scale 50 = 1/0.02) on the pooled embeddings of a middle layer over the
 *             pairs with gold >= threshold: hidden_states[(l+1)/2] for a loss evaluated on layer l
 *             (CoDiEmb's hidden_states[len//2]); mid_layer can be fixed. CoDiEmb's threshold 1.0
 *             is absolute on its data (binary 0/1 labels: the positive pairs; 0..5 STS-B: >= 1/5 of
 *             the range). Here the default is relative: lo + 0.2·(hi − lo) with [lo, hi] the
 *             dataset's gold range (score_lo/hi; am.train sets them; NaN = the batch's), which is
 *             CoDiEmb's choice on both of its scales; mid.threshold (absolute) overrides it.
 *   composite L = w_mid·L_mid + w_pro·PRO + w_pearson·Pearson + w_rankkl·RankKL   (1, 0.5, 2, 5)
 *
 * KL(teacher ‖ student) between distributions (KLOptions; T = temperature, R = all rows):
 *   AM_KL_EMBEDDINGS: over the features of each row (Starbucks sts/starbucks_loss.py, ST
 *                     AdaptiveLayerLoss; R = the rows that are not padding): L = (1/R) Σ_r KL(softmax(e^T_r[:d]/T) ‖ softmax(e^S_r[:d]/T))
 *                     with e the RAW pooled rows (normalize = 1: L2-normalised over those d first),
 *                     d = the student's dim (the caller passes dim C for KL over all features).
 *   AM_KL_SCORES:     over each query's candidate scores (Starbucks retrieval/modeling.py):
 *                     S_i = sim(q_i, every row in [n, R)) / T, L = (1/n) Σ_i KL(softmax(S^T_i) ‖ softmax(S^S_i))
 *                     (padded rows are in neither softmax).
 *   detach = 0: the teacher gets gradient too (both authors' sts code and ST); detach = 1: not
 *   (Starbucks' retrieval code). The weight multiplies the term; T only divides the logits.
 *
 * ---- composition (LossSpec) --------------------------------------------------------------------
 * A LossSpec node is evaluated on a "view" (layer l, dim d) of the pooled embeddings; the root view
 * is (L, C) — the full model.
 *   INFONCE, COSENT, CODIEMB_STS: leaves, on the view (CODIEMB's L_mid on (mid layer, d)).
 *   MATRYOSHKA (ST MatryoshkaLoss): Σ_k w_k · inner(l, d_k) over mrl.dims (each <= d; default
 *       32, 64, ... < d, d), or over a seeded random subset of n_dims_per_step of them.
 *   STARBUCKS (2D Matryoshka, fixed diagonal list): Σ_k w_k · inner(l_k, d_k) over m2d.pairs
 *       (small -> large; the full (L, C) counted once, only if it is in the list) + kl.weight · Σ_{k:
 *       (l_k,d_k) ≠ full} KL(full view ‖ (l_k, d_k)). The default list (loss_spec_default) is a
 *       Starbucks-like diagonal: dims 32, 64, ... (< C), C; layers spread evenly up to L; when there
 *       are more dims than layers the diagonal becomes a staircase. tiny (2 layers, 128):
 *       (1,32) (1,64) (2,64) (2,128). Default KL = Starbucks' sts code: embeddings, raw rows,
 *       T = 1, weight 0.3, teacher not detached, over the pair's first d_k features.
 *   RANDOM_2D (2DMSE as sentence-transformers' Matryoshka2dLoss, n_layers_per_step = n_dims_per_step
 *       = 1): each step draws layer l uniform in [1, L−1], a dim d_s for it and, independently,
 *       a dim d_f for the last layer (random_full_dim = 1; 0: d_f = C), uniform from m2d.dims,
 *       seeded by (run seed, step); L = w_full·inner(L, d_f) + w_sub·λ_l·inner(l, d_s)
 *       + kl.weight·KL(layer L ‖ layer l) with λ_l = 1/l (layer_weighting linear: ST's
 *       1/(1 + layer_idx), the version Starbucks compared with) or 1 (uniform). Default KL = ST's:
 *       embeddings, raw rows over all C features, T = 0.3, weight 0.3 (kl_temperature ·
 *       kl_div_weight), teacher not detached. L = 1: only the first term (no prior layer).
 *   MLM: root only, on token states (the trainer runs mlm.h); never inside another node.
 * Terms of nested nodes are reported with their view as a prefix ("l1d32/infonce").
 */
#ifndef AM_LOSS_H
#define AM_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum { AM_SIM_COS = 0, AM_SIM_DOT = 1 };
enum { AM_MULTIPOS_AVG = 0, AM_MULTIPOS_LSE = 1 };
enum { AM_KL_SCORES = 0, AM_KL_EMBEDDINGS = 1 };
enum { AM_LAYERW_LINEAR = 0, AM_LAYERW_UNIFORM = 1 };

enum {
    AM_LOSS_INFONCE = 0,     /* MultipleNegativesRankingLoss and variants */
    AM_LOSS_COSENT = 1,
    AM_LOSS_CODIEMB_STS = 2, /* L_mid + 0.5 PRO + 2 (1 - Pearson) + 5 RankKL */
    AM_LOSS_MATRYOSHKA = 3,  /* over dims, wraps inner */
    AM_LOSS_STARBUCKS = 4,   /* 2D Matryoshka, fixed (layer, dim) list + KL, wraps inner */
    AM_LOSS_RANDOM_2D = 5,   /* 2DMSE: random (layer, dim) per step + full + KL, wraps inner */
    AM_LOSS_MLM = 6,         /* masked language modelling (root only; see mlm.h) */
    AM_LOSS_ENTROPY = 7,     /* in-batch softmax entropy, label-free (AdaMerging's objective) */
    AM_LOSS_KIND_COUNT
};

#define AM_LOSS_MAX_DIMS 16
#define AM_LOSS_MAX_TERMS 24

/* ---------------------------------------------------------------- inputs */

typedef struct {
    const float *emb;     /* (R, ld) pooled embeddings, R = n·(1 + n_pos + n_neg) */
    int ld;               /* row stride in floats (>= dim) */
    int dim;              /* features used: the first dim of each row */
    int n;                /* examples (queries) */
    int n_pos;            /* P >= 1 positives per query */
    int n_neg;            /* K >= 0 hard negatives per query */
    const float *gold;    /* (n) gold scores of graded pairs, or NULL */
    const uint8_t *cand;  /* (n·P + n·K) 1 = a real positive / negative row (rows [n, R) in order),
                             0 = padding of a query with fewer (never a candidate nor a target);
                             NULL = all real */
} LossInput;

static inline int loss_input_rows(const LossInput *in) { return in->n * (1 + in->n_pos + in->n_neg); }

/* ---------------------------------------------------------------- options */

typedef struct {
    float scale;          /* 1/temperature; 20 (T = 0.05) */
    int sim;              /* AM_SIM_COS */
    int symmetric;        /* 0; 1 = also positives -> queries, averaged */
    int multi_pos;        /* AM_MULTIPOS_AVG */
    float threshold;      /* with gold: queries with y < threshold are not trained on; -INFINITY = all */
} InfoNCEOptions;

typedef struct {
    float scale;          /* 20 */
    int sim;              /* AM_SIM_COS */
} CoSENTOptions;

typedef struct {
    float scale;          /* 1/temperature; 20 (T = 0.05) */
    int sim;              /* AM_SIM_COS */
} EntropyOptions;

typedef struct {
    float w_mid, w_pro, w_pearson, w_rankkl; /* 1, 0.5, 2, 5 */
    float pro_temperature;    /* 0.05 */
    float pro_eps;            /* 1e-8 */
    float rankkl_temperature; /* 0.05 */
    int sim;                  /* AM_SIM_COS (CoDiEmb normalises) */
    InfoNCEOptions mid;       /* L_mid: scale 50 (T 0.02), not symmetric; threshold NaN = relative */
    float mid_threshold_frac; /* 0.2: positives have gold >= lo + frac·(hi − lo) */
    float score_lo, score_hi; /* the dataset's gold range; NaN = the batch's min / max */
    int mid_layer;            /* -1 = (l+1)/2 of the view's layer l; else a fixed layer */
} CoDiEmbOptions;

typedef struct {
    int mode;             /* AM_KL_EMBEDDINGS (both kinds' default) or AM_KL_SCORES */
    float weight;         /* multiplies the term (0 = no KL); starbucks 0.3, random_2d 0.3 */
    float temperature;    /* divides the logits in both softmaxes; starbucks 1, random_2d 0.3 */
    int normalize;        /* embeddings: L2-normalise the rows first (0) */
    int detach;           /* the teacher gets no gradient (0) */
    int full_dim;         /* embeddings: over all C features, not the student's d (starbucks 0, random_2d 1) */
} KLOptions;

typedef struct {
    int n_dims;                       /* >= 1 */
    int dims[AM_LOSS_MAX_DIMS];       /* each in [1, view dim]; 0 means "the view's dim" */
    float weights[AM_LOSS_MAX_DIMS];  /* default 1 */
    int n_dims_per_step;              /* ST n_dims_per_step: > 0 = a random subset of that many dims
                                         per step (seeded by the step), weights unchanged; 0 = all */
} MatryoshkaOptions;

typedef struct {
    /* STARBUCKS: the fixed list (n_pairs = 0 -> default diagonal for the model) */
    int n_pairs;
    int layers[AM_LOSS_MAX_DIMS];     /* 0..L (hidden_states index; 0 = embeddings) */
    int dims[AM_LOSS_MAX_DIMS];       /* 1..C */
    float weights[AM_LOSS_MAX_DIMS];  /* default 1 */
    /* RANDOM_2D: dims to sample from (n_dims = 0 -> 32, 64, ... < C, C) */
    int n_dims;
    int sample_dims[AM_LOSS_MAX_DIMS];
    float w_full, w_sub;              /* 1, 1 (ST last_layer_weight, prior_layers_weight) */
    int layer_weighting;              /* AM_LAYERW_LINEAR: the sub-layer term × 1/l */
    int random_full_dim;              /* 1: the last layer's term uses a drawn dim too */
    /* both */
    KLOptions kl;                     /* see the top; defaults differ per kind */
} Matryoshka2DOptions;

typedef struct {
    float prob;           /* 0.15: fraction of real, non-special tokens selected */
    float mask_frac;      /* 0.8 of the selected become mask_token_id */
    float random_frac;    /* 0.1 become a uniform random id in [0, V); the rest stay unchanged */
    int32_t mask_token_id;/* required: -1 = unset (error) */
    int n_special;        /* ids never selected, besides padding (mask 0) and pad_token_id */
    int32_t special[16];  /* e.g. [CLS], [SEP], [UNK], [MASK] */
} MlmOptions;

typedef struct LossSpec {
    int kind;                    /* AM_LOSS_* */
    float weight;                /* multiplies this node's loss (1) */
    InfoNCEOptions infonce;
    CoSENTOptions cosent;
    CoDiEmbOptions codiemb;
    MatryoshkaOptions mrl;
    Matryoshka2DOptions m2d;
    MlmOptions mlm;
    EntropyOptions entropy;
    const struct LossSpec *inner; /* MATRYOSHKA / STARBUCKS / RANDOM_2D: the loss applied per view (borrowed) */
} LossSpec;

/* Fill every option with its default for `kind` (inner = NULL). */
void loss_spec_default(LossSpec *s, int kind);
/* "infonce", "cosent", "codiemb_sts", "matryoshka", "starbucks", "random_2d", "mlm", "entropy" <-> AM_LOSS_*
 * (-1 / NULL if unknown). */
int loss_kind_from_name(const char *name);
const char *loss_kind_name(int kind);
/* The default Starbucks list for L layers, C dims (see the top). Returns the count (<= max). */
int loss_default_pairs(int L, int C, int *layers, int *dims, int max);
/* The default RANDOM_2D dims: 32, 64, ... < C, then C. Returns the count. */
int loss_default_dims(int C, int *dims, int max);

/* Check a spec against a model shape and batch layout: kinds, nesting, option ranges, dims <= C,
 * layers <= L, gold scores present where needed (CoSENT, CoDiEmb), graded layout where needed.
 * AM_OK or AM_EINVAL with a message naming the option. gold_present: the batch has gold scores. */
int loss_spec_check(const LossSpec *s, int L, int C, int n, int n_pos, int n_neg, int gold_present);

/* ---------------------------------------------------------------- evaluation of a spec */

typedef struct {
    const float *emb[AM_MAX_LAYERS + 1]; /* (R, C) pooled embeddings of hidden_states[l]; NULL = absent */
    float *demb[AM_MAX_LAYERS + 1];      /* (R, C) gradient accumulators (+=), NULL = no gradient */
    int L, C;
    int n, n_pos, n_neg;                 /* layout, see the top */
    const float *gold;                   /* (n) or NULL */
    const uint8_t *cand;                 /* (n·P + n·K) padding mask as LossInput's, or NULL */
    uint64_t seed;                       /* random draws of RANDOM_2D (derive from (run seed, step)) */
} LossViews;

typedef struct {
    double total;                        /* the loss (weights applied) */
    int n_terms;                         /* terms below sum to total (dropped beyond the cap) */
    struct { char name[40]; double value; } term[AM_LOSS_MAX_TERMS];
} LossResult;

/* Which layers' pooled embeddings a spec reads, for this seed: need[l] = 1 (need has L+1 entries,
 * zeroed here). The spec must pass loss_spec_check. */
void loss_spec_layers(const LossSpec *s, int L, int C, uint64_t seed, uint8_t *need);

/* Evaluate the spec on the views: out->total and the terms; if v->demb[l] are given, add
 * grad_scale · ∂total/∂emb[l] to them. AM_EINVAL if the spec does not fit (loss_spec_check), or a
 * needed layer is NULL. */
int loss_eval(const LossSpec *s, const LossViews *v, double grad_scale, LossResult *out);

/* ---------------------------------------------------------------- the primitives */

double infonce_forward(const LossInput *in, const InfoNCEOptions *o);
void infonce_backward(float *demb, const LossInput *in, const InfoNCEOptions *o, double dloss);

double entropy_forward(const LossInput *in, const EntropyOptions *o);
void entropy_backward(float *demb, const LossInput *in, const EntropyOptions *o, double dloss);

double cosent_forward(const LossInput *in, const CoSENTOptions *o);
void cosent_backward(float *demb, const LossInput *in, const CoSENTOptions *o, double dloss);

/* 1 - Pearson(sim, gold) */
double pearson_forward(const LossInput *in, int sim);
void pearson_backward(float *demb, const LossInput *in, int sim, double dloss);

double rankkl_forward(const LossInput *in, int sim, float temperature);
void rankkl_backward(float *demb, const LossInput *in, int sim, float temperature, double dloss);

double pro_forward(const LossInput *in, int sim, float temperature, float eps);
void pro_backward(float *demb, const LossInput *in, int sim, float temperature, float eps, double dloss);

/* The CoDiEmb STS composite. last = the view's embeddings, mid = the middle layer's (same layout,
 * same dim). terms (may be NULL) gets mid, pro, pearson, rankkl (weighted). */
double codiemb_sts_forward(const LossInput *last, const LossInput *mid, const CoDiEmbOptions *o,
                           LossResult *terms);
void codiemb_sts_backward(float *dlast, float *dmid, const LossInput *last, const LossInput *mid,
                          const CoDiEmbOptions *o, double dloss);
/* The gold threshold of L_mid for a batch of n gold scores (see the top). */
float loss_codiemb_mid_threshold(const CoDiEmbOptions *o, const float *gold, int n);

/* KL(teacher ‖ student) as `o` says (the top). Same layout; dims may differ (scores) or the teacher
 * is truncated to the student's dim (embeddings). sim: the scores' similarity (scores mode only).
 * The backward adds to dteacher only if o->detach is 0 and dteacher is non-NULL. */
double kl_forward(const LossInput *teacher, const LossInput *student, int sim, const KLOptions *o);
void kl_backward(float *dteacher, float *dstudent, const LossInput *teacher, const LossInput *student, int sim,
                 const KLOptions *o, double dloss);

#endif
