/* l_host.c - what a host (the CLI, later the TUI console) needs to run Lua: a state with the
 * module, the one protected call with a traceback (lua.c docall / msghandler), error reports,
 * loading scripts in a strict environment, exit codes.
 */
#include "am_lua.h"
#include "am_base.h"

#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* lua.c msghandler: add a traceback to string errors, use __tostring for other objects */
static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int am_docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;       /* function index */
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);                   /* [msgh, f, args...] */
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

int am_lua_report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        fprintf(stderr, "amalgam: error: %s\n", msg);
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

int am_lua_exit_code(lua_State *L, int status) {
    if (status == LUA_OK) return 0;
    int sig = am_lua_ctx(L)->interrupted;
    if (sig == SIGINT) return 130;
    if (sig == SIGTERM) return 143;
    return 1;
}

/* require "amalgam" as the global `am` */
static int open_module(lua_State *L) {
    luaL_requiref(L, "amalgam", luaopen_amalgam, 0);
    lua_setglobal(L, "am");
    return 0;
}

lua_State *am_lua_newstate(const char *store_dir) {
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    luaL_openlibs(L);
    am_lua_ctx(L);
    if (store_dir) am_lua_set_store_dir(L, store_dir);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_amalgam);
    lua_setfield(L, -2, "amalgam");
    lua_pop(L, 2);
    lua_pushcfunction(L, open_module);
    if (am_lua_report(L, am_docall(L, 0, 0)) != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    return L;
}

int am_lua_loadfile(lua_State *L, const char *path, int strict) {
    if (path && strcmp(path, "-") == 0) path = NULL;
    int status = luaL_loadfilex(L, path, "t");           /* [chunk] */
    if (status != LUA_OK || !strict) return status;
    /* env = require("amalgam.recipe").env() ; chunk's first upvalue is _ENV */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "amalgam.recipe");
    if ((status = am_docall(L, 1, 1)) != LUA_OK) {     /* [chunk, msg] */
        lua_remove(L, -2);
        return status;
    }
    lua_getfield(L, -1, "env");                          /* [chunk, recipe, env_fn] */
    lua_remove(L, -2);
    if ((status = am_docall(L, 0, 1)) != LUA_OK) {     /* [chunk, msg] */
        lua_remove(L, -2);
        return status;
    }
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);        /* [chunk] */
    return LUA_OK;
}
