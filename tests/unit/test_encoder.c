/* test_encoder.c - the BERT encoder against a PyTorch fixture (forward, loss, every parameter
 * gradient), finite differences through the whole encoder, dropout determinism, odd configs,
 * adapters / frozen parameters, and input errors.
 *
 * Fixture: tests/ref/encoder/encoder_tiny.bin, made by gen_fixture.py (see the README there). */
#include "harness.h"
#include "fixture.h"
#include "am_base.h"
#include "bench.h"
#include "encoder.h"
#include "model.h"
#include "tensor.h"

#include <stdint.h>

/* ------------------------------------------------------------------ fixture reader */

static const float *fx_f32(const Fixture *fx, const char *name, size_t n) {
    const FxArray *a = fx_get(fx, name);
    if (!a || a->dtype != 0 || a->n != n) { printf("  fixture: %s missing or wrong size\n", name); return NULL; }
    return a->data;
}

/* ------------------------------------------------------------------ the fixture's loss */

typedef struct {
    int B, T, L, C;
    const int32_t *ids, *tt;
    const float *mask;
    const float *R[AM_MAX_LAYERS + 1], *Rc, *Rh;
    int no_pad_terms; /* drop the term on every token (padding included) */
} LossSpec;

/* loss of gen_fixture.py; fills dh[l] (B,T,C) (zeroed here) when dh != NULL */
static double fixture_loss(const LossSpec *s, Encoder *e, float **dh) {
    const int B = s->B, T = s->T, C = s->C, L = s->L, half = B / 2;
    float pooled[B * C], normed[B * C], dn[B * C], dp[B * C];
    double loss = 0;
    for (int l = 0; l <= L; l++) {
        const float *h = encoder_hidden(e, l);
        pool_mean_forward(pooled, h, s->mask, B, T, C, C);
        l2norm_forward(normed, pooled, B, C);
        for (int i = 0; i < B * C; i++) { loss += (double)normed[i] * (double)s->R[l][i]; dn[i] = s->R[l][i]; }
        if (l == L) { /* InfoNCE between the two halves, scale 20 */
            double S[half][half];
            for (int i = 0; i < half; i++)
                for (int j = 0; j < half; j++) {
                    double d = 0;
                    for (int c = 0; c < C; c++) d += (double)normed[i * C + c] * (double)normed[(half + j) * C + c];
                    S[i][j] = 20.0 * d;
                }
            for (int i = 0; i < half; i++) {
                double mx = -1e300, sum = 0;
                for (int j = 0; j < half; j++) mx = S[i][j] > mx ? S[i][j] : mx;
                for (int j = 0; j < half; j++) sum += exp(S[i][j] - mx);
                loss += (log(sum) + mx - S[i][i]) / half;
                for (int j = 0; j < half; j++) {
                    double g = (exp(S[i][j] - mx) / sum - (i == j)) / half * 20.0;
                    for (int c = 0; c < C; c++) {
                        dn[i * C + c] += (float)(g * (double)normed[(half + j) * C + c]);
                        dn[(half + j) * C + c] += (float)(g * (double)normed[i * C + c]);
                    }
                }
            }
        }
        if (dh) {
            memset(dh[l], 0, (size_t)B * T * C * sizeof(float));
            memset(dp, 0, sizeof dp);
            l2norm_backward(dp, dn, pooled, B, C);
            pool_mean_backward(dh[l], dp, s->mask, B, T, C, C);
        }
    }
    const float *hL = encoder_hidden(e, L), *h1 = encoder_hidden(e, 1);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            loss += (double)hL[(size_t)b * T * C + c] * (double)s->Rc[b * C + c];
            if (dh) dh[L][(size_t)b * T * C + c] += s->Rc[b * C + c];
        }
    for (size_t i = 0; i < (size_t)B * T * C && !s->no_pad_terms; i++) {
        loss += 0.01 * (double)h1[i] * (double)s->Rh[i];
        if (dh) dh[1][i] += 0.01f * s->Rh[i];
    }
    return loss;
}

/* ------------------------------------------------------------------ fixture setup */

static Fixture g_fx;
static Model *g_m;
static LossSpec g_spec;
static int g_ok;

static int setup_fixture(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ref/encoder/encoder_tiny.bin", AM_TEST_DIR);
    int rc = fx_load(&g_fx, path);
    if (rc) { printf("  cannot load %s (%d)\n", path, rc); return 0; }
    const FxArray *cf = fx_get(&g_fx, "config");
    if (!cf || cf->dtype != 1 || cf->n != 9) return 0;
    const int32_t *c = cf->data;
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.vocab_size = c[0]; cfg.hidden_size = c[1]; cfg.num_layers = c[2]; cfg.num_heads = c[3];
    cfg.intermediate_size = c[4]; cfg.max_position = c[5]; cfg.type_vocab_size = c[6];
    cfg.layer_norm_eps = 1e-12f;
    cfg.has_pooler = 0;
    if (model_new(&cfg, &g_m) != AM_OK) return 0;
    for (int i = 0; i < g_m->tab.n; i++) { /* every parameter by its Hugging Face name */
        const ParamInfo *pi = &g_m->tab.t[i];
        char nm[160];
        snprintf(nm, sizeof nm, "param.%s", pi->name);
        const float *src = fx_f32(&g_fx, nm, pi->numel);
        if (!src) return 0;
        memcpy(g_m->params + pi->offset, src, pi->numel * sizeof(float));
    }
    const int B = c[7], T = c[8], L = cfg.num_layers, C = cfg.hidden_size;
    g_spec = (LossSpec){ .B = B, .T = T, .L = L, .C = C };
    const FxArray *ids = fx_get(&g_fx, "input_ids"), *tt = fx_get(&g_fx, "token_type_ids");
    if (!ids || !tt || ids->n != (size_t)B * T) return 0;
    g_spec.ids = ids->data;
    g_spec.tt = tt->data;
    g_spec.mask = fx_f32(&g_fx, "attention_mask", (size_t)B * T);
    for (int l = 0; l <= L; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "loss.R.%d", l);
        g_spec.R[l] = fx_f32(&g_fx, nm, (size_t)B * C);
        if (!g_spec.R[l]) return 0;
    }
    g_spec.Rc = fx_f32(&g_fx, "loss.Rc", (size_t)B * C);
    g_spec.Rh = fx_f32(&g_fx, "loss.Rh", (size_t)B * T * C);
    return g_spec.mask && g_spec.Rc && g_spec.Rh;
}

