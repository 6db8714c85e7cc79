/* merge.c - merge_run and merge_models: input checks, then each method one tensor at a time over
 * flat buffers (the method kernels live in merge_elementwise.c and merge_sphere.c).
 *
 * Two kernel shapes cover all methods:
 *  - elementwise (linear, task arithmetic and its sparsified/consensus family): one blocked pass
 *    that reads each input once and writes the output once (after a per-model selection pass
 *    for the magnitude-based masks, or an RNG pass for the L1 rescale of random masks);
 *  - Gram (slerp, nuslerp, multislerp, karcher, model_stock): every one of these methods
 *    returns a linear combination Σ c_m x_m + c_b θ_b whose coefficients depend only on the
 *    inner products of the inputs, so one pass computes the Gram matrix (double accumulation),
 *    a few scalars give the coefficients, and a second pass writes. Karcher's iteration runs
 *    on coefficients in the span of the unit vectors, so it costs no extra passes either.
 * Passes are cache-blocked and split over the tensor thread pool in fixed chunks (results do
 * not depend on the thread count); random masks are drawn sequentially per (model, tensor).
 * Finished output blocks go out with streaming stores (AVX-512), so a linear merge moves about
 * the bytes it is credited with (measured above the triad's bandwidth with two models).
 * TIES' per-model thresholds (the k-th largest |δ|) cost one extra pass for all models: a
 * sample brackets the threshold, the pass counts what lies below the bracket and collects what
 * lies inside, and a branch-free selection finishes; exact, with radix passes as the fallback.
 * The models' samples and selections run in parallel; on CPUs with AVX-512 (checked at run time)
 * TIES' second pass is one fused kernel over 16 entries of every model at a time. MergeSpec
 * threads caps the pool threads a merge uses (am_parallel_limit). Scratch comes from the
 * buffer pool.
 *
 * NaN/Inf inputs are found through the output (or the Gram matrix) of each block: only then
 * are the inputs of that block scanned to name the model. On an error `out` is unspecified.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "merge.h"
#include "merge_internal.h"
#include "tensor.h"

/* scratch from the buffer pool: a merge per slider step reuses the last one's warm pages */
float *merge_ws_get(WsBuf *w, size_t need) {
    if (need > w->cap) {
        am_pool_give(w->p, w->bytes, 64);
        w->p = am_pool_take(need * sizeof(float), 64, &w->bytes);
        w->cap = w->p ? w->bytes / sizeof(float) : 0;
    }
    return w->p;
}

void merge_ws_free(WsBuf *w, size_t n) {
    for (size_t i = 0; i < n; i++) am_pool_give(w[i].p, w[i].bytes, 64);
    free(w);
}

const char *merge_input_name(const MergeInputs *in, int k, char *buf, size_t len) {
    if (k < 0) return in->base_name ? in->base_name : "the base model";
    if (in->names && in->names[k]) return in->names[k];
    snprintf(buf, len, "model %d", k + 1);
    return buf;
}

static int nonfinite_at(const float *x, size_t n, size_t *at) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) == 0x7f800000u) { *at = i; return 1; }
    }
    return 0;
}

int merge_report_nonfinite(const Tj *j, size_t lo, size_t hi) {
    char buf[32];
    size_t at;
    for (int m = -1; m < j->K; m++) {
        const float *p = m < 0 ? j->b : j->x[m];
        if (!p) continue;
        if (nonfinite_at(p + lo, hi - lo, &at))
            return am_error(AM_EFORMAT, "merge: %s has a %s in tensor %s (element %zu)",
                            merge_input_name(j->in, m, buf, sizeof buf), isnan(p[lo + at]) ? "NaN" : "Inf",
                            j->pi->name, lo + at);
    }
    return am_error(AM_EINVAL, "merge: tensor %s overflows (non-finite result near element %zu); "
                    "check the weights", j->pi->name, lo);
}

int merge_sparse_kind(MergeMethod m) {
    switch (m) {
    case MERGE_TIES: return SP_MAGNITUDE;
    case MERGE_DARE_LINEAR: case MERGE_DARE_TIES: return SP_RANDOM;
    case MERGE_DELLA: case MERGE_DELLA_LINEAR: return SP_DELLA;
    case MERGE_BREADCRUMBS: case MERGE_BREADCRUMBS_TIES: return SP_OUTLIERS;
    default: return SP_NONE;
    }
}

/* ------------------------------------------------------------------------ checks */

