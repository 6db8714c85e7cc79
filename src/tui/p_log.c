/* p_log.c - the Log panel: what came through stderr while curses ran (OpenBLAS, Lua warnings,
 * progress lines) and the TUI's own messages; follows the end unless scrolled up. */
#include "tui_internal.h"

#include <curses.h>
#include <string.h>

typedef struct {
    int sel, top, follow;
} LogState;

static void log_init(Panel *p) { ((LogState *)p->st)->follow = 1; }

static void log_draw(Panel *p, int y, int x, int h, int w) {
    LogState *s = p->st;
    int n = crt_log_count();
    if (s->follow) s->sel = n - 1;
    tui_list_fit(s->sel, &s->top, n, h);
    Tui *t = p->tui;
    snprintf(p->title, sizeof p->title, "Log  %d lines%s  key latency mean %.1f ms max %.1f ms (%d keys)", n,
             s->follow ? " (following)" : "", t->nkeys ? t->lat_sum / t->nkeys * 1e3 : 0.0, t->lat_max * 1e3, t->nkeys);
    for (int i = 0; i < h && s->top + i < n; i++) {
        const char *line = crt_log_line(s->top + i);
        int role = strstr(line, "error") ? CR_ERROR : strncmp(line, "tui:", 4) == 0 ? CR_DIM : CR_DEFAULT;
        if (s->top + i == s->sel && !s->follow) role = CR_SELECT;
        attrset(crt_attr(role));
        crt_put(y + i, x, w, line, role == CR_SELECT);
    }
    attrset(crt_attr(CR_DEFAULT));
}

static int log_move(Panel *p, int key) {
    LogState *s = p->st;
    int n = crt_log_count();
    int r = tui_list_key(&s->sel, n, LINES - 4, key);
    s->follow = s->sel >= n - 1;
    return r;
}

static int log_follow(Panel *p, int key) {
    ((LogState *)p->st)->follow = 1;
    return HR_REDRAW;
}

static const PanelKey log_keys[] = {
    {KEY_UP, "↑↓ PgUp PgDn", log_move, "scroll"},
    {KEY_DOWN, NULL, log_move, NULL},
    {KEY_PPAGE, NULL, log_move, NULL},
    {KEY_NPAGE, NULL, log_move, NULL},
    {KEY_HOME, NULL, log_move, NULL},
    {KEY_END, "End f", log_follow, "follow the end"},
    {'f', NULL, log_follow, NULL},
    {0},
};

const PanelClass LogPanel = {
    .name = "Log", .id = "log", .size = sizeof(LogState), .init = log_init,
    .draw = log_draw, .keys = log_keys,
};
