/* Tests for reading data at scale (runtime/data/text.c's parts and
 * runtime/data/gather.c): the byte ranges every rank reads cut a file into
 * whole lines, each read by exactly one rank; and ranks played by threads of
 * this process (an in-memory MtrDist, so that no MPI is needed and the
 * sanitizers see it) gather the table one process reads, bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mtr/data.h"
#include "testutil.h"
#include "thread_ranks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cuts text (written to a file) into `parts` parts and checks them: in order,
 * back to back, covering the file; each starts at a line's start (or the end)
 * and is the first line that starts at or after part * size / parts. Returns
 * how many parts hold at least one line. */
static int check_parts(const char *dir, const char *text, size_t size, int parts)
{
    char *p = tu_path(dir, "f.txt");
    assert_int_equal(tu_write_file(p, text, size), 0);
    uint64_t at = 0;
    int nonempty = 0;
    MtrError err;
    for (int k = 0; k < parts; k++) {
        uint64_t lo, hi;
        assert_int_equal(mtr_data_part(p, k, parts, &lo, &hi, &err), MTR_OK);
        assert_int_equal(lo, at);
        assert_true(hi >= lo && hi <= size);
        at = hi;
        nonempty += hi > lo;
        /* a part starts at a line start, the first at or after its offset */
        uint64_t off = (uint64_t)size * (uint64_t)k / (uint64_t)parts;
        if (k > 0 && off == 0) off = 1; /* the first part always holds the first line */
        if (k > 0) {
            /* no newline from the byte before the offset up to the part's start */
            for (uint64_t i = off - 1; i + 1 < lo; i++) assert_true(text[i] != '\n');
            if (lo < size) assert_int_equal(text[lo - 1], '\n');
            if (lo == size) assert_true(text[size - 1] == '\n' || lo == size);
        }
    }
    assert_int_equal(at, size);
    free(p);
    return nonempty;
}

static void test_parts(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    static const char *const texts[] = {
        "a,b\n1,2\n3,4\n5,6\n7,8\n", "a,b\r\n1,2\r\n3,4\r\n55555,66666666\r\n7,8\r\n",
        "a,b\n1,2\n3,4\n5,6\n7,8", /* the last line without a newline */
        "one line only\n",           "x",
        "\n\n\n\n\n\n\n\n",          "a long first line that every cut falls into\nb\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        for (int parts = 1; parts <= 9; parts++) {
            int n = check_parts(dir, texts[i], strlen(texts[i]), parts);
            assert_true(n >= 1 && n <= parts);
        }
    /* fewer lines than parts: the extra parts are empty */
    assert_int_equal(check_parts(dir, "h\n1\n", 4, 8), 2);
    assert_int_equal(check_parts(dir, "h\n1\n2\n3\n4\n", 10, 8), 5);
    /* every size of a file of short and long lines, every part count */
    char buf[200];
    for (size_t n = 1; n < sizeof buf; n++) {
        for (size_t i = 0; i < n; i++) buf[i] = (i * 7 + n) % 11 == 0 ? '\n' : 'a' + (char)(i % 26);
        for (int parts = 1; parts <= 6; parts++) check_parts(dir, buf, n, parts);
    }
    MtrError err;
    uint64_t lo, hi;
    char *p = tu_path(dir, "f.txt");
    assert_int_equal(mtr_data_part(p, 3, 3, &lo, &hi, &err), MTR_E_ARG);
    assert_int_equal(mtr_data_part("/nonexistent/f.txt", 0, 2, &lo, &hi, &err), MTR_E_DATA);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

/* ---- ranks as threads (thread_ranks.h) */

typedef struct {
    RankSeat seat;
    const char *dir;
    MtrDataOptions opt;
    MtrDist dist;
    MtrDataset *ds;
    MtrStatus st;
    MtrError err;
} Seat;

static void *open_job(void *arg)
{
    Seat *s = arg;
    s->st = mtr_data_open(s->dir, &s->opt, &s->ds, &s->err);
    return NULL;
}

static void same_table(const MtrTable *a, const MtrTable *b)
{
    assert_int_equal(a->n_rows, b->n_rows);
    assert_int_equal(a->n_columns, b->n_columns);
    for (uint32_t c = 0; c < a->n_columns; c++) {
        const MtrDataColumn *x = &a->columns[c], *y = &b->columns[c];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->n_values, y->n_values);
        for (uint32_t v = 0; v < x->n_values; v++) assert_string_equal(x->values[v], y->values[v]);
        assert_memory_equal(x->codes, y->codes, a->n_rows * sizeof *x->codes);
    }
    if (a->n_rows) assert_memory_equal(a->lines, b->lines, a->n_rows * sizeof *a->lines);
}

