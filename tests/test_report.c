/* Tests for runtime/report.c: numbers that round-trip, the exact text of a JSON
 * line (and that python's json module reads it back), the results table, and
 * the progress bar on a terminal and off one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mtr/report.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 32);
}

/* Everything written to a memory stream by fn, as a malloc'd string. */
typedef struct {
    char *text;
    size_t len;
    FILE *f;
} Capture;

static void capture_open(Capture *c)
{
    c->text = NULL;
    c->len = 0;
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
}

static char *capture_close(Capture *c)
{
    fclose(c->f);
    return c->text;
}

static void test_numbers_round_trip(void **state)
{
    (void)state;
    char buf[64];
    uint64_t seed = 3;
    for (int i = 0; i < 100000; i++) {
        uint32_t bits = lcg(&seed);
        float f;
        memcpy(&f, &bits, 4);
        if (!isfinite(f)) continue;
        /* The brief's rule: %.9g always reads back to the same float ... */
        snprintf(buf, sizeof buf, "%.9g", (double)f);
        assert_true(strtof(buf, NULL) == f);
        /* ... and the shortest form we print does too. */
        size_t n = report_format_float(buf, sizeof buf, f);
        assert_int_equal(n, strlen(buf));
        assert_true(strtof(buf, NULL) == f);

        uint64_t dbits = (uint64_t)lcg(&seed) << 32 | lcg(&seed);
        double d;
        memcpy(&d, &dbits, 8);
        if (!isfinite(d)) continue;
        report_format_double(buf, sizeof buf, d);
        assert_true(strtod(buf, NULL) == d);
    }
    report_format_double(buf, sizeof buf, 0.1);
    assert_string_equal(buf, "0.1");
    report_format_double(buf, sizeof buf, 1.0 / 3);
    assert_string_equal(buf, "0.3333333333333333");
    report_format_double(buf, sizeof buf, DBL_MAX);
    assert_string_equal(buf, "1.7976931348623157e+308");
    report_format_float(buf, sizeof buf, 69829.16f);
    assert_string_equal(buf, "69829.16");
    report_format_float(buf, sizeof buf, 0.1f);
    assert_string_equal(buf, "0.1");
    report_format_double(buf, sizeof buf, NAN);
    assert_string_equal(buf, "null");
    report_format_float(buf, sizeof buf, -INFINITY);
    assert_string_equal(buf, "null");
    /* snprintf-style: the needed length, a truncated but terminated text. */
    char small[4];
    assert_int_equal(report_format_double(small, sizeof small, 12345.5), 7);
    assert_string_equal(small, "123");
}

static const char *const want_line =
    "{\"phase\":\"train\",\"epoch\":1,\"loss\":69829.16,\"rating.loss\":4.58,"
    "\"retrieval.loss\":69824.5,\"note\":\"a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9\",\"bad\":null}\n"
    "{\"phase\":\"test\",\"rmse\":1.11,\"top_1\":0.001}\n";

static void write_lines(FILE *f)
{
    ReportJson j;
    report_json_begin(&j, f, "train");
    report_json_int(&j, "epoch", 1);
    report_json_f32(&j, "loss", 69829.16f);
    report_json_num(&j, "rating.loss", 4.58);
    report_json_f32(&j, "retrieval.loss", 69824.5f);
    report_json_str(&j, "note", "a\"b\\c\n\t\x01\xc3\xa9");
    report_json_num(&j, "bad", NAN);
    assert_int_equal(report_json_end(&j, NULL, NULL), MTR_OK);

    MetricsEntry e[2] = {{"rmse", 1.11}, {"top_1", 0.001}};
    MetricsReport r = {2, e};
    report_json_begin(&j, f, "test");
    report_json_metrics(&j, &r);
    assert_int_equal(report_json_end(&j, "x.jsonl", NULL), MTR_OK);
}

static void test_json_exact(void **state)
{
    (void)state;
    Capture c;
    capture_open(&c);
    write_lines(c.f);
    char *text = capture_close(&c);
    assert_string_equal(text, want_line);
    free(text);

    char q[64];
    assert_int_equal(report_json_quote(q, sizeof q, "x\"\x1f"), 11);
    assert_string_equal(q, "\"x\\\"\\u001f\"");
}

static void test_json_parses_back(void **state)
{
    (void)state;
    if (tu_run("python3 -c 'import json'", NULL) != 0) {
        skip();
        return;
    }
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    char *path = tu_path(dir, "run.jsonl");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    write_lines(f);
    fclose(f);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys\n"
             "rows=[json.loads(l) for l in open(sys.argv[1], encoding=\"utf-8\")]\n"
             "a,b=rows\n"
             "assert list(a)==[\"phase\",\"epoch\",\"loss\",\"rating.loss\",\"retrieval.loss\","
             "\"note\",\"bad\"], list(a)\n"
             "assert a[\"epoch\"]==1 and a[\"loss\"]==69829.16 and a[\"rating.loss\"]==4.58\n"
             "assert a[\"note\"]==\"a\\\"b\\\\c\\n\\t\\x01\\u00e9\", repr(a[\"note\"])\n"
             "assert a[\"bad\"] is None\n"
             "assert b==dict(phase=\"test\", rmse=1.11, top_1=0.001), b\n"
             "print(\"parsed\")' '%s'",
             path);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    if (rc != 0) print_error("%s\n", out ? out : "");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "parsed"));
    free(out);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static void test_table_exact(void **state)
{
    (void)state;
    ReportRow rows[] = {
        {"rmse", 1.1101, 1.113},
        {"top_100", 0.23456, NAN},
        {"retrieval.top_5", NAN, 0.06},
    };
    const char *want = "metric            value  reference\n"
                       "---------------  ------  ---------\n"
                       "rmse             1.1101     1.1130\n"
                       "top_100          0.2346          -\n"
                       "retrieval.top_5     n/a     0.0600\n";
    char buf[512];
    size_t n = report_table_format(buf, sizeof buf, rows, 3);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));

    /* No reference anywhere: two columns. */
    rows[0].ref = NAN;
    rows[2].ref = NAN;
    report_table_format(buf, sizeof buf, rows, 2);
    assert_string_equal(buf, "metric    value\n"
                             "-------  ------\n"
                             "rmse     1.1101\n"
                             "top_100  0.2346\n");

    Capture c;
    capture_open(&c);
    assert_int_equal(report_table_print(c.f, rows, 2, NULL), MTR_OK);
    char *text = capture_close(&c);
    assert_string_equal(text, buf);
    free(text);
}

