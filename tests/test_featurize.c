/* Tests of runtime/featurize.c and the pooled-embedding kernels: the words
 * of a string, the values of a list, the stable hash, quantile boundaries and
 * buckets, and pooling over an empty list, a list of one and a repeated id. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "featurize.h"
#include "kernels/kern.h"

#include <string.h>

static void expect_words(size_t n, const char *const *words, size_t want_n, ...)
{
    va_list ap;
    va_start(ap, want_n);
    assert_int_equal(n, want_n);
    for (size_t i = 0; i < want_n; i++) assert_string_equal(words[i], va_arg(ap, const char *));
    va_end(ap);
}

static void test_tokens(void **state)
{
    (void)state;
    char buf[256];
    const char *w[16];
    /* lower case, punctuation dropped (inside a word too), split on any whitespace */
    size_t n = mtr_feature_tokens("Star Wars (1977)", buf, sizeof buf, w, 16);
    expect_words(n, w, 3, "star", "wars", "1977");
    n = mtr_feature_tokens("  Mis\xc3\xa9rables, Les\t(1995) ", buf, sizeof buf, w, 16);
    expect_words(n, w, 3, "mis\xc3\xa9rables", "les", "1995");
    n = mtr_feature_tokens("Don't Look Now!", buf, sizeof buf, w, 16);
    expect_words(n, w, 3, "dont", "look", "now");
    n = mtr_feature_tokens("a-b c_d", buf, sizeof buf, w, 16);
    expect_words(n, w, 2, "ab", "cd");
    assert_int_equal(mtr_feature_tokens("", buf, sizeof buf, w, 16), 0);
    assert_int_equal(mtr_feature_tokens(" ... ", buf, sizeof buf, w, 16), 0);
    /* at most max_words */
    n = mtr_feature_tokens("one two three", buf, sizeof buf, w, 2);
    expect_words(n, w, 2, "one", "two");
    /* a small buffer cuts, never overruns */
    char small[6];
    n = mtr_feature_tokens("abc defgh", small, sizeof small, w, 16);
    assert_true(n >= 1 && n <= 2);
    assert_string_equal(w[0], "abc");
}

static void test_list(void **state)
{
    (void)state;
    char buf[256];
    const char *w[16];
    size_t n = mtr_feature_list("Action|Comedy|Action", buf, sizeof buf, w, 16);
    expect_words(n, w, 3, "Action", "Comedy", "Action"); /* a repeat is kept */
    n = mtr_feature_list("|a||b|", buf, sizeof buf, w, 16);
    expect_words(n, w, 2, "a", "b");
    assert_int_equal(mtr_feature_list("", buf, sizeof buf, w, 16), 0);
    n = mtr_feature_list("Children's", buf, sizeof buf, w, 16);
    expect_words(n, w, 1, "Children's");
}

static void test_hash(void **state)
{
    (void)state;
    /* FNV-1a 64 reference values: the hash is part of a trained model's meaning */
    assert_true(mtr_feature_hash("", 0) == 0xcbf29ce484222325ull);
    assert_true(mtr_feature_hash("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(mtr_feature_hash("foobar", 6) == 0x85944171f73967e8ull);
    assert_true(mtr_feature_hash("ab", 2) != mtr_feature_hash("ba", 2));
}

static void test_quantiles(void **state)
{
    (void)state;
    float x[10] = {9, 1, 8, 2, 7, 3, 6, 4, 5, 0};
    float b[4];
    mtr_feature_quantiles(x, 10, 5, b); /* ranks 2, 4, 6, 8 of 0..9 */
    assert_true(b[0] == 2 && b[1] == 4 && b[2] == 6 && b[3] == 8);
    /* ids: 1 + bounds <= x; below the first 1, at or past the last 5 */
    assert_int_equal(mtr_feature_bucket(b, 4, -3), 1);
    assert_int_equal(mtr_feature_bucket(b, 4, 2), 2);
    assert_int_equal(mtr_feature_bucket(b, 4, 3.5f), 2);
    assert_int_equal(mtr_feature_bucket(b, 4, 8), 5);
    assert_int_equal(mtr_feature_bucket(b, 4, 100), 5);
    /* repeated values give repeated boundaries; no values give zeros */
    float same[4] = {3, 3, 3, 3};
    mtr_feature_quantiles(same, 4, 3, b);
    assert_true(b[0] == 3 && b[1] == 3);
    assert_int_equal(mtr_feature_bucket(b, 2, 3), 3);
    mtr_feature_quantiles(same, 0, 3, b);
    assert_true(b[0] == 0 && b[1] == 0);
}

/* pooled rows over lists of 3 (-1 pads): one id, a repeated id, an empty
 * list, an out-of-range id (9, row 0) */
static void test_pool_kernels(void **state)
{
    (void)state;
    float table[4 * 2] = {1, 2, 10, 20, 100, 200, 1000, 2000};
    int32_t ids[4 * 3] = {1, -1, -1, 2, 2, 3, -1, -1, -1, 9, 1, -1};
    float y[4 * 2];
    for (int mean = 0; mean <= 1; mean++) {
        KernelCall c = {0};
        c.in[0] = table, c.in_shape[0] = (KShape){4, 2};
        c.in[1] = ids, c.in_shape[1] = (KShape){4, 3};
        c.out[0] = y, c.out_shape[0] = (KShape){4, 2};
        c.iattr[0] = mean;
        kernel_embed_pool(&c);
        float want_sum[8] = {10, 20, 1200, 2400, 0, 0, 11, 22};
        float want_mean[8] = {10, 20, 400, 800, 0, 0, 5.5f, 11};
        for (int i = 0; i < 8; i++) assert_true(y[i] == (mean ? want_mean[i] : want_sum[i]));

        float dy[4 * 2] = {1, 1, 3, 3, 5, 5, 2, 4};
        float dt[4 * 2];
        KernelCall g = {0};
        g.in[0] = dy, g.in_shape[0] = (KShape){4, 2};
        g.in[1] = ids, g.in_shape[1] = (KShape){4, 3};
        g.in[2] = table, g.in_shape[2] = (KShape){4, 2};
        g.out[0] = dt, g.out_shape[0] = (KShape){4, 2};
        g.iattr[0] = mean;
        kernel_embed_pool_grad(&g);
        /* row 0 from id 9 (row 3's list); row 1 from rows 0 and 3; row 2 twice from
         * row 1 (a repeated id adds up), row 3 once; the empty list adds nothing */
        float s1 = mean ? 1.0f / 3 : 1, s3 = mean ? 0.5f : 1;
        float want[8] = {2 * s3,     4 * s3,     1 + 2 * s3, 1 + 4 * s3,
                         2 * 3 * s1, 2 * 3 * s1, 3 * s1,     3 * s1};
        for (int i = 0; i < 8; i++) assert_float_equal(dt[i], want[i], 1e-6);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),       cmocka_unit_test(test_list),
        cmocka_unit_test(test_hash),         cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_pool_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
