/* p_runs.c - the Runs panel: every training run of the store, live ones first and followed
 * (data.c polls their metrics after the last step seen, every second), with a loss sparkline,
 * the last loss, lr, tokens/s and the time left; the selected run (and any live one) shows a
 * sparkline per task; Enter shows the run's arguments. */
#define _GNU_SOURCE
#include "tui_internal.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <lua.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int sel, top;
    int list_y, list_h;    /* the screen rows of the list (mouse clicks) */
    int detail;
    pid_t children[16];    /* resume processes started here, reaped in tick */
    int nchildren;
    char confirm[256];     /* the run a first `k` asked about */
    double confirm_until;
    /* n: the recipe picker (the .lua files of recipes/ with their usage), then the arguments prompt */
    int picking, prompting, nrec, rsel;
    char **rfile, **rdesc, **rusage;
    char rdir[512], args[400];
} RunsState;

static void recipes_free(RunsState *s) {
    for (int i = 0; i < s->nrec; i++) free(s->rfile[i]), free(s->rdesc[i]), free(s->rusage[i]);
    free(s->rfile), free(s->rdesc), free(s->rusage);
    s->rfile = s->rdesc = s->rusage = NULL;
    s->nrec = 0;
}

static time_t parse_iso(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) return 0;
    return timegm(&tm);
}

static void fmt_dur(char *b, size_t n, double sec) {
    if (sec < 0) sec = 0;
    if (sec < 3600) snprintf(b, n, "%d:%02d", (int)sec / 60, (int)sec % 60);
    else snprintf(b, n, "%dh%02d", (int)sec / 3600, (int)sec / 60 % 60);
}

static int status_role(const TuiRun *r) {
    if (r->live) return CR_GAIN;
    if (strcmp(r->status, "done") == 0) return CR_DEFAULT;
    if (strcmp(r->status, "failed") == 0) return CR_ERROR;
    return CR_PARETO;   /* stopped, interrupted, or running without a process */
}

/* rows a run takes: 1, plus one per task when it is expanded */
static int run_rows(const TuiRun *r, int selected) {
    return 1 + ((selected || r->live) && r->ntasks > 1 ? r->ntasks : 0);
}

/* the picker over the panel: the recipes, the selected one's description and usage, the prompt */
static void draw_picker(Panel *p, int y, int x, int h, int w) {
    RunsState *s = p->st;
    snprintf(p->title, sizeof p->title, "Runs > start a recipe  (%.100s)", s->rdir);
    attrset(crt_attr(CR_COLHEAD));
    mvhline(y, x, ' ', w);
    crt_putf(y, x + 1, w - 2, 0, "%-24s %s", "recipe", "what it does");
    attrset(crt_attr(CR_DEFAULT));
    int lh = h - 8 > 3 ? h - 8 : 3, top = 0;
    if (lh > s->nrec) lh = s->nrec;
    tui_list_fit(s->rsel, &top, s->nrec, lh);
    for (int i = 0; i < lh && top + i < s->nrec; i++) {
        int k = top + i, sel = k == s->rsel;
        attrset(sel ? crt_attr(CR_SELECT) : crt_attr(CR_DEFAULT));
        if (sel) mvhline(y + 1 + i, x, ' ', w);
        crt_putf(y + 1 + i, x, w, 0, "%s%-24s %s", sel ? crt_glyphs.sel : " ", s->rfile[k], s->rdesc[k]);
    }
    attrset(crt_attr(CR_DEFAULT));
    if (s->rsel >= s->nrec) return;
    int uy = y + 2 + lh;
    attrset(crt_attr(CR_DIM));
    /* the usage: its lines are "\n"-separated */
    const char *u = s->rusage[s->rsel];
    for (int line = 0; line < 4 && *u; line++) {
        const char *e = strchr(u, '\n');
        int n = e ? (int)(e - u) : (int)strlen(u);
        crt_putf(uy + line, x + 1, w - 2, 0, "%.*s", n, u);
        u = e ? e + 1 : u + n;
    }
    attrset(crt_attr(CR_DEFAULT));
    if (s->prompting) {
        attrset(crt_attr(CR_PROMPT));
        crt_putf(uy + 4, x + 1, w - 2, 0, "amalgam run %s %s_", s->rfile[s->rsel], s->args);
        attrset(crt_attr(CR_DEFAULT));
    }
}

