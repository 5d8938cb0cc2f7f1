/* mtrc: the compiler's command line. Stage: entry point. In: flags and a
 * .mtr file. Out: model.bin (via emit.c), a dump on stdout, or errors on
 * stderr. Exit status: 0 done, 1 the model has errors (nothing written),
 * 2 the command line is wrong. */
#include "ast.h"
#include "emit.h"
#include "frontend.h"
#include "mtr/save.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: mtrc FILE.mtr -o OUT.bin        compile a model\n"
    "       mtrc --check FILE.mtr           check a model, write nothing\n"
    "       mtrc --dump ast FILE.mtr        print the checked model\n"
    "       mtrc --dump graph|plan FILE.mtr [--batch N] [--size NAME=N]...\n"
    "                                       print the compiled programs or memory plan\n"
    "       mtrc --dot FILE.mtr             print the graph for Graphviz\n"
    "       mtrc --help | --version\n"
    "options: -O0  no rewrite passes (keep the in-batch softmax's B x B score matrix)\n";

typedef enum { MODE_NONE, MODE_COMPILE, MODE_CHECK, MODE_DUMP, MODE_DOT } Mode;

typedef struct {
    Mode mode;
    const char *file, *out, *dump;
    long batch;
    int has_batch;
    int no_rewrite;
    EmitOptions *opts;
} Args;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mtrc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'mtrc --help' for usage.\n");
    return 2;
}

static int set_mode(Args *a, Mode m, const char *flag)
{
    if (a->mode != MODE_NONE && a->mode != m)
        return usage_error("%s cannot be combined with another action", flag);
    a->mode = m;
    return 0;
}

/* Fills a from argv. Returns -1 to exit 0 (help, version shown), 0 to go on,
 * or 2 after a usage message. */
static int parse_args(int argc, char **argv, Args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(USAGE, stdout);
            return -1;
        } else if (strcmp(arg, "--version") == 0) {
            printf("mtrc %s\n", MTR_VERSION);
            return -1;
        } else if (strcmp(arg, "--check") == 0) {
            if (set_mode(a, MODE_CHECK, arg)) return 2;
        } else if (strcmp(arg, "--dot") == 0) {
            if (set_mode(a, MODE_DOT, arg)) return 2;
        } else if (strcmp(arg, "--dump") == 0) {
            if (!next) return usage_error("%s needs what to dump: ast, graph or plan", arg);
            if (strcmp(next, "ast") != 0 && strcmp(next, "graph") != 0 && strcmp(next, "plan") != 0)
                return usage_error("cannot dump '%s' (expected ast, graph or plan)", next);
            if (set_mode(a, MODE_DUMP, arg)) return 2;
            a->dump = next;
            i++;
        } else if (strcmp(arg, "-o") == 0) {
            if (!next) return usage_error("%s needs an output file", arg);
            if (a->out) return usage_error("%s given twice", arg);
            a->out = next;
            i++;
        } else if (strcmp(arg, "--batch") == 0) {
            if (!next) return usage_error("%s needs a number", arg);
            char *end;
            errno = 0;
            long n = strtol(next, &end, 10);
            if (errno || *end || end == next || n < 1 || n > (1L << 24))
                return usage_error("--batch needs a whole number from 1 to 16777216, not '%s'",
                                   next);
            a->batch = n;
            a->has_batch = 1;
            i++;
        } else if (strcmp(arg, "--size") == 0) {
            const char *eq = next ? strchr(next, '=') : NULL;
            char *end;
            errno = 0;
            long n = eq ? strtol(eq + 1, &end, 10) : 0;
            if (!eq || eq == next || eq - next >= 64 || errno || *end || end == eq + 1 || n < 1 ||
                n > INT32_MAX)
                return usage_error("--size takes NAME=N with N from 1 to 2147483647, not '%s'",
                                   next ? next : "");
            if (a->opts->n_sizes == EMIT_MAX_SIZES) return usage_error("%s", "too many --size");
            snprintf(a->opts->size_names[a->opts->n_sizes], 64, "%.*s", (int)(eq - next), next);
            a->opts->size_values[a->opts->n_sizes++] = n;
            i++;
        } else if (strcmp(arg, "--lazy-adam") == 0) {
            return usage_error("%s", "--lazy-adam is now an option of the optimizer: "
                                     "optimizer adam(lr = 0.001, lazy = 1)");
        } else if (strcmp(arg, "-O0") == 0 || strcmp(arg, "-O1") == 0) {
            a->no_rewrite = arg[2] == '0';
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error("unknown option '%s'", arg);
        } else {
            if (a->file) return usage_error("only one model file is allowed ('%s' is extra)", arg);
            a->file = arg;
        }
    }
    if (!a->file) return usage_error("%s", "no model file given");
    if (a->mode == MODE_NONE) {
        if (!a->out) return usage_error("%s", "nothing to do: give -o OUT.bin, or --check");
        a->mode = MODE_COMPILE;
    } else if (a->out) {
        return usage_error("%s", "-o is only for compiling (leave out --check, --dump, --dot)");
    }
    if (a->has_batch && !(a->mode == MODE_DUMP && strcmp(a->dump, "ast") != 0))
        return usage_error("%s", "--batch is only for --dump graph and --dump plan");
    if (a->opts->n_sizes && !(a->mode == MODE_DUMP && strcmp(a->dump, "plan") == 0))
        return usage_error("%s", "--size is only for --dump plan");
    return 0;
}

int main(int argc, char **argv)
{
    mtr_save_notes(stderr);
    mtr_check_stdout_at_exit("mtrc"); /* a dump to a full disk is an error, not exit 0 */
    EmitOptions opts = emit_defaults();
    Args a = {0};
    a.opts = &opts;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) return rc < 0 ? 0 : rc;

    Pool *pool = pool_new();
    Diag *diag = diag_new(stderr);
    if (!pool || !diag) {
        fprintf(stderr, "mtrc: out of memory\n");
        pool_free(pool);
        diag_free(diag);
        return 1;
    }
    opts.rewrite = !a.no_rewrite;
    AstModel *m = frontend_load(a.file, pool, diag);
    if (!m) {
        int n = diag_errors(diag);
        if (n > 0 && !diag_stopped(diag)) fprintf(stderr, "%d error%s\n", n, n == 1 ? "" : "s");
        rc = 1;
    } else {
        switch (a.mode) {
        case MODE_CHECK:
            rc = 0;
            break;
        case MODE_COMPILE:
            rc = emit_file_opts(m, &opts, a.out, stderr) == 0 ? 0 : 1;
            break;
        case MODE_DUMP:
            if (strcmp(a.dump, "ast") == 0) {
                ast_dump(m, stdout);
                rc = 0;
            } else {
                long batch = a.has_batch ? a.batch : (long)m->train.value[MTR_KNOB_BATCH];
                rc = emit_dump_opts(m, &opts, a.dump, batch, stdout, stderr) == 0 ? 0 : 1;
            }
            break;
        case MODE_DOT:
            rc = emit_dump_opts(m, &opts, "dot", (long)m->train.value[MTR_KNOB_BATCH], stdout,
                                stderr) == 0
                     ? 0
                     : 1;
            break;
        case MODE_NONE:
            rc = 2;
            break;
        }
    }
    diag_free(diag);
    pool_free(pool);
    return rc;
}
