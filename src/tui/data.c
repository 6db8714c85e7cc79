/* data.c - what the panels show, read from the store: models and results through the Lua API
 * (lua/amalgam/tui.lua, in the TUI's own state), runs and their metrics through the C run API
 * (store_runs.h), polled: a live run is followed by asking for the metrics after the last step
 * seen. */
#define _GNU_SOURCE
#include "tui_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "am_base.h"
#include "am_lua.h"
#include "store_runs.h"

/* ---------------------------------------------------------------- Lua glue */

int tui_lua_call(Tui *t, const char *fn, int nargs, const char *const *args) {
    lua_State *L = t->L;
    int top = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "amalgam.tui");
    if (am_docall(L, 1, 1) != LUA_OK) goto fail;
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    for (int i = 0; i < nargs; i++) lua_pushstring(L, args[i]);
    if (am_docall(L, nargs, 2) != LUA_OK) goto fail;
    if (lua_isnil(L, -2)) {
        lua_remove(L, -2);   /* nil, msg -> msg */
        goto fail;
    }
    lua_pop(L, 1);
    return 0;
fail:
    crt_logf("tui: %s: %s", fn, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    tui_flash(t, "%s: %s", fn, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    lua_settop(L, top);
    return -1;
}

char *tui_field_str(lua_State *L, int idx, const char *k) {
    lua_getfield(L, idx, k);
    const char *s = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : "";
    char *r = xstrdup(s);
    lua_pop(L, 1);
    return r;
}

double tui_field_num(lua_State *L, int idx, const char *k, double def) {
    lua_getfield(L, idx, k);
    double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

static void copy_id(char dst[33], const char *s) {
    snprintf(dst, 33, "%s", s ? s : "");
}

/* ---------------------------------------------------------------- models */

static void models_free(Tui *t) {
    for (int i = 0; i < t->nmodels; i++) {
        TuiModel *m = &t->models[i];
        free(m->label), free(m->kind), free(m->recipe), free(m->parent_label), free(m->names), free(m->created);
    }
    free(t->models);
    t->models = NULL;
    t->nmodels = 0;
}

int tui_load_models(Tui *t) {
    double t0 = tui_now();
    if (tui_lua_call(t, "models", 0, NULL)) return -1;
    lua_State *L = t->L;
    models_free(t);
    int n = (int)lua_rawlen(L, -1);
    t->models = xcalloc((size_t)(n ? n : 1), sizeof *t->models);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        int r = lua_gettop(L);
        TuiModel *m = &t->models[t->nmodels++];
        char *id = tui_field_str(L, r, "id");
        copy_id(m->id, id);
        free(id);
        m->label = tui_field_str(L, r, "label");
        m->kind = tui_field_str(L, r, "kind");
        m->recipe = tui_field_str(L, r, "recipe");
        m->parent_label = tui_field_str(L, r, "parent_label");
        m->names = tui_field_str(L, r, "names");
        m->created = tui_field_str(L, r, "created");
        m->depth = (int)tui_field_num(L, r, "depth", 0);
        m->layers = (int)tui_field_num(L, r, "layers", 0);
        m->hidden = (int)tui_field_num(L, r, "hidden", 0);
        m->n_params = tui_field_num(L, r, "n_params", 0);
        lua_getfield(L, r, "recipe_only");
        m->recipe_only = lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    t->models_gen++;
    crt_logf("tui: %d models read in %.0f ms", t->nmodels, (tui_now() - t0) * 1e3);
    return 0;
}

const char *tui_model_label(Tui *t, const char *id) {
    for (int i = 0; i < t->nmodels; i++)
        if (strcmp(t->models[i].id, id) == 0) return t->models[i].label;
    return id;
}

/* ---------------------------------------------------------------- results */

static void results_free(TuiResults *r) {
    for (int i = 0; i < r->ntasks; i++) free(r->tasks[i].name), free(r->tasks[i].tag), free(r->tasks[i].metric);
    for (int i = 0; i < r->nrows; i++) free(r->rows[i].name), free(r->rows[i].scores);
    free(r->tasks);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

static void row_averages(TuiResults *r, TuiRow *row) {
    double s_id = 0, s_ood = 0;
    row->id_n = row->ood_n = 0;
    for (int k = 0; k < r->ntasks; k++) {
        double v = row->scores[k];
        if (isnan(v)) continue;
        if (strcmp(r->tasks[k].tag, "id") == 0) s_id += v, row->id_n++;
        else if (strcmp(r->tasks[k].tag, "ood") == 0) s_ood += v, row->ood_n++;
    }
    row->id_avg = row->id_n ? s_id / row->id_n : (double)NAN;
    row->ood_avg = row->ood_n ? s_ood / row->ood_n : (double)NAN;
}

/* [] -> []: require("amalgam.tui").results() of L's store parsed into out; no Tui, no log,
 * so a worker thread may call it with a Lua state of its own. 0, or -1 with the message in err. */
int tui_results_read(lua_State *L, TuiResults out[2], int *nout, char *err, size_t cap) {
    int top = lua_gettop(L);
    *nout = 0;
    lua_getglobal(L, "require");
    lua_pushstring(L, "amalgam.tui");
    if (am_docall(L, 1, 1) != LUA_OK) goto fail;
    lua_getfield(L, -1, "results");
    lua_remove(L, -2);
    if (am_docall(L, 0, 2) != LUA_OK) goto fail;
    if (lua_isnil(L, -2)) goto fail;
    lua_pop(L, 1);
    int nm = (int)lua_rawlen(L, -1);
    for (int i = 1; i <= nm && *nout < 2; i++) {
        lua_rawgeti(L, -1, i);
        int md = lua_gettop(L);
        TuiResults *r = &out[(*nout)++];
        memset(r, 0, sizeof *r);
        char *mode = tui_field_str(L, md, "mode");
        snprintf(r->mode, sizeof r->mode, "%s", mode);
        free(mode);
        lua_getfield(L, md, "tasks");
        r->ntasks = (int)lua_rawlen(L, -1);
        r->tasks = xcalloc((size_t)r->ntasks + 1, sizeof *r->tasks);
        for (int k = 0; k < r->ntasks; k++) {
            lua_rawgeti(L, -1, k + 1);
            r->tasks[k].name = tui_field_str(L, -1, "name");
            r->tasks[k].tag = tui_field_str(L, -1, "tag");
            r->tasks[k].metric = tui_field_str(L, -1, "metric");
            if (strcmp(r->tasks[k].tag, "id") == 0) r->n_id++;
            else if (strcmp(r->tasks[k].tag, "ood") == 0) r->n_ood++;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_getfield(L, md, "models");
        r->nrows = (int)lua_rawlen(L, -1);
        r->rows = xcalloc((size_t)r->nrows + 1, sizeof *r->rows);
        for (int j = 0; j < r->nrows; j++) {
            lua_rawgeti(L, -1, j + 1);
            int ri = lua_gettop(L);
            TuiRow *row = &r->rows[j];
            char *id = tui_field_str(L, ri, "id");
            copy_id(row->id, id);
            free(id);
            row->name = tui_field_str(L, ri, "name");
            row->scores = xcalloc((size_t)r->ntasks + 1, sizeof *row->scores);
            lua_getfield(L, ri, "scores");
            for (int k = 0; k < r->ntasks; k++) row->scores[k] = tui_field_num(L, -1, r->tasks[k].name, NAN);
            lua_pop(L, 2);
            row_averages(r, row);
        }
        lua_pop(L, 2);
    }
    lua_settop(L, top);
    return 0;
fail:
    snprintf(err, cap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    lua_settop(L, top);
    return -1;
}

void tui_results_free(TuiResults *r) { results_free(r); }

/* The results become the Tui's (in is emptied), keeping the shown mode and the reference. */
void tui_results_install(Tui *t, TuiResults in[2], int n) {
    char keep_ref[33] = "";
    TuiResults *cur = tui_results(t);
    if (t->ref >= 0 && t->ref < cur->nrows) copy_id(keep_ref, cur->rows[t->ref].id);
    char keep_mode[8];
    snprintf(keep_mode, sizeof keep_mode, "%s", cur->mode);
    for (int i = 0; i < 2; i++) results_free(&t->results[i]);
    t->nresults = n;
    for (int i = 0; i < n; i++) t->results[i] = in[i], memset(&in[i], 0, sizeof in[i]);
    /* keep the mode and the reference across reloads; the first time, prefer full results */
    t->mode = 0;
    for (int i = 0; i < t->nresults; i++)
        if (strcmp(t->results[i].mode, keep_mode) == 0) t->mode = i;
    cur = tui_results(t);
    t->ref = -1;
    for (int j = 0; j < cur->nrows; j++)
        if (keep_ref[0] && strcmp(cur->rows[j].id, keep_ref) == 0) t->ref = j;
    if (t->ref < 0 && cur->nrows > 0) {
        /* default reference: the first model whose name has no '+' (a base), else row 0 */
        t->ref = 0;
        for (int j = 0; j < cur->nrows; j++)
            if (strstr(cur->rows[j].name, "base") && !strchr(cur->rows[j].name, '+')) { t->ref = j; break; }
    }
}

int tui_load_results(Tui *t) {
    double t0 = tui_now();
    TuiResults in[2];
    int n;
    char err[512];
    if (tui_results_read(t->L, in, &n, err, sizeof err)) {
        crt_logf("tui: results: %s", err);
        tui_flash(t, "results: %s", err);
        return -1;
    }
    tui_results_install(t, in, n);
    crt_logf("tui: results read in %.0f ms (%d modes)", (tui_now() - t0) * 1e3, t->nresults);
    return 0;
}

TuiResults *tui_results(Tui *t) {
    static TuiResults empty = {.mode = "full"};
    if (t->mode < 0 || t->mode >= t->nresults) return &empty;
    return &t->results[t->mode];
}

/* ---------------------------------------------------------------- runs */

static void run_free(TuiRun *r) {
    free(r->id), free(r->status), free(r->start), free(r->end), free(r->final_model), free(r->name), free(r->args);
    for (int i = 0; i < r->ntasks; i++) free(r->tasks[i].name), free(r->tasks[i].loss);
    free(r->tasks);
}

static char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return xstrdup(cJSON_IsString(v) ? v->valuestring : "");
}
static double jnum(const cJSON *o, const char *k, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

typedef struct {
    TuiRun *runs;
    int n, cap;
} RunList;

static int on_run(void *ud, const char *id, const char *json) {
    RunList *rl = ud;
    cJSON *o = cJSON_Parse(json);
    if (!o) return 0;
    if (rl->n == rl->cap) {
        rl->cap = rl->cap ? 2 * rl->cap : 16;
        rl->runs = xrealloc(rl->runs, (size_t)rl->cap * sizeof *rl->runs);
    }
    TuiRun *r = &rl->runs[rl->n++];
    memset(r, 0, sizeof *r);
    r->id = xstrdup(id);
    r->status = jstr(o, "status");
    r->start = jstr(o, "start");
    r->end = jstr(o, "end");
    r->name = jstr(o, "name");
    r->step = (int)jnum(o, "step", 0);
    r->steps = (int)jnum(o, "steps", 0);
    r->pid = (int)jnum(o, "pid", 0);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(o, "models");
    r->final_model = jstr(models, "final");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, "args");
    r->args = args ? cJSON_PrintUnformatted(args) : xstrdup("");
    if (!r->args) r->args = xstrdup("");
    r->live = strcmp(r->status, "running") == 0 && r->pid > 0 && (kill(r->pid, 0) == 0 || errno == EPERM);
    cJSON_Delete(o);
    return 0;
}

static TuiRunTask *run_task(TuiRun *r, const char *name) {
    for (int i = 0; i < r->ntasks; i++)
        if (strcmp(r->tasks[i].name, name) == 0) return &r->tasks[i];
    r->tasks = xrealloc(r->tasks, (size_t)(r->ntasks + 1) * sizeof *r->tasks);
    TuiRunTask *k = &r->tasks[r->ntasks++];
    memset(k, 0, sizeof *k);
    k->name = xstrdup(name);
    return k;
}

static int on_metric(void *ud, uint32_t step, const char *json, size_t len) {
    TuiRun *r = ud;
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o) return 0;
    char *task = jstr(o, "task");
    double loss = jnum(o, "loss", NAN);
    if (!isnan(loss)) {
        TuiRunTask *k = run_task(r, task[0] ? task : "loss");
        if (k->n == k->cap) {
            k->cap = k->cap ? 2 * k->cap : 256;
            k->loss = xrealloc(k->loss, (size_t)k->cap * sizeof *k->loss);
        }
        k->loss[k->n++] = (float)loss;
        k->last = loss;
        r->last_loss = loss;
    }
    r->lr = jnum(o, "lr", r->lr);
    r->tok_s = jnum(o, "tokens_per_s", r->tok_s);
    free(task);
    cJSON_Delete(o);
    r->seen = step;
    return 0;
}

static int by_start_desc(const void *a, const void *b) {
    const TuiRun *x = a, *y = b;
    if (x->live != y->live) return y->live - x->live;
    return strcmp(y->start, x->start);
}

/* Re-read the run records (every 2 s, or forced) and the new metrics of every run: a run read
 * for the first time gets all its rows, a known one the rows after the last step seen. */
int tui_poll_runs(Tui *t, int force) {
    double now = tui_now();
    if (!force && now - t->runs_polled < (t->nlive ? 1.0 : 3.0)) return 0;
    t->runs_polled = now;
    if (!t->store) return -1;
    RunList rl = {0};
    int rc = store_run_list(t->store, on_run, &rl);
    if (rc < 0) {
        crt_logf("tui: runs: %s", am_errmsg(rc));
        for (int i = 0; i < rl.n; i++) run_free(&rl.runs[i]);
        free(rl.runs);
        return -1;
    }
    t->nlive = 0;
    for (int i = 0; i < rl.n; i++) {
        TuiRun *r = &rl.runs[i];
        /* carry the metrics read so far over from the previous list */
        for (int j = 0; j < t->nruns; j++) {
            TuiRun *o = &t->runs[j];
            if (o->id && strcmp(o->id, r->id) == 0) {
                r->tasks = o->tasks, r->ntasks = o->ntasks, r->seen = o->seen;
                r->lr = o->lr, r->tok_s = o->tok_s, r->last_loss = o->last_loss;
                o->tasks = NULL, o->ntasks = 0;
                break;
            }
        }
        if (r->seen == 0 || r->live || r->seen < (uint32_t)r->step)
            store_run_metrics(t->store, r->id, r->seen + 1, UINT32_MAX, on_metric, r);
        t->nlive += r->live;
    }
    for (int j = 0; j < t->nruns; j++) run_free(&t->runs[j]);
    free(t->runs);
    qsort(rl.runs, (size_t)rl.n, sizeof *rl.runs, by_start_desc);
    t->runs = rl.runs;
    t->nruns = rl.n;
    return 0;
}

void tui_data_free(Tui *t) {
    models_free(t);
    for (int i = 0; i < 2; i++) results_free(&t->results[i]);
    for (int j = 0; j < t->nruns; j++) run_free(&t->runs[j]);
    free(t->runs);
    t->runs = NULL;
    t->nruns = 0;
}

/* ---------------------------------------------------------------- shared helpers */

void tui_pareto(const double *x, const double *y, int n, int *on) {
    for (int i = 0; i < n; i++) {
        on[i] = !isnan(x[i]) && !isnan(y[i]);
        for (int j = 0; j < n && on[i]; j++) {
            if (j == i || isnan(x[j]) || isnan(y[j])) continue;
            if (x[j] >= x[i] && y[j] >= y[i] && (x[j] > x[i] || y[j] > y[i])) on[i] = 0;
        }
    }
}

void tui_fmt_score(char *buf, size_t cap, double v) {
    if (isnan(v)) snprintf(buf, cap, "%s", crt_utf8 ? "—" : "-");
    else snprintf(buf, cap, "%.1f", v * 100);
}
