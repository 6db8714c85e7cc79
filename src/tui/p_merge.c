/* p_merge.c - the Merge panel: choose a base and a method, give each model a weight with a
 * slider (or one slider per layer group: embeddings, groups of layers, pooler), set the
 * method's parameters (density, λ, t, ε, γ); every change merges as a recipe-only model
 * (am.merge: nothing but the recipe is stored) and quick-evaluates it (am.eval, the quick
 * suite), then shows the ID / OOD averages and per-task bars against the base. `s` stores the
 * merge under a name and starts its full evaluation in a background process.
 *
 * The steps run on a worker thread with its own Lua state (the Store handle is shared: one
 * LMDB environment per process, MDB_NOTLS, write transactions serialised by LMDB, see
 * store.h), so the loop keeps answering keys. Requests coalesce: while a step runs, later
 * changes replace the one waiting, only the latest is computed next, and the running step
 * stops at its next task boundary (its numbers would be stale on arrival). */
#define _GNU_SOURCE
#include "tui_internal.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "am_base.h"
#include "am_lua.h"

#define MAXC 64
#define MAXLG 8                 /* layer groups shown (more layers are grouped) */
#define MAXG (MAXLG + 2)        /* + embeddings + pooler */
#define MAXEVAL 8

/* The method parameters besides the weights (merge.h MergeParam), with the panel's slider. */
enum { P_DENSITY, P_LAMBDA, P_T, P_EPSILON, P_GAMMA, NPARAM };
static const struct { const char *key; double def, step, lo, hi; } params[NPARAM] = {
    {"density", 0.5, 0.05, 0.05, 1}, {"lambda", 1.0, 0.05, 0, 3}, {"t", 0.5, 0.05, 0, 1},
    {"epsilon", 0.1, 0.01, 0, 0.45}, {"gamma", 0.01, 0.01, 0, 0.5},
};

typedef struct {
    char *name, *base;
    unsigned params;            /* bit P_* for each parameter the method reads */
    int weight;                 /* it reads per-model weights */
} Method;

typedef struct {
    char *name, *tag;
    double score, ref;
} MTask;

/* One finished step (made by the worker, taken by the loop). */
typedef struct {
    unsigned seq;
    int save;
    char name[64];
    double t_key;               /* when the change it computes was made */
    char id[33], err[512];
    double id_avg, ood_avg, ref_id, ref_ood, merge_s, eval_s, total_s;
    double cpu_s;               /* the process's CPU time during the step (all threads) */
    int found, superseded;      /* superseded: abandoned for a newer request */
    MTask *tasks;
    int ntasks;
} Step;

typedef struct Worker Worker;

/* A request: the spec JSON and what the loop needs back. */
typedef struct {
    char *json;
    unsigned seq;
    int save;
    char name[64];
    double t_key;
} Req;

/* The worker thread. The loop and the worker meet only under mu. */
struct Worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Req next, save;             /* waiting: the latest change, a save (json NULL = none) */
    int busy, stop;
    double delay;               /* AMALGAM_TUI_STEP_DELAY seconds before each step (tests) */
    Step *done;                 /* the last finished step, not yet taken */
    /* the store's results read after a step (the new point joins the plot and Results): read
     * here, where it costs the loop nothing (~0.1 s on a store of many explored points) */
    TuiResults res[2];
    int nres, has_res;
    char store_dir[512];
};

/* superseded() -> true when a newer slider request waits (or the panel closes) */
static int l_superseded(lua_State *L) {
    Worker *w = lua_touserdata(L, lua_upvalueindex(1));
    pthread_mutex_lock(&w->mu);
    int r = w->next.json != NULL || w->stop;
    pthread_mutex_unlock(&w->mu);
    lua_pushboolean(L, r);
    return 1;
}

typedef struct {
    pid_t pid;
    char name[64], log[800];
    double t0;
} FullEval;

typedef struct {
    int loaded;
    Method *methods;
    int nmethods, method;
    int cand[MAXC];             /* model indices (t->models) that can be weighted */
    char cand_id[MAXC][33];
    double weight[MAXC];
    double gweight[MAXC][MAXG]; /* per layer group (granularity 1) */
    double pv[NPARAM];
    int ncand, sel, top;
    int groups;                 /* granularity: 0 per model, 1 per layer group */
    int base;                   /* model index, -1 none */
    int dirty;
    double changed;             /* when the last change was made */
    /* the worker and what it computes */
    Worker *w;
    unsigned sent, shown;       /* seq of the last request sent / of the step shown */
    /* the step shown */
    int have;
    char id[33], err[512];
    double id_avg, ood_avg, ref_id, ref_ood, merge_s, eval_s, total_s, lat;
    int found;
    MTask *tasks;
    int ntasks;
    /* slider latency: key -> numbers on screen */
    double lat_sum, lat_max;
    int lat_n;
    int gen;                    /* t->models_gen the indices are of */
    char base_id[33];
    /* `s`: the name typed, the full evaluations started */
    int naming;
    char name[64];
    FullEval evals[MAXEVAL];
    int nevals;
} MergeState;

static void tasks_free(MTask *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].name), free(t[i].tag);
    free(t);
}

static void step_free(Step *s) {
    if (!s) return;
    tasks_free(s->tasks, s->ntasks);
    free(s);
}

/* ---------------------------------------------------------------- the worker */

static double wfield(lua_State *L, int idx, const char *k) { return tui_field_num(L, idx, k, NAN); }


/* require("amalgam.tui").merge_eval(json, superseded) in the worker's state -> a Step. A slider
 * step stops between two tasks when a newer one waits; a save never does. */
