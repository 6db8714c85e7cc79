/* tui.h - the terminal workbench (`amalgam` on a terminal, `amalgam tui`).
 *
 * One process, one Lua state (the same host recipes run in, src/lua/l_host.c) and the store it
 * opens; panels read the store through the Lua API (lua/amalgam/tui.lua) and the C run API
 * (src/store/store_runs.h). The layer is organised as htop is: crt.c (terminal, colours,
 * signals, captured stderr), screen.c (the one loop, the key table, the header meters and the
 * key bar), one file per panel (p_*.c). */
#ifndef AM_TUI_H
#define AM_TUI_H

/* One step of a plan the TUI drives (`amalgam demo` on a terminal): a child `amalgam --store DIR
 * ARGV...` in its own session, output appended to the plan's log file. */
typedef struct {
    const char *title;       /* "pretrain base-tiny with MLM (recipes/pretrain_base.lua)" */
    char *const *argv;       /* the command after `amalgam --store DIR`, NULL-terminated */
    double est;              /* expected seconds on 2 cores (for the ETA) */
} TuiStep;

typedef struct {
    const char *store_dir;   /* NULL: $AMALGAM_STORE or ./store */
    int frames;              /* > 0: exit after this many redraws, showing the panels in turn */
    const char *panel;       /* the panel to open on ("models", "results", ...), NULL: models */
    const TuiStep *steps;    /* a plan run one step after another while the TUI shows it (demo.c) */
    int nsteps;
    const char *log_path;    /* where the steps' output goes (appended) */
} TuiOptions;

/* <store>/demo.pid names the plan step running now (demo.c), so a demo started while an earlier
 * one's step still runs (the TUI was closed) waits for it instead of doing the same work twice.
 * write(pid <= 0) removes it; running returns the pid of a live amalgam process, else 0. */
void tui_demo_pid_write(const char *store_dir, int pid, int step);
int tui_demo_pid_running(const char *store_dir);

/* Run the TUI until the user quits. Returns an exit code: 0, 1 (could not start: the message
 * is on stderr), 128 + signal after SIGTERM/SIGINT/SIGHUP. */
int tui_main(const TuiOptions *opt);

#endif
