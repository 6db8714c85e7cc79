/* store_txn.c - LMDB errors as AM_E* messages, the remap gate, transactions with the
 * retry-on-MDB_MAP_FULL loop (store_write) and explicit batched txns with a replay log. */
#define _GNU_SOURCE
#include "store_internal.h"
#include "am_base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_RETRIES 48        /* map growth attempts per write (doubling: far beyond any disk) */


void st_hook(Store *s, const char *ev, int arg) {
    if (s->hook) s->hook(s->hook_ud, ev, arg);
}
/* ---------------------------------------------------------------- errors */

/* Printable rendering of a key for messages: text as is, other bytes as \xNN, long keys cut. */
const char *st_fmt_key(char *buf, size_t cap, const void *key, size_t klen) {
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
int st_mdb_fail(const Store *s, int rc, const char *op, int db, const void *key, size_t klen) {
    char kb[512], where[640];
    where[0] = 0;
    if (db >= 0 && key) snprintf(where, sizeof where, " %s[%s]", am_db_names[db], st_fmt_key(kb, sizeof kb, key, klen));
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

void st_gate_enter(Store *s, int write) {
    Held *h = held_get(s);
    pthread_mutex_lock(&s->mu);
    if (h->n == 0)
        while (s->resizing) pthread_cond_wait(&s->cv, &s->mu);
    s->active++;
    pthread_mutex_unlock(&s->mu);
    h->n++;
    h->w += write;
}

void st_gate_leave(Store *s, int write) {
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
    st_gate_enter(s, 0);
    mdb_env_info(s->env, info);
    st_gate_leave(s, 0);
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

int st_txn_open(Store *s, int write, MDB_txn **out) {
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
        st_gate_enter(s, write);
        int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, out);
        if (rc == MDB_SUCCESS) return AM_OK;
        *out = NULL;
        st_gate_leave(s, write);
        if (rc == MDB_MAP_RESIZED && tries < 4) {
            /* another process grew the map beyond ours: adopt its size */
            int r = remap(s, 0, 0);
            if (r) return r;
            continue;
        }
        return st_mdb_fail(s, rc, write ? "begin write transaction" : "begin read transaction", -1, NULL, 0);
    }
}

void st_txn_close(Store *s, MDB_txn *txn, int write) {
    mdb_txn_abort(txn);
    st_gate_leave(s, write);
}

int st_cursor_open(Store *s, AmDb db, MDB_txn **txn, MDB_cursor **cur) {
    int rc = st_txn_open(s, 0, txn);
    if (rc) return rc;
    int mrc = mdb_cursor_open(*txn, s->dbi[db], cur);
    if (mrc) {
        st_txn_close(s, *txn, 0);
        return st_mdb_fail(s, mrc, "cursor", (int)db, NULL, 0);
    }
    return AM_OK;
}

int st_cursor_done(Store *s, MDB_txn *txn, MDB_cursor *cur, AmDb db, int mrc, int rc) {
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) rc = st_mdb_fail(s, mrc, "cursor", (int)db, NULL, 0);
    mdb_cursor_close(cur);
    st_txn_close(s, txn, 0);
    return rc;
}

const char *st_val_str(const MDB_val *v, char **buf, size_t *cap) {
    if (v->mv_size + 1 > *cap) *buf = xrealloc(*buf, *cap = v->mv_size + 1);
    memcpy(*buf, v->mv_data, v->mv_size);
    (*buf)[v->mv_size] = 0;
    return *buf;
}

int st_list(Store *s, AmDb db, int (*is_record)(const MDB_val *k), int (*cb)(void *ud, const char *id, const char *json),
            void *ud) {
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = st_cursor_open(s, db, &txn, &cur);
    if (rc) return rc;
    char *buf = NULL;
    size_t cap = 0;
    MDB_val k, v;
    int mrc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!is_record(&k)) continue;
        char id[512];                           /* LMDB keys are at most 511 bytes */
        AM_ASSERT(k.mv_size < sizeof id);
        memcpy(id, k.mv_data, k.mv_size);
        id[k.mv_size] = 0;
        int r = cb(ud, id, st_val_str(&v, &buf, &cap));
        if (r) {
            rc = r < 0 ? r : AM_OK;
            mrc = MDB_SUCCESS;
            break;
        }
    }
    free(buf);
    return st_cursor_done(s, txn, cur, db, mrc, rc);
}

/* Commit (the txn is freed whatever happens). Returns the raw LMDB code. */
int st_txn_commit_raw(Store *s, MDB_txn *txn) {
    st_hook(s, "txn:commit", 0);
    int rc = mdb_txn_commit(txn);
    st_gate_leave(s, 1);
    if (rc == MDB_SUCCESS) st_hook(s, "txn:committed", 0);
    return rc;
}

int st_raw_put(StoreTxn *t, AmDb db, const void *key, size_t klen, const void *val, size_t vlen,
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
    return st_mdb_fail(t->s, rc, "put", (int)db, key, klen);
}

int st_raw_del(StoreTxn *t, AmDb db, const void *key, size_t klen) {
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
    if (rc == MDB_SUCCESS) return AM_OK;
    if (rc == MDB_MAP_FULL) {
        t->mapfull = 1;
        t->need = klen;
    }
    return st_mdb_fail(t->s, rc, "delete", (int)db, key, klen);
}

/* Borrowed get inside a txn: AM_OK / AM_ENOTFOUND (with message) / AM_ESTORE. */
int st_raw_get(MDB_txn *txn, Store *s, AmDb db, const void *key, size_t klen, MDB_val *v) {
    MDB_val k = {klen, (void *)key};
    int rc = mdb_get(txn, s->dbi[db], &k, v);
    if (rc == MDB_SUCCESS) return AM_OK;
    return st_mdb_fail(s, rc, "get", (int)db, key, klen);
}

