/* Random valid models (modelgen.h). Every construct the language has is a row
 * of one of the tables below; the generator draws rows, and the rules of
 * docs/dsl.md (what a tower may read, widths that must agree, which metrics
 * go with which task) are kept by construction, not by retrying.
 *
 * To add a construct when the language grows:
 * - a stage (layer_norm, dropout, gelu, softmax, ...): a row of GEN_STAGES
 *   with a function writing it and returning its output width;
 * - an activation of dense: a row of GEN_ACTIVATIONS;
 * - a loss or a metric of a task kind: GEN_RANKING_LOSSES, GEN_RANKING_METRICS;
 * - a task kind: a row of GEN_TASKS with its writer;
 * - an optimizer or one of its options: GEN_OPTIMIZERS and its option list;
 * - a train setting: GEN_SETTINGS;
 * - a column type: GEN_ID_TYPES (looked-up inputs), GEN_LABEL_TYPES, or
 *   GEN_OTHER_INPUT_TYPES (inputs no tower reads);
 * - a feature chain inside a query tower's concat (hash, a pooled list,
 *   normalize, discretize / bucketize): a row of GEN_FEATURES. */
#include "modelgen.h"

#include "mtr/rng.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAMES 16
#define MAX_WIDTH 8

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
    Rng r;
    /* what is declared so far */
    int n_user, n_item, n_labels, n_towers, n_heads, n_tasks;
    char label_type[MAX_NAMES][8];
    int tower_width[MAX_NAMES], tower_side[MAX_NAMES]; /* side: 0 query, 1 item */
    int tower_key[MAX_NAMES]; /* the one input column a tower reads, or -1 (mixed negatives) */
    int source_key;           /* tower_source's: its towers' common tower_key, or -1 */
    int head_width[MAX_NAMES];
    int task_named[MAX_NAMES]; /* a task took head i's name */
    char watch[32];            /* a task's metric that early_stop may watch, or "" */
    int feats;                 /* l0 (string list) and f0 (float) are declared for features */
} Gen;

static void put(Gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || g->oom) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    if (g->len + (size_t)n + 1 > g->cap) {
        size_t cap = (g->cap ? g->cap * 2 : 1024) + (size_t)n;
        char *b = realloc(g->buf, cap);
        if (!b) {
            g->oom = 1;
            return;
        }
        g->buf = b;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, tmp, (size_t)n + 1);
    g->len += (size_t)n;
}

static int below(Gen *g, int n)
{
    return (int)rng_below(&g->r, (uint64_t)n);
}

static int chance(Gen *g, int percent)
{
    return below(g, 100) < percent;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof(a)[0]))

/* ---- lexical variety: spacing, line breaks inside declarations, comments */

static void space(Gen *g)
{
    static const char *const spaces[] = {" ", " ", " ", "  ", "\n    ", "\t", " /* c */ "};
    put(g, "%s", spaces[below(g, COUNT(spaces))]);
}

static void comment_line(Gen *g)
{
    if (chance(g, 15)) put(g, "# a comment: -> ( ) , = model task \"x\"\n");
    if (chance(g, 5)) put(g, "/* a block\n   comment */\n");
}

/* A positive number in one of the forms NUMBER allows, lo <= v < hi. */
static void number(Gen *g, double lo, double hi)
{
    double v = lo + (hi - lo) * rng_float(&g->r);
    switch (below(g, 4)) {
    case 0:
        put(g, v >= 0.01 ? "%.3f" : "%.3g", v);
        break;
    case 1:
        put(g, "%.2e", v);
        break;
    case 2:
        put(g, "%g", v);
        break;
    default:
        if (v < 1 && v >= 0.001) {
            char t[32];
            snprintf(t, sizeof t, "%.3f", v);
            put(g, "%s", t[0] == '0' ? t + 1 : t); /* ".25" */
        } else {
            put(g, "%.4g", v);
        }
    }
}

/* ---- columns */

#define GEN_ID_TYPES(X)          X("string") X("int")
#define GEN_LABEL_TYPES(X)       X("float") X("int")
#define GEN_OTHER_INPUT_TYPES(X) X("float")

#define AS_STRING(s) s,
static const char *const id_types[] = {GEN_ID_TYPES(AS_STRING)};
static const char *const label_types[] = {GEN_LABEL_TYPES(AS_STRING)};
static const char *const other_types[] = {GEN_OTHER_INPUT_TYPES(AS_STRING)};

