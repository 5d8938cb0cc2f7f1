/* Ranks played by threads over an in-memory MtrDist, for the tests of the
 * data-parallel code: every collective meets at a barrier, each rank
 * publishes what it sends, then copies what it receives. */
#ifndef MTR_THREAD_RANKS_H
#define MTR_THREAD_RANKS_H

#include "mtr/dist.h"

#include <pthread.h>
#include <stddef.h>

#define THREAD_RANKS_MAX 4

typedef struct {
    pthread_barrier_t bar;
    int size;
    const void *send[THREAD_RANKS_MAX];
    const size_t *bytes[THREAD_RANKS_MAX]; /* alltoallv's per-destination byte counts */
} RankMeeting;

/* One rank's place at a meeting: the ctx of its MtrDist. */
typedef struct {
    RankMeeting *meet;
    int rank;
} RankSeat;

/* Sets up a meeting of size ranks (1 to THREAD_RANKS_MAX), and tears it down. */
void rank_meeting_open(RankMeeting *meet, int size);
void rank_meeting_close(RankMeeting *meet);

/* The MtrDist of seat s at its meeting: allgather, allgatherv and alltoallv
 * (s must outlive it). */
MtrDist rank_dist(RankSeat *s);

#endif