static Step *compute(lua_State *L, const Req *q, Worker *w) {
    Step *st = xcalloc(1, sizeof *st);
    st->seq = q->seq, st->save = q->save, st->t_key = q->t_key;
    snprintf(st->name, sizeof st->name, "%s", q->name);
    if (!L) { snprintf(st->err, sizeof st->err, "the worker has no Lua state"); return st; }
    int top = lua_gettop(L);
    double t0 = tui_now();
    lua_getglobal(L, "require");
    lua_pushstring(L, "amalgam.tui");
    if (am_docall(L, 1, 1) != LUA_OK) goto fail;
    lua_getfield(L, -1, "merge_eval");
    lua_remove(L, -2);
    lua_pushstring(L, q->json);
    if (q->save) lua_pushnil(L);
    else {
        lua_pushlightuserdata(L, w);
        lua_pushcclosure(L, l_superseded, 1);
    }
    if (am_docall(L, 2, 2) != LUA_OK) goto fail;
    if (lua_isnil(L, -2)) goto fail;
    lua_pop(L, 1);
    int r = lua_gettop(L);
    char *id = tui_field_str(L, r, "id");
    snprintf(st->id, sizeof st->id, "%s", id);
    free(id);
    st->id_avg = wfield(L, r, "id_avg"), st->ood_avg = wfield(L, r, "ood_avg");
    st->ref_id = wfield(L, r, "ref_id_avg"), st->ref_ood = wfield(L, r, "ref_ood_avg");
    st->merge_s = wfield(L, r, "merge_s"), st->eval_s = wfield(L, r, "eval_s");
    st->total_s = tui_now() - t0;
    lua_getfield(L, r, "found");
    st->found = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, r, "tasks");
    lua_getfield(L, r, "ref");
    int tt = r + 1, rf = r + 2;
    st->ntasks = lua_istable(L, tt) ? (int)lua_rawlen(L, tt) : 0;
    st->tasks = xcalloc((size_t)st->ntasks + 1, sizeof *st->tasks);
    for (int i = 0; i < st->ntasks; i++) {
        lua_rawgeti(L, tt, i + 1);
        st->tasks[i].name = tui_field_str(L, -1, "name");
        st->tasks[i].tag = tui_field_str(L, -1, "tag");
        st->tasks[i].score = wfield(L, -1, "score");
        st->tasks[i].ref = lua_istable(L, rf) ? wfield(L, rf, st->tasks[i].name) : (double)NAN;
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return st;
fail:
    st->total_s = tui_now() - t0;
    snprintf(st->err, sizeof st->err, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    st->superseded = strncmp(st->err, "superseded", 10) == 0;   /* am_docall appends a traceback */
    for (char *c = st->err; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
    lua_settop(L, top);
    return st;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    /* its own state over the same store: the registry in store_open.c shares the handle */
    lua_State *L = am_lua_newstate(w->store_dir);
    if (L) am_lua_ctx(L)->store_flags = AM_STORE_EXISTING;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->next.json && !w->save.json && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) break;
        Req q;
        if (w->save.json) q = w->save, w->save.json = NULL;   /* a save is never coalesced away */
        else q = w->next, w->next.json = NULL;
        w->busy = 1;
        pthread_mutex_unlock(&w->mu);
        if (w->delay > 0) {
            struct timespec ts = {(time_t)w->delay, (long)((w->delay - (double)(time_t)w->delay) * 1e9)};
            nanosleep(&ts, NULL);
        }
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        Step *st = compute(L, &q, w);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        st->cpu_s = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
        free(q.json);
        /* the merged model and its embeddings are C memory behind small userdata: the GC
         * does not see them, so collect now rather than after many steps */
        if (L) lua_gc(L, LUA_GCCOLLECT);
        int ok = !st->err[0];
        pthread_mutex_lock(&w->mu);
        /* a save's result is not replaced by a later slider step before the loop takes it */
        if (w->done && w->done->save && !st->save) step_free(st);
        else step_free(w->done), w->done = st;
        /* the numbers are out; now the results, unless the next step is waiting (its own
         * results will be read after it) */
        if (ok && L && !w->next.json && !w->save.json && !w->stop) {
            pthread_mutex_unlock(&w->mu);
            TuiResults res[2];
            int n;
            char err[512];
            int rc = tui_results_read(L, res, &n, err, sizeof err);
            pthread_mutex_lock(&w->mu);
            if (rc == 0) {
                for (int i = 0; i < w->nres; i++) tui_results_free(&w->res[i]);
                for (int i = 0; i < n; i++) w->res[i] = res[i];
                w->nres = n, w->has_res = 1;
            }
        }
        w->busy = 0;
    }
    pthread_mutex_unlock(&w->mu);
    if (L) lua_close(L);
    return NULL;
}

static Worker *worker_start(const char *store_dir) {
    Worker *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    snprintf(w->store_dir, sizeof w->store_dir, "%s", store_dir);
    /* a test hook: slow steps make "keys answer while a step runs" deterministic */
    const char *d = getenv("AMALGAM_TUI_STEP_DELAY");
    if (d && *d) w->delay = atof(d);
    if (pthread_create(&w->th, NULL, worker_main, w)) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

/* Stop the worker. A step in progress is not interrupted (it is C code); if it does not end
 * within a moment the thread is left to the process exit (its Lua state holds its own
 * reference to the store, so the loop may close its own). */
static void worker_stop(Worker *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    int busy = w->busy;
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; busy && i < 50; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&w->mu);
        busy = w->busy;
        pthread_mutex_unlock(&w->mu);
    }
    if (busy) { pthread_detach(w->th); return; }
    pthread_join(w->th, NULL);
    free(w->next.json), free(w->save.json);
    step_free(w->done);
    for (int i = 0; i < w->nres; i++) tui_results_free(&w->res[i]);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* ---------------------------------------------------------------- models and methods */

