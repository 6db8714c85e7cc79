/* embcache.c - the embedding cache of the evaluation runner (see evalrun.h, "Embedding cache").
 *
 * Memory: a list of spaces (model id, layer, pooling, max_len, case options); each holds an
 * open-addressing table text-hash -> row and the rows (n, hidden) of pooled, un-normalised
 * vectors. dim and normalize are applied when rows are copied out, the way encoder_embed does it
 * (first dim features, then l2norm_forward), so one cached row serves every (dim, normalize).
 *
 * Disk: <disk_dir>/<space>/<group>.emb, one file per (space, group = data fingerprint), written
 * whole to a temporary name and renamed. Layout (little-endian):
 *     off  size
 *       0     8  magic "AMEMBC1\0"
 *       8     4  version (1)
 *      12     4  hidden
 *      16     8  n
 *      24    32  space key (hex)
 *      56  16n  text keys (two u64 per text)
 *        4nH     rows (n, hidden) float32
 *         8     XXH3-64 of everything before
 * A file that fails any check is ignored (and rewritten by the next write). <space>/space.json
 * says which model and options the directory belongs to (for people; never read back).
 */
#define _GNU_SOURCE
#include "evalrun_internal.h"
#include "am_base.h"
#include "tensor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EMB_MAGIC "AMEMBC1"
#define EMB_VERSION 1u
#define EMB_HDR 56
#define DEFAULT_MEM_MB 512
#define DEFAULT_DISK_MB 1024

typedef struct { uint64_t h1, h2; } TKey;

/* open addressing: keys + values, value -1 = empty */
typedef struct {
    TKey *k;
    int32_t *v;
    size_t cap, count;
} KeyTab;

typedef struct Group {
    char name[33];
    int32_t *rows;
    int n, cap;
    struct Group *next;
} Group;

typedef struct Space {
    char key[33];
    char *desc;          /* JSON for space.json */
    int hidden;
    KeyTab tab;
    float *rows;         /* (rcap, hidden) */
    size_t nrows, rcap;
    double used;
    Group *groups;
    struct Space *next;
} Space;

struct EmbCache {
    Space *spaces;
    size_t mem_cap, disk_cap;
    EmbCacheCounts cnt;
};

static size_t env_mb(const char *name, size_t def_mb) {
    const char *s = getenv(name);
    if (!s || !*s) return def_mb << 20;
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return def_mb << 20;
    return (size_t)(v * 1048576.0);
}

EmbCache *embcache_new(void) {
    EmbCache *c = xcalloc(1, sizeof *c);
    c->mem_cap = env_mb("AMALGAM_EMBCACHE_MEM_MB", DEFAULT_MEM_MB);
    c->disk_cap = env_mb("AMALGAM_EMBCACHE_MB", DEFAULT_DISK_MB);
    return c;
}

static void space_delete(Space *s) {
    for (Group *g = s->groups, *n; g; g = n) {
        n = g->next;
        free(g->rows);
        free(g);
    }
    free(s->tab.k);
    free(s->tab.v);
    am_free_aligned(s->rows);
    free(s->desc);
    free(s);
}

void embcache_clear(EmbCache *c) {
    for (Space *s = c->spaces, *n; s; s = n) {
        n = s->next;
        space_delete(s);
    }
    c->spaces = NULL;
}

void embcache_delete(EmbCache *c) {
    if (!c) return;
    embcache_clear(c);
    free(c);
}

void embcache_set_disk_cap(EmbCache *c, size_t bytes) {
    c->disk_cap = bytes == (size_t)-1 ? env_mb("AMALGAM_EMBCACHE_MB", DEFAULT_DISK_MB) : bytes;
}
void embcache_counts(const EmbCache *c, EmbCacheCounts *out) { *out = c->cnt; }

/* ---------------------------------------------------------------- key table */

static TKey text_key(const char *s) {
    size_t n = strlen(s);
    return (TKey){am_hash64(s, n, 0x9e3779b97f4a7c15ull), am_hash64(s, n, 0x51ed270b27b5c3a9ull)};
}

static void tab_init(KeyTab *t, size_t cap) {
    t->cap = cap;
    t->count = 0;
    t->k = xmalloc(cap * sizeof *t->k);
    t->v = xmalloc(cap * sizeof *t->v);
    for (size_t i = 0; i < cap; i++) t->v[i] = -1;
}

