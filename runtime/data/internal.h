/* Data loading, private parts shared by the files of runtime/data/: whole-file
 * text loading (text.c), the CSV/TSV record tokenizer (csv.c), the string hash
 * that interns values and indexes vocabularies (hash.c), the builder of
 * dictionary-coded tables (table.c) and the MovieLens readers (movielens.c).
 * Nothing here is part of libmtr's public API. */
#ifndef MTR_DATA_INTERNAL_H
#define MTR_DATA_INTERNAL_H

#include "mtr/data.h"

#include <stddef.h>
#include <stdint.h>

#define HASH_NONE UINT32_MAX

/* ---- text.c */

/* Reads the whole file at path into a fresh NUL-terminated UTF-8 buffer (*buf,
 * *len; the caller frees *buf). A file that is not valid UTF-8 is decoded as
 * ISO-8859-1; a UTF-8 byte-order mark is dropped. Errors (MTR_E_DATA): the file
 * is missing or unreadable, empty, or holds a NUL byte. */
MtrStatus text_load(const char *path, char **buf, size_t *len, MtrError *err);
/* The same for this rank's part of the file under d (mtr_data_part; the
 * whole file for a NULL d or one rank); a part after the first is preceded by
 * the file's first line when header is set. An empty part is no error. The
 * part's bytes decide UTF-8 or ISO-8859-1 on their own. *first_line gets the
 * line of the whole file the part's own bytes start on (0: the buffer starts
 * the file), for the reader to number its records from there. A collective
 * under d (the ranks count the lines before them). */
MtrStatus text_load_part(const char *path, const MtrDist *d, int header, char **buf, size_t *len,
                         uint32_t *first_line, MtrError *err);
/* Returns 1 when s[0..n) is well-formed UTF-8. */
int text_is_utf8(const char *s, size_t n);
/* Converts ISO-8859-1 bytes s[0..n) to a fresh NUL-terminated UTF-8 buffer
 * (*out, *out_len; the caller frees *out); fails only with MTR_E_NOMEM. */
MtrStatus text_latin1_to_utf8(const char *s, size_t n, char **out, size_t *out_len, MtrError *err);
/* Writes a printable excerpt of s[0..n) into out (cap bytes, NUL-terminated):
 * control bytes escaped (\t, \r, \n, \xHH), cut after about 60 bytes with "...",
 * never inside a UTF-8 sequence. Returns out. */
char *text_excerpt(const char *s, size_t n, char *out, size_t cap);
/* Parses s as a finite number that fits a float (strtod: decimal or hex, spaces
 * around allowed); returns 1 and sets *out, or 0 when s is not such a number. */
int text_parse_number(const char *s, float *out);

/* ---- csv.c */

/* Splits a buffer into records and fields. Blank lines are skipped; "\r\n" ends
 * a line like "\n". With quotes on, a field that starts with '"' runs to the
 * next lone '"' ("" is a literal quote) and may span lines. Fields are copies,
 * NUL-terminated, valid until the next call. */
typedef struct {
    const char *buf;
    size_t len, pos;
    uint32_t line; /* the line of the byte at pos */
    const char *sep;
    size_t sep_len;
    int quotes;
    /* the current record */
    uint32_t rec_line;         /* the line it starts on */
    size_t rec_start, rec_end; /* its raw text, line end excluded */
    uint32_t n_fields;
    char **fields;
    size_t *lens;
    size_t *offs;
    uint32_t fields_cap;
    char *scratch;
    size_t scratch_cap;
    const char *error; /* what was wrong with the last record (-1 from csv_next) */
} CsvReader;

void csv_init(CsvReader *r, const char *buf, size_t len, const char *sep, int quotes);
/* Reads the next record: 1 when one was read, 0 at the end, -1 when the record
 * is badly quoted (r->error says how; the reader has moved past the record's
 * first line, so reading may go on), -2 when out of memory. */
int csv_next(CsvReader *r);
/* A printable excerpt of the current record's raw text, into out. */
char *csv_excerpt(const CsvReader *r, char *out, size_t cap);
void csv_free(CsvReader *r);

/* ---- hash.c */

/* An open-addressing (linear probing) hash from strings to codes. It stores
 * only codes and hashes: the strings live in a caller's array keys[code]. */
