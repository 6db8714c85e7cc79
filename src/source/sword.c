/* sword.c - SWORD zText modules (compressed verse blocks) and OSIS markup to text. */
#define _GNU_SOURCE
#include "source.h"
#include "src_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <zlib.h>

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int read_part(const char *dir, const char *t, const char *ext, char **buf, size_t *n, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s.%s", dir, t, ext);
    FILE *f = fopen(path, "rb");
    if (!f) return am_error(errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    return am_read_file(path, buf, n);
}

void src_slots_free(char **slots, int64_t n) {
    if (!slots) return;
    for (int64_t i = 0; i < n; i++) free(slots[i]);
    free(slots);
}

int src_sword_ztext(const char *dir, const char *t, char ***slots_out, int64_t *n_out) {
    *slots_out = NULL;
    *n_out = 0;
    char pbzs[4096], pbzv[4096], pbzz[4096];
    char *bzs = NULL, *bzv = NULL, *bzz = NULL;
    size_t nbzs, nbzv, nbzz;
    int rc;
    if ((rc = read_part(dir, t, "bzs", &bzs, &nbzs, pbzs, sizeof pbzs)) ||
        (rc = read_part(dir, t, "bzv", &bzv, &nbzv, pbzv, sizeof pbzv)) ||
        (rc = read_part(dir, t, "bzz", &bzz, &nbzz, pbzz, sizeof pbzz))) {
        free(bzs); free(bzv); free(bzz);
        return rc;
    }
    if (nbzs % 12 || nbzv % 10) {
        rc = am_error(AM_EFORMAT, "%s: size %zu is not a multiple of %d (not a zText index)",
                      nbzs % 12 ? pbzs : pbzv, nbzs % 12 ? nbzs : nbzv, nbzs % 12 ? 12 : 10);
        free(bzs); free(bzv); free(bzz);
        return rc;
    }
    int64_t nblocks = (int64_t)(nbzs / 12), nslots = (int64_t)(nbzv / 10);
    char **blocks = xcalloc((size_t)(nblocks ? nblocks : 1), sizeof *blocks);
    uint32_t *bsize = xcalloc((size_t)(nblocks ? nblocks : 1), sizeof *bsize);
    char **slots = xcalloc((size_t)(nslots ? nslots : 1), sizeof *slots);
    const unsigned char *ub = (const unsigned char *)bzs, *uv = (const unsigned char *)bzv;
    for (int64_t s = 0; s < nslots && !rc; s++) {
        uint32_t blk = le32(uv + 10 * s), off = le32(uv + 10 * s + 4);
        uint32_t size = (uint32_t)uv[10 * s + 8] | ((uint32_t)uv[10 * s + 9] << 8);
        if (size == 0) { slots[s] = xstrdup(""); continue; }
        if ((int64_t)blk >= nblocks) {
            rc = am_error(AM_EFORMAT, "%s: record %lld names block %u of %lld", pbzv, (long long)s, blk, (long long)nblocks);
            break;
        }
        if (!blocks[blk]) {
            uint32_t boff = le32(ub + 12 * blk), bcs = le32(ub + 12 * blk + 4), bus = le32(ub + 12 * blk + 8);
            if ((uint64_t)boff + bcs > nbzz) {
                rc = am_error(AM_EFORMAT, "%s: block %u (offset %u, %u bytes) lies past the end of %s", pbzs, blk, boff,
                              bcs, pbzz);
                break;
            }
            uLongf dl = bus + 1;
            blocks[blk] = xmalloc(dl + 1);
            int zr = uncompress((Bytef *)blocks[blk], &dl, (const Bytef *)bzz + boff, bcs);
            if (zr != Z_OK) { /* the recorded size may be wrong: inflate without it */
                free(blocks[blk]);
                char *o;
                size_t on;
                if (src_gunzip(bzz + boff, bcs, &o, &on) != AM_OK) {
                    blocks[blk] = NULL;
                    rc = am_error(AM_EFORMAT, "%s: block %u: corrupt zlib data (%s)", pbzz, blk, zError(zr));
                    break;
                }
                blocks[blk] = o;
                dl = (uLongf)on;
            }
            bsize[blk] = (uint32_t)dl;
        }
        if ((uint64_t)off + size > bsize[blk]) {
            rc = am_error(AM_EFORMAT, "%s: record %lld (block %u, offset %u, size %u) lies outside its block of %u bytes",
                          pbzv, (long long)s, blk, off, size, bsize[blk]);
            break;
        }
        slots[s] = src_utf8_clean(blocks[blk] + off, size);
    }
    for (int64_t b = 0; b < nblocks; b++) free(blocks[b]);
    free(blocks);
    free(bsize);
    free(bzs); free(bzv); free(bzz);
    if (rc) {
        src_slots_free(slots, nslots);
        return rc;
    }
    for (int64_t s = 0; s < nslots; s++)
        if (!slots[s]) slots[s] = xstrdup("");
    *slots_out = slots;
    *n_out = nslots;
    return AM_OK;
}

/* ---------------------------------------------------------------- OSIS to text */

/* tag name at s (after '<' and an optional '/'), returns its length */
static size_t tag_name(const char *s, size_t len) {
    size_t k = 0;
    while (k < len && (isalnum((unsigned char)s[k]) || s[k] == ':' || s[k] == '_' || s[k] == '-')) k++;
    return k;
}

char *src_osis_text(const char *s, size_t len) {
    SrcBuf o = {0};
    int skip = 0;          /* depth inside a dropped element */
    char skip_name[16] = "";
    for (size_t i = 0; i < len;) {
        if (s[i] == '<') {
            const char *gt = memchr(s + i, '>', len - i);
            size_t end = gt ? (size_t)(gt - s) + 1 : len;
            int closing = i + 1 < len && s[i + 1] == '/';
            const char *nm = s + i + 1 + closing;
            size_t nl = tag_name(nm, end - i - 1 - (size_t)closing);
            int selfclose = end >= 2 && s[end - 2] == '/';
            if (skip) {
                if (nl == strlen(skip_name) && strncmp(nm, skip_name, nl) == 0 && !selfclose) skip += closing ? -1 : 1;
                i = end;
                if (!skip) sbuf_addc(&o, ' ');
                continue;
            }
            if (!closing && !selfclose) {
                int drop = 0;
                if (nl == 4 && strncmp(nm, "note", 4) == 0) drop = 1;
                if (nl == 5 && strncmp(nm, "title", 5) == 0 && !memmem(s + i, end - i, "canonical=\"true\"", 16)) drop = 1;
                if (drop) {
                    memcpy(skip_name, nm, nl);
                    skip_name[nl] = 0;
                    skip = 1;
                    i = end;
                    continue;
                }
            }
            /* element boundaries that separate words */
            if (nl && (!strncmp(nm, "div", 3) || !strncmp(nm, "p", nl) || !strncmp(nm, "lb", 2) || !strncmp(nm, "l", nl) ||
                       !strncmp(nm, "lg", 2) || !strncmp(nm, "title", 5) || !strncmp(nm, "chapter", 7) ||
                       !strncmp(nm, "item", 4)))
                sbuf_addc(&o, ' ');
            i = end;
            continue;
        }
        if (skip) { i++; continue; }
        if (s[i] == '&') {
            char u[8];
            size_t used;
            int k = src_entity(s + i, len - i, u, &used);
            if (k) {
                sbuf_add(&o, u, (size_t)k);
                i += used;
                continue;
            }
        }
        sbuf_addc(&o, s[i]);
        i++;
    }
    char *raw = sbuf_take(&o);
    char *sq = src_squash(raw, strlen(raw));
    free(raw);
    /* no space before closing punctuation left by removed notes: "God ," -> "God," */
    SrcBuf f = {0};
    for (const char *p = sq; *p; p++) {
        if (*p == ' ' && (p[1] == ',' || p[1] == ';' || p[1] == ':' || p[1] == '.' || p[1] == '?' || p[1] == '!' ||
                          p[1] == ')'))
            continue;
        sbuf_addc(&f, *p);
    }
    free(sq);
    char *r = sbuf_take(&f);
    char *c = src_utf8_clean(r, strlen(r));
    free(r);
    return c;
}
