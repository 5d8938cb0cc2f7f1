/* Gradient checks by central differences: the backward rules of compiler/autodiff.c
 * against the forward kernels of runtime/kernels/, through the whole pipeline
 * (graph.h -> autodiff_backward -> schedule_program -> mtr_session_run).
 *
 * Part 1 is generated from the op table: every op with OPF_DIFF must have at
 * least one case below, or the test fails (so a new differentiable op cannot
 * land without its check). For each case the op's float inputs are PARAM
 * tensors, its ids and labels INPUT tensors; its first output y is reduced to
 * a scalar loss = u^T y w (u, w fixed random INPUT vectors, so every element
 * of y has its own weight u_i w_j and a gradient that permuted rows or columns
 * would be caught), or loss = c * y for a scalar y. Each parameter gradient is
 * compared with (L(x + e) - L(x - e)) / 2e for every element.
 *
 * Part 1b checks softmax inside a small model (softmax -> matmul -> mse), where
 * the gradient reaching it comes from a real loss.
 *
 * Part 2 checks a whole compiled model (models/movielens.mtr at small sizes)
 * for three loss-weight settings, reading the gradient tensors that train_step's
 * update ops consume.
 *
 * Tolerances (float32 losses of magnitude <= ~20): a loss evaluation carries a
 * rounding error of about |L| * 6e-8 plus the forward's own accumulated
 * rounding (a few ulps of the largest activation), so the central difference
 * carries ~|L| 1e-7 / eps of noise; its truncation error is eps^2 |L'''| / 6.
 * Per-op cases: eps = 1e-2, so noise ~1e-5 and truncation ~2e-5 for the smooth
 * ops here; we accept |fd - an| <= 1e-3 + 1e-2 max(|fd|, |an|), more than 10x
 * that error, while a wrong rule (a missing term, a wrong transpose or factor)
 * is off by O(1) relative. Whole model: eps = 1e-2 with ReLUs inside; an element
 * whose two one-sided differences disagree crossed a ReLU kink and is skipped
 * (at most 10% may be), the rest must satisfy 2e-3 + 2e-2 max(|fd|, |an|). */
#include "autodiff.h"
#include "diag.h"
#include "emit.h"
#include "frontend.h"
#include "graph.h"
#include "pool.h"
#include "schedule.h"
#include "testutil.h"

#include "mtr/exec.h"
#include "mtr/model.h"
#include "mtr/ops.h"
#include "mtr/rng.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- the case table ------------------------------------------------------ */

enum { IN_PARAM = 1, IN_IDS, IN_LABEL, IN_SCALAR, IN_STEP };

typedef struct {
    uint8_t kind; /* IN_*: PARAM (f32, differentiated), ids, f32 label, f32 (), train step () */
    uint8_t rank; /* 0, 1, 2 or 3 */
    int32_t rows, cols;
    int8_t same_as; /* >= 0: this input is the same tensor as input same_as */
    float lo, hi;   /* PARAM / LABEL values uniform in [lo, hi] */
    float away;     /* PARAM values keep |x| >= away (relu: no kink within eps) */
    int32_t lead;   /* rank 3: the first extent, (lead, rows, cols) */
} CaseInput;

/* The elements of a case input. */
static int64_t case_elems(const CaseInput *ci)
{
    int64_t n = (int64_t)ci->rows * (ci->rank >= 2 ? ci->cols : 1);
    return ci->rank == 3 ? n * ci->lead : n;
}

typedef struct {
    const char *op; /* the op's name in ops.def */
    const char *label;
    CaseInput in[MTR_MAX_IN];
    int32_t iattr[MTR_MAX_IATTR];
    double knob; /* knob 0's value when not 0 (loss_weight's weight, dropout's p), set in
                  * the session (the model holds 1); knob 1 is a seed, CASE_SEED */
    int32_t ids[8];
    float fattr0; /* the op's float attribute (layer_norm's epsilon) */
} GradCase;

#define P2(r, c)                                                                                   \
    {                                                                                              \
        IN_PARAM, 2, r, c, -1, -1.0f, 1.0f, 0.0f, 0                                                \
    }
#define P3(e, r, c)                                                                                \
    {                                                                                              \
        IN_PARAM, 3, r, c, -1, -1.0f, 1.0f, 0.0f, e                                                \
    }
#define MM(ta, tb)                                                                                 \
    {                                                                                              \
        "matmul", "matmul transpose=(" #ta "," #tb ")",                                            \
            {P2((ta) ? 4 : 3, (ta) ? 3 : 4), P2((tb) ? 2 : 4, (tb) ? 4 : 2)}, {ta, tb}, 0, {0}, 0, \
    }

