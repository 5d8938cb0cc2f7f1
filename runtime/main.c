/* mtrun: trains, evaluates and serves a compiled model.bin. The only place in
 * the runtime that prints usage, chooses exit codes and exits. */
#include "mtr/knobs.h"
#include "mtr/memlimit.h"
#include "mtr/model.h"
#include "mtr/npy.h"
#include "mtr/report.h"
#include "mtr/run.h"
#include "mtr/save.h"

#include <cblas.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGS 64

static const char usage[] =
    "usage: mtrun MODEL --data DIR [options]      train, evaluate, print the results\n"
    "       mtrun MODEL eval --data DIR [options] evaluate a trained model\n"
    "       mtrun MODEL predict --user U --item I [--input NAME=VALUE]...\n"
    "       mtrun MODEL recommend --user U [-k K]\n"
    "       mtrun MODEL predict|recommend --file ROWS.csv [-k K] [-o OUT.csv]\n"
    "       mtrun MODEL cv --data DIR --folds u1,u2,... [options]\n"
    "       mtrun MODEL info | set KEY=VALUE... | export DIR | import DIR [-o OUT]\n"
    "options:\n"
    "  --set KEY=VALUE   override a knob for this run (repeatable), e.g. retrieval.weight=0\n"
    "  -o FILE           save the trained model to FILE (atomically)\n"
    "  --metrics FILE    write metrics as JSON lines (the same run gives the same bytes)\n"
    "  --timings         add each epoch's wall time (\"seconds\") to the JSON lines\n"
    "  --step-log FILE   write one JSON line per training step\n"
    "  --train F --test F  train and test on given files instead of a random split\n"
    "  --order file      batches in the training file's order (default: seeded shuffle)\n"
    "  --reshuffle       a new batch order each epoch\n"
    "  --skip-bad        skip malformed records (counted) instead of failing\n"
    "  --init DIR        start from the parameters in DIR (<tensor>.npy, as export writes)\n"
    "  --fresh           start from new parameters even if the model holds some\n"
    "  --threads N       threads for matrix products (default 1)\n"
    "  --quiet           no progress output\n"
    "  --train-metrics   also evaluate the training rows after each epoch (a full pass)\n"
    "  --profile         time every op kind during training (printed on stderr)\n";

typedef struct {
    const char *model, *command, *data, *out, *metrics, *step_log, *train, *test, *folds, *dir,
        *file, *init;
    const char *sets[MAX_ARGS];
    int n_sets;
    const char *names[MAX_ARGS], *values[MAX_ARGS];
    int n_inputs, n_owned; /* names[0..n_owned) were allocated by --input */
    const char *user, *item;
    int k, threads, reshuffle, order_file, skip_bad, fresh, quiet, profile, train_metrics, timings;
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

static int parse_args(int argc, char **argv, Args *a)
{
    memset(a, 0, sizeof *a);
    a->k = 10;
    a->threads = 1;
    int i = 1;
    if (i < argc && argv[i][0] != '-') a->model = argv[i++];
    if (i < argc && argv[i][0] != '-' && a->model) a->command = argv[i++];
    if (a->command && (strcmp(a->command, "export") == 0 || strcmp(a->command, "import") == 0)) {
        if (i >= argc || argv[i][0] == '-') return bad("%s needs a folder", a->command);
        a->dir = argv[i++];
    }
    if (a->command && strcmp(a->command, "set") == 0) {
        for (; i < argc && a->n_sets < MAX_ARGS; i++) a->sets[a->n_sets++] = argv[i];
        return a->n_sets ? 0 : bad("%s needs KEY=VALUE arguments", "set");
    }
    for (; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(f, "--data") == 0)
            a->data = v;
        else if (strcmp(f, "-o") == 0)
            a->out = v;
        else if (strcmp(f, "--metrics") == 0)
            a->metrics = v;
        else if (strcmp(f, "--step-log") == 0)
            a->step_log = v;
        else if (strcmp(f, "--train") == 0)
            a->train = v;
        else if (strcmp(f, "--test") == 0)
            a->test = v;
        else if (strcmp(f, "--folds") == 0)
            a->folds = v;
        else if (strcmp(f, "--file") == 0)
            a->file = v;
        else if (strcmp(f, "--init") == 0)
            a->init = v;
        else if (strcmp(f, "--user") == 0)
            a->user = v;
        else if (strcmp(f, "--item") == 0)
            a->item = v;
        else if (strcmp(f, "--set") == 0) {
            if (v && a->n_sets < MAX_ARGS) a->sets[a->n_sets++] = v;
        } else if (strcmp(f, "--input") == 0) {
            const char *eq = v ? strchr(v, '=') : NULL;
            if (!eq) return bad("--input takes NAME=VALUE, found '%s'", v ? v : "");
            if (a->n_inputs < MAX_ARGS) {
                char *name = strndup(v, (size_t)(eq - v));
                if (!name) return bad("%s", "out of memory");
                a->names[a->n_inputs] = name;
                a->values[a->n_inputs++] = eq + 1;
                a->n_owned = a->n_inputs;
            }
        } else if (strcmp(f, "-k") == 0) {
            if (!v || parse_int(v, &a->k) || a->k <= 0)
                return bad("-k takes a positive number, found '%s'", v ? v : "");
        } else if (strcmp(f, "--threads") == 0) {
            if (!v || parse_int(v, &a->threads) || a->threads <= 0 || a->threads > 256)
                return bad("--threads takes a number from 1 to 256, found '%s'", v ? v : "");
        } else if (strcmp(f, "--order") == 0) {
            if (!v || (strcmp(v, "file") && strcmp(v, "shuffle")))
                return bad("--order takes 'file' or 'shuffle', found '%s'", v ? v : "");
            a->order_file = strcmp(v, "file") == 0;
        } else {
            takes = 0;
            if (strcmp(f, "--reshuffle") == 0)
                a->reshuffle = 1;
            else if (strcmp(f, "--skip-bad") == 0)
                a->skip_bad = 1;
            else if (strcmp(f, "--fresh") == 0)
                a->fresh = 1;
            else if (strcmp(f, "--quiet") == 0)
                a->quiet = 1;
            else if (strcmp(f, "--profile") == 0)
                a->profile = 1;
            else if (strcmp(f, "--train-metrics") == 0)
                a->train_metrics = 1;
            else if (strcmp(f, "--timings") == 0)
                a->timings = 1;
            else
                return bad("unknown option '%s'", f);
        }
        if (takes) {
            if (!v) return bad("%s needs a value", f);
            i++;
        }
    }
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

/* --user and --item name the usual two inputs: --user the first input that is
 * not an item attribute, --item the first item attribute, or, in a model with
 * no retrieval task (so no item attributes), the next input after the user's. */
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
                           .reshuffle = a->reshuffle,
                           .order_file = a->order_file,
                           .fresh = a->fresh,
                           .train_metrics = a->train_metrics,
                           .init_dir = a->init,
                           .progress = a->quiet ? NULL : stderr,
                           .metrics = metrics,
                           .timings = a->timings,
                           .step_log = steps,
                           .profile = a->profile ? stderr : NULL};
}

