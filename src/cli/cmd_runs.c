/* cmd_runs.c - training runs on the command line, all through the run API (store_runs.h):
 * `amalgam ls runs`, `amalgam info RUN` (a summary; --json for the record), the run that
 * made a model for `amalgam info MODEL`, and `amalgam resume RUN` (am.resume in a Lua host). */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "store_runs.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the record as `ls runs --json` and `info RUN --json` show it: without the recipe source */
static void drop_source(cJSON *rec) {
    cJSON *r = cJSON_GetObjectItemCaseSensitive(rec, "recipe");
    if (r) cJSON_DeleteItemFromObjectCaseSensitive(r, "source");
}

/* ---------------------------------------------------------------- ls runs */

typedef struct { int json; cJSON *arr; int count; } LsRuns;

static int ls_run_one(void *ud, const char *id, const char *json) {
    LsRuns *c = ud;
    cJSON *j = cJSON_Parse(json);
    if (!j) return 0;
    c->count++;
    if (c->json) {
        drop_source(j);
        cJSON_AddItemToArray(c->arr, j);
        return 0;
    }
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(j, "models");
    printf("%-44s %-8s %5d/%-5d %-20s %.12s\n", id, cli_jstr(j, "status", "?"), (int)cli_jnum(j, "step"),
           (int)cli_jnum(j, "steps"), cli_jstr(j, "start", ""), cli_jstr(mod, "final", "-"));
    cJSON_Delete(j);
    return 0;
}

int cmd_ls_runs(CliArgs *a, Store *st, int json) {
    LsRuns c = {.json = json, .arr = json ? cJSON_CreateArray() : NULL};
    if (!json) printf("%-44s %-8s %11s %-20s %s\n", "RUN", "STATUS", "STEP", "START", "FINAL");
    int rc = store_run_list(st, ls_run_one, &c);
    if (!rc && json) {
        char *s = cJSON_Print(c.arr);
        puts(s);
        free(s);
    } else if (!rc && c.count == 0) {
        printf("(no runs in %s; try: amalgam run recipes/train_tasks.lua)\n", a->store_dir);
    }
    cJSON_Delete(c.arr);
    return rc;
}

/* ---------------------------------------------------------------- info RUN */

/* "2026-12-07T00:03:00Z" -> seconds since the epoch, -1 if not that form */
static double iso_time(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                     &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm);
}

static void fmt_duration(double s, char *buf, size_t cap) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

#define MAX_TASKS 64
typedef struct { double loss[MAX_TASKS]; uint32_t step[MAX_TASKS]; int rows, n; const char *name[MAX_TASKS]; } LastLoss;

static int last_loss(void *ud, uint32_t step, const char *json, size_t len) {
    LastLoss *l = ud;
    cJSON *j = cJSON_ParseWithLength(json, len);
    /* "task": the task's name (its index, 1-based, in runs of older builds) */
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(j, "task");
    int t = cJSON_IsNumber(task) ? (int)task->valuedouble : 0;
    for (int i = 0; cJSON_IsString(task) && i < l->n; i++)
        if (l->name[i] && strcmp(l->name[i], task->valuestring) == 0) t = i + 1;
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(j, "loss");
    if (t >= 1 && t <= MAX_TASKS && cJSON_IsNumber(loss)) {
        l->loss[t - 1] = loss->valuedouble;
        l->step[t - 1] = step;
    }
    l->rows++;
    cJSON_Delete(j);
    return 0;
}

