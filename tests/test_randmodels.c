/* Random valid models (tests/modelgen.c), each driven through the whole
 * compiler and runtime:
 *   - it passes the checker (the generator builds only valid models);
 *   - mtrc and mtrc -O0 compile it;
 *   - model.bin round trips: encode, decode, encode gives the same bytes, and
 *     the decoded model's --dump graph is the original's;
 *   - a few training steps on generated batches keep the loss finite, and the
 *     rewritten and the plain programs give the same losses step by step (the
 *     rewrites are exact), from the same parameters;
 *   - the whole-graph gradient check: every parameter's gradient in the
 *     rewritten train_step against central differences of the loss.
 * MTR_RANDMODELS=N sets how many (default 300), MTR_RANDMODELS_SEED the first
 * seed (default 1); a failure prints the model's text and seed
 * (`gen_models --print SEED` prints it again). */
#include "emit.h"
#include "frontend.h"
#include "modelgen.h"
#include "mtr/exec.h"
#include "mtr/model.h"
#include "mtr/rng.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define BATCH       8
#define VOCAB       5
#define ITEMS       6
#define TOPK        3
#define STEPS       4
#define MAX_CHECKED 160 /* parameter elements per model in the gradient check */

static const double EPS = 1e-3, ATOL = 2e-3, RTOL = 2e-2, LOSS_RTOL = 1e-4;

/* The train program and its loss: one place to switch to typed outputs. */
static int train_program(const MtrModel *m)
{
    return mtr_model_program(m, MTR_PROG_TRAIN);
}

static int32_t loss_tensor(const MtrModel *m)
{
    return mtr_program_output(m, train_program(m), MTR_OUT_LOSS, -1);
}

static int lr_knob(const MtrModel *m)
{
    return mtr_model_knob(m, MTR_KNOB_LR);
}

static int64_t symbol_value(const char *sym)
{
    if (strcmp(sym, "batch") == 0) return BATCH;
    if (strcmp(sym, "items") == 0) return ITEMS;
    if (strcmp(sym, "k") == 0) return TOPK;
    if (strncmp(sym, "vocab.", 6) == 0) return VOCAB;
    if (strncmp(sym, "list.", 5) == 0) return 3;
    return -1;
}

typedef struct {
    uint64_t seed;
    const char *text;
    char why[512];
} Ctx;

