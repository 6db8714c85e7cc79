/* test_loss.c - src/train against PyTorch fixtures and finite differences: every loss and its
 * gradient, LossSpec composition (Matryoshka, Starbucks 2D, random 2DMSE), the MLM head and
 * masking, AdamW + schedules + clipping, LoRA forward/backward/merge.
 *
 * Fixtures: tests/ref/train/{losses,mlm_head,adamw,lora}.bin made by gen_fixture.py (README). */
#include "harness.h"
#include "fixture.h"
#include "am_base.h"
#include "encoder.h"
#include "lora.h"
#include "loss.h"
#include "mlm.h"
#include "model.h"
#include "optim.h"
#include "tensor.h"

#include <stdint.h>

#define REL_TOL 1e-4

/* ------------------------------------------------------------------ fixture reader (AMFX v1) */

/* fixtures live in tests/ref/train/ */
static int fx_load_train(Fixture *fx, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/ref/train/%s", AM_TEST_DIR, name);
    return fx_load(fx, path);
}

static const float *fx_f32(const Fixture *fx, const char *name, size_t *n) {
    const FxArray *a = fx_get(fx, name);
    if (!a || a->dtype != 0) { printf("  fixture: %s missing\n", name); return NULL; }
    if (n) *n = a->n;
    return a->data;
}
static float fx_scalar(const Fixture *fx, const char *name) {
    const float *x = fx_f32(fx, name, NULL);
    return x ? x[0] : NAN;
}

/* relative error check with a printout on failure */
static int check_rel(const char *what, const float *got, const float *want, size_t n, double tol) {
    double e = rel_err(got, want, n);
    if (!(e <= tol)) {
        size_t worst = 0;
        double wd = -1;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - (double)want[i]);
            if (d > wd || d != d) { wd = d; worst = i; }
        }
        printf("  %s: rel err %.3g > %.1g (worst [%zu]: got %.9g want %.9g)\n", what, e, tol, worst,
               (double)got[worst], (double)want[worst]);
        return 0;
    }
    return 1;
}
#define CHECK_REL(what, got, want, n) do { if (!check_rel(what, got, want, n, REL_TOL)) { t_cur_failed++; \
        printf("  %s:%d: %s\n", __FILE__, __LINE__, t_cur_name); } } while (0)
#define CHECK_SCALAR(what, got, want) do { double _g = (got), _w = (want); \
        if (!(fabs(_g - _w) <= REL_TOL * fmax(fabs(_w), 1e-6))) { t_cur_failed++; \
        printf("  %s:%d: %s: %s = %.9g, want %.9g\n", __FILE__, __LINE__, t_cur_name, what, _g, _w); } } while (0)

static Fixture g_loss;
static int g_loss_ok;

/* ------------------------------------------------------------------ losses vs PyTorch */

static LossInput input(const char *emb, int n, int P, int K, int dim, const float *gold, size_t *rows) {
    size_t cnt;
    const float *e = fx_f32(&g_loss, emb, &cnt);
    int ld = (int)(cnt / (size_t)(n * (1 + P + K)));
    if (rows) *rows = cnt;
    return (LossInput){ e, ld, dim ? dim : ld, n, P, K, gold, NULL };
}

static InfoNCEOptions inf_opts(float scale, int sim, int sym, int mode) {
    LossSpec s;
    loss_spec_default(&s, AM_LOSS_INFONCE);
    s.infonce.scale = scale;
    s.infonce.sim = sim;
    s.infonce.symmetric = sym;
    s.infonce.multi_pos = mode;
    return s.infonce;
}

static void check_infonce(const char *name, const char *emb, int n, int P, int K, InfoNCEOptions o) {
    size_t cnt;
    LossInput in = input(emb, n, P, K, 0, NULL, &cnt);
    char key[64];
    snprintf(key, sizeof key, "%s.loss", name);
    CHECK_SCALAR(name, infonce_forward(&in, &o), fx_scalar(&g_loss, key));
    float *g = xcalloc(cnt, sizeof(float));
    infonce_backward(g, &in, &o, 1.0);
    snprintf(key, sizeof key, "%s.grad0", name);
    const float *want = fx_f32(&g_loss, key, NULL);
    if (want) CHECK_REL(name, g, want, cnt);
    else CHECK(0);
    free(g);
}

TEST(infonce_matches_pytorch) {
    if (!g_loss_ok) { CHECK(g_loss_ok); return; }
    check_infonce("infA", "A.emb", 5, 1, 0, inf_opts(20, AM_SIM_COS, 0, AM_MULTIPOS_AVG));
    check_infonce("infA_sym", "A.emb", 5, 1, 0, inf_opts(20, AM_SIM_COS, 1, AM_MULTIPOS_AVG));
    check_infonce("infA_dot", "A.emb", 5, 1, 0, inf_opts(0.5f, AM_SIM_DOT, 0, AM_MULTIPOS_AVG));
    check_infonce("infB_avg", "B.emb", 4, 2, 2, inf_opts(20, AM_SIM_COS, 0, AM_MULTIPOS_AVG));
    check_infonce("infB_avg_sym", "B.emb", 4, 2, 2, inf_opts(20, AM_SIM_COS, 1, AM_MULTIPOS_AVG));
    check_infonce("infB_lse", "B.emb", 4, 2, 2, inf_opts(20, AM_SIM_COS, 0, AM_MULTIPOS_LSE));
    check_infonce("infH", "H.emb", 4, 1, 3, inf_opts(20, AM_SIM_COS, 0, AM_MULTIPOS_AVG));
    check_infonce("infH_sym", "H.emb", 4, 1, 3, inf_opts(20, AM_SIM_COS, 1, AM_MULTIPOS_AVG));
}

typedef double (*PairFwd)(const LossInput *in, const void *o);
static double fw_cosent(const LossInput *in, const void *o) { (void)o; CoSENTOptions c = { 20, AM_SIM_COS }; return cosent_forward(in, &c); }
static void bw_cosent(float *g, const LossInput *in) { CoSENTOptions c = { 20, AM_SIM_COS }; cosent_backward(g, in, &c, 1.0); }
static double fw_pearson(const LossInput *in, const void *o) { (void)o; return pearson_forward(in, AM_SIM_COS); }
static void bw_pearson(float *g, const LossInput *in) { pearson_backward(g, in, AM_SIM_COS, 1.0); }
static double fw_rankkl(const LossInput *in, const void *o) { (void)o; return rankkl_forward(in, AM_SIM_COS, 0.05f); }
static void bw_rankkl(float *g, const LossInput *in) { rankkl_backward(g, in, AM_SIM_COS, 0.05f, 1.0); }
static double fw_pro(const LossInput *in, const void *o) { (void)o; return pro_forward(in, AM_SIM_COS, 0.05f, 1e-8f); }
static void bw_pro(float *g, const LossInput *in) { pro_backward(g, in, AM_SIM_COS, 0.05f, 1e-8f, 1.0); }

TEST(sts_losses_match_pytorch) {
    if (!g_loss_ok) { CHECK(g_loss_ok); return; }
    const float *gold = fx_f32(&g_loss, "G.gold", NULL);
    size_t cnt;
    LossInput in = input("G.emb", 8, 1, 0, 0, gold, &cnt);
    struct { const char *name; PairFwd fw; void (*bw)(float *, const LossInput *); } cases[] = {
        { "cosent", fw_cosent, bw_cosent }, { "pearson", fw_pearson, bw_pearson },
        { "rankkl", fw_rankkl, bw_rankkl }, { "pro", fw_pro, bw_pro },
    };
    float *g = xmalloc(cnt * sizeof(float));
    char key[64];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(key, sizeof key, "%s.loss", cases[k].name);
        CHECK_SCALAR(cases[k].name, cases[k].fw(&in, NULL), fx_scalar(&g_loss, key));
        memset(g, 0, cnt * sizeof(float));
        cases[k].bw(g, &in);
        snprintf(key, sizeof key, "%s.grad0", cases[k].name);
        const float *want = fx_f32(&g_loss, key, NULL);
        if (want) CHECK_REL(cases[k].name, g, want, cnt);
    }
    /* L_mid: InfoNCE with T 0.02 and the gold threshold 1.0 on the middle layer */
    LossSpec s;
    loss_spec_default(&s, AM_LOSS_CODIEMB_STS);
    LossInput mid = input("G.mid", 8, 1, 0, 0, gold, NULL);
    /* gold 0..5 here: the default relative threshold 0.2 of the range is CoDiEmb's 1.0 */
    CHECK_NEAR(loss_codiemb_mid_threshold(&s.codiemb, gold, 8), 1.0, 1e-6);
    InfoNCEOptions mo = s.codiemb.mid;
    mo.threshold = 1.0f;
    CHECK_SCALAR("mid", infonce_forward(&mid, &mo), fx_scalar(&g_loss, "mid.loss"));
    memset(g, 0, cnt * sizeof(float));
    infonce_backward(g, &mid, &mo, 1.0);
    CHECK_REL("mid", g, fx_f32(&g_loss, "mid.grad0", NULL), cnt);
    /* the composite */
    LossResult terms = { 0 };
    double v = codiemb_sts_forward(&in, &mid, &s.codiemb, &terms);
    CHECK_SCALAR("codiemb", v, fx_scalar(&g_loss, "codiemb.loss"));
    CHECK_EQ_INT(terms.n_terms, 4);
    double sum = 0;
    for (int k = 0; k < terms.n_terms; k++) sum += terms.term[k].value;
    CHECK_NEAR(sum, v, 1e-9);
    float *gm = xcalloc(cnt, sizeof(float));
    memset(g, 0, cnt * sizeof(float));
    codiemb_sts_backward(g, gm, &in, &mid, &s.codiemb, 1.0);
    CHECK_REL("codiemb last", g, fx_f32(&g_loss, "codiemb.grad0", NULL), cnt);
    CHECK_REL("codiemb mid", gm, fx_f32(&g_loss, "codiemb.grad1", NULL), cnt);
    free(gm);
    free(g);
}

