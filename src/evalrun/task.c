/* task.c - task specs, the files a task reads, their fingerprint, loading, and the instance
 * (unique texts + role indices, quick subsample) one evaluation embeds and scores. */
#define _GNU_SOURCE
#include "evalrun_internal.h"
#include "am_base.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- types */

static const char *const type_names[AM_TASK_NTYPES] = {"retrieval", "sts", "pair_classification",
                                                       "classification", "clustering", "bitext"};
static const char *const type_main[AM_TASK_NTYPES] = {"ndcg_at_10", "cosine_spearman", "max_ap",
                                                      "accuracy", "v_measure", "f1"};

const char *evalrun_type_name(EvalTaskType t) { return t >= 0 && t < AM_TASK_NTYPES ? type_names[t] : "?"; }
const char *evalrun_type_main_metric(EvalTaskType t) { return t >= 0 && t < AM_TASK_NTYPES ? type_main[t] : "?"; }

int evalrun_type_parse(const char *s, EvalTaskType *out) {
    static const struct { const char *name; EvalTaskType t; } alias[] = {
        {"retrieval", AM_TASK_RETRIEVAL}, {"beir", AM_TASK_RETRIEVAL},
        {"sts", AM_TASK_STS}, {"graded", AM_TASK_STS},
        {"pair_classification", AM_TASK_PAIRCLASS}, {"pairclass", AM_TASK_PAIRCLASS},
        {"pair-classification", AM_TASK_PAIRCLASS}, {"pairs", AM_TASK_PAIRCLASS},
        {"classification", AM_TASK_CLASSIFICATION}, {"classify", AM_TASK_CLASSIFICATION},
        {"labels", AM_TASK_CLASSIFICATION}, {"labelled", AM_TASK_CLASSIFICATION},
        {"clustering", AM_TASK_CLUSTERING}, {"cluster", AM_TASK_CLUSTERING},
        {"bitext", AM_TASK_BITEXT}, {"bitext_mining", AM_TASK_BITEXT},
    };
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (s && strcmp(s, alias[i].name) == 0) {
            *out = alias[i].t;
            return AM_OK;
        }
    return am_error(AM_EINVAL, "unknown task type '%s' (retrieval, sts, pair_classification, classification, "
                    "clustering, bitext)", s ? s : "(null)");
}

const char *evalrun_mode_name(EvalMode m) { return m == AM_EVAL_QUICK ? "quick" : "full"; }

/* ---------------------------------------------------------------- specs */

void evaltask_init(EvalTask *t) {
    memset(t, 0, sizeof *t);
    t->type = AM_TASK_RETRIEVAL;
    t->seed = 42;
    t->samples_per_label = 8;
    t->experiments = 10;
    t->cluster_sample = 16384;
    t->quick_n = 200;
    t->quick_docs = 1000;
    t->quick_train = 400;
    t->quick_experiments = 0;
    t->quick_cluster_sample = 0;
}

void evaltask_free(EvalTask *t) {
    free(t->name);
    free(t->dataset);
    free(t->tag);
    free(t->main_metric);
    free(t->path);
    free(t->format);
    free(t->split);
    free(t->train);
    memset(t, 0, sizeof *t);
}

static int check_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 200) return am_error(AM_EINVAL, "task name must be 1..200 bytes, got %zu", n);
    return AM_OK;
}

static int check_format(const char *f) {
    static const char *const ok[] = {"auto", "beir", "pairs", "graded", "sts", "labelled", "labels", NULL};
    for (int i = 0; ok[i]; i++)
        if (strcmp(f, ok[i]) == 0) return AM_OK;
    return am_error(AM_EINVAL, "unknown format '%s' (auto, beir, pairs, graded, labelled)", f);
}

int evaltask_from_json(EvalTask *t, const char *json) {
    evaltask_init(t);
    cJSON *j = cJSON_Parse(json ? json : "");
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return am_error(AM_EINVAL, "task spec is not a JSON object");
    }
    static const char *const known[] = {"name", "type", "path", "dataset", "tag", "main", "format", "split", "train",
                                        "seed", "samples_per_label", "experiments", "cluster_sample", "quick", NULL};
    static const char *const qknown[] = {"n", "docs", "train", "experiments", "cluster_sample", "max_len", NULL};
    int rc = AM_OK;
    const char *tname = "?";
    const cJSON *x;
    if (cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(j, "name"))) tname = x->valuestring;
    cJSON_ArrayForEach(x, j) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= strcmp(x->string, known[i]) == 0;
        if (!ok) { rc = am_error(AM_EINVAL, "task '%s': unknown key '%s'", tname, x->string); goto done; }
    }
