/* dataset.c - the in-memory Dataset: arena + interning, builder, finish, select, content
 * hash, describe, splits, subsampling, epoch order, batches. File formats are in
 * ds_read.c and ds_write.c. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"
#include "wordpiece.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- arena */

#define ARENA_BLOCK (1u << 20)

static char *arena_alloc(Arena *a, size_t n) {
    ArenaBlock *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        ArenaBlock *nb = xmalloc(sizeof *nb + cap);
        nb->used = 0;
        nb->cap = cap;
        if (b && cap != ARENA_BLOCK) { /* big string: keep filling the current block */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    a->bytes += n;
    return p;
}

static void arena_free(Arena *a) {
    for (ArenaBlock *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    a->head = NULL;
    a->bytes = 0;
}

/* ---------------------------------------------------------------- string map */

static uint64_t str_hash(const char *s, size_t n) { return am_hash64(s, n, 0x616d616c67616dull); }

static StrSlot *strmap_find(const StrMap *m, const char *s, size_t n, uint64_t h) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        StrSlot *e = &m->slots[i];
        if (!e->key) return e;
        if (e->hash == h && e->len == n && memcmp(e->key, s, n) == 0) return e;
    }
}

static void strmap_grow(StrMap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    StrSlot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = xcalloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].key) continue;
        size_t j = (size_t)old[i].hash & (ncap - 1);
        while (m->slots[j].key) j = (j + 1) & (ncap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

int64_t *strmap_get(const StrMap *m, const char *s, size_t n) {
    StrSlot *e = strmap_find(m, s, n, str_hash(s, n));
    return e && e->key ? &e->val : NULL;
}

/* Insert key (already stable) -> val; returns the slot (existing one if present: *fresh = 0). */
static StrSlot *strmap_put(StrMap *m, const char *key, size_t n, uint64_t h, int64_t val, int *fresh) {
    if ((m->count + 1) * 10 > m->cap * 7) strmap_grow(m);
    StrSlot *e = strmap_find(m, key, n, h);
    if (e->key) {
        *fresh = 0;
        return e;
    }
    e->key = key;
    e->len = (uint32_t)n;
    e->hash = h;
    e->val = val;
    m->count++;
    *fresh = 1;
    return e;
}

static void strmap_free(StrMap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static void intern_rehash(InternSet *m, size_t ncap) {
    InternSlot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = xcalloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].key) continue;
        size_t j = old[i].hash & (ncap - 1);
        while (m->slots[j].key) j = (j + 1) & (ncap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void ds_reserve_strings(Dataset *ds, size_t n) {
    InternSet *m = &ds->impl->intern;
    size_t cap = m->cap ? m->cap : 64;
    while (n * 10 > cap * 7) cap *= 2;
    if (cap > m->cap) intern_rehash(m, cap);
}

const char *ds_intern(Dataset *ds, const char *s, size_t n) {
    InternSet *m = &ds->impl->intern;
    AM_ASSERT(n < UINT32_MAX);
    if ((m->count + 1) * 10 > m->cap * 7) intern_rehash(m, m->cap ? m->cap * 2 : 64);
    uint32_t h = (uint32_t)str_hash(s, n);
    size_t mask = m->cap - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
        InternSlot *e = &m->slots[i];
        if (!e->key) break;
        if (e->hash == h && e->len == n && memcmp(e->key, s, n) == 0) return e->key;
    }
    char *p = arena_alloc(&ds->impl->arena, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    m->slots[i] = (InternSlot){p, h, (uint32_t)n};
    m->count++;
    return p;
}

/* Interned string + its slot in map `m` (inserted with val if new). */
static StrSlot *intern_key(Dataset *ds, StrMap *m, DsStr s, int64_t val, int *fresh) {
    const char *k = ds_intern(ds, s.s, s.n);
    return strmap_put(m, k, s.n, str_hash(k, s.n), val, fresh);
}

/* ---------------------------------------------------------------- qrel set */

static uint64_t qrel_hash(int32_t s, int64_t q, int64_t d) {
    int64_t k[3] = {s, q, d};
    return am_hash64(k, sizeof k, 7);
}

static QrelSlot *qrelset_find(QrelSlot *t, size_t cap, int32_t s, int64_t q, int64_t d) {
    size_t mask = cap - 1;
    for (size_t i = (size_t)qrel_hash(s, q, d) & mask;; i = (i + 1) & mask)
        if (t[i].s < 0 || (t[i].s == s && t[i].q == q && t[i].d == d)) return &t[i];
}

static void qrelset_rebuild(DatasetImpl *im, size_t cap, const QrelSlot *old, size_t ocap) {
    QrelSlot *t = xmalloc(cap * sizeof *t);
    for (size_t i = 0; i < cap; i++) t[i].s = -1;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].s >= 0) *qrelset_find(t, cap, old[i].s, old[i].q, old[i].d) = old[i];
    free(im->qrel_set);
    im->qrel_set = t;
    im->qrel_set_cap = cap;
}

