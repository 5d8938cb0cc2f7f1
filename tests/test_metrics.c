/* Tests for runtime/metrics.c: RMSE and MAE on hand-computed cases, AUC against
 * a brute-force pairwise count (ties included), top-k counting at the rank
 * boundaries, and the report's names and order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mtr/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* |got - want| <= eps, with both values in the failure message. */
#define assert_close(got, want, eps) check_close((got), (want), (eps), __FILE__, __LINE__)
static void check_close(double got, double want, double eps, const char *file, int line)
{
    if (!(fabs(got - want) <= eps)) {
        print_error("%.17g != %.17g (eps %g)\n", got, want, eps);
        _fail(file, line);
    }
}

static void test_regression_hand(void **state)
{
    (void)state;
    MetricsRegression r;
    metrics_regression_reset(&r);
    assert_true(isnan(metrics_regression_rmse(&r)));
    assert_true(isnan(metrics_regression_mae(&r)));
    /* differences -0.5, 0, 1, -2: squares sum 5.25, absolutes sum 3.5 */
    const float pred[] = {1, 2, 3, 4}, label[] = {1.5f, 2, 2, 6};
    metrics_regression_add(&r, pred, label, 3);
    metrics_regression_add(&r, pred + 3, label + 3, 1);
    assert_int_equal(r.rows, 4);
    assert_close(metrics_regression_rmse(&r), sqrt(5.25 / 4), 1e-15);
    assert_close(metrics_regression_mae(&r), 3.5 / 4, 1e-15);
}

static void test_auc_known(void **state)
{
    (void)state;
    MetricsAuc a;
    assert_int_equal(metrics_auc_init(&a, 8, NULL), MTR_OK);
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f}, l[] = {0, 0, 1, 1};
    assert_int_equal(metrics_auc_add(&a, s, l, 4, NULL), MTR_OK);
    int one = -1;
    assert_close(metrics_auc_value(&a, &one), 0.75, 1e-15);
    assert_int_equal(one, 0);

    /* A tie between a positive and a negative counts one half. */
    metrics_auc_reset(&a);
    const float t[] = {0.5f, 0.5f, 0.9f, 0.1f}, tl[] = {0, 1, 1, 0};
    assert_int_equal(metrics_auc_add(&a, t, tl, 4, NULL), MTR_OK);
    /* pairs (pos, neg): (0.5,0.5)=.5 (0.5,0.1)=1 (0.9,0.5)=1 (0.9,0.1)=1 -> 3.5/4 */
    assert_close(metrics_auc_value(&a, NULL), 3.5 / 4, 1e-15);
    metrics_auc_free(&a);
}

static void test_auc_one_class_and_capacity(void **state)
{
    (void)state;
    MetricsAuc a;
    MtrError err = {0};
    assert_int_equal(metrics_auc_init(&a, 3, &err), MTR_OK);
    int one = 0;
    assert_true(isnan(metrics_auc_value(&a, &one)));
    assert_int_equal(one, 1);
    const float s[] = {0.2f, 0.7f, 0.1f, 0.3f}, l[] = {1, 1, 0.9f, 1};
    assert_int_equal(metrics_auc_add(&a, s, l, 3, &err), MTR_OK);
    assert_true(isnan(metrics_auc_value(&a, &one)));
    assert_int_equal(one, 1);
    /* Over capacity: refused, and nothing was added. */
    assert_int_equal(metrics_auc_add(&a, s, l, 1, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "capacity 3"));
    assert_int_equal(a.rows, 3);
    metrics_auc_free(&a);
}

