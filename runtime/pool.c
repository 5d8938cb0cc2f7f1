/* The runtime's thread pool (see mtr/pool.h): workers wait for a new
 * generation of work, run their part, and count down; the caller waits for
 * the count to reach zero. Both wait by spinning a while first and only then
 * on a condition variable: a step of the tutorial's model makes 22 calls to
 * pool_run, and waking a sleeping thread took 60-75 us on our 2-core VM,
 * some 1.5 ms of a 20 ms step at 2 threads. */
#include "mtr/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define POOL_MAX 256

/* How many times a waiting thread checks before it sleeps: some 50-100 us
 * with the pause below, longer than the gaps between a step's kernels and far
 * shorter than the time between steps' data or between runs. */
#define POOL_SPINS 4000

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    pthread_t thread[POOL_MAX];
    int threads;          /* including the caller */
    _Atomic uint64_t gen; /* bumped for every pool_run and for the stop */
    _Atomic int pending;  /* workers still running the current generation */
    int sleepers;         /* workers asleep on work (under lock) */
    int caller_asleep;    /* the caller asleep on done (under lock) */
    int stopping;
    PoolFn fn;
    void *ctx;
    int parts;
    uint64_t start_gen; /* the generation workers start from */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .work = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER,
          .threads = 1};

static int worker_index[POOL_MAX];

/* Set in a thread that runs every part itself (pool_solo). */
static _Thread_local int solo;

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Waits until the generation is no longer `seen`; returns the new one. */
static uint64_t wait_work(uint64_t seen)
{
    for (int i = 0; i < POOL_SPINS; i++) {
        uint64_t g = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (g != seen) return g;
        relax();
    }
    pthread_mutex_lock(&pool.lock);
    pool.sleepers++;
    while (atomic_load(&pool.gen) == seen) pthread_cond_wait(&pool.work, &pool.lock);
    pool.sleepers--;
    pthread_mutex_unlock(&pool.lock);
    return atomic_load(&pool.gen);
}

static void *worker(void *arg)
{
    int me = *(int *)arg;
    uint64_t seen = pool.start_gen;
    for (;;) {
        seen = wait_work(seen);
        if (pool.stopping) break;
        if (me < pool.parts) pool.fn(pool.ctx, me, pool.parts);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {
            pthread_mutex_lock(&pool.lock);
            if (pool.caller_asleep) pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Starts generation gen + 1 (the fields it reads are set before): the
 * release store publishes them to the spinning workers, the broadcast wakes
 * the sleeping ones. */
static void publish(void)
{
    atomic_fetch_add(&pool.gen, 1);
    pthread_mutex_lock(&pool.lock);
    if (pool.sleepers) pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
}

void pool_stop(void)
{
    if (pool.threads <= 1) return;
    pool.stopping = 1;
    publish();
    for (int i = 1; i < pool.threads; i++) pthread_join(pool.thread[i], NULL);
    pool.threads = 1;
    pool.stopping = 0;
}

int pool_start(int threads)
{
    pool_stop();
    if (threads > POOL_MAX) threads = POOL_MAX;
    pool.start_gen = atomic_load(&pool.gen);
    int started = 1;
    for (int i = 1; i < threads; i++) {
        worker_index[i] = i;
        if (pthread_create(&pool.thread[i], NULL, worker, &worker_index[i]) != 0) break;
        started++;
    }
    pool.threads = started;
    if (started < threads) {
        pool_stop();
        return -1;
    }
    return 0;
}

void pool_solo(int on)
{
    solo = on;
}

int pool_threads(void)
{
    return solo ? 1 : pool.threads;
}

void pool_run(PoolFn fn, void *ctx, int parts)
{
    if (parts > pool_threads()) parts = pool_threads();
    if (parts <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.parts = parts;
    atomic_store(&pool.pending, pool.threads - 1);
    publish();
    fn(ctx, 0, parts);
    for (int i = 0; i < POOL_SPINS; i++) {
        if (atomic_load_explicit(&pool.pending, memory_order_acquire) == 0) return;
        relax();
    }
    pthread_mutex_lock(&pool.lock);
    pool.caller_asleep = 1;
    while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pool.caller_asleep = 0;
    pthread_mutex_unlock(&pool.lock);
}

void pool_rows(int64_t n, int64_t align, int part, int parts, int64_t *lo, int64_t *hi)
{
    if (align < 1) align = 1;
    int64_t blocks = (n + align - 1) / align;
    int64_t per = blocks / parts, extra = blocks % parts;
    int64_t b0 = part * per + (part < extra ? part : extra);
    int64_t b1 = b0 + per + (part < extra ? 1 : 0);
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

int pool_parts(int64_t work, int64_t min_per_part)
{
    int threads = pool_threads();
    int64_t p = min_per_part > 0 ? work / min_per_part : threads;
    if (p < 1) return 1;
    return p < threads ? (int)p : threads;
}
