/* OpenBLAS under a memory limit (mtr/memlimit.h). */
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS, MAP_NORESERVE */
#include "mtr/memlimit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static int limited(struct rlimit *rl)
{
    return getrlimit(RLIMIT_AS, rl) == 0 && rl->rlim_cur != RLIM_INFINITY;
}

int mtr_memlimit_default_threads(int cores)
{
    struct rlimit rl;
    return limited(&rl) ? 1 : cores;
}

void mtr_memlimit_reexec(char **argv)
{
    struct rlimit rl;
    if (!limited(&rl) || getenv("OPENBLAS_NUM_THREADS")) return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* no /proc: go on as we are (the check below still stops a hang in training) */
}

/* The address space in use, in bytes (0 when /proc is not there). */
static size_t in_use(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

MtrStatus mtr_memlimit_check_blas(int threads, size_t arenas, MtrError *err)
{
    struct rlimit rl;
    if (!limited(&rl)) return MTR_OK;
    if (threads < 1) threads = 1;
    size_t need = (size_t)threads * MTR_BLAS_BUFFER_BYTES;
    /* The authority is the kernel: reserve that much address space (no
     * memory), and give it back. */
    void *p = mmap(NULL, need, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
        munmap(p, need);
        return MTR_OK;
    }
    size_t used = in_use(), mib = (size_t)1 << 20;
    return mtr_fail(err, MTR_E_NOMEM,
                    "out of memory under the memory limit (ulimit -v) of %zu MiB: %zu MiB are in "
                    "use (the model's arenas take %zu MiB), and OpenBLAS needs %zu MiB more for "
                    "its buffers (%d thread%s); raise the limit to at least %zu MiB",
                    (size_t)rl.rlim_cur / mib, used / mib, (arenas + mib - 1) / mib, need / mib,
                    threads, threads == 1 ? "" : "s", (used + need) / mib + 16);
}

int mtr_memlimit_runs(int want, size_t per_run, int blas_threads)
{
    struct rlimit rl;
    if (want <= 1 || !limited(&rl)) return want < 1 ? 1 : want;
    if (blas_threads < 1) blas_threads = 1;
    for (int w = want; w > 1; w--) {
        /* the first run's arenas are in place; its OpenBLAS buffers are not */
        size_t more = (size_t)(w - 1), buffers = (size_t)w * (size_t)blas_threads;
        if (per_run > SIZE_MAX / more || buffers > SIZE_MAX / MTR_BLAS_BUFFER_BYTES) continue;
        size_t need = more * per_run, blas = buffers * MTR_BLAS_BUFFER_BYTES;
        if (need > SIZE_MAX - blas) continue;
        need += blas;
        void *p = mmap(NULL, need, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            munmap(p, need);
            return w;
        }
    }
    return 1;
}
