/* l_host.c - the one Lua host: what the CLI, the REPL and (later) the TUI console need to run
 * Lua. It owns
 *   - the state (am_lua_newstate) and the one protected call with a traceback (am_docall,
 *     lua.c docall / msghandler);
 *   - signals: am_lua_hostcall turns SIGINT / SIGTERM into an interrupt of the state it runs;
 *   - interrupts: the hook that raises "interrupted" at the running line and the raw_*
 *     primitives the training loop uses to stop cleanly (core.raw_pcall_interruptible, ...);
 *   - reporting and exit codes (am_lua_finish: 0 / 1 / 2 / 130 / 143, nothing exits);
 *   - the recipe environment (am_lua_loadfile strict, am_lua_run_recipe) and REPL lines
 *     (am_lua_loadline).
 *
 * Signals. A handler cannot reach a lua_State, and the states are not tied to C globals, so
 * the handler only stores the signal number in `host_signal` (the one global, below). While a
 * hosted call runs, a count hook polls it every HOOK_POLL instructions and long C calls poll it
 * through am_lua_interrupted(): the first to see it latches it into the state's context
 * (am_lua_interrupt), after which the hook raises at every instruction, so a pcall in the
 * script cannot swallow it (redis line-hook idea).
 */
#include "am_lua.h"
#include "am_base.h"

#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* The one process-wide global: the pending signal (0 = none), written only by on_signal and
 * taken (reset to 0) by the first hosted state that polls it. */
static volatile sig_atomic_t host_signal;

/* Instructions between two looks at host_signal. While any count hook is set the VM checks it
 * at every instruction: measured 5-15 % on a pure Lua loop (independent of the count), nothing
 * visible on C-bound work (training steps, encoding). That is the price of not keeping a C
 * global that points at the running lua_State for the handler (lua.c's globalL). */
#define HOOK_POLL 1000
#define STOPMSG_KEY "amalgam.stopmsg" /* registry: the message an interrupt raises, if not the default */

/* ---------------------------------------------------------------- interrupts */

static void host_hook(lua_State *L, lua_Debug *ar);

void am_lua_interrupt(AmLuaCtx *c, int sig) {
    c->interrupted = sig ? sig : -1;
    if (c->L) lua_sethook(c->L, host_hook, LUA_MASKCOUNT, 1); /* from now on: every instruction */
}

/* a pending signal for a hosted state becomes its interrupt */
static int latch(AmLuaCtx *c) {
    if (!c->interrupted && c->hosted && host_signal) {
        int sig = host_signal;
        host_signal = 0;
        am_lua_interrupt(c, sig);
    }
    return c->interrupted;
}

int am_lua_ctx_interrupted(AmLuaCtx *c) { return latch(c) != 0; }
int am_lua_interrupted(lua_State *L) { return latch(am_lua_ctx(L)) != 0; }

/* the count hook: poll the signal; once interrupted, raise at every instruction until the host
 * clears it (a deferred interrupt waits for the deferral to end) */
static void host_hook(lua_State *L, lua_Debug *ar) {
    AmLuaCtx *c = am_lua_ctx(L);
    if (!latch(c)) return;
    if (L != c->L) lua_sethook(L, host_hook, LUA_MASKCOUNT, 1); /* a coroutine has its own hook */
    if (c->deferred) return;
    if (lua_getfield(L, LUA_REGISTRYINDEX, STOPMSG_KEY) == LUA_TSTRING) lua_error(L);
    lua_pop(L, 1);
    /* level 0 is the Lua function running when the hook fired: name its line */
    if (lua_getstack(L, 0, ar) && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        lua_pushfstring(L, "%s:%d: interrupted", ar->short_src, ar->currentline);
    else
        lua_pushliteral(L, "interrupted");
    lua_error(L);
}

/* the hook a state has when nothing is pending: polling inside a hosted call, none outside */
static void rest_hook(lua_State *L, AmLuaCtx *c) {
    if (c->hosted) lua_sethook(L, host_hook, LUA_MASKCOUNT, HOOK_POLL);
    else lua_sethook(L, NULL, 0, 0);
}

void am_lua_clear_interrupt(lua_State *L) {
    AmLuaCtx *c = am_lua_ctx(L);
    c->interrupted = 0;
    c->exit_code = 0;
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, STOPMSG_KEY);
    rest_hook(c->L, c);
    if (L != c->L) rest_hook(L, c);
}