typedef struct {
    uint32_t *slots; /* pairs (hash, code + 1), together for one cache miss; code + 1 == 0
                      * marks an empty slot */
    uint32_t cap;    /* slots, a power of two, or 0 */
    uint32_t n;
} StrHash;

uint32_t hash_string(const char *s, size_t len);
/* Returns the code whose key equals s (NUL-terminated, length len), or HASH_NONE. */
uint32_t hash_find(const StrHash *h, char *const *keys, const char *s, uint32_t hv);
/* Adds code (whose key hashes to hv); the caller has checked it is not there. */
MtrStatus hash_insert(StrHash *h, uint32_t hv, uint32_t code, MtrError *err);
void hash_free(StrHash *h);

/* ---- table.c */

typedef struct {
    MtrDataColumn col;
    uint32_t values_cap;
    StrHash hash;
} ColumnBuilder;

/* Builds an MtrTable row by row, interning each column's values. */
typedef struct {
    MtrTable t;
    ColumnBuilder *cols;
    uint64_t rows_cap;
} TableBuilder;

/* Starts a table of n_cols columns called names[] read from path. */
MtrStatus table_begin(TableBuilder *b, const char *path, uint32_t n_cols, const char *const *names,
                      MtrError *err);
/* Returns the code of value s (NUL-terminated, length len) in column c, or HASH_NONE. */
uint32_t table_find(const TableBuilder *b, uint32_t c, const char *s, size_t len);
/* Interns s into column c, returning its code in *code. */
MtrStatus table_intern(TableBuilder *b, uint32_t c, const char *s, size_t len, uint32_t *code,
                       MtrError *err);
/* Appends a row given by its codes (one per column, from table_intern). */
MtrStatus table_push_codes(TableBuilder *b, const uint32_t *codes, uint32_t line, MtrError *err);
/* Appends a row given by its values (NUL-terminated, lens[c] bytes). */
MtrStatus table_push(TableBuilder *b, char *const *vals, const size_t *lens, uint32_t line,
                     MtrError *err);
/* Moves the finished table into *out (which the caller frees with mtr_table_free). */
void table_finish(TableBuilder *b, MtrTable *out);
/* Releases a table that will not be finished. */
void table_abort(TableBuilder *b);
/* Index of column name in t, or -1. */
int table_column_index(const MtrTable *t, const char *name);

/* ---- side.c */

/* Appends to dst every column of side that dst lacks, joined by column key
 * (which both have): row r gets the value of the first side row whose key
 * equals its own, or the empty value when there is none; those rows are
 * added to *missing (may be NULL). */
MtrStatus side_join(MtrTable *dst, const MtrTable *side, const char *key, uint64_t *missing,
                    MtrError *err);

/* ---- movielens.c */

MtrStatus movielens_open_100k(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err);
MtrStatus movielens_open_1m(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err);
MtrStatus movielens_open_latest(MtrDataset *ds, const MtrDataOptions *opt, MtrError *err);
/* Reads one ratings file of ds's MovieLens format, joining movie_title from ds->items. */
MtrStatus movielens_read_ratings(const char *path, const MtrDataset *ds, const MtrDataOptions *opt,
                                 MtrTable *out, uint64_t *skipped, MtrError *err);

/* ---- gather.c */

/* Replaces *t, this rank's rows of the interactions, by every rank's rows in
 * rank order, coded as one process reading the whole file would code them
 * (each column's values in first-seen order); *skipped, this rank's skipped
 * records, becomes the sum over ranks. The rows keep the lines of the whole
 * file their reader gave them. A collective: every rank calls it. */
MtrStatus table_gather(const MtrDist *d, MtrTable *t, uint64_t *skipped, MtrError *err);
/* Keeps *t, this rank's rows, where it is (rows stay on their rank,
 * runtime/rowshare.c): checks that every rank read the same columns and that
 * the ranks hold a record in all, and sums *skipped over the ranks. A
 * collective. */
MtrStatus table_keep_local(const MtrDist *d, MtrTable *t, uint64_t *skipped, MtrError *err);

/* ---- dataset.c */

/* Joins a folder and a file name into a fresh string (NULL when out of memory). */
char *dataset_path(const char *dir, const char *name);
/* Formats a record's problem as "path:line: what (found 'excerpt')". Returns MTR_E_DATA. */
MtrStatus dataset_bad_record(MtrError *err, const char *path, uint32_t line, const char *what,
                             const char *found, size_t found_len);

#endif
