/* p_merge.c - the Merge panel: choose a base and a method, give each model a weight with a
 * slider; every change (after a short pause) merges as a recipe-only model (am.merge, nothing
 * but the recipe is stored) and quick-evaluates it (am.eval, the quick suite) through the
 * Lua host, then shows the ID / OOD averages and per-task bars against the base. `s` stores
 * the merge under a name. The work is cooperative: the loop blocks while one step runs. */
#include "tui_internal.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <stdio.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"

#define MAXC 64

typedef struct {
    char *name, *base;
    int density;
} Method;

typedef struct {
    char *name, *tag;
    double score, ref;
} MTask;

typedef struct {
    int loaded;
    Method *methods;
    int nmethods, method;
    int cand[MAXC];            /* model indices (t->models) that can be weighted */
    char cand_id[MAXC][33];
    double weight[MAXC];
    int ncand, sel, top;
    int base;                  /* model index, -1 none */
    double density;
    int dirty;
    double changed;
    /* the last evaluation */
    int have;
    char id[33], err[512];
    double id_avg, ood_avg, ref_id, ref_ood, merge_s, eval_s, total_s;
    int found;
    MTask *tasks;
    int ntasks;
    int gen;                   /* t->models_gen the indices are of */
    char base_id[33];
} MergeState;

static void tasks_free(MergeState *s) {
    for (int i = 0; i < s->ntasks; i++) free(s->tasks[i].name), free(s->tasks[i].tag);
    free(s->tasks);
    s->tasks = NULL;
    s->ntasks = 0;
}

static void load_methods(Panel *p) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    if (s->methods || tui_lua_call(t, "merge_methods", 0, NULL)) return;
    lua_State *L = t->L;
    int n = (int)lua_rawlen(L, -1);
    s->methods = xcalloc((size_t)n + 1, sizeof *s->methods);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        s->methods[i].name = tui_field_str(L, -1, "name");
        s->methods[i].base = tui_field_str(L, -1, "base");
        lua_getfield(L, -1, "density");
        s->methods[i].density = lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (strcmp(s->methods[i].name, "task_arithmetic") == 0) s->method = i;
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
    double keep_w[MAXC];
    int nkeep = s->loaded ? s->ncand : 0;
    for (int i = 0; i < nkeep; i++) memcpy(keep_id[i], s->cand_id[i], 33), keep_w[i] = s->weight[i];
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
        if (i == s->base || strcmp(m->kind, "task_vector") == 0) continue;
        s->cand[s->ncand] = i;
        s->weight[s->ncand] = best >= 0 && strcmp(m->kind, "checkpoint") == 0 &&
                                      strcmp(m->parent_label, t->models[best].label) == 0 ? 0.5 : 0.0;
        memcpy(s->cand_id[s->ncand], m->id, 33);
        for (int k = 0; k < nkeep; k++)
            if (strcmp(keep_id[k], m->id) == 0) s->weight[s->ncand] = keep_w[k];
        s->ncand++;
    }
    if (s->loaded)
        for (int i = 0; i < t->nmodels; i++)
            if (strcmp(t->models[i].id, s->base_id) == 0) s->base = i;
    if (s->base >= 0) memcpy(s->base_id, t->models[s->base].id, 33);
    if (s->sel >= s->ncand) s->sel = s->ncand ? s->ncand - 1 : 0;
    s->gen = t->models_gen;
    s->loaded = 1;
    s->dirty = 1;
    s->changed = 0;
}

static void merge_enter(Panel *p) {
    MergeState *s = p->st;
    if (!s->loaded) {
        s->density = 0.5;
        load_methods(p);
        load_models(p);
    } else if (s->gen != p->tui->models_gen) {
        int d = s->dirty;
        load_models(p);
        s->dirty = d;
    }
}

static double tfield(lua_State *L, int idx, const char *k) { return tui_field_num(L, idx, k, NAN); }