#define STR(key, field, req)                                                                                  \
    x = cJSON_GetObjectItemCaseSensitive(j, key);                                                          \
    if (cJSON_IsString(x)) t->field = xstrdup(x->valuestring);                                             \
    else if (x && !cJSON_IsNull(x)) { rc = am_error(AM_EINVAL, "task '%s': '%s' must be a string", tname, key); goto done; } \
    else if (req) { rc = am_error(AM_EINVAL, "task '%s': '%s' is required", tname, key); goto done; }
#define INT(obj, key, field)                                                                                  \
    x = cJSON_GetObjectItemCaseSensitive(obj, key);                                                        \
    if (cJSON_IsNumber(x)) {                                                                               \
        if (x->valuedouble != (double)(long long)x->valuedouble || x->valuedouble < -1e9 || x->valuedouble > 1e9) { \
            rc = am_error(AM_EINVAL, "task '%s': '%s' must be an integer", tname, key); goto done; }        \
        t->field = (int)x->valuedouble;                                                                    \
    } else if (x && !cJSON_IsNull(x)) { rc = am_error(AM_EINVAL, "task '%s': '%s' must be an integer", tname, key); goto done; }
    STR("name", name, 1)
    STR("path", path, 1)
    STR("dataset", dataset, 0)
    STR("tag", tag, 0)
    STR("main", main_metric, 0)
    STR("format", format, 0)
    STR("split", split, 0)
    STR("train", train, 0)
    char *type = NULL;
    x = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(x)) { rc = am_error(AM_EINVAL, "task '%s': 'type' (a string) is required", tname); goto done; }
    type = x->valuestring;
    if ((rc = evalrun_type_parse(type, &t->type))) { am_error_wrap(rc, "task '%s'", tname); goto done; }
    if ((rc = check_name(t->name))) goto done;
    if (t->format && (rc = check_format(t->format))) { am_error_wrap(rc, "task '%s'", tname); goto done; }
    if (t->tag && strcmp(t->tag, "id") != 0 && strcmp(t->tag, "ood") != 0) {
        rc = am_error(AM_EINVAL, "task '%s': tag must be \"id\" or \"ood\", got '%s'", tname, t->tag);
        goto done;
    }
    x = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (cJSON_IsNumber(x)) {
        if (x->valuedouble < 0 || x->valuedouble > 9007199254740992.0 || x->valuedouble != (double)(long long)x->valuedouble) {
            rc = am_error(AM_EINVAL, "task '%s': 'seed' must be a non-negative integer", tname);
            goto done;
        }
        t->seed = (uint64_t)x->valuedouble;
    } else if (x && !cJSON_IsNull(x)) {
        rc = am_error(AM_EINVAL, "task '%s': 'seed' must be an integer", tname);
        goto done;
    }
    INT(j, "samples_per_label", samples_per_label)
    INT(j, "experiments", experiments)
    INT(j, "cluster_sample", cluster_sample)
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "quick");
    if (q && !cJSON_IsNull(q)) {
        if (!cJSON_IsObject(q)) { rc = am_error(AM_EINVAL, "task '%s': 'quick' must be an object", tname); goto done; }
        cJSON_ArrayForEach(x, q) {
            int ok = 0;
            for (int i = 0; qknown[i]; i++) ok |= strcmp(x->string, qknown[i]) == 0;
            if (!ok) { rc = am_error(AM_EINVAL, "task '%s': unknown key 'quick.%s'", tname, x->string); goto done; }
        }
        INT(q, "n", quick_n)
        INT(q, "docs", quick_docs)
        INT(q, "train", quick_train)
        INT(q, "experiments", quick_experiments)
        INT(q, "cluster_sample", quick_cluster_sample)
        INT(q, "max_len", quick_max_len)
    }
    if (t->experiments < 1) { rc = am_error(AM_EINVAL, "task '%s': 'experiments' must be >= 1", tname); goto done; }
#undef STR
#undef INT
done:
    cJSON_Delete(j);
    if (rc) evaltask_free(t);
    return rc;
}

int evaltask_from_spec(EvalTask *t, const char *spec) {
    evaltask_init(t);
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        return am_error(AM_EINVAL, "task '%s': expected KIND:PATH (beir:DIR, sts:FILE, pairs:FILE, labels:FILE, "
                        "clustering:FILE, bitext:FILE) or a task name of the suite", spec);
    char kind[32];
    size_t kl = (size_t)(colon - spec);
    if (kl >= sizeof kind) return am_error(AM_EINVAL, "task '%s': unknown kind", spec);
    memcpy(kind, spec, kl);
    kind[kl] = 0;
    EvalTaskType ty;
    if (evalrun_type_parse(kind, &ty) != AM_OK)
        return am_error(AM_EINVAL, "task '%s': unknown kind '%s' (beir, sts, pairs, labels, clustering, bitext)", spec, kind);
    t->type = ty;
    t->name = xstrdup(spec);
    t->path = xstrdup(colon + 1);
    char *hash = strrchr(t->path, '#');
    if (hash && (ty == AM_TASK_RETRIEVAL || ty == AM_TASK_BITEXT)) {
        *hash = 0;
        t->split = xstrdup(hash + 1);
    }
    if (strcmp(kind, "beir") == 0) t->format = xstrdup("beir");
    int rc = check_name(t->name);
    if (rc) evaltask_free(t);
    return rc;
}

