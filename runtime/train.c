/* The train loop and evaluation: data in, vocabularies built, rows split and
 * batched, train_step run per batch with no allocation, then embed_items once
 * and eval_step over the test rows, feeding the metrics accumulators. */
#include "mtr/run.h"

#include "rankeval.h"
#include "train.h"

#include "bind.h"
#include "negatives.h"
#include "rowshare.h"
#include "featurize.h"
#include "sides.h"
#include "mtr/control.h"
#include "mtr/data.h"
#include "mtr/exec.h"
#include "mtr/knobs.h"
#include "mtr/npy.h"
#include "mtr/report.h"
#include "mtr/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Which rows train and which test: one encoded table for a seeded random
 * split, or a given split's two files. The dataset itself lives outside, so
 * that cross-validation reads it once for every fold. */
typedef struct {
    MtrTable train_file, test_file; /* a given split's tables */
    int given;
    Encoded enc_train, enc_test; /* the same table twice for a random split */
    int shared;                  /* enc_test is enc_train */
    uint32_t *train_rows, *test_rows;
    int64_t n_train, n_test;
    uint64_t skipped;
    /* Rows that stay on their rank (rowshare.h), or NULL: enc_train then
     * holds only this rank's rows, while train_rows and test_rows are global
     * ids; whatever reads rows fetches them (rows_fetch). Borrowed. */
    RowShare *rs;
    Encoded epoch, valid;          /* with rs: this rank's rows of an epoch, the validation rows */
    uint32_t *epoch_at, *valid_at; /* 0, 1, ...: their rows in those tables */
} Split;

/* Under ranks whose rows stay on their rank: the sharing and the summary
 * table the vocabularies and the features' statistics are learned from. */
typedef struct {
    RowShare *rs;
    MtrTable sum;            /* counts over every row */
    uint64_t **train_counts; /* the same over the training rows */
} Local;

static void local_free(Local *l)
{
    for (uint32_t c = 0; l->train_counts && c < l->sum.n_columns; c++) free(l->train_counts[c]);
    free(l->train_counts);
    mtr_table_free(&l->sum);
    rowshare_free(l->rs);
    memset(l, 0, sizeof *l);
}

/* The value of the model's knob of this kind, or the fallback when it has none. */
static double knob(const MtrModel *m, MtrKnobKind kind, double fallback)
{
    int k = mtr_model_knob(m, kind);
    return k >= 0 ? m->knobs[k].value : fallback;
}

static int knob_int(const MtrModel *m, MtrKnobKind kind, int fallback)
{
    return (int)knob(m, kind, fallback);
}

static void split_free(const MtrModel *m, Split *s)
{
    bind_encoded_free(m, &s->enc_train);
    if (!s->shared) bind_encoded_free(m, &s->enc_test);
    if (s->given) {
        mtr_table_free(&s->train_file);
        mtr_table_free(&s->test_file);
    }
    free(s->train_rows);
    free(s->test_rows);
    bind_encoded_free(m, &s->epoch);
    bind_encoded_free(m, &s->valid);
    free(s->epoch_at);
    free(s->valid_at);
    memset(s, 0, sizeof *s);
}

static uint32_t *iota(int64_t n)
{
    uint32_t *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    for (int64_t i = 0; r && i < n; i++) r[i] = (uint32_t)i;
    return r;
}

/* The split's rows of global ids rows[0..n) as a table of their own (*e, in
 * that order, replacing what it held; *at, 0..n-1, the rows to feed them by),
 * fetched from the ranks that hold them (sp->rs). A collective. */
static MtrStatus rows_fetch(const MtrModel *m, const Split *sp, const uint32_t *rows, int64_t n,
                            Encoded *e, uint32_t **at, MtrError *err)
{
    bind_encoded_free(m, e);
    free(*at);
    *at = NULL;
    MtrStatus rc = rowshare_fetch(sp->rs, m, &sp->enc_train, rows, n, e, err);
    if (rc == MTR_OK && !(*at = iota(n))) {
        bind_encoded_free(m, e);
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    return rc;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Counts rows of the test table whose (user, item) pair also appears in
 * training: both files are given, so an overlap is the user's mistake. */
static MtrStatus count_overlap(const MtrModel *m, const Split *s, uint64_t *out, MtrError *err)
{
    *out = 0;
    int32_t a = -1, b = -1;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        if (!s->enc_train.ids[c] || !s->enc_test.ids[c]) continue;
        if (m->columns[c].is_item && b < 0)
            b = (int32_t)c;
        else if (!m->columns[c].is_item && a < 0)
            a = (int32_t)c;
    }
    int32_t u = mtr_model_user_column(m);
    if (u >= 0 && s->enc_train.ids[u] && s->enc_test.ids[u]) a = u;
    if (a < 0 || b < 0) return MTR_OK;
    int64_t nb = 1;
    for (uint32_t v = 0; v < m->n_vocabs; v++)
        if (m->vocabs[v].column == b) nb = (int64_t)m->vocabs[v].n + 1;
    /* A sorted list of train pairs, searched for each test pair. */
    int64_t n = (int64_t)s->enc_train.n_rows;
    int64_t *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    if (!keys) /* the overlap warning would go missing: an error, not a 0 */
        return mtr_fail(err, MTR_E_NOMEM, "out of memory comparing the training and test rows");
    /* Pairs with an unknown value (id 0) are not compared: every unknown
     * value shares that id, so they would all look alike. */
    int64_t k = 0;
    for (int64_t r = 0; r < n; r++)
        if (s->enc_train.ids[a][r] > 0 && s->enc_train.ids[b][r] > 0)
            keys[k++] = (int64_t)s->enc_train.ids[a][r] * nb + s->enc_train.ids[b][r];
    n = k;
    qsort(keys, (size_t)n, sizeof *keys, cmp_i64);
    uint64_t hits = 0;
    for (uint64_t r = 0; r < s->enc_test.n_rows; r++) {
        if (s->enc_test.ids[a][r] <= 0 || s->enc_test.ids[b][r] <= 0) continue;
        int64_t key = (int64_t)s->enc_test.ids[a][r] * nb + s->enc_test.ids[b][r];
        hits += bsearch(&key, keys, (size_t)n, sizeof *keys, cmp_i64) != NULL;
    }
    free(keys);
    *out = hits;
    return MTR_OK;
}

/* The seeded split's order of n rows: every row shuffled once; the first
 * *n_train of them train. NULL when out of memory. */
static uint32_t *split_order(const MtrModel *m, int64_t n, int64_t *n_train)
{
    uint32_t *all = iota(n);
    if (!all) return NULL;
    Rng r;
    rng_seed(&r, (uint64_t)knob_int(m, MTR_KNOB_SEED, 42));
    rng_shuffle_u32(&r, all, (uint64_t)n);
    *n_train = (int64_t)llround(knob(m, MTR_KNOB_SPLIT, 0.8) * (double)n);
    if (*n_train > n) *n_train = n;
    return all;
}

/* Whether the rows may stay on their rank (rowshare.h) in this run: ranks, a
 * seeded split of the folder, no input that counts ids over the training rows
 * (logq, sampled negatives), and MTR_DIST_GATHER unset (which gathers every
 * row to every rank, as before, for comparison). */
static int rows_can_stay(const MtrModel *m, const MtrRunOptions *o)
{
    if (!o->dist || o->dist->size <= 1 || o->train_file || o->test_file) return 0;
    const char *g = getenv("MTR_DIST_GATHER");
    if (g && *g && strcmp(g, "0") != 0) return 0;
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        if (ten->role != MTR_ROLE_INPUT) continue;
        switch ((MtrSource)ten->source) {
        case MTR_SRC_LOGQ:
        case MTR_SRC_LOGQ_COUNTS:
        case MTR_SRC_NEGATIVES:
        case MTR_SRC_NEG_LOGQ:
            return 0;
        default:
            break;
        }
    }
    return 1;
}

/* Whether a side table would be learned from the interactions' rows (not
 * from the items file): some column is a function of its key on this rank's
 * rows (a column that is one on every row is one on each rank's). */
static MtrStatus sides_from_rows(MtrModel *m, const MtrDataset *ds, int *any, MtrError *err)
{
    *any = 0;
    MtrStatus rc = sides_learn(m, &ds->ratings, &ds->items, err);
    for (uint32_t i = 0; rc == MTR_OK && i < m->n_sides; i++) {
        const MtrColumn *key = &m->columns[m->sides[i].key];
        if (!key->is_item || !mtr_table_column(&ds->items, key->name)) *any = 1;
    }
    sides_free(m);
    return rc;
}

/* Under ranks whose rows stay: every rank's counters summed, the global row
 * ids, and (to build vocabularies) the summary table with its training
 * counts; or, when a side table must be learned from rows of several columns
 * together, every row gathered after all (loc->rs stays NULL). */
static MtrStatus data_share(MtrModel *m, MtrDataset *ds, int build_vocab, uint64_t dropped,
                            Local *loc, const MtrDist *d, MtrError *err)
{
    uint64_t totals[3] = {dropped, ds->side_missing, 0};
    int any = 0;
    MtrStatus rc = build_vocab ? sides_from_rows(m, ds, &any, err) : MTR_OK;
    totals[2] = (uint64_t)any;
    if (rc == MTR_OK) rc = rowshare_new(d, ds->ratings.n_rows, totals, 3, &loc->rs, err);
    if (rc) return rc;
    ds->skipped += totals[0];
    ds->side_missing = totals[1];
    if (totals[2]) { /* gathered: the rows' sums are the whole table's already */
        uint64_t none = 0;
        rowshare_free(loc->rs);
        loc->rs = NULL;
        ds->rows_local = 0;
        return mtr_data_gather(d, ds, &none, err);
    }
    if (!build_vocab) return MTR_OK;
    int64_t n = (int64_t)rowshare_rows(loc->rs), n_train = 0;
    uint32_t *order = split_order(m, n, &n_train);
    if (!order) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    rc = rowshare_summary(loc->rs, &ds->ratings, order, (uint64_t)n_train, &loc->sum,
                          &loc->train_counts, err);
    free(order);
    if (rc) return rc;
    MtrDataset view = *ds; /* the vocabularies from every rank's values and counts */
    view.ratings = loc->sum;
    return bind_vocabularies(m, &view, err);
}

/* Reads the data folder; with build_vocab the vocabularies and items come
 * from it (training), otherwise the model's own are kept (a trained model).
 * With loc (not NULL), rows may stay on their rank (rows_can_stay): then
 * ds->ratings holds this rank's rows only and loc->rs shares them. */