TEST(kl_matches_pytorch) {
    if (!g_loss_ok) { CHECK(g_loss_ok); return; }
    size_t cs;
    LossInput te = input("K.teacher", 4, 1, 3, 0, NULL, NULL), st = input("K.student", 4, 1, 3, 0, NULL, &cs);
    float *g = xcalloc(cs, sizeof(float));
    /* the fixture's variants: teacher detached; scores T 0.05; embeddings normalised, T 0.3 */
    KLOptions ks = { .mode = AM_KL_SCORES, .weight = 1, .temperature = 0.05f, .detach = 1 };
    KLOptions ke = { .mode = AM_KL_EMBEDDINGS, .weight = 1, .temperature = 0.3f, .detach = 1, .normalize = 1 };
    CHECK_SCALAR("kl scores", kl_forward(&te, &st, AM_SIM_COS, &ks), fx_scalar(&g_loss, "kl_scores.loss"));
    kl_backward(NULL, g, &te, &st, AM_SIM_COS, &ks, 1.0);
    CHECK_REL("kl scores", g, fx_f32(&g_loss, "kl_scores.grad0", NULL), cs);
    memset(g, 0, cs * sizeof(float));
    CHECK_SCALAR("kl emb", kl_forward(&te, &st, AM_SIM_COS, &ke), fx_scalar(&g_loss, "kl_emb.loss"));
    kl_backward(NULL, g, &te, &st, AM_SIM_COS, &ke, 1.0);
    CHECK_REL("kl emb", g, fx_f32(&g_loss, "kl_emb.grad0", NULL), cs);
    free(g);
}

TEST(matryoshka_and_starbucks_match_pytorch) {
    if (!g_loss_ok) { CHECK(g_loss_ok); return; }
    /* Matryoshka over 8, 16, 24 with weights 1, 0.5, 2 around InfoNCE */
    LossSpec inner, mrl;
    loss_spec_default(&inner, AM_LOSS_INFONCE);
    loss_spec_default(&mrl, AM_LOSS_MATRYOSHKA);
    mrl.inner = &inner;
    mrl.mrl.n_dims = 3;
    int dims[3] = { 8, 16, 24 };
    float w[3] = { 1, 0.5f, 2 };
    for (int k = 0; k < 3; k++) { mrl.mrl.dims[k] = dims[k]; mrl.mrl.weights[k] = w[k]; }
    size_t cnt;
    LossViews v;
    memset(&v, 0, sizeof v);
    v.emb[0] = fx_f32(&g_loss, "A.emb", &cnt);
    float *g0 = xcalloc(cnt, sizeof(float));
    v.demb[0] = g0;
    v.L = 0; v.C = 24; v.n = 5; v.n_pos = 1; v.n_neg = 0;
    LossResult res;
    CHECK_OK(loss_eval(&mrl, &v, 1.0, &res));
    CHECK_SCALAR("mrl", res.total, fx_scalar(&g_loss, "mrl.loss"));
    CHECK_EQ_INT(res.n_terms, 3);
    CHECK(strcmp(res.term[0].name, "d8/infonce") == 0);
    CHECK_REL("mrl", g0, fx_f32(&g_loss, "mrl.grad0", NULL), cnt);
    free(g0);

    /* Starbucks, fixed pairs (1,8) (1,16) (2,16) (2,24), InfoNCE + KL on scores */
    LossSpec sb;
    loss_spec_default(&sb, AM_LOSS_STARBUCKS);
    sb.inner = &inner;
    int ls[4] = { 1, 1, 2, 2 }, ds[4] = { 8, 16, 16, 24 };
    sb.m2d.n_pairs = 4;
    for (int k = 0; k < 4; k++) { sb.m2d.layers[k] = ls[k]; sb.m2d.dims[k] = ds[k]; }
    sb.m2d.kl = (KLOptions){ .mode = AM_KL_SCORES, .weight = 1, .temperature = 0.05f, .detach = 1 }; /* retrieval form */
    memset(&v, 0, sizeof v);
    float *gl[3];
    char key[64];
    for (int l = 0; l < 3; l++) {
        snprintf(key, sizeof key, "S.emb%d", l);
        v.emb[l] = fx_f32(&g_loss, key, &cnt);
        v.demb[l] = gl[l] = xcalloc(cnt, sizeof(float));
    }
    v.L = 2; v.C = 24; v.n = 4; v.n_pos = 1; v.n_neg = 1;
    uint8_t need[3];
    loss_spec_layers(&sb, 2, 24, 0, need);
    CHECK(!need[0] && need[1] && need[2]);
    CHECK_OK(loss_eval(&sb, &v, 1.0, &res));
    CHECK_SCALAR("starbucks", res.total, fx_scalar(&g_loss, "starbucks.loss"));
    CHECK_EQ_INT(res.n_terms, 7); /* 4 inner + 3 KL */
    for (int l = 0; l < 3; l++) {
        snprintf(key, sizeof key, "starbucks.grad%d", l);
        CHECK_REL(key, gl[l], fx_f32(&g_loss, key, NULL), cnt);
        free(gl[l]);
    }

    /* the same list around CoSENT on graded pairs, KL on embedding distributions */
    LossSpec cos;
    loss_spec_default(&cos, AM_LOSS_COSENT);
    sb.inner = &cos;
    sb.m2d.kl = (KLOptions){ .mode = AM_KL_EMBEDDINGS, .weight = 0.3f, .temperature = 0.3f, .detach = 1, .normalize = 1 };
    memset(&v, 0, sizeof v);
    for (int l = 0; l < 3; l++) {
        snprintf(key, sizeof key, "SG.emb%d", l);
        v.emb[l] = fx_f32(&g_loss, key, &cnt);
        v.demb[l] = gl[l] = xcalloc(cnt, sizeof(float));
    }
    v.L = 2; v.C = 24; v.n = 8; v.n_pos = 1; v.n_neg = 0;
    v.gold = fx_f32(&g_loss, "G.gold", NULL);
    CHECK_OK(loss_eval(&sb, &v, 1.0, &res));
    CHECK_SCALAR("starbucks_cosent", res.total, fx_scalar(&g_loss, "starbucks_cosent.loss"));
    for (int l = 0; l < 3; l++) {
        snprintf(key, sizeof key, "starbucks_cosent.grad%d", l);
        CHECK_REL(key, gl[l], fx_f32(&g_loss, key, NULL), cnt);
        free(gl[l]);
    }
}

/* ------------------------------------------------------------------ finite differences */

typedef struct {
    const LossSpec *spec;
    LossViews v;
    int L, C, R;
} FdCase;

static double fd_loss(FdCase *c) {
    LossViews v = c->v;
    for (int l = 0; l <= c->L; l++) v.demb[l] = NULL;
    LossResult r;
    int rc = loss_eval(c->spec, &v, 1.0, &r);
    AM_ASSERT(rc == AM_OK);
    return r.total;
}

/* analytic vs central differences on every input element (sampled for big inputs) of layers
 * 0..top (the KL teacher, layer L, is detached: its finite difference differs by design) */
static double fd_check(const LossSpec *spec, float **emb, int L, int C, int n, int P, int K, const float *gold,
                       uint64_t seed, int top) {
    FdCase c;
    memset(&c, 0, sizeof c);
    c.spec = spec;
    c.L = L;
    c.C = C;
    c.R = n * (1 + P + K);
    c.v.L = L; c.v.C = C; c.v.n = n; c.v.n_pos = P; c.v.n_neg = K; c.v.gold = gold; c.v.seed = seed;
    float *grad[AM_MAX_LAYERS + 1] = { 0 };
    for (int l = 0; l <= L; l++) {
        c.v.emb[l] = emb[l];
        grad[l] = xcalloc((size_t)c.R * C, sizeof(float));
        c.v.demb[l] = grad[l];
    }
    LossResult r;
    int rc = loss_eval(spec, &c.v, 1.0, &r);
    AM_ASSERT(rc == AM_OK);
    double worst = 0, gmax = 0;
    for (int l = 0; l <= L; l++)
        for (int i = 0; i < c.R * C; i++) gmax = fmax(gmax, fabs((double)grad[l][i]));
    for (int l = 0; l <= top; l++)
        for (int i = 0; i < c.R * C; i += 1 + (c.R * C) / 150) {
            float *x = &emb[l][i], x0 = *x;
            const float h = 1e-3f * fmaxf(1.0f, fabsf(x0));
            *x = x0 + h;
            double fp = fd_loss(&c);
            float hp = *x - x0;
            *x = x0 - h;
            double fm = fd_loss(&c);
            float hm = x0 - *x;
            *x = x0;
            double fd = (fp - fm) / ((double)hp + (double)hm);
            double err = fabs(fd - (double)grad[l][i]);
            worst = fmax(worst, err);
        }
    for (int l = 0; l <= L; l++) free(grad[l]);
    return worst / fmax(gmax, 1e-6);
}

static float *rand_mat(AmRng *r, size_t n, float s) {
    float *x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = s * am_rng_normal(r);
    return x;
}

