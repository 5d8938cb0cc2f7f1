/* mtrun: trains, evaluates and serves a compiled model.bin. The only place in
 * the runtime that prints usage, chooses exit codes and exits. */
#include "mtr/knobs.h"
#include "mtr/memlimit.h"
#include "mtr/model.h"
#include "mtr/npy.h"
#include "mtr/pool.h"
#include "mtr/report.h"
#include "mtr/run.h"
#include "mtr/save.h"
#include "ranks.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGS 64

static const char usage[] =
    "usage: mtrun MODEL [train] --data DIR [options] train, evaluate, print the results\n"
    "       mtrun MODEL eval --data DIR [options] evaluate a trained model\n"
    "       mtrun MODEL predict --user U --item I [--input NAME=VALUE]...\n"
    "       mtrun MODEL recommend --user U [-k K] [--task NAME] [--exclude-seen --data DIR]\n"
    "       mtrun MODEL predict --file ROWS.csv [-o OUT.csv]\n"
    "       mtrun MODEL recommend --file ROWS.csv [-k K] [-o OUT.csv]\n"
    "       mtrun MODEL cv --data DIR --folds u1,u2,... [options]\n"
    "       mtrun MODEL sweep --data DIR --set KEY=V1,V2,... [--seeds S1,S2,...] [options]\n"
    "       mtrun MODEL export DIR [--vectors [--data DIR]]\n"
    "       mtrun MODEL info | set KEY=VALUE... | import DIR [-o OUT]\n"
    "Options go anywhere, as --data DIR or --data=DIR. Without --data, training,\n"
    "eval and cv read the folder named by the environment variable MTR_DATA.\n"
    "options:\n"
    "  --data DIR        the data folder (MovieLens 100K/1M/latest, or CSV/TSV files)\n"
    "  --set KEY=VALUE   override a knob for this run (repeatable), e.g. retrieval.weight=0;\n"
    "                    -o saves the values the run used, MODEL is not changed\n"
    "  -o FILE           save the trained model to FILE (atomically)\n"
    "  --metrics FILE    write metrics as JSON lines (the same run gives the same bytes)\n"
    "  --timings         add each epoch's wall time (\"seconds\") to the JSON lines\n"
    "  --step-log FILE   write one JSON line per training step\n"
    "  --train F --test F  train and test on given files instead of a random split\n"
    "  --users FILE      generic data: the user side table (CSV/TSV), instead of users.csv\n"
    "  --items FILE      generic data: the candidate items (CSV/TSV), instead of items.csv\n"
    "  --order file      batches in the training file's order (default: seeded shuffle)\n"
    "  --reshuffle       a new batch order each epoch\n"
    "  --skip-bad        skip malformed records (counted) instead of failing\n"
    "  --init DIR        start from the parameters in DIR (<tensor>.npy, as export writes)\n"
    "  --fresh           start from new parameters even if the model holds some\n"
    "  --threads N       threads for kernels and matrix products; sweep: runs at once\n"
    "                    (default: $MTR_THREADS, else the cores)\n"
    "  --quiet           no progress output\n"
    "  --train-metrics   also evaluate the training rows after each epoch (a full pass)\n"
    "  --profile         time every op kind during training (printed on stderr)\n"
    "  --vectors         export: also the final item and query vectors (for an ANN index)\n"
    "  --eval-users N    evaluate a seeded sample of N test users, with 95% confidence intervals\n"
    "  --exclude-seen    eval, training's test pass, recommend: items a user has in the\n"
    "                    training rows are not ranked (recommend then needs --data DIR)\n"
    "  --task NAME       recommend with this retrieval task (when the model has several)\n"
    "  --seeds S1,S2,... sweep: train every setting once per seed (train.seed)\n"
    "  --help, --version\n";

typedef struct {
    const char *model, *command, *data, *out, *metrics, *step_log, *train, *test, *folds, *dir,
        *file, *init, *users_file, *items_file;
    const char *sets[MAX_ARGS];
    int n_sets;
    const char *names[MAX_ARGS], *values[MAX_ARGS];
    int n_inputs, n_owned; /* names[0..n_owned) were allocated by --input */
    const char *user, *item;
    int eval_users, exclude_seen;
    const char *task, *seeds;
    int k, threads, reshuffle, order_file, skip_bad, fresh, quiet, profile, train_metrics, timings;
    int k_given, vectors, help, version;
    const MtrDist *dist; /* this process's rank under mpirun (ranks.h) */
} Args;

static int bad(const char *fmt, const char *what)
{
    fprintf(stderr, "mtrun: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n(see mtrun --help)\n");
    return 2;
}

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 1000000) return -1;
    *out = (int)v;
    return 0;
}

enum {
    OPT_DATA = 256,
    OPT_METRICS,
    OPT_STEP_LOG,
    OPT_TRAIN,
    OPT_TEST,
    OPT_FOLDS,
    OPT_FILE,
    OPT_INIT,
    OPT_USER,
    OPT_USERS,
    OPT_ITEMS,
    OPT_ITEM,
    OPT_SET,
    OPT_INPUT,
    OPT_THREADS,
    OPT_EVAL_USERS,
    OPT_ORDER,
    OPT_RESHUFFLE,
    OPT_SKIP_BAD,
    OPT_FRESH,
    OPT_QUIET,
    OPT_PROFILE,
    OPT_TRAIN_METRICS,
    OPT_TIMINGS,
    OPT_VECTORS,
    OPT_VERSION,
    OPT_EXCLUDE_SEEN,
    OPT_TASK,
    OPT_SEEDS,
};

