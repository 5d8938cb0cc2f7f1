/* Tests for runtime/api.c (the public API, mtr.h) on a small trained model
 * (tests/gen_planted.sh, trained by the built mtrc and mtrun): listing, batch
 * predict equal to one row at a time, recommend equal to the dot products of
 * query and item vectors, exclusions, items sharing a label listed once, every refusal as a status
 * and a message, and one handle used by several threads at once (under the sanitizers too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mtr.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *dir, *trained, *untrained;
} Fixture;

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->trained = tu_path(f->dir, "trained.bin");
    f->untrained = tu_path(f->dir, "model.bin");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s/tests/gen_planted.sh' '%s/p' 7 && '%s/mtrc' '%s/p/planted.mtr' -o '%s' && "
             "'%s/mtrun' '%s' --data '%s/p/data' --quiet -o '%s'",
             tu_source_dir(), f->dir, tu_bin_dir(), f->dir, f->untrained, tu_bin_dir(),
             f->untrained, f->dir, f->trained);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) {
        fprintf(stderr, "%s\n", out ? out : "");
        free(out);
        return -1;
    }
    free(out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir), free(f->trained), free(f->untrained), free(f);
    return 0;
}

static Mtr *open_trained(void **state)
{
    Fixture *f = *state;
    MtrError err = {0};
    Mtr *m = NULL;
    if (mtr_open(f->trained, &m, &err)) fail_msg("mtr_open: %s", err.msg);
    return m;
}

static void test_lists(void **state)
{
    Mtr *m = open_trained(state);
    assert_string_equal(mtr_name(m), "planted");
    assert_int_equal(mtr_trained(m), 1);
    assert_int_equal(mtr_task_count(m), 2);
    int rating = mtr_task_find(m, "rating"), retrieval = mtr_task_find(m, "retrieval");
    assert_true(rating >= 0 && retrieval >= 0);
    assert_int_equal(mtr_task_find(m, "nope"), -1);
    assert_int_equal(mtr_task_flags(m, rating), MTR_TASK_PREDICTS);
    assert_int_equal(mtr_task_flags(m, retrieval), MTR_TASK_VECTORS | MTR_TASK_RECOMMENDS);
    assert_int_equal(mtr_vector_dim(m, rating), 0);
    assert_int_equal(mtr_vector_dim(m, retrieval), 8);
    assert_null(mtr_task_name(m, 2));
    assert_int_equal(mtr_task_flags(m, -1), 0);
    assert_int_equal(mtr_input_count(m), 2);
    assert_string_equal(mtr_input_name(m, 0), "user_id");
    assert_int_equal(mtr_input_type(m, 0), MTR_INPUT_STRING);
    assert_int_equal(mtr_input_is_item(m, 0), 0);
    assert_int_equal(mtr_input_is_item(m, 1), 1);
    assert_null(mtr_input_name(m, 5));
    assert_int_equal(mtr_item_count(m), 90);
    assert_non_null(mtr_item_label(m, 89));
    assert_null(mtr_item_label(m, 90));
    int found = 0;
    for (int k = 0; k < mtr_knob_count(m); k++)
        found |= !strcmp(mtr_knob_name(m, k), "train.batch");
    assert_true(found);
    MtrError err = {0};
    assert_int_equal(mtr_set_knob(m, "rating.weight", 0.5, &err), MTR_OK);
    for (int k = 0; k < mtr_knob_count(m); k++)
        if (!strcmp(mtr_knob_name(m, k), "rating.weight")) assert_true(mtr_knob_value(m, k) == 0.5);
    assert_int_equal(mtr_set_knob(m, "train.batch", 0.5, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "integer"));
    mtr_close(m);
    mtr_close(NULL);
}

#define ROWS 300

/* ROWS rows of (user, item): every user in turn, items in a stride. */
typedef struct {
    const char *vals[2 * ROWS];
    char names[ROWS][16];
    MtrRows rows;
} Batch;

static const char *const batch_cols[] = {"user_id", "movie_title"};

static const MtrRows *batch_fill(Mtr *m, Batch *b)
{
    for (int r = 0; r < ROWS; r++) {
        snprintf(b->names[r], sizeof b->names[r], "user_%02d", r % 60);
        b->vals[2 * r] = b->names[r];
        b->vals[2 * r + 1] = mtr_item_label(m, (r * 7) % 90);
    }
    b->rows = (MtrRows){ROWS, 2, (const char *const *)batch_cols, b->vals, 0};
    return &b->rows;
}