static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static void test_auc_brute_force(void **state)
{
    (void)state;
    uint64_t seed = 7;
    for (int round = 0; round < 20; round++) {
        int n = 50 + (int)(lcg(&seed) % 400);
        int levels = round % 2 ? 5 : 100000; /* few levels: many ties */
        float *s = malloc(sizeof *s * (size_t)n), *l = malloc(sizeof *l * (size_t)n);
        assert_non_null(s);
        assert_non_null(l);
        for (int i = 0; i < n; i++) {
            s[i] = (float)(lcg(&seed) % (uint32_t)levels) / (float)levels;
            l[i] = (float)(lcg(&seed) % 3 == 0);
        }
        l[0] = 1;
        l[1] = 0;
        double num = 0;
        int64_t pairs = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (l[i] == 1 && l[j] == 0) {
                    pairs++;
                    num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
                }
        MetricsAuc a;
        assert_int_equal(metrics_auc_init(&a, n, NULL), MTR_OK);
        int half = n / 2;
        assert_int_equal(metrics_auc_add(&a, s, l, half, NULL), MTR_OK);
        assert_int_equal(metrics_auc_add(&a, s + half, l + half, n - half, NULL), MTR_OK);
        assert_close(metrics_auc_value(&a, NULL), num / (double)pairs, 1e-12);
        metrics_auc_free(&a);
        free(s);
        free(l);
    }
}

static void test_topk_boundaries(void **state)
{
    (void)state;
    const int32_t ks[] = {1, 5, 10};
    const int32_t ri[] = {1, 5, 6, 10, 11, 2};
    const float rf[] = {1, 5, 6, 10, 11, 2};
    MetricsTopK t;
    metrics_topk_init(&t, ks, 3);
    assert_true(isnan(metrics_topk_value(&t, 0)));
    metrics_topk_add_i32(&t, ri, 4);
    metrics_topk_add_i32(&t, ri + 4, 2);
    /* k=1: {1}; k=5: {1,5,2} (5 is exactly k, 6 is k+1); k=10: {1,5,6,10,2} */
    assert_int_equal(t.hits[0], 1);
    assert_int_equal(t.hits[1], 3);
    assert_int_equal(t.hits[2], 5);
    assert_close(metrics_topk_value(&t, 1), 3.0 / 6, 1e-15);
    assert_true(isnan(metrics_topk_value(&t, 3)));

    metrics_topk_reset(&t);
    metrics_topk_add_f32(&t, rf, 6);
    assert_int_equal(t.rows, 6);
    assert_int_equal(t.hits[0], 1);
    assert_int_equal(t.hits[1], 3);
    assert_int_equal(t.hits[2], 5);
}

/* A model with only what metrics reads: tasks, an eval_step whose typed
 * outputs say which tensor each task's metrics read, and their dtypes. */
static MtrModel *model_with_tasks(int two_rankers)
{
    MtrModel *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->n_tensors = 3;
    m->tensors = calloc(3, sizeof *m->tensors);
    m->tensors[0].dtype = MTR_DT_F32; /* rating prediction */
    m->tensors[1].dtype = MTR_DT_F32; /* other prediction */
    m->tensors[2].dtype = MTR_DT_I32; /* retrieval rank */
    m->n_tasks = two_rankers ? 3 : 2;
    m->tasks = calloc(m->n_tasks, sizeof *m->tasks);
    m->n_programs = 1;
    m->programs = calloc(1, sizeof *m->programs);
    MtrProgram *eval = &m->programs[0];
    eval->kind = MTR_PROG_EVAL;
    eval->outputs = calloc(3, sizeof *eval->outputs);
    MtrTask *t = m->tasks;
    t[0] = (MtrTask){.name = "rating",
                     .metrics = 1u << MTR_METRIC_RMSE | 1u << MTR_METRIC_MAE,
                     .label_column = 0};
    eval->outputs[eval->n_outputs++] = (MtrOutput){MTR_OUT_PREDICTION, 0, 0, -1};
    int32_t r = 1;
    if (two_rankers) {
        t[r] = (MtrTask){.name = "click",
                         .metrics = 1u << MTR_METRIC_RMSE | 1u << MTR_METRIC_AUC,
                         .label_column = 1};
        eval->outputs[eval->n_outputs++] = (MtrOutput){MTR_OUT_PREDICTION, r++, 1, -1};
    }
    t[r] = (MtrTask){.name = "retrieval",
                     .metrics = 1u << MTR_METRIC_TOP_K,
                     .n_ks = 2,
                     .ks = {1, 5},
                     .label_column = -1};
    eval->outputs[eval->n_outputs++] = (MtrOutput){MTR_OUT_RANK, r, 2, -1};
    return m;
}

