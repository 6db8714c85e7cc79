/* cmd_eval.c - `amalgam eval`, `amalgam compare` and `amalgam ls results`.
 *
 * eval and compare are policy written in Lua (lua/amalgam/eval.lua: the default suite's task
 * table, task resolution, the ID/OOD table); this file parses the arguments, runs
 * require("amalgam.eval").cli_eval / cli_compare in a fresh Lua state through the host
 * (src/lua/l_host.c: SIGINT/SIGTERM interrupt it, exit 130/143) and turns `nil, message, code`
 * into "amalgam: error: message" with a non-zero exit.
 * `ls results` reads the store's `results` db directly (src/evalrun).
 */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "am_lua.h"
#include "evalrun.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* every value of a repeatable option (--task A --task B), marked used */
static int collect_opt(CliArgs *a, const char *name, const char **out, int cap) {
    int n = 0;
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt[i].name, name) == 0) {
            a->opt[i].used = 1;
            if (n < cap) out[n++] = a->opt[i].value ? a->opt[i].value : "";
        }
    return n;
}

static void set_int(lua_State *L, const char *key, int v, int present) {
    if (!present) return;
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

static void set_str(lua_State *L, const char *key, const char *v) {
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
}

static void set_bool(lua_State *L, const char *key, int v) {
    if (!v) return;
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, key);
}

/* options shared by eval and compare, checked before Lua starts */
typedef struct {
    const char *suite, *tag, *tasks[CLI_MAX_OPTS];
    int ntasks, layer, dim, has_layer, has_dim;
} Common;

static int parse_common(CliArgs *a, Common *c) {
    memset(c, 0, sizeof *c);
    int rc;
    c->suite = cli_get(a, "suite");
    c->tag = cli_get(a, "tag");
    c->has_layer = cli_get(a, "layer") != NULL;
    c->has_dim = cli_get(a, "dim") != NULL;
    if ((rc = cli_get_int(a, "layer", -1, &c->layer)) || (rc = cli_get_int(a, "dim", 0, &c->dim))) return rc;
    c->ntasks = collect_opt(a, "task", c->tasks, CLI_MAX_OPTS);
    if (c->suite && strcmp(c->suite, "default") != 0 && strcmp(c->suite, "quick") != 0)
        return am_error(AM_EINVAL, "%s: unknown suite '%s' (default, quick)", a->cmd, c->suite);
    if (c->tag && strcmp(c->tag, "id") != 0 && strcmp(c->tag, "ood") != 0)
        return am_error(AM_EINVAL, "%s: --tag must be id or ood, got '%s'", a->cmd, c->tag);
    if (c->has_layer && c->layer < 0) return am_error(AM_EINVAL, "%s: --layer must be >= 0", a->cmd);
    if (c->has_dim && c->dim < 1) return am_error(AM_EINVAL, "%s: --dim must be >= 1", a->cmd);
    for (int i = 0; i < c->ntasks; i++)
        if (!*c->tasks[i]) return am_error(AM_EINVAL, "%s: --task needs a value", a->cmd);
    return AM_OK;
}

