/* ds_read.c - readers for the standard dataset formats (see dataset.h for the formats) and
 * the BEIR -> pairs converter.
 *
 * Every reader loads the whole file, checks it is UTF-8 without NUL bytes (reporting the
 * line and byte), then walks it line by line; a failing line becomes "file:LINE: problem".
 * The dataset under construction is deleted on any error, so callers never see half of one. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"
#include "wordpiece.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#define HINT_BEIR "HINT: a BEIR directory holds corpus.jsonl ({\"_id\", \"title\", \"text\"}), queries.jsonl " \
                  "({\"_id\", \"text\"}) and qrels/<split>.tsv (header query-id<TAB>corpus-id<TAB>score)"

/* ---------------------------------------------------------------- files */

static int path_kind(const char *path) { /* 0 missing, 1 file, 2 directory */
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    return S_ISDIR(st.st_mode) ? 2 : 1;
}

/* Whole file, plain or gzip (by the ".gz" suffix), NUL-terminated. */
static int read_all(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int k = path_kind(path);
    if (k == 0) return am_error(AM_ENOTFOUND, "%s: no such file", path);
    if (k == 2) return am_error(AM_EIO, "%s: is a directory, expected a file", path);
    if (!ds_ends_with(path, ".gz")) return am_read_file(path, out, len);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return am_error(AM_EIO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(gz, 1 << 17);
    size_t cap = 1 << 20, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (cap - n < (1 << 16)) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        int got = gzread(gz, buf + n, (unsigned)(cap - n > (1u << 30) ? (1u << 30) : cap - n));
        if (got < 0) {
            int err;
            const char *msg = gzerror(gz, &err);
            int rc = am_error(AM_EIO, "%s: gzip read failed: %s", path, msg);
            gzclose(gz);
            free(buf);
            return rc;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    gzclose(gz);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return AM_OK;
}

/* ---------------------------------------------------------------- lines */

typedef struct {
    const char *p, *end;
    const char *origin;
    long long line;      /* number of the line last returned (1-based) */
} Lines;

static void lines_init(Lines *li, const char *buf, size_t len, const char *origin) {
    li->p = buf;
    li->end = buf + len;
    li->origin = origin;
    li->line = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) li->p += 3; /* UTF-8 BOM */
}

/* Next line without its "\n" / "\r\n"; 0 at the end. The last line needs no newline. */
static int lines_next(Lines *li, const char **s, size_t *n) {
    if (li->p >= li->end) return 0;
    const char *e = memchr(li->p, '\n', (size_t)(li->end - li->p));
    const char *stop = e ? e : li->end;
    *s = li->p;
    *n = (size_t)(stop - li->p);
    if (*n > 0 && (*s)[*n - 1] == '\r') (*n)--;
    li->p = e ? e + 1 : li->end;
    li->line++;
    return 1;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
    return 1;
}

/* UTF-8 and NUL check of a whole buffer, reported as file:line and byte of the line. */
static int check_text(const char *buf, size_t len, const char *origin) {
    size_t bad;
    int code = AM_OK;
    const char *what = NULL;
    const char *nul = memchr(buf, 0, len);
    if (am_utf8_validate(buf, len, &bad) != AM_OK) {
        code = AM_EUTF8;
        what = "invalid UTF-8";
    }
    if (nul && (!code || (size_t)(nul - buf) < bad)) {
        code = AM_EFORMAT;
        what = "NUL byte";
        bad = (size_t)(nul - buf);
    }
    if (!code) return AM_OK;
    long long line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < bad; i++)
        if (buf[i] == '\n') {
            line++;
            ls = i + 1;
        }
    return am_error(code, "%s:%lld: %s at byte %zu of the line (byte 0x%02x, file offset %zu)%s", origin, line,
                    what, bad - ls + 1, (unsigned char)buf[bad], bad,
                    code == AM_EUTF8 ? "\nHINT: convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8" : "");
}

/* ---------------------------------------------------------------- JSON fields */

typedef struct {
    DsStr *v;
    int n, cap;
} StrVec;

static void sv_push(StrVec *v, const char *s) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->v = xrealloc(v->v, (size_t)v->cap * sizeof *v->v);
    }
    v->v[v->n++] = (DsStr){s, strlen(s)};
}

static const char *json_type(const cJSON *j) {
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}

static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return j && !cJSON_IsNull(j) ? j : NULL;
}