static void model_release(MtrModel *m)
{
    free(m->tensors);
    free(m->tasks);
    free(m->programs[0].outputs);
    free(m->programs);
    free(m);
}

/* Per-user lists on a case worked by hand (Microsoft Recommenders'
 * definitions): two users with relevant keys, one without (coverage only). */
static void test_lists_hand(void **state)
{
    (void)state;
    MetricsLists l = {0};
    const int32_t ks[] = {1, 3};
    assert_int_equal(metrics_lists_init(&l, ks, 2, 10, 8, NULL), MTR_OK);
    const int32_t a_top[] = {3, 1, 4}, a_rel[] = {1, 5};
    const int32_t b_top[] = {5, 2, 9}, b_rel[] = {5};
    const int32_t c_top[] = {7};
    metrics_lists_add_user(&l, a_top, 3, a_rel, 2);
    metrics_lists_add_user(&l, b_top, 3, b_rel, 1);
    metrics_lists_add_user(&l, c_top, 1, NULL, 0);
    assert_int_equal(l.users, 2);
    /* k = 1: only user b's first key is relevant */
    assert_close(metrics_lists_value(&l, MTR_METRIC_RECALL, 0), 0.5, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_NDCG, 0), 0.5, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_MAP, 0), 0.5, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_HIT_RATE, 0), 0.5, 1e-12);
    /* k = 3: user a finds key 1 at position 2 of 2 relevant keys */
    double a_ndcg = (1.0 / log2(3.0)) / (1.0 + 1.0 / log2(3.0));
    assert_close(metrics_lists_value(&l, MTR_METRIC_RECALL, 1), (0.5 + 1.0) / 2, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_NDCG, 1), (a_ndcg + 1.0) / 2, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_MAP, 1), (0.5 / 2 + 1.0) / 2, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_HIT_RATE, 1), 1.0, 1e-12);
    /* coverage over a catalogue of 8 keys: {3,5,7} in anyone's first 1, 7 keys in the first 3 */
    assert_close(metrics_lists_value(&l, MTR_METRIC_COVERAGE, 0), 3.0 / 8, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_COVERAGE, 1), 7.0 / 8, 1e-12);
    /* a list shorter than k finds nothing past its end */
    metrics_lists_reset(&l);
    const int32_t short_top[] = {2}, short_rel[] = {2, 6};
    metrics_lists_add_user(&l, short_top, 1, short_rel, 2);
    assert_close(metrics_lists_value(&l, MTR_METRIC_RECALL, 1), 0.5, 1e-12);
    assert_close(metrics_lists_value(&l, MTR_METRIC_MAP, 1), 0.5, 1e-12);
    metrics_lists_free(&l);
    assert_true(isnan(metrics_lists_value(&l, MTR_METRIC_RECALL, 0)));
}

static void test_report_names_single(void **state)
{
    (void)state;
    MtrModel *m = model_with_tasks(0);
    Metrics ms;
    assert_int_equal(metrics_init(&ms, m, 4, NULL), MTR_OK);
    const float pred[] = {3, 4}, label[] = {4, 4};
    const int32_t rank[] = {1, 7};
    assert_int_equal(metrics_add(&ms, 0, pred, label, 2, NULL), MTR_OK);
    assert_int_equal(metrics_add(&ms, 1, rank, NULL, 2, NULL), MTR_OK);
    MtrError err = {0};
    assert_int_equal(metrics_add(&ms, 0, pred, NULL, 2, &err), MTR_E_ARG);
    assert_int_equal(metrics_add(&ms, 9, pred, label, 2, &err), MTR_E_ARG);

    MetricsReport r;
    assert_int_equal(metrics_report(&ms, &r, NULL), MTR_OK);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.entries[0].name, "rmse");
    assert_string_equal(r.entries[1].name, "mae");
    assert_string_equal(r.entries[2].name, "top_1");
    assert_string_equal(r.entries[3].name, "top_5");
    assert_close(r.entries[0].value, sqrt(0.5), 1e-15);
    assert_close(r.entries[1].value, 0.5, 1e-15);
    assert_close(r.entries[2].value, 0.5, 1e-15);
    assert_close(r.entries[3].value, 0.5, 1e-15);
    assert_ptr_equal(metrics_report_find(&r, "mae"), &r.entries[1]);
    assert_null(metrics_report_find(&r, "auc"));
    metrics_report_free(&r);

    metrics_reset(&ms);
    assert_int_equal(metrics_report(&ms, &r, NULL), MTR_OK);
    assert_true(isnan(r.entries[0].value));
    metrics_report_free(&r);
    metrics_free(&ms);
    model_release(m);
}

