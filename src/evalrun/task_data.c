/* task_data.c - the files a task reads (BEIR directory, test/train files, sniffed kinds), their
 * fingerprint, and loading them into datasets (TaskData, cached by the runner). */
#define _GNU_SOURCE
#include "evalrun_internal.h"
#include "am_base.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- files */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void add_file(TaskFiles *f, const char *p) {
    f->files = xrealloc(f->files, (size_t)(f->nfiles + 1) * sizeof *f->files);
    f->files[f->nfiles++] = xstrdup(p);
}

void taskfiles_free(TaskFiles *f) {
    free(f->beir_dir);
    free(f->test_file);
    free(f->train_file);
    for (int i = 0; i < f->nfiles; i++) free(f->files[i]);
    free(f->files);
    memset(f, 0, sizeof *f);
}

/* dir/<name> for the first name that is a file; malloc'd or NULL */
static char *first_file(const char *dir, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        if (is_file(p)) return p;
        free(p);
    }
    return NULL;
}

static int has_corpus(const char *dir) {
    static const char *const c[] = {"corpus.jsonl", "corpus.jsonl.gz", NULL};
    char *p = first_file(dir, c);
    free(p);
    return p != NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the BEIR files: corpus, queries, every qrels/<split>.tsv (sorted) */
static int beir_files(const char *dir, TaskFiles *f, const char *tname) {
    static const char *const c[] = {"corpus.jsonl", "corpus.jsonl.gz", NULL};
    static const char *const q[] = {"queries.jsonl", "queries.jsonl.gz", NULL};
    char *cp = first_file(dir, c), *qp = first_file(dir, q);
    if (!cp || !qp) {
        free(cp);
        free(qp);
        return am_error(AM_ENOTFOUND, "task '%s': %s has no %s (HINT: a BEIR directory holds corpus.jsonl, "
                        "queries.jsonl and qrels/<split>.tsv)", tname, dir, cp ? "queries.jsonl" : "corpus.jsonl");
    }
    add_file(f, cp);
    add_file(f, qp);
    free(cp);
    free(qp);
    char *qd = xasprintf("%s/qrels", dir);
    DIR *d = opendir(qd);
    char **names = NULL;
    int n = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            if (l > 4 && strcmp(e->d_name + l - 4, ".tsv") == 0) {
                names = xrealloc(names, (size_t)(n + 1) * sizeof *names);
                names[n++] = xasprintf("%s/%s", qd, e->d_name);
            }
        }
        closedir(d);
    }
    free(qd);
    if (n == 0) {
        free(names);
        return am_error(AM_ENOTFOUND, "task '%s': %s/qrels/ holds no <split>.tsv file (HINT: BEIR layout: "
                        "qrels/test.tsv with the header query-id<TAB>corpus-id<TAB>score)", tname, dir);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        add_file(f, names[i]);
        free(names[i]);
    }
    free(names);
    return AM_OK;
}

/* a single data file in dir (*.jsonl, *.jsonl.gz or *.tsv), if exactly one */
static char *only_file(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *found = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        int data = (l > 6 && strcmp(e->d_name + l - 6, ".jsonl") == 0) ||
                   (l > 9 && strcmp(e->d_name + l - 9, ".jsonl.gz") == 0) ||
                   (l > 4 && strcmp(e->d_name + l - 4, ".tsv") == 0);
        if (!data || strncmp(e->d_name, "train", 5) == 0) continue;
        if (n++ == 0) found = xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n != 1) {
        free(found);
        return NULL;
    }
    return found;
}

