/* Activation kernels, each a forward and its gradient: relu, tanh, sigmoid,
 * gelu, and softmax over a row. The gradients read the forward's output y (not
 * its input), so the
 * forward may run in place, except gelu's, which reads x (gelu still may run in
 * place where nothing reads x later); the gradients' out[0] may share dy's
 * buffer too. */
#include "kernels/kern.h"

/* relu(x) -> max(x, 0). Gradient: relu_grad(dy, y) = dy * (y > 0). */
static void relu_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *x = call->in[0]; /* any shape */
    float *y = call->out[0];      /* x's shape, may be x */
    for (int64_t i = lo; i < hi; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void kernel_relu(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, relu_range);
}

static void relu_grad_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *dy = call->in[0];      /* any shape */
    const float *y = call->in[1];       /* dy's shape: relu's output */
    float *dx = call->out[0];           /* dy's shape, may be dy */
    for (int64_t i = lo; i < hi; i++) { /* a bit mask, as ?: here would not vectorise */
        dx[i] = kern_bitsf(kern_fbits(dy[i]) & (0u - (uint32_t)(y[i] > 0.0f)));
    }
}

void kernel_relu_grad(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, relu_grad_range);
}

/* tanh(x), by libm for full accuracy. Gradient: tanh_grad(dy, y) = dy * (1 - y^2). */
static void tanh_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *x = call->in[0]; /* any shape */
    float *y = call->out[0];      /* x's shape, may be x */
    for (int64_t i = lo; i < hi; i++) y[i] = tanhf(x[i]);
}

void kernel_tanh(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, tanh_range);
}

static void tanh_grad_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *dy = call->in[0]; /* any shape */
    const float *y = call->in[1];  /* dy's shape: tanh's output */
    float *dx = call->out[0];      /* dy's shape, may be dy */
    for (int64_t i = lo; i < hi; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

void kernel_tanh_grad(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, tanh_grad_range);
}

/* sigmoid(x) = 1 / (1 + e^-x), computed from z = e^-|x| (never overflows):
 * 1 / (1 + z) for x >= 0, z / (1 + z) for x < 0.
 * Gradient: sigmoid_grad(dy, y) = dy * y * (1 - y). */
static void sigmoid_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *x = call->in[0]; /* any shape */
    float *y = call->out[0];      /* x's shape, may be x */
    for (int64_t i = lo; i < hi; i++) {
        float v = x[i];
        float z = kern_expf(-fabsf(v));
        float num = v >= 0.0f ? 1.0f : z;
        y[i] = num / (1.0f + z);
    }
}

void kernel_sigmoid(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, sigmoid_range);
}

static void sigmoid_grad_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *dy = call->in[0]; /* any shape */
    const float *y = call->in[1];  /* dy's shape: sigmoid's output */
    float *dx = call->out[0];      /* dy's shape, may be dy */
    for (int64_t i = lo; i < hi; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

void kernel_sigmoid_grad(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, sigmoid_grad_range);
}

#define GELU_SQRT1_2   0.70710678118654752440 /* 1 / sqrt(2) */
#define GELU_RSQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */

/* gelu(x) = x Phi(x), Phi the standard normal distribution function, which
 * Keras writes 0.5 (1 + erf(x / sqrt 2)). Here Phi = 0.5 erfc(-x / sqrt 2), the
 * same function, whose value stays accurate to the last bit far into the
 * negative tail, where 1 + erf(...) cancels; in double (as fast as erfcf here),
 * rounded once to float.
 * Gradient: gelu_grad(dy, x) = dy (Phi(x) + x phi(x)), phi(x) = e^(-x^2/2) / sqrt(2 pi). */
void kernel_gelu(const KernelCall *call)
{
    const float *x = call->in[0]; /* any shape */
    float *y = call->out[0];      /* x's shape, may be x */
    int64_t n = kern_numel(call->in_shape[0]);
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * erfc(-v * GELU_SQRT1_2));
    }
}

void kernel_gelu_grad(const KernelCall *call)
{
    const float *dy = call->in[0]; /* any shape */
    const float *x = call->in[1];  /* dy's shape: gelu's input */
    float *dx = call->out[0];      /* dy's shape, may be dy */
    int64_t n = kern_numel(call->in_shape[0]);
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        double d = 0.5 * erfc(-v * GELU_SQRT1_2) + v * GELU_RSQRT_2PI * exp(-0.5 * v * v);
        dx[i] = (float)(dy[i] * d);
    }
}

/* softmax(x) per row: e^(x - m) / sum_j e^(x_j - m), m the row's largest element,
 * so every exponent is <= 0 and nothing overflows, however large x is; the sum in
 * double. A tensor arrives as (rows, cols), leading axes folded into rows.
 * Gradient: softmax_grad(dy, y) = y (dy - sum_j dy_j y_j), per row. */
void kernel_softmax(const KernelCall *call)
{
    const float *x = call->in[0]; /* (R,C) */
    float *y = call->out[0];      /* (R,C), may be x */
    int64_t rows = call->in_shape[0].rows, cols = call->in_shape[0].cols;
    if (cols <= 0) return;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double sum = kern_row_exp_sum(xr, yr, cols, kern_row_max(xr, cols));
        float inv = (float)(1.0 / sum); /* sum >= 1: the largest element gives e^0 */
        for (int64_t j = 0; j < cols; j++) yr[j] *= inv;
    }
}

void kernel_softmax_grad(const KernelCall *call)
{
    const float *dy = call->in[0]; /* (R,C) */
    const float *y = call->in[1];  /* (R,C): softmax's output */
    float *dx = call->out[0];      /* (R,C), may be dy */
    int64_t rows = call->in_shape[0].rows, cols = call->in_shape[0].cols;
    for (int64_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * cols, *yr = y + r * cols;
        float *dxr = dx + r * cols;
        double dot = 0.0;
        for (int64_t j = 0; j < cols; j++) dot += (double)dyr[j] * yr[j];
        float s = (float)dot;
        for (int64_t j = 0; j < cols; j++) dxr[j] = yr[j] * (dyr[j] - s);
    }
}
