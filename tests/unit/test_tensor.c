/* test_tensor.c - kernels against the naive oracle (ref_kernels.c) on awkward shapes, and
 * finite-difference gradient checks for every *_backward.
 *
 * Finite differences: for a kernel y = f(x) we use the scalar loss L = Σ r·y with a fixed
 * random r, so dL/dy = r goes into the backward kernel, and compare its dL/dx with central
 * differences (L(x+ε) - L(x-ε)) / 2ε evaluated in float with ε = 1e-2 (all kernels are
 * smooth at the sampled points). The error measure is the per-tensor relative error used
 * everywhere in the project: max |num - ana| / max |ana|. */
#include "harness.h"
#include "am_base.h"
#include "tensor.h"

#include <stdint.h>

static AmRng g_rng;

static float *rnd(size_t n, float scale) {
    float *x = am_alloc_floats(n ? n : 1);
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * am_rng_uniform(&g_rng) - 1.0f);
    return x;
}
static float *zeros(size_t n) {
    float *x = am_alloc_floats(n ? n : 1);
    memset(x, 0, (n ? n : 1) * sizeof(float));
    return x;
}
static float *copyf(const float *a, size_t n) {
    float *x = am_alloc_floats(n ? n : 1);
    memcpy(x, a, n * sizeof(float));
    return x;
}
#define FREE(...) do { void *_p[] = { __VA_ARGS__ }; for (size_t _i = 0; _i < sizeof _p / sizeof _p[0]; _i++) am_free_aligned(_p[_i]); } while (0)

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

/* ------------------------------------------------------------------ FD machinery */

typedef void (*FwdFn)(void *ctx); /* recompute the output from the inputs */

/* relative error of the analytic gradient `ana` (n) of L = r·out w.r.t. x (n); checks at most
 * `maxn` evenly spread elements */
static double fd_rel(void *ctx, FwdFn f, float *x, size_t n, const float *ana,
                     const float *out, const float *r, size_t nout, float eps, size_t maxn) {
    double md = 0, ma = 0;
    size_t step = n > maxn ? n / maxn : 1;
    for (size_t i = 0; i < n; i += step) {
        float xi = x[i];
        x[i] = xi + eps; f(ctx); double lp = dot(out, r, nout);
        x[i] = xi - eps; f(ctx); double lm = dot(out, r, nout);
        x[i] = xi;
        double num = (lp - lm) / (2.0 * (double)eps);
        double d = fabs(num - (double)ana[i]);
        if (d > md || d != d) md = d;
    }
    for (size_t i = 0; i < n; i++) if (fabs((double)ana[i]) > ma) ma = fabs((double)ana[i]);
    f(ctx);
    return md / (ma > 1e-12 ? ma : 1e-12);
}
#define FD_TOL 5e-3

/* ------------------------------------------------------------------ BLAS vs naive */

static const int shapes[][3] = { {1, 1, 1}, {7, 13, 5}, {13, 7, 5}, {1, 17, 3}, {17, 1, 9}, {5, 9, 1},
                                 {31, 37, 41}, {64, 48, 80}, {100, 3, 129}, {2, 300, 16} };
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

