/* tui_internal.h - what the TUI's files share: the Tui object, panels and their key tables,
 * meters, and the data the panels read from the store (data.c). */
#ifndef AM_TUI_INTERNAL_H
#define AM_TUI_INTERNAL_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crt.h"
#include "store.h"
#include "tui.h"

/* Handler results (htop HandlerResult): bit flags a key handler returns. */
enum {
    HR_IGNORED = 0,      /* not this handler's key: try the next table */
    HR_HANDLED = 1,
    HR_REDRAW = 2,
    HR_BREAK = 4,        /* leave the loop */
    HR_RELOAD = 8,       /* re-read the store */
};

typedef struct Tui Tui;
typedef struct Panel Panel;

/* One key table per scope, {key, name, action, help}: the dispatcher and the help screen read
 * the same rows, so `?` always prints the real bindings. Tables end with a {0} row. */
typedef int (*PanelAction)(Panel *p, int key);
typedef struct {
    int key;
    const char *name;      /* as shown: "↑↓", "Enter", "o" */
    PanelAction fn;        /* NULL: a row for the help screen only (the key is handled by input) */
    const char *help;
} PanelKey;

typedef int (*TuiAction)(Tui *t, int key);
typedef struct {
    int key;
    const char *name;
    TuiAction fn;
    const char *label;     /* non-NULL: shown in the function-key bar */
    const char *help;
} TuiKey;

/* A panel class (htop's Object/Panel vtable, designated initializers). */
typedef struct {
    const char *name;      /* "Models" */
    const char *id;        /* "models" (--panel, :panel in Lua) */
    size_t size;           /* bytes of the panel's state, zeroed before init */
    void (*init)(Panel *p);
    void (*done)(Panel *p);
    void (*enter)(Panel *p);                         /* shown (again) */
    void (*tick)(Panel *p);                          /* every turn of the loop while shown */
    void (*poll)(Panel *p);                          /* every turn of the loop, shown or not */
    void (*draw)(Panel *p, int y, int x, int h, int w);
    int (*input)(Panel *p, int key);                 /* raw keys before the tables (text entry) */
    const PanelKey *keys;
    const char *title;     /* NULL: name */
    void (*status)(Panel *p, char *buf, size_t cap); /* the hint line's text; NULL: from keys */
    int (*click)(Panel *p, int y, int x);            /* a mouse click at screen (y, x) in the panel; NULL: none */
} PanelClass;

struct Panel {
    const PanelClass *cls;
    Tui *tui;
    void *st;              /* cls->size bytes */
    char title[160];       /* set by draw for the title bar; empty: the class name */
};

/* A meter of the header line: a value drawn in a few columns (htop Meter, tiny vtable). */
typedef struct Meter Meter;
typedef struct {
    const char *name;
    void (*text)(Tui *t, char *buf, size_t cap);
} MeterClass;

/* ---------------------------------------------------------------- the data */

typedef struct {
    char id[33];
    char *label, *kind, *recipe, *parent_label, *names, *created;
    int depth, layers, hidden, recipe_only;
    double n_params;
} TuiModel;

typedef struct {
    char *name, *tag, *metric;   /* tag "id", "ood" or "" */
} TuiTask;

typedef struct {
    char id[33];
    char *name;
    double *scores;              /* ntasks, NAN = no result */
    double id_avg, ood_avg;      /* NAN when no task of the tag has a result */
    int id_n, ood_n;             /* how many tasks of the tag the average covers */
} TuiRow;

typedef struct {
    char mode[8];                /* "full" | "quick" */
    int ntasks, nrows, n_id, n_ood;
    TuiTask *tasks;
    TuiRow *rows;
} TuiResults;

typedef struct {
    char *name;
    float *loss;                 /* every loss of this task, in step order */
    int n, cap;
    double last;
} TuiRunTask;

typedef struct {
    char *id, *status, *start, *end, *final_model, *name;
    int step, steps, pid, live;  /* live: "running" and its process exists */
    double lr, tok_s, last_loss;
    uint32_t seen;               /* last metrics step read */
    int ntasks;
    TuiRunTask *tasks;
    char *args;                  /* the record's args, one line of JSON */
} TuiRun;

#define TUI_MAX_PANELS 12

