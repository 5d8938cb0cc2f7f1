/* mtrun's ranks over MPI (see ranks.h), or one rank in a build without MPI.
 * The collectives are plain MPI_Allgather(v) of bytes: the summing happens in
 * runtime/dist.c, in rank order, so every rank gets the same bits whatever
 * reduction algorithm the MPI library would have picked. */
#include "ranks.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef MTR_HAVE_MPI
#include <limits.h>
#include <mpi.h>

/* Counts above INT_MAX bytes do not occur (a batch's rows are far smaller);
 * they would be a bug, and the job stops rather than sending a short message. */
static int as_int(size_t n)
{
    if (n > (size_t)INT_MAX) {
        fprintf(stderr, "mtrun: error: a message of %zu bytes is too large for MPI\n", n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return (int)n;
}

static void mpi_allgather(void *ctx, const void *mine, size_t n, void *all)
{
    (void)ctx;
    MPI_Allgather(mine, as_int(n), MPI_BYTE, all, as_int(n), MPI_BYTE, MPI_COMM_WORLD);
}

/* ctx holds four int arrays of size entries: counts and displacements, sent
 * and received. */
static void mpi_allgatherv(void *ctx, const void *mine, const size_t *bytes, void *all)
{
    int size, rank, *counts = ctx;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int *displs = counts + size;
    size_t at = 0;
    for (int r = 0; r < size; r++) {
        counts[r] = as_int(bytes[r]);
        displs[r] = as_int(at);
        at += bytes[r];
    }
    MPI_Allgatherv(mine, counts[rank], MPI_BYTE, all, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}

static void mpi_alltoallv(void *ctx, const void *send, const size_t *send_bytes, void *recv,
                          const size_t *recv_bytes)
{
    int size, *counts = ctx;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int *displs = counts + size, *rcounts = displs + size, *rdispls = rcounts + size;
    size_t at = 0, rat = 0;
    for (int r = 0; r < size; r++) {
        counts[r] = as_int(send_bytes[r]), displs[r] = as_int(at);
        rcounts[r] = as_int(recv_bytes[r]), rdispls[r] = as_int(rat);
        at += send_bytes[r], rat += recv_bytes[r];
    }
    MPI_Alltoallv(send, counts, displs, MPI_BYTE, recv, rcounts, rdispls, MPI_BYTE, MPI_COMM_WORLD);
}

static int launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int ranks_start(int *argc, char ***argv, MtrDist *d)
{
    *d = (MtrDist){.rank = 0, .size = 1};
    if (!launched()) return 0;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "mtrun: error: MPI_Init failed\n");
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->ctx = calloc(4 * (size_t)d->size, sizeof(int));
    if (!d->ctx) {
        fprintf(stderr, "mtrun: error: out of memory starting rank %d\n", d->rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    d->allgather = mpi_allgather;
    d->allgatherv = mpi_allgatherv;
    d->alltoallv = mpi_alltoallv;
    return 0;
}

void ranks_stop(MtrDist *d)
{
    if (!d->allgather) return;
    free(d->ctx);
    d->ctx = NULL;
    MPI_Finalize();
}

void ranks_abort(const MtrDist *d, int code)
{
    if (!d->allgather) return;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

#else

int ranks_start(int *argc, char ***argv, MtrDist *d)
{
    (void)argc, (void)argv;
    *d = (MtrDist){.rank = 0, .size = 1};
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE"))
        fprintf(stderr, "mtrun: warning: started by an MPI launcher, but this mtrun was built "
                        "without MPI: every process trains alone\n");
    return 0;
}

void ranks_stop(MtrDist *d)
{
    (void)d;
}

void ranks_abort(const MtrDist *d, int code)
{
    (void)d, (void)code;
}

#endif
