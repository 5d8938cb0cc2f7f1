/* Tests for runtime/rowshare.c, rows that stay on their rank: 1 to 4 ranks
 * played by threads over an in-memory MtrDist. Each rank holds only its rows;
 * the merged summary (values in the whole table's first-seen order, counts
 * over every row and over the training rows) equals the one process's; the
 * fetch brings every wanted global row, in order, from the rank that holds
 * it, and a rank ends up holding its own rows and the ones it asked for only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rowshare.h"
#include "thread_ranks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANKS THREAD_RANKS_MAX

/* ---- the data: ROWS rows of two columns, row g = (user "u<g*7 % 13>", item
 * "i<g*5 % 9>"), cut into the ranks' consecutive parts of uneven sizes */

#define ROWS 101

static void row_values(uint64_t g, char *user, char *item)
{
    snprintf(user, 16, "u%u", (unsigned)(g * 7 % 13));
    snprintf(item, 16, "i%u", (unsigned)(g * 5 % 9));
}

/* Rows [lo, hi) as a table. */
static void table_of(uint64_t lo, uint64_t hi, MtrTable *t)
{
    static const char *const names[] = {"user", "item"};
    size_t n = hi - lo;
    char(*buf)[16] = calloc(2 * (n ? n : 1), 16);
    const char **v = calloc(2 * (n ? n : 1), sizeof *v);
    assert_non_null(buf);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        row_values(lo + i, buf[2 * i], buf[2 * i + 1]);
        v[2 * i] = buf[2 * i], v[2 * i + 1] = buf[2 * i + 1];
    }
    MtrError err = {0};
    assert_int_equal(mtr_table_from_values("rows", 2, names, n, v, t, &err), MTR_OK);
    free(buf);
    free(v);
}

/* The training rows: every global id g with g % 3 != 0. */
static uint32_t *training(uint64_t *n)
{
    uint32_t *t = malloc(ROWS * sizeof *t);
    assert_non_null(t);
    *n = 0;
    for (uint32_t g = 0; g < ROWS; g++)
        if (g % 3) t[(*n)++] = g;
    return t;
}

/* A model of two plain columns, for the encoded rows' layout. */
static MtrModel *two_columns(void)
{
    MtrModel *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->n_columns = 2;
    m->columns = calloc(2, sizeof *m->columns);
    assert_non_null(m->columns);
    return m;
}

typedef struct {
    MtrDist d;
    RankSeat seat;
    int size;
    uint64_t lo, hi; /* this rank's rows */
    const MtrTable *whole;
    const MtrModel *m;
    int failed;
} Rank;

/* Which global ids a rank wants: a scrambled walk over every row, cut into
 * shares as the batches are (all ranks together want every row once). */
static int64_t wanted(int rank, int size, uint32_t *want)
{
    int64_t k = 0;
    for (int64_t b = 0; b < ROWS; b += 16) {
        int64_t n = ROWS - b < 16 ? ROWS - b : 16;
        MtrDist d = {.rank = rank, .size = size};
        int64_t lo, hi;
        mtr_dist_rows(&d, n, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) want[k++] = (uint32_t)((b + i) * 37 % ROWS);
    }
    return k;
}