static float **alloc_dh(const LossSpec *s) {
    float **dh = xcalloc((size_t)s->L + 1, sizeof *dh);
    for (int l = 0; l <= s->L; l++) dh[l] = am_alloc_floats((size_t)s->B * s->T * s->C);
    return dh;
}
static void free_dh(float **dh, int L) {
    for (int l = 0; l <= L; l++) am_free_aligned(dh[l]);
    free(dh);
}
static float *zeros(size_t n) {
    float *x = am_alloc_floats(n);
    memset(x, 0, n * sizeof(float));
    return x;
}

/* forward (eval or training) + loss + backward; grads zeroed first. Returns the loss. */
static double run_step(Encoder *e, const LossSpec *s, float *grads, int training, uint64_t seed) {
    if (encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, training, seed) != AM_OK) {
        printf("  forward failed: %s\n", am_lasterror());
        return NAN;
    }
    float **dh = alloc_dh(s);
    double loss = fixture_loss(s, e, dh);
    if (grads) {
        memset(grads, 0, encoder_model(e)->tab.total * sizeof(float));
        if (encoder_backward(e, (const float *const *)dh, grads) != AM_OK) printf("  backward failed: %s\n", am_lasterror());
    }
    free_dh(dh, s->L);
    return loss;
}

#define TOL 1e-4

/* The key bias cannot change the loss: it adds q·b_k to every score of a query row, and
 * softmax ignores a per-row constant. Its exact gradient is 0 (torch's float64 reference
 * holds ~1e-17 round-off), so the per-tensor relative error is meaningless there; we require
 * it to be round-off compared to the scale of the query-bias gradient of the same layer. */
static int is_key_bias(const char *name) { return strstr(name, "attention.self.key.bias") != NULL; }
static double grad_err(const ParamTable *tab, const char *name, const float *g, const float *ref, size_t n,
                       const float *all_ref) {
    if (!is_key_bias(name)) return rel_err(g, ref, n);
    char qn[AM_NAME_MAX];
    snprintf(qn, sizeof qn, "%.*squery.bias", (int)(strstr(name, "key.bias") - name), name);
    const ParamInfo *q = param_table_find(tab, qn);
    double scale = 0, md = 0;
    for (size_t i = 0; q && i < q->numel; i++) scale = fmax(scale, fabs((double)all_ref[q->offset + i]));
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)g[i] - (double)ref[i]));
    return md / fmax(scale, 1e-12);
}

TEST(fixture_forward_loss_and_every_gradient) {
    CHECK(g_ok);
    if (!g_ok) return;
    Encoder *e;
    CHECK_OK(encoder_new(g_m, &e));
    const LossSpec *s = &g_spec;
    float *grads = zeros(g_m->tab.total);
    double loss = run_step(e, s, grads, 0, 0);
    const size_t nh = (size_t)s->B * s->T * s->C;
    for (int l = 0; l <= s->L; l++) {
        char nm[32];
        snprintf(nm, sizeof nm, "hidden.%d", l);
        const float *ref = fx_f32(&g_fx, nm, nh);
        double err = ref ? rel_err(encoder_hidden(e, l), ref, nh) : 1;
        CHECKF(err <= TOL, "%s: rel err %.3g > %g", nm, err, TOL);
        if (l == s->L) printf("  hidden.%d rel err %.2e\n", l, err);
    }
    const float *rl = fx_f32(&g_fx, "loss", 1);
    CHECKF(rl && fabs(loss - (double)rl[0]) <= TOL * fabs((double)rl[0]), "loss %.9g vs torch %.9g", loss, rl ? (double)rl[0] : 0.0);
    double worst = 0;
    const char *worst_name = "";
    float *gref = zeros(g_m->tab.total); /* torch's gradients in our flat layout */
    for (int i = 0; i < g_m->tab.n; i++) {
        const ParamInfo *pi = &g_m->tab.t[i];
        char nm[160];
        snprintf(nm, sizeof nm, "grad.%s", pi->name);
        const float *ref = fx_f32(&g_fx, nm, pi->numel);
        if (ref) memcpy(gref + pi->offset, ref, pi->numel * sizeof(float));
    }
    for (int i = 0; i < g_m->tab.n; i++) {
        const ParamInfo *pi = &g_m->tab.t[i];
        double err = grad_err(&g_m->tab, pi->name, grads + pi->offset, gref + pi->offset, pi->numel, gref);
        CHECKF(err <= TOL, "gradient %s: rel err %.3g > %g", pi->name, err, TOL);
        if (err > worst) { worst = err; worst_name = pi->name; }
    }
    printf("  %d parameter gradients, worst rel err %.2e (%s), loss %.9f\n", g_m->tab.n, worst, worst_name, loss);
    am_free_aligned(gref);
    /* the padding row of the word embeddings gets nothing (HF padding_idx) */
    int pad_zero = 1;
    for (int c = 0; c < s->C; c++) pad_zero &= grads[g_m->tab.t[0].offset + (size_t)g_m->cfg.pad_token_id * s->C + c] == 0;
    CHECK(pad_zero);
    /* backward is repeatable and accumulates */
    float **dh = alloc_dh(s);
    fixture_loss(s, e, dh);
    float *g2 = zeros(g_m->tab.total);
    memcpy(g2, grads, g_m->tab.total * sizeof(float));
    CHECK_OK(encoder_backward(e, (const float *const *)dh, g2));
    double maxd = 0;
    for (size_t i = 0; i < g_m->tab.total; i++) maxd = fmax(maxd, fabs((double)g2[i] - 2.0 * (double)grads[i]));
    CHECKF(maxd < 1e-5, "second backward does not add up: %g", maxd);
    free_dh(dh, s->L);
    am_free_aligned(g2);
    am_free_aligned(grads);
    encoder_delete(e);
}