static void tab_free(KeyTab *t) {
    free(t->k);
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int32_t tab_get(const KeyTab *t, TKey k) {
    if (!t->cap) return -1;
    size_t m = t->cap - 1;
    for (size_t i = k.h1 & m;; i = (i + 1) & m) {
        if (t->v[i] < 0) return -1;
        if (t->k[i].h1 == k.h1 && t->k[i].h2 == k.h2) return t->v[i];
    }
}

static void tab_put(KeyTab *t, TKey k, int32_t v);

static void tab_grow(KeyTab *t) {
    KeyTab old = *t;
    tab_init(t, old.cap ? 2 * old.cap : 1024);
    for (size_t i = 0; i < old.cap; i++)
        if (old.v[i] >= 0) tab_put(t, old.k[i], old.v[i]);
    tab_free(&old);
}

/* insert or overwrite */
static void tab_put(KeyTab *t, TKey k, int32_t v) {
    if ((t->count + 1) * 2 > t->cap) tab_grow(t);
    size_t m = t->cap - 1;
    for (size_t i = k.h1 & m;; i = (i + 1) & m) {
        if (t->v[i] < 0) {
            t->k[i] = k;
            t->v[i] = v;
            t->count++;
            return;
        }
        if (t->k[i].h1 == k.h1 && t->k[i].h2 == k.h2) {
            t->v[i] = v;
            return;
        }
    }
}

/* ---------------------------------------------------------------- spaces */

static void space_key_hex(const EmbSpaceKey *k, char out[33]) {
    char buf[256];
    snprintf(buf, sizeof buf, "amalgam-embspace|1|%s|layer=%d|pool=%d|maxlen=%d|lc=%d|sa=%d|hidden=%d", k->model_id,
             k->layer, k->pooling, k->max_len, k->do_lower_case, k->strip_accents, k->hidden);
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, buf, strlen(buf));
    am_hasher_hex(h, out);
    am_hasher_delete(h);
}

static size_t space_bytes(const Space *s) {
    return s->rcap * (size_t)s->hidden * sizeof(float) + s->tab.cap * (sizeof(TKey) + sizeof(int32_t));
}

static size_t cache_bytes(const EmbCache *c) {
    size_t b = 0;
    for (const Space *s = c->spaces; s; s = s->next) b += space_bytes(s);
    return b;
}

/* drop least recently used spaces (never `keep`) until the cache fits */
static void evict_mem(EmbCache *c, const Space *keep) {
    while (cache_bytes(c) > c->mem_cap) {
        Space **victim = NULL;
        for (Space **p = &c->spaces; *p; p = &(*p)->next)
            if (*p != keep && (!victim || (*p)->used < (*victim)->used)) victim = p;
        if (!victim) return;
        Space *v = *victim;
        *victim = v->next;
        am_log(AM_LOG_DEBUG, "embcache: dropping space %.12s from memory (%zu rows)", v->key, v->nrows);
        space_delete(v);
    }
}

static Space *get_space(EmbCache *c, const EmbSpaceKey *k) {
    char key[33];
    space_key_hex(k, key);
    for (Space *s = c->spaces; s; s = s->next)
        if (strcmp(s->key, key) == 0) return s;
    Space *s = xcalloc(1, sizeof *s);
    memcpy(s->key, key, sizeof key);
    s->hidden = k->hidden;
    s->desc = xasprintf("{\"model\":\"%s\",\"layer\":%d,\"pooling\":\"%s\",\"max_len\":%d,\"do_lower_case\":%s,"
                        "\"strip_accents\":%d,\"hidden\":%d,\"format\":%u}\n",
                        k->model_id, k->layer, pool_name(k->pooling == AM_POOL_CLS ? AM_POOL_CLS : AM_POOL_MEAN), k->max_len,
                        k->do_lower_case ? "true" : "false", k->strip_accents, k->hidden, EMB_VERSION);
    s->next = c->spaces;
    c->spaces = s;
    return s;
}

