/* Bump allocator for one compilation (see pool.h). Memory comes in chunks
 * from malloc; a request larger than a chunk gets a chunk of its own. */
#include "pool.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK_SIZE = 64 * 1024 };

typedef struct Chunk {
    struct Chunk *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
} Chunk;

struct Pool {
    Chunk *chunks; /* newest first; allocation happens in the newest */
    size_t total;
};

Pool *pool_new(void)
{
    return calloc(1, sizeof(Pool));
}

void pool_free(Pool *pool)
{
    if (!pool) return;
    Chunk *c = pool->chunks;
    while (c) {
        Chunk *next = c->next;
        free(c);
        c = next;
    }
    free(pool);
}

void *pool_alloc(Pool *pool, size_t size)
{
    const size_t align = alignof(max_align_t);
    if (size > SIZE_MAX / 2) return NULL;
    size = (size + align - 1) & ~(align - 1);
    if (size == 0) size = align;
    Chunk *c = pool->chunks;
    if (!c || c->size - c->used < size) {
        size_t cap = size > CHUNK_SIZE ? size : CHUNK_SIZE;
        Chunk *fresh = malloc(sizeof(Chunk) + cap);
        if (!fresh) return NULL;
        fresh->size = cap;
        fresh->used = 0;
        if (c && size > CHUNK_SIZE) {
            /* A big block goes behind the current chunk so the current
             * chunk's free tail stays usable for small requests. */
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            pool->chunks = fresh;
        }
        c = fresh;
    }
    void *p = c->data + c->used;
    c->used += size;
    pool->total += size;
    memset(p, 0, size);
    return p;
}

char *pool_strndup(Pool *pool, const char *s, size_t len)
{
    if (len == SIZE_MAX) return NULL;
    char *p = pool_alloc(pool, len + 1);
    if (!p) return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

size_t pool_used(const Pool *pool)
{
    return pool->total;
}