static int failf(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failf(Ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return -1;
}

static char *graph_text(const MtrModel *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    emit_dump_model_graph(m, f);
    fclose(f);
    return buf;
}

static int round_trip(Ctx *c, const MtrModel *m)
{
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    MtrError e = {0};
    MtrModel *back = NULL;
    int rc = 0;
    if (mtr_model_encode(m, &a, &na, &e) != MTR_OK) return failf(c, "encode: %s", e.msg);
    if (mtr_model_decode(a, na, "random", &back, &e) != MTR_OK) {
        rc = failf(c, "decode: %s", e.msg);
    } else if (mtr_model_encode(back, &b, &nb, &e) != MTR_OK) {
        rc = failf(c, "encode again: %s", e.msg);
    } else if (na != nb || memcmp(a, b, na) != 0) {
        rc = failf(c, "encode(decode(model.bin)) differs from model.bin (%zu and %zu bytes)", na,
                   nb);
    } else {
        char *g1 = graph_text(m), *g2 = graph_text(back);
        if (!g1 || !g2 || strcmp(g1, g2) != 0) rc = failf(c, "--dump graph differs after decoding");
        free(g1);
        free(g2);
    }
    mtr_model_free(back);
    free(a);
    free(b);
    return rc;
}

static MtrSession *session(Ctx *c, const MtrModel *m)
{
    int64_t values[32];
    if (m->n_symbols > 32) return failf(c, "%u symbols", m->n_symbols), NULL;
    for (uint32_t i = 0; i < m->n_symbols; i++)
        if ((values[i] = symbol_value(m->symbols[i])) < 0)
            return failf(c, "unknown symbol '%s'", m->symbols[i]), NULL;
    MtrSession *s = NULL;
    MtrError e = {0};
    if (mtr_session_new(m, values, &s, &e) != MTR_OK) return failf(c, "session: %s", e.msg), NULL;
    return s;
}

/* The value of row r of an input fed from `source` at step `step`: the same in
 * every model of the same text, so the two compilations see the same data. */
static void fill_inputs(MtrSession *s, const MtrModel *m, int step, uint64_t seed)
{
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *x = &m->tensors[t];
        if (x->role != MTR_ROLE_INPUT) continue;
        void *buf = mtr_session_tensor(s, (int32_t)t);
        int64_t n = mtr_session_tensor_elems(s, (int32_t)t, BATCH);
        if (!buf || n <= 0) continue;
        uint64_t h = seed * 1315423911u + (uint64_t)step * 2654435761u;
        /* by the source's kind and column name, not by ids, which the two
         * compilations may number differently */
        const char *col_name = x->source_column >= 0 && (uint32_t)x->source_column < m->n_columns
                                   ? m->columns[x->source_column].name
                                   : "";
        h = h * 31 + x->source;
        for (const char *p = col_name; *p; p++) h = h * 31 + (unsigned char)*p;
        Rng r;
        rng_seed(&r, h);
        int bce_label = 0;
        if (x->source == MTR_SRC_COLUMN && *col_name) {
            int ci = x->source_column;
            if (m->columns[ci].is_label)
                for (uint32_t k = 0; k < m->n_tasks; k++)
                    if (m->tasks[k].label_column == ci && strstr(m->tasks[k].about, "loss bce"))
                        bce_label = 1;
        }
        for (int64_t i = 0; i < n; i++) {
            if (x->dtype == MTR_DT_I32) {
                int64_t hi = x->source == MTR_SRC_TRUE_ROW ? ITEMS : VOCAB;
                ((int32_t *)buf)[i] = (int32_t)rng_below(&r, (uint64_t)hi);
            } else {
                /* labels of order one, so that the loss is too, and central
                 * differences of it keep their precision in float */
                ((float *)buf)[i] = bce_label ? (float)rng_below(&r, 2) : rng_float(&r);
            }
        }
    }
}

/* Copies every parameter and optimizer state of `from` into `to`, by name. */
static int copy_params(Ctx *c, MtrSession *to, const MtrModel *mt, MtrSession *from,
                       const MtrModel *mf)
{
    for (uint32_t t = 0; t < mf->n_tensors; t++) {
        const MtrTensor *x = &mf->tensors[t];
        if (x->role != MTR_ROLE_PARAM && x->role != MTR_ROLE_OPTSTATE) continue;
        int32_t u = mtr_model_find_tensor(mt, x->name);
        if (u < 0) return failf(c, "-O0 has no parameter '%s'", x->name);
        int64_t n = mtr_session_tensor_elems(from, (int32_t)t, BATCH);
        if (n != mtr_session_tensor_elems(to, u, BATCH))
            return failf(c, "parameter '%s' has another size at -O0", x->name);
        memcpy(mtr_session_tensor(to, u), mtr_session_tensor(from, (int32_t)t), (size_t)n * 4);
    }
    return 0;
}

static double run_loss(MtrSession *s, const MtrModel *m)
{
    mtr_session_run(s, train_program(m), BATCH);
    return *(const float *)mtr_session_tensor(s, loss_tensor(m));
}

static int close_enough(double a, double b, double atol, double rtol)
{
    return fabs(a - b) <= atol + rtol * fmax(fabs(a), fabs(b));
}

/* Training steps on both compilations: finite, and equal losses. Each step
 * starts both from the rewritten one's parameters, so that the comparison is
 * of one step's exactness, not of how an optimizer amplifies rounding (Adagrad
 * with no initial accumulator turns a gradient of 1e-9 into a step of lr). */
