/* Semantic checks (see sema.h). Stage: after the parser, before lowering.
 * In: an AstModel as parsed. Out: the same model with its "sema:" fields
 * filled, or errors. Names of columns, towers and heads share one namespace;
 * task names have their own (a task may share its head's name, as in the
 * tutorial). A tower or head reads only names defined above it, so chains
 * form no cycles and one pass in source order computes every width. */
#include "sema.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WIDTH  (1 << 24)
#define MAX_BATCH  (1 << 24)
#define MAX_EPOCHS 1000000

typedef enum { SYM_COLUMN, SYM_CHAIN } SymKind;

typedef struct {
    const char *name;
    Loc loc;
    SymKind kind;
    AstColumn *column;
    AstChain *chain;
} Symbol;

/* An open-addressing table from names to symbols, sized at twice the count. */
typedef struct {
    Symbol **slots;
    size_t cap;
    Symbol *all; /* every symbol, in source order */
    size_t n;
} Table;

typedef struct {
    AstModel *m;
    Pool *pool;
    Diag *diag;
    Table names; /* columns, towers, heads */
    int errors;
} Sema;

/* Reports an error and counts it as sema's own. */
#define ERROR(s, loc, ...) ((s)->errors++, diag_error((s)->diag, (loc), __VA_ARGS__))

static size_t hash_name(const char *name)
{
    size_t h = 1469598103934665603u;
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 1099511628211u;
    return h;
}

static int loc_before(Loc a, Loc b)
{
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

static int compare_symbols(const void *pa, const void *pb)
{
    const Symbol *a = pa, *b = pb;
    return loc_before(a->loc, b->loc) ? -1 : loc_before(b->loc, a->loc) ? 1 : 0;
}

static Symbol *table_find(const Table *t, const char *name)
{
    if (t->cap == 0) return NULL;
    for (size_t i = hash_name(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->slots[i]) return NULL;
        if (strcmp(t->slots[i]->name, name) == 0) return t->slots[i];
    }
}

/* Fills the table from syms (n entries, which it keeps), reporting
 * duplicates. Returns -1 when out of memory. */
static int table_build(Sema *s, Table *t, Symbol *syms, size_t n, const char *what)
{
    t->all = syms;
    t->n = n;
    t->cap = 16;
    while (t->cap < 2 * n) t->cap *= 2;
    t->slots = pool_alloc(s->pool, t->cap * sizeof(Symbol *));
    if (!t->slots) return -1;
    if (n > 1) qsort(syms, n, sizeof(Symbol), compare_symbols);
    for (size_t k = 0; k < n; k++) {
        Symbol *first = table_find(t, syms[k].name);
        if (first) {
            ERROR(s, syms[k].loc, "duplicate %s '%s'", what, syms[k].name);
            diag_note(s->diag, first->loc, "first defined here");
            continue;
        }
        size_t i = hash_name(syms[k].name) & (t->cap - 1);
        while (t->slots[i]) i = (i + 1) & (t->cap - 1);
        t->slots[i] = &syms[k];
    }
    return 0;
}

/* The defined name closest to a misspelt one, or NULL. */
static const char *closest(const Table *t, const char *name)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    for (size_t k = 0; k < t->n; k++) {
        if (!mtr_name_is_close(name, t->all[k].name)) continue;
        int d = mtr_name_distance(name, t->all[k].name);
        if (d < best_d) best_d = d, best = t->all[k].name;
    }
    return best;
}

static void unknown(Sema *s, const AstRef *r, const char *what)
{
    const char *guess = closest(&s->names, r->name);
    if (guess)
        ERROR(s, r->loc, "unknown %s '%s'; did you mean '%s'?", what, r->name, guess);
    else
        ERROR(s, r->loc, "unknown %s '%s'", what, r->name);
}

/* What a symbol is, for messages: "input", "label", "tower", "head". */
static const char *sort_of(const Symbol *sym)
{
    if (sym->kind == SYM_COLUMN) return sym->column->is_label ? "label" : "input";
    return sym->chain->kind == CHAIN_TOWER ? "tower" : "head";
}

static const char *article(const char *sort)
{
    return sort[0] == 'i' ? "an" : "a";
}

/* Resolves r (filling r->column or r->chain). Returns its symbol, or NULL
 * after reporting an unknown name. */
