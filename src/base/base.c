/* base.c - errors, fatal hook, xmalloc, logging, rng, timing, hashing, file helpers. */
#define _GNU_SOURCE
#include "am_base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* ---------------------------------------------------------------- errors */

static _Thread_local char err_msg[2048];
static _Thread_local int err_code;

const char *am_strerror(int code) {
    switch (code) {
    case AM_OK: return "success";
#define AM_ERR_TEXT(name, value, text) case AM_##name: return text;
    AM_ERRORS(AM_ERR_TEXT)
#undef AM_ERR_TEXT
    default: return code > 0 ? strerror(code) : "unknown error";
    }
}

const char *am_errname(int code) {
    switch (code) {
#define AM_ERR_NAME(name, value, text) case AM_##name: return #name;
    AM_ERRORS(AM_ERR_NAME)
#undef AM_ERR_NAME
    default: return NULL;
    }
}

int am_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    err_code = code;
    return code;
}

int am_error_wrap(int code, const char *fmt, ...) {
    char prefix[512], old[sizeof err_msg - 600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    const char *cur = err_code ? err_msg : am_strerror(code);
    size_t n = strnlen(cur, sizeof old - 1);
    memcpy(old, cur, n);
    old[n] = 0;
    snprintf(err_msg, sizeof err_msg, "%s: %s", prefix, old);
    err_code = code;
    return code;
}

const char *am_errmsg(int code) {
    return err_code ? err_msg : am_strerror(code);
}

const char *am_lasterror(void) {
    return err_code ? err_msg : "no error";
}

void am_clearerror(void) {
    err_code = 0;
    err_msg[0] = 0;
}

/* ---------------------------------------------------------------- fatal */

static am_fatal_hook fatal_hook;

void am_set_fatal_hook(am_fatal_hook hook) { fatal_hook = hook; }

void am_fatal(const char *file, int line, const char *fmt, ...) {
    if (fatal_hook) fatal_hook();
    fprintf(stderr, "amalgam: fatal error at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---------------------------------------------------------------- memory */

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) am_fatal(__FILE__, __LINE__, "out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) am_fatal(__FILE__, __LINE__, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) am_fatal(__FILE__, __LINE__, "out of memory reallocating %zu bytes", n);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) am_fatal(__FILE__, __LINE__, "out of memory in xasprintf");
    return s;
}

float *am_alloc_floats(size_t n) {
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void am_free_aligned(void *p) { free(p); }

/* ---------------------------------------------------------------- buffer pool */

#define POOL_SLOTS 16
#define POOL_MIN ((size_t)1 << 20)
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { void *p; size_t bytes, align; uint64_t tick; } pool[POOL_SLOTS];
static size_t pool_total, pool_cap = (size_t)-1;
static uint64_t pool_tick;

static size_t pool_cap_bytes(void) { /* under pool_mu */
    if (pool_cap == (size_t)-1) {
        const char *e = getenv("AMALGAM_POOL_MB");
        char *end = NULL;
        double mb = e && *e ? strtod(e, &end) : 256;
        if (e && *e && (end == e || mb < 0)) mb = 256;
        pool_cap = (size_t)(mb * 1048576.0);
    }
    return pool_cap;
}

void *am_pool_take(size_t bytes, size_t align, size_t *got) {
    AM_ASSERT(align >= 64 && (align & (align - 1)) == 0);
    if (!bytes) bytes = 1;
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes >= POOL_MIN) { /* the smallest pooled buffer that fits and wastes at most half */
        pthread_mutex_lock(&pool_mu);
        int best = -1;
        for (int i = 0; i < POOL_SLOTS; i++)
            if (pool[i].p && pool[i].align == align && pool[i].bytes >= bytes && pool[i].bytes / 2 <= bytes &&
                (best < 0 || pool[i].bytes < pool[best].bytes))
                best = i;
        void *p = NULL;
        if (best >= 0) {
            p = pool[best].p;
            *got = pool[best].bytes;
            pool_total -= pool[best].bytes;
            pool[best].p = NULL;
        }
        pthread_mutex_unlock(&pool_mu);
        if (p) return p;
    }
    void *p = NULL;
    if (posix_memalign(&p, align, bytes) != 0) return NULL;
    *got = bytes;
    return p;
}

void am_pool_give(void *p, size_t got, size_t align) {
    if (!p) return;
    if (got < POOL_MIN) {
        free(p);
        return;
    }
    void *drop[POOL_SLOTS + 1];
    int nd = 0;
    pthread_mutex_lock(&pool_mu);
    size_t cap = pool_cap_bytes();
    if (got > cap) drop[nd++] = p;
    else {
        /* make room: the least recently given buffers go first */
        for (;;) {
            int free_slot = -1, oldest = -1;
            for (int i = 0; i < POOL_SLOTS; i++) {
                if (!pool[i].p) { if (free_slot < 0) free_slot = i; }
                else if (oldest < 0 || pool[i].tick < pool[oldest].tick) oldest = i;
            }
            if (free_slot >= 0 && pool_total + got <= cap) {
                pool[free_slot].p = p;
                pool[free_slot].bytes = got;
                pool[free_slot].align = align;
                pool[free_slot].tick = ++pool_tick;
                pool_total += got;
                break;
            }
            AM_ASSERT(oldest >= 0);
            drop[nd++] = pool[oldest].p;
            pool_total -= pool[oldest].bytes;
            pool[oldest].p = NULL;
        }
    }
    pthread_mutex_unlock(&pool_mu);
    for (int i = 0; i < nd; i++) free(drop[i]);
}

void am_pool_drain(void) {
    pthread_mutex_lock(&pool_mu);
    for (int i = 0; i < POOL_SLOTS; i++) {
        free(pool[i].p);
        pool[i].p = NULL;
    }
    pool_total = 0;
    pthread_mutex_unlock(&pool_mu);
}

/* ---------------------------------------------------------------- logging */

#define LOG_LINES 256
#define LOG_WIDTH 256
static char log_ring[LOG_LINES][LOG_WIDTH];
static int log_head, log_count;
static int log_echo = AM_LOG_WARN;

void am_log_set_echo(int min_level) { log_echo = min_level; }

void am_log(int level, const char *fmt, ...) {
    static const char *tag[] = {"debug", "info", "warn", "error"};
    char *line = log_ring[log_head];
    int off = snprintf(line, LOG_WIDTH, "%s: ", tag[level & 3]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + off, LOG_WIDTH - off, fmt, ap);
    va_end(ap);
    log_head = (log_head + 1) % LOG_LINES;
    if (log_count < LOG_LINES) log_count++;
    if (level >= log_echo) fprintf(stderr, "amalgam: %s\n", line);
}

int am_log_tail(const char **out, int n) {
    if (n > log_count) n = log_count;
    for (int i = 0; i < n; i++) out[i] = log_ring[(log_head - n + i + LOG_LINES) % LOG_LINES];
    return n;
}

/* ---------------------------------------------------------------- rng */

void am_rng_seed(AmRng *r, uint64_t seed) {
    /* splitmix64 so that small seeds still give well-mixed states */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    r->s = (z ^ (z >> 31)) | 1;
}

uint32_t am_rng_u32(AmRng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1Dull) >> 32);
}