/* ------------------------------------------------------------------ finite differences */

/* central differences on a few parameters with the largest gradients, in eval and in
 * training mode (dropout masks are a function of the seed, so the loss is deterministic) */
static void fd_whole(int training) {
    Encoder *e;
    CHECK_OK(encoder_new(g_m, &e));
    const LossSpec *s = &g_spec;
    float *grads = zeros(g_m->tab.total);
    run_step(e, s, grads, training, 99);
    static const char *names[] = {
        "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.bias",
        "encoder.layer.1.attention.self.key.weight", "encoder.layer.1.attention.self.value.bias",
        "encoder.layer.0.attention.self.value.weight", "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.0.intermediate.dense.weight", "encoder.layer.1.output.dense.bias",
        "encoder.layer.1.output.LayerNorm.weight", "encoder.layer.1.attention.output.LayerNorm.bias",
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const ParamInfo *pi = param_table_find(&g_m->tab, names[k]);
        CHECK(pi != NULL);
        if (!pi) continue;
        size_t best = 0; /* the element with the largest gradient */
        for (size_t i = 0; i < pi->numel; i++)
            if (fabsf(grads[pi->offset + i]) > fabsf(grads[pi->offset + best])) best = i;
        float *w = g_m->params + pi->offset + best, w0 = *w;
        const float eps = 1e-2f;
        *w = w0 + eps; double lp = run_step(e, s, NULL, training, 99);
        *w = w0 - eps; double lm = run_step(e, s, NULL, training, 99);
        *w = w0;
        double num = (lp - lm) / (2.0 * (double)eps), ana = grads[pi->offset + best];
        double rel = fabs(num - ana) / fmax(fabs(ana), 1e-3);
        CHECKF(rel < 2e-2, "%s mode: d loss / d %s[%zu]: finite difference %.6g vs backward %.6g",
               training ? "training" : "eval", names[k], best, num, ana);
    }
    am_free_aligned(grads);
    encoder_delete(e);
}

TEST(finite_differences_eval) { if (g_ok) fd_whole(0); else CHECK(g_ok); }
TEST(finite_differences_training) { if (g_ok) fd_whole(1); else CHECK(g_ok); }

/* ------------------------------------------------------------------ dropout */

TEST(dropout_determinism_and_modes) {
    CHECK(g_ok);
    if (!g_ok) return;
    const LossSpec *s = &g_spec;
    const size_t nh = (size_t)s->B * s->T * s->C;
    Encoder *e;
    CHECK_OK(encoder_new(g_m, &e));
    float *a = zeros(nh), *b = zeros(nh), *ev = zeros(nh);
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 0, 1));
    memcpy(ev, encoder_hidden(e, s->L), nh * sizeof(float));
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 0, 2)); /* eval ignores the seed */
    CHECK(memcmp(ev, encoder_hidden(e, s->L), nh * sizeof(float)) == 0);
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 1, 7));
    memcpy(a, encoder_hidden(e, s->L), nh * sizeof(float));
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 1, 7));
    CHECK(memcmp(a, encoder_hidden(e, s->L), nh * sizeof(float)) == 0);   /* same seed, same output */
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 1, 8));
    memcpy(b, encoder_hidden(e, s->L), nh * sizeof(float));
    CHECK(memcmp(a, b, nh * sizeof(float)) != 0);                          /* different seed */
    CHECK(rel_err(a, ev, nh) > 1e-3);                                     /* training != eval */
    /* embeddings dropout zeroes about 10 % of hidden[0] */
    const float *h0 = encoder_hidden(e, 0);
    size_t z = 0;
    for (size_t i = 0; i < nh; i++) z += h0[i] == 0.0f;
    CHECKF(z > nh / 20 && z < nh / 5, "%zu of %zu zero after embedding dropout", z, nh);
    /* the masks (and everything else) do not depend on the thread count */
    int saved = am_parallel_get_threads();
    am_parallel_set_threads(1);
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 1, 8));
    CHECK(memcmp(encoder_hidden(e, s->L), b, nh * sizeof(float)) == 0);
    am_parallel_set_threads(saved);
    /* training with zero dropout rates == eval */
    Model *m0;
    CHECK_OK(model_new(&g_m->cfg, &m0));
    memcpy(m0->params, g_m->params, g_m->tab.total * sizeof(float));
    m0->cfg.hidden_dropout = m0->cfg.attention_dropout = 0;
    Encoder *e0;
    CHECK_OK(encoder_new(m0, &e0));
    CHECK_OK(encoder_forward(e0, s->ids, s->tt, s->mask, s->B, s->T, 1, 7));
    CHECK(memcmp(ev, encoder_hidden(e0, s->L), nh * sizeof(float)) == 0);
    encoder_delete(e0);
    model_delete(m0);
    am_free_aligned(a);
    am_free_aligned(b);
    am_free_aligned(ev);
    encoder_delete(e);
}

/* training steps give the same bits with 1 and 2 threads (fixed chunking everywhere) */
TEST(thread_count_bit_identical) {
    CHECK(g_ok);
    if (!g_ok) return;
    const LossSpec *s = &g_spec;
    float *g1 = zeros(g_m->tab.total), *g2 = zeros(g_m->tab.total);
    int saved = am_parallel_get_threads();
    Encoder *e;
    am_parallel_set_threads(1);
    CHECK_OK(encoder_new(g_m, &e));
    double l1 = run_step(e, s, g1, 1, 3);
    encoder_delete(e);
    am_parallel_set_threads(2);
    CHECK_OK(encoder_new(g_m, &e));
    double l2 = run_step(e, s, g2, 1, 3);
    encoder_delete(e);
    am_parallel_set_threads(saved);
    CHECK(l1 == l2);
    CHECK(memcmp(g1, g2, g_m->tab.total * sizeof(float)) == 0);
    am_free_aligned(g1);
    am_free_aligned(g2);
}