TEST(finite_differences_every_loss) {
    AmRng rng;
    am_rng_seed(&rng, 7);
    const int C = 12, L = 2;
    float gold[6] = { 3.0f, 0.5f, 2.0f, 2.0f, 4.5f, 1.0f };
    struct { int kind, n, P, K, graded, sym, mode, sim; float scale; const char *what; } cases[] = {
        { AM_LOSS_INFONCE, 4, 1, 0, 0, 0, AM_MULTIPOS_AVG, AM_SIM_COS, 5, "infonce" },
        { AM_LOSS_INFONCE, 3, 2, 2, 0, 1, AM_MULTIPOS_AVG, AM_SIM_COS, 5, "infonce P2 K2 sym" },
        { AM_LOSS_INFONCE, 3, 2, 1, 0, 1, AM_MULTIPOS_LSE, AM_SIM_COS, 5, "infonce lse sym" },
        { AM_LOSS_INFONCE, 4, 1, 2, 0, 0, AM_MULTIPOS_AVG, AM_SIM_DOT, 0.3f, "infonce dot" },
        { AM_LOSS_INFONCE, 6, 1, 0, 1, 0, AM_MULTIPOS_AVG, AM_SIM_COS, 5, "infonce threshold" },
        { AM_LOSS_COSENT, 6, 1, 0, 1, 0, 0, AM_SIM_COS, 5, "cosent" },
        { AM_LOSS_CODIEMB_STS, 6, 1, 0, 1, 0, 0, AM_SIM_COS, 0, "codiemb" },
        { AM_LOSS_ENTROPY, 4, 1, 0, 0, 0, 0, AM_SIM_COS, 5, "entropy" },
        { AM_LOSS_ENTROPY, 3, 2, 2, 0, 0, 0, AM_SIM_DOT, 0.3f, "entropy P2 K2 dot" },
        { AM_LOSS_ENTROPY, 6, 1, 0, 1, 0, 0, AM_SIM_COS, 5, "entropy graded (gold ignored)" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        LossSpec s;
        loss_spec_default(&s, cases[k].kind);
        s.infonce.scale = cases[k].scale;
        s.infonce.sim = cases[k].sim;
        s.infonce.symmetric = cases[k].sym;
        s.infonce.multi_pos = cases[k].mode;
        if (cases[k].graded && cases[k].kind == AM_LOSS_INFONCE) s.infonce.threshold = 1.5f;
        s.cosent.scale = cases[k].scale;
        s.entropy.scale = cases[k].scale;
        s.entropy.sim = cases[k].sim;
        s.codiemb.pro_temperature = s.codiemb.rankkl_temperature = 0.5f; /* smoother for FD */
        s.codiemb.mid.scale = 5;
        s.codiemb.mid.threshold = 1.5f;
        const int R = cases[k].n * (1 + cases[k].P + cases[k].K);
        float *emb[3];
        for (int l = 0; l <= L; l++) emb[l] = rand_mat(&rng, (size_t)R * C, 1.0f);
        double e = fd_check(&s, emb, L, C, cases[k].n, cases[k].P, cases[k].K, cases[k].graded ? gold : NULL, 1, L);
        CHECKF(e < 2e-3, "%s: finite-difference rel err %.3g", cases[k].what, e);
        for (int l = 0; l <= L; l++) free(emb[l]);
    }
    /* composed: Matryoshka(InfoNCE), Starbucks(InfoNCE, KL scores), Starbucks(CoSENT, KL emb),
     * random 2DMSE(CoDiEmb) */
    LossSpec inner, cos, cod, mrl, sb, sbc, r2;
    loss_spec_default(&inner, AM_LOSS_INFONCE);
    inner.infonce.scale = 5;
    loss_spec_default(&cos, AM_LOSS_COSENT);
    cos.cosent.scale = 5;
    loss_spec_default(&cod, AM_LOSS_CODIEMB_STS);
    cod.codiemb.pro_temperature = cod.codiemb.rankkl_temperature = 0.5f;
    cod.codiemb.mid.scale = 5;
    cod.codiemb.mid.threshold = 1.5f;
    loss_spec_default(&mrl, AM_LOSS_MATRYOSHKA);
    mrl.inner = &inner;
    mrl.mrl.n_dims = 3;
    mrl.mrl.dims[0] = 4; mrl.mrl.dims[1] = 8; mrl.mrl.dims[2] = 0; mrl.mrl.weights[1] = 0.5f;
    loss_spec_default(&sb, AM_LOSS_STARBUCKS);
    sb.inner = &inner;
    sb.m2d.n_pairs = 3;
    sb.m2d.layers[0] = 1; sb.m2d.dims[0] = 4;
    sb.m2d.layers[1] = 1; sb.m2d.dims[1] = 8;
    sb.m2d.layers[2] = 2; sb.m2d.dims[2] = 12;
    sb.m2d.kl = (KLOptions){ .mode = AM_KL_SCORES, .weight = 1, .temperature = 0.5f, .detach = 1 };
    sbc = sb;
    sbc.inner = &cos;
    sbc.m2d.kl = (KLOptions){ .mode = AM_KL_EMBEDDINGS, .weight = 1, .temperature = 0.5f, .detach = 1, .normalize = 1 };
    loss_spec_default(&r2, AM_LOSS_RANDOM_2D);
    r2.inner = &cod;
    r2.m2d.kl = (KLOptions){ .mode = AM_KL_SCORES, .weight = 1, .temperature = 0.5f, .detach = 1 };
    r2.m2d.random_full_dim = 0;
    r2.m2d.n_dims = 2;
    r2.m2d.sample_dims[0] = 4;
    r2.m2d.sample_dims[1] = 8;
    struct { const LossSpec *s; int n, P, K, graded; const char *what; } comp[] = {
        { &mrl, 4, 1, 1, 0, "matryoshka" }, { &sb, 4, 1, 1, 0, "starbucks" },
        { &sbc, 6, 1, 0, 1, "starbucks cosent kl-emb" }, { &r2, 6, 1, 0, 1, "random 2d codiemb" },
    };
    for (size_t k = 0; k < sizeof comp / sizeof comp[0]; k++) {
        const int R = comp[k].n * (1 + comp[k].P + comp[k].K);
        float *emb[3];
        for (int l = 0; l <= L; l++) emb[l] = rand_mat(&rng, (size_t)R * C, 1.0f);
        const float *gd = comp[k].graded ? gold : NULL;
        double e = fd_check(comp[k].s, emb, L, C, comp[k].n, comp[k].P, comp[k].K, gd, 3, L - 1);
        CHECKF(e < 2e-3, "%s: finite-difference rel err %.3g (layers < L)", comp[k].what, e);
        LossSpec nokl = *comp[k].s; /* without the KL term the full layer is an ordinary input */
        nokl.m2d.kl.weight = 0;
        e = fd_check(&nokl, emb, L, C, comp[k].n, comp[k].P, comp[k].K, gd, 3, L);
        CHECKF(e < 2e-3, "%s without KL: finite-difference rel err %.3g", comp[k].what, e);
        for (int l = 0; l <= L; l++) free(emb[l]);
    }
}

/* AdaMerging's softmax_entropy on in-batch similarities: a hand-computed 2 x 2 case, log M for
 * identical candidates, ~0 for a confident query, and padding (cand = 0) left out */
TEST(entropy_values) {
    LossSpec s;
    loss_spec_default(&s, AM_LOSS_ENTROPY);
    CHECK_EQ_INT(loss_kind_from_name("entropy"), AM_LOSS_ENTROPY);
    CHECK(strcmp(loss_kind_name(AM_LOSS_ENTROPY), "entropy") == 0);
    CHECK_NEAR(s.entropy.scale, 20.0, 1e-6);
    EntropyOptions o = { 2.0f, AM_SIM_DOT };
    /* q1 = (1,0), q2 = (0,1); candidates c1 = (1,0), c2 = (0,0): logits q1 (2, 0), q2 (0, 0) */
    float e[8] = { 1, 0, 0, 1, 1, 0, 0, 0 };
    LossInput in = { e, 2, 2, 2, 1, 0, NULL, NULL };
    double p = 1 / (1 + exp(-2.0)), h1 = -(p * log(p) + (1 - p) * log(1 - p)), h2 = log(2.0);
    CHECK_NEAR(entropy_forward(&in, &o), (h1 + h2) / 2, 1e-12);
    /* four identical candidates: log 4 whatever the scale */
    float same[2 * 5 * 3];
    for (int i = 0; i < 10; i++) { same[3 * i] = 1; same[3 * i + 1] = 0.5f; same[3 * i + 2] = -1; }
    LossInput in2 = { same, 3, 3, 2, 1, 1, NULL, NULL };
    EntropyOptions oc = { 20.0f, AM_SIM_COS };
    CHECK_NEAR(entropy_forward(&in2, &oc), log(4.0), 1e-9);
    /* padding: a candidate row marked 0 is in nobody's softmax (3 real of 4: log 3) */
    uint8_t cand[4] = { 1, 1, 0, 1 };
    in2.cand = cand;
    CHECK_NEAR(entropy_forward(&in2, &oc), log(3.0), 1e-9);
    /* a confident query (large scale, one matching candidate): entropy near 0 */
    float conf[8] = { 1, 0, 0, 1, 1, 0, 0, 1 };
    LossInput in3 = { conf, 2, 2, 2, 1, 0, NULL, NULL };
    EntropyOptions big = { 50.0f, AM_SIM_COS };
    CHECK(entropy_forward(&in3, &big) < 1e-18);
    /* the spec check: scale must be > 0; gold scores are allowed (ignored) */
    s.entropy.scale = 0;
    CHECK_EQ_INT(loss_spec_check(&s, 2, 4, 2, 1, 0, 1), AM_EINVAL);
    s.entropy.scale = 20;
    CHECK_OK(loss_spec_check(&s, 2, 4, 2, 1, 0, 1));
}

TEST(random_2d_is_full_plus_drawn_view) {
    /* RANDOM_2D == ST Matryoshka2dLoss: inner(L, drawn d_f) + inner(l, drawn d_s) / l
     * + 0.3 · KL(softmax(raw e_L / 0.3) ‖ softmax(raw e_l / 0.3)) over all C features */
    AmRng rng;
    am_rng_seed(&rng, 11);
    const int L = 3, C = 16, n = 4, R = 8;
    float *emb[4];
    for (int l = 0; l <= L; l++) emb[l] = rand_mat(&rng, (size_t)R * C, 1.0f);
    LossSpec inner, r2;
    loss_spec_default(&inner, AM_LOSS_INFONCE);
    loss_spec_default(&r2, AM_LOSS_RANDOM_2D);
    r2.inner = &inner;
    r2.m2d.n_dims = 2;
    r2.m2d.sample_dims[0] = 8;
    r2.m2d.sample_dims[1] = 16;
    int seen_layers[4] = { 0 }, seen_full[17] = { 0 };
    for (uint64_t seed = 0; seed < 40; seed++) {
        LossViews v;
        memset(&v, 0, sizeof v);
        for (int l = 0; l <= L; l++) v.emb[l] = emb[l];
        v.L = L; v.C = C; v.n = n; v.n_pos = 1; v.n_neg = 0; v.seed = seed;
        uint8_t need[4];
        loss_spec_layers(&r2, L, C, seed, need);
        int drawn = -1;
        for (int l = 0; l < L; l++) if (need[l]) drawn = l;
        CHECK(need[L] && drawn >= 1 && drawn <= L - 1);
        LossResult res;
        CHECK_OK(loss_eval(&r2, &v, 1.0, &res));
        CHECK_EQ_INT(res.n_terms, 3);
        int fl = 0, fd = 0, dl = 0, dd = 0;
        CHECK(sscanf(res.term[0].name, "l%dd%d/", &fl, &fd) == 2);
        CHECK(sscanf(res.term[1].name, "l%dd%d/", &dl, &dd) == 2);
        CHECK_EQ_INT(fl, L);
        CHECK_EQ_INT(dl, drawn);
        CHECK((dd == 8 || dd == 16) && (fd == 8 || fd == 16));
        if (dl < 1 || dl > L || (fd != 8 && fd != 16) || (dd != 8 && dd != 16)) continue;
        seen_layers[dl] = 1;
        seen_full[fd] = 1;
        LossInput full = { emb[L], C, fd, n, 1, 0, NULL, NULL }, sub = { emb[dl], C, dd, n, 1, 0, NULL, NULL };
        LossInput fullC = { emb[L], C, C, n, 1, 0, NULL, NULL }, subC = { emb[dl], C, C, n, 1, 0, NULL, NULL };
        KLOptions st_kl = { .mode = AM_KL_EMBEDDINGS, .weight = 0.3f, .temperature = 0.3f };
        double want = infonce_forward(&full, &inner.infonce) + infonce_forward(&sub, &inner.infonce) / dl +
                      0.3 * kl_forward(&fullC, &subC, AM_SIM_COS, &st_kl);
        CHECK_NEAR(res.total, want, 1e-6);
    }
    CHECK(seen_layers[1] && seen_layers[2]);
    CHECK(seen_full[8] && seen_full[16]); /* the last layer's dim is drawn too */
    /* one layer: no prior layer, only the last layer's term */
    LossViews v1;
    memset(&v1, 0, sizeof v1);
    v1.emb[1] = emb[1];
    v1.L = 1; v1.C = C; v1.n = n; v1.n_pos = 1;
    LossResult r1;
    CHECK_OK(loss_eval(&r2, &v1, 1.0, &r1));
    CHECK_EQ_INT(r1.n_terms, 1);
    for (int l = 0; l <= L; l++) free(emb[l]);
}

TEST(matryoshka_dims_per_step) {
    AmRng rng;
    am_rng_seed(&rng, 12);
    const int C = 16, n = 4, R = 8;
    float *e = rand_mat(&rng, (size_t)R * C, 1.0f);
    LossSpec inner, mrl;
    loss_spec_default(&inner, AM_LOSS_INFONCE);
    loss_spec_default(&mrl, AM_LOSS_MATRYOSHKA);
    mrl.inner = &inner;
    mrl.mrl.n_dims = 3;
    mrl.mrl.dims[0] = 4; mrl.mrl.dims[1] = 8; mrl.mrl.dims[2] = 16;
    mrl.mrl.weights[0] = 1; mrl.mrl.weights[1] = 2; mrl.mrl.weights[2] = 3;
    mrl.mrl.n_dims_per_step = 1;
    int seen[17] = { 0 };
    for (uint64_t seed = 0; seed < 30; seed++) {
        LossViews v;
        memset(&v, 0, sizeof v);
        v.emb[0] = e;
        v.C = C; v.n = n; v.n_pos = 1; v.seed = seed;
        LossResult r;
        CHECK_OK(loss_eval(&mrl, &v, 1.0, &r));
        CHECK_EQ_INT(r.n_terms, 1);
        int d = 0;
        CHECK(sscanf(r.term[0].name, "d%d/", &d) == 1 && (d == 4 || d == 8 || d == 16));
        if (d < 1 || d > 16) continue;
        seen[d] = 1;
        LossInput in = { e, C, d, n, 1, 0, NULL, NULL };
        CHECK_NEAR(r.total, (d == 4 ? 1 : d == 8 ? 2 : 3) * infonce_forward(&in, &inner.infonce), 1e-9);
    }
    CHECK(seen[4] && seen[8] && seen[16]);
    free(e);
}

TEST(spec_defaults_and_errors) {
    int ls[16], ds[16];
    int n = loss_default_pairs(2, 128, ls, ds, 16);
    CHECK_EQ_INT(n, 4);
    CHECK(ls[0] == 1 && ds[0] == 32 && ls[1] == 1 && ds[1] == 64 && ls[2] == 2 && ds[2] == 64 && ls[3] == 2 && ds[3] == 128);
    n = loss_default_pairs(12, 768, ls, ds, 16);
    CHECK_EQ_INT(n, 6);
    CHECK(ls[0] == 2 && ds[0] == 32 && ls[5] == 12 && ds[5] == 768 && ls[2] == 6 && ds[2] == 128);
    n = loss_default_pairs(4, 256, ls, ds, 16);
    CHECK(n == 4 && ls[0] == 1 && ds[0] == 32 && ls[3] == 4 && ds[3] == 256);
    for (int k = 1; k < n; k++) CHECK(ls[k] >= ls[k - 1] && ds[k] >= ds[k - 1]);
    CHECK_EQ_INT(loss_kind_from_name("starbucks"), AM_LOSS_STARBUCKS);
    CHECK(loss_kind_from_name("nope") == -1);
    CHECK(strcmp(loss_kind_name(AM_LOSS_CODIEMB_STS), "codiemb_sts") == 0);
    LossSpec s, in;
    loss_spec_default(&s, AM_LOSS_COSENT);
    CHECK_EQ_INT(loss_spec_check(&s, 2, 64, 8, 1, 0, 0), AM_EINVAL); /* no gold */
    CHECK(strstr(am_lasterror(), "graded") != NULL);
    CHECK_OK(loss_spec_check(&s, 2, 64, 8, 1, 0, 1));
    CHECK_EQ_INT(loss_spec_check(&s, 2, 64, 8, 1, 2, 1), AM_EINVAL); /* hard negatives */
    loss_spec_default(&s, AM_LOSS_MATRYOSHKA);
    CHECK_EQ_INT(loss_spec_check(&s, 2, 64, 8, 1, 0, 0), AM_EINVAL); /* no inner */
    loss_spec_default(&in, AM_LOSS_INFONCE);
    s.inner = &in;
    s.mrl.n_dims = 1;
    s.mrl.dims[0] = 65;
    CHECK_EQ_INT(loss_spec_check(&s, 2, 64, 8, 1, 0, 0), AM_EINVAL);
    s.mrl.dims[0] = 32;
    CHECK_OK(loss_spec_check(&s, 2, 64, 8, 1, 0, 0));
    loss_spec_default(&s, AM_LOSS_STARBUCKS);
    s.inner = &in;
    s.m2d.n_pairs = 1;
    s.m2d.layers[0] = 3;
    s.m2d.dims[0] = 32;
    CHECK_EQ_INT(loss_spec_check(&s, 2, 64, 8, 1, 0, 0), AM_EINVAL); /* layer 3 > L */
    loss_spec_default(&s, AM_LOSS_MLM);
    CHECK_EQ_INT(loss_spec_check(&s, 2, 64, 8, 1, 0, 0), AM_EINVAL); /* mask id unset */
    s.mlm.mask_token_id = 4;
    CHECK_OK(loss_spec_check(&s, 2, 64, 8, 1, 0, 0));
    LossSpec m2;
    loss_spec_default(&m2, AM_LOSS_MATRYOSHKA);
    m2.inner = &s;
    CHECK_EQ_INT(loss_spec_check(&m2, 2, 64, 8, 1, 0, 0), AM_EINVAL); /* mlm inside */
    /* loss_eval reports a missing layer */
    LossViews v;
    memset(&v, 0, sizeof v);
    v.L = 2; v.C = 8; v.n = 2; v.n_pos = 1;
    float e[32] = { 0 };
    for (int i = 0; i < 32; i++) e[i] = (float)((i * 7) % 5) - 2.0f;
    v.emb[1] = e;
    LossResult r;
    CHECK_EQ_INT(loss_eval(&in, &v, 1.0, &r), AM_EINVAL);
    v.emb[2] = e;
    CHECK_OK(loss_eval(&in, &v, 1.0, &r));
    CHECK(isfinite(r.total));
}

/* ------------------------------------------------------------------ MLM */

TEST(mlm_head_matches_pytorch) {
    Fixture fx;
    int rc = fx_load_train(&fx, "mlm_head.bin");
    CHECK_EQ_INT(rc, 0);
    if (rc) return;
    const int32_t *cfgv = fx_get(&fx, "config")->data;
    const int V = cfgv[0], C = cfgv[1], N = cfgv[2];
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.vocab_size = V; cfg.hidden_size = C; cfg.num_layers = 1; cfg.num_heads = 2; cfg.intermediate_size = 8;
    cfg.max_position = 8; cfg.has_pooler = 0; cfg.has_mlm_head = 1;
    Model *m;
    CHECK_OK(model_new(&cfg, &m));
    CHECK(param_table_find(&m->tab, "cls.predictions.transform.dense.weight") != NULL);
    CHECK(param_table_find(&m->tab, "cls.predictions.bias")->numel == (size_t)V);
    CHECK(m->p.mlmw && m->p.mlmbias);
    /* the head sits after everything else: the encoder's offsets do not move */
    CHECK(param_table_find(&m->tab, "cls.predictions.transform.dense.weight")->offset ==
          param_table_find(&m->tab, "encoder.layer.0.output.LayerNorm.bias")->offset + (size_t)C);
    struct { const char *fx; float *dst; size_t n; } io[] = {
        { "in.dense.weight", m->p.mlmw, (size_t)C * C }, { "in.dense.bias", m->p.mlmb, (size_t)C },
        { "in.ln.weight", m->p.mlmlnw, (size_t)C }, { "in.ln.bias", m->p.mlmlnb, (size_t)C },
        { "in.wte", m->p.wte, (size_t)V * C }, { "in.bias", m->p.mlmbias, (size_t)V },
    };
    for (size_t k = 0; k < sizeof io / sizeof io[0]; k++) memcpy(io[k].dst, fx_f32(&fx, io[k].fx, NULL), io[k].n * 4);
    const float *hidden = fx_f32(&fx, "in.hidden", NULL);
    const int32_t *labels = fx_get(&fx, "labels")->data;
    float *grads = xcalloc(m->tab.total, sizeof(float)), *dh = xcalloc((size_t)N * C, sizeof(float));
    MlmHead *h;
    mlm_head_new(&h);
    MlmStats st;
    CHECK_OK(mlm_head_forward(h, m, hidden, labels, N, &st));
    CHECK_EQ_INT(st.n_masked, 7);
    CHECK_SCALAR("mlm loss", st.loss, fx_scalar(&fx, "loss"));
    CHECK_OK(mlm_head_backward(h, dh, grads, 1.0f, 1));
    CHECK_REL("d hidden", dh, fx_f32(&fx, "grad.hidden", NULL), (size_t)N * C);
    ParameterTensors g;
    param_tensors_point(&g, &m->tab, &m->cfg, grads);
    CHECK_REL("d dense.weight", g.mlmw, fx_f32(&fx, "grad.dense.weight", NULL), (size_t)C * C);
    CHECK_REL("d dense.bias", g.mlmb, fx_f32(&fx, "grad.dense.bias", NULL), (size_t)C);
    CHECK_REL("d ln.weight", g.mlmlnw, fx_f32(&fx, "grad.ln.weight", NULL), (size_t)C);
    CHECK_REL("d ln.bias", g.mlmlnb, fx_f32(&fx, "grad.ln.bias", NULL), (size_t)C);
    CHECK_REL("d wte (tied decoder)", g.wte, fx_f32(&fx, "grad.wte", NULL), (size_t)V * C);
    CHECK_REL("d cls.predictions.bias", g.mlmbias, fx_f32(&fx, "grad.bias", NULL), (size_t)V);
    /* a second backward without a forward is refused */
    CHECK_EQ_INT(mlm_head_backward(h, dh, grads, 1.0f, 1), AM_EINVAL);
    /* no labelled row: loss 0, nothing to do */
    int32_t none[64];
    for (int i = 0; i < N; i++) none[i] = AM_MLM_IGNORE;
    CHECK_OK(mlm_head_forward(h, m, hidden, none, N, &st));
    CHECK(st.n_masked == 0 && st.loss == 0);
    CHECK_OK(mlm_head_backward(h, dh, grads, 1.0f, 1));
    mlm_head_delete(h);
    free(grads);
    free(dh);
    model_delete(m);
    fx_free(&fx);
}

TEST(mlm_masking_rules) {
    const int N = 200000, V = 1000;
    int32_t *ids = xmalloc(N * sizeof *ids), *out = xmalloc(N * sizeof *out), *lab = xmalloc(N * sizeof *lab);
    int32_t *out2 = xmalloc(N * sizeof *out2), *lab2 = xmalloc(N * sizeof *lab2);
    float *mask = xmalloc(N * sizeof *mask);
    AmRng rng;
    am_rng_seed(&rng, 5);
    int real = 0;
    for (int i = 0; i < N; i++) {
        int t = i % 20;
        ids[i] = t == 0 ? 101 : t == 15 ? 102 : t > 15 ? 0 : 200 + (int32_t)am_rng_below(&rng, 700);
        mask[i] = t > 15 ? 0.0f : 1.0f;
        real += t > 0 && t < 15;
    }
    MlmOptions o = { .prob = 0.15f, .mask_frac = 0.8f, .random_frac = 0.1f, .mask_token_id = 103, .n_special = 3,
                     .special = { 101, 102, 100 } };
    int cnt = mlm_mask_tokens(out, lab, ids, mask, N, V, 0, &o, 99);
    int masked = 0, replaced = 0, randomised = 0, kept = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        int t = i % 20;
        if (lab[i] == AM_MLM_IGNORE) {
            bad += out[i] != ids[i];
            continue;
        }
        masked++;
        bad += lab[i] != ids[i] || t == 0 || t >= 15; /* specials and padding never selected */
        if (out[i] == 103) replaced++;
        else if (out[i] == ids[i]) kept++;
        else randomised++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(cnt, masked);
    CHECK_NEAR((double)masked / real, 0.15, 0.005);
    CHECK_NEAR((double)replaced / masked, 0.8, 0.01);
    CHECK_NEAR((double)randomised / masked, 0.1 - 0.1 / V, 0.01);
    CHECK_NEAR((double)kept / masked, 0.1 + 0.1 / V, 0.01);
    /* seeded: same seed same masks, another seed other masks */
    mlm_mask_tokens(out2, lab2, ids, mask, N, V, 0, &o, 99);
    CHECK(memcmp(out, out2, N * sizeof *out) == 0 && memcmp(lab, lab2, N * sizeof *lab) == 0);
    mlm_mask_tokens(out2, lab2, ids, mask, N, V, 0, &o, 100);
    CHECK(memcmp(lab, lab2, N * sizeof *lab) != 0);
    free(ids); free(out); free(lab); free(out2); free(lab2); free(mask);
}

/* ------------------------------------------------------------------ AdamW */

TEST(adamw_schedules_clipping_match_pytorch) {
    Fixture fx;
    int rc = fx_load_train(&fx, "adamw.bin");
    CHECK_EQ_INT(rc, 0);
    if (rc) return;
    /* a table with the fixture's 4 tensors: names decide the decay */
    ParamTable tab = { 0 };
    const char *names[4] = { "dense.weight", "dense.bias", "LayerNorm.weight", "proj.weight" };
    tab.n = 4;
    tab.t = xcalloc(4, sizeof *tab.t);
    size_t sizes[4];
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "init.%d", i);
        fx_f32(&fx, key, &sizes[i]);
        snprintf(tab.t[i].name, sizeof tab.t[i].name, "%s", names[i]);
        tab.t[i].numel = sizes[i];
        tab.t[i].offset = tab.total;
        tab.total += sizes[i];
    }
    OptimSegment *seg;
    int ns = optim_segments_from_table(&tab, NULL, 1, &seg);
    CHECK_EQ_INT(ns, 3); /* decay | no decay (bias + LayerNorm merged) | decay */
    CHECK(seg[0].decay == 1 && seg[1].decay == 0 && seg[2].decay == 1 && seg[1].numel == sizes[1] + sizes[2]);
    const char *sched_names[2] = { "linear", "cosine" };
    LRSchedule sched[2] = { { AM_SCHED_LINEAR, 2, 5, 0.5f }, { AM_SCHED_COSINE, 1, 5, 0.5f } };
    for (int s = 0; s < 2; s++) {
        float *p = xcalloc(tab.total, 4), *g = xcalloc(tab.total, 4), *m = xcalloc(tab.total, 4), *v = xcalloc(tab.total, 4);
        for (int i = 0; i < 4; i++) {
            char key[32];
            snprintf(key, sizeof key, "init.%d", i);
            memcpy(p + tab.t[i].offset, fx_f32(&fx, key, NULL), sizes[i] * 4);
        }
        OptimGroup grp = { p, g, m, v, seg, ns };
        AdamWConfig ac = { .lr = 0.05f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f };
        char key[64];
        snprintf(key, sizeof key, "%s.norms", sched_names[s]);
        const float *norms = fx_f32(&fx, key, NULL);
        snprintf(key, sizeof key, "%s.lrs", sched_names[s]);
        const float *lrs = fx_f32(&fx, key, NULL);
        for (int k = 0; k < 5; k++) {
            for (int i = 0; i < 4; i++) {
                snprintf(key, sizeof key, "grad.%d.%d", k, i);
                memcpy(g + tab.t[i].offset, fx_f32(&fx, key, NULL), sizes[i] * 4);
            }
            double norm = optim_grad_norm(&grp, 1);
            CHECK_NEAR(norm, norms[k], 1e-5 * (double)norms[k]);
            double lr = (double)ac.lr * lr_schedule_factor(&sched[s], k);
            CHECK_NEAR(lr, lrs[k], 1e-7);
            adamw_update(&grp, 1, &ac, (float)lr, k + 1, optim_clip_coef(norm, 1.0f), 1);
            for (size_t i = 0; i < tab.total; i++) CHECK(g[i] == 0);
            for (int i = 0; i < 4; i++) {
                snprintf(key, sizeof key, "%s.step%d.%d", sched_names[s], k, i);
                if (!check_rel(key, p + tab.t[i].offset, fx_f32(&fx, key, NULL), sizes[i], 1e-5)) t_cur_failed++;
            }
        }
        free(p); free(g); free(m); free(v);
    }
    /* frozen segments are untouched; clip coefficient rules */
    CHECK(optim_clip_coef(0.5, 1.0f) == 1.0f);
    CHECK_NEAR(optim_clip_coef(4.0, 1.0f), 1.0 / (4.0 + 1e-6), 1e-7);
    CHECK(optim_clip_coef(1e9, 0.0f) == 1.0f);
    uint8_t tr[4] = { 1, 0, 0, 1 };
    OptimSegment *s2;
    int ns2 = optim_segments_from_table(&tab, tr, 1, &s2);
    CHECK_EQ_INT(ns2, 2);
    float *p = xcalloc(tab.total, 4), *g = xcalloc(tab.total, 4), *m = xcalloc(tab.total, 4), *v = xcalloc(tab.total, 4);
    for (size_t i = 0; i < tab.total; i++) { p[i] = 1; g[i] = 1; }
    OptimGroup grp = { p, g, m, v, s2, ns2 };
    AdamWConfig ac;
    adamw_config_default(&ac);
    adamw_update(&grp, 1, &ac, 0.1f, 1, 1.0f, 1);
    for (size_t i = tab.t[1].offset; i < tab.t[3].offset; i++) CHECK(p[i] == 1 && g[i] == 1 && m[i] == 0);
    CHECK(p[0] < 1 && g[0] == 0);
    /* schedule shapes */
    LRSchedule ls = { AM_SCHED_LINEAR, 10, 110, 0.5f };
    CHECK(lr_schedule_factor(&ls, 0) == 0 && lr_schedule_factor(&ls, 5) == 0.5 && lr_schedule_factor(&ls, 10) == 1);
    CHECK_NEAR(lr_schedule_factor(&ls, 60), 0.5, 1e-12);
    CHECK(lr_schedule_factor(&ls, 200) == 0);
    LRSchedule cs = { AM_SCHED_COSINE, 0, 100, 0.5f };
    CHECK_NEAR(lr_schedule_factor(&cs, 50), 0.5, 1e-12);
    CHECK_NEAR(lr_schedule_factor(&cs, 100), 0.0, 1e-12);
    CHECK_EQ_INT(lr_schedule_from_name("cosine"), AM_SCHED_COSINE);
    CHECK(optim_is_no_decay("encoder.layer.0.attention.output.LayerNorm.weight"));
    CHECK(optim_is_no_decay("cls.predictions.bias"));
    CHECK(!optim_is_no_decay("embeddings.word_embeddings.weight"));
    free(p); free(g); free(m); free(v);
    free(seg);
    free(s2);
    free(tab.t);
    fx_free(&fx);
}

