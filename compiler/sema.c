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

#define MAX_WIDTH (1 << 24)

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
    return sym->chain->kind == CHAIN_TOWER  ? "tower"
           : sym->chain->kind == CHAIN_HEAD ? "head"
                                            : "experts block";
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
        if (!c->from_name) continue;
        /* A derived label compares a number column of the data, defined above it. */
        AstRef r = {.name = c->from_name, .loc = c->from_loc};
        const Symbol *sym = resolve(s, &r, "column");
        if (!sym) continue;
        if (sym->kind != SYM_COLUMN) {
            ERROR(s, c->from_loc, "'%s' is %s %s; a derived label compares a column", r.name,
                  article(sort_of(sym)), sort_of(sym));
        } else if (!loc_before(sym->loc, c->loc)) {
            ERROR(s, c->from_loc, "'%s' is used before it is defined", r.name);
            diag_note(s->diag, sym->loc, "defined here");
        } else if (sym->column->type == TY_STRING || sym->column->from_name) {
            ERROR(s, c->from_loc,
                  "'%s' is a %s; a derived label compares a number column (float or int) of "
                  "the data",
                  r.name, sym->column->from_name ? "derived label" : "string");
        } else {
            c->from = sym->column;
        }
    }
}

/* Checks one source of chain c and returns its width, or -1. */
static int64_t check_source(Sema *s, AstChain *c, AstRef *r)
{
    const char *chain_sort = c->kind == CHAIN_TOWER  ? "tower"
                             : c->kind == CHAIN_HEAD ? "head"
                                                     : "experts block";
    const Symbol *sym = resolve(s, r, "name");
    if (!sym) return -1;
    if (sym->kind == SYM_CHAIN && sym->chain == c) {
        ERROR(s, r->loc, "'%s' cannot read itself", r->name);
        return -1;
    }
    if (!loc_before(sym->loc, c->loc) && !(sym->kind == SYM_CHAIN && sym->chain->anon)) {
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
        if (c->combine || c->kind != CHAIN_TOWER) {
            ERROR(s, r->loc, "'%s' is an input; %s reads towers (make a tower over it first)",
                  r->name,
                  c->combine ? ast_combiner_info((CombinerKind)c->combine->combiner)->name
                  : c->kind == CHAIN_HEAD ? "a head"
                                          : "an experts block");
            return -1;
        }
        return 0; /* the lookup -> embedding stages give the width */
    }
    if (sym->chain->kind == CHAIN_EXPERTS) return sym->chain->width; /* mix checks the rest */
    if (sym->chain->kind == CHAIN_HEAD && c->kind == CHAIN_TOWER) {
        ERROR(s, r->loc, "'%s' is a head; a %s reads inputs and towers, not heads", r->name,
              chain_sort);
        return -1;
    }
    return sym->chain->width;
}

/* The first stage kind with this place, for messages ("lookup", "embedding"). */
static const char *stage_named(StagePlace place)
{
    for (int k = 0; k < STAGE_COUNT; k++)
        if (ast_stage_info((StageKind)k)->place == place) return ast_stage_info((StageKind)k)->name;
    return "?";
}

/* Whether two sources read the same: the same names through the same combiners. */
static int same_source(const AstSource *a, const AstSource *b)
{
    if (a->combiner != b->combiner) return 0;
    if (a->combiner < 0) return a->ref->chain == b->ref->chain && a->ref->column == b->ref->column;
    for (a = a->members, b = b->members; a && b; a = a->next, b = b->next)
        if (!same_source(a, b)) return 0;
    return a == b;
}

static const AstSource *chain_source(const AstChain *c)
{
    return c->combine;
}

/* mix(E1, E2, ...): experts blocks, and only those, of one width over one input. */
static int check_mix(Sema *s, const AstSource *src)
{
    const AstChain *first = NULL;
    int ok = 1;
    for (const AstSource *m = src->members; m; m = m->next) {
        const AstChain *e = m->combiner < 0 ? m->ref->chain : NULL;
        if (!e || e->kind != CHAIN_EXPERTS) {
            ERROR(s, m->loc, "mix reads experts blocks; this is not one");
            ok = 0;
            continue;
        }
        if (!first) {
            first = e;
            continue;
        }
        const AstSource *ea = chain_source(first), *eb = chain_source(e);
        int same_input = ea && eb ? same_source(ea, eb)
                                  : !ea && !eb && first->sources->chain == e->sources->chain;
        if (!same_input) {
            ERROR(s, m->loc,
                  "mix needs experts over one input, but '%s' and '%s' read different ones",
                  first->name, e->name);
            ok = 0;
        }
    }
    return ok;
}