struct Tui {
    lua_State *L;
    Store *store;                /* the Lua state's default store (borrowed) */
    char store_dir[512];
    Panel panels[TUI_MAX_PANELS];
    int npanels, cur;
    int help;                    /* the help screen is up */
    int frames, frame;
    int quit;
    /* data shared by the panels (data.c) */
    TuiModel *models;
    int nmodels, models_gen;      /* models_gen: bumped on every reload (indices change) */
    TuiResults results[2];       /* full, quick */
    int nresults;
    int mode;                    /* which of results[] the Results / Plot / Merge panels show */
    int ref;                     /* reference row in results[mode] (-1: none) */
    TuiRun *runs;
    int nruns, nlive;
    double runs_polled, store_polled;
    double key_t0, lat_sum, lat_max;   /* key latency: key read -> its screen drawn */
    int nkeys;
    char selected[33];           /* the model picked last (Models, Results, Plot, a Sweeps cell): the others follow */
    char flash[256];             /* a one-line message in the hint line */
    double flash_until;
    struct TuiDemo *demo;        /* a plan being run (demo.c), NULL none */
};

/* screen.c */
double tui_now(void);                         /* monotonic seconds */
void tui_flash(Tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tui_switch(Tui *t, const char *id);      /* show panel id */
Panel *tui_panel(Tui *t, const char *id);

/* demo.c: the plan of TuiOptions.steps, one child process after another. tick returns 1 when a
 * step ended (the store changed: reload); the meter is the header's status of the plan. */
typedef struct TuiDemo TuiDemo;
TuiDemo *tui_demo_new(Tui *t, const TuiStep *steps, int n, const char *log_path);
int tui_demo_tick(Tui *t);
void tui_demo_meter(Tui *t, char *buf, size_t cap);
void tui_demo_free(Tui *t);   /* after crt_done: says on stderr what goes on */

/* spawn.c: run the binary with argv (argv[0] "amalgam") in its own session, stdin /dev/null,
 * stdout and stderr to log (appended or truncated); 0 or an errno value (posix_spawn's). */
int tui_spawn(char *const argv[], const char *log, int append, pid_t *pid);
void tui_log_path(Tui *t, const char *stem, char *buf, size_t cap);   /* STORE/logs/STEM-TIME.log */

/* data.c: read the store. Each returns 0 or -1 (the reason in the log and the flash line). */
int tui_load_models(Tui *t);
int tui_load_results(Tui *t);
int tui_poll_runs(Tui *t, int force);         /* run list + new metrics of live runs */
void tui_data_free(Tui *t);
TuiResults *tui_results(Tui *t);              /* the shown mode's table (may have 0 rows) */
/* tui_load_results in two halves, so a worker thread with a Lua state of its own can read:
 * read parses the results of L's store into out[0..*n) (0, or -1 with the message in err);
 * install makes them the Tui's (in is emptied), keeping the shown mode and the reference. */
int tui_results_read(lua_State *L, TuiResults out[2], int *n, char *err, size_t cap);
void tui_results_install(Tui *t, TuiResults in[2], int n);
void tui_results_free(TuiResults *r);
/* Call require("amalgam.tui")[fn](args...) with the string args; on success the result is on
 * the stack (return 0), else the message is logged and -1 returned (stack unchanged). */
int tui_lua_call(Tui *t, const char *fn, int nargs, const char *const *args);
/* lua table helpers: field of the table at idx */
char *tui_field_str(lua_State *L, int idx, const char *k);   /* malloc'd, "" if absent */
double tui_field_num(lua_State *L, int idx, const char *k, double def);
const char *tui_model_label(Tui *t, const char *id);         /* label or id prefix */

/* A scrolled list: the selection moves with ↑↓ PgUp PgDn Home End (also k j); returns
 * HR_REDRAW when the key was one of those. fit keeps sel visible in h rows. */
int tui_list_key(int *sel, int n, int page, int key);
void tui_list_fit(int sel, int *top, int n, int h);

/* the panel classes */
extern const PanelClass ModelsPanel, ResultsPanel, PlotPanel, RunsPanel, ConsolePanel, LogPanel, MergePanel;
extern const PanelClass SweepsPanel, MatryoshkaPanel;
/* p_sweeps.c: a heat-map cell (v x100 on a five-level ramp between lo and hi: colours, or shade
 * glyphs without them; best marked, cursor reversed) and the ramp's legend */
void tui_heat_cell(int y, int x, int cw, double v, double lo, double hi, int best, int cursor);
void tui_heat_legend(int y, int x, int w, double lo, double hi);
void tui_heat_edge(int y, int x);

/* the Pareto front of (x, y) points, both maximised: on[i] = 1 for points no other point
 * dominates. NAN points are never on it. */
void tui_pareto(const double *x, const double *y, int n, int *on);
void tui_scatter(int y, int x, int h, int w, const double *xs, const double *ys, const char *marks, const int *front,
                 int n, int sel, int special);   /* p_plot.c: scores x100; special: the current merge, -1 none */
/* "12.3" or "—" for a score (x 100) in w columns, right-aligned */
void tui_fmt_score(char *buf, size_t cap, double v);

#endif
