/* blas.c - the only file that calls cblas: one wrapper per GEMM pattern (float and double), shapes asserted;
 * and our packed AVX2 kernel (blas_gemm_packed, blas_gemm_{tn,nt,nn}_packed).
 *
 * All wrappers are row-major and single-threaded (OpenBLAS is set to one thread by
 * blas_init); kernels call them from inside pool tasks on disjoint row ranges. The *_par
 * variants split rows of C over the pool for standalone use.
 */
#include "tensor.h"
#include "am_base.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define AM_AVX2 1
#endif

/* Our pool threads each run single-threaded sgemm on disjoint slices; an OpenBLAS thread count
 * above one here would oversubscribe the cores. Someone else (a CLI command, a test) may set
 * it, so this is re-checked on every pool dispatch (am_parallel_run calls it, caller thread
 * only) and before the first GEMM. openblas_get_num_threads() just reads a global. */
void blas_init(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;
static void blas_once(void) { pthread_once(&g_blas_once, blas_init); }

/* Shape checks shared by the wrappers: rows of each operand as stored, and its row length. */
static void check(int M, int N, int K, int ldc, int lda, int acols, int ldb, int bcols) {
    AM_ASSERT(M >= 0 && N >= 0 && K >= 0);
    AM_ASSERT(ldc >= (N > 0 ? N : 1));
    AM_ASSERT(lda >= (acols > 0 ? acols : 1));
    AM_ASSERT(ldb >= (bcols > 0 ? bcols : 1));
}

static void zero_or_scale(float *c, int ldc, int M, int N, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) c[(size_t)i * ldc + j] = beta == 0 ? 0.0f : beta * c[(size_t)i * ldc + j];
}

