/* The public C API (mtr.h): a thin layer over the serving core (serve.h). In:
 * a model.bin (file or memory) and rows as text. Out: numbers in the caller's
 * arrays. Each call that runs the model works in a session of its own, taken
 * from the handle's pool (or bound for it) and given back: the model stays
 * read-only, so several threads can serve from one handle at once. */
#include "mtr.h"

#include "mtr/knobs.h"
#include "serve.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A session kept for the next call: binding one (placing buffers, copying
 * the parameters, computing the item vectors) costs more than serving a row. */
typedef struct Pooled {
    MtrSession *s;
    int p;
    int64_t k;
    int busy;
    struct Pooled *next;
} Pooled;

struct Mtr {
    MtrModel *m;
    ServeOutputs o;
    int n_inputs;
    int32_t *inputs;      /* the columns that are not labels */
    MtrVocabIndex **ixs;  /* per column: its vocabulary's index, built once */
    pthread_mutex_t lock; /* guards pool: calls in several threads share it */
    Pooled *pool;
    ServeLabels labels; /* recommend lists each label once */
};

/* Rows are run at most this many at a time (bounds a call's memory). */
#define API_BATCH 256
/* Idle sessions kept at most (a call in use always has its own). */
#define API_IDLE 8

static void pool_clear(Mtr *h)
{
    for (Pooled *p = h->pool, *next; p; p = next) {
        next = p->next;
        mtr_session_free(p->s);
        free(p);
    }
    h->pool = NULL;
}

/* A session for program p and top k, idle in the pool or new; the caller
 * hands it back with pool_give. */
static MtrStatus pool_take(Mtr *h, int p, int64_t k, Pooled **out, MtrError *err)
{
    pthread_mutex_lock(&h->lock);
    for (Pooled *q = h->pool; q; q = q->next)
        if (!q->busy && q->p == p && q->k == k) {
            q->busy = 1;
            *out = q;
            pthread_mutex_unlock(&h->lock);
            return MTR_OK;
        }
    pthread_mutex_unlock(&h->lock);
    Pooled *q = calloc(1, sizeof *q);
    if (!q) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    MtrStatus rc = serve_session(h->m, &h->o, p, API_BATCH, k, &q->s, err);
    if (rc) {
        free(q);
        return rc;
    }
    q->p = p, q->k = k, q->busy = 1;
    pthread_mutex_lock(&h->lock);
    q->next = h->pool;
    h->pool = q;
    pthread_mutex_unlock(&h->lock);
    *out = q;
    return MTR_OK;
}

static void pool_give(Mtr *h, Pooled *q)
{
    pthread_mutex_lock(&h->lock);
    int idle = 0;
    for (Pooled *r = h->pool; r; r = r->next) idle += !r->busy;
    if (idle < API_IDLE) {
        q->busy = 0;
        q = NULL;
    } else {
        for (Pooled **r = &h->pool; *r; r = &(*r)->next)
            if (*r == q) {
                *r = q->next;
                break;
            }
    }
    pthread_mutex_unlock(&h->lock);
    if (q) {
        mtr_session_free(q->s);
        free(q);
    }
}

const char *mtr_version(void)
{
    return MTR_VERSION;
}

