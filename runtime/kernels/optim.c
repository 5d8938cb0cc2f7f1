/* Optimizer kernels: each updates a parameter (and its state) in place from its
 * gradient, with Keras semantics; hyperparameters are knobs read at run time
 * (iattr holds knob ids). They have no outputs and no gradients. Per-element
 * arithmetic is float, per-step scalars (bias corrections) double. */
#include "kernels/kern.h"
#include "mtr/pool.h"

/* sgd_update(param, grad): param -= lr grad, lr = knob[iattr0]. */
static void sgd_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    float *param = call->in[0];      /* any shape */
    const float *grad = call->in[1]; /* param's shape */
    float lr = (float)call->knobs[call->iattr[0]];
    for (int64_t i = lo; i < hi; i++) param[i] -= lr * grad[i];
}

void kernel_sgd_update(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, sgd_range);
}

/* adagrad_update(param, grad, accum): accum += g^2; param -= lr g / (sqrt(accum) + eps),
 * lr = knob[iattr0], eps = knob[iattr1] (Keras; accum starts at 0.1, set at init). */
static void adagrad_range(const KernelCall *call, int64_t lo, int64_t hi)
{
    float *param = call->in[0];      /* any shape */
    const float *grad = call->in[1]; /* param's shape */
    float *accum = call->in[2];      /* param's shape */
    float lr = (float)call->knobs[call->iattr[0]];
    float eps = (float)call->knobs[call->iattr[1]];
    for (int64_t i = lo; i < hi; i++) {
        float g = grad[i];
        float a = accum[i] + g * g;
        accum[i] = a;
        param[i] -= lr * g / (sqrtf(a) + eps);
    }
}

void kernel_adagrad_update(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, adagrad_range);
}

/* adam_update(param, grad, m, v, step): with t = step (already incremented),
 * lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; param -= lr_t m / (sqrt(v) + eps).
 * Knobs iattr0..3 = lr, beta1, beta2, epsilon (Keras Adam, epsilon "hat"). */
static void adam_range(const KernelCall *call, int64_t lo, int64_t hi)
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
    for (int64_t i = lo; i < hi; i++) {
        float g = grad[i];
        float mi = fb1 * m[i] + c1 * g;
        float vi = fb2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] -= lr_t * mi / (sqrtf(vi) + eps);
    }
}

void kernel_adam_update(const KernelCall *call)
{
    kern_rows(call, kern_numel(call->in_shape[0]), 1, 64, adam_range);
}

/* step_inc(step): step += 1 (once per train step, before the updates). */
void kernel_step_inc(const KernelCall *call)
{
    float *step = call->in[0]; /* () */
    *step += 1.0f;
}

/* The row-wise updates: the rows of param that embedding_grad's idx names
 * (idx[k] = -1 ends them), each updated from rows[k] exactly as the dense
 * update would update it; rows no id names have a zero gradient, which leaves
 * them (and their state) unchanged under SGD and Adagrad. The rows are
 * distinct, so the parts of the pool never touch the same row. */
typedef struct {
    const KernelCall *call;
    int64_t n; /* the number of ids, up to the first -1 */
} RowsJob;

static int64_t rows_named(const int32_t *idx, int64_t b)
{
    int64_t n = 0;
    while (n < b && idx[n] >= 0) n++;
    return n;
}

/* The row-wise updates touch rows scattered over tables far larger than the
 * caches: the rows ROWS_AHEAD updates later are fetched while this one runs. */
#define ROWS_AHEAD 4

/* One row of each update, as the dense kernels' arithmetic: restrict tells the
 * compiler that the tables and the gradient row do not overlap, so the loop
 * runs on vectors. */
KERN_CLONES static void sgd_row(float *restrict p, const float *restrict g, int64_t d, float lr)
{
    for (int64_t j = 0; j < d; j++) p[j] -= lr * g[j];
}

KERN_CLONES static void adagrad_row(float *restrict p, float *restrict acc, const float *restrict g,
                                    int64_t d, float lr, float eps)
{
    for (int64_t j = 0; j < d; j++) {
        float a = acc[j] + g[j] * g[j];
        acc[j] = a;
        p[j] -= lr * g[j] / (sqrtf(a) + eps);
    }
}

typedef struct {
    float lr_t, b1, b2, c1, c2, eps;
} AdamRow;