void blas_gemm_nt(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                  int M, int N, int K, float alpha, float beta) {
    check(M, N, K, ldc, lda, K, ldb, K); /* A (M,K), B (N,K) */
    if (M == 0 || N == 0) return;
    if (K == 0) { zero_or_scale(c, ldc, M, N, beta); return; }
    blas_once();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_gemm_nn(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                  int M, int N, int K, float alpha, float beta) {
    check(M, N, K, ldc, lda, K, ldb, N); /* A (M,K), B (K,N) */
    if (M == 0 || N == 0) return;
    if (K == 0) { zero_or_scale(c, ldc, M, N, beta); return; }
    blas_once();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_gemm_tn(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                  int M, int N, int K, float alpha, float beta) {
    check(M, N, K, ldc, lda, M, ldb, N); /* A (K,M), B (K,N) */
    if (M == 0 || N == 0) return;
    if (K == 0) { zero_or_scale(c, ldc, M, N, beta); return; }
    blas_once();
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_gemm_batched(int ta, int tb, float *c, int ldc, size_t stride_c,
                       const float *a, int lda, size_t stride_a,
                       const float *b, int ldb, size_t stride_b,
                       int M, int N, int K, float alpha, float beta, int batch) {
    AM_ASSERT(batch >= 0);
    check(M, N, K, ldc, lda, ta ? M : K, ldb, tb ? K : N);
    if (M == 0 || N == 0) return;
    blas_once();
    for (int i = 0; i < batch; i++) {
        float *ci = c + (size_t)i * stride_c;
        if (K == 0) { zero_or_scale(ci, ldc, M, N, beta); continue; }
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, a + (size_t)i * stride_a, lda, b + (size_t)i * stride_b, ldb,
                    beta, ci, ldc);
    }
}

/* ------------------------------------------------------------------ double precision */

/* The same three patterns in double, for the losses (train/loss.c) and the evaluation probes
 * (eval/logreg.c, eval/kmeans.c), which accumulate in double. Same shape checks and K == 0
 * rule; always OpenBLAS. */
static void dzero_or_scale(double *c, int ldc, int M, int N, double beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) c[(size_t)i * ldc + j] = beta == 0 ? 0.0 : beta * c[(size_t)i * ldc + j];
}

void blas_dgemm_nt(double *c, int ldc, const double *a, int lda, const double *b, int ldb,
                   int M, int N, int K, double alpha, double beta) {
    check(M, N, K, ldc, lda, K, ldb, K); /* A (M,K), B (N,K) */
    if (M == 0 || N == 0) return;
    if (K == 0) { dzero_or_scale(c, ldc, M, N, beta); return; }
    blas_once();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_dgemm_nn(double *c, int ldc, const double *a, int lda, const double *b, int ldb,
                   int M, int N, int K, double alpha, double beta) {
    check(M, N, K, ldc, lda, K, ldb, N); /* A (M,K), B (K,N) */
    if (M == 0 || N == 0) return;
    if (K == 0) { dzero_or_scale(c, ldc, M, N, beta); return; }
    blas_once();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

void blas_dgemm_tn(double *c, int ldc, const double *a, int lda, const double *b, int ldb,
                   int M, int N, int K, double alpha, double beta) {
    check(M, N, K, ldc, lda, M, ldb, N); /* A (K,M), B (K,N) */
    if (M == 0 || N == 0) return;
    if (K == 0) { dzero_or_scale(c, ldc, M, N, beta); return; }
    blas_once();
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* LAPACK in OpenBLAS (Fortran ABI, 32-bit integers) */
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
                   const int *ldb, int *info);
extern void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b, const int *ldb,
                   int *info);

int blas_dsolve_sym(double *a, double *b, int n, int nrhs) {
    AM_ASSERT(n >= 0 && nrhs >= 0);
    if (n == 0 || nrhs == 0) return 0;
    blas_once();
    size_t na = (size_t)n * (size_t)n, nb = (size_t)n * (size_t)nrhs;
    double *a2 = xmalloc(na * sizeof(double)), *b2 = xmalloc(nb * sizeof(double));
    memcpy(a2, a, na * sizeof(double)); /* dposv overwrites both on failure too */
    memcpy(b2, b, nb * sizeof(double));
    int info = 0;
    dposv_("U", &n, &nrhs, a, &n, b, &n, &info); /* symmetric: row- or column-major alike */
    if (info != 0) {
        int *ipiv = xmalloc((size_t)n * sizeof(int));
        memcpy(a, a2, na * sizeof(double));
        memcpy(b, b2, nb * sizeof(double));
        dgesv_(&n, &nrhs, a, &n, ipiv, b, &n, &info);
        free(ipiv);
    }
    free(a2);
    free(b2);
    return info;
}

/* the AVX-512 micro-kernel's switch: -1 = not decided yet (cached; see blas_wide_kernel) */
static int g_wide = -1;
static int have_avx512(void) {
    int x = __atomic_load_n(&g_wide, __ATOMIC_RELAXED);
    if (x < 0) {
#if defined(AM_AVX2) && (defined(__x86_64__) || defined(__i386__))
        const char *off = getenv("AMALGAM_NO_AVX512");
        __builtin_cpu_init();
        x = __builtin_cpu_supports("avx512f") && !(off && *off && strcmp(off, "0") != 0);
#else
        x = 0;
#endif
        __atomic_store_n(&g_wide, x, __ATOMIC_RELAXED);
    }
    return x;
}
int blas_wide_kernel(void) { return have_avx512(); }
void blas_set_wide(int on) {
    __atomic_store_n(&g_wide, -1, __ATOMIC_RELAXED);
    if (on >= 0) __atomic_store_n(&g_wide, on && have_avx512(), __ATOMIC_RELAXED);
}

/* "Haswell (OpenBLAS 0.3.21 ...)": the kernels OpenBLAS picked at load time. Static storage. */
const char *blas_backend(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s (%s)", openblas_get_corename(), openblas_get_config());
    return buf;
}

/* ------------------------------------------------------------------ parallel versions */

typedef struct {
    int kind; /* 0 nt, 1 nn, 2 tn */
    float *c; int ldc; const float *a; int lda; const float *b; int ldb;
    int M, N, K; float alpha, beta;
} GemmJob;

#define PAR_GRAIN 128 /* rows of C per chunk */

static void gemm_task(void *ctx, size_t lo, size_t hi, int tid) {
    const GemmJob *j = ctx;
    (void)tid;
    int m = (int)(hi - lo);
    float *c = j->c + lo * (size_t)j->ldc;
    switch (j->kind) {
    case 0: blas_gemm_nt(c, j->ldc, j->a + lo * (size_t)j->lda, j->lda, j->b, j->ldb, m, j->N, j->K, j->alpha, j->beta); break;
    case 1: blas_gemm_nn(c, j->ldc, j->a + lo * (size_t)j->lda, j->lda, j->b, j->ldb, m, j->N, j->K, j->alpha, j->beta); break;
    default: blas_gemm_tn(c, j->ldc, j->a + lo, j->lda, j->b, j->ldb, m, j->N, j->K, j->alpha, j->beta); break;
    }
}

static void gemm_par(int kind, float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                     int M, int N, int K, float alpha, float beta) {
    GemmJob j = { kind, c, ldc, a, lda, b, ldb, M, N, K, alpha, beta };
    am_parallel_for(gemm_task, &j, (size_t)M, PAR_GRAIN, (size_t)M * N * (K ? K : 1) / 8);
}

void blas_gemm_nt_par(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                      int M, int N, int K, float alpha, float beta) {
    check(M, N, K, ldc, lda, K, ldb, K);
    gemm_par(0, c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
}
void blas_gemm_nn_par(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                      int M, int N, int K, float alpha, float beta) {
    check(M, N, K, ldc, lda, K, ldb, N);
    gemm_par(1, c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
}
void blas_gemm_tn_par(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                      int M, int N, int K, float alpha, float beta) {
    check(M, N, K, ldc, lda, M, ldb, N);
    gemm_par(2, c, ldc, a, lda, b, ldb, M, N, K, alpha, beta);
}

/* ------------------------------------------------------------------ packed-B GEMM
 *
 * Our own kernel for the linear layers (BLIS structure, AVX2 + FMA): B is packed ONCE per call
 * into 16-column panels and shared read-only by every pool thread; each thread packs its block
 * of A (PK_MC x PK_KC, row major or transposed) into 6-row micro-panels in its scratch slot 1,
 * so the micro-kernel broadcasts from one contiguous stream; the bias is added when the tile
 * is stored. Against OpenBLAS on the encoder's shapes this removes the per-call packing of B
 * and the beta / bias passes.
 *
 * Measured single-thread on Zen 3 (FMA peak ~100 GFLOP/s, machine shared, CPU time, best of
 * 7): the micro-kernel alone in L1 reaches ~90 GFLOP/s with packed A, ~70 reading A in place
 * (the previous version); whole GEMMs (4096 rows, K = 384 / 1536): 77-90 GFLOP/s, against
 * 67-78 for the in-place version. PK_KC 384 with the A micro-panel kept in L1 while the B
 * panels of a PK_NP group stream past it beat PK_KC 256 with the B panel kept in L1 (BLIS's
 * order) by ~5 % here, within the noise of a shared machine.
 *
 * Packed layout: K is cut in blocks of PK_KC; block (k0, kc) starts at Bp + k0 * Npad
 * (Npad = N rounded up to 16) and holds ceil(N/16) panels of kc x 16 floats (k major), the
 * columns past N zero-filled. Micro-tile 6 x 16 (12 accumulators), row blocks of PK_MC.
 */
#define PK_NR 16
#define PK_MR 6
#define PK_KC 384
#define PK_MC 144
#define PK_NP 8

static int npad16(int N) { return (N + PK_NR - 1) / PK_NR * PK_NR; }

size_t blas_packed_floats(int N, int K) {
    return (size_t)npad16(N) * (size_t)(K > 0 ? K : 1) + PK_NR;
}

/* one k-block; src(k, c) gives B[k0 + k][j0 + c] in the "B (K, N)" view */
#define PACK_BLOCK(SRC)                                                                        \
    for (int jp = p0; jp < p1; jp++) {                                                         \
        float *d = Bp + (size_t)k0 * Npad + (size_t)jp * kc * PK_NR;                           \
        int j0 = jp * PK_NR, nj = N - j0 < PK_NR ? N - j0 : PK_NR;                             \
        if (nj == PK_NR) /* constant bound: vectorised when SRC is contiguous */               \
            for (int k = 0; k < kc; k++) {                                                     \
                float *dk = d + (size_t)k * PK_NR;                                             \
                for (int c = 0; c < PK_NR; c++) dk[c] = SRC;                                   \
            }                                                                                  \
        else                                                                                   \
            for (int k = 0; k < kc; k++) {                                                     \
                float *dk = d + (size_t)k * PK_NR;                                             \
                for (int c = 0; c < nj; c++) dk[c] = SRC;                                      \
                for (int c = nj; c < PK_NR; c++) dk[c] = 0.0f;                                 \
            }                                                                                  \
    }

int blas_packed_panels(int N) { return (N + PK_NR - 1) / PK_NR; }

#ifdef AM_AVX2
/* in-register 8 x 8 transpose: afterwards v[j] holds float j of every input row */
static inline void transpose8x8_regs(__m256 v[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    const __m256 q0 = _mm256_shuffle_ps(t0, t2, 0x44), q1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 q2 = _mm256_shuffle_ps(t1, t3, 0x44), q3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 q4 = _mm256_shuffle_ps(t4, t6, 0x44), q5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 q6 = _mm256_shuffle_ps(t5, t7, 0x44), q7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    v[0] = _mm256_permute2f128_ps(q0, q4, 0x20);
    v[1] = _mm256_permute2f128_ps(q1, q5, 0x20);
    v[2] = _mm256_permute2f128_ps(q2, q6, 0x20);
    v[3] = _mm256_permute2f128_ps(q3, q7, 0x20);
    v[4] = _mm256_permute2f128_ps(q0, q4, 0x31);
    v[5] = _mm256_permute2f128_ps(q1, q5, 0x31);
    v[6] = _mm256_permute2f128_ps(q2, q6, 0x31);
    v[7] = _mm256_permute2f128_ps(q3, q7, 0x31);
}

/* 8 rows (r, stride ld) x 8 floats, transposed: float j of row i goes to d[j*dstride + i] */
static inline void transpose8x8(float *d, size_t dstride, const float *r, size_t ld) {
    __m256 v[8];
    for (int i = 0; i < 8; i++) v[i] = _mm256_loadu_ps(r + i * ld);
    transpose8x8_regs(v);
    for (int j = 0; j < 8; j++) _mm256_storeu_ps(d + j * dstride, v[j]);
}
#endif

void blas_pack_nt_panels(float *Bp, const float *B, int ldb, int N, int K, int p0, int p1) {
    AM_ASSERT(N >= 0 && K >= 0 && ldb >= (K > 0 ? K : 1) && p0 >= 0 && p1 <= blas_packed_panels(N));
    const int Npad = npad16(N);
#ifdef AM_AVX2
    /* full panels, 8 k at a time: two 8 x 8 transposes (the element-wise gather of PACK_BLOCK
     * is ~4x slower; this packs the weights of every forward and K for every attention head) */
    const int pf = p1 * PK_NR <= N ? p1 : N / PK_NR; /* full panels are [p0, pf) */
    for (int k0 = 0; k0 < K && pf > p0; k0 += PK_KC) {
        const int kc = K - k0 < PK_KC ? K - k0 : PK_KC, kc8 = kc / 8 * 8;
        for (int jp = p0; jp < pf; jp++) {
            float *d = Bp + (size_t)k0 * Npad + (size_t)jp * kc * PK_NR;
            const float *src = B + (size_t)jp * PK_NR * ldb + k0;
            for (int k = 0; k < kc8; k += 8) {
                transpose8x8(d + (size_t)k * PK_NR, PK_NR, src + k, (size_t)ldb);
                transpose8x8(d + (size_t)k * PK_NR + 8, PK_NR, src + (size_t)8 * ldb + k, (size_t)ldb);
            }
            for (int k = kc8; k < kc; k++)
                for (int c = 0; c < PK_NR; c++) d[(size_t)k * PK_NR + c] = src[(size_t)c * ldb + k];
        }
    }
    if (pf > p0) p0 = pf;
#endif
    for (int k0 = 0; k0 < K && p1 > p0; k0 += PK_KC) {
        const int kc = K - k0 < PK_KC ? K - k0 : PK_KC;
        PACK_BLOCK(B[(size_t)(j0 + c) * ldb + k0 + k])
    }
}

void blas_pack_nn_panels(float *Bp, const float *B, int ldb, int K, int N, int p0, int p1) {
    AM_ASSERT(N >= 0 && K >= 0 && ldb >= (N > 0 ? N : 1) && p0 >= 0 && p1 <= blas_packed_panels(N));
    const int Npad = npad16(N);
#ifdef AM_AVX2
    /* full panels row by row: each row of B is read once, contiguously (the panel-major
     * order of PACK_BLOCK reads 64 bytes per row and ran at ~4 GB/s on (4096, 384)) */
    const int pf = p1 * PK_NR <= N ? p1 : N / PK_NR; /* full panels are [p0, pf) */
    for (int k0 = 0; k0 < K && pf > p0; k0 += PK_KC) {
        const int kc = K - k0 < PK_KC ? K - k0 : PK_KC;
        float *d0 = Bp + (size_t)k0 * Npad;
        for (int k = 0; k < kc; k++) {
            const float *src = B + (size_t)(k0 + k) * ldb;
            for (int jp = p0; jp < pf; jp++) {
                float *d = d0 + ((size_t)jp * kc + k) * PK_NR;
                _mm256_storeu_ps(d, _mm256_loadu_ps(src + jp * PK_NR));
                _mm256_storeu_ps(d + 8, _mm256_loadu_ps(src + jp * PK_NR + 8));
            }
        }
    }
    if (pf > p0) p0 = pf;
#endif
    for (int k0 = 0; k0 < K && p1 > p0; k0 += PK_KC) {
        const int kc = K - k0 < PK_KC ? K - k0 : PK_KC;
        PACK_BLOCK(B[(size_t)(k0 + k) * ldb + j0 + c])
    }
}

void blas_pack_nt(float *Bp, const float *B, int ldb, int N, int K) {
    blas_pack_nt_panels(Bp, B, ldb, N, K, 0, blas_packed_panels(N));
}
void blas_pack_nn(float *Bp, const float *B, int ldb, int K, int N) {
    blas_pack_nn_panels(Bp, B, ldb, K, N, 0, blas_packed_panels(N));
}

/* Store one tile row: C = (first ? beta*C + bias : C) + acc, columns [0, nj). */
static inline void store_row(float *cr, const float *acc16, const float *bias, int nj, int first, float beta) {
    for (int q = 0; q < nj; q++) {
        float v = acc16[q];
        if (first) {
            if (bias) v += bias[q];
            if (beta != 0) v += cr[q];
        } else {
            v += cr[q];
        }
        cr[q] = v;
    }
}

/* Pack rows [0, mc) x k [0, kc) of op(A) into ceil(mc/6) micro-panels of kc x 6 floats
 * (k major: panel p holds A(6p + r, k) at ap[p*6*kc + 6k + r]), rows past mc zero-filled.
 * ta = 0: A(r, k) = a[r*lda + k]; ta = 1: A(r, k) = a[k*lda + r]. Packing makes the micro-
 * kernel's broadcasts one contiguous stream; reading A in place (6 row streams, or one cache
 * line per k when transposed) measured ~70 GFLOP/s against ~88 packed (single thread, L2). */
static void pack_a(float *ap, const float *a, int lda, int ta, int mc, int kc) {
    for (int i = 0; i < mc; i += PK_MR) {
        const int mr = mc - i < PK_MR ? mc - i : PK_MR;
        float *d = ap + (size_t)i * kc;
        int k = 0;
#ifdef AM_AVX2
        if (mr == PK_MR && kc > 0) {
            const __m256i m6 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
            if (ta) { /* 6 consecutive floats per k; 8-float stores overlap, the last is masked */
                const float *s = a + i;
                for (; k < kc; k++) {
                    const __m256 v = _mm256_maskload_ps(s + (size_t)k * lda, m6);
                    if (k + 1 < kc) _mm256_storeu_ps(d + (size_t)k * PK_MR, v);
                    else _mm256_maskstore_ps(d + (size_t)k * PK_MR, m6, v);
                }
                continue;
            }
            /* ta = 0: 6 rows x 8 k, transposed 8 x 8 (rows 6, 7 zero) */
            const float *s0 = a + (size_t)i * lda;
            for (; k + 8 <= kc; k += 8) {
                __m256 v[8];
                for (int r = 0; r < 6; r++) v[r] = _mm256_loadu_ps(s0 + r * (size_t)lda + k);
                v[6] = v[7] = _mm256_setzero_ps();
                transpose8x8_regs(v);
                /* column j = A(0..5, k+j) at dk + 6j: each 8-float store spills 2 zeros into the next
                 * column, which its own store then overwrites; the last one is masked at the end */
                float *dk = d + (size_t)k * PK_MR;
                for (int j = 0; j < 7; j++) _mm256_storeu_ps(dk + 6 * j, v[j]);
                if (k + 8 < kc) _mm256_storeu_ps(dk + 42, v[7]);
                else _mm256_maskstore_ps(dk + 42, m6, v[7]);
            }
        }
#endif
        /* generic: the remaining k (and partial panels, zero-filled) */
        for (; k < kc; k++)
            for (int r = 0; r < PK_MR; r++) {
                const float v = r < mr ? (ta ? a[(size_t)k * lda + i + r] : a[(size_t)(i + r) * lda + k]) : 0.0f;
                d[(size_t)k * PK_MR + r] = v;
            }
    }
}

#ifdef AM_AVX2
/* 6 x 16 tile over kc steps: ap one packed A micro-panel (kc x 6), bp one B panel (kc x 16);
 * stores the first mr rows and nj columns. */
static void micro_6x16(int kc, const float *ap, const float *bp, float *c, int ldc, const float *bias, int mr,
                       int nj, int first, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int r = 0; r < mr; r++) { /* the C tile is touched only at the end: fetch it now */
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 15), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(bp + (size_t)k * PK_NR), b1 = _mm256_load_ps(bp + (size_t)k * PK_NR + 8);
        const float *ak = ap + (size_t)k * PK_MR;
        __m256 av;
#define ROW(r) av = _mm256_broadcast_ss(ak + r); \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0); c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
    const __m256 acc[6][2] = { { c00, c01 }, { c10, c11 }, { c20, c21 }, { c30, c31 }, { c40, c41 }, { c50, c51 } };
    if (nj == PK_NR) {
        const __m256 vb0 = bias && first ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        const __m256 vb1 = bias && first ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
        const int keep = !first || beta != 0;
        for (int r = 0; r < mr; r++) {
            float *cr = c + (size_t)r * ldc;
            __m256 v0 = _mm256_add_ps(acc[r][0], vb0), v1 = _mm256_add_ps(acc[r][1], vb1);
            if (keep) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8)); }
            _mm256_storeu_ps(cr, v0);
            _mm256_storeu_ps(cr + 8, v1);
        }
    } else {
        float t[PK_NR];
        for (int r = 0; r < mr; r++) {
            _mm256_storeu_ps(t, acc[r][0]);
            _mm256_storeu_ps(t + 8, acc[r][1]);
            store_row(c + (size_t)r * ldc, t, bias, nj, first, beta);
        }
    }
}
#define micro micro_6x16

/* The same 6-row tile over two adjacent full B panels (6 x 32) in AVX-512 registers, for CPUs
 * that have it (checked at run time: the build may target a CPU without it). Each element is
 * the same chain of FMAs over k as in micro_6x16, and the store does the same adds in the same
 * order (acc + bias-or-zero, then + C), so results are bit-identical; it halves the
 * instructions per FMA. bp0, bp1: the two panels (kc x 16 each). */
__attribute__((target("avx512f,fma"))) static void micro_6x32(int kc, const float *ap, const float *bp0,
                                                             const float *bp1, float *c, int ldc, const float *bias,
                                                             int mr, int first, float beta) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 31), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(bp0 + (size_t)k * PK_NR), b1 = _mm512_load_ps(bp1 + (size_t)k * PK_NR);
        const float *ak = ap + (size_t)k * PK_MR;
        __m512 av;
