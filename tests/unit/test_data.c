/* test_data.c - datasets: every loader on the committed fixtures (tests/ref/data, see its
 * README), every bad-input case on corrupt variants generated here in mkdtemp dirs, writer ->
 * reader round trips with equal content hashes, splits, subsampling, epoch order, batches,
 * and a 100k-line load timed (printed, not asserted). */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define DATA_DIR AM_TEST_DIR "/ref/data"

/* ---------------------------------------------------------------- helpers */

#define TEST_TMP_PREFIX "/tmp/am_test_data_"
#include "tmpdir.h"

/* Write `len` bytes (len < 0: strlen) to dir/name (creating parent dirs); returns the path. */
static char *put_file(const char *dir, const char *name, const char *data, long len) {
    char *path = xasprintf("%s/%s", dir, name);
    char *parent = xstrdup(path);
    *strrchr(parent, '/') = 0;
    AM_ASSERT(am_mkdir_p(parent) == AM_OK);
    free(parent);
    FILE *f = fopen(path, "wb");
    AM_ASSERT(f != NULL);
    size_t n = len < 0 ? strlen(data) : (size_t)len;
    AM_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
    return path;
}

static char *slurp(const char *path) {
    char *buf;
    size_t len;
    if (am_read_file(path, &buf, &len) != AM_OK) return xstrdup("");
    return buf;
}

static void copy_beir(const char *dst) {
    char *cmd = xasprintf("mkdir -p '%s' && cp -r '%s/beir/.' '%s/'", dst, DATA_DIR, dst);
    AM_ASSERT(system(cmd) == 0);
    free(cmd);
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* The call failed with `code`, left *out NULL, and the message holds every needle. */
#define CHECK_ERR(rc_expr, out, code, ...) do { \
        int _rc = (rc_expr); \
        CHECKF(_rc == (code), "%s returned %d (%s), expected %d", #rc_expr, _rc, am_lasterror(), (code)); \
        CHECKF((out) == NULL, "%s left a result behind", #rc_expr); \
        const char *_needles[] = {__VA_ARGS__, NULL}; \
        for (int _i = 0; _needles[_i]; _i++) \
            CHECKF(contains(am_lasterror(), _needles[_i]), "message \"%s\" lacks \"%s\"", am_lasterror(), \
                   _needles[_i]); \
        dataset_delete(out); (out) = NULL; } while (0)

static int64_t npos(const Dataset *d, int64_t i) { return d->pos_start[i + 1] - d->pos_start[i]; }
static int64_t nneg(const Dataset *d, int64_t i) { return d->neg_start[i + 1] - d->neg_start[i]; }
static const char *posn(const Dataset *d, int64_t i, int j) { return d->pos[d->pos_start[i] + j]; }
static const char *negn(const Dataset *d, int64_t i, int j) { return d->neg[d->neg_start[i] + j]; }

static void hash_of(const Dataset *d, char out[33]) { dataset_content_hash(d, out); }

/* ---------------------------------------------------------------- loaders on good input */

TEST(load_pairs_jsonl) {
    Dataset *d = NULL;
    CHECK_OK(dataset_load(AM_DS_PAIRS, DATA_DIR "/pairs.jsonl", AM_FMT_AUTO, &d));
    if (!d) return;
    CHECK_EQ_INT(d->kind, AM_DS_PAIRS);
    CHECK_EQ_INT(d->n, 5);
    CHECK(strcmp(d->text[0], "what is a cat") == 0);
    CHECK_EQ_INT(npos(d, 0), 1);
    CHECK(strcmp(posn(d, 0, 0), "A cat is a small domesticated carnivore.") == 0);
    CHECK_EQ_INT(nneg(d, 0), 1);
    CHECK(strcmp(negn(d, 0, 0), "A dog is a domesticated canid.") == 0);
    CHECK(strcmp(d->text[1], "naïve café") == 0); /* "anchor" */
    CHECK_EQ_INT(npos(d, 1), 2);
    CHECK(strcmp(posn(d, 1, 0), "Café au lait — coffee with milk.") == 0);
    CHECK(strcmp(posn(d, 1, 1), "Naïveté is a lack of experience.") == 0);
    CHECK_EQ_INT(nneg(d, 1), 0);
    CHECK(strcmp(d->text[2], "tab\tand \"quotes\"") == 0); /* "pos"/"neg", JSON escapes */
    CHECK_EQ_INT(npos(d, 2), 1);
    CHECK(strcmp(posn(d, 2, 0), "line one\nline two") == 0);
    CHECK_EQ_INT(nneg(d, 2), 2);
    CHECK(strcmp(negn(d, 2, 0), "n1") == 0 && strcmp(negn(d, 2, 1), "n2") == 0);
    CHECK(strcmp(d->text[3], "sentence-transformers columns") == 0); /* negative_1, negative_2 */
    CHECK_EQ_INT(nneg(d, 3), 2);
    CHECK(strcmp(negn(d, 3, 0), "first") == 0 && strcmp(negn(d, 3, 1), "second") == 0);
    CHECK_EQ_INT(npos(d, 4), 1);
    CHECK_EQ_INT(nneg(d, 4), 0); /* "negatives": [] */
    CHECK(strcmp(d->origin, DATA_DIR "/pairs.jsonl") == 0);
    dataset_delete(d);
}

TEST(load_graded_tsv_and_jsonl) {
    Dataset *t = NULL, *j = NULL;
    CHECK_OK(dataset_load(AM_DS_GRADED, DATA_DIR "/sts.tsv", AM_FMT_AUTO, &t)); /* header detected */
    CHECK_OK(dataset_load(AM_DS_GRADED, DATA_DIR "/sts.jsonl", AM_FMT_AUTO, &j));
    if (!t || !j) return;
    const char *s1[] = {"A man is playing a guitar.", "A woman is slicing onions.", "The sky is blue."};
    const char *s2[] = {"A man plays guitar.", "A cat sleeps.", "The sky is not blue."};
    const double sc[] = {4.8, 0, 1.25};
    for (int k = 0; k < 2; k++) {
        Dataset *d = k ? j : t;
        CHECK_EQ_INT(d->n, 3);
        for (int i = 0; i < 3 && d->n == 3; i++) {
            CHECK(strcmp(d->text[i], s1[i]) == 0);
            CHECK(strcmp(d->text2[i], s2[i]) == 0);
            CHECK(d->score[i] == sc[i]);
        }
    }
    char ht[33], hj[33];
    hash_of(t, ht);
    hash_of(j, hj);
    CHECK(strcmp(ht, hj) == 0); /* the hash does not depend on the file format */
    dataset_delete(t);
    dataset_delete(j);

    /* no header: the first line is data */
    char *dir = tmpdir();
    char *p = put_file(dir, "nohdr.tsv", "a\tb\t1\nc\td\t2.5\n", -1);
    Dataset *d = NULL;
    CHECK_OK(dataset_load(AM_DS_GRADED, p, AM_FMT_AUTO, &d));
    if (d) {
        CHECK_EQ_INT(d->n, 2);
        CHECK(d->score[0] == 1.0 && d->score[1] == 2.5);
        CHECK(strcmp(d->text[0], "a") == 0);
    }
    dataset_delete(d);
    free(p);
}

TEST(load_labelled) {
    Dataset *t = NULL, *j = NULL;
    CHECK_OK(dataset_load(AM_DS_LABELLED, DATA_DIR "/labels.tsv", AM_FMT_AUTO, &t));
    CHECK_OK(dataset_load(AM_DS_LABELLED, DATA_DIR "/labels.jsonl", AM_FMT_AUTO, &j));
    if (!t || !j) return;
    for (int k = 0; k < 2; k++) {
        Dataset *d = k ? j : t;
        CHECK_EQ_INT(d->n, 5);
        CHECK_EQ_INT(d->n_labels, 4);
        if (d->n_labels != 4 || d->n != 5) continue;
        const char *names[] = {"3", "admin", "games", "libs"}; /* sorted bytewise */
        for (int l = 0; l < 4; l++) CHECK(strcmp(d->label_names[l], names[l]) == 0);
        const int ids[] = {1, 3, 2, 1, 0};
        for (int i = 0; i < 5; i++) CHECK_EQ_INT(d->label[i], ids[i]);
        CHECK(strcmp(d->text[2], "Play chess against the computer.") == 0);
    }
    char ht[33], hj[33];
    hash_of(t, ht);
    hash_of(j, hj);
    CHECK(strcmp(ht, hj) == 0);
    dataset_delete(t);
    dataset_delete(j);
}

TEST(load_text_lines_paragraphs_jsonl) {
    Dataset *l = NULL, *p = NULL, *j = NULL;
    CHECK_OK(dataset_load(AM_DS_TEXT, DATA_DIR "/text.txt", AM_FMT_AUTO, &l)); /* lines by default */
    CHECK_OK(dataset_load(AM_DS_TEXT, DATA_DIR "/text.txt", AM_FMT_PARAGRAPHS, &p));
    if (l) {
        CHECK_EQ_INT(l->n, 5);
        if (l->n == 5) {
            CHECK(strcmp(l->text[0], "Call me Ishmael.") == 0);
            CHECK(strcmp(l->text[2], "having little or no money in my purse,") == 0);
            CHECK(strcmp(l->text[4], "I thought I would sail about a little.") == 0);
        }
    }
    if (p) {
        CHECK_EQ_INT(p->n, 3);
        if (p->n == 3) {
            CHECK(strcmp(p->text[0], "Call me Ishmael. Some years ago, never mind how long precisely,") == 0);
            CHECK(strcmp(p->text[1], "having little or no money in my purse, and nothing particular to interest "
                                     "me on shore.") == 0);
            CHECK(strcmp(p->text[2], "I thought I would sail about a little.") == 0);
        }
    }
    char *dir = tmpdir();
    char *path = put_file(dir, "t.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\\nlines\", \"meta\": 1}\n", -1);
    CHECK_OK(dataset_load(AM_DS_TEXT, path, AM_FMT_AUTO, &j));
    if (j) {
        CHECK_EQ_INT(j->n, 2);
        CHECK(j->n == 2 && strcmp(j->text[1], "two\nlines") == 0);
    }
    dataset_delete(l);
    dataset_delete(p);
    dataset_delete(j);
    free(path);
}

TEST(load_beir_dir) {
    Dataset *d = NULL;
    CHECK_OK(dataset_load_beir(DATA_DIR "/beir", NULL, &d));
    if (!d) return;
    CHECK_EQ_INT(d->kind, AM_DS_RETRIEVAL);
    CHECK_EQ_INT(d->n_docs, 4);
    CHECK_EQ_INT(d->n, 4);
    CHECK(strcmp(d->doc_id[0], "d1") == 0 && strcmp(d->doc_title[0], "Cat") == 0);
    CHECK(strcmp(d->doc_title[2], "") == 0); /* no "title" */
    CHECK(strcmp(d->doc_text[2], "  A horse is a large odd-toed ungulate.  ") == 0);
    CHECK(strcmp(d->query_id[2], "q3") == 0 && strcmp(d->text[2], "sea mammal") == 0);
    CHECK_EQ_INT(d->n_splits, 2);
    if (d->n_splits == 2) {
        CHECK(strcmp(d->split_names[0], "test") == 0 && strcmp(d->split_names[1], "train") == 0);
        CHECK_EQ_INT(d->qrel_start[1] - d->qrel_start[0], 5);
        CHECK_EQ_INT(d->qrel_start[2] - d->qrel_start[1], 3); /* CRLF, no newline at the end */
        int64_t j = d->qrel_start[0];
        CHECK(strcmp(d->query_id[d->qrel_query[j]], "q1") == 0 && strcmp(d->doc_id[d->qrel_doc[j]], "d1") == 0);
        CHECK_EQ_INT(d->qrel_grade[j], 2);
        j = d->qrel_start[1] + 2;
        CHECK(strcmp(d->query_id[d->qrel_query[j]], "q3") == 0 && strcmp(d->doc_id[d->qrel_doc[j]], "d3") == 0);
        CHECK_EQ_INT(d->qrel_grade[j], 0);
    }
    char *js = dataset_describe(d);
    cJSON *o = cJSON_Parse(js);
    CHECK(o != NULL);
    if (o) {
        CHECK(strcmp(cJSON_GetObjectItem(o, "kind")->valuestring, "retrieval") == 0);
        CHECK_EQ_INT(cJSON_GetObjectItem(o, "docs")->valueint, 4);
        CHECK_EQ_INT(cJSON_GetObjectItem(o, "queries")->valueint, 4);
        cJSON *test = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "splits"), "test");
        CHECK(test && cJSON_GetObjectItem(test, "qrels")->valueint == 5);
        CHECK(test && cJSON_GetObjectItem(test, "queries")->valueint == 3);
        char h[33];
        hash_of(d, h);
        CHECK(strcmp(cJSON_GetObjectItem(o, "content_hash")->valuestring, h) == 0);
        cJSON_Delete(o);
    }
    free(js);
    dataset_delete(d);

    /* one split only */
    CHECK_OK(dataset_load_beir(DATA_DIR "/beir", "train", &d));
    if (d) {
        CHECK_EQ_INT(d->n_splits, 1);
        CHECK_EQ_INT(d->n_qrels, 3);
    }
    dataset_delete(d);
}