/* [] -> [args]: the table every CLI entry of eval.lua takes */
static void push_common(lua_State *L, CliArgs *a, const Common *c, int first_model) {
    lua_createtable(L, 0, 16);
    lua_createtable(L, a->npos, 0);
    for (int i = first_model; i < a->npos; i++) {
        lua_pushstring(L, a->pos[i]);
        lua_rawseti(L, -2, i - first_model + 1);
    }
    lua_setfield(L, -2, "models");
    if (c->ntasks) {
        lua_createtable(L, c->ntasks, 0);
        for (int i = 0; i < c->ntasks; i++) {
            lua_pushstring(L, c->tasks[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "tasks");
    }
    set_str(L, "suite", c->suite);
    set_str(L, "tag", c->tag);
    set_int(L, "layer", c->layer, c->has_layer);
    set_int(L, "dim", c->dim, c->has_dim);
    /* progress on stderr: a rewritten line on a terminal, a line per task with --progress elsewhere */
    if (isatty(STDERR_FILENO)) set_str(L, "progress", "tty");
    else if (cli_flag(a, "progress")) set_str(L, "progress", "lines");
    set_bool(L, "color", isatty(STDOUT_FILENO) && !getenv("NO_COLOR"));
}

/* run require("amalgam.eval")[fn](args) where args is on top of the stack, through the host
 * (SIGINT / SIGTERM interrupt it). Returns AM_OK, a negative code with the message recorded,
 * or a positive exit code already reported (1 after a Lua error, 130 / 143 after a signal). */
static int run_lua(lua_State *L, const char *fn) {
    lua_getglobal(L, "require");                             /* [args, require] */
    lua_pushliteral(L, "amalgam.eval");
    int st = am_docall(L, 1, 1);                             /* [args, M] */
    if (st != LUA_OK) {
        am_lua_report(L, st);
        return am_error(AM_EINVAL, "cannot load amalgam.eval");
    }
    lua_getfield(L, -1, fn);                                 /* [args, M, f] */
    lua_pushvalue(L, -3);                                    /* [args, M, f, args] */
    st = am_lua_hostcall(L, 1, 3);                           /* [args, M, ok, msg, code] */
    fflush(stdout);
    if (st == LUA_OK && am_lua_interrupted(L) && !lua_toboolean(L, -3)) {
        fprintf(stderr, "amalgam: %s\n", lua_tostring(L, -2) ? lua_tostring(L, -2) : "interrupted");
        lua_pop(L, 3);
    }
    if (st != LUA_OK || am_lua_interrupted(L)) return am_lua_finish(L, st);
    if (lua_toboolean(L, -3)) return AM_OK;
    const char *msg = lua_tostring(L, -2), *code = lua_tostring(L, -1);
    int rc = code && strcmp(code, "EINVAL") == 0 ? AM_EINVAL : code && strcmp(code, "ENOTFOUND") == 0 ? AM_ENOTFOUND : AM_EIO;
    return am_error(rc, "%s", msg ? msg : "failed");
}

static int run_cmd(CliArgs *a, const char *fn, void (*extra)(lua_State *, CliArgs *), const Common *c) {
    am_log_set_echo(AM_LOG_WARN);
    /* a read-only check first, so a missing store is a clear error and is not created */
    Store *probe = NULL;
    int rc = store_open(a->store_dir, AM_STORE_RDONLY, &probe);
    store_close(probe);
    if (rc == AM_ENOTFOUND) return rc; /* store_open's "no store at 'DIR'" */
    am_clearerror();
    lua_State *L = am_lua_newstate(a->store_dir);
    if (!L) return am_error(AM_EINVAL, "%s: cannot start Lua", a->cmd);
    push_common(L, a, c, 0);
    extra(L, a);
    rc = run_lua(L, fn);
    lua_close(L);
    return rc;
}

static void eval_extra(lua_State *L, CliArgs *a) {
    set_bool(L, "force", cli_flag(a, "force"));
    set_bool(L, "json", cli_flag(a, "json"));
    set_bool(L, "no_store", cli_flag(a, "no-store"));
    set_bool(L, "no_cache", cli_flag(a, "no-cache"));
}

int cmd_eval(CliArgs *a) {
    Common c;
    int rc = parse_common(a, &c);
    if (rc) return rc;
    static const char *const flags[] = {"force", "json", "no-store", "no-cache", "progress", NULL};
    for (int i = 0; flags[i]; i++) (void)cli_flag(a, flags[i]);
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos < 1)
        return am_error(AM_EINVAL, "eval: usage: amalgam eval MODEL... [--suite default|quick] [--task NAME|beir:DIR|...]");
    return run_cmd(a, "cli_eval", eval_extra, &c);
}

static void compare_extra(lua_State *L, CliArgs *a) {
    set_bool(L, "force", cli_flag(a, "force"));
    set_bool(L, "json", cli_flag(a, "json"));
    set_bool(L, "csv", cli_flag(a, "csv"));
    set_bool(L, "no_eval", cli_flag(a, "no-eval"));
    set_bool(L, "no_cache", cli_flag(a, "no-cache"));
    set_str(L, "ref", cli_get(a, "ref"));
}

int cmd_compare(CliArgs *a) {
    Common c;
    int rc = parse_common(a, &c);
    if (rc) return rc;
    static const char *const flags[] = {"force", "json", "csv", "no-eval", "no-cache", "ref", "progress", NULL};
    for (int i = 0; flags[i]; i++) (void)cli_get(a, flags[i]);
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos < 1)
        return am_error(AM_EINVAL, "compare: usage: amalgam compare MODEL... [--ref MODEL] [--suite default|quick] "
                                   "[--json|--csv]");
    if (cli_flag(a, "json") && cli_flag(a, "csv")) return am_error(AM_EINVAL, "compare: --json or --csv, not both");
    return run_cmd(a, "cli_compare", compare_extra, &c);
}

