/* The products of tiles.h in AVX-512. A block of the result is 8 rows by 32
 * columns (two vectors), sixteen sums in registers; rows past the end of the
 * result repeat its last row and are not stored, columns past it are masked
 * (tiles_abt) or excluded by the caller (n a multiple of 32). Where the CPU
 * lacks AVX-512 (or the build is not for x86-64 with gcc or clang) nothing
 * here runs: tiles_usable says 0 and the callers use sgemm. */
#include "kernels/tiles.h"
#include "kernels/avx512.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int switched_off; /* set by tiles_enable(0) */

void tiles_enable(int on)
{
    switched_off = !on;
}

int tiles_usable(void)
{
#ifdef MTR_AVX512
    /* no __builtin_cpu_init needed: libgcc sets the features up before main */
    return !switched_off && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int64_t tiles_panels_floats(int64_t n, int64_t k)
{
    return (n + 31) / 32 * 32 * k;
}

void tiles_panels_rows(const float *b, int64_t ldb, int64_t n, int64_t k, float *panels)
{
    for (int64_t j0 = 0; j0 < n; j0 += 32) {
        float *panel = panels + j0 * k;
        for (int64_t q = 0; q < k; q++)
            for (int64_t l = 0; l < 32; l++)
                panel[q * 32 + l] = j0 + l < n ? b[(j0 + l) * ldb + q] : 0.0f;
    }
}

void tiles_panels_cols(const float *b, int64_t ldb, int64_t k, int64_t n, float *panels)
{
    for (int64_t j0 = 0; j0 < n; j0 += 32) {
        float *panel = panels + j0 * k;
        int64_t w = n - j0 < 32 ? n - j0 : 32;
        for (int64_t q = 0; q < k; q++) {
            memcpy(panel + q * 32, b + q * ldb + j0, (size_t)w * sizeof *panel);
            for (int64_t l = w; l < 32; l++) panel[q * 32 + l] = 0.0f;
        }
    }
}

#ifdef MTR_AVX512

/* The blocks are inlined where called, each call with a constant fetch, so
 * that a block that fetches nothing has no trace of it in its loop (which
 * cost the softmax's products 5% when it had). */
#define INLINE_BLOCK static inline __attribute__((always_inline))

/* Eight rows (or columns) of sums, two vectors each, named so that they stay
 * in registers. */
#define EIGHT(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* Stores alpha s (acc: adds it to what is there) under masks m0, m1; with
 * mx set, *mx keeps each lane's largest stored value (a NaN does not count,
 * as in the softmax's own max pass). */
#define STORE_SUMS(dst, sa, sb, m0, m1, mx)                                                        \
    {                                                                                              \
        __m512 x0 = _mm512_mul_ps(al, sa), x1 = _mm512_mul_ps(al, sb);                             \
        if (acc) {                                                                                 \
            x0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, dst), x0);                                \
            x1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, (dst) + 16), x1);                         \
        }                                                                                          \
        _mm512_mask_storeu_ps(dst, m0, x0);                                                        \
        _mm512_mask_storeu_ps((dst) + 16, m1, x1);                                                 \
        if (mx) {                                                                                  \
            *(mx) = _mm512_mask_max_ps(*(mx), m0, x0, *(mx));                                      \
            *(mx) = _mm512_mask_max_ps(*(mx), m1, x1, *(mx));                                      \
        }                                                                                          \
    }

/* The blocks of ab and abt read a's rows for their first panel from wherever
 * they lie; an A of at least FETCH_FLOATS floats (2 MiB, twice a core's L2
 * here: a rating layer's 8 MiB of activations) lies in memory, and without a
 * hint that first panel waits on it. So that block fetches the next block's
 * rows: PREFETCH_NEXT touches one of rows [0, nr) of next (stride lda) at
 * column q, each row's cache line once in 16 columns. A smaller A (a
 * softmax's score tile) is at hand, and fetching it would only take load
 * slots from the products. A prefetch changes no result. */
#define FETCH_FLOATS (1 << 19)

