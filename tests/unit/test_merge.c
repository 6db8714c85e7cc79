/* test_merge.c - src/merge: names, the parameter resolver, and every method against the
 * NumPy reference (tests/ref/merge/gen_fixture.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "harness.h"
#include "merge.h"
#include "merge_fixture.h"
#include "tensor.h"

TEST(test_merge_names) {
    MergeMethod m;
    CHECK_OK(merge_method_from_name("ties", &m));
    CHECK(m == MERGE_TIES);
    CHECK_OK(merge_method_from_name("multislerp", &m));
    CHECK(m == MERGE_MULTISLERP);
    CHECK_EQ_INT(merge_method_from_name("tie", &m), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "did you mean 'ties'") != NULL);
    CHECK_EQ_INT(merge_method_from_name("dare-ties", &m), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "'dare_ties'") != NULL);
    CHECK_EQ_INT(merge_method_from_name("zzzzzzzzzzzz", &m), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "known: linear") != NULL);
    for (int i = 0; i < MERGE_METHOD_COUNT; i++) {
        CHECK_OK(merge_method_from_name(merge_method_name((MergeMethod)i), &m));
        CHECK(m == (MergeMethod)i);
    }
    MergeParam p;
    CHECK_OK(merge_param_from_name("density", &p));
    CHECK(p == MERGE_P_DENSITY);
    CHECK_EQ_INT(merge_param_from_name("densty", &p), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "'density'") != NULL);
    MergeSpec s;
    merge_spec_init(&s, MERGE_TIES);
    CHECK_EQ_INT(merge_spec_set_option(&s, "normalise", 1), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "'normalize'") != NULL);
    CHECK_OK(merge_spec_set_option(&s, "rescale", 1));
    CHECK_EQ_INT(s.rescale, 1);
    merge_spec_free(&s);
    unsigned c;
    CHECK_OK(merge_class_from_name("attention", &c));
    CHECK(c == MERGE_CLS_ATTENTION);
    CHECK_EQ_INT(merge_class_from_name("atention", &c), AM_EINVAL);
}

TEST(test_merge_classes) {
    CHECK(merge_tensor_class("embeddings.word_embeddings.weight") == MERGE_CLS_EMBEDDINGS);
    CHECK(merge_tensor_class("embeddings.LayerNorm.weight") == MERGE_CLS_LAYERNORM);
    CHECK(merge_tensor_class("encoder.layer.3.attention.self.query.weight") == MERGE_CLS_ATTENTION);
    CHECK(merge_tensor_class("encoder.layer.3.attention.output.dense.bias") == MERGE_CLS_ATTENTION);
    CHECK(merge_tensor_class("encoder.layer.3.attention.output.LayerNorm.bias") == MERGE_CLS_LAYERNORM);
    CHECK(merge_tensor_class("encoder.layer.3.intermediate.dense.weight") == MERGE_CLS_FFN);
    CHECK(merge_tensor_class("encoder.layer.3.output.dense.weight") == MERGE_CLS_FFN);
    CHECK(merge_tensor_class("pooler.dense.weight") == MERGE_CLS_POOLER);
    CHECK(merge_tensor_class("cls.predictions.bias") == MERGE_CLS_HEAD);
    CHECK_EQ_INT(merge_tensor_layer("encoder.layer.11.output.dense.weight"), 11);
    CHECK_EQ_INT(merge_tensor_layer("embeddings.word_embeddings.weight"), -1);
}

TEST(test_merge_resolver) {
    MergeSpec s;
    merge_spec_init(&s, MERGE_TIES);
    const char *q = "encoder.layer.2.attention.self.query.weight";
    const char *f = "encoder.layer.2.intermediate.dense.weight";
    const char *e = "embeddings.word_embeddings.weight";
    CHECK_NEAR(merge_param_at(&s, MERGE_P_DENSITY, 0, q, 2, 5), 1.0, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_EPSILON, 0, q, 2, 5), 0.15, 1e-7);
    CHECK(isnan(merge_param_at(&s, MERGE_P_T, -1, q, 2, 5)));
    float half = 0.5f, grad[3] = {0.0f, 1.0f, 0.5f}, w2 = 2.0f, att = 0.25f, one = 0.9f;
    CHECK_OK(merge_spec_set(&s, MERGE_P_DENSITY, -1, 0, "", &half, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_DENSITY, 1, q, 2, 5), 0.5, 0);
    /* gradient over 5 layers: layer 1 -> x = 0.5 -> 0.5; layer 2 -> x = 1 -> 1; layer 3 -> 0.75 */
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, -1, 0, "", grad, 3));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 1, 5), 0.5, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 2, 5), 1.0, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 3, 5), 0.75, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, e, -1, 5), 0.0, 0); /* outside layers: x = 0 */
    /* per model overrides the global rule added before it */
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, 1, 0, "", &w2, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, q, 2, 5), 2.0, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 2, 5), 1.0, 1e-7);
    /* per class, then per tensor (substring and glob) */
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, -1, MERGE_CLS_ATTENTION, "", &att, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, q, 2, 5), 0.25, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, f, 2, 5), 2.0, 0);
    CHECK_OK(merge_spec_set(&s, MERGE_P_WEIGHT, 0, 0, "encoder.layer.*.intermediate.*", &one, 1));
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, f, 2, 5), 0.9, 1e-7);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 1, f, 2, 5), 2.0, 0);
    CHECK_NEAR(merge_param_at(&s, MERGE_P_WEIGHT, 0, q, 2, 5), 0.25, 0);
    float bad = NAN;
    CHECK_EQ_INT(merge_spec_set(&s, MERGE_P_WEIGHT, 0, 0, "", &bad, 1), AM_EINVAL);
    CHECK_EQ_INT(merge_spec_set(&s, MERGE_P_WEIGHT, 0, 0, "", grad, 0), AM_EINVAL);
    merge_spec_free(&s);
}

