/* dataset.h - in-memory datasets and the standard file formats.
 *
 * One Dataset holds one kind of data; every string lives in one arena per dataset and is
 * interned (identical texts are stored once), so loading is a few large allocations.
 *
 *   kind              a row is                                  files read and written
 *   AM_DS_PAIRS       query, >= 1 positives, >= 0 negatives      JSONL
 *   AM_DS_GRADED      sentence1, sentence2, finite score         JSONL, TSV
 *   AM_DS_LABELLED    text, label (string; ids via a table)      JSONL, TSV
 *   AM_DS_TEXT        one document (for MLM)                     lines, paragraphs, JSONL
 *   AM_DS_RETRIEVAL   a query; plus a corpus and graded qrels    BEIR directory
 *
 * File formats (every reader checks UTF-8 first, accepts CRLF line ends, a missing newline on
 * the last line and a UTF-8 BOM, and skips blank lines; errors say `file:LINE: problem`):
 *   pairs JSONL       {"query"|"anchor": str,
 *                      "positive": str | [str...]  or  "pos": [str...]      (>= 1 positive),
 *                      "negative": str | [str...]  or  "negatives"/"neg": [str...]  or
 *                      "negative_1", "negative_2", ... (sentence-transformers columns)}
 *                     (sentence-transformers (anchor, positive[, negative]) and FlagEmbedding
 *                     {query, pos, neg}); other keys are ignored.
 *   graded JSONL      {"sentence1": str, "sentence2": str, "score": number}
 *   graded TSV        sentence1 <TAB> sentence2 <TAB> score, exactly three columns, no quoting
 *                     (csv.QUOTE_NONE). Line 1 is a header, and skipped, when its score column
 *                     is a word rather than a number (letters, digits, '_', '-', '.', <= 40
 *                     bytes, starting with a letter: "score", "label", "similarity", ...).
 *   labelled JSONL    {"text": str, "label": str | integer}   (integer labels become "3")
 *   labelled TSV      text <TAB> label; a first line "text<TAB>label" is a header.
 *   text lines        AM_FMT_LINES (the default): one document per line.
 *   text paragraphs   AM_FMT_PARAGRAPHS: documents separated by blank lines; the lines of a
 *                     paragraph are joined with one space.
 *   text JSONL        {"text": str}
 *   BEIR directory    corpus.jsonl {"_id": str, "title": str (optional), "text": str},
 *                     queries.jsonl {"_id": str, "text": str},
 *                     qrels/<split>.tsv with the header "query-id<TAB>corpus-id<TAB>score"
 *                     and integer grades >= 0. Every qrel must name a known query and doc;
 *                     ids are unique; a (query, doc) pair appears once per split.
 * A file whose name ends in ".gz" is read through zlib. Scores are kept as doubles and
 * written in their shortest round-trip form, so write -> read gives the same bits.
 *
 * Ownership: loaders return a heap Dataset the caller deletes with dataset_delete. On error
 * *out is NULL and nothing is left allocated. Strings in a Dataset are borrowed by everyone
 * and valid until dataset_delete. All fields are read-only outside src/data.
 */
#ifndef AM_DATASET_H
#define AM_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    AM_DS_PAIRS = 1,
    AM_DS_GRADED,
    AM_DS_LABELLED,
    AM_DS_TEXT,
    AM_DS_RETRIEVAL,
} DatasetKind;

typedef enum {
    AM_FMT_AUTO = 0,    /* by extension: *.jsonl[.gz] -> JSONL, else TSV (text: lines) */
    AM_FMT_JSONL,
    AM_FMT_TSV,
    AM_FMT_LINES,       /* AM_DS_TEXT only */
    AM_FMT_PARAGRAPHS,  /* AM_DS_TEXT only */
    AM_FMT_BEIR,        /* AM_DS_RETRIEVAL only */
} DatasetFormat;

typedef struct DatasetImpl DatasetImpl;

