/* text.c - UTF-8 checks and repair, charset conversion, white space, entities, gzip/zlib,
 * dictd numbers. */
#define _GNU_SOURCE
#include "source.h"
#include "src_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <zlib.h>

/* ---------------------------------------------------------------- UTF-8 */

size_t src_utf8_seq(const unsigned char *s, size_t len) {
    unsigned c = s[0];
    if (c < 0x80) return c ? 1 : 0;
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int src_utf8_valid(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) {
            if (!u[i]) return 0;
            i++;
            continue;
        }
        size_t k = src_utf8_seq(u + i, len - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

char *src_utf8_clean(const char *s, size_t len) {
    SrcBuf b = {0};
    sbuf_grow(&b, len);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (u[i] == 0) { i++; continue; }
        size_t k = src_utf8_seq(u + i, len - i);
        if (k) {
            sbuf_add(&b, s + i, k);
            i += k;
        } else {
            sbuf_cp(&b, 0xFFFD);
            i++;
        }
    }
    return sbuf_take(&b);
}

static const uint16_t cp1252_hi[32] = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD,
    0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
    0x0153, 0xFFFD, 0x017E, 0x0178,
};

uint32_t src_cp1252(unsigned char c) {
    if (c >= 0x80 && c < 0xA0) return cp1252_hi[c - 0x80];
    return c;
}

static char *from_8bit(const char *s, size_t len, int latin9) {
    SrcBuf b = {0};
    sbuf_grow(&b, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!c) continue;
        if (c < 0x80) { sbuf_addc(&b, (char)c); continue; }
        uint32_t cp = src_cp1252(c);
        if (latin9) {
            switch (c) {
            case 0xA4: cp = 0x20AC; break; case 0xA6: cp = 0x0160; break; case 0xA8: cp = 0x0161; break;
            case 0xB4: cp = 0x017D; break; case 0xB8: cp = 0x017E; break; case 0xBC: cp = 0x0152; break;
            case 0xBD: cp = 0x0153; break; case 0xBE: cp = 0x0178; break; default: break;
            }
        }
        sbuf_cp(&b, cp);
    }
    return sbuf_take(&b);
}

char *src_to_utf8(const char *s, size_t len, const char *charset) {
    if (charset && *charset) {
        if (!strcasecmp(charset, "iso-8859-15") || !strcasecmp(charset, "latin9") || !strcasecmp(charset, "latin-9"))
            return from_8bit(s, len, 1);
        if (!strcasecmp(charset, "iso-8859-1") || !strcasecmp(charset, "latin1") || !strcasecmp(charset, "latin-1") ||
            !strcasecmp(charset, "windows-1252") || !strcasecmp(charset, "cp1252") || !strcasecmp(charset, "iso8859-1"))
            return from_8bit(s, len, 0);
    }
    /* utf-8, us-ascii, unknown: keep valid UTF-8, else read it as windows-1252 */
    if (src_utf8_valid(s, len)) return src_utf8_clean(s, len);
    size_t nul = 0;
    for (size_t i = 0; i < len; i++) nul += s[i] == 0;
    if (nul) { /* only NULs made it invalid? */
        char *c = src_utf8_clean(s, len);
        if (src_utf8_valid(c, strlen(c)) && strstr(c, "\xEF\xBF\xBD") == NULL) return c;
        free(c);
    }
    return from_8bit(s, len, 0);
}

char *src_squash(const char *s, size_t len) {
    SrcBuf b = {0};
    sbuf_grow(&b, len);
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
        if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] == 0xA0) { ws = 1; i++; }
        if (ws) { space = 1; continue; }
        if (space && b.n) sbuf_addc(&b, ' ');
        space = 0;
        sbuf_addc(&b, (char)c);
    }
    return sbuf_take(&b);
}

char *src_tidy_lines(const char *s) {
    SrcBuf o = {0};
    int blank = 0;
    for (const char *p = s ? s : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *sq = src_squash(p, n);
        if (*sq) {
            if (o.n) sbuf_adds(&o, blank ? "\n\n" : "\n");
            sbuf_adds(&o, sq);
            blank = 0;
        } else if (o.n) {
            blank = 1;
        }
        free(sq);
        p += n + (nl ? 1 : 0);
    }
    return sbuf_take(&o);
}

/* ---------------------------------------------------------------- entities */

static const struct { const char *name; uint32_t cp; } entities[] = {
    {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xA0},
    {"copy", 0xA9}, {"reg", 0xAE}, {"trade", 0x2122}, {"mdash", 0x2014}, {"ndash", 0x2013},
    {"hellip", 0x2026}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
    {"bull", 0x2022}, {"middot", 0xB7}, {"euro", 0x20AC}, {"pound", 0xA3}, {"yen", 0xA5}, {"cent", 0xA2},
    {"deg", 0xB0}, {"times", 0xD7}, {"divide", 0xF7}, {"laquo", 0xAB}, {"raquo", 0xBB}, {"sect", 0xA7},
    {"para", 0xB6}, {"iexcl", 0xA1}, {"iquest", 0xBF}, {"eacute", 0xE9}, {"egrave", 0xE8}, {"ecirc", 0xEA},
    {"aacute", 0xE1}, {"agrave", 0xE0}, {"acirc", 0xE2}, {"auml", 0xE4}, {"ouml", 0xF6}, {"uuml", 0xFC},
    {"Auml", 0xC4}, {"Ouml", 0xD6}, {"Uuml", 0xDC}, {"szlig", 0xDF}, {"ccedil", 0xE7}, {"ntilde", 0xF1},
    {"oacute", 0xF3}, {"iacute", 0xED}, {"uacute", 0xFA}, {"plusmn", 0xB1}, {"frac12", 0xBD},
    {"frac14", 0xBC}, {"frac34", 0xBE}, {"shy", 0xAD}, {"ensp", 0x2002}, {"emsp", 0x2003}, {"thinsp", 0x2009},
};

