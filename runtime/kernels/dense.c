/* Dense kernels: matrix products (all through OpenBLAS cblas_sgemm), bias, row
 * sums, column concat and slice, and the elementwise and scalar helpers the
 * compiler's backward rules are written in (add, scale, fill, sum_all,
 * broadcast). In: placed tensors with bound shapes; out: the op's result.
 * Loops are plain C that gcc -O3 vectorises; sums accumulate in double. */
#include "kernels/kern.h"

#include "mtr/pool.h"

#include <cblas.h>

/* c = a b^T for a (M,1) and b (N,1) (either stored as a row or a column: with one
 * inner extent a transpose only changes the stride): an outer product, as the
 * backward of a layer with one output makes it. sgemm would clear c and then add
 * the products into it; the loop writes 0 + a_i b_j, the same bits (-0 included),
 * in one pass. */
static void outer_rows(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *a = call->in[0], *b = call->in[1];
    float *c = call->out[0];
    int64_t n = call->out_shape[0].cols;
    for (int64_t i = lo; i < hi; i++) {
        float ai = a[i];
        for (int64_t j = 0; j < n; j++) c[i * n + j] = 0.0f + ai * b[j];
    }
}

/* matmul(a, b) -> c = op(a) op(b), op = transpose when iattr0 / iattr1 is set.
 * Gradient: da = dc op(b)^T (transposed back if a was), db = op(a)^T dc. */
void kernel_matmul(const KernelCall *call)
{
    const float *a = call->in[0]; /* (M,K), or (K,M) when transposed */
    const float *b = call->in[1]; /* (K,N), or (N,K) when transposed */
    float *c = call->out[0];      /* (M,N) */
    int ta = call->iattr[0] != 0, tb = call->iattr[1] != 0;
    int64_t m = call->out_shape[0].rows, n = call->out_shape[0].cols;
    int64_t k = ta ? call->in_shape[0].rows : call->in_shape[0].cols;
    if (m == 0 || n == 0) return;
    if (k == 0) {
        memset(c, 0, (size_t)(m * n) * sizeof *c);
        return;
    }
    if (k == 1) {
        kern_rows(call, m, n, 1, outer_rows);
        return;
    }
    kern_sgemm(ta, tb, m, n, k, 1.0f, a, call->in_shape[0].cols, b, call->in_shape[1].cols, 0.0f, c,
               n);
}

/* bias_add(x, b) -> x + b on every row. Gradient: dx = dy, db = sum_rows(dy). */
static void bias_add_rows(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *x = call->in[0]; /* (B,H) */
    const float *b = call->in[1]; /* (H) */
    float *y = call->out[0];      /* (B,H), may be x */
    int64_t h = call->in_shape[0].cols;
    for (int64_t i = lo; i < hi; i++) {
        for (int64_t j = 0; j < h; j++) y[i * h + j] = x[i * h + j] + b[j];
    }
}

void kernel_bias_add(const KernelCall *call)
{
    kern_rows(call, call->in_shape[0].rows, call->in_shape[0].cols, 1, bias_add_rows);
}

/* The columns summed at once by sum_rows: one double accumulator each, on the stack. */
#define SUM_ROWS_BLOCK 256

/* sum_rows(x) -> the sum of x's rows (the backward of bias_add; no gradient).
 * Split by columns: each column is summed in row order whatever the split. */
static void sum_rows_cols(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *x = call->in[0]; /* (B,H) */
    float *y = call->out[0];      /* (H) */
    int64_t rows = call->in_shape[0].rows, h = call->in_shape[0].cols;
    double acc[SUM_ROWS_BLOCK];
    for (int64_t j0 = lo; j0 < hi; j0 += SUM_ROWS_BLOCK) {
        int64_t w = hi - j0 < SUM_ROWS_BLOCK ? hi - j0 : SUM_ROWS_BLOCK;
        for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
        for (int64_t i = 0; i < rows; i++) {
            const float *row = x + i * h + j0;
            for (int64_t j = 0; j < w; j++) acc[j] += row[j];
        }
        for (int64_t j = 0; j < w; j++) y[j0 + j] = (float)acc[j];
    }
}

