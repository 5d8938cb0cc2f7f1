/* Kernel benchmark (prints figures, never passes or fails): the median wall time
 * of the training hot spots at the tutorial's sizes — in-batch softmax
 * cross-entropy at B = 8192, the B x B score matmul (8192 x 8192 x 32), and
 * retrieval_rank over 20000 queries x 1682 items x D = 32, and the rating
 * head's second layer (8192 x 256 times 256 x 128) forward and backward by
 * tiles.h's products and by OpenBLAS's.
 * Build: link against libmtr (kernels) and OpenBLAS; run with no arguments. */
#include "kernels/tiles.h"
#include "mtr/kernels.h"
#include "mtr/pool.h"
#include "mtr/rng.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPEATS 7

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

/* Runs fn(call) REPEATS times; returns the median seconds. */
static double median_time(KernelFn fn, const KernelCall *call)
{
    double t[REPEATS];
    for (int i = 0; i < REPEATS; i++) {
        double t0 = now();
        fn(call);
        t[i] = now() - t0;
    }
    qsort(t, REPEATS, sizeof t[0], by_value);
    return t[REPEATS / 2];
}

static float *random_floats(Rng *r, size_t n, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng_float(r);
    return p;
}

/* The three sgemm calls the fused in-batch softmax stands for, at b x b x d:
 * scores = q c^T, dq = P c, dc = P^T q. */
typedef struct {
    const float *q, *c;
    float *s, *dq, *dc;
    int64_t b, d;
} Three;

static void three_products(const KernelCall *call)
{
    const Three *t = call->in[0];
    int b = (int)t->b, d = (int)t->d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, b, d, 1.0f, t->q, d, t->c, d, 0.0f,
                t->s, b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, d, b, 1.0f, t->s, b, t->c, d, 0.0f,
                t->dq, d);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b, d, b, 1.0f, t->s, b, t->q, d, 0.0f,
                t->dc, d);
}

/* The fused softmax at b x b distinct ids against its three products, on
 * `threads` threads (the pool and OpenBLAS alike). */
static void fused_against_products(Rng *r, int threads)
{
    const int64_t b = 8192, d = 32, rows = 256, wrows = rows + 6 * d + 6;
    pool_start(threads);
    openblas_set_num_threads(threads);
    float *q = random_floats(r, (size_t)(b * d), -0.5f, 0.5f);
    float *c = random_floats(r, (size_t)(b * d), -0.5f, 0.5f);
    float *s = malloc((size_t)(b * b) * sizeof *s);
    float *dq = malloc((size_t)(b * d) * sizeof *dq), *dc = malloc((size_t)(b * d) * sizeof *dc);
    float *work = malloc((size_t)(wrows * b) * sizeof *work);
    int32_t *qid = malloc((size_t)b * sizeof *qid), *cid = malloc((size_t)b * sizeof *cid);
    if (!s || !dq || !dc || !work || !qid || !cid) exit(1);
    for (int64_t i = 0; i < b; i++) qid[i] = (int32_t)i, cid[i] = (int32_t)(b - 1 - i);
    Three th = {q, c, s, dq, dc, b, d};
    KernelCall tc = {0};
    tc.in[0] = &th;
    double t3 = median_time(three_products, &tc);
    free(s);
    float loss;
    KernelCall fu = {0};
    fu.in[0] = q, fu.in[1] = c, fu.in[2] = qid, fu.in[3] = cid;
    fu.in_shape[0] = fu.in_shape[1] = (KShape){b, d};
    fu.in_shape[2] = fu.in_shape[3] = (KShape){b, 1};
    fu.out[0] = &loss, fu.out[1] = dq, fu.out[2] = dc, fu.out[3] = work;
    fu.out_shape[0] = (KShape){1, 1};
    fu.out_shape[1] = fu.out_shape[2] = (KShape){b, d};
    fu.out_shape[3] = (KShape){rows, b};
    double tq = median_time(kernel_inbatch_softmax_xent_qc, &fu);
    fu.out_shape[3] = (KShape){wrows, b};
    double ti = median_time(kernel_inbatch_softmax_xent_ids, &fu);
    printf("threads %d: three sgemm 8192x8192x32 %8.2f ms; fused _qc %8.2f ms (%.2fx); "
           "fused _ids on 8192 x 8192 distinct ids %8.2f ms (%.2fx)\n",
           threads, 1e3 * t3, 1e3 * tq, tq / t3, 1e3 * ti, ti / t3);
    free(q), free(c), free(dq), free(dc), free(work), free(qid), free(cid);
    pool_stop();
}

