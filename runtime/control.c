/* Training control: learning-rate schedule, gradient clipping, early
 * stopping (see mtr/control.h for the definitions). */
#include "mtr/control.h"
#include "mtr/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* The value of the model's knob of this kind, or the fallback when it has none. */
static double knob_or(const MtrModel *m, MtrKnobKind kind, double fallback)
{
    int k = mtr_model_knob(m, kind);
    return k >= 0 ? m->knobs[k].value : fallback;
}

/* Whether a lower value of the metric is better; -1 for a metric with no
 * direction known here. */
static int lower_is_better(MtrMetric metric)
{
    switch (metric) {
    case MTR_METRIC_RMSE:
    case MTR_METRIC_MAE:
    case MTR_METRIC_MSE:
    case MTR_METRIC_LOG_LOSS:
        return 1;
    case MTR_METRIC_AUC:
    case MTR_METRIC_TOP_K:
        return 0;
    default:
        return -1;
    }
}

/* Every parameter and optimizer state tensor (all 4-byte elements). */
static int kept(const MtrTensor *t)
{
    return t->role == MTR_ROLE_PARAM || t->role == MTR_ROLE_OPTSTATE;
}

MtrStatus control_init(Control *c, const MtrModel *m, MtrSession *s, int p_train, int epochs,
                       int64_t steps_per_epoch, MtrError *err)
{
    memset(c, 0, sizeof *c);
    c->m = m;
    c->p_train = p_train;
    static const MtrKnobKind lrs[CONTROL_MAX_LR] = {MTR_KNOB_LR, MTR_KNOB_EMB_LR};
    for (int i = 0; i < CONTROL_MAX_LR; i++) {
        int k = mtr_model_knob(m, lrs[i]);
        if (k < 0) continue;
        c->lr_knob[c->n_lr] = k;
        c->base_lr[c->n_lr++] = mtr_session_knob(s, k);
    }
    /* A run's knob values are the session's: --set changes them there too. */
    int k;
    c->warmup = (k = mtr_model_knob(m, MTR_KNOB_WARMUP)) >= 0 ? (int64_t)mtr_session_knob(s, k) : 0;
    if ((k = mtr_model_knob(m, MTR_KNOB_DECAY_COSINE)) >= 0) {
        c->decay = 1;
        c->decay_arg = mtr_session_knob(s, k);
    } else if ((k = mtr_model_knob(m, MTR_KNOB_DECAY_EXPONENTIAL)) >= 0) {
        c->decay = 2;
        c->decay_arg = mtr_session_knob(s, k);
    }
    c->clip = (k = mtr_model_knob(m, MTR_KNOB_CLIP_NORM)) >= 0 ? mtr_session_knob(s, k) : 0;
    c->steps_per_epoch = steps_per_epoch > 0 ? steps_per_epoch : 1;
    c->total_steps = (int64_t)epochs * steps_per_epoch;

    int es = mtr_model_knob(m, MTR_KNOB_EARLY_STOP);
    double valid = knob_or(m, MTR_KNOB_VALIDATION, 0);
    if (es < 0 || valid <= 0) return MTR_OK;
    int32_t code = (int32_t)m->knobs[es].value;
    c->task = code / 256;
    c->metric = code / 16 % 16;
    int32_t ki = code % 16;
    if (c->task >= (int32_t)m->n_tasks || c->metric >= MTR_METRIC_COUNT ||
        !(m->tasks[c->task].metrics & (1u << c->metric)) ||
        (mtr_metric_takes_k((unsigned)c->metric) && ki >= (int32_t)m->tasks[c->task].n_ks))
        return mtr_fail(err, MTR_E_FORMAT, "train.early_stop %d names no metric of the model",
                        code);
    c->k = mtr_metric_takes_k((unsigned)c->metric) ? m->tasks[c->task].ks[ki] : 0;
    c->lower_better = lower_is_better((MtrMetric)c->metric);
    if (c->lower_better < 0)
        return mtr_fail(err, MTR_E_FORMAT, "early_stop: metric %s has no direction",
                        mtr_metric_name((unsigned)c->metric));
    c->patience = (int64_t)knob_or(m, MTR_KNOB_PATIENCE, 1);
    if ((k = mtr_model_knob(m, MTR_KNOB_PATIENCE)) >= 0)
        c->patience = (int64_t)mtr_session_knob(s, k);
    c->early = 1;
    c->best = NAN;
    for (uint32_t t = 0; t < m->n_tensors; t++)
        if (kept(&m->tensors[t]))
            c->copy_elems += (size_t)mtr_session_tensor_elems(s, (int32_t)t, 1);
    c->copy = malloc((c->copy_elems ? c->copy_elems : 1) * sizeof *c->copy);
    if (!c->copy)
        return mtr_fail(err, MTR_E_NOMEM,
                        "out of memory for early stopping's copy of the parameters (%zu floats)",
                        c->copy_elems);
    return MTR_OK;
}

