/* store_kv.c - generic key/values of the non-model databases: put, get, del, iterate. */
#define _GNU_SOURCE
#include "store_internal.h"
#include "am_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- generic key/values */

typedef struct { AmDb db; const void *key; size_t klen; const void *val; size_t vlen; } KvCtx;

static int put_fn(StoreTxn *t, void *ud) {
    KvCtx *c = ud;
    return st_raw_put(t, c->db, c->key, c->klen, c->val, c->vlen, 0, NULL);
}

static int del_fn(StoreTxn *t, void *ud) {
    KvCtx *c = ud;
    return st_raw_del(t, c->db, c->key, c->klen);
}

int store_put(Store *s, const char *db, const void *key, size_t klen, const void *val, size_t vlen) {
    KvCtx c = {0, key, klen, val, vlen};
    int rc = st_db_index(s, db, &c.db);
    if (!rc) rc = st_key_check(s, c.db, key, klen);
    if (rc) return rc;
    return store_write(s, klen + vlen, put_fn, &c);
}

int store_del(Store *s, const char *db, const void *key, size_t klen) {
    KvCtx c = {0, key, klen, NULL, 0};
    int rc = st_db_index(s, db, &c.db);
    if (!rc) rc = st_key_check(s, c.db, key, klen);
    if (rc) return rc;
    return store_write(s, 0, del_fn, &c);
}

int store_get(Store *s, const char *db, const void *key, size_t klen, void **val, size_t *vlen) {
    *val = NULL;
    if (vlen) *vlen = 0;
    AmDb d;
    int rc = st_db_index(s, db, &d);
    if (!rc) rc = st_key_check(s, d, key, klen);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = st_txn_open(s, 0, &txn))) return rc;
    MDB_val v;
    rc = st_raw_get(txn, s, d, key, klen, &v);
    if (!rc) {
        char *p = st_dup_val(&v);
        if (!p) {
            char kb[256];
            rc = am_error(AM_ENOMEM, "store %s: get %s[%s]: cannot allocate %zu bytes", s->dir, db,
                          st_fmt_key(kb, sizeof kb, key, klen), v.mv_size);
        } else {
            *val = p;
            if (vlen) *vlen = v.mv_size;
        }
    }
    st_txn_close(s, txn, 0);
    return rc;
}

int store_iter(Store *s, const char *db, const void *prefix, size_t plen, StoreIterFn cb, void *ud) {
    return store_iter_ex(s, db, prefix, plen, 0, cb, ud);
}

int store_iter_ex(Store *s, const char *db, const void *prefix, size_t plen, unsigned flags, StoreIterFn cb,
                  void *ud) {
    AmDb d;
    int rc = st_db_index(s, db, &d);
    if (rc) return rc;
    if (plen > s->maxkey) return am_error(AM_EINVAL, "store %s: %s: prefix of %zu bytes is too long", s->dir, db, plen);
    MDB_txn *txn;
    MDB_cursor *cur;
    if ((rc = st_cursor_open(s, d, &txn, &cur))) return rc;
    int mrc;
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
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) rc = st_mdb_fail(s, mrc, "cursor", (int)d, prefix, plen);
    mdb_cursor_close(cur);
    st_txn_close(s, txn, 0);
    return rc;
}
