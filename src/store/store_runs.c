/* store_runs.c - run records, metrics and trainer state (store_runs.h), and the migration of
 * format-1 stores, whose trainer wrote "<id>/state", "<id>/cursors" and metrics keys
 * "<id>" be32(step) without the 0x00 separator. */
#define _GNU_SOURCE
#include "store_internal.h"
#include "store_runs.h"
#include "am_base.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- checks and keys */

int store_run_id_check(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > AM_RUN_ID_MAX) return am_error(AM_EINVAL, "run id must be 1..%d bytes (got %zu)", AM_RUN_ID_MAX, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return am_error(AM_EINVAL, "run id '%s' contains '/' or a control character", id);
    }
    return AM_OK;
}

static int part_check(const char *part) {
    size_t n = part ? strlen(part) : 0;
    int ok = n >= 1 && n <= 32;
    for (size_t i = 0; ok && i < n; i++) ok = (part[i] >= 'a' && part[i] <= 'z') || part[i] == '_';
    return ok ? AM_OK : am_error(AM_EINVAL, "run state part '%s' must be 1..32 bytes of a-z and _", part ? part : "(null)");
}

/* "<id> 0x00 <part>", or the format-1 "<id>/<part>" */
static size_t state_key(uint8_t *out, size_t cap, const char *id, const char *part, int legacy) {
    size_t n = store_key_pair(out, cap, id, part);
    if (n && legacy) out[strlen(id)] = '/';
    return n;
}

/* ---------------------------------------------------------------- writes */

/* the record as stored: the caller's object with "format" and "id" set. OUT: *out malloc'd */
static int record_build(const char *id, const char *json, char **out) {
    *out = NULL;
    int rc = store_run_id_check(id);
    if (rc) return rc;
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return am_error(AM_EINVAL, "run %s: the record must be a JSON object, got: %.80s", id, json ? json : "(null)");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "format");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
    cJSON_AddNumberToObject(o, "format", AM_RUN_FORMAT);
    cJSON_AddStringToObject(o, "id", id);
    *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    AM_ASSERT(*out != NULL);
    return AM_OK;
}

int store_txn_run_put(StoreTxn *t, const char *id, const char *record_json) {
    char *rec;
    int rc = record_build(id, record_json, &rec);
    if (rc) return rc;
    rc = store_txn_put(t, "runs", id, strlen(id), rec, strlen(rec));
    free(rec);
    return rc;
}

int store_txn_run_state_put(StoreTxn *t, const char *id, const char *part, const void *val, size_t len) {
    int rc = store_run_id_check(id);
    if (!rc) rc = part_check(part);
    if (rc) return rc;
    uint8_t key[AM_RUN_ID_MAX + 40];
    size_t kl = state_key(key, sizeof key, id, part, 0);
    return store_txn_put(t, "runs", key, kl, val, len);
}

int store_txn_run_metric_put(StoreTxn *t, const char *id, uint32_t step, const char *json, size_t len) {
    int rc = store_run_id_check(id);
    if (rc) return rc;
    uint8_t key[AM_RUN_ID_MAX + 8];
    size_t kl = store_key_step(key, sizeof key, id, step);
    return store_txn_put(t, "metrics", key, kl, json, len);
}

int store_txn_run_state_del(StoreTxn *t, const char *id, const char *part) {
    int rc = store_run_id_check(id);
    if (!rc && part) rc = part_check(part);
    if (rc) return rc;
    static const char *const known[] = {"state", "cursors"};
    for (int i = 0; i < 2 && !rc; i++) {
        if (part && strcmp(part, known[i]) != 0) continue;
        uint8_t key[AM_RUN_ID_MAX + 40];
        size_t kl = state_key(key, sizeof key, id, part ? part : known[i], 0);
        rc = store_txn_del(t, "runs", key, kl);
        if (rc == AM_ENOTFOUND) {
            am_clearerror();
            rc = AM_OK;
        }
    }
    if (part && !rc && strcmp(part, "state") != 0 && strcmp(part, "cursors") != 0) {
        uint8_t key[AM_RUN_ID_MAX + 40];
        size_t kl = state_key(key, sizeof key, id, part, 0);
        rc = store_txn_del(t, "runs", key, kl);
        if (rc == AM_ENOTFOUND) {
            am_clearerror();
            rc = AM_OK;
        }
    }
    return rc;
}

