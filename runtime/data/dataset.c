/* Data loading, the entry points: recognises a data folder's format by the
 * files in it (MovieLens 100K, 1M, "latest", or a generic CSV/TSV with a header),
 * reads it into an MtrDataset of dictionary-coded tables, and reads further
 * interactions files (train/test splits). The generic CSV/TSV reader lives
 * here; the MovieLens readers are in movielens.c. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *dataset_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

MtrStatus dataset_bad_record(MtrError *err, const char *path, uint32_t line, const char *what,
                             const char *found, size_t found_len)
{
    char ex[256];
    text_excerpt(found, found_len, ex, sizeof ex);
    return mtr_fail(err, MTR_E_DATA, "%s:%u: %s (found '%s')", path, line, what, ex);
}

static int is_file(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++) {
        char c = s[n - k + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suffix[i]) return 0;
    }
    return 1;
}

/* The separator of a generic file: by its extension, else by its first line
 * (more tabs than commas means TSV), else `fallback`. */
static const char *generic_sep(const char *path, const char *buf, size_t len, const char *fallback)
{
    if (has_suffix(path, ".tsv") || has_suffix(path, ".tab")) return "\t";
    if (has_suffix(path, ".csv")) return ",";
    size_t tabs = 0, commas = 0;
    for (size_t i = 0; i < len && buf[i] != '\n'; i++) {
        tabs += buf[i] == '\t';
        commas += buf[i] == ',';
    }
    if (tabs > commas) return "\t";
    if (commas > tabs) return ",";
    return fallback;
}

/* Item attributes an interactions file lacks, joined from the items table by
 * a key column the two share (the first items column the header has). */
typedef struct {
    const MtrTable *items;
    int key_field;    /* the key's field in the interactions, -1 when no join */
    int key_col;      /* the key's column in items */
    uint32_t n_extra; /* joined columns, appended after the file's own */
    int *extra_col;   /* their columns in items */
    StrHash keys;     /* items' key values -> code */
    uint32_t *row_of; /* key code -> the first items row with it */
} Join;

static void join_free(Join *j)
{
    free(j->extra_col);
    free(j->row_of);
    hash_free(&j->keys);
}

/* Sets up j for a file whose header is fields[0..n); names[] grows by the
 * joined columns. */
static MtrStatus join_begin(Join *j, const MtrTable *items, const char *const *item_cols,
                            char *const *fields, uint32_t n, const char **names, const char *path,
                            MtrError *err)
{
    memset(j, 0, sizeof *j);
    j->key_field = -1;
    uint32_t k = 0;
    while (item_cols && item_cols[k]) k++;
    if (!items || items->n_columns == 0 || k == 0) return MTR_OK;
    j->items = items;
    j->extra_col = calloc(k, sizeof *j->extra_col);
    if (!j->extra_col) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t c = 0; c < k; c++) {
        int have = 0;
        for (uint32_t f = 0; f < n && !have; f++) have = strcmp(fields[f], item_cols[c]) == 0;
        int ic = table_column_index(items, item_cols[c]);
        if (have || ic < 0) continue;
        names[n + j->n_extra] = item_cols[c];
        j->extra_col[j->n_extra++] = ic;
    }
    if (j->n_extra == 0) return MTR_OK;
    for (uint32_t c = 0; c < items->n_columns && j->key_field < 0; c++)
        for (uint32_t f = 0; f < n && j->key_field < 0; f++)
            if (strcmp(fields[f], items->columns[c].name) == 0) {
                j->key_field = (int)f;
                j->key_col = (int)c;
            }
    if (j->key_field < 0)
        return mtr_fail(err, MTR_E_DATA,
                        "%s: no column '%s', and no column shared with %s to join it by", path,
                        names[n], items->path);
    const MtrDataColumn *key = &items->columns[j->key_col];
    j->row_of = malloc((key->n_values ? key->n_values : 1) * sizeof *j->row_of);
    if (!j->row_of) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t v = 0; v < key->n_values; v++) j->row_of[v] = HASH_NONE;
    for (uint64_t r = 0; r < items->n_rows; r++) {
        uint32_t code = key->codes[r];
        if (j->row_of[code] != HASH_NONE) continue;
        j->row_of[code] = (uint32_t)r;
        const char *v = key->values[code];
        MtrStatus st = hash_insert(&j->keys, hash_string(v, strlen(v)), code, err);
        if (st) return st;
    }
    return MTR_OK;
}