/* ---- stages after a chain's source */

#define GEN_ACTIVATIONS(X) X("") X("relu") X("tanh") X("sigmoid") X("linear")
static const char *const activations[] = {GEN_ACTIVATIONS(AS_STRING)};

/* Writes "-> dense(N[, ACT])" and returns N; want > 0 asks for that width. */
static int stage_dense(Gen *g, int in, int want)
{
    (void)in;
    int n = want > 0 ? want : 1 + below(g, MAX_WIDTH);
    const char *act = activations[below(g, COUNT(activations))];
    put(g, "->");
    space(g);
    if (*act)
        put(g, "dense(%d,%s%s)", n, chance(g, 50) ? " " : "", act);
    else
        put(g, "dense(%d)", n);
    return n;
}

/* name, how often it is drawn (relative), the writer; a writer that keeps
 * the width ignores want (the chain then ends with a dense of that width). */
typedef struct {
    const char *name;
    int weight;
    int keeps_width;
    int (*write)(Gen *g, int in, int want);
} StageRow;

#define GEN_STAGES(X)                     X("dense", 4, 0, stage_dense)
#define AS_STAGE(name, weight, keeps, fn) {name, weight, keeps, fn},
static const StageRow stages[] = {GEN_STAGES(AS_STAGE)};

static const StageRow *draw_stage(Gen *g)
{
    int total = 0;
    for (int i = 0; i < COUNT(stages); i++) total += stages[i].weight;
    int x = below(g, total);
    for (int i = 0; i < COUNT(stages); i++) {
        if (x < stages[i].weight) return &stages[i];
        x -= stages[i].weight;
    }
    return &stages[0];
}

/* Up to max_stages stages over width in; when want > 0 the chain ends at that
 * width (a last dense where needed). Returns the output width. */
static int stages_after(Gen *g, int in, int max_stages, int want)
{
    int w = in, n = below(g, max_stages + 1);
    for (int i = 0; i < n; i++) {
        const StageRow *s = draw_stage(g);
        space(g);
        int last = i == n - 1;
        w = s->write(g, w, last && !s->keeps_width ? want : 0);
    }
    if (want > 0 && w != want) {
        space(g);
        w = stage_dense(g, w, want);
    }
    return w;
}

/* ---- towers and heads */

/* A source over towers of one side: NAME or concat(NAME, ...); sums widths. */
static int tower_source(Gen *g, int side)
{
    int pick[MAX_NAMES], n = 0;
    for (int t = 0; t < g->n_towers; t++)
        if (g->tower_side[t] == side) pick[n++] = t;
    if (n == 0) return 0;
    if (n == 1 || chance(g, 40)) {
        int t = pick[below(g, n)];
        put(g, "t%d", t);
        g->source_key = g->tower_key[t];
        return g->tower_width[t];
    }
    int k = 2 + below(g, n - 1 < 3 ? n - 1 : 3), width = 0;
    put(g, "concat(");
    for (int i = 0; i < k; i++) {
        int t = pick[below(g, n)]; /* a tower may appear twice */
        put(g, "%st%d", i ? ", " : "", t);
        width += g->tower_width[t];
        if (i == 0) g->source_key = g->tower_key[t];
        if (g->source_key != g->tower_key[t]) g->source_key = -1;
    }
    put(g, ")");
    return width;
}

/* ---- features: chains over an input inside concat(...), query side only */

static int feat_hash(Gen *g)
{
    int w = 1 + below(g, 8);
    put(g, "u%d -> hash(%d) -> embedding(%d)", below(g, g->n_user), 1 + below(g, 9), w);
    return w;
}
static int feat_list(Gen *g)
{
    int w = 1 + below(g, 8);
    put(g, "l0 -> %s -> embedding(%d, %s)", chance(g, 30) ? "lookup(min_count = 2)" : "lookup", w,
        chance(g, 50) ? "mean" : "sum");
    return w;
}
static int feat_normalize(Gen *g)
{
    put(g, "f0 -> normalize");
    return 1;
}
static int feat_buckets(Gen *g)
{
    int w = 1 + below(g, 8);
    if (chance(g, 50))
        put(g, "f0 -> discretize(%d) -> embedding(%d)", 2 + below(g, 6), w);
    else
        put(g, "f0 -> bucketize(-0.5, 0.25, 0.75) -> embedding(%d)", w);
    return w;
}