/* One embedding table's part of a training step at batch 8192, D = 32: the
 * gather, the gradient and the Adagrad update, sparse (embedding_grad,
 * adagrad_update_rows: what mtrc emits) or dense (scatter_add, adagrad_update:
 * mtrc -O0), for a table of v rows. Ids uniform over the table, a new batch
 * of them each time (so the rows touched are not the last call's). */
#define EMB_BATCHES 16

typedef struct {
    KernelCall gather, grad, update;
    KernelFn grad_fn, update_fn;
    int32_t *ids, *all_ids; /* the batch's ids, taken in turn from EMB_BATCHES batches */
    int next;
} EmbStep;

static void embedding_step(const KernelCall *call)
{
    EmbStep *st = call->in[0];
    const int64_t b = st->gather.in_shape[1].rows;
    memcpy(st->ids, st->all_ids + (st->next++ % EMB_BATCHES) * b, (size_t)b * sizeof *st->ids);
    kernel_gather(&st->gather);
    st->grad_fn(&st->grad);
    st->update_fn(&st->update);
}

static double embedding_step_time(Rng *r, int64_t v, int sparse, float *table, float *accum,
                                  float *dense)
{
    const int64_t b = 8192, d = 32;
    float *y = random_floats(r, (size_t)(b * d), -1.0f, 1.0f);
    float *rows = malloc((size_t)(b * d) * sizeof *rows);
    int32_t *ids = malloc((size_t)b * sizeof *ids), *idx = malloc((size_t)b * sizeof *idx);
    int32_t *work = malloc((size_t)(2 * b) * sizeof *work);
    if (!rows || !ids || !idx || !work) exit(1);
    int32_t *all_ids = malloc((size_t)(EMB_BATCHES * b) * sizeof *all_ids);
    if (!all_ids) exit(1);
    for (int64_t i = 0; i < EMB_BATCHES * b; i++) all_ids[i] = (int32_t)rng_below(r, (uint64_t)v);
    double knobs[2] = {0.1, 1e-7};
    EmbStep st = {0};
    st.ids = ids, st.all_ids = all_ids;
    st.gather.in[0] = table, st.gather.in[1] = ids, st.gather.out[0] = y;
    st.gather.in_shape[0] = (KShape){v, d}, st.gather.in_shape[1] = (KShape){b, 1};
    st.gather.out_shape[0] = (KShape){b, d};
    st.grad.in[0] = y, st.grad.in[1] = ids, st.grad.in[2] = table;
    st.grad.in_shape[0] = (KShape){b, d}, st.grad.in_shape[1] = (KShape){b, 1};
    st.grad.in_shape[2] = (KShape){v, d};
    st.update.knobs = knobs, st.update.iattr[1] = 1;
    st.update.in[0] = table;
    st.update.in_shape[0] = (KShape){v, d};
    if (sparse) {
        st.grad_fn = kernel_embedding_grad, st.update_fn = kernel_adagrad_update_rows;
        st.grad.out[0] = rows, st.grad.out[1] = idx, st.grad.out[2] = work;
        st.grad.out_shape[0] = (KShape){b, d}, st.grad.out_shape[1] = (KShape){b, 1};
        st.grad.out_shape[2] = (KShape){b, 2};
        st.update.in[1] = rows, st.update.in[2] = idx, st.update.in[3] = accum;
        st.update.in_shape[1] = (KShape){b, d}, st.update.in_shape[2] = (KShape){b, 1};
        st.update.in_shape[3] = (KShape){v, d};
    } else {
        st.grad_fn = kernel_scatter_add, st.update_fn = kernel_adagrad_update;
        st.grad.out[0] = dense, st.grad.out_shape[0] = (KShape){v, d};
        st.update.in[1] = dense, st.update.in[2] = accum;
        st.update.in_shape[1] = st.update.in_shape[2] = (KShape){v, d};
    }
    KernelCall c = {0};
    c.in[0] = &st;
    double t = median_time(embedding_step, &c);
    free(y), free(rows), free(ids), free(idx), free(work), free(all_ids);
    return t;
}