static const struct option long_options[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"step-log", required_argument, NULL, OPT_STEP_LOG},
    {"train", required_argument, NULL, OPT_TRAIN},
    {"test", required_argument, NULL, OPT_TEST},
    {"folds", required_argument, NULL, OPT_FOLDS},
    {"file", required_argument, NULL, OPT_FILE},
    {"init", required_argument, NULL, OPT_INIT},
    {"user", required_argument, NULL, OPT_USER},
    {"users", required_argument, NULL, OPT_USERS},
    {"items", required_argument, NULL, OPT_ITEMS},
    {"item", required_argument, NULL, OPT_ITEM},
    {"set", required_argument, NULL, OPT_SET},
    {"input", required_argument, NULL, OPT_INPUT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"eval-users", required_argument, NULL, OPT_EVAL_USERS},
    {"order", required_argument, NULL, OPT_ORDER},
    {"reshuffle", no_argument, NULL, OPT_RESHUFFLE},
    {"skip-bad", no_argument, NULL, OPT_SKIP_BAD},
    {"fresh", no_argument, NULL, OPT_FRESH},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"profile", no_argument, NULL, OPT_PROFILE},
    {"train-metrics", no_argument, NULL, OPT_TRAIN_METRICS},
    {"timings", no_argument, NULL, OPT_TIMINGS},
    {"vectors", no_argument, NULL, OPT_VECTORS},
    {"exclude-seen", no_argument, NULL, OPT_EXCLUDE_SEEN},
    {"task", required_argument, NULL, OPT_TASK},
    {"seeds", required_argument, NULL, OPT_SEEDS},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Options in any order and either form (--data DIR, --data=DIR), then the
 * words: MODEL, the command, and the command's arguments. */
static int parse_args(int argc, char **argv, Args *a)
{
    memset(a, 0, sizeof *a);
    a->k = 10;
    /* Sums split across threads round differently, so the default can be
     * pinned per machine (MTR_THREADS) as well as per run (--threads). */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = mtr_memlimit_default_threads(cores < 1 ? 1 : cores > 256 ? 256 : (int)cores);
    const char *env_threads = getenv("MTR_THREADS");
    if (env_threads && *env_threads) {
        int n;
        if (parse_int(env_threads, &n) || n <= 0 || n > 256)
            return bad("MTR_THREADS takes a number from 1 to 256, found '%s'", env_threads);
        a->threads = n;
    }
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":o:k:h", long_options, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case OPT_DATA:
            a->data = v;
            break;
        case 'o':
            a->out = v;
            break;
        case OPT_METRICS:
            a->metrics = v;
            break;
        case OPT_STEP_LOG:
            a->step_log = v;
            break;
        case OPT_TRAIN:
            a->train = v;
            break;
        case OPT_TEST:
            a->test = v;
            break;
        case OPT_FOLDS:
            a->folds = v;
            break;
        case OPT_FILE:
            a->file = v;
            break;
        case OPT_INIT:
            a->init = v;
            break;
        case OPT_USER:
            a->user = v;
            break;
        case OPT_USERS:
            a->users_file = v;
            break;
        case OPT_ITEMS:
            a->items_file = v;
            break;
        case OPT_ITEM:
            a->item = v;
            break;
        case OPT_SET:
            if (a->n_sets < MAX_ARGS) a->sets[a->n_sets++] = v;
            break;
        case OPT_INPUT: {
            const char *eq = strchr(v, '=');
            if (!eq) return bad("--input takes NAME=VALUE, found '%s'", v);
            if (a->n_inputs < MAX_ARGS) {
                char *name = strndup(v, (size_t)(eq - v));
                if (!name) return bad("%s", "out of memory");
                a->names[a->n_inputs] = name;
                a->values[a->n_inputs++] = eq + 1;
                a->n_owned = a->n_inputs;
            }
            break;
        }
        case 'k':
            if (parse_int(v, &a->k) || a->k <= 0)
                return bad("-k takes a positive number, found '%s'", v);
            a->k_given = 1;
            break;
        case OPT_THREADS:
            if (parse_int(v, &a->threads) || a->threads <= 0 || a->threads > 256)
                return bad("--threads takes a number from 1 to 256, found '%s'", v);
            break;
        case OPT_EVAL_USERS:
            if (parse_int(v, &a->eval_users) || a->eval_users <= 0)
                return bad("--eval-users takes a positive number, found '%s'", v);
            break;
        case OPT_ORDER:
            if (strcmp(v, "file") && strcmp(v, "shuffle"))
                return bad("--order takes 'file' or 'shuffle', found '%s'", v);
            a->order_file = strcmp(v, "file") == 0;
            break;
        case OPT_RESHUFFLE:
            a->reshuffle = 1;
            break;
        case OPT_SKIP_BAD:
            a->skip_bad = 1;
            break;
        case OPT_FRESH:
            a->fresh = 1;
            break;
        case OPT_QUIET:
            a->quiet = 1;
            break;
        case OPT_PROFILE:
            a->profile = 1;
            break;
        case OPT_TRAIN_METRICS:
            a->train_metrics = 1;
            break;
        case OPT_TIMINGS:
            a->timings = 1;
            break;
        case OPT_VECTORS:
            a->vectors = 1;
            break;
        case OPT_EXCLUDE_SEEN:
            a->exclude_seen = 1;
            break;
        case OPT_TASK:
            a->task = v;
            break;
        case OPT_SEEDS:
            a->seeds = v;
            break;
        case 'h':
            a->help = 1;
            break;
        case OPT_VERSION:
            a->version = 1;
            break;
        case ':':
            return bad("%s needs a value", argv[optind - 1]);
        default:
            return bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) a->model = argv[optind++];
    if (optind < argc) a->command = argv[optind++];
    if (a->command && (strcmp(a->command, "export") == 0 || strcmp(a->command, "import") == 0)) {
        if (optind >= argc) return bad("%s needs a folder", a->command);
        a->dir = argv[optind++];
    }
    if (a->command && strcmp(a->command, "set") == 0) {
        for (; optind < argc && a->n_sets < MAX_ARGS; optind++) a->sets[a->n_sets++] = argv[optind];
        return a->n_sets ? 0 : bad("%s needs KEY=VALUE arguments", "set");
    }
    if (optind < argc) return bad("unexpected argument '%s'", argv[optind]);
    return 0;
}

static void print_error(const MtrError *e)
{
    fprintf(stderr, "mtrun: error: %s\n", e->msg);
}