static void test_report_names_shared(void **state)
{
    (void)state;
    MtrModel *m = model_with_tasks(1);
    Metrics ms;
    assert_int_equal(metrics_init(&ms, m, 2, NULL), MTR_OK);
    const float pred[] = {0.9f, 0.2f}, label[] = {1, 0};
    assert_int_equal(metrics_add(&ms, 1, pred, label, 2, NULL), MTR_OK);
    MtrError err = {0};
    /* Only the AUC keeps rows, so only it has a capacity to exceed. */
    assert_int_equal(metrics_add(&ms, 1, pred, label, 1, &err), MTR_E_ARG);
    MetricsReport r;
    assert_int_equal(metrics_report(&ms, &r, NULL), MTR_OK);
    const char *want[] = {"rating.rmse", "mae", "click.rmse", "auc", "top_1", "top_5"};
    assert_int_equal(r.n, 6);
    for (int i = 0; i < 6; i++) assert_string_equal(r.entries[i].name, want[i]);
    assert_close(metrics_report_find(&r, "auc")->value, 1.0, 0);
    assert_true(isnan(metrics_report_find(&r, "rating.rmse")->value));
    metrics_report_free(&r);
    metrics_free(&ms);
    model_release(m);
}

/* A missing label (NaN) counts in no metric: the same numbers as without its row. */
static void test_missing_labels(void **state)
{
    (void)state;
    const float pred[] = {0.9f, 0.2f, 0.7f, 0.4f}, label[] = {1, NAN, 0, 1};
    const float kp[] = {0.9f, 0.7f, 0.4f}, kl[] = {1, 0, 1};
    MetricsRegression a, b;
    metrics_regression_reset(&a);
    metrics_regression_reset(&b);
    metrics_regression_add(&a, pred, label, 4);
    metrics_regression_add(&b, kp, kl, 3);
    assert_int_equal(a.rows, 3);
    assert_true(metrics_regression_rmse(&a) == metrics_regression_rmse(&b));
    assert_true(metrics_regression_log_loss(&a) == metrics_regression_log_loss(&b));
    MetricsAuc x, y;
    assert_int_equal(metrics_auc_init(&x, 4, NULL), MTR_OK);
    assert_int_equal(metrics_auc_init(&y, 4, NULL), MTR_OK);
    assert_int_equal(metrics_auc_add(&x, pred, label, 4, NULL), MTR_OK);
    assert_int_equal(metrics_auc_add(&y, kp, kl, 3, NULL), MTR_OK);
    assert_true(metrics_auc_value(&x, NULL) == metrics_auc_value(&y, NULL));
    assert_true(metrics_auc_value(&x, NULL) == 0.5); /* 1 of 2 positive pairs ranked right */
    metrics_auc_free(&x);
    metrics_auc_free(&y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression_hand),
        cmocka_unit_test(test_missing_labels),
        cmocka_unit_test(test_auc_known),
        cmocka_unit_test(test_auc_one_class_and_capacity),
        cmocka_unit_test(test_auc_brute_force),
        cmocka_unit_test(test_topk_boundaries),
        cmocka_unit_test(test_lists_hand),
        cmocka_unit_test(test_report_names_single),
        cmocka_unit_test(test_report_names_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
