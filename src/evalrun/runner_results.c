/* runner_results.c - evaluation results in the store (table "results"): the key of a result, reading
 * one, listing them (per model or all), and reading the per-example scores kept beside a result.
 * Writing them is part of evalrun_task (runner.c). */
#include "evalrun_internal.h"
#include "am_base.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- results in the store */

size_t evalrun_result_key(uint8_t *out, size_t cap, const char *model_id, const char *task, const char *hash) {
    size_t n = 0;
    const char *parts[3] = {model_id, task, hash};
    for (int i = 0; i < 3 && parts[i]; i++) {
        size_t l = strlen(parts[i]);
        if (n + l + 1 > cap) return 0;
        memcpy(out + n, parts[i], l);
        n += l;
        if (i < 2) out[n++] = 0;
    }
    return n;
}

int evalrun_get_stored(Store *st, const char *model_id, const char *task, const char *hash, char **json) {
    *json = NULL;
    if (!st) return AM_ENOTFOUND;
    uint8_t key[512];
    size_t kl = evalrun_result_key(key, sizeof key, model_id, task, hash);
    if (!kl) return am_error(AM_EINVAL, "task name '%s' too long for a results key", task);
    void *v = NULL;
    int rc = store_get(st, "results", key, kl, &v, NULL);
    if (rc == AM_ENOTFOUND) am_clearerror();
    if (rc == AM_OK) *json = v;
    return rc;
}

typedef struct { EvalResultFn cb; void *ud; } ListCtx;

static int list_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    ListCtx *c = ud;
    const char *k = key;
    const char *z1 = memchr(k, 0, klen);
    if (!z1) return 0;
    const char *z2 = memchr(z1 + 1, 0, klen - (size_t)(z1 + 1 - k));
    if (!z2) return 0;
    if (memchr(z2 + 1, 0, klen - (size_t)(z2 + 1 - k))) return 0;   /* per-example scores */
    char id[AM_ID_HEX + 1], task[256], hash[64];
    size_t l1 = (size_t)(z1 - k), l2 = (size_t)(z2 - z1 - 1), l3 = klen - (size_t)(z2 + 1 - k);
    if (l1 > AM_ID_HEX || l2 >= sizeof task || l3 >= sizeof hash) return 0;
    memcpy(id, k, l1); id[l1] = 0;
    memcpy(task, z1 + 1, l2); task[l2] = 0;
    memcpy(hash, z2 + 1, l3); hash[l3] = 0;
    char *json = xmalloc(vlen + 1);
    memcpy(json, val, vlen);
    json[vlen] = 0;
    int rc = c->cb(c->ud, id, task, hash, json);
    free(json);
    return rc;
}

int evalrun_results_list(Store *st, const char *model_id, EvalResultFn cb, void *ud) {
    ListCtx c = {cb, ud};
    uint8_t prefix[64];
    size_t pl = 0;
    if (model_id) {
        pl = strlen(model_id);
        if (pl > AM_ID_HEX) return am_error(AM_EINVAL, "bad model id '%s'", model_id);
        memcpy(prefix, model_id, pl);
        prefix[pl++] = 0;
    }
    return store_iter(st, "results", pl ? prefix : NULL, pl, list_one, &c);
}

/* ---------------------------------------------------------------- per-example scores */

int evalrun_examples_get(Store *st, const char *model_id, const char *task, const char *hash, PerExample *out) {
    memset(out, 0, sizeof *out);
    uint8_t key[512];
    size_t kl = evalrun_result_key(key, sizeof key - 2, model_id, task, hash);
    if (!kl) return am_error(AM_EINVAL, "task name '%s' too long for a results key", task);
    key[kl] = 0;
    key[kl + 1] = 'x';
    void *v = NULL;
    size_t vl = 0;
    int rc = store_get(st, "results", key, kl + 2, &v, &vl);
    if (rc == AM_ENOTFOUND)
        return am_error(AM_ENOTFOUND, "no per-example scores stored for model %.12s on '%s' (HINT: results stored "
                        "before they were kept: amalgam eval MODEL --force)", model_id, task);
    if (rc) return rc;
    rc = px_decode(out, v, vl);
    free(v);
    return rc;
}
