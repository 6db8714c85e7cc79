/* ds_beir.c - BEIR directories (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) into a
 * retrieval Dataset, and a retrieval Dataset's qrels into training pairs. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- BEIR */

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* dir/name or dir/name.gz, whichever exists (NULL if neither); malloc'd. */
static char *find_file(const char *dir, const char *name) {
    char *p = xasprintf("%s/%s", dir, name);
    if (ds_path_kind(p) == 1) return p;
    free(p);
    p = xasprintf("%s/%s.gz", dir, name);
    if (ds_path_kind(p) == 1) return p;
    free(p);
    return NULL;
}

/* Split names of dir/qrels/<split>.tsv, sorted; returns the count (0 if none or no directory). */
static int list_splits(const char *qdir, char ***out) {
    *out = NULL;
    DIR *d = opendir(qdir);
    if (!d) return 0;
    int n = 0, cap = 0;
    char **v = NULL;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".tsv") != 0 || e->d_name[0] == '.') continue;
        if (n == cap) v = xrealloc(v, (size_t)(cap = cap ? cap * 2 : 8) * sizeof *v);
        v[n++] = strndup(e->d_name, l - 4);
        AM_ASSERT(v[n - 1] != NULL);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, cmp_cstr);
    *out = v;
    return n;
}

static int load_part(Dataset *ds, const char *path, int beir) {
    char *buf;
    size_t len;
    int rc = ds_read_all(path, &buf, &len);
    if (rc) return rc;
    rc = ds_check_text(buf, len, path);
    int64_t before = beir == 1 ? ds->n_docs : ds->n;
    if (!rc) ds_reserve_strings(ds, ds->impl->intern.count + ds_count_lines(buf, len) * (beir == 1 ? 3 : 2));
    if (!rc) rc = ds_parse_beir_jsonl(ds, buf, len, path, beir);
    if (!rc && (beir == 1 ? ds->n_docs : ds->n) == before)
        rc = am_error(AM_EFORMAT, "%s: empty dataset (0 %s)", path, beir == 1 ? "documents" : "queries");
    free(buf);
    return rc;
}

int dataset_load_beir(const char *dir, const char *split, Dataset **out) {
    *out = NULL;
    if (ds_path_kind(dir) != 2) return am_error(AM_ENOTFOUND, "%s: no such directory\n" HINT_BEIR, dir);
    char *corpus = find_file(dir, "corpus.jsonl"), *queries = find_file(dir, "queries.jsonl");
    char *qdir = xasprintf("%s/qrels", dir), **splits = NULL;
    int n_splits = list_splits(qdir, &splits), rc = AM_OK;
    if (!corpus) {
        rc = am_error(AM_ENOTFOUND, "%s/corpus.jsonl: missing corpus file\n" HINT_BEIR, dir);
    } else if (!queries) {
        rc = am_error(AM_ENOTFOUND, "%s/queries.jsonl: missing queries file\n" HINT_BEIR, dir);
    } else if (split) {
        int found = 0;
        for (int i = 0; i < n_splits; i++) found |= strcmp(splits[i], split) == 0;
        if (!found) {
            char present[512] = "none";
            size_t o = 0;
            for (int i = 0; i < n_splits && o < sizeof present - 64; i++)
                o += (size_t)snprintf(present + o, sizeof present - o, "%s%s", i ? ", " : "", splits[i]);
            rc = am_error(AM_ENOTFOUND, "%s/%s.tsv: missing qrels file\n" HINT_BEIR "\nHINT: splits found in %s: %s",
                          qdir, split, qdir, present);
        }
    } else if (n_splits == 0) {
        rc = am_error(AM_ENOTFOUND, "%s/test.tsv: missing qrels file (no qrels/<split>.tsv in %s)\n" HINT_BEIR, qdir, dir);
    }
    Dataset *ds = NULL;
    if (!rc) {
        ds = dataset_new(AM_DS_RETRIEVAL, dir);
        rc = load_part(ds, corpus, 1);
        if (!rc) rc = load_part(ds, queries, 2);
        for (int i = 0; i < n_splits && !rc; i++) {
            if (split && strcmp(split, splits[i]) != 0) continue;
            char *path = xasprintf("%s/%s.tsv", qdir, splits[i]), *buf;
            size_t len;
            rc = ds_read_all(path, &buf, &len);
            if (!rc) {
                rc = ds_check_text(buf, len, path);
                if (!rc) rc = ds_parse_qrels(ds, buf, len, path, (DsStr){splits[i], strlen(splits[i])});
                free(buf);
            }
            free(path);
        }
    }
    for (int i = 0; i < n_splits; i++) free(splits[i]);
    free(splits);
    free(qdir);
    free(corpus);
    free(queries);
    if (rc) {
        dataset_delete(ds);
        return rc;
    }
    dataset_finish(ds);
    *out = ds;
    return AM_OK;
}

