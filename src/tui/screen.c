/* screen.c - the one loop (htop ScreenManager_run): draw the header meters, the shown panel
 * and the key bar, wait for a key up to 100 ms, dispatch it through the panel's key table and
 * then the global one, poll the store (live runs) and the captured stderr. */
#define _GNU_SOURCE
#include "tui_internal.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "am_base.h"
#include "am_lua.h"

double tui_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tui_flash(Tui *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->flash, sizeof t->flash, fmt, ap);
    va_end(ap);
    for (char *p = t->flash; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
    t->flash_until = tui_now() + 4.0;
}

Panel *tui_panel(Tui *t, const char *id) {
    for (int i = 0; i < t->npanels; i++)
        if (strcmp(t->panels[i].cls->id, id) == 0) return &t->panels[i];
    return NULL;
}

static void show(Tui *t, int i) {
    if (i < 0 || i >= t->npanels) return;
    t->cur = i;
    t->help = 0;
    Panel *p = &t->panels[i];
    if (p->cls->enter) p->cls->enter(p);
}

void tui_switch(Tui *t, const char *id) {
    for (int i = 0; i < t->npanels; i++)
        if (strcmp(t->panels[i].cls->id, id) == 0) show(t, i);
}

/* ---------------------------------------------------------------- global keys */

static int act_quit(Tui *t, int key) { t->quit = 1; return HR_BREAK; }
static int act_help(Tui *t, int key) { t->help = !t->help; return HR_REDRAW; }
static int act_panel(Tui *t, int key) {
    static const struct { int key; const char *id; } map[] = {
        {KEY_F(2), "models"}, {KEY_F(3), "merge"}, {KEY_F(4), "results"}, {KEY_F(5), "plot"},
        {KEY_F(6), "runs"}, {KEY_F(7), "lua"}, {KEY_F(8), "log"}, {KEY_F(9), "sweeps"}, {KEY_F(11), "matryoshka"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].key == key) tui_switch(t, map[i].id);
    return HR_REDRAW;
}
static int act_next(Tui *t, int key) {
    show(t, (t->cur + (key == KEY_BTAB ? t->npanels - 1 : 1)) % t->npanels);
    return HR_REDRAW;
}
static int act_reload(Tui *t, int key) { return HR_RELOAD; }
static int act_redraw(Tui *t, int key) { clearok(curscr, TRUE); return HR_REDRAW; }

/* The global key table: the key bar shows the rows with a label, `?` prints all of them. */
static const TuiKey global_keys[] = {
    {KEY_F(1), "F1 ?", act_help, "Help", "this help (any key closes it)"},
    {'?', NULL, act_help, NULL, NULL},
    {KEY_F(2), "F2", act_panel, "Models", "models: the lineage tree, kinds, sizes, recipes"},
    {KEY_F(3), "F3", act_panel, "Merge", "merge models with sliders, quick-evaluated on every change"},
    {KEY_F(4), "F4", act_panel, "Results", "results: ID | OOD tasks, averages and deltas"},
    {KEY_F(5), "F5", act_panel, "Plot", "ID vs OOD average per model, the Pareto front marked"},
    {KEY_F(6), "F6", act_panel, "Runs", "training runs, live ones followed"},
    {KEY_F(7), "F7", act_panel, "Lua", "a Lua console in the state recipes use"},
    {KEY_F(8), "F8", act_panel, "Log", "stderr and the TUI's own messages"},
    {KEY_F(9), "F9", act_panel, "Sweeps", "sweeps as heat maps over their grid, the best cell marked"},
    {KEY_F(11), "F11", act_panel, NULL, "Matryoshka: the selected model's metric by (layer, dim)"},
    {'\t', "Tab S-Tab", act_next, NULL, "next / previous panel"},
    {KEY_BTAB, NULL, act_next, NULL, NULL},
    {'R', "R", act_reload, NULL, "re-read models and results from the store"},
    {12, "^L", act_redraw, NULL, "redraw the screen"},
    {KEY_MOUSE, "mouse", NULL, NULL, "click the key bar: that panel; the wheel: ↑↓; click a list row: select it"},
    {KEY_F(10), "F10 q", act_quit, "Quit", "quit (q does not quit in the Lua console)"},
    {'q', NULL, act_quit, NULL, NULL},
    {0},
};