/* One merge + quick eval (or, with name, the merge stored under it). */
static void run_step(Panel *p, const char *name) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    s->dirty = 0;
    if (!s->nmethods) { snprintf(s->err, sizeof s->err, "no merge methods"); return; }
    Method *me = &s->methods[s->method];
    cJSON *o = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(o, "models"),
          *weights = cJSON_AddArrayToObject(o, "weights");
    cJSON_AddStringToObject(o, "method", me->name);
    int n = 0;
    for (int i = 0; i < s->ncand; i++)
        if (s->weight[i] > 0) {
            cJSON_AddItemToArray(models, cJSON_CreateString(t->models[s->cand[i]].id));
            cJSON_AddItemToArray(weights, cJSON_CreateNumber(s->weight[i]));
            n++;
        }
    if (s->base >= 0) cJSON_AddStringToObject(o, "base", t->models[s->base].id);
    if (me->density) cJSON_AddNumberToObject(o, "density", s->density);
    if (name) cJSON_AddStringToObject(o, "name", name);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (n == 0) {
        free(json);
        snprintf(s->err, sizeof s->err, "give a model a weight (%s to raise it)", crt_utf8 ? "→" : "Right");
        s->have = 0;
        return;
    }
    /* tell the user before the loop blocks */
    attrset(crt_attr(CR_PROMPT));
    crt_put(LINES - 2, 1, COLS - 2, name ? "storing the merge..." : "merging and evaluating (quick suite)...", 1);
    attrset(crt_attr(CR_DEFAULT));
    refresh();
    double t0 = tui_now();
    int rc = tui_lua_call(t, "merge_eval", 1, (const char *const[]){json});
    free(json);
    if (rc) {
        snprintf(s->err, sizeof s->err, "%s", t->flash);
        t->flash[0] = 0;
        s->have = 0;
        return;
    }
    lua_State *L = t->L;
    int r = lua_gettop(L);
    s->err[0] = 0;
    char *id = tui_field_str(L, r, "id");
    snprintf(s->id, sizeof s->id, "%s", id);
    free(id);
    s->id_avg = tfield(L, r, "id_avg"), s->ood_avg = tfield(L, r, "ood_avg");
    s->ref_id = tfield(L, r, "ref_id_avg"), s->ref_ood = tfield(L, r, "ref_ood_avg");
    s->merge_s = tfield(L, r, "merge_s"), s->eval_s = tfield(L, r, "eval_s");
    s->total_s = tui_now() - t0;
    lua_getfield(L, r, "found");
    s->found = lua_toboolean(L, -1);
    lua_pop(L, 1);
    tasks_free(s);
    lua_getfield(L, r, "tasks");
    lua_getfield(L, r, "ref");
    int tt = r + 1, rf = r + 2;
    s->ntasks = (int)lua_rawlen(L, tt);
    s->tasks = xcalloc((size_t)s->ntasks + 1, sizeof *s->tasks);
    for (int i = 0; i < s->ntasks; i++) {
        lua_rawgeti(L, tt, i + 1);
        s->tasks[i].name = tui_field_str(L, -1, "name");
        s->tasks[i].tag = tui_field_str(L, -1, "tag");
        s->tasks[i].score = tfield(L, -1, "score");
        s->tasks[i].ref = lua_istable(L, rf) ? tfield(L, rf, s->tasks[i].name) : (double)NAN;
        lua_pop(L, 1);
    }
    lua_settop(L, r - 1);
    s->have = 1;
    tui_load_results(t);   /* the merge's and the base's quick results join the plot and Results */
    crt_logf("tui: merge %s %.12s: merge %.0f ms, quick eval %.0f ms, step %.0f ms%s", s->methods[s->method].name, s->id,
             s->merge_s * 1e3, s->eval_s * 1e3, s->total_s * 1e3, s->found ? " (found stored)" : "");
}

static void merge_tick(Panel *p) {
    MergeState *s = p->st;
    merge_enter(p);
    if (s->loaded && s->dirty && tui_now() - s->changed > 0.3) run_step(p, NULL);
}

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

