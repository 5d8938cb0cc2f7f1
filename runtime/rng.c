/* xoshiro256** (Blackman and Vigna), seeded by splitmix64. */
#include "mtr/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(Rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t rng_next(Rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_float(Rng *r)
{
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t rng_below(Rng *r, uint64_t n)
{
    /* Reject the top sliver of the range so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = rng_next(r);
    } while (x >= limit);
    return x % n;
}

/* The swaps whose partners are drawn ahead (a power of two). */
#define SHUFFLE_AHEAD 16

/* Fisher-Yates from the top: position i - 1 swaps with j = rng_below(i). Each
 * j is drawn SHUFFLE_AHEAD swaps early, in the same order, so the same draws,
 * and its element is fetched meanwhile: at 10M rows (40 MB of positions)
 * almost every swap would otherwise wait on memory. */
void rng_shuffle_u32(Rng *r, uint32_t *idx, uint64_t n)
{
    uint64_t partner[SHUFFLE_AHEAD];
    uint64_t next = n; /* the next i whose partner is drawn */
    for (; next > 1 && n - next < SHUFFLE_AHEAD; next--) {
        partner[next % SHUFFLE_AHEAD] = rng_below(r, next);
        __builtin_prefetch(idx + partner[next % SHUFFLE_AHEAD], 1);
    }
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = partner[i % SHUFFLE_AHEAD];
        if (next > 1) { /* its slot is i's, read just above */
            partner[next % SHUFFLE_AHEAD] = rng_below(r, next);
            __builtin_prefetch(idx + partner[next % SHUFFLE_AHEAD], 1);
            next--;
        }
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