static const Symbol *resolve(Sema *s, AstRef *r, const char *what)
{
    const Symbol *sym = table_find(&s->names, r->name);
    if (!sym) {
        unknown(s, r, what);
        return NULL;
    }
    r->column = sym->kind == SYM_COLUMN ? sym->column : NULL;
    r->chain = sym->kind == SYM_CHAIN ? sym->chain : NULL;
    return sym;
}

/* ---- columns and chains ------------------------------------------------- */

static void check_columns(Sema *s)
{
    for (AstColumn *c = s->m->columns; c; c = c->next) {
        if (c->is_label && c->type == TY_STRING)
            ERROR(s, c->loc, "label '%s' is a string; a label must be float or int", c->name);
    }
}

/* Checks one source of chain c and returns its width, or -1. */
static int64_t check_source(Sema *s, AstChain *c, AstRef *r)
{
    const char *chain_sort = c->kind == CHAIN_TOWER ? "tower" : "head";
    const Symbol *sym = resolve(s, r, "name");
    if (!sym) return -1;
    if (sym->kind == SYM_CHAIN && sym->chain == c) {
        ERROR(s, r->loc, "'%s' cannot read itself", r->name);
        return -1;
    }
    if (!loc_before(sym->loc, c->loc)) {
        ERROR(s, r->loc, "'%s' is used before it is defined", r->name);
        diag_note(s->diag, sym->loc, "defined here");
        return -1;
    }
    if (sym->kind == SYM_COLUMN) {
        if (sym->column->is_label) {
            ERROR(s, r->loc, "'%s' is a label; a %s reads inputs and towers, not labels", r->name,
                  chain_sort);
            return -1;
        }
        if (c->is_concat || c->kind == CHAIN_HEAD) {
            ERROR(s, r->loc, "'%s' is an input; %s reads towers (make a tower over it first)",
                  r->name, c->is_concat ? "concat" : "a head");
            return -1;
        }
        return 0; /* the lookup -> embedding stages give the width */
    }
    if (sym->chain->kind == CHAIN_HEAD) {
        ERROR(s, r->loc, "'%s' is a head; a %s reads inputs and towers, not heads", r->name,
              chain_sort);
        return -1;
    }
    return sym->chain->width;
}

static void check_chain(Sema *s, AstChain *c)
{
    int64_t width = 0;
    int ok = 1;
    AstColumn *column = NULL;
    for (AstRef *r = c->sources; r; r = r->next) {
        int64_t w = check_source(s, c, r);
        if (w < 0) {
            ok = 0;
            continue;
        }
        if (r->column) column = r->column;
        width += w;
    }
    if (width > MAX_WIDTH) {
        ERROR(s, c->loc, "'%s' is too wide (%lld, at most %d)", c->name, (long long)width,
              MAX_WIDTH);
        ok = 0;
    }
    AstStage *st = c->stages;
    if (ok && column) {
        /* An input is read through its vocabulary: lookup -> embedding(D). */
        if (!st || st->kind != STAGE_LOOKUP) {
            ERROR(s, st ? st->loc : c->loc,
                  "a tower over input '%s' must begin with '-> lookup -> embedding(D)'",
                  column->name);
            ok = 0;
        } else if (column->type == TY_FLOAT) {
            ERROR(s, st->loc, "lookup needs a string or int input; '%s' is float", column->name);
            ok = 0;
        } else if (!st->next || st->next->kind != STAGE_EMBEDDING) {
            ERROR(s, st->next ? st->next->loc : st->loc, "lookup must be followed by embedding(D)");
            ok = 0;
        } else {
            column->looked_up = 1;
            width = st->next->units;
            st = st->next->next;
        }
    }
    for (; ok && st; st = st->next) {
        if (st->kind == STAGE_DENSE) {
            st->in_width = width;
            width = st->units;
        } else {
            ERROR(s, st->loc, "%s can only come right after an input%s",
                  st->kind == STAGE_LOOKUP ? "lookup" : "embedding",
                  st->kind == STAGE_LOOKUP ? "" : " and lookup");
            ok = 0;
        }
    }
    c->width = ok ? width : 0;
}

/* ---- tasks -------------------------------------------------------------- */

/* Resolves a task argument that must be a chain; returns it or NULL. */
static AstChain *task_chain(Sema *s, AstRef *r, const char *want)
{
    const Symbol *sym = resolve(s, r, want);
    if (!sym) return NULL;
    if (sym->kind == SYM_COLUMN) {
        ERROR(s, r->loc, "'%s' is %s %s, not a %s", r->name, article(sort_of(sym)), sort_of(sym),
              want);
        return NULL;
    }
    return sym->chain;
}

