/* evalrun.h - the evaluation runner: a model (any layer, dim, pooling) on a task -> a stored result.
 *
 * The metric engine (src/eval/metrics.h) scores float arrays; this layer does everything around
 * it:
 *
 *   task spec -> files (dataset.h loaders) -> quick subsample (seeded) -> unique texts
 *     -> embeddings (EmbCache: memory + <store>/cache/emb/, embed_model_encode for the misses)
 *     -> metrics.h -> result JSON (MTEB metric names) -> the store's `results` db.
 *
 * Task types and the files they read
 *   retrieval       BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); docs are
 *                   strip(title + " " + text) as MTEB builds them. Queries with qrels in the split
 *                   are evaluated; ignore_identical_ids drops a query's own doc (same id), and
 *                   without it a warning is logged when query ids are doc ids. Main score
 *                   ndcg_at_10 (hit_rate_at_k and the other trec_eval measures are stored too).
 *   sts             graded JSONL/TSV (sentence1, sentence2, score). cosine_spearman.
 *   pair_classification  graded file with 0/1 scores, or pairs JSONL ((query, positive) = 1,
 *                   (query, negative) = 0). max_ap.
 *   classification  labelled train + test files (or one file split 50/50 by the seed).
 *                   MTEB protocol: 10 experiments x samples_per_label undersampled logistic
 *                   regression. Only the training rows some experiment selects are encoded.
 *                   accuracy.
 *   clustering      labelled file; MTEB bootstrap mini-batch k-means. v_measure.
 *   bitext          pairs JSONL (query = source, first positive = its target) or a BEIR directory
 *                   (query -> its best-graded doc). MTEB's one-to-one mining: every source against
 *                   the targets of all rows, gold = its own row. candidate_pool (not MTEB): the
 *                   targets are every distinct positive and negative, or the whole corpus. f1
 *                   (accuracy = acc@1 is reported too).
 *
 * Quick mode (AM_EVAL_QUICK) evaluates a fixed, seeded subsample: quick.n queries / pairs /
 * test rows / points / sources; retrieval and bitext keep the judged docs (targets) of the chosen
 * queries plus a fixed random sample of the other docs up to quick.docs (one-to-one bitext takes
 * quick.n rows, their targets only); classification draws
 * quick.train training rows. Labelled samples (classification test and training rows, clustering
 * points) are stratified: spread evenly over the labels, so a probe sees every label.
 * quick.experiments and quick.cluster_sample override the protocol,
 * and quick.max_len caps the tokens per text (long documents cost the most to encode).
 * Full mode (AM_EVAL_FULL) uses everything. Both are stored, marked with their mode.
 *
 * Results are keyed by (model id, task name, eval-config hash) in `results` (store_keys.h); the
 * config hash covers everything that changes the numbers: mode, resolved layer / dim / pooling /
 * normalize / max_len, task type and protocol, quick sizes and seed, and a fingerprint of the
 * bytes of the data files. A stored result is returned as is unless AM_EVAL_FORCE.
 *
 * Embedding cache: embeddings are cached per text (XXH3 of the bytes) in a "space" = (model id,
 * layer, pooling, max_len, tokenizer case options). Vectors are kept pooled, un-normalised and
 * at full width, so every dim / normalize variant is derived exactly as the encoder does it
 * (truncate, then l2norm_forward). Texts shared by queries and corpus, by quick and full mode or
 * by several tasks are encoded once. In memory: per runner, capped (AMALGAM_EMBCACHE_MEM_MB,
 * default 512; least recently used spaces go first). On disk: one file per (space, task data
 * fingerprint) under <store>/cache/emb/<space>/<data>.emb holding every text of that data
 * encoded so far, capped at AMALGAM_EMBCACHE_MB (default 1024; 0 disables the disk cache);
 * the least recently used files are deleted first. The disk cache is a plain cache: files are
 * checksummed, a bad one is ignored and rewritten, deleting the directory loses nothing.
 *
 * Errors: AM_OK or a negative AM_E* code with am_lasterror() naming the task, file and problem;
 * AM_EINTR when the progress callback asks to stop. Nothing is written to the store on error.
 */
#ifndef AM_EVALRUN_H
#define AM_EVALRUN_H

#include <stdint.h>

#include "embed.h"
#include "metrics.h"
#include "store.h"

