/* store.h - the model store: one LMDB environment per directory.
 *
 * A Store is an opaque handle on an LMDB environment with named sub-databases:
 *
 *   models    model id -> JSON meta        tensors  model id 0x00 tensor name -> header + f32
 *   names     user name -> model id        vocab    vocab hash -> vocab.txt bytes
 *   runs, metrics, results, datasets       (owned by later layers; generic API below)
 *   meta      "format" -> {"format": N}    (store format version)
 *
 * The key schema and the value headers are in store_keys.h.
 *
 * Conventions:
 *   - Every function returns AM_OK or a negative AM_E* code and records a message naming the
 *     operation, the database and the key (am_lasterror()). LMDB failures are AM_ESTORE,
 *     a missing key AM_ENOTFOUND, a full map that could not grow or a full disk (ENOSPC,
 *     EDQUOT, EFBIG) AM_EMAPFULL, a short write/EIO at commit (LMDB's report of a disk that
 *     filled mid-write) AM_EIO. A failed commit is rolled back: the store stays as it was.
 *   - Writes are transactions: a crash or kill -9 leaves every write either whole or absent.
 *   - MDB_MAP_FULL is handled inside: the write is aborted, the map grows (doubles, or more if
 *     the value needs it) and the whole write is retried, so callers never see it unless the
 *     map cannot grow (StoreOptions.max_mapsize, address space) or the disk is full.
 *   - Readers use short MDB_RDONLY transactions and never block writers (or each other).
 *   - Memory: OUT strings/buffers documented "malloc'd" belong to the caller (free()).
 *     "Borrowed" pointers point into the LMDB map and are valid only for the stated scope.
 *
 * Threads: one Store may be shared by several threads of one process (MDB_NOTLS). Reads may
 * run concurrently with one writer. Growing the map waits until no transaction of this
 * process is open; a thread that itself holds an open transaction (e.g. writes from inside
 * a store_iter callback) cannot grow the map and gets AM_EMAPFULL saying so.
 * Processes: open the store after fork(), never use a Store across fork().
 */
#ifndef AM_STORE_H
#define AM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "store_keys.h"

typedef struct Store Store;
typedef struct StoreTxn StoreTxn;

/* store format written by this build; a store with a newer format is refused. 2: the run,
 * state and metrics keys of store_keys.h; a format-1 store is migrated when opened for
 * writing (store_runs.c) and read in its old layout when opened read-only. */
#define AM_STORE_FORMAT 2
/* the "format" of a model's meta JSON */
#define AM_MODEL_FORMAT 1
#define AM_STORE_DEFAULT_MAPSIZE ((size_t)64 << 20)

enum {
    AM_STORE_RDONLY = 1 << 0,   /* open read-only: writes return AM_EINVAL; missing store is AM_ENOTFOUND */
    AM_STORE_EXISTING = 1 << 1, /* read-write, but a missing store is AM_ENOTFOUND (nothing is created):
                                   for everything but the commands that make stores */
};

/* Test/debug hook, called at fixed points of write operations (crash tests kill the
 * process from here). Events: "model_put:tensor" (arg = index of the tensor just written,
 * inside the write txn), "txn:commit" (just before mdb_txn_commit of any write txn, including
 * the one store_open uses to create the databases), "txn:committed". */
typedef void (*StoreHook)(void *ud, const char *event, int arg);

typedef struct {
    unsigned flags;        /* AM_STORE_* */
    size_t mapsize;        /* initial map size in bytes; 0 = $AMALGAM_STORE_MAPSIZE (e.g. "64M")
                              or AM_STORE_DEFAULT_MAPSIZE. A store whose file records a larger
                              map keeps the larger one. */
    size_t max_mapsize;    /* growth limit in bytes; 0 = none (until mmap fails) */
    StoreHook hook;        /* NULL normally */
    void *hook_ud;
} StoreOptions;

/* ---------------------------------------------------------------- open / close */

/* The default store directory: $AMALGAM_STORE if set and non-empty, else "store". Borrowed
 * (static or environment storage). */
const char *store_default_dir(void);

/* Open (creating the directory and the databases if missing, unless AM_STORE_RDONLY) the store
 * in dir (NULL = store_default_dir()). *out is NULL on failure; store_close(NULL) is a no-op,
 * so callers may close unconditionally. Errors: AM_ENOTFOUND (RDONLY or EXISTING and no store
 * there: "no store at 'DIR'" with a HINT, the one wording every command shows),
 * AM_ESTORE (not an LMDB store, newer format, lock problems; with a HINT), AM_EIO (mkdir).
 * LMDB allows one environment per file per process, so opening a directory that this process
 * already has open returns the same handle with a reference count (each open needs its own
 * store_close; the first open's options stay); opening it with the other AM_STORE_RDONLY
 * setting is AM_EINVAL. */
int store_open(const char *dir, unsigned flags, Store **out);
int store_open_ex(const char *dir, const StoreOptions *opt, Store **out); /* opt may be NULL */
/* Drop a reference; the last one closes the environment. All StoreTxn must be finished (asserted). */
void store_close(Store *s);
/* The directory this store was opened on. Borrowed, valid until store_close. */
const char *store_dir(const Store *s);