/* The width of a combined source (its leaves already checked), by its
 * combiner's row; -1 after reporting sources of the wrong widths. An experts
 * block is read through mix only (parent: the enclosing combiner, or -1). */
static int64_t combine_width(Sema *s, AstSource *src, int parent)
{
    if (src->combiner < 0) {
        const AstChain *ch = src->ref->chain;
        if (ch && ch->kind == CHAIN_EXPERTS && parent != COMB_MIX) {
            ERROR(s, src->loc, "'%s' is an experts block; read it through mix(%s)", ch->name,
                  ch->name);
            return -1;
        }
        return src->width = ch ? ch->width : 0;
    }
    if (src->combiner == COMB_MIX && !check_mix(s, src)) return -1;
    const CombinerInfo *info = ast_combiner_info((CombinerKind)src->combiner);
    int64_t sum = 0, first = -1;
    int ok = 1;
    for (AstSource *m = src->members; m; m = m->next) {
        int64_t w = combine_width(s, m, src->combiner);
        if (w < 0) {
            ok = 0;
            continue;
        }
        sum += w;
        if (info->output == COUT_PROBABILITY && w != 1) {
            ERROR(s, m->loc, "%s reads logits of width 1, but this one has %lld", info->name,
                  (long long)w);
            ok = 0;
            continue;
        }
        if (first < 0) {
            first = w;
        } else if (info->width != CWIDTH_SUM && w != first) {
            ERROR(s, m->loc,
                  "%s needs sources of one width, but this one has %lld and the first %lld",
                  info->name, (long long)w, (long long)first);
            ok = 0;
        }
    }
    if (!ok) return -1;
    switch (info->width) {
    case CWIDTH_SUM:
        return src->width = sum;
    case CWIDTH_SAME:
        return src->width = first;
    case CWIDTH_ONE:
        return src->width = 1;
    }
    return -1;
}

/* ---- features: what a chain over an input computes before any weights ---- */

static AstStage feature_bad_stage;
#define FEATURE_BAD (&feature_bad_stage)

/* A name for the model column a feature becomes: the input and its
 * preprocessing stages ("movie_title.tokens.lookup", "timestamp.discretize(100)"). */
static const char *feature_name(Sema *s, const AstFeature *f, const AstStage *from,
                                const AstStage *to)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s", f->column->name);
    for (const AstStage *x = from; x && x != to && n > 0 && (size_t)n < sizeof buf; x = x->next) {
        const char *nm = ast_stage_info(x->kind)->name;
        size_t room = sizeof buf - (size_t)n;
        if (x->kind == STAGE_HASH || x->kind == STAGE_DISCRETIZE)
            n += snprintf(buf + n, room, ".%s(%lld)", nm, (long long)x->units);
        else if (x->kind == STAGE_LOOKUP && x->min_count)
            n += snprintf(buf + n, room, ".%s(min_count=%lld)", nm, (long long)x->min_count);
        else if (x->kind == STAGE_BUCKETIZE)
            n += snprintf(buf + n, room, ".%s(%d)", nm, x->n_bounds);
        else
            n += snprintf(buf + n, room, ".%s", nm);
    }
    if (n < 0) return NULL;
    size_t len = strlen(buf);
    return pool_strndup(s->pool, buf, len);
}

/* Checks the stages that read input `column` at the head of chain c and
 * fills c->feat: [tokens] lookup|hash(N) embedding(D[, pool]), discretize(N)|
 * bucketize(...) embedding(D), or normalize. Returns the first stage after
 * them (NULL: none) with *width their output width, or FEATURE_BAD after
 * reporting what is wrong. */