/* Reads a generic CSV/TSV file with a header row into *out; its columns keep
 * the header's names. Item columns (item_cols) the file lacks are joined from
 * items by a shared key column, when items is given. Malformed records (and
 * keys items does not have) fail, or are counted in *skipped under skip_bad.
 * *sep_out (may be NULL) gets the separator used. */
static MtrStatus read_generic(const char *path, const char *fallback_sep, int skip_bad,
                              const MtrTable *items, const char *const *item_cols,
                              const MtrDist *dist, MtrTable *out, uint64_t *skipped,
                              const char **sep_out, MtrError *err)
{
    char *buf;
    size_t len;
    uint32_t first_line;
    MtrStatus st = text_load_part(path, dist, 1, &buf, &len, &first_line, err);
    if (st) return st;
    const char *sep = generic_sep(path, buf, len, fallback_sep);
    if (sep_out) *sep_out = sep;
    CsvReader r;
    TableBuilder b;
    Join j;
    const char **names = NULL;
    char **vals = NULL;
    size_t *lens = NULL;
    memset(&b, 0, sizeof b);
    memset(&j, 0, sizeof j);
    char ex[256];
    csv_init(&r, buf, len, sep, 1);
    int rc = csv_next(&r);
    if (rc == 0) {
        st = mtr_fail(err, MTR_E_DATA, "%s: no header row", path);
        goto done;
    }
    if (rc == -2) goto nomem;
    if (rc == -1) {
        st = dataset_bad_record(err, path, r.rec_line, r.error, r.buf + r.rec_start,
                                r.rec_end - r.rec_start);
        goto done;
    }
    uint32_t n_cols = r.n_fields;
    if (first_line) r.line = first_line; /* a rank's part: lines of the whole file */
    for (uint32_t c = 0; c < n_cols; c++) {
        if (r.lens[c] == 0) {
            st =
                mtr_fail(err, MTR_E_DATA, "%s:%u: column %u has no name in the header (found '%s')",
                         path, r.rec_line, c + 1, csv_excerpt(&r, ex, sizeof ex));
            goto done;
        }
        for (uint32_t d = 0; d < c; d++)
            if (strcmp(r.fields[c], r.fields[d]) == 0) {
                st = dataset_bad_record(err, path, r.rec_line, "a column name appears twice",
                                        r.fields[c], r.lens[c]);
                goto done;
            }
    }
    uint32_t k = 0;
    while (item_cols && item_cols[k]) k++;
    names = malloc((n_cols + k) * sizeof *names);
    vals = malloc((n_cols + k) * sizeof *vals);
    lens = malloc((n_cols + k) * sizeof *lens);
    if (!names || !vals || !lens) goto nomem;
    memcpy(names, r.fields, n_cols * sizeof *names);
    if ((st = join_begin(&j, items, item_cols, r.fields, n_cols, names, path, err))) goto done;
    if ((st = table_begin(&b, path, n_cols + j.n_extra, names, err))) goto done;
    while ((rc = csv_next(&r)) != 0) {
        if (rc == -2) goto nomem;
        char what[160];
        if (rc == 1 && r.n_fields == n_cols) {
            if (j.n_extra == 0) {
                if ((st = table_push(&b, r.fields, r.lens, r.rec_line, err))) goto done;
                continue;
            }
            const char *key = r.fields[j.key_field];
            uint32_t code = hash_find(&j.keys, items->columns[j.key_col].values, key,
                                      hash_string(key, r.lens[j.key_field]));
            if (code != HASH_NONE) {
                memcpy(vals, r.fields, n_cols * sizeof *vals);
                memcpy(lens, r.lens, n_cols * sizeof *lens);
                for (uint32_t e = 0; e < j.n_extra; e++) {
                    const MtrDataColumn *ic = &items->columns[j.extra_col[e]];
                    vals[n_cols + e] = ic->values[ic->codes[j.row_of[code]]];
                    lens[n_cols + e] = strlen(vals[n_cols + e]);
                }
                if ((st = table_push(&b, vals, lens, r.rec_line, err))) goto done;
                continue;
            }
            snprintf(what, sizeof what, "%s '%.60s' is not in %s", b.t.columns[j.key_field].name,
                     key, items->path);
            if (!skip_bad) {
                st = dataset_bad_record(err, path, r.rec_line, what, r.buf + r.rec_start,
                                        r.rec_end - r.rec_start);
                goto done;
            }
            (*skipped)++;
            continue;
        }
        if (rc == -1)
            snprintf(what, sizeof what, "%s", r.error);
        else
            snprintf(what, sizeof what, "expected %u fields, got %u", n_cols, r.n_fields);
        if (!skip_bad) {
            st = dataset_bad_record(err, path, r.rec_line, what, r.buf + r.rec_start,
                                    r.rec_end - r.rec_start);
            goto done;
        }
        (*skipped)++;
    }
    if (b.t.n_rows == 0 && !dist) {
        st = mtr_fail(err, MTR_E_DATA, "%s: no records after the header", path);
        goto done;
    }
    table_finish(&b, out);
    goto done;
nomem:
    st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", path);
done:
    if (st) table_abort(&b);
    join_free(&j);
    free(names);
    free(vals);
    free(lens);
    csv_free(&r);
    free(buf);
    return st;
}

