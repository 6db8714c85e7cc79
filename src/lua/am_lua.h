/* am_lua.h - the Lua layer: the `amalgam` module (bindings) and the host helpers the CLI uses.
 *
 * Two audiences:
 *   1. Hosts (the CLI's src/cli/cmd_*.c, later the TUI console): l_host.c's state, calls with
 *      signals, reports and exit codes, recipes, REPL lines, interrupts.
 *   2. Binding files (src/lua/l_*.c, including the ones training/eval/merge add later): the
 *      check/push helpers and conventions below.
 *
 * Conventions:
 *   - Misuse (wrong type, closed handle, bad enum string, out-of-range index) raises with
 *     luaL_argerror / luaL_error.
 *   - An expected failure returns `nil, message, code` (am_lua_fail): code is the AM_E* name
 *     without the "AM_" prefix as a string ("ENOTFOUND", "EFORMAT", ...; am.errcodes maps
 *     them to the C numbers).
 *   - Handles are full userdata with a named metatable ("amalgam.Store", "amalgam.Model",
 *     "amalgam.Matrix") whose __index is a method table, plus __gc, __close and __tostring.
 *     A handle is created "closed" first and then filled (liolib newprefile), so __gc owns the
 *     C object from the moment it exists and an error can never leak it.
 *   - Never raise while holding malloc'd memory: allocate after the argument checks, or keep
 *     the memory in an autofree box (am_lua_newautofree) that the GC frees on any error path.
 *   - Per-state context (default store directory, interrupt flag) lives in the registry
 *     (AmLuaCtx), never in C globals, so several lua_States can coexist (the one exception is
 *     the signal flag of l_host.c: a handler cannot reach a state).
 *   - Long operations (train, eval, merge) take an option table and an optional Lua callback
 *     (on_step). Call it from the C progress callback with lua_call: it may raise, so the
 *     operation's C state must already be owned by a userdata (a handle or an autofree box).
 *     Poll am_lua_interrupted(L) there too, and raise "interrupted" (luaL_error) when it is set.
 *
 * Stack effects are written as / * [a, b] * / comments in the .c files (neovim style).
 */
#ifndef AM_LUA_H
#define AM_LUA_H

#include <signal.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

#include "embed.h"
#include "store.h"

#define AM_VERSION "0.1.0"

#define AM_STORE_MT  "amalgam.Store"
#define AM_MODEL_MT  "amalgam.Model"
#define AM_MATRIX_MT "amalgam.Matrix"

/* Entry points of the module: `require "amalgam"` gives luaopen_amalgam, which loads
 * `amalgam.core` (the C functions, luaL_newlib) and then runs the bundled lua/amalgam/init.lua
 * on it. Both are exported by the amalgam.so Lua C module and used by the binary. */
int luaopen_amalgam(lua_State *L);
int luaopen_amalgam_core(lua_State *L);

/* ---------------------------------------------------------------- per-state context */

typedef struct AmLuaCtx {
    int interrupted;                   /* 0, or the signal number (SIGINT, SIGTERM) / -1 for "stop" */
    lua_State *L;                      /* the main thread (its hook raises the interrupt) */
    char *store_dir;                   /* default store dir (malloc'd) or NULL = store_default_dir() */
    unsigned store_flags;              /* store_open flags of the default store (AM_STORE_EXISTING:
                                          `amalgam lua` must not create a store at a mistyped path) */
    int deferred;                      /* >0: the hook does not raise yet (a training step's bookkeeping) */
    int hosted;                        /* depth of am_lua_hostcall on this state: signals reach it */
    int exit_code;                     /* set by an error object's `exit` field (usage errors: 2) */
} AmLuaCtx;

/* The context of L (created on first use, kept in the registry). */
AmLuaCtx *am_lua_ctx(lua_State *L);
/* Default store directory for am.store.default() (NULL = $AMALGAM_STORE or ./store). Call before
 * the first am.store.default(); later calls only affect a store not yet opened. */
void am_lua_set_store_dir(lua_State *L, const char *dir);

/* ---------------------------------------------------------------- the host (l_host.c)
 *
 * Every host (the CLI's run / lua / eval / compare / prepare, the REPL, later the TUI console)
 * runs Lua through these; none of them exits the process: am_lua_finish gives the exit code and
 * `main` returns it. Signals: while am_lua_hostcall runs, SIGINT / SIGTERM interrupt the state
 * ("interrupted" raised at the running line, again at every instruction so a pcall cannot
 * swallow it; a second signal kills the process, lua.c laction). The signal handler only sets
 * one volatile sig_atomic_t (the one global, documented in l_host.c); the state picks it up in
 * a count hook, and long C calls (encode, evaluation) pick it up with am_lua_interrupted(). */