TEST(beir_to_pairs) {
    Dataset *b = NULL, *p = NULL;
    CHECK_OK(dataset_load_beir(DATA_DIR "/beir", NULL, &b));
    if (!b) return;
    CHECK_OK(dataset_beir_to_pairs(b, "test", 0, &p));
    if (p) {
        CHECK_EQ_INT(p->n, 3); /* q4 has no qrels */
        CHECK(strcmp(p->text[0], "small carnivore") == 0);
        CHECK_EQ_INT(npos(p, 0), 1);
        CHECK(strcmp(posn(p, 0, 0), "Cat The cat is a small carnivorous mammal.") == 0);
        CHECK_EQ_INT(nneg(p, 0), 0);
        CHECK(strcmp(posn(p, 1, 0), "Dogs are domesticated descendants of wolves.") == 0); /* "" title */
        CHECK_EQ_INT(npos(p, 2), 2);
        CHECK(strcmp(posn(p, 2, 0), "Whale Whales are large marine mammals.") == 0);
        CHECK(strcmp(posn(p, 2, 1), "Cat The cat is a small carnivorous mammal.") == 0);
    }
    dataset_delete(p);
    CHECK_OK(dataset_beir_to_pairs(b, "test", 1, &p)); /* grade-0 judged docs as hard negatives */
    if (p) {
        CHECK_EQ_INT(nneg(p, 0), 1);
        CHECK(strcmp(negn(p, 0, 0), "Dogs are domesticated descendants of wolves.") == 0);
    }
    dataset_delete(p);
    CHECK_OK(dataset_beir_to_pairs(b, "train", 1, &p));
    if (p) {
        CHECK_EQ_INT(p->n, 1); /* q2 and q3 only have grade 0 */
        CHECK(strcmp(p->text[0], "small carnivore") == 0);
    }
    dataset_delete(p);
    p = NULL;
    CHECK_ERR(dataset_beir_to_pairs(b, NULL, 0, &p), p, AM_EINVAL, "2 qrels splits");
    CHECK_ERR(dataset_beir_to_pairs(b, "dev", 0, &p), p, AM_ENOTFOUND, "dev");
    dataset_delete(b);

    /* the horse doc: title absent, text with spaces -> stripped */
    Dataset *h = dataset_new(AM_DS_RETRIEVAL, NULL);
    CHECK_OK(dataset_add_doc(h, "d", NULL, "  padded text \n"));
    CHECK_OK(dataset_add_query(h, "q", "query"));
    CHECK_OK(dataset_add_qrel(h, "test", "q", "d", 1));
    dataset_finish(h);
    CHECK_OK(dataset_beir_to_pairs(h, NULL, 0, &p));
    if (p) CHECK(strcmp(posn(p, 0, 0), "padded text") == 0);
    dataset_delete(p);
    dataset_delete(h);
}

TEST(import_spec) {
    struct { const char *spec; DatasetKind kind; int64_t n; } ok[] = {
        {"pairs:" DATA_DIR "/pairs.jsonl", AM_DS_PAIRS, 5},
        {"sts:" DATA_DIR "/sts.tsv", AM_DS_GRADED, 3},
        {"graded:" DATA_DIR "/sts.jsonl", AM_DS_GRADED, 3},
        {"labels:" DATA_DIR "/labels.jsonl", AM_DS_LABELLED, 5},
        {"text:" DATA_DIR "/text.txt", AM_DS_TEXT, 5},
        {"paragraphs:" DATA_DIR "/text.txt", AM_DS_TEXT, 3},
        {"beir:" DATA_DIR "/beir", AM_DS_RETRIEVAL, 4},
        {"beir:" DATA_DIR "/beir#train", AM_DS_RETRIEVAL, 4},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        Dataset *d = NULL;
        CHECK_OK(dataset_import(ok[i].spec, &d));
        CHECKF(d && d->kind == ok[i].kind && d->n == ok[i].n, "%s", ok[i].spec);
        dataset_delete(d);
    }
    Dataset *d = NULL;
    CHECK_ERR(dataset_import("nonsense", &d), d, AM_EINVAL, "HINT");
    CHECK_ERR(dataset_import("movies:" DATA_DIR "/pairs.jsonl", &d), d, AM_EINVAL, "movies");
    CHECK_ERR(dataset_import("pairs:" DATA_DIR "/sts.tsv", &d), d, AM_EINVAL, "TSV", "pairs"); /* wrong format */
    CHECK_ERR(dataset_import("pairs:/nonexistent/x.jsonl", &d), d, AM_ENOTFOUND, "/nonexistent/x.jsonl");
    CHECK_ERR(dataset_import("beir:" DATA_DIR "/beir#dev", &d), d, AM_ENOTFOUND, "qrels/dev.tsv", "test, train");
}

TEST(gzip_input) {
    char *dir = tmpdir(), *path = xasprintf("%s/sts.jsonl.gz", dir), *src = slurp(DATA_DIR "/sts.jsonl");
    gzFile gz = gzopen(path, "wb");
    AM_ASSERT(gz != NULL);
    gzwrite(gz, src, (unsigned)strlen(src));
    gzclose(gz);
    Dataset *a = NULL, *b = NULL;
    CHECK_OK(dataset_load(AM_DS_GRADED, path, AM_FMT_AUTO, &a));
    CHECK_OK(dataset_load(AM_DS_GRADED, DATA_DIR "/sts.jsonl", AM_FMT_AUTO, &b));
    if (a && b) {
        char ha[33], hb[33];
        hash_of(a, ha);
        hash_of(b, hb);
        CHECK(strcmp(ha, hb) == 0);
    }
    dataset_delete(a);
    dataset_delete(b);
    free(path);
    free(src);
}

