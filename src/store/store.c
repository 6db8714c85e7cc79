/* store.c - the LMDB model store (see store.h for the API, store_keys.h for the schema).
 *
 * Structure:
 *   errors      mdb codes -> AM_E* with "store DIR: op db[key]: why" messages
 *   gate        counts this process's open txns so the map is only remapped when none is open
 *   txns        begin (MDB_MAP_RESIZED), commit, the retry-on-MDB_MAP_FULL loop (store_write)
 *               and explicit batched txns with a replay log
 *   open/close  environment, named databases, format record
 *   models      content id, meta JSON, tensor values written with MDB_RESERVE, zero-copy reads
 *   names, generic key/values
 */
#define _GNU_SOURCE
#include "store.h"
#include "am_base.h"

#include <cjson/cJSON.h>
#include <lmdb.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store keeps tensors as raw little-endian float32: a big-endian port needs byte swaps in store.c"
#endif

const char *const am_db_names[AM_DB_COUNT] = {
    "models", "tensors", "names", "vocab", "runs", "metrics", "results", "datasets", "meta",
};

#define MAX_DBS 16            /* 9 used, room for later databases without a format change */
#define MAX_RETRIES 48        /* map growth attempts per write (doubling: far beyond any disk) */

struct Store {
    MDB_env *env;
    MDB_dbi dbi[AM_DB_COUNT];
    char *dir;
    unsigned flags;
    size_t max_mapsize;
    size_t psize;
    size_t maxkey;
    StoreHook hook;
    void *hook_ud;
    int broken;               /* a remap failed: the env has no map any more, must reopen */
    pthread_mutex_t mu;       /* guards active/resizing */
    pthread_cond_t cv;
    int active;               /* open LMDB txns of this process on this env */
    int resizing;             /* a thread waits for active == 0 to call mdb_env_set_mapsize */
    size_t grows;             /* successful growths (under mu) */
    /* process-wide registry of open stores (LMDB: one env per file per process) */
    Store *next;
    dev_t dev;
    ino_t ino;
    pid_t pid;
    int refs;
};

/* One log record of an explicit txn: header, then key bytes, then value bytes. */
enum { OP_PUT = 1, OP_DEL = 2 };
typedef struct { uint8_t op, db; uint32_t klen; uint64_t vlen; } LogRec;

struct StoreTxn {
    Store *s;
    MDB_txn *txn;             /* NULL after the LMDB txn ended (gate released) */
    int explicit_;            /* from store_txn_begin: logs writes, owns itself */
    int mapfull;              /* an op hit MDB_MAP_FULL: the LMDB txn is unusable, grow and retry */
    size_t need;              /* bytes the failing op wanted */
    size_t seen_mapsize;      /* map size when the txn began (to tell whether someone grew it) */
    int err;                  /* explicit: first hard error, the txn is dead */
    char *errmsg;
    uint8_t *log;
    size_t log_len, log_cap;
};

static void hook(Store *s, const char *ev, int arg) {
    if (s->hook) s->hook(s->hook_ud, ev, arg);
}

/* ---------------------------------------------------------------- errors */

/* Printable rendering of a key for messages: text as is, other bytes as \xNN, long keys cut. */
static const char *fmt_key(char *buf, size_t cap, const void *key, size_t klen) {
    const unsigned char *k = key;
    size_t o = 0;
    for (size_t i = 0; i < klen && o + 8 < cap; i++) {
        if (i >= 96) { o += (size_t)snprintf(buf + o, cap - o, "..."); break; }
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\') buf[o++] = (char)k[i];
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", k[i]);
    }
    buf[o] = 0;
    return buf;
}

static int is_disk_full(int rc) { return rc == ENOSPC || rc == EDQUOT || rc == EFBIG; }

/* Turn an LMDB (or errno) code into an AM_E* code with a message naming the operation,
 * the database and the key. db < 0: no database; key NULL: no key. */
static int mdb_fail(const Store *s, int rc, const char *op, int db, const void *key, size_t klen) {
    char kb[512], where[640];
    where[0] = 0;
    if (db >= 0 && key) snprintf(where, sizeof where, " %s[%s]", am_db_names[db], fmt_key(kb, sizeof kb, key, klen));
    else if (db >= 0) snprintf(where, sizeof where, " %s", am_db_names[db]);
    const char *dir = s ? s->dir : "?";
    const char *why = mdb_strerror(rc);
    switch (rc) {
    case MDB_NOTFOUND:
        return am_error(AM_ENOTFOUND, "store %s: %s%s: not found", dir, op, where);
    case MDB_MAP_FULL:
        return am_error(AM_EMAPFULL, "store %s: %s%s: %s", dir, op, where, why);
    case MDB_KEYEXIST:
        return am_error(AM_EEXIST, "store %s: %s%s: key exists", dir, op, where);
    case MDB_BAD_VALSIZE:
        return am_error(AM_EINVAL, "store %s: %s%s: key or value size not supported by LMDB", dir, op, where);
    case MDB_PANIC:
        return am_error(AM_ESTORE, "store %s: %s%s: %s\nHINT: an earlier write failed fatally; close and reopen the store",
                        dir, op, where, why);
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return am_error(AM_ESTORE, "store %s: %s%s: %s\nHINT: %s/data.mdb is not an LMDB store of this LMDB version; "
                        "use another --store directory", dir, op, where, why, dir);
    case MDB_READERS_FULL:
        return am_error(AM_ESTORE, "store %s: %s%s: %s\nHINT: too many processes have the store open", dir, op, where, why);
    default: {
        const char *rolled = strcmp(op, "commit") == 0 ? "; the transaction was rolled back, nothing was written" : "";
        if (is_disk_full(rc))
            return am_error(AM_EMAPFULL, "store %s: %s%s: %s (disk full)%s\n"
                            "HINT: free space on the disk holding %s", dir, op, where, why, rolled, dir);
        if (rc == EIO)   /* LMDB reports a short write (typically a full disk) as EIO */
            return am_error(AM_EIO, "store %s: %s%s: %s (disk full or I/O error)%s\n"
                            "HINT: check free space on the disk holding %s", dir, op, where, why, rolled, dir);
        return am_error(AM_ESTORE, "store %s: %s%s: %s", dir, op, where, why);
    }
    }
}

/* ---------------------------------------------------------------- gate
 *
 * mdb_env_set_mapsize may only run when no txn of this process is open (LMDB unmaps and
 * remaps). Every txn enters the gate; a resize sets `resizing`, waits for active == 0, remaps,
 * and releases. A thread that already holds a txn on this store never waits at the gate
 * (the resizer cannot proceed before it leaves anyway), and cannot resize itself. */

typedef struct { const Store *s; int n, w; } Held;
static _Thread_local Held tl_held[8];

static Held *held_find(const Store *s) {
    for (size_t i = 0; i < sizeof tl_held / sizeof tl_held[0]; i++)
        if (tl_held[i].s == s) return &tl_held[i];
    return NULL;
}

static Held *held_get(const Store *s) {
    Held *h = held_find(s);
    if (h) return h;
    h = held_find(NULL);
    AM_ASSERT(h != NULL && "transactions open on more than 8 stores in one thread");
    h->s = s;
    return h;
}

static void gate_enter(Store *s, int write) {
    Held *h = held_get(s);
    pthread_mutex_lock(&s->mu);
    if (h->n == 0)
        while (s->resizing) pthread_cond_wait(&s->cv, &s->mu);
    s->active++;
    pthread_mutex_unlock(&s->mu);
    h->n++;
    h->w += write;
}