/* ---------------------------------------------------------------- meters */

static void meter_store(Tui *t, char *b, size_t n) { snprintf(b, n, "%s", t->store_dir); }
static void meter_models(Tui *t, char *b, size_t n) { snprintf(b, n, "models %d", t->nmodels); }
static void meter_runs(Tui *t, char *b, size_t n) {
    if (t->nlive) snprintf(b, n, "runs %d (%d live)", t->nruns, t->nlive);
    else snprintf(b, n, "runs %d", t->nruns);
}
static void meter_results(Tui *t, char *b, size_t n) {
    int full = 0, quick = 0;
    for (int i = 0; i < t->nresults; i++) {
        if (strcmp(t->results[i].mode, "full") == 0) full = t->results[i].nrows;
        else quick = t->results[i].nrows;
    }
    snprintf(b, n, "evaluated %d full %d quick", full, quick);
}
static void human(char *b, size_t n, double v) {
    if (v >= 1e9) snprintf(b, n, "%.1f GB", v / 1e9);
    else if (v >= 1e6) snprintf(b, n, "%.0f MB", v / 1e6);
    else snprintf(b, n, "%.0f kB", v / 1e3);
}
/* the store's data in use (not the file, which never shrinks), re-read with the runs */
static void meter_size(Tui *t, char *b, size_t n) {
    StoreStat st;
    char h[32];
    if (!t->store || store_stat(t->store, &st) != AM_OK) { b[0] = 0; return; }
    human(h, sizeof h, (double)(st.used - st.free_pages * st.page_size));
    snprintf(b, n, "store %s", h);
}
/* this process's resident memory (the Merge panel and console load models) */
static void meter_mem(Tui *t, char *b, size_t n) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    if (f) fclose(f);
    char h[32];
    human(h, sizeof h, (double)rss * (double)sysconf(_SC_PAGESIZE));
    snprintf(b, n, "mem %s", h);
}
static void meter_loss(Tui *t, char *b, size_t n) {
    b[0] = 0;
    for (int i = 0; i < t->nruns; i++)
        if (t->runs[i].live) {
            snprintf(b, n, "loss %.3f  %.1fk tok/s", t->runs[i].last_loss, t->runs[i].tok_s / 1e3);
            return;
        }
}

static const MeterClass meters[] = {
    {"store", meter_store}, {"demo", tui_demo_meter}, {"models", meter_models}, {"runs", meter_runs},
    {"results", meter_results}, {"size", meter_size}, {"mem", meter_mem}, {"loss", meter_loss},
};

static void draw_header(Tui *t, int w) {
    attrset(crt_attr(CR_HEADER));
    move(0, 0);
    clrtoeol();
    int x = crt_put(0, 0, w, "amalgam", 0) + 2;
    for (size_t i = 0; i < sizeof meters / sizeof meters[0] && x < w; i++) {
        char buf[256];
        meters[i].text(t, buf, sizeof buf);
        if (!buf[0]) continue;
        attrset(i == 0 ? crt_attr(CR_DEFAULT) : crt_attr(CR_METER));
        x += crt_put(0, x, w - x, buf, 0) + 2;
    }
    attrset(crt_attr(CR_DEFAULT));
}

/* The key bar: draws it (hit < 0), or returns the key of the item under column hit (0: none).
 * One walk for both, so a click lands on what is drawn. */
