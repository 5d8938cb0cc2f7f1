/* Serving a trained model with no data folder: predict a ranking task's output
 * for one row, recommend the best items for one query. Vocabularies and items
 * come from the model file. */
#include "mtr/run.h"

#include "bind.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    MtrSession *s;
    Encoded row; /* one row: the given values */
    int32_t *ids;
    float *nums;
} OneRow;

static void one_free(OneRow *o)
{
    mtr_session_free(o->s);
    free(o->row.ids), free(o->row.nums), free(o->ids), free(o->nums);
    memset(o, 0, sizeof *o);
}

/* Encodes the given column values as one row, for the inputs program p reads. */
static MtrStatus one_row(const MtrModel *m, int p, int n, const char *const *names,
                         const char *const *values, int64_t k, OneRow *o, ProgramFeeds *feeds,
                         MtrError *err)
{
    memset(o, 0, sizeof *o);
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    MtrStatus rc = bind_feeds(m, p, feeds, err);
    if (rc) return rc;
    o->row.n_rows = 1;
    o->row.ids = calloc(m->n_columns + 1, sizeof *o->row.ids);
    o->row.nums = calloc(m->n_columns + 1, sizeof *o->row.nums);
    o->ids = calloc(m->n_columns + 1, sizeof *o->ids);
    o->nums = calloc(m->n_columns + 1, sizeof *o->nums);
    if (!o->row.ids || !o->row.nums || !o->ids || !o->nums)
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (mtr_model_find_column(m, names[i]) < 0)
            return mtr_fail(err, MTR_E_ARG, "the model has no input column '%s'", names[i]);
    for (uint32_t f = 0; f < feeds->n; f++) {
        const Feed *fd = &feeds->feeds[f];
        if (fd->kind == FEED_ITEMS) continue;
        const MtrColumn *col = &m->columns[fd->column];
        const char *value = NULL;
        for (int i = 0; i < n; i++)
            if (strcmp(names[i], col->name) == 0) value = values[i];
        if (!value)
            return mtr_fail(err, MTR_E_ARG, "a value for '%s' is needed (--input %s=VALUE)",
                            col->name, col->name);
        if (fd->kind == FEED_NUMS) {
            char *end;
            o->nums[fd->column] = strtof(value, &end);
            if (*value == '\0' || *end != '\0')
                return mtr_fail(err, MTR_E_ARG, "'%s' for '%s' is not a number", value, col->name);
            o->row.nums[fd->column] = &o->nums[fd->column];
            continue;
        }
        const MtrVocab *v = NULL;
        for (uint32_t j = 0; j < m->n_vocabs; j++)
            if (m->vocabs[j].column == fd->column) v = &m->vocabs[j];
        MtrVocabIndex *ix;
        if (!v) return mtr_fail(err, MTR_E_FORMAT, "no vocabulary for '%s'", col->name);
        if ((rc = mtr_vocab_index_new(v, &ix, err))) return rc;
        int32_t id = mtr_vocab_id(ix, value);
        mtr_vocab_index_free(ix);
        if (id <= 0)
            return mtr_fail(err, MTR_E_ARG,
                            "unknown %s '%s': it is not among the %u values the model was "
                            "trained on",
                            col->name, value, v->n);
        o->ids[fd->column] = id;
        o->row.ids[fd->column] = &o->ids[fd->column];
    }
    int64_t *sizes = calloc(m->n_symbols + 1, sizeof *sizes);
    if (!sizes) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    rc = bind_sizes(m, 1, k, sizes, err);
    /* Program p and, for recommend, the item embeddings it reads. */
    const char *const programs[] = {m->programs[p].name, "embed_items", NULL};
    if (rc == MTR_OK) rc = mtr_session_new_for(m, sizes, programs, &o->s, err);
    free(sizes);
    if (rc == MTR_OK) rc = mtr_session_load_params(o->s, m, err);
    return rc;
}

#define MAX_TASKS 64