static void gate_leave(Store *s, int write) {
    Held *h = held_find(s);
    AM_ASSERT(h != NULL && h->n > 0);
    h->n--;
    h->w -= write;
    if (h->n == 0) h->s = NULL;
    pthread_mutex_lock(&s->mu);
    s->active--;
    if (s->active == 0) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int thread_holds(const Store *s) {
    const Held *h = held_find(s);
    return h ? h->n : 0;
}

/* mdb_env_info reads the meta pages from the map, so it must not race a remap. */
static void env_info(Store *s, MDB_envinfo *info) {
    gate_enter(s, 0);
    mdb_env_info(s->env, info);
    gate_leave(s, 0);
}

/* Remap to `size` (0 = the size another process recorded) with no txn open in this process.
 * With seen != 0 the remap is skipped when the map is already larger than `seen`
 * (another thread grew it meanwhile). */
static int remap(Store *s, size_t size, size_t seen) {
    if (thread_holds(s))
        return am_error(size ? AM_EMAPFULL : AM_ESTORE,
                        "store %s: cannot %s the map while this thread has a transaction open on the store "
                        "(do not write from inside a store_iter/store_model_list callback)",
                        s->dir, size ? "grow" : "remap");
    pthread_mutex_lock(&s->mu);
    while (s->resizing) pthread_cond_wait(&s->cv, &s->mu);
    s->resizing = 1;
    while (s->active > 0) pthread_cond_wait(&s->cv, &s->mu);
    int rc = MDB_SUCCESS, skipped = 0;
    if (seen) {
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        skipped = info.me_mapsize > seen;
    }
    if (!skipped) rc = mdb_env_set_mapsize(s->env, size);
    if (rc != MDB_SUCCESS) s->broken = 1;
    else if (!skipped && size) s->grows++;
    s->resizing = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc != MDB_SUCCESS)
        return am_error(AM_EMAPFULL, "store %s: cannot remap to %.1f MiB: %s\nHINT: close and reopen the store",
                        s->dir, (double)size / (1 << 20), mdb_strerror(rc));
    if (!skipped && size) am_log(AM_LOG_INFO, "store %s: map grown to %.1f MiB", s->dir, (double)size / (1 << 20));
    return AM_OK;
}

/* Grow the map after MDB_MAP_FULL (seen = the map size the failed txn ran with): double it,
 * or more if `need` bytes would not fit. AM_EMAPFULL if it cannot grow. */
static int grow(Store *s, size_t seen, size_t need) {
    MDB_envinfo info;
    env_info(s, &info);
    if (info.me_mapsize > seen) return AM_OK;   /* someone else grew it */
    size_t used = (info.me_last_pgno + 1) * s->psize;
    size_t want = seen * 2, min = used + need + need / 4 + ((size_t)1 << 20);
    if (want < min) want = min;
    want = (want + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    if (s->max_mapsize) {
        if (seen >= s->max_mapsize)
            return am_error(AM_EMAPFULL, "store %s: map full at %.1f MiB (the limit)\n"
                            "HINT: raise the store's max map size or delete models", s->dir,
                            (double)seen / (1 << 20));
        if (want > s->max_mapsize) want = s->max_mapsize;
    }
    /* Probe the address space first: a failed remap would leave the env without a map. */
    void *probe = mmap(NULL, want, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe == MAP_FAILED)
        return am_error(AM_EMAPFULL, "store %s: map full and cannot grow it from %.1f to %.1f MiB: %s", s->dir,
                        (double)seen / (1 << 20), (double)want / (1 << 20), strerror(errno));
    munmap(probe, want);
    return remap(s, want, seen);
}

/* Grow up front if `hint` bytes will clearly not fit (saves aborted attempts on big writes).
 * Failures are ignored: the MDB_MAP_FULL path reports them properly. */
static void pregrow(Store *s, size_t hint) {
    if (!hint || thread_holds(s)) return;
    MDB_envinfo info;
    env_info(s, &info);
    size_t used = (info.me_last_pgno + 1) * s->psize;
    size_t free_ = info.me_mapsize > used ? info.me_mapsize - used : 0;
    size_t need = hint + hint / 8 + ((size_t)256 << 10);
    if (need <= free_) return;
    if (grow(s, info.me_mapsize, need) != AM_OK) am_clearerror();
}

/* ---------------------------------------------------------------- txns */

static size_t cur_mapsize(Store *s) {
    MDB_envinfo info;
    env_info(s, &info);
    return info.me_mapsize;
}

static int txn_open(Store *s, int write, MDB_txn **out) {
    *out = NULL;
    if (s->broken)
        return am_error(AM_ESTORE, "store %s: the map was lost after a failed resize\nHINT: close and reopen the store",
                        s->dir);
    if (write && (s->flags & AM_STORE_RDONLY))
        return am_error(AM_EINVAL, "store %s: opened read-only, cannot write", s->dir);
    const Held *h = held_find(s);
    if (write && h && h->w > 0)
        return am_error(AM_EINVAL, "store %s: this thread already has a write transaction open "
                        "(nested writes are not supported; use the open StoreTxn)", s->dir);
    for (int tries = 0;; tries++) {
        gate_enter(s, write);
        int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, out);
        if (rc == MDB_SUCCESS) return AM_OK;
        *out = NULL;
        gate_leave(s, write);
        if (rc == MDB_MAP_RESIZED && tries < 4) {
            /* another process grew the map beyond ours: adopt its size */
            int r = remap(s, 0, 0);
            if (r) return r;
            continue;
        }
        return mdb_fail(s, rc, write ? "begin write transaction" : "begin read transaction", -1, NULL, 0);
    }
}

static void txn_close(Store *s, MDB_txn *txn, int write) {
    mdb_txn_abort(txn);
    gate_leave(s, write);
}

/* Commit (the txn is freed whatever happens). Returns the raw LMDB code. */
static int txn_commit_raw(Store *s, MDB_txn *txn) {
    hook(s, "txn:commit", 0);
    int rc = mdb_txn_commit(txn);
    gate_leave(s, 1);
    if (rc == MDB_SUCCESS) hook(s, "txn:committed", 0);
    return rc;
}

static int raw_put(StoreTxn *t, AmDb db, const void *key, size_t klen, const void *val, size_t vlen,
                   unsigned flags, void **reserved) {
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, flags);
    if (rc == MDB_SUCCESS) {
        if (reserved) *reserved = v.mv_data;
        return AM_OK;
    }
    if (rc == MDB_MAP_FULL) {
        t->mapfull = 1;
        t->need = klen + vlen;
    }
    return mdb_fail(t->s, rc, "put", (int)db, key, klen);
}

static int raw_del(StoreTxn *t, AmDb db, const void *key, size_t klen) {
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
    if (rc == MDB_SUCCESS) return AM_OK;
    if (rc == MDB_MAP_FULL) {
        t->mapfull = 1;
        t->need = klen;
    }
    return mdb_fail(t->s, rc, "delete", (int)db, key, klen);
}

/* Borrowed get inside a txn: AM_OK / AM_ENOTFOUND (with message) / AM_ESTORE. */
static int raw_get(MDB_txn *txn, Store *s, AmDb db, const void *key, size_t klen, MDB_val *v) {
    MDB_val k = {klen, (void *)key};
    int rc = mdb_get(txn, s->dbi[db], &k, v);
    if (rc == MDB_SUCCESS) return AM_OK;
    return mdb_fail(s, rc, "get", (int)db, key, klen);
}

int store_write(Store *s, size_t size_hint, StoreWriteFn fn, void *ud) {
    pregrow(s, size_hint);
    for (int attempt = 0;; attempt++) {
        StoreTxn t = {.s = s};
        t.seen_mapsize = cur_mapsize(s);
        int rc = txn_open(s, 1, &t.txn);
        if (rc) return rc;
        rc = fn(&t, ud);
        if (rc == AM_OK && !t.mapfull) {
            int mrc = txn_commit_raw(s, t.txn);
            if (mrc == MDB_SUCCESS) return AM_OK;
            if (mrc != MDB_MAP_FULL) return mdb_fail(s, mrc, "commit", -1, NULL, 0);
            t.mapfull = 1;
            t.need = size_hint;
        } else {
            txn_close(s, t.txn, 1);
            if (!t.mapfull) return rc;
        }
        if (attempt >= MAX_RETRIES)
            return am_error(AM_EMAPFULL, "store %s: map still full after %d growths", s->dir, attempt);
        rc = grow(s, t.seen_mapsize, t.need > size_hint ? t.need : size_hint);
        if (rc) return rc;
    }
}

