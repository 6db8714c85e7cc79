/* store_open.c - open/close (one environment per file per process: a registry with
 * reference counts), the named databases and the format record, stat, argument checks. */
#define _GNU_SOURCE
#include "store_internal.h"
#include "am_base.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const am_db_names[AM_DB_COUNT] = {
    "models", "tensors", "names", "vocab", "runs", "metrics", "results", "datasets", "meta",
};

#define MAX_DBS 16            /* 9 used, room for later databases without a format change */

/* ---------------------------------------------------------------- open / close */

const char *store_default_dir(void) {
    const char *e = getenv("AMALGAM_STORE");
    return e && *e ? e : "store";
}

const char *store_dir(const Store *s) { return s->dir; }

size_t store_max_keysize(Store *s) { return s->maxkey; }

static int parse_size(const char *str, size_t *out) {
    char *end;
    errno = 0;
    double v = strtod(str, &end);
    if (end == str || errno || !(v > 0)) return -1;
    switch (toupper((unsigned char)*end)) {
    case 'K': v *= 1024; end++; break;
    case 'M': v *= 1024 * 1024; end++; break;
    case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    case 'T': v *= 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (toupper((unsigned char)*end) == 'I') end++;   /* "64MiB" */
    if (toupper((unsigned char)*end) == 'B') end++;
    if (*end || v > 1e18) return -1;
    *out = (size_t)v;
    return 0;
}

typedef struct { int format; } InitCtx;

/* Open (create) the named databases and check/write the format record. Runs inside the
 * first txn; committing it makes the dbi handles valid for the env's lifetime. */
static int open_dbs(StoreTxn *t, void *ud) {
    InitCtx *c = ud;
    Store *s = t->s;
    int write = !(s->flags & AM_STORE_RDONLY);
    for (int i = 0; i < AM_DB_COUNT; i++) {
        int rc = mdb_dbi_open(t->txn, am_db_names[i], write ? MDB_CREATE : 0, &s->dbi[i]);
        if (rc == MDB_NOTFOUND)
            return am_error(AM_ENOTFOUND, "no store at '%s' (database '%s' missing)\n"
                            "HINT: check --store / $AMALGAM_STORE; amalgam init-model, import or prepare "
                            "creates one", s->dir, am_db_names[i]);
        if (rc) return st_mdb_fail(s, rc, "open database", i, NULL, 0);
    }
    static const char fkey[] = "format";
    MDB_val v;
    int rc = st_raw_get(t->txn, s, AM_DB_META, fkey, strlen(fkey), &v);
    if (rc == AM_ENOTFOUND) {
        am_clearerror();
        c->format = AM_STORE_FORMAT;
        if (!write) return AM_OK;
        char buf[64];
        int n = snprintf(buf, sizeof buf, "{\"format\":%d}", AM_STORE_FORMAT);
        return st_raw_put(t, AM_DB_META, fkey, strlen(fkey), buf, (size_t)n, 0, NULL);
    }
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
    c->format = cJSON_IsNumber(f) ? f->valueint : -1;
    cJSON_Delete(j);
    if (c->format < 1)
        return am_error(AM_ESTORE, "store %s: meta[format] is not a valid format record", s->dir);
    if (c->format > AM_STORE_FORMAT)
        return am_error(AM_ESTORE, "store %s has format %d, newer than this amalgam supports (%d)\n"
                        "HINT: use a newer amalgam build, or pass --store DIR for a separate store",
                        s->dir, c->format, AM_STORE_FORMAT);
    if (c->format < AM_STORE_FORMAT && write) {
        /* 1 -> 2: the run and metrics keys of store_keys.h */
        if ((rc = st_runs_migrate(t))) return am_error_wrap(rc, "store %s: moving runs to format %d", s->dir, AM_STORE_FORMAT);
        char buf[64];
        int n = snprintf(buf, sizeof buf, "{\"format\":%d}", AM_STORE_FORMAT);
        if ((rc = st_raw_put(t, AM_DB_META, fkey, strlen(fkey), buf, (size_t)n, 0, NULL))) return rc;
        c->format = AM_STORE_FORMAT;
    }
    return AM_OK;
}

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static Store *reg_head;

static int env_open(const char *dir, const StoreOptions *o, size_t mapsize, Store **out);
static void env_close(Store *s);

int store_open(const char *dir, unsigned flags, Store **out) {
    StoreOptions o = {.flags = flags};
    return store_open_ex(dir, &o, out);
}

int store_open_ex(const char *dir, const StoreOptions *opt, Store **out) {
    *out = NULL;
    StoreOptions o = {0};
    if (opt) o = *opt;
    if (!dir || !*dir) dir = store_default_dir();
    size_t mapsize = o.mapsize;
    if (!mapsize) {
        const char *e = getenv("AMALGAM_STORE_MAPSIZE");
        if (e && *e && parse_size(e, &mapsize) != 0)
            return am_error(AM_EINVAL, "AMALGAM_STORE_MAPSIZE='%s': expected a size such as 64M or 1G", e);
        if (!mapsize) mapsize = AM_STORE_DEFAULT_MAPSIZE;
    }
    int rdonly = (o.flags & AM_STORE_RDONLY) != 0;
    if (rdonly || (o.flags & AM_STORE_EXISTING)) {
        char *p = xasprintf("%s/data.mdb", dir);
        struct stat st;
        int missing = stat(p, &st) != 0;
        free(p);
        if (missing)
            return am_error(AM_ENOTFOUND, "no store at '%s'\n"
                            "HINT: check --store / $AMALGAM_STORE; amalgam init-model, import or prepare "
                            "creates one", dir);
    } else {
        int rc = am_mkdir_p(dir);
        if (rc) return am_error_wrap(rc, "opening store");
    }

    struct stat dst;
    if (stat(dir, &dst) != 0)
        return am_error(AM_EIO, "store %s: cannot stat the directory: %s", dir, strerror(errno));
    /* LMDB must not open the same environment twice in one process (closing one would drop
     * the other's file locks): share the handle, counting references. */
    pthread_mutex_lock(&reg_mu);
    for (Store *r = reg_head; r; r = r->next) {
        if (r->dev != dst.st_dev || r->ino != dst.st_ino || r->pid != getpid()) continue;
        int rc = AM_OK;
        if ((r->flags & AM_STORE_RDONLY) != (o.flags & AM_STORE_RDONLY))
            rc = am_error(AM_EINVAL, "store %s is already open %s in this process (as %s)", dir,
                          (r->flags & AM_STORE_RDONLY) ? "read-only" : "read-write", r->dir);
        else {
            r->refs++;
            *out = r;
        }
        pthread_mutex_unlock(&reg_mu);
        return rc;
    }
    Store *s = NULL;
    int rc = env_open(dir, &o, mapsize, &s);
    if (rc == AM_OK) {
        s->dev = dst.st_dev;
        s->ino = dst.st_ino;
        s->pid = getpid();
        s->refs = 1;
        s->next = reg_head;
        reg_head = s;
        *out = s;
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

static int env_open(const char *dir, const StoreOptions *opt, size_t mapsize, Store **out) {
    StoreOptions o = *opt;
    int rdonly = (o.flags & AM_STORE_RDONLY) != 0;
    Store *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(dir);
    s->flags = o.flags;
    s->max_mapsize = o.max_mapsize;
    s->hook = o.hook;
    s->hook_ud = o.hook_ud;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    /* shared lock on the directory before LMDB opens data.mdb: store_compact replaces that file
     * under an exclusive lock, so no process may hold the old one open (flock, not fcntl: LMDB's
     * own fcntl locks on lock.mdb stay untouched) */
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd >= 0 && flock(s->dirfd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        am_log(AM_LOG_INFO, "store %s: waiting for a compaction (amalgam gc --compact) to finish", dir);
        while (flock(s->dirfd, LOCK_SH) != 0 && errno == EINTR) {}
    }

    int rc = mdb_env_create(&s->env);
    if (rc) {
        s->env = NULL;
        rc = st_mdb_fail(s, rc, "create environment", -1, NULL, 0);
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, MAX_DBS)) || (rc = mdb_env_set_mapsize(s->env, mapsize))) {
        rc = st_mdb_fail(s, rc, "configure environment", -1, NULL, 0);
        goto fail;
    }
    rc = mdb_env_open(s->env, dir, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0664);
    if (rc) {
        rc = st_mdb_fail(s, rc, "open environment", -1, NULL, 0);
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);   /* free reader slots of killed processes */
    if (dead) am_log(AM_LOG_INFO, "store %s: cleared %d stale reader slots", dir, dead);
    MDB_stat est;
    mdb_env_stat(s->env, &est);
    s->psize = est.ms_psize;
    s->maxkey = (size_t)mdb_env_get_maxkeysize(s->env);
    /* keep the larger of the recorded map size and the requested one */
    if ((rc = mdb_env_set_mapsize(s->env, 0)) == MDB_SUCCESS) {
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        if (info.me_mapsize < mapsize) rc = mdb_env_set_mapsize(s->env, mapsize);
    }
    if (rc) {
        rc = st_mdb_fail(s, rc, "set map size", -1, NULL, 0);
        goto fail;
    }

    InitCtx ic = {0};
    if (rdonly) {
        StoreTxn t = {.s = s};
        rc = st_txn_open(s, 0, &t.txn);
        if (rc) goto fail;
        rc = open_dbs(&t, &ic);
        if (rc) {
            st_txn_close(s, t.txn, 0);
            goto fail;
        }
        int mrc = mdb_txn_commit(t.txn);   /* keeps the dbi handles */
        st_gate_leave(s, 0);
        if (mrc) {
            rc = st_mdb_fail(s, mrc, "open databases", -1, NULL, 0);
            goto fail;
        }
    } else {
        rc = store_write(s, 0, open_dbs, &ic);
        if (rc) goto fail;
    }
    s->format = ic.format;
    *out = s;
    return AM_OK;
fail:
    env_close(s);
    return rc;
}

void store_close(Store *s) {
    if (!s) return;
    pthread_mutex_lock(&reg_mu);
    AM_ASSERT(s->refs > 0);
    if (--s->refs > 0) {
        pthread_mutex_unlock(&reg_mu);
        return;
    }
    for (Store **pp = &reg_head; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&reg_mu);
    env_close(s);
}

static void env_close(Store *s) {
    AM_ASSERT(s->active == 0 && "store_close with a transaction still open");
    if (s->env) mdb_env_close(s->env);
    if (s->dirfd >= 0) close(s->dirfd); /* after LMDB let go of data.mdb */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->dir);
    free(s);
}