static void print_summary(Store *st, const char *id, cJSON *r) {
    const char *status = cli_jstr(r, "status", "?");
    printf("run       %s\n", id);
    printf("name      %s\n", cli_jstr(r, "name", "-"));
    printf("status    %s, step %d of %d", status, (int)cli_jnum(r, "step"), (int)cli_jnum(r, "steps"));
    if (cli_jnum(r, "resumed") > 0) printf(", resumed %d time%s", (int)cli_jnum(r, "resumed"), cli_jnum(r, "resumed") > 1 ? "s" : "");
    printf("\n");
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(r, "recipe");
    printf("recipe    %s\n", rec ? cli_jstr(rec, "path", "?") : "- (not from a recipe file)");
    double t0 = iso_time(cli_jstr(r, "start", NULL)), t1 = iso_time(cli_jstr(r, "end", NULL));
    char dur[32] = "";
    if (t0 >= 0 && t1 >= t0) fmt_duration(t1 - t0, dur, sizeof dur);
    printf("time      %s", cli_jstr(r, "start", "?"));
    if (t1 >= 0) printf(" .. %s (%s)", cli_jstr(r, "end", "?"), dur);
    else if (strcmp(status, "running") == 0) printf(" .. (running, pid %d)", (int)cli_jnum(r, "pid"));
    printf("\n");
    printf("init      %.12s\n", cli_jstr(r, "init", "?"));

    LastLoss ll;
    memset(&ll, 0, sizeof ll);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "data"), "tasks");
    const cJSON *specs = cJSON_GetObjectItemCaseSensitive(r, "task_specs");
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks) if (ll.n < MAX_TASKS) ll.name[ll.n++] = cli_jstr(t, "name", NULL);
    if (store_run_metrics(st, id, 0, UINT32_MAX, last_loss, &ll)) am_clearerror();
    int i = 0;
    cJSON_ArrayForEach(t, tasks) {
        const cJSON *spec = cJSON_GetArrayItem(specs, i);
        const char *src = cli_jstr(t, "source", "?");
        const char *label = cli_jstr(t, "name", NULL);
        if (!label) label = cli_jstr(spec, "name", NULL);
        if (!label) label = cli_jstr(spec, "data", NULL);
        if (!label) label = strcmp(src, "file") == 0 ? cli_jstr(t, "path", "?") : src;
        const char *slash = strrchr(label, '/');
        if (slash && slash[1]) label = slash + 1;
        const cJSON *loss = cJSON_GetObjectItemCaseSensitive(t, "loss");
        printf("%-9s %d %-16s %-7s %6d rows, batch %-4d %-12s", i ? "" : "tasks", i + 1, label, cli_jstr(t, "kind", "?"),
               (int)cli_jnum(t, "rows"), (int)cli_jnum(t, "batch"), cli_jstr(loss, "kind", "?"));
        if (i < MAX_TASKS && ll.step[i]) printf(" final loss %.4f (step %u)", ll.loss[i], ll.step[i]);
        printf("\n");
        i++;
    }
    printf("metrics   %d step%s stored\n", ll.rows, ll.rows == 1 ? "" : "s");
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(r, "models"), *c;
    const cJSON *cks = cJSON_GetObjectItemCaseSensitive(mod, "checkpoints");
    const char *final = cli_jstr(mod, "final", NULL), *tv = cli_jstr(mod, "task_vector", NULL), *good = cli_jstr(mod, "good", NULL);
    int n = 0;
    cJSON_ArrayForEach(c, cks) {
        const char *cid = cli_jstr(c, "id", "?");
        printf("%-9s %.12s  step %-6d %s%s\n", n++ ? "" : "models", cid, (int)cli_jnum(c, "step"), cli_jstr(c, "label", ""),
               final && strcmp(cid, final) == 0 ? "  (final)" : good && strcmp(cid, good) == 0 ? "  (last good)" : "");
    }
    if (tv) printf("%-9s %.12s  task vector (final - init)\n", n++ ? "" : "models", tv);
    if (!n) printf("models    (none yet)\n");
    const char *err = cli_jstr(r, "error", NULL);
    if (err) printf("error     %s\n", err);
    if (strcmp(status, "stopped") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "running") == 0)
        printf("resume    amalgam resume %s\n", id);
}