/* make room for `more` rows; AM_ENOMEM if the buffer cannot grow */
static int space_reserve(Space *s, size_t more) {
    if (s->nrows + more <= s->rcap) return AM_OK;
    size_t cap = s->rcap ? s->rcap : 1024;
    while (cap < s->nrows + more) cap *= 2;
    float *r = am_alloc_floats(cap * (size_t)s->hidden);
    if (!r) return am_error(AM_ENOMEM, "embedding cache: cannot hold %zu x %d floats", cap, s->hidden);
    if (s->nrows) memcpy(r, s->rows, s->nrows * (size_t)s->hidden * sizeof(float));
    am_free_aligned(s->rows);
    s->rows = r;
    s->rcap = cap;
    return AM_OK;
}

static Group *find_group(Space *s, const char *name) {
    for (Group *g = s->groups; g; g = g->next)
        if (strcmp(g->name, name) == 0) return g;
    return NULL;
}

static void group_add(Group *g, int32_t row) {
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->rows = xrealloc(g->rows, (size_t)g->cap * sizeof *g->rows);
    }
    g->rows[g->n++] = row;
}

/* ---------------------------------------------------------------- disk */

static int little_endian(void) {
    const uint16_t x = 1;
    return *(const uint8_t *)&x == 1;
}

static char *group_path(const char *disk_dir, const Space *s, const char *group) {
    return xasprintf("%s/%s/%s.emb", disk_dir, s->key, group);
}

/* Load a group file into s (rows not yet present are added) and record them in g. Missing or
 * bad files are ignored (returns AM_OK); only AM_ENOMEM is an error. */
static int load_group(EmbCache *c, Space *s, Group *g, const char *disk_dir) {
    char *path = group_path(disk_dir, s, g->name);
    char *data = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = AM_OK;
    if (fd < 0) goto done;
    struct stat stt;
    if (fstat(fd, &stt) != 0 || stt.st_size < EMB_HDR + 8) goto done;
    len = (size_t)stt.st_size;
    data = malloc(len);
    if (!data) goto done;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != len) goto done;
    uint32_t ver, hidden;
    uint64_t n, sum;
    memcpy(&ver, data + 8, 4);
    memcpy(&hidden, data + 12, 4);
    memcpy(&n, data + 16, 8);
    if (memcmp(data, EMB_MAGIC, 8) != 0 || ver != EMB_VERSION || (int)hidden != s->hidden ||
        memcmp(data + 24, s->key, 32) != 0 || n > ((uint64_t)1 << 31) ||
        len != EMB_HDR + n * 16 + n * hidden * 4 + 8) {
        am_log(AM_LOG_WARN, "embedding cache: ignoring %s (bad header or size)", path);
        goto done;
    }
    memcpy(&sum, data + len - 8, 8);
    if (sum != am_hash64(data, len - 8, 0)) {
        am_log(AM_LOG_WARN, "embedding cache: ignoring %s (checksum mismatch)", path);
        goto done;
    }
    if ((rc = space_reserve(s, (size_t)n))) goto done;
    const char *keys = data + EMB_HDR;
    const char *rows = keys + n * 16;
    for (uint64_t i = 0; i < n; i++) {
        TKey k;
        memcpy(&k.h1, keys + 16 * i, 8);
        memcpy(&k.h2, keys + 16 * i + 8, 8);
        int32_t r = tab_get(&s->tab, k);
        if (r < 0) {
            r = (int32_t)s->nrows++;
            memcpy(s->rows + (size_t)r * hidden, rows + (size_t)i * hidden * 4, (size_t)hidden * 4);
            tab_put(&s->tab, k, r);
        }
        group_add(g, r);
    }
    c->cnt.disk_loads++;
    futimens(fd, NULL); /* LRU order for the disk cap */
done:
    if (fd >= 0) close(fd);
    free(data);
    free(path);
    return rc;
}

typedef struct { char *path; off_t size; struct timespec mtime; } CacheFile;

