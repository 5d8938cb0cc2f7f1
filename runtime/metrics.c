/* Evaluation metrics (runtime stage: evaluate). In: each eval_step batch's
 * predictions or ranks, with labels. Out: RMSE, MAE, AUC and top-k accuracy per
 * task, named as metrics.h describes. Storage is sized once by the number of
 * test rows; adding a batch never allocates. */
#include "mtr/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- regression */

void metrics_regression_reset(MetricsRegression *r)
{
    r->rows = 0;
    r->sum_sq = 0.0;
    r->sum_abs = 0.0;
    r->sum_log = 0.0;
}

void metrics_regression_add(MetricsRegression *r, const float *pred /* (B,1) */,
                            const float *label /* (B) */, int64_t rows)
{
    double sq = 0.0, ab = 0.0, lg = 0.0;
    int64_t n = 0;
    for (int64_t i = 0; i < rows; i++) {
        if (isnan(label[i])) continue; /* a missing label counts nowhere */
        n++;
        double d = (double)pred[i] - (double)label[i];
        sq += d * d;
        ab += fabs(d);
        double p = pred[i] < 1e-7f ? 1e-7 : pred[i] > 1 - 1e-7f ? 1 - 1e-7 : (double)pred[i];
        lg -= (double)label[i] * log(p) + (1.0 - (double)label[i]) * log(1.0 - p);
    }
    r->sum_sq += sq;
    r->sum_abs += ab;
    r->sum_log += lg;
    r->rows += n;
}

double metrics_regression_rmse(const MetricsRegression *r)
{
    return r->rows > 0 ? sqrt(r->sum_sq / (double)r->rows) : NAN;
}

double metrics_regression_mse(const MetricsRegression *r)
{
    return r->rows > 0 ? r->sum_sq / (double)r->rows : NAN;
}

double metrics_regression_log_loss(const MetricsRegression *r)
{
    return r->rows > 0 ? r->sum_log / (double)r->rows : NAN;
}

double metrics_regression_mae(const MetricsRegression *r)
{
    return r->rows > 0 ? r->sum_abs / (double)r->rows : NAN;
}

/* ---- AUC */

MtrStatus metrics_auc_init(MetricsAuc *a, int64_t capacity, MtrError *err)
{
    memset(a, 0, sizeof *a);
    if (capacity < 0 || (uint64_t)capacity > SIZE_MAX / sizeof(MetricsScored))
        return mtr_fail(err, MTR_E_ARG, "metrics: AUC capacity %lld rows is out of range",
                        (long long)capacity);
    a->pairs = malloc(capacity > 0 ? (size_t)capacity * sizeof(MetricsScored) : 1);
    if (!a->pairs)
        return mtr_fail(err, MTR_E_NOMEM, "metrics: out of memory for %lld AUC rows",
                        (long long)capacity);
    a->capacity = capacity;
    return MTR_OK;
}

void metrics_auc_free(MetricsAuc *a)
{
    free(a->pairs);
    memset(a, 0, sizeof *a);
}

void metrics_auc_reset(MetricsAuc *a)
{
    a->rows = 0;
    a->n_nan = 0;
}

MtrStatus metrics_auc_add(MetricsAuc *a, const float *score /* (B,1) */,
                          const float *label /* (B) */, int64_t rows, MtrError *err)
{
    if (rows < 0 || rows > a->capacity - a->rows)
        return mtr_fail(err, MTR_E_ARG,
                        "metrics: AUC holds %lld rows, %lld more do not fit (capacity %lld)",
                        (long long)a->rows, (long long)rows, (long long)a->capacity);
    int64_t n = 0;
    for (int64_t i = 0; i < rows; i++) {
        if (isnan(label[i])) continue; /* a missing label counts nowhere */
        MetricsScored *p = &a->pairs[a->rows + n++];
        p->score = score[i];
        p->positive = label[i] >= 0.5f;
        if (isnan(score[i])) a->n_nan++;
    }
    a->rows += n;
    return MTR_OK;
}

static int scored_cmp(const void *pa, const void *pb)
{
    float a = ((const MetricsScored *)pa)->score, b = ((const MetricsScored *)pb)->score;
    return (a > b) - (a < b);
}