typedef struct {
    int op;   /* 0 record, 1 state, 2 metric */
    const char *id, *part, *json;
    const void *val;
    size_t len;
    uint32_t step;
} WriteCtx;

static int write_fn(StoreTxn *t, void *ud) {
    WriteCtx *c = ud;
    switch (c->op) {
    case 0: return store_txn_put(t, "runs", c->id, strlen(c->id), c->json, strlen(c->json));
    case 1: return store_txn_run_state_put(t, c->id, c->part, c->val, c->len);
    default: return store_txn_run_metric_put(t, c->id, c->step, c->val, c->len);
    }
}

int store_run_put(Store *s, const char *id, const char *record_json) {
    char *rec;
    int rc = record_build(id, record_json, &rec);
    if (rc) return rc;
    WriteCtx c = {.op = 0, .id = id, .json = rec};
    rc = store_write(s, strlen(rec) + 256, write_fn, &c);
    free(rec);
    return rc;
}

int store_run_state_put(Store *s, const char *id, const char *part, const void *val, size_t len) {
    WriteCtx c = {.op = 1, .id = id, .part = part, .val = val, .len = len};
    return store_write(s, len + 256, write_fn, &c);
}

int store_run_metric_put(Store *s, const char *id, uint32_t step, const char *json, size_t len) {
    WriteCtx c = {.op = 2, .id = id, .val = json, .len = len, .step = step};
    return store_write(s, len + 256, write_fn, &c);
}

/* ---------------------------------------------------------------- delete */

typedef struct { const char *id, *part; int found; } DelCtx;

static int del_state_fn(StoreTxn *t, void *ud) {
    DelCtx *c = ud;
    uint8_t key[AM_RUN_ID_MAX + 40];
    size_t n = strlen(c->id), kl;
    MDB_val v;
    c->found = 0;
    if (c->part) {
        kl = state_key(key, sizeof key, c->id, c->part, 0);
        int rc = st_raw_get(t->txn, t->s, AM_DB_RUNS, key, kl, &v);
        if (rc == AM_ENOTFOUND) return AM_OK;
        c->found = 1;
        return rc ? rc : st_raw_del(t, AM_DB_RUNS, key, kl);
    }
    memcpy(key, c->id, n);
    key[n] = 0;
    MDB_stat before, after;
    mdb_stat(t->txn, t->s->dbi[AM_DB_RUNS], &before);
    int rc = st_del_prefix(t, AM_DB_RUNS, key, n + 1, NULL, 0);
    mdb_stat(t->txn, t->s->dbi[AM_DB_RUNS], &after);
    c->found = after.ms_entries != before.ms_entries;
    return rc;
}

int store_run_state_del(Store *s, const char *id, const char *part) {
    int rc = store_run_id_check(id);
    if (!rc && part) rc = part_check(part);
    if (rc) return rc;
    DelCtx c = {id, part, 0};
    if ((rc = store_write(s, 0, del_state_fn, &c))) return rc;
    if (!c.found) return am_error(AM_ENOTFOUND, "run %s has no stored state%s%s", id, part ? " part " : "", part ? part : "");
    return AM_OK;
}

static int run_delete_fn(StoreTxn *t, void *ud) {
    DelCtx *c = ud;
    size_t n = strlen(c->id);
    MDB_stat r0, r1, m0, m1;
    mdb_stat(t->txn, t->s->dbi[AM_DB_RUNS], &r0);
    mdb_stat(t->txn, t->s->dbi[AM_DB_METRICS], &m0);
    int rc = st_raw_del(t, AM_DB_RUNS, c->id, n);
    if (rc && rc != AM_ENOTFOUND) return rc;
    uint8_t prefix[AM_RUN_ID_MAX + 1];
    memcpy(prefix, c->id, n);
    prefix[n] = 0;
    if ((rc = st_del_prefix(t, AM_DB_RUNS, prefix, n + 1, NULL, 0)) ||
        (rc = st_del_prefix(t, AM_DB_METRICS, prefix, n + 1, NULL, 0)))
        return rc;
    mdb_stat(t->txn, t->s->dbi[AM_DB_RUNS], &r1);
    mdb_stat(t->txn, t->s->dbi[AM_DB_METRICS], &m1);
    c->found = r1.ms_entries != r0.ms_entries || m1.ms_entries != m0.ms_entries;
    return AM_OK;
}

