/* l_model.c - "amalgam.Model": a stored model, its metadata, tensors and text encoding.
 *
 * A Model handle is cheap to create: it holds the id, the meta JSON and its own reference on
 * the store. The weights, vocab and tokenizer (an EmbedModel, src/api/embed.h) are loaded on
 * first use (tensors, tensor, encode, export) and stay until close / GC.
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "hf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct AmModelBox {
    char id[AM_ID_HEX + 1];
    char *label;       /* name it was opened by, or the meta's name; malloc'd or NULL */
    char *meta_json;   /* malloc'd */
    Store *st;         /* own store reference; NULL = closed */
    EmbedModel *em;    /* NULL until loaded */
};

static int model_close(lua_State *L) {
    AmModelBox *b = luaL_checkudata(L, 1, AM_MODEL_MT);
    embed_model_delete(b->em);
    b->em = NULL;
    free(b->label);
    b->label = NULL;
    free(b->meta_json);
    b->meta_json = NULL;
    Store *s = b->st;
    b->st = NULL;
    store_close(s);
    return 0;
}

AmModelBox *am_lua_checkmodelbox(lua_State *L, int idx) {
    AmModelBox *b = luaL_checkudata(L, idx, AM_MODEL_MT);
    if (!b->st) luaL_error(L, "attempt to use a closed model");
    return b;
}

const char *am_lua_model_id(const AmModelBox *b) { return b->id; }

int am_lua_model_load(AmModelBox *b, EmbedModel **out) {
    *out = NULL;
    if (!b->em) {
        int rc = embed_model_load(b->st, b->id, &b->em);
        if (rc) return am_error_wrap(rc, "loading model %s", b->label ? b->label : b->id);
    }
    *out = b->em;
    return AM_OK;
}

int am_lua_pushmodel(lua_State *L, int store_idx, const char *id, const char *label) {
    store_idx = lua_absindex(L, store_idx);
    Store *s = am_lua_checkstore(L, store_idx);
    unsigned flags = am_lua_store_flags(L, store_idx);
    AmModelBox *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);                       /* closed until filled */
    luaL_setmetatable(L, AM_MODEL_MT);
    int rc = store_model_meta(s, id, &b->meta_json);
    if (rc == AM_OK) rc = store_open(store_dir(s), flags, &b->st);
    if (rc) {
        lua_pop(L, 1);                             /* __gc frees what was set */
        return rc;
    }
    snprintf(b->id, sizeof b->id, "%s", id);
    if (label) b->label = xstrdup(label);
    else {
        cJSON *j = cJSON_Parse(b->meta_json);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "name");
        if (cJSON_IsString(n)) b->label = xstrdup(n->valuestring);
        cJSON_Delete(j);
    }
    return AM_OK;
}

/* ---------------------------------------------------------------- methods */

static int l_id(lua_State *L) {
    lua_pushstring(L, am_lua_checkmodelbox(L, 1)->id);
    return 1;
}

/* m:name() -> the name it was opened by (or created with), or nil */
static int l_name(lua_State *L) {
    AmModelBox *b = am_lua_checkmodelbox(L, 1);
    if (b->label) lua_pushstring(L, b->label);
    else lua_pushnil(L);
    return 1;
}

/* push the decoded meta of b */
static void push_meta(lua_State *L, AmModelBox *b) {
    int rc = am_lua_pushjson(L, b->meta_json, strlen(b->meta_json));
    if (rc != AM_OK) luaL_error(L, "model %s: stored meta is not valid JSON: %s", b->id, am_errmsg(rc));
}

/* m:meta() -> table (the stored JSON meta: name, kind, config, pooling, created, ...) */
static int l_meta(lua_State *L) {
    push_meta(L, am_lua_checkmodelbox(L, 1));
    return 1;
}

/* m:config() -> table of Hugging Face config.json keys */
static int l_config(lua_State *L) {
    push_meta(L, am_lua_checkmodelbox(L, 1));
    lua_getfield(L, -1, "config");
    return 1;
}

/* m:kind() -> "init" | "pretrained" | "checkpoint" | ... */
static int l_kind(lua_State *L) {
    push_meta(L, am_lua_checkmodelbox(L, 1));
    lua_getfield(L, -1, "kind");
    return 1;
}

static lua_Integer config_int(lua_State *L, AmModelBox *b, const char *key) {
    push_meta(L, b);
    lua_getfield(L, -1, "config");
    lua_Integer v = 0;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, key);
        v = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return v;
}

/* m:layers() -> number of transformer layers; m:dim() -> hidden size */
static int l_layers(lua_State *L) {
    lua_pushinteger(L, config_int(L, am_lua_checkmodelbox(L, 1), "num_hidden_layers"));
    return 1;
}

