/* Serving a trained model with no data folder: predict a ranking task's output
 * for one row, recommend the best items for one query. Vocabularies and items
 * come from the model file. */
#include "mtr/run.h"

#include "data/internal.h"
#include "serve.h"
#include "sides.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

/* ---- where the serving programs and outputs are (see serve.h) */

/* Whether tensor t is a (batch, k) output of dtype written by program p. */
static int topk_output(const MtrModel *m, int p, int32_t t, uint8_t dtype)
{
    int b = mtr_model_symbol(m, MTR_SYM_BATCH, -1), k = mtr_model_symbol(m, MTR_SYM_K, -1);
    if (t < 0 || b < 0 || k < 0) return 0;
    const MtrTensor *x = &m->tensors[t];
    if (x->dtype != dtype || x->rank != 2 || x->dim[0].sym != b || x->dim[0].k != 1 ||
        x->dim[1].sym != k || x->dim[1].k != 1)
        return 0;
    const MtrProgram *pr = &m->programs[p];
    for (uint32_t o = 0; o < pr->n_ops; o++)
        for (uint8_t j = 0; j < op_info(pr->ops[o].kind)->n_out; j++)
            if (pr->ops[o].out[j] == t) return 1;
    return 0;
}

/* The op of program p that writes tensor t, or -1. */
static int writer(const MtrModel *m, int p, int32_t t)
{
    const MtrProgram *prog = &m->programs[p];
    for (uint32_t i = 0; i < prog->n_ops; i++)
        for (int k = 0; k < op_info(prog->ops[i].kind)->n_out; k++)
            if (prog->ops[i].out[k] == t) return (int)i;
    return -1;
}

void serve_outputs(const MtrModel *m, ServeOutputs *o)
{
    serve_outputs_for(m, -1, o);
}

void serve_outputs_for(const MtrModel *m, int32_t task, ServeOutputs *o)
{
    memset(o, 0, sizeof *o);
    o->predict = mtr_model_program(m, MTR_PROG_PREDICT);
    o->recommend = mtr_model_program(m, MTR_PROG_RECOMMEND);
    o->embed_items = mtr_model_program(m, MTR_PROG_EMBED_ITEMS);
    o->rec_task = o->index = o->score = o->query = -1;
    for (uint32_t t = 0; t < m->n_tasks && t < SERVE_MAX_TASKS; t++) {
        int32_t pred = mtr_program_output(m, o->predict, MTR_OUT_PREDICTION, (int32_t)t);
        if (pred >= 0 && o->n_pred < SERVE_MAX_TASKS) {
            o->pred[o->n_pred] = pred;
            o->pred_task[o->n_pred++] = (int32_t)t;
        }
        o->item_vectors[t] =
            mtr_program_output(m, o->embed_items, MTR_OUT_ITEM_VECTORS, (int32_t)t);
    }
    if (o->recommend < 0) return;
    const MtrProgram *rec = &m->programs[o->recommend];
    /* The first task's top k, or that of the task asked for. */
    for (uint32_t i = 0; i < rec->n_outputs && o->index < 0; i++) {
        const MtrOutput *out = &rec->outputs[i];
        if (out->role == MTR_OUT_TOP_INDEX && (task < 0 || out->task == task))
            o->index = out->tensor, o->rec_task = out->task;
    }
    for (uint32_t i = 0; i < rec->n_outputs && o->score < 0; i++) {
        const MtrOutput *out = &rec->outputs[i];
        if (out->role == MTR_OUT_TOP_SCORE && out->task == o->rec_task) o->score = out->tensor;
    }
    /* A model.bin can be valid and still lack them (it was edited): then
     * recommend is refused, never read out of bounds. */
    if (!topk_output(m, o->recommend, o->index, MTR_DT_I32) ||
        !topk_output(m, o->recommend, o->score, MTR_DT_F32))
        o->index = o->score = -1;
    /* The query vectors: the first input of the product that top k ranks. */
    int w = writer(m, o->recommend, o->index);
    int sc = w >= 0 ? writer(m, o->recommend, rec->ops[w].in[0]) : -1;
    int q = sc >= 0 ? writer(m, o->recommend, rec->ops[sc].in[0]) : -1;
    if (q >= 0) {
        o->query = rec->ops[sc].in[0];
        o->query_ops = (uint32_t)q + 1;
    }
}

