/* test_data.c - the in-memory Dataset: builder checks, writer -> reader round trips with equal
 * content hashes, splits, subsampling, epoch order, batches and describe. Loaders are in
 * test_data_read.c. */
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

#define TEST_TMP_PREFIX "/tmp/am_test_data_"
#include "tmpdir.h"
#include "data_helpers.h"

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

int main(void) {
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
    cleanup_tmp();
    return test_report();
}
