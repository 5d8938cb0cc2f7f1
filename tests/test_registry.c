/* The language's registries against the documents a user reads: every row of
 * stages.def, activations.def, tasks.def, losses.def, optimizers.def,
 * optimizer_options.def, settings.def and metrics.def is in docs/dsl.md, and
 * every knob of knobs.def in docs/cli.md's knob table, so that a new row
 * without its documentation fails here. Also: each registry's names are
 * distinct, and the knob rows' ranges hold their own defaults. */
#include "testutil.h"

#include "ast.h"
#include "mtr/model.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *read_doc(const char *rel)
{
    char *path = tu_path(tu_source_dir(), rel);
    char *text = tu_read_file(path, NULL);
    if (!text) fail_msg("cannot read %s", path);
    free(path);
    return text;
}

/* `name` (in backquotes, maybe followed by '(') appears in text. */
static int documented(const char *text, const char *name)
{
    char a[128], b[128];
    snprintf(a, sizeof a, "`%s`", name);
    snprintf(b, sizeof b, "`%s(", name);
    return strstr(text, a) || strstr(text, b);
}

static void expect_documented(const char *text, const char *doc, const char *what, const char *name,
                              int *bad)
{
    if (!name[0] || documented(text, name)) return;
    fprintf(stderr, "%s: %s '%s' (a registry row) is not documented\n", doc, what, name);
    (*bad)++;
}

static void test_dsl_documents_every_row(void **state)
{
    (void)state;
    char *dsl = read_doc("docs/dsl.md");
    int bad = 0;
#define X(E, n, args, place, width, ex) expect_documented(dsl, "docs/dsl.md", "stage", #n, &bad);
#include "stages.def"
#undef X
#define X(E, n, lo, hi, width, out) expect_documented(dsl, "docs/dsl.md", "combiner", #n, &bad);
#include "combiners.def"
#undef X
#define X(E, n, op) expect_documented(dsl, "docs/dsl.md", "activation", #n, &bad);
#include "activations.def"
#undef X
#define X(E, n, args, reads, loss) expect_documented(dsl, "docs/dsl.md", "task kind", #n, &bad);
#include "tasks.def"
#undef X
#define X(E, n, task, op, output, metric, pop)                                                     \
    expect_documented(dsl, "docs/dsl.md", "loss", #n, &bad);
#include "losses.def"
#undef X
#define X(E, n) expect_documented(dsl, "docs/dsl.md", "optimizer", #n, &bad);
#include "optimizers.def"
#undef X
#define X(OPT, n, alias, knob, emb, dflt)                                                          \
    expect_documented(dsl, "docs/dsl.md", "optimizer option", #n, &bad);                           \
    expect_documented(dsl, "docs/dsl.md", "optimizer option alias", #alias, &bad);
#include "optimizer_options.def"
#undef X
#define X(E, n, knob, dflt, when) expect_documented(dsl, "docs/dsl.md", "train setting", #n, &bad);
#include "settings.def"
#undef X
#define X(E, n, id, reads, takes_k) expect_documented(dsl, "docs/dsl.md", "metric", #n, &bad);
#include "mtr/metrics.def"
#undef X
    free(dsl);
    if (bad) fail_msg("%d registry row(s) missing from docs/dsl.md", bad);
}

static void test_cli_documents_every_knob(void **state)
{
    (void)state;
    char *cli = read_doc("docs/cli.md");
    int bad = 0;
    for (unsigned k = 0; k < MTR_KNOB_KINDS; k++) {
        const MtrKnobInfo *info = mtr_knob_info(k);
        if (!info) continue;
        char name[128];
        /* a task's or a stage's knob is shown with its owner: `<task>.weight` */
        if (info->scope == MTR_SCOPE_MODEL)
            snprintf(name, sizeof name, "`%s`", info->name);
        else
            snprintf(name, sizeof name, ".%s`", info->name);
        if (!strstr(cli, name)) {
            fprintf(stderr, "docs/cli.md: knob %s (knobs.def row %u) is not in the table\n", name,
                    k);
            bad++;
        }
    }
    free(cli);
    if (bad) fail_msg("%d knob row(s) missing from docs/cli.md", bad);
}

/* The settings' defaults lie in their knobs' ranges, and no two rows of a
 * registry share a name (a lookup would find only the first). */
static void test_rows_consistent(void **state)
{
    (void)state;
    char rule[64];
#define X(E, n, knob, dflt, when)                                                                  \
    assert_int_equal(mtr_knob_check(MTR_KNOB_##knob, dflt, rule, sizeof rule), 0);
#include "settings.def"
#undef X
#define X(OPT, n, alias, knob, emb, dflt)                                                          \
    assert_int_equal(mtr_knob_check(MTR_KNOB_##knob, dflt, rule, sizeof rule), 0);
#include "optimizer_options.def"
#undef X
    static const char *const stages[] = {
#define X(E, n, args, place, width, ex) #n,
#include "stages.def"
#undef X
    };
    for (size_t i = 0; i < sizeof stages / sizeof *stages; i++)
        for (size_t j = 0; j < i; j++) assert_string_not_equal(stages[i], stages[j]);
    static const char *const acts[] = {
#define X(E, n, op) #n,
#include "activations.def"
#undef X
    };
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
        for (size_t j = 0; j < i; j++) assert_string_not_equal(acts[i], acts[j]);
    /* every task kind's default loss is one of its own */
    for (int t = 0; t < TASK_COUNT; t++)
        assert_int_equal(ast_loss_info((LossKind)ast_task_info((TaskKind)t)->default_loss)->task,
                         t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsl_documents_every_row),
        cmocka_unit_test(test_cli_documents_every_knob),
        cmocka_unit_test(test_rows_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
