/* mail.c - RFC 822 / MIME mail to readable text: headers (unfolded, RFC 2047 decoded),
 * multipart walk, quoted-printable / base64, charsets, HTML to text. */
#define _GNU_SOURCE
#include "source.h"
#include "src_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

#define MAIL_MAX_DEPTH 8

/* ---------------------------------------------------------------- decoders */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t src_qp_decode(const char *in, size_t len, char *out, int header) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '=' && !header) {
            /* soft line break: "=" [spaces] CRLF/LF */
            size_t j = i + 1;
            while (j < len && (in[j] == ' ' || in[j] == '\t')) j++;
            if (j < len && (in[j] == '\n' || (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n'))) {
                i = in[j] == '\r' ? j + 1 : j;
                continue;
            }
            if (j == len) { i = j; continue; }
        }
        if (c == '=' && i + 2 < len) {
            int h = hexval((unsigned char)in[i + 1]), l = hexval((unsigned char)in[i + 2]);
            if (h >= 0 && l >= 0) {
                out[o++] = (char)(h * 16 + l);
                i += 2;
                continue;
            }
        }
        if (c == '_' && header) c = ' ';
        out[o++] = c;
    }
    return o;
}

size_t src_b64_decode(const char *in, size_t len, unsigned char *out) {
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i], d;
        if (c >= 'A' && c <= 'Z') d = c - 'A';
        else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
        else if (c >= '0' && c <= '9') d = c - '0' + 52;
        else if (c == '+' || c == '-') d = 62;
        else if (c == '/' || c == '_') d = 63;
        else if (isspace(c)) continue;
        else break; /* '=' padding or garbage ends the data */
        acc = (acc << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return o;
}

/* ---------------------------------------------------------------- HTML */

static int tag_is(const char *name, size_t n, const char *const *list) {
    for (; *list; list++)
        if (strlen(*list) == n && strncasecmp(*list, name, n) == 0) return 1;
    return 0;
}

char *src_html_text(const char *h, size_t len) {
    static const char *const block[] = {"p", "br", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
                                        "ul", "ol", "blockquote", "pre", "hr", "title", "dt", "dd", "center",
                                        "form", "body", "html", "head", NULL};
    static const char *const cell[] = {"td", "th", "img", NULL};
    SrcBuf b = {0};
    sbuf_grow(&b, len / 2);
    for (size_t i = 0; i < len;) {
        char c = h[i];
        if (c == '<') {
            if (i + 3 < len && memcmp(h + i, "<!--", 4) == 0) {
                const char *e = memmem(h + i + 4, len - i - 4, "-->", 3);
                i = e ? (size_t)(e - h) + 3 : len;
                continue;
            }
            size_t j = i + 1;
            int closing = 0;
            if (j < len && h[j] == '/') { closing = 1; j++; }
            size_t ns = j;
            while (j < len && (isalnum((unsigned char)h[j]) || h[j] == ':' || h[j] == '-')) j++;
            size_t nlen = j - ns;
            if (nlen == 0 && !(j < len && h[j] == '!')) { /* a lone '<' is text */
                sbuf_addc(&b, c);
                i++;
                continue;
            }
            /* find the end of the tag, honouring quotes */
            char q = 0;
            while (j < len && (q || h[j] != '>')) {
                if (q && h[j] == q) q = 0;
                else if (!q && (h[j] == '"' || h[j] == '\'') && j > 0 && h[j - 1] == '=') q = h[j];
                j++;
            }
            size_t end = j < len ? j + 1 : len;
            if (!closing && nlen && (tag_is(h + ns, nlen, (const char *const[]){"script", "style", NULL}))) {
                char close[16];
                snprintf(close, sizeof close, "</%.*s", (int)nlen, h + ns);
                const char *e = NULL;
                for (size_t k = end; k + nlen + 2 <= len; k++)
                    if (h[k] == '<' && strncasecmp(h + k, close, nlen + 2) == 0) { e = h + k; break; }
                if (!e) { i = len; continue; }
                const char *gt = memchr(e, '>', (size_t)(h + len - e));
                i = gt ? (size_t)(gt - h) + 1 : len;
                continue;
            }
            if (nlen && tag_is(h + ns, nlen, block)) sbuf_addc(&b, '\n');
            else if (nlen && tag_is(h + ns, nlen, cell)) sbuf_addc(&b, ' ');
            i = end;
            continue;
        }
        if (c == '&') {
            char u[8];
            size_t used;
            int k = src_entity(h + i, len - i, u, &used);
            if (k) {
                sbuf_add(&b, u, (size_t)k);
                i += used;
                continue;
            }
        }
        sbuf_addc(&b, c == '\r' ? ' ' : c == '\n' ? ' ' : c);
        i++;
    }
    /* tidy: squash spaces inside lines, trim lines, at most one blank line in a row */
    char *out = src_tidy_lines(b.p);
    sbuf_free(&b);
    return out;
}

