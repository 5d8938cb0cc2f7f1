/* Dropout kernels: inverted dropout and its gradient. Whether element i of a
 * tensor is kept is decided by a counter-based hash of (seed, step, salt, i),
 * not by a generator advanced element by element, so the mask is the same
 * however the elements are split between threads, and the backward computes
 * it again from the same four numbers instead of storing it. Elements are
 * numbered over the tensor as stored, (rows, cols) with any leading axes folded
 * into rows, so nothing here assumes a row is a batch row. */
#include "kernels/kern.h"

#define DROP_GOLDEN 0x9e3779b97f4a7c15ull /* 2^64 / golden ratio, odd */

/* splitmix64's finalizer: a bijection of 64 bits whose every output bit
 * depends on every input bit. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The key of one (seed, step, salt). Each is folded in by a bijective step, so
 * changing any one of them (the others fixed) changes the key. */
static uint64_t drop_key(uint64_t seed, uint64_t step, uint64_t salt)
{
    uint64_t k = mix64(seed + DROP_GOLDEN);
    k = mix64(k ^ (step + 2 * DROP_GOLDEN));
    return mix64(k ^ (salt + 3 * DROP_GOLDEN));
}

/* A knob or a step counter held as a number, as an unsigned integer (0 for a
 * value no integer type holds: the knob table keeps seeds in range). */
static uint64_t as_u64(double v)
{
    if (v >= 0.0 && v < 18446744073709551616.0) return (uint64_t)v;
    if (v < 0.0 && v >= -9223372036854775808.0) return (uint64_t)(int64_t)v;
    return 0;
}

/* y = x * scale where kept, 0 where dropped; element i is kept when the high 32
 * bits of mix64(key + (i + 1) golden) are at least p 2^32, so the kept share is
 * 1 - p to within 2^-32. p = 0 copies x exactly. p >= 1, which the knob's range
 * excludes, drops everything (rather than scaling by infinity). */
static void drop(const KernelCall *call)
{
    const float *x = call->in[0];              /* (R,C) */
    double step = *(const float *)call->in[1]; /* () */
    float *y = call->out[0];                   /* x's shape, may be x */
    double p = call->knobs[call->iattr[0]];
    uint64_t seed = as_u64(call->knobs[call->iattr[1]]);
    uint64_t salt = (uint64_t)(uint32_t)call->iattr[2];
    int64_t n = kern_numel(call->in_shape[0]);
    if (!(p > 0.0)) {
        if (y != x) memcpy(y, x, (size_t)n * sizeof *y);
        return;
    }
    if (!(p < 1.0)) {
        memset(y, 0, (size_t)n * sizeof *y);
        return;
    }
    uint64_t threshold = (uint64_t)(p * 4294967296.0); /* < 2^32 as p < 1 */
    float scale = (float)(1.0 / (1.0 - p));
    uint64_t key = drop_key(seed, as_u64(step), salt);
    for (int64_t i = 0; i < n; i++) {
        uint64_t u = mix64(key + (uint64_t)(i + 1) * DROP_GOLDEN);
        uint32_t keep = 0u - (uint32_t)((u >> 32) >= threshold);
        y[i] = kern_bitsf(kern_fbits(x[i] * scale) & keep);
    }
}

/* dropout(x, step) -> x / (1 - p) where kept, else 0; p = knob[iattr0], seed =
 * knob[iattr1], salt = iattr2. Gradient: dropout_grad(dy, step) = dy / (1 - p)
 * where kept, else 0: the same mask, made again from the same numbers. */
void kernel_dropout(const KernelCall *call)
{
    drop(call);
}

void kernel_dropout_grad(const KernelCall *call)
{
    drop(call);
}
