/* Matrix products written for AVX-512 (tiles_avx512.c): each block of the
 * result keeps its sums in sixteen registers, reading its operands where they
 * lie instead of packing them first as sgemm does. At the shapes of our models
 * (D = 32 embeddings, layers of a few hundred units) sgemm spends about as
 * long packing and clearing as it does multiplying; these do not.
 *
 * Every sum runs over the inner extent in increasing order with fused
 * multiply-adds (tiles_atb: in chunks of TILES_ATB_ROWS rows, each added to
 * the result in turn), so an element of the result depends on the shape
 * only: not on the thread count, nor on which rows are computed together. */
#ifndef MTR_TILES_H
#define MTR_TILES_H

#include <stdint.h>

/* The rows of A (tiles_atb: of A and B) summed into the result at a time. */
#define TILES_ATB_ROWS 256

/* Whether the CPU has AVX-512F and the products are switched on. */
int tiles_usable(void);
void tiles_enable(int on); /* tests and benchmarks: 0 leaves every product to sgemm */

/* B's n vectors of k floats laid out for tiles_abt: in panels of 32 vectors,
 * k rows of 32 floats each, the last panel padded with zeros. Vector j is row
 * j of B (n,k) for tiles_panels_rows, column j of B (k,n) for
 * tiles_panels_cols. */
int64_t tiles_panels_floats(int64_t n, int64_t k);
void tiles_panels_rows(const float *b, int64_t ldb, int64_t n, int64_t k, float *panels);
void tiles_panels_cols(const float *b, int64_t ldb, int64_t k, int64_t n, float *panels);

/* C = alpha A V^T (acc: C += alpha A V^T), A (m,k), V the n vectors in panels. */
void tiles_abt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *panels, int acc, float *c, int64_t ldc);
/* The same with acc 0, and row_max[i] = the largest element of C's row i (a
 * NaN does not count; -inf for a row of none): the softmax's max pass, made
 * while the scores are still in registers. */
void tiles_abt_max(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                   const float *panels, float *c, int64_t ldc, float *row_max);
/* C = alpha A B (acc: +=), A (m,k), B (k,n) with n a multiple of 32. */
void tiles_ab(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, int acc, float *c, int64_t ldc);
/* C = alpha A^T B (acc: +=), A (k,m), B (k,n) with n a multiple of 32. */
void tiles_atb(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, int acc, float *c, int64_t ldc);

#endif
