/* test_train.c - the training step end to end on a tiny model and a committed pair set
 * (tests/ref/train/pairs64.txt: 64 query/positive pairs whose positives use synonyms):
 * loss falls and retrieval improves, determinism, exact resume from a state blob, LoRA-only
 * training and merging, non-finite detection, graded / 2D / MLM steps, and bad input. */
#include "harness.h"
#include "am_base.h"
#include "encoder.h"
#include "lora.h"
#include "loss.h"
#include "model.h"
#include "tensor.h"
#include "trainer.h"

#include <stdint.h>

#define NPAIRS 64
#define TQ 9
#define TP 10
#define VOCAB 75

static int32_t g_q[NPAIRS][TQ], g_p[NPAIRS][TP];
static int g_data_ok;

static int load_pairs(void) {
    char path[512], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/ref/train/pairs64.txt", AM_TEST_DIR);
    if (am_read_file(path, &buf, &len) != AM_OK) return 0;
    int n = 0;
    for (char *line = strtok(buf, "\n"); line && n < NPAIRS; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) break;
        *tab = 0;
        int k = 0;
        for (char *s = line, *e; k < TQ && (g_q[n][k] = (int32_t)strtol(s, &e, 10), e != s); s = e) k++;
        if (k != TQ) break;
        k = 0;
        for (char *s = tab + 1, *e; k < TP && (g_p[n][k] = (int32_t)strtol(s, &e, 10), e != s); s = e) k++;
        if (k != TP) break;
        n++;
    }
    free(buf);
    return n == NPAIRS;
}

static Model *tiny_model(int mlm_head, uint64_t seed) {
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.vocab_size = VOCAB; cfg.hidden_size = 32; cfg.num_layers = 2; cfg.num_heads = 2;
    cfg.intermediate_size = 64; cfg.max_position = 16; cfg.has_pooler = 1; cfg.has_mlm_head = mlm_head;
    Model *m;
    int rc = model_new(&cfg, &m);
    AM_ASSERT(rc == AM_OK);
    model_init_bert(m, seed);
    return m;
}

static void tiny_config(TrainConfig *c) {
    train_config_default(c);
    c->seed = 1;
    c->adamw.lr = 2e-3f;
    c->sched.kind = AM_SCHED_LINEAR;
    c->sched.warmup_steps = 5;
    c->sched.total_steps = 80;
}

/* batch of `bs` pairs for step k: a seeded permutation per epoch */
typedef struct {
    int32_t q[NPAIRS * TQ], p[NPAIRS * TP];
    float gold[NPAIRS];
} BatchBuf;

