/* Latency of the public C API (mtr.h) per call: predict and recommend for one
 * row and for a batch of 256 rows, the median of 7 runs, each run timing
 * enough calls to last about 0.2 s. For comparison, the path a C program had
 * before the API: mtr_run_predict printing into a memory FILE (fmemopen).
 *
 *   build/bin/bench_api MODEL [K]
 *
 * MODEL is a trained model.bin (e.g. the tutorial's joint model); its first
 * query input gets ids "1", "2", ... (unknown ones use the out-of-vocabulary
 * row, which costs the same) and its item input the items' own labels. */
#define _GNU_SOURCE /* fmemopen */
#include "mtr.h"
#include "mtr/knobs.h"
#include "mtr/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS  7
#define BATCH 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const Mtr *m;
    const MtrModel *model; /* for the old path */
    MtrRows rows;
    int k;
    float *out;
    int64_t *ids;
    int which; /* 0 predict, 1 recommend, 2 mtr_run_predict via fmemopen */
} Call;

static int call(Call *c)
{
    MtrError err;
    MtrStatus st = MTR_OK;
    switch (c->which) {
    case 0:
        st = mtr_predict(c->m, &c->rows, c->out, &err);
        break;
    case 1:
        st = mtr_recommend(c->m, &c->rows, c->k, NULL, c->ids, c->out, &err);
        break;
    case 2: {
        char buf[4096];
        FILE *f = fmemopen(buf, sizeof buf, "w");
        if (!f) return -1;
        st = mtr_run_predict(c->model, c->rows.n_columns, c->rows.columns, c->rows.values, f, &err);
        fclose(f);
        break;
    }
    default:
        return -1;
    }
    if (st) fprintf(stderr, "bench_api: %s\n", err.msg);
    return st ? -1 : 0;
}

/* The median over RUNS runs of the seconds per call. */
static double median_latency(Call *c)
{
    double t0 = now();
    int calls = 0;
    while (now() - t0 < 0.05 || calls < 3) { /* warm up, and find the pace */
        if (call(c)) return -1;
        calls++;
    }
    double per = (now() - t0) / calls;
    int n = (int)(0.2 / per) + 1;
    double runs[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double a = now();
        for (int i = 0; i < n; i++)
            if (call(c)) return -1;
        runs[r] = (now() - a) / n;
    }
    qsort(runs, RUNS, sizeof *runs, cmp_double);
    return runs[RUNS / 2];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_api MODEL [K]\n");
        return 2;
    }
    int k = argc > 2 ? atoi(argv[2]) : 10;
    MtrError err;
    Mtr *m;
    MtrModel *model;
    if (mtr_open(argv[1], &m, &err) || mtr_model_read(argv[1], &model, &err)) {
        fprintf(stderr, "bench_api: %s\n", err.msg);
        return 1;
    }
    const char *cols[2] = {NULL, NULL};
    for (int i = 0; i < mtr_input_count(m); i++) {
        if (!mtr_input_is_item(m, i) && !cols[0]) cols[0] = mtr_input_name(m, i);
        if (mtr_input_is_item(m, i) && !cols[1]) cols[1] = mtr_input_name(m, i);
    }
    int64_t n_items = mtr_item_count(m);
    if (!cols[0] || !cols[1] || n_items == 0) {
        fprintf(stderr, "bench_api: the model needs a query input and an item input\n");
        return 1;
    }
    static char ids_text[BATCH][16];
    static const char *vals[2 * BATCH];
    for (int r = 0; r < BATCH; r++) {
        snprintf(ids_text[r], sizeof ids_text[r], "%d", r + 1);
        vals[2 * r] = ids_text[r];
        vals[2 * r + 1] = mtr_item_label(m, (r * 37) % n_items);
    }
    size_t n_tasks = (size_t)mtr_task_count(m);
    float *out = malloc((size_t)BATCH * (n_tasks + (size_t)k) * sizeof *out);
    int64_t *ids = malloc((size_t)BATCH * (size_t)k * sizeof *ids);
    if (!out || !ids) return 1;

    printf("bench_api: %s, %lld items, k %d, median of %d runs (microseconds)\n", mtr_name(m),
           (long long)n_items, k, RUNS);
    printf("%-36s %12s %12s %12s\n", "call", "rows", "per call", "per row");
    static const char *const names[] = {"mtr_predict", "mtr_recommend",
                                        "mtr_run_predict + fmemopen (before)"};
    for (int which = 0; which < 3; which++) {
        for (int b = 0; b < 2; b++) {
            size_t rows = b ? BATCH : 1;
            if (which == 2 && rows > 1) continue; /* one row per call only */
            Call c = {m, model, {rows, 2, cols, vals, MTR_ROWS_UNKNOWN_OK}, k, out, ids, which};
            if (which == 2) c.rows.flags = 0; /* the old path knows no such flag */
            double s = median_latency(&c);
            if (s < 0) return 1;
            printf("%-36s %12zu %12.1f %12.2f\n", names[which], rows, s * 1e6, s * 1e6 / rows);
        }
    }
    free(out), free(ids);
    mtr_model_free(model);
    mtr_close(m);
    return 0;
}
