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
/* Wait policy. Spinning only pays when a core is free: on a shared machine a spinning
 * waiter competes for a core with the thread that holds the real work (measured with a third
 * CPU-bound process on 2 cores: 50 us spins made an encode 4x slower than blocking at once).
 * So waiters spin for a few microseconds (enough to catch the next kernel of the same
 * forward pass) and then block. */
#define WORKER_SPIN_NS 4000.0
#define CALLER_SPIN_NS 4000.0

/* Join word of the current dynamic job, one 64-bit atomic:
 *   bits 32..63 job generation, bit 31 closed, bits 0..30 workers inside the job. */
#define JW_CLOSED (1ull << 31)
#define JW_COUNT 0x7fffffffull

typedef struct ForJob ForJob;

typedef struct {
    int nth;                      /* threads including the caller */
    pthread_t th[AM_MAX_THREADS];
    _Atomic unsigned gen;         /* job generation */
    _Atomic int remaining;        /* static jobs: workers still running */
    _Atomic uint64_t join;        /* dynamic jobs: see JW_* */
    _Atomic int busy;             /* a caller owns the pool */
    _Atomic int caller_waiting;   /* the caller sleeps on done_cv */
    /* job fields: written by the caller between begin_setup and publish, read by workers
     * under the seqlock (atomics with relaxed order + fences, so there is no data race) */
    _Atomic int dynamic;          /* current job kind */
    _Atomic(AmTaskFn) fn;         /* static job */
    _Atomic(void *) ctx;
    _Atomic(ForJob *) job;        /* dynamic job (on the caller's stack) */
    _Atomic int stop;
    pthread_mutex_t mu;           /* workers sleep on cv for a new generation */
    pthread_cond_t cv;
    pthread_mutex_t done_mu;      /* the caller sleeps on done_cv */
    pthread_cond_t done_cv;
} Pool;

struct ForJob {
    AmRangeFn fn;
    void *ctx;
    size_t n, grain;
    _Atomic size_t next;
    int max_tid;            /* threads with tid >= this take no chunks (am_parallel_limit) */
};

static Pool g_pool = { .nth = 0, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
                       .done_mu = PTHREAD_MUTEX_INITIALIZER, .done_cv = PTHREAD_COND_INITIALIZER };
static pthread_mutex_t g_cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int t_in_task; /* set while running a task: nested calls go inline */
static _Thread_local int t_limit;   /* am_parallel_limit: pool threads this thread's jobs use (0 = all) */

typedef struct { int tid; unsigned gen0; } WorkerArg;
static WorkerArg g_args[AM_MAX_THREADS];

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void wake_caller(Pool *p) {
    pthread_mutex_lock(&p->done_mu);
    pthread_cond_signal(&p->done_cv);
    pthread_mutex_unlock(&p->done_mu);
}

static void run_chunks(ForJob *j, int tid) {
    if (tid >= j->max_tid) return;
    for (;;) {
        size_t lo = atomic_fetch_add_explicit(&j->next, j->grain, memory_order_relaxed);
        if (lo >= j->n) return;
        size_t hi = lo + j->grain < j->n ? lo + j->grain : j->n;
        j->fn(j->ctx, lo, hi, tid);
    }
}

/* Job publication is a seqlock on gen: the caller makes it odd while it writes the job
 * fields and even (a new value) when the job is ready. A worker that slept through a whole
 * dynamic job may wake while the NEXT job is being set up, so it reads the fields and then
 * re-checks gen; if gen moved, it starts over with the newer job. */
static void *worker_main(void *arg) {
    const int tid = ((WorkerArg *)arg)->tid;
    Pool *p = &g_pool;
    unsigned seen = ((WorkerArg *)arg)->gen0; /* jobs published after creation are ours */
    t_in_task = 1;
    for (;;) {
        /* wait for a new, fully published generation: spin briefly, then sleep */
        unsigned g;
        double t0 = 0;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen || (g & 1u)) {
            if (p->stop) return NULL;
            if (++spins < 32) { CPU_RELAX(); continue; }
            if (t0 == 0) t0 = now_ns();
            if ((spins & 31) == 0 && now_ns() - t0 > WORKER_SPIN_NS) {
                pthread_mutex_lock(&p->mu);
                while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !p->stop)
                    pthread_cond_wait(&p->cv, &p->mu);
                pthread_mutex_unlock(&p->mu);
                t0 = 0;
                spins = 0;
                continue;
            }
            CPU_RELAX();
        }
        if (p->stop) return NULL;
        const int dynamic = atomic_load_explicit(&p->dynamic, memory_order_relaxed);
        const AmTaskFn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *const ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&p->gen, memory_order_relaxed) != g) continue; /* being replaced */
        seen = g;
        if (!dynamic) { /* a static job cannot finish without us, so its fields stay valid */
            fn(ctx, tid, p->nth);
            /* seq_cst pairs with the caller's store of caller_waiting (Dekker): either we see
             * it set and signal, or the caller sees remaining == 0 and does not sleep */
            if (atomic_fetch_sub(&p->remaining, 1) == 1 && atomic_load(&p->caller_waiting)) wake_caller(p);
            continue;
        }
        /* dynamic job: join only while it is open and still generation g (a late worker must
         * not touch a finished job: it lives on the caller's stack) */
        uint64_t w = atomic_load(&p->join);
        int joined = 0;
        while ((unsigned)(w >> 32) == g && !(w & JW_CLOSED)) {
            if (atomic_compare_exchange_weak(&p->join, &w, w + 1)) { joined = 1; break; }
        }
        if (!joined) continue;
        run_chunks(atomic_load(&p->job), tid); /* joined: the caller is still in job g */
        w = atomic_fetch_sub(&p->join, 1) - 1;
        if ((w & JW_CLOSED) && (w & JW_COUNT) == 0 && atomic_load(&p->caller_waiting)) wake_caller(p);
    }
}