char *evaltask_to_json(const EvalTask *t) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", t->name ? t->name : "");
    cJSON_AddStringToObject(j, "type", evalrun_type_name(t->type));
    cJSON_AddStringToObject(j, "path", t->path ? t->path : "");
#define OPT(key, v) if (v) cJSON_AddStringToObject(j, key, v)
    OPT("dataset", t->dataset);
    OPT("tag", t->tag);
    OPT("main", t->main_metric);
    OPT("format", t->format);
    OPT("split", t->split);
    OPT("train", t->train);
#undef OPT
    cJSON_AddNumberToObject(j, "seed", (double)t->seed);
    cJSON_AddNumberToObject(j, "samples_per_label", t->samples_per_label);
    cJSON_AddNumberToObject(j, "experiments", t->experiments);
    cJSON_AddNumberToObject(j, "cluster_sample", t->cluster_sample);
    cJSON *q = cJSON_AddObjectToObject(j, "quick");
    cJSON_AddNumberToObject(q, "n", t->quick_n);
    cJSON_AddNumberToObject(q, "docs", t->quick_docs);
    cJSON_AddNumberToObject(q, "train", t->quick_train);
    cJSON_AddNumberToObject(q, "experiments", t->quick_experiments);
    cJSON_AddNumberToObject(q, "cluster_sample", t->quick_cluster_sample);
    cJSON_AddNumberToObject(q, "max_len", t->quick_max_len);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    AM_ASSERT(s);
    return s;
}

void evaltask_files_key(const EvalTask *t, char out[33]) {
    AmHasher *h = am_hasher_new();
    char buf[64];
    snprintf(buf, sizeof buf, "files|%d|%llu|", (int)t->type, (unsigned long long)t->seed);
    am_hasher_update(h, buf, strlen(buf));
    const char *parts[] = {t->path, t->format, t->split, t->train};
    for (int i = 0; i < 4; i++) {
        const char *p = parts[i] ? parts[i] : "\x01";
        am_hasher_update(h, p, strlen(p) + 1);
    }
    am_hasher_hex(h, out);
    am_hasher_delete(h);
}

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

/* ---------------------------------------------------------------- sampling */