TEST(crlf_bom_and_last_line) {
    char *dir = tmpdir();
    char *lf = put_file(dir, "lf.jsonl", "{\"query\": \"a\", \"positive\": \"b\"}\n{\"query\": \"c\", \"positive\": \"d\"}\n", -1);
    char *crlf = put_file(dir, "crlf.jsonl",
                          "\xEF\xBB\xBF{\"query\": \"a\", \"positive\": \"b\"}\r\n{\"query\": \"c\", \"positive\": \"d\"}", -1);
    Dataset *a = NULL, *b = NULL;
    CHECK_OK(dataset_load(AM_DS_PAIRS, lf, AM_FMT_AUTO, &a));
    CHECK_OK(dataset_load(AM_DS_PAIRS, crlf, AM_FMT_AUTO, &b));
    if (a && b) {
        char ha[33], hb[33];
        hash_of(a, ha);
        hash_of(b, hb);
        CHECK(strcmp(ha, hb) == 0);
        CHECK_EQ_INT(b->n, 2);
        CHECK(strcmp(b->text[1], "c") == 0 && strcmp(posn(b, 1, 0), "d") == 0);
    }
    dataset_delete(a);
    dataset_delete(b);
    char *tsv = put_file(dir, "crlf.tsv", "sentence1\tsentence2\tscore\r\nx\ty\t2\r\nu\tv\t3", -1);
    CHECK_OK(dataset_load(AM_DS_GRADED, tsv, AM_FMT_AUTO, &a));
    if (a) {
        CHECK_EQ_INT(a->n, 2);
        CHECK(strcmp(a->text2[0], "y") == 0 && a->score[1] == 3.0);
    }
    dataset_delete(a);
    char *txt = put_file(dir, "crlf.txt", "one\r\n\r\ntwo\r\nthree", -1);
    CHECK_OK(dataset_load(AM_DS_TEXT, txt, AM_FMT_PARAGRAPHS, &a));
    if (a) {
        CHECK_EQ_INT(a->n, 2);
        CHECK(a->n == 2 && strcmp(a->text[1], "two three") == 0);
    }
    dataset_delete(a);
    free(lf);
    free(crlf);
    free(tsv);
    free(txt);
}

/* ---------------------------------------------------------------- bad input */

/* Load `content` written as dir/name with kind; expect code and the needles. */
#define BAD(kind, name, content, code, ...) do { \
        char *_p = put_file(dir, name, content, -1); \
        Dataset *_d = NULL; \
        CHECK_ERR(dataset_load(kind, _p, AM_FMT_AUTO, &_d), _d, code, name, __VA_ARGS__); \
        free(_p); } while (0)

TEST(bad_jsonl) {
    char *dir = tmpdir();
    const char *ok = "{\"query\": \"q\", \"positive\": \"p\"}\n";
    char *s = xasprintf("%s{\"query\": \"q\", \"positive\": \"p\"\n", ok);
    BAD(AM_DS_PAIRS, "notjson.jsonl", s, AM_EFORMAT, ":2:", "not valid JSON");
    free(s);
    s = xasprintf("%s%s{\"positive\": \"p\"}\n", ok, ok);
    BAD(AM_DS_PAIRS, "noquery.jsonl", s, AM_EFORMAT, ":3:", "missing required field \"query\"");
    free(s);
    BAD(AM_DS_PAIRS, "nopos.jsonl", "{\"query\": \"q\", \"negative\": \"n\"}\n", AM_EFORMAT, ":1:",
        "missing required field \"positive\"");
    BAD(AM_DS_PAIRS, "posnum.jsonl", "{\"query\": \"q\", \"positive\": 3}\n", AM_EFORMAT, ":1:",
        "field \"positive\" must be a string or an array of strings, got a number");
    BAD(AM_DS_PAIRS, "posempty.jsonl", "{\"query\": \"q\", \"pos\": []}\n", AM_EFORMAT, ":1:", "\"pos\" is an empty array");
    BAD(AM_DS_PAIRS, "negelem.jsonl", "{\"query\": \"q\", \"pos\": [\"p\"], \"neg\": [\"a\", 7]}\n", AM_EFORMAT, ":1:",
        "field \"neg\" element 2 must be a string, got a number");
    BAD(AM_DS_PAIRS, "qtype.jsonl", "{\"query\": [\"q\"], \"positive\": \"p\"}\n", AM_EFORMAT, ":1:",
        "field \"query\" must be a string, got an array");
    BAD(AM_DS_PAIRS, "array.jsonl", "[1, 2]\n", AM_EFORMAT, ":1:", "expected a JSON object, got an array");
    BAD(AM_DS_PAIRS, "trailing.jsonl", "{\"query\": \"q\", \"positive\": \"p\"} x\n", AM_EFORMAT, ":1:",
        "text after the JSON value");
    BAD(AM_DS_PAIRS, "empty.jsonl", "", AM_EFORMAT, "empty dataset");
    BAD(AM_DS_PAIRS, "blank.jsonl", "\n  \n\r\n", AM_EFORMAT, "empty dataset");
    s = xasprintf("%s%s{\"query\": \"caf\xe9\", \"positive\": \"p\"}\n", ok, ok);
    BAD(AM_DS_PAIRS, "latin1.jsonl", s, AM_EUTF8, ":3:", "invalid UTF-8", "byte 15 of the line", "byte 0xe9", "HINT");
    free(s);
    {
        char *p = put_file(dir, "nul.jsonl", "{\"query\": \"a\0\", \"positive\": \"p\"}\n", 34);
        Dataset *d = NULL;
        CHECK_ERR(dataset_load(AM_DS_PAIRS, p, AM_FMT_AUTO, &d), d, AM_EFORMAT, "nul.jsonl:1:", "NUL byte");
        free(p);
    }
    /* graded */
    BAD(AM_DS_GRADED, "s1.jsonl", "{\"sentence2\": \"b\", \"score\": 1}\n", AM_EFORMAT, ":1:",
        "missing required field \"sentence1\"");
    BAD(AM_DS_GRADED, "noscore.jsonl", "{\"sentence1\": \"a\", \"sentence2\": \"b\"}\n", AM_EFORMAT, ":1:",
        "missing required field \"score\"");
    BAD(AM_DS_GRADED, "strscore.jsonl", "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"score\": \"4.2\"}\n", AM_EFORMAT,
        ":1:", "field \"score\" must be a number, got a string");
    BAD(AM_DS_GRADED, "infscore.jsonl", "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"score\": 1e999}\n", AM_EFORMAT,
        ":1:", "not a finite number");
    BAD(AM_DS_GRADED, "nanscore.jsonl", "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"score\": NaN}\n", AM_EFORMAT,
        ":1:", "not valid JSON");
    /* labelled */
    BAD(AM_DS_LABELLED, "nolabel.jsonl", "{\"text\": \"t\"}\n", AM_EFORMAT, ":1:", "missing required field \"label\"");
    BAD(AM_DS_LABELLED, "boollabel.jsonl", "{\"text\": \"t\", \"label\": true}\n", AM_EFORMAT, ":1:",
        "field \"label\" must be a string or an integer, got a boolean");
    BAD(AM_DS_LABELLED, "fraclabel.jsonl", "{\"text\": \"t\", \"label\": 1.5}\n", AM_EFORMAT, ":1:",
        "must be a string or an integer, got 1.5");
    BAD(AM_DS_LABELLED, "emptylabel.jsonl", "{\"text\": \"t\", \"label\": \"\"}\n", AM_EFORMAT, ":1:", "\"label\" is empty");
    BAD(AM_DS_TEXT, "notext.jsonl", "{\"body\": \"t\"}\n", AM_EFORMAT, ":1:", "missing required field \"text\"");
}

TEST(bad_tsv_and_text) {
    char *dir = tmpdir();
    BAD(AM_DS_GRADED, "cols.tsv", "a\tb\t1\na\tb\n", AM_EFORMAT, ":2:", "expected 3 tab-separated columns", "found 2");
    BAD(AM_DS_GRADED, "cols4.tsv", "a\tb\t1\tx\n", AM_EFORMAT, ":1:", "found 4");
    BAD(AM_DS_GRADED, "abc.tsv", "sentence1\tsentence2\tscore\na\tb\t1\nc\td\tabc\n", AM_EFORMAT, ":3:",
        "score \"abc\" is not a number");
    BAD(AM_DS_GRADED, "nan.tsv", "a\tb\t1\nc\td\tnan\n", AM_EFORMAT, ":2:", "\"nan\" is not a finite number");
    BAD(AM_DS_GRADED, "inf.tsv", "a\tb\tinf\n", AM_EFORMAT, ":1:", "not a finite number");
    BAD(AM_DS_GRADED, "emptyscore.tsv", "a\tb\t1\nc\td\t\n", AM_EFORMAT, ":2:", "is not a number");
    BAD(AM_DS_GRADED, "hdronly.tsv", "sentence1\tsentence2\tscore\n", AM_EFORMAT, "empty dataset");
    BAD(AM_DS_GRADED, "empty.tsv", "", AM_EFORMAT, "empty dataset");
    BAD(AM_DS_GRADED, "utf8.tsv", "a\tb\t1\n\xff\xfe\tb\t2\n", AM_EUTF8, ":2:", "byte 1 of the line");
    BAD(AM_DS_LABELLED, "lcols.tsv", "text\tlabel\nx\ty\tz\n", AM_EFORMAT, ":2:", "expected 2 tab-separated columns");
    BAD(AM_DS_LABELLED, "lempty.tsv", "x\ty\nz\t\n", AM_EFORMAT, ":2:", "empty label");
    BAD(AM_DS_TEXT, "empty.txt", "\n\n   \n", AM_EFORMAT, "empty dataset");
    BAD(AM_DS_TEXT, "bad.txt", "ok\nstill ok\n\xc3\x28\n", AM_EUTF8, ":3:", "byte 1 of the line");
}