TEST(blas_patterns_vs_ref) {
    for (int s = 0; s < NSHAPES; s++)
        for (int kind = 0; kind < 3; kind++)
            for (int pad = 0; pad < 2; pad++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                int ta = kind == 2, tb = kind == 0;
                int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
                int lda = ac + pad * 3, ldb = bc + pad * 5, ldc = N + pad * 2;
                float *a = rnd((size_t)ar * lda, 1), *b = rnd((size_t)br * ldb, 1);
                float *c = rnd((size_t)M * ldc, 1), *c2 = copyf(c, (size_t)M * ldc);
                float alpha = pad ? 0.5f : 1.0f, beta = pad ? 0.75f : 0.0f;
                if (kind == 0) blas_gemm_nt(c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
                if (kind == 1) blas_gemm_nn(c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
                if (kind == 2) blas_gemm_tn(c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
                ref_gemm(ta, tb, c2, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
                double e = rel_err(c, c2, (size_t)M * ldc);
                CHECKF(e < 1e-5, "kind %d %dx%dx%d pad %d: rel err %g", kind, M, N, K, pad, e);
                /* the parallel versions agree too */
                float *c3 = copyf(c2, (size_t)M * ldc), *c4 = copyf(c2, (size_t)M * ldc);
                if (kind == 0) blas_gemm_nt_par(c3, ldc, a, lda, b, ldb, M, N, K, alpha, 0);
                if (kind == 1) blas_gemm_nn_par(c3, ldc, a, lda, b, ldb, M, N, K, alpha, 0);
                if (kind == 2) blas_gemm_tn_par(c3, ldc, a, lda, b, ldb, M, N, K, alpha, 0);
                ref_gemm(ta, tb, c4, ldc, a, lda, b, ldb, M, N, K, alpha, 0);
                e = rel_err(c3, c4, (size_t)M * ldc);
                CHECKF(e < 1e-5, "par kind %d %dx%dx%d: rel err %g", kind, M, N, K, e);
                FREE(a, b, c, c2, c3, c4);
            }
}

TEST(blas_packed_vs_ref) {
    /* our packed kernel: NT / NN packing, A in place or transposed, bias, beta 0/1, row and
     * column remainders, several K blocks (K > 256) */
    static const int dims[][3] = { {1, 1, 1}, {7, 13, 5}, {6, 16, 8}, {13, 17, 300}, {150, 33, 19}, {5, 1, 520}, {300, 48, 3} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
        for (int v = 0; v < 8; v++) {
            int M = dims[s][0], N = dims[s][1], K = dims[s][2];
            int nn = v & 1, ta = (v >> 1) & 1, acc = (v >> 2) & 1;
            int lda = (ta ? M : K) + 3, ldb = (nn ? N : K) + 2, ldc = N + 1;
            float *a = rnd((size_t)(ta ? K : M) * lda, 1), *b = rnd((size_t)(nn ? K : N) * ldb, 1), *bias = rnd(N, 1);
            float *c = rnd((size_t)M * ldc, 1), *c2 = copyf(c, (size_t)M * ldc);
            float *bp = zeros(blas_packed_floats(N, K));
            if (nn) blas_pack_nn(bp, b, ldb, K, N);
            else blas_pack_nt(bp, b, ldb, N, K);
            blas_gemm_packed(c, ldc, a, lda, ta, bp, acc ? NULL : bias, M, N, K, acc ? 1.0f : 0.0f);
            ref_gemm(ta, !nn, c2, ldc, a, lda, b, ldb, M, N, K, 1.0f, acc ? 1.0f : 0.0f);
            if (!acc) for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) c2[(size_t)i * ldc + j] += bias[j];
            double e = 0; /* only the M x N block (the padding column must stay untouched) */
            for (int i = 0; i < M; i++) e = fmax(e, rel_err(c + (size_t)i * ldc, c2 + (size_t)i * ldc, (size_t)ldc));
            CHECKF(e < 1e-5, "packed %dx%dx%d nn %d ta %d acc %d: %g", M, N, K, nn, ta, acc, e);
            FREE(a, b, bias, c, c2, bp);
        }
}

typedef struct { int max_tid; _Atomic int chunks; } LimCtx;
static void lim_range(void *vctx, size_t lo, size_t hi, int tid) {
    LimCtx *c = vctx;
    int cur = __atomic_load_n(&c->max_tid, __ATOMIC_RELAXED);
    while (tid > cur && !__atomic_compare_exchange_n(&c->max_tid, &cur, tid, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    c->chunks += (int)(hi - lo);
    for (volatile int spin = 0; spin < 50000; spin++) {} /* long enough for a worker to join */
}

TEST(parallel_limit) {
    /* am_parallel_limit caps the threads of the caller's jobs (MergeSpec.threads); every chunk runs */
    am_parallel_set_threads(2);
    CHECK(am_parallel_limit(1) == 0);
    for (int rep = 0; rep < 20; rep++) {
        LimCtx c = {0, 0};
        am_parallel_for(lim_range, &c, 64, 1, 1u << 20);
        CHECK(c.max_tid == 0 && c.chunks == 64);
    }
    CHECK(am_parallel_limit(0) == 1);
    int used = 0;
    for (int rep = 0; rep < 200 && !used; rep++) {
        LimCtx c = {0, 0};
        am_parallel_for(lim_range, &c, 64, 1, 1u << 20);
        CHECK(c.chunks == 64);
        used = c.max_tid == 1;
    }
    CHECK(used); /* without the cap the second thread takes chunks */
}

TEST(blas_packed_wide_kernel_bit_identical) {
    /* the AVX-512 6 x 32 micro-kernel gives the same bits as the AVX2 6 x 16 one: pairs of full
     * panels, an odd last panel, a partial last panel, several K blocks, bias and accumulate */
    if (!blas_wide_kernel()) {
        printf("  (skipped: no AVX-512 on this CPU)\n");
        return;
    }
    static const int dims[][3] = { {1, 32, 1}, {7, 48, 5}, {13, 49, 300}, {150, 128, 128}, {129, 384, 520}, {6, 96, 8} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
        for (int v = 0; v < 4; v++) {
            const int M = dims[s][0], N = dims[s][1], K = dims[s][2], ta = v & 1, acc = (v >> 1) & 1;
            const int lda = (ta ? M : K) + 1, ldc = N + 3;
            float *a = rnd((size_t)(ta ? K : M) * lda, 1), *b = rnd((size_t)N * K, 1), *bias = rnd(N, 1);
            float *c = rnd((size_t)M * ldc, 1), *c2 = copyf(c, (size_t)M * ldc);
            float *bp = zeros(blas_packed_floats(N, K));
            blas_pack_nt(bp, b, K, N, K);
            blas_set_wide(1);
            blas_gemm_packed(c, ldc, a, lda, ta, bp, acc ? NULL : bias, M, N, K, acc ? 1.0f : 0.0f);
            blas_set_wide(0);
            blas_gemm_packed(c2, ldc, a, lda, ta, bp, acc ? NULL : bias, M, N, K, acc ? 1.0f : 0.0f);
            blas_set_wide(-1);
            CHECKF(memcmp(c, c2, (size_t)M * ldc * sizeof(float)) == 0, "wide %dx%dx%d ta %d acc %d differs", M, N, K,
                   ta, acc);
            FREE(a, b, bias, c, c2, bp);
        }
    CHECK(blas_wide_kernel() == 1);
}

TEST(blas_gemm_tn_packed_vs_ref) {
    /* the weight-gradient kernel: C = [C +] Aᵀ·B, A (K,M), B (K,N); K = 1, K not a multiple
     * of the 384-row block (2-3 blocks), M over one 144-row block, primes, 312, partial
     * micro-panels and panels; tight (lda = M) and padded strides; beta 0 over NaN; the
     * column sums of A */
    static const int dims[][3] = { {1, 1, 1}, {7, 13, 5}, {6, 16, 8}, {13, 17, 1}, {312, 23, 401}, {5, 1, 769},
                                   {150, 33, 19}, {311, 312, 97}, {97, 40, 385}, {16, 8, 0} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
        for (int v = 0; v < 8; v++) {
            const int M = dims[s][0], N = dims[s][1], K = dims[s][2];
            const int acc = v & 1, pad = (v >> 1) & 1, sums = (v >> 2) & 1;
            const int lda = M + 3 * pad, ldb = N + 2 * pad, ldc = N + 1;
            float *a = rnd((size_t)(K ? K : 1) * lda, 1), *b = rnd((size_t)(K ? K : 1) * ldb, 1);
            float *c = rnd((size_t)M * ldc, 1), *c2 = copyf(c, (size_t)M * ldc);
            float *cs = rnd(M, 1), *cs2 = copyf(cs, M);
            if (!acc) for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) c[(size_t)i * ldc + j] = NAN;
            blas_gemm_tn_packed(c, ldc, a, lda, b, ldb, M, N, K, acc ? 1.0f : 0.0f, sums ? cs : NULL);
            ref_gemm(1, 0, c2, ldc, a, lda, b, ldb, M, N, K, 1.0f, acc ? 1.0f : 0.0f);
            for (int k = 0; sums && k < K; k++) for (int i = 0; i < M; i++) cs2[i] += a[(size_t)k * lda + i];
            double e = 0; /* the padding column must stay untouched too */
            for (int i = 0; i < M; i++) e = fmax(e, rel_err(c + (size_t)i * ldc, c2 + (size_t)i * ldc, (size_t)ldc));
            /* float sums in another order (per 384-row block, then into C): with only 5 outputs of
             * ~sqrt(K) size, K = 769 gives ~3e-5 */
            CHECKF(e < (K > 384 ? 1e-4 : 1e-5), "tn_packed %dx%dx%d acc %d pad %d: %g", M, N, K, acc, pad, e);
            CHECKF(rel_err(cs, cs2, (size_t)M) < 1e-5, "tn_packed column sums %dx%dx%d", M, N, K);
            FREE(a, b, c, c2, cs, cs2);
        }
}

TEST(blas_gemm_nt_nn_packed_vs_ref) {
    /* B packed on every call (attention's per-head products): T = 1, primes, 312, one and two
     * K blocks, beta 0 over NaN and beta 1, padded strides */
    static const int dims[][3] = { {1, 1, 1}, {1, 7, 64}, {64, 64, 64}, {37, 41, 64}, {64, 64, 37}, {13, 312, 5},
                                   {150, 17, 401}, {16, 8, 0} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
        for (int v = 0; v < 4; v++) {
            const int M = dims[s][0], N = dims[s][1], K = dims[s][2], nn = v & 1, acc = v >> 1;
            const int lda = K + 3, ldb = (nn ? N : K) + 2, ldc = N + 1;
            float *a = rnd((size_t)M * lda, 1), *b = rnd((size_t)(nn ? (K ? K : 1) : N) * ldb, 1);
            float *c = rnd((size_t)M * ldc, 1), *c2 = copyf(c, (size_t)M * ldc);
            if (!acc) for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) c[(size_t)i * ldc + j] = NAN;
            if (nn) blas_gemm_nn_packed(c, ldc, a, lda, b, ldb, M, N, K, acc ? 1.0f : 0.0f);
            else blas_gemm_nt_packed(c, ldc, a, lda, b, ldb, M, N, K, acc ? 1.0f : 0.0f);
            ref_gemm(0, !nn, c2, ldc, a, lda, b, ldb, M, N, K, 1.0f, acc ? 1.0f : 0.0f);
            double e = 0;
            for (int i = 0; i < M; i++) e = fmax(e, rel_err(c + (size_t)i * ldc, c2 + (size_t)i * ldc, (size_t)ldc));
            CHECKF(e < (K > 384 ? 1e-4 : 1e-5), "%s_packed %dx%dx%d acc %d: %g", nn ? "nn" : "nt", M, N, K, acc, e);
            FREE(a, b, c, c2);
        }
}

TEST(blas_batched_vs_ref) {
    /* per-head Q·Kᵀ inside a (T, 3C) row layout: strided heads */
    const int T = 7, C = 12, NH = 3, HS = C / NH;
    float *qkv = rnd((size_t)T * 3 * C, 1), *s = zeros((size_t)NH * T * T), *s2 = zeros((size_t)NH * T * T);
    blas_gemm_batched(0, 1, s, T, (size_t)T * T, qkv, 3 * C, HS, qkv + C, 3 * C, HS, T, T, HS, 0.5f, 0.0f, NH);
    for (int h = 0; h < NH; h++)
        ref_gemm(0, 1, s2 + (size_t)h * T * T, T, qkv + h * HS, 3 * C, qkv + C + h * HS, 3 * C, T, T, HS, 0.5f, 0.0f);
    CHECK(rel_err(s, s2, (size_t)NH * T * T) < 1e-6);
    FREE(qkv, s, s2);
}

TEST(blas_zero_k) {
    float a[1] = { 1 }, b[1] = { 1 }, c[6] = { 1, 2, 3, 4, 5, 6 };
    blas_gemm_nt(c, 3, a, 1, b, 1, 2, 3, 0, 1.0f, 0.5f);
    CHECK_NEAR(c[5], 3.0, 0);
    blas_gemm_nn(c, 3, a, 1, b, 3, 2, 3, 0, 1.0f, 0.0f);
    CHECK_NEAR(c[0], 0.0, 0);
}

/* the double-precision wrappers (losses, logreg, k-means) against a naive double loop */
TEST(blas_double_vs_naive) {
    for (int s = 0; s < NSHAPES; s++)
        for (int kind = 0; kind < 3; kind++)
            for (int pad = 0; pad < 2; pad++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                int ta = kind == 2, tb = kind == 0;
                int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
                int lda = ac + pad * 3, ldb = bc + pad * 5, ldc = N + pad * 2;
                double *a = xmalloc((size_t)ar * lda * sizeof *a), *b = xmalloc((size_t)br * ldb * sizeof *b);
                double *c = xmalloc((size_t)M * ldc * sizeof *c), *c2 = xmalloc((size_t)M * ldc * sizeof *c2);
                for (int i = 0; i < ar * lda; i++) a[i] = am_rng_normal(&g_rng);
                for (int i = 0; i < br * ldb; i++) b[i] = am_rng_normal(&g_rng);
                for (int i = 0; i < M * ldc; i++) c[i] = c2[i] = am_rng_normal(&g_rng);
                double alpha = pad ? 0.5 : 1.0, beta = pad ? 0.75 : 0.0;
                if (kind == 0) blas_dgemm_nt(c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
                if (kind == 1) blas_dgemm_nn(c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
                if (kind == 2) blas_dgemm_tn(c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
                double md = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < ldc; j++) {
                        double want = c2[(size_t)i * ldc + j];
                        if (j < N) {
                            double acc = 0;
                            for (int k = 0; k < K; k++)
                                acc += (ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k]) *
                                       (tb ? b[(size_t)j * ldb + k] : b[(size_t)k * ldb + j]);
                            want = alpha * acc + (beta == 0 ? 0 : beta * want);
                        }
                        md = fmax(md, fabs(c[(size_t)i * ldc + j] - want)); /* padding untouched */
                    }
                CHECKF(md < 1e-12, "dgemm kind %d %dx%dx%d pad %d: max diff %g", kind, M, N, K, pad, md);
                free(a); free(b); free(c); free(c2);
            }
    double a[1] = { 1 }, b[1] = { 1 }, c[6] = { 1, 2, 3, 4, 5, 6 };
    blas_dgemm_tn(c, 3, a, 2, b, 3, 2, 3, 0, 1.0, 0.5); /* K = 0: C = beta·C */
    CHECK(c[5] == 3.0);
    blas_dgemm_nn(c, 3, a, 1, b, 3, 2, 3, 0, 1.0, 0.0);
    CHECK(c[0] == 0.0 && c[5] == 0.0);
    CHECK(strlen(blas_backend()) > 3);
}

/* blas_dsolve_sym: an SPD system (Cholesky), an indefinite one (the LU fallback), a singular one */
static double solve_residual(const double *A, const double *X, const double *B, int n, int nrhs) {
    double md = 0;
    for (int j = 0; j < nrhs; j++)
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += A[i * n + k] * X[j * n + k];
            md = fmax(md, fabs(s - B[j * n + i]));
        }
    return md;
}

TEST(blas_solve_sym) {
    enum { n = 7, nrhs = 3 };
    double A[n * n], B[n * nrhs], a[n * n], x[n * nrhs], R[n * n];
    for (int i = 0; i < n * n; i++) R[i] = am_rng_normal(&g_rng);
    for (int i = 0; i < n * nrhs; i++) B[i] = am_rng_normal(&g_rng);
    for (int pd = 1; pd >= 0; pd--) {
        for (int i = 0; i < n; i++) /* R Rᵀ + I is positive definite; R + Rᵀ is indefinite */
            for (int j = 0; j < n; j++) {
                double s = 0;
                if (pd) { for (int k = 0; k < n; k++) s += R[i * n + k] * R[j * n + k]; s += i == j; }
                else s = R[i * n + j] + R[j * n + i];
                A[i * n + j] = s;
            }
        memcpy(a, A, sizeof a);
        memcpy(x, B, sizeof x);
        CHECK_EQ_INT(blas_dsolve_sym(a, x, n, nrhs), 0);
        double r = solve_residual(A, x, B, n, nrhs);
        CHECKF(r < 1e-9, "%s system: residual %g", pd ? "SPD" : "indefinite", r);
    }
    memset(a, 0, sizeof a); /* singular: LAPACK's info > 0 */
    memcpy(x, B, sizeof x);
    CHECK(blas_dsolve_sym(a, x, n, nrhs) > 0);
}

/* ------------------------------------------------------------------ linear */

typedef struct { float *out, *inp, *w, *b; int N, IC, OC; } LinCtx;
static void lin_fwd(void *c) { LinCtx *x = c; linear_forward(x->out, x->inp, x->w, x->b, x->N, x->IC, x->OC); }

TEST(linear_vs_ref_and_fd) {
    static const int dims[][3] = { {1, 1, 1}, {7, 13, 5}, {37, 13, 29}, {300, 40, 72}, {1, 312, 17}, {513, 17, 3},
                                   {100, 24, 1003} /* wide and short: column tiles */,
                                   {401, 312, 97} /* dW: 2 K blocks, 2 row blocks (96 + 1), odd panels */ };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int N = dims[s][0], IC = dims[s][1], OC = dims[s][2];
        float *inp = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 0.5f), *b = rnd(OC, 0.5f);
        float *out = zeros((size_t)N * OC), *out2 = zeros((size_t)N * OC), *r = rnd((size_t)N * OC, 1);
        linear_forward(out, inp, w, b, N, IC, OC);
        ref_linear_forward(out2, inp, w, b, N, IC, OC);
        CHECKF(rel_err(out, out2, (size_t)N * OC) < 1e-5, "fwd %dx%dx%d", N, IC, OC);
        linear_forward(out, inp, w, NULL, N, IC, OC);
        ref_linear_forward(out2, inp, w, NULL, N, IC, OC);
        CHECKF(rel_err(out, out2, (size_t)N * OC) < 1e-5, "fwd nobias %dx%dx%d", N, IC, OC);
        /* backward vs ref (accumulating into non-zero buffers) */
        float *di = rnd((size_t)N * IC, 1), *dw = rnd((size_t)OC * IC, 1), *db = rnd(OC, 1);
        float *di2 = copyf(di, (size_t)N * IC), *dw2 = copyf(dw, (size_t)OC * IC), *db2 = copyf(db, OC);
        linear_backward(di, dw, db, r, inp, w, N, IC, OC);
        ref_linear_backward(di2, dw2, db2, r, inp, w, N, IC, OC);
        CHECKF(rel_err(di, di2, (size_t)N * IC) < 1e-5, "dinp %dx%dx%d", N, IC, OC);
        CHECKF(rel_err(dw, dw2, (size_t)OC * IC) < 1e-5, "dw %dx%dx%d", N, IC, OC);
        CHECKF(rel_err(db, db2, OC) < 1e-5, "db %dx%dx%d", N, IC, OC);
        /* _set writes dinp */
        float *di3 = rnd((size_t)N * IC, 1), *di4 = zeros((size_t)N * IC);
        linear_backward_set(di3, NULL, NULL, r, inp, w, N, IC, OC);
        ref_linear_backward(di4, NULL, NULL, r, inp, w, N, IC, OC);
        CHECKF(rel_err(di3, di4, (size_t)N * IC) < 1e-5, "dinp set %dx%dx%d", N, IC, OC);
        /* the bias gradient alone (no dW: not fused into the packing) */
        float *db3 = rnd(OC, 1), *db4 = copyf(db3, OC);
        linear_backward(NULL, NULL, db3, r, inp, w, N, IC, OC);
        ref_linear_backward(NULL, NULL, db4, r, inp, w, N, IC, OC);
        CHECKF(rel_err(db3, db4, OC) < 1e-5, "db alone %dx%dx%d", N, IC, OC);
        FREE(db3, db4);
        if (N * IC * OC < 20000) { /* finite differences on the small ones */
            float *gi = zeros((size_t)N * IC), *gw = zeros((size_t)OC * IC), *gb = zeros(OC);
            linear_backward(gi, gw, gb, r, inp, w, N, IC, OC);
            LinCtx c = { out, inp, w, b, N, IC, OC };
            double e1 = fd_rel(&c, lin_fwd, inp, (size_t)N * IC, gi, out, r, (size_t)N * OC, 1e-2f, 200);
            double e2 = fd_rel(&c, lin_fwd, w, (size_t)OC * IC, gw, out, r, (size_t)N * OC, 1e-2f, 200);
            double e3 = fd_rel(&c, lin_fwd, b, OC, gb, out, r, (size_t)N * OC, 1e-2f, 200);
            CHECKF(e1 < FD_TOL && e2 < FD_TOL && e3 < FD_TOL, "fd %dx%dx%d: %g %g %g", N, IC, OC, e1, e2, e3);
            FREE(gi, gw, gb);
        }
        FREE(inp, w, b, out, out2, r, di, dw, db, di2, dw2, db2, di3, di4);
    }
}

/* ------------------------------------------------------------------ GELU */

TEST(gelu_vs_erf) {
    const size_t n = 20001;
    float *x = zeros(n), *y = zeros(n), *y2 = zeros(n), *d = zeros(n), *d2 = zeros(n), *one = zeros(n);
    for (size_t i = 0; i < n; i++) { x[i] = -10.0f + 20.0f * (float)i / (float)(n - 1); one[i] = 1.0f; }
    gelu_forward(y, x, n);
    ref_gelu_forward(y2, x, n);
    double md = 0;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)y[i] - (double)y2[i]) / fmax(1.0, fabs((double)x[i])));
    CHECKF(md < 2e-7 * 4, "gelu max err %g (|x|-scaled)", md);
    gelu_backward(d, x, one, n);
    ref_gelu_backward(d2, x, one, n);
    md = 0;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)d[i] - (double)d2[i]));
    CHECKF(md < 2e-6, "gelu' max err %g", md);
    /* in-place forward and odd lengths take the same path */
    float *x2 = copyf(x, 13);
    gelu_forward(x2, x2, 13);
    CHECK(memcmp(x2, y, 13 * sizeof(float)) == 0);
    FREE(x, y, y2, d, d2, one, x2);
}