int evalrun_pick(int n, int k, uint64_t seed, int *out) {
    if (k <= 0 || k >= n) {
        for (int i = 0; i < n; i++) out[i] = i;
        return n;
    }
    int *p = xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = i;
    AmRng r;
    am_rng_seed(&r, seed);
    for (int i = 0; i < k; i++) {
        int j = i + (int)am_rng_below(&r, (uint32_t)(n - i));
        int tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    memcpy(out, p, (size_t)k * sizeof *out);
    free(p);
    /* ascending */
    for (int i = 1; i < k; i++) {
        int v = out[i], j = i - 1;
        while (j >= 0 && out[j] > v) { out[j + 1] = out[j]; j--; }
        out[j + 1] = v;
    }
    return k;
}

/* a sub-seed per role, so queries and docs are drawn independently */
static uint64_t subseed(uint64_t seed, const char *role) { return am_hash64(role, strlen(role), seed ^ 0x5bd1e995ull); }

/* ---------------------------------------------------------------- instances */

/* unique texts: string -> index */
typedef struct {
    EvalInst *in;
    int *slot;          /* (cap) text index or -1 */
    size_t cap;
} TextSet;

static void ts_init(TextSet *ts, EvalInst *in, size_t expect) {
    ts->in = in;
    ts->cap = 1024;
    while (ts->cap < 2 * expect + 16) ts->cap *= 2;
    ts->slot = xmalloc(ts->cap * sizeof *ts->slot);
    for (size_t i = 0; i < ts->cap; i++) ts->slot[i] = -1;
    in->texts = xmalloc(((size_t)expect + 1) * sizeof *in->texts);
}

static int ts_add(TextSet *ts, const char *s, size_t *tcap) {
    EvalInst *in = ts->in;
    size_t m = ts->cap - 1;
    size_t i = am_hash64(s, strlen(s), 7) & m;
    for (;; i = (i + 1) & m) {
        int v = ts->slot[i];
        if (v < 0) break;
        if (strcmp(in->texts[v], s) == 0) return v;
    }
    if ((size_t)in->ntexts + 1 > *tcap) {
        *tcap = *tcap * 2 + 16;
        in->texts = xrealloc(in->texts, *tcap * sizeof *in->texts);
    }
    in->texts[in->ntexts] = s;
    ts->slot[i] = in->ntexts;
    int idx = in->ntexts++;
    if ((size_t)in->ntexts * 2 > ts->cap) { /* grow and rehash */
        free(ts->slot);
        ts->cap *= 2;
        ts->slot = xmalloc(ts->cap * sizeof *ts->slot);
        for (size_t k = 0; k < ts->cap; k++) ts->slot[k] = -1;
        for (int t = 0; t < in->ntexts; t++) {
            size_t j = am_hash64(in->texts[t], strlen(in->texts[t]), 7) & (ts->cap - 1);
            while (ts->slot[j] >= 0) j = (j + 1) & (ts->cap - 1);
            ts->slot[j] = t;
        }
    }
    return idx;
}

static void ts_free(TextSet *ts) { free(ts->slot); }

static const char *own_str(EvalInst *in, char *s) {
    if (in->nown == in->cap_own) {
        in->cap_own = in->cap_own ? 2 * in->cap_own : 256;
        in->own = xrealloc(in->own, (size_t)in->cap_own * sizeof *in->own);
    }
    in->own[in->nown++] = s;
    return s;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* strip(title + " " + text), as MTEB/BEIR build a document; borrowed when nothing changes */
static const char *doc_text(EvalInst *in, const char *title, const char *text) {
    if (!title || !*title) {
        size_t n = strlen(text);
        if (n == 0 || (!is_space(text[0]) && !is_space(text[n - 1]))) return text;
        title = "";
    }
    char *s = xasprintf("%s %s", title, text);
    char *b = s;
    while (*b && is_space(*b)) b++;
    size_t n = strlen(b);
    while (n > 0 && is_space(b[n - 1])) n--;
    memmove(s, b, n);
    s[n] = 0;
    return own_str(in, s);
}

void evalinst_free(EvalInst *in) {
    for (int i = 0; i < in->nown; i++) free(in->own[i]);
    free(in->own);
    free(in->texts);
    free(in->a);
    free(in->b);
    free(in->qoff);
    free(in->qdoc);
    free(in->qgrade);
    free(in->doc_ids);
    free(in->gold);
    free(in->la);
    free(in->lb);
    free(in->gold_idx);
    memset(in, 0, sizeof *in);
}

/* docs for a quick sample: the `keep` docs (flags) + random others up to `total` (<= 0: every
 * doc); positions in ascending doc order. Returns the count; pos (nd) gets each doc's position
 * or -1. */
static int pick_docs(int nd, const unsigned char *keep, int total, uint64_t seed, int *docs, int *pos) {
    unsigned char *mark = xcalloc((size_t)nd + 1, 1);
    int nk = 0;
    for (int i = 0; i < nd; i++)
        if (keep[i] || total <= 0) mark[i] = 1, nk++;
    if (total > nk) {
        int nother = nd - nk;
        int *others = xmalloc((size_t)(nother ? nother : 1) * sizeof *others);
        int *pick = xmalloc((size_t)(nother ? nother : 1) * sizeof *pick);
        for (int i = 0, j = 0; i < nd; i++)
            if (!mark[i]) others[j++] = i;
        int np = evalrun_pick(nother, total - nk, seed, pick);
        for (int i = 0; i < np; i++) mark[others[pick[i]]] = 1;
        free(others);
        free(pick);
    }
    int n = 0;
    for (int i = 0; i < nd; i++) {
        pos[i] = mark[i] ? n : -1;
        if (mark[i]) docs[n++] = i;
    }
    free(mark);
    return n;
}

static int build_retrieval(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test;
    int nq = (int)ds->n, nd = (int)ds->n_docs;
    int64_t qs = ds->qrel_start[d->split], qe = ds->qrel_start[d->split + 1];
    int *cnt = xcalloc((size_t)nq + 1, sizeof *cnt), *rel = xcalloc((size_t)nq + 1, sizeof *rel);
    for (int64_t i = qs; i < qe; i++) {
        cnt[ds->qrel_query[i]]++;
        if (ds->qrel_grade[i] > 0) rel[ds->qrel_query[i]]++;
    }
    int *elig = xmalloc((size_t)(nq ? nq : 1) * sizeof *elig), ne = 0;
    for (int q = 0; q < nq; q++)
        if (mode == AM_EVAL_QUICK ? rel[q] > 0 : cnt[q] > 0) elig[ne++] = q;
    if (ne == 0) {
        free(cnt); free(rel); free(elig);
        return am_error(AM_EFORMAT, "task '%s': no query has judgments in split '%s' of %s", t->name,
                        ds->split_names[d->split], ds->origin);
    }
    int *sel = xmalloc((size_t)ne * sizeof *sel);
    int ns = evalrun_pick(ne, mode == AM_EVAL_QUICK ? t->quick_n : 0, subseed(t->seed, "queries"), sel);
    for (int i = 0; i < ns; i++) sel[i] = elig[sel[i]];
    /* judged docs of the selected queries */
    unsigned char *issel = xcalloc((size_t)nq + 1, 1), *keep = xcalloc((size_t)nd + 1, 1);
    for (int i = 0; i < ns; i++) issel[sel[i]] = 1;
    for (int64_t i = qs; i < qe; i++)
        if (issel[ds->qrel_query[i]]) keep[ds->qrel_doc[i]] = 1;
    int *docs = xmalloc((size_t)(nd ? nd : 1) * sizeof *docs), *pos = xmalloc((size_t)(nd ? nd : 1) * sizeof *pos);
    int ndocs = pick_docs(nd, keep, mode == AM_EVAL_QUICK ? t->quick_docs : 0, subseed(t->seed, "docs"), docs, pos);
    /* texts */
    TextSet ts;
    size_t tcap = (size_t)ns + (size_t)ndocs + 1;
    ts_init(&ts, in, tcap);
    in->na = ns;
    in->nb = ndocs;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->b = xmalloc((size_t)(ndocs ? ndocs : 1) * sizeof *in->b);
    in->doc_ids = xmalloc((size_t)(ndocs ? ndocs : 1) * sizeof *in->doc_ids);
    for (int i = 0; i < ns; i++) in->a[i] = ts_add(&ts, ds->text[sel[i]], &tcap);
    for (int j = 0; j < ndocs; j++) {
        int dj = docs[j];
        in->b[j] = ts_add(&ts, doc_text(in, ds->doc_title[dj], ds->doc_text[dj]), &tcap);
        in->doc_ids[j] = ds->doc_id[dj];
    }
    ts_free(&ts);
    /* qrels CSR over the selected queries (split order kept within a query) */
    int *qpos = xmalloc((size_t)(nq ? nq : 1) * sizeof *qpos);
    for (int q = 0; q < nq; q++) qpos[q] = -1;
    for (int i = 0; i < ns; i++) qpos[sel[i]] = i;
    in->qoff = xcalloc((size_t)ns + 1, sizeof *in->qoff);
    for (int64_t i = qs; i < qe; i++) {
        int qp = qpos[ds->qrel_query[i]];
        if (qp >= 0 && pos[ds->qrel_doc[i]] >= 0) in->qoff[qp + 1]++;
    }
    for (int i = 0; i < ns; i++) in->qoff[i + 1] += in->qoff[i];
    int nj = in->qoff[ns];
    in->qdoc = xmalloc((size_t)(nj ? nj : 1) * sizeof *in->qdoc);
    in->qgrade = xmalloc((size_t)(nj ? nj : 1) * sizeof *in->qgrade);
    int *fill = xmalloc((size_t)(ns ? ns : 1) * sizeof *fill);
    for (int i = 0; i < ns; i++) fill[i] = in->qoff[i];
    for (int64_t i = qs; i < qe; i++) {
        int qp = qpos[ds->qrel_query[i]], dp = pos[ds->qrel_doc[i]];
        if (qp < 0 || dp < 0) continue;
        in->qdoc[fill[qp]] = dp;
        in->qgrade[fill[qp]++] = ds->qrel_grade[i];
    }
    in->size_a = "queries";
    in->size_b = "docs";
    free(fill); free(qpos); free(docs); free(pos); free(issel); free(keep); free(sel); free(elig); free(cnt); free(rel);
    return AM_OK;
}

static int build_bitext(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test;
    int quick = mode == AM_EVAL_QUICK;
    in->size_a = "sources";
    in->size_b = "targets";
    if (ds->kind == AM_DS_RETRIEVAL) {
        int nq = (int)ds->n, nd = (int)ds->n_docs;
        int64_t qs = ds->qrel_start[d->split], qe = ds->qrel_start[d->split + 1];
        int *gold = xmalloc((size_t)(nq ? nq : 1) * sizeof *gold), *gg = xmalloc((size_t)(nq ? nq : 1) * sizeof *gg);
        for (int q = 0; q < nq; q++) gold[q] = -1, gg[q] = 0;
        for (int64_t i = qs; i < qe; i++) {
            int q = (int)ds->qrel_query[i];
            if (ds->qrel_grade[i] > gg[q]) { gg[q] = ds->qrel_grade[i]; gold[q] = (int)ds->qrel_doc[i]; }
        }
        int *elig = xmalloc((size_t)(nq ? nq : 1) * sizeof *elig), ne = 0;
        for (int q = 0; q < nq; q++)
            if (gold[q] >= 0) elig[ne++] = q;
        if (ne == 0) {
            free(gold); free(gg); free(elig);
            return am_error(AM_EFORMAT, "task '%s': no query has a relevant doc in split '%s' of %s", t->name,
                            ds->split_names[d->split], ds->origin);
        }
        int *sel = xmalloc((size_t)ne * sizeof *sel);
        int ns = evalrun_pick(ne, quick ? t->quick_n : 0, subseed(t->seed, "sources"), sel);
        unsigned char *keep = xcalloc((size_t)nd + 1, 1);
        for (int i = 0; i < ns; i++) keep[gold[elig[sel[i]]]] = 1;
        int *docs = xmalloc((size_t)(nd ? nd : 1) * sizeof *docs), *pos = xmalloc((size_t)(nd ? nd : 1) * sizeof *pos);
        int ndocs = pick_docs(nd, keep, quick ? t->quick_docs : 0, subseed(t->seed, "targets"), docs, pos);
        TextSet ts;
        size_t tcap = (size_t)ns + (size_t)ndocs + 1;
        ts_init(&ts, in, tcap);
        in->na = ns;
        in->nb = ndocs;
        in->a = xmalloc((size_t)ns * sizeof *in->a);
        in->b = xmalloc((size_t)(ndocs ? ndocs : 1) * sizeof *in->b);
        in->gold_idx = xmalloc((size_t)ns * sizeof *in->gold_idx);
        for (int i = 0; i < ns; i++) {
            int q = elig[sel[i]];
            in->a[i] = ts_add(&ts, ds->text[q], &tcap);
            in->gold_idx[i] = pos[gold[q]];
        }
        for (int j = 0; j < ndocs; j++)
            in->b[j] = ts_add(&ts, doc_text(in, ds->doc_title[docs[j]], ds->doc_text[docs[j]]), &tcap);
        ts_free(&ts);
        free(gold); free(gg); free(elig); free(sel); free(keep); free(docs); free(pos);
        return AM_OK;
    }
    /* pairs: targets = unique positives and negatives, in order of appearance */
    int n = (int)ds->n;
    TextSet ts;
    size_t tcap = (size_t)n + (size_t)ds->pos_start[n] + (size_t)ds->neg_start[n] + 1;
    ts_init(&ts, in, tcap);
    /* map each target text to a target number via the text set: add targets first */
    int nt_all = 0;
    int *tnum = NULL; /* text index -> target number */
    size_t tn_cap = 0;
    int *goldt = xmalloc((size_t)(n ? n : 1) * sizeof *goldt);
    int *tgt_text = xmalloc((size_t)(ds->pos_start[n] + ds->neg_start[n] + 1) * sizeof *tgt_text);
    for (int r = 0; r < n; r++) {
        for (int pass = 0; pass < 2; pass++) {
            int64_t s0 = pass ? ds->neg_start[r] : ds->pos_start[r], s1 = pass ? ds->neg_start[r + 1] : ds->pos_start[r + 1];
            for (int64_t k = s0; k < s1; k++) {
                int ti = ts_add(&ts, pass ? ds->neg[k] : ds->pos[k], &tcap);
                if ((size_t)ti >= tn_cap) {
                    size_t old = tn_cap;
                    tn_cap = (size_t)ti * 2 + 64;
                    tnum = xrealloc(tnum, tn_cap * sizeof *tnum);
                    for (size_t z = old; z < tn_cap; z++) tnum[z] = -1;
                }
                if (tnum[ti] < 0) {
                    tnum[ti] = nt_all;
                    tgt_text[nt_all++] = ti;
                }
                if (pass == 0 && k == s0) goldt[r] = tnum[ti];
            }
        }
    }
    int *sel = xmalloc((size_t)(n ? n : 1) * sizeof *sel);
    int ns = evalrun_pick(n, quick ? t->quick_n : 0, subseed(t->seed, "sources"), sel);
    unsigned char *keep = xcalloc((size_t)nt_all + 1, 1);
    for (int i = 0; i < ns; i++) keep[goldt[sel[i]]] = 1;
    int *tg = xmalloc((size_t)(nt_all ? nt_all : 1) * sizeof *tg), *pos = xmalloc((size_t)(nt_all ? nt_all : 1) * sizeof *pos);
    int ntg = pick_docs(nt_all, keep, quick ? t->quick_docs : 0, subseed(t->seed, "targets"), tg, pos);
    in->nb = ntg;
    in->b = xmalloc((size_t)(ntg ? ntg : 1) * sizeof *in->b);
    for (int j = 0; j < ntg; j++) in->b[j] = tgt_text[tg[j]];
    in->na = ns;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->gold_idx = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->gold_idx);
    for (int i = 0; i < ns; i++) {
        in->a[i] = ts_add(&ts, ds->text[sel[i]], &tcap);
        in->gold_idx[i] = pos[goldt[sel[i]]];
    }
    /* texts that are only in dropped targets stay in the list; drop them by compaction */
    unsigned char *used = xcalloc((size_t)in->ntexts + 1, 1);
    for (int i = 0; i < in->na; i++) used[in->a[i]] = 1;
    for (int j = 0; j < in->nb; j++) used[in->b[j]] = 1;
    int *remap = xmalloc(((size_t)in->ntexts + 1) * sizeof *remap), m = 0;
    for (int i = 0; i < in->ntexts; i++) {
        remap[i] = used[i] ? m : -1;
        if (used[i]) in->texts[m++] = in->texts[i];
    }
    in->ntexts = m;
    for (int i = 0; i < in->na; i++) in->a[i] = remap[in->a[i]];
    for (int j = 0; j < in->nb; j++) in->b[j] = remap[in->b[j]];
    ts_free(&ts);
    free(used); free(remap); free(tnum); free(goldt); free(tgt_text); free(sel); free(keep); free(tg); free(pos);
    return AM_OK;
}

static int build_pairs(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test;
    int quick = mode == AM_EVAL_QUICK;
    /* the candidate pairs: (s1, s2, gold) */
    int n = 0;
    const char **s1, **s2;
    double *g;
    if (ds->kind == AM_DS_GRADED) {
        n = (int)ds->n;
        s1 = xmalloc((size_t)(n ? n : 1) * sizeof *s1);
        s2 = xmalloc((size_t)(n ? n : 1) * sizeof *s2);
        g = xmalloc((size_t)(n ? n : 1) * sizeof *g);
        for (int i = 0; i < n; i++) {
            s1[i] = ds->text[i];
            s2[i] = ds->text2[i];
            g[i] = ds->score[i];
            if (t->type == AM_TASK_PAIRCLASS && g[i] != 0.0 && g[i] != 1.0) {
                free(s1); free(s2); free(g);
                return am_error(AM_EFORMAT, "task '%s': %s row %d: pair classification needs 0/1 scores, got %g",
                                t->name, ds->origin, i + 1, ds->score[i]);
            }
        }
    } else if (ds->kind == AM_DS_PAIRS && t->type == AM_TASK_PAIRCLASS) {
        int64_t tot = ds->pos_start[ds->n] + ds->neg_start[ds->n];
        s1 = xmalloc((size_t)(tot ? tot : 1) * sizeof *s1);
        s2 = xmalloc((size_t)(tot ? tot : 1) * sizeof *s2);
        g = xmalloc((size_t)(tot ? tot : 1) * sizeof *g);
        for (int64_t r = 0; r < ds->n; r++) {
            for (int64_t k = ds->pos_start[r]; k < ds->pos_start[r + 1]; k++) { s1[n] = ds->text[r]; s2[n] = ds->pos[k]; g[n++] = 1; }
            for (int64_t k = ds->neg_start[r]; k < ds->neg_start[r + 1]; k++) { s1[n] = ds->text[r]; s2[n] = ds->neg[k]; g[n++] = 0; }
        }
    } else {
        return am_error(AM_EINVAL, "task '%s': a %s task reads a graded file, not %s", t->name,
                        evalrun_type_name(t->type), dataset_kind_name(ds->kind));
    }
    int *sel = xmalloc((size_t)(n ? n : 1) * sizeof *sel);
    int ns = evalrun_pick(n, quick ? t->quick_n : 0, subseed(t->seed, "pairs"), sel);
    TextSet ts;
    size_t tcap = 2 * (size_t)ns + 1;
    ts_init(&ts, in, tcap);
    in->na = in->nb = ns;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->b = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->b);
    in->gold = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->gold);
    in->la = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->la);
    for (int i = 0; i < ns; i++) {
        in->a[i] = ts_add(&ts, s1[sel[i]], &tcap);
        in->b[i] = ts_add(&ts, s2[sel[i]], &tcap);
        in->gold[i] = g[sel[i]];
        in->la[i] = g[sel[i]] != 0.0;
    }
    ts_free(&ts);
    in->size_a = "pairs";
    in->size_b = NULL;
    free(s1); free(s2); free(g); free(sel);
    return AM_OK;
}

