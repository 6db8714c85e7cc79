/* store_model.c - models: the content id, the meta JSON, tensor values written with
 * MDB_RESERVE, reads straight from the map, meta update, delete, list. */
#define _GNU_SOURCE
#include "store_internal.h"
#include "am_base.h"
#include "config_json.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- models: ids and meta */

/* Shortest decimal that reads back as the same float ("1e-12", "0.1"). */
static void fmt_float(char *buf, size_t cap, float f) {
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) return;
    }
}

int st_config_finite(const EncoderConfig *c) {
    return isfinite(c->layer_norm_eps) && isfinite(c->hidden_dropout) && isfinite(c->attention_dropout) &&
           isfinite(c->initializer_range);
}

/* The canonical config string hashed into the id: fixed key order, shortest floats. */
static void config_canonical(const EncoderConfig *c, char *buf, size_t cap) {
    char eps[32], hd[32], ad[32], ir[32];
    fmt_float(eps, sizeof eps, c->layer_norm_eps);
    fmt_float(hd, sizeof hd, c->hidden_dropout);
    fmt_float(ad, sizeof ad, c->attention_dropout);
    fmt_float(ir, sizeof ir, c->initializer_range);
    snprintf(buf, cap,
             "{\"attention_probs_dropout_prob\":%s,\"has_pooler\":%d,\"hidden_dropout_prob\":%s,"
             "\"hidden_size\":%d,\"initializer_range\":%s,\"intermediate_size\":%d,\"layer_norm_eps\":%s,"
             "\"max_position_embeddings\":%d,\"num_attention_heads\":%d,\"num_hidden_layers\":%d,"
             "\"pad_token_id\":%d,\"type_vocab_size\":%d,\"vocab_size\":%d}",
             ad, c->has_pooler ? 1 : 0, hd, c->hidden_size, ir, c->intermediate_size, eps, c->max_position,
             c->num_heads, c->num_layers, c->pad_token_id, c->type_vocab_size, c->vocab_size);
}

void st_hash_hex(const void *data, size_t n, char out[AM_ID_HEX + 1]) {
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, data, n);
    am_hasher_hex(h, out);
    am_hasher_delete(h);
}

/* id = XXH3-128("amalgam-model-v1" 0, canonical config 0, per tensor: name 0, u32 ndim,
 *                u64 shape[ndim], f32 data; "vocab" 0, u64 length, vocab bytes), all LE. */
void st_model_hash(const Model *m, const char *vocab, size_t vocab_len, char id_out[AM_ID_HEX + 1]) {
    AmHasher *h = am_hasher_new();
    char cfg[1024];
    config_canonical(&m->cfg, cfg, sizeof cfg);
    am_hasher_update(h, "amalgam-model-v1", 17);
    am_hasher_update(h, cfg, strlen(cfg) + 1);
    for (int i = 0; i < m->tab.n; i++) {
        const ParamInfo *p = &m->tab.t[i];
        uint8_t dims[4 + 32];
        am_le32_put(dims, (uint32_t)p->ndim);
        for (int d = 0; d < p->ndim; d++) am_le64_put(dims + 4 + 8 * d, (uint64_t)p->shape[d]);
        am_hasher_update(h, p->name, strlen(p->name) + 1);
        am_hasher_update(h, dims, 4 + 8 * (size_t)p->ndim);
        am_hasher_update(h, m->params + p->offset, p->numel * sizeof(float));
    }
    uint8_t vl[8];
    am_le64_put(vl, (uint64_t)vocab_len);
    am_hasher_update(h, "vocab", 6);
    am_hasher_update(h, vl, 8);
    if (vocab_len) am_hasher_update(h, vocab, vocab_len);
    am_hasher_hex(h, id_out);
    am_hasher_delete(h);
}

void store_model_id(const Model *m, const char *vocab, size_t vocab_len, char id_out[AM_ID_HEX + 1]) {
    st_model_hash(m, vocab, vocab ? vocab_len : 0, id_out);
}

