/* The one seeded generator (xoshiro256**, seeded through splitmix64): the same
 * seed gives the same stream on every machine, so runs are reproducible. */
#ifndef MTR_RNG_H
#define MTR_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
/* Uniform in [0, 1) with 24 random bits, exactly representable as a float. */
float rng_float(Rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);
/* Shuffles idx[0..n) in place (Fisher-Yates). */
void rng_shuffle_u32(Rng *r, uint32_t *idx, uint64_t n);

#endif
