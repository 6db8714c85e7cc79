/* p_plot.c - ID vs OOD: each model of the shown results a point (x = ID average, y = OOD
 * average), the Pareto front (no other model better on both) marked and joined by a braille
 * line; a legend names the points. */
#include "tui_internal.h"

#include <curses.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int sel, top;        /* sel: a row of the shown results (the legend's order) */
    int list_y;          /* the screen row of the legend's first row (mouse clicks) */
} PlotState;

static char mark_of(int i) { return i < 9 ? (char)('1' + i) : i < 35 ? (char)('a' + i - 9) : '+'; }

/* the braille canvas: cw x ch cells, 2 x 4 dots each */
typedef struct {
    int cw, ch;
    unsigned char *bits;
} Canvas;

static void dot(Canvas *c, int dx, int dy) {
    if (dx < 0 || dy < 0 || dx >= 2 * c->cw || dy >= 4 * c->ch) return;
    static const unsigned char map[2][4] = {{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}};
    c->bits[(dy / 4) * c->cw + dx / 2] |= map[dx % 2][dy % 4];
}

static void line(Canvas *c, int x0, int y0, int x1, int y1) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        dot(c, x0, y0);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

typedef struct { double x, y; int i; } Pt;
static int by_x(const void *a, const void *b) {
    const Pt *p = a, *q = b;
    return p->x < q->x ? -1 : p->x > q->x;
}

/* A scatter of (xs, ys) (scores x100) in the box (y, x, h, w) with axes: marks[i] the character
 * of point i, front[i] set for Pareto points (joined by a braille line), sel reversed, special
 * (-1: none) drawn as the front glyph in the prompt colour (the Merge panel's current merge). */
void tui_scatter(int y, int x, int h, int w, const double *xs, const double *ys, const char *marks, const int *front,
                 int n, int sel, int special) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (isnan(xs[i]) || isnan(ys[i])) continue;
        if (xs[i] < x0) x0 = xs[i];
        if (xs[i] > x1) x1 = xs[i];
        if (ys[i] < y0) y0 = ys[i];
        if (ys[i] > y1) y1 = ys[i];
    }
    if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    double px = (x1 - x0) * 0.08 + 0.5, py = (y1 - y0) * 0.08 + 0.5;
    x0 -= px, x1 += px, y0 -= py, y1 += py;
    int cx = x + 6, cy = y + 1, cw = w - 14, ch = h - 3;
    if (cw < 10 || ch < 3) return;
    Canvas c = {cw, ch, calloc((size_t)cw * (size_t)ch, 1)};
    #define DX(v) ((int)(((v) - x0) / (x1 - x0) * (2 * cw - 1) + 0.5))
    #define DY(v) ((int)((y1 - (v)) / (y1 - y0) * (4 * ch - 1) + 0.5))
    int nf = 0;
    Pt *pts = malloc(sizeof(Pt) * (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        if (front[i]) pts[nf++] = (Pt){xs[i], ys[i], i};
    qsort(pts, (size_t)nf, sizeof *pts, by_x);
    for (int k = 0; k + 1 < nf; k++) line(&c, DX(pts[k].x), DY(pts[k].y), DX(pts[k + 1].x), DY(pts[k + 1].y));
    /* axes */
    attrset(crt_attr(CR_DIM));
    for (int j = 0; j < ch; j++) crt_put(cy + j, cx - 1, 1, crt_glyphs.vline, 0);
    crt_hline(cy + ch, cx - 1, cw + 1);
    crt_putf(cy, x, 5, 0, "%5.1f", y1);
    crt_putf(cy + ch - 1, x, 5, 0, "%5.1f", y0);
    if (ch >= 6) crt_putf(cy + ch / 2, x, 5, 0, "%5.1f", (y0 + y1) / 2);
    crt_put(y, x, 10, "OOD avg", 0);
    crt_putf(cy + ch + 1, cx - 2, 8, 0, "%.1f", x0);
    if (cw >= 30) crt_putf(cy + ch + 1, cx + cw / 2 - 3, 8, 0, "%.1f", (x0 + x1) / 2);
    crt_putf(cy + ch + 1, cx + cw - 6, 8, 0, "%.1f", x1);
    crt_put(cy + ch + 1, cx + cw + 1, 7, "ID avg", 0);
    /* the front line */
    attrset(crt_attr(CR_PARETO) & ~A_BOLD);
    for (int j = 0; j < ch; j++)
        for (int i = 0; i < cw; i++) {
            unsigned char b = c.bits[j * cw + i];
            if (!b) continue;
            if (crt_glyphs.braille) {
                char u[4] = {(char)0xE2, (char)(0xA0 | (b >> 6)), (char)(0x80 | (b & 0x3F)), 0};
                mvaddstr(cy + j, cx + i, u);
            } else {
                mvaddch(cy + j, cx + i, '.');
            }
        }
    /* the points: front ones, then the special one, last so they win a shared cell */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < n; i++) {
            int ps = i == special ? 2 : front[i] ? 1 : 0;
            if (isnan(xs[i]) || isnan(ys[i]) || ps != pass) continue;
            int qx = cx + DX(xs[i]) / 2, qy = cy + DY(ys[i]) / 4;
            if (i == special) {
                attrset(crt_attr(CR_PROMPT) | A_BOLD);
                mvaddstr(qy, qx, crt_glyphs.front);
                continue;
            }
            attrset(crt_attr(front[i] ? CR_PARETO : CR_DEFAULT) | (i == sel ? A_REVERSE : 0) | A_BOLD);
            mvaddch(qy, qx, (chtype)(unsigned char)marks[i]);
        }
    attrset(crt_attr(CR_DEFAULT));
    #undef DX
    #undef DY
    free(c.bits), free(pts);
}