/* A required string under the first of keys[] present (NULL-terminated list). */
static int need_string(const cJSON *o, const char *const *keys, DsStr *out) {
    for (int i = 0; keys[i]; i++) {
        const cJSON *j = field(o, keys[i]);
        if (!j) continue;
        if (!cJSON_IsString(j))
            return am_error(AM_EFORMAT, "field \"%s\" must be a string, got %s", keys[i], json_type(j));
        *out = (DsStr){j->valuestring, strlen(j->valuestring)};
        return AM_OK;
    }
    if (keys[1])
        return am_error(AM_EFORMAT, "missing required field \"%s\" (or \"%s\")", keys[0], keys[1]);
    return am_error(AM_EFORMAT, "missing required field \"%s\"", keys[0]);
}

/* A string or an array of strings appended to v. */
static int string_list(const cJSON *j, const char *key, StrVec *v) {
    if (cJSON_IsString(j)) {
        sv_push(v, j->valuestring);
        return AM_OK;
    }
    if (!cJSON_IsArray(j))
        return am_error(AM_EFORMAT, "field \"%s\" must be a string or an array of strings, got %s", key, json_type(j));
    int i = 0;
    for (const cJSON *e = j->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e))
            return am_error(AM_EFORMAT, "field \"%s\" element %d must be a string, got %s", key, i + 1, json_type(e));
        sv_push(v, e->valuestring);
    }
    return AM_OK;
}

/* ---------------------------------------------------------------- JSONL rows */

typedef struct {
    StrVec pos, neg;
    DsStr split;  /* unused by JSONL */
    int beir;     /* 1 corpus, 2 queries */
} RowCtx;

static int row_pair(Dataset *ds, const cJSON *o, RowCtx *c) {
    static const char *const qk[] = {"query", "anchor", NULL};
    DsStr q;
    int rc = need_string(o, qk, &q);
    if (rc) return rc;
    c->pos.n = c->neg.n = 0;
    const char *pk = "positive";
    const cJSON *p = field(o, "positive");
    if (!p) p = field(o, pk = "pos");
    if (!p) return am_error(AM_EFORMAT, "missing required field \"positive\" (or \"pos\")");
    if ((rc = string_list(p, pk, &c->pos))) return rc;
    if (c->pos.n == 0)
        return am_error(AM_EFORMAT, "field \"%s\" is an empty array (a pair needs at least one positive)", pk);
    static const char *const nk[] = {"negative", "negatives", "neg"};
    const cJSON *ng = NULL;
    const char *ngk = NULL;
    for (int i = 0; i < 3 && !ng; i++) ng = field(o, ngk = nk[i]);
    if (ng) {
        if ((rc = string_list(ng, ngk, &c->neg))) return rc;
    } else { /* sentence-transformers' negative_1, negative_2, ... columns, in key order */
        for (const cJSON *e = o->child; e; e = e->next) {
            const char *k = e->string;
            if (!k || strncmp(k, "negative_", 9) != 0 || !k[9] || strspn(k + 9, "0123456789") != strlen(k + 9))
                continue;
            if (cJSON_IsNull(e)) continue;
            if (!cJSON_IsString(e))
                return am_error(AM_EFORMAT, "field \"%s\" must be a string, got %s", k, json_type(e));
            sv_push(&c->neg, e->valuestring);
        }
    }
    return ds_add_pair(ds, q, c->pos.v, c->pos.n, c->neg.v, c->neg.n);
}

static int row_graded(Dataset *ds, const cJSON *o, RowCtx *c) {
    (void)c;
    static const char *const k1[] = {"sentence1", NULL}, *const k2[] = {"sentence2", NULL};
    DsStr a, b;
    int rc = need_string(o, k1, &a);
    if (!rc) rc = need_string(o, k2, &b);
    if (rc) return rc;
    const cJSON *s = field(o, "score");
    if (!s) return am_error(AM_EFORMAT, "missing required field \"score\"");
    if (!cJSON_IsNumber(s)) return am_error(AM_EFORMAT, "field \"score\" must be a number, got %s", json_type(s));
    if (!isfinite(s->valuedouble)) return am_error(AM_EFORMAT, "field \"score\" is not a finite number");
    return ds_add_graded(ds, a, b, s->valuedouble);
}

