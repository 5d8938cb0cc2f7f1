/* Optimizer kernels: each updates a parameter (and its state) in place from its
 * gradient, with Keras semantics; hyperparameters are knobs read at run time
 * (iattr holds knob ids). They have no outputs and no gradients. Per-element
 * arithmetic is float, per-step scalars (bias corrections) double. */
#include "kernels/kern.h"

/* sgd_update(param, grad): param -= lr grad, lr = knob[iattr0]. */
void kernel_sgd_update(const KernelCall *call)
{
    float *param = call->in[0];      /* any shape */
    const float *grad = call->in[1]; /* param's shape */
    float lr = (float)call->knobs[call->iattr[0]];
    int64_t n = kern_numel(call->in_shape[0]);
    for (int64_t i = 0; i < n; i++) param[i] -= lr * grad[i];
}

/* adagrad_update(param, grad, accum): accum += g^2; param -= lr g / (sqrt(accum) + eps),
 * lr = knob[iattr0], eps = knob[iattr1] (Keras; accum starts at 0.1, set at init). */
void kernel_adagrad_update(const KernelCall *call)
{
    float *param = call->in[0];      /* any shape */
    const float *grad = call->in[1]; /* param's shape */
    float *accum = call->in[2];      /* param's shape */
    float lr = (float)call->knobs[call->iattr[0]];
    float eps = (float)call->knobs[call->iattr[1]];
    int64_t n = kern_numel(call->in_shape[0]);
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float a = accum[i] + g * g;
        accum[i] = a;
        param[i] -= lr * g / (sqrtf(a) + eps);
    }
}

/* adam_update(param, grad, m, v, step): with t = step (already incremented),
 * lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; param -= lr_t m / (sqrt(v) + eps).
 * Knobs iattr0..3 = lr, beta1, beta2, epsilon (Keras Adam, epsilon "hat"). */
void kernel_adam_update(const KernelCall *call)
{
    float *param = call->in[0];             /* any shape */
    const float *grad = call->in[1];        /* param's shape */
    float *m = call->in[2];                 /* param's shape */
    float *v = call->in[3];                 /* param's shape */
    double t = *(const float *)call->in[4]; /* () */
    double lr = call->knobs[call->iattr[0]];
    double b1 = call->knobs[call->iattr[1]], b2 = call->knobs[call->iattr[2]];
    float eps = (float)call->knobs[call->iattr[3]];
    float lr_t = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    float fb1 = (float)b1, fb2 = (float)b2;
    float c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    int64_t n = kern_numel(call->in_shape[0]);
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = fb1 * m[i] + c1 * g;
        float vi = fb2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] -= lr_t * mi / (sqrtf(vi) + eps);
    }
}

/* step_inc(step): step += 1 (once per train step, before the updates). */
void kernel_step_inc(const KernelCall *call)
{
    float *step = call->in[0]; /* () */
    *step += 1.0f;
}