static const GradCase cases[] = {
    /* repeated ids (1 three times) and an out-of-range id (7), read as row 0 */
    {"gather",
     "gather",
     {P2(5, 3), {IN_IDS, 1, 6, 1, -1, 0, 0, 0, 0}},
     {0},
     0,
     {1, 3, 1, 7, 4, 1},
     0},
    /* lists of 2 ids a row (-1 pads): one id, a repeated id, an empty list,
     * an out-of-range id (7, row 0) beside another */
    {"embed_pool",
     "embed_pool sum",
     {P2(5, 3), {IN_IDS, 2, 4, 2, -1, 0, 0, 0, 0}},
     {0},
     0,
     {1, -1, 3, 3, -1, -1, 7, 2},
     0},
    {"embed_pool",
     "embed_pool mean",
     {P2(5, 3), {IN_IDS, 2, 4, 2, -1, 0, 0, 0, 0}},
     {1},
     0,
     {1, -1, 3, 3, -1, -1, 7, 2},
     0},
    {"concat", "concat", {P2(4, 2), P2(4, 3)}, {0}, 0, {0}, 0},
    {"row_dot", "row_dot", {P2(5, 3), P2(5, 3)}, {0}, 0, {0}, 0},
    {"row_dot",
     "row_dot of a row with itself",
     {P2(4, 3), {IN_PARAM, 2, 4, 3, 0, 0, 0, 0, 0}},
     {0},
     0,
     {0},
     0},
    {"row_scale", "row_scale", {P2(5, 3), P2(5, 1)}, {0}, 0, {0}, 0},
    /* expert blocks: E experts (E,B,W), checked through a fixed gate's mix */
    {"expert_dense",
     "expert_dense over a shared input",
     {P2(4, 3), P3(2, 3, 5), P2(2, 5)},
     {2},
     0,
     {0},
     0},
    {"expert_dense",
     "expert_dense over each expert's own input",
     {P3(2, 4, 3), P3(2, 3, 5), P2(2, 5)},
     {2},
     0,
     {0},
     0},
    {"mix", "mix", {P3(3, 4, 5), P2(4, 3)}, {3}, 0, {0}, 0},
    /* one block of a gate that mixes several: experts 2..3 of 5 gate columns,
     * the other columns' gradient 0 */
    {"mix", "mix of gate columns 2..3 of 5", {P3(2, 4, 3), P2(4, 5)}, {2, 2, 5}, 0, {0}, 0},
    {"stack", "stack", {P3(2, 4, 3), P3(1, 4, 3)}, {2, 1}, 0, {0}, 0},
    {"sum_squares", "sum_squares", {P2(4, 3)}, {0}, 0, {0}, 0},
    {"sum_squares", "sum_squares of experts", {P3(2, 3, 2)}, {0}, 0, {0}, 0},
    {"uncertainty",
     "uncertainty",
     {{IN_PARAM, 0, 1, 1, -1, 0.5f, 3.0f, 0, 0}, {IN_PARAM, 1, 1, 1, -1, -1.0f, 1.0f, 0, 0}},
     {0},
     0,
     {0},
     0},
    {"prob_product",
     "prob_product",
     {{IN_PARAM, 2, 5, 1, -1, -3.0f, 3.0f, 0, 0}, {IN_PARAM, 2, 5, 1, -1, -3.0f, 3.0f, 0, 0}},
     {0},
     0,
     {0},
     0},
    {"bce_prob",
     "bce_prob",
     {{IN_PARAM, 2, 6, 1, -1, 0.1f, 0.9f, 0, 0}, {IN_LABEL, 1, 6, 1, -1, 0.0f, 1.0f, 0, 0}},
     {0},
     0,
     {0},
     0},
    MM(0, 0),
    MM(0, 1),
    MM(1, 0),
    MM(1, 1),
    {"bias_add",
     "bias_add",
     {P2(4, 3), {IN_PARAM, 1, 3, 1, -1, -1.0f, 1.0f, 0, 0}},
     {0},
     0,
     {0},
     0},
    {"relu", "relu", {{IN_PARAM, 2, 4, 5, -1, -1.0f, 1.0f, 0.2f, 0}}, {0}, 0, {0}, 0},
    /* x kept 0.2 from 0 and b within 0.05 of it: x + b has no kink within eps */
    {"bias_relu",
     "bias_relu",
     {{IN_PARAM, 2, 4, 5, -1, -1.0f, 1.0f, 0.2f, 0}, {IN_PARAM, 1, 5, 1, -1, -0.05f, 0.05f, 0, 0}},
     {0},
     0,
     {0},
     0},
    {"tanh", "tanh", {{IN_PARAM, 2, 4, 3, -1, -2.0f, 2.0f, 0, 0}}, {0}, 0, {0}, 0},
    {"sigmoid", "sigmoid", {{IN_PARAM, 2, 4, 3, -1, -3.0f, 3.0f, 0, 0}}, {0}, 0, {0}, 0},
    {"gelu", "gelu", {{IN_PARAM, 2, 4, 5, -1, -3.0f, 3.0f, 0, 0}}, {0}, 0, {0}, 0},
    {"softmax", "softmax", {{IN_PARAM, 2, 4, 5, -1, -2.0f, 2.0f, 0, 0}}, {0}, 0, {0}, 0},
    {"mse", "mse", {P2(5, 1), {IN_LABEL, 1, 5, 1, -1, -1.0f, 1.0f, 0, 0}}, {0}, 0, {0}, 0},
    {"bce_logits",
     "bce_logits",
     {{IN_PARAM, 2, 6, 1, -1, -3.0f, 3.0f, 0, 0}, {IN_LABEL, 1, 6, 1, -1, 0.0f, 1.0f, 0, 0}},
     {0},
     0,
     {0},
     0},
    {"inbatch_softmax_xent",
     "inbatch_softmax_xent",
     {{IN_PARAM, 2, 4, 4, -1, -2.0f, 2.0f, 0, 0}},
     {0},
     0,
     {0},
     0},
    {"scale", "scale", {P2(3, 4), {IN_SCALAR, 0, 1, 1, -1, 0, 0, 0, 0}}, {0}, 0, {0}, 0},
    {"loss_weight",
     "loss_weight",
     {{IN_PARAM, 0, 1, 1, -1, -1.0f, 1.0f, 0, 0}},
     {0}, /* iattr0 = knob 0, bound below */
     2.5,
     {0},
     0},
    {"add", "add", {P2(3, 4), P2(3, 4)}, {0}, 0, {0}, 0},
    /* fan-in: both inputs are one tensor, so its gradient is the sum of two */
    {"add", "add(x, x)", {P2(3, 4), {IN_PARAM, 2, 3, 4, 0, 0, 0, 0, 0}}, {0}, 0, {0}, 0},
    {"sum_all", "sum_all", {P2(3, 4)}, {0}, 0, {0}, 0},
    /* the fused retrieval loss on (query, candidate) without the score matrix */
    {"inbatch_softmax_xent_qc",
     "inbatch_softmax_xent_qc",
     {{IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0}, {IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0}},
     {0},
     0,
     {0},
     0},
    /* the same on distinct ids: each row its own id, so the grouping is the
     * identity here; grouping of repeated ids is checked by the whole model */
    {"inbatch_softmax_xent_ids",
     "inbatch_softmax_xent_ids",
     {{IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0},
      {IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0},
      {IN_IDS, 1, 5, 1, -1, 0, 0, 0, 0},
      {IN_IDS, 1, 5, 1, -1, 0, 0, 0, 0}},
     {0},
     0,
     {3, 0, 4, 1, 2},
     0},
    /* a dense layer's part on distinct ids: each row its own id (the plain
     * form), the part rows 2..4 of a kernel of 7 rows */
    /* repeated ids take the grouped form: only each id's first row is read, and
     * its gradient is the whole group's (the others' is 0), which the central
     * differences see exactly so */
    {"dense_ids",
     "dense_ids grouped",
     {P2(6, 3), P2(3, 4), {IN_IDS, 1, 6, 1, -1, 0, 0, 0, 0}},
     {0},
     0,
     {1, 1, 2, 1, 0, 2},
     0},
    /* the later parts: added to a base (whose gradient is dy), grouped and plain */
    {"dense_ids_acc",
     "dense_ids_acc grouped",
     {P2(6, 4), P2(6, 2), P2(5, 4), {IN_IDS, 1, 6, 1, -1, 0, 0, 0, 0}},
     {3},
     0,
     {4, 0, 4, 4, 0, 1},
     0},
    {"dense_ids_acc",
     "dense_ids_acc first=1",
     {P2(4, 3), P2(4, 2), P2(5, 3), {IN_IDS, 1, 4, 1, -1, 0, 0, 0, 0}},
     {1},
     0,
     {2, 0, 3, 1},
     0},
    /* the last part with its layer's bias and relu (b small, so that few sums sit near 0) */
    {"dense_ids_acc_bias_relu",
     "dense_ids_acc_bias_relu grouped",
     {P2(6, 4),
      P2(6, 2),
      P2(5, 4),
      {IN_IDS, 1, 6, 1, -1, 0, 0, 0, 0},
      {IN_PARAM, 1, 4, 1, -1, -0.1f, 0.1f, 0, 0}},
     {3},
     0,
     {4, 0, 4, 4, 0, 1},
     0},
    {"dense_ids",
     "dense_ids first=2",
     {P2(5, 3), P2(7, 4), {IN_IDS, 1, 5, 1, -1, 0, 0, 0, 0}},
     {2},
     0,
     {3, 0, 4, 1, 2},
     0},
    /* the in-batch softmax with its options: temperature 0.5 (knob 0), logq and
     * hit removal on (knob 1, the seed, is not 0); keys repeat (3), so a
     * column is left out; the candidates of a key differ, the per-row form */
    {"inbatch_softmax_xent_opt",
     "inbatch_softmax_xent_opt T=0.5 logq hits",
     {{IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0},
      {IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0},
      {IN_IDS, 1, 5, 1, -1, 0, 0, 0, 0},
      {IN_LABEL, 1, 5, 1, -1, -3.0f, -1.0f, 0, 0}},
     {0, 1, 1},
     0.5,
     {3, 0, 3, 1, 2},
     0},
    /* mixed negatives: the same options, 4 sampled rows (all used: knob 1, the
     * seed, is above 4) whose keys repeat the batch's, so hit removal masks
     * some of them; q, c and the negatives' rows all differentiated */
    {"inbatch_softmax_xent_mixed",
     "inbatch_softmax_xent_mixed T=0.5 logq hits U=4",
     {{IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0},
      {IN_PARAM, 2, 5, 3, -1, -1.5f, 1.5f, 0, 0},
      {IN_IDS, 1, 5, 1, -1, 0, 0, 0, 0},
      {IN_LABEL, 1, 5, 1, -1, -3.0f, -1.0f, 0, 0},
      {IN_PARAM, 2, 4, 3, -1, -1.5f, 1.5f, 0, 0},
      {IN_IDS, 1, 4, 1, -1, 0, 0, 0, 0},
      {IN_LABEL, 1, 4, 1, -1, -6.0f, -2.0f, 0, 0}},
     {0, 1, 1, 1, 0},
     0.5,
     {3, 0, 3, 1, 2},
     0},
    /* x, gain and bias all differentiated; Keras's epsilon, rows of 5 whose
     * variance (about 1.3) keeps the normalisation far from its eps floor */
    /* with its mask fixed (a fixed seed, step and salt) dropout is linear: the
     * differences see exactly the elements the backward keeps */
    {"dropout",
     "dropout p=0.3",
     {{IN_PARAM, 2, 5, 8, -1, -1.0f, 1.0f, 0, 0}, {IN_STEP, 0, 1, 1, -1, 0, 0, 0, 0}},
     {0, 1, 7}, /* p = knob 0, seed = knob 1, salt 7 */
     0.3,
     {0},
     0},
    {"layer_norm",
     "layer_norm",
     {{IN_PARAM, 2, 4, 5, -1, -2.0f, 2.0f, 0, 0},
      {IN_PARAM, 1, 5, 1, -1, 0.5f, 1.5f, 0, 0},
      {IN_PARAM, 1, 5, 1, -1, -1.0f, 1.0f, 0, 0}},
     {0},
     0,
     {0},
     1e-3f},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static const double CASE_SEED = 42, CASE_STEP = 5;
static const double CASE_EPS = 1e-2, CASE_ATOL = 1e-3, CASE_RTOL = 1e-2;
static const double MODEL_EPS = 1e-3, MODEL_ATOL = 2e-3, MODEL_RTOL = 2e-2;

/* ---- helpers ------------------------------------------------------------- */

static float uniform(Rng *r, float lo, float hi)
{
    return lo + (hi - lo) * rng_float(r);
}

static MtrShape case_shape(const CaseInput *ci)
{
    if (ci->rank == 0) return shape_scalar();
    if (ci->rank == 1)
        return shape_vec(dim_const(ci->rows), ci->kind == IN_IDS ? MTR_DT_I32 : MTR_DT_F32);
    if (ci->rank == 3)
        return (MtrShape){.rank = 3,
                          .dtype = MTR_DT_F32,
                          .dim = {dim_const(ci->lead), dim_const(ci->rows), dim_const(ci->cols)}};
    if (ci->kind == IN_IDS) /* a list of ids a row */
        return (MtrShape){
            .rank = 2, .dtype = MTR_DT_I32, .dim = {dim_const(ci->rows), dim_const(ci->cols)}};
    return shape_mat(dim_const(ci->rows), dim_const(ci->cols));
}

/* |fd - an| as a fraction of the tolerance atol + rtol max(|fd|, |an|). */
static double error_ratio(double fd, double an, double atol, double rtol)
{
    double big = fabs(fd) > fabs(an) ? fabs(fd) : fabs(an);
    if (!isfinite(fd) || !isfinite(an)) return INFINITY;
    return fabs(fd - an) / (atol + rtol * big);
}

static int close_enough(double fd, double an, double atol, double rtol)
{
    return error_ratio(fd, an, atol, rtol) <= 1.0;
}

/* The built test model: a "grad" program (loss and every gradient) and a
 * "forward" program (loss only). */
typedef struct {
    MtrModel *m;
    int32_t loss;
    int32_t param[MTR_MAX_IN], grad[MTR_MAX_IN];
    int32_t input[MTR_MAX_IN];
    int32_t u, w, c, g3;
    int n_param;
} Built;

/* Builds the module for case gc; returns 0 or -1 after printing why. */
static int build_case(const GradCase *gc, OpKind kind, Built *b)
{
    const OpInfo *info = op_info(kind);
    Module mod;
    Graph g;
    memset(b, 0, sizeof *b);
    b->u = b->w = b->c = b->g3 = -1;
    if (module_init(&mod, "gradcheck")) return -1;
    graph_init(&g, &mod);
    module_knob(&mod, MTR_KNOB_WEIGHT, "case.weight", 1.0);
    module_knob(&mod, MTR_KNOB_SEED, "case.seed", CASE_SEED);

    int32_t in[MTR_MAX_IN] = {-1, -1, -1, -1, -1, -1, -1};
    for (int i = 0; i < info->n_in; i++) {
        const CaseInput *ci = &gc->in[i];
        b->input[i] = -1;
        if (ci->same_as >= 0) {
            in[i] = in[ci->same_as];
            continue;
        }
        MtrRole role = ci->kind == IN_PARAM ? MTR_ROLE_PARAM : MTR_ROLE_INPUT;
        in[i] = module_tensorf(&mod, role, case_shape(ci), "x%d", i);
        if (ci->kind == IN_PARAM)
            b->param[b->n_param++] = in[i];
        else
            b->input[i] = in[i];
    }
    int32_t iattr[MTR_MAX_IATTR];
    memcpy(iattr, gc->iattr, sizeof iattr);
    int32_t y = graph_op(&g, kind, in, iattr, gc->fattr0, NULL, "y");
    int32_t loss = -1;
    if (y >= 0) {
        MtrShape ys = module_shape(&mod, y);
        if (ys.rank == 0) {
            b->c = module_tensor(&mod, "c", MTR_ROLE_INPUT, shape_scalar());
            int32_t sin[] = {y, b->c};
            loss = graph_op(&g, OP_SCALE, sin, NULL, 0, NULL, "loss");
        } else {
            if (ys.rank == 3) {
                /* an expert block (E,B,W) is mixed by a fixed gate into (B,W) first */
                int32_t e = ys.dim[0].k;
                b->g3 =
                    module_tensor(&mod, "g3", MTR_ROLE_INPUT, shape_mat(ys.dim[1], dim_const(e)));
                int32_t mi[] = {y, b->g3};
                int32_t ma[MTR_MAX_IATTR] = {e};
                y = graph_op(&g, OP_MIX, mi, ma, 0, NULL, "y_mixed");
                ys = module_shape(&mod, y);
            }
            assert_int_equal(ys.rank, 2);
            b->w = module_tensor(&mod, "w", MTR_ROLE_INPUT, shape_mat(ys.dim[1], dim_const(1)));
            b->u = module_tensor(&mod, "u", MTR_ROLE_INPUT, shape_mat(dim_const(1), ys.dim[0]));
            int32_t a1[] = {y, b->w};
            int32_t yw = graph_op(&g, OP_MATMUL, a1, NULL, 0, NULL, "yw");
            int32_t a2[] = {b->u, yw};
            int32_t uyw = graph_op(&g, OP_MATMUL, a2, NULL, 0, NULL, "uyw");
            int32_t a3[] = {uyw};
            loss = graph_op(&g, OP_SUM_ALL, a3, NULL, 0, NULL, "loss");
        }
    }
    int32_t *grads = NULL;
    uint32_t n_grads = 0;
    int rc = loss >= 0 ? autodiff_backward(&g, loss, &grads, &n_grads) : -1;
    MtrProgram progs[2];
    memset(progs, 0, sizeof progs);
    if (rc == 0) {
        int32_t outs[1 + MTR_MAX_IN];
        uint32_t n_outs = 0;
        outs[n_outs++] = loss;
        for (int i = 0; i < b->n_param; i++) {
            b->grad[i] = grads[b->param[i]];
            if (b->grad[i] < 0) {
                module_fail(&mod, "no gradient for parameter %d", i);
                rc = -1;
                break;
            }
            outs[n_outs++] = b->grad[i];
        }
        if (rc == 0) rc = schedule_program(&g, MTR_PROG_TRAIN, outs, n_outs, &progs[0]);
        if (rc == 0) rc = schedule_program(&g, MTR_PROG_EVAL, &loss, 1, &progs[1]);
    }
    free(grads);
    graph_free(&g);
    if (rc != 0 || mod.failed) {
        fprintf(stderr, "%s: building the check failed: %s\n", gc->label, mod.why);
        for (int p = 0; p < 2; p++) {
            free(progs[p].name), free(progs[p].ops), free(progs[p].lifetimes);
        }
        mtr_model_free(module_take(&mod));
        return -1;
    }
    b->m = module_take(&mod);
    b->m->programs = calloc(2, sizeof *b->m->programs);
    assert_non_null(b->m->programs);
    b->m->programs[0] = progs[0];
    b->m->programs[1] = progs[1];
    b->m->n_programs = 2;
    b->loss = loss;
    return 0;
}

/* Runs program p and returns the loss. */
static double run_loss(MtrSession *s, int p, int32_t loss)
{
    mtr_session_run(s, p, 1);
    return *(const float *)mtr_session_tensor(s, loss);
}

typedef struct {
    long elements, params;
    double worst; /* the largest |fd - an| / tolerance seen */
} Counts;

/* Checks one case; returns the number of failing elements. */
static int check_case(const GradCase *gc, OpKind kind, Counts *counts)
{
    Built b;
    if (build_case(gc, kind, &b)) return 1;
    MtrSession *s = NULL;
    MtrError err = {0};
    int64_t none = 1;
    if (mtr_session_new(b.m, &none, &s, &err) != MTR_OK) {
        fprintf(stderr, "%s: mtr_session_new: %s\n", gc->label, err.msg);
        mtr_model_free(b.m);
        return 1;
    }
    if (gc->knob != 0) mtr_session_set_knob(s, 0, gc->knob);

    Rng r;
    rng_seed(&r, 1234u + (uint64_t)kind);
    const OpInfo *info = op_info(kind);
    for (int i = 0; i < info->n_in; i++) {
        const CaseInput *ci = &gc->in[i];
        if (ci->same_as >= 0) continue;
        int32_t t = ci->kind == IN_PARAM ? -1 : b.input[i];
        int64_t n = case_elems(ci);
        if (ci->kind == IN_IDS) {
            int32_t *ids = mtr_session_tensor(s, t);
            for (int64_t k = 0; k < n; k++) ids[k] = gc->ids[k];
        } else if (ci->kind == IN_LABEL) {
            float *x = mtr_session_tensor(s, t);
            for (int64_t k = 0; k < n; k++) x[k] = uniform(&r, ci->lo, ci->hi);
        } else if (ci->kind == IN_SCALAR) {
            *(float *)mtr_session_tensor(s, t) = 0.7f;
        } else if (ci->kind == IN_STEP) {
            *(float *)mtr_session_tensor(s, t) = (float)CASE_STEP;
        }
    }
    for (int i = 0, pi = 0; i < info->n_in; i++) {
        const CaseInput *ci = &gc->in[i];
        if (ci->kind != IN_PARAM || ci->same_as >= 0) continue;
        float *x = mtr_session_tensor(s, b.param[pi++]);
        int64_t n = case_elems(ci);
        for (int64_t k = 0; k < n; k++) {
            float v = uniform(&r, ci->lo, ci->hi);
            if (ci->away > 0 && fabsf(v) < ci->away)
                v = v < 0 ? -ci->away - fabsf(v) : ci->away + v;
            x[k] = v;
        }
    }
    if (b.c >= 0) *(float *)mtr_session_tensor(s, b.c) = 1.3f;
    if (b.g3 >= 0) {
        float *g3 = mtr_session_tensor(s, b.g3);
        int64_t n3 = mtr_session_tensor_elems(s, b.g3, 1);
        for (int64_t k = 0; k < n3; k++) g3[k] = uniform(&r, 0.2f, 1.2f);
    }
    if (b.u >= 0) {
        float *u = mtr_session_tensor(s, b.u), *w = mtr_session_tensor(s, b.w);
        int64_t nu = mtr_session_tensor_elems(s, b.u, 1), nw = mtr_session_tensor_elems(s, b.w, 1);
        for (int64_t k = 0; k < nu; k++) u[k] = uniform(&r, 0.5f, 1.5f) * (k % 2 ? -1.0f : 1.0f);
        for (int64_t k = 0; k < nw; k++) w[k] = uniform(&r, 0.5f, 1.5f) * (k % 3 ? 1.0f : -1.0f);
    }

    /* Analytic gradients, all copied out before any other run overwrites them.
     * The differences are taken with program 'grad' too (its loss is computed by
     * the same forward ops); program 'forward' runs only at the end, checked
     * against it, so that an executor fault there cannot blur the verdicts on
     * the backward rules. */
    int bad = 0;
    double l_grad = run_loss(s, 0, b.loss);
    run_loss(s, 0, b.loss);
    float *an[MTR_MAX_IN];
    int64_t n_el[MTR_MAX_IN];
    for (int pi = 0; pi < b.n_param; pi++) {
        n_el[pi] = mtr_session_tensor_elems(s, b.param[pi], 1);
        an[pi] = malloc((size_t)n_el[pi] * sizeof *an[pi]);
        assert_non_null(an[pi]);
        memcpy(an[pi], mtr_session_tensor(s, b.grad[pi]), (size_t)n_el[pi] * sizeof *an[pi]);
    }
    for (int pi = 0; pi < b.n_param; pi++) {
        float *x = mtr_session_tensor(s, b.param[pi]);
        for (int64_t k = 0; k < n_el[pi]; k++) {
            float keep = x[k];
            x[k] = keep + (float)CASE_EPS;
            double hi = run_loss(s, 0, b.loss);
            x[k] = keep - (float)CASE_EPS;
            double lo = run_loss(s, 0, b.loss);
            x[k] = keep;
            /* the step actually taken in float, not the nominal one */
            double step = (double)(keep + (float)CASE_EPS) - (double)(keep - (float)CASE_EPS);
            double fd = (hi - lo) / step;
            double ratio = error_ratio(fd, an[pi][k], CASE_ATOL, CASE_RTOL);
            if (ratio > counts->worst) counts->worst = ratio;
            if (ratio > 1.0) {
                if (bad < 8)
                    fprintf(stderr, "%s: d%s[%lld]: analytic %.6g, central difference %.6g\n",
                            gc->label, b.m->tensors[b.param[pi]].name, (long long)k,
                            (double)an[pi][k], fd);
                bad++;
            }
            counts->elements++;
        }
        counts->params++;
    }
    for (int pi = 0; pi < b.n_param; pi++) free(an[pi]);
    /* Both programs read the same parameters and inputs: their losses must be
     * bit-identical (the same kernels on the same values). */
    run_loss(s, 0, b.loss);
    double l_fwd = run_loss(s, 1, b.loss);
    if (l_fwd != l_grad) {
        fprintf(stderr,
                "%s: program 'forward' computes loss %.9g, program 'grad' %.9g from the same "
                "parameters and inputs: the inputs filled through mtr_session_tensor are not "
                "where 'forward' reads them (see test_exec)\n",
                gc->label, l_fwd, l_grad);
        bad++;
    }
    mtr_session_free(s);
    mtr_model_free(b.m);
    return bad;
}

/* ---- part 1: every differentiable op ------------------------------------ */

/* The op of case c, or -1 (reported) when the table has no op of that name. */
static int case_kind(const GradCase *c, OpKind *kind)
{
    if (op_from_name(c->op, kind) == 0) return 0;
    fprintf(stderr, "note: case '%s' names op '%s', which ops.def does not have\n", c->label,
            c->op);
    return -1;
}

static void test_every_diff_op_has_a_case(void **state)
{
    (void)state;
    int missing = 0;
    for (int k = 0; k < OP_COUNT; k++) {
        int n = 0;
        for (size_t c = 0; c < N_CASES; c++)
            n += strcmp(cases[c].op, op_info((OpKind)k)->name) == 0;
        int diff = (op_info((OpKind)k)->flags & OPF_DIFF) != 0;
        if (diff && n == 0) {
            fprintf(stderr,
                    "op %s is differentiable (OPF_DIFF) but has no gradient check case: add one "
                    "to cases[] in tests/test_gradcheck.c\n",
                    op_info((OpKind)k)->name);
            missing++;
        }
        if (!diff && n > 0) {
            fprintf(stderr, "op %s has a gradient check case but no OPF_DIFF flag\n",
                    op_info((OpKind)k)->name);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

static void test_op_gradients(void **state)
{
    (void)state;
    Counts counts = {0, 0, 0.0};
    int bad = 0, ops = 0, n_cases = 0;
    for (int k = 0; k < OP_COUNT; k++) {
        int seen = 0;
        for (size_t c = 0; c < N_CASES; c++) {
            OpKind kind;
            if (case_kind(&cases[c], &kind) || kind != (OpKind)k) continue;
            seen = 1;
            n_cases++;
            Counts one = {0, 0, 0.0};
            int b = check_case(&cases[c], kind, &one);
            if (b) fprintf(stderr, "FAIL %s: %d element(s) off\n", cases[c].label, b);
            printf("  %-26s %4ld elements, worst error %.3f of its tolerance\n", cases[c].label,
                   one.elements, one.worst);
            counts.elements += one.elements;
            counts.params += one.params;
            if (one.worst > counts.worst) counts.worst = one.worst;
            bad += b;
        }
        ops += seen;
    }
    printf("gradcheck: %d ops, %d cases, %ld parameter tensors, %ld elements checked "
           "(eps %g, |fd - an| <= %g + %g max(|fd|, |an|); worst error %.3f of its tolerance)\n",
           ops, n_cases, counts.params, counts.elements, CASE_EPS, CASE_ATOL, CASE_RTOL,
           counts.worst);
    assert_true(counts.elements > 0);
    assert_int_equal(bad, 0);
}

/* ---- part 1b: softmax composed with a loss ------------------------------ */

/* loss = mse(softmax(x) w, label), x (5,4) and w (4,1) both parameters: the
 * gradient reaching softmax is a different number in each row and column, and
 * the row-sum term of softmax_grad must spread it over the row, as in a model
 * that mixes by softmax weights. Same differences and tolerance as part 1. */
static void test_softmax_into_loss(void **state)
{
    (void)state;
    Module mod;
    Graph g;
    assert_int_equal(module_init(&mod, "softmax_loss"), 0);
    graph_init(&g, &mod);
    int32_t x = module_tensor(&mod, "x", MTR_ROLE_PARAM, shape_mat(dim_const(5), dim_const(4)));
    int32_t w = module_tensor(&mod, "w", MTR_ROLE_PARAM, shape_mat(dim_const(4), dim_const(1)));
    int32_t label =
        module_tensor(&mod, "label", MTR_ROLE_INPUT, shape_vec(dim_const(5), MTR_DT_F32));
    int32_t a1[] = {x};
    int32_t y = graph_op(&g, OP_SOFTMAX, a1, NULL, 0, NULL, "y");
    int32_t a2[] = {y, w};
    int32_t pred = graph_op(&g, OP_MATMUL, a2, NULL, 0, NULL, "pred");
    int32_t a3[] = {pred, label};
    int32_t loss = graph_op(&g, OP_MSE, a3, NULL, 0, NULL, "loss");
    assert_true(loss >= 0);
    int32_t *grads = NULL;
    uint32_t n_grads = 0;
    assert_int_equal(autodiff_backward(&g, loss, &grads, &n_grads), 0);
    int32_t param[2] = {x, w}, grad[2] = {grads[x], grads[w]};
    free(grads);
    assert_true(grad[0] >= 0 && grad[1] >= 0);
    int32_t outs[] = {loss, grad[0], grad[1]};
    MtrModel *m = NULL;
    MtrSession *s = tu_one_program(&mod, &g, MTR_PROG_TRAIN, outs, 3, &m);
    Rng r;
    rng_seed(&r, 77);
    float *xv = mtr_session_tensor(s, x), *wv = mtr_session_tensor(s, w);
    float *lv = mtr_session_tensor(s, label);
    for (int k = 0; k < 20; k++) xv[k] = uniform(&r, -2.0f, 2.0f);
    for (int k = 0; k < 4; k++) wv[k] = uniform(&r, -2.0f, 2.0f);
    for (int k = 0; k < 5; k++) lv[k] = uniform(&r, -1.0f, 1.0f);
    run_loss(s, 0, loss);
    float an[2][20];
    memcpy(an[0], mtr_session_tensor(s, grad[0]), 20 * sizeof(float));
    memcpy(an[1], mtr_session_tensor(s, grad[1]), 4 * sizeof(float));
    double worst = 0.0;
    int bad = 0;
    for (int pi = 0; pi < 2; pi++) {
        float *v = mtr_session_tensor(s, param[pi]);
        for (int k = 0; k < (pi ? 4 : 20); k++) {
            float keep = v[k];
            v[k] = keep + (float)CASE_EPS;
            double hi = run_loss(s, 0, loss);
            v[k] = keep - (float)CASE_EPS;
            double lo = run_loss(s, 0, loss);
            v[k] = keep;
            double fd = (hi - lo) / ((double)(keep + (float)CASE_EPS) - (keep - (float)CASE_EPS));
            double ratio = error_ratio(fd, an[pi][k], CASE_ATOL, CASE_RTOL);
            if (ratio > worst) worst = ratio;
            if (ratio > 1.0) {
                fprintf(stderr,
                        "softmax -> matmul -> mse: d%s[%d]: analytic %.6g, central "
                        "difference %.6g\n",
                        pi ? "w" : "x", k, (double)an[pi][k], fd);
                bad++;
            }
        }
    }
    printf("softmax -> matmul -> mse: 24 elements, worst error %.3f of its tolerance\n", worst);
    mtr_session_free(s);
    mtr_model_free(m);
    assert_int_equal(bad, 0);
}

/* ---- part 2: the whole movielens model at small sizes ------------------- */

static const char small_movielens[] =
    "model movielens_small\n"
    "\n"
    "input user_id     : string\n"
    "input movie_title : string\n"
    "label user_rating : float\n"
    "\n"
    "tower user  = user_id     -> lookup -> embedding(4)\n"
    "tower movie = movie_title -> lookup -> embedding(4)\n"
    "\n"
    "head rating = concat(user, movie) -> dense(8, relu) -> dense(4, relu) -> dense(1)\n"
    "\n"
    "task rating    = ranking(rating, user_rating) loss mse metrics rmse weight 1.0\n"
    "task retrieval = retrieval(user, movie) metrics top_k(1, 5) weight 1.0\n"
    "\n"
    "train {\n"
    "  optimizer adagrad(lr = 0.1)\n"
    "  batch 8\n"
    "  epochs 1\n"
    "  seed 42\n"
    "  split 0.8\n"
    "}\n";

static int64_t symbol_value(const char *sym)
{
    if (strcmp(sym, "batch") == 0) return 8;
    if (strcmp(sym, "vocab.user_id") == 0) return 6;
    if (strcmp(sym, "vocab.movie_title") == 0) return 7;
    if (strcmp(sym, "items") == 0) return 7;
    if (strcmp(sym, "k") == 0) return 3;
    return -1;
}

/* Fills every input of program p from its column: ids in range (users 1..5,
 * movies 1..6, repeats included), ratings 1..5, and a derived label 0/1. */
static void fill_model_inputs(const MtrModel *m, MtrSession *s, int p)
{
    const int32_t users[8] = {1, 2, 3, 1, 5, 4, 2, 1};
    const int32_t movies[8] = {3, 1, 6, 2, 5, 4, 1, 6};
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *x = &m->tensors[t];
        if (x->role != MTR_ROLE_INPUT ||
            tu_find_input(m, p, x->source, m->columns[x->source_column].name) != (int32_t)t)
            continue;
        const MtrColumn *c = &m->columns[x->source_column];
        void *d = mtr_session_tensor(s, (int32_t)t);
        for (int i = 0; i < 8; i++) {
            if (strcmp(c->name, "user_id") == 0)
                ((int32_t *)d)[i] = users[i];
            else if (strcmp(c->name, "movie_title") == 0)
                ((int32_t *)d)[i] = movies[i];
            else if (c->derived_from >= 0)
                ((float *)d)[i] = (float)((i * 3) % 5 >= 2);
            else
                ((float *)d)[i] = (float)(1 + (i * 3) % 5);
        }
    }
}

/* Compares every parameter's gradient in program p of session s (learning rate
 * 0, so that runs move nothing) with central differences of the loss. Adds to
 * *checked, *skipped (a ReLU kink within eps) and *worst; returns the
 * elements out of tolerance. */
static long check_model_gradients(const MtrModel *m, MtrSession *s, int p, const char *what,
                                  long *checked, long *skipped, double *worst)
{
    int32_t t_loss = mtr_program_output(m, p, MTR_OUT_LOSS, -1);
    assert_true(t_loss >= 0);
    const MtrProgram *prog = &m->programs[p];
    /* each parameter's gradient: dense, or an embedding table's rows and ids */
    int32_t params[64], grads[64], row_ids[64];
    int n_params = 0;
    for (uint32_t i = 0; i < prog->n_outputs; i++) {
        const MtrOutput *o = &prog->outputs[i];
        if (o->role != MTR_OUT_GRADIENT && o->role != MTR_OUT_GRADIENT_ROWS) continue;
        assert_true(n_params < 64);
        params[n_params] = o->param;
        grads[n_params] = o->tensor;
        row_ids[n_params] = -1;
        for (uint32_t j = 0; j < prog->n_outputs && o->role == MTR_OUT_GRADIENT_ROWS; j++)
            if (prog->outputs[j].role == MTR_OUT_GRADIENT_IDS && prog->outputs[j].param == o->param)
                row_ids[n_params] = prog->outputs[j].tensor;
        assert_true(o->role == MTR_OUT_GRADIENT || row_ids[n_params] >= 0);
        n_params++;
    }
    int n_model_params = 0;
    for (uint32_t t = 0; t < m->n_tensors; t++)
        n_model_params += m->tensors[t].role == MTR_ROLE_PARAM;
    assert_int_equal(n_params, n_model_params);
    mtr_session_run(s, p, 8);
    double base = *(const float *)mtr_session_tensor(s, t_loss);
    float *an[64];
    int64_t n_el[64];
    for (int i = 0; i < n_params; i++) {
        n_el[i] = mtr_session_tensor_elems(s, params[i], 8);
        an[i] = malloc((size_t)n_el[i] * sizeof *an[i]);
        assert_non_null(an[i]);
        if (row_ids[i] < 0) {
            memcpy(an[i], mtr_session_tensor(s, grads[i]), (size_t)n_el[i] * sizeof *an[i]);
            continue;
        }
        /* a sparse gradient: its rows scattered into the table's shape */
        const float *rows = mtr_session_tensor(s, grads[i]);
        const int32_t *ids = mtr_session_tensor(s, row_ids[i]);
        int64_t d = mtr_session_tensor_elems(s, grads[i], 8) / 8;
        assert_int_equal(tu_scatter_rows(rows, ids, 8, d, an[i], n_el[i]), 0);
    }
    long bad = 0, w_checked = 0, w_skipped = 0;
    for (int i = 0; i < n_params; i++) {
        float *x = mtr_session_tensor(s, params[i]);
        for (int64_t k = 0; k < n_el[i]; k++) {
            float keep = x[k];
            float xp = keep + (float)MODEL_EPS, xm = keep - (float)MODEL_EPS;
            x[k] = xp;
            mtr_session_run(s, p, 8);
            double hi = *(const float *)mtr_session_tensor(s, t_loss);
            x[k] = xm;
            mtr_session_run(s, p, 8);
            double lo = *(const float *)mtr_session_tensor(s, t_loss);
            x[k] = keep;
            assert_true(x[k] == keep); /* lr = 0: the updates moved nothing */
            double fd = (hi - lo) / ((double)xp - (double)xm);
            double right = (hi - base) / ((double)xp - keep);
            double left = (base - lo) / (keep - (double)xm);
            if (!close_enough(left, right, MODEL_ATOL, MODEL_RTOL) &&
                !close_enough(fd, an[i][k], MODEL_ATOL, MODEL_RTOL)) {
                w_skipped++; /* a ReLU kink lies within eps: no derivative to compare */
                continue;
            }
            double ratio = error_ratio(fd, an[i][k], MODEL_ATOL, MODEL_RTOL);
            if (ratio > *worst) *worst = ratio;
            if (ratio > 1.0) {
                if (bad < 10)
                    fprintf(stderr, "%s: d%s[%lld]: analytic %.6g, central difference %.6g\n", what,
                            m->tensors[params[i]].name, (long long)k, (double)an[i][k], fd);
                bad++;
            }
            w_checked++;
        }
    }
    for (int i = 0; i < n_params; i++) free(an[i]);
    printf("%s: loss %.6g, %d parameters, %ld elements checked, %ld skipped at a ReLU kink\n", what,
           base, n_params, w_checked, w_skipped);
    assert_true(w_skipped * 10 <= w_checked + w_skipped);
    *checked += w_checked;
    *skipped += w_skipped;
    return bad;
}

/* A small model of the text, its parameters of order one (not the tiny
 * initial embeddings, so that the ReLUs' inputs sit mostly away from their
 * kink), its inputs filled, its learning rate 0. */
static MtrSession *small_session(const char *name, const char *text, MtrModel **out)
{
    MtrModel *m = tu_compile(name, text);
    assert_non_null(m);
    int64_t values[16];
    assert_true(m->n_symbols <= 16);
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        values[i] = symbol_value(m->symbols[i]);
        assert_true(values[i] > 0);
    }
    MtrSession *s = NULL;
    MtrError err = {0};
    if (mtr_session_new(m, values, &s, &err) != MTR_OK) fail_msg("mtr_session_new: %s", err.msg);
    Rng r;
    rng_seed(&r, 42);
    mtr_session_init_params(s, &r);
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].role != MTR_ROLE_PARAM) continue;
        float *x = mtr_session_tensor(s, (int32_t)t);
        int64_t n = mtr_session_tensor_elems(s, (int32_t)t, 8);
        for (int64_t k = 0; k < n; k++) x[k] = uniform(&r, -0.6f, 0.6f);
    }
    mtr_session_set_knob(s, mtr_model_knob(m, MTR_KNOB_LR), 0.0);
    fill_model_inputs(m, s, mtr_model_program(m, MTR_PROG_TRAIN));
    *out = m;
    return s;
}