#define AM_EVALRUN_VERSION 2   /* bump when a change alters stored numbers (part of the config hash) */
#define AM_EVAL_BOOT_B 1000      /* bootstrap resamples behind a full result's main_se */
#define AM_EVAL_BOOT_B_QUICK 200 /* ... and a quick one's (kept under the quick mode's time budget) */
#define AM_EVAL_PAIRED_B 500     /* resamples / permutations of a paired test (p resolution 0.002) */

/* ---------------------------------------------------------------- tasks */

typedef enum {
    AM_TASK_RETRIEVAL = 0,
    AM_TASK_STS,
    AM_TASK_PAIRCLASS,
    AM_TASK_CLASSIFICATION,
    AM_TASK_CLUSTERING,
    AM_TASK_BITEXT,
    AM_TASK_NTYPES
} EvalTaskType;

/* "retrieval", "sts", "pair_classification", "classification", "clustering", "bitext" */
const char *evalrun_type_name(EvalTaskType t);
/* Also accepts "pairclass", "pair-classification", "classify", "cluster". AM_EINVAL otherwise. */
int evalrun_type_parse(const char *s, EvalTaskType *out);
/* MTEB main score: ndcg_at_10, cosine_spearman, max_ap, accuracy, v_measure, f1 */
const char *evalrun_type_main_metric(EvalTaskType t);

typedef struct {
    char *name;          /* task name: "wn-def", "beir:data/x" (no NUL, <= 200 bytes) */
    char *dataset;       /* registered dataset name, or NULL */
    EvalTaskType type;
    char *tag;           /* "id", "ood" or NULL (no average) */
    char *main_metric;   /* NULL = evalrun_type_main_metric(type) */
    char *path;          /* BEIR directory or test file (a directory is searched, see evaltask_resolve) */
    char *format;        /* "auto" (NULL), "beir", "pairs", "graded", "labelled" */
    char *split;         /* BEIR qrels split; NULL = "test", or the only split */
    char *train;         /* classification: labelled training file; NULL = train.* next to path, or split */
    uint64_t seed;       /* 42: quick subsample, classification split and protocol seeds */
    /* protocol (MTEB defaults) */
    int samples_per_label;  /* 8; <= 0 = the whole training set */
    int experiments;        /* 10 (classification and clustering) */
    int cluster_sample;     /* 16384 points per clustering experiment (drawn with replacement); <= 0 = all */
    /* retrieval: drop the doc whose id equals the query's id from its ranking (MTEB's
     * ignore_identical_ids, set by ArguAna, Quora, FiQA, ...). 0 = keep it (MTEB's default). */
    int ignore_identical_ids;
    /* bitext: 0 (MTEB) = one-to-one, row i's source against every row's target, gold = row i;
     * 1 = the candidate pool: targets are every distinct positive and negative (pairs) or the
     * whole corpus (BEIR), a harder, non-MTEB variant. */
    int candidate_pool;
    /* classification / clustering: the scikit-learn whose LogisticRegression / k-means++ is
     * reproduced, AM_SKLEARN_1_4 (MTEB 2 requires >= 1.4) or AM_SKLEARN_1_2 (Debian 12). */
    AmSklearn sklearn;
    /* quick mode */
    int quick_n;            /* queries / pairs / test rows / points / sources; <= 0 = all */
    int quick_docs;         /* retrieval corpus / bitext targets (judged ones always kept); <= 0 = all */
    int quick_train;        /* classification training rows; <= 0 = all */
    int quick_experiments;  /* <= 0 = experiments */
    int quick_cluster_sample; /* <= 0 = cluster_sample */
    int quick_max_len;      /* token cap in quick mode (long documents); <= 0 = the config's */
} EvalTask;

/* Defaults above, every string NULL. */
void evaltask_init(EvalTask *t);
void evaltask_free(EvalTask *t);
/* Parse a task spec object (JSON):
 *   {"name": str, "type": str, "path": str, "dataset": str, "tag": "id"|"ood", "main": str,
 *    "format": str, "split": str, "train": str, "seed": int, "samples_per_label": int,
 *    "experiments": int, "cluster_sample": int, "ignore_identical_ids": bool, "candidate_pool": bool,
 *    "sklearn": "1.4"|"1.2",
 *    "quick": {"n": int, "docs": int, "train": int, "experiments": int, "cluster_sample": int,
 *              "max_len": int}}
 * name, type and path are required; unknown keys are AM_EINVAL (catches typos). Initialises *t
 * (evaltask_free it, also on failure). */
