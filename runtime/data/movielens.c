/* Data loading, MovieLens: reads the 100K (u.data + u.item), 1M (ratings.dat +
 * movies.dat) and "latest" (ratings.csv + movies.csv) folders into tables with
 * TFDS's column names. Items keep every row of the movie file, in file order;
 * ratings get movie_title joined by movie_id, and an unknown movie id, an empty
 * user id or a rating that is not a number is a malformed record. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { R_USER, R_MOVIE, R_RATING, R_TIME, R_N };
enum { I_ID, I_TITLE, I_N };

/* How one MovieLens file is laid out: its separator, quoting, and where the
 * fields it needs are, by position or (with a header) by name. */
typedef struct {
    const char *sep;
    int quotes;
    int header;
    uint32_t n_fields;      /* without a header */
    int pos[R_N];           /* without a header: field positions */
    const char *names[R_N]; /* with a header: column names */
    int n_need;
} Layout;

static const Layout RATINGS_100K = {"\t", 0, 0, 4, {0, 1, 2, 3}, {0}, R_N};
static const Layout ITEMS_100K = {"|", 0, 0, 24, {0, 1}, {0}, I_N};
static const Layout RATINGS_1M = {"::", 0, 0, 4, {0, 1, 2, 3}, {0}, R_N};
static const Layout ITEMS_1M = {"::", 0, 0, 3, {0, 1}, {0}, I_N};
static const Layout RATINGS_LATEST = {
    ",", 1, 1, 0, {0}, {"userId", "movieId", "rating", "timestamp"}, R_N};
static const Layout ITEMS_LATEST = {",", 1, 1, 0, {0}, {"movieId", "title"}, I_N};

/* A file being read: its text, the reader, and the resolved field positions. */
typedef struct {
    const char *path;
    char *buf;
    CsvReader r;
    uint32_t n_fields;
    int pos[R_N];
} Source;

static void source_close(Source *s)
{
    csv_free(&s->r);
    free(s->buf);
}

/* Loads path and, for a header layout, finds the needed columns in the header. */
static MtrStatus source_open(Source *s, const char *path, const Layout *lay, MtrError *err)
{
    size_t len;
    memset(s, 0, sizeof *s);
    s->path = path;
    MtrStatus st = text_load(path, &s->buf, &len, err);
    if (st) return st;
    csv_init(&s->r, s->buf, len, lay->sep, lay->quotes);
    if (!lay->header) {
        s->n_fields = lay->n_fields;
        memcpy(s->pos, lay->pos, sizeof s->pos);
        return MTR_OK;
    }
    int rc = csv_next(&s->r);
    if (rc == -2) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", path);
    if (rc == 0) return mtr_fail(err, MTR_E_DATA, "%s: no header row", path);
    if (rc == -1)
        return dataset_bad_record(err, path, s->r.rec_line, s->r.error, s->r.buf + s->r.rec_start,
                                  s->r.rec_end - s->r.rec_start);
    s->n_fields = s->r.n_fields;
    for (int k = 0; k < lay->n_need; k++) {
        s->pos[k] = -1;
        for (uint32_t f = 0; f < s->r.n_fields && s->pos[k] < 0; f++)
            if (strcmp(s->r.fields[f], lay->names[k]) == 0) s->pos[k] = (int)f;
        if (s->pos[k] < 0) {
            char what[96];
            snprintf(what, sizeof what, "the header has no column '%s'", lay->names[k]);
            return dataset_bad_record(err, path, s->r.rec_line, what, s->r.buf + s->r.rec_start,
                                      s->r.rec_end - s->r.rec_start);
        }
    }
    return MTR_OK;
}

/* Reads the next well-formed-looking record: 1, 0 at the end, or an error
 * status (negative) with *st set. Records with a wrong field count or bad
 * quoting are skipped under skip_bad, else reported. */
static int source_next(Source *s, int skip_bad, uint64_t *skipped, MtrStatus *st, MtrError *err)
{
    for (;;) {
        int rc = csv_next(&s->r);
        if (rc == 0) return 0;
        if (rc == -2) {
            *st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", s->path);
            return -1;
        }
        if (rc == 1 && s->r.n_fields == s->n_fields) return 1;
        char what[96];
        if (rc == -1)
            snprintf(what, sizeof what, "%s", s->r.error);
        else
            snprintf(what, sizeof what, "expected %u fields, got %u", s->n_fields, s->r.n_fields);
        if (!skip_bad) {
            *st = dataset_bad_record(err, s->path, s->r.rec_line, what, s->r.buf + s->r.rec_start,
                                     s->r.rec_end - s->r.rec_start);
            return -1;
        }
        (*skipped)++;
    }
}