static void test_whole_model_gradients(void **state)
{
    (void)state;
    MtrModel *m = NULL;
    MtrSession *s = small_session("movielens_small.mtr", small_movielens, &m);
    int p = mtr_model_program(m, MTR_PROG_TRAIN);
    int k_rating = mtr_model_find_knob(m, "rating.weight");
    int k_retr = mtr_model_find_knob(m, "retrieval.weight");
    assert_true(p >= 0 && k_rating >= 0 && k_retr >= 0);
    static const double weights[3][2] = {{1, 0}, {0, 1}, {1, 1}};
    long checked = 0, skipped = 0, bad = 0;
    double worst = 0.0;
    for (int wi = 0; wi < 3; wi++) {
        char what[64];
        snprintf(what, sizeof what, "whole model, weights (%g,%g)", weights[wi][0], weights[wi][1]);
        mtr_session_set_knob(s, k_rating, weights[wi][0]);
        mtr_session_set_knob(s, k_retr, weights[wi][1]);
        bad += check_model_gradients(m, s, p, what, &checked, &skipped, &worst);
    }
    printf("whole model: %ld elements checked over 3 weight settings, %ld skipped (eps %g, "
           "|fd - an| <= %g + %g max(|fd|, |an|); worst error %.3f of its tolerance)\n",
           checked, skipped, MODEL_EPS, MODEL_ATOL, MODEL_RTOL, worst);
    mtr_session_free(s);
    mtr_model_free(m);
    assert_int_equal(bad, 0);
}

