/* Shape rules: for each op, the output shapes its inputs imply, and the checks
 * that reject inputs of the wrong rank, type or extent. Shared by mtrc (symbolic
 * extents) and libmtr (bound extents). */
#include "mtr/shapes.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int shape_dim_eq(MtrDim a, MtrDim b)
{
    return a.sym == b.sym && a.k == b.k;
}

int shape_eq(const MtrShape *a, const MtrShape *b)
{
    if (a->rank != b->rank || a->dtype != b->dtype) return 0;
    for (int i = 0; i < a->rank; i++)
        if (!shape_dim_eq(a->dim[i], b->dim[i])) return 0;
    return 1;
}

static void dim_str(MtrDim d, char *const *symbols, char *buf, size_t n)
{
    if (d.sym < 0)
        snprintf(buf, n, "%d", d.k);
    else if (d.k == 1)
        snprintf(buf, n, "%s", symbols ? symbols[d.sym] : "?");
    else
        snprintf(buf, n, "%d*%s", d.k, symbols ? symbols[d.sym] : "?");
}

const char *shape_str(const MtrShape *s, char *const *symbols, char *buf, size_t n)
{
    char d[MTR_MAX_RANK][96];
    const char *dt = s->dtype == MTR_DT_I32 ? "i32" : "f32";
    for (int i = 0; i < s->rank && i < MTR_MAX_RANK; i++)
        dim_str(s->dim[i], symbols, d[i], sizeof d[i]);
    if (s->rank == 0)
        snprintf(buf, n, "() %s", dt);
    else if (s->rank == 1)
        snprintf(buf, n, "(%s) %s", d[0], dt);
    else if (s->rank == 2)
        snprintf(buf, n, "(%s, %s) %s", d[0], d[1], dt);
    else
        snprintf(buf, n, "(%s, %s, %s) %s", d[0], d[1], d[2], dt);
    return buf;
}

MtrShape shape_of_tensor(const MtrTensor *t, const int64_t *values)
{
    MtrShape s = {.rank = t->rank, .dtype = t->dtype};
    for (int i = 0; i < t->rank && i < MTR_MAX_RANK; i++) {
        s.dim[i] = t->dim[i];
        if (values && t->dim[i].sym >= 0) {
            s.dim[i].k = (int32_t)(t->dim[i].k * values[t->dim[i].sym]);
            s.dim[i].sym = -1;
        }
    }
    return s;
}

static int fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

static MtrShape scalar(void)
{
    return (MtrShape){.rank = 0, .dtype = MTR_DT_F32};
}

static MtrShape matrix(MtrDim r, MtrDim c)
{
    return (MtrShape){.rank = 2, .dtype = MTR_DT_F32, .dim = {r, c}};
}

static MtrShape vector(MtrDim r, uint8_t dtype)
{
    return (MtrShape){.rank = 1, .dtype = dtype, .dim = {r, {-1, 1}}};
}

/* Checks that input i is a float tensor of the given rank. */
static int want(const MtrShape *in, int i, int rank, uint8_t dtype, char *why, size_t n)
{
    if (in[i].rank != rank)
        return fail(why, n, "input %d has rank %d, expected %d", i + 1, in[i].rank, rank);
    if (in[i].dtype != dtype)
        return fail(why, n, "input %d is %s, expected %s", i + 1,
                    in[i].dtype == MTR_DT_I32 ? "i32" : "f32", dtype == MTR_DT_I32 ? "i32" : "f32");
    return 0;
}

static int same_as(const MtrShape *in, int i, int j, char *why, size_t n)
{
    if (!shape_eq(&in[i], &in[j]))
        return fail(why, n, "inputs %d and %d differ in shape", i + 1, j + 1);
    return 0;
}

static int dims_eq(MtrDim a, MtrDim b, const char *what, char *why, size_t n)
{
    if (!shape_dim_eq(a, b)) return fail(why, n, "%s differ", what);
    return 0;
}