static void make_batch(BatchBuf *bb, TrainBatch *b, int step, int bs, int graded) {
    const int per_epoch = NPAIRS / bs, epoch = step / per_epoch, off = (step % per_epoch) * bs;
    int perm[NPAIRS];
    for (int i = 0; i < NPAIRS; i++) perm[i] = i;
    AmRng r;
    am_rng_seed(&r, 1000 + (uint64_t)epoch);
    for (int i = NPAIRS - 1; i > 0; i--) {
        int j = (int)am_rng_below(&r, (uint32_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < bs; i++) {
        int a = perm[off + i], c = a;
        if (graded && i % 2) c = perm[(off + i + 3) % NPAIRS]; /* a mismatched pair */
        memcpy(bb->q + i * TQ, g_q[a], sizeof g_q[a]);
        memcpy(bb->p + i * TP, g_p[c], sizeof g_p[c]);
        bb->gold[i] = c == a ? 4.5f + 0.5f * (float)(i % 4 == 0) : 0.5f * (float)(i % 3);
    }
    memset(b, 0, sizeof *b);
    b->a = (TrainTokens){ bb->q, NULL, NULL, bs, TQ };
    b->pos = (TrainTokens){ bb->p, NULL, NULL, bs, TP };
    b->scores = graded ? bb->gold : NULL;
}

/* top-1 accuracy of query i retrieving positive i among all 64 (eval mode, mean pooling) */
static double retrieval_acc(Encoder *e) {
    static int32_t q[NPAIRS * TQ], p[NPAIRS * TP];
    for (int i = 0; i < NPAIRS; i++) {
        memcpy(q + i * TQ, g_q[i], sizeof g_q[i]);
        memcpy(p + i * TP, g_p[i], sizeof g_p[i]);
    }
    const int C = encoder_model(e)->cfg.hidden_size;
    float *eq = xmalloc((size_t)NPAIRS * C * 4), *ep = xmalloc((size_t)NPAIRS * C * 4);
    int rc = encoder_embed(e, q, NULL, NULL, NPAIRS, TQ, AM_POOL_MEAN, 1, -1, 0, eq);
    rc |= encoder_embed(e, p, NULL, NULL, NPAIRS, TP, AM_POOL_MEAN, 1, -1, 0, ep);
    AM_ASSERT(rc == AM_OK);
    int hit = 0;
    for (int i = 0; i < NPAIRS; i++) {
        int best = -1;
        double bs = -1e30;
        for (int j = 0; j < NPAIRS; j++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += (double)eq[i * C + c] * (double)ep[j * C + c];
            if (s > bs) { bs = s; best = j; }
        }
        hit += best == i;
    }
    free(eq);
    free(ep);
    return (double)hit / NPAIRS;
}

static const float *tensor(const Model *m, const float *buf, const char *name, size_t *n) {
    const ParamInfo *p = param_table_find(&m->tab, name);
    AM_ASSERT(p != NULL);
    if (n) *n = p->numel;
    return buf + p->offset;
}

TEST(end_to_end_loss_falls_retrieval_improves) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    Model *m = tiny_model(1, 5);
    float *before = xmalloc(m->tab.total * 4);
    memcpy(before, m->params, m->tab.total * 4);
    TrainConfig tc;
    tiny_config(&tc);
    Trainer *t;
    CHECK_OK(trainer_new(m, &tc, &t));
    double acc0 = retrieval_acc(trainer_encoder(t));
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    BatchBuf bb;
    TrainBatch b;
    double first = 0, last = 0;
    const int steps = 80;
    StepStats st;
    for (int k = 0; k < steps; k++) {
        make_batch(&bb, &b, k, 16, 0);
        CHECK_OK(trainer_step(t, &b, &loss, &st));
        if (k < 8) first += st.loss / 8;
        if (k >= steps - 8) last += st.loss / 8;
        CHECK(st.updated && st.step == k + 1 && st.sequences == 32 && st.tokens == 16 * (TQ + TP));
        if (k == 0) CHECK(st.lr == 0); /* warm-up starts at 0, as transformers' LambdaLR */
        if (k == 5) CHECK_NEAR(st.lr, 2e-3, 1e-9);
    }
    double acc1 = retrieval_acc(trainer_encoder(t));
    printf("  infonce: loss %.3f -> %.3f, retrieval@1 %.3f -> %.3f\n", first, last, acc0, acc1);
    CHECK(last < 0.6 * first);
    CHECK(acc1 >= acc0 + 0.25);
    /* the pooler and the MLM head got no gradient, so they were not touched (not even decayed) */
    size_t n;
    const float *pw = tensor(m, m->params, "pooler.dense.weight", &n);
    CHECK(memcmp(pw, tensor(m, before, "pooler.dense.weight", NULL), n * 4) == 0);
    const float *hw = tensor(m, m->params, "cls.predictions.transform.dense.weight", &n);
    CHECK(memcmp(hw, tensor(m, before, "cls.predictions.transform.dense.weight", NULL), n * 4) == 0);
    const float *qw = tensor(m, m->params, "encoder.layer.0.attention.self.query.weight", &n);
    CHECK(memcmp(qw, tensor(m, before, "encoder.layer.0.attention.self.query.weight", NULL), n * 4) != 0);
    /* the task vector is θ − θ0 */
    float *tv = xmalloc(m->tab.total * 4);
    CHECK_OK(trainer_task_vector(t, tv));
    int same = 1;
    for (size_t i = 0; i < m->tab.total; i++) same &= tv[i] == m->params[i] - before[i];
    CHECK(same);
    free(tv);
    trainer_delete(t);
    free(before);
    model_delete(m);
}

/* n micro-steps from a fresh model; losses[k] recorded */
static void run_steps(Model *m, const TrainConfig *tc, const LossSpec *loss, int n, double *losses) {
    Trainer *t;
    int rc = trainer_new(m, tc, &t);
    AM_ASSERT(rc == AM_OK);
    BatchBuf bb;
    TrainBatch b;
    for (int k = 0; k < n; k++) {
        StepStats st;
        make_batch(&bb, &b, k, 16, 0);
        rc = trainer_step(t, &b, loss, &st);
        AM_ASSERT(rc == AM_OK);
        losses[k] = st.loss;
    }
    trainer_delete(t);
}

TEST(determinism_bit_identical) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    TrainConfig tc;
    tiny_config(&tc);
    tc.lora.rank = 4; /* LoRA (with dropout) on top of full fine-tuning */
    tc.lora.dropout = 0.1f;
    tc.lora.targets = AM_LORA_ALL;
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    loss.infonce.symmetric = 1;
    double l1[20], l2[20];
    Model *a = tiny_model(0, 9), *b = tiny_model(0, 9);
    run_steps(a, &tc, &loss, 20, l1);
    run_steps(b, &tc, &loss, 20, l2);
    CHECK(memcmp(l1, l2, sizeof l1) == 0);
    CHECK(memcmp(a->params, b->params, a->tab.total * 4) == 0);
    /* another seed gives another run */
    Model *c = tiny_model(0, 9);
    tc.seed = 2;
    run_steps(c, &tc, &loss, 20, l2);
    CHECK(memcmp(l1, l2, sizeof l1) != 0);
    model_delete(a);
    model_delete(b);
    model_delete(c);
}