static MtrStatus data_load(MtrModel *m, const MtrRunOptions *o, int build_vocab, Local *loc,
                           MtrDataset **ds, MtrError *err)
{
    const char **item_cols = bind_item_columns(m);
    if (!item_cols) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    if (loc) memset(loc, 0, sizeof *loc);
    /* under ranks, each reads its part of the interactions (mtr/data.h) */
    MtrDataOptions dopt = {.skip_bad = o->skip_bad,
                           .item_columns = item_cols,
                           .dist = o->dist && o->dist->size > 1 ? o->dist : NULL,
                           .keep_local = loc && rows_can_stay(m, o),
                           .items_file = o->items_file,
                           .users_file = o->users_file};
    MtrStatus rc = mtr_data_open(o->data_dir, &dopt, ds, err);
    uint64_t before = rc == MTR_OK ? (*ds)->skipped : 0;
    if (rc == MTR_OK) rc = bind_check_rows(m, &(*ds)->ratings, o->skip_bad, &(*ds)->skipped, err);
    if (rc == MTR_OK && (*ds)->rows_local) {
        uint64_t dropped = (*ds)->skipped - before; /* this rank's, summed over the ranks */
        (*ds)->skipped = before;
        rc = data_share(m, *ds, build_vocab, dropped, loc, o->dist, err);
        if (rc == MTR_OK && loc->rs) build_vocab = 0; /* built from the summary */
    }
    if (rc && *ds) {
        mtr_data_free(*ds);
        *ds = NULL;
        if (loc) local_free(loc);
    }
    if (rc == MTR_OK && build_vocab && (rc = bind_vocabularies(m, *ds, err))) {
        mtr_data_free(*ds);
        *ds = NULL;
        if (loc) local_free(loc);
    }
    free(item_cols);
    return rc;
}

/* A given split: the training and test rows come from two files, encoded with
 * the vocabularies of the whole folder. */