/* ---------------------------------------------------------------- headers */

typedef struct {
    SrcHeader *h;
    int n, cap;
} HeaderList;

/* Decode RFC 2047 encoded words in a header value; white space between two encoded words is
 * dropped. Result is UTF-8. */
static char *decode_words(const char *v, size_t len) {
    SrcBuf b = {0};
    size_t i = 0, pending_ws = 0, ws_start = 0;
    int last_encoded = 0;
    while (i < len) {
        if (v[i] == '=' && i + 1 < len && v[i + 1] == '?') {
            /* =?charset?X?text?= */
            size_t cs = i + 2, q1 = cs;
            while (q1 < len && v[q1] != '?') q1++;
            if (q1 + 2 < len && v[q1 + 2] == '?') {
                char enc = (char)toupper((unsigned char)v[q1 + 1]);
                size_t ts = q1 + 3, te = ts;
                while (te + 1 < len && !(v[te] == '?' && v[te + 1] == '=')) te++;
                if (te + 1 < len && (enc == 'Q' || enc == 'B')) {
                    char charset[64];
                    size_t cl = q1 - cs < sizeof charset - 1 ? q1 - cs : sizeof charset - 1;
                    memcpy(charset, v + cs, cl);
                    charset[cl] = 0;
                    char *star = strchr(charset, '*'); /* RFC 2231 language */
                    if (star) *star = 0;
                    char *raw = xmalloc(te - ts + 4);
                    size_t rn = enc == 'Q' ? src_qp_decode(v + ts, te - ts, raw, 1)
                                           : src_b64_decode(v + ts, te - ts, (unsigned char *)raw);
                    char *u = src_to_utf8(raw, rn, charset);
                    if (pending_ws && !last_encoded) sbuf_add(&b, v + ws_start, pending_ws);
                    sbuf_adds(&b, u);
                    free(u);
                    free(raw);
                    pending_ws = 0;
                    last_encoded = 1;
                    i = te + 2;
                    continue;
                }
            }
        }
        if (v[i] == ' ' || v[i] == '\t') {
            if (!pending_ws) ws_start = i;
            pending_ws++;
            i++;
            continue;
        }
        if (pending_ws) sbuf_add(&b, v + ws_start, pending_ws);
        pending_ws = 0;
        last_encoded = 0;
        sbuf_addc(&b, v[i]);
        i++;
    }
    char *raw = sbuf_take(&b);
    char *u = src_to_utf8(raw, strlen(raw), NULL);
    free(raw);
    char *sq = src_squash(u, strlen(u));
    free(u);
    return sq;
}

