/* OpenBLAS under a memory limit (ulimit -v, RLIMIT_AS).
 *
 * OpenBLAS gives every thread that runs a matrix product a buffer of about
 * 128 MiB, allocated on first use, and when that allocation fails it retries
 * forever: under a limit that leaves no room for it, training hung in
 * blas_memory_alloc. Its worker threads, started when the library loads
 * (before main), take their buffers at once, so with a limit they hung there
 * too and exit hung joining them. mtrun therefore (1) starts again with
 * OPENBLAS_NUM_THREADS=1 under a limit, so that no worker is started before it
 * asks for --threads, and (2) checks, once a session's arenas are allocated,
 * that the address space left holds OpenBLAS's buffers, and says so clearly
 * when it does not. */
#ifndef MTR_MEMLIMIT_H
#define MTR_MEMLIMIT_H

#include "mtr/status.h"

#include <stddef.h>

/* What one OpenBLAS thread's buffer takes (128 MiB plus its alignment and the
 * allocator's header), rounded up. */
#define MTR_BLAS_BUFFER_BYTES ((size_t)130 << 20)

/* Under an address-space limit, with OPENBLAS_NUM_THREADS unset: sets it to 1
 * and executes the program again (argv as given); returns only when there is
 * no limit, the variable is set, or exec failed. Call first thing in main. */
void mtr_memlimit_reexec(char **argv);

/* The thread count to use when none is asked for: one under an address-space
 * limit (each OpenBLAS thread needs its own buffer), else `cores`. */
int mtr_memlimit_default_threads(int cores);

/* MTR_OK when the address space left under the limit (if any) holds the
 * buffers of `threads` OpenBLAS threads; else MTR_E_NOMEM with a message
 * giving the limit, what is in use and what is needed. `arenas` (bytes) is
 * only for the message. */
MtrStatus mtr_memlimit_check_blas(int threads, size_t arenas, MtrError *err);

/* How many of `want` runs can train at once (a sweep): the address space left
 * under the limit must hold per_run more bytes (arenas, encoded rows, a
 * thread's stack) for every run beyond one whose arenas are in place, and
 * the OpenBLAS buffers of blas_threads threads for every run. `want` when
 * there is no limit; at least 1. */
int mtr_memlimit_runs(int want, size_t per_run, int blas_threads);

#endif
