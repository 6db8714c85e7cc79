/* crt.h - the terminal under the TUI (htop's CRT.c): curses set-up and tear-down, colour roles,
 * glyphs with an ASCII fallback, signal handlers that give the terminal back, and stderr
 * captured into a ring of lines the Log panel shows.
 *
 * Nothing else in src/tui calls initscr/endwin or touches signals; every exit path (return from
 * the loop, SIGTERM/SIGINT/SIGHUP, SIGSEGV/SIGABRT, an AM_ASSERT through am_set_fatal_hook)
 * ends in crt_done(), which is idempotent. */
#ifndef AM_TUI_CRT_H
#define AM_TUI_CRT_H

#include <stddef.h>

/* Colour roles (htop ColorElements): panels ask for a role, the scheme maps it to a pair or,
 * without colours (monochrome terminal, NO_COLOR set), to plain attributes. */
typedef enum {
    CR_DEFAULT,
    CR_HEADER,      /* the meter line */
    CR_METER,       /* a meter's value */
    CR_TITLE,       /* a panel's title bar */
    CR_COLHEAD,     /* column headings */
    CR_SELECT,      /* the selected row */
    CR_GAIN,        /* better than the reference */
    CR_LOSS,        /* worse */
    CR_DIM,         /* within noise, secondary text */
    CR_FKEY,        /* "F1" in the key bar */
    CR_FLABEL,      /* "Help" in the key bar */
    CR_ERROR,
    CR_ID,          /* in-distribution columns */
    CR_OOD,         /* out-of-distribution columns */
    CR_PARETO,      /* points on the Pareto front */
    CR_GRAPH,       /* sparklines and bars */
    CR_PROMPT,
    CR_HEAT0, CR_HEAT1, CR_HEAT2, CR_HEAT3, CR_HEAT4,   /* heat maps, low to high */
    CR_COUNT
} ColorRole;

typedef struct {
    const char *vline, *hline, *tee, *corner;   /* tree drawing */
    const char *spark[8];                       /* ▁..█ */
    const char *bar[9];                         /* "" ▏▎▍▌▋▊▉█ */
    const char *point, *front, *sel;            /* plot markers, the selection arrow */
    const char *up, *down, *approx, *delta, *ellipsis;
    int braille;                                /* braille cells can be drawn */
} Glyphs;

extern Glyphs crt_glyphs;
extern int crt_utf8;     /* the locale is UTF-8: glyphs above are Unicode */
extern int crt_colors;   /* colour pairs in use (0: monochrome or NO_COLOR) */

/* headless: curses writes to /dev/null and reads nothing (--frames off a terminal).
 * Returns 0, or -1 with a message in am_lasterror-style text in *err. */
int crt_init(int headless, const char **err);
void crt_done(void);          /* idempotent, safe from the signal handlers */
void crt_free(void);          /* after crt_done: free curses and the log ring */
int crt_attr(ColorRole r);    /* the attributes of a role (for attron/attroff) */

/* A fatal signal arrived (SIGTERM/SIGINT/SIGHUP): the loop ends at its next turn. */
extern volatile int crt_quit_signal;

/* ---- stderr captured while curses runs (htop redirectStderr): fd 2 goes to an unlinked
 * temporary file; crt_log_poll() reads what was written since the last call into the ring. */
#define CRT_LOG_LINES 2000
void crt_log_poll(void);
void crt_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* a line of the TUI's own */
int crt_log_count(void);
const char *crt_log_line(int i);    /* 0 = oldest kept */
unsigned long crt_log_serial(void); /* grows with every line added */

/* ---- drawing helpers (UTF-8 aware, one column per code point: all our glyphs are narrow) */
int crt_width(const char *s);                              /* columns of s */
/* Write s at (y, x), at most w columns, padded with blanks to w when pad is set; an overlong
 * s ends in an ellipsis. Returns the columns written. */
int crt_put(int y, int x, int w, const char *s, int pad);
int crt_putf(int y, int x, int w, int pad, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A sparkline of n values in w columns (the last w values, or n values averaged into w buckets). */
void crt_spark(int y, int x, int w, const float *v, int n);
/* A horizontal bar of frac (0..1) over w columns with eighth blocks. */
void crt_bar(int y, int x, int w, double frac);
void crt_hline(int y, int x, int w);

#endif