static int row_labelled(Dataset *ds, const cJSON *o, RowCtx *c) {
    (void)c;
    static const char *const tk[] = {"text", NULL};
    DsStr t;
    int rc = need_string(o, tk, &t);
    if (rc) return rc;
    const cJSON *l = field(o, "label");
    if (!l) return am_error(AM_EFORMAT, "missing required field \"label\"");
    char num[32];
    DsStr lab;
    if (cJSON_IsString(l)) {
        lab = (DsStr){l->valuestring, strlen(l->valuestring)};
    } else if (cJSON_IsNumber(l) && l->valuedouble == floor(l->valuedouble) && fabs(l->valuedouble) < 9007199254740992.0) {
        snprintf(num, sizeof num, "%lld", (long long)l->valuedouble);
        lab = (DsStr){num, strlen(num)};
    } else if (cJSON_IsNumber(l)) {
        return am_error(AM_EFORMAT, "field \"label\" must be a string or an integer, got %g", l->valuedouble);
    } else {
        return am_error(AM_EFORMAT, "field \"label\" must be a string or an integer, got %s", json_type(l));
    }
    if (lab.n == 0) return am_error(AM_EFORMAT, "field \"label\" is empty");
    return ds_add_labelled(ds, t, lab);
}

static int row_text(Dataset *ds, const cJSON *o, RowCtx *c) {
    (void)c;
    static const char *const tk[] = {"text", NULL};
    DsStr t;
    int rc = need_string(o, tk, &t);
    return rc ? rc : ds_add_text(ds, t);
}

static int row_beir(Dataset *ds, const cJSON *o, RowCtx *c) {
    static const char *const ik[] = {"_id", NULL}, *const tk[] = {"text", NULL};
    DsStr id, text, title = {"", 0};
    int rc = need_string(o, ik, &id);
    if (!rc) rc = need_string(o, tk, &text);
    if (rc) return rc;
    if (c->beir == 2) return ds_add_query(ds, id, text);
    const cJSON *t = field(o, "title");
    if (t && !cJSON_IsString(t)) return am_error(AM_EFORMAT, "field \"title\" must be a string, got %s", json_type(t));
    if (t) title = (DsStr){t->valuestring, strlen(t->valuestring)};
    return ds_add_doc(ds, id, title, text);
}

typedef int (*RowFn)(Dataset *, const cJSON *, RowCtx *);

static int parse_jsonl(Dataset *ds, const char *buf, size_t len, const char *origin, RowFn fn, RowCtx *c) {
    Lines li;
    lines_init(&li, buf, len, origin);
    const char *s;
    size_t n;
    while (lines_next(&li, &s, &n)) {
        if (is_blank(s, n)) continue;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
        if (!j) {
            size_t col = end && end >= s && end <= s + n ? (size_t)(end - s) + 1 : 1;
            return am_error(AM_EFORMAT, "%s:%lld: not valid JSON (column %zu)\nHINT: JSONL holds one JSON object "
                            "per line", origin, li.line, col);
        }
        while (end < s + n && (*end == ' ' || *end == '\t')) end++;
        if (end < s + n) {
            cJSON_Delete(j);
            return am_error(AM_EFORMAT, "%s:%lld: text after the JSON value (column %zu)\nHINT: JSONL holds one "
                            "JSON object per line", origin, li.line, (size_t)(end - s) + 1);
        }
        if (!cJSON_IsObject(j)) {
            const char *t = json_type(j);
            cJSON_Delete(j);
            return am_error(AM_EFORMAT, "%s:%lld: expected a JSON object, got %s", origin, li.line, t);
        }
        int rc = fn(ds, j, c);
        cJSON_Delete(j);
        if (rc) return am_error_wrap(AM_EFORMAT, "%s:%lld", origin, li.line);
    }
    return AM_OK;
}

/* ---------------------------------------------------------------- TSV */

#define MAX_COLS 8

/* Split s[0..n) on tabs into at most MAX_COLS fields; returns the real field count. */
static int split_tabs(const char *s, size_t n, DsStr *f) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '\t') {
            if (k < MAX_COLS) f[k] = (DsStr){s + start, i - start};
            k++;
            start = i + 1;
        }
    }
    return k;
}

static DsStr trim(DsStr x) {
    while (x.n && (x.s[0] == ' ' || x.s[0] == '\t')) {
        x.s++;
        x.n--;
    }
    while (x.n && (x.s[x.n - 1] == ' ' || x.s[x.n - 1] == '\t')) x.n--;
    return x;
}

/* A finite number filling the whole field (spaces around allowed). */
static int parse_double(DsStr f, double *out) {
    f = trim(f);
    if (f.n == 0 || f.n > 63) return -1;
    char tmp[64];
    memcpy(tmp, f.s, f.n);
    tmp[f.n] = 0;
    char *e;
    errno = 0;
    double v = strtod(tmp, &e);
    if (*e) return -1;
    *out = v;
    return isfinite(v) ? 0 : -2;
}

