/* test_merge_stats.c - src/train/merge_stats.h on a tiny encoder: trainer_gradient against
 * finite differences (and nothing updated), the Fisher as the mean squared gradient, the Grams
 * against the hidden states, RegMean / Fisher of identical models, and Self Positioning on real
 * task vectors (the probe loss falls; τ = 0 keeps its initial λ without a regulariser). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "encoder.h"
#include "harness.h"
#include "loss.h"
#include "merge_data.h"
#include "merge_stats.h"
#include "model.h"
#include "trainer.h"

#define VOCAB 60
#define NB 8
#define TQ 6
#define TP 7

static Model *tiny_model(uint64_t seed) {
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.vocab_size = VOCAB; cfg.hidden_size = 16; cfg.num_layers = 2; cfg.num_heads = 2;
    cfg.intermediate_size = 24; cfg.max_position = 16; cfg.has_pooler = 1; cfg.has_mlm_head = 0;
    Model *m;
    int rc = model_new(&cfg, &m);
    AM_ASSERT(rc == AM_OK);
    model_init_bert(m, seed);
    return m;
}

typedef struct {
    int32_t q[NB * TQ], p[NB * TP];
    float mask_q[NB * TQ];
    TrainBatch b;
} Batch;

/* random pairs; the positive repeats half of its query's tokens (something to learn) */
static void make_batch(Batch *bb, uint64_t seed) {
    AmRng r;
    am_rng_seed(&r, seed);
    for (int i = 0; i < NB; i++) {
        for (int t = 0; t < TQ; t++) bb->q[i * TQ + t] = 1 + (int32_t)am_rng_below(&r, VOCAB - 1);
        for (int t = 0; t < TP; t++)
            bb->p[i * TP + t] = t < TQ && t % 2 ? bb->q[i * TQ + t] : 1 + (int32_t)am_rng_below(&r, VOCAB - 1);
        for (int t = 0; t < TQ; t++) bb->mask_q[i * TQ + t] = t < TQ - (i % 3) ? 1.0f : 0.0f; /* right padding */
    }
    memset(&bb->b, 0, sizeof bb->b);
    bb->b.a = (TrainTokens){ bb->q, NULL, bb->mask_q, NB, TQ };
    bb->b.pos = (TrainTokens){ bb->p, NULL, NULL, NB, TP };
}

static void nodrop(TrainConfig *c) {
    train_config_default(c);
    c->dropout = 0;
    c->max_grad_norm = 0;
}

