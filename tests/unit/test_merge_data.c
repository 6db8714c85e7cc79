/* test_merge_data.c - src/merge/merge_data.h: Fisher, RegMean, LM-Cocktail and CoDiEmb fusion
 * against the NumPy reference (tests/ref/merge/gen_data_fixture.py), Self Positioning on
 * constructed cases whose best λ is known, and bad inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "harness.h"
#include "merge_data.h"
#include "merge_fixture.h"

typedef struct {
    Fixture fx;
    ParamTable tab;
    ParamInfo t[16];
    const float *models[3], *fisher[3];
    const float *base;
} Ref;

static int ref_load(Ref *r) {
    memset(r, 0, sizeof *r);
    if (fx_load(&r->fx, AM_TEST_DIR "/ref/merge/merge_data.bin") != 0) return -1;
    size_t off = fx_param_table(&r->fx, &r->tab, r->t, (int)(sizeof r->t / sizeof r->t[0]));
    if (off == 0) return -2;
    const FxArray *m = fx_get(&r->fx, "models"), *b = fx_get(&r->fx, "base"), *f = fx_get(&r->fx, "fisher");
    if (!m || !b || !f || m->dims[1] != off) return -2;
    for (int k = 0; k < 3; k++) {
        r->models[k] = (const float *)m->data + (size_t)k * off;
        r->fisher[k] = (const float *)f->data + (size_t)k * off;
    }
    r->base = b->data;
    return 0;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - (double)b[i]);
        if (isnan(x)) return INFINITY;
        if (x > d) d = x;
    }
    return d;
}

static void check_case(Ref *r, const char *label, const float *out, double tol) {
    char nm[128];
    snprintf(nm, sizeof nm, "case:%s", label);
    const FxArray *c = fx_get(&r->fx, nm);
    CHECKF(c != NULL, "no case %s", label);
    if (!c) return;
    double d = max_diff(out, c->data, c->n);
    CHECKF(d <= tol, "%s: max |diff| %g", label, d);
}

TEST(test_merge_data_fisher) {
    Ref r;
    CHECK_EQ_INT(ref_load(&r), 0);
    float *out = malloc(r.tab.total * sizeof(float));
    CHECK_OK(merge_fisher(&r.tab, 3, r.models, r.fisher, NULL, 1e-10, out));
    check_case(&r, "fisher", out, 1e-5);
    double w[3] = { 1, 2, 0.5 };
    CHECK_OK(merge_fisher(&r.tab, 3, r.models, r.fisher, w, 1e-10, out));
    check_case(&r, "fisher_w", out, 1e-5);
    CHECK_OK(merge_fisher(&r.tab, 3, r.models, r.fisher, NULL, 0.5, out));
    check_case(&r, "fisher_eps", out, 1e-5);
    /* errors */
    CHECK_EQ_INT(merge_fisher(&r.tab, 3, r.models, r.fisher, NULL, -1, out), AM_EINVAL);
    double wz[3] = { 0, 0, 0 };
    CHECK_EQ_INT(merge_fisher(&r.tab, 3, r.models, r.fisher, wz, 0, out), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "all zero") != NULL);
    float *bad = malloc(r.tab.total * sizeof(float));
    memcpy(bad, r.fisher[1], r.tab.total * sizeof(float));
    bad[62] = -1;
    const float *fb[3] = { r.fisher[0], bad, r.fisher[2] };
    CHECK_EQ_INT(merge_fisher(&r.tab, 3, r.models, fb, NULL, 0, out), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "model 2") != NULL && strstr(am_lasterror(), "embeddings.LayerNorm.weight") != NULL);
    memcpy(bad, r.models[2], r.tab.total * sizeof(float));
    bad[5] = NAN;
    const float *mb[3] = { r.models[0], r.models[1], bad };
    CHECK_EQ_INT(merge_fisher(&r.tab, 3, mb, r.fisher, NULL, 0, out), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "NaN") != NULL);
    free(bad);
    free(out);
    fx_free(&r.fx);
}

