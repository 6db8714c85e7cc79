/* crt.c - curses set-up and tear-down, colour roles, glyphs, signals, captured stderr. */
#define _GNU_SOURCE
#include "crt.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "am_base.h"

Glyphs crt_glyphs;
int crt_utf8;
int crt_colors;
volatile int crt_quit_signal;

static int active;              /* curses is up */
static SCREEN *screen;
static FILE *headless_out, *headless_in;
static int role_attr[CR_COUNT];

static const Glyphs glyphs_utf8 = {
    "│", "─", "├─", "└─",
    {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"},
    {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"},
    "•", "◆", "▶", "▲", "▼", "≈", "Δ", "…", 1,
};
static const Glyphs glyphs_ascii = {
    "|", "-", "|-", "`-",
    {"_", "_", ".", "-", "-", "~", "^", "^"},
    {"", "=", "=", "=", "=", "=", "=", "=", "#"},
    "o", "*", ">", "^", "v", "~", "d", ">", 0,
};

/* ---------------------------------------------------------------- colours */

static void setup_colors(void) {
    const char *nc = getenv("NO_COLOR");
    crt_colors = has_colors() && !(nc && *nc) && start_color() == OK;
    if (crt_colors) {
        use_default_colors();
        static const struct { short fg, bg; int attr; } scheme[CR_COUNT] = {
            [CR_DEFAULT] = {-1, -1, 0},
            [CR_HEADER] = {COLOR_CYAN, -1, A_BOLD},
            [CR_METER] = {COLOR_GREEN, -1, A_BOLD},
            [CR_TITLE] = {COLOR_WHITE, COLOR_BLUE, A_BOLD},
            [CR_COLHEAD] = {COLOR_BLACK, COLOR_GREEN, 0},
            [CR_SELECT] = {COLOR_BLACK, COLOR_CYAN, 0},
            [CR_GAIN] = {COLOR_GREEN, -1, 0},
            [CR_LOSS] = {COLOR_RED, -1, 0},
            [CR_DIM] = {-1, -1, A_DIM},
            [CR_FKEY] = {-1, -1, A_BOLD},
            [CR_FLABEL] = {COLOR_BLACK, COLOR_CYAN, 0},
            [CR_ERROR] = {COLOR_RED, -1, A_BOLD},
            [CR_ID] = {COLOR_CYAN, -1, 0},
            [CR_OOD] = {COLOR_MAGENTA, -1, 0},
            [CR_PARETO] = {COLOR_YELLOW, -1, A_BOLD},
            [CR_GRAPH] = {COLOR_GREEN, -1, 0},
            [CR_PROMPT] = {COLOR_YELLOW, -1, A_BOLD},
            [CR_HEAT0] = {COLOR_WHITE, COLOR_BLUE, 0},
            [CR_HEAT1] = {COLOR_BLACK, COLOR_CYAN, 0},
            [CR_HEAT2] = {COLOR_BLACK, COLOR_GREEN, 0},
            [CR_HEAT3] = {COLOR_BLACK, COLOR_YELLOW, 0},
            [CR_HEAT4] = {COLOR_WHITE, COLOR_RED, A_BOLD},
        };
        for (int r = 1; r < CR_COUNT; r++) {
            init_pair((short)r, scheme[r].fg, scheme[r].bg);
            role_attr[r] = (int)COLOR_PAIR(r) | scheme[r].attr;
        }
        role_attr[CR_DEFAULT] = A_NORMAL;
    } else {
        static const int mono[CR_COUNT] = {
            [CR_HEADER] = A_BOLD, [CR_METER] = A_BOLD, [CR_TITLE] = A_REVERSE,
            [CR_COLHEAD] = A_BOLD | A_UNDERLINE, [CR_SELECT] = A_REVERSE, [CR_GAIN] = A_BOLD,
            [CR_LOSS] = A_UNDERLINE, [CR_DIM] = A_DIM, [CR_FKEY] = A_BOLD, [CR_FLABEL] = A_REVERSE,
            [CR_ERROR] = A_BOLD, [CR_PARETO] = A_BOLD, [CR_PROMPT] = A_BOLD,
        };
        memcpy(role_attr, mono, sizeof role_attr);
    }
}

int crt_attr(ColorRole r) { return r >= 0 && r < CR_COUNT ? role_attr[r] : (int)A_NORMAL; }

/* ---------------------------------------------------------------- captured stderr */

static int saved_stderr = -1, capture_fd = -1;
static off_t capture_off;
static char *ring[CRT_LOG_LINES];
static int ring_start, ring_n;
static unsigned long serial;
static char partial[1024];
static size_t partial_len;
static int captured_lines;   /* lines that came through stderr (shown again after crt_done) */

static void ring_add(const char *s, size_t n) {
    char *line = malloc(n + 1);
    if (!line) return;
    memcpy(line, s, n);
    line[n] = 0;
    for (char *p = line; *p; p++)
        if (*p == '\t') *p = ' ';
        else if ((unsigned char)*p < 32) *p = '?';
    if (ring_n == CRT_LOG_LINES) {
        free(ring[ring_start]);
        ring[ring_start] = line;
        ring_start = (ring_start + 1) % CRT_LOG_LINES;
    } else {
        ring[(ring_start + ring_n++) % CRT_LOG_LINES] = line;
    }
    serial++;
}

static void capture_bytes(const char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\r') continue;
        if (c == '\n' || partial_len == sizeof partial - 1) {
            ring_add(partial, partial_len);
            captured_lines++;
            partial_len = 0;
            if (c == '\n') continue;
        }
        partial[partial_len++] = c;
    }
}

void crt_log_poll(void) {
    if (capture_fd < 0) return;
    char buf[4096];
    ssize_t n;
    while ((n = pread(capture_fd, buf, sizeof buf, capture_off)) > 0) {
        capture_off += n;
        capture_bytes(buf, (size_t)n);
    }
}

void crt_logf(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    ring_add(buf, strlen(buf));
}

int crt_log_count(void) { return ring_n; }
const char *crt_log_line(int i) { return i >= 0 && i < ring_n ? ring[(ring_start + i) % CRT_LOG_LINES] : ""; }
unsigned long crt_log_serial(void) { return serial; }

static void capture_start(void) {
    char path[] = "/tmp/amalgam-tui-stderr-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    unlink(path);
    fflush(stderr);
    saved_stderr = dup(2);
    if (saved_stderr < 0 || dup2(fd, 2) < 0) {
        close(fd);
        if (saved_stderr >= 0) close(saved_stderr);
        saved_stderr = -1;
        return;
    }
    capture_fd = fd;
    setvbuf(stderr, NULL, _IONBF, 0);
}

/* Give fd 2 back; what came through stderr in the last lines is shown again on the terminal
 * (htop does the same), so a warning is not lost with the screen. */
static void capture_stop(int replay) {
    if (saved_stderr < 0) return;
    crt_log_poll();
    if (partial_len) { ring_add(partial, partial_len); captured_lines++; partial_len = 0; }
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    close(capture_fd);
    capture_fd = -1;
    if (replay && captured_lines > 0) {
        int from = ring_n > 20 ? ring_n - 20 : 0;
        if (captured_lines < ring_n - from) from = ring_n - captured_lines;
        for (int i = from; i < ring_n; i++) fprintf(stderr, "%s\n", crt_log_line(i));
    }
}

/* ---------------------------------------------------------------- signals */

static void on_fatal(int sig) {
    crt_done();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_quit(int sig) {
    if (crt_quit_signal) on_fatal(sig);   /* the second one does not wait for the loop */
    crt_quit_signal = sig;
}

static void install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_quit;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
}

static void restore_handlers(void) {
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
}

/* ---------------------------------------------------------------- init / done */

int crt_init(int headless, const char **err) {
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    crt_utf8 = cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
    const char *ascii = getenv("AMALGAM_TUI_ASCII");
    if (ascii && *ascii && strcmp(ascii, "0") != 0) crt_utf8 = 0;
    crt_glyphs = crt_utf8 ? glyphs_utf8 : glyphs_ascii;
    const char *term = getenv("TERM");
    if (headless) {
        if (!term || !*term || strcmp(term, "dumb") == 0) term = "xterm-256color";
        headless_out = fopen("/dev/null", "w");
        headless_in = fopen("/dev/null", "r");
        if (!headless_out || !headless_in) { *err = "cannot open /dev/null"; return -1; }
        screen = newterm(term, headless_out, headless_in);
        if (!screen) screen = newterm("vt100", headless_out, headless_in);
    } else {
        if (!term || !*term) { *err = "TERM is not set"; return -1; }
        screen = newterm(NULL, stdout, stdin);
    }
    if (!screen) { *err = "cannot initialise the terminal (check TERM)"; return -1; }
    set_term(screen);
    active = 1;
    am_set_fatal_hook(crt_done);
    install_handlers();
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    /* the mouse (clicks, the wheel) unless AMALGAM_TUI_MOUSE=0; presses at once, no click timing */
    const char *mouse = getenv("AMALGAM_TUI_MOUSE");
    if (!headless && !(mouse && strcmp(mouse, "0") == 0)) {
        mmask_t m = BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED;
#ifdef BUTTON5_PRESSED
        m |= BUTTON5_PRESSED;
#endif
        mousemask(m, NULL);
        mouseinterval(0);
    }
    setup_colors();
    capture_start();
    return 0;
}

void crt_done(void) {
    if (!active) return;
    active = 0;
    curs_set(1);
    endwin();
    fflush(stdout);
    restore_handlers();
    am_set_fatal_hook(NULL);
    capture_stop(1);
}

/* Free what the ring and curses hold (not from a signal handler). */
void crt_free(void) {
    if (screen) { delscreen(screen); screen = NULL; }
    if (headless_out) { fclose(headless_out); headless_out = NULL; }
    if (headless_in) { fclose(headless_in); headless_in = NULL; }
    for (int i = 0; i < ring_n; i++) free(ring[(ring_start + i) % CRT_LOG_LINES]);
    ring_n = ring_start = 0;
}

/* ---------------------------------------------------------------- drawing helpers */

int crt_width(const char *s) {
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* bytes of s that make its first `cols` columns */
static size_t prefix_bytes(const char *s, int cols) {
    size_t i = 0;
    int c = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == cols) break;
            c++;
        }
        i++;
    }
    return i;
}

