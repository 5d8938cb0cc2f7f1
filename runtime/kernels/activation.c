/* Activation kernels, each a forward and its gradient: relu, tanh, sigmoid. The
 * gradients read the forward's output y (not its input), so the forward may run
 * in place; the gradients' out[0] may share dy's buffer too. */
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
    const float *dy = call->in[0]; /* any shape */
    const float *y = call->in[1];  /* dy's shape: relu's output */
    float *dx = call->out[0];      /* dy's shape, may be dy */
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
