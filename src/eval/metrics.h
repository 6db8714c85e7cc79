/* metrics.h - the evaluation engine: MTEB's task protocols and main scores, in C.
 *
 * Every function follows MTEB (embeddings-benchmark/mteb, v2 abstasks) and, where MTEB hands the
 * arithmetic to another library, that library: pytrec_eval (= trec_eval 9.0.8) for retrieval,
 * scipy.stats for correlations, scikit-learn for average precision, F1, LogisticRegression,
 * MiniBatchKMeans and V-measure. The notes at each function say what is matched exactly and what
 * is not. tests/ref/eval/ holds fixtures made by scikit-learn / scipy and an independent Python
 * implementation of trec_eval's measures (gen_fixture.py), checked by tests/unit/test_eval.c.
 *
 * Conventions
 *  - Embeddings are row-major float32, x (n, dim). They are NOT assumed to be L2-normalised:
 *    cosine similarity divides by the norms (a zero vector has cosine 0 with everything).
 *  - Labels are ints in [0, n_labels); gold scores are doubles. Scores come back as doubles.
 *  - Status: AM_OK, or AM_EINVAL (bad argument, message says which), AM_ENOMEM (a large buffer).
 *    Nothing here does I/O. All randomness is seeded through the options; results are
 *    bit-identical run to run and independent of the thread count.
 *  - Out-structs are plain values the caller owns (no heap inside) except LogReg and KMeans,
 *    which follow the init/free convention (caller owns the struct, module owns its buffers).
 *  - Names of result fields are MTEB's metric names (ndcg_at_10 = ndcg[i] where ks[i] == 10 ...)
 *    so the CLI can print MTEB-compatible JSON.
 *
 * Random streams. MTEB draws its subsamples with numpy's legacy RandomState (classification
 * undersampling), Python's random.Random (clustering bootstrap) and scikit-learn's RandomState
 * (k-means). AmMt below is MT19937 with those three front-ends, so for the same seed we pick the
 * SAME training subsets and bootstrap samples as MTEB (checked against numpy/Python in the tests).
 */
