/* p_results.c - the Results panel: models as rows, tasks as columns grouped ID | OOD with
 * both averages, deltas against a reference row, gains green and losses red (within half a
 * point dim), sortable by any column. Full and quick results are separate tables: `m`
 * switches, the title says which one is shown, and they are never mixed in one row. */
#include "tui_internal.h"

#include <curses.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Within noise is am.compare's call (lua/amalgam/compare.lua, Compare:test_deltas through
 * amalgam.tui's noise): a paired permutation test per task on the stored per-example scores,
 * |Δ| <= 1.96 SE for the averages. A delta without a test (results stored without per-example
 * scores or SEs) is coloured by its sign and counted in the legend as untested. */
enum { NZ_UNTESTED = -1, NZ_BEYOND = 0, NZ_WITHIN = 1 };

typedef struct {
    int sel, top;        /* sel: position in the sorted order */
    int list_y;          /* the screen row of the first model row (mouse clicks) */
    int col;             /* column cursor: 0 model, 1 ID avg, 2 OOD avg, 3.. tasks */
    int sort_col, sort_desc;
    int left;            /* first task column shown */
    int show_delta;      /* task cells show Δ instead of the score */
    int *order;
    int norder, nshown;  /* order holds every row; the first nshown match the filter */
    char filter[64];
    int editing;         /* typing the filter after `/` */
    signed char *noise;  /* nrows x (ntasks + 2): NZ_* per task, then ID avg, OOD avg */
    char noise_ref[33], noise_mode[8];
    int noise_gen, noise_rows, untested, tested;
} ResultsState;

static TuiResults *cur_res;   /* for qsort */
static int cur_col, cur_desc;

static double cell(TuiResults *r, int row, int col) {
    TuiRow *x = &r->rows[row];
    if (col == 1) return x->id_avg;
    if (col == 2) return x->ood_avg;
    if (col >= 3 && col - 3 < r->ntasks) return x->scores[col - 3];
    return NAN;
}

static int cmp_rows(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (cur_col == 0) {
        int c = strcmp(cur_res->rows[i].name, cur_res->rows[j].name);
        return cur_desc ? -c : c;
    }
    double x = cell(cur_res, i, cur_col), y = cell(cur_res, j, cur_col);
    if (isnan(x) != isnan(y)) return isnan(x) ? 1 : -1;   /* missing last either way */
    if (isnan(x) || x == y) return i - j;
    return (x < y ? -1 : 1) * (cur_desc ? -1 : 1);
}

static void resort(Panel *p) {
    ResultsState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    int keep = s->sel >= 0 && s->sel < s->norder ? s->order[s->sel] : -1;
    free(s->order);
    s->norder = r->nrows;
    s->order = malloc(sizeof(int) * (size_t)(r->nrows + 1));
    for (int i = 0; i < r->nrows; i++) s->order[i] = i;
    cur_res = r, cur_col = s->sort_col, cur_desc = s->sort_desc;
    qsort(s->order, (size_t)r->nrows, sizeof(int), cmp_rows);
    /* the rows matching the filter first (a stable partition keeps the sort) */
    int k = 0;
    s->nshown = 0;
    int *tmp = malloc(sizeof(int) * (size_t)(r->nrows + 1));
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < r->nrows; i++) {
            int m = !s->filter[0] || strstr(r->rows[s->order[i]].name, s->filter) != NULL;
            if (m == !pass) tmp[k++] = s->order[i];
            if (pass == 0 && m) s->nshown = k;
        }
    memcpy(s->order, tmp, sizeof(int) * (size_t)r->nrows);
    free(tmp);
    for (int i = 0; i < s->nshown; i++)
        if (s->order[i] == keep) s->sel = i;
    if (s->sel >= s->nshown) s->sel = s->nshown - 1;
    if (s->sel < 0) s->sel = 0;
}

static void results_init(Panel *p) {
    ResultsState *s = p->st;
    s->sort_col = 2;
    s->sort_desc = 1;
    s->col = 2;
}

/* the selected model (t->selected) follows the cursor, and the cursor the model picked elsewhere */
static void sel_publish(Panel *p) {
    ResultsState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    if (s->sel >= 0 && s->sel < s->nshown && s->order[s->sel] < r->nrows)
        snprintf(p->tui->selected, sizeof p->tui->selected, "%s", r->rows[s->order[s->sel]].id);
}

