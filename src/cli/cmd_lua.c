/* cmd_lua.c - `amalgam run RECIPE.lua [key=value...]` and `amalgam lua [FILE | -e CODE | -] [ARGS...]`.
 *
 * Both create one lua_State with the amalgam module (global `am`), the default store from
 * --store / $AMALGAM_STORE, and run the script through am_docall (traceback on error).
 *   run: the recipe runs in a strict environment (undefined globals raise), key=value
 *        arguments become the table `args` (= `arg`, also passed as `...`), and a returned table
 *        goes to amalgam.recipe.run. Errors print file:line + traceback, exit 1.
 *   lua: plain Lua semantics (like lua5.4: arg[0] = script, arg[1..n] and `...` = ARGS);
 *        with no FILE, a line REPL when stdin is a terminal, else the script is read from stdin.
 * SIGINT / SIGTERM while Lua runs interrupt it ("interrupted" at the current line, exit 130 /
 * 143); a second signal kills the process (lua.c laction).
 */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "am_lua.h"

#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The context a signal interrupts. A signal handler cannot look anything up in a lua_State,
 * so the CLI (which runs one state at a time) keeps this one pointer, as lua.c keeps globalL. */
static AmLuaCtx *volatile running;

static void on_signal(int sig) {
    signal(sig, SIG_DFL); /* a second signal terminates the process */
    AmLuaCtx *c = running;
    if (c) am_lua_interrupt(c, sig);
}

/* am_docall with SIGINT/SIGTERM turned into an interrupt while Lua runs */
static int host_call(lua_State *L, int narg, int nres) {
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    running = am_lua_ctx(L);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int status = am_docall(L, narg, nres);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    running = NULL;
    return status;
}

/* End a command: exit code from status, clear the interrupt hook, close the state. */
static int finish(lua_State *L, int status) {
    am_lua_report(L, status);
    int code = am_lua_exit_code(L, status);
    am_lua_clear_interrupt(L);
    lua_close(L);
    fflush(stdout);
    if (code) exit(code); /* 1, 130, 143: the CLI's cli_fail only knows 1 and 2 */
    return AM_OK;
}

/* [] -> [args]: require("amalgam.recipe").parse_args(list, script) */
static int push_run_args(lua_State *L, const char *script, const char *const *pos, int n) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "amalgam.recipe");
    int st = am_docall(L, 1, 1);
    if (st != LUA_OK) return st;
    lua_getfield(L, -1, "parse_args");
    lua_remove(L, -2);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, pos[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, script);
    return am_docall(L, 2, 1);
}

static lua_State *new_state(CliArgs *a) {
    am_log_set_echo(AM_LOG_INFO); /* am.log lines show on stderr in headless runs */
    lua_State *L = am_lua_newstate(a->store_dir);
    if (!L) {
        fprintf(stderr, "amalgam: error: cannot start Lua\n");
        exit(1);
    }
    return L;
}

int cmd_run(CliArgs *a) {
    int rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos < 1) return am_error(AM_EINVAL, "run: usage: amalgam run RECIPE.lua [key=value...]");
    const char *script = a->pos[0];
    lua_State *L = new_state(a);
    int st = push_run_args(L, script, a->pos + 1, a->npos - 1);     /* [args] */
    if (st != LUA_OK) return finish(L, st);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "args");
    lua_pushvalue(L, -1);
    lua_setglobal(L, "arg");
    if ((st = am_lua_loadfile(L, script, 1)) != LUA_OK) return finish(L, st); /* [args, chunk] */
    lua_pushvalue(L, -2);                                            /* [args, chunk, args] */
    if ((st = host_call(L, 1, 1)) != LUA_OK) return finish(L, st);   /* [args, ret] */
    if (lua_istable(L, -1)) {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "amalgam.recipe");
        if ((st = am_docall(L, 1, 1)) != LUA_OK) return finish(L, st);
        lua_getfield(L, -1, "run");                                  /* [args, ret, recipe, run] */
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -5);                                        /* [.., run, ret, args] */
        st = host_call(L, 2, 0);
    }
    return finish(L, st);
}

/* ---------------------------------------------------------------- amalgam lua */

/* print every value on the stack above base (REPL results), like lua.c l_print */
static void print_results(lua_State *L, int base) {
    int n = lua_gettop(L) - base;
    if (n <= 0) return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, base + 1);
    int st = am_docall(L, n, 0);
    if (st != LUA_OK) am_lua_report(L, st);
}

/* incomplete input? (lua.c incomplete) */
static int incomplete(lua_State *L, int status) {
    if (status == LUA_ERRSYNTAX) {
        size_t len;
        const char *msg = lua_tolstring(L, -1, &len);
        if (len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

static void repl(lua_State *L) {
    printf("amalgam %s (%s) - the module is `am`; Ctrl-D exits\n", AM_VERSION, LUA_RELEASE);
    char *line = NULL;
    size_t cap = 0;
    char *buf = NULL;
    size_t blen = 0;
    for (;;) {
        fputs(buf ? ">> " : "> ", stdout);
        fflush(stdout);
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        if (buf) {
            buf = xrealloc(buf, blen + (size_t)n + 1);
            memcpy(buf + blen, line, (size_t)n + 1);
            blen += (size_t)n;
        } else {
            buf = xstrdup(line);
            blen = (size_t)n;
        }
        int base = lua_gettop(L);
        /* an expression first ("return " .. line), then a statement */
        char *ret = xasprintf("return %s;", buf);
        int st = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
        free(ret);
        if (st != LUA_OK) {
            lua_pop(L, 1);
            st = luaL_loadbuffer(L, buf, blen, "=stdin");
            if (incomplete(L, st)) continue;
        }
        free(buf);
        buf = NULL;
        blen = 0;
        if (st == LUA_OK) st = host_call(L, 0, LUA_MULTRET);
        if (st == LUA_OK) print_results(L, base);
        else am_lua_report(L, st);
        am_lua_clear_interrupt(L);
        lua_settop(L, base);
    }
    free(buf);
    free(line);
    printf("\n");
}

int cmd_lua(CliArgs *a) {
    int rc;
    if ((rc = cli_check_unused(a))) return rc;
    lua_State *L = new_state(a);
    const char *script = a->npos ? a->pos[0] : NULL;
    int first_arg = 1, st;
    if (script && strcmp(script, "-e") == 0) {
        if (a->npos < 2) {
            lua_close(L);
            return am_error(AM_EINVAL, "lua: -e needs a chunk of code");
        }
        st = luaL_loadbuffer(L, a->pos[1], strlen(a->pos[1]), "=(command line)");
        first_arg = 2;
    } else if (!script && isatty(STDIN_FILENO)) {
        repl(L);
        return finish(L, LUA_OK);
    } else {
        st = am_lua_loadfile(L, script, 0);                     /* NULL / "-" = stdin */
    }
    if (st != LUA_OK) return finish(L, st);
    /* arg table as lua.c: arg[0] = script, arg[1..] = ARGS; the ARGS also as `...` */
    int nargs = a->npos > first_arg ? a->npos - first_arg : 0;
    lua_createtable(L, nargs, 1);
    lua_pushstring(L, script ? script : "-");
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < nargs; i++) {
        lua_pushstring(L, a->pos[first_arg + i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    luaL_checkstack(L, nargs + 1, "too many arguments");
    for (int i = 0; i < nargs; i++) lua_pushstring(L, a->pos[first_arg + i]);
    return finish(L, host_call(L, nargs, 0));
}
