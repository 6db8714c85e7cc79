/* l_eval.c - the evaluation runner (src/evalrun) for Lua: raw_* primitives that
 * lua/amalgam/eval.lua wraps into am.eval / am.compare / am.results.
 *
 *   raw_eval_task(store|nil, model, spec, cfg) -> result, from_store | nil, msg, code
 *       spec: a task table (evaltask_from_json keys: name, type, path, dataset, tag, main, format,
 *             split, train, seed, samples_per_label, experiments, cluster_sample,
 *             ignore_identical_ids, candidate_pool, sklearn = "1.4"|"1.2", quick = {...})
 *       cfg:  {mode = "full"|"quick", layer, dim, pooling = "mean"|"cls", normalize, max_len,
 *              batch, force, no_store, no_cache, on_step = function(info)}
 *             on_step gets {stage = "load"|"encode"|"score"|"done", task, done, total}; an error in
 *             it (or an interrupt) stops the evaluation and is raised again once the C side has
 *             cleaned up.
 *   raw_eval_lookup(store, model_id, spec, cfg) -> result | nil, msg, "ENOTFOUND"   (no encoding)
 *   raw_eval_config_hash(store, model_id, spec, cfg) -> hash, config_json
 *   raw_eval_results(store [, model_id]) -> { {model=, task=, config_hash=, result=}, ... }
 *   raw_eval_spec(text) -> spec table for "beir:DIR" / "sts:FILE" / ... | nil, msg, code
 *   raw_eval_stats() -> {encode_calls=, texts_encoded=, texts_cached=, disk_loads=,
 *                        results_stored=, results_computed=}
 *   raw_eval_clear()  drops the cached embeddings and datasets of this Lua state's runner
 *
 * One EvalRunner per lua_State (its embedding cache), kept in the registry and freed by __gc.
 * Results are decoded JSON tables (null -> am.json.null).
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "evalrun.h"
#include "hf.h"
#include "tensor.h"

#include <stdlib.h>
#include <string.h>

void am_lua_open_eval(lua_State *L);

#define RUNNER_KEY "amalgam.evalrunner"

typedef struct { EvalRunner *r; } RunnerBox;

static int runner_gc(lua_State *L) {
    RunnerBox *b = lua_touserdata(L, 1);
    evalrun_delete(b->r);
    b->r = NULL;
    return 0;
}

static EvalRunner *get_runner(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, RUNNER_KEY) == LUA_TUSERDATA) {
        RunnerBox *b = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return b->r;
    }
    lua_pop(L, 1);
    RunnerBox *b = lua_newuserdatauv(L, sizeof *b, 0);   /* [box] */
    b->r = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, runner_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    b->r = evalrun_new();
    lua_setfield(L, LUA_REGISTRYINDEX, RUNNER_KEY);      /* [] */
    return b->r;
}

/* the task spec at idx (a table) -> EvalTask in an autofree box left on the stack */
static void task_free_box(void *p) {
    evaltask_free(p);
    free(p);
}

static EvalTask *check_spec(lua_State *L, int idx, int *rc) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    char *json = am_lua_tojson(L, idx, 0);                 /* raises on values JSON cannot hold */
    AmAutoFree *box = am_lua_newautofree(L, task_free_box);
    EvalTask *t = xcalloc(1, sizeof *t);
    box->p = t;
    *rc = evaltask_from_json(t, json);
    free(json);
    return t;
}

static const char *const modes[] = {"full", "quick", NULL};   /* = AM_EVAL_FULL, AM_EVAL_QUICK */