static void check_ranking(Sema *s, AstTask *t)
{
    AstRef *head = t->args, *label = t->args->next;
    AstChain *c = task_chain(s, head, "head");
    if (c && c->width != 1 && c->width != 0) {
        ERROR(s, head->loc,
              "a ranking task needs an output of size 1, but '%s' has size %lld (end it with "
              "dense(1))",
              c->name, (long long)c->width);
        diag_note(s->diag, c->loc, "'%s' defined here", c->name);
    }
    const Symbol *sym = resolve(s, label, "label");
    if (sym && !(sym->kind == SYM_COLUMN && sym->column->is_label))
        ERROR(s, label->loc, "'%s' is %s %s, not a label", label->name, article(sort_of(sym)),
              sort_of(sym));
    if (t->loss == LOSS_DEFAULT) t->loss = LOSS_MSE;
    for (AstMetric *m = t->metrics; m; m = m->next) {
        if (m->kind == METRIC_TOP_K)
            ERROR(s, m->loc, "top_k is a retrieval metric; a ranking task takes rmse, mae or auc");
    }
}

static void check_top_k(Sema *s, const AstMetric *m)
{
    for (int i = 0; i < m->n_ks; i++) {
        if (m->ks[i] <= 0) {
            ERROR(s, m->k_locs[i], "k must be positive, found %lld", (long long)m->ks[i]);
        } else if (i > 0 && m->ks[i] <= m->ks[i - 1]) {
            ERROR(s, m->k_locs[i], "k values must increase: %lld comes after %lld",
                  (long long)m->ks[i], (long long)m->ks[i - 1]);
        }
    }
}

static void check_retrieval(Sema *s, AstTask *t)
{
    AstRef *q = t->args, *cand = t->args->next;
    AstChain *qc = task_chain(s, q, "tower");
    AstChain *cc = task_chain(s, cand, "tower");
    if (qc && qc->kind == CHAIN_HEAD) {
        ERROR(s, q->loc, "'%s' is a head; retrieval compares two towers", q->name);
        qc = NULL;
    }
    if (cc && cc->kind == CHAIN_HEAD) {
        ERROR(s, cand->loc, "'%s' is a head; retrieval compares two towers", cand->name);
        cc = NULL;
    }
    if (qc && cc && qc == cc) {
        ERROR(s, cand->loc, "retrieval needs two different towers, found '%s' twice", q->name);
    } else if (qc && cc && qc->width && cc->width && qc->width != cc->width) {
        ERROR(s, cand->loc,
              "retrieval needs towers of the same output size, but '%s' has %lld and '%s' has "
              "%lld",
              q->name, (long long)qc->width, cand->name, (long long)cc->width);
        diag_note(s->diag, cc->loc, "'%s' defined here", cc->name);
    }
    if (cc) cc->is_item = 1;
    if (t->loss != LOSS_DEFAULT)
        ERROR(s, t->loss_loc,
              "a retrieval task takes no loss clause: its loss is in-batch softmax");
    for (AstMetric *m = t->metrics; m; m = m->next) {
        if (m->kind != METRIC_TOP_K)
            ERROR(s, m->loc, "%s is a ranking metric; a retrieval task takes top_k(...)",
                  m->kind == METRIC_RMSE  ? "rmse"
                  : m->kind == METRIC_MAE ? "mae"
                                          : "auc");
        else
            check_top_k(s, m);
    }
}

static void check_tasks(Sema *s)
{
    if (!s->m->tasks) {
        /* Said only when nothing else is wrong: a file with broken
         * declarations is likely still being written. */
        if (s->errors > 0) return;
        ERROR(s, s->m->loc, "model '%s' has no task (add e.g. 'task NAME = ranking(HEAD, LABEL)')",
              s->m->name);
        return;
    }
    size_t n = 0;
    for (AstTask *t = s->m->tasks; t; t = t->next) n++;
    Symbol *syms = pool_alloc(s->pool, n * sizeof(Symbol));
    Table tasks = {0};
    if (!syms) return;
    n = 0;
    for (AstTask *t = s->m->tasks; t; t = t->next)
        syms[n++] = (Symbol){.name = t->name, .loc = t->loc};
    if (table_build(s, &tasks, syms, n, "task") < 0) return;
    for (AstTask *t = s->m->tasks; t; t = t->next) {
        if (t->kind == TASK_RANKING)
            check_ranking(s, t);
        else
            check_retrieval(s, t);
        for (AstMetric *m = t->metrics; m; m = m->next) {
            for (AstMetric *o = t->metrics; o != m; o = o->next) {
                if (o->kind == m->kind) {
                    ERROR(s, m->loc, "a metric is listed twice");
                    diag_note(s->diag, o->loc, "first listed here");
                    break;
                }
            }
        }
        if (t->has_weight && (!isfinite(t->weight) || t->weight < 0))
            ERROR(s, t->weight_loc, "weight must be a finite number >= 0, found %g", t->weight);
    }
}