void control_free(Control *c)
{
    free(c->copy);
    memset(c, 0, sizeof *c);
}

double control_lr_factor(const Control *c, int64_t t)
{
    int64_t n = c->warmup;
    if (t < n) return (double)(t + 1) / (double)n;
    double after = (double)(t - n);
    switch (c->decay) {
    case 1: {
        double span = (double)(c->total_steps - n);
        double p = span > 0 ? after / span : 1.0;
        if (p > 1) p = 1;
        return c->decay_arg + (1 - c->decay_arg) * 0.5 * (1 + cos(PI * p));
    }
    case 2:
        return pow(c->decay_arg, after / (double)c->steps_per_epoch);
    default:
        return 1.0;
    }
}

static int is_gradient(const MtrOutput *o)
{
    return o->role == MTR_OUT_GRADIENT || o->role == MTR_OUT_GRADIENT_ROWS;
}

/* Output g is a gradient whose buffer no earlier output lists (a buffer
 * listed twice counts once). */
static int gradient_buffer(const MtrProgram *prog, uint32_t g)
{
    if (!is_gradient(&prog->outputs[g])) return 0;
    for (uint32_t h = 0; h < g; h++)
        if (prog->outputs[h].tensor == prog->outputs[g].tensor && is_gradient(&prog->outputs[h]))
            return 0;
    return 1;
}

double control_clip(const MtrModel *m, MtrSession *s, int p_train, int64_t rows, double max_norm)
{
    const MtrProgram *prog = &m->programs[p_train];
    double sq = 0;
    for (uint32_t g = 0; g < prog->n_outputs; g++) {
        const MtrOutput *o = &prog->outputs[g];
        if (!gradient_buffer(prog, g)) continue;
        const float *d = mtr_session_tensor(s, o->tensor);
        int64_t n = mtr_session_tensor_elems(s, o->tensor, rows);
        for (int64_t e = 0; e < n; e++) sq += (double)d[e] * d[e];
    }
    double norm = sqrt(sq);
    if (!(norm > max_norm)) return norm;
    float scale = (float)(max_norm / norm);
    for (uint32_t g = 0; g < prog->n_outputs; g++) {
        const MtrOutput *o = &prog->outputs[g];
        if (!gradient_buffer(prog, g)) continue;
        float *d = mtr_session_tensor(s, o->tensor);
        int64_t n = mtr_session_tensor_elems(s, o->tensor, rows);
        for (int64_t e = 0; e < n; e++) d[e] *= scale;
    }
    return norm;
}

void control_step_begin(Control *c, MtrSession *s)
{
    if (c->warmup > 0 || c->decay) {
        double f = control_lr_factor(c, c->step);
        for (int i = 0; i < c->n_lr; i++)
            mtr_session_set_knob(s, c->lr_knob[i], (double)(float)(c->base_lr[i] * f));
    }
    c->step++;
}

void control_clip_gradients(Control *c, MtrSession *s, int64_t rows)
{
    if (c->clip > 0) c->last_norm = control_clip(c->m, s, c->p_train, rows, c->clip);
}