/* The same for the multi-task blocks: MMoE (one experts block, a gate per
 * head) and PLE (shared and own blocks, a second level reading a mix), with a
 * derived label for a bce task and a retrieval task beside. */
static const char small_mmoe[] =
    "model mmoe_small\n"
    "input user_id : string\ninput movie_title : string\nlabel user_rating : float\n"
    "label liked = user_rating >= 3\n"
    "tower user = user_id -> lookup -> embedding(4)\n"
    "tower movie = movie_title -> lookup -> embedding(4)\n"
    "experts shared = concat(user, movie) -> 3 x (dense(5, tanh) -> dense(4, relu))\n"
    "head rating = mix(shared) -> dense(1)\n"
    "head like = mix(shared) -> dense(1)\n"
    "task rating = ranking(rating, user_rating) loss mse\n"
    "task liked = ranking(like, liked) loss bce\n"
    "task retrieval = retrieval(user, movie)\n"
    "train { optimizer adagrad(lr = 0.1) batch 8 }\n";

static const char small_ple[] =
    "model ple_small\n"
    "input user_id : string\ninput movie_title : string\nlabel user_rating : float\n"
    "label liked = user_rating >= 3\n"
    "tower user = user_id -> lookup -> embedding(4)\n"
    "tower movie = movie_title -> lookup -> embedding(4)\n"
    "experts shared = concat(user, movie) -> 2 x dense(4, tanh)\n"
    "experts own_r = concat(user, movie) -> 1 x dense(4, tanh)\n"
    "experts own_l = concat(user, movie) -> 2 x dense(4, tanh)\n"
    "experts upper = mix(shared, own_r, own_l) -> 2 x dense(3, tanh)\n"
    "head rating = mix(upper) -> dense(1)\n"
    "head like = mix(shared, own_l) -> dense(1)\n"
    "task rating = ranking(rating, user_rating) loss mse\n"
    "task liked = ranking(like, liked) loss bce\n"
    "train { optimizer adagrad(lr = 0.1) batch 8 }\n";

static void test_expert_model_gradients(void **state)
{
    (void)state;
    const char *names[] = {"mmoe_small.mtr", "ple_small.mtr"};
    const char *texts[] = {small_mmoe, small_ple};
    long bad = 0;
    for (int k = 0; k < 2; k++) {
        MtrModel *m = NULL;
        MtrSession *s = small_session(names[k], texts[k], &m);
        long checked = 0, skipped = 0;
        double worst = 0.0;
        bad += check_model_gradients(m, s, mtr_model_program(m, MTR_PROG_TRAIN), names[k], &checked,
                                     &skipped, &worst);
        printf("%s: worst error %.3f of its tolerance\n", names[k], worst);
        mtr_session_free(s);
        mtr_model_free(m);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_diff_op_has_a_case),
        cmocka_unit_test(test_op_gradients),
        cmocka_unit_test(test_softmax_into_loss),
        cmocka_unit_test(test_whole_model_gradients),
        cmocka_unit_test(test_expert_model_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
