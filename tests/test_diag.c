/* Tests for diagnostics (compiler/diag.c), the front end's file handling
 * (frontend.c) and the mtrc command line (main.c): message layout with
 * caret and notes, the error limit, the golden error files in tests/errors
 * (exactly what a user sees), unreadable inputs, exit codes, and that mtrc
 * never leaves an output file behind on error. Set MTR_UPDATE_GOLDEN=1 to
 * rewrite the .expected files on purpose. */
#include "diag.h"
#include "frontend.h"
#include "testutil.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_layout(void **state)
{
    (void)state;
    const char *src = "model m\n\tinput  x : strng\nlast";
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    Diag *d = diag_new(f);
    diag_set_source(d, "a.mtr", src, strlen(src));
    diag_error(d, (Loc){2, 12, 17}, "unknown type '%s'", "strng");
    diag_note(d, (Loc){1, 7, 8}, "model here");
    diag_error(d, (Loc){3, 1, 1000}, "long span");
    diag_error(d, (Loc){0, 0, 0}, "no place");
    diag_error(d, (Loc){9, 1, 2}, "past the end");
    fclose(f);
    assert_string_equal(out, "a.mtr:2:12: error: unknown type 'strng'\n"
                             "\tinput  x : strng\n"
                             "\t          ^~~~~\n"
                             "a.mtr:1:7: note: model here\n"
                             "model m\n"
                             "      ^\n"
                             "a.mtr:3:1: error: long span\n"
                             "last\n"
                             "^~~~\n"
                             "a.mtr: error: no place\n"
                             "a.mtr:9:1: error: past the end\n");
    assert_int_equal(diag_errors(d), 4);
    assert_false(diag_stopped(d));
    diag_free(d);
    free(out);
}

static void test_limit(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    Diag *d = diag_new(f);
    diag_set_source(d, "a.mtr", "x\n", 2);
    for (int i = 0; i < 30; i++) {
        diag_error(d, (Loc){1, 1, 2}, "e%d", i);
        diag_note(d, (Loc){1, 1, 2}, "n%d", i);
    }
    fclose(f);
    assert_int_equal(diag_errors(d), 30);
    assert_true(diag_stopped(d));
    assert_non_null(strstr(out, "error: e19\n"));
    assert_non_null(strstr(out, "note: n19\n"));
    assert_null(strstr(out, "e20"));
    assert_null(strstr(out, "n20"));
    assert_non_null(strstr(out, "a.mtr: error: too many errors (20), stopping here\n"));
    diag_free(d);
    free(out);
}

static void test_distance(void **state)
{
    (void)state;
    assert_int_equal(mtr_name_distance("relu", "relu"), 0);
    assert_int_equal(mtr_name_distance("rleu", "relu"), 1);
    assert_int_equal(mtr_name_distance("lr", "rl"), 1);
    assert_int_equal(mtr_name_distance("", "abc"), 3);
    assert_int_equal(mtr_name_distance("kitten", "sitting"), 3);
    assert_true(mtr_name_is_close("usr", "user"));
    assert_true(mtr_name_is_close("embeding", "embedding"));
    assert_false(mtr_name_is_close("x", "y"));
    assert_false(mtr_name_is_close("zebra", "user"));
    assert_false(mtr_name_is_close("user", "user"));
}

/* Loads path through frontend_load; returns what was printed (malloc'd). */
static char *load_output(const char *path, int *ok)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    Diag *d = diag_new(f);
    Pool *pool = pool_new();
    *ok = frontend_load(path, pool, d) != NULL;
    fclose(f);
    pool_free(pool);
    diag_free(d);
    return out;
}

static void test_unreadable_inputs(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    int ok;
    char *out;
    char *missing = tu_path(dir, "missing.mtr");
    out = load_output(missing, &ok);
    assert_false(ok);
    assert_non_null(strstr(out, "missing.mtr: error: cannot open the file: No such file"));
    free(out);

    out = load_output(dir, &ok);
    assert_false(ok);
    assert_non_null(strstr(out, ": error: this is a directory, not a .mtr file\n"));
    free(out);

    char *empty = tu_path(dir, "empty.mtr");
    assert_int_equal(tu_write_file(empty, "", 0), 0);
    out = load_output(empty, &ok);
    assert_false(ok);
    assert_non_null(strstr(out, "empty.mtr: error: the file is empty"));
    free(out);

    char *nul = tu_path(dir, "nul.mtr");
    assert_int_equal(tu_write_file(nul, "model m\ninput u\0 : string\n", 26), 0);
    out = load_output(nul, &ok);
    assert_false(ok);
    assert_non_null(strstr(out, "nul.mtr:2:8: error: the file contains a NUL byte"));
    free(out);

    char *longf = tu_path(dir, "long.mtr");
    size_t len = 8 + 5000 + 1;
    char *text = malloc(len);
    memcpy(text, "model m\n", 8);
    memset(text + 8, '#', 5000);
    text[len - 1] = '\n';
    assert_int_equal(tu_write_file(longf, text, len), 0);
    out = load_output(longf, &ok);
    assert_false(ok);
    assert_non_null(
        strstr(out, "long.mtr:2:4097: error: line 2 is 5000 bytes long (at most 4096)\n"));
    assert_null(strstr(out, "####")); /* such a line is not quoted */
    free(out);
    free(text);

    /* A long line that fits is fine, and so is UTF-8 in comments. */
    char *fine = tu_path(dir, "fine.mtr");
    const char *model = "model m # \xc3\xa9t\xc3\xa9\ninput u : string\ninput i : string\n"
                        "tower a = u -> lookup -> embedding(4)\n"
                        "tower b = i -> lookup -> embedding(4)\n"
                        "task t = retrieval(a, b)\n";
    assert_int_equal(tu_write_file(fine, model, strlen(model)), 0);
    out = load_output(fine, &ok);
    assert_true(ok);
    assert_string_equal(out, "");
    free(out);

    free(missing);
    free(empty);
    free(nul);
    free(longf);
    free(fine);
    tu_rmtree(dir);
    free(dir);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Every tests/errors/NAME.mtr, checked by the real mtrc from the source
 * folder, prints exactly NAME.expected and exits 1. */
static void test_golden_errors(void **state)
{
    (void)state;
    char *errdir = tu_path(tu_source_dir(), "tests/errors");
    DIR *dir = opendir(errdir);
    assert_non_null(dir);
    int count = 0, failed = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!ends_with(e->d_name, ".mtr")) continue;
        count++;
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s/mtrc' --check 'tests/errors/%s'", tu_source_dir(),
                 tu_bin_dir(), e->d_name);
        char *out = NULL;
        int rc = tu_run(cmd, &out);
        char expected_name[512];
        snprintf(expected_name, sizeof expected_name, "%.*s.expected", (int)(strlen(e->d_name) - 4),
                 e->d_name);
        char *path = tu_path(errdir, expected_name);
        if (getenv("MTR_UPDATE_GOLDEN")) tu_write_file(path, out, strlen(out));
        char *want = tu_read_file(path, NULL);
        if (rc != 1 || !want || strcmp(want, out) != 0) {
            fprintf(stderr, "%s: exit %d\n--- expected\n%s--- got\n%s", e->d_name, rc,
                    want ? want : "(missing)\n", out);
            failed++;
        }
        free(want);
        free(path);
        free(out);
    }
    closedir(dir);
    free(errdir);
    assert_true(count >= 30);
    assert_int_equal(failed, 0);
}

