/* Data loading: reads a data folder (MovieLens 100K, 1M, "latest" CSV, or a
 * generic CSV/TSV with a header) into tables of dictionary-coded string columns,
 * and builds vocabularies from them. Everything is validated here, at the edge:
 * a malformed record is reported as `path:line: what is wrong`. */
#ifndef MTR_DATA_H
#define MTR_DATA_H

#include "mtr/dist.h"
#include "mtr/model.h"
#include "mtr/status.h"

#include <stdint.h>

/* One column: each row's value is values[codes[row]]. Values are UTF-8 (Latin-1
 * sources are converted), distinct, in first-seen order. */
typedef struct {
    char *name;
    uint32_t n_values;
    char **values;
    uint32_t *codes; /* n_rows entries */
} MtrDataColumn;

typedef struct {
    char *path; /* the file the rows came from, for messages */
    uint64_t n_rows;
    uint32_t n_columns;
    MtrDataColumn *columns;
    uint32_t *lines; /* lines[row]: the 1-based line the row was read from */
    /* A summary table (runtime/rowshare.c) holds no rows (n_rows 0), only each
     * column's values and counts[c][v], the rows of some larger table that
     * have value v; the features count values by it. NULL for a table of rows. */
    uint64_t **counts;
} MtrTable;

/* MovieLens columns carry TFDS's names: user_id, movie_id, movie_title,
 * user_rating, timestamp (ratings) and movie_id, movie_title, movie_genres
 * (items, joined onto the ratings); with a user file, raw_user_age (100K),
 * bucketized_user_age, user_gender, user_occupation_text, user_zip_code
 * (users, joined onto the ratings). docs/data.md lists them per format. */
typedef struct MtrDataset {
    char *dir;
    const char *format;    /* "movielens-100k", "movielens-1m", "movielens-latest", "csv", "tsv" */
    MtrTable ratings;      /* the interactions */
    MtrTable items;        /* every candidate item, in file order (duplicates kept) */
    uint64_t skipped;      /* malformed records skipped under skip_bad */
    MtrTable users;        /* the user side table (u.user, users.dat, users.csv), or empty */
    uint64_t side_missing; /* interactions whose key a side table lacks (features missing) */
    /* Under ranks with MtrDataOptions.keep_local: ratings holds only this
     * rank's rows (its part of the file), side_missing counts only them, and
     * skipped is already summed over the ranks. */
    int rows_local;
} MtrDataset;

typedef struct {
    int skip_bad; /* skip and count malformed records instead of failing */
    /* Generic files only: the item attributes (the candidate tower's inputs).
     * Without an items file, the items are the distinct combinations of these
     * columns in the interactions, in first-seen order. NULL-terminated. */
    const char *const *item_columns;
    /* Under data-parallel ranks (NULL or one rank: the whole file): each rank
     * reads only its part of the interactions file (mtr_data_part), and the
     * ranks' rows are then gathered into the table one process would read
     * (docs/distributed.md, "Reading data at scale"). Side and item files are
     * read whole. */
    const MtrDist *dist;
    /* With dist: leave each rank's rows on that rank (MtrDataset.rows_local)
     * instead of gathering them, unless the items must be derived from the
     * interactions (no items file), which needs every row. */
    int keep_local;
    /* Generic files only: the item and user side tables (CSV or TSV) to read
     * instead of the folder's items.csv and users.csv, or NULL. */
    const char *items_file, *users_file;
} MtrDataOptions;

/* Part `part` of `parts` of the file at path, in bytes [*lo, *hi): cut at
 * whole lines (a part starts at the first line that begins at or after byte
 * part * size / parts), so that every line lies in exactly one part; a part
 * may be empty. Reads only the bytes around the cuts. */
MtrStatus mtr_data_part(const char *path, int part, int parts, uint64_t *lo, uint64_t *hi,
                        MtrError *err);

/* Reads the data folder `dir`, recognising its format by the files in it. */
MtrStatus mtr_data_open(const char *dir, const MtrDataOptions *opt, MtrDataset **out,
                        MtrError *err);

/* Gathers every rank's rows of ds->ratings (rows_local) into the table one
 * process reads; *skipped, a count of this rank's, becomes the ranks' sum. A
 * collective. */
MtrStatus mtr_data_gather(const MtrDist *d, MtrDataset *ds, uint64_t *skipped, MtrError *err);

/* Reads one interactions file (for --train / --test) in any format the readers
 * know, joining item attributes (e.g. movie_title by movie_id) from ds->items. */
MtrStatus mtr_data_read_interactions(const char *path, const MtrDataset *ds,
                                     const MtrDataOptions *opt, MtrTable *out, uint64_t *skipped,
                                     MtrError *err);

/* Builds a table from values given in memory: n_rows rows of n_cols columns,
 * values[r * n_cols + c] the value of column names[c] in row r (copied). `what`
 * names the rows in messages, which then give a row number, not a line. A
 * column named twice is an MTR_E_ARG error. */
MtrStatus mtr_table_from_values(const char *what, uint32_t n_cols, const char *const *names,
                                uint64_t n_rows, const char *const *values, MtrTable *out,
                                MtrError *err);

/* Keeps the rows r with keep[r] != 0 (in order) and drops the rest, with the
 * values only they used. */
MtrStatus mtr_table_keep_rows(MtrTable *t, const uint8_t *keep, MtrError *err);

void mtr_data_free(MtrDataset *ds);
void mtr_table_free(MtrTable *t);

/* Returns the column called name, or NULL. */
const MtrDataColumn *mtr_table_column(const MtrTable *t, const char *name);

/* Converts column `name` to numbers, one per row; an unparsable or non-finite
 * value is an error naming the file, the line and the value. */
MtrStatus mtr_table_numbers(const MtrTable *t, const char *name, float *out, MtrError *err);
/* The same for a label, where an empty value is a missing label: NaN. */
MtrStatus mtr_table_labels(const MtrTable *t, const char *name, float *out, MtrError *err);

/* Builds the vocabulary of column `name`: the sorted distinct values of the
 * interactions (and of the items too when from_items is set). */
MtrStatus mtr_vocab_build(const MtrDataset *ds, const char *name, int from_items, MtrVocab *out,
                          MtrError *err);
void mtr_vocab_clear(MtrVocab *v);

/* A hash index over a vocabulary, for id lookups (0 = out of vocabulary). */
typedef struct MtrVocabIndex MtrVocabIndex;
MtrStatus mtr_vocab_index_new(const MtrVocab *v, MtrVocabIndex **out, MtrError *err);
void mtr_vocab_index_free(MtrVocabIndex *ix);
int32_t mtr_vocab_id(const MtrVocabIndex *ix, const char *word);

/* Maps every row of column `name` of t to its vocabulary id; returns how many
 * rows fell to the out-of-vocabulary row 0 in *n_oov (may be NULL). */
MtrStatus mtr_vocab_encode(const MtrVocabIndex *ix, const MtrTable *t, const char *name,
                           int32_t *ids, uint64_t *n_oov, MtrError *err);

#endif
