/* test_data_read.c - dataset loaders: every format on the committed fixtures (tests/ref/data,
 * see its README), every bad-input case on corrupt variants generated here in mkdtemp dirs,
 * BEIR directories and import specs, and a 100k-line load timed (printed, not asserted). */
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

#define TEST_TMP_PREFIX "/tmp/am_test_data_read_"
#include "tmpdir.h"
#include "data_helpers.h"

/* content written as dir/name and loaded as kind in fmt (checked): the dataset or NULL */
static Dataset *load_content(const char *dir, const char *name, const char *content, DatasetKind kind,
                             DatasetFormat fmt) {
    char *path = put_file(dir, name, content, -1);
    Dataset *d = NULL;
    CHECK_OK(dataset_load(kind, path, fmt, &d));
    free(path);
    return d;
}

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
    Dataset *d = load_content(dir, "nohdr.tsv", "a\tb\t1\nc\td\t2.5\n", AM_DS_GRADED, AM_FMT_AUTO);
    if (d) {
        CHECK_EQ_INT(d->n, 2);
        CHECK(d->score[0] == 1.0 && d->score[1] == 2.5);
        CHECK(strcmp(d->text[0], "a") == 0);
    }
    dataset_delete(d);
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
    j = load_content(dir, "t.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\\nlines\", \"meta\": 1}\n", AM_DS_TEXT,
                     AM_FMT_AUTO);
    if (j) {
        CHECK_EQ_INT(j->n, 2);
        CHECK(j->n == 2 && strcmp(j->text[1], "two\nlines") == 0);
    }
    dataset_delete(l);
    dataset_delete(p);
    dataset_delete(j);
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
    a = load_content(dir, "crlf.tsv", "sentence1\tsentence2\tscore\r\nx\ty\t2\r\nu\tv\t3", AM_DS_GRADED, AM_FMT_AUTO);
    if (a) {
        CHECK_EQ_INT(a->n, 2);
        CHECK(strcmp(a->text2[0], "y") == 0 && a->score[1] == 3.0);
    }
    dataset_delete(a);
    a = load_content(dir, "crlf.txt", "one\r\n\r\ntwo\r\nthree", AM_DS_TEXT, AM_FMT_PARAGRAPHS);
    if (a) {
        CHECK_EQ_INT(a->n, 2);
        CHECK(a->n == 2 && strcmp(a->text[1], "two three") == 0);
    }
    dataset_delete(a);
    free(lf);
    free(crlf);
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
    RUN(large_load_timing);
    cleanup_tmp();
    return test_report();
}
