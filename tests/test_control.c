/* Training control (runtime/control.c): the learning rate a step applies is
 * the hand-computed one (warm-up, cosine and exponential decay, the main and
 * the embedding optimizer), global-norm clipping matches a plain computation
 * over every gradient, the validation hold-out is a seeded exact share, and
 * early stopping keeps and restores the best epoch's parameters. */
#include "testutil.h"

#include "mtr/control.h"
#include "mtr/exec.h"
#include "mtr/metrics.h"
#include "mtr/model.h"
#include "mtr/rng.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const double PI = 3.14159265358979323846;

#define MODEL_HEAD                                                                                 \
    "model c\n"                                                                                    \
    "input user_id     : string\n"                                                                 \
    "input movie_title : string\n"                                                                 \
    "label user_rating : float\n"                                                                  \
    "tower user  = user_id     -> lookup -> embedding(4)\n"                                        \
    "tower movie = movie_title -> lookup -> embedding(4)\n"                                        \
    "head rating = concat(user, movie) -> dense(4, relu) -> dense(1)\n"                            \
    "task rating    = ranking(rating, user_rating) loss mse metrics rmse\n"                        \
    "task retrieval = retrieval(user, movie) metrics top_k(1, 5)\n"

typedef struct {
    MtrModel *m;
    MtrSession *s;
    int p;
} Fixture;

static void setup(Fixture *f, const char *text, uint64_t seed)
{
    f->m = tu_compile("control.mtr", text);
    assert_non_null(f->m);
    int64_t values[16];
    assert_true(f->m->n_symbols <= 16);
    for (uint32_t i = 0; i < f->m->n_symbols; i++) {
        const char *s = f->m->symbols[i];
        values[i] = strcmp(s, "batch") == 0 ? 8 : strcmp(s, "k") == 0 ? 3 : 7;
    }
    MtrError err = {0};
    if (mtr_session_new(f->m, values, &f->s, &err) != MTR_OK)
        fail_msg("mtr_session_new: %s", err.msg);
    Rng r;
    rng_seed(&r, seed);
    mtr_session_init_params(f->s, &r);
    f->p = mtr_model_program(f->m, MTR_PROG_TRAIN);
    assert_true(f->p >= 0);
}

static void teardown(Fixture *f)
{
    mtr_session_free(f->s);
    mtr_model_free(f->m);
}

/* Fills train_step's inputs for batch number step (8 rows). */
static void fill(Fixture *f, int step)
{
    int32_t tu = tu_find_input(f->m, f->p, MTR_SRC_COLUMN, "user_id");
    int32_t tm = tu_find_input(f->m, f->p, MTR_SRC_COLUMN, "movie_title");
    int32_t tr = tu_find_input(f->m, f->p, MTR_SRC_COLUMN, "user_rating");
    assert_true(tu >= 0 && tm >= 0 && tr >= 0);
    for (int64_t i = 0; i < 8; i++) {
        int64_t j = i + 3 * step;
        ((int32_t *)mtr_session_tensor(f->s, tu))[i] = (int32_t)(1 + (j * 5) % 6);
        ((int32_t *)mtr_session_tensor(f->s, tm))[i] = (int32_t)(1 + (j * 3) % 6);
        ((float *)mtr_session_tensor(f->s, tr))[i] = (float)(1 + (j * 7) % 5);
    }
}

static int32_t tensor_named(const MtrModel *m, const char *name)
{
    for (uint32_t t = 0; t < m->n_tensors; t++)
        if (strcmp(m->tensors[t].name, name) == 0) return (int32_t)t;
    fail_msg("no tensor %s", name);
    return -1;
}

/* The train_step output of this role for parameter param. */
static int32_t output_of(const Fixture *f, int role, int32_t param)
{
    const MtrProgram *pr = &f->m->programs[f->p];
    for (uint32_t i = 0; i < pr->n_outputs; i++)
        if (pr->outputs[i].role == role && pr->outputs[i].param == param)
            return pr->outputs[i].tensor;
    return -1;
}

/* ---- the schedule's factor, by the formulas of control.h ------------------ */