static void load_methods(Panel *p) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    if (s->methods || tui_lua_call(t, "merge_methods", 0, NULL)) return;
    lua_State *L = t->L;
    int n = (int)lua_rawlen(L, -1);
    s->methods = xcalloc((size_t)n + 1, sizeof *s->methods);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        Method *me = &s->methods[i];
        me->name = tui_field_str(L, -1, "name");
        me->base = tui_field_str(L, -1, "base");
        char *ps = tui_field_str(L, -1, "params");
        for (char *tok = strtok(ps, ","); tok; tok = strtok(NULL, ",")) {
            if (strcmp(tok, "weight") == 0) me->weight = 1;
            for (int k = 0; k < NPARAM; k++)
                if (strcmp(tok, params[k].key) == 0) me->params |= 1u << k;
        }
        free(ps);
        lua_pop(L, 1);
        if (strcmp(me->name, "task_arithmetic") == 0) s->method = i;
    }
    s->nmethods = n;
    lua_pop(L, 1);
}

/* Candidates: every model but task vectors (their checkpoints stand for them) and the base; the base
 * defaults to the model most candidates descend from, and its children start at 0.5. */
static void load_models(Panel *p) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    /* a reload: keep the weights and the base by id */
    char keep_id[MAXC][33];
    double keep_w[MAXC], keep_g[MAXC][MAXG];
    int nkeep = s->loaded ? s->ncand : 0;
    for (int i = 0; i < nkeep; i++)
        memcpy(keep_id[i], s->cand_id[i], 33), keep_w[i] = s->weight[i], memcpy(keep_g[i], s->gweight[i], sizeof keep_g[i]);
    s->ncand = 0;
    int best = -1, best_n = 0;
    for (int i = 0; i < t->nmodels; i++) {
        int n = 0;
        for (int j = 0; j < t->nmodels; j++)
            if (strcmp(t->models[j].parent_label, t->models[i].label) == 0 && strcmp(t->models[j].kind, "task_vector") != 0) n++;
        if (n > best_n) best = i, best_n = n;
    }
    s->base = best;
    for (int i = 0; i < t->nmodels && s->ncand < MAXC; i++) {
        TuiModel *m = &t->models[i];
        /* unnamed recipe-only merges are sweep points and slider positions: not inputs */
        if (i == s->base || strcmp(m->kind, "task_vector") == 0 || (m->recipe_only && !m->names[0])) continue;
        int c = s->ncand++;
        s->cand[c] = i;
        s->weight[c] = best >= 0 && strcmp(m->kind, "checkpoint") == 0 &&
                               strcmp(m->parent_label, t->models[best].label) == 0 ? 0.5 : 0.0;
        for (int g = 0; g < MAXG; g++) s->gweight[c][g] = s->weight[c];
        memcpy(s->cand_id[c], m->id, 33);
        for (int k = 0; k < nkeep; k++)
            if (strcmp(keep_id[k], m->id) == 0) s->weight[c] = keep_w[k], memcpy(s->gweight[c], keep_g[k], sizeof keep_g[k]);
    }
    if (s->loaded)
        for (int i = 0; i < t->nmodels; i++)
            if (strcmp(t->models[i].id, s->base_id) == 0) s->base = i;
    if (s->base >= 0) memcpy(s->base_id, t->models[s->base].id, 33);
    s->gen = t->models_gen;
    s->loaded = 1;
    s->dirty = 1;
    s->changed = 0;
}

static void merge_enter(Panel *p) {
    MergeState *s = p->st;
    if (!s->loaded) {
        for (int k = 0; k < NPARAM; k++) s->pv[k] = params[k].def;
        load_methods(p);
        load_models(p);
    } else if (s->gen != p->tui->models_gen) {
        int d = s->dirty;
        load_models(p);
        s->dirty = d;
    }
}

/* ---------------------------------------------------------------- rows and layer groups */

static Method *method(MergeState *s) { return s->nmethods ? &s->methods[s->method] : NULL; }

/* The layer groups: embeddings, the encoder layers (one group each up to MAXLG, else split
 * evenly), the pooler. lo/hi: the layers of group g (1..n-2). */
static int ngroups(Panel *p) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    int L = 0;
    if (s->base >= 0) L = t->models[s->base].layers;
    if (L <= 0 && s->ncand) L = t->models[s->cand[0]].layers;
    if (L <= 0) L = 1;
    return (L < MAXLG ? L : MAXLG) + 2;
}

static void group_layers(Panel *p, int g, int *lo, int *hi) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    int L = s->base >= 0 ? t->models[s->base].layers : 0;
    if (L <= 0 && s->ncand) L = t->models[s->cand[0]].layers;
    int n = ngroups(p) - 2;
    *lo = (g - 1) * L / n, *hi = g * L / n - 1;
}

static void group_name(Panel *p, int g, char *buf, size_t cap) {
    int n = ngroups(p);
    if (g == 0) snprintf(buf, cap, "embeddings");
    else if (g == n - 1) snprintf(buf, cap, "pooler");
    else {
        int lo, hi;
        group_layers(p, g, &lo, &hi);
        if (lo == hi) snprintf(buf, cap, "layer %d", lo);
        else snprintf(buf, cap, "layers %d-%d", lo, hi);
    }
}

/* The rows of the left list: the method's parameters, then each model (and, per layer group,
 * its groups under it). kind 0 = parameter (k = P_*), 1 = model k, 2 = group g of model k. */
static int nparams_shown(MergeState *s, int *which) {
    Method *me = method(s);
    int n = 0;
    for (int k = 0; me && k < NPARAM; k++)
        if (me->params & (1u << k)) {
            if (which) which[n] = k;
            n++;
        }
    return n;
}

static int nrows(Panel *p) {
    MergeState *s = p->st;
    return nparams_shown(s, NULL) + s->ncand * (s->groups ? 1 + ngroups(p) : 1);
}