static void test_predict_batch_equals_rows(void **state)
{
    Mtr *m = open_trained(state);
    static Batch b;
    const MtrRows rows = *batch_fill(m, &b);
    const char *const *vals = b.vals, *const *cols = batch_cols;
    float *out = malloc(ROWS * 2 * sizeof *out);
    MtrError err = {0};
    assert_int_equal(mtr_predict(m, &rows, out, &err), MTR_OK);
    int rating = mtr_task_find(m, "rating"), retrieval = mtr_task_find(m, "retrieval");
    for (int r = 0; r < ROWS; r += 37) {
        float one[2];
        MtrRows row = {1, 2, cols, vals + 2 * r, 0};
        assert_int_equal(mtr_predict(m, &row, one, &err), MTR_OK);
        assert_true(one[rating] == out[r * 2 + rating]);
        assert_true(isnan(out[r * 2 + retrieval]));
        assert_true(isfinite(out[r * 2 + rating]));
    }
    free(out);
    mtr_close(m);
}

static void test_recommend_is_vectors(void **state)
{
    Mtr *m = open_trained(state);
    static const char *cols[] = {"user_id"};
    const char *vals[] = {"user_03", "user_31", "user_59"};
    MtrRows rows = {3, 1, cols, vals, 0};
    int dim = mtr_vector_dim(m, mtr_task_find(m, "retrieval"));
    int64_t n = mtr_item_count(m);
    float *q = malloc(3 * (size_t)dim * sizeof *q), *v = malloc((size_t)(n * dim) * sizeof *v);
    int64_t ids[3 * 5];
    float scores[3 * 5];
    MtrError err = {0};
    assert_int_equal(mtr_query_vectors(m, -1, &rows, q, &err), MTR_OK);
    assert_int_equal(mtr_item_vectors(m, -1, v, &err), MTR_OK);
    assert_int_equal(mtr_recommend(m, &rows, 5, NULL, ids, scores, &err), MTR_OK);
    for (int r = 0; r < 3; r++) {
        float best = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            float s = 0;
            for (int j = 0; j < dim; j++) s += q[r * dim + j] * v[i * dim + j];
            if (s > best) best = s;
            for (int k = 0; k < 5; k++)
                if (ids[r * 5 + k] == i) assert_float_equal(s, scores[r * 5 + k], 1e-4);
        }
        assert_float_equal(best, scores[r * 5], 1e-4);
        for (int k = 1; k < 5; k++) assert_true(scores[r * 5 + k - 1] >= scores[r * 5 + k]);
    }
    /* Exclusions: row 0 without its two best, row 1 without nothing, row 2
     * without all but one item. */
    int64_t *ex = malloc((size_t)(2 + n - 1) * sizeof *ex);
    ex[0] = ids[0], ex[1] = ids[1];
    for (int64_t i = 0; i < n - 1; i++) ex[2 + i] = i;
    size_t start[] = {0, 2, 2, (size_t)(2 + n - 1)};
    MtrRecommendOptions opt = {-1, start, ex};
    int64_t ids2[3 * 3];
    float scores2[3 * 3];
    assert_int_equal(mtr_recommend(m, &rows, 3, &opt, ids2, scores2, &err), MTR_OK);
    for (int k = 0; k < 3; k++) assert_int_equal(ids2[k], ids[2 + k]);
    for (int k = 0; k < 3; k++) assert_int_equal(ids2[3 + k], ids[5 + k]);
    assert_int_equal(ids2[6], n - 1);
    assert_int_equal(ids2[7], -1);
    assert_true(isinf(scores2[8]) && scores2[8] < 0);
    free(ex), free(q), free(v);
    mtr_close(m);
}

/* Items that share a label are listed once, at the best of them. Here items
 * 90-149 repeat the labels of items 0-29 twice over (a user of group 0 finds
 * three copies of each of its items at the top). Every list is checked against
 * the scores of every item (query and item vectors): the labels it lists are
 * the best ones, each at its best copy, with as many lines as there are labels
 * to list; over several k, with and without exclusions (by item, so excluding
 * an item leaves its copies). */