static void test_lr_factor_formulas(void **state)
{
    (void)state;
    Control c = {0};
    c.warmup = 4;
    c.steps_per_epoch = 10;
    c.total_steps = 30;
    c.decay = 1;
    c.decay_arg = 0.1;
    assert_true(fabs(control_lr_factor(&c, 0) - 0.25) < 1e-15);
    assert_true(fabs(control_lr_factor(&c, 3) - 1.0) < 1e-15);
    assert_true(fabs(control_lr_factor(&c, 4) - 1.0) < 1e-15); /* cosine starts at 1 */
    double p = (17.0 - 4.0) / 26.0;
    assert_true(fabs(control_lr_factor(&c, 17) - (0.1 + 0.9 * 0.5 * (1 + cos(PI * p)))) < 1e-15);
    c.decay = 2;
    c.decay_arg = 0.5;
    assert_true(fabs(control_lr_factor(&c, 14) - 0.5) < 1e-15); /* one epoch after warm-up */
    assert_true(fabs(control_lr_factor(&c, 9) - sqrt(0.5)) < 1e-15);
    c.decay = 0;
    c.warmup = 0;
    assert_true(control_lr_factor(&c, 0) == 1.0 && control_lr_factor(&c, 29) == 1.0);
}

/* ---- the update each step applies uses that step's hand-computed rate ------ */

static void test_applied_update_uses_scheduled_lr(void **state)
{
    (void)state;
    Fixture f;
    setup(&f,
          MODEL_HEAD "train {\n  optimizer sgd(lr = 0.5)\n  optimizer_embedding sgd(lr = 0.25)\n"
                     "  warmup 3\n  decay cosine\n  epochs 2\n  clip_norm 1e30\n}\n",
          7);
    Control c;
    MtrError err = {0};
    if (control_init(&c, f.m, f.s, f.p, 2, 4, &err) != MTR_OK) fail_msg("%s", err.msg);
    int32_t kernel = tensor_named(f.m, "rating.dense1.kernel");
    int32_t table = tensor_named(f.m, "user.embedding");
    int32_t gk = output_of(&f, MTR_OUT_GRADIENT, kernel);
    int32_t gr = output_of(&f, MTR_OUT_GRADIENT_ROWS, table);
    int32_t gi = output_of(&f, MTR_OUT_GRADIENT_IDS, table);
    assert_true(gk >= 0 && gr >= 0 && gi >= 0);
    int64_t nk = mtr_session_tensor_elems(f.s, kernel, 1);
    int64_t nt = mtr_session_tensor_elems(f.s, table, 1);
    float before_k[64], before_t[64];
    assert_true(nk <= 64 && nt <= 64);
    for (int step = 0; step < 8; step++) {
        /* by hand: warm-up 1/3, 2/3, 1, then half a cosine over the 5 steps left */
        double f_hand = step < 3 ? (step + 1) / 3.0 : 0.5 * (1 + cos(PI * (step - 3) / 5.0));
        double lr = (double)(float)(0.5 * f_hand), lr_emb = (double)(float)(0.25 * f_hand);
        memcpy(before_k, mtr_session_tensor(f.s, kernel), (size_t)nk * sizeof(float));
        memcpy(before_t, mtr_session_tensor(f.s, table), (size_t)nt * sizeof(float));
        fill(&f, step);
        control_run_step(&c, f.s, 8);
        const float *after = mtr_session_tensor(f.s, kernel), *g = mtr_session_tensor(f.s, gk);
        int moved = 0;
        for (int64_t i = 0; i < nk; i++) {
            float want = (float)(before_k[i] - (float)lr * g[i]);
            if (fabsf(after[i] - want) > 1e-6f * (1 + fabsf(want)))
                fail_msg("step %d kernel[%lld]: %g, want %g (lr %g)", step, (long long)i,
                         (double)after[i], (double)want, lr);
            moved += g[i] != 0;
        }
        assert_true(moved > 0);
        /* the embedding table: its own optimizer's rate, on the rows the batch read */
        float dense[64];
        tu_scatter_rows(mtr_session_tensor(f.s, gr), mtr_session_tensor(f.s, gi), 8, 4, dense, nt);
        const float *t_after = mtr_session_tensor(f.s, table);
        for (int64_t i = 0; i < nt; i++) {
            float want = (float)(before_t[i] - (float)lr_emb * dense[i]);
            if (fabsf(t_after[i] - want) > 1e-6f * (1 + fabsf(want)))
                fail_msg("step %d table[%lld]: %g, want %g (lr %g)", step, (long long)i,
                         (double)t_after[i], (double)want, lr_emb);
        }
    }
    /* the base rates come back after training */
    control_restore_best(&c, f.s, 2);
    assert_true(mtr_session_knob(f.s, mtr_model_knob(f.m, MTR_KNOB_LR)) == 0.5);
    control_free(&c);
    teardown(&f);
}