/* ---- explicit txns: a replay log so MDB_MAP_FULL can be retried transparently ---- */

static void log_add(StoreTxn *t, int op, AmDb db, const void *key, size_t klen, const void *val, size_t vlen) {
    size_t n = sizeof(LogRec) + klen + vlen;
    if (t->log_len + n > t->log_cap) {
        size_t cap = t->log_cap ? t->log_cap * 2 : 4096;
        while (cap < t->log_len + n) cap *= 2;
        t->log = xrealloc(t->log, cap);
        t->log_cap = cap;
    }
    LogRec r = {(uint8_t)op, (uint8_t)db, (uint32_t)klen, vlen};
    memcpy(t->log + t->log_len, &r, sizeof r);
    memcpy(t->log + t->log_len + sizeof r, key, klen);
    if (vlen) memcpy(t->log + t->log_len + sizeof r + klen, val, vlen);
    t->log_len += n;
}

static int log_replay(StoreTxn *t) {
    for (size_t o = 0; o < t->log_len;) {
        LogRec r;
        memcpy(&r, t->log + o, sizeof r);
        const uint8_t *k = t->log + o + sizeof r, *v = k + r.klen;
        int rc = r.op == OP_PUT ? raw_put(t, (AmDb)r.db, k, r.klen, v, r.vlen, 0, NULL)
                                : raw_del(t, (AmDb)r.db, k, r.klen);
        if (rc && !(r.op == OP_DEL && rc == AM_ENOTFOUND)) return rc;
        o += sizeof r + r.klen + r.vlen;
    }
    return AM_OK;
}

/* After MDB_MAP_FULL in an explicit txn: drop the LMDB txn, grow, begin again, replay. */
static int txn_regrow(StoreTxn *t, size_t need) {
    Store *s = t->s;
    for (int attempt = 0; attempt < MAX_RETRIES; attempt++) {
        if (t->txn) txn_close(s, t->txn, 1);
        t->txn = NULL;
        t->mapfull = 0;
        int rc = grow(s, t->seen_mapsize, need + t->log_len);
        if (rc) return rc;
        t->seen_mapsize = cur_mapsize(s);
        rc = txn_open(s, 1, &t->txn);
        if (rc) return rc;
        rc = log_replay(t);
        if (rc == AM_OK) return AM_OK;
        if (!t->mapfull) return rc;
    }
    return am_error(AM_EMAPFULL, "store %s: map still full after %d growths", s->dir, MAX_RETRIES);
}

static int txn_dead(StoreTxn *t, int rc) {
    if (!t->err) {
        t->err = rc;
        t->errmsg = xstrdup(am_lasterror());
    }
    return rc;
}

int store_txn_begin(Store *s, StoreTxn **out) {
    *out = NULL;
    StoreTxn *t = xcalloc(1, sizeof *t);
    t->s = s;
    t->explicit_ = 1;
    t->seen_mapsize = cur_mapsize(s);
    int rc = txn_open(s, 1, &t->txn);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return AM_OK;
}

static int db_index(const Store *s, const char *db, AmDb *out);
static int key_check(const Store *s, AmDb db, const void *key, size_t klen);

static int txn_usable(StoreTxn *t) {
    if (t->err) return am_error(t->err, "%s (the transaction failed earlier)", t->errmsg ? t->errmsg : "");
    if (!t->txn) return am_error(AM_ESTORE, "store %s: transaction is not open", t->s->dir);
    if (t->mapfull)   /* store_write callback after MDB_MAP_FULL: return so the write can be retried */
        return am_error(AM_EMAPFULL, "store %s: map full in this transaction (return the error to retry)", t->s->dir);
    return AM_OK;
}

int store_txn_put(StoreTxn *t, const char *db, const void *key, size_t klen, const void *val, size_t vlen) {
    AmDb d;
    int rc = db_index(t->s, db, &d);
    if (!rc) rc = key_check(t->s, d, key, klen);
    if (rc) return rc;
    if ((rc = txn_usable(t))) return rc;
    for (int attempt = 0;; attempt++) {
        rc = raw_put(t, d, key, klen, val, vlen, 0, NULL);
        if (rc == AM_OK) {
            if (t->explicit_) log_add(t, OP_PUT, d, key, klen, val, vlen);
            return AM_OK;
        }
        if (!t->mapfull || !t->explicit_ || attempt >= MAX_RETRIES) return t->explicit_ ? txn_dead(t, rc) : rc;
        rc = txn_regrow(t, klen + vlen);
        if (rc) return txn_dead(t, rc);
    }
}

int store_txn_del(StoreTxn *t, const char *db, const void *key, size_t klen) {
    AmDb d;
    int rc = db_index(t->s, db, &d);
    if (!rc) rc = key_check(t->s, d, key, klen);
    if (rc) return rc;
    if ((rc = txn_usable(t))) return rc;
    for (int attempt = 0;; attempt++) {
        rc = raw_del(t, d, key, klen);
        if (rc == AM_OK) {
            if (t->explicit_) log_add(t, OP_DEL, d, key, klen, NULL, 0);
            return AM_OK;
        }
        if (rc == AM_ENOTFOUND) return rc;
        if (!t->mapfull || !t->explicit_ || attempt >= MAX_RETRIES) return t->explicit_ ? txn_dead(t, rc) : rc;
        rc = txn_regrow(t, klen);
        if (rc) return txn_dead(t, rc);
    }
}

int store_txn_get(StoreTxn *t, const char *db, const void *key, size_t klen, const void **val, size_t *vlen) {
    *val = NULL;
    if (vlen) *vlen = 0;
    AmDb d;
    int rc = db_index(t->s, db, &d);
    if (!rc) rc = key_check(t->s, d, key, klen);
    if (rc) return rc;
    if ((rc = txn_usable(t))) return rc;
    MDB_val v;
    rc = raw_get(t->txn, t->s, d, key, klen, &v);
    if (rc == AM_ENOTFOUND) return rc;
    if (rc) return t->explicit_ ? txn_dead(t, rc) : rc;
    *val = v.mv_data;
    if (vlen) *vlen = v.mv_size;
    return AM_OK;
}

static void txn_free(StoreTxn *t) {
    free(t->log);
    free(t->errmsg);
    free(t);
}

void store_txn_abort(StoreTxn *t) {
    if (!t) return;
    AM_ASSERT(t->explicit_ && "store_txn_abort on the txn of a store_write callback");
    if (t->txn) txn_close(t->s, t->txn, 1);
    txn_free(t);
}