/* Opens dir on one process and on n ranks, and checks that every rank has
 * the single process's interactions, items, users and counts. */
static void check_ranks(const char *dir, const MtrDataOptions *opt, int n)
{
    MtrDataset *one = NULL;
    MtrError err;
    assert_int_equal(mtr_data_open(dir, opt, &one, &err), MTR_OK);
    RankMeeting meet;
    rank_meeting_open(&meet, n);
    Seat seats[THREAD_RANKS_MAX];
    pthread_t th[THREAD_RANKS_MAX];
    for (int r = 0; r < n; r++) {
        seats[r] = (Seat){.seat = {&meet, r}, .dir = dir, .opt = *opt};
        seats[r].dist = rank_dist(&seats[r].seat);
        seats[r].opt.dist = &seats[r].dist;
        assert_int_equal(pthread_create(&th[r], NULL, open_job, &seats[r]), 0);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    rank_meeting_close(&meet);
    for (int r = 0; r < n; r++) {
        if (seats[r].st) fprintf(stderr, "rank %d: %s\n", r, seats[r].err.msg);
        assert_int_equal(seats[r].st, MTR_OK);
        same_table(&one->ratings, &seats[r].ds->ratings);
        same_table(&one->items, &seats[r].ds->items);
        same_table(&one->users, &seats[r].ds->users);
        assert_int_equal(one->skipped, seats[r].ds->skipped);
        assert_int_equal(one->side_missing, seats[r].ds->side_missing);
        assert_string_equal(one->format, seats[r].ds->format);
        mtr_data_free(seats[r].ds);
    }
    mtr_data_free(one);
}

static void put(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
    free(p);
}

static void test_gather_generic(void **state)
{
    (void)state;
    /* values first seen in a later part, a malformed record, CRLF, no final newline */
    static const char *const texts[] = {
        "user,item,genre,label\r\nu1,i1,g1,1\r\nu2,i2,g2,0\r\nu1,i3,g1,1\r\nu3,i1,g1,0\r\n"
        "u4,i4,g3,1\r\nu2,i5,g2,1\r\nu5,i1,g1,0\r\nu6,i6,g4,1\r\nu1,i2,g2,0",
        "user,item,genre,label\nu1,i1,g1,1\nbad,record\nu9,i9,g9,1\n\nu2,i1,g1,0\n"
        "u3,i3,g3,1\nu3,i1,g1,0\nu4,i4,g4,1\nu5,i5,g5,0\nu5,i1,g1,1\nu7,i2,g2,0\n",
        "user,item,genre,label\nu1,i1,g1,1\n", /* one row: most ranks read nothing */
    };
    static const char *const item_cols[] = {"item", "genre", NULL};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char *dir = tu_tmpdir();
        assert_non_null(dir);
        put(dir, "ratings.csv", texts[i]);
        put(dir, "users.csv", "user,age\nu1,20\nu2,30\nu3,40\n");
        MtrDataOptions opt = {.skip_bad = 1, .item_columns = item_cols, .dist = NULL};
        for (int n = 2; n <= THREAD_RANKS_MAX; n++) check_ranks(dir, &opt, n);
        tu_rmtree(dir);
        free(dir);
    }
}

static void test_gather_100k(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    put(dir, "u.data",
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n"
        "244\t51\t2\t880606923\n166\t346\t1\t886397596\n298\t474\t4\t884182806\n"
        "115\t265\t2\t881171488\n253\t465\t5\t891628467\n");
    put(dir, "u.item",
        "51|Legends|01-Jan-1994||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n"
        "242|Kolya|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "265|Hunt|01-Jan-1990||http://x|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "302|L.A.|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "346|Jackie|01-Jan-1997||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n"
        "465|Jungle|01-Jan-1994||http://x|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "474|Strange|01-Jan-1963||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1\n");
    MtrDataOptions opt = {.skip_bad = 0, .item_columns = NULL, .dist = NULL};
    for (int n = 2; n <= THREAD_RANKS_MAX; n++) check_ranks(dir, &opt, n);
    tu_rmtree(dir);
    free(dir);
}

static void test_real_100k(void **state)
{
    (void)state;
    const char *dir = tu_data_dir();
    if (!dir) skip();
    MtrDataOptions opt = {.skip_bad = 0, .item_columns = NULL, .dist = NULL};
    check_ranks(dir, &opt, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_gather_generic),
        cmocka_unit_test(test_gather_100k),
        cmocka_unit_test(test_real_100k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
