/* The runtime's own small thread pool: the kernels split their rows into parts
 * and run the parts on it. One pool per process, started by mtrun (pool_start)
 * before any kernel runs; without it every part runs on the caller. A part's
 * rows depend only on the number of parts, so a run is byte-identical to itself
 * at a given thread count. Calls to pool_run must not overlap (kernels run one
 * at a time), except from threads that pool_solo took off the pool (a sweep's
 * runs training side by side). */
#ifndef MTR_POOL_H
#define MTR_POOL_H

#include <stdint.h>

/* Runs part p of parts (0 <= p < parts). */
typedef void (*PoolFn)(void *ctx, int part, int parts);

/* Starts threads - 1 workers (the caller is the first thread). Returns 0, or -1
 * when a thread could not be created (the pool then runs on the caller alone).
 * Starting again stops the previous pool first. */
int pool_start(int threads);

/* Stops and joins the workers. */
void pool_stop(void);

/* With on, the calling thread runs every part of its kernels itself, as if
 * the pool had one thread, and never touches the shared pool (so that several
 * threads can run kernels at once, each with results those of one thread);
 * off gives it the pool back. Per thread; off in a new thread. */
void pool_solo(int on);

/* The pool's thread count (1 when not started, or in a solo thread). */
int pool_threads(void);

/* Runs fn(ctx, p, parts) for every p in [0, parts), part p on thread p (part 0
 * on the caller), and returns when all have finished. parts is clamped to
 * [1, pool_threads()]. */
void pool_run(PoolFn fn, void *ctx, int parts);

/* The rows [*lo, *hi) of part p of parts over n rows, in blocks of `align` rows
 * (the last part takes the remainder). */
void pool_rows(int64_t n, int64_t align, int part, int parts, int64_t *lo, int64_t *hi);

/* The number of parts worth making for `work` units of work (e.g. elements):
 * 1 below min_per_part units per part, else at most pool_threads(). */
int pool_parts(int64_t work, int64_t min_per_part);

#endif