typedef struct {
    const char *name;
    int (*write)(Gen *g);
} FeatureRow;
#define GEN_FEATURES(X)                                                                            \
    X("hash", feat_hash)                                                                           \
    X("list", feat_list) X("normalize", feat_normalize) X("buckets", feat_buckets)
#define AS_FEATURE(name, fn) {name, fn},
static const FeatureRow features[] = {GEN_FEATURES(AS_FEATURE)};

/* concat(u -> lookup -> embedding(D), FEATURE, ...): returns the width. */
static int feature_concat(Gen *g)
{
    int w = 1 + below(g, MAX_WIDTH);
    put(g, "concat(u%d -> lookup -> embedding(%d)", below(g, g->n_user), w);
    int n = 1 + below(g, 3);
    for (int i = 0; i < n; i++) {
        put(g, ",");
        space(g);
        w += features[below(g, COUNT(features))].write(g);
    }
    put(g, ")");
    return w;
}

/* A tower: over a looked-up input (lookup -> embedding(D) -> ...) or over
 * earlier towers of the same side. want > 0: its output width. */
static int tower(Gen *g, int side, int want)
{
    int t = g->n_towers;
    put(g, "tower t%d =", t);
    space(g);
    int w, key = -1;
    int inputs = side ? g->n_item : g->n_user;
    int have = 0;
    for (int i = 0; i < t; i++) have += g->tower_side[i] == side;
    if (side == 0 && g->feats && chance(g, 50)) {
        w = feature_concat(g);
        w = stages_after(g, w, 2, want);
    } else if (have == 0 || chance(g, 50)) {
        key = below(g, inputs);
        put(g, "%s%d", side ? "i" : "u", key);
        space(g);
        put(g, "->");
        space(g);
        put(g, "lookup");
        space(g);
        w = 1 + below(g, MAX_WIDTH);
        put(g, "->");
        space(g);
        put(g, "embedding(%d)", w);
        w = stages_after(g, w, 2, want);
    } else {
        w = tower_source(g, side);
        key = g->source_key;
        /* a concatenation may stand alone; a single tower needs a stage */
        w = stages_after(g, w, 2, want > 0 ? want : 0);
    }
    put(g, "\n");
    g->tower_key[t] = key;
    g->tower_width[t] = w;
    g->tower_side[t] = side;
    g->n_towers++;
    return t;
}

static int head(Gen *g, int want)
{
    int h = g->n_heads;
    int have[2] = {0, 0};
    for (int t = 0; t < g->n_towers; t++) have[g->tower_side[t]]++;
    if (!have[0] && !have[1]) tower(g, 0, 0), have[0] = 1;
    int side = !have[0] || (have[1] && chance(g, 30)) ? 1 : 0;
    put(g, "head h%d =", h);
    space(g);
    int w = tower_source(g, side);
    space(g);
    w = stage_dense(g, w, 0);
    w = stages_after(g, w, 2, want);
    put(g, "\n");
    g->head_width[h] = w;
    g->n_heads++;
    return h;
}

/* ---- tasks */

#define GEN_RANKING_LOSSES(X)  X("") X("mse") X("bce")
#define GEN_RANKING_METRICS(X) X("rmse") X("mae") X("auc")
static const char *const ranking_losses[] = {GEN_RANKING_LOSSES(AS_STRING)};
static const char *const ranking_metrics[] = {GEN_RANKING_METRICS(AS_STRING)};

static void weight_clause(Gen *g)
{
    put(g, "weight");
    space(g);
    if (chance(g, 10))
        put(g, "0");
    else
        number(g, 0.05, 2.0);
}

/* Writes the clauses in a random order, each at most once. */
typedef void (*ClauseFn)(Gen *g, void *ctx);
static void clauses(Gen *g, ClauseFn *fns, int n, void *ctx)
{
    int order[8];
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = below(g, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < n; i++)
        if (chance(g, 60)) {
            space(g);
            fns[order[i]](g, ctx);
        }
}

static void ranking_loss(Gen *g, void *ctx)
{
    (void)ctx;
    const char *l = ranking_losses[below(g, COUNT(ranking_losses))];
    if (*l) put(g, "loss %s", l);
}

