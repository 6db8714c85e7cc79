/* ds_strings.c - the Dataset's string storage: bump arena, interning set, string -> id maps,
 * and the set of qrel triples that rejects duplicates. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

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

void ds_arena_free(Arena *a) {
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

int64_t *ds_strmap_get(const StrMap *m, const char *s, size_t n) {
    StrSlot *e = strmap_find(m, s, n, str_hash(s, n));
    return e && e->key ? &e->val : NULL;
}

/* Insert key (already stable) -> val; returns the slot (existing one if present: *fresh = 0). */
StrSlot *ds_strmap_put(StrMap *m, const char *key, size_t n, uint64_t h, int64_t val, int *fresh) {
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

void ds_strmap_free(StrMap *m) {
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
StrSlot *ds_intern_key(Dataset *ds, StrMap *m, DsStr s, int64_t val, int *fresh) {
    const char *k = ds_intern(ds, s.s, s.n);
    return ds_strmap_put(m, k, s.n, str_hash(k, s.n), val, fresh);
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

void ds_qrelset_rebuild(DatasetImpl *im, size_t cap, const QrelSlot *old, size_t ocap) {
    QrelSlot *t = xmalloc(cap * sizeof *t);
    for (size_t i = 0; i < cap; i++) t[i].s = -1;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].s >= 0) *qrelset_find(t, cap, old[i].s, old[i].q, old[i].d) = old[i];
    free(im->qrel_set);
    im->qrel_set = t;
    im->qrel_set_cap = cap;
}

/* 1 if inserted, 0 if present */
int ds_qrelset_add(DatasetImpl *im, int32_t s, int64_t q, int64_t d) {
    if ((im->qrel_set_count + 1) * 10 > im->qrel_set_cap * 7) {
        QrelSlot *old = im->qrel_set;
        size_t ocap = im->qrel_set_cap;
        im->qrel_set = NULL;
        ds_qrelset_rebuild(im, ocap ? ocap * 2 : 64, old, ocap);
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