#define ROW(r) av = _mm512_set1_ps(ak[r]); \
        c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0); c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
    const __m512 acc[6][2] = { { c00, c01 }, { c10, c11 }, { c20, c21 }, { c30, c31 }, { c40, c41 }, { c50, c51 } };
    const __m512 vb0 = bias && first ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 vb1 = bias && first ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
    const int keep = !first || beta != 0;
    for (int r = 0; r < mr; r++) {
        float *cr = c + (size_t)r * ldc;
        __m512 v0 = _mm512_add_ps(acc[r][0], vb0), v1 = _mm512_add_ps(acc[r][1], vb1);
        if (keep) { v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr)); v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16)); }
        _mm512_storeu_ps(cr, v0);
        _mm512_storeu_ps(cr + 16, v1);
    }
}

#define HAVE_WIDE 1
#else
static void micro_generic(int kc, const float *ap, const float *bp, float *c, int ldc, const float *bias, int mr,
                          int nj, int first, float beta) {
    float acc[PK_MR][PK_NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < PK_MR; r++)
            for (int q = 0; q < PK_NR; q++) acc[r][q] += ap[(size_t)k * PK_MR + r] * bp[(size_t)k * PK_NR + q];
    for (int r = 0; r < mr; r++) store_row(c + (size_t)r * ldc, acc[r], bias, nj, first, beta);
}
#define micro micro_generic
#endif