/* Rebuild the EncoderConfig (and the vocab hash) from a parsed meta object. */
static int config_from_meta(const cJSON *meta, const char *id, EncoderConfig *c, char vhash[AM_ID_HEX + 1],
                            int *n_tensors) {
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    if (!cJSON_IsNumber(fmt)) return am_error(AM_EFORMAT, "model %s: meta has no 'format'", id);
    if (fmt->valueint > AM_MODEL_FORMAT)
        return am_error(AM_EFORMAT, "model %s: meta format %d is newer than this amalgam supports (%d)\n"
                        "HINT: use a newer amalgam build", id, fmt->valueint, AM_MODEL_FORMAT);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(meta, "config");
    if (!cJSON_IsObject(cfg)) return am_error(AM_EFORMAT, "model %s: meta has no 'config' object", id);
    char where[AM_ID_HEX + 32];
    snprintf(where, sizeof where, "model %s: meta config", id);
    int rc = config_json_decode(cfg, where, c);
    if (rc) return rc;
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(meta, "has_pooler");
    c->has_pooler = hp ? cJSON_IsTrue(hp) : 1;
    const cJSON *vh = cJSON_GetObjectItemCaseSensitive(meta, "vocab");
    vhash[0] = 0;
    if (cJSON_IsString(vh)) {
        if (!st_is_hex_id(vh->valuestring)) return am_error(AM_EFORMAT, "model %s: meta 'vocab' is not a hash", id);
        memcpy(vhash, vh->valuestring, AM_ID_HEX + 1);
    } else if (vh && !cJSON_IsNull(vh)) {
        return am_error(AM_EFORMAT, "model %s: meta 'vocab' is not a string", id);
    }
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(meta, "n_tensors");
    *n_tensors = cJSON_IsNumber(nt) ? nt->valueint : -1;
    return AM_OK;
}

static const char *const reserved_keys[] = {"format", "id", "config", "has_pooler", "vocab", "n_params", "n_tensors"};

static int is_reserved(const char *k) {
    for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++)
        if (strcmp(k, reserved_keys[i]) == 0) return 1;
    return 0;
}

/* Build the stored meta JSON from the caller's object and the model.
 * OUT: *json malloc'd; *name malloc'd copy of the caller's "name" or NULL. */
