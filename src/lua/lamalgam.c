/* lamalgam.c - luaopen_amalgam: the module table, per-state context, error and option helpers,
 * and the loader of the bundled Lua library (the files under lua/amalgam/ compiled into the binary).
 *
 * require "amalgam" = luaopen_amalgam:
 *   1. luaopen_amalgam_core builds the C part with luaL_newlib (raw_* primitives, json, version)
 *      and registers the Store / Model / Matrix classes;
 *   2. a searcher for "amalgam.*" modules is added to package.searchers (after preload): it
 *      serves $AMALGAM_LUA_PATH/amalgam/<x>.lua when that variable is set and the file exists
 *      (development), else the copy compiled into the binary (am_lua_embedded.c, generated);
 *   3. lua/amalgam/init.lua runs with the core table and returns the public module (the same
 *      table, with the Lua sugar added).
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"

#include <dlfcn.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the generated string table (am_lua_embedded.c) */
typedef struct {
    const char *module;   /* "amalgam", "amalgam.recipe", ... */
    const char *path;     /* "lua/amalgam/init.lua" (chunk names and messages) */
    const unsigned char *data;
    size_t len;
} AmLuaSource;
extern const AmLuaSource am_lua_sources[];

#define CTX_KEY "amalgam.ctx"

/* ---------------------------------------------------------------- context */

static int ctx_gc(lua_State *L) {
    AmLuaCtx *c = lua_touserdata(L, 1);
    free(c->store_dir);
    c->store_dir = NULL;
    return 0;
}

AmLuaCtx *am_lua_ctx(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY) == LUA_TUSERDATA) {
        AmLuaCtx *c = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return c;
    }
    lua_pop(L, 1);
    AmLuaCtx *c = lua_newuserdatauv(L, sizeof *c, 0); /* [ctx] */
    memset(c, 0, sizeof *c);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    c->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY); /* [] */
    return c;
}

void am_lua_set_store_dir(lua_State *L, const char *dir) {
    AmLuaCtx *c = am_lua_ctx(L);
    char *d = dir ? xstrdup(dir) : NULL;
    free(c->store_dir);
    c->store_dir = d;
}

/* ---------------------------------------------------------------- errors */

/* Code names and numbers come from the one list in am_base.h. */
static const struct { int code; const char *name; } errnames[] = {
#define AM_ERR_ENTRY(name, value, text) {AM_##name, #name},
    AM_ERRORS(AM_ERR_ENTRY)
#undef AM_ERR_ENTRY
};

const char *am_lua_errname(int rc) {
    const char *n = am_errname(rc);
    return n ? n : "EUNKNOWN";
}

int am_lua_fail(lua_State *L, int rc) {
    luaL_pushfail(L);
    lua_pushstring(L, am_errmsg(rc));
    lua_pushstring(L, am_lua_errname(rc));
    am_clearerror();
    return 3;
}

int am_lua_failmsg(lua_State *L, int rc, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    luaL_pushfail(L);
    lua_pushstring(L, buf);
    lua_pushstring(L, am_lua_errname(rc));
    return 3;
}

void am_lua_setnum(lua_State *L, const char *k, lua_Number v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

void am_lua_setint(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void am_lua_setbool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

void am_lua_setstr(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* ---------------------------------------------------------------- classes, autofree */

void am_lua_newclass(lua_State *L, const char *tname, const luaL_Reg *methods, const luaL_Reg *metamethods) {
    luaL_newmetatable(L, tname);          /* [mt] */
    luaL_setfuncs(L, metamethods, 0);
    lua_newtable(L);                      /* [mt, methods] */
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");       /* [mt] */
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);                        /* [] */
}

void am_lua_getmethods(lua_State *L, const char *tname) {
    luaL_getmetatable(L, tname);          /* [mt] */
    lua_getfield(L, -1, "__index");       /* [mt, methods] */
    lua_remove(L, -2);
}

static int autofree_gc(lua_State *L) {
    AmAutoFree *a = lua_touserdata(L, 1);
    if (a->p && a->fn) a->fn(a->p);
    a->p = NULL;
    return 0;
}

AmAutoFree *am_lua_newautofree(lua_State *L, void (*fn)(void *)) {
    AmAutoFree *a = lua_newuserdatauv(L, sizeof *a, 0);
    a->p = NULL;
    a->fn = fn;
    if (luaL_newmetatable(L, "amalgam.autofree")) {
        lua_pushcfunction(L, autofree_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return a;
}

void am_lua_autofree_now(lua_State *L, int idx) {
    AmAutoFree *a = luaL_checkudata(L, idx, "amalgam.autofree");
    if (a->p && a->fn) a->fn(a->p);
    a->p = NULL;
}

/* ---------------------------------------------------------------- option tables */

static int opt_field(lua_State *L, int t, const char *key) {
    if (lua_isnoneornil(L, t)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, t, key);
}

static void opt_typeerror(lua_State *L, int arg, const char *key, const char *want) {
    const char *msg = lua_pushfstring(L, "option '%s': %s expected, got %s", key, want, luaL_typename(L, -1));
    luaL_argerror(L, arg, msg);
}

void am_lua_opt_check(lua_State *L, int t, int arg, const char *const *known) {
    if (lua_isnoneornil(L, t)) return;
    luaL_checktype(L, t, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);  /* [key] */
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (const char *const *p = known; *p && !ok; p++) ok = strcmp(*p, k) == 0;
        }
        if (!ok) {
            const char *key = luaL_tolstring(L, -1, NULL);  /* [key, keystr] */
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *p = known; *p; p++) {
                if (p != known) luaL_addstring(&b, ", ");
                luaL_addstring(&b, *p);
            }
            luaL_pushresult(&b);                             /* [key, keystr, list] */
            const char *list = lua_tostring(L, -1);
            luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s' (known: %s)", key, list));
        }
    }
}

lua_Integer am_lua_opt_int(lua_State *L, int t, int arg, const char *key, lua_Integer def) {
    int ty = opt_field(L, t, key);
    lua_Integer v = def;
    if (ty != LUA_TNIL) {
        int isnum;
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum) opt_typeerror(L, arg, key, "integer");
    }
    lua_pop(L, 1);
    return v;
}