int evaltask_from_json(EvalTask *t, const char *json);
/* An ad-hoc task from "KIND:PATH" as `amalgam eval --task` takes it: beir:DIR[#split]
 * (retrieval), sts:FILE, pairs:FILE / pairclass:FILE (pair classification), labels:FILE|DIR
 * (classification), clustering:FILE, bitext:FILE|DIR[#split]. The name is the spec itself.
 * Options follow the path as #words: beir:DIR#ignore_identical_ids, bitext:FILE#candidate_pool,
 * labels:/clustering:...#sklearn-1.2; any other word of a beir/bitext spec is the qrels split. */
int evaltask_from_spec(EvalTask *t, const char *spec);
/* The spec as JSON (malloc'd), the format evaltask_from_json reads. */
char *evaltask_to_json(const EvalTask *t);

/* ---------------------------------------------------------------- configuration */

typedef enum { AM_EVAL_FULL = 0, AM_EVAL_QUICK = 1 } EvalMode;
const char *evalrun_mode_name(EvalMode m);   /* "full", "quick" */

enum {
    AM_EVAL_FORCE = 1 << 0,         /* recompute (and overwrite) even when a result is stored */
    AM_EVAL_NO_STORE = 1 << 1,      /* do not write the result to the store */
    AM_EVAL_NO_DISK_CACHE = 1 << 2, /* neither read nor write <store>/cache/emb */
};

typedef struct {
    int stage;          /* AM_EVAL_STAGE_* */
    const char *task;   /* task name */
    int done, total;    /* texts encoded so far / to encode (encode stage), else 0 / 1 */
} EvalProgress;
enum { AM_EVAL_STAGE_LOAD, AM_EVAL_STAGE_ENCODE, AM_EVAL_STAGE_SCORE, AM_EVAL_STAGE_DONE };
/* Called at each stage and after every encoded batch; non-zero cancels (AM_EINTR). */
typedef int (*EvalProgressFn)(void *ud, const EvalProgress *p);

typedef struct {
    EvalMode mode;
    int layer;          /* -1 = the last layer; 0 = embeddings */
    int dim;            /* 0 = all features (Matryoshka truncation otherwise) */
    int pooling;        /* AM_POOL_MEAN / AM_POOL_CLS; -1 = the model's */
    int normalize;      /* 0 / 1; -1 = the model's */
    int max_len;        /* tokens; 0 = the model's max_seq_length */
    int batch;          /* sentences per forward pass (64); does not change results */
    unsigned flags;     /* AM_EVAL_* */
    /* The model's content id when the caller knows it and the model is not stored (em->id ""),
     * e.g. a merge evaluated in memory: saves hashing the weights for every task. NULL = em->id,
     * or store_model_id of the weights. Results and cache entries are keyed by it. */
    const char *model_id;
    EvalProgressFn progress;
    void *ud;
} EvalConfig;
void eval_config_default(EvalConfig *c);

/* What resolving a config needs to know about a model (from its meta or a loaded EmbedModel). */
typedef struct {
    char id[AM_ID_HEX + 1];
    int layers, hidden, max_position;
    int pooling, normalize, max_seq_length, do_lower_case, strip_accents;
} EvalModelInfo;
int evalrun_model_info_meta(const char *id, const char *meta_json, EvalModelInfo *out);
void evalrun_model_info(const EmbedModel *em, EvalModelInfo *out);

/* The config with every default made concrete for a model. */
typedef struct {
    EvalMode mode;
    int layer, dim, pooling, normalize, max_len;
} EvalResolved;
/* AM_EINVAL for a layer or dim out of range (names the model's sizes). */
int evalrun_resolve(const EvalModelInfo *mi, const EvalConfig *c, EvalResolved *out);

/* ---------------------------------------------------------------- the runner */

typedef struct EvalRunner EvalRunner;

typedef struct {
    long long encode_calls;     /* embed_model_encode calls */
    long long texts_encoded;    /* texts run through the encoder */
    long long texts_cached;     /* texts served by the cache (memory or disk) */
    long long disk_loads;       /* cache files read */
    long long results_stored;   /* results found in the store */
    long long results_computed; /* results computed */
} EvalRunnerStats;

/* One runner per process / Lua state: it owns the in-memory embedding cache and a cache of
 * loaded task data (reloaded when a file's size or mtime changes). Not thread-safe. */