#ifndef AM_METRICS_H
#define AM_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The scikit-learn whose LogisticRegression and MiniBatchKMeans are reproduced. MTEB 2 requires
 * scikit-learn >= 1.4; Debian 12 ships 1.2. The differences (sklearn's source):
 *   LogisticRegression (lbfgs): 1.4 minimises the MEAN loss + ||W||² / (2·C·n) with
 *     L-BFGS-B options ftol 64·eps, maxls 50; 1.2 the SUM + ||W||² / (2C), ftol 1e7·eps, maxls 20.
 *     Same optimum; the stopping point differs (gtol = tol applies to the mean's gradient).
 *   k-means++: 1.4 draws the first centre with rs.choice(n, p = w / Σw) (one random_sample and
 *     a search of the cumulative p); 1.2 with rs.randint(n).
 * AM_SKLEARN_1_4 is 0, so zero-initialised options follow MTEB. */
typedef enum { AM_SKLEARN_1_4 = 0, AM_SKLEARN_1_2 = 1 } AmSklearn;
#define AM_EVAL_MTEB_VERSION "2"   /* the MTEB major version whose protocols src/eval follows */
const char *am_sklearn_name(AmSklearn v);   /* "1.4", "1.2" */

/* ------------------------------------------------------------------ MT19937 (mt19937.c) */

typedef struct { uint32_t mt[624]; int mti; } AmMt;

void mt_seed(AmMt *r, uint32_t seed);          /* numpy RandomState(seed) (init_genrand)        */
void mt_seed_python(AmMt *r, uint64_t seed);   /* Python random.Random(seed), seed >= 0         */
uint32_t mt_u32(AmMt *r);
double mt_double(AmMt *r);                     /* random_sample() / random.random(): 53 bits    */
/* numpy's masked-rejection bounded integer in [0, max] (random_interval; RandomState.randint(0,
 * max+1) for max < 2^32 draws the same way). */
uint32_t mt_interval(AmMt *r, uint32_t max);
/* RandomState.shuffle(x) for a 1-D sequence (Fisher-Yates from the end, mt_interval). */
void mt_shuffle(AmMt *r, int *x, int n);
/* Python random.Random.choices(range(n), k) as indices: idx[i] = floor(random() * n). */
void mt_choices_python(AmMt *r, int *idx, int k, int n);

/* ------------------------------------------------------------------ building blocks (stats.c) */

/* scipy.stats.rankdata(x, 'average'): 1-based ranks, ties get the mean of their ranks.
 * rank (n) OUT. */
void stats_rank_average(double *rank, const double *x, int n);
/* scipy.stats.pearsonr(x, y)[0]. NAN when n < 2 or either input is constant (scipy warns and
 * returns nan too). Two-pass, in double. */
double stats_pearson(const double *x, const double *y, int n);
/* scipy.stats.spearmanr(x, y)[0] = Pearson of the average ranks. NAN as stats_pearson. */
double stats_spearman(const double *x, const double *y, int n);

/* sklearn.metrics.average_precision_score(labels, scores): labels 1 = positive, anything else
 * negative; AP = Σ_n (R_n − R_{n−1}) P_n over the distinct score thresholds, highest first
 * (tied scores form ONE threshold, as sklearn's precision_recall_curve). 0 when there is no
 * positive (sklearn returns -0.0 with a warning). */
double metric_average_precision(const double *scores, const int *labels, int n);

/* sklearn.metrics.homogeneity_completeness_v_measure(labels_true, labels_pred), beta = 1,
 * natural-log entropies from the contingency table. Labels are any ints (need not be dense).
 * Any of h, c may be NULL. Returns the V-measure (1.0 for n == 0, as sklearn). */
double metric_v_measure(const int *labels_true, const int *labels_pred, int n, double *h, double *c);

/* Label metrics as sklearn's accuracy_score / precision_score / recall_score / f1_score with
 * average = 'macro' and 'weighted', zero_division = 0. The label set is the union of the labels
 * in y_true and y_pred (sklearn's unique_labels); 'weighted' weights by support in y_true.
 * Labels must be in [0, n_labels). */
typedef struct {
    double accuracy;
    double precision, recall, f1;                          /* macro */
    double precision_weighted, recall_weighted, f1_weighted;
} LabelMetrics;
int metric_labels(LabelMetrics *out, const int *y_true, const int *y_pred, int n, int n_labels);

/* ------------------------------------------------------------------ retrieval (retrieval.c) */

/* Relevance judgments, CSR by query: the judgments of query q are entries
 * [offsets[q], offsets[q+1]) of doc/grade. grade >= 0 (0 = judged not relevant); a doc may appear
 * at most once per query. A query with no entries at all is not evaluated (pytrec_eval only
 * evaluates queries that are in the qrels). Borrowed; not modified. */
typedef struct {
    int nq;
    const int *offsets;   /* (nq + 1) */
    const int *doc;       /* (offsets[nq]) doc indices in [0, nd) */
    const int *grade;     /* (offsets[nq]) */
} Qrels;

typedef enum { AM_SIM_COSINE = 0, AM_SIM_DOT = 1 } AmSimilarity;

typedef struct {
    AmSimilarity sim;           /* AM_SIM_COSINE (MTEB's default similarity)                   */
    /* (nq) or NULL. self_doc[q] = the doc whose id equals query q's id, or -1. It is retrieved
     * like any doc and then dropped from q's ranking (MTEB's ignore_identical_ids: top-k is
     * taken first, so such a query ranks k-1 docs). */
    const int *self_doc;
    /* (nd) or NULL. Doc ids, used ONLY to order docs with equal scores the way trec_eval does:
     * score descending, then docno descending by strcmp. NULL = doc index descending (the same
     * order for ids that are zero-padded numbers). */
    const char *const *doc_ids;
    /* 0 (default, = MTEB): a query with judgments but no grade > 0 is evaluated and scores 0
     * (MTEB's _filter_queries_without_positives only drops queries with NO qrels entries, and
     * pytrec_eval scores the rest). 1: such queries are skipped as well. */
    int skip_no_relevant;
    /* (nq) OUT or NULL: each query's main measure (ndcg at the main cutoff), NAN for a query
     * that is not evaluated; kept with a result for standard errors and paired tests. */
    double *per_query;
} RetrievalOptions;

#define AM_EVAL_MAX_K 16
#define AM_EVAL_DEFAULT_KS { 1, 3, 5, 10, 20, 100, 1000 }   /* MTEB AbsTaskRetrieval.k_values */
#define AM_EVAL_DEFAULT_NKS 7

typedef struct {
    int nks;
    int ks[AM_EVAL_MAX_K];                /* the cutoffs, ascending                          */
    double ndcg[AM_EVAL_MAX_K];           /* trec_eval ndcg_cut.k   -> ndcg_at_k              */
    double map[AM_EVAL_MAX_K];            /* trec_eval map_cut.k    -> map_at_k               */
    double recall[AM_EVAL_MAX_K];         /* trec_eval recall.k     -> recall_at_k            */
    double precision[AM_EVAL_MAX_K];      /* trec_eval P.k          -> precision_at_k         */
    double mrr[AM_EVAL_MAX_K];            /* MTEB's own mrr()       -> mrr_at_k               */
    double hit_rate[AM_EVAL_MAX_K];       /* trec_eval success.k    -> hit_rate_at_k          */
    int n_evaluated;                      /* queries averaged over                             */
    int n_skipped;                        /* queries without judgments (or without relevant)   */
    double main_score;                    /* ndcg_at_10 (ndcg at the largest k <= 10 if 10 is not
                                             among ks, else at the smallest k)                 */
} RetrievalScores;

/* Which measure of retrieval_query_measures' output row. */
enum { AM_RM_NDCG, AM_RM_MAP, AM_RM_RECALL, AM_RM_PRECISION, AM_RM_MRR, AM_RM_HIT, AM_RM_COUNT };

/* Dense retrieval as MTEB: score every (query, doc) pair (cosine or dot, blocked sgemm over
 * corpus chunks, parallel over query blocks), keep the top max(ks) docs of each query, order
 * them by (score desc, trec_eval tie-break), drop self hits, and average the per-query measures
 * over the evaluated queries (no rounding; MTEB rounds its means to 5 decimals).
 *   q (nq, dim), d (nd, dim); qrels->nq must equal nq; ks (nks) ascending, distinct, >= 1,
 *   nks <= AM_EVAL_MAX_K; opt may be NULL (defaults above).
 * Measures (relevant = grade >= 1, trec_eval's relevance_level 1):
 *   ndcg@k   Σ_{i<k} g_i / log2(i+2) over the ranking, divided by the same sum over the query's
 *            judged grades sorted descending (linear gains, trec_eval 9 ndcg_cut); 0 if no grade>0
 *   map@k    Σ_{i<k, rel} (#rel in top i+1)/(i+1) / #relevant judged
 *   recall@k #rel in top k / #relevant judged;   precision@k  #rel in top k / k (always k)
 *   mrr@k    1/(rank of the first rel in top k), 0 if none;   hit_rate@k  [any rel in top k]
 * MRR uses the same order as the trec_eval measures (MTEB's mrr() re-sorts the run with Python's
 * stable sort, so its tie order is whatever order the search returned). */
int eval_retrieval(RetrievalScores *out, const float *q, int nq, const float *d, int nd, int dim,
                   const Qrels *qrels, const int *ks, int nks, const RetrievalOptions *opt);

/* The search part alone. idx (nq, k) OUT / score (nq, k) OUT (score may be NULL): each row in
 * the order above, self hits removed; nret (nq) OUT the number of docs in each row (min(k, nd),
 * minus one for a dropped self hit); unused slots hold -1 / -INFINITY. k >= 1. */
int retrieval_search(int *idx, float *score, int *nret, const float *q, int nq, const float *d,
                     int nd, int dim, int k, const RetrievalOptions *opt);

/* Measures of ONE query from its ranking. out (AM_RM_COUNT, nks) OUT, row AM_RM_* per measure.
 * ranked (nret) doc indices best first; jdoc/jgrade (nj) its judgments (any order, no
 * duplicates). Returns the number of relevant judged docs, or -1 if a doc is judged twice. */
int retrieval_query_measures(double *out, const int *ranked, int nret, const int *jdoc,
                             const int *jgrade, int nj, const int *ks, int nks);

/* Average the measures over queries from precomputed rankings (what eval_retrieval does after
 * retrieval_search). ranked (nq, stride) with nret (nq) valid entries per row. */
int eval_retrieval_ranked(RetrievalScores *out, const int *ranked, const int *nret, int stride,
                          const Qrels *qrels, const int *ks, int nks, const RetrievalOptions *opt);

/* ------------------------------------------------------------------ STS (stats.c) */

typedef struct {
    double cosine_pearson, cosine_spearman;
    double manhattan_pearson, manhattan_spearman;   /* on −L1 distance   */
    double euclidean_pearson, euclidean_spearman;   /* on −L2 distance   */
    double main_score;                              /* cosine_spearman   */
} StsScores;

/* MTEB AbsTaskSTS: similarity of pair i = (a_i, b_i) against gold[i]. (MTEB rescales gold to
 * [0, 1] first; correlations do not change.) a, b (n, dim), gold (n). AM_EINVAL if n < 2. */
int eval_sts(StsScores *out, const float *a, const float *b, const double *gold, int n, int dim);

/* ------------------------------------------------------------------ pair classification (stats.c) */

typedef struct {
    double accuracy, accuracy_threshold;
    double f1, f1_threshold, precision, recall;     /* at the best-F1 threshold */
    double ap;
} PairClassMetrics;

typedef struct {
    PairClassMetrics cosine, dot, manhattan, euclidean;
    double max_accuracy, max_f1, max_precision, max_recall, max_ap;   /* max over the four */
    double main_score;                                                /* max_ap            */
} PairClassScores;

/* MTEB AbsTaskPairClassification._compute_metrics_values for one score list: rows sorted by
 * score (descending if high_is_similar, else ascending; ties keep input order, as Python's
 * stable sorted), the best accuracy and best F1 over the n−1 cut points between consecutive
 * rows (threshold = midpoint), and AP of the scores (negated when low is similar).
 * labels 1 = positive / similar, 0 = negative. */
void pair_class_metrics(PairClassMetrics *out, const double *scores, const int *labels, int n,
                        int high_is_similar);

/* Pair i = (a_i, b_i) with labels[i] in {0, 1}; cosine, dot (high = similar), Manhattan and
 * Euclidean distance (low = similar). a, b (n, dim). MTEB's "similarity" variant (the model's
 * own similarity) equals cosine for our models and is not repeated. AM_EINVAL if n < 2 or a
 * label is not 0/1. */
int eval_pair_classification(PairClassScores *out, const float *a, const float *b,
                             const int *labels, int n, int dim);

/* ------------------------------------------------------------------ bitext mining (stats.c) */

typedef struct {
    double accuracy;                 /* fraction of sources whose nearest target is the gold one */
    double precision, recall, f1;    /* sklearn average='weighted', zero_division=0 (MTEB)         */
    double main_score;               /* f1                                                         */
} BitextScores;

/* MTEB AbsTaskBitextMining: for every source row, its nearest target row by cosine (ties go to
 * the higher index, the retrieval order; MTEB's torch.topk(k=1) usually returns the lower one,
 * which for a group of identical targets gives the same scores); predictions vs gold target indices scored with
 * sklearn's weighted P/R/F1 over the labels = target indices. src (n, dim), tgt (nt, dim);
 * gold (n) target index of each source, or NULL = identity (then nt must be >= n). */
int eval_bitext(BitextScores *out, const float *src, int n, const float *tgt, int nt, int dim,
                const int *gold);

/* ------------------------------------------------------------------ logistic regression (logreg.c) */

/* sklearn LogisticRegression(penalty='l2', C, solver='lbfgs', max_iter, tol, fit_intercept=True)
 * on float64 copies of the features (sklearn casts to float64 for lbfgs), no standardisation.
 * Objective: sklearn >= 1.4 (v = AM_SKLEARN_1_4, MTEB 2): (1/n) Σ_i loss_i + ||W||² / (2Cn), with
 * L-BFGS-B options ftol 64·eps, maxls 50; sklearn 1.2 (AM_SKLEARN_1_2): Σ_i loss_i + ||W||² / (2C),
 * ftol 1e7·eps. Intercepts not penalised, started from 0. Same optimum; gtol = tol applies to the
 * gradient of the objective as scaled, so >= 1.4 stops earlier in absolute terms.
 *   2 classes: binary logistic loss on ONE weight row (class 1 = positive), as sklearn does;
 *   K > 2:     multinomial (softmax) loss with K weight rows.
 * Minimised by L-BFGS (memory 10, strong-Wolfe line search) with scipy's L-BFGS-B stopping rules:
 * max |∂f| <= tol, or relative decrease of f <= ftol, or max_iter iterations (tol <= 0: run to
 * the optimum instead: no decrease test, max |∂f| <= 1e-10 or no further decrease). Our iterate
 * differs from scipy's by the optimiser path only; both approach the same strictly convex
 * optimum (the fixture checks probabilities at a tight tol and accuracy at the defaults). */
typedef struct {
    int dim, n_classes;
    int n_rows;           /* 1 if n_classes == 2, else n_classes */
    double *coef;         /* (n_rows, dim)  */
    double *intercept;    /* (n_rows)       */
    int n_iter;           /* L-BFGS iterations used */
    int converged;        /* 1 if a tolerance was met before max_iter */
} LogReg;

/* Fit. Initialises *m (call logreg_free afterwards, also on error). x (n, dim), y (n) in
 * [0, n_classes); every class must occur at least once (sklearn learns classes_ from y; map
 * absent labels away first, eval_classification does). C > 0. */
int logreg_fit(LogReg *m, const float *x, const int *y, int n, int dim, int n_classes, double C,
               int max_iter, double tol, AmSklearn v);
/* proba (n, n_classes) OUT: softmax (K>2) or [1−σ, σ] (binary), as predict_proba. */
void logreg_predict_proba(const LogReg *m, const float *x, int n, double *proba);
/* pred (n) OUT: argmax of the decision function, first max on ties; binary: class 1 iff z > 0. */
void logreg_predict(const LogReg *m, const float *x, int n, int *pred);
void logreg_free(LogReg *m);

/* ------------------------------------------------------------------ classification (logreg.c) */

typedef struct {
    int n_experiments;      /* 10 (MTEB)                                                        */
    int samples_per_label;  /* 8 (MTEB AbsTaskClassification default; tasks may override).
                               <= 0: train on the whole train set (one fit, copied to all)      */
    uint32_t seed;          /* 42 (MTEB AbsTask.seed)                                           */
    double C;               /* 1.0 */
    int max_iter;           /* 100 (MTEB's LogisticRegression(max_iter=100)) */
    double tol;             /* 1e-4 (sklearn) */
    AmSklearn sklearn;      /* AM_SKLEARN_1_4 (MTEB 2) */
    double *per_example;    /* (n_test) OUT or NULL: fraction of the experiments that classify
                               test row i correctly (its mean is the accuracy) */
} ClassifOptions;
void classif_options_default(ClassifOptions *o);

typedef struct {
    double accuracy, f1, f1_weighted, precision, precision_weighted, recall, recall_weighted;
    double ap, ap_weighted;     /* binary tasks only (AP of the hard predictions, as MTEB); else NAN */
    int n_experiments;
    double main_score;          /* accuracy */
} ClassifScores;

/* MTEB AbsTaskClassification (v2): for experiment e = 0..n_experiments-1, shuffle the persistent
 * index list 0..n_train-1 with a FRESH RandomState(seed) (so experiment e applies the same
 * permutation e+1 times, exactly as MTEB), keep the first samples_per_label indices of each label
 * in that order, fit LogisticRegression on them, predict the whole test set; the scores are means
 * over experiments (ap over those where it is defined). Labels in [0, n_labels). */
int eval_classification(ClassifScores *out, const float *train_x, const int *train_y, int n_train,
                        const float *test_x, const int *test_y, int n_test, int dim, int n_labels,
                        const ClassifOptions *opt);

/* The undersampling step alone (for tests): sel (≤ n) OUT, returns its length; idxs (n) is the
 * persistent permutation (initialise to 0..n-1 before experiment 0). */
int classif_undersample(int *sel, int *idxs, const int *y, int n, int n_labels, int samples_per_label,
                        uint32_t seed);

/* ------------------------------------------------------------------ k-means (kmeans.c) */

/* sklearn MiniBatchKMeans(n_clusters=k, init='k-means++', n_init=1, batch_size, max_iter=100,
 * max_no_improvement=10, tol=0, reassignment_ratio=0.01, random_state=seed), step by step: the
 * validation draw, init on an init_size = min(3·batch, n) random subset with greedy k-means++
 * (2 + ln k local trials), mini-batches of randint draws, per-center running means, random
 * reassignment of small centers, EWA-inertia early stopping, final labels on all points. The
 * random draws are RandomState(seed)'s, in sklearn 1.4's order (opt->sklearn = AM_SKLEARN_1_4:
 * the first k-means++ center is rs.choice(n, p = weights)) or 1.2's (AM_SKLEARN_1_2: rs.randint(n)).
 * Later sklearn changed more: 1.8 sums the k-means++ D² table in float32 and draws the
 * mini-batches with rs.choice(n, B, p) instead of rs.randint, so against it the runs differ. Distances use sklearn's precisions (float64 for k-means++, float32
 * gemm for assignment) but center updates are in double and BLAS orders differ, so a near-tie
 * may resolve differently and the run then diverges. On the fixture the labels and the number
 * of steps equal sklearn 1.2.1's, and the 1.4 port's (tests/ref/eval/sklearn14.py), exactly. kmeans_fit is single-threaded (one BLAS thread). */
typedef struct {
    int k, dim;
    float *centers;       /* (k, dim) */
    int n_steps;          /* mini-batch steps taken */
    double inertia;       /* Σ ||x − c(x)||² over the fitted data */
} KMeans;

typedef struct {
    int batch_size;       /* 512 (MTEB k_mean_batch_size; sklearn default 1024)  */
    int max_iter;         /* 100 epochs */
    uint32_t seed;
    AmSklearn sklearn;    /* k-means++'s first centre: AM_SKLEARN_1_4 (MTEB 2) or 1.2 */
} KMeansOptions;

/* Fit on x (n, dim); labels (n) OUT (may be NULL). Initialises *m; kmeans_free afterwards.
 * 1 <= k <= n. */
int kmeans_fit(KMeans *m, int *labels, const float *x, int n, int dim, int k, const KMeansOptions *opt);
void kmeans_free(KMeans *m);

/* ------------------------------------------------------------------ clustering (kmeans.c) */

typedef struct {
    int n_experiments;      /* 10 (MTEB n_clusters)                                           */
    int sample_size;        /* 16384 (MTEB max_documents_per_cluster), drawn WITH replacement by
                               random.Random(seed).choices as MTEB's clustering (fast) task.
                               <= 0: no resampling, every experiment clusters all n points and
                               experiment e uses k-means seed seed+e (legacy: 10 unseeded runs) */
    int batch_size;         /* 512 */
    uint32_t seed;          /* 42: bootstrap stream and (as MTEB) the same k-means seed each time */
    AmSklearn sklearn;      /* AM_SKLEARN_1_4 (MTEB 2) */
    double *per_experiment; /* (n_experiments) OUT or NULL: each experiment's V-measure */
} ClusterOptions;
void cluster_options_default(ClusterOptions *o);

typedef struct {
    double v_measure;        /* mean over experiments (main score) */
    double v_measure_std;    /* population std (np.std)            */
    int n_experiments;
    double main_score;
} ClusterScores;

/* k = number of distinct labels among all n points (MTEB: np.unique of the level labels). */
int eval_clustering(ClusterScores *out, const float *x, const int *labels, int n, int dim,
                    const ClusterOptions *opt);

/* ------------------------------------------------------------------ uncertainty (boot.c) */

/* Per-example scores of one result: what the main score is a statistic of, so that it can be
 * resampled (standard errors) and two models compared example by example (paired tests)
 * without encoding again. Columns are float32, column-major (col[c * n + i]); the first
 * `model_cols` depend on the model, the rest are shared by every model on the task (gold).
 *   AM_PX_MEAN       1 col: per-example score; statistic = mean. Retrieval: ndcg@10 per
 *                    query. Classification: fraction of experiments right per test row.
 *                    Clustering: V-measure per experiment (the units are experiments).
 *   AM_PX_SPEARMAN   2 cols: cosine of pair i, gold; statistic = Spearman (STS).
 *   AM_PX_MAX_AP     5 cols: cosine, dot, Manhattan, Euclidean of pair i, label 0/1; statistic =
 *                    max AP over the four (distances: low = similar) (pair classification).
 *   AM_PX_F1         2 cols: predicted target, gold target of source i; statistic = sklearn
 *                    weighted F1 (bitext). */
typedef enum { AM_PX_MEAN = 1, AM_PX_SPEARMAN = 2, AM_PX_MAX_AP = 3, AM_PX_F1 = 4 } AmPxKind;

typedef struct {
    int kind;        /* AmPxKind */
    int n;           /* examples */
    int ncols;
    float *col;      /* (ncols, n), owned (px_free) */
} PerExample;

int px_ncols(int kind);          /* columns of a kind, 0 if unknown */
int px_model_cols(int kind);     /* of which model-dependent */
/* Allocates p->col (zeroed). AM_EINVAL for an unknown kind or n < 1. */
int px_init(PerExample *p, int kind, int n);
void px_free(PerExample *p);
/* The statistic on rows idx (m) (with repetition), or on all rows when idx is NULL. */
double px_statistic(const PerExample *p, const int *idx, int m);

/* Serialised: "AMPX" u8 version(1) u8 kind u16 0, u32 n, u32 ncols, then ncols * n float32,
 * all little-endian. px_encode returns a malloc'd buffer and its length in *len. */
void *px_encode(const PerExample *p, size_t *len);
int px_decode(PerExample *p, const void *buf, size_t len);   /* AM_EFORMAT on a bad buffer */

/* Bootstrap standard error of the statistic: B resamples of n rows with replacement, row
 * draws = numpy RandomState(seed).randint(0, n, size=n) per resample; SE = std(ddof=1) of the
 * B statistics (NaN replicates skipped). NAN when n < 2. */
double px_bootstrap_se(const PerExample *p, int B, uint32_t seed);

typedef struct {
    double delta;      /* statistic(a) - statistic(b) on all rows */
    double se;         /* paired bootstrap SE of delta (the same resampled rows for both) */
    double p_value;    /* paired permutation test, two-sided: (1 + #{|d*| >= |delta|}) / (B + 1),
                          d* = the delta after swapping a's and b's model columns on each row
                          with probability 1/2 (RandomState(seed + 1).randint(0, 2, size=n)) */
    int n, B;
} PairedTest;
/* a and b: the same kind and n (two models on the same task and subsample). AM_EINVAL if not. */
int px_paired_test(PairedTest *out, const PerExample *a, const PerExample *b, int B, uint32_t seed);

#endif