static int l_dim(lua_State *L) {
    lua_pushinteger(L, config_int(L, am_lua_checkmodelbox(L, 1), "hidden_size"));
    return 1;
}

typedef struct { const char *id; char **v; size_t n, cap; } NameVec;
static void namevec_free(void *p) {
    NameVec *nv = p;
    for (size_t i = 0; i < nv->n; i++) free(nv->v[i]);
    free(nv->v);
    free(nv);
}
static int collect_names_of(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    NameVec *nv = ud;
    if (vlen < AM_ID_HEX || memcmp(val, nv->id, AM_ID_HEX) != 0) return 0;
    if (nv->n == nv->cap) {
        nv->cap = nv->cap ? 2 * nv->cap : 8;
        nv->v = xrealloc(nv->v, nv->cap * sizeof *nv->v);
    }
    nv->v[nv->n] = xmalloc(klen + 1);
    memcpy(nv->v[nv->n], key, klen);
    nv->v[nv->n++][klen] = 0;
    return 0;
}

/* m:names() -> { name, ... } every name pointing to this model now | nil, msg, code */
static int l_names(lua_State *L) {
    AmModelBox *b = am_lua_checkmodelbox(L, 1);
    AmAutoFree *a = am_lua_newautofree(L, namevec_free);
    NameVec *nv = a->p = xcalloc(1, sizeof *nv);
    nv->id = b->id;
    int rc = store_iter(b->st, "names", NULL, 0, collect_names_of, nv);
    if (rc) return am_lua_fail(L, rc);
    lua_createtable(L, (int)nv->n, 0);
    for (size_t i = 0; i < nv->n; i++) {
        lua_pushstring(L, nv->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* m:tensors() -> { {name=, shape={...}, numel=}, ... } in buffer order | nil, msg, code */
static int l_tensors(lua_State *L) {
    AmModelBox *b = am_lua_checkmodelbox(L, 1);
    EmbedModel *em;
    int rc = am_lua_model_load(b, &em);
    if (rc) return am_lua_fail(L, rc);
    const ParamTable *tab = &em->model->tab;
    lua_createtable(L, tab->n, 0);
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->t[i];
        lua_createtable(L, 0, 3);
        lua_pushstring(L, p->name);
        lua_setfield(L, -2, "name");
        lua_createtable(L, p->ndim, 0);
        for (int d = 0; d < p->ndim; d++) {
            lua_pushinteger(L, p->shape[d]);
            lua_rawseti(L, -2, d + 1);
        }
        lua_setfield(L, -2, "shape");
        lua_pushinteger(L, (lua_Integer)p->numel);
        lua_setfield(L, -2, "numel");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* m:tensor(name) -> Matrix (a copy; 1-D tensors are 1 x n) | nil, msg, code */
static int l_tensor(lua_State *L) {
    AmModelBox *b = am_lua_checkmodelbox(L, 1);
    const char *name = luaL_checkstring(L, 2);
    EmbedModel *em;
    int rc = am_lua_model_load(b, &em);
    if (rc) return am_lua_fail(L, rc);
    const ParamInfo *p = param_table_find(&em->model->tab, name);
    if (!p)
        return am_lua_failmsg(L, AM_ENOTFOUND, "model %s has no tensor '%s' (see model:tensors())",
                              b->label ? b->label : b->id, name);
    int64_t rows = p->ndim >= 2 ? p->shape[0] : 1;
    int64_t cols = p->ndim >= 2 ? (int64_t)p->numel / rows : (int64_t)p->numel;
    AmMatrix *m = am_lua_newmatrix(L, rows, cols);
    if (!m->data) return am_lua_fail(L, AM_ENOMEM);
    memcpy(m->data, em->model->params + p->offset, p->numel * sizeof(float));
    return 1;
}

static int encode_progress(void *ud, int done, int total) {
    (void)done;
    (void)total;
    return am_lua_ctx_interrupted(ud);
}

/* m:encode(texts [, {pooling=, normalize=, layer=, dim=, batch=, max_len=}])
 *   texts: a string or a list of strings -> Matrix (#texts x dim) | nil, msg, code */
static int l_encode(lua_State *L) {
    AmModelBox *b = am_lua_checkmodelbox(L, 1);
    int single = lua_type(L, 2) == LUA_TSTRING;
    if (!single) luaL_argexpected(L, lua_type(L, 2) == LUA_TTABLE, 2, "string or list of strings");
    static const char *const known[] = {"pooling", "normalize", "layer", "dim", "batch", "max_len", NULL};
    am_lua_opt_check(L, 3, 3, known);
    EmbedOptions o;
    embed_options_default(&o);
    o.pooling = am_lua_opt_enum(L, 3, 3, "pooling", pool_names, -1);
    o.normalize = am_lua_opt_bool(L, 3, 3, "normalize", -1);
    lua_Integer layer = am_lua_opt_int(L, 3, 3, "layer", -1);
    lua_Integer dim = am_lua_opt_int(L, 3, 3, "dim", 0);
    lua_Integer batch = am_lua_opt_int(L, 3, 3, "batch", 64);
    lua_Integer max_len = am_lua_opt_int(L, 3, 3, "max_len", 0);
    luaL_argcheck(L, batch >= 1 && batch <= 65536, 3, "option 'batch' must be 1..65536");
    luaL_argcheck(L, max_len == 0 || (max_len >= 2 && max_len <= 1 << 20), 3,
                  "option 'max_len' must be >= 2 (or 0 = the model's max_seq_length)");
    /* texts: pointers into Lua strings anchored by the argument table */
    lua_Integer n = single ? 1 : (lua_Integer)lua_rawlen(L, 2);
    luaL_argcheck(L, n <= 1 << 24, 2, "too many texts");
    const char **texts = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *texts, 0); /* GC-owned */
    for (lua_Integer i = 0; i < n; i++) {
        size_t len;
        if (single) texts[i] = lua_tolstring(L, 2, &len);
        else {
            if (lua_rawgeti(L, 2, i + 1) != LUA_TSTRING)
                luaL_argerror(L, 2, lua_pushfstring(L, "text %I is a %s, not a string", (LUAI_UACINT)(i + 1),
                                                    luaL_typename(L, -1)));
            texts[i] = lua_tolstring(L, -1, &len);
            lua_pop(L, 1);
        }
        if (strlen(texts[i]) != len)
            return am_lua_failmsg(L, AM_EFORMAT, "text %lld contains a NUL byte", (long long)(i + 1));
    }
    EmbedModel *em;
    int rc = am_lua_model_load(b, &em);
    if (rc) return am_lua_fail(L, rc);
    int L_ = em->model->cfg.num_layers, C = em->model->cfg.hidden_size;
    if (layer < -1 || layer > L_)
        luaL_argerror(L, 3, lua_pushfstring(L, "option 'layer': %I out of range 0..%d (-1 = last)", (LUAI_UACINT)layer, L_));
    if (dim < 0 || dim > C)
        luaL_argerror(L, 3, lua_pushfstring(L, "option 'dim': %I out of range 1..%d (0 = all)", (LUAI_UACINT)dim, C));
    o.layer = (int)layer;
    o.dim = (int)dim;
    o.batch = (int)batch;
    o.max_len = (int)max_len;
    AmMatrix *m = am_lua_newmatrix(L, n, embed_model_dim(em, &o));
    if (!m->data) return am_lua_fail(L, AM_ENOMEM);
    rc = embed_model_encode(em, texts, (int)n, &o, m->data, encode_progress, am_lua_ctx(L));
    if (rc == AM_EINTR && am_lua_interrupted(L)) return luaL_error(L, "interrupted");
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

/* m:export(dir) -> true | nil, msg, code (sentence-transformers directory, hf.h) */
static int l_export(lua_State *L) {
    AmModelBox *b = am_lua_checkmodelbox(L, 1);
    const char *dir = luaL_checkstring(L, 2);
    EmbedModel *em;
    int rc = am_lua_model_load(b, &em);
    if (rc) return am_lua_fail(L, rc);
    size_t vlen;
    const char *vtext = vocab_text(em->vocab, &vlen);
    if ((rc = hf_export_vocab_text(dir, em->model, vtext, vlen, &em->info))) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_tostring(lua_State *L) {
    AmModelBox *b = luaL_checkudata(L, 1, AM_MODEL_MT);
    if (!b->st) lua_pushliteral(L, "amalgam.Model (closed)");
    else {
        char shortid[13];
        memcpy(shortid, b->id, 12);
        shortid[12] = 0;
        if (b->label) lua_pushfstring(L, "amalgam.Model (%s %s)", b->label, shortid);
        else lua_pushfstring(L, "amalgam.Model (%s)", shortid);
    }
    return 1;
}

static int l_eq(lua_State *L) {
    AmModelBox *a = luaL_testudata(L, 1, AM_MODEL_MT), *b = luaL_testudata(L, 2, AM_MODEL_MT);
    lua_pushboolean(L, a && b && a->st && b->st && strcmp(a->id, b->id) == 0);
    return 1;
}

/* ---------------------------------------------------------------- creating models */

static const char *const presets[] = {"tiny", "mini", "small", NULL};

/* raw_init_model(store, config, name|nil, seed, vocab_path|nil, max_seq_length) -> Model | fail */
static int l_raw_init_model(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *config = presets[luaL_checkoption(L, 2, NULL, presets)];
    const char *name = luaL_optstring(L, 3, NULL);
    lua_Integer seed = luaL_optinteger(L, 4, 42);
    const char *vpath = luaL_optstring(L, 5, NULL);
    lua_Integer maxlen = luaL_optinteger(L, 6, 128);
    luaL_argcheck(L, maxlen >= 2, 6, "max_seq_length must be >= 2");
    /* from here on: no Lua errors until m and v are freed */
    EncoderConfig cfg;
    int rc = encoder_config_preset(&cfg, config);
    if (rc) return am_lua_fail(L, rc);
    Vocab *v = NULL;
    const char *vp = vpath ? vpath : vocab_default_path();
    if ((rc = vocab_load(vp, &v)))
        return am_lua_fail(L, am_error_wrap(rc, "init_model: cannot load the vocabulary%s",
                                            vpath ? "" : " (HINT: ./amalgam fetches it; or pass vocab=FILE)"));
    cfg.vocab_size = vocab_size(v);
    cfg.pad_token_id = vocab_specials(v).pad;
    if (maxlen > cfg.max_position) maxlen = cfg.max_position;
    Model *m = NULL;
    if ((rc = model_new(&cfg, &m))) {
        vocab_delete(v);
        return am_lua_fail(L, rc);
    }
    model_init_bert(m, (uint64_t)seed);
    HfInfo info;
    hf_info_default(&info);
    info.max_seq_length = (int)maxlen;
    snprintf(info.source, sizeof info.source, "init_model{config=%s, seed=%lld}", config, (long long)seed);
    size_t vlen;
    const char *vtext = vocab_text(v, &vlen);
    char id[AM_ID_HEX + 1];
    rc = embed_store_model(s, m, vtext, vlen, &info, name, "init", NULL, id);
    model_delete(m);
    vocab_delete(v);
    if (rc) return am_lua_fail(L, rc);
    if ((rc = am_lua_pushmodel(L, 1, id, name))) return am_lua_fail(L, rc);
    return 1;
}

/* raw_import(store, dir, name|nil) -> Model | fail */
static int l_raw_import(lua_State *L) {
    Store *s = am_lua_checkstore(L, 1);
    const char *dir = luaL_checkstring(L, 2);
    const char *name = luaL_optstring(L, 3, NULL);
    Model *m = NULL;
    Vocab *v = NULL;
    HfInfo info;
    int rc = hf_import(dir, &m, &v, &info);
    if (rc) return am_lua_fail(L, rc);
    size_t vlen;
    const char *vtext = vocab_text(v, &vlen);
    char id[AM_ID_HEX + 1];
    rc = embed_store_model(s, m, vtext, vlen, &info, name, "pretrained", NULL, id);
    model_delete(m);
    vocab_delete(v);
    if (rc) return am_lua_fail(L, rc);
    if ((rc = am_lua_pushmodel(L, 1, id, name))) return am_lua_fail(L, rc);
    return 1;
}

/* type(v) -> "Store" | "Model" | "Matrix" | "Dataset" | "Trainer" | nil */
static int l_type(lua_State *L) {
    static const char *const mts[] = {AM_STORE_MT, AM_MODEL_MT, AM_MATRIX_MT, "amalgam.Dataset", "amalgam.Trainer"};
    luaL_checkany(L, 1);
    for (int i = 0; i < (int)(sizeof mts / sizeof mts[0]); i++)
        if (luaL_testudata(L, 1, mts[i])) {
            lua_pushstring(L, mts[i] + 8); /* after "amalgam." */
            return 1;
        }
    lua_pushnil(L);
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"id", l_id},           {"name", l_name},       {"names", l_names},   {"kind", l_kind},
    {"meta", l_meta},       {"config", l_config},   {"layers", l_layers}, {"dim", l_dim},
    {"tensors", l_tensors}, {"tensor", l_tensor},   {"encode", l_encode}, {"export", l_export},
    {"close", model_close}, {NULL, NULL},
};

static const luaL_Reg model_meta[] = {
    {"__gc", model_close}, {"__close", model_close}, {"__tostring", l_tostring}, {"__eq", l_eq}, {NULL, NULL},
};

static const luaL_Reg model_funcs[] = {
    {"raw_init_model", l_raw_init_model},
    {"raw_import", l_raw_import},
    {"type", l_type},
    {NULL, NULL},
};

void am_lua_open_model(lua_State *L) {
    am_lua_newclass(L, AM_MODEL_MT, model_methods, model_meta);
    luaL_setfuncs(L, model_funcs, 0);
}
