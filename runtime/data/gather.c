/* Data loading, the ranks' parts put together: under data-parallel ranks each
 * rank reads only its part of the interactions file (text_load_part); this
 * gathers every rank's dictionary-coded rows to every rank and re-codes them
 * as one table, so that the vocabularies, the features' statistics, the
 * seeded split and the batches are the single process's by construction.
 * What travels is each rank's distinct values once and one uint32 code per
 * row and column, plus the row's line (docs/distributed.md). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* What a rank tells the others before its rows. */
typedef struct {
    uint64_t n_rows, bytes, skipped;
    uint32_t n_columns, pad;
} PartHead;

/* Lays t out as: n_values per column, codes column by column, lines, then
 * every column's values NUL-terminated. */
static MtrStatus pack(const MtrTable *t, char **out, uint64_t *bytes, MtrError *err)
{
    uint64_t n = (uint64_t)t->n_columns * 4 + ((uint64_t)t->n_columns + 1) * t->n_rows * 4;
    for (uint32_t c = 0; c < t->n_columns; c++)
        for (uint32_t v = 0; v < t->columns[c].n_values; v++)
            n += strlen(t->columns[c].values[v]) + 1;
    char *b = malloc(n ? n : 1);
    if (!b) return mtr_fail(err, MTR_E_NOMEM, "out of memory sending the interactions' rows");
    uint32_t *u = (uint32_t *)b;
    for (uint32_t c = 0; c < t->n_columns; c++) *u++ = t->columns[c].n_values;
    for (uint32_t c = 0; c < t->n_columns; c++, u += t->n_rows)
        if (t->n_rows) memcpy(u, t->columns[c].codes, t->n_rows * 4); /* an empty part: NULL */
    if (t->n_rows) memcpy(u, t->lines, t->n_rows * 4);
    char *s = (char *)(u + t->n_rows);
    for (uint32_t c = 0; c < t->n_columns; c++)
        for (uint32_t v = 0; v < t->columns[c].n_values; v++) {
            size_t len = strlen(t->columns[c].values[v]) + 1;
            memcpy(s, t->columns[c].values[v], len);
            s += len;
        }
    *out = b;
    *bytes = n;
    return MTR_OK;
}

