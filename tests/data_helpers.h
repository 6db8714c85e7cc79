/* data_helpers.h - what the dataset tests (test_data.c, test_data_read.c) share: files in temp
 * dirs, the committed fixtures (tests/ref/data), and CHECK_ERR for failing loaders. */
#ifndef AM_TEST_DATA_HELPERS_H
#define AM_TEST_DATA_HELPERS_H
#include "am_base.h"
#include "dataset.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_DIR AM_TEST_DIR "/ref/data"

/* ---------------------------------------------------------------- helpers */


/* Write `len` bytes (len < 0: strlen) to dir/name (creating parent dirs); returns the path. */
static inline char *put_file(const char *dir, const char *name, const char *data, long len) {
    char *path = xasprintf("%s/%s", dir, name);
    char *parent = xstrdup(path);
    *strrchr(parent, '/') = 0;
    AM_ASSERT(am_mkdir_p(parent) == AM_OK);
    free(parent);
    FILE *f = fopen(path, "wb");
    AM_ASSERT(f != NULL);
    size_t n = len < 0 ? strlen(data) : (size_t)len;
    AM_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
    return path;
}

static inline char *slurp(const char *path) {
    char *buf;
    size_t len;
    if (am_read_file(path, &buf, &len) != AM_OK) return xstrdup("");
    return buf;
}

static inline void copy_beir(const char *dst) {
    char *cmd = xasprintf("mkdir -p '%s' && cp -r '%s/beir/.' '%s/'", dst, DATA_DIR, dst);
    AM_ASSERT(system(cmd) == 0);
    free(cmd);
}

static inline int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* The call failed with `code`, left *out NULL, and the message holds every needle. */
#define CHECK_ERR(rc_expr, out, code, ...) do { \
        int _rc = (rc_expr); \
        CHECKF(_rc == (code), "%s returned %d (%s), expected %d", #rc_expr, _rc, am_lasterror(), (code)); \
        CHECKF((out) == NULL, "%s left a result behind", #rc_expr); \
        const char *_needles[] = {__VA_ARGS__, NULL}; \
        for (int _i = 0; _needles[_i]; _i++) \
            CHECKF(contains(am_lasterror(), _needles[_i]), "message \"%s\" lacks \"%s\"", am_lasterror(), \
                   _needles[_i]); \
        dataset_delete(out); (out) = NULL; } while (0)

static inline int64_t npos(const Dataset *d, int64_t i) { return d->pos_start[i + 1] - d->pos_start[i]; }
static inline int64_t nneg(const Dataset *d, int64_t i) { return d->neg_start[i + 1] - d->neg_start[i]; }
static inline const char *posn(const Dataset *d, int64_t i, int j) { return d->pos[d->pos_start[i] + j]; }
static inline const char *negn(const Dataset *d, int64_t i, int j) { return d->neg[d->neg_start[i] + j]; }

static inline void hash_of(const Dataset *d, char out[33]) { dataset_content_hash(d, out); }

#endif