static void runs_draw(Panel *p, int y, int x, int h, int w) {
    RunsState *s = p->st;
    Tui *t = p->tui;
    if (s->picking) { draw_picker(p, y, x, h, w); return; }
    snprintf(p->title, sizeof p->title, "Runs  %d in the store, %d live%s", t->nruns, t->nlive,
             t->nlive ? "  (following: metrics polled every second)" : "");
    if (t->nruns == 0) {
        crt_put(y + 1, x + 2, w - 4, "No training runs. Start one: amalgam run recipes/train_tasks.lua", 0);
        return;
    }
    if (s->sel >= t->nruns) s->sel = t->nruns - 1;
    int sw = 8, stw = 11, spw = w >= 100 ? 20 : 12, lrw = w >= 100 ? 10 : 0;  /* narrow: no lr column */
    int iw = w - (sw + stw + 4 + spw + 26 + lrw);   /* the id takes what the numbers leave */
    if (iw > 44) iw = 44;
    if (iw < 16) iw = 16;
    int sx0 = x + iw + sw + stw + 4;
    attrset(crt_attr(CR_COLHEAD));
    mvhline(y, x, ' ', w);
    crt_put(y, x + 1, iw - 1, "run", 0);
    crt_put(y, x + iw + 1, sw, "status", 0);
    crt_put(y, x + iw + sw + 2, stw, "       step", 0);
    crt_put(y, sx0, spw, "loss", 0);
    crt_put(y, sx0 + spw + 1, 7, "   last", 0);
    if (lrw) crt_put(y, sx0 + spw + 9, 9, "       lr", 0);
    crt_put(y, sx0 + spw + 9 + lrw, 8, "   tok/s", 0);
    crt_put(y, sx0 + spw + 18 + lrw, w - (sx0 + spw + 18 + lrw), "  time", 0);
    attrset(crt_attr(CR_DEFAULT));
    int avail = h - 1 - (s->detail ? 4 : 0);
    s->list_y = y + 1, s->list_h = avail;
    /* keep the selection visible: count rows from top */
    if (s->sel < s->top) s->top = s->sel;
    for (;;) {
        int used = 0;
        for (int i = s->top; i <= s->sel; i++) used += run_rows(&t->runs[i], i == s->sel);
        if (used <= avail || s->top >= s->sel) break;
        s->top++;
    }
    time_t now = time(NULL);
    int yy = y + 1;
    for (int i = s->top; i < t->nruns && yy < y + 1 + avail; i++) {
        TuiRun *r = &t->runs[i];
        int sel = i == s->sel;
        attrset(sel ? crt_attr(CR_SELECT) : crt_attr(CR_DEFAULT));
        if (sel) mvhline(yy, x, ' ', w);
        crt_putf(yy, x, iw, 1, "%s%s", sel ? crt_glyphs.sel : " ", r->id);
        if (!sel) attrset(crt_attr(status_role(r)));
        const char *st = r->live ? "running" : strcmp(r->status, "running") == 0 ? "no proc" : r->status;
        crt_put(yy, x + iw + 1, sw, st, 1);
        if (!sel) attrset(crt_attr(CR_DEFAULT));
        crt_putf(yy, x + iw + sw + 2, stw, 0, "%*d/%-*d", stw / 2, r->step, stw - stw / 2 - 1, r->steps);
        /* the loss of all tasks together (the last task's history when there is one) */
        int sx = x + iw + sw + stw + 4;
        if (r->ntasks > 0) {
            TuiRunTask *k = &r->tasks[0];
            if (r->ntasks > 1) {
                /* interleaved tasks: the sparkline of the task with the most rows */
                for (int j = 1; j < r->ntasks; j++)
                    if (r->tasks[j].n > k->n) k = &r->tasks[j];
            }
            if (!sel) attrset(crt_attr(CR_GRAPH));
            crt_spark(yy, sx, spw, k->loss, k->n);
            if (!sel) attrset(crt_attr(CR_DEFAULT));
            crt_putf(yy, sx + spw + 1, 7, 0, "%7.3f", r->last_loss);
        } else {
            crt_put(yy, sx, spw, r->seen ? "" : "no metrics", 0);
        }
        if (lrw) crt_putf(yy, sx + spw + 9, 9, 0, "%9.2e", r->lr);
        if (r->tok_s > 0) crt_putf(yy, sx + spw + 9 + lrw, 8, 0, "%7.1fk", r->tok_s / 1e3);
        char d[16] = "";
        time_t t0 = parse_iso(r->start), t1 = parse_iso(r->end);
        if (r->live && r->step > 0 && t0) {
            double el = difftime(now, t0);
            fmt_dur(d, sizeof d, el / r->step * (r->steps - r->step));
            crt_putf(yy, sx + spw + 18 + lrw, w - (sx + spw + 18 + lrw), 0, "ETA %s", d);
        } else if (t0 && t1) {
            fmt_dur(d, sizeof d, difftime(t1, t0));
            crt_putf(yy, sx + spw + 18 + lrw, w - (sx + spw + 18 + lrw), 0, "%6s", d);
        }
        attrset(crt_attr(CR_DEFAULT));
        yy++;
        if ((sel || r->live) && r->ntasks > 1)
            for (int j = 0; j < r->ntasks && yy < y + 1 + avail; j++, yy++) {
                TuiRunTask *k = &r->tasks[j];
                attrset(crt_attr(CR_DIM));
                crt_putf(yy, x + 3, iw + sw + stw - 1, 0, "%-*s %d steps", iw - 3, k->name, k->n);
                attrset(crt_attr(CR_GRAPH));
                crt_spark(yy, sx, spw, k->loss, k->n);
                attrset(crt_attr(CR_DEFAULT));
                crt_putf(yy, sx + spw + 1, 7, 0, "%7.3f", k->last);
            }
    }
    if (s->detail && s->sel < t->nruns) {
        TuiRun *r = &t->runs[s->sel];
        int dy = y + h - 4;
        attrset(crt_attr(CR_COLHEAD));
        crt_putf(dy, x, w, 1, " %s", r->id);
        attrset(crt_attr(CR_DEFAULT));
        crt_putf(dy + 1, x + 1, w - 2, 0, "started %s  ended %s  final model %s", r->start, r->end[0] ? r->end : "-",
                 r->final_model[0] ? tui_model_label(t, r->final_model) : "-");
        crt_putf(dy + 2, x + 1, w - 2, 0, "args %s", r->args);
        attrset(crt_attr(CR_DIM));
        crt_putf(dy + 3, x + 1, w - 2, 0, "amalgam info %.40s   amalgam resume %.40s", r->id, r->id);
        attrset(crt_attr(CR_DEFAULT));
    }
}

