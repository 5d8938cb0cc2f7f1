/* Export of a trained model's final vectors, for an ANN index (mtrun MODEL
 * export DIR --vectors). In: a trained model and, optionally, a data folder
 * whose queries to embed. Out: .npy matrices of item and query vectors and a
 * TSV of the queries (npy.h lists the files). The vectors come from the
 * serving core (serve.h), so they are the ones recommend ranks with. */
#include "mtr/npy.h"

#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *path_for(const char *dir, const char *task, const char *suffix)
{
    size_t n = mtr_npy_file_stem(NULL, 0, task);
    size_t len = strlen(dir) + n + strlen(suffix) + 2;
    char *stem = malloc(n + 1), *p = malloc(len);
    if (stem && p) {
        mtr_npy_file_stem(stem, n + 1, task);
        snprintf(p, len, "%s/%s%s", dir, stem, suffix);
    } else {
        free(p);
        p = NULL;
    }
    free(stem);
    return p;
}

static MtrStatus write_matrix(const char *dir, const char *task, const char *suffix,
                              const float *data, int64_t rows, int64_t cols, MtrError *err)
{
    char *path = path_for(dir, task, suffix);
    if (!path) return mtr_fail(err, MTR_E_NOMEM, "export: no memory");
    const int64_t shape[2] = {rows, cols};
    MtrStatus st = mtr_npy_write(path, data, 2, shape, err);
    free(path);
    return st;
}

/* The query columns of the recommend program (the inputs that are not items). */
static MtrStatus query_columns(const MtrModel *m, const ServeOutputs *o, const char **names,
                               uint32_t *n, MtrError *err)
{
    ProgramFeeds f;
    MtrStatus st = bind_feeds(m, o->recommend, &f, err);
    if (st) return st;
    *n = 0;
    for (uint32_t i = 0; i < f.n; i++)
        if (f.feeds[i].kind != FEED_ITEMS) names[(*n)++] = m->columns[f.feeds[i].column].name;
    bind_feeds_free(&f);
    return MTR_OK;
}

/* The distinct combinations of the query columns in the data's interactions,
 * in first-seen order, as a table. */
static MtrStatus data_queries(const MtrModel *m, const char *data_dir, const char **names,
                              uint32_t n_cols, MtrTable *out, MtrError *err)
{
    const char **item_cols = bind_item_columns(m);
    if (!item_cols) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    MtrDataOptions dopt = {.item_columns = item_cols};
    MtrDataset *ds = NULL;
    MtrStatus st = mtr_data_open(data_dir, &dopt, &ds, err);
    free(item_cols);
    if (st) return st;
    const MtrTable *t = &ds->ratings;
    const MtrDataColumn **cols = calloc(n_cols + 1, sizeof *cols);
    const char **values = calloc((size_t)t->n_rows * n_cols + 1, sizeof *values);
    uint64_t n_rows = 0;
    if (!cols || !values) st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t c = 0; st == MTR_OK && c < n_cols; c++)
        if (!(cols[c] = mtr_table_column(t, names[c])))
            st = mtr_fail(err, MTR_E_DATA, "%s: no column '%s' (the model's query input)", t->path,
                          names[c]);
    if (st == MTR_OK && n_cols == 1) {
        /* One column: its distinct values, already in first-seen order. */
        for (uint32_t v = 0; v < cols[0]->n_values; v++) values[n_rows++] = cols[0]->values[v];
    } else if (st == MTR_OK) {
        /* Several: a row is new when its codes differ from every earlier row's;
         * the first column's code narrows the search to rows that share it. */
        uint64_t *first = malloc((cols[0]->n_values + 1) * sizeof *first);
        uint64_t *next = malloc((t->n_rows + 1) * sizeof *next);
        if (!first || !next) st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        for (uint32_t v = 0; st == MTR_OK && v < cols[0]->n_values; v++) first[v] = UINT64_MAX;
        for (uint64_t r = 0; st == MTR_OK && r < t->n_rows; r++) {
            uint32_t c0 = cols[0]->codes[r];
            int dup = 0;
            for (uint64_t q = first[c0]; q != UINT64_MAX && !dup; q = next[q]) {
                dup = 1;
                for (uint32_t c = 1; c < n_cols && dup; c++)
                    dup = cols[c]->codes[q] == cols[c]->codes[r];
            }
            if (dup) continue;
            next[r] = first[c0];
            first[c0] = r;
            for (uint32_t c = 0; c < n_cols; c++)
                values[n_rows * n_cols + c] = cols[c]->values[cols[c]->codes[r]];
            n_rows++;
        }
        free(first), free(next);
    }
    if (st == MTR_OK) st = mtr_table_from_values(data_dir, n_cols, names, n_rows, values, out, err);
    free(cols), free(values);
    mtr_data_free(ds);
    return st;
}