/* 1 if inserted, 0 if present */
static int qrelset_add(DatasetImpl *im, int32_t s, int64_t q, int64_t d) {
    if ((im->qrel_set_count + 1) * 10 > im->qrel_set_cap * 7) {
        QrelSlot *old = im->qrel_set;
        size_t ocap = im->qrel_set_cap;
        im->qrel_set = NULL;
        qrelset_rebuild(im, ocap ? ocap * 2 : 64, old, ocap);
        free(old);
    }
    QrelSlot *e = qrelset_find(im->qrel_set, im->qrel_set_cap, s, q, d);
    if (e->s >= 0) return 0;
    e->s = s;
    e->q = q;
    e->d = d;
    im->qrel_set_count++;
    return 1;
}

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
        arena_free(&im->arena);
        free(im->intern.slots);
        strmap_free(&im->doc_ids);
        strmap_free(&im->query_ids);
        strmap_free(&im->labels);
        strmap_free(&im->splits);
        free(im->qrel_set);
        free(im->qrel_split);
        free(im);
    }
    free(ds);
}

static int64_t grow_cap(int64_t cap, int64_t need) {
    int64_t c = cap ? cap : 16;
    while (c < need) c *= 2;
    return c;
}

#define RESIZE(p, cap) ((p) = xrealloc((p), (size_t)(cap) * sizeof *(p)))

