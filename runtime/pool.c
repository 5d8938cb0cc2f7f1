/* The runtime's thread pool (see mtr/pool.h): workers wait on a condition
 * variable for a new generation of work, run their part, and count down. */
#include "mtr/pool.h"

#include <pthread.h>
#include <stdlib.h>

#define POOL_MAX 256

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    pthread_t thread[POOL_MAX];
    int threads;  /* including the caller */
    uint64_t gen; /* bumped for every pool_run and for the stop */
    int pending;  /* workers still running the current generation */
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

static void *worker(void *arg)
{
    int me = *(int *)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.lock);
    seen = pool.start_gen;
    for (;;) {
        while (pool.gen == seen) pthread_cond_wait(&pool.work, &pool.lock);
        seen = pool.gen;
        if (pool.stopping) break;
        PoolFn fn = pool.fn;
        void *ctx = pool.ctx;
        int parts = pool.parts;
        pthread_mutex_unlock(&pool.lock);
        if (me < parts) fn(ctx, me, parts);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

void pool_stop(void)
{
    if (pool.threads <= 1) return;
    pthread_mutex_lock(&pool.lock);
    pool.stopping = 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i < pool.threads; i++) pthread_join(pool.thread[i], NULL);
    pool.threads = 1;
    pool.stopping = 0;
}

int pool_start(int threads)
{
    pool_stop();
    if (threads > POOL_MAX) threads = POOL_MAX;
    pthread_mutex_lock(&pool.lock);
    pool.start_gen = pool.gen;
    int started = 1;
    for (int i = 1; i < threads; i++) {
        worker_index[i] = i;
        if (pthread_create(&pool.thread[i], NULL, worker, &worker_index[i]) != 0) break;
        started++;
    }
    pool.threads = started;
    pthread_mutex_unlock(&pool.lock);
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
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.parts = parts;
    pool.pending = pool.threads - 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    fn(ctx, 0, parts);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.lock);
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
