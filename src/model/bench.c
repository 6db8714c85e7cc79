/* bench.c - encode / train-step throughput of the C encoder (see bench.h). */
#include "bench.h"
#include "am_base.h"
#include "encoder.h"
#include "model.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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
        out->steps = steps;
        out->threads = am_parallel_get_threads();
        qsort(ts, (size_t)steps, sizeof *ts, cmp_double);
        out->ms_min = ts[0];
        out->ms_max = ts[steps - 1];
        out->ms_median = median(ts, steps);
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

/* ------------------------------------------------------------------ training step */

/* Multiple-negatives ranking loss on mean-pooled, normalised embeddings:
 * q = rows [0, n), p = rows [n, 2n); S = 20 · q̂·p̂ᵀ; loss = mean_i CE(S[i,:], i).
 * Returns the loss; dpooled (2n, C) gets d loss / d pooled. */
static double mnr_loss(float *dpooled, const float *pooled, float *normed, float *dnormed, int n, int C) {
    const float scale = 20.0f;
    l2norm_forward(normed, pooled, 2 * n, C);
    const float *q = normed, *p = normed + (size_t)n * C;
    float *S = xmalloc((size_t)n * n * sizeof *S);
    blas_gemm_nt(S, n, q, C, p, C, n, n, C, scale, 0.0f);
    double loss = 0;
    for (int i = 0; i < n; i++) { /* softmax rows -> dS = (softmax - onehot) / n, times scale */
        float *r = S + (size_t)i * n, mx = -INFINITY;
        for (int j = 0; j < n; j++) mx = r[j] > mx ? r[j] : mx;
        double sum = 0;
        for (int j = 0; j < n; j++) sum += exp((double)(r[j] - mx));
        loss += -(double)(r[i] - mx) + log(sum);
        for (int j = 0; j < n; j++) r[j] = (float)(exp((double)(r[j] - mx)) / sum) - (i == j ? 1.0f : 0.0f);
        for (int j = 0; j < n; j++) r[j] *= scale / (float)n;
    }
    memset(dnormed, 0, (size_t)2 * n * C * sizeof *dnormed);
    blas_gemm_nn(dnormed, C, S, n, p, C, n, C, n, 1.0f, 0.0f);                      /* dq = dS · p */
    blas_gemm_tn(dnormed + (size_t)n * C, C, S, n, q, C, n, C, n, 1.0f, 0.0f);       /* dp = dSᵀ · q */
    memset(dpooled, 0, (size_t)2 * n * C * sizeof *dpooled);
    l2norm_backward(dpooled, dnormed, pooled, 2 * n, C);
    free(S);
    return loss / n;
}

typedef struct {
    float *p, *g, *m, *v;
    size_t n;
    float lr, b1, b2, eps, wd, bc1, bc2;
} AdamJob;

/* torch.optim.AdamW: p *= 1 - lr·wd; p -= lr · m̂ / (sqrt(v̂) + eps); then g = 0 */
static void adam_task(void *ctx, size_t lo, size_t hi, int tid) {
    const AdamJob *j = ctx;
    (void)tid;
    const float decay = 1.0f - j->lr * j->wd, step = j->lr / j->bc1, rbc2 = 1.0f / sqrtf(j->bc2);
    size_t i = lo;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vb1 = _mm256_set1_ps(j->b1), vb2 = _mm256_set1_ps(j->b2), v1b1 = _mm256_set1_ps(1 - j->b1),
                 v1b2 = _mm256_set1_ps(1 - j->b2), vdec = _mm256_set1_ps(decay), vstep = _mm256_set1_ps(step),
                 vr = _mm256_set1_ps(rbc2), veps = _mm256_set1_ps(j->eps), zero = _mm256_setzero_ps();
    for (; i + 8 <= hi; i += 8) {
        __m256 g = _mm256_loadu_ps(j->g + i);
        __m256 m = _mm256_fmadd_ps(vb1, _mm256_loadu_ps(j->m + i), _mm256_mul_ps(v1b1, g));
        __m256 v = _mm256_fmadd_ps(vb2, _mm256_loadu_ps(j->v + i), _mm256_mul_ps(v1b2, _mm256_mul_ps(g, g)));
        __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(v), vr, veps);
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(j->p + i), vdec);
        p = _mm256_fnmadd_ps(vstep, _mm256_div_ps(m, den), p);
        _mm256_storeu_ps(j->p + i, p);
        _mm256_storeu_ps(j->m + i, m);
        _mm256_storeu_ps(j->v + i, v);
        _mm256_storeu_ps(j->g + i, zero);
    }
