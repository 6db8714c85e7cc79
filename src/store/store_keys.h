/* store_keys.h - the store's key schema and value headers.
 *
 * Every key is raw bytes; LMDB sorts keys bytewise (memcmp, shorter first on a tie), so
 * fixed-width big-endian integers sort numerically and a "<prefix> 0x00" groups a prefix.
 *
 *   db        key                                      value
 *   --------  ---------------------------------------  -------------------------------------------
 *   models    id (32 lowercase hex)                    JSON meta, "format": 1 (store.h); its "config"
 *                                                      is config.json's keys (src/model/config_json.h)
 *   tensors   id 0x00 tensor-name (HF name)            AmTensorHeader (48 bytes) + LE float32 data
 *   names     name (UTF-8, no NUL)                     id (32 hex)
 *   vocab     vocab hash (32 hex, XXH3-128 of bytes)   vocab.txt bytes, verbatim (the key is their hash)
 *   runs      run id                                   run record JSON, "format": 1 (below)
 *   runs      run id 0x00 part                         the last checkpoint's state: part "state" = the
 *                                                      trainer state blob, "cursors" = JSON {step,
 *                                                      tasks = [{epoch, pos}]}
 *   metrics   run id 0x00 be32(step)                   one JSON row per step (below)
 *   results   model id 0x00 task 0x00 eval-config hash JSON (eval layer)
 *   results   model id 0x00 task 0x00 eval-config hash 0x00 'x'
 *                                                      that result's per-example scores (metrics.h
 *                                                      px_encode: "AMPX" header + LE float32
 *                                                      columns), for standard errors and paired tests
 *   datasets  dataset name                             JSON (data layer)
 *   meta      "format"                                 {"format": AM_STORE_FORMAT}
 *
 * Ids are content hashes, so they are immutable; names are mutable tags.
 * Run ids, dataset names and task names must not contain NUL bytes (0x00 is the separator);
 * run ids (1..200 bytes) contain no '/' or control character either (store_runs.h).
 *
 * Runs are read and written only through src/store/store_runs.h (the Lua trainer, the CLI, the
 * TUI). A run record (lua/amalgam/train.lua writes it; store_run_put sets "format" and "id"):
 *   {format: 1, id, name, status: "running"|"done"|"stopped"|"failed", pid, start, end (UTC
 *    ISO-8601), seed, steps (target), step (done), resumed (count), init (model id), args,
 *    recipe {path, source, hash}, schedule, trainer {lr, warmup, ...}, task_specs [{data, batch,
 *    loss, kind, role, name}], data {tasks: [{task, source, path, kind, rows, hash, batch,
 *    loss}], hash}, models {checkpoints: [{step, id, label}], last, final, task_vector, good},
 *    error}
 * A metrics row: {step, task (1-based), loss, terms {name: value}, lr, grad_norm, tokens,
 *   tokens_per_s, ids (the batch's 1-based rows; a mixed step: [{task, ids}]), mlm_accuracy}.
 * Checkpoints' model meta carries {"run": run id, "step": n}.
 *
 * Store format 1 (before the run keys) had "<id>/state" and "<id>/cursors" in runs, metrics
 * keys "<id>" be32(step) without the separator, and records without "format"; opening such a
 * store for writing moves them (store_runs.c), read-only opens read them in place.
 */
#ifndef AM_STORE_KEYS_H
#define AM_STORE_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AM_ID_HEX 32 /* model ids and vocab hashes: XXH3-128 as 32 lowercase hex chars */

/* The named databases, in the order of am_db_names. */
typedef enum {
    AM_DB_MODELS, AM_DB_TENSORS, AM_DB_NAMES, AM_DB_VOCAB, AM_DB_RUNS,
    AM_DB_METRICS, AM_DB_RESULTS, AM_DB_DATASETS, AM_DB_META, AM_DB_COUNT
} AmDb;

/* "models", "tensors", ... indexed by AmDb (defined in store.c) */
extern const char *const am_db_names[AM_DB_COUNT];

/* ---------------------------------------------------------------- integers */

