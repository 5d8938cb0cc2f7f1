/* Tests of the runtime kernels (runtime/kernels): every kernel against a
 * reference written here in double (BLAS-backed ones against naive loops),
 * every gradient kernel against central differences of its forward kernel,
 * in-place aliasing, out-of-range ids, optimizer steps against the Keras
 * formulas, ranking and top-k against sort-based references, and the fast exp
 * against libm. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/kern.h"
#include "kernels/tiles.h"
#include "kernels/xent.h"
#include "mtr/pool.h"
#include "mtr/rng.h"

#include <float.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- helpers */

static KShape shp(int64_t rows, int64_t cols)
{
    KShape s = {rows, cols};
    return s;
}

static float *fbuf(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static void fill_uniform(Rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_float(r);
}

/* |got - want| <= abs + rel |want|, with the place named on failure. */
static void expect_close(double got, double want, double abs_tol, double rel_tol, const char *what,
                         size_t i)
{
    double err = fabs(got - want);
    if (!(err <= abs_tol + rel_tol * fabs(want))) {
        fail_msg("%s[%zu]: got %.9g, want %.9g (error %.3g)", what, i, got, want, err);
    }
}

/* ---- the kernel table */

static void test_dispatch_covers_every_op(void **state)
{
    (void)state;
#define X(E, n, id, ni, no, nk, f, bwd, at) assert_ptr_equal(kernel_for(OP_##E), kernel_##n);
#include "mtr/ops.def"
#undef X
}

/* ---- dense */

/* c = op(a) op(b) by a naive triple loop in double, for stored a and b. */
static void naive_matmul(const float *a, const float *b, double *c, int64_t m, int64_t n, int64_t k,
                         int ta, int tb)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; p++) {
                double av = ta ? a[p * m + i] : a[i * k + p];
                double bv = tb ? b[j * k + p] : b[p * n + j];
                acc += av * bv;
            }
            c[i * n + j] = acc;
        }
    }
}

static void test_matmul_transposes_odd_sizes(void **state)
{
    (void)state;
    static const int64_t sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 17, 11}, {33, 2, 65}};
    Rng r;
    rng_seed(&r, 1);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t m = sizes[s][0], k = sizes[s][1], n = sizes[s][2];
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                float *a = fbuf((size_t)(m * k)), *b = fbuf((size_t)(k * n));
                float *c = fbuf((size_t)(m * n));
                double *ref = calloc((size_t)(m * n), sizeof *ref);
                fill_uniform(&r, a, (size_t)(m * k), -1, 1);
                fill_uniform(&r, b, (size_t)(k * n), -1, 1);
                KernelCall call = {0};
                call.in[0] = a;
                call.in_shape[0] = ta ? shp(k, m) : shp(m, k);
                call.in[1] = b;
                call.in_shape[1] = tb ? shp(n, k) : shp(k, n);
                call.out[0] = c;
                call.out_shape[0] = shp(m, n);
                call.iattr[0] = ta;
                call.iattr[1] = tb;
                kernel_matmul(&call);
                naive_matmul(a, b, ref, m, n, k, ta, tb);
                /* each term is at most 1: a float sum of k of them is within k u k */
                for (int64_t i = 0; i < m * n; i++) {
                    expect_close(c[i], ref[i], 1e-6 * (double)k, 0, "matmul", (size_t)i);
                }
                free(a);
                free(b);
                free(c);
                free(ref);
            }
        }
    }
}

static void test_bias_add_sum_rows(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 2);
    int64_t b = 9, h = 300; /* h > one 256-column block of sum_rows */
    float *x = fbuf((size_t)(b * h)), *bias = fbuf((size_t)h), *y = fbuf((size_t)(b * h));
    float *sums = fbuf((size_t)h);
    fill_uniform(&r, x, (size_t)(b * h), -2, 2);
    fill_uniform(&r, bias, (size_t)h, -1, 1);
    KernelCall call = {0};
    call.in[0] = x;
    call.in_shape[0] = shp(b, h);
    call.in[1] = bias;
    call.in_shape[1] = shp(h, 1);
    call.out[0] = y;
    call.out_shape[0] = shp(b, h);
    kernel_bias_add(&call);
    for (int64_t i = 0; i < b * h; i++) assert_true(y[i] == x[i] + bias[i % h]);
    call.out[0] = x; /* in place */
    kernel_bias_add(&call);
    assert_memory_equal(x, y, (size_t)(b * h) * sizeof *x);

    KernelCall sr = {0};
    sr.in[0] = y;
    sr.in_shape[0] = shp(b, h);
    sr.out[0] = sums;
    sr.out_shape[0] = shp(h, 1);
    kernel_sum_rows(&sr);
    for (int64_t j = 0; j < h; j++) {
        double want = 0;
        for (int64_t i = 0; i < b; i++) want += y[i * h + j];
        expect_close(sums[j], want, 1e-6, 1e-7, "sum_rows", (size_t)j);
    }
    free(x);
    free(bias);
    free(y);
    free(sums);
}

static void test_concat_slice_roundtrip(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 3);
    int64_t b = 5, d1 = 3, d2 = 7;
    float *a = fbuf((size_t)(b * d1)), *c = fbuf((size_t)(b * d2));
    float *y = fbuf((size_t)(b * (d1 + d2)));
    float *sa = fbuf((size_t)(b * d1)), *sc = fbuf((size_t)(b * d2));
    fill_uniform(&r, a, (size_t)(b * d1), -1, 1);
    fill_uniform(&r, c, (size_t)(b * d2), -1, 1);
    KernelCall call = {0};
    call.in[0] = a;
    call.in_shape[0] = shp(b, d1);
    call.in[1] = c;
    call.in_shape[1] = shp(b, d2);
    call.out[0] = y;
    call.out_shape[0] = shp(b, d1 + d2);
    kernel_concat(&call);
    for (int64_t i = 0; i < b; i++) {
        for (int64_t j = 0; j < d1; j++) assert_true(y[i * (d1 + d2) + j] == a[i * d1 + j]);
        for (int64_t j = 0; j < d2; j++) assert_true(y[i * (d1 + d2) + d1 + j] == c[i * d2 + j]);
    }
    /* slice_cols is concat's backward: it gives the two halves back */
    KernelCall s = {0};
    s.in[0] = y;
    s.in_shape[0] = shp(b, d1 + d2);
    s.out[0] = sa;
    s.out_shape[0] = shp(b, d1);
    s.iattr[0] = 0;
    s.iattr[1] = (int32_t)d1;
    kernel_slice_cols(&s);
    s.out[0] = sc;
    s.out_shape[0] = shp(b, d2);
    s.iattr[0] = (int32_t)d1;
    s.iattr[1] = (int32_t)d2;
    kernel_slice_cols(&s);
    assert_memory_equal(sa, a, (size_t)(b * d1) * sizeof *a);
    assert_memory_equal(sc, c, (size_t)(b * d2) * sizeof *c);
    free(a);
    free(c);
    free(y);
    free(sa);
    free(sc);
}

static void test_elementwise_and_scalars(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 4);
    enum { N = 37 };
    float a[N], b[N], y[N], y2[N];
    fill_uniform(&r, a, N, -3, 3);
    fill_uniform(&r, b, N, -3, 3);
    KernelCall call = {0};
    call.in[0] = a;
    call.in_shape[0] = shp(N, 1);
    call.in[1] = b;
    call.in_shape[1] = shp(N, 1);
    call.out[0] = y;
    call.out_shape[0] = shp(N, 1);
    kernel_add(&call);
    for (int i = 0; i < N; i++) assert_true(y[i] == a[i] + b[i]);
    memcpy(y2, a, sizeof a);
    call.in[0] = y2;
    call.out[0] = y2; /* in place */
    kernel_add(&call);
    assert_memory_equal(y, y2, sizeof y);

    float s = -1.75f;
    call.in[0] = a;
    call.in[1] = &s;
    call.in_shape[1] = shp(1, 1);
    call.out[0] = y;
    kernel_scale(&call);
    for (int i = 0; i < N; i++) assert_true(y[i] == a[i] * s);

    KernelCall f = {0};
    f.out[0] = y;
    f.out_shape[0] = shp(N, 1);
    f.fattr[0] = 0.1f;
    kernel_fill(&f);
    for (int i = 0; i < N; i++) assert_true(y[i] == 0.1f);

    float total;
    KernelCall sa = {0};
    sa.in[0] = a;
    sa.in_shape[0] = shp(N, 1);
    sa.out[0] = &total;
    sa.out_shape[0] = shp(1, 1);
    kernel_sum_all(&sa);
    double want = 0;
    for (int i = 0; i < N; i++) want += a[i];
    expect_close(total, want, 0, 1e-7, "sum_all", 0);

    KernelCall bc = {0};
    bc.in[0] = &s;
    bc.in_shape[0] = shp(1, 1);
    bc.in[1] = a; /* like */
    bc.in_shape[1] = shp(N, 1);
    bc.out[0] = y;
    bc.out_shape[0] = shp(N, 1);
    kernel_broadcast(&bc);
    for (int i = 0; i < N; i++) assert_true(y[i] == s);

    double knobs[3] = {0.0, 0.25, 3.0};
    float loss = 2.5f, weighted;
    KernelCall lw = {0};
    lw.in[0] = &loss;
    lw.in_shape[0] = shp(1, 1);
    lw.out[0] = &weighted;
    lw.out_shape[0] = shp(1, 1);
    lw.iattr[0] = 2;
    lw.knobs = knobs;
    kernel_loss_weight(&lw);
    assert_true(weighted == 7.5f);
    lw.iattr[0] = 0; /* a weight of 0 switches a task off */
    kernel_loss_weight(&lw);
    assert_true(weighted == 0.0f);
}

/* ---- activations */

typedef void (*Kern)(const KernelCall *);

static void run_unary(Kern k, const float *x, float *y, int64_t n)
{
    KernelCall call = {0};
    call.in[0] = (void *)x;
    call.in_shape[0] = shp(n, 1);
    call.out[0] = y;
    call.out_shape[0] = shp(n, 1);
    k(&call);
}

static void run_binary(Kern k, const float *a, const float *b, float *y, int64_t n)
{
    KernelCall call = {0};
    call.in[0] = (void *)a;
    call.in_shape[0] = shp(n, 1);
    call.in[1] = (void *)b;
    call.in_shape[1] = shp(n, 1);
    call.out[0] = y;
    call.out_shape[0] = shp(n, 1);
    k(&call);
}

static void test_activations_vs_double(void **state)
{
    (void)state;
    enum { N = 2001 };
    float *x = fbuf(N), *y = fbuf(N), *y2 = fbuf(N);
    for (int i = 0; i < N; i++) x[i] = -100.0f + 0.1f * (float)i; /* [-100, 100] */
    x[0] = -0.0f;
    x[1] = 1e-30f;
    x[2] = -1e-30f;
    run_unary(kernel_relu, x, y, N);
    for (int i = 0; i < N; i++) assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    run_unary(kernel_tanh, x, y, N);
    for (int i = 0; i < N; i++) expect_close(y[i], tanh(x[i]), 1e-37, 2.5e-7, "tanh", (size_t)i);
    run_unary(kernel_sigmoid, x, y, N);
    /* fast exp (2 ulp) plus a division: 4 ulp relative, also deep in the tails */
    for (int i = 0; i < N; i++) {
        double want = 1.0 / (1.0 + exp(-(double)x[i]));
        expect_close(y[i], want, 2e-38, 5e-7, "sigmoid", (size_t)i);
    }
    /* every forward runs in place with the same result */
    Kern fwd[] = {kernel_relu, kernel_tanh, kernel_sigmoid};
    for (size_t k = 0; k < 3; k++) {
        run_unary(fwd[k], x, y, N);
        memcpy(y2, x, N * sizeof *x);
        run_unary(fwd[k], y2, y2, N);
        assert_memory_equal(y, y2, N * sizeof *y);
    }
    free(x);
    free(y);
    free(y2);
}

/* Central differences of L(x) = sum_j dy_j f(x)_j against grad(dy, f(x)).
 * The forward is float: with h = 1e-2 its rounding (1 ulp of |y| <= 1, so
 * 6e-8 / 2h = 3e-6) and the truncation (h^2 / 6 max|f'''| <= 2 / 6 * 1e-4 =
 * 3.4e-5) stay far below the 2e-4 tolerance; a wrong gradient is off by O(1).
 * x avoids relu's kink by more than h. */
static void check_activation_grad(Kern fwd, Kern grad, const char *name)
{
    enum { N = 64 };
    Rng r;
    rng_seed(&r, 5);
    float x[N], y[N], dy[N], dx[N], dx2[N], xp[N], yp[N];
    for (int i = 0; i < N; i++) {
        float v = 0.05f + 2.95f * rng_float(&r);
        x[i] = (i % 2) ? v : -v;
    }
    fill_uniform(&r, dy, N, -1, 1);
    run_unary(fwd, x, y, N);
    run_binary(grad, dy, y, dx, N);
    const float h = 1e-2f;
    for (int i = 0; i < N; i++) {
        memcpy(xp, x, sizeof x);
        xp[i] = x[i] + h;
        run_unary(fwd, xp, yp, N);
        double lp = (double)dy[i] * yp[i];
        xp[i] = x[i] - h;
        run_unary(fwd, xp, yp, N);
        double lm = (double)dy[i] * yp[i];
        double fd = (lp - lm) / (2.0 * ((double)(x[i] + h) - x[i]));
        expect_close(dx[i], fd, 2e-4, 0, name, (size_t)i);
    }
    /* dx may overwrite dy */
    memcpy(dx2, dy, sizeof dy);
    run_binary(grad, dx2, y, dx2, N);
    assert_memory_equal(dx, dx2, sizeof dx);
}