MtrStatus serve_check_recommend(const MtrModel *m, const ServeOutputs *o, int64_t k, MtrError *err)
{
    if (o->recommend < 0 || o->embed_items < 0 || o->index < 0 || o->score < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no retrieval task to recommend with");
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    if (k <= 0 || (uint64_t)k > m->items.n)
        return mtr_fail(err, MTR_E_ARG, "-k must be between 1 and the %u items", m->items.n);
    return MTR_OK;
}

int64_t serve_width(const MtrModel *m, int32_t t)
{
    const MtrTensor *ten = &m->tensors[t];
    if (ten->rank == 0) return 1;
    const MtrDim *d = &ten->dim[ten->rank - 1];
    return d->sym < 0 ? d->k : d->k * (m->symbol_values ? m->symbol_values[d->sym] : 0);
}

/* ---- running a table of rows */

/* The first row whose looked-up value the vocabulary lacks, as an error. */
static MtrStatus unknown_value(const MtrModel *m, const ServeRun *r, MtrError *err)
{
    /* With features beside the ids, an unknown id is a cold start: its
     * out-of-vocabulary row plus the features given (words or values the
     * vocabularies lack read as out of vocabulary too). */
    for (uint32_t i = 0; i < r->feeds.n; i++)
        if (m->columns[r->feeds.feeds[i].column].feature) return MTR_OK;
    for (uint32_t i = 0; i < r->feeds.n; i++) {
        const Feed *fd = &r->feeds.feeds[i];
        if (fd->kind != FEED_IDS) continue;
        const MtrColumn *col = &m->columns[fd->column];
        const MtrDataColumn *c = mtr_table_column(r->t, col->name);
        uint32_t n_words = 0;
        for (uint32_t v = 0; v < m->n_vocabs; v++)
            if (m->vocabs[v].column == fd->column) n_words = m->vocabs[v].n;
        for (uint64_t row = 0; row < r->t->n_rows; row++) {
            if (r->e.ids[fd->column][row] != 0) continue;
            char where[64] = "";
            if (r->t->n_rows > 1)
                snprintf(where, sizeof where, "row %llu: ", (unsigned long long)row + 1);
            return mtr_fail(err, MTR_E_ARG,
                            "%sunknown %s '%s': it is not among the %u values the model was "
                            "trained on",
                            where, col->name, c->values[c->codes[row]], n_words);
        }
    }
    return MTR_OK;
}

MtrStatus serve_session(const MtrModel *m, const ServeOutputs *o, int p, int64_t batch, int64_t k,
                        MtrSession **s, MtrError *err)
{
    *s = NULL;
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    int64_t *sizes = calloc(m->n_symbols + 1, sizeof *sizes);
    if (!sizes) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    MtrStatus rc = bind_sizes(m, batch, k, sizes, err);
    /* Program p and, for recommend, the item vectors it reads. */
    int items = p == o->recommend && o->embed_items >= 0;
    const MtrProgramKind programs[] = {m->programs[p].kind,
                                       items ? m->programs[o->embed_items].kind : 0, 0};
    if (rc == MTR_OK) rc = mtr_session_new_for(m, sizes, programs, s, err);
    free(sizes);
    if (rc == MTR_OK) rc = mtr_session_load_params(*s, m, err);
    if (rc == MTR_OK && items) {
        ProgramFeeds item_feeds;
        Encoded none = {0}; /* item feeds read the model's items, no rows */
        if ((rc = bind_feeds(m, o->embed_items, &item_feeds, err)) == MTR_OK) {
            bind_feed(*s, m, &item_feeds, &none, NULL, 0);
            mtr_session_run(*s, o->embed_items, 1);
            bind_feeds_free(&item_feeds);
        }
    }
    if (rc) {
        mtr_session_free(*s);
        *s = NULL;
    }
    return rc;
}

/* An error naming the first data column the program reads that t lacks. */
static MtrStatus needed_columns(const MtrModel *m, const ProgramFeeds *feeds, const MtrTable *t,
                                MtrError *err)
{
    for (uint32_t f = 0; f < feeds->n; f++) {
        const MtrColumn *col = &m->columns[feeds->feeds[f].column];
        /* a feature is computed from its data column, which is what is given */
        const char *need = col->feature ? m->columns[col->feature_of].name : col->name;
        if (feeds->feeds[f].kind != FEED_ITEMS && !mtr_table_column(t, need))
            return mtr_fail(err, MTR_E_DATA,
                            "a value for '%s' is needed: the rows have no column '%s' and the "
                            "model does not hold it for them (--input %s=VALUE, or a column of "
                            "--file)",
                            need, need, need);
    }
    return MTR_OK;
}

MtrStatus serve_bind(const MtrModel *m, int p, const MtrTable *t, int64_t batch, unsigned flags,
                     MtrVocabIndex *const *ixs, MtrSession *s, ServeRun *r, MtrError *err)
{
    memset(r, 0, sizeof *r);
    r->t = t;
    r->p = p;
    r->s = s;
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    if (t->n_rows == 0) return mtr_fail(err, MTR_E_ARG, "%s: no rows", t->path);
    MtrStatus rc = bind_feeds(m, p, &r->feeds, err);
    /* a copy only when the model holds features to fill in */
    if (rc == MTR_OK && m->n_sides) {
        rc = sides_fill(m, t, (flags & SERVE_STRICT) != 0, &r->filled, err);
        t = &r->filled;
    }
    r->t = t;
    if (rc == MTR_OK) rc = needed_columns(m, &r->feeds, t, err);
    if (rc == MTR_OK) rc = bind_encode_ix(m, t, &r->feeds, ixs, &r->e, err);
    if (rc == MTR_OK && (flags & SERVE_STRICT) && r->e.oov) rc = unknown_value(m, r, err);
    if (rc) return rc;
    r->batch = (int64_t)t->n_rows < batch ? (int64_t)t->n_rows : batch;
    if (!(r->rows = malloc(t->n_rows * sizeof *r->rows)))
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < t->n_rows; i++) r->rows[i] = (uint32_t)i;
    return MTR_OK;
}