/* Off a UTF-8 locale: the few non-ASCII characters panels use in text, as ASCII. */
static const char *ascii_of(const char *s, char *buf, size_t cap) {
    static const struct { const char *u, *a; } map[] = {
        {"↑", "Up"}, {"↓", "/Dn"}, {"←", "Left"}, {"→", "/Right"}, {"Δ", "d"}, {"≈", "~"}, {"—", "-"},
        {"▼", "v"}, {"▲", "^"}, {"…", ">"}, {"◆", "*"}, {"•", "o"}, {"▶", ">"}, {"│", "|"}, {"─", "-"}, {"τ", "tau"},
    };
    size_t n = 0;
    while (*s && n + 8 < cap) {
        if ((unsigned char)*s < 0x80) { buf[n++] = *s++; continue; }
        size_t k, len = 1;
        while ((s[len] & 0xC0) == 0x80) len++;
        for (k = 0; k < sizeof map / sizeof map[0]; k++)
            if (strncmp(s, map[k].u, len) == 0 && strlen(map[k].u) == len) break;
        const char *a = k < sizeof map / sizeof map[0] ? map[k].a : "?";
        while (*a && n + 1 < cap) buf[n++] = *a++;
        s += len;
    }
    buf[n] = 0;
    return buf;
}

int crt_put(int y, int x, int w, const char *s, int pad) {
    if (w <= 0) return 0;
    char abuf[1024];
    if (!crt_utf8) s = ascii_of(s, abuf, sizeof abuf);
    int sw = crt_width(s), out;
    move(y, x);
    if (sw <= w) {
        addstr(s);
        out = sw;
    } else {
        addnstr(s, (int)prefix_bytes(s, w - 1));
        addstr(crt_glyphs.ellipsis);
        out = w;
    }
    if (pad)
        for (; out < w; out++) addch(' ');
    return out;
}