typedef struct { float *out, *inp; size_t n; } EwCtx;
static void gelu_fwd_fn(void *c) { EwCtx *x = c; gelu_forward(x->out, x->inp, x->n); }

TEST(gelu_fd) {
    const size_t n = 301;
    float *x = rnd(n, 4), *y = zeros(n), *r = rnd(n, 1), *g = zeros(n);
    gelu_backward(g, x, r, n);
    EwCtx c = { y, x, n };
    double e = fd_rel(&c, gelu_fwd_fn, x, n, g, y, r, n, 1e-2f, 400);
    CHECKF(e < FD_TOL, "gelu fd %g", e);
    FREE(x, y, r, g);
}

/* ------------------------------------------------------------------ LayerNorm */

typedef struct { float *out, *mean, *rstd, *inp, *w, *b; int N, C; } LnCtx;
static void ln_fwd_fn(void *c) { LnCtx *x = c; layernorm_forward(x->out, x->mean, x->rstd, x->inp, x->w, x->b, x->N, x->C, 1e-5f); }

TEST(layernorm_vs_ref_and_fd) {
    static const int dims[][2] = { {1, 1}, {3, 7}, {5, 13}, {17, 64}, {9, 312}, {600, 40} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int N = dims[s][0], C = dims[s][1];
        size_t n = (size_t)N * C;
        float *x = rnd(n, 2), *w = rnd(C, 1), *b = rnd(C, 1), *y = zeros(n), *y2 = zeros(n);
        float *m = zeros(N), *rs = zeros(N), *m2 = zeros(N), *rs2 = zeros(N);
        for (size_t i = 0; i < n; i++) x[i] += 0.5f; /* non-zero mean */
        layernorm_forward(y, m, rs, x, w, b, N, C, 1e-5f);
        ref_layernorm_forward(y2, m2, rs2, x, w, b, N, C, 1e-5f);
        CHECKF(rel_err(y, y2, n) < 1e-5, "ln fwd %dx%d: %g", N, C, rel_err(y, y2, n));
        CHECK(rel_err(rs, rs2, N) < 1e-5);
        float *r = rnd(n, 1), *dx = rnd(n, 1), *dw = rnd(C, 1), *db = rnd(C, 1);
        float *dx2 = copyf(dx, n), *dw2 = copyf(dw, C), *db2 = copyf(db, C);
        layernorm_backward(dx, dw, db, r, x, w, m, rs, N, C);
        ref_layernorm_backward(dx2, dw2, db2, r, x, w, m2, rs2, N, C);
        CHECKF(rel_err(dx, dx2, n) < 1e-4, "ln dx %dx%d: %g", N, C, rel_err(dx, dx2, n));
        CHECKF(rel_err(dw, dw2, C) < 1e-4, "ln dw %dx%d", N, C);
        CHECKF(rel_err(db, db2, C) < 1e-4, "ln db %dx%d", N, C);
        if (C > 1 && n < 2000) {
            float *gx = zeros(n), *gw = zeros(C), *gb = zeros(C);
            layernorm_backward(gx, gw, gb, r, x, w, m, rs, N, C);
            LnCtx c = { y, m, rs, x, w, b, N, C };
            double e1 = fd_rel(&c, ln_fwd_fn, x, n, gx, y, r, n, 1e-2f, 300);
            double e2 = fd_rel(&c, ln_fwd_fn, w, C, gw, y, r, n, 1e-2f, 300);
            double e3 = fd_rel(&c, ln_fwd_fn, b, C, gb, y, r, n, 1e-2f, 300);
            CHECKF(e1 < FD_TOL && e2 < FD_TOL && e3 < FD_TOL, "ln fd %dx%d: %g %g %g", N, C, e1, e2, e3);
            FREE(gx, gw, gb);
        }
        FREE(x, w, b, y, y2, m, rs, m2, rs2, r, dx, dw, db, dx2, dw2, db2);
    }
}