/* Runs mtrc with args; returns its exit status and output. */
static int mtrc(const char *args, char **out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s/mtrc' %s", tu_bin_dir(), args);
    return tu_run(cmd, out);
}

static void test_cli(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    char *bad = tu_path(dir, "bad.mtr");
    char *outbin = tu_path(dir, "out.bin");
    const char *text = "model m\ninput u : strng\n";
    assert_int_equal(tu_write_file(bad, text, strlen(text)), 0);
    char args[4096], *out = NULL;
    char *good = tu_path(tu_source_dir(), "models/movielens.mtr");

    /* A model with errors: exit 1, the message, and no output file. */
    snprintf(args, sizeof args, "'%s' -o '%s'", bad, outbin);
    assert_int_equal(mtrc(args, &out), 1);
    assert_non_null(strstr(out, "bad.mtr:2:11: error: unknown type 'strng'"));
    assert_non_null(strstr(out, "\n1 error\n"));
    assert_int_equal(access(outbin, F_OK), -1);
    free(out);
    /* An existing output file is left untouched. */
    assert_int_equal(tu_write_file(outbin, "keep", 4), 0);
    assert_int_equal(mtrc(args, &out), 1);
    free(out);
    char *kept = tu_read_file(outbin, NULL);
    assert_string_equal(kept, "keep");
    free(kept);

    snprintf(args, sizeof args, "--check '%s'", good);
    assert_int_equal(mtrc(args, &out), 0);
    assert_string_equal(out, "");
    free(out);

    snprintf(args, sizeof args, "--dump ast '%s'", good);
    assert_int_equal(mtrc(args, &out), 0);
    char *golden_path = tu_path(tu_source_dir(), "tests/golden/movielens.ast");
    char *golden = tu_read_file(golden_path, NULL);
    assert_non_null(golden);
    assert_string_equal(out, golden);
    free(golden);
    free(golden_path);
    free(out);

    assert_int_equal(mtrc("--version", &out), 0);
    assert_non_null(strstr(out, "mtrc " MTR_VERSION "\n"));
    free(out);
    assert_int_equal(mtrc("--help", &out), 0);
    assert_non_null(strstr(out, "usage: mtrc"));
    free(out);

    /* Usage mistakes: exit 2 with a hint. */
    const char *usage_cases[][2] = {
        {"", "no model file given"},
        {"--frobnicate x.mtr", "unknown option '--frobnicate'"},
        {"--dump", "--dump needs what to dump"},
        {"--dump tree x.mtr", "cannot dump 'tree'"},
        {"x.mtr", "nothing to do"},
        {"x.mtr y.mtr --check", "only one model file"},
        {"--check x.mtr -o y.bin", "-o is only for compiling"},
        {"--check --dot x.mtr", "cannot be combined"},
        {"--dump plan x.mtr --batch 0", "--batch needs a whole number"},
        {"--check x.mtr --batch 5", "--batch is only for"},
        {"x.mtr -o", "-o needs an output file"},
    };
    for (size_t i = 0; i < sizeof usage_cases / sizeof usage_cases[0]; i++) {
        int rc = mtrc(usage_cases[i][0], &out);
        if (rc != 2 || !strstr(out, usage_cases[i][1]) || !strstr(out, "mtrc --help")) {
            fprintf(stderr, "mtrc %s: exit %d\n%s", usage_cases[i][0], rc, out);
            fail();
        }
        free(out);
    }
    /* A missing file and a directory are model errors (exit 1). */
    snprintf(args, sizeof args, "--check '%s/nope.mtr'", dir);
    assert_int_equal(mtrc(args, &out), 1);
    free(out);
    snprintf(args, sizeof args, "--check '%s'", dir);
    assert_int_equal(mtrc(args, &out), 1);
    assert_non_null(strstr(out, "this is a directory"));
    free(out);

    free(good);
    free(bad);
    free(outbin);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_distance),      cmocka_unit_test(test_unreadable_inputs),
        cmocka_unit_test(test_golden_errors), cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
