/* What the AVX-512 kernels (tiles_avx512.c, xent_avx512.c) share: MTR_AVX512
 * where the compiler can target AVX-512 (x86-64 with gcc or clang), the
 * AVX512 attribute for their functions, and the lane mask. Whether the CPU
 * has AVX-512 is tiles_usable's question. */
#ifndef MTR_AVX512_H
#define MTR_AVX512_H

#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MTR_AVX512 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

/* The mask of the first n (up to 16) lanes. */
static inline __mmask16 lanes(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
#endif

#endif