int crt_putf(int y, int x, int w, int pad, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return crt_put(y, x, w, buf, pad);
}

void crt_spark(int y, int x, int w, const float *v, int n) {
    if (w <= 0 || n <= 0) return;
    float buckets[512];
    if (w > 512) w = 512;
    int m = n < w ? n : w;
    for (int b = 0; b < m; b++) {
        /* bucket b averages v[lo, hi) */
        int lo = n <= w ? b : (int)((long)b * n / m), hi = n <= w ? b + 1 : (int)((long)(b + 1) * n / m);
        double s = 0;
        for (int i = lo; i < hi; i++) s += (double)v[i];
        buckets[b] = (float)(s / (hi - lo));
    }
    float lo = buckets[0], hi = buckets[0];
    for (int b = 1; b < m; b++) {
        if (buckets[b] < lo) lo = buckets[b];
        if (buckets[b] > hi) hi = buckets[b];
    }
    move(y, x);
    for (int b = 0; b < m; b++) {
        int k = hi > lo ? (int)((buckets[b] - lo) / (hi - lo) * 7.0f + 0.5f) : 3;
        if (k < 0) k = 0;
        if (k > 7) k = 7;
        addstr(crt_glyphs.spark[k]);
    }
}

void crt_bar(int y, int x, int w, double frac) {
    if (w <= 0) return;
    if (!(frac > 0)) frac = 0;
    if (frac > 1) frac = 1;
    int eighths = (int)(frac * w * 8 + 0.5);
    move(y, x);
    for (int c = 0; c < w; c++) {
        int e = eighths - c * 8;
        if (e >= 8) addstr(crt_glyphs.bar[8]);
        else if (e > 0 && crt_utf8) addstr(crt_glyphs.bar[e]);
        else if (e >= 4) addstr(crt_glyphs.bar[8]);
        else addch(' ');
    }
}

void crt_hline(int y, int x, int w) {
    move(y, x);
    for (int i = 0; i < w; i++) addstr(crt_glyphs.hline);
}
