/* dataset.c - the in-memory Dataset: kinds, builder (add rows, finish) and select. Strings
 * live in ds_strings.c; hash and summary in ds_describe.c; splits and subsampling in ds_split.c;
 * epoch order and batches in ds_iter.c; file formats in ds_read.c, ds_beir.c and ds_write.c. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include "wordpiece.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- kinds */

const char *dataset_kind_name(DatasetKind kind) {
    switch (kind) {
    case AM_DS_PAIRS:     return "pairs";
    case AM_DS_GRADED:    return "graded";
    case AM_DS_LABELLED:  return "labelled";
    case AM_DS_TEXT:      return "text";
    case AM_DS_RETRIEVAL: return "retrieval";
    }
    return "unknown";
}

int dataset_kind_parse(const char *name, DatasetKind *out) {
    static const struct { const char *name; DatasetKind k; } tab[] = {
        {"pairs", AM_DS_PAIRS},       {"graded", AM_DS_GRADED},       {"sts", AM_DS_GRADED},
        {"labelled", AM_DS_LABELLED}, {"labels", AM_DS_LABELLED},     {"labeled", AM_DS_LABELLED},
        {"text", AM_DS_TEXT},         {"retrieval", AM_DS_RETRIEVAL}, {"beir", AM_DS_RETRIEVAL},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (name && strcmp(name, tab[i].name) == 0) {
            *out = tab[i].k;
            return AM_OK;
        }
    return am_error(AM_EINVAL, "unknown dataset kind \"%s\"\nHINT: one of pairs, graded (sts), labelled "
                    "(labels), text, retrieval (beir)", name ? name : "(null)");
}

/* ---------------------------------------------------------------- builder */

Dataset *dataset_new(DatasetKind kind, const char *origin) {
    AM_ASSERT(kind >= AM_DS_PAIRS && kind <= AM_DS_RETRIEVAL);
    Dataset *ds = xcalloc(1, sizeof *ds);
    ds->kind = kind;
    ds->origin = xstrdup(origin ? origin : "");
    ds->impl = xcalloc(1, sizeof *ds->impl);
    if (kind == AM_DS_PAIRS) {
        ds->pos_start = xcalloc(1, sizeof(int64_t));
        ds->neg_start = xcalloc(1, sizeof(int64_t));
    }
    if (kind == AM_DS_RETRIEVAL) ds->qrel_start = xcalloc(1, sizeof(int64_t));
    return ds;
}

void dataset_delete(Dataset *ds) {
    if (!ds) return;
    DatasetImpl *im = ds->impl;
    free(ds->origin);
    free(ds->text);
    free(ds->pos_start);
    free(ds->neg_start);
    free(ds->pos);
    free(ds->neg);
    free(ds->text2);
    free(ds->score);
    free(ds->label);
    free(ds->label_names);
    free(ds->query_id);
    free(ds->doc_id);
    free(ds->doc_title);
    free(ds->doc_text);
    free(ds->split_names);
    free(ds->qrel_start);
    free(ds->qrel_query);
    free(ds->qrel_doc);
    free(ds->qrel_grade);
    if (im) {
        ds_arena_free(&im->arena);
        free(im->intern.slots);
        ds_strmap_free(&im->doc_ids);
        ds_strmap_free(&im->query_ids);
        ds_strmap_free(&im->labels);
        ds_strmap_free(&im->splits);
        free(im->qrel_set);
        free(im->qrel_split);
        free(im);
    }
    free(ds);
}

int64_t ds_grow_cap(int64_t cap, int64_t need) {
    int64_t c = cap ? cap : 16;
    while (c < need) c *= 2;
    return c;
}

/* Make room for one more row of ds->kind. */
static void ensure_row(Dataset *ds) {
    DatasetImpl *im = ds->impl;
    if (ds->n < im->cap_rows) return;
    int64_t c = ds_grow_cap(im->cap_rows, ds->n + 1);
    RESIZE(ds->text, c);
    switch (ds->kind) {
    case AM_DS_PAIRS:
        RESIZE(ds->pos_start, c + 1);
        RESIZE(ds->neg_start, c + 1);
        break;
    case AM_DS_GRADED:
        RESIZE(ds->text2, c);
        RESIZE(ds->score, c);
        break;
    case AM_DS_LABELLED:
        RESIZE(ds->label, c);
        break;
    case AM_DS_RETRIEVAL:
        RESIZE(ds->query_id, c);
        break;
    case AM_DS_TEXT:
        break;
    }
    im->cap_rows = c;
}

static int wrong_kind(const Dataset *ds, DatasetKind want) {
    return am_error(AM_EINVAL, "cannot add a %s row to a %s dataset", dataset_kind_name(want),
                    dataset_kind_name(ds->kind));
}

static DsStr S(const char *s) { return (DsStr){s, strlen(s)}; }

static int check_utf8(const char *s, const char *what) {
    size_t bad;
    if (!s) return am_error(AM_EINVAL, "%s is NULL", what);
    if (am_utf8_validate(s, strlen(s), &bad) != AM_OK)
        return am_error(AM_EUTF8, "%s is not valid UTF-8 (byte %zu)", what, bad + 1);
    return AM_OK;
}

int ds_add_pair(Dataset *ds, DsStr query, const DsStr *pos, int n_pos, const DsStr *neg, int n_neg) {
    if (ds->kind != AM_DS_PAIRS) return wrong_kind(ds, AM_DS_PAIRS);
    if (n_pos < 1) return am_error(AM_EINVAL, "a pair needs at least one positive");
    if (n_neg < 0) return am_error(AM_EINVAL, "negative count %d", n_neg);
    DatasetImpl *im = ds->impl;
    ensure_row(ds);
    int64_t np = ds->pos_start[ds->n], nn = ds->neg_start[ds->n];
    if (np + n_pos > im->cap_pos) {
        im->cap_pos = ds_grow_cap(im->cap_pos, np + n_pos);
        RESIZE(ds->pos, im->cap_pos);
    }
    if (nn + n_neg > im->cap_neg) {
        im->cap_neg = ds_grow_cap(im->cap_neg, nn + n_neg);
        RESIZE(ds->neg, im->cap_neg);
    }
    ds->text[ds->n] = ds_intern(ds, query.s, query.n);
    for (int i = 0; i < n_pos; i++) ds->pos[np + i] = ds_intern(ds, pos[i].s, pos[i].n);
    for (int i = 0; i < n_neg; i++) ds->neg[nn + i] = ds_intern(ds, neg[i].s, neg[i].n);
    ds->pos_start[ds->n + 1] = np + n_pos;
    ds->neg_start[ds->n + 1] = nn + n_neg;
    ds->n++;
    im->finished = 0;
    return AM_OK;
}

int ds_add_graded(Dataset *ds, DsStr s1, DsStr s2, double score) {
    if (ds->kind != AM_DS_GRADED) return wrong_kind(ds, AM_DS_GRADED);
    if (!isfinite(score)) return am_error(AM_EINVAL, "score %g is not finite", score);
    ensure_row(ds);
    ds->text[ds->n] = ds_intern(ds, s1.s, s1.n);
    ds->text2[ds->n] = ds_intern(ds, s2.s, s2.n);
    ds->score[ds->n] = score;
    ds->n++;
    ds->impl->finished = 0;
    return AM_OK;
}

static int32_t label_id(Dataset *ds, DsStr label) {
    DatasetImpl *im = ds->impl;
    int fresh;
    StrSlot *e = ds_intern_key(ds, &im->labels, label, ds->n_labels, &fresh);
    if (fresh) {
        if (ds->n_labels == im->cap_labels) {
            im->cap_labels = (int)ds_grow_cap(im->cap_labels, ds->n_labels + 1);
            RESIZE(ds->label_names, im->cap_labels);
        }
        ds->label_names[ds->n_labels++] = e->key;
    }
    return (int32_t)e->val;
}

int ds_add_labelled(Dataset *ds, DsStr text, DsStr label) {
    if (ds->kind != AM_DS_LABELLED) return wrong_kind(ds, AM_DS_LABELLED);
    if (label.n == 0) return am_error(AM_EINVAL, "empty label");
    ensure_row(ds);
    ds->text[ds->n] = ds_intern(ds, text.s, text.n);
    ds->label[ds->n] = label_id(ds, label);
    ds->n++;
    ds->impl->finished = 0;
    return AM_OK;
}

int ds_add_text(Dataset *ds, DsStr text) {
    if (ds->kind != AM_DS_TEXT) return wrong_kind(ds, AM_DS_TEXT);
    ensure_row(ds);
    ds->text[ds->n] = ds_intern(ds, text.s, text.n);
    ds->n++;
    ds->impl->finished = 0;
    return AM_OK;
}

#define IDFMT "\"%.*s%s\""
#define IDARG(x) (int)((x).n > 80 ? 80 : (x).n), (x).s, (x).n > 80 ? "..." : ""

int ds_add_doc(Dataset *ds, DsStr id, DsStr title, DsStr text) {
    if (ds->kind != AM_DS_RETRIEVAL) return wrong_kind(ds, AM_DS_RETRIEVAL);
    DatasetImpl *im = ds->impl;
    if (ds_strmap_get(&im->doc_ids, id.s, id.n)) return am_error(AM_EEXIST, "duplicate corpus id " IDFMT, IDARG(id));
    if (ds->n_docs == im->cap_docs) {
        im->cap_docs = ds_grow_cap(im->cap_docs, ds->n_docs + 1);
        RESIZE(ds->doc_id, im->cap_docs);
        RESIZE(ds->doc_title, im->cap_docs);
        RESIZE(ds->doc_text, im->cap_docs);
    }
    int fresh;
    StrSlot *e = ds_intern_key(ds, &im->doc_ids, id, ds->n_docs, &fresh);
    ds->doc_id[ds->n_docs] = e->key;
    ds->doc_title[ds->n_docs] = ds_intern(ds, title.s, title.n);
    ds->doc_text[ds->n_docs] = ds_intern(ds, text.s, text.n);
    ds->n_docs++;
    im->finished = 0;
    return AM_OK;
}

int ds_add_query(Dataset *ds, DsStr id, DsStr text) {
    if (ds->kind != AM_DS_RETRIEVAL) return wrong_kind(ds, AM_DS_RETRIEVAL);
    DatasetImpl *im = ds->impl;
    if (ds_strmap_get(&im->query_ids, id.s, id.n)) return am_error(AM_EEXIST, "duplicate query id " IDFMT, IDARG(id));
    ensure_row(ds);
    int fresh;
    StrSlot *e = ds_intern_key(ds, &im->query_ids, id, ds->n, &fresh);
    ds->query_id[ds->n] = e->key;
    ds->text[ds->n] = ds_intern(ds, text.s, text.n);
    ds->n++;
    im->finished = 0;
    return AM_OK;
}

int ds_add_qrel(Dataset *ds, DsStr split, DsStr qid, DsStr did, int64_t grade) {
    if (ds->kind != AM_DS_RETRIEVAL) return wrong_kind(ds, AM_DS_RETRIEVAL);
    DatasetImpl *im = ds->impl;
    if (grade < 0) return am_error(AM_EINVAL, "negative grade %lld", (long long)grade);
    if (grade > INT32_MAX) return am_error(AM_EINVAL, "grade %lld is too large", (long long)grade);
    if (split.n == 0) return am_error(AM_EINVAL, "empty split name");
    int64_t *q = ds_strmap_get(&im->query_ids, qid.s, qid.n);
    if (!q) return am_error(AM_ENOTFOUND, "unknown query id " IDFMT " (not in the queries)", IDARG(qid));
    int64_t *d = ds_strmap_get(&im->doc_ids, did.s, did.n);
    if (!d) return am_error(AM_ENOTFOUND, "unknown corpus id " IDFMT " (not in the corpus)", IDARG(did));
    int64_t *sp = ds_strmap_get(&im->splits, split.s, split.n);
    int32_t s = sp ? (int32_t)*sp : ds->n_splits;
    if (!ds_qrelset_add(im, s, *q, *d))
        return am_error(AM_EEXIST, "duplicate qrel: query " IDFMT ", doc " IDFMT " appear twice in split \"%.*s\"",
                        IDARG(qid), IDARG(did), (int)split.n, split.s);
    if (!sp) {
        if (ds->n_splits == im->cap_splits) {
            im->cap_splits = (int)ds_grow_cap(im->cap_splits, ds->n_splits + 1);
            RESIZE(ds->split_names, im->cap_splits);
        }
        int fresh;
        StrSlot *e = ds_intern_key(ds, &im->splits, split, s, &fresh);
        ds->split_names[ds->n_splits++] = e->key;
    }
    if (ds->n_qrels == im->cap_qrels) {
        im->cap_qrels = ds_grow_cap(im->cap_qrels, ds->n_qrels + 1);
        RESIZE(ds->qrel_query, im->cap_qrels);
        RESIZE(ds->qrel_doc, im->cap_qrels);
        RESIZE(ds->qrel_grade, im->cap_qrels);
        RESIZE(im->qrel_split, im->cap_qrels);
    }
    ds->qrel_query[ds->n_qrels] = *q;
    ds->qrel_doc[ds->n_qrels] = *d;
    ds->qrel_grade[ds->n_qrels] = (int32_t)grade;
    im->qrel_split[ds->n_qrels] = s;
    ds->n_qrels++;
    im->finished = 0;
    return AM_OK;
}

/* ---- public adds: check the strings, then the unchecked versions ---- */

int dataset_add_pair(Dataset *ds, const char *query, const char *const *pos, int n_pos,
                     const char *const *neg, int n_neg) {
    int rc = check_utf8(query, "query");
    if (n_pos < 1 || !pos) return am_error(AM_EINVAL, "a pair needs at least one positive");
    if (n_neg < 0 || (n_neg > 0 && !neg)) return am_error(AM_EINVAL, "bad negatives (%d)", n_neg);
    for (int i = 0; rc == AM_OK && i < n_pos; i++) rc = check_utf8(pos[i], "positive");
    for (int i = 0; rc == AM_OK && i < n_neg; i++) rc = check_utf8(neg[i], "negative");
    if (rc) return rc;
    DsStr stack[16], *ps = n_pos + n_neg <= 16 ? stack : xmalloc((size_t)(n_pos + n_neg) * sizeof *ps);
    for (int i = 0; i < n_pos; i++) ps[i] = S(pos[i]);
    for (int i = 0; i < n_neg; i++) ps[n_pos + i] = S(neg[i]);
    rc = ds_add_pair(ds, S(query), ps, n_pos, ps + n_pos, n_neg);
    if (ps != stack) free(ps);
    return rc;
}

int dataset_add_graded(Dataset *ds, const char *s1, const char *s2, double score) {
    int rc = check_utf8(s1, "sentence1");
    if (!rc) rc = check_utf8(s2, "sentence2");
    return rc ? rc : ds_add_graded(ds, S(s1), S(s2), score);
}

int dataset_add_labelled(Dataset *ds, const char *text, const char *label) {
    int rc = check_utf8(text, "text");
    if (!rc) rc = check_utf8(label, "label");
    return rc ? rc : ds_add_labelled(ds, S(text), S(label));
}

int dataset_add_text(Dataset *ds, const char *text) {
    int rc = check_utf8(text, "text");
    return rc ? rc : ds_add_text(ds, S(text));
}

int dataset_add_doc(Dataset *ds, const char *id, const char *title, const char *text) {
    if (!title) title = "";
    int rc = check_utf8(id, "doc id");
    if (!rc) rc = check_utf8(title, "title");
    if (!rc) rc = check_utf8(text, "text");
    return rc ? rc : ds_add_doc(ds, S(id), S(title), S(text));
}

int dataset_add_query(Dataset *ds, const char *id, const char *text) {
    int rc = check_utf8(id, "query id");
    if (!rc) rc = check_utf8(text, "text");
    return rc ? rc : ds_add_query(ds, S(id), S(text));
}

int dataset_add_qrel(Dataset *ds, const char *split, const char *query_id, const char *doc_id, int grade) {
    int rc = check_utf8(split, "split");
    if (!rc) rc = check_utf8(query_id, "query id");
    if (!rc) rc = check_utf8(doc_id, "doc id");
    return rc ? rc : ds_add_qrel(ds, S(split), S(query_id), S(doc_id), grade);
}

/* ---------------------------------------------------------------- finish */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort names[0..k) and return old -> new index (malloc'd). */
static int32_t *sort_names(const char **names, int k) {
    if (k == 0) return xmalloc(sizeof(int32_t));
    const char **sorted = xmalloc((size_t)(k ? k : 1) * sizeof *sorted);
    memcpy(sorted, names, (size_t)k * sizeof *sorted);
    qsort(sorted, (size_t)k, sizeof *sorted, cmp_str_ptr);
    int32_t *remap = xmalloc((size_t)(k ? k : 1) * sizeof *remap);
    for (int i = 0; i < k; i++) { /* names are interned: find by binary search */
        const char **f = bsearch(&names[i], sorted, (size_t)k, sizeof *sorted, cmp_str_ptr);
        remap[i] = (int32_t)(f - sorted);
    }
    memcpy(names, sorted, (size_t)k * sizeof *sorted);
    free(sorted);
    return remap;
}

static void remap_map(StrMap *m, const int32_t *remap) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) m->slots[i].val = remap[m->slots[i].val];
}

