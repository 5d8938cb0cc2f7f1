/* The compiler's back half (lower, autodiff, schedule, emit) on every model in
 * models/: each compiles; it has the programs its tasks call for; its knobs
 * carry the file's values; train_step computes every gradient before the first
 * update and never reads an activation before writing it; and the graph dump
 * of models/movielens.mtr matches tests/golden/movielens.graph exactly.
 *
 * Refreshing the golden file, on purpose only, after reading the new dump:
 *   build/bin/mtrc --dump graph models/movielens.mtr > tests/golden/movielens.graph */
#include "diag.h"
#include "emit.h"
#include "frontend.h"
#include "pool.h"
#include "testutil.h"

#include "mtr/model.h"
#include "mtr/ops.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The .mtr files of models/, sorted; returns their count (names malloc'd). */
static int list_models(char ***out)
{
    char *dir = tu_path(tu_source_dir(), "models");
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".mtr") != 0) continue;
        names = realloc(names, (size_t)(n + 1) * sizeof *names);
        assert_non_null(names);
        names[n++] = tu_path(dir, e->d_name);
    }
    closedir(d);
    free(dir);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    *out = names;
    return n;
}

static MtrModel *compile_path(const char *path)
{
    Pool *pool = pool_new();
    Diag *diag = diag_new(stderr);
    assert_non_null(pool);
    assert_non_null(diag);
    AstModel *ast = frontend_load(path, pool, diag);
    MtrModel *m = ast ? emit_model(ast, stderr) : NULL;
    diag_free(diag);
    pool_free(pool);
    return m;
}

/* The number after `key` (a whole word, outside comments) in text, or `dflt`. */
static double setting(const char *text, const char *key, double dflt)
{
    size_t kl = strlen(key);
    for (const char *p = text; *p; p++) {
        if (*p == '#') {
            while (*p && *p != '\n') p++;
            if (!*p) break;
            continue;
        }
        if (strncmp(p, key, kl) != 0 ||
            (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')))
            continue;
        const char *q = p + kl;
        if (isalnum((unsigned char)*q) || *q == '_') continue;
        while (*q == ' ' || *q == '=' || *q == '\t') q++;
        char *end;
        double v = strtod(q, &end);
        if (end != q) return v;
    }
    return dflt;
}

/* The weight written after `task NAME = ...` on its line, or 1. */
static double task_weight(const char *text, const char *task)
{
    char head[128];
    snprintf(head, sizeof head, "task %s ", task);
    const char *p = strstr(text, head);
    assert_non_null(p);
    const char *eol = strchr(p, '\n');
    const char *w = strstr(p, " weight ");
    if (!w || (eol && w > eol)) return 1.0;
    return strtod(w + 8, NULL);
}

static void expect_knob(const MtrModel *m, const char *file, const char *name, double want,
                        int *bad)
{
    int k = mtr_model_find_knob(m, name);
    if (k < 0) {
        fprintf(stderr, "%s: no knob '%s'\n", file, name);
        (*bad)++;
    } else if (fabs(m->knobs[k].value - want) > 1e-6 * fabs(want)) {
        fprintf(stderr, "%s: knob '%s' is %g, the file says %g\n", file, name, m->knobs[k].value,
                want);
        (*bad)++;
    }
}

/* train_step: all gradients, then all updates; nothing read before written. */
static int check_train_order(const MtrModel *m, const char *file)
{
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    const MtrProgram *prog = &m->programs[p];
    int bad = 0;
    uint32_t first_update = prog->n_ops;
    for (uint32_t i = 0; i < prog->n_ops; i++)
        if (op_info(prog->ops[i].kind)->flags & OPF_UPDATE) {
            if (first_update == prog->n_ops) first_update = i;
        } else if (first_update < prog->n_ops) {
            fprintf(stderr, "%s: train_step op %u (%s) writes an activation after update op %u\n",
                    file, i, op_info(prog->ops[i].kind)->name, first_update);
            bad++;
        }
    if (first_update == prog->n_ops) {
        fprintf(stderr, "%s: train_step has no update\n", file);
        bad++;
    }
    char *written = calloc(m->n_tensors, 1);
    assert_non_null(written);
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        const MtrOp *op = &prog->ops[i];
        const OpInfo *info = op_info(op->kind);
        for (int k = 0; k < info->n_in; k++)
            if (m->tensors[op->in[k]].role == MTR_ROLE_ACT && !written[op->in[k]]) {
                fprintf(stderr, "%s: train_step op %u (%s) reads '%s' before it is written\n", file,
                        i, info->name, m->tensors[op->in[k]].name);
                bad++;
            }
        for (int k = 0; k < info->n_out; k++) written[op->out[k]] = 1;
    }
    free(written);
    /* every parameter is updated exactly once, from a gradient made before */
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].role != MTR_ROLE_PARAM) continue;
        int n = 0;
        for (uint32_t i = first_update; i < prog->n_ops; i++)
            n += prog->ops[i].kind != OP_STEP_INC && prog->ops[i].in[0] == (int32_t)t;
        if (n != 1) {
            fprintf(stderr, "%s: parameter '%s' is updated %d times\n", file, m->tensors[t].name,
                    n);
            bad++;
        }
    }
    return bad;
}