/* fisher_normalize (the authors' avg_merger.py): θ1 = 0, θ2 = 1; F1 = 1; F2 = 100 on tensor A,
 * 1 on tensor B. Plain: A leans to model 2 (100/101). param: each tensor's Fisher norms equalised,
 * 1/2 everywhere. model: the whole-model norms (2 and √20002) scale both tensors alike. */
TEST(test_merge_data_fisher_normalize) {
    ParamInfo t[2] = { { .name = "a.weight", .ndim = 1, .shape = { 2 }, .numel = 2, .offset = 0 },
                       { .name = "b.weight", .ndim = 1, .shape = { 2 }, .numel = 2, .offset = 2 } };
    ParamTable tab = { .t = t, .n = 2, .total = 4 };
    float th1[4] = { 0, 0, 0, 0 }, th2[4] = { 1, 1, 1, 1 }, f1[4] = { 1, 1, 1, 1 }, f2[4] = { 100, 100, 1, 1 }, out[4];
    const float *ms[2] = { th1, th2 }, *fs[2] = { f1, f2 };
    CHECK_OK(merge_fisher_normalized(&tab, 2, ms, fs, NULL, 0, MERGE_FISHER_NORM_NONE, out));
    CHECK_NEAR(out[0], 100.0 / 101, 1e-6);
    CHECK_NEAR(out[3], 0.5, 1e-6);
    CHECK_OK(merge_fisher_normalized(&tab, 2, ms, fs, NULL, 0, MERGE_FISHER_NORM_PARAM, out));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 0.5, 1e-6);
    CHECK_OK(merge_fisher_normalized(&tab, 2, ms, fs, NULL, 0, MERGE_FISHER_NORM_MODEL, out));
    double c1 = 1 / 2.0, c2 = 1 / sqrt(20002.0);
    CHECK_NEAR(out[0], c2 * 100 / (c1 + c2 * 100), 1e-6);
    CHECK_NEAR(out[2], c2 / (c1 + c2), 1e-6);
    MergeFisherNorm n;
    CHECK_OK(merge_fisher_norm_from_name("model", &n));
    CHECK_EQ_INT(n, MERGE_FISHER_NORM_MODEL);
    CHECK_EQ_INT(merge_fisher_norm_from_name("tensor", &n), AM_EINVAL);
}

TEST(test_merge_data_regmean) {
    Ref r;
    CHECK_EQ_INT(ref_load(&r), 0);
    int lin[16];
    int n = merge_linear_tensors(&r.tab, lin, 16);
    CHECK_EQ_INT(n, 4);
    double *g[3 * 4];
    for (int j = 0; j < n; j++)
        for (int k = 0; k < 3; k++) {
            char nm[160];
            snprintf(nm, sizeof nm, "gram:%s:%d", r.tab.t[lin[j]].name, k);
            const FxArray *a = fx_get(&r.fx, nm);
            CHECKF(a != NULL, "no %s", nm);
            g[k * n + j] = malloc(a->n * sizeof(double));
            for (size_t e = 0; e < a->n; e++) g[k * n + j][e] = ((const float *)a->data)[e];
        }
    float *out = malloc(r.tab.total * sizeof(float));
    const double *const *gc = (const double *const *)g;
    CHECK_OK(merge_regmean(&r.tab, 3, r.models, n, lin, gc, 0.9, NULL, out));
    check_case(&r, "regmean", out, 2e-5);
    CHECK_OK(merge_regmean(&r.tab, 3, r.models, n, lin, gc, 1.0, NULL, out));
    check_case(&r, "regmean_a1", out, 2e-5);
    double w[3] = { 1, 2, 0.5 };
    CHECK_OK(merge_regmean(&r.tab, 3, r.models, n, lin, gc, 0.5, w, out));
    check_case(&r, "regmean_w", out, 2e-5);
    /* one model: the model itself */
    CHECK_OK(merge_regmean(&r.tab, 1, r.models + 1, n, lin, gc + n, 0.9, NULL, out));
    CHECK(max_diff(out, r.models[1], r.tab.total) < 1e-5);
    CHECK_EQ_INT(merge_regmean(&r.tab, 3, r.models, n, lin, gc, 1.5, NULL, out), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "alpha") != NULL);
    int badlin[1] = { 1 }; /* a 1-D tensor */
    CHECK_EQ_INT(merge_regmean(&r.tab, 3, r.models, 1, badlin, gc, 0.9, NULL, out), AM_EINVAL);
    g[1][0] = NAN;
    CHECK_EQ_INT(merge_regmean(&r.tab, 3, r.models, n, lin, gc, 0.9, NULL, out), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "Gram") != NULL);
    /* a zero Gram (a linear whose inputs were never seen): not positive definite -> the mean */
    for (int k = 0; k < 3; k++) memset(g[k * n + 0], 0, 36 * sizeof(double));
    g[1][0] = 0;
    CHECK_OK(merge_regmean(&r.tab, 3, r.models, n, lin, gc, 0.9, NULL, out));
    const ParamInfo *q = &r.tab.t[lin[0]];
    CHECK_NEAR(out[q->offset + 3], ((double)r.models[0][q->offset + 3] + (double)r.models[1][q->offset + 3] + (double)r.models[2][q->offset + 3]) / 3.0, 1e-6);
    for (int i = 0; i < 3 * n; i++) free(g[i]);
    free(out);
    fx_free(&r.fx);
}