int shape_gather(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    (void)iattr;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 1, MTR_DT_I32, why, n)) return -1;
    out[0] = matrix(in[1].dim[0], in[0].dim[1]);
    return 0;
}

int shape_embed_pool(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    if (iattr[0] != 0 && iattr[0] != 1) return fail(why, n, "mean must be 0 or 1");
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_I32, why, n)) return -1;
    out[0] = matrix(in[1].dim[0], in[0].dim[1]);
    return 0;
}

int shape_embed_pool_grad(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why,
                          size_t n)
{
    if (iattr[0] != 0 && iattr[0] != 1) return fail(why, n, "mean must be 0 or 1");
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_I32, why, n) ||
        want(in, 2, 2, MTR_DT_F32, why, n))
        return -1;
    if (dims_eq(in[0].dim[0], in[1].dim[0], "rows of the gradient and of the ids", why, n) ||
        dims_eq(in[0].dim[1], in[2].dim[1], "columns of the gradient and of the table", why, n))
        return -1;
    out[0] = in[2];
    return 0;
}

int shape_scatter_add(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    (void)iattr;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 1, MTR_DT_I32, why, n) ||
        want(in, 2, 2, MTR_DT_F32, why, n))
        return -1;
    if (dims_eq(in[0].dim[0], in[1].dim[0], "rows of the gradient and of the ids", why, n) ||
        dims_eq(in[0].dim[1], in[2].dim[1], "columns of the gradient and of the table", why, n))
        return -1;
    out[0] = in[2];
    return 0;
}

int shape_concat(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    (void)iattr;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_F32, why, n)) return -1;
    if (dims_eq(in[0].dim[0], in[1].dim[0], "rows of the two inputs", why, n)) return -1;
    if (in[0].dim[1].sym != in[1].dim[1].sym)
        return fail(why, n, "columns of different symbols cannot be added");
    int64_t width = (int64_t)in[0].dim[1].k + in[1].dim[1].k;
    if (width > INT32_MAX) return fail(why, n, "columns %lld: too wide", (long long)width);
    MtrDim c = {in[0].dim[1].sym, (int32_t)width};
    out[0] = matrix(in[0].dim[0], c);
    return 0;
}

int shape_row_dot(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    (void)iattr;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || same_as(in, 0, 1, why, n)) return -1;
    out[0] = matrix(in[0].dim[0], (MtrDim){-1, 1});
    return 0;
}

int shape_row_scale(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    (void)iattr;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_F32, why, n)) return -1;
    if (dims_eq(in[0].dim[0], in[1].dim[0], "rows of x and of the scales", why, n)) return -1;
    if (!shape_dim_eq(in[1].dim[1], (MtrDim){-1, 1}))
        return fail(why, n, "the scales must be one column");
    out[0] = in[0];
    return 0;
}

int shape_slice_cols(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    if (want(in, 0, 2, MTR_DT_F32, why, n)) return -1;
    if (in[0].dim[1].sym >= 0) return fail(why, n, "slice of a symbolic width");
    if (iattr[0] < 0 || iattr[1] <= 0 || (int64_t)iattr[0] + iattr[1] > in[0].dim[1].k)
        return fail(why, n, "columns %d..%lld outside a width of %d", iattr[0],
                    (long long)iattr[0] + iattr[1], in[0].dim[1].k);
    out[0] = matrix(in[0].dim[0], (MtrDim){-1, iattr[1]});
    return 0;
}

int shape_matmul(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_F32, why, n)) return -1;
    MtrDim m = in[0].dim[iattr[0] ? 1 : 0], ka = in[0].dim[iattr[0] ? 0 : 1];
    MtrDim kb = in[1].dim[iattr[1] ? 1 : 0], nn = in[1].dim[iattr[1] ? 0 : 1];
    if (dims_eq(ka, kb, "inner extents of the product", why, n)) return -1;
    out[0] = matrix(m, nn);
    return 0;
}