/* Parse the header block at s[0..len); returns the offset of the body (after the blank line). */
static size_t parse_headers(const char *s, size_t len, HeaderList *hl) {
    size_t i = 0;
    /* mbox "From " separator line */
    if (len > 5 && memcmp(s, "From ", 5) == 0) {
        const char *nl = memchr(s, '\n', len);
        i = nl ? (size_t)(nl - s) + 1 : len;
    }
    SrcBuf cur = {0};
    char *name = NULL;
    for (;;) {
        if (i >= len) break;
        const char *nl = memchr(s + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - s) : len;
        size_t le = e;
        if (le > i && s[le - 1] == '\r') le--;
        int blank = le == i;
        int cont = !blank && (s[i] == ' ' || s[i] == '\t');
        if ((blank || !cont) && name) {
            if (hl->n == hl->cap) {
                hl->cap = hl->cap ? 2 * hl->cap : 16;
                hl->h = xrealloc(hl->h, (size_t)hl->cap * sizeof *hl->h);
            }
            hl->h[hl->n].name = name;
            hl->h[hl->n].value = decode_words(cur.p ? cur.p : "", cur.n);
            hl->n++;
            name = NULL;
            cur.n = 0;
            if (cur.p) cur.p[0] = 0;
        }
        if (blank) { i = e + 1; break; }
        if (cont) {
            if (name) { sbuf_addc(&cur, ' '); sbuf_add(&cur, s + i, le - i); }
        } else {
            const char *colon = memchr(s + i, ':', le - i);
            if (colon && colon > s + i) {
                size_t nl2 = (size_t)(colon - (s + i));
                name = xmalloc(nl2 + 1);
                for (size_t k = 0; k < nl2; k++) name[k] = (char)tolower((unsigned char)s[i + k]);
                name[nl2] = 0;
                size_t vs = (size_t)(colon - s) + 1;
                sbuf_add(&cur, s + vs, le - vs);
            } else if (hl->n == 0 && !name) {
                /* no header at all: the whole thing is a body */
                sbuf_free(&cur);
                return 0;
            }
        }
        i = e + 1;
    }
    if (name) {
        if (hl->n == hl->cap) {
            hl->cap = hl->cap ? 2 * hl->cap : 16;
            hl->h = xrealloc(hl->h, (size_t)hl->cap * sizeof *hl->h);
        }
        hl->h[hl->n].name = name;
        hl->h[hl->n].value = decode_words(cur.p ? cur.p : "", cur.n);
        hl->n++;
    }
    sbuf_free(&cur);
    return i < len ? i : len;
}

static void headers_free(HeaderList *hl) {
    for (int i = 0; i < hl->n; i++) {
        free(hl->h[i].name);
        free(hl->h[i].value);
    }
    free(hl->h);
    hl->h = NULL;
    hl->n = hl->cap = 0;
}

static const char *hget(const HeaderList *hl, const char *name) {
    for (int i = 0; i < hl->n; i++)
        if (strcmp(hl->h[i].name, name) == 0) return hl->h[i].value;
    return NULL;
}

/* Content-Type: "type/sub; a=b; c="d"" -> type (lower-case) and a parameter value */
static void ctype_main(const char *ct, char *out, size_t cap) {
    size_t n = 0;
    if (ct) {
        while (*ct == ' ') ct++;
        while (*ct && *ct != ';' && *ct != ' ' && n + 1 < cap) out[n++] = (char)tolower((unsigned char)*ct++);
    }
    out[n] = 0;
}

static void ctype_param(const char *ct, const char *param, char *out, size_t cap) {
    out[0] = 0;
    if (!ct) return;
    size_t pl = strlen(param);
    for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t') q++;
        if (strncasecmp(q, param, pl) != 0) continue;
        q += pl;
        while (*q == ' ') q++;
        if (*q != '=') continue;
        q++;
        while (*q == ' ') q++;
        size_t n = 0;
        if (*q == '"') {
            q++;
            while (*q && *q != '"' && n + 1 < cap) out[n++] = *q++;
        } else {
            while (*q && *q != ';' && *q != ' ' && n + 1 < cap) out[n++] = *q++;
        }
        out[n] = 0;
        return;
    }
}

/* ---------------------------------------------------------------- parts */

typedef struct {
    SrcBuf plain, html;
    int n_parts;
} Walk;

static void add_text(SrcBuf *dst, const char *t) {
    if (!*t) return;
    if (dst->n) sbuf_adds(dst, "\n\n");
    sbuf_adds(dst, t);
}

static void walk_part(Walk *w, const HeaderList *hl, const char *body, size_t len, int depth);

static void walk_multipart(Walk *w, const char *boundary, const char *body, size_t len, int depth) {
    size_t bl = strlen(boundary);
    if (!bl) return;
    /* find delimiter lines "--boundary" at line starts */
    const char *start = NULL;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(body + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - body) : len;
        if (e - i >= bl + 2 && body[i] == '-' && body[i + 1] == '-' && memcmp(body + i + 2, boundary, bl) == 0) {
            int last = e - i >= bl + 4 && body[i + bl + 2] == '-' && body[i + bl + 3] == '-';
            if (start) {
                size_t plen = (size_t)((body + i) - start);
                if (plen && start[plen - 1] == '\n') plen--;
                if (plen && start[plen - 1] == '\r') plen--;
                HeaderList sub = {0};
                size_t off = parse_headers(start, plen, &sub);
                walk_part(w, &sub, start + off, plen - off, depth + 1);
                headers_free(&sub);
            }
            if (last) return;
            start = nl ? nl + 1 : body + len;
        }
        i = e + 1;
    }
    if (start && start < body + len) { /* missing closing delimiter: take the rest */
        size_t plen = (size_t)(body + len - start);
        HeaderList sub = {0};
        size_t off = parse_headers(start, plen, &sub);
        walk_part(w, &sub, start + off, plen - off, depth + 1);
        headers_free(&sub);
    }
}

