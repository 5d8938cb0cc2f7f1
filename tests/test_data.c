/* Tests for the data readers (runtime/data/): every folder format on small
 * generated files (Latin-1 titles, quoted CSV fields, CRLF, blank last lines,
 * repeated titles), the exact message of every malformed-record case, skip_bad,
 * missing and empty files, vocabularies and their hash index, a seeded fuzz of
 * the readers, and, when $MTR_DATA names it, the real MovieLens 100K folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "mtr/data.h"
#include "testutil.h"

/* ---- helpers */

static void put(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    assert_non_null(p);
    assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
    free(p);
}

/* The value of column name at row r of t. */
static const char *cell(const MtrTable *t, const char *name, uint64_t r)
{
    const MtrDataColumn *c = mtr_table_column(t, name);
    assert_non_null(c);
    assert_true(r < t->n_rows);
    assert_true(c->codes[r] < c->n_values);
    return c->values[c->codes[r]];
}

/* Checks a table's invariants: codes in range, values distinct, every value used. */
static void check_table(const MtrTable *t)
{
    for (uint32_t c = 0; c < t->n_columns; c++) {
        const MtrDataColumn *col = &t->columns[c];
        char *used = calloc(col->n_values + 1, 1);
        assert_non_null(used);
        for (uint64_t r = 0; r < t->n_rows; r++) {
            assert_true(col->codes[r] < col->n_values);
            used[col->codes[r]] = 1;
        }
        for (uint32_t v = 0; v < col->n_values; v++) {
            assert_true(used[v]);
            for (uint32_t w = v + 1; w < col->n_values && col->n_values < 200; w++)
                assert_string_not_equal(col->values[v], col->values[w]);
        }
        free(used);
    }
    for (uint64_t r = 1; r < t->n_rows; r++) assert_true(t->lines[r] > t->lines[r - 1]);
}

/* Opens dir, expecting failure with exactly the message fmt (printf-style,
 * where the first %s is dir). */
