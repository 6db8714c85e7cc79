/* p_sweeps.c - the Sweeps panel: the sweeps am.sweep recorded (am.sweeps; read through
 * amalgam.tui's sweeps, which adds each point's ID / OOD average from its stored results) drawn
 * as a heat map: rows = the first grid axis, columns = the others (a 1-D sweep is one row). A
 * cell shows the ID average, the OOD average or a blend of both (v cycles, + - move the blend
 * weight), on a colour ramp, or on shade glyphs without colours; the best cell is marked.
 * Enter selects the cell's model for the other panels (Models, Matryoshka). */
#include "tui_internal.h"

#include <curses.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char id[33];
    double id_avg, ood_avg;   /* NAN: no result */
} SweepCell;

typedef struct {
    char *id, *title, *mode, *row_key, *col_key, *created;
    char **rows, **cols;
    int nrows, ncols;
    SweepCell *cells;         /* nrows x ncols; id "" = no point there */
} Sweep;

typedef struct {
    Sweep *sw;
    int n, cur;               /* the shown sweep */
    int r, c;                 /* the cell cursor */
    int value;                /* 0 ID average, 1 OOD average, 2 blend */
    int blend;                /* the blend's ID weight in tenths (0..10) */
    int gen;                  /* models_gen the list was read at */
    int loaded;
    double load_ms;
} SweepsState;

enum { V_ID, V_OOD, V_BLEND };

static void sweeps_free(SweepsState *s) {
    for (int i = 0; i < s->n; i++) {
        Sweep *w = &s->sw[i];
        free(w->id), free(w->title), free(w->mode), free(w->row_key), free(w->col_key), free(w->created);
        for (int k = 0; k < w->nrows; k++) free(w->rows[k]);
        for (int k = 0; k < w->ncols; k++) free(w->cols[k]);
        free(w->rows), free(w->cols), free(w->cells);
    }
    free(s->sw);
    s->sw = NULL;
    s->n = 0;
}