/* ------------------------------------------------------------------ skip padding in training */

TEST(skip_padding_equivalence) {
    CHECK(g_ok);
    if (!g_ok) return;
    LossSpec s = g_spec;
    s.no_pad_terms = 1; /* a loss that ignores padded positions: the mode is exact for it */
    const size_t nh = (size_t)s.B * s.T * s.C;
    float *g1 = zeros(g_m->tab.total), *g2 = zeros(g_m->tab.total), *h1 = zeros(nh);
    Encoder *e1, *e2;
    CHECK_OK(encoder_new(g_m, &e1));
    CHECK_OK(encoder_new(g_m, &e2));
    encoder_set_skip_padding(e2, 1);
    double l1 = run_step(e1, &s, g1, 0, 0);
    memcpy(h1, encoder_hidden(e1, s.L), nh * sizeof(float));
    double l2 = run_step(e2, &s, g2, 0, 0);
    CHECKF(fabs(l1 - l2) < 1e-5 * fabs(l1), "loss %.9g vs %.9g", l1, l2);
    const float *h2 = encoder_hidden(e2, s.L);
    double worst = 0;
    int pad_zero = 1;
    for (int b = 0; b < s.B; b++)
        for (int t = 0; t < s.T; t++) {
            const float *a = h1 + ((size_t)b * s.T + t) * s.C, *c = h2 + ((size_t)b * s.T + t) * s.C;
            if (s.mask[(size_t)b * s.T + t] != 0) worst = fmax(worst, rel_err(c, a, (size_t)s.C));
            else for (int k = 0; k < s.C; k++) pad_zero &= c[k] == 0.0f;
        }
    CHECKF(worst < 1e-5, "hidden states on real tokens differ: %g", worst);
    CHECK(pad_zero);
    for (int i = 0; i < g_m->tab.n; i++) {
        const ParamInfo *pi = &g_m->tab.t[i];
        double err = grad_err(&g_m->tab, pi->name, g2 + pi->offset, g1 + pi->offset, pi->numel, g1);
        CHECKF(err < 1e-5, "skip padding: gradient %s differs (%g)", pi->name, err);
    }
    /* training mode: deterministic per seed and consistent with finite differences */
    float *g3 = zeros(g_m->tab.total);
    run_step(e2, &s, g3, 1, 42);
    const char *names[] = { "encoder.layer.0.attention.self.query.weight", "encoder.layer.1.intermediate.dense.weight",
                            "embeddings.position_embeddings.weight", "encoder.layer.0.output.LayerNorm.bias" };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const ParamInfo *pi = param_table_find(&g_m->tab, names[k]);
        size_t best = 0;
        for (size_t i = 0; i < pi->numel; i++)
            if (fabsf(g3[pi->offset + i]) > fabsf(g3[pi->offset + best])) best = i;
        float *w = g_m->params + pi->offset + best, w0 = *w;
        const float eps = 1e-2f;
        *w = w0 + eps; double lp = run_step(e2, &s, NULL, 1, 42);
        *w = w0 - eps; double lm = run_step(e2, &s, NULL, 1, 42);
        *w = w0;
        double num = (lp - lm) / (2.0 * (double)eps), ana = g3[pi->offset + best];
        CHECKF(fabs(num - ana) / fmax(fabs(ana), 1e-3) < 2e-2, "skip padding, training: d/d %s[%zu]: %.6g vs %.6g",
               names[k], best, num, ana);
    }
    am_free_aligned(g1);
    am_free_aligned(g2);
    am_free_aligned(g3);
    am_free_aligned(h1);
    encoder_delete(e1);
    encoder_delete(e2);
}

/* ------------------------------------------------------------------ odd config vs naive reference */

/* eval-mode BertModel built from the naive kernels only */
static void ref_encoder(float **hidden, const Model *m, const int32_t *ids, const int32_t *tt, const float *mask, int B, int T) {
    const EncoderConfig *c = &m->cfg;
    const int C = c->hidden_size, FF = c->intermediate_size, NH = c->num_heads, N = B * T;
    const ParameterTensors *p = &m->p;
    float *emb = zeros((size_t)N * C), *mu = zeros(N), *rs = zeros(N), *qkv = zeros((size_t)N * 3 * C);
    float *att = zeros((size_t)B * NH * T * T), *ctx = zeros((size_t)N * C), *tmp = zeros((size_t)N * C);
    float *ln1 = zeros((size_t)N * C), *ff = zeros((size_t)N * FF), *ff2 = zeros((size_t)N * FF);
    ref_embeddings_forward(emb, ids, tt, p->wte, p->wpe, p->wtt, B, T, C);
    ref_layernorm_forward(hidden[0], mu, rs, emb, p->lnew, p->lneb, N, C, c->layer_norm_eps);
    for (int l = 0; l < c->num_layers; l++) {
        ref_linear_forward(qkv, hidden[l], p->layer[l].qkvw, p->layer[l].qkvb, N, C, 3 * C);
        ref_attention_forward(ctx, att, qkv, mask, B, T, C, NH, 0, 0);
        ref_linear_forward(tmp, ctx, p->layer[l].attow, p->layer[l].attob, N, C, C);
        for (size_t i = 0; i < (size_t)N * C; i++) tmp[i] += hidden[l][i];
        ref_layernorm_forward(ln1, mu, rs, tmp, p->layer[l].ln1w, p->layer[l].ln1b, N, C, c->layer_norm_eps);
        ref_linear_forward(ff, ln1, p->layer[l].fcw, p->layer[l].fcb, N, C, FF);
        ref_gelu_forward(ff2, ff, (size_t)N * FF);
        ref_linear_forward(tmp, ff2, p->layer[l].fcprojw, p->layer[l].fcprojb, N, FF, C);
        for (size_t i = 0; i < (size_t)N * C; i++) tmp[i] += ln1[i];
        ref_layernorm_forward(hidden[l + 1], mu, rs, tmp, p->layer[l].ln2w, p->layer[l].ln2b, N, C, c->layer_norm_eps);
    }
    float *fr[] = { emb, mu, rs, qkv, att, ctx, tmp, ln1, ff, ff2 };
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++) am_free_aligned(fr[i]);
}