static void check_cfg(lua_State *L, int t, int arg, EvalConfig *c) {
    static const char *const known[] = {"mode", "layer", "dim", "pooling", "normalize", "max_len", "batch", "force",
                                        "no_store", "no_cache", "on_step", NULL};
    eval_config_default(c);
    if (lua_isnoneornil(L, t)) return;
    luaL_checktype(L, t, LUA_TTABLE);
    am_lua_opt_check(L, t, arg, known);
    c->mode = am_lua_opt_enum(L, t, arg, "mode", modes, AM_EVAL_FULL) == 1 ? AM_EVAL_QUICK : AM_EVAL_FULL;
    lua_Integer layer = am_lua_opt_int(L, t, arg, "layer", -1);
    lua_Integer dim = am_lua_opt_int(L, t, arg, "dim", 0);
    lua_Integer max_len = am_lua_opt_int(L, t, arg, "max_len", 0);
    lua_Integer batch = am_lua_opt_int(L, t, arg, "batch", 64);
    luaL_argcheck(L, layer >= -1 && layer <= 1000, arg, "option 'layer' must be >= 0 (-1 = last)");
    luaL_argcheck(L, dim >= 0 && dim <= 1 << 20, arg, "option 'dim' must be >= 1 (0 = all)");
    luaL_argcheck(L, max_len == 0 || (max_len >= 2 && max_len <= 1 << 20), arg, "option 'max_len' must be >= 2");
    luaL_argcheck(L, batch >= 1 && batch <= 65536, arg, "option 'batch' must be 1..65536");
    c->layer = (int)layer;
    c->dim = (int)dim;
    c->max_len = (int)max_len;
    c->batch = (int)batch;
    c->pooling = am_lua_opt_enum(L, t, arg, "pooling", pool_names, -1);
    c->normalize = am_lua_opt_bool(L, t, arg, "normalize", -1);
    if (am_lua_opt_bool(L, t, arg, "force", 0)) c->flags |= AM_EVAL_FORCE;
    if (am_lua_opt_bool(L, t, arg, "no_store", 0)) c->flags |= AM_EVAL_NO_STORE;
    if (am_lua_opt_bool(L, t, arg, "no_cache", 0)) c->flags |= AM_EVAL_NO_DISK_CACHE;
    int ty = lua_getfield(L, t, "on_step");
    if (ty != LUA_TNIL && ty != LUA_TFUNCTION) luaL_argerror(L, arg, "option 'on_step': function expected");
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- progress -> Lua */

typedef struct {
    lua_State *L;
    int cb;            /* stack index of on_step, or 0 */
    int err_ref;       /* LUA_NOREF, or a reference to the callback's error */
    int interrupted;
} Prog;

static const char *const stages[] = {"load", "encode", "score", "done"};

static int on_progress(void *ud, const EvalProgress *p) {
    Prog *g = ud;
    lua_State *L = g->L;
    if (am_lua_interrupted(L)) {
        g->interrupted = 1;
        return 1;
    }
    if (!g->cb) return 0;
    lua_pushvalue(L, g->cb);
    lua_createtable(L, 0, 4);
    am_lua_setstr(L, "stage", stages[p->stage]);
    am_lua_setstr(L, "task", p->task);
    am_lua_setint(L, "done", p->done);
    am_lua_setint(L, "total", p->total);
    if (am_docall(L, 1, 0) != LUA_OK) {           /* never longjmp over the C evaluation */
        g->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 1;
    }
    return 0;
}

/* after the C call: raise the callback's error or the interrupt */
static void reraise(lua_State *L, Prog *g) {
    if (g->err_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, g->err_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, g->err_ref);
        lua_error(L);
    }
    if (g->interrupted || am_lua_interrupted(L)) luaL_error(L, "interrupted");
}

static Store *opt_store(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return NULL;
    return am_lua_checkstore(L, idx);
}