/* label names of two labelled datasets, merged and sorted; map (n_labels of ds) -> union id */
static int label_union(const Dataset *a, const Dataset *b, int **map_a, int **map_b) {
    int na = a->n_labels, nb = b ? b->n_labels : 0;
    const char **all = xmalloc((size_t)(na + nb + 1) * sizeof *all);
    int n = 0, i = 0, j = 0;
    while (i < na || j < nb) { /* both tables are sorted by strcmp */
        int c = i >= na ? 1 : j >= nb ? -1 : strcmp(a->label_names[i], b->label_names[j]);
        if (c <= 0) all[n++] = a->label_names[i++];
        else all[n++] = b->label_names[j++];
        if (c == 0) j++;
    }
    *map_a = xmalloc((size_t)(na + 1) * sizeof **map_a);
    if (map_b) *map_b = xmalloc((size_t)(nb + 1) * sizeof **map_b);
    for (int k = 0, u = 0; k < na; k++) {
        while (strcmp(all[u], a->label_names[k]) != 0) u++;
        (*map_a)[k] = u;
    }
    for (int k = 0, u = 0; k < nb; k++) {
        while (strcmp(all[u], b->label_names[k]) != 0) u++;
        (*map_b)[k] = u;
    }
    free(all);
    return n;
}