TEST(bad_beir) {
    Dataset *d = NULL;
    CHECK_ERR(dataset_load_beir("/nonexistent/beir", NULL, &d), d, AM_ENOTFOUND, "/nonexistent/beir", "HINT");
    char *root = tmpdir();
    int n = 0;
#define FRESH() (n++, xasprintf("%s/b%d", root, n))
    /* missing files */
    char *b = FRESH();
    copy_beir(b);
    char *p = xasprintf("%s/corpus.jsonl", b);
    unlink(p);
    CHECK_ERR(dataset_load_beir(b, NULL, &d), d, AM_ENOTFOUND, p, "HINT", "corpus.jsonl");
    free(p);
    free(b);
    b = FRESH();
    copy_beir(b);
    p = xasprintf("%s/queries.jsonl", b);
    unlink(p);
    CHECK_ERR(dataset_load_beir(b, NULL, &d), d, AM_ENOTFOUND, p, "HINT");
    free(p);
    free(b);
    b = FRESH();
    copy_beir(b);
    p = xasprintf("rm -r '%s/qrels'", b);
    AM_ASSERT(system(p) == 0);
    free(p);
    p = xasprintf("%s/qrels", b);
    CHECK_ERR(dataset_load_beir(b, NULL, &d), d, AM_ENOTFOUND, p, "missing qrels file", "HINT", "query-id<TAB>corpus-id");
    free(p);
    p = xasprintf("%s/qrels/test.tsv", b);
    CHECK_ERR(dataset_load_beir(b, "test", &d), d, AM_ENOTFOUND, p, "splits found", "none");
    free(p);
    free(b);
    /* corrupt qrels / corpus / queries: each replaces one file of a fresh copy */
    struct { const char *file, *content; int code; const char *n1, *n2; } cases[] = {
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\n", AM_EFORMAT, "test.tsv:3:",
         "unknown corpus id \"d9\""},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq7\td1\t1\n", AM_EFORMAT, "test.tsv:2:", "unknown query id \"q7\""},
        {"qrels/test.tsv", "qid\tdocid\tscore\nq1\td1\t1\n", AM_EFORMAT, "test.tsv:1:", "bad qrels header"},
        {"qrels/test.tsv", "q1\td1\t1\n", AM_EFORMAT, "test.tsv:1:", "bad qrels header"},
        {"qrels/test.tsv", "q1\t0\td1\t1\n", AM_EFORMAT, "test.tsv:1:", "TREC qrels"},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\n", AM_EFORMAT, "test.tsv:2:", "expected 3 tab-separated"},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\thigh\n", AM_EFORMAT, "test.tsv:2:",
         "\"high\" is not an integer"},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t0.5\n", AM_EFORMAT, "test.tsv:2:", "not an integer"},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t-1\n", AM_EFORMAT, "test.tsv:2:", "negative grade -1"},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq1\td1\t2\n", AM_EFORMAT, "test.tsv:4:",
         "duplicate qrel"},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\n", AM_EFORMAT, "test.tsv", "empty dataset"},
        {"qrels/test.tsv", "", AM_EFORMAT, "test.tsv", "empty dataset"},
        {"qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td\xe9\t1\n", AM_EUTF8, "test.tsv:2:", "byte 5 of the line"},
        {"corpus.jsonl", "{\"_id\": \"d1\", \"text\": \"a\"}\n{\"_id\": \"d2\", \"text\": \"b\"}\n{\"_id\": \"d1\", \"text\": \"c\"}\n",
         AM_EFORMAT, "corpus.jsonl:3:", "duplicate corpus id \"d1\""},
        {"corpus.jsonl", "{\"_id\": \"d1\", \"title\": \"t\"}\n", AM_EFORMAT, "corpus.jsonl:1:",
         "missing required field \"text\""},
        {"corpus.jsonl", "{\"_id\": 5, \"text\": \"x\"}\n", AM_EFORMAT, "corpus.jsonl:1:",
         "field \"_id\" must be a string, got a number"},
        {"corpus.jsonl", "{\"_id\": \"d1\", \"title\": 3, \"text\": \"x\"}\n", AM_EFORMAT, "corpus.jsonl:1:",
         "field \"title\" must be a string"},
        {"corpus.jsonl", "", AM_EFORMAT, "corpus.jsonl", "empty dataset"},
        {"corpus.jsonl", "{\"_id\": \"d1\", \"text\": \"x\"\n", AM_EFORMAT, "corpus.jsonl:1:", "not valid JSON"},
        {"queries.jsonl", "{\"_id\": \"q1\", \"text\": \"a\"}\n{\"_id\": \"q1\", \"text\": \"b\"}\n", AM_EFORMAT,
         "queries.jsonl:2:", "duplicate query id \"q1\""},
        {"queries.jsonl", "{\"_id\": \"q1\", \"text\": \"\x80\"}\n", AM_EUTF8, "queries.jsonl:1:", "invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b = FRESH();
        copy_beir(b);
        free(put_file(b, cases[i].file, cases[i].content, -1));
        int rc = dataset_load_beir(b, NULL, &d);
        CHECKF(rc == cases[i].code, "case %zu (%s): rc %d, expected %d: %s", i, cases[i].file, rc, cases[i].code,
               am_lasterror());
        CHECKF(d == NULL, "case %zu left a dataset", i);
        CHECKF(contains(am_lasterror(), b), "case %zu: \"%s\" does not name the dir", i, am_lasterror());
        CHECKF(contains(am_lasterror(), cases[i].n1) && contains(am_lasterror(), cases[i].n2),
               "case %zu: \"%s\" lacks \"%s\" / \"%s\"", i, am_lasterror(), cases[i].n1, cases[i].n2);
        dataset_delete(d);
        d = NULL;
        free(b);
    }
#undef FRESH
}

/* ---------------------------------------------------------------- builder */

TEST(builder_checks) {
    Dataset *d = dataset_new(AM_DS_PAIRS, "mem");
    const char *pos[] = {"p"};
    CHECK(dataset_add_pair(d, "q", pos, 0, NULL, 0) == AM_EINVAL);
    CHECK(dataset_add_pair(d, "q\xff", pos, 1, NULL, 0) == AM_EUTF8);
    CHECK(contains(am_lasterror(), "query"));
    CHECK(dataset_add_graded(d, "a", "b", 1) == AM_EINVAL); /* wrong kind */
    CHECK(contains(am_lasterror(), "graded") && contains(am_lasterror(), "pairs"));
    CHECK_EQ_INT(d->n, 0);
    CHECK_OK(dataset_add_pair(d, "q", pos, 1, NULL, 0));
    CHECK_OK(dataset_finish(d));
    CHECK_OK(dataset_add_pair(d, "q2", pos, 1, pos, 1)); /* after finish: allowed, finish again */
    CHECK_OK(dataset_finish(d));
    CHECK_EQ_INT(d->n, 2);
    CHECK(d->text[0] == d->text[0] && posn(d, 0, 0) == posn(d, 1, 0)); /* interned: one copy */
    dataset_delete(d);

    d = dataset_new(AM_DS_GRADED, NULL);
    CHECK(dataset_add_graded(d, "a", "b", NAN) == AM_EINVAL);
    CHECK(dataset_add_graded(d, "a", "b", INFINITY) == AM_EINVAL);
    CHECK_EQ_INT(d->n, 0);
    dataset_delete(d);

    d = dataset_new(AM_DS_LABELLED, NULL);
    CHECK_OK(dataset_add_labelled(d, "x", "zeta"));
    CHECK_OK(dataset_add_labelled(d, "y", "alpha"));
    CHECK_OK(dataset_add_labelled(d, "z", "zeta"));
    CHECK(dataset_add_labelled(d, "w", "") == AM_EINVAL);
    dataset_finish(d);
    CHECK_EQ_INT(d->n_labels, 2);
    CHECK(strcmp(d->label_names[0], "alpha") == 0);
    CHECK_EQ_INT(d->label[0], 1);
    CHECK_EQ_INT(d->label[1], 0);
    CHECK_EQ_INT(d->label[2], 1);
    CHECK_OK(dataset_add_labelled(d, "v", "beta")); /* new label after finish: re-sorted */
    dataset_finish(d);
    CHECK(strcmp(d->label_names[1], "beta") == 0);
    CHECK_EQ_INT(d->label[0], 2);
    CHECK_EQ_INT(d->label[3], 1);
    dataset_delete(d);

    d = dataset_new(AM_DS_RETRIEVAL, NULL);
    CHECK_OK(dataset_add_doc(d, "d1", "t", "x"));
    CHECK(dataset_add_doc(d, "d1", "t", "y") == AM_EEXIST);
    CHECK_OK(dataset_add_query(d, "q1", "x"));
    CHECK(dataset_add_query(d, "q1", "y") == AM_EEXIST);
    CHECK(dataset_add_qrel(d, "test", "q1", "d2", 1) == AM_ENOTFOUND);
    CHECK(dataset_add_qrel(d, "test", "q2", "d1", 1) == AM_ENOTFOUND);
    CHECK(dataset_add_qrel(d, "test", "q1", "d1", -1) == AM_EINVAL);
    CHECK_OK(dataset_add_qrel(d, "zz", "q1", "d1", 1));
    CHECK_OK(dataset_add_qrel(d, "test", "q1", "d1", 1));
    CHECK(dataset_add_qrel(d, "test", "q1", "d1", 2) == AM_EEXIST);
    dataset_finish(d);
    CHECK(strcmp(d->split_names[0], "test") == 0 && strcmp(d->split_names[1], "zz") == 0);
    CHECK_EQ_INT(d->qrel_start[1], 1);
    CHECK(dataset_add_qrel(d, "zz", "q1", "d1", 2) == AM_EEXIST); /* the set survives finish's re-sort */
    CHECK_OK(dataset_add_qrel(d, "aa", "q1", "d1", 3));
    dataset_finish(d);
    CHECK(strcmp(d->split_names[0], "aa") == 0);
    CHECK_EQ_INT(d->qrel_grade[0], 3);
    CHECK_EQ_INT(d->n_qrels, 3);
    CHECK(dataset_add_qrel(d, "test", "q1", "d1", 2) == AM_EEXIST);
    dataset_delete(d);

    DatasetKind k;
    CHECK_OK(dataset_kind_parse("sts", &k));
    CHECK_EQ_INT(k, AM_DS_GRADED);
    CHECK(dataset_kind_parse("movies", &k) == AM_EINVAL);
}

