/* store_internal.h - what the store's source files share and nothing outside src/store uses:
 * the Store and StoreTxn structs and the txn / error / check helpers (st_ prefix).
 *
 * Files: store_txn.c (errors, the remap gate, txns, store_write, explicit txns),
 * store_open.c (open/close, the env registry, format record, stat, argument checks),
 * store_model.c (model ids, meta, put/get/update/delete/list), store_names.c (names, resolve),
 * store_kv.c (generic key/values), store_runs.c (runs, metrics, trainer state; migration).
 */
#ifndef AM_STORE_INTERNAL_H
#define AM_STORE_INTERNAL_H

#include "store.h"

#include <lmdb.h>
#include <pthread.h>
#include <sys/types.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store keeps tensors as raw little-endian float32: a big-endian port needs byte swaps in store_model.c"
#endif


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
    int dirfd;                /* the directory, flock(LOCK_SH) while open: store_compact takes LOCK_EX */
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
    int format;               /* meta[format] when opened (after any migration) */
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

/* errors (store_txn.c) */
const char *st_fmt_key(char *buf, size_t cap, const void *key, size_t klen);
int st_mdb_fail(const Store *s, int rc, const char *op, int db, const void *key, size_t klen);
void st_hook(Store *s, const char *ev, int arg);

/* the gate and txns (store_txn.c) */
void st_gate_enter(Store *s, int write);
void st_gate_leave(Store *s, int write);
int st_txn_open(Store *s, int write, MDB_txn **out);
void st_txn_close(Store *s, MDB_txn *txn, int write);
/* A read txn with a cursor on db; st_cursor_done ends both after a walk whose last
 * mdb_cursor_get returned mrc (MDB_NOTFOUND: the end) and returns rc, or the cursor error. */
int st_cursor_open(Store *s, AmDb db, MDB_txn **txn, MDB_cursor **cur);
int st_cursor_done(Store *s, MDB_txn *txn, MDB_cursor *cur, AmDb db, int mrc, int rc);
/* v as a NUL-terminated string in *buf, grown as needed (the caller frees *buf) */
const char *st_val_str(const MDB_val *v, char **buf, size_t *cap);
/* Call cb(ud, key, value), both as strings, for every key of db that is_record accepts, in key
 * order, until cb returns non-zero (< 0: that error; > 0: stop, AM_OK). */
int st_list(Store *s, AmDb db, int (*is_record)(const MDB_val *k), int (*cb)(void *ud, const char *id, const char *json),
            void *ud);
int st_txn_commit_raw(Store *s, MDB_txn *txn);
int st_raw_put(StoreTxn *t, AmDb db, const void *key, size_t klen, const void *val, size_t vlen, unsigned flags,
               void **reserved);
int st_raw_del(StoreTxn *t, AmDb db, const void *key, size_t klen);
/* Borrowed get inside a txn: AM_OK / AM_ENOTFOUND (with message) / AM_ESTORE. */
int st_raw_get(MDB_txn *txn, Store *s, AmDb db, const void *key, size_t klen, MDB_val *v);
/* Delete every key of db starting with prefix (all keys: plen 0), only those whose value is
 * match_val when it is not NULL (store_model.c). */
int st_del_prefix(StoreTxn *t, AmDb db, const void *prefix, size_t plen, const void *match_val, size_t mlen);

/* argument checks (store_open.c) */
int st_db_index(const Store *s, const char *db, AmDb *out);
int st_key_check(const Store *s, AmDb db, const void *key, size_t klen);
int st_is_hex_id(const char *id);
int st_id_check(const Store *s, const char *id);
int st_name_check(const char *name);

/* store_model.c */
char *st_dup_val(const MDB_val *v);   /* malloc'd copy + NUL, NULL when out of memory */
/* the content hash (store_model_id), a plain XXH3-128 hex, the stored meta of m (caller meta +
 * reserved keys; *name the caller's "name" or NULL, both malloc'd), config floats all finite */
void st_model_hash(const Model *m, const char *vocab, size_t vocab_len, char id_out[AM_ID_HEX + 1]);
void st_hash_hex(const void *data, size_t n, char out[AM_ID_HEX + 1]);
int st_meta_build(const Model *m, const char *id, const char *caller, const char *vhash, char **json, char **name);
int st_config_finite(const EncoderConfig *c);
int st_unknown_id(const Store *s, const char *id);

/* store_runs.c: rewrite the runs/metrics keys of a format-1 store (inside open's write txn) */
int st_runs_migrate(StoreTxn *t);
/* store_model.c: the tensors of m under id, MDB_RESERVE'd and written in place */
int st_put_tensors(StoreTxn *t, const Model *m, const char *id);

#endif