int shape_bias_add(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    (void)iattr;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 1, MTR_DT_F32, why, n)) return -1;
    if (dims_eq(in[0].dim[1], in[1].dim[0], "columns and bias length", why, n)) return -1;
    out[0] = in[0];
    return 0;
}

int shape_sum_rows(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t n)
{
    (void)iattr;
    if (want(in, 0, 2, MTR_DT_F32, why, n)) return -1;
    out[0] = vector(in[0].dim[1], MTR_DT_F32);
    return 0;
}

/* An elementwise op: one float input, same shape out. */
static int unary(const MtrShape *in, MtrShape *out, char *why, size_t n)
{
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "input 1 is not f32");
    out[0] = in[0];
    return 0;
}

/* An activation's gradient: (dy, y) of one shape. */
static int unary_grad(const MtrShape *in, MtrShape *out, char *why, size_t n)
{
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "input 1 is not f32");
    if (same_as(in, 0, 1, why, n)) return -1;
    out[0] = in[0];
    return 0;
}

int shape_relu(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary(in, out, why, n);
}
int shape_tanh(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary(in, out, why, n);
}
int shape_sigmoid(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary(in, out, why, n);
}
int shape_gelu(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary(in, out, why, n);
}
int shape_relu_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary_grad(in, out, why, n);
}
int shape_tanh_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary_grad(in, out, why, n);
}
int shape_sigmoid_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary_grad(in, out, why, n);
}
int shape_gelu_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return unary_grad(in, out, why, n);
}

/* A pointwise loss: prediction (B,1) against label (B). */
static int loss_inputs(const MtrShape *in, char *why, size_t n)
{
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 1, MTR_DT_F32, why, n)) return -1;
    if (!shape_dim_eq(in[0].dim[1], (MtrDim){-1, 1}))
        return fail(why, n, "the prediction must have one column");
    return dims_eq(in[0].dim[0], in[1].dim[0], "rows of prediction and label", why, n);
}

static int loss_grad_inputs(const MtrShape *in, MtrShape *out, char *why, size_t n)
{
    if (loss_inputs(in, why, n) || want(in, 2, 0, MTR_DT_F32, why, n)) return -1;
    out[0] = in[0];
    return 0;
}

int shape_mse(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (loss_inputs(in, why, n)) return -1;
    out[0] = scalar();
    return 0;
}
int shape_bce_logits(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (loss_inputs(in, why, n)) return -1;
    out[0] = scalar();
    return 0;
}
int shape_mse_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return loss_grad_inputs(in, out, why, n);
}
int shape_bce_logits_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return loss_grad_inputs(in, out, why, n);
}

int shape_bce_prob(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (loss_inputs(in, why, n)) return -1;
    out[0] = scalar();
    return 0;
}

int shape_bce_prob_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return loss_grad_inputs(in, out, why, n);
}

/* prob_product(a (B,1), b (B,1)) -> (B,1), and its gradient (dy, a, b) -> da, db */
int shape_prob_product(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || same_as(in, 0, 1, why, n)) return -1;
    if (!shape_dim_eq(in[0].dim[1], (MtrDim){-1, 1}))
        return fail(why, n, "a product of probabilities reads two logits of one column");
    out[0] = in[0];
    return 0;
}

int shape_prob_product_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                            size_t n)
{
    if (shape_prob_product(in + 1, a, out, why, n) || same_as(in, 0, 1, why, n)) return -1;
    out[1] = out[0];
    return 0;
}

int shape_inbatch_softmax_xent(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                               size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n)) return -1;
    if (dims_eq(in[0].dim[0], in[0].dim[1], "rows and columns of the score matrix", why, n))
        return -1;
    out[0] = scalar();
    out[1] = in[0];
    return 0;
}

/* The rows of scores inbatch_softmax_xent_qc makes at a time. */
#define QC_ROWS 256