int st_meta_build(const Model *m, const char *id, const char *caller, const char *vhash, char **json,
                      char **name) {
    *json = NULL;
    *name = NULL;
    cJSON *in = NULL;
    if (caller && *caller) {
        in = cJSON_Parse(caller);
        if (!cJSON_IsObject(in)) {
            cJSON_Delete(in);
            return am_error(AM_EINVAL, "model meta must be a JSON object, got: %.80s", caller);
        }
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "name");
        if (nm && !cJSON_IsNull(nm)) {
            int rc = cJSON_IsString(nm) ? st_name_check(nm->valuestring)
                                        : am_error(AM_EINVAL, "model meta 'name' must be a string");
            if (rc) {
                cJSON_Delete(in);
                return rc;
            }
            *name = xstrdup(nm->valuestring);
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format", AM_MODEL_FORMAT);
    cJSON_AddStringToObject(o, "id", id);
    int has_created = 0;
    if (in) {
        cJSON *it = in->child;
        while (it) {
            cJSON *next = it->next;
            if (it->string && !is_reserved(it->string)) {
                if (strcmp(it->string, "created") == 0) has_created = 1;
                cJSON_AddItemToObject(o, it->string, cJSON_DetachItemViaPointer(in, it));
            }
            it = next;
        }
        cJSON_Delete(in);
    }
    cJSON_AddItemToObject(o, "config", config_json_encode(&m->cfg));
    cJSON_AddBoolToObject(o, "has_pooler", m->cfg.has_pooler != 0);
    if (vhash) cJSON_AddStringToObject(o, "vocab", vhash);
    else cJSON_AddNullToObject(o, "vocab");
    cJSON_AddNumberToObject(o, "n_params", (double)m->tab.total);
    cJSON_AddNumberToObject(o, "n_tensors", m->tab.n);
    if (!has_created) {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(o, "created", ts);
    }
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    AM_ASSERT(*json != NULL);
    return AM_OK;
}

/* ---------------------------------------------------------------- models: put */

int st_put_tensors(StoreTxn *t, const Model *m, const char *id) {
    uint8_t key[AM_ID_HEX + 1 + AM_NAME_MAX];
    for (int i = 0; i < m->tab.n; i++) {
        const ParamInfo *p = &m->tab.t[i];
        size_t klen = store_key_pair(key, sizeof key, id, p->name);
        AM_ASSERT(klen > 0);
        size_t bytes = p->numel * sizeof(float);
        void *dst;
        /* MDB_RESERVE: LMDB hands us the value's space; header and data go straight in */
        int rc = st_raw_put(t, AM_DB_TENSORS, key, klen, NULL, AM_TENSOR_HDR_SIZE + bytes, MDB_RESERVE, &dst);
        if (rc) return rc;
        am_tensor_header_encode(dst, p->ndim, p->shape);
        memcpy((uint8_t *)dst + AM_TENSOR_HDR_SIZE, m->params + p->offset, bytes);
        st_hook(t->s, "model_put:tensor", i);
    }
    return AM_OK;
}

typedef struct {
    const Model *m;
    const char *id;
    const char *meta;
    const char *vocab;
    size_t vocab_len;
    const char *vhash;
    const char *name;
    int existed;
} PutCtx;

static int model_put_fn(StoreTxn *t, void *ud) {
    PutCtx *c = ud;
    Store *s = t->s;
    const Model *m = c->m;
    MDB_val v;
    int rc = st_raw_get(t->txn, s, AM_DB_MODELS, c->id, AM_ID_HEX, &v);
    c->existed = rc == AM_OK;
    if (rc && rc != AM_ENOTFOUND) return rc;
    if (!c->existed) {
        if (c->vhash) {
            rc = st_raw_put(t, AM_DB_VOCAB, c->vhash, AM_ID_HEX, c->vocab, c->vocab_len, MDB_NOOVERWRITE, NULL);
            if (rc && rc != AM_EEXIST) return rc;   /* EEXIST: shared with another model */
        }
        if ((rc = st_put_tensors(t, m, c->id))) return rc;
        rc = st_raw_put(t, AM_DB_MODELS, c->id, AM_ID_HEX, c->meta, strlen(c->meta), 0, NULL);
        if (rc) return rc;
    }
    if (c->name) {
        rc = st_raw_put(t, AM_DB_NAMES, c->name, strlen(c->name), c->id, AM_ID_HEX, 0, NULL);
        if (rc) return rc;
    }
    return AM_OK;
}

int store_model_put(Store *s, const Model *m, const char *meta_json, const char *vocab, size_t vocab_len,
                    char id_out[AM_ID_HEX + 1]) {
    id_out[0] = 0;
    if (!st_config_finite(&m->cfg))
        return am_error(AM_EINVAL, "store %s: model config has a non-finite float", s->dir);
    if (!vocab) vocab_len = 0;
    char id[AM_ID_HEX + 1], vhash[AM_ID_HEX + 1];
    st_model_hash(m, vocab, vocab_len, id);
    if (vocab_len) st_hash_hex(vocab, vocab_len, vhash);
    char *meta, *name;
    int rc = st_meta_build(m, id, meta_json, vocab_len ? vhash : NULL, &meta, &name);
    if (rc) return rc;
    PutCtx c = {.m = m, .id = id, .meta = meta, .vocab = vocab, .vocab_len = vocab_len,
                .vhash = vocab_len ? vhash : NULL, .name = name};
    /* size hint: every tensor in its own overflow pages, plus meta and vocab */
    size_t hint = strlen(meta) + vocab_len + 2 * s->psize;
    for (int i = 0; i < m->tab.n; i++)
        hint += (AM_TENSOR_HDR_SIZE + 16 + m->tab.t[i].numel * sizeof(float) + s->psize - 1) / s->psize * s->psize + 128;
    rc = store_write(s, hint, model_put_fn, &c);
    free(meta);
    free(name);
    if (rc) return am_error_wrap(rc, "storing model %s", id);
    memcpy(id_out, id, AM_ID_HEX + 1);
    if (c.existed) am_log(AM_LOG_INFO, "store %s: model %s already stored", s->dir, id);
    return AM_OK;
}

/* ---------------------------------------------------------------- models: get */

char *st_dup_val(const MDB_val *v) {
    char *p = malloc(v->mv_size + 1);
    if (!p) return NULL;
    memcpy(p, v->mv_data, v->mv_size);
    p[v->mv_size] = 0;
    return p;
}

int st_unknown_id(const Store *s, const char *id) {
    return am_error(AM_ENOTFOUND, "unknown model '%s' (see amalgam ls models)", id);
}

int store_model_get(Store *s, const char *id, Model **out, char **meta_json, char **vocab, size_t *vocab_len) {
    *out = NULL;
    if (meta_json) *meta_json = NULL;
    if (vocab) *vocab = NULL;
    if (vocab_len) *vocab_len = 0;
    int rc = st_id_check(s, id);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = st_txn_open(s, 0, &txn))) return rc;
    Model *m = NULL;
    cJSON *meta = NULL;
    char *meta_copy = NULL, *vocab_copy = NULL;
    MDB_cursor *cur = NULL;
    MDB_val v, vv = {0, NULL};

    rc = st_raw_get(txn, s, AM_DB_MODELS, id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) rc = st_unknown_id(s, id);
    if (rc) goto leave;
    meta = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (!cJSON_IsObject(meta)) {
        rc = am_error(AM_EFORMAT, "model %s: meta is not a JSON object", id);
        goto leave;
    }
    if (meta_json && !(meta_copy = st_dup_val(&v))) {
        rc = am_error(AM_ENOMEM, "model %s: cannot allocate the meta copy", id);
        goto leave;
    }
    /* a merged model kept as its recipe has no tensors: src/api/merge_store.h computes it */
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only"))) {
        rc = am_error(AM_ENOTFOUND, "model %s is a merge recipe without stored tensors (load it through "
                      "embed_model_load, which computes it, or save it by name)", id);
        goto leave;
    }
    EncoderConfig cfg;
    char vhash[AM_ID_HEX + 1];
    int n_tensors = -1;
    if ((rc = config_from_meta(meta, id, &cfg, vhash, &n_tensors))) goto leave;
    if ((rc = model_new(&cfg, &m))) {
        rc = am_error_wrap(rc, "model %s: config in meta", id);
        goto leave;
    }
    /* every tensor of the table, copied from the map into the flat buffer */
    uint8_t key[AM_ID_HEX + 1 + AM_NAME_MAX];
    for (int i = 0; i < m->tab.n; i++) {
        const ParamInfo *p = &m->tab.t[i];
        size_t klen = store_key_pair(key, sizeof key, id, p->name);
        MDB_val k = {klen, key};
        int mrc = mdb_get(txn, s->dbi[AM_DB_TENSORS], &k, &v);
        if (mrc == MDB_NOTFOUND) {
            rc = am_error(AM_EFORMAT, "model %s: tensor '%s' missing from the store", id, p->name);
            goto leave;
        }
        if (mrc) {
            rc = st_mdb_fail(s, mrc, "get", AM_DB_TENSORS, key, klen);
            goto leave;
        }
        AmTensorHeader h;
        const char *why = am_tensor_header_decode(v.mv_data, v.mv_size, &h);
        if (why) {
            rc = am_error(AM_EFORMAT, "model %s: tensor '%s': %s", id, p->name, why);
            goto leave;
        }
        int same = h.ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = h.shape[d] == p->shape[d];
        if (!same) {
            char got[96], want[96];
            int o = 0, w = 0;
            for (int d = 0; d < h.ndim; d++) o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", d ? ", " : "", (long long)h.shape[d]);
            for (int d = 0; d < p->ndim; d++) w += snprintf(want + w, sizeof want - (size_t)w, "%s%lld", d ? ", " : "", (long long)p->shape[d]);
            rc = am_error(AM_EFORMAT, "model %s: tensor '%s' has shape [%s] in the store but the config needs [%s]",
                          id, p->name, got, want);
            goto leave;
        }
        memcpy(m->params + p->offset, (const uint8_t *)v.mv_data + h.hdr_size, p->numel * sizeof(float));
    }
    /* no stray tensors under this id (e.g. a pooler the config does not have) */
    int mrc = mdb_cursor_open(txn, s->dbi[AM_DB_TENSORS], &cur);
    if (mrc) {
        rc = st_mdb_fail(s, mrc, "cursor", AM_DB_TENSORS, NULL, 0);
        goto leave;
    }
    MDB_val k = {AM_ID_HEX + 1, key};
    memcpy(key, id, AM_ID_HEX);
    key[AM_ID_HEX] = 0;
    int count = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < AM_ID_HEX + 1 || memcmp(k.mv_data, key, AM_ID_HEX + 1) != 0) break;
        count++;
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        rc = st_mdb_fail(s, mrc, "cursor", AM_DB_TENSORS, NULL, 0);
        goto leave;
    }
    if (count != m->tab.n || (n_tensors >= 0 && n_tensors != m->tab.n)) {
        rc = am_error(AM_EFORMAT, "model %s: %d tensors in the store, meta says %d, the config needs %d", id, count,
                      n_tensors, m->tab.n);
        goto leave;
    }
    if (vhash[0]) {
        rc = st_raw_get(txn, s, AM_DB_VOCAB, vhash, AM_ID_HEX, &vv);
        if (rc == AM_ENOTFOUND) rc = am_error(AM_EFORMAT, "model %s: its vocab %s is missing from the store", id, vhash);
        if (rc) goto leave;
    }
    char check[AM_ID_HEX + 1];
    st_model_hash(m, vv.mv_data, vv.mv_size, check);
    /* a merged model's id is its recipe's hash; "content" keeps the hash of its tensors */
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(meta, "content");
    if (strcmp(check, cJSON_IsString(content) ? content->valuestring : id) != 0) {
        rc = am_error(AM_EFORMAT, "model %s: content hash is %s: the stored tensors or vocab are corrupted", id, check);
        goto leave;
    }
    if (vocab && vhash[0] && !(vocab_copy = st_dup_val(&vv))) {
        rc = am_error(AM_ENOMEM, "model %s: cannot allocate the vocab copy", id);
        goto leave;
    }
    rc = AM_OK;