static void test_activation_grads_fd(void **state)
{
    (void)state;
    check_activation_grad(kernel_relu, kernel_relu_grad, "relu_grad");
    check_activation_grad(kernel_tanh, kernel_tanh_grad, "tanh_grad");
    check_activation_grad(kernel_sigmoid, kernel_sigmoid_grad, "sigmoid_grad");
}

/* ---- losses */

static float run_loss(Kern k, const float *pred, const float *label, int64_t b)
{
    float loss = NAN;
    KernelCall call = {0};
    call.in[0] = (void *)pred;
    call.in_shape[0] = shp(b, 1);
    call.in[1] = (void *)label;
    call.in_shape[1] = shp(b, 1);
    call.out[0] = &loss;
    call.out_shape[0] = shp(1, 1);
    k(&call);
    return loss;
}

static void run_loss_grad(Kern k, const float *pred, const float *label, float dloss, float *dpred,
                          int64_t b)
{
    KernelCall call = {0};
    call.in[0] = (void *)pred;
    call.in_shape[0] = shp(b, 1);
    call.in[1] = (void *)label;
    call.in_shape[1] = shp(b, 1);
    call.in[2] = &dloss;
    call.in_shape[2] = shp(1, 1);
    call.out[0] = dpred;
    call.out_shape[0] = shp(b, 1);
    k(&call);
}

/* Central differences of dloss * loss(pred) against loss_grad. The loss is a
 * float near 1: rounding 1.2e-7 / 2h = 6e-6 at h = 1e-2; mse is quadratic (no
 * truncation error) and bce's third derivative is below 0.1 / B. Tolerance 5e-5. */
static void check_loss_grad(Kern loss, Kern grad, const float *pred, const float *label, int64_t b,
                            const char *name)
{
    const float dloss = 0.7f, h = 1e-2f;
    float *dp = fbuf((size_t)b), *p = fbuf((size_t)b);
    run_loss_grad(grad, pred, label, dloss, dp, b);
    for (int64_t i = 0; i < b; i++) {
        memcpy(p, pred, (size_t)b * sizeof *p);
        p[i] = pred[i] + h;
        double lp = run_loss(loss, p, label, b);
        p[i] = pred[i] - h;
        double lm = run_loss(loss, p, label, b);
        double fd = dloss * (lp - lm) / (2.0 * ((double)(pred[i] + h) - pred[i]));
        expect_close(dp[i], fd, 5e-5, 0, name, (size_t)i);
    }
    free(dp);
    free(p);
}

/* The losses' inputs: predictions in [-3, 3], ratings in [1, 5], 0/1 labels. */
static void fill_loss_inputs(uint64_t seed, float *pred, float *label, float *bin, int b)
{
    Rng r;
    rng_seed(&r, seed);
    fill_uniform(&r, pred, (size_t)b, -3, 3);
    fill_uniform(&r, label, (size_t)b, 1, 5);
    for (int i = 0; i < b; i++) bin[i] = (float)(rng_next(&r) & 1);
}

static void test_mse_bce(void **state)
{
    (void)state;
    enum { B = 11 };
    float pred[B], label[B], bin[B];
    fill_loss_inputs(6, pred, label, bin, B);
    pred[0] = 40.0f; /* bce's stable form far out in both tails */
    pred[1] = -40.0f;

    double mse = 0, bce = 0;
    for (int i = 0; i < B; i++) {
        double d = (double)pred[i] - label[i];
        mse += d * d / B;
        double s = 1.0 / (1.0 + exp(-(double)pred[i]));
        /* log(1 - s) computed as log(sigmoid(-x)) so that it stays exact at x = 40 */
        double log_s = -log1p(exp(-(double)pred[i])), log_1s = -log1p(exp((double)pred[i]));
        (void)s;
        bce += -(bin[i] * log_s + (1 - bin[i]) * log_1s) / B;
    }
    expect_close(run_loss(kernel_mse, pred, label, B), mse, 0, 1e-7, "mse", 0);
    expect_close(run_loss(kernel_bce_logits, pred, bin, B), bce, 0, 1e-7, "bce_logits", 0);

    float dp[B];
    run_loss_grad(kernel_mse_grad, pred, label, 0.7f, dp, B);
    for (int i = 0; i < B; i++) {
        expect_close(dp[i], 2.0 * ((double)pred[i] - label[i]) / B * 0.7, 0, 2e-7, "mse_grad",
                     (size_t)i);
    }
    run_loss_grad(kernel_bce_logits_grad, pred, bin, 0.7f, dp, B);
    for (int i = 0; i < B; i++) {
        double s = 1.0 / (1.0 + exp(-(double)pred[i]));
        expect_close(dp[i], (s - bin[i]) / B * 0.7, 1e-9, 5e-7, "bce_logits_grad", (size_t)i);
    }
    pred[0] = 2.5f;
    pred[1] = -2.5f;
    check_loss_grad(kernel_mse, kernel_mse_grad, pred, label, B, "mse_grad fd");
    check_loss_grad(kernel_bce_logits, kernel_bce_logits_grad, pred, bin, B, "bce_logits_grad fd");
}

/* mean_rows, as dist.c sets it: two shares of a batch (one label missing),
 * each dividing by the whole batch's labelled rows, give the whole call's
 * gradient bit for bit and its loss as the sum of theirs. */
static void test_mean_rows(void **state)
{
    (void)state;
    enum { B = 11, CUT = 4 };
    float pred[B], label[B], bin[B];
    fill_loss_inputs(16, pred, label, bin, B);
    label[2] = bin[2] = NAN;
    const Kern losses[] = {kernel_mse, kernel_bce_logits},
               grads[] = {kernel_mse_grad, kernel_bce_logits_grad};
    for (int k = 0; k < 2; k++) {
        const float *y = k ? bin : label;
        float whole[B], share[B], loss[2], dloss = 0.7f;
        run_loss_grad(grads[k], pred, y, dloss, whole, B);
        float all = run_loss(losses[k], pred, y, B);
        for (int part = 0; part < 2; part++) {
            int64_t lo = part ? CUT : 0, n = part ? B - CUT : CUT;
            KernelCall call = {0};
            call.mean_rows = B - 1;
            call.in[0] = pred + lo, call.in_shape[0] = shp(n, 1);
            call.in[1] = (void *)(y + lo), call.in_shape[1] = shp(n, 1);
            call.in[2] = &dloss, call.in_shape[2] = shp(1, 1);
            call.out[0] = share + lo, call.out_shape[0] = shp(n, 1);
            grads[k](&call);
            call.out[0] = &loss[part], call.out_shape[0] = shp(1, 1);
            losses[k](&call);
        }
        assert_memory_equal(share, whole, sizeof whole);
        expect_close(loss[0] + loss[1], all, 0, 1e-6, k ? "bce shares" : "mse shares", 0);
    }
}

static float run_xent(const float *s, float *dunit, int64_t b)
{
    float loss = NAN;
    KernelCall call = {0};
    call.in[0] = (void *)s;
    call.in_shape[0] = shp(b, b);
    call.out[0] = &loss;
    call.out_shape[0] = shp(1, 1);
    call.out[1] = dunit;
    call.out_shape[1] = shp(b, b);
    kernel_inbatch_softmax_xent(&call);
    return loss;
}

/* loss and softmax - I in double, straight from the definition. */
static double xent_ref(const float *s, double *dunit, int64_t b)
{
    double loss = 0;
    for (int64_t i = 0; i < b; i++) {
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < b; j++) m = s[i * b + j] > m ? s[i * b + j] : m;
        for (int64_t j = 0; j < b; j++) sum += exp(s[i * b + j] - m);
        loss += m + log(sum) - s[i * b + i];
        for (int64_t j = 0; j < b; j++) {
            dunit[i * b + j] = exp(s[i * b + j] - m) / sum - (i == j);
        }
    }
    return loss;
}

static void test_inbatch_softmax_xent(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 7);
    static const int64_t sizes[] = {1, 5, 13, 200};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int64_t b = sizes[t];
        size_t n = (size_t)(b * b);
        float *s = fbuf(n), *d = fbuf(n), *inplace = fbuf(n);
        double *dref = calloc(n, sizeof *dref);
        /* a wide spread, so that many exps underflow to 0 */
        fill_uniform(&r, s, n, b >= 200 ? -120.0f : -4.0f, b >= 200 ? 30.0f : 4.0f);
        float loss = run_xent(s, d, b);
        double want = xent_ref(s, dref, b);
        expect_close(loss, want, 1e-5, 2e-7, "xent loss", (size_t)b);
        for (size_t i = 0; i < n; i++) expect_close(d[i], dref[i], 1e-7, 1e-6, "xent dunit", i);
        /* in place: out[1] is the scores' own buffer, same bits */
        memcpy(inplace, s, n * sizeof *s);
        float loss2 = run_xent(inplace, inplace, b);
        assert_true(loss2 == loss);
        assert_memory_equal(inplace, d, n * sizeof *d);
        free(s);
        free(d);
        free(inplace);
        free(dref);
    }
}

/* dunit against central differences of the loss. The loss is a float near
 * B ln B = 8: rounding 1e-6 / 2h = 5e-5 at h = 1e-2; the truncation is
 * h^2 / 6 |f'''| <= 2e-5. Tolerance 2e-4; the entries are O(0.1). */
static void test_inbatch_softmax_xent_grad_fd(void **state)
{
    (void)state;
    enum { B = 6 };
    Rng r;
    rng_seed(&r, 8);
    float s[B * B], d[B * B], sp[B * B], tmp[B * B];
    fill_uniform(&r, s, B * B, -2, 2);
    run_xent(s, d, B);
    const float h = 1e-2f;
    for (int i = 0; i < B * B; i++) {
        memcpy(sp, s, sizeof s);
        sp[i] = s[i] + h;
        double lp = run_xent(sp, tmp, B);
        memcpy(sp, s, sizeof s);
        sp[i] = s[i] - h;
        double lm = run_xent(sp, tmp, B);
        double fd = (lp - lm) / (2.0 * ((double)(s[i] + h) - s[i]));
        expect_close(d[i], fd, 2e-4, 0, "xent dunit fd", (size_t)i);
    }
}

/* ---- embeddings */

static void test_gather_scatter_out_of_range(void **state)
{
    (void)state;
    enum { V = 4, D = 3, B = 7 };
    float table[V * D], y[B * D], dy[B * D], dt[V * D], like[V * D];
    for (int i = 0; i < V * D; i++) table[i] = (float)(i + 1);
    int32_t ids[B] = {2, -1, V, INT32_MAX, INT32_MIN, 3, 2};
    int32_t eff[B] = {2, 0, 0, 0, 0, 3, 2};
    KernelCall g = {0};
    g.in[0] = table;
    g.in_shape[0] = shp(V, D);
    g.in[1] = ids;
    g.in_shape[1] = shp(B, 1);
    g.out[0] = y;
    g.out_shape[0] = shp(B, D);
    kernel_gather(&g);
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < D; j++) assert_true(y[i * D + j] == table[eff[i] * D + j]);
    }

    Rng r;
    rng_seed(&r, 9);
    fill_uniform(&r, dy, B * D, -1, 1);
    for (int i = 0; i < V * D; i++) dt[i] = 1e9f; /* scatter_add zeroes its output */
    KernelCall s = {0};
    s.in[0] = dy;
    s.in_shape[0] = shp(B, D);
    s.in[1] = ids;
    s.in_shape[1] = shp(B, 1);
    s.in[2] = like;
    s.in_shape[2] = shp(V, D);
    s.out[0] = dt;
    s.out_shape[0] = shp(V, D);
    kernel_scatter_add(&s);
    for (int v = 0; v < V; v++) {
        for (int j = 0; j < D; j++) {
            double want = 0;
            for (int i = 0; i < B; i++) want += eff[i] == v ? dy[i * D + j] : 0.0;
            expect_close(dt[v * D + j], want, 1e-6, 0, "scatter_add", (size_t)(v * D + j));
        }
    }
    /* scatter_add is gather's adjoint: <gather(T), dy> = <T, scatter_add(dy)> */
    double lhs = 0, rhs = 0;
    for (int i = 0; i < B * D; i++) lhs += (double)y[i] * dy[i];
    for (int i = 0; i < V * D; i++) rhs += (double)table[i] * dt[i];
    expect_close(lhs, rhs, 1e-4, 1e-6, "gather adjoint", 0);
}

/* dense_ids (and dense_ids_acc) against the plain product x w[first..first+D)
 * in double, on rows that are a function of their id (x = table[id]), with few
 * distinct ids (the grouped form) or many (the plain one); and dense_ids_grad:
 * dw against x^T dy, and dx summed over each id's rows against dy w^T summed
 * likewise (what reaches the table), with 0 on every row but each id's first
 * where the backward groups (n <= 3B/4). Returns n, the distinct ids. */
