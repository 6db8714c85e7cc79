/* tui.h - the terminal workbench (`amalgam` on a terminal, `amalgam tui`).
 *
 * One process, one Lua state (the same host recipes run in, src/lua/l_host.c) and the store it
 * opens; panels read the store through the Lua API (lua/amalgam/tui.lua) and the C run API
 * (src/store/store_runs.h). The layer is organised as htop is: crt.c (terminal, colours,
 * signals, captured stderr), screen.c (the one loop, the key table, the header meters and the
 * key bar), one file per panel (p_*.c). */
#ifndef AM_TUI_H
#define AM_TUI_H

typedef struct {
    const char *store_dir;   /* NULL: $AMALGAM_STORE or ./store */
    int frames;              /* > 0: exit after this many redraws, showing the panels in turn */
    const char *panel;       /* the panel to open on ("models", "results", ...), NULL: models */
} TuiOptions;

/* Run the TUI until the user quits. Returns an exit code: 0, 1 (could not start: the message
 * is on stderr), 128 + signal after SIGTERM/SIGINT/SIGHUP. */
int tui_main(const TuiOptions *opt);

#endif
