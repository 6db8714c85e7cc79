/* blas.c - the only file that calls cblas: one wrapper per sgemm pattern, shapes asserted.
 *
 * All wrappers are row-major and single-threaded (OpenBLAS is set to one thread by
 * blas_init); kernels call them from inside pool tasks on disjoint row ranges. The *_par
 * variants split rows of C over the pool for standalone use.
 */
#include "tensor.h"
#include "am_base.h"

#include <cblas.h>
#include <pthread.h>
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
 * into 16-column panels and shared read-only by every pool thread, A is read in place (row
 * major, or transposed for the weight gradient), and the bias is added when the tile is
 * stored. Against OpenBLAS on the encoder's shapes (K <= 512) this removes the per-call
 * packing of both operands and the beta / bias passes: ~10-20 % faster there, equal on
 * large K.
 *
 * Packed layout: K is cut in blocks of PK_KC; block (k0, kc) starts at Bp + k0 * Npad
 * (Npad = N rounded up to 16) and holds ceil(N/16) panels of kc x 16 floats (k major), the
 * columns past N zero-filled. Micro-tile 6 x 16 (12 accumulators), row blocks of PK_MC.
 */
#define PK_NR 16
#define PK_MR 6
#define PK_KC 256
#define PK_MC 144

static int npad16(int N) { return (N + PK_NR - 1) / PK_NR * PK_NR; }

size_t blas_packed_floats(int N, int K) {
    return (size_t)npad16(N) * (size_t)(K > 0 ? K : 1) + PK_NR;
}

/* one k-block; src(k, c) gives B[k0 + k][j0 + c] in the "B (K, N)" view */
#define PACK_BLOCK(SRC)                                                                        \
    for (int jp = p0; jp < p1; jp++) {                                                         \
        float *d = Bp + (size_t)k0 * Npad + (size_t)jp * kc * PK_NR;                           \
        int j0 = jp * PK_NR, nj = N - j0 < PK_NR ? N - j0 : PK_NR;                             \
        for (int k = 0; k < kc; k++) {                                                         \
            float *dk = d + (size_t)k * PK_NR;                                                 \
            for (int c = 0; c < nj; c++) dk[c] = SRC;                                          \
            for (int c = nj; c < PK_NR; c++) dk[c] = 0.0f;                                     \
        }                                                                                      \
    }

int blas_packed_panels(int N) { return (N + PK_NR - 1) / PK_NR; }

void blas_pack_nt_panels(float *Bp, const float *B, int ldb, int N, int K, int p0, int p1) {
    AM_ASSERT(N >= 0 && K >= 0 && ldb >= (K > 0 ? K : 1) && p0 >= 0 && p1 <= blas_packed_panels(N));
    const int Npad = npad16(N);
    for (int k0 = 0; k0 < K; k0 += PK_KC) {
        const int kc = K - k0 < PK_KC ? K - k0 : PK_KC;
        PACK_BLOCK(B[(size_t)(j0 + c) * ldb + k0 + k])
    }
}