/* ---------------------------------------------------------------- writers */

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

/* write ds to dir/name in fmt, read it back with kind, compare hashes; a second write of the
 * reread dataset gives the same bytes. */
static void roundtrip(const Dataset *ds, const char *dir, const char *name, DatasetFormat fmt) {
    char *path = xasprintf("%s/%s", dir, name);
    int rc = dataset_write(ds, path, fmt);
    CHECKF(rc == AM_OK, "write %s: %s", name, am_lasterror());
    Dataset *back = NULL;
    DatasetFormat rfmt = fmt == AM_FMT_PARAGRAPHS ? AM_FMT_PARAGRAPHS : AM_FMT_AUTO;
    rc = dataset_load(ds->kind, path, rfmt, &back);
    CHECKF(rc == AM_OK, "read back %s: %s", name, am_lasterror());
    if (back) {
        char h1[33], h2[33];
        hash_of(ds, h1);
        hash_of(back, h2);
        CHECKF(strcmp(h1, h2) == 0, "%s: hash %s after the round trip, %s before", name, h2, h1);
        CHECKF(back->n == ds->n, "%s: %lld rows back, %lld written", name, (long long)back->n, (long long)ds->n);
        char *p2 = xasprintf("%s/again_%s", dir, name);
        CHECK_OK(dataset_write(back, p2, fmt));
        if (ds->kind != AM_DS_RETRIEVAL) {
            char *a = slurp(path), *b = slurp(p2);
            CHECKF(strcmp(a, b) == 0, "%s: second write differs", name);
            free(a);
            free(b);
        }
        free(p2);
    }
    dataset_delete(back);
    free(path);
}

TEST(write_read_roundtrip_fixtures) {
    char *dir = tmpdir();
    struct { DatasetKind k; const char *src; DatasetFormat rf; const char *out; DatasetFormat wf; } c[] = {
        {AM_DS_PAIRS, "pairs.jsonl", AM_FMT_AUTO, "pairs.jsonl", AM_FMT_AUTO},
        {AM_DS_GRADED, "sts.tsv", AM_FMT_AUTO, "sts.tsv", AM_FMT_AUTO},
        {AM_DS_GRADED, "sts.tsv", AM_FMT_AUTO, "sts_as.jsonl", AM_FMT_AUTO},
        {AM_DS_LABELLED, "labels.jsonl", AM_FMT_AUTO, "labels.jsonl", AM_FMT_AUTO},
        {AM_DS_LABELLED, "labels.jsonl", AM_FMT_AUTO, "labels_as.tsv", AM_FMT_AUTO},
        {AM_DS_TEXT, "text.txt", AM_FMT_AUTO, "lines.txt", AM_FMT_LINES},
        {AM_DS_TEXT, "text.txt", AM_FMT_PARAGRAPHS, "paras.txt", AM_FMT_PARAGRAPHS},
        {AM_DS_TEXT, "text.txt", AM_FMT_PARAGRAPHS, "paras.jsonl", AM_FMT_AUTO},
        {AM_DS_RETRIEVAL, "beir", AM_FMT_AUTO, "beir_out", AM_FMT_AUTO},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *src = xasprintf("%s/%s", DATA_DIR, c[i].src);
        Dataset *d = NULL;
        CHECK_OK(dataset_load(c[i].k, src, c[i].rf, &d));
        if (d) roundtrip(d, dir, c[i].out, c[i].wf);
        dataset_delete(d);
        free(src);
    }
    CHECK_EQ_INT(count_tmp_files(dir), 0);
    /* the written pairs keep one type per column */
    char *wp = xasprintf("%s/pairs.jsonl", dir), *w = slurp(wp);
    CHECK(contains(w, "\"positive\": [\"A cat is a small domesticated carnivore.\"]"));
    CHECK(contains(w, "\"negatives\": []"));
    free(w);
    free(wp);
}

TEST(write_read_roundtrip_builder) {
    char *dir = tmpdir();
    /* strings JSON must escape; one positive and one negative everywhere -> plain strings */
    Dataset *p = dataset_new(AM_DS_PAIRS, NULL);
    const char *q[] = {"tab\there", "ctl\x01\x1f and \"q\" \\ /", "uni ✓ \xF0\x9F\x98\x80", "nl\r\nx", ""};
    for (int i = 0; i < 5; i++) {
        const char *pos[] = {q[(i + 1) % 5]}, *neg[] = {q[(i + 2) % 5]};
        CHECK_OK(dataset_add_pair(p, q[i], pos, 1, neg, 1));
    }
    dataset_finish(p);
    roundtrip(p, dir, "esc.jsonl", AM_FMT_AUTO);
    char *wp = xasprintf("%s/esc.jsonl", dir), *w = slurp(wp);
    free(wp);
    CHECK(contains(w, "\"positive\": \"ctl\\u0001\\u001f and \\\"q\\\" \\\\ /\""));
    CHECK(contains(w, "\"negative\": "));
    free(w);
    dataset_delete(p);

    /* scores whose shortest form matters */
    Dataset *g = dataset_new(AM_DS_GRADED, NULL);
    const double sc[] = {0.1, 1.0 / 3.0, -0.0, 1e-300, 4.8, 2.5e15, -123456.789, 5e-324, 1.7976931348623157e308};
    for (int i = 0; i < 9; i++) CHECK_OK(dataset_add_graded(g, "a", "b", sc[i]));
    dataset_finish(g);
    roundtrip(g, dir, "scores.tsv", AM_FMT_AUTO);
    roundtrip(g, dir, "scores.jsonl", AM_FMT_AUTO);
    Dataset *back = NULL;
    char *path = xasprintf("%s/scores.tsv", dir);
    CHECK_OK(dataset_load(AM_DS_GRADED, path, AM_FMT_AUTO, &back));
    for (int i = 0; back && i < 9; i++) CHECK(memcmp(&back->score[i], &sc[i], 8) == 0);
    dataset_delete(back);
    free(path);
    dataset_delete(g);

    /* retrieval: rewriting a directory removes splits that are no longer there */
    Dataset *b = NULL, *one = NULL;
    CHECK_OK(dataset_load_beir(DATA_DIR "/beir", NULL, &b));
    CHECK_OK(dataset_load_beir(DATA_DIR "/beir", "test", &one));
    if (b && one) {
        char *out = xasprintf("%s/beir", dir);
        CHECK_OK(dataset_write(b, out, AM_FMT_AUTO));
        CHECK_OK(dataset_write(one, out, AM_FMT_AUTO));
        Dataset *r = NULL;
        CHECK_OK(dataset_load_beir(out, NULL, &r));
        if (r) {
            char h1[33], h2[33];
            hash_of(one, h1);
            hash_of(r, h2);
            CHECK(strcmp(h1, h2) == 0);
            CHECK_EQ_INT(r->n_splits, 1);
        }
        dataset_delete(r);
        char *qd = xasprintf("%s/qrels", out);
        CHECK_EQ_INT(count_tmp_files(out) + count_tmp_files(qd), 0);
        free(qd);
        free(out);
    }
    dataset_delete(b);
    dataset_delete(one);
}

