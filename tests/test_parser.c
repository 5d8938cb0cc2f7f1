/* Tests for the lexer and parser (compiler/lexer.l, parser.y, ast.c): the
 * shipped models parse into the expected tree, every kind of syntax mistake
 * gets a clear error, deep nesting and error floods stay bounded, and
 * thousands of random mutations of the tutorial's model never crash, leak
 * or pass silently. */
#include "frontend.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Runs the front end on len bytes of src; returns the model (or NULL) and
 * stores everything printed in *out (malloc'd). */
static AstModel *parse_bytes(Pool *pool, const char *src, size_t len, char **out, int *errors)
{
    size_t n = 0;
    FILE *f = open_memstream(out, &n);
    assert_non_null(f);
    Diag *d = diag_new(f);
    assert_non_null(d);
    AstModel *m = frontend_parse("t.mtr", src, len, pool, d);
    if (errors) *errors = diag_errors(d);
    diag_free(d);
    fclose(f);
    return m;
}

static AstModel *parse(Pool *pool, const char *src, char **out)
{
    return parse_bytes(pool, src, strlen(src), out, NULL);
}

/* Asserts that src is rejected with a message containing want. */
static void expect_error(const char *src, const char *want)
{
    Pool *pool = pool_new();
    char *out = NULL;
    AstModel *m = parse(pool, src, &out);
    if (m || !strstr(out, want)) {
        fprintf(stderr, "source:\n%s\nwanted: %s\ngot:\n%s\n", src, want, out);
        fail();
    }
    free(out);
    pool_free(pool);
}

static char *read_model(const char *name, size_t *len)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    char *path = tu_path(tu_source_dir(), rel);
    char *text = tu_read_file(path, len);
    free(path);
    assert_non_null(text);
    return text;
}

static void test_models_load(void **state)
{
    (void)state;
    const char *names[] = {"movielens.mtr", "rating_only.mtr", "retrieval_only.mtr",
                           "deep_two_tower.mtr"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", names[i]);
        char *path = tu_path(tu_source_dir(), rel);
        Pool *pool = pool_new();
        char *out = NULL;
        size_t n;
        FILE *f = open_memstream(&out, &n);
        Diag *d = diag_new(f);
        AstModel *m = frontend_load(path, pool, d);
        fclose(f);
        if (!m) fprintf(stderr, "%s", out);
        assert_non_null(m);
        assert_int_equal(diag_errors(d), 0);
        assert_string_equal(out, "");
        diag_free(d);
        free(out);
        free(path);
        pool_free(pool);
    }
}