/* Sniff a JSONL/TSV file's first record: AM_DS_GRADED, AM_DS_PAIRS, AM_DS_LABELLED or 0. */
static DatasetKind sniff(const char *path) {
    size_t l = strlen(path);
    if (l > 3 && strcmp(path + l - 3, ".gz") == 0) return 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    char *line = buf;
    while (*line == ' ' || *line == '\n' || *line == '\r' || *line == '\t') line++;
    if (strncmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3;
    char *end = strchr(line, '\n');
    if (end) *end = 0;
    if (line[0] == '{') {
        if (strstr(line, "\"sentence1\"")) return AM_DS_GRADED;
        if (strstr(line, "\"query\"") || strstr(line, "\"anchor\"")) return AM_DS_PAIRS;
        if (strstr(line, "\"label\"")) return AM_DS_LABELLED;
        return 0;
    }
    int tabs = 0;
    for (char *p = line; *p; p++) tabs += *p == '\t';
    return tabs == 2 ? AM_DS_GRADED : tabs == 1 ? AM_DS_LABELLED : 0;
}

static DatasetKind format_kind(const char *fmt) {
    if (!fmt) return 0;
    if (strcmp(fmt, "pairs") == 0) return AM_DS_PAIRS;
    if (strcmp(fmt, "graded") == 0 || strcmp(fmt, "sts") == 0) return AM_DS_GRADED;
    if (strcmp(fmt, "labelled") == 0 || strcmp(fmt, "labels") == 0) return AM_DS_LABELLED;
    return 0;
}

int taskfiles_resolve(const EvalTask *t, TaskFiles *f) {
    memset(f, 0, sizeof *f);
    const char *tname = t->name ? t->name : "?";
    if (!t->path || !*t->path) return am_error(AM_EINVAL, "task '%s': no data path", tname);
    const char *path = t->path;
    int dir = is_dir(path);
    if (!dir && !is_file(path))
        return am_error(AM_ENOTFOUND, "task '%s': %s does not exist%s", tname, path,
                        t->dataset ? " (HINT: run amalgam prepare to build the default suite)" : "");
    int want_beir = t->format && strcmp(t->format, "beir") == 0;
    int rc = AM_OK;
    if (t->type == AM_TASK_RETRIEVAL || (t->type == AM_TASK_BITEXT && (want_beir || (dir && has_corpus(path))))) {
        if (!dir) return am_error(AM_EINVAL, "task '%s': %s is a file; a %s task reads a BEIR directory", tname, path,
                                  evalrun_type_name(t->type));
        char *bd = NULL;
        if (has_corpus(path)) bd = xstrdup(path);
        else {
            static const char *const subs[] = {"beir", "test", NULL};
            for (int i = 0; subs[i] && !bd; i++) {
                char *p = xasprintf("%s/%s", path, subs[i]);
                if (is_dir(p) && has_corpus(p)) bd = p;
                else free(p);
            }
        }
        if (!bd) bd = xstrdup(path); /* beir_files names what is missing */
        f->beir_dir = bd;
        f->kind = AM_DS_RETRIEVAL;
        if ((rc = beir_files(bd, f, tname))) taskfiles_free(f);
        return rc;
    }
    /* a single test file (+ a training file for classification) */
    char *test = NULL;
    if (dir) {
        static const char *const cand[] = {"test.jsonl", "test.tsv", "test.jsonl.gz", "eval.jsonl", "eval.tsv",
                                           "data.jsonl", "data.tsv", NULL};
        test = first_file(path, cand);
        if (!test) {
            const char *tn = evalrun_type_name(t->type);
            char c1[64], c2[64];
            snprintf(c1, sizeof c1, "%s.jsonl", tn);
            snprintf(c2, sizeof c2, "%s.tsv", tn);
            const char *const cand2[] = {c1, c2, NULL};
            test = first_file(path, cand2);
        }
        if (!test) test = only_file(path);
        if (!test)
            return am_error(AM_ENOTFOUND, "task '%s': no test file in %s (looked for test.jsonl, test.tsv, %s.jsonl, "
                            "or a single *.jsonl / *.tsv)", tname, path, evalrun_type_name(t->type));
    } else {
        test = xstrdup(path);
    }
    f->test_file = test;
    DatasetKind k = format_kind(t->format);
    if (!k) {
        switch (t->type) {
        case AM_TASK_STS: k = AM_DS_GRADED; break;
        case AM_TASK_PAIRCLASS: k = sniff(test) == AM_DS_PAIRS ? AM_DS_PAIRS : AM_DS_GRADED; break;
        case AM_TASK_BITEXT: k = AM_DS_PAIRS; break;
        default: k = AM_DS_LABELLED; break;
        }
    }
    f->kind = k;
    add_file(f, test);
    if (t->type == AM_TASK_CLASSIFICATION) {
        if (t->train) {
            if (!is_file(t->train)) {
                taskfiles_free(f);
                return am_error(AM_ENOTFOUND, "task '%s': training file %s does not exist", tname, t->train);
            }
            f->train_file = xstrdup(t->train);
        } else {
            /* train.* beside a test.* file (or in the directory) */
            char *d = xstrdup(test);
            char *slash = strrchr(d, '/');
            const char *base = slash ? slash + 1 : d;
            if (dir || strncmp(base, "test", 4) == 0) {
                if (slash) *slash = 0;
                else strcpy(d, ".");
                static const char *const tc[] = {"train.jsonl", "train.tsv", "train.jsonl.gz", NULL};
                f->train_file = first_file(d, tc);
            }
            free(d);
        }
        if (f->train_file) add_file(f, f->train_file);
    }
    return AM_OK;
}

int taskfiles_hash(const TaskFiles *f, char out[33]) {
    AmHasher *h = am_hasher_new();
    char *buf = xmalloc(1 << 20);
    int rc = AM_OK;
    am_hasher_update(h, "amalgam-taskdata|1|", 19);
    for (int i = 0; i < f->nfiles && rc == AM_OK; i++) {
        const char *base = strrchr(f->files[i], '/');
        base = base ? base + 1 : f->files[i];
        am_hasher_update(h, base, strlen(base) + 1);
        FILE *fp = fopen(f->files[i], "rb");
        if (!fp) {
            rc = am_error(AM_EIO, "%s: cannot open: %s", f->files[i], strerror(errno));
            break;
        }
        size_t n;
        uint64_t total = 0;
        while ((n = fread(buf, 1, 1 << 20, fp)) > 0) {
            am_hasher_update(h, buf, n);
            total += n;
        }
        if (ferror(fp)) rc = am_error(AM_EIO, "%s: read error", f->files[i]);
        fclose(fp);
        am_hasher_update(h, &total, sizeof total);
    }
    free(buf);
    am_hasher_hex(h, out);
    am_hasher_delete(h);
    return rc;
}

/* ---------------------------------------------------------------- loading */

void taskdata_delete(TaskData *d) {
    if (!d) return;
    taskfiles_free(&d->tf); /* owns files[] */
    free(d->sig);
    dataset_delete(d->test);
    dataset_delete(d->train);
    free(d);
}

static void file_sig(const char *p, int64_t *sig) {
    struct stat st;
    if (stat(p, &st) != 0) {
        sig[0] = sig[1] = sig[2] = -1;
        return;
    }
    sig[0] = (int64_t)st.st_size;
    sig[1] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    sig[2] = (int64_t)st.st_ino;
}

int taskdata_fresh(const TaskData *d) {
    for (int i = 0; i < d->nfiles; i++) {
        int64_t s[3];
        file_sig(d->files[i], s);
        if (s[0] != d->sig[3 * i] || s[1] != d->sig[3 * i + 1] || s[2] != d->sig[3 * i + 2]) return 0;
    }
    return 1;
}

/* the qrels split to use */
static int pick_split(const EvalTask *t, const Dataset *ds, int *out) {
    const char *want = t->split;
    for (int s = 0; s < ds->n_splits; s++)
        if (strcmp(ds->split_names[s], want ? want : "test") == 0) {
            *out = s;
            return AM_OK;
        }
    if (!want && ds->n_splits == 1) {
        *out = 0;
        return AM_OK;
    }
    char list[512] = "";
    for (int s = 0; s < ds->n_splits; s++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", s ? ", " : "", ds->split_names[s]);
    }
    if (want)
        return am_error(AM_ENOTFOUND, "task '%s': no qrels split '%s' in %s (splits: %s)", t->name, want, ds->origin, list);
    return am_error(AM_EINVAL, "task '%s': %s has several qrels splits (%s) and none is 'test' (HINT: pick one with "
                    "beir:DIR#split)", t->name, ds->origin, list);
}

int taskdata_parse(const EvalTask *t, TaskData *d) {
    if (d->parsed) return AM_OK;
    const TaskFiles *f = &d->tf;
    int rc;
    if (f->beir_dir) {
        if ((rc = dataset_load_beir(f->beir_dir, NULL, &d->test))) goto fail;
        if ((rc = pick_split(t, d->test, &d->split))) goto fail;
    } else {
        if ((rc = dataset_load(f->kind, f->test_file, AM_FMT_AUTO, &d->test))) goto fail;
        if (t->type == AM_TASK_CLASSIFICATION) {
            if (f->train_file) {
                if ((rc = dataset_load(AM_DS_LABELLED, f->train_file, AM_FMT_AUTO, &d->train))) goto fail;
            } else {
                /* one file: a seeded 50/50 split (train = part 0) */
                Dataset *parts[2] = {NULL, NULL};
                const double ratios[2] = {0.5, 0.5};
                if ((rc = dataset_split(d->test, NULL, ratios, 2, t->seed, parts, NULL))) goto fail;
                dataset_delete(d->test);
                d->train = parts[0];
                d->test = parts[1];
            }
        }
    }
    d->parsed = 1;
    return AM_OK;
fail:
    dataset_delete(d->test);
    dataset_delete(d->train);
    d->test = d->train = NULL;
    return am_error_wrap(rc, "task '%s'", t->name);
}

int taskdata_load(const EvalTask *t, int parse, TaskData **out) {
    *out = NULL;
    TaskData *d = xcalloc(1, sizeof *d);
    int rc = taskfiles_resolve(t, &d->tf);
    if (rc) {
        free(d);
        return rc;
    }
    evaltask_files_key(t, d->key);
    d->nfiles = d->tf.nfiles;
    d->files = d->tf.files;
    d->sig = xmalloc((size_t)(d->nfiles ? d->nfiles : 1) * 3 * sizeof *d->sig);
    for (int i = 0; i < d->nfiles; i++) file_sig(d->files[i], d->sig + 3 * i);
    if ((rc = taskfiles_hash(&d->tf, d->data_hash))) {
        am_error_wrap(rc, "task '%s'", t->name);
        taskdata_delete(d);
        return rc;
    }
    if (parse && (rc = taskdata_parse(t, d))) {
        taskdata_delete(d);
        return rc;
    }
    *out = d;
    return AM_OK;
}
