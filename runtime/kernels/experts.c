/* Expert blocks: E experts' dense layers as one batched product, their mix by
 * a gate, and stacking blocks along the experts axis. Tensors (E,B,W) are
 * stored expert by expert, so expert e's rows are one contiguous (B,W) block;
 * the kernels get E from iattr0 (they see the leading axes folded). */
#include "kern.h"

#include <string.h>

/* expert_dense(x, w (E,I,H), b (E,H)) -> y (E,B,H) = x(_e) w_e + b_e */
void kernel_expert_dense(const KernelCall *call)
{
    int64_t e_n = call->iattr[0];
    int64_t h = call->out_shape[0].cols, bsz = call->out_shape[0].rows / e_n;
    int64_t in = call->in_shape[0].cols;
    int shared = call->in_shape[0].rows == bsz; /* x (B,I) read by every expert */
    const float *x = call->in[0], *w = call->in[1], *b = call->in[2];
    float *y = call->out[0];
    for (int64_t e = 0; e < e_n; e++) {
        float *ye = y + e * bsz * h;
        for (int64_t r = 0; r < bsz; r++) memcpy(ye + r * h, b + e * h, (size_t)h * sizeof *b);
        kern_sgemm(0, 0, bsz, h, in, 1.0f, x + (shared ? 0 : e * bsz * in), in, w + e * in * h, h,
                   1.0f, ye, h);
    }
}

/* expert_dense_grad(dy (E,B,H), x, w) -> dx, dw_e = x(_e)^T dy_e, db_e = sum_rows dy_e;
 * dx = sum_e dy_e w_e^T for a shared x, dx_e = dy_e w_e^T otherwise */
void kernel_expert_dense_grad(const KernelCall *call)
{
    int64_t e_n = call->iattr[0];
    int64_t h = call->in_shape[0].cols, bsz = call->in_shape[0].rows / e_n;
    int64_t in = call->in_shape[1].cols;
    int shared = call->in_shape[1].rows == bsz;
    const float *dy = call->in[0], *x = call->in[1], *w = call->in[2];
    float *dx = call->out[0], *dw = call->out[1], *db = call->out[2];
    for (int64_t e = 0; e < e_n; e++) {
        const float *dye = dy + e * bsz * h;
        const float *xe = x + (shared ? 0 : e * bsz * in);
        kern_sgemm(1, 0, in, h, bsz, 1.0f, xe, in, dye, h, 0.0f, dw + e * in * h, h);
        for (int64_t j = 0; j < h; j++) {
            double s = 0.0;
            for (int64_t r = 0; r < bsz; r++) s += dye[r * h + j];
            db[e * h + j] = (float)s;
        }
        kern_sgemm(0, 1, bsz, in, h, 1.0f, dye, h, w + e * in * h, h, shared && e > 0 ? 1.0f : 0.0f,
                   dx + (shared ? 0 : e * bsz * in), in);
    }
}

/* The gate columns of a mix: iattr2 of them (0: as many as experts), of
 * which this block's experts read iattr1 onwards. */
static void mix_gate_cols(const KernelCall *call, int64_t *first, int64_t *cols)
{
    *first = call->iattr[1];
    *cols = call->iattr[2] ? call->iattr[2] : call->iattr[0];
}

/* mix(ex (E,B,W), gate (B,G)) -> y (B,W) = sum_e gate_b,first+e ex_eb, summed in expert order */
void kernel_mix(const KernelCall *call)
{
    int64_t e_n = call->iattr[0], first, g_n;
    mix_gate_cols(call, &first, &g_n);
    int64_t w = call->out_shape[0].cols, bsz = call->out_shape[0].rows;
    const float *ex = call->in[0], *gate = call->in[1];
    float *y = call->out[0];
    for (int64_t r = 0; r < bsz; r++)
        for (int64_t j = 0; j < w; j++) {
            float s = 0.0f;
            for (int64_t e = 0; e < e_n; e++)
                s += gate[r * g_n + first + e] * ex[(e * bsz + r) * w + j];
            y[r * w + j] = s;
        }
}

/* mix_grad(dy (B,W), ex, gate) -> dex_eb = gate_b,first+e dy_b, dgate_b,first+e = ex_eb . dy_b
 * (the gate's other columns 0) */
void kernel_mix_grad(const KernelCall *call)
{
    int64_t e_n = call->iattr[0], first, g_n;
    mix_gate_cols(call, &first, &g_n);
    int64_t w = call->in_shape[0].cols, bsz = call->in_shape[0].rows;
    const float *dy = call->in[0], *ex = call->in[1], *gate = call->in[2];
    float *dex = call->out[0], *dgate = call->out[1];
    if (g_n != e_n) memset(dgate, 0, (size_t)(bsz * g_n) * sizeof *dgate);
    for (int64_t e = 0; e < e_n; e++)
        for (int64_t r = 0; r < bsz; r++) {
            const float *exr = ex + (e * bsz + r) * w, *dyr = dy + r * w;
            float *dexr = dex + (e * bsz + r) * w;
            float g = gate[r * g_n + first + e];
            double dot = 0.0;
            for (int64_t j = 0; j < w; j++) {
                dexr[j] = g * dyr[j];
                dot += (double)exr[j] * dyr[j];
            }
            dgate[r * g_n + first + e] = (float)dot;
        }
}

/* stack(a (E1,B,W), b (E2,B,W)) -> (E1+E2,B,W): a's experts, then b's */
void kernel_stack(const KernelCall *call)
{
    size_t na = (size_t)kern_numel(call->in_shape[0]), nb = (size_t)kern_numel(call->in_shape[1]);
    float *y = call->out[0];
    memcpy(y, call->in[0], na * sizeof *y);
    memcpy(y + na, call->in[1], nb * sizeof *y);
}

/* take(x (E,B,W)) -> experts first..first+n-1 */
void kernel_take(const KernelCall *call)
{
    int64_t first = call->iattr[0], e_n = call->iattr[2];
    int64_t per = kern_numel(call->in_shape[0]) / e_n; /* one expert's B*W */
    memcpy(call->out[0], (const float *)call->in[0] + first * per,
           (size_t)kern_numel(call->out_shape[0]) * sizeof(float));
}