static Model *odd_model(void) {
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.vocab_size = 57; cfg.hidden_size = 312; cfg.num_layers = 3; cfg.num_heads = 12;
    cfg.intermediate_size = 100; cfg.max_position = 11; cfg.type_vocab_size = 3;
    cfg.layer_norm_eps = 1e-5f; cfg.pad_token_id = 1; cfg.has_pooler = 1;
    Model *m;
    if (model_new(&cfg, &m) != AM_OK) return NULL;
    model_init_bert(m, 5);
    AmRng r;
    am_rng_seed(&r, 77); /* bigger weights than BERT's init so the check means something */
    for (size_t i = 0; i < m->tab.total; i++) m->params[i] += 0.05f * am_rng_normal(&r);
    return m;
}

TEST(odd_config_matches_naive_reference) {
    Model *m = odd_model();
    CHECK(m != NULL);
    if (!m) return;
    const int B = 3, T = 11, C = m->cfg.hidden_size, L = m->cfg.num_layers;
    int32_t ids[B * T], tt[B * T];
    float mask[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (i * 13 + 5) % m->cfg.vocab_size;
        tt[i] = i % 3;
        mask[i] = (i % T) < T - 4 * (i / T) ? 1.0f : 0.0f; /* lengths 11, 7, 3 */
    }
    mask[2 * T + 5] = 1.0f; /* a hole: not a prefix */
    float *hid[AM_MAX_LAYERS + 1];
    for (int l = 0; l <= L; l++) hid[l] = zeros((size_t)B * T * C);
    ref_encoder(hid, m, ids, tt, mask, B, T);
    Encoder *e;
    CHECK_OK(encoder_new(m, &e));
    CHECK_OK(encoder_forward(e, ids, tt, mask, B, T, 0, 0));
    for (int l = 0; l <= L; l++) {
        double err = rel_err(encoder_hidden(e, l), hid[l], (size_t)B * T * C);
        CHECKF(err < 1e-4, "odd config hidden.%d rel err %g", l, err);
    }
    /* encoder_embed: pooled, truncated, normalised */
    float emb[B * 200], want[B * 200];
    CHECK_OK(encoder_embed(e, ids, tt, mask, B, T, AM_POOL_MEAN, 1, 2, 200, emb));
    pool_mean_forward(want, hid[2], mask, B, T, C, 200);
    l2norm_forward(want, want, B, 200);
    CHECK(rel_err(emb, want, (size_t)B * 200) < 1e-4);
    am_free_aligned(hid[0]);
    for (int l = 1; l <= L; l++) am_free_aligned(hid[l]);
    encoder_delete(e);
    model_delete(m);
}

TEST(embed_cls_and_layers) {
    Model *m = odd_model();
    if (!m) { CHECK(m != NULL); return; }
    enum { B = 2, T = 5 };
    const int C = m->cfg.hidden_size, L = m->cfg.num_layers;
    int32_t ids[B * T] = { 2, 7, 9, 3, 0, 2, 8, 0, 0, 0 };
    float mask[B * T] = { 1, 1, 1, 1, 0, 1, 1, 0, 0, 0 };
    Encoder *e;
    CHECK_OK(encoder_new(m, &e));
    float *full = zeros((size_t)B * C), *out = zeros((size_t)B * C);
    CHECK_OK(encoder_forward(e, ids, NULL, mask, B, T, 0, 0));
    for (int layer = 0; layer <= L; layer++) {
        /* right padding: encoder_embed packs the real tokens; same embeddings as the padded
         * forward, for both poolings, with truncation and normalisation */
        for (int pooling = 0; pooling < 2; pooling++) {
            const int dim = pooling ? C : 100;
            CHECK_OK(pool_forward(full, encoder_hidden(e, layer), mask, B, T, C, dim, pooling));
            if (pooling == 0) l2norm_forward(full, full, B, dim);
            Encoder *e2;
            CHECK_OK(encoder_new(m, &e2));
            CHECK_OK(encoder_embed(e2, ids, NULL, mask, B, T, pooling, pooling == 0, layer, dim, out));
            CHECKF(rel_err(out, full, (size_t)B * dim) < 1e-5, "pooling %d layer %d: %g", pooling, layer,
                   rel_err(out, full, (size_t)B * dim));
            CHECK(encoder_hidden(e2, layer) == NULL); /* embed keeps nothing public */
            if (layer < L) CHECK(encoder_pool_hidden(e2, layer + 1, pooling, 0, 0, out) == AM_EINVAL); /* stopped early */
            if (layer > 0) { /* a lower layer of the same pass */
                CHECK_OK(encoder_pool_hidden(e2, layer - 1, AM_POOL_CLS, 0, 0, out));
                pool_cls_forward(full, encoder_hidden(e, layer - 1), B, T, C, C);
                CHECK(rel_err(out, full, (size_t)B * C) < 1e-5);
            }
            encoder_delete(e2);
        }
    }
    /* encoder_pool_hidden after encoder_forward pools the padded layout */
    CHECK_OK(encoder_forward(e, ids, NULL, mask, B, T, 0, 0));
    CHECK_OK(encoder_pool_hidden(e, 1, AM_POOL_MEAN, 0, 0, out));
    pool_mean_forward(full, encoder_hidden(e, 1), mask, B, T, C, C);
    CHECK(memcmp(out, full, (size_t)B * C * sizeof(float)) == 0);
    /* errors of encoder_embed */
    CHECK(encoder_embed(e, ids, NULL, mask, B, T, 7, 0, -1, 0, out) == AM_EINVAL);
    CHECK(encoder_embed(e, ids, NULL, mask, B, T, AM_POOL_MEAN, 0, L + 1, 0, out) == AM_EINVAL);
    CHECK(encoder_embed(e, ids, NULL, mask, B, T, AM_POOL_MEAN, 0, -1, C + 1, out) == AM_EINVAL);
    /* encoder_embed leaves nothing to differentiate */
    CHECK_OK(encoder_embed(e, ids, NULL, mask, B, T, AM_POOL_MEAN, 1, -1, 0, out));
    const float *dh[AM_MAX_LAYERS + 1] = { 0 };
    dh[L] = full;
    float *g = zeros(m->tab.total);
    CHECK(encoder_backward(e, dh, g) == AM_EINVAL);
    am_free_aligned(g);
    am_free_aligned(full);
    am_free_aligned(out);
    encoder_delete(e);
    model_delete(m);
}