TEST(test_merge_data_lm_cocktail) {
    Ref r;
    CHECK_EQ_INT(ref_load(&r), 0);
    const float *lf = fx_get(&r.fx, "losses")->data;
    double loss[3] = { lf[0], lf[1], lf[2] }, w[3];
    CHECK_OK(merge_lm_cocktail_weights(loss, 3, 5.0, w));
    const float *rw = fx_get(&r.fx, "case:lm_cocktail_w")->data;
    for (int k = 0; k < 3; k++) CHECK_NEAR(w[k], rw[k], 1e-6);
    CHECK_NEAR(w[0] + w[1] + w[2], 1.0, 1e-12);
    CHECK(w[1] > w[0] && w[0] > w[2]); /* lower loss, higher weight */
    CHECK_OK(merge_lm_cocktail_weights(loss, 3, 0.1, w));
    rw = fx_get(&r.fx, "case:lm_cocktail_w_t01")->data;
    for (int k = 0; k < 3; k++) CHECK_NEAR(w[k], rw[k], 1e-6);
    CHECK_EQ_INT(merge_lm_cocktail_weights(loss, 3, 0, w), AM_EINVAL);
    loss[2] = NAN;
    CHECK_EQ_INT(merge_lm_cocktail_weights(loss, 3, 5, w), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "model 3") != NULL);
    fx_free(&r.fx);
}

TEST(test_merge_data_fusion) {
    Ref r;
    CHECK_EQ_INT(ref_load(&r), 0);
    float *out = malloc(r.tab.total * sizeof(float));
    int n_cases = 0;
    for (int i = 0; i < r.fx.n; i++) {
        const char *nm = r.fx.a[i].name;
        if (strncmp(nm, "case:fusion:", 12) != 0) continue;
        char g[16], axis[16];
        double T;
        CHECK_EQ_INT(sscanf(nm + 12, "%15[^:]:%15[^:]:%lf", g, axis, &T), 3);
        MergeFusionG gg;
        MergeFusionAxis aa;
        CHECK_OK(merge_fusion_g_from_name(g, &gg));
        CHECK_OK(merge_fusion_axis_from_name(axis, &aa));
        CHECK_OK(merge_codiemb_fusion(&r.tab, 3, r.models, r.base, gg, T, aa, out));
        check_case(&r, nm + 5, out, 2e-6);
        n_cases++;
    }
    CHECK_EQ_INT(n_cases, 6);
    MergeFusionG gg;
    CHECK_EQ_INT(merge_fusion_g_from_name("sqare", &gg), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "square") != NULL);
    CHECK_EQ_INT(merge_codiemb_fusion(&r.tab, 3, r.models, NULL, MERGE_G_ABS, 1, MERGE_AXIS_ELEMENT, out), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "base") != NULL);
    CHECK_EQ_INT(merge_codiemb_fusion(&r.tab, 3, r.models, r.base, MERGE_G_SOFTMAX, 0, MERGE_AXIS_ELEMENT, out), AM_EINVAL);
    free(out);
    fx_free(&r.fx);
}