static void embedding_steps(Rng *r)
{
    const int64_t d = 32, sizes[2] = {100000, 10000000};
    double t[2][2];
    for (int k = 0; k < 2; k++) {
        int64_t v = sizes[k];
        float *table = random_floats(r, (size_t)(v * d), -0.05f, 0.05f);
        float *accum = malloc((size_t)(v * d) * sizeof *accum);
        float *dense = malloc((size_t)(v * d) * sizeof *dense);
        if (!accum || !dense) exit(1);
        for (int64_t i = 0; i < v * d; i++) accum[i] = 0.1f;
        for (int sparse = 1; sparse >= 0; sparse--)
            t[k][sparse] = embedding_step_time(r, v, sparse, table, accum, dense);
        free(table), free(accum), free(dense);
        printf("embedding step V=%-8lld B=8192 D=32: sparse %8.3f ms, dense %8.3f ms\n",
               (long long)v, 1e3 * t[k][1], 1e3 * t[k][0]);
    }
    printf("embedding step, V=10M over V=100k: sparse %.2fx, dense %.2fx\n", t[1][1] / t[0][1],
           t[1][0] / t[0][0]);
}

/* The rating head's second dense layer at batch 8192, 256 -> 128 units: its
 * forward product and the two of its backward, as kernel_matmul makes them,
 * by tiles.h (where the CPU has AVX-512) and by OpenBLAS alone, one thread.
 * The two run in turn REPEATS times and each prints its median. */
static void dense_layer_products(Rng *r)
{
    const int64_t b = 8192, in = 256, out = 128;
    float *x = random_floats(r, (size_t)(b * in), 0.0f, 1.0f);
    float *w = random_floats(r, (size_t)(in * out), -0.1f, 0.1f);
    float *dy = random_floats(r, (size_t)(b * out), -0.01f, 0.01f);
    float *y = random_floats(r, (size_t)(b * out), 0.0f, 1.0f);
    float *dx = random_floats(r, (size_t)(b * in), 0.0f, 1.0f);
    float *dw = random_floats(r, (size_t)(in * out), 0.0f, 1.0f);
    /* forward y = x w, dx = dy w^T, dw = x^T dy */
    KernelCall calls[3];
    memset(calls, 0, sizeof calls);
    const char *names[3] = {"y = x w", "dx = dy w^T", "dw = x^T dy"};
    calls[0].in[0] = x, calls[0].in_shape[0] = (KShape){b, in};
    calls[0].in[1] = w, calls[0].in_shape[1] = (KShape){in, out};
    calls[0].out[0] = y, calls[0].out_shape[0] = (KShape){b, out};
    calls[1].in[0] = dy, calls[1].in_shape[0] = (KShape){b, out};
    calls[1].in[1] = w, calls[1].in_shape[1] = (KShape){in, out}, calls[1].iattr[1] = 1;
    calls[1].out[0] = dx, calls[1].out_shape[0] = (KShape){b, in};
    calls[2].in[0] = x, calls[2].in_shape[0] = (KShape){b, in}, calls[2].iattr[0] = 1;
    calls[2].in[1] = dy, calls[2].in_shape[1] = (KShape){b, out};
    calls[2].out[0] = dw, calls[2].out_shape[0] = (KShape){in, out};
    double flops = 2.0 * (double)(b * in * out);
    for (int c = 0; c < 3; c++) {
        double t[2][REPEATS];
        for (int i = 0; i < REPEATS; i++)
            for (int tiled = 0; tiled < 2; tiled++) {
                tiles_enable(tiled);
                double t0 = now();
                kernel_matmul(&calls[c]);
                t[tiled][i] = now() - t0;
            }
        tiles_enable(1);
        qsort(t[0], REPEATS, sizeof t[0][0], by_value);
        qsort(t[1], REPEATS, sizeof t[1][0], by_value);
        double tt = t[1][REPEATS / 2], tb = t[0][REPEATS / 2];
        printf("dense 8192x256x128 %-12s tiles %6.2f ms %6.1f GFLOP/s, OpenBLAS %6.2f ms %6.1f "
               "GFLOP/s%s\n",
               names[c], 1e3 * tt, flops / tt * 1e-9, 1e3 * tb, flops / tb * 1e-9,
               tiles_usable() ? "" : " (no AVX-512: both OpenBLAS)");
    }
    free(x), free(w), free(dy), free(y), free(dx), free(dw);
}

/* top_k over a recommend batch: 256 queries' scores over 100k items (the 10m
 * case of scale.sh), in random order and in ascending order (every score
 * enters the kept list: the worst case for keeping it sorted). */