int shape_inbatch_softmax_xent_qc(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                                  size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || same_as(in, 0, 1, why, n)) return -1;
    out[0] = scalar();
    out[1] = in[0];
    out[2] = in[1];
    out[3] = matrix((MtrDim){-1, QC_ROWS}, in[0].dim[0]);
    return 0;
}

/* The outputs of a fused softmax that keeps per_width x D floats a query in its
 * workspace: loss, dq, dc and the workspace, for a constant D of at most 4096. */
static int fused_softmax_outputs(const MtrShape *in, int32_t per_width, MtrShape *out, char *why,
                                 size_t n)
{
    if (in[0].dim[1].sym >= 0 || in[0].dim[1].k > 4096)
        return fail(why, n, "the embedding width must be a constant of at most 4096");
    out[0] = scalar();
    out[1] = in[0];
    out[2] = in[1];
    out[3] = matrix((MtrDim){-1, QC_ROWS + per_width * in[0].dim[1].k + 6}, in[0].dim[0]);
    return 0;
}

int shape_inbatch_softmax_xent_opt(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                                   size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || same_as(in, 0, 1, why, n) ||
        want(in, 2, 1, MTR_DT_I32, why, n) || want(in, 3, 1, MTR_DT_F32, why, n))
        return -1;
    if (dims_eq(in[1].dim[0], in[2].dim[0], "rows of candidates and of their keys", why, n) ||
        dims_eq(in[1].dim[0], in[3].dim[0], "rows of candidates and of their logq", why, n))
        return -1;
    return fused_softmax_outputs(in, 2, out, why, n);
}

int shape_inbatch_softmax_xent_mixed(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                                     size_t n)
{
    if (shape_inbatch_softmax_xent_opt(in, a, out, why, n)) return -1;
    if (want(in, 4, 2, MTR_DT_F32, why, n) || want(in, 5, 1, MTR_DT_I32, why, n) ||
        want(in, 6, 1, MTR_DT_F32, why, n))
        return -1;
    if (dims_eq(in[0].dim[1], in[4].dim[1], "widths of queries and of negatives", why, n) ||
        dims_eq(in[4].dim[0], in[5].dim[0], "rows of negatives and of their keys", why, n) ||
        dims_eq(in[4].dim[0], in[6].dim[0], "rows of negatives and of their logq", why, n) ||
        dims_eq(in[0].dim[0], in[1].dim[0], "rows of queries and of candidates", why, n))
        return -1;
    out[3] = in[4];
    out[4] = matrix((MtrDim){-1, QC_ROWS}, in[0].dim[0]);
    out[5] = matrix((MtrDim){-1, QC_ROWS}, in[4].dim[0]);
    return 0;
}

int shape_inbatch_softmax_xent_ids(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                                   size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || same_as(in, 0, 1, why, n) ||
        want(in, 2, 1, MTR_DT_I32, why, n) || want(in, 3, 1, MTR_DT_I32, why, n))
        return -1;
    if (dims_eq(in[0].dim[0], in[2].dim[0], "rows of queries and of their ids", why, n) ||
        dims_eq(in[1].dim[0], in[3].dim[0], "rows of candidates and of their ids", why, n))
        return -1;
    return fused_softmax_outputs(in, 6, out, why, n);
}

int shape_scale(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "input 1 is not f32");
    if (want(in, 1, 0, MTR_DT_F32, why, n)) return -1;
    out[0] = in[0];
    return 0;
}

int shape_loss_weight(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want(in, 0, 0, MTR_DT_F32, why, n)) return -1;
    out[0] = scalar();
    return 0;
}

int shape_add(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "input 1 is not f32");
    if (same_as(in, 0, 1, why, n)) return -1;
    out[0] = in[0];
    return 0;
}

int shape_fill(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)in, (void)a;
    if (out[0].dtype != MTR_DT_F32) return fail(why, n, "fill makes f32 tensors only");
    return 0;
}