TEST(odd_config_finite_differences) {
    Model *m = odd_model();
    if (!m) { CHECK(m != NULL); return; }
    enum { B = 2, T = 6 };
    const int C = m->cfg.hidden_size, L = m->cfg.num_layers;
    int32_t ids[B * T] = { 2, 7, 9, 3, 4, 1, 2, 8, 11, 1, 1, 1 }, tt[B * T] = { 0, 0, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0 };
    float mask[B * T] = { 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0 };
    const size_t nh = (size_t)B * T * C;
    float *r = zeros(nh), *r2 = zeros(nh), *g = zeros(m->tab.total);
    AmRng rng;
    am_rng_seed(&rng, 3);
    for (size_t i = 0; i < nh; i++) { r[i] = am_rng_normal(&rng); r2[i] = am_rng_normal(&rng); }
    Encoder *e;
    CHECK_OK(encoder_new(m, &e));
    /* loss = r·h_L + r2·h_1, training mode */
    const float *dh[AM_MAX_LAYERS + 1] = { 0 };
    dh[L] = r;
    dh[1] = r2;
#define LOSS() ({ double s_ = 0; const float *hL_ = encoder_hidden(e, L), *h1_ = encoder_hidden(e, 1); \
        for (size_t i_ = 0; i_ < nh; i_++) { s_ += (double)hL_[i_] * (double)r[i_] + (double)h1_[i_] * (double)r2[i_]; } s_; })
    CHECK_OK(encoder_forward(e, ids, tt, mask, B, T, 1, 5));
    CHECK_OK(encoder_backward(e, dh, g));
    for (int k = 0; k < m->tab.n; k += 3) {
        const ParamInfo *pi = &m->tab.t[k];
        if (strncmp(pi->name, "pooler", 6) == 0) continue;
        if (is_key_bias(pi->name)) k++; /* zero gradient (see grad_err): take the value bias */
        pi = &m->tab.t[k];
        size_t best = 0;
        for (size_t i = 0; i < pi->numel; i++)
            if (fabsf(g[pi->offset + i]) > fabsf(g[pi->offset + best])) best = i;
        float *w = m->params + pi->offset + best, w0 = *w;
        const float eps = 1e-2f;
        *w = w0 + eps; encoder_forward(e, ids, tt, mask, B, T, 1, 5); double lp = LOSS();
        *w = w0 - eps; encoder_forward(e, ids, tt, mask, B, T, 1, 5); double lm = LOSS();
        *w = w0;
        double num = (lp - lm) / (2.0 * (double)eps), ana = g[pi->offset + best];
        CHECKF(fabs(num - ana) / fmax(fabs(ana), 1e-2) < 3e-2, "odd config d/d %s[%zu]: fd %.6g vs %.6g", pi->name, best, num, ana);
    }
#undef LOSS
    /* the pooler gets no gradient; the pad id's embedding row neither */
    const ParamInfo *pw = param_table_find(&m->tab, "pooler.dense.weight");
    int pool_zero = 1;
    for (size_t i = 0; pw && i < pw->numel; i++) pool_zero &= g[pw->offset + i] == 0;
    CHECK(pw && pool_zero);
    int pad_zero = 1;
    for (int c = 0; c < C; c++) pad_zero &= g[(size_t)m->cfg.pad_token_id * C + c] == 0;
    CHECK(pad_zero);
    am_free_aligned(r);
    am_free_aligned(r2);
    am_free_aligned(g);
    encoder_delete(e);
    model_delete(m);
}

/* ------------------------------------------------------------------ reuse across shapes */

TEST(buffers_reused_across_shapes) {
    CHECK(g_ok);
    if (!g_ok) return;
    const LossSpec *s = &g_spec;
    const size_t nh = (size_t)s->B * s->T * s->C;
    Encoder *e;
    CHECK_OK(encoder_new(g_m, &e));
    float *first = zeros(nh);
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 0, 0));
    memcpy(first, encoder_hidden(e, s->L), nh * sizeof(float));
    const float *p1 = encoder_hidden(e, 0);
    /* a smaller batch (first sequence only, 5 tokens) reuses the arena */
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, 1, 5, 0, 0));
    CHECK(encoder_hidden(e, 0) == p1);
    int B, T;
    encoder_shape(e, &B, &T);
    CHECK(B == 1 && T == 5);
    CHECK_OK(encoder_forward(e, s->ids, s->tt, s->mask, s->B, s->T, 0, 0));
    CHECK(memcmp(first, encoder_hidden(e, s->L), nh * sizeof(float)) == 0);
    CHECK(encoder_hidden(e, 0) == p1);
    am_free_aligned(first);
    encoder_delete(e);
}

/* ------------------------------------------------------------------ errors */

