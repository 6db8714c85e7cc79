/* cmd_prepare.c - `amalgam prepare [TASK...] [--offline] [--force]`,
 * `amalgam prepare --import SPEC --name N [--tag id|ood] [--force]` and `amalgam ls datasets`.
 *
 * prepare is policy written in Lua (lua/amalgam/prepare.lua: fetching, source adapters, task
 * builders, registry, README); this file only parses the arguments, runs
 * require("amalgam.prepare").main(opts) in a fresh Lua state through the host (src/lua/l_host.c:
 * SIGINT/SIGTERM interrupt it, exit 130/143) and turns its `nil, message` into
 * "amalgam: error: message" and exit code 1.
 * `ls datasets` reads the store's `datasets` db directly (one row per registered dataset).
 */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "am_lua.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_prepare(CliArgs *a) {
    int offline = cli_flag(a, "offline"), force = cli_flag(a, "force"), rc;
    const char *spec = cli_get(a, "import"), *name = cli_get(a, "name"), *tag = cli_get(a, "tag");
    if ((rc = cli_check_unused(a))) return rc;
    if (!spec && (name || tag))
        return am_error(AM_EINVAL, "prepare: --name and --tag go with --import SPEC "
                                   "(amalgam prepare --import beir:DIR --name N --tag id|ood)");
    if (spec && a->npos)
        return am_error(AM_EINVAL, "prepare: --import takes no task names (got '%s')", a->pos[0]);
    if (spec && !name) return am_error(AM_EINVAL, "prepare: --import needs --name N");
    if (tag && strcmp(tag, "id") != 0 && strcmp(tag, "ood") != 0)
        return am_error(AM_EINVAL, "prepare: --tag must be id or ood, got '%s'", tag);

    am_log_set_echo(AM_LOG_INFO);
    lua_State *L = am_lua_newstate(a->store_dir);
    if (!L) return am_error(AM_EINVAL, "prepare: cannot start Lua");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "amalgam.prepare");
    int st = am_docall(L, 1, 1);                          /* [prep] */
    if (st != LUA_OK) {
        am_lua_report(L, st);
        lua_close(L);
        return am_error(AM_EINVAL, "prepare: cannot load amalgam.prepare");
    }
    lua_getfield(L, -1, "main");                          /* [prep, main] */
    lua_createtable(L, 0, 8);                             /* [prep, main, opts] */
    lua_createtable(L, a->npos, 0);
    for (int i = 0; i < a->npos; i++) {
        lua_pushstring(L, a->pos[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "tasks");
    lua_pushboolean(L, offline);
    lua_setfield(L, -2, "offline");
    lua_pushboolean(L, force);
    lua_setfield(L, -2, "force");
    if (spec) {
        lua_pushstring(L, spec);
        lua_setfield(L, -2, "import");
        lua_pushstring(L, spec);
        lua_setfield(L, -2, "spec");
        lua_pushstring(L, name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, tag ? tag : "ood");
        lua_setfield(L, -2, "tag");
    }

    st = am_lua_hostcall(L, 1, 2);                        /* [prep, ok, msg] */
    fflush(stdout);
    if (st == LUA_OK && am_lua_interrupted(L) && !lua_toboolean(L, -2))
        fprintf(stderr, "amalgam: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "interrupted");
    if (st != LUA_OK || am_lua_interrupted(L)) {
        int code = am_lua_finish(L, st);
        lua_close(L);
        return code;
    }
    rc = AM_OK;
    if (!lua_toboolean(L, -2)) {
        const char *msg = lua_tostring(L, -1);
        rc = am_error(AM_EIO, "%s", msg ? msg : "prepare failed");
    }
    lua_close(L);
    return rc;
}

/* ---------------------------------------------------------------- ls datasets */

typedef struct {
    int json, count;
    cJSON *arr;
} LsDatasets;

static int ls_dataset_row(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    LsDatasets *c = ud;
    cJSON *j = cJSON_ParseWithLength(val, vlen);
    c->count++;
    if (c->json) {
        if (!j) {
            j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "error", "unreadable registry value");
        }
        char *name = xmalloc(klen + 1);
        memcpy(name, key, klen);
        name[klen] = 0;
        if (!cJSON_GetObjectItemCaseSensitive(j, "name")) cJSON_AddStringToObject(j, "name", name);
        free(name);
        cJSON_AddItemToArray(c->arr, j);
        return 0;
    }
    printf("%-16.*s %-4s %-26s %s\n", (int)(klen > 64 ? 64 : klen), (const char *)key, j ? cli_jstr(j, "tag", "") : "?",
           j ? cli_jstr(j, "type", cli_jstr(j, "kind", "")) : "(unreadable)", j ? cli_jstr(j, "summary", "") : "");
    cJSON_Delete(j);
    return 0;
}

int cmd_ls_datasets(CliArgs *a, int json) {
    Store *st = NULL;
    int rc = store_open(a->store_dir, AM_STORE_RDONLY, &st);
    /* a missing store: store_open's "no store at 'DIR'", as every command says it */
    if (rc) return rc;
    LsDatasets c = {.json = json, .arr = json ? cJSON_CreateArray() : NULL};
    if (!json) printf("%-16s %-4s %-26s %s\n", "NAME", "TAG", "TYPE", "COUNTS");
    rc = store_iter(st, "datasets", NULL, 0, ls_dataset_row, &c);
    if (!rc && json) {
        char *s = cJSON_Print(c.arr);
        puts(s);
        free(s);
    } else if (!rc && c.count == 0) {
        printf("(no datasets in %s; try: amalgam prepare)\n", a->store_dir);
    }
    cJSON_Delete(c.arr);
    store_close(st);
    return rc;
}