leave:
    if (cur) mdb_cursor_close(cur);
    st_txn_close(s, txn, 0);
    cJSON_Delete(meta);
    if (rc) {
        model_delete(m);
        free(meta_copy);
        free(vocab_copy);
        return rc;
    }
    *out = m;
    if (meta_json) *meta_json = meta_copy;
    if (vocab && vocab_copy) {
        *vocab = vocab_copy;
        if (vocab_len) *vocab_len = vv.mv_size;
    }
    return AM_OK;
}

int store_model_meta(Store *s, const char *id, char **json) {
    *json = NULL;
    int rc = st_id_check(s, id);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = st_txn_open(s, 0, &txn))) return rc;
    MDB_val v;
    rc = st_raw_get(txn, s, AM_DB_MODELS, id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) rc = st_unknown_id(s, id);
    if (!rc && !(*json = st_dup_val(&v))) rc = am_error(AM_ENOMEM, "model %s: cannot allocate the meta copy", id);
    st_txn_close(s, txn, 0);
    return rc;
}

/* ---------------------------------------------------------------- models: update, delete, list */

typedef struct { const char *id; const cJSON *patch; } MetaCtx;

static int meta_update_fn(StoreTxn *t, void *ud) {
    MetaCtx *c = ud;
    MDB_val v;
    int rc = st_raw_get(t->txn, t->s, AM_DB_MODELS, c->id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) return st_unknown_id(t->s, c->id);
    if (rc) return rc;
    cJSON *meta = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return am_error(AM_EFORMAT, "model %s: meta is not a JSON object", c->id);
    }
    for (const cJSON *it = c->patch->child; it; it = it->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(meta, it->string);
        if (!cJSON_IsNull(it)) cJSON_AddItemToObject(meta, it->string, cJSON_Duplicate(it, 1));
    }
    char *js = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    AM_ASSERT(js != NULL);
    rc = st_raw_put(t, AM_DB_MODELS, c->id, AM_ID_HEX, js, strlen(js), 0, NULL);
    free(js);
    return rc;
}