static int keybar(Tui *t, int y, int w, int hit) {
    if (hit < 0) {
        move(y, 0);
        clrtoeol();
    }
    int x = 0;
    for (const TuiKey *k = global_keys; k->key && x < w; k++) {
        if (!k->label) continue;
        char fk[16];
        snprintf(fk, sizeof fk, "F%d", k->key - KEY_F(0));
        int fw = crt_width(fk), lw = crt_width(k->label) + 1;
        if (fw > w - x) fw = w - x;
        if (lw > w - x - fw) lw = w - x - fw;
        if (hit >= 0) {
            if (hit >= x && hit < x + fw + lw) return k->key;
            x += fw + lw;
            continue;
        }
        attrset(crt_attr(CR_FKEY));
        x += crt_put(y, x, fw, fk, 0);
        attrset(crt_attr(CR_FLABEL));
        if (t->panels[t->cur].cls->name && strcmp(t->panels[t->cur].cls->name, k->label) == 0)
            attrset(crt_attr(CR_TITLE));
        x += crt_put(y, x, lw, k->label, 1);
    }
    if (hit >= 0) return 0;
    attrset(crt_attr(CR_FLABEL));
    for (; x < w; x++) mvaddch(y, x, ' ');
    attrset(crt_attr(CR_DEFAULT));
    return 0;
}

static void draw_hint(Tui *t, Panel *p, int y, int w) {
    move(y, 0);
    clrtoeol();
    if (t->flash[0] && tui_now() < t->flash_until) {
        attrset(crt_attr(CR_PROMPT));
        crt_put(y, 1, w - 1, t->flash, 0);
        attrset(crt_attr(CR_DEFAULT));
        return;
    }
    char buf[512] = "";
    if (p->cls->status) {
        p->cls->status(p, buf, sizeof buf);
    } else if (p->cls->keys) {
        size_t n = 0;
        for (const PanelKey *k = p->cls->keys; k->key && n + 2 < sizeof buf; k++) {
            if (!k->name) continue;
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s %s  ", k->name, k->help);
            if (n >= sizeof buf) n = sizeof buf - 1;
        }
    }
    attrset(crt_attr(CR_DIM));
    crt_put(y, 1, w - 1, buf, 0);
    attrset(crt_attr(CR_DEFAULT));
}

static void draw_title(Panel *p, int y, int w) {
    attrset(crt_attr(CR_TITLE));
    char buf[256];
    snprintf(buf, sizeof buf, " %s", p->title[0] ? p->title : (p->cls->title ? p->cls->title : p->cls->name));
    crt_put(y, 0, w, buf, 1);
    attrset(crt_attr(CR_DEFAULT));
}

/* The help screen: the global table, then the shown panel's, as the dispatcher reads them. */
static void draw_help(Tui *t, int y0, int h, int w) {
    Panel *p = &t->panels[t->cur];
    int y = y0;
    attrset(crt_attr(CR_HEADER));
    crt_putf(y++, 1, w - 2, 0, "amalgam %s - keys (any key closes this)", AM_VERSION);
    y++;
    attrset(crt_attr(CR_COLHEAD));
    crt_put(y++, 1, w - 2, "everywhere", 1);
    attrset(crt_attr(CR_DEFAULT));
    for (const TuiKey *k = global_keys; k->key && y < y0 + h; k++) {
        if (!k->name) continue;
        attrset(crt_attr(CR_FKEY));
        crt_put(y, 2, 12, k->name, 1);
        attrset(crt_attr(CR_DEFAULT));
        crt_put(y++, 15, w - 16, k->help, 0);
    }
    if (p->cls->keys && y + 2 < y0 + h) {
        y++;
        attrset(crt_attr(CR_COLHEAD));
        crt_putf(y++, 1, w - 2, 1, "%s panel", p->cls->name);
        attrset(crt_attr(CR_DEFAULT));
        for (const PanelKey *k = p->cls->keys; k->key && y < y0 + h; k++) {
            if (!k->name) continue;
            attrset(crt_attr(CR_FKEY));
            crt_put(y, 2, 12, k->name, 1);
            attrset(crt_attr(CR_DEFAULT));
            crt_put(y++, 15, w - 16, k->help, 0);
        }
    }
}

