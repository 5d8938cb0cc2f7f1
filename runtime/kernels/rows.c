/* Row-by-row products: the dot product of two rows, and a row scaled by a
 * number of its own. Each is the other's gradient (see ops.def). */
#include "kern.h"

/* row_dot(a (B,D), b (B,D)) -> y (B,1) = sum_j a_ij b_ij, summed in double */
void kernel_row_dot(const KernelCall *call)
{
    const float *a = call->in[0], *b = call->in[1];
    float *y = call->out[0];
    int64_t rows = call->in_shape[0].rows, d = call->in_shape[0].cols;
    for (int64_t i = 0; i < rows; i++) {
        double acc = 0.0;
        for (int64_t j = 0; j < d; j++) acc += (double)a[i * d + j] * b[i * d + j];
        y[i] = (float)acc;
    }
}

/* row_scale(x (B,D), s (B,1)) -> y (B,D) = x_ij s_i; y may be x */
void kernel_row_scale(const KernelCall *call)
{
    const float *x = call->in[0], *s = call->in[1];
    float *y = call->out[0];
    int64_t rows = call->in_shape[0].rows, d = call->in_shape[0].cols;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < d; j++) y[i * d + j] = x[i * d + j] * s[i];
}

static float sigmoidf(float x)
{
    return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* prob_product(a (B,1), b (B,1)) -> y = sigmoid(a) sigmoid(b) */
void kernel_prob_product(const KernelCall *call)
{
    const float *a = call->in[0], *b = call->in[1];
    float *y = call->out[0];
    int64_t rows = call->in_shape[0].rows;
    for (int64_t i = 0; i < rows; i++) y[i] = sigmoidf(a[i]) * sigmoidf(b[i]);
}

/* prob_product_grad(dy, a, b) -> da = dy sa sb (1 - sa), db = dy sa sb (1 - sb) */
void kernel_prob_product_grad(const KernelCall *call)
{
    const float *dy = call->in[0], *a = call->in[1], *b = call->in[2];
    float *da = call->out[0], *db = call->out[1];
    int64_t rows = call->in_shape[0].rows;
    for (int64_t i = 0; i < rows; i++) {
        float sa = sigmoidf(a[i]), sb = sigmoidf(b[i]), y = sa * sb;
        da[i] = dy[i] * y * (1.0f - sa);
        db[i] = dy[i] * y * (1.0f - sb);
    }
}

/* uncertainty(loss (), s (1)) -> exp(-s) loss + s, in double */
void kernel_uncertainty(const KernelCall *call)
{
    double l = *(const float *)call->in[0], s = *(const float *)call->in[1];
    *(float *)call->out[0] = (float)(exp(-s) * l + s);
}

/* uncertainty_grad(dy, loss, s) -> dloss = exp(-s) dy, ds = (1 - exp(-s) loss) dy */
void kernel_uncertainty_grad(const KernelCall *call)
{
    double dy = *(const float *)call->in[0], l = *(const float *)call->in[1];
    double s = *(const float *)call->in[2];
    *(float *)call->out[0] = (float)(exp(-s) * dy);
    *(float *)call->out[1] = (float)((1.0 - exp(-s) * l) * dy);
}

/* sum_squares(x) -> () sum x^2 */
void kernel_sum_squares(const KernelCall *call)
{
    const float *x = call->in[0];
    int64_t n = kern_numel(call->in_shape[0]);
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
    *(float *)call->out[0] = (float)acc;
}

/* sum_squares_grad(x, dy) -> 2 x dy */
void kernel_sum_squares_grad(const KernelCall *call)
{
    const float *x = call->in[0];
    float k = 2.0f * *(const float *)call->in[1], *dx = call->out[0];
    int64_t n = kern_numel(call->in_shape[0]);
    for (int64_t i = 0; i < n; i++) dx[i] = k * x[i];
}