/* the fused residual+LayerNorm backward = LayerNorm backward followed by dropout backward */
TEST(residual_layernorm_backward_matches) {
    const int N = 33, C = 20;
    const size_t n = (size_t)N * C;
    float *x = rnd(n, 2), *w = rnd(C, 1), *b = rnd(C, 1), *y = zeros(n), *m = zeros(N), *rs = zeros(N), *r = rnd(n, 1);
    layernorm_forward(y, m, rs, x, w, b, N, C, 1e-12f);
    float *dres = zeros(n), *dproj = zeros(n), *dw = zeros(C), *db = zeros(C);
    float *part = zeros(layernorm_partials_floats(N, C));
    const float p = 0.3f;
    const uint32_t key = dropout_key(5, 9);
    residual_layernorm_backward(dres, dproj, dw, db, r, x, w, m, rs, part, N, C, p, key);
    float *dx2 = zeros(n), *dw2 = zeros(C), *db2 = zeros(C), *dp2 = zeros(n);
    ref_layernorm_backward(dx2, dw2, db2, r, x, w, m, rs, N, C);
    ref_dropout_forward(dp2, dx2, n, p, key, 0);
    CHECK(rel_err(dres, dx2, n) < 1e-4);
    CHECK(rel_err(dproj, dp2, n) < 1e-4);
    CHECK(rel_err(dw, dw2, C) < 1e-4 && rel_err(db, db2, C) < 1e-4);
    FREE(x, w, b, y, m, rs, r, dres, dproj, dw, db, part, dx2, dw2, db2, dp2);
}