/* ---------------------------------------------------------------- fixture cases */

typedef struct {
    Fixture fx;
    ParamTable tab;
    ParamInfo t[32];
    const float *models[3];
    const float *base;
} Ref;

static int ref_load(Ref *r) {
    memset(r, 0, sizeof *r);
    if (fx_load(&r->fx, AM_TEST_DIR "/ref/merge/merge.bin") != 0) return -1;
    size_t off = fx_param_table(&r->fx, &r->tab, r->t, (int)(sizeof r->t / sizeof r->t[0]));
    if (off == 0) return -2;
    const FxArray *m = fx_get(&r->fx, "models"), *b = fx_get(&r->fx, "base");
    if (!m || !b || m->dims[1] != off) return -2;
    for (int k = 0; k < 3; k++) r->models[k] = (const float *)m->data + (size_t)k * off;
    r->base = b->data;
    return 0;
}

static void set1(MergeSpec *s, MergeParam p, int model, float v) { CHECK_OK(merge_spec_set(s, p, model, 0, "", &v, 1)); }
static void setw(MergeSpec *s, int K, const float *w) { for (int k = 0; k < K; k++) set1(s, MERGE_P_WEIGHT, k, w[k]); }

/* The MergeSpec of each fixture case (tests/ref/merge/gen_fixture.py CASES). Returns K, base. */
static int build_case(const char *label, MergeSpec *s, int *use_base) {
    MergeMethod m;
    *use_base = 1;
#define W(...) do { float _w[] = {__VA_ARGS__}; setw(s, (int)(sizeof _w / sizeof *_w), _w); } while (0)
#define METHOD(name) do { CHECK_OK(merge_method_from_name(name, &m)); merge_spec_init(s, m); } while (0)
    if (!strcmp(label, "linear")) { METHOD("linear"); W(1.0f, 2.0f, 0.5f); *use_base = 0; return 3; }
    if (!strcmp(label, "linear_layers")) {
        METHOD("linear"); float g[2] = {0, 1};
        CHECK_OK(merge_spec_set(s, MERGE_P_WEIGHT, 0, 0, "", g, 2));
        set1(s, MERGE_P_WEIGHT, 1, 1.0f); set1(s, MERGE_P_WEIGHT, 2, 0.5f); *use_base = 0; return 3;
    }
    if (!strcmp(label, "linear_nonorm")) {
        METHOD("linear"); W(0.3f, 0.4f); CHECK_OK(merge_spec_set_option(s, "normalize", 0)); *use_base = 0; return 2;
    }
    if (!strcmp(label, "task_arithmetic")) { METHOD("task_arithmetic"); W(0.5f, 1.0f, -0.3f); set1(s, MERGE_P_LAMBDA, -1, 0.8f); return 3; }
    if (!strcmp(label, "ties") || !strcmp(label, "ties_paper")) {
        METHOD("ties"); W(1.0f, 0.7f, 0.4f); set1(s, MERGE_P_DENSITY, -1, 0.5f);
        if (label[4]) CHECK_OK(merge_spec_set_option(s, "paper", 1));
        return 3;
    }
    if (!strcmp(label, "ties_layers")) {
        METHOD("ties"); float g[2] = {0.3f, 0.9f}, two = 2.0f;
        CHECK_OK(merge_spec_set(s, MERGE_P_DENSITY, -1, 0, "", g, 2));
        set1(s, MERGE_P_WEIGHT, -1, 1.0f);
        CHECK_OK(merge_spec_set(s, MERGE_P_WEIGHT, -1, MERGE_CLS_ATTENTION, "", &two, 1));
        return 3;
    }
    if (!strcmp(label, "dare_linear")) {
        METHOD("dare_linear"); W(0.6f, 0.3f, 0.5f); set1(s, MERGE_P_DENSITY, -1, 0.6f);
        CHECK_OK(merge_spec_set_option(s, "seed", 7)); return 3;
    }
    if (!strncmp(label, "dare_ties", 9)) {
        METHOD("dare_ties"); W(1.0f, 0.5f, 0.8f); set1(s, MERGE_P_DENSITY, -1, 0.5f);
        CHECK_OK(merge_spec_set_option(s, "seed", 11));
        if (label[9]) CHECK_OK(merge_spec_set_option(s, "paper", 1));
        return 3;
    }
    if (!strcmp(label, "della")) {
        METHOD("della"); W(1.0f, 0.6f, 0.4f); set1(s, MERGE_P_DENSITY, -1, 0.5f); set1(s, MERGE_P_EPSILON, -1, 0.2f);
        CHECK_OK(merge_spec_set_option(s, "seed", 3)); return 3;
    }
    if (!strcmp(label, "della_linear_paper")) {
        METHOD("della_linear"); W(0.5f, 0.5f, 0.5f); set1(s, MERGE_P_DENSITY, -1, 0.6f); set1(s, MERGE_P_EPSILON, -1, 0.1f);
        CHECK_OK(merge_spec_set_option(s, "seed", 5)); CHECK_OK(merge_spec_set_option(s, "paper", 1)); return 3;
    }
    if (!strcmp(label, "breadcrumbs")) {
        METHOD("breadcrumbs"); W(0.5f, 0.5f, 0.5f); set1(s, MERGE_P_DENSITY, -1, 0.7f); set1(s, MERGE_P_GAMMA, -1, 0.05f); return 3;
    }
    if (!strcmp(label, "breadcrumbs_ties")) {
        METHOD("breadcrumbs_ties"); W(1.0f, 0.6f, 0.4f); set1(s, MERGE_P_DENSITY, -1, 0.6f); set1(s, MERGE_P_GAMMA, -1, 0.1f); return 3;
    }
    if (!strcmp(label, "slerp")) { METHOD("slerp"); set1(s, MERGE_P_T, -1, 0.3f); *use_base = 0; return 2; }
    if (!strcmp(label, "slerp_layers")) {
        METHOD("slerp"); float g[3] = {0, 0.5f, 1}; CHECK_OK(merge_spec_set(s, MERGE_P_T, -1, 0, "", g, 3));
        *use_base = 0; return 2;
    }
    if (!strcmp(label, "nuslerp_flat")) { METHOD("nuslerp"); W(1.0f, 3.0f); return 2; }
    if (!strcmp(label, "nuslerp_rows")) {
        METHOD("nuslerp"); W(2.0f, 1.0f); CHECK_OK(merge_spec_set_option(s, "nuslerp_flatten", 0)); *use_base = 0; return 2;
    }
    if (!strcmp(label, "nuslerp_cols")) {
        METHOD("nuslerp"); W(1.0f, 1.0f); CHECK_OK(merge_spec_set_option(s, "nuslerp_flatten", 0));
        CHECK_OK(merge_spec_set_option(s, "nuslerp_row_wise", 1)); return 2;
    }
    if (!strcmp(label, "multislerp")) { METHOD("multislerp"); W(1.0f, 2.0f, 3.0f); return 3; }
    if (!strcmp(label, "multislerp_nobase")) { METHOD("multislerp"); W(1.0f, 1.0f, 2.0f); *use_base = 0; return 3; }
    if (!strcmp(label, "karcher")) { METHOD("karcher"); *use_base = 0; return 3; }
    if (!strcmp(label, "model_stock")) { METHOD("model_stock"); return 3; }
    if (!strcmp(label, "model_stock_filter")) {
        METHOD("model_stock"); CHECK_OK(merge_spec_set_option(s, "filter_wise", 1)); return 3;
    }
#undef W
#undef METHOD
    return -1;
}

