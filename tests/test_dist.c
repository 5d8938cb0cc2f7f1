/* Tests for runtime/dist.c: each rank's share of a batch; the metrics summed
 * across ranks; and a whole data-parallel training, two ranks played by two
 * threads of this process over an in-memory MtrDist (so that the step runs
 * under the sanitizers too, where MPI does not), against one process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mtr/dist.h"
#include "mtr/knobs.h"
#include "mtr/run.h"
#include "testutil.h"
#include "thread_ranks.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_rows_shares(void **state)
{
    (void)state;
    int64_t lo, hi;
    mtr_dist_rows(NULL, 17, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 17);
    for (int size = 1; size <= 5; size++)
        for (int64_t n = size; n <= 40; n++) {
            int64_t at = 0, least = n, most = 0;
            for (int r = 0; r < size; r++) {
                MtrDist d = {.rank = r, .size = size};
                mtr_dist_rows(&d, n, &lo, &hi);
                assert_int_equal(lo, at); /* contiguous, in rank order */
                at = hi;
                least = hi - lo < least ? hi - lo : least;
                most = hi - lo > most ? hi - lo : most;
            }
            assert_int_equal(at, n);
            assert_true(most - least <= 1 && least >= 1);
        }
}

/* A two-rank MtrDist whose other rank sent exactly what this one did. */
static void mirror_allgather(void *ctx, const void *mine, size_t n, void *all)
{
    (void)ctx;
    memcpy(all, mine, n);
    memcpy((char *)all + n, mine, n);
}

static void mirror_allgatherv(void *ctx, const void *mine, const size_t *bytes, void *all)
{
    (void)ctx;
    memmove((char *)all + bytes[0], mine, bytes[1]);
    memmove(all, (char *)all + bytes[0], bytes[0]);
}

static void test_metrics_sum(void **state)
{
    (void)state;
    MtrError err = {0};
    MetricsTask t = {0};
    Metrics ms = {.n_tasks = 1, .tasks = &t};
    int32_t ks[] = {1, 10};
    metrics_topk_init(&t.topk, ks, 2);
    assert_int_equal(metrics_auc_init(&t.auc, 8, &err), MTR_OK);
    float pred[] = {0.9f, 0.1f, 0.4f}, label[] = {1.0f, 0.0f, 1.0f};
    metrics_regression_add(&t.reg, pred, label, 3);
    assert_int_equal(metrics_auc_add(&t.auc, pred, label, 3, &err), MTR_OK);
    int32_t rank[] = {1, 5, 20};
    metrics_topk_add_i32(&t.topk, rank, 3);
    double rmse = metrics_regression_rmse(&t.reg), auc = metrics_auc_value(&t.auc, NULL);
    assert_int_equal(mtr_dist_metrics_sum(NULL, &ms, &err), MTR_OK); /* one process: as is */
    assert_int_equal(t.reg.rows, 3);
    MtrDist two = {
        .rank = 0, .size = 2, .allgather = mirror_allgather, .allgatherv = mirror_allgatherv};
    assert_int_equal(mtr_dist_metrics_sum(&two, &ms, &err), MTR_OK);
    assert_int_equal(t.reg.rows, 6);
    assert_int_equal(t.topk.rows, 6);
    assert_int_equal(t.topk.hits[0], 2);
    assert_int_equal(t.topk.hits[1], 4);
    assert_int_equal(t.auc.rows, 6);
    assert_true(fabs(metrics_regression_rmse(&t.reg) - rmse) < 1e-12);
    assert_true(fabs(metrics_auc_value(&t.auc, NULL) - auc) < 1e-12);
    /* more pairs than the room: an error, nothing written past it */
    t.auc.rows = 5;
    assert_int_equal(mtr_dist_metrics_sum(&two, &ms, &err), MTR_E_ARG);
    metrics_auc_free(&t.auc);
}

/* ---- two ranks as two threads (thread_ranks.h) */

typedef struct {
    MtrModel *m;
    MtrRunOptions o;
    MtrRunResult res;
    MtrStatus rc;
    MtrError err;
} Job;

static void *train_job(void *arg)
{
    Job *j = arg;
    j->rc = mtr_run_train(j->m, &j->o, &j->res, &j->err);
    return NULL;
}

/* A model compiled from models/NAME, or from `text` when given, with batches of
 * 500 rows and 2 epochs. */
static MtrModel *small_model(const char *name, const char *text)
{
    char *path = tu_path(tu_source_dir(), name), *file = NULL;
    if (!text) text = file = tu_read_file(path, NULL);
    assert_non_null(text);
    MtrModel *m = tu_compile(name, text);
    assert_non_null(m);
    MtrError err = {0};
    assert_int_equal(mtr_knob_assign(m, "train.batch=500", &err), MTR_OK);
    assert_int_equal(mtr_knob_assign(m, "train.epochs=2", &err), MTR_OK);
    free(file);
    free(path);
    return m;
}