static AstStage *check_feature(Sema *s, AstChain *c, AstColumn *column, int64_t *width)
{
    const char *first = stage_named(PLACE_INPUT), *second = stage_named(PLACE_IDS);
    AstFeature *f = &c->feat;
    AstStage *st = c->stages, *head = st;
    memset(f, 0, sizeof *f);
    f->column = column;
    f->is_list = column->is_list;
    StagePlace place = st ? ast_stage_info(st->kind)->place : PLACE_HIDDEN;
    if (place == PLACE_TEXT) {
        if (column->type != TY_STRING || column->is_list) {
            ERROR(s, st->loc, "tokens needs a string input; '%s' is %s%s", column->name,
                  ast_type_name(column->type), column->is_list ? " list" : "");
            return FEATURE_BAD;
        }
        f->tokens = f->is_list = 1;
        st = st->next;
        if (!st || ast_stage_info(st->kind)->place != PLACE_INPUT) {
            ERROR(s, st ? st->loc : head->loc, "tokens must be followed by lookup or hash(N)");
            return FEATURE_BAD;
        }
        place = PLACE_INPUT;
    }
    if (place == PLACE_SCALE || place == PLACE_NUMBER) {
        if (column->type != TY_FLOAT) {
            ERROR(s, st->loc, "%s needs a float input; '%s' is %s%s",
                  ast_stage_info(st->kind)->name, column->name, ast_type_name(column->type),
                  column->is_list ? " list" : "");
            return FEATURE_BAD;
        }
        if (place == PLACE_SCALE) {
            f->kind = FEAT_NORMALIZE;
            f->name = feature_name(s, f, head, st->next);
            *width = 1;
            return st->next;
        }
        f->kind = st->kind == STAGE_DISCRETIZE ? FEAT_DISCRETIZE : FEAT_BUCKETIZE;
        f->arg = st->units;
        f->bounds = st->bounds;
        f->n_bounds = st->n_bounds;
        if (f->kind == FEAT_DISCRETIZE && (f->arg < 2 || f->arg > 100000)) {
            ERROR(s, st->loc, "discretize needs from 2 to 100000 buckets, found %lld",
                  (long long)f->arg);
            return FEATURE_BAD;
        }
    } else if (place == PLACE_INPUT) {
        if (column->type == TY_FLOAT) {
            ERROR(s, st->loc, "%s needs a string or int input; '%s' is float",
                  ast_stage_info(st->kind)->name, column->name);
            return FEATURE_BAD;
        }
        f->kind = st->kind == STAGE_HASH ? FEAT_HASH : FEAT_LOOKUP;
        f->arg = st->kind == STAGE_HASH ? st->units : st->min_count;
    } else {
        ERROR(s, st ? st->loc : c->loc,
              "a tower over input '%s' must begin with '-> %s -> %s(D)' (or another feature's "
              "stages: tokens, hash(N), normalize, discretize(N), bucketize(...))",
              column->name, first, second);
        return FEATURE_BAD;
    }
    AstStage *emb = st->next;
    if (!emb || ast_stage_info(emb->kind)->place != PLACE_IDS) {
        ERROR(s, emb ? emb->loc : st->loc, "%s must be followed by %s(D)",
              ast_stage_info(st->kind)->name, second);
        return FEATURE_BAD;
    }
    if (f->is_list && emb->pool == POOL_NONE) {
        ERROR(s, emb->loc,
              "'%s' gives a list of ids a row: pool them, %s(%lld, mean) or %s(%lld, sum)",
              column->name, second, (long long)emb->units, second, (long long)emb->units);
        return FEATURE_BAD;
    }
    if (!f->is_list && emb->pool != POOL_NONE) {
        ERROR(s, emb->loc, "'%s' gives one id a row: there is nothing to pool", column->name);
        return FEATURE_BAD;
    }
    f->pool = emb->pool;
    f->plain = f->kind == FEAT_LOOKUP && !f->is_list && f->arg == 0;
    if (f->plain) {
        column->looked_up = 1;
        f->name = column->name;
    } else {
        f->name = feature_name(s, f, head, emb);
    }
    if (!f->name) return FEATURE_BAD;
    *width = emb->units;
    return emb->next;
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
    if (ok && c->combine && (width = combine_width(s, c->combine, -1)) < 0) ok = 0;
    if (ok && !c->combine && c->sources->chain && c->sources->chain->kind == CHAIN_EXPERTS) {
        ERROR(s, c->sources->loc, "'%s' is an experts block; read it through mix(%s)",
              c->sources->name, c->sources->name);
        ok = 0;
    }
    c->is_probability =
        ok && c->combine && !c->stages &&
        ast_combiner_info((CombinerKind)c->combine->combiner)->output == COUT_PROBABILITY;
    if (width > MAX_WIDTH) {
        ERROR(s, c->loc, "'%s' is too wide (%lld, at most %d)", c->name, (long long)width,
              MAX_WIDTH);
        ok = 0;
    }
    /* Where each stage may stand (its row's place): an input is read through
     * a feature's stages (check_feature: lookup -> embedding(D), normalize,
     * ...); every stage after those works on vectors. */
    const char *first = stage_named(PLACE_INPUT);
    AstStage *st = c->stages;
    if (ok && column) {
        st = check_feature(s, c, column, &width);
        ok = st != FEATURE_BAD;
    }
    for (; ok && st; st = st->next) {
        const StageInfo *info = ast_stage_info(st->kind);
        switch (info->place) {
        case PLACE_HIDDEN:
            st->in_width = width;
            if (info->width == WIDTH_UNITS) width = st->units;
            break;
        case PLACE_INPUT:
            ERROR(s, st->loc, "%s can only come right after an input", info->name);
            ok = 0;
            break;
        case PLACE_IDS:
            ERROR(s, st->loc, "%s can only come right after an input and %s", info->name, first);
            ok = 0;
            break;
        case PLACE_TEXT:
        case PLACE_NUMBER:
        case PLACE_SCALE:
            ERROR(s, st->loc, "%s can only come right after an input", info->name);
            ok = 0;
            break;
        }
    }
    if (ok && c->kind == CHAIN_EXPERTS) {
        /* Each expert's weights of its own: the block begins with a weighted
         * stage, and holds only stages that can be its experts' own. */
        if (!c->stages || ast_stage_info(c->stages->kind)->width != WIDTH_UNITS ||
            !ast_stage_info(c->stages->kind)->in_experts) {
            ERROR(s, c->stages ? c->stages->loc : c->loc,
                  "an experts block begins with dense(N): each expert's weights of its own");
            ok = 0;
        }
        for (const AstStage *x = c->stages; ok && x; x = x->next)
            if (!ast_stage_info(x->kind)->in_experts) {
                ERROR(s, x->loc, "%s cannot stand in an experts block",
                      ast_stage_info(x->kind)->name);
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

/* Metrics that read another output than the task's: "top_k is a retrieval
 * metric; a ranking task takes rmse, mae or auc". */
static void check_metric_fits(Sema *s, const AstTask *t, const AstMetric *m)
{
    const TaskInfo *task = ast_task_info(t->kind);
    MtrOutputRole reads = mtr_metric_reads((unsigned)m->kind);
    if (reads == task->reads) return;
    const char *owner = "another";
    for (int k = 0; k < TASK_COUNT; k++)
        if (ast_task_info((TaskKind)k)->reads == reads) {
            owner = ast_task_info((TaskKind)k)->name;
            break;
        }
    char list[256] = "";
    int n = 0, total = 0;
    for (unsigned k = 0; k < MTR_METRIC_COUNT; k++) total += mtr_metric_reads(k) == task->reads;
    for (unsigned k = 0; k < MTR_METRIC_COUNT; k++) {
        if (mtr_metric_reads(k) != task->reads) continue;
        n++;
        strcat(list, n == 1 ? "" : n == total ? " or " : ", ");
        strcat(list, mtr_metric_name(k));
        if (mtr_metric_takes_k(k)) strcat(list, "(...)");
    }
    ERROR(s, m->loc, "%s is a%s %s metric; a %s task takes %s", mtr_metric_name((unsigned)m->kind),
          strchr("aeiou", owner[0]) ? "n" : "", owner, task->name, list);
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

/* temperature, logq and remove_accidental_hits shape an in-batch softmax: a
 * retrieval task's only; a temperature is in its knob's range. */
static void check_retrieval_options(Sema *s, const AstTask *t)
{
    int retrieval = ast_task_info(t->kind)->reads == MTR_OUT_RANK;
    const char *kind = ast_task_info(t->kind)->name;
    char rule[64];
    if (t->has_temperature && !retrieval)
        ERROR(s, t->temperature_loc, "temperature scales in-batch scores; a %s task has none",
              kind);
    else if (t->has_temperature &&
             mtr_knob_check(MTR_KNOB_TEMPERATURE, t->temperature, rule, sizeof rule))
        ERROR(s, t->temperature_loc, "temperature %s, found %g", rule, t->temperature);
    if (t->logq && !retrieval)
        ERROR(s, t->logq_loc, "logq corrects in-batch negatives; a %s task has none", kind);
    if (t->logq_counts && retrieval) {
        /* logq(counts = COLUMN): a number column of the data, each row's count of its item */
        AstRef r = {.name = t->logq_counts, .loc = t->logq_counts_loc};
        const Symbol *sym = resolve(s, &r, "column");
        if (sym && sym->kind != SYM_COLUMN)
            ERROR(s, r.loc, "'%s' is %s %s; logq(counts = ...) names a column", r.name,
                  article(sort_of(sym)), sort_of(sym));
        else if (sym && (sym->column->type == TY_STRING || sym->column->is_label ||
                         sym->column->is_list || sym->column->from_name))
            ERROR(s, r.loc,
                  "'%s' is not a number input; logq(counts = ...) names an input column of "
                  "each row's item count (float or int)",
                  r.name);
        else if (sym)
            ((AstTask *)t)->logq_column = sym->column;
    }
    if (t->remove_hits && !retrieval)
        ERROR(s, t->hits_loc, "remove_accidental_hits masks in-batch negatives; a %s task has none",
              kind);
    if (t->negatives && !retrieval)
        ERROR(s, t->negatives_loc,
              "negatives are sampled for an in-batch softmax; a %s task has none", kind);
    if (t->has_popularity && !t->negatives)
        ERROR(s, t->popularity_loc,
              "popularity shapes the sampler of mixed negatives: write "
              "`negatives N popularity A`");
    else if (t->has_popularity &&
             mtr_knob_check(MTR_KNOB_POPULARITY, t->popularity, rule, sizeof rule))
        ERROR(s, t->popularity_loc, "popularity %s, found %g", rule, t->popularity);
}

/* A task's k-taking metrics share one list of cut-offs, the union of the k
 * values they name (model.bin keeps one list per task): it must fit. */
static void check_k_union(Sema *s, const AstTask *t)
{
    int64_t ks[MTR_MAX_KS];
    int n = 0;
    for (const AstMetric *m = t->metrics; m; m = m->next) {
        if (!mtr_metric_takes_k((unsigned)m->kind)) continue;
        for (int i = 0; i < m->n_ks; i++) {
            int seen = 0;
            for (int j = 0; j < n; j++) seen |= ks[j] == m->ks[i];
            if (seen) continue;
            if (n == MTR_MAX_KS) {
                ERROR(s, m->k_locs[i],
                      "a task's metrics share at most %d distinct k values; %lld is one more",
                      MTR_MAX_KS, (long long)m->ks[i]);
                return;
            }
            ks[n++] = m->ks[i];
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
}

/* Each task kind's own checks, by its row (tasks.def). */
typedef void (*TaskCheck)(Sema *, AstTask *);
static const TaskCheck task_checks[TASK_COUNT] = {
#define X(E, n, args, reads, loss) [TASK_##E] = check_##n,
#include "tasks.def"
#undef X
};

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
        task_checks[t->kind](s, t);
        /* A loss clause names a loss of this task's kind; none gives its default. */
        if (t->loss == LOSS_DEFAULT) t->loss = (LossKind)ast_task_info(t->kind)->default_loss;
        const LossInfo *dflt = ast_loss_info((LossKind)ast_task_info(t->kind)->default_loss);
        if (ast_loss_info(t->loss)->task != t->kind && dflt->name[0]) /* else its check said it */
            ERROR(s, t->loss_loc, "loss %s is not a %s loss", ast_loss_info(t->loss)->name,
                  ast_task_info(t->kind)->name);
        for (AstMetric *m = t->metrics; m; m = m->next) {
            check_metric_fits(s, t, m);
            if (mtr_metric_takes_k((unsigned)m->kind)) check_top_k(s, m);
            for (AstMetric *o = t->metrics; o != m; o = o->next) {
                if (o->kind == m->kind) {
                    ERROR(s, m->loc, "a metric is listed twice");
                    diag_note(s->diag, o->loc, "first listed here");
                    break;
                }
            }
        }
        check_k_union(s, t);
        if (t->has_weight && (!isfinite(t->weight) || t->weight < 0))
            ERROR(s, t->weight_loc, "weight must be a finite number >= 0, found %g", t->weight);
        char rule[64];
        if (t->has_sample && mtr_knob_check(MTR_KNOB_SAMPLE, t->sample, rule, sizeof rule))
            ERROR(s, t->sample_loc, "sample %s, found %g", rule, t->sample);
        if (t->has_sample && ast_task_info(t->kind)->reads != MTR_OUT_PREDICTION)
            ERROR(s, t->sample_loc, "sample chooses rows of a label; a %s task has none",
                  ast_task_info(t->kind)->name);
        check_retrieval_options(s, t);
    }
}

/* A sample drops labels from rows; another task on the same label would lose
 * them too, so a sampled task's label is its own. Run once every task's
 * arguments are resolved. */
static void check_samples(Sema *s)
{
    for (AstTask *t = s->m->tasks; t; t = t->next) {
        if (!t->has_sample || ast_task_info(t->kind)->reads != MTR_OUT_PREDICTION) continue;
        const AstColumn *label = t->args->next->column;
        for (AstTask *o = s->m->tasks; label && o; o = o->next)
            if (o != t && ast_task_info(o->kind)->reads == MTR_OUT_PREDICTION &&
                o->args->next->column == label) {
                ERROR(s, t->sample_loc,
                      "task '%s' samples its label '%s', which task '%s' also reads (give each "
                      "its own label, e.g. a derived one)",
                      t->name, label->name, o->name);
                break;
            }
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

/* The first single-id lookup chain c reads, depth first in source order: the
 * model column of its ids, or NULL. depth bounds the walk (chains read only
 * earlier chains, so there are no cycles; this is belt and braces). */
static const char *first_id_column(const AstChain *c, int depth)
{
    if (!c || depth > 64) return NULL;
    const AstFeature *f = &c->feat;
    if (f->column && f->kind == FEAT_LOOKUP && !f->is_list && !f->column->is_label) return f->name;
    for (const AstRef *r = c->sources; r; r = r->next) {
        const char *name = first_id_column(r->chain, depth + 1);
        if (name) return name;
    }
    return NULL;
}

/* The column that names a row's user (the runtime orders test rows by it,
 * samples --eval-users by it, ranks per user and excludes seen items by it):
 * the first id column of the query tower of the first retrieval task; for a
 * model without retrieval, the first id column the first ranking task's head
 * reads (source order, depth first). NULL when there is none. */
static void mark_user(Sema *s)
{
    const AstTask *first = NULL;
    for (const AstTask *t = s->m->tasks; t; t = t->next)
        if (t->kind == TASK_RETRIEVAL && t->args && t->args->chain) {
            s->m->user_column = first_id_column(t->args->chain, 0);
            return;
        }
    for (const AstTask *t = s->m->tasks; t && !first; t = t->next)
        if (t->args && t->args->chain) first = t;
    s->m->user_column = first ? first_id_column(first->args->chain, 0) : NULL;
}

/* ---- train -------------------------------------------------------------- */

/* The options of each optimizer (optimizer_options.def). */
typedef struct {
    OptimizerKind optimizer;
    const char *name, *alias;
    MtrKnobKind knob, emb_knob;
    double keras_default;
} OptionSpec;

static const OptionSpec OPTIONS[] = {
#define X(OPT, n, alias, knob, emb, dflt)                                                          \
    {OPT_##OPT, #n, #alias, MTR_KNOB_##knob, MTR_KNOB_##emb, dflt},
#include "optimizer_options.def"
#undef X
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof *OPTIONS))

/* Train settings (settings.def): each a knob with a default. */
static const struct {
    const char *name;
    MtrKnobKind knob;
    double dflt;
} SETTINGS[SET_COUNT] = {
#define X(E, n, knob, dflt, when) [SET_##E] = {#n, MTR_KNOB_##knob, dflt},
#include "settings.def"
#undef X
};

static void check_option(Sema *s, AstTrain *t, OptimizerKind opt, int emb, const AstOption *o,
                         const AstOption **given)
{
    const char *opt_name = ast_optimizer_name(opt);
    int k = 0;
    while (k < N_OPTIONS &&
           (OPTIONS[k].optimizer != opt ||
            (strcmp(o->name, OPTIONS[k].name) != 0 && strcmp(o->name, OPTIONS[k].alias) != 0)))
        k++;
    if (k == N_OPTIONS) {
        char list[256] = "";
        int n = 0, total = 0;
        for (k = 0; k < N_OPTIONS; k++) total += OPTIONS[k].optimizer == opt;
        for (k = 0; k < N_OPTIONS; k++) {
            if (OPTIONS[k].optimizer != opt) continue;
            const char *guess = mtr_name_is_close(o->name, OPTIONS[k].name)    ? OPTIONS[k].name
                                : mtr_name_is_close(o->name, OPTIONS[k].alias) ? OPTIONS[k].alias
                                                                               : NULL;
            if (guess) {
                ERROR(s, o->loc, "unknown option '%s' for %s; did you mean '%s'?", o->name,
                      opt_name, guess);
                return;
            }
            n++;
            strcat(list, n == 1 ? "" : n == total ? " or " : ", ");
            strcat(list, OPTIONS[k].name);
        }
        ERROR(s, o->loc, "unknown option '%s' for %s (it takes %s)", o->name, opt_name, list);
        return;
    }
    const OptionSpec *spec = &OPTIONS[k];
    if (given[k]) {
        ERROR(s, o->loc, "option '%s' given twice", spec->name);
        diag_note(s->diag, given[k]->loc, "first given here");
        return;
    }
    given[k] = o;
    MtrKnobKind knob = emb ? spec->emb_knob : spec->knob;
    char rule[64];
    if (mtr_knob_check(knob, o->value, rule, sizeof rule)) {
        ERROR(s, o->value_loc, "%s %s, found %g", spec->name, rule, o->value);
        return;
    }
    t->value[knob] = o->value;
    t->given[knob] = 1;
}

/* The optimizer called name, or OPT_COUNT after reporting why not. */
static OptimizerKind find_optimizer(Sema *s, const char *name, Loc loc)
{
    int k = 0;
    while (k < OPT_COUNT && strcmp(name, ast_optimizer_name((OptimizerKind)k))) k++;
    if (k < OPT_COUNT) return (OptimizerKind)k;
    const char *guess = NULL;
    char list[128] = "";
    for (int i = 0; i < OPT_COUNT; i++) {
        const char *n = ast_optimizer_name((OptimizerKind)i);
        if (!guess && mtr_name_is_close(name, n)) guess = n;
        strcat(list, i == 0 ? "" : i == OPT_COUNT - 1 ? " or " : ", ");
        strcat(list, n);
    }
    if (guess)
        ERROR(s, loc, "unknown optimizer '%s'; did you mean '%s'?", name, guess);
    else
        ERROR(s, loc, "unknown optimizer '%s' (expected %s)", name, list);
    return OPT_COUNT;
}

/* `optimizer_embedding NAME(options)`: Keras's defaults, then the options,
 * each into the option's embedding knob (optimizer_options.def). */
static void check_emb_optimizer(Sema *s, AstTrain *t)
{
    t->emb_optimizer = OPT_COUNT;
    if (!t->emb_optimizer_name) return;
    OptimizerKind opt = find_optimizer(s, t->emb_optimizer_name, t->emb_optimizer_loc);
    if (opt == OPT_COUNT) return;
    t->emb_optimizer = opt;
    for (int k = 0; k < N_OPTIONS; k++)
        if (OPTIONS[k].optimizer == opt) {
            t->value[OPTIONS[k].emb_knob] = OPTIONS[k].keras_default;
            t->given[OPTIONS[k].emb_knob] = 1;
        }
    const AstOption *given[N_OPTIONS];
    memset(given, 0, sizeof given);
    for (const AstOption *o = t->emb_options; o; o = o->next) check_option(s, t, opt, 1, o, given);
}

/* `decay NAME(arg)` (decays.def): its argument into the decay's knob. */
static void check_decay(Sema *s, AstTrain *t)
{
    if (!t->decay_name) return;
    int d = 0;
    while (d < DECAY_COUNT && strcmp(t->decay_name, ast_decay_info((DecayKind)d)->name)) d++;
    if (d == DECAY_COUNT) {
        ERROR(s, t->decay_loc, "unknown decay '%s' (expected cosine or exponential(r))",
              t->decay_name);
        return;
    }
    const DecayInfo *info = ast_decay_info((DecayKind)d);
    const AstValue *a = t->decay_args;
    double v = info->arg_default;
    if (a && a->next) {
        ERROR(s, a->loc, "decay %s takes one number", info->name);
        return;
    }
    if (a) {
        if (a->kind != VAL_NUMBER) {
            ERROR(s, a->loc, "decay %s takes a number, found '%s'", info->name,
                  a->text ? a->text : "?");
            return;
        }
        v = a->num;
    } else if (isnan(v)) {
        ERROR(s, t->decay_loc, "decay %s needs its rate: %s(r)", info->name, info->name);
        return;
    }
    char rule[64];
    if (mtr_knob_check(info->knob, v, rule, sizeof rule)) {
        ERROR(s, a ? a->loc : t->decay_loc, "decay %s's argument %s, found %.10g", info->name, rule,
              v);
        return;
    }
    t->value[info->knob] = v;
    t->given[info->knob] = 1;
}

/* `early_stop TASK.METRIC patience N`: the target must be a metric the task
 * reports (top_<k> for one of its ks); coded into the early_stop knob as
 * task * 256 + metric * 16 + the k's index (knobs.def). */
static void check_early_stop(Sema *s, AstTrain *t)
{
    if (!t->early_stop) return;
    char rule[64];
    if (mtr_knob_check(MTR_KNOB_PATIENCE, t->value[MTR_KNOB_PATIENCE], rule, sizeof rule))
        ERROR(s, t->value_loc[MTR_KNOB_PATIENCE], "patience %s, found %.10g", rule,
              t->value[MTR_KNOB_PATIENCE]);
    if (!t->given[MTR_KNOB_VALIDATION] || t->value[MTR_KNOB_VALIDATION] <= 0)
        ERROR(s, t->early_stop_loc,
              "early_stop needs validation rows to watch: add `validation 0.1` to the train block");
    const char *dot = strchr(t->early_stop, '.');
    size_t tl = (size_t)(dot - t->early_stop);
    const char *metric = dot + 1;
    int index = 0;
    const AstTask *task = s->m->tasks;
    for (; task; task = task->next, index++)
        if (strlen(task->name) == tl && strncmp(task->name, t->early_stop, tl) == 0) break;
    if (!task) {
        ERROR(s, t->early_stop_loc, "early_stop: no task '%.*s'", (int)tl, t->early_stop);
        return;
    }
    char list[256] = "";
    for (const AstMetric *me = task->metrics; me; me = me->next) {
        const char *name = mtr_metric_name((unsigned)me->kind);
        if (!mtr_metric_takes_k((unsigned)me->kind)) {
            if (strcmp(metric, name) == 0) {
                t->value[MTR_KNOB_EARLY_STOP] = index * 256 + (int)me->kind * 16;
                t->given[MTR_KNOB_EARLY_STOP] = 1;
                return;
            }
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "",
                     name);
            continue;
        }
        for (int i = 0; i < me->n_ks && i < 8; i++) {
            char kn[32];
            snprintf(kn, sizeof kn, "top_%lld", (long long)me->ks[i]);
            if (strcmp(metric, kn) == 0) {
                t->value[MTR_KNOB_EARLY_STOP] = index * 256 + (int)me->kind * 16 + i;
                t->given[MTR_KNOB_EARLY_STOP] = 1;
                return;
            }
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "",
                     kn);
        }
    }
    if (list[0])
        ERROR(s, t->early_stop_loc, "early_stop: task '%s' does not report '%s' (it reports %s)",
              task->name, metric, list);
    else
        ERROR(s, t->early_stop_loc,
              "early_stop: task '%s' reports no metric; give it one (metrics rmse)", task->name);
}

static void check_train(Sema *s)
{
    AstTrain *t = &s->m->train;
    t->optimizer = OPT_ADAGRAD;
    t->emb_optimizer = OPT_COUNT;
    if (t->optimizer_name) {
        OptimizerKind k = find_optimizer(s, t->optimizer_name, t->optimizer_loc);
        if (k == OPT_COUNT) return;
        t->optimizer = k;
    }
    /* Keras's defaults, then the options given. */
    for (int k = 0; k < N_OPTIONS; k++)
        if (OPTIONS[k].optimizer == t->optimizer)
            t->value[OPTIONS[k].knob] = OPTIONS[k].keras_default;
    const AstOption *given[N_OPTIONS];
    memset(given, 0, sizeof given);
    for (const AstOption *o = t->options; o; o = o->next)
        check_option(s, t, t->optimizer, 0, o, given);

    /* The settings: defaults where not written, every value in its knob's range. */
    for (int i = 0; i < SET_COUNT; i++) {
        MtrKnobKind k = SETTINGS[i].knob;
        if (!t->given[k]) {
            t->value[k] = SETTINGS[i].dflt;
            continue;
        }
        char rule[64];
        if (mtr_knob_check(k, t->value[k], rule, sizeof rule))
            ERROR(s, t->value_loc[k], "%s %s, found %.10g", SETTINGS[i].name, rule, t->value[k]);
    }
    check_emb_optimizer(s, t);
    check_decay(s, t);
    check_early_stop(s, t);
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
    check_samples(&s);
    mark_items(&s);
    mark_user(&s);
    check_train(&s);
    return s.errors;
}