int store_txn_commit(StoreTxn *t) {
    AM_ASSERT(t != NULL && t->explicit_ && "store_txn_commit on the txn of a store_write callback");
    Store *s = t->s;
    int rc = txn_usable(t);
    for (int attempt = 0; rc == AM_OK; attempt++) {
        int mrc = txn_commit_raw(s, t->txn);
        t->txn = NULL;
        if (mrc == MDB_SUCCESS) break;
        if (mrc != MDB_MAP_FULL || attempt >= MAX_RETRIES) {
            rc = mdb_fail(s, mrc, "commit", -1, NULL, 0);
            break;
        }
        rc = txn_regrow(t, 0);
    }
    if (t->txn) txn_close(s, t->txn, 1);
    t->txn = NULL;
    txn_free(t);
    return rc;
}

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
            return am_error(AM_ENOTFOUND, "no amalgam store in '%s' (database '%s' missing)\n"
                            "HINT: import or create a model first, or check --store / AMALGAM_STORE",
                            s->dir, am_db_names[i]);
        if (rc) return mdb_fail(s, rc, "open database", i, NULL, 0);
    }
    static const char fkey[] = "format";
    MDB_val v;
    int rc = raw_get(t->txn, s, AM_DB_META, fkey, strlen(fkey), &v);
    if (rc == AM_ENOTFOUND) {
        am_clearerror();
        c->format = AM_STORE_FORMAT;
        if (!write) return AM_OK;
        char buf[64];
        int n = snprintf(buf, sizeof buf, "{\"format\":%d}", AM_STORE_FORMAT);
        return raw_put(t, AM_DB_META, fkey, strlen(fkey), buf, (size_t)n, 0, NULL);
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
    if (rdonly) {
        char *p = xasprintf("%s/data.mdb", dir);
        struct stat st;
        int missing = stat(p, &st) != 0;
        free(p);
        if (missing)
            return am_error(AM_ENOTFOUND, "no amalgam store in '%s'\n"
                            "HINT: import or create a model first, or check --store / AMALGAM_STORE", dir);
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

    int rc = mdb_env_create(&s->env);
    if (rc) {
        s->env = NULL;
        rc = mdb_fail(s, rc, "create environment", -1, NULL, 0);
        goto fail;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, MAX_DBS)) || (rc = mdb_env_set_mapsize(s->env, mapsize))) {
        rc = mdb_fail(s, rc, "configure environment", -1, NULL, 0);
        goto fail;
    }
    rc = mdb_env_open(s->env, dir, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0664);
    if (rc) {
        rc = mdb_fail(s, rc, "open environment", -1, NULL, 0);
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
        rc = mdb_fail(s, rc, "set map size", -1, NULL, 0);
        goto fail;
    }

    InitCtx ic = {0};
    if (rdonly) {
        StoreTxn t = {.s = s};
        rc = txn_open(s, 0, &t.txn);
        if (rc) goto fail;
        rc = open_dbs(&t, &ic);
        if (rc) {
            txn_close(s, t.txn, 0);
            goto fail;
        }
        int mrc = mdb_txn_commit(t.txn);   /* keeps the dbi handles */
        gate_leave(s, 0);
        if (mrc) {
            rc = mdb_fail(s, mrc, "open databases", -1, NULL, 0);
            goto fail;
        }
    } else {
        rc = store_write(s, 0, open_dbs, &ic);
        if (rc) goto fail;
    }
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
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->dir);
    free(s);
}

int store_stat(Store *s, StoreStat *st) {
    memset(st, 0, sizeof *st);
    MDB_txn *txn;
    int rc = txn_open(s, 0, &txn);
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
        if (mrc) rc = mdb_fail(s, mrc, "stat", i, NULL, 0);
        else st->entries[i] = ms.ms_entries;
    }
    txn_close(s, txn, 0);
    return rc;
}

/* ---------------------------------------------------------------- argument checks */

static int db_index(const Store *s, const char *db, AmDb *out) {
    for (int i = 0; db && i < AM_DB_COUNT; i++)
        if (strcmp(db, am_db_names[i]) == 0) {
            *out = (AmDb)i;
            return AM_OK;
        }
    return am_error(AM_EINVAL, "store %s: unknown database '%s' (models, tensors, names, vocab, runs, metrics, "
                    "results, datasets, meta)", s->dir, db ? db : "(null)");
}

static int key_check(const Store *s, AmDb db, const void *key, size_t klen) {
    if (!key || klen == 0 || klen > s->maxkey)
        return am_error(AM_EINVAL, "store %s: %s: key of %zu bytes (must be 1..%zu)", s->dir, am_db_names[db], klen,
                        s->maxkey);
    return AM_OK;
}

static int is_hex_id(const char *id) {
    if (!id) return 0;
    for (int i = 0; i < AM_ID_HEX; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return 0;
    return id[AM_ID_HEX] == 0;
}

static int id_check(const Store *s, const char *id) {
    if (is_hex_id(id)) return AM_OK;
    return am_error(AM_EINVAL, "store %s: '%s' is not a model id (32 lowercase hex chars; resolve names with "
                    "store_resolve)", s->dir, id ? id : "(null)");
}

static int name_check(const char *name) {
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

/* ---------------------------------------------------------------- models: ids and meta */

/* Shortest decimal that reads back as the same float ("1e-12", "0.1"). */
static void fmt_float(char *buf, size_t cap, float f) {
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) return;
    }
}

static int config_finite(const EncoderConfig *c) {
    return isfinite(c->layer_norm_eps) && isfinite(c->hidden_dropout) && isfinite(c->attention_dropout) &&
           isfinite(c->initializer_range);
}

/* The canonical config string hashed into the id: fixed key order, shortest floats. */
static void config_canonical(const EncoderConfig *c, char *buf, size_t cap) {
    char eps[32], hd[32], ad[32], ir[32];
    fmt_float(eps, sizeof eps, c->layer_norm_eps);
    fmt_float(hd, sizeof hd, c->hidden_dropout);
    fmt_float(ad, sizeof ad, c->attention_dropout);
    fmt_float(ir, sizeof ir, c->initializer_range);
    snprintf(buf, cap,
             "{\"attention_probs_dropout_prob\":%s,\"has_pooler\":%d,\"hidden_dropout_prob\":%s,"
             "\"hidden_size\":%d,\"initializer_range\":%s,\"intermediate_size\":%d,\"layer_norm_eps\":%s,"
             "\"max_position_embeddings\":%d,\"num_attention_heads\":%d,\"num_hidden_layers\":%d,"
             "\"pad_token_id\":%d,\"type_vocab_size\":%d,\"vocab_size\":%d}",
             ad, c->has_pooler ? 1 : 0, hd, c->hidden_size, ir, c->intermediate_size, eps, c->max_position,
             c->num_heads, c->num_layers, c->pad_token_id, c->type_vocab_size, c->vocab_size);
}

static void hash_hex(const void *data, size_t n, char out[AM_ID_HEX + 1]) {
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, data, n);
    am_hasher_hex(h, out);
    am_hasher_delete(h);
}

/* id = XXH3-128("amalgam-model-v1" 0, canonical config 0, per tensor: name 0, u32 ndim,
 *                u64 shape[ndim], f32 data; "vocab" 0, u64 length, vocab bytes), all LE. */
static void model_hash(const Model *m, const char *vocab, size_t vocab_len, char id_out[AM_ID_HEX + 1]) {
    AmHasher *h = am_hasher_new();
    char cfg[1024];
    config_canonical(&m->cfg, cfg, sizeof cfg);
    am_hasher_update(h, "amalgam-model-v1", 17);
    am_hasher_update(h, cfg, strlen(cfg) + 1);
    for (int i = 0; i < m->tab.n; i++) {
        const ParamInfo *p = &m->tab.t[i];
        uint8_t dims[4 + 32];
        am_le32_put(dims, (uint32_t)p->ndim);
        for (int d = 0; d < p->ndim; d++) am_le64_put(dims + 4 + 8 * d, (uint64_t)p->shape[d]);
        am_hasher_update(h, p->name, strlen(p->name) + 1);
        am_hasher_update(h, dims, 4 + 8 * (size_t)p->ndim);
        am_hasher_update(h, m->params + p->offset, p->numel * sizeof(float));
    }
    uint8_t vl[8];
    am_le64_put(vl, (uint64_t)vocab_len);
    am_hasher_update(h, "vocab", 6);
    am_hasher_update(h, vl, 8);
    if (vocab_len) am_hasher_update(h, vocab, vocab_len);
    am_hasher_hex(h, id_out);
    am_hasher_delete(h);
}

void store_model_id(const Model *m, const char *vocab, size_t vocab_len, char id_out[AM_ID_HEX + 1]) {
    model_hash(m, vocab, vocab ? vocab_len : 0, id_out);
}

static void add_float(cJSON *o, const char *key, float f) {
    char b[32];
    fmt_float(b, sizeof b, f);
    cJSON_AddNumberToObject(o, key, strtod(b, NULL));
}