static void *rank_main(void *arg)
{
    Rank *rk = arg;
    MtrError err = {0};
    MtrTable local;
    table_of(rk->lo, rk->hi, &local);
    uint64_t totals[1] = {(uint64_t)rk->d.rank + 1};
    RowShare *rs;
    assert_int_equal(rowshare_new(&rk->d, local.n_rows, totals, 1, &rs, &err), MTR_OK);
    assert_int_equal(totals[0], (uint64_t)(rk->size * (rk->size + 1) / 2));
    assert_int_equal(rowshare_rows(rs), ROWS);
    assert_int_equal(rowshare_offset(rs), rk->lo); /* the prefix sum of the row counts */

    /* the summary equals one process's: values in first-seen order, counts */
    uint64_t n_train;
    uint32_t *train = training(&n_train);
    MtrTable sum;
    uint64_t **tc;
    assert_int_equal(rowshare_summary(rs, &local, train, n_train, &sum, &tc, &err), MTR_OK);
    assert_int_equal(sum.n_rows, 0);
    for (uint32_t c = 0; c < 2; c++) {
        const MtrDataColumn *a = &rk->whole->columns[c], *b = &sum.columns[c];
        assert_int_equal(a->n_values, b->n_values);
        for (uint32_t v = 0; v < a->n_values; v++) {
            assert_string_equal(a->values[v], b->values[v]);
            uint64_t all = 0, tr = 0;
            for (uint64_t g = 0; g < ROWS; g++)
                if (a->codes[g] == v) all++, tr += g % 3 != 0;
            assert_int_equal(sum.counts[c][v], all);
            assert_int_equal(tc[c][v], tr);
        }
        free(tc[c]);
    }
    free(tc);
    mtr_table_free(&sum);
    free(train);

    /* each rank encodes its own rows only; the fetch brings the wanted ones */
    Encoded enc = {.n_rows = local.n_rows};
    enc.ids = calloc(3, sizeof *enc.ids);
    enc.nums = calloc(3, sizeof *enc.nums);
    enc.true_row = calloc(3, sizeof *enc.true_row);
    assert_non_null(enc.ids);
    enc.ids[0] = malloc((local.n_rows + 1) * sizeof *enc.ids[0]);
    enc.nums[1] = malloc((local.n_rows + 1) * sizeof *enc.nums[1]);
    for (uint64_t i = 0; i < local.n_rows; i++) {
        enc.ids[0][i] = (int32_t)(1000 + rk->lo + i);
        enc.nums[1][i] = 0.5f * (float)(rk->lo + i);
    }
    uint32_t want[ROWS];
    int64_t n = wanted(rk->d.rank, rk->size, want);
    Encoded got;
    assert_int_equal(rowshare_fetch(rs, rk->m, &enc, want, n, &got, &err), MTR_OK);
    assert_int_equal(got.n_rows, (uint64_t)n);
    assert_null(got.ids[1]);
    assert_null(got.nums[0]);
    for (int64_t i = 0; i < n; i++) {
        assert_int_equal(got.ids[0][i], 1000 + (int32_t)want[i]);
        assert_true(got.nums[1][i] == 0.5f * (float)want[i]);
    }
    /* a rank's share of the batches, about ROWS / size rows, not the table */
    assert_true(n <= ROWS / rk->size + (ROWS + 15) / 16);
    if (rk->size > 1) assert_true(rowshare_sent(rs) > 0);
    bind_encoded_free(rk->m, &got);

    /* the whole table, for the evaluation, in global order */
    assert_int_equal(rowshare_gather_all(rs, rk->m, &enc, &got, &err), MTR_OK);
    assert_int_equal(got.n_rows, ROWS);
    for (uint32_t g = 0; g < ROWS; g++) assert_int_equal(got.ids[0][g], 1000 + (int32_t)g);
    bind_encoded_free(rk->m, &got);

    /* a wanted row beyond the table is an error (alone: under ranks, the
     * failing rank stops the job) */
    if (rk->size == 1) {
        want[0] = ROWS + 5;
        assert_int_equal(rowshare_fetch(rs, rk->m, &enc, want, 1, &got, &err), MTR_E_STATE);
    }
    bind_encoded_free(rk->m, &enc);
    rowshare_free(rs);
    mtr_table_free(&local);
    return NULL;
}

static void run_ranks(int size)
{
    MtrTable whole;
    table_of(0, ROWS, &whole);
    MtrModel *m = two_columns();
    RankMeeting meet;
    rank_meeting_open(&meet, size);
    Rank rk[MAX_RANKS];
    pthread_t th[MAX_RANKS];
    /* uneven parts, the last rank's empty at 4 ranks */
    static const uint64_t cuts[MAX_RANKS + 1][MAX_RANKS + 1] = {
        {0}, {0, ROWS}, {0, 40, ROWS}, {0, 10, 70, ROWS}, {0, 30, 31, ROWS, ROWS}};
    for (int r = 0; r < size; r++) {
        rk[r] = (Rank){.seat = {&meet, r},
                       .size = size,
                       .lo = cuts[size][r],
                       .hi = cuts[size][r + 1],
                       .whole = &whole,
                       .m = m};
        rk[r].d = rank_dist(&rk[r].seat);
    }
    for (int r = 0; r < size; r++)
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &rk[r]), 0);
    for (int r = 0; r < size; r++) pthread_join(th[r], NULL);
    rank_meeting_close(&meet);
    mtr_table_free(&whole);
    free(m->columns);
    free(m);
}

static void test_one_rank(void **state)
{
    (void)state;
    run_ranks(1);
}

static void test_two_ranks(void **state)
{
    (void)state;
    run_ranks(2);
}

static void test_three_ranks(void **state)
{
    (void)state;
    run_ranks(3);
}

static void test_four_ranks_one_empty(void **state)
{
    (void)state;
    run_ranks(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_rank),
        cmocka_unit_test(test_two_ranks),
        cmocka_unit_test(test_three_ranks),
        cmocka_unit_test(test_four_ranks_one_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