/* The first looked-up input of the query side, and of the item side. */
static void add_input(Args *a, const char *column, const char **value)
{
    if (!*value || a->n_inputs >= MAX_ARGS) return;
    a->names[a->n_inputs] = column;
    a->values[a->n_inputs++] = *value;
    *value = NULL;
}

/* --user and --item name the usual two inputs: --user the column the compiler
 * marked as the user (else the first input that is not an item attribute), --item the first item
 * attribute, or, in a model with no retrieval task (so no item attributes), the next input after
 * the user's. */
static void add_user_item(const MtrModel *m, Args *a)
{
    int32_t user = -1, item = -1, second = -1;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        const MtrColumn *col = &m->columns[c];
        if (col->is_label) continue;
        if (col->is_item) {
            if (item < 0) item = (int32_t)c;
        } else if (user < 0) {
            user = (int32_t)c;
        } else if (second < 0) {
            second = (int32_t)c;
        }
    }
    if (item < 0) item = second;
    if (mtr_model_user_column(m) >= 0) { /* the compiler's choice, when it made one */
        int32_t u = mtr_model_user_column(m);
        if (item == u) item = user != u ? user : second;
        user = u;
    }
    if (user >= 0) add_input(a, m->columns[user].name, &a->user);
    if (item >= 0) add_input(a, m->columns[item].name, &a->item);
}

/* An output file saved through mtr/save.h: put in place only when the run
 * succeeds, so that a failed run leaves no file behind. */
typedef struct {
    MtrSave save;
    FILE *f;
} OutFile;

static int out_open(OutFile *o, const char *path, MtrError *e)
{
    memset(o, 0, sizeof *o);
    if (!path) return 0;
    if (mtr_save_begin(&o->save, path, e) != MTR_OK) return -1;
    if (!(o->f = mtr_save_stream(&o->save, e))) {
        mtr_save_abort(&o->save);
        return -1;
    }
    return 0;
}

/* Closes o; keeps the file (in place at its path) only when keep is set and
 * everything was written. Returns 0, or -1 with e set. */
static int out_close(OutFile *o, int keep, MtrError *e)
{
    if (!o->f) return 0;
    o->f = NULL;
    if (!keep) {
        mtr_save_abort(&o->save);
        return 0;
    }
    return mtr_save_commit(&o->save, e) == MTR_OK ? 0 : -1;
}

/* The run's options from the command line, shared by training, eval and cv. */
static MtrRunOptions run_options(const Args *a, FILE *metrics, FILE *steps)
{
    return (MtrRunOptions){.data_dir = a->data,
                           .train_file = a->train,
                           .test_file = a->test,
                           .skip_bad = a->skip_bad,
                           .users_file = a->users_file,
                           .items_file = a->items_file,
                           .reshuffle = a->reshuffle,
                           .order_file = a->order_file,
                           .fresh = a->fresh,
                           .train_metrics = a->train_metrics,
                           .init_dir = a->init,
                           .progress = a->quiet ? NULL : stderr,
                           .metrics = metrics,
                           .timings = a->timings,
                           .step_log = steps,
                           .profile = a->profile ? stderr : NULL,
                           .eval_users = a->eval_users,
                           .dist = a->dist,
                           .exclude_seen = a->exclude_seen};
}

static int print_results(const MtrModel *m, const MtrRunResult *r, int eval_only, MtrError *e)
{
    ReportRow rows[64];
    size_t n = 0;
    for (uint32_t i = 0; i < r->test.n && n < 60; i++) {
        const MetricsEntry *b = metrics_report_find(&r->baseline, r->test.entries[i].name);
        rows[n++] =
            (ReportRow){r->test.entries[i].name, r->test.entries[i].value, b ? b->value : NAN};
    }
    if (eval_only)
        printf("%s: %lld test rows, evaluation %.3f s\n", m->name, (long long)r->n_test,
               r->eval_seconds);
    else
        printf("%s: %lld training rows, %lld test rows, %d epochs in %.2f s, evaluation %.3f s\n",
               m->name, (long long)r->n_train, (long long)r->n_test, r->epochs, r->train_seconds,
               r->eval_seconds);
    if (!eval_only && r->n_valid > 0)
        printf("validation: %lld training rows held out\n", (long long)r->n_valid);
    if (!eval_only && r->best_epoch > 0)
        printf("early stopping: kept epoch %d of %d (validation %s %.4f)\n", r->best_epoch,
               r->epochs, r->best_metric, r->best_valid);
    if (report_table_print_titled(stdout, rows, n, "baseline", e) != MTR_OK) return -1;
    if (r->users_sampled > 0) {
        printf(
            "%lld of %lld test users sampled (%lld rows); 95%% confidence intervals over users:\n",
            (long long)r->users_sampled, (long long)r->users_total, (long long)r->rows_sampled);
        for (uint32_t i = 0; i < r->test_ci95.n && i < r->test.n; i++) {
            double v = r->test.entries[i].value, h = r->test_ci95.entries[i].value;
            if (isnan(h))
                printf("  %-10s %.4f\n", r->test.entries[i].name, v);
            else
                printf("  %-10s %.4f +- %.4f  [%.4f, %.4f]\n", r->test.entries[i].name, v, h, v - h,
                       v + h);
        }
    }
    return 0;
}

/* Whether a file can be created at path: checked before training, so that a
 * typo in -o does not cost a whole run. Returns 0, or -1 with e set. */
static int writable_target(const char *path, MtrError *e)
{
    char *copy = strdup(path);
    if (!copy) return mtr_fail(e, MTR_E_NOMEM, "cannot write '%s': out of memory", path), -1;
    int ok = access(dirname(copy), W_OK | X_OK) == 0;
    int why = errno;
    free(copy);
    if (!ok)
        return mtr_fail(e, MTR_E_IO,
                        "cannot write '%s': its folder is missing or not writable (%s)", path,
                        strerror(why)),
               -1;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return mtr_fail(e, MTR_E_IO, "cannot write '%s': it exists and is not a regular file",
                        path),
               -1;
    return 0;
}