static void gemm_packed(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                        int M, int N, int K, float beta, int p0, int p1);

/* C rows [0, mc) += a packed A block (mc x kc, 6-row strips) times packed B panels [p0, p1) (kc x 16
 * each, k-major). B goes in groups of PK_NP panels (kc x 128 floats, in L2 next to the A block);
 * the A micro-panel (kc x 6) stays in L1 while the group's panels stream past it. */
static inline void block_panels(float *c, int ldc, const float *ap, int mc, int kc, const float *bk, int p0, int p1,
                                int N, const float *bias, int first, float beta) {
#ifdef HAVE_WIDE
    const int wide = have_avx512();
#endif
    for (int jq = p0; jq < p1; jq += PK_NP) {
        const int jq1 = p1 - jq < PK_NP ? p1 : jq + PK_NP;
        for (int i = 0; i < mc; i += PK_MR) {
            const int mr = mc - i < PK_MR ? mc - i : PK_MR;
            const float *ai = ap + (size_t)i * kc;
            float *ci = c + (size_t)i * ldc;
            int jp = jq;
#ifdef HAVE_WIDE
            if (wide) /* pairs of full panels on the 6 x 32 kernel */
                for (; jp + 1 < jq1 && (jp + 2) * PK_NR <= N; jp += 2)
                    micro_6x32(kc, ai, bk + (size_t)jp * kc * PK_NR, bk + (size_t)(jp + 1) * kc * PK_NR, ci + jp * PK_NR,
                               ldc, bias ? bias + jp * PK_NR : NULL, mr, first, beta);
#endif
            for (; jp < jq1; jp++) {
                const int j0 = jp * PK_NR, nj = N - j0 < PK_NR ? N - j0 : PK_NR;
                micro(kc, ai, bk + (size_t)jp * kc * PK_NR, ci + j0, ldc, bias ? bias + j0 : NULL, mr, nj, first, beta);
            }
        }
    }
}

