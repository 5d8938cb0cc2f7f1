/* Tests for semantic checks (compiler/sema.c): the "sema:" fields of a
 * checked model, the defaults (train, optimizers, weights, losses), the
 * namespaces, every kind of semantic mistake, and the --dump ast text. */
#include "frontend.h"
#include "sema.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static AstModel *check(Pool *pool, const char *src, char **out)
{
    size_t n = 0;
    FILE *f = open_memstream(out, &n);
    assert_non_null(f);
    Diag *d = diag_new(f);
    AstModel *m = frontend_parse("t.mtr", src, strlen(src), pool, d);
    diag_free(d);
    fclose(f);
    return m;
}

static void expect_error(const char *src, const char *want)
{
    Pool *pool = pool_new();
    char *out = NULL;
    AstModel *m = check(pool, src, &out);
    if (m || !strstr(out, want)) {
        fprintf(stderr, "source:\n%s\nwanted: %s\ngot:\n%s\n", src, want, out);
        fail();
    }
    free(out);
    pool_free(pool);
}

static void expect_ok(const char *src)
{
    Pool *pool = pool_new();
    char *out = NULL;
    AstModel *m = check(pool, src, &out);
    if (!m) fprintf(stderr, "source:\n%s\ngot:\n%s\n", src, out);
    assert_non_null(m);
    free(out);
    pool_free(pool);
}

static const char MOVIELENS[] =
    "model movielens\n"
    "input user_id : string\ninput movie_title : string\nlabel user_rating : float\n"
    "tower user = user_id -> lookup -> embedding(32)\n"
    "tower movie = movie_title -> lookup -> embedding(32)\n"
    "head rating = concat(user, movie) -> dense(256, relu) -> dense(128, relu) -> dense(1)\n"
    "task rating = ranking(rating, user_rating) loss mse metrics rmse weight 1.0\n"
    "task retrieval = retrieval(user, movie) metrics top_k(1, 5, 10, 50, 100) weight 1.0\n"
    "train {\n optimizer adagrad(lr = 0.1)\n batch 8192\n epochs 3\n seed 42\n split 0.8\n}\n";

