/* ds_read.c - datasets from files: whole-file reads (plain or gzip), dataset_load and the
 * import specs (KIND:PATH). The parsers are in ds_parse.c, BEIR directories in ds_beir.c. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---------------------------------------------------------------- files */

int ds_path_kind(const char *path) { /* 0 missing, 1 file, 2 directory */
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    return S_ISDIR(st.st_mode) ? 2 : 1;
}

/* Whole file, plain or gzip (by the ".gz" suffix), NUL-terminated. */
int ds_read_all(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int k = ds_path_kind(path);
    if (k == 0) return am_error(AM_ENOTFOUND, "%s: no such file", path);
    if (k == 2) return am_error(AM_EIO, "%s: is a directory, expected a file", path);
    if (!ds_ends_with(path, ".gz")) return am_read_file(path, out, len);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return am_error(AM_EIO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(gz, 1 << 17);
    size_t cap = 1 << 20, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (cap - n < (1 << 16)) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        int got = gzread(gz, buf + n, (unsigned)(cap - n > (1u << 30) ? (1u << 30) : cap - n));
        if (got < 0) {
            int err;
            const char *msg = gzerror(gz, &err);
            int rc = am_error(AM_EIO, "%s: gzip read failed: %s", path, msg);
            gzclose(gz);
            free(buf);
            return rc;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    gzclose(gz);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return AM_OK;
}

int dataset_load(DatasetKind kind, const char *path, DatasetFormat fmt, Dataset **out) {
    *out = NULL;
    int rc = ds_resolve_format(kind, fmt, path, &fmt);
    if (rc) return rc;
    if (kind == AM_DS_RETRIEVAL) return dataset_load_beir(path, NULL, out);
    char *buf;
    size_t len;
    if ((rc = ds_read_all(path, &buf, &len))) return rc;
    rc = dataset_parse(kind, fmt, buf, len, path, out);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- import specs */

int dataset_import(const char *spec, Dataset **out) {
    *out = NULL;
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon || !colon[1])
        return am_error(AM_EINVAL, "bad import spec \"%s\"\nHINT: beir:DIR[#split], pairs:FILE, sts:FILE, "
                        "labels:FILE, text:FILE or paragraphs:FILE", spec ? spec : "(null)");
    char *kind = strndup(spec, (size_t)(colon - spec));
    AM_ASSERT(kind != NULL);
    const char *path = colon + 1;
    int rc;
    if (strcmp(kind, "paragraphs") == 0) {
        rc = dataset_load(AM_DS_TEXT, path, AM_FMT_PARAGRAPHS, out);
    } else if (strcmp(kind, "beir") == 0 || strcmp(kind, "retrieval") == 0) {
        char *dir = xstrdup(path), *hash = strrchr(dir, '#');
        if (hash) *hash++ = 0;
        rc = dataset_load_beir(dir, hash, out);
        free(dir);
    } else {
        DatasetKind k;
        rc = dataset_kind_parse(kind, &k);
        if (rc) {
            rc = am_error(AM_EINVAL, "bad import spec \"%s\": unknown kind \"%s\"\nHINT: beir:DIR[#split], "
                          "pairs:FILE, sts:FILE, labels:FILE, text:FILE or paragraphs:FILE", spec, kind);
        } else {
            rc = dataset_load(k, path, AM_FMT_AUTO, out);
        }
    }
    free(kind);
    return rc;
}