/* ------------------------------------------------------------------ LoRA */

/* the fixture's loss on the C side: MNRL(scale 20) of mean-pooled layer L rows {0,1} vs {2,3}
 * + Σ normalize(meanpool(h_1)) · R1. dh gets the gradients. */
static double lora_fixture_loss(Encoder *e, const float *mask, const float *R1, int B, int T, int C, int L,
                                float **dh) {
    float pooled[4 * 64], normed[4 * 64], dp[4 * 64], dn[4 * 64];
    AM_ASSERT(B == 4 && C <= 64);
    pool_mean_forward(pooled, encoder_hidden(e, L), mask, B, T, C, C);
    LossInput in = { pooled, C, C, 2, 1, 0, NULL, NULL };
    LossSpec s;
    loss_spec_default(&s, AM_LOSS_INFONCE);
    double loss = infonce_forward(&in, &s.infonce);
    if (dh) {
        memset(dp, 0, sizeof dp);
        infonce_backward(dp, &in, &s.infonce, 1.0);
        memset(dh[L], 0, (size_t)B * T * C * 4);
        pool_mean_backward(dh[L], dp, mask, B, T, C, C);
    }
    pool_mean_forward(pooled, encoder_hidden(e, 1), mask, B, T, C, C);
    l2norm_forward(normed, pooled, B, C);
    for (int i = 0; i < B * C; i++) { loss += (double)normed[i] * (double)R1[i]; dn[i] = R1[i]; }
    if (dh) {
        memset(dp, 0, sizeof dp);
        l2norm_backward(dp, dn, pooled, B, C);
        memset(dh[1], 0, (size_t)B * T * C * 4);
        pool_mean_backward(dh[1], dp, mask, B, T, C, C);
    }
    return loss;
}

