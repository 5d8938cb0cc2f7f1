/* Tests for runtime/kernels/retrieval_group.c, the retrieval softmax with
 * options and mixed negatives on distinct rows: batches whose queries repeat
 * (rows of a user), whose candidate keys repeat (one key with two different
 * vectors too), with accidental hits among the repeated keys, and negatives
 * that repeat and collide with the batch's keys (the same vector, another
 * logq), checked for every option against the plain form (every row, every
 * column, in double), through inbatch_softmax_xent_opt and
 * inbatch_softmax_xent_mixed, with workspaces that take the grouped form and
 * ones too small for it (the per-row form). */
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

enum { B = 40, D = 5, N = 10, USERS = 6, ITEMS = 7 };

static void expect_near(double got, double want, double tol, const char *what, int at)
{
    if (!(fabs(got - want) <= tol * (1.0 + fabs(want)))) {
        print_error("%s[%d]: %.9g, want %.9g\n", what, at, got, want);
        fail();
    }
}

/* A batch of B rows: user i % USERS (queries repeat), item key[i] of ITEMS
 * with a popular item 0; rows of an item share its vector and logq, except
 * item 3, whose rows alternate between two vectors. Negatives: items 0, 0,
 * 2, 3 (in the batch: the same vector as the batch's, the sampler's logq),
 * then items 20.. (not in the batch), one of them drawn twice. `scale`
 * sharpens the softmax (a confident model: a row's own item dominates). */
typedef struct {
    float q[B * D], c[B * D], logq[B], nv[N * D], nlogq[N];
    int32_t key[B], nkey[N];
} Batch;

static void make_batch(Batch *x, uint64_t seed, float scale)
{
    Rng r;
    rng_seed(&r, seed);
    float user[USERS][D], item[ITEMS + 1][D], far[N][D];
    for (int u = 0; u < USERS; u++)
        for (int k = 0; k < D; k++) user[u][k] = scale * (float)(rng_float(&r) * 2.0 - 1.0);
    for (int m = 0; m <= ITEMS; m++)
        for (int k = 0; k < D; k++) item[m][k] = (float)(rng_float(&r) * 2.0 - 1.0);
    for (int v = 0; v < N; v++)
        for (int k = 0; k < D; k++) far[v][k] = (float)(rng_float(&r) * 2.0 - 1.0);
    int count[ITEMS] = {0};
    for (int i = 0; i < B; i++) {
        int u = i % USERS;
        /* item 0 on every third row, else spread; a user meets its items more than once */
        int m = i % 3 == 0 ? 0 : 1 + (int)((i * 7 + u) % (ITEMS - 1));
        x->key[i] = m;
        count[m]++;
        memcpy(x->q + i * D, user[u], sizeof user[u]);
        memcpy(x->c + i * D, item[m == 3 && i % 2 ? ITEMS : m], sizeof item[m]);
    }
    for (int i = 0; i < B; i++) x->logq[i] = (float)log(count[x->key[i]] / (double)B);
    static const int32_t drawn[N] = {0, 20, 2, 0, 21, 3, 22, 21, 23, 24};
    for (int v = 0; v < N; v++) {
        x->nkey[v] = drawn[v];
        memcpy(x->nv + v * D, drawn[v] < ITEMS ? item[drawn[v]] : far[v], sizeof far[v]);
        x->nlogq[v] = (float)log(1.0 / (ITEMS + 20));
    }
    x->nlogq[0] = x->nlogq[3] = (float)log(3.0 / (ITEMS + 20)); /* item 0: its own probability */
    memcpy(x->nv + 7 * D, x->nv + 4 * D, sizeof far[0]);        /* item 21 drawn twice */
}

/* Every option and count of negatives against the plain form, through both
 * kernels, in the grouped form and the per-row one (workspaces of 2 rows). */
static void check_batch(const Batch *x, double tol)
{
    float dq[B * D], dc[B * D], dn[N * D];
    double rq[B * D], rc[B * D], rn[N * D];
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 2; h++)
                for (int64_t u = 0; u <= N; u += 5)
                    for (int form = 0; form < 3; form++) {
                        Opts o = {t ? 0.4 : 1.0, l, h, u};
                        if (form == 2 && u > 0) continue;
                        double want = retrieval_reference(x->q, x->c, x->key, x->logq, B, D, x->nv,
                                                          x->nkey, x->nlogq, N, o, rq, rc, rn);
                        int64_t rows = form == 1 ? 2 : 256;
                        float loss = form == 2 ? retrieval_run_opt(x->q, x->c, x->key, x->logq, B,
                                                                   D, o, 256 + 2 * D + 6, dq, dc)
                                               : retrieval_run_mixed(x->q, x->c, x->key, x->logq, B,
                                                                     D, x->nv, x->nkey, x->nlogq, N,
                                                                     o, rows, dq, dc, dn);
                        int at = (int)(((t * 2 + l) * 2 + h) * 100 + u * 10 + form);
                        /* the loss sums B rows' scores, each rounded in float */
                        expect_near(loss, want, tol, "loss", at);
                        for (int i = 0; i < B * D; i++) {
                            expect_near(dq[i], rq[i], tol, "dq", at);
                            expect_near(dc[i], rc[i], tol, "dc", at);
                        }
                        if (form < 2)
                            for (int i = 0; i < N * D; i++)
                                expect_near(dn[i], rn[i], tol, "dn", at);
                    }
}

static void test_repeated_rows(void **state)
{
    (void)state;
    Batch x;
    make_batch(&x, 7, 1.0f);
    check_batch(&x, 2e-5);
}

/* Sharp scores: a row's own item holds most of its softmax, so removing its
 * item's other copies leaves a small share; still the plain form's result. */
static void test_confident_hits(void **state)
{
    (void)state;
    Batch x;
    make_batch(&x, 9, 6.0f);
    check_batch(&x, 5e-5);
}

/* Every row the same user and item: one query, one column, and under hit
 * removal each row keeps only its own copy (loss 0 without negatives). */
static void test_one_pair(void **state)
{
    (void)state;
    Batch x;
    make_batch(&x, 3, 1.0f);
    for (int i = 0; i < B; i++) {
        memcpy(x.q + i * D, x.q, D * sizeof *x.q);
        memcpy(x.c + i * D, x.c, D * sizeof *x.c);
        x.key[i] = x.key[0];
        x.logq[i] = 0.0f;
    }
    check_batch(&x, 2e-5);
    float dq[B * D], dc[B * D];
    float loss = retrieval_run_opt(x.q, x.c, x.key, x.logq, B, D, (Opts){1.0, 0, 1, 0},
                                   256 + 2 * D + 6, dq, dc);
    expect_near(loss, 0.0, 1e-5, "one pair, hits removed", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeated_rows),
        cmocka_unit_test(test_confident_hits),
        cmocka_unit_test(test_one_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