TEST(writer_refuses) {
    char *dir = tmpdir();
    Dataset *g = dataset_new(AM_DS_GRADED, NULL);
    CHECK_OK(dataset_add_graded(g, "ok", "fine", 1));
    CHECK_OK(dataset_add_graded(g, "has\ttab", "b", 2));
    dataset_finish(g);
    char *tsv = xasprintf("%s/g.tsv", dir), *js = xasprintf("%s/g.jsonl", dir);
    CHECK(dataset_write(g, tsv, AM_FMT_AUTO) == AM_EINVAL);
    CHECK(contains(am_lasterror(), "row 1") && contains(am_lasterror(), "sentence1") && contains(am_lasterror(), "HINT"));
    CHECK(access(tsv, F_OK) != 0); /* nothing created */
    CHECK_OK(dataset_write(g, js, AM_FMT_AUTO));
    CHECK(dataset_write(g, tsv, AM_FMT_PARAGRAPHS) == AM_EINVAL); /* format does not fit the kind */
    char *gz = xasprintf("%s/g.jsonl.gz", dir);
    CHECK(dataset_write(g, gz, AM_FMT_JSONL) == AM_EINVAL);
    dataset_delete(g);

    Dataset *t = dataset_new(AM_DS_TEXT, NULL);
    CHECK_OK(dataset_add_text(t, "two\nlines"));
    dataset_finish(t);
    char *txt = xasprintf("%s/t.txt", dir);
    CHECK(dataset_write(t, txt, AM_FMT_AUTO) == AM_EINVAL);
    CHECK(contains(am_lasterror(), "line break"));
    dataset_delete(t);
    t = dataset_new(AM_DS_TEXT, NULL);
    CHECK_OK(dataset_add_text(t, "   "));
    dataset_finish(t);
    CHECK(dataset_write(t, txt, AM_FMT_LINES) == AM_EINVAL);
    CHECK(contains(am_lasterror(), "blank"));
    dataset_delete(t);

    Dataset *e = dataset_new(AM_DS_PAIRS, NULL);
    const char *pos[] = {"p"};
    CHECK_OK(dataset_add_pair(e, "q", pos, 1, NULL, 0));
    dataset_finish(e);
    char *ptsv = xasprintf("%s/pairs.tsv", dir);
    CHECK(dataset_write(e, ptsv, AM_FMT_AUTO) == AM_EINVAL); /* the reader would not take it back */
    CHECK(contains(am_lasterror(), "HINT") && access(ptsv, F_OK) != 0);
    free(ptsv);
    dataset_delete(e);
    e = dataset_new(AM_DS_PAIRS, NULL);
    dataset_finish(e);
    CHECK(dataset_write(e, js, AM_FMT_AUTO) == AM_EINVAL);
    CHECK(contains(am_lasterror(), "empty"));
    dataset_delete(e);

    Dataset *r = dataset_new(AM_DS_RETRIEVAL, NULL);
    CHECK_OK(dataset_add_doc(r, "d", "", "x"));
    CHECK_OK(dataset_add_query(r, "q", "y"));
    dataset_finish(r);
    char *bd = xasprintf("%s/noqrels", dir);
    CHECK(dataset_write(r, bd, AM_FMT_AUTO) == AM_EINVAL);
    CHECK_OK(dataset_add_qrel(r, "../evil", "q", "d", 1));
    dataset_finish(r);
    CHECK(dataset_write(r, bd, AM_FMT_AUTO) == AM_EINVAL);
    CHECK(contains(am_lasterror(), "file name"));
    dataset_delete(r);
    CHECK_EQ_INT(count_tmp_files(dir), 0);
    free(tsv);
    free(js);
    free(gz);
    free(txt);
    free(bd);
}

/* ---------------------------------------------------------------- splits */

TEST(split_ratios_and_determinism) {
    enum { N = 1000 };
    uint8_t a[N], b[N], c[N];
    const double r[] = {0.8, 0.1, 0.1};
    CHECK_OK(dataset_split_assign(N, NULL, r, 3, 42, a));
    CHECK_OK(dataset_split_assign(N, NULL, r, 3, 42, b));
    CHECK_OK(dataset_split_assign(N, NULL, r, 3, 43, c));
    CHECK_EQ_INT(dataset_part_ids(a, N, 0, NULL), 800);
    CHECK_EQ_INT(dataset_part_ids(a, N, 1, NULL), 100);
    CHECK_EQ_INT(dataset_part_ids(a, N, 2, NULL), 100);
    CHECK(memcmp(a, b, N) == 0);
    CHECK(memcmp(a, c, N) != 0);
    CHECK_EQ_INT(dataset_part_ids(c, N, 1, NULL), 100);
    /* unnormalised ratios, odd sizes: ceil(n*R - 1/2) boundaries */
    const double r2[] = {2, 1};
    uint8_t d[7];
    CHECK_OK(dataset_split_assign(7, NULL, r2, 2, 1, d));
    CHECK_EQ_INT(dataset_part_ids(d, 7, 0, NULL), 5); /* 4.67 -> 5 */
    const double r3[] = {0.5, 0.5};
    uint8_t e[5];
    CHECK_OK(dataset_split_assign(5, NULL, r3, 2, 1, e));
    CHECK_EQ_INT(dataset_part_ids(e, 5, 0, NULL), 2); /* 2.5 rounds half down */
    const double r4[] = {1, 0};
    CHECK_OK(dataset_split_assign(5, NULL, r4, 2, 1, e));
    CHECK_EQ_INT(dataset_part_ids(e, 5, 1, NULL), 0);
    const double bad[] = {0.5, -0.1};
    CHECK(dataset_split_assign(5, NULL, bad, 2, 1, e) == AM_EINVAL);
    const double zero[] = {0, 0};
    CHECK(dataset_split_assign(5, NULL, zero, 2, 1, e) == AM_EINVAL);
    CHECK(dataset_split_assign(5, NULL, r4, 0, 1, e) == AM_EINVAL);
}

TEST(split_groups_never_straddle) {
    enum { N = 5000 };
    int64_t *g = xmalloc(N * sizeof *g);
    AmRng rng;
    am_rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) g[i] = (int64_t)am_rng_below(&rng, 600) * 7919 - 1000000; /* sizes vary, negatives ok */
    uint8_t *p = xmalloc(N), *q = xmalloc(N);
    const double r[] = {0.7, 0.15, 0.15};
    for (uint64_t seed = 1; seed <= 5; seed++) {
        CHECK_OK(dataset_split_assign(N, g, r, 3, seed, p));
        int straddle = 0, first[600];
        for (int i = 0; i < 600; i++) first[i] = -1;
        for (int i = 0; i < N; i++) {
            int gi = (int)((g[i] + 1000000) / 7919);
            if (first[gi] < 0) first[gi] = p[i];
            straddle += first[gi] != p[i];
        }
        CHECK_EQ_INT(straddle, 0);
        int64_t n0 = dataset_part_ids(p, N, 0, NULL);
        CHECKF(n0 > N * 0.65 && n0 < N * 0.75, "part 0 has %lld of %d rows", (long long)n0, N);
        CHECK(dataset_part_ids(p, N, 1, NULL) > 0 && dataset_part_ids(p, N, 2, NULL) > 0);
    }
    CHECK_OK(dataset_split_assign(N, g, r, 3, 9, p));
    CHECK_OK(dataset_split_assign(N, g, r, 3, 9, q));
    CHECK(memcmp(p, q, N) == 0);
    /* independent of the row order: the same group -> part map after permuting rows */
    int64_t *g2 = xmalloc(N * sizeof *g2);
    for (int i = 0; i < N; i++) g2[i] = g[N - 1 - i];
    CHECK_OK(dataset_split_assign(N, g2, r, 3, 9, q));
    int same = 1;
    for (int i = 0; i < N; i++) same &= p[i] == q[N - 1 - i];
    CHECK(same);
    free(g);
    free(g2);
    free(p);
    free(q);
}