TEST(test_merge_data_simplex) {
    double v[3] = { 0.5, 0.2, 0.3 };
    merge_simplex_project(v, 3);
    CHECK_NEAR(v[0], 0.5, 1e-12);
    CHECK_NEAR(v[2], 0.3, 1e-12);
    double u[3] = { 2, 0, -1 };
    merge_simplex_project(u, 3);
    CHECK_NEAR(u[0], 1, 1e-12);
    CHECK_NEAR(u[1], 0, 1e-12);
    CHECK_NEAR(u[2], 0, 1e-12);
    double x[4] = { 0.6, 0.6, 0.1, -3 };
    merge_simplex_project(x, 4);
    CHECK_NEAR(x[0], 0.5, 1e-12);
    CHECK_NEAR(x[1], 0.5, 1e-12);
    CHECK_NEAR(x[2], 0, 1e-12);
}

/* L(θ) = ½ Σ a_e (θ_e − θ*_e)², θ* = θ0 + Σ λ*_k τ_k: the best λ is λ* */
typedef struct { const float *target, *a; size_t n; int calls; } Quad;
static int quad_fn(void *ud, const float *theta, double *loss, float *grad) {
    Quad *q = ud;
    double s = 0;
    for (size_t e = 0; e < q->n; e++) {
        double d = (double)theta[e] - (double)q->target[e];
        s += 0.5 * (double)q->a[e] * d * d;
        grad[e] = (float)((double)q->a[e] * d);
    }
    *loss = s;
    q->calls++;
    return AM_OK;
}