static int train_steps(Ctx *c, MtrSession *s1, const MtrModel *m1, MtrSession *s0,
                       const MtrModel *m0)
{
    for (int step = 0; step < STEPS; step++) {
        if (step > 0 && copy_params(c, s0, m0, s1, m1)) return -1;
        fill_inputs(s1, m1, step, c->seed);
        fill_inputs(s0, m0, step, c->seed);
        double l1 = run_loss(s1, m1), l0 = run_loss(s0, m0);
        if (!isfinite(l1) || !isfinite(l0))
            return failf(c, "step %d: the loss is not finite (%g rewritten, %g plain)", step + 1,
                         l1, l0);
        if (!close_enough(l1, l0, 1e-5, LOSS_RTOL))
            return failf(c,
                         "step %d: the rewritten program's loss %.9g differs from the plain "
                         "one's %.9g",
                         step + 1, l1, l0);
    }
    return 0;
}

/* The whole-graph gradient check on the rewritten train_step, lr = 0. */
static int gradient_check(Ctx *c, MtrSession *s, const MtrModel *m, long *checked, long *skipped)
{
    int p = train_program(m), k_lr = lr_knob(m);
    if (p < 0 || k_lr < 0 || loss_tensor(m) < 0) return failf(c, "no train_step, loss or lr");
    mtr_session_set_knob(s, k_lr, 0.0);
    /* the embedding tables' own optimizer (optimizer_embedding) has its own rate */
    if (mtr_model_knob(m, MTR_KNOB_EMB_LR) >= 0)
        mtr_session_set_knob(s, mtr_model_knob(m, MTR_KNOB_EMB_LR), 0.0);
    Rng r;
    rng_seed(&r, c->seed ^ 0xabcdefu);
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].role != MTR_ROLE_PARAM) continue;
        float *x = mtr_session_tensor(s, (int32_t)t);
        int64_t n = mtr_session_tensor_elems(s, (int32_t)t, BATCH);
        for (int64_t k = 0; k < n; k++) x[k] = 1.2f * rng_float(&r) - 0.6f;
    }
    fill_inputs(s, m, 99, c->seed);
    const MtrProgram *prog = &m->programs[p];
    int32_t params[64], grads[64], grad_ids[64];
    int np = 0;
    for (uint32_t i = 0; i < prog->n_ops && np < 64; i++) {
        const MtrOp *op = &prog->ops[i];
        if (!(op_info(op->kind)->flags & OPF_UPDATE) || op->kind == OP_STEP_INC) continue;
        int rows = op->kind == OP_SGD_UPDATE_ROWS || op->kind == OP_ADAGRAD_UPDATE_ROWS ||
                   op->kind == OP_ADAM_UPDATE_ROWS;
        params[np] = op->in[0];
        grad_ids[np] = rows ? op->in[2] : -1; /* a sparse gradient: rows and their ids */
        grads[np++] = op->in[1];
    }
    double base = run_loss(s, m);
    int64_t total = 0, ne[64];
    float *an[64];
    for (int i = 0; i < np; i++) {
        ne[i] = mtr_session_tensor_elems(s, params[i], BATCH);
        an[i] = malloc((size_t)ne[i] * sizeof *an[i]);
        assert_non_null(an[i]);
        const float *g = mtr_session_tensor(s, grads[i]);
        if (grad_ids[i] < 0) {
            memcpy(an[i], g, (size_t)ne[i] * sizeof *an[i]);
        } else { /* the dense gradient the rows stand for: each row added at its id */
            const int32_t *ids = mtr_session_tensor(s, grad_ids[i]);
            int64_t n_ids = mtr_session_tensor_elems(s, grad_ids[i], BATCH);
            int64_t width = n_ids > 0 ? mtr_session_tensor_elems(s, grads[i], BATCH) / n_ids : 0;
            assert_int_equal(tu_scatter_rows(g, ids, n_ids, width, an[i], ne[i]), 0);
        }
        total += ne[i];
    }
    int rc = 0;
    long ok = 0, kink = 0;
    /* Every element when there are few, else a sample of MAX_CHECKED. */
    for (int64_t j = 0; j < (total < MAX_CHECKED ? total : MAX_CHECKED) && rc == 0; j++) {
        int64_t g = total < MAX_CHECKED ? j : (int64_t)rng_below(&r, (uint64_t)total);
        int i = 0;
        while (g >= ne[i]) g -= ne[i++];
        float *x = mtr_session_tensor(s, params[i]);
        float keep = x[g], xp = keep + (float)EPS, xm = keep - (float)EPS;
        x[g] = xp;
        double hi = run_loss(s, m);
        x[g] = xm;
        double lo = run_loss(s, m);
        x[g] = keep;
        double fd = (hi - lo) / ((double)xp - (double)xm);
        /* the rounding of the loss itself, divided by the step */
        double atol = ATOL + 4 * fabs(base) * FLT_EPSILON / EPS;
        double right = (hi - base) / ((double)xp - keep), left = (base - lo) / (keep - (double)xm);
        if (close_enough(fd, an[i][g], atol, RTOL)) {
            ok++;
        } else if (!close_enough(left, right, atol, RTOL)) {
            kink++; /* a ReLU kink within eps: no derivative to compare */
        } else {
            rc = failf(c, "d loss / d %s[%lld]: analytic %.6g, central difference %.6g",
                       m->tensors[params[i]].name, (long long)g, (double)an[i][g], fd);
        }
    }
    for (int i = 0; i < np; i++) free(an[i]);
    if (rc == 0 && kink * 2 > ok + kink && ok + kink >= 8)
        rc = failf(c, "%ld of %ld elements sit at a kink: the check says nothing", kink, ok + kink);
    *checked += ok;
    *skipped += kink;
    return rc;
}

