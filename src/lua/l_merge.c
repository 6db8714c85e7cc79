/* l_merge.c - merges of stored models for Lua (src/api/merge_store.h); lua/amalgam/merge.lua
 * wraps them into am.merge.
 *
 *   raw_merge(store, req) -> Model, info | nil, msg, code
 *       req: {method = "ties", base = id|name|nil, models = {id|name, ...}, weights = {w, ...}|nil,
 *             params = JSON object text|nil, rules = JSON array text|nil, name = string|nil,
 *             materialize = bool, source = string}
 *       info: {id, found (the same merge was stored: nothing computed), stored_tensors, seconds,
 *              sign_conflicts, delta_kept, delta_total, lerp_fallbacks}
 *   raw_merge_diagnose(store, base|nil, {model, ...}) -> diagnostics (merge_store_diagnose's JSON)
 *   raw_merge_counts() -> {computed = merges computed, reused = recipes taken from the last result,
 *                          inputs_loaded / inputs_kept = stored inputs read / kept in memory}
 *   raw_merge_recipe(store, req) -> id, spec_json | nil, msg, code   (checks, no tensors, no writes)
 *   raw_merge_methods() -> { {name=, title=, reference=, base = "none"|"optional"|"required",
 *                             min_models=, max_models=, params = {"weight", ...}}, ... },
 *                          { option name, ... }   (normalize, rescale, seed, ...)
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "merge_store.h"

#include <stdlib.h>
#include <string.h>

void am_lua_open_merge(lua_State *L);

typedef struct {
    MergeRequest r;
    const char **models;
    double *weights;
} ReqBox;

static void req_free(void *p) {
    ReqBox *b = p;
    if (!b) return;
    free(b->models);
    free(b->weights);
    free(b);
}

/* read the request table at idx into an autofree box (pushed); strings stay borrowed from it */
static ReqBox *check_req(lua_State *L, int idx) {
    luaL_checktype(L, idx, LUA_TTABLE);
    AmAutoFree *af = am_lua_newautofree(L, req_free);
    ReqBox *b = af->p = xcalloc(1, sizeof *b);
    b->r.method = am_lua_opt_str(L, idx, 2, "method", NULL);
    b->r.base = am_lua_opt_str(L, idx, 2, "base", NULL);
    b->r.name = am_lua_opt_str(L, idx, 2, "name", NULL);
    b->r.source = am_lua_opt_str(L, idx, 2, "source", NULL);
    b->r.params_json = am_lua_opt_str(L, idx, 2, "params", NULL);
    b->r.rules_json = am_lua_opt_str(L, idx, 2, "rules", NULL);
    b->r.materialize = am_lua_opt_bool(L, idx, 2, "materialize", 0);
    lua_getfield(L, idx, "models");
    luaL_argcheck(L, lua_istable(L, -1), 2, "req.models must be a list of model names or ids");
    int n = (int)luaL_len(L, -1);
    b->models = xcalloc((size_t)n + 1, sizeof *b->models);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        b->models[i] = lua_tostring(L, -1);
        luaL_argcheck(L, b->models[i] != NULL, 2, "req.models entries must be strings");
        lua_pop(L, 1); /* the string stays alive in req.models */
    }
    lua_pop(L, 1);
    b->r.n = n;
    b->r.models = b->models;
    if (lua_getfield(L, idx, "weights") == LUA_TTABLE) {
        luaL_argcheck(L, luaL_len(L, -1) == n, 2, "req.weights must have one weight per model");
        b->weights = xcalloc((size_t)n + 1, sizeof *b->weights);
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, -1, i + 1);
            int ok;
            b->weights[i] = lua_tonumberx(L, -1, &ok);
            luaL_argcheck(L, ok, 2, "req.weights entries must be numbers");
            lua_pop(L, 1);
        }
        b->r.weights = b->weights;
    }
    lua_pop(L, 1);
    return b;
}

/* raw_merge(store, req) -> Model, info | nil, msg, code */
static int l_raw_merge(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    ReqBox *b = check_req(L, 2);
    MergeResult res;
    int rc = merge_store_merge(st, &b->r, &res);
    if (rc) return am_lua_fail(L, rc);
    model_delete(res.model); /* the handle loads (or computes) it on first use */
    res.model = NULL;
    if ((rc = am_lua_pushmodel(L, 1, res.id, b->r.name))) return am_lua_fail(L, rc);
    lua_createtable(L, 0, 8);
    am_lua_setstr(L, "id", res.id);
    am_lua_setbool(L, "found", res.found);
    am_lua_setbool(L, "stored_tensors", res.stored_tensors);
    am_lua_setnum(L, "seconds", res.stats.seconds);
    am_lua_setint(L, "sign_conflicts", res.stats.sign_conflicts);
    am_lua_setint(L, "delta_kept", res.stats.delta_kept);
    am_lua_setint(L, "delta_total", res.stats.delta_total);
    am_lua_setint(L, "lerp_fallbacks", res.stats.lerp_fallbacks);
    return 2;
}

