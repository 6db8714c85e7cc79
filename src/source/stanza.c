/* stanza.c - RFC-822 style stanzas (Debian Packages, Translation-en, .dsc, control files). */
#define _GNU_SOURCE
#include "source.h"
#include "src_internal.h"

#include <stdlib.h>

int src_stanzas(const char *text, size_t len, const char *origin, SrcStanzaFn fn, void *ud) {
    int cap = 32, n = 0;
    SrcField *f = xmalloc((size_t)cap * sizeof *f);
    long line = 0;
    int rc = AM_OK;
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3;
    for (;;) {
        int at_end = i >= len;
        const char *nl = at_end ? NULL : memchr(text + i, '\n', len - i);
        size_t e = at_end ? len : nl ? (size_t)(nl - text) : len;
        size_t le = e;
        if (!at_end && le > i && text[le - 1] == '\r') le--;
        if (!at_end) line++;
        int blank = at_end || le == i;
        if (!blank) { /* a line of only spaces/tabs is blank too (deb822) */
            size_t k = i;
            while (k < le && (text[k] == ' ' || text[k] == '\t')) k++;
            if (k == le) blank = 1;
        }
        if (blank) {
            if (n) {
                int r = fn(ud, f, n);
                n = 0;
                if (r) { rc = r; break; }
            }
            if (at_end) break;
            i = e + 1;
            continue;
        }
        if (text[i] == ' ' || text[i] == '\t') {
            if (!n) { rc = am_error(AM_EFORMAT, "%s:%ld: continuation line outside a field", origin, line); break; }
            /* extend the last field's value to the end of this line */
            f[n - 1].value_len = (size_t)((text + le) - f[n - 1].value);
        } else if (text[i] == '#') {
            /* comment line (control files) */
        } else {
            const char *colon = memchr(text + i, ':', le - i);
            if (!colon || colon == text + i) {
                rc = am_error(AM_EFORMAT, "%s:%ld: expected 'Field: value', got '%.*s'", origin, line,
                              (int)(le - i > 60 ? 60 : le - i), text + i);
                break;
            }
            if (n == cap) {
                cap *= 2;
                f = xrealloc(f, (size_t)cap * sizeof *f);
            }
            f[n].name = text + i;
            f[n].name_len = (size_t)(colon - (text + i));
            const char *v = colon + 1;
            while (v < text + le && (*v == ' ' || *v == '\t')) v++;
            f[n].value = v;
            f[n].value_len = (size_t)((text + le) - v);
            n++;
        }
        i = e + 1;
    }
    free(f);
    return rc;
}