int src_entity(const char *s, size_t len, char out[8], size_t *used) {
    if (len < 3 || s[0] != '&') return 0;
    size_t e = 1;
    while (e < len && e < 12 && s[e] != ';' && (isalnum((unsigned char)s[e]) || s[e] == '#')) e++;
    if (e >= len || s[e] != ';' || e == 1) return 0;
    uint32_t cp = 0;
    if (s[1] == '#') {
        int hex = e > 2 && (s[2] == 'x' || s[2] == 'X');
        size_t i = hex ? 3 : 2;
        if (i >= e) return 0;
        for (; i < e; i++) {
            int c = (unsigned char)s[i], d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (hex && isxdigit(c)) d = (tolower(c) - 'a') + 10;
            else return 0;
            cp = cp * (hex ? 16 : 10) + (uint32_t)d;
            if (cp > 0x10FFFF) return 0;
        }
        if (cp >= 0x80 && cp < 0xA0) cp = src_cp1252((unsigned char)cp); /* &#150; and friends */
    } else {
        size_t k = 0;
        for (; k < sizeof entities / sizeof entities[0]; k++)
            if (strlen(entities[k].name) == e - 1 && memcmp(entities[k].name, s + 1, e - 1) == 0) break;
        if (k == sizeof entities / sizeof entities[0]) return 0;
        cp = entities[k].cp;
    }
    SrcBuf b = {0};
    sbuf_cp(&b, cp);
    memcpy(out, b.p, b.n + 1);
    int n = (int)b.n;
    sbuf_free(&b);
    *used = e + 1;
    return n;
}

/* ---------------------------------------------------------------- gzip / zlib */

int src_is_gzip(const void *data, size_t len) {
    const unsigned char *u = data;
    return len >= 2 && u[0] == 0x1f && u[1] == 0x8b;
}

int src_gunzip(const void *data, size_t len, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    const unsigned char *u = data;
    int wbits;
    if (src_is_gzip(data, len)) wbits = 15 + 16;
    else if (len >= 2 && (u[0] & 0x0f) == 8 && ((u[0] << 8) | u[1]) % 31 == 0) wbits = 15;
    else wbits = -15;
    SrcBuf b = {0};
    sbuf_grow(&b, len * 3 + 1024);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, wbits) != Z_OK) return am_error(AM_ENOMEM, "gunzip: inflateInit failed");
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    int rc = AM_OK;
    for (;;) {
        sbuf_grow(&b, 1 << 16);
        z.next_out = (Bytef *)b.p + b.n;
        z.avail_out = (uInt)(b.cap - b.n - 1);
        size_t before = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        b.n += before - z.avail_out;
        b.p[b.n] = 0;
        if (zr == Z_STREAM_END) {
            /* skip padding zeros, then the next gzip member if any */
            while (z.avail_in && *z.next_in == 0) { z.next_in++; z.avail_in--; }
            if (wbits == 15 + 16 && z.avail_in >= 2 && src_is_gzip(z.next_in, z.avail_in)) {
                inflateReset(&z);
                continue;
            }
            break;
        }
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            rc = am_error(AM_EFORMAT, "gunzip: truncated compressed data (%zu bytes in, %zu out)", len, b.n);
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = am_error(AM_EFORMAT, "gunzip: corrupt compressed data at input byte %zu: %s",
                          len - z.avail_in, z.msg ? z.msg : zError(zr));
            break;
        }
    }
    inflateEnd(&z);
    if (rc) { sbuf_free(&b); return rc; }
    if (out_len) *out_len = b.n;
    *out = sbuf_take(&b);
    return AM_OK;
}

int src_read_file(const char *path, char **out, size_t *out_len) {
    char *raw;
    size_t n;
    *out = NULL;
    if (out_len) *out_len = 0;
    int rc = am_read_file(path, &raw, &n);
    if (rc) return rc;
    if (!src_is_gzip(raw, n)) {
        *out = raw;
        if (out_len) *out_len = n;
        return AM_OK;
    }
    rc = src_gunzip(raw, n, out, out_len);
    free(raw);
    if (rc) return am_error_wrap(rc, "%s", path);
    return AM_OK;
}

/* ---------------------------------------------------------------- dictd */

int64_t src_dictd_b64(const char *s, size_t len) {
    if (len == 0 || len > 10) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i], d;
        if (c >= 'A' && c <= 'Z') d = c - 'A';
        else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
        else if (c >= '0' && c <= '9') d = c - '0' + 52;
        else if (c == '+') d = 62;
        else if (c == '/') d = 63;
        else return -1;
        v = v * 64 + d;
    }
    return v;
}
