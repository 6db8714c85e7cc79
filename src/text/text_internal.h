/* text_internal.h - shared by the src/text sources; not part of the public API. */
#ifndef AM_TEXT_INTERNAL_H
#define AM_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "wordpiece.h"

/* Decode one code point from s[i..n) (i < n). Returns the number of bytes consumed (>= 1)
 * and the code point in *cp, or *cp = -1 for an ill-formed sequence: then the return value
 * is the length of its maximal subpart (Unicode §3.9 "U+FFFD substitution of maximal
 * subparts", which is what Python's bytes.decode(errors='replace') and the WHATWG decoder
 * do), so a following valid character is never swallowed. Rejects overlongs, surrogates
 * and code points above U+10FFFF. */
static inline int utf8_next(const unsigned char *s, size_t n, size_t i, int32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    int32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = (int32_t)(c & 0x1F);
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = (int32_t)(c & 0x0F);
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = (int32_t)(c & 0x07);
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else {
        *cp = -1;
        return 1;
    }
    size_t j = i + 1;
    for (int k = 0; k < need; k++, j++) {
        if (j >= n || s[j] < lo || s[j] > hi) {
            *cp = -1;
            return (int)(j - i);
        }
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (int32_t)(s[j] & 0x3F);
    }
    *cp = v;
    return need + 1;
}

/* Encode cp (valid scalar value) as UTF-8 into out (>= 4 bytes); returns the length. */
static inline int utf8_put(int32_t cp, char *out) {
    unsigned c = (unsigned)cp;
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Vocab lookup on raw bytes. cont = 0: the token itself; cont = 1: the token "##" + key
 * (a continuation piece). -1 if absent. */
int vocab_find(const Vocab *v, const char *key, size_t len, int cont);
/* Longest key in bytes among word-initial tokens (cont = 0) or "##" tokens without the
 * prefix (cont = 1): WordPiece never tries a longer substring. */
size_t vocab_max_len(const Vocab *v, int cont);

#endif
