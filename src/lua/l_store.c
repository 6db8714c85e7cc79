/* l_store.c - "amalgam.Store": a handle on an LMDB store directory (store.h).
 *
 * am.store.open(dir [, {readonly=bool}]) opens one; am.store.default() is the per-state default
 * store (--store / $AMALGAM_STORE / ./store, from AmLuaCtx), opened read-write on first use and
 * cached in the registry. Every Store handle holds one reference of the process-wide LMDB
 * environment (store_open counts them), and every Model handle holds its own, so closing a
 * Store handle never invalidates models loaded through it.
 *
 *   core.raw_put_many(store, db, {k1, v1, k2, v2, ...}) -> true | nil, msg, code (one write txn)
 *   core.raw_run_list / raw_run_get / raw_run_resolve / raw_run_state / raw_run_metrics /
 *   raw_run_write: the run API of store_runs.h (lua/API.md)
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "store_runs.h"
#include "merge_store.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_KEY "amalgam.default_store"

typedef struct {
    Store *s;        /* NULL = closed */
    unsigned flags;  /* AM_STORE_* it was opened with */
} StoreBox;

/* ---------------------------------------------------------------- string vectors (autofree) */

typedef struct {
    char **v;
    size_t n, cap;
} StrVec;

static void strvec_free(void *p) {
    StrVec *sv = p;
    for (size_t i = 0; i < sv->n; i++) free(sv->v[i]);
    free(sv->v);
    free(sv);
}

static StrVec *strvec_new(lua_State *L) {
    AmAutoFree *a = am_lua_newautofree(L, strvec_free);
    a->p = xcalloc(1, sizeof(StrVec));
    return a->p;
}

static void strvec_addn(StrVec *sv, const void *s, size_t len) {
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? 2 * sv->cap : 16;
        sv->v = xrealloc(sv->v, sv->cap * sizeof *sv->v);
    }
    char *c = xmalloc(len + 1);
    memcpy(c, s, len);
    c[len] = 0;
    sv->v[sv->n++] = c;
}

/* ---------------------------------------------------------------- handles */

static StoreBox *newbox(lua_State *L) {
    StoreBox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->s = NULL; /* closed until opened */
    b->flags = 0;
    luaL_setmetatable(L, AM_STORE_MT);
    return b;
}

static StoreBox *checkbox(lua_State *L, int idx) {
    StoreBox *b = luaL_checkudata(L, idx, AM_STORE_MT);
    if (!b->s) luaL_error(L, "attempt to use a closed store");
    return b;
}

Store *am_lua_checkstore(lua_State *L, int idx) { return checkbox(L, idx)->s; }

/* push the default store handle (opening it if needed); AM_OK or a code (nothing pushed) */
static int push_default(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY) == LUA_TUSERDATA) {
        StoreBox *b = luaL_testudata(L, -1, AM_STORE_MT);
        if (b && b->s) return AM_OK;
    }
    lua_pop(L, 1);
    AmLuaCtx *c = am_lua_ctx(L);
    StoreBox *b = newbox(L);
    int rc = store_open(c->store_dir ? c->store_dir : store_default_dir(), c->store_flags, &b->s);
    if (rc) {
        lua_pop(L, 1);
        return rc;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
    return AM_OK;
}

Store *am_lua_default_store(lua_State *L) {
    if (push_default(L)) return NULL;
    Store *s = ((StoreBox *)lua_touserdata(L, -1))->s;
    lua_pop(L, 1); /* still referenced by the registry */
    return s;
}