int store_model_meta_update(Store *s, const char *id, const char *patch_json) {
    int rc = st_id_check(s, id);
    if (rc) return rc;
    cJSON *patch = patch_json ? cJSON_Parse(patch_json) : NULL;
    if (!cJSON_IsObject(patch)) {
        cJSON_Delete(patch);
        return am_error(AM_EINVAL, "meta update must be a JSON object, got: %.80s", patch_json ? patch_json : "(null)");
    }
    for (const cJSON *it = patch->child; it; it = it->next)
        if (is_reserved(it->string)) {
            rc = am_error(AM_EINVAL, "meta update: key '%s' is reserved (it is derived from the model)", it->string);
            cJSON_Delete(patch);
            return rc;
        }
    MetaCtx c = {id, patch};
    rc = store_write(s, strlen(patch_json) + 4096, meta_update_fn, &c);
    cJSON_Delete(patch);
    return rc;
}

/* Delete every key of db starting with prefix (cursor walk inside the txn). */
int st_del_prefix(StoreTxn *t, AmDb db, const void *prefix, size_t plen, const void *match_val, size_t mlen) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[db], &cur);
    if (mrc) return st_mdb_fail(t->s, mrc, "cursor", (int)db, NULL, 0);
    MDB_val k = {plen, (void *)prefix}, v;
    mrc = plen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)) {
            mrc = MDB_NOTFOUND;   /* past the prefix: done */
            break;
        }
        if (!match_val || (v.mv_size == mlen && memcmp(v.mv_data, match_val, mlen) == 0)) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc) break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (mrc == MDB_NOTFOUND) return AM_OK;
    if (mrc == MDB_MAP_FULL) {
        t->mapfull = 1;
        t->need = 0;
    }
    return st_mdb_fail(t->s, mrc, "delete range", (int)db, prefix, plen);
}