typedef struct Dataset {
    DatasetKind kind;
    int64_t n;                  /* rows: pairs, graded pairs, labelled texts, documents, or
                                 * (retrieval) queries; splits, batches and samples count rows */
    char *origin;               /* file or directory read ("" when built in memory) */

    const char **text;          /* (n) query (pairs, retrieval), sentence1 (graded), text */
    /* AM_DS_PAIRS: row i's positives are pos[pos_start[i] .. pos_start[i+1]), same for neg */
    int64_t *pos_start;         /* (n+1) */
    int64_t *neg_start;         /* (n+1) */
    const char **pos;           /* (pos_start[n]) */
    const char **neg;           /* (neg_start[n]) */
    /* AM_DS_GRADED */
    const char **text2;         /* (n) sentence2 */
    double *score;              /* (n) finite */
    /* AM_DS_LABELLED */
    int32_t *label;             /* (n) index into label_names */
    const char **label_names;   /* (n_labels) sorted bytewise (strcmp) */
    int n_labels;
    /* AM_DS_RETRIEVAL: rows are queries */
    const char **query_id;      /* (n) */
    int64_t n_docs;
    const char **doc_id;        /* (n_docs) */
    const char **doc_title;     /* (n_docs) "" when the file has none */
    const char **doc_text;      /* (n_docs) */
    int n_splits;
    const char **split_names;   /* (n_splits) sorted by name */
    int64_t *qrel_start;        /* (n_splits+1) split s holds qrels [qrel_start[s], qrel_start[s+1]) */
    int64_t n_qrels;
    int64_t *qrel_query;        /* (n_qrels) row index */
    int64_t *qrel_doc;          /* (n_qrels) doc index */
    int32_t *qrel_grade;        /* (n_qrels) >= 0 */

    DatasetImpl *impl;          /* private: arena, id maps, capacities */
} Dataset;

const char *dataset_kind_name(DatasetKind kind); /* "pairs", "graded", "labelled", "text", "retrieval" */
/* Also accepts "sts" (graded), "labels" (labelled). AM_EINVAL on anything else. */
int dataset_kind_parse(const char *name, DatasetKind *out);

/* ---- building in memory (Lua source adapters, converters, the loaders themselves) ----
 * Add rows, then dataset_finish before any other use (select, write, hash, batch...; using
 * an unfinished dataset is a bug and asserts). Adding after finish is allowed; finish again.
 * Strings are copied (interned). Each add returns AM_OK or, without touching the dataset:
 * AM_EUTF8 (not UTF-8), AM_EINVAL (wrong kind, no positive, non-finite score, negative grade),
 * AM_EEXIST (duplicate doc/query id or qrel), AM_ENOTFOUND (a qrel naming an unknown id). */
Dataset *dataset_new(DatasetKind kind, const char *origin /* NULL = "" */);
void dataset_delete(Dataset *ds);
int dataset_add_pair(Dataset *ds, const char *query, const char *const *pos, int n_pos,
                     const char *const *neg, int n_neg);
int dataset_add_graded(Dataset *ds, const char *s1, const char *s2, double score);
int dataset_add_labelled(Dataset *ds, const char *text, const char *label);
int dataset_add_text(Dataset *ds, const char *text);
int dataset_add_doc(Dataset *ds, const char *id, const char *title /* NULL = "" */, const char *text);
int dataset_add_query(Dataset *ds, const char *id, const char *text);
int dataset_add_qrel(Dataset *ds, const char *split, const char *query_id, const char *doc_id, int grade);
/* Sort the label table (ids follow) and the splits (qrels grouped by split, file order kept
 * inside a split). Never fails on a dataset the adds accepted; returns AM_OK. */
int dataset_finish(Dataset *ds);

/* ---- loading ---- */
/* Read one file of `kind` (AM_DS_RETRIEVAL: `path` is a BEIR directory, all splits).
 * AM_ENOTFOUND / AM_EIO (path), AM_EUTF8 (file:line, byte), AM_EFORMAT (file:line, problem:
 * bad JSON, missing field (named), wrong type, bad score, duplicate or unknown id, NUL byte;
 * "empty dataset" for 0 records), AM_EINVAL (a format that does not fit the kind). */
int dataset_load(DatasetKind kind, const char *path, DatasetFormat fmt, Dataset **out);
/* The same from a buffer; `origin` names it in messages. (fuzzing, Lua adapters) */
int dataset_parse(DatasetKind kind, DatasetFormat fmt, const char *data, size_t len,
                  const char *origin, Dataset **out);
