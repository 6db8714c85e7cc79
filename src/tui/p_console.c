/* p_console.c - the Lua console: lines evaluated in the TUI's Lua state (the host of
 * src/lua/l_host.c, the same module and store recipes use) through am_lua_loadline +
 * am_lua_hostcall, as `amalgam lua` does: an expression prints its values, a statement runs,
 * an unfinished one asks for more; an error shows its message and traceback and the console
 * goes on; Ctrl-C interrupts the running line. `print` and `io.write` write here. */
#include "tui_internal.h"

#include <curses.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "am_lua.h"

#define OUT_MAX 2000
#define HIST_MAX 200

typedef struct {
    char *text;
    int role;
} OutLine;

typedef struct {
    OutLine out[OUT_MAX];
    int out_start, out_n, scroll;       /* scroll: lines up from the end */
    char line[1024];
    int len, cur;
    char *pending;                      /* an unfinished statement's earlier lines */
    char *hist[HIST_MAX];
    int nhist, hpos;
    double last_ms;
} ConsoleState;

static void out_add(ConsoleState *s, const char *text, int role) {
    /* one OutLine per line of text */
    const char *p = text;
    do {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *l = malloc(n + 1);
        memcpy(l, p, n);
        l[n] = 0;
        for (char *c = l; *c; c++)
            if (*c == '\t') *c = ' ';
            else if ((unsigned char)*c < 32) *c = '?';
        OutLine *o;
        if (s->out_n == OUT_MAX) {
            o = &s->out[s->out_start];
            free(o->text);
            s->out_start = (s->out_start + 1) % OUT_MAX;
        } else {
            o = &s->out[(s->out_start + s->out_n++) % OUT_MAX];
        }
        o->text = l;
        o->role = role;
        p = nl ? nl + 1 : NULL;
    } while (p);
}

/* print(...) and io.write(...) in the console's state: into the output pane */
static int l_print(lua_State *L) {
    ConsoleState *s = lua_touserdata(L, lua_upvalueindex(1));
    int sep = lua_toboolean(L, lua_upvalueindex(2));   /* print: tabs between values */
    int n = lua_gettop(L);   /* before buffinit, which may push a box */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1 && sep) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    out_add(s, lua_tostring(L, -1), CR_DEFAULT);
    return 0;
}

static void console_init(Panel *p) {
    ConsoleState *s = p->st;
    lua_State *L = p->tui->L;
    lua_pushlightuserdata(L, s);
    lua_pushboolean(L, 1);
    lua_pushcclosure(L, l_print, 2);
    lua_setglobal(L, "print");
    lua_getglobal(L, "io");
    if (lua_istable(L, -1)) {
        lua_pushlightuserdata(L, s);
        lua_pushboolean(L, 0);
        lua_pushcclosure(L, l_print, 2);
        lua_setfield(L, -2, "write");
    }
    lua_pop(L, 1);
    out_add(s, "Lua " LUA_VERSION_MAJOR "." LUA_VERSION_MINOR " with the amalgam module as `am` (the state recipes use).", CR_DIM);
    out_add(s, "Try: am.models()[1].name   #am.runs()   print(am.compare{\"base-tiny\", no_eval = true})", CR_DIM);
}

static void console_done(Panel *p) {
    ConsoleState *s = p->st;
    for (int i = 0; i < s->out_n; i++) free(s->out[(s->out_start + i) % OUT_MAX].text);
    for (int i = 0; i < s->nhist; i++) free(s->hist[i]);
    free(s->pending);
}

static void console_draw(Panel *p, int y, int x, int h, int w) {
    ConsoleState *s = p->st;
    snprintf(p->title, sizeof p->title, "Lua console  %s%s", s->last_ms > 0 ? "" : "",
             s->pending ? "  (statement continues: Ctrl-U drops it)" : "");
    if (s->last_ms > 0) {
        size_t n = strlen(p->title);
        snprintf(p->title + n, sizeof p->title - n, "  last line %.1f ms", s->last_ms);
    }
    int rows = h - 1;
    int end = s->out_n - s->scroll;
    if (end < 0) end = 0;
    int first = end - rows;
    if (first < 0) first = 0;
    for (int i = first, yy = y; i < end; i++, yy++) {
        OutLine *o = &s->out[(s->out_start + i) % OUT_MAX];
        attrset(crt_attr(o->role));
        crt_put(yy, x + 1, w - 2, o->text, 0);
    }
    const char *prompt = s->pending ? ">> " : "> ";
    attrset(crt_attr(CR_PROMPT));
    crt_put(y + h - 1, x, 3, prompt, 0);
    attrset(crt_attr(CR_DEFAULT));
    int pw = (int)strlen(prompt), avail = w - pw - 1;
    int off = s->cur > avail ? s->cur - avail : 0;
    mvaddnstr(y + h - 1, x + pw, s->line + off, s->len - off < avail ? s->len - off : avail);
    /* the cursor: a reverse-video cell (curses' own cursor stays hidden) */
    attrset(A_REVERSE);
    mvaddch(y + h - 1, x + pw + s->cur - off, s->cur < s->len ? (chtype)(unsigned char)s->line[s->cur] : ' ');
    attrset(crt_attr(CR_DEFAULT));
}