/* The rows of the block after rows [i, i + 8) of an A of m rows, *nr of them
 * (up to 8), when A is large enough to fetch them ahead; else NULL. */
static inline const float *rows_to_fetch(const float *a, int64_t lda, int64_t m, int64_t i,
                                         int64_t *nr)
{
    *nr = m - i - 8 < 8 ? m - i - 8 : 8;
    return *nr > 0 && m * lda >= FETCH_FLOATS ? a + (i + 8) * lda : NULL;
}

#define PREFETCH_NEXT(next, lda, nr, q)                                                            \
    {                                                                                              \
        int64_t r_ = ((q) >> 1) & 7;                                                               \
        _mm_prefetch((const char *)((next) + (r_ < (nr) ? r_ : (nr)-1) * (lda) + ((q) & ~15)),     \
                     _MM_HINT_T0);                                                                 \
    }

/* c[r][0..32) (+)= alpha a_r . V_l for rows r < rr (up to 8) of a and the 32
 * vectors of one panel, masked by m0, m1 at the end of the row; with mx set,
 * mx[r] keeps row r's largest values; with fetch set, rows [0, nr) of next
 * are fetched meanwhile. */
AVX512 INLINE_BLOCK void abt_block(const float *a, int64_t lda, int64_t rr, int64_t k,
                                   const float *panel, float alpha, int acc, float *c, int64_t ldc,
                                   __mmask16 m0, __mmask16 m1, __m512 *mx, int fetch,
                                   const float *next, int64_t nr)
{
#define ABT_INIT(r)                                                                                \
    const float *a##r = a + (r < rr ? r : rr - 1) * lda;                                           \
    __m512 s##r##a = _mm512_setzero_ps(), s##r##b = _mm512_setzero_ps();
    EIGHT(ABT_INIT)
    for (int64_t q = 0; q < k; q++) {
        __m512 v0 = _mm512_loadu_ps(panel + q * 32), v1 = _mm512_loadu_ps(panel + q * 32 + 16);
        if (fetch) PREFETCH_NEXT(next, lda, nr, q)
#define ABT_FMA(r)                                                                                 \
    {                                                                                              \
        __m512 x = _mm512_set1_ps(a##r[q]);                                                        \
        s##r##a = _mm512_fmadd_ps(x, v0, s##r##a);                                                 \
        s##r##b = _mm512_fmadd_ps(x, v1, s##r##b);                                                 \
    }
        EIGHT(ABT_FMA)
    }
    __m512 al = _mm512_set1_ps(alpha);
#define ABT_STORE(r)                                                                               \
    if (r < rr) STORE_SUMS(c + r * ldc, s##r##a, s##r##b, m0, m1, mx ? mx + r : NULL)
    EIGHT(ABT_STORE)
}

/* c[r][0..32) (+)= alpha sum_q a_r[q] b_q[0..32) for rows r < rr (up to 8);
 * with fetch set, rows [0, nr) of next are fetched meanwhile. */
AVX512 INLINE_BLOCK void ab_block(const float *a, int64_t lda, int64_t rr, int64_t k,
                                  const float *b, int64_t ldb, float alpha, int acc, float *c,
                                  int64_t ldc, int fetch, const float *next, int64_t nr)
{
#define AB_INIT(r)                                                                                 \
    const float *a##r = a + (r < rr ? r : rr - 1) * lda;                                           \
    __m512 s##r##a = _mm512_setzero_ps(), s##r##b = _mm512_setzero_ps();
    EIGHT(AB_INIT)
    for (int64_t q = 0; q < k; q++) {
        __m512 w0 = _mm512_loadu_ps(b + q * ldb), w1 = _mm512_loadu_ps(b + q * ldb + 16);
        if (fetch) PREFETCH_NEXT(next, lda, nr, q)
#define AB_FMA(r)                                                                                  \
    {                                                                                              \
        __m512 x = _mm512_set1_ps(a##r[q]);                                                        \
        s##r##a = _mm512_fmadd_ps(x, w0, s##r##a);                                                 \
        s##r##b = _mm512_fmadd_ps(x, w1, s##r##b);                                                 \
    }
        EIGHT(AB_FMA)
    }
    __m512 al = _mm512_set1_ps(alpha), *no_max = NULL;
#define AB_STORE(r)                                                                                \
    if (r < rr)                                                                                    \
    STORE_SUMS(c + r * ldc, s##r##a, s##r##b, (__mmask16)0xffff, (__mmask16)0xffff, no_max)
    EIGHT(AB_STORE)
}

/* c[col][0..32) (+)= alpha sum_i a_i[col] b_i[0..32) over rows i < k, for
 * the columns col < cc (up to 8) from a's first. Each row of a is read 32
 * bytes at a time down a column strip (a softmax tile's rows are 16 KiB
 * apart), and the block after next would wait on each line again: with
 * fetch_right set (a has 16 columns more), each row's line 16 columns on is
 * fetched for the blocks to come. With next_c set, the next block's rows of
 * c (next_rows of 32 floats), which it adds to, are fetched during the first
 * 16 rows. In a microbenchmark of the 10M-row step's shapes the softmax's
 * A^T B (64 rows of a tile by 4060 columns, 70 tiles) went from 12.5 to
 * 11.7 ms, a rating layer's dW (8192 rows, 256 x 128) from 6.1 to 5.9 ms.
 * The flags are constant in the inlined loops: tested in the loop, the
 * fetches gained a third of that. */
AVX512 INLINE_BLOCK void atb_block(const float *a, int64_t lda, int64_t k, int64_t cc,
                                   const float *b, int64_t ldb, float alpha, int acc, float *c,
                                   int64_t ldc, int fetch_right, const float *next_c,
                                   int64_t next_rows)
{
#define ATB_INIT(j)                                                                                \
    const int64_t col##j = j < cc ? j : cc - 1;                                                    \
    __m512 s##j##a = _mm512_setzero_ps(), s##j##b = _mm512_setzero_ps();
    EIGHT(ATB_INIT)
#define ATB_FMA(j)                                                                                 \
    {                                                                                              \
        __m512 x = _mm512_set1_ps(t[col##j]);                                                      \
        s##j##a = _mm512_fmadd_ps(x, w0, s##j##a);                                                 \
        s##j##b = _mm512_fmadd_ps(x, w1, s##j##b);                                                 \
    }
#define ATB_ROW(i)                                                                                 \
    {                                                                                              \
        __m512 w0 = _mm512_loadu_ps(b + (i)*ldb), w1 = _mm512_loadu_ps(b + (i)*ldb + 16);          \
        const float *t = a + (i)*lda;                                                              \
        if (fetch_right) _mm_prefetch((const char *)(t + 16), _MM_HINT_T0);                        \
        EIGHT(ATB_FMA)                                                                             \
    }
    int64_t i = 0;
    if (next_c)
        for (; i < k && i < 16; i++) {
            int64_t r = (i >> 1) < next_rows ? i >> 1 : next_rows - 1;
            _mm_prefetch((const char *)(next_c + r * ldc + (i & 1) * 16), _MM_HINT_T0);
            ATB_ROW(i)
        }
    for (; i < k; i++) ATB_ROW(i)
    __m512 al = _mm512_set1_ps(alpha), *no_max = NULL;
#define ATB_STORE(j)                                                                               \
    if (j < cc)                                                                                    \
    STORE_SUMS(c + j * ldc, s##j##a, s##j##b, (__mmask16)0xffff, (__mmask16)0xffff, no_max)
    EIGHT(ATB_STORE)
}

AVX512 static void abt_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                              int64_t lda, const float *panels, int acc, float *c, int64_t ldc,
                              float *row_max)
{
    __m512 mx[8];
    for (int64_t i = 0; i < m; i += 8) {
        int64_t rr = m - i < 8 ? m - i : 8, nr;
        const float *next = rows_to_fetch(a, lda, m, i, &nr);
        for (int r = 0; r < 8; r++) mx[r] = _mm512_set1_ps(-INFINITY);
        for (int64_t j = 0; j < n; j += 32)
            if (j == 0 && next)
                abt_block(a + i * lda, lda, rr, k, panels, alpha, acc, c + i * ldc, ldc, lanes(n),
                          lanes(n - 16), row_max ? mx : NULL, 1, next, nr);
            else
                abt_block(a + i * lda, lda, rr, k, panels + j * k, alpha, acc, c + i * ldc + j, ldc,
                          lanes(n - j), lanes(n - j - 16), row_max ? mx : NULL, 0, NULL, 0);
        if (row_max)
            for (int64_t r = 0; r < rr; r++) row_max[i + r] = _mm512_reduce_max_ps(mx[r]);
    }
}

AVX512 static void ab_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                             int64_t lda, const float *b, int64_t ldb, int acc, float *c,
                             int64_t ldc)
{
    for (int64_t i = 0; i < m; i += 8) {
        int64_t rr = m - i < 8 ? m - i : 8, nr;
        const float *next = rows_to_fetch(a, lda, m, i, &nr);
        for (int64_t j = 0; j < n; j += 32)
            if (j == 0 && next)
                ab_block(a + i * lda, lda, rr, k, b, ldb, alpha, acc, c + i * ldc, ldc, 1, next,
                         nr);
            else
                ab_block(a + i * lda, lda, rr, k, b + j, ldb, alpha, acc, c + i * ldc + j, ldc, 0,
                         NULL, 0);
    }
}

AVX512 static void atb_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                              int64_t lda, const float *b, int64_t ldb, int acc, float *c,
                              int64_t ldc)
{
    for (int64_t i0 = 0; i0 < k || i0 == 0; i0 += TILES_ATB_ROWS) {
        int64_t rows = k - i0 < TILES_ATB_ROWS ? k - i0 : TILES_ATB_ROWS;
        int add = acc || i0 > 0;
        for (int64_t j = 0; j < m; j += 8)
            for (int64_t l = 0; l < n; l += 32) {
                /* the next block: the next panel of these columns, or the next columns' first */
                int64_t next_j = l + 32 < n ? j : j + 8, next_l = l + 32 < n ? l + 32 : 0;
                const float *next_c = add && next_j < m ? c + next_j * ldc + next_l : NULL;
                int64_t cc = m - j < 8 ? m - j : 8, next_rows = m - next_j < 8 ? m - next_j : 8;
                if (l == 0 && m - j > 16)
                    atb_block(a + i0 * lda + j, lda, rows, cc, b + i0 * ldb + l, ldb, alpha, add,
                              c + j * ldc + l, ldc, 1, next_c, next_rows);
                else
                    atb_block(a + i0 * lda + j, lda, rows, cc, b + i0 * ldb + l, ldb, alpha, add,
                              c + j * ldc + l, ldc, 0, next_c, next_rows);
            }
    }
}

#endif

void tiles_abt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *panels, int acc, float *c, int64_t ldc)
{
#ifdef MTR_AVX512
    abt_avx512(m, n, k, alpha, a, lda, panels, acc, c, ldc, NULL);
#else
    (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)panels, (void)acc, (void)c,
        (void)ldc;
    abort();
#endif
}

void tiles_abt_max(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                   const float *panels, float *c, int64_t ldc, float *row_max)
{
#ifdef MTR_AVX512
    abt_avx512(m, n, k, alpha, a, lda, panels, 0, c, ldc, row_max);
#else
    (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)panels, (void)c, (void)ldc,
        (void)row_max;
    abort();
#endif
}

void tiles_ab(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, int acc, float *c, int64_t ldc)
{
#ifdef MTR_AVX512
    ab_avx512(m, n, k, alpha, a, lda, b, ldb, acc, c, ldc);
#else
    (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b, (void)ldb, (void)acc,
        (void)c, (void)ldc;
    abort();
#endif
}

void tiles_atb(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, int acc, float *c, int64_t ldc)
{
#ifdef MTR_AVX512
    atb_avx512(m, n, k, alpha, a, lda, b, ldb, acc, c, ldc);
#else
    (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b, (void)ldb, (void)acc,
        (void)c, (void)ldc;
    abort();
#endif
}