TEST(state_save_load_resumes_exactly) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    TrainConfig tc;
    tiny_config(&tc);
    tc.grad_accum = 2;
    tc.lora.rank = 4;
    tc.lora.dropout = 0.1f;
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    const int total = 20, cut = 9; /* 9 = in the middle of an accumulation window */
    /* uninterrupted */
    Model *a = tiny_model(0, 3);
    Trainer *ta;
    CHECK_OK(trainer_new(a, &tc, &ta));
    double la[20], lb[20];
    BatchBuf bb;
    TrainBatch b;
    StepStats st;
    for (int k = 0; k < total; k++) {
        make_batch(&bb, &b, k, 16, 0);
        CHECK_OK(trainer_step(ta, &b, &loss, &st));
        la[k] = st.loss;
        CHECK_EQ_INT(st.updated, k % 2 == 1);
    }
    CHECK_EQ_INT(trainer_steps(ta), total / 2);
    /* interrupted at `cut`, saved, model trashed, a new trainer restores and continues */
    Model *m = tiny_model(0, 3);
    Trainer *tb;
    CHECK_OK(trainer_new(m, &tc, &tb));
    for (int k = 0; k < cut; k++) {
        make_batch(&bb, &b, k, 16, 0);
        CHECK_OK(trainer_step(tb, &b, &loss, &st));
        lb[k] = st.loss;
    }
    void *blob;
    size_t len;
    CHECK_OK(trainer_state_save(tb, &blob, &len));
    trainer_delete(tb);
    for (size_t i = 0; i < m->tab.total; i++) m->params[i] = 123.0f;
    TrainConfig other = tc;
    other.adamw.lr = 1.0f; /* the blob's config wins */
    other.seed = 77;
    CHECK_OK(trainer_new(m, &other, &tb));
    CHECK_OK(trainer_state_load(tb, blob, len));
    CHECK_EQ_INT(trainer_steps(tb), cut / 2);
    CHECK(trainer_config(tb)->adamw.lr == tc.adamw.lr && trainer_config(tb)->seed == tc.seed);
    for (int k = cut; k < total; k++) {
        make_batch(&bb, &b, k, 16, 0);
        CHECK_OK(trainer_step(tb, &b, &loss, &st));
        lb[k] = st.loss;
    }
    CHECK(memcmp(la, lb, sizeof la) == 0);
    CHECK(memcmp(a->params, m->params, a->tab.total * 4) == 0);
    Lora *ra = trainer_lora(ta), *rb = trainer_lora(tb);
    CHECK(memcmp(lora_params(ra), lora_params(rb), lora_table(ra)->total * 4) == 0);
    float *tva = xmalloc(a->tab.total * 4), *tvb = xmalloc(a->tab.total * 4);
    CHECK_OK(trainer_task_vector(ta, tva));
    CHECK_OK(trainer_task_vector(tb, tvb));
    CHECK(memcmp(tva, tvb, a->tab.total * 4) == 0);
    free(tva);
    free(tvb);
    /* damaged or foreign blobs are refused, and nothing changes */
    float *snap = xmalloc(m->tab.total * 4);
    memcpy(snap, m->params, m->tab.total * 4);
    ((uint8_t *)blob)[len / 2] ^= 1;
    CHECK_EQ_INT(trainer_state_load(tb, blob, len), AM_EFORMAT);
    ((uint8_t *)blob)[len / 2] ^= 1;
    CHECK_EQ_INT(trainer_state_load(tb, blob, len - 9), AM_EFORMAT);
    CHECK_EQ_INT(trainer_state_load(tb, "nope", 4), AM_EFORMAT);
    Model *big = tiny_model(1, 3); /* + MLM head: another table */
    Trainer *tc2;
    CHECK_OK(trainer_new(big, &tc, &tc2));
    CHECK_EQ_INT(trainer_state_load(tc2, blob, len), AM_ESHAPE);
    trainer_delete(tc2);
    TrainConfig nolora = tc;
    nolora.lora.rank = 0;
    CHECK_OK(trainer_new(big, &nolora, &tc2));
    CHECK_EQ_INT(trainer_state_load(tc2, blob, len), AM_ESHAPE);
    trainer_delete(tc2);
    model_delete(big);
    CHECK(memcmp(snap, m->params, m->tab.total * 4) == 0);
    free(snap);
    free(blob);
    trainer_delete(ta);
    trainer_delete(tb);
    model_delete(a);
    model_delete(m);
}

