/* am_base.h - errors, assertions, allocation, logging, rng, timing.
 *
 * The three-tier error convention:
 *   1. bugs and invariants   -> AM_ASSERT (always on, reports file:line, calls the fatal hook)
 *   2. expected failures     -> functions return int: AM_OK (0) or a negative AM_E* code;
 *                               am_error() records a human message with context (file, key,
 *                               shape, HINT: ...) that am_errmsg() returns.
 *   3. the Lua boundary      -> lua/ turns (code, am_errmsg(code)) into `nil, msg, code`.
 *
 * Codes live in [-32099, -32000] so they never collide with errno values or LMDB's codes.
 */
#ifndef AM_BASE_H
#define AM_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* The one list of error codes: X(NAME, value, text). The enum below, am_strerror, am_errname
 * and Lua's am.errcodes (src/lua/lamalgam.c) are all generated from it; add a code here only. */
#define AM_ERRORS(X)                                                                            \
    X(EIO,       -32000, "input/output error")               /* read/write/open failed (errno in the message) */ \
    X(ENOMEM,    -32001, "out of memory (model too large?)") /* a large allocation failed */  \
    X(ESHAPE,    -32002, "tensor shape mismatch")            /* shape differs from what was expected */ \
    X(EFORMAT,   -32003, "malformed input")                  /* bad header, bad JSON, ... */  \
    X(ENOTFOUND, -32004, "not found")                        /* unknown model / tensor / key / file */ \
    X(EINVAL,    -32005, "invalid argument")                 /* bad argument or option value */ \
    X(EDTYPE,    -32006, "unsupported dtype")                                                 \
    X(ESTORE,    -32007, "store error")                      /* LMDB failure other than map-full */ \
    X(EUTF8,     -32008, "invalid UTF-8")                                                     \
    X(EMAPFULL,  -32009, "store map full")                   /* and it could not grow */     \
    X(EEXIST,    -32010, "already exists")                   /* name or id */                \
    X(EINTR,     -32011, "interrupted")                      /* by the user */               \
    X(EVOCAB,    -32012, "vocabulary error")                 /* missing special token, ... */

enum {
    AM_OK = 0,
#define AM_ERR_ENUM(name, value, text) AM_##name = value,
    AM_ERRORS(AM_ERR_ENUM)
#undef AM_ERR_ENUM
};

/* The code's own fixed text ("not found"), never a recorded message; strerror() for errno
 * values (> 0), "unknown error" otherwise. Static storage. */
const char *am_strerror(int code);
/* The code's name without "AM_" ("ENOTFOUND"), or NULL for a code not in AM_ERRORS. */
const char *am_errname(int code);

/* Record a message for `code` (printf-style) and return `code`, so callers write
 * `return am_error(AM_EFORMAT, "%s: header length %llu past end of file", path, n);`.
 * The message is per thread and stays valid until the next am_error on that thread. */
int am_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepend context to the current message ("while importing X: ...") and return code. */
int am_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The detailed message for a failure that returned `code`: the last recorded message on this
 * thread, or am_strerror(code) when nothing was recorded. Borrowed, as am_error's message. */
const char *am_errmsg(int code);
/* The last recorded message, or "no error" if nothing was recorded since am_clearerror. */
const char *am_lasterror(void);
void am_clearerror(void);

/* ---- tier 1: invariants ---- */
typedef void (*am_fatal_hook)(void);
void am_set_fatal_hook(am_fatal_hook hook); /* the TUI registers endwin() here */
_Noreturn void am_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define AM_ASSERT(x) \
    do { if (!(x)) am_fatal(__FILE__, __LINE__, "assertion failed: %s", #x); } while (0)

/* ---- allocation: small allocations abort on failure (htop xmalloc) ---- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Large float buffers (params, activations): 64-byte aligned, NULL on failure
 * (callers return AM_ENOMEM). Free with am_free_aligned. */
float *am_alloc_floats(size_t n);
void am_free_aligned(void *p);
/* A few large freed buffers kept for reuse: a fresh buffer's first touch (page faults, the
 * kernel zeroing pages) costs more here than a merge or a quick evaluation's work with it, and
 * the Merge panel makes and drops a model and an encoder per step. am_pool_take returns a
 * buffer of at least `bytes` aligned to `align` (a power of two >= 64), *got = its usable size
 * (pass it back to am_pool_give); contents are undefined; NULL when out of memory. Buffers
 * under 1 MB are not pooled. Cap: AMALGAM_POOL_MB (default 256; 0 = no pool). Thread-safe. */
void *am_pool_take(size_t bytes, size_t align, size_t *got);
void am_pool_give(void *p, size_t got, size_t align);
void am_pool_drain(void);                /* free every pooled buffer */

/* ---- logging: a ring buffer the TUI can show; also echoed to stderr when verbose ---- */
enum { AM_LOG_DEBUG, AM_LOG_INFO, AM_LOG_WARN, AM_LOG_ERROR };
void am_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void am_log_set_echo(int min_level); /* echo to stderr at or above this level (default WARN) */
/* Copy up to n most recent lines (oldest first) into out; returns count. Borrowed strings
 * are valid until the next am_log call. */
int am_log_tail(const char **out, int n);

/* ---- rng: xorshift64* (llm.c style), deterministic across platforms ---- */
typedef struct { uint64_t s; } AmRng;
void am_rng_seed(AmRng *r, uint64_t seed);
uint32_t am_rng_u32(AmRng *r);
float am_rng_uniform(AmRng *r);          /* [0, 1) */
float am_rng_normal(AmRng *r);           /* N(0, 1), Box-Muller */
uint32_t am_rng_below(AmRng *r, uint32_t n); /* [0, n) without modulo bias */

/* ---- timing and hashing ---- */
double am_now(void);                     /* monotonic seconds */
/* this binary's path (readlink of /proc/self/exe, cached): exec'd by its name, children show as
 * `amalgam` in ps and pgrep, not as "exe" */
const char *am_self_exe(void);
uint64_t am_hash64(const void *data, size_t n, uint64_t seed);  /* XXH3-64 */
/* Phase timers for benchmarks (`amalgam bench quick-latency`): seconds summed per phase over
 * every thread since the last reset. Cheap (one atomic add per call site and batch). */
enum { AM_PHASE_PARENTS, AM_PHASE_MERGE, AM_PHASE_DATA, AM_PHASE_TOKENIZE, AM_PHASE_ENCODE, AM_PHASE_METRICS,
       AM_PHASE_STORE, AM_PHASE_COUNT };
void am_phase_add(int phase, double seconds);
void am_phase_get(double out[AM_PHASE_COUNT]);
void am_phase_reset(void);
const char *am_phase_name(int phase);    /* "parents", "merge", "data", "tokenize", "encode", "metrics", "store" */
/* 128-bit content hash as 32 lowercase hex chars + NUL, streaming. */
typedef struct AmHasher AmHasher;
AmHasher *am_hasher_new(void);
void am_hasher_update(AmHasher *h, const void *data, size_t n);
void am_hasher_hex(AmHasher *h, char out[33]); /* finishes; h can be deleted after */
void am_hasher_delete(AmHasher *h);

/* ---- small file helpers ---- */
/* Read a whole file into a NUL-terminated malloc'd buffer. AM_EIO with the path on failure. */
int am_read_file(const char *path, char **out, size_t *len);
/* Write atomically: path.tmp + fsync + rename. */
int am_write_file(const char *path, const void *data, size_t len);
int am_mkdir_p(const char *path);
/* Remove path and, for a directory, all below it (links are removed, not followed); best effort. */
void am_rm_tree(const char *path);

#endif