TEST(lora_matches_pytorch) {
    Fixture fx;
    int rc = fx_load_train(&fx, "lora.bin");
    CHECK_EQ_INT(rc, 0);
    if (rc) return;
    const int32_t *c = fx_get(&fx, "config")->data;
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.vocab_size = c[0]; cfg.hidden_size = c[1]; cfg.num_layers = c[2]; cfg.num_heads = c[3];
    cfg.intermediate_size = c[4]; cfg.max_position = c[5]; cfg.type_vocab_size = c[6]; cfg.has_pooler = 0;
    const int B = c[7], T = c[8], C = c[1], L = c[2];
    Model *m;
    CHECK_OK(model_new(&cfg, &m));
    LoraConfig lc = { .rank = c[9], .alpha = fx_scalar(&fx, "alpha"), .dropout = 0,
                      .targets = AM_LORA_QUERY | AM_LORA_VALUE | AM_LORA_ATTN_OUT | AM_LORA_FFN_IN | AM_LORA_FFN_OUT };
    Lora *lo;
    CHECK_OK(lora_new(m, &lc, &lo));
    const ParamTable *lt = lora_table(lo);
    CHECK_EQ_INT(lt->n, 2 * 5 * L);
    char key[160];
    for (int i = 0; i < m->tab.n; i++) {
        snprintf(key, sizeof key, "param.%s", m->tab.t[i].name);
        size_t n;
        const float *src = fx_f32(&fx, key, &n);
        CHECK(src && n == m->tab.t[i].numel);
        if (src) memcpy(m->params + m->tab.t[i].offset, src, n * 4);
    }
    for (int i = 0; i < lt->n; i++) {
        snprintf(key, sizeof key, "param.%s", lt->t[i].name);
        size_t n;
        const float *src = fx_f32(&fx, key, &n);
        CHECKF(src && n == lt->t[i].numel, "%s", key);
        if (src) memcpy(lora_params(lo) + lt->t[i].offset, src, n * 4);
    }
    const int32_t *ids = fx_get(&fx, "input_ids")->data;
    const float *mask = fx_f32(&fx, "attention_mask", NULL), *R1 = fx_f32(&fx, "R1", NULL);
    Encoder *e;
    encoder_new(m, &e);
    lora_attach(lo, e);
    CHECK_OK(lora_prepare(lo, B * T));
    CHECK_OK(encoder_forward(e, ids, NULL, mask, B, T, 0, 0));
    CHECK_REL("hidden L", encoder_hidden(e, L), fx_f32(&fx, "hidden", NULL), (size_t)B * T * C);
    float *dh[3];
    for (int l = 0; l <= L; l++) dh[l] = xcalloc((size_t)B * T * C, 4);
    const float *dhc[3] = { NULL, dh[1], dh[2] };
    double loss = lora_fixture_loss(e, mask, R1, B, T, C, L, dh);
    CHECK_SCALAR("loss", loss, fx_scalar(&fx, "loss"));
    float *grads = xcalloc(m->tab.total, 4);
    CHECK_OK(encoder_backward(e, dhc, grads));
    for (int i = 0; i < m->tab.n; i++) {
        snprintf(key, sizeof key, "grad.%s", m->tab.t[i].name);
        const float *want = fx_f32(&fx, key, NULL);
        if (strstr(key, "key.bias")) continue; /* exactly zero in theory (see tests/ref/encoder/README.md) */
        if (want && !check_rel(key, grads + m->tab.t[i].offset, want, m->tab.t[i].numel, REL_TOL)) t_cur_failed++;
    }
    for (int i = 0; i < lt->n; i++) {
        snprintf(key, sizeof key, "grad.%s", lt->t[i].name);
        const float *want = fx_f32(&fx, key, NULL);
        if (want && !check_rel(key, lora_grads(lo) + lt->t[i].offset, want, lt->t[i].numel, REL_TOL)) t_cur_failed++;
    }
    /* merged weights: the merged model without adapters gives the same hidden states */
    Model *mm;
    CHECK_OK(model_new(&cfg, &mm));
    memcpy(mm->params, m->params, m->tab.total * 4);
    lora_merge(lo, mm->params);
    Encoder *e2;
    encoder_new(mm, &e2);
    CHECK_OK(encoder_forward(e2, ids, NULL, mask, B, T, 0, 0));
    CHECK_REL("merged hidden", encoder_hidden(e2, L), fx_f32(&fx, "hidden", NULL), (size_t)B * T * C);
    /* key weights untouched by the merge (key is not a target), query changed */
    CHECK(memcmp(mm->p.layer[0].qkvw + C * C, m->p.layer[0].qkvw + C * C, (size_t)C * C * 4) == 0);
    CHECK(memcmp(mm->p.layer[0].qkvw, m->p.layer[0].qkvw, (size_t)C * C * 4) != 0);
    encoder_delete(e2);
    model_delete(mm);
    for (int l = 0; l <= L; l++) free(dh[l]);
    free(grads);
    encoder_delete(e);
    lora_delete(lo);
    model_delete(m);
    fx_free(&fx);
}

