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
        double sum = 0.0;
        for (int64_t j = 0; j < cols; j++) sum += xr[j];
        double mu = sum / (double)cols;
        double ss = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            double d = (double)xr[j] - mu;
            ss += d * d;
        }
        double rs = 1.0 / sqrt(ss / (double)cols + eps);
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
        double sg = 0.0, sgx = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            double g = (double)dyr[j] * gain[j];
            sg += g;
            sgx += g * ((xr[j] - mu) * rs);
        }
        float mg = (float)(sg / (double)cols), mgx = (float)(sgx / (double)cols);
        for (int64_t j = 0; j < cols; j++) {
            float xhat = (xr[j] - mu) * rs;
            dxr[j] = rs * (dyr[j] * gain[j] - mg - xhat * mgx);
        }
    }
}