static void run_line(Panel *p) {
    ConsoleState *s = p->st;
    lua_State *L = p->tui->L;
    s->line[s->len] = 0;
    out_add(s, s->line, CR_PROMPT);
    if (s->len && (s->nhist == 0 || strcmp(s->hist[s->nhist - 1], s->line) != 0)) {
        if (s->nhist == HIST_MAX) { free(s->hist[0]); memmove(s->hist, s->hist + 1, sizeof(char *) * (HIST_MAX - 1)); s->nhist--; }
        s->hist[s->nhist++] = xstrdup(s->line);
    }
    s->hpos = s->nhist;
    char *src;
    if (s->pending) {
        size_t a = strlen(s->pending);
        src = malloc(a + 1 + (size_t)s->len + 1);
        memcpy(src, s->pending, a);
        src[a] = '\n';
        memcpy(src + a + 1, s->line, (size_t)s->len + 1);
        free(s->pending);
        s->pending = NULL;
    } else {
        src = xstrdup(s->line);
    }
    s->len = s->cur = 0;
    s->scroll = 0;
    int base = lua_gettop(L), more = 0;
    int st = am_lua_loadline(L, src, strlen(src), &more);
    if (more) {
        s->pending = src;
        return;
    }
    free(src);
    /* show the line as running before a long call */
    tui_flash(p->tui, "running... (Ctrl-C interrupts)");
    double t0 = tui_now();
    if (st == LUA_OK) st = am_lua_hostcall(L, 0, LUA_MULTRET);
    s->last_ms = (tui_now() - t0) * 1e3;
    p->tui->flash[0] = 0;
    if (st == LUA_OK) {
        int n = lua_gettop(L) - base;
        if (n > 0) {
            luaL_Buffer b;
            lua_checkstack(L, 4);
            luaL_buffinit(L, &b);
            for (int i = 1; i <= n; i++) {
                if (i > 1) luaL_addchar(&b, '\t');
                luaL_tolstring(L, base + i, NULL);
                luaL_addvalue(&b);
            }
            luaL_pushresult(&b);
            out_add(s, lua_tostring(L, -1), CR_DEFAULT);
        }
    } else {
        const char *msg = lua_tostring(L, -1);
        out_add(s, msg ? msg : "(error object is not a string)", CR_ERROR);
    }
    am_lua_clear_interrupt(L);
    lua_settop(L, base);
    erase();   /* the call may have written to the terminal */
    clearok(curscr, TRUE);
}

static void set_line(ConsoleState *s, const char *t) {
    snprintf(s->line, sizeof s->line, "%s", t);
    s->len = s->cur = (int)strlen(s->line);
}

static int console_input(Panel *p, int key) {
    ConsoleState *s = p->st;
    switch (key) {
    case '\r': case '\n': case KEY_ENTER: run_line(p); return HR_REDRAW;
    case KEY_BACKSPACE: case 127: case 8:
        if (s->cur > 0) {
            memmove(s->line + s->cur - 1, s->line + s->cur, (size_t)(s->len - s->cur));
            s->cur--, s->len--;
        }
        return HR_REDRAW;
    case KEY_DC: case 4:
        if (s->cur < s->len) {
            memmove(s->line + s->cur, s->line + s->cur + 1, (size_t)(s->len - s->cur - 1));
            s->len--;
        }
        return HR_REDRAW;
    case KEY_LEFT: if (s->cur > 0) s->cur--; return HR_REDRAW;
    case KEY_RIGHT: if (s->cur < s->len) s->cur++; return HR_REDRAW;
    case KEY_HOME: case 1: s->cur = 0; return HR_REDRAW;
    case KEY_END: case 5: s->cur = s->len; return HR_REDRAW;
    case 21: /* ^U */
        s->len = s->cur = 0;
        free(s->pending);
        s->pending = NULL;
        return HR_REDRAW;
    case KEY_UP:
        if (s->hpos > 0) set_line(s, s->hist[--s->hpos]);
        return HR_REDRAW;
    case KEY_DOWN:
        if (s->hpos < s->nhist - 1) set_line(s, s->hist[++s->hpos]);
        else s->hpos = s->nhist, s->len = s->cur = 0;
        return HR_REDRAW;
    case KEY_PPAGE: s->scroll += LINES / 2; if (s->scroll > s->out_n - 1) s->scroll = s->out_n > 0 ? s->out_n - 1 : 0; return HR_REDRAW;
    case KEY_NPAGE: s->scroll -= LINES / 2; if (s->scroll < 0) s->scroll = 0; return HR_REDRAW;
    }
    if ((key >= 32 && key < 127) || (key >= 128 && key < 256)) {
        if (s->len + 1 < (int)sizeof s->line) {
            memmove(s->line + s->cur + 1, s->line + s->cur, (size_t)(s->len - s->cur));
            s->line[s->cur++] = (char)key;
            s->len++;
        }
        return HR_REDRAW;
    }
    return HR_IGNORED;
}

/* help rows only: console_input handles these keys */
static const PanelKey console_keys[] = {
    {-1, "Enter", NULL, "run the line (an unfinished statement continues on the next)"},
    {-2, "↑↓", NULL, "history"},
    {-3, "PgUp PgDn", NULL, "scroll the output"},
    {-4, "^U", NULL, "clear the line"},
    {-5, "^C", NULL, "interrupt the running line"},
    {0},
};

static void console_status(Panel *p, char *buf, size_t cap) {
    snprintf(buf, cap, "Enter run  ↑↓ history  PgUp/PgDn scroll  ^U clear  ^C interrupt  F-keys and Tab switch panels");
}

const PanelClass ConsolePanel = {
    .name = "Lua", .id = "lua", .size = sizeof(ConsoleState), .init = console_init, .done = console_done,
    .draw = console_draw, .input = console_input, .keys = console_keys, .status = console_status,
};