static void runs_tick(Panel *p) {
    RunsState *s = p->st;
    /* reap our own resume children only (a console io.popen must keep its child) */
    for (int i = 0; i < s->nchildren; i++) {
        int st;
        pid_t r = waitpid(s->children[i], &st, WNOHANG);
        if (r == s->children[i] || (r < 0 && errno == ECHILD)) {
            if (r > 0) crt_logf("tui: resume process %d ended (exit %d)", (int)r, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            s->children[i--] = s->children[--s->nchildren];
            tui_poll_runs(p->tui, 1);
        }
    }
    tui_poll_runs(p->tui, 0);
}

/* a click on a run's rows (its line or its tasks' sparklines) selects it */
static int runs_click(Panel *p, int y, int x) {
    RunsState *s = p->st;
    Tui *t = p->tui;
    if (s->picking || y < s->list_y || y >= s->list_y + s->list_h) return HR_IGNORED;
    for (int i = s->top, yy = s->list_y; i < t->nruns && yy <= y; i++) {
        yy += run_rows(&t->runs[i], i == s->sel);
        if (y < yy) { s->sel = i; return HR_REDRAW; }
    }
    return HR_IGNORED;
}

static int runs_move(Panel *p, int key) {
    RunsState *s = p->st;
    return tui_list_key(&s->sel, p->tui->nruns, 5, key);
}

static int runs_detail(Panel *p, int key) {
    RunsState *s = p->st;
    s->detail = !s->detail;
    return HR_REDRAW;
}

static int runs_refresh(Panel *p, int key) {
    tui_poll_runs(p->tui, 1);
    return HR_REDRAW;
}

/* k, then k again: SIGINT to the live run's process, which stops at the next step boundary,
 * writes a checkpoint and can be resumed (amalgam resume RUN), as Ctrl-C in its terminal would. */
static int runs_stop(Panel *p, int key) {
    RunsState *s = p->st;
    Tui *t = p->tui;
    if (s->sel >= t->nruns) return HR_HANDLED;
    TuiRun *r = &t->runs[s->sel];
    if (!r->live) { tui_flash(t, "%s is not running", r->id); return HR_REDRAW; }
    if (strcmp(s->confirm, r->id) != 0 || tui_now() > s->confirm_until) {
        snprintf(s->confirm, sizeof s->confirm, "%s", r->id);
        s->confirm_until = tui_now() + 3;
        tui_flash(t, "k again stops %s (pid %d; it can be resumed)", r->id, r->pid);
        return HR_REDRAW;
    }
    s->confirm[0] = 0;
    if (kill(r->pid, SIGINT) == 0) tui_flash(t, "asked %s to stop (SIGINT to pid %d)", r->id, r->pid);
    else tui_flash(t, "cannot signal pid %d: %s", r->pid, strerror(errno));
    tui_poll_runs(t, 1);
    return HR_REDRAW;
}

/* c: continue a stopped run in a background process (`amalgam resume RUN`, its own session so
 * the TUI's Ctrl-C does not reach it, output in a log file); the panel follows it like any live
 * run. The TUI's own loop never trains. */

static int runs_resume(Panel *p, int key) {
    RunsState *s = p->st;
    Tui *t = p->tui;
    if (s->sel >= t->nruns) return HR_HANDLED;
    TuiRun *r = &t->runs[s->sel];
    if (r->live || strcmp(r->status, "done") == 0) {
        tui_flash(t, "%s is %s: nothing to resume", r->id, r->live ? "running" : "done");
        return HR_REDRAW;
    }
    char log[800], stem[80];
    snprintf(stem, sizeof stem, "resume-%.12s", r->id);
    tui_log_path(t, stem, log, sizeof log);
    char a0[] = "amalgam", a1[] = "--store", a3[] = "resume";
    char *argv[] = {a0, a1, t->store_dir, a3, r->id, NULL};
    pid_t pid;
    int rc = tui_spawn(argv, log, 0, &pid);
    if (rc) { tui_flash(t, "cannot start amalgam resume: %s", strerror(rc)); return HR_REDRAW; }
    if (s->nchildren < 16) s->children[s->nchildren++] = pid;
    crt_logf("tui: resuming %s in pid %d, output in %s", r->id, (int)pid, log);
    tui_flash(t, "resuming %s in pid %d (output: %s)", r->id, (int)pid, log);
    return HR_REDRAW;
}

/* ---------------------------------------------------------------- starting a recipe */

/* recipes/: $AMALGAM_RECIPES, else ./recipes, else the source tree's */
static void recipes_dir(char *buf, size_t cap) {
    const char *env = getenv("AMALGAM_RECIPES");
    if (env && *env) snprintf(buf, cap, "%s", env);
    else if (access("recipes", R_OK | X_OK) == 0) snprintf(buf, cap, "recipes");
    else snprintf(buf, cap, "%s/recipes", AM_SOURCE_DIR);
}

static int runs_new(Panel *p, int key) {
    RunsState *s = p->st;
    Tui *t = p->tui;
    recipes_free(s);
    recipes_dir(s->rdir, sizeof s->rdir);
    if (tui_lua_call(t, "recipes", 1, (const char *const[]){s->rdir})) return HR_REDRAW;
    lua_State *L = t->L;
    int n = (int)lua_rawlen(L, -1);
    s->rfile = calloc((size_t)n + 1, sizeof *s->rfile);
    s->rdesc = calloc((size_t)n + 1, sizeof *s->rdesc);
    s->rusage = calloc((size_t)n + 1, sizeof *s->rusage);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        s->rfile[s->nrec] = tui_field_str(L, -1, "file");
        s->rdesc[s->nrec] = tui_field_str(L, -1, "desc");
        s->rusage[s->nrec++] = tui_field_str(L, -1, "usage");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!s->nrec) { tui_flash(t, "no recipes in %s (AMALGAM_RECIPES names another directory)", s->rdir); return HR_REDRAW; }
    s->picking = 1, s->prompting = 0, s->rsel = 0, s->args[0] = 0;
    return HR_REDRAW;
}