KERN_CLONES static void adam_row(float *restrict p, float *restrict m, float *restrict v,
                                 const float *restrict g, int64_t d, const AdamRow *r)
{
    for (int64_t j = 0; j < d; j++) {
        float mi = r->b1 * m[j] + r->c1 * g[j];
        float vi = r->b2 * v[j] + r->c2 * g[j] * g[j];
        m[j] = mi;
        v[j] = vi;
        p[j] -= r->lr_t * mi / (sqrtf(vi) + r->eps);
    }
}

/* Runs part over the rows idx names, shared among the pool by their elements. */
static void run_rows(const KernelCall *call, PoolFn part)
{
    RowsJob job = {call, rows_named(call->in[2], call->in_shape[2].rows)};
    pool_run(part, &job, pool_parts(job.n * call->in_shape[0].cols, 1 << 16));
}

static void sgd_rows_part(void *ctx, int part, int parts)
{
    const RowsJob *job = ctx;
    const KernelCall *call = job->call;
    float *param = call->in[0];
    const float *rows = call->in[1];
    const int32_t *idx = call->in[2];
    int64_t d = call->in_shape[0].cols, lo, hi;
    float lr = (float)call->knobs[call->iattr[0]];
    pool_rows(job->n, 64, part, parts, &lo, &hi);
    for (int64_t k = lo; k < hi; k++) {
        if (k + ROWS_AHEAD < hi) kern_prefetch_row(param + (int64_t)idx[k + ROWS_AHEAD] * d, d);
        sgd_row(param + (int64_t)idx[k] * d, rows + k * d, d, lr);
    }
}

static void adagrad_rows_part(void *ctx, int part, int parts)
{
    const RowsJob *job = ctx;
    const KernelCall *call = job->call;
    float *param = call->in[0];
    const float *rows = call->in[1];
    const int32_t *idx = call->in[2];
    float *accum = call->in[3];
    int64_t d = call->in_shape[0].cols, lo, hi;
    float lr = (float)call->knobs[call->iattr[0]];
    float eps = (float)call->knobs[call->iattr[1]];
    pool_rows(job->n, 64, part, parts, &lo, &hi);
    for (int64_t k = lo; k < hi; k++) {
        if (k + ROWS_AHEAD < hi) {
            int64_t ahead = (int64_t)idx[k + ROWS_AHEAD] * d;
            kern_prefetch_row(param + ahead, d), kern_prefetch_row(accum + ahead, d);
        }
        int64_t off = (int64_t)idx[k] * d;
        adagrad_row(param + off, accum + off, rows + k * d, d, lr, eps);
    }
}

/* sgd_update_rows(param, rows, idx): param[idx[k]] -= lr rows[k]. */
void kernel_sgd_update_rows(const KernelCall *call)
{
    run_rows(call, sgd_rows_part);
}

/* adagrad_update_rows(param, rows, idx, accum): adagrad_update on rows idx[k]. */
void kernel_adagrad_update_rows(const KernelCall *call)
{
    run_rows(call, adagrad_rows_part);
}

static void adam_rows_part(void *ctx, int part, int parts)
{
    const RowsJob *job = ctx;
    const KernelCall *call = job->call;
    float *param = call->in[0];
    const float *rows = call->in[1];
    const int32_t *idx = call->in[2];
    float *m = call->in[3], *v = call->in[4];
    double t = *(const float *)call->in[5];
    double lr = call->knobs[call->iattr[0]];
    double b1 = call->knobs[call->iattr[1]], b2 = call->knobs[call->iattr[2]];
    float eps = (float)call->knobs[call->iattr[3]];
    float lr_t = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    float fb1 = (float)b1, fb2 = (float)b2;
    float c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    int64_t d = call->in_shape[0].cols, lo, hi;
    pool_rows(job->n, 64, part, parts, &lo, &hi);
    AdamRow r = {lr_t, fb1, fb2, c1, c2, eps};
    for (int64_t k = lo; k < hi; k++) {
        if (k + ROWS_AHEAD < hi) {
            int64_t ahead = (int64_t)idx[k + ROWS_AHEAD] * d;
            kern_prefetch_row(param + ahead, d), kern_prefetch_row(m + ahead, d),
                kern_prefetch_row(v + ahead, d);
        }
        int64_t off = (int64_t)idx[k] * d;
        adam_row(param + off, m + off, v + off, rows + k * d, d, &r);
    }
}

/* adam_update_rows(param, rows, idx, m, v, step): the lazy Adam, adam_update's
 * arithmetic on rows idx[k] only. */
void kernel_adam_update_rows(const KernelCall *call)
{
    run_rows(call, adam_rows_part);
}