static int n_cases_checked;

TEST(test_merge_fixture) {
    Ref r;
    int rc = ref_load(&r);
    CHECKF(rc == 0, "cannot load tests/ref/merge/merge.bin (%d)", rc);
    if (rc) return;
    float *out = xmalloc(r.tab.total * sizeof(float));
    for (int i = 0; i < r.fx.n; i++) {
        const FxArray *a = &r.fx.a[i];
        if (strncmp(a->name, "case:", 5) != 0) continue;
        const char *label = a->name + 5;
        MergeSpec s;
        int use_base, K = build_case(label, &s, &use_base);
        CHECKF(K > 0, "no spec for fixture case %s", label);
        if (K <= 0) continue;
        MergeInputs in = {0};
        in.tab = &r.tab;
        in.n_layers = 3;
        in.k = K;
        in.models = r.models;
        in.base = use_base ? r.base : NULL;
        MergeStats st;
        rc = merge_run(&s, &in, out, &st);
        CHECKF(rc == 0, "case %s: %s", label, am_lasterror());
        if (rc == 0) {
            /* per tensor, relative to the tensor's largest reference entry */
            double worst = 0;
            const char *wt = "";
            for (int ti = 0; ti < r.tab.n; ti++) {
                const ParamInfo *pi = &r.tab.t[ti];
                double e = rel_err(out + pi->offset, (const float *)a->data + pi->offset, pi->numel);
                if (e > worst || e != e) { worst = e; wt = pi->name; }
            }
            CHECKF(worst < 1e-5, "case %s: rel err %.3g in %s", label, worst, wt);
            if (getenv("AM_TEST_VERBOSE")) printf("  %-20s rel err %.3g (%s), kept %zu/%zu, conflicts %zu, lerp %zu\n", label, worst, wt, st.delta_kept, st.delta_total, st.sign_conflicts, st.lerp_fallbacks);
            n_cases_checked++;
        }
        merge_spec_free(&s);
    }
    CHECKF(n_cases_checked >= 24, "only %d fixture cases checked", n_cases_checked);
    free(out);
    fx_free(&r.fx);
}

