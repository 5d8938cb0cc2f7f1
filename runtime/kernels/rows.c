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