TEST(test_merge_stats_gradient) {
    Model *m = tiny_model(3);
    TrainConfig tc;
    nodrop(&tc);
    Trainer *t;
    CHECK_OK(trainer_new(m, &tc, &t));
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    Batch bb;
    make_batch(&bb, 7);
    const size_t N = m->tab.total;
    float *g = malloc(N * sizeof(float)), *before = malloc(N * sizeof(float));
    memcpy(before, m->params, N * sizeof(float));
    StepStats st;
    CHECK_OK(trainer_gradient(t, &bb.b, &loss, g, &st));
    CHECK(memcmp(before, m->params, N * sizeof(float)) == 0); /* nothing updated */
    CHECK_EQ_INT(trainer_steps(t), 0);
    const double l0 = st.loss;
    /* finite differences on a few parameters with the largest gradients of some tensors */
    const char *names[] = { "encoder.layer.1.intermediate.dense.weight", "encoder.layer.0.attention.self.value.weight",
                            "embeddings.LayerNorm.bias" };
    for (int i = 0; i < 3; i++) {
        const ParamInfo *p = param_table_find(&m->tab, names[i]);
        size_t best = p->offset;
        for (size_t e = p->offset; e < p->offset + p->numel; e++) if (fabsf(g[e]) > fabsf(g[best])) best = e;
        const float h = 1e-2f, keep = m->params[best];
        m->params[best] = keep + h;
        CHECK_OK(trainer_gradient(t, &bb.b, &loss, NULL, &st));
        double lp = st.loss;
        m->params[best] = keep - h;
        CHECK_OK(trainer_gradient(t, &bb.b, &loss, NULL, &st));
        double lm = st.loss;
        m->params[best] = keep;
        double fd = (lp - lm) / (2 * (double)h);
        CHECKF(fabs(fd - (double)g[best]) <= 0.05 * fabs((double)g[best]) + 1e-4, "%s: fd %g vs %g", names[i], fd, (double)g[best]);
    }
    /* the same gradient again (no leftovers from the previous calls) */
    float *g2 = malloc(N * sizeof(float));
    CHECK_OK(trainer_gradient(t, &bb.b, &loss, g2, &st));
    CHECK(memcmp(g, g2, N * sizeof(float)) == 0);
    CHECK(st.loss == l0);
    /* Fisher = mean of squared gradients over the probes */
    Batch b2;
    make_batch(&b2, 8);
    MergeProbe pr[2] = { { &bb.b, &loss }, { &b2.b, &loss } };
    float *F = malloc(N * sizeof(float));
    double fl;
    CHECK_OK(merge_stats_fisher(t, pr, 2, F, &fl));
    CHECK_OK(trainer_gradient(t, &b2.b, &loss, g2, &st));
    CHECK_NEAR(fl, (l0 + st.loss) / 2, 1e-9);
    double md = 0;
    for (size_t e = 0; e < N; e++) {
        double ref = ((double)g[e] * (double)g[e] + (double)g2[e] * (double)g2[e]) / 2;
        double d = fabs((double)F[e] - ref) / (ref + 1e-12);
        if (d > md) md = d;
    }
    CHECKF(md < 1e-5, "fisher vs mean squared gradient: relative %g", md);
    CHECK_EQ_INT(merge_stats_fisher(t, pr, 0, F, NULL), AM_EINVAL);
    /* Fisher merge of a model with itself is the model */
    const float *ms[2] = { m->params, m->params };
    const float *fs[2] = { F, g2 };
    for (size_t e = 0; e < N; e++) g2[e] = g2[e] * g2[e];
    float *out = malloc(N * sizeof(float));
    CHECK_OK(merge_fisher(&m->tab, 2, ms, fs, NULL, 1e-10, out));
    md = 0;
    for (size_t e = 0; e < N; e++) md = fmax(md, fabs((double)out[e] - (double)m->params[e]));
    CHECK(md < 1e-6);
    free(g); free(g2); free(F); free(out); free(before);
    trainer_delete(t);
    model_delete(m);
}

TEST(test_merge_stats_grams) {
    Model *m = tiny_model(4);
    Batch bb;
    make_batch(&bb, 9);
    TrainTokens tx[2] = { bb.b.a, bb.b.pos };
    MergeGrams gr;
    CHECK_OK(merge_stats_grams(m, tx, 2, &gr));
    const int C = m->cfg.hidden_size, L = m->cfg.num_layers;
    CHECK_EQ_INT(gr.n_lin, 6 * L); /* q, k, v, attention out, intermediate, output; no pooler */
    size_t real = 0;
    for (int i = 0; i < NB * TQ; i++) real += bb.mask_q[i] > 0;
    CHECK_EQ_INT((long long)gr.rows, (long long)(real + NB * TP));
    /* the query's Gram of layer l = hidden[l]ᵀ hidden[l] / N over the real tokens */
    Encoder *e;
    encoder_new(m, &e);
    double *ref = calloc((size_t)C * C, sizeof(double));
    for (int l = 0; l < L; l++) {
        memset(ref, 0, (size_t)C * C * sizeof(double));
        for (int g = 0; g < 2; g++) {
            CHECK_OK(encoder_forward(e, tx[g].ids, NULL, tx[g].mask, tx[g].B, tx[g].T, 0, 0));
            const float *h = encoder_hidden(e, l);
            for (int r = 0; r < tx[g].B * tx[g].T; r++) {
                if (tx[g].mask && tx[g].mask[r] == 0) continue;
                for (int a = 0; a < C; a++)
                    for (int b = 0; b < C; b++) ref[a * C + b] += (double)h[r * C + a] * (double)h[r * C + b];
            }
        }
        char nm[96];
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.key.weight", l);
        int j = -1;
        for (int q = 0; q < gr.n_lin; q++) if (strcmp(m->tab.t[gr.lin[q]].name, nm) == 0) j = q;
        CHECK(j >= 0);
        if (j < 0) continue;
        double md = 0;
        for (int q = 0; q < C * C; q++) md = fmax(md, fabs(gr.G[j][q] - ref[q] / (double)gr.rows));
        CHECKF(md < 1e-4, "layer %d: max diff %g", l, md);
    }
    /* RegMean of a model with itself is the model, whatever the Grams */
    MergeGrams g2;
    make_batch(&bb, 10);
    TrainTokens t2[1] = { bb.b.pos };
    CHECK_OK(merge_stats_grams(m, t2, 1, &g2));
    CHECK_EQ_INT(g2.n_lin, gr.n_lin);
    const double *G[2 * 6 * 2];
    for (int j = 0; j < gr.n_lin; j++) { G[j] = gr.G[j]; G[gr.n_lin + j] = g2.G[j]; }
    const float *ms[2] = { m->params, m->params };
    float *out = malloc(m->tab.total * sizeof(float));
    CHECK_OK(merge_regmean(&m->tab, 2, ms, gr.n_lin, gr.lin, G, 0.9, NULL, out));
    double md = 0;
    for (size_t q = 0; q < m->tab.total; q++) md = fmax(md, fabs((double)out[q] - (double)m->params[q]));
    CHECKF(md < 1e-4, "regmean self: %g", md);
    TrainTokens none = { NULL, NULL, NULL, 0, 0 };
    CHECK_EQ_INT(merge_stats_grams(m, &none, 1, &g2), AM_EINVAL);
    merge_grams_free(&gr);
    free(ref); free(out);
    encoder_delete(e);
    model_delete(m);
}