TEST(lora_dropout_finite_differences_and_init) {
    /* training mode (hidden dropout + LoRA dropout 0.2, fixed seed) on every target with the base
     * frozen (so layer 0's QKV adapters get dinp = NULL): analytic LoRA gradients vs central
     * differences */
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.vocab_size = 40; cfg.hidden_size = 16; cfg.num_layers = 2; cfg.num_heads = 2; cfg.intermediate_size = 24;
    cfg.max_position = 8; cfg.has_pooler = 0;
    Model *m;
    CHECK_OK(model_new(&cfg, &m));
    model_init_bert(m, 3);
    for (size_t i = 0; i < m->tab.total; i++) m->params[i] *= 5.0f; /* bigger weights: nonlinear regime */
    LoraConfig lc = { .rank = 3, .alpha = 6, .dropout = 0.2f, .targets = AM_LORA_ALL, .layers = 0 };
    Lora *lo;
    CHECK_OK(lora_new(m, &lc, &lo));
    lora_init(lo, 9);
    const ParamTable *lt = lora_table(lo);
    /* PEFT init: A within ±1/sqrt(IC), B zero */
    for (int i = 0; i < lt->n; i++) {
        const ParamInfo *p = &lt->t[i];
        const float *x = lora_params(lo) + p->offset;
        int isA = strstr(p->name, "lora_A") != NULL;
        double bound = isA ? 1.0 / sqrt((double)p->shape[1]) : 0.0, mx = 0;
        for (size_t k = 0; k < p->numel; k++) mx = fmax(mx, fabs((double)x[k]));
        CHECKF(mx <= bound + 1e-7 && (!isA || mx > 0.5 * bound), "%s: max |x| %g, bound %g", p->name, mx, bound);
    }
    AmRng rng;
    am_rng_seed(&rng, 4);
    for (size_t i = 0; i < lt->total; i++) lora_params(lo)[i] = 0.5f * am_rng_normal(&rng);
    const int B = 4, T = 5, C = 16, L = 2;
    int32_t ids[20];
    float mask[20];
    for (int i = 0; i < B * T; i++) { ids[i] = 1 + (int32_t)am_rng_below(&rng, 39); mask[i] = (i % T) < 5 - (i / T) % 2 ? 1.0f : 0.0f; }
    float R[4 * 16];
    for (int i = 0; i < B * C; i++) R[i] = am_rng_normal(&rng);
    Encoder *e;
    encoder_new(m, &e);
    uint8_t *frozen = xcalloc((size_t)m->tab.n, 1); /* the whole base frozen */
    encoder_set_trainable(e, frozen);
    lora_attach(lo, e);
    CHECK_OK(lora_prepare(lo, B * T));
    float *dh = xcalloc((size_t)B * T * C, 4), *grads = xcalloc(m->tab.total, 4);
    float pooled[64], dp[64];
    const float *dhc[3] = { NULL, NULL, dh };
#define FWD_LOSS(out) do { CHECK_OK(encoder_forward(e, ids, NULL, mask, B, T, 1, 77)); \
        pool_mean_forward(pooled, encoder_hidden(e, L), mask, B, T, C, C); \
        double s_ = 0; for (int k_ = 0; k_ < B * C; k_++) s_ += (double)pooled[k_] * (double)R[k_]; (out) = s_; } while (0)
    double base;
    FWD_LOSS(base);
    CHECK(isfinite(base));
    for (int i = 0; i < B * C; i++) dp[i] = R[i];
    pool_mean_backward(dh, dp, mask, B, T, C, C);
    memset(lora_grads(lo), 0, lt->total * 4);
    CHECK_OK(encoder_backward(e, dhc, grads));
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < lt->total; i++) gmax = fmax(gmax, fabs((double)lora_grads(lo)[i]));
    for (size_t i = 0; i < lt->total; i += 7) {
        float *x = &lora_params(lo)[i], x0 = *x;
        const float h = 1e-3f;
        double fp, fm;
        *x = x0 + h; FWD_LOSS(fp);
        *x = x0 - h; FWD_LOSS(fm);
        *x = x0;
        double fd = (fp - fm) / (2.0 * (double)h);
        worst = fmax(worst, fabs(fd - (double)lora_grads(lo)[i]));
    }