/* raw_merge_recipe(store, req) -> id, spec_json | nil, msg, code */
static int l_raw_merge_recipe(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    ReqBox *b = check_req(L, 2);
    AmAutoFree *af = am_lua_newautofree(L, free);
    char id[AM_ID_HEX + 1];
    char *spec = NULL;
    int rc = merge_store_recipe(st, &b->r, &spec, id);
    af->p = spec;
    if (rc) return am_lua_fail(L, rc);
    lua_pushstring(L, id);
    lua_pushstring(L, spec);
    return 2;
}

/* raw_merge_methods() -> list of method descriptions, list of option names */
static int l_raw_merge_methods(lua_State *L) {
    static const char *const bases[] = {"none", "optional", "required"};
    lua_createtable(L, MERGE_METHOD_COUNT, 0);
    for (int m = 0; m < MERGE_METHOD_COUNT; m++) {
        const MergeMethodInfo *mi = merge_method_info((MergeMethod)m);
        lua_createtable(L, 0, 7);
        am_lua_setstr(L, "name", mi->name);
        am_lua_setstr(L, "title", mi->title);
        am_lua_setstr(L, "reference", mi->reference);
        am_lua_setstr(L, "base", bases[mi->base]);
        am_lua_setint(L, "min_models", mi->min_models);
        am_lua_setint(L, "max_models", mi->max_models);
        lua_newtable(L);
        int k = 0;
        for (int p = 0; p < MERGE_PARAM_COUNT; p++)
            if (mi->params & (1u << p)) {
                lua_pushstring(L, merge_param_name((MergeParam)p));
                lua_rawseti(L, -2, ++k);
            }
        lua_setfield(L, -2, "params");
        lua_rawseti(L, -2, m + 1);
    }
    int n;
    const char *const *opts = merge_store_options(&n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, opts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 2;
}

/* raw_merge_diagnose(store, base|nil, {model, ...}) -> table | nil, msg, code */
static int l_raw_merge_diagnose(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    const char *base = luaL_optstring(L, 2, NULL);
    luaL_checktype(L, 3, LUA_TTABLE);
    int n = (int)luaL_len(L, 3);
    luaL_argcheck(L, n >= 1 && n <= 64, 3, "1..64 models expected");
    const char *models[64];
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 3, i + 1);
        models[i] = lua_tostring(L, -1);
        luaL_argcheck(L, models[i] != NULL, 3, "model names or ids expected");
        lua_pop(L, 1);
    }
    AmAutoFree *af = am_lua_newautofree(L, free);
    char *json = NULL;
    int rc = merge_store_diagnose(st, base, models, n, &json);
    af->p = json;
    if (rc) return am_lua_fail(L, rc);
    if ((rc = am_lua_pushjson(L, json, strlen(json)))) return am_lua_fail(L, rc);
    return 1;
}

/* raw_merge_counts() -> {computed=, reused=, inputs_loaded=, inputs_kept=} */
static int l_raw_merge_counts(lua_State *L) {
    MergeStoreCounts c;
    merge_store_counts(&c);
    lua_createtable(L, 0, 4);
    am_lua_setint(L, "computed", c.computed);
    am_lua_setint(L, "reused", c.reused);
    am_lua_setint(L, "inputs_loaded", c.inputs_loaded);
    am_lua_setint(L, "inputs_kept", c.inputs_kept);
    return 1;
}

/* raw_merge_forget(): drop the stored inputs kept loaded between merges (memory back at once) */
static int l_raw_merge_forget(lua_State *L) {
    (void)L;
    merge_store_forget_inputs();
    return 0;
}

static const luaL_Reg merge_funcs[] = {
    {"raw_merge_counts", l_raw_merge_counts},
    {"raw_merge_forget", l_raw_merge_forget},
    {"raw_merge_diagnose", l_raw_merge_diagnose},
    {"raw_merge", l_raw_merge},
    {"raw_merge_recipe", l_raw_merge_recipe},
    {"raw_merge_methods", l_raw_merge_methods},
    {NULL, NULL},
};

void am_lua_open_merge(lua_State *L) { luaL_setfuncs(L, merge_funcs, 0); }