/* ------------------------------------------------------------------ fused linear kernels */

TEST(fused_linear_kernels_vs_composition) {
    static const int dims[][3] = { {1, 5, 3}, {37, 13, 20}, {700, 24, 40} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int N = dims[s][0], IC = dims[s][1], OC = dims[s][2];
        float *inp = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 0.5f), *b = rnd(OC, 0.5f);
        float *pre = zeros((size_t)N * OC), *act = zeros((size_t)N * OC), *pre2 = zeros((size_t)N * OC), *act2 = zeros((size_t)N * OC);
        linear_gelu_forward(pre, act, inp, w, b, N, IC, OC, NULL);
        ref_linear_forward(pre2, inp, w, b, N, IC, OC);
        ref_gelu_forward(act2, pre2, (size_t)N * OC);
        CHECKF(rel_err(pre, pre2, (size_t)N * OC) < 1e-5 && rel_err(act, act2, (size_t)N * OC) < 1e-5, "gelu-linear %d", (int)s);
        /* residual + dropout + LayerNorm tail, C = OC */
        float *resid = rnd((size_t)N * OC, 1), *lw = rnd(OC, 1), *lb = rnd(OC, 1);
        float *out = zeros((size_t)N * OC), *res = zeros((size_t)N * OC), *mu = zeros(N), *rs = zeros(N);
        float *out2 = zeros((size_t)N * OC), *mu2 = zeros(N), *rs2 = zeros(N);
        const float p = 0.25f;
        const uint32_t key = dropout_key(1, 2);
        linear_residual_layernorm_forward(out, res, mu, rs, inp, w, b, resid, lw, lb, N, IC, OC, 1e-12f, p, key, NULL);
        ref_linear_forward(pre2, inp, w, b, N, IC, OC);
        ref_dropout_forward(pre2, pre2, (size_t)N * OC, p, key, 0);
        for (size_t i = 0; i < (size_t)N * OC; i++) pre2[i] += resid[i];
        CHECK(rel_err(res, pre2, (size_t)N * OC) < 1e-5);
        ref_layernorm_forward(out2, mu2, rs2, pre2, lw, lb, N, OC, 1e-12f);
        CHECKF(rel_err(out, out2, (size_t)N * OC) < 1e-4, "res-ln %d: %g", (int)s, rel_err(out, out2, (size_t)N * OC));
        /* gelu_linear_backward = linear backward then gelu' */
        float *dout = rnd((size_t)N * IC, 1); /* here the linear maps OC (gelu'd) -> IC */
        float *w2 = rnd((size_t)IC * OC, 0.5f), *dpre = zeros((size_t)N * OC), *dw = zeros((size_t)IC * OC), *db = zeros(IC);
        float *dpre2 = zeros((size_t)N * OC), *dw2 = zeros((size_t)IC * OC), *db2 = zeros(IC);
        gelu_linear_backward(dpre, dw, db, dout, act, pre, w2, N, OC, IC);
        ref_linear_backward(dpre2, dw2, db2, dout, act2, w2, N, OC, IC);
        float *tmp = zeros((size_t)N * OC);
        ref_linear_forward(pre2, inp, w, b, N, IC, OC);
        ref_gelu_backward(tmp, pre2, dpre2, (size_t)N * OC);
        CHECKF(rel_err(dpre, tmp, (size_t)N * OC) < 1e-4, "gelu-linear bwd dpre %d: %g", (int)s, rel_err(dpre, tmp, (size_t)N * OC));
        CHECK(rel_err(dw, dw2, (size_t)IC * OC) < 1e-5 && rel_err(db, db2, IC) < 1e-5);
        FREE(inp, w, b, pre, act, pre2, act2, resid, lw, lb, out, res, mu, rs, out2, mu2, rs2, dout, w2, dpre, dw, db, dpre2, dw2, db2, tmp);
    }
}

/* a hook sees every row exactly once, after the bias and before the epilogue */
static void add_one_hook(void *ud, float *out, const float *inp, int rows, size_t row0) {
    int *count = ud;
    const int OC = 6;
    for (int r = 0; r < rows; r++) for (int c = 0; c < OC; c++) out[(size_t)r * OC + c] += 1.0f;
    __atomic_fetch_add(count, rows, __ATOMIC_RELAXED);
    (void)inp; (void)row0;
}
TEST(linear_hook) {
    const int N = 1000, IC = 64, OC = 6;
    float *inp = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 1), *b = rnd(OC, 1), *b1 = copyf(b, OC);
    for (int i = 0; i < OC; i++) b1[i] += 1.0f;
    float *pre = zeros((size_t)N * OC), *act = zeros((size_t)N * OC), *pre2 = zeros((size_t)N * OC), *act2 = zeros((size_t)N * OC);
    int count = 0;
    LinearHook h = { add_one_hook, &count };
    linear_gelu_forward(pre, act, inp, w, b, N, IC, OC, &h);
    linear_gelu_forward(pre2, act2, inp, w, b1, N, IC, OC, NULL);
    CHECK_EQ_INT(count, N);
    CHECK(rel_err(act, act2, (size_t)N * OC) < 1e-6);
    FREE(inp, w, b, b1, pre, act, pre2, act2);
}

/* ------------------------------------------------------------------ softmax */

typedef struct { float *p, *s, *km; int R, T; float scale; } SmCtx;
static void sm_fwd_fn(void *c) { SmCtx *x = c; softmax_forward(x->p, x->s, x->km, x->R, x->T, x->scale); }

TEST(softmax_vs_ref_and_fd) {
    static const int dims[][2] = { {1, 1}, {3, 7}, {5, 16}, {4, 33}, {200, 64} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++) {
        int R = dims[s][0], T = dims[s][1];
        size_t n = (size_t)R * T;
        float *sc = rnd(n, 3), *p = zeros(n), *p2 = zeros(n), *km = zeros(T);
        for (int j = 0; j < T; j++) km[j] = (j % 3 == 1) ? 0.0f : 1.0f; /* holes: not a prefix */
        for (int masked = 0; masked < 2; masked++) {
            const float *k = masked ? km : NULL;
            softmax_forward(p, sc, k, R, T, 0.7f);
            ref_softmax_forward(p2, sc, k, R, T, 0.7f);
            CHECKF(rel_err(p, p2, n) < 1e-5, "softmax %dx%d masked %d", R, T, masked);
            if (masked) for (int j = 0; j < T; j++) if (km[j] == 0) CHECK(p[j] == 0.0f);
            float *r = rnd(n, 1), *ds = zeros(n), *ds2 = zeros(n);
            softmax_backward(ds, r, p, R, T, 0.7f);
            ref_softmax_backward(ds2, r, p2, R, T, 0.7f);
            CHECK(rel_err(ds, ds2, n) < 1e-4);
            if (n < 1000 && T > 1) {
                SmCtx c = { p, sc, (float *)k, R, T, 0.7f };
                double e = fd_rel(&c, sm_fwd_fn, sc, n, ds, p, r, n, 1e-2f, 300);
                CHECKF(e < FD_TOL, "softmax fd %dx%d masked %d: %g", R, T, masked, e);
            }
            FREE(r, ds, ds2);
        }
        FREE(sc, p, p2, km);
    }
}

/* ------------------------------------------------------------------ dropout */

