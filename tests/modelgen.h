/* Random valid models (in the spirit of Csmith): .mtr text that passes the
 * checker by construction, drawn from a seed, over every construct of the
 * language (docs/dsl.md). Used by tests/test_randmodels.c and, through
 * gen_models, as seeds of the front-end fuzzer. The constructs are tables in
 * modelgen.c: a new stage, activation, loss, metric, optimizer or setting is
 * one more row there. */
#ifndef MTR_MODELGEN_H
#define MTR_MODELGEN_H

#include <stdint.h>

/* The model for seed, as a malloc'd NUL-terminated string (NULL when out of
 * memory). The same seed gives the same text. Sizes stay small (embeddings
 * and dense layers of at most 8) so that the tests can check gradients. */
char *modelgen(uint64_t seed);

#endif
