/* ds_internal.h - shared inside src/data (not a public API): the arena, string maps and
 * unchecked add functions the loaders use after validating a whole file. */
#ifndef AM_DS_INTERNAL_H
#define AM_DS_INTERNAL_H

#include "am_base.h"
#include "dataset.h"

#include <stddef.h>
#include <stdint.h>

/* Bump arena of stable, NUL-terminated strings. */
typedef struct ArenaBlock {
    struct ArenaBlock *next;
    size_t used, cap;
    char data[];
} ArenaBlock;
typedef struct {
    ArenaBlock *head;
    size_t bytes; /* payload bytes handed out */
} Arena;

/* Open-addressing map from a byte string to an int64. Keys are borrowed (interned). */
typedef struct {
    const char *key;  /* NULL = empty slot */
    uint32_t len;
    uint64_t hash;
    int64_t val;
} StrSlot;
typedef struct {
    StrSlot *slots;
    size_t cap, count; /* cap is a power of two */
} StrMap;

/* Set of (split, query, doc) qrel triples. */
typedef struct {
    int64_t q, d;
    int32_t s;     /* -1 = empty */
} QrelSlot;

/* The interning set: 16-byte slots (4 per cache line), since every string goes through it. */
typedef struct {
    const char *key;  /* NULL = empty slot */
    uint32_t hash;    /* low 32 bits of the string's hash */
    uint32_t len;
} InternSlot;
typedef struct {
    InternSlot *slots;
    size_t cap, count;
} InternSet;

struct DatasetImpl {
    Arena arena;
    InternSet intern;    /* every string, stored once */
    StrMap doc_ids;      /* id -> doc index */
    StrMap query_ids;    /* id -> row index */
    StrMap labels;       /* label -> label id */
    StrMap splits;       /* split -> split index (insertion order until finish) */
    QrelSlot *qrel_set;
    size_t qrel_set_cap, qrel_set_count;
    int32_t *qrel_split; /* (n_qrels) split index of each qrel */
    int finished;
    int64_t cap_rows, cap_pos, cap_neg, cap_docs, cap_qrels;
    int cap_labels, cap_splits;
};

const char *ds_intern(Dataset *ds, const char *s, size_t n);
/* Size the interning set for about n strings (loaders call it with a line-count estimate). */
void ds_reserve_strings(Dataset *ds, size_t n);
int64_t *ds_strmap_get(const StrMap *m, const char *s, size_t n);

/* ds_strings.c: storage behind the builder */
void ds_arena_free(Arena *a);
/* Insert key (already stable) -> val; returns the slot (existing one if present: *fresh = 0). */
StrSlot *ds_strmap_put(StrMap *m, const char *key, size_t n, uint64_t h, int64_t val, int *fresh);
void ds_strmap_free(StrMap *m);
/* Interned string + its slot in map `m` (inserted with val if new). */
typedef struct { const char *s; size_t n; } DsStr;
StrSlot *ds_intern_key(Dataset *ds, StrMap *m, DsStr s, int64_t val, int *fresh);
void ds_qrelset_rebuild(DatasetImpl *im, size_t cap, const QrelSlot *old, size_t ocap);
/* 1 if inserted, 0 if present */
int ds_qrelset_add(DatasetImpl *im, int32_t s, int64_t q, int64_t d);

/* Capacity >= need, doubling from cap (16 when 0). */
int64_t ds_grow_cap(int64_t cap, int64_t need);
#define RESIZE(p, cap) ((p) = xrealloc((p), (size_t)(cap) * sizeof *(p)))
#define CHECK_FINISHED(ds) AM_ASSERT((ds)->impl->finished && "call dataset_finish first")

/* Seeded streams, one per purpose, so that splits, samples and epoch orders never share one. */
enum { SEED_SPLIT = 1, SEED_SAMPLE = 2, SEED_ORDER = 3 };
void ds_seed_rng(AmRng *r, uint64_t seed, uint64_t purpose, int64_t extra);
void ds_shuffle_i64(int64_t *a, int64_t n, AmRng *r);
/* Little-endian u64 into a hasher (content and row-id hashes). */
void ds_hash_u64(AmHasher *h, uint64_t v);

/* Unchecked (no UTF-8 check, strings need not be NUL-terminated) adds used by the loaders.
 * Same return codes as the public ones otherwise; messages carry no location. */
int ds_add_pair(Dataset *ds, DsStr query, const DsStr *pos, int n_pos, const DsStr *neg, int n_neg);
int ds_add_graded(Dataset *ds, DsStr s1, DsStr s2, double score);
int ds_add_labelled(Dataset *ds, DsStr text, DsStr label);
int ds_add_text(Dataset *ds, DsStr text);
int ds_add_doc(Dataset *ds, DsStr id, DsStr title, DsStr text);
int ds_add_query(Dataset *ds, DsStr id, DsStr text);
int ds_add_qrel(Dataset *ds, DsStr split, DsStr qid, DsStr did, int64_t grade);

/* Shortest "%.Ng" (N = 15..17) that strtod reads back as the same double. */
void ds_format_double(double v, char buf[32]);
/* AM_FMT_AUTO -> the format `name`'s extension implies for kind; AM_EINVAL (with a HINT) if
 * the result cannot hold kind. Shared by readers and writers so that they agree. */
int ds_resolve_format(DatasetKind kind, DatasetFormat fmt, const char *name, DatasetFormat *out);
/* 1 if path ends with suffix. */
int ds_ends_with(const char *s, const char *suffix);

/* What a BEIR directory holds (errors of the loader and of the qrels parser). */
#define HINT_BEIR "HINT: a BEIR directory holds corpus.jsonl ({\"_id\", \"title\", \"text\"}), queries.jsonl " \
                  "({\"_id\", \"text\"}) and qrels/<split>.tsv (header query-id<TAB>corpus-id<TAB>score)"

/* ds_read.c: 0 missing, 1 file, 2 directory. */
int ds_path_kind(const char *path);
/* Whole file, plain or gzip (by the ".gz" suffix), NUL-terminated, malloc'd. */
int ds_read_all(const char *path, char **out, size_t *len);
/* ds_parse.c: UTF-8 and NUL check of a whole buffer, reported as file:line and byte of the line. */
int ds_check_text(const char *buf, size_t len, const char *origin);
/* Lines in buf (for sizing the interning set up front). */
size_t ds_count_lines(const char *buf, size_t len);
/* BEIR corpus (part 1) or queries (part 2) JSONL rows into ds. */
int ds_parse_beir_jsonl(Dataset *ds, const char *buf, size_t len, const char *origin, int part);
/* qrels TSV (query-id, corpus-id, score) of one split into ds. */
int ds_parse_qrels(Dataset *ds, const char *buf, size_t len, const char *origin, DsStr split);

#endif
