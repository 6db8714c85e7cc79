/* io_util.h - helpers shared inside src/io (not a public API).
 *
 *   StrBuf        growable NUL-terminated byte buffer
 *   AtomicFile    stream a file to path.tmp.PID, then fsync + rename into place
 *   io_json_*     typed, error-reporting accessors for cJSON objects
 */
#ifndef AM_IO_UTIL_H
#define AM_IO_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>

typedef struct { char *p; size_t len, cap; } StrBuf;
void sb_append(StrBuf *b, const char *s, size_t n);
void sb_puts(StrBuf *b, const char *s);
void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_json_string(StrBuf *b, const char *s); /* quoted and escaped */
void sb_free(StrBuf *b);

typedef struct {
    FILE *f;
    char *path; /* final name */
    char *tmp;  /* path.tmp.PID */
} AtomicFile;
int atomic_open(AtomicFile *af, const char *path);               /* AM_EIO */
int atomic_write(AtomicFile *af, const void *data, size_t n);    /* AM_EIO */
int atomic_commit(AtomicFile *af);  /* fflush + fsync + rename; frees; AM_EIO (file removed) */
void atomic_abort(AtomicFile *af);  /* remove the tmp file; frees */

/* 1 if path exists (any type), 0 otherwise. */
int io_exists(const char *path);
int io_is_dir(const char *path);

/* Typed getters for JSON object members. `file` names the file in error messages.
 * Missing key: *out keeps its value (the default) and AM_OK is returned, unless required.
 * Wrong type / out of range: AM_EFORMAT naming the key and file. */
int io_json_int(const cJSON *obj, const char *key, int required, int64_t lo, int64_t hi, const char *file,
                int *out);
int io_json_bool(const cJSON *obj, const char *key, const char *file, int *out);
/* Borrowed string, NULL when absent (or JSON null); AM_EFORMAT if not a string. */
int io_json_string(const cJSON *obj, const char *key, const char *file, const char **out);

/* Read and parse a JSON file. AM_ENOTFOUND if missing, AM_EFORMAT naming the file and the
 * position on a syntax error. */
int io_json_load(const char *path, cJSON **out);
/* Serialize (2-space indent, trailing newline) and write atomically. */
int io_json_save(const char *path, const cJSON *root);

#endif