/* A BEIR directory: corpus.jsonl, queries.jsonl (or .jsonl.gz) and qrels/<split>.tsv.
 * split = NULL loads every qrels/<split>.tsv; otherwise only that split (AM_ENOTFOUND naming the
 * missing path, with a HINT on the layout and the splits present). */
int dataset_load_beir(const char *dir, const char *split, Dataset **out);
/* "beir:DIR", "beir:DIR#split", "pairs:FILE", "sts:FILE" (= "graded:"), "labels:FILE"
 * (= "labelled:"), "text:FILE", "paragraphs:FILE" (amalgam prepare --import). */
int dataset_import(const char *spec, Dataset **out);

/* ---- writing: same formats, each file written to path.tmp.PID, fsync'd and renamed ----
 * fmt AM_FMT_AUTO picks by extension as the loader does. Pairs: "positive" is a string when
 * every row has one positive, else an array in every row; negatives are "negative" (a string)
 * when every row has exactly one, omitted when none has any, else "negatives" (an array,
 * possibly empty) in every row, so each column has one type (Hugging Face datasets).
 * TSV refuses texts holding a tab or line break (AM_EINVAL naming the row; HINT: JSONL).
 * Text refuses documents with line breaks or nothing but spaces. Retrieval: `path` is a
 * directory (created); writes corpus.jsonl, queries.jsonl, qrels/<split>.tsv, and removes
 * other qrels/<split>.tsv there so that reading the directory back gives this dataset. */
int dataset_write(const Dataset *ds, const char *path, DatasetFormat fmt);

/* ---- conversion ---- */
/* BEIR -> pairs for `split` (NULL: the only split; AM_EINVAL if there are several): each
 * query with >= 1 doc of grade > 0 becomes a row, positives in qrels order, doc text =
 * strip(title + " " + text) as BEIR's encoders build it. With zero_grade_negatives, judged
 * docs of grade 0 become hard negatives. AM_ENOTFOUND for an unknown split, AM_EFORMAT if no
 * query has a positive. */
int dataset_beir_to_pairs(const Dataset *beir, const char *split, int zero_grade_negatives,
                          Dataset **out);

/* ---- identity ---- */
/* XXH3-128 over a canonical serialization of the content (kind, rows in order, every string
 * length-prefixed, scores as IEEE bits, labels by name, qrels by id): equal after
 * write -> read, independent of the file format and of the origin. */
void dataset_content_hash(const Dataset *ds, char out[33]);
/* JSON for the store's `datasets` db and `amalgam ls datasets`:
 * {"version":1,"kind":..,"origin":..,"rows":N, per-kind counts, "content_hash":..}
 *   pairs:     "positives", "negatives", "max_positives", "rows_with_negatives"
 *   graded:    "score_min", "score_max", "score_mean"
 *   labelled:  "labels": [{"name":..,"count":..}...] in id order
 *   text:      "bytes"
 *   retrieval: "docs", "queries", "splits": {"test": {"qrels":..,"queries":..}, ...}
 * Returns a malloc'd string. */
char *dataset_describe(const Dataset *ds);

/* ---- selection, splits, sampling ---- */
/* A new dataset of rows ids[0..n) in that order (repeats allowed except for retrieval).
 * Labelled: the parent's label table is kept whole, so ids agree across splits.
 * Retrieval: the whole corpus is kept, with the selected queries and their qrels (splits
 * left without qrels are dropped). AM_EINVAL for an id out of range. n may be 0. */
int dataset_select(const Dataset *ds, const int64_t *ids, int64_t n, Dataset **out);

/* Deterministic split of n rows into n_parts parts (1..255) by ratios (>= 0, normalised to
 * sum 1). group (n) may be NULL (every row its own group); rows with equal group ids always
 * land in the same part (WordNet synset/sibling groups, Debian source packages). The distinct
 * groups, in ascending id order, are shuffled with the seed; walking them in that order with
 * a running row count c, a group of s rows goes to the first part k whose cumulative bound
 * n*(r_0+..+r_k) exceeds c + s/2. Without groups part k thus gets exactly
 * ceil(n*R_k - 1/2) - ceil(n*R_{k-1} - 1/2) rows. Writes part[i] in 0..n_parts-1. */
