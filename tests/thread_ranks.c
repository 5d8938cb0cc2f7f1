/* Ranks played by threads (thread_ranks.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "thread_ranks.h"

#include <string.h>

void rank_meeting_open(RankMeeting *meet, int size)
{
    memset(meet, 0, sizeof *meet);
    meet->size = size;
    pthread_barrier_init(&meet->bar, NULL, (unsigned)size);
}

void rank_meeting_close(RankMeeting *meet)
{
    pthread_barrier_destroy(&meet->bar);
}

static void meet_allgather(void *ctx, const void *mine, size_t n, void *all)
{
    RankSeat *s = ctx;
    s->meet->send[s->rank] = mine;
    pthread_barrier_wait(&s->meet->bar);
    for (int r = 0; r < s->meet->size; r++) memcpy((char *)all + r * n, s->meet->send[r], n);
    pthread_barrier_wait(&s->meet->bar);
}

static void meet_allgatherv(void *ctx, const void *mine, const size_t *bytes, void *all)
{
    RankSeat *s = ctx;
    s->meet->send[s->rank] = mine;
    pthread_barrier_wait(&s->meet->bar);
    size_t at = 0;
    for (int r = 0; r < s->meet->size; r++) {
        memcpy((char *)all + at, s->meet->send[r], bytes[r]);
        at += bytes[r];
    }
    pthread_barrier_wait(&s->meet->bar);
}

static void meet_alltoallv(void *ctx, const void *send, const size_t *send_bytes, void *recv,
                           const size_t *recv_bytes)
{
    RankSeat *s = ctx;
    s->meet->send[s->rank] = send;
    s->meet->bytes[s->rank] = send_bytes;
    pthread_barrier_wait(&s->meet->bar);
    size_t at = 0;
    for (int r = 0; r < s->meet->size; r++) {
        size_t off = 0;
        for (int k = 0; k < s->rank; k++) off += s->meet->bytes[r][k];
        assert_int_equal(s->meet->bytes[r][s->rank], recv_bytes[r]);
        memcpy((char *)recv + at, (const char *)s->meet->send[r] + off, recv_bytes[r]);
        at += recv_bytes[r];
    }
    pthread_barrier_wait(&s->meet->bar);
}

MtrDist rank_dist(RankSeat *s)
{
    return (MtrDist){.rank = s->rank,
                     .size = s->meet->size,
                     .ctx = s,
                     .allgather = meet_allgather,
                     .allgatherv = meet_allgatherv,
                     .alltoallv = meet_alltoallv};
}