static void row_at(Panel *p, int r, int *kind, int *k, int *g) {
    MergeState *s = p->st;
    int which[NPARAM], np = nparams_shown(s, which);
    *g = -1;
    if (r < np) { *kind = 0, *k = which[r]; return; }
    r -= np;
    int per = s->groups ? 1 + ngroups(p) : 1;
    *k = r / per;
    *g = r % per - 1;
    *kind = *g < 0 ? 1 : 2;
}

/* per layer group, a model enters the merge with its largest group weight (one of the slider
 * values, so the same merge typed on the command line has the same id); the rules set every
 * group, so it only weighs tensors outside them (a head) */
static double group_max(Panel *p, int k) {
    MergeState *s = p->st;
    int n = ngroups(p);
    double m = 0;
    for (int g = 0; g < n; g++)
        if (s->gweight[k][g] > m) m = s->gweight[k][g];
    return m;
}

/* the weight model k enters the merge with (0: left out) */
static double model_weight(Panel *p, int k) {
    MergeState *s = p->st;
    return s->groups ? group_max(p, k) : s->weight[k];
}

/* ---------------------------------------------------------------- requests */

static char *spec_json(Panel *p, const char *name, int *nmodels) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    Method *me = method(s);
    cJSON *o = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(o, "models"),
          *weights = cJSON_AddArrayToObject(o, "weights");
    cJSON_AddStringToObject(o, "method", me->name);
    cJSON *rules = s->groups && me->weight ? cJSON_AddArrayToObject(o, "rules") : NULL;
    int n = 0, ng = ngroups(p);
    for (int i = 0; i < s->ncand; i++) {
        double w = model_weight(p, i);
        if (!(w > 0)) continue;
        cJSON_AddItemToArray(models, cJSON_CreateString(t->models[s->cand[i]].id));
        cJSON_AddItemToArray(weights, cJSON_CreateNumber(w));
        n++;
        for (int g = 0; rules && g < ng; g++) {
            /* one rule per layer (a pattern is one layer's prefix); the pooler by class: a model
             * without one has no tensor of it, and a class that matches nothing is no error */
            int lo = 0, hi = 0;
            if (g > 0 && g < ng - 1) group_layers(p, g, &lo, &hi);
            for (int l = lo; l <= hi; l++) {
                cJSON *r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "param", "weight");
                cJSON_AddNumberToObject(r, "model", n);
                if (g == 0) cJSON_AddStringToObject(r, "pattern", "embeddings.");
                else if (g == ng - 1) cJSON_AddStringToObject(r, "classes", "pooler");
                else {
                    char pat[48];
                    snprintf(pat, sizeof pat, "encoder.layer.%d.", l);
                    cJSON_AddStringToObject(r, "pattern", pat);
                }
                cJSON_AddNumberToObject(r, "value", s->gweight[i][g]);
                cJSON_AddItemToArray(rules, r);
            }
        }
    }
    if (s->base >= 0) cJSON_AddStringToObject(o, "base", t->models[s->base].id);
    for (int k = 0; k < NPARAM; k++)
        if (me->params & (1u << k)) cJSON_AddNumberToObject(o, params[k].key, s->pv[k]);
    if (name) cJSON_AddStringToObject(o, "name", name);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    *nmodels = n;
    return json;
}

/* Hand the merge to the worker: the waiting request is replaced (coalesced), a save is queued
 * apart. Returns 0, or -1 with the reason in s->err (nothing to merge). */
