/* store_runs.h - training runs in the store: run records, per-step metrics and the trainer
 * state of a run's last checkpoint (keys and record schema: store_keys.h).
 *
 * Everything that reads or writes runs goes through here: the Lua trainer
 * (lua/amalgam/train.lua through core.raw_run_*), `amalgam ls runs` / `info RUN` / `resume`,
 * and the TUI, which follows a live run by asking for the metrics after the last step it saw.
 *
 * Run ids are 1..AM_RUN_ID_MAX bytes of printable UTF-8 without '/' or control characters
 * (AM_EINVAL otherwise). Errors follow store.h: AM_OK or a negative AM_E* with a message.
 * A store of format 1 (before these keys) is migrated when it is opened for writing; opened
 * read-only it is read in its old layout by the same functions.
 */
#ifndef AM_STORE_RUNS_H
#define AM_STORE_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define AM_RUN_FORMAT 1    /* the "format" of a run record */
#define AM_RUN_ID_MAX 200

/* AM_OK if id is a valid run id, else AM_EINVAL with a message. */
int store_run_id_check(const char *id);

/* Write a run record (a JSON object; the stored copy gets "format": AM_RUN_FORMAT and
 * "id": id). AM_EINVAL for a bad id or a value that is not a JSON object. */
int store_run_put(Store *s, const char *id, const char *record_json);
/* The record of run id. OUT: *json malloc'd, NUL-terminated. AM_ENOTFOUND "unknown run". */
int store_run_get(Store *s, const char *id, char **json /* OUT */);
/* An exact run id, else a unique prefix of one (like model ids). OUT: *id malloc'd.
 * AM_ENOTFOUND "unknown run 'X' (see amalgam ls runs)", AM_EINVAL for an ambiguous prefix
 * (the message lists candidates). */
int store_run_resolve(Store *s, const char *id_or_prefix, char **id /* OUT */);

/* Call cb for every run record in id order inside one read txn; id and json are
 * NUL-terminated copies valid during the call. cb returns 0 to go on, > 0 to stop (AM_OK),
 * < 0 to stop and return it. Do not write to the store from cb. */
typedef int (*StoreRunFn)(void *ud, const char *id, const char *json);
int store_run_list(Store *s, StoreRunFn cb, void *ud);

/* Remove a run: its record, its state parts and all its metrics, in one txn. Models it made
 * and results are left alone. AM_ENOTFOUND if the store holds nothing of the run. */
int store_run_delete(Store *s, const char *id);

/* The state of a run's last checkpoint, in named parts: "state" (the trainer state blob,
 * trainer_state_save) and "cursors" (JSON: the data iterators' positions and the step). Part
 * names are 1..32 bytes of [a-z_]. get: *val malloc'd (+ a NUL byte), AM_ENOTFOUND if absent.
 * del: part NULL removes every part; AM_ENOTFOUND if there was nothing to remove. */
int store_run_state_put(Store *s, const char *id, const char *part, const void *val, size_t len);
int store_run_state_get(Store *s, const char *id, const char *part, void **val /* OUT */, size_t *len /* OUT */);
int store_run_state_del(Store *s, const char *id, const char *part);

/* What a run takes in the store (keys + values, bytes), without copying anything out. */
typedef struct {
    size_t record_bytes;
    size_t state_bytes;   /* every state part */
    size_t metric_rows, metric_bytes;
} StoreRunSize;
int store_run_size(Store *s, const char *id, StoreRunSize *out /* OUT */);

/* One metrics row per step: a JSON object (the trainer writes {step, task, loss, terms, lr,
 * grad_norm, tokens, tokens_per_s, ids, ...}). */
int store_run_metric_put(Store *s, const char *id, uint32_t step, const char *json, size_t len);
/* Call cb for the rows of steps first..last (inclusive) in step order, inside one read txn;
 * json is a NUL-terminated copy valid during the call. A TUI following a live run asks for
 * first = last step seen + 1, last = UINT32_MAX. cb returns as for store_run_list. */
typedef int (*StoreMetricFn)(void *ud, uint32_t step, const char *json, size_t len);
int store_run_metrics(Store *s, const char *id, uint32_t first, uint32_t last, StoreMetricFn cb, void *ud);

/* The same writes inside an open StoreTxn (store.h), so a checkpoint writes its record, state
 * and pending metrics in one transaction. */
int store_txn_run_put(StoreTxn *t, const char *id, const char *record_json);
int store_txn_run_state_put(StoreTxn *t, const char *id, const char *part, const void *val, size_t len);
int store_txn_run_metric_put(StoreTxn *t, const char *id, uint32_t step, const char *json, size_t len);
/* part NULL: "state" and "cursors"; a part that is absent is no error here */
int store_txn_run_state_del(StoreTxn *t, const char *id, const char *part);

#endif