double metrics_auc_value(MetricsAuc *a, int *one_class)
{
    int64_t n = a->rows, pos = 0;
    for (int64_t i = 0; i < n; i++) pos += a->pairs[i].positive;
    int64_t neg = n - pos;
    if (one_class) *one_class = (pos == 0 || neg == 0);
    if (pos == 0 || neg == 0 || a->n_nan > 0) return NAN;

    qsort(a->pairs, (size_t)n, sizeof *a->pairs, scored_cmp);
    /* Sum of the positives' ranks, doubled so that average ranks stay integers:
     * a run of ties at 0-based positions [i, j) shares rank (i + 1 + j) / 2. */
    int64_t rank_sum2 = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i, group_pos = 0;
        while (j < n && a->pairs[j].score == a->pairs[i].score) group_pos += a->pairs[j++].positive;
        rank_sum2 += (i + 1 + j) * group_pos;
        i = j;
    }
    double u = ((double)rank_sum2 - (double)pos * (double)(pos + 1)) / 2.0;
    return u / ((double)pos * (double)neg);
}

/* ---- top-k */

void metrics_topk_init(MetricsTopK *t, const int32_t *ks, uint32_t n_ks)
{
    memset(t, 0, sizeof *t);
    t->n_ks = n_ks < MTR_MAX_KS ? n_ks : MTR_MAX_KS;
    for (uint32_t i = 0; i < t->n_ks; i++) t->ks[i] = ks[i];
}

void metrics_topk_reset(MetricsTopK *t)
{
    t->rows = 0;
    memset(t->hits, 0, sizeof t->hits);
}

void metrics_topk_add_i32(MetricsTopK *t, const int32_t *rank /* (B) */, int64_t rows)
{
    for (int64_t r = 0; r < rows; r++)
        for (uint32_t i = 0; i < t->n_ks; i++) t->hits[i] += rank[r] <= t->ks[i];
    t->rows += rows;
}

void metrics_topk_add_f32(MetricsTopK *t, const float *rank /* (B) */, int64_t rows)
{
    /* Ranks are whole numbers well inside float's exact range (< 2^24 items). */
    for (int64_t r = 0; r < rows; r++)
        for (uint32_t i = 0; i < t->n_ks; i++) t->hits[i] += rank[r] <= (float)t->ks[i];
    t->rows += rows;
}

double metrics_topk_value(const MetricsTopK *t, uint32_t i)
{
    if (i >= t->n_ks || t->rows == 0) return NAN;
    return (double)t->hits[i] / (double)t->rows;
}

/* ---- per-user lists */

MtrStatus metrics_lists_init(MetricsLists *l, const int32_t *ks, uint32_t n_ks, int32_t n_keys,
                             int64_t catalogue, MtrError *err)
{
    metrics_lists_free(l);
    l->n_ks = n_ks < MTR_MAX_KS ? n_ks : MTR_MAX_KS;
    for (uint32_t i = 0; i < l->n_ks; i++) l->ks[i] = ks[i];
    l->best = malloc((size_t)(n_keys > 0 ? n_keys : 1) * sizeof *l->best);
    if (!l->best) {
        metrics_lists_free(l);
        return mtr_fail(err, MTR_E_NOMEM, "metrics: out of memory for %d item keys", n_keys);
    }
    l->n_keys = n_keys;
    l->catalogue = catalogue;
    metrics_lists_reset(l);
    return MTR_OK;
}

void metrics_lists_free(MetricsLists *l)
{
    free(l->best);
    memset(l, 0, sizeof *l);
}

void metrics_lists_reset(MetricsLists *l)
{
    l->users = 0;
    for (uint32_t i = 0; i < MTR_MAX_KS; i++) l->recall[i] = l->ndcg[i] = l->map[i] = l->hit[i] = 0;
    for (int32_t k = 0; k < l->n_keys; k++) l->best[k] = INT32_MAX;
}