static int build_labelled(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test, *tr = d->train;
    int quick = mode == AM_EVAL_QUICK;
    if (ds->kind != AM_DS_LABELLED || (tr && tr->kind != AM_DS_LABELLED))
        return am_error(AM_EINVAL, "task '%s': a %s task reads labelled text", t->name, evalrun_type_name(t->type));
    int *ma = NULL, *mb = NULL;
    int nl = label_union(ds, tr, &ma, tr ? &mb : NULL);
    int n = (int)ds->n;
    int *sel = xmalloc((size_t)(n ? n : 1) * sizeof *sel);
    int ns = evalrun_pick(n, quick ? t->quick_n : 0, subseed(t->seed, "test"), sel);
    TextSet ts;
    size_t tcap = (size_t)ns + 1 + (tr ? (size_t)tr->n : 0);
    ts_init(&ts, in, tcap);
    in->na = ns;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->la = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->la);
    for (int i = 0; i < ns; i++) {
        in->a[i] = ts_add(&ts, ds->text[sel[i]], &tcap);
        in->la[i] = ma[ds->label[sel[i]]];
    }
    in->n_labels = nl;
    in->experiments = quick && t->quick_experiments > 0 ? t->quick_experiments : t->experiments;
    int rc = AM_OK;
    if (t->type == AM_TASK_CLASSIFICATION) {
        if (!tr) { rc = am_error(AM_EINVAL, "task '%s': no training data", t->name); goto done; }
        int ntr = (int)tr->n;
        int *tsel = xmalloc((size_t)(ntr ? ntr : 1) * sizeof *tsel);
        int nts = evalrun_pick(ntr, quick ? t->quick_train : 0, subseed(t->seed, "train"), tsel);
        in->nb = nts;
        in->n_train_full = nts;
        in->b = xmalloc((size_t)(nts ? nts : 1) * sizeof *in->b);
        in->lb = xmalloc((size_t)(nts ? nts : 1) * sizeof *in->lb);
        for (int j = 0; j < nts; j++) in->lb[j] = mb[tr->label[tsel[j]]];
        /* only the rows some experiment trains on are embedded (eval_classification reads no other) */
        unsigned char *need = xcalloc((size_t)nts + 1, 1);
        if (t->samples_per_label > 0) {
            int *idxs = xmalloc((size_t)(nts ? nts : 1) * sizeof *idxs), *us = xmalloc((size_t)(nts ? nts : 1) * sizeof *us);
            for (int j = 0; j < nts; j++) idxs[j] = j;
            for (int e = 0; e < in->experiments; e++) {
                int m = classif_undersample(us, idxs, in->lb, nts, nl, t->samples_per_label, (uint32_t)t->seed);
                for (int k = 0; k < m; k++) need[us[k]] = 1;
            }
            free(idxs);
            free(us);
        } else {
            memset(need, 1, (size_t)nts);
        }
        for (int j = 0; j < nts; j++) in->b[j] = need[j] ? ts_add(&ts, tr->text[tsel[j]], &tcap) : -1;
        free(need);
        free(tsel);
        in->size_a = "test";
        in->size_b = "train";
    } else {
        in->cluster_sample = quick && t->quick_cluster_sample > 0 ? t->quick_cluster_sample : t->cluster_sample;
        in->size_a = "points";
        in->size_b = NULL;
    }
done:
    ts_free(&ts);
    free(ma);
    free(mb);
    free(sel);
    return rc;
}

int evalinst_build(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *out) {
    memset(out, 0, sizeof *out);
    int rc;
    switch (t->type) {
    case AM_TASK_RETRIEVAL: rc = build_retrieval(t, d, mode, out); break;
    case AM_TASK_BITEXT: rc = build_bitext(t, d, mode, out); break;
    case AM_TASK_STS:
    case AM_TASK_PAIRCLASS: rc = build_pairs(t, d, mode, out); break;
    default: rc = build_labelled(t, d, mode, out); break;
    }
    if (rc) evalinst_free(out);
    return rc;
}