MtrStatus serve_open(const MtrModel *m, const ServeOutputs *o, int p, const MtrTable *t,
                     int64_t most, int64_t k, unsigned flags, ServeRun *r, MtrError *err)
{
    MtrStatus rc = serve_bind(m, p, t, most, flags, NULL, NULL, r, err);
    if (rc == MTR_OK) rc = serve_session(m, o, p, r->batch, k, &r->s, err);
    r->own_session = 1;
    return rc;
}

void serve_run(const MtrModel *m, ServeRun *r, int64_t off, int64_t n, uint32_t n_ops)
{
    bind_feed(r->s, m, &r->feeds, &r->e, r->rows + off, n);
    mtr_session_run_ops(r->s, r->p, n, n_ops);
}

void serve_close(const MtrModel *m, ServeRun *r)
{
    if (r->own_session) mtr_session_free(r->s);
    bind_encoded_free(m, &r->e);
    bind_feeds_free(&r->feeds);
    mtr_table_free(&r->filled);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

MtrStatus serve_item_vectors(const MtrModel *m, const ServeOutputs *o, int task, float *out,
                             int64_t *dim, MtrError *err)
{
    if (task < 0 || (uint32_t)task >= m->n_tasks || task >= SERVE_MAX_TASKS ||
        o->item_vectors[task] < 0 || o->embed_items < 0)
        return mtr_fail(err, MTR_E_ARG,
                        "task '%s' has no item vectors (it is not a retrieval task)",
                        task >= 0 && (uint32_t)task < m->n_tasks ? m->tasks[task].name : "?");
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    int32_t v = o->item_vectors[task];
    *dim = serve_width(m, v);
    if (!out) return MTR_OK;
    ProgramFeeds feeds;
    MtrSession *s = NULL;
    Encoded none = {0};
    int64_t *sizes = calloc(m->n_symbols + 1, sizeof *sizes);
    if (!sizes) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    MtrStatus rc = bind_sizes(m, 1, 1, sizes, err);
    const MtrProgramKind programs[] = {MTR_PROG_EMBED_ITEMS, 0};
    if (rc == MTR_OK) rc = mtr_session_new_for(m, sizes, programs, &s, err);
    free(sizes);
    if (rc == MTR_OK) rc = mtr_session_load_params(s, m, err);
    if (rc == MTR_OK && (rc = bind_feeds(m, o->embed_items, &feeds, err)) == MTR_OK) {
        bind_feed(s, m, &feeds, &none, NULL, 0);
        mtr_session_run(s, o->embed_items, 1);
        memcpy(out, mtr_session_tensor(s, v), (size_t)m->items.n * (size_t)*dim * sizeof *out);
        bind_feeds_free(&feeds);
    }
    mtr_session_free(s);
    return rc;
}

MtrStatus serve_query_vectors(const MtrModel *m, const ServeOutputs *o, const MtrTable *t,
                              unsigned flags, MtrVocabIndex *const *ixs, MtrSession *s,
                              int64_t batch, float *out, MtrError *err)
{
    if (o->query < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no retrieval task to recommend with");
    ServeRun r;
    int64_t dim = serve_width(m, o->query);
    MtrStatus rc = s ? serve_bind(m, o->recommend, t, batch, flags, ixs, s, &r, err)
                     : serve_open(m, o, o->recommend, t, batch, 1, flags, &r, err);
    for (int64_t off = 0; rc == MTR_OK && off < (int64_t)t->n_rows; off += r.batch) {
        int64_t n = (int64_t)t->n_rows - off < r.batch ? (int64_t)t->n_rows - off : r.batch;
        serve_run(m, &r, off, n, o->query_ops);
        memcpy(out + off * dim, mtr_session_tensor(r.s, o->query), (size_t)(n * dim) * sizeof *out);
    }
    serve_close(m, &r);
    return rc;
}

/* ---- mtrun's serve commands: one row from the command line */

/* One row from the command line's names and values, strictly encoded. */
static MtrStatus one_row(const MtrModel *m, const ServeOutputs *o, int p, int n,
                         const char *const *names, const char *const *values, int64_t k,
                         MtrTable *t, ServeRun *r, MtrError *err)
{
    memset(t, 0, sizeof *t);
    memset(r, 0, sizeof *r);
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    for (int i = 0; i < n; i++)
        if (mtr_model_find_column(m, names[i]) < 0)
            return mtr_fail(err, MTR_E_ARG, "the model has no input column '%s'", names[i]);
    MtrStatus rc = mtr_table_from_values("the command line", (uint32_t)n, names, 1, values, t, err);
    if (rc == MTR_OK) rc = serve_open(m, o, p, t, 1, k, SERVE_STRICT, r, err);
    return rc;
}

MtrStatus mtr_run_predict(const MtrModel *m, int n, const char *const *names,
                          const char *const *values, FILE *out, MtrError *err)
{
    ServeOutputs o;
    serve_outputs(m, &o);
    if (o.predict < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no ranking task to predict with");
    MtrTable t;
    ServeRun r;
    MtrStatus rc = one_row(m, &o, o.predict, n, names, values, 1, &t, &r, err);
    if (rc == MTR_OK) {
        serve_run(m, &r, 0, 1, m->programs[o.predict].n_ops);
        for (int i = 0; i < o.n_pred; i++)
            fprintf(out, "%s\t%.6f\n", m->tasks[o.pred_task[i]].name,
                    *(float *)mtr_session_tensor(r.s, o.pred[i]));
    }
    serve_close(m, &r);
    mtr_table_free(&t);
    return rc;
}

MtrStatus mtr_run_recommend(const MtrModel *m, int n, const char *const *names,
                            const char *const *values, int k, FILE *out, MtrError *err)
{
    return mtr_run_recommend_with(m, n, names, values, k, -1, NULL, out, err);
}

/* ---- distinct labels (see serve.h) */

MtrStatus serve_labels(const MtrModel *m, ServeLabels *l, MtrError *err)
{
    l->repeats = 0;
    l->first = malloc((m->items.n ? m->items.n : 1) * sizeof *l->first);
    if (!l->first) return mtr_fail(err, MTR_E_NOMEM, "out of memory indexing the item labels");
    StrHash seen = {0};
    MtrStatus rc = MTR_OK;
    for (uint32_t i = 0; i < m->items.n && rc == MTR_OK; i++) {
        const char *label = m->items.labels[i];
        uint32_t hv = hash_string(label, strlen(label));
        uint32_t at = hash_find(&seen, m->items.labels, label, hv);
        l->first[i] = at == HASH_NONE ? i : at;
        l->repeats += at != HASH_NONE;
        if (at == HASH_NONE) rc = hash_insert(&seen, hv, i, err);
    }
    hash_free(&seen);
    if (rc) serve_labels_free(l);
    return rc;
}

void serve_labels_free(ServeLabels *l)
{
    free(l->first);
    l->first = NULL;
}

int64_t serve_rank_depth(const ServeLabels *l, uint32_t n_items, int64_t k, uint64_t n_excluded)
{
    uint64_t depth = (uint64_t)k + n_excluded + l->repeats;
    return depth < n_items ? (int64_t)depth : (int64_t)n_items;
}

int serve_distinct_items(const MtrModel *m, const ServeLabels *l, const int32_t *idx, int64_t kb,
                         int k, const uint8_t *exclude, int32_t *out)
{
    int got = 0;
    for (int64_t i = 0; i < kb && got < k; i++) {
        int32_t it = idx[i];
        if (it < 0 || (uint32_t)it >= m->items.n || (exclude && exclude[it])) continue;
        int dup = 0;
        for (int j = 0; j < got && !dup; j++) dup = l->first[idx[out[j]]] == l->first[it];
        if (!dup) out[got++] = (int32_t)i;
    }
    return got;
}

MtrStatus mtr_run_recommend_with(const MtrModel *m, int n, const char *const *names,
                                 const char *const *values, int k, int32_t task,
                                 const uint8_t *exclude, FILE *out, MtrError *err)
{
    ServeOutputs o;
    serve_outputs_for(m, task, &o);
    MtrStatus rc = serve_check_recommend(m, &o, k, err);
    if (rc) return rc;
    MtrTable t;
    ServeRun r;
    ServeLabels labels;
    if ((rc = serve_labels(m, &labels, err))) return rc;
    uint64_t n_excluded = 0;
    for (uint32_t i = 0; exclude && i < m->items.n; i++) n_excluded += exclude[i] != 0;
    int64_t kb = serve_rank_depth(&labels, m->items.n, k, n_excluded);
    int32_t *pick = malloc((size_t)k * sizeof *pick);
    if (!pick) {
        serve_labels_free(&labels);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    rc = one_row(m, &o, o.recommend, n, names, values, kb, &t, &r, err);
    if (rc == MTR_OK) {
        serve_run(m, &r, 0, 1, m->programs[o.recommend].n_ops);
        const int32_t *idx = mtr_session_tensor(r.s, o.index);
        const float *score = mtr_session_tensor(r.s, o.score);
        int got = serve_distinct_items(m, &labels, idx, kb, k, exclude, pick);
        for (int i = 0; i < got; i++)
            fprintf(out, "%d\t%.4f\t%s\n", i + 1, score[pick[i]], m->items.labels[idx[pick[i]]]);
    }
    serve_labels_free(&labels);
    serve_close(m, &r);
    mtr_table_free(&t);
    free(pick);
    return rc;
}

/* ---- serving a file of rows: predict or recommend for each */

/* Writes one CSV field, quoted when it holds a comma, a quote or a line end. */
static void put_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* The rows of a CSV (or, by its name, TSV) file with a header. */
static MtrStatus read_rows(const char *path, MtrTable *t, MtrError *err)
{
    size_t n = strlen(path);
    MtrDataset ds;
    memset(&ds, 0, sizeof ds);
    ds.format = n > 4 && strcmp(path + n - 4, ".tsv") == 0 ? "tsv" : "csv";
    MtrStatus rc = mtr_data_read_interactions(path, &ds, NULL, t, NULL, err);
    if (rc == MTR_OK && t->n_rows == 0) rc = mtr_fail(err, MTR_E_DATA, "%s: no rows", path);
    return rc;
}

/* The data column that feed i of f reads (a feature's own data column), or
 * NULL when it is an item feed or an earlier feed reads it too. */
static const char *feed_name(const MtrModel *m, const ServeRun *f, uint32_t i)
{
    if (f->feeds.feeds[i].kind == FEED_ITEMS) return NULL;
    const MtrColumn *col = &m->columns[f->feeds.feeds[i].column];
    return col->feature ? m->columns[col->feature_of].name : col->name;
}

static const char *feed_column(const MtrModel *m, const ServeRun *f, uint32_t i)
{
    const char *name = feed_name(m, f, i);
    for (uint32_t j = 0; name && j < i; j++) {
        const char *other = feed_name(m, f, j);
        if (other && strcmp(other, name) == 0) return NULL;
    }
    return name;
}

/* Writes row r's values of the columns the program reads, each followed by a comma. */
static void put_inputs(FILE *out, const MtrModel *m, const ServeRun *f, uint64_t r)
{
    for (uint32_t i = 0; i < f->feeds.n; i++) {
        const char *name = feed_column(m, f, i);
        if (!name) continue;
        const MtrDataColumn *c = mtr_table_column(f->t, name);
        put_field(out, c->values[c->codes[r]]);
        fputc(',', out);
    }
}

static void put_input_names(FILE *out, const MtrModel *m, const ServeRun *f)
{
    for (uint32_t i = 0; i < f->feeds.n; i++) {
        const char *name = feed_column(m, f, i);
        if (!name) continue;
        put_field(out, name);
        fputc(',', out);
    }
}

MtrStatus mtr_run_predict_file(const MtrModel *m, const char *path, FILE *out, uint64_t *oov,
                               MtrError *err)
{
    ServeOutputs o;
    serve_outputs(m, &o);
    if (o.predict < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no ranking task to predict with");
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    MtrTable t = {0};
    ServeRun f = {0};
    MtrStatus rc = read_rows(path, &t, err);
    if (rc == MTR_OK) rc = serve_open(m, &o, o.predict, &t, 4096, 1, 0, &f, err);
    if (rc == MTR_OK) {
        if (oov) *oov = f.e.oov;
        put_input_names(out, m, &f);
        for (int i = 0; i < o.n_pred; i++) {
            put_field(out, m->tasks[o.pred_task[i]].name);
            fputc(i + 1 < o.n_pred ? ',' : '\n', out);
        }
        for (int64_t off = 0; off < (int64_t)t.n_rows; off += f.batch) {
            int64_t n = (int64_t)t.n_rows - off < f.batch ? (int64_t)t.n_rows - off : f.batch;
            serve_run(m, &f, off, n, m->programs[o.predict].n_ops);
            for (int64_t r = 0; r < n; r++) {
                put_inputs(out, m, &f, (uint64_t)(off + r));
                for (int i = 0; i < o.n_pred; i++)
                    fprintf(out, "%.6f%c", ((const float *)mtr_session_tensor(f.s, o.pred[i]))[r],
                            i + 1 < o.n_pred ? ',' : '\n');
            }
        }
    }
    serve_close(m, &f);
    mtr_table_free(&t);
    return rc;
}

MtrStatus mtr_run_recommend_file(const MtrModel *m, const char *path, int k, FILE *out,
                                 uint64_t *oov, MtrError *err)
{
    ServeOutputs o;
    serve_outputs(m, &o);
    MtrStatus rc = serve_check_recommend(m, &o, k, err);
    if (rc) return rc;
    MtrTable t = {0};
    ServeRun f = {0};
    /* A (batch, items) score block per batch: 256 queries at a time. */
    ServeLabels labels;
    if ((rc = serve_labels(m, &labels, err))) return rc;
    int64_t kb = serve_rank_depth(&labels, m->items.n, k, 0);
    int32_t *pick = malloc((size_t)k * sizeof *pick);
    if (!pick) rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    if (rc == MTR_OK) rc = read_rows(path, &t, err);
    if (rc == MTR_OK) rc = serve_open(m, &o, o.recommend, &t, 256, kb, 0, &f, err);
    if (rc == MTR_OK) {
        if (oov) *oov = f.e.oov;
        put_input_names(out, m, &f);
        fputs("rank,item,score\n", out);
        for (int64_t off = 0; off < (int64_t)t.n_rows; off += f.batch) {
            int64_t n = (int64_t)t.n_rows - off < f.batch ? (int64_t)t.n_rows - off : f.batch;
            serve_run(m, &f, off, n, m->programs[o.recommend].n_ops);
            const int32_t *idx = mtr_session_tensor(f.s, o.index);
            const float *score = mtr_session_tensor(f.s, o.score);
            for (int64_t r = 0; r < n; r++) {
                int got = serve_distinct_items(m, &labels, idx + r * kb, kb, k, NULL, pick);
                for (int i = 0; i < got; i++) {
                    put_inputs(out, m, &f, (uint64_t)(off + r));
                    fprintf(out, "%d,", i + 1);
                    put_field(out, m->items.labels[idx[r * kb + pick[i]]]);
                    fprintf(out, ",%.4f\n", score[r * kb + pick[i]]);
                }
            }
        }
    }
    serve_labels_free(&labels);
    serve_close(m, &f);
    mtr_table_free(&t);
    free(pick);
    return rc;
}