static int64_t check_dense_ids(int64_t b, int64_t vocab, int acc)
{
    const int64_t d = 3, h = 5, k = 8, first = 2;
    Rng r;
    rng_seed(&r, (uint64_t)(b * 31 + vocab + acc));
    float *table = fbuf((size_t)(vocab * d)), *x = fbuf((size_t)(b * d));
    float *w = fbuf((size_t)(k * h)), *base = fbuf((size_t)(b * h)), *y = fbuf((size_t)(b * h));
    float *dy = fbuf((size_t)(b * h)), *dx = fbuf((size_t)(b * d)), *dw = fbuf((size_t)(k * h));
    float *work = fbuf((size_t)(b * (h + 2 * d + 4)));
    int32_t *ids = calloc((size_t)b, sizeof *ids);
    assert_non_null(ids);
    fill_uniform(&r, table, (size_t)(vocab * d), -1, 1);
    fill_uniform(&r, w, (size_t)(k * h), -1, 1);
    fill_uniform(&r, base, (size_t)(b * h), -1, 1);
    fill_uniform(&r, dy, (size_t)(b * h), -1, 1);
    for (int64_t i = 0; i < b; i++) {
        ids[i] = (int32_t)rng_below(&r, (uint64_t)vocab);
        memcpy(x + i * d, table + (int64_t)ids[i] * d, (size_t)d * sizeof *x);
    }
    int64_t n = 0;
    for (int64_t v = 0; v < vocab; v++)
        for (int64_t i = 0; i < b; i++)
            if (ids[i] == v) {
                n++;
                break;
            }
    KernelCall c = {0};
    int at = acc ? 1 : 0;
    if (acc) c.in[0] = base, c.in_shape[0] = shp(b, h);
    c.in[at] = x, c.in[at + 1] = w, c.in[at + 2] = ids;
    c.in_shape[at] = shp(b, d), c.in_shape[at + 1] = shp(k, h), c.in_shape[at + 2] = shp(b, 1);
    c.out[0] = y, c.out[1] = work;
    c.out_shape[0] = shp(b, h), c.out_shape[1] = shp(b, d + h + 4);
    c.iattr[0] = (int32_t)first;
    if (acc)
        kernel_dense_ids_acc(&c);
    else
        kernel_dense_ids(&c);
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < h; j++) {
            double s = acc ? base[i * h + j] : 0.0;
            for (int64_t q = 0; q < d; q++) s += (double)x[i * d + q] * w[(first + q) * h + j];
            assert_true(fabs(s - y[i * h + j]) <= 1e-5 * (1 + fabs(s)));
        }

    KernelCall g = {0};
    g.in[0] = dy, g.in[1] = x, g.in[2] = w, g.in[3] = ids;
    g.in_shape[0] = shp(b, h), g.in_shape[1] = shp(b, d), g.in_shape[2] = shp(k, h);
    g.in_shape[3] = shp(b, 1);
    g.out[0] = dx, g.out[1] = dw, g.out[2] = work;
    g.out_shape[0] = shp(b, d), g.out_shape[1] = shp(k, h), g.out_shape[2] = shp(b, h + 2 * d + 4);
    g.iattr[0] = (int32_t)first;
    /* the backward's sums start from their group's first row, not from a cleared work */
    for (int64_t i = 0; i < b * (h + 2 * d + 4); i++) work[i] = NAN;
    kernel_dense_ids_grad(&g);
    for (int64_t q = 0; q < k; q++)
        for (int64_t j = 0; j < h; j++) {
            double s = 0.0;
            if (q >= first && q < first + d)
                for (int64_t i = 0; i < b; i++) s += (double)x[i * d + q - first] * dy[i * h + j];
            assert_true(fabs(s - dw[q * h + j]) <= 1e-4 * (1 + fabs(s)));
        }
    for (int64_t v = 0; v < vocab; v++) {
        int64_t seen = -1;
        for (int64_t q = 0; q < d; q++) {
            double want = 0.0, got = 0.0;
            for (int64_t i = 0; i < b; i++) {
                if (ids[i] != v) continue;
                for (int64_t j = 0; j < h; j++)
                    want += (double)dy[i * h + j] * w[(first + q) * h + j];
                got += dx[i * d + q];
                if (seen < 0) seen = i;
            }
            assert_true(fabs(want - got) <= 1e-4 * (1 + fabs(want)));
        }
        /* grouped: only the id's first row carries its gradient */
        for (int64_t i = 0; 4 * n <= 3 * b && i < b; i++)
            if (ids[i] == v && i != seen)
                for (int64_t q = 0; q < d; q++) assert_true(dx[i * d + q] == 0.0f);
    }
    free(table), free(x), free(w), free(base), free(y), free(dy), free(dx), free(dw), free(work);
    free(ids);
    return n;
}

static void test_dense_ids(void **state)
{
    (void)state;
    for (int acc = 0; acc < 2; acc++) {
        check_dense_ids(40, 6, acc);    /* few ids: grouped */
        check_dense_ids(40, 1000, acc); /* mostly distinct: the plain product */
        /* between: the forward's plain product, the backward's grouped one */
        int64_t n = check_dense_ids(40, 50, acc);
        assert_true(2 * n > 40 && 4 * n <= 3 * 40);
    }
    assert_int_equal(pool_start(2), 0);
    check_dense_ids(3000, 300, 0); /* grouped, the copy split across the pool */
    check_dense_ids(3000, 300, 1);
    pool_stop();
}

/* embedding_grad is scatter_add kept sparse: scattered back, its rows are
 * scatter_add's bit for bit (ids repeated, out of range, in any order), and
 * the row-wise SGD and Adagrad updates leave the same bytes as the dense ones,
 * on one thread and on the pool. */
static void check_sparse_embedding_grad(int64_t v, int64_t d, int64_t b, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    float *dy = fbuf((size_t)(b * d)), *rows = fbuf((size_t)(b * d));
    float *dense = fbuf((size_t)(v * d)), *back = fbuf((size_t)(v * d));
    int32_t *ids = calloc((size_t)b, sizeof *ids), *idx = calloc((size_t)b, sizeof *idx);
    int32_t *work = calloc((size_t)(2 * b), sizeof *work);
    assert_non_null(ids);
    assert_non_null(idx);
    assert_non_null(work);
    fill_uniform(&r, dy, (size_t)(b * d), -1, 1);
    for (int64_t i = 0; i < b; i++) {
        uint64_t k = rng_below(&r, 10);
        ids[i] = k == 0 ? -3 : k == 1 ? (int32_t)(v + 5) : (int32_t)rng_below(&r, (uint64_t)v);
    }
    KernelCall s = {0};
    s.in[0] = dy, s.in[1] = ids, s.in[2] = dense;
    s.in_shape[0] = shp(b, d), s.in_shape[1] = shp(b, 1), s.in_shape[2] = shp(v, d);
    s.out[0] = dense, s.out_shape[0] = shp(v, d);
    kernel_scatter_add(&s);
    KernelCall e = s;
    e.out[0] = rows, e.out[1] = idx, e.out[2] = work;
    e.out_shape[0] = shp(b, d), e.out_shape[1] = shp(b, 1), e.out_shape[2] = shp(b, 2);
    kernel_embedding_grad(&e);
    memset(back, 0, (size_t)(v * d) * sizeof *back);
    int64_t n = 0;
    for (; n < b && idx[n] >= 0; n++) {
        assert_true(idx[n] < v);
        if (n > 0) assert_true(idx[n] > idx[n - 1]); /* distinct, increasing */
        memcpy(back + (int64_t)idx[n] * d, rows + n * d, (size_t)d * sizeof *back);
    }
    for (int64_t k = n; k < b; k++) assert_int_equal(idx[k], -1);
    assert_memory_equal(back, dense, (size_t)(v * d) * sizeof *back);

    /* the updates: dense on one copy, row-wise on another, three steps */
    double knobs[2] = {0.3, 1e-7};
    float *p1 = fbuf((size_t)(v * d)), *p2 = fbuf((size_t)(v * d));
    float *a1 = fbuf((size_t)(v * d)), *a2 = fbuf((size_t)(v * d));
    for (int opt = 0; opt < 2; opt++) {
        fill_uniform(&r, p1, (size_t)(v * d), -0.05f, 0.05f);
        memcpy(p2, p1, (size_t)(v * d) * sizeof *p1);
        for (int64_t i = 0; i < v * d; i++) a1[i] = a2[i] = 0.1f;
        for (int step = 0; step < 3; step++) {
            KernelCall du = {0}, ru = {0};
            du.knobs = ru.knobs = knobs;
            du.iattr[0] = ru.iattr[0] = 0, du.iattr[1] = ru.iattr[1] = 1;
            du.in[0] = p1, du.in[1] = dense, du.in[2] = a1;
            du.in_shape[0] = du.in_shape[1] = du.in_shape[2] = shp(v, d);
            ru.in[0] = p2, ru.in[1] = rows, ru.in[2] = idx, ru.in[3] = a2;
            ru.in_shape[0] = ru.in_shape[3] = shp(v, d);
            ru.in_shape[1] = shp(b, d), ru.in_shape[2] = shp(b, 1);
            if (opt == 0) {
                kernel_sgd_update(&du);
                kernel_sgd_update_rows(&ru);
            } else {
                kernel_adagrad_update(&du);
                kernel_adagrad_update_rows(&ru);
            }
        }
        assert_memory_equal(p1, p2, (size_t)(v * d) * sizeof *p1);
        assert_memory_equal(a1, a2, (size_t)(v * d) * sizeof *a1);
    }
    free(dy), free(rows), free(dense), free(back), free(ids), free(idx), free(work);
    free(p1), free(p2), free(a1), free(a2);
}

/* The lazy Adam: where every row is touched each step, adam_update_rows and
 * adam_update leave the same bytes; a row never touched keeps its parameter
 * and moments (the dense Adam decays them and moves the row). */
static void test_adam_update_rows(void **state)
{
    (void)state;
    enum { V = 6, D = 3, B = 9 };
    Rng r;
    rng_seed(&r, 5);
    float p1[V * D], p2[V * D], m1[V * D] = {0}, m2[V * D] = {0}, v1[V * D] = {0}, v2[V * D] = {0};
    float rows[B * D], dense[V * D], step = 0.0f;
    int32_t idx[B];
    double knobs[4] = {0.01, 0.9, 0.999, 1e-7};
    for (int untouched = 0; untouched < 2; untouched++) {
        fill_uniform(&r, p1, V * D, -1, 1);
        memcpy(p2, p1, sizeof p1);
        memset(m1, 0, sizeof m1), memset(m2, 0, sizeof m2);
        memset(v1, 0, sizeof v1), memset(v2, 0, sizeof v2);
        float keep[D];
        memcpy(keep, p2 + (V - 1) * D, sizeof keep);
        step = 0.0f;
        for (int s = 0; s < 4; s++) {
            step += 1.0f;
            int n = untouched ? V - 1 : V; /* the last row untouched in the second round */
            fill_uniform(&r, rows, (size_t)n * D, -1, 1);
            memset(dense, 0, sizeof dense);
            for (int k = 0; k < B; k++) idx[k] = k < n ? k : -1;
            for (int k = 0; k < n; k++) memcpy(dense + k * D, rows + k * D, D * sizeof *rows);
            KernelCall du = {0}, ru = {0};
            du.knobs = ru.knobs = knobs;
            for (int a = 0; a < 4; a++) du.iattr[a] = ru.iattr[a] = a;
            du.in[0] = p1, du.in[1] = dense, du.in[2] = m1, du.in[3] = v1, du.in[4] = &step;
            for (int a = 0; a < 4; a++) du.in_shape[a] = shp(V, D);
            ru.in[0] = p2, ru.in[1] = rows, ru.in[2] = idx, ru.in[3] = m2, ru.in[4] = v2;
            ru.in[5] = &step;
            ru.in_shape[0] = ru.in_shape[3] = ru.in_shape[4] = shp(V, D);
            ru.in_shape[1] = shp(B, D), ru.in_shape[2] = shp(B, 1);
            kernel_adam_update(&du);
            kernel_adam_update_rows(&ru);
        }
        if (!untouched) {
            assert_memory_equal(p1, p2, sizeof p1);
            assert_memory_equal(m1, m2, sizeof m1);
            assert_memory_equal(v1, v2, sizeof v1);
        } else {
            assert_memory_equal(p1, p2, (V - 1) * D * sizeof *p1);
            assert_memory_equal(keep, p2 + (V - 1) * D, sizeof keep);
            for (int j = 0; j < D; j++) assert_true(m2[(V - 1) * D + j] == 0.0f);
        }
    }
}

static void test_embedding_grad_sparse(void **state)
{
    (void)state;
    check_sparse_embedding_grad(5, 3, 40, 1);      /* every id repeated */
    check_sparse_embedding_grad(70000, 4, 300, 2); /* ids of three bytes: three radix passes */
    check_sparse_embedding_grad(1, 2, 9, 3);       /* one row: every id lands on row 0 */
    assert_int_equal(pool_start(2), 0);
    check_sparse_embedding_grad(5000, 16, 6000, 4); /* updates split across the pool */
    pool_stop();
}

/* ---- optimizers: a few steps against the Keras formulas, written out in double */