static int parse_int(DsStr f, long long *out) {
    f = trim(f);
    if (f.n == 0 || f.n > 30) return -1;
    char tmp[32];
    memcpy(tmp, f.s, f.n);
    tmp[f.n] = 0;
    char *e;
    errno = 0;
    long long v = strtoll(tmp, &e, 10);
    if (*e || errno) return -1;
    *out = v;
    return 0;
}

static int is_word(DsStr f) {
    f = trim(f);
    if (f.n == 0 || f.n > 40) return 0;
    if (!((f.s[0] >= 'a' && f.s[0] <= 'z') || (f.s[0] >= 'A' && f.s[0] <= 'Z'))) return 0;
    for (size_t i = 0; i < f.n; i++) {
        char ch = f.s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-' || ch == '.'))
            return 0;
    }
    return 1;
}

static int field_is(DsStr f, const char *name) {
    f = trim(f);
    return f.n == strlen(name) && strncasecmp(f.s, name, f.n) == 0;
}

#define QUOTED(f) (int)((f).n > 60 ? 60 : (f).n), (f).s, (f).n > 60 ? "..." : ""

static int parse_graded_tsv(Dataset *ds, const char *buf, size_t len, const char *origin) {
    Lines li;
    lines_init(&li, buf, len, origin);
    const char *s;
    size_t n;
    int first = 1;
    DsStr f[MAX_COLS];
    while (lines_next(&li, &s, &n)) {
        if (is_blank(s, n)) continue;
        int k = split_tabs(s, n, f);
        double v = 0;
        int bad = k == 3 ? parse_double(f[2], &v) : 0;
        if (first && k == 3 && bad == -1 && is_word(f[2])) { /* header line */
            first = 0;
            continue;
        }
        first = 0;
        if (k != 3)
            return am_error(AM_EFORMAT, "%s:%lld: expected 3 tab-separated columns (sentence1, sentence2, score), "
                            "found %d", origin, li.line, k);
        if (bad == -1)
            return am_error(AM_EFORMAT, "%s:%lld: score \"%.*s%s\" is not a number", origin, li.line, QUOTED(f[2]));
        if (bad == -2)
            return am_error(AM_EFORMAT, "%s:%lld: score \"%.*s%s\" is not a finite number", origin, li.line,
                            QUOTED(f[2]));
        int rc = ds_add_graded(ds, f[0], f[1], v);
        if (rc) return am_error_wrap(AM_EFORMAT, "%s:%lld", origin, li.line);
    }
    return AM_OK;
}

static int parse_labelled_tsv(Dataset *ds, const char *buf, size_t len, const char *origin) {
    Lines li;
    lines_init(&li, buf, len, origin);
    const char *s;
    size_t n;
    int first = 1;
    DsStr f[MAX_COLS];
    while (lines_next(&li, &s, &n)) {
        if (is_blank(s, n)) continue;
        int k = split_tabs(s, n, f);
        if (first && k == 2 && field_is(f[0], "text") && field_is(f[1], "label")) {
            first = 0;
            continue;
        }
        first = 0;
        if (k != 2)
            return am_error(AM_EFORMAT, "%s:%lld: expected 2 tab-separated columns (text, label), found %d", origin,
                            li.line, k);
        if (f[1].n == 0) return am_error(AM_EFORMAT, "%s:%lld: empty label", origin, li.line);
        int rc = ds_add_labelled(ds, f[0], f[1]);
        if (rc) return am_error_wrap(AM_EFORMAT, "%s:%lld", origin, li.line);
    }
    return AM_OK;
}

static int parse_text(Dataset *ds, const char *buf, size_t len, const char *origin, int paragraphs) {
    Lines li;
    lines_init(&li, buf, len, origin);
    const char *s;
    size_t n;
    if (!paragraphs) {
        while (lines_next(&li, &s, &n))
            if (!is_blank(s, n)) ds_add_text(ds, (DsStr){s, n});
        return AM_OK;
    }
    char *para = NULL;
    size_t plen = 0, pcap = 0;
    for (;;) {
        int more = lines_next(&li, &s, &n);
        if (!more || is_blank(s, n)) {
            if (plen) ds_add_text(ds, (DsStr){para, plen});
            plen = 0;
            if (!more) break;
            continue;
        }
        if (plen + n + 2 > pcap) {
            pcap = (plen + n + 2) * 2;
            para = xrealloc(para, pcap);
        }
        if (plen) para[plen++] = ' ';
        memcpy(para + plen, s, n);
        plen += n;
    }
    free(para);
    return AM_OK;
}