#undef FWD_LOSS
    CHECKF(worst / gmax < 5e-3, "LoRA finite differences: rel err %.3g (max grad %.3g)", worst / gmax, gmax);
    /* layer 0 QKV adapters did receive gradients */
    const ParamInfo *q0 = param_table_find(lt, "encoder.layer.0.attention.self.query.lora_A.weight");
    CHECK(q0 != NULL);
    double s0 = 0;
    for (size_t k = 0; q0 && k < q0->numel; k++) s0 += fabs((double)lora_grads(lo)[q0->offset + k]);
    CHECK(s0 > 0);
    /* config errors */
    LoraConfig bad = lc;
    Lora *x;
    bad.rank = 0;
    CHECK_EQ_INT(lora_new(m, &bad, &x), AM_EINVAL);
    bad = lc;
    bad.targets = 0;
    CHECK_EQ_INT(lora_new(m, &bad, &x), AM_EINVAL);
    bad = lc;
    bad.layers = 1u << 5;
    CHECK_EQ_INT(lora_new(m, &bad, &x), AM_EINVAL);
    CHECK(lora_target_from_name("value") == AM_LORA_VALUE && lora_target_from_name("nope") == 0);
    free(frozen);
    free(dh);
    free(grads);
    encoder_delete(e);
    lora_delete(lo);
    model_delete(m);
}


/* ------------------------------------------------------------------ the authors' code (fidelity.bin) */

static Fixture g_fid;
static int g_fid_ok;

/* evaluate spec on layers prefix.emb0..L of fidelity.bin; compare the loss and every layer's
 * gradient with name.loss / name.grad<l> */
static void check_fid(const char *what, const LossSpec *spec, const char *prefix, const char *name, int L, int C,
                      int n, int P, int K, const float *gold, uint64_t seed, LossResult *res) {
    LossViews v;
    memset(&v, 0, sizeof v);
    float *g[AM_MAX_LAYERS + 1] = { 0 };
    size_t cnt = 0;
    char key[64];
    for (int l = 0; l <= L; l++) {
        snprintf(key, sizeof key, "%s.emb%d", prefix, l);
        v.emb[l] = fx_f32(&g_fid, key, &cnt);
        v.demb[l] = g[l] = xcalloc(cnt, sizeof(float));
    }
    v.L = L; v.C = C; v.n = n; v.n_pos = P; v.n_neg = K; v.gold = gold; v.seed = seed;
    CHECK_OK(loss_eval(spec, &v, 1.0, res));
    snprintf(key, sizeof key, "%s.loss", name);
    CHECKF(fabs(res->total - (double)fx_scalar(&g_fid, key)) <= REL_TOL * fabs((double)fx_scalar(&g_fid, key)), "%s: loss %.9g, want %.9g",
           what, res->total, (double)fx_scalar(&g_fid, key));
    for (int l = 0; l <= L; l++) {
        snprintf(key, sizeof key, "%s.grad%d", name, l);
        const float *want = fx_f32(&g_fid, key, NULL);
        if (want) {
            double gmax = 0;
            for (size_t i = 0; i < cnt; i++) gmax = fmax(gmax, fabs((double)want[i]));
            if (gmax == 0) { /* a layer the loss does not read */
                for (size_t i = 0; i < cnt; i++) CHECK(g[l][i] == 0);
            } else if (!check_rel(key, g[l], want, cnt, REL_TOL)) {
                t_cur_failed++;
                printf("  %s\n", what);
            }
        } else CHECK(0);
        free(g[l]);
    }
}

TEST(starbucks_matches_authors_code) {
    if (!g_fid_ok) { CHECK(g_fid_ok); return; }
    /* am.loss.starbucks's defaults = StarbucksLoss (sts/starbucks_loss.py): KL over the raw pooled
     * rows' first d features, no temperature, × 0.3, the teacher not detached */
    LossSpec cos, inf, sb;
    loss_spec_default(&cos, AM_LOSS_COSENT);
    loss_spec_default(&inf, AM_LOSS_INFONCE);
    loss_spec_default(&sb, AM_LOSS_STARBUCKS);
    CHECK(sb.m2d.kl.mode == AM_KL_EMBEDDINGS && sb.m2d.kl.weight == 0.3f && sb.m2d.kl.temperature == 1.0f &&
          !sb.m2d.kl.detach && !sb.m2d.kl.normalize && !sb.m2d.kl.full_dim);
    sb.m2d.n_pairs = 3;
    for (int k = 0; k < 3; k++) { sb.m2d.layers[k] = k + 1; sb.m2d.dims[k] = 8 * (k + 1); }
    sb.inner = &cos;
    LossResult res;
    check_fid("starbucks cosent", &sb, "sts", "sb_cosent", 3, 24, 8, 1, 0, fx_f32(&g_fid, "sts.gold", NULL), 0, &res);
    CHECK_EQ_INT(res.n_terms, 5); /* 3 CoSENT + 2 KL */
    sb.inner = &inf;
    check_fid("starbucks mnrl", &sb, "nli", "sb_mnrl", 3, 24, 6, 1, 1, NULL, 0, &res);
    /* am.preset.starbucks (retrieval/modeling.py): infonce{sim = "dot", temperature = 1} inside,
     * KL on scores, T 1, weight 1, the full-size scores detached */
    LossSpec dot = inf;
    dot.infonce.sim = AM_SIM_DOT;
    dot.infonce.scale = 1;
    sb.inner = &dot;
    sb.m2d.kl = (KLOptions){ .mode = AM_KL_SCORES, .weight = 1, .temperature = 1, .detach = 1 };
    check_fid("starbucks retrieval", &sb, "ret", "sb_retrieval", 3, 24, 4, 1, 3, NULL, 0, &res);
}