void metrics_lists_add_user(MetricsLists *l, const int32_t *top, int32_t n_top, const int32_t *rel,
                            int32_t n_rel)
{
    for (int32_t p = 0; p < n_top; p++)
        if (top[p] >= 0 && top[p] < l->n_keys && p < l->best[top[p]]) l->best[top[p]] = p;
    if (n_rel <= 0) return;
    l->users++;
    uint32_t i = 0;
    int64_t hits = 0;
    double dcg = 0.0, ap = 0.0;
    /* Walk the list once; at each cut-off k, fold in what the first k gave. */
    for (int32_t p = 0; i < l->n_ks; p++) {
        while (i < l->n_ks && p == l->ks[i]) {
            int64_t k = l->ks[i], ideal_n = n_rel < k ? n_rel : k;
            double idcg = 0.0;
            for (int64_t q = 1; q <= ideal_n; q++) idcg += 1.0 / log2((double)q + 1.0);
            l->recall[i] += (double)hits / (double)n_rel;
            l->ndcg[i] += dcg / idcg;
            l->map[i] += ap / (double)ideal_n;
            l->hit[i] += hits > 0;
            i++;
        }
        if (i >= l->n_ks) break;
        if (p >= n_top) continue; /* a list shorter than k: nothing more to find */
        int relevant = 0;
        for (int32_t r = 0; r < n_rel && !relevant; r++) relevant = rel[r] == top[p];
        if (!relevant) continue;
        hits++;
        dcg += 1.0 / log2((double)p + 2.0);
        ap += (double)hits / (double)(p + 1);
    }
}

double metrics_lists_value(const MetricsLists *l, MtrMetric metric, uint32_t i)
{
    if (i >= l->n_ks) return NAN;
    if (metric == MTR_METRIC_COVERAGE) {
        if (l->catalogue <= 0 || !l->best) return NAN;
        int64_t seen = 0;
        for (int32_t k = 0; k < l->n_keys; k++) seen += l->best[k] < l->ks[i];
        return (double)seen / (double)l->catalogue;
    }
    if (l->users == 0) return NAN;
    double u = (double)l->users;
    switch (metric) {
    case MTR_METRIC_RECALL:
        return l->recall[i] / u;
    case MTR_METRIC_NDCG:
        return l->ndcg[i] / u;
    case MTR_METRIC_MAP:
        return l->map[i] / u;
    case MTR_METRIC_HIT_RATE:
        return l->hit[i] / u;
    default:
        return NAN;
    }
}

/* ---- per model */

static int wants(const MetricsTask *mt, MtrMetric metric)
{
    return (mt->task->metrics >> metric & 1u) && mtr_metric_reads(metric) == mt->reads;
}

MtrStatus metrics_init(Metrics *ms, const MtrModel *m, int64_t rows, MtrError *err)
{
    memset(ms, 0, sizeof *ms);
    if (m->n_tasks == 0) return MTR_OK;
    ms->tasks = calloc(m->n_tasks, sizeof *ms->tasks);
    if (!ms->tasks) return mtr_fail(err, MTR_E_NOMEM, "metrics: out of memory for task metrics");
    ms->n_tasks = m->n_tasks;
    int eval = mtr_model_program(m, MTR_PROG_EVAL);
    for (uint32_t i = 0; i < m->n_tasks; i++) {
        MetricsTask *mt = &ms->tasks[i];
        const MtrTask *t = &m->tasks[i];
        mt->task = t;
        mt->tensor = -1;
        if (t->n_ks > MTR_MAX_KS) {
            metrics_free(ms);
            return mtr_fail(err, MTR_E_ARG, "metrics: task '%s' has %u k values (at most %d)",
                            t->name, t->n_ks, MTR_MAX_KS);
        }
        /* What the task's metrics read: its prediction or its rank in eval_step. */
        static const MtrOutputRole readable[] = {MTR_OUT_PREDICTION, MTR_OUT_RANK};
        for (size_t r = 0; r < sizeof readable / sizeof *readable && mt->tensor < 0; r++) {
            mt->tensor = mtr_program_output(m, eval, readable[r], (int32_t)i);
            if (mt->tensor >= 0) mt->reads = readable[r];
        }
        if (mt->tensor >= 0) mt->rank_i32 = m->tensors[mt->tensor].dtype == MTR_DT_I32;
        if (mt->reads == MTR_OUT_PREDICTION && t->label_column < 0) {
            metrics_free(ms);
            return mtr_fail(err, MTR_E_FORMAT,
                            "metrics: task '%s' predicts but has no label to compare with",
                            t->name);
        }
        metrics_regression_reset(&mt->reg);
        metrics_topk_init(&mt->topk, t->ks, t->n_ks);
        mt->n_items = m->items.n;
        if (wants(mt, MTR_METRIC_AUC)) {
            MtrStatus st = metrics_auc_init(&mt->auc, rows, err);
            if (st != MTR_OK) {
                metrics_free(ms);
                return st;
            }
        }
    }
    return MTR_OK;
}