/* qrels/<split>.tsv into ds (corpus and queries already loaded). */
static int parse_qrels(Dataset *ds, const char *buf, size_t len, const char *origin, DsStr split) {
    Lines li;
    lines_init(&li, buf, len, origin);
    const char *s;
    size_t n;
    int header = 0;
    int64_t count = 0;
    DsStr f[MAX_COLS];
    while (lines_next(&li, &s, &n)) {
        if (is_blank(s, n)) continue;
        int k = split_tabs(s, n, f);
        if (!header) {
            int ok = k == 3;
            static const char *const want[3] = {"query-id", "corpus-id", "score"};
            for (int i = 0; ok && i < 3; i++) {
                DsStr t = trim(f[i]);
                char tmp[16];
                if (t.n >= sizeof tmp) {
                    ok = 0;
                    break;
                }
                for (size_t j = 0; j < t.n; j++) tmp[j] = t.s[j] == '_' ? '-' : t.s[j];
                ok = field_is((DsStr){tmp, t.n}, want[i]);
            }
            if (!ok)
                return am_error(AM_EFORMAT, "%s:%lld: bad qrels header \"%.*s%s\" (expected "
                                "\"query-id<TAB>corpus-id<TAB>score\")%s\n" HINT_BEIR, origin, li.line,
                                (int)(n > 60 ? 60 : n), s, n > 60 ? "..." : "",
                                k == 4 ? "\nHINT: TREC qrels (query 0 doc grade) need converting: drop column 2"
                                       : "");
            header = 1;
            continue;
        }
        if (k != 3)
            return am_error(AM_EFORMAT, "%s:%lld: expected 3 tab-separated columns (query-id, corpus-id, score), "
                            "found %d", origin, li.line, k);
        long long g;
        if (parse_int(f[2], &g) != 0)
            return am_error(AM_EFORMAT, "%s:%lld: score \"%.*s%s\" is not an integer grade", origin, li.line,
                            QUOTED(f[2]));
        if (g < 0)
            return am_error(AM_EFORMAT, "%s:%lld: negative grade %lld (grades are integers >= 0)", origin, li.line, g);
        int rc = ds_add_qrel(ds, split, f[0], f[1], g);
        if (rc) return am_error_wrap(AM_EFORMAT, "%s:%lld", origin, li.line);
        count++;
    }
    if (!header) return am_error(AM_EFORMAT, "%s: empty dataset (empty qrels file)\n" HINT_BEIR, origin);
    if (!count) return am_error(AM_EFORMAT, "%s: empty dataset (0 qrels after the header)", origin);
    return AM_OK;
}

/* ---------------------------------------------------------------- dispatch */

int ds_resolve_format(DatasetKind kind, DatasetFormat fmt, const char *name, DatasetFormat *out) {
    if (fmt == AM_FMT_AUTO) {
        int json = name && (ds_ends_with(name, ".jsonl") || ds_ends_with(name, ".jsonl.gz") ||
                            ds_ends_with(name, ".json") || ds_ends_with(name, ".json.gz"));
        switch (kind) {
        case AM_DS_PAIRS: /* JSONL only; a TSV name gets the "does not hold" error below */
            fmt = name && (ds_ends_with(name, ".tsv") || ds_ends_with(name, ".tsv.gz")) ? AM_FMT_TSV : AM_FMT_JSONL;
            break;
        case AM_DS_GRADED:
        case AM_DS_LABELLED:  fmt = json ? AM_FMT_JSONL : AM_FMT_TSV; break;
        case AM_DS_TEXT:      fmt = json ? AM_FMT_JSONL : AM_FMT_LINES; break;
        case AM_DS_RETRIEVAL: fmt = AM_FMT_BEIR; break;
        }
    }
    int ok = 0;
    switch (kind) {
    case AM_DS_PAIRS:     ok = fmt == AM_FMT_JSONL; break;
    case AM_DS_GRADED:
    case AM_DS_LABELLED:  ok = fmt == AM_FMT_JSONL || fmt == AM_FMT_TSV; break;
    case AM_DS_TEXT:      ok = fmt == AM_FMT_JSONL || fmt == AM_FMT_LINES || fmt == AM_FMT_PARAGRAPHS; break;
    case AM_DS_RETRIEVAL: ok = fmt == AM_FMT_BEIR; break;
    }
    static const char *const fname[] = {"auto", "JSONL", "TSV", "lines", "paragraphs", "BEIR"};
    if (!ok)
        return am_error(AM_EINVAL, "%s: the %s format does not hold %s data\nHINT: pairs are JSONL; graded and "
                        "labelled are JSONL or TSV; text is lines, paragraphs or JSONL; retrieval is a BEIR "
                        "directory", name ? name : "(buffer)", (unsigned)fmt < 6 ? fname[fmt] : "unknown",
                        dataset_kind_name(kind));
    *out = fmt;
    return AM_OK;
}

