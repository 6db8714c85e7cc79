/* l_source.c - `am.source`: the format helpers of src/source for the Lua source adapters
 * (lua/amalgam/sources/), plus the few file-system primitives Lua lacks (directory listing,
 * stat, realpath, mkdir -p, file hashes, monotonic time, isatty, getpid).
 *
 * Every function takes strings and returns strings/tables; an expected failure (unreadable
 * file, corrupt compressed data) returns `nil, msg, code`, misuse raises. Nothing here runs
 * external commands (the fetch policy in lua/amalgam/fetch.lua does, through io.popen).
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "source.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void am_lua_open_source(lua_State *L);

/* gunzip(s) -> string | nil, msg, code */
static int l_gunzip(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    AmAutoFree *a = am_lua_newautofree(L, free);
    size_t n;
    int rc = src_gunzip(s, len, (char **)&a->p, &n);
    if (rc) return am_lua_fail(L, rc);
    lua_pushlstring(L, a->p, n);
    return 1;
}

/* read(path) -> string (gunzipped when it is gzip) | nil, msg, code */
static int l_read(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    AmAutoFree *a = am_lua_newautofree(L, free);
    size_t n;
    int rc = src_read_file(path, (char **)&a->p, &n);
    if (rc) return am_lua_fail(L, rc);
    lua_pushlstring(L, a->p, n);
    return 1;
}

/* dictd_b64(s) -> integer | nil */
static int l_dictd_b64(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int64_t v = src_dictd_b64(s, len);
    if (v < 0) luaL_pushfail(L);
    else lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static void man_free_box(void *p) {
    src_man_free(p);
    free(p);
}

/* man(roff) -> {title=, section=, link=|nil, sections={{name=, text=}...}} */
static int l_man(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    AmAutoFree *a = am_lua_newautofree(L, man_free_box);   /* [box] */
    a->p = xcalloc(1, sizeof(SrcManPage));
    SrcManPage *p = a->p;
    src_man_parse(s, len, p);
    lua_createtable(L, 0, 4);                               /* [box, t] */
    lua_pushstring(L, p->title);
    lua_setfield(L, -2, "title");
    lua_pushstring(L, p->section);
    lua_setfield(L, -2, "section");
    if (p->link) {
        lua_pushstring(L, p->link);
        lua_setfield(L, -2, "link");
    }
    lua_createtable(L, p->n_sections, 0);
    for (int i = 0; i < p->n_sections; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, p->sections[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, p->sections[i].text);
        lua_setfield(L, -2, "text");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "sections");
    return 1;
}

static void mail_free_box(void *p) {
    src_mail_free(p);
    free(p);
}

/* mail(raw) -> {headers={{name=, value=}...}, header=function, body=, html=bool, parts=n} ;
 * also h[name] = first value for each lower-case header name in `fields` */
static int l_mail(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    AmAutoFree *a = am_lua_newautofree(L, mail_free_box);
    a->p = xcalloc(1, sizeof(SrcMail));
    SrcMail *m = a->p;
    src_mail_parse(s, len, m);
    lua_createtable(L, 0, 4);                               /* [box, t] */
    lua_createtable(L, m->n_headers, 0);
    lua_createtable(L, 0, m->n_headers);                    /* [box, t, list, first] */
    for (int i = 0; i < m->n_headers; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, m->headers[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, m->headers[i].value);
        lua_setfield(L, -2, "value");
        lua_rawseti(L, -3, i + 1);
        if (lua_getfield(L, -1, m->headers[i].name) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushstring(L, m->headers[i].value);
            lua_setfield(L, -2, m->headers[i].name);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_setfield(L, -3, "header");                          /* t.header = {name -> first value} */
    lua_setfield(L, -2, "headers");
    lua_pushstring(L, m->body);
    lua_setfield(L, -2, "body");
    lua_pushboolean(L, m->html);
    lua_setfield(L, -2, "html");
    lua_pushinteger(L, m->n_parts);
    lua_setfield(L, -2, "parts");
    return 1;
}

/* qp_decode(s [, header]) -> string */
static int l_qp_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int header = lua_toboolean(L, 2);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len + 1);
    size_t n = src_qp_decode(s, len, out, header);
    luaL_pushresultsize(&b, n);
    return 1;
}

/* b64_decode(s) -> string */
static int l_b64_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len * 3 / 4 + 4);
    size_t n = src_b64_decode(s, len, (unsigned char *)out);
    luaL_pushresultsize(&b, n);
    return 1;
}