static void test_recommend_distinct_labels(void **state)
{
    Fixture *f = *state;
    char *dir = tu_path(f->dir, "dup"), *model = tu_path(f->dir, "dup.bin");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s/tests/gen_planted.sh' '%s' 7 && cd '%s/data' && "
             "tail -n +2 items.csv | head -n 30 >more.csv && cat more.csv more.csv >>items.csv && "
             "'%s/mtrc' ../planted.mtr -o '%s' && '%s/mtrun' '%s' --data . --quiet -o '%s'",
             tu_source_dir(), dir, dir, tu_bin_dir(), model, tu_bin_dir(), model, model);
    char *out = NULL;
    if (tu_run(cmd, &out) != 0) fail_msg("%s", out ? out : "");
    free(out);
    MtrError err = {0};
    Mtr *m = NULL;
    if (mtr_open(model, &m, &err)) fail_msg("mtr_open: %s", err.msg);
    int64_t n = mtr_item_count(m);
    assert_int_equal(n, 150);
    assert_string_equal(mtr_item_label(m, 90), mtr_item_label(m, 0));
    assert_string_equal(mtr_item_label(m, 149), mtr_item_label(m, 29));

    enum { R = 4, KMAX = 100 };
    static const char *cols[] = {"user_id"};
    const char *vals[R] = {"user_00", "user_09", "user_31", "user_05"};
    MtrRows rows = {R, 1, cols, vals, 0};
    int dim = mtr_vector_dim(m, mtr_task_find(m, "retrieval"));
    assert_true(dim > 0);
    float *q = malloc((size_t)(R * dim) * sizeof *q), *v = malloc((size_t)(n * dim) * sizeof *v);
    assert_int_equal(mtr_query_vectors(m, -1, &rows, q, &err), MTR_OK);
    assert_int_equal(mtr_item_vectors(m, -1, v, &err), MTR_OK);
    double score[R][150];
    for (int r = 0; r < R; r++)
        for (int64_t i = 0; i < n; i++) {
            score[r][i] = 0;
            for (int j = 0; j < dim; j++) score[r][i] += (double)q[r * dim + j] * v[i * dim + j];
        }
    /* row 0: without items 0-9 (their copies stay); row 1: nothing; row 2:
     * without every copy of items 0-29; row 3: without one item */
    int64_t ex[10 + 90 + 1];
    for (int i = 0; i < 10; i++) ex[i] = i;
    for (int i = 0; i < 30; i++)
        ex[10 + 3 * i] = i, ex[11 + 3 * i] = 90 + i, ex[12 + 3 * i] = 120 + i;
    ex[100] = 45;
    size_t start[R + 1] = {0, 10, 10, 100, 101};
    static const int ks[] = {1, 5, 40, KMAX};
    int64_t ids[R * KMAX];
    float sc[R * KMAX];
    for (size_t kk = 0; kk < sizeof ks / sizeof ks[0]; kk++)
        for (int with_ex = 0; with_ex < 2; with_ex++) {
            int k = ks[kk];
            MtrRecommendOptions opt = {-1, start, ex};
            assert_int_equal(mtr_recommend(m, &rows, k, with_ex ? &opt : NULL, ids, sc, &err),
                             MTR_OK);
            for (int r = 0; r < R; r++) {
                int excluded[150] = {0};
                for (size_t e = start[r]; with_ex && e < start[r + 1]; e++) excluded[ex[e]] = 1;
                const int64_t *id = ids + r * k;
                int len = 0;
                while (len < k && id[len] >= 0) len++;
                for (int i = len; i < k; i++) assert_int_equal(id[i], -1);
                int listable = 0; /* labels with a copy left: their first kept items */
                for (int64_t i = 0; i < n; i++) {
                    int first = !excluded[i];
                    for (int64_t j = 0; j < i && first; j++)
                        first = excluded[j] || strcmp(mtr_item_label(m, i), mtr_item_label(m, j));
                    listable += first;
                }
                assert_int_equal(len, listable < k ? listable : k);
                for (int i = 0; i < len; i++) {
                    assert_true(id[i] >= 0 && id[i] < n && !excluded[id[i]]);
                    for (int g = 0; g < i; g++)
                        assert_string_not_equal(mtr_item_label(m, id[g]), mtr_item_label(m, id[i]));
                    assert_float_equal(sc[r * k + i], score[r][id[i]], 1e-4);
                    if (i) assert_true(sc[r * k + i - 1] >= sc[r * k + i]);
                }
                /* every item not listed: its label is listed at a copy at least
                 * as good, or it ranks below the last line */
                for (int64_t j = 0; j < n; j++) {
                    if (excluded[j]) continue;
                    int at = -1;
                    for (int i = 0; i < len && at < 0; i++)
                        if (strcmp(mtr_item_label(m, id[i]), mtr_item_label(m, j)) == 0) at = i;
                    if (at >= 0)
                        assert_true(score[r][j] <= score[r][id[at]] + 1e-4);
                    else
                        assert_true(len == k && score[r][j] <= score[r][id[len - 1]] + 1e-4);
                }
            }
        }
    free(q), free(v), free(dir), free(model);
    mtr_close(m);
}

