/* Whole training steps of a compiled model on random inputs, at chosen data
 * sizes (prints figures, never passes or fails): the median time of train_step
 * with the user vocabulary at 100k rows and at 10M rows, all else equal, so
 * that the cost of the embedding tables' size shows.
 *
 *   bench_step MODEL.bin [USER_COLUMN]
 *
 * MODEL.bin: e.g. `mtrc models/movielens.mtr -o m.bin` (or `-O0` for the dense
 * embedding updates). Batch 8192, 2000 titles and items, ids uniform, ratings
 * 1..5; the user column defaults to user_id. Threads: $MTR_THREADS (default 1)
 * for the pool and OpenBLAS ($MTR_BLAS_THREADS, when set, for OpenBLAS). Needs some 4 GiB at 10M
 * rows. */
#include "mtr/exec.h"
#include "mtr/model.h"
#include "mtr/ops.h"
#include "mtr/pool.h"
#include "mtr/rng.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STEPS 9

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median seconds of STEPS train steps with the user vocabulary at `users`
 * rows, or a negative number on failure. */
static double step_time(const MtrModel *m, const char *user_col, int64_t users)
{
    int64_t values[64];
    if (m->n_symbols > 64) return -1;
    char user_sym[128];
    snprintf(user_sym, sizeof user_sym, "vocab.%s", user_col);
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        const char *s = m->symbols[i];
        values[i] = strcmp(s, "batch") == 0    ? 8192
                    : strcmp(s, "k") == 0      ? 10
                    : strcmp(s, user_sym) == 0 ? users
                                               : 2000;
    }
    MtrSession *s = NULL;
    MtrError err = {0};
    if (mtr_session_new(m, values, &s, &err) != MTR_OK) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return -1;
    }
    Rng r;
    rng_seed(&r, 42);
    mtr_session_init_params(s, &r);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    if (p < 0) {
        mtr_session_free(s);
        return -1;
    }
    /* every input of train_step: ids uniform over their vocabulary, numbers 1..5 */
    const MtrProgram *prog = &m->programs[p];
    double t[STEPS];
    for (int step = 0; step < STEPS; step++) {
        for (uint32_t i = 0; i < prog->n_ops; i++)
            for (int k = 0; k < op_info(prog->ops[i].kind)->n_in; k++) {
                const MtrTensor *ten = &m->tensors[prog->ops[i].in[k]];
                if (ten->role != MTR_ROLE_INPUT) continue;
                void *data = mtr_session_tensor(s, prog->ops[i].in[k]);
                int64_t n = mtr_session_tensor_elems(s, prog->ops[i].in[k], 8192);
                int64_t vocab = ten->source_column >= 0 &&
                                        strcmp(m->columns[ten->source_column].name, user_col) == 0
                                    ? users
                                    : 2000;
                for (int64_t e = 0; e < n; e++) {
                    if (ten->dtype == MTR_DT_I32)
                        ((int32_t *)data)[e] = (int32_t)rng_below(&r, (uint64_t)vocab);
                    else
                        ((float *)data)[e] = (float)(1 + rng_below(&r, 5));
                }
            }
        double t0 = now();
        mtr_session_run(s, p, 8192);
        t[step] = now() - t0;
    }
    mtr_session_free(s);
    qsort(t, STEPS, sizeof t[0], by_value);
    return t[STEPS / 2];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_step MODEL.bin [USER_COLUMN]\n");
        return 2;
    }
    const char *user_col = argc > 2 ? argv[2] : "user_id";
    int threads = getenv("MTR_THREADS") ? atoi(getenv("MTR_THREADS")) : 1;
    if (threads < 1) threads = 1;
    int blas = getenv("MTR_BLAS_THREADS") ? atoi(getenv("MTR_BLAS_THREADS")) : threads;
    openblas_set_num_threads(blas < 1 ? threads : blas);
    pool_start(threads);
    MtrModel *m = NULL;
    MtrError err = {0};
    if (mtr_model_read(argv[1], &m, &err) != MTR_OK) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 1;
    }
    double small = step_time(m, user_col, 100000);
    double large = step_time(m, user_col, 10000000);
    if (small < 0 || large < 0) return 1;
    printf("train_step, batch 8192, %d thread(s): %s 100k rows %.1f ms, 10M rows %.1f ms "
           "(%.2fx)\n",
           threads, user_col, 1e3 * small, 1e3 * large, large / small);
    mtr_model_free(m);
    pool_stop();
    return 0;
}