/* Lines in buf (for sizing the interning set up front). */
static size_t count_lines(const char *buf, size_t len) {
    size_t n = 1;
    for (const char *p = buf, *e = buf + len; (p = memchr(p, '\n', (size_t)(e - p))); p++) n++;
    return n;
}

static int parse_into(Dataset *ds, DatasetFormat fmt, const char *data, size_t len, const char *origin) {
    int rc = check_text(data, len, origin);
    if (rc) return rc;
    ds_reserve_strings(ds, count_lines(data, len) * (ds->kind == AM_DS_PAIRS ? 3 : ds->kind == AM_DS_GRADED ? 2 : 1));
    RowCtx c = {0};
    switch (ds->kind) {
    case AM_DS_PAIRS:    rc = parse_jsonl(ds, data, len, origin, row_pair, &c); break;
    case AM_DS_GRADED:
        rc = fmt == AM_FMT_JSONL ? parse_jsonl(ds, data, len, origin, row_graded, &c)
                                 : parse_graded_tsv(ds, data, len, origin);
        break;
    case AM_DS_LABELLED:
        rc = fmt == AM_FMT_JSONL ? parse_jsonl(ds, data, len, origin, row_labelled, &c)
                                 : parse_labelled_tsv(ds, data, len, origin);
        break;
    case AM_DS_TEXT:
        rc = fmt == AM_FMT_JSONL ? parse_jsonl(ds, data, len, origin, row_text, &c)
                                 : parse_text(ds, data, len, origin, fmt == AM_FMT_PARAGRAPHS);
        break;
    case AM_DS_RETRIEVAL: rc = am_error(AM_EINVAL, "%s: retrieval data is a BEIR directory", origin); break;
    }
    free(c.pos.v);
    free(c.neg.v);
    if (!rc && ds->n == 0) rc = am_error(AM_EFORMAT, "%s: empty dataset (0 records)", origin);
    return rc;
}

int dataset_parse(DatasetKind kind, DatasetFormat fmt, const char *data, size_t len, const char *origin,
                  Dataset **out) {
    *out = NULL;
    if (!origin) origin = "(buffer)";
    int rc = ds_resolve_format(kind, fmt, origin, &fmt);
    if (rc) return rc;
    if (kind == AM_DS_RETRIEVAL) return am_error(AM_EINVAL, "%s: retrieval data is a BEIR directory", origin);
    Dataset *ds = dataset_new(kind, origin);
    rc = parse_into(ds, fmt, data, len, origin);
    if (rc) {
        dataset_delete(ds);
        return rc;
    }
    dataset_finish(ds);
    *out = ds;
    return AM_OK;
}

int dataset_load(DatasetKind kind, const char *path, DatasetFormat fmt, Dataset **out) {
    *out = NULL;
    int rc = ds_resolve_format(kind, fmt, path, &fmt);
    if (rc) return rc;
    if (kind == AM_DS_RETRIEVAL) return dataset_load_beir(path, NULL, out);
    char *buf;
    size_t len;
    if ((rc = read_all(path, &buf, &len))) return rc;
    rc = dataset_parse(kind, fmt, buf, len, path, out);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- BEIR */

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* dir/name or dir/name.gz, whichever exists (NULL if neither); malloc'd. */
static char *find_file(const char *dir, const char *name) {
    char *p = xasprintf("%s/%s", dir, name);
    if (path_kind(p) == 1) return p;
    free(p);
    p = xasprintf("%s/%s.gz", dir, name);
    if (path_kind(p) == 1) return p;
    free(p);
    return NULL;
}

/* Split names of dir/qrels/<split>.tsv, sorted; returns the count (0 if none or no directory). */
static int list_splits(const char *qdir, char ***out) {
    *out = NULL;
    DIR *d = opendir(qdir);
    if (!d) return 0;
    int n = 0, cap = 0;
    char **v = NULL;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".tsv") != 0 || e->d_name[0] == '.') continue;
        if (n == cap) v = xrealloc(v, (size_t)(cap = cap ? cap * 2 : 8) * sizeof *v);
        v[n++] = strndup(e->d_name, l - 4);
        AM_ASSERT(v[n - 1] != NULL);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, cmp_cstr);
    *out = v;
    return n;
}