int dataset_finish(Dataset *ds) {
    DatasetImpl *im = ds->impl;
    if (ds->kind == AM_DS_LABELLED && ds->n_labels > 0) {
        int32_t *remap = sort_names(ds->label_names, ds->n_labels);
        for (int64_t i = 0; i < ds->n; i++) ds->label[i] = remap[ds->label[i]];
        remap_map(&im->labels, remap);
        free(remap);
    }
    if (ds->kind == AM_DS_RETRIEVAL) {
        int k = ds->n_splits;
        int32_t *remap = sort_names(ds->split_names, k);
        remap_map(&im->splits, remap);
        for (size_t i = 0; i < im->qrel_set_cap; i++)
            if (im->qrel_set[i].s >= 0) im->qrel_set[i].s = remap[im->qrel_set[i].s];
        /* the set's hashes used the old split indices: rebuild it */
        if (im->qrel_set_cap) {
            QrelSlot *old = im->qrel_set;
            im->qrel_set = NULL;
            ds_qrelset_rebuild(im, im->qrel_set_cap, old, im->qrel_set_cap);
            free(old);
        }
        for (int64_t i = 0; i < ds->n_qrels; i++) im->qrel_split[i] = remap[im->qrel_split[i]];
        free(remap);
        /* stable counting sort of the qrels by split */
        free(ds->qrel_start);
        ds->qrel_start = xcalloc((size_t)k + 1, sizeof *ds->qrel_start);
        for (int64_t i = 0; i < ds->n_qrels; i++) ds->qrel_start[im->qrel_split[i] + 1]++;
        for (int s = 0; s < k; s++) ds->qrel_start[s + 1] += ds->qrel_start[s];
        size_t m = (size_t)(ds->n_qrels ? ds->n_qrels : 1);
        int64_t *nq = xmalloc(m * sizeof *nq), *nd = xmalloc(m * sizeof *nd);
        int32_t *ng = xmalloc(m * sizeof *ng), *ns = xmalloc(m * sizeof *ns);
        int64_t *fill = xmalloc(((size_t)k + 1) * sizeof *fill);
        memcpy(fill, ds->qrel_start, ((size_t)k + 1) * sizeof *fill);
        for (int64_t i = 0; i < ds->n_qrels; i++) {
            int64_t j = fill[im->qrel_split[i]]++;
            nq[j] = ds->qrel_query[i];
            nd[j] = ds->qrel_doc[i];
            ng[j] = ds->qrel_grade[i];
            ns[j] = im->qrel_split[i];
        }
        free(fill);
        free(ds->qrel_query);
        free(ds->qrel_doc);
        free(ds->qrel_grade);
        free(im->qrel_split);
        ds->qrel_query = nq;
        ds->qrel_doc = nd;
        ds->qrel_grade = ng;
        im->qrel_split = ns;
        im->cap_qrels = (int64_t)m;
    }
    im->finished = 1;
    return AM_OK;
}

