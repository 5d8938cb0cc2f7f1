/* Tests for runtime/kernels/retrieval_opt.c, the in-batch softmax with a
 * retrieval task's options: against a plain reference (every row, every
 * column, in double) for each combination of temperature, logq and
 * accidental-hit removal, in the grouped form (rows of a key share their
 * candidate) and the per-row one; hit removal with distinct keys equal to the
 * plain loss and to inbatch_softmax_xent_qc; and the sign of the logQ
 * correction (TFRS #219): with logq on, a gradient step raises a popular
 * item's score against a random query more than the plain loss does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/kern.h"
#include "retrieval_ref.h"
#include "mtr/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The options as the kernel reads them: knobs 0, 1, 2 (no negatives). */
typedef RetrievalOpts Opts;

/* Runs the kernel; work sized as its shape rule says (R = 256 rows). */
static float run_opt(const float *q, const float *c, const int32_t *key, const float *logq,
                     int64_t b, int64_t d, Opts o, float *dq, float *dc)
{
    return retrieval_run_opt(q, c, key, logq, b, d, o, 256 + 2 * d + 6, dq, dc);
}

/* The plain form: s_ij = q_i.c_j / T - L logq_j, column j left out of row i
 * when H, j != i and key_j == key_i; P = softmax - I; dq = P c / T, dc = P^T q / T. */
static double reference(const float *q, const float *c, const int32_t *key, const float *logq,
                        int64_t b, int64_t d, Opts o, double *dq, double *dc)
{
    return retrieval_reference(q, c, key, logq, b, d, NULL, NULL, NULL, 0, o, dq, dc, NULL);
}

static void expect_near(double got, double want, double tol, const char *what, int at)
{
    if (!(fabs(got - want) <= tol * (1.0 + fabs(want)))) {
        print_error("%s[%d]: %.9g, want %.9g\n", what, at, got, want);
        fail();
    }
}

static void check_case(const float *q, const float *c, const int32_t *key, const float *logq,
                       int64_t b, int64_t d, Opts o)
{
    float *dq = calloc((size_t)(b * d), sizeof *dq), *dc = calloc((size_t)(b * d), sizeof *dc);
    double *rq = calloc((size_t)(b * d), sizeof *rq), *rc = calloc((size_t)(b * d), sizeof *rc);
    float loss = run_opt(q, c, key, logq, b, d, o, dq, dc);
    double want = reference(q, c, key, logq, b, d, o, rq, rc);
    expect_near(loss, want, 2e-6, "loss", 0);
    for (int64_t i = 0; i < b * d; i++) {
        expect_near(dq[i], rq[i], 2e-5, "dq", (int)i);
        expect_near(dc[i], rc[i], 2e-5, "dc", (int)i);
    }
    free(dq), free(dc), free(rq), free(rc);
}

enum { B = 9, D = 4 };
static const int32_t keys[B] = {3, 1, 3, 2, 1, 3, 5, 7, 2};

/* A batch whose rows of a key share their candidate vector and logq. */
static void make_batch(Rng *r, float *q, float *c, float *logq, int grouped)
{
    for (int i = 0; i < B * D; i++) q[i] = (float)(rng_float(r) * 2.0 - 1.0);
    for (int j = 0; j < B; j++) {
        int first = j;
        for (int k = 0; k < j && grouped; k++)
            if (keys[k] == keys[j] && first == j) first = k;
        for (int k = 0; k < D; k++)
            c[j * D + k] = first < j ? c[first * D + k] : (float)(rng_float(r) * 2.0 - 1.0);
        int count = 0;
        for (int k = 0; k < B; k++) count += keys[k] == keys[j];
        logq[j] = (float)log(count / (double)B);
    }
}

static void test_against_reference(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 11);
    float q[B * D], c[B * D], logq[B];
    for (int grouped = 0; grouped < 2; grouped++) {
        make_batch(&r, q, c, logq, grouped);
        for (int t = 0; t < 2; t++)
            for (int l = 0; l < 2; l++)
                for (int h = 0; h < 2; h++)
                    check_case(q, c, keys, logq, B, D, (Opts){t ? 0.3 : 1.0, l, h, 0});
    }
}