/* `amalgam --store STORE run DIR/FILE ARGS...` in its own session (the TUI's Ctrl-C and its
 * terminal closing do not reach it; it survives the TUI quitting), output in STORE/logs/. */
static void start_recipe(Panel *p) {
    RunsState *s = p->st;
    Tui *t = p->tui;
    char path[1024], log[800], stem[300], *argv[64];
    snprintf(path, sizeof path, "%s/%s", s->rdir, s->rfile[s->rsel]);
    snprintf(stem, sizeof stem, "%.*s", (int)strcspn(s->rfile[s->rsel], "."), s->rfile[s->rsel]);
    tui_log_path(t, stem, log, sizeof log);
    int argc = 0;
    char a0[] = "amalgam", a1[] = "--store", a3[] = "run";
    argv[argc++] = a0, argv[argc++] = a1, argv[argc++] = t->store_dir, argv[argc++] = a3, argv[argc++] = path;
    char args[sizeof s->args];
    snprintf(args, sizeof args, "%s", s->args);
    for (char *save = NULL, *tok = strtok_r(args, " \t", &save); tok && argc < 62; tok = strtok_r(NULL, " \t", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    pid_t pid;
    int rc = tui_spawn(argv, log, 0, &pid);
    s->picking = s->prompting = 0;
    if (rc) { tui_flash(t, "cannot start amalgam run: %s", strerror(rc)); return; }
    if (s->nchildren < 16) s->children[s->nchildren++] = pid;
    crt_logf("tui: amalgam run %s %s in pid %d, output in %s", path, s->args, (int)pid, log);
    tui_flash(t, "started %s in pid %d (output: %s)", s->rfile[s->rsel], (int)pid, log);
    t->runs_polled = 0;   /* poll soon: the run's record appears when it starts training */
}

/* keys while the picker or the prompt is up */
static int runs_input(Panel *p, int key) {
    RunsState *s = p->st;
    if (!s->picking) return HR_IGNORED;
    int enter = key == '\r' || key == '\n' || key == KEY_ENTER;
    if (s->prompting) {
        size_t n = strlen(s->args);
        if (key == 27) s->prompting = 0;
        else if (enter) start_recipe(p);
        else if (key == KEY_BACKSPACE || key == 127 || key == 8) { if (n) s->args[n - 1] = 0; }
        else if (key >= 32 && key < 256 && key != 127 && n + 1 < sizeof s->args) s->args[n] = (char)key, s->args[n + 1] = 0;
        else if (key >= KEY_F(1) && key <= KEY_F(12)) return HR_IGNORED;   /* the panels and quit stay reachable */
        return HR_REDRAW;
    }
    if (key == 27 || key == 'q') s->picking = 0;
    else if (enter) s->prompting = 1;
    else if (tui_list_key(&s->rsel, s->nrec, 5, key) == HR_IGNORED)
        return (key >= KEY_F(1) && key <= KEY_F(12)) || key == '\t' || key == KEY_BTAB ? HR_IGNORED : HR_REDRAW;
    return HR_REDRAW;
}

static void runs_status(Panel *p, char *buf, size_t cap) {
    RunsState *s = p->st;
    if (s->prompting) { snprintf(buf, cap, "arguments key=value ... (Enter starts it in the background, Esc back)"); return; }
    if (s->picking) { snprintf(buf, cap, "↑↓ select a recipe  Enter its arguments  Esc cancel"); return; }
    size_t n = 0;
    buf[0] = 0;
    for (const PanelKey *k = p->cls->keys; k->key && n + 2 < cap; k++) {
        if (!k->name) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s %s  ", k->name, k->help);
        if (n >= cap) n = cap - 1;
    }
}

static void runs_done(Panel *p) { recipes_free(p->st); }

static const PanelKey runs_keys[] = {
    {KEY_UP, "↑↓", runs_move, "select"},
    {KEY_DOWN, NULL, runs_move, NULL},
    {'j', NULL, runs_move, NULL},
    {KEY_PPAGE, NULL, runs_move, NULL},
    {KEY_NPAGE, NULL, runs_move, NULL},
    {KEY_HOME, NULL, runs_move, NULL},
    {KEY_END, NULL, runs_move, NULL},
    {'\r', "Enter", runs_detail, "the run's arguments and models"},
    {'\n', NULL, runs_detail, NULL},
    {KEY_ENTER, NULL, runs_detail, NULL},
    {'n', "n", runs_new, "start a recipe from recipes/ with arguments (in the background; it outlives the TUI)"},
    {'u', "u", runs_refresh, "poll now"},
    {'c', "c", runs_resume, "continue a stopped run in the background (amalgam resume RUN)"},
    {'k', "k k", runs_stop, "stop a live run (SIGINT: it checkpoints; amalgam resume RUN continues it)"},
    {KEY_MOUSE, "mouse", NULL, "click a run: select it; the wheel scrolls"},
    {0},
};

const PanelClass RunsPanel = {
    .name = "Runs", .id = "runs", .size = sizeof(RunsState), .draw = runs_draw, .tick = runs_tick,
    .keys = runs_keys, .input = runs_input, .status = runs_status, .done = runs_done, .click = runs_click,
};
