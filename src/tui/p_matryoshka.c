/* p_matryoshka.c - the Matryoshka panel: for the selected model (Enter in Models or Sweeps), a
 * metric by (layer, dim) -- the model truncated to its first `layer` layers and `dim` features
 * (am.eval's layer / dim) -- as a heat map: the quick ID average, OOD average or one task's
 * main score. Stored quick results fill the grid when the panel opens (results are keyed by
 * their config, layer and dim included, so nothing is computed twice); `c` computes the
 * missing cells, one (layer, dim, task) evaluation per turn of the loop, so keys keep
 * answering while the grid fills. */
#include "tui_internal.h"

#include <curses.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name, *tag;
} MTask;

typedef struct {
    char id[33];
    char *label, *suite;
    int *layers, nl;
    int *dims, nd;
    MTask *tasks;
    int nt;
    double *score;            /* nl x nd x nt, NAN = not evaluated */
    int loaded, gen;
    int r, c;                 /* the cursor: layer index (row), dim index (column) */
    int value;                /* 0 ID avg, 1 OOD avg, 2 the task `task` */
    int task;
    int computing;            /* `c` pressed: the tick evaluates the next missing cell */
    int done_evals, todo_evals;
    double t_start, last_eval_s;
    char error[256];
} MatState;

enum { M_ID, M_OOD, M_TASK };

static void mat_free(MatState *s) {
    free(s->label), free(s->suite), free(s->layers), free(s->dims), free(s->score);
    for (int i = 0; i < s->nt; i++) free(s->tasks[i].name), free(s->tasks[i].tag);
    free(s->tasks);
    s->label = s->suite = NULL, s->layers = s->dims = NULL, s->score = NULL, s->tasks = NULL;
    s->nl = s->nd = s->nt = 0;
}

static double *at(MatState *s, int l, int d, int k) { return &s->score[((size_t)l * (size_t)s->nd + (size_t)d) * (size_t)s->nt + (size_t)k]; }