TEST(lora_only_training_and_merge) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    Model *m = tiny_model(0, 4);
    float *base = xmalloc(m->tab.total * 4);
    memcpy(base, m->params, m->tab.total * 4);
    TrainConfig tc;
    tiny_config(&tc);
    tc.train_base = 0;
    tc.adamw.lr = 1e-2f;
    tc.sched.kind = AM_SCHED_CONSTANT;
    tc.lora.rank = 4;
    tc.lora.alpha = 8;
    tc.lora.targets = AM_LORA_ALL; /* includes layer-0 query/key/value */
    Trainer *t;
    CHECK_OK(trainer_new(m, &tc, &t));
    Lora *lo = trainer_lora(t);
    const size_t LP = lora_table(lo)->total;
    float *l0 = xmalloc(LP * 4);
    memcpy(l0, lora_params(lo), LP * 4);
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    BatchBuf bb;
    TrainBatch b;
    StepStats st;
    double first = 0, last = 0;
    for (int k = 0; k < 60; k++) {
        make_batch(&bb, &b, k, 16, 0);
        CHECK_OK(trainer_step(t, &b, &loss, &st));
        if (k < 5) first += st.loss / 5;
        if (k >= 55) last += st.loss / 5;
    }
    printf("  lora-only: loss %.3f -> %.3f\n", first, last);
    CHECK(last < first - 0.2);
    CHECK(memcmp(base, m->params, m->tab.total * 4) == 0); /* the base did not move, bit for bit */
    /* every adapter moved (B from zero), including layer 0's query / key / value */
    const ParamTable *lt = lora_table(lo);
    for (int i = 0; i < lt->n; i++) {
        int moved = memcmp(l0 + lt->t[i].offset, lora_params(lo) + lt->t[i].offset, lt->t[i].numel * 4) != 0;
        CHECKF(moved, "%s did not change", lt->t[i].name);
    }
    /* merged = base + (alpha/r) B A, and the task vector is exactly that delta */
    float *merged = xmalloc(m->tab.total * 4), *tv = xmalloc(m->tab.total * 4), *delta = xcalloc(m->tab.total, 4);
    trainer_merged_params(t, merged);
    CHECK_OK(trainer_task_vector(t, tv));
    lora_delta(lo, delta);
    double md = 0;
    for (size_t i = 0; i < m->tab.total; i++) {
        md = fmax(md, fabs((double)merged[i] - ((double)base[i] + (double)delta[i])));
        md = fmax(md, fabs((double)tv[i] - (double)delta[i]));
    }
    CHECK(md < 1e-6);
    /* the merged model without adapters embeds like the adapted one */
    Model *mm = tiny_model(0, 4);
    memcpy(mm->params, merged, m->tab.total * 4);
    Encoder *e2;
    encoder_new(mm, &e2);
    const int C = m->cfg.hidden_size;
    float *x1 = xmalloc((size_t)NPAIRS * C * 4), *x2 = xmalloc((size_t)NPAIRS * C * 4);
    static int32_t q[NPAIRS * TQ];
    for (int i = 0; i < NPAIRS; i++) memcpy(q + i * TQ, g_q[i], sizeof g_q[i]);
    CHECK_OK(encoder_embed(trainer_encoder(t), q, NULL, NULL, NPAIRS, TQ, AM_POOL_MEAN, 1, -1, 0, x1));
    CHECK_OK(encoder_embed(e2, q, NULL, NULL, NPAIRS, TQ, AM_POOL_MEAN, 1, -1, 0, x2));
    CHECK(rel_err(x1, x2, (size_t)NPAIRS * C) < 1e-5);
    free(x1);
    free(x2);
    encoder_delete(e2);
    model_delete(mm);
    free(merged);
    free(tv);
    free(delta);
    free(l0);
    free(base);
    trainer_delete(t);
    model_delete(m);
}