static void test_progress_format(void **state)
{
    (void)state;
    char buf[256];
    report_progress_format(buf, sizeof buf, 1, 3, 6, 10, 10, 41234.4, 69812.3, -1);
    assert_string_equal(buf, "epoch 1/3 [=====>    ] 6/10 batches  41234 ex/s  loss 69812.3");
    report_progress_format(buf, sizeof buf, 2, 3, 0, 10, 10, 0, 4.5, -1);
    assert_string_equal(buf, "epoch 2/3 [          ] 0/10 batches  0 ex/s  loss 4.5");
    report_progress_format(buf, sizeof buf, 3, 3, 10, 10, 10, 100, 1.25, -1);
    assert_string_equal(buf, "epoch 3/3 [==========] 10/10 batches  100 ex/s  loss 1.25");
    report_progress_format(buf, sizeof buf, 1, 1, 1, 3, 4, 5, 6, -1);
    assert_string_equal(buf, "epoch 1/1 [>   ] 1/3 batches  5 ex/s  loss 6");
    report_progress_format(buf, sizeof buf, 1, 3, 6, 10, 10, 41234.4, 69812.3, 65.2);
    assert_string_equal(buf,
                        "epoch 1/3 [=====>    ] 6/10 batches  41234 ex/s  loss 69812.3  ETA 1:05");
    report_eta_format(buf, sizeof buf, 12.4);
    assert_string_equal(buf, "ETA 12 s");
    report_eta_format(buf, sizeof buf, 7384);
    assert_string_equal(buf, "ETA 2:03:04");
    assert_int_equal(report_eta_format(buf, sizeof buf, -1), 0);
    report_eval_format(buf, sizeof buf, 12000, 20000, 10, 3);
    assert_string_equal(buf, "evaluating [=====>    ] 12000/20000 rows  ETA 3 s");
    size_t n = report_epoch_format(buf, sizeof buf, 1, 3, 10, 41234.4, 69812.3, 1.94);
    assert_string_equal(buf, "epoch 1/3  10 batches  41234 ex/s  loss 69812.3  1.9 s");
    assert_int_equal(n, strlen(buf));
    char small[8];
    assert_int_equal(report_epoch_format(small, sizeof small, 1, 3, 10, 41234.4, 69812.3, 1.94), n);
    assert_string_equal(small, "epoch 1");
}

static void test_progress_streams(void **state)
{
    (void)state;
    /* Not a terminal: nothing until the epoch ends, then one line. */
    Capture c;
    capture_open(&c);
    ReportProgress p;
    report_progress_init(&p, c.f, 2);
    assert_int_equal(p.tty, 0);
    report_progress_update(&p, 1, 1, 2, 10, 3, 5);
    report_progress_epoch_end(&p, 1, 2, 10, 3, 0.5);
    char *text = capture_close(&c);
    assert_string_equal(text, "epoch 1/2  2 batches  10 ex/s  loss 3  0.5 s\n");
    free(text);

    /* A terminal: redrawn with \r, a shorter line blanks what the longer left. */
    capture_open(&c);
    report_progress_init(&p, c.f, 2);
    p.tty = 1;
    p.width = 4;
    report_progress_update(&p, 1, 1, 2, 1000, 12.5, 3);
    report_progress_update(&p, 1, 2, 2, 10, 3, -1);
    report_progress_epoch_end(&p, 1, 2, 10, 3, 0.5);
    text = capture_close(&c);
    assert_string_equal(text, "\repoch 1/2 [=>  ] 1/2 batches  1000 ex/s  loss 12.5  ETA 3 s"
                              "\repoch 1/2 [====] 2/2 batches  10 ex/s  loss 3"
                              "              "
                              "\repoch 1/2  2 batches  10 ex/s  loss 3  0.5 s"
                              " \n");
    free(text);

    /* An evaluation pass: silent for its first second, then a bar, blanked at the end. */
    capture_open(&c);
    report_progress_init(&p, c.f, 0);
    p.tty = 1;
    p.width = 4;
    report_eval_update(&p, 1, 4, 0.5);
    report_eval_update(&p, 2, 4, 1.5);
    report_progress_clear(&p);
    report_progress_clear(&p);
    text = capture_close(&c);
    assert_string_equal(text, "\revaluating [=>  ] 2/4 rows  ETA 2 s"
                              "\r                                   \r");
    free(text);
    assert_true(report_clock() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_round_trip), cmocka_unit_test(test_json_exact),
        cmocka_unit_test(test_json_parses_back),   cmocka_unit_test(test_table_exact),
        cmocka_unit_test(test_progress_format),    cmocka_unit_test(test_progress_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