/* Every op reads only tensors some earlier op wrote (or inputs and state). */
static int check_written_before_read(const MtrModel *m, const char *file)
{
    int bad = 0;
    char *written = calloc(m->n_tensors, 1);
    assert_non_null(written);
    for (uint32_t p = 0; p < m->n_programs; p++) {
        const MtrProgram *prog = &m->programs[p];
        memset(written, 0, m->n_tensors);
        for (uint32_t i = 0; i < prog->n_ops; i++) {
            const OpInfo *info = op_info(prog->ops[i].kind);
            for (int k = 0; k < info->n_in; k++) {
                int32_t t = prog->ops[i].in[k];
                if (m->tensors[t].role == MTR_ROLE_ACT && !written[t]) {
                    fprintf(stderr, "%s: %s op %u reads '%s' before it is written\n", file,
                            prog->name, i, m->tensors[t].name);
                    bad++;
                }
            }
            for (int k = 0; k < info->n_out; k++) written[prog->ops[i].out[k]] = 1;
        }
    }
    free(written);
    return bad;
}

static void test_every_model(void **state)
{
    (void)state;
    char **paths = NULL;
    int n = list_models(&paths);
    if (n == 0) fail_msg("no .mtr file in %s/models", tu_source_dir());
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const char *file = paths[i];
        MtrModel *m = compile_path(file);
        if (!m) {
            fprintf(stderr, "%s: does not compile\n", file);
            bad++;
            free(paths[i]);
            continue;
        }
        char *text = tu_read_file(file, NULL);
        assert_non_null(text);
        /* A ranking task is written "ranking(", a retrieval task "retrieval(". */
        int ranking = strstr(text, "ranking(") != NULL,
            retrieval = strstr(text, "retrieval(") != NULL;
        const struct {
            MtrProgramKind kind;
            int want;
        } progs[] = {{MTR_PROG_TRAIN, 1},
                     {MTR_PROG_EVAL, 1},
                     {MTR_PROG_PREDICT, ranking},
                     {MTR_PROG_EMBED_ITEMS, retrieval},
                     {MTR_PROG_RECOMMEND, retrieval}};
        for (size_t k = 0; k < sizeof progs / sizeof progs[0]; k++) {
            int has = mtr_model_program(m, progs[k].kind) >= 0;
            if (has != progs[k].want) {
                fprintf(stderr, "%s: program %s is %s\n", file,
                        mtr_program_kind_name(progs[k].kind),
                        has ? "present but should not be" : "missing");
                bad++;
            }
        }
        for (uint32_t t = 0; t < m->n_tasks; t++) {
            char name[160];
            snprintf(name, sizeof name, "%s.weight", m->tasks[t].name);
            expect_knob(m, file, name, task_weight(text, m->tasks[t].name), &bad);
            if (m->tasks[t].weight_knob != mtr_model_find_knob(m, name)) {
                fprintf(stderr, "%s: task %s does not point at its weight knob\n", file,
                        m->tasks[t].name);
                bad++;
            }
        }
        expect_knob(m, file, "optimizer.lr", setting(text, "lr", NAN), &bad);
        /* defaults as docs/dsl.md gives them: batch 8192, epochs 3, seed 42, split 0.8 */
        expect_knob(m, file, "train.batch", setting(text, "batch", 8192), &bad);
        expect_knob(m, file, "train.epochs", setting(text, "epochs", 3), &bad);
        expect_knob(m, file, "train.seed", setting(text, "seed", 42), &bad);
        expect_knob(m, file, "train.split", setting(text, "split", 0.8), &bad);
        bad += check_train_order(m, file);
        bad += check_written_before_read(m, file);
        printf("%s: %u programs, %u knobs, %u tensors\n", file, m->n_programs, m->n_knobs,
               m->n_tensors);
        free(text);
        mtr_model_free(m);
        free(paths[i]);
    }
    free(paths);
    assert_int_equal(bad, 0);
}