static void test_movielens_tree(void **state)
{
    (void)state;
    size_t len;
    char *text = read_model("movielens.mtr", &len);
    Pool *pool = pool_new();
    char *out = NULL;
    AstModel *m = parse_bytes(pool, text, len, &out, NULL);
    assert_non_null(m);
    assert_string_equal(m->name, "movielens");

    AstColumn *c = m->columns;
    assert_string_equal(c->name, "user_id");
    assert_int_equal(c->type, TY_STRING);
    assert_false(c->is_label);
    c = c->next;
    assert_string_equal(c->name, "movie_title");
    c = c->next;
    assert_string_equal(c->name, "user_rating");
    assert_int_equal(c->type, TY_FLOAT);
    assert_true(c->is_label);
    assert_int_equal(c->loc.line, 9);
    assert_int_equal(c->loc.col, 7);
    assert_int_equal(c->loc.end_col, 18);
    assert_null(c->next);

    AstChain *user = m->chains, *movie = user->next, *head = movie->next;
    assert_string_equal(user->name, "user");
    assert_int_equal(user->kind, CHAIN_TOWER);
    assert_false(user->is_concat);
    assert_string_equal(user->sources->name, "user_id");
    assert_int_equal(user->stages->kind, STAGE_LOOKUP);
    assert_int_equal(user->stages->next->kind, STAGE_EMBEDDING);
    assert_int_equal(user->stages->next->units, 32);
    assert_null(user->stages->next->next);
    assert_string_equal(movie->name, "movie");
    assert_string_equal(head->name, "rating");
    assert_int_equal(head->kind, CHAIN_HEAD);
    assert_true(head->is_concat);
    assert_string_equal(head->sources->name, "user");
    assert_string_equal(head->sources->next->name, "movie");
    AstStage *s = head->stages;
    assert_int_equal(s->units, 256);
    assert_int_equal(s->act, ACT_RELU);
    assert_int_equal(s->next->units, 128);
    assert_int_equal(s->next->next->units, 1);
    assert_int_equal(s->next->next->act, ACT_LINEAR);
    assert_null(head->next);

    AstTask *rating = m->tasks, *retrieval = rating->next;
    assert_string_equal(rating->name, "rating");
    assert_int_equal(rating->kind, TASK_RANKING);
    assert_int_equal(rating->loss, LOSS_MSE);
    assert_int_equal(rating->metrics->kind, MTR_METRIC_RMSE);
    assert_true(rating->has_weight);
    assert_true(rating->weight == 1.0);
    assert_string_equal(retrieval->name, "retrieval");
    assert_int_equal(retrieval->kind, TASK_RETRIEVAL);
    assert_int_equal(retrieval->metrics->kind, MTR_METRIC_TOP_K);
    assert_int_equal(retrieval->metrics->n_ks, 5);
    assert_int_equal(retrieval->metrics->ks[4], 100);

    assert_true(m->train.present);
    assert_string_equal(m->train.optimizer_name, "adagrad");
    assert_string_equal(m->train.options->name, "lr");
    assert_true(m->train.options->value == 0.1);
    assert_int_equal(m->train.value[MTR_KNOB_BATCH], 8192);
    assert_int_equal(m->train.value[MTR_KNOB_EPOCHS], 3);
    assert_int_equal(m->train.value[MTR_KNOB_SEED], 42);
    assert_true(m->train.value[MTR_KNOB_SPLIT] == 0.8);
    free(out);
    free(text);
    pool_free(pool);
}

static void test_lexical_forms(void **state)
{
    (void)state;
    /* Block comments over lines, # comments with UTF-8, a quoted model name,
     * CRLF line ends, tabs, numbers in every form. */
    const char *src = "/* a\n * b */ model \"movie \\\"lens\\\"\" # caf\xc3\xa9\r\n"
                      "input\tu : string\r\n"
                      "input i : int\n"
                      "label r : float\n"
                      "tower a = u -> lookup -> embedding(8)\n"
                      "tower b = i -> lookup -> embedding(8) -> dense(8, tanh)\n"
                      "head h = concat(a, b) -> dense(4, sigmoid) -> dense(1, linear)\n"
                      "task t = ranking(h, r) loss bce metrics auc, mae weight .5e1\n"
                      "task q = retrieval(a, b) metrics top_k\n"
                      "train { optimizer adam(learning_rate = 1e-3, beta_1 = 0.8) split 0.75 }\n";
    Pool *pool = pool_new();
    char *out = NULL;
    AstModel *m = parse(pool, src, &out);
    if (!m) fprintf(stderr, "%s", out);
    assert_non_null(m);
    assert_string_equal(m->name, "movie \"lens\"");
    assert_int_equal(m->columns->loc.line, 3);
    assert_int_equal(m->columns->loc.col, 7);
    assert_true(m->tasks->weight == 5.0);
    assert_int_equal(m->tasks->loss, LOSS_BCE);
    assert_int_equal(m->tasks->next->metrics->n_ks, 5); /* top_k alone: 1 5 10 50 100 */
    assert_true(m->train.value[MTR_KNOB_BETA1] == 0.8);
    assert_true(m->train.value[MTR_KNOB_LR] == 1e-3);
    free(out);
    pool_free(pool);
}

