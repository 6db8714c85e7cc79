/* store_names.c - user names for model ids, and resolving a name or an id prefix. */
#define _GNU_SOURCE
#include "store_internal.h"
#include "am_base.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

typedef struct { const char *name, *id; } NameCtx;

static int name_set_fn(StoreTxn *t, void *ud) {
    NameCtx *c = ud;
    MDB_val v;
    int rc = st_raw_get(t->txn, t->s, AM_DB_MODELS, c->id, AM_ID_HEX, &v);
    if (rc == AM_ENOTFOUND) return st_unknown_id(t->s, c->id);
    if (rc) return rc;
    return st_raw_put(t, AM_DB_NAMES, c->name, strlen(c->name), c->id, AM_ID_HEX, 0, NULL);
}

int store_name_set(Store *s, const char *name, const char *id) {
    int rc = st_name_check(name);
    if (!rc) rc = st_id_check(s, id);
    if (rc) return rc;
    NameCtx c = {name, id};
    return store_write(s, 0, name_set_fn, &c);
}

static int name_del_fn(StoreTxn *t, void *ud) {
    const char *name = ud;
    int rc = st_raw_del(t, AM_DB_NAMES, name, strlen(name));
    if (rc == AM_ENOTFOUND) return am_error(AM_ENOTFOUND, "unknown name '%s' (see amalgam ls models)", name);
    return rc;
}

int store_name_del(Store *s, const char *name) {
    int rc = st_name_check(name);
    if (rc) return rc;
    return store_write(s, 0, name_del_fn, (void *)name);
}

int store_resolve(Store *s, const char *q, char id_out[AM_ID_HEX + 1]) {
    id_out[0] = 0;
    if (!q || !*q) return am_error(AM_EINVAL, "empty model name");
    size_t qn = strlen(q);
    if (qn > s->maxkey) return am_error(AM_ENOTFOUND, "unknown model '%.80s...' (see amalgam ls models)", q);
    MDB_txn *txn;
    int rc = st_txn_open(s, 0, &txn);
    if (rc) return rc;
    MDB_val k = {qn, (void *)q}, v;
    int mrc = mdb_get(txn, s->dbi[AM_DB_NAMES], &k, &v);
    if (mrc == MDB_SUCCESS) {
        if (v.mv_size == AM_ID_HEX) {
            memcpy(id_out, v.mv_data, AM_ID_HEX);
            id_out[AM_ID_HEX] = 0;
        }
        rc = st_is_hex_id(id_out) ? AM_OK : am_error(AM_EFORMAT, "store %s: names['%s'] is not a model id", s->dir, q);
        st_txn_close(s, txn, 0);
        return rc;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = st_mdb_fail(s, mrc, "get", AM_DB_NAMES, q, qn);
        st_txn_close(s, txn, 0);
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
            rc = st_mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
            st_txn_close(s, txn, 0);
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
            rc = st_mdb_fail(s, mrc, "cursor", AM_DB_MODELS, NULL, 0);
            st_txn_close(s, txn, 0);
            return rc;
        }
    }
    st_txn_close(s, txn, 0);
    if (n == 0 && qn < 4 && strspn(q, "0123456789abcdefABCDEF") == qn)
        return am_error(AM_ENOTFOUND, "unknown model '%s' (an id prefix needs at least 4 hex characters; "
                        "see amalgam ls models)", q);
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