static void pool_stop(void) {
    Pool *p = &g_pool;
    if (p->nth <= 1) return; /* no workers to join */
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_fetch_add_explicit(&p->gen, 2, memory_order_release); /* stays even at rest */
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

/* Take the pool for one job; 0 if it must run inline (one thread, nested, or busy). */
static int pool_acquire(Pool *p) {
    if (!t_in_task) blas_init();
    int expected = 0;
    return p->nth > 1 && !t_in_task && atomic_compare_exchange_strong(&p->busy, &expected, 1);
}

/* seqlock: mark gen odd before writing the job fields; returns the even gen to publish */
static unsigned begin_setup(Pool *p) {
    unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1; /* odd */
    atomic_store_explicit(&p->gen, g, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    return g + 1;
}
/* publish the job set up in *p (even generation gen) and wake sleeping workers */
static void publish(Pool *p, unsigned gen) {
    atomic_store_explicit(&p->gen, gen, memory_order_release);
    pthread_mutex_lock(&p->mu); /* closes the lost-wakeup race; cheap when nobody sleeps */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* caller: wait until done(p) holds; spin briefly, then sleep on done_cv */
static void caller_wait(Pool *p, int (*done)(Pool *)) {
    double t0 = 0;
    int spins = 0;
    while (!done(p)) {
        if (++spins < 32) { CPU_RELAX(); continue; }
        if (t0 == 0) t0 = now_ns();
        if ((spins & 31) == 0 && now_ns() - t0 > CALLER_SPIN_NS) {
            pthread_mutex_lock(&p->done_mu);
            atomic_store(&p->caller_waiting, 1);
            while (!done(p)) pthread_cond_wait(&p->done_cv, &p->done_mu);
            atomic_store(&p->caller_waiting, 0);
            pthread_mutex_unlock(&p->done_mu);
            return;
        }
        CPU_RELAX();
    }
}
static int static_done(Pool *p) { return atomic_load(&p->remaining) == 0; }
static int dynamic_done(Pool *p) { return (atomic_load(&p->join) & JW_COUNT) == 0; }

void am_parallel_run(AmTaskFn fn, void *ctx) {
    ensure_pool();
    Pool *p = &g_pool;
    if (!pool_acquire(p)) { run_inline(fn, ctx); return; }
    unsigned gen = begin_setup(p);
    atomic_store_explicit(&p->dynamic, 0, memory_order_relaxed);
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    atomic_store(&p->remaining, p->nth - 1);
    publish(p, gen);
    t_in_task = 1;
    fn(ctx, 0, p->nth);
    t_in_task = 0;
    caller_wait(p, static_done);
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

int am_parallel_limit(int n) {
    int prev = t_limit;
    t_limit = n > 0 ? n : 0;
    return prev;
}

void am_parallel_run_min(AmTaskFn fn, void *ctx, size_t work, size_t min_work) {
    if (work < min_work) {
        run_inline(fn, ctx);
        return;
    }
    am_parallel_run(fn, ctx);
}

void am_parallel_for(AmRangeFn fn, void *ctx, size_t n, size_t grain, size_t work) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    ensure_pool();
    Pool *p = &g_pool;
    ForJob j = { fn, ctx, n, grain, 0, t_limit > 0 && t_limit < p->nth ? t_limit : p->nth };
    if (n <= grain || work < AM_PAR_MIN_WORK || j.max_tid <= 1 || !pool_acquire(p)) {
        j.max_tid = 1; /* inline: tid 0 takes every chunk */
        int saved = t_in_task;
        t_in_task = 1;
        run_chunks(&j, 0);
        t_in_task = saved;
        return;
    }
    unsigned gen = begin_setup(p);
    atomic_store_explicit(&p->dynamic, 1, memory_order_relaxed);
    atomic_store_explicit(&p->job, &j, memory_order_relaxed);
    atomic_store(&p->join, (uint64_t)gen << 32); /* open, nobody inside */
    publish(p, gen);
    t_in_task = 1;
    run_chunks(&j, 0);
    t_in_task = 0;
    /* every chunk is taken: close the job (late workers skip it), then wait only for the
     * workers that joined; they finish the chunks they hold */
    atomic_fetch_or(&p->join, JW_CLOSED);
    caller_wait(p, dynamic_done);
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

void am_split_aligned(size_t n, size_t align, int tid, int nth, size_t *lo, size_t *hi) {
    if (align <= 1) { am_split(n, tid, nth, lo, hi); return; }
    size_t blocks = (n + align - 1) / align, blo, bhi;
    am_split(blocks, tid, nth, &blo, &bhi);
    *lo = blo * align < n ? blo * align : n;
    *hi = bhi * align < n ? bhi * align : n;
}