#endif
    for (; i < hi; i++) {
        float g = j->g[i];
        float m = j->b1 * j->m[i] + (1 - j->b1) * g, v = j->b2 * j->v[i] + (1 - j->b2) * g * g;
        j->p[i] = j->p[i] * decay - step * m / (sqrtf(v) * rbc2 + j->eps);
        j->m[i] = m;
        j->v[i] = v;
        j->g[i] = 0;
    }
}

int bench_train(const char *config, int batch_pairs, int seq, int threads, int warmup, int steps, BenchResult *out) {
    memset(out, 0, sizeof *out);
    if (batch_pairs < 1 || seq < 1 || steps < 1 || warmup < 0)
        return am_error(AM_EINVAL, "bench: batch, seq and steps must be >= 1");
    am_parallel_set_threads(threads);
    Model *m;
    int rc = make_model(config, &m);
    if (rc) return rc;
    const size_t P = m->tab.total;
    float *grads = am_alloc_floats(P), *mom = am_alloc_floats(P), *vel = am_alloc_floats(P);
    if (!grads || !mom || !vel) {
        am_free_aligned(grads);
        am_free_aligned(mom);
        am_free_aligned(vel);
        model_delete(m);
        return am_error(AM_ENOMEM, "bench: cannot allocate optimiser state");
    }
    memset(grads, 0, P * sizeof(float));
    memset(mom, 0, P * sizeof(float));
    memset(vel, 0, P * sizeof(float));
    Encoder *e;
    encoder_new(m, &e);
    const int B = 2 * batch_pairs, C = m->cfg.hidden_size, L = m->cfg.num_layers;
    const size_t N = (size_t)B * seq;
    enum { POOL = 4 };
    int32_t *ids = xmalloc(POOL * N * sizeof *ids);
    float *mask = xmalloc(N * sizeof *mask), *dh = am_alloc_floats(N * C);
    float *pooled = xmalloc((size_t)B * C * sizeof(float)), *normed = xmalloc((size_t)B * C * sizeof(float));
    float *dnormed = xmalloc((size_t)B * C * sizeof(float)), *dpooled = xmalloc((size_t)B * C * sizeof(float));
    double *ts = xmalloc((size_t)steps * 4 * sizeof *ts);
    double *tf = ts + steps, *tb = tf + steps, *to = tb + steps;
    AmRng rng;
    am_rng_seed(&rng, 1);
    random_ids(ids, POOL * N, m->cfg.vocab_size, &rng);
    for (size_t i = 0; i < N; i++) mask[i] = 1.0f;
    const float *dhidden[AM_MAX_LAYERS + 1] = { 0 };
    dhidden[L] = dh;
    AdamJob aj = { m->params, grads, mom, vel, P, 5e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, 0, 0 };
    double loss = 0;
    for (int i = 0; i < warmup + steps && rc == AM_OK; i++) {
        double t0 = am_now();
        rc = encoder_forward(e, ids + (size_t)(i % POOL) * N, NULL, mask, B, seq, 1, (uint64_t)i + 1);
        if (rc) break;
        pool_mean_forward(pooled, encoder_hidden(e, L), mask, B, seq, C, C);
        loss = mnr_loss(dpooled, pooled, normed, dnormed, batch_pairs, C);
        double t1 = am_now();
        memset(dh, 0, N * C * sizeof(float));
        pool_mean_backward(dh, dpooled, mask, B, seq, C, C);
        rc = encoder_backward(e, dhidden, grads);
        if (rc) break;
        double t2 = am_now();
        int t = i + 1;
        aj.bc1 = 1.0f - powf(aj.b1, (float)t);
        aj.bc2 = 1.0f - powf(aj.b2, (float)t);
        am_parallel_for(adam_task, &aj, P, 1u << 16, P);
        double t3 = am_now();
        if (i >= warmup) {
            int k = i - warmup;
            ts[k] = (t3 - t0) * 1e3;
            tf[k] = (t1 - t0) * 1e3;
            tb[k] = (t2 - t1) * 1e3;
            to[k] = (t3 - t2) * 1e3;
        }
    }
    if (rc == AM_OK) {
        out->steps = steps;
        out->threads = am_parallel_get_threads();
        out->loss = loss;
        out->ms_forward = median(tf, steps);
        out->ms_backward = median(tb, steps);
        out->ms_optim = median(to, steps);
        qsort(ts, (size_t)steps, sizeof *ts, cmp_double);
        out->ms_min = ts[0];
        out->ms_max = ts[steps - 1];
        out->ms_median = median(ts, steps);
        out->per_s = B / (out->ms_median / 1e3);
    }
    free(ts);
    free(dpooled);
    free(dnormed);
    free(normed);
    free(pooled);
    am_free_aligned(dh);
    free(mask);
    free(ids);
    encoder_delete(e);
    am_free_aligned(grads);
    am_free_aligned(mom);
    am_free_aligned(vel);
    model_delete(m);
    return rc;
}
