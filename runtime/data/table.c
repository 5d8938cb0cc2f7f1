/* Data loading, tables: builds dictionary-coded tables row by row (each
 * column's distinct values in first-seen order, interned through a hash, and
 * one code per row), and the public table helpers: free, column lookup, and
 * conversion of a column to numbers with errors naming file, line and value. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

MtrStatus table_begin(TableBuilder *b, const char *path, uint32_t n_cols, const char *const *names,
                      MtrError *err)
{
    memset(b, 0, sizeof *b);
    b->t.path = strdup(path);
    b->t.columns = calloc(n_cols ? n_cols : 1, sizeof *b->t.columns);
    b->cols = calloc(n_cols ? n_cols : 1, sizeof *b->cols);
    if (!b->t.path || !b->t.columns || !b->cols) goto nomem;
    b->t.n_columns = n_cols;
    for (uint32_t c = 0; c < n_cols; c++)
        if (!(b->t.columns[c].name = strdup(names[c]))) goto nomem;
    return MTR_OK;
nomem:
    table_abort(b);
    return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", path);
}

uint32_t table_find(const TableBuilder *b, uint32_t c, const char *s, size_t len)
{
    const ColumnBuilder *cb = &b->cols[c];
    return hash_find(&cb->hash, b->t.columns[c].values, s, hash_string(s, len));
}

MtrStatus table_intern(TableBuilder *b, uint32_t c, const char *s, size_t len, uint32_t *code,
                       MtrError *err)
{
    ColumnBuilder *cb = &b->cols[c];
    MtrDataColumn *col = &b->t.columns[c];
    uint32_t hv = hash_string(s, len);
    uint32_t k = hash_find(&cb->hash, col->values, s, hv);
    if (k != HASH_NONE) {
        *code = k;
        return MTR_OK;
    }
    if (col->n_values == cb->values_cap) {
        uint32_t cap = cb->values_cap ? 2 * cb->values_cap : 64;
        char **v = realloc(col->values, cap * sizeof *v);
        if (!v) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", b->t.path);
        col->values = v;
        cb->values_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", b->t.path);
    memcpy(copy, s, len + 1);
    MtrStatus st = hash_insert(&cb->hash, hv, col->n_values, err);
    if (st) {
        free(copy);
        return st;
    }
    col->values[col->n_values] = copy;
    *code = col->n_values++;
    return MTR_OK;
}

static MtrStatus grow_rows(TableBuilder *b, MtrError *err)
{
    if (b->t.n_rows < b->rows_cap) return MTR_OK;
    uint64_t cap = b->rows_cap ? 2 * b->rows_cap : 1024;
    if (cap > UINT32_MAX) return mtr_fail(err, MTR_E_DATA, "%s: too many rows", b->t.path);
    uint32_t *lines = realloc(b->t.lines, cap * sizeof *lines);
    if (!lines) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", b->t.path);
    b->t.lines = lines;
    for (uint32_t c = 0; c < b->t.n_columns; c++) {
        uint32_t *codes = realloc(b->t.columns[c].codes, cap * sizeof *codes);
        if (!codes) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", b->t.path);
        b->t.columns[c].codes = codes;
    }
    b->rows_cap = cap;
    return MTR_OK;
}

MtrStatus table_push_codes(TableBuilder *b, const uint32_t *codes, uint32_t line, MtrError *err)
{
    MtrStatus st = grow_rows(b, err);
    if (st) return st;
    for (uint32_t c = 0; c < b->t.n_columns; c++) b->t.columns[c].codes[b->t.n_rows] = codes[c];
    b->t.lines[b->t.n_rows++] = line;
    return MTR_OK;
}

MtrStatus table_push(TableBuilder *b, char *const *vals, const size_t *lens, uint32_t line,
                     MtrError *err)
{
    MtrStatus st = grow_rows(b, err);
    if (st) return st;
    for (uint32_t c = 0; c < b->t.n_columns; c++) {
        uint32_t code = 0;
        if ((st = table_intern(b, c, vals[c], lens[c], &code, err))) return st;
        b->t.columns[c].codes[b->t.n_rows] = code;
    }
    b->t.lines[b->t.n_rows++] = line;
    return MTR_OK;
}

void table_finish(TableBuilder *b, MtrTable *out)
{
    for (uint32_t c = 0; c < b->t.n_columns; c++) hash_free(&b->cols[c].hash);
    free(b->cols);
    *out = b->t;
    memset(b, 0, sizeof *b);
}

void table_abort(TableBuilder *b)
{
    if (b->cols)
        for (uint32_t c = 0; c < b->t.n_columns; c++) hash_free(&b->cols[c].hash);
    free(b->cols);
    b->cols = NULL;
    mtr_table_free(&b->t);
}

MtrStatus mtr_table_from_values(const char *what, uint32_t n_cols, const char *const *names,
                                uint64_t n_rows, const char *const *values, MtrTable *out,
                                MtrError *err)
{
    TableBuilder b;
    memset(out, 0, sizeof *out);
    if (n_rows > UINT32_MAX) return mtr_fail(err, MTR_E_ARG, "%s: too many rows", what);
    for (uint32_t c = 0; c < n_cols; c++)
        for (uint32_t d = 0; d < c; d++)
            if (strcmp(names[c], names[d]) == 0)
                return mtr_fail(err, MTR_E_ARG, "%s: column '%s' is given twice", what, names[c]);
    MtrStatus st = table_begin(&b, what, n_cols, names, err);
    for (uint64_t r = 0; r < n_rows && st == MTR_OK; r++)
        for (uint32_t c = 0; c < n_cols && st == MTR_OK; c++)
            if (!values[r * n_cols + c])
                st = mtr_fail(err, MTR_E_ARG, "%s: row %llu: no value for '%s'", what,
                              (unsigned long long)r + 1, names[c]);
    /* Rows are pushed through their codes: nothing is copied but each distinct value. */
    uint32_t *codes = st == MTR_OK ? calloc(n_cols ? n_cols : 1, sizeof *codes) : NULL;
    if (st == MTR_OK && !codes) st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", what);
    for (uint64_t r = 0; r < n_rows && st == MTR_OK; r++) {
        for (uint32_t c = 0; c < n_cols && st == MTR_OK; c++) {
            const char *v = values[r * n_cols + c];
            st = table_intern(&b, c, v, strlen(v), &codes[c], err);
        }
        if (st == MTR_OK) st = table_push_codes(&b, codes, (uint32_t)(r + 1), err);
    }
    free(codes);
    if (st) {
        table_abort(&b);
        return st;
    }
    table_finish(&b, out);
    /* No lines: messages then name the row ("row 3"), not a line of a file. */
    free(out->lines);
    out->lines = NULL;
    return MTR_OK;
}