MtrStatus table_gather(const MtrDist *d, MtrTable *t, uint64_t *skipped, MtrError *err)
{
    if (!d || d->size <= 1) return MTR_OK;
    int n = d->size;
    PartHead mine = {.n_rows = t->n_rows, .skipped = *skipped, .n_columns = t->n_columns, .pad = 0};
    char *blob = NULL, *all = NULL;
    PartHead *heads = calloc((size_t)n, sizeof *heads);
    size_t *bytes = calloc((size_t)n, sizeof *bytes);
    uint32_t nc = t->n_columns;
    uint32_t **map = calloc(t->n_columns ? t->n_columns : 1, sizeof *map);
    uint32_t *codes = calloc(t->n_columns ? t->n_columns : 1, sizeof *codes);
    TableBuilder b;
    memset(&b, 0, sizeof b);
    MtrStatus st = MTR_OK;
    if (!heads || !bytes || !map || !codes) goto nomem;
    if ((st = pack(t, &blob, &mine.bytes, err))) goto done;
    d->allgather(d->ctx, &mine, sizeof mine, heads);
    uint64_t most = 0, rows = 0;
    for (int r = 0; r < n; r++) {
        if (heads[r].n_columns != t->n_columns) {
            st = mtr_fail(err, MTR_E_DATA, "%s: rank %d read %u columns, rank %d read %u", t->path,
                          r, heads[r].n_columns, d->rank, t->n_columns);
            goto done;
        }
        most = heads[r].bytes > most ? heads[r].bytes : most;
        rows += heads[r].n_rows;
    }
    if (rows == 0) {
        st = mtr_fail(err, MTR_E_DATA, "%s: no records", t->path);
        goto done;
    }
    if (rows >= UINT32_MAX) {
        st = mtr_fail(err, MTR_E_DATA, "%s: too many rows", t->path);
        goto done;
    }
    /* the table anew, from every part in rank order */
    const char **names = malloc((t->n_columns ? t->n_columns : 1) * sizeof *names);
    if (!names) goto nomem;
    for (uint32_t c = 0; c < t->n_columns; c++) names[c] = t->columns[c].name;
    st = table_begin(&b, t->path, t->n_columns, names, err);
    free(names);
    if (st) goto done;
    b.rows_cap = rows;
    for (uint32_t c = 0; !st && c < t->n_columns; c++)
        if (!(b.t.columns[c].codes = malloc(rows * sizeof *b.t.columns[c].codes))) goto nomem;
    if (!(b.t.lines = malloc(rows * sizeof *b.t.lines))) goto nomem;
    if (!(all = malloc(most ? most : 1))) goto nomem;
    mtr_table_free(t); /* its rows are in blob */

    /* one rank's rows at a time (an allgatherv where only that rank sends),
     * so that a rank holds one part besides its own, not all of them */
    uint64_t sum_skipped = 0;
    for (int r = 0; r < n; r++) {
        const PartHead *h = &heads[r];
        for (int k = 0; k < n; k++) bytes[k] = k == r ? (size_t)h->bytes : 0;
        d->allgatherv(d->ctx, blob, bytes, all);
        const char *p = all;
        const uint32_t *nv = (const uint32_t *)p;
        const uint32_t *cd = nv + h->n_columns;
        const uint32_t *ln = cd + (uint64_t)h->n_columns * h->n_rows;
        const char *s = (const char *)(ln + h->n_rows);
        for (uint32_t c = 0; c < h->n_columns; c++) {
            free(map[c]);
            if (!(map[c] = malloc((nv[c] ? nv[c] : 1) * sizeof *map[c]))) goto nomem;
            for (uint32_t v = 0; v < nv[c]; v++) {
                size_t len = strlen(s);
                if ((st = table_intern(&b, c, s, len, &map[c][v], err))) goto done;
                s += len + 1;
            }
        }
        for (uint64_t i = 0; i < h->n_rows; i++) {
            for (uint32_t c = 0; c < h->n_columns; c++) codes[c] = map[c][cd[c * h->n_rows + i]];
            if ((st = table_push_codes(&b, codes, ln[i], err))) goto done;
        }
        sum_skipped += h->skipped;
    }
    table_finish(&b, t);
    *skipped = sum_skipped;
    goto done;
nomem:
    st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory gathering the interactions' rows",
                  b.t.path  ? b.t.path
                  : t->path ? t->path
                            : "the interactions");
done:
    if (st) table_abort(&b);
    for (uint32_t c = 0; map && c < nc; c++) free(map[c]);
    free(map);
    free(codes);
    free(heads);
    free(bytes);
    free(blob);
    free(all);
    return st;
}

MtrStatus table_keep_local(const MtrDist *d, MtrTable *t, uint64_t *skipped, MtrError *err)
{
    if (!d || d->size <= 1) return MTR_OK;
    PartHead mine = {.n_rows = t->n_rows, .skipped = *skipped, .n_columns = t->n_columns, .pad = 0};
    PartHead *heads = calloc((size_t)d->size, sizeof *heads);
    if (!heads) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", t->path);
    d->allgather(d->ctx, &mine, sizeof mine, heads);
    uint64_t rows = 0, sum_skipped = 0;
    MtrStatus st = MTR_OK;
    for (int r = 0; r < d->size && !st; r++) {
        if (heads[r].n_columns != t->n_columns)
            st = mtr_fail(err, MTR_E_DATA, "%s: rank %d read %u columns, rank %d read %u", t->path,
                          r, heads[r].n_columns, d->rank, t->n_columns);
        rows += heads[r].n_rows;
        sum_skipped += heads[r].skipped;
    }
    free(heads);
    if (!st && rows == 0) st = mtr_fail(err, MTR_E_DATA, "%s: no records", t->path);
    if (!st && rows >= UINT32_MAX) st = mtr_fail(err, MTR_E_DATA, "%s: too many rows", t->path);
    if (!st) *skipped = sum_skipped;
    return st;
}

MtrStatus mtr_data_gather(const MtrDist *d, MtrDataset *ds, uint64_t *skipped, MtrError *err)
{
    MtrStatus st = table_gather(d, &ds->ratings, skipped, err);
    if (st == MTR_OK) ds->rows_local = 0;
    return st;
}
