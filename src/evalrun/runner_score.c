/* runner_score.c - the metric calls of an evaluation: the embeddings of a built instance (task_inst.c)
 * go through the metric of the task's type (retrieval, STS, pair classification, classification,
 * clustering, reranking, bitext), filling the scores and sizes objects of the result JSON and the
 * per-example scores of the main metric. runner.c drives it (evalrun_task). */
#include "evalrun_internal.h"
#include "am_base.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int retrieval_ks[] = AM_EVAL_DEFAULT_KS;
#define NKS AM_EVAL_DEFAULT_NKS

void evalrun_add_num(cJSON *o, const char *k, double v) {
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

/* rows idx (n) of X (., dim) into a new array; idx < 0 gives a zero row */
static float *gather(const float *X, const int *idx, int n, int dim) {
    float *o = am_alloc_floats((size_t)(n ? n : 1) * dim);
    if (!o) return NULL;
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0) memset(o + (size_t)i * dim, 0, (size_t)dim * sizeof *o);
        else memcpy(o + (size_t)i * dim, X + (size_t)idx[i] * dim, (size_t)dim * sizeof *o);
    }
    return o;
}

static void add_pairclass(cJSON *s, const char *name, const PairClassMetrics *m) {
    char k[64];
#define F(field) snprintf(k, sizeof k, "%s_" #field, name); evalrun_add_num(s, k, m->field);
    F(accuracy) F(accuracy_threshold) F(f1) F(f1_threshold) F(precision) F(recall) F(ap)
#undef F
}

/* run the metric of t's type; adds the scores to s and returns the main score's default */
/* per-example scores whose statistic is their mean (classification: per test row; clustering:
 * per experiment), from the metric's doubles */
static void px_mean_of(PerExample *px, const double *v, int n) {
    px_init(px, AM_PX_MEAN, n);
    for (int i = 0; i < n; i++) px->col[i] = (float)v[i];
}