static cJSON *config_to_json(const EncoderConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_type", "bert");
    cJSON_AddStringToObject(o, "hidden_act", "gelu");
    cJSON_AddStringToObject(o, "position_embedding_type", "absolute");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position);
    cJSON_AddNumberToObject(o, "type_vocab_size", c->type_vocab_size);
    add_float(o, "layer_norm_eps", c->layer_norm_eps);
    add_float(o, "hidden_dropout_prob", c->hidden_dropout);
    add_float(o, "attention_probs_dropout_prob", c->attention_dropout);
    cJSON_AddNumberToObject(o, "pad_token_id", c->pad_token_id);
    add_float(o, "initializer_range", c->initializer_range);
    if (c->has_mlm_head) cJSON_AddBoolToObject(o, "has_mlm_head", 1); /* absent = no head (older stores) */
    return o;
}

static int json_int(const cJSON *o, const char *key, int *dst, int required, const char *id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return required ? am_error(AM_EFORMAT, "model %s: meta config lacks '%s'", id, key) : AM_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
        return am_error(AM_EFORMAT, "model %s: meta config '%s' is not an integer", id, key);
    *dst = (int)v->valuedouble;
    return AM_OK;
}

static int json_float(const cJSON *o, const char *key, float *dst, const char *id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return AM_OK;
    if (!cJSON_IsNumber(v)) return am_error(AM_EFORMAT, "model %s: meta config '%s' is not a number", id, key);
    *dst = (float)v->valuedouble;
    return AM_OK;
}

/* Rebuild the EncoderConfig (and the vocab hash) from a parsed meta object. */
static int config_from_meta(const cJSON *meta, const char *id, EncoderConfig *c, char vhash[AM_ID_HEX + 1],
                            int *n_tensors) {
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    if (!cJSON_IsNumber(fmt)) return am_error(AM_EFORMAT, "model %s: meta has no 'format'", id);
    if (fmt->valueint > AM_STORE_FORMAT)
        return am_error(AM_EFORMAT, "model %s: meta format %d is newer than this amalgam supports (%d)\n"
                        "HINT: use a newer amalgam build", id, fmt->valueint, AM_STORE_FORMAT);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(meta, "config");
    if (!cJSON_IsObject(cfg)) return am_error(AM_EFORMAT, "model %s: meta has no 'config' object", id);
    encoder_config_default(c);
    int rc;
    if ((rc = json_int(cfg, "vocab_size", &c->vocab_size, 1, id)) ||
        (rc = json_int(cfg, "hidden_size", &c->hidden_size, 1, id)) ||
        (rc = json_int(cfg, "num_hidden_layers", &c->num_layers, 1, id)) ||
        (rc = json_int(cfg, "num_attention_heads", &c->num_heads, 1, id)) ||
        (rc = json_int(cfg, "intermediate_size", &c->intermediate_size, 1, id)) ||
        (rc = json_int(cfg, "max_position_embeddings", &c->max_position, 0, id)) ||
        (rc = json_int(cfg, "type_vocab_size", &c->type_vocab_size, 0, id)) ||
        (rc = json_int(cfg, "pad_token_id", &c->pad_token_id, 0, id)) ||
        (rc = json_float(cfg, "layer_norm_eps", &c->layer_norm_eps, id)) ||
        (rc = json_float(cfg, "hidden_dropout_prob", &c->hidden_dropout, id)) ||
        (rc = json_float(cfg, "attention_probs_dropout_prob", &c->attention_dropout, id)) ||
        (rc = json_float(cfg, "initializer_range", &c->initializer_range, id)))
        return rc;
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(meta, "has_pooler");
    c->has_pooler = hp ? cJSON_IsTrue(hp) : 1;
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(cfg, "has_mlm_head");
    if (mh && !cJSON_IsBool(mh)) return am_error(AM_EFORMAT, "model %s: meta config 'has_mlm_head' is not a boolean", id);
    c->has_mlm_head = cJSON_IsTrue(mh);
    const cJSON *vh = cJSON_GetObjectItemCaseSensitive(meta, "vocab");
    vhash[0] = 0;
    if (cJSON_IsString(vh)) {
        if (!is_hex_id(vh->valuestring)) return am_error(AM_EFORMAT, "model %s: meta 'vocab' is not a hash", id);
        memcpy(vhash, vh->valuestring, AM_ID_HEX + 1);
    } else if (vh && !cJSON_IsNull(vh)) {
        return am_error(AM_EFORMAT, "model %s: meta 'vocab' is not a string", id);
    }
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(meta, "n_tensors");
    *n_tensors = cJSON_IsNumber(nt) ? nt->valueint : -1;
    return AM_OK;
}

static const char *const reserved_keys[] = {"format", "id", "config", "has_pooler", "vocab", "n_params", "n_tensors"};

static int is_reserved(const char *k) {
    for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++)
        if (strcmp(k, reserved_keys[i]) == 0) return 1;
    return 0;
}

/* Build the stored meta JSON from the caller's object and the model.
 * OUT: *json malloc'd; *name malloc'd copy of the caller's "name" or NULL. */
