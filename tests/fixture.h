/* fixture.h - reader of the AMFX v1 reference fixtures written by the tests/ref generators (gen_fixture.py):
 * "AMFX" | u32 version 1 | u32 count | count x { u32 name_len | name | u32 dtype (0 f32, 1 i32) |
 * u32 ndim | u32 dims[ndim] | data (4 bytes per element, little-endian) }. */
#ifndef AM_TEST_FIXTURE_H
#define AM_TEST_FIXTURE_H
#include "am_base.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[128];
    int dtype; /* 0 f32, 1 i32 */
    int ndim;
    uint32_t dims[4];
    size_t n;
    const void *data;
} FxArray;

typedef struct {
    char *buf;
    size_t len;
    int n;
    FxArray a[256];
} Fixture;

/* 0 on success; negative: -1 unreadable, -2 bad magic, -3 version, -4 truncated, -5 trailing bytes */
static int fx_load(Fixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    if (am_read_file(path, &fx->buf, &fx->len) != AM_OK) return -1;
    const char *p = fx->buf, *end = fx->buf + fx->len;
    uint32_t u[3];
    if (fx->len < 12 || memcmp(p, "AMFX", 4) != 0) return -2;
    memcpy(u, p + 4, 8);
    if (u[0] != 1) return -3;
    int count = (int)u[1];
    p += 12;
    for (int i = 0; i < count && i < 256; i++) {
        FxArray *a = &fx->a[fx->n++];
        uint32_t nl;
        if (p + 4 > end) return -4;
        memcpy(&nl, p, 4); p += 4;
        if (nl >= sizeof a->name || p + nl + 8 > end) return -4;
        memcpy(a->name, p, nl); a->name[nl] = 0; p += nl;
        memcpy(u, p, 8); p += 8;
        a->dtype = (int)u[0];
        a->ndim = (int)u[1];
        if (a->ndim > 4 || p + 4 * a->ndim > end) return -4;
        a->n = 1;
        for (int d = 0; d < a->ndim; d++) { memcpy(&a->dims[d], p, 4); p += 4; a->n *= a->dims[d]; }
        if (p + 4 * a->n > end) return -4;
        void *copy = xmalloc(4 * a->n + 4); /* the file does not align arrays: copy out */
        memcpy(copy, p, 4 * a->n);
        a->data = copy;
        p += 4 * a->n;
    }
    return p == end ? 0 : -5;
}

static void fx_free(Fixture *fx) {
    for (int i = 0; i < fx->n; i++) free((void *)fx->a[i].data);
    free(fx->buf);
}

static const FxArray *fx_get(const Fixture *fx, const char *name) {
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->a[i].name, name) == 0) return &fx->a[i];
    return NULL;
}
#endif