typedef struct {
    size_t mapsize;          /* current map size, bytes */
    size_t used;             /* bytes in use in the data file (high-water mark of pages) */
    size_t page_size;
    size_t entries[AM_DB_COUNT]; /* entries per database, indexed by AmDb */
    size_t pages[AM_DB_COUNT];   /* pages per database (branch + leaf + overflow) */
    size_t free_pages;       /* pages below `used` that LMDB reuses for new writes (the file never shrinks) */
    size_t file_size;        /* bytes of data.mdb on disk */
    size_t grows;            /* map growths done through this handle since store_open */
} StoreStat;
int store_stat(Store *s, StoreStat *st);

/* Rewrite the store in dir compacted (mdb_copy -c: live pages only, free pages dropped) and
 * replace data.mdb with the copy by an atomic rename, so the file shrinks to what is in use.
 * Needs the store to be idle: every store_open holds a shared flock on the directory, and
 * compaction takes an exclusive one without waiting (so the store must not be open in this
 * process either); other processes that open the store meanwhile wait for it. A crash leaves
 * either the old or the new file (plus a DIR/compact.tmp directory the next run removes).
 * OUT: bytes of data.mdb before and after (either may be NULL).
 * Errors: AM_ENOTFOUND (no store), AM_ESTORE (in use, LMDB failure), AM_EIO, AM_EMAPFULL (disk). */
int store_compact(const char *dir, size_t *before, size_t *after);

/* ---------------------------------------------------------------- models */

/* Store a model. The id (32 lowercase hex chars + NUL in id_out) is the XXH3-128 content hash
 * of the canonical config, the tensor table, the tensor bytes and the vocab bytes
 * (see store_model_id), so identical models get the same id and are stored once: putting an
 * id that exists writes nothing for the model (its original meta stays) and returns AM_OK.
 *
 * meta_json: NULL or a JSON object with caller fields (name, kind, pooling, normalize,
 * max_seq_length, do_lower_case, parents, created, ...). The stored meta is that object plus
 * "format", "id", "config" (Hugging Face config.json keys), "has_pooler", "vocab" (the vocab
 * hash or null), "n_params", "n_tensors", and "created" (UTC ISO-8601) if the caller gave none;
 * these reserved keys override the caller's. If meta_json has a string "name", names[name] =
 * id is set in the same transaction (also when the model already existed).
 * vocab: NULL/0 for none, else the vocab.txt bytes; stored once per distinct content.
 *
 * Everything (meta, every tensor, vocab, name) is written in ONE write transaction.
 * Errors: AM_EINVAL (bad meta_json / name), AM_EMAPFULL, AM_EIO (disk), AM_ESTORE. */
int store_model_put(Store *s, const Model *m, const char *meta_json, const char *vocab, size_t vocab_len,
                    char id_out[AM_ID_HEX + 1] /* OUT */);

/* The id store_model_put would give m with this vocab, without touching a store. */
void store_model_id(const Model *m, const char *vocab, size_t vocab_len, char id_out[AM_ID_HEX + 1] /* OUT */);

/* Load model `id` (a full id; use store_resolve for names and prefixes). Rebuilds the config
 * from the meta, allocates with model_new and copies every tensor straight from the LMDB map
 * into the model's flat buffer, checking each header against the parameter table, then
 * checks the content hash against the id.
 * OUT: *out (model_delete), *meta_json (malloc'd NUL-terminated JSON; pass NULL to skip),
 * *vocab / *vocab_len (malloc'd, NUL-terminated for convenience, NULL/0 if the model has no
 * vocab; pass NULL to skip). On failure every OUT is NULL/0.
 * Errors: AM_ENOTFOUND, AM_EFORMAT (names the tensor: bad header, shape/dtype mismatch,
 * missing tensor, hash mismatch), AM_ENOMEM, AM_ESTORE. */
int store_model_get(Store *s, const char *id, Model **out, char **meta_json, char **vocab, size_t *vocab_len);

/* The stored meta JSON of a model. OUT: *json malloc'd, NUL-terminated. AM_ENOTFOUND. */
int store_model_meta(Store *s, const char *id, char **json /* OUT */);

/* Merge the top-level keys of patch_json (an object) into a model's meta in one txn; a null
 * value removes the key. Reserved keys (format, id, config, has_pooler, vocab, n_params,
 * n_tensors) give AM_EINVAL. Does not touch names. */
int store_model_meta_update(Store *s, const char *id, const char *patch_json);

/* Remove a model: its meta, all its tensors, every name pointing to it, and its vocab if no
 * other model uses it, in one txn. AM_ENOTFOUND if absent. (Results/runs that mention the id
 * are left alone.) */
int store_model_delete(Store *s, const char *id);

/* Call cb for every model in id order, inside one read txn. id and meta_json are
 * NUL-terminated and valid only during the call (meta_json is a copy, not a map pointer).
 * cb returns 0 to go on, > 0 to stop (store_model_list then returns AM_OK), < 0 to stop and
 * have that code returned. Do not write to the store from cb (see Threads above). */