static MtrStatus wrap(MtrModel *model, Mtr **out, MtrError *err)
{
    Mtr *h = calloc(1, sizeof *h);
    if (h) h->inputs = calloc(model->n_columns + 1, sizeof *h->inputs);
    if (h) h->ixs = calloc(model->n_columns + 1, sizeof *h->ixs);
    if (!h || !h->inputs || !h->ixs || pthread_mutex_init(&h->lock, NULL) != 0) {
        if (h) free(h->inputs), free(h->ixs);
        free(h);
        mtr_model_free(model);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    h->m = model;
    for (uint32_t v = 0; v < model->n_vocabs; v++) {
        int32_t c = model->vocabs[v].column;
        MtrStatus rc = MTR_OK;
        if (c >= 0 && (uint32_t)c < model->n_columns && !h->ixs[c])
            rc = mtr_vocab_index_new(&model->vocabs[v], &h->ixs[c], err);
        if (rc) {
            mtr_close(h);
            return rc;
        }
    }
    serve_outputs(model, &h->o);
    MtrStatus rc = serve_labels(model, &h->labels, err);
    if (rc) {
        mtr_close(h);
        return rc;
    }
    for (uint32_t c = 0; c < model->n_columns; c++)
        if (!model->columns[c].is_label) h->inputs[h->n_inputs++] = (int32_t)c;
    *out = h;
    return MTR_OK;
}

MtrStatus mtr_open(const char *path, Mtr **out, MtrError *err)
{
    if (!path || !out) return mtr_fail(err, MTR_E_ARG, "mtr_open: path and out are needed");
    MtrModel *model;
    MtrStatus rc = mtr_model_read(path, &model, err);
    return rc ? rc : wrap(model, out, err);
}

MtrStatus mtr_open_buffer(const void *buf, size_t len, Mtr **out, MtrError *err)
{
    if (!buf || !out) return mtr_fail(err, MTR_E_ARG, "mtr_open_buffer: buf and out are needed");
    MtrModel *model;
    MtrStatus rc = mtr_model_decode(buf, len, "buffer", &model, err);
    return rc ? rc : wrap(model, out, err);
}

void mtr_close(Mtr *h)
{
    if (!h) return;
    pool_clear(h);
    pthread_mutex_destroy(&h->lock);
    for (uint32_t c = 0; h->ixs && c < h->m->n_columns; c++) mtr_vocab_index_free(h->ixs[c]);
    serve_labels_free(&h->labels);
    mtr_model_free(h->m);
    free(h->inputs);
    free(h->ixs);
    free(h);
}

const char *mtr_name(const Mtr *h)
{
    return h->m->name;
}

int mtr_trained(const Mtr *h)
{
    return h->m->trained != 0;
}

/* ---- listing */

static int task_ok(const Mtr *h, int t)
{
    return t >= 0 && (uint32_t)t < h->m->n_tasks && t < SERVE_MAX_TASKS;
}

int mtr_task_count(const Mtr *h)
{
    return h->m->n_tasks < SERVE_MAX_TASKS ? (int)h->m->n_tasks : SERVE_MAX_TASKS;
}

const char *mtr_task_name(const Mtr *h, int t)
{
    return task_ok(h, t) ? h->m->tasks[t].name : NULL;
}

int mtr_task_find(const Mtr *h, const char *name)
{
    for (int t = 0; name && t < mtr_task_count(h); t++)
        if (strcmp(h->m->tasks[t].name, name) == 0) return t;
    return -1;
}

unsigned mtr_task_flags(const Mtr *h, int t)
{
    if (!task_ok(h, t)) return 0;
    unsigned f = 0;
    for (int i = 0; i < h->o.n_pred; i++)
        if (h->o.pred_task[i] == t) f |= MTR_TASK_PREDICTS;
    if (h->o.item_vectors[t] >= 0 && h->o.embed_items >= 0) f |= MTR_TASK_VECTORS;
    if (t == h->o.rec_task && h->o.index >= 0 && h->o.query >= 0) f |= MTR_TASK_RECOMMENDS;
    return f;
}

int mtr_vector_dim(const Mtr *h, int t)
{
    if (!(mtr_task_flags(h, t) & MTR_TASK_VECTORS)) return 0;
    return (int)serve_width(h->m, h->o.item_vectors[t]);
}

int mtr_input_count(const Mtr *h)
{
    return h->n_inputs;
}

static const MtrColumn *input(const Mtr *h, int i)
{
    return i >= 0 && i < h->n_inputs ? &h->m->columns[h->inputs[i]] : NULL;
}

const char *mtr_input_name(const Mtr *h, int i)
{
    const MtrColumn *c = input(h, i);
    return c ? c->name : NULL;
}

int mtr_input_type(const Mtr *h, int i)
{
    const MtrColumn *c = input(h, i);
    switch (c ? c->type : 0) {
    case MTR_COL_STRING:
        return MTR_INPUT_STRING;
    case MTR_COL_INT:
        return MTR_INPUT_INT;
    case MTR_COL_FLOAT:
        return MTR_INPUT_FLOAT;
    default:
        return 0;
    }
}

int mtr_input_is_item(const Mtr *h, int i)
{
    const MtrColumn *c = input(h, i);
    return c ? c->is_item != 0 : 0;
}

int mtr_knob_count(const Mtr *h)
{
    return (int)h->m->n_knobs;
}

const char *mtr_knob_name(const Mtr *h, int k)
{
    return k >= 0 && (uint32_t)k < h->m->n_knobs ? h->m->knobs[k].name : NULL;
}

double mtr_knob_value(const Mtr *h, int k)
{
    return k >= 0 && (uint32_t)k < h->m->n_knobs ? h->m->knobs[k].value : NAN;
}

MtrStatus mtr_set_knob(Mtr *h, const char *name, double value, MtrError *err)
{
    char text[512];
    if (!name) return mtr_fail(err, MTR_E_ARG, "mtr_set_knob: no name");
    if (snprintf(text, sizeof text, "%s=%.17g", name, value) >= (int)sizeof text)
        return mtr_fail(err, MTR_E_ARG, "knob name too long");
    pool_clear(h);                           /* sessions copied the old values */
    return mtr_knob_assign(h->m, text, err); /* the checks of --set, in one place */
}

int64_t mtr_item_count(const Mtr *h)
{
    return h->m->items.n;
}

const char *mtr_item_label(const Mtr *h, int64_t i)
{
    return i >= 0 && (uint64_t)i < h->m->items.n ? h->m->items.labels[i] : NULL;
}

/* ---- running */

/* The rows as a table, after checking the arguments every run takes. */
static MtrStatus rows_table(const MtrRows *rows, const void *out, MtrTable *t, MtrError *err)
{
    memset(t, 0, sizeof *t);
    if (!rows || !out) return mtr_fail(err, MTR_E_ARG, "rows and an output array are needed");
    if (rows->n_rows == 0) return mtr_fail(err, MTR_E_ARG, "no rows");
    if (rows->n_columns <= 0 || !rows->columns || !rows->values)
        return mtr_fail(err, MTR_E_ARG, "rows need columns and values");
    for (int c = 0; c < rows->n_columns; c++)
        if (!rows->columns[c]) return mtr_fail(err, MTR_E_ARG, "column %d has no name", c);
    return mtr_table_from_values("rows", (uint32_t)rows->n_columns, rows->columns, rows->n_rows,
                                 rows->values, t, err);
}

static unsigned serve_flags(const MtrRows *rows)
{
    return rows->flags & MTR_ROWS_UNKNOWN_OK ? 0 : SERVE_STRICT;
}

MtrStatus mtr_predict(const Mtr *h, const MtrRows *rows, float *out, MtrError *err)
{
    const MtrModel *m = h->m;
    if (h->o.predict < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no ranking task to predict with");
    MtrTable t;
    ServeRun r = {0};
    Pooled *q = NULL;
    MtrStatus rc = rows_table(rows, out, &t, err);
    if (rc == MTR_OK) rc = pool_take((Mtr *)h, h->o.predict, 1, &q, err);
    if (rc == MTR_OK)
        rc = serve_bind(m, h->o.predict, &t, API_BATCH, serve_flags(rows), h->ixs, q->s, &r, err);
    if (rc == MTR_OK) {
        int n_tasks = mtr_task_count(h);
        for (size_t i = 0; i < rows->n_rows * (size_t)n_tasks; i++) out[i] = NAN;
        for (int64_t off = 0; off < (int64_t)t.n_rows; off += r.batch) {
            int64_t n = (int64_t)t.n_rows - off < r.batch ? (int64_t)t.n_rows - off : r.batch;
            serve_run(m, &r, off, n, m->programs[h->o.predict].n_ops);
            for (int i = 0; i < h->o.n_pred; i++) {
                const float *p = mtr_session_tensor(r.s, h->o.pred[i]);
                for (int64_t j = 0; j < n; j++) out[(off + j) * n_tasks + h->o.pred_task[i]] = p[j];
            }
        }
    }
    if (q) pool_give((Mtr *)h, q);
    serve_close(m, &r);
    mtr_table_free(&t);
    return rc;
}

/* The task a query-side call serves: -1 means recommend's, and only that one
 * can be served until recommend is compiled for every retrieval task. */
static MtrStatus query_task(const Mtr *h, int task, MtrError *err)
{
    if (h->o.rec_task < 0 || h->o.query < 0 || h->o.index < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no retrieval task to recommend with");
    if (!h->m->trained)
        return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    if (task == -1 || task == h->o.rec_task) return MTR_OK;
    if (!task_ok(h, task)) return mtr_fail(err, MTR_E_ARG, "no task %d", task);
    return mtr_fail(err, MTR_E_ARG,
                    "task '%s': only '%s' can be served (the model's recommend program serves "
                    "its first retrieval task)",
                    h->m->tasks[task].name, h->m->tasks[h->o.rec_task].name);
}

MtrStatus mtr_recommend(const Mtr *h, const MtrRows *rows, int k, const MtrRecommendOptions *opt,
                        int64_t *ids, float *scores, MtrError *err)
{
    const MtrModel *m = h->m;
    MtrRecommendOptions none = {.task = -1};
    if (!opt) opt = &none;
    MtrStatus rc = query_task(h, opt->task, err);
    if (rc) return rc;
    if (!ids || !scores) return mtr_fail(err, MTR_E_ARG, "ids and scores arrays are needed");
    if (k <= 0 || (uint64_t)k > m->items.n)
        return mtr_fail(err, MTR_E_ARG, "k must be between 1 and the %u items, got %d", m->items.n,
                        k);
    if (!opt->exclude_start != !opt->exclude)
        return mtr_fail(err, MTR_E_ARG, "exclude and exclude_start go together");
    /* Ask top k for k plus the most items any row excludes, then drop those. */
    int64_t most = k;
    for (size_t r = 0; opt->exclude_start && rows && r < rows->n_rows; r++) {
        if (opt->exclude_start[r + 1] < opt->exclude_start[r])
            return mtr_fail(err, MTR_E_ARG, "exclude_start decreases at row %zu", r + 1);
        size_t n_ex = opt->exclude_start[r + 1] - opt->exclude_start[r];
        if (n_ex > m->items.n) n_ex = m->items.n; /* more than every item: all of them */
        if ((int64_t)n_ex + k > most) most = (int64_t)n_ex + k;
    }
    /* With exclusions, k varies from call to call: k times a power of two lets calls
     * share pooled sessions (a few more items ranked, no binding). */
    if (most > k) {
        int64_t p2 = k;
        while (p2 < most) p2 *= 2;
        most = p2;
    }
    /* Items sharing a label are listed once, at the best of them: each repeat
     * may pass over one more item (serve_rank_depth). */
    most = serve_rank_depth(&h->labels, m->items.n, most, 0);
    if ((rc = serve_check_recommend(m, &h->o, most, err))) return rc;
    /* a row's exclusions as flags over the items, set and cleared row by row */
    uint8_t *excluded = opt->exclude ? calloc(m->items.n, 1) : NULL;
    int32_t *pick = malloc((size_t)k * sizeof *pick);
    if (!pick || (opt->exclude && !excluded)) {
        free(pick), free(excluded);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    MtrTable t;
    ServeRun r = {0};
    Pooled *q = NULL;
    rc = rows_table(rows, ids, &t, err);
    if (rc == MTR_OK) rc = pool_take((Mtr *)h, h->o.recommend, most, &q, err);
    if (rc == MTR_OK)
        rc = serve_bind(m, h->o.recommend, &t, API_BATCH, serve_flags(rows), h->ixs, q->s, &r, err);
    for (int64_t off = 0; rc == MTR_OK && off < (int64_t)t.n_rows; off += r.batch) {
        int64_t n = (int64_t)t.n_rows - off < r.batch ? (int64_t)t.n_rows - off : r.batch;
        serve_run(m, &r, off, n, m->programs[h->o.recommend].n_ops);
        const int32_t *idx = mtr_session_tensor(r.s, h->o.index);
        const float *sc = mtr_session_tensor(r.s, h->o.score);
        for (int64_t j = 0; j < n; j++) {
            size_t row = (size_t)(off + j);
            const int64_t *ex = opt->exclude ? opt->exclude + opt->exclude_start[row] : NULL;
            size_t n_ex = ex ? opt->exclude_start[row + 1] - opt->exclude_start[row] : 0;
            for (size_t e = 0; e < n_ex; e++)
                if (ex[e] >= 0 && (uint64_t)ex[e] < m->items.n) excluded[ex[e]] = 1;
            int got = serve_distinct_items(m, &h->labels, idx + j * most, most, k, excluded, pick);
            for (size_t e = 0; e < n_ex; e++)
                if (ex[e] >= 0 && (uint64_t)ex[e] < m->items.n) excluded[ex[e]] = 0;
            int64_t *row_ids = ids + row * (size_t)k;
            float *row_scores = scores + row * (size_t)k;
            for (int i = 0; i < k; i++) {
                row_ids[i] = i < got ? idx[j * most + pick[i]] : -1;
                row_scores[i] = i < got ? sc[j * most + pick[i]] : -INFINITY;
            }
        }
    }
    free(pick), free(excluded);
    if (q) pool_give((Mtr *)h, q);
    serve_close(m, &r);
    mtr_table_free(&t);
    return rc;
}

MtrStatus mtr_query_vectors(const Mtr *h, int task, const MtrRows *rows, float *out, MtrError *err)
{
    MtrStatus rc = query_task(h, task, err);
    if (rc) return rc;
    MtrTable t;
    Pooled *q = NULL;
    rc = rows_table(rows, out, &t, err);
    if (rc == MTR_OK) rc = pool_take((Mtr *)h, h->o.recommend, 1, &q, err);
    if (rc == MTR_OK)
        rc = serve_query_vectors(h->m, &h->o, &t, serve_flags(rows), h->ixs, q->s, API_BATCH, out,
                                 err);
    if (q) pool_give((Mtr *)h, q);
    mtr_table_free(&t);
    return rc;
}

MtrStatus mtr_item_vectors(const Mtr *h, int task, float *out, MtrError *err)
{
    if (!out) return mtr_fail(err, MTR_E_ARG, "an output array is needed");
    if (task == -1) task = h->o.rec_task;
    if (task < 0) return mtr_fail(err, MTR_E_STATE, "the model has no retrieval task");
    int64_t dim;
    return serve_item_vectors(h->m, &h->o, task, out, &dim, err);
}