/* Each ranking task's prediction in program p (predict): the tensor named as
 * the one its eval program reports. Fills pred and task (MAX_TASKS at most);
 * returns how many. */
static int predict_outputs(const MtrModel *m, int p, int32_t *pred, const char **task)
{
    const MtrProgram *prog = &m->programs[p];
    int n = 0;
    for (uint32_t t = 0; t < m->n_tasks && n < MAX_TASKS; t++) {
        if (m->tasks[t].kind != MTR_TASK_RANKING) continue;
        const char *name = m->tensors[m->tasks[t].eval_tensor].name;
        for (uint32_t l = 0; l < prog->n_lifetimes; l++)
            if (strcmp(m->tensors[prog->lifetimes[l].tensor].name, name) == 0) {
                pred[n] = prog->lifetimes[l].tensor;
                task[n++] = m->tasks[t].name;
                break;
            }
    }
    return n;
}

MtrStatus mtr_run_predict(const MtrModel *m, int n, const char *const *names,
                          const char *const *values, FILE *out, MtrError *err)
{
    int p = mtr_model_find_program(m, "predict");
    if (p < 0) return mtr_fail(err, MTR_E_STATE, "the model has no ranking task to predict with");
    OneRow o;
    ProgramFeeds feeds = {0};
    int64_t k = m->items.n < 10 ? m->items.n : 10;
    MtrStatus rc = one_row(m, p, n, names, values, k > 0 ? k : 1, &o, &feeds, err);
    if (rc == MTR_OK) {
        uint32_t row = 0;
        bind_feed(o.s, m, &feeds, &o.row, &row, 1);
        mtr_session_run(o.s, p, 1);
        int32_t pred[MAX_TASKS];
        const char *task[MAX_TASKS];
        int n_pred = predict_outputs(m, p, pred, task);
        for (int i = 0; i < n_pred; i++)
            fprintf(out, "%s\t%.6f\n", task[i], *(float *)mtr_session_tensor(o.s, pred[i]));
    }
    bind_feeds_free(&feeds);
    one_free(&o);
    return rc;
}