static MtrStatus split_given(const MtrModel *m, const MtrDataset *ds, const MtrRunOptions *o,
                             const char *train, const char *test, Split *s, MtrModel *adapt,
                             MtrError *err)
{
    const char **item_cols = bind_item_columns(m);
    if (!item_cols) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    MtrDataOptions dopt = {.skip_bad = o->skip_bad,
                           .item_columns = item_cols,
                           .items_file = o->items_file,
                           .users_file = o->users_file};
    uint64_t sk1 = 0, sk2 = 0;
    memset(s, 0, sizeof *s);
    s->given = 1;
    MtrStatus rc = mtr_data_read_interactions(train, ds, &dopt, &s->train_file, &sk1, err);
    if (rc == MTR_OK) rc = mtr_data_read_interactions(test, ds, &dopt, &s->test_file, &sk2, err);
    free(item_cols);
    if (rc == MTR_OK) rc = bind_check_rows(m, &s->train_file, o->skip_bad, &sk1, err);
    if (rc == MTR_OK) rc = bind_check_rows(m, &s->test_file, o->skip_bad, &sk2, err);
    s->skipped = sk1 + sk2;
    /* features learn their statistics from the training rows only */
    if (rc == MTR_OK && adapt) rc = features_adapt(adapt, &s->train_file, NULL, 0, err);
    if (rc == MTR_OK && adapt) rc = sides_learn(adapt, &s->train_file, &ds->items, err);
    if (rc == MTR_OK) rc = bind_encode(m, &s->train_file, NULL, &s->enc_train, err);
    if (rc == MTR_OK) rc = bind_encode(m, &s->test_file, NULL, &s->enc_test, err);
    if (rc == MTR_OK) {
        s->n_train = (int64_t)s->enc_train.n_rows;
        s->n_test = (int64_t)s->enc_test.n_rows;
        s->train_rows = iota(s->n_train);
        s->test_rows = iota(s->n_test);
        if (!s->train_rows || !s->test_rows) rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    if (rc == MTR_OK && s->n_train == 0)
        rc = mtr_fail(err, MTR_E_DATA, "%s: no training rows", train);
    if (rc) split_free(m, s);
    return rc;
}

/* The seeded split: every row shuffled once, the first train.split share
 * trains (and, with adapt, gives the features their statistics). */
static MtrStatus split_random(const MtrModel *m, const MtrDataset *ds, Split *s, MtrModel *adapt,
                              Local *loc, MtrError *err)
{
    memset(s, 0, sizeof *s);
    int64_t n = (int64_t)ds->ratings.n_rows;
    if (loc && loc->rs) n = (int64_t)rowshare_rows(loc->rs); /* global row ids */
    uint32_t *all = split_order(m, n, &s->n_train);
    MtrStatus rc = all ? MTR_OK : mtr_fail(err, MTR_E_NOMEM, "out of memory");
    if (rc == MTR_OK) {
        s->n_test = n - s->n_train;
        s->train_rows = all;
        s->test_rows = iota(s->n_test);
        if (!s->test_rows) rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        for (int64_t i = 0; rc == MTR_OK && i < s->n_test; i++)
            s->test_rows[i] = all[s->n_train + i];
    }
    if (loc && loc->rs) { /* learned from the summary: its training counts, its values */
        uint64_t **every = loc->sum.counts;
        loc->sum.counts = loc->train_counts;
        if (rc == MTR_OK && adapt && loc->train_counts)
            rc = features_adapt(adapt, &loc->sum, NULL, 0, err);
        loc->sum.counts = every;
        if (rc == MTR_OK && adapt) rc = sides_learn(adapt, &loc->sum, &ds->items, err);
        s->rs = loc->rs;
    } else {
        if (rc == MTR_OK && adapt)
            rc = features_adapt(adapt, &ds->ratings, all, (uint64_t)s->n_train, err);
        if (rc == MTR_OK && adapt) rc = sides_learn(adapt, &ds->ratings, &ds->items, err);
    }
    if (rc == MTR_OK) rc = bind_encode(m, &ds->ratings, NULL, &s->enc_train, err);
    if (rc == MTR_OK && s->rs) rowshare_sum(s->rs, &s->enc_train.oov, 1);
    s->enc_test = s->enc_train;
    s->shared = 1;
    if (rc == MTR_OK && s->n_train == 0)
        rc = mtr_fail(err, MTR_E_DATA, "%s: no training rows", ds->dir);
    if (rc) split_free(m, s);
    return rc;
}

/* The logq inputs of the split's rows, from its training rows' frequencies. */
static MtrStatus split_logq(const MtrModel *m, Split *s, MtrError *err)
{
    MtrStatus rc = bind_logq(m, &s->enc_train, s->train_rows, s->n_train,
                             s->shared ? &s->enc_train : &s->enc_test, err);
    if (rc) split_free(m, s);
    return rc;
}

static MtrStatus split_make(const MtrModel *m, const MtrDataset *ds, const MtrRunOptions *o,
                            Split *s, MtrModel *adapt, Local *loc, MtrError *err)
{
    MtrStatus rc;
    if (!o->train_file && !o->test_file)
        rc = split_random(m, ds, s, adapt, loc, err);
    else if (!o->train_file || !o->test_file)
        return mtr_fail(err, MTR_E_ARG, "--train and --test go together");
    else
        rc = split_given(m, ds, o, o->train_file, o->test_file, s, adapt, err);
    /* rows stay only for models without logq inputs (rows_can_stay) */
    return rc || s->rs ? rc : split_logq(m, s, err);
}

typedef struct {
    MtrSession *s;
    ProgramFeeds feeds[8];
    int p_train, p_eval, p_items;
    int32_t loss, *task_loss;
    const MtrProgram *train; /* train_step, whose gradient outputs the step log reads */
    int32_t *sampled;  /* per task with a sample knob: its label input in train_step, else -1 */
    float *labels;     /* one batch of labels, for the metrics */
    double *task_sum;  /* each task's loss summed over an epoch */
    Control ctl;       /* schedule, clipping, early stopping (control.c) */
    Negatives *neg;    /* mixed negatives' samplers, or NULL */
    uint64_t neg_step; /* train steps of this run so far: the samplers' stream */

    int64_t batch;       /* the most rows the session is bound for */
    const MtrDist *dist; /* data-parallel ranks: each evaluates a share of the rows */
} Runner;

static void runner_free(Runner *r)
{
    for (int i = 0; i < 8; i++) bind_feeds_free(&r->feeds[i]);
    mtr_session_free(r->s);
    control_free(&r->ctl);
    negatives_free(r->neg);
    free(r->task_loss);
    free(r->sampled);
    free(r->labels);
    free(r->task_sum);
    memset(r, 0, sizeof *r);
}

static MtrStatus runner_new(const MtrModel *m, int64_t batch, Runner *r, MtrError *err)
{
    memset(r, 0, sizeof *r);
    r->batch = batch;
    if (m->n_programs > 8) return mtr_fail(err, MTR_E_FORMAT, "too many programs");
    int64_t *values = calloc(m->n_symbols + 1, sizeof *values);
    if (!values) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    int64_t k = m->items.n < 10 ? m->items.n : 10;
    MtrStatus rc = bind_sizes(m, batch, k > 0 ? k : 1, values, err);
    /* Training and evaluation only: recommend's (batch, items) scores at the
     * training batch would be the largest buffer of all. */
    static const MtrProgramKind programs[] = {MTR_PROG_TRAIN, MTR_PROG_EVAL, MTR_PROG_EMBED_ITEMS,
                                              0};
    if (rc == MTR_OK) rc = mtr_session_new_for(m, values, programs, &r->s, err);
    free(values);
    if (rc) return rc;
    r->p_train = mtr_model_program(m, MTR_PROG_TRAIN);
    r->p_eval = mtr_model_program(m, MTR_PROG_EVAL);
    r->p_items = mtr_model_program(m, MTR_PROG_EMBED_ITEMS);
    r->loss = mtr_program_output(m, r->p_train, MTR_OUT_LOSS, -1);
    if (r->p_train < 0 || r->p_eval < 0 || r->loss < 0) {
        runner_free(r);
        return mtr_fail(err, MTR_E_FORMAT, "the model lacks train_step, eval_step or its loss");
    }
    for (uint32_t p = 0; p < m->n_programs; p++)
        if ((rc = bind_feeds(m, (int)p, &r->feeds[p], err))) {
            runner_free(r);
            return rc;
        }
    r->task_loss = calloc(m->n_tasks + 1, sizeof *r->task_loss);
    r->sampled = calloc(m->n_tasks + 1, sizeof *r->sampled);
    r->labels = calloc((size_t)batch, sizeof *r->labels);
    r->task_sum = calloc(m->n_tasks + 1, sizeof *r->task_sum);
    if (!r->task_loss || !r->labels || !r->task_sum || !r->sampled) {
        runner_free(r);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    for (uint32_t t = 0; t < m->n_tasks; t++) {
        r->task_loss[t] = mtr_program_output(m, r->p_train, MTR_OUT_TASK_LOSS, (int32_t)t);
        if (r->task_loss[t] < 0) {
            runner_free(r);
            return mtr_fail(err, MTR_E_FORMAT, "train_step has no loss for task '%s'",
                            m->tasks[t].name);
        }
    }
    /* A sampled task's label, fed to train_step: rows out of its sample lose it. */
    for (uint32_t t = 0; t < m->n_tasks; t++) {
        r->sampled[t] = -1;
        if (m->tasks[t].sample_knob < 0) continue;
        for (uint32_t f = 0; f < r->feeds[r->p_train].n; f++)
            if (r->feeds[r->p_train].feeds[f].column == m->tasks[t].label_column &&
                r->feeds[r->p_train].feeds[f].kind == FEED_NUMS)
                r->sampled[t] = r->feeds[r->p_train].feeds[f].tensor;
    }
    r->train = &m->programs[r->p_train];
    return MTR_OK;
}

/* Whether data row `row` is in task t's sample of share p: a hash of the seed,
 * the task and the row, the same in every epoch and at any batch order. */
static int in_sample(uint64_t seed, uint32_t t, uint32_t row, double p)
{
    uint64_t h = seed * 0x9e3779b97f4a7c15ull ^ ((uint64_t)t << 32 | row);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (double)(h >> 11) * 0x1p-53 < p;
}

/* Leaves out the labels of the batch's rows that a sampled task does not train on. */
static void mask_samples(const MtrModel *m, Runner *r, const uint32_t *rows, int64_t n,
                         uint64_t seed)
{
    for (uint32_t t = 0; t < m->n_tasks; t++) {
        if (r->sampled[t] < 0) continue;
        double p = mtr_session_knob(r->s, m->tasks[t].sample_knob);
        if (p >= 1) continue;
        float *label = mtr_session_tensor(r->s, r->sampled[t]);
        for (int64_t i = 0; i < n; i++)
            if (!in_sample(seed, t, rows[i], p)) label[i] = NAN;
    }
}

/* After epoch e, each learned loss weight (weight auto), exp(-s), on one line. */
static void print_learned_weights(const MtrModel *m, const Runner *r, FILE *out, int e)
{
    int any = 0;
    for (uint32_t t = 0; t < m->n_tasks; t++) {
        int32_t s = mtr_program_output(m, r->p_train, MTR_OUT_LOG_VARIANCE, (int32_t)t);
        if (s < 0) continue;
        double lv = *(const float *)mtr_session_tensor(r->s, s);
        if (!any++) fprintf(out, "learned loss weights after epoch %d:", e);
        fprintf(out, " %s %.4f", m->tasks[t].name, exp(-lv));
    }
    if (any) fputc('\n', out);
}

/* One JSON line for a training step: losses and each gradient's L2 norm. */
static void log_step(const MtrModel *m, Runner *r, FILE *out, int fold, int64_t step, int epoch,
                     int64_t rows, double loss)
{
    ReportJson j;
    report_json_begin(&j, out, "step");
    if (fold > 0) report_json_int(&j, "fold", fold);
    report_json_int(&j, "step", step);
    report_json_int(&j, "epoch", epoch);
    report_json_int(&j, "batch", rows);
    report_json_num(&j, "loss", loss);
    char key[300];
    for (uint32_t t = 0; t < m->n_tasks; t++) {
        snprintf(key, sizeof key, "%s.loss", m->tasks[t].name);
        report_json_num(&j, key, *(float *)mtr_session_tensor(r->s, r->task_loss[t]));
    }
    /* each parameter's gradient, dense or an embedding table's rows (zero past
     * its distinct ids, so the rows' norm is the table gradient's) */
    for (uint32_t g = 0; g < r->train->n_outputs; g++) {
        const MtrOutput *o = &r->train->outputs[g];
        if (o->role != MTR_OUT_GRADIENT && o->role != MTR_OUT_GRADIENT_ROWS) continue;
        const float *d = mtr_session_tensor(r->s, o->tensor);
        int64_t n = mtr_session_tensor_elems(r->s, o->tensor, rows);
        double sq = 0;
        for (int64_t e = 0; e < n; e++) sq += (double)d[e] * d[e];
        snprintf(key, sizeof key, "grad_norm.%s", m->tensors[o->param].name);
        report_json_num(&j, key, sqrt(sq));
    }
    report_json_end(&j, "step log", NULL);
}

/* The time training spent in each kind of op, largest first. */
static void print_profile(const MtrSession *s, FILE *out, MtrRunResult *res)
{
    double secs[OP_COUNT], total = 0;
    uint64_t calls[OP_COUNT];
    int order[OP_COUNT], n = 0;
    for (int k = 0; k < OP_COUNT; k++) {
        secs[k] = mtr_session_profile_seconds(s, (OpKind)k, &calls[k]);
        total += secs[k];
        if (calls[k]) order[n++] = k;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && secs[order[j]] > secs[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    fprintf(out, "%-22s %8s %10s %7s\n", "op", "calls", "seconds", "share");
    for (int i = 0; i < n; i++) {
        int k = order[i];
        fprintf(out, "%-22s %8llu %10.3f %6.1f%%\n", op_info((OpKind)k)->name,
                (unsigned long long)calls[k], secs[k], total > 0 ? 100 * secs[k] / total : 0);
    }
    fprintf(out, "%-22s %8s %10.3f\n", "all ops", "", total);
    res->op_seconds = total;
    res->matmul_seconds = secs[OP_MATMUL];
}

/* Runs eval_step over rows[0..n_rows) in batches, adding every task's outputs
 * to each of the n_ms accumulator sets in ms. */
static MtrStatus eval_rows(const MtrModel *m, Runner *r, const Encoded *e, const uint32_t *rows,
                           int64_t n_rows, int64_t batch, Metrics *const *ms, int n_ms,
                           ReportProgress *prog, double t0, int64_t done, int64_t total,
                           MtrError *err)
{
    MtrStatus rc = MTR_OK;
    for (int64_t off = 0; off < n_rows && rc == MTR_OK; off += batch) {
        int64_t n = n_rows - off < batch ? n_rows - off : batch;
        const uint32_t *at = rows + off;
        bind_feed(r->s, m, &r->feeds[r->p_eval], e, at, n);
        mtr_session_run(r->s, r->p_eval, n);
        for (uint32_t t = 0; t < m->n_tasks && rc == MTR_OK; t++) {
            int32_t reads = metrics_task_tensor(ms[0], t);
            if (reads < 0) continue;
            const float *label = NULL;
            int32_t lc = m->tasks[t].label_column;
            if (lc >= 0 && e->nums[lc]) {
                const float *src = e->nums[lc];
                for (int64_t i = 0; i < n; i++) r->labels[i] = src[at[i]];
                label = r->labels;
            }
            for (int k = 0; k < n_ms && rc == MTR_OK; k++)
                rc = metrics_add(ms[k], t, mtr_session_tensor(r->s, reads), label, n, err);
        }
        if (prog) report_eval_update(prog, done + off + n, total, report_clock() - t0);
    }
    return rc;
}

static void embed_items(const MtrModel *m, Runner *r, const Encoded *e)
{
    if (r->p_items >= 0) {
        bind_feed(r->s, m, &r->feeds[r->p_items], e, NULL, 0);
        mtr_session_run(r->s, r->p_items, 1); /* item rows only: no batch extent */
    }
}

static int32_t eval_user_column(const MtrModel *m);

/* Orders rows[0..n) by their user (stably, by counting), so that a batch holds
 * each user's rows together and the ranking scores a user's query once (see
 * kernel_retrieval_rank). Metrics do not depend on the order, beyond the last
 * bits of sums, and those bits are why a failed allocation is an error here,
 * not a quiet fall back to the given order. *sorted is a new array (the caller
 * frees it), or NULL when there is no user column (the rows keep their order). */
static MtrStatus rows_by_user(const MtrModel *m, const Encoded *e, const uint32_t *rows, int64_t n,
                              uint32_t **sorted, MtrError *err)
{
    *sorted = NULL;
    int32_t col = eval_user_column(m);
    if (col < 0 || !e->ids || !e->ids[col] || n <= 0) return MTR_OK;
    const int32_t *uid = e->ids[col];
    int32_t max_id = 0;
    for (int64_t i = 0; i < n; i++) max_id = uid[rows[i]] > max_id ? uid[rows[i]] : max_id;
    int64_t *start = calloc((size_t)max_id + 2, sizeof *start);
    uint32_t *out = malloc((size_t)n * sizeof *out);
    if (!start || !out) {
        free(start), free(out);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory ordering %lld test rows by user",
                        (long long)n);
    }
    for (int64_t i = 0; i < n; i++) start[(uid[rows[i]] < 0 ? 0 : uid[rows[i]]) + 1]++;
    for (int32_t u = 0; u <= max_id; u++) start[u + 1] += start[u];
    for (int64_t i = 0; i < n; i++) out[start[uid[rows[i]] < 0 ? 0 : uid[rows[i]]]++] = rows[i];
    free(start);
    *sorted = out;
    return MTR_OK;
}

/* The training rows a test pass may leave out of each user's ranking. */
typedef struct {
    const Encoded *e;
    const uint32_t *rows;
    int64_t n;
    int exclude;         /* leave them out (--exclude-seen) */
    int64_t *unrankable; /* out: test rows whose item is not among the candidates */
} Seen;

/* Evaluates rows[0..n) of e: item embeddings once, then eval_step batch by
 * batch into the metrics accumulators, then the per-user pass (with seen,
 * whose training rows it may leave out); the report goes to *out. */
static MtrStatus evaluate(const MtrModel *m, Runner *r, const Encoded *e, const uint32_t *rows,
                          int64_t n_rows, int64_t batch, const Seen *seen, MetricsReport *out,
                          double *seconds, FILE *progress, MtrError *err)
{
    Metrics ms;
    MtrStatus rc = metrics_init(&ms, m, n_rows, err);
    if (rc) return rc;
    if (seen) seen->unrankable[0] = 0;
    double t0 = report_clock();
    ReportProgress prog = {0};
    if (progress) report_progress_init(&prog, progress, 0);
    embed_items(m, r, e);
    Metrics *all = &ms;
    uint32_t *sorted;
    rc = rows_by_user(m, e, rows, n_rows, &sorted, err);
    int64_t lo, hi; /* this rank's share of the rows, by user */
    mtr_dist_rows(r->dist, n_rows, &lo, &hi);
    if (rc == MTR_OK)
        rc = eval_rows(m, r, e, (sorted ? sorted : rows) + lo, hi - lo, batch, &all, 1,
                       progress ? &prog : NULL, t0, 0, hi - lo, err);
    /* Ranks sum their shares' counts first; the per-user pass then runs on
     * every rank over all the rows (a user's rows may straddle two shares), so
     * that its recomputed top_k is counted once and every rank holds the same
     * figures (early stopping decides alike). */
    if (rc == MTR_OK) rc = mtr_dist_metrics_sum(r->dist, &ms, err);
    /* The per-user pass (recall, ndcg, ...; top_k without seen items) */
    RankevalInput in = {.s = r->s,
                        .p_eval = r->p_eval,
                        .feeds = &r->feeds[r->p_eval],
                        .test = e,
                        .test_rows = sorted ? sorted : rows,
                        .n_test = n_rows,
                        .train = seen ? seen->e : e,
                        .train_rows = seen ? seen->rows : rows,
                        .n_train = seen ? seen->n : n_rows,
                        .batch = batch,
                        .exclude_seen = seen && seen->exclude,
                        .scorer = RANKEVAL_MODEL};
    if (rc == MTR_OK && (sorted || eval_user_column(m) < 0)) rc = rankeval_run(m, &in, &ms, err);
    if (rc == MTR_OK && seen)
        for (uint32_t t = 0; t < ms.n_tasks; t++) seen->unrankable[0] += ms.tasks[t].unrankable;
    free(sorted);
    if (progress) report_progress_clear(&prog);
    if (seconds) *seconds = report_clock() - t0;
    if (rc == MTR_OK) rc = metrics_report(&ms, out, err);
    metrics_free(&ms);
    return rc;
}

/* The column that names a test row's user, for --eval-users and the order by
 * user: the one the compiler marked (is_user: the first retrieval task's query
 * id, user_id in the tutorial); -1 if there is none. */
static int32_t eval_user_column(const MtrModel *m)
{
    return mtr_model_user_column(m);
}

/* Groups of users the confidence intervals are computed from. */
#define EVAL_GROUPS 30

/* The 0.975 quantile of Student's t with df = 1..EVAL_GROUPS-1 degrees of freedom. */
static double t975(int df)
{
    static const double q[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                               2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                               2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                               2.060,  2.056, 2.052, 2.048, 2.045};
    if (df < 1) return NAN;
    return df <= (int)(sizeof q / sizeof q[0]) ? q[df - 1] : 1.96;
}

/* Evaluates a seeded sample of o->eval_users test users (all of them when
 * there are fewer): every test row of a sampled user. The sampled users are
 * dealt in turn into G <= 30 groups; each group is evaluated into accumulators
 * of its own as well as the overall ones, so the metrics are those of the
 * sampled rows and each gets a 95% confidence interval for the metric over all
 * test users, treating users as the sampling unit (rows of one user are not
 * independent). A metric that is a mean over rows (top_k, mae) is a ratio
 * sum/rows over groups: se^2 = (1 - m/M) G/(G-1) sum_g (S_g - v n_g)^2 / N^2,
 * m of M users sampled, N rows; rmse takes it on the mean square and then
 * se_rmse = se_msq / (2 rmse); auc gets none (NaN). Half-width t_{G-1} se. */
/* How a metric of this base name ("recall_100") is estimated from groups: 0 a
 * mean over rows, 1 a mean over users (the per-user metrics), 2 none (auc,
 * coverage: not a mean of anything the groups share out). */
static int ci_kind(const char *base)
{
    static const char *const per_user[] = {"recall_", "ndcg_", "map_", "hit_rate_"};
    if (strcmp(base, "auc") == 0 || strncmp(base, "coverage_", 9) == 0) return 2;
    for (size_t i = 0; i < sizeof per_user / sizeof *per_user; i++)
        if (strncmp(base, per_user[i], strlen(per_user[i])) == 0) return 1;
    return 0;
}

static MtrStatus evaluate_users(const MtrModel *m, Runner *r, const Encoded *e,
                                const uint32_t *rows, int64_t n_rows, int64_t batch,
                                const Seen *seen, const MtrRunOptions *o, MtrRunResult *res,
                                MtrError *err)
{
    int32_t col = eval_user_column(m);
    if (col < 0) return mtr_fail(err, MTR_E_ARG, "--eval-users: %s", rankeval_no_user);
    const int32_t *uid = e->ids[col];
    int32_t max_id = 0;
    for (int64_t i = 0; i < n_rows; i++) max_id = uid[rows[i]] > max_id ? uid[rows[i]] : max_id;
    int32_t *group = malloc(((size_t)max_id + 1) * sizeof *group);
    uint32_t *users = malloc(((size_t)max_id + 1) * sizeof *users);
    uint32_t *picked = malloc((size_t)(n_rows ? n_rows : 1) * sizeof *picked);
    Metrics *ms = calloc(EVAL_GROUPS + 1, sizeof *ms);
    Metrics **sets = calloc(EVAL_GROUPS + 1, sizeof *sets);
    MetricsReport *gr = calloc(EVAL_GROUPS, sizeof *gr);
    int64_t *grows = calloc(EVAL_GROUPS + 1, sizeof *grows);
    MtrStatus rc = MTR_OK;
    if (!group || !users || !picked || !ms || !sets || !gr || !grows) {
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory sampling test users");
        goto done;
    }
    /* the distinct users, in id order, then a seeded shuffle: the first ones are the sample */
    for (int32_t u = 0; u <= max_id; u++) group[u] = -1;
    for (int64_t i = 0; i < n_rows; i++) group[uid[rows[i]]] = 0;
    int64_t total = 0;
    for (int32_t u = 0; u <= max_id; u++)
        if (group[u] == 0) users[total++] = (uint32_t)u, group[u] = -1;
    Rng rng;
    rng_seed(&rng, (uint64_t)knob_int(m, MTR_KNOB_SEED, 42) ^ 0xe7a15e5ull);
    rng_shuffle_u32(&rng, users, (uint64_t)total);
    int64_t sampled = o->eval_users < total ? o->eval_users : total;
    int groups = sampled < EVAL_GROUPS ? (int)sampled : EVAL_GROUPS;
    for (int64_t k = 0; k < sampled; k++) group[users[k]] = (int32_t)(k % groups);
    /* the sampled rows, group by group, each group's rows by user */
    int64_t n = 0;
    uint32_t *sorted;
    if ((rc = rows_by_user(m, e, rows, n_rows, &sorted, err))) goto done;
    const uint32_t *src = sorted ? sorted : rows;
    for (int g = 0; g < groups; g++) {
        for (int64_t i = 0; i < n_rows; i++)
            if (group[uid[src[i]]] == g) picked[n++] = src[i];
        grows[g + 1] = n;
    }
    free(sorted);
    res->users_sampled = sampled, res->users_total = total, res->rows_sampled = n;
    for (int g = 0; g <= groups && rc == MTR_OK; g++) rc = metrics_init(&ms[g], m, n, err);
    if (rc) goto done;
    double t0 = report_clock();
    ReportProgress prog = {0};
    if (o->progress) report_progress_init(&prog, o->progress, 0);
    embed_items(m, r, e);
    for (int g = 0; g < groups && rc == MTR_OK; g++) {
        Metrics *pair[2] = {&ms[groups], &ms[g]};
        rc = eval_rows(m, r, e, picked + grows[g], grows[g + 1] - grows[g], batch, pair, 2,
                       o->progress ? &prog : NULL, t0, grows[g], n, err);
    }
    /* the per-user pass (recall, ndcg, ...) over each group's users and over
     * all the sampled ones: a user's rows are together in picked */
    for (int g = 0; g <= groups && rc == MTR_OK; g++) {
        int64_t lo = g < groups ? grows[g] : 0, hi = g < groups ? grows[g + 1] : n;
        RankevalInput in = {.s = r->s,
                            .p_eval = r->p_eval,
                            .feeds = &r->feeds[r->p_eval],
                            .test = e,
                            .test_rows = picked + lo,
                            .n_test = hi - lo,
                            .train = seen ? seen->e : e,
                            .train_rows = seen ? seen->rows : rows,
                            .n_train = seen ? seen->n : n_rows,
                            .batch = batch,
                            .exclude_seen = seen && seen->exclude,
                            .scorer = RANKEVAL_MODEL};
        if (hi > lo) rc = rankeval_run(m, &in, &ms[g], err);
    }
    if (o->progress) report_progress_clear(&prog);
    res->eval_seconds = report_clock() - t0;
    if (rc == MTR_OK) rc = metrics_report(&ms[groups], &res->test, err);
    for (int g = 0; g < groups && rc == MTR_OK; g++) rc = metrics_report(&ms[g], &gr[g], err);
    if (rc == MTR_OK) rc = metrics_report(&ms[groups], &res->test_ci95, err);
    if (rc) goto done;
    double fpc = total > 0 ? 1.0 - (double)sampled / (double)total : 0.0;
    for (uint32_t i = 0; i < res->test.n; i++) {
        const char *name = res->test.entries[i].name;
        const char *dot = strrchr(name, '.');
        const char *base = dot ? dot + 1 : name;
        double v = res->test.entries[i].value, ci = NAN;
        int square = strcmp(base, "rmse") == 0, kind = ci_kind(base);
        /* a per-user metric weighs each group by its users, the others by rows */
        double total_w = kind == 1 ? (double)sampled : (double)n;
        if (groups >= 2 && n > 0 && kind != 2 && isfinite(v)) {
            double center = square ? v * v : v, ss = 0.0;
            for (int g = 0; g < groups; g++) {
                double vg = gr[g].entries[i].value;
                double ng = kind == 1 ? (double)(sampled / groups + (g < sampled % groups))
                                      : (double)(grows[g + 1] - grows[g]);
                if (isnan(vg)) vg = 0.0, ng = 0.0;
                double sg = (square ? vg * vg : vg) * ng;
                ss += (sg - center * ng) * (sg - center * ng);
            }
            double se = sqrt(fpc * (double)groups / (groups - 1.0) * ss) / total_w;
            if (square) se = v > 0 ? se / (2.0 * v) : 0.0;
            ci = t975(groups - 1) * se;
        }
        res->test_ci95.entries[i].value = ci;
    }
done:
    for (int g = 0; g < EVAL_GROUPS; g++) metrics_report_free(&gr[g]);
    if (ms)
        for (int g = 0; g <= EVAL_GROUPS; g++) metrics_free(&ms[g]);
    free(group), free(users), free(picked), free(ms), free(sets), free(gr), free(grows);
    return rc;
}

/* The baselines on the split's test rows: each ranking task predicts the mean
 * of its label over the training rows; each retrieval task ranks items by
 * their count in the training rows (rankeval.c). */
static MtrStatus baseline(const MtrModel *m, Runner *r, const Split *sp, const MtrRunOptions *o,
                          MetricsReport *out, MtrError *err)
{
    Metrics ms;
    MtrStatus rc = metrics_init(&ms, m, sp->n_test, err);
    if (rc) return rc;
    float *pred = malloc((size_t)(sp->n_test > 0 ? sp->n_test : 1) * sizeof *pred);
    float *label = malloc((size_t)(sp->n_test > 0 ? sp->n_test : 1) * sizeof *label);
    if (!pred || !label) rc = mtr_fail(err, MTR_E_NOMEM, "out of memory for the baselines");
    for (uint32_t t = 0; rc == MTR_OK && t < m->n_tasks; t++) {
        int32_t lc = m->tasks[t].label_column;
        if (ms.tasks[t].reads != MTR_OUT_PREDICTION || lc < 0 || !sp->enc_train.nums[lc] ||
            !sp->enc_test.nums[lc])
            continue;
        double sum = 0.0;
        int64_t n = 0;
        for (int64_t i = 0; i < sp->n_train; i++) {
            float y = sp->enc_train.nums[lc][sp->train_rows[i]];
            if (!isnan(y)) sum += y, n++;
        }
        for (int64_t i = 0; i < sp->n_test; i++) {
            pred[i] = n ? (float)(sum / (double)n) : 0.0f;
            label[i] = sp->enc_test.nums[lc][sp->test_rows[i]];
        }
        rc = metrics_add(&ms, t, pred, label, sp->n_test, err);
    }
    uint32_t *sorted = NULL;
    if (rc == MTR_OK) rc = rows_by_user(m, &sp->enc_test, sp->test_rows, sp->n_test, &sorted, err);
    if (rc == MTR_OK && sorted) {
        RankevalInput in = {.p_eval = r->p_eval,
                            .feeds = &r->feeds[r->p_eval],
                            .test = &sp->enc_test,
                            .test_rows = sorted,
                            .n_test = sp->n_test,
                            .train = &sp->enc_train,
                            .train_rows = sp->train_rows,
                            .n_train = sp->n_train,
                            .batch = 1,
                            .exclude_seen = o->exclude_seen,
                            .scorer = RANKEVAL_POPULARITY};
        rc = rankeval_run(m, &in, &ms, err);
    }
    if (rc == MTR_OK) rc = metrics_report(&ms, out, err);
    free(sorted), free(pred), free(label);
    metrics_free(&ms);
    return rc;
}

static MtrStatus evaluate_test_on(const MtrModel *m, Runner *r, const Split *sp, int64_t batch,
                                  const MtrRunOptions *o, MtrRunResult *res, MtrError *err);

/* Whether the test pass can be split by test rows while the rows stay on
 * their rank: no per-user metric, no --exclude-seen, no --eval-users (each
 * needs every row of a user, or its training rows, on one rank). */
static int split_eval_ok(const MtrModel *m, const MtrRunOptions *o)
{
    if (o->eval_users > 0 || o->exclude_seen) return 0;
    for (uint32_t t = 0; t < m->n_tasks; t++)
        if (rankeval_lists(&m->tasks[t])) return 0;
    return 1;
}

/* The baselines of evaluate_split, on this rank's share (e, rows at[0..n)) of
 * the test rows ordered by user: a ranking task's mean label is the ranks'
 * sums of their training rows' labels added in rank order (the single
 * process adds them in the seeded order: the mean may differ in its last
 * bits); popularity counts the ranks' own training rows and sums the counts
 * (whole numbers: exact). The metrics' counts are then summed. */
static MtrStatus baseline_split(const MtrModel *m, Runner *r, const Split *sp, const Encoded *e,
                                const uint32_t *at, int64_t n, int by_user, MetricsReport *out,
                                MtrError *err)
{
    const MtrDist *d = r->dist;
    uint64_t off = rowshare_offset(sp->rs), n_local = sp->enc_train.n_rows;
    Metrics ms;
    MtrStatus rc = metrics_init(&ms, m, sp->n_test, err);
    if (rc) return rc;
    uint32_t *mine = malloc((size_t)(n_local ? n_local : 1) * sizeof *mine); /* local rows */
    uint8_t *is_train = calloc(n_local ? n_local : 1, 1);
    float *pred = malloc((size_t)(n > 0 ? n : 1) * sizeof *pred);
    float *label = malloc((size_t)(n > 0 ? n : 1) * sizeof *label);
    double sums[2], *all = malloc(2 * (size_t)d->size * sizeof *all);
    int64_t k = 0;
    if (!mine || !is_train || !pred || !label || !all)
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory for the baselines");
    for (int64_t i = 0; rc == MTR_OK && i < sp->n_train; i++)
        if (sp->train_rows[i] >= off && sp->train_rows[i] - off < n_local)
            is_train[sp->train_rows[i] - off] = 1;
    for (uint64_t i = 0; rc == MTR_OK && i < n_local; i++)
        if (is_train[i]) mine[k++] = (uint32_t)i;
    for (uint32_t t = 0; rc == MTR_OK && t < m->n_tasks; t++) {
        int32_t lc = m->tasks[t].label_column;
        if (ms.tasks[t].reads != MTR_OUT_PREDICTION || lc < 0 || !sp->enc_train.nums[lc] ||
            !e->nums[lc])
            continue;
        sums[0] = sums[1] = 0.0;
        for (int64_t i = 0; i < k; i++) {
            float y = sp->enc_train.nums[lc][mine[i]];
            if (!isnan(y)) sums[0] += y, sums[1] += 1.0;
        }
        d->allgather(d->ctx, sums, sizeof sums, all);
        double sum = 0.0, rows = 0.0;
        for (int q = 0; q < d->size; q++) sum += all[2 * q], rows += all[2 * q + 1];
        for (int64_t i = 0; i < n; i++) {
            pred[i] = rows > 0 ? (float)(sum / rows) : 0.0f;
            label[i] = e->nums[lc][at[i]];
        }
        rc = metrics_add(&ms, t, pred, label, n, err);
    }
    if (rc == MTR_OK && by_user) {
        RankevalInput in = {.p_eval = r->p_eval,
                            .feeds = &r->feeds[r->p_eval],
                            .test = e,
                            .test_rows = at,
                            .n_test = n,
                            .train = &sp->enc_train,
                            .train_rows = mine,
                            .n_train = k,
                            .batch = 1,
                            .exclude_seen = 0,
                            .scorer = RANKEVAL_POPULARITY,
                            .dist = d};
        rc = rankeval_run(m, &in, &ms, err);
    }
    if (rc == MTR_OK) rc = mtr_dist_metrics_sum(d, &ms, err);
    if (rc == MTR_OK) rc = metrics_report(&ms, out, err);
    free(mine), free(is_train), free(pred), free(label), free(all);
    metrics_free(&ms);
    return rc;
}

/* The test pass split by test rows while the rows stay on their rank
 * (split_eval_ok): every rank fetches the user of every test row (4 bytes a
 * row) to order them by user as one process does, then only its share of
 * them; the metrics' counts are summed over the ranks. */
static MtrStatus evaluate_split(const MtrModel *m, Runner *r, Split *sp, int64_t batch,
                                const MtrRunOptions *o, MtrRunResult *res, MtrError *err)
{
    int64_t n = sp->n_test, lo, hi;
    int32_t col = eval_user_column(m);
    int by_user = col >= 0 && sp->enc_train.ids && sp->enc_train.ids[col] && n > 0;
    uint32_t *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order), *at = NULL;
    int32_t *uid = by_user ? malloc((size_t)n * sizeof *uid) : NULL;
    Encoded share = {0};
    MtrStatus rc = order && (uid || !by_user)
                       ? MTR_OK
                       : mtr_fail(err, MTR_E_NOMEM, "out of memory ordering the test rows");
    if (rc == MTR_OK && by_user)
        rc = rowshare_fetch_ids(sp->rs, sp->enc_train.ids[col], sp->enc_train.n_rows, sp->test_rows,
                                n, uid, err);
    if (rc == MTR_OK && by_user) { /* by user, stably, by counting (rows_by_user) */
        int32_t max_id = 0;
        for (int64_t i = 0; i < n; i++) max_id = uid[i] > max_id ? uid[i] : max_id;
        int64_t *start = calloc((size_t)max_id + 2, sizeof *start);
        if (!start) {
            rc = mtr_fail(err, MTR_E_NOMEM, "out of memory ordering the test rows");
        } else {
            for (int64_t i = 0; i < n; i++) start[(uid[i] < 0 ? 0 : uid[i]) + 1]++;
            for (int32_t u = 0; u <= max_id; u++) start[u + 1] += start[u];
            for (int64_t i = 0; i < n; i++)
                order[start[uid[i] < 0 ? 0 : uid[i]]++] = sp->test_rows[i];
            free(start);
        }
    } else if (rc == MTR_OK) {
        memcpy(order, sp->test_rows, (size_t)n * sizeof *order);
    }
    free(uid);
    mtr_dist_rows(r->dist, n, &lo, &hi);
    if (rc == MTR_OK) rc = rows_fetch(m, sp, order + lo, hi - lo, &share, &at, err);
    free(order);
    Metrics ms;
    if (rc == MTR_OK && (rc = metrics_init(&ms, m, n, err)) == MTR_OK) {
        double t0 = report_clock();
        ReportProgress prog = {0};
        if (o->progress) report_progress_init(&prog, o->progress, 0);
        embed_items(m, r, &share);
        Metrics *all = &ms;
        rc = eval_rows(m, r, &share, at, hi - lo, batch, &all, 1, o->progress ? &prog : NULL, t0, 0,
                       hi - lo, err);
        if (rc == MTR_OK) rc = mtr_dist_metrics_sum(r->dist, &ms, err);
        if (o->progress) report_progress_clear(&prog);
        res->eval_seconds = report_clock() - t0;
        res->rows_sampled = n;
        res->unrankable = 0;
        if (rc == MTR_OK) rc = metrics_report(&ms, &res->test, err);
        metrics_free(&ms);
    }
    if (rc == MTR_OK && !o->no_baseline &&
        (rc = baseline_split(m, r, sp, &share, at, hi - lo, by_user, &res->baseline, err)))
        metrics_report_free(&res->test);
    bind_encoded_free(m, &share);
    free(at);
    return rc;
}

/* The test pass: all test rows, or with --eval-users a sample of users. When
 * the rows stay on their rank, every rank first fetches every row's encoded
 * columns (not the text, not the coded table): the per-user pass and the
 * baselines read all of the test and training rows on every rank. */
static MtrStatus evaluate_test(const MtrModel *m, Runner *r, Split *sp, int64_t batch,
                               const MtrRunOptions *o, MtrRunResult *res, MtrError *err)
{
    if (!sp->rs) return evaluate_test_on(m, r, sp, batch, o, res, err);
    bind_encoded_free(m, &sp->epoch); /* the training's rows are done with */
    bind_encoded_free(m, &sp->valid);
    if (split_eval_ok(m, o) && !getenv("MTR_DIST_EVAL_GATHER"))
        return evaluate_split(m, r, sp, batch, o, res, err);
    Encoded every = {0};
    MtrStatus rc = rowshare_gather_all(sp->rs, m, &sp->enc_train, &every, err);
    if (rc) return rc;
    bind_encoded_free(m, &sp->enc_train); /* nothing reads this rank's own rows after */
    sp->enc_test = sp->enc_train;
    Split whole = *sp;
    whole.enc_train = whole.enc_test = every;
    whole.rs = NULL;
    rc = evaluate_test_on(m, r, &whole, batch, o, res, err);
    bind_encoded_free(m, &every);
    return rc;
}

static MtrStatus evaluate_test_on(const MtrModel *m, Runner *r, const Split *sp, int64_t batch,
                                  const MtrRunOptions *o, MtrRunResult *res, MtrError *err)
{
    Seen seen = {&sp->enc_train, sp->train_rows, sp->n_train, o->exclude_seen, &res->unrankable};
    if (o->eval_users > 0)
        return evaluate_users(m, r, &sp->enc_test, sp->test_rows, sp->n_test, batch, &seen, o, res,
                              err);
    res->rows_sampled = sp->n_test;
    MtrStatus rc = evaluate(m, r, &sp->enc_test, sp->test_rows, sp->n_test, batch, &seen,
                            &res->test, &res->eval_seconds, o->progress, err);
    if (rc == MTR_OK && !o->no_baseline && (rc = baseline(m, r, sp, o, &res->baseline, err)))
        metrics_report_free(&res->test); /* a failed pass returns nothing to free */
    return rc;
}

static void write_test_line(const MtrRunOptions *o, const MtrRunResult *res)
{
    if (!o->metrics) return;
    ReportJson j;
    /* the baselines first, so that the test line stays the file's last */
    if (res->baseline.n > 0) {
        report_json_begin(&j, o->metrics, "baseline");
        if (o->fold > 0) report_json_int(&j, "fold", o->fold);
        report_json_metrics(&j, &res->baseline);
        report_json_end(&j, "metrics", NULL);
    }
    report_json_begin(&j, o->metrics, o->phase ? o->phase : "test");
    if (o->fold > 0) report_json_int(&j, "fold", o->fold);
    if (res->best_epoch > 0) report_json_int(&j, "best_epoch", res->best_epoch);
    report_json_metrics(&j, &res->test);
    if (o->eval_users > 0) {
        report_json_int(&j, "eval_users", res->users_sampled);
        report_json_int(&j, "eval_rows", res->rows_sampled);
        char key[METRICS_NAME_MAX + 8];
        for (uint32_t i = 0; i < res->test_ci95.n; i++) {
            if (isnan(res->test_ci95.entries[i].value)) continue;
            snprintf(key, sizeof key, "%s_ci95", res->test_ci95.entries[i].name);
            report_json_num(&j, key, res->test_ci95.entries[i].value);
        }
    }
    report_json_end(&j, "metrics", NULL);
}

/* After epoch e: the validation rows' metrics, printed and written as phase
 * "valid"; *stop when early stopping's patience ran out. */
static MtrStatus validate(const MtrModel *m, Runner *r, const Encoded *enc, const uint32_t *rows,
                          int64_t n, int64_t batch, const MtrRunOptions *o, int e, int *stop,
                          MtrError *err)
{
    MetricsReport valid = {0};
    MtrStatus rc = evaluate(m, r, enc, rows, n, batch, NULL, &valid, NULL, o->progress, err);
    if (rc) return rc;
    if (o->progress) {
        fprintf(o->progress, "validation after epoch %d:", e);
        for (uint32_t i = 0; i < valid.n; i++)
            fprintf(o->progress, " %s %.4f", valid.entries[i].name, valid.entries[i].value);
        fputc('\n', o->progress);
    }
    if (o->metrics) {
        ReportJson j;
        report_json_begin(&j, o->metrics, "valid");
        if (o->fold > 0) report_json_int(&j, "fold", o->fold);
        report_json_int(&j, "epoch", e);
        report_json_metrics(&j, &valid);
        report_json_end(&j, "metrics", NULL);
    }
    *stop = control_epoch_end(&r->ctl, r->s, e, &valid);
    metrics_report_free(&valid);
    return MTR_OK;
}

/* One training step over rows[0..n): this rank's share of them under data
 * parallelism (mtr/dist.h), else all of them. Returns the rows it fed. */
static int64_t train_step(const MtrModel *m, Runner *r, DistStep *dist, const MtrRunOptions *o,
                          const Encoded *e, const uint32_t *fed, const uint32_t *rows, int64_t n,
                          uint64_t seed)
{
    int64_t lo, hi;
    mtr_dist_rows(dist ? o->dist : NULL, n, &lo, &hi);
    /* fed: the share's rows in e when e holds only this rank's (rows_fetch) */
    bind_feed(r->s, m, &r->feeds[r->p_train], e, fed ? fed : rows + lo, hi - lo);
    negatives_fill(r->neg, r->s, seed, r->neg_step++);
    mask_samples(m, r, rows + lo, hi - lo, seed);
    if (dist) {
        control_step_begin(&r->ctl, r->s);
        mtr_dist_step_gradients(dist, n);
        control_clip_gradients(&r->ctl, r->s, n);
        mtr_dist_step_updates(dist, n);
    } else {
        control_run_step(&r->ctl, r->s, n);
    }
    return hi - lo;
}

/* Global rows of the batches one fetch_window brings (about): enough that
 * the all-to-alls are few (32 batches of 8,192 rows a window), few enough
 * that a rank's window (and the fetch's buffers, about three times its rows)
 * stays small whatever the data's size. */
#define FETCH_WINDOW_ROWS (1 << 18)

/* This rank's shares of batches [b0, b1) of the epoch (the training rows in
 * their order for this epoch), fetched from the ranks that hold them into
 * sp->epoch, in the order the steps feed them: one all-to-all a window of
 * batches rather than one a step. */
static MtrStatus fetch_window(const MtrModel *m, Split *sp, const MtrDist *d, int64_t batch,
                              int64_t b0, int64_t b1, MtrError *err)
{
    int64_t most = (b1 - b0) * batch < sp->n_train ? (b1 - b0) * batch : sp->n_train;
    uint32_t *want = malloc((size_t)(most > 0 ? most : 1) * sizeof *want);
    if (!want) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    int64_t k = 0;
    for (int64_t b = b0; b < b1; b++) {
        int64_t off = b * batch, n = sp->n_train - off < batch ? sp->n_train - off : batch, lo, hi;
        mtr_dist_rows(d, n, &lo, &hi);
        memcpy(want + k, sp->train_rows + off + lo, (size_t)(hi - lo) * sizeof *want);
        k += hi - lo;
    }
    MtrStatus rc = rows_fetch(m, sp, want, k, &sp->epoch, &sp->epoch_at, err);
    free(want);
    if (rc == MTR_OK && getenv("MTR_DEBUG_ROWS"))
        fprintf(stderr, "rank %d: %llu rows held, %lld fetched for batches %lld-%lld, of %llu\n",
                d->rank, (unsigned long long)sp->enc_train.n_rows, (long long)k, (long long)b0 + 1,
                (long long)b1, (unsigned long long)rowshare_rows(sp->rs));
    return rc;
}

static MtrStatus run_fold_on(const MtrModel *m, Runner *r, Split *sp, const MtrRunOptions *o,
                             MtrRunResult *res, DistStep *dist, MtrError *err);

/* Trains from the runner's current parameters over the split's training rows,
 * then evaluates on its test rows. */
static MtrStatus run_fold(const MtrModel *m, Runner *r, Split *sp, const MtrRunOptions *o,
                          MtrRunResult *res, MtrError *err)
{
    DistStep *dist = NULL;
    if (o->dist && o->dist->size > 1) {
        int64_t batch = knob_int(m, MTR_KNOB_BATCH, 8192), last = sp->n_train % batch;
        if ((sp->n_train < batch ? sp->n_train : last ? last : batch) < o->dist->size)
            return mtr_fail(err, MTR_E_ARG,
                            "a batch of %lld rows cannot be shared by %d ranks: change "
                            "train.batch or the number of ranks",
                            (long long)(sp->n_train < batch ? sp->n_train : last), o->dist->size);
        MtrStatus rc = mtr_dist_step_new(o->dist, m, r->s, r->p_train, r->batch, &dist, err);
        if (rc) return rc;
    }
    MtrStatus rc = run_fold_on(m, r, sp, o, res, dist, err);
    if (rc == MTR_OK && dist && o->progress)
        fprintf(o->progress,
                "%d ranks: %.0f bytes sent per step by rank %d, %.2f s of training in "
                "collectives\n",
                o->dist->size, mtr_dist_step_bytes(dist), o->dist->rank,
                mtr_dist_step_comm_seconds(dist));
    mtr_dist_step_free(dist);
    return rc;
}

static MtrStatus run_fold_on(const MtrModel *m, Runner *r, Split *sp, const MtrRunOptions *o,
                             MtrRunResult *res, DistStep *dist, MtrError *err)
{
    int64_t batch = knob_int(m, MTR_KNOB_BATCH, 8192);
    int epochs = knob_int(m, MTR_KNOB_EPOCHS, 3);
    uint64_t seed = (uint64_t)knob_int(m, MTR_KNOB_SEED, 42);
    MtrStatus rc = MTR_OK;
    Rng order;
    rng_seed(&order, seed ^ 0x0bade5ull);
    res->n_train = sp->n_train;
    res->n_test = sp->n_test;
    res->skipped += sp->skipped;
    res->test_oov = sp->given ? sp->enc_test.oov : 0;
    res->train_oov = sp->given ? sp->enc_train.oov : 0;
    if (sp->given && (rc = count_overlap(m, sp, &res->overlap, err))) return rc;
    /* validation: a seeded share of the training rows, held out at their end */
    int64_t n_valid = 0;
    if (knob(m, MTR_KNOB_VALIDATION, 0) > 0 &&
        (rc = control_hold_out(sp->train_rows, sp->n_train, knob(m, MTR_KNOB_VALIDATION, 0), seed,
                               &n_valid, err)))
        return rc;
    sp->n_train -= n_valid;
    const uint32_t *valid_rows = sp->train_rows + sp->n_train;
    const Encoded *valid_enc = &sp->enc_train;
    res->n_train = sp->n_train;
    res->n_valid = n_valid;
    if (sp->rs && n_valid > 0) { /* the validation rows, fetched once */
        if ((rc = rows_fetch(m, sp, valid_rows, n_valid, &sp->valid, &sp->valid_at, err)))
            return rc;
        valid_rows = sp->valid_at;
        valid_enc = &sp->valid;
    }
    negatives_free(r->neg);
    r->neg = NULL;
    r->neg_step = 0;
    if ((rc = negatives_new(m, r->p_train, &sp->enc_train, sp->train_rows, sp->n_train, &r->neg,
                            err)))
        return rc;
    MtrArenaSizes sz = mtr_session_sizes(r->s);
    res->step_arena = sz.step_arena, res->param_arena = sz.param_arena;
    res->step_unshared = sz.step_unshared;
    if (!o->order_file) rng_shuffle_u32(&order, sp->train_rows, (uint64_t)sp->n_train);
    mtr_session_profile(r->s, o->profile != NULL);

    ReportProgress prog;
    if (o->progress) report_progress_init(&prog, o->progress, epochs);
    int64_t n_batches = (sp->n_train + batch - 1) / batch, step = 0;
    control_free(&r->ctl);
    if ((rc = control_init(&r->ctl, m, r->s, r->p_train, epochs, n_batches, err))) return rc;
    double t_train = report_clock(), rows_sent = rowshare_sent(sp->rs);
    int64_t steps = 0;
    int ran = 0;
    for (int e = 1; e <= epochs; e++) {
        if (o->reshuffle && e > 1 && !o->order_file)
            rng_shuffle_u32(&order, sp->train_rows, (uint64_t)sp->n_train);
        double t0 = report_clock(), loss_sum = 0;
        memset(r->task_sum, 0, m->n_tasks * sizeof *r->task_sum);
        int64_t fed = 0, window = FETCH_WINDOW_ROWS / batch; /* rows of sp->epoch fed so far */
        window = window < 1 ? 1 : window;
        for (int64_t b = 0; b < n_batches; b++) {
            int64_t off = b * batch, n = sp->n_train - off < batch ? sp->n_train - off : batch;
            if (sp->rs && b % window == 0) {
                int64_t b1 = b + window < n_batches ? b + window : n_batches;
                if ((rc = fetch_window(m, sp, o->dist, batch, b, b1, err))) return rc;
                fed = 0;
            }
            fed += train_step(m, r, dist, o, sp->rs ? &sp->epoch : &sp->enc_train,
                              sp->rs ? sp->epoch_at + fed : NULL, sp->train_rows + off, n, seed);
            double loss = *(float *)mtr_session_tensor(r->s, r->loss);
            if (!isfinite(loss)) {
                if (o->progress && prog.tty) fputc('\n', o->progress);
                return mtr_fail(err, MTR_E_STATE,
                                "training diverged: the loss is %g at epoch %d, batch %lld; "
                                "try a smaller optimizer.lr (nothing was saved)",
                                loss, e, (long long)b + 1);
            }
            if (o->stop && o->stop(o->stop_ctx))
                return mtr_fail(err, MTR_E_STATE, "stopped at epoch %d, batch %lld", e,
                                (long long)b + 1);
            loss_sum += loss;
            steps++;
            for (uint32_t t = 0; t < m->n_tasks; t++)
                r->task_sum[t] += *(float *)mtr_session_tensor(r->s, r->task_loss[t]);
            if (o->step_log) log_step(m, r, o->step_log, o->fold, ++step, e, n, loss);
            if (o->progress) {
                double dt = report_clock() - t0;
                /* The run's time left, at the pace of its batches so far. */
                double done = (double)(e - 1) * (double)n_batches + (double)(b + 1);
                double left = (double)epochs * (double)n_batches - done;
                report_progress_update(
                    &prog, e, b + 1, n_batches, dt > 0 ? (double)(off + n) / dt : 0,
                    loss_sum / (double)(b + 1), (report_clock() - t_train) * left / done);
            }
        }
        double dt = report_clock() - t0;
        res->last_loss = n_batches ? loss_sum / (double)n_batches : 0;
        if (o->progress) {
            report_progress_epoch_end(&prog, e, n_batches, dt > 0 ? (double)sp->n_train / dt : 0,
                                      res->last_loss, dt);
            print_learned_weights(m, r, o->progress, e);
        }
        MetricsReport train_metrics = {0};
        if (o->train_metrics && sp->rs) { /* every training row, fetched for the pass */
            if ((rc = rows_fetch(m, sp, sp->train_rows, sp->n_train, &sp->epoch, &sp->epoch_at,
                                 err)) ||
                (rc = evaluate(m, r, &sp->epoch, sp->epoch_at, sp->n_train, batch, NULL,
                               &train_metrics, NULL, o->progress, err)))
                return rc;
        } else if (o->train_metrics &&
                   (rc = evaluate(m, r, &sp->enc_train, sp->train_rows, sp->n_train, batch, NULL,
                                  &train_metrics, NULL, o->progress, err))) {
            return rc;
        }
        if (o->metrics) {
            ReportJson j;
            char key[300];
            report_json_begin(&j, o->metrics, "train");
            if (o->fold > 0) report_json_int(&j, "fold", o->fold);
            report_json_int(&j, "epoch", e);
            report_json_num(&j, "loss", res->last_loss);
            for (uint32_t t = 0; t < m->n_tasks; t++) {
                snprintf(key, sizeof key, "%s.loss", m->tasks[t].name);
                report_json_num(&j, key, n_batches ? r->task_sum[t] / (double)n_batches : 0);
            }
            /* learned loss weights (weight auto): exp(-s) of each task's log-variance */
            for (uint32_t t = 0; t < m->n_tasks; t++) {
                int32_t s = mtr_program_output(m, r->p_train, MTR_OUT_LOG_VARIANCE, (int32_t)t);
                if (s < 0) continue;
                double lv = *(const float *)mtr_session_tensor(r->s, s);
                snprintf(key, sizeof key, "%s.learned_weight", m->tasks[t].name);
                report_json_num(&j, key, exp(-lv));
            }
            if (o->timings) report_json_num(&j, "seconds", dt);
            report_json_metrics(&j, &train_metrics);
            report_json_end(&j, "metrics", NULL);
        }
        metrics_report_free(&train_metrics);
        ran = e;
        if (n_valid > 0) {
            int stop = 0;
            if ((rc = validate(m, r, valid_enc, valid_rows, n_valid, batch, o, e, &stop, err)))
                return rc;
            if (stop) break;
        }
    }
    res->epochs = ran;
    res->best_epoch = control_restore_best(&r->ctl, r->s, ran);
    res->best_valid = r->ctl.best;
    if (res->best_epoch > 0) snprintf(res->best_metric, sizeof res->best_metric, "%s", r->ctl.name);
    res->train_seconds = report_clock() - t_train;
    if (o->profile) print_profile(r->s, o->profile, res);
    if (sp->rs && o->progress && steps > 0)
        fprintf(o->progress, "rank %d: %.0f bytes of encoded training rows sent per step\n",
                o->dist->rank, (rowshare_sent(sp->rs) - rows_sent) / (double)steps);
    if (sp->n_test > 0) rc = evaluate_test(m, r, sp, batch, o, res, err);
    if (rc == MTR_OK) write_test_line(o, res);
    return rc;
}

/* Replaces the session's initial parameters by those of an export folder
 * (<tensor>.npy files, as `mtrun MODEL export` writes them), so that a run can
 * start from the same weights as another implementation. Every parameter's
 * file must be there with the bound shape. */
static MtrStatus load_init(const MtrModel *m, MtrSession *s, const char *dir, MtrError *err)
{
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        if (ten->role != MTR_ROLE_PARAM) continue;
        char stem[512], path[4096];
        mtr_npy_file_stem(stem, sizeof stem, ten->name);
        snprintf(path, sizeof path, "%s/%s.npy", dir, stem);
        float *data = NULL;
        int rank = 0;
        int64_t shape[MTR_MAX_RANK] = {1, 1, 1};
        MtrStatus rc = mtr_npy_read(path, &data, &rank, shape, err);
        if (rc) return rc;
        int64_t want = mtr_session_tensor_elems(s, (int32_t)t, 1);
        int64_t have = 1;
        for (int d = 0; d < rank; d++) have *= shape[d];
        if (rank != ten->rank || have != want) {
            free(data);
            return mtr_fail(err, MTR_E_SHAPE,
                            "%s: %lld elements of rank %d, parameter '%s' needs %lld of rank %d",
                            path, (long long)have, rank, ten->name, (long long)want, ten->rank);
        }
        memcpy(mtr_session_tensor(s, (int32_t)t), data, (size_t)want * sizeof *data);
        free(data);
    }
    return MTR_OK;
}

static int64_t train_batch(const MtrModel *m)
{
    return knob_int(m, MTR_KNOB_BATCH, 8192);
}

/* The batch the buffers are sized for: no batch of this split has more rows
 * than its larger side, so a train.batch beyond that would only waste memory. */
static int64_t bound_batch(const MtrModel *m, const Split *sp)
{
    int64_t most = sp->n_train > sp->n_test ? sp->n_train : sp->n_test;
    int64_t b = train_batch(m);
    return b < most ? b : (most > 0 ? most : 1);
}

MtrStatus mtr_run_train(MtrModel *m, const MtrRunOptions *o, MtrRunResult *res, MtrError *err)
{
    MtrDataset *ds = NULL;
    Split sp;
    Runner r;
    memset(res, 0, sizeof *res);
    if (train_batch(m) <= 0) return mtr_fail(err, MTR_E_ARG, "train.batch must be positive");
    /* Training a trained model continues from its parameters, which need its
     * vocabularies: rebuilding them from the data could change the sizes. */
    int keep = m->trained && !o->fresh && !o->init_dir;
    Local loc;
    MtrStatus rc = data_load(m, o, !keep, &loc, &ds, err);
    if (rc) return rc;
    res->skipped = ds->skipped;
    res->side_missing = ds->side_missing;
    if ((rc = split_make(m, ds, o, &sp, keep ? NULL : m, &loc, err))) {
        mtr_data_free(ds);
        local_free(&loc);
        return rc;
    }
    if (sp.rs) mtr_table_free(&ds->ratings); /* encoded: this rank's text table is done with */
    if ((rc = runner_new(m, bound_batch(m, &sp), &r, err)) == MTR_OK) {
        r.dist = o->dist;
        if (keep) {
            rc = mtr_session_load_params(r.s, m, err);
        } else {
            Rng init;
            rng_seed(&init, (uint64_t)knob_int(m, MTR_KNOB_SEED, 42) ^ 0x5eed1a17ull);
            mtr_session_init_params(r.s, &init);
            if (o->init_dir) rc = load_init(m, r.s, o->init_dir, err);
        }
        if (rc == MTR_OK) rc = run_fold(m, &r, &sp, o, res, err);
        if (rc == MTR_OK) rc = mtr_session_store_params(r.s, m, err);
        runner_free(&r);
    }
    split_free(m, &sp);
    mtr_data_free(ds);
    local_free(&loc);
    if (rc != MTR_OK) { /* a failed run returns nothing to free */
        metrics_report_free(&res->test);
        metrics_report_free(&res->baseline);
    }
    return rc;
}

MtrStatus mtr_run_eval(MtrModel *m, const MtrRunOptions *o, MtrRunResult *res, MtrError *err)
{
    MtrDataset *ds = NULL;
    Split sp;
    Runner r;
    memset(res, 0, sizeof *res);
    if (!m->trained)
        return mtr_fail(err, MTR_E_STATE, "the model is not trained: run training first");
    if (train_batch(m) <= 0) return mtr_fail(err, MTR_E_ARG, "train.batch must be positive");
    Local loc;
    MtrStatus rc = data_load(m, o, 0, &loc, &ds, err);
    if (rc) return rc;
    if ((rc = split_make(m, ds, o, &sp, NULL, &loc, err))) {
        mtr_data_free(ds);
        local_free(&loc);
        return rc;
    }
    if (sp.rs) mtr_table_free(&ds->ratings); /* encoded: this rank's text table is done with */
    res->n_train = sp.n_train;
    res->n_test = sp.n_test;
    res->test_oov = sp.enc_test.oov;
    if ((rc = runner_new(m, bound_batch(m, &sp), &r, err)) == MTR_OK) {
        r.dist = o->dist;
        rc = mtr_session_load_params(r.s, m, err);
        if (rc == MTR_OK && sp.n_test == 0)
            rc = mtr_fail(err, MTR_E_DATA, "no test rows to evaluate");
        mtr_session_profile(r.s, o->profile != NULL); /* eval --profile: the pass's ops */
        if (rc == MTR_OK) rc = evaluate_test(m, &r, &sp, train_batch(m), o, res, err);
        if (rc == MTR_OK && o->profile) print_profile(r.s, o->profile, res);
        if (rc == MTR_OK) write_test_line(o, res);
        runner_free(&r);
    }
    split_free(m, &sp);
    mtr_data_free(ds);
    local_free(&loc);
    return rc;
}

MtrStatus mtr_run_cv(MtrModel *m, const MtrRunOptions *o, int n_folds, const char *const *folds,
                     MtrRunResult *results, MtrError *err)
{
    MtrDataset *ds = NULL;
    Runner r;
    for (int f = 0; f < n_folds; f++) memset(&results[f], 0, sizeof results[f]);
    if (train_batch(m) <= 0) return mtr_fail(err, MTR_E_ARG, "train.batch must be positive");
    /* Vocabularies from the whole folder, so every fold shares them and the
     * arenas bound once serve every fold. */
    MtrStatus rc = data_load(m, o, 1, NULL, &ds, err);
    if (rc) return rc;
    if ((rc = runner_new(m, train_batch(m), &r, err))) {
        mtr_data_free(ds);
        return rc;
    }
    r.dist = o->dist;
    size_t dl = strlen(o->data_dir);
    /* Every fold's files first: a typo in the last fold should not cost the
     * training of the others. */
    for (int f = 0; f < n_folds && rc == MTR_OK; f++) {
        static const char *const ext[] = {"base", "test"};
        for (int k = 0; k < 2 && rc == MTR_OK; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.%s", o->data_dir, folds[f], ext[k]);
            FILE *probe = fopen(path, "rb");
            if (!probe)
                rc = mtr_fail(err, MTR_E_DATA, "%s: cannot open fold %s's file", path, folds[f]);
            else
                fclose(probe);
        }
    }
    for (int f = 0; f < n_folds && rc == MTR_OK; f++) {
        size_t n = dl + strlen(folds[f]) + 8;
        char *train = malloc(n), *test = malloc(n);
        Split sp;
        if (!train || !test) {
            rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        } else {
            snprintf(train, n, "%s/%s.base", o->data_dir, folds[f]);
            snprintf(test, n, "%s/%s.test", o->data_dir, folds[f]);
            rc = split_given(m, ds, o, train, test, &sp, m, err);
            if (rc == MTR_OK) rc = split_logq(m, &sp, err);
        }
        if (rc == MTR_OK) {
            Rng init;
            MtrRunOptions fo = *o;
            fo.fold = f + 1;
            rng_seed(&init, (uint64_t)knob_int(m, MTR_KNOB_SEED, 42) ^ 0x5eed1a17ull);
            mtr_session_init_params(r.s, &init);
            if (o->init_dir) rc = load_init(m, r.s, o->init_dir, err);
            results[f].skipped = ds->skipped;
            if (rc == MTR_OK) rc = run_fold(m, &r, &sp, &fo, &results[f], err);
            split_free(m, &sp);
        }
        free(train);
        free(test);
    }
    runner_free(&r);
    mtr_data_free(ds);
    return rc;
}

MtrStatus mtr_run_seen_items(MtrModel *m, const MtrRunOptions *o, int n, const char *const *names,
                             const char *const *values, int32_t task, uint8_t *seen, MtrError *err)
{
    memset(seen, 0, m->items.n);
    if (!m->trained) return mtr_fail(err, MTR_E_STATE, "the model is not trained: train it first");
    int32_t uc = rankeval_user_column(m);
    const char *user = NULL;
    for (int i = 0; uc >= 0 && i < n; i++)
        if (strcmp(names[i], m->columns[uc].name) == 0) user = values[i];
    if (!user)
        return uc >= 0 ? mtr_fail(err, MTR_E_ARG, "--exclude-seen needs the query's %s",
                                  m->columns[uc].name)
                       : mtr_fail(err, MTR_E_ARG, "--exclude-seen: %s", rankeval_no_user);
    /* The item key: the column whose true row the task's ranking reads. */
    int p_eval = mtr_model_program(m, MTR_PROG_EVAL);
    int32_t key = -1, key_ix = -1, uid = -1;
    ProgramFeeds feeds;
    MtrStatus rc = bind_feeds(m, p_eval, &feeds, err);
    if (rc) return rc;
    for (uint32_t t = 0; t < m->n_tasks && key < 0; t++) {
        if (task >= 0 && (int32_t)t != task) continue;
        int32_t rank = mtr_program_output(m, p_eval, MTR_OUT_RANK, (int32_t)t);
        const MtrProgram *p = &m->programs[p_eval];
        for (uint32_t i = 0; rank >= 0 && i < p->n_ops; i++) {
            if (p->ops[i].kind != OP_RETRIEVAL_RANK || p->ops[i].out[0] != rank) continue;
            for (uint32_t f = 0; f < feeds.n; f++)
                if (feeds.feeds[f].tensor == p->ops[i].in[2] &&
                    feeds.feeds[f].kind == FEED_TRUE_ROW)
                    key = feeds.feeds[f].column;
        }
    }
    bind_feeds_free(&feeds);
    for (uint32_t k = 0; k < m->items.n_columns; k++)
        if (m->items.columns[k] == key) key_ix = (int32_t)k;
    if (key < 0 || key_ix < 0)
        return mtr_fail(err, MTR_E_STATE, "the model has no retrieval task to recommend with");
    for (uint32_t v = 0; v < m->n_vocabs && uid < 0; v++) {
        if (m->vocabs[v].column != uc) continue;
        MtrVocabIndex *ix;
        if ((rc = mtr_vocab_index_new(&m->vocabs[v], &ix, err))) return rc;
        uid = mtr_vocab_id(ix, user);
        mtr_vocab_index_free(ix);
    }
    if (uid <= 0) return MTR_OK; /* an unknown user has seen nothing */
    MtrDataset *ds = NULL;
    Split sp;
    if ((rc = data_load(m, o, 0, NULL, &ds, err))) return rc;
    if ((rc = split_make(m, ds, o, &sp, NULL, NULL, err)) == MTR_OK) {
        const int32_t *u = sp.enc_train.ids[uc], *kk = sp.enc_train.ids[key];
        uint32_t n_keys = 0;
        for (uint32_t v = 0; v < m->n_vocabs; v++)
            if (m->vocabs[v].column == key) n_keys = m->vocabs[v].n + 1;
        uint8_t *keys = u && kk ? calloc(n_keys ? n_keys : 1, 1) : NULL;
        if (!keys) {
            rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        } else {
            for (int64_t i = 0; i < sp.n_train; i++) {
                uint32_t row = sp.train_rows[i];
                if (u[row] == uid && kk[row] >= 0 && (uint32_t)kk[row] < n_keys) keys[kk[row]] = 1;
            }
            for (uint32_t i = 0; i < m->items.n; i++) {
                int32_t id = m->items.ids[key_ix][i];
                seen[i] = id >= 0 && (uint32_t)id < n_keys && keys[id];
            }
        }
        free(keys);
        split_free(m, &sp);
    }
    mtr_data_free(ds);
    return rc;
}

/* ---- one run of a sweep at a time (train.h; the driver is sweep.c) */

struct TrainSlot {
    const MtrModel *m; /* the model r is bound for */
    Runner r;
    int64_t bound; /* the batch r is bound for, or -1 */
    Split sp;
    int split; /* sp holds a split */
};

MtrStatus train_data_load(MtrModel *m, const MtrRunOptions *o, MtrDataset **ds, MtrError *err)
{
    return data_load(m, o, 1, NULL, ds, err);
}

TrainSlot *train_slot_new(void)
{
    TrainSlot *t = calloc(1, sizeof *t);
    if (t) t->bound = -1;
    return t;
}

void train_slot_free(TrainSlot *t)
{
    if (!t) return;
    if (t->split) split_free(t->m, &t->sp);
    if (t->bound >= 0) runner_free(&t->r);
    free(t);
}

MtrStatus train_slot_prepare(TrainSlot *t, MtrModel *m, const MtrDataset *ds,
                             const MtrRunOptions *o, MtrError *err)
{
    if (t->split) split_free(t->m, &t->sp);
    t->split = 0;
    if (t->bound >= 0 && t->m != m) {
        runner_free(&t->r);
        t->bound = -1;
    }
    t->m = m;
    if (train_batch(m) <= 0) return mtr_fail(err, MTR_E_ARG, "train.batch must be positive");
    MtrStatus rc = split_make(m, ds, o, &t->sp, m, NULL, err);
    if (rc) return rc;
    t->split = 1;
    /* The arenas are bound once, again only when a setting changes the batch. */
    int64_t batch = bound_batch(m, &t->sp);
    if (batch != t->bound) {
        if (t->bound >= 0) runner_free(&t->r);
        rc = runner_new(m, batch, &t->r, err);
        t->bound = rc == MTR_OK ? batch : -1;
    } else {
        for (uint32_t k = 0; k < m->n_knobs; k++)
            mtr_session_set_knob(t->r.s, (int)k, m->knobs[k].value);
    }
    return rc;
}

/* The bytes of an encoded table's columns. */
static size_t encoded_bytes(const MtrModel *m, const Encoded *e)
{
    size_t n = 0, rows = (size_t)e->n_rows;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        size_t width = m->columns[c].is_list && m->columns[c].max_len ? m->columns[c].max_len : 1;
        if (e->ids && e->ids[c]) n += rows * width * sizeof(int32_t);
        if (e->nums && e->nums[c]) n += rows * sizeof(float);
        if (e->true_row && e->true_row[c]) n += rows * sizeof(int32_t);
        if (e->logq && e->logq[c]) n += rows * sizeof(float);
    }
    return n;
}