/* Items without an items file: the distinct combinations of the item columns
 * in the interactions, in first-seen order. */
static MtrStatus items_from_interactions(const MtrTable *ratings, const char *const *names,
                                         MtrTable *out, MtrError *err)
{
    uint32_t k = 0;
    while (names && names[k]) k++;
    int *src = calloc(k ? k : 1, sizeof *src);
    if (!src) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t c = 0; c < k; c++) {
        src[c] = table_column_index(ratings, names[c]);
        if (src[c] < 0) {
            free(src);
            return mtr_fail(err, MTR_E_DATA, "%s: no column '%s' (an item column)", ratings->path,
                            names[c]);
        }
    }
    TableBuilder b, combos;
    MtrStatus st = table_begin(&b, ratings->path, k, names, err);
    if (st) {
        free(src);
        return st;
    }
    const char *key_name = "key";
    if ((st = table_begin(&combos, ratings->path, 1, &key_name, err))) {
        table_abort(&b);
        free(src);
        return st;
    }
    /* each combination is keyed by its columns' codes, 8 hex digits apiece */
    char *key = malloc(8 * (size_t)k + 1);
    uint32_t *codes = malloc((k ? k : 1) * sizeof *codes);
    if (!key || !codes) st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint64_t r = 0; !st && k > 0 && r < ratings->n_rows; r++) {
        for (uint32_t c = 0; c < k; c++)
            snprintf(key + 8 * c, 9, "%08x", (unsigned)ratings->columns[src[c]].codes[r]);
        size_t n_before = combos.t.columns[0].n_values;
        uint32_t code;
        if ((st = table_intern(&combos, 0, key, 8 * (size_t)k, &code, err))) break;
        if (combos.t.columns[0].n_values == n_before) continue;
        for (uint32_t c = 0; !st && c < k; c++) {
            const MtrDataColumn *col = &ratings->columns[src[c]];
            const char *v = col->values[col->codes[r]];
            st = table_intern(&b, c, v, strlen(v), &codes[c], err);
        }
        if (!st) st = table_push_codes(&b, codes, ratings->lines ? ratings->lines[r] : 0, err);
    }
    free(key);
    free(codes);
    free(src);
    table_abort(&combos);
    if (st) {
        table_abort(&b);
        return st;
    }
    table_finish(&b, out);
    return MTR_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Finds the interactions file of a generic folder; *path is fresh. */
static MtrStatus find_interactions(const char *dir, char **path, MtrError *err)
{
    static const char *const preferred[] = {"interactions.csv", "interactions.tsv"};
    for (size_t i = 0; i < 2; i++) {
        char *p = dataset_path(dir, preferred[i]);
        if (!p) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        if (is_file(p)) {
            *path = p;
            return MTR_OK;
        }
        free(p);
    }
    DIR *d = opendir(dir);
    if (!d)
        return mtr_fail(err, MTR_E_DATA, "%s: cannot open the folder: %s", dir, strerror(errno));
    char *names[3];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (name[0] == '.' || !(has_suffix(name, ".csv") || has_suffix(name, ".tsv"))) continue;
        if (strcmp(name, "items.csv") == 0 || strcmp(name, "items.tsv") == 0) continue;
        if (strcmp(name, "users.csv") == 0 || strcmp(name, "users.tsv") == 0) continue;
        char *full = dataset_path(dir, name);
        int regular = full && is_file(full);
        free(full);
        if (!regular) continue;
        if (n < 3) names[n] = strdup(name);
        if (n < 3 && !names[n]) break;
        n++;
    }
    closedir(d);
    size_t kept = n < 3 ? n : 3;
    MtrStatus st = MTR_OK;
    if (n == 0) {
        st = mtr_fail(err, MTR_E_DATA,
                      "%s: no recognised data files (expected u.data and u.item, ratings.dat "
                      "and movies.dat, ratings.csv and movies.csv, or one .csv or .tsv file)",
                      dir);
    } else if (n > 1) {
        qsort(names, kept, sizeof *names, cmp_str);
        st = mtr_fail(err, MTR_E_DATA,
                      "%s: several data files (%s, %s%s): name the interactions file "
                      "interactions.csv or interactions.tsv",
                      dir, names[0], names[1], n > 2 ? ", ..." : "");
    } else if (!(*path = dataset_path(dir, names[0]))) {
        st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < kept; i++) free(names[i]);
    return st;
}