float am_rng_uniform(AmRng *r) { return (am_rng_u32(r) >> 8) / 16777216.0f; }

float am_rng_normal(AmRng *r) {
    float u1 = am_rng_uniform(r), u2 = am_rng_uniform(r);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

uint32_t am_rng_below(AmRng *r, uint32_t n) {
    if (n <= 1) return 0;
    uint32_t lim = (uint32_t)(-n) % n; /* 2^32 mod n */
    for (;;) {
        uint32_t x = am_rng_u32(r);
        if (x >= lim) return x % n;
    }
}

/* ---------------------------------------------------------------- time, hash */

const char *am_self_exe(void) {
    static char path[4096];
    if (!path[0]) {
        ssize_t k = readlink("/proc/self/exe", path, sizeof path - 1);
        if (k <= 0) snprintf(path, sizeof path, "/proc/self/exe");
        else path[k] = 0;
    }
    return path;
}

double am_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t g_phase_ns[AM_PHASE_COUNT];

void am_phase_add(int phase, double seconds) {
    AM_ASSERT(phase >= 0 && phase < AM_PHASE_COUNT);
    if (seconds > 0) __atomic_fetch_add(&g_phase_ns[phase], (uint64_t)(seconds * 1e9), __ATOMIC_RELAXED);
}

void am_phase_get(double out[AM_PHASE_COUNT]) {
    for (int i = 0; i < AM_PHASE_COUNT; i++) out[i] = (double)__atomic_load_n(&g_phase_ns[i], __ATOMIC_RELAXED) * 1e-9;
}

void am_phase_reset(void) {
    for (int i = 0; i < AM_PHASE_COUNT; i++) __atomic_store_n(&g_phase_ns[i], 0, __ATOMIC_RELAXED);
}

const char *am_phase_name(int phase) {
    static const char *const names[AM_PHASE_COUNT] = {"parents", "merge", "data", "tokenize", "encode", "metrics",
                                                      "store"};
    return phase >= 0 && phase < AM_PHASE_COUNT ? names[phase] : NULL;
}

uint64_t am_hash64(const void *data, size_t n, uint64_t seed) {
    return XXH3_64bits_withSeed(data, n, seed);
}

struct AmHasher { XXH3_state_t *st; };

AmHasher *am_hasher_new(void) {
    AmHasher *h = xmalloc(sizeof *h);
    h->st = XXH3_createState();
    AM_ASSERT(h->st != NULL);
    XXH3_128bits_reset(h->st);
    return h;
}

void am_hasher_update(AmHasher *h, const void *data, size_t n) { XXH3_128bits_update(h->st, data, n); }

void am_hasher_hex(AmHasher *h, char out[33]) {
    XXH128_hash_t d = XXH3_128bits_digest(h->st);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)d.high64, (unsigned long long)d.low64);
}

void am_hasher_delete(AmHasher *h) {
    if (!h) return;
    XXH3_freeState(h->st);
    free(h);
}

/* ---------------------------------------------------------------- files */

int am_read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return am_error(AM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return am_error(AM_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return am_error(AM_ENOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return am_error(AM_EIO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return AM_OK;
}

int am_write_file(const char *path, const void *data, size_t len) {
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        int rc = am_error(AM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int rc = am_error(AM_EIO, "%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return rc;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int rc = am_error(AM_EIO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        int rc = am_error(AM_EIO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    return AM_OK;
}

int am_mkdir_p(const char *path) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) goto fail;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) goto fail;
    free(p);
    return AM_OK;
fail:;
    int rc = am_error(AM_EIO, "%s: cannot create directory: %s", p, strerror(errno));
    free(p);
    return rc;
}

void am_rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char *p = xasprintf("%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) am_rm_tree(p);
            else unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(path);
}
