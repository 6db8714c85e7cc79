/* evalrun_internal.h - pieces shared by the files of src/evalrun (not a public API). */
#ifndef AM_EVALRUN_INTERNAL_H
#define AM_EVALRUN_INTERNAL_H

#include "evalrun.h"
#include "dataset.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- embcache.c */

typedef struct EmbCache EmbCache;

/* The identity of an embedding space: everything that changes a pooled, un-normalised,
 * full-width vector of a text. */
typedef struct {
    const char *model_id;
    int layer, pooling, max_len, do_lower_case, strip_accents;
    int hidden;
} EmbSpaceKey;

typedef struct {
    long long encode_calls, texts_encoded, texts_cached, disk_loads;
} EmbCacheCounts;

EmbCache *embcache_new(void);
void embcache_delete(EmbCache *c);
void embcache_clear(EmbCache *c);
void embcache_set_disk_cap(EmbCache *c, size_t bytes);
void embcache_counts(const EmbCache *c, EmbCacheCounts *out);
/* See evalrun_embed. dim in [1, hidden]. */
int embcache_embed(EmbCache *c, EmbedModel *em, const EmbSpaceKey *k, int batch, const char *disk_dir,
                   const char *group, const char *const *texts, int n, int dim, int normalize, float *out,
                   int *encoded, EmbedProgress progress, void *ud);

/* ---------------------------------------------------------------- task_spec.c, task_data.c, task_inst.c */

/* Files a task reads (resolved from path / train / format): OUT *files (malloc'd array of
 * malloc'd strings), *nfiles; *beir_dir (malloc'd or NULL); *train_file (malloc'd or NULL).
 * The data fingerprint hashes these files. */
typedef struct {
    char *beir_dir;          /* retrieval / bitext from BEIR */
    char *test_file;         /* everything else */
    char *train_file;        /* classification */
    DatasetKind kind;        /* of test_file */
    char **files;
    int nfiles;
} TaskFiles;
/* A loaded task: the parsed files and their fingerprint. Cached by the runner. */
typedef struct TaskData {
    char key[33];            /* hash of the spec fields that select files */
    char data_hash[33];      /* fingerprint of the bytes of every file read */
    TaskFiles tf;            /* what is read (owns the paths) */
    int nfiles;
    char **files;            /* (nfiles) = tf.files */
    int64_t *sig;            /* (nfiles * 3) size, mtime ns, inode at load time */
    Dataset *test;           /* retrieval: BEIR; else the evaluated file */
    Dataset *train;          /* classification: training rows (NULL otherwise) */
    int split;               /* retrieval / BEIR bitext: index of the qrels split used */
    int parsed;              /* 0: files and fingerprint only (test/train NULL) */
    double used;             /* last use (am_now), for the runner's small LRU */
    struct TaskData *next;
} TaskData;

int taskfiles_resolve(const EvalTask *t, TaskFiles *out);
void taskfiles_free(TaskFiles *f);
/* Fingerprint of the files (XXH3-128 hex of names and bytes). */
int taskfiles_hash(const TaskFiles *f, char out[33]);
/* Resolve the files and fingerprint them; with parse, also load the datasets. */
int taskdata_load(const EvalTask *t, int parse, TaskData **out);
/* Parse the files of a fingerprint-only TaskData (no-op when parsed). */
int taskdata_parse(const EvalTask *t, TaskData *d);
void taskdata_delete(TaskData *d);
/* 1 when every file still has the size/mtime/inode recorded at load time. */
int taskdata_fresh(const TaskData *d);
/* Hash of the spec fields that decide which files are read and how. */
void evaltask_files_key(const EvalTask *t, char out[33]);

/* An instance: what one evaluation embeds and scores. All arrays malloc'd (evalinst_free). */
typedef struct {
    int ntexts;
    const char **texts;      /* (ntexts) unique texts, borrowed from the datasets or `own` */
    char **own;              /* strings built here (retrieval docs with titles) */
    int nown, cap_own;
    /* roles: indices into texts */
    int na, nb;
    int *a;                  /* queries / sentence1 / sources / test rows / points */
    int *b;                  /* docs / sentence2 / targets / train rows (-1 = not encoded) */
    /* retrieval */
    int *qoff, *qdoc, *qgrade;     /* CSR over a: doc positions in b */
    const char **doc_ids;          /* (nb) */
    int *self_doc;                 /* (na) ignore_identical_ids: position in b of the doc whose id is
                                      the query's, or -1; NULL when the option is off */
    int n_identical;               /* queries whose id is also a doc id (whether or not ignored) */
    /* sts / pair classification */
    double *gold;            /* (na) */
    int *la;                 /* (na) labels: pair class 0/1, classification test, clustering */
    int *lb;                 /* (nb) classification train labels */
    int n_labels;
    int n_train_full;        /* classification: rows of the training set considered */
    int *gold_idx;           /* bitext: (na) target position in b */
    /* sizes for the result */
    const char *size_a, *size_b; /* "queries"/"docs", "pairs", "test"/"train", "points", "sources"/"targets" */
    int experiments, cluster_sample;
} EvalInst;

int evalinst_build(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *out);
void evalinst_free(EvalInst *in);

/* k distinct of 0..n-1 (all if k <= 0 or k >= n), ascending, seeded. Returns the count. */
int evalrun_pick(int n, int k, uint64_t seed, int *out);
/* k of n labelled rows (labels in [0, n_labels)) spread evenly over the labels (task_inst.c). */
int evalrun_pick_stratified(const int *label, int n, int n_labels, int k, uint64_t seed, int *out);

/* ---------------------------------------------------------------- runner_score.c, runner_results.c */

/* o[k] = v, null when v is not finite (JSON has no NaN) */
void evalrun_add_num(cJSON *o, const char *k, double v);
/* Runs the metric of t's type on the embeddings X (in->ntexts x dim): adds the scores to s and the
 * sizes to sizes; px gets the per-example scores of the main metric (px->kind 0 when none). */
int evalrun_score(const EvalTask *t, const EvalInst *in, const float *X, int dim, cJSON *s, cJSON *sizes,
                  PerExample *px);
/* The stored result JSON (malloc'd) of (model_id, task, hash): AM_ENOTFOUND (error cleared) when
 * there is none or st is NULL. */
int evalrun_get_stored(Store *st, const char *model_id, const char *task, const char *hash, char **json);

#endif