static char **str_list(lua_State *L, int idx, const char *k, int *n) {
    lua_getfield(L, idx, k);
    *n = (int)lua_rawlen(L, -1);
    char **v = calloc((size_t)*n + 1, sizeof *v);
    for (int i = 0; i < *n; i++) {
        lua_rawgeti(L, -1, i + 1);
        v[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

static void sweeps_load(Panel *p) {
    SweepsState *s = p->st;
    Tui *t = p->tui;
    double t0 = tui_now();
    char keep[64] = "";
    if (s->cur >= 0 && s->cur < s->n) snprintf(keep, sizeof keep, "%s", s->sw[s->cur].id);
    sweeps_free(s);
    s->loaded = 1;
    s->gen = t->models_gen;
    if (tui_lua_call(t, "sweeps", 0, NULL)) return;
    lua_State *L = t->L;
    int top = lua_gettop(L);
    int n = (int)lua_rawlen(L, top);
    s->sw = calloc((size_t)n + 1, sizeof *s->sw);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, top, i + 1);
        int x = lua_gettop(L);
        Sweep *w = &s->sw[s->n++];
        w->id = tui_field_str(L, x, "id");
        w->title = tui_field_str(L, x, "title");
        w->mode = tui_field_str(L, x, "mode");
        w->row_key = tui_field_str(L, x, "row_key");
        w->col_key = tui_field_str(L, x, "col_key");
        w->created = tui_field_str(L, x, "created");
        w->rows = str_list(L, x, "rows", &w->nrows);
        w->cols = str_list(L, x, "cols", &w->ncols);
        if (w->nrows < 1) w->nrows = 1;
        if (w->ncols < 1) w->ncols = 1;
        w->cells = calloc((size_t)(w->nrows * w->ncols), sizeof *w->cells);
        for (int k = 0; k < w->nrows * w->ncols; k++) w->cells[k].id_avg = w->cells[k].ood_avg = NAN;
        lua_getfield(L, x, "cells");
        int nc = (int)lua_rawlen(L, -1);
        for (int k = 0; k < nc; k++) {
            lua_rawgeti(L, -1, k + 1);
            int r = (int)tui_field_num(L, -1, "r", 0) - 1, c = (int)tui_field_num(L, -1, "c", 0) - 1;
            if (r >= 0 && r < w->nrows && c >= 0 && c < w->ncols) {
                SweepCell *cell = &w->cells[r * w->ncols + c];
                char *id = tui_field_str(L, -1, "id");
                snprintf(cell->id, sizeof cell->id, "%s", id);
                free(id);
                cell->id_avg = tui_field_num(L, -1, "id_avg", NAN);
                cell->ood_avg = tui_field_num(L, -1, "ood_avg", NAN);
            }
            lua_pop(L, 1);
        }
        lua_settop(L, top);
    }
    lua_settop(L, top - 1);
    s->cur = 0;
    for (int i = 0; i < s->n; i++)
        if (keep[0] && strcmp(s->sw[i].id, keep) == 0) s->cur = i;
    s->load_ms = (tui_now() - t0) * 1e3;
    crt_logf("tui: %d sweeps read in %.0f ms", s->n, s->load_ms);
}

static void sweeps_init(Panel *p) {
    SweepsState *s = p->st;
    s->blend = 5;
}

static void sweeps_enter(Panel *p) {
    SweepsState *s = p->st;
    if (!s->loaded || s->gen != p->tui->models_gen) sweeps_load(p);
}

static void sweeps_done(Panel *p) { sweeps_free(p->st); }

static double cell_value(const SweepsState *s, const SweepCell *c) {
    if (!c->id[0]) return NAN;
    if (s->value == V_ID) return c->id_avg;
    if (s->value == V_OOD) return c->ood_avg;
    if (isnan(c->id_avg) || isnan(c->ood_avg)) return NAN;
    double a = s->blend / 10.0;
    return a * c->id_avg + (1 - a) * c->ood_avg;
}

/* the best cell of the shown value (-1: none has a value) */
static int best_cell(const SweepsState *s, const Sweep *w, double *lo, double *hi) {
    int best = -1;
    *lo = INFINITY, *hi = -INFINITY;
    for (int k = 0; k < w->nrows * w->ncols; k++) {
        double v = cell_value(s, &w->cells[k]);
        if (isnan(v)) continue;
        if (v < *lo) *lo = v;
        if (v > *hi) *hi = v, best = k;
    }
    return best;
}

static const char *value_name(const SweepsState *s, char *buf, size_t cap) {
    if (s->value == V_ID) return "ID avg";
    if (s->value == V_OOD) return "OOD avg";
    snprintf(buf, cap, "%.1f ID + %.1f OOD", s->blend / 10.0, 1 - s->blend / 10.0);
    return buf;
}

/* five levels: a colour ramp, or shade glyphs when there are no colours */
static const ColorRole heat_roles[5] = {CR_HEAT0, CR_HEAT1, CR_HEAT2, CR_HEAT3, CR_HEAT4};
static const char *const shade_utf8[5] = {" ", "\xe2\x96\x91", "\xe2\x96\x92", "\xe2\x96\x93", "\xe2\x96\x88"};
static const char *const shade_ascii[5] = {" ", ".", ":", "+", "#"};

static int level_of(double v, double lo, double hi) {
    if (isnan(v)) return -1;
    if (!(hi > lo)) return 4;
    int l = (int)((v - lo) / (hi - lo) * 5);
    return l > 4 ? 4 : l < 0 ? 0 : l;
}

/* one cell of the heat map at (y, x), cw columns: [shade][value][best mark] */
void tui_heat_cell(int y, int x, int cw, double v, double lo, double hi, int best, int cursor) {
    int l = level_of(v, lo, hi);
    char num[16];
    if (isnan(v)) snprintf(num, sizeof num, "%s", crt_utf8 ? "\xe2\x80\x94" : "-");
    else snprintf(num, sizeof num, "%.1f", v * 100);
    int attr = l < 0 ? crt_attr(CR_DIM) : crt_colors ? crt_attr(heat_roles[l]) : crt_attr(CR_DEFAULT);
    if (best) attr |= (int)A_BOLD;
    /* the cursor keeps the cell's colour (a selection colour would read as a level): with
     * colours an arrow, without them reverse video */
    if (cursor) attr = crt_colors ? attr | (int)A_BOLD : (int)(A_REVERSE | A_BOLD);
    attrset(attr);
    const char *shade = l < 0 || crt_colors ? " " : (crt_utf8 ? shade_utf8 : shade_ascii)[l];
    if (cursor && crt_colors) shade = crt_glyphs.sel;
    char buf[64];
    snprintf(buf, sizeof buf, "%s%*s%s", shade, cw - 3, num, best ? crt_glyphs.front : " ");
    crt_put(y, x, cw - 1, buf, 1);
    attrset(crt_attr(CR_DEFAULT));
}

/* the map's right edge after a row's last cell (also ends the cell's colours on that line) */
void tui_heat_edge(int y, int x) {
    attrset(crt_attr(CR_DIM));
    crt_put(y, x, 1, crt_glyphs.vline, 0);
    attrset(crt_attr(CR_DEFAULT));
}

/* the legend: the ramp's five levels from lo to hi */
void tui_heat_legend(int y, int x, int w, double lo, double hi) {
    if (w < 30 || isnan(lo) || isinf(lo)) return;
    int cx = x + crt_putf(y, x, w, 0, "%.1f ", lo * 100);
    for (int l = 0; l < 5; l++) {
        attrset(crt_colors ? crt_attr(heat_roles[l]) : crt_attr(CR_DEFAULT));
        const char *g = crt_colors ? " " : (crt_utf8 ? shade_utf8 : shade_ascii)[l];
        char b[16];
        snprintf(b, sizeof b, "%s%s", g, g);
        cx += crt_put(y, cx, 2, b, 0);
    }
    attrset(crt_attr(CR_DEFAULT));
    crt_putf(y, cx, w - (cx - x), 0, " %.1f  %s best", hi * 100, crt_glyphs.front);
}

/* "density=0.5 lambda=1" for the cell (r, c) */
static void point_desc(const Sweep *w, int r, int c, char *buf, size_t cap) {
    if (w->row_key[0]) snprintf(buf, cap, "%s=%s %s=%s", w->row_key, w->rows[r], w->col_key, w->cols[c]);
    else snprintf(buf, cap, "%s=%s", w->col_key, w->cols[c]);
}

static void sweeps_draw(Panel *p, int y, int x, int h, int w) {
    SweepsState *s = p->st;
    Tui *t = p->tui;
    if (!s->loaded || s->gen != t->models_gen) sweeps_load(p);
    char vb[48];
    const char *vname = value_name(s, vb, sizeof vb);
    snprintf(p->title, sizeof p->title, "Sweeps  %d recorded  heat map: %s", s->n, vname);
    if (s->n == 0) {
        crt_put(y + 1, x + 2, w - 4, "No sweeps recorded in this store. Run one:", 0);
        crt_put(y + 2, x + 4, w - 6, "amalgam sweep --method ties --base B M1 M2 --grid density=0.2,0.5,0.8 --grid lambda=0.5,1", 0);
        crt_put(y + 3, x + 2, w - 4, "or am.sweep{...} from a recipe or the Lua console (F7).", 0);
        return;
    }
    if (s->cur >= s->n) s->cur = s->n - 1;
    /* the list of sweeps: up to 3 rows around the shown one */
    int lh = s->n < 3 ? s->n : 3, ltop = s->cur - lh / 2;
    if (ltop > s->n - lh) ltop = s->n - lh;
    if (ltop < 0) ltop = 0;
    for (int i = 0; i < lh; i++) {
        Sweep *w2 = &s->sw[ltop + i];
        int sel = ltop + i == s->cur;
        attrset(sel ? crt_attr(CR_SELECT) : crt_attr(CR_DEFAULT));
        if (sel) mvhline(y + i, x, ' ', w);
        crt_putf(y + i, x, w, 0, "%s%-8.8s %-5s %dx%d  %s  %.19s", sel ? crt_glyphs.sel : " ", w2->id, w2->mode, w2->nrows,
                 w2->ncols, w2->title, w2->created);
    }
    attrset(crt_attr(CR_DEFAULT));
    Sweep *sw = &s->sw[s->cur];
    if (s->r >= sw->nrows) s->r = sw->nrows - 1;
    if (s->c >= sw->ncols) s->c = sw->ncols - 1;
    if (s->r < 0) s->r = 0;
    if (s->c < 0) s->c = 0;
    double lo, hi;
    int best = best_cell(s, sw, &lo, &hi);
    /* the map: row labels | one column per value of the column axes, scrolled to the cursor */
    int gy = y + lh + 1;
    int rlw = crt_width(sw->row_key) + 1;
    for (int r = 0; r < sw->nrows; r++)
        if (crt_width(sw->rows[r]) + 1 > rlw) rlw = crt_width(sw->rows[r]) + 1;
    if (rlw > w / 3) rlw = w / 3;
    int cw = 8;
    for (int c = 0; c < sw->ncols; c++)
        if (crt_width(sw->cols[c]) + 2 > cw) cw = crt_width(sw->cols[c]) + 2;
    if (cw > 16) cw = 16;
    int fit_c = (w - rlw - 2) / cw;
    if (fit_c < 1) fit_c = 1;
    int c0 = s->c >= fit_c ? s->c - fit_c + 1 : 0;
    int fit_r = h - (gy - y) - 5;
    if (fit_r < 1) fit_r = 1;
    int r0 = s->r >= fit_r ? s->r - fit_r + 1 : 0;
    attrset(crt_attr(CR_COLHEAD));
    mvhline(gy, x, ' ', w);
    crt_putf(gy, x + 1, rlw, 0, "%s", sw->row_key[0] ? sw->row_key : " ");
    crt_putf(gy, x + 1 + rlw, w - rlw - 1, 0, "%s %s", sw->col_key, crt_glyphs.delta[0] == 'd' ? "->" : "\xe2\x86\x92");
    attrset(crt_attr(CR_DEFAULT));
    for (int c = c0; c < sw->ncols && c - c0 < fit_c; c++) {
        attrset(c == s->c ? crt_attr(CR_COLHEAD) | (int)A_BOLD : crt_attr(CR_DIM));
        crt_putf(gy + 1, x + 1 + rlw + (c - c0) * cw, cw - 1, 0, "%*s", cw - 2, sw->cols[c]);
    }
    attrset(crt_attr(CR_DEFAULT));
    for (int r = r0; r < sw->nrows && r - r0 < fit_r; r++) {
        int yy = gy + 2 + (r - r0);
        attrset(r == s->r ? crt_attr(CR_DEFAULT) | (int)A_BOLD : crt_attr(CR_DEFAULT));
        crt_putf(yy, x + 1, rlw, 1, "%s", sw->rows[r]);
        for (int c = c0; c < sw->ncols && c - c0 < fit_c; c++) {
            int k = r * sw->ncols + c;
            tui_heat_cell(yy, x + 1 + rlw + (c - c0) * cw, cw, cell_value(s, &sw->cells[k]), lo, hi, k == best,
                          r == s->r && c == s->c);
        }
        tui_heat_edge(yy, x + 1 + rlw + (sw->ncols - c0 < fit_c ? sw->ncols - c0 : fit_c) * cw - 1);
    }
    /* the cursor's point and the best one */
    int iy = gy + 2 + (sw->nrows - r0 < fit_r ? sw->nrows - r0 : fit_r) + 1;
    SweepCell *cc = &sw->cells[s->r * sw->ncols + s->c];
    char a[16], b[16];
    tui_fmt_score(a, sizeof a, cc->id_avg);
    tui_fmt_score(b, sizeof b, cc->ood_avg);
    char pd[200];
    point_desc(sw, s->r, s->c, pd, sizeof pd);
    crt_putf(iy, x + 1, w - 2, 0, "%s  ID %s  OOD %s  model %.12s%s", pd, a, b, cc->id[0] ? cc->id : "-",
             cc->id[0] ? "  (Enter selects it)" : "");
    if (best >= 0) {
        SweepCell *bc = &sw->cells[best];
        attrset(crt_attr(CR_PARETO));
        point_desc(sw, best / sw->ncols, best % sw->ncols, pd, sizeof pd);
        crt_putf(iy + 1, x + 1, w - 2, 0, "%s best %s %.1f at %s (%s)", crt_glyphs.front, vname, hi * 100, pd,
                 tui_model_label(t, bc->id));
        attrset(crt_attr(CR_DEFAULT));
        tui_heat_legend(iy + 2, x + 1, w - 2, lo, hi);
    } else {
        attrset(crt_attr(CR_DIM));
        crt_putf(iy + 1, x + 1, w - 2, 0, "no point has %s results (%s mode): amalgam eval on the points, or sweep with eval",
                 vname, sw->mode);
        attrset(crt_attr(CR_DEFAULT));
    }
}

static int sw_move(Panel *p, int key) {
    SweepsState *s = p->st;
    if (s->n == 0) return HR_HANDLED;
    switch (key) {
    case KEY_UP: case 'k': s->r--; break;
    case KEY_DOWN: case 'j': s->r++; break;
    case KEY_LEFT: case 'h': s->c--; break;
    case KEY_RIGHT: case 'l': s->c++; break;
    case KEY_HOME: s->r = s->c = 0; break;
    }
    Sweep *w = &s->sw[s->cur];
    if (s->r >= w->nrows) s->r = w->nrows - 1;
    if (s->c >= w->ncols) s->c = w->ncols - 1;
    if (s->r < 0) s->r = 0;
    if (s->c < 0) s->c = 0;
    return HR_REDRAW;
}

static int sw_next(Panel *p, int key) {
    SweepsState *s = p->st;
    if (s->n == 0) return HR_HANDLED;
    s->cur = (s->cur + (key == '[' || key == KEY_PPAGE ? s->n - 1 : 1)) % s->n;
    s->r = s->c = 0;
    return HR_REDRAW;
}

static int sw_value(Panel *p, int key) {
    SweepsState *s = p->st;
    s->value = (s->value + 1) % 3;
    return HR_REDRAW;
}

static int sw_blend(Panel *p, int key) {
    SweepsState *s = p->st;
    s->value = V_BLEND;
    s->blend += key == '+' || key == '=' ? 1 : -1;
    if (s->blend < 0) s->blend = 0;
    if (s->blend > 10) s->blend = 10;
    return HR_REDRAW;
}

static int sw_best(Panel *p, int key) {
    SweepsState *s = p->st;
    if (s->n == 0) return HR_HANDLED;
    double lo, hi;
    Sweep *w = &s->sw[s->cur];
    int b = best_cell(s, w, &lo, &hi);
    if (b >= 0) s->r = b / w->ncols, s->c = b % w->ncols;
    return HR_REDRAW;
}

/* Enter: the cell's model becomes the selected model (the Models list and the Matryoshka
 * panel follow it); the Models panel is shown with it selected */
static int sw_select(Panel *p, int key) {
    SweepsState *s = p->st;
    Tui *t = p->tui;
    if (s->n == 0) return HR_HANDLED;
    SweepCell *c = &s->sw[s->cur].cells[s->r * s->sw[s->cur].ncols + s->c];
    if (!c->id[0]) return HR_HANDLED;
    int known = 0;
    for (int i = 0; i < t->nmodels; i++) known |= strcmp(t->models[i].id, c->id) == 0;
    if (!known) { tui_flash(t, "model %.12s is not in the store (removed?)", c->id); return HR_REDRAW; }
    snprintf(t->selected, sizeof t->selected, "%s", c->id);
    tui_flash(t, "selected %s (the sweep point)", tui_model_label(t, c->id));
    tui_switch(t, "models");
    return HR_REDRAW;
}

static int sw_reload(Panel *p, int key) {
    sweeps_load(p);
    return HR_REDRAW;
}

static const PanelKey sweeps_keys[] = {
    {KEY_UP, "\xe2\x86\x91\xe2\x86\x93\xe2\x86\x90\xe2\x86\x92", sw_move, "move the cell cursor (also h j k l)"},
    {KEY_DOWN, NULL, sw_move, NULL},
    {KEY_LEFT, NULL, sw_move, NULL},
    {KEY_RIGHT, NULL, sw_move, NULL},
    {'k', NULL, sw_move, NULL},
    {'j', NULL, sw_move, NULL},
    {'h', NULL, sw_move, NULL},
    {'l', NULL, sw_move, NULL},
    {KEY_HOME, NULL, sw_move, NULL},
    {'[', "[ ]", sw_next, "previous / next sweep (also PgUp PgDn)"},
    {']', NULL, sw_next, NULL},
    {KEY_PPAGE, NULL, sw_next, NULL},
    {KEY_NPAGE, NULL, sw_next, NULL},
    {'v', "v", sw_value, "cells: ID average / OOD average / blend"},
    {'+', "+ -", sw_blend, "blend: more / less ID weight"},
    {'=', NULL, sw_blend, NULL},
    {'-', NULL, sw_blend, NULL},
    {'b', "b", sw_best, "cursor to the best cell"},
    {'\r', "Enter", sw_select, "select the cell's model (Models, Matryoshka)"},
    {'\n', NULL, sw_select, NULL},
    {KEY_ENTER, NULL, sw_select, NULL},
    {'u', "u", sw_reload, "re-read the sweeps"},
    {0},
};

const PanelClass SweepsPanel = {
    .name = "Sweeps", .id = "sweeps", .size = sizeof(SweepsState), .init = sweeps_init, .enter = sweeps_enter,
    .done = sweeps_done, .draw = sweeps_draw, .keys = sweeps_keys,
};