static int run_train(MtrModel *m, Args *a, int eval_only)
{
    MtrError e = {0};
    MtrRunResult r;
    if (!a->data) return bad("%s needs --data DIR", eval_only ? "eval" : "training");
    if (!eval_only && a->out && writable_target(a->out, &e)) {
        print_error(&e);
        return 1;
    }
    OutFile metrics, steps;
    if (out_open(&metrics, a->metrics, &e) || out_open(&steps, a->step_log, &e)) {
        print_error(&e);
        out_close(&metrics, 0, NULL);
        return 1;
    }
    MtrRunOptions o = run_options(a, metrics.f, steps.f);
    MtrStatus rc = eval_only ? mtr_run_eval(m, &o, &r, &e) : mtr_run_train(m, &o, &r, &e);
    if (rc) {
        print_error(&e);
        out_close(&metrics, 0, NULL);
        out_close(&steps, 0, NULL);
        return 1;
    }
    if (r.skipped)
        fprintf(stderr, "mtrun: skipped %llu malformed record%s\n", (unsigned long long)r.skipped,
                r.skipped == 1 ? "" : "s");
    if (r.side_missing)
        fprintf(stderr,
                "mtrun: %llu interactions have a key the side table lacks: their side "
                "features read as missing\n",
                (unsigned long long)r.side_missing);
    if (r.train_oov)
        fprintf(stderr,
                "mtrun: %llu training values are not in the vocabulary: they use the "
                "out-of-vocabulary row\n",
                (unsigned long long)r.train_oov);
    if (r.test_oov)
        fprintf(stderr,
                "mtrun: %llu test values are not in the vocabulary: they use the "
                "out-of-vocabulary row\n",
                (unsigned long long)r.test_oov);
    if (r.unrankable)
        fprintf(stderr,
                "mtrun: warning: %lld test rows name an item that is not among the candidates: "
                "they are counted as unrankable, in no retrieval metric\n",
                (long long)r.unrankable);
    if (r.overlap)
        fprintf(stderr, "mtrun: warning: %llu test rows also appear in the training file\n",
                (unsigned long long)r.overlap);
    /* The table and the model come before the metrics files are put in place
     * (which allocates nothing), so that a run that fails for want of memory,
     * or because the table cannot be written, changes no file. */
    int failed = print_results(m, &r, eval_only, &e);
    metrics_report_free(&r.test);
    metrics_report_free(&r.baseline);
    metrics_report_free(&r.test_ci95);
    if (!failed && !eval_only && a->out) failed = mtr_model_write(m, a->out, &e) != MTR_OK;
    if (!failed) failed = out_close(&metrics, 1, &e) | out_close(&steps, 1, &e);
    if (failed) {
        print_error(&e);
        out_close(&metrics, 0, NULL);
        out_close(&steps, 0, NULL);
        return 1;
    }
    if (!eval_only && a->out) printf("saved the trained model to %s\n", a->out);
    return 0;
}

#define MAX_FOLDS 32

/* Splits "u1,u2,..." into names (pointing into a copy the caller frees);
 * -1 for too many names, -2 when out of memory. */
static int split_folds(const char *list, char **copy, const char **names)
{
    int n = 0;
    *copy = strdup(list);
    if (!*copy) return -2;
    for (char *save = NULL, *t = strtok_r(*copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == MAX_FOLDS) return -1;
        names[n++] = t;
    }
    return n;
}

/* The cv table: one column per fold, then the mean and the (sample) standard
 * deviation; the same as JSON lines with "phase":"cv". */
static int print_cv(const MtrRunResult *res, const char *const *names, int n, FILE *json,
                    MtrError *e)
{
    const MetricsReport *first = &res[0].test;
    double *mean = calloc(first->n + 1, sizeof *mean), *sd = calloc(first->n + 1, sizeof *sd);
    if (!mean || !sd) {
        free(mean), free(sd);
        return mtr_fail(e, MTR_E_NOMEM, "out of memory for the cross-validation table"), -1;
    }
    printf("%-10s", "metric");
    for (int f = 0; f < n; f++) printf(" %9s", names[f]);
    printf(" %9s %9s\n", "mean", "std");
    for (uint32_t i = 0; i < first->n; i++) {
        double sum = 0, sq = 0;
        printf("%-10s", first->entries[i].name);
        for (int f = 0; f < n; f++) {
            double v = res[f].test.entries[i].value;
            printf(" %9.4f", v);
            sum += v;
        }
        mean[i] = sum / n;
        for (int f = 0; f < n; f++) {
            double d = res[f].test.entries[i].value - mean[i];
            sq += d * d;
        }
        sd[i] = n > 1 ? sqrt(sq / (n - 1)) : 0;
        printf(" %9.4f %9.4f\n", mean[i], sd[i]);
    }
    for (int f = 0; json && f < n + 2; f++) {
        ReportJson j;
        report_json_begin(&j, json, "cv");
        if (f < n) {
            report_json_int(&j, "fold", f + 1);
            report_json_str(&j, "name", names[f]);
            report_json_metrics(&j, &res[f].test);
        } else {
            report_json_str(&j, "statistic", f == n ? "mean" : "std");
            for (uint32_t i = 0; i < first->n; i++)
                report_json_num(&j, first->entries[i].name, f == n ? mean[i] : sd[i]);
        }
        report_json_end(&j, "metrics", NULL);
    }
    free(mean), free(sd);
    return 0;
}