static int by_mtime(const void *a, const void *b) {
    const CacheFile *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* delete the least recently used .emb files until the cache is under the cap */
static void enforce_disk_cap(EmbCache *c, const char *disk_dir, const char *keep) {
    DIR *d = opendir(disk_dir);
    if (!d) return;
    CacheFile *f = NULL;
    int n = 0, cap = 0;
    off_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *sub = xasprintf("%s/%s", disk_dir, e->d_name);
        DIR *sd = opendir(sub);
        if (sd) {
            struct dirent *se;
            while ((se = readdir(sd))) {
                size_t l = strlen(se->d_name);
                if (l < 5 || strcmp(se->d_name + l - 4, ".emb") != 0) continue;
                char *p = xasprintf("%s/%s", sub, se->d_name);
                struct stat st;
                if (stat(p, &st) != 0) { free(p); continue; }
                if (n == cap) {
                    cap = cap ? 2 * cap : 64;
                    f = xrealloc(f, (size_t)cap * sizeof *f);
                }
                f[n++] = (CacheFile){p, st.st_size, st.st_mtim};
                total += st.st_size;
            }
            closedir(sd);
        }
        free(sub);
    }
    closedir(d);
    if ((size_t)total > c->disk_cap) {
        qsort(f, (size_t)n, sizeof *f, by_mtime);
        for (int i = 0; i < n && (size_t)total > c->disk_cap; i++) {
            if (keep && strcmp(f[i].path, keep) == 0) continue;
            if (unlink(f[i].path) == 0) {
                total -= f[i].size;
                am_log(AM_LOG_DEBUG, "embedding cache: evicted %s", f[i].path);
            }
        }
    }
    for (int i = 0; i < n; i++) free(f[i].path);
    free(f);
}