TEST(input_errors) {
    CHECK(g_ok);
    if (!g_ok) return;
    const LossSpec *s = &g_spec;
    const int V = g_m->cfg.vocab_size, P = g_m->cfg.max_position;
    Encoder *e;
    CHECK_OK(encoder_new(g_m, &e));
    const float *dh[AM_MAX_LAYERS + 1] = { 0 };
    float *g = zeros(g_m->tab.total);
    CHECK(encoder_backward(e, dh, g) == AM_EINVAL); /* nothing to differentiate yet */
    int32_t ids[2 * 32];
    float mask[2 * 32];
    for (int i = 0; i < 64; i++) { ids[i] = 3 + i % 10; mask[i] = 1; }
    CHECK(encoder_forward(e, ids, NULL, mask, 1, P + 1, 0, 0) == AM_ESHAPE);
    CHECK(strstr(am_lasterror(), "max_position") != NULL);
    CHECK(encoder_forward(e, ids, NULL, mask, 0, 4, 0, 0) == AM_ESHAPE);
    CHECK(encoder_forward(e, ids, NULL, mask, 2, 0, 0, 0) == AM_ESHAPE);
    CHECK(encoder_forward(e, NULL, NULL, mask, 2, 4, 0, 0) == AM_EINVAL);
    ids[5] = V;
    CHECK(encoder_forward(e, ids, NULL, mask, 2, 4, 0, 0) == AM_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "token id %d", V);
    CHECKF(strstr(am_lasterror(), want) != NULL, "message: %s", am_lasterror());
    ids[5] = -3;
    CHECK(encoder_forward(e, ids, NULL, mask, 2, 4, 0, 0) == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "token id -3") != NULL);
    ids[5] = 4;
    int32_t tt[8] = { 0, 0, 0, 2, 0, 0, 0, 0 };
    CHECK(encoder_forward(e, ids, tt, mask, 2, 4, 0, 0) == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "type id 2") != NULL);
    for (int t = 0; t < 4; t++) mask[4 + t] = 0; /* second sequence all padding */
    CHECK(encoder_forward(e, ids, NULL, mask, 2, 4, 0, 0) == AM_EINVAL);
    CHECK(strstr(am_lasterror(), "all padding") != NULL);
    /* a failed forward leaves nothing to differentiate */
    CHECK(encoder_backward(e, dh, g) == AM_EINVAL);
    /* T = 1 and no mask work */
    CHECK_OK(encoder_forward(e, ids, NULL, NULL, 2, 1, 1, 3));
    CHECK(encoder_hidden(e, s->L) != NULL && encoder_hidden(e, s->L + 1) == NULL && encoder_hidden(e, -1) == NULL);
    float *d1 = zeros(2 * (size_t)s->C);
    for (int i = 0; i < 2 * s->C; i++) d1[i] = 1.0f;
    dh[s->L] = d1;
    CHECK_OK(encoder_backward(e, dh, g));
    am_free_aligned(d1);
    am_free_aligned(g);
    encoder_delete(e);
}

/* ------------------------------------------------------------------ adapters and frozen params */

/* adapter: out += inp · Mᵀ on (layer 0, FFN in), (layer 1, attention out) and (layer 0, QKV);
 * grads into dM */
typedef struct { float *M[3], *dM[3]; int IC[3], OC[3]; } TestAdapter;
static int ta_slot(int layer, int which) {
    if (layer == 0 && which == AM_LIN_FFN_IN) return 0;
    if (layer == 1 && which == AM_LIN_ATTN_OUT) return 1;
    if (layer == 0 && which == AM_LIN_QKV) return 2;
    return -1;
}
static int ta_active(void *ud, int layer, int which) { (void)ud; return ta_slot(layer, which) >= 0; }
static void ta_forward(void *ud, const EncoderLinearInfo *li, float *out, const float *inp, int rows, size_t row0) {
    TestAdapter *a = ud;
    int k = ta_slot(li->layer, li->which);
    blas_gemm_nt(out, li->OC, inp, li->IC, a->M[k], li->IC, rows, li->OC, li->IC, 1.0f, 1.0f);
    (void)row0;
}
static void ta_backward(void *ud, const EncoderLinearInfo *li, float *dinp, const float *dout, const float *inp) {
    TestAdapter *a = ud;
    int k = ta_slot(li->layer, li->which);
    if (dinp) blas_gemm_nn(dinp, li->IC, dout, li->OC, a->M[k], li->IC, li->N, li->IC, li->OC, 1.0f, 1.0f);
    blas_gemm_tn(a->dM[k], li->IC, dout, li->OC, inp, li->IC, li->OC, li->IC, li->N, 1.0f, 1.0f);
}

