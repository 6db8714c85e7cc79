/* ds_describe.c - what a Dataset is: its content hash and the JSON summary (dataset_describe). */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- content hash */

void ds_hash_u64(AmHasher *h, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    am_hasher_update(h, b, 8);
}

static void h_str(AmHasher *h, const char *s) {
    size_t n = strlen(s);
    ds_hash_u64(h, n);
    am_hasher_update(h, s, n);
}

void dataset_content_hash(const Dataset *ds, char out[33]) {
    CHECK_FINISHED(ds);
    AmHasher *h = am_hasher_new();
    h_str(h, "amalgam-dataset-v1");
    h_str(h, dataset_kind_name(ds->kind));
    ds_hash_u64(h, (uint64_t)ds->n);
    for (int64_t i = 0; i < ds->n; i++) {
        switch (ds->kind) {
        case AM_DS_PAIRS:
            h_str(h, ds->text[i]);
            ds_hash_u64(h, (uint64_t)(ds->pos_start[i + 1] - ds->pos_start[i]));
            for (int64_t j = ds->pos_start[i]; j < ds->pos_start[i + 1]; j++) h_str(h, ds->pos[j]);
            ds_hash_u64(h, (uint64_t)(ds->neg_start[i + 1] - ds->neg_start[i]));
            for (int64_t j = ds->neg_start[i]; j < ds->neg_start[i + 1]; j++) h_str(h, ds->neg[j]);
            break;
        case AM_DS_GRADED: {
            h_str(h, ds->text[i]);
            h_str(h, ds->text2[i]);
            uint64_t bits;
            memcpy(&bits, &ds->score[i], 8);
            ds_hash_u64(h, bits);
            break;
        }
        case AM_DS_LABELLED:
            h_str(h, ds->text[i]);
            h_str(h, ds->label_names[ds->label[i]]);
            break;
        case AM_DS_TEXT:
            h_str(h, ds->text[i]);
            break;
        case AM_DS_RETRIEVAL:
            h_str(h, ds->query_id[i]);
            h_str(h, ds->text[i]);
            break;
        }
    }
    if (ds->kind == AM_DS_RETRIEVAL) {
        ds_hash_u64(h, (uint64_t)ds->n_docs);
        for (int64_t d = 0; d < ds->n_docs; d++) {
            h_str(h, ds->doc_id[d]);
            h_str(h, ds->doc_title[d]);
            h_str(h, ds->doc_text[d]);
        }
        ds_hash_u64(h, (uint64_t)ds->n_splits);
        for (int s = 0; s < ds->n_splits; s++) {
            h_str(h, ds->split_names[s]);
            ds_hash_u64(h, (uint64_t)(ds->qrel_start[s + 1] - ds->qrel_start[s]));
            for (int64_t j = ds->qrel_start[s]; j < ds->qrel_start[s + 1]; j++) {
                h_str(h, ds->query_id[ds->qrel_query[j]]);
                h_str(h, ds->doc_id[ds->qrel_doc[j]]);
                ds_hash_u64(h, (uint64_t)ds->qrel_grade[j]);
            }
        }
    }
    am_hasher_hex(h, out);
    am_hasher_delete(h);
}

/* ---------------------------------------------------------------- describe */

char *dataset_describe(const Dataset *ds) {
    CHECK_FINISHED(ds);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "kind", dataset_kind_name(ds->kind));
    cJSON_AddStringToObject(o, "origin", ds->origin);
    cJSON_AddNumberToObject(o, "rows", (double)ds->n);
    switch (ds->kind) {
    case AM_DS_PAIRS: {
        int64_t maxp = 0, withneg = 0;
        for (int64_t i = 0; i < ds->n; i++) {
            int64_t p = ds->pos_start[i + 1] - ds->pos_start[i];
            if (p > maxp) maxp = p;
            if (ds->neg_start[i + 1] > ds->neg_start[i]) withneg++;
        }
        cJSON_AddNumberToObject(o, "positives", (double)ds->pos_start[ds->n]);
        cJSON_AddNumberToObject(o, "negatives", (double)ds->neg_start[ds->n]);
        cJSON_AddNumberToObject(o, "max_positives", (double)maxp);
        cJSON_AddNumberToObject(o, "rows_with_negatives", (double)withneg);
        break;
    }
    case AM_DS_GRADED: {
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        for (int64_t i = 0; i < ds->n; i++) {
            lo = fmin(lo, ds->score[i]);
            hi = fmax(hi, ds->score[i]);
            sum += ds->score[i];
        }
        if (ds->n) {
            cJSON_AddNumberToObject(o, "score_min", lo);
            cJSON_AddNumberToObject(o, "score_max", hi);
            cJSON_AddNumberToObject(o, "score_mean", sum / (double)ds->n);
        }
        break;
    }
    case AM_DS_LABELLED: {
        int64_t *cnt = xcalloc((size_t)ds->n_labels + 1, sizeof *cnt);
        for (int64_t i = 0; i < ds->n; i++) cnt[ds->label[i]]++;
        cJSON *arr = cJSON_AddArrayToObject(o, "labels");
        for (int l = 0; l < ds->n_labels; l++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", ds->label_names[l]);
            cJSON_AddNumberToObject(e, "count", (double)cnt[l]);
            cJSON_AddItemToArray(arr, e);
        }
        free(cnt);
        break;
    }
    case AM_DS_TEXT: {
        double bytes = 0;
        for (int64_t i = 0; i < ds->n; i++) bytes += (double)strlen(ds->text[i]);
        cJSON_AddNumberToObject(o, "bytes", bytes);
        break;
    }
    case AM_DS_RETRIEVAL: {
        cJSON_AddNumberToObject(o, "docs", (double)ds->n_docs);
        cJSON_AddNumberToObject(o, "queries", (double)ds->n);
        cJSON *sp = cJSON_AddObjectToObject(o, "splits");
        uint8_t *seen = xcalloc((size_t)ds->n + 1, 1);
        for (int s = 0; s < ds->n_splits; s++) {
            int64_t nq = 0;
            memset(seen, 0, (size_t)ds->n + 1);
            for (int64_t j = ds->qrel_start[s]; j < ds->qrel_start[s + 1]; j++)
                if (!seen[ds->qrel_query[j]]) {
                    seen[ds->qrel_query[j]] = 1;
                    nq++;
                }
            cJSON *e = cJSON_AddObjectToObject(sp, ds->split_names[s]);
            cJSON_AddNumberToObject(e, "qrels", (double)(ds->qrel_start[s + 1] - ds->qrel_start[s]));
            cJSON_AddNumberToObject(e, "queries", (double)nq);
        }
        free(seen);
        break;
    }
    }
    char hash[33];
    dataset_content_hash(ds, hash);
    cJSON_AddStringToObject(o, "content_hash", hash);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    AM_ASSERT(s != NULL);
    char *r = xstrdup(s); /* callers free() it, whatever cJSON's hooks are */
    cJSON_free(s);
    return r;
}