/* ---------------------------------------------------------------- select */

int dataset_select(const Dataset *ds, const int64_t *ids, int64_t n, Dataset **out) {
    CHECK_FINISHED(ds);
    *out = NULL;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= ds->n)
            return am_error(AM_EINVAL, "%s: row id %lld out of range (%lld rows)", ds->origin,
                            (long long)ids[i], (long long)ds->n);
    Dataset *o = dataset_new(ds->kind, ds->origin);
    int rc = AM_OK;
    DsStr *buf = NULL;
    int64_t cap = 0;
    switch (ds->kind) {
    case AM_DS_PAIRS:
        for (int64_t i = 0; i < n && !rc; i++) {
            int64_t r = ids[i], p0 = ds->pos_start[r], np = ds->pos_start[r + 1] - p0;
            int64_t n0 = ds->neg_start[r], nn = ds->neg_start[r + 1] - n0;
            if (np + nn > cap) {
                cap = ds_grow_cap(cap, np + nn);
                RESIZE(buf, cap);
            }
            for (int64_t j = 0; j < np; j++) buf[j] = S(ds->pos[p0 + j]);
            for (int64_t j = 0; j < nn; j++) buf[np + j] = S(ds->neg[n0 + j]);
            rc = ds_add_pair(o, S(ds->text[r]), buf, (int)np, buf + np, (int)nn);
        }
        break;
    case AM_DS_GRADED:
        for (int64_t i = 0; i < n && !rc; i++)
            rc = ds_add_graded(o, S(ds->text[ids[i]]), S(ds->text2[ids[i]]), ds->score[ids[i]]);
        break;
    case AM_DS_LABELLED:
        for (int l = 0; l < ds->n_labels; l++) label_id(o, S(ds->label_names[l]));
        for (int64_t i = 0; i < n && !rc; i++)
            rc = ds_add_labelled(o, S(ds->text[ids[i]]), S(ds->label_names[ds->label[ids[i]]]));
        break;
    case AM_DS_TEXT:
        for (int64_t i = 0; i < n && !rc; i++) rc = ds_add_text(o, S(ds->text[ids[i]]));
        break;
    case AM_DS_RETRIEVAL: {
        for (int64_t d = 0; d < ds->n_docs && !rc; d++)
            rc = ds_add_doc(o, S(ds->doc_id[d]), S(ds->doc_title[d]), S(ds->doc_text[d]));
        for (int64_t i = 0; i < n && !rc; i++) {
            rc = ds_add_query(o, S(ds->query_id[ids[i]]), S(ds->text[ids[i]]));
            if (rc == AM_EEXIST)
                rc = am_error(AM_EINVAL, "%s: row id %lld selected twice (retrieval rows are queries)",
                              ds->origin, (long long)ids[i]);
        }
        for (int64_t j = 0; j < ds->n_qrels && !rc; j++) {
            int64_t q = ds->qrel_query[j];
            if (!ds_strmap_get(&o->impl->query_ids, ds->query_id[q], strlen(ds->query_id[q]))) continue;
            rc = ds_add_qrel(o, S(ds->split_names[ds->impl->qrel_split[j]]), S(ds->query_id[q]),
                             S(ds->doc_id[ds->qrel_doc[j]]), ds->qrel_grade[j]);
        }
        break;
    }
    }
    free(buf);
    if (rc) {
        dataset_delete(o);
        return rc;
    }
    dataset_finish(o);
    *out = o;
    return AM_OK;
}

/* ---------------------------------------------------------------- small shared helpers */

void ds_format_double(double v, char buf[32]) {
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, 32, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

int ds_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}