/* ---------------------------------------------------------------- BEIR -> pairs */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

int dataset_beir_to_pairs(const Dataset *b, const char *split, int zero_grade_negatives, Dataset **out) {
    *out = NULL;
    if (b->kind != AM_DS_RETRIEVAL)
        return am_error(AM_EINVAL, "%s: not a retrieval dataset (%s)", b->origin, dataset_kind_name(b->kind));
    AM_ASSERT(b->impl->finished);
    int s = -1;
    if (!split) {
        if (b->n_splits != 1)
            return am_error(b->n_splits ? AM_EINVAL : AM_EFORMAT, "%s: %d qrels splits; name the one to convert",
                            b->origin, b->n_splits);
        s = 0;
    }
    for (int i = 0; i < b->n_splits && s < 0; i++)
        if (strcmp(b->split_names[i], split) == 0) s = i;
    if (s < 0) return am_error(AM_ENOTFOUND, "%s: no qrels split \"%s\"", b->origin, split);
    /* qrels of split s bucketed by query (CSR), file order kept */
    int64_t q0 = b->qrel_start[s], q1 = b->qrel_start[s + 1];
    int64_t *start = xcalloc((size_t)b->n + 2, sizeof *start), *idx = xmalloc((size_t)(q1 - q0 + 1) * sizeof *idx);
    for (int64_t j = q0; j < q1; j++) start[b->qrel_query[j] + 2]++;
    for (int64_t i = 0; i < b->n; i++) start[i + 2] += start[i + 1];
    for (int64_t j = q0; j < q1; j++) idx[start[b->qrel_query[j] + 1]++] = j;
    /* now row i's qrels are idx[start[i] .. start[i+1]) */
    Dataset *o = dataset_new(AM_DS_PAIRS, b->origin);
    char *scratch = NULL;
    size_t scap = 0;
    int64_t *off = NULL;
    DsStr *strs = NULL;
    int64_t cap = 0;
    int rc = AM_OK;
    for (int64_t q = 0; q < b->n && !rc; q++) {
        int64_t m = start[q + 1] - start[q];
        if (m > cap) {
            cap = m * 2;
            off = xrealloc(off, (size_t)cap * 2 * sizeof *off);
            strs = xrealloc(strs, (size_t)cap * sizeof *strs);
        }
        size_t used = 0;
        int np = 0, nn = 0;
        for (int pass = 0; pass < 2; pass++) /* positives first, then grade-0 negatives */
            for (int64_t t = start[q]; t < start[q + 1]; t++) {
                int64_t j = idx[t];
                int g = b->qrel_grade[j];
                if (pass == 0 ? g <= 0 : (g != 0 || !zero_grade_negatives)) continue;
                const char *ti = b->doc_title[b->qrel_doc[j]], *tx = b->doc_text[b->qrel_doc[j]];
                size_t lt = strlen(ti), lx = strlen(tx);
                if (used + lt + lx + 2 > scap) {
                    scap = (used + lt + lx + 2) * 2;
                    scratch = xrealloc(scratch, scap);
                }
                char *p = scratch + used;
                memcpy(p, ti, lt);
                p[lt] = ' ';
                memcpy(p + lt + 1, tx, lx);
                size_t a = 0, e = lt + lx + 1;
                while (a < e && is_space(p[a])) a++;
                while (e > a && is_space(p[e - 1])) e--;
                off[2 * (np + nn)] = (int64_t)(used + a);
                off[2 * (np + nn) + 1] = (int64_t)(e - a);
                used += lt + lx + 1;
                if (pass == 0) np++;
                else nn++;
            }
        if (np == 0) continue;
        for (int i = 0; i < np + nn; i++) strs[i] = (DsStr){scratch + off[2 * i], (size_t)off[2 * i + 1]};
        rc = ds_add_pair(o, (DsStr){b->text[q], strlen(b->text[q])}, strs, np, strs + np, nn);
    }
    free(scratch);
    free(off);
    free(strs);
    free(start);
    free(idx);
    if (!rc && o->n == 0)
        rc = am_error(AM_EFORMAT, "%s: split \"%s\" has no query with a relevant (grade > 0) document", b->origin,
                      b->split_names[s]);
    if (rc) {
        dataset_delete(o);
        return rc;
    }
    dataset_finish(o);
    *out = o;
    return AM_OK;
}
