/* The fused softmax's tile work (xent.h) written for AVX-512: the three
 * products and the row softmax.
 *
 * With D = 32 the products are thin (a 64-row tile times 32 columns, or 32
 * rows times the tile), and sgemm spends half as long packing its operands
 * (the same candidates again for every tile) and clearing its output as it
 * does multiplying. These kernels read the operands where they lie: the
 * candidates once per call in panels of 32 columns for the scores, the tile
 * and the weights row-major for G and H; each block keeps its sums in
 * sixteen registers. Sums run over k (scores), j (G) or the tile's rows (H) in
 * increasing order with fused multiply-adds, so a result depends on the tile's
 * shape only, never on the thread count. */
#include "kernels/xent.h"

#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define XENT_AVX512 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))
#endif

static int fast_off; /* set by xent_fast_enable(0) */

void xent_fast_enable(int on)
{
    fast_off = !on;
}

int xent_fast_usable(int64_t d)
{
#ifdef XENT_AVX512
    /* no __builtin_cpu_init needed: libgcc sets the features up before main */
    return !fast_off && d > 0 && d % 32 == 0 && __builtin_cpu_supports("avx512f");
#else
    (void)d;
    return 0;
#endif
}

int64_t xent_panels_floats(int64_t nc, int64_t d)
{
    return (nc + 31) / 32 * 32 * d;
}

void xent_panels(const float *c, int64_t nc, int64_t d, float *panels)
{
    for (int64_t j0 = 0; j0 < nc; j0 += 32) {
        float *panel = panels + j0 * d;
        for (int64_t k = 0; k < d; k++)
            for (int64_t l = 0; l < 32; l++)
                panel[k * 32 + l] = j0 + l < nc ? c[(j0 + l) * d + k] : 0.0f;
    }
}

#ifdef XENT_AVX512