static int model_delete_fn(StoreTxn *t, void *ud) {
    const char *id = ud;
    Store *s = t->s;
    MDB_val v;
    int rc = st_raw_get(t->txn, s, AM_DB_MODELS, id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) return st_unknown_id(s, id);
    if (rc) return rc;
    char vhash[AM_ID_HEX + 1] = {0};
    cJSON *meta = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    const cJSON *vh = cJSON_GetObjectItemCaseSensitive(meta, "vocab");
    if (cJSON_IsString(vh) && st_is_hex_id(vh->valuestring)) memcpy(vhash, vh->valuestring, AM_ID_HEX + 1);
    cJSON_Delete(meta);

    uint8_t prefix[AM_ID_HEX + 1];
    memcpy(prefix, id, AM_ID_HEX);
    prefix[AM_ID_HEX] = 0;
    if ((rc = st_del_prefix(t, AM_DB_TENSORS, prefix, sizeof prefix, NULL, 0))) return rc;
    if ((rc = st_raw_del(t, AM_DB_MODELS, id, AM_ID_HEX))) return rc;
    if ((rc = st_del_prefix(t, AM_DB_NAMES, NULL, 0, id, AM_ID_HEX))) return rc;
    if (!vhash[0]) return AM_OK;
    /* drop the vocab unless another model's meta mentions it */
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(t->txn, s->dbi[AM_DB_MODELS], &cur);
    if (mrc) return st_mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
    MDB_val k;
    int shared = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && !shared;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        shared = memmem(v.mv_data, v.mv_size, vhash, AM_ID_HEX) != NULL;
    mdb_cursor_close(cur);
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) return st_mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
    if (shared) return AM_OK;
    rc = st_raw_del(t, AM_DB_VOCAB, vhash, AM_ID_HEX);
    return rc == AM_ENOTFOUND ? AM_OK : rc;
}

int store_model_delete(Store *s, const char *id) {
    int rc = st_id_check(s, id);
    if (rc) return rc;
    char idc[AM_ID_HEX + 1];
    memcpy(idc, id, sizeof idc);
    return store_write(s, 0, model_delete_fn, idc);
}

static int is_model_key(const MDB_val *k) { return k->mv_size == AM_ID_HEX; }   /* else not a model id: ignore */

int store_model_list(Store *s, StoreModelFn cb, void *ud) { return st_list(s, AM_DB_MODELS, is_model_key, cb, ud); }