TEST(test_merge_data_self_positioning) {
    Ref r;
    CHECK_EQ_INT(ref_load(&r), 0);
    const size_t N = r.tab.total;
    const int L = 2;
    float *tau[3], *target = malloc(N * sizeof(float)), *a = malloc(N * sizeof(float)), *out = malloc(N * sizeof(float));
    for (int k = 0; k < 3; k++) {
        tau[k] = malloc(N * sizeof(float));
        for (size_t e = 0; e < N; e++) tau[k][e] = r.models[k][e] - r.base[e];
    }
    const double lstar[3] = { 0.7, 0.2, 0.45 };
    for (size_t e = 0; e < N; e++) {
        target[e] = (float)((double)r.base[e] + lstar[0] * (double)tau[0][e] + lstar[1] * (double)tau[1][e] + lstar[2] * (double)tau[2][e]);
        a[e] = 1.0f + (float)(e % 3);
    }
    Quad q = { target, a, N, 0 };
    MergeSpConfig c;
    merge_sp_config_default(&c);
    c.steps = 600;
    c.lr = 0.02;
    double lam[3 * 4];
    MergeSpTrace tr;
    CHECK_OK(merge_self_position(&c, &r.tab, L, 3, r.base, (const float *const *)tau, quad_fn, &q, lam, out, &tr));
    for (int k = 0; k < 3; k++) CHECKF(fabs(lam[k] - lstar[k]) < 2e-3, "λ%d %g vs %g", k, lam[k], lstar[k]);
    CHECK_EQ_INT(q.calls, 601);
    CHECK_EQ_INT(tr.steps, 600);
    CHECK_NEAR(tr.lambda[0], 1.0 / 3, 1e-12);
    CHECK(tr.loss[600] < tr.loss[0] * 1e-4);
    CHECK(max_diff(out, target, N) < 1e-2);
    merge_sp_trace_free(&tr);

    /* clamp (AdaMerging): λ* = (1.4, -0.2, 0.45) lies outside [0, 1]³; every λ of every step stays in it */
    const double lout[3] = { 1.4, -0.2, 0.45 };
    for (size_t e = 0; e < N; e++)
        target[e] = (float)((double)r.base[e] + lout[0] * (double)tau[0][e] + lout[1] * (double)tau[1][e] + lout[2] * (double)tau[2][e]);
    c.steps = 300;
    CHECK_OK(merge_self_position(&c, &r.tab, L, 3, r.base, (const float *const *)tau, quad_fn, &q, lam, out, NULL));
    CHECKF(lam[0] > 1.2 && lam[1] < -0.1, "unclamped: λ %g %g leave [0, 1]", lam[0], lam[1]);
    c.clamp = 1;
    CHECK_OK(merge_self_position(&c, &r.tab, L, 3, r.base, (const float *const *)tau, quad_fn, &q, lam, out, &tr));
    int inside = 1;
    for (int s = 0; s <= 300; s++)
        for (int j = 0; j < 3; j++) inside &= tr.lambda[s * 3 + j] >= 0 && tr.lambda[s * 3 + j] <= 1;
    CHECK(inside);
    CHECK(lam[0] > 0.9 && lam[1] < 0.1);
    CHECK(tr.loss[300] < tr.loss[0]);
    merge_sp_trace_free(&tr);
    c.clamp = 0;
    for (size_t e = 0; e < N; e++)
        target[e] = (float)((double)r.base[e] + lstar[0] * (double)tau[0][e] + lstar[1] * (double)tau[1][e] + lstar[2] * (double)tau[2][e]);

    /* SGD, per layer: every group finds λ* too */
    c.adam = 0;
    c.per_layer = 1;
    c.lr = 0.05;
    c.steps = 1500;
    CHECK_EQ_INT(merge_sp_groups(&c, L), 4);
    CHECK_OK(merge_self_position(&c, &r.tab, L, 3, r.base, (const float *const *)tau, quad_fn, &q, lam, out, NULL));
    for (int k = 0; k < 3; k++)
        for (int g = 0; g < 4; g++)
            CHECKF(fabs(lam[k * 4 + g] - lstar[k]) < 5e-3, "λ%d,%d %g vs %g", k, g, lam[k * 4 + g], lstar[k]);

    /* τ_2 = 0: its λ gets no gradient; the regulariser μ‖λ − 1/K‖² pulls it to 1/K */
    memset(tau[1], 0, N * sizeof(float));
    for (size_t e = 0; e < N; e++) target[e] = (float)((double)r.base[e] + 0.6 * (double)tau[0][e] + 0.3 * (double)tau[2][e]);
    merge_sp_config_default(&c);
    c.steps = 400;
    c.lr = 0.02;
    c.init = 0.9;
    c.mu = 1e-3;
    CHECK_OK(merge_self_position(&c, &r.tab, L, 3, r.base, (const float *const *)tau, quad_fn, &q, lam, out, NULL));
    CHECKF(fabs(lam[1] - 1.0 / 3) < 0.02, "λ2 %g", lam[1]);
    CHECKF(fabs(lam[0] - 0.6) < 0.01 && fabs(lam[2] - 0.3) < 0.01, "λ %g %g", lam[0], lam[2]);

    /* simplex: λ* = (0.6, 0, 0.3) is outside {Σλ = 1}; the constrained optimum has Σλ = 1, λ ≥ 0 */
    c.mu = 0;
    c.simplex = 1;
    c.init = NAN;
    CHECK_OK(merge_self_position(&c, &r.tab, L, 3, r.base, (const float *const *)tau, quad_fn, &q, lam, out, NULL));
    CHECK_NEAR(lam[0] + lam[1] + lam[2], 1.0, 1e-9);
    CHECK(lam[0] >= 0 && lam[1] >= 0 && lam[2] >= 0);

    /* errors */
    c.lr = 0;
    CHECK_EQ_INT(merge_self_position(&c, &r.tab, L, 3, r.base, (const float *const *)tau, quad_fn, &q, lam, out, NULL), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "lr") != NULL);
    c.lr = 0.01;
    CHECK_EQ_INT(merge_self_position(&c, &r.tab, L, 3, NULL, (const float *const *)tau, quad_fn, &q, lam, out, NULL), AM_EINVAL);
    for (int k = 0; k < 3; k++) free(tau[k]);
    free(target); free(a); free(out);
    fx_free(&r.fx);
}

int main(void) {
    RUN(test_merge_data_fisher);
    RUN(test_merge_data_fisher_normalize);
    RUN(test_merge_data_regmean);
    RUN(test_merge_data_lm_cocktail);
    RUN(test_merge_data_fusion);
    RUN(test_merge_data_simplex);
    RUN(test_merge_data_self_positioning);
    return test_report();
}