static void draw(Tui *t) {
    int h = LINES, w = COLS;
    erase();
    if (h < 8 || w < 30) {
        crt_put(0, 0, w, "terminal too small", 0);
        refresh();
        return;
    }
    Panel *p = &t->panels[t->cur];
    p->title[0] = 0;
    draw_header(t, w);
    if (t->help) {
        snprintf(p->title, sizeof p->title, "Help  (global keys and the %s panel's)", p->cls->name);
        draw_title(p, 1, w);
        draw_help(t, 2, h - 4, w);
    } else {
        p->cls->draw(p, 2, 0, h - 4, w);
        draw_title(p, 1, w);   /* after draw: the panel may set its title */
    }
    draw_hint(t, p, h - 2, w);
    keybar(t, h - 1, w, -1);
    refresh();
}

/* ---------------------------------------------------------------- dispatch */

static int dispatch(Tui *t, int key) {
    if (t->help) {
        if (key == KEY_F(10)) return act_quit(t, key);
        t->help = 0;
        return HR_REDRAW;
    }
    Panel *p = &t->panels[t->cur];
    int r = HR_IGNORED;
    if (p->cls->input) r = p->cls->input(p, key);
    for (const PanelKey *k = p->cls->keys; !r && k && k->key; k++)
        if (k->key == key && k->fn) r = k->fn(p, key);
    for (const TuiKey *k = global_keys; !r && k->key; k++)
        if (k->key == key && k->fn) r = k->fn(t, key);
    return r;
}

/* The mouse: a click on the key bar is its key, the wheel is ↑↓ in the shown panel, a click in
 * the panel goes to its click hook (list rows); any click closes the help screen. */
static int dispatch_mouse(Tui *t) {
    MEVENT ev;
    if (getmouse(&ev) != OK) return HR_IGNORED;
    int wheel_down = 0;
#ifdef BUTTON5_PRESSED
    wheel_down = (ev.bstate & BUTTON5_PRESSED) != 0;
#endif
    if (ev.bstate & BUTTON4_PRESSED) return t->help ? HR_IGNORED : dispatch(t, KEY_UP);
    if (wheel_down) return t->help ? HR_IGNORED : dispatch(t, KEY_DOWN);
    if (!(ev.bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED))) return HR_IGNORED;
    if (ev.y == LINES - 1) {
        int key = keybar(t, ev.y, COLS, ev.x);
        if (!key) return HR_IGNORED;
        t->help = 0;
        return dispatch(t, key);
    }
    if (t->help) { t->help = 0; return HR_REDRAW; }
    Panel *p = &t->panels[t->cur];
    if (p->cls->click && ev.y >= 2 && ev.y < LINES - 2) return p->cls->click(p, ev.y, ev.x);
    return HR_IGNORED;
}

static void reload(Tui *t) {
    tui_load_models(t);
    tui_load_results(t);
    tui_poll_runs(t, 1);
    Panel *p = &t->panels[t->cur];
    if (p->cls->enter) p->cls->enter(p);
}

/* ---------------------------------------------------------------- main */

static void add_panel(Tui *t, const PanelClass *c) {
    Panel *p = &t->panels[t->npanels++];
    p->cls = c;
    p->tui = t;
    p->st = xcalloc(1, c->size ? c->size : 1);
    if (c->init) c->init(p);
}