void blas_gemm_packed(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                      int M, int N, int K, float beta) {
    gemm_packed(c, ldc, a, lda, ta, Bp, bias, M, N, K, beta, 0, blas_packed_panels(N));
}

void blas_gemm_packed_panels(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                             int M, int N, int K, float beta, int p0, int p1) {
    gemm_packed(c, ldc, a, lda, ta, Bp, bias, M, N, K, beta, p0, p1);
}

static void gemm_packed(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                        int M, int N, int K, float beta, int p0, int p1) {
    AM_ASSERT(M >= 0 && N >= 0 && K >= 0 && (beta == 0.0f || beta == 1.0f));
    AM_ASSERT(ldc >= (N > 0 ? N : 1) && lda >= ((ta ? M : K) > 0 ? (ta ? M : K) : 1));
    AM_ASSERT(p0 >= 0 && p1 <= blas_packed_panels(N) && p0 <= p1);
    if (M == 0 || N == 0 || p0 == p1) return;
    if (K == 0) { /* C = beta*C + bias */
        const int j1 = p1 * PK_NR < N ? p1 * PK_NR : N;
        for (int i = 0; i < M; i++)
            for (int j = p0 * PK_NR; j < j1; j++) {
                float *cij = c + (size_t)i * ldc + j;
                *cij = (beta != 0 ? *cij : 0.0f) + (bias ? bias[j] : 0.0f);
            }
        return;
    }
    /* packed A block (PK_MC x PK_KC); slot 1 of the calling thread (slot 0 holds the shared B) */
    float *ap = blas_scratch(1, (size_t)PK_MC * PK_KC + 8); /* + 8: overlapping stores */
    const int np = (N + PK_NR - 1) / PK_NR, Npad = np * PK_NR;
    for (int k0 = 0; k0 < K; k0 += PK_KC) {
        const int kc = K - k0 < PK_KC ? K - k0 : PK_KC, first = k0 == 0;
        const float *bk = Bp + (size_t)k0 * Npad;
        for (int i0 = 0; i0 < M; i0 += PK_MC) {
            const int mc = M - i0 < PK_MC ? M - i0 : PK_MC;
            pack_a(ap, ta ? a + (size_t)k0 * lda + i0 : a + (size_t)i0 * lda + k0, lda, ta, mc, kc);
            block_panels(c + (size_t)i0 * ldc, ldc, ap, mc, kc, bk, p0, p1, N, bias, first, beta);
        }
    }
}