int store_run_delete(Store *s, const char *id) {
    int rc = store_run_id_check(id);
    if (rc) return rc;
    DelCtx c = {id, NULL, 0};
    if ((rc = store_write(s, 0, run_delete_fn, &c))) return rc;
    if (!c.found) return am_error(AM_ENOTFOUND, "unknown run '%s' (see amalgam ls runs)", id);
    return AM_OK;
}

/* ---------------------------------------------------------------- reads */

static int unknown_run(const char *id) {
    return am_error(AM_ENOTFOUND, "unknown run '%s' (see amalgam ls runs)", id);
}

/* a copy of one value of db under key, inside a read txn */
static int get_copy(Store *s, AmDb db, const void *key, size_t klen, void **val, size_t *len) {
    MDB_txn *txn;
    int rc = st_txn_open(s, 0, &txn);
    if (rc) return rc;
    MDB_val v;
    rc = st_raw_get(txn, s, db, key, klen, &v);
    if (!rc && !(*val = st_dup_val(&v))) rc = am_error(AM_ENOMEM, "store %s: cannot copy a value of %zu bytes", s->dir, v.mv_size);
    if (!rc && len) *len = v.mv_size;
    st_txn_close(s, txn, 0);
    return rc;
}

int store_run_get(Store *s, const char *id, char **json) {
    *json = NULL;
    int rc = store_run_id_check(id);
    if (rc) return rc;
    rc = get_copy(s, AM_DB_RUNS, id, strlen(id), (void **)json, NULL);
    return rc == AM_ENOTFOUND ? unknown_run(id) : rc;
}

int store_run_state_get(Store *s, const char *id, const char *part, void **val, size_t *len) {
    *val = NULL;
    if (len) *len = 0;
    int rc = store_run_id_check(id);
    if (!rc) rc = part_check(part);
    if (rc) return rc;
    uint8_t key[AM_RUN_ID_MAX + 40];
    size_t kl = state_key(key, sizeof key, id, part, s->format < 2);
    rc = get_copy(s, AM_DB_RUNS, key, kl, val, len);
    if (rc == AM_ENOTFOUND) return am_error(AM_ENOTFOUND, "run %s has no stored %s", id, part);
    return rc;
}

/* a run record key: no 0x00 (state parts) and no '/' (format-1 state, other tools' keys) */
static int is_record_key(const MDB_val *k) {
    return k->mv_size > 0 && k->mv_size <= AM_RUN_ID_MAX && !memchr(k->mv_data, 0, k->mv_size) &&
           !memchr(k->mv_data, '/', k->mv_size);
}

int store_run_list(Store *s, StoreRunFn cb, void *ud) { return st_list(s, AM_DB_RUNS, is_record_key, cb, ud); }

int store_run_resolve(Store *s, const char *q, char **id_out) {
    *id_out = NULL;
    if (!q || !*q) return am_error(AM_EINVAL, "empty run id");
    size_t qn = strlen(q);
    if (qn > AM_RUN_ID_MAX) return unknown_run(q);
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = st_cursor_open(s, AM_DB_RUNS, &txn, &cur);
    if (rc) return rc;
    int mrc, n = 0, exact = 0;
    char cand[4][AM_RUN_ID_MAX + 1];
    MDB_val k = {qn, (void *)q}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < qn || memcmp(k.mv_data, q, qn) != 0) break;
        if (!is_record_key(&k)) continue;
        if (k.mv_size == qn) exact = 1;
        if (n < 4) {
            memcpy(cand[n], k.mv_data, k.mv_size);
            cand[n][k.mv_size] = 0;
        }
        n++;
        if (exact) break;
    }
    if ((rc = st_cursor_done(s, txn, cur, AM_DB_RUNS, mrc, rc))) return rc;
    if (exact) {
        *id_out = xstrdup(q);
        return AM_OK;
    }
    if (n == 0) return unknown_run(q);
    if (n > 1) {
        char list[4 * (AM_RUN_ID_MAX + 2) + 8];
        size_t o = 0;
        for (int i = 0; i < n && i < 4; i++) o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", cand[i]);
        if (n > 4) snprintf(list + o, sizeof list - o, ", ...");
        return am_error(AM_EINVAL, "run id prefix '%s' is ambiguous, %d runs match: %s (give more characters)", q, n, list);
    }
    *id_out = xstrdup(cand[0]);
    return AM_OK;
}