static void test_sgd_adagrad_steps(void **state)
{
    (void)state;
    enum { N = 5, STEPS = 4 };
    Rng r;
    rng_seed(&r, 10);
    double knobs[3] = {0.1, 1e-7, 0.05}; /* adagrad lr, epsilon; sgd lr */
    float p[N], g[N], acc[N], sp[N];
    double pw[N], aw[N], sw[N];
    fill_uniform(&r, p, N, -1, 1);
    for (int i = 0; i < N; i++) {
        acc[i] = 0.1f; /* Keras' initial accumulator */
        pw[i] = sw[i] = sp[i] = p[i];
        aw[i] = 0.1;
    }
    for (int step = 0; step < STEPS; step++) {
        fill_uniform(&r, g, N, -2, 2);
        KernelCall a = {0};
        a.in[0] = p;
        a.in[1] = g;
        a.in[2] = acc;
        for (int k = 0; k < 3; k++) a.in_shape[k] = shp(N, 1);
        a.iattr[0] = 0;
        a.iattr[1] = 1;
        a.knobs = knobs;
        kernel_adagrad_update(&a);
        KernelCall s = {0};
        s.in[0] = sp;
        s.in[1] = g;
        s.in_shape[0] = s.in_shape[1] = shp(N, 1);
        s.iattr[0] = 2;
        s.knobs = knobs;
        kernel_sgd_update(&s);
        for (int i = 0; i < N; i++) {
            aw[i] += (double)g[i] * g[i];
            pw[i] -= 0.1 * g[i] / (sqrt(aw[i]) + 1e-7);
            sw[i] -= 0.05 * g[i];
        }
    }
    for (int i = 0; i < N; i++) {
        expect_close(acc[i], aw[i], 0, 1e-6, "adagrad accum", (size_t)i);
        expect_close(p[i], pw[i], 1e-6, 0, "adagrad param", (size_t)i);
        expect_close(sp[i], sw[i], 1e-6, 0, "sgd param", (size_t)i);
    }
}

static void test_adam_steps(void **state)
{
    (void)state;
    enum { N = 5, STEPS = 4 };
    Rng r;
    rng_seed(&r, 11);
    double knobs[4] = {0.01, 0.9, 0.999, 1e-7};
    float p[N], g[N], m[N] = {0}, v[N] = {0}, step = 0;
    double pw[N], mw[N] = {0}, vw[N] = {0};
    fill_uniform(&r, p, N, -1, 1);
    for (int i = 0; i < N; i++) pw[i] = p[i];
    for (int t = 1; t <= STEPS; t++) {
        fill_uniform(&r, g, N, -2, 2);
        KernelCall inc = {0};
        inc.in[0] = &step;
        inc.in_shape[0] = shp(1, 1);
        kernel_step_inc(&inc);
        assert_true(step == (float)t);
        KernelCall a = {0};
        a.in[0] = p;
        a.in[1] = g;
        a.in[2] = m;
        a.in[3] = v;
        a.in[4] = &step;
        for (int k = 0; k < 4; k++) a.in_shape[k] = shp(N, 1);
        a.in_shape[4] = shp(1, 1);
        for (int k = 0; k < 4; k++) a.iattr[k] = k;
        a.knobs = knobs;
        kernel_adam_update(&a);
        double lr_t = 0.01 * sqrt(1 - pow(0.999, t)) / (1 - pow(0.9, t));
        for (int i = 0; i < N; i++) {
            mw[i] = 0.9 * mw[i] + 0.1 * g[i];
            vw[i] = 0.999 * vw[i] + 0.001 * (double)g[i] * g[i];
            pw[i] -= lr_t * mw[i] / (sqrt(vw[i]) + 1e-7);
        }
    }
    for (int i = 0; i < N; i++) {
        expect_close(m[i], mw[i], 1e-7, 1e-6, "adam m", (size_t)i);
        expect_close(v[i], vw[i], 1e-9, 1e-6, "adam v", (size_t)i);
        expect_close(p[i], pw[i], 1e-6, 0, "adam param", (size_t)i);
    }
}

/* ---- retrieval */

/* rank by definition: 1 + #items whose double score beats the true item's. */
static float rank_ref(const float *q, const float *items, int64_t n, int64_t d, int32_t t)
{
    if (t < 0 || t >= n) return (float)(n + 1);
    double truth = 0;
    for (int64_t k = 0; k < d; k++) truth += (double)q[k] * items[t * d + k];
    int64_t c = 0;
    for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t k = 0; k < d; k++) s += (double)q[k] * items[j * d + k];
        c += s > truth;
    }
    return (float)(c + 1);
}

static void run_rank(const float *q, const float *items, const int32_t *t, float *rank, int64_t b,
                     int64_t n, int64_t d)
{
    KernelCall call = {0};
    call.in[0] = (void *)q;
    call.in_shape[0] = shp(b, d);
    call.in[1] = (void *)items;
    call.in_shape[1] = shp(n, d);
    call.in[2] = (void *)t;
    call.in_shape[2] = shp(b, 1);
    call.out[0] = rank;
    call.out_shape[0] = shp(b, 1);
    kernel_retrieval_rank(&call);
}

static void test_retrieval_rank_ties_duplicates(void **state)
{
    (void)state;
    enum { B = 150, N = 700, D = 32 };
    Rng r;
    rng_seed(&r, 12);
    float *q = fbuf(B * D), *items = fbuf(N * D), *rank = fbuf(B);
    int32_t t[B];
    fill_uniform(&r, q, B * D, -1, 1);
    fill_uniform(&r, items, N * D, -1, 1);
    /* duplicates of items (some repeated titles), before and after the original */
    for (int j = 0; j < 40; j++) {
        int64_t src = (int64_t)rng_below(&r, N), dst = (int64_t)rng_below(&r, N);
        memcpy(items + dst * D, items + src * D, D * sizeof *items);
    }
    /* near ties: copies of item 10 one ulp apart in one coordinate */
    for (int j = 0; j < 8; j++) {
        memcpy(items + (500 + j) * D, items + 10 * D, D * sizeof *items);
        float *c = items + (500 + j) * D + j;
        *c = nextafterf(*c, (j % 2) ? INFINITY : -INFINITY);
    }
    for (int i = 0; i < B; i++) t[i] = (int32_t)rng_below(&r, N);
    for (int i = 0; i < 20; i++) t[i] = 10; /* the near-tied item */
    t[20] = -1;                             /* misses */
    t[21] = N;
    t[22] = INT32_MIN;
    /* a query scoring several items exactly equal: all-zero query ties everything */
    memset(q + 23 * D, 0, D * sizeof *q);
    run_rank(q, items, t, rank, B, N, D);
    for (int i = 0; i < B; i++) {
        float want = rank_ref(q + i * D, items, N, D, t[i]);
        if (rank[i] != want) fail_msg("rank[%d] = %g, want %g", i, rank[i], want);
    }
    assert_true(rank[20] == N + 1 && rank[21] == N + 1 && rank[22] == N + 1);
    assert_true(rank[23] == 1);
    /* the duplicate of a true item never outranks it, wherever it sits */
    float one[D];
    fill_uniform(&r, one, D, -1, 1);
    float only[2 * D];
    memcpy(only, items + 3 * D, D * sizeof *only);
    memcpy(only + D, items + 3 * D, D * sizeof *only);
    int32_t t1[1] = {1};
    float rk;
    run_rank(one, only, t1, &rk, 1, 2, D);
    assert_true(rk == 1.0f);
    t1[0] = 0;
    run_rank(one, only, t1, &rk, 1, 2, D);
    assert_true(rk == 1.0f);
    free(q);
    free(items);
    free(rank);
}

typedef struct {
    float s;
    int32_t i;
} Scored;

/* retrieval_rank on the pool, with runs of equal queries: the same ranks as
 * on one thread, and those of a brute-force count in double. */
static void test_retrieval_rank_threads(void **state)
{
    (void)state;
    const int64_t b = 1000, n = 700, d = 8;
    Rng r;
    rng_seed(&r, 21);
    float *q = fbuf((size_t)(b * d)), *x = fbuf((size_t)(n * d));
    float *r1 = fbuf((size_t)b), *r3 = fbuf((size_t)b);
    int32_t *t = calloc((size_t)b, sizeof *t);
    assert_non_null(t);
    fill_uniform(&r, q, (size_t)(b * d), -1, 1);
    fill_uniform(&r, x, (size_t)(n * d), -1, 1);
    for (int64_t i = 0; i < b; i++) t[i] = (int32_t)rng_below(&r, (uint64_t)n + 1); /* n: a miss */
    /* runs of equal queries (a user's rows, sorted together), scored once per run */
    for (int64_t i = 1; i < b; i++)
        if (rng_below(&r, 4) != 0) memcpy(q + i * d, q + (i - 1) * d, (size_t)d * sizeof *q);
    KernelCall c = {0};
    c.in[0] = q, c.in[1] = x, c.in[2] = t;
    c.in_shape[0] = shp(b, d), c.in_shape[1] = shp(n, d), c.in_shape[2] = shp(b, 1);
    c.out[0] = r1, c.out_shape[0] = shp(b, 1);
    kernel_retrieval_rank(&c);
    assert_int_equal(pool_start(3), 0);
    c.out[0] = r3;
    kernel_retrieval_rank(&c);
    pool_stop();
    assert_memory_equal(r1, r3, (size_t)b * sizeof *r1);
    for (int64_t i = 0; i < b; i++) {
        double truth = 0;
        int64_t above = 0;
        if (t[i] == n) {
            assert_true(r1[i] == (float)(n + 1));
            continue;
        }
        for (int64_t k = 0; k < d; k++) truth += (double)q[i * d + k] * x[t[i] * d + k];
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < d; k++) s += (double)q[i * d + k] * x[j * d + k];
            above += s > truth;
        }
        assert_true(r1[i] == (float)(above + 1));
    }
    free(q), free(x), free(r1), free(r3), free(t);
}

/* top_k's order, written apart: a higher score first, NaN below everything
 * (below a real -inf too), then the lower index. */
static int by_rank(const void *pa, const void *pb)
{
    const Scored *a = pa, *b = pb;
    float ka = isnan(a->s) ? -INFINITY : a->s, kb = isnan(b->s) ? -INFINITY : b->s;
    if (ka != kb) return ka > kb ? -1 : 1;
    if (isnan(a->s) != isnan(b->s)) return isnan(a->s) ? 1 : -1;
    return (a->i > b->i) - (a->i < b->i);
}

/* top_k against a full sort, for k from 1 to every item (heaps of one, of
 * powers of two and one more, full); rows with ties everywhere, all equal,
 * NaN and infinities, and in ascending and descending order (each new score
 * the best so far, or the worst); on the pool, the same lists as on one thread. */
static void test_top_k_vs_sort(void **state)
{
    (void)state;
    enum { B = 12, N = 300 };
    Rng r;
    rng_seed(&r, 13);
    float *s = fbuf(B * N);
    /* few distinct values: ties everywhere */
    for (int i = 0; i < B * N; i++) s[i] = (float)rng_below(&r, 12) - 6.0f;
    for (int j = 0; j < N; j++) s[8 * N + j] = 1.0f; /* a row of equal scores */
    static const float odd[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 2.5f};
    for (int j = 0; j < N; j++) {
        s[9 * N + j] = odd[rng_below(&r, 6)];
        s[10 * N + j] = (float)j;
        s[11 * N + j] = (float)(N - j) / 7.0f;
    }
    static const int64_t ks[] = {1, 2, 5, 32, 33, 100, N - 1, N};
    Scored sorted[N];
    for (size_t kk = 0; kk < sizeof ks / sizeof ks[0]; kk++) {
        int64_t k = ks[kk];
        int32_t *ix = calloc((size_t)(B * k), sizeof *ix);
        float *sc = fbuf((size_t)(B * k));
        KernelCall call = {0};
        call.in[0] = s;
        call.in_shape[0] = shp(B, N);
        call.out[0] = ix;
        call.out_shape[0] = shp(B, k);
        call.out[1] = sc;
        call.out_shape[1] = shp(B, k);
        kernel_top_k(&call);
        for (int i = 0; i < B; i++) {
            for (int j = 0; j < N; j++) sorted[j] = (Scored){s[i * N + j], j};
            qsort(sorted, N, sizeof sorted[0], by_rank);
            for (int64_t j = 0; j < k; j++) {
                assert_int_equal(ix[i * k + j], sorted[j].i);
                assert_memory_equal(&sc[i * k + j], &sorted[j].s, sizeof(float));
            }
        }
        free(ix), free(sc);
    }
    free(s);
    /* on the pool (rows split from 65536 scores a part): the same lists */
    enum { BP = 40, NP = 5000 };
    float *sp = fbuf(BP * NP);
    fill_uniform(&r, sp, BP * NP, -1, 1);
    for (int64_t k = 7; k <= 70; k += 63) {
        int32_t *ix = calloc((size_t)(BP * k), sizeof *ix),
                *ix3 = calloc((size_t)(BP * k), sizeof *ix3);
        float *sc = fbuf((size_t)(BP * k)), *sc3 = fbuf((size_t)(BP * k));
        KernelCall call = {0};
        call.in[0] = sp;
        call.in_shape[0] = shp(BP, NP);
        call.out[0] = ix, call.out[1] = sc;
        call.out_shape[0] = call.out_shape[1] = shp(BP, k);
        kernel_top_k(&call);
        assert_int_equal(pool_start(3), 0);
        call.out[0] = ix3, call.out[1] = sc3;
        kernel_top_k(&call);
        pool_stop();
        assert_memory_equal(ix, ix3, (size_t)(BP * k) * sizeof *ix);
        assert_memory_equal(sc, sc3, (size_t)(BP * k) * sizeof *sc);
        Scored *all = malloc(NP * sizeof *all);
        for (int j = 0; j < NP; j++) all[j] = (Scored){sp[(BP - 1) * NP + j], j};
        qsort(all, NP, sizeof *all, by_rank);
        for (int64_t j = 0; j < k; j++) assert_int_equal(ix3[(BP - 1) * k + j], all[j].i);
        free(all), free(ix), free(ix3), free(sc), free(sc3);
    }
    free(sp);
}

/* ---- the fast exp */