/* ---------------------------------------------------------------- properties */

/* Run a merge on the fixture table with K given buffers; returns the code. */
static int run_on(Ref *r, MergeSpec *s, int K, const float *const *xs, const float *base, float *out) {
    MergeInputs in = {0};
    in.tab = &r->tab;
    in.n_layers = 3;
    in.k = K;
    in.models = xs;
    in.base = base;
    return merge_run(s, &in, out, NULL);
}

static double max_rel(const Ref *r, const float *a, const float *b) {
    double w = 0;
    for (int ti = 0; ti < r->tab.n; ti++) {
        const ParamInfo *pi = &r->tab.t[ti];
        double e = rel_err(a + pi->offset, b + pi->offset, pi->numel);
        if (e > w || e != e) w = e;
    }
    return w;
}

TEST(test_merge_properties) {
    Ref r;
    if (ref_load(&r) != 0) { CHECK(0); return; }
    size_t n = r.tab.total;
    float *out = xmalloc(n * sizeof(float)), *out2 = xmalloc(n * sizeof(float));
    const float *same[3] = {r.models[0], r.models[0], r.models[0]};
    /* merging identical models returns the model */
    static const char *const idem[] = {"linear", "task_arithmetic", "ties", "della", "slerp", "nuslerp",
                                       "multislerp", "karcher", "model_stock"};
    for (size_t i = 0; i < sizeof idem / sizeof *idem; i++) {
        MergeSpec s;
        MergeMethod m;
        CHECK_OK(merge_method_from_name(idem[i], &m));
        merge_spec_init(&s, m);
        const MergeMethodInfo *info = merge_method_info(m);
        int K = info->max_models ? info->max_models : 3;
        if (m == MERGE_SLERP) set1(&s, MERGE_P_T, -1, 0.4f);
        if (m == MERGE_TASK_ARITHMETIC) CHECK_OK(merge_spec_set_option(&s, "normalize", 1));
        set1(&s, MERGE_P_WEIGHT, 0, 0.7f);
        int rc = run_on(&r, &s, K, same, info->base != MERGE_BASE_NONE ? r.base : NULL, out);
        CHECKF(rc == 0, "%s: %s", idem[i], am_lasterror());
        double e = max_rel(&r, out, r.models[0]);
        CHECKF(e < 1e-5, "%s of identical models: rel err %.3g", idem[i], e);
        merge_spec_free(&s);
    }
    /* weights (1, 0) return the first model */
    static const char *const first[] = {"linear", "task_arithmetic", "nuslerp", "multislerp"};
    for (size_t i = 0; i < sizeof first / sizeof *first; i++) {
        MergeSpec s;
        MergeMethod m;
        CHECK_OK(merge_method_from_name(first[i], &m));
        merge_spec_init(&s, m);
        set1(&s, MERGE_P_WEIGHT, 0, 1.0f);
        set1(&s, MERGE_P_WEIGHT, 1, 0.0f);
        int rc = run_on(&r, &s, 2, r.models, merge_method_info(m)->base == MERGE_BASE_REQUIRED ? r.base : NULL, out);
        CHECKF(rc == 0, "%s: %s", first[i], am_lasterror());
        double e = max_rel(&r, out, r.models[0]);
        CHECKF(e < 1e-5, "%s with weights (1, 0): rel err %.3g", first[i], e);
        merge_spec_free(&s);
    }
    /* SLERP endpoints */
    for (int end = 0; end <= 1; end++) {
        MergeSpec s;
        merge_spec_init(&s, MERGE_SLERP);
        set1(&s, MERGE_P_T, -1, (float)end);
        CHECK_OK(run_on(&r, &s, 2, r.models, NULL, out));
        double e = max_rel(&r, out, r.models[end]);
        CHECKF(e < 1e-5, "slerp t=%d: rel err %.3g", end, e);
        merge_spec_free(&s);
    }
    /* TIES at density 1 with agreeing signs = normalised task arithmetic */
    float *agree[3];
    for (int k = 0; k < 3; k++) {
        agree[k] = xmalloc(n * sizeof(float));
        for (size_t e = 0; e < n; e++) {
            float d = fabsf(r.models[k][e] - r.base[e]) + 1e-3f;
            agree[k][e] = r.base[e] + ((e % 3) ? d : -d);
        }
    }
    {
        MergeSpec a, b;
        merge_spec_init(&a, MERGE_TIES);
        merge_spec_init(&b, MERGE_TASK_ARITHMETIC);
        float w[3] = {1.0f, 0.6f, 0.3f};
        setw(&a, 3, w);
        setw(&b, 3, w);
        CHECK_OK(merge_spec_set_option(&b, "normalize", 1));
        MergeStats st;
        MergeInputs in = {0};
        in.tab = &r.tab; in.n_layers = 3; in.k = 3; in.models = (const float *const *)agree; in.base = r.base;
        CHECK_OK(merge_run(&a, &in, out, &st));
        CHECK_EQ_INT(st.sign_conflicts, 0);
        CHECK_OK(run_on(&r, &b, 3, (const float *const *)agree, r.base, out2));
        double e = max_rel(&r, out, out2);
        CHECKF(e < 1e-6, "ties(density 1, agreeing signs) vs normalised task arithmetic: rel err %.3g", e);
        merge_spec_free(&a);
        merge_spec_free(&b);
    }
    /* Multi-SLERP of two models = SLERP at t = 0.5 when the models have equal norms per tensor
     * (mergekit's multislerp is the normalised weighted mean of the unit vectors, which bisects
     * the angle like SLERP only at the midpoint of equal-norm vectors) */
    {
        float *eq = xmalloc(n * sizeof(float));
        for (int ti = 0; ti < r.tab.n; ti++) {
            const ParamInfo *pi = &r.tab.t[ti];
            double n0 = 0, n1 = 0;
            for (size_t e = pi->offset; e < pi->offset + pi->numel; e++) {
                n0 += (double)r.models[0][e] * (double)r.models[0][e];
                n1 += (double)r.models[1][e] * (double)r.models[1][e];
            }
            for (size_t e = pi->offset; e < pi->offset + pi->numel; e++)
                eq[e] = (float)((double)r.models[1][e] * sqrt(n0 / n1));
        }
        const float *two[2] = {r.models[0], eq};
        MergeSpec a, b;
        merge_spec_init(&a, MERGE_MULTISLERP);
        merge_spec_init(&b, MERGE_SLERP);
        set1(&b, MERGE_P_T, -1, 0.5f);
        CHECK_OK(run_on(&r, &a, 2, two, NULL, out));
        CHECK_OK(run_on(&r, &b, 2, two, NULL, out2));
        double e = max_rel(&r, out, out2);
        CHECKF(e < 1e-5, "multislerp(2 models) vs slerp(t=0.5): rel err %.3g", e);
        merge_spec_free(&a);
        merge_spec_free(&b);
        free(eq);
    }
    /* per-element weights: all ones change nothing; a 0/1 mask per element picks the model */
    {
        float *ones = xmalloc(n * sizeof(float)), *pick0 = xmalloc(n * sizeof(float)), *pick1 = xmalloc(n * sizeof(float));
        for (size_t e = 0; e < n; e++) { ones[e] = 1; pick0[e] = (float)(e % 2); pick1[e] = (float)(1 - e % 2); }
        static const MergeMethod each[] = {MERGE_LINEAR, MERGE_TASK_ARITHMETIC, MERGE_TIES};
        for (size_t i = 0; i < 3; i++) {
            MergeSpec s;
            merge_spec_init(&s, each[i]);
            float w[3] = {0.5f, 1.5f, 1.0f};
            setw(&s, 3, w);
            if (each[i] == MERGE_TIES) set1(&s, MERGE_P_DENSITY, -1, 0.4f);
            const float *b = each[i] == MERGE_LINEAR ? NULL : r.base;
            const float *ew[3] = {ones, ones, ones};
            MergeInputs in = {0};
            in.tab = &r.tab; in.n_layers = 3; in.k = 3; in.models = r.models; in.base = b; in.elem_weight = ew;
            CHECK_OK(merge_run(&s, &in, out, NULL));
            CHECK_OK(run_on(&r, &s, 3, r.models, b, out2));
            CHECKF(max_rel(&r, out, out2) < 1e-6, "%s: unit element weights change the merge", merge_method_name(each[i]));
            merge_spec_free(&s);
        }
        MergeSpec s;
        merge_spec_init(&s, MERGE_LINEAR);
        const float *ew[2] = {pick0, pick1};
        MergeInputs in = {0};
        in.tab = &r.tab; in.n_layers = 3; in.k = 2; in.models = r.models; in.elem_weight = ew;
        CHECK_OK(merge_run(&s, &in, out, NULL));
        int ok = 1;
        for (size_t e = 0; e < n; e++) ok &= out[e] == r.models[e % 2 ? 0 : 1][e];
        CHECKF(ok, "linear with 0/1 element weights does not pick the models");
        merge_spec_free(&s);
        free(ones); free(pick0); free(pick1);
    }
    for (int k = 0; k < 3; k++) free(agree[k]);
    free(out);
    free(out2);
    fx_free(&r.fx);
}

