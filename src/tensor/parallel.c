/* parallel.c - a tiny fork-join thread pool for the compute kernels.
 *
 * One process-wide pool: nth-1 worker threads plus the calling thread (tid 0). A job is
 * published by bumping a generation counter; workers spin briefly (consecutive kernels follow
 * each other within microseconds) and then sleep on a condition variable, so an idle process
 * burns no CPU. The caller waits for the workers by spinning (then yielding). There is no
 * work stealing: kernels split work statically with am_split, which keeps results
 * bit-identical for a fixed thread count.
 */
#include "tensor.h"
#include "am_base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define AM_MAX_THREADS 256
/* How long an idle worker spins before sleeping, and how long the caller spins waiting for
 * the workers before blocking. Consecutive kernels follow each other within microseconds, so
 * short spins catch them; blocking (instead of spinning or sched_yield) matters when the
 * machine is shared: a waiting thread that sleeps frees its core, so the scheduler can run a
 * preempted worker there instead of leaving it queued behind another process. */
static double WORKER_SPIN_NS = 50000.0; /* TEMP: env overridable for experiments */
static double CALLER_SPIN_NS = 20000.0;

typedef struct {
    int nth;                      /* threads including the caller */
    pthread_t th[AM_MAX_THREADS];
    _Atomic unsigned gen;         /* job generation */
    _Atomic int remaining;        /* workers still running the current job */
    _Atomic int busy;             /* a caller owns the pool */
    _Atomic int caller_waiting;   /* the caller sleeps on done_cv */
    AmTaskFn fn;
    void *ctx;
    int stop;
    pthread_mutex_t mu;           /* workers sleep on cv for a new generation */
    pthread_cond_t cv;
    pthread_mutex_t done_mu;      /* the caller sleeps on done_cv for remaining == 0 */
    pthread_cond_t done_cv;
} Pool;

static Pool g_pool = { .nth = 0, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
                       .done_mu = PTHREAD_MUTEX_INITIALIZER, .done_cv = PTHREAD_COND_INITIALIZER };
static pthread_mutex_t g_cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int t_in_task; /* set while running a task: nested calls go inline */

typedef struct { int tid; unsigned gen0; } WorkerArg;
static WorkerArg g_args[AM_MAX_THREADS];

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *worker_main(void *arg) {
    const int tid = ((WorkerArg *)arg)->tid;
    Pool *p = &g_pool;
    unsigned seen = ((WorkerArg *)arg)->gen0; /* jobs published after creation are ours */
    t_in_task = 1;
    for (;;) {
        /* wait for a new generation: spin, then sleep */
        double t0 = 0;
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
            if (++spins < 64) { CPU_RELAX(); continue; }
            if (t0 == 0) t0 = now_ns();
            if ((spins & 63) == 0 && now_ns() - t0 > WORKER_SPIN_NS) {
                pthread_mutex_lock(&p->mu);
                while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !p->stop)
                    pthread_cond_wait(&p->cv, &p->mu);
                pthread_mutex_unlock(&p->mu);
                break;
            }
            CPU_RELAX();
        }
        if (p->stop) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->ctx, tid, p->nth);
        /* seq_cst pairs with the caller's store of caller_waiting (Dekker): either we see it
         * set and signal, or the caller sees remaining == 0 and does not sleep */
        if (atomic_fetch_sub(&p->remaining, 1) == 1 && atomic_load(&p->caller_waiting)) {
            pthread_mutex_lock(&p->done_mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->done_mu);
        }
    }
}

static void pool_stop(void) {
    Pool *p = &g_pool;
    if (p->nth <= 1) return; /* no workers to join */
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nth; i++) pthread_join(p->th[i], NULL);
    p->stop = 0;
}