/* Over [-87.3, 88.7] (a grid of 2^22 points plus every float in [-1, 1] at a
 * stride): relative error against double exp below 2.5e-7; below -87.3 the
 * result is 0 and e^x < FLT_MIN * 1.04; NaN and the overflow side as documented. */
static void test_fast_exp_accuracy(void **state)
{
    (void)state;
    double worst = 0, worst_f = 0;
    float worst_x = 0;
    const int64_t steps = 1 << 22;
    for (int64_t i = 0; i <= steps; i++) {
        float x = (float)(-100.0 + 188.0 * (double)i / (double)steps);
        float y = kern_expf(x);
        if (x < KERN_EXP_LO) {
            assert_true(y == 0.0f);
            assert_true(exp((double)x) < 1.04 * FLT_MIN);
            continue;
        }
        double want = exp((double)x);
        double rel = fabs(y - want) / want;
        double rel_f = fabs((double)y - expf(x)) / expf(x);
        if (rel > worst) {
            worst = rel;
            worst_x = x;
        }
        worst_f = rel_f > worst_f ? rel_f : worst_f;
    }
    for (float x = -1.0f; x <= 1.0f; x += 1.1920929e-7f * 13) {
        double rel = fabs(kern_expf(x) - exp((double)x)) / exp((double)x);
        if (rel > worst) {
            worst = rel;
            worst_x = x;
        }
    }
    printf("kern_expf: max relative error %.3g (at %.9g) vs exp, %.3g vs expf\n", worst,
           (double)worst_x, worst_f);
    assert_true(worst < 2.5e-7);
    assert_true(worst_f < 2.5e-7);
    assert_true(kern_expf(0.0f) == 1.0f);
    assert_true(kern_expf(-INFINITY) == 0.0f);
    assert_true(kern_expf(-1e30f) == 0.0f);
    assert_true(isinf(kern_expf(89.0f)) && isinf(kern_expf(INFINITY)));
    assert_true(isfinite(kern_expf(88.72f)));
    assert_true(isnan(kern_expf(NAN)));
}

/* The two fused in-batch losses against matmul + inbatch_softmax_xent: the
 * blocked one on random rows, the distinct-id one on rows gathered from small
 * tables, so that ids repeat (the grouping it relies on) and rows with equal
 * ids are equal. Block sizes smaller than the batch exercise several blocks. */
static void check_fused_xent_d(int64_t b, int64_t vq, int64_t vc, int64_t rows, uint64_t seed,
                               int64_t d)
{
    Rng r;
    rng_seed(&r, seed);
    float *tq = fbuf((size_t)(vq * d)), *tc = fbuf((size_t)(vc * d));
    float span = 1.5f * sqrtf(5.0f / (float)d); /* scores of the same spread whatever D */
    fill_uniform(&r, tq, (size_t)(vq * d), -span, span);
    fill_uniform(&r, tc, (size_t)(vc * d), -span, span);
    int32_t *qid = calloc((size_t)b, sizeof *qid), *cid = calloc((size_t)b, sizeof *cid);
    float *q = fbuf((size_t)(b * d)), *c = fbuf((size_t)(b * d)), *s = fbuf((size_t)(b * b));
    float *want_q = fbuf((size_t)(b * d)), *want_c = fbuf((size_t)(b * d));
    assert_non_null(qid);
    assert_non_null(cid);
    for (int64_t i = 0; i < b; i++) {
        qid[i] = (int32_t)rng_below(&r, (uint64_t)vq);
        cid[i] = (int32_t)rng_below(&r, (uint64_t)vc);
        memcpy(q + i * d, tq + qid[i] * d, (size_t)d * sizeof *q);
        memcpy(c + i * d, tc + cid[i] * d, (size_t)d * sizeof *c);
    }
    /* the reference: scores, then softmax - I, then dq = P c, dc = P^T q in double */
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < b; j++) {
            double dot = 0;
            for (int64_t k = 0; k < d; k++) dot += (double)q[i * d + k] * c[j * d + k];
            s[i * b + j] = (float)dot;
        }
    float want_loss;
    KernelCall x = {0};
    x.in[0] = s;
    x.in_shape[0] = shp(b, b);
    x.out[0] = &want_loss;
    x.out[1] = s;
    x.out_shape[1] = shp(b, b);
    kernel_inbatch_softmax_xent(&x);
    for (int64_t i = 0; i < b; i++)
        for (int64_t k = 0; k < d; k++) {
            double gq = 0, gc = 0;
            for (int64_t j = 0; j < b; j++) {
                gq += (double)s[i * b + j] * c[j * d + k];
                gc += (double)s[j * b + i] * q[j * d + k];
            }
            want_q[i * d + k] = (float)gq;
            want_c[i * d + k] = (float)gc;
        }
    for (int by_ids = 0; by_ids < 2; by_ids++) {
        int64_t wrows = by_ids ? rows + 6 * d + 6 : rows;
        float loss, *dq = fbuf((size_t)(b * d)), *dc = fbuf((size_t)(b * d));
        float *work = fbuf((size_t)(wrows * b));
        KernelCall f = {0};
        f.in[0] = q, f.in[1] = c, f.in[2] = qid, f.in[3] = cid;
        f.in_shape[0] = f.in_shape[1] = shp(b, d);
        f.in_shape[2] = f.in_shape[3] = shp(b, 1);
        f.out[0] = &loss, f.out[1] = dq, f.out[2] = dc, f.out[3] = work;
        f.out_shape[0] = shp(1, 1);
        f.out_shape[1] = f.out_shape[2] = shp(b, d);
        f.out_shape[3] = shp(wrows, b);
        if (by_ids)
            kernel_inbatch_softmax_xent_ids(&f);
        else
            kernel_inbatch_softmax_xent_qc(&f);
        const char *what = by_ids ? "ids loss" : "qc loss";
        expect_close(loss, want_loss, 1e-4, 1e-5, what, 0);
        for (int64_t i = 0; i < b * d; i++) {
            expect_close(dq[i], want_q[i], 1e-5, 1e-4, by_ids ? "ids dq" : "qc dq", i);
            expect_close(dc[i], want_c[i], 1e-5, 1e-4, by_ids ? "ids dc" : "qc dc", i);
        }
        free(dq), free(dc), free(work);
    }
    free(tq), free(tc), free(qid), free(cid), free(q), free(c), free(s), free(want_q), free(want_c);
}

/* C = alpha op(A) op(B) (+ C0 when acc) in double, for the product tests. */
static void expect_product(const char *what, int ta, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *v, int vrows, int64_t ldv,
                           const float *c0, int acc, const float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double sum = 0.0;
            for (int64_t q = 0; q < k; q++)
                sum += (double)(ta ? a[q * lda + i] : a[i * lda + q]) *
                       (vrows ? v[j * ldv + q] : v[q * ldv + j]);
            double want = alpha * sum + (acc ? c0[i * ldc + j] : 0.0);
            expect_close(c[i * ldc + j], want, 1e-5, 1e-5, what, (size_t)(i * ldc + j));
        }
}

/* kern_sgemm against the product in double, split on the pool by rows (a
 * tall product) and by columns (a short, wide one), every transpose, with
 * alpha and beta, by sgemm (one column: by a loop of its own) and (where the
 * CPU has AVX-512) by tiles.h's products, and the same bytes again on a second call: for tiles.h's,
 * on one thread against three. */
static void test_kern_sgemm(void **state)
{
    (void)state;
    /* the last: an A large enough for tiles.h to fetch ahead, its last block of
     * rows in part */
    const int64_t shapes[][3] = {{3000, 40, 64}, {300, 64, 500}, {8, 8192, 96},
                                 {5, 7, 3},      {700, 1, 130},  {8195, 64, 64}};
    Rng r;
    rng_seed(&r, 31);
    for (int fast = 0; fast < 2; fast++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int t = 0; t < 4; t++) {
                int ta = t & 1, tb = t >> 1;
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                int64_t lda = ta ? m : k, ldb = tb ? k : n;
                float *a = fbuf((size_t)(m * k)), *b = fbuf((size_t)(k * n));
                float *c = fbuf((size_t)(m * n)), *c0 = fbuf((size_t)(m * n));
                float *again = fbuf((size_t)(m * n));
                fill_uniform(&r, a, (size_t)(m * k), -1.0f, 1.0f);
                fill_uniform(&r, b, (size_t)(k * n), -1.0f, 1.0f);
                fill_uniform(&r, c0, (size_t)(m * n), -1.0f, 1.0f);
                float beta = (float)((t + (int)s) % 2);
                memcpy(c, c0, (size_t)(m * n) * sizeof *c);
                memcpy(again, c0, (size_t)(m * n) * sizeof *c);
                tiles_enable(fast);
                if (fast && tiles_usable() && t == 2 && s == 0) /* (0,1) with B's panels */
                    assert_true(kern_sgemm_tiled(ta, tb, m, n, k, beta));
                assert_int_equal(pool_start(3), 0);
                kern_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, beta, c, n);
                /* the products kern_sgemm leaves to tiles.h */
                int tiled = kern_sgemm_tiled(ta, tb, m, n, k, beta);
                if (tiled) pool_stop(), assert_int_equal(pool_start(1), 0);
                kern_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, beta, again, n);
                pool_stop();
                tiles_enable(1);
                assert_memory_equal(c, again, (size_t)(m * n) * sizeof *c);
                expect_product("kern_sgemm", ta, m, n, k, 0.5f, a, lda, b, tb, ldb, c0,
                               beta != 0.0f, c, n);
                free(a), free(b), free(c), free(c0), free(again);
            }
}

/* Each case with D = 5 (sgemm's products) and D = 32, 64 (the AVX-512 ones
 * where the CPU has them; sgemm's too, switched to). */
static void check_fused_xent(int64_t b, int64_t vq, int64_t vc, int64_t rows, uint64_t seed)
{
    check_fused_xent_d(b, vq, vc, rows, seed, 5);
    for (int fast = 0; fast < 2; fast++) {
        tiles_enable(fast);
        check_fused_xent_d(b, vq, vc, rows, seed, 32);
        check_fused_xent_d(b, vq, vc, rows + 64, seed, 64);
    }
    tiles_enable(1);
}

/* The AVX-512 products of tiles.h against the same products in double: rows
 * (8 a block), columns (32 a block, masked for tiles_abt) and inner extents
 * (tiles_atb sums TILES_ATB_ROWS rows at a time) with partial blocks, operands
 * with wider rows than the product uses, alpha, and adding to C. Columns of
 * C past n keep their values. */
static void test_tiles_products(void **state)
{
    (void)state;
    if (!tiles_usable()) {
        print_message("no AVX-512 here: every product is sgemm's\n");
        return;
    }
    const int64_t ms[] = {1, 7, 8, 9, 64}, ns[] = {1, 31, 32, 33, 64, 100}, ks[] = {1, 5, 32, 300};
    Rng r;
    rng_seed(&r, 21);
    for (size_t x = 0; x < sizeof ms / sizeof *ms; x++)
        for (size_t y = 0; y < sizeof ns / sizeof *ns; y++)
            for (size_t z = 0; z < sizeof ks / sizeof *ks; z++) {
                int64_t m = ms[x], n = ns[y], k = ks[z], pad = 3;
                float alpha = (x + y) % 2 ? 0.5f : 1.0f;
                int acc = (int)((y + z) % 2);
                int64_t lda = k + pad, ldat = m + pad, ldb = n + pad, ldbt = k + pad, ldc = n + pad;
                float *a = fbuf((size_t)(m * lda)), *at = fbuf((size_t)(k * ldat));
                float *b = fbuf((size_t)(k * ldb)), *bt = fbuf((size_t)(n * ldbt));
                float *c0 = fbuf((size_t)(m * ldc)), *c = fbuf((size_t)(m * ldc));
                float *panels = fbuf((size_t)tiles_panels_floats(n, k));
                fill_uniform(&r, a, (size_t)(m * lda), -1.0f, 1.0f);
                fill_uniform(&r, at, (size_t)(k * ldat), -1.0f, 1.0f);
                fill_uniform(&r, b, (size_t)(k * ldb), -1.0f, 1.0f);
                fill_uniform(&r, bt, (size_t)(n * ldbt), -1.0f, 1.0f);
                fill_uniform(&r, c0, (size_t)(m * ldc), -1.0f, 1.0f);
                for (int form = 0; form < 4; form++) {
                    if (form >= 2 && n % 32) continue; /* tiles_ab, tiles_atb need it */
                    memcpy(c, c0, (size_t)(m * ldc) * sizeof *c);
                    if (form == 0) {
                        tiles_panels_rows(bt, ldbt, n, k, panels);
                        tiles_abt(m, n, k, alpha, a, lda, panels, acc, c, ldc);
                        expect_product("tiles_abt (rows)", 0, m, n, k, alpha, a, lda, bt, 1, ldbt,
                                       c0, acc, c, ldc);
                    } else if (form == 1) {
                        tiles_panels_cols(b, ldb, k, n, panels);
                        tiles_abt(m, n, k, alpha, a, lda, panels, acc, c, ldc);
                        expect_product("tiles_abt (cols)", 0, m, n, k, alpha, a, lda, b, 0, ldb, c0,
                                       acc, c, ldc);
                    } else if (form == 2) {
                        tiles_ab(m, n, k, alpha, a, lda, b, ldb, acc, c, ldc);
                        expect_product("tiles_ab", 0, m, n, k, alpha, a, lda, b, 0, ldb, c0, acc, c,
                                       ldc);
                    } else {
                        tiles_atb(m, n, k, alpha, at, ldat, b, ldb, acc, c, ldc);
                        expect_product("tiles_atb", 1, m, n, k, alpha, at, ldat, b, 0, ldb, c0, acc,
                                       c, ldc);
                    }
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = n; j < ldc; j++)
                            assert_true(c[i * ldc + j] == c0[i * ldc + j]);
                }
                free(a), free(at), free(b), free(bt), free(c0), free(c), free(panels);
            }
}