static void test_refusals(void **state)
{
    Fixture *f = *state;
    Mtr *m = open_trained(state);
    MtrError err = {0};
    static const char *cols[] = {"user_id", "movie_title"};
    const char *vals[] = {"user_01", "item_g0_1", "nobody", "item_g0_1"};
    MtrRows rows = {2, 2, cols, vals, 0};
    float out[4];
    int64_t ids[4];
    assert_int_equal(mtr_predict(m, &rows, out, &err), MTR_E_ARG);
    assert_string_equal(err.msg,
                        "row 2: unknown user_id 'nobody': it is not among the 60 values the "
                        "model was trained on");
    rows.flags = MTR_ROWS_UNKNOWN_OK;
    assert_int_equal(mtr_predict(m, &rows, out, &err), MTR_OK);
    assert_int_equal(mtr_predict(m, NULL, out, &err), MTR_E_ARG);
    assert_int_equal(mtr_predict(m, &rows, NULL, &err), MTR_E_ARG);
    MtrRows none = {0, 2, cols, vals, 0};
    assert_int_equal(mtr_predict(m, &none, out, &err), MTR_E_ARG);
    MtrRows user_only = {1, 1, cols, vals, 0};
    static const char *twice[] = {"user_id", "user_id"};
    MtrRows dup = {1, 2, twice, vals, 0};
    assert_int_equal(mtr_predict(m, &dup, out, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "column 'user_id' is given twice"));
    assert_int_equal(mtr_predict(m, &user_only, out, &err), MTR_E_DATA);
    assert_non_null(strstr(err.msg, "no column 'movie_title'"));
    assert_int_equal(mtr_recommend(m, &user_only, 0, NULL, ids, out, &err), MTR_E_ARG);
    assert_int_equal(mtr_recommend(m, &user_only, 91, NULL, ids, out, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "between 1 and the 90 items"));
    MtrRecommendOptions opt = {mtr_task_find(m, "rating"), NULL, NULL};
    assert_int_equal(mtr_recommend(m, &user_only, 1, &opt, ids, out, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "only 'retrieval' can be served"));
    assert_int_equal(mtr_item_vectors(m, mtr_task_find(m, "rating"), out, &err), MTR_E_ARG);
    mtr_close(m);

    Mtr *u = NULL;
    assert_int_equal(mtr_open(f->untrained, &u, &err), MTR_OK);
    assert_int_equal(mtr_trained(u), 0);
    rows.flags = 0;
    assert_int_equal(mtr_predict(u, &rows, out, &err), MTR_E_STATE);
    assert_non_null(strstr(err.msg, "not trained"));
    assert_int_equal(mtr_recommend(u, &user_only, 1, NULL, ids, out, &err), MTR_E_STATE);
    mtr_close(u);
    assert_int_equal(mtr_open("/nonexistent/model.bin", &u, &err), MTR_E_IO);
    assert_int_equal(mtr_open_buffer("MTRx", 4, &u, &err), MTR_E_FORMAT);
    assert_int_equal(mtr_open(NULL, &u, &err), MTR_E_ARG);
}

/* ---- one handle, several threads */

typedef struct {
    const Mtr *m;
    const MtrRows *rows;
    const float *want;
    const int64_t *want_ids;
    int bad;
} Job;

static void *work(void *arg)
{
    Job *j = arg;
    float *out = malloc(ROWS * 2 * sizeof *out);
    int64_t *ids = malloc(ROWS * 4 * sizeof *ids);
    float *sc = malloc(ROWS * 4 * sizeof *sc);
    MtrError err;
    MtrRows users = *j->rows;
    for (int it = 0; it < 3; it++) {
        if (mtr_predict(j->m, j->rows, out, &err) ||
            memcmp(out, j->want, ROWS * 2 * sizeof *out) != 0)
            j->bad++;
        if (mtr_recommend(j->m, &users, 4, NULL, ids, sc, &err) ||
            memcmp(ids, j->want_ids, ROWS * 4 * sizeof *ids) != 0)
            j->bad++;
    }
    free(out), free(ids), free(sc);
    return NULL;
}

static void test_threads(void **state)
{
    Mtr *m = open_trained(state);
    static Batch b;
    const MtrRows rows = *batch_fill(m, &b);
    float *want = malloc(ROWS * 2 * sizeof *want), *sc = malloc(ROWS * 4 * sizeof *sc);
    int64_t *want_ids = malloc(ROWS * 4 * sizeof *want_ids);
    MtrError err = {0};
    assert_int_equal(mtr_predict(m, &rows, want, &err), MTR_OK);
    assert_int_equal(mtr_recommend(m, &rows, 4, NULL, want_ids, sc, &err), MTR_OK);
    pthread_t th[4];
    Job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (Job){m, &rows, want, want_ids, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
    free(want), free(sc), free(want_ids);
    mtr_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_predict_batch_equals_rows),
        cmocka_unit_test(test_recommend_is_vectors),
        cmocka_unit_test(test_recommend_distinct_labels),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