MtrStatus mtr_table_keep_rows(MtrTable *t, const uint8_t *keep, MtrError *err)
{
    uint64_t w = 0;
    for (uint32_t c = 0; c < t->n_columns; c++) {
        MtrDataColumn *col = &t->columns[c];
        uint32_t *map = malloc((col->n_values ? col->n_values : 1) * sizeof *map);
        if (!map) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", t->path);
        for (uint32_t v = 0; v < col->n_values; v++) map[v] = UINT32_MAX;
        for (uint64_t r = 0; r < t->n_rows; r++)
            if (keep[r]) map[col->codes[r]] = 0;
        /* Values still used keep their first-seen order; the others go. */
        uint32_t n = 0;
        for (uint32_t v = 0; v < col->n_values; v++) {
            if (map[v] == UINT32_MAX) {
                free(col->values[v]);
                continue;
            }
            col->values[n] = col->values[v];
            map[v] = n++;
        }
        col->n_values = n;
        w = 0;
        for (uint64_t r = 0; r < t->n_rows; r++)
            if (keep[r]) col->codes[w++] = map[col->codes[r]];
        free(map);
    }
    w = 0;
    for (uint64_t r = 0; r < t->n_rows; r++)
        if (keep[r]) {
            if (t->lines) t->lines[w] = t->lines[r];
            w++;
        }
    t->n_rows = w;
    return MTR_OK;
}

int table_column_index(const MtrTable *t, const char *name)
{
    for (uint32_t c = 0; c < t->n_columns; c++)
        if (strcmp(t->columns[c].name, name) == 0) return (int)c;
    return -1;
}

/* Releases everything t owns and leaves it empty; a zeroed table is fine. */
void mtr_table_free(MtrTable *t)
{
    if (!t) return;
    for (uint32_t c = 0; t->columns && c < t->n_columns; c++) {
        MtrDataColumn *col = &t->columns[c];
        for (uint32_t v = 0; v < col->n_values; v++) free(col->values[v]);
        free(col->values);
        free(col->codes);
        free(col->name);
        if (t->counts) free(t->counts[c]);
    }
    free(t->counts);
    free(t->columns);
    free(t->lines);
    free(t->path);
    memset(t, 0, sizeof *t);
}

/* Returns the column called name, or NULL; the table keeps ownership. */
const MtrDataColumn *mtr_table_column(const MtrTable *t, const char *name)
{
    int c = table_column_index(t, name);
    return c < 0 ? NULL : &t->columns[c];
}

/* Writes column name's value of every row as a float into out (t->n_rows
 * entries). Each distinct value is parsed once. Errors: MTR_E_ARG when there is
 * no such column; MTR_E_DATA naming the file, the first line whose value is
 * empty, not a number, or not finite, and the value. */
static MtrStatus numbers(const MtrTable *t, const char *name, int missing_ok, float *out,
                         MtrError *err);

MtrStatus mtr_table_numbers(const MtrTable *t, const char *name, float *out, MtrError *err)
{
    return numbers(t, name, 0, out, err);
}

MtrStatus mtr_table_labels(const MtrTable *t, const char *name, float *out, MtrError *err)
{
    return numbers(t, name, 1, out, err);
}

static MtrStatus numbers(const MtrTable *t, const char *name, int missing_ok, float *out,
                         MtrError *err)
{
    const MtrDataColumn *col = mtr_table_column(t, name);
    if (!col) return mtr_fail(err, MTR_E_ARG, "%s: no column '%s'", t->path, name);
    float *num = malloc((col->n_values ? col->n_values : 1) * sizeof *num);
    unsigned char *ok = malloc(col->n_values ? col->n_values : 1);
    if (!num || !ok) {
        free(num);
        free(ok);
        return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", t->path);
    }
    for (uint32_t v = 0; v < col->n_values; v++) {
        ok[v] = (unsigned char)text_parse_number(col->values[v], &num[v]);
        if (missing_ok && col->values[v][0] == '\0') ok[v] = 1, num[v] = NAN;
    }
    MtrStatus st = MTR_OK;
    for (uint64_t r = 0; r < t->n_rows; r++) {
        uint32_t code = col->codes[r];
        if (!ok[code]) {
            char ex[256];
            const char *v = col->values[code];
            text_excerpt(v, strlen(v), ex, sizeof ex);
            if (t->lines)
                st = mtr_fail(err, MTR_E_DATA, "%s:%u: %s is not a number (found '%s')", t->path,
                              t->lines[r], name, ex);
            else
                st = mtr_fail(err, MTR_E_DATA, "%s: row %llu: %s is not a number (found '%s')",
                              t->path, (unsigned long long)r + 1, name, ex);
            break;
        }
        out[r] = num[code];
    }
    free(num);
    free(ok);
    return st;
}