int store_run_metrics(Store *s, const char *id, uint32_t first, uint32_t last, StoreMetricFn cb, void *ud) {
    int rc = store_run_id_check(id);
    if (rc) return rc;
    if (first > last) return AM_OK;
    /* format 1: "<id>" be32(step), i.e. "<id>" 0x00 and 3 bytes for steps < 2^24 */
    int legacy = s->format < 2;
    size_t n = strlen(id), want = n + (legacy ? 4 : 5);
    uint8_t seek[AM_RUN_ID_MAX + 8];
    memcpy(seek, id, n);
    if (legacy) am_be32_put(seek + n, first);
    else {
        seek[n] = 0;
        am_be32_put(seek + n + 1, first);
    }
    MDB_txn *txn;
    MDB_cursor *cur;
    if ((rc = st_cursor_open(s, AM_DB_METRICS, &txn, &cur))) return rc;
    int mrc;
    char *buf = NULL;
    size_t cap = 0;
    MDB_val k = {want, seek}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size < n + 1 || memcmp(kp, id, n) != 0 || kp[n] != 0) break;   /* past "<id>" 0x00 */
        if (k.mv_size != want) continue;
        uint32_t step = am_be32_get(kp + want - 4);
        if (step > last) break;
        int r = cb(ud, step, st_val_str(&v, &buf, &cap), v.mv_size);
        if (r) {
            rc = r < 0 ? r : AM_OK;
            mrc = MDB_SUCCESS;
            break;
        }
    }
    free(buf);
    return st_cursor_done(s, txn, cur, AM_DB_METRICS, mrc, rc);
}

/* sum klen + vlen of the keys of db starting with prefix and accepted by ok() */
static int sum_prefix(MDB_txn *txn, Store *s, AmDb db, const uint8_t *prefix, size_t plen,
                      int (*ok)(const MDB_val *k, size_t plen), size_t *rows, size_t *bytes) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (mrc) return st_mdb_fail(s, mrc, "cursor", (int)db, NULL, 0);
    MDB_val k = {plen, (void *)prefix}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0) break;
        if (!ok(&k, plen)) continue;
        if (rows) (*rows)++;
        *bytes += k.mv_size + v.mv_size;
    }
    mdb_cursor_close(cur);
    return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? AM_OK : st_mdb_fail(s, mrc, "cursor", (int)db, NULL, 0);
}

static int any_key(const MDB_val *k, size_t plen) { (void)k; (void)plen; return 1; }
static int metric_new(const MDB_val *k, size_t plen) { return k->mv_size == plen + 4; }      /* prefix "<id>" 0x00 */
static int metric_old(const MDB_val *k, size_t plen) { return k->mv_size == plen + 3; }      /* "<id>" be32 */
static int state_old(const MDB_val *k, size_t plen) {                                         /* "<id>/state|cursors" */
    const char *p = (const char *)k->mv_data + plen;
    size_t n = k->mv_size - plen;
    return (n == 5 && memcmp(p, "state", 5) == 0) || (n == 7 && memcmp(p, "cursors", 7) == 0);
}

int store_run_size(Store *s, const char *id, StoreRunSize *out) {
    memset(out, 0, sizeof *out);
    int rc = store_run_id_check(id);
    if (rc) return rc;
    int legacy = s->format < 2;
    size_t n = strlen(id);
    uint8_t p[AM_RUN_ID_MAX + 1];
    memcpy(p, id, n);
    p[n] = 0;
    MDB_txn *txn;
    if ((rc = st_txn_open(s, 0, &txn))) return rc;
    MDB_val v;
    rc = st_raw_get(txn, s, AM_DB_RUNS, id, n, &v);
    if (rc == AM_OK) out->record_bytes = n + v.mv_size;
    if (rc == AM_ENOTFOUND) {
        am_clearerror();
        rc = AM_OK;
    }
    if (!rc) {
        if (legacy) p[n] = '/';
        rc = sum_prefix(txn, s, AM_DB_RUNS, p, n + 1, legacy ? state_old : any_key, NULL, &out->state_bytes);
        p[n] = 0;
    }
    if (!rc)
        rc = sum_prefix(txn, s, AM_DB_METRICS, p, n + 1, legacy ? metric_old : metric_new, &out->metric_rows,
                        &out->metric_bytes);
    st_txn_close(s, txn, 0);
    return rc;
}