static int run_cv(MtrModel *m, Args *a)
{
    MtrError e = {0};
    if (!a->data) return bad("%s needs --data DIR", "cv");
    if (!a->folds) return bad("%s needs --folds NAME,NAME,... (e.g. u1,u2,u3,u4,u5)", "cv");
    char *copy = NULL;
    const char *names[MAX_FOLDS];
    int n = split_folds(a->folds, &copy, names);
    if (n == -2) {
        fprintf(stderr, "mtrun: error: out of memory\n");
        return 1;
    }
    if (n <= 0) {
        free(copy);
        return bad("--folds takes 1 to 32 names separated by commas, found '%s'", a->folds);
    }
    if (a->train || a->test) {
        free(copy);
        return bad("%s takes --folds, not --train/--test", "cv");
    }
    OutFile metrics, steps;
    if (out_open(&metrics, a->metrics, &e) || out_open(&steps, a->step_log, &e)) {
        print_error(&e);
        out_close(&metrics, 0, NULL);
        free(copy);
        return 1;
    }
    MtrRunResult res[MAX_FOLDS];
    MtrRunOptions o = run_options(a, metrics.f, steps.f);
    int rc = 0;
    if (mtr_run_cv(m, &o, n, names, res, &e)) {
        print_error(&e);
        rc = 1;
    } else if (print_cv(res, names, n, metrics.f, &e)) {
        print_error(&e);
        rc = 1;
    }
    if (out_close(&metrics, rc == 0, &e) | out_close(&steps, rc == 0, &e)) {
        if (rc == 0) print_error(&e);
        rc = 1;
    }
    for (int f = 0; f < n; f++) {
        metrics_report_free(&res[f].test), metrics_report_free(&res[f].test_ci95);
        metrics_report_free(&res[f].baseline);
    }
    free(copy);
    return rc;
}

/* predict or recommend for every row of --file, as CSV on stdout or in -o. */
static int serve_file(const MtrModel *m, const Args *a, int predict)
{
    MtrError e = {0};
    OutFile out;
    uint64_t oov = 0;
    if (a->n_inputs || a->user || a->item)
        return bad("%s", "--file takes the inputs from the file, not from --user/--item/--input");
    if (a->out && out_open(&out, a->out, &e)) {
        print_error(&e);
        return 1;
    }
    FILE *f = a->out ? out.f : stdout;
    MtrStatus st = predict ? mtr_run_predict_file(m, a->file, f, &oov, &e)
                           : mtr_run_recommend_file(m, a->file, a->k, f, &oov, &e);
    if (a->out && out_close(&out, st == MTR_OK, &e) && st == MTR_OK) st = MTR_E_IO;
    if (st) {
        print_error(&e);
        return 1;
    }
    if (oov)
        fprintf(stderr,
                "mtrun: %llu values in %s are not in the vocabulary: they use the "
                "out-of-vocabulary row\n",
                (unsigned long long)oov, a->file);
    return 0;
}

#define SWEEP_MAX_RUNS 256
#define SWEEP_MAX_KEYS 16

/* The metric a sweep compares a task by: its first metric (at its largest k),
 * or its loss; *lower says whether lower is better. */
static void sweep_metric(const MtrModel *m, uint32_t t, char *name, size_t cap, int *lower)
{
    const MtrTask *task = &m->tasks[t];
    *lower = 1;
    snprintf(name, cap, "loss");
    for (unsigned k = 0; k < MTR_METRIC_COUNT; k++) {
        if (!(task->metrics >> k & 1u)) continue;
        if (mtr_metric_takes_k(k) && task->n_ks > 0)
            snprintf(name, cap, "%s_%d", k == MTR_METRIC_TOP_K ? "top" : mtr_metric_name(k),
                     (int)task->ks[task->n_ks - 1]);
        else
            snprintf(name, cap, "%s", mtr_metric_name(k));
        *lower = k == MTR_METRIC_RMSE || k == MTR_METRIC_MAE || k == MTR_METRIC_MSE ||
                 k == MTR_METRIC_LOG_LOSS;
        return;
    }
}

/* A task's value in a report: "<name>" or "<task>.<name>". */
static double sweep_value(const MetricsReport *r, const char *task, const char *name)
{
    char full[METRICS_NAME_MAX * 2];
    snprintf(full, sizeof full, "%s.%s", task, name);
    const MetricsEntry *e = metrics_report_find(r, full);
    if (!e) e = metrics_report_find(r, name);
    return e ? e->value : NAN;
}

/* Out of memory: an error (exit 1), not a usage error. */
static int no_memory(void)
{
    fprintf(stderr, "mtrun: error: out of memory\n");
    return 1;
}

/* mtrun MODEL sweep: every combination of the --set lists (the first key
 * varies slowest), each once per seed, in one process; one table of each
 * setting's test metric per task, mean and spread over the seeds, the best
 * setting per task marked; JSON lines of phase "sweep". */