/* Reports (or, under skip_bad, counts) a record whose field `f` is wrong. */
static MtrStatus bad_field(Source *s, int skip_bad, uint64_t *skipped, const char *what, int f,
                           MtrError *err)
{
    if (skip_bad) {
        (*skipped)++;
        return MTR_OK;
    }
    if (f < 0)
        return dataset_bad_record(err, s->path, s->r.rec_line, what, s->r.buf + s->r.rec_start,
                                  s->r.rec_end - s->r.rec_start);
    return dataset_bad_record(err, s->path, s->r.rec_line, what, s->r.fields[f], s->r.lens[f]);
}

/* Reads a movie file: every row, in order; an empty or repeated id is malformed. */
static MtrStatus read_items(const char *path, const Layout *lay, int skip_bad, MtrTable *out,
                            uint64_t *skipped, MtrError *err)
{
    static const char *const names[I_N] = {"movie_id", "movie_title"};
    Source s;
    TableBuilder b;
    MtrStatus st = source_open(&s, path, lay, err);
    if (st) {
        source_close(&s);
        return st;
    }
    if ((st = table_begin(&b, path, I_N, names, err))) {
        source_close(&s);
        return st;
    }
    int rc;
    while ((rc = source_next(&s, skip_bad, skipped, &st, err)) == 1) {
        int fid = s.pos[I_ID], ftitle = s.pos[I_TITLE];
        const char *id = s.r.fields[fid];
        size_t id_len = s.r.lens[fid];
        if (id_len == 0) {
            if ((st = bad_field(&s, skip_bad, skipped, "empty movie id", -1, err))) break;
            continue;
        }
        if (table_find(&b, I_ID, id, id_len) != HASH_NONE) {
            if ((st = bad_field(&s, skip_bad, skipped, "duplicate movie id", fid, err))) break;
            continue;
        }
        char *vals[I_N] = {s.r.fields[fid], s.r.fields[ftitle]};
        size_t lens[I_N] = {id_len, s.r.lens[ftitle]};
        if ((st = table_push(&b, vals, lens, s.r.rec_line, err))) break;
    }
    if (!st && b.t.n_rows == 0) st = mtr_fail(err, MTR_E_DATA, "%s: no movies", path);
    if (st)
        table_abort(&b);
    else
        table_finish(&b, out);
    source_close(&s);
    return st;
}