int cli_info_run(Store *st, const char *q, int json, int prefix) {
    char *id = NULL;
    int rc;
    if (prefix) rc = store_run_resolve(st, q, &id);
    else if (store_run_id_check(q) == AM_OK && store_run_get(st, q, &id) == AM_OK) {
        free(id);
        id = xstrdup(q);
        rc = AM_OK;
    } else rc = AM_ENOTFOUND;
    if (rc) {
        if (rc == AM_EINVAL && prefix) return rc;   /* ambiguous: the message lists them */
        am_clearerror();
        return 1;
    }
    char *text = NULL;
    if ((rc = store_run_get(st, id, &text))) {
        free(id);
        return rc;
    }
    cJSON *r = cJSON_Parse(text);
    free(text);
    if (!r) {
        rc = am_error(AM_EFORMAT, "run %s: the record is not JSON", id);
    } else if (json) {
        drop_source(r);
        char *s = cJSON_Print(r);
        puts(s);
        free(s);
    } else {
        print_summary(st, id, r);
    }
    cJSON_Delete(r);
    free(id);
    return rc;
}

/* info MODEL: the run that made a checkpoint (its meta carries {"run": id, "step": n}) */
void cli_print_model_run(Store *st, const char *meta_json) {
    cJSON *m = cJSON_Parse(meta_json);
    const char *rid = cli_jstr(m, "run", NULL), *ck = cli_jstr(m, "checkpoint", NULL);
    char *ck_meta = NULL;
    if (!rid && ck && store_model_meta(st, ck, &ck_meta) == AM_OK) { /* a task vector: its checkpoint's run */
        cJSON_Delete(m);
        m = cJSON_Parse(ck_meta);
        free(ck_meta);
        rid = cli_jstr(m, "run", NULL);
    }
    am_clearerror();
    if (rid) {
        char *text = NULL;
        printf("run      %s", rid);
        if (store_run_id_check(rid) == AM_OK && store_run_get(st, rid, &text) == AM_OK) {
            cJSON *r = cJSON_Parse(text);
            printf("  (step %d of its %d; run %s; amalgam info %s)", (int)cli_jnum(m, "step"), (int)cli_jnum(r, "steps"),
                   cli_jstr(r, "status", "?"), rid);
            cJSON_Delete(r);
            free(text);
        } else {
            am_clearerror();
            printf("  (step %d; the run record is gone)", (int)cli_jnum(m, "step"));
        }
        printf("\n");
    }
    cJSON_Delete(m);
}

/* ---------------------------------------------------------------- resume */

/* am.resume in a Lua host (`amalgam lua -e`), so Ctrl-C stops it as it stops `amalgam run` */
static const char resume_lua[] =
    "local am = require 'amalgam'\n"
    "local id, steps = ...\n"
    "local r, msg = am.resume(id, { steps = steps and math.tointeger(tonumber(steps)) or nil })\n"
    "if not r then error(msg, 0) end\n"
    "local m = r.rec.models\n"
    "print(('run %s %s at step %d of %d; model %s'):format(r.rec.id, r.rec.status, r.rec.step, r.rec.steps,\n"
    "  (m.final or m.last or '-'):sub(1, 12)))\n";

int cmd_resume(CliArgs *a) {
    const char *steps = cli_get(a, "steps");
    int rc, n = 0;
    if ((rc = cli_get_int(a, "steps", 0, &n))) return rc;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos != 1) return am_error(AM_EINVAL, "resume: usage: amalgam resume RUN [--steps N]");
    if (steps && n < 1) return am_error(AM_EINVAL, "resume: --steps must be a positive integer");
    Store *st = NULL;
    char *id = NULL;
    if ((rc = store_open(a->store_dir, AM_STORE_RDONLY, &st))) return rc;
    rc = store_run_resolve(st, a->pos[0], &id);
    store_close(st);
    if (rc) return am_error_wrap(rc, "resume");
    char *argv[] = {(char *)"-e", (char *)resume_lua, id, (char *)steps, NULL};
    rc = cli_command(a->store_dir, "lua", steps ? 4 : 3, argv);
    free(id);
    return rc;
}