static int submit(Panel *p, const char *name) {
    MergeState *s = p->st;
    s->dirty = 0;
    if (!s->nmethods) { snprintf(s->err, sizeof s->err, "no merge methods"); return -1; }
    int n;
    char *json = spec_json(p, name, &n);
    if (n == 0) {
        free(json);
        snprintf(s->err, sizeof s->err, "give a model a weight (%s to raise it)", crt_utf8 ? "→" : "Right");
        s->have = 0;
        return -1;
    }
    if (!s->w && !(s->w = worker_start(p->tui->store_dir))) {
        free(json);
        snprintf(s->err, sizeof s->err, "cannot start the merge worker thread");
        return -1;
    }
    Req q = {.json = json, .seq = name ? 0 : ++s->sent, .save = name != NULL, .t_key = s->changed > 0 ? s->changed : tui_now()};
    if (name) snprintf(q.name, sizeof q.name, "%s", name);
    Worker *w = s->w;
    pthread_mutex_lock(&w->mu);
    Req *slot = name ? &w->save : &w->next;
    free(slot->json);
    *slot = q;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* `amalgam --store DIR eval NAME --suite default` in its own session (it outlives the TUI and
 * the TUI's Ctrl-C does not reach it), output in a log file; polled in merge_poll. */
static void start_full_eval(Panel *p, const char *name) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    FullEval *e = s->nevals < MAXEVAL ? &s->evals[s->nevals] : NULL;
    if (!e) { tui_flash(t, "stored %s; %d full evaluations already running", name, MAXEVAL); return; }
    char safe[64];
    snprintf(safe, sizeof safe, "%s", name);
    for (char *c = safe; *c; c++)
        if (!(*c == '-' || *c == '_' || *c == '.' || (*c >= '0' && *c <= '9') || ((*c | 32) >= 'a' && (*c | 32) <= 'z'))) *c = '_';
    char stem[80];
    snprintf(stem, sizeof stem, "eval-%s", safe);
    tui_log_path(t, stem, e->log, sizeof e->log);
    char a0[] = "amalgam", a1[] = "--store", a3[] = "eval", a5[] = "--suite", a6[] = "default", nm[64];
    snprintf(nm, sizeof nm, "%s", name);
    char *argv[] = {a0, a1, t->store_dir, a3, nm, a5, a6, NULL};
    int rc = tui_spawn(argv, e->log, 0, &e->pid);
    if (rc) { tui_flash(t, "stored %s; cannot start its full evaluation: %s", name, strerror(rc)); return; }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->t0 = tui_now();
    s->nevals++;
    crt_logf("tui: stored %s; full evaluation in pid %d, output in %s", name, (int)e->pid, e->log);
    tui_flash(t, "stored %s; full evaluation running in pid %d (%s)", name, (int)e->pid, e->log);
}

/* Take a finished step from the worker. */
static void collect(Panel *p) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    if (!s->w) return;
    TuiResults res[2];
    int nres = -1;
    pthread_mutex_lock(&s->w->mu);
    Step *st = s->w->done;
    s->w->done = NULL;
    if (s->w->has_res) {
        nres = s->w->nres;
        for (int i = 0; i < nres; i++) res[i] = s->w->res[i];
        s->w->nres = 0, s->w->has_res = 0;
    }
    pthread_mutex_unlock(&s->w->mu);
    if (nres >= 0) tui_results_install(t, res, nres);   /* the plot and Results follow the store */
    if (!st) return;
    if (st->save) {
        if (st->err[0]) tui_flash(t, "storing %s failed: %s", st->name, st->err);
        else {
            start_full_eval(p, st->name);
            tui_load_models(t);
        }
        step_free(st);
        return;
    }
    if (st->seq < s->shown) { step_free(st); return; }
    if (st->superseded) {
        crt_logf("tui: merge step %u superseded after %.0f ms (a newer position waits)", st->seq, st->total_s * 1e3);
        step_free(st);
        return;
    }
    s->shown = st->seq;
    snprintf(s->err, sizeof s->err, "%s", st->err);
    if (st->err[0]) {
        s->have = 0;
        crt_logf("tui: merge: %s", st->err);
        step_free(st);
        return;
    }
    memcpy(s->id, st->id, sizeof s->id);
    s->id_avg = st->id_avg, s->ood_avg = st->ood_avg, s->ref_id = st->ref_id, s->ref_ood = st->ref_ood;
    s->merge_s = st->merge_s, s->eval_s = st->eval_s, s->total_s = st->total_s, s->found = st->found;
    double cpu = st->cpu_s;
    tasks_free(s->tasks, s->ntasks);
    s->tasks = st->tasks, s->ntasks = st->ntasks;
    st->tasks = NULL, st->ntasks = 0;
    s->have = 1;
    s->lat = tui_now() - st->t_key;
    s->lat_sum += s->lat, s->lat_n++;
    if (s->lat > s->lat_max) s->lat_max = s->lat;
    step_free(st);
    crt_logf("tui: merge %s %.12s: merge %.0f ms, quick eval %.0f ms, step %.0f ms (cpu %.0f ms), key to screen "
             "%.0f ms (mean %.0f, max %.0f over %d)%s", method(s)->name, s->id, s->merge_s * 1e3, s->eval_s * 1e3,
             s->total_s * 1e3, cpu * 1e3, s->lat * 1e3, s->lat_sum / s->lat_n * 1e3, s->lat_max * 1e3, s->lat_n,
             s->found ? " (found stored)" : "");
}

static int outstanding(MergeState *s) {
    if (!s->w) return 0;
    pthread_mutex_lock(&s->w->mu);
    int n = s->w->busy || s->w->next.json || s->w->save.json || s->w->done;
    pthread_mutex_unlock(&s->w->mu);
    return n;
}

/* Every turn of the loop, shown or not: finished steps, finished full evaluations. */
static void merge_poll(Panel *p) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    collect(p);
    for (int i = 0; i < s->nevals; i++) {
        FullEval *e = &s->evals[i];
        int status;
        pid_t r = waitpid(e->pid, &status, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR)) continue;
        int ok = r == e->pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        crt_logf("tui: full evaluation of %s %s after %.0f s (output in %s)", e->name, ok ? "done" : "failed",
                 tui_now() - e->t0, e->log);
        tui_flash(t, "full evaluation of %s %s (%.0f s)%s%s", e->name, ok ? "done" : "failed", tui_now() - e->t0,
                  ok ? "" : ": see ", ok ? "" : e->log);
        if (ok) tui_load_results(t);
        s->evals[i--] = s->evals[--s->nevals];
    }
    /* while a step is out, look for its result more often than the loop's 100 ms */
    if (t->frames <= 0) timeout(&t->panels[t->cur] == p && outstanding(s) ? 20 : 100);
}

static void merge_tick(Panel *p) {
    MergeState *s = p->st;
    merge_enter(p);
    if (s->loaded && s->dirty && !s->naming) submit(p, NULL);
}

/* ---------------------------------------------------------------- drawing */

static void put_delta(int y, int x, double v, double ref) {
    if (isnan(v) || isnan(ref)) return;
    double d = v - ref;
    attrset(crt_attr(fabs(d) < 0.005 ? CR_DIM : d > 0 ? CR_GAIN : CR_LOSS));
    if (fabs(d) < 0.005) crt_put(y, x, 6, crt_glyphs.approx, 0);
    else crt_putf(y, x, 6, 0, "%+.1f", d * 100);
    attrset(crt_attr(CR_DEFAULT));
}

/* The quick results of the store and the current merge (◆) in one ID vs OOD plot: only quick
 * scores, the merge's are quick too. */