static const char HEAD[] = "model m\ninput u : string\ninput i : string\nlabel r : float\n";

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("input u : string\n", "t.mtr:1:1: error: expected 'model', found 'input'");
    expect_error("model m\ninput u string\n", "2:9: error: expected ':', found 'string'");
    expect_error("model m\ninput u : string\ntower t = u -> -> lookup\n",
                 "3:16: error: expected a name, found '->'");
    expect_error("model m\ntask x = ranking(a b)\n", "expected ')' or ',', found 'b'");
    expect_error("model m\ntask x = ranking(a, b", "found end of file");
    expect_error("model m\ninput u : string\ntower t = u -> lookup -> embedding(32)\ntsk\n",
                 "found 'tsk'; did you mean 'task'?");
    expect_error("model m\ntask t = ranking(h, r) los mse\n", "did you mean 'loss'?");
    expect_error("model m /* never closed\n\n", "1:9: error: unterminated comment");
    expect_error("model \"m\n", "1:7: error: unterminated string");
    expect_error("model m\n$\n", "2:1: error: unexpected character '$'");
    expect_error("model m\n\x01\n", "unexpected control character 0x01");
    expect_error("model m\n\xc3\xa9\n", "unexpected byte 0xC3");
    expect_error("model m\ninput 12abc : string\n", "bad number '12abc'");
    expect_error("model m\ninput u : strin\n", "unknown type 'strin'; did you mean 'string'?");
    expect_error("model m\ninput u : text\n",
                 "unknown type 'text' (expected string, int or float)");
}