static int load_part(Dataset *ds, const char *path, int beir) {
    char *buf;
    size_t len;
    int rc = read_all(path, &buf, &len);
    if (rc) return rc;
    rc = check_text(buf, len, path);
    RowCtx c = {0};
    c.beir = beir;
    int64_t before = beir == 1 ? ds->n_docs : ds->n;
    if (!rc) ds_reserve_strings(ds, ds->impl->intern.count + count_lines(buf, len) * (beir == 1 ? 3 : 2));
    if (!rc) rc = parse_jsonl(ds, buf, len, path, row_beir, &c);
    if (!rc && (beir == 1 ? ds->n_docs : ds->n) == before)
        rc = am_error(AM_EFORMAT, "%s: empty dataset (0 %s)", path, beir == 1 ? "documents" : "queries");
    free(buf);
    return rc;
}

int dataset_load_beir(const char *dir, const char *split, Dataset **out) {
    *out = NULL;
    if (path_kind(dir) != 2) return am_error(AM_ENOTFOUND, "%s: no such directory\n" HINT_BEIR, dir);
    char *corpus = find_file(dir, "corpus.jsonl"), *queries = find_file(dir, "queries.jsonl");
    char *qdir = xasprintf("%s/qrels", dir), **splits = NULL;
    int n_splits = list_splits(qdir, &splits), rc = AM_OK;
    if (!corpus) {
        rc = am_error(AM_ENOTFOUND, "%s/corpus.jsonl: missing corpus file\n" HINT_BEIR, dir);
    } else if (!queries) {
        rc = am_error(AM_ENOTFOUND, "%s/queries.jsonl: missing queries file\n" HINT_BEIR, dir);
    } else if (split) {
        int found = 0;
        for (int i = 0; i < n_splits; i++) found |= strcmp(splits[i], split) == 0;
        if (!found) {
            char present[512] = "none";
            size_t o = 0;
            for (int i = 0; i < n_splits && o < sizeof present - 64; i++)
                o += (size_t)snprintf(present + o, sizeof present - o, "%s%s", i ? ", " : "", splits[i]);
            rc = am_error(AM_ENOTFOUND, "%s/%s.tsv: missing qrels file\n" HINT_BEIR "\nHINT: splits found in %s: %s",
                          qdir, split, qdir, present);
        }
    } else if (n_splits == 0) {
        rc = am_error(AM_ENOTFOUND, "%s/test.tsv: missing qrels file (no qrels/<split>.tsv in %s)\n" HINT_BEIR, qdir, dir);
    }
    Dataset *ds = NULL;
    if (!rc) {
        ds = dataset_new(AM_DS_RETRIEVAL, dir);
        rc = load_part(ds, corpus, 1);
        if (!rc) rc = load_part(ds, queries, 2);
        for (int i = 0; i < n_splits && !rc; i++) {
            if (split && strcmp(split, splits[i]) != 0) continue;
            char *path = xasprintf("%s/%s.tsv", qdir, splits[i]), *buf;
            size_t len;
            rc = read_all(path, &buf, &len);
            if (!rc) {
                rc = check_text(buf, len, path);
                if (!rc) rc = parse_qrels(ds, buf, len, path, (DsStr){splits[i], strlen(splits[i])});
                free(buf);
            }
            free(path);
        }
    }
    for (int i = 0; i < n_splits; i++) free(splits[i]);
    free(splits);
    free(qdir);
    free(corpus);
    free(queries);
    if (rc) {
        dataset_delete(ds);
        return rc;
    }
    dataset_finish(ds);
    *out = ds;
    return AM_OK;
}

int dataset_import(const char *spec, Dataset **out) {
    *out = NULL;
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon || !colon[1])
        return am_error(AM_EINVAL, "bad import spec \"%s\"\nHINT: beir:DIR[#split], pairs:FILE, sts:FILE, "
                        "labels:FILE, text:FILE or paragraphs:FILE", spec ? spec : "(null)");
    char *kind = strndup(spec, (size_t)(colon - spec));
    AM_ASSERT(kind != NULL);
    const char *path = colon + 1;
    int rc;
    if (strcmp(kind, "paragraphs") == 0) {
        rc = dataset_load(AM_DS_TEXT, path, AM_FMT_PARAGRAPHS, out);
    } else if (strcmp(kind, "beir") == 0 || strcmp(kind, "retrieval") == 0) {
        char *dir = xstrdup(path), *hash = strrchr(dir, '#');
        if (hash) *hash++ = 0;
        rc = dataset_load_beir(dir, hash, out);
        free(dir);
    } else {
        DatasetKind k;
        rc = dataset_kind_parse(kind, &k);
        if (rc) {
            rc = am_error(AM_EINVAL, "bad import spec \"%s\": unknown kind \"%s\"\nHINT: beir:DIR[#split], "
                          "pairs:FILE, sts:FILE, labels:FILE, text:FILE or paragraphs:FILE", spec, kind);
        } else {
            rc = dataset_load(k, path, AM_FMT_AUTO, out);
        }
    }
    free(kind);
    return rc;
}