static int print_results(const MtrModel *m, const MtrRunResult *r, int eval_only, MtrError *e)
{
    ReportRow rows[64];
    size_t n = 0;
    for (uint32_t i = 0; i < r->test.n && n < 60; i++)
        rows[n++] = (ReportRow){r->test.entries[i].name, r->test.entries[i].value, NAN};
    if (eval_only)
        printf("\n%s: %lld test rows, evaluation %.3f s\n", m->name, (long long)r->n_test,
               r->eval_seconds);
    else
        printf("\n%s: %lld training rows, %lld test rows, %d epochs in %.2f s, evaluation %.3f s\n",
               m->name, (long long)r->n_train, (long long)r->n_test, r->epochs, r->train_seconds,
               r->eval_seconds);
    return report_table_print(stdout, rows, n, e) == MTR_OK ? 0 : -1;
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
        fprintf(stderr, "mtrun: skipped %llu malformed records\n", (unsigned long long)r.skipped);
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
    if (r.overlap)
        fprintf(stderr, "mtrun: warning: %llu test rows also appear in the training file\n",
                (unsigned long long)r.overlap);
    /* The table and the model come before the metrics files are put in place
     * (which allocates nothing), so that a run that fails for want of memory,
     * or because the table cannot be written, changes no file. */
    int failed = print_results(m, &r, eval_only, &e);
    metrics_report_free(&r.test);
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
    printf("\n%-10s", "metric");
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
    for (int f = 0; f < n; f++) metrics_report_free(&res[f].test);
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

int main(int argc, char **argv)
{
    mtr_memlimit_reexec(argv); /* under ulimit -v: no OpenBLAS workers before --threads */
    mtr_save_notes(stderr);
    mtr_check_stdout_at_exit("mtrun");
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("mtrun %s (model.bin format %d)\n", MTR_VERSION, MTR_FORMAT_VERSION);
        return 0;
    }
    Args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (!a.model) return bad("%s", "no model given");
    openblas_set_num_threads(a.threads);

    MtrError e = {0};
    if (a.command && strcmp(a.command, "set") == 0) {
        MtrStatus st = mtr_model_set_file(a.model, a.n_sets, (char **)a.sets, &e);
        if (st) {
            print_error(&e);
            return st == MTR_E_ARG ? 2 : 1; /* a bad KEY=VALUE is a usage error, as with --set */
        }
        return 0;
    }
    MtrModel *m = NULL;
    if (mtr_model_read(a.model, &m, &e)) {
        print_error(&e);
        return 1;
    }
    for (int i = 0; i < a.n_sets && rc == 0; i++)
        if (mtr_knob_assign(m, a.sets[i], &e)) {
            print_error(&e);
            rc = 2;
        }
    if (rc == 0) {
        const char *cmd = a.command ? a.command : "train";
        if (strcmp(cmd, "train") == 0) {
            rc = run_train(m, &a, 0);
        } else if (strcmp(cmd, "cv") == 0) {
            rc = run_cv(m, &a);
        } else if (strcmp(cmd, "eval") == 0) {
            rc = run_train(m, &a, 1);
        } else if (strcmp(cmd, "info") == 0) {
            mtr_model_print_info(m, stdout);
        } else if ((strcmp(cmd, "predict") == 0 || strcmp(cmd, "recommend") == 0) && a.file) {
            rc = serve_file(m, &a, strcmp(cmd, "predict") == 0);
        } else if (strcmp(cmd, "predict") == 0 || strcmp(cmd, "recommend") == 0) {
            add_user_item(m, &a);
            MtrStatus st =
                strcmp(cmd, "predict") == 0
                    ? mtr_run_predict(m, a.n_inputs, a.names, a.values, stdout, &e)
                    : mtr_run_recommend(m, a.n_inputs, a.names, a.values, a.k, stdout, &e);
            if (st) {
                print_error(&e);
                rc = 1;
            }
        } else if (strcmp(cmd, "export") == 0) {
            if (mtr_export_dir(m, a.dir, &e)) {
                print_error(&e);
                rc = 1;
            }
        } else if (strcmp(cmd, "import") == 0) {
            if (mtr_import_dir(m, a.dir, &e) || mtr_model_write(m, a.out ? a.out : a.model, &e)) {
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
