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
enum { I_ID, I_TITLE, I_GENRES, I_N };

/* u.item's 19 genre flags, in file order (u.genre). */
static const char *const GENRES_100K[] = {
    "unknown",     "Action", "Adventure", "Animation", "Children's", "Comedy",  "Crime",
    "Documentary", "Drama",  "Fantasy",   "Film-Noir", "Horror",     "Musical", "Mystery",
    "Romance",     "Sci-Fi", "Thriller",  "War",       "Western"};
enum { GENRE_FLAGS_AT = 5, N_GENRES = 19 };

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
/* 100K items: genres are flags (GENRE_FLAGS_AT..), so only id and title are placed. */
static const Layout ITEMS_100K = {"|", 0, 0, 24, {0, 1, -1}, {0}, I_N};
static const Layout RATINGS_1M = {"::", 0, 0, 4, {0, 1, 2, 3}, {0}, R_N};
static const Layout ITEMS_1M = {"::", 0, 0, 3, {0, 1, 2}, {0}, I_N};
static const Layout RATINGS_LATEST = {
    ",", 1, 1, 0, {0}, {"userId", "movieId", "rating", "timestamp"}, R_N};
/* latest items: genres is optional (n_need 2), read when the header has it */
static const Layout ITEMS_LATEST = {",", 1, 1, 0, {0}, {"movieId", "title", "genres"}, I_TITLE + 1};

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
static MtrStatus source_open(Source *s, const char *path, const Layout *lay, const MtrDist *dist,
                             MtrError *err)
{
    size_t len;
    uint32_t first_line;
    memset(s, 0, sizeof *s);
    s->path = path;
    MtrStatus st = text_load_part(path, dist, lay->header, &s->buf, &len, &first_line, err);
    if (st) return st;
    csv_init(&s->r, s->buf, len, lay->sep, lay->quotes);
    if (!lay->header) {
        if (first_line) s->r.line = first_line; /* a rank's part: lines of the whole file */
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
    if (first_line) s->r.line = first_line;
    for (int k = 0; k < R_N; k++) {
        s->pos[k] = -1;
        for (uint32_t f = 0; lay->names[k] && f < s->r.n_fields && s->pos[k] < 0; f++)
            if (strcmp(s->r.fields[f], lay->names[k]) == 0) s->pos[k] = (int)f;
        if (s->pos[k] < 0 && k < lay->n_need) {
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

/* The genres of the current movie record as one `|`-separated list into out:
 * 100K's set flags by name, 1M's and latest's field as written (latest's
 * "(no genres listed)" is the empty list). Returns its length. */
static size_t item_genres(const Source *s, const Layout *lay, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    if (lay == &ITEMS_100K) {
        for (int g = 0; g < N_GENRES; g++) {
            const char *f = s->r.fields[GENRE_FLAGS_AT + g];
            size_t k = strlen(GENRES_100K[g]);
            if (strcmp(f, "1") != 0 || n + k + 2 > cap) continue;
            if (n) out[n++] = '|';
            memcpy(out + n, GENRES_100K[g], k + 1);
            n += k;
        }
        return n;
    }
    int f = s->pos[I_GENRES];
    if (f < 0 || strcmp(s->r.fields[f], "(no genres listed)") == 0) return 0;
    n = s->r.lens[f] < cap - 1 ? s->r.lens[f] : cap - 1;
    memcpy(out, s->r.fields[f], n);
    out[n] = '\0';
    return n;
}

/* Reads a movie file: every row, in order; an empty or repeated id is malformed. */
static MtrStatus read_items(const char *path, const Layout *lay, int skip_bad, MtrTable *out,
                            uint64_t *skipped, MtrError *err)
{
    static const char *const names[I_N] = {"movie_id", "movie_title", "movie_genres"};
    char genres[512];
    Source s;
    TableBuilder b;
    MtrStatus st = source_open(&s, path, lay, NULL, err);
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
        size_t glen = item_genres(&s, lay, genres, sizeof genres);
        char *vals[I_N] = {s.r.fields[fid], s.r.fields[ftitle], genres};
        size_t lens[I_N] = {id_len, s.r.lens[ftitle], glen};
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
                              int skip_bad, const MtrDist *dist, MtrTable *out, uint64_t *skipped,
                              MtrError *err)
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

    if ((st = source_open(&s, path, lay, dist, err))) goto done;
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
    if (!st && b.t.n_rows == 0 && !dist)
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

/* 1M's occupation codes (its README), as the text TFDS gives them. */
static const char *const OCCUPATIONS_1M[] = {"other/not specified",
                                             "academic/educator",
                                             "artist",
                                             "clerical/admin",
                                             "college/grad student",
                                             "customer service",
                                             "doctor/health care",
                                             "executive/managerial",
                                             "farmer",
                                             "homemaker",
                                             "K-12 student",
                                             "lawyer",
                                             "programmer",
                                             "retired",
                                             "sales/marketing",
                                             "scientist",
                                             "self-employed",
                                             "technician/engineer",
                                             "tradesman/craftsman",
                                             "unemployed",
                                             "writer"};

/* TFDS's age buckets: an age goes to the largest bound not above it. */
static const int AGE_BUCKETS[] = {1, 18, 25, 35, 45, 50, 56};

static int age_bucket(float age)
{
    int b = AGE_BUCKETS[0];
    for (size_t i = 0; i < sizeof AGE_BUCKETS / sizeof *AGE_BUCKETS; i++)
        if (age >= (float)AGE_BUCKETS[i]) b = AGE_BUCKETS[i];
    return b;
}

/* Reads a user file: 100K's u.user (id|age|gender|occupation|zip) or 1M's
 * users.dat (id::gender::age bucket::occupation code::zip) into a table with
 * TFDS's column names. */
static MtrStatus read_users(const char *path, int is_1m, int skip_bad, MtrTable *out,
                            uint64_t *skipped, MtrError *err)
{
    static const char *const names[] = {
        "user_id",     "raw_user_age",         "bucketized_user_age",
        "user_gender", "user_occupation_text", "user_zip_code"};
    enum { U_ID, U_AGE, U_BUCKET, U_GENDER, U_OCC, U_ZIP, U_N };
    static const Layout USERS_100K = {"|", 0, 0, 5, {0}, {0}, 0};
    static const Layout USERS_1M = {"::", 0, 0, 5, {0}, {0}, 0};
    Source s;
    TableBuilder b;
    MtrStatus st = source_open(&s, path, is_1m ? &USERS_1M : &USERS_100K, NULL, err);
    if (st) {
        source_close(&s);
        return st;
    }
    /* 1M has no raw age: its column is left out */
    const char *cols[U_N];
    uint32_t n = 0;
    for (int c = 0; c < U_N; c++)
        if (!(is_1m && c == U_AGE)) cols[n++] = names[c];
    if ((st = table_begin(&b, path, n, cols, err))) {
        source_close(&s);
        return st;
    }
    int rc;
    while ((rc = source_next(&s, skip_bad, skipped, &st, err)) == 1) {
        char **f = s.r.fields;
        size_t *len = s.r.lens;
        int fage = is_1m ? 2 : 1, fgender = is_1m ? 1 : 2, focc = 3, fzip = 4;
        float age;
        if (len[0] == 0) {
            if ((st = bad_field(&s, skip_bad, skipped, "empty user id", -1, err))) break;
            continue;
        }
        if (!text_parse_number(f[fage], &age)) {
            if ((st = bad_field(&s, skip_bad, skipped, "age is not a number", fage, err))) break;
            continue;
        }
        const char *occ = f[focc];
        if (is_1m) {
            float code;
            if (!text_parse_number(occ, &code) || code < 0 || code > 20 || code != (int)code) {
                if ((st = bad_field(&s, skip_bad, skipped, "unknown occupation code", focc, err)))
                    break;
                continue;
            }
            occ = OCCUPATIONS_1M[(int)code];
        }
        char bucket[16];
        snprintf(bucket, sizeof bucket, "%d", age_bucket(age));
        char *vals[U_N];
        size_t lens[U_N];
        uint32_t k = 0;
        vals[k] = f[0], lens[k++] = len[0];
        if (!is_1m) vals[k] = f[fage], lens[k++] = len[fage];
        vals[k] = bucket, lens[k++] = strlen(bucket);
        vals[k] = f[fgender], lens[k++] = len[fgender];
        vals[k] = (char *)occ, lens[k++] = strlen(occ);
        vals[k] = f[fzip], lens[k++] = len[fzip];
        if ((st = table_push(&b, vals, lens, s.r.rec_line, err))) break;
    }
    if (st)
        table_abort(&b);
    else
        table_finish(&b, out);
    source_close(&s);
    return st;
}

/* The side columns of a ratings table: the item's (movie_genres) by movie_id,
 * the user's (when the folder has a user file) by user_id. */
static MtrStatus join_sides(MtrTable *ratings, const MtrDataset *ds, uint64_t *missing,
                            MtrError *err)
{
    MtrStatus st = side_join(ratings, &ds->items, "movie_id", NULL, err);
    if (!st && ds->users.n_columns) st = side_join(ratings, &ds->users, "user_id", missing, err);
    return st;
}

/* Reads dir/items_name, dir/users_name when there is one, then
 * dir/ratings_name into ds. */
static MtrStatus open_pair(MtrDataset *ds, const MtrDataOptions *opt, const char *format,
                           const char *ratings_name, const Layout *ratings_lay,
                           const char *items_name, const Layout *items_lay, const char *users_name,
                           MtrError *err)
{
    ds->format = format;
    char *items = dataset_path(ds->dir, items_name);
    char *ratings = dataset_path(ds->dir, ratings_name);
    char *users = users_name ? dataset_path(ds->dir, users_name) : NULL;
    MtrStatus st = MTR_OK;
    uint64_t skipped = 0; /* the ratings' (summed over the ranks' parts) */
    FILE *uf = users ? fopen(users, "rb") : NULL;
    if (uf) fclose(uf);
    if (!items || !ratings || (users_name && !users))
        st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    else if (!(st = read_items(items, items_lay, opt->skip_bad, &ds->items, &ds->skipped, err)) &&
             (!uf || !(st = read_users(users, items_lay == &ITEMS_1M, opt->skip_bad, &ds->users,
                                       &ds->skipped, err))) &&
             !(st = read_ratings(ratings, ratings_lay, &ds->items, opt->skip_bad, opt->dist,
                                 &ds->ratings, &skipped, err)) &&
             !(st = opt->keep_local ? table_keep_local(opt->dist, &ds->ratings, &skipped, err)
                                    : table_gather(opt->dist, &ds->ratings, &skipped, err)))
        st = join_sides(&ds->ratings, ds, &ds->side_missing, err);
    ds->rows_local = !st && opt->keep_local && opt->dist && opt->dist->size > 1;
    ds->skipped += skipped;
    free(items);
    free(ratings);
    free(users);
    return st;
}

MtrStatus movielens_open_100k(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err)
{
    return open_pair(ds, opt, "movielens-100k", "u.data", &RATINGS_100K, "u.item", &ITEMS_100K,
                     "u.user", err);
}

MtrStatus movielens_open_1m(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err)
{
    return open_pair(ds, opt, "movielens-1m", "ratings.dat", &RATINGS_1M, "movies.dat", &ITEMS_1M,
                     "users.dat", err);
}

MtrStatus movielens_open_latest(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err)
{
    return open_pair(ds, opt, "movielens-latest", "ratings.csv", &RATINGS_LATEST, "movies.csv",
                     &ITEMS_LATEST, NULL, err);
}

MtrStatus movielens_read_ratings(const char *path, const MtrDataset *ds, const MtrDataOptions *opt,
                                 MtrTable *out, uint64_t *skipped, MtrError *err)
{
    const Layout *lay = strcmp(ds->format, "movielens-100k") == 0 ? &RATINGS_100K
                        : strcmp(ds->format, "movielens-1m") == 0 ? &RATINGS_1M
                                                                  : &RATINGS_LATEST;
    MtrStatus st = read_ratings(path, lay, &ds->items, opt->skip_bad, NULL, out, skipped, err);
    if (!st && (st = join_sides(out, ds, NULL, err))) mtr_table_free(out);
    return st;
}