/* An optimizer update: param and grad (and state) of one shape. */
static int update_inputs(const MtrShape *in, int n_same, char *why, size_t n)
{
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "parameter is not f32");
    for (int i = 1; i < n_same; i++)
        if (same_as(in, 0, i, why, n)) return -1;
    return 0;
}

int shape_sgd_update(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a, (void)out;
    return update_inputs(in, 2, why, n);
}
int shape_adagrad_update(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a, (void)out;
    return update_inputs(in, 3, why, n);
}
int shape_adam_update(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a, (void)out;
    if (update_inputs(in, 4, why, n)) return -1;
    return want(in, 4, 0, MTR_DT_F32, why, n);
}
int shape_embedding_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    if (shape_scatter_add(in, a, out, why, n)) return -1;
    out[0] = in[0];
    out[1] = (MtrShape){.rank = 1, .dtype = MTR_DT_I32, .dim = {in[1].dim[0]}};
    out[2] = (MtrShape){.rank = 2, .dtype = MTR_DT_I32, .dim = {in[1].dim[0], {-1, 2}}};
    return 0;
}

/* A row-wise update: param (V,D), rows (B,D) of param's width, idx (B) i32, and
 * n_state more tensors of param's shape. */
static int update_rows_inputs(const MtrShape *in, int n_state, char *why, size_t n)
{
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_F32, why, n) ||
        want(in, 2, 1, MTR_DT_I32, why, n))
        return -1;
    if (dims_eq(in[0].dim[1], in[1].dim[1], "columns of the parameter and of its rows", why, n) ||
        dims_eq(in[1].dim[0], in[2].dim[0], "rows of the gradient and of their ids", why, n))
        return -1;
    for (int i = 3; i < 3 + n_state; i++)
        if (same_as(in, 0, i, why, n)) return -1;
    return 0;
}

int shape_sgd_update_rows(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a, (void)out;
    return update_rows_inputs(in, 0, why, n);
}

int shape_adagrad_update_rows(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                              size_t n)
{
    (void)a, (void)out;
    return update_rows_inputs(in, 1, why, n);
}

int shape_adam_update_rows(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a, (void)out;
    if (update_rows_inputs(in, 2, why, n)) return -1;
    return want(in, 5, 0, MTR_DT_F32, why, n);
}

int shape_step_inc(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a, (void)out;
    return want(in, 0, 0, MTR_DT_F32, why, n);
}

int shape_retrieval_rank(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_F32, why, n) ||
        want(in, 2, 1, MTR_DT_I32, why, n))
        return -1;
    if (dims_eq(in[0].dim[1], in[1].dim[1], "embedding widths of query and items", why, n) ||
        dims_eq(in[0].dim[0], in[2].dim[0], "rows of queries and of true items", why, n))
        return -1;
    out[0] = vector(in[0].dim[0], MTR_DT_F32);
    return 0;
}

int shape_top_k(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n)) return -1;
    MtrDim k = out[0].dim[1];
    if (k.sym < 0 && in[0].dim[1].sym < 0 && k.k > in[0].dim[1].k)
        return fail(why, n, "k = %d is more than the %d candidates", k.k, in[0].dim[1].k);
    if (k.sym < 0 && k.k <= 0) return fail(why, n, "k must be positive");
    out[0] = (MtrShape){.rank = 2, .dtype = MTR_DT_I32, .dim = {in[0].dim[0], k}};
    out[1] = matrix(in[0].dim[0], k);
    return 0;
}

int shape_sum_all(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "input 1 is not f32");
    out[0] = scalar();
    return 0;
}

int shape_broadcast(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want(in, 0, 0, MTR_DT_F32, why, n)) return -1;
    out[0] = in[1];
    out[0].dtype = MTR_DT_F32;
    return 0;
}

/* x's shape with its last extent 1: one number per row of x, every leading axis
 * kept (layer_norm's per-row statistics). */