static int run_sweep(MtrModel *m, Args *a)
{
    MtrError e = {0};
    if (!a->data) return bad("%s needs --data DIR", "sweep");
    if (a->n_sets == 0) return bad("%s needs --set KEY=V1,V2,... (the values to try)", "sweep");
    if (a->n_sets > SWEEP_MAX_KEYS) return bad("%s takes at most 16 --set lists", "sweep");
    char *copy[SWEEP_MAX_KEYS + 1] = {0};
    const char *key[SWEEP_MAX_KEYS + 1], *val[SWEEP_MAX_KEYS + 1][SWEEP_MAX_RUNS];
    int n_val[SWEEP_MAX_KEYS + 1], n_keys = 0, rc = 0;
    for (int i = 0; i <= a->n_sets && rc == 0; i++) {
        const char *spec = i < a->n_sets ? a->sets[i] : a->seeds;
        if (!spec) continue;
        if (i == a->n_sets) {
            copy[n_keys] = strdup(spec);
            key[n_keys] = "train.seed";
        } else {
            const char *eq = strchr(spec, '=');
            if (!eq || eq == spec || !eq[1]) {
                rc = bad("sweep: --set takes KEY=V1,V2,..., found '%s'", spec);
                break;
            }
            copy[n_keys] = strdup(spec);
            if (copy[n_keys]) {
                copy[n_keys][eq - spec] = '\0';
                key[n_keys] = copy[n_keys];
            }
        }
        if (!copy[n_keys]) {
            rc = no_memory();
            break;
        }
        char *list = i == a->n_sets ? copy[n_keys] : copy[n_keys] + strlen(copy[n_keys]) + 1;
        n_val[n_keys] = 0;
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && rc == 0;
             tok = strtok_r(NULL, ",", &save)) {
            if (n_val[n_keys] == SWEEP_MAX_RUNS)
                rc = bad("sweep: %s has too many values", key[n_keys]);
            else
                val[n_keys][n_val[n_keys]++] = tok;
        }
        if (rc == 0 && n_val[n_keys] == 0) rc = bad("sweep: no values for %s", key[n_keys]);
        n_keys++;
    }
    int n_runs = 1;
    for (int k = 0; k < n_keys && rc == 0; k++) {
        n_runs *= n_val[k];
        if (n_runs > SWEEP_MAX_RUNS) rc = bad("sweep: more than %s runs", "256");
    }
    int seeds = a->seeds ? n_val[n_keys - 1] : 1;
    int n_settings = n_runs / seeds;
    char *text = NULL;
    const char **sets = NULL, **run_sets[SWEEP_MAX_RUNS];
    int n_sets[SWEEP_MAX_RUNS];
    MtrRunResult *res = NULL;
    OutFile metrics = {0};
    if (rc == 0) {
        text = malloc((size_t)n_runs * (size_t)n_keys * 320);
        sets = malloc((size_t)n_runs * (size_t)n_keys * sizeof *sets);
        res = calloc((size_t)n_runs, sizeof *res);
        if (!text || !sets || !res) rc = no_memory();
    }
    for (int i = 0; i < n_runs && rc == 0; i++) {
        run_sets[i] = sets + (size_t)i * (size_t)n_keys;
        n_sets[i] = n_keys;
        for (int k = n_keys - 1, rest = i; k >= 0; k--) {
            char *t = text + ((size_t)i * (size_t)n_keys + (size_t)k) * 320;
            snprintf(t, 320, "%s=%s", key[k], val[k][rest % n_val[k]]);
            rest /= n_val[k];
            run_sets[i][k] = t;
        }
    }
    /* Every assignment is checked on the model before any run trains. */
    for (int i = 0; i < n_runs && rc == 0; i++)
        for (int k = 0; k < n_keys && rc == 0; k++)
            if (mtr_knob_assign(m, run_sets[i][k], &e)) {
                print_error(&e);
                rc = 2;
            }
    if (rc == 0 && out_open(&metrics, a->metrics, &e)) {
        print_error(&e);
        rc = 1;
    }
    if (rc == 0) {
        MtrRunOptions o = run_options(a, NULL, NULL);
        o.fresh = 1;
        o.sweep_workers = a->threads;
        if (mtr_run_sweep(m, &o, n_runs, (const char *const *const *)run_sets, n_sets, res, &e)) {
            print_error(&e);
            rc = 1;
        }
    }
    if (rc == 0) {
        /* The table: one row per setting, one column per task. */
        char names[64][METRICS_NAME_MAX];
        int lower[64];
        uint32_t n_tasks = m->n_tasks < 64 ? m->n_tasks : 64;
        double *mean = calloc((size_t)n_settings * n_tasks + 1, sizeof *mean);
        double *sd = calloc((size_t)n_settings * n_tasks + 1, sizeof *sd);
        if (!mean || !sd) rc = no_memory(); /* both freed below */
        for (uint32_t t = 0; rc == 0 && t < n_tasks; t++) {
            sweep_metric(m, t, names[t], sizeof names[t], &lower[t]);
            for (int s = 0; s < n_settings; s++) {
                double sum = 0.0, sq = 0.0;
                for (int r = 0; r < seeds; r++)
                    sum += sweep_value(&res[s * seeds + r].test, m->tasks[t].name, names[t]);
                double mu = sum / seeds;
                for (int r = 0; r < seeds; r++) {
                    double d =
                        sweep_value(&res[s * seeds + r].test, m->tasks[t].name, names[t]) - mu;
                    sq += d * d;
                }
                mean[s * n_tasks + t] = mu;
                sd[s * n_tasks + t] = seeds > 1 ? sqrt(sq / (seeds - 1)) : 0.0;
            }
        }
        if (rc == 0) {
            printf("%s: sweep of %d settings x %d seed%s (%d runs); test metric per task, mean",
                   m->name, n_settings, seeds, seeds == 1 ? "" : "s", n_runs);
            printf(seeds > 1 ? " +- sd over seeds; * best\n" : "; * best\n");
            printf("%-36s", "setting");
            for (uint32_t t = 0; t < n_tasks; t++) {
                char head[2 * METRICS_NAME_MAX];
                snprintf(head, sizeof head, "%s %s", m->tasks[t].name, names[t]);
                printf("  %22s", head);
            }
            printf("\n");
            for (int s = 0; s < n_settings; s++) {
                char label[400] = "";
                size_t at = 0;
                /* the keys that vary (all of them when none does) */
                int varied = 0;
                for (int k = 0; k < n_keys - (a->seeds ? 1 : 0); k++) varied |= n_val[k] > 1;
                for (int k = 0; k < n_keys - (a->seeds ? 1 : 0); k++)
                    if (!varied || n_val[k] > 1)
                        at +=
                            (size_t)snprintf(label + at, at < sizeof label ? sizeof label - at : 0,
                                             "%s%s", at ? " " : "", run_sets[s * seeds][k]);
                printf("%-36s", label);
                for (uint32_t t = 0; t < n_tasks; t++) {
                    double v = mean[s * n_tasks + t];
                    int best = isfinite(v);
                    for (int o = 0; o < n_settings && best; o++) {
                        double w = mean[o * n_tasks + t];
                        if (isfinite(w) && (lower[t] ? w < v : w > v)) best = 0;
                    }
                    char cell[64];
                    if (seeds > 1)
                        snprintf(cell, sizeof cell, "%.4f +- %.4f%s", v, sd[s * n_tasks + t],
                                 best ? " *" : "  ");
                    else
                        snprintf(cell, sizeof cell, "%.4f%s", v, best ? " *" : "  ");
                    printf("  %22s", cell);
                }
                printf("\n");
            }
            /* the baselines of the first seed's split */
            printf("%-36s", "baseline");
            for (uint32_t t = 0; t < n_tasks; t++) {
                char cell[64];
                snprintf(cell, sizeof cell, "%.4f  ",
                         sweep_value(&res[0].baseline, m->tasks[t].name, names[t]));
                printf("  %22s", cell);
            }
            printf("\n");
        }
        for (int i = 0; rc == 0 && metrics.f && i < n_runs; i++) {
            ReportJson j;
            report_json_begin(&j, metrics.f, "sweep");
            for (int k = 0; k < n_keys; k++) {
                const char *eq = strchr(run_sets[i][k], '=');
                report_json_num(&j, key[k], strtod(eq + 1, NULL));
            }
            report_json_metrics(&j, &res[i].test);
            report_json_end(&j, "metrics", NULL);
        }
        free(mean), free(sd);
    }
    if (metrics.f && out_close(&metrics, rc == 0, &e) && rc == 0) {
        print_error(&e);
        rc = 1;
    }
    for (int i = 0; res && i < n_runs; i++) {
        metrics_report_free(&res[i].test);
        metrics_report_free(&res[i].baseline);
    }
    free(res), free(sets), free(text);
    for (int k = 0; k < n_keys; k++) free(copy[k]);
    return rc;
}

