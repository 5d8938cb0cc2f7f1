/* Tests for runtime/kernels/retrieval_mixed.c, the in-batch softmax with mixed
 * negatives: against a plain reference (every row over the batch's columns and
 * the used negatives, in double) for each combination of temperature, logq and
 * accidental-hit removal, with negatives whose keys repeat the batch's and
 * rows past U that must be ignored, in tiles smaller than the batch; a
 * hand-computed case (the loss a negative adds, with and without its logQ
 * term); hit removal of a negative carrying the positive's key; and U = 0
 * equal to inbatch_softmax_xent_opt. */
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

typedef RetrievalOpts Opts;

static void expect_near(double got, double want, double tol, const char *what, int at)
{
    if (!(fabs(got - want) <= tol * (1.0 + fabs(want)))) {
        print_error("%s[%d]: %.9g, want %.9g\n", what, at, got, want);
        fail();
    }
}

enum { B = 9, D = 4, N = 6 };
static const int32_t keys[B] = {3, 1, 3, 2, 1, 3, 5, 7, 2};
static const int32_t nkeys[N] = {8, 3, 9, 1, 11, 12};

static void fill(Rng *r, float *x, int n, float lo, float hi)
{
    for (int i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_float(r);
}

static void test_against_reference(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 17);
    float q[B * D], c[B * D], logq[B], nv[N * D], nlogq[N];
    fill(&r, q, B * D, -1, 1), fill(&r, c, B * D, -1, 1), fill(&r, logq, B, -3, -1);
    fill(&r, nv, N * D, -1, 1), fill(&r, nlogq, N, -6, -2);
    float dq[B * D], dc[B * D], dn[N * D];
    double rq[B * D], rc[B * D], rn[N * D];
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 2; h++)
                for (int64_t u = 0; u <= N; u += 3) {
                    Opts o = {t ? 0.3 : 1.0, l, h, u};
                    float loss = retrieval_run_mixed(q, c, keys, logq, B, D, nv, nkeys, nlogq, N, o,
                                                     4, dq, dc, dn);
                    double want = retrieval_reference(q, c, keys, logq, B, D, nv, nkeys, nlogq, N,
                                                      o, rq, rc, rn);
                    expect_near(loss, want, 2e-6, "loss", (int)u);
                    for (int i = 0; i < B * D; i++) {
                        expect_near(dq[i], rq[i], 2e-5, "dq", i);
                        expect_near(dc[i], rc[i], 2e-5, "dc", i);
                    }
                    for (int i = 0; i < N * D; i++) expect_near(dn[i], rn[i], 2e-5, "dn", i);
                }
}

/* By hand: D = 1, queries 1 and 2, candidates 1 and 0, one negative of vector
 * 1 and probability 1/2. Without it the loss is [log(e + 1) - 1] + log(e^2 + 1);
 * the negative adds e^1 and e^2 to the rows' sums, and with logq on (the
 * batch's logq 0) its score rises by log 2, adding 2e and 2e^2. */
static void test_hand_computed(void **state)
{
    (void)state;
    const float q[2] = {1, 2}, c[2] = {1, 0}, logq[2] = {0, 0}, nv[1] = {1};
    const float nlogq[1] = {(float)log(0.5)};
    const int32_t key[2] = {1, 2}, nkey[1] = {3};
    float dq[2], dc[2], dn[1];
    double e = exp(1.0), e2 = exp(2.0);
    double none = log(e + 1) - 1 + log(e2 + 1);
    double plain = log(2 * e + 1) - 1 + log(2 * e2 + 1);
    double corrected = log(3 * e + 1) - 1 + log(3 * e2 + 1);
    float l0 = retrieval_run_mixed(q, c, key, logq, 2, 1, nv, nkey, nlogq, 1, (Opts){1, 0, 0, 0},
                                   256, dq, dc, dn);
    float l1 = retrieval_run_mixed(q, c, key, logq, 2, 1, nv, nkey, nlogq, 1, (Opts){1, 0, 0, 1},
                                   256, dq, dc, dn);
    float l2 = retrieval_run_mixed(q, c, key, logq, 2, 1, nv, nkey, nlogq, 1, (Opts){1, 1, 0, 1},
                                   256, dq, dc, dn);
    expect_near(l0, none, 1e-6, "no negative", 0);
    expect_near(l1 - l0, plain - none, 1e-5, "the negative's change", 0);
    expect_near(l1 - l0, log((2 * e + 1) / (e + 1)) + log((2 * e2 + 1) / (e2 + 1)), 1e-5,
                "the change by hand", 0);
    expect_near(l2, corrected, 1e-6, "with logq", 0);
    /* the negative's gradient: its softmax shares times the queries */
    double want_dn = e / (2 * e + 1) * 1 + e2 / (2 * e2 + 1) * 2;
    retrieval_run_mixed(q, c, key, logq, 2, 1, nv, nkey, nlogq, 1, (Opts){1, 0, 0, 1}, 256, dq, dc,
                        dn);
    expect_near(dn[0], want_dn, 1e-5, "dn", 0);
}

/* A negative with row 0's key is an accidental hit of row 0: under H row 0's
 * loss is as without it, while row 1 still counts it. */
static void test_hits_mask_negatives(void **state)
{
    (void)state;
    const float q[2] = {1, 2}, c[2] = {1, 0}, logq[2] = {0, 0}, nv[1] = {1}, nlogq[1] = {0};
    const int32_t key[2] = {1, 2}, nkey[1] = {1};
    float dq[2], dc[2], dn[1];
    double e = exp(1.0), e2 = exp(2.0);
    float l = retrieval_run_mixed(q, c, key, logq, 2, 1, nv, nkey, nlogq, 1, (Opts){1, 0, 1, 1},
                                  256, dq, dc, dn);
    expect_near(l, log(e + 1) - 1 + log(2 * e2 + 1), 1e-6, "masked", 0);
    expect_near(dn[0], e2 / (2 * e2 + 1) * 2, 1e-5, "dn masked", 0);
}

/* With no negative used it is inbatch_softmax_xent_opt. */
static void test_none_is_opt(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 3);
    float q[B * D], c[B * D], logq[B], nv[N * D], nlogq[N];
    fill(&r, q, B * D, -1, 1), fill(&r, c, B * D, -1, 1), fill(&r, logq, B, -3, -1);
    fill(&r, nv, N * D, -1, 1), fill(&r, nlogq, N, -6, -2);
    float dq[B * D], dc[B * D], dn[N * D], oq[B * D], oc[B * D];
    float oloss =
        retrieval_run_opt(q, c, keys, logq, B, D, (Opts){0.5, 1, 1, 0}, 256 + 2 * D + 6, oq, oc);
    float loss = retrieval_run_mixed(q, c, keys, logq, B, D, nv, nkeys, nlogq, N,
                                     (Opts){0.5, 1, 1, 0}, 256, dq, dc, dn);
    expect_near(loss, oloss, 1e-5, "loss", 0);
    for (int i = 0; i < B * D; i++) {
        expect_near(dq[i], oq[i], 1e-4, "dq", i);
        expect_near(dc[i], oc[i], 1e-4, "dc", i);
    }
    for (int i = 0; i < N * D; i++) expect_near(dn[i], 0.0, 0, "dn", i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_hits_mask_negatives),
        cmocka_unit_test(test_none_is_opt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