typedef char *(*TextFn)(const char *, size_t);

static int text_fn(lua_State *L, TextFn fn) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    AmAutoFree *a = am_lua_newautofree(L, free);
    a->p = fn(s, len);
    lua_pushstring(L, a->p);
    return 1;
}

static int l_html_text(lua_State *L) { return text_fn(L, src_html_text); }
static int l_pod_inline(lua_State *L) { return text_fn(L, src_pod_inline); }
static int l_osis_text(lua_State *L) { return text_fn(L, src_osis_text); }
static int l_utf8_clean(lua_State *L) { return text_fn(L, src_utf8_clean); }
static int l_squash(lua_State *L) { return text_fn(L, src_squash); }

/* to_utf8(s [, charset]) -> string */
static int l_to_utf8(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *cs = luaL_optstring(L, 2, NULL);
    AmAutoFree *a = am_lua_newautofree(L, free);
    a->p = src_to_utf8(s, len, cs);
    lua_pushstring(L, a->p);
    return 1;
}

/* utf8_valid(s) -> boolean */
static int l_utf8_valid(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, src_utf8_valid(s, len));
    return 1;
}

/* ---------------------------------------------------------------- stanzas */

typedef struct {
    lua_State *L;
    int fields_idx;   /* table of wanted names (set), or 0 = all */
    int fn_idx;
    int64_t count;
    int failed;   /* fn raised: its error is on top of the stack */
} StanzaCtx;

static int stanza_cb(void *ud, const SrcField *f, int n) {
    StanzaCtx *c = ud;
    lua_State *L = c->L;
    lua_pushvalue(L, c->fn_idx);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, f[i].name, f[i].name_len);              /* [fn, t, name] */
        if (c->fields_idx) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, c->fields_idx) == LUA_TNIL) {
                lua_pop(L, 2);
                continue;
            }
            lua_pop(L, 1);
        }
        lua_pushlstring(L, f[i].value, f[i].value_len);
        lua_rawset(L, -3);
    }
    c->count++;
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* keep the error on the stack; re-raised after the walk */
        c->failed = 1;
        return 1;
    }
    int stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1); /* fn returned false */
    lua_pop(L, 1);
    return stop;
}

/* stanzas(text, origin, fields|nil, fn) -> count | nil, msg, code
 * fn(t) gets a table field name -> raw value (only `fields`, a list of names, when given);
 * returning false stops. */
static int l_stanzas(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *origin = luaL_checkstring(L, 2);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    StanzaCtx c = {.L = L, .fn_idx = 4};
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_newtable(L);                                              /* set */
        lua_Integer n = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 3, i);
            lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
        c.fields_idx = lua_gettop(L);
    }
    int rc = src_stanzas(s, len, origin, stanza_cb, &c);
    if (c.failed) return lua_error(L);
    if (rc < 0) return am_lua_fail(L, rc);
    lua_pushinteger(L, (lua_Integer)c.count);
    return 1;
}

/* ---------------------------------------------------------------- SWORD */

typedef struct {
    char **slots;
    int64_t n;
} SlotBox;

static void slots_free_box(void *p) {
    SlotBox *b = p;
    src_slots_free(b->slots, b->n);
    free(b);
}