static void test_bad_numbers(void **state)
{
    (void)state;
    char src[512];
    const struct {
        const char *stage, *want;
    } cases[] = {
        {"embedding(0)", "embedding size must be positive, found '0'"},
        {"embedding(-4)", "embedding size must be positive, found '-4'"},
        {"embedding(2.5)", "embedding size must be a positive whole number, found '2.5'"},
        {"embedding(nan)", "embedding size must be a positive whole number, found 'nan'"},
        {"embedding(99999999999999999999)", "number '99999999999999999999' is too large"},
        {"embedding(1e999)", "number '1e999' is out of range"},
        {"embedding(2000000)", "embedding size 2000000 is too large"},
        {"embedding", "embedding takes one argument"},
        {"embedding(1, 2)", "embedding takes one argument"},
        {"embedding(8) -> dense(0)", "dense size must be positive"},
        {"embedding(8) -> dense(4, rleu)", "unknown activation 'rleu'; did you mean 'relu'?"},
        {"embedding(8) -> dense(4, 5)", "expected an activation"},
        {"embedding(8) -> dense()", "expected '-', a name or a number, found ')'"},
        {"embedding(8) -> dense(1, relu, 3)", "dense takes a size and an optional activation"},
        {"lookup()", "expected '-', a name or a number, found ')'"},
        {"lookup(3)", "lookup takes no arguments"},
        {"embeding(3)", "unknown stage 'embeding'; did you mean 'embedding'?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(src, sizeof src, "%stower t = u -> lookup -> %s\n", HEAD, cases[i].stage);
        if (strncmp(cases[i].stage, "lookup", 6) == 0 ||
            strncmp(cases[i].stage, "embeding", 8) == 0)
            snprintf(src, sizeof src, "%stower t = u -> %s\n", HEAD, cases[i].stage);
        expect_error(src, cases[i].want);
    }
    snprintf(src, sizeof src, "%stask t = ranking(h, r) weight nan\n", HEAD);
    expect_error(src, "weight must be a finite number, found 'nan'");
    snprintf(src, sizeof src, "%stask t = ranking(h, r) weight 1e400\n", HEAD);
    expect_error(src, "number '1e400' is out of range");
    snprintf(src, sizeof src, "%stask t = retrieval(a, b) metrics top_k(1.5)\n", HEAD);
    expect_error(src, "k must be a whole number, found '1.5'");
    snprintf(src, sizeof src, "%stask t = retrieval(a, b) metrics top_k(1,2,3,4,5,6,7,8,9)\n",
             HEAD);
    expect_error(src, "top_k takes at most 8 values of k");
    snprintf(src, sizeof src, "%strain { batch 1.5 }\n", HEAD);
    expect_error(src, "batch must be a whole number, found '1.5'");
    snprintf(src, sizeof src, "%strain { batch 1 batch 2 }\n", HEAD);
    expect_error(src, "'batch' given twice");
    snprintf(src, sizeof src, "%strain { bach 1 }\n", HEAD);
    expect_error(src, "unknown train setting 'bach'; did you mean 'batch'?");
    snprintf(src, sizeof src, "%strain { } train { }\n", HEAD);
    expect_error(src, "a second train block");
    snprintf(src, sizeof src, "%stask t = ranking(h, r) loss mse loss bce\n", HEAD);
    expect_error(src, "'loss' given twice for task 't'");
    snprintf(src, sizeof src, "%stask t = ranking(h, r) loss hinge\n", HEAD);
    expect_error(src, "unknown loss 'hinge' (expected mse or bce)");
    snprintf(src, sizeof src, "%stask t = rankin(h, r)\n", HEAD);
    expect_error(src, "unknown task kind 'rankin'; did you mean 'ranking'?");
    snprintf(src, sizeof src, "%stask t = ranking(h)\n", HEAD);
    expect_error(src, "ranking takes 2 arguments (a head and a label), found 1");
    snprintf(src, sizeof src, "%stask t = ranking(h, r) metrics rmse(3)\n", HEAD);
    expect_error(src, "rmse takes no arguments");
    snprintf(src, sizeof src, "%stask t = ranking(h, r) metrics rsme\n", HEAD);
    expect_error(src, "unknown metric 'rsme'; did you mean 'rmse'?");
}

/* Builds a string of n copies of unit between prefix and suffix. */
static char *repeat(const char *prefix, const char *unit, int n, const char *suffix)
{
    size_t len = strlen(prefix) + strlen(unit) * (size_t)n + strlen(suffix) + 1;
    char *s = malloc(len);
    assert_non_null(s);
    strcpy(s, prefix);
    char *p = s + strlen(prefix);
    for (int i = 0; i < n; i++) p = stpcpy(p, unit);
    strcpy(p, suffix);
    return s;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char *srcs[] = {
        repeat("model m\ninput u : string\ntower t = ", "(\n", 10000, "u\n"),
        repeat("model m\ninput u : string\ntower t = ", "concat(\n", 10000, "u\n"),
        repeat("model m\ntask t = ranking(", "ranking(\n", 10000, "\n"),
        repeat("model m\ntrain {", "{\n", 10000, "\n"),
        repeat("model m\ntower t = u -> lookup", " -> dense(1)\n", 20000, "\n"),
        repeat("model m\n", "/* /*\n", 10000, "\n"),
        repeat("model m\n", "- ", 10000, "\n"),
    };
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        Pool *pool = pool_new();
        char *out = NULL;
        int errors = 0;
        AstModel *m = parse_bytes(pool, srcs[i], strlen(srcs[i]), &out, &errors);
        assert_null(m);
        assert_true(errors > 0);
        assert_non_null(strstr(out, "error:"));
        free(out);
        free(srcs[i]);
        pool_free(pool);
    }
}