TEST(dropout_properties) {
    const size_t n = 100003;
    const float p = 0.1f;
    const uint32_t key = dropout_key(42, 3);
    float *x = zeros(n), *y = zeros(n), *y2 = zeros(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    dropout_forward(y, x, n, p, key, 17);
    size_t zeros_ = 0;
    int consistent = 1;
    for (size_t i = 0; i < n; i++) {
        zeros_ += y[i] == 0;
        float want = dropout_keep(key, 17 + i, p) ? 1.0f / (1.0f - p) : 0.0f;
        if (y[i] != want) consistent = 0;
    }
    CHECK(consistent);
    CHECKF(fabs((double)zeros_ / (double)n - 0.1) < 0.005, "dropped fraction %g", (double)zeros_ / (double)n);
    /* same key -> same mask; chunks with offsets reproduce the whole */
    dropout_forward(y2, x, 1000, p, key, 17);
    dropout_forward(y2 + 1000, x + 1000, n - 1000, p, key, 17 + 1000);
    CHECK(memcmp(y, y2, n * sizeof(float)) == 0);
    ref_dropout_forward(y2, x, n, p, key, 17);
    CHECK(memcmp(y, y2, n * sizeof(float)) == 0);
    /* a different key (seed or site) gives a different mask */
    dropout_forward(y2, x, n, p, dropout_key(43, 3), 17);
    CHECK(memcmp(y, y2, n * sizeof(float)) != 0);
    dropout_forward(y2, x, n, p, dropout_key(42, 4), 17);
    CHECK(memcmp(y, y2, n * sizeof(float)) != 0);
    /* backward applies the same mask and scale */
    dropout_backward(y2, x, n, p, key, 17);
    CHECK(memcmp(y, y2, n * sizeof(float)) == 0);
    /* p = 0 copies */
    dropout_forward(y2, x, n, 0.0f, key, 0);
    CHECK(memcmp(x, y2, n * sizeof(float)) == 0);
    FREE(x, y, y2);
}

/* ------------------------------------------------------------------ attention */

typedef struct { float *ctx, *att, *scr, *qkv, *mask; int B, T, C, NH; float p; uint32_t key; } AttCtx;
static void att_fwd_fn(void *c) {
    AttCtx *x = c;
    attention_forward(x->ctx, x->att, x->scr, x->qkv, x->mask, x->B, x->T, x->C, x->NH, x->p, x->key);
}

/* mask kinds: 0 none, 1 right padding (prefix), 2 holes (not a prefix) */
static float *make_mask(int B, int T, int kind) {
    if (kind == 0) return NULL;
    float *m = zeros((size_t)B * T);
    for (int b = 0; b < B; b++) {
        int len = T - (b * 3) % T;
        if (len < 1) len = 1;
        for (int t = 0; t < T; t++)
            m[(size_t)b * T + t] = kind == 1 ? (t < len ? 1.0f : 0.0f) : ((t == 0 || (t + b) % 3 != 0) ? 1.0f : 0.0f);
    }
    return m;
}

TEST(attention_vs_ref_and_fd) {
    static const int dims[][4] = { /* B, T, C, NH */ {1, 1, 4, 1}, {2, 7, 12, 3}, {3, 5, 10, 2}, {2, 16, 16, 2}, {4, 33, 24, 4},
                                   /* sides >= 16: our packed kernel (masked sequences mix in OpenBLAS) */
                                   {2, 21, 64, 2}, {1, 40, 32, 2} };
    for (size_t s = 0; s < sizeof dims / sizeof dims[0]; s++)
        for (int mk = 0; mk < 3; mk++)
            for (int drop = 0; drop < 2; drop++) {
                int B = dims[s][0], T = dims[s][1], C = dims[s][2], NH = dims[s][3];
                size_t nq = (size_t)B * T * 3 * C, nc = (size_t)B * T * C, na = (size_t)B * NH * T * T;
                float p = drop ? 0.2f : 0.0f;
                uint32_t key = dropout_key(7, (uint32_t)s);
                float *qkv = rnd(nq, 1.5f), *mask = make_mask(B, T, mk);
                float *ctx = zeros(nc), *att = zeros(na), *ctx2 = zeros(nc), *att2 = zeros(na);
                float *scr = zeros(attention_scratch_floats(T) * (size_t)am_parallel_get_threads());
                attention_forward(ctx, att, scr, qkv, mask, B, T, C, NH, p, key);
                ref_attention_forward(ctx2, att2, qkv, mask, B, T, C, NH, p, key);
                CHECKF(rel_err(att, att2, na) < 1e-5, "att B%d T%d C%d NH%d mask %d drop %d", B, T, C, NH, mk, drop);
                CHECKF(rel_err(ctx, ctx2, nc) < 1e-5, "ctx B%d T%d C%d NH%d mask %d drop %d: %g", B, T, C, NH, mk, drop, rel_err(ctx, ctx2, nc));
                /* without saving att: same ctx */
                float *ctx3 = zeros(nc);
                attention_forward(ctx3, NULL, scr, qkv, mask, B, T, C, NH, p, key);
                CHECK(memcmp(ctx, ctx3, nc * sizeof(float)) == 0);
                float *r = rnd(nc, 1), *dq = rnd(nq, 1), *dq2 = zeros(nq);
                attention_backward(dq, scr, r, qkv, att, mask, B, T, C, NH, p, key);
                ref_attention_backward(dq2, r, qkv, att2, mask, B, T, C, NH, p, key);
                CHECKF(rel_err(dq, dq2, nq) < 1e-4, "dqkv B%d T%d C%d NH%d mask %d drop %d: %g", B, T, C, NH, mk, drop, rel_err(dq, dq2, nq));
                if (nq < 4000) {
                    AttCtx c = { ctx, att, scr, qkv, mask, B, T, C, NH, p, key };
                    double e = fd_rel(&c, att_fwd_fn, qkv, nq, dq, ctx, r, nc, 1e-2f, 400);
                    CHECKF(e < FD_TOL, "attention fd B%d T%d C%d NH%d mask %d drop %d: %g", B, T, C, NH, mk, drop, e);
                }
                FREE(qkv, ctx, att, ctx2, att2, scr, ctx3, r, dq, dq2);
                if (mask) am_free_aligned(mask);
            }
}

/* packed variable-length attention == padded attention on the real rows (B <= 4) */
static void varlen_case(const int B, const int T, const int C, const int NH, const int *len) {
    int off[4];
    float *qkv = rnd((size_t)B * T * 3 * C, 1.5f), *mask = zeros((size_t)B * T);
    int nr = 0;
    for (int b = 0; b < B; b++) { off[b] = nr; nr += len[b]; for (int t = 0; t < len[b]; t++) mask[(size_t)b * T + t] = 1; }
    float *packed = zeros((size_t)nr * 3 * C), *ctxp = zeros((size_t)nr * C), *ctx = zeros((size_t)B * T * C);
    for (int b = 0; b < B; b++)
        memcpy(packed + (size_t)off[b] * 3 * C, qkv + (size_t)b * T * 3 * C, (size_t)len[b] * 3 * C * sizeof(float));
    float *scr = zeros(attention_scratch_floats(T) * (size_t)am_parallel_get_threads());
    size_t att_off[4];
    size_t natt = attention_varlen_att_offsets(att_off, len, B, NH);
    float *att = zeros((size_t)B * NH * T * T), *attp = zeros(natt);
    for (int drop = 0; drop < 2; drop++) {
        const float p = drop ? 0.3f : 0.0f;
        const uint32_t key = dropout_key(9, 1);
        attention_forward(ctx, att, scr, qkv, mask, B, T, C, NH, p, key);
        attention_forward_varlen(ctxp, drop ? attp : NULL, scr, packed, off, len, att_off, B, T, C, NH, p, key);
        double e = 0;
        for (int b = 0; b < B; b++)
            e = fmax(e, rel_err(ctxp + (size_t)off[b] * C, ctx + (size_t)b * T * C, (size_t)len[b] * C));
        CHECKF(e < 1e-6, "varlen vs padded (dropout %d): %g", drop, e);
        if (!drop) continue;
        /* backward: the real rows of the padded dqkv */
        float *dctx = rnd((size_t)B * T * C, 1), *dctxp = zeros((size_t)nr * C);
        for (int b = 0; b < B; b++) /* padded query rows get no gradient in the packed view */
            for (int t = len[b]; t < T; t++) memset(dctx + ((size_t)b * T + t) * C, 0, (size_t)C * sizeof(float));
        seq_pack(dctxp, dctx, off, len, B, T, C, 0);
        float *dq = zeros((size_t)B * T * 3 * C), *dqp = zeros((size_t)nr * 3 * C), *dqu = zeros((size_t)B * T * 3 * C);
        attention_backward(dq, scr, dctx, qkv, att, mask, B, T, C, NH, p, key);
        attention_backward_varlen(dqp, scr, dctxp, packed, attp, off, len, att_off, B, T, C, NH, p, key);
        seq_unpack(dqu, dqp, off, len, B, T, 3 * C);
        CHECKF(rel_err(dqu, dq, (size_t)B * T * 3 * C) < 1e-5, "varlen backward: %g", rel_err(dqu, dq, (size_t)B * T * 3 * C));
        /* pack with accumulate adds */
        float *acc = copyf(dctxp, (size_t)nr * C);
        seq_pack(acc, dctx, off, len, B, T, C, 1);
        int twice = 1;
        for (size_t i = 0; i < (size_t)nr * C; i++) twice &= acc[i] == 2.0f * dctxp[i];
        CHECK(twice);
        FREE(dctx, dctxp, dq, dqp, dqu, acc);
    }
    FREE(qkv, mask, packed, ctxp, ctx, scr, att, attp);
}

TEST(attention_varlen_matches_padded) {
    const int len1[4] = { 9, 1, 5, 3 }, len2[3] = { 40, 17, 23 }; /* len2, HS 32: our packed kernel */
    varlen_case(4, 9, 12, 3, len1);
    varlen_case(3, 40, 64, 2, len2);
}

/* ------------------------------------------------------------------ embeddings */

typedef struct { float *out, *wte, *wpe, *wtt; int32_t *ids, *tt; int B, T, C; } EmbCtx;
static void emb_fwd_fn(void *c) { EmbCtx *x = c; embeddings_forward(x->out, x->ids, x->tt, x->wte, x->wpe, x->wtt, x->B, x->T, x->C); }

TEST(embeddings_vs_ref_and_fd) {
    const int B = 3, T = 5, C = 13, V = 11, P = 7, TV = 2;
    const size_t n = (size_t)B * T * C;
    int32_t ids[B * T], tt[B * T];
    for (int i = 0; i < B * T; i++) { ids[i] = (i * 7) % V; tt[i] = i % 4 == 0; }
    ids[3] = ids[4]; /* a repeated id: scatter-add must sum */
    float *wte = rnd((size_t)V * C, 1), *wpe = rnd((size_t)P * C, 1), *wtt = rnd((size_t)TV * C, 1);
    float *out = zeros(n), *out2 = zeros(n), *r = rnd(n, 1);
    embeddings_forward(out, ids, tt, wte, wpe, wtt, B, T, C);
    ref_embeddings_forward(out2, ids, tt, wte, wpe, wtt, B, T, C);
    CHECK(rel_err(out, out2, n) < 1e-6);
    float *g1 = zeros((size_t)V * C), *g2 = zeros((size_t)P * C), *g3 = zeros((size_t)TV * C);
    float *h1 = zeros((size_t)V * C), *h2 = zeros((size_t)P * C), *h3 = zeros((size_t)TV * C);
    embeddings_backward(g1, g2, g3, r, ids, tt, B, T, C, -1);
    ref_embeddings_backward(h1, h2, h3, r, ids, tt, B, T, C, -1);
    CHECK(rel_err(g1, h1, (size_t)V * C) < 1e-6 && rel_err(g2, h2, (size_t)P * C) < 1e-6 && rel_err(g3, h3, (size_t)TV * C) < 1e-6);
    EmbCtx c = { out, wte, wpe, wtt, ids, tt, B, T, C };
    double e1 = fd_rel(&c, emb_fwd_fn, wte, (size_t)V * C, g1, out, r, n, 1e-2f, 1000);
    double e2 = fd_rel(&c, emb_fwd_fn, wpe, (size_t)P * C, g2, out, r, n, 1e-2f, 1000);
    double e3 = fd_rel(&c, emb_fwd_fn, wtt, (size_t)TV * C, g3, out, r, n, 1e-2f, 1000);
    CHECKF(e1 < FD_TOL && e2 < FD_TOL && e3 < FD_TOL, "emb fd %g %g %g", e1, e2, e3);
    /* the padding id gets no word-embedding gradient, positions still do */
    float *k1 = zeros((size_t)V * C), *k2 = zeros((size_t)P * C), *k3 = zeros((size_t)TV * C);
    embeddings_backward(k1, k2, k3, r, ids, tt, B, T, C, ids[3]);
    ref_embeddings_backward(h1, h2, h3, r, ids, tt, B, T, C, ids[3]); /* h* now hold 2x minus pad row */
    int padrow_zero = 1;
    for (int c2 = 0; c2 < C; c2++) padrow_zero &= k1[(size_t)ids[3] * C + c2] == 0.0f;
    CHECK(padrow_zero);
    CHECK(rel_err(k2, g2, (size_t)P * C) < 1e-6);
    FREE(k1, k2, k3);
    /* type ids NULL = 0 */
    embeddings_forward(out, ids, NULL, wte, wpe, wtt, B, T, C);
    CHECK_NEAR(out[0], wte[(size_t)ids[0] * C] + wpe[0] + wtt[0], 1e-6);
    /* fused embeddings + LayerNorm + dropout vs composition */
    float *lw = rnd(C, 1), *lb = rnd(C, 1), *emb = zeros(n), *y = zeros(n), *mu = zeros(B * T), *rs = zeros(B * T);
    float *y2 = zeros(n), *mu2 = zeros(B * T), *rs2 = zeros(B * T);
    uint32_t key = dropout_key(3, 0);
    embeddings_layernorm_forward(y, emb, mu, rs, ids, tt, NULL, wte, wpe, wtt, lw, lb, B, T, C, 1e-12f, 0.1f, key);
    ref_embeddings_forward(out2, ids, tt, wte, wpe, wtt, B, T, C);
    CHECK(rel_err(emb, out2, n) < 1e-6);
    ref_layernorm_forward(y2, mu2, rs2, out2, lw, lb, B * T, C, 1e-12f);
    ref_dropout_forward(y2, y2, n, 0.1f, key, 0);
    CHECK(rel_err(y, y2, n) < 1e-5);
    /* explicit positions: rows 1..3 of sequence 1 as one list of 3 rows gives the same rows */
    int32_t pos[3] = { 1, 2, 3 };
    float *y3 = zeros((size_t)3 * C);
    embeddings_layernorm_forward(y3, NULL, NULL, NULL, ids + T + 1, tt + T + 1, pos, wte, wpe, wtt, lw, lb, 1, 3, C, 1e-12f, 0.0f, 0);
    embeddings_layernorm_forward(y, NULL, NULL, NULL, ids, tt, NULL, wte, wpe, wtt, lw, lb, B, T, C, 1e-12f, 0.0f, 0);
    CHECK(memcmp(y3, y + (size_t)(T + 1) * C, (size_t)3 * C * sizeof(float)) == 0);
    FREE(wte, wpe, wtt, out, out2, r, g1, g2, g3, h1, h2, h3, lw, lb, emb, y, mu, rs, y2, mu2, rs2, y3);
}

/* ------------------------------------------------------------------ pooling, L2 norm */

typedef struct { float *out, *inp, *mask; int B, T, C, D, kind; } PoolCtx;
static void pool_fwd_fn(void *c) {
    PoolCtx *x = c;
    if (x->kind == 0) pool_mean_forward(x->out, x->inp, x->mask, x->B, x->T, x->C, x->D);
    else if (x->kind == 1) pool_cls_forward(x->out, x->inp, x->B, x->T, x->C, x->D);
    else l2norm_forward(x->out, x->inp, x->B, x->D);
}

TEST(pooling_and_l2norm_fd) {
    const int B = 3, T = 6, C = 10, D = 7;
    const size_t n = (size_t)B * T * C;
    float *x = rnd(n, 1), *mask = make_mask(B, T, 1), *out = zeros((size_t)B * D), *out2 = zeros((size_t)B * D);
    float *r = rnd((size_t)B * D, 1);
    pool_mean_forward(out, x, mask, B, T, C, D);
    ref_pool_mean_forward(out2, x, mask, B, T, C, D);
    CHECK(rel_err(out, out2, (size_t)B * D) < 1e-6);
    for (int kind = 0; kind < 2; kind++) {
        float *g = zeros(n);
        if (kind == 0) pool_mean_backward(g, r, mask, B, T, C, D);
        else pool_cls_backward(g, r, B, T, C, D);
        PoolCtx c = { out, x, mask, B, T, C, D, kind };
        double e = fd_rel(&c, pool_fwd_fn, x, n, g, out, r, (size_t)B * D, 1e-2f, 1000);
        CHECKF(e < FD_TOL, "pool %d fd %g", kind, e);
        /* masked-out tokens and channels beyond D get nothing */
        int clean = 1;
        for (int b = 0; b < B; b++) for (int t = 0; t < T; t++) for (int ch = 0; ch < C; ch++) {
            float gv = g[((size_t)b * T + t) * C + ch];
            if ((ch >= D || (kind == 0 && mask[(size_t)b * T + t] == 0) || (kind == 1 && t > 0)) && gv != 0) clean = 0;
        }
        CHECK(clean);
        FREE(g);
    }
    /* mean pooling without a mask = plain mean */
    pool_mean_forward(out, x, NULL, B, T, C, D);
    double s = 0;
    for (int t = 0; t < T; t++) s += (double)x[(size_t)t * C];
    CHECK_NEAR(out[0], s / T, 1e-6);
    /* L2 normalisation */
    float *v = rnd((size_t)B * D, 1), *y = zeros((size_t)B * D), *y2 = zeros((size_t)B * D), *gv = zeros((size_t)B * D);
    l2norm_forward(y, v, B, D);
    ref_l2norm_forward(y2, v, B, D);
    CHECK(rel_err(y, y2, (size_t)B * D) < 1e-6);
    double nn = 0;
    for (int d = 0; d < D; d++) nn += (double)y[d] * (double)y[d];
    CHECK_NEAR(nn, 1.0, 1e-6);
    l2norm_backward(gv, r, v, B, D);
    PoolCtx c = { y, v, NULL, B, 1, D, D, 2 };
    double e = fd_rel(&c, pool_fwd_fn, v, (size_t)B * D, gv, y, r, (size_t)B * D, 1e-3f, 1000);
    CHECKF(e < FD_TOL, "l2norm fd %g", e);
    /* a zero vector stays zero (no NaN) */
    float zv[3] = { 0, 0, 0 }, zo[3];
    l2norm_forward(zo, zv, 1, 3);
    CHECK(zo[0] == 0 && zo[1] == 0 && zo[2] == 0);
    FREE(x, mask, out, out2, r, v, y, y2, gv);
}

/* ------------------------------------------------------------------ threads */

static void count_task(void *ctx, int tid, int nth) {
    int *hits = ctx;
    __atomic_fetch_add(&hits[0], 1, __ATOMIC_RELAXED);
    (void)tid; (void)nth;
}
static void outer_task(void *ctx, int tid, int nth) {
    int *hits = ctx;
    am_parallel_run(count_task, hits + 1 + tid); /* nested: inline on this thread */
    (void)nth;
}

TEST(pool_runs_every_thread_and_nests) {
    int nth = am_parallel_get_threads();
    CHECK(nth >= 1);
    int hits[1 + 64] = { 0 };
    am_parallel_run(outer_task, hits);
    int total = 0;
    for (int i = 0; i < nth && i < 64; i++) total += hits[1 + i];
    CHECK_EQ_INT(total, nth);
    size_t lo, hi, covered = 0, prev = 0;
    for (int t = 0; t < 3; t++) { am_split(10, t, 3, &lo, &hi); CHECK(lo == prev); covered += hi - lo; prev = hi; }
    CHECK_EQ_INT(covered, 10);
    am_split_aligned(100, 16, 1, 2, &lo, &hi);
    CHECK(lo % 16 == 0 && hi == 100);
}

/* alternate static and dynamic jobs, some tiny (workers arrive after the caller finished),
 * checking that every tid runs each static job once and every chunk runs exactly once */
typedef struct { int hits[8]; int nth; } StaticCount;
static void static_count(void *ctx, int tid, int nth) {
    StaticCount *c = ctx;
    __atomic_fetch_add(&c->hits[tid], 1, __ATOMIC_RELAXED);
    if (tid == 0) c->nth = nth; /* the caller; the others only count */
}
static void chunk_count(void *ctx, size_t lo, size_t hi, int tid) {
    int *cnt = ctx;
    for (size_t i = lo; i < hi; i++) __atomic_fetch_add(&cnt[i], 1, __ATOMIC_RELAXED);
    if ((lo / 3) % 5 == 0) for (volatile int k = 0; k < 2000; k++) {} /* uneven chunks */
    (void)tid;
}
TEST(pool_stress_exactly_once) {
    enum { N = 97 };
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        StaticCount sc;
        memset(&sc, 0, sizeof sc);
        am_parallel_run(static_count, &sc);
        for (int t = 0; t < sc.nth && t < 8; t++) bad += sc.hits[t] != 1;
        int cnt[N] = { 0 };
        size_t n = (size_t)(1 + it % N), grain = (size_t)(1 + it % 7);
        am_parallel_for(chunk_count, cnt, n, grain, AM_PAR_MIN_WORK);
        for (size_t i = 0; i < N; i++) bad += cnt[i] != (i < n ? 1 : 0);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(thread_counts_agree) {
    /* same results with 1 and 2 threads for row-split kernels (bit-identical), and the
     * reductions agree to rounding */
    const int N = 257, IC = 48, OC = 40;
    float *inp = rnd((size_t)N * IC, 1), *w = rnd((size_t)OC * IC, 1), *b = rnd(OC, 1);
    float *o1 = zeros((size_t)N * OC), *o2 = zeros((size_t)N * OC), *o3 = zeros((size_t)N * OC);
    int saved = am_parallel_get_threads();
    am_parallel_set_threads(1);
    linear_gelu_forward(o1, o1, inp, w, b, N, IC, OC, NULL);
    am_parallel_set_threads(2);
    linear_gelu_forward(o2, o2, inp, w, b, N, IC, OC, NULL);
    linear_gelu_forward(o3, o3, inp, w, b, N, IC, OC, NULL);
    CHECK(memcmp(o2, o3, (size_t)N * OC * sizeof(float)) == 0);
    CHECK(rel_err(o1, o2, (size_t)N * OC) < 1e-6);
    am_parallel_set_threads(saved);
    FREE(inp, w, b, o1, o2, o3);
}

int main(void) {
    am_rng_seed(&g_rng, 1234);
    am_parallel_set_threads(2);
    RUN(blas_patterns_vs_ref);
    RUN(blas_packed_wide_kernel_bit_identical);
    RUN(parallel_limit);
    RUN(blas_packed_vs_ref);
    RUN(blas_gemm_tn_packed_vs_ref);
    RUN(blas_gemm_nt_nn_packed_vs_ref);
    RUN(blas_batched_vs_ref);
    RUN(blas_zero_k);
    RUN(blas_double_vs_naive);
    RUN(blas_solve_sym);
    RUN(linear_vs_ref_and_fd);
    RUN(gelu_vs_erf);
    RUN(gelu_fd);
    RUN(layernorm_vs_ref_and_fd);
    RUN(residual_layernorm_backward_matches);
    RUN(fused_linear_kernels_vs_composition);
    RUN(linear_hook);
    RUN(softmax_vs_ref_and_fd);
    RUN(dropout_properties);
    RUN(attention_vs_ref_and_fd);
    RUN(attention_varlen_matches_padded);
    RUN(embeddings_vs_ref_and_fd);
    RUN(pooling_and_l2norm_fd);
    RUN(pool_runs_every_thread_and_nests);
    RUN(pool_stress_exactly_once);
    RUN(thread_counts_agree);
    return test_report();
}