/* Make room for one more row of ds->kind. */
static void ensure_row(Dataset *ds) {
    DatasetImpl *im = ds->impl;
    if (ds->n < im->cap_rows) return;
    int64_t c = grow_cap(im->cap_rows, ds->n + 1);
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
        im->cap_pos = grow_cap(im->cap_pos, np + n_pos);
        RESIZE(ds->pos, im->cap_pos);
    }
    if (nn + n_neg > im->cap_neg) {
        im->cap_neg = grow_cap(im->cap_neg, nn + n_neg);
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
    StrSlot *e = intern_key(ds, &im->labels, label, ds->n_labels, &fresh);
    if (fresh) {
        if (ds->n_labels == im->cap_labels) {
            im->cap_labels = (int)grow_cap(im->cap_labels, ds->n_labels + 1);
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
    if (strmap_get(&im->doc_ids, id.s, id.n)) return am_error(AM_EEXIST, "duplicate corpus id " IDFMT, IDARG(id));
    if (ds->n_docs == im->cap_docs) {
        im->cap_docs = grow_cap(im->cap_docs, ds->n_docs + 1);
        RESIZE(ds->doc_id, im->cap_docs);
        RESIZE(ds->doc_title, im->cap_docs);
        RESIZE(ds->doc_text, im->cap_docs);
    }
    int fresh;
    StrSlot *e = intern_key(ds, &im->doc_ids, id, ds->n_docs, &fresh);
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
    if (strmap_get(&im->query_ids, id.s, id.n)) return am_error(AM_EEXIST, "duplicate query id " IDFMT, IDARG(id));
    ensure_row(ds);
    int fresh;
    StrSlot *e = intern_key(ds, &im->query_ids, id, ds->n, &fresh);
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
    int64_t *q = strmap_get(&im->query_ids, qid.s, qid.n);
    if (!q) return am_error(AM_ENOTFOUND, "unknown query id " IDFMT " (not in the queries)", IDARG(qid));
    int64_t *d = strmap_get(&im->doc_ids, did.s, did.n);
    if (!d) return am_error(AM_ENOTFOUND, "unknown corpus id " IDFMT " (not in the corpus)", IDARG(did));
    int64_t *sp = strmap_get(&im->splits, split.s, split.n);
    int32_t s = sp ? (int32_t)*sp : ds->n_splits;
    if (!qrelset_add(im, s, *q, *d))
        return am_error(AM_EEXIST, "duplicate qrel: query " IDFMT ", doc " IDFMT " appear twice in split \"%.*s\"",
                        IDARG(qid), IDARG(did), (int)split.n, split.s);
    if (!sp) {
        if (ds->n_splits == im->cap_splits) {
            im->cap_splits = (int)grow_cap(im->cap_splits, ds->n_splits + 1);
            RESIZE(ds->split_names, im->cap_splits);
        }
        int fresh;
        StrSlot *e = intern_key(ds, &im->splits, split, s, &fresh);
        ds->split_names[ds->n_splits++] = e->key;
    }
    if (ds->n_qrels == im->cap_qrels) {
        im->cap_qrels = grow_cap(im->cap_qrels, ds->n_qrels + 1);
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
            qrelset_rebuild(im, im->qrel_set_cap, old, im->qrel_set_cap);
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

#define CHECK_FINISHED(ds) AM_ASSERT((ds)->impl->finished && "call dataset_finish first")

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
                cap = grow_cap(cap, np + nn);
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
            if (!strmap_get(&o->impl->query_ids, ds->query_id[q], strlen(ds->query_id[q]))) continue;
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

/* ---------------------------------------------------------------- content hash */

static void h_u64(AmHasher *h, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    am_hasher_update(h, b, 8);
}

static void h_str(AmHasher *h, const char *s) {
    size_t n = strlen(s);
    h_u64(h, n);
    am_hasher_update(h, s, n);
}

void dataset_content_hash(const Dataset *ds, char out[33]) {
    CHECK_FINISHED(ds);
    AmHasher *h = am_hasher_new();
    h_str(h, "amalgam-dataset-v1");
    h_str(h, dataset_kind_name(ds->kind));
    h_u64(h, (uint64_t)ds->n);
    for (int64_t i = 0; i < ds->n; i++) {
        switch (ds->kind) {
        case AM_DS_PAIRS:
            h_str(h, ds->text[i]);
            h_u64(h, (uint64_t)(ds->pos_start[i + 1] - ds->pos_start[i]));
            for (int64_t j = ds->pos_start[i]; j < ds->pos_start[i + 1]; j++) h_str(h, ds->pos[j]);
            h_u64(h, (uint64_t)(ds->neg_start[i + 1] - ds->neg_start[i]));
            for (int64_t j = ds->neg_start[i]; j < ds->neg_start[i + 1]; j++) h_str(h, ds->neg[j]);
            break;
        case AM_DS_GRADED: {
            h_str(h, ds->text[i]);
            h_str(h, ds->text2[i]);
            uint64_t bits;
            memcpy(&bits, &ds->score[i], 8);
            h_u64(h, bits);
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
        h_u64(h, (uint64_t)ds->n_docs);
        for (int64_t d = 0; d < ds->n_docs; d++) {
            h_str(h, ds->doc_id[d]);
            h_str(h, ds->doc_title[d]);
            h_str(h, ds->doc_text[d]);
        }
        h_u64(h, (uint64_t)ds->n_splits);
        for (int s = 0; s < ds->n_splits; s++) {
            h_str(h, ds->split_names[s]);
            h_u64(h, (uint64_t)(ds->qrel_start[s + 1] - ds->qrel_start[s]));
            for (int64_t j = ds->qrel_start[s]; j < ds->qrel_start[s + 1]; j++) {
                h_str(h, ds->query_id[ds->qrel_query[j]]);
                h_str(h, ds->doc_id[ds->qrel_doc[j]]);
                h_u64(h, (uint64_t)ds->qrel_grade[j]);
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

/* ---------------------------------------------------------------- rng helpers */

enum { SEED_SPLIT = 1, SEED_SAMPLE = 2, SEED_ORDER = 3 };

static void seed_rng(AmRng *r, uint64_t seed, uint64_t purpose, int64_t extra) {
    uint64_t k[3] = {seed, purpose, (uint64_t)extra};
    am_rng_seed(r, am_hash64(k, sizeof k, 0));
}

static void shuffle_i64(int64_t *a, int64_t n, AmRng *r) {
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
    seed_rng(&r, seed, SEED_SPLIT, 0);
    shuffle_i64(order, ng, &r);
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
    for (int64_t i = 0; i < n; i++) h_u64(h, (uint64_t)ids[i]);
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
    seed_rng(&r, seed, SEED_SAMPLE, 0);
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

/* ---------------------------------------------------------------- order and iteration */

void dataset_batch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *order) {
    AM_ASSERT(n >= 0 && n <= (int64_t)UINT32_MAX);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    AmRng r;
    seed_rng(&r, seed, SEED_ORDER, epoch);
    shuffle_i64(order, n, &r);
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