/* Joins the user side table (users.csv / users.tsv) onto t by the first
 * column of the users file that t has. */
static MtrStatus join_users(MtrTable *t, const MtrTable *users, uint64_t *missing, MtrError *err)
{
    if (!users->n_columns) return MTR_OK;
    for (uint32_t c = 0; c < users->n_columns; c++)
        if (table_column_index(t, users->columns[c].name) >= 0)
            return side_join(t, users, users->columns[c].name, missing, err);
    return mtr_fail(err, MTR_E_DATA, "%s: no column shared with %s to join it by", users->path,
                    t->path);
}

/* Reads dir/users.csv or dir/users.tsv, when there is one, into ds->users. */
static MtrStatus read_users_file(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err)
{
    static const char *const names[] = {"users.csv", "users.tsv"};
    if (opt->users_file)
        return read_generic(opt->users_file, ",", opt->skip_bad, NULL, NULL, NULL, &ds->users,
                            &ds->skipped, NULL, err);
    MtrStatus st = MTR_OK;
    for (size_t i = 0; i < 2 && st == MTR_OK && !ds->users.n_columns; i++) {
        char *p = dataset_path(ds->dir, names[i]);
        if (!p) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        if (is_file(p))
            st = read_generic(p, ",", opt->skip_bad, NULL, NULL, NULL, &ds->users, &ds->skipped,
                              NULL, err);
        free(p);
    }
    return st;
}

static MtrStatus open_generic(MtrDataset *ds, const char *file, const MtrDataOptions *opt,
                              MtrError *err)
{
    char *path = NULL, *items = NULL;
    MtrStatus st = MTR_OK;
    if (opt->items_file && !(items = strdup(opt->items_file)))
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    if (file) {
        path = strdup(file);
        if (!path) {
            free(items);
            return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        }
    } else {
        if ((st = find_interactions(ds->dir, &path, err))) {
            free(items);
            return st;
        }
        static const char *const names[] = {"items.csv", "items.tsv"};
        for (size_t i = 0; i < 2 && !items; i++) {
            if (!(items = dataset_path(ds->dir, names[i]))) {
                free(path);
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            }
            if (!is_file(items)) {
                free(items);
                items = NULL;
            }
        }
    }
    /* the items first, so that the interactions can join item columns they lack */
    if (items) {
        st = read_generic(items, ",", opt->skip_bad, NULL, NULL, NULL, &ds->items, &ds->skipped,
                          NULL, err);
        for (size_t c = 0; !st && opt->item_columns && opt->item_columns[c]; c++)
            if (table_column_index(&ds->items, opt->item_columns[c]) < 0)
                st = mtr_fail(err, MTR_E_DATA, "%s: no column '%s' (an item column)", items,
                              opt->item_columns[c]);
    }
    const char *sep = ",";
    uint64_t skipped = 0; /* the interactions' (summed over the ranks' parts) */
    if (!st)
        st = read_generic(path, ",", opt->skip_bad, items ? &ds->items : NULL, opt->item_columns,
                          opt->dist, &ds->ratings, &skipped, &sep, err);
    if (!st && opt->keep_local && items) {
        st = table_keep_local(opt->dist, &ds->ratings, &skipped, err);
        ds->rows_local = opt->dist && opt->dist->size > 1;
    } else if (!st) {
        st = table_gather(opt->dist, &ds->ratings, &skipped, err);
    }
    ds->skipped += skipped;
    if (!st) ds->format = sep[0] == '\t' ? "tsv" : "csv";
    if (!st && !items)
        st = items_from_interactions(&ds->ratings, opt->item_columns, &ds->items, err);
    if (!st && (!file || opt->users_file) && !(st = read_users_file(ds, opt, err)))
        st = join_users(&ds->ratings, &ds->users, &ds->side_missing, err);
    free(path);
    free(items);
    return st;
}