static int meta_build(const Model *m, const char *id, const char *caller, const char *vhash, char **json,
                      char **name) {
    *json = NULL;
    *name = NULL;
    cJSON *in = NULL;
    if (caller && *caller) {
        in = cJSON_Parse(caller);
        if (!cJSON_IsObject(in)) {
            cJSON_Delete(in);
            return am_error(AM_EINVAL, "model meta must be a JSON object, got: %.80s", caller);
        }
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "name");
        if (nm && !cJSON_IsNull(nm)) {
            int rc = cJSON_IsString(nm) ? name_check(nm->valuestring)
                                        : am_error(AM_EINVAL, "model meta 'name' must be a string");
            if (rc) {
                cJSON_Delete(in);
                return rc;
            }
            *name = xstrdup(nm->valuestring);
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format", AM_STORE_FORMAT);
    cJSON_AddStringToObject(o, "id", id);
    int has_created = 0;
    if (in) {
        cJSON *it = in->child;
        while (it) {
            cJSON *next = it->next;
            if (it->string && !is_reserved(it->string)) {
                if (strcmp(it->string, "created") == 0) has_created = 1;
                cJSON_AddItemToObject(o, it->string, cJSON_DetachItemViaPointer(in, it));
            }
            it = next;
        }
        cJSON_Delete(in);
    }
    cJSON_AddItemToObject(o, "config", config_to_json(&m->cfg));
    cJSON_AddBoolToObject(o, "has_pooler", m->cfg.has_pooler != 0);
    if (vhash) cJSON_AddStringToObject(o, "vocab", vhash);
    else cJSON_AddNullToObject(o, "vocab");
    cJSON_AddNumberToObject(o, "n_params", (double)m->tab.total);
    cJSON_AddNumberToObject(o, "n_tensors", m->tab.n);
    if (!has_created) {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(o, "created", ts);
    }
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    AM_ASSERT(*json != NULL);
    return AM_OK;
}

/* ---------------------------------------------------------------- models: put */

typedef struct {
    const Model *m;
    const char *id;
    const char *meta;
    const char *vocab;
    size_t vocab_len;
    const char *vhash;
    const char *name;
    int existed;
} PutCtx;

static int model_put_fn(StoreTxn *t, void *ud) {
    PutCtx *c = ud;
    Store *s = t->s;
    const Model *m = c->m;
    MDB_val v;
    int rc = raw_get(t->txn, s, AM_DB_MODELS, c->id, AM_ID_HEX, &v);
    c->existed = rc == AM_OK;
    if (rc && rc != AM_ENOTFOUND) return rc;
    if (!c->existed) {
        if (c->vhash) {
            rc = raw_put(t, AM_DB_VOCAB, c->vhash, AM_ID_HEX, c->vocab, c->vocab_len, MDB_NOOVERWRITE, NULL);
            if (rc && rc != AM_EEXIST) return rc;   /* EEXIST: shared with another model */
        }
        uint8_t key[AM_ID_HEX + 1 + AM_NAME_MAX];
        for (int i = 0; i < m->tab.n; i++) {
            const ParamInfo *p = &m->tab.t[i];
            size_t klen = store_key_pair(key, sizeof key, c->id, p->name);
            AM_ASSERT(klen > 0);
            size_t bytes = p->numel * sizeof(float);
            void *dst;
            /* MDB_RESERVE: LMDB hands us the value's space; header and data go straight in */
            rc = raw_put(t, AM_DB_TENSORS, key, klen, NULL, AM_TENSOR_HDR_SIZE + bytes, MDB_RESERVE, &dst);
            if (rc) return rc;
            am_tensor_header_encode(dst, p->ndim, p->shape);
            memcpy((uint8_t *)dst + AM_TENSOR_HDR_SIZE, m->params + p->offset, bytes);
            hook(s, "model_put:tensor", i);
        }
        rc = raw_put(t, AM_DB_MODELS, c->id, AM_ID_HEX, c->meta, strlen(c->meta), 0, NULL);
        if (rc) return rc;
    }
    if (c->name) {
        rc = raw_put(t, AM_DB_NAMES, c->name, strlen(c->name), c->id, AM_ID_HEX, 0, NULL);
        if (rc) return rc;
    }
    return AM_OK;
}

int store_model_put(Store *s, const Model *m, const char *meta_json, const char *vocab, size_t vocab_len,
                    char id_out[AM_ID_HEX + 1]) {
    id_out[0] = 0;
    if (!config_finite(&m->cfg))
        return am_error(AM_EINVAL, "store %s: model config has a non-finite float", s->dir);
    if (!vocab) vocab_len = 0;
    char id[AM_ID_HEX + 1], vhash[AM_ID_HEX + 1];
    model_hash(m, vocab, vocab_len, id);
    if (vocab_len) hash_hex(vocab, vocab_len, vhash);
    char *meta, *name;
    int rc = meta_build(m, id, meta_json, vocab_len ? vhash : NULL, &meta, &name);
    if (rc) return rc;
    PutCtx c = {.m = m, .id = id, .meta = meta, .vocab = vocab, .vocab_len = vocab_len,
                .vhash = vocab_len ? vhash : NULL, .name = name};
    /* size hint: every tensor in its own overflow pages, plus meta and vocab */
    size_t hint = strlen(meta) + vocab_len + 2 * s->psize;
    for (int i = 0; i < m->tab.n; i++)
        hint += (AM_TENSOR_HDR_SIZE + 16 + m->tab.t[i].numel * sizeof(float) + s->psize - 1) / s->psize * s->psize + 128;
    rc = store_write(s, hint, model_put_fn, &c);
    free(meta);
    free(name);
    if (rc) return am_error_wrap(rc, "storing model %s", id);
    memcpy(id_out, id, AM_ID_HEX + 1);
    if (c.existed) am_log(AM_LOG_INFO, "store %s: model %s already stored", s->dir, id);
    return AM_OK;
}

/* ---------------------------------------------------------------- models: get */

static char *dup_val(const MDB_val *v) {
    char *p = malloc(v->mv_size + 1);
    if (!p) return NULL;
    memcpy(p, v->mv_data, v->mv_size);
    p[v->mv_size] = 0;
    return p;
}

static int unknown_id(const Store *s, const char *id) {
    return am_error(AM_ENOTFOUND, "unknown model '%s' (see amalgam ls models)", id);
}

int store_model_get(Store *s, const char *id, Model **out, char **meta_json, char **vocab, size_t *vocab_len) {
    *out = NULL;
    if (meta_json) *meta_json = NULL;
    if (vocab) *vocab = NULL;
    if (vocab_len) *vocab_len = 0;
    int rc = id_check(s, id);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = txn_open(s, 0, &txn))) return rc;
    Model *m = NULL;
    cJSON *meta = NULL;
    char *meta_copy = NULL, *vocab_copy = NULL;
    MDB_cursor *cur = NULL;
    MDB_val v, vv = {0, NULL};

    rc = raw_get(txn, s, AM_DB_MODELS, id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) rc = unknown_id(s, id);
    if (rc) goto leave;
    meta = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (!cJSON_IsObject(meta)) {
        rc = am_error(AM_EFORMAT, "model %s: meta is not a JSON object", id);
        goto leave;
    }
    if (meta_json && !(meta_copy = dup_val(&v))) {
        rc = am_error(AM_ENOMEM, "model %s: cannot allocate the meta copy", id);
        goto leave;
    }
    EncoderConfig cfg;
    char vhash[AM_ID_HEX + 1];
    int n_tensors = -1;
    if ((rc = config_from_meta(meta, id, &cfg, vhash, &n_tensors))) goto leave;
    if ((rc = model_new(&cfg, &m))) {
        rc = am_error_wrap(rc, "model %s: config in meta", id);
        goto leave;
    }
    /* every tensor of the table, copied from the map into the flat buffer */
    uint8_t key[AM_ID_HEX + 1 + AM_NAME_MAX];
    for (int i = 0; i < m->tab.n; i++) {
        const ParamInfo *p = &m->tab.t[i];
        size_t klen = store_key_pair(key, sizeof key, id, p->name);
        MDB_val k = {klen, key};
        int mrc = mdb_get(txn, s->dbi[AM_DB_TENSORS], &k, &v);
        if (mrc == MDB_NOTFOUND) {
            rc = am_error(AM_EFORMAT, "model %s: tensor '%s' missing from the store", id, p->name);
            goto leave;
        }
        if (mrc) {
            rc = mdb_fail(s, mrc, "get", AM_DB_TENSORS, key, klen);
            goto leave;
        }
        AmTensorHeader h;
        const char *why = am_tensor_header_decode(v.mv_data, v.mv_size, &h);
        if (why) {
            rc = am_error(AM_EFORMAT, "model %s: tensor '%s': %s", id, p->name, why);
            goto leave;
        }
        int same = h.ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = h.shape[d] == p->shape[d];
        if (!same) {
            char got[96], want[96];
            int o = 0, w = 0;
            for (int d = 0; d < h.ndim; d++) o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", d ? ", " : "", (long long)h.shape[d]);
            for (int d = 0; d < p->ndim; d++) w += snprintf(want + w, sizeof want - (size_t)w, "%s%lld", d ? ", " : "", (long long)p->shape[d]);
            rc = am_error(AM_EFORMAT, "model %s: tensor '%s' has shape [%s] in the store but the config needs [%s]",
                          id, p->name, got, want);
            goto leave;
        }
        memcpy(m->params + p->offset, (const uint8_t *)v.mv_data + h.hdr_size, p->numel * sizeof(float));
    }
    /* no stray tensors under this id (e.g. a pooler the config does not have) */
    int mrc = mdb_cursor_open(txn, s->dbi[AM_DB_TENSORS], &cur);
    if (mrc) {
        rc = mdb_fail(s, mrc, "cursor", AM_DB_TENSORS, NULL, 0);
        goto leave;
    }
    MDB_val k = {AM_ID_HEX + 1, key};
    memcpy(key, id, AM_ID_HEX);
    key[AM_ID_HEX] = 0;
    int count = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < AM_ID_HEX + 1 || memcmp(k.mv_data, key, AM_ID_HEX + 1) != 0) break;
        count++;
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        rc = mdb_fail(s, mrc, "cursor", AM_DB_TENSORS, NULL, 0);
        goto leave;
    }
    if (count != m->tab.n || (n_tensors >= 0 && n_tensors != m->tab.n)) {
        rc = am_error(AM_EFORMAT, "model %s: %d tensors in the store, meta says %d, the config needs %d", id, count,
                      n_tensors, m->tab.n);
        goto leave;
    }
    if (vhash[0]) {
        rc = raw_get(txn, s, AM_DB_VOCAB, vhash, AM_ID_HEX, &vv);
        if (rc == AM_ENOTFOUND) rc = am_error(AM_EFORMAT, "model %s: its vocab %s is missing from the store", id, vhash);
        if (rc) goto leave;
    }
    char check[AM_ID_HEX + 1];
    model_hash(m, vv.mv_data, vv.mv_size, check);
    if (strcmp(check, id) != 0) {
        rc = am_error(AM_EFORMAT, "model %s: content hash is %s: the stored tensors or vocab are corrupted", id, check);
        goto leave;
    }
    if (vocab && vhash[0] && !(vocab_copy = dup_val(&vv))) {
        rc = am_error(AM_ENOMEM, "model %s: cannot allocate the vocab copy", id);
        goto leave;
    }
    rc = AM_OK;