static void draw_plot(Panel *p, int y, int x, int h, int w) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    TuiResults *q = NULL;
    for (int i = 0; i < t->nresults; i++)
        if (strcmp(t->results[i].mode, "quick") == 0) q = &t->results[i];
    int n = (q ? q->nrows : 0) + 1;
    double *xs = malloc(sizeof(double) * (size_t)n), *ys = malloc(sizeof(double) * (size_t)n);
    int *front = calloc((size_t)n, sizeof(int));
    char *marks = malloc((size_t)n);
    for (int i = 0; i < n - 1; i++) xs[i] = q->rows[i].id_avg * 100, ys[i] = q->rows[i].ood_avg * 100, marks[i] = '.';
    xs[n - 1] = s->have ? s->id_avg * 100 : (double)NAN;
    ys[n - 1] = s->have ? s->ood_avg * 100 : (double)NAN;
    marks[n - 1] = '*';
    tui_pareto(xs, ys, n, front);
    for (int i = 0; i < n - 1; i++) marks[i] = front[i] ? '+' : 'o';
    attrset(crt_attr(CR_COLHEAD));
    crt_putf(y, x, w, 1, " ID vs OOD (quick)  %s this merge  o stored  + front", crt_glyphs.front);
    attrset(crt_attr(CR_DEFAULT));
    tui_scatter(y + 1, x, h - 1, w, xs, ys, marks, front, n, -1, n - 1);
    free(xs), free(ys), free(front), free(marks);
}

static void draw_slider(int y, int x, int nw, int bw, int sel, int dim, const char *label, double v, double hi) {
    attrset(sel ? crt_attr(CR_SELECT) : dim ? crt_attr(CR_DIM) : crt_attr(CR_DEFAULT));
    crt_putf(y, x, nw + 1, 1, "%s%s", sel ? crt_glyphs.sel : " ", label);
    attrset(crt_attr(CR_DEFAULT));
    crt_put(y, x + nw + 1, 1, crt_utf8 ? "▕" : "[", 0);
    attrset(crt_attr(CR_GRAPH));
    crt_bar(y, x + nw + 2, bw, hi > 0 ? v / hi : 0);
    attrset(crt_attr(CR_DEFAULT));
    crt_put(y, x + nw + 2 + bw, 1, crt_utf8 ? "▏" : "]", 0);
    crt_putf(y, x + nw + 4 + bw, 5, 0, "%.2f", v);
}

static void merge_draw(Panel *p, int y, int x, int h, int w) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    merge_enter(p);
    int busy = s->sent > s->shown;
    snprintf(p->title, sizeof p->title, "Merge  each change is merged as a recipe and quick-evaluated%s",
             busy ? "  (computing)" : "");
    if (s->ncand == 0) {
        crt_put(y + 1, x + 2, w - 4, "Nothing to merge: the store needs fine-tuned checkpoints of one base.", 0);
        return;
    }
    Method *me = method(s);
    int cx = crt_putf(y, x + 1, w - 2, 0, "method %s", me ? me->name : "?") + x + 3;
    cx += crt_putf(y, cx, w - cx, 0, "base %s", s->base >= 0 && me && strcmp(me->base, "none") != 0 ? t->models[s->base].label
                                                  : me && strcmp(me->base, "none") == 0 ? "(not used)" : "none") + 2;
    cx += crt_putf(y, cx, w - cx, 0, "weights per %s", s->groups ? "layer group" : "model") + 2;
    if (s->naming) {
        attrset(crt_attr(CR_PROMPT));
        crt_putf(y, cx, w - cx, 0, "name: %s_", s->name);
        attrset(crt_attr(CR_DEFAULT));
    } else if (s->nevals) {
        attrset(crt_attr(CR_DIM));
        crt_putf(y, cx, w - cx, 0, "full eval of %s running %.0f s%s", s->evals[s->nevals - 1].name,
                 tui_now() - s->evals[s->nevals - 1].t0, s->nevals > 1 ? " (and others)" : "");
        attrset(crt_attr(CR_DEFAULT));
    }
    /* left: the sliders */
    int lw = w / 2 - 1, nw = lw - 22;
    if (nw < 12) nw = 12;
    int bw = lw - nw - 8;
    attrset(crt_attr(CR_COLHEAD));
    crt_putf(y + 1, x, lw, 1, " %-*s value", lw - 8, "parameter / model");
    attrset(crt_attr(CR_DEFAULT));
    /* the sliders on top, an ID vs OOD plot of the quick results below when there is room */
    int n = nrows(p), rows = h - 3, ph = 0;
    if (h - (n + 3) >= 9) {
        rows = n;
        ph = h - rows - 3;
    } else if (h >= 20) {
        rows = h / 2 - 2;
        ph = h - rows - 3;
    }
    if (s->sel >= n) s->sel = n ? n - 1 : 0;
    tui_list_fit(s->sel, &s->top, n, rows);
    for (int i = 0; i < rows && s->top + i < n; i++) {
        int r = s->top + i, yy = y + 2 + i, kind, k, g;
        row_at(p, r, &kind, &k, &g);
        char lab[96];
        if (kind == 0) {
            snprintf(lab, sizeof lab, "%s", params[k].key);
            draw_slider(yy, x, nw, bw, r == s->sel, 0, lab, s->pv[k], params[k].hi);
        } else if (kind == 1) {
            double v = model_weight(p, k);
            draw_slider(yy, x, nw, bw, r == s->sel, !(v > 0), t->models[s->cand[k]].label, v, 1);
        } else {
            char gn[32];
            group_name(p, g, gn, sizeof gn);
            snprintf(lab, sizeof lab, "  %s", gn);
            draw_slider(yy, x, nw, bw, r == s->sel, !(s->gweight[k][g] > 0), lab, s->gweight[k][g], 1);
        }
    }
    if (ph >= 8) draw_plot(p, y + 3 + rows, x, ph, lw);
    /* right: the quick evaluation */
    int rx = x + lw + 2, rw = w - lw - 2;
    attrset(crt_attr(CR_COLHEAD));
    if (busy)
        crt_putf(y + 1, rx, rw, 1, " quick eval  computing%s%s", crt_glyphs.ellipsis,
                 s->have ? "  (below: the previous numbers)" : "");
    else if (s->have)
        crt_putf(y + 1, rx, rw, 1, " quick eval %.8s  step %.2f s  key%sscreen %.2f s%s", s->id, s->total_s,
                 crt_utf8 ? "→" : "->", s->lat, s->found ? "  stored" : "");
    else
        crt_put(y + 1, rx, rw, " quick eval", 1);
    attrset(crt_attr(CR_DEFAULT));
    if (s->err[0]) {
        attrset(crt_attr(CR_ERROR));
        for (int i = 0, len = (int)strlen(s->err); i * (rw - 2) < len && i < 6; i++)
            crt_putf(y + 3 + i, rx + 1, rw - 2, 0, "%.*s", rw - 2, s->err + i * (rw - 2));
        attrset(crt_attr(CR_DEFAULT));
        return;
    }
    if (!s->have) { crt_put(y + 3, rx + 1, rw - 2, busy ? "..." : "", 0); return; }
    char a[16];
    tui_fmt_score(a, sizeof a, s->id_avg);
    attrset(crt_attr(CR_ID) | A_BOLD);
    crt_putf(y + 2, rx + 1, 12, 0, "ID  %6s", a);
    put_delta(y + 2, rx + 14, s->id_avg, s->ref_id);
    tui_fmt_score(a, sizeof a, s->ood_avg);
    attrset(crt_attr(CR_OOD) | A_BOLD);
    crt_putf(y + 2, rx + 22, 12, 0, "OOD %6s", a);
    put_delta(y + 2, rx + 35, s->ood_avg, s->ref_ood);
    attrset(crt_attr(CR_DIM));
    crt_putf(y + 2, rx + 42, rw - 43, 0, "%s vs base", crt_glyphs.delta);
    attrset(crt_attr(CR_DEFAULT));
    int tw = 12, sw = 6, dw = 6, bbw = rw - tw - sw - dw - 4;
    const char *last = NULL;
    int yy = y + 3;
    for (int i = 0; i < s->ntasks && yy < y + h; i++) {
        MTask *k = &s->tasks[i];
        if (last && strcmp(last, k->tag) != 0 && yy < y + h - 1) {
            attrset(crt_attr(CR_DIM));
            crt_putf(yy++, rx + 1, rw - 2, 0, "%s %s %s", crt_utf8 ? "··" : "..", k->tag[0] ? k->tag : "untagged",
                     crt_utf8 ? "··" : "..");
            attrset(crt_attr(CR_DEFAULT));
        }
        last = k->tag;
        attrset(crt_attr(strcmp(k->tag, "ood") == 0 ? CR_OOD : CR_ID));
        crt_put(yy, rx + 1, tw, k->name, 1);
        attrset(crt_attr(CR_GRAPH));
        crt_bar(yy, rx + 2 + tw, bbw, isnan(k->score) ? 0 : k->score);
        attrset(crt_attr(CR_DEFAULT));
        tui_fmt_score(a, sizeof a, k->score);
        crt_putf(yy, rx + 3 + tw + bbw, sw, 0, "%5s", a);
        put_delta(yy, rx + 4 + tw + bbw + sw, k->score, k->ref);
        yy++;
    }
}