/* push the decoded result (or fail) and free json */
static int push_result(lua_State *L, char *json) {
    AmAutoFree *a = am_lua_newautofree(L, free);
    a->p = json;
    int rc = am_lua_pushjson(L, json, strlen(json));
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

/* raw_eval_task(store|nil, model, spec, cfg) */
static int l_raw_eval_task(lua_State *L) {
    Store *st = opt_store(L, 1);
    AmModelBox *mb = am_lua_checkmodelbox(L, 2);
    int rc;
    EvalTask *t = check_spec(L, 3, &rc);
    if (rc) return am_lua_fail(L, rc);
    EvalConfig c;
    check_cfg(L, 4, 4, &c);
    Prog g = {L, 0, LUA_NOREF, 0};
    if (lua_istable(L, 4) && lua_getfield(L, 4, "on_step") == LUA_TFUNCTION) g.cb = lua_gettop(L);
    else if (lua_istable(L, 4)) lua_pop(L, 1);
    c.progress = on_progress;
    c.ud = &g;
    EmbedModel *em;
    if ((rc = am_lua_model_load(mb, &em))) return am_lua_fail(L, rc);
    EvalRunner *r = get_runner(L);
    char *json = NULL;
    int from_store = 0;
    rc = evalrun_task(r, st, em, t, &c, &json, &from_store);
    if (rc == AM_EINTR) reraise(L, &g);
    if (rc) return am_lua_fail(L, rc);
    if (push_result(L, json) != 1) return 3;
    lua_pushboolean(L, from_store);
    return 2;
}

/* model info of a stored model id */
static int model_info(Store *st, const char *id_or_name, EvalModelInfo *mi) {
    char id[AM_ID_HEX + 1];
    char *meta = NULL;
    int rc = store_resolve(st, id_or_name, id);
    if (!rc) rc = store_model_meta(st, id, &meta);
    if (!rc) rc = evalrun_model_info_meta(id, meta, mi);
    free(meta);
    return rc;
}

/* raw_eval_lookup(store, model, spec, cfg) */
static int l_raw_eval_lookup(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    const char *model = luaL_checkstring(L, 2);
    int rc;
    EvalTask *t = check_spec(L, 3, &rc);
    if (rc) return am_lua_fail(L, rc);
    EvalConfig c;
    check_cfg(L, 4, 4, &c);
    EvalModelInfo mi;
    if ((rc = model_info(st, model, &mi))) return am_lua_fail(L, rc);
    char *json = NULL;
    rc = evalrun_lookup(get_runner(L), st, &mi, t, &c, &json);
    if (rc == AM_ENOTFOUND && !json)
        return am_lua_failmsg(L, AM_ENOTFOUND, "no %s result of model %.12s on task '%s'",
                              evalrun_mode_name(c.mode), mi.id, t->name);
    if (rc) return am_lua_fail(L, rc);
    return push_result(L, json);
}

/* raw_eval_config_hash(store, model, spec, cfg) -> hash, config_json */
static int l_raw_eval_config_hash(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    const char *model = luaL_checkstring(L, 2);
    int rc;
    EvalTask *t = check_spec(L, 3, &rc);
    if (rc) return am_lua_fail(L, rc);
    EvalConfig c;
    check_cfg(L, 4, 4, &c);
    EvalModelInfo mi;
    if ((rc = model_info(st, model, &mi))) return am_lua_fail(L, rc);
    char hash[33];
    AmAutoFree *a = am_lua_newautofree(L, free);
    if ((rc = evalrun_config_hash(get_runner(L), &mi, t, &c, hash, (char **)&a->p))) return am_lua_fail(L, rc);
    lua_pushstring(L, hash);
    lua_pushstring(L, a->p);
    return 2;
}

typedef struct { lua_State *L; int n; int bad; } ResCtx;

static int collect(void *ud, const char *id, const char *task, const char *hash, const char *json) {
    ResCtx *c = ud;
    lua_State *L = c->L;
    if (am_lua_pushjson(L, json, strlen(json)) != AM_OK) {   /* a broken value: skip it */
        am_clearerror();
        c->bad++;
        return 0;
    }                                                     /* [list, result] */
    lua_createtable(L, 0, 4);
    am_lua_setstr(L, "model", id);
    am_lua_setstr(L, "task", task);
    am_lua_setstr(L, "config_hash", hash);
    lua_insert(L, -2);
    lua_setfield(L, -2, "result");
    lua_rawseti(L, -2, ++c->n);
    return 0;
}

/* raw_eval_results(store [, model]) */
static int l_raw_eval_results(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    const char *model = luaL_optstring(L, 2, NULL);
    char id[AM_ID_HEX + 1];
    int rc;
    if (model && (rc = store_resolve(st, model, id))) return am_lua_fail(L, rc);
    lua_newtable(L);
    ResCtx c = {L, 0, 0};
    luaL_checkstack(L, 8, NULL);
    if ((rc = evalrun_results_list(st, model ? id : NULL, collect, &c))) return am_lua_fail(L, rc);
    return 1;
}

/* raw_eval_spec("beir:DIR") -> spec table */
static int l_raw_eval_spec(lua_State *L) {
    const char *s = luaL_checkstring(L, 1);
    EvalTask *t = xcalloc(1, sizeof *t);
    AmAutoFree *box = am_lua_newautofree(L, task_free_box);
    box->p = t;
    int rc = evaltask_from_spec(t, s);
    if (rc) return am_lua_fail(L, rc);
    AmAutoFree *a = am_lua_newautofree(L, free);
    a->p = evaltask_to_json(t);
    if ((rc = am_lua_pushjson(L, a->p, strlen(a->p)))) return am_lua_fail(L, rc);
    return 1;
}

static int l_raw_eval_stats(lua_State *L) {
    EvalRunnerStats s;
    evalrun_stats(get_runner(L), &s);
    lua_createtable(L, 0, 6);
#define F(k) am_lua_setint(L, #k, (lua_Integer)s.k);
    F(encode_calls) F(texts_encoded) F(texts_cached) F(disk_loads) F(results_stored) F(results_computed)
#undef F
    return 1;
}

/* raw_phase_times([reset]) -> {parents=, merge=, data=, tokenize=, encode=, metrics=, store=} seconds
 * summed since the last reset (before resetting when reset is true), pool threads */
static int l_raw_phase_times(lua_State *L) {
    double t[AM_PHASE_COUNT];
    am_phase_get(t);
    if (lua_toboolean(L, 1)) am_phase_reset();
    lua_createtable(L, 0, AM_PHASE_COUNT);
    for (int i = 0; i < AM_PHASE_COUNT; i++) {
        lua_pushnumber(L, t[i]);
        lua_setfield(L, -2, am_phase_name(i));
    }
    lua_pushinteger(L, am_parallel_get_threads());
    return 2;
}

static int l_raw_eval_clear(lua_State *L) {
    evalrun_clear(get_runner(L));
    return 0;
}

/* raw_eval_paired(store, model_a, model_b, task, hash_a, hash_b [, B, seed]) -> {delta, se, p_value,
 * n, B} of a minus b on the stored per-example scores | nil, msg, code */
static int l_raw_eval_paired(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    const char *ma = luaL_checkstring(L, 2), *mb = luaL_checkstring(L, 3), *task = luaL_checkstring(L, 4);
    const char *ha = luaL_checkstring(L, 5), *hb = luaL_checkstring(L, 6);
    int B = (int)luaL_optinteger(L, 7, AM_EVAL_PAIRED_B);
    uint32_t seed = (uint32_t)luaL_optinteger(L, 8, 42);
    luaL_argcheck(L, B >= 2 && B <= 1000000, 7, "B must be in 2..1000000");
    PerExample a, b;
    int rc = evalrun_examples_get(st, ma, task, ha, &a);
    if (rc) return am_lua_fail(L, rc);
    rc = evalrun_examples_get(st, mb, task, hb, &b);
    if (rc) {
        px_free(&a);
        return am_lua_fail(L, rc);
    }
    PairedTest t;
    rc = px_paired_test(&t, &a, &b, B, seed);
    px_free(&a);
    px_free(&b);
    if (rc) return am_lua_fail(L, rc);
    lua_createtable(L, 0, 5);
    am_lua_setnum(L, "delta", t.delta);
    am_lua_setnum(L, "se", t.se);
    am_lua_setnum(L, "p_value", t.p_value);
    am_lua_setint(L, "n", t.n);
    am_lua_setint(L, "B", t.B);
    return 1;
}

static const luaL_Reg eval_funcs[] = {
    {"raw_eval_paired", l_raw_eval_paired},
    {"raw_eval_task", l_raw_eval_task},
    {"raw_eval_lookup", l_raw_eval_lookup},
    {"raw_eval_config_hash", l_raw_eval_config_hash},
    {"raw_eval_results", l_raw_eval_results},
    {"raw_eval_spec", l_raw_eval_spec},
    {"raw_eval_stats", l_raw_eval_stats},
    {"raw_eval_clear", l_raw_eval_clear},
    {"raw_phase_times", l_raw_phase_times},
    {NULL, NULL},
};

/* The public entry points live in lua/amalgam/eval.lua; the module gets forwarding functions
 * (tail calls, so error levels point at the caller) that load it on first use. */
static const char forwarders[] =
    "local M = ...\n"
    "for _, f in ipairs { 'eval', 'compare', 'results', 'eval_suite', 'bench_quick' } do\n"
    "  M[f] = function(...) return require('amalgam.eval')[f](...) end\n"
    "end\n";

void am_lua_open_eval(lua_State *L) {
    /* [M] */
    luaL_setfuncs(L, eval_funcs, 0);
    if (luaL_loadbuffer(L, forwarders, sizeof forwarders - 1, "=amalgam.eval.forwarders") != LUA_OK)
        lua_error(L);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
}