/* bad input: the right code and a message that names the problem */
#define EXPECT_ERR(expr, code, needle) do { int _rc = (expr); CHECK_EQ_INT(_rc, code); \
        CHECKF(strstr(am_lasterror(), needle) != NULL, "message '%s' lacks '%s'", am_lasterror(), needle); } while (0)

TEST(test_merge_errors) {
    Ref r;
    if (ref_load(&r) != 0) { CHECK(0); return; }
    size_t n = r.tab.total;
    float *out = xmalloc(n * sizeof(float));
    MergeSpec s;
    merge_spec_init(&s, MERGE_TIES);
    EXPECT_ERR(run_on(&r, &s, 3, r.models, NULL, out), AM_EINVAL, "needs a base model");
    set1(&s, MERGE_P_DENSITY, 1, 0.0f);
    EXPECT_ERR(run_on(&r, &s, 3, r.models, r.base, out), AM_EINVAL, "density 0 of model 2 for tensor embeddings.word_embeddings.weight is outside (0, 1]");
    set1(&s, MERGE_P_DENSITY, 1, 1.5f);
    EXPECT_ERR(run_on(&r, &s, 3, r.models, r.base, out), AM_EINVAL, "outside (0, 1]");
    merge_spec_free(&s);
    merge_spec_init(&s, MERGE_DELLA);
    set1(&s, MERGE_P_DENSITY, -1, 0.5f);
    set1(&s, MERGE_P_EPSILON, -1, 0.6f);
    EXPECT_ERR(run_on(&r, &s, 3, r.models, r.base, out), AM_EINVAL, "epsilon");
    merge_spec_free(&s);
    merge_spec_init(&s, MERGE_SLERP);
    EXPECT_ERR(run_on(&r, &s, 2, r.models, NULL, out), AM_EINVAL, "needs t");
    set1(&s, MERGE_P_T, -1, 0.5f);
    EXPECT_ERR(run_on(&r, &s, 3, r.models, NULL, out), AM_EINVAL, "exactly 2 models, got 3");
    EXPECT_ERR(run_on(&r, &s, 2, r.models, r.base, out), AM_EINVAL, "takes no base model");
    merge_spec_free(&s);
    merge_spec_init(&s, MERGE_LINEAR);
    set1(&s, MERGE_P_WEIGHT, -1, 0.0f);
    EXPECT_ERR(run_on(&r, &s, 3, r.models, NULL, out), AM_EINVAL, "all weights are zero");
    merge_spec_free(&s);
    merge_spec_init(&s, MERGE_MULTISLERP);
    float w0[2] = {1, -1};
    setw(&s, 2, w0);
    EXPECT_ERR(run_on(&r, &s, 2, r.models, NULL, out), AM_EINVAL, "all weights are zero");
    merge_spec_free(&s);
    /* NaN in model 2, named with the tensor */
    float *bad = xmalloc(n * sizeof(float));
    memcpy(bad, r.models[1], n * sizeof(float));
    const ParamInfo *q = &r.tab.t[2];
    bad[q->offset + 5] = NAN;
    const float *xs[3] = {r.models[0], bad, r.models[2]};
    static const MergeMethod each[] = {MERGE_LINEAR, MERGE_TIES, MERGE_DARE_TIES, MERGE_DELLA, MERGE_MULTISLERP,
                                       MERGE_KARCHER, MERGE_MODEL_STOCK, MERGE_BREADCRUMBS};
    for (size_t i = 0; i < sizeof each / sizeof *each; i++) {
        merge_spec_init(&s, each[i]);
        if (each[i] == MERGE_DARE_TIES || each[i] == MERGE_DELLA || each[i] == MERGE_BREADCRUMBS || each[i] == MERGE_TIES)
            set1(&s, MERGE_P_DENSITY, -1, 0.5f);
        const MergeMethodInfo *info = merge_method_info(each[i]);
        int rc = run_on(&r, &s, 3, xs, info->base != MERGE_BASE_NONE ? r.base : NULL, out);
        CHECKF(rc == AM_EFORMAT, "%s with a NaN: rc %d", info->name, rc);
        CHECKF(strstr(am_lasterror(), "model 2 has a NaN in tensor encoder.layer.0.attention.self.query.weight"),
               "%s: message '%s'", info->name, am_lasterror());
        merge_spec_free(&s);
    }
    free(bad);
    /* per-element weights only where they make sense */
    merge_spec_init(&s, MERGE_KARCHER);
    const float *ew[3] = {r.models[0], NULL, NULL};
    MergeInputs in = {0};
    in.tab = &r.tab; in.n_layers = 3; in.k = 3; in.models = r.models; in.elem_weight = ew;
    EXPECT_ERR(merge_run(&s, &in, out, NULL), AM_EINVAL, "per-element weights");
    merge_spec_free(&s);
    free(out);
    fx_free(&r.fx);
}