/* Trains the model on 1,999 generated rows as one process and as two ranks
 * played by threads, and checks the ranks against the process. */
static void two_ranks_agree(const char *name, const char *text)
{
    char *dir = tu_tmpdir();
    /* 1,999 rows (the last batch 499: uneven shares), 120 users, 80 items */
    size_t cap = 64 * 2000, len = 0;
    char *csv = malloc(cap);
    assert_non_null(csv);
    len += (size_t)snprintf(csv + len, cap - len, "user_id,movie_title,user_rating\n");
    uint64_t s = 7;
    for (int i = 0; i < 1999; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        unsigned u = (unsigned)(s >> 33) % 120, v = (unsigned)(s >> 17) % 80;
        len += (size_t)snprintf(csv + len, cap - len, "u%u,i%u,%u\n", u, v, (u + v) % 5 + 1);
    }
    char *data = tu_path(dir, "interactions.csv");
    assert_int_equal(tu_write_file(data, csv, len), 0);

    Job one = {.m = small_model(name, text), .o = {.data_dir = dir}};
    train_job(&one);
    assert_int_equal(one.rc, MTR_OK);

    RankMeeting meet;
    rank_meeting_open(&meet, 2);
    RankSeat seats[2] = {{&meet, 0}, {&meet, 1}};
    MtrDist d[2];
    Job two[2];
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
        d[r] = rank_dist(&seats[r]);
        two[r] = (Job){.m = small_model(name, text), .o = {.data_dir = dir, .dist = &d[r]}};
        assert_int_equal(pthread_create(&th[r], NULL, train_job, &two[r]), 0);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    rank_meeting_close(&meet);

    for (int r = 0; r < 2; r++) {
        assert_int_equal(two[r].rc, MTR_OK);
        assert_int_equal(two[r].res.test.n, one.res.test.n);
        for (uint32_t i = 0; i < one.res.test.n; i++) {
            double a = one.res.test.entries[i].value, b = two[r].res.test.entries[i].value;
            if (fabs(a - b) > 1e-4)
                fail_msg("%s: %g against %g", one.res.test.entries[i].name, a, b);
        }
        /* the same parameters on both ranks, bit for bit, and one process's to 1e-5 */
        const MtrModel *m1 = one.m, *m2 = two[r].m;
        for (uint32_t t = 0; t < m1->n_tensors; t++) {
            if (m1->tensors[t].role != MTR_ROLE_PARAM) continue;
            int64_t n = mtr_tensor_elems(&m1->tensors[t], m1->symbol_values);
            for (int64_t e = 0; e < n; e++) {
                float a = m1->param_data[t][e], b = m2->param_data[t][e];
                if (fabsf(a - b) > 1e-5f * fmaxf(1.0f, fabsf(a)))
                    fail_msg("%s[%lld]: %g against %g", m1->tensors[t].name, (long long)e, a, b);
                if (r == 1) assert_memory_equal(&two[0].m->param_data[t][e], &b, sizeof b);
            }
        }
    }
    for (int r = 0; r < 2; r++) {
        metrics_report_free(&two[r].res.test);
        metrics_report_free(&two[r].res.baseline);
        mtr_model_free(two[r].m);
    }
    metrics_report_free(&one.res.test);
    metrics_report_free(&one.res.baseline);
    mtr_model_free(one.m);
    free(csv);
    free(data);
    tu_rmtree(dir);
    free(dir);
}

static void test_two_ranks_as_threads(void **state)
{
    (void)state;
    two_ranks_agree("models/movielens.mtr", NULL);
}

/* The softmax with options (op 92) and with mixed negatives (op 93), which
 * run whole on every rank. */
static void test_two_ranks_retrieval_options(void **state)
{
    (void)state;
    two_ranks_agree("options.mtr",
                    "model options\n"
                    "input user_id : string\n"
                    "input movie_title : string\n"
                    "tower user = user_id -> lookup -> embedding(8)\n"
                    "tower movie = movie_title -> lookup -> embedding(8)\n"
                    "task options = retrieval(user, movie) metrics top_k(10) temperature 0.5 "
                    "logq remove_accidental_hits\n"
                    "task mixed = retrieval(user, movie) metrics top_k(10) negatives 16 "
                    "popularity 0.5 logq\n"
                    "train {\n  optimizer adagrad(lr = 0.1)\n}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_shares),
        cmocka_unit_test(test_metrics_sum),
        cmocka_unit_test(test_two_ranks_as_threads),
        cmocka_unit_test(test_two_ranks_retrieval_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