/* ---------------------------------------------------------------- the protected call */

/* lua.c msghandler: add a traceback to string errors, use __tostring for other objects. An
 * interrupt and an error object with __tostring (a usage error, see amalgam.recipe) are
 * messages for the user, not crashes: no traceback. A table's numeric field `exit` becomes the
 * exit code (am_lua_exit_code). */
static int msghandler(lua_State *L) {
    AmLuaCtx *c = am_lua_ctx(L);
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (lua_type(L, 1) == LUA_TTABLE) {
            if (lua_getfield(L, 1, "exit") == LUA_TNUMBER) c->exit_code = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (c->interrupted) return 1;
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

static void on_signal(int sig) {
    signal(sig, SIG_DFL); /* a second signal terminates the process (lua.c laction) */
    host_signal = sig;
}

int am_lua_hostcall(lua_State *L, int narg, int nres) {
    AmLuaCtx *c = am_lua_ctx(L);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (c->hosted++ == 0) {
        host_signal = 0;
        if (!c->interrupted) rest_hook(c->L, c);
    }
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int status = am_docall(L, narg, nres);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (c->hosted == 1) latch(c); /* a signal that came after the last poll still counts */
    if (--c->hosted == 0 && !c->interrupted) rest_hook(c->L, c);
    return status;
}

/* ---------------------------------------------------------------- reports, exit codes */

int am_lua_report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        if (am_lua_ctx(L)->interrupted) fprintf(stderr, "amalgam: %s\n", msg); /* one line, no "error" */
        else fprintf(stderr, "amalgam: error: %s\n", msg);
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

int am_lua_exit_code(lua_State *L, int status) {
    AmLuaCtx *c = am_lua_ctx(L);
    if (c->interrupted == SIGINT) return 130;
    if (c->interrupted == SIGTERM) return 143;
    if (status == LUA_OK) return 0;
    if (c->exit_code > 0) return c->exit_code;
    return 1;
}

int am_lua_finish(lua_State *L, int status) {
    am_lua_report(L, status);
    int code = am_lua_exit_code(L, status);
    am_lua_clear_interrupt(L);
    fflush(stdout);
    return code;
}

/* ---------------------------------------------------------------- state, scripts */

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

/* [] -> [M] or [msg]: require(name) */
static int require_module(lua_State *L, const char *name) {
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    return am_docall(L, 1, 1);
}

int am_lua_loadfile(lua_State *L, const char *path, int strict) {
    if (path && strcmp(path, "-") == 0) path = NULL;
    int status = luaL_loadfilex(L, path, "t");           /* [chunk] */
    if (status != LUA_OK || !strict) return status;
    /* env = require("amalgam.recipe").env() ; chunk's first upvalue is _ENV */
    if ((status = require_module(L, "amalgam.recipe")) != LUA_OK) { /* [chunk, msg] */
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

/* [] -> [recipe, f] or [msg]: require("amalgam.recipe")[fn] */
static int recipe_fn(lua_State *L, const char *fn) {
    int st = require_module(L, "amalgam.recipe");
    if (st != LUA_OK) return st;
    lua_getfield(L, -1, fn);
    return LUA_OK;
}

int am_lua_run_recipe(lua_State *L, const char *path, const char *const *args, int nargs) {
    int base = lua_gettop(L);
    /* args = recipe.start({"k=v", ...}, path): the argument table, also the globals args / arg */
    int st = recipe_fn(L, "start");                                  /* [recipe, start] */
    if (st != LUA_OK) goto out;
    lua_createtable(L, nargs, 0);
    for (int i = 0; i < nargs; i++) {
        lua_pushstring(L, args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, path);
    if ((st = am_docall(L, 2, 1)) != LUA_OK) goto out;                /* [recipe, args] */
    lua_pushvalue(L, -1);
    lua_setglobal(L, "args");
    lua_pushvalue(L, -1);
    lua_setglobal(L, "arg");
    if ((st = am_lua_loadfile(L, path, 1)) != LUA_OK) goto out;       /* [recipe, args, chunk] */
    lua_pushvalue(L, -2);
    if ((st = am_lua_hostcall(L, 1, 1)) != LUA_OK) goto out;          /* [recipe, args, ret] */
    if (lua_istable(L, -1)) {                                        /* a spec: recipe.run(spec, args) */
        lua_getfield(L, -3, "run");
        lua_insert(L, -2);                                           /* [recipe, args, run, ret] */
        lua_pushvalue(L, -3);
        if ((st = am_lua_hostcall(L, 2, 1)) != LUA_OK) goto out;
    }
    lua_pop(L, 1);                                                   /* [recipe, args] */
    /* recipe.finish(args): warn about key=value arguments the recipe never read */
    lua_getfield(L, -2, "finish");
    lua_insert(L, -2);
    st = am_docall(L, 1, 0);
out:
    if (st != LUA_OK) {                                              /* keep only the message */
        if (lua_gettop(L) > base + 1) lua_replace(L, base + 1);
        lua_settop(L, base + 1);
    } else {
        lua_settop(L, base);
    }
    return st;
}

int am_lua_loadline(lua_State *L, const char *line, size_t len, int *incomplete) {
    *incomplete = 0;
    /* an expression first ("return " .. line), then a statement (lua.c addreturn / multiline) */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "return ");
    luaL_addlstring(&b, line, len);
    luaL_addchar(&b, ';');
    luaL_pushresult(&b);                                             /* [ret_src] */
    size_t rlen;
    const char *ret = lua_tolstring(L, -1, &rlen);
    int st = luaL_loadbuffer(L, ret, rlen, "=stdin");                /* [ret_src, chunk|msg] */
    lua_remove(L, -2);
    if (st == LUA_OK) return st;
    lua_pop(L, 1);
    st = luaL_loadbuffer(L, line, len, "=stdin");
    if (st == LUA_ERRSYNTAX) {
        size_t mlen;
        const char *msg = lua_tolstring(L, -1, &mlen);
        if (mlen >= 5 && strcmp(msg + mlen - 5, "<eof>") == 0) {     /* lua.c incomplete */
            lua_pop(L, 1);
            *incomplete = 1;
        }
    }
    return st;
}

/* ---------------------------------------------------------------- raw_* interrupt primitives
 *
 *   core.raw_pcall_interruptible(f, ...)   -> true, results... | false, err [, signal]
 *       a pcall that, when the error came from an interrupt (Ctrl-C / SIGTERM), clears the
 *       interrupt so the caller can save a checkpoint, and returns the signal number as 3rd value.
 *   core.raw_interrupt(sig [, msg])        -> re-raise a cleared interrupt (msg: what the
 *       interrupt raises and the host prints, instead of "file:line: interrupted").
 *   core.raw_defer_interrupts(on)          -> while on, an interrupt only sets the flag; it is
 *       raised at the first Lua instruction after it is turned off.
 *   core.raw_interrupted()                 -> signal number or false (does not clear).
 */

static int l_raw_pcall_interruptible(lua_State *L) {
    luaL_checkany(L, 1);
    int n = lua_gettop(L) - 1;
    int status = lua_pcall(L, n, LUA_MULTRET, 0);
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_insert(L, 1);
        return lua_gettop(L);
    }
    int sig = latch(am_lua_ctx(L));
    lua_pushboolean(L, 0);
    lua_insert(L, -2);                              /* [false, err] */
    if (sig) {
        am_lua_clear_interrupt(L);
        lua_pushinteger(L, sig);
        return 3;
    }
    return 2;
}

static int l_raw_interrupt(lua_State *L) {
    int sig = (int)luaL_optinteger(L, 1, -1);
    const char *msg = luaL_optstring(L, 2, NULL);
    if (msg) {
        lua_pushvalue(L, 2);
        lua_setfield(L, LUA_REGISTRYINDEX, STOPMSG_KEY);
    }
    am_lua_interrupt(am_lua_ctx(L), sig);
    return 0;
}

static int l_raw_defer_interrupts(lua_State *L) {
    am_lua_ctx(L)->deferred = lua_toboolean(L, 1);
    return 0;
}

static int l_raw_interrupted(lua_State *L) {
    int s = latch(am_lua_ctx(L));
    if (s) lua_pushinteger(L, s);
    else lua_pushboolean(L, 0);
    return 1;
}

static const luaL_Reg host_funcs[] = {
    {"raw_pcall_interruptible", l_raw_pcall_interruptible},
    {"raw_interrupt", l_raw_interrupt},
    {"raw_interrupted", l_raw_interrupted},
    {"raw_defer_interrupts", l_raw_defer_interrupts},
    {NULL, NULL},
};

void am_lua_open_host(lua_State *L);
/* [core] -> [core] */
void am_lua_open_host(lua_State *L) { luaL_setfuncs(L, host_funcs, 0); }