int32_t metrics_task_tensor(const Metrics *ms, uint32_t task)
{
    return task < ms->n_tasks ? ms->tasks[task].tensor : -1;
}

void metrics_free(Metrics *ms)
{
    for (uint32_t i = 0; i < ms->n_tasks; i++) {
        metrics_auc_free(&ms->tasks[i].auc);
        metrics_lists_free(&ms->tasks[i].lists);
    }
    free(ms->tasks);
    memset(ms, 0, sizeof *ms);
}

void metrics_reset(Metrics *ms)
{
    for (uint32_t i = 0; i < ms->n_tasks; i++) {
        metrics_regression_reset(&ms->tasks[i].reg);
        metrics_auc_reset(&ms->tasks[i].auc);
        metrics_topk_reset(&ms->tasks[i].topk);
        metrics_lists_reset(&ms->tasks[i].lists);
        ms->tasks[i].unrankable = 0;
    }
}

MtrStatus metrics_add(Metrics *ms, uint32_t task, const void *eval, const float *label,
                      int64_t rows, MtrError *err)
{
    if (task >= ms->n_tasks)
        return mtr_fail(err, MTR_E_ARG, "metrics: no task %u (the model has %u)", task,
                        ms->n_tasks);
    MetricsTask *mt = &ms->tasks[task];
    const MtrTask *t = mt->task;
    switch (mt->reads) {
    case MTR_OUT_PREDICTION:
        if (!label) return mtr_fail(err, MTR_E_ARG, "metrics: task '%s' needs labels", t->name);
        if (wants(mt, MTR_METRIC_AUC)) {
            MtrStatus st = metrics_auc_add(&mt->auc, eval, label, rows, err);
            if (st != MTR_OK) return st;
        }
        metrics_regression_add(&mt->reg, eval, label, rows);
        return MTR_OK;
    case MTR_OUT_RANK: {
        /* A rank past the candidates is a row whose item is not among them:
         * unrankable, counted apart rather than as a hit or a miss. */
        int64_t kept = 0;
        for (int64_t i = 0; i < rows; i++) {
            double rk = mt->rank_i32 ? (double)((const int32_t *)eval)[i]
                                     : (double)((const float *)eval)[i];
            if (mt->n_items > 0 && rk > (double)mt->n_items) {
                mt->unrankable++;
                continue;
            }
            for (uint32_t j = 0; j < mt->topk.n_ks; j++) mt->topk.hits[j] += rk <= mt->topk.ks[j];
            kept++;
        }
        mt->topk.rows += kept;
        return MTR_OK;
    }
    default:
        return MTR_OK; /* a task with nothing to evaluate (no output its metrics read) */
    }
}

/* ---- report */

typedef struct {
    uint32_t task;
    char base[32]; /* "rmse", "top_5" */
    double value;
} Pending;

/* Metric k of the task's accumulators, as report entries named `name` (NULL:
 * the metric's own names); returns how many. */
