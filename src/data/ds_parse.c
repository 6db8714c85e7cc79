/* ds_parse.c - parsers for the standard dataset formats held in memory (see dataset.h for the
 * formats): JSONL rows, TSV, lines/paragraphs, qrels, and the format dispatch.
 *
 * Every parser checks the whole buffer is UTF-8 without NUL bytes (reporting the line and
 * byte), then walks it line by line; a failing line becomes "file:LINE: problem". The
 * dataset under construction is deleted on any error, so callers never see half of one. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include "wordpiece.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
int ds_check_text(const char *buf, size_t len, const char *origin) {
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

/* the trimmed field f as a C string in tmp[cap]: 0 when it is empty or too long */
static int field_cstr(DsStr f, char *tmp, size_t cap) {
    f = trim(f);
    if (f.n == 0 || f.n >= cap) return 0;
    memcpy(tmp, f.s, f.n);
    tmp[f.n] = 0;
    return 1;
}

/* A finite number filling the whole field (spaces around allowed). */
static int parse_double(DsStr f, double *out) {
    char tmp[64];
    if (!field_cstr(f, tmp, sizeof tmp)) return -1;
    char *e;
    errno = 0;
    double v = strtod(tmp, &e);
    if (*e) return -1;
    *out = v;
    return isfinite(v) ? 0 : -2;
}

static int parse_int(DsStr f, long long *out) {
    char tmp[31];
    if (!field_cstr(f, tmp, sizeof tmp)) return -1;
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

/* the next non-blank line of li split at tabs into f: its column count (f holds the first
 * MAX_COLS), 0 at the end */
static int next_row(Lines *li, DsStr *f) {
    const char *s;
    size_t n;
    while (lines_next(li, &s, &n))
        if (!is_blank(s, n)) return split_tabs(s, n, f);
    return 0;
}

#define QUOTED(f) (int)((f).n > 60 ? 60 : (f).n), (f).s, (f).n > 60 ? "..." : ""

static int parse_graded_tsv(Dataset *ds, const char *buf, size_t len, const char *origin) {
    Lines li;
    lines_init(&li, buf, len, origin);
    int first = 1, k;
    DsStr f[MAX_COLS];
    while ((k = next_row(&li, f))) {
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
    int first = 1, k;
    DsStr f[MAX_COLS];
    while ((k = next_row(&li, f))) {
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
int ds_parse_qrels(Dataset *ds, const char *buf, size_t len, const char *origin, DsStr split) {
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
size_t ds_count_lines(const char *buf, size_t len) {
    size_t n = 1;
    for (const char *p = buf, *e = buf + len; (p = memchr(p, '\n', (size_t)(e - p))); p++) n++;
    return n;
}

static int parse_into(Dataset *ds, DatasetFormat fmt, const char *data, size_t len, const char *origin) {
    int rc = ds_check_text(data, len, origin);
    if (rc) return rc;
    ds_reserve_strings(ds, ds_count_lines(data, len) * (ds->kind == AM_DS_PAIRS ? 3 : ds->kind == AM_DS_GRADED ? 2 : 1));
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


int ds_parse_beir_jsonl(Dataset *ds, const char *buf, size_t len, const char *origin, int part) {
    RowCtx c = {0};
    c.beir = part;
    return parse_jsonl(ds, buf, len, origin, row_beir, &c);
}
