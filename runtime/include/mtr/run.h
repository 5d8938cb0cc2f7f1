/* Running a compiled model on data: training with evaluation on the held-back
 * rows, evaluation alone, and serving (predict, recommend) from a trained model
 * with no data folder. */
#ifndef MTR_RUN_H
#define MTR_RUN_H

#include "mtr/dist.h"
#include "mtr/metrics.h"
#include "mtr/model.h"

#include <stdio.h>

typedef struct {
    const char *data_dir;
    const char *train_file, *test_file;  /* a given split; NULL for the seeded random one */
    int skip_bad;                        /* skip and count malformed records */
    const char *items_file, *users_file; /* generic data: side tables given by --items, --users */
    int reshuffle;        /* a new batch order every epoch (default: one fixed order) */
    int order_file;       /* batches are consecutive training rows in file order */
    int fresh;            /* initialise parameters even if the model holds some */
    const char *init_dir; /* start from the parameters of an export folder, or NULL */
    int train_metrics;    /* evaluate the training rows after each epoch too (costs a pass) */
    FILE *progress;       /* progress bar / epoch lines, or NULL for silence */
    FILE *metrics;        /* JSON lines, or NULL */
    int timings;          /* add each epoch's "seconds" to them (then runs differ byte-wise) */
    FILE *step_log;       /* one JSON line per training step, or NULL */
    const char *phase;    /* the "phase" of the test line ("test" by default) */
    int fold;             /* > 0: added to JSON lines as "fold" */
    FILE *profile;        /* time every op during training and print a table here, or NULL */
    int64_t eval_users;   /* > 0: evaluate a seeded sample of this many test users, with
                           * 95% confidence intervals (see evaluate_users in train.c) */
    const MtrDist *dist;  /* data-parallel ranks (mtr/dist.h), or NULL for one process */
    int exclude_seen;     /* rank no item a user has in the training rows (rankeval.c) */
    int no_baseline;      /* skip the baselines (sweep runs compute them once) */

    /* A sweep's (sweep.c): the most runs trained at once (below 2: one at a
     * time), and the hook asked after every training step (or NULL) whose
     * nonzero answer stops the run with MTR_E_STATE. */
    int sweep_workers;
    int (*stop)(void *ctx);
    void *stop_ctx;
} MtrRunOptions;

typedef struct {
    MetricsReport test; /* the test metrics, in the report's stable order */
    int epochs;         /* epochs run (fewer than train.epochs when early stopping stopped) */
    int best_epoch;     /* early stopping: the epoch whose parameters were kept, or 0 */
    double best_valid;  /* its value of the watched validation metric */
    char best_metric[METRICS_NAME_MAX + 8]; /* that metric's report name */
    int64_t n_valid;                        /* training rows held out for validation */
    double train_seconds;                   /* all epochs */
    double eval_seconds; /* one evaluation pass (embed_items + eval_step over the test rows) */
    double last_loss;    /* mean batch loss of the last epoch */
    int64_t n_train, n_test;
    uint64_t test_oov;     /* test values that fell to the out-of-vocabulary row */
    uint64_t train_oov;    /* the same for a given training file */
    uint64_t overlap;      /* rows present in both the given train and test files */
    uint64_t skipped;      /* malformed records skipped */
    uint64_t side_missing; /* interactions whose key a side table lacks */
    size_t step_arena, param_arena, step_unshared;
    double op_seconds, matmul_seconds; /* with profile: time in all ops, in matmul */
    /* With eval_users: the half-width of each test metric's 95% confidence
     * interval (the same names as test; NaN where none is computed), and the
     * users and rows sampled out of all test users. */
    MetricsReport test_ci95;
    int64_t users_sampled, users_total, rows_sampled;
    /* Baselines on the same split (names as in test): the training mean of each
     * ranking task's label, the most popular training items for each retrieval
     * task. Empty with no test rows. */
    MetricsReport baseline;
    int64_t unrankable; /* test rows whose item is not among the candidates */
} MtrRunResult;