/* tiles_abt_max writes tiles_abt's bits and each row's max, which a NaN does
 * not change (as in the softmax's max pass): rows in and past a block of 8,
 * rows of one masked panel and of several, a row whose largest values are
 * in its last, masked panel, and a row of NaN only (-inf). */
static void test_tiles_abt_max(void **state)
{
    (void)state;
    if (!tiles_usable()) {
        print_message("no AVX-512 here: the softmax takes its own max\n");
        return;
    }
    const int64_t ms[] = {1, 8, 13}, ns[] = {1, 20, 32, 70}, k = 32;
    Rng r;
    rng_seed(&r, 22);
    for (size_t x = 0; x < sizeof ms / sizeof *ms; x++)
        for (size_t y = 0; y < sizeof ns / sizeof *ns; y++) {
            int64_t m = ms[x], n = ns[y], ldc = n + 2;
            float *a = fbuf((size_t)(m * k)), *b = fbuf((size_t)(n * k));
            float *c = fbuf((size_t)(m * ldc)), *want = fbuf((size_t)(m * ldc));
            float *panels = fbuf((size_t)tiles_panels_floats(n, k)), *mx = fbuf((size_t)m);
            fill_uniform(&r, a, (size_t)(m * k), -1.0f, 1.0f);
            fill_uniform(&r, b, (size_t)(n * k), 0.1f, 1.0f);
            for (int64_t q = 0; q < k; q++) b[(n - 1) * k + q] = 2.0f; /* the last column wins */
            a[0] = NAN;                                                /* row 0: NaN only */
            if (m > 1) a[k] = 5.0f; /* row 1: its scores grow with column n-1's */
            if (m > 2) /* the last row's scores are all below 0: the padding's 0 must not count */
                for (int64_t q = 0; q < k; q++) a[(m - 1) * k + q] = -1.0f;
            tiles_panels_rows(b, k, n, k, panels);
            memset(c, 0, (size_t)(m * ldc) * sizeof *c);
            memset(want, 0, (size_t)(m * ldc) * sizeof *want);
            tiles_abt(m, n, k, 0.5f, a, k, panels, 0, want, ldc);
            tiles_abt_max(m, n, k, 0.5f, a, k, panels, c, ldc, mx);
            assert_memory_equal(c, want, (size_t)(m * ldc) * sizeof *c);
            for (int64_t i = 0; i < m; i++) {
                float best = -INFINITY;
                for (int64_t j = 0; j < n; j++)
                    if (want[i * ldc + j] > best) best = want[i * ldc + j];
                assert_true(mx[i] == best);
            }
            assert_true(mx[0] == -INFINITY);
            if (m > 2) assert_true(mx[m - 1] < 0.0f);
            free(a), free(b), free(c), free(want), free(panels), free(mx);
        }
}

/* The AVX-512 exp (the fast softmax's) against double exp on a grid over
 * [-87, 88] (normal results), and at its ends: 0 below the float range and
 * at -inf, infinity above it, NaN kept. */
static void test_xent_fast_exp(void **state)
{
    (void)state;
    if (!xent_fast_usable(32)) {
        print_message("no AVX-512 here: the softmax uses kern_expf\n");
        return;
    }
    enum { N = 1 << 20 };
    float *x = fbuf(N), *y = fbuf(N);
    for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * (float)i / (float)(N - 1);
    xent_fast_exp(x, N, y);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]), rel = fabs(y[i] - want) / want;
        if (rel > worst) worst = rel;
        if (!(rel < 2.5e-7)) fail_msg("fast exp(%.9g) = %.9g, want %.9g", x[i], y[i], want);
    }
    print_message("fast exp: max relative error %.3g on [-87, 88]\n", worst);
    const float ends[] = {-104.0f, -1e30f, -INFINITY, 89.0f, INFINITY, NAN, 0.0f};
    float got[7];
    xent_fast_exp(ends, 7, got);
    for (int i = 0; i < 3; i++) assert_true(got[i] == 0.0f);
    assert_true(isinf(got[3]) && got[3] > 0 && isinf(got[4]));
    assert_true(isnan(got[5]));
    assert_true(got[6] == 1.0f);
    free(x), free(y);
}

static void test_fused_inbatch_softmax(void **state)
{
    (void)state;
    check_fused_xent(37, 4, 9, 8, 1);        /* few distinct queries: heavy grouping, 5 blocks */
    check_fused_xent(64, 64, 3, 16, 2);      /* few distinct candidates */
    check_fused_xent(50, 1000, 1000, 64, 3); /* nearly all distinct, one block */
    check_fused_xent(1, 1, 1, 4, 4);
    /* on the thread pool: the rows split into parts, each with its own H */
    for (int threads = 2; threads <= 3; threads++) {
        assert_int_equal(pool_start(threads), 0);
        assert_int_equal(pool_threads(), threads);
        check_fused_xent(600, 5000, 5000, 40, 5); /* all distinct: several parts and tiles */
        check_fused_xent(300, 7, 11, 64, 6);      /* one part */
        pool_stop();
    }
}

/* The fused form on the pool gives the same bytes every time at a given
 * thread count, and agrees with one thread up to rounding. */
static void test_fused_inbatch_softmax_threads_repeat(void **state)
{
    (void)state;
    const int64_t b = 700, d = 16, rows = 32;
    Rng r;
    rng_seed(&r, 11);
    float *q = fbuf((size_t)(b * d)), *c = fbuf((size_t)(b * d)), *work = fbuf((size_t)(rows * b));
    fill_uniform(&r, q, (size_t)(b * d), -1.0f, 1.0f);
    fill_uniform(&r, c, (size_t)(b * d), -1.0f, 1.0f);
    float loss[3], *dq[3], *dc[3];
    for (int run = 0; run < 3; run++) {
        dq[run] = fbuf((size_t)(b * d)), dc[run] = fbuf((size_t)(b * d));
        assert_int_equal(pool_start(run == 0 ? 1 : 2), 0);
        KernelCall f = {0};
        f.in[0] = q, f.in[1] = c;
        f.in_shape[0] = f.in_shape[1] = shp(b, d);
        f.out[0] = &loss[run], f.out[1] = dq[run], f.out[2] = dc[run], f.out[3] = work;
        f.out_shape[0] = shp(1, 1);
        f.out_shape[1] = f.out_shape[2] = shp(b, d);
        f.out_shape[3] = shp(rows, b);
        kernel_inbatch_softmax_xent_qc(&f);
        pool_stop();
    }
    assert_memory_equal(&loss[1], &loss[2], sizeof loss[1]);
    assert_memory_equal(dq[1], dq[2], (size_t)(b * d) * sizeof *dq[1]);
    assert_memory_equal(dc[1], dc[2], (size_t)(b * d) * sizeof *dc[1]);
    expect_close(loss[1], loss[0], 1e-5, 1e-5, "loss at 2 threads", 0);
    for (int64_t i = 0; i < b * d; i++) {
        expect_close(dq[1][i], dq[0][i], 1e-6, 1e-5, "dq at 2 threads", i);
        expect_close(dc[1][i], dc[0][i], 1e-6, 1e-5, "dc at 2 threads", i);
    }
    for (int run = 0; run < 3; run++) free(dq[run]), free(dc[run]);
    free(q), free(c), free(work);
}

/* The kernels that split their rows on the pool give the same bytes at 1 and
 * at 3 threads (sizes large enough to split). */
static void test_row_kernels_threads(void **state)
{
    (void)state;
    enum { B = 3000, H = 130, V = 500 };
    Rng r;
    rng_seed(&r, 17);
    float *x = fbuf(B * H), *x2 = fbuf(B * H), *bias = fbuf(H), *table = fbuf(V * H);
    float *out[2][8];
    int32_t *ids = calloc(B, sizeof *ids);
    assert_non_null(ids);
    fill_uniform(&r, x, B * H, -1, 1);
    fill_uniform(&r, x2, B * H, -1, 1);
    fill_uniform(&r, bias, H, -1, 1);
    fill_uniform(&r, table, V * H, -1, 1);
    for (int i = 0; i < B; i++) ids[i] = (int32_t)rng_below(&r, V + 3);
    float s = 0.75f;
    double knobs[2] = {0.1, 1e-7};
    for (int run = 0; run < 2; run++) {
        if (run == 1) assert_int_equal(pool_start(3), 0);
        for (int k = 0; k < 8; k++) out[run][k] = fbuf(B * H);
        KernelCall c = {0};
        c.knobs = knobs;
        c.in[0] = x, c.in[1] = x2, c.in_shape[0] = c.in_shape[1] = shp(B, H);
        c.out_shape[0] = shp(B, H);
        c.out[0] = out[run][0], kernel_relu(&c);
        c.out[0] = out[run][1], kernel_relu_grad(&c);
        c.out[0] = out[run][2], kernel_add(&c);
        c.in[1] = &s, c.in_shape[1] = shp(1, 1), c.out[0] = out[run][3], kernel_scale(&c);
        c.in[1] = bias, c.in_shape[1] = shp(H, 1), c.out[0] = out[run][4], kernel_bias_add(&c);
        c.out[0] = out[run][5], c.out_shape[0] = shp(H, 1), kernel_sum_rows(&c);
        KernelCall g = {0};
        g.in[0] = table, g.in[1] = ids, g.in_shape[0] = shp(V, H), g.in_shape[1] = shp(B, 1);
        g.out[0] = out[run][6], g.out_shape[0] = shp(B, H);
        kernel_gather(&g);
        KernelCall u = {0};
        u.knobs = knobs, u.iattr[1] = 1;
        float *acc = out[run][7];
        for (int i = 0; i < B * H; i++) acc[i] = 0.1f;
        u.in[0] = out[run][6], u.in[1] = x2, u.in[2] = acc;
        u.in_shape[0] = u.in_shape[1] = u.in_shape[2] = shp(B, H);
        kernel_adagrad_update(&u);
        if (run == 1) pool_stop();
    }
    for (int k = 0; k < 8; k++) assert_memory_equal(out[0][k], out[1][k], B * H * sizeof(float));
    for (int run = 0; run < 2; run++)
        for (int k = 0; k < 8; k++) free(out[run][k]);
    free(x), free(x2), free(bias), free(table), free(ids);
}

/* pool_run hands work over by spinning, and by sleeping once a thread has
 * waited long: every part of every run runs once, on its own thread, and the
 * caller returns only after all of them, whether the workers were spinning
 * (runs back to back), asleep (a pause of 2 ms between runs) or the caller
 * waits long for a slow part (one that sleeps). And the pool restarts. */
typedef struct {
    _Atomic int ran[4];
    int parts, slow_part;
    pthread_t owner[4];
} HandoffJob;

static void handoff_part(void *ctx, int part, int parts)
{
    HandoffJob *j = ctx;
    assert_int_equal(parts, j->parts);
    if (part == j->slow_part) {
        struct timespec pause = {0, 3000000};
        nanosleep(&pause, NULL);
    }
    j->owner[part] = pthread_self();
    atomic_fetch_add(&j->ran[part], 1);
}

static void test_pool_handoff(void **state)
{
    (void)state;
    for (int start = 0; start < 2; start++) {
        assert_int_equal(pool_start(3), 0);
        for (int run = 0; run < 600; run++) {
            HandoffJob j = {.parts = 2 + run % 2, .slow_part = run % 50 == 7 ? run % 3 : -1};
            j.slow_part = j.slow_part >= j.parts ? -1 : j.slow_part;
            if (run % 100 == 50) { /* the workers fall asleep */
                struct timespec pause = {0, 2000000};
                nanosleep(&pause, NULL);
            }
            pool_run(handoff_part, &j, j.parts);
            for (int p = 0; p < 4; p++) assert_int_equal(atomic_load(&j.ran[p]), p < j.parts);
            for (int p = 0; p < j.parts; p++)
                for (int q = 0; q < p; q++) assert_false(pthread_equal(j.owner[p], j.owner[q]));
            assert_true(pthread_equal(j.owner[0], pthread_self()));
        }
        pool_stop();
    }
}

/* pool_solo: threads running kernels side by side (a sweep's runs), each off
 * the started pool, get the bytes of one thread, while the pool stays the
 * caller's. (Without it their pool_run calls would share the pool's one
 * generation of work: parts lost to the other caller, or a hang.) */
typedef struct {
    float *q, *c;
    int64_t b, d, rows;
    float loss, *dq, *dc, *work;
    int threads_seen, parts_seen;
} SoloJob;

static void count_parts(void *ctx, int part, int parts)
{
    SoloJob *j = ctx;
    j->parts_seen += part == 0 ? parts : 100; /* a part beyond 0 would be another thread's */
}

static void *solo_softmax(void *arg)
{
    SoloJob *j = arg;
    pool_solo(1);
    j->threads_seen = pool_threads();
    pool_run(count_parts, j, 3);
    KernelCall f = {0};
    f.in[0] = j->q, f.in[1] = j->c;
    f.in_shape[0] = f.in_shape[1] = shp(j->b, j->d);
    f.out[0] = &j->loss, f.out[1] = j->dq, f.out[2] = j->dc, f.out[3] = j->work;
    f.out_shape[0] = shp(1, 1);
    f.out_shape[1] = f.out_shape[2] = shp(j->b, j->d);
    f.out_shape[3] = shp(j->rows, j->b);
    kernel_inbatch_softmax_xent_qc(&f);
    return NULL;
}