size_t train_slot_bytes(const TrainSlot *t)
{
    if (t->bound < 0 || !t->split) return 0;
    MtrArenaSizes sz = mtr_session_sizes(t->r.s);
    size_t n = sz.step_arena + 2 * sz.param_arena; /* early stopping keeps a copy */
    n += encoded_bytes(t->m, &t->sp.enc_train);
    if (!t->sp.shared) n += encoded_bytes(t->m, &t->sp.enc_test);
    return n + (size_t)(t->sp.n_train + t->sp.n_test) * sizeof(uint32_t);
}

MtrStatus train_slot_run(TrainSlot *t, const MtrDataset *ds, const MtrRunOptions *o,
                         MtrRunResult *res, MtrError *err)
{
    if (!t->split || t->bound < 0)
        return mtr_fail(err, MTR_E_STATE, "the run was not prepared"); /* a caller's bug */
    const MtrModel *m = t->m;
    Rng init;
    rng_seed(&init, (uint64_t)knob_int(m, MTR_KNOB_SEED, 42) ^ 0x5eed1a17ull);
    mtr_session_init_params(t->r.s, &init);
    MtrStatus rc = o->init_dir ? load_init(m, t->r.s, o->init_dir, err) : MTR_OK;
    res->skipped = ds->skipped;
    if (rc == MTR_OK) rc = run_fold(m, &t->r, &t->sp, o, res, err);
    split_free(m, &t->sp);
    t->split = 0;
    return rc;
}