static void merge_draw(Panel *p, int y, int x, int h, int w) {
    MergeState *s = p->st;
    Tui *t = p->tui;
    merge_enter(p);
    snprintf(p->title, sizeof p->title, "Merge  each change is merged as a recipe and quick-evaluated%s",
             s->have ? "" : "");
    if (s->ncand == 0) {
        crt_put(y + 1, x + 2, w - 4, "Nothing to merge: the store needs fine-tuned checkpoints of one base.", 0);
        return;
    }
    Method *me = s->nmethods ? &s->methods[s->method] : NULL;
    int cx = crt_putf(y, x + 1, w - 2, 0, "method %s", me ? me->name : "?") + x + 3;
    cx += crt_putf(y, cx, w - cx, 0, "base %s", s->base >= 0 && me && strcmp(me->base, "none") != 0 ? t->models[s->base].label
                                                  : me && strcmp(me->base, "none") == 0 ? "(not used)" : "none") + 2;
    if (me && me->density) crt_putf(y, cx, w - cx, 0, "density %.2f", s->density);
    /* left: the weights */
    int lw = w / 2 - 1, nw = lw - 22;
    if (nw < 12) nw = 12;
    int bw = lw - nw - 8;
    attrset(crt_attr(CR_COLHEAD));
    crt_putf(y + 1, x, lw, 1, " %-*s weight", lw - 8, "model");
    attrset(crt_attr(CR_DEFAULT));
    /* the weights on top, an ID vs OOD plot of the quick results below when there is room */
    int rows = h - 3, ph = 0;
    if (h - (s->ncand + 3) >= 9) {
        rows = s->ncand;
        ph = h - rows - 3;
    } else if (h >= 20) {
        rows = h / 2 - 2;
        ph = h - rows - 3;
    }
    tui_list_fit(s->sel, &s->top, s->ncand, rows);
    for (int i = 0; i < rows && s->top + i < s->ncand; i++) {
        int k = s->top + i, yy = y + 2 + i, sel = k == s->sel;
        TuiModel *m = &t->models[s->cand[k]];
        attrset(sel ? crt_attr(CR_SELECT) : s->weight[k] > 0 ? crt_attr(CR_DEFAULT) : crt_attr(CR_DIM));
        crt_putf(yy, x, nw + 1, 1, "%s%s", sel ? crt_glyphs.sel : " ", m->label);
        attrset(crt_attr(CR_DEFAULT));
        crt_put(yy, x + nw + 1, 1, crt_utf8 ? "▕" : "[", 0);
        attrset(crt_attr(CR_GRAPH));
        crt_bar(yy, x + nw + 2, bw, s->weight[k]);
        attrset(crt_attr(CR_DEFAULT));
        crt_put(yy, x + nw + 2 + bw, 1, crt_utf8 ? "▏" : "]", 0);
        crt_putf(yy, x + nw + 4 + bw, 5, 0, "%.2f", s->weight[k]);
    }
    if (ph >= 8) draw_plot(p, y + 3 + rows, x, ph, lw);
    /* right: the quick evaluation */
    int rx = x + lw + 2, rw = w - lw - 2;
    attrset(crt_attr(CR_COLHEAD));
    if (s->have)
        crt_putf(y + 1, rx, rw, 1, " quick eval  %.2f s (merge %.2f, eval %.2f)%s", s->total_s, s->merge_s, s->eval_s,
                 s->found ? " stored" : "");
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
    if (!s->have) { crt_put(y + 3, rx + 1, rw - 2, s->dirty ? "..." : "", 0); return; }
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

static int mg_move(Panel *p, int key) {
    MergeState *s = p->st;
    return tui_list_key(&s->sel, s->ncand, LINES - 7, key);
}

static void changed(MergeState *s) {
    s->dirty = 1;
    s->changed = tui_now();
}

static int mg_weight(Panel *p, int key) {
    MergeState *s = p->st;
    if (s->sel >= s->ncand) return HR_HANDLED;
    double *w = &s->weight[s->sel];
    if (key == KEY_LEFT || key == 'h' || key == '-') *w -= 0.05;
    else if (key == KEY_RIGHT || key == 'l' || key == '+') *w += 0.05;
    else if (key == '0') *w = 0;
    else if (key == '1') *w = 1;
    *w = round(*w * 100) / 100;
    if (*w < 0) *w = 0;
    if (*w > 1) *w = 1;
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

static int mg_density(Panel *p, int key) {
    MergeState *s = p->st;
    s->density += key == ']' ? 0.05 : -0.05;
    s->density = round(s->density * 100) / 100;
    if (s->density < 0.05) s->density = 0.05;
    if (s->density > 1) s->density = 1;
    changed(s);
    return HR_REDRAW;
}

static int mg_now(Panel *p, int key) {
    run_step(p, NULL);
    return HR_REDRAW;
}

static int mg_save(Panel *p, int key) {
    MergeState *s = p->st;
    if (!s->have) return HR_HANDLED;
    char name[64];
    snprintf(name, sizeof name, "%s-%.8s", s->methods[s->method].name, s->id);
    run_step(p, name);
    if (!s->err[0]) {
        tui_flash(p->tui, "stored as %s", name);
        tui_load_models(p->tui);
    }
    return HR_REDRAW;
}

static void merge_done(Panel *p) {
    MergeState *s = p->st;
    tasks_free(s);
    for (int i = 0; i < s->nmethods; i++) free(s->methods[i].name), free(s->methods[i].base);
    free(s->methods);
}

static const PanelKey merge_keys[] = {
    {KEY_UP, "↑↓", mg_move, "model"},
    {KEY_DOWN, NULL, mg_move, NULL},
    {'k', NULL, mg_move, NULL},
    {'j', NULL, mg_move, NULL},
    {KEY_LEFT, "←→", mg_weight, "weight -/+ 0.05 (0 and 1: set)"},
    {KEY_RIGHT, NULL, mg_weight, NULL},
    {'h', NULL, mg_weight, NULL},
    {'l', NULL, mg_weight, NULL},
    {'0', NULL, mg_weight, NULL},
    {'1', NULL, mg_weight, NULL},
    {'m', "m M", mg_method, "method"},
    {'M', NULL, mg_method, NULL},
    {'b', "b", mg_base, "base"},
    {'[', "[ ]", mg_density, "density"},
    {']', NULL, mg_density, NULL},
    {'\r', "Enter", mg_now, "merge and evaluate now"},
    {'\n', NULL, mg_now, NULL},
    {'s', "s", mg_save, "store the merge under a name"},
    {0},
};

const PanelClass MergePanel = {
    .name = "Merge", .id = "merge", .size = sizeof(MergeState), .enter = merge_enter, .tick = merge_tick,
    .done = merge_done, .draw = merge_draw, .keys = merge_keys,
};
