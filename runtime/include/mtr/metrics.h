/* Evaluation metrics: accumulators that the evaluation loop fills batch by batch
 * from the eval_step outputs (a ranking task's predictions, a retrieval task's
 * ranks) and reads once at the end. Every buffer is allocated up front, sized by
 * the number of test rows, so nothing is allocated per batch.
 *
 * A NaN label is a missing one: its row counts in no metric of its task.
 *
 * Definitions:
 *   rmse, mae   sqrt(mean((pred - label)^2)), mean(|pred - label|), summed in double.
 *   auc         ROC AUC over all rows, exact: the Mann-Whitney statistic with
 *               tied scores given their average rank; a label >= 0.5 is positive.
 *               NaN when only one class is present (or a score is NaN).
 *   top_k       TFRS FactorizedTopK: rank = 1 + the number of candidate items
 *               scoring strictly above the true item; a row is a hit at k when
 *               rank <= k; accuracy = hits / rows.
 *
 *   mse         mean((pred - label)^2), the rating loss on the test rows.
 *   log_loss    mean(-(y log p + (1 - y) log(1 - p))), the bce loss on the test rows.
 *   A task that asks for no metric reports its loss as "loss": the metric its
 *   task record names as equal to its training loss (mse or log_loss).
 *
 * Report names: each metric is called "rmse", "mae", "auc" or "top_<k>". A name
 * that exactly one task of the model reports stands alone; a name that two or
 * more tasks report is prefixed by the task, "<task>.<name>" (two ranking tasks
 * both asking for rmse give "a.rmse" and "b.rmse", while their mae, asked by
 * one, stays "mae"). The report lists tasks in model order and, within a task,
 * rmse, mae, auc, then top_k by increasing k. */
#ifndef MTR_METRICS_H
#define MTR_METRICS_H

#include "mtr/model.h"
#include "mtr/status.h"

#include <stdint.h>

/* ---- regression: RMSE and MAE */

typedef struct {
    int64_t rows;
    double sum_sq, sum_abs;
    double sum_log; /* log loss, reading predictions as probabilities */
} MetricsRegression;

void metrics_regression_reset(MetricsRegression *r);
/* Adds rows predictions (B,1) against their labels (B). */
void metrics_regression_add(MetricsRegression *r, const float *pred, const float *label,
                            int64_t rows);
/* Return NaN when no row was added. */
double metrics_regression_rmse(const MetricsRegression *r);
double metrics_regression_mae(const MetricsRegression *r);
double metrics_regression_mse(const MetricsRegression *r);
/* The mean log loss, reading predictions as probabilities (clamped to
 * [1e-7, 1 - 1e-7]) and labels as 0/1 weights. */
double metrics_regression_log_loss(const MetricsRegression *r);

/* ---- AUC: keeps every (score, positive) pair, sorted once at the end */

typedef struct {
    float score;
    uint8_t positive;
} MetricsScored;

typedef struct {
    int64_t capacity, rows;
    int64_t n_nan;        /* scores that were NaN: the AUC is then undefined */
    MetricsScored *pairs; /* capacity entries */
} MetricsAuc;

/* Allocates room for `capacity` rows. On failure *a is left empty (safe to free). */
MtrStatus metrics_auc_init(MetricsAuc *a, int64_t capacity, MtrError *err);
void metrics_auc_free(MetricsAuc *a);
void metrics_auc_reset(MetricsAuc *a);
/* Adds rows scores (B,1) and 0/1 labels (B); MTR_E_ARG when the rows would exceed
 * the capacity (nothing is added then). */
MtrStatus metrics_auc_add(MetricsAuc *a, const float *score, const float *label, int64_t rows,
                          MtrError *err);
/* Computes the AUC, sorting the stored pairs in place (adding more rows after is
 * still fine). Returns NaN and sets *one_class (may be NULL) to 1 when the rows
 * hold only positives or only negatives (or none); NaN also when a score was NaN. */
double metrics_auc_value(MetricsAuc *a, int *one_class);

/* ---- top-k accuracy from ranks */

typedef struct {
    uint32_t n_ks;
    int32_t ks[MTR_MAX_KS];
    int64_t hits[MTR_MAX_KS];
    int64_t rows;
} MetricsTopK;

/* Takes the task's k list (n_ks <= MTR_MAX_KS, each k >= 1); counts start at zero. */
void metrics_topk_init(MetricsTopK *t, const int32_t *ks, uint32_t n_ks);
void metrics_topk_reset(MetricsTopK *t);
/* Adds rows ranks (B), as int32 or as float (the eval graph may emit either). */
void metrics_topk_add_i32(MetricsTopK *t, const int32_t *rank, int64_t rows);
void metrics_topk_add_f32(MetricsTopK *t, const float *rank, int64_t rows);
/* hits[i] / rows for ks[i]; NaN when no row was added. */
double metrics_topk_value(const MetricsTopK *t, uint32_t i);