static int default_threads(void) {
    const char *s = getenv("AM_THREADS");
    if (s && atoi(s) > 0) return atoi(s);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void pool_start(int n) {
    Pool *p = &g_pool;
    if (getenv("AM_WSPIN")) WORKER_SPIN_NS = atof(getenv("AM_WSPIN"));
    if (getenv("AM_CSPIN")) CALLER_SPIN_NS = atof(getenv("AM_CSPIN"));
    if (n <= 0) n = default_threads();
    if (n > AM_MAX_THREADS) n = AM_MAX_THREADS;
    p->nth = n;
    atomic_store(&p->remaining, 0);
    for (int i = 1; i < n; i++) {
        g_args[i].tid = i;
        g_args[i].gen0 = atomic_load(&p->gen);
        if (pthread_create(&p->th[i], NULL, worker_main, &g_args[i]) != 0) {
            p->nth = i; /* run with what we have */
            break;
        }
    }
}

void am_parallel_set_threads(int n) {
    blas_init();
    pthread_mutex_lock(&g_cfg_mu);
    if (n <= 0) n = default_threads();
    if (g_pool.nth != n) {
        pool_stop();
        pool_start(n);
    }
    pthread_mutex_unlock(&g_cfg_mu);
}

static void ensure_pool(void) {
    if (__builtin_expect(g_pool.nth == 0, 0)) {
        blas_init();
        pthread_mutex_lock(&g_cfg_mu);
        if (g_pool.nth == 0) pool_start(0);
        pthread_mutex_unlock(&g_cfg_mu);
    }
}

int am_parallel_get_threads(void) {
    ensure_pool();
    return g_pool.nth;
}

static void run_inline(AmTaskFn fn, void *ctx) {
    int saved = t_in_task;
    t_in_task = 1;
    fn(ctx, 0, 1);
    t_in_task = saved;
}

void am_parallel_run(AmTaskFn fn, void *ctx) {
    ensure_pool();
    Pool *p = &g_pool;
    if (!t_in_task) blas_init();
    int expected = 0;
    if (p->nth <= 1 || t_in_task || !atomic_compare_exchange_strong(&p->busy, &expected, 1)) {
        run_inline(fn, ctx);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->remaining, p->nth - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    /* wake sleepers (cheap when nobody sleeps; taking the lock closes the lost-wakeup race) */
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    t_in_task = 1;
    fn(ctx, 0, p->nth);
    t_in_task = 0;
    double t0 = 0;
    int spins = 0;
    while (atomic_load_explicit(&p->remaining, memory_order_acquire) > 0) {
        if (++spins < 64) { CPU_RELAX(); continue; }
        if (t0 == 0) t0 = now_ns();
        if ((spins & 63) == 0 && now_ns() - t0 > CALLER_SPIN_NS) {
            pthread_mutex_lock(&p->done_mu);
            atomic_store(&p->caller_waiting, 1);
            while (atomic_load(&p->remaining) > 0) pthread_cond_wait(&p->done_cv, &p->done_mu);
            atomic_store(&p->caller_waiting, 0);
            pthread_mutex_unlock(&p->done_mu);
            break;
        }
        CPU_RELAX();
    }
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

void am_parallel_run_min(AmTaskFn fn, void *ctx, size_t work, size_t min_work) {
    if (work < min_work) {
        run_inline(fn, ctx);
        return;
    }
    am_parallel_run(fn, ctx);
}

/* dynamic scheduling: threads grab fixed chunks [k*grain, (k+1)*grain) from a counter */
typedef struct {
    AmRangeFn fn;
    void *ctx;
    size_t n, grain;
    _Atomic size_t next;
} ForJob;

static void for_task(void *ctx, int tid, int nth) {
    ForJob *j = ctx;
    (void)nth;
    for (;;) {
        size_t lo = atomic_fetch_add_explicit(&j->next, j->grain, memory_order_relaxed);
        if (lo >= j->n) return;
        size_t hi = lo + j->grain < j->n ? lo + j->grain : j->n;
        j->fn(j->ctx, lo, hi, tid);
    }
}

void am_parallel_for(AmRangeFn fn, void *ctx, size_t n, size_t grain, size_t work) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    ForJob j = { fn, ctx, n, grain, 0 };
    if (n <= grain || work < AM_PAR_MIN_WORK) run_inline(for_task, &j);
    else am_parallel_run(for_task, &j);
}

void am_split_aligned(size_t n, size_t align, int tid, int nth, size_t *lo, size_t *hi) {
    if (align <= 1) { am_split(n, tid, nth, lo, hi); return; }
    size_t blocks = (n + align - 1) / align, blo, bhi;
    am_split(blocks, tid, nth, &blo, &bhi);
    *lo = blo * align < n ? blo * align : n;
    *hi = bhi * align < n ? bhi * align : n;
}

/* ------------------------------------------------------------------ tensor views */

Tensor tensor_view1(float *data, int64_t n0) {
    return (Tensor){ data, {n0, 1, 1, 1}, {1, n0, n0, n0} };
}
Tensor tensor_view2(float *data, int64_t rows, int64_t cols) {
    return (Tensor){ data, {cols, rows, 1, 1}, {1, cols, cols * rows, cols * rows} };
}
Tensor tensor_view3(float *data, int64_t d2, int64_t rows, int64_t cols) {
    return (Tensor){ data, {cols, rows, d2, 1}, {1, cols, cols * rows, cols * rows * d2} };
}
int64_t tensor_numel(const Tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}
