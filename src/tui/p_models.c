/* p_models.c - the Models panel: the lineage tree (base -> checkpoints -> task vectors ->
 * merges, from the meta's parents / checkpoint / base), kind, size, and the run or merge recipe
 * that made each model; Enter shows one model's meta and per-tensor norms. */
#include "tui_internal.h"

#include <curses.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name, *shape;
    double numel, norm;
} TensorRow;

typedef struct {
    int sel, top;
    int list_y;          /* the screen row of the list's first row (mouse clicks) */
    int detail;               /* the detail view is up */
    char detail_id[33];
    char **lines;             /* meta summary */
    int nlines;
    TensorRow *tensors;
    int ntensors, dtop;
    double load_ms;
} ModelsState;

static void detail_free(ModelsState *s) {
    for (int i = 0; i < s->nlines; i++) free(s->lines[i]);
    for (int i = 0; i < s->ntensors; i++) free(s->tensors[i].name), free(s->tensors[i].shape);
    free(s->lines);
    free(s->tensors);
    s->lines = NULL, s->tensors = NULL;
    s->nlines = s->ntensors = 0;
}

static void load_detail(Panel *p, const char *id) {
    ModelsState *s = p->st;
    Tui *t = p->tui;
    detail_free(s);
    snprintf(s->detail_id, sizeof s->detail_id, "%s", id);
    double t0 = tui_now();
    if (tui_lua_call(t, "model_detail", 1, (const char *const[]){id})) return;
    lua_State *L = t->L;
    int d = lua_gettop(L);
    lua_getfield(L, d, "lines");
    s->nlines = (int)lua_rawlen(L, -1);
    s->lines = calloc((size_t)s->nlines + 1, sizeof *s->lines);
    for (int i = 0; i < s->nlines; i++) {
        lua_rawgeti(L, -1, i + 1);
        s->lines[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, d, "tensors");
    s->ntensors = (int)lua_rawlen(L, -1);
    s->tensors = calloc((size_t)s->ntensors + 1, sizeof *s->tensors);
    for (int i = 0; i < s->ntensors; i++) {
        lua_rawgeti(L, -1, i + 1);
        s->tensors[i].name = tui_field_str(L, -1, "name");
        s->tensors[i].shape = tui_field_str(L, -1, "shape");
        s->tensors[i].numel = tui_field_num(L, -1, "numel", 0);
        s->tensors[i].norm = tui_field_num(L, -1, "norm", 0);
        lua_pop(L, 1);
    }
    lua_settop(L, d - 1);
    s->load_ms = (tui_now() - t0) * 1e3;
    s->dtop = 0;
}

static void fmt_params(char *b, size_t n, double v) {
    if (v >= 1e9) snprintf(b, n, "%.2fG", v / 1e9);
    else if (v >= 1e6) snprintf(b, n, "%.2fM", v / 1e6);
    else if (v >= 1e3) snprintf(b, n, "%.1fk", v / 1e3);
    else snprintf(b, n, "%.0f", v);
}

static int kind_role(const char *kind) {
    if (strcmp(kind, "task_vector") == 0) return CR_OOD;
    if (strcmp(kind, "merged") == 0) return CR_PARETO;
    if (strcmp(kind, "checkpoint") == 0) return CR_ID;
    return CR_DEFAULT;
}

static void draw_detail(Panel *p, int y, int x, int h, int w) {
    ModelsState *s = p->st;
    snprintf(p->title, sizeof p->title, "Models > %s  (%d tensors, read in %.0f ms)", tui_model_label(p->tui, s->detail_id),
             s->ntensors, s->load_ms);
    int row = 0;
    for (int i = 0; i < s->nlines && row < h; i++) crt_put(y + row++, x + 1, w - 2, s->lines[i], 0);
    if (row + 2 >= h) return;
    row++;
    double maxn = 0;
    for (int i = 0; i < s->ntensors; i++)
        if (s->tensors[i].norm > maxn) maxn = s->tensors[i].norm;
    int barw = w >= 100 ? 24 : 0;   /* norm bars when there is room */
    int nw = w - 2 - 15 - 11 - 10 - barw;
    if (nw < 20) nw = 20;
    attrset(crt_attr(CR_COLHEAD));
    crt_putf(y + row++, x, w, 1, " %-*s %14s %10s %9s", nw, "tensor", "shape", "numel", "norm");
    attrset(crt_attr(CR_DEFAULT));
    int rows = h - row;
    if (s->dtop > s->ntensors - rows) s->dtop = s->ntensors - rows;
    if (s->dtop < 0) s->dtop = 0;
    for (int i = s->dtop; i < s->ntensors && row < h; i++, row++) {
        TensorRow *r = &s->tensors[i];
        crt_putf(y + row, x, nw + 1, 1, " %s", r->name);
        crt_putf(y + row, x + nw + 2, 36, 0, "%14s %10.0f %9.3f", r->shape, r->numel, r->norm);
        if (barw && maxn > 0) {
            attrset(crt_attr(CR_GRAPH));
            crt_bar(y + row, x + nw + 39, barw - 2, r->norm / maxn);
            attrset(crt_attr(CR_DEFAULT));
        }
    }
}

static void models_draw(Panel *p, int y, int x, int h, int w) {
    ModelsState *s = p->st;
    Tui *t = p->tui;
    if (s->detail) { draw_detail(p, y, x, h, w); return; }
    snprintf(p->title, sizeof p->title, "Models  %d in %.60s  (lineage: base > checkpoints > task vectors > merges)",
             t->nmodels, t->store_dir);
    if (t->nmodels == 0) {
        crt_put(y + 1, x + 2, w - 4, "No models in this store. Create one: amalgam init-model --config tiny --name base", 0);
        return;
    }
    /* columns: tree label | kind | params | recipe */
    int lw = w * 2 / 5, kw = 11, pw = 8;
    if (lw < 24) lw = 24;
    attrset(crt_attr(CR_COLHEAD));
    crt_putf(y, x, w, 1, " %-*s %-*s %*s  %s", lw - 1, "model", kw, "kind", pw, "params", "made by");
    attrset(crt_attr(CR_DEFAULT));
    int rows = h - 1;
    s->list_y = y + 1;
    tui_list_fit(s->sel, &s->top, t->nmodels, rows);
    for (int i = 0; i < rows && s->top + i < t->nmodels; i++) {
        int k = s->top + i;
        TuiModel *m = &t->models[k];
        int yy = y + 1 + i, sel = k == s->sel;
        char tree[512];
        size_t n = 0;
        tree[0] = 0;
        for (int d = 0; d < m->depth && n < sizeof tree - 16; d++) {
            /* a vertical bar while a later sibling at this depth follows */
            int more = 0;
            for (int j = k + 1; j < t->nmodels && t->models[j].depth > d; j++)
                if (t->models[j].depth == d + 1) { more = 1; break; }
            if (d == m->depth - 1) n += (size_t)snprintf(tree + n, sizeof tree - n, "%s ", more ? crt_glyphs.tee : crt_glyphs.corner);
            else n += (size_t)snprintf(tree + n, sizeof tree - n, "%s  ", more ? crt_glyphs.vline : " ");
        }
        if (n < sizeof tree) snprintf(tree + n, sizeof tree - n, "%s", m->label);
        char params[16];
        fmt_params(params, sizeof params, m->n_params);
        attrset(sel ? crt_attr(CR_SELECT) : crt_attr(CR_DEFAULT));
        if (sel) mvhline(yy, x, ' ', w);
        crt_put(yy, x + 1, lw - 1, tree, 1);
        if (!sel) attrset(crt_attr(kind_role(m->kind)));
        crt_putf(yy, x + lw + 1, kw, 1, "%s", strcmp(m->kind, "task_vector") == 0 ? "task vec" : m->kind);
        if (!sel) attrset(crt_attr(CR_DEFAULT));
        crt_putf(yy, x + lw + 2 + kw, pw, 1, "%*s", pw, m->recipe_only ? "recipe" : params);
        if (!sel) attrset(crt_attr(CR_DIM));
        crt_put(yy, x + lw + 4 + kw + pw, w - (lw + 4 + kw + pw) - 1, m->recipe, 0);
        attrset(crt_attr(CR_DEFAULT));
    }
}

static int models_move(Panel *p, int key) {
    ModelsState *s = p->st;
    if (s->detail) {
        int page = LINES - 8;
        if (key == KEY_UP) s->dtop--;
        else if (key == KEY_DOWN) s->dtop++;
        else if (key == KEY_PPAGE) s->dtop -= page;
        else if (key == KEY_NPAGE) s->dtop += page;
        else if (key == KEY_HOME) s->dtop = 0;
        else if (key == KEY_END) s->dtop = s->ntensors;
        return HR_REDRAW;
    }
    int r = tui_list_key(&s->sel, p->tui->nmodels, LINES - 5, key);
    if (s->sel >= 0 && s->sel < p->tui->nmodels) snprintf(p->tui->selected, sizeof p->tui->selected, "%s", p->tui->models[s->sel].id);
    return r;
}

/* shown: the selection follows the model picked elsewhere (a Sweeps cell) */
static void models_show(Panel *p) {
    ModelsState *s = p->st;
    Tui *t = p->tui;
    for (int i = 0; i < t->nmodels; i++)
        if (t->selected[0] && strcmp(t->models[i].id, t->selected) == 0) s->sel = i;
}

static int models_enter(Panel *p, int key) {
    ModelsState *s = p->st;
    if (s->detail) { s->detail = 0; return HR_REDRAW; }
    if (s->sel < 0 || s->sel >= p->tui->nmodels) return HR_HANDLED;
    load_detail(p, p->tui->models[s->sel].id);
    s->detail = s->ntensors > 0 || s->nlines > 0;
    return HR_REDRAW;
}

static int models_back(Panel *p, int key) {
    ModelsState *s = p->st;
    if (!s->detail) return HR_IGNORED;
    s->detail = 0;
    return HR_REDRAW;
}

/* a click on a row of the list selects that model */
static int models_click(Panel *p, int y, int x) {
    ModelsState *s = p->st;
    Tui *t = p->tui;
    int k = s->top + y - s->list_y;
    if (s->detail || y < s->list_y || k >= t->nmodels) return HR_IGNORED;
    s->sel = k;
    snprintf(t->selected, sizeof t->selected, "%s", t->models[k].id);
    return HR_REDRAW;
}

static void models_done(Panel *p) { detail_free(p->st); }

static const PanelKey models_keys[] = {
    {KEY_UP, "↑↓", models_move, "select"},
    {KEY_DOWN, NULL, models_move, NULL},
    {'k', NULL, models_move, NULL},
    {'j', NULL, models_move, NULL},
    {KEY_PPAGE, NULL, models_move, NULL},
    {KEY_NPAGE, NULL, models_move, NULL},
    {KEY_HOME, NULL, models_move, NULL},
    {KEY_END, NULL, models_move, NULL},
    {'\r', "Enter", models_enter, "details: meta and per-tensor norms (again: back)"},
    {'\n', NULL, models_enter, NULL},
    {KEY_ENTER, NULL, models_enter, NULL},
    {27, "Esc", models_back, "back to the list"},
    {KEY_BACKSPACE, NULL, models_back, NULL},
    {KEY_MOUSE, "mouse", NULL, "click a row: select it; the wheel scrolls"},
    {0},
};

const PanelClass ModelsPanel = {
    .name = "Models", .id = "models", .size = sizeof(ModelsState), .draw = models_draw,
    .keys = models_keys, .done = models_done, .enter = models_show, .click = models_click,
};
