/* ds_iter.c - training-time access: per-epoch shuffled order, the batch iterator and batches. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- order and iteration */

void dataset_batch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *order) {
    AM_ASSERT(n >= 0 && n <= (int64_t)UINT32_MAX);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    AmRng r;
    ds_seed_rng(&r, seed, SEED_ORDER, epoch);
    ds_shuffle_i64(order, n, &r);
}

int dataset_iter_init(DatasetIter *it, int64_t n, int batch, uint64_t seed, int drop_last) {
    memset(it, 0, sizeof *it);
    if (n < 1) return am_error(AM_EINVAL, "cannot iterate over an empty dataset");
    if (n > (int64_t)UINT32_MAX) return am_error(AM_EINVAL, "dataset too large to iterate (%lld rows)", (long long)n);
    if (batch < 1) return am_error(AM_EINVAL, "batch size %d (must be >= 1)", batch);
    if (batch > n)
        return am_error(AM_EINVAL, "batch size %d is larger than the dataset (%lld rows)\nHINT: use a smaller "
                        "batch or more data", batch, (long long)n);
    it->n = n;
    it->batch = batch;
    it->seed = seed;
    it->drop_last = drop_last;
    it->order = xmalloc((size_t)n * sizeof *it->order);
    it->order_epoch = -1;
    return AM_OK;
}

void dataset_iter_seek(DatasetIter *it, int64_t epoch, int64_t pos) {
    AM_ASSERT(epoch >= 0 && pos >= 0 && pos <= it->n);
    it->epoch = epoch;
    it->pos = pos;
}

void dataset_iter_next(DatasetIter *it, const int64_t **ids, int *nb, int64_t *epoch) {
    AM_ASSERT(it->order != NULL);
    if (it->pos >= it->n || (it->drop_last && it->pos + it->batch > it->n)) {
        it->epoch++;
        it->pos = 0;
    }
    if (it->order_epoch != it->epoch) {
        dataset_batch_order(it->n, it->seed, it->epoch, it->order);
        it->order_epoch = it->epoch;
    }
    int64_t m = it->n - it->pos < it->batch ? it->n - it->pos : it->batch;
    *ids = it->order + it->pos;
    *nb = (int)m;
    if (epoch) *epoch = it->epoch;
    it->pos += m;
}

void dataset_iter_free(DatasetIter *it) {
    free(it->order);
    memset(it, 0, sizeof *it);
}

/* ---------------------------------------------------------------- batches */

int dataset_batch(const Dataset *ds, const int64_t *ids, int n, DatasetBatch *b) {
    CHECK_FINISHED(ds);
    if (ds->kind == AM_DS_RETRIEVAL)
        return am_error(AM_EINVAL, "%s: a retrieval dataset has no training batches\nHINT: convert it with "
                        "dataset_beir_to_pairs first", ds->origin);
    if (n < 0) return am_error(AM_EINVAL, "batch of %d rows", n);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= ds->n)
            return am_error(AM_EINVAL, "%s: row id %lld out of range (%lld rows)", ds->origin, (long long)ids[i],
                            (long long)ds->n);
    if (n + 1 > b->cap) {
        b->cap = n + 1;
        RESIZE(b->text, b->cap);
        RESIZE(b->text2, b->cap);
        RESIZE(b->score, b->cap);
        RESIZE(b->label, b->cap);
        RESIZE(b->pos_start, b->cap);
        RESIZE(b->neg_start, b->cap);
    }
    b->n = n;
    int64_t np = 0, nn = 0;
    if (ds->kind == AM_DS_PAIRS)
        for (int i = 0; i < n; i++) {
            np += ds->pos_start[ids[i] + 1] - ds->pos_start[ids[i]];
            nn += ds->neg_start[ids[i] + 1] - ds->neg_start[ids[i]];
        }
    AM_ASSERT(np < INT32_MAX && nn < INT32_MAX);
    if (np + 1 > b->cap_pos) {
        b->cap_pos = (int)np + 1;
        RESIZE(b->pos, b->cap_pos);
    }
    if (nn + 1 > b->cap_neg) {
        b->cap_neg = (int)nn + 1;
        RESIZE(b->neg, b->cap_neg);
    }
    b->pos_start[0] = b->neg_start[0] = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = ids[i];
        b->text[i] = ds->text[r];
        b->text2[i] = NULL;
        b->score[i] = 0;
        b->label[i] = -1;
        b->pos_start[i + 1] = b->pos_start[i];
        b->neg_start[i + 1] = b->neg_start[i];
        switch (ds->kind) {
        case AM_DS_PAIRS:
            b->text2[i] = ds->pos[ds->pos_start[r]];
            for (int64_t j = ds->pos_start[r]; j < ds->pos_start[r + 1]; j++) b->pos[b->pos_start[i + 1]++] = ds->pos[j];
            for (int64_t j = ds->neg_start[r]; j < ds->neg_start[r + 1]; j++) b->neg[b->neg_start[i + 1]++] = ds->neg[j];
            break;
        case AM_DS_GRADED:
            b->text2[i] = ds->text2[r];
            b->score[i] = (float)ds->score[r];
            break;
        case AM_DS_LABELLED:
            b->label[i] = ds->label[r];
            break;
        default:
            break;
        }
    }
    return AM_OK;
}

void dataset_batch_free(DatasetBatch *b) {
    free(b->text);
    free(b->text2);
    free(b->score);
    free(b->label);
    free(b->pos_start);
    free(b->neg_start);
    free(b->pos);
    free(b->neg);
    memset(b, 0, sizeof *b);
}