leave:
    if (cur) mdb_cursor_close(cur);
    txn_close(s, txn, 0);
    cJSON_Delete(meta);
    if (rc) {
        model_delete(m);
        free(meta_copy);
        free(vocab_copy);
        return rc;
    }
    *out = m;
    if (meta_json) *meta_json = meta_copy;
    if (vocab && vocab_copy) {
        *vocab = vocab_copy;
        if (vocab_len) *vocab_len = vv.mv_size;
    }
    return AM_OK;
}

int store_model_meta(Store *s, const char *id, char **json) {
    *json = NULL;
    int rc = id_check(s, id);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = txn_open(s, 0, &txn))) return rc;
    MDB_val v;
    rc = raw_get(txn, s, AM_DB_MODELS, id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) rc = unknown_id(s, id);
    if (!rc && !(*json = dup_val(&v))) rc = am_error(AM_ENOMEM, "model %s: cannot allocate the meta copy", id);
    txn_close(s, txn, 0);
    return rc;
}

/* ---------------------------------------------------------------- models: update, delete, list */

typedef struct { const char *id; const cJSON *patch; } MetaCtx;

static int meta_update_fn(StoreTxn *t, void *ud) {
    MetaCtx *c = ud;
    MDB_val v;
    int rc = raw_get(t->txn, t->s, AM_DB_MODELS, c->id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) return unknown_id(t->s, c->id);
    if (rc) return rc;
    cJSON *meta = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return am_error(AM_EFORMAT, "model %s: meta is not a JSON object", c->id);
    }
    for (const cJSON *it = c->patch->child; it; it = it->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(meta, it->string);
        if (!cJSON_IsNull(it)) cJSON_AddItemToObject(meta, it->string, cJSON_Duplicate(it, 1));
    }
    char *js = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    AM_ASSERT(js != NULL);
    rc = raw_put(t, AM_DB_MODELS, c->id, AM_ID_HEX, js, strlen(js), 0, NULL);
    free(js);
    return rc;
}

int store_model_meta_update(Store *s, const char *id, const char *patch_json) {
    int rc = id_check(s, id);
    if (rc) return rc;
    cJSON *patch = patch_json ? cJSON_Parse(patch_json) : NULL;
    if (!cJSON_IsObject(patch)) {
        cJSON_Delete(patch);
        return am_error(AM_EINVAL, "meta update must be a JSON object, got: %.80s", patch_json ? patch_json : "(null)");
    }
    for (const cJSON *it = patch->child; it; it = it->next)
        if (is_reserved(it->string)) {
            rc = am_error(AM_EINVAL, "meta update: key '%s' is reserved (it is derived from the model)", it->string);
            cJSON_Delete(patch);
            return rc;
        }
    MetaCtx c = {id, patch};
    rc = store_write(s, strlen(patch_json) + 4096, meta_update_fn, &c);
    cJSON_Delete(patch);
    return rc;
}

/* Delete every key of db starting with prefix (cursor walk inside the txn). */
static int del_prefix(StoreTxn *t, AmDb db, const void *prefix, size_t plen, const void *match_val, size_t mlen) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[db], &cur);
    if (mrc) return mdb_fail(t->s, mrc, "cursor", (int)db, NULL, 0);
    MDB_val k = {plen, (void *)prefix}, v;
    mrc = plen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)) {
            mrc = MDB_NOTFOUND;   /* past the prefix: done */
            break;
        }
        if (!match_val || (v.mv_size == mlen && memcmp(v.mv_data, match_val, mlen) == 0)) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc) break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (mrc == MDB_NOTFOUND) return AM_OK;
    if (mrc == MDB_MAP_FULL) {
        t->mapfull = 1;
        t->need = 0;
    }
    return mdb_fail(t->s, mrc, "delete range", (int)db, prefix, plen);
}

static int model_delete_fn(StoreTxn *t, void *ud) {
    const char *id = ud;
    Store *s = t->s;
    MDB_val v;
    int rc = raw_get(t->txn, s, AM_DB_MODELS, id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) return unknown_id(s, id);
    if (rc) return rc;
    char vhash[AM_ID_HEX + 1] = {0};
    cJSON *meta = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    const cJSON *vh = cJSON_GetObjectItemCaseSensitive(meta, "vocab");
    if (cJSON_IsString(vh) && is_hex_id(vh->valuestring)) memcpy(vhash, vh->valuestring, AM_ID_HEX + 1);
    cJSON_Delete(meta);

    uint8_t prefix[AM_ID_HEX + 1];
    memcpy(prefix, id, AM_ID_HEX);
    prefix[AM_ID_HEX] = 0;
    if ((rc = del_prefix(t, AM_DB_TENSORS, prefix, sizeof prefix, NULL, 0))) return rc;
    if ((rc = raw_del(t, AM_DB_MODELS, id, AM_ID_HEX))) return rc;
    if ((rc = del_prefix(t, AM_DB_NAMES, NULL, 0, id, AM_ID_HEX))) return rc;
    if (!vhash[0]) return AM_OK;
    /* drop the vocab unless another model's meta mentions it */
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(t->txn, s->dbi[AM_DB_MODELS], &cur);
    if (mrc) return mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
    MDB_val k;
    int shared = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && !shared;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        shared = memmem(v.mv_data, v.mv_size, vhash, AM_ID_HEX) != NULL;
    mdb_cursor_close(cur);
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) return mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
    if (shared) return AM_OK;
    rc = raw_del(t, AM_DB_VOCAB, vhash, AM_ID_HEX);
    return rc == AM_ENOTFOUND ? AM_OK : rc;
}

int store_model_delete(Store *s, const char *id) {
    int rc = id_check(s, id);
    if (rc) return rc;
    char idc[AM_ID_HEX + 1];
    memcpy(idc, id, sizeof idc);
    return store_write(s, 0, model_delete_fn, idc);
}

int store_model_list(Store *s, StoreModelFn cb, void *ud) {
    MDB_txn *txn;
    int rc = txn_open(s, 0, &txn);
    if (rc) return rc;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[AM_DB_MODELS], &cur);
    if (mrc) {
        txn_close(s, txn, 0);
        return mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
    }
    char *buf = NULL;
    size_t cap = 0;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != AM_ID_HEX) continue;   /* not a model id: ignore */
        char id[AM_ID_HEX + 1];
        memcpy(id, k.mv_data, AM_ID_HEX);
        id[AM_ID_HEX] = 0;
        if (v.mv_size + 1 > cap) {
            cap = v.mv_size + 1;
            buf = xrealloc(buf, cap);
        }
        memcpy(buf, v.mv_data, v.mv_size);
        buf[v.mv_size] = 0;
        int r = cb(ud, id, buf);
        if (r) {
            rc = r < 0 ? r : AM_OK;
            mrc = MDB_SUCCESS;
            break;
        }
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) rc = mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
    free(buf);
    mdb_cursor_close(cur);
    txn_close(s, txn, 0);
    return rc;
}

/* ---------------------------------------------------------------- names */

typedef struct { const char *name, *id; } NameCtx;

static int name_set_fn(StoreTxn *t, void *ud) {
    NameCtx *c = ud;
    MDB_val v;
    int rc = raw_get(t->txn, t->s, AM_DB_MODELS, c->id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) return unknown_id(t->s, c->id);
    if (rc) return rc;
    return raw_put(t, AM_DB_NAMES, c->name, strlen(c->name), c->id, AM_ID_HEX, 0, NULL);
}

