/* Side tables kept in the model (see sides.h): learned from the training
 * rows, filled into the rows served. */
#include "sides.h"

#include "data/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sides_free(MtrModel *m)
{
    for (uint32_t s = 0; s < m->n_sides; s++) {
        MtrSideTable *st = &m->sides[s];
        uint64_t n = (uint64_t)st->n_rows * (1 + st->n_columns);
        for (uint64_t i = 0; st->values && i < n; i++) free(st->values[i]);
        free(st->values);
        free(st->columns);
    }
    free(m->sides);
    m->sides = NULL;
    m->n_sides = 0;
}

/* A column read from the data as it is: not a label, not computed. */
static int data_input(const MtrColumn *c)
{
    return !c->is_label && !c->feature && c->derived_from < 0;
}

/* Whether data column c of t takes one value per value of column k. */
static int function_of(const MtrDataColumn *k, const MtrDataColumn *c, uint64_t n_rows,
                       uint32_t *seen)
{
    for (uint32_t v = 0; v < k->n_values; v++) seen[v] = UINT32_MAX;
    for (uint64_t r = 0; r < n_rows; r++) {
        uint32_t *s = &seen[k->codes[r]];
        if (*s == UINT32_MAX)
            *s = c->codes[r];
        else if (*s != c->codes[r])
            return 0;
    }
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The side table of key column `key` (of `item` side) from t, if any column is a function of it. */
static MtrStatus learn_one(MtrModel *m, const MtrTable *t, int32_t key, MtrError *err)
{
    const MtrDataColumn *k = mtr_table_column(t, m->columns[key].name);
    if (!k || t->n_rows == 0) return MTR_OK;
    int32_t *cols = malloc(m->n_columns * sizeof *cols);
    uint32_t *seen = malloc((k->n_values + 1) * sizeof *seen);
    uint32_t n = 0;
    if (!cols || !seen) goto nomem;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        const MtrColumn *col = &m->columns[c];
        if ((int32_t)c == key || !data_input(col) || col->is_item != m->columns[key].is_item)
            continue;
        const MtrDataColumn *dc = mtr_table_column(t, col->name);
        if (dc && function_of(k, dc, t->n_rows, seen)) cols[n++] = (int32_t)c;
    }
    if (n == 0) {
        free(cols);
        free(seen);
        return MTR_OK;
    }
    MtrSideTable *sides = realloc(m->sides, (m->n_sides + 1) * sizeof *sides);
    if (!sides) goto nomem;
    m->sides = sides;
    MtrSideTable *st = &m->sides[m->n_sides++];
    memset(st, 0, sizeof *st);
    st->key = key;
    st->columns = cols;
    st->n_columns = n;
    cols = NULL;
    /* The first row of each key value, in first-seen order. */
    for (uint32_t v = 0; v < k->n_values; v++) seen[v] = UINT32_MAX;
    for (uint64_t r = 0; r < t->n_rows; r++)
        if (seen[k->codes[r]] == UINT32_MAX) seen[k->codes[r]] = (uint32_t)r;
    if (!(st->values = calloc((size_t)k->n_values * (1 + n), sizeof *st->values))) goto nomem;
    for (uint32_t v = 0; v < k->n_values; v++) {
        if (seen[v] == UINT32_MAX) continue;
        char **row = &st->values[(size_t)st->n_rows++ * (1 + n)];
        if (!(row[0] = dup_str(k->values[v]))) goto nomem;
        for (uint32_t c = 0; c < n; c++) {
            const MtrDataColumn *dc = mtr_table_column(t, m->columns[st->columns[c]].name);
            if (!(row[1 + c] = dup_str(dc->values[dc->codes[seen[v]]]))) goto nomem;
        }
    }
    free(seen);
    return MTR_OK;
nomem:
    free(cols);
    free(seen);
    return mtr_fail(err, MTR_E_NOMEM, "out of memory");
}

MtrStatus sides_learn(MtrModel *m, const MtrTable *t, const MtrTable *items, MtrError *err)
{
    sides_free(m);
    int32_t user = -1, item = -1;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        const MtrColumn *col = &m->columns[c];
        if (!data_input(col)) continue;
        if (col->is_item && item < 0) item = (int32_t)c;
        if (!col->is_item && user < 0) user = (int32_t)c;
    }
    MtrStatus rc = user >= 0 ? learn_one(m, t, user, err) : MTR_OK;
    /* every candidate item, also one no training row rates */
    if (items && item >= 0 && !mtr_table_column(items, m->columns[item].name)) items = NULL;
    if (rc == MTR_OK && item >= 0) rc = learn_one(m, items ? items : t, item, err);
    return rc;
}

