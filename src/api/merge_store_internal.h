/* merge_store_internal.h - what merge_spec.c (the canonical spec of a request) shares with
 * merge_store.c (materialising and storing it); not part of the api layer's interface. */
#ifndef AM_MERGE_STORE_INTERNAL_H
#define AM_MERGE_STORE_INTERNAL_H

#include "merge_store.h"

#include <cjson/cJSON.h>

/* the string member k of j, or NULL */
const char *merge_store_jstr(const cJSON *j, const char *k);
/* the checked, canonical params object of a request; spec (may be NULL) gets the options */
int merge_store_params_canonical(MergeMethod mm, const char *params_json, cJSON **out, MergeSpec *spec);
/* the checked, canonical rules array; ms (may be NULL) gets the rules */
int merge_store_rules_canonical(MergeMethod mm, int n_models, const cJSON *in, cJSON **out, MergeSpec *ms);
/* the recipe id of a canonical spec string */
void merge_store_recipe_id(const char *spec, char id[AM_ID_HEX + 1]);
/* the tensor-free checks of r and its canonical spec object (ids resolved) */
int merge_store_request_spec(Store *st, const MergeRequest *r, cJSON **out);

#endif