TEST(test_merge_models_checks) {
    EncoderConfig cfg;
    CHECK_OK(encoder_config_preset(&cfg, "tiny"));
    cfg.vocab_size = 1000;
    Model *a, *b, *c, *o;
    CHECK_OK(model_new(&cfg, &a));
    CHECK_OK(model_new(&cfg, &o));
    model_init_bert(a, 1);
    EncoderConfig cv = cfg;
    cv.vocab_size = 1200;
    CHECK_OK(model_new(&cv, &b));
    EncoderConfig cf = cfg;
    cf.intermediate_size = 256;
    CHECK_OK(model_new(&cf, &c));
    MergeSpec s;
    merge_spec_init(&s, MERGE_LINEAR);
    Model *ab[2] = {a, b}, *ac[2] = {a, c}, *aa[2] = {a, a};
    const char *names[2] = {"alpha", "beta"};
    EXPECT_ERR(merge_models(&s, ab, names, 2, NULL, o, NULL), AM_EVOCAB, "beta has a vocabulary of 1200 tokens, alpha has 1000");
    EXPECT_ERR(merge_models(&s, ac, NULL, 2, NULL, o, NULL), AM_ESHAPE,
               "tensor encoder.layer.0.intermediate.dense.weight of model 2 has shape (256, 128), the others (512, 128)");
    CHECK_OK(merge_models(&s, aa, NULL, 2, NULL, o, NULL));
    CHECK(memcmp(o->params, a->params, a->tab.total * sizeof(float)) == 0);
    merge_spec_free(&s);
    model_delete(a); model_delete(b); model_delete(c); model_delete(o);
}