/* ---------------------------------------------------------------- keys */

static void changed(MergeState *s) {
    s->dirty = 1;
    s->changed = tui_now();
}

static int mg_move(Panel *p, int key) {
    MergeState *s = p->st;
    return tui_list_key(&s->sel, nrows(p), LINES - 7, key);
}

static double clamp(double v, double lo, double hi) {
    v = round(v * 100) / 100;
    return v < lo ? lo : v > hi ? hi : v;
}

/* ←→ 0 1 on the selected row: a parameter, a model's weight (per layer group: all its
 * groups at once), or one group's weight */
static int mg_slide(Panel *p, int key) {
    MergeState *s = p->st;
    if (s->sel >= nrows(p)) return HR_HANDLED;
    int kind, k, g;
    row_at(p, s->sel, &kind, &k, &g);
    int dir = key == KEY_LEFT || key == 'h' || key == '-' ? -1 : key == KEY_RIGHT || key == 'l' || key == '+' ? 1 : 0;
    if (kind == 0) {
        double *v = &s->pv[k];
        if (dir) *v += dir * params[k].step;
        else *v = key == '0' ? params[k].lo : key == '1' ? params[k].def : *v;
        *v = clamp(*v, params[k].lo, params[k].hi);
    } else if (kind == 1 && !s->groups) {
        double *v = &s->weight[k];
        *v = clamp(dir ? *v + dir * 0.05 : key == '0' ? 0 : 1, 0, 1);
    } else if (kind == 1) {
        double v = clamp(dir ? group_max(p, k) + dir * 0.05 : key == '0' ? 0 : 1, 0, 1);
        for (int i = 0; i < MAXG; i++) s->gweight[k][i] = v;
    } else {
        double *v = &s->gweight[k][g];
        *v = clamp(dir ? *v + dir * 0.05 : key == '0' ? 0 : 1, 0, 1);
    }
    changed(s);
    return HR_REDRAW;
}

/* [ ]: density, the common sparsification parameter, wherever the cursor is */
static int mg_density(Panel *p, int key) {
    MergeState *s = p->st;
    if (!method(s) || !(method(s)->params & (1u << P_DENSITY))) {
        tui_flash(p->tui, "%s has no density", method(s) ? method(s)->name : "this method");
        return HR_REDRAW;
    }
    s->pv[P_DENSITY] = clamp(s->pv[P_DENSITY] + (key == ']' ? 0.05 : -0.05), params[P_DENSITY].lo, params[P_DENSITY].hi);
    changed(s);
    return HR_REDRAW;
}

static int mg_method(Panel *p, int key) {
    MergeState *s = p->st;
    if (!s->nmethods) return HR_HANDLED;
    s->method = (s->method + (key == 'M' ? s->nmethods - 1 : 1)) % s->nmethods;
    changed(s);
    return HR_REDRAW;
}