static void top_k_batches(Rng *r)
{
    const int64_t b = 256, n = 100000;
    float *scores = random_floats(r, (size_t)(b * n), -1.0f, 1.0f);
    float *rising = malloc((size_t)(b * n) * sizeof *rising);
    int32_t *index = malloc((size_t)(b * 1000) * sizeof *index);
    float *best = malloc((size_t)(b * 1000) * sizeof *best);
    if (!rising || !index || !best) exit(1);
    for (int64_t i = 0; i < b * n; i++) rising[i] = (float)(i % n);
    static const int64_t ks[] = {10, 100, 1000};
    for (size_t kk = 0; kk < sizeof ks / sizeof ks[0]; kk++) {
        KernelCall c = {0};
        c.in_shape[0] = (KShape){b, n};
        c.out[0] = index, c.out[1] = best;
        c.out_shape[0] = c.out_shape[1] = (KShape){b, ks[kk]};
        c.in[0] = scores;
        double t_random = median_time(kernel_top_k, &c);
        c.in[0] = rising;
        double t_rising = median_time(kernel_top_k, &c);
        printf("top_k 256x100000 k=%-4lld          %8.2f ms random, %8.2f ms ascending\n",
               (long long)ks[kk], 1e3 * t_random, 1e3 * t_rising);
    }
    free(scores), free(rising), free(index), free(best);
}

int main(void)