static void ranking_metric_list(Gen *g, void *ctx)
{
    (void)ctx;
    int order[COUNT(ranking_metrics)], n = 0;
    for (int i = 0; i < COUNT(ranking_metrics); i++)
        if (chance(g, 50)) order[n++] = i;
    if (n == 0) order[n++] = below(g, COUNT(ranking_metrics));
    for (int i = n - 1; i > 0; i--) {
        int j = below(g, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    put(g, "metrics");
    for (int i = 0; i < n; i++) put(g, "%s %s", i ? "," : "", ranking_metrics[order[i]]);
}

static void weight_fn(Gen *g, void *ctx)
{
    (void)ctx;
    weight_clause(g);
}

/* A ranking task over a head of width 1, or sometimes a tower of width 1;
 * the head or tower is written first when there is none to reuse. */
static void task_ranking(Gen *g)
{
    char target[16];
    int t = -1;
    if (chance(g, 20)) {
        for (int i = g->n_towers - 1; i >= 0 && t < 0; i--)
            if (g->tower_width[i] == 1) t = i;
        if (t < 0 || chance(g, 50)) t = tower(g, below(g, 2), 1);
        snprintf(target, sizeof target, "t%d", t);
    } else {
        int h = -1;
        for (int i = 0; i < g->n_heads && h < 0; i++)
            if (g->head_width[i] == 1 && chance(g, 50)) h = i;
        if (h < 0) h = head(g, 1);
        snprintf(target, sizeof target, "h%d", h);
    }
    comment_line(g);
    /* task names have their own namespace: one may be its head's name */
    if (target[0] == 'h' && chance(g, 20) && !g->task_named[atoi(target + 1)]) {
        put(g, "task %s =", target);
        g->task_named[atoi(target + 1)] = 1;
    } else {
        put(g, "task k%d =", g->n_tasks);
    }
    space(g);
    put(g, "ranking(%s, y%d)", target, below(g, g->n_labels));
    ClauseFn fns[] = {ranking_loss, ranking_metric_list, weight_fn};
    clauses(g, fns, COUNT(fns), NULL);
    put(g, "\n");
    g->n_tasks++;
}

/* A retrieval task's metrics share one k list (at most 8 values): each chosen
 * metric is written bare (the default list) or with the one list drawn. */
#define GEN_RETRIEVAL_METRICS(X)                                                                   \
    X("top_k") X("recall") X("ndcg") X("map") X("hit_rate") X("coverage")
static const char *const retrieval_metric_names[] = {GEN_RETRIEVAL_METRICS(AS_STRING)};

static void retrieval_metrics(Gen *g, void *ctx)
{
    (void)ctx;
    put(g, "metrics");
    space(g);
    int order[COUNT(retrieval_metric_names)], n_m = 0;
    for (int i = 0; i < COUNT(retrieval_metric_names); i++)
        if (chance(g, 30)) order[n_m++] = i;
    if (n_m == 0) order[n_m++] = below(g, COUNT(retrieval_metric_names));
    int bare = chance(g, 25), n = 1 + below(g, 8), ks[8], k = 0;
    for (int i = 0; i < n; i++) ks[i] = k += 1 + below(g, 20);
    for (int m = 0; m < n_m; m++) {
        put(g, "%s%s", m ? ", " : "", retrieval_metric_names[order[m]]);
        if (bare) continue;
        put(g, "(");
        for (int i = 0; i < n; i++) put(g, "%s%d", i ? ", " : "", ks[i]);
        put(g, ")");
    }
    /* early_stop may watch top_k at its largest k */
    for (int m = 0; m < n_m && !g->watch[0]; m++)
        if (strcmp(retrieval_metric_names[order[m]], "top_k") == 0)
            snprintf(g->watch, sizeof g->watch, "k%d.top_%d", g->n_tasks, bare ? 10 : ks[n - 1]);
}

/* A retrieval task's options (docs/dsl.md, "Retrieval options"). */
static void temperature_fn(Gen *g, void *ctx)
{
    (void)ctx;
    static const char *const values[] = {"0.05", "0.5", "1", "2.5"};
    put(g, "temperature %s", values[below(g, COUNT(values))]);
}

static void logq_fn(Gen *g, void *ctx)
{
    (void)ctx;
    put(g, "logq");
}

static void hits_fn(Gen *g, void *ctx)
{
    (void)ctx;
    put(g, "remove_accidental_hits");
}

/* Mixed negatives, when the candidate tower (ctx) reads one column only. */
static void negatives_fn(Gen *g, void *ctx)
{
    int c = *(const int *)ctx;
    if (g->tower_key[c] < 0) return;
    static const char *const values[] = {"0", "0.5", "0.75", "1"};
    put(g, "negatives %d", 1 + below(g, 64));
    if (chance(g, 50)) put(g, " popularity %s", values[below(g, COUNT(values))]);
}

/* ---- the train block */

typedef struct {
    const char *name, *alias;
    double lo, hi;
} OptionRow;

static const OptionRow adagrad_options[] = {
    {"lr", "learning_rate", 0.001, 0.5},
    {"initial_accumulator", "initial_accumulator_value", 0.0, 1.0},
    {"epsilon", NULL, 1e-8, 1e-3},
};
static const OptionRow sgd_options[] = {{"lr", "learning_rate", 0.001, 0.5}};
static const OptionRow adam_options[] = {
    {"lr", "learning_rate", 0.0001, 0.05},
    {"beta1", "beta_1", 0.0, 0.99},
    {"beta2", "beta_2", 0.0, 0.999},
    {"epsilon", NULL, 1e-8, 1e-3},
};

typedef struct {
    const char *name;
    const OptionRow *options;
    int n_options;
} OptimizerRow;

#define GEN_OPTIMIZERS(X)                                                                          \
    X("adagrad", adagrad_options) X("sgd", sgd_options) X("adam", adam_options)
#define AS_OPTIMIZER(name, opts) {name, opts, COUNT(opts)},
static const OptimizerRow optimizers[] = {GEN_OPTIMIZERS(AS_OPTIMIZER)};

/* `optimizer ...` or (keyword optimizer_embedding) the embedding tables' own */
static void optimizer(Gen *g, const char *keyword)
{
    const OptimizerRow *o = &optimizers[below(g, COUNT(optimizers))];
    put(g, "  %s %s", keyword, o->name);
    int form = below(g, 4);
    if (form == 0) return; /* no parentheses */
    put(g, "(");
    int first = 1;
    for (int i = 0; i < o->n_options && form > 1; i++) {
        if (!chance(g, 60)) continue;
        const OptionRow *r = &o->options[i];
        put(g, "%s%s = ", first ? "" : ", ", r->alias && chance(g, 30) ? r->alias : r->name);
        if (r->lo == 0.0 && chance(g, 10))
            put(g, "0");
        else
            number(g, r->lo > 0 ? r->lo : 0.001, r->hi);
        first = 0;
    }
    put(g, ")");
}

typedef struct {
    const char *name;
    int whole; /* a whole number */
    double lo, hi;
} SettingRow;

#define GEN_SETTINGS(X)                                                                            \
    X("batch", 1, 1, 64)                                                                           \
    X("epochs", 1, 1, 5)                                                                           \
    X("seed", 1, 0, 100000) X("split", 0, 0.1, 0.9) X("warmup", 1, 0, 20) X("clip_norm", 0, 0.1, 10)
#define AS_SETTING(name, whole, lo, hi) {name, whole, lo, hi},
static const SettingRow settings[] = {GEN_SETTINGS(AS_SETTING)};

static void train_block(Gen *g)
{
    if (chance(g, 15)) return; /* the block is optional */
    put(g, "train {\n");
    int order[COUNT(settings) + 1];
    for (int i = 0; i <= COUNT(settings); i++) order[i] = i;
    for (int i = COUNT(settings); i > 0; i--) {
        int j = below(g, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i <= COUNT(settings); i++) {
        if (!chance(g, 70)) continue;
        if (order[i] == COUNT(settings)) {
            optimizer(g, "optimizer");
            put(g, "\n");
            continue;
        }
        const SettingRow *s = &settings[order[i]];
        put(g, "  %s ", s->name);
        if (s->whole)
            put(g, "%d", (int)s->lo + below(g, (int)(s->hi - s->lo) + 1));
        else
            number(g, s->lo, s->hi);
        put(g, "\n");
    }
    /* training control: lines that are not `NAME number` */
    if (chance(g, 20)) {
        optimizer(g, "optimizer_embedding");
        put(g, "\n");
    }
    if (chance(g, 20)) {
        int form = below(g, 3);
        put(g, "  decay %s", form == 2 ? "exponential(" : form == 1 ? "cosine(" : "cosine");
        if (form == 1) number(g, 0, 0.9);
        if (form == 2) number(g, 0.1, 1);
        put(g, "%s\n", form ? ")" : "");
    }
    if (chance(g, 30)) {
        put(g, "  validation ");
        number(g, 0.05, 0.5);
        put(g, "\n");
        if (g->watch[0] && chance(g, 60))
            put(g, "  early_stop %s patience %d\n", g->watch, 1 + below(g, 3));
    }
    put(g, "}\n");
}

/* ---- tasks, by kind */

static void task_retrieval(Gen *g)
{
    /* A query tower and a candidate tower of the same width. */
    int q = -1;
    for (int t = g->n_towers - 1; t >= 0 && q < 0; t--)
        if (g->tower_side[t] == 0 && chance(g, 50)) q = t;
    if (q < 0) q = tower(g, 0, 0);
    int c = -1;
    for (int t = 0; t < g->n_towers && c < 0; t++)
        if (g->tower_side[t] == 1 && g->tower_width[t] == g->tower_width[q] && chance(g, 70)) c = t;
    if (c < 0) c = tower(g, 1, g->tower_width[q]);
    comment_line(g);
    put(g, "task k%d =", g->n_tasks);
    space(g);
    put(g, "retrieval(t%d,%st%d)", q, chance(g, 50) ? " " : "", c);
    ClauseFn fns[] = {retrieval_metrics, weight_fn, temperature_fn, logq_fn, hits_fn, negatives_fn};
    clauses(g, fns, COUNT(fns), &c);
    put(g, "\n");
    g->n_tasks++;
}

#define GEN_TASKS(X) X("ranking", task_ranking) X("retrieval", task_retrieval)
typedef struct {
    const char *name;
    void (*write)(Gen *g);
} TaskRow;
#define AS_TASK(name, fn) {name, fn},
static const TaskRow tasks[] = {GEN_TASKS(AS_TASK)};

/* ---- the whole model */

char *modelgen(uint64_t seed)
{
    Gen g;
    memset(&g, 0, sizeof g);
    rng_seed(&g.r, seed * 0x9E3779B97F4A7C15u + 1);
    comment_line(&g);
    if (chance(&g, 10))
        put(&g, "model \"a \\\"quoted\\\" name, %llu \\\\ \"\n", (unsigned long long)seed);
    else if (chance(&g, 30))
        put(&g, "model \"random model %llu\"\n", (unsigned long long)seed);
    else
        put(&g, "model gen%llu\n", (unsigned long long)seed);
    g.n_user = 1 + below(&g, 3);
    g.n_item = 1 + below(&g, 2);
    g.n_labels = 1 + below(&g, 2);
    for (int i = 0; i < g.n_user; i++)
        put(&g, "input u%d :%s%s\n", i, chance(&g, 50) ? " " : "",
            id_types[below(&g, COUNT(id_types))]);
    for (int i = 0; i < g.n_item; i++)
        put(&g, "input i%d : %s\n", i, id_types[below(&g, COUNT(id_types))]);
    if (chance(&g, 20)) put(&g, "input x0 : %s\n", other_types[below(&g, COUNT(other_types))]);
    if ((g.feats = chance(&g, 30))) put(&g, "input l0 : string list\ninput f0 : float\n");
    for (int i = 0; i < g.n_labels; i++)
        put(&g, "label y%d : %s\n", i, label_types[below(&g, COUNT(label_types))]);
    comment_line(&g);
    int n_towers = 1 + below(&g, 4);
    for (int i = 0; i < n_towers; i++) {
        tower(&g, chance(&g, 40) ? 1 : 0, 0);
        comment_line(&g);
    }
    int n_tasks = 1 + below(&g, 3);
    for (int i = 0; i < n_tasks; i++) tasks[below(&g, COUNT(tasks))].write(&g);
    comment_line(&g);
    train_block(&g);
    if (g.oom) {
        free(g.buf);
        return NULL;
    }
    return g.buf;
}
