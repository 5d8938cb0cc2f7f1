/* mtrun's ranks: an MtrDist (mtr/dist.h) over MPI when the build has it
 * (MTR_HAVE_MPI) and mtrun was started by mpirun, else a single rank. Only
 * mtrun links this file, so libmtr never depends on MPI. */
#ifndef MTR_RANKS_H
#define MTR_RANKS_H

#include "mtr/dist.h"

/* Fills d: MPI_Init when started by a launcher (OMPI_COMM_WORLD_SIZE,
 * PMIX_RANK or PMI_SIZE set), rank 0 of 1 otherwise. Returns 0, or -1 with a
 * message on stderr. */
int ranks_start(int *argc, char ***argv, MtrDist *d);
/* MPI_Finalize when ranks_start initialised MPI. */
void ranks_stop(MtrDist *d);
/* Stops every rank of the job with exit code `code` (MPI_Abort); returns
 * only when there is no job to stop. */
void ranks_abort(const MtrDist *d, int code);

#endif