/* ------------------------------------------------------------------ weight-gradient GEMM
 *
 * C (M,N) = beta·C + Aᵀ·B with A (K,M) and B (K,N) row-major: dW = doutᵀ · inp, K = tokens
 * (4096 on small's training step) against M, N = 384..1536. Both operands arrive k-major, so
 * per K block of DW_KC rows B is packed into 16-column panels (kc x Npad, scratch slot 2,
 * in L2 / L3) and then, per PK_MC-row block, A is packed into 6-row micro-panels (scratch slot
 * 1); both copies read each source row once, contiguously (the k-outer order). The loops
 * below are gemm_packed's, with the same micro-kernel. Column sums of A (the bias gradient)
 * are taken while A is packed, which saves a separate pass over dout.
 *
 * The packing is the price of the long K: each source float is used 2*N (A) or 2*M (B)
 * times only, and the rows come from L3 / memory in short strided segments the hardware
 * prefetcher does not follow, hence prefetch_row. Single thread, 4096 tokens, CPU time: 84-89
 * GFLOP/s on small's shapes (OpenBLAS 78-83), of which ~10 % is packing; reading B in place
 * instead of packing it (its 16-float rows are whole cache lines) was slower on 3 of the 4
 * shapes (up to 20 %, IC = 1536). DW_KC 256-512, PK_MC 96-192, PK_NP 4-24 and DW_PF 4-16 were
 * within the noise of the shared machine (DW_PF 0, no prefetch: ~4 % slower); prefetching the
 * next A block while the micro-kernel runs did not help.
 * Measurements against OpenBLAS in linear.c (linear backward). */
