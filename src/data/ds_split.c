/* ds_split.c - seeded, group-aware splits and subsampling of a Dataset's rows. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- rng helpers */

void ds_seed_rng(AmRng *r, uint64_t seed, uint64_t purpose, int64_t extra) {
    uint64_t k[3] = {seed, purpose, (uint64_t)extra};
    am_rng_seed(r, am_hash64(k, sizeof k, 0));
}

void ds_shuffle_i64(int64_t *a, int64_t n, AmRng *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = am_rng_below(r, (uint32_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- splits */

typedef struct { int64_t g, row; } GroupRow;

static int cmp_group_row(const void *a, const void *b) {
    const GroupRow *x = a, *y = b;
    if (x->g != y->g) return x->g < y->g ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

int dataset_split_assign(int64_t n, const int64_t *group, const double *ratios, int n_parts,
                         uint64_t seed, uint8_t *part) {
    if (n < 0 || n > (int64_t)UINT32_MAX) return am_error(AM_EINVAL, "split: bad row count %lld", (long long)n);
    if (n_parts < 1 || n_parts > 255) return am_error(AM_EINVAL, "split: %d parts (1..255)", n_parts);
    double sum = 0;
    for (int k = 0; k < n_parts; k++) {
        if (!(ratios[k] >= 0) || !isfinite(ratios[k]))
            return am_error(AM_EINVAL, "split: ratio %d is %g (must be a finite number >= 0)", k, ratios[k]);
        sum += ratios[k];
    }
    if (!(sum > 0)) return am_error(AM_EINVAL, "split: ratios sum to 0");
    double *bound = xmalloc((size_t)n_parts * sizeof *bound), acc = 0;
    for (int k = 0; k < n_parts; k++) {
        acc += ratios[k];
        bound[k] = (double)n * acc / sum;
    }
    bound[n_parts - 1] = (double)n + 1; /* everything left goes to the last part */
    /* groups: sorted distinct ids, each a [start, end) range of rows in gr */
    int64_t ng = 0, *gstart = NULL;
    GroupRow *gr = NULL;
    if (group) {
        gr = xmalloc((size_t)(n ? n : 1) * sizeof *gr);
        for (int64_t i = 0; i < n; i++) gr[i] = (GroupRow){group[i], i};
        qsort(gr, (size_t)n, sizeof *gr, cmp_group_row);
        gstart = xmalloc((size_t)(n + 1) * sizeof *gstart);
        for (int64_t i = 0; i < n; i++)
            if (i == 0 || gr[i].g != gr[i - 1].g) gstart[ng++] = i;
        gstart[ng] = n;
    } else {
        ng = n;
    }
    int64_t *order = xmalloc((size_t)(ng ? ng : 1) * sizeof *order);
    for (int64_t i = 0; i < ng; i++) order[i] = i;
    AmRng r;
    ds_seed_rng(&r, seed, SEED_SPLIT, 0);
    ds_shuffle_i64(order, ng, &r);
    int64_t c = 0;
    int k = 0;
    for (int64_t i = 0; i < ng; i++) {
        int64_t g = order[i], size = group ? gstart[g + 1] - gstart[g] : 1;
        double mid = (double)c + (double)size / 2;
        k = 0;
        while (k < n_parts - 1 && !(bound[k] > mid)) k++;
        if (group)
            for (int64_t j = gstart[g]; j < gstart[g + 1]; j++) part[gr[j].row] = (uint8_t)k;
        else
            part[g] = (uint8_t)k;
        c += size;
    }
    free(order);
    free(gr);
    free(gstart);
    free(bound);
    return AM_OK;
}

int64_t dataset_part_ids(const uint8_t *part, int64_t n, int k, int64_t *ids) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (part[i] == k) {
            if (ids) ids[m] = i;
            m++;
        }
    return m;
}

void dataset_rowid_hash(const int64_t *ids, int64_t n, char out[33]) {
    AmHasher *h = am_hasher_new();
    for (int64_t i = 0; i < n; i++) ds_hash_u64(h, (uint64_t)ids[i]);
    am_hasher_hex(h, out);
    am_hasher_delete(h);
}

int dataset_split(const Dataset *ds, const int64_t *group, const double *ratios, int n_parts,
                  uint64_t seed, Dataset **parts, char (*rowid_hash)[33]) {
    CHECK_FINISHED(ds);
    for (int k = 0; k < n_parts && k < 256; k++) parts[k] = NULL;
    uint8_t *part = xmalloc((size_t)(ds->n ? ds->n : 1));
    int rc = dataset_split_assign(ds->n, group, ratios, n_parts, seed, part);
    if (rc) {
        free(part);
        return rc;
    }
    int64_t *ids = xmalloc((size_t)(ds->n ? ds->n : 1) * sizeof *ids);
    for (int k = 0; k < n_parts && !rc; k++) {
        int64_t m = dataset_part_ids(part, ds->n, k, ids);
        rc = dataset_select(ds, ids, m, &parts[k]);
        if (!rc && rowid_hash) dataset_rowid_hash(ids, m, rowid_hash[k]);
    }
    free(ids);
    free(part);
    if (rc)
        for (int k = 0; k < n_parts; k++) {
            dataset_delete(parts[k]);
            parts[k] = NULL;
        }
    return rc;
}

/* ---------------------------------------------------------------- subsampling */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int dataset_subsample_ids(int64_t n, double frac, uint64_t seed, int complement, int64_t *ids, int64_t *k) {
    if (n < 0 || n > (int64_t)UINT32_MAX) return am_error(AM_EINVAL, "subsample: bad row count %lld", (long long)n);
    if (!(frac >= 0 && frac <= 1)) return am_error(AM_EINVAL, "subsample: fraction %g is not in [0, 1]", frac);
    int64_t kk = (int64_t)floor(frac * (double)n + 0.5);
    if (kk > n) kk = n;
    int64_t *perm = xmalloc((size_t)(n ? n : 1) * sizeof *perm);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    AmRng r;
    ds_seed_rng(&r, seed, SEED_SAMPLE, 0);
    for (int64_t i = 0; i < kk; i++) { /* partial Fisher-Yates: perm[0..kk) is the draw */
        int64_t j = i + am_rng_below(&r, (uint32_t)(n - i));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t m = complement ? n - kk : kk;
    memcpy(ids, perm + (complement ? kk : 0), (size_t)m * sizeof *ids);
    qsort(ids, (size_t)m, sizeof *ids, cmp_i64);
    free(perm);
    *k = m;
    return AM_OK;
}

int dataset_subsample(const Dataset *ds, double frac, uint64_t seed, Dataset **out, char rowid_hash[33]) {
    CHECK_FINISHED(ds);
    *out = NULL;
    int64_t *ids = xmalloc((size_t)(ds->n ? ds->n : 1) * sizeof *ids), k;
    int rc = dataset_subsample_ids(ds->n, frac, seed, 0, ids, &k);
    if (!rc) rc = dataset_select(ds, ids, k, out);
    if (!rc && rowid_hash) dataset_rowid_hash(ids, k, rowid_hash);
    free(ids);
    return rc;
}