TEST(adapter_equals_weight_delta) {
    CHECK(g_ok);
    if (!g_ok) return;
    const LossSpec *s = &g_spec;
    const int C = s->C, FF = g_m->cfg.intermediate_size;
    const size_t nh = (size_t)s->B * s->T * C;
    TestAdapter ta = { .IC = { C, C, C }, .OC = { FF, C, 3 * C } };
    AmRng r;
    am_rng_seed(&r, 11);
    for (int k = 0; k < 3; k++) {
        size_t n = (size_t)ta.IC[k] * ta.OC[k];
        ta.M[k] = zeros(n);
        ta.dM[k] = zeros(n);
        for (size_t i = 0; i < n; i++) ta.M[k][i] = 0.05f * am_rng_normal(&r);
    }
    /* model with W + M */
    Model *m2;
    CHECK_OK(model_new(&g_m->cfg, &m2));
    memcpy(m2->params, g_m->params, g_m->tab.total * sizeof(float));
    for (size_t i = 0; i < (size_t)FF * C; i++) m2->p.layer[0].fcw[i] += ta.M[0][i];
    for (size_t i = 0; i < (size_t)C * C; i++) m2->p.layer[1].attow[i] += ta.M[1][i];
    for (size_t i = 0; i < (size_t)3 * C * C; i++) m2->p.layer[0].qkvw[i] += ta.M[2][i];
    Encoder *e, *e2;
    CHECK_OK(encoder_new(g_m, &e));
    CHECK_OK(encoder_new(m2, &e2));
    EncoderAdapter ad = { .ud = &ta, .active = ta_active, .forward = ta_forward, .backward = ta_backward };
    encoder_set_adapter(e, &ad);
    float *g = zeros(g_m->tab.total), *g2 = zeros(g_m->tab.total);
    run_step(e, s, g, 1, 4);
    run_step(e2, s, g2, 1, 4);
    CHECK(rel_err(encoder_hidden(e, s->L), encoder_hidden(e2, s->L), nh) < 1e-5);
    /* every base gradient matches, and dM equals the gradient of the shifted weight */
    for (int i = 0; i < g_m->tab.n; i++) {
        const ParamInfo *pi = &g_m->tab.t[i];
        double err = grad_err(&g_m->tab, pi->name, g + pi->offset, g2 + pi->offset, pi->numel, g2);
        CHECKF(err < 1e-4, "adapter run: gradient %s differs (%g)", pi->name, err);
    }
    CHECK(rel_err(ta.dM[0], g2 + (m2->p.layer[0].fcw - m2->params), (size_t)FF * C) < 1e-4);
    CHECK(rel_err(ta.dM[1], g2 + (m2->p.layer[1].attow - m2->params), (size_t)C * C) < 1e-4);
    CHECK(rel_err(ta.dM[2], g2 + (m2->p.layer[0].qkvw - m2->params), (size_t)3 * C * C) < 1e-4);
    /* frozen base + adapter: base grads stay zero but the adapter still learns (the whole
     * backward below layer 1 is still needed for the layer-0 adapter) */
    uint8_t *tr = xcalloc((size_t)g_m->tab.n, 1);
    encoder_set_trainable(e, tr);
    float *dm0 = zeros((size_t)FF * C), *dm2 = zeros((size_t)3 * C * C);
    memcpy(dm0, ta.dM[0], (size_t)FF * C * sizeof(float));
    memcpy(dm2, ta.dM[2], (size_t)3 * C * C * sizeof(float));
    memset(ta.dM[0], 0, (size_t)FF * C * sizeof(float));
    memset(ta.dM[2], 0, (size_t)3 * C * C * sizeof(float));
    run_step(e, s, g, 1, 4);
    int all_zero = 1;
    for (size_t i = 0; i < g_m->tab.total; i++) all_zero &= g[i] == 0;
    CHECK(all_zero);
    CHECK(rel_err(ta.dM[0], dm0, (size_t)FF * C) < 1e-5);
    CHECK(rel_err(ta.dM[2], dm2, (size_t)3 * C * C) < 1e-5); /* layer-0 QKV: nothing below needs dinp */
    free(tr);
    am_free_aligned(dm0);
    am_free_aligned(dm2);
    encoder_set_adapter(e, NULL);
    /* only layer 1 trainable: identical layer-1 grads, nothing else */
    tr = xcalloc((size_t)g_m->tab.n, 1);
    for (int i = 0; i < g_m->tab.n; i++) tr[i] = strncmp(g_m->tab.t[i].name, "encoder.layer.1.", 16) == 0;
    encoder_set_trainable(e, tr);
    float *gfull = zeros(g_m->tab.total);
    Encoder *e3;
    CHECK_OK(encoder_new(g_m, &e3));
    run_step(e3, s, gfull, 0, 0);
    run_step(e, s, g, 0, 0);
    for (int i = 0; i < g_m->tab.n; i++) {
        const ParamInfo *pi = &g_m->tab.t[i];
        if (tr[i]) CHECKF(memcmp(g + pi->offset, gfull + pi->offset, pi->numel * sizeof(float)) == 0, "%s", pi->name);
        else {
            int z = 1;
            for (size_t j = 0; j < pi->numel; j++) z &= g[pi->offset + j] == 0;
            CHECKF(z, "frozen %s got a gradient", pi->name);
        }
    }
    free(tr);
    for (int k = 0; k < 3; k++) { am_free_aligned(ta.M[k]); am_free_aligned(ta.dM[k]); }
    am_free_aligned(g);
    am_free_aligned(g2);
    am_free_aligned(gfull);
    encoder_delete(e);
    encoder_delete(e2);
    encoder_delete(e3);
    model_delete(m2);
}

/* the benchmarks' shared summary (bench.h) */
TEST(bench_summary) {
    double v[5] = { 5, 1, 4, 2, 3 }, w[4] = { 4, 1, 3, 2 };
    BenchResult r = { 0 };
    bench_summarize(&r, v, 5);
    CHECK(r.steps == 5 && r.ms_median == 3 && r.ms_min == 1 && r.ms_max == 5 && r.threads >= 1);
    CHECK(bench_median(w, 4) == 2.5);
}

/* One pooling enum: pool_names is indexed by AM_POOL_*, and the name functions invert it. */
TEST(pooling_names) {
    CHECK(pool_names[AM_POOL_MEAN] && strcmp(pool_names[AM_POOL_MEAN], "mean") == 0);
    CHECK(pool_names[AM_POOL_CLS] && strcmp(pool_names[AM_POOL_CLS], "cls") == 0);
    CHECK(pool_names[2] == NULL);
    for (int p = AM_POOL_MEAN; p <= AM_POOL_CLS; p++) CHECK(pool_from_name(pool_name(p)) == p);
    CHECK(pool_from_name("max") == -1 && pool_from_name(NULL) == -1 && pool_from_name("CLS") == -1);
    CHECK(pool_name(-1) == NULL && pool_name(2) == NULL);
    float x[2 * 3 * 4] = { 0 }, out[4];
    CHECK(pool_forward(out, x, NULL, 1, 3, 4, 4, 2) == AM_EINVAL);
}

int main(void) {
    am_parallel_set_threads(2);
    g_ok = setup_fixture();
    RUN(fixture_forward_loss_and_every_gradient);
    RUN(finite_differences_eval);
    RUN(finite_differences_training);
    RUN(dropout_determinism_and_modes);
    RUN(thread_count_bit_identical);
    RUN(skip_padding_equivalence);
    RUN(odd_config_matches_naive_reference);
    RUN(embed_cls_and_layers);
    RUN(odd_config_finite_differences);
    RUN(buffers_reused_across_shapes);
    RUN(input_errors);
    RUN(adapter_equals_weight_delta);
    RUN(pooling_names);
    RUN(bench_summary);
    model_delete(g_m);
    fx_free(&g_fx);
    return test_report();
}