/* ---------------------------------------------------------------- migration from format 1 */

typedef struct { uint8_t *key; size_t klen; uint8_t *val; size_t vlen; uint8_t *nkey; size_t nklen; } Move;
typedef struct { Move *v; size_t n, cap; } Moves;

static void moves_add(Moves *m, const MDB_val *k, const MDB_val *v, const void *nk, size_t nkl, const void *nv, size_t nvl) {
    if (m->n == m->cap) m->v = xrealloc(m->v, (m->cap = m->cap ? 2 * m->cap : 64) * sizeof *m->v);
    Move *x = &m->v[m->n++];
    x->key = xmalloc(k->mv_size);
    memcpy(x->key, k->mv_data, x->klen = k->mv_size);
    x->val = xmalloc(nvl ? nvl : 1);
    memcpy(x->val, nv, x->vlen = nvl);
    x->nkey = xmalloc(nkl);
    memcpy(x->nkey, nk, x->nklen = nkl);
    (void)v;
}

static void moves_free(Moves *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].val);
        free(m->v[i].nkey);
    }
    free(m->v);
}

/* the old key -> new key (and value) of every key of db that needs one */
static int collect(StoreTxn *t, AmDb db, Moves *m) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[db], &cur);
    if (mrc) return st_mdb_fail(t->s, mrc, "cursor", (int)db, NULL, 0);
    MDB_val k, v;
    uint8_t nk[1024];
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        size_t kl = k.mv_size;
        if (db == AM_DB_METRICS) {
            /* "<id>" be32(step) -> "<id>" 0x00 be32(step); new keys have 0x00 five bytes from the end */
            if (kl < 5 || kl + 1 > sizeof nk || kp[kl - 5] == 0) continue;
            memcpy(nk, kp, kl - 4);
            nk[kl - 4] = 0;
            memcpy(nk + kl - 3, kp + kl - 4, 4);
            moves_add(m, &k, &v, nk, kl + 1, v.mv_data, v.mv_size);
            continue;
        }
        const char *slash = memchr(kp, '/', kl);
        if (slash && !memchr(kp, 0, kl) && kl < sizeof nk) {   /* "<id>/state", "<id>/cursors" */
            size_t at = (size_t)(slash - (const char *)kp);
            if ((kl - at - 1 == 5 && memcmp(slash + 1, "state", 5) == 0) ||
                (kl - at - 1 == 7 && memcmp(slash + 1, "cursors", 7) == 0)) {
                memcpy(nk, kp, kl);
                nk[at] = 0;
                moves_add(m, &k, &v, nk, kl, v.mv_data, v.mv_size);
            }
            continue;
        }
        if (!is_record_key(&k)) continue;
        /* a record without "format": add it (the schema is otherwise the same) */
        cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        if (cJSON_IsObject(o) && !cJSON_GetObjectItemCaseSensitive(o, "format")) {
            cJSON_AddNumberToObject(o, "format", AM_RUN_FORMAT);
            char *js = cJSON_PrintUnformatted(o);
            moves_add(m, &k, &v, kp, kl, js, strlen(js));
            free(js);
        }
        cJSON_Delete(o);
    }
    mdb_cursor_close(cur);
    if (mrc != MDB_NOTFOUND) return st_mdb_fail(t->s, mrc, "cursor", (int)db, NULL, 0);
    return AM_OK;
}

int st_runs_migrate(StoreTxn *t) {
    int rc = AM_OK;
    size_t total = 0;
    for (AmDb db = AM_DB_RUNS; db <= AM_DB_METRICS && !rc; db++) {
        Moves m = {0};
        rc = collect(t, db, &m);
        for (size_t i = 0; i < m.n && !rc; i++) {
            Move *x = &m.v[i];
            int same = x->klen == x->nklen && memcmp(x->key, x->nkey, x->klen) == 0;
            if (!same) rc = st_raw_del(t, db, x->key, x->klen);
            if (!rc) rc = st_raw_put(t, db, x->nkey, x->nklen, x->val, x->vlen, 0, NULL);
        }
        total += m.n;
        moves_free(&m);
    }
    if (!rc && total) am_log(AM_LOG_INFO, "store %s: %zu run and metrics keys moved to format %d", t->s->dir, total, AM_STORE_FORMAT);
    return rc;
}
