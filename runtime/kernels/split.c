/* Splitting a kernel's rows, or a matrix product's, across the runtime's
 * thread pool (kern_rows and kern_sgemm, see kern.h). */
#include "kernels/kern.h"
#include "mtr/pool.h"

#include <cblas.h>

typedef struct {
    const KernelCall *call;
    KernRows fn;
    int64_t n, align;
} SplitJob;

static void split_part(void *ctx, int part, int parts)
{
    const SplitJob *job = ctx;
    int64_t lo, hi;
    pool_rows(job->n, job->align, part, parts, &lo, &hi);
    if (lo < hi) job->fn(job->call, lo, hi);
}

void kern_rows(const KernelCall *call, int64_t n, int64_t width, int64_t align, KernRows fn)
{
    int parts = pool_parts(n * (width > 0 ? width : 1), KERN_MIN_PART);
    if (parts <= 1 || n <= align) {
        fn(call, 0, n);
        return;
    }
    SplitJob job = {call, fn, n, align};
    pool_run(split_part, &job, parts);
}

/* The least multiply-adds worth a part of a product of its own on the pool
 * (some 20 microseconds of sgemm). */
#define GEMM_MIN_PART (1 << 21)

typedef struct {
    int ta, tb, by_cols;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} GemmJob;

static void gemm(const GemmJob *g, int64_t m, int64_t n, const float *a, const float *b, float *c)
{
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)g->k, g->alpha, a, (int)g->lda, b, (int)g->ldb, g->beta, c,
                (int)g->ldc);
}

/* Rows [lo, hi) of c are rows of op(a) (a's columns when transposed: the
 * same leading dimension, a shifted start); columns are op(b)'s likewise. */
static void gemm_part(void *ctx, int part, int parts)
{
    const GemmJob *g = ctx;
    int64_t lo, hi;
    pool_rows(g->by_cols ? g->n : g->m, 16, part, parts, &lo, &hi);
    if (lo >= hi) return;
    if (g->by_cols)
        gemm(g, g->m, hi - lo, g->a, g->b + (g->tb ? lo * g->ldb : lo), g->c + lo);
    else
        gemm(g, hi - lo, g->n, g->a + (g->ta ? lo : lo * g->lda), g->b, g->c + lo * g->ldc);
}

void kern_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    GemmJob g = {ta, tb, 0, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
    if (m == 0 || n == 0) return;
    int parts = pool_parts(m * n * k, GEMM_MIN_PART);
    g.by_cols = m < 16 * parts && n > m; /* too few rows for every part: split the columns */
    int64_t blocks = (g.by_cols ? n : m) / 16;
    if (parts > blocks) parts = (int)blocks;
    if (parts <= 1) {
        gemm(&g, m, n, a, b, c);
        return;
    }
    int blas = openblas_get_num_threads();
    openblas_set_num_threads(1);
    pool_run(gemm_part, &g, parts);
    openblas_set_num_threads(blas);
}
