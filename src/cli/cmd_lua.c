/* cmd_lua.c - `amalgam run RECIPE.lua [key=value...]` and
 * `amalgam lua [-i] [FILE [ARGS...] | -e CODE [ARGS...] | -]`.
 *
 * Both create one lua_State with the amalgam module (global `am`), the default store from
 * --store / $AMALGAM_STORE, and run the script through the host (src/lua/l_host.c).
 *   run: am_lua_run_recipe: strict environment (undefined globals raise), key=value arguments
 *        become the table `args` (= `arg`, also passed as `...`), a returned table goes to
 *        amalgam.recipe.run. Errors print file:line + traceback, exit 1.
 *   lua: plain Lua semantics (like lua5.4: arg[0] = script, arg[1..n] and `...` = ARGS);
 *        with no FILE, a line REPL when stdin is a terminal, else the script is read from
 *        stdin; -i: the REPL on any stdin (a pipe too), after FILE / -e CODE if given.
 * SIGINT / SIGTERM while Lua runs interrupt it (one line "amalgam: file:line: interrupted",
 * exit 130 / 143); a second signal kills the process (lua.c laction). Nothing here exits:
 * the exit code goes back to main.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "am_lua.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lua_State *new_state(CliArgs *a) {
    am_log_set_echo(AM_LOG_INFO); /* am.log lines show on stderr in headless runs */
    lua_State *L = am_lua_newstate(a->store_dir);
    if (!L) am_error(AM_EINVAL, "%s: cannot start Lua", a->cmd);
    return L;
}

/* end a command: report, the exit code (a positive code is returned as is by main), close */
static int finish(lua_State *L, int status) {
    int code = am_lua_finish(L, status);
    lua_close(L);
    return code;
}

int cmd_run(CliArgs *a) {
    int rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos < 1) return am_error(AM_EINVAL, "run: usage: amalgam run RECIPE.lua [key=value...]");
    lua_State *L = new_state(a);
    if (!L) return AM_EINVAL;
    return finish(L, am_lua_run_recipe(L, a->pos[0], a->pos + 1, a->npos - 1));
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

/* the line REPL: one hosted call per input, errors and Ctrl-C keep it running */
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
        int base = lua_gettop(L), more;
        int st = am_lua_loadline(L, buf, blen, &more);
        if (more) continue;
        free(buf);
        buf = NULL;
        blen = 0;
        if (st == LUA_OK) st = am_lua_hostcall(L, 0, LUA_MULTRET);
        if (st == LUA_OK) print_results(L, base);
        am_lua_finish(L, st);
        lua_settop(L, base);
    }
    free(buf);
    free(line);
    printf("\n");
}

int cmd_lua(CliArgs *a) {
    int rc;
    if ((rc = cli_check_unused(a))) return rc;
    const char *const *pos = a->pos;
    int npos = a->npos, interactive = 0;
    if (npos && strcmp(pos[0], "-i") == 0) { /* lua.c -i: the REPL after the script, on any stdin */
        interactive = 1;
        pos++;
        npos--;
    }
    const char *script = npos ? pos[0] : NULL;
    if (script && strcmp(script, "-e") == 0 && npos < 2) return am_error(AM_EINVAL, "lua: -e needs a chunk of code");
    if (interactive && script && strcmp(script, "-") == 0)
        return am_error(AM_EINVAL, "lua: -i reads the REPL from stdin; the script cannot be '-' too");
    lua_State *L = new_state(a);
    if (!L) return AM_EINVAL;
    am_lua_ctx(L)->store_flags = AM_STORE_EXISTING; /* only init-model/import/prepare/run create stores */
    if (!script && (interactive || isatty(STDIN_FILENO))) {
        repl(L);
        return finish(L, LUA_OK);
    }
    int first_arg = 1, st;
    if (strcmp(script ? script : "-", "-e") == 0) {
        st = luaL_loadbuffer(L, pos[1], strlen(pos[1]), "=(command line)");
        first_arg = 2;
    } else {
        st = am_lua_loadfile(L, script, 0);                     /* NULL / "-" = stdin */
    }
    if (st != LUA_OK) return finish(L, st);
    /* arg table as lua.c: arg[0] = script, arg[1..] = ARGS; the ARGS also as `...` */
    int nargs = npos > first_arg ? npos - first_arg : 0;
    lua_createtable(L, nargs, 1);
    lua_pushstring(L, script ? script : "-");
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < nargs; i++) {
        lua_pushstring(L, pos[first_arg + i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    luaL_checkstack(L, nargs + 1, "too many arguments");
    for (int i = 0; i < nargs; i++) lua_pushstring(L, pos[first_arg + i]);
    st = am_lua_hostcall(L, nargs, 0);
    if (!interactive || st != LUA_OK || am_lua_interrupted(L)) return finish(L, st);
    repl(L);
    return finish(L, LUA_OK);
}