int store_name_set(Store *s, const char *name, const char *id) {
    int rc = name_check(name);
    if (!rc) rc = id_check(s, id);
    if (rc) return rc;
    NameCtx c = {name, id};
    return store_write(s, 0, name_set_fn, &c);
}

static int name_del_fn(StoreTxn *t, void *ud) {
    const char *name = ud;
    int rc = raw_del(t, AM_DB_NAMES, name, strlen(name));
    if (rc == AM_ENOTFOUND) return am_error(AM_ENOTFOUND, "unknown name '%s' (see amalgam ls models)", name);
    return rc;
}

int store_name_del(Store *s, const char *name) {
    int rc = name_check(name);
    if (rc) return rc;
    return store_write(s, 0, name_del_fn, (void *)name);
}

int store_resolve(Store *s, const char *q, char id_out[AM_ID_HEX + 1]) {
    id_out[0] = 0;
    if (!q || !*q) return am_error(AM_EINVAL, "empty model name");
    size_t qn = strlen(q);
    if (qn > s->maxkey) return am_error(AM_ENOTFOUND, "unknown model '%.80s...' (see amalgam ls models)", q);
    MDB_txn *txn;
    int rc = txn_open(s, 0, &txn);
    if (rc) return rc;
    MDB_val k = {qn, (void *)q}, v;
    int mrc = mdb_get(txn, s->dbi[AM_DB_NAMES], &k, &v);
    if (mrc == MDB_SUCCESS) {
        if (v.mv_size == AM_ID_HEX) {
            memcpy(id_out, v.mv_data, AM_ID_HEX);
            id_out[AM_ID_HEX] = 0;
        }
        rc = is_hex_id(id_out) ? AM_OK : am_error(AM_EFORMAT, "store %s: names['%s'] is not a model id", s->dir, q);
        txn_close(s, txn, 0);
        return rc;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = mdb_fail(s, mrc, "get", AM_DB_NAMES, q, qn);
        txn_close(s, txn, 0);
        return rc;
    }
    /* an id prefix? */
    char lc[AM_ID_HEX + 1];
    int hex = qn >= 4 && qn <= AM_ID_HEX;
    for (size_t i = 0; hex && i < qn; i++) {
        lc[i] = (char)tolower((unsigned char)q[i]);
        hex = isxdigit((unsigned char)q[i]);
    }
    int n = 0;
    char cand[4][AM_ID_HEX + 1];
    if (hex) {
        lc[qn] = 0;
        MDB_cursor *cur;
        mrc = mdb_cursor_open(txn, s->dbi[AM_DB_MODELS], &cur);
        if (mrc) {
            rc = mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
            txn_close(s, txn, 0);
            return rc;
        }
        k.mv_size = qn;
        k.mv_data = lc;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size < qn || memcmp(k.mv_data, lc, qn) != 0) break;
            if (k.mv_size != AM_ID_HEX) continue;
            if (n < 4) {
                memcpy(cand[n], k.mv_data, AM_ID_HEX);
                cand[n][AM_ID_HEX] = 0;
            }
            n++;
        }
        mdb_cursor_close(cur);
        if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
            rc = mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
            txn_close(s, txn, 0);
            return rc;
        }
    }
    txn_close(s, txn, 0);
    if (n == 0) return am_error(AM_ENOTFOUND, "unknown model '%s' (see amalgam ls models)", q);
    if (n > 1) {
        char list[4 * (AM_ID_HEX + 2) + 8];
        size_t o = 0;
        for (int i = 0; i < n && i < 4; i++) o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", cand[i]);
        if (n > 4) snprintf(list + o, sizeof list - o, ", ...");
        return am_error(AM_EINVAL, "model id prefix '%s' is ambiguous, %d models match: %s (give more characters)",
                        q, n, list);
    }
    memcpy(id_out, cand[0], AM_ID_HEX + 1);
    return AM_OK;
}

/* ---------------------------------------------------------------- generic key/values */

typedef struct { AmDb db; const void *key; size_t klen; const void *val; size_t vlen; } KvCtx;

static int put_fn(StoreTxn *t, void *ud) {
    KvCtx *c = ud;
    return raw_put(t, c->db, c->key, c->klen, c->val, c->vlen, 0, NULL);
}

static int del_fn(StoreTxn *t, void *ud) {
    KvCtx *c = ud;
    return raw_del(t, c->db, c->key, c->klen);
}

int store_put(Store *s, const char *db, const void *key, size_t klen, const void *val, size_t vlen) {
    KvCtx c = {0, key, klen, val, vlen};
    int rc = db_index(s, db, &c.db);
    if (!rc) rc = key_check(s, c.db, key, klen);
    if (rc) return rc;
    return store_write(s, klen + vlen, put_fn, &c);
}

int store_del(Store *s, const char *db, const void *key, size_t klen) {
    KvCtx c = {0, key, klen, NULL, 0};
    int rc = db_index(s, db, &c.db);
    if (!rc) rc = key_check(s, c.db, key, klen);
    if (rc) return rc;
    return store_write(s, 0, del_fn, &c);
}

int store_get(Store *s, const char *db, const void *key, size_t klen, void **val, size_t *vlen) {
    *val = NULL;
    if (vlen) *vlen = 0;
    AmDb d;
    int rc = db_index(s, db, &d);
    if (!rc) rc = key_check(s, d, key, klen);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = txn_open(s, 0, &txn))) return rc;
    MDB_val v;
    rc = raw_get(txn, s, d, key, klen, &v);
    if (!rc) {
        char *p = dup_val(&v);
        if (!p) {
            char kb[256];
            rc = am_error(AM_ENOMEM, "store %s: get %s[%s]: cannot allocate %zu bytes", s->dir, db,
                          fmt_key(kb, sizeof kb, key, klen), v.mv_size);
        } else {
            *val = p;
            if (vlen) *vlen = v.mv_size;
        }
    }
    txn_close(s, txn, 0);
    return rc;
}

int store_iter(Store *s, const char *db, const void *prefix, size_t plen, StoreIterFn cb, void *ud) {
    return store_iter_ex(s, db, prefix, plen, 0, cb, ud);
}

int store_iter_ex(Store *s, const char *db, const void *prefix, size_t plen, unsigned flags, StoreIterFn cb,
                  void *ud) {
    AmDb d;
    int rc = db_index(s, db, &d);
    if (rc) return rc;
    if (plen > s->maxkey) return am_error(AM_EINVAL, "store %s: %s: prefix of %zu bytes is too long", s->dir, db, plen);
    MDB_txn *txn;
    if ((rc = txn_open(s, 0, &txn))) return rc;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[d], &cur);
    if (mrc) {
        txn_close(s, txn, 0);
        return mdb_fail(s, mrc, "cursor", (int)d, NULL, 0);
    }
    MDB_val k, v;
    int reverse = (flags & AM_ITER_REVERSE) != 0;
    if (!reverse) {
        k.mv_size = plen;
        k.mv_data = (void *)prefix;
        mrc = plen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        /* start at the last key < successor(prefix): the prefix with its last non-0xff byte
         * incremented (trailing 0xff bytes dropped); no successor: the last key */
        uint8_t succ[512];
        size_t sn = plen <= sizeof succ ? plen : 0;
        if (sn) memcpy(succ, prefix, sn);
        while (sn && succ[sn - 1] == 0xff) sn--;
        if (sn) {
            succ[sn - 1]++;
            k.mv_size = sn;
            k.mv_data = succ;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            mrc = mrc == MDB_SUCCESS ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
                  : mrc == MDB_NOTFOUND ? mdb_cursor_get(cur, &k, &v, MDB_LAST) : mrc;
        } else {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        }
    }
    while (mrc == MDB_SUCCESS) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)) break;
        int r = cb(ud, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (r) {
            rc = r < 0 ? r : AM_OK;
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) rc = mdb_fail(s, mrc, "cursor", (int)d, prefix, plen);
    mdb_cursor_close(cur);
    txn_close(s, txn, 0);
    return rc;
}
