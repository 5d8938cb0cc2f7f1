/* Data loading, hashing: an open-addressing string hash (linear probing, load
 * at most one half) mapping strings to dense codes. It interns column values
 * while a table is read and indexes vocabularies for id lookups. The strings
 * themselves stay in the caller's array; the hash keeps codes and hash values. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

uint32_t hash_string(const char *s, size_t len)
{
    /* FNV-1a, then a final mix so that linear probing sees well-spread low bits */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x7feb352dU;
    h ^= h >> 15;
    return h;
}

uint32_t hash_find(const StrHash *h, char *const *keys, const char *s, uint32_t hv)
{
    if (h->cap == 0) return HASH_NONE;
    uint32_t mask = h->cap - 1;
    for (uint32_t i = hv & mask;; i = (i + 1) & mask) {
        uint32_t c = h->slots[2 * i + 1];
        if (c == 0) return HASH_NONE;
        if (h->slots[2 * i] == hv && strcmp(keys[c - 1], s) == 0) return c - 1;
    }
}

static void put(uint32_t *slots, uint32_t mask, uint32_t hv, uint32_t code1)
{
    uint32_t i = hv & mask;
    while (slots[2 * i + 1]) i = (i + 1) & mask;
    slots[2 * i] = hv;
    slots[2 * i + 1] = code1;
}

MtrStatus hash_insert(StrHash *h, uint32_t hv, uint32_t code, MtrError *err)
{
    if ((uint64_t)(h->n + 1) * 2 > h->cap) {
        if (h->cap >= (1u << 30)) return mtr_fail(err, MTR_E_NOMEM, "too many distinct values");
        uint32_t cap = h->cap ? 2 * h->cap : 64;
        uint32_t *slots = calloc(2 * (size_t)cap, sizeof *slots);
        if (!slots) return mtr_fail(err, MTR_E_NOMEM, "out of memory growing a hash table");
        for (uint32_t i = 0; i < h->cap; i++)
            if (h->slots[2 * i + 1]) put(slots, cap - 1, h->slots[2 * i], h->slots[2 * i + 1]);
        free(h->slots);
        h->slots = slots;
        h->cap = cap;
    }
    put(h->slots, h->cap - 1, hv, code + 1);
    h->n++;
    return MTR_OK;
}

void hash_free(StrHash *h)
{
    free(h->slots);
    memset(h, 0, sizeof *h);
}