static void expect_error(const char *dir, const MtrDataOptions *opt, MtrStatus status,
                         const char *fmt, ...)
{
    char want[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    MtrDataset *ds = (MtrDataset *)1;
    MtrError err = {0};
    MtrStatus st = mtr_data_open(dir, opt, &ds, &err);
    if (st == MTR_OK) mtr_data_free(ds);
    assert_int_equal(st, status);
    assert_null(ds);
    assert_string_equal(err.msg, want);
}

static MtrDataset *open_ok(const char *dir, const MtrDataOptions *opt)
{
    MtrDataset *ds = NULL;
    MtrError err = {0};
    MtrStatus st = mtr_data_open(dir, opt, &ds, &err);
    if (st) fail_msg("mtr_data_open(%s): %s", dir, err.msg);
    assert_non_null(ds);
    check_table(&ds->ratings);
    check_table(&ds->items);
    return ds;
}

/* A small u.item (ISO-8859-1, item 3 repeats item 2's title) and u.data. */
static const char U_ITEM[] =
    "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "2|Mis\xe9rables, Les (1995)|01-Jan-1995||http://y|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n"
    "3|Mis\xe9rables, Les (1995)|01-Jan-1995||http://z|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n"
    "4|\xc1 \xf6 \"q\" (1990)|||http://w|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n";
static const char U_DATA[] = "196\t1\t3\t881250949\r\n"
                             "186\t2\t3\t891717742\r\n"
                             "22\t3\t1\t878887116\r\n"
                             "196\t4\t5\t878887116\r\n"
                             "\r\n";

static char *make_100k(const char *data, const char *item)
{
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    if (data) put(dir, "u.data", data);
    if (item) put(dir, "u.item", item);
    return dir;
}

/* ---- MovieLens 100K */

static void test_100k_small(void **state)
{
    (void)state;
    char *dir = make_100k(U_DATA, U_ITEM);
    MtrDataset *ds = open_ok(dir, NULL);
    assert_string_equal(ds->format, "movielens-100k");
    assert_int_equal(ds->ratings.n_rows, 4);
    assert_int_equal(ds->items.n_rows, 4);
    assert_int_equal(ds->skipped, 0);
    static const char *const cols[] = {"user_id",     "movie_id",  "movie_title",
                                       "user_rating", "timestamp", "movie_genres"};
    assert_int_equal(ds->ratings.n_columns, 6);
    for (int c = 0; c < 6; c++) assert_string_equal(ds->ratings.columns[c].name, cols[c]);
    assert_int_equal(ds->items.n_columns, 3);
    assert_int_equal(ds->users.n_columns, 0); /* no u.user */
    assert_string_equal(ds->items.columns[0].name, "movie_id");
    assert_string_equal(ds->items.columns[1].name, "movie_title");
    /* Latin-1 decoded; the repeated title kept as two items with one value */
    assert_string_equal(cell(&ds->items, "movie_title", 1), "Mis\xc3\xa9rables, Les (1995)");
    assert_string_equal(cell(&ds->items, "movie_title", 2), "Mis\xc3\xa9rables, Les (1995)");
    assert_string_equal(cell(&ds->items, "movie_title", 3), "\xc3\x81 \xc3\xb6 \"q\" (1990)");
    assert_string_equal(cell(&ds->items, "movie_id", 3), "4");
    assert_int_equal(mtr_table_column(&ds->items, "movie_title")->n_values, 3);
    assert_int_equal(ds->items.lines[3], 4);
    /* ratings joined by id, values as text, lines 1-based */
    assert_string_equal(cell(&ds->ratings, "user_id", 1), "186");
    assert_string_equal(cell(&ds->ratings, "movie_id", 1), "2");
    assert_string_equal(cell(&ds->ratings, "movie_title", 0), "Toy Story (1995)");
    assert_string_equal(cell(&ds->ratings, "movie_title", 2), "Mis\xc3\xa9rables, Les (1995)");
    assert_string_equal(cell(&ds->ratings, "user_rating", 3), "5");
    assert_string_equal(cell(&ds->ratings, "timestamp", 0), "881250949");
    assert_int_equal(mtr_table_column(&ds->ratings, "user_id")->n_values, 3);
    assert_int_equal(ds->ratings.lines[3], 4);
    assert_string_equal(ds->dir, dir);
    assert_null(mtr_table_column(&ds->ratings, "nope"));

    float r[4];
    MtrError err = {0};
    assert_int_equal(mtr_table_numbers(&ds->ratings, "user_rating", r, &err), MTR_OK);
    assert_true(r[0] == 3.0f && r[1] == 3.0f && r[2] == 1.0f && r[3] == 5.0f);
    assert_int_equal(mtr_table_numbers(&ds->ratings, "nope", r, &err), MTR_E_ARG);

    /* another split of the same folder, u.data-style without a header */
    char *split = tu_path(dir, "u1.base");
    put(dir, "u1.base", "7\t3\t4\t1\n8\t1\t2\t2\n");
    MtrTable t;
    uint64_t skipped = 99;
    assert_int_equal(mtr_data_read_interactions(split, ds, NULL, &t, &skipped, &err), MTR_OK);
    check_table(&t);
    assert_int_equal(skipped, 0);
    assert_int_equal(t.n_rows, 2);
    assert_string_equal(t.path, split);
    assert_string_equal(cell(&t, "movie_title", 0), "Mis\xc3\xa9rables, Les (1995)");
    assert_string_equal(cell(&t, "user_id", 1), "8");
    mtr_table_free(&t);
    mtr_table_free(&t); /* a freed table is empty and may be freed again */

    put(dir, "u1.base", "7\t3\t4\t1\n8\t9\t2\t2\n8\t1\t2\t2\n");
    assert_int_equal(mtr_data_read_interactions(split, ds, NULL, &t, NULL, &err), MTR_E_DATA);
    char want[512];
    snprintf(want, sizeof want, "%s:2: unknown movie id (found '9')", split);
    assert_string_equal(err.msg, want);
    MtrDataOptions skip = {.skip_bad = 1};
    assert_int_equal(mtr_data_read_interactions(split, ds, &skip, &t, &skipped, &err), MTR_OK);
    assert_int_equal(skipped, 1);
    assert_int_equal(t.n_rows, 2);
    assert_int_equal(t.lines[1], 3);
    mtr_table_free(&t);
    free(split);
    mtr_data_free(ds);
    tu_rmtree(dir);
    free(dir);
}

/* A u.data in UTF-8 (someone converted it) stays as it is. */
static void test_100k_utf8_item(void **state)
{
    (void)state;
    char *dir = make_100k("1\t1\t4\t5\n",
                          "1|Mis\xc3\xa9rables|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
    MtrDataset *ds = open_ok(dir, NULL);
    assert_string_equal(cell(&ds->ratings, "movie_title", 0), "Mis\xc3\xa9rables");
    mtr_data_free(ds);
    tu_rmtree(dir);
    free(dir);
}

typedef struct {
    const char *data, *item;
    const char *file; /* the file the message names */
    const char *msg;  /* after "dir/file:" */
} BadCase;

static void test_100k_malformed(void **state)
{
    (void)state;
    static const BadCase cases[] = {
        {"196\t1\t3\t881250949\n1\t2\t3\n", NULL, "u.data",
         "2: expected 4 fields, got 3 (found '1\\t2\\t3')"},
        {"196\t1\t3\t8\n1\t2\t3\t4\t5\n", NULL, "u.data",
         "2: expected 4 fields, got 5 (found '1\\t2\\t3\\t4\\t5')"},
        {"196\t1\t3\t8\n\t2\t3\t4\n", NULL, "u.data", "2: empty user id (found '\\t2\\t3\\t4')"},
        {"196\t1\tx\t8\n", NULL, "u.data", "1: rating is not a number (found 'x')"},
        {"196\t1\t\t8\n", NULL, "u.data", "1: rating is not a number (found '')"},
        {"196\t1\t4.5z\t8\n", NULL, "u.data", "1: rating is not a number (found '4.5z')"},
        {"196\t1\tnan\t8\n", NULL, "u.data", "1: rating is not a number (found 'nan')"},
        {"196\t1\t3\t8\r\n\r\n1\t77\t3\t8\r\n", NULL, "u.data", "3: unknown movie id (found '77')"},
        {"196\t1\t3\t8\n1\t\t3\t8\n", NULL, "u.data", "2: unknown movie id (found '')"},
        {"1\t1\t3\t8\n", "1|A|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n2|B|x\n", "u.item",
         "2: expected 24 fields, got 3 (found '2|B|x')"},
        {"1\t1\t3\t8\n", "|A|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n", "u.item",
         "1: empty movie id (found '|A|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0')"},
        {"1\t1\t3\t8\n",
         "1|A|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n1|B|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|"
         "0|0|0|0|0\n",
         "u.item", "2: duplicate movie id (found '1')"},
        {"1\t1\t3\t8\n", "\n\n", "u.item", " no movies"},
        {"\n\r\n", NULL, "u.data", " no ratings"},
        {"1\t1\t3\t8\n", "", "u.item", " the file is empty"},
        {"", NULL, "u.data", " the file is empty"},
        {"1\t1\t3\t8\n2\t1\t3\x00\n", NULL, "u.data", "2: a NUL byte in a text file"},
    };
    static const char item1[] = "1|A|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir = tu_tmpdir();
        char *p = tu_path(dir, "u.data");
        /* the NUL case needs its length: everything up to the final "\n" */
        size_t n = strlen(cases[i].data);
        if (strstr(cases[i].msg, "NUL")) n += 2;
        assert_int_equal(tu_write_file(p, cases[i].data, n), 0);
        free(p);
        put(dir, "u.item", cases[i].item ? cases[i].item : item1);
        char *file = tu_path(dir, cases[i].file);
        expect_error(dir, NULL, MTR_E_DATA, "%s:%s", file, cases[i].msg);
        free(file);
        tu_rmtree(dir);
        free(dir);
    }
}

static void test_100k_skip_bad(void **state)
{
    (void)state;
    char *dir = make_100k("1\t1\t3\t8\n"
                          "1\t2\t3\n"      /* too few fields */
                          "\t2\t3\t8\n"    /* empty user */
                          "2\t2\tbad\t8\n" /* rating */
                          "2\t99\t3\t8\n"  /* unknown movie */
                          "3\t4\t2\t9\n",
                          U_ITEM);
    put(dir, "u.item",
        "1|A|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "1|B|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n" /* duplicate id */
        "2|C|||u\n"                                       /* too few fields */
        "4|D|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
    MtrDataOptions opt = {.skip_bad = 1};
    MtrDataset *ds = open_ok(dir, &opt);
    assert_int_equal(ds->skipped, 6);
    assert_int_equal(ds->items.n_rows, 2);
    assert_int_equal(ds->ratings.n_rows, 2);
    assert_string_equal(cell(&ds->ratings, "movie_title", 1), "D");
    assert_int_equal(ds->ratings.lines[1], 6);
    mtr_data_free(ds);
    /* skipping everything leaves no ratings, which is still an error */
    put(dir, "u.data", "x\t99\t1\t1\n");
    char *file = tu_path(dir, "u.data");
    expect_error(dir, &opt, MTR_E_DATA, "%s: no ratings (every record was malformed)", file);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

/* u.user joins the user's columns, u.item's flags make movie_genres; a user
 * u.user lacks is counted and reads as empty. */
static void test_100k_side_columns(void **state)
{
    (void)state;
    char *dir = make_100k(U_DATA, U_ITEM);
    put(dir, "u.user", "196|49|M|writer|55105\n186|39|F|executive|00000\n7|17|M|student|T8H1N\n");
    MtrDataset *ds = open_ok(dir, NULL);
    check_table(&ds->ratings);
    assert_int_equal(ds->users.n_rows, 3);
    assert_int_equal(ds->side_missing, 1); /* user 22 */
    assert_string_equal(cell(&ds->items, "movie_genres", 0), "Animation|Children's|Comedy");
    assert_string_equal(cell(&ds->items, "movie_genres", 3), "Drama");
    assert_string_equal(cell(&ds->ratings, "movie_genres", 0), "Animation|Children's|Comedy");
    assert_string_equal(cell(&ds->ratings, "raw_user_age", 0), "49");
    assert_string_equal(cell(&ds->ratings, "bucketized_user_age", 0), "45");
    assert_string_equal(cell(&ds->ratings, "bucketized_user_age", 1), "35");
    assert_string_equal(cell(&ds->ratings, "user_gender", 1), "F");
    assert_string_equal(cell(&ds->ratings, "user_occupation_text", 1), "executive");
    assert_string_equal(cell(&ds->ratings, "user_zip_code", 1), "00000");
    assert_string_equal(cell(&ds->ratings, "user_gender", 2), "");    /* user 22: missing */
    assert_string_equal(cell(&ds->ratings, "raw_user_age", 3), "49"); /* 196 again */
    assert_string_equal(cell(&ds->users, "bucketized_user_age", 2), "1");
    /* the same columns on a given interactions file */
    char *file = tu_path(dir, "u.data");
    MtrTable t;
    MtrError err = {0};
    assert_int_equal(mtr_data_read_interactions(file, ds, NULL, &t, NULL, &err), MTR_OK);
    assert_string_equal(cell(&t, "user_occupation_text", 0), "writer");
    assert_string_equal(cell(&t, "movie_genres", 1), "Drama");
    mtr_table_free(&t);
    free(file);
    mtr_data_free(ds);
    put(dir, "u.user", "196|old|M|writer|55105\n");
    file = tu_path(dir, "u.user");
    expect_error(dir, NULL, MTR_E_DATA, "%s:1: age is not a number (found 'old')", file);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

/* ---- MovieLens 1M and latest */

static void test_1m_small(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    put(dir, "movies.dat",
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Caf\xe9 au lait (1993)::Comedy\n");
    put(dir, "ratings.dat", "1::2::5::978300760\n2::1::3::978302109\n1::1::4::978301968\n");
    MtrDataset *ds = open_ok(dir, NULL);
    assert_string_equal(ds->format, "movielens-1m");
    assert_int_equal(ds->ratings.n_rows, 3);
    assert_int_equal(ds->items.n_rows, 2);
    assert_string_equal(cell(&ds->ratings, "movie_title", 0), "Caf\xc3\xa9 au lait (1993)");
    assert_string_equal(cell(&ds->ratings, "user_rating", 2), "4");
    assert_string_equal(cell(&ds->ratings, "timestamp", 1), "978302109");
    assert_string_equal(cell(&ds->ratings, "movie_genres", 1), "Animation|Children's|Comedy");
    assert_null(mtr_table_column(&ds->ratings, "user_gender")); /* no users.dat */
    mtr_data_free(ds);

    /* users.dat: gender, age bucket, occupation code (as its text), zip */
    put(dir, "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n");
    ds = open_ok(dir, NULL);
    assert_string_equal(cell(&ds->ratings, "user_gender", 0), "F");
    assert_string_equal(cell(&ds->ratings, "bucketized_user_age", 1), "56");
    assert_string_equal(cell(&ds->ratings, "user_occupation_text", 0), "K-12 student");
    assert_string_equal(cell(&ds->ratings, "user_occupation_text", 1), "self-employed");
    assert_string_equal(cell(&ds->ratings, "user_zip_code", 1), "70072");
    assert_null(mtr_table_column(&ds->ratings, "raw_user_age"));
    assert_int_equal(ds->side_missing, 0);
    mtr_data_free(ds);
    put(dir, "users.dat", "1::F::1::21::48067\n");
    char *ufile = tu_path(dir, "users.dat");
    expect_error(dir, NULL, MTR_E_DATA, "%s:1: unknown occupation code (found '21')", ufile);
    remove(ufile);
    free(ufile);

    put(dir, "ratings.dat", "1::2::5::978300760\n1::2:5::978300760\n");
    char *file = tu_path(dir, "ratings.dat");
    expect_error(dir, NULL, MTR_E_DATA,
                 "%s:2: expected 4 fields, got 3 (found '1::2:5::978300760')", file);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

static void test_latest_small(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    put(dir, "movies.csv",
        "movieId,title,genres\r\n"
        "1,Toy Story (1995),Adventure|Animation\r\n"
        "11,\"American President, The (1995)\",Comedy|Drama|Romance\r\n"
        "12,\"Dracula: Dead and Loving It (1995)\",Comedy\r\n"
        "13,\"He Said \"\"Hi\"\", She Said (2001)\",Comedy\r\n"
        "14,Am\xc3\xa9lie (2001),Comedy\r\n");
    put(dir, "ratings.csv",
        "userId,movieId,rating,timestamp\n"
        "1,11,4.0,964982703\n"
        "1,13,3.5,964981247\n"
        "2,14,0.5,964982224\n"
        "\n");
    MtrDataset *ds = open_ok(dir, NULL);
    assert_string_equal(ds->format, "movielens-latest");
    assert_int_equal(ds->items.n_rows, 5);
    assert_int_equal(ds->ratings.n_rows, 3);
    assert_string_equal(cell(&ds->items, "movie_title", 1), "American President, The (1995)");
    assert_string_equal(cell(&ds->ratings, "movie_title", 0), "American President, The (1995)");
    assert_string_equal(cell(&ds->ratings, "movie_title", 1), "He Said \"Hi\", She Said (2001)");
    assert_string_equal(cell(&ds->ratings, "movie_title", 2), "Am\xc3\xa9lie (2001)");
    assert_string_equal(cell(&ds->ratings, "user_rating", 1), "3.5");
    assert_string_equal(cell(&ds->ratings, "movie_genres", 0), "Comedy|Drama|Romance");
    assert_string_equal(cell(&ds->items, "movie_genres", 0), "Adventure|Animation");
    assert_int_equal(ds->ratings.lines[0], 2);
    assert_int_equal(ds->items.lines[4], 6);

    /* a test split in the same format */
    char *split = tu_path(dir, "test.csv");
    put(dir, "test.csv", "userId,movieId,rating,timestamp\n5,1,2.5,1\n");
    MtrTable t;
    MtrError err = {0};
    assert_int_equal(mtr_data_read_interactions(split, ds, NULL, &t, NULL, &err), MTR_OK);
    assert_string_equal(cell(&t, "movie_title", 0), "Toy Story (1995)");
    mtr_table_free(&t);
    put(dir, "test.csv", "user,movieId,rating,timestamp\n5,1,2.5,1\n");
    assert_int_equal(mtr_data_read_interactions(split, ds, NULL, &t, NULL, &err), MTR_E_DATA);
    char want[512];
    snprintf(want, sizeof want,
             "%s:1: the header has no column 'userId' (found 'user,movieId,rating,timestamp')",
             split);
    assert_string_equal(err.msg, want);
    free(split);
    mtr_data_free(ds);

    /* bad quoting */
    char *file = tu_path(dir, "movies.csv");
    put(dir, "movies.csv", "movieId,title,genres\n1,\"Toy Story (1995),Comedy\n");
    expect_error(dir, NULL, MTR_E_DATA,
                 "%s:2: a quoted field is not closed (found '1,\"Toy Story (1995),Comedy')", file);
    put(dir, "movies.csv", "movieId,title,genres\n1,\"Toy\" Story,Comedy\n");
    expect_error(dir, NULL, MTR_E_DATA,
                 "%s:2: text after a closing quote (found '1,\"Toy\" Story,Comedy')", file);
    /* under skip_bad the badly quoted line goes, the rest is read */
    put(dir, "movies.csv",
        "movieId,title,genres\n1,\"Toy Story,Comedy\n11,Heat,Action\n"
        "14,\"X\"y,Comedy\n");
    MtrDataOptions opt = {.skip_bad = 1};
    put(dir, "ratings.csv", "userId,movieId,rating,timestamp\n1,11,4.0,964982703\n");
    ds = open_ok(dir, &opt);
    assert_int_equal(ds->skipped, 2);
    assert_int_equal(ds->items.n_rows, 1);
    assert_int_equal(ds->items.lines[0], 3);
    mtr_data_free(ds);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

/* ---- generic CSV/TSV */

/* users.csv joins by the first of its columns the interactions have; a user
 * it lacks is counted and reads as empty; a given split gets the columns too. */
static void test_generic_users(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    put(dir, "interactions.csv", "uid,item,rating\nu1,a,4\nu2,b,3\nu9,a,1\nu1,b,5\n");
    put(dir, "users.csv", "uid,age,langs\nu1,30,en|fr\nu2,41,\n");
    MtrDataset *ds = open_ok(dir, NULL);
    check_table(&ds->ratings);
    assert_int_equal(ds->users.n_rows, 2);
    assert_int_equal(ds->side_missing, 1);
    assert_string_equal(cell(&ds->ratings, "age", 0), "30");
    assert_string_equal(cell(&ds->ratings, "langs", 3), "en|fr");
    assert_string_equal(cell(&ds->ratings, "age", 2), "");
    char *file = tu_path(dir, "interactions.csv");
    MtrTable t;
    MtrError err = {0};
    assert_int_equal(mtr_data_read_interactions(file, ds, NULL, &t, NULL, &err), MTR_OK);
    assert_string_equal(cell(&t, "age", 1), "41");
    mtr_table_free(&t);
    free(file);
    mtr_data_free(ds);
    put(dir, "users.csv", "who,age\nu1,30\n");
    file = tu_path(dir, "users.csv");
    char *inter = tu_path(dir, "interactions.csv");
    expect_error(dir, NULL, MTR_E_DATA, "%s: no column shared with %s to join it by", file, inter);
    free(inter);
    free(file);
    tu_rmtree(dir);
    free(dir);
}

static void test_generic_with_items(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    put(dir, "interactions.csv",
        "user,item,score,note\r\n"
        "u1,i1,1.5,\"multi\r\nline, \"\"quoted\"\"\"\r\n"
        "u2,i2,2,\r\n"
        "u1,i2,-3e-1,plain\r\n");
    put(dir, "items.csv", "item,title\ni1,One\ni2,\"Two, Too\"\ni3,Three\ni3,Three\n");
    static const char *const item_cols[] = {"item", "title", NULL};
    MtrDataOptions opt = {.item_columns = item_cols};
    MtrDataset *ds = open_ok(dir, &opt);
    assert_string_equal(ds->format, "csv");
    assert_int_equal(ds->ratings.n_rows, 3);
    /* title, which the interactions lack, is joined from the items by "item" */
    assert_int_equal(ds->ratings.n_columns, 5);
    assert_string_equal(ds->ratings.columns[2].name, "score");
    assert_string_equal(ds->ratings.columns[4].name, "title");
    assert_string_equal(cell(&ds->ratings, "title", 0), "One");
    assert_string_equal(cell(&ds->ratings, "title", 1), "Two, Too");
    assert_string_equal(cell(&ds->ratings, "title", 2), "Two, Too");
    assert_string_equal(cell(&ds->ratings, "note", 0), "multi\r\nline, \"quoted\"");
    assert_string_equal(cell(&ds->ratings, "note", 1), "");
    assert_int_equal(ds->ratings.lines[1], 4);
    assert_int_equal(ds->ratings.lines[2], 5);
    assert_int_equal(ds->items.n_rows, 4);
    assert_string_equal(cell(&ds->items, "title", 1), "Two, Too");
    float x[3];
    MtrError err = {0};
    assert_int_equal(mtr_table_numbers(&ds->ratings, "score", x, &err), MTR_OK);
    assert_true(x[0] == 1.5f && x[1] == 2.0f && x[2] == -0.3f);
    assert_int_equal(mtr_table_numbers(&ds->ratings, "note", x, &err), MTR_E_DATA);
    char want[512];
    snprintf(want, sizeof want,
             "%s/interactions.csv:2: note is not a number (found 'multi\\r\\nline, \"quoted\"')",
             dir);
    assert_string_equal(err.msg, want);

    /* a split gets the same join; an item the items file lacks is malformed */
    char *split = tu_path(dir, "test.csv");
    put(dir, "test.csv", "user,item,score,note\nu9,i3,1,\nu9,i7,1,\nu8,i1,2,\n");
    MtrTable t;
    assert_int_equal(mtr_data_read_interactions(split, ds, &opt, &t, NULL, &err), MTR_E_DATA);
    snprintf(want, sizeof want, "%s:3: item 'i7' is not in %s/items.csv (found 'u9,i7,1,')", split,
             dir);
    assert_string_equal(err.msg, want);
    MtrDataOptions skip = {.skip_bad = 1, .item_columns = item_cols};
    uint64_t skipped = 0;
    assert_int_equal(mtr_data_read_interactions(split, ds, &skip, &t, &skipped, &err), MTR_OK);
    assert_int_equal(skipped, 1);
    assert_int_equal(t.n_rows, 2);
    assert_string_equal(cell(&t, "title", 0), "Three");
    assert_string_equal(cell(&t, "title", 1), "One");
    mtr_table_free(&t);
    free(split);
    mtr_data_free(ds);

    /* without a shared column there is nothing to join by */
    put(dir, "items.csv", "id,title\ni1,One\n");
    static const char *const title_only[] = {"title", NULL};
    MtrDataOptions no_key = {.item_columns = title_only};
    expect_error(dir, &no_key, MTR_E_DATA,
                 "%s/interactions.csv: no column 'title', and no column shared with "
                 "%s/items.csv to join it by",
                 dir, dir);
    put(dir, "items.csv", "item,title\ni1,One\ni2,\"Two, Too\"\ni3,Three\ni3,Three\n");
    ds = open_ok(dir, NULL); /* no item columns asked for: nothing joined */
    assert_int_equal(ds->ratings.n_columns, 4);
    mtr_data_free(ds);

    /* the items file must have the item columns */
    static const char *const bad_cols[] = {"item", "genre", NULL};
    MtrDataOptions bad = {.item_columns = bad_cols};
    expect_error(dir, &bad, MTR_E_DATA, "%s/items.csv: no column 'genre' (an item column)", dir);
    tu_rmtree(dir);
    free(dir);
}

static void test_generic_without_items(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    put(dir, "clicks.tsv",
        "user\tmovie\tgenre\tclicked\n"
        "a\tm1\tg1\t1\n"
        "b\tm2\tg1\t0\n"
        "c\tm1\tg1\t1\n"
        "a\tm1\tg2\t1\n"
        "b\tm2\tg1\t1\n");
    put(dir, "notes.txt", "not data\n");
    static const char *const cols[] = {"movie", "genre", NULL};
    MtrDataOptions opt = {.item_columns = cols};
    MtrDataset *ds = open_ok(dir, &opt);
    assert_string_equal(ds->format, "tsv");
    assert_int_equal(ds->ratings.n_rows, 5);
    assert_int_equal(ds->items.n_rows, 3);
    assert_int_equal(ds->items.n_columns, 2);
    assert_string_equal(cell(&ds->items, "movie", 0), "m1");
    assert_string_equal(cell(&ds->items, "genre", 0), "g1");
    assert_string_equal(cell(&ds->items, "movie", 1), "m2");
    assert_string_equal(cell(&ds->items, "movie", 2), "m1");
    assert_string_equal(cell(&ds->items, "genre", 2), "g2");
    assert_int_equal(ds->items.lines[2], 5);

    /* a split read in the same format */
    MtrTable t;
    MtrError err = {0};
    char *p = tu_path(dir, "clicks.tsv");
    assert_int_equal(mtr_data_read_interactions(p, ds, NULL, &t, NULL, &err), MTR_OK);
    assert_int_equal(t.n_rows, 5);
    mtr_table_free(&t);
    mtr_data_free(ds);

    /* the dir argument may be the file itself */
    ds = open_ok(p, &opt);
    assert_int_equal(ds->items.n_rows, 3);
    mtr_data_free(ds);
    /* no item columns: no items */
    ds = open_ok(p, NULL);
    assert_int_equal(ds->items.n_rows, 0);
    mtr_data_free(ds);
    static const char *const missing[] = {"movie", "year", NULL};
    MtrDataOptions bad = {.item_columns = missing};
    expect_error(p, &bad, MTR_E_DATA, "%s: no column 'year' (an item column)", p);

    /* a second candidate file makes the folder ambiguous; interactions.* wins */
    put(dir, "b.csv", "x\n1\n");
    expect_error(dir, &opt, MTR_E_DATA,
                 "%s: several data files (b.csv, clicks.tsv): name the interactions file "
                 "interactions.csv or interactions.tsv",
                 dir);
    put(dir, "interactions.csv", "user,movie,genre\nz,m9,g9\n");
    ds = open_ok(dir, &opt);
    assert_string_equal(ds->format, "csv");
    assert_int_equal(ds->ratings.n_rows, 1);
    mtr_data_free(ds);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

static void test_generic_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"a,b\n1,2\n3\n", "3: expected 2 fields, got 1 (found '3')"},
        {"a,b\n1,2\n3,4,5\n", "3: expected 2 fields, got 3 (found '3,4,5')"},
        {"a,b\n1,\"2\n", "2: a quoted field is not closed (found '1,\"2')"},
        {"a,b\n\"1\"x,2\n", "2: text after a closing quote (found '\"1\"x,2')"},
        {"a,a\n1,2\n", "1: a column name appears twice (found 'a')"},
        {"a,,c\n1,2,3\n", "1: column 2 has no name in the header (found 'a,,c')"},
        {"a,b\n", " no records after the header"},
        {"\n\n", " no header row"},
        {"a,\"b\n", "1: a quoted field is not closed (found 'a,\"b')"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir = tu_tmpdir();
        put(dir, "interactions.csv", cases[i].text);
        expect_error(dir, NULL, MTR_E_DATA, "%s/interactions.csv:%s", dir, cases[i].msg);
        tu_rmtree(dir);
        free(dir);
    }
    /* a long line is read whole */
    size_t n = 200000;
    char *big = malloc(n + 64);
    strcpy(big, "a,b\nx,");
    size_t k = strlen(big);
    memset(big + k, 'y', n);
    strcpy(big + k + n, "\n");
    char *dir = tu_tmpdir();
    put(dir, "data.csv", big);
    MtrDataset *ds = open_ok(dir, NULL);
    assert_int_equal(strlen(cell(&ds->ratings, "b", 0)), n);
    mtr_data_free(ds);
    tu_rmtree(dir);
    free(dir);
    free(big);
}

static void test_missing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *none = tu_path(dir, "nowhere");
    expect_error(none, NULL, MTR_E_DATA, "%s: no such data folder: No such file or directory",
                 none);
    expect_error(dir, NULL, MTR_E_DATA,
                 "%s: no recognised data files (expected u.data and u.item, ratings.dat and "
                 "movies.dat, ratings.csv and movies.csv, or one .csv or .tsv file)",
                 dir);
    put(dir, "u.data", "1\t1\t1\t1\n");
    expect_error(dir, NULL, MTR_E_DATA, "%s/u.item: cannot open: No such file or directory", dir);
    put(dir, "u.item", "");
    expect_error(dir, NULL, MTR_E_DATA, "%s/u.item: the file is empty", dir);
    MtrDataset *ds = (MtrDataset *)1;
    MtrError err = {0};
    assert_int_equal(mtr_data_open("", NULL, &ds, &err), MTR_E_ARG);
    assert_null(ds);
    mtr_data_free(NULL);
    free(none);
    tu_rmtree(dir);
    free(dir);
}

/* ---- numbers */

static void test_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = {"",    " ",         "abc",   "4x",   "nan",
                                      "inf", "-Infinity", "1e999", "1e39", "0x"};
    char *dir = tu_tmpdir();
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[128];
        snprintf(text, sizeof text, "v,w\n1,a\n 2.5 ,b\n%s,c\n", bad[i]);
        put(dir, "x.csv", text);
        MtrDataset *ds = open_ok(dir, NULL);
        float out[3];
        MtrError err = {0};
        assert_int_equal(mtr_table_numbers(&ds->ratings, "v", out, &err), MTR_E_DATA);
        char want[512];
        snprintf(want, sizeof want, "%s/x.csv:4: v is not a number (found '%s')", dir, bad[i]);
        assert_string_equal(err.msg, want);
        mtr_data_free(ds);
    }
    put(dir, "x.csv", "v\n1\n-2\n1e3\n0x10\n");
    MtrDataset *ds = open_ok(dir, NULL);
    float out[4];
    MtrError err = {0};
    assert_int_equal(mtr_table_numbers(&ds->ratings, "v", out, &err), MTR_OK);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == 1000.0f && out[3] == 16.0f);
    mtr_data_free(ds);
    tu_rmtree(dir);
    free(dir);
}

/* ---- vocabularies */

static void test_vocab(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    put(dir, "interactions.csv", "user,item\nb,x\na,y\nb,z\n\xc3\xa9,x\nB,y\n");
    put(dir, "items.csv", "item\nw\nx\ny\n");
    MtrDataset *ds = open_ok(dir, NULL);
    MtrVocab v;
    MtrError err = {0};
    assert_int_equal(mtr_vocab_build(ds, "user", 0, &v, &err), MTR_OK);
    static const char *const users[] = {"B", "a", "b", "\xc3\xa9"};
    assert_int_equal(v.n, 4);
    assert_int_equal(v.column, -1);
    for (uint32_t i = 0; i < 4; i++) assert_string_equal(v.words[i], users[i]);
    MtrVocabIndex *ix;
    assert_int_equal(mtr_vocab_index_new(&v, &ix, &err), MTR_OK);
    for (uint32_t i = 0; i < 4; i++) assert_int_equal(mtr_vocab_id(ix, users[i]), i + 1);
    assert_int_equal(mtr_vocab_id(ix, ""), 0);
    assert_int_equal(mtr_vocab_id(ix, "c"), 0);
    assert_int_equal(mtr_vocab_id(ix, "bb"), 0);
    int32_t ids[5];
    uint64_t oov = 99;
    assert_int_equal(mtr_vocab_encode(ix, &ds->ratings, "user", ids, &oov, &err), MTR_OK);
    assert_int_equal(oov, 0);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[3], 4);
    assert_int_equal(ids[4], 1);
    assert_int_equal(mtr_vocab_encode(ix, &ds->ratings, "item", ids, &oov, &err), MTR_OK);
    assert_int_equal(oov, 5);
    assert_int_equal(mtr_vocab_encode(ix, &ds->ratings, "none", ids, NULL, &err), MTR_E_ARG);
    mtr_vocab_index_free(ix);
    mtr_vocab_clear(&v);
    assert_int_equal(v.n, 0);

    /* items: interactions alone, then with the items file's values */
    assert_int_equal(mtr_vocab_build(ds, "item", 0, &v, &err), MTR_OK);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.words[0], "x");
    mtr_vocab_clear(&v);
    assert_int_equal(mtr_vocab_build(ds, "item", 1, &v, &err), MTR_OK);
    assert_int_equal(v.n, 4);
    assert_string_equal(v.words[0], "w");
    assert_string_equal(v.words[3], "z");
    assert_int_equal(mtr_vocab_index_new(&v, &ix, &err), MTR_OK);
    assert_int_equal(mtr_vocab_encode(ix, &ds->items, "item", ids, &oov, &err), MTR_OK);
    assert_int_equal(oov, 0);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[2], 3);
    mtr_vocab_index_free(ix);
    mtr_vocab_clear(&v);
    assert_int_equal(mtr_vocab_build(ds, "nope", 1, &v, &err), MTR_E_ARG);

    /* a vocabulary with a repeated word (a damaged file) is refused */
    char *words[] = {"a", "b", "b"};
    MtrVocab dup = {0, 3, words};
    assert_int_equal(mtr_vocab_index_new(&dup, &ix, &err), MTR_E_DATA);
    assert_null(ix);
    assert_string_equal(err.msg, "vocabulary word 'b' appears twice");
    mtr_data_free(ds);
    tu_rmtree(dir);
    free(dir);
}

