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
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int sel, top;
    int detail;
    pid_t children[16];    /* resume processes started here, reaped in tick */
    int nchildren;
    char confirm[256];     /* the run a first `k` asked about */
    double confirm_until;
} RunsState;

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

static void runs_draw(Panel *p, int y, int x, int h, int w) {
    RunsState *s = p->st;
    Tui *t = p->tui;
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
extern char **environ;

static int runs_resume(Panel *p, int key) {
    RunsState *s = p->st;
    Tui *t = p->tui;
    if (s->sel >= t->nruns) return HR_HANDLED;
    TuiRun *r = &t->runs[s->sel];
    if (r->live || strcmp(r->status, "done") == 0) {
        tui_flash(t, "%s is %s: nothing to resume", r->id, r->live ? "running" : "done");
        return HR_REDRAW;
    }
    char log[600];
    snprintf(log, sizeof log, "/tmp/amalgam-resume-%d-%ld.log", (int)getpid(), (long)time(NULL));
    /* posix_spawn: no code of ours runs between fork and exec */
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_init(&at);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGINT), sigaddset(&def, SIGTERM), sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF);
    char a0[] = "amalgam", a1[] = "--store", a3[] = "resume";
    char *argv[] = {a0, a1, t->store_dir, a3, r->id, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc) { tui_flash(t, "cannot start amalgam resume: %s", strerror(rc)); return HR_REDRAW; }
    if (s->nchildren < 16) s->children[s->nchildren++] = pid;
    crt_logf("tui: resuming %s in pid %d, output in %s", r->id, (int)pid, log);
    tui_flash(t, "resuming %s in pid %d (output: %s)", r->id, (int)pid, log);
    return HR_REDRAW;
}

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
    {'u', "u", runs_refresh, "poll now"},
    {'c', "c", runs_resume, "continue a stopped run in the background (amalgam resume RUN)"},
    {'k', "k k", runs_stop, "stop a live run (SIGINT: it checkpoints; amalgam resume RUN continues it)"},
    {0},
};

const PanelClass RunsPanel = {
    .name = "Runs", .id = "runs", .size = sizeof(RunsState), .draw = runs_draw, .tick = runs_tick,
    .keys = runs_keys,
};
