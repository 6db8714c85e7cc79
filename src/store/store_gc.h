/* store_gc.h - sizes and garbage collection of the model databases (amalgam rm / gc / du).
 *
 * Sizes are logical: key + value bytes as stored (LMDB adds page overhead, and the file keeps
 * freed pages for reuse; store_stat has the page counts, store_compact shrinks the file).
 * Deduplication is by whole model: identical models have one content id and are stored once;
 * tensors are stored per model (two checkpoints that share a frozen tensor both hold it).
 */
#ifndef AM_STORE_GC_H
#define AM_STORE_GC_H

#include "store.h"

/* Bytes of model `id` (a full id): its meta and every tensor (keys and values). AM_ENOTFOUND. */
int store_model_bytes(Store *s, const char *id, size_t *bytes /* OUT */);
/* Bytes (keys + values) of every key of db starting with prefix (plen 0: the whole db). */
int store_db_bytes(Store *s, const char *db, const void *prefix, size_t plen, size_t *bytes /* OUT */);

typedef struct {
    size_t tensors, tensor_bytes;   /* tensors of ids without a model meta (a store written by an older build) */
    size_t vocabs, vocab_bytes;     /* vocab entries no model meta names */
    size_t names;                   /* names pointing at no model */
    size_t results, result_bytes;   /* eval results of models that are gone */
} StoreGcFreed;

/* Delete, in one write transaction, everything of the model databases that no model references
 * (the list above). dry_run: count only. Runs and their trainer state are not touched here. */
int store_gc(Store *s, int dry_run, StoreGcFreed *freed /* OUT */);

/* Delete the eval results of model id (keys "<id> 0x00 ..."). OUT (may be NULL): how many, bytes. */
int store_results_delete(Store *s, const char *id, size_t *n, size_t *bytes);

#endif
