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
        /* Each ranking task's prediction: the tensor its eval program reports
         * has a twin in predict with the same name. */
        for (uint32_t t = 0; t < m->n_tasks; t++) {
            const MtrTask *task = &m->tasks[t];
            if (task->kind != MTR_TASK_RANKING) continue;
            const char *name = m->tensors[task->eval_tensor].name;
            const MtrProgram *prog = &m->programs[p];
            for (uint32_t l = 0; l < prog->n_lifetimes; l++) {
                int32_t tt = prog->lifetimes[l].tensor;
                if (strcmp(m->tensors[tt].name, name) == 0) {
                    fprintf(out, "%s\t%.6f\n", task->name, *(float *)mtr_session_tensor(o.s, tt));
                    break;
                }
            }
        }
    }
    bind_feeds_free(&feeds);
    one_free(&o);
    return rc;
}

MtrStatus mtr_run_recommend(const MtrModel *m, int n, const char *const *names,
                            const char *const *values, int k, FILE *out, MtrError *err)
{
    int p = mtr_model_find_program(m, "recommend");
    int pi = mtr_model_find_program(m, "embed_items");
    if (p < 0 || pi < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no retrieval task to recommend with");
    if (k <= 0 || (uint32_t)k > m->items.n)
        return mtr_fail(err, MTR_E_ARG, "-k must be between 1 and the %u items", m->items.n);
    OneRow o;
    ProgramFeeds feeds = {0}, item_feeds = {0};
    MtrStatus rc = one_row(m, p, n, names, values, k, &o, &feeds, err);
    if (rc == MTR_OK) rc = bind_feeds(m, pi, &item_feeds, err);
    if (rc == MTR_OK) {
        uint32_t row = 0;
        bind_feed(o.s, m, &item_feeds, &o.row, NULL, 0);
        mtr_session_run(o.s, pi, 1);
        bind_feed(o.s, m, &feeds, &o.row, &row, 1);
        mtr_session_run(o.s, p, 1);
        int32_t ti = mtr_model_find_tensor(m, "recommend.index");
        int32_t ts = mtr_model_find_tensor(m, "recommend.index_2");
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
