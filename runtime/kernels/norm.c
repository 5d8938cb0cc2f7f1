/* Normalization kernels: layer_norm over the last axis (Keras LayerNormalization)
 * and its gradient. A tensor arrives as (rows, cols), every leading axis folded
 * into rows, so nothing here knows what a row is (a batch row, an expert's row).
 *
 * Accuracy: the per-row statistics are computed in double and in two passes (the
 * mean first, then the mean of squared deviations from it), so a row far from
 * zero (x = 1e4 + small) keeps its variance, which the one-pass E[x^2] - E[x]^2
 * would lose to cancellation. The forward normalizes with the double mean; the
 * backward reads the mean rounded to float, whose error (half an ulp of the row's
 * magnitude) is no larger than the rounding of x itself. Row and column sums of
 * the backward are in double too. */
#include "kernels/kern.h"

/* Column sums of the backward are taken this many columns at a time, with a
 * double accumulator each on the stack (as sum_rows does). */
#define NORM_BLOCK 256

/* Row sums run in KERN_LANES independent accumulators, so that they vectorise
 * without reassociating, added in a fixed order: a row always gives the same sum. */
static double lanes_total(const double *acc)
{
    _Static_assert(KERN_LANES == 8, "lanes_total adds eight lanes");
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* sum_j x_j, and sum_j (x_j - mu)^2 once mu is known, in double. */
static double row_sum(const float *x, int64_t n)
{
    double acc[KERN_LANES] = {0.0};
    int64_t j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) acc[l] += x[j + l];
    for (; j < n; j++) acc[0] += x[j];
    return lanes_total(acc);
}

static double row_sq_dev(const float *x, int64_t n, double mu)
{
    double acc[KERN_LANES] = {0.0};
    int64_t j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) {
            double d = (double)x[j + l] - mu;
            acc[l] += d * d;
        }
    for (; j < n; j++) {
        double d = (double)x[j] - mu;
        acc[0] += d * d;
    }
    return lanes_total(acc);
}

/* The backward's two row sums, of g = dy gain and of g xhat, in double. */
static void row_grad_sums(const float *dy, const float *x, const float *gain, int64_t n, float mu,
                          float rs, double *sg, double *sgx)
{
    double a[KERN_LANES] = {0.0}, b[KERN_LANES] = {0.0};
    int64_t j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) {
            double g = (double)dy[j + l] * gain[j + l];
            a[l] += g;
            b[l] += g * ((x[j + l] - mu) * rs);
        }
    for (; j < n; j++) {
        double g = (double)dy[j] * gain[j];
        a[0] += g;
        b[0] += g * ((x[j] - mu) * rs);
    }
    *sg = lanes_total(a);
    *sgx = lanes_total(b);
}

/* layer_norm(x, gain, bias) -> y, mean, rstd; per row r:
 *   mean_r = sum_j x_rj / C, var_r = sum_j (x_rj - mean_r)^2 / C,
 *   rstd_r = 1 / sqrt(var_r + eps), y_rj = (x_rj - mean_r) rstd_r gain_j + bias_j.
 * eps = fattr0. A constant row has var 0, so y = bias there.
 * Gradient: layer_norm_grad(dy, x, gain, mean, rstd) with xhat = (x - mean) rstd,
 *   g = dy gain: dx = rstd (g - mean_j(g) - xhat mean_j(g xhat)),
 *   dgain = sum_r dy xhat, dbias = sum_r dy. */
void kernel_layer_norm(const KernelCall *call)
{
    const float *x = call->in[0];    /* (R,C) */
    const float *gain = call->in[1]; /* (C) */
    const float *bias = call->in[2]; /* (C) */
    float *y = call->out[0];         /* (R,C), may be x */
    float *mean = call->out[1];      /* (R,1) */
    float *rstd = call->out[2];      /* (R,1) */
    int64_t rows = call->in_shape[0].rows, cols = call->in_shape[0].cols;
    double eps = call->fattr[0];
    if (cols <= 0) return;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double mu = row_sum(xr, cols) / (double)cols;
        double rs = 1.0 / sqrt(row_sq_dev(xr, cols, mu) / (double)cols + eps);
        mean[r] = (float)mu;
        rstd[r] = (float)rs;
        for (int64_t j = 0; j < cols; j++)
            yr[j] = (float)(((double)xr[j] - mu) * rs) * gain[j] + bias[j];
    }
}

void kernel_layer_norm_grad(const KernelCall *call)
{
    const float *dy = call->in[0];   /* (R,C) */
    const float *x = call->in[1];    /* (R,C) */
    const float *gain = call->in[2]; /* (C) */
    const float *mean = call->in[3]; /* (R,1) */
    const float *rstd = call->in[4]; /* (R,1) */
    float *dx = call->out[0];        /* (R,C), may be dy */
    float *dgain = call->out[1];     /* (C) */
    float *dbias = call->out[2];     /* (C) */
    int64_t rows = call->in_shape[0].rows, cols = call->in_shape[0].cols;
    /* dgain and dbias first: dx may overwrite dy */
    for (int64_t j0 = 0; j0 < cols; j0 += NORM_BLOCK) {
        int64_t w = cols - j0 < NORM_BLOCK ? cols - j0 : NORM_BLOCK;
        double sg[NORM_BLOCK] = {0.0}, sb[NORM_BLOCK] = {0.0};
        for (int64_t r = 0; r < rows; r++) {
            const float *dyr = dy + r * cols + j0, *xr = x + r * cols + j0;
            float mu = mean[r], rs = rstd[r];
            for (int64_t j = 0; j < w; j++) {
                sg[j] += (double)dyr[j] * ((xr[j] - mu) * rs);
                sb[j] += dyr[j];
            }
        }
        for (int64_t j = 0; j < w; j++) {
            dgain[j0 + j] = (float)sg[j];
            dbias[j0 + j] = (float)sb[j];
        }
    }
    if (cols <= 0) return;
    for (int64_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * cols, *xr = x + r * cols;
        float *dxr = dx + r * cols;
        float mu = mean[r], rs = rstd[r];
        double sg, sgx;
        row_grad_sums(dyr, xr, gain, cols, mu, rs, &sg, &sgx);
        float mg = (float)(sg / (double)cols), mgx = (float)(sgx / (double)cols);
        for (int64_t j = 0; j < cols; j++) {
            float xhat = (xr[j] - mu) * rs;
            dxr[j] = rs * (dyr[j] * gain[j] - mg - xhat * mgx);
        }
    }
}