TEST(random_2d_matches_matryoshka2dloss) {
    if (!g_fid_ok) { CHECK(g_fid_ok); return; }
    /* am.loss.random_2d's defaults = ST Matryoshka2dLoss: a drawn dim for the last layer too, the
     * prior layer's loss / l, 0.3 · KL(softmax(e_L / 0.3) ‖ softmax(e_l / 0.3)) on all features */
    LossSpec cos, r2;
    loss_spec_default(&cos, AM_LOSS_COSENT);
    loss_spec_default(&r2, AM_LOSS_RANDOM_2D);
    r2.inner = &cos;
    r2.m2d.n_dims = 2;
    r2.m2d.sample_dims[0] = 8;
    r2.m2d.sample_dims[1] = 24;
    int seen = 0, checked = 0;
    for (uint64_t seed = 0; seed < 64 && seen != 0xff; seed++) {
        uint8_t need[4];
        loss_spec_layers(&r2, 3, 24, seed, need);
        int l = need[1] ? 1 : 2;
        LossResult probe;
        LossViews v;
        memset(&v, 0, sizeof v);
        for (int k = 0; k <= 3; k++) {
            char key[32];
            snprintf(key, sizeof key, "sts.emb%d", k);
            v.emb[k] = fx_f32(&g_fid, key, NULL);
        }
        v.L = 3; v.C = 24; v.n = 8; v.n_pos = 1; v.gold = fx_f32(&g_fid, "sts.gold", NULL); v.seed = seed;
        CHECK_OK(loss_eval(&r2, &v, 1.0, &probe));
        int fl, fd, sl, sd;
        if (probe.n_terms != 3 || sscanf(probe.term[0].name, "l%dd%d/", &fl, &fd) != 2 ||
            sscanf(probe.term[1].name, "l%dd%d/", &sl, &sd) != 2) { CHECK(0); break; }
        CHECK_EQ_INT(sl, l);
        const int bit = ((sl - 1) << 2) | ((fd == 24) << 1) | (sd == 24);
        if (seen & (1 << bit)) continue;
        seen |= 1 << bit;
        char name[48];
        snprintf(name, sizeof name, "m2d.l%d.f%d.s%d", sl, fd, sd);
        LossResult res;
        check_fid(name, &r2, "sts", name, 3, 24, 8, 1, 0, v.gold, seed, &res);
        checked++;
    }
    CHECK_EQ_INT(checked, 8); /* every (layer, last dim, layer dim) draw */
}

TEST(codiemb_mid_term_lives_on_wn_sts) {
    if (!g_fid_ok) { CHECK(g_fid_ok); return; }
    /* a sample of the project's wn-sts (gold 0.06..0.97): CoDiEmb's literal threshold 1.0 makes
     * L_mid 0 (no gradient); the default relative threshold (0.2 of the dataset's range) does not */
    size_t m;
    const float *gold = fx_f32(&g_fid, "wn.gold", &m), *range = fx_f32(&g_fid, "wn.range", NULL);
    const float *terms = fx_f32(&g_fid, "wn.terms", NULL), *terms1 = fx_f32(&g_fid, "wn.terms_thr1", NULL);
    size_t cnt;
    const float *last = fx_f32(&g_fid, "wn.last", &cnt), *midv = fx_f32(&g_fid, "wn.mid", NULL);
    const int n = (int)m, C = (int)(cnt / (2 * m));
    LossInput in = { last, C, C, n, 1, 0, gold, NULL }, mid = { midv, C, C, n, 1, 0, gold, NULL };
    LossSpec s;
    loss_spec_default(&s, AM_LOSS_CODIEMB_STS);
    s.codiemb.score_lo = range[0];
    s.codiemb.score_hi = range[1];
    CHECK_NEAR(loss_codiemb_mid_threshold(&s.codiemb, gold, n), fx_scalar(&g_fid, "wn.threshold"), 1e-6);
    LossResult r = { 0 };
    double v = codiemb_sts_forward(&in, &mid, &s.codiemb, &r);
    CHECK_SCALAR("codiemb wn", v, fx_scalar(&g_fid, "wn.codiemb.loss"));
    CHECK_EQ_INT(r.n_terms, 4); /* mid, pro, pearson, rankkl: each non-zero and as the authors' code */
    for (int k = 0; k < r.n_terms && k < 4; k++) {
        CHECKF(r.term[k].value != 0, "term %s is 0", r.term[k].name);
        CHECK_SCALAR(r.term[k].name, r.term[k].value, terms[k]);
    }
    float *gl = xcalloc(cnt, sizeof(float)), *gm = xcalloc(cnt, sizeof(float));
    codiemb_sts_backward(gl, gm, &in, &mid, &s.codiemb, 1.0);
    CHECK_REL("codiemb wn last", gl, fx_f32(&g_fid, "wn.codiemb.grad0", NULL), cnt);
    CHECK_REL("codiemb wn mid", gm, fx_f32(&g_fid, "wn.codiemb.grad1", NULL), cnt);
    double gn = 0;
    for (size_t i = 0; i < cnt; i++) gn += (double)gm[i] * (double)gm[i];
    CHECK(gn > 0); /* the middle layer is trained */
    /* without a dataset range the batch's is used: still a live term */
    LossSpec sb;
    loss_spec_default(&sb, AM_LOSS_CODIEMB_STS);
    memset(&r, 0, sizeof r);
    codiemb_sts_forward(&in, &mid, &sb.codiemb, &r);
    CHECK(r.n_terms == 4 && r.term[0].value > 0);
    /* the authors' absolute 1.0 on this scale: L_mid = 0, as their code gives */
    s.codiemb.mid.threshold = 1.0f;
    memset(&r, 0, sizeof r);
    codiemb_sts_forward(&in, &mid, &s.codiemb, &r);
    CHECK(r.n_terms == 4 && r.term[0].value == 0 && terms1[0] == 0);
    for (int k = 1; k < r.n_terms && k < 4; k++) CHECK_SCALAR(r.term[k].name, r.term[k].value, terms1[k]);
    free(gl);
    free(gm);
}

TEST(finite_differences_authors_kl_forms) {
    /* the new forms: KL with the teacher NOT detached (gradient into layer L too), raw rows,
     * all-feature KL, linear layer weighting, a drawn last-layer dim */
    AmRng rng;
    am_rng_seed(&rng, 21);
    const int C = 12, L = 3;
    float gold[6] = { 0.9f, 0.1f, 0.5f, 0.5f, 0.75f, 0.3f };
    LossSpec cos, inf, sb, sbs, r2, r2u;
    loss_spec_default(&cos, AM_LOSS_COSENT);
    cos.cosent.scale = 5;
    loss_spec_default(&inf, AM_LOSS_INFONCE);
    inf.infonce.scale = 5;
    loss_spec_default(&sb, AM_LOSS_STARBUCKS); /* authors' defaults */
    sb.inner = &cos;
    sb.m2d.n_pairs = 3;
    for (int k = 0; k < 3; k++) { sb.m2d.layers[k] = k + 1; sb.m2d.dims[k] = 4 * (k + 1); }
    sbs = sb; /* scores KL with the teacher attached */
    sbs.inner = &inf;
    sbs.m2d.kl = (KLOptions){ .mode = AM_KL_SCORES, .weight = 1, .temperature = 0.5f, .detach = 0 };
    loss_spec_default(&r2, AM_LOSS_RANDOM_2D);
    r2.inner = &cos;
    r2.m2d.n_dims = 2;
    r2.m2d.sample_dims[0] = 4;
    r2.m2d.sample_dims[1] = 12;
    r2u = r2;
    r2u.m2d.layer_weighting = AM_LAYERW_UNIFORM;
    r2u.m2d.kl.normalize = 1;
    struct { const LossSpec *s; int n, P, K, graded; const char *what; } comp[] = {
        { &sb, 6, 1, 0, 1, "starbucks (authors' KL)" }, { &sbs, 4, 1, 1, 0, "starbucks scores KL, attached" },
        { &r2, 6, 1, 0, 1, "random_2d (ST)" }, { &r2u, 6, 1, 0, 1, "random_2d uniform, normalised KL" },
    };
    for (size_t k = 0; k < sizeof comp / sizeof comp[0]; k++) {
        const int R = comp[k].n * (1 + comp[k].P + comp[k].K);
        float *emb[4];
        for (int l = 0; l <= L; l++) emb[l] = rand_mat(&rng, (size_t)R * C, 1.0f);
        for (uint64_t seed = 3; seed < 6; seed++) {
            double e = fd_check(comp[k].s, emb, L, C, comp[k].n, comp[k].P, comp[k].K, comp[k].graded ? gold : NULL,
                                seed, L);
            CHECKF(e < 2e-3, "%s seed %d: finite-difference rel err %.3g (every layer)", comp[k].what, (int)seed, e);
        }
        for (int l = 0; l <= L; l++) free(emb[l]);
    }
}

int main(void) {
    am_parallel_set_threads(2);
    blas_init();
    g_loss_ok = fx_load_train(&g_loss, "losses.bin") == 0;
    if (!g_loss_ok) printf("cannot load tests/ref/train/losses.bin\n");
    g_fid_ok = fx_load_train(&g_fid, "fidelity.bin") == 0;
    if (!g_fid_ok) printf("cannot load tests/ref/train/fidelity.bin\n");
    RUN(infonce_matches_pytorch);
    RUN(sts_losses_match_pytorch);
    RUN(kl_matches_pytorch);
    RUN(matryoshka_and_starbucks_match_pytorch);
    RUN(finite_differences_every_loss);
    RUN(entropy_values);
    RUN(random_2d_is_full_plus_drawn_view);
    RUN(starbucks_matches_authors_code);
    RUN(random_2d_matches_matryoshka2dloss);
    RUN(codiemb_mid_term_lives_on_wn_sts);
    RUN(finite_differences_authors_kl_forms);
    RUN(matryoshka_dims_per_step);
    RUN(spec_defaults_and_errors);
    RUN(mlm_head_matches_pytorch);
    RUN(mlm_masking_rules);
    RUN(adamw_schedules_clipping_match_pytorch);
    RUN(lora_matches_pytorch);
    RUN(lora_dropout_finite_differences_and_init);
    fx_free(&g_loss);
    fx_free(&g_fid);
    return test_report();
}