/* A row-wise op's input: rows of the last axis, any leading axes (rank 2 or 3). */
static int want_rows(const MtrShape *in, int i, char *why, size_t n)
{
    if (in[i].rank == 3) return want(in, i, 3, MTR_DT_F32, why, n);
    return want(in, i, 2, MTR_DT_F32, why, n);
}

static MtrShape per_row(const MtrShape *x)
{
    MtrShape s = *x;
    s.dim[s.rank - 1] = (MtrDim){-1, 1};
    return s;
}

/* A parameter vector (gain, bias) as long as x's last axis. */
static int row_param(const MtrShape *in, int x, int i, char *why, size_t n)
{
    if (want(in, i, 1, MTR_DT_F32, why, n)) return -1;
    return dims_eq(in[x].dim[in[x].rank - 1], in[i].dim[0], "columns and parameter length", why, n);
}

int shape_layer_norm(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want_rows(in, 0, why, n) || row_param(in, 0, 1, why, n) || row_param(in, 0, 2, why, n))
        return -1;
    out[0] = in[0];
    out[1] = out[2] = per_row(&in[0]);
    return 0;
}

int shape_layer_norm_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want_rows(in, 0, why, n) || same_as(in, 0, 1, why, n) || row_param(in, 0, 2, why, n))
        return -1;
    MtrShape stats = per_row(&in[0]);
    for (int i = 3; i < 5; i++)
        if (!shape_eq(&in[i], &stats))
            return fail(why, n, "input %d is not one number per row of input 1", i + 1);
    out[0] = in[0];
    out[1] = out[2] = in[2];
    return 0;
}

/* dropout and its gradient: a float tensor and the train step (). */
static int dropout_inputs(const MtrShape *in, MtrShape *out, char *why, size_t n)
{
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "input 1 is not f32");
    if (want(in, 1, 0, MTR_DT_F32, why, n)) return -1;
    out[0] = in[0];
    return 0;
}

int shape_dropout(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return dropout_inputs(in, out, why, n);
}

int shape_dropout_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    return dropout_inputs(in, out, why, n);
}

/* softmax and its gradient: over the last axis of (rows, cols). */
int shape_softmax(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want_rows(in, 0, why, n)) return -1;
    out[0] = in[0];
    return 0;
}

int shape_softmax_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want_rows(in, 0, why, n) || same_as(in, 0, 1, why, n)) return -1;
    out[0] = in[0];
    return 0;
}

/* uncertainty(loss (), s (1)) -> (), and its gradient (dy, loss, s) -> dloss, ds */
int shape_uncertainty(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want(in, 0, 0, MTR_DT_F32, why, n) || want(in, 1, 1, MTR_DT_F32, why, n)) return -1;
    if (!shape_dim_eq(in[1].dim[0], (MtrDim){-1, 1}))
        return fail(why, n, "a task's log-variance is one number");
    out[0] = scalar();
    return 0;
}

int shape_uncertainty_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    if (want(in, 0, 0, MTR_DT_F32, why, n) || shape_uncertainty(in + 1, a, out, why, n)) return -1;
    out[0] = in[1];
    out[1] = in[2];
    return 0;
}

/* sum_squares(x) -> (); sum_squares_grad(x, dy ()) -> x's shape */
int shape_sum_squares(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (in[0].dtype != MTR_DT_F32) return fail(why, n, "input 1 is not f32");
    out[0] = scalar();
    return 0;
}

int shape_sum_squares_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (in[0].dtype != MTR_DT_F32 || want(in, 1, 0, MTR_DT_F32, why, n))
        return in[0].dtype != MTR_DT_F32 ? fail(why, n, "input 1 is not f32") : -1;
    out[0] = in[0];
    return 0;
}

/* ---- expert blocks: (E,B,W) tensors, E a constant given as iattr0 */

static MtrShape experts_shape(int32_t e, MtrDim b, MtrDim w)
{
    return (MtrShape){.rank = 3, .dtype = MTR_DT_F32, .dim = {{-1, e}, b, w}};
}