int tui_main(const TuiOptions *opt) {
    const char *dir = opt->store_dir;
    if (!dir || !*dir) dir = getenv("AMALGAM_STORE");
    if (!dir || !*dir) dir = "store";
    int headless = opt->frames > 0 && (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO));
    if (!headless && (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))) {
        fprintf(stderr, "amalgam: error: tui needs a terminal (--frames N runs it headless)\n");
        return 2;
    }
    Tui *t = xcalloc(1, sizeof *t);
    snprintf(t->store_dir, sizeof t->store_dir, "%s", dir);
    t->ref = -1;
    t->L = am_lua_newstate(dir);
    if (!t->L) { free(t); return 1; }
    am_lua_ctx(t->L)->store_flags = AM_STORE_EXISTING;
    t->store = am_lua_default_store(t->L);
    if (!t->store) {
        fprintf(stderr, "amalgam: error: %s\n", am_lasterror());
        lua_close(t->L);
        free(t);
        return 1;
    }
    const char *err = "";
    if (crt_init(headless, &err)) {
        fprintf(stderr, "amalgam: error: tui: %s\n", err);
        lua_close(t->L);
        free(t);
        return 1;
    }
    const PanelClass *classes[] = {&ModelsPanel, &MergePanel, &ResultsPanel, &PlotPanel,
                                   &RunsPanel, &ConsolePanel, &LogPanel, &SweepsPanel, &MatryoshkaPanel};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) add_panel(t, classes[i]);
    crt_logf("amalgam %s tui on %s", AM_VERSION, t->store_dir);
    reload(t);
    show(t, 0);
    if (opt->panel) tui_switch(t, opt->panel);
    if (opt->nsteps > 0) t->demo = tui_demo_new(t, opt->steps, opt->nsteps, opt->log_path);
    t->frames = opt->frames;
    timeout(headless ? 0 : 100);
    int start = t->cur;
    while (!t->quit && !crt_quit_signal) {
        crt_log_poll();
        if (t->frames > 0) show(t, (start + t->frame) % t->npanels);   /* headless: each panel in turn */
        Panel *p = &t->panels[t->cur];
        if (p->cls->tick) p->cls->tick(p);
        for (int i = 0; i < t->npanels; i++)
            if (t->panels[i].cls->poll) t->panels[i].cls->poll(&t->panels[i]);
        tui_poll_runs(t, 0);   /* the header's run meters follow live runs on every panel */
        if (t->demo && tui_demo_tick(t)) reload(t);
        draw(t);
        if (t->key_t0 > 0) {
            double lat = tui_now() - t->key_t0;
            t->lat_sum += lat, t->nkeys++;
            if (lat > t->lat_max) t->lat_max = lat;
            t->key_t0 = 0;
        }
        t->frame++;
        if (t->frames > 0 && t->frame >= t->frames) break;
        int key = getch();
        if (key == ERR) continue;
        if (key == KEY_RESIZE) continue;
        t->key_t0 = tui_now();
        int r = key == KEY_MOUSE ? dispatch_mouse(t) : dispatch(t, key);
        if (r & HR_RELOAD) reload(t);
        if (r & HR_BREAK) break;
    }
    int sig = crt_quit_signal;
    crt_done();
    tui_demo_free(t);
    for (int i = 0; i < t->npanels; i++) {
        Panel *p = &t->panels[i];
        if (p->cls->done) p->cls->done(p);
        free(p->st);
    }
    tui_data_free(t);
    lua_close(t->L);
    crt_free();
    free(t);
    return sig ? 128 + sig : 0;
}

/* ---------------------------------------------------------------- lists */

int tui_list_key(int *sel, int n, int page, int key) {
    int s = *sel;
    switch (key) {
    case KEY_UP: case 'k': s--; break;
    case KEY_DOWN: case 'j': s++; break;
    case KEY_PPAGE: s -= page > 1 ? page - 1 : 1; break;
    case KEY_NPAGE: s += page > 1 ? page - 1 : 1; break;
    case KEY_HOME: case 'g': s = 0; break;
    case KEY_END: case 'G': s = n - 1; break;
    default: return HR_IGNORED;
    }
    if (s >= n) s = n - 1;
    if (s < 0) s = 0;
    *sel = s;
    return HR_REDRAW;
}

void tui_list_fit(int sel, int *top, int n, int h) {
    if (h < 1) h = 1;
    if (sel < *top) *top = sel;
    if (sel >= *top + h) *top = sel - h + 1;
    if (*top > n - h) *top = n - h;
    if (*top < 0) *top = 0;
}