TEST(test_merge_stats_self_positioning) {
    Model *m0 = tiny_model(5);
    const size_t N = m0->tab.total;
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    /* τ_1: a few steps on the task; τ_2 = 0 */
    Model *m1 = tiny_model(5);
    TrainConfig tc;
    train_config_default(&tc);
    tc.adamw.lr = 3e-3f;
    Trainer *t;
    CHECK_OK(trainer_new(m1, &tc, &t));
    Batch bb[4];
    for (int i = 0; i < 4; i++) make_batch(&bb[i], 100 + (uint64_t)i);
    for (int s = 0; s < 12; s++) CHECK_OK(trainer_step(t, &bb[s % 4].b, &loss, NULL));
    trainer_delete(t);
    float *tau[2] = { malloc(N * sizeof(float)), calloc(N, sizeof(float)) };
    for (size_t e = 0; e < N; e++) tau[0][e] = m1->params[e] - m0->params[e];
    Model *work = tiny_model(5);
    TrainConfig nd;
    nodrop(&nd);
    CHECK_OK(trainer_new(work, &nd, &t));
    MergeProbe pr[4];
    for (int i = 0; i < 4; i++) pr[i] = (MergeProbe){ &bb[i].b, &loss };
    MergeSpConfig c;
    merge_sp_config_default(&c);
    c.steps = 15;
    c.lr = 0.1;
    c.mu = 0;
    c.reg = MERGE_SP_REG_NONE;
    double lam[2];
    float *out = malloc(N * sizeof(float));
    MergeSpTrace tr;
    double t0 = am_now();
    CHECK_OK(merge_stats_self_position(&c, t, m0->params, (const float *const *)tau, 2, pr, 4, lam, out, &tr));
    printf("  self positioning (tiny, 16 steps x 4 probes): %.0f ms, loss %.4f -> %.4f, λ = %.3f %.3f\n",
           (am_now() - t0) * 1e3, tr.loss[0], tr.loss[15], lam[0], lam[1]);
    CHECK(tr.loss[15] < tr.loss[0]);
    CHECK(lam[0] > 0.5);              /* the trained direction is taken further than 1/K */
    CHECK_NEAR(lam[1], 0.5, 1e-12);   /* τ_2 = 0: no gradient, no regulariser: unchanged */
    CHECK(memcmp(work->params, out, N * sizeof(float)) == 0);
    merge_sp_trace_free(&tr);
    CHECK_EQ_INT(merge_stats_self_position(&c, t, m0->params, (const float *const *)tau, 2, pr, 0, lam, out, NULL), AM_EINVAL);
    trainer_delete(t);
    free(tau[0]); free(tau[1]); free(out);
    model_delete(m0); model_delete(m1); model_delete(work);
}

/* AdaMerging's objective for Self Positioning: the in-batch entropy (no labels) at θ(λ), its
 * gradient ⟨∇θ H, τ_k⟩ per (task vector, layer group) against central differences in λ, and a
 * search that lowers it */