/* Input i is an expert block (E,B,W) of e experts with rows b. */
static int want_experts(const MtrShape *in, int i, int32_t e, char *why, size_t n)
{
    if (want(in, i, 3, MTR_DT_F32, why, n)) return -1;
    if (!shape_dim_eq(in[i].dim[0], (MtrDim){-1, e}))
        return fail(why, n, "input %d does not hold %d experts", i + 1, e);
    return 0;
}

int shape_expert_dense(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    int32_t e = a[0];
    if (e < 1) return fail(why, n, "an expert block needs at least one expert, found %d", e);
    MtrDim rows, cols;
    if (in[0].rank == 2) {
        if (want(in, 0, 2, MTR_DT_F32, why, n)) return -1;
        rows = in[0].dim[0], cols = in[0].dim[1];
    } else {
        if (want_experts(in, 0, e, why, n)) return -1;
        rows = in[0].dim[1], cols = in[0].dim[2];
    }
    if (want_experts(in, 1, e, why, n) || want(in, 2, 2, MTR_DT_F32, why, n)) return -1;
    if (dims_eq(cols, in[1].dim[1], "input width and kernel rows", why, n) ||
        dims_eq(in[2].dim[0], (MtrDim){-1, e}, "bias rows and experts", why, n) ||
        dims_eq(in[2].dim[1], in[1].dim[2], "bias and kernel widths", why, n))
        return -1;
    if (cols.sym >= 0 || in[1].dim[2].sym >= 0) return fail(why, n, "an expert's width is fixed");
    out[0] = experts_shape(e, rows, in[1].dim[2]);
    return 0;
}

int shape_expert_dense_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                            size_t n)
{
    MtrShape fwd[3] = {
        in[1], in[2], {.rank = 2, .dtype = MTR_DT_F32, .dim = {{-1, a[0]}, in[2].dim[2]}}};
    MtrShape y;
    if (shape_expert_dense(fwd, a, &y, why, n)) return -1;
    if (!shape_eq(&in[0], &y)) return fail(why, n, "the gradient is not the shape of the output");
    out[0] = in[1];
    out[1] = in[2];
    out[2] = fwd[2];
    return 0;
}

int shape_mix(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    int32_t e = a[0], first = a[1], gates = a[2] ? a[2] : a[0];
    if (want_experts(in, 0, e, why, n) || want(in, 1, 2, MTR_DT_F32, why, n)) return -1;
    if (first < 0 || gates < 1 || first > gates - e)
        return fail(why, n, "experts %d from gate column %d do not fit %d gate columns", e, first,
                    gates);
    if (dims_eq(in[1].dim[0], in[0].dim[1], "gate rows and expert rows", why, n) ||
        dims_eq(in[1].dim[1], (MtrDim){-1, gates}, "gate columns and experts", why, n))
        return -1;
    out[0] = matrix(in[0].dim[1], in[0].dim[2]);
    return 0;
}

int shape_mix_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    MtrShape y;
    if (shape_mix(in + 1, a, &y, why, n)) return -1;
    if (!shape_eq(&in[0], &y)) return fail(why, n, "the gradient is not the shape of the output");
    out[0] = in[1];
    out[1] = in[2];
    return 0;
}

int shape_stack(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    if (a[0] < 1 || a[1] < 1 || want_experts(in, 0, a[0], why, n) ||
        want_experts(in, 1, a[1], why, n))
        return a[0] < 1 || a[1] < 1 ? fail(why, n, "stacks blocks of at least one expert") : -1;
    if (dims_eq(in[0].dim[1], in[1].dim[1], "rows of the two blocks", why, n) ||
        dims_eq(in[0].dim[2], in[1].dim[2], "widths of the two blocks", why, n))
        return -1;
    out[0] = experts_shape(a[0] + a[1], in[0].dim[1], in[0].dim[2]);
    return 0;
}

