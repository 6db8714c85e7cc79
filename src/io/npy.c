/* npy.c - NumPy .npy v1.0 float32 writer and reader. */
#define _GNU_SOURCE
#include "npy.h"
#include "am_base.h"
#include "io_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

/* The 10-byte preamble plus the padded header: always a multiple of 64 bytes. */
static size_t npy_header(char out[256], int64_t rows, int64_t cols) {
    char dict[160];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)rows, (long long)cols);
    size_t total = 10 + (size_t)n + 1; /* + '\n' */
    total = (total + 63) / 64 * 64;
    size_t hlen = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (char)(hlen & 0xff);
    out[9] = (char)(hlen >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', hlen - (size_t)n - 1);
    out[total - 1] = '\n';
    return total;
}

int npy_write_f32(FILE *f, const char *what, const float *data, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return am_error(AM_EINVAL, "%s: negative shape (%lld, %lld)", what, (long long)rows,
                                              (long long)cols);
    char hdr[256];
    size_t hn = npy_header(hdr, rows, cols);
    size_t n = (size_t)rows * (size_t)cols;
    if (fwrite(hdr, 1, hn, f) != hn || (n && fwrite(data, sizeof(float), n, f) != n) || fflush(f) != 0)
        return am_error(AM_EIO, "%s: write failed: %s", what, strerror(errno));
    return AM_OK;
}

int npy_save_f32(const char *path, const float *data, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return am_error(AM_EINVAL, "%s: negative shape (%lld, %lld)", path, (long long)rows,
                                              (long long)cols);
    char hdr[256];
    size_t hn = npy_header(hdr, rows, cols);
    AtomicFile af;
    int rc = atomic_open(&af, path);
    if (rc) return rc;
    rc = atomic_write(&af, hdr, hn);
    if (rc == AM_OK) rc = atomic_write(&af, data, (size_t)rows * (size_t)cols * sizeof(float));
    if (rc == AM_OK) return atomic_commit(&af);
    atomic_abort(&af);
    return rc;
}

/* ---------------------------------------------------------------- reader */

/* Find 'key': in the header dict and return a pointer just past the colon and spaces. */
static const char *dict_value(const char *h, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

int npy_load_f32(const char *path, float **data, int64_t *rows, int64_t *cols) {
    *data = NULL;
    *rows = *cols = 0;
    if (!io_exists(path)) return am_error(AM_ENOTFOUND, "%s: file not found", path);
    char *buf = NULL;
    size_t len = 0;
    int rc = am_read_file(path, &buf, &len);
    if (rc) return rc;
    rc = AM_EFORMAT;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        am_error(rc, "%s: not a .npy file (bad magic)", path);
        goto out;
    }
    int major = (unsigned char)buf[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            am_error(rc, "%s: truncated .npy header", path);
            goto out;
        }
        hlen = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8 | (size_t)(unsigned char)buf[10] << 16 |
               (size_t)(unsigned char)buf[11] << 24;
        hoff = 12;
    } else {
        am_error(rc, "%s: unsupported .npy format version %d", path, major);
        goto out;
    }
    if (hlen > len - hoff) {
        am_error(rc, "%s: .npy header length %zu past end of file (%zu bytes)", path, hlen, len);
        goto out;
    }
    char *h = xmalloc(hlen + 1);
    memcpy(h, buf + hoff, hlen);
    h[hlen] = 0;
    const char *d = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"), *sh = dict_value(h, "shape");
    if (!d || !fo || !sh) {
        am_error(rc, "%s: .npy header lacks descr, fortran_order or shape: %s", path, h);
    } else if (strncmp(d, "'<f4'", 5) != 0) {
        int dn = 0;
        while (dn < 16 && d[dn] && d[dn] != ',' && d[dn] != '}') dn++;
        rc = am_error(AM_EDTYPE, "%s: .npy dtype %.*s is not '<f4' (little-endian float32)", path, dn, d);
    } else if (strncmp(fo, "False", 5) != 0) {
        am_error(rc, "%s: .npy array is Fortran-ordered; only C order is supported", path);
    } else {
        long long dims[2] = {0, 1};
        int nd = 0;
        const char *p = sh;
        if (*p++ != '(') goto bad_shape;
        for (;;) {
            while (*p == ' ') p++;
            if (*p == ')') break;
            char *e;
            errno = 0;
            long long v = strtoll(p, &e, 10);
            if (e == p || errno || v < 0 || nd == 2) goto bad_shape;
            dims[nd++] = v;
            p = e;
            while (*p == ' ') p++;
            if (*p == ',') p++;
            else if (*p != ')') goto bad_shape;
        }
        if (nd == 0) goto bad_shape;
        size_t n = (size_t)dims[0] * (size_t)dims[1];
        if (dims[1] && n / (size_t)dims[1] != (size_t)dims[0]) goto bad_shape;
        size_t need = hoff + hlen + n * sizeof(float);
        if (len != need) {
            am_error(rc, "%s: .npy data is %zu bytes, shape (%lld, %lld) needs %zu", path, len - hoff - hlen, dims[0],
                     dims[1], n * sizeof(float));
        } else {
            *data = xmalloc(n ? n * sizeof(float) : 1);
            if (n) memcpy(*data, buf + hoff + hlen, n * sizeof(float));
            *rows = dims[0];
            *cols = dims[1];
            rc = AM_OK;
        }
        goto done;
bad_shape:
        am_error(rc, "%s: .npy shape is not a tuple of one or two non-negative integers: %s", path, sh);
    }
done:
    free(h);
out:
    free(buf);
    return rc;
}