static double cosd(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int k = 0; k < dim; k++) {
        double x = a[k], y = b[k];
        ab += x * y; aa += x * x; bb += y * y;
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

/* px: the per-example scores of the main metric (px->kind 0 when there are none) */
int evalrun_score(const EvalTask *t, const EvalInst *in, const float *X, int dim, cJSON *s, cJSON *sizes,
                 PerExample *px) {
    memset(px, 0, sizeof *px);
    const char *main = t->main_metric ? t->main_metric : evalrun_type_main_metric(t->type);
    int want_px = strcmp(main, evalrun_type_main_metric(t->type)) == 0;
    float *A = gather(X, in->a, in->na, dim);
    float *B = in->nb ? gather(X, in->b, in->nb, dim) : NULL;
    int rc = AM_OK;
    if (!A || (in->nb && !B)) {
        rc = am_error(AM_ENOMEM, "task '%s': embeddings of %d + %d texts", t->name, in->na, in->nb);
        goto done;
    }
    switch (t->type) {
    case AM_TASK_RETRIEVAL: {
        Qrels q = {in->na, in->qoff, in->qdoc, in->qgrade};
        RetrievalOptions o = {.sim = AM_SIM_COSINE, .self_doc = in->self_doc, .doc_ids = in->doc_ids,
                              .skip_no_relevant = 0};
        RetrievalScores r;
        double *pq = want_px ? xmalloc((size_t)(in->na ? in->na : 1) * sizeof *pq) : NULL;
        o.per_query = pq;
        if (in->n_identical > 0 && !t->ignore_identical_ids)
            am_log(AM_LOG_WARN, "task '%s': %d of %d query ids are also doc ids and the query's own doc counts "
                   "(HINT: MTEB sets ignore_identical_ids for such sets (ArguAna, Quora, FiQA, ...): "
                   "beir:DIR#ignore_identical_ids, or ignore_identical_ids = true in Lua)",
                   t->name, in->n_identical, in->na);
        if ((rc = eval_retrieval(&r, A, in->na, B, in->nb, dim, &q, retrieval_ks, NKS, &o))) { free(pq); break; }
        if (pq && r.n_evaluated > 0) {   /* the evaluated queries only */
            px_init(px, AM_PX_MEAN, r.n_evaluated);
            int k = 0;
            for (int i = 0; i < in->na; i++) if (!isnan(pq[i]) && k < r.n_evaluated) px->col[k++] = (float)pq[i];
        }
        free(pq);
        char k[64];
        static const char *const names[] = {"ndcg", "map", "recall", "precision", "mrr", "hit_rate"};
        for (int m = 0; m < 6; m++)
            for (int i = 0; i < r.nks; i++) {
                snprintf(k, sizeof k, "%s_at_%d", names[m], r.ks[i]);
                double v = m == 0 ? r.ndcg[i] : m == 1 ? r.map[i] : m == 2 ? r.recall[i] : m == 3 ? r.precision[i]
                         : m == 4 ? r.mrr[i] : r.hit_rate[i];
                evalrun_add_num(s, k, v);
            }
        cJSON_AddNumberToObject(sizes, "evaluated", r.n_evaluated);
        cJSON_AddNumberToObject(sizes, "identical_ids", in->n_identical);
        break;
    }
    case AM_TASK_STS: {
        StsScores r;
        if ((rc = eval_sts(&r, A, B, in->gold, in->na, dim))) break;
        if (want_px) {
            px_init(px, AM_PX_SPEARMAN, in->na);
            for (int i = 0; i < in->na; i++) {
                px->col[i] = (float)cosd(A + (size_t)i * dim, B + (size_t)i * dim, dim);
                px->col[in->na + i] = (float)in->gold[i];
            }
        }
        evalrun_add_num(s, "cosine_pearson", r.cosine_pearson);
        evalrun_add_num(s, "cosine_spearman", r.cosine_spearman);
        evalrun_add_num(s, "manhattan_pearson", r.manhattan_pearson);
        evalrun_add_num(s, "manhattan_spearman", r.manhattan_spearman);
        evalrun_add_num(s, "euclidean_pearson", r.euclidean_pearson);
        evalrun_add_num(s, "euclidean_spearman", r.euclidean_spearman);
        break;
    }
    case AM_TASK_PAIRCLASS: {
        PairClassScores r;
        if ((rc = eval_pair_classification(&r, A, B, in->la, in->na, dim))) break;
        if (want_px) {
            int n = in->na;
            px_init(px, AM_PX_MAX_AP, n);
            for (int i = 0; i < n; i++) {
                const float *a = A + (size_t)i * dim, *b = B + (size_t)i * dim;
                double dot = 0, l1 = 0, l2 = 0;
                for (int k = 0; k < dim; k++) {
                    double x = a[k], y = b[k], d = x - y;
                    dot += x * y;
                    l1 += fabs(d);
                    l2 += d * d;
                }
                px->col[i] = (float)cosd(a, b, dim);
                px->col[n + i] = (float)dot;
                px->col[2 * n + i] = (float)l1;
                px->col[3 * n + i] = (float)sqrt(l2);
                px->col[4 * n + i] = (float)in->la[i];
            }
        }
        add_pairclass(s, "cosine", &r.cosine);
        add_pairclass(s, "dot", &r.dot);
        add_pairclass(s, "manhattan", &r.manhattan);
        add_pairclass(s, "euclidean", &r.euclidean);
        evalrun_add_num(s, "max_accuracy", r.max_accuracy);
        evalrun_add_num(s, "max_f1", r.max_f1);
        evalrun_add_num(s, "max_precision", r.max_precision);
        evalrun_add_num(s, "max_recall", r.max_recall);
        evalrun_add_num(s, "max_ap", r.max_ap);
        int npos = 0;
        for (int i = 0; i < in->na; i++) npos += in->la[i];
        cJSON_AddNumberToObject(sizes, "positives", npos);
        break;
    }
    case AM_TASK_CLASSIFICATION: {
        ClassifOptions o;
        classif_options_default(&o);
        o.n_experiments = in->experiments;
        o.samples_per_label = t->samples_per_label;
        o.seed = (uint32_t)t->seed;
        o.sklearn = t->sklearn;
        double *pe = want_px ? xmalloc((size_t)(in->na ? in->na : 1) * sizeof *pe) : NULL;
        o.per_example = pe;
        ClassifScores r;
        if ((rc = eval_classification(&r, B, in->lb, in->nb, A, in->la, in->na, dim, in->n_labels, &o))) { free(pe); break; }
        if (pe) {
            px_mean_of(px, pe, in->na);
            free(pe);
        }
        evalrun_add_num(s, "accuracy", r.accuracy);
        evalrun_add_num(s, "f1", r.f1);
        evalrun_add_num(s, "f1_weighted", r.f1_weighted);
        evalrun_add_num(s, "precision", r.precision);
        evalrun_add_num(s, "precision_weighted", r.precision_weighted);
        evalrun_add_num(s, "recall", r.recall);
        evalrun_add_num(s, "recall_weighted", r.recall_weighted);
        if (!isnan(r.ap)) {
            evalrun_add_num(s, "ap", r.ap);
            evalrun_add_num(s, "ap_weighted", r.ap_weighted);
        }
        cJSON_AddNumberToObject(sizes, "labels", in->n_labels);
        cJSON_AddNumberToObject(sizes, "experiments", r.n_experiments);
        int enc = 0;
        for (int j = 0; j < in->nb; j++) enc += in->b[j] >= 0;
        cJSON_AddNumberToObject(sizes, "train_embedded", enc);
        break;
    }
    case AM_TASK_CLUSTERING: {
        ClusterOptions o;
        cluster_options_default(&o);
        o.n_experiments = in->experiments;
        o.sample_size = in->cluster_sample;
        o.seed = (uint32_t)t->seed;
        o.sklearn = t->sklearn;
        double *pe = want_px ? xmalloc((size_t)(in->experiments > 0 ? in->experiments : 1) * sizeof *pe) : NULL;
        o.per_experiment = pe;
        ClusterScores r;
        if ((rc = eval_clustering(&r, A, in->la, in->na, dim, &o))) { free(pe); break; }
        if (pe && r.n_experiments > 0) px_mean_of(px, pe, r.n_experiments);
        free(pe);
        evalrun_add_num(s, "v_measure", r.v_measure);
        evalrun_add_num(s, "v_measure_std", r.v_measure_std);
        cJSON_AddNumberToObject(sizes, "labels", in->n_labels);
        cJSON_AddNumberToObject(sizes, "experiments", r.n_experiments);
        break;
    }
    case AM_TASK_BITEXT: {
        BitextScores r;
        if ((rc = eval_bitext(&r, A, in->na, B, in->nb, dim, in->gold_idx))) break;
        if (want_px && in->na > 0 && in->nb > 0) {
            /* each source's nearest target, in eval_bitext's order (ties: the higher index) */
            int *top = xmalloc((size_t)in->na * sizeof *top), *nret = xmalloc((size_t)in->na * sizeof *nret);
            RetrievalOptions ro = {.sim = AM_SIM_COSINE};
            rc = retrieval_search(top, NULL, nret, A, in->na, B, in->nb, dim, 1, &ro);
            if (!rc) {
                px_init(px, AM_PX_F1, in->na);
                for (int i = 0; i < in->na; i++) {
                    px->col[i] = (float)(nret[i] > 0 ? top[i] : -1);
                    px->col[in->na + i] = (float)(in->gold_idx ? in->gold_idx[i] : i);
                }
            }
            free(top);
            free(nret);
            if (rc) break;
        }
        evalrun_add_num(s, "accuracy", r.accuracy);
        evalrun_add_num(s, "precision", r.precision);
        evalrun_add_num(s, "recall", r.recall);
        evalrun_add_num(s, "f1", r.f1);
        break;
    }
    default:
        rc = am_error(AM_EINVAL, "task '%s': bad type", t->name);
    }
    if (rc) {
        am_error_wrap(rc, "task '%s'", t->name);
        px_free(px);
    }
done:
    am_free_aligned(A);
    am_free_aligned(B);
    return rc;
}