int store_write(Store *s, size_t size_hint, StoreWriteFn fn, void *ud) {
    pregrow(s, size_hint);
    for (int attempt = 0;; attempt++) {
        StoreTxn t = {.s = s};
        t.seen_mapsize = cur_mapsize(s);
        int rc = st_txn_open(s, 1, &t.txn);
        if (rc) return rc;
        rc = fn(&t, ud);
        if (rc == AM_OK && !t.mapfull) {
            int mrc = st_txn_commit_raw(s, t.txn);
            if (mrc == MDB_SUCCESS) return AM_OK;
            if (mrc != MDB_MAP_FULL) return st_mdb_fail(s, mrc, "commit", -1, NULL, 0);
            t.mapfull = 1;
            t.need = size_hint;
        } else {
            st_txn_close(s, t.txn, 1);
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
        int rc = r.op == OP_PUT ? st_raw_put(t, (AmDb)r.db, k, r.klen, v, r.vlen, 0, NULL)
                                : st_raw_del(t, (AmDb)r.db, k, r.klen);
        if (rc && !(r.op == OP_DEL && rc == AM_ENOTFOUND)) return rc;
        o += sizeof r + r.klen + r.vlen;
    }
    return AM_OK;
}

/* After MDB_MAP_FULL in an explicit txn: drop the LMDB txn, grow, begin again, replay. */
static int txn_regrow(StoreTxn *t, size_t need) {
    Store *s = t->s;
    for (int attempt = 0; attempt < MAX_RETRIES; attempt++) {
        if (t->txn) st_txn_close(s, t->txn, 1);
        t->txn = NULL;
        t->mapfull = 0;
        int rc = grow(s, t->seen_mapsize, need + t->log_len);
        if (rc) return rc;
        t->seen_mapsize = cur_mapsize(s);
        rc = st_txn_open(s, 1, &t->txn);
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
    int rc = st_txn_open(s, 1, &t->txn);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return AM_OK;
}


static int txn_usable(StoreTxn *t) {
    if (t->err) return am_error(t->err, "%s (the transaction failed earlier)", t->errmsg ? t->errmsg : "");
    if (!t->txn) return am_error(AM_ESTORE, "store %s: transaction is not open", t->s->dir);
    if (t->mapfull)   /* store_write callback after MDB_MAP_FULL: return so the write can be retried */
        return am_error(AM_EMAPFULL, "store %s: map full in this transaction (return the error to retry)", t->s->dir);
    return AM_OK;
}

/* a put (OP_PUT) or delete (OP_DEL) of an explicit or store_write txn: logged so a growth can
 * replay it, retried after MDB_MAP_FULL in an explicit txn */
static int txn_write(StoreTxn *t, int op, const char *db, const void *key, size_t klen, const void *val, size_t vlen) {
    AmDb d;
    int rc = st_db_index(t->s, db, &d);
    if (!rc) rc = st_key_check(t->s, d, key, klen);
    if (rc) return rc;
    if ((rc = txn_usable(t))) return rc;
    for (int attempt = 0;; attempt++) {
        rc = op == OP_PUT ? st_raw_put(t, d, key, klen, val, vlen, 0, NULL) : st_raw_del(t, d, key, klen);
        if (rc == AM_OK) {
            if (t->explicit_) log_add(t, op, d, key, klen, val, vlen);
            return AM_OK;
        }
        if (op == OP_DEL && rc == AM_ENOTFOUND) return rc;
        if (!t->mapfull || !t->explicit_ || attempt >= MAX_RETRIES) return t->explicit_ ? txn_dead(t, rc) : rc;
        rc = txn_regrow(t, klen + vlen);
        if (rc) return txn_dead(t, rc);
    }
}

int store_txn_put(StoreTxn *t, const char *db, const void *key, size_t klen, const void *val, size_t vlen) {
    return txn_write(t, OP_PUT, db, key, klen, val, vlen);
}

int store_txn_del(StoreTxn *t, const char *db, const void *key, size_t klen) {
    return txn_write(t, OP_DEL, db, key, klen, NULL, 0);
}

int store_txn_get(StoreTxn *t, const char *db, const void *key, size_t klen, const void **val, size_t *vlen) {
    *val = NULL;
    if (vlen) *vlen = 0;
    AmDb d;
    int rc = st_db_index(t->s, db, &d);
    if (!rc) rc = st_key_check(t->s, d, key, klen);
    if (rc) return rc;
    if ((rc = txn_usable(t))) return rc;
    MDB_val v;
    rc = st_raw_get(t->txn, t->s, d, key, klen, &v);
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
    if (t->txn) st_txn_close(t->s, t->txn, 1);
    txn_free(t);
}

int store_txn_commit(StoreTxn *t) {
    AM_ASSERT(t != NULL && t->explicit_ && "store_txn_commit on the txn of a store_write callback");
    Store *s = t->s;
    int rc = txn_usable(t);
    for (int attempt = 0; rc == AM_OK; attempt++) {
        int mrc = st_txn_commit_raw(s, t->txn);
        t->txn = NULL;
        if (mrc == MDB_SUCCESS) break;
        if (mrc != MDB_MAP_FULL || attempt >= MAX_RETRIES) {
            rc = st_mdb_fail(s, mrc, "commit", -1, NULL, 0);
            break;
        }
        rc = txn_regrow(t, 0);
    }
    if (t->txn) st_txn_close(s, t->txn, 1);
    t->txn = NULL;
    txn_free(t);
    return rc;
}