void control_run_step(Control *c, MtrSession *s, int64_t rows)
{
    control_step_begin(c, s);
    if (c->clip > 0) {
        mtr_session_run_gradients(s, c->p_train, rows);
        control_clip_gradients(c, s, rows);
        mtr_session_run_updates(s, c->p_train, rows);
    } else {
        mtr_session_run(s, c->p_train, rows);
    }
}

void control_target_name(const Control *c, const MetricsReport *r, char *name, size_t cap)
{
    char base[32];
    if (mtr_metric_takes_k((unsigned)c->metric))
        snprintf(base, sizeof base, "top_%d", (int)c->k);
    else
        snprintf(base, sizeof base, "%s", mtr_metric_name((unsigned)c->metric));
    /* the report prefixes a name that two tasks report with the task */
    snprintf(name, cap, "%s.%s", c->m->tasks[c->task].name, base);
    if (r && !metrics_report_find(r, name)) snprintf(name, cap, "%s", base);
}

/* Copies every parameter and optimizer state into (to_copy) or out of the copy. */
static void transfer(Control *c, MtrSession *s, int to_copy)
{
    size_t at = 0;
    for (uint32_t t = 0; t < c->m->n_tensors; t++) {
        if (!kept(&c->m->tensors[t])) continue;
        size_t n = (size_t)mtr_session_tensor_elems(s, (int32_t)t, 1);
        float *x = mtr_session_tensor(s, (int32_t)t);
        if (to_copy)
            memcpy(c->copy + at, x, n * sizeof *x);
        else
            memcpy(x, c->copy + at, n * sizeof *x);
        at += n;
    }
}

int control_epoch_end(Control *c, MtrSession *s, int e, const MetricsReport *valid)
{
    if (!c->early) return 0;
    control_target_name(c, valid, c->name, sizeof c->name);
    const MetricsEntry *en = metrics_report_find(valid, c->name);
    double v = en ? en->value : NAN;
    int better = !isnan(v) && (isnan(c->best) || (c->lower_better ? v < c->best : v > c->best));
    if (better) {
        c->best = v;
        c->best_epoch = e;
        c->since_best = 0;
        transfer(c, s, 1);
        return 0;
    }
    return ++c->since_best >= c->patience;
}

int control_restore_best(Control *c, MtrSession *s, int last_epoch)
{
    for (int i = 0; i < c->n_lr; i++) mtr_session_set_knob(s, c->lr_knob[i], c->base_lr[i]);
    if (!c->early || c->best_epoch == 0) return 0;
    if (c->best_epoch != last_epoch) transfer(c, s, 0);
    return c->best_epoch;
}

MtrStatus control_hold_out(uint32_t *rows, int64_t n, double share, uint64_t seed, int64_t *n_valid,
                           MtrError *err)
{
    *n_valid = 0;
    int64_t v = (int64_t)llround(share * (double)n);
    if (v >= n) v = n - 1; /* at least one row trains */
    if (v <= 0) return MTR_OK;
    uint32_t *pos = malloc((size_t)n * sizeof *pos), *tmp = malloc((size_t)n * sizeof *tmp);
    unsigned char *out = calloc((size_t)n, 1);
    if (!pos || !tmp || !out) {
        free(pos), free(tmp), free(out);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory holding out validation rows");
    }
    for (int64_t i = 0; i < n; i++) pos[i] = (uint32_t)i;
    Rng r;
    rng_seed(&r, seed ^ 0x7a11da7eull);
    rng_shuffle_u32(&r, pos, (uint64_t)n);
    for (int64_t i = 0; i < v; i++) out[pos[i]] = 1;
    int64_t a = 0, b = n - v;
    for (int64_t i = 0; i < n; i++) tmp[out[i] ? b++ : a++] = rows[i];
    memcpy(rows, tmp, (size_t)n * sizeof *rows);
    free(pos), free(tmp), free(out);
    *n_valid = v;
    return MTR_OK;
}
