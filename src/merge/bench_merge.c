/* bench_merge.c - the triad and merge timings of `amalgam bench merge`. */
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "bench_merge.h"
#include "tensor.h"

typedef struct { float *a; const float *b, *c; float s; } Triad;

static void triad_range(void *vctx, size_t lo, size_t hi, int tid) {
    Triad *t = vctx;
    (void)tid;
    float *a = t->a, s = t->s;
    const float *b = t->b, *c = t->c;
    for (size_t i = lo * 2048; i < hi * 2048; i++) a[i] = b[i] + s * c[i];
}

double bench_triad(size_t n, int reps) {
    n = (n + 2047) / 2048 * 2048;
    float *a = am_alloc_floats(n), *b = am_alloc_floats(n), *c = am_alloc_floats(n);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
        Triad t = {a, b, c, 3.0f};
        for (int r = 0; r < reps; r++) {
            double t0 = am_now();
            am_parallel_for(triad_range, &t, n / 2048, 8, n * 3);
            double dt = am_now() - t0, gbps = 3.0 * (double)n * sizeof(float) / dt / 1e9;
            if (gbps > best) best = gbps;
        }
    }
    am_free_aligned(a);
    am_free_aligned(b);
    am_free_aligned(c);
    return best;
}

int bench_merge_models(const char *config, int k, Model ***out) {
    EncoderConfig cfg;
    int rc = encoder_config_preset(&cfg, config);
    if (rc) return rc;
    Model **m = xcalloc((size_t)k + 1, sizeof *m);
    for (int i = 0; i <= k; i++) {
        if ((rc = model_new(&cfg, &m[i]))) { bench_merge_free(m, i - 1); return rc; }
        model_init_bert(m[i], 1000 + (uint64_t)i);
    }
    /* fine-tuned models near the base: base + a model-specific perturbation */
    for (int i = 1; i <= k; i++)
        for (size_t e = 0; e < m[0]->tab.total; e++)
            m[i]->params[e] = m[0]->params[e] + 0.1f * m[i]->params[e];
    *out = m;
    return AM_OK;
}

void bench_merge_free(Model **models, int k) {
    if (!models) return;
    for (int i = 0; i <= k; i++) model_delete(models[i]);
    free(models);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_merge_time(const MergeSpec *spec, Model **models, int k, Model *out, int reps, MergeBench *r) {
    memset(r, 0, sizeof *r);
    int base = merge_method_info(spec->method)->base == MERGE_BASE_REQUIRED;
    double t[reps > 0 ? reps : 1];
    MergeStats st;
    for (int i = 0; i < reps; i++) {
        double t0 = am_now();
        int rc = merge_models(spec, models + 1, NULL, k, base ? models[0] : NULL, out, &st);
        if (rc) return rc;
        t[i] = am_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    r->ms_best = t[0] * 1e3;
    r->ms_median = t[reps / 2] * 1e3;
    r->bytes = st.bytes_read + st.bytes_written;
    r->gbps = (double)r->bytes / t[0] / 1e9;
    return AM_OK;
}