static int check_params(const MergeSpec *s, const MergeInputs *in) {
    const MergeMethodInfo *info = merge_method_info(s->method);
    int kind = merge_sparse_kind(s->method);
    char buf[32];
    for (int ti = 0; ti < in->tab->n; ti++) {
        const ParamInfo *pi = &in->tab->t[ti];
        int layer = merge_tensor_layer(pi->name);
        if (info->params & (1u << MERGE_P_T)) {
            float t = merge_param_at(s, MERGE_P_T, -1, pi->name, layer, in->n_layers);
            if (isnan(t))
                return am_error(AM_EINVAL, "merge %s: needs t (0 = the first model, 1 = the second) for "
                                "tensor %s", info->name, pi->name);
        }
        if (kind == SP_NONE) continue;
        for (int m = 0; m < in->k; m++) {
            float d = merge_param_at(s, MERGE_P_DENSITY, m, pi->name, layer, in->n_layers);
            if (!(d > 0 && d <= 1))
                return am_error(AM_EINVAL, "merge %s: density %g of %s for tensor %s is outside (0, 1]",
                                info->name, (double)d, merge_input_name(in, m, buf, sizeof buf), pi->name);
            if (kind == SP_DELLA && d < 1) {
                float e = merge_param_at(s, MERGE_P_EPSILON, m, pi->name, layer, in->n_layers);
                if (!(d - e > 0 && d + e < 1))
                    return am_error(AM_EINVAL, "merge %s: density %g ± epsilon %g of %s for tensor %s leaves "
                                    "(0, 1)\nHINT: choose epsilon < min(density, 1 − density)", info->name,
                                    (double)d, (double)e, merge_input_name(in, m, buf, sizeof buf), pi->name);
            }
            if (kind == SP_OUTLIERS) {
                float g = merge_param_at(s, MERGE_P_GAMMA, m, pi->name, layer, in->n_layers);
                if (!(g >= 0 && g < 1))
                    return am_error(AM_EINVAL, "merge %s: gamma %g of %s for tensor %s is outside [0, 1)",
                                    info->name, (double)g, merge_input_name(in, m, buf, sizeof buf), pi->name);
            }
        }
    }
    return AM_OK;
}

static int check_inputs(const MergeSpec *s, const MergeInputs *in) {
    if ((unsigned)s->method >= MERGE_METHOD_COUNT) return am_error(AM_EINVAL, "merge: bad method %d", (int)s->method);
    const MergeMethodInfo *info = merge_method_info(s->method);
    if (!in || !in->tab || !in->models) return am_error(AM_EINVAL, "merge %s: no input models", info->name);
    if (in->k < info->min_models)
        return am_error(AM_EINVAL, "merge %s: needs at least %d model%s%s, got %d", info->name, info->min_models,
                        info->min_models == 1 ? "" : "s", info->base == MERGE_BASE_REQUIRED ? " besides the base" : "",
                        in->k);
    if (info->max_models && in->k > info->max_models)
        return am_error(AM_EINVAL, "merge %s: takes exactly %d models, got %d%s", info->name, info->max_models, in->k,
                        s->method == MERGE_SLERP ? "\nHINT: multislerp merges more than two" : "");
    if (info->base == MERGE_BASE_REQUIRED && !in->base)
        return am_error(AM_EINVAL, "merge %s: needs a base model (it merges the task vectors θ_m − θ_base)",
                        info->name);
    if (info->base == MERGE_BASE_NONE && in->base)
        return am_error(AM_EINVAL, "merge %s: takes no base model%s", info->name,
                        s->method == MERGE_SLERP ? " (the first model is t = 0, the second t = 1)" : "");
    for (int m = 0; m < in->k; m++)
        if (!in->models[m]) return am_error(AM_EINVAL, "merge %s: model %d is missing", info->name, m + 1);
    if (in->elem_weight) {
        int ok = s->method == MERGE_LINEAR || merge_sparse_kind(s->method) != SP_NONE ||
                 s->method == MERGE_TASK_ARITHMETIC;
        if (!ok)
            return am_error(AM_EINVAL, "merge %s: per-element weights apply to linear and the task-arithmetic "
                            "family only", info->name);
    }
    return check_params(s, in);
}