static int *int_list(lua_State *L, int idx, const char *k, int *n) {
    lua_getfield(L, idx, k);
    *n = (int)lua_rawlen(L, -1);
    int *v = calloc((size_t)*n + 1, sizeof *v);
    for (int i = 0; i < *n; i++) {
        lua_rawgeti(L, -1, i + 1);
        v[i] = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

/* the model the panel shows: the shared selection, else the first model */
static const char *wanted(Tui *t) {
    if (t->selected[0]) return t->selected;
    return t->nmodels ? t->models[0].id : "";
}

static void mat_load(Panel *p) {
    MatState *s = p->st;
    Tui *t = p->tui;
    const char *id = wanted(t);
    mat_free(s);
    s->loaded = 1, s->gen = t->models_gen, s->computing = 0, s->error[0] = 0;
    snprintf(s->id, sizeof s->id, "%s", id);
    if (!id[0]) return;
    if (tui_lua_call(t, "matryoshka", 1, (const char *const[]){id})) {
        snprintf(s->error, sizeof s->error, "%s", t->flash);
        return;
    }
    lua_State *L = t->L;
    int x = lua_gettop(L);
    s->label = tui_field_str(L, x, "label");
    s->suite = tui_field_str(L, x, "suite");
    s->layers = int_list(L, x, "layers", &s->nl);
    s->dims = int_list(L, x, "dims", &s->nd);
    lua_getfield(L, x, "tasks");
    s->nt = (int)lua_rawlen(L, -1);
    s->tasks = calloc((size_t)s->nt + 1, sizeof *s->tasks);
    for (int i = 0; i < s->nt; i++) {
        lua_rawgeti(L, -1, i + 1);
        s->tasks[i].name = tui_field_str(L, -1, "name");
        s->tasks[i].tag = tui_field_str(L, -1, "tag");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    size_t n = (size_t)(s->nl ? s->nl : 1) * (size_t)(s->nd ? s->nd : 1) * (size_t)(s->nt ? s->nt : 1);
    s->score = malloc(n * sizeof *s->score);
    for (size_t i = 0; i < n; i++) s->score[i] = NAN;
    lua_getfield(L, x, "scores");
    for (int l = 0; l < s->nl; l++)
        for (int d = 0; d < s->nd; d++)
            for (int k = 0; k < s->nt; k++) {
                char key[300];
                snprintf(key, sizeof key, "%d:%d:%s", s->layers[l], s->dims[d], s->tasks[k].name);
                *at(s, l, d, k) = tui_field_num(L, -1, key, NAN);
            }
    lua_settop(L, x - 1);
    if (s->r >= s->nl) s->r = s->nl - 1;
    if (s->c >= s->nd) s->c = s->nd - 1;
    if (s->r < 0) s->r = s->nl - 1;   /* start on the full model's row and column */
    if (s->c < 0) s->c = s->nd - 1;
    if (s->task >= s->nt) s->task = 0;
}

static void mat_init(Panel *p) {
    MatState *s = p->st;
    s->r = s->c = -1;
}

static void mat_enter(Panel *p) {
    MatState *s = p->st;
    if (!s->loaded || s->gen != p->tui->models_gen || strcmp(s->id, wanted(p->tui)) != 0) {
        s->r = s->c = -1;
        mat_load(p);
    }
}

static void mat_done(Panel *p) { mat_free(p->st); }

static double cell_value(MatState *s, int l, int d) {
    if (s->value == M_TASK) return s->nt ? *at(s, l, d, s->task) : (double)NAN;
    const char *tag = s->value == M_ID ? "id" : "ood";
    double sum = 0;
    int n = 0, want = 0;
    for (int k = 0; k < s->nt; k++) {
        if (strcmp(s->tasks[k].tag, tag) != 0) continue;
        want++;
        double v = *at(s, l, d, k);
        if (!isnan(v)) sum += v, n++;
    }
    return n && n == want ? sum / n : (double)NAN;   /* an average over some of the tasks would mislead */
}

static int missing(MatState *s, int *ml, int *md, int *mk) {
    int n = 0;
    /* the cursor's cell first, then row by row from the full model down */
    for (int k = 0; k < s->nt; k++)
        if (s->r >= 0 && s->c >= 0 && isnan(*at(s, s->r, s->c, k))) {
            if (!n) *ml = s->r, *md = s->c, *mk = k;
            n++;
        }
    for (int l = s->nl - 1; l >= 0; l--)
        for (int d = s->nd - 1; d >= 0; d--)
            for (int k = 0; k < s->nt; k++)
                if (!(l == s->r && d == s->c) && isnan(*at(s, l, d, k))) {
                    if (!n) *ml = l, *md = d, *mk = k;
                    n++;
                }
    return n;
}

/* one evaluation per turn of the loop while computing */
static void mat_tick(Panel *p) {
    MatState *s = p->st;
    Tui *t = p->tui;
    if (!s->computing) return;
    int l, d, k;
    if (missing(s, &l, &d, &k) == 0) {
        s->computing = 0;
        tui_flash(t, "Matryoshka grid of %s complete (%d evaluations, %.1f s)", s->label, s->done_evals, tui_now() - s->t_start);
        return;
    }
    char ls[16], ds[16];
    snprintf(ls, sizeof ls, "%d", s->layers[l]);
    snprintf(ds, sizeof ds, "%d", s->dims[d]);
    double t0 = tui_now();
    if (tui_lua_call(t, "matryoshka_eval", 5, (const char *const[]){s->id, ls, ds, s->tasks[k].name, s->tasks[k].tag})) {
        s->computing = 0;
        snprintf(s->error, sizeof s->error, "%s", t->flash);
        return;
    }
    double v = tui_field_num(t->L, -1, "score", NAN);
    lua_pop(t->L, 1);
    *at(s, l, d, k) = isnan(v) ? -(double)INFINITY : v;   /* an undefined score is not missing: do not retry it */
    s->done_evals++;
    s->last_eval_s = tui_now() - t0;
    if (missing(s, &l, &d, &k) == 0) {
        s->computing = 0;
        tui_flash(t, "Matryoshka grid of %s complete (%d evaluations, %.1f s)", s->label, s->done_evals, tui_now() - s->t_start);
    }
}

static void mat_draw(Panel *p, int y, int x, int h, int w) {
    MatState *s = p->st;
    Tui *t = p->tui;
    if (!s->loaded || s->gen != t->models_gen || strcmp(s->id, wanted(t)) != 0) {
        s->r = s->c = -1;
        mat_load(p);
    }
    const char *vname = s->value == M_ID ? "ID avg" : s->value == M_OOD ? "OOD avg" : s->nt ? s->tasks[s->task].name : "-";
    snprintf(p->title, sizeof p->title, "Matryoshka  %s  %s by (layer, dim), quick mode", s->label ? s->label : "-", vname);
    if (!s->id[0]) {
        crt_put(y + 1, x + 2, w - 4, "No models in this store.", 0);
        return;
    }
    if (s->error[0] && !s->nl) {
        attrset(crt_attr(CR_ERROR));
        crt_putf(y + 1, x + 2, w - 4, 0, "%s", s->error);
        attrset(crt_attr(CR_DEFAULT));
        return;
    }
    if (s->nt == 0) {
        crt_put(y + 1, x + 2, w - 4, "No tasks: prepare the suite (amalgam prepare) or evaluate this model first.", 0);
        return;
    }
    /* the range of the shown value over the grid */
    double lo = INFINITY, hi = -INFINITY;
    int best = -1, filled = 0, total = s->nl * s->nd * s->nt;
    for (int l = 0; l < s->nl; l++)
        for (int d = 0; d < s->nd; d++) {
            for (int k = 0; k < s->nt; k++) filled += !isnan(*at(s, l, d, k));
            double v = cell_value(s, l, d);
            if (isnan(v) || isinf(v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v, best = l * s->nd + d;
        }
    crt_putf(y, x + 1, w - 2, 0, "model %.12s  tasks: %s (%d)  cells %d x %d  evaluated %d/%d", s->id, s->suite, s->nt, s->nl,
             s->nd, filled, total);
    int cw = 8, rlw = 9;
    int gy = y + 2;
    attrset(crt_attr(CR_COLHEAD));
    mvhline(gy, x, ' ', w);
    crt_put(gy, x + 1, rlw, "layer", 0);
    crt_putf(gy, x + 1 + rlw, w - rlw - 2, 0, "dim %s", crt_utf8 ? "\xe2\x86\x92" : "->");
    attrset(crt_attr(CR_DEFAULT));
    int fit_c = (w - rlw - 2) / cw;
    int c0 = s->c >= fit_c ? s->c - fit_c + 1 : 0;
    for (int d = c0; d < s->nd && d - c0 < fit_c; d++) {
        attrset(d == s->c ? crt_attr(CR_DEFAULT) | (int)A_BOLD : crt_attr(CR_DIM));
        crt_putf(gy + 1, x + 1 + rlw + (d - c0) * cw, cw - 1, 0, "%*d", cw - 2, s->dims[d]);
    }
    attrset(crt_attr(CR_DEFAULT));
    int fit_r = h - 8;
    if (fit_r < 1) fit_r = 1;
    /* the last layer on top, as the model's output is */
    int rows = s->nl < fit_r ? s->nl : fit_r;
    int top = s->nl - 1;
    if (s->r < top - rows + 1) top = s->r + rows - 1;
    for (int i = 0; i < rows; i++) {
        int l = top - i;
        if (l < 0) break;
        int yy = gy + 2 + i;
        attrset(l == s->r ? crt_attr(CR_DEFAULT) | (int)A_BOLD : crt_attr(CR_DEFAULT));
        crt_putf(yy, x + 1, rlw, 1, "%3d", s->layers[l]);
        for (int d = c0; d < s->nd && d - c0 < fit_c; d++) {
            double v = cell_value(s, l, d);
            tui_heat_cell(yy, x + 1 + rlw + (d - c0) * cw, cw, isinf(v) ? (double)NAN : v, lo, hi, l * s->nd + d == best,
                          l == s->r && d == s->c);
        }
        tui_heat_edge(yy, x + 1 + rlw + (s->nd - c0 < fit_c ? s->nd - c0 : fit_c) * cw - 1);
    }
    int iy = gy + 2 + rows + 1;
    double cv = s->nl && s->nd ? cell_value(s, s->r, s->c) : (double)NAN;
    char b[16];
    tui_fmt_score(b, sizeof b, isinf(cv) ? (double)NAN : cv);
    crt_putf(iy, x + 1, w - 2, 0, "layer %d  dim %d  %s %s", s->nl ? s->layers[s->r] : 0, s->nd ? s->dims[s->c] : 0, vname, b);
    int ml = 0, md = 0, mk = 0, left = s->computing ? missing(s, &ml, &md, &mk) : 0;
    if (left) {
        attrset(crt_attr(CR_PROMPT));
        crt_putf(iy + 1, x + 1, w - 2, 0, "computing: %d left, next layer %d dim %d %s (last %.2f s; c pauses)", left,
                 s->layers[ml], s->dims[md], s->tasks[mk].name, s->last_eval_s);
    } else if (s->error[0]) {
        attrset(crt_attr(CR_ERROR));
        crt_putf(iy + 1, x + 1, w - 2, 0, "%s", s->error);
    } else if (filled < total) {
        attrset(crt_attr(CR_DIM));
        crt_putf(iy + 1, x + 1, w - 2, 0, "%d of %d evaluations missing: c computes them (stored, reused next time)",
                 total - filled, total);
    }
    attrset(crt_attr(CR_DEFAULT));
    if (best >= 0) tui_heat_legend(iy + 2, x + 1, w - 2, lo, hi);
}

static int mat_move(Panel *p, int key) {
    MatState *s = p->st;
    switch (key) {
    case KEY_UP: case 'k': s->r++; break;   /* up: a later layer (drawn above) */
    case KEY_DOWN: case 'j': s->r--; break;
    case KEY_LEFT: case 'h': s->c--; break;
    case KEY_RIGHT: case 'l': s->c++; break;
    }
    if (s->r >= s->nl) s->r = s->nl - 1;
    if (s->c >= s->nd) s->c = s->nd - 1;
    if (s->r < 0) s->r = 0;
    if (s->c < 0) s->c = 0;
    return HR_REDRAW;
}

static int mat_compute(Panel *p, int key) {
    MatState *s = p->st;
    if (!s->nt) return HR_HANDLED;
    s->computing = !s->computing;
    s->error[0] = 0;
    if (s->computing) {
        s->t_start = tui_now();
        s->done_evals = 0;
    }
    return HR_REDRAW;
}

static int mat_value(Panel *p, int key) {
    MatState *s = p->st;
    s->value = (s->value + 1) % 3;
    return HR_REDRAW;
}

static int mat_task(Panel *p, int key) {
    MatState *s = p->st;
    if (!s->nt) return HR_HANDLED;
    s->value = M_TASK;
    s->task = (s->task + (key == 'T' ? s->nt - 1 : 1)) % s->nt;
    return HR_REDRAW;
}

/* [ ]: the previous / next model of the Models list (task vectors skipped) becomes the selection */
static int mat_model(Panel *p, int key) {
    MatState *s = p->st;
    Tui *t = p->tui;
    if (!t->nmodels) return HR_HANDLED;
    int i = -1, step = key == '[' ? t->nmodels - 1 : 1;
    for (int k = 0; k < t->nmodels; k++)
        if (strcmp(t->models[k].id, s->id) == 0) i = k;
    if (i < 0) i = 0;
    for (int n = 0; n < t->nmodels; n++) {
        i = (i + step) % t->nmodels;
        if (strcmp(t->models[i].kind, "task_vector") != 0) break;
    }
    snprintf(t->selected, sizeof t->selected, "%s", t->models[i].id);
    s->r = s->c = -1;
    mat_load(p);
    return HR_REDRAW;
}

static int mat_reload(Panel *p, int key) {
    mat_load(p);
    return HR_REDRAW;
}

static const PanelKey mat_keys[] = {
    {KEY_UP, "\xe2\x86\x91\xe2\x86\x93\xe2\x86\x90\xe2\x86\x92", mat_move, "move the cursor: layer, dim (also h j k l)"},
    {KEY_DOWN, NULL, mat_move, NULL},
    {KEY_LEFT, NULL, mat_move, NULL},
    {KEY_RIGHT, NULL, mat_move, NULL},
    {'k', NULL, mat_move, NULL},
    {'j', NULL, mat_move, NULL},
    {'h', NULL, mat_move, NULL},
    {'l', NULL, mat_move, NULL},
    {'c', "c", mat_compute, "compute the missing cells, one evaluation per turn (again: pause)"},
    {'v', "v", mat_value, "cells: ID average / OOD average / one task"},
    {'t', "t T", mat_task, "the task shown (next / previous)"},
    {'T', NULL, mat_task, NULL},
    {'[', "[ ]", mat_model, "the previous / next model (the selection the other panels share)"},
    {']', NULL, mat_model, NULL},
    {'u', "u", mat_reload, "re-read the stored results"},
    {0},
};

const PanelClass MatryoshkaPanel = {
    .name = "Matryoshka", .id = "matryoshka", .size = sizeof(MatState), .init = mat_init, .enter = mat_enter,
    .done = mat_done, .tick = mat_tick, .draw = mat_draw, .keys = mat_keys,
};
