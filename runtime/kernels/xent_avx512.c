/* The fused softmax's row work (xent.h) written for AVX-512: the exp and the
 * row softmax; its three products are tiles.h's. */
#include "kernels/xent.h"
#include "kernels/avx512.h"
#include "kernels/tiles.h"

#include <math.h>
#include <stdlib.h>

int xent_fast_usable(int64_t d)
{
    return d > 0 && d % 32 == 0 && tiles_usable();
}

#ifdef MTR_AVX512

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

AVX512 static double softmax_avx512(float *row, int64_t nc, const float *cn, float *inv_z,
                                    const float *max)
{
    float m;
    if (max) {
        m = *max;
    } else {
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int64_t j = 0; j < nc; j += 16)
            mx = _mm512_max_ps(_mm512_mask_loadu_ps(mx, lanes(nc - j), row + j), mx);
        m = _mm512_reduce_max_ps(mx);
    }
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
    if (inv_z) {
        *inv_z = (float)(1.0 / z);
        return (double)m + log(z);
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / z));
    for (int64_t j = 0; j < nc; j += 16) {
        __mmask16 k = lanes(nc - j);
        _mm512_mask_storeu_ps(row + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), inv));
    }
    return (double)m + log(z);
}

#endif

double xent_fast_softmax(float *row, int64_t nc, const float *cn, float *inv_z, const float *max)
{
#ifdef MTR_AVX512
    return softmax_avx512(row, nc, cn, inv_z, max);
#else
    (void)row, (void)nc, (void)cn, (void)inv_z, (void)max;
    abort();
#endif
}

void xent_fast_exp(const float *x, int64_t n, float *y)
{
#ifdef MTR_AVX512
    exp_avx512(x, n, y);
#else
    (void)x, (void)n, (void)y;
    abort();
#endif
}
