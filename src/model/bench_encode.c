/* bench_encode.c - encode throughput of the C encoder (see bench.h). */
#include "bench.h"
#include "am_base.h"
#include "encoder.h"
#include "model.h"
#include "tensor.h"

#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_summarize(BenchResult *out, double *ms, int steps) {
    out->steps = steps;
    out->threads = am_parallel_get_threads();
    out->ms_median = bench_median(ms, steps); /* sorts ms */
    out->ms_min = ms[0];
    out->ms_max = ms[steps - 1];
}

static int make_model(const char *config, Model **m) {
    EncoderConfig cfg;
    int rc = encoder_config_preset(&cfg, config);
    if (rc) return rc;
    rc = model_new(&cfg, m);
    if (rc) return rc;
    model_init_bert(*m, 0);
    return AM_OK;
}

static void random_ids(int32_t *ids, size_t n, int vocab, AmRng *rng) {
    for (size_t i = 0; i < n; i++) ids[i] = 1000 + (int32_t)am_rng_below(rng, (uint32_t)(vocab - 1000));
}

int bench_encode(const char *config, int batch, int seq, int threads, int warmup, int steps, BenchResult *out) {
    memset(out, 0, sizeof *out);
    if (batch < 1 || seq < 1 || steps < 1 || warmup < 0)
        return am_error(AM_EINVAL, "bench: batch, seq and steps must be >= 1");
    am_parallel_set_threads(threads);
    Model *m;
    int rc = make_model(config, &m);
    if (rc) return rc;
    Encoder *e;
    encoder_new(m, &e);
    const size_t N = (size_t)batch * seq;
    enum { POOL = 4 };
    int32_t *ids = xmalloc(POOL * N * sizeof *ids);
    float *mask = xmalloc(N * sizeof *mask), *emb = xmalloc((size_t)batch * m->cfg.hidden_size * sizeof *emb);
    double *ts = xmalloc((size_t)steps * sizeof *ts);
    AmRng rng;
    am_rng_seed(&rng, 1);
    random_ids(ids, POOL * N, m->cfg.vocab_size, &rng);
    for (size_t i = 0; i < N; i++) mask[i] = 1.0f;
    for (int i = 0; i < warmup + steps && rc == AM_OK; i++) {
        double t0 = am_now();
        rc = encoder_embed(e, ids + (size_t)(i % POOL) * N, NULL, mask, batch, seq, AM_POOL_MEAN, 1, -1, 0, emb);
        double dt = (am_now() - t0) * 1e3;
        if (i >= warmup) ts[i - warmup] = dt;
    }
    if (rc == AM_OK) {
        bench_summarize(out, ts, steps);
        out->per_s = batch / (out->ms_median / 1e3);
    }
    free(ts);
    free(emb);
    free(mask);
    free(ids);
    encoder_delete(e);
    model_delete(m);
    return rc;
}