static int check_model(Ctx *c, long *checked, long *skipped)
{
    Pool *pool = pool_new();
    Diag *diag = diag_new(stderr);
    assert_non_null(pool);
    assert_non_null(diag);
    int rc = 0;
    MtrModel *m1 = NULL, *m0 = NULL;
    MtrSession *s1 = NULL, *s0 = NULL;
    AstModel *am = frontend_parse("random.mtr", c->text, strlen(c->text), pool, diag);
    if (!am) {
        rc = failf(c, "the checker refuses it");
        goto done;
    }
    EmitOptions o = emit_defaults();
    m1 = emit_model_opts(am, &o, stderr);
    o.rewrite = 0;
    m0 = emit_model_opts(am, &o, stderr);
    if (!m1 || !m0) {
        rc = failf(c, "mtrc%s does not compile it", m1 ? " -O0" : "");
        goto done;
    }
    if ((rc = round_trip(c, m1)) || (rc = round_trip(c, m0))) goto done;
    if (!(s1 = session(c, m1)) || !(s0 = session(c, m0))) {
        rc = -1;
        goto done;
    }
    Rng r;
    rng_seed(&r, c->seed);
    mtr_session_init_params(s1, &r);
    if ((rc = copy_params(c, s0, m0, s1, m1))) goto done;
    if ((rc = train_steps(c, s1, m1, s0, m0))) goto done;
    rc = gradient_check(c, s1, m1, checked, skipped);
done:
    mtr_session_free(s1);
    mtr_session_free(s0);
    mtr_model_free(m1);
    mtr_model_free(m0);
    diag_free(diag);
    pool_free(pool);
    return rc;
}

static void test_random_models(void **state)
{
    (void)state;
    const char *v = getenv("MTR_RANDMODELS");
    const char *v0 = getenv("MTR_RANDMODELS_SEED");
    long n = v ? strtol(v, NULL, 10) : 300;
    uint64_t first = v0 ? strtoull(v0, NULL, 10) : 1;
    long failed = 0, checked = 0, skipped = 0;
    for (long i = 0; i < n; i++) {
        Ctx c = {.seed = first + (uint64_t)i};
        char *text = modelgen(c.seed);
        assert_non_null(text);
        c.text = text;
        if (check_model(&c, &checked, &skipped) != 0) {
            if (failed < 5)
                fprintf(stderr, "random model, seed %llu: %s\n---\n%s---\n",
                        (unsigned long long)c.seed, c.why, text);
            failed++;
        }
        free(text);
    }
    printf("random models: %ld generated and checked (seeds %llu..%llu), %ld failed; gradient "
           "check: %ld elements agree, %ld skipped at a kink\n",
           n, (unsigned long long)first, (unsigned long long)(first + (uint64_t)n - 1), failed,
           checked, skipped);
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