/* store.open(dir [, {readonly=bool}]) -> Store | nil, msg, code */
static int l_store_open(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    static const char *const known[] = {"readonly", NULL};
    am_lua_opt_check(L, 2, 2, known);
    int ro = am_lua_opt_bool(L, 2, 2, "readonly", 0);
    StoreBox *b = newbox(L);
    b->flags = ro ? AM_STORE_RDONLY : 0;
    int rc = store_open(dir, b->flags, &b->s);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

/* store.default() -> Store | nil, msg, code */
static int l_store_default(lua_State *L) {
    int rc = push_default(L);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

static int l_close(lua_State *L) {
    StoreBox *b = luaL_checkudata(L, 1, AM_STORE_MT);
    Store *s = b->s;
    b->s = NULL;
    store_close(s);
    return 0;
}

static int l_tostring(lua_State *L) {
    StoreBox *b = luaL_checkudata(L, 1, AM_STORE_MT);
    if (!b->s) lua_pushliteral(L, "amalgam.Store (closed)");
    else lua_pushfstring(L, "amalgam.Store (%s%s)", store_dir(b->s), (b->flags & AM_STORE_RDONLY) ? ", read-only" : "");
    return 1;
}

static int l_dir(lua_State *L) {
    lua_pushstring(L, store_dir(am_lua_checkstore(L, 1)));
    return 1;
}

static int l_readonly(lua_State *L) {
    lua_pushboolean(L, (checkbox(L, 1)->flags & AM_STORE_RDONLY) != 0);
    return 1;
}

/* id of argument idx: a Model handle, or a string resolved in s; AM_OK / code */
static int arg_model_id(lua_State *L, Store *s, int idx, char id[AM_ID_HEX + 1]) {
    if (lua_type(L, idx) == LUA_TUSERDATA) {
        AmModelBox *m = am_lua_checkmodelbox(L, idx);
        memcpy(id, am_lua_model_id(m), AM_ID_HEX + 1);
        return AM_OK;
    }
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_typeerror(L, idx, "amalgam.Model or string");
    return store_resolve(s, lua_tostring(L, idx), id);
}

/* st:resolve(name_or_id_prefix) -> id | nil, msg, code */
static int l_resolve(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *q = luaL_checkstring(L, 2);
    char id[AM_ID_HEX + 1];
    int rc = store_resolve(s, q, id);
    if (rc) return am_lua_fail(L, rc);
    lua_pushstring(L, id);
    return 1;
}

/* st:model(name_or_id_prefix) -> Model | nil, msg, code */
static int l_model(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *q = luaL_checkstring(L, 2);
    char id[AM_ID_HEX + 1];
    int rc = store_resolve(s, q, id);
    if (rc) return am_lua_fail(L, rc);
    /* a label only when q is a name (not an id prefix) */
    void *v = NULL;
    size_t vn = 0;
    int is_name = store_get(s, "names", q, strlen(q), &v, &vn) == AM_OK && vn >= AM_ID_HEX &&
                  memcmp(v, id, AM_ID_HEX) == 0;
    free(v);
    am_clearerror();
    rc = am_lua_pushmodel(L, 1, id, is_name ? q : NULL);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

/* collect names db as pairs (name, id) */
static int collect_names(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    StrVec *sv = ud;
    if (vlen < AM_ID_HEX) return 0;
    strvec_addn(sv, key, klen);
    strvec_addn(sv, val, AM_ID_HEX);
    return 0;
}

static int collect_models(void *ud, const char *id, const char *meta_json) {
    StrVec *sv = ud;
    strvec_addn(sv, id, strlen(id));
    strvec_addn(sv, meta_json, strlen(meta_json));
    return 0;
}

/* copy field k of the table at -1 into the table at dst under name as */
static void copy_field(lua_State *L, int src, int dst, const char *k, const char *as) {
    lua_getfield(L, src, k);
    lua_setfield(L, dst, as ? as : k);
}

/* st:names([model]) -> { {name=, id=}, ... } (all) or { name, ... } of one model */
static int l_names(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    char id[AM_ID_HEX + 1] = "";
    if (!lua_isnoneornil(L, 2)) {
        int rc = arg_model_id(L, s, 2, id);
        if (rc) return am_lua_fail(L, rc);
    }
    StrVec *sv = strvec_new(L);
    int rc = store_iter(s, "names", NULL, 0, collect_names, sv);
    if (rc) return am_lua_fail(L, rc);
    lua_newtable(L);
    int k = 0;
    for (size_t i = 0; i + 1 < sv->n; i += 2) {
        if (id[0]) {
            if (strcmp(sv->v[i + 1], id) != 0) continue;
            lua_pushstring(L, sv->v[i]);
        } else {
            lua_createtable(L, 0, 2);
            lua_pushstring(L, sv->v[i]);
            lua_setfield(L, -2, "name");
            lua_pushstring(L, sv->v[i + 1]);
            lua_setfield(L, -2, "id");
        }
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* st:models() -> { {id=, name=, names={...}, kind=, layers=, hidden=, n_params=, pooling=,
 *                   created=, source=}, ... } in id order */
static int l_models(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    StrVec *names = strvec_new(L);                 /* [st, names] */
    int rc = store_iter(s, "names", NULL, 0, collect_names, names);
    if (rc) return am_lua_fail(L, rc);
    StrVec *models = strvec_new(L);                /* [st, names, models] */
    if ((rc = store_model_list(s, collect_models, models))) return am_lua_fail(L, rc);
    lua_createtable(L, (int)(models->n / 2), 0);   /* [.., list] */
    int list = lua_gettop(L);
    for (size_t i = 0; i + 1 < models->n; i += 2) {
        const char *id = models->v[i];
        lua_createtable(L, 0, 10);                 /* [.., list, row] */
        int row = lua_gettop(L);
        lua_pushstring(L, id);
        lua_setfield(L, row, "id");
        lua_newtable(L);
        int nn = 0;
        for (size_t k = 0; k + 1 < names->n; k += 2)
            if (strcmp(names->v[k + 1], id) == 0) {
                lua_pushstring(L, names->v[k]);
                lua_rawseti(L, -2, ++nn);
            }
        lua_setfield(L, row, "names");
        if (am_lua_pushjson(L, models->v[i + 1], strlen(models->v[i + 1])) != AM_OK) {
            am_clearerror();
            lua_newtable(L);
        }
        int meta = lua_gettop(L);                  /* [.., list, row, meta] */
        copy_field(L, meta, row, "kind", NULL);
        copy_field(L, meta, row, "n_params", NULL);
        copy_field(L, meta, row, "pooling", NULL);
        copy_field(L, meta, row, "created", NULL);
        copy_field(L, meta, row, "source", NULL);
        if (lua_getfield(L, meta, "config") == LUA_TTABLE) {
            int cfg = lua_gettop(L);
            copy_field(L, cfg, row, "num_hidden_layers", "layers");
            copy_field(L, cfg, row, "hidden_size", "hidden");
        }
        lua_pop(L, 1);
        /* name: the meta's name if it still points here, else the first name */
        int named = 0;
        if (lua_getfield(L, meta, "name") == LUA_TSTRING) {
            const char *mn = lua_tostring(L, -1);
            for (size_t k = 0; k + 1 < names->n && !named; k += 2)
                named = strcmp(names->v[k], mn) == 0 && strcmp(names->v[k + 1], id) == 0;
        }
        if (named) lua_setfield(L, row, "name");
        else {
            lua_pop(L, 1);
            lua_getfield(L, row, "names");
            lua_rawgeti(L, -1, 1);
            lua_setfield(L, row, "name");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);                             /* [.., list, row] */
        lua_rawseti(L, list, (lua_Integer)(i / 2 + 1));
    }
    return 1;
}

/* st:name(name, model) -> id | nil, msg, code   (tag a model; an existing name moves) */
static int l_name(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *name = luaL_checkstring(L, 2);
    luaL_checkany(L, 3);
    char id[AM_ID_HEX + 1];
    int rc = arg_model_id(L, s, 3, id);
    if (rc == AM_OK) rc = merge_store_name(s, name, id); /* a merge recipe is materialised */
    if (rc) return am_lua_fail(L, rc);
    lua_pushstring(L, id);
    return 1;
}

/* st:unname(name) -> true | nil, msg, code */
static int l_unname(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    int rc = store_name_del(s, luaL_checkstring(L, 2));
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* st:delete(model) -> true | nil, msg, code */
static int l_delete(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    luaL_checkany(L, 2);
    char id[AM_ID_HEX + 1];
    int rc = arg_model_id(L, s, 2, id);
    if (rc == AM_OK) rc = store_model_delete(s, id);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* st:stat() -> {mapsize=, used=, page_size=, grows=, entries={models=, ...}} */
static int l_stat(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    StoreStat st;
    int rc = store_stat(s, &st);
    if (rc) return am_lua_fail(L, rc);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)st.mapsize);
    lua_setfield(L, -2, "mapsize");
    lua_pushinteger(L, (lua_Integer)st.used);
    lua_setfield(L, -2, "used");
    lua_pushinteger(L, (lua_Integer)st.page_size);
    lua_setfield(L, -2, "page_size");
    lua_pushinteger(L, (lua_Integer)st.grows);
    lua_setfield(L, -2, "grows");
    lua_pushinteger(L, (lua_Integer)st.free_pages);
    lua_setfield(L, -2, "free_pages");
    lua_pushinteger(L, (lua_Integer)st.file_size);
    lua_setfield(L, -2, "file_size");
    lua_createtable(L, 0, AM_DB_COUNT);
    for (int i = 0; i < AM_DB_COUNT; i++) {
        lua_pushinteger(L, (lua_Integer)st.entries[i]);
        lua_setfield(L, -2, am_db_names[i]);
    }
    lua_setfield(L, -2, "entries");
    lua_createtable(L, 0, AM_DB_COUNT);
    for (int i = 0; i < AM_DB_COUNT; i++) {
        lua_pushinteger(L, (lua_Integer)st.pages[i]);
        lua_setfield(L, -2, am_db_names[i]);
    }
    lua_setfield(L, -2, "pages");
    return 1;
}

/* generic key/values: db is a name of store_keys.h; the model databases are read-only here */
static const char *checkdb(lua_State *L, int arg, int write) {
    const char *db = luaL_checkstring(L, arg);
    for (int i = 0; i < AM_DB_COUNT; i++) {
        if (strcmp(db, am_db_names[i]) != 0) continue;
        if (write && (i == AM_DB_MODELS || i == AM_DB_TENSORS || i == AM_DB_NAMES || i == AM_DB_VOCAB ||
                      i == AM_DB_META))
            luaL_argerror(L, arg, lua_pushfstring(L, "database '%s' is written through the model API", db));
        return db;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < AM_DB_COUNT; i++) {
        if (i) luaL_addchar(&b, '|');
        luaL_addstring(&b, am_db_names[i]);
    }
    luaL_pushresult(&b);
    luaL_argerror(L, arg, lua_pushfstring(L, "unknown database '%s' (expected %s)", db, lua_tostring(L, -1)));
    return NULL;
}

static const char *checkkey(lua_State *L, Store *s, int arg, size_t *len) {
    const char *k = luaL_checklstring(L, arg, len);
    if (*len == 0 || *len > store_max_keysize(s))
        luaL_argerror(L, arg, lua_pushfstring(L, "key length must be 1..%d bytes", (int)store_max_keysize(s)));
    return k;
}

/* st:get(db, key) -> string | nil, msg, "ENOTFOUND" */
static int l_get(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *db = checkdb(L, 2, 0);
    size_t klen, vlen = 0;
    const char *key = checkkey(L, s, 3, &klen);
    AmAutoFree *a = am_lua_newautofree(L, free);
    int rc = store_get(s, db, key, klen, &a->p, &vlen);
    if (rc) return am_lua_fail(L, rc);
    lua_pushlstring(L, a->p, vlen);
    return 1;
}

/* st:put(db, key, value) -> true | nil, msg, code */
static int l_put(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *db = checkdb(L, 2, 1);
    size_t klen, vlen;
    const char *key = checkkey(L, s, 3, &klen);
    const char *val = luaL_checklstring(L, 4, &vlen);
    int rc = store_put(s, db, key, klen, val, vlen);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* st:del(db, key) -> true | nil, msg, "ENOTFOUND" */
static int l_del(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *db = checkdb(L, 2, 1);
    size_t klen;
    const char *key = checkkey(L, s, 3, &klen);
    int rc = store_del(s, db, key, klen);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

typedef struct { StrVec *sv; lua_Integer limit; } KeysCtx;
static int collect_keys(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    (void)val;
    (void)vlen;
    KeysCtx *c = ud;
    strvec_addn(c->sv, key, klen);
    return c->limit > 0 && (lua_Integer)c->sv->n >= c->limit;
}

/* st:keys(db [, prefix [, limit]]) -> { key, ... } in key order (keys may hold any bytes; a
 * key with a NUL is cut at the NUL here: use st:get with the exact key) */
static int l_keys(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *db = checkdb(L, 2, 0);
    size_t plen = 0;
    const char *prefix = luaL_optlstring(L, 3, "", &plen);
    lua_Integer limit = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, limit >= 0, 4, "limit must be >= 0");
    KeysCtx c = {strvec_new(L), limit};
    int rc = store_iter(s, db, prefix, plen, collect_keys, &c);
    if (rc) return am_lua_fail(L, rc);
    lua_createtable(L, (int)c.sv->n, 0);
    for (size_t i = 0; i < c.sv->n; i++) {
        lua_pushstring(L, c.sv->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* ---------------------------------------------------------------- core.raw_* store primitives */

typedef struct { lua_State *L; int t; const char *db; lua_Integer n; } PutCtx;
static int put_many_fn(StoreTxn *txn, void *ud) {
    PutCtx *c = ud;
    for (lua_Integer i = 1; i + 1 <= c->n; i += 2) {
        lua_geti(c->L, c->t, i);
        lua_geti(c->L, c->t, i + 1);
        size_t kl, vl;
        const char *k = lua_tolstring(c->L, -2, &kl), *v = lua_tolstring(c->L, -1, &vl);
        int rc = (k && v) ? store_txn_put(txn, c->db, k, kl, v, vl) : AM_EINVAL;
        lua_pop(c->L, 2);
        if (rc) return rc;
    }
    return AM_OK;
}

/* core.raw_put_many(store, db, {k1, v1, ...}) -> true | nil, msg, code */
static int l_raw_put_many(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *db = luaL_checkstring(L, 2);
    luaL_argcheck(L, strcmp(db, "runs") == 0 || strcmp(db, "metrics") == 0 || strcmp(db, "results") == 0, 2,
                  "db must be runs, metrics or results");
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 3, i);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 3, "keys and values must be strings");
        lua_pop(L, 1);
    }
    PutCtx c = {L, 3, db, n};
    int rc = store_write(s, 0, put_many_fn, &c);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}


/* ---------------------------------------------------------------- core.raw_run_* (store_runs.h) */

/* strings collected in C inside a read txn, pushed as a list after it (no Lua error can
 * unwind through an open txn) */
typedef struct { char **v; size_t *len; size_t n, cap; } Bufs;

static void bufs_add(Bufs *b, const char *p, size_t n) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 32;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
        b->len = xrealloc(b->len, b->cap * sizeof *b->len);
    }
    b->v[b->n] = xmalloc(n + 1);
    memcpy(b->v[b->n], p, n);
    b->v[b->n][n] = 0;
    b->len[b->n++] = n;
}

/* push the list and free b; returns 1 (or raises after freeing) */
static int bufs_push(lua_State *L, Bufs *b, int rc) {
    if (!rc && lua_checkstack(L, 4)) {
        lua_createtable(L, (int)b->n, 0);
        for (size_t i = 0; i < b->n; i++) {
            lua_pushlstring(L, b->v[i], b->len[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
    }
    for (size_t i = 0; i < b->n; i++) free(b->v[i]);
    free(b->v);
    free(b->len);
    return rc ? am_lua_fail(L, rc) : 1;
}

static int list_run(void *ud, const char *id, const char *json) {
    bufs_add(ud, json, strlen(json));
    return 0;
}

static int list_metric(void *ud, uint32_t step, const char *json, size_t len) {
    bufs_add(ud, json, len);
    return 0;
}

/* core.raw_run_list(store) -> { record JSON, ... } in id order */
static int l_raw_run_list(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    Bufs b = {0};
    return bufs_push(L, &b, store_run_list(s, list_run, &b));
}

/* core.raw_run_get(store, id) -> record JSON | nil, msg, code */
static int l_raw_run_get(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    char *js = NULL;
    int rc = store_run_get(s, luaL_checkstring(L, 2), &js);
    if (rc) return am_lua_fail(L, rc);
    lua_pushstring(L, js);
    free(js);
    return 1;
}

/* core.raw_run_resolve(store, id_or_prefix) -> id | nil, msg, code */
static int l_raw_run_resolve(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    char *id = NULL;
    int rc = store_run_resolve(s, luaL_checkstring(L, 2), &id);
    if (rc) return am_lua_fail(L, rc);
    lua_pushstring(L, id);
    free(id);
    return 1;
}

/* core.raw_run_state(store, id, part) -> blob | nil, msg, code */
static int l_raw_run_state(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    void *v = NULL;
    size_t n = 0;
    int rc = store_run_state_get(s, luaL_checkstring(L, 2), luaL_checkstring(L, 3), &v, &n);
    if (rc) return am_lua_fail(L, rc);
    lua_pushlstring(L, v, n);
    free(v);
    return 1;
}

/* core.raw_run_metrics(store, id [, first [, last]]) -> { metrics row JSON, ... } in step order */
static int l_raw_run_metrics(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *id = luaL_checkstring(L, 2);
    lua_Integer a = luaL_optinteger(L, 3, 0), z = luaL_optinteger(L, 4, UINT32_MAX);
    luaL_argcheck(L, a >= 0 && a <= UINT32_MAX, 3, "step out of range");
    luaL_argcheck(L, z >= 0 && z <= UINT32_MAX, 4, "step out of range");
    Bufs b = {0};
    return bufs_push(L, &b, store_run_metrics(s, id, (uint32_t)a, (uint32_t)z, list_metric, &b));
}

typedef struct { lua_State *L; const char *id; const char *rec, *state, *cursors; size_t nstate, ncur; int metrics, drop; } RunWrite;

/* strings only: the table was checked before the txn */
static int run_write_fn(StoreTxn *t, void *ud) {
    RunWrite *c = ud;
    int rc = AM_OK;
    if (c->metrics) {
        lua_Integer n = luaL_len(c->L, c->metrics);
        for (lua_Integer i = 1; i + 1 <= n && !rc; i += 2) {
            lua_geti(c->L, c->metrics, i);
            lua_geti(c->L, c->metrics, i + 1);
            size_t vl;
            const char *v = lua_tolstring(c->L, -1, &vl);
            rc = store_txn_run_metric_put(t, c->id, (uint32_t)lua_tointeger(c->L, -2), v, vl);
            lua_pop(c->L, 2);
        }
    }
    if (!rc && c->drop) rc = store_txn_run_state_del(t, c->id, NULL);
    if (!rc && c->state) rc = store_txn_run_state_put(t, c->id, "state", c->state, c->nstate);
    if (!rc && c->cursors) rc = store_txn_run_state_put(t, c->id, "cursors", c->cursors, c->ncur);
    if (!rc && c->rec) rc = store_txn_run_put(t, c->id, c->rec);
    return rc;
}

static const char *opt_field(lua_State *L, int t, const char *k, size_t *n) {
    int ty = lua_getfield(L, t, k);
    if (ty != LUA_TNIL && ty != LUA_TSTRING) luaL_error(L, "bad argument #3 to 'raw_run_write' (%s must be a string)", k);
    const char *s = lua_tolstring(L, -1, n);
    lua_pop(L, 1);   /* still referenced by the table */
    return s;
}

/* core.raw_run_write(store, id, {record=, state=, cursors=, drop_state=, metrics={step, json, ...}}) -> true | nil, msg, code
 * one write transaction (a checkpoint: record, trainer state and pending metrics together) */
static int l_raw_run_write(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    RunWrite c = {L, luaL_checkstring(L, 2), NULL, NULL, NULL, 0, 0, 0, 0};
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "drop_state");
    c.drop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c.rec = opt_field(L, 3, "record", NULL);
    c.state = opt_field(L, 3, "state", &c.nstate);
    c.cursors = opt_field(L, 3, "cursors", &c.ncur);
    int ty = lua_getfield(L, 3, "metrics");
    if (ty == LUA_TTABLE) {
        c.metrics = lua_gettop(L);
        lua_Integer n = luaL_len(L, c.metrics);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, c.metrics, i);
            int ok = (i % 2) ? lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 && lua_tointeger(L, -1) <= UINT32_MAX
                             : lua_type(L, -1) == LUA_TSTRING;
            lua_pop(L, 1);
            if (!ok || n % 2) luaL_argerror(L, 3, "metrics must be {step, json, step, json, ...}");
        }
    } else if (ty != LUA_TNIL) {
        luaL_argerror(L, 3, "metrics must be a table");
    }
    int rc = store_write(s, c.nstate + c.ncur + 4096, run_write_fn, &c);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"raw_put_many", l_raw_put_many},
    {"raw_run_list", l_raw_run_list},
    {"raw_run_get", l_raw_run_get},
    {"raw_run_resolve", l_raw_run_resolve},
    {"raw_run_state", l_raw_run_state},
    {"raw_run_metrics", l_raw_run_metrics},
    {"raw_run_write", l_raw_run_write},
    {NULL, NULL},
};

static const luaL_Reg store_methods[] = {
    {"dir", l_dir},       {"readonly", l_readonly}, {"close", l_close},   {"model", l_model},
    {"models", l_models}, {"resolve", l_resolve},   {"names", l_names},   {"name", l_name},
    {"unname", l_unname}, {"delete", l_delete},     {"stat", l_stat},     {"get", l_get},
    {"put", l_put},       {"del", l_del},           {"keys", l_keys},     {NULL, NULL},
};

static const luaL_Reg store_meta[] = {
    {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL},
};

static const luaL_Reg store_funcs[] = {
    {"open", l_store_open},
    {"default", l_store_default},
    {NULL, NULL},
};

unsigned am_lua_store_flags(lua_State *L, int idx) { return checkbox(L, idx)->flags; }

void am_lua_open_store(lua_State *L) {
    am_lua_newclass(L, AM_STORE_MT, store_methods, store_meta);
    luaL_setfuncs(L, core_funcs, 0);
    luaL_newlib(L, store_funcs);   /* [core, store] */
    lua_setfield(L, -2, "store");  /* [core] */
}