static void plot_draw(Panel *p, int y, int x, int h, int w) {
    PlotState *s = p->st;
    Tui *t = p->tui;
    TuiResults *r = tui_results(t);
    snprintf(p->title, sizeof p->title, "ID vs OOD  %s suite  (%s Pareto front: no model better on both)", r->mode,
             crt_glyphs.front);
    int n = r->nrows;
    if (n == 0) {
        crt_put(y + 1, x + 2, w - 4, "No results to plot. Evaluate models: amalgam eval MODEL --suite quick", 0);
        return;
    }
    double *xs = malloc(sizeof(double) * (size_t)n), *ys = malloc(sizeof(double) * (size_t)n);
    int *front = malloc(sizeof(int) * (size_t)n);
    char *marks = malloc((size_t)n + 1);
    for (int i = 0; i < n; i++) {
        xs[i] = r->rows[i].id_avg * 100, ys[i] = r->rows[i].ood_avg * 100;
        marks[i] = mark_of(i);
    }
    tui_pareto(xs, ys, n, front);
    int lw = w >= 90 ? 36 : 30;
    tui_scatter(y, x, h, w - lw - 1, xs, ys, marks, front, n, s->sel, -1);
    /* legend */
    int lx = x + w - lw, nf = 0;
    for (int i = 0; i < n; i++) nf += front[i];
    attrset(crt_attr(CR_COLHEAD));
    crt_putf(y, lx, lw, 1, "   model%*s  ID   OOD", lw - 22, "");
    attrset(crt_attr(CR_DEFAULT));
    if (s->sel >= n) s->sel = n - 1;
    s->list_y = y + 1;
    tui_list_fit(s->sel, &s->top, n, h - 2);
    for (int k = 0; k < h - 2 && s->top + k < n; k++) {
        int i = s->top + k;
        char a[16], b[16];
        tui_fmt_score(a, sizeof a, r->rows[i].id_avg);
        tui_fmt_score(b, sizeof b, r->rows[i].ood_avg);
        attrset(i == s->sel ? crt_attr(CR_SELECT) : crt_attr(front[i] ? CR_PARETO : CR_DEFAULT));
        crt_putf(y + 1 + k, lx, lw, 1, "%c %s %-*.*s %5s %5s", mark_of(i), front[i] ? crt_glyphs.front : " ", lw - 17,
                 lw - 17, r->rows[i].name, a, b);
    }
    attrset(crt_attr(CR_DIM));
    crt_putf(y + h - 1, lx, lw, 0, "%s front  %d of %d models", crt_glyphs.front, nf, n);
    attrset(crt_attr(CR_DEFAULT));
    free(xs), free(ys), free(front), free(marks);
}

/* the selected point's model becomes the selected model everywhere (Models, Results, ...) */
static void plot_publish(Panel *p) {
    PlotState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    if (s->sel >= 0 && s->sel < r->nrows) snprintf(p->tui->selected, sizeof p->tui->selected, "%s", r->rows[s->sel].id);
}

/* shown: start on the model selected elsewhere */
static void plot_enter(Panel *p) {
    PlotState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    for (int i = 0; p->tui->selected[0] && i < r->nrows; i++)
        if (strcmp(r->rows[i].id, p->tui->selected) == 0) s->sel = i;
}