/* The programs recommend runs, and a check of k against the items. */
static MtrStatus recommend_programs(const MtrModel *m, int k, int *p, int *pi, MtrError *err)
{
    *p = mtr_model_find_program(m, "recommend");
    *pi = mtr_model_find_program(m, "embed_items");
    if (*p < 0 || *pi < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no retrieval task to recommend with");
    if (k <= 0 || (uint32_t)k > m->items.n)
        return mtr_fail(err, MTR_E_ARG, "-k must be between 1 and the %u items", m->items.n);
    return MTR_OK;
}

/* Whether tensor t is a (batch, k) output of dtype written by program p. */
static int topk_output(const MtrModel *m, int p, int32_t t, uint8_t dtype)
{
    int b = mtr_model_find_symbol(m, "batch"), k = mtr_model_find_symbol(m, "k");
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

/* The recommend program's outputs: the k best item ids and their scores per
 * query, each (batch, k). A model.bin can be valid and still lack them (it
 * was edited); that is an error, not a read out of bounds. The one place that
 * finds them, to switch to typed program outputs. */
static MtrStatus recommend_outputs(const MtrModel *m, int p, int32_t *ti, int32_t *ts,
                                   MtrError *err)
{
    *ti = mtr_model_find_tensor(m, "recommend.index");
    *ts = mtr_model_find_tensor(m, "recommend.index_2");
    if (!topk_output(m, p, *ti, MTR_DT_I32) || !topk_output(m, p, *ts, MTR_DT_F32))
        return mtr_fail(err, MTR_E_FORMAT,
                        "the model's recommend program does not produce the (batch, k) item ids "
                        "and scores 'recommend.index' and 'recommend.index_2'");
    return MTR_OK;
}

MtrStatus mtr_run_recommend(const MtrModel *m, int n, const char *const *names,
                            const char *const *values, int k, FILE *out, MtrError *err)
{
    int p, pi;
    MtrStatus rc = recommend_programs(m, k, &p, &pi, err);
    if (rc) return rc;
    int32_t ti, ts;
    if ((rc = recommend_outputs(m, p, &ti, &ts, err))) return rc;
    OneRow o;
    ProgramFeeds feeds = {0}, item_feeds = {0};
    rc = one_row(m, p, n, names, values, k, &o, &feeds, err);
    if (rc == MTR_OK) rc = bind_feeds(m, pi, &item_feeds, err);
    if (rc == MTR_OK) {
        uint32_t row = 0;
        bind_feed(o.s, m, &item_feeds, &o.row, NULL, 0);
        mtr_session_run(o.s, pi, 1);
        bind_feed(o.s, m, &feeds, &o.row, &row, 1);
        mtr_session_run(o.s, p, 1);
        const int32_t *idx = mtr_session_tensor(o.s, ti);
        const float *score = mtr_session_tensor(o.s, ts);
        for (int i = 0; i < k; i++)
            fprintf(out, "%d\t%.4f\t%s\n", i + 1, score[i],
                    idx[i] >= 0 && (uint32_t)idx[i] < m->items.n ? m->items.labels[idx[i]] : "?");
    }
    bind_feeds_free(&feeds);
    bind_feeds_free(&item_feeds);
    one_free(&o);
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

/* What serving a file needs: its rows encoded for program p, and a session
 * bound for batches of up to `batch` rows. */
typedef struct {
    MtrTable t;
    Encoded e;
    ProgramFeeds feeds;
    MtrSession *s;
    uint32_t *rows;
    int64_t batch;
} FileRun;

static void file_free(const MtrModel *m, FileRun *f)
{
    mtr_session_free(f->s);
    bind_encoded_free(m, &f->e);
    bind_feeds_free(&f->feeds);
    mtr_table_free(&f->t);
    free(f->rows);
    memset(f, 0, sizeof *f);
}

static MtrStatus file_open(const MtrModel *m, int p, const char *path, int64_t most, int64_t k,
                           FileRun *f, MtrError *err)
{
    memset(f, 0, sizeof *f);
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    MtrStatus rc = bind_feeds(m, p, &f->feeds, err);
    if (rc == MTR_OK) rc = read_rows(path, &f->t, err);
    if (rc == MTR_OK) rc = bind_encode(m, &f->t, &f->feeds, &f->e, err);
    if (rc) return rc;
    f->batch = (int64_t)f->t.n_rows < most ? (int64_t)f->t.n_rows : most;
    if (!(f->rows = malloc(f->t.n_rows * sizeof *f->rows)))
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint64_t r = 0; r < f->t.n_rows; r++) f->rows[r] = (uint32_t)r;
    int64_t *sizes = calloc(m->n_symbols + 1, sizeof *sizes);
    if (!sizes) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    rc = bind_sizes(m, f->batch, k, sizes, err);
    const char *const programs[] = {m->programs[p].name, "embed_items", NULL};
    if (rc == MTR_OK) rc = mtr_session_new_for(m, sizes, programs, &f->s, err);
    free(sizes);
    if (rc == MTR_OK) rc = mtr_session_load_params(f->s, m, err);
    return rc;
}

/* Writes row r's values of the columns the program reads, each followed by a comma. */
static void put_inputs(FILE *out, const MtrModel *m, const FileRun *f, uint64_t r)
{
    for (uint32_t i = 0; i < f->feeds.n; i++) {
        if (f->feeds.feeds[i].kind == FEED_ITEMS) continue;
        const MtrDataColumn *c = mtr_table_column(&f->t, m->columns[f->feeds.feeds[i].column].name);
        put_field(out, c->values[c->codes[r]]);
        fputc(',', out);
    }
}

static void put_input_names(FILE *out, const MtrModel *m, const FileRun *f)
{
    for (uint32_t i = 0; i < f->feeds.n; i++) {
        if (f->feeds.feeds[i].kind == FEED_ITEMS) continue;
        put_field(out, m->columns[f->feeds.feeds[i].column].name);
        fputc(',', out);
    }
}

MtrStatus mtr_run_predict_file(const MtrModel *m, const char *path, FILE *out, uint64_t *oov,
                               MtrError *err)
{
    int p = mtr_model_find_program(m, "predict");
    if (p < 0) return mtr_fail(err, MTR_E_STATE, "the model has no ranking task to predict with");
    FileRun f;
    MtrStatus rc = file_open(m, p, path, 4096, 1, &f, err);
    int32_t pred[MAX_TASKS];
    const char *task_name[MAX_TASKS];
    int n_pred = rc == MTR_OK ? predict_outputs(m, p, pred, task_name) : 0;
    if (rc == MTR_OK) {
        if (oov) *oov = f.e.oov;
        put_input_names(out, m, &f);
        for (int i = 0; i < n_pred; i++) {
            put_field(out, task_name[i]);
            fputc(i + 1 < n_pred ? ',' : '\n', out);
        }
        for (int64_t off = 0; off < (int64_t)f.t.n_rows; off += f.batch) {
            int64_t n = (int64_t)f.t.n_rows - off < f.batch ? (int64_t)f.t.n_rows - off : f.batch;
            bind_feed(f.s, m, &f.feeds, &f.e, f.rows + off, n);
            mtr_session_run(f.s, p, n);
            for (int64_t r = 0; r < n; r++) {
                put_inputs(out, m, &f, (uint64_t)(off + r));
                for (int i = 0; i < n_pred; i++)
                    fprintf(out, "%.6f%c", ((const float *)mtr_session_tensor(f.s, pred[i]))[r],
                            i + 1 < n_pred ? ',' : '\n');
            }
        }
    }
    file_free(m, &f);
    return rc;
}

MtrStatus mtr_run_recommend_file(const MtrModel *m, const char *path, int k, FILE *out,
                                 uint64_t *oov, MtrError *err)
{
    int p, pi;
    MtrStatus rc = recommend_programs(m, k, &p, &pi, err);
    if (rc) return rc;
    int32_t ti, ts;
    if ((rc = recommend_outputs(m, p, &ti, &ts, err))) return rc;
    FileRun f;
    ProgramFeeds item_feeds = {0};
    /* A (batch, items) score block per batch: 256 queries at a time. */
    rc = file_open(m, p, path, 256, k, &f, err);
    if (rc == MTR_OK) rc = bind_feeds(m, pi, &item_feeds, err);
    if (rc == MTR_OK) {
        if (oov) *oov = f.e.oov;
        bind_feed(f.s, m, &item_feeds, &f.e, NULL, 0);
        mtr_session_run(f.s, pi, 1);
        put_input_names(out, m, &f);
        fputs("rank,item,score\n", out);
        for (int64_t off = 0; off < (int64_t)f.t.n_rows; off += f.batch) {
            int64_t n = (int64_t)f.t.n_rows - off < f.batch ? (int64_t)f.t.n_rows - off : f.batch;
            bind_feed(f.s, m, &f.feeds, &f.e, f.rows + off, n);
            mtr_session_run(f.s, p, n);
            const int32_t *idx = mtr_session_tensor(f.s, ti);
            const float *score = mtr_session_tensor(f.s, ts);
            for (int64_t r = 0; r < n; r++)
                for (int i = 0; i < k; i++) {
                    int32_t it = idx[r * k + i];
                    put_inputs(out, m, &f, (uint64_t)(off + r));
                    fprintf(out, "%d,", i + 1);
                    put_field(out,
                              it >= 0 && (uint32_t)it < m->items.n ? m->items.labels[it] : "?");
                    fprintf(out, ",%.4f\n", score[r * k + i]);
                }
        }
    }
    bind_feeds_free(&item_feeds);
    file_free(m, &f);
    return rc;
}