#define DW_KC 384 /* K rows per block */
#define DW_PF 8   /* rows ahead to prefetch while packing */

/* Fetch floats [0, n) at p into L1: the rows of dout / inp come from L3 or memory, in short
 * strided segments the hardware prefetcher does not follow (the packing loads were ~1/8 of
 * the GEMM's time without this, ~1/10 with it). always_inline: GCC finds an out-of-line copy
 * "const" (prefetches have no side effects) and deletes the calls. */
static inline __attribute__((always_inline)) void prefetch_row(const float *p, int n) {
    for (int i = 0; i < n; i += 16) __builtin_prefetch(p + i, 0, 3);
    __builtin_prefetch(p + n - 1, 0, 3);
}

/* rows [0, kc) x columns [0, n) of B (row k at b + k*ldb) into ceil(n/16) panels of kc x 16 */
static void pack_b_kmajor(float *bp, const float *b, int ldb, int kc, int n) {
    const int nf = n / PK_NR, rest = n - nf * PK_NR;
    for (int k = 0; k < kc; k++) {
        const float *s = b + (size_t)k * ldb;
        int p = 0;
        if (k + DW_PF < kc) prefetch_row(s + (size_t)DW_PF * ldb, n);
#ifdef AM_AVX2
        for (; p < nf; p++) {
            float *d = bp + ((size_t)p * kc + k) * PK_NR;
            _mm256_store_ps(d, _mm256_loadu_ps(s + p * PK_NR));
            _mm256_store_ps(d + 8, _mm256_loadu_ps(s + p * PK_NR + 8));
        }
#endif
        for (; p < nf; p++) memcpy(bp + ((size_t)p * kc + k) * PK_NR, s + p * PK_NR, PK_NR * sizeof(float));
        if (rest) {
            float *d = bp + ((size_t)nf * kc + k) * PK_NR;
            for (int q = 0; q < PK_NR; q++) d[q] = q < rest ? s[nf * PK_NR + q] : 0.0f;
        }
    }
}

/* rows [0, kc) x columns [0, mc) of A (row k at a + k*lda) into ceil(mc/6) micro-panels of
 * kc x 6 (pack_a's layout); `avail` columns may be read from a (>= mc); colsum (mc), if not
 * NULL, gets += the column sums. */
static void pack_at_kmajor(float *ap, const float *a, int lda, int kc, int mc, int avail, float *colsum) {
    const int nf = mc / PK_MR, rest = mc - nf * PK_MR;
    for (int k = 0; k < kc; k++) {
        const float *s = a + (size_t)k * lda;
        int p = 0;
        if (k + DW_PF < kc) prefetch_row(s + (size_t)DW_PF * lda, mc);
#ifdef AM_AVX2
        const __m256i m6 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
        /* 8-float copies overlap the next k of the same panel, except at the last k */
        if (k + 1 < kc)
            for (; p < nf && p * PK_MR + 8 <= avail; p++)
                _mm256_storeu_ps(ap + ((size_t)p * kc + k) * PK_MR, _mm256_loadu_ps(s + p * PK_MR));
        for (; p < nf; p++)
            _mm256_maskstore_ps(ap + ((size_t)p * kc + k) * PK_MR, m6, _mm256_maskload_ps(s + p * PK_MR, m6));
#endif
        for (; p < nf; p++) memcpy(ap + ((size_t)p * kc + k) * PK_MR, s + p * PK_MR, PK_MR * sizeof(float));
        if (rest) {
            float *d = ap + ((size_t)nf * kc + k) * PK_MR;
            for (int r = 0; r < PK_MR; r++) d[r] = r < rest ? s[nf * PK_MR + r] : 0.0f;
        }
        if (colsum) {
            int i = 0;
#ifdef AM_AVX2
            for (; i + 8 <= mc; i += 8)
                _mm256_storeu_ps(colsum + i, _mm256_add_ps(_mm256_loadu_ps(colsum + i), _mm256_loadu_ps(s + i)));
#endif
            for (; i < mc; i++) colsum[i] += s[i];
        }
    }
}

