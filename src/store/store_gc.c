/* store_gc.c - sizes and garbage collection of the model databases (store_gc.h), on the public
 * store API only: one read pass collects, one write transaction deletes. */
#define _GNU_SOURCE
#include "store_gc.h"
#include "am_base.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- key lists */

typedef struct {
    char **k;
    size_t *len;
    size_t n, cap;
} Keys;

static void keys_add(Keys *ks, const void *k, size_t len) {
    if (ks->n == ks->cap) {
        ks->cap = ks->cap ? 2 * ks->cap : 64;
        ks->k = xrealloc(ks->k, ks->cap * sizeof *ks->k);
        ks->len = xrealloc(ks->len, ks->cap * sizeof *ks->len);
    }
    ks->k[ks->n] = xmalloc(len + 1);
    memcpy(ks->k[ks->n], k, len);
    ks->k[ks->n][len] = 0;
    ks->len[ks->n++] = len;
}

static void keys_free(Keys *ks) {
    for (size_t i = 0; i < ks->n; i++) free(ks->k[i]);
    free(ks->k);
    free(ks->len);
    memset(ks, 0, sizeof *ks);
}

static int keys_has(const Keys *ks, const void *k, size_t len) {
    for (size_t i = 0; i < ks->n; i++)
        if (ks->len[i] == len && memcmp(ks->k[i], k, len) == 0) return 1;
    return 0;
}

/* ---------------------------------------------------------------- sizes */

static int add_bytes(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    (void)key; (void)val;
    *(size_t *)ud += klen + vlen;
    return 0;
}

int store_model_bytes(Store *s, const char *id, size_t *bytes) {
    *bytes = 0;
    char *meta = NULL;
    int rc = store_model_meta(s, id, &meta);
    if (rc) return rc;
    *bytes = AM_ID_HEX + strlen(meta);
    free(meta);
    uint8_t prefix[AM_ID_HEX + 1];
    memcpy(prefix, id, AM_ID_HEX);
    prefix[AM_ID_HEX] = 0;
    return store_iter(s, "tensors", prefix, sizeof prefix, add_bytes, bytes);
}

int store_db_bytes(Store *s, const char *db, const void *prefix, size_t plen, size_t *bytes) {
    *bytes = 0;
    return store_iter(s, db, prefix, plen, add_bytes, bytes);
}

/* ---------------------------------------------------------------- gc */

typedef struct {
    Keys models;   /* ids with a meta */
    Keys vocabs;   /* vocab hashes some meta names */
    Keys del[4];   /* keys to delete in tensors, vocab, names, results */
    StoreGcFreed *f;
} Gc;

enum { D_TENSORS, D_VOCAB, D_NAMES, D_RESULTS };
static const char *const del_db[4] = {"tensors", "vocab", "names", "results"};

static int gc_model(void *ud, const char *id, const char *meta_json) {
    Gc *g = ud;
    keys_add(&g->models, id, strlen(id));
    cJSON *j = cJSON_Parse(meta_json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vocab");
    if (cJSON_IsString(v) && !keys_has(&g->vocabs, v->valuestring, strlen(v->valuestring)))
        keys_add(&g->vocabs, v->valuestring, strlen(v->valuestring));
    cJSON_Delete(j);
    return 0;
}

/* the key starts with a kept model's id (tensors, results: "<id> 0x00 ...") */
static int of_live_model(Gc *g, const void *key, size_t klen) {
    const char *z = memchr(key, 0, klen);
    return keys_has(&g->models, key, z ? (size_t)(z - (const char *)key) : klen);
}

static int gc_tensor(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    Gc *g = ud;
    (void)val;
    if (of_live_model(g, key, klen)) return 0;
    keys_add(&g->del[D_TENSORS], key, klen);
    g->f->tensors++;
    g->f->tensor_bytes += klen + vlen;
    return 0;
}

/* "id 0x00 task 0x00 hash 0x00 'x'": the per-example scores of a result (store_keys.h) */
static int is_examples_key(const void *key, size_t klen) {
    int z = 0;
    for (size_t i = 0; i < klen; i++) z += ((const char *)key)[i] == 0;
    return z >= 3;
}

static int gc_result(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    Gc *g = ud;
    (void)val;
    if (of_live_model(g, key, klen)) return 0;
    keys_add(&g->del[D_RESULTS], key, klen);
    if (!is_examples_key(key, klen)) g->f->results++;   /* a result's per-example scores go with it */
    g->f->result_bytes += klen + vlen;
    return 0;
}

static int gc_vocab(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    Gc *g = ud;
    (void)val;
    if (keys_has(&g->vocabs, key, klen)) return 0;
    keys_add(&g->del[D_VOCAB], key, klen);
    g->f->vocabs++;
    g->f->vocab_bytes += klen + vlen;
    return 0;
}

static int gc_name(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    Gc *g = ud;
    if (vlen == AM_ID_HEX && keys_has(&g->models, val, vlen)) return 0;
    keys_add(&g->del[D_NAMES], key, klen);
    g->f->names++;
    return 0;
}

static int gc_write(StoreTxn *t, void *ud) {
    Gc *g = ud;
    for (int d = 0; d < 4; d++)
        for (size_t i = 0; i < g->del[d].n; i++) {
            int rc = store_txn_del(t, del_db[d], g->del[d].k[i], g->del[d].len[i]);
            if (rc && rc != AM_ENOTFOUND) return rc;
        }
    return AM_OK;
}

int store_gc(Store *s, int dry_run, StoreGcFreed *f) {
    memset(f, 0, sizeof *f);
    Gc g = {.f = f};
    int rc = store_model_list(s, gc_model, &g);
    if (!rc) rc = store_iter(s, "tensors", NULL, 0, gc_tensor, &g);
    if (!rc) rc = store_iter(s, "vocab", NULL, 0, gc_vocab, &g);
    if (!rc) rc = store_iter(s, "names", NULL, 0, gc_name, &g);
    if (!rc) rc = store_iter(s, "results", NULL, 0, gc_result, &g);
    size_t n = 0;
    for (int d = 0; d < 4; d++) n += g.del[d].n;
    if (!rc && n && !dry_run) rc = store_write(s, 0, gc_write, &g);
    keys_free(&g.models);
    keys_free(&g.vocabs);
    for (int d = 0; d < 4; d++) keys_free(&g.del[d]);
    return rc;
}

/* ---------------------------------------------------------------- results of one model */

typedef struct { Keys keys; size_t bytes, results; } Collect;

static int collect(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    Collect *c = ud;
    (void)val;
    keys_add(&c->keys, key, klen);
    if (!is_examples_key(key, klen)) c->results++;
    c->bytes += klen + vlen;
    return 0;
}

static int del_keys(StoreTxn *t, void *ud) {
    Collect *c = ud;
    for (size_t i = 0; i < c->keys.n; i++) {
        int rc = store_txn_del(t, "results", c->keys.k[i], c->keys.len[i]);
        if (rc && rc != AM_ENOTFOUND) return rc;
    }
    return AM_OK;
}

int store_results_delete(Store *s, const char *id, size_t *n, size_t *bytes) {
    Collect c = {0};
    uint8_t prefix[AM_ID_HEX + 1];
    memcpy(prefix, id, AM_ID_HEX);
    prefix[AM_ID_HEX] = 0;
    int rc = store_iter(s, "results", prefix, sizeof prefix, collect, &c);
    if (!rc && c.keys.n) rc = store_write(s, 0, del_keys, &c);
    if (n) *n = rc ? 0 : c.results;
    if (bytes) *bytes = rc ? 0 : c.bytes;
    keys_free(&c.keys);
    return rc;
}
