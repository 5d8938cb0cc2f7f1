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
#include "mtr/pool.h"
#include "mtr/rng.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>

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
#define X(E, n, id, ni, no, nk, f) assert_ptr_equal(kernel_for(OP_##E), kernel_##n);
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

static void test_mse_bce(void **state)
{
    (void)state;
    enum { B = 11 };
    Rng r;
    rng_seed(&r, 6);
    float pred[B], label[B], bin[B];
    fill_uniform(&r, pred, B, -3, 3);
    fill_uniform(&r, label, B, 1, 5);
    for (int i = 0; i < B; i++) bin[i] = (float)(rng_next(&r) & 1);
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
    check_sparse_embedding_grad(5, 3, 40, 1);        /* every id repeated */
    check_sparse_embedding_grad(70000, 4, 300, 2);   /* ids of three bytes: three radix passes */
    check_sparse_embedding_grad(1, 2, 9, 3);         /* one row: every id lands on row 0 */
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

static int by_score_then_index(const void *pa, const void *pb)
{
    const Scored *a = pa, *b = pb;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

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

static void test_top_k_vs_sort(void **state)
{
    (void)state;
    enum { B = 9, N = 300 };
    Rng r;
    rng_seed(&r, 13);
    float *s = fbuf(B * N);
    /* few distinct values: ties everywhere */
    for (int i = 0; i < B * N; i++) s[i] = (float)rng_below(&r, 12) - 6.0f;
    for (int j = 0; j < N; j++) s[8 * N + j] = 1.0f; /* a row of equal scores */
    static const int64_t ks[] = {1, 5, 100, N};
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
            qsort(sorted, N, sizeof sorted[0], by_score_then_index);
            for (int64_t j = 0; j < k; j++) {
                assert_int_equal(ix[i * k + j], sorted[j].i);
                assert_true(sc[i * k + j] == sorted[j].s);
            }
        }
        free(ix);
        free(sc);
    }
    free(s);
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
static void check_fused_xent(int64_t b, int64_t vq, int64_t vc, int64_t rows, uint64_t seed)
{
    const int64_t d = 5;
    Rng r;
    rng_seed(&r, seed);
    float *tq = fbuf((size_t)(vq * d)), *tc = fbuf((size_t)(vc * d));
    fill_uniform(&r, tq, (size_t)(vq * d), -1.5f, 1.5f);
    fill_uniform(&r, tc, (size_t)(vc * d), -1.5f, 1.5f);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_covers_every_op),
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
        cmocka_unit_test(test_adam_update_rows),
        cmocka_unit_test(test_sgd_adagrad_steps),
        cmocka_unit_test(test_adam_steps),
        cmocka_unit_test(test_retrieval_rank_ties_duplicates),
        cmocka_unit_test(test_retrieval_rank_threads),
        cmocka_unit_test(test_top_k_vs_sort),
        cmocka_unit_test(test_fast_exp_accuracy),
        cmocka_unit_test(test_fused_inbatch_softmax),
        cmocka_unit_test(test_fused_inbatch_softmax_threads_repeat),
        cmocka_unit_test(test_row_kernels_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