int dataset_split_assign(int64_t n, const int64_t *group, const double *ratios, int n_parts,
                         uint64_t seed, uint8_t *part /* OUT: (n) */);
/* Rows of part k in ascending order into ids (may be NULL to count); returns the count. */
int64_t dataset_part_ids(const uint8_t *part, int64_t n, int k, int64_t *ids /* OUT */);
/* dataset_split_assign + dataset_select: parts[k] keeps the original row order; rowid_hash
 * (may be NULL) gets each part's dataset_rowid_hash for the run manifest. */
int dataset_split(const Dataset *ds, const int64_t *group, const double *ratios, int n_parts,
                  uint64_t seed, Dataset **parts /* OUT: (n_parts) */,
                  char (*rowid_hash)[33] /* OUT: (n_parts) */);
/* XXH3-128 hex over the int64 little-endian row ids, in the given order. */
void dataset_rowid_hash(const int64_t *ids, int64_t n, char out[33]);

/* k = floor(frac*n + 1/2) rows without replacement (BOOM bagging), frac in [0, 1]; ids come
 * out ascending. The draw is the first k of a seeded partial Fisher-Yates shuffle, so for one
 * seed a smaller frac gives a subset of a larger one, and complement = 1 gives the other n-k
 * rows (complementary halves). ids must hold n (complement) or k entries. */
int dataset_subsample_ids(int64_t n, double frac, uint64_t seed, int complement,
                          int64_t *ids /* OUT */, int64_t *k /* OUT */);
int dataset_subsample(const Dataset *ds, double frac, uint64_t seed, Dataset **out,
                      char rowid_hash[33] /* OUT, may be NULL */);

/* ---- training order and batches ---- */
/* The permutation of 0..n-1 for (seed, epoch): a Fisher-Yates shuffle seeded from both. */
void dataset_batch_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *order /* OUT: (n) */);

/* Endless batches over epochs; each epoch is dataset_batch_order(n, seed, epoch). With
 * drop_last the short tail of an epoch is skipped. State (epoch, pos) is enough to replay
 * or resume (dataset_iter_seek). */
typedef struct {
    int64_t n;
    int batch;
    uint64_t seed;
    int drop_last;
    int64_t epoch;      /* epoch of the next batch */
    int64_t pos;        /* its first position in order */
    int64_t *order;     /* (n) permutation of `epoch` */
    int64_t order_epoch;
} DatasetIter;
/* AM_EINVAL if n < 1, batch < 1 or batch > n ("batch larger than the dataset"). */
int dataset_iter_init(DatasetIter *it, int64_t n, int batch, uint64_t seed, int drop_last);
/* Next batch: *ids (borrowed until the next call) and *nb rows; *epoch (may be NULL) is
 * the epoch the batch belongs to. */
void dataset_iter_next(DatasetIter *it, const int64_t **ids, int *nb, int64_t *epoch);
void dataset_iter_seek(DatasetIter *it, int64_t epoch, int64_t pos);
void dataset_iter_free(DatasetIter *it);

/* The examples of rows ids[0..n): borrowed strings, valid while ds lives; the batch owns
 * its arrays and reuses them (start from a zeroed DatasetBatch, free with
 * dataset_batch_free). Retrieval datasets: AM_EINVAL (HINT: dataset_beir_to_pairs). */
typedef struct {
    int n;
    const char **text;    /* (n) query / sentence1 / text */
    const char **text2;   /* (n) pairs: first positive; graded: sentence2; else NULL entries */
    float *score;         /* (n) graded */
    int32_t *label;       /* (n) labelled */
    int *pos_start;       /* (n+1) pairs: all positives of row i in pos[pos_start[i]..] */
    int *neg_start;       /* (n+1) */
    const char **pos, **neg;
    int cap, cap_pos, cap_neg;
} DatasetBatch;
int dataset_batch(const Dataset *ds, const int64_t *ids, int n, DatasetBatch *b /* OUT */);
void dataset_batch_free(DatasetBatch *b);

#endif