TEST(skip_padding_is_exact) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    /* queries (9 tokens) and positives (10) share one padded forward; without dropout, computing
     * only the real tokens gives the same losses and updates up to rounding */
    TrainConfig tc;
    tiny_config(&tc);
    tc.dropout = 0;
    tc.lora.rank = 2;
    tc.lora.targets = AM_LORA_ALL;
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    double l1[6], l2[6];
    Model *a = tiny_model(0, 21), *b = tiny_model(0, 21);
    tc.skip_padding = 1;
    run_steps(a, &tc, &loss, 6, l1);
    tc.skip_padding = 0;
    run_steps(b, &tc, &loss, 6, l2);
    for (int k = 0; k < 6; k++) CHECK_NEAR(l1[k], l2[k], 1e-5 * fabs(l2[k]));
    CHECK(rel_err(a->params, b->params, a->tab.total) < 1e-5);
    model_delete(a);
    model_delete(b);
}

TEST(non_finite_loss_is_refused_without_update) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    Model *m = tiny_model(0, 6);
    TrainConfig tc;
    tiny_config(&tc);
    tc.grad_accum = 2;
    Trainer *t;
    CHECK_OK(trainer_new(m, &tc, &t));
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    BatchBuf bb;
    TrainBatch b;
    StepStats st;
    for (int k = 0; k < 2; k++) {
        make_batch(&bb, &b, k, 16, 0);
        CHECK_OK(trainer_step(t, &b, &loss, &st));
    }
    make_batch(&bb, &b, 2, 16, 0);
    CHECK_OK(trainer_step(t, &b, &loss, &st)); /* first half of a window */
    float *snap = xmalloc(m->tab.total * 4);
    const int32_t tok = bb.q[2];
    m->p.wte[(size_t)tok * m->cfg.hidden_size] = NAN;
    memcpy(snap, m->params, m->tab.total * 4);
    make_batch(&bb, &b, 3, 16, 0);
    make_batch(&bb, &b, 2, 16, 0); /* the batch with `tok` */
    int rc = trainer_step(t, &b, &loss, &st);
    CHECK_EQ_INT(rc, AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "non-finite") != NULL);
    CHECK(memcmp(snap, m->params, m->tab.total * 4) == 0);
    CHECK_EQ_INT(trainer_steps(t), 1);
    /* repaired, training goes on from a clean window */
    m->p.wte[(size_t)tok * m->cfg.hidden_size] = 0.01f;
    CHECK_OK(trainer_step(t, &b, &loss, &st));
    CHECK(!st.updated && isfinite(st.loss));
    CHECK_OK(trainer_step(t, &b, &loss, &st));
    CHECK(st.updated && trainer_steps(t) == 2);
    free(snap);
    trainer_delete(t);
    model_delete(m);
}

