/* Helpers private to the kernels (the files of runtime/kernels) and their test: element
 * counts, a fast, vectorisable single-precision exp, and a row's max and sum of
 * exps for the softmaxes. Nothing here allocates or keeps state. */
#ifndef MTR_KERN_H
#define MTR_KERN_H

#include "mtr/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* A pass compiled for AVX-512 and AVX2 as well as the baseline, chosen at load
 * time: the same IEEE operations on wider vectors (no FMA is enabled, so
 * nothing is contracted), hence the same bits on every CPU. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(MTR_NO_CLONES)
#define KERN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KERN_CLONES
#endif

/* A kernel's work over rows (or elements, or columns) [lo, hi) of its output. */
typedef void (*KernRows)(const KernelCall *call, int64_t lo, int64_t hi);

/* The least work (elements) worth a part of its own on the thread pool. */
#define KERN_MIN_PART (1 << 16)

/* Runs fn over [0, n), n units of `width` elements each: split into parts on
 * the thread pool (runtime/pool.c) in blocks of `align` units when there is
 * work for more than one part, else at once on the caller. Kernels whose
 * units are independent (elementwise, row by row, column sums) give the same
 * bytes whatever the thread count. */
void kern_rows(const KernelCall *call, int64_t n, int64_t width, int64_t align, KernRows fn);

/* c = alpha op(a) op(b) + beta c in row-major order (ta, tb: 1 transposes).
 * Where the CPU has AVX-512 and the shape suits (kern_sgemm_tiled), by
 * tiles.h's products, split by rows on the thread pool: every element the
 * same whatever the thread count. A product of one column is summed in
 * double, a row's result the same in any batch. Else cblas_sgemm, with a large product's
 * rows (or, for a short and wide one, its columns) split into parts on the
 * pool, each part one sgemm on one OpenBLAS thread: the inner extent is never
 * split, so every element is summed as the whole product sums it, and the
 * pool's workers sleep between kernels where OpenBLAS's spin (and would
 * compete with the next kernel's parts). Small products are one sgemm with
 * OpenBLAS's own threads. */
void kern_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
int kern_sgemm_tiled(int ta, int tb, int64_t m, int64_t n, int64_t k, float beta);

/* Fetches a row of d floats (its first 64) into the caches ahead of its use:
 * for loops that visit rows scattered over tables far larger than the caches. */
static inline void kern_prefetch_row(const float *row, int64_t d)
{
    for (int64_t j = 0; j < d && j < 64; j += 16) __builtin_prefetch(row + j, 1);
}

/* The number of elements of a bound shape. */
static inline int64_t kern_numel(KShape s)
{
    return s.rows * s.cols;
}

/* kern_expf(x): e^x in single precision, written so that gcc -O3 vectorises a
 * loop calling it (no branches, no libm call, no table).
 *
 * Method: x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2, where r is formed
 * exactly by a two-part (Cody-Waite) ln2; e^r is a degree-6 polynomial (the
 * Chebyshev interpolant of e^r on [-ln2/2, ln2/2], coefficients rounded to float,
 * truncation error 2.0e-8 relative); 2^n is added straight into the exponent
 * bits of the polynomial's value. n is rounded with the 1.5 * 2^23 trick.
 *
 * Accuracy: the largest relative error against double exp, checked over every
 * float in [-87.3, 88.7] (2.2e9 of them), is 1.15e-7 (about 2 ulp; expf itself
 * is within 0.5 ulp); tests/test_kernels.c asserts < 2.5e-7 on a grid.
 *
 * Range: x < -87.3 gives 0 (e^x < 1.25e-38 there, so the absolute error is below
 * FLT_MIN: subnormal results are flushed); x > 88.72283 gives +inf (the float
 * overflow point); the quiet NaNs arithmetic makes give NaN. The kernels only
 * take exp of numbers <= 0. */
#define KERN_EXP_LO         (-87.3f)
#define KERN_EXP_HI         88.72283f
#define KERN_EXP_MAGIC      12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define KERN_EXP_MAGIC_BITS 0x4B400000u

static inline uint32_t kern_fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float kern_bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The range checks are bit masks, not ?: on floats: gcc turns float selects
 * into branches here, and a branch stops the vectoriser. */
static inline float kern_expf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f; /* 9 significant bits: n * ln2_hi is exact */
    const float ln2_lo = -2.12194440e-4f;
    uint32_t under = 0u - (uint32_t)(x < KERN_EXP_LO);
    uint32_t over = 0u - (uint32_t)(x > KERN_EXP_HI);
    float xc = kern_bitsf((kern_fbits(x) & ~under & ~over) | (kern_fbits(KERN_EXP_LO) & under) |
                          (kern_fbits(KERN_EXP_HI) & over));
    float t = xc * log2e + KERN_EXP_MAGIC; /* the low mantissa bits of t hold n */
    float n = t - KERN_EXP_MAGIC;
    float r = (xc - n * ln2_hi) - n * ln2_lo;
    float p = 1.3941108481958508e-3f;
    p = p * r + 8.37512593716383e-3f;
    p = p * r + 4.166635125875473e-2f;
    p = p * r + 0.16666415333747864f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* n in [-126, 128]; at n = 128 the clamp keeps r < 0, so p < 1 and the
     * exponent field stays at most 254. Unsigned arithmetic wraps as intended.
     * A NaN passes through: its t has zero low bits, so p (a NaN) is unchanged. */
    uint32_t pb = kern_fbits(p) + ((kern_fbits(t) - KERN_EXP_MAGIC_BITS) << 23);
    pb = (pb & ~under & ~over) | (over & 0x7F800000u);
    return kern_bitsf(pb);
}

/* Independent accumulators per reduction, so that a row sum vectorises
 * without reassociating float sums (gcc will not do that by itself). */
#define KERN_LANES 8

/* The largest element of s[0..n), n >= 1. gcc turns a float max into branches
 * (NaN and -0 rules), so the max is taken over int32 keys that order like the
 * floats: that integer max reduction vectorises. */
static inline float kern_row_max(const float *s, int64_t n)
{
    int32_t best = INT32_MIN;
    for (int64_t j = 0; j < n; j++) {
        int32_t k = (int32_t)kern_fbits(s[j]);
        k ^= (k >> 31) & INT32_MAX; /* negative floats: reverse their order */
        best = k > best ? k : best;
    }
    best ^= (best >> 31) & INT32_MAX;
    return kern_bitsf((uint32_t)best);
}

/* Writes e^(s_j - m) to p (which may be s) and returns their sum, in double. */
static inline double kern_row_exp_sum(const float *s, float *p, int64_t n, float m)
{
    for (int64_t j = 0; j < n; j++) p[j] = kern_expf(s[j] - m);
    double acc[KERN_LANES] = {0.0};
    int64_t j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES) {
        for (int l = 0; l < KERN_LANES; l++) acc[l] += p[j + l];
    }
    for (; j < n; j++) acc[0] += p[j];
    double sum = 0.0;
    for (int l = 0; l < KERN_LANES; l++) sum += acc[l];
    return sum;
}

#endif