/* results do not depend on the thread count (fixed chunks, ordered reductions) */
TEST(test_merge_threads) {
    EncoderConfig cfg;
    CHECK_OK(encoder_config_preset(&cfg, "tiny"));
    cfg.vocab_size = 2000;
    Model *m[4], *o1, *o2;
    for (int k = 0; k < 4; k++) { CHECK_OK(model_new(&cfg, &m[k])); model_init_bert(m[k], 10 + (uint64_t)k); }
    CHECK_OK(model_new(&cfg, &o1));
    CHECK_OK(model_new(&cfg, &o2));
    int saved = am_parallel_get_threads();
    static const MergeMethod each[] = {MERGE_LINEAR, MERGE_TIES, MERGE_MULTISLERP, MERGE_MODEL_STOCK, MERGE_DARE_TIES};
    for (size_t i = 0; i < sizeof each / sizeof *each; i++) {
        MergeSpec s;
        merge_spec_init(&s, each[i]);
        if (each[i] == MERGE_TIES || each[i] == MERGE_DARE_TIES) set1(&s, MERGE_P_DENSITY, -1, 0.3f);
        int base = merge_method_info(each[i])->base != MERGE_BASE_NONE;
        am_parallel_set_threads(1);
        CHECK_OK(merge_models(&s, m, NULL, 3, base ? m[3] : NULL, o1, NULL));
        am_parallel_set_threads(2);
        CHECK_OK(merge_models(&s, m, NULL, 3, base ? m[3] : NULL, o2, NULL));
        CHECKF(memcmp(o1->params, o2->params, o1->tab.total * sizeof(float)) == 0, "%s differs between 1 and 2 threads",
               merge_method_name(each[i]));
        /* MergeSpec threads = 1 on a 2-thread pool: the same bits */
        s.threads = 1;
        memset(o1->params, 0, o1->tab.total * sizeof(float));
        CHECK_OK(merge_models(&s, m, NULL, 3, base ? m[3] : NULL, o1, NULL));
        CHECKF(memcmp(o1->params, o2->params, o1->tab.total * sizeof(float)) == 0, "%s differs with threads = 1",
               merge_method_name(each[i]));
        CHECK(am_parallel_limit(0) == 0); /* the merge put the caller's cap back */
        merge_spec_free(&s);
    }
    am_parallel_set_threads(saved);
    for (int k = 0; k < 4; k++) model_delete(m[k]);
    model_delete(o1);
    model_delete(o2);
}

/* The AVX-512 TIES kernel against the portable path, bit for bit: tensor sizes that are not a
 * multiple of 16 (the tail goes the portable way), an inactive model (density 1), one that keeps
 * nothing, the paper's variant, 1 to 8 models */
TEST(test_merge_ties_simd_bits) {
    if (!merge_simd()) {
        printf("  (skipped: no AVX-512 on this CPU)\n");
        return;
    }
    const size_t sizes[3] = {37, 5000, 70001};
    ParamInfo t[3];
    memset(t, 0, sizeof t);
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(t[i].name, sizeof t[i].name, "encoder.layer.0.output.dense.w%d", i);
        t[i].ndim = 1; t[i].shape[0] = (int64_t)sizes[i]; t[i].numel = sizes[i]; t[i].offset = total;
        total += sizes[i];
    }
    ParamTable tab = {3, t, total};
    float *x[8], *b = xmalloc(total * sizeof(float)), *o1 = xmalloc(total * sizeof(float)), *o2 = xmalloc(total * sizeof(float));
    AmRng r;
    am_rng_seed(&r, 77);
    for (size_t e = 0; e < total; e++) b[e] = am_rng_normal(&r);
    for (int k = 0; k < 8; k++) {
        x[k] = xmalloc(total * sizeof(float));
        for (size_t e = 0; e < total; e++) x[k][e] = b[e] + (am_rng_below(&r, 5) ? 0.1f * am_rng_normal(&r) : 0.0f);
    }
    for (int K = 1; K <= 8; K++)
        for (int v = 0; v < 4; v++) {
            MergeSpec s;
            merge_spec_init(&s, MERGE_TIES);
            for (int k = 0; k < K; k++) set1(&s, MERGE_P_WEIGHT, k, 0.5f + 0.25f * (float)k - (k == 2 ? 1.2f : 0.0f));
            set1(&s, MERGE_P_DENSITY, -1, 0.3f);
            if (v & 1) set1(&s, MERGE_P_DENSITY, 0, 1.0f);      /* model 1 not sparsified */
            if (K > 1 && (v & 2)) set1(&s, MERGE_P_DENSITY, 1, 1e-9f); /* model 2 keeps its largest entry only */
            s.paper = v == 3;
            MergeInputs in = {0};
            in.tab = &tab; in.n_layers = 1; in.k = K; in.models = (const float *const *)x; in.base = b;
            MergeStats st1, st2;
            merge_set_simd(1);
            CHECK_OK(merge_run(&s, &in, o1, &st1));
            merge_set_simd(0);
            CHECK_OK(merge_run(&s, &in, o2, &st2));
            merge_set_simd(-1);
            CHECKF(memcmp(o1, o2, total * sizeof(float)) == 0, "K %d variant %d: the AVX-512 TIES differs", K, v);
            CHECKF(st1.delta_kept == st2.delta_kept && st1.sign_conflicts == st2.sign_conflicts,
                   "K %d variant %d: counts %zu/%zu vs %zu/%zu", K, v, (size_t)st1.delta_kept, (size_t)st1.sign_conflicts,
                   (size_t)st2.delta_kept, (size_t)st2.sign_conflicts);
            merge_spec_free(&s);
        }
    CHECK(merge_simd() == 1);
    for (int k = 0; k < 8; k++) free(x[k]);
    free(b);
    free(o1);
    free(o2);
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* TIES thresholds on tensors large enough for the sampled band selection (and, with many equal
 * magnitudes, its radix fallback), against a sort-based reference of the same merge */