/* ---- per-user lists: recall, ndcg, map, hit_rate and coverage at each k
 *
 * A user's list is the distinct item keys it is recommended, best first; its
 * relevant set the distinct keys of its rankable test rows. As Microsoft
 * Recommenders (python_evaluation) defines them, for each k and averaged over
 * the users with at least one relevant key:
 *   recall(k)    hits in the first k / relevant
 *   ndcg(k)      binary gains: sum over hits at 1-based position p of
 *                1 / log2(p + 1), over the same sum for min(relevant, k) hits
 *                at the top
 *   map(k)       the precision at each hit's position (hits so far / p), summed,
 *                over min(relevant, k)
 *   hit_rate(k)  1 when any of the first k is relevant
 *   coverage(k)  the share of the catalogue's distinct keys found in anyone's
 *                first k (not a mean over users)
 * A test row whose item is not among the candidates is unrankable: it is in
 * no relevant set and counted apart. */

typedef struct {
    uint32_t n_ks;
    int32_t ks[MTR_MAX_KS];
    int64_t users;
    double recall[MTR_MAX_KS], ndcg[MTR_MAX_KS], map[MTR_MAX_KS], hit[MTR_MAX_KS];
    int32_t n_keys;    /* key ids 0..n_keys-1 */
    int64_t catalogue; /* distinct keys among the candidates */
    int32_t *best;     /* [key] the best 0-based position it reached in a list; INT32_MAX none */
} MetricsLists;

/* Room for keys 0..n_keys-1 and a catalogue of `catalogue` distinct keys. On
 * failure *l is left empty (safe to free). */
MtrStatus metrics_lists_init(MetricsLists *l, const int32_t *ks, uint32_t n_ks, int32_t n_keys,
                             int64_t catalogue, MtrError *err);
void metrics_lists_free(MetricsLists *l);
void metrics_lists_reset(MetricsLists *l);
/* Adds one user: top[0..n_top) its list of distinct keys, best first (n_top
 * at least the largest k, unless the catalogue is shorter); rel[0..n_rel) its
 * relevant keys, distinct. A user with no relevant key counts nowhere but in
 * coverage. */
void metrics_lists_add_user(MetricsLists *l, const int32_t *top, int32_t n_top, const int32_t *rel,
                            int32_t n_rel);
/* The metric (MTR_METRIC_RECALL ... COVERAGE) at ks[i]; NaN with no users. */
double metrics_lists_value(const MetricsLists *l, MtrMetric metric, uint32_t i);

/* ---- one model's evaluation: an accumulator set per task */

typedef struct {
    const MtrTask *task;
    MtrOutputRole reads; /* the eval_step output its metrics read: PREDICTION, RANK or 0 */
    int32_t tensor;      /* that output's tensor, or -1 */
    int rank_i32;        /* the rank tensor is int32 rather than float */
    MetricsRegression reg;
    MetricsAuc auc;
    MetricsTopK topk;
    MetricsLists lists; /* filled by the per-user pass (rankeval.c), when it ran */
    int64_t unrankable; /* test rows whose item is not among the candidates */
    int64_t n_items;    /* candidates: a rank above this is an unrankable row */
} MetricsTask;

typedef struct {
    uint32_t n_tasks;
    MetricsTask *tasks;
} Metrics;

/* Sets up accumulators for every task of m (which must outlive ms) and every
 * metric it asks for, with room for `rows` test rows. Each task's metrics read
 * its eval_step output of the role their row names (metrics.def): a PREDICTION
 * (compared with the task's label column) or a RANK. On failure ms is left
 * empty (safe to free). */
MtrStatus metrics_init(Metrics *ms, const MtrModel *m, int64_t rows, MtrError *err);
/* The eval_step tensor that task's metrics read, or -1 when it has none. */
int32_t metrics_task_tensor(const Metrics *ms, uint32_t task);
void metrics_free(Metrics *ms);
/* Zeroes every count, to evaluate again with the same capacity. */
void metrics_reset(Metrics *ms);
/* Adds one batch of task `task`: `eval` is the data of its metrics_task_tensor
 * (a prediction (B,1) float; a rank (B) float or int32 as the tensor's dtype
 * says); `label` (B) is its label column for a prediction, unused (NULL) for a
 * rank. MTR_E_ARG when the capacity would be exceeded. Never allocates. */
MtrStatus metrics_add(Metrics *ms, uint32_t task, const void *eval, const float *label,
                      int64_t rows, MtrError *err);

/* ---- the report: (name, value) pairs in the stable order described above */

#define METRICS_NAME_MAX 96

typedef struct {
    char name[METRICS_NAME_MAX];
    double value; /* NaN when undefined (no rows, one class) */
} MetricsEntry;

typedef struct {
    uint32_t n;
    MetricsEntry *entries;
} MetricsReport;

/* Computes every metric into a fresh report (the caller frees it with
 * metrics_report_free). AUCs sort their stored pairs (see metrics_auc_value).
 * MTR_E_ARG when a task name is too long for a metric name. */
MtrStatus metrics_report(Metrics *ms, MetricsReport *out, MtrError *err);
void metrics_report_free(MetricsReport *r);
/* The entry called name, or NULL. */
const MetricsEntry *metrics_report_find(const MetricsReport *r, const char *name);

#endif