/* A new state with the standard libraries, `amalgam` preloadable (package.preload) and the
 * global `am` set to require("amalgam"). NULL only if Lua cannot allocate the state.
 * If loading the module fails the error is reported on stderr and NULL is returned. */
lua_State *am_lua_newstate(const char *store_dir);

/* The protected call: lua_pcall with a traceback message handler (lua.c docall). No traceback
 * for an interrupt, nor for an error object with __tostring (a usage error); a table error's
 * numeric field `exit` sets the exit code. Stack: [f, args...] -> [results...] on success,
 * [message] on error. Returns the lua_pcall status. */
int am_docall(lua_State *L, int narg, int nres);
/* am_docall with SIGINT / SIGTERM turned into an interrupt of L while it runs (handlers
 * installed for the call and restored after). Nests. */
int am_lua_hostcall(lua_State *L, int narg, int nres);

/* Print the error on top of the stack (if status != LUA_OK) to stderr and pop it: an interrupt
 * as one line "amalgam: <message>", anything else as "amalgam: error: <message + traceback>".
 * Returns status. */
int am_lua_report(lua_State *L, int status);
/* Exit code of a host call: 130 after SIGINT, 143 after SIGTERM, else 0 for LUA_OK, the error
 * object's `exit` (usage errors: 2) or 1. */
int am_lua_exit_code(lua_State *L, int status);
/* End a host call: report, exit code, clear the interrupt (the state stays usable). */
int am_lua_finish(lua_State *L, int status);

/* Load a Lua file (path NULL or "-" = stdin) as a function on the stack. strict: run it in a
 * fresh environment where reading an undefined global raises "undefined global 'x'" (with
 * file:line); assigning globals is allowed (amalgam.recipe.env). Syntax errors give
 * "file:line: message". Returns a lua_load status (the message is on the stack on error). */
int am_lua_loadfile(lua_State *L, const char *path, int strict);
/* Run a recipe the way `amalgam run` does (amalgam.recipe: start / env / run / finish): the
 * key=value strings become the table `args` (also the globals args / arg and `...`), the file
 * runs strict through am_lua_hostcall, a returned table goes to recipe.run, then arguments the
 * recipe never read are warned about. Stack: [] -> [] or [message]; returns the status. */
int am_lua_run_recipe(lua_State *L, const char *path, const char *const *args, int nargs);
/* Compile one REPL input: "return <line>" first (an expression), else the line as a statement.
 * [] -> [chunk] (LUA_OK) or [message]; *incomplete = 1 (nothing pushed, LUA_ERRSYNTAX) when the
 * input ends inside a statement and needs another line. */
int am_lua_loadline(lua_State *L, const char *line, size_t len, int *incomplete);

/* Ask the running Lua code to stop: sets ctx->interrupted = sig (0 = -1, "stop") and a hook
 * that raises "interrupted" at the next Lua instruction and every following one (while
 * ctx->deferred is set, core.raw_defer_interrupts, the hook waits for it to be cleared).
 * Not for signal handlers (am_lua_hostcall installs those). */
void am_lua_interrupt(AmLuaCtx *ctx, int sig);
/* Is L (or ctx) interrupted? Polled by long C calls (encode, evaluation, training callbacks);
 * a pending signal for a hosted state becomes its interrupt here. */
int am_lua_interrupted(lua_State *L);
int am_lua_ctx_interrupted(AmLuaCtx *ctx);
/* Clear the interrupt and its hook (am_lua_finish does it; the REPL after every line). */
void am_lua_clear_interrupt(lua_State *L);

/* ---------------------------------------------------------------- binding helpers */

