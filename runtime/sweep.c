/* The loss-weight question spread over the cores (mtr_run_sweep, mtr/run.h):
 * the data is read and the vocabularies and items are built once, into the
 * shared model, which the runs then only read. Each of up to sweep_workers
 * workers (the caller's thread and threads of its own) takes the next run in
 * order and trains it with a view of the model of its own (the parts a run
 * writes: knobs, feature statistics, side tables), its own split, session and
 * arenas (train.h's slot, bound once per worker), its kernels on its own
 * thread (pool_solo). So a run computes what the same single run computes at
 * one kernel thread, whatever trains beside it. Results land in the run's own
 * entry; each run's progress lines are held back and printed in run order; a
 * failed run stops the runs after it (not those before, which would have run
 * first one at a time), and the first failed run's error is the sweep's. */
#include "mtr/run.h"

#include "sides.h"
#include "train.h"
#include "mtr/knobs.h"
#include "mtr/memlimit.h"
#include "mtr/pool.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct Sweep Sweep;

/* One worker: a view of the model and a slot, reused run after run. */
typedef struct {
    Sweep *sw;
    MtrModel view;
    int has_view;
    TrainSlot *slot;
    int prepared; /* a run the caller prepared in this slot before the workers started, or -1 */
    pthread_t thread;
    int started;
} Worker;

/* What the stop hook of run `run` asks. */
typedef struct {
    Sweep *sw;
    int run;
} RunStop;

struct Sweep {
    const MtrModel *m; /* the shared model: vocabularies, items, programs */
    const MtrDataset *ds;
    const MtrRunOptions *o;
    int n_runs;
    const char *const *const *sets;
    const int *n_sets;
    MtrRunResult *results;
    MtrError *errs;       /* per run */
    MtrStatus *status;    /* per run */
    int held;             /* progress is held back per run (several at once) */
    char **text;          /* per run: its held-back lines, or NULL */
    size_t *text_len;     /* their lengths */
    uint8_t *done;        /* per run: finished (or stopped) */
    pthread_mutex_t lock; /* next, printed, text and done */
    int next;             /* the next run to hand out */
    int printed;          /* runs whose lines are out */
    atomic_int failed;    /* the first failed run so far, or n_runs */
};

/* ---- a worker's view of the model */

/* The view shares everything with the shared model but what a run writes:
 * the knobs, each column's statistics (features_adapt replaces them) and the
 * side tables (sides_learn replaces them), which are the view's own. */
static MtrStatus view_new(const MtrModel *m, MtrModel *v, MtrError *err)
{
    *v = *m;
    v->knobs = malloc((m->n_knobs + 1) * sizeof *v->knobs);
    v->columns = malloc((m->n_columns + 1) * sizeof *v->columns);
    v->n_sides = 0;
    v->sides = NULL;
    if (v->knobs) memcpy(v->knobs, m->knobs, m->n_knobs * sizeof *v->knobs);
    if (v->columns) memcpy(v->columns, m->columns, m->n_columns * sizeof *v->columns);
    int ok = v->knobs && v->columns;
    for (uint32_t c = 0; v->columns && c < m->n_columns; c++) {
        MtrColumn *col = &v->columns[c];
        float *stats = NULL;
        if (ok && col->stats && col->n_stats > 0 &&
            (stats = malloc(col->n_stats * sizeof *stats)) != NULL)
            memcpy(stats, col->stats, col->n_stats * sizeof *stats);
        else if (col->stats && col->n_stats > 0)
            ok = 0;
        col->stats = stats;
    }
    if (ok) return MTR_OK;
    for (uint32_t c = 0; v->columns && c < m->n_columns; c++) free(v->columns[c].stats);
    free(v->knobs), free(v->columns);
    memset(v, 0, sizeof *v);
    return mtr_fail(err, MTR_E_NOMEM, "out of memory");
}

static void view_free(MtrModel *v)
{
    sides_free(v);
    for (uint32_t c = 0; c < v->n_columns; c++) free(v->columns[c].stats);
    free(v->columns);
    free(v->knobs);
    memset(v, 0, sizeof *v);
}

/* ---- one run */

static int stop_asked(void *ctx)
{
    const RunStop *rs = ctx;
    return atomic_load(&rs->sw->failed) < rs->run;
}