/* ---------------------------------------------------------------- BEIR -> pairs */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

int dataset_beir_to_pairs(const Dataset *b, const char *split, int zero_grade_negatives, Dataset **out) {
    *out = NULL;
    if (b->kind != AM_DS_RETRIEVAL)
        return am_error(AM_EINVAL, "%s: not a retrieval dataset (%s)", b->origin, dataset_kind_name(b->kind));
    AM_ASSERT(b->impl->finished);
    int s = -1;
    if (!split) {
        if (b->n_splits != 1)
            return am_error(b->n_splits ? AM_EINVAL : AM_EFORMAT, "%s: %d qrels splits; name the one to convert",
                            b->origin, b->n_splits);
        s = 0;
    }
    for (int i = 0; i < b->n_splits && s < 0; i++)
        if (strcmp(b->split_names[i], split) == 0) s = i;
    if (s < 0) return am_error(AM_ENOTFOUND, "%s: no qrels split \"%s\"", b->origin, split);
    /* qrels of split s bucketed by query (CSR), file order kept */
    int64_t q0 = b->qrel_start[s], q1 = b->qrel_start[s + 1];
    int64_t *start = xcalloc((size_t)b->n + 2, sizeof *start), *idx = xmalloc((size_t)(q1 - q0 + 1) * sizeof *idx);
    for (int64_t j = q0; j < q1; j++) start[b->qrel_query[j] + 2]++;
    for (int64_t i = 0; i < b->n; i++) start[i + 2] += start[i + 1];
    for (int64_t j = q0; j < q1; j++) idx[start[b->qrel_query[j] + 1]++] = j;
    /* now row i's qrels are idx[start[i] .. start[i+1]) */
    Dataset *o = dataset_new(AM_DS_PAIRS, b->origin);
    char *scratch = NULL;
    size_t scap = 0;
    int64_t *off = NULL;
    DsStr *strs = NULL;
    int64_t cap = 0;
    int rc = AM_OK;
    for (int64_t q = 0; q < b->n && !rc; q++) {
        int64_t m = start[q + 1] - start[q];
        if (m > cap) {
            cap = m * 2;
            off = xrealloc(off, (size_t)cap * 2 * sizeof *off);
            strs = xrealloc(strs, (size_t)cap * sizeof *strs);
        }
        size_t used = 0;
        int np = 0, nn = 0;
        for (int pass = 0; pass < 2; pass++) /* positives first, then grade-0 negatives */
            for (int64_t t = start[q]; t < start[q + 1]; t++) {
                int64_t j = idx[t];
                int g = b->qrel_grade[j];
                if (pass == 0 ? g <= 0 : (g != 0 || !zero_grade_negatives)) continue;
                const char *ti = b->doc_title[b->qrel_doc[j]], *tx = b->doc_text[b->qrel_doc[j]];
                size_t lt = strlen(ti), lx = strlen(tx);
                if (used + lt + lx + 2 > scap) {
                    scap = (used + lt + lx + 2) * 2;
                    scratch = xrealloc(scratch, scap);
                }
                char *p = scratch + used;
                memcpy(p, ti, lt);
                p[lt] = ' ';
                memcpy(p + lt + 1, tx, lx);
                size_t a = 0, e = lt + lx + 1;
                while (a < e && is_space(p[a])) a++;
                while (e > a && is_space(p[e - 1])) e--;
                off[2 * (np + nn)] = (int64_t)(used + a);
                off[2 * (np + nn) + 1] = (int64_t)(e - a);
                used += lt + lx + 1;
                if (pass == 0) np++;
                else nn++;
            }
        if (np == 0) continue;
        for (int i = 0; i < np + nn; i++) strs[i] = (DsStr){scratch + off[2 * i], (size_t)off[2 * i + 1]};
        rc = ds_add_pair(o, (DsStr){b->text[q], strlen(b->text[q])}, strs, np, strs + np, nn);
    }
    free(scratch);
    free(off);
    free(strs);
    free(start);
    free(idx);
    if (!rc && o->n == 0)
        rc = am_error(AM_EFORMAT, "%s: split \"%s\" has no query with a relevant (grade > 0) document", b->origin,
                      b->split_names[s]);
    if (rc) {
        dataset_delete(o);
        return rc;
    }
    dataset_finish(o);
    *out = o;
    return AM_OK;
}