TEST(graded_2d_and_mlm_steps) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    Model *m = tiny_model(1, 8);
    float *before = xmalloc(m->tab.total * 4);
    memcpy(before, m->params, m->tab.total * 4);
    TrainConfig tc;
    tiny_config(&tc);
    Trainer *t;
    CHECK_OK(trainer_new(m, &tc, &t));
    BatchBuf bb;
    TrainBatch b;
    StepStats st;
    /* CoDiEmb's STS composite (L_mid on layer (2+1)/2 = 1) */
    LossSpec cod;
    loss_spec_default(&cod, AM_LOSS_CODIEMB_STS);
    double first = 0, last = 0;
    for (int k = 0; k < 40; k++) {
        make_batch(&bb, &b, k, 16, 1);
        CHECK_OK(trainer_step(t, &b, &cod, &st));
        if (k < 5) first += st.loss / 5;
        if (k >= 35) last += st.loss / 5;
    }
    printf("  codiemb sts: loss %.3f -> %.3f (terms:", first, last);
    for (int k = 0; k < st.terms.n_terms; k++) printf(" %s=%.3f", st.terms.term[k].name, st.terms.term[k].value);
    printf(")\n");
    CHECK_EQ_INT(st.terms.n_terms, 4);
    CHECK(last < first);
    /* Starbucks 2D Matryoshka around CoSENT, fixed pairs, one forward for layers 1 and 2 */
    LossSpec cos, sb;
    loss_spec_default(&cos, AM_LOSS_COSENT);
    loss_spec_default(&sb, AM_LOSS_STARBUCKS);
    sb.inner = &cos;
    sb.m2d.n_pairs = 4;
    int ls[4] = { 1, 1, 2, 2 }, ds[4] = { 8, 16, 16, 32 };
    for (int k = 0; k < 4; k++) { sb.m2d.layers[k] = ls[k]; sb.m2d.dims[k] = ds[k]; }
    make_batch(&bb, &b, 0, 16, 1);
    CHECK_OK(trainer_step(t, &b, &sb, &st));
    CHECK_EQ_INT(st.terms.n_terms, 7);
    CHECK(strcmp(st.terms.term[0].name, "l1d8/cosent") == 0);
    /* Starbucks around InfoNCE on pairs with a hard negative, and random 2DMSE */
    LossSpec inf, r2;
    loss_spec_default(&inf, AM_LOSS_INFONCE);
    sb.inner = &inf;
    loss_spec_default(&r2, AM_LOSS_RANDOM_2D);
    r2.inner = &inf;
    make_batch(&bb, &b, 1, 16, 0);
    static int32_t negs[16 * TP];
    for (int i = 0; i < 16; i++) memcpy(negs + i * TP, bb.p + ((i + 5) % 16) * TP, TP * 4);
    b.neg = (TrainTokens){ negs, NULL, NULL, 16, TP };
    CHECK_OK(trainer_step(t, &b, &sb, &st));
    CHECK(isfinite(st.loss) && st.sequences == 48);
    CHECK_OK(trainer_step(t, &b, &r2, &st));
    CHECK(isfinite(st.loss) && st.terms.n_terms == 3);
    /* MLM: the head and the tied embeddings learn (a fresh trainer on the same model, constant lr) */
    trainer_delete(t);
    tc.sched.kind = AM_SCHED_CONSTANT;
    tc.adamw.lr = 3e-3f;
    CHECK_OK(trainer_new(m, &tc, &t));
    LossSpec mlm;
    loss_spec_default(&mlm, AM_LOSS_MLM);
    mlm.mlm.mask_token_id = 4;
    mlm.mlm.n_special = 4;
    mlm.mlm.special[0] = 1; mlm.mlm.special[1] = 2; mlm.mlm.special[2] = 3; mlm.mlm.special[3] = 4;
    static int32_t text[32 * TP];
    static float tmask[32 * TP];
    first = last = 0;
    int masked = 0;
    for (int k = 0; k < 100; k++) {
        for (int i = 0; i < 32; i++) {
            int pi = (k * 32 + i) % NPAIRS;
            for (int j = 0; j < TP; j++) {
                int q = j < TQ;
                text[i * TP + j] = i % 2 ? g_p[pi][j] : q ? g_q[pi][j] : 0;
                tmask[i * TP + j] = i % 2 || q ? 1.0f : 0.0f;
            }
        }
        TrainBatch mb = { .a = { text, NULL, tmask, 32, TP } };
        CHECK_OK(trainer_step(t, &mb, &mlm, &st));
        masked += st.mlm_masked;
        if (k < 5) first += st.loss / 5;
        if (k >= 95) last += st.loss / 5;
    }
    printf("  mlm: loss %.3f -> %.3f, %d masked tokens\n", first, last, masked);
    CHECK(last < first - 0.5);
    CHECK(masked > 100 * 32 * 8 / 10); /* ~15% of ~290 real non-special tokens per step */
    size_t n;
    const float *hw = tensor(m, m->params, "cls.predictions.bias", &n);
    CHECK(memcmp(hw, tensor(m, before, "cls.predictions.bias", NULL), n * 4) != 0);
    const float *pw = tensor(m, m->params, "pooler.dense.weight", &n);
    CHECK(memcmp(pw, tensor(m, before, "pooler.dense.weight", NULL), n * 4) == 0);
    free(before);
    trainer_delete(t);
    model_delete(m);
}

