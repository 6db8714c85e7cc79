/* merge_store.h - merges of stored models: the recipe, its id, lineage and materialisation.
 *
 * The methods are src/merge/merge.h's; this layer is what the CLI (`amalgam merge`) and Lua
 * (am.merge) share: it resolves the inputs in a store, checks the request before anything is
 * computed or written, gives the merge its id and stores it (src/store/store_recipe.h).
 *
 * The recipe of a merge is its canonical spec, a JSON object with sorted keys:
 *   {"base": id | null, "method": "ties", "models": [{"id": id, "weight": w}, ...],
 *    "params": {"density": 0.5, "lambda": [0.2, 1], "seed": 3, ...},
 *    "rules": [{"classes": ["attention"], "model": 2, "param": "weight", "pattern": "...", "value": v}...]}
 * ("rules" only when there are some)
 * (weights default to 1; every parameter the method reads is there, its default filled in;
 * options only where they differ from their default, booleans as 0/1; `threads` and `int8_mask`
 * are left out: they do not change the result), so spelling a default out gives the same id. The merged model's id is XXH3-128("amalgam-merge-v1" 0, canonical spec), so the
 * same inputs with the same spec give the same id and a second merge finds the first (nothing
 * computed). Its meta: kind "merged", parents [{id, weight}], base, merge (the spec), content
 * (the content hash of the tensors, checked whenever it is recomputed), the first model's
 * pooling / normalize / max_seq_length / tokenizer keys (so export writes a loadable
 * sentence-transformers directory), source.
 *
 * Inputs may be any stored model of one shape and vocabulary: full models, merged models (also
 * recipe-only ones: computed first) and task vectors (kind task_vector or lora: τ with its
 * parent θ0 gives θ = θ0 + τ). When some input has no MLM head, the head is dropped from all.
 */
#ifndef AM_MERGE_STORE_H
#define AM_MERGE_STORE_H

#include "merge.h"
#include "model.h"
#include "store.h"

typedef struct {
    const char *method;          /* mergekit name ("ties", "linear", ...) */
    const char *base;            /* name or id prefix; NULL = none */
    int n;                       /* models besides the base */
    const char *const *models;   /* names or id prefixes */
    const double *weights;       /* n weights, or NULL = 1 each */
    const char *params_json;     /* NULL or a JSON object: parameter or option name -> number,
                                    [numbers] (a gradient over the layers) or boolean */
    const char *rules_json;      /* NULL or a JSON array of rules, in order (the last match wins):
                                    {param, value (number or gradient list), model (1-based; none =
                                    every model), classes ("attention" or a list of merge.h's class
                                    names), pattern (tensor name substring, or a glob with '*')} */
    const char *name;            /* non-NULL: store the tensors (materialise) and name the merge */
    int materialize;             /* store the tensors even without a name */
    const char *source;          /* meta "source" (the command or recipe), may be NULL */
} MergeRequest;

typedef struct {
    char id[AM_ID_HEX + 1];
    int found;          /* the same merge was stored already: nothing was computed */
    int stored_tensors; /* the model's tensors are in the store now */
    Model *model;       /* the computed model (NULL when found); caller model_delete()s */
    MergeStats stats;   /* of the computation (zero when found) */
} MergeResult;

/* Merge as r says and store the result (recipe only, or with its tensors when r->name or
 * r->materialize). Every check happens before the store is written, so a failure leaves it
 * unchanged. Errors: AM_EINVAL (unknown method, parameter or option with the closest name, a
 * method that needs a base without one, wrong model count, weights all zero or not finite),
 * AM_ENOTFOUND (unknown model), AM_ESHAPE (names the first mismatching tensor), AM_EVOCAB
 * (different vocabularies), AM_EFORMAT (NaN/Inf in an input tensor), store errors. */
int merge_store_merge(Store *st, const MergeRequest *r, MergeResult *out);

/* The canonical spec (malloc'd JSON) and id of r without computing or writing anything
 * (the checks of merge_store_merge that need no tensors). */
int merge_store_recipe(Store *st, const MergeRequest *r, char **spec_json, char id_out[AM_ID_HEX + 1]);

/* The option names a request's params may hold besides the parameters (merge_spec_set_option's). */
const char *const *merge_store_options(int *n);

/* 1 if model id is stored as a recipe only (no tensors). */
int merge_store_is_recipe(Store *st, const char *id);

/* Compute stored model id in memory: its tensors if it has them, else its recipe (inputs
 * loaded or computed recursively, the result checked against the recorded content hash).
 * OUT: *m (model_delete), *vocab / *vocab_len (malloc'd, may be NULL/0). */
int merge_store_load(Store *st, const char *id, Model **m, char **vocab, size_t *vocab_len);

/* The full weights of stored model id as a merge input: its tensors, a task vector plus its
 * parent (θ0 + τ), a recipe computed. OUT as merge_store_load. */
int merge_store_load_weights(Store *st, const char *id, Model **m, char **vocab, size_t *vocab_len);

/* Task-vector diagnostics (amalgam diff, am.diagnose) of models n against base (NULL: the parent
 * the models share, e.g. the checkpoints or task vectors of runs from one model): τ_m = θ_m − θ_base.
 * OUT: *json malloc'd:
 *   {"base": id, "models": [id...], "norm": [‖τ_m‖...], "cosine": [[...]...] (k x k),
 *    "groups": [{"name": "embeddings" | "layer.N" | "pooler" | "head", "norm": [...],
 *                "cosine": [[...]...], "sign_conflict": rate, "conflicts": n, "overlap": n}...],
 *    "tensors": [the same per tensor, "name" = the tensor's]}
 * sign_conflict = conflicts / overlap: of the entries that two or more models change, the share
 * where some go up and some down (TIES' interference). Errors as merge_store_merge's. */
int merge_store_diagnose(Store *st, const char *base, const char *const *models, int n, char **json);

/* The same numbers for any n vectors laid out by tab (e.g. per-task gradients at one model: their
 * cosines and sign conflicts, am.diagnose{data = ...}): the object above without "base" and
 * "models". Every object also has "sign_conflict_pairs" (k x k): of the entries both vectors of a
 * pair change (≠ 0), the share with opposite signs (0 on the diagonal). */
int merge_diag_vectors(const ParamTable *tab, const float *const *v, int n, char **json);

/* What this process merged: merges computed (merge_models calls) and recipes taken from the
 * in-memory copy of the last computed merge instead of being computed again; stored inputs
 * read from the store (inputs_loaded) and taken from the ones kept in memory (inputs_kept). */
typedef struct { size_t computed, reused, inputs_loaded, inputs_kept; } MergeStoreCounts;
void merge_store_counts(MergeStoreCounts *c);
/* Drop the stored inputs kept loaded between merges (merge_store.c; AMALGAM_MERGE_CACHE_MB caps
 * them, default 512). */
void merge_store_forget_inputs(void);

/* Point name at model id; a recipe-only merge is materialised first (its tensors stored). */
int merge_store_name(Store *st, const char *name, const char *id);

#endif