static inline void am_be32_put(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t am_be32_get(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline void am_be64_put(uint8_t *p, uint64_t v) {
    am_be32_put(p, (uint32_t)(v >> 32)); am_be32_put(p + 4, (uint32_t)v);
}
static inline uint64_t am_be64_get(const uint8_t *p) {
    return (uint64_t)am_be32_get(p) << 32 | am_be32_get(p + 4);
}
static inline void am_le16_put(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline uint16_t am_le16_get(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void am_le32_put(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t am_le32_get(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void am_le64_put(uint8_t *p, uint64_t v) { am_le32_put(p, (uint32_t)v); am_le32_put(p + 4, (uint32_t)(v >> 32)); }
static inline uint64_t am_le64_get(const uint8_t *p) { return (uint64_t)am_le32_get(p) | (uint64_t)am_le32_get(p + 4) << 32; }

/* ---------------------------------------------------------------- keys */

/* "<a> 0x00 <b>" into out (cap bytes); returns the key length, or 0 if it does not fit.
 * tensors: store_key_pair(k, sizeof k, id, tensor_name); its prefix for one model is id + 0x00. */
static inline size_t store_key_pair(uint8_t *out, size_t cap, const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na + 1 + nb > cap) return 0;
    memcpy(out, a, na);
    out[na] = 0;
    memcpy(out + na + 1, b, nb);
    return na + 1 + nb;
}

/* metrics: "<run_id> 0x00 be32(step)", so one run's steps are contiguous and in step order.
 * Returns the key length (strlen(run_id) + 5), or 0 if it does not fit in cap. */
static inline size_t store_key_step(uint8_t *out, size_t cap, const char *run_id, uint32_t step) {
    size_t n = strlen(run_id);
    if (n + 5 > cap) return 0;
    memcpy(out, run_id, n);
    out[n] = 0;
    am_be32_put(out + n + 1, step);
    return n + 5;
}

/* ---------------------------------------------------------------- tensor values */

/* A tensor value: a 48-byte little-endian header, then numel * dtype-size bytes of data
 * (little-endian float32 for F32). The data starts at hdr_size, so a later version can grow
 * the header and old readers can still find the data.
 *
 *   off  size  field
 *     0     4  magic "AMTN"
 *     4     2  version (AM_TENSOR_VERSION)
 *     6     1  dtype (AM_TDTYPE_F32)
 *     7     1  ndim (1..4)
 *     8     4  hdr_size (48 for version 1)
 *    12     4  reserved, 0
 *    16    32  shape[4] as u64 (unused dims are 1)
 *    48        data
 */
#define AM_TENSOR_MAGIC "AMTN"
#define AM_TENSOR_VERSION 1
#define AM_TENSOR_HDR_SIZE 48
enum { AM_TDTYPE_F32 = 1 };

typedef struct {
    int version;
    int dtype;
    int ndim;
    int64_t shape[4];
    size_t hdr_size;  /* offset of the data */
    size_t numel;     /* product of shape[0..ndim) */
} AmTensorHeader;

/* Write a version-1 header for an F32 tensor into out[AM_TENSOR_HDR_SIZE]. */
static inline void am_tensor_header_encode(uint8_t *out, int ndim, const int64_t *shape) {
    memset(out, 0, AM_TENSOR_HDR_SIZE);
    memcpy(out, AM_TENSOR_MAGIC, 4);
    am_le16_put(out + 4, AM_TENSOR_VERSION);
    out[6] = AM_TDTYPE_F32;
    out[7] = (uint8_t)ndim;
    am_le32_put(out + 8, AM_TENSOR_HDR_SIZE);
    for (int i = 0; i < 4; i++) am_le64_put(out + 16 + 8 * i, i < ndim ? (uint64_t)shape[i] : 1);
}

/* Parse and check a tensor value of len bytes. Returns NULL when valid, else a static string
 * saying what is wrong (the caller adds the model and tensor name to the message). */
static inline const char *am_tensor_header_decode(const void *val, size_t len, AmTensorHeader *h) {
    const uint8_t *p = (const uint8_t *)val;
    memset(h, 0, sizeof *h);
    if (len < 16) return "value shorter than the tensor header";
    if (memcmp(p, AM_TENSOR_MAGIC, 4) != 0) return "bad magic (not a tensor value)";
    h->version = am_le16_get(p + 4);
    h->dtype = p[6];
    h->ndim = p[7];
    h->hdr_size = am_le32_get(p + 8);
    if (h->version < 1 || h->version > AM_TENSOR_VERSION)
        return "tensor header version newer than this build supports (HINT: upgrade amalgam)";
    if (h->hdr_size < AM_TENSOR_HDR_SIZE || h->hdr_size > len) return "bad header size";
    if (h->dtype != AM_TDTYPE_F32) return "unsupported dtype (only F32 is stored)";
    if (h->ndim < 1 || h->ndim > 4) return "bad number of dimensions";
    uint64_t numel = 1;
    for (int i = 0; i < 4; i++) {
        uint64_t d = am_le64_get(p + 16 + 8 * i);
        if (i >= h->ndim) { if (d != 1) return "bad shape (unused dimension is not 1)"; d = 1; }
        if (d == 0 || d > ((uint64_t)1 << 40) || numel > ((uint64_t)1 << 40) / d) return "bad shape";
        h->shape[i] = (int64_t)d;
        numel *= d;
    }
    h->numel = (size_t)numel;
    if (len - h->hdr_size != h->numel * 4) return "data size does not match the shape";
    return NULL;
}

#endif