TEST(test_merge_ties_large) {
    const size_t n = 300000;
    ParamInfo t = {0};
    snprintf(t.name, sizeof t.name, "encoder.layer.0.intermediate.dense.weight");
    t.ndim = 2; t.shape[0] = 600; t.shape[1] = 500; t.numel = n;
    ParamTable tab = {1, &t, n};
    float *x[2], *b = xmalloc(n * sizeof(float)), *out = xmalloc(n * sizeof(float)), *ref = xmalloc(n * sizeof(float));
    float *tmp = xmalloc(n * sizeof(float));
    AmRng r;
    am_rng_seed(&r, 5);
    for (int variant = 0; variant < 2; variant++) {
        for (size_t e = 0; e < n; e++) b[e] = am_rng_normal(&r);
        for (int k = 0; k < 2; k++) {
            x[k] = xmalloc(n * sizeof(float));
            for (size_t e = 0; e < n; e++) {
                float d = variant == 0 ? 0.1f * am_rng_normal(&r) : (am_rng_below(&r, 300) ? 0.5f : am_rng_normal(&r));
                if (variant == 1 && am_rng_below(&r, 2)) d = -d;
                x[k][e] = b[e] + d;
            }
        }
        float w[2] = {1.0f, 0.6f}, dens = 0.3f;
        /* reference: τ_m = the k-th largest |δ| (k = int(0.3 n)), keep |δ| >= τ_m, TIES mix */
        float tau[2];
        for (int k = 0; k < 2; k++) {
            for (size_t e = 0; e < n; e++) tmp[e] = fabsf(x[k][e] - b[e]);
            qsort(tmp, n, sizeof *tmp, cmp_f);
            tau[k] = tmp[n - (size_t)((double)dens * (double)n)];
        }
        size_t kept = 0;
        for (size_t e = 0; e < n; e++) {
            float d[2], vote = 0, mixed = 0, div = 0;
            for (int k = 0; k < 2; k++) {
                float dd = x[k][e] - b[e];
                d[k] = fabsf(dd) >= tau[k] ? dd : 0.0f;
                kept += d[k] != 0;
                vote += w[k] * d[k];
            }
            for (int k = 0; k < 2; k++) {
                float wd = w[k] * d[k];
                if ((wd > 0 && vote >= 0) || (wd < 0 && vote < 0)) { mixed += wd; div += w[k]; }
            }
            ref[e] = b[e] + mixed / (div == 0 ? 1.0f : div);
        }
        MergeSpec s;
        merge_spec_init(&s, MERGE_TIES);
        setw(&s, 2, w);
        set1(&s, MERGE_P_DENSITY, -1, dens);
        MergeInputs in = {0};
        in.tab = &tab; in.n_layers = 1; in.k = 2; in.models = (const float *const *)x; in.base = b;
        MergeStats st;
        CHECK_OK(merge_run(&s, &in, out, &st));
        double e = rel_err(out, ref, n);
        CHECKF(e < 1e-6, "variant %d: rel err %.3g against the sort-based reference", variant, e);
        if (variant == 0) CHECK_EQ_INT(st.delta_kept, kept); /* no ties in magnitude: exactly k per model */
        /* a NaN the sample misses is still found (the threshold pass counts it) */
        float keep = x[1][123457];
        x[1][123457] = NAN;
        int rc = merge_run(&s, &in, out, &st);
        CHECK_EQ_INT(rc, AM_EFORMAT);
        CHECKF(strstr(am_lasterror(), "model 2 has a NaN in tensor encoder.layer.0.intermediate.dense.weight (element 123457)"),
               "message '%s'", am_lasterror());
        x[1][123457] = keep;
        merge_spec_free(&s);
        for (int k = 0; k < 2; k++) free(x[k]);
    }
    free(b); free(out); free(ref); free(tmp);
}

int main(void) {
    RUN(test_merge_names);
    RUN(test_merge_classes);
    RUN(test_merge_resolver);
    RUN(test_merge_fixture);
    RUN(test_merge_properties);
    RUN(test_merge_errors);
    RUN(test_merge_models_checks);
    RUN(test_merge_threads);
    RUN(test_merge_ties_simd_bits);
    RUN(test_merge_ties_large);
    return test_report();
}