static void test_golden_graph(void **state)
{
    (void)state;
    char cmd[8192];
    char *golden_path = tu_path(tu_source_dir(), "tests/golden/movielens.graph");
    char *model = tu_path(tu_source_dir(), "models/movielens.mtr");
    snprintf(cmd, sizeof cmd, "'%s/mtrc' --dump graph '%s'", tu_bin_dir(), model);
    char *out = NULL;
    int rc = tu_run(cmd, &out);
    size_t glen = 0;
    char *golden = tu_read_file(golden_path, &glen);
    if (!golden) fail_msg("missing %s", golden_path);
    if (rc != 0 || !out) fail_msg("%s exited with %d:\n%s", cmd, rc, out ? out : "");
    if (strcmp(out, golden) != 0) {
        /* the first differing line, as a diff hint */
        const char *a = out, *b = golden;
        int line = 1;
        while (*a && *a == *b) {
            if (*a == '\n') line++;
            a++, b++;
        }
        while (a > out && a[-1] != '\n') a--;
        while (b > golden && b[-1] != '\n') b--;
        fprintf(stderr,
                "the graph dump differs from %s at line %d:\n  got:    %.*s\n  golden: %.*s\n"
                "see: diff <(%s) %s\nrefresh it only on purpose (see the top of "
                "tests/test_lower.c)\n",
                golden_path, line, (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b, cmd,
                golden_path);
        fail_msg("golden mismatch");
    }
    free(out);
    free(golden);
    free(model);
    free(golden_path);
}

/* The op train_step computes the retrieval loss with, compiled with or
 * without rewrites. */
static OpKind retrieval_loss_op(const char *text, int rewrite)
{
    Pool *pool = pool_new();
    Diag *diag = diag_new(stderr);
    assert_non_null(pool);
    assert_non_null(diag);
    AstModel *ast = frontend_parse("rewrite.mtr", text, strlen(text), pool, diag);
    assert_non_null(ast);
    EmitOptions opts = emit_defaults();
    opts.rewrite = rewrite;
    MtrModel *m = emit_model_opts(ast, &opts, stderr);
    assert_non_null(m);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    assert_true(p >= 0);
    OpKind found = OP_COUNT;
    for (uint32_t i = 0; i < m->programs[p].n_ops; i++) {
        OpKind k = m->programs[p].ops[i].kind;
        if (k == OP_INBATCH_SOFTMAX_XENT || k == OP_INBATCH_SOFTMAX_XENT_QC ||
            k == OP_INBATCH_SOFTMAX_XENT_IDS)
            found = k;
    }
    mtr_model_free(m);
    diag_free(diag);
    pool_free(pool);
    return found;
}

/* The rewrite picks the distinct-id form only when each tower is a function of
 * one id column, row by row; a tower over two columns gets the blocked form,
 * and -O0 keeps the plain one. */
static void test_rewrite_choice(void **state)
{
    (void)state;
    static const char one_id[] = "model a\ninput u : string\ninput i : string\n"
                                 "tower q = u -> lookup -> embedding(8) -> dense(8, relu)\n"
                                 "tower c = i -> lookup -> embedding(8)\n"
                                 "task r = retrieval(q, c)\n";
    static const char two_ids[] = "model b\ninput u : string\ninput g : string\ninput i : string\n"
                                  "tower ue = u -> lookup -> embedding(4)\n"
                                  "tower ge = g -> lookup -> embedding(4)\n"
                                  "tower q = concat(ue, ge) -> dense(8)\n"
                                  "tower c = i -> lookup -> embedding(8)\n"
                                  "task r = retrieval(q, c)\n";
    assert_int_equal(retrieval_loss_op(one_id, 1), OP_INBATCH_SOFTMAX_XENT_IDS);
    assert_int_equal(retrieval_loss_op(two_ids, 1), OP_INBATCH_SOFTMAX_XENT_QC);
    assert_int_equal(retrieval_loss_op(one_id, 0), OP_INBATCH_SOFTMAX_XENT);
}

/* Row-wise stages keep the distinct-id form (equal ids, equal rows); dropout
 * does not (equal rows get different masks), so it falls back to the blocked
 * form. */
static void test_rewrite_rowwise_stages(void **state)
{
    (void)state;
    static const char norm[] = "model a\ninput u : string\ninput i : string\n"
                               "tower q = u -> lookup -> embedding(8) -> layer_norm -> "
                               "dense(8, gelu) -> dense(8, softmax)\n"
                               "tower c = i -> lookup -> embedding(8)\n"
                               "task r = retrieval(q, c)\n";
    static const char drop[] = "model b\ninput u : string\ninput i : string\n"
                               "tower q = u -> lookup -> embedding(8) -> dropout(0.2)\n"
                               "tower c = i -> lookup -> embedding(8)\n"
                               "task r = retrieval(q, c)\n";
    assert_int_equal(retrieval_loss_op(norm, 1), OP_INBATCH_SOFTMAX_XENT_IDS);
    assert_int_equal(retrieval_loss_op(drop, 1), OP_INBATCH_SOFTMAX_XENT_QC);
}

/* How many ops of kind k train_step holds, compiled with or without rewrites. */
static int train_ops_of(const char *text, int rewrite, OpKind k)
{
    Pool *pool = pool_new();
    Diag *diag = diag_new(stderr);
    assert_non_null(pool);
    assert_non_null(diag);
    AstModel *ast = frontend_parse("dense.mtr", text, strlen(text), pool, diag);
    assert_non_null(ast);
    EmitOptions opts = emit_defaults();
    opts.rewrite = rewrite;
    MtrModel *m = emit_model_opts(ast, &opts, stderr);
    assert_non_null(m);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    assert_true(p >= 0);
    int n = 0;
    for (uint32_t i = 0; i < m->programs[p].n_ops; i++) n += m->programs[p].ops[i].kind == k;
    mtr_model_free(m);
    diag_free(diag);
    pool_free(pool);
    return n;
}

/* A dense layer over a concat of parts that are each a function of one id
 * becomes dense_ids for its first part and dense_ids_acc for each other (its
 * backward one dense_ids_grad per part);
 * a part over two ids keeps the plain product (here the tower over two ids is
 * itself such a layer, the head over it is not), and so does -O0. */
static void test_rewrite_dense_over_ids(void **state)
{
    (void)state;
    static const char three[] = "model a\ninput u : string\ninput g : string\ninput i : string\n"
                                "label y : float\n"
                                "tower ue = u -> lookup -> embedding(4)\n"
                                "tower ge = g -> lookup -> embedding(3) -> dense(5, relu)\n"
                                "tower c = i -> lookup -> embedding(4)\n"
                                "head h = concat(ue, ge, c) -> dense(6, relu) -> dense(1)\n"
                                "task t = ranking(h, y)\n";
    static const char mixed[] = "model b\ninput u : string\ninput g : string\ninput i : string\n"
                                "label y : float\n"
                                "tower ue = u -> lookup -> embedding(4)\n"
                                "tower ge = g -> lookup -> embedding(4)\n"
                                "tower q = concat(ue, ge) -> dense(4)\n"
                                "tower c = i -> lookup -> embedding(4)\n"
                                "head h = concat(q, c) -> dense(6, relu) -> dense(1)\n"
                                "task t = ranking(h, y)\n";
    assert_int_equal(train_ops_of(three, 1, OP_DENSE_IDS), 1);
    /* the last part's op also takes the layer's bias and relu (test_rewrite_bias_relu) */
    assert_int_equal(train_ops_of(three, 1, OP_DENSE_IDS_ACC), 1);
    assert_int_equal(train_ops_of(three, 1, OP_DENSE_IDS_ACC_BIAS_RELU), 1);
    assert_int_equal(train_ops_of(three, 1, OP_DENSE_IDS_GRAD), 3);
    assert_int_equal(train_ops_of(three, 1, OP_CONCAT), 0);
    assert_int_equal(train_ops_of(three, 0, OP_DENSE_IDS), 0);
    assert_int_equal(
        train_ops_of(mixed, 1, OP_DENSE_IDS) + train_ops_of(mixed, 1, OP_DENSE_IDS_ACC), 2);
    assert_int_equal(train_ops_of(mixed, 1, OP_CONCAT), 1);
}

/* relu over a bias_add that nothing else reads becomes bias_relu (its backward
 * one bias_relu_grad in place of relu_grad and the bias's sum_rows), and joins
 * the dense_ids_acc before it when that is the layer's product (the head's
 * first layer: dense_ids_acc_bias_relu); a bias_add without relu stays, and
 * -O0 keeps the plain ops. */
static void test_rewrite_bias_relu(void **state)
{
    (void)state;
    static const char two[] = "model a\ninput u : string\ninput i : string\nlabel y : float\n"
                              "tower ue = u -> lookup -> embedding(4) -> dense(5, relu)\n"
                              "tower c = i -> lookup -> embedding(4)\n"
                              "head h = concat(ue, c) -> dense(6, relu) -> dense(1)\n"
                              "task t = ranking(h, y)\n";
    static const char tanh_head[] = "model b\ninput u : string\ninput i : string\nlabel y : float\n"
                                    "tower ue = u -> lookup -> embedding(4)\n"
                                    "tower c = i -> lookup -> embedding(4)\n"
                                    "head h = concat(ue, c) -> dense(6, tanh) -> dense(1)\n"
                                    "task t = ranking(h, y)\n";
    assert_int_equal(train_ops_of(two, 1, OP_BIAS_RELU), 1); /* the tower's layer */
    assert_int_equal(train_ops_of(two, 1, OP_DENSE_IDS_ACC_BIAS_RELU), 1);
    assert_int_equal(train_ops_of(two, 1, OP_DENSE_IDS_ACC), 0);
    assert_int_equal(train_ops_of(two, 1, OP_BIAS_RELU_GRAD), 2);
    assert_int_equal(train_ops_of(two, 1, OP_RELU), 0);
    assert_int_equal(train_ops_of(two, 1, OP_RELU_GRAD), 0);
    assert_int_equal(train_ops_of(two, 1, OP_BIAS_ADD), 1); /* the last dense layer's */
    assert_int_equal(train_ops_of(two, 1, OP_SUM_ROWS), 1);
    assert_int_equal(train_ops_of(two, 0, OP_BIAS_RELU), 0);
    assert_int_equal(train_ops_of(two, 0, OP_RELU), 2);
    assert_int_equal(train_ops_of(two, 0, OP_SUM_ROWS), 3);
    assert_int_equal(train_ops_of(two, 0, OP_DENSE_IDS_ACC_BIAS_RELU), 0);
    assert_int_equal(train_ops_of(tanh_head, 1, OP_BIAS_RELU), 0);
    assert_int_equal(train_ops_of(tanh_head, 1, OP_DENSE_IDS_ACC_BIAS_RELU), 0);
    assert_int_equal(train_ops_of(tanh_head, 1, OP_DENSE_IDS_ACC), 1);
}

/* The name of the column compiled text marks as the user, or NULL. */
static char *user_of(const char *text)
{
    Pool *pool = pool_new();
    Diag *diag = diag_new(stderr);
    assert_non_null(pool);
    assert_non_null(diag);
    AstModel *ast = frontend_parse("user.mtr", text, strlen(text), pool, diag);
    assert_non_null(ast);
    MtrModel *m = emit_model(ast, stderr);
    assert_non_null(m);
    int u = mtr_model_user_column(m);
    int n = 0;
    for (uint32_t c = 0; c < m->n_columns; c++) n += m->columns[c].is_user;
    assert_int_equal(n, u >= 0);
    char *name = u >= 0 ? strdup(m->columns[u].name) : NULL;
    mtr_model_free(m);
    diag_free(diag);
    pool_free(pool);
    return name;
}

/* The user is a fact of the model, not of the column order: the query tower's
 * id in a retrieval model whose first looked-up input is a side feature (g),
 * even with the item declared first; the first id the first ranking task's
 * head reads in a ranking-only model; none when no id is looked up. */
static void test_user_column(void **state)
{
    (void)state;
    static const char retrieval[] =
        "model a\ninput i : string\ninput g : string\ninput u : string\nlabel y : float\n"
        "tower ge = g -> lookup -> embedding(4)\n"
        "tower q = concat(u -> lookup -> embedding(4), ge) -> dense(4)\n"
        "tower c = i -> lookup -> embedding(4)\n"
        "head h = concat(ge, q, c) -> dense(1)\n"
        "task t = ranking(h, y)\ntask r = retrieval(q, c)\n";
    static const char ranking[] =
        "model b\ninput g : string\ninput u : string\nlabel y : float\n"
        "tower ue = u -> lookup -> embedding(4)\ntower ge = g -> lookup -> embedding(4)\n"
        "head h = concat(ue, ge) -> dense(1)\ntask t = ranking(h, y)\n";
    static const char hashed[] = "model c\ninput u : string\nlabel y : float\n"
                                 "tower ue = u -> hash(64) -> embedding(4)\n"
                                 "head h = ue -> dense(1)\ntask t = ranking(h, y)\n";
    char *name = user_of(retrieval);
    assert_non_null(name);
    assert_string_equal(name, "u");
    free(name);
    name = user_of(ranking);
    assert_non_null(name);
    assert_string_equal(name, "u");
    free(name);
    assert_null(user_of(hashed));
}

/* weight auto: a log-variance parameter per such task, its loss weighted by
 * uncertainty(), and the parameter listed as the task's LOG_VARIANCE output. */
static void test_weight_auto(void **state)
{
    (void)state;
    MtrModel *m = tu_compile("a.mtr", "model a\ninput u : string\ninput i : string\n"
                                      "label y : float\n"
                                      "tower q = u -> lookup -> embedding(4)\n"
                                      "tower c = i -> lookup -> embedding(4)\n"
                                      "head h = concat(q, c) -> dense(1)\n"
                                      "task t = ranking(h, y) weight auto\n"
                                      "task r = retrieval(q, c) weight 0.5\n");
    assert_non_null(m);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    int32_t s = mtr_program_output(m, p, MTR_OUT_LOG_VARIANCE, 0);
    assert_true(s >= 0);
    assert_int_equal(m->tensors[s].role, MTR_ROLE_PARAM);
    assert_int_equal(mtr_program_output(m, p, MTR_OUT_LOG_VARIANCE, 1), -1);
    int n = 0;
    for (uint32_t i = 0; i < m->programs[p].n_ops; i++)
        n += m->programs[p].ops[i].kind == OP_UNCERTAINTY;
    assert_int_equal(n, 1);
    mtr_model_free(m);
}

/* l2_dense and l2_embedding add sum_squares penalties weighted by their knobs:
 * one per dense kernel, one per embedding lookup; a model without them has none. */
static void test_l2_penalties(void **state)
{
    (void)state;
    static const char base[] = "model a\ninput u : string\ninput i : string\nlabel y : float\n"
                               "tower q = u -> lookup -> embedding(4)\n"
                               "tower c = i -> lookup -> embedding(4)\n"
                               "head h = concat(q, c) -> dense(3, relu) -> dense(1)\n"
                               "task t = ranking(h, y)\n";
    char text[1024];
    snprintf(text, sizeof text, "%strain { l2_dense 0.01 l2_embedding 0.001 }\n", base);
    const char *texts[] = {base, text};
    for (int k = 0; k < 2; k++) {
        MtrModel *m = tu_compile("l2.mtr", texts[k]);
        assert_non_null(m);
        const MtrProgram *p = &m->programs[mtr_model_program(m, MTR_PROG_TRAIN)];
        int squares = 0, dense = 0, emb = 0;
        for (uint32_t i = 0; i < p->n_ops; i++) {
            const MtrOp *op = &p->ops[i];
            squares += op->kind == OP_SUM_SQUARES;
            if (op->kind != OP_LOSS_WEIGHT) continue;
            /* the penalties' weights, not their backward: a weight of a sum of squares */
            int of_squares = 0;
            for (uint32_t j = 0; j < i; j++)
                of_squares |= p->ops[j].kind == OP_SUM_SQUARES && p->ops[j].out[0] == op->in[0];
            if (!of_squares) continue;
            dense += m->knobs[op->iattr[0]].kind == MTR_KNOB_L2_DENSE;
            emb += m->knobs[op->iattr[0]].kind == MTR_KNOB_L2_EMBEDDING;
        }
        assert_int_equal(squares, k ? 4 : 0);
        assert_int_equal(dense, k ? 2 : 0);
        assert_int_equal(emb, k ? 2 : 0);
        assert_int_equal(mtr_model_knob(m, MTR_KNOB_L2_DENSE) >= 0, k);
        mtr_model_free(m);
    }
}

/* Dropout acts in train_step only, with its rate a knob of the stage; the
 * other programs read the stage's input as it is. */
static void test_dropout_train_only(void **state)
{
    (void)state;
    MtrModel *m = tu_compile("d.mtr", "model d\ninput u : string\ninput i : string\n"
                                      "label y : float\n"
                                      "tower q = u -> lookup -> embedding(8)\n"
                                      "tower c = i -> lookup -> embedding(8)\n"
                                      "head h = concat(q, c) -> dense(8, relu) -> dropout(0.25) "
                                      "-> dense(1)\n"
                                      "task t = ranking(h, y)\n");
    assert_non_null(m);
    int k = mtr_model_find_knob(m, "h.dropout2.p");
    assert_true(k >= 0);
    assert_int_equal(m->knobs[k].kind, MTR_KNOB_DROPOUT_P);
    assert_true(m->knobs[k].value == 0.25);
    for (uint32_t p = 0; p < m->n_programs; p++) {
        int n = 0;
        for (uint32_t i = 0; i < m->programs[p].n_ops; i++)
            n += m->programs[p].ops[i].kind == OP_DROPOUT;
        assert_int_equal(n, m->programs[p].kind == MTR_PROG_TRAIN);
    }
    mtr_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_model),
        cmocka_unit_test(test_golden_graph),
        cmocka_unit_test(test_rewrite_choice),
        cmocka_unit_test(test_rewrite_rowwise_stages),
        cmocka_unit_test(test_rewrite_dense_over_ids),
        cmocka_unit_test(test_rewrite_bias_relu),
        cmocka_unit_test(test_dropout_train_only),
        cmocka_unit_test(test_weight_auto),
        cmocka_unit_test(test_user_column),
        cmocka_unit_test(test_l2_penalties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