void blas_gemm_tn_packed(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                         int M, int N, int K, float beta, float *colsum_a) {
    check(M, N, K, ldc, lda, M, ldb, N); /* A (K,M), B (K,N) */
    AM_ASSERT(beta == 0.0f || beta == 1.0f);
    if (M == 0 || N == 0) return;
    if (K == 0) { zero_or_scale(c, ldc, M, N, beta); return; }
    const int np = (N + PK_NR - 1) / PK_NR;
    /* row blocks of equal size (a multiple of 6), at most PK_MC */
    const int nmb = (M + PK_MC - 1) / PK_MC;
    const int mcs = ((M + nmb - 1) / nmb + PK_MR - 1) / PK_MR * PK_MR;
    float *bp = blas_scratch(2, (size_t)np * PK_NR * DW_KC);
    float *ap = blas_scratch(1, (size_t)mcs * DW_KC + 8);
    for (int k0 = 0; k0 < K; k0 += DW_KC) {
        const int kc = K - k0 < DW_KC ? K - k0 : DW_KC, first = k0 == 0;
        pack_b_kmajor(bp, b + (size_t)k0 * ldb, ldb, kc, N);
        for (int i0 = 0; i0 < M; i0 += mcs) {
            const int mc = M - i0 < mcs ? M - i0 : mcs;
            pack_at_kmajor(ap, a + (size_t)k0 * lda + i0, lda, kc, mc, M - i0, colsum_a ? colsum_a + i0 : NULL);
            block_panels(c + (size_t)i0 * ldc, ldc, ap, mc, kc, bp, 0, np, N, NULL, first, beta);
        }
    }
}

/* C (M,N) = [beta·C +] A (M,K) · op(B) on the packed kernel, B packed on every call into the
 * calling thread's scratch slot 2: for attention's per-head products (T x T x HS), where
 * OpenBLAS's fixed cost per call (a beta pass over C, its own copies) is a large part of the
 * work. */
/* b_trans: B is (N,K) (nt) or (K,N) (nn) */
static void gemm_b_packed(float *c, int ldc, const float *a, int lda, const float *b, int ldb, int M, int N, int K,
                          float beta, int b_trans) {
    check(M, N, K, ldc, lda, K, ldb, b_trans ? K : N);
    AM_ASSERT(beta == 0.0f || beta == 1.0f);
    if (M == 0 || N == 0) return;
    if (K == 0) { zero_or_scale(c, ldc, M, N, beta); return; }
    float *bp = blas_scratch(2, blas_packed_floats(N, K));
    if (b_trans) blas_pack_nt(bp, b, ldb, N, K);
    else blas_pack_nn(bp, b, ldb, K, N);
    gemm_packed(c, ldc, a, lda, 0, bp, NULL, M, N, K, beta, 0, blas_packed_panels(N));
}

void blas_gemm_nt_packed(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                         int M, int N, int K, float beta) {
    gemm_b_packed(c, ldc, a, lda, b, ldb, M, N, K, beta, 1);
}

void blas_gemm_nn_packed(float *c, int ldc, const float *a, int lda, const float *b, int ldb,
                         int M, int N, int K, float beta) {
    gemm_b_packed(c, ldc, a, lda, b, ldb, M, N, K, beta, 0);
}
#undef micro

/* ------------------------------------------------------------------ per-thread scratch */

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
typedef struct { float *p[BLAS_SCRATCH_SLOTS]; size_t n[BLAS_SCRATCH_SLOTS]; } Scratch;
static void scratch_free(void *v) {
    Scratch *s = v;
    for (int i = 0; i < BLAS_SCRATCH_SLOTS; i++) am_free_aligned(s->p[i]);
    free(s);
}
static void scratch_key_init(void) { AM_ASSERT(pthread_key_create(&g_scratch_key, scratch_free) == 0); }

float *blas_scratch(int slot, size_t n) {
    AM_ASSERT(slot >= 0 && slot < BLAS_SCRATCH_SLOTS);
    pthread_once(&g_scratch_once, scratch_key_init);
    Scratch *s = pthread_getspecific(g_scratch_key);
    if (!s) {
        s = xcalloc(1, sizeof *s);
        pthread_setspecific(g_scratch_key, s);
    }
    if (s->n[slot] < n) {
        am_free_aligned(s->p[slot]);
        size_t cap = n + n / 4 + 1024;
        s->p[slot] = am_alloc_floats(cap);
        AM_ASSERT(s->p[slot] != NULL); /* small next to the activations; treat as a bug */
        s->n[slot] = cap;
    }
    return s->p[slot];
}