int merge_run(const MergeSpec *spec, const MergeInputs *in, float *out, MergeStats *stats) {
    MergeStats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    int rc = check_inputs(spec, in);
    if (rc) return rc;
    double t0 = am_now();
    /* threads: at most this many pool threads for this merge (0 = the pool's size) */
    const int prev_limit = am_parallel_limit(spec->threads > 0 ? spec->threads : 0);
    int K = in->k;
    const float *x[K], *ew[K];
    Tj j = {0};
    j.s = spec;
    j.in = in;
    j.info = merge_method_info(spec->method);
    j.st = stats;
    j.out = out;
    j.K = K;
    WsBuf *ws = xcalloc(MERGE_WS(K), sizeof *ws);
    j.ws = ws;
    for (int ti = 0; ti < in->tab->n && rc == AM_OK; ti++) {
        const ParamInfo *pi = &in->tab->t[ti];
        for (int m = 0; m < K; m++) {
            x[m] = in->models[m] + pi->offset;
            ew[m] = in->elem_weight && in->elem_weight[m] ? in->elem_weight[m] + pi->offset : NULL;
        }
        j.pi = pi;
        j.ti = ti;
        j.layer = merge_tensor_layer(pi->name);
        j.x = x;
        j.ew = in->elem_weight ? ew : NULL;
        j.b = in->base ? in->base + pi->offset : NULL;
        j.o = out + pi->offset;
        j.n = pi->numel;
        switch (spec->method) {
        case MERGE_LINEAR: rc = merge_run_linear(&j); break;
        case MERGE_SLERP: rc = merge_run_slerp(&j); break;
        case MERGE_NUSLERP: rc = merge_run_nuslerp(&j); break;
        case MERGE_MULTISLERP: rc = merge_run_multislerp(&j); break;
        case MERGE_KARCHER: rc = merge_run_karcher(&j); break;
        case MERGE_MODEL_STOCK: rc = merge_run_model_stock(&j); break;
        default: rc = merge_run_gta(&j); break;
        }
        stats->n_tensors++;
        stats->n_elements += pi->numel;
    }
    merge_ws_free(ws, MERGE_WS(K));
    am_parallel_limit(prev_limit);
    if (rc) return rc;
    if (spec->method == MERGE_MODEL_STOCK && stats->n_tensors) stats->model_stock_t /= (double)stats->n_tensors;
    stats->seconds = am_now() - t0;
    size_t nin = (size_t)K + (in->base ? 1 : 0);
    stats->bytes_read = stats->n_elements * nin * sizeof(float);
    stats->bytes_written = stats->n_elements * sizeof(float);
    return AM_OK;
}

int merge_models(const MergeSpec *spec, Model *const *models, const char *const *names, int k,
                 const Model *base, Model *out, MergeStats *stats) {
    if (k < 1 || !models || !out) return am_error(AM_EINVAL, "merge: no input models");
    const Model *ref = base ? base : models[0];
    char buf[32];
    for (int m = -1; m < k; m++) {
        const Model *x = m < 0 ? base : models[m];
        if (!x) continue;
        const char *nm = m < 0 ? "the base model" : names && names[m] ? names[m] : (snprintf(buf, sizeof buf, "model %d", m + 1), buf);
        if (x->cfg.vocab_size != ref->cfg.vocab_size)
            return am_error(AM_EVOCAB, "merge: %s has a vocabulary of %d tokens, %s has %d; models merge only "
                            "over the same vocabulary", nm, x->cfg.vocab_size,
                            base ? "the base model" : (names && names[0] ? names[0] : "model 1"), ref->cfg.vocab_size);
        for (int ti = 0; ti < ref->tab.n || ti < x->tab.n; ti++) {
            const ParamInfo *a = ti < ref->tab.n ? &ref->tab.t[ti] : NULL, *bb = ti < x->tab.n ? &x->tab.t[ti] : NULL;
            if (!a || !bb)
                return am_error(AM_ESHAPE, "merge: %s %s tensor %s", nm, a ? "lacks" : "has an extra",
                                a ? a->name : bb->name);
            int same = strcmp(a->name, bb->name) == 0 && a->ndim == bb->ndim && a->numel == bb->numel;
            for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == bb->shape[d];
            if (!same) {
                if (strcmp(a->name, bb->name) != 0)
                    return am_error(AM_ESHAPE, "merge: %s has tensor %s where the others have %s", nm, bb->name, a->name);
                return am_error(AM_ESHAPE, "merge: tensor %s of %s has shape (%lld, %lld), the others (%lld, %lld)",
                                a->name, nm, (long long)bb->shape[0], (long long)(bb->ndim > 1 ? bb->shape[1] : 1),
                                (long long)a->shape[0], (long long)(a->ndim > 1 ? a->shape[1] : 1));
            }
        }
    }
    if (out->tab.total != ref->tab.total)
        return am_error(AM_ESHAPE, "merge: the output model has %zu parameters, the inputs %zu", out->tab.total,
                        ref->tab.total);
    const float *xs[k];
    for (int m = 0; m < k; m++) xs[m] = models[m]->params;
    MergeInputs in = {0};
    in.tab = &ref->tab;
    in.n_layers = ref->cfg.num_layers;
    in.k = k;
    in.models = xs;
    in.base = base ? base->params : NULL;
    in.names = names;
    return merge_run(spec, &in, out->params, stats);
}