void blas_pack_nn_panels(float *Bp, const float *B, int ldb, int K, int N, int p0, int p1) {
    AM_ASSERT(N >= 0 && K >= 0 && ldb >= (N > 0 ? N : 1) && p0 >= 0 && p1 <= blas_packed_panels(N));
    const int Npad = npad16(N);
    for (int k0 = 0; k0 < K; k0 += PK_KC) {
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

#ifdef AM_AVX2
/* mr x 16 tile (mr <= 6), kc steps. ta = 0: A(r, k) = a[r*lda + k]; ta = 1: a[k*lda + r]. */
static inline __attribute__((always_inline)) void micro_6x16(int mr, int ta, int kc, const float *a, int lda,
                                                            const float *bp, float *c, int ldc, const float *bias,
                                                            int nj, int first, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const size_t sr = ta ? 1 : (size_t)lda, sk = ta ? (size_t)lda : 1; /* strides of rows / k in A */
    const float *a0 = a, *a1 = a + sr, *a2 = a + 2 * sr, *a3 = a + 3 * sr, *a4 = a + 4 * sr, *a5 = a + 5 * sr;
    for (int r = 0; r < mr; r++) { /* the C tile is touched only at the end: fetch it now */
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 15), _MM_HINT_T0);
    }
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(bp + (size_t)k * PK_NR), b1 = _mm256_load_ps(bp + (size_t)k * PK_NR + 8);
        const size_t o = (size_t)k * sk;
        __m256 av;
#define ROW(r) if (mr > r) { av = _mm256_broadcast_ss(a##r + o); \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0); c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1); }
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
#endif

static void micro_generic(int mr, int ta, int kc, const float *a, int lda, const float *bp, float *c, int ldc,
                          const float *bias, int nj, int first, float beta) {
    float acc[PK_MR][PK_NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < mr; r++) {
            float av = ta ? a[(size_t)k * lda + r] : a[(size_t)r * lda + k];
            for (int q = 0; q < PK_NR; q++) acc[r][q] += av * bp[(size_t)k * PK_NR + q];
        }
    for (int r = 0; r < mr; r++) store_row(c + (size_t)r * ldc, acc[r], bias, nj, first, beta);
}

static void micro(int mr, int ta, int kc, const float *a, int lda, const float *bp, float *c, int ldc,
                  const float *bias, int nj, int first, float beta) {
#ifdef AM_AVX2
    /* constant mr / ta per case so the compiler drops unused rows and picks the addressing */
#define CASE(m) case m: { if (ta) micro_6x16(m, 1, kc, a, lda, bp, c, ldc, bias, nj, first, beta); \
                          else micro_6x16(m, 0, kc, a, lda, bp, c, ldc, bias, nj, first, beta); } return;
    switch (mr) { CASE(6) CASE(5) CASE(4) CASE(3) CASE(2) CASE(1) default: return; }
#undef CASE
#else
    micro_generic(mr, ta, kc, a, lda, bp, c, ldc, bias, nj, first, beta);
#endif
}

void blas_gemm_packed(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                      int M, int N, int K, float beta) {
    blas_gemm_packed_panels(c, ldc, a, lda, ta, Bp, bias, M, N, K, beta, 0, blas_packed_panels(N));
}

void blas_gemm_packed_panels(float *c, int ldc, const float *a, int lda, int ta, const float *Bp, const float *bias,
                             int M, int N, int K, float beta, int p0, int p1) {
    AM_ASSERT(M >= 0 && N >= 0 && K >= 0 && (beta == 0.0f || beta == 1.0f));
    AM_ASSERT(ldc >= (N > 0 ? N : 1) && lda >= ((ta ? M : K) > 0 ? (ta ? M : K) : 1));
    AM_ASSERT(p0 >= 0 && p1 <= blas_packed_panels(N) && p0 <= p1);
    (void)micro_generic;
    if (M == 0 || N == 0) return;
    if (K == 0) { /* C = beta*C + bias */
        const int j1 = p1 * PK_NR < N ? p1 * PK_NR : N;
        for (int i = 0; i < M; i++)
            for (int j = p0 * PK_NR; j < j1; j++) {
                float *cij = c + (size_t)i * ldc + j;
                *cij = (beta != 0 ? *cij : 0.0f) + (bias ? bias[j] : 0.0f);
            }
        return;
    }
    const int np = (N + PK_NR - 1) / PK_NR, Npad = np * PK_NR;
    for (int k0 = 0; k0 < K; k0 += PK_KC) {
        const int kc = K - k0 < PK_KC ? K - k0 : PK_KC, first = k0 == 0;
        const float *bk = Bp + (size_t)k0 * Npad;
        for (int i0 = 0; i0 < M; i0 += PK_MC) {
            const int mc = M - i0 < PK_MC ? M - i0 : PK_MC;
            for (int jp = p0; jp < p1; jp++) {
                const int j0 = jp * PK_NR, nj = N - j0 < PK_NR ? N - j0 : PK_NR;
                const float *bp = bk + (size_t)jp * kc * PK_NR;
                const float *bj = bias ? bias + j0 : NULL;
                for (int i = i0; i < i0 + mc; i += PK_MR) {
                    const int mr = i0 + mc - i < PK_MR ? i0 + mc - i : PK_MR;
                    const float *ai = ta ? a + (size_t)k0 * lda + i : a + (size_t)i * lda + k0;
                    micro(mr, ta, kc, ai, lda, bp, c + (size_t)i * ldc + j0, ldc, bj, nj, first, beta);
                }
            }
        }
    }
}

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