int store_stat(Store *s, StoreStat *st) {
    memset(st, 0, sizeof *st);
    MDB_txn *txn;
    int rc = st_txn_open(s, 0, &txn);
    if (rc) return rc;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    st->mapsize = info.me_mapsize;
    st->page_size = s->psize;
    st->used = (info.me_last_pgno + 1) * s->psize;
    pthread_mutex_lock(&s->mu);
    st->grows = s->grows;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < AM_DB_COUNT && rc == AM_OK; i++) {
        MDB_stat ms;
        int mrc = mdb_stat(txn, s->dbi[i], &ms);
        if (mrc) rc = st_mdb_fail(s, mrc, "stat", i, NULL, 0);
        else {
            st->entries[i] = ms.ms_entries;
            st->pages[i] = ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
        }
    }
    /* free pages: LMDB's freelist (dbi 0), each value an ID list whose first word is its length
     * (what mdb_stat -f counts) */
    MDB_cursor *cur;
    if (rc == AM_OK && mdb_cursor_open(txn, 0, &cur) == MDB_SUCCESS) {
        MDB_val k, v;
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == MDB_SUCCESS)
            if (v.mv_size >= sizeof(size_t)) {
                size_t n;
                memcpy(&n, v.mv_data, sizeof n);
                st->free_pages += n;
            }
        mdb_cursor_close(cur);
    }
    st_txn_close(s, txn, 0);
    char *path = xasprintf("%s/data.mdb", s->dir);
    struct stat fst;
    if (stat(path, &fst) == 0) st->file_size = (size_t)fst.st_size;
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- argument checks */