TEST(bad_input_is_reported) {
    if (!g_data_ok) { CHECK(g_data_ok); return; }
    Model *m = tiny_model(0, 2);
    TrainConfig tc;
    tiny_config(&tc);
    Trainer *t;
    tc.grad_accum = 0;
    CHECK_EQ_INT(trainer_new(m, &tc, &t), AM_EINVAL);
    tiny_config(&tc);
    tc.train_base = 0; /* and no LoRA: nothing to train */
    CHECK_EQ_INT(trainer_new(m, &tc, &t), AM_EINVAL);
    tiny_config(&tc);
    CHECK_OK(trainer_new(m, &tc, &t));
    float *snap = xmalloc(m->tab.total * 4);
    memcpy(snap, m->params, m->tab.total * 4);
    BatchBuf bb;
    TrainBatch b;
    StepStats st;
    LossSpec inf, cos, mlm;
    loss_spec_default(&inf, AM_LOSS_INFONCE);
    loss_spec_default(&cos, AM_LOSS_COSENT);
    loss_spec_default(&mlm, AM_LOSS_MLM);
    mlm.mlm.mask_token_id = 4;
    make_batch(&bb, &b, 0, 16, 0);
    CHECK_EQ_INT(trainer_step(t, &b, &cos, &st), AM_EINVAL); /* no gold scores */
    b.pos.B = 15;
    CHECK_EQ_INT(trainer_step(t, &b, &inf, &st), AM_EINVAL); /* 16 queries, 15 positives */
    make_batch(&bb, &b, 0, 16, 0);
    TrainBatch mb = { .a = b.a };
    CHECK_EQ_INT(trainer_step(t, &mb, &mlm, &st), AM_EINVAL); /* no MLM head */
    bb.q[3] = VOCAB + 5;
    CHECK_EQ_INT(trainer_step(t, &b, &inf, &st), AM_EINVAL); /* id outside the vocab */
    make_batch(&bb, &b, 0, 16, 0);
    b.a.T = 17;
    static int32_t longq[16 * 17];
    b.a.ids = longq;
    CHECK_EQ_INT(trainer_step(t, &b, &inf, &st), AM_ESHAPE); /* longer than max_position */
    CHECK(memcmp(snap, m->params, m->tab.total * 4) == 0);
    CHECK_EQ_INT(trainer_steps(t), 0);
    free(snap);
    trainer_delete(t);
    model_delete(m);
}

int main(void) {
    am_parallel_set_threads(2);
    g_data_ok = load_pairs();
    if (!g_data_ok) printf("cannot load tests/ref/train/pairs64.txt\n");
    RUN(end_to_end_loss_falls_retrieval_improves);
    RUN(determinism_bit_identical);
    RUN(state_save_load_resumes_exactly);
    RUN(lora_only_training_and_merge);
    RUN(skip_padding_is_exact);
    RUN(non_finite_loss_is_refused_without_update);
    RUN(graded_2d_and_mlm_steps);
    RUN(bad_input_is_reported);
    return test_report();
}