EvalRunner *evalrun_new(void);
void evalrun_delete(EvalRunner *r);
void evalrun_stats(const EvalRunner *r, EvalRunnerStats *out);
/* Disk cache cap in bytes: 0 disables the disk cache, (size_t)-1 = the default. */
void evalrun_set_disk_cap(EvalRunner *r, size_t bytes);
/* Drop every cached embedding and loaded dataset kept in memory. */
void evalrun_clear(EvalRunner *r);

/* Evaluate em on t. st may be NULL (no stored results, no disk cache). Unless AM_EVAL_FORCE,
 * a stored result is returned without loading data or encoding (*from_store = 1).
 * OUT: *result_json malloc'd (see below); *from_store may be NULL.
 *
 * Result JSON (version 1):
 *   {"version":1, "model": id, "task": name, "dataset": name|null, "type": ..., "tag": ...|null,
 *    "mode": "quick"|"full", "config_hash": hex, "data_hash": hex,
 *    "config": {"mode","layer","dim","pooling","normalize","max_len","type","split","seed",
 *               "protocol":{"mteb":"2", "similarity", per type: "ks", "ignore_identical_ids",
 *                           "sklearn":"1.4"|"1.2", "candidates":"one_to_one"|"pool", ...},
 *               "quick":{...}|null, "data": data_hash, "runner": version},
 *    "scores": {MTEB metric names..., "main_score": x}, "main_metric": name, "main_score": x,
 *    "main_se": bootstrap standard error of main_score | null,
 *    "uncertainty": {"method":"bootstrap", "unit": "queries"|"pairs"|"test_rows"|"experiments"|
 *                    "sources", "n", "replicates", "seed", "per_example": true, "time"} (absent
 *                    when the main metric has no per-example form: a non-default main metric),
 *    "sizes": {"queries"|"pairs"|..., "texts": unique texts, "encoded": texts run through the
 *              encoder for this result},
 *    "time": {"load": s, "encode": s, "score": s, "total": s}, "created": ISO-8601 UTC}
 * Scores that are undefined (NaN) are null. */
int evalrun_task(EvalRunner *r, Store *st, EmbedModel *em, const EvalTask *t, const EvalConfig *c,
                 char **result_json /* OUT */, int *from_store /* OUT */);

/* The stored result for (model, task, config), without evaluating: AM_ENOTFOUND if absent.
 * Reads (hashes) the task's data files to compute the config hash, but does not parse them. */
int evalrun_lookup(EvalRunner *r, Store *st, const EvalModelInfo *mi, const EvalTask *t, const EvalConfig *c,
                   char **result_json /* OUT */);

/* The config hash and its JSON (malloc'd, may be NULL) for (model, task, config). */
int evalrun_config_hash(EvalRunner *r, const EvalModelInfo *mi, const EvalTask *t, const EvalConfig *c,
                        char hash[33] /* OUT */, char **config_json /* OUT */);

/* The results key "<model id> 0x00 <task> 0x00 <config hash>" into out; returns its length,
 * 0 if it does not fit. model_id / task / hash may be NULL to build a prefix. */
size_t evalrun_result_key(uint8_t *out, size_t cap, const char *model_id, const char *task, const char *hash);

/* Every stored result (of one model when model_id is not NULL), in key order. The strings are
 * valid during the call; json is a NUL-terminated copy. cb returns 0 to go on, > 0 to stop, < 0
 * to stop with that code. */
typedef int (*EvalResultFn)(void *ud, const char *model_id, const char *task, const char *config_hash,
                            const char *json);
int evalrun_results_list(Store *st, const char *model_id, EvalResultFn cb, void *ud);

/* The per-example scores stored with a result (metrics.h PerExample; the key is the result's
 * key + 0x00 'x', store_keys.h). AM_ENOTFOUND for results stored without them. px_free *out. */
int evalrun_examples_get(Store *st, const char *model_id, const char *task, const char *hash, PerExample *out);

/* ---------------------------------------------------------------- the embedding cache alone */

/* Embeddings of n texts for em under the resolved config c (layer, pooling, max_len; dim and
 * normalize are applied on the way out), through the runner's cache. disk_dir (the cache root,
 * e.g. <store>/cache/emb) and group (a data fingerprint naming the file) may be NULL for
 * memory only. out (n, dim) OUT. encoded (may be NULL) OUT: texts that went through the encoder. */
int evalrun_embed(EvalRunner *r, EmbedModel *em, const EvalResolved *c, int batch, const char *disk_dir,
                  const char *group, const char *const *texts, int n, float *out, int *encoded,
                  EmbedProgress progress, void *ud);

#endif