/* The side table st as a table of its own. */
static MtrStatus side_table(const MtrModel *m, const MtrSideTable *st, MtrTable *out, MtrError *err)
{
    const char **names = malloc((1 + st->n_columns) * sizeof *names);
    if (!names) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    names[0] = m->columns[st->key].name;
    for (uint32_t c = 0; c < st->n_columns; c++) names[1 + c] = m->columns[st->columns[c]].name;
    MtrStatus rc = mtr_table_from_values("the model's side table", 1 + st->n_columns, names,
                                         st->n_rows, (const char *const *)st->values, out, err);
    free(names);
    return rc;
}

/* For each value of key column k, the side row that has it, or UINT32_MAX. */
static uint32_t *side_rows(const MtrSideTable *st, const MtrDataColumn *k)
{
    uint32_t *row_of = malloc((k->n_values + 1) * sizeof *row_of);
    for (uint32_t v = 0; row_of && v < k->n_values; v++) {
        row_of[v] = UINT32_MAX;
        for (uint32_t i = 0; i < st->n_rows && row_of[v] == UINT32_MAX; i++)
            if (strcmp(st->values[(size_t)i * (1 + st->n_columns)], k->values[v]) == 0)
                row_of[v] = i;
    }
    return row_of;
}

/* The first row of t whose key the side table lacks, or UINT64_MAX. */
static uint64_t unknown_row(const MtrSideTable *st, const MtrDataColumn *k, uint64_t n_rows)
{
    for (uint64_t r = 0; r < n_rows; r++) {
        const char *v = k->values[k->codes[r]];
        int found = 0;
        for (uint32_t i = 0; i < st->n_rows && !found; i++)
            found = strcmp(st->values[(size_t)i * (1 + st->n_columns)], v) == 0;
        if (!found) return r;
    }
    return UINT64_MAX;
}

MtrStatus sides_fill(const MtrModel *m, const MtrTable *t, int strict, MtrTable *out, MtrError *err)
{
    memset(out, 0, sizeof *out);
    uint32_t nc = t->n_columns;
    const char **names = malloc((nc ? nc : 1) * sizeof *names);
    const char **vals = malloc(((size_t)t->n_rows * nc + 1) * sizeof *vals);
    MtrStatus rc = names && vals ? MTR_OK : mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t c = 0; rc == MTR_OK && c < nc; c++) {
        const MtrDataColumn *dc = &t->columns[c];
        names[c] = dc->name;
        for (uint64_t r = 0; r < t->n_rows; r++) vals[r * nc + c] = dc->values[dc->codes[r]];
    }
    /* An empty cell of a side column t has: the value the model holds. */
    for (uint32_t s = 0; rc == MTR_OK && s < m->n_sides; s++) {
        const MtrSideTable *st = &m->sides[s];
        const MtrDataColumn *k = mtr_table_column(t, m->columns[st->key].name);
        if (!k) continue;
        uint32_t *row_of = NULL;
        for (uint32_t c = 0; rc == MTR_OK && c < st->n_columns; c++) {
            int tc = table_column_index(t, m->columns[st->columns[c]].name);
            if (tc < 0) continue;
            if (!row_of && !(row_of = side_rows(st, k))) {
                rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
                break;
            }
            for (uint64_t r = 0; r < t->n_rows; r++) {
                uint32_t sr = row_of[k->codes[r]];
                if (!vals[r * nc + tc][0] && sr != UINT32_MAX)
                    vals[r * nc + tc] = st->values[(size_t)sr * (1 + st->n_columns) + 1 + c];
            }
        }
        free(row_of);
    }
    if (rc == MTR_OK) rc = mtr_table_from_values(t->path, nc, names, t->n_rows, vals, out, err);
    free(names);
    free(vals);
    for (uint32_t s = 0; rc == MTR_OK && s < m->n_sides; s++) {
        const MtrSideTable *st = &m->sides[s];
        const MtrDataColumn *k = mtr_table_column(out, m->columns[st->key].name);
        int32_t lack = -1; /* the first side column the rows lack */
        for (uint32_t c = 0; c < st->n_columns && lack < 0; c++)
            if (!mtr_table_column(out, m->columns[st->columns[c]].name)) lack = st->columns[c];
        if (!k || lack < 0) continue;
        uint64_t r = strict ? unknown_row(st, k, out->n_rows) : UINT64_MAX;
        if (r != UINT64_MAX) {
            char where[64] = "";
            if (out->n_rows > 1)
                snprintf(where, sizeof where, "row %llu: ", (unsigned long long)r + 1);
            rc = mtr_fail(err, MTR_E_ARG,
                          "%sthe model holds no features for %s '%s' (it was not in the "
                          "training rows): a value for '%s' is needed (--input %s=VALUE)",
                          where, m->columns[st->key].name, k->values[k->codes[r]],
                          m->columns[lack].name, m->columns[lack].name);
            break;
        }
        MtrTable side = {0};
        rc = side_table(m, st, &side, err);
        if (rc == MTR_OK) rc = side_join(out, &side, m->columns[st->key].name, NULL, err);
        mtr_table_free(&side);
    }
    return rc;
}