TEST(split_datasets_and_rowid_hash) {
    /* labelled: both parts keep the whole label table, rows in original order */
    Dataset *d = dataset_new(AM_DS_LABELLED, NULL);
    char t[32];
    for (int i = 0; i < 100; i++) {
        snprintf(t, sizeof t, "text %d", i);
        CHECK_OK(dataset_add_labelled(d, t, i == 0 ? "rare" : (i % 2 ? "odd" : "even")));
    }
    dataset_finish(d);
    int64_t *grp = xmalloc(100 * sizeof *grp);
    for (int i = 0; i < 100; i++) grp[i] = i / 10;
    Dataset *parts[2];
    char hashes[2][33], again[2][33];
    const double r[] = {0.8, 0.2};
    CHECK_OK(dataset_split(d, grp, r, 2, 7, parts, hashes));
    CHECK_EQ_INT(parts[0]->n + parts[1]->n, 100);
    CHECK_EQ_INT(parts[1]->n, 20);
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(parts[k]->n_labels, 3);
        int ordered = 1;
        for (int64_t i = 1; i < parts[k]->n; i++) ordered &= strcmp(parts[k]->text[i - 1], parts[k]->text[i]) != 0;
        CHECK(ordered);
        for (int64_t i = 0; i < parts[k]->n; i++) { /* label names agree with the parent */
            int row = atoi(parts[k]->text[i] + 5);
            CHECK(strcmp(parts[k]->label_names[parts[k]->label[i]], d->label_names[d->label[row]]) == 0);
            CHECK(parts[k]->label[i] == d->label[row]);
        }
    }
    /* whole groups of 10 on one side */
    int side[10] = {0};
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < parts[k]->n; i++) side[atoi(parts[k]->text[i] + 5) / 10] |= 1 << k;
    for (int i = 0; i < 10; i++) CHECK(side[i] == 1 || side[i] == 2);
    Dataset *p2[2];
    CHECK_OK(dataset_split(d, grp, r, 2, 7, p2, again));
    CHECK(strcmp(hashes[0], again[0]) == 0 && strcmp(hashes[1], again[1]) == 0);
    CHECK(strcmp(hashes[0], hashes[1]) != 0);
    int64_t ids[3] = {1, 2, 3}, ids2[3] = {1, 3, 2};
    char h1[33], h2[33];
    dataset_rowid_hash(ids, 3, h1);
    dataset_rowid_hash(ids2, 3, h2);
    CHECK(strcmp(h1, h2) != 0 && strlen(h1) == 32);
    for (int k = 0; k < 2; k++) {
        dataset_delete(parts[k]);
        dataset_delete(p2[k]);
    }
    free(grp);
    dataset_delete(d);

    /* retrieval: rows are queries; the corpus stays whole; splits without qrels vanish */
    Dataset *b = NULL, *s = NULL;
    CHECK_OK(dataset_load_beir(DATA_DIR "/beir", NULL, &b));
    if (b) {
        int64_t sel[] = {1, 3}; /* q2, q4 */
        CHECK_OK(dataset_select(b, sel, 2, &s));
        if (s) {
            CHECK_EQ_INT(s->n, 2);
            CHECK_EQ_INT(s->n_docs, 4);
            CHECK(strcmp(s->query_id[0], "q2") == 0);
            CHECK_EQ_INT(s->n_splits, 2); /* q2 has test and train qrels */
            CHECK_EQ_INT(s->n_qrels, 2);
        }
        dataset_delete(s);
        int64_t sel2[] = {3};
        CHECK_OK(dataset_select(b, sel2, 1, &s));
        if (s) CHECK_EQ_INT(s->n_splits, 0);
        dataset_delete(s);
        s = NULL;
        int64_t dup[] = {1, 1};
        CHECK_ERR(dataset_select(b, dup, 2, &s), s, AM_EINVAL, "selected twice");
        int64_t out[] = {9};
        CHECK_ERR(dataset_select(b, out, 1, &s), s, AM_EINVAL, "out of range");
    }
    dataset_delete(b);
}

/* ---------------------------------------------------------------- subsampling */

TEST(subsample) {
    enum { N = 1000 };
    int64_t a[N], b[N], c[N], comp[N], k, kb, kc, kcomp;
    CHECK_OK(dataset_subsample_ids(N, 0.8, 11, 0, a, &k));
    CHECK_EQ_INT(k, 800);
    int ok = 1;
    for (int64_t i = 1; i < k; i++) ok &= a[i] > a[i - 1]; /* ascending and without repeats */
    CHECK(ok && a[0] >= 0 && a[k - 1] < N);
    CHECK_OK(dataset_subsample_ids(N, 0.8, 11, 0, b, &kb));
    CHECK(kb == k && memcmp(a, b, (size_t)k * sizeof *a) == 0);
    CHECK_OK(dataset_subsample_ids(N, 0.8, 12, 0, c, &kc));
    CHECK(kc == k && memcmp(a, c, (size_t)k * sizeof *a) != 0);
    /* nested: for one seed the 40 % sample is inside the 80 % one */
    CHECK_OK(dataset_subsample_ids(N, 0.4, 11, 0, c, &kc));
    CHECK_EQ_INT(kc, 400);
    int64_t j = 0, inside = 0;
    for (int64_t i = 0; i < kc; i++) {
        while (j < k && a[j] < c[i]) j++;
        inside += j < k && a[j] == c[i];
    }
    CHECK_EQ_INT(inside, 400);
    /* complement: disjoint, together everything */
    CHECK_OK(dataset_subsample_ids(N, 0.8, 11, 1, comp, &kcomp));
    CHECK_EQ_INT(kcomp, 200);
    uint8_t seen[N] = {0};
    for (int64_t i = 0; i < k; i++) seen[a[i]]++;
    for (int64_t i = 0; i < kcomp; i++) seen[comp[i]]++;
    int all_once = 1;
    for (int i = 0; i < N; i++) all_once &= seen[i] == 1;
    CHECK(all_once);
    CHECK_OK(dataset_subsample_ids(N, 0, 1, 0, a, &k));
    CHECK_EQ_INT(k, 0);
    CHECK_OK(dataset_subsample_ids(N, 1, 1, 0, a, &k));
    CHECK_EQ_INT(k, N);
    CHECK_OK(dataset_subsample_ids(3, 0.5, 1, 0, a, &k));
    CHECK_EQ_INT(k, 2); /* floor(1.5 + 0.5) */
    CHECK(dataset_subsample_ids(N, 1.5, 1, 0, a, &k) == AM_EINVAL);
    CHECK(dataset_subsample_ids(N, -0.1, 1, 0, a, &k) == AM_EINVAL);
    CHECK(dataset_subsample_ids(N, NAN, 1, 0, a, &k) == AM_EINVAL);

    Dataset *d = NULL, *s = NULL, *s2 = NULL;
    CHECK_OK(dataset_load(AM_DS_LABELLED, DATA_DIR "/labels.jsonl", AM_FMT_AUTO, &d));
    if (d) {
        char h1[33], h2[33];
        CHECK_OK(dataset_subsample(d, 0.6, 3, &s, h1));
        CHECK_OK(dataset_subsample(d, 0.6, 3, &s2, h2));
        if (s && s2) {
            CHECK_EQ_INT(s->n, 3);
            char c1[33], c2[33];
            hash_of(s, c1);
            hash_of(s2, c2);
            CHECK(strcmp(c1, c2) == 0 && strcmp(h1, h2) == 0);
        }
    }
    dataset_delete(s);
    dataset_delete(s2);
    dataset_delete(d);
}

/* ---------------------------------------------------------------- order, iteration, batches */

TEST(batch_order_and_iter) {
    enum { N = 103 };
    int64_t a[N], b[N], c[N];
    dataset_batch_order(N, 5, 0, a);
    dataset_batch_order(N, 5, 0, b);
    dataset_batch_order(N, 5, 1, c);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    uint8_t seen[N] = {0};
    for (int i = 0; i < N; i++) seen[a[i]]++;
    int perm = 1;
    for (int i = 0; i < N; i++) perm &= seen[i] == 1;
    CHECK(perm);
    dataset_batch_order(N, 6, 0, c);
    CHECK(memcmp(a, c, sizeof a) != 0);

    DatasetIter it, it2;
    CHECK_OK(dataset_iter_init(&it, N, 10, 5, 0));
    const int64_t *ids;
    int nb;
    int64_t ep, got = 0;
    for (int bi = 0; bi < 11; bi++) { /* epoch 0: 10 x 10 + 3 */
        dataset_iter_next(&it, &ids, &nb, &ep);
        CHECK_EQ_INT(ep, 0);
        CHECK_EQ_INT(nb, bi < 10 ? 10 : 3);
        CHECK(memcmp(ids, a + got, (size_t)nb * sizeof *ids) == 0);
        got += nb;
    }
    dataset_iter_next(&it, &ids, &nb, &ep);
    CHECK_EQ_INT(ep, 1);
    int64_t e1[N];
    dataset_batch_order(N, 5, 1, e1);
    CHECK(memcmp(ids, e1, 10 * sizeof *ids) == 0);
    /* replay: seek to (1, 10) gives the batch after */
    int64_t want[10];
    dataset_iter_next(&it, &ids, &nb, &ep);
    memcpy(want, ids, sizeof want);
    CHECK_OK(dataset_iter_init(&it2, N, 10, 5, 0));
    dataset_iter_seek(&it2, 1, 10);
    dataset_iter_next(&it2, &ids, &nb, &ep);
    CHECK(ep == 1 && nb == 10 && memcmp(ids, want, sizeof want) == 0);
    dataset_iter_free(&it);
    dataset_iter_free(&it2);
    /* drop_last */
    CHECK_OK(dataset_iter_init(&it, N, 10, 5, 1));
    for (int bi = 0; bi < 11; bi++) {
        dataset_iter_next(&it, &ids, &nb, &ep);
        CHECK_EQ_INT(nb, 10);
        CHECK_EQ_INT(ep, bi < 10 ? 0 : 1);
    }
    dataset_iter_free(&it);
    CHECK(dataset_iter_init(&it, 5, 8, 1, 0) == AM_EINVAL);
    CHECK(contains(am_lasterror(), "larger than the dataset"));
    CHECK(dataset_iter_init(&it, 0, 1, 1, 0) == AM_EINVAL);
    CHECK(dataset_iter_init(&it, 5, 0, 1, 0) == AM_EINVAL);
}