static void walk_part(Walk *w, const HeaderList *hl, const char *body, size_t len, int depth) {
    if (depth > MAIL_MAX_DEPTH) return;
    const char *ct = hget(hl, "content-type");
    char type[96], charset[64], boundary[256], cte[64];
    ctype_main(ct, type, sizeof type);
    if (!type[0]) snprintf(type, sizeof type, "text/plain");
    if (strncmp(type, "multipart/", 10) == 0) {
        ctype_param(ct, "boundary", boundary, sizeof boundary);
        if (boundary[0]) {
            walk_multipart(w, boundary, body, len, depth);
            return;
        }
        snprintf(type, sizeof type, "text/plain"); /* no boundary: read it as text */
    }
    if (strcmp(type, "message/rfc822") == 0) {
        HeaderList sub = {0};
        size_t off = parse_headers(body, len, &sub);
        walk_part(w, &sub, body + off, len - off, depth + 1);
        headers_free(&sub);
        return;
    }
    w->n_parts++;
    int is_plain = strcmp(type, "text/plain") == 0 || strcmp(type, "text") == 0;
    int is_html = strcmp(type, "text/html") == 0;
    if (!is_plain && !is_html) return; /* attachments, images, ... */
    const char *disp = hget(hl, "content-disposition");
    if (disp && strncasecmp(disp, "attachment", 10) == 0 && !is_plain) return;
    ctype_param(ct, "charset", charset, sizeof charset);
    const char *enc = hget(hl, "content-transfer-encoding");
    ctype_main(enc, cte, sizeof cte);
    char *raw = xmalloc(len + 4);
    size_t rn;
    if (strcmp(cte, "quoted-printable") == 0) rn = src_qp_decode(body, len, raw, 0);
    else if (strcmp(cte, "base64") == 0) rn = src_b64_decode(body, len, (unsigned char *)raw);
    else { memcpy(raw, body, len); rn = len; }
    char *u = src_to_utf8(raw, rn, charset[0] ? charset : NULL);
    free(raw);
    /* plain text that is really HTML (spam does this) */
    if (is_plain && (strcasestr(u, "<html") || strcasestr(u, "<body") || strcasestr(u, "<p>") ||
                     strcasestr(u, "<br>") || strcasestr(u, "<table"))) {
        is_plain = 0;
        is_html = 1;
    }
    if (is_html) {
        char *t = src_html_text(u, strlen(u));
        add_text(&w->html, t);
        free(t);
    } else {
        /* normalise line ends */
        SrcBuf t = {0};
        for (const char *p = u; *p; p++)
            if (*p != '\r') sbuf_addc(&t, *p);
        add_text(&w->plain, t.p ? t.p : "");
        sbuf_free(&t);
    }
    free(u);
}

int src_mail_parse(const char *raw, size_t len, SrcMail *out) {
    memset(out, 0, sizeof *out);
    HeaderList hl = {0};
    size_t off = parse_headers(raw, len, &hl);
    Walk w = {0};
    walk_part(&w, &hl, raw + off, len - off, 0);
    out->headers = hl.h;
    out->n_headers = hl.n;
    out->n_parts = w.n_parts;
    if (w.plain.n) {
        out->body = sbuf_take(&w.plain);
        sbuf_free(&w.html);
    } else {
        out->body = sbuf_take(&w.html);
        out->html = out->body[0] != 0;
        sbuf_free(&w.plain);
    }
    return AM_OK;
}

void src_mail_free(SrcMail *m) {
    if (!m) return;
    for (int i = 0; i < m->n_headers; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->body);
    memset(m, 0, sizeof *m);
}

const char *src_mail_header(const SrcMail *m, const char *name) {
    for (int i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->headers[i].name, name) == 0) return m->headers[i].value;
    return NULL;
}