/* Trains m on the options' data (building vocabularies and items from it),
 * then evaluates on the test rows; on success m holds the trained parameters,
 * vocabularies and items. The caller frees r->test with metrics_report_free. */
MtrStatus mtr_run_train(MtrModel *m, const MtrRunOptions *o, MtrRunResult *r, MtrError *err);

/* Evaluates a trained m on the test rows of the options' data. */
MtrStatus mtr_run_eval(MtrModel *m, const MtrRunOptions *o, MtrRunResult *r, MtrError *err);

/* Cross-validation: for each fold name F, trains fresh parameters on
 * DIR/F.base and evaluates on DIR/F.test, with vocabularies from all of DIR and
 * one set of arenas for every fold. results has n_folds entries (each test
 * report freed by the caller). */
MtrStatus mtr_run_cv(MtrModel *m, const MtrRunOptions *o, int n_folds, const char *const *folds,
                     MtrRunResult *results, MtrError *err);

/* The loss-weight question: n_runs fresh trainings on the options' data, read
 * and given vocabularies once, run i with the knob assignments sets[i][0..
 * n_sets[i]) ("KEY=VALUE") applied to m's knobs as they are on entry. Up to
 * o->sweep_workers runs train at once (sweep.c), fewer when a memory limit
 * does not hold their arenas (said on o->progress); each has its own copy of
 * what a run changes in the model (knobs, feature statistics, side tables),
 * split, session and arenas, bound once per worker (again when a run changes
 * the batch), and runs its kernels on one thread: its results are those of
 * the same single run with one kernel thread (and OpenBLAS's threads as the
 * caller set them: mtrun sets one), whichever other runs train beside it.
 * o->progress and o->profile show each run's lines in run order (held back
 * while earlier runs train); o->metrics and o->step_log are not written. The
 * first run that fails (in run order) stops the runs after it and its error
 * is returned. The caller frees every results[i].test and .baseline. */
MtrStatus mtr_run_sweep(MtrModel *m, const MtrRunOptions *o, int n_runs,
                        const char *const *const *sets, const int *n_sets, MtrRunResult *results,
                        MtrError *err);

/* Predicts every ranking task's output for one row whose input columns take
 * the given values (names[i] = values[i]). Writes "task value" lines to out.
 * Unknown values are an MTR_E_ARG error naming the column and the value. */
MtrStatus mtr_run_predict(const MtrModel *m, int n, const char *const *names,
                          const char *const *values, FILE *out, MtrError *err);

/* Prints the k best items for one query row (names/values as for predict). */
MtrStatus mtr_run_recommend(const MtrModel *m, int n, const char *const *names,
                            const char *const *values, int k, FILE *out, MtrError *err);

/* The same, served by retrieval task `task` (-1: the first), leaving out the
 * items whose exclude[item] is set (may be NULL). Lists distinct item labels:
 * fewer than k lines when fewer items remain. */
MtrStatus mtr_run_recommend_with(const MtrModel *m, int n, const char *const *names,
                                 const char *const *values, int k, int32_t task,
                                 const uint8_t *exclude, FILE *out, MtrError *err);

/* Flags, in seen[0..items), the items whose key the query row (names/values as
 * for predict) has in the training rows of the options' data and split, for
 * retrieval task `task` (-1: the first). */
MtrStatus mtr_run_seen_items(MtrModel *m, const MtrRunOptions *o, int n, const char *const *names,
                             const char *const *values, int32_t task, uint8_t *seen, MtrError *err);

/* Predicts every ranking task for each row of a CSV/TSV file with a header
 * holding the input columns; writes CSV (the inputs, then one column per
 * ranking task). Unknown values use the out-of-vocabulary row and are counted
 * in *oov (may be NULL). */
MtrStatus mtr_run_predict_file(const MtrModel *m, const char *path, FILE *out, uint64_t *oov,
                               MtrError *err);

/* The k best items for each row (a query) of a CSV/TSV file; writes CSV:
 * the query's inputs, rank, item, score. */
MtrStatus mtr_run_recommend_file(const MtrModel *m, const char *path, int k, FILE *out,
                                 uint64_t *oov, MtrError *err);

#endif
