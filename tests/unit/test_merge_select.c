/* test_merge_select.c - the exact k-th smallest |x_m − b| of TIES' magnitude masks
 * (merge_abs_delta_kth_multi: sampled bracket, band pass, selection) against a sort, for
 * K = 1..9 models (the band pass has a K <= 8 path that interleaves the models and a general
 * one), densities 0.1 / 0.5 / 0.9, magnitudes with many ties at the k-th value, inactive models
 * between active ones, lengths that leave a tail, and NaNs the sample does not see. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "harness.h"
#include "merge_internal.h"
#include "tensor.h"

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

TEST(test_merge_select_kth_multi) {
    const size_t ns[2] = {140001, 40009}; /* three band chunks with a tail; one */
    const double dens[3] = {0.1, 0.5, 0.9};
    AmRng r;
    am_rng_seed(&r, 11);
    int checks = 0;
    float *srt[9];
    const int thr0 = am_parallel_get_threads();
    for (int ni = 0; ni < 2; ni++) {
        {
            const size_t n = ns[ni];
            float *b = xmalloc(n * sizeof *b);
            float *x[9];
            for (size_t e = 0; e < n; e++) b[e] = am_rng_normal(&r);
            for (int K = 1; K <= 9; K++) {
                for (int variant = 0; variant < 2; variant++) {
                    for (int m = 0; m < K; m++) {
                        x[m] = xmalloc(n * sizeof(float));
                        for (size_t e = 0; e < n; e++) {
                            /* variant 1: |δ| on a grid of 24 values, so thousands tie at the k-th */
                            float d = variant == 0 ? 0.1f * am_rng_normal(&r)
                                                   : (float)am_rng_below(&r, 24) / 64.0f;
                            if (variant == 1 && am_rng_below(&r, 2)) d = -d;
                            x[m][e] = b[e] + d;
                        }
                        srt[m] = xmalloc(n * sizeof(float));
                        for (size_t e = 0; e < n; e++) srt[m][e] = fabsf(x[m][e] - b[e]);
                        qsort(srt[m], n, sizeof(float), cmp_f);
                    }
                    for (int thr = 1; thr <= 2; thr++)
                    for (int di = 0; di < 3; di++) {
                        am_parallel_set_threads(thr);
                        size_t k[9];
                        float out[9], ref[9];
                        for (int m = 0; m < K; m++) {
                            size_t kk = (size_t)(dens[(di + m) % 3] * (double)n);
                            /* every third model inactive (density 1), when others are active */
                            k[m] = K > 1 && m % 3 == 1 ? SIZE_MAX : n - kk;
                            out[m] = -1.0f;
                            if (k[m] == SIZE_MAX) continue;
                            ref[m] = srt[m][k[m]];
                        }
                        WsBuf *ws = xcalloc(MERGE_WS(9), sizeof *ws);
                        int bad = merge_abs_delta_kth_multi((const float *const *)x, b, n, K, k, out, ws);
                        CHECK_EQ_INT(bad, -1);
                        for (int m = 0; m < K; m++) {
                            if (k[m] == SIZE_MAX) continue;
                            CHECKF(memcmp(&out[m], &ref[m], sizeof(float)) == 0,
                                   "threads %d n %zu K %d variant %d density %.1f model %d: %.9g, sorted %.9g",
                                   thr, n, K, variant, dens[(di + m) % 3], m, (double)out[m], (double)ref[m]);
                            checks++;
                        }
                        /* a NaN in the last active model, in the vector part and in the tail */
                        int mb = K - 1;
                        while (k[mb] == SIZE_MAX) mb--;
                        size_t at = di == 0 ? n - 1 : di == 1 ? n / 2 + 5 : 17;
                        float keep = x[mb][at];
                        x[mb][at] = NAN;
                        bad = merge_abs_delta_kth_multi((const float *const *)x, b, n, K, k, out, ws);
                        CHECK_EQ_INT(bad, mb);
                        x[mb][at] = keep;
                        merge_ws_free(ws, MERGE_WS(9)); /* frees ws */
                    }
                    for (int m = 0; m < K; m++) { free(x[m]); free(srt[m]); }
                }
            }
            free(b);
        }
    }
    am_parallel_set_threads(thr0);
    CHECKF(checks > 400, "%d thresholds compared", checks);
}

/* merge_band_kth: the sub-sampled bracket around rank r hit, and missed (the sub-sample, one entry
 * in 16 at fixed places, sees only the smallest values), for sizes around its threshold */
TEST(test_merge_select_band_kth) {
    const size_t ns[4] = {8191, 8192, 20000, 100003};
    AmRng r;
    am_rng_seed(&r, 3);
    for (int ni = 0; ni < 4; ni++) {
        const size_t n = ns[ni];
        float *a = xmalloc(n * sizeof *a), *w = xmalloc(n * sizeof *w), *tmp = xmalloc(n * sizeof *tmp);
        float *srt = xmalloc(n * sizeof *srt);
        for (int variant = 0; variant < 3; variant++) {
            for (size_t i = 0; i < n; i++)
                a[i] = variant == 0 ? am_rng_uniform(&r) : variant == 1 ? (float)am_rng_below(&r, 9) : 1.0f + (float)i;
            if (variant == 2) /* the sub-sample's places hold the smallest values: its bracket misses */
                for (size_t i = 0; i < n / 16; i++) a[16 * i + (i * 7 & 15)] = -(float)i;
            memcpy(srt, a, n * sizeof *a);
            qsort(srt, n, sizeof *srt, cmp_f);
            const size_t ranks[4] = {0, n / 3, n / 2, n - 1};
            for (int ri = 0; ri < 4; ri++) {
                memcpy(w, a, n * sizeof *a);
                float got = merge_band_kth(w, tmp, n, ranks[ri]);
                CHECKF(memcmp(&got, &srt[ranks[ri]], sizeof got) == 0, "n %zu variant %d rank %zu: %.9g, sorted %.9g",
                       n, variant, ranks[ri], (double)got, (double)srt[ranks[ri]]);
            }
        }
        free(a); free(w); free(tmp); free(srt);
    }
}

int main(void) {
    RUN(test_merge_select_band_kth);
    RUN(test_merge_select_kth_multi);
    return test_report();
}