typedef int (*StoreModelFn)(void *ud, const char *id, const char *meta_json);
int store_model_list(Store *s, StoreModelFn cb, void *ud);

/* ---------------------------------------------------------------- names */

/* Point name at model id (a full id that exists, else AM_ENOTFOUND). Names are 1..255 bytes
 * of printable UTF-8 without '/' at the start or control characters; AM_EINVAL otherwise.
 * An existing name is moved. */
int store_name_set(Store *s, const char *name, const char *id);
/* Remove a name. AM_ENOTFOUND if it does not exist. */
int store_name_del(Store *s, const char *name);
/* Resolve a user string: an exact name first, then a unique id prefix of at least 4 hex chars
 * (case-insensitive; a full id resolves if the model exists).
 * Errors: AM_ENOTFOUND "unknown model 'X' (see amalgam ls models)", AM_EINVAL for an
 * ambiguous prefix (the message lists the candidates). */
int store_resolve(Store *s, const char *name_or_id_prefix, char id_out[AM_ID_HEX + 1] /* OUT */);

/* ---------------------------------------------------------------- generic key/values */

/* db is one of the database names above ("runs", "metrics", ...); an unknown name is
 * AM_EINVAL. Keys are 1..store_max_keysize() bytes. The model databases may be read this way;
 * write them through the model API. */
size_t store_max_keysize(Store *s);

/* Write one key in its own write transaction (replacing any value). */
int store_put(Store *s, const char *db, const void *key, size_t klen, const void *val, size_t vlen);
/* Copy a value out. OUT: *val malloc'd with one extra NUL byte after vlen bytes (so JSON can be
 * used as a C string); *vlen may be NULL. AM_ENOTFOUND if absent. */
int store_get(Store *s, const char *db, const void *key, size_t klen, void **val /* OUT */, size_t *vlen /* OUT */);
/* Delete one key. AM_ENOTFOUND if absent. */
int store_del(Store *s, const char *db, const void *key, size_t klen);

/* Call cb for every key starting with prefix (plen 0: all keys), in key order (or reverse key
 * order with AM_ITER_REVERSE), inside one read txn. key/val are BORROWED map pointers valid only
 * during the call (not NUL-terminated, not aligned). cb returns 0 to go on, > 0 to stop
 * (store_iter returns AM_OK), < 0 to stop and return that code. Do not write from cb. */
enum { AM_ITER_REVERSE = 1 };
typedef int (*StoreIterFn)(void *ud, const void *key, size_t klen, const void *val, size_t vlen);
int store_iter(Store *s, const char *db, const void *prefix, size_t plen, StoreIterFn cb, void *ud);
int store_iter_ex(Store *s, const char *db, const void *prefix, size_t plen, unsigned flags, StoreIterFn cb,
                  void *ud);

/* ---------------------------------------------------------------- batched writes */

/* An explicit write transaction for batching many writes (e.g. a training run's metrics every
 * N steps). Scoped borrow, LMDB style: begin, then put/del/get, then commit or abort; commit
 * and abort free the StoreTxn. While it is open, other writers (threads and processes) wait,
 * so keep it short (seconds). One write transaction per thread at a time: calling
 * store_put/store_model_put/... from the thread that holds an open StoreTxn is AM_EINVAL.
 *
 * Map growth is transparent: the txn keeps a log of its writes (a copy of every key and
 * value, so mind the memory for huge batches); on MDB_MAP_FULL it is aborted, the map grows
 * and the log is replayed in a new txn. Values read with store_txn_get before that are
 * not re-read; if another process wrote the same keys in between, last writer wins.
 * After any other failure the txn is dead: further calls return the first error and
 * store_txn_commit aborts and returns it. */
int store_txn_begin(Store *s, StoreTxn **out /* OUT */);
int store_txn_put(StoreTxn *t, const char *db, const void *key, size_t klen, const void *val, size_t vlen);
int store_txn_del(StoreTxn *t, const char *db, const void *key, size_t klen); /* AM_ENOTFOUND, txn stays usable */
/* Read inside the txn (sees its own writes). OUT: *val BORROWED, valid until the next write
 * through this txn or its end. AM_ENOTFOUND if absent (txn stays usable). */
int store_txn_get(StoreTxn *t, const char *db, const void *key, size_t klen, const void **val, size_t *vlen);
int store_txn_commit(StoreTxn *t);  /* frees t, also on failure */
void store_txn_abort(StoreTxn *t);  /* frees t; NULL is a no-op */

/* Run fn inside one write transaction and commit if it returns AM_OK (abort otherwise, and
 * return its code). On MDB_MAP_FULL the transaction is aborted, the map grows and fn is
 * called again from scratch with a new txn, so fn must be re-runnable: no side effects
 * outside the txn that a second call would repeat. size_hint (bytes about to be written, 0
 * if unknown) lets the map grow once up front instead of by retries. */
typedef int (*StoreWriteFn)(StoreTxn *t, void *ud);
int store_write(Store *s, size_t size_hint, StoreWriteFn fn, void *ud);

#endif