/* The view takes run i's knobs: the shared model's, then the run's assignments. */
static MtrStatus prepare(Worker *w, int i, const MtrRunOptions *o, MtrError *err)
{
    const Sweep *sw = w->sw;
    for (uint32_t k = 0; k < sw->m->n_knobs; k++) w->view.knobs[k].value = sw->m->knobs[k].value;
    MtrStatus rc = MTR_OK;
    for (int k = 0; k < sw->n_sets[i] && rc == MTR_OK; k++)
        rc = mtr_knob_assign(&w->view, sw->sets[i][k], err);
    if (rc == MTR_OK) rc = train_slot_prepare(w->slot, &w->view, sw->ds, o, err);
    return rc;
}

/* Prints the held-back lines of the finished runs that are next in order, up
 * to and with the first failed one. Under the lock. */
static void print_ready(Sweep *sw)
{
    FILE *out = sw->o->progress ? sw->o->progress : sw->o->profile;
    while (sw->printed < sw->n_runs && sw->done[sw->printed]) {
        int i = sw->printed++;
        if (out && sw->text[i]) fwrite(sw->text[i], 1, sw->text_len[i], out);
        if (out) fflush(out);
        free(sw->text[i]);
        sw->text[i] = NULL;
        if (sw->status[i] != MTR_OK) sw->printed = sw->n_runs;
    }
}

/* Trains and tests run i (prepared already when `ready`). */
static void run_one(Worker *w, int i, int ready)
{
    Sweep *sw = w->sw;
    MtrError *err = &sw->errs[i];
    MtrRunOptions o = *sw->o;
    RunStop rs = {sw, i};
    o.metrics = NULL, o.step_log = NULL, o.dist = NULL;
    o.stop = stop_asked, o.stop_ctx = &rs;
    FILE *held = NULL;
    MtrStatus rc = MTR_OK;
    if (sw->held && (o.progress || o.profile)) {
        held = open_memstream(&sw->text[i], &sw->text_len[i]);
        if (!held) rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        if (o.progress) o.progress = held;
        if (o.profile) o.profile = held;
    }
    if (rc == MTR_OK && o.progress) {
        fprintf(o.progress, "run %d/%d:", i + 1, sw->n_runs);
        for (int k = 0; k < sw->n_sets[i]; k++) fprintf(o.progress, " %s", sw->sets[i][k]);
        fputc('\n', o.progress);
    }
    if (rc == MTR_OK && !ready) rc = prepare(w, i, &o, err);
    if (rc == MTR_OK) rc = train_slot_run(w->slot, sw->ds, &o, &sw->results[i], err);
    if (held && fclose(held) != 0 && rc == MTR_OK)
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory holding run %d's lines", i + 1);
    sw->status[i] = rc;
    if (rc != MTR_OK) {
        int f = atomic_load(&sw->failed);
        while (i < f && !atomic_compare_exchange_weak(&sw->failed, &f, i)) {
        }
    }
    pthread_mutex_lock(&sw->lock);
    sw->done[i] = 1;
    print_ready(sw);
    pthread_mutex_unlock(&sw->lock);
}

/* A worker's loop: its prepared run first, then the next run in order until
 * none is left or a run before it failed. */
static void *work(void *arg)
{
    Worker *w = arg;
    Sweep *sw = w->sw;
    pool_solo(1);
    if (w->prepared >= 0) run_one(w, w->prepared, 1);
    for (;;) {
        pthread_mutex_lock(&sw->lock);
        int i = sw->next < sw->n_runs && sw->next < atomic_load(&sw->failed) ? sw->next++ : -1;
        pthread_mutex_unlock(&sw->lock);
        if (i < 0) break;
        run_one(w, i, 0);
    }
    return NULL;
}

/* ---- the sweep */

/* The address space a worker thread takes beyond its run's own memory: its
 * stack (by default) and the arena glibc's malloc reserves for a thread's
 * allocations (64 MiB on 64-bit systems). */
static size_t thread_bytes(void)
{
    pthread_attr_t a;
    size_t n = 8u << 20;
    if (pthread_attr_init(&a) == 0) {
        if (pthread_attr_getstacksize(&a, &n) != 0) n = 8u << 20;
        pthread_attr_destroy(&a);
    }
    return n + ((size_t)64 << 20);
}