/* recommend for one query: with --task, by that retrieval task; with
 * --exclude-seen, leaving out the items the user has in the training rows of
 * --data (the same split as training: the model's seed and split). */
static int run_recommend(MtrModel *m, Args *a)
{
    MtrError e = {0};
    int32_t task = -1;
    if (a->task) {
        for (uint32_t t = 0; t < m->n_tasks; t++)
            if (strcmp(m->tasks[t].name, a->task) == 0) task = (int32_t)t;
        int p = mtr_model_program(m, MTR_PROG_RECOMMEND);
        if (task < 0 || p < 0 || mtr_program_output(m, p, MTR_OUT_TOP_INDEX, task) < 0) {
            fprintf(stderr, "mtrun: error: --task %s: the model has no retrieval task of that name",
                    a->task);
            const char *sep = " (it has: ";
            for (uint32_t t = 0; p >= 0 && t < m->n_tasks; t++)
                if (mtr_program_output(m, p, MTR_OUT_TOP_INDEX, (int32_t)t) >= 0) {
                    fprintf(stderr, "%s%s", sep, m->tasks[t].name);
                    sep = ", ";
                }
            fprintf(stderr, "%s\n", *sep == ',' ? ")" : "");
            return 2;
        }
    }
    uint8_t *seen = NULL;
    if (a->exclude_seen) {
        if (!a->data)
            return bad("%s", "recommend --exclude-seen needs --data DIR (the training rows)");
        if (!(seen = malloc(m->items.n ? m->items.n : 1))) return bad("%s", "out of memory");
        MtrRunOptions o = run_options(a, NULL, NULL);
        if (mtr_run_seen_items(m, &o, a->n_inputs, a->names, a->values, task, seen, &e)) {
            print_error(&e);
            free(seen);
            return 1;
        }
    }
    int rc = 0;
    if (mtr_run_recommend_with(m, a->n_inputs, a->names, a->values, a->k, task, seen, stdout, &e)) {
        print_error(&e);
        rc = 1;
    }
    free(seen);
    return rc;
}

/* Why a model file did not load, in the words a new user needs: a .mtr
 * source given to mtrun, or a command where the model should be. */
/* `import DIR` in place: --set, then the folder's parameters. */
static MtrStatus import_change(MtrModel *m, void *ctx, MtrError *e)
{
    const Args *a = ctx;
    MtrStatus st = MTR_OK;
    for (int i = 0; i < a->n_sets && st == MTR_OK; i++) st = mtr_knob_assign(m, a->sets[i], e);
    return st == MTR_OK ? mtr_import_dir(m, a->dir, e) : st;
}

static void explain_read_error(const char *path, const MtrError *e)
{
    static const char *const commands[] = {"train", "eval", "predict", "recommend", "cv",
                                           "info",  "set",  "export",  "import"};
    size_t n = strlen(path);
    char head[64] = {0};
    FILE *f = fopen(path, "rb");
    if (f) {
        size_t got = fread(head, 1, sizeof head - 1, f);
        head[got] = '\0';
        fclose(f);
    }
    int source = (n > 4 && strcmp(path + n - 4, ".mtr") == 0) || strncmp(head, "model ", 6) == 0 ||
                 head[0] == '#';
    if (f && e->status == MTR_E_FORMAT && source) {
        fprintf(stderr,
                "mtrun: error: %s is a .mtr source, not a compiled model: compile it first "
                "(mtrc %s -o model.bin), then give model.bin to mtrun\n",
                path, path);
        return;
    }
    for (size_t i = 0; !f && i < sizeof commands / sizeof *commands; i++)
        if (strcmp(path, commands[i]) == 0) {
            fprintf(stderr,
                    "mtrun: error: '%s' is a command: the model comes first "
                    "(mtrun MODEL %s ...)\n",
                    path, path);
            return;
        }
    print_error(e);
}

/* Under mpirun, rank 0 speaks for the job: the other ranks train and evaluate
 * alike but print nothing to stdout, show no progress and write no file
 * (docs/distributed.md). Only the commands that train or evaluate run on
 * several ranks. Returns 0, or 2 after a usage message. */
static int share_ranks(Args *a, const MtrDist *d, const char *cmd)
{
    a->dist = d;
    if (d->size <= 1) return 0;
    if (strcmp(cmd, "train") != 0 && strcmp(cmd, "eval") != 0 && strcmp(cmd, "cv") != 0)
        return bad("%s runs as one process, not under mpirun (train, eval and cv do)", cmd);
    if (d->rank == 0) return 0;
    a->out = a->metrics = a->step_log = NULL;
    a->quiet = 1;
    a->profile = 0;
    if (!freopen("/dev/null", "w", stdout)) return bad("%s", "cannot silence rank's stdout");
    return 0;
}

static int run_main(int argc, char **argv, const MtrDist *dist);

int main(int argc, char **argv)
{
    mtr_memlimit_reexec(argv); /* under ulimit -v: no OpenBLAS workers before --threads */
    MtrDist dist;
    if (ranks_start(&argc, &argv, &dist)) return 1;
    int rc = run_main(argc, argv, &dist);
    /* a rank that fails stops the job: the others may wait for it in a collective */
    if (rc && dist.size > 1) ranks_abort(&dist, rc);
    ranks_stop(&dist);
    return rc;
}

