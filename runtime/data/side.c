/* Data loading, side tables: columns of a table keyed by an id (the users of
 * MovieLens u.user, the genres of u.item, a generic users.csv / items.csv)
 * joined onto the rows of another table that has the same id. A joined
 * feature is a function of its key: every row with the same key gets the same
 * value. A key the side table lacks gets the empty value (a missing feature:
 * the out-of-vocabulary id, an empty list, the training mean) and is counted. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Appends to dst a copy of side column sc, row r of dst taking the value of
 * side row rows[r] (UINT32_MAX: none, the empty value). As in every table,
 * the new column's values are distinct, used, and in first-seen order. */
static MtrStatus append_column(MtrTable *dst, const MtrDataColumn *sc, const uint32_t *rows,
                               MtrError *err)
{
    MtrDataColumn col = {0};
    col.name = dup_str(sc->name);
    col.values = calloc(sc->n_values + 1, sizeof *col.values);
    col.codes = malloc((dst->n_rows ? dst->n_rows : 1) * sizeof *col.codes);
    uint32_t *code_of = malloc((sc->n_values + 1) * sizeof *code_of); /* side code -> new */
    uint32_t empty_side = UINT32_MAX;
    if (!col.name || !col.values || !col.codes || !code_of) goto nomem;
    for (uint32_t v = 0; v < sc->n_values; v++) {
        code_of[v] = UINT32_MAX;
        if (sc->values[v][0] == '\0') empty_side = v;
    }
    code_of[sc->n_values] = UINT32_MAX; /* the empty value when the side has none */
    for (uint64_t r = 0; r < dst->n_rows; r++) {
        uint32_t v = rows[r] != UINT32_MAX      ? sc->codes[rows[r]]
                     : empty_side != UINT32_MAX ? empty_side
                                                : sc->n_values;
        if (code_of[v] == UINT32_MAX) {
            const char *text = v < sc->n_values ? sc->values[v] : "";
            if (!(col.values[col.n_values] = dup_str(text))) goto nomem;
            code_of[v] = col.n_values++;
        }
        col.codes[r] = code_of[v];
    }
    MtrDataColumn *cols = realloc(dst->columns, (dst->n_columns + 1) * sizeof *cols);
    if (!cols) goto nomem;
    dst->columns = cols;
    dst->columns[dst->n_columns++] = col;
    free(code_of);
    return MTR_OK;
nomem:
    for (uint32_t v = 0; col.values && v < col.n_values; v++) free(col.values[v]);
    free(col.values);
    free(col.codes);
    free(col.name);
    free(code_of);
    return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", dst->path);
}

MtrStatus side_join(MtrTable *dst, const MtrTable *side, const char *key, uint64_t *missing,
                    MtrError *err)
{
    int dk = table_column_index(dst, key), sk = table_column_index(side, key);
    if (dk < 0 || sk < 0)
        return mtr_fail(err, MTR_E_DATA, "%s: no column '%s' to join %s by",
                        dk < 0 ? dst->path : side->path, key, side->path);
    const MtrDataColumn *skey = &side->columns[sk], *dkey = &dst->columns[dk];
    StrHash h = {0};
    uint32_t *row_of = malloc((skey->n_values + 1) * sizeof *row_of);
    uint32_t *drow = malloc((dkey->n_values + 1) * sizeof *drow);
    uint32_t *rows = malloc((dst->n_rows ? dst->n_rows : 1) * sizeof *rows);
    MtrStatus st = MTR_OK;
    if (!row_of || !drow || !rows) {
        st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", dst->path);
        goto done;
    }
    for (uint32_t v = 0; v < skey->n_values; v++) row_of[v] = UINT32_MAX;
    for (uint64_t r = 0; r < side->n_rows; r++) {
        uint32_t c = skey->codes[r];
        if (row_of[c] != UINT32_MAX) continue; /* the first row with a key wins */
        row_of[c] = (uint32_t)r;
        const char *v = skey->values[c];
        if ((st = hash_insert(&h, hash_string(v, strlen(v)), c, err))) goto done;
    }
    for (uint32_t v = 0; v < dkey->n_values; v++) {
        const char *s = dkey->values[v];
        uint32_t c = hash_find(&h, skey->values, s, hash_string(s, strlen(s)));
        drow[v] = c == HASH_NONE ? UINT32_MAX : row_of[c];
    }
    uint64_t miss = 0;
    for (uint64_t r = 0; r < dst->n_rows; r++) {
        rows[r] = drow[dkey->codes[r]];
        miss += rows[r] == UINT32_MAX;
    }
    if (missing) *missing += miss;
    uint32_t n_side = side->n_columns;
    for (uint32_t c = 0; c < n_side && st == MTR_OK; c++) {
        if ((int)c == sk || table_column_index(dst, side->columns[c].name) >= 0) continue;
        st = append_column(dst, &side->columns[c], rows, err);
    }
done:
    hash_free(&h);
    free(row_of);
    free(drow);
    free(rows);
    return st;
}