/* queries.tsv: a header of the column names, then each query's values. */
static MtrStatus write_queries(const char *dir, const char *task, const MtrTable *t, MtrError *err)
{
    MtrStatus st = MTR_OK;
    uint64_t n = t->n_rows + 1;
    char **lines = calloc(n, sizeof *lines);
    if (!lines) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint64_t r = 0; r < n && st == MTR_OK; r++) {
        size_t len = 1;
        for (uint32_t c = 0; c < t->n_columns; c++) {
            const MtrDataColumn *col = &t->columns[c];
            const char *v = r == 0 ? col->name : col->values[col->codes[r - 1]];
            if (strpbrk(v, "\t\r\n"))
                st = mtr_fail(err, MTR_E_ARG, "export: %s '%s' holds a tab or a line break",
                              col->name, v);
            len += strlen(v) + 1;
        }
        if (st == MTR_OK && !(lines[r] = malloc(len)))
            st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        for (uint32_t c = 0, at = 0; st == MTR_OK && c < t->n_columns; c++) {
            const MtrDataColumn *col = &t->columns[c];
            const char *v = r == 0 ? col->name : col->values[col->codes[r - 1]];
            at += (uint32_t)snprintf(lines[r] + at, len - at, "%s%s", c ? "\t" : "", v);
        }
    }
    char *path = st == MTR_OK ? path_for(dir, task, ".queries.tsv") : NULL;
    if (st == MTR_OK && !path) st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    if (st == MTR_OK) st = mtr_text_write_lines(path, lines, (uint32_t)n, err);
    free(path);
    for (uint64_t r = 0; r < n; r++) free(lines[r]);
    free(lines);
    return st;
}

MtrStatus mtr_export_vectors(const MtrModel *m, const char *dir, const char *data_dir,
                             MtrError *err)
{
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "export: the model is not trained");
    ServeOutputs o;
    serve_outputs(m, &o);
    MtrStatus st = MTR_OK;
    for (uint32_t t = 0; t < m->n_tasks && t < SERVE_MAX_TASKS && st == MTR_OK; t++) {
        if (o.item_vectors[t] < 0) continue;
        int64_t dim;
        if ((st = serve_item_vectors(m, &o, (int)t, NULL, &dim, err))) break;
        float *v = malloc(((size_t)m->items.n * (size_t)dim + 1) * sizeof *v);
        if (!v) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        st = serve_item_vectors(m, &o, (int)t, v, &dim, err);
        if (st == MTR_OK)
            st = write_matrix(dir, m->tasks[t].name, ".item_vectors.npy", v, m->items.n, dim, err);
        free(v);
    }
    if (st || o.query < 0) return st;

    const char *names[SERVE_MAX_TASKS + 1];
    uint32_t n_cols = 0;
    if ((st = query_columns(m, &o, names, &n_cols, err)) || n_cols == 0 || n_cols > 64) return st;
    MtrTable q = {0};
    if (data_dir) {
        st = data_queries(m, data_dir, names, n_cols, &q, err);
    } else {
        /* No data: one looked-up query column's vocabulary will do. */
        int32_t c = mtr_model_find_column(m, names[0]);
        const MtrVocab *v = NULL;
        for (uint32_t i = 0; i < m->n_vocabs; i++)
            if (m->vocabs[i].column == c) v = &m->vocabs[i];
        if (n_cols != 1 || !v) return MTR_OK;
        st = mtr_table_from_values("vocabulary", 1, names, v->n, (const char *const *)v->words, &q,
                                   err);
    }
    int64_t dim = serve_width(m, o.query);
    float *out = st == MTR_OK ? malloc(((size_t)q.n_rows * (size_t)dim + 1) * sizeof *out) : NULL;
    if (st == MTR_OK && !out) st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    if (st == MTR_OK && q.n_rows == 0) st = mtr_fail(err, MTR_E_DATA, "export: no queries");
    if (st == MTR_OK) st = serve_query_vectors(m, &o, &q, 0, NULL, NULL, 256, out, err);
    const char *task = m->tasks[o.rec_task].name;
    if (st == MTR_OK)
        st = write_matrix(dir, task, ".query_vectors.npy", out, (int64_t)q.n_rows, dim, err);
    if (st == MTR_OK) st = write_queries(dir, task, &q, err);
    free(out);
    mtr_table_free(&q);
    return st;
}