/* Reads the data folder dir (or a single interactions file) into a new dataset
 * (*out, freed with mtr_data_free). opt may be NULL (no skipping, no item
 * columns). Errors (MTR_E_DATA unless out of memory) name the folder or file,
 * and the line of a malformed record. */
MtrStatus mtr_data_open(const char *dir, const MtrDataOptions *opt, MtrDataset **out, MtrError *err)
{
    static const MtrDataOptions defaults = {0};
    if (!opt) opt = &defaults;
    *out = NULL;
    struct stat s;
    if (!dir || !*dir) return mtr_fail(err, MTR_E_ARG, "no data folder given");
    if (stat(dir, &s) != 0)
        return mtr_fail(err, MTR_E_DATA, "%s: no such data folder: %s", dir, strerror(errno));
    if (!S_ISDIR(s.st_mode) && !S_ISREG(s.st_mode))
        return mtr_fail(err, MTR_E_DATA, "%s: not a folder or a file", dir);
    MtrDataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->dir = strdup(dir))) {
        free(ds);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    MtrStatus st;
    if (S_ISREG(s.st_mode)) {
        st = open_generic(ds, dir, opt, err);
    } else {
        char *p100k = dataset_path(dir, "u.data");
        char *p1m = dataset_path(dir, "ratings.dat");
        char *pl1 = dataset_path(dir, "ratings.csv");
        char *pl2 = dataset_path(dir, "movies.csv");
        int movielens = p100k && p1m && pl1 && pl2 &&
                        (is_file(p100k) || is_file(p1m) || (is_file(pl1) && is_file(pl2)));
        if (!p100k || !p1m || !pl1 || !pl2)
            st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        else if (movielens && (opt->users_file || opt->items_file))
            st = mtr_fail(err, MTR_E_ARG,
                          "%s: --users and --items name the side tables of generic CSV or TSV "
                          "data; a MovieLens folder has its own (u.user, users.dat, u.item, ...)",
                          dir);
        else if (is_file(p100k))
            st = movielens_open_100k(ds, opt, err);
        else if (is_file(p1m))
            st = movielens_open_1m(ds, opt, err);
        else if (is_file(pl1) && is_file(pl2))
            st = movielens_open_latest(ds, opt, err);
        else
            st = open_generic(ds, NULL, opt, err);
        free(p100k);
        free(p1m);
        free(pl1);
        free(pl2);
    }
    if (st) {
        mtr_data_free(ds);
        return st;
    }
    *out = ds;
    return MTR_OK;
}

/* Reads one interactions file in ds's format into *out (freed with
 * mtr_table_free); MovieLens files get movie_title joined from ds->items.
 * *skipped (may be NULL) counts the records skipped under opt->skip_bad. */
MtrStatus mtr_data_read_interactions(const char *path, const MtrDataset *ds,
                                     const MtrDataOptions *opt, MtrTable *out, uint64_t *skipped,
                                     MtrError *err)
{
    static const MtrDataOptions defaults = {0};
    uint64_t n_skipped = 0;
    if (!opt) opt = &defaults;
    memset(out, 0, sizeof *out);
    MtrStatus st;
    if (strncmp(ds->format, "movielens", 9) == 0)
        st = movielens_read_ratings(path, ds, opt, out, &n_skipped, err);
    else
        st = read_generic(path, strcmp(ds->format, "tsv") == 0 ? "\t" : ",", opt->skip_bad,
                          &ds->items, opt->item_columns, NULL, out, &n_skipped, NULL, err);
    if (!st && strncmp(ds->format, "movielens", 9) != 0 &&
        (st = join_users(out, &ds->users, NULL, err)))
        mtr_table_free(out);
    if (skipped) *skipped = n_skipped;
    return st;
}

/* Releases the dataset and everything it owns; NULL is fine. */
void mtr_data_free(MtrDataset *ds)
{
    if (!ds) return;
    mtr_table_free(&ds->ratings);
    mtr_table_free(&ds->items);
    mtr_table_free(&ds->users);
    free(ds->dir);
    free(ds);
}