/* A large vocabulary: every word found at its id, misses miss (hash growth). */
static void test_vocab_many(void **state)
{
    (void)state;
    enum { N = 50000 };
    char **words = malloc(N * sizeof *words);
    for (int i = 0; i < N; i++) {
        words[i] = malloc(16);
        snprintf(words[i], 16, "w%06d", i);
    }
    MtrVocab v = {0, N, words};
    MtrVocabIndex *ix;
    MtrError err = {0};
    assert_int_equal(mtr_vocab_index_new(&v, &ix, &err), MTR_OK);
    for (int i = 0; i < N; i++) assert_int_equal(mtr_vocab_id(ix, words[i]), i + 1);
    char miss[16];
    for (int i = N; i < N + 1000; i++) {
        snprintf(miss, sizeof miss, "w%06d", i);
        assert_int_equal(mtr_vocab_id(ix, miss), 0);
    }
    mtr_vocab_index_free(ix);
    mtr_vocab_clear(&v);
}

/* ---- fuzz */

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Returns a mutated copy of text (malloc'd, length in *len). */
static char *mutate(const char *text, size_t *len, uint64_t *seed)
{
    static const char pieces[] = "\t|,\"\n\r:\xe9\xc3\x80 0x";
    size_t n = strlen(text), cap = n + 64;
    char *b = malloc(cap);
    memcpy(b, text, n);
    int edits = 1 + (int)(next_rand(seed) % 6);
    for (int e = 0; e < edits; e++) {
        size_t at = n ? next_rand(seed) % n : 0;
        switch (next_rand(seed) % 4) {
        case 0: /* overwrite a byte */
            if (n) b[at] = pieces[next_rand(seed) % (sizeof pieces - 1)];
            break;
        case 1: /* insert a byte */
            if (n + 1 < cap) {
                memmove(b + at + 1, b + at, n - at);
                b[at] = (next_rand(seed) % 8 == 0) ? (char)(next_rand(seed) % 256)
                                                   : pieces[next_rand(seed) % (sizeof pieces - 1)];
                n++;
            }
            break;
        case 2: { /* delete a run */
            size_t k = next_rand(seed) % 8;
            if (at + k > n) k = n - at;
            memmove(b + at, b + at + k, n - at - k);
            n -= k;
            break;
        }
        default: /* truncate */
            if (next_rand(seed) % 4 == 0) n = at;
        }
    }
    *len = n;
    return b;
}

/* Opens dir; returns 1 when it loaded (and checks it), 0 when it gave an error. */
static int fuzz_one(const char *dir, const MtrDataOptions *opt)
{
    MtrDataset *ds = NULL;
    MtrError err = {0};
    MtrStatus st = mtr_data_open(dir, opt, &ds, &err);
    if (st == MTR_OK) {
        check_table(&ds->ratings);
        check_table(&ds->items);
        MtrVocab v;
        const char *col = ds->ratings.n_columns ? ds->ratings.columns[0].name : "x";
        if (mtr_vocab_build(ds, col, 1, &v, &err) == MTR_OK) {
            MtrVocabIndex *ix;
            assert_int_equal(mtr_vocab_index_new(&v, &ix, &err), MTR_OK);
            int32_t *ids = malloc((ds->ratings.n_rows + 1) * sizeof *ids);
            uint64_t oov;
            assert_int_equal(mtr_vocab_encode(ix, &ds->ratings, col, ids, &oov, &err), MTR_OK);
            assert_int_equal(oov, 0);
            free(ids);
            mtr_vocab_index_free(ix);
            mtr_vocab_clear(&v);
        }
        float *x = malloc((ds->ratings.n_rows + 1) * sizeof *x);
        if (ds->ratings.n_columns) mtr_table_numbers(&ds->ratings, col, x, &err);
        free(x);
        mtr_data_free(ds);
        return 1;
    }
    assert_null(ds);
    assert_true(strlen(err.msg) > 0);
    return 0;
}

static void test_fuzz(void **state)
{
    (void)state;
    uint64_t seed = 42;
    char *dir = tu_tmpdir();
    static const char csv[] = "user,item,\"title\"\n"
                              "1,a,\"x, \"\"y\"\"\"\r\n"
                              "2,b,plain\n"
                              "3,a,\"multi\nline\"\n";
    int loaded[3] = {0}; /* per family: some mutants load, some do not */
    for (int it = 0; it < 400; it++) {
        size_t n;
        char *d = mutate(U_DATA, &n, &seed);
        char *p = tu_path(dir, "u.data");
        tu_write_file(p, d, n);
        free(p);
        free(d);
        d = mutate(U_ITEM, &n, &seed);
        p = tu_path(dir, "u.item");
        tu_write_file(p, d, n);
        free(p);
        free(d);
        MtrDataOptions opt = {.skip_bad = it % 2};
        loaded[0] += fuzz_one(dir, &opt);
    }
    char *p = tu_path(dir, "u.data");
    remove(p);
    free(p);
    p = tu_path(dir, "u.item");
    remove(p);
    free(p);
    static const char *const item_cols[] = {"item", "name", NULL};
    put(dir, "items.csv", "item,name\na,A\nb,\"B, b\"\n"); /* "name" is joined by "item" */
    for (int it = 0; it < 400; it++) {
        size_t n;
        char *d = mutate(csv, &n, &seed);
        char *f = tu_path(dir, "interactions.csv");
        tu_write_file(f, d, n);
        free(f);
        free(d);
        MtrDataOptions opt = {.skip_bad = it % 2, .item_columns = item_cols};
        loaded[1] += fuzz_one(dir, &opt);
    }
    p = tu_path(dir, "interactions.csv");
    remove(p);
    free(p);
    p = tu_path(dir, "items.csv");
    remove(p);
    free(p);
    static const char movies[] = "1::Toy Story (1995)::Comedy\n2::Caf\xe9 (1993)::Drama\n";
    static const char ratings[] = "1::2::5::978300760\r\n2::1::3::978302109\n";
    for (int it = 0; it < 200; it++) {
        size_t n;
        char *d = mutate(movies, &n, &seed);
        char *f = tu_path(dir, "movies.dat");
        tu_write_file(f, d, n);
        free(f);
        free(d);
        d = mutate(ratings, &n, &seed);
        f = tu_path(dir, "ratings.dat");
        tu_write_file(f, d, n);
        free(f);
        free(d);
        MtrDataOptions opt = {.skip_bad = it % 2};
        loaded[2] += fuzz_one(dir, &opt);
    }
    print_message("fuzz: %d/400 100K, %d/400 CSV, %d/200 1M mutants loaded\n", loaded[0], loaded[1],
                  loaded[2]);
    assert_true(loaded[0] > 0 && loaded[0] < 400);
    assert_true(loaded[1] > 0 && loaded[1] < 400);
    assert_true(loaded[2] > 0 && loaded[2] < 200);
    tu_rmtree(dir);
    free(dir);
}

/* ---- the real MovieLens 100K */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_real_100k(void **state)
{
    (void)state;
    const char *dir = tu_data_dir();
    if (!dir) skip();
    double t0 = now();
    MtrDataset *ds = open_ok(dir, NULL);
    double t1 = now();
    print_message("ml-100k loaded in %.4f s\n", t1 - t0);
    assert_string_equal(ds->format, "movielens-100k");
    assert_int_equal(ds->ratings.n_rows, 100000);
    assert_int_equal(ds->items.n_rows, 1682);
    assert_int_equal(ds->skipped, 0);
    assert_int_equal(mtr_table_column(&ds->ratings, "user_id")->n_values, 943);
    assert_int_equal(mtr_table_column(&ds->ratings, "movie_id")->n_values, 1682);
    assert_int_equal(mtr_table_column(&ds->items, "movie_title")->n_values, 1664);
    assert_string_equal(cell(&ds->items, "movie_id", 542), "543");
    assert_string_equal(cell(&ds->items, "movie_title", 542), "Mis\xc3\xa9rables, Les (1995)");
    /* the side columns: 943 users, 19 genres, no key missing */
    assert_int_equal(ds->users.n_rows, 943);
    assert_int_equal(ds->side_missing, 0);
    assert_int_equal(mtr_table_column(&ds->ratings, "user_gender")->n_values, 2);
    assert_int_equal(mtr_table_column(&ds->ratings, "user_occupation_text")->n_values, 21);
    assert_int_equal(mtr_table_column(&ds->ratings, "bucketized_user_age")->n_values, 7);
    assert_string_equal(cell(&ds->items, "movie_genres", 0), "Animation|Children's|Comedy");
    float *r = malloc(100000 * sizeof *r);
    MtrError err = {0};
    assert_int_equal(mtr_table_numbers(&ds->ratings, "user_rating", r, &err), MTR_OK);
    int counts[6] = {0};
    for (int i = 0; i < 100000; i++) {
        assert_true(r[i] >= 1 && r[i] <= 5 && r[i] == (float)(int)r[i]);
        counts[(int)r[i]]++;
    }
    free(r);
    assert_int_equal(counts[1], 6110);
    assert_int_equal(counts[2], 11370);
    assert_int_equal(counts[3], 27145);
    assert_int_equal(counts[4], 34174);
    assert_int_equal(counts[5], 21201);

    MtrVocab v;
    assert_int_equal(mtr_vocab_build(ds, "movie_title", 1, &v, &err), MTR_OK);
    assert_int_equal(v.n, 1664);
    for (uint32_t i = 1; i < v.n; i++) assert_true(strcmp(v.words[i - 1], v.words[i]) < 0);
    MtrVocabIndex *ix;
    assert_int_equal(mtr_vocab_index_new(&v, &ix, &err), MTR_OK);
    int32_t *ids = malloc(100000 * sizeof *ids);
    uint64_t oov = 1;
    assert_int_equal(mtr_vocab_encode(ix, &ds->ratings, "movie_title", ids, &oov, &err), MTR_OK);
    assert_int_equal(oov, 0);
    free(ids);
    mtr_vocab_index_free(ix);
    mtr_vocab_clear(&v);

    char *split = tu_path(dir, "u1.base");
    MtrTable t;
    uint64_t skipped = 1;
    t0 = now();
    assert_int_equal(mtr_data_read_interactions(split, ds, NULL, &t, &skipped, &err), MTR_OK);
    print_message("u1.base read in %.4f s\n", now() - t0);
    assert_int_equal(t.n_rows, 80000);
    assert_int_equal(skipped, 0);
    check_table(&t);
    mtr_table_free(&t);
    free(split);
    mtr_data_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_100k_small),        cmocka_unit_test(test_100k_utf8_item),
        cmocka_unit_test(test_100k_malformed),    cmocka_unit_test(test_100k_skip_bad),
        cmocka_unit_test(test_100k_side_columns), cmocka_unit_test(test_1m_small),
        cmocka_unit_test(test_latest_small),      cmocka_unit_test(test_generic_with_items),
        cmocka_unit_test(test_generic_users),     cmocka_unit_test(test_generic_without_items),
        cmocka_unit_test(test_generic_malformed), cmocka_unit_test(test_missing),
        cmocka_unit_test(test_numbers),           cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_vocab_many),        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_real_100k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