/* ---- clipping: the plain global norm over every gradient ------------------ */

static void test_clip_matches_plain_norm(void **state)
{
    (void)state;
    static const char text[] =
        MODEL_HEAD "train {\n  optimizer sgd(lr = 0.1)\n  clip_norm 0.05\n  l2_embedding 0.01\n}\n";
    Fixture a, b;
    setup(&a, text, 3);
    setup(&b, text, 3);
    fill(&a, 1);
    fill(&b, 1);
    /* b: the plain gradients, unclipped */
    mtr_session_run_gradients(b.s, b.p, 8);
    const MtrProgram *pr = &b.m->programs[b.p];
    double sq = 0;
    int n_grads = 0;
    for (uint32_t i = 0; i < pr->n_outputs; i++) {
        int role = pr->outputs[i].role;
        if (role != MTR_OUT_GRADIENT && role != MTR_OUT_GRADIENT_ROWS) continue;
        const float *d = mtr_session_tensor(b.s, pr->outputs[i].tensor);
        int64_t n = mtr_session_tensor_elems(b.s, pr->outputs[i].tensor, 8);
        for (int64_t e = 0; e < n; e++) sq += (double)d[e] * d[e];
        n_grads++;
    }
    assert_true(n_grads >= 6); /* 2 tables, 2 kernels, 2 biases */
    double norm = sqrt(sq);
    assert_true(norm > 0.05); /* so that clipping acts */
    double scale = 0.05 / norm;

    Control c;
    MtrError err = {0};
    if (control_init(&c, a.m, a.s, a.p, 1, 1, &err) != MTR_OK) fail_msg("%s", err.msg);
    int32_t bias = tensor_named(a.m, "rating.dense2.bias");
    float before = *(float *)mtr_session_tensor(a.s, bias);
    control_run_step(&c, a.s, 8);
    assert_true(fabs(c.last_norm - norm) <= 1e-6 * norm);
    float g = *(float *)mtr_session_tensor(b.s, output_of(&b, MTR_OUT_GRADIENT, bias));
    float want = before - 0.1f * (float)(g * scale);
    float got = *(float *)mtr_session_tensor(a.s, bias);
    if (fabsf(got - want) > 1e-6f * (1 + fabsf(want)))
        fail_msg("clipped update %g, want %g", (double)got, (double)want);
    /* after clipping, the gradients' global norm is clip_norm */
    double sq2 = 0;
    for (uint32_t i = 0; i < pr->n_outputs; i++) {
        int role = pr->outputs[i].role;
        if (role != MTR_OUT_GRADIENT && role != MTR_OUT_GRADIENT_ROWS) continue;
        const float *d = mtr_session_tensor(a.s, pr->outputs[i].tensor);
        int64_t n = mtr_session_tensor_elems(a.s, pr->outputs[i].tensor, 8);
        for (int64_t e = 0; e < n; e++) sq2 += (double)d[e] * d[e];
    }
    assert_true(fabs(sqrt(sq2) - 0.05) < 1e-6);
    control_free(&c);
    teardown(&a);
    teardown(&b);
}

/* ---- validation hold-out ---------------------------------------------------- */

static void test_hold_out_share(void **state)
{
    (void)state;
    enum { N = 1000 };
    uint32_t rows[N], again[N];
    for (int i = 0; i < N; i++) rows[i] = again[i] = (uint32_t)(N - i) * 7;
    int64_t nv = 0, nv2 = 0;
    MtrError err = {0};
    assert_int_equal(control_hold_out(rows, N, 0.1, 42, &nv, &err), MTR_OK);
    assert_int_equal(control_hold_out(again, N, 0.1, 42, &nv2, &err), MTR_OK);
    assert_int_equal(nv, 100);
    assert_memory_equal(rows, again, sizeof rows); /* seeded */
    /* the kept rows keep their order; together the two parts are all rows */
    for (int i = 1; i < N - nv; i++) assert_true(rows[i] < rows[i - 1]);
    char seen[N + 1] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(rows[i] % 7 == 0 && rows[i] / 7 >= 1 && rows[i] / 7 <= N);
        assert_false(seen[rows[i] / 7]);
        seen[rows[i] / 7] = 1;
    }
    /* another seed holds out other rows */
    for (int i = 0; i < N; i++) again[i] = (uint32_t)(N - i) * 7;
    assert_int_equal(control_hold_out(again, N, 0.1, 43, &nv2, &err), MTR_OK);
    assert_true(memcmp(rows + N - nv, again + N - nv, (size_t)nv * sizeof *rows) != 0);
}