MtrStatus mtr_run_sweep(MtrModel *m, const MtrRunOptions *o, int n_runs,
                        const char *const *const *sets, const int *n_sets, MtrRunResult *results,
                        MtrError *err)
{
    for (int i = 0; i < n_runs; i++) memset(&results[i], 0, sizeof results[i]);
    if (m->trained && !o->fresh)
        return mtr_fail(err, MTR_E_STATE,
                        "sweep trains fresh models: give it an untrained model "
                        "(or --fresh)");
    if (o->train_file || o->test_file)
        return mtr_fail(err, MTR_E_ARG, "sweep splits the data itself: no --train/--test");
    if (n_runs <= 0) return MTR_OK;
    Sweep sw = {.m = m,
                .o = o,
                .n_runs = n_runs,
                .sets = sets,
                .n_sets = n_sets,
                .results = results,
                .lock = PTHREAD_MUTEX_INITIALIZER};
    atomic_init(&sw.failed, n_runs);
    int want = o->sweep_workers < 1 ? 1 : o->sweep_workers;
    if (want > n_runs) want = n_runs;
    sw.held = want > 1;
    sw.errs = calloc((size_t)n_runs, sizeof *sw.errs);
    sw.status = calloc((size_t)n_runs, sizeof *sw.status);
    sw.text = calloc((size_t)n_runs, sizeof *sw.text);
    sw.text_len = calloc((size_t)n_runs, sizeof *sw.text_len);
    sw.done = calloc((size_t)n_runs, sizeof *sw.done);
    Worker *w = calloc((size_t)want, sizeof *w);
    MtrDataset *ds = NULL;
    MtrStatus rc = MTR_OK;
    if (!sw.errs || !sw.status || !sw.text || !sw.text_len || !sw.done || !w)
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    /* The data and vocabularies once, for every run. */
    if (rc == MTR_OK) rc = train_data_load(m, o, &ds, err);
    sw.ds = ds;
    int workers = 0;
    for (; rc == MTR_OK && workers < want; workers++) {
        w[workers].sw = &sw;
        w[workers].prepared = -1;
        if ((rc = view_new(m, &w[workers].view, err))) break;
        w[workers].has_view = 1;
        if (!(w[workers].slot = train_slot_new())) rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    /* The first run is bound here, to see what a run takes in memory: under
     * a limit, only as many runs train at once as it holds. */
    int at_once = 1;
    if (rc == MTR_OK) {
        sw.next = 1;
        w[0].prepared = 0;
        if ((sw.status[0] = prepare(&w[0], 0, o, &sw.errs[0]))) {
            atomic_store(&sw.failed, 0);
            sw.next = n_runs;
            w[0].prepared = -1;
        } else {
            size_t per_run = train_slot_bytes(w[0].slot) + thread_bytes();
            at_once = mtr_memlimit_runs(want, per_run, openblas_get_num_threads());
            if (at_once < want && o->progress)
                fprintf(o->progress,
                        "mtrun: note: the memory limit (ulimit -v) holds %d run%s at once of the "
                        "%d asked for (about %zu MiB each and OpenBLAS's buffers); the results "
                        "are the same\n",
                        at_once, at_once == 1 ? "" : "s", want, (per_run >> 20) + 1);
            sw.held = at_once > 1;
        }
    }
    /* The caller's thread is worker 0; a thread that cannot start leaves its
     * runs to the others (the results are the same). */
    for (int k = 1; rc == MTR_OK && k < at_once; k++)
        w[k].started = pthread_create(&w[k].thread, NULL, work, &w[k]) == 0;
    if (rc == MTR_OK && sw.status[0] == MTR_OK) {
        work(&w[0]);
        pool_solo(0);
    }
    for (int k = 1; k < at_once; k++)
        if (w[k].started) pthread_join(w[k].thread, NULL);
    if (rc == MTR_OK) {
        int f = atomic_load(&sw.failed);
        if (f < n_runs) {
            rc = sw.status[f];
            *err = sw.errs[f];
        }
    }
    for (int k = 0; w && k < workers; k++) {
        train_slot_free(w[k].slot);
        if (w[k].has_view) view_free(&w[k].view);
    }
    for (int i = 0; sw.text && i < n_runs; i++) free(sw.text[i]);
    free(w), free(sw.errs), free(sw.status), free(sw.text), free(sw.text_len), free(sw.done);
    mtr_data_free(ds);
    return rc;
}
