/* Data-parallel training across processes (ranks): what the train loop needs
 * from the communication layer, and the step that uses it.
 *
 * The communication is two collectives behind function pointers, so that
 * libmtr itself never links MPI: mtrun fills an MtrDist from MPI when it runs
 * under mpirun (runtime/mpi.c, built when CMake finds MPI), and a NULL MtrDist
 * or one of size 1 is a single process. Every rank runs the same program on
 * its own share of each global batch; between gradients and updates the
 * ranks sum what they computed (see docs/distributed.md):
 *   - dense gradients and the losses: each rank's partial sums, gathered and
 *     added in rank order, so that every rank holds the same bits;
 *   - embedding tables' sparse gradients: each rank's distinct ids and rows,
 *     gathered, merged into the sorted union and summed;
 *   - mean losses (mse, bce): divided by the labelled rows of the global batch;
 *   - the in-batch softmax: the candidates' embeddings and ids of the whole
 *     global batch are gathered; each rank scores its own query rows against
 *     all of them, and the candidates' gradients are summed across ranks.
 * Then every rank applies the same update, so the parameters stay identical. */
#ifndef MTR_DIST_H
#define MTR_DIST_H

#include "mtr/exec.h"
#include "mtr/metrics.h"
#include "mtr/model.h"
#include "mtr/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;
    void *ctx;
    /* all[r * n .. (r + 1) * n) = rank r's n bytes at mine, on every rank */
    void (*allgather)(void *ctx, const void *mine, size_t n, void *all);
    /* rank r's bytes[r] bytes, concatenated in rank order into all, on every
     * rank; mine holds this rank's bytes[rank] */
    void (*allgatherv)(void *ctx, const void *mine, const size_t *bytes, void *all);
    /* sends send_bytes[r] bytes (consecutive in send, in rank order) to rank r
     * and receives recv_bytes[r] bytes from rank r into recv, in rank order */
    void (*alltoallv)(void *ctx, const void *send, const size_t *send_bytes, void *recv,
                      const size_t *recv_bytes);
} MtrDist;

/* This rank's share [*lo, *hi) of a global batch of n rows: contiguous, in
 * rank order, sizes differing by at most one. d may be NULL (all rows). */
void mtr_dist_rows(const MtrDist *d, int64_t n, int64_t *lo, int64_t *hi);

typedef struct DistStep DistStep;

/* Prepares data-parallel train steps of program p_train on session s, whose
 * batch symbol is bound to at most `batch` rows: checks that every op of the
 * program has a data-parallel meaning (MTR_E_ARG naming the one that has not)
 * and allocates every buffer the steps need. */
MtrStatus mtr_dist_step_new(const MtrDist *d, const MtrModel *m, MtrSession *s, int p_train,
                            int64_t batch, DistStep **out, MtrError *err);
void mtr_dist_step_free(DistStep *st);
/* One train step over a global batch of `global` rows, this rank's share
 * (mtr_dist_rows) already fed: gradients, the ranks' sums, the updates. The
 * loss outputs then hold the global batch's losses, the gradient outputs its
 * gradients (sparse ones merged, rows up to `global`). Allocates nothing. */
void mtr_dist_step_run(DistStep *st, int64_t global);
/* Its two halves, for a step that changes the summed gradients (clipping)
 * before the updates. */
void mtr_dist_step_gradients(DistStep *st, int64_t global);
void mtr_dist_step_updates(DistStep *st, int64_t global);
/* Bytes this rank has sent per step so far (its share of each gather, counted
 * once for each other rank that receives it), averaged over the steps run. */
double mtr_dist_step_bytes(const DistStep *st);
/* Seconds this rank has spent in the step's collectives (sending, and waiting
 * for the slowest rank), all steps so far. */
double mtr_dist_step_comm_seconds(const DistStep *st);

/* Evaluation: each rank adds its share of the test rows to ms (sized for all
 * of them); this sums every rank's counts into every rank's ms, in rank order
 * (regression sums, top-k hits and rows; an AUC's scored pairs are gathered).
 * Does nothing for a NULL d or one rank. MTR_E_ARG when the gathered pairs
 * would exceed an AUC's capacity. */
MtrStatus mtr_dist_metrics_sum(const MtrDist *d, Metrics *ms, MtrError *err);

#endif