/* `amalgam bench quick [MODEL...]` (cmd_bench.c hands it over): quick vs full ranking fidelity */
int cmd_bench_quick(CliArgs *a) {
    Common c;
    memset(&c, 0, sizeof c);
    am_log_set_echo(AM_LOG_WARN);
    Store *probe = NULL;
    int rc = store_open(a->store_dir, AM_STORE_RDONLY, &probe);
    store_close(probe);
    if (rc == AM_ENOTFOUND) return rc;
    am_clearerror();
    lua_State *L = am_lua_newstate(a->store_dir);
    if (!L) return am_error(AM_EINVAL, "bench quick: cannot start Lua");
    push_common(L, a, &c, 1);   /* pos[0] is "quick" or "quick-latency" */
    int latency = strcmp(a->pos[0], "quick-latency") == 0;
    if (latency) { /* bench_latency.lua: the Merge panel's step timed --runs times */
        int runs = 0;
        if ((rc = cli_get_int(a, "runs", 7, &runs)) || runs < 1) {
            lua_close(L);
            return rc ? rc : am_error(AM_EINVAL, "bench quick-latency: --runs must be >= 1");
        }
        set_int(L, "runs", runs, 1);
        set_str(L, "method", cli_get(a, "method"));
    }
    rc = run_lua(L, latency ? "cli_bench_latency" : "cli_bench_quick");
    lua_close(L);
    return rc;
}

/* ---------------------------------------------------------------- ls results */

typedef struct { char id[AM_ID_HEX + 1]; char name[128]; } NameRow;
typedef struct {
    NameRow *rows;
    int n, cap;
    int json, count;
    cJSON *arr;
} LsRes;

static int collect_name(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    LsRes *c = ud;
    if (vlen < AM_ID_HEX || klen >= sizeof c->rows[0].name) return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 32;
        c->rows = xrealloc(c->rows, (size_t)c->cap * sizeof *c->rows);
    }
    NameRow *r = &c->rows[c->n++];
    memcpy(r->id, val, AM_ID_HEX);
    r->id[AM_ID_HEX] = 0;
    memcpy(r->name, key, klen);
    r->name[klen] = 0;
    return 0;
}

static const char *name_of(const LsRes *c, const char *id) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->rows[i].id, id) == 0) return c->rows[i].name;
    return NULL;
}

static int ls_one(void *ud, const char *id, const char *task, const char *hash, const char *json) {
    LsRes *c = ud;
    cJSON *j = cJSON_Parse(json);
    if (!j) return 0;
    const char *name = name_of(c, id);
    c->count++;
    if (c->json) {
        cJSON_AddStringToObject(j, "model_name", name ? name : "");
        cJSON_AddItemToArray(c->arr, j);
        return 0;
    }
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    const cJSON *L = cJSON_GetObjectItemCaseSensitive(cfg, "layer"), *D = cJSON_GetObjectItemCaseSensitive(cfg, "dim");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "main_score");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(j, "main_se");
    char ld[32], score[32], sebuf[32];
    snprintf(ld, sizeof ld, "%d/%d", cJSON_IsNumber(L) ? L->valueint : -1, cJSON_IsNumber(D) ? D->valueint : -1);
    if (cJSON_IsNumber(ms)) snprintf(score, sizeof score, "%.4f", ms->valuedouble);
    else snprintf(score, sizeof score, "-");
    if (cJSON_IsNumber(se)) snprintf(sebuf, sizeof sebuf, "%.4f", se->valuedouble);
    else snprintf(sebuf, sizeof sebuf, "-");   /* stored before standard errors were kept */
    printf("%-16s %-12.12s %-20s %-5s %-4s %-7s %-16s %8s %7s %-8.8s %s\n", name ? name : "-", id, task,
           cli_jstr(j, "mode", "?"), cli_jstr(j, "tag", "-"), ld, cli_jstr(j, "main_metric", "?"), score, sebuf, hash,
           cli_jstr(j, "created", ""));
    cJSON_Delete(j);
    return 0;
}

int cmd_ls_results(CliArgs *a, int json) {
    Store *st = NULL;
    int rc = store_open(a->store_dir, AM_STORE_RDONLY, &st);
    if (rc) return rc; /* store_open's "no store at 'DIR'" */
    LsRes c = {.json = json, .arr = json ? cJSON_CreateArray() : NULL};
    if (!(rc = store_iter(st, "names", NULL, 0, collect_name, &c))) {
        if (!json)
            printf("%-16s %-12s %-20s %-5s %-4s %-7s %-16s %8s %7s %-8s %s\n", "MODEL", "ID", "TASK", "MODE", "TAG",
                   "L/DIM", "METRIC", "SCORE", "SE", "CONFIG", "CREATED");
        rc = evalrun_results_list(st, NULL, ls_one, &c);
    }
    if (!rc && json) {
        char *s = cJSON_Print(c.arr);
        puts(s);
        free(s);
    } else if (!rc && c.count == 0) {
        printf("(no results in %s; try: amalgam eval MODEL --suite quick)\n", a->store_dir);
    }
    cJSON_Delete(c.arr);
    free(c.rows);
    store_close(st);
    return rc;
}