lua_Number am_lua_opt_num(lua_State *L, int t, int arg, const char *key, lua_Number def) {
    int ty = opt_field(L, t, key);
    lua_Number v = def;
    if (ty != LUA_TNIL) {
        if (ty != LUA_TNUMBER) opt_typeerror(L, arg, key, "number");
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

int am_lua_opt_bool(lua_State *L, int t, int arg, const char *key, int def) {
    int ty = opt_field(L, t, key);
    int v = def;
    if (ty != LUA_TNIL) {
        if (ty != LUA_TBOOLEAN) opt_typeerror(L, arg, key, "boolean");
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while the option table holds it. */
const char *am_lua_opt_str(lua_State *L, int t, int arg, const char *key, const char *def) {
    int ty = opt_field(L, t, key);
    const char *v = def;
    if (ty != LUA_TNIL) {
        if (ty != LUA_TSTRING) opt_typeerror(L, arg, key, "string");
        v = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

int am_lua_opt_enum(lua_State *L, int t, int arg, const char *key, const char *const *names, int def) {
    const char *s = am_lua_opt_str(L, t, arg, key, NULL);
    if (!s) return def;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; names[i]; i++) {
        if (i) luaL_addchar(&b, '|');
        luaL_addstring(&b, names[i]);
    }
    luaL_pushresult(&b);
    return luaL_argerror(L, arg, lua_pushfstring(L, "option '%s': expected one of %s, got '%s'", key,
                                                  lua_tostring(L, -1), s));
}

/* ---------------------------------------------------------------- bundled Lua sources */

/* Find module `name` (dots) on $AMALGAM_LUA_PATH or in the compiled-in table.
 * Returns LUA_OK with [chunk, origin] pushed, a lua_load status with [message] pushed, or -1
 * (not found, nothing pushed). */
static int load_bundled(lua_State *L, const char *name) {
    const char *dev = getenv("AMALGAM_LUA_PATH");
    if (dev && *dev && strlen(name) < 200) {
        /* amalgam -> amalgam/init.lua ; amalgam.x -> amalgam/x.lua or amalgam/x/init.lua */
        char rel[256], path[4096];
        size_t i = 0;
        for (; name[i]; i++) rel[i] = name[i] == '.' ? '/' : name[i];
        rel[i] = 0;
        for (int c = 0; c < 2; c++) {
            snprintf(path, sizeof path, c == 0 && strchr(name, '.') ? "%s/%s.lua" : "%s/%s/init.lua", dev, rel);
            if (access(path, R_OK) != 0) continue;
            int st = luaL_loadfilex(L, path, "t");
            if (st == LUA_OK) lua_pushstring(L, path);
            return st;
        }
    }
    for (const AmLuaSource *s = am_lua_sources; s->module; s++) {
        if (strcmp(s->module, name) != 0) continue;
        char chunkname[256];
        snprintf(chunkname, sizeof chunkname, "@%s", s->path);
        int st = luaL_loadbufferx(L, (const char *)s->data, s->len, chunkname, "t");
        if (st == LUA_OK) lua_pushstring(L, s->path);
        return st;
    }
    return -1;
}

/* package.searchers entry for "amalgam.*" */
static int bundled_searcher(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    if (strncmp(name, "amalgam.", 8) != 0 && strcmp(name, "amalgam") != 0) {
        lua_pushfstring(L, "no bundled module '%s'", name);
        return 1;
    }
    int st = load_bundled(L, name);
    if (st == -1) {
        lua_pushfstring(L, "no bundled module '%s' (AMALGAM_LUA_PATH or the binary)", name);
        return 1;
    }
    if (st != LUA_OK) return luaL_error(L, "error loading module '%s':\n\t%s", name, lua_tostring(L, -1));
    return 2; /* [loader, origin] */
}

static void install_searcher(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, "amalgam.searcher") != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "amalgam.searcher");
    if (lua_getglobal(L, "package") != LUA_TTABLE) { /* no package library: nothing to do */
        lua_pop(L, 1);
        return;
    }
    if (lua_getfield(L, -1, "searchers") != LUA_TTABLE) {
        lua_pop(L, 2);
        return;
    }
    /* [package, searchers]: insert at position 2 (after preload) */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, bundled_searcher);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
}

/* ---------------------------------------------------------------- log, misc */

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

/* raw_log(level, message) */
static int l_raw_log(lua_State *L) {
    int level = luaL_checkoption(L, 1, NULL, log_levels);
    const char *msg = luaL_checkstring(L, 2);
    am_log(level, "%s", msg);
    return 0;
}

/* raw_log_tail(n) -> { line, ... } oldest first */
static int l_raw_log_tail(lua_State *L) {
    lua_Integer n = luaL_optinteger(L, 1, 20);
    luaL_argcheck(L, n >= 0 && n <= 4096, 1, "expected 0..4096");
    const char *lines[4096];
    int k = am_log_tail(lines, (int)n);
    lua_createtable(L, k, 0);
    for (int i = 0; i < k; i++) {
        lua_pushstring(L, lines[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* raw_methods(class) -> method table of "amalgam.<class>" (for init.lua to add methods) */
static int l_raw_methods(lua_State *L) {
    static const char *const classes[] = {"Store", "Model", "Matrix", NULL};
    int i = luaL_checkoption(L, 1, NULL, classes);
    lua_pushfstring(L, "amalgam.%s", classes[i]);
    am_lua_getmethods(L, lua_tostring(L, -1));
    return 1;
}

/* strerror(code) -> message for a code name or number */
static int l_strerror(lua_State *L) {
    int code;
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *n = lua_tostring(L, 1);
        code = 0;
        for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
            if (strcmp(errnames[i].name, n) == 0) code = errnames[i].code;
        luaL_argcheck(L, code != 0, 1, "unknown error code name");
    } else {
        code = (int)luaL_checkinteger(L, 1);
    }
    lua_pushstring(L, am_strerror(code));
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"raw_log", l_raw_log},
    {"raw_log_tail", l_raw_log_tail},
    {"raw_methods", l_raw_methods},
    {"strerror", l_strerror},
    {NULL, NULL},
};

void am_lua_open_dataset(lua_State *L);
void am_lua_open_source(lua_State *L);

void am_lua_open_eval(lua_State *L); /* l_eval.c */
void am_lua_open_train(lua_State *L); /* l_train.c */
void am_lua_open_host(lua_State *L);  /* l_host.c: the raw_* interrupt primitives */
void am_lua_open_merge(lua_State *L); /* l_merge.c */

int luaopen_amalgam_core(lua_State *L) {
    luaL_checkversion(L);
    am_lua_ctx(L);
    luaL_newlib(L, core_funcs);                 /* [core] */
    lua_pushliteral(L, AM_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua_version");
    lua_createtable(L, 0, (int)(sizeof errnames / sizeof errnames[0]));
    for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++) {
        lua_pushinteger(L, errnames[i].code);
        lua_setfield(L, -2, errnames[i].name);
    }
    lua_setfield(L, -2, "errcodes");
    am_lua_open_json(L);
    am_lua_open_matrix(L);
    am_lua_open_store(L);
    am_lua_open_model(L);
    am_lua_open_eval(L);    /* l_eval.c */
    am_lua_open_dataset(L); /* l_dataset.c */
    am_lua_open_source(L);  /* l_source.c */
    am_lua_open_train(L);   /* l_train.c */
    am_lua_open_host(L);    /* l_host.c */
    am_lua_open_merge(L);   /* l_merge.c */
    return 1;
}

/* When loaded as a C module (amalgam.so), lua_close() dlcloses the library while the compute
 * thread pool's workers may still sit in its code: pin it with RTLD_NODELETE instead. */
static void pin_module(void) {
    Dl_info info;
    if (dladdr((void *)pin_module, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

int luaopen_amalgam(lua_State *L) {
    pin_module();
    luaL_requiref(L, "amalgam.core", luaopen_amalgam_core, 0); /* [core] */
    install_searcher(L);
    int st = load_bundled(L, "amalgam");                       /* [core, init, origin] */
    if (st == -1) return luaL_error(L, "amalgam: the bundled lua/amalgam/init.lua is missing");
    if (st != LUA_OK) return luaL_error(L, "amalgam: cannot load the Lua library: %s", lua_tostring(L, -1));
    lua_pop(L, 1);                                             /* [core, init] */
    lua_pushliteral(L, "amalgam");
    lua_pushvalue(L, -3);                                      /* [core, init, "amalgam", core] */
    lua_call(L, 2, 1);                                         /* [core, M] */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
    }
    return 1;
}