static int mg_base(Panel *p, int key) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    if (!t->nmodels) return HR_HANDLED;
    /* the next model that is not task vector */
    for (int k = 0; k < t->nmodels; k++) {
        s->base = (s->base + 1) % t->nmodels;
        if (strcmp(t->models[s->base].kind, "task_vector") != 0) break;
    }
    memcpy(s->base_id, t->models[s->base].id, 33);
    changed(s);
    return HR_REDRAW;
}

/* g: weights per model <-> per layer group (a model's groups start at its weight; back per
 * model, a model weighs its largest group weight) */
static int mg_groups(Panel *p, int key) {
    MergeState *s = p->st;
    Method *me = method(s);
    if (!s->groups && me && !me->weight) {
        tui_flash(p->tui, "%s has no per-model weights", me->name);
        return HR_REDRAW;
    }
    int kind, k, g;
    row_at(p, s->sel < nrows(p) ? s->sel : 0, &kind, &k, &g);
    if (!s->groups) {
        for (int i = 0; i < s->ncand; i++)
            if (fabs(group_max(p, i) - s->weight[i]) > 1e-9)
                for (int j = 0; j < MAXG; j++) s->gweight[i][j] = s->weight[i];
    } else {
        for (int i = 0; i < s->ncand; i++) s->weight[i] = group_max(p, i);
    }
    s->groups = !s->groups;
    /* keep the cursor on the same model */
    if (kind != 0) s->sel = nparams_shown(s, NULL) + k * (s->groups ? 1 + ngroups(p) : 1);
    changed(s);
    return HR_REDRAW;
}

static int mg_now(Panel *p, int key) {
    MergeState *s = p->st;
    if (!s->changed) s->changed = tui_now();
    submit(p, NULL);
    return HR_REDRAW;
}

/* s: name the merge (a prompt with a default name); Enter stores it with its tensors and
 * starts its full evaluation, Esc cancels */
static int mg_save(Panel *p, int key) {
    MergeState *s = p->st;
    if (!s->have || s->sent > s->shown) {
        tui_flash(p->tui, "wait for the quick evaluation of this merge, then s stores it");
        return HR_REDRAW;
    }
    snprintf(s->name, sizeof s->name, "%s-%.8s", method(s)->name, s->id);
    s->naming = 1;
    return HR_REDRAW;
}

static int merge_input(Panel *p, int key) {
    MergeState *s = p->st;
    if (!s->naming) return HR_IGNORED;
    size_t n = strlen(s->name);
    if (key == 27) s->naming = 0;
    else if (key == '\r' || key == '\n' || key == KEY_ENTER) {
        s->naming = 0;
        if (!n) return HR_REDRAW;
        s->changed = tui_now();
        if (submit(p, s->name) == 0) tui_flash(p->tui, "storing %s%s", s->name, crt_glyphs.ellipsis);
    } else if (key == KEY_BACKSPACE || key == 127 || key == 8) {
        if (n) s->name[n - 1] = 0;
    } else if (key > 32 && key < 127 && n + 1 < sizeof s->name) s->name[n] = (char)key, s->name[n + 1] = 0;
    else return HR_HANDLED;   /* other keys do nothing while the name is typed */
    return HR_REDRAW;
}

static const PanelKey merge_keys[];

static void merge_status(Panel *p, char *buf, size_t cap) {
    MergeState *s = p->st;
    if (s->naming) {
        snprintf(buf, cap, "name: %s_   (Enter stores the merge and starts its full evaluation, Esc cancels)", s->name);
        return;
    }
    size_t n = 0;
    buf[0] = 0;
    for (const PanelKey *k = merge_keys; k->key && n + 2 < cap; k++) {
        if (!k->name) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s %s  ", k->name, k->help);
        if (n >= cap) n = cap - 1;
    }
}

static void merge_done(Panel *p) {
    MergeState *s = p->st;
    worker_stop(s->w);
    tasks_free(s->tasks, s->ntasks);
    for (int i = 0; i < s->nmethods; i++) free(s->methods[i].name), free(s->methods[i].base);
    free(s->methods);
}

static const PanelKey merge_keys[] = {
    {KEY_UP, "↑↓", mg_move, "row"},
    {KEY_DOWN, NULL, mg_move, NULL},
    {'k', NULL, mg_move, NULL},
    {'j', NULL, mg_move, NULL},
    {KEY_PPAGE, NULL, mg_move, NULL},
    {KEY_NPAGE, NULL, mg_move, NULL},
    {KEY_HOME, NULL, mg_move, NULL},
    {KEY_END, NULL, mg_move, NULL},
    {KEY_LEFT, "←→", mg_slide, "the row's value (weight -/+ 0.05, density, lambda, t, epsilon, gamma; 0 1: set)"},
    {KEY_RIGHT, NULL, mg_slide, NULL},
    {'h', NULL, mg_slide, NULL},
    {'l', NULL, mg_slide, NULL},
    {'0', NULL, mg_slide, NULL},
    {'1', NULL, mg_slide, NULL},
    {'[', "[ ]", mg_density, "density -/+ 0.05"},
    {']', NULL, mg_density, NULL},
    {'g', "g", mg_groups, "weights per model / per layer group"},
    {'m', "m M", mg_method, "method"},
    {'M', NULL, mg_method, NULL},
    {'b', "b", mg_base, "base"},
    {'\r', "Enter", mg_now, "merge and evaluate now"},
    {'\n', NULL, mg_now, NULL},
    {'s', "s", mg_save, "name and store the merge, start its full evaluation"},
    {0},
};

const PanelClass MergePanel = {
    .name = "Merge", .id = "merge", .size = sizeof(MergeState), .enter = merge_enter, .tick = merge_tick,
    .poll = merge_poll, .done = merge_done, .draw = merge_draw, .input = merge_input, .keys = merge_keys,
    .status = merge_status,
};
