/* task_spec.c - task types and modes, and task specs: JSON and KIND:PATH forms, and the key of
 * the fields that choose which files a task reads. */
#define _GNU_SOURCE
#include "evalrun_internal.h"
#include "am_base.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int parse_sklearn(const char *s, AmSklearn *out) {
    if (strcmp(s, "1.4") == 0) *out = AM_SKLEARN_1_4;
    else if (strcmp(s, "1.2") == 0) *out = AM_SKLEARN_1_2;
    else return am_error(AM_EINVAL, "unknown scikit-learn protocol '%s' (1.4 = MTEB 2, 1.2)", s);
    return AM_OK;
}

int evaltask_from_json(EvalTask *t, const char *json) {
    evaltask_init(t);
    cJSON *j = cJSON_Parse(json ? json : "");
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return am_error(AM_EINVAL, "task spec is not a JSON object");
    }
    static const char *const known[] = {"name", "type", "path", "dataset", "tag", "main", "format", "split", "train",
                                        "seed", "samples_per_label", "experiments", "cluster_sample", "quick",
                                        "ignore_identical_ids", "candidate_pool", "sklearn", NULL};
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
#define BOOL(key, field)                                                                                      \
    x = cJSON_GetObjectItemCaseSensitive(j, key);                                                          \
    if (cJSON_IsBool(x)) t->field = cJSON_IsTrue(x);                                                       \
    else if (x && !cJSON_IsNull(x)) { rc = am_error(AM_EINVAL, "task '%s': '%s' must be true or false", tname, key); goto done; }
    BOOL("ignore_identical_ids", ignore_identical_ids)
    BOOL("candidate_pool", candidate_pool)
#undef BOOL
    x = cJSON_GetObjectItemCaseSensitive(j, "sklearn");
    if (cJSON_IsString(x) && (rc = parse_sklearn(x->valuestring, &t->sklearn))) { am_error_wrap(rc, "task '%s'", tname); goto done; }
    if (x && !cJSON_IsString(x) && !cJSON_IsNull(x)) { rc = am_error(AM_EINVAL, "task '%s': 'sklearn' must be \"1.4\" or \"1.2\"", tname); goto done; }
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
    /* #words after the path: options, or (beir / bitext) the qrels split */
    int rc = AM_OK;
    char *hash = strchr(t->path, '#');
    if (hash) {
        *hash = 0;
        for (char *w = hash + 1, *next; w && rc == AM_OK; w = next) {
            next = strchr(w, '#');
            if (next) *next++ = 0;
            if (ty == AM_TASK_RETRIEVAL && strcmp(w, "ignore_identical_ids") == 0) t->ignore_identical_ids = 1;
            else if (ty == AM_TASK_BITEXT && strcmp(w, "candidate_pool") == 0) t->candidate_pool = 1;
            else if ((ty == AM_TASK_CLASSIFICATION || ty == AM_TASK_CLUSTERING) && strncmp(w, "sklearn-", 8) == 0)
                rc = parse_sklearn(w + 8, &t->sklearn);
            else if ((ty == AM_TASK_RETRIEVAL || ty == AM_TASK_BITEXT) && *w && !t->split) t->split = xstrdup(w);
            else
                rc = am_error(AM_EINVAL, "unknown option '#%s' (%s)", w,
                              ty == AM_TASK_RETRIEVAL ? "#SPLIT, #ignore_identical_ids"
                              : ty == AM_TASK_BITEXT ? "#SPLIT, #candidate_pool"
                              : ty == AM_TASK_CLASSIFICATION || ty == AM_TASK_CLUSTERING ? "#sklearn-1.4, #sklearn-1.2"
                              : "none for this kind");
        }
        if (rc) am_error_wrap(rc, "task '%s'", spec);
    }
    if (strcmp(kind, "beir") == 0) t->format = xstrdup("beir");
    if (!rc) rc = check_name(t->name);
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
    cJSON_AddBoolToObject(j, "ignore_identical_ids", t->ignore_identical_ids);
    cJSON_AddBoolToObject(j, "candidate_pool", t->candidate_pool);
    cJSON_AddStringToObject(j, "sklearn", am_sklearn_name(t->sklearn));
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