/* Marks every chain and input a retrieval candidate reads. Chains are in
 * source order and read only earlier ones, so walking them backwards visits
 * each reader before what it reads. */
static void mark_items(Sema *s)
{
    size_t n = 0;
    for (AstChain *c = s->m->chains; c; c = c->next) n++;
    if (n == 0) return;
    AstChain **order = pool_alloc(s->pool, n * sizeof(AstChain *));
    if (!order) return;
    n = 0;
    for (AstChain *c = s->m->chains; c; c = c->next) order[n++] = c;
    while (n-- > 0) {
        if (!order[n]->is_item) continue;
        for (AstRef *r = order[n]->sources; r; r = r->next) {
            if (r->chain) r->chain->is_item = 1;
            if (r->column) r->column->is_item = 1;
        }
    }
}

/* ---- train -------------------------------------------------------------- */

typedef struct {
    const char *name, *alias;
    size_t offset;
    double min;   /* smallest allowed value */
    int min_open; /* the minimum itself is not allowed */
    double max;   /* below this (exclusive), when max_set */
    int max_set;
} OptionSpec;

#define OPT(name, alias, field, min, open, max, max_set)                                           \
    {                                                                                              \
        name, alias, offsetof(AstTrain, field), min, open, max, max_set                            \
    }
static const OptionSpec ADAGRAD_OPTIONS[] = {
    OPT("lr", "learning_rate", lr, 0, 1, 0, 0),
    OPT("initial_accumulator", "initial_accumulator_value", initial_accumulator, 0, 0, 0, 0),
    OPT("epsilon", "epsilon", epsilon, 0, 1, 0, 0),
};
static const OptionSpec SGD_OPTIONS[] = {
    OPT("lr", "learning_rate", lr, 0, 1, 0, 0),
};
static const OptionSpec ADAM_OPTIONS[] = {
    OPT("lr", "learning_rate", lr, 0, 1, 0, 0),
    OPT("beta1", "beta_1", beta1, 0, 0, 1, 1),
    OPT("beta2", "beta_2", beta2, 0, 0, 1, 1),
    OPT("epsilon", "epsilon", epsilon, 0, 1, 0, 0),
};

static void check_option(Sema *s, AstTrain *t, const AstOption *o, const OptionSpec *specs, int n,
                         const AstOption **given)
{
    const char *opt_name = ast_optimizer_name(t->optimizer);
    int k = 0;
    while (k < n && strcmp(o->name, specs[k].name) != 0 && strcmp(o->name, specs[k].alias) != 0)
        k++;
    if (k == n) {
        for (k = 0; k < n; k++) {
            const char *guess = mtr_name_is_close(o->name, specs[k].name)    ? specs[k].name
                                : mtr_name_is_close(o->name, specs[k].alias) ? specs[k].alias
                                                                             : NULL;
            if (guess) {
                ERROR(s, o->loc, "unknown option '%s' for %s; did you mean '%s'?", o->name,
                      opt_name, guess);
                return;
            }
        }
        char list[128] = "";
        for (k = 0; k < n; k++) {
            strcat(list, k == 0 ? "" : k == n - 1 ? " or " : ", ");
            strcat(list, specs[k].name);
        }
        ERROR(s, o->loc, "unknown option '%s' for %s (it takes %s)", o->name, opt_name, list);
        return;
    }
    const OptionSpec *spec = &specs[k];
    if (given[k]) {
        ERROR(s, o->loc, "option '%s' given twice", spec->name);
        diag_note(s->diag, given[k]->loc, "first given here");
        return;
    }
    given[k] = o;
    double v = o->value;
    if (v < spec->min || (spec->min_open && v == spec->min) || (spec->max_set && v >= spec->max)) {
        if (spec->max_set)
            ERROR(s, o->value_loc, "%s must be in [0, 1), found %g", spec->name, v);
        else
            ERROR(s, o->value_loc, "%s must be %s 0, found %g", spec->name,
                  spec->min_open ? ">" : ">=", v);
        return;
    }
    *(double *)((char *)t + spec->offset) = v;
}

