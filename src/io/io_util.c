/* io_util.c - string buffer, atomic file streaming and JSON helpers for src/io. */
#define _GNU_SOURCE
#include "io_util.h"
#include "am_base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- StrBuf */

void sb_append(StrBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sb_puts(StrBuf *b, const char *s) { sb_append(b, s, strlen(s)); }

void sb_printf(StrBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) am_fatal(__FILE__, __LINE__, "out of memory in sb_printf");
    sb_append(b, s, (size_t)n);
    free(s);
}

void sb_json_string(StrBuf *b, const char *s) {
    sb_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_append(b, "\\\"", 2); break;
        case '\\': sb_append(b, "\\\\", 2); break;
        case '\n': sb_append(b, "\\n", 2); break;
        case '\r': sb_append(b, "\\r", 2); break;
        case '\t': sb_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20) sb_printf(b, "\\u%04x", *p);
            else sb_append(b, (const char *)p, 1);
        }
    }
    sb_append(b, "\"", 1);
}

void sb_free(StrBuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- AtomicFile */

int atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    af->path = xstrdup(path);
    af->tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int rc = am_error(AM_EIO, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return rc;
    }
    return AM_OK;
}

int atomic_write(AtomicFile *af, const void *data, size_t n) {
    if (n == 0) return AM_OK;
    if (fwrite(data, 1, n, af->f) != n)
        return am_error(AM_EIO, "%s: write failed: %s", af->path, strerror(errno));
    return AM_OK;
}

static void atomic_free(AtomicFile *af) {
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

void atomic_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    atomic_free(af);
}

int atomic_commit(AtomicFile *af) {
    int rc = AM_OK;
    if (fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0)
        rc = am_error(AM_EIO, "%s: write failed: %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && rc == AM_OK)
        rc = am_error(AM_EIO, "%s: write failed: %s", af->path, strerror(errno));
    af->f = NULL;
    if (rc == AM_OK && rename(af->tmp, af->path) != 0)
        rc = am_error(AM_EIO, "%s: rename failed: %s", af->path, strerror(errno));
    if (rc != AM_OK) unlink(af->tmp);
    atomic_free(af);
    return rc;
}

/* ---------------------------------------------------------------- files */

int io_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int io_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---------------------------------------------------------------- JSON */

int io_json_int(const cJSON *obj, const char *key, int required, int64_t lo, int64_t hi, const char *file,
                int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return am_error(AM_EFORMAT, "%s: required key \"%s\" is missing", file, key);
        return AM_OK;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return am_error(AM_EFORMAT, "%s: \"%s\" must be an integer", file, key);
    double v = it->valuedouble;
    if (v < (double)lo || v > (double)hi)
        return am_error(AM_EFORMAT, "%s: \"%s\" = %.17g is out of range [%lld, %lld]", file, key, v,
                        (long long)lo, (long long)hi);
    *out = (int)v;
    return AM_OK;
}

int io_json_bool(const cJSON *obj, const char *key, const char *file, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return AM_OK;
    if (!cJSON_IsBool(it)) return am_error(AM_EFORMAT, "%s: \"%s\" must be true or false", file, key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return AM_OK;
}

int io_json_string(const cJSON *obj, const char *key, const char *file, const char **out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!it || cJSON_IsNull(it)) return AM_OK;
    if (!cJSON_IsString(it)) return am_error(AM_EFORMAT, "%s: \"%s\" must be a string", file, key);
    *out = it->valuestring;
    return AM_OK;
}

int io_json_load(const char *path, cJSON **out) {
    *out = NULL;
    if (!io_exists(path)) return am_error(AM_ENOTFOUND, "%s: file not found", path);
    char *text = NULL;
    size_t len = 0;
    int rc = am_read_file(path, &text, &len);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0, line = 1, col = 1;
        for (size_t i = 0; i < off && i < len; i++) {
            if (text[i] == '\n') line++, col = 1;
            else col++;
        }
        rc = am_error(AM_EFORMAT, "%s: invalid JSON at line %zu, column %zu", path, line, col);
        free(text);
        return rc;
    }
    for (const char *p = end; p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            rc = am_error(AM_EFORMAT, "%s: trailing bytes after the JSON value at byte %zu", path,
                          (size_t)(p - text));
            cJSON_Delete(root);
            free(text);
            return rc;
        }
    }
    free(text);
    *out = root;
    return AM_OK;
}

int io_json_save(const char *path, const cJSON *root) {
    char *s = cJSON_Print(root);
    if (!s) am_fatal(__FILE__, __LINE__, "out of memory printing JSON");
    /* cJSON indents with tabs and puts a tab after ':'. Strings never hold a raw tab
     * (it is escaped), so every tab is layout: 2 spaces at line starts, 1 space elsewhere. */
    StrBuf b = {0};
    int bol = 1;
    for (const char *p = s; *p; p++) {
        if (*p == '\t') sb_append(&b, bol ? "  " : " ", bol ? 2 : 1);
        else {
            sb_append(&b, p, 1);
            bol = *p == '\n';
        }
    }
    sb_append(&b, "\n", 1);
    free(s);
    int rc = am_write_file(path, b.p, b.len);
    sb_free(&b);
    return rc;
}