/* The mask of the first n (up to 16) lanes. */
static inline __mmask16 lanes(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* Eight rows (or columns) of sums, two vectors each, named so that they stay
 * in registers. */
#define EIGHT(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* tile[r][j] = alpha q_r . C_j for rows r < rr (up to 8) and the 32 columns
 * of one panel (masked by m0, m1 at the end of the row). Rows past rr repeat
 * the last one and are not stored. */
AVX512 static void scores_block(const float *q, int64_t rr, int64_t d, const float *panel,
                                float alpha, float *tile, int64_t nc, __mmask16 m0, __mmask16 m1)
{
#define SC_INIT(r)                                                                                 \
    const float *q##r = q + (r < rr ? r : rr - 1) * d;                                             \
    __m512 s##r##a = _mm512_setzero_ps(), s##r##b = _mm512_setzero_ps();
    EIGHT(SC_INIT)
    for (int64_t k = 0; k < d; k++) {
        __m512 c0 = _mm512_loadu_ps(panel + k * 32), c1 = _mm512_loadu_ps(panel + k * 32 + 16);
#define SC_FMA(r)                                                                                  \
    {                                                                                              \
        __m512 x = _mm512_set1_ps(q##r[k]);                                                        \
        s##r##a = _mm512_fmadd_ps(x, c0, s##r##a);                                                 \
        s##r##b = _mm512_fmadd_ps(x, c1, s##r##b);                                                 \
    }
        EIGHT(SC_FMA)
    }
    __m512 al = _mm512_set1_ps(alpha);
#define SC_STORE(r)                                                                                \
    if (r < rr) {                                                                                  \
        _mm512_mask_storeu_ps(tile + r * nc, m0, _mm512_mul_ps(al, s##r##a));                      \
        _mm512_mask_storeu_ps(tile + r * nc + 16, m1, _mm512_mul_ps(al, s##r##b));                 \
    }
    EIGHT(SC_STORE)
}

AVX512 static void scores_avx512(const float *q, int64_t n, const float *panels, int64_t nc,
                                 int64_t d, float alpha, float *tile)
{
    for (int64_t i = 0; i < n; i += 8) {
        int64_t rr = n - i < 8 ? n - i : 8;
        for (int64_t j = 0; j < nc; j += 32)
            scores_block(q + i * d, rr, d, panels + j * d, alpha, tile + i * nc + j, nc,
                         lanes(nc - j), lanes(nc - j - 16));
    }
}

/* g_r = alpha sum_j tile[r][j] w_j on one 32-wide slice of g and w (row
 * strides d), for rows r < rr (up to 8) of the tile. */
AVX512 static void g_block(const float *tile, int64_t rr, int64_t nc, const float *w, int64_t d,
                           float alpha, float *g)
{
#define G_INIT(r)                                                                                  \
    const float *t##r = tile + (r < rr ? r : rr - 1) * nc;                                         \
    __m512 s##r##a = _mm512_setzero_ps(), s##r##b = _mm512_setzero_ps();
    EIGHT(G_INIT)
    for (int64_t j = 0; j < nc; j++) {
        __m512 w0 = _mm512_loadu_ps(w + j * d), w1 = _mm512_loadu_ps(w + j * d + 16);
#define G_FMA(r)                                                                                   \
    {                                                                                              \
        __m512 x = _mm512_set1_ps(t##r[j]);                                                        \
        s##r##a = _mm512_fmadd_ps(x, w0, s##r##a);                                                 \
        s##r##b = _mm512_fmadd_ps(x, w1, s##r##b);                                                 \
    }
        EIGHT(G_FMA)
    }
    __m512 al = _mm512_set1_ps(alpha);
#define G_STORE(r)                                                                                 \
    if (r < rr) {                                                                                  \
        _mm512_storeu_ps(g + r * d, _mm512_mul_ps(al, s##r##a));                                   \
        _mm512_storeu_ps(g + r * d + 16, _mm512_mul_ps(al, s##r##b));                              \
    }
    EIGHT(G_STORE)
}

/* h_c (+)= alpha sum_i tile[i][c] w_i on one 32-wide slice of h and w (row
 * strides d), for the columns c < cc (up to 8) from the tile's first, over
 * its n rows. */
AVX512 static void h_block(const float *tile, int64_t n, int64_t nc, int64_t cc, const float *w,
                           int64_t d, float alpha, int add, float *h)
{
#define H_INIT(c)                                                                                  \
    const int64_t col##c = c < cc ? c : cc - 1;                                                    \
    __m512 s##c##a = _mm512_setzero_ps(), s##c##b = _mm512_setzero_ps();
    EIGHT(H_INIT)
    for (int64_t i = 0; i < n; i++) {
        __m512 w0 = _mm512_loadu_ps(w + i * d), w1 = _mm512_loadu_ps(w + i * d + 16);
        const float *t = tile + i * nc;
#define H_FMA(c)                                                                                   \
    {                                                                                              \
        __m512 x = _mm512_set1_ps(t[col##c]);                                                      \
        s##c##a = _mm512_fmadd_ps(x, w0, s##c##a);                                                 \
        s##c##b = _mm512_fmadd_ps(x, w1, s##c##b);                                                 \
    }
        EIGHT(H_FMA)
    }
    __m512 al = _mm512_set1_ps(alpha);
#define H_STORE(c)                                                                                 \
    if (c < cc) {                                                                                  \
        float *h0 = h + c * d, *h1 = h0 + 16;                                                      \
        __m512 x0 = _mm512_mul_ps(al, s##c##a), x1 = _mm512_mul_ps(al, s##c##b);                   \
        if (add) {                                                                                 \
            x0 = _mm512_add_ps(_mm512_loadu_ps(h0), x0);                                           \
            x1 = _mm512_add_ps(_mm512_loadu_ps(h1), x1);                                           \
        }                                                                                          \
        _mm512_storeu_ps(h0, x0);                                                                  \
        _mm512_storeu_ps(h1, x1);                                                                  \
    }
    EIGHT(H_STORE)
}

/* e^x on 16 lanes: x = n ln2 + r (a two-part ln2, as kern_expf), e^r by the
 * degree-6 polynomial of kern_expf in fused multiply-adds, times 2^n by
 * scalef, which underflows to 0 and overflows to infinity by itself. Inputs
 * below -104 (where e^x is 0 in float) are clamped first, so that -inf gives 0;
 * a NaN stays a NaN. */
AVX512 static inline __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* max returns its second operand for a NaN */
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.3941108481958508e-3f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.37512593716383e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166635125875473e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.16666415333747864f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Adds the 16 lanes of v to two vectors of doubles. */
AVX512 static inline void add_wide(__m512 v, __m512d *lo, __m512d *hi)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(upper));
}

AVX512 static void exp_avx512(const float *x, int64_t n, float *y)
{
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 k = lanes(n - j);
        _mm512_mask_storeu_ps(y + j, k, exp16(_mm512_maskz_loadu_ps(k, x + j)));
    }
}

AVX512 static double softmax_avx512(float *row, int64_t nc, const float *cn)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < nc; j += 16)
        mx = _mm512_max_ps(_mm512_mask_loadu_ps(mx, lanes(nc - j), row + j), mx);
    float m = _mm512_reduce_max_ps(mx);
    __m512 vm = _mm512_set1_ps(m);
    /* Z in double, from float sums of 8 vectors per lane (each within 8
     * roundings of its exact value), which costs a sixth of widening each. */
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    for (int64_t j0 = 0; j0 < nc; j0 += 128) {
        __m512 part = _mm512_setzero_ps();
        int64_t end = nc - j0 < 128 ? nc : j0 + 128;
        for (int64_t j = j0; j < end; j += 16) {
            __mmask16 k = lanes(nc - j);
            __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), vm);
            __m512 e = _mm512_maskz_mov_ps(k, exp16(x));
            _mm512_mask_storeu_ps(row + j, k, e);
            part = _mm512_add_ps(part, cn ? _mm512_mul_ps(_mm512_maskz_loadu_ps(k, cn + j), e) : e);
        }
        add_wide(part, &lo, &hi);
    }
    double z = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
    __m512 inv = _mm512_set1_ps((float)(1.0 / z));
    for (int64_t j = 0; j < nc; j += 16) {
        __mmask16 k = lanes(nc - j);
        _mm512_mask_storeu_ps(row + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), inv));
    }
    return (double)m + log(z);
}

AVX512 static void g_avx512(const float *tile, int64_t n, int64_t nc, const float *w, int64_t d,
                            float alpha, float *g)
{
    for (int64_t i = 0; i < n; i += 8)
        for (int64_t k = 0; k < d; k += 32)
            g_block(tile + i * nc, n - i < 8 ? n - i : 8, nc, w + k, d, alpha, g + i * d + k);
}

AVX512 static void h_avx512(const float *tile, int64_t n, int64_t nc, const float *w, int64_t d,
                            float alpha, int add, float *h)
{
    for (int64_t j = 0; j < nc; j += 8)
        for (int64_t k = 0; k < d; k += 32)
            h_block(tile + j, n, nc, nc - j < 8 ? nc - j : 8, w + k, d, alpha, add, h + j * d + k);
}

#endif

void xent_fast_scores(const float *q, int64_t n, const float *panels, int64_t nc, int64_t d,
                      float alpha, float *tile)
{
#ifdef XENT_AVX512
    scores_avx512(q, n, panels, nc, d, alpha, tile);
#else
    (void)q, (void)n, (void)panels, (void)nc, (void)d, (void)alpha, (void)tile;
    abort();
#endif
}

double xent_fast_softmax(float *row, int64_t nc, const float *cn)
{
#ifdef XENT_AVX512
    return softmax_avx512(row, nc, cn);
#else
    (void)row, (void)nc, (void)cn;
    abort();
#endif
}

void xent_fast_exp(const float *x, int64_t n, float *y)
{
#ifdef XENT_AVX512
    exp_avx512(x, n, y);
#else
    (void)x, (void)n, (void)y;
    abort();
#endif
}

void xent_fast_g(const float *tile, int64_t n, int64_t nc, const float *w, int64_t d, float alpha,
                 float *g)
{
#ifdef XENT_AVX512
    g_avx512(tile, n, nc, w, d, alpha, g);
#else
    (void)tile, (void)n, (void)nc, (void)w, (void)d, (void)alpha, (void)g;
    abort();
#endif
}

void xent_fast_h(const float *tile, int64_t n, int64_t nc, const float *w, int64_t d, float alpha,
                 int add, float *h)
{
#ifdef XENT_AVX512
    h_avx512(tile, n, nc, w, d, alpha, add, h);
#else
    (void)tile, (void)n, (void)nc, (void)w, (void)d, (void)alpha, (void)add, (void)h;
    abort();
#endif
}