static void test_sema_fields(void **state)
{
    (void)state;
    Pool *pool = pool_new();
    char *out = NULL;
    AstModel *m = check(pool, MOVIELENS, &out);
    assert_non_null(m);
    AstColumn *user_id = m->columns, *title = user_id->next, *label = title->next;
    assert_true(user_id->looked_up);
    assert_false(user_id->is_item);
    assert_true(title->looked_up);
    assert_true(title->is_item);
    assert_false(label->looked_up);
    AstChain *user = m->chains, *movie = user->next, *head = movie->next;
    assert_int_equal(user->width, 32);
    assert_false(user->is_item);
    assert_true(movie->is_item);
    assert_int_equal(head->width, 1);
    assert_int_equal(head->stages->in_width, 64);
    assert_int_equal(head->stages->next->in_width, 256);
    assert_int_equal(head->stages->next->next->in_width, 128);
    assert_int_equal(user->stages->in_width, 0);
    assert_ptr_equal(head->sources->chain, user);
    assert_null(head->sources->column);
    assert_ptr_equal(user->sources->column, user_id);
    assert_ptr_equal(m->tasks->args->chain, head);
    assert_ptr_equal(m->tasks->args->next->column, label);
    assert_int_equal(m->tasks->next->loss, LOSS_IN_BATCH_SOFTMAX);
    assert_int_equal(m->train.optimizer, OPT_ADAGRAD);
    assert_true(m->train.value[MTR_KNOB_LR] == 0.1);
    assert_true(m->train.value[MTR_KNOB_INITIAL_ACCUMULATOR] == 0.1);
    assert_true(m->train.value[MTR_KNOB_EPSILON] == 1e-7);
    free(out);
    pool_free(pool);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *base = "model m\ninput u : string\ninput i : int\nlabel r : int\n"
                       "tower a = u -> lookup -> embedding(4)\n"
                       "tower b = i -> lookup -> embedding(4) -> dense(4)\n"
                       "tower c = concat(a, b)\n"
                       "head h = c -> dense(1)\n"
                       "task t = ranking(h, r)\n";
    char src[2048];
    const struct {
        const char *train;
        OptimizerKind opt;
        double lr, acc, eps, b1, b2;
    } cases[] = {
        {"", OPT_ADAGRAD, 0.001, 0.1, 1e-7, 0, 0},
        {"train { optimizer sgd }", OPT_SGD, 0.01, 0, 0, 0, 0},
        {"train { optimizer adam() }", OPT_ADAM, 0.001, 0, 1e-7, 0.9, 0.999},
        {"train { optimizer adam(beta2 = 0.99, epsilon = 1e-8) }", OPT_ADAM, 0.001, 0, 1e-8, 0.9,
         0.99},
        {"train { optimizer adagrad(initial_accumulator_value = 0) }", OPT_ADAGRAD, 0.001, 0, 1e-7,
         0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(src, sizeof src, "%s%s\n", base, cases[i].train);
        Pool *pool = pool_new();
        char *out = NULL;
        AstModel *m = check(pool, src, &out);
        if (!m) fprintf(stderr, "%s", out);
        assert_non_null(m);
        const AstTrain *t = &m->train;
        assert_int_equal(t->optimizer, cases[i].opt);
        assert_true(t->value[MTR_KNOB_LR] == cases[i].lr);
        assert_true(t->value[MTR_KNOB_INITIAL_ACCUMULATOR] == cases[i].acc);
        assert_true(t->value[MTR_KNOB_EPSILON] == cases[i].eps);
        assert_true(t->value[MTR_KNOB_BETA1] == cases[i].b1);
        assert_true(t->value[MTR_KNOB_BETA2] == cases[i].b2);
        assert_int_equal(t->value[MTR_KNOB_BATCH], 8192);
        assert_int_equal(t->value[MTR_KNOB_EPOCHS], 3);
        assert_int_equal(t->value[MTR_KNOB_SEED], 42);
        assert_true(t->value[MTR_KNOB_SPLIT] == 0.8);
        assert_false(t->given[MTR_KNOB_BATCH]);
        assert_int_equal(m->tasks->loss, LOSS_MSE);
        assert_true(m->tasks->weight == 1.0);
        assert_false(m->tasks->has_weight);
        assert_int_equal(m->chains->next->next->width, 8); /* concat of 4 and 4 */
        free(out);
        pool_free(pool);
    }
}

static const char HEAD[] = "model m\ninput u : string\ninput i : string\ninput f : float\n"
                           "label r : float\n"
                           "tower user = u -> lookup -> embedding(32)\n"
                           "tower item = i -> lookup -> embedding(32)\n"
                           "tower small = i -> lookup -> embedding(16)\n"
                           "head h = concat(user, item) -> dense(8, relu) -> dense(1)\n"
                           "head wide = concat(user, item) -> dense(3)\n";

static void test_namespaces(void **state)
{
    (void)state;
    char src[2048];
    /* A task may share a head's name (the tutorial's `rating`). */
    snprintf(src, sizeof src, "%stask h = ranking(h, r)\n", HEAD);
    expect_ok(src);
    snprintf(src, sizeof src, "%stask user = retrieval(user, item)\n", HEAD);
    expect_ok(src);
    /* A ranking task over a tower of width 1 is allowed too. */
    snprintf(src, sizeof src, "%stower one = user -> dense(1)\ntask t = ranking(one, r)\n", HEAD);
    expect_ok(src);
}

static void test_semantic_errors(void **state)
{
    (void)state;
    const struct {
        const char *tail, *want;
    } cases[] = {
        {"tower user = u -> lookup -> embedding(8)\n",
         "11:7: error: duplicate name 'user'\ntower user = u -> lookup -> embedding(8)\n      "
         "^~~~\nt.mtr:6:7: note: first defined here\n"},
        {"input h : int\n", "duplicate name 'h'"},
        {"task t = ranking(h, r)\ntask t = ranking(h, r)\n", "12:6: error: duplicate task 't'"},
        {"tower x = usr -> lookup -> embedding(8)\n", "unknown name 'usr'; did you mean 'user'?"},
        {"tower x = zebra -> lookup -> embedding(8)\n", "unknown name 'zebra'\n"},
        {"tower x = later\ntower later = u -> lookup -> embedding(4)\n",
         "'later' is used before it is defined"},
        {"tower x = x\n", "'x' cannot read itself"},
        {"tower x = r -> lookup -> embedding(8)\n",
         "'r' is a label; a tower reads inputs and towers, not labels"},
        {"tower x = concat(user, u)\n", "'u' is an input; concat reads towers"},
        {"head x = u -> lookup -> embedding(2)\n", "'u' is an input; a head reads towers"},
        {"tower x = h -> dense(2)\n", "'h' is a head; a tower reads inputs and towers, not heads"},
        {"tower x = u -> embedding(8)\n", "a tower over input 'u' must begin with"},
        {"tower x = u\n", "a tower over input 'u' must begin with"},
        {"tower x = u -> lookup -> dense(8)\n", "lookup must be followed by embedding(D)"},
        {"tower x = f -> lookup -> embedding(8)\n",
         "lookup needs a string or int input; 'f' is float"},
        {"tower x = user -> lookup\n", "lookup can only come right after an input"},
        {"tower x = user -> embedding(3)\n", "embedding can only come right after an input and"},
        {"label s : string\n", "label 's' is a string; a label must be float or int"},
        {"task t = ranking(h, u)\n", "'u' is an input, not a label"},
        {"task t = ranking(h, user)\n", "'user' is a tower, not a label"},
        {"task t = ranking(r, r)\n", "'r' is a label, not a head"},
        {"task t = ranking(nohead, r)\n", "unknown head 'nohead'"},
        {"task t = ranking(wide, r)\n",
         "a ranking task needs an output of size 1, but 'wide' has size 3 (end it with dense(1))"},
        {"task t = ranking(h, r) metrics top_k(1)\n", "top_k is a retrieval metric"},
        {"head d = dot(user, small) -> dense(1)\n",
         "dot needs sources of one width, but this one has 16 and the first 32"},
        {"head d = dot(user, item, user) -> dense(1)\n", "dot takes 2 sources, found 3"},
        {"head d = sum(user) -> dense(1)\n", "sum takes at least 2 sources, found 1"},
        {"head p = product(h, wide)\n", "product reads logits of width 1, but this one has 3"},
        {"experts e = concat(user, item) -> 2 x dense(4)\nhead p = e -> dense(1)\n",
         "'e' is an experts block; read it through mix(e)"},
        {"experts e = concat(user, item) -> 2 x dense(4)\nhead p = mix(e, user) -> dense(1)\n",
         "mix reads experts blocks; this is not one"},
        {"experts e = concat(user, item) -> 2 x dense(4)\nexperts g = user -> 2 x dense(4)\n"
         "head p = mix(e, g) -> dense(1)\n",
         "mix needs experts over one input, but 'e' and 'g' read different ones"},
        {"experts e = user -> 2 x dropout(0.1)\n",
         "an experts block begins with dense(N): each expert's weights of its own"},
        {"experts e = user -> 2 x (dense(4) -> layer_norm)\n",
         "layer_norm cannot stand in an experts block"},
        {"experts e = user -> 0 x dense(4)\n",
         "the number of experts must be a whole number from 1 to 64"},
        {"experts e = user -> 2 y dense(4)\n",
         "expected 'x' after the number of experts, found 'y'"},
        {"tower p = product(h, h)\n", "'h' is a head; a tower reads inputs and towers, not heads"},
        {"head d = dto(user, item) -> dense(1)\n", "unknown combiner 'dto'; did you mean 'dot'?"},
        {"head d = sum(dot(user, item), u) -> dense(1)\n",
         "'u' is an input; sum reads towers (make a tower over it first)"},
        {"task t = ranking(h, r) metrics rmse, mae, rmse\n", "a metric is listed twice"},
        {"task t = ranking(h, r) weight -1\n", "weight must be a finite number >= 0, found -1"},
        {"task t = retrieval(user, shop)\n", "unknown tower 'shop'"},
        {"task t = retrieval(usr, item)\n", "unknown tower 'usr'; did you mean 'user'?"},
        {"task t = retrieval(user, small)\n",
         "retrieval needs towers of the same output size, but 'user' has 32 and 'small' has 16"},
        {"task t = retrieval(user, h)\n", "'h' is a head; retrieval compares two towers"},
        {"task t = retrieval(user, user)\n", "retrieval needs two different towers"},
        {"task t = retrieval(u, item)\n", "'u' is an input, not a tower"},
        {"task t = retrieval(user, item) loss mse\n", "a retrieval task takes no loss clause"},
        {"task t = retrieval(user, item) metrics rmse\n", "rmse is a ranking metric"},
        {"task t = retrieval(user, item) metrics top_k(0)\n", "k must be positive, found 0"},
        {"task t = retrieval(user, item) metrics top_k(-5)\n", "k must be positive, found -5"},
        {"task t = retrieval(user, item) metrics top_k(5, 5)\n",
         "k values must increase: 5 comes after 5"},
        {"task t = retrieval(user, item) metrics top_k(10, 1)\n", "k values must increase"},
        {"task t = ranking(h, r)\ntrain { optimizer adagard }\n",
         "unknown optimizer 'adagard'; did you mean 'adagrad'?"},
        {"task t = ranking(h, r)\ntrain { optimizer rmsprop }\n",
         "unknown optimizer 'rmsprop' (expected adagrad, sgd or adam)"},
        {"task t = ranking(h, r)\ntrain { optimizer adagrad(rl = 1) }\n",
         "unknown option 'rl' for adagrad; did you mean 'lr'?"},
        {"task t = ranking(h, r)\ntrain { optimizer sgd(momentum = 0.9) }\n",
         "unknown option 'momentum' for sgd (it takes lr)"},
        {"task t = ranking(h, r)\ntrain { optimizer adam(beta1 = 0.9, beta_1 = 0.8) }\n",
         "option 'beta1' given twice"},
        {"task t = ranking(h, r)\ntrain { optimizer adam(beta1 = 1) }\n",
         "beta1 must be in [0, 1), found 1"},
        {"task t = ranking(h, r)\ntrain { optimizer sgd(lr = 0) }\n", "lr must be > 0, found 0"},
        {"task t = ranking(h, r)\ntrain { optimizer sgd(lr = nan) }\n",
         "lr must be a finite number, found 'nan'"},
        {"task t = ranking(h, r)\ntrain { batch 0 }\n", "batch must be in [1, 16777216], found 0"},
        {"task t = ranking(h, r)\ntrain { epochs -1 }\n",
         "epochs must be in [0, 1000000], found -1"},
        {"task t = ranking(h, r)\ntrain { seed -1 }\n",
         "seed must be in [0, 2147483647], found -1"},
        {"task t = ranking(h, r)\ntrain { split 1 }\n", "split must be in (0, 1), found 1"},
        /* model.bin keeps it as a float, which is 0 */
        {"task t = ranking(h, r)\ntrain { split 1e-50 }\n",
         "split must be in (0, 1) (as a 32-bit float it is 0), found 1e-50"},
        {"task t = ranking(h, r)\ntrain { clip_norm 1e39 }\n",
         "clip_norm must be > 0 (as a 32-bit float it is inf), found 1e+39"},
        {"", "model 'm' has no task"},
    };
    char src[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(src, sizeof src, "%s%s", HEAD, cases[i].tail);
        expect_error(src, cases[i].want);
    }
}

static void test_dump_golden(void **state)
{
    (void)state;
    Pool *pool = pool_new();
    char *out = NULL;
    AstModel *m = check(pool, MOVIELENS, &out);
    assert_non_null(m);
    char *dump = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&dump, &n);
    ast_dump(m, f);
    fclose(f);
    char *path = tu_path(tu_source_dir(), "tests/golden/movielens.ast");
    if (getenv("MTR_UPDATE_GOLDEN")) tu_write_file(path, dump, n);
    char *want = tu_read_file(path, NULL);
    assert_non_null(want);
    assert_string_equal(dump, want);
    free(want);
    free(path);
    free(dump);
    free(out);
    pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sema_fields), cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_namespaces),  cmocka_unit_test(test_semantic_errors),
        cmocka_unit_test(test_dump_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