static void test_pool_solo(void **state)
{
    (void)state;
    const int64_t b = 700, d = 16, rows = 32;
    Rng r;
    rng_seed(&r, 23);
    float *q = fbuf((size_t)(b * d)), *c = fbuf((size_t)(b * d));
    fill_uniform(&r, q, (size_t)(b * d), -1.0f, 1.0f);
    fill_uniform(&r, c, (size_t)(b * d), -1.0f, 1.0f);
    SoloJob job[3];
    for (int k = 0; k < 3; k++) {
        job[k] = (SoloJob){.q = q, .c = c, .b = b, .d = d, .rows = rows};
        job[k].dq = fbuf((size_t)(b * d)), job[k].dc = fbuf((size_t)(b * d));
        job[k].work = fbuf((size_t)(rows * b));
    }
    solo_softmax(&job[0]); /* no pool: one thread */
    pool_solo(0);
    assert_int_equal(pool_start(3), 0);
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, solo_softmax, &job[1 + k]), 0);
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_join(t[k], NULL), 0);
    assert_int_equal(pool_threads(), 3); /* the caller keeps the pool */
    pool_stop();
    for (int k = 1; k < 3; k++) {
        assert_int_equal(job[k].threads_seen, 1);
        assert_int_equal(job[k].parts_seen, 1);
        assert_memory_equal(&job[k].loss, &job[0].loss, sizeof job[0].loss);
        assert_memory_equal(job[k].dq, job[0].dq, (size_t)(b * d) * sizeof *job[0].dq);
        assert_memory_equal(job[k].dc, job[0].dc, (size_t)(b * d) * sizeof *job[0].dc);
    }
    for (int k = 0; k < 3; k++) free(job[k].dq), free(job[k].dc), free(job[k].work);
    free(q), free(c);
}

/* ---- normalization, dropout and the row-wise activations
 *
 * These checks also print the worst error seen as a fraction of its tolerance. */

/* Checks |got - want| <= abs + rel |want| like expect_close, and keeps the
 * largest |got - want| / (abs + rel |want|) in *worst. */
static void expect_within(double got, double want, double abs_tol, double rel_tol, const char *what,
                          size_t i, double *worst)
{
    double ratio = fabs(got - want) / (abs_tol + rel_tol * fabs(want));
    if (!(ratio <= 1.0)) ratio = INFINITY;
    if (ratio > *worst) *worst = ratio;
    expect_close(got, want, abs_tol, rel_tol, what, i);
}

static void run_layer_norm(float *x, const float *gain, const float *bias, float *y, float *mean,
                           float *rstd, int64_t rows, int64_t cols, float eps)
{
    KernelCall call = {0};
    call.in[0] = x;
    call.in_shape[0] = shp(rows, cols);
    call.in[1] = (void *)gain;
    call.in_shape[1] = shp(cols, 1);
    call.in[2] = (void *)bias;
    call.in_shape[2] = shp(cols, 1);
    call.out[0] = y;
    call.out_shape[0] = shp(rows, cols);
    call.out[1] = mean;
    call.out_shape[1] = shp(rows, 1);
    call.out[2] = rstd;
    call.out_shape[2] = shp(rows, 1);
    call.fattr[0] = eps;
    kernel_layer_norm(&call);
}

/* layer_norm against two-pass statistics in double, on rows of 300 columns (more
 * than one 256-column block of the backward's column sums): random rows, a
 * constant row (variance 0: y must be the bias exactly), a row whose variance
 * is below eps, rows of +-1e4 + u, u in [-1, 1], where a float one-pass variance
 * E[x^2] - E[x]^2 would be pure rounding (E[x^2] = 1e8, one ulp 8) and even a
 * one-pass variance in double puts rstd ~5e-7 off (tried: this test fails it),
 * and a row of 1e6 + 16 u, where that error grows to about 2e-5.
 * y in float: |xhat gain| <= ~3, so a few ulps of 3 (abs 2e-6) suffice; the
 * statistics are rounded once from double (rel 1e-7). layer_norm_grad against
 * the same formulas in double on the kernel's own float statistics, and both
 * kernels in place. */
static void test_layer_norm(void **state)
{
    (void)state;
    enum { R = 7, C = 300 };
    const float eps = 1e-3f;
    Rng r;
    rng_seed(&r, 21);
    float *x = fbuf(R * C), *y = fbuf(R * C), *y2 = fbuf(R * C), *gain = fbuf(C), *bias = fbuf(C);
    float mean[R], rstd[R], mean2[R], rstd2[R];
    fill_uniform(&r, x, R * C, -2, 2);
    for (int j = 0; j < C; j++) x[1 * C + j] = 3.25f;                        /* constant */
    for (int j = 0; j < C; j++) x[2 * C + j] = 1e4f + 2 * rng_float(&r) - 1; /* offset */
    for (int j = 0; j < C; j++) x[3 * C + j] = -1e4f + 2 * rng_float(&r) - 1;
    for (int j = 0; j < C; j++) x[4 * C + j] = 1.0f + 1e-3f * rng_float(&r); /* var < eps */
    for (int j = 0; j < C; j++) x[5 * C + j] = 1e6f + 32 * rng_float(&r) - 16;
    fill_uniform(&r, gain, C, 0.5f, 1.5f);
    fill_uniform(&r, bias, C, -1, 1);
    run_layer_norm(x, gain, bias, y, mean, rstd, R, C, eps);
    double worst = 0.0;
    for (int i = 0; i < R; i++) {
        double mu = 0.0, var = 0.0;
        for (int j = 0; j < C; j++) mu += x[i * C + j];
        mu /= C;
        for (int j = 0; j < C; j++)
            var += ((double)x[i * C + j] - mu) * ((double)x[i * C + j] - mu);
        var /= C;
        double rs = 1.0 / sqrt(var + (double)eps);
        expect_within(mean[i], mu, 1e-30, 1e-7, "layer_norm mean", (size_t)i, &worst);
        expect_within(rstd[i], rs, 0, 1e-7, "layer_norm rstd", (size_t)i, &worst);
        for (int j = 0; j < C; j++) {
            double want = ((double)x[i * C + j] - mu) * rs * gain[j] + bias[j];
            expect_within(y[i * C + j], want, 2e-6, 0, "layer_norm y", (size_t)(i * C + j), &worst);
        }
    }
    for (int j = 0; j < C; j++) assert_true(y[1 * C + j] == bias[j]);
    printf("layer_norm: y, mean, rstd vs two-pass double: worst error %.3f of its tolerance\n",
           worst);
    memcpy(y2, x, R * C * sizeof *x); /* in place */
    run_layer_norm(y2, gain, bias, y2, mean2, rstd2, R, C, eps);
    assert_memory_equal(y2, y, R * C * sizeof *y);
    assert_memory_equal(mean2, mean, sizeof mean);
    assert_memory_equal(rstd2, rstd, sizeof rstd);

    float *dy = fbuf(R * C), *dx = fbuf(R * C), *dgain = fbuf(C), *dbias = fbuf(C);
    float *dg2 = fbuf(C), *db2 = fbuf(C);
    fill_uniform(&r, dy, R * C, -1, 1);
    KernelCall g = {0};
    g.in[0] = dy;
    g.in_shape[0] = shp(R, C);
    g.in[1] = x;
    g.in_shape[1] = shp(R, C);
    g.in[2] = gain;
    g.in_shape[2] = shp(C, 1);
    g.in[3] = mean;
    g.in_shape[3] = shp(R, 1);
    g.in[4] = rstd;
    g.in_shape[4] = shp(R, 1);
    g.out[0] = dx;
    g.out_shape[0] = shp(R, C);
    g.out[1] = dgain;
    g.out_shape[1] = shp(C, 1);
    g.out[2] = dbias;
    g.out_shape[2] = shp(C, 1);
    kernel_layer_norm_grad(&g);
    worst = 0.0;
    for (int j = 0; j < C; j++) {
        double sg = 0.0, sb = 0.0;
        for (int i = 0; i < R; i++) {
            sg += (double)dy[i * C + j] * ((double)x[i * C + j] - mean[i]) * rstd[i];
            sb += dy[i * C + j];
        }
        /* R terms of size <= 2.5, each rounded once in float */
        expect_within(dgain[j], sg, 1e-5, 1e-6, "layer_norm_grad dgain", (size_t)j, &worst);
        expect_within(dbias[j], sb, 1e-6, 1e-6, "layer_norm_grad dbias", (size_t)j, &worst);
    }
    for (int i = 0; i < R; i++) {
        double mg = 0.0, mgx = 0.0;
        for (int j = 0; j < C; j++) {
            double gj = (double)dy[i * C + j] * gain[j];
            mg += gj;
            mgx += gj * ((double)x[i * C + j] - mean[i]) * rstd[i];
        }
        mg /= C, mgx /= C;
        for (int j = 0; j < C; j++) {
            double xhat = ((double)x[i * C + j] - mean[i]) * rstd[i];
            double want = rstd[i] * ((double)dy[i * C + j] * gain[j] - mg - xhat * mgx);
            /* float terms of size <= 1.5 rstd (rstd <= 31.6 at var 0): 4e-7 rstd */
            expect_within(dx[i * C + j], want, 4e-7 * rstd[i], 1e-6, "layer_norm_grad dx",
                          (size_t)(i * C + j), &worst);
        }
    }
    printf("layer_norm_grad: dx, dgain, dbias vs double: worst error %.3f of its tolerance\n",
           worst);
    g.in[0] = y2; /* dx over dy's buffer */
    memcpy(y2, dy, R * C * sizeof *dy);
    g.out[0] = y2;
    g.out[1] = dg2;
    g.out[2] = db2;
    kernel_layer_norm_grad(&g);
    assert_memory_equal(y2, dx, R * C * sizeof *dx);
    assert_memory_equal(dg2, dgain, C * sizeof *dgain);
    assert_memory_equal(db2, dbias, C * sizeof *dbias);
    free(x), free(y), free(y2), free(gain), free(bias);
    free(dy), free(dx), free(dgain), free(dbias), free(dg2), free(db2);
}

/* Runs dropout (or dropout_grad) over n elements as a (rows, n / rows) tensor
 * with p = knobs[0], seed = knobs[1]. */
static void run_dropout(Kern k, const float *x, float *y, int64_t rows, int64_t n, double p,
                        double seed, float step, int32_t salt)
{
    double knobs[2] = {p, seed};
    KernelCall call = {0};
    call.in[0] = (void *)x;
    call.in_shape[0] = shp(rows, n / rows);
    call.in[1] = &step;
    call.in_shape[1] = shp(1, 1);
    call.out[0] = y;
    call.out_shape[0] = shp(rows, n / rows);
    call.iattr[0] = 0;
    call.iattr[1] = 1;
    call.iattr[2] = salt;
    call.knobs = knobs;
    k(&call);
}

/* The share of elements where the masks of two outputs (on inputs with no zeros)
 * differ. */
static double mask_difference(const float *a, const float *b, int64_t n)
{
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += (a[i] == 0.0f) != (b[i] == 0.0f);
    return (double)d / (double)n;
}

/* dropout over 10^6 elements: p = 0 is the identity to the bit (also in place);
 * for p in {0.1, 0.3, 0.5, 0.9} the kept share is 1 - p within 5 standard
 * deviations (sqrt(p (1 - p) / 10^6) <= 5e-4), each kept value is x times
 * exactly (float)(1 / (1 - p)) and each dropped one is 0; the same (seed, step,
 * salt) gives the same mask, at any shape of the same elements and for the first
 * elements of a larger tensor (so no split between threads can change it), and
 * changing any one of the three changes about 2 p (1 - p) of the mask (a
 * different, independent mask); dropout_grad applies the very same mask. */