/* Push `nil, am_errmsg(rc), code-name` and return 3 (Lua's luaL_fileresult shape). */
int am_lua_fail(lua_State *L, int rc);
/* Same with a literal message. */
int am_lua_failmsg(lua_State *L, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* t[k] = v for the table on top of the stack (the result tables of the raw_* functions) */
void am_lua_setnum(lua_State *L, const char *k, lua_Number v);
void am_lua_setint(lua_State *L, const char *k, lua_Integer v);
void am_lua_setbool(lua_State *L, const char *k, int v);
void am_lua_setstr(lua_State *L, const char *k, const char *v);
/* "ENOTFOUND" for AM_ENOTFOUND, ... ("EUNKNOWN" for anything else). */
const char *am_lua_errname(int rc);

/* Register a metatable `tname` with __index = a table of `methods` plus the `metamethods`
 * (a {"__index", NULL} entry is filled in). Leaves nothing on the stack. */
void am_lua_newclass(lua_State *L, const char *tname, const luaL_Reg *methods, const luaL_Reg *metamethods);
/* Push the method table of class tname (so Lua code can add methods). */
void am_lua_getmethods(lua_State *L, const char *tname);

/* Autofree box: a userdata whose __gc (and am_lua_autofree_now) calls fn(p). Push it, then
 * store the malloc'd pointer in ->p, so an error raised afterwards cannot leak it. */
typedef struct {
    void *p;
    void (*fn)(void *);
} AmAutoFree;
AmAutoFree *am_lua_newautofree(lua_State *L, void (*fn)(void *));
void am_lua_autofree_now(lua_State *L, int idx);

/* Option tables: read field `key` of the table at index t (t may hold nil = no options).
 * Wrong types raise "bad argument #arg to 'fn' (option 'key': number expected, got string)".
 * am_lua_opt_check raises on a key not in the NULL-terminated list `known`. */
void am_lua_opt_check(lua_State *L, int t, int arg, const char *const *known);
lua_Integer am_lua_opt_int(lua_State *L, int t, int arg, const char *key, lua_Integer def);
lua_Number am_lua_opt_num(lua_State *L, int t, int arg, const char *key, lua_Number def);
int am_lua_opt_bool(lua_State *L, int t, int arg, const char *key, int def);          /* def -1 = unset */
const char *am_lua_opt_str(lua_State *L, int t, int arg, const char *key, const char *def);
/* An enum option: returns the index into `names` (NULL-terminated) or def if absent; an
 * unknown string raises "option 'key': expected one of a|b|c, got 'x'". */
int am_lua_opt_enum(lua_State *L, int t, int arg, const char *key, const char *const *names, int def);

/* Store handles. checkstore raises on a closed store. */
Store *am_lua_checkstore(lua_State *L, int idx);
unsigned am_lua_store_flags(lua_State *L, int idx); /* AM_STORE_* the handle was opened with */
Store *am_lua_default_store(lua_State *L); /* opens lazily; on failure pushes nothing and returns NULL
                                              (am_lasterror() says why) */

/* Model handles: the model is loaded lazily from its store. */
typedef struct AmModelBox AmModelBox;
AmModelBox *am_lua_checkmodelbox(lua_State *L, int idx);
/* Load the weights, vocab and tokenizer (once; later calls return the same object).
 * OUT: *em borrowed, valid while the handle is open. AM_OK or a code with am_lasterror(). */
int am_lua_model_load(AmModelBox *b, EmbedModel **em);
const char *am_lua_model_id(const AmModelBox *b);
/* Push a new Model handle for stored model `id` (a full id) of the Store handle at store_idx;
 * label = the name it was asked for (NULL: the meta's name). On failure pushes nothing and
 * returns the code (message in am_lasterror()). */
int am_lua_pushmodel(lua_State *L, int store_idx, const char *id, const char *label);

/* Matrix handles: rows x cols float32, row-major, owned. */
typedef struct {
    int64_t rows, cols;
    float *data; /* NULL = closed */
} AmMatrix;
/* Push a new rows x cols matrix (zeroed). Returns it; ->data NULL if the allocation failed
 * (the closed handle is still pushed; return am_lua_fail(L, AM_ENOMEM) after popping it). */
AmMatrix *am_lua_newmatrix(lua_State *L, int64_t rows, int64_t cols);
AmMatrix *am_lua_checkmatrix(lua_State *L, int idx);

/* JSON <-> Lua (l_json.c). push: decode a JSON text onto the stack, returns AM_OK or
 * AM_EFORMAT (nothing pushed, message set). tojson: encode the value at idx; raises on values
 * JSON cannot hold (functions, cycles, non-string keys in objects, NaN). Result malloc'd. */
int am_lua_pushjson(lua_State *L, const char *text, size_t len);
char *am_lua_tojson(lua_State *L, int idx, int pretty);

/* Submodule registration, called by luaopen_amalgam_core with the module table on top. */
void am_lua_open_store(lua_State *L);
void am_lua_open_model(lua_State *L);
void am_lua_open_matrix(lua_State *L);
void am_lua_open_json(lua_State *L);

#endif