/* sword_ztext(dir, "ot"|"nt") -> { slot_text_0, ... } (1-based: t[k+1] = slot k) | nil, msg, code */
static int l_sword_ztext(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    static const char *const tests[] = {"ot", "nt", NULL};
    int t = luaL_checkoption(L, 2, NULL, tests);
    AmAutoFree *a = am_lua_newautofree(L, slots_free_box);
    SlotBox *b = xcalloc(1, sizeof *b);
    a->p = b;
    int rc = src_sword_ztext(dir, tests[t], &b->slots, &b->n);
    if (rc) return am_lua_fail(L, rc);
    lua_createtable(L, (int)b->n, 0);
    for (int64_t i = 0; i < b->n; i++) {
        lua_pushstring(L, b->slots[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---------------------------------------------------------------- file system */

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    char **v;
    size_t n;
    DIR *d;
} DirBox;

static void dir_free_box(void *p) {
    DirBox *b = p;
    for (size_t i = 0; i < b->n; i++) free(b->v[i]);
    free(b->v);
    if (b->d) closedir(b->d);
    free(b);
}

/* listdir(path) -> sorted list of names (without . and ..) | nil, msg, code */
static int l_listdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    AmAutoFree *a = am_lua_newautofree(L, dir_free_box);
    DirBox *b = xcalloc(1, sizeof *b);
    a->p = b;
    b->d = opendir(path);
    if (!b->d)
        return am_lua_failmsg(L, errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "%s: cannot list directory: %s", path,
                              strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(b->d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (b->n == cap) {
            cap = cap ? 2 * cap : 64;
            b->v = xrealloc(b->v, cap * sizeof *b->v);
        }
        b->v[b->n++] = xstrdup(e->d_name);
    }
    qsort(b->v, b->n, sizeof *b->v, cmpstr);
    lua_createtable(L, (int)b->n, 0);
    for (size_t i = 0; i < b->n; i++) {
        lua_pushstring(L, b->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* stat(path) -> {type="file"|"dir"|"link"|"other", size=, mtime=} | nil (lstat: links are not followed) */
static int l_stat(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st) != 0) {
        luaL_pushfail(L);
        return 1;
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : "other");
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)st.st_mtime);
    lua_setfield(L, -2, "mtime");
    return 1;
}

/* mkdir_p(path) -> true | nil, msg, code */
static int l_mkdir_p(lua_State *L) {
    int rc = am_mkdir_p(luaL_checkstring(L, 1));
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* hash_file(path) -> 32-hex XXH3-128 of the bytes, size | nil, msg, code */
static int l_hash_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    FILE *f = fopen(path, "rb");
    if (!f) return am_lua_failmsg(L, errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "%s: cannot open: %s", path, strerror(errno));
    AmHasher *h = am_hasher_new();
    char buf[1 << 16];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        am_hasher_update(h, buf, n);
        total += n;
    }
    int err = ferror(f);
    fclose(f);
    char hex[33];
    am_hasher_hex(h, hex);
    am_hasher_delete(h);
    if (err) return am_lua_failmsg(L, AM_EIO, "%s: read error", path);
    lua_pushstring(L, hex);
    lua_pushinteger(L, (lua_Integer)total);
    return 2;
}

/* hash(s) -> 32-hex XXH3-128 */
static int l_hash(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, s, len);
    char hex[33];
    am_hasher_hex(h, hex);
    am_hasher_delete(h);
    lua_pushstring(L, hex);
    return 1;
}

/* hash64(s [, seed]) -> integer (XXH3-64, for seeded shuffles) */
static int l_hash64(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_Integer seed = luaL_optinteger(L, 2, 0);
    lua_pushinteger(L, (lua_Integer)am_hash64(s, len, (uint64_t)seed));
    return 1;
}

static int l_now(lua_State *L) {
    lua_pushnumber(L, am_now());
    return 1;
}

/* wall-clock seconds since the epoch with sub-second resolution (os.time() has whole seconds
 * only, too coarse to order records written in the same second) */
static int l_wallclock(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

/* isatty(fd) -> boolean (0 stdin, 1 stdout, 2 stderr) */
static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* realpath(path) -> absolute path | nil, msg, code */
static int l_realpath(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r) return am_lua_failmsg(L, errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "%s: %s", path, strerror(errno));
    lua_pushstring(L, r);
    free(r);
    return 1;
}

/* getpid() -> integer */
static int l_getpid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

static const luaL_Reg source_funcs[] = {
    {"gunzip", l_gunzip},         {"read", l_read},             {"dictd_b64", l_dictd_b64},
    {"man", l_man},               {"mail", l_mail},             {"qp_decode", l_qp_decode},
    {"b64_decode", l_b64_decode}, {"html_text", l_html_text},   {"pod_inline", l_pod_inline},
    {"osis_text", l_osis_text},   {"utf8_clean", l_utf8_clean}, {"utf8_valid", l_utf8_valid},
    {"to_utf8", l_to_utf8},       {"squash", l_squash},         {"stanzas", l_stanzas},
    {"sword_ztext", l_sword_ztext}, {"listdir", l_listdir},     {"stat", l_stat},
    {"mkdir_p", l_mkdir_p},       {"hash_file", l_hash_file},   {"hash", l_hash},
    {"hash64", l_hash64},         {"now", l_now},               {"wallclock", l_wallclock},               {"isatty", l_isatty},
    {"getpid", l_getpid},         {"realpath", l_realpath},     {NULL, NULL},
};

void am_lua_open_source(lua_State *L) {
    luaL_newlib(L, source_funcs);   /* [core, source] */
    lua_setfield(L, -2, "source");  /* [core] */
}
