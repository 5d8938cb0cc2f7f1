/* Training control: the learning-rate schedule (warmup, decay), global-norm
 * gradient clipping, and early stopping's watch over a validation metric with
 * a copy of the best epoch's parameters. The train loop calls in at three
 * places: once before training (control_init), once per step
 * (control_run_step, in place of mtr_session_run) and once per epoch
 * (control_epoch_end); everything is read from the model's knobs by kind.
 *
 * The schedule, for step t = 0, 1, ... of a run of T = epochs * B steps
 * (B batches per epoch), warmup N and base rate lr (each optimizer's own):
 *   warm-up  w(t) = (t + 1) / N while t < N, then 1
 *   decay    d(t) = 1 while t < N, then
 *            cosine(f):      f + (1 - f) * (1 + cos(pi * (t - N) / (T - N))) / 2
 *            exponential(r): r ^ ((t - N) / B)
 *   rate     lr(t) = lr * w(t) * d(t)
 * Clipping: with g the gradients of every parameter (dense and the rows of
 * the embedding tables) and |g| their global L2 norm, every gradient is
 * multiplied by clip_norm / |g| when |g| > clip_norm, before the updates. */
#ifndef MTR_CONTROL_H
#define MTR_CONTROL_H

#include "mtr/exec.h"
#include "mtr/metrics.h"
#include "mtr/model.h"

#include <stddef.h>
#include <stdint.h>

#define CONTROL_MAX_LR 2

typedef struct {
    const MtrModel *m;
    int p_train;
    /* schedule */
    int n_lr;
    int32_t lr_knob[CONTROL_MAX_LR];
    double base_lr[CONTROL_MAX_LR];
    int64_t warmup, total_steps, steps_per_epoch, step;
    int decay; /* 0 none, 1 cosine, 2 exponential */
    double decay_arg;
    /* clipping */
    double clip;
    double last_norm; /* the global norm of the last step's gradients (before clipping) */
    /* early stopping */
    int early;         /* watches a metric */
    int32_t task;      /* the target: task, metric, index into its ks */
    int32_t metric, k; /* k: the cut-off itself for top_k */
    int lower_better;
    int64_t patience;
    int best_epoch, since_best;
    double best;
    char name[METRICS_NAME_MAX + 8]; /* the watched metric's report name */
    float *copy;                     /* every parameter and optimizer state, at the best epoch */
    size_t copy_elems;
} Control;

/* Reads the knobs; allocates the copy of the parameters when early stopping
 * is on. epochs * steps_per_epoch is the run's length (for cosine). */
MtrStatus control_init(Control *c, const MtrModel *m, MtrSession *s, int p_train, int epochs,
                       int64_t steps_per_epoch, MtrError *err);
void control_free(Control *c);

/* The factor lr(t) / lr for step t (0-based). */
double control_lr_factor(const Control *c, int64_t t);

/* One training step over the batch already fed: sets each optimizer's rate
 * for this step, runs the gradients, clips them, runs the updates. Never
 * allocates. */
void control_run_step(Control *c, MtrSession *s, int64_t rows);
/* Its parts, for a step whose gradients are summed across data-parallel
 * ranks (mtr/dist.h) before the clipping: the step's rates, then the clip. */
void control_step_begin(Control *c, MtrSession *s);
void control_clip_gradients(Control *c, MtrSession *s, int64_t rows);

/* Scales every gradient of the last run so that their global norm is at most
 * max_norm; returns the norm before. */
double control_clip(const MtrModel *m, MtrSession *s, int p_train, int64_t rows, double max_norm);

/* The name of the watched metric in a report of this model ("rmse" or
 * "<task>.rmse"), for messages, into name[0..cap) (a buffer of the caller's:
 * runs training at once each have their own). */
void control_target_name(const Control *c, const MetricsReport *r, char *name, size_t cap);

/* After epoch e's validation report: keeps the parameters when the watched
 * metric improved. Returns 1 when training should stop (patience ran out). */
int control_epoch_end(Control *c, MtrSession *s, int e, const MetricsReport *valid);

/* Puts the best epoch's parameters back (when early stopping kept a copy
 * from an epoch other than the last). Returns the best epoch, or 0. */
int control_restore_best(Control *c, MtrSession *s, int last_epoch);

/* Validation: moves a seeded share of rows[0..n) (the training rows) to the
 * end, keeping the order of the rest; *n_valid of them (share * n, rounded;
 * at least one row is left to train). */
MtrStatus control_hold_out(uint32_t *rows, int64_t n, double share, uint64_t seed, int64_t *n_valid,
                           MtrError *err);

#endif