static void test_dropout(void **state)
{
    (void)state;
    enum { N = 1000000 };
    Rng r;
    rng_seed(&r, 31);
    float *x = fbuf(N + 1000), *y = fbuf(N), *y2 = fbuf(N + 1000), *dx = fbuf(N);
    fill_uniform(&r, x, N + 1000, 0.5f, 1.5f);
    for (int64_t i = 0; i < N; i += 2) x[i] = -x[i]; /* no zeros, both signs */
    run_dropout(kernel_dropout, x, y, 1000, N, 0.0, 42, 3.0f, 1);
    assert_memory_equal(y, x, N * sizeof *x);
    memcpy(y2, x, N * sizeof *x);
    run_dropout(kernel_dropout, y2, y2, 1000, N, 0.0, 42, 3.0f, 1);
    assert_memory_equal(y2, x, N * sizeof *x);

    static const double ps[] = {0.1, 0.3, 0.5, 0.9};
    double worst = 0.0;
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        double p = ps[k];
        float scale = (float)(1.0 / (1.0 - p));
        run_dropout(kernel_dropout, x, y, 1000, N, p, 42, 3.0f, 1);
        int64_t kept = 0;
        for (int64_t i = 0; i < N; i++) {
            if (y[i] != 0.0f) {
                kept++;
                assert_true(y[i] == x[i] * scale);
            }
        }
        double share = (double)kept / N, sd = sqrt(p * (1 - p) / N);
        double ratio = fabs(share - (1 - p)) / (5 * sd);
        if (ratio > worst) worst = ratio;
        if (ratio > 1.0)
            fail_msg("dropout p=%g: kept share %.6f, expected %.6f +- %.6f", p, share, 1 - p,
                     5 * sd);
        printf("dropout p=%.1f: kept share %.6f over 10^6 (expected %.1f, %.2f sd)\n", p, share,
               1 - p, fabs(share - (1 - p)) / sd);
        /* the same numbers, the same mask: another shape, in place, a longer tensor */
        run_dropout(kernel_dropout, x, y2, 1, N, p, 42, 3.0f, 1);
        assert_memory_equal(y2, y, N * sizeof *y);
        memcpy(y2, x, N * sizeof *x);
        run_dropout(kernel_dropout, y2, y2, 500, N, p, 42, 3.0f, 1);
        assert_memory_equal(y2, y, N * sizeof *y);
        run_dropout(kernel_dropout, x, y2, 1, N + 1000, p, 42, 3.0f, 1);
        assert_memory_equal(y2, y, N * sizeof *y);
        /* any one of seed, step, salt changed: an independent mask */
        double want = 2 * p * (1 - p);
        run_dropout(kernel_dropout, x, y2, 1000, N, p, 43, 3.0f, 1);
        assert_true(fabs(mask_difference(y, y2, N) - want) < 0.01);
        run_dropout(kernel_dropout, x, y2, 1000, N, p, 42, 4.0f, 1);
        assert_true(fabs(mask_difference(y, y2, N) - want) < 0.01);
        run_dropout(kernel_dropout, x, y2, 1000, N, p, 42, 3.0f, 2);
        assert_true(fabs(mask_difference(y, y2, N) - want) < 0.01);
        /* the backward: the same elements, the same scale */
        run_dropout(kernel_dropout_grad, x, dx, 1000, N, p, 42, 3.0f, 1);
        assert_memory_equal(dx, y, N * sizeof *y);
    }
    printf("dropout: kept shares within %.3f of their 5-sd tolerance\n", worst);
    free(x), free(y), free(y2), free(dx);
}

/* gelu on [-10, 10] (step 0.01) and at extremes, against Keras's formula
 * 0.5 x (1 + erf(x / sqrt 2)) in double, within 1.2e-7 relative (2 ulp) plus
 * 1e-15 absolute: below x = -5 that double formula itself keeps only about
 * 1e-16 absolute, so the relative accuracy of the far tail is checked against
 * the same function written 0.5 x erfc(-x / sqrt 2), within 1.2e-7 relative
 * plus 1.5e-45 absolute (the smallest float: gelu(-30) = -1.5e-196 is -0).
 * gelu_grad against dy (Phi + x phi) in double, and both in place. */
static void test_gelu(void **state)
{
    (void)state;
    enum { N = 2009 };
    float x[N], y[N], y2[N], dy[N], dx[N], dx2[N];
    for (int i = 0; i < 2001; i++) x[i] = -10.0f + 0.01f * (float)i;
    static const float extra[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, 1e30f, -1e30f};
    for (int i = 0; i < 8; i++) x[2001 + i] = extra[i];
    Rng r;
    rng_seed(&r, 41);
    fill_uniform(&r, dy, N, -1, 1);
    run_unary(kernel_gelu, x, y, N);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double v = x[i];
        double keras = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        double tail = 0.5 * v * erfc(-v / sqrt(2.0));
        expect_within(y[i], keras, 1e-15, 1.2e-7, "gelu vs erf", (size_t)i, &worst);
        expect_within(y[i], tail, 1.5e-45, 1.2e-7, "gelu vs erfc", (size_t)i, &worst);
    }
    run_binary(kernel_gelu_grad, dy, x, dx, N);
    for (int i = 0; i < N; i++) {
        double v = x[i];
        double d = 0.5 * erfc(-v / sqrt(2.0)) + v * exp(-0.5 * v * v) / sqrt(2.0 * acos(-1.0));
        expect_within(dx[i], dy[i] * d, 1.5e-45, 1.2e-7, "gelu_grad", (size_t)i, &worst);
    }
    printf("gelu, gelu_grad vs double: worst error %.3f of its tolerance\n", worst);
    memcpy(y2, x, sizeof x);
    run_unary(kernel_gelu, y2, y2, N);
    assert_memory_equal(y2, y, sizeof y);
    memcpy(dx2, dy, sizeof dy);
    run_binary(kernel_gelu_grad, dx2, x, dx2, N);
    assert_memory_equal(dx2, dx, sizeof dx);
}

/* softmax against a double reference with the max subtracted, on rows of 37:
 * random rows, rows of huge values (1e4 + u, and 88.8 where e^x overflows a
 * float, and -1e4: no overflow, no 0/0), a row with one dominant value, and a
 * constant row (exactly 1/37 each, up to the float rounding of 1/37). kern_expf
 * is within 2 ulp, the division one more: 5e-7 relative; the exponent x - max
 * is itself rounded to float, which moves e^(x - max) by up to 6e-8 |x - max|
 * relative (the function's own condition number, as in any float32 softmax);
 * plus FLT_MIN absolute for results flushed below it. Each row sums to 1
 * within 37 * 5e-7.
 * softmax_grad against y (dy - sum dy y) in double, and both in place. */
static void test_softmax(void **state)
{
    (void)state;
    enum { R = 7, C = 37 };
    Rng r;
    rng_seed(&r, 51);
    float x[R * C], y[R * C], y2[R * C], dy[R * C], dx[R * C], dx2[R * C];
    fill_uniform(&r, x, R * C, -3, 3);
    for (int j = 0; j < C; j++) x[1 * C + j] = 1e4f + 4 * rng_float(&r);
    for (int j = 0; j < C; j++) x[2 * C + j] = 88.8f - 2 * rng_float(&r);
    for (int j = 0; j < C; j++) x[3 * C + j] = -1e4f - 4 * rng_float(&r);
    for (int j = 0; j < C; j++) x[4 * C + j] = j == 5 ? 60.0f : rng_float(&r);
    for (int j = 0; j < C; j++) x[5 * C + j] = 2.5f;
    fill_uniform(&r, dy, R * C, -1, 1);
    KernelCall call = {0};
    call.in[0] = x;
    call.in_shape[0] = shp(R, C);
    call.out[0] = y;
    call.out_shape[0] = shp(R, C);
    kernel_softmax(&call);
    double worst = 0.0;
    for (int i = 0; i < R; i++) {
        double m = x[i * C], sum = 0.0, total = 0.0;
        for (int j = 1; j < C; j++) m = x[i * C + j] > m ? x[i * C + j] : m;
        for (int j = 0; j < C; j++) sum += exp((double)x[i * C + j] - m);
        for (int j = 0; j < C; j++) {
            double want = exp((double)x[i * C + j] - m) / sum;
            double cond = 6e-8 * ((double)m - x[i * C + j]);
            expect_within(y[i * C + j], want, FLT_MIN, 5e-7 + cond, "softmax", (size_t)(i * C + j),
                          &worst);
            total += y[i * C + j];
        }
        expect_within(total, 1.0, C * 5e-7, 0, "softmax row sum", (size_t)i, &worst);
    }
    KernelCall g = {0};
    g.in[0] = dy;
    g.in_shape[0] = shp(R, C);
    g.in[1] = y;
    g.in_shape[1] = shp(R, C);
    g.out[0] = dx;
    g.out_shape[0] = shp(R, C);
    kernel_softmax_grad(&g);
    for (int i = 0; i < R; i++) {
        double dot = 0.0;
        for (int j = 0; j < C; j++) dot += (double)dy[i * C + j] * y[i * C + j];
        for (int j = 0; j < C; j++) {
            /* dot rounded to float and dy - dot (<= 2) rounded: 2.4e-7 y, then
             * the product: 6e-8 relative */
            double want = y[i * C + j] * ((double)dy[i * C + j] - dot);
            expect_within(dx[i * C + j], want, 4e-7 * y[i * C + j] + 1e-45, 1.2e-7, "softmax_grad",
                          (size_t)(i * C + j), &worst);
        }
    }
    printf("softmax, softmax_grad vs double: worst error %.3f of its tolerance\n", worst);
    memcpy(y2, x, sizeof x);
    call.in[0] = y2;
    call.out[0] = y2;
    kernel_softmax(&call);
    assert_memory_equal(y2, y, sizeof y);
    memcpy(dx2, dy, sizeof dy);
    g.in[0] = dx2;
    g.out[0] = dx2;
    kernel_softmax_grad(&g);
    assert_memory_equal(dx2, dx, sizeof dx);
}

/* A missing label (NaN) leaves its row out: the pointwise losses over rows with
 * some labels missing equal, bit for bit, the losses over only the labelled
 * rows, and the gradient is the reduced one's there and 0 at a missing row. */
static void test_losses_skip_missing_labels(void **state)
{
    (void)state;
    enum { B = 7 };
    const float pred[B] = {0.5f, -1.25f, 2.0f, 0.75f, -0.5f, 1.5f, 0.1f};
    const float label[B] = {1.0f, NAN, 0.0f, 1.0f, NAN, 0.0f, 1.0f};
    float kp[B], kl[B];
    int n = 0;
    for (int i = 0; i < B; i++)
        if (!isnan(label[i])) kp[n] = pred[i], kl[n++] = label[i];
    static const OpKind losses[2][2] = {{OP_MSE, OP_MSE_GRAD}, {OP_BCE_LOGITS, OP_BCE_LOGITS_GRAD}};
    for (int l = 0; l < 2; l++) {
        float full = 0, part = 0, dloss = 0.75f, dfull[B], dpart[B];
        KernelCall c = {0};
        c.in[0] = (void *)pred, c.in[1] = (void *)label, c.out[0] = &full;
        c.in_shape[0] = shp(B, 1), c.in_shape[1] = shp(B, 1), c.out_shape[0] = shp(1, 1);
        kernel_for(losses[l][0])(&c);
        c.in[0] = kp, c.in[1] = kl, c.out[0] = &part;
        c.in_shape[0] = shp(n, 1), c.in_shape[1] = shp(n, 1);
        kernel_for(losses[l][0])(&c);
        assert_true(isfinite(full));
        assert_memory_equal(&full, &part, sizeof full);
        KernelCall g = {0};
        g.in[0] = (void *)pred, g.in[1] = (void *)label, g.in[2] = &dloss, g.out[0] = dfull;
        g.in_shape[0] = shp(B, 1), g.in_shape[1] = shp(B, 1), g.in_shape[2] = shp(1, 1);
        g.out_shape[0] = shp(B, 1);
        kernel_for(losses[l][1])(&g);
        g.in[0] = kp, g.in[1] = kl, g.out[0] = dpart;
        g.in_shape[0] = shp(n, 1), g.in_shape[1] = shp(n, 1), g.out_shape[0] = shp(n, 1);
        kernel_for(losses[l][1])(&g);
        for (int i = 0, k = 0; i < B; i++) {
            if (isnan(label[i])) {
                assert_true(dfull[i] == 0.0f);
                continue;
            }
            assert_memory_equal(&dfull[i], &dpart[k++], sizeof(float));
        }
    }
    /* every label missing: no loss, no gradient */
    const float none[2] = {NAN, NAN};
    float loss = 1, d[2] = {1, 1}, dl = 1;
    KernelCall c = {0};
    c.in[0] = (void *)pred, c.in[1] = (void *)none, c.in[2] = &dl, c.out[0] = &loss;
    c.in_shape[0] = shp(2, 1), c.in_shape[1] = shp(2, 1), c.out_shape[0] = shp(1, 1);
    kernel_for(OP_MSE)(&c);
    assert_true(loss == 0.0f);
    c.out[0] = d, c.out_shape[0] = shp(2, 1), c.in_shape[2] = shp(1, 1);
    kernel_for(OP_MSE_GRAD)(&c);
    assert_true(d[0] == 0.0f && d[1] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_covers_every_op),
        cmocka_unit_test(test_losses_skip_missing_labels),
        cmocka_unit_test(test_matmul_transposes_odd_sizes),
        cmocka_unit_test(test_bias_add_sum_rows),
        cmocka_unit_test(test_concat_slice_roundtrip),
        cmocka_unit_test(test_elementwise_and_scalars),
        cmocka_unit_test(test_activations_vs_double),
        cmocka_unit_test(test_activation_grads_fd),
        cmocka_unit_test(test_mse_bce),
        cmocka_unit_test(test_inbatch_softmax_xent),
        cmocka_unit_test(test_inbatch_softmax_xent_grad_fd),
        cmocka_unit_test(test_gather_scatter_out_of_range),
        cmocka_unit_test(test_embedding_grad_sparse),
        cmocka_unit_test(test_dense_ids),
        cmocka_unit_test(test_adam_update_rows),
        cmocka_unit_test(test_sgd_adagrad_steps),
        cmocka_unit_test(test_adam_steps),
        cmocka_unit_test(test_retrieval_rank_ties_duplicates),
        cmocka_unit_test(test_retrieval_rank_threads),
        cmocka_unit_test(test_top_k_vs_sort),
        cmocka_unit_test(test_fast_exp_accuracy),
        cmocka_unit_test(test_fused_inbatch_softmax),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_fused_inbatch_softmax_threads_repeat),
        cmocka_unit_test(test_tiles_products),
        cmocka_unit_test(test_tiles_abt_max),
        cmocka_unit_test(test_kern_sgemm),
        cmocka_unit_test(test_mean_rows),
        cmocka_unit_test(test_xent_fast_exp),
        cmocka_unit_test(test_row_kernels_threads),
        cmocka_unit_test(test_pool_handoff),
        cmocka_unit_test(test_pool_solo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