static int plot_move(Panel *p, int key) {
    PlotState *s = p->st;
    int r = tui_list_key(&s->sel, tui_results(p->tui)->nrows, LINES - 6, key);
    if (r) plot_publish(p);
    return r;
}

/* ←→: the next point left / right (by ID average; ties by OOD, then row; no ID average: skipped) */
static int plot_step(Panel *p, int key) {
    PlotState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    if (r->nrows == 0) return HR_HANDLED;
    if (s->sel < 0 || s->sel >= r->nrows) s->sel = 0;
    int dir = key == KEY_LEFT || key == 'h' ? -1 : 1, best = -1;
    const TuiRow *c = &r->rows[s->sel];
    for (int i = 0; i < r->nrows; i++) {
        const TuiRow *q = &r->rows[i];
        if (i == s->sel || isnan(q->id_avg)) continue;
        /* q is past c in direction dir, and nearer than best */
        double kq[3] = {q->id_avg, isnan(q->ood_avg) ? -1 : q->ood_avg, i};
        double kc[3] = {c->id_avg, isnan(c->ood_avg) ? -1 : c->ood_avg, s->sel};
        int past = 0;
        for (int j = 0; j < 3 && !past; j++) {
            if (kq[j] == kc[j]) continue;
            past = (kq[j] - kc[j]) * dir > 0 ? 1 : -1;
        }
        if (isnan(c->id_avg)) past = 1;
        if (past <= 0) continue;
        if (best < 0) { best = i; continue; }
        const TuiRow *b = &r->rows[best];
        double kb[3] = {b->id_avg, isnan(b->ood_avg) ? -1 : b->ood_avg, best};
        for (int j = 0; j < 3; j++) {
            if (kq[j] == kb[j]) continue;
            if ((kq[j] - kb[j]) * dir < 0) best = i;
            break;
        }
    }
    if (best >= 0) s->sel = best;
    plot_publish(p);
    return HR_REDRAW;
}

/* a click on a legend row selects its model */
static int plot_click(Panel *p, int y, int x) {
    PlotState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    int k = s->top + y - s->list_y;
    if (y < s->list_y || k >= r->nrows || x < COLS - (COLS >= 90 ? 36 : 30)) return HR_IGNORED;
    s->sel = k;
    plot_publish(p);
    return HR_REDRAW;
}

static void plot_status(Panel *p, char *buf, size_t cap) {
    PlotState *s = p->st;
    TuiResults *r = tui_results(p->tui);
    if (s->sel < 0 || s->sel >= r->nrows) { snprintf(buf, cap, "←→ by ID avg  ↑↓ the legend  m full/quick"); return; }
    char a[16], b[16];
    tui_fmt_score(a, sizeof a, r->rows[s->sel].id_avg);
    tui_fmt_score(b, sizeof b, r->rows[s->sel].ood_avg);
    snprintf(buf, cap, "selected %c %s  ID %s  OOD %s   ←→ by ID avg  ↑↓ the legend  m full/quick", mark_of(s->sel),
             r->rows[s->sel].name, a, b);
}

static int plot_mode(Panel *p, int key) {
    Tui *t = p->tui;
    if (t->nresults < 2) { tui_flash(t, "only %s results in this store", tui_results(t)->mode); return HR_REDRAW; }
    t->mode = !t->mode;
    t->ref = tui_results(t)->nrows ? 0 : -1;
    ((PlotState *)p->st)->sel = 0;
    plot_enter(p);
    return HR_REDRAW;
}

static const PanelKey plot_keys[] = {
    {KEY_LEFT, "←→", plot_step, "the next point left / right (by ID avg): selected everywhere"},
    {KEY_RIGHT, NULL, plot_step, NULL},
    {'h', NULL, plot_step, NULL},
    {'l', NULL, plot_step, NULL},
    {KEY_UP, "↑↓", plot_move, "select a model in the legend (highlighted in the plot)"},
    {KEY_DOWN, NULL, plot_move, NULL},
    {'k', NULL, plot_move, NULL},
    {'j', NULL, plot_move, NULL},
    {KEY_MOUSE, "mouse", NULL, "click a legend row: select it; the wheel scrolls"},
    {'m', "m", plot_mode, "full / quick results"},
    {0},
};

const PanelClass PlotPanel = {
    .name = "Plot", .id = "plot", .size = sizeof(PlotState), .draw = plot_draw, .keys = plot_keys,
    .enter = plot_enter, .status = plot_status, .click = plot_click,
};
