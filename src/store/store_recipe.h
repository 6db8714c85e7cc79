/* store_recipe.h - merged models in the store: recipe-only records and tensors under a recipe id.
 *
 * A merge is deterministic, so a merged model is identified by its recipe: its id is the hash of
 * the canonical merge spec (method, base, parents with weights, parameters; src/api/merge_store.h
 * computes it), not of its tensors. It is stored in one of two forms under that id in `models`:
 *   - recipe only: the meta alone, with "recipe_only": true and no tensors (sweep points, slider
 *     exploration); its config, vocab hash and sizes are those the merge will have;
 *   - materialised: meta + tensors like any model, with "content" = the content hash of the
 *     tensors and vocab (what store_model_get checks instead of the id).
 * store_model_get refuses a recipe-only model (AM_ENOTFOUND, saying so); embed_model_load
 * computes it. rm/gc treat both as models (their "parents" and "base" keep the inputs alive).
 */
#ifndef AM_STORE_RECIPE_H
#define AM_STORE_RECIPE_H

#include "store.h"

/* Store merged model m under id (its recipe's hash), its meta built as store_model_put does
 * (caller keys + config, vocab hash, sizes) plus "content" (the content hash of m and vocab).
 * recipe_only: the meta alone with "recipe_only": true (the vocab is stored, the tensors are not);
 * else the tensors too, replacing a recipe-only record under id (a materialised one is kept).
 * An existing record is otherwise left as it is. meta_json's "name" (if any) is pointed at id in
 * the same transaction. Errors: AM_EINVAL (bad id, meta or name), AM_ESTORE, AM_EMAPFULL. */
int store_merged_put(Store *s, const char *id, const Model *m, const char *meta_json, const char *vocab,
                     size_t vocab_len, int recipe_only);

/* 1 if meta_json (a stored meta) is a recipe-only record */
int store_meta_recipe_only(const char *meta_json);

#endif