void kernel_sum_rows(const KernelCall *call)
{
    kern_rows(call, call->in_shape[0].cols, call->in_shape[0].rows, 16, sum_rows_cols);
}

/* concat(a, b) -> [a b] along columns. Gradient: da, db = the two column slices of dy. */
static void concat_rows(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *a = call->in[0]; /* (B,D1) */
    const float *b = call->in[1]; /* (B,D2) */
    float *y = call->out[0];      /* (B,D1+D2) */
    int64_t d1 = call->in_shape[0].cols, d2 = call->in_shape[1].cols;
    for (int64_t i = lo; i < hi; i++) {
        memcpy(y + i * (d1 + d2), a + i * d1, (size_t)d1 * sizeof *y);
        memcpy(y + i * (d1 + d2) + d1, b + i * d2, (size_t)d2 * sizeof *y);
    }
}

void kernel_concat(const KernelCall *call)
{
    kern_rows(call, call->out_shape[0].rows, call->out_shape[0].cols, 1, concat_rows);
}

/* slice_cols(x) -> x[:, iattr0 : iattr0 + iattr1] (the backward of concat). */
static void slice_cols_rows(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *x = call->in[0]; /* (B,D) */
    float *y = call->out[0];      /* (B,W) */
    int64_t d = call->in_shape[0].cols;
    int64_t first = call->iattr[0], w = call->iattr[1];
    for (int64_t i = lo; i < hi; i++) memcpy(y + i * w, x + i * d + first, (size_t)w * sizeof *y);
}

void kernel_slice_cols(const KernelCall *call)
{
    kern_rows(call, call->out_shape[0].rows, call->iattr[1], 1, slice_cols_rows);
}

/* add(a, b) -> a + b. Gradient: da = db = dy. */
static void add_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *a = call->in[0]; /* any shape */
    const float *b = call->in[1]; /* a's shape */
    float *y = call->out[0];      /* a's shape, may be a */
    for (int64_t i = lo; i < hi; i++) y[i] = a[i] + b[i];
}

void kernel_add(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, add_range);
}

/* scale(x, s) -> x * s. Gradient: dx = dy * s, ds = sum(dy * x). */
static void scale_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *x = call->in[0];          /* any shape */
    float s = *(const float *)call->in[1]; /* () */
    float *y = call->out[0];               /* x's shape, may be x */
    for (int64_t i = lo; i < hi; i++) y[i] = x[i] * s;
}

void kernel_scale(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, scale_range);
}

/* fill() -> fattr0 everywhere (no inputs, no gradient). */
void kernel_fill(const KernelCall *call)
{
    float *y = call->out[0]; /* any shape */
    float v = call->fattr[0];
    int64_t n = kern_numel(call->out_shape[0]);
    for (int64_t i = 0; i < n; i++) y[i] = v;
}

/* sum_all(x) -> the sum of every element. Gradient: dx = broadcast(dy, x). */
void kernel_sum_all(const KernelCall *call)
{
    const float *x = call->in[0]; /* any shape */
    float *y = call->out[0];      /* () */
    int64_t n = kern_numel(call->in_shape[0]);
    double acc[4] = {0.0, 0.0, 0.0, 0.0}; /* four lanes, so the loop vectorises */
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (int l = 0; l < 4; l++) acc[l] += x[i + l];
    }
    for (; i < n; i++) acc[0] += x[i];
    *y = (float)((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

/* broadcast(dy, like) -> dy in every element of like's shape (the backward of sum_all). */
void kernel_broadcast(const KernelCall *call)
{
    float v = *(const float *)call->in[0]; /* () */
    float *y = call->out[0];               /* like's shape; like itself is not read */
    int64_t n = kern_numel(call->out_shape[0]);
    for (int64_t i = 0; i < n; i++) y[i] = v;
}