TEST(batches) {
    Dataset *p = NULL, *g = NULL, *l = NULL, *b = NULL;
    CHECK_OK(dataset_load(AM_DS_PAIRS, DATA_DIR "/pairs.jsonl", AM_FMT_AUTO, &p));
    CHECK_OK(dataset_load(AM_DS_GRADED, DATA_DIR "/sts.tsv", AM_FMT_AUTO, &g));
    CHECK_OK(dataset_load(AM_DS_LABELLED, DATA_DIR "/labels.tsv", AM_FMT_AUTO, &l));
    CHECK_OK(dataset_load_beir(DATA_DIR "/beir", NULL, &b));
    if (!p || !g || !l || !b) return;
    DatasetBatch bt = {0};
    int64_t ids[] = {2, 1, 0};
    CHECK_OK(dataset_batch(p, ids, 3, &bt));
    CHECK_EQ_INT(bt.n, 3);
    CHECK(bt.text[0] == p->text[2] && bt.text2[1] == posn(p, 1, 0));
    CHECK_EQ_INT(bt.pos_start[3], 4);
    CHECK_EQ_INT(bt.neg_start[1], 2);
    CHECK_EQ_INT(bt.neg_start[3], 3);
    CHECK(strcmp(bt.pos[1], "Café au lait — coffee with milk.") == 0);
    CHECK(strcmp(bt.neg[2], "A dog is a domesticated canid.") == 0);
    CHECK_OK(dataset_batch(g, ids, 3, &bt)); /* reuse the buffers */
    CHECK(bt.score[0] == 1.25f && bt.score[1] == 0 && strcmp(bt.text2[2], "A man plays guitar.") == 0);
    CHECK_EQ_INT(bt.pos_start[3], 0);
    int64_t many[5] = {4, 3, 2, 1, 0};
    CHECK_OK(dataset_batch(l, many, 5, &bt));
    CHECK_EQ_INT(bt.label[0], 0);
    CHECK_EQ_INT(bt.label[4], 1);
    CHECK(bt.text2[0] == NULL);
    int64_t bad[] = {5};
    CHECK(dataset_batch(l, bad, 1, &bt) == AM_EINVAL);
    CHECK(dataset_batch(b, ids, 1, &bt) == AM_EINVAL);
    CHECK(contains(am_lasterror(), "dataset_beir_to_pairs"));
    dataset_batch_free(&bt);
    dataset_delete(p);
    dataset_delete(g);
    dataset_delete(l);
    dataset_delete(b);
}

TEST(describe_json) {
    const char *files[] = {"pairs.jsonl", "sts.tsv", "labels.jsonl", "text.txt"};
    const DatasetKind kinds[] = {AM_DS_PAIRS, AM_DS_GRADED, AM_DS_LABELLED, AM_DS_TEXT};
    for (int i = 0; i < 4; i++) {
        char *path = xasprintf("%s/%s", DATA_DIR, files[i]);
        Dataset *d = NULL;
        CHECK_OK(dataset_load(kinds[i], path, AM_FMT_AUTO, &d));
        free(path);
        if (!d) continue;
        char *js = dataset_describe(d);
        cJSON *o = cJSON_Parse(js);
        CHECKF(o != NULL, "%s: describe is not JSON: %s", files[i], js);
        if (o) {
            CHECK(strcmp(cJSON_GetObjectItem(o, "kind")->valuestring, dataset_kind_name(kinds[i])) == 0);
            CHECK_EQ_INT(cJSON_GetObjectItem(o, "rows")->valueint, d->n);
            CHECK_EQ_INT(cJSON_GetObjectItem(o, "version")->valueint, 1);
            CHECK(strlen(cJSON_GetObjectItem(o, "content_hash")->valuestring) == 32);
            if (kinds[i] == AM_DS_PAIRS) {
                CHECK_EQ_INT(cJSON_GetObjectItem(o, "positives")->valueint, 6);
                CHECK_EQ_INT(cJSON_GetObjectItem(o, "negatives")->valueint, 5);
                CHECK_EQ_INT(cJSON_GetObjectItem(o, "max_positives")->valueint, 2);
                CHECK_EQ_INT(cJSON_GetObjectItem(o, "rows_with_negatives")->valueint, 3);
            }
            if (kinds[i] == AM_DS_GRADED) {
                CHECK(cJSON_GetObjectItem(o, "score_max")->valuedouble == 4.8);
                CHECK(cJSON_GetObjectItem(o, "score_min")->valuedouble == 0);
            }
            if (kinds[i] == AM_DS_LABELLED) {
                cJSON *labs = cJSON_GetObjectItem(o, "labels");
                CHECK_EQ_INT(cJSON_GetArraySize(labs), 4);
                cJSON *admin = cJSON_GetArrayItem(labs, 1);
                CHECK(strcmp(cJSON_GetObjectItem(admin, "name")->valuestring, "admin") == 0);
                CHECK_EQ_INT(cJSON_GetObjectItem(admin, "count")->valueint, 2);
            }
            if (kinds[i] == AM_DS_TEXT) CHECK(cJSON_GetObjectItem(o, "bytes")->valueint > 100);
            cJSON_Delete(o);
        }
        free(js);
        dataset_delete(d);
    }
    /* the hash changes with the content */
    Dataset *a = dataset_new(AM_DS_TEXT, NULL), *b = dataset_new(AM_DS_TEXT, NULL);
    dataset_add_text(a, "ab");
    dataset_add_text(a, "c");
    dataset_add_text(b, "a");
    dataset_add_text(b, "bc");
    dataset_finish(a);
    dataset_finish(b);
    char ha[33], hb[33];
    hash_of(a, ha);
    hash_of(b, hb);
    CHECK(strcmp(ha, hb) != 0); /* strings are length-prefixed */
    dataset_delete(a);
    dataset_delete(b);
}

/* ---------------------------------------------------------------- scale */

TEST(large_load_timing) {
    enum { N = 100000 };
    char *dir = tmpdir(), *pairs = xasprintf("%s/big.jsonl", dir), *sts = xasprintf("%s/big.tsv", dir);
    FILE *f = fopen(pairs, "w"), *t = fopen(sts, "w");
    AM_ASSERT(f && t);
    for (int i = 0; i < N; i++) {
        fprintf(f, "{\"query\": \"what is the meaning of item %d in the catalogue\", \"positive\": \"Item %d is a "
                   "package that provides a library for parsing and writing files of kind %d.\", "
                   "\"negatives\": [\"Item %d is something else entirely.\", \"shared negative\"]}\n",
                i, i, i % 97, (i * 7) % N);
        fprintf(t, "sentence one number %d about things\tsentence two number %d about other things\t%d.%d\n", i,
                i * 3, i % 5, i % 10);
    }
    fclose(f);
    fclose(t);
    Dataset *d = NULL;
    double t0 = am_now();
    CHECK_OK(dataset_load(AM_DS_PAIRS, pairs, AM_FMT_AUTO, &d));
    double t1 = am_now();
    if (d) {
        CHECK_EQ_INT(d->n, N);
        CHECK_EQ_INT(d->neg_start[N], 2 * N);
        CHECK(d->neg[1] == d->neg[3]); /* "shared negative" stored once */
    }
    Dataset *g = NULL;
    double t2 = am_now();
    CHECK_OK(dataset_load(AM_DS_GRADED, sts, AM_FMT_AUTO, &g));
    double t3 = am_now();
    if (g) CHECK_EQ_INT(g->n, N);
    double t4 = am_now(), t5 = t4;
    if (d) {
        char *out = xasprintf("%s/big_out.jsonl", dir);
        CHECK_OK(dataset_write(d, out, AM_FMT_AUTO));
        t5 = am_now();
        Dataset *back = NULL;
        CHECK_OK(dataset_load(AM_DS_PAIRS, out, AM_FMT_AUTO, &back));
        if (back) {
            char h1[33], h2[33];
            hash_of(d, h1);
            hash_of(back, h2);
            CHECK(strcmp(h1, h2) == 0);
        }
        dataset_delete(back);
        free(out);
    }
    printf("  info: 100k-line loads: pairs JSONL %.0f ms, graded TSV %.0f ms; pairs JSONL write %.0f ms\n",
           (t1 - t0) * 1e3, (t3 - t2) * 1e3, (t5 - t4) * 1e3);
    dataset_delete(d);
    dataset_delete(g);
    free(pairs);
    free(sts);
}

int main(void) {
    RUN(load_pairs_jsonl);
    RUN(load_graded_tsv_and_jsonl);
    RUN(load_labelled);
    RUN(load_text_lines_paragraphs_jsonl);
    RUN(load_beir_dir);
    RUN(beir_to_pairs);
    RUN(import_spec);
    RUN(gzip_input);
    RUN(crlf_bom_and_last_line);
    RUN(bad_jsonl);
    RUN(bad_tsv_and_text);
    RUN(bad_beir);
    RUN(builder_checks);
    RUN(write_read_roundtrip_fixtures);
    RUN(write_read_roundtrip_builder);
    RUN(writer_refuses);
    RUN(split_ratios_and_determinism);
    RUN(split_groups_never_straddle);
    RUN(split_datasets_and_rowid_hash);
    RUN(subsample);
    RUN(batch_order_and_iter);
    RUN(batches);
    RUN(describe_json);
    RUN(large_load_timing);
    cleanup_tmp();
    return test_report();
}
