/* src_internal.h - a growable byte buffer shared by the src/source helpers (private). */
#ifndef AM_SRC_INTERNAL_H
#define AM_SRC_INTERNAL_H

#include "am_base.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;     /* always NUL-terminated once anything was added */
    size_t n, cap;
} SrcBuf;

static inline void sbuf_grow(SrcBuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
    b->p[b->n] = 0;
}
static inline void sbuf_add(SrcBuf *b, const void *s, size_t n) {
    sbuf_grow(b, n);
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static inline void sbuf_addc(SrcBuf *b, char c) { sbuf_add(b, &c, 1); }
static inline void sbuf_adds(SrcBuf *b, const char *s) { sbuf_add(b, s, strlen(s)); }
/* append code point cp as UTF-8 (invalid code points become U+FFFD) */
static inline void sbuf_cp(SrcBuf *b, uint32_t cp) {
    char u[4];
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) { u[0] = (char)cp; sbuf_add(b, u, 1); }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); sbuf_add(b, u, 2); }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[2] = (char)(0x80 | (cp & 0x3F));
        sbuf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F));
        sbuf_add(b, u, 4);
    }
}
/* the buffer's string (never NULL); the buffer is left empty */
static inline char *sbuf_take(SrcBuf *b) {
    char *p = b->p ? b->p : xstrdup("");
    b->p = NULL;
    b->n = b->cap = 0;
    return p;
}
static inline void sbuf_free(SrcBuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* length of the valid UTF-8 sequence at s (1..4), or 0 if invalid */
size_t src_utf8_seq(const unsigned char *s, size_t len);
/* windows-1252 byte -> code point (Latin-1 for 0xA0..0xFF, the cp1252 table for 0x80..0x9F) */
uint32_t src_cp1252(unsigned char c);

#endif