/* With every key distinct there is no accidental hit: removal changes nothing,
 * and the plain loss equals inbatch_softmax_xent_qc's. */
static void test_hits_match_plain(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 5);
    float q[B * D], c[B * D], logq[B];
    int32_t distinct[B];
    for (int i = 0; i < B; i++) distinct[i] = 10 + i;
    make_batch(&r, q, c, logq, 0);
    float a_q[B * D], a_c[B * D], b_q[B * D], b_c[B * D], qc_q[B * D], qc_c[B * D];
    float la = run_opt(q, c, distinct, logq, B, D, (Opts){1.0, 0, 0, 0}, a_q, a_c);
    float lb = run_opt(q, c, distinct, logq, B, D, (Opts){1.0, 0, 1, 0}, b_q, b_c);
    /* equal up to rounding: with removal on, a row's own column is added back apart */
    expect_near(la, lb, 1e-6, "loss with removal", 0);
    for (int i = 0; i < B * D; i++) {
        expect_near(a_q[i], b_q[i], 1e-6, "dq with removal", i);
        expect_near(a_c[i], b_c[i], 1e-6, "dc with removal", i);
    }
    float lqc = 0.0f, *work = calloc(256 * B, sizeof *work);
    KernelCall call = {0};
    call.in[0] = q, call.in[1] = c;
    call.in_shape[0] = (KShape){B, D}, call.in_shape[1] = (KShape){B, D};
    call.out[0] = &lqc, call.out[1] = qc_q, call.out[2] = qc_c, call.out[3] = work;
    call.out_shape[1] = (KShape){B, D}, call.out_shape[2] = (KShape){B, D};
    call.out_shape[3] = (KShape){256, B};
    kernel_inbatch_softmax_xent_qc(&call);
    free(work);
    expect_near(la, lqc, 1e-6, "loss vs qc", 0);
    for (int i = 0; i < B * D; i++) {
        expect_near(a_q[i], qc_q[i], 1e-5, "dq vs qc", i);
        expect_near(a_c[i], qc_c[i], 1e-5, "dc vs qc", i);
    }
}

/* The popular item's score change after one gradient step, against a query
 * that is 0 but for the bias coordinate (the mean of random queries whose
 * other coordinates have mean 0): -lr times the bias part of the summed
 * gradient of its rows. logq_sign: 0 plain, 1 corrected, -1 the sign bug. */
static double popular_rise(int logq_sign)
{
    enum { N = 8, W = 3 };
    static const int32_t key[N] = {0, 0, 0, 0, 0, 1, 2, 3}; /* item 0: 5 of 8 rows */
    Rng r;
    rng_seed(&r, 19);
    float q[N * W], c[N * W], logq[N], dq[N * W], dc[N * W];
    float item[4][W];
    for (int m = 0; m < 4; m++) {
        for (int k = 0; k < W - 1; k++) item[m][k] = (float)(rng_float(&r) * 0.2 - 0.1);
        item[m][W - 1] = 0.0f; /* the item's bias */
    }
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < W - 1; k++) q[i * W + k] = (float)(rng_float(&r) * 0.2 - 0.1);
        q[i * W + W - 1] = 1.0f; /* queries carry a 1 for the bias */
        memcpy(c + i * W, item[key[i]], sizeof item[0]);
        int count = 0;
        for (int j = 0; j < N; j++) count += key[j] == key[i];
        logq[i] = (float)(logq_sign * log(count / (double)N));
    }
    run_opt(q, c, key, logq, N, W, (Opts){1.0, logq_sign != 0, 0, 0}, dq, dc);
    double g = 0.0;
    for (int i = 0; i < N; i++)
        if (key[i] == 0) g += dc[i * W + W - 1];
    return -0.1 * g;
}

static void test_logq_raises_popular(void **state)
{
    (void)state;
    double plain = popular_rise(0), corrected = popular_rise(1), wrong = popular_rise(-1);
    if (!(corrected > plain)) {
        print_error("logq: the popular item rises %g, the plain loss %g\n", corrected, plain);
        fail();
    }
    /* the sign error (adding log q) would have lowered it: the test sees it */
    assert_true(wrong < plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_hits_match_plain),
        cmocka_unit_test(test_logq_raises_popular),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