/* ---- early stopping --------------------------------------------------------- */

static void report_with(MetricsReport *r, MetricsEntry *e, double rmse)
{
    snprintf(e[0].name, sizeof e[0].name, "rmse");
    e[0].value = rmse;
    snprintf(e[1].name, sizeof e[1].name, "top_5");
    e[1].value = 0.5;
    r->n = 2;
    r->entries = e;
}

static void test_early_stop_keeps_best_epoch(void **state)
{
    (void)state;
    Fixture f;
    setup(&f,
          MODEL_HEAD "train {\n  validation 0.2\n  early_stop rating.rmse patience 2\n"
                     "  epochs 9\n}\n",
          5);
    Control c;
    MtrError err = {0};
    if (control_init(&c, f.m, f.s, f.p, 9, 1, &err) != MTR_OK) fail_msg("%s", err.msg);
    assert_true(c.early && c.lower_better && c.patience == 2);
    int32_t kernel = tensor_named(f.m, "rating.dense1.kernel");
    float *w = mtr_session_tensor(f.s, kernel);
    static const double rmse[] = {1.2, 1.0, 1.05, NAN, 0.99};
    MetricsEntry e[2];
    MetricsReport r;
    int stopped = 0;
    for (int ep = 1; ep <= 4 && !stopped; ep++) {
        w[0] = (float)ep; /* marks the parameters of each epoch */
        report_with(&r, e, rmse[ep - 1]);
        stopped = control_epoch_end(&c, f.s, ep, &r) ? ep : 0;
    }
    assert_int_equal(stopped, 4); /* epochs 3 and 4 did not improve on epoch 2 */
    assert_int_equal(control_restore_best(&c, f.s, 4), 2);
    assert_true(w[0] == 2.0f);
    assert_string_equal(c.name, "rmse");
    control_free(&c);
    teardown(&f);
}

/* ---- the compiler's checks ---------------------------------------------------- */

static void test_compiler_refuses_bad_settings(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "train {\n  early_stop rating.rmse patience 2\n}\n",                  /* no validation */
        "train {\n  validation 0.1\n  early_stop rating.auc patience 2\n}\n", /* not asked */
        "train {\n  validation 0.1\n  early_stop retrieval.top_9 patience 2\n}\n", /* no such k */
        "train {\n  validation 0.1\n  early_stop nope.rmse patience 2\n}\n",
        "train {\n  validation 0.1\n  early_stop rating.rmse patience 0\n}\n",
        "train {\n  validation 1\n}\n",
        "train {\n  decay exponential\n}\n",
        "train {\n  decay exponential(1.5)\n}\n",
        "train {\n  decay linear\n}\n",
        "train {\n  clip_norm 0\n}\n",
        "train {\n  optimizer_embedding adagrad(beta1 = 0.5)\n}\n",
        "train {\n  optimizer_embedding adagrd\n}\n",
        "train {\n  warmup 2.5\n}\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[2048];
        snprintf(text, sizeof text, "%s%s", MODEL_HEAD, bad[i]);
        MtrModel *m = tu_compile("bad.mtr", text);
        if (m) fail_msg("compiled: %s", bad[i]);
    }
    char text[2048];
    snprintf(text, sizeof text, "%s%s", MODEL_HEAD,
             "train {\n  validation 0.1\n  early_stop retrieval.top_5 patience 3\n"
             "  decay exponential(0.5)\n  optimizer_embedding adam\n}\n");
    MtrModel *m = tu_compile("good.mtr", text);
    assert_non_null(m);
    int k = mtr_model_knob(m, MTR_KNOB_EARLY_STOP);
    assert_true(k >= 0);
    assert_int_equal((int)m->knobs[k].value, 1 * 256 + MTR_METRIC_TOP_K * 16 + 1);
    assert_true(mtr_model_knob(m, MTR_KNOB_EMB_BETA1) >= 0);
    mtr_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lr_factor_formulas),
        cmocka_unit_test(test_applied_update_uses_scheduled_lr),
        cmocka_unit_test(test_clip_matches_plain_norm),
        cmocka_unit_test(test_hold_out_share),
        cmocka_unit_test(test_early_stop_keeps_best_epoch),
        cmocka_unit_test(test_compiler_refuses_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