/* Reads a ratings file, joining each row's movie_title from items by movie_id. */
static MtrStatus read_ratings(const char *path, const Layout *lay, const MtrTable *items,
                              int skip_bad, MtrTable *out, uint64_t *skipped, MtrError *err)
{
    static const char *const names[] = {"user_id", "movie_id", "movie_title", "user_rating",
                                        "timestamp"};
    enum { C_USER, C_MOVIE, C_TITLE, C_RATING, C_TIME, C_N };
    const MtrDataColumn *iid = mtr_table_column(items, "movie_id");
    const MtrDataColumn *ititle = mtr_table_column(items, "movie_title");
    if (!iid || !ititle)
        return mtr_fail(err, MTR_E_ARG, "%s: the items have no movie_id and movie_title", path);

    /* the items' ids, hashed; and for each item id or title the code it has in
     * the ratings, once it has been seen there */
    StrHash ids = {0};
    Source s;
    TableBuilder b;
    memset(&b, 0, sizeof b);
    memset(&s, 0, sizeof s);
    uint32_t n_items = (uint32_t)items->n_rows;
    uint32_t *row_of_id = malloc((iid->n_values + 1) * sizeof *row_of_id);
    uint32_t *movie_code = malloc((iid->n_values + 1) * sizeof *movie_code);
    uint32_t *title_code = malloc((ititle->n_values + 1) * sizeof *title_code);
    MtrStatus st = MTR_OK;
    if (!row_of_id || !movie_code || !title_code) {
        st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (uint32_t v = 0; v < iid->n_values; v++) row_of_id[v] = movie_code[v] = HASH_NONE;
    for (uint32_t v = 0; v < ititle->n_values; v++) title_code[v] = HASH_NONE;
    for (uint32_t r = 0; r < n_items; r++) {
        uint32_t c = iid->codes[r];
        if (row_of_id[c] != HASH_NONE) continue;
        row_of_id[c] = r;
        const char *v = iid->values[c];
        if ((st = hash_insert(&ids, hash_string(v, strlen(v)), c, err))) goto done;
    }

    if ((st = source_open(&s, path, lay, err))) goto done;
    if ((st = table_begin(&b, path, C_N, names, err))) goto done;
    int rc;
    while ((rc = source_next(&s, skip_bad, skipped, &st, err)) == 1) {
        char **f = s.r.fields;
        size_t *len = s.r.lens;
        int fu = s.pos[R_USER], fm = s.pos[R_MOVIE], fr = s.pos[R_RATING], ft = s.pos[R_TIME];
        float rating;
        if (len[fu] == 0) {
            if ((st = bad_field(&s, skip_bad, skipped, "empty user id", -1, err))) break;
            continue;
        }
        if (!text_parse_number(f[fr], &rating)) {
            if ((st = bad_field(&s, skip_bad, skipped, "rating is not a number", fr, err))) break;
            continue;
        }
        uint32_t id = hash_find(&ids, iid->values, f[fm], hash_string(f[fm], len[fm]));
        if (id == HASH_NONE) {
            if ((st = bad_field(&s, skip_bad, skipped, "unknown movie id", fm, err))) break;
            continue;
        }
        uint32_t codes[C_N];
        uint32_t t = ititle->codes[row_of_id[id]];
        if (movie_code[id] == HASH_NONE &&
            (st = table_intern(&b, C_MOVIE, f[fm], len[fm], &movie_code[id], err)))
            break;
        if (title_code[t] == HASH_NONE) {
            const char *title = ititle->values[t];
            if ((st = table_intern(&b, C_TITLE, title, strlen(title), &title_code[t], err))) break;
        }
        codes[C_MOVIE] = movie_code[id];
        codes[C_TITLE] = title_code[t];
        if ((st = table_intern(&b, C_USER, f[fu], len[fu], &codes[C_USER], err)) ||
            (st = table_intern(&b, C_RATING, f[fr], len[fr], &codes[C_RATING], err)) ||
            (st = table_intern(&b, C_TIME, f[ft], len[ft], &codes[C_TIME], err)) ||
            (st = table_push_codes(&b, codes, s.r.rec_line, err)))
            break;
    }
    if (!st && b.t.n_rows == 0)
        st = mtr_fail(err, MTR_E_DATA, "%s: no ratings%s", path,
                      *skipped ? " (every record was malformed)" : "");
done:
    if (st)
        table_abort(&b);
    else
        table_finish(&b, out);
    source_close(&s);
    hash_free(&ids);
    free(row_of_id);
    free(movie_code);
    free(title_code);
    return st;
}

/* Reads dir/items_name then dir/ratings_name into ds. */
static MtrStatus open_pair(MtrDataset *ds, const MtrDataOptions *opt, const char *format,
                           const char *ratings_name, const Layout *ratings_lay,
                           const char *items_name, const Layout *items_lay, MtrError *err)
{
    ds->format = format;
    char *items = dataset_path(ds->dir, items_name);
    char *ratings = dataset_path(ds->dir, ratings_name);
    MtrStatus st;
    if (!items || !ratings)
        st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    else if (!(st = read_items(items, items_lay, opt->skip_bad, &ds->items, &ds->skipped, err)))
        st = read_ratings(ratings, ratings_lay, &ds->items, opt->skip_bad, &ds->ratings,
                          &ds->skipped, err);
    free(items);
    free(ratings);
    return st;
}

MtrStatus movielens_open_100k(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err)
{
    return open_pair(ds, opt, "movielens-100k", "u.data", &RATINGS_100K, "u.item", &ITEMS_100K,
                     err);
}

MtrStatus movielens_open_1m(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err)
{
    return open_pair(ds, opt, "movielens-1m", "ratings.dat", &RATINGS_1M, "movies.dat", &ITEMS_1M,
                     err);
}

MtrStatus movielens_open_latest(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err)
{
    return open_pair(ds, opt, "movielens-latest", "ratings.csv", &RATINGS_LATEST, "movies.csv",
                     &ITEMS_LATEST, err);
}

MtrStatus movielens_read_ratings(const char *path, const MtrDataset *ds, const MtrDataOptions *opt,
                                 MtrTable *out, uint64_t *skipped, MtrError *err)
{
    const Layout *lay = strcmp(ds->format, "movielens-100k") == 0 ? &RATINGS_100K
                        : strcmp(ds->format, "movielens-1m") == 0 ? &RATINGS_1M
                                                                  : &RATINGS_LATEST;
    return read_ratings(path, lay, &ds->items, opt->skip_bad, out, skipped, err);
}
