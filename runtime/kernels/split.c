/* Splitting a kernel's rows, or a matrix product's, across the runtime's
 * thread pool (kern_rows and kern_sgemm, see kern.h). */
#include "kernels/kern.h"
#include "kernels/tiles.h"
#include "mtr/pool.h"

#include <cblas.h>
#include <stdlib.h>

/* B's panels for tiles_abt, made on the thread that calls kern_sgemm: room
 * for a layer's weights up to 64k floats (256 x 256 units); a larger B is
 * sgemm's. Kept per thread, so that kernels never allocate and products on
 * different threads (two models embedded side by side) never share it. */
#define PANEL_FLOATS (1 << 16)
static _Thread_local float panel_space[PANEL_FLOATS];

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

/* The products tiles.h makes (else sgemm): A B with B's columns a multiple
 * of 32 wide, else from B's panels (when they fit panel_space); A B^T from
 * its panels; A^T B with B's columns a multiple of 32 wide; beta 0 or 1.
 * Products with fewer than 8 rows, 16 columns or an inner extent under 8 (a
 * layer with one unit, say) are sgemm's: the blocks of 8 rows by 32 columns
 * would mostly multiply padding. */
typedef enum { FORM_SGEMM, FORM_AB, FORM_ABT, FORM_ATB } GemmForm;

static GemmForm tiles_form(int ta, int tb, int64_t m, int64_t n, int64_t k, float beta)
{
    if ((beta != 0.0f && beta != 1.0f) || m < 8 || n < 16 || k < 8 || !tiles_usable())
        return FORM_SGEMM;
    if (ta) return !tb && n % 32 == 0 ? FORM_ATB : FORM_SGEMM;
    if (!tb && n % 32 == 0) return FORM_AB;
    return tiles_panels_floats(n, k) <= PANEL_FLOATS ? FORM_ABT : FORM_SGEMM;
}

int kern_sgemm_tiled(int ta, int tb, int64_t m, int64_t n, int64_t k, float beta)
{
    return tiles_form(ta, tb, m, n, k, beta) != FORM_SGEMM;
}

typedef struct {
    GemmForm form;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha;
    int acc;
    const float *a, *b, *panels;
    float *c;
} TilesJob;

/* Rows [lo, hi) of c: rows of a, or (A^T B) its columns. */
static void tiles_part(void *ctx, int part, int parts)
{
    const TilesJob *t = ctx;
    int64_t lo, hi;
    pool_rows(t->m, 8, part, parts, &lo, &hi);
    if (lo >= hi) return;
    float *c = t->c + lo * t->ldc;
    switch (t->form) {
    case FORM_AB:
        tiles_ab(hi - lo, t->n, t->k, t->alpha, t->a + lo * t->lda, t->lda, t->b, t->ldb, t->acc, c,
                 t->ldc);
        break;
    case FORM_ABT:
        tiles_abt(hi - lo, t->n, t->k, t->alpha, t->a + lo * t->lda, t->lda, t->panels, t->acc, c,
                  t->ldc);
        break;
    case FORM_ATB:
        tiles_atb(hi - lo, t->n, t->k, t->alpha, t->a + lo, t->lda, t->b, t->ldb, t->acc, c,
                  t->ldc);
        break;
    case FORM_SGEMM:
    default:
        abort(); /* kern_sgemm never makes such a job */
    }
}

/* The product by tiles.h, its rows split on the pool in blocks of 8 (every
 * element the same whatever the split). */
static void tiles_product(GemmForm form, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                          float *c, int64_t ldc)
{
    TilesJob t = {form, m, n, k, lda, ldb, ldc, alpha, beta != 0.0f, a, b, NULL, c};
    if (form == FORM_ABT) {
        if (tb)
            tiles_panels_rows(b, ldb, n, k, panel_space);
        else
            tiles_panels_cols(b, ldb, k, n, panel_space);
        t.panels = panel_space;
    }
    int parts = pool_parts(m * n * k, GEMM_MIN_PART);
    if (parts > (m + 7) / 8) parts = (int)((m + 7) / 8);
    if (parts <= 1)
        tiles_part(&t, 0, 1);
    else
        pool_run(tiles_part, &t, parts);
}

/* c = alpha op(a) b + beta c for one column b (stride ldb) and c (stride
 * ldc): a layer with one unit, or its weights' gradient. sgemm packs all of a
 * first (2.5x the time of reading it once at 8192 x 128), and sgemv's sum for
 * a row depends on how many rows it is given; here each element is summed in
 * double in an order of its own, so a row's result is the same in any batch.
 * Compiled for AVX-512 and AVX2 as well, chosen at load time: the same IEEE
 * operations (nothing contracted), the same bits. */
#define COLUMN_BLOCK 256

KERN_CLONES static void column_product(int ta, int64_t m, int64_t k, float alpha, const float *a,
                                       int64_t lda, const float *b, int64_t ldb, float beta,
                                       float *c, int64_t ldc)
{
    if (!ta) {
        /* c_i = a_i . b: eight lanes of the dot product, added in lane order */
        for (int64_t i = 0; i < m; i++) {
            const float *ai = a + i * lda;
            double lane[8] = {0.0};
            int64_t q = 0;
            for (; q + 8 <= k; q += 8)
                for (int l = 0; l < 8; l++) lane[l] += (double)ai[q + l] * (double)b[(q + l) * ldb];
            for (; q < k; q++) lane[0] += (double)ai[q] * (double)b[q * ldb];
            double sum = 0.0;
            for (int l = 0; l < 8; l++) sum += lane[l];
            float v = (float)(alpha * sum);
            c[i * ldc] = beta == 0.0f ? v : v + beta * c[i * ldc];
        }
        return;
    }
    /* c_j = sum_q a[q][j] b_q: the rows of a in order, COLUMN_BLOCK columns at a time */
    for (int64_t j0 = 0; j0 < m; j0 += COLUMN_BLOCK) {
        int64_t w = m - j0 < COLUMN_BLOCK ? m - j0 : COLUMN_BLOCK;
        double sum[COLUMN_BLOCK] = {0.0};
        for (int64_t q = 0; q < k; q++) {
            const float *aq = a + q * lda + j0;
            double bq = (double)b[q * ldb];
            for (int64_t j = 0; j < w; j++) sum[j] += (double)aq[j] * bq;
        }
        for (int64_t j = 0; j < w; j++) {
            float v = (float)(alpha * sum[j]);
            c[(j0 + j) * ldc] = beta == 0.0f ? v : v + beta * c[(j0 + j) * ldc];
        }
    }
}

void kern_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    GemmJob g = {ta, tb, 0, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
    if (m == 0 || n == 0) return;
    GemmForm form = tiles_form(ta, tb, m, n, k, beta);
    if (form != FORM_SGEMM) {
        tiles_product(form, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (n == 1) {
        column_product(ta, m, k, alpha, a, lda, b, tb ? 1 : ldb, beta, c, ldc);
        return;
    }
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