/* Write group g of s. Failures are logged and ignored: the cache is an optimisation. */
static void write_group(EmbCache *c, Space *s, Group *g, const char *disk_dir) {
    char *dir = xasprintf("%s/%s", disk_dir, s->key);
    char *path = group_path(disk_dir, s, g->name);
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    size_t H = (size_t)s->hidden, n = (size_t)g->n;
    size_t len = EMB_HDR + n * 16 + n * H * 4 + 8;
    char *buf = NULL;
    int rc = am_mkdir_p(dir);
    if (rc != AM_OK) {
        am_log(AM_LOG_WARN, "embedding cache: %s", am_errmsg(rc));
        am_clearerror();
        goto done;
    }
    char *sj = xasprintf("%s/space.json", dir);
    if (access(sj, F_OK) != 0) {
        FILE *fp = fopen(sj, "w");
        if (fp) {
            fputs(s->desc, fp);
            fclose(fp);
        }
    }
    free(sj);
    buf = malloc(len);
    if (!buf) goto done;
    memcpy(buf, EMB_MAGIC, 8);
    uint32_t ver = EMB_VERSION, hidden = (uint32_t)H;
    uint64_t n64 = n;
    memcpy(buf + 8, &ver, 4);
    memcpy(buf + 12, &hidden, 4);
    memcpy(buf + 16, &n64, 8);
    memcpy(buf + 24, s->key, 32);
    char *keys = buf + EMB_HDR, *rows = keys + n * 16;
    /* table row -> key: walk the table once */
    TKey *rk = xmalloc((s->nrows ? s->nrows : 1) * sizeof *rk);
    for (size_t i = 0; i < s->tab.cap; i++)
        if (s->tab.v[i] >= 0) rk[s->tab.v[i]] = s->tab.k[i];
    for (size_t i = 0; i < n; i++) {
        int32_t r = g->rows[i];
        memcpy(keys + 16 * i, &rk[r].h1, 8);
        memcpy(keys + 16 * i + 8, &rk[r].h2, 8);
        memcpy(rows + i * H * 4, s->rows + (size_t)r * H, H * 4);
    }
    free(rk);
    uint64_t sum = am_hash64(buf, len - 8, 0);
    memcpy(buf + len - 8, &sum, 8);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        am_log(AM_LOG_WARN, "embedding cache: cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(fd);
    if (off != len || rename(tmp, path) != 0) {
        am_log(AM_LOG_WARN, "embedding cache: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    enforce_disk_cap(c, disk_dir, path);
done:
    free(buf);
    free(tmp);
    free(path);
    free(dir);
}

/* ---------------------------------------------------------------- lookup + encode */

int embcache_embed(EmbCache *c, EmbedModel *em, const EmbSpaceKey *k, int batch, const char *disk_dir,
                   const char *group, const char *const *texts, int n, int dim, int normalize, float *out,
                   int *encoded, EmbedProgress progress, void *ud) {
    if (encoded) *encoded = 0;
    if (dim < 1 || dim > k->hidden)
        return am_error(AM_EINVAL, "embedding cache: dim %d outside [1, %d]", dim, k->hidden);
    if (n < 0) return am_error(AM_EINVAL, "embedding cache: n = %d", n);
    int use_disk = disk_dir && group && c->disk_cap > 0 && little_endian();
    Space *s = get_space(c, k);
    s->used = am_now();
    Group *g = NULL;
    int rc = AM_OK;
    if (use_disk) {
        g = find_group(s, group);
        if (!g) {
            g = xcalloc(1, sizeof *g);
            snprintf(g->name, sizeof g->name, "%s", group);
            g->next = s->groups;
            s->groups = g;
            if ((rc = load_group(c, s, g, disk_dir))) return rc;
        }
    }
    /* rows of the texts; misses deduplicated */
    int32_t *row = xmalloc((size_t)(n ? n : 1) * sizeof *row);
    TKey *key = xmalloc((size_t)(n ? n : 1) * sizeof *key);
    int *miss = xmalloc((size_t)(n ? n : 1) * sizeof *miss);
    int m = 0;
    KeyTab pend = {0};
    for (int i = 0; i < n; i++) {
        key[i] = text_key(texts[i]);
        row[i] = tab_get(&s->tab, key[i]);
        if (row[i] >= 0) continue;
        int32_t p = tab_get(&pend, key[i]);
        if (p >= 0) { row[i] = -2 - p; continue; }    /* pending miss p */
        tab_put(&pend, key[i], m);
        row[i] = -2 - m;
        miss[m++] = i;
    }
    tab_free(&pend);
    if (m > 0) {
        if ((rc = space_reserve(s, (size_t)m))) goto fail;
        const char **mt = xmalloc((size_t)m * sizeof *mt);
        for (int j = 0; j < m; j++) mt[j] = texts[miss[j]];
        EmbedOptions o;
        embed_options_default(&o);
        o.pooling = k->pooling;
        o.normalize = 0;
        o.layer = k->layer;
        o.dim = 0;
        o.batch = batch > 0 ? batch : 64;
        o.max_len = k->max_len;
        float *dst = s->rows + s->nrows * (size_t)s->hidden;
        c->cnt.encode_calls++;
        rc = embed_model_encode(em, mt, m, &o, dst, progress, ud);
        free(mt);
        if (rc) goto fail;
        if (embed_model_dim(em, &o) != s->hidden) {
            rc = am_error(AM_EINVAL, "embedding cache: model width %d, space expects %d", embed_model_dim(em, &o), s->hidden);
            goto fail;
        }
        for (int j = 0; j < m; j++) tab_put(&s->tab, key[miss[j]], (int32_t)(s->nrows + (size_t)j));
        for (int i = 0; i < n; i++)
            if (row[i] <= -2) row[i] = (int32_t)s->nrows + (-2 - row[i]);
        s->nrows += (size_t)m;
        c->cnt.texts_encoded += m;
    }
    c->cnt.texts_cached += n - m;
    if (encoded) *encoded = m;
    /* copy out: first dim features, then normalise as encoder_embed does */
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * dim, s->rows + (size_t)row[i] * s->hidden, (size_t)dim * sizeof(float));
    if (normalize && n > 0) l2norm_forward(out, out, n, dim);
    /* disk: add the rows this request used to the group file */
    if (use_disk) {
        unsigned char *mark = xcalloc(s->nrows ? s->nrows : 1, 1);
        for (int j = 0; j < g->n; j++) mark[g->rows[j]] = 1;
        int before = g->n;
        for (int i = 0; i < n; i++)
            if (!mark[row[i]]) {
                mark[row[i]] = 1;
                group_add(g, row[i]);
            }
        free(mark);
        if (g->n > before) {
            double t0 = am_now();
            write_group(c, s, g, disk_dir);
            am_phase_add(AM_PHASE_STORE, am_now() - t0);
        }
    }
    evict_mem(c, s);
    free(row);
    free(key);
    free(miss);
    return AM_OK;
fail:
    free(row);
    free(key);
    free(miss);
    return rc;
}