static uint32_t metric_entries(MetricsTask *mt, uint32_t task, MtrMetric k, const char *name,
                               Pending *out)
{
    double v = NAN;
    switch (k) {
    case MTR_METRIC_RMSE:
        v = metrics_regression_rmse(&mt->reg);
        break;
    case MTR_METRIC_MAE:
        v = metrics_regression_mae(&mt->reg);
        break;
    case MTR_METRIC_AUC:
        v = metrics_auc_value(&mt->auc, NULL);
        break;
    case MTR_METRIC_MSE:
        v = metrics_regression_mse(&mt->reg);
        break;
    case MTR_METRIC_LOG_LOSS:
        v = metrics_regression_log_loss(&mt->reg);
        break;
    case MTR_METRIC_TOP_K: {
        uint32_t n = 0;
        for (uint32_t i = 0; i < mt->topk.n_ks; i++) {
            Pending *p = &out[n++];
            p->task = task;
            snprintf(p->base, sizeof p->base, "top_%d", (int)mt->topk.ks[i]);
            p->value = metrics_topk_value(&mt->topk, i);
        }
        return n;
    }
    case MTR_METRIC_RECALL:
    case MTR_METRIC_NDCG:
    case MTR_METRIC_MAP:
    case MTR_METRIC_HIT_RATE:
    case MTR_METRIC_COVERAGE: {
        uint32_t n = 0;
        for (uint32_t i = 0; i < mt->topk.n_ks; i++) {
            Pending *p = &out[n++];
            p->task = task;
            snprintf(p->base, sizeof p->base, "%s_%d", mtr_metric_name(k), (int)mt->topk.ks[i]);
            p->value = mt->lists.best ? metrics_lists_value(&mt->lists, k, i) : NAN;
        }
        return n;
    }
    case MTR_METRIC_COUNT:
        return 0;
    }
    out[0] = (Pending){.task = task, .value = v};
    snprintf(out[0].base, sizeof out[0].base, "%s", name ? name : mtr_metric_name(k));
    return 1;
}

/* Lists the task's metrics in report order (the rows of metrics.def), or, when
 * it asks for none, its loss as "loss"; returns how many (at most
 * MTR_METRIC_COUNT * MTR_MAX_KS). */
static uint32_t task_metrics(MetricsTask *mt, uint32_t task, Pending *out)
{
    uint32_t n = 0;
    for (unsigned k = 0; k < MTR_METRIC_COUNT; k++)
        if (wants(mt, (MtrMetric)k)) n += metric_entries(mt, task, (MtrMetric)k, NULL, out + n);
    int32_t lm = mt->task->loss_metric;
    if (n == 0 && lm >= 0 && lm < MTR_METRIC_COUNT && mtr_metric_reads((unsigned)lm) == mt->reads)
        n += metric_entries(mt, task, (MtrMetric)lm, "loss", out);
    return n;
}

#define TASK_METRICS_MAX (MTR_METRIC_COUNT * MTR_MAX_KS)

MtrStatus metrics_report(Metrics *ms, MetricsReport *out, MtrError *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = (size_t)ms->n_tasks * TASK_METRICS_MAX;
    if (cap == 0) return MTR_OK;
    Pending *all = malloc(cap * sizeof *all);
    out->entries = malloc(cap * sizeof *out->entries);
    if (!all || !out->entries) {
        free(all);
        metrics_report_free(out);
        return mtr_fail(err, MTR_E_NOMEM, "metrics: out of memory for the report");
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < ms->n_tasks; i++) n += task_metrics(&ms->tasks[i], i, all + n);

    for (uint32_t i = 0; i < n; i++) {
        uint32_t same = 0;
        for (uint32_t j = 0; j < n; j++) same += strcmp(all[i].base, all[j].base) == 0;
        MetricsEntry *e = &out->entries[i];
        int len;
        if (same > 1)
            len = snprintf(e->name, sizeof e->name, "%s.%s", ms->tasks[all[i].task].task->name,
                           all[i].base);
        else
            len = snprintf(e->name, sizeof e->name, "%s", all[i].base);
        if (len < 0 || (size_t)len >= sizeof e->name) {
            const char *task = ms->tasks[all[i].task].task->name;
            free(all);
            metrics_report_free(out);
            return mtr_fail(err, MTR_E_ARG, "metrics: task name '%s' is too long for a report",
                            task);
        }
        e->value = all[i].value;
    }
    out->n = n;
    free(all);
    return MTR_OK;
}

void metrics_report_free(MetricsReport *r)
{
    free(r->entries);
    memset(r, 0, sizeof *r);
}

const MetricsEntry *metrics_report_find(const MetricsReport *r, const char *name)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (strcmp(r->entries[i].name, name) == 0) return &r->entries[i];
    return NULL;
}