{
    Rng r;
    rng_seed(&r, 42);
    fused_against_products(&r, 1);
    fused_against_products(&r, 2);
    openblas_set_num_threads(1);
    dense_layer_products(&r);
    embedding_steps(&r);
    const int64_t b = 8192, d = 32;

    float *q = random_floats(&r, (size_t)(b * d), -0.05f, 0.05f);
    float *x = random_floats(&r, (size_t)(b * d), -0.05f, 0.05f);
    float *s = random_floats(&r, (size_t)(b * b), -8.0f, 8.0f);
    KernelCall mm = {0};
    mm.in[0] = q;
    mm.in_shape[0] = (KShape){b, d};
    mm.in[1] = x;
    mm.in_shape[1] = (KShape){b, d};
    mm.iattr[1] = 1;
    mm.out[0] = s;
    mm.out_shape[0] = (KShape){b, b};
    double t = median_time(kernel_matmul, &mm);
    printf("matmul 8192x8192x32 (q x^T):     %8.2f ms  %6.1f GFLOP/s\n", 1e3 * t,
           2.0 * (double)(b * b * d) / t * 1e-9);

    float loss;
    KernelCall xe = {0};
    xe.in[0] = s;
    xe.in_shape[0] = (KShape){b, b};
    xe.out[0] = &loss;
    xe.out_shape[0] = (KShape){1, 1};
    xe.out[1] = s; /* in place, as training runs it */
    xe.out_shape[1] = (KShape){b, b};
    t = median_time(kernel_inbatch_softmax_xent, &xe);
    printf("inbatch_softmax_xent B=8192:     %8.2f ms  %6.2f ns/element\n", 1e3 * t,
           t / (double)(b * b) * 1e9);

    /* The fused forms the compiler uses instead: blocked rows, and distinct ids
     * (rows gathered from ml-100k-sized tables: 943 users, 1664 titles). */
    float *dq = malloc((size_t)(b * d) * sizeof *dq), *dc = malloc((size_t)(b * d) * sizeof *dc);
    const int64_t rows = 256, wrows = rows + 6 * d + 6;
    float *work = malloc((size_t)(wrows * b) * sizeof *work);
    int32_t *qid = malloc((size_t)b * sizeof *qid), *cid = malloc((size_t)b * sizeof *cid);
    float *tu = random_floats(&r, (size_t)(943 * d), -0.05f, 0.05f);
    float *tm = random_floats(&r, (size_t)(1664 * d), -0.05f, 0.05f);
    if (!dq || !dc || !work || !qid || !cid) return 1;
    for (int64_t i = 0; i < b; i++) {
        qid[i] = (int32_t)rng_below(&r, 943);
        cid[i] = (int32_t)rng_below(&r, 1664);
        for (int64_t k = 0; k < d; k++) {
            q[i * d + k] = tu[qid[i] * d + k];
            x[i * d + k] = tm[cid[i] * d + k];
        }
    }
    KernelCall fu = {0};
    fu.in[0] = q, fu.in[1] = x, fu.in[2] = qid, fu.in[3] = cid;
    fu.in_shape[0] = fu.in_shape[1] = (KShape){b, d};
    fu.in_shape[2] = fu.in_shape[3] = (KShape){b, 1};
    fu.out[0] = &loss, fu.out[1] = dq, fu.out[2] = dc, fu.out[3] = work;
    fu.out_shape[0] = (KShape){1, 1};
    fu.out_shape[1] = fu.out_shape[2] = (KShape){b, d};
    fu.out_shape[3] = (KShape){rows, b};
    t = median_time(kernel_inbatch_softmax_xent_qc, &fu);
    printf("inbatch_softmax_xent_qc B=8192:  %8.2f ms  (scores, softmax and both gradients)\n",
           1e3 * t);
    fu.out_shape[3] = (KShape){wrows, b};
    t = median_time(kernel_inbatch_softmax_xent_ids, &fu);
    printf("inbatch_softmax_xent_ids B=8192: %8.2f ms  (the same on distinct ids)\n", 1e3 * t);

    /* The retrieval options (temperature 0.5, logq, accidental-hit removal)
     * and 256 mixed negatives on the same batch, workspaces as the shape
     * rules give them. */
    enum { NEG = 256 };
    float *logq = malloc((size_t)b * sizeof *logq), *nv = malloc((size_t)(NEG * d) * sizeof *nv);
    float *nlogq = malloc(NEG * sizeof *nlogq), *dn = malloc((size_t)(NEG * d) * sizeof *dn);
    float *nwork = malloc((size_t)(rows * NEG) * sizeof *nwork);
    int32_t *nkey = malloc(NEG * sizeof *nkey);
    if (!logq || !nv || !nlogq || !dn || !nwork || !nkey) return 1;
    for (int64_t i = 0; i < b; i++) logq[i] = -7.0f; /* a uniform item's log probability */
    for (int64_t v = 0; v < NEG; v++) {
        nkey[v] = (int32_t)rng_below(&r, 1664);
        memcpy(nv + v * d, tm + nkey[v] * d, (size_t)d * sizeof *nv);
        nlogq[v] = -7.4f;
    }
    double knobs[5] = {0.5, 1.0, 1.0, NEG, 0.0};
    KernelCall op = fu;
    op.in[2] = cid, op.in[3] = logq;
    op.out_shape[3] = (KShape){rows + 2 * d + 6, b};
    op.iattr[0] = 0, op.iattr[1] = 1, op.iattr[2] = 2;
    op.knobs = knobs;
    t = median_time(kernel_inbatch_softmax_xent_opt, &op);
    printf("inbatch_softmax_xent_opt B=8192: %8.2f ms  (temperature, logq, hit removal)\n",
           1e3 * t);
    KernelCall mx = op;
    mx.in[4] = nv, mx.in[5] = nkey, mx.in[6] = nlogq;
    mx.in_shape[4] = (KShape){NEG, d}, mx.in_shape[5] = mx.in_shape[6] = (KShape){NEG, 1};
    mx.out[3] = dn, mx.out[4] = work, mx.out[5] = nwork;
    mx.out_shape[3] = (KShape){NEG, d}, mx.out_shape[4] = (KShape){rows, b};
    mx.out_shape[5] = (KShape){rows, NEG};
    mx.iattr[3] = 3, mx.iattr[4] = 4;
    t = median_time(kernel_inbatch_softmax_xent_mixed, &mx);
    printf("inbatch_softmax_xent_mixed B=8192: %6.2f ms  (the same with 256 negatives)\n", 1e3 * t);
    free(logq), free(nv), free(nlogq), free(dn), free(nwork), free(nkey);
    free(dq), free(dc), free(work), free(qid), free(cid), free(tu), free(tm);

    const int64_t nq = 20000, ni = 1682;
    float *qq = random_floats(&r, (size_t)(nq * d), -1.0f, 1.0f);
    float *items = random_floats(&r, (size_t)(ni * d), -1.0f, 1.0f);
    int32_t *truth = malloc((size_t)nq * sizeof *truth);
    float *rank = malloc((size_t)nq * sizeof *rank);
    if (!truth || !rank) return 1;
    for (int64_t i = 0; i < nq; i++) truth[i] = (int32_t)rng_below(&r, (uint64_t)ni);
    KernelCall rr = {0};
    rr.in[0] = qq;
    rr.in_shape[0] = (KShape){nq, d};
    rr.in[1] = items;
    rr.in_shape[1] = (KShape){ni, d};
    rr.in[2] = truth;
    rr.in_shape[2] = (KShape){nq, 1};
    rr.out[0] = rank;
    rr.out_shape[0] = (KShape){nq, 1};
    t = median_time(kernel_retrieval_rank, &rr);
    printf("retrieval_rank 20000x1682x32:    %8.2f ms\n", 1e3 * t);
    top_k_batches(&r);

    free(q);
    free(x);
    free(s);
    free(qq);
    free(items);
    free(truth);
    free(rank);
    return 0;
}
