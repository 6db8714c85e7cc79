/* bench_train.c - `amalgam bench train` on the real training step (trainer_step), shaped like
 * tools/bench/torch_peer.py --mode train (see bench_train.h). */
#include "bench_train.h"
#include "am_base.h"
#include "tensor.h"
#include "trainer.h"

#include <stdlib.h>
#include <string.h>

int bench_train(const char *config, int batch_pairs, int seq, int threads, int warmup, int steps, BenchResult *out) {
    memset(out, 0, sizeof *out);
    if (batch_pairs < 1 || seq < 1 || steps < 1 || warmup < 0)
        return am_error(AM_EINVAL, "bench: batch, seq and steps must be >= 1");
    am_parallel_set_threads(threads);
    EncoderConfig cfg;
    int rc = encoder_config_preset(&cfg, config);
    if (rc) return rc;
    Model *m;
    if ((rc = model_new(&cfg, &m))) return rc;
    model_init_bert(m, 0);
    /* the peer's step: AdamW (torch defaults: wd 0.01 on every tensor), lr 5e-5, no clipping,
     * no schedule, dropout 0.1 */
    TrainConfig tc;
    train_config_default(&tc);
    tc.adamw.lr = 5e-5f;
    tc.no_decay_bias_ln = 0;
    tc.max_grad_norm = 0;
    tc.sched.kind = AM_SCHED_CONSTANT;
    tc.keep_theta0 = 0;
    Trainer *t;
    if ((rc = trainer_new(m, &tc, &t))) {
        model_delete(m);
        return rc;
    }
    LossSpec loss;
    loss_spec_default(&loss, AM_LOSS_INFONCE);
    const size_t N = (size_t)batch_pairs * seq;
    enum { POOL = 4 };
    int32_t *ids = xmalloc(POOL * 2 * N * sizeof *ids);
    AmRng rng;
    am_rng_seed(&rng, 1);
    for (size_t i = 0; i < POOL * 2 * N; i++) ids[i] = 1000 + (int32_t)am_rng_below(&rng, (uint32_t)(cfg.vocab_size - 1000));
    double *ts = xmalloc((size_t)steps * 4 * sizeof *ts);
    double *tf = ts + steps, *tb = tf + steps, *to = tb + steps;
    StepStats st = { 0 };
    for (int i = 0; i < warmup + steps && rc == AM_OK; i++) {
        const int32_t *q = ids + (size_t)(i % POOL) * 2 * N, *p = q + N;
        TrainBatch b = { .a = { q, NULL, NULL, batch_pairs, seq }, .pos = { p, NULL, NULL, batch_pairs, seq } };
        double t0 = am_now();
        rc = trainer_step(t, &b, &loss, &st);
        double dt = (am_now() - t0) * 1e3;
        if (i >= warmup) {
            int k = i - warmup;
            ts[k] = dt;
            tf[k] = st.ms_forward + st.ms_loss;
            tb[k] = st.ms_backward;
            to[k] = st.ms_optim;
        }
    }
    if (rc == AM_OK) {
        bench_summarize(out, ts, steps);
        out->loss = st.loss;
        out->ms_forward = bench_median(tf, steps);
        out->ms_backward = bench_median(tb, steps);
        out->ms_optim = bench_median(to, steps);
        out->per_s = 2 * batch_pairs / (out->ms_median / 1e3);
    }
    free(ts);
    free(ids);
    trainer_delete(t);
    model_delete(m);
    return rc;
}