static void test_error_recovery_and_limit(void **state)
{
    (void)state;
    Pool *pool = pool_new();
    char *out = NULL;
    int errors = 0;
    /* Two independent mistakes: both are reported. */
    AstModel *m =
        parse_bytes(pool, "model m\ninput a b\ninput c : string\ninput d e\n",
                    strlen("model m\ninput a b\ninput c : string\ninput d e\n"), &out, &errors);
    assert_null(m);
    assert_int_equal(errors, 2);
    assert_non_null(strstr(out, "2:9: error"));
    assert_non_null(strstr(out, "4:9: error"));
    free(out);
    pool_free(pool);

    /* Fifty mistakes: twenty are shown, then one line says the rest are not. */
    char *src = repeat("model m\n", "input $\n", 50, "");
    pool = pool_new();
    m = parse_bytes(pool, src, strlen(src), &out, &errors);
    assert_null(m);
    int shown = 0;
    for (const char *p = out; (p = strstr(p, ": error: unexpected")); p++) shown++;
    assert_int_equal(shown, DIAG_MAX_ERRORS);
    assert_non_null(strstr(out, "t.mtr: error: too many errors (20), stopping here\n"));
    free(out);
    free(src);
    pool_free(pool);
}

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void test_fuzz_mutations(void **state)
{
    (void)state;
    size_t base_len;
    char *base = read_model("movielens.mtr", &base_len);
    /* Pieces of the language, so mutations reach sema and not just the lexer. */
    static const char *const pieces[] = {
        "->",
        "(",
        ")",
        ",",
        "=",
        ":",
        "{",
        "}",
        "-",
        "concat(",
        "dense(",
        "embedding(",
        "lookup",
        "user",
        "movie",
        "rating",
        "user_id",
        "user_rating",
        "0",
        "-1",
        "1e999",
        "nan",
        "1.5",
        "99999999999999999999",
        "top_k(",
        "tower x = ",
        "head h = ",
        "task t = ",
        "\"",
        "/*",
        "*/",
        "#",
        "\n",
        "\t",
        "\xff",
        "retrieval(",
        "ranking(",
        "weight ",
        "loss ",
        "metrics ",
        "train {",
        "optimizer sgd",
        "adam(",
        "lr = ",
        "label z : float\n",
        "input w : int\n",
    };
    const int n_pieces = (int)(sizeof pieces / sizeof pieces[0]);
    int accepted = 0, rejected = 0;
    char *buf = malloc(base_len * 2 + 4096);
    assert_non_null(buf);
    for (uint64_t iter = 0; iter < 4000; iter++) {
        uint64_t rng = 0x9E3779B97F4A7C15ull ^ (iter * 0x100000001B3ull + 1);
        size_t len = base_len;
        memcpy(buf, base, len);
        int mutations = 1 + (int)(next_random(&rng) % 4);
        for (int k = 0; k < mutations; k++) {
            size_t at = len ? next_random(&rng) % (len + 1) : 0;
            switch (next_random(&rng) % 6) {
            case 0: /* flip bits of one byte */
                if (at < len) buf[at] ^= (char)(1u << (next_random(&rng) % 8));
                break;
            case 1: { /* delete a run */
                size_t n = 1 + next_random(&rng) % 16;
                if (at + n > len) n = len - at;
                memmove(buf + at, buf + at + n, len - at - n);
                len -= n;
                break;
            }
            case 2: { /* insert a piece */
                const char *p = pieces[next_random(&rng) % (uint64_t)n_pieces];
                size_t n = strlen(p);
                if (len + n > base_len * 2 + 4000) break;
                memmove(buf + at + n, buf + at, len - at);
                memcpy(buf + at, p, n);
                len += n;
                break;
            }
            case 3: /* truncate */
                len = at;
                break;
            case 4: /* random byte */
                if (at < len) buf[at] = (char)(next_random(&rng) & 0xff);
                break;
            default: { /* duplicate a run (duplicate names, repeated clauses) */
                size_t n = 1 + next_random(&rng) % 80;
                if (at + n > len) n = len - at;
                if (len + n > base_len * 2 + 4000) break;
                memmove(buf + at + n, buf + at, len - at);
                len += n;
                break;
            }
            }
        }
        Pool *pool = pool_new();
        char *out = NULL;
        int errors = 0;
        AstModel *m = parse_bytes(pool, buf, len, &out, &errors);
        if (m) {
            accepted++;
            assert_int_equal(errors, 0);
            assert_string_equal(out, "");
        } else {
            rejected++;
            assert_true(errors > 0);
            assert_non_null(strstr(out, "error: "));
        }
        free(out);
        pool_free(pool);
    }
    assert_true(rejected > 0);
    assert_true(accepted > 0);
    free(buf);
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_load),
        cmocka_unit_test(test_movielens_tree),
        cmocka_unit_test(test_lexical_forms),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_error_recovery_and_limit),
        cmocka_unit_test(test_fuzz_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