int st_db_index(const Store *s, const char *db, AmDb *out) {
    for (int i = 0; db && i < AM_DB_COUNT; i++)
        if (strcmp(db, am_db_names[i]) == 0) {
            *out = (AmDb)i;
            return AM_OK;
        }
    return am_error(AM_EINVAL, "store %s: unknown database '%s' (models, tensors, names, vocab, runs, metrics, "
                    "results, datasets, meta)", s->dir, db ? db : "(null)");
}

int st_key_check(const Store *s, AmDb db, const void *key, size_t klen) {
    if (!key || klen == 0 || klen > s->maxkey)
        return am_error(AM_EINVAL, "store %s: %s: key of %zu bytes (must be 1..%zu)", s->dir, am_db_names[db], klen,
                        s->maxkey);
    return AM_OK;
}

int st_is_hex_id(const char *id) {
    if (!id) return 0;
    for (int i = 0; i < AM_ID_HEX; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return 0;
    return id[AM_ID_HEX] == 0;
}

int st_id_check(const Store *s, const char *id) {
    if (st_is_hex_id(id)) return AM_OK;
    return am_error(AM_EINVAL, "store %s: '%s' is not a model id (32 lowercase hex chars; resolve names with "
                    "store_resolve)", s->dir, id ? id : "(null)");
}

int st_name_check(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 255)
        return am_error(AM_EINVAL, "model name must be 1..255 bytes (got %zu)", n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f) return am_error(AM_EINVAL, "model name '%s' contains a control character", name);
    }
    if (isspace((unsigned char)name[0]) || isspace((unsigned char)name[n - 1]) || name[0] == '-')
        return am_error(AM_EINVAL, "model name '%s' must not start with '-' or start/end with a space", name);
    return AM_OK;
}

