/* store_recipe.c - merged models: recipe-only records and tensors stored under a recipe id
 * (store_recipe.h). */
#define _GNU_SOURCE
#include "store_internal.h"
#include "store_recipe.h"
#include "am_base.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int store_meta_recipe_only(const char *meta_json) {
    cJSON *j = cJSON_Parse(meta_json ? meta_json : "");
    int r = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "recipe_only"));
    cJSON_Delete(j);
    return r;
}

typedef struct {
    const char *id, *meta, *name;
    const Model *m;
    int recipe_only;
    const char *vocab, *vhash;
    size_t vocab_len;
} RecipeCtx;

static int recipe_put_fn(StoreTxn *t, void *ud) {
    RecipeCtx *c = ud;
    Store *s = t->s;
    MDB_val v;
    int rc = st_raw_get(t->txn, s, AM_DB_MODELS, c->id, AM_ID_HEX, &v);
    if (rc && rc != AM_ENOTFOUND) return rc;
    int existed = rc == AM_OK;
    am_clearerror();
    /* a materialised record stays; a recipe-only one is replaced only by one with tensors */
    int write = !existed;
    if (existed && !c->recipe_only) write = memmem(v.mv_data, v.mv_size, "\"recipe_only\":true", 18) != NULL;
    if (write && c->vhash) {
        rc = st_raw_put(t, AM_DB_VOCAB, c->vhash, AM_ID_HEX, c->vocab, c->vocab_len, MDB_NOOVERWRITE, NULL);
        if (rc && rc != AM_EEXIST) return rc;
        am_clearerror();
    }
    if (write && !c->recipe_only && (rc = st_put_tensors(t, c->m, c->id))) return rc;
    if (write && (rc = st_raw_put(t, AM_DB_MODELS, c->id, AM_ID_HEX, c->meta, strlen(c->meta), 0, NULL))) return rc;
    if (c->name && (rc = st_raw_put(t, AM_DB_NAMES, c->name, strlen(c->name), c->id, AM_ID_HEX, 0, NULL))) return rc;
    return AM_OK;
}

int store_merged_put(Store *s, const char *id, const Model *m, const char *meta_json, const char *vocab,
                     size_t vocab_len, int recipe_only) {
    int rc = st_id_check(s, id);
    if (rc) return rc;
    if (!st_config_finite(&m->cfg)) return am_error(AM_EINVAL, "store %s: model config has a non-finite float", s->dir);
    if (!vocab) vocab_len = 0;
    char content[AM_ID_HEX + 1], vhash[AM_ID_HEX + 1];
    st_model_hash(m, vocab, vocab_len, content);
    if (vocab_len) st_hash_hex(vocab, vocab_len, vhash);
    char *meta = NULL, *name = NULL;
    if ((rc = st_meta_build(m, id, meta_json, vocab_len ? vhash : NULL, &meta, &name))) return rc;
    cJSON *j = cJSON_Parse(meta);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "recipe_only");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "content");
    cJSON_AddStringToObject(j, "content", content);
    if (recipe_only) cJSON_AddTrueToObject(j, "recipe_only");
    free(meta);
    meta = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    AM_ASSERT(meta != NULL);
    RecipeCtx c = {.id = id, .meta = meta, .name = name, .m = m, .recipe_only = recipe_only, .vocab = vocab,
                   .vocab_len = vocab_len, .vhash = vocab_len ? vhash : NULL};
    size_t hint = strlen(meta) + vocab_len + 2 * s->psize;
    for (int i = 0; !recipe_only && i < m->tab.n; i++)
        hint += (AM_TENSOR_HDR_SIZE + 16 + m->tab.t[i].numel * sizeof(float) + s->psize - 1) / s->psize * s->psize + 128;
    rc = store_write(s, hint, recipe_put_fn, &c);
    free(meta);
    free(name);
    return rc ? am_error_wrap(rc, "storing merged model %s", id) : AM_OK;
}
