/* Allocation-failure injection for the test-only programs mtrc_failalloc and
 * mtrun_failalloc (the real mains linked with this file; tests/alloc_sweep.sh).
 *
 * This program's malloc family is the one the dynamic linker binds every
 * caller to; it forwards to the next one (glibc's, or the sanitizer's in the
 * ASan build, so leaks are still found) and counts the allocations made by
 * code of this executable, that is mtr's own code (libmtr and the compiler
 * are linked in statically; libc, OpenBLAS and the sanitizer runtime are not
 * counted, they are not ours to fix). strdup and strndup are counted too.
 *
 *   MTR_FAILALLOC=N        the Nth counted allocation returns NULL (one shot:
 *                          the ones after it succeed); 0 or unset: none fails
 *   MTR_FAILALLOC_COUNT=F  at exit, write "COUNT FAILED" to file F: how many
 *                          allocations were counted and whether N was reached
 *   MTR_FAILALLOC_TRACE=1  print a backtrace on stderr where N fails (to find
 *                          the call site; addr2line -e PROGRAM gives the lines)
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char __executable_start[], etext[];

void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);
void free(void *p);
void *aligned_alloc(size_t align, size_t n);
int posix_memalign(void **out, size_t align, size_t n);
char *strdup(const char *s);
char *strndup(const char *s, size_t n);

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static void *(*next_aligned_alloc)(size_t, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);

/* dlsym may allocate before the real functions are known: a small static
 * arena serves it (and is never freed). */
static _Alignas(16) unsigned char boot[8192];
static size_t boot_used;
static int resolving;

static long fail_at = -1; /* -1: not read yet */
static long counted;
static int failed;

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof boot) return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}

static int in_boot(const void *p)
{
    return (const unsigned char *)p >= boot && (const unsigned char *)p < boot + sizeof boot;
}

static void resolve(void)
{
    if (next_free || resolving) return;
    resolving = 1;
    next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

/* Reads the settings at the first counted allocation: under ASan the first
 * malloc comes before the environment is set up. */
static void read_settings(void)
{
    const char *v = getenv("MTR_FAILALLOC");
    fail_at = v ? strtol(v, NULL, 10) : 0;
    if (getenv("MTR_FAILALLOC_TRACE")) {
        void *frame;
        backtrace(&frame, 1); /* loads libgcc now rather than inside a failing malloc */
    }
}

static void report(void) __attribute__((destructor));
static void report(void)
{
    const char *path = getenv("MTR_FAILALLOC_COUNT");
    if (!path) return;
    char line[64];
    int n = snprintf(line, sizeof line, "%ld %d\n", counted, failed);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    if (write(fd, line, (size_t)n) != n) {
        /* nothing to do: the sweep sees a short file */
    }
    close(fd);
}

/* Whether this allocation, made from code at `caller`, is to fail. */
static int should_fail(const void *caller)
{
    if ((const char *)caller < __executable_start || (const char *)caller >= etext) return 0;
    if (fail_at < 0) read_settings();
    long n = __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED);
    if (fail_at > 0 && n == fail_at) {
        failed = 1;
        if (getenv("MTR_FAILALLOC_TRACE")) {
            void *frames[32];
            int k =
                backtrace(frames, 32); /* warmed up in resolve(), so it does not allocate here */
            backtrace_symbols_fd(frames, k, 2);
        }
        return 1;
    }
    return 0;
}

#define CALLER __builtin_return_address(0)

void *malloc(size_t n)
{
    resolve();
    if (!next_malloc) return boot_alloc(n);
    if (should_fail(CALLER)) return errno = ENOMEM, NULL;
    return next_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    resolve();
    if (!next_calloc) {
        void *p = n && size > SIZE_MAX / n ? NULL : boot_alloc(n * size);
        if (p) memset(p, 0, n * size);
        return p;
    }
    if (should_fail(CALLER)) return errno = ENOMEM, NULL;
    return next_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (in_boot(p)) { /* never happens in practice: dlsym's buffers are not grown */
        void *q = malloc(n);
        if (q) memcpy(q, p, n < (size_t)(boot + sizeof boot - (unsigned char *)p) ? n : 0);
        return q;
    }
    if (should_fail(CALLER)) return errno = ENOMEM, NULL;
    return next_realloc(p, n);
}

void free(void *p)
{
    if (!p || in_boot(p)) return;
    resolve();
    next_free(p);
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    if (should_fail(CALLER)) return errno = ENOMEM, NULL;
    return next_aligned_alloc(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    if (should_fail(CALLER)) return ENOMEM;
    return next_posix_memalign(out, align, n);
}

char *strdup(const char *s)
{
    resolve();
    if (should_fail(CALLER)) return errno = ENOMEM, NULL;
    size_t n = strlen(s) + 1;
    char *p = next_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *strndup(const char *s, size_t n)
{
    resolve();
    if (should_fail(CALLER)) return errno = ENOMEM, NULL;
    size_t len = strnlen(s, n);
    char *p = next_malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}