static int run_main(int argc, char **argv, const MtrDist *dist)
{
    mtr_save_notes(stderr);
    mtr_check_stdout_at_exit("mtrun");
    Args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == 0 && a.help) {
        fputs(usage, stdout);
    } else if (rc == 0 && a.version) {
        printf("mtrun %s (model.bin format %d)\n", MTR_VERSION, MTR_FORMAT_VERSION);
    } else if (rc == 0 && !a.model) {
        rc = bad("%s", "no model given");
    }
    if (rc || a.help || a.version) {
        for (int i = 0; i < a.n_owned; i++) free((char *)a.names[i]);
        return rc;
    }
    /* The scripts' variable names the data folder when --data does not. */
    const char *cmd = a.command ? a.command : "train";
    int needs_data = strcmp(cmd, "train") == 0 || strcmp(cmd, "eval") == 0 ||
                     strcmp(cmd, "cv") == 0 || strcmp(cmd, "sweep") == 0 ||
                     (strcmp(cmd, "recommend") == 0 && a.exclude_seen);
    if (!a.data && needs_data && getenv("MTR_DATA") && *getenv("MTR_DATA"))
        a.data = getenv("MTR_DATA");
    if ((rc = share_ranks(&a, dist, cmd))) {
        for (int i = 0; i < a.n_owned; i++) free((char *)a.names[i]);
        return rc;
    }
    /* OpenBLAS gets one thread unless MTR_BLAS_THREADS says otherwise (1 to
     * 256; OPENBLAS_NUM_THREADS itself is overridden, and is what
     * mtr_memlimit_reexec sets): the kernels split every large product on the
     * pool themselves (kern_sgemm), whose workers sleep between kernels where
     * OpenBLAS's spin and take a core from the next kernel's parts. A sweep
     * spends --threads on runs side by side, each with one kernel thread and
     * one OpenBLAS thread (runtime/sweep.c). */
    const char *blas_env = getenv("MTR_BLAS_THREADS");
    int runs_side_by_side = strcmp(cmd, "sweep") == 0;
    int blas = 1;
    if (blas_env && *blas_env) {
        int n;
        if (parse_int(blas_env, &n) || n <= 0 || n > 256) {
            for (int i = 0; i < a.n_owned; i++) free((char *)a.names[i]);
            return bad("MTR_BLAS_THREADS takes a number from 1 to 256, found '%s'", blas_env);
        }
        blas = n;
    }
    openblas_set_num_threads(blas);
    if (a.threads > 1 && !runs_side_by_side) {
        if (pool_start(a.threads))
            fprintf(stderr, "mtrun: warning: could not start %d threads; using one\n", a.threads);
        atexit(pool_stop);
    }

    MtrError e = {0};
    if (strcmp(cmd, "set") == 0) {
        MtrStatus st = mtr_model_set_file(a.model, a.n_sets, (char **)a.sets, &e);
        if (st) {
            print_error(&e);
            return st == MTR_E_ARG ? 2 : 1; /* a bad KEY=VALUE is a usage error, as with --set */
        }
        return 0;
    }
    MtrModel *m = NULL;
    if (mtr_model_read(a.model, &m, &e)) {
        explain_read_error(a.model, &e);
        for (int i = 0; i < a.n_owned; i++) free((char *)a.names[i]);
        return 1;
    }
    int sweep = strcmp(cmd, "sweep") == 0; /* its --set values are lists */
    for (int i = 0; i < a.n_sets && rc == 0 && !sweep; i++)
        if (mtr_knob_assign(m, a.sets[i], &e)) {
            print_error(&e);
            rc = 2;
        }
    int serve = strcmp(cmd, "predict") == 0 || strcmp(cmd, "recommend") == 0;
    if (rc == 0 && a.k_given && strcmp(cmd, "recommend") != 0)
        rc = bad("-k is for recommend (how many items), not for %s", cmd);
    if (rc == 0 && a.seeds && !sweep) rc = bad("--seeds is for sweep, not %s", cmd);
    if (rc == 0 && a.vectors && strcmp(cmd, "export") != 0)
        rc = bad("--vectors is for export (mtrun MODEL export DIR --vectors), not %s", cmd);
    if (rc == 0) {
        if (strcmp(cmd, "train") == 0) {
            rc = run_train(m, &a, 0);
        } else if (strcmp(cmd, "cv") == 0) {
            rc = run_cv(m, &a);
        } else if (sweep) {
            rc = run_sweep(m, &a);
        } else if (strcmp(cmd, "eval") == 0) {
            rc = run_train(m, &a, 1);
        } else if (strcmp(cmd, "info") == 0) {
            mtr_model_print_info(m, stdout);
        } else if (serve && a.file) {
            rc = serve_file(m, &a, strcmp(cmd, "predict") == 0);
        } else if (serve && strcmp(cmd, "recommend") == 0) {
            add_user_item(m, &a);
            rc = run_recommend(m, &a);
        } else if (serve) {
            add_user_item(m, &a);
            if (mtr_run_predict(m, a.n_inputs, a.names, a.values, stdout, &e)) {
                print_error(&e);
                rc = 1;
            }
        } else if (strcmp(cmd, "export") == 0) {
            if (mtr_export_dir(m, a.dir, &e) ||
                (a.vectors && mtr_export_vectors(m, a.dir, a.data, &e))) {
                print_error(&e);
                rc = 1;
            }
        } else if (strcmp(cmd, "import") == 0) {
            /* In place, the file stays locked from before its read (as `set`). */
            if (a.out ? mtr_import_dir(m, a.dir, &e) || mtr_model_write(m, a.out, &e)
                      : mtr_model_change_file(a.model, import_change, &a, &e)) {
                print_error(&e);
                rc = 1;
            }
        } else {
            rc = bad("unknown command '%s'", cmd);
        }
    }
    mtr_model_free(m);
    for (int i = 0; i < a.n_owned; i++) free((char *)a.names[i]);
    return rc;
}