TEST(test_merge_stats_entropy_lambda) {
    Model *m0 = tiny_model(11);
    const size_t N = m0->tab.total;
    LossSpec task, ent;
    loss_spec_default(&task, AM_LOSS_INFONCE);
    loss_spec_default(&ent, AM_LOSS_ENTROPY);
    ent.entropy.scale = 10.0f;
    Batch bb[3];
    for (int i = 0; i < 3; i++) make_batch(&bb[i], 300 + (uint64_t)i);
    /* two task vectors: a few steps on batch 0, a few on batch 1 */
    float *tau[2];
    for (int k = 0; k < 2; k++) {
        Model *mk = tiny_model(11);
        TrainConfig tc;
        train_config_default(&tc);
        tc.adamw.lr = 3e-3f;
        Trainer *t;
        CHECK_OK(trainer_new(mk, &tc, &t));
        for (int s = 0; s < 6; s++) CHECK_OK(trainer_step(t, &bb[k].b, &task, NULL));
        trainer_delete(t);
        tau[k] = malloc(N * sizeof(float));
        for (size_t e = 0; e < N; e++) tau[k][e] = mk->params[e] - m0->params[e];
        model_delete(mk);
    }
    Model *work = tiny_model(11);
    TrainConfig nd;
    nodrop(&nd);
    Trainer *t;
    CHECK_OK(trainer_new(work, &nd, &t));
    MergeProbe pr[2] = { { &bb[1].b, &ent }, { &bb[2].b, &ent } }; /* unlabeled use: the texts only */
    MergeSpConfig c;
    merge_sp_config_default(&c);
    c.per_layer = 1;
    const int L = m0->cfg.num_layers, G = merge_sp_groups(&c, L), K = 2;
    CHECK_EQ_INT(G, L + 2);
    double lam[2 * (AM_MAX_LAYERS + 2)], dl[2 * (AM_MAX_LAYERS + 2)];
    for (int j = 0; j < K * G; j++) lam[j] = 0.3 + 0.05 * j;
    float *theta = malloc(N * sizeof(float)), *g = malloc(N * sizeof(float));
    double H;
    merge_sp_apply(&m0->tab, L, G, K, m0->params, (const float *const *)tau, lam, theta);
    memcpy(work->params, theta, N * sizeof(float));
    CHECK_OK(merge_stats_loss_grad(t, pr, 2, &H, g));
    CHECK(H > 0 && H < log((double)NB) + 1e-9);
    merge_sp_grad(&m0->tab, L, G, K, (const float *const *)tau, g, dl);
    double worst = 0, gmax = 0;
    for (int j = 0; j < K * G; j++) {
        const double h = 1e-2, keep = lam[j];
        double lp, lm;
        lam[j] = keep + h;
        merge_sp_apply(&m0->tab, L, G, K, m0->params, (const float *const *)tau, lam, work->params);
        CHECK_OK(merge_stats_loss_grad(t, pr, 2, &lp, NULL));
        lam[j] = keep - h;
        merge_sp_apply(&m0->tab, L, G, K, m0->params, (const float *const *)tau, lam, work->params);
        CHECK_OK(merge_stats_loss_grad(t, pr, 2, &lm, NULL));
        lam[j] = keep;
        const double fd = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(fd - dl[j]));
        gmax = fmax(gmax, fabs(dl[j]));
    }
    CHECKF(gmax > 1e-4, "the entropy depends on λ (max |dH/dλ| %g)", gmax);
    CHECKF(worst <= 0.03 * gmax + 1e-5, "dH/dλ vs central differences: worst %g of max %g", worst, gmax);
    /* the search lowers the entropy */
    c.steps = 10;
    c.lr = 0.05;
    c.reg = MERGE_SP_REG_NONE;
    c.init = 0.3;
    MergeSpTrace tr;
    float *out = malloc(N * sizeof(float));
    CHECK_OK(merge_stats_self_position(&c, t, m0->params, (const float *const *)tau, K, pr, 2, lam, out, &tr));
    CHECKF(tr.loss[10] < tr.loss[0], "entropy %g -> %g", tr.loss[0], tr.loss[10]);
    CHECK_NEAR(tr.lambda[0], 0.3, 1e-12);
    merge_sp_trace_free(&tr);
    trainer_delete(t);
    free(tau[0]); free(tau[1]); free(theta); free(g); free(out);
    model_delete(m0); model_delete(work);
}

int main(void) {
    RUN(test_merge_stats_gradient);
    RUN(test_merge_stats_grams);
    RUN(test_merge_stats_self_positioning);
    RUN(test_merge_stats_entropy_lambda);
    return test_report();
}
