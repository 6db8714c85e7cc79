/* pod.c - POD formatting codes (perlpod "Formatting Codes") to plain text. */
#define _GNU_SOURCE
#include "source.h"
#include "src_internal.h"

#include <ctype.h>
#include <stdlib.h>

static void expand(const char *s, size_t len, SrcBuf *o, int depth);

/* Find the end of a formatting code body starting at s[i] (just after the opening '<'s).
 * nb = number of '<'. Returns the index of the first closing '>' (nb of them), or len. */
static size_t code_end(const char *s, size_t len, size_t i, int nb) {
    if (nb == 1) {
        int level = 0;
        for (size_t j = i; j < len; j++) {
            if (j + 1 < len && isupper((unsigned char)s[j]) && s[j + 1] == '<') { level++; j++; continue; }
            if (s[j] == '>') {
                if (level == 0) return j;
                level--;
            }
        }
        return len;
    }
    /* C<< text >>: ends at whitespace followed by nb '>' */
    for (size_t j = i; j + (size_t)nb <= len; j++) {
        if ((s[j] == ' ' || s[j] == '\t' || s[j] == '\n') ) {
            size_t k = j + 1, c = 0;
            while (k < len && s[k] == '>' && c < (size_t)nb) { k++; c++; }
            if (c == (size_t)nb) return j;
        }
    }
    return len;
}

static void add_link(SrcBuf *o, const char *t, size_t n) {
    const char *bar = memchr(t, '|', n);
    if (bar) { sbuf_add(o, t, (size_t)(bar - t)); return; }
    if (n > 7 && (memcmp(t, "http://", 7) == 0 || memcmp(t, "https:/", 7) == 0)) { sbuf_add(o, t, n); return; }
    const char *slash = memchr(t, '/', n);
    if (slash) {
        const char *sec = slash + 1;
        size_t sl = n - (size_t)(sec - t);
        if (sl >= 2 && sec[0] == '"' && sec[sl - 1] == '"') { sec++; sl -= 2; }
        sbuf_addc(o, '"');
        sbuf_add(o, sec, sl);
        sbuf_addc(o, '"');
        if (slash > t) {
            sbuf_adds(o, " in ");
            sbuf_add(o, t, (size_t)(slash - t));
        }
        return;
    }
    sbuf_add(o, t, n);
}

static void add_escape(SrcBuf *o, const char *t, size_t n) {
    char name[32];
    if (n == 0 || n >= sizeof name) return;
    memcpy(name, t, n);
    name[n] = 0;
    if (!strcmp(name, "verbar")) { sbuf_addc(o, '|'); return; }
    if (!strcmp(name, "sol")) { sbuf_addc(o, '/'); return; }
    if (isdigit((unsigned char)name[0])) {
        uint32_t cp = (uint32_t)strtoul(name, NULL, name[0] == '0' && (name[1] == 'x' || name[1] == 'X') ? 16 :
                                                   name[0] == '0' && n > 1 ? 8 : 10);
        sbuf_cp(o, cp);
        return;
    }
    char ent[40], u[8];
    size_t used;
    snprintf(ent, sizeof ent, "&%s;", name);
    int k = src_entity(ent, strlen(ent), u, &used);
    if (k) sbuf_add(o, u, (size_t)k);
}

static void expand(const char *s, size_t len, SrcBuf *o, int depth) {
    for (size_t i = 0; i < len;) {
        if (depth < 16 && i + 1 < len && isupper((unsigned char)s[i]) && s[i + 1] == '<' &&
            strchr("BICLEFSXZ", s[i])) {
            char code = s[i];
            size_t j = i + 1;
            int nb = 0;
            while (j < len && s[j] == '<') { nb++; j++; }
            if (nb > 1) { /* skip the mandatory white space after << */
                if (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n')) {
                    while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n')) j++;
                } else {
                    nb = 1; j = i + 2;
                }
            }
            size_t e = code_end(s, len, j, nb);
            SrcBuf inner = {0};
            expand(s + j, e - j, &inner, depth + 1);
            const char *t = inner.p ? inner.p : "";
            switch (code) {
            case 'L': add_link(o, t, inner.n); break;
            case 'E': add_escape(o, t, inner.n); break;
            case 'X': case 'Z': break;
            default: sbuf_add(o, t, inner.n); break;
            }
            sbuf_free(&inner);
            if (e >= len) break;
            if (nb > 1) { /* e is at the white space before >>>; skip it and the '>'s */
                size_t k = e;
                while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n')) k++;
                i = k + (size_t)nb;
            } else {
                i = e + 1;
            }
            continue;
        }
        sbuf_addc(o, s[i]);
        i++;
    }
}

char *src_pod_inline(const char *s, size_t len) {
    SrcBuf o = {0};
    expand(s, len, &o, 0);
    char *r = sbuf_take(&o);
    if (src_utf8_valid(r, strlen(r))) return r;
    char *c = src_to_utf8(r, strlen(r), NULL);
    free(r);
    return c;
}