static void check_train(Sema *s)
{
    AstTrain *t = &s->m->train;
    static const char *const names[] = {"adagrad", "sgd", "adam"};
    t->optimizer = OPT_ADAGRAD;
    if (t->optimizer_name) {
        int k = 0;
        while (k < 3 && strcmp(t->optimizer_name, names[k]) != 0) k++;
        if (k == 3) {
            const char *guess = NULL;
            for (int i = 0; i < 3 && !guess; i++)
                if (mtr_name_is_close(t->optimizer_name, names[i])) guess = names[i];
            if (guess)
                ERROR(s, t->optimizer_loc, "unknown optimizer '%s'; did you mean '%s'?",
                      t->optimizer_name, guess);
            else
                ERROR(s, t->optimizer_loc, "unknown optimizer '%s' (expected adagrad, sgd or adam)",
                      t->optimizer_name);
            return;
        }
        t->optimizer = (OptimizerKind)k;
    }
    /* Keras's defaults. */
    t->lr = t->optimizer == OPT_SGD ? 0.01 : 0.001;
    t->initial_accumulator = t->optimizer == OPT_ADAGRAD ? 0.1 : 0;
    t->epsilon = t->optimizer == OPT_SGD ? 0 : 1e-7;
    t->beta1 = t->optimizer == OPT_ADAM ? 0.9 : 0;
    t->beta2 = t->optimizer == OPT_ADAM ? 0.999 : 0;
    const OptionSpec *specs = t->optimizer == OPT_ADAGRAD ? ADAGRAD_OPTIONS
                              : t->optimizer == OPT_SGD   ? SGD_OPTIONS
                                                          : ADAM_OPTIONS;
    int n = t->optimizer == OPT_ADAGRAD ? 3 : t->optimizer == OPT_SGD ? 1 : 4;
    const AstOption *given[4] = {NULL, NULL, NULL, NULL};
    for (const AstOption *o = t->options; o; o = o->next) check_option(s, t, o, specs, n, given);

    if (!t->has_batch) t->batch = SEMA_DEFAULT_BATCH;
    if (!t->has_epochs) t->epochs = SEMA_DEFAULT_EPOCHS;
    if (!t->has_seed) t->seed = SEMA_DEFAULT_SEED;
    if (!t->has_split) t->split = SEMA_DEFAULT_SPLIT;
    if (t->batch < 1 || t->batch > MAX_BATCH)
        ERROR(s, t->batch_loc, "batch must be between 1 and %d, found %lld", MAX_BATCH,
              (long long)t->batch);
    if (t->epochs < 1 || t->epochs > MAX_EPOCHS)
        ERROR(s, t->epochs_loc, "epochs must be between 1 and %d, found %lld", MAX_EPOCHS,
              (long long)t->epochs);
    if (t->seed < 0) ERROR(s, t->seed_loc, "seed must be >= 0, found %lld", (long long)t->seed);
    if (!(t->split > 0 && t->split < 1))
        ERROR(s, t->split_loc,
              "split must be between 0 and 1 (the share used for training), "
              "found %g",
              t->split);
}

/* ---- entry -------------------------------------------------------------- */

int sema_check(AstModel *m, Pool *pool, Diag *diag)
{
    Sema s = {.m = m, .pool = pool, .diag = diag};
    size_t n = 0;
    for (AstColumn *c = m->columns; c; c = c->next) n++;
    for (AstChain *c = m->chains; c; c = c->next) n++;
    Symbol *syms = pool_alloc(pool, (n ? n : 1) * sizeof(Symbol));
    if (!syms) {
        diag_error(diag, (Loc){0, 0, 0}, "out of memory");
        return 1;
    }
    n = 0;
    for (AstColumn *c = m->columns; c; c = c->next)
        syms[n++] = (Symbol){c->name, c->loc, SYM_COLUMN, c, NULL};
    for (AstChain *c = m->chains; c; c = c->next)
        syms[n++] = (Symbol){c->name, c->loc, SYM_CHAIN, NULL, c};
    if (table_build(&s, &s.names, syms, n, "name") < 0) {
        diag_error(diag, (Loc){0, 0, 0}, "out of memory");
        return 1;
    }
    check_columns(&s);
    for (AstChain *c = m->chains; c && !diag_stopped(diag); c = c->next) check_chain(&s, c);
    check_tasks(&s);
    mark_items(&s);
    check_train(&s);
    return s.errors;
}