static void results_enter(Panel *p) {
    ResultsState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    resort(p);
    for (int i = 0; p->tui->selected[0] && i < s->nshown; i++)
        if (strcmp(r->rows[s->order[i]].id, p->tui->selected) == 0) s->sel = i;
}
static void results_done(Panel *p) {
    ResultsState *s = p->st;
    free(s->order);
    free(s->noise);
}

/* (Re)compute the noise flags when the reference, the mode or the data changed. */
static void noise_update(Panel *p, TuiResults *r) {
    ResultsState *s = p->st;
    Tui *t = p->tui;
    const char *ref = t->ref >= 0 && t->ref < r->nrows ? r->rows[t->ref].id : "";
    if (s->noise && s->noise_gen == t->models_gen && s->noise_rows == r->nrows && strcmp(s->noise_ref, ref) == 0 &&
        strcmp(s->noise_mode, r->mode) == 0)
        return;
    free(s->noise);
    int nk = r->ntasks + 2;
    s->noise = malloc((size_t)(r->nrows ? r->nrows : 1) * (size_t)nk);
    memset(s->noise, NZ_UNTESTED, (size_t)(r->nrows ? r->nrows : 1) * (size_t)nk);
    snprintf(s->noise_ref, sizeof s->noise_ref, "%s", ref);
    snprintf(s->noise_mode, sizeof s->noise_mode, "%s", r->mode);
    s->noise_gen = t->models_gen, s->noise_rows = r->nrows, s->untested = s->tested = 0;
    if (!ref[0] || tui_lua_call(t, "noise", 2, (const char *const[]){r->mode, ref})) return;
    lua_State *L = t->L;
    for (int j = 0; j < r->nrows; j++) {
        lua_getfield(L, -1, r->rows[j].id);
        if (lua_istable(L, -1)) {
            for (int k = 0; k < nk; k++) {
                lua_getfield(L, -1, k < r->ntasks ? r->tasks[k].name : k == r->ntasks ? "id_avg" : "ood_avg");
                if (lua_isboolean(L, -1)) s->noise[j * nk + k] = lua_toboolean(L, -1) ? NZ_WITHIN : NZ_BEYOND;
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    /* the legend's counts: deltas shown (both scores present) with and without a test */
    TuiRow *rr = &r->rows[t->ref];
    for (int j = 0; j < r->nrows; j++)
        for (int k = 0; k < r->ntasks && j != t->ref; k++)
            if (!isnan(r->rows[j].scores[k]) && !isnan(rr->scores[k])) {
                if (s->noise[j * nk + k] == NZ_UNTESTED) s->untested++;
                else s->tested++;
            }
}

static int noise_of(ResultsState *s, TuiResults *r, int row, int k) {
    if (!s->noise || row < 0 || row >= s->noise_rows) return NZ_UNTESTED;
    return s->noise[row * (r->ntasks + 2) + k];
}

static int delta_role(double d, int nz) {
    if (isnan(d) || nz == NZ_WITHIN) return CR_DIM;
    return d > 0 ? CR_GAIN : CR_LOSS;
}

static void put_avg(int y, int x, double v, double ref, int is_ref, int incomplete, int sel, int nz) {
    char b[16];
    tui_fmt_score(b, sizeof b, v);
    crt_putf(y, x, 6, 0, "%5s%s", b, incomplete ? "*" : " ");
    if (is_ref || isnan(v) || isnan(ref)) return;
    double d = v - ref;
    if (!sel) attrset(crt_attr(delta_role(d, nz)));
    if (nz == NZ_WITHIN) crt_putf(y, x + 6, 6, 0, "%s%+4.1f", crt_glyphs.approx, d * 100);
    else crt_putf(y, x + 6, 6, 0, "%+5.1f", d * 100);
    if (!sel) attrset(crt_attr(CR_DEFAULT));
}

static void results_draw(Panel *p, int y, int x, int h, int w) {
    ResultsState *s = p->st;
    Tui *t = p->tui;
    TuiResults *r = tui_results(t);
    if (s->norder != r->nrows) resort(p);
    const char *ref_name = t->ref >= 0 && t->ref < r->nrows ? r->rows[t->ref].name : "none";
    static const char *colnames[] = {"model", "ID avg", "OOD avg"};
    const char *sort_name = s->sort_col < 3 ? colnames[s->sort_col]
                            : s->sort_col - 3 < r->ntasks ? r->tasks[s->sort_col - 3].name : "?";
    /* quick and full results are never mixed: the title names the one shown and the other */
    const char *other = t->nresults > 1 ? (strcmp(r->mode, "full") == 0 ? "quick" : "full") : NULL;
    char also[48] = "";
    if (other) snprintf(also, sizeof also, " (%s results apart: m)", other);
    snprintf(p->title, sizeof p->title, "Results  %s suite%s  %s vs %s  sorted by %s %s",
             strcmp(r->mode, "quick") == 0 ? "QUICK" : "full", also, crt_glyphs.delta, ref_name, sort_name,
             s->sort_desc ? crt_glyphs.down : crt_glyphs.up);
    noise_update(p, r);
    if (r->nrows == 0) {
        crt_put(y + 1, x + 2, w - 4, "No results in this store. Evaluate a model: amalgam eval MODEL --suite quick", 0);
        return;
    }
    /* layout: name | ID avg Δ | OOD avg Δ | ID tasks | OOD tasks (scrolled) */
    int nw = 24, aw = 13, tw = 7;
    if (w < 100) nw = 20;
    int tx0 = x + nw + 2 * aw + 1;
    int ntw = (w - tx0 - 1) / tw;     /* task columns that fit */
    if (ntw < 1) ntw = 1;
    if (s->col >= 3) {
        int k = s->col - 3;
        if (k < s->left) s->left = k;
        if (k >= s->left + ntw) s->left = k - ntw + 1;
    }
    if (s->left > r->ntasks - ntw) s->left = r->ntasks - ntw;
    if (s->left < 0) s->left = 0;
    /* header: group line and names */
    attrset(crt_attr(CR_COLHEAD));
    mvhline(y, x, ' ', w);
    mvhline(y + 1, x, ' ', w);
    crt_put(y + 1, x + 1, nw - 1, "model", 0);
    crt_put(y + 1, x + nw, aw, "  ID avg   Δ", 0);
    crt_put(y + 1, x + nw + aw, aw, " OOD avg   Δ", 0);
    crt_putf(y, x + nw, 2 * aw, 0, " %d ID | %d OOD tasks", r->n_id, r->n_ood);
    const char *last_tag = NULL;
    for (int c = 0; c < ntw && s->left + c < r->ntasks; c++) {
        TuiTask *k = &r->tasks[s->left + c];
        int cx = tx0 + c * tw;
        if (!last_tag || strcmp(last_tag, k->tag) != 0) {
            crt_putf(y, cx, w - cx, 0, "%s%s", crt_glyphs.vline, k->tag[0] ? (strcmp(k->tag, "id") == 0 ? "ID" : "OOD") : "untagged");
            last_tag = k->tag;
        }
        char nm[16];
        snprintf(nm, sizeof nm, "%.6s", k->name);
        if (s->col == s->left + c + 3) attrset(crt_attr(CR_SELECT) | A_UNDERLINE);
        crt_putf(y + 1, cx, tw, 0, "%6s", nm);
        attrset(crt_attr(CR_COLHEAD));
    }
    if (s->col < 3) {
        attrset(crt_attr(CR_SELECT) | A_UNDERLINE);
        int cx = s->col == 0 ? x + 1 : s->col == 1 ? x + nw : x + nw + aw;
        crt_put(y + 1, cx, s->col == 0 ? 5 : 8, s->col == 0 ? "model" : s->col == 1 ? "  ID avg" : " OOD avg", 0);
    }
    attrset(crt_attr(CR_DEFAULT));
    int rows = h - 3;
    s->list_y = y + 2;
    tui_list_fit(s->sel, &s->top, s->nshown, rows);
    TuiRow *ref = t->ref >= 0 && t->ref < r->nrows ? &r->rows[t->ref] : NULL;
    for (int i = 0; i < rows && s->top + i < s->nshown; i++) {
        int pos = s->top + i, ri = s->order[pos], yy = y + 2 + i, sel = pos == s->sel;
        TuiRow *row = &r->rows[ri];
        int is_ref = ref == row;
        attrset(sel ? crt_attr(CR_SELECT) : crt_attr(CR_DEFAULT));
        if (sel) mvhline(yy, x, ' ', w);
        crt_putf(yy, x, nw, 1, "%s%s", sel ? crt_glyphs.sel : " ", row->name);
        if (is_ref && !sel) attrset(crt_attr(CR_DEFAULT) | A_BOLD);
        put_avg(yy, x + nw, row->id_avg, ref ? ref->id_avg : (double)NAN, is_ref, row->id_n < r->n_id, sel,
                noise_of(s, r, ri, r->ntasks));
        put_avg(yy, x + nw + aw, row->ood_avg, ref ? ref->ood_avg : (double)NAN, is_ref, row->ood_n < r->n_ood, sel,
                noise_of(s, r, ri, r->ntasks + 1));
        last_tag = NULL;
        for (int c = 0; c < ntw && s->left + c < r->ntasks; c++) {
            int k = s->left + c, cx = tx0 + c * tw;
            if (!last_tag || strcmp(last_tag, r->tasks[k].tag) != 0) {
                if (!sel) attrset(crt_attr(CR_DIM));
                crt_put(yy, cx, 1, crt_glyphs.vline, 0);
                last_tag = r->tasks[k].tag;
            }
            double v = row->scores[k], d = ref && !is_ref ? v - ref->scores[k] : (double)NAN;
            int nz = noise_of(s, r, ri, k);
            if (!sel) attrset(crt_attr(is_ref || isnan(d) ? CR_DEFAULT : delta_role(d, nz)));
            if (s->show_delta && !is_ref) {
                if (isnan(d)) crt_putf(yy, cx + 1, tw - 1, 0, "%5s", crt_utf8 ? "—" : "-");
                else if (nz == NZ_WITHIN) crt_putf(yy, cx + 1, tw - 1, 0, "%s%+4.1f", crt_glyphs.approx, d * 100);
                else crt_putf(yy, cx + 1, tw - 1, 0, "%+5.1f", d * 100);
            } else {
                char b[16];
                tui_fmt_score(b, sizeof b, v);
                crt_putf(yy, cx + 1, tw - 1, 0, "%5s", b);
            }
        }
        attrset(crt_attr(CR_DEFAULT));
    }
    int ly = y + h - 1;
    attrset(crt_attr(CR_DIM));
    char untested[64] = "";
    if (s->untested) snprintf(untested, sizeof untested, "  %d/%d deltas untested (no per-example scores)", s->untested,
                              s->untested + s->tested);
    crt_putf(ly, x + 1, w - 2, 0, "x100  %s within noise (paired test)%s  * fewer tasks  tasks %d-%d/%d%s",
             crt_glyphs.approx, untested, s->left + 1,
             s->left + ntw < r->ntasks ? s->left + ntw : r->ntasks, r->ntasks, s->show_delta ? "  cells: " "\xce\x94" : "");
    attrset(crt_attr(CR_DEFAULT));
}

static int res_move(Panel *p, int key) {
    ResultsState *s = p->st;
    int r = tui_list_key(&s->sel, s->nshown, LINES - 7, key);
    if (r) sel_publish(p);
    return r;
}

/* a click on a model row selects it */
static int res_click(Panel *p, int y, int x) {
    ResultsState *s = p->st;
    int k = s->top + y - s->list_y;
    if (s->editing || y < s->list_y || k >= s->nshown) return HR_IGNORED;
    s->sel = k;
    sel_publish(p);
    return HR_REDRAW;
}

static int res_filter(Panel *p, int key) {
    ResultsState *s = p->st;
    s->editing = 1;
    return HR_REDRAW;
}

/* while the filter is typed: printable keys edit it, Enter keeps it, Esc clears it */
static int res_input(Panel *p, int key) {
    ResultsState *s = p->st;
    if (!s->editing) return HR_IGNORED;
    size_t n = strlen(s->filter);
    if (key == 27) s->filter[0] = 0, s->editing = 0;
    else if (key == '\r' || key == '\n' || key == KEY_ENTER) s->editing = 0;
    else if (key == KEY_BACKSPACE || key == 127 || key == 8) { if (n) s->filter[n - 1] = 0; }
    else if (key >= 32 && key < 256 && key != 127 && n + 1 < sizeof s->filter) s->filter[n] = (char)key, s->filter[n + 1] = 0;
    else return HR_IGNORED;
    resort(p);
    return HR_REDRAW;
}

static void res_status(Panel *p, char *buf, size_t cap) {
    ResultsState *s = p->st;
    if (s->editing) snprintf(buf, cap, "filter: %s_   (Enter keeps it, Esc clears it)", s->filter);
    else snprintf(buf, cap, "↑↓ click select  ←→ column  o sort  r reference  d deltas  m full/quick  / filter%s%s%s",
                  s->filter[0] ? " [" : "", s->filter, s->filter[0] ? "]" : "");
}

static int res_col(Panel *p, int key) {
    ResultsState *s = p->st;
    int n = 3 + tui_results(p->tui)->ntasks;
    s->col += key == KEY_LEFT || key == 'h' ? -1 : 1;
    if (s->col < 0) s->col = 0;
    if (s->col >= n) s->col = n - 1;
    return HR_REDRAW;
}

static int res_sort(Panel *p, int key) {
    ResultsState *s = p->st;
    if (s->sort_col == s->col) s->sort_desc = !s->sort_desc;
    else s->sort_col = s->col, s->sort_desc = s->col != 0;
    resort(p);
    return HR_REDRAW;
}

static int res_ref(Panel *p, int key) {
    ResultsState *s = p->st;
    if (s->sel < s->nshown) p->tui->ref = s->order[s->sel];
    return HR_REDRAW;
}

static int res_mode(Panel *p, int key) {
    Tui *t = p->tui;
    if (t->nresults < 2) { tui_flash(t, "only %s results in this store", tui_results(t)->mode); return HR_REDRAW; }
    char keep[33] = "";
    TuiResults *r = tui_results(t);
    if (t->ref >= 0 && t->ref < r->nrows) snprintf(keep, sizeof keep, "%s", r->rows[t->ref].id);
    t->mode = !t->mode;
    r = tui_results(t);
    t->ref = r->nrows ? 0 : -1;
    for (int j = 0; j < r->nrows; j++)
        if (strcmp(r->rows[j].id, keep) == 0) t->ref = j;
    ((ResultsState *)p->st)->sel = 0;
    resort(p);
    return HR_REDRAW;
}

static int res_delta(Panel *p, int key) {
    ResultsState *s = p->st;
    s->show_delta = !s->show_delta;
    return HR_REDRAW;
}

static const PanelKey results_keys[] = {
    {KEY_UP, "↑↓", res_move, "select (the model is selected in Models, Plot, Matryoshka too)"},
    {KEY_DOWN, NULL, res_move, NULL},
    {'k', NULL, res_move, NULL},
    {'j', NULL, res_move, NULL},
    {KEY_PPAGE, NULL, res_move, NULL},
    {KEY_NPAGE, NULL, res_move, NULL},
    {KEY_HOME, NULL, res_move, NULL},
    {KEY_END, NULL, res_move, NULL},
    {KEY_LEFT, "←→", res_col, "column (scrolls the tasks)"},
    {KEY_RIGHT, NULL, res_col, NULL},
    {'h', NULL, res_col, NULL},
    {'l', NULL, res_col, NULL},
    {'o', "o", res_sort, "sort by the column (again: reverse)"},
    {'r', "r", res_ref, "the selected model becomes the reference"},
    {'d', "d", res_delta, "task cells: scores / deltas"},
    {'m', "m", res_mode, "full / quick results"},
    {'/', "/", res_filter, "filter the models by name (Esc clears)"},
    {KEY_MOUSE, "mouse", NULL, "click a row: select it; the wheel scrolls"},
    {0},
};

const PanelClass ResultsPanel = {
    .name = "Results", .id = "results", .size = sizeof(ResultsState), .init = results_init,
    .enter = results_enter, .done = results_done, .draw = results_draw, .keys = results_keys,
    .input = res_input, .status = res_status, .click = res_click,
};
