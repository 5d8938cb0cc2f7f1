/* The compiler's bump allocator: one Pool per compilation. Everything the
 * front end builds (tokens' text, the syntax tree, sema's tables, the source
 * text itself) is carved from it and released at once by pool_free, so no
 * node is ever freed on its own and error paths need no cleanup. */
#ifndef MTR_POOL_H
#define MTR_POOL_H

#include <stddef.h>

typedef struct Pool Pool;

/* Returns an empty pool, or NULL when out of memory. Free it with pool_free. */
Pool *pool_new(void);

/* Releases the pool and every block it handed out. NULL is allowed. */
void pool_free(Pool *pool);

/* Returns size zeroed bytes aligned for any type, valid until pool_free, or
 * NULL when out of memory (or when size is absurdly large). */
void *pool_alloc(Pool *pool, size_t size);

/* Returns a NUL-terminated copy of the len bytes at s, or NULL when out of
 * memory. */
char *pool_strndup(Pool *pool, const char *s, size_t len);

/* Total bytes handed out so far (for tests and statistics). */
size_t pool_used(const Pool *pool);

#endif