int shape_take(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    if (want_experts(in, 0, a[2], why, n)) return -1;
    if (a[0] < 0 || a[1] < 1 || a[0] > a[2] - a[1])
        return fail(why, n, "experts %d..%d are not among %d", a[0], a[0] + a[1] - 1, a[2]);
    out[0] = experts_shape(a[1], in[0].dim[1], in[0].dim[2]);
    return 0;
}

int shape_infer(OpKind kind, const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why,
                size_t n)
{
    static const ShapeRule rules[OP_COUNT] = {
#define X(E, nm, id, ni, no, nk, f, bwd, at) [OP_##E] = shape_##nm,
#include "mtr/ops.def"
#undef X
    };
    return rules[kind](in, iattr, out, why, n);
}

/* dense_ids(x (B,D), w (K,H), ids (B)): D and H constants (the work's width), and
 * rows first..first+D of w exist. */
int shape_dense_ids(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    if (want(in, 0, 2, MTR_DT_F32, why, n) || want(in, 1, 2, MTR_DT_F32, why, n) ||
        want(in, 2, 1, MTR_DT_I32, why, n))
        return -1;
    if (dims_eq(in[0].dim[0], in[2].dim[0], "rows of the input and of its ids", why, n)) return -1;
    MtrDim d = in[0].dim[1], k = in[1].dim[0], h = in[1].dim[1];
    if (d.sym >= 0 || k.sym >= 0 || h.sym >= 0 || h.k > (1 << 20) || d.k > (1 << 20))
        return fail(why, n, "dense_ids needs constant widths of at most 2^20");
    if (a[0] < 0 || a[0] > k.k - d.k)
        return fail(why, n, "rows %d..%d of a kernel of %d rows", a[0], a[0] + d.k, k.k);
    out[0] = matrix(in[0].dim[0], h);
    out[1] = matrix(in[0].dim[0], (MtrDim){-1, d.k + h.k + 4});
    return 0;
}

/* dense_ids_acc(base (B,H), x, w, ids): base has the output's shape. */
int shape_dense_ids_acc(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    if (shape_dense_ids(in + 1, a, out, why, n)) return -1;
    if (!shape_eq(&in[0], &out[0])) return fail(why, n, "the base is not the shape of the output");
    return 0;
}

/* dense_ids_grad(dy (B,H), x, w, ids) -> dx (x's shape), dw (w's shape), work. */
int shape_dense_ids_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    MtrShape y[2];
    if (shape_dense_ids(in + 1, a, y, why, n)) return -1;
    if (!shape_eq(&in[0], &y[0]))
        return fail(why, n, "the gradient is not the shape of the output");
    out[0] = in[1];
    out[1] = in[2];
    out[2] = matrix(in[1].dim[0], (MtrDim){-1, in[2].dim[1].k + 2 * in[1].dim[1].k + 4});
    return 0;
}

/* bias_relu(x (B,H), b (H)) -> (B,H), as bias_add. */
int shape_bias_relu(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    return shape_bias_add(in, a, out, why, n);
}

/* bias_relu_grad(dy (B,H), y (B,H)) -> dx (B,H), db (H). */
int shape_bias_relu_grad(const MtrShape *in, const int32_t *a, MtrShape *out, char *why, size_t n)
{
    (void)a;
    if (want(in, 0, 2, MTR_DT_F32, why, n) || same_as(in, 0, 1, why, n)) return -1;
    out[0] = in[0];
    out[1] = vector(in[0].dim[1], MTR_DT_F32);
    return 0;
}

/* dense_ids_acc_bias_relu(base, x, w, ids, b (H)): dense_ids_acc's, and a bias per column. */
int shape_dense_ids_acc_bias_relu(const MtrShape *in, const int32_t *a, MtrShape *out, char *why,
                                  size_t n)
{
    if (shape_dense_ids_acc(in, a, out, why, n) || want(in, 4, 1, MTR_DT_F32, why, n)) return -1;
    return dims_eq(out[0].dim[1], in[4].dim[0], "columns and bias length", why, n);
}
