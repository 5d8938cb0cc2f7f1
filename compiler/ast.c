/* Syntax tree construction. Stage: called by lexer.l and parser.y. In: tokens
 * and the pieces the grammar has recognised. Out: AstModel nodes in the Pool,
 * with names already resolved to enums (types, stages, activations, metrics,
 * losses, task kinds) and malformed arguments reported. Cross-references
 * between declarations are sema's job. Also the --dump ast printer. */
#include "ast.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Widths beyond this are surely typos, and keep every product of widths far
 * from overflowing 64 bits. */
#define MAX_UNITS  (1 << 20)
#define MAX_QUOTED 40
/* Combiners in combiners deeper than this are surely generated, and the passes
 * that walk them recurse. */
#define MAX_NESTING 64
#define MAX_EXPERTS 64

static const char *const TYPE_NAMES[] = {"string", "int", "float"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- the registries' rows, and their names for lookups and suggestions -- */

#define EXPERTS_EACH 1
#define EXPERTS_NO   0
static const StageInfo STAGES[STAGE_COUNT] = {
#define X(E, n, args, place, width, ex)                                                            \
    [STAGE_##E] = {#n, ARGS_##args, PLACE_##place, WIDTH_##width, EXPERTS_##ex},
#include "stages.def"
#undef X
};
static const char *const STAGE_NAMES[STAGE_COUNT] = {
#define X(E, n, args, place, width, ex) [STAGE_##E] = #n,
#include "stages.def"
#undef X
};

static const OpKind ACT_OPS[ACT_COUNT] = {
#define X(E, n, op) [ACT_##E] = OP_##op,
#include "activations.def"
#undef X
};
static const char *const ACT_NAMES[ACT_COUNT] = {
#define X(E, n, op) [ACT_##E] = #n,
#include "activations.def"
#undef X
};

static const TaskInfo TASKS[TASK_COUNT] = {
#define X(E, n, args, reads, loss) [TASK_##E] = {#n, args, MTR_OUT_##reads, LOSS_##loss},
#include "tasks.def"
#undef X
};
static const char *const TASK_NAMES[TASK_COUNT] = {
#define X(E, n, args, reads, loss) [TASK_##E] = #n,
#include "tasks.def"
#undef X
};

static const LossInfo LOSSES[LOSS_COUNT] = {
#define X(E, n, task, op, output, metric, pop)                                                     \
    [LOSS_##E] = {#n, TASK_##task, OP_##op, OUTPUT_##output, MTR_METRIC_##metric, OP_##pop},
#include "losses.def"
#undef X
};
/* A loss with no name ("") cannot be written; LOSS_DEFAULT has none either. */
static const char *const LOSS_NAMES[LOSS_COUNT] = {
    [LOSS_DEFAULT] = "",
#define X(E, n, task, op, output, metric, pop) [LOSS_##E] = #n,
#include "losses.def"
#undef X
};

static const char *const METRIC_NAMES[MTR_METRIC_COUNT] = {
#define X(E, n, id, reads, takes_k) [MTR_METRIC_##E] = #n,
#include "mtr/metrics.def"
#undef X
};

static const char *const OPTIMIZER_NAMES[OPT_COUNT] = {
#define X(E, n) [OPT_##E] = #n,
#include "optimizers.def"
#undef X
};

static const CombinerInfo COMBINERS[COMB_COUNT] = {
#define X(E, n, lo, hi, width, out) [COMB_##E] = {#n, lo, hi, CWIDTH_##width, COUT_##out},
#include "combiners.def"
#undef X
};
static const char *const COMBINER_NAMES[COMB_COUNT] = {
#define X(E, n, lo, hi, width, out) [COMB_##E] = #n,
#include "combiners.def"
#undef X
};

const CombinerInfo *ast_combiner_info(CombinerKind k)
{
    return &COMBINERS[k];
}

static const DecayInfo DECAYS[DECAY_COUNT] = {
#define X(E, n, knob, dflt) [DECAY_##E] = {#n, MTR_KNOB_##knob, dflt},
#include "decays.def"
#undef X
};

const DecayInfo *ast_decay_info(DecayKind k)
{
    return &DECAYS[k];
}

static const char *const SETTING_NAMES[SET_COUNT] = {
#define X(E, n, knob, dflt, when) [SET_##E] = #n,
#include "settings.def"
#undef X
};
/* Whether every model has the setting's knob (ALWAYS) or only one that gives it. */
#define SETTING_ALWAYS 1
#define SETTING_GIVEN  0
static const int SETTING_ALWAYS_THERE[SET_COUNT] = {
#define X(E, n, knob, dflt, when) [SET_##E] = SETTING_##when,
#include "settings.def"
#undef X
};
static const MtrKnobKind SETTING_KNOBS[SET_COUNT] = {
#define X(E, n, knob, dflt, when) [SET_##E] = MTR_KNOB_##knob,
#include "settings.def"
#undef X
};

const StageInfo *ast_stage_info(StageKind k)
{
    return &STAGES[k];
}

const TaskInfo *ast_task_info(TaskKind k)
{
    return &TASKS[k];
}

const LossInfo *ast_loss_info(LossKind k)
{
    return k == LOSS_DEFAULT ? NULL : &LOSSES[k];
}

OpKind ast_activation_op(Activation a)
{
    return ACT_OPS[a];
}

/* ---- helpers ------------------------------------------------------------ */

static void *node(AstBuilder *b, size_t size)
{
    void *p = pool_alloc(b->pool, size);
    if (!p && !b->oom) {
        b->oom = 1;
        diag_error(b->diag, (Loc){0, 0, 0}, "out of memory");
    }
    return p;
}

Loc ast_loc(AstSpan s)
{
    Loc l = {s.first_line, s.first_column, s.last_column};
    /* A span over several lines is underlined to the end of its first. */
    if (s.last_line != s.first_line) l.end_col = INT_MAX / 2;
    if (l.end_col <= l.col) l.end_col = l.col + 1;
    return l;
}

/* Index of name in names[], or -1. */
static int find_name(const char *name, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (names[i][0] && strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* Reports "unknown WHAT 'name'" with a suggestion when one of names is close,
 * otherwise with the list of what is allowed. */
static void unknown_name(AstBuilder *b, Loc loc, const char *what, const char *name,
                         const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (names[i][0] && mtr_name_is_close(name, names[i])) {
            diag_error(b->diag, loc, "unknown %s '%s'; did you mean '%s'?", what, name, names[i]);
            return;
        }
    }
    char list[256] = "";
    size_t used = 0;
    int shown = 0;
    for (int i = 0; i < n; i++) {
        if (!names[i][0]) continue;
        shown++;
        int left = 0;
        for (int j = i + 1; j < n; j++) left += names[j][0] != '\0';
        const char *sep = shown == 1 ? "" : left == 0 ? " or " : ", ";
        int w = snprintf(list + used, sizeof list - used, "%s%s", sep, names[i]);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
    }
    diag_error(b->diag, loc, "unknown %s '%s' (expected %s)", what, name, list);
}

/* The text of a value for messages, shortened when long. */
static const char *shown(const AstValue *v)
{
    return v->text ? v->text : "?";
}

/* Reads a positive whole number that sizes something (embedding(D),
 * dense(N)). Returns it, or -1 after reporting why not. */
static int64_t need_size(AstBuilder *b, const AstValue *v, const char *what)
{
    if (v->kind == VAL_BAD) return -1;
    if (v->kind != VAL_NUMBER || !v->is_int) {
        diag_error(b->diag, v->loc, "%s must be a positive whole number, found '%s'", what,
                   shown(v));
        return -1;
    }
    if (v->i <= 0) {
        diag_error(b->diag, v->loc, "%s must be positive, found '%s'", what, shown(v));
        return -1;
    }
    if (v->i > MAX_UNITS) {
        diag_error(b->diag, v->loc, "%s %s is too large (at most %d)", what, shown(v), MAX_UNITS);
        return -1;
    }
    return v->i;
}

/* Checks that v is a number (not a name such as nan). Returns 1 if so. */
static int need_number(AstBuilder *b, const AstValue *v, const char *what)
{
    if (v->kind == VAL_BAD) return 0;
    if (v->kind != VAL_NUMBER) {
        diag_error(b->diag, v->loc, "%s must be a finite number, found '%s'", what, shown(v));
        return 0;
    }
    return 1;
}

static int count_values(const AstValue *v)
{
    int n = 0;
    for (; v; v = v->next) n++;
    return n;
}

#define DEFINE_REVERSE(Type, fn)                                                                   \
    static Type *fn(Type *list)                                                                    \
    {                                                                                              \
        Type *out = NULL;                                                                          \
        while (list) {                                                                             \
            Type *next = list->next;                                                               \
            list->next = out;                                                                      \
            out = list;                                                                            \
            list = next;                                                                           \
        }                                                                                          \
        return out;                                                                                \
    }
DEFINE_REVERSE(AstRef, reverse_refs)
DEFINE_REVERSE(AstValue, reverse_values)
DEFINE_REVERSE(AstStage, reverse_stages)
DEFINE_REVERSE(AstMetric, reverse_metrics)
DEFINE_REVERSE(AstClause, reverse_clauses)
DEFINE_REVERSE(AstOption, reverse_options)
DEFINE_REVERSE(AstSetting, reverse_settings)
DEFINE_REVERSE(AstSource, reverse_sources)

/* ---- builder and lexer side --------------------------------------------- */

int ast_builder_init(AstBuilder *b, Pool *pool, Diag *diag, const char *text, size_t len)
{
    memset(b, 0, sizeof *b);
    b->pool = pool;
    b->diag = diag;
    b->src = text;
    b->len = len;
    b->line = 1;
    b->col = 1;
    b->model = pool_alloc(pool, sizeof(AstModel));
    if (!b->model) return -1;
    b->model->name = "";
    b->col_tail = &b->model->columns;
    b->chain_tail = &b->model->chains;
    b->task_tail = &b->model->tasks;
    return 0;
}

void ast_lex_step(AstBuilder *b, AstSpan *span, const char *text, size_t len)
{
    span->first_line = b->line;
    span->first_column = b->col;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            b->line++;
            b->col = 1;
        } else if (b->col < INT_MAX / 2) {
            b->col++;
        }
    }
    span->last_line = b->line;
    span->last_column = b->col;
}

AstTok ast_tok(AstBuilder *b, AstSpan span, const char *text, size_t len)
{
    AstTok t = {pool_strndup(b->pool, text, len), ast_loc(span)};
    if (!t.text) {
        (void)node(b, SIZE_MAX); /* reports out of memory once */
        t.text = "";
    }
    return t;
}

AstTok ast_tok_string(AstBuilder *b, AstSpan span, const char *text, size_t len)
{
    /* text includes both quotes; \" and \\ are the only escapes that matter,
     * any other escaped character stands for itself. */
    AstTok t = {NULL, ast_loc(span)};
    char *out = node(b, len);
    if (!out) {
        t.text = "";
        return t;
    }
    size_t n = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (text[i] == '\\' && i + 2 < len) i++;
        out[n++] = text[i];
    }
    out[n] = '\0';
    t.text = out;
    return t;
}

void ast_lex_error(AstBuilder *b, AstSpan span, LexError what, const char *text, size_t len)
{
    Loc loc = ast_loc(span);
    unsigned char c = (unsigned char)text[0];
    switch (what) {
    case LEX_BAD_NUMBER:
        diag_error(b->diag, loc, "bad number '%.*s'", (int)(len > MAX_QUOTED ? MAX_QUOTED : len),
                   text);
        break;
    case LEX_UNTERMINATED_STRING:
        diag_error(b->diag, loc, "unterminated string: '\"' has no closing '\"' on its line");
        break;
    case LEX_BAD_CHAR:
        if (c >= 0x80)
            diag_error(b->diag, loc,
                       "unexpected byte 0x%02X (text other than ASCII is allowed only in "
                       "comments and strings)",
                       c);
        else if (c < 0x20 || c == 0x7F)
            diag_error(b->diag, loc, "unexpected control character 0x%02X", c);
        else
            diag_error(b->diag, loc, "unexpected character '%c'", c);
        break;
    }
}

void ast_comment_open(AstBuilder *b, AstSpan span)
{
    b->comment = span;
}

void ast_comment_unterminated(AstBuilder *b)
{
    diag_error(b->diag, ast_loc(b->comment), "unterminated comment: '/*' has no matching '*/'");
}

/* ---- parser side: declarations ------------------------------------------ */

void ast_model_name(AstBuilder *b, AstTok name)
{
    b->model->name = name.text;
    b->model->loc = name.loc;
}

void ast_derived_label(AstBuilder *b, AstTok name, AstTok from, AstTok compare, AstValue *value)
{
    if (!value || !need_number(b, value, "a derived label's threshold")) return;
    int cmp = 0;
#define X(E, txt, id)                                                                              \
    if (strcmp(compare.text, txt) == 0) cmp = id;
#include "mtr/compares.def"
#undef X
    AstColumn *c = node(b, sizeof *c);
    if (!c) return;
    c->name = name.text;
    c->loc = name.loc;
    c->type = TY_FLOAT;
    c->is_label = 1;
    c->from_name = from.text;
    c->from_loc = from.loc;
    c->compare = cmp;
    c->threshold = value->num;
    *b->col_tail = c;
    b->col_tail = &c->next;
}

void ast_column(AstBuilder *b, int is_label, AstTok name, AstTok type)
{
    int t = find_name(type.text, TYPE_NAMES, COUNT(TYPE_NAMES));
    if (t < 0) {
        unknown_name(b, type.loc, "type", type.text, TYPE_NAMES, COUNT(TYPE_NAMES));
        return;
    }
    AstColumn *c = node(b, sizeof *c);
    if (!c) return;
    c->name = name.text;
    c->loc = name.loc;
    c->type = (AstType)t;
    c->is_label = is_label;
    *b->col_tail = c;
    b->col_tail = &c->next;
}

void ast_column_list(AstBuilder *b, AstTok name, AstTok type, AstTok list)
{
    if (strcmp(list.text, "list") != 0) {
        diag_error(b->diag, list.loc,
                   "expected 'list' or a new declaration after the type, found '%s'", list.text);
        return;
    }
    AstColumn **tail = b->col_tail;
    ast_column(b, 0, name, type);
    if (b->col_tail == tail) return;
    if ((*tail)->type == TY_FLOAT) {
        diag_error(b->diag, type.loc, "a list holds strings or ints ('string list', 'int list')");
        return;
    }
    (*tail)->is_list = 1;
}

AstRef *ast_ref_add(AstBuilder *b, AstRef *list, AstTok name)
{
    AstRef *r = node(b, sizeof *r);
    if (!r) return list;
    r->name = name.text;
    r->loc = name.loc;
    r->next = list;
    return r;
}

AstSource *ast_source_name(AstBuilder *b, AstTok name)
{
    AstSource *s = node(b, sizeof *s);
    if (!s) return NULL;
    s->combiner = -1;
    s->depth = 1;
    s->ref = ast_ref_add(b, NULL, name);
    s->loc = name.loc;
    return s->ref ? s : NULL;
}

AstSource *ast_source_chain(AstBuilder *b, AstSpan span, AstTok name, AstStage *stages)
{
    /* a name no one can write ('#'), until ast_chain names it after its reader */
    char tmp[32];
    snprintf(tmp, sizeof tmp, "#%d", ++b->n_anon);
    AstTok cname = {pool_strndup(b->pool, tmp, strlen(tmp)), name.loc};
    AstSource *col = ast_source_name(b, name);
    if (!cname.text || !col) return NULL;
    AstChain **tail = b->chain_tail;
    ast_chain(b, CHAIN_TOWER, cname, col, stages);
    if (b->chain_tail == tail) return NULL;
    AstChain *c = *tail;
    c->anon = 1;
    c->loc = ast_loc(span);
    AstSource *s = ast_source_name(b, cname);
    if (!s) return NULL;
    s->ref->chain = c; /* for ast_chain's renaming; sema resolves it by name again */
    s->loc = c->loc;
    return s;
}

AstSource *ast_source_add(AstBuilder *b, AstSource *list, AstSource *src)
{
    (void)b;
    if (!src) return list;
    src->next = list;
    return src;
}

AstSource *ast_source_combine(AstBuilder *b, AstSpan span, AstTok name, AstSource *members)
{
    members = reverse_sources(members);
    int k = find_name(name.text, COMBINER_NAMES, COUNT(COMBINER_NAMES));
    if (k < 0) {
        unknown_name(b, name.loc, "combiner", name.text, COMBINER_NAMES, COUNT(COMBINER_NAMES));
        return NULL;
    }
    int n = 0, depth = 0;
    for (AstSource *m = members; m; m = m->next) {
        n++;
        if (m->depth > depth) depth = m->depth;
    }
    if (depth >= MAX_NESTING) {
        /* said once, at the first level too deep; the levels around it pass it on */
        if (depth == MAX_NESTING)
            diag_error(b->diag, ast_loc(span), "combiners nested more than %d deep", MAX_NESTING);
        AstSource *bad = node(b, sizeof *bad);
        if (bad) bad->combiner = -1, bad->depth = MAX_NESTING + 1;
        return bad;
    }
    const CombinerInfo *info = &COMBINERS[k];
    if (n < info->min || (info->max && n > info->max)) {
        if (info->min == info->max)
            diag_error(b->diag, ast_loc(span), "%s takes %d sources, found %d", info->name,
                       info->min, n);
        else
            diag_error(b->diag, ast_loc(span), "%s takes at least %d sources, found %d", info->name,
                       info->min, n);
        return NULL;
    }
    AstSource *s = node(b, sizeof *s);
    if (!s) return NULL;
    s->combiner = k;
    s->depth = depth + 1;
    s->members = members;
    s->loc = ast_loc(span);
    return s;
}

/* Appends the names that src reads, in order, to *tail (new AstRef nodes). */
static AstRef **collect_refs(AstBuilder *b, AstSource *src, AstRef **tail)
{
    if (src->combiner < 0) {
        AstRef *r = node(b, sizeof *r);
        if (!r) return tail;
        *r = *src->ref;
        r->next = NULL;
        src->ref = r; /* the leaf and the chain's list share the node, so sema fills both */
        *tail = r;
        return &r->next;
    }
    for (AstSource *m = src->members; m; m = m->next) tail = collect_refs(b, m, tail);
    return tail;
}

AstValue *ast_value_number(AstBuilder *b, AstTok num)
{
    AstValue *v = node(b, sizeof *v);
    if (!v) return NULL;
    v->kind = VAL_NUMBER;
    v->loc = num.loc;
    v->text = num.text;
    int whole = strpbrk(num.text, ".eE") == NULL;
    errno = 0;
    if (whole) {
        long long i = strtoll(num.text, NULL, 10);
        if (errno == ERANGE) {
            diag_error(b->diag, num.loc, "number '%.*s' is too large", MAX_QUOTED, num.text);
            v->kind = VAL_BAD;
            return v;
        }
        v->i = i;
        v->num = (double)i;
        v->is_int = 1;
    } else {
        v->num = strtod(num.text, NULL);
        if (!isfinite(v->num)) {
            diag_error(b->diag, num.loc, "number '%.*s' is out of range", MAX_QUOTED, num.text);
            v->kind = VAL_BAD;
        }
    }
    return v;
}

AstValue *ast_value_negative(AstBuilder *b, AstSpan span, AstTok num)
{
    AstValue *v = ast_value_number(b, num);
    if (!v) return NULL;
    v->loc = ast_loc(span);
    size_t n = strlen(num.text);
    char *text = node(b, n + 2);
    if (text) {
        text[0] = '-';
        memcpy(text + 1, num.text, n + 1);
        v->text = text;
    }
    v->num = -v->num;
    v->i = -v->i; /* cannot overflow: strtoll rejected anything above INT64_MAX */
    return v;
}

AstValue *ast_value_name(AstBuilder *b, AstTok name)
{
    AstValue *v = node(b, sizeof *v);
    if (!v) return NULL;
    v->kind = VAL_NAME;
    v->loc = name.loc;
    v->text = name.text;
    return v;
}

AstValue *ast_value_add(AstBuilder *b, AstValue *list, AstValue *v)
{
    (void)b;
    if (!v) return list;
    v->next = list;
    return v;
}

static int parse_activation(AstBuilder *b, const AstValue *v, Activation *act)
{
    if (v->kind == VAL_BAD) return 0;
    if (v->kind != VAL_NAME) {
        char list[256] = "";
        for (int i = 0; i < ACT_COUNT; i++) {
            strcat(list, i == 0 ? "" : i == ACT_COUNT - 1 ? " or " : ", ");
            strcat(list, ACT_NAMES[i]);
        }
        diag_error(b->diag, v->loc, "expected an activation (%s), found '%s'", list, shown(v));
        return 0;
    }
    int a = find_name(v->text, ACT_NAMES, COUNT(ACT_NAMES));
    if (a < 0) {
        unknown_name(b, v->loc, "activation", v->text, ACT_NAMES, COUNT(ACT_NAMES));
        return 0;
    }
    *act = (Activation)a;
    return 1;
}

AstStage *ast_stage(AstBuilder *b, AstSpan span, AstTok name, AstValue *args, int has_parens)
{
    Loc loc = ast_loc(span);
    args = reverse_values(args);
    int n = count_values(args);
    int kind = find_name(name.text, STAGE_NAMES, COUNT(STAGE_NAMES));
    if (kind < 0) {
        unknown_name(b, name.loc, "stage", name.text, STAGE_NAMES, COUNT(STAGE_NAMES));
        return NULL;
    }
    AstStage s = {.kind = (StageKind)kind, .loc = loc, .act = ACT_LINEAR};
    const char *nm = STAGE_NAMES[kind];
    char what[64];
    snprintf(what, sizeof what, "%s size", nm);
    switch (STAGES[kind].args) {
    case ARGS_NONE:
        if (has_parens) {
            diag_error(b->diag, loc, "%s takes no arguments", nm);
            return NULL;
        }
        break;
    case ARGS_SIZE:
        if (n != 1) {
            diag_error(b->diag, loc, "%s takes one argument, its size (e.g. %s(32))", nm, nm);
            return NULL;
        }
        if ((s.units = need_size(b, args, what)) < 0) return NULL;
        break;
    case ARGS_SIZE_ACT:
        if (n < 1 || n > 2) {
            diag_error(b->diag, loc,
                       "%s takes a size and an optional activation (e.g. %s(64, relu))", nm, nm);
            return NULL;
        }
        if ((s.units = need_size(b, args, what)) < 0) return NULL;
        if (n == 2 && !parse_activation(b, args->next, &s.act)) return NULL;
        break;
    case ARGS_RATE:
        if (n != 1) {
            diag_error(b->diag, loc, "%s takes one argument, a rate in [0, 1) (e.g. %s(0.1))", nm,
                       nm);
            return NULL;
        }
        if (!need_number(b, args, "rate")) return NULL;
        if (!(args->num >= 0 && args->num < 1)) {
            diag_error(b->diag, args->loc, "%s's rate must be in [0, 1), found '%s'", nm,
                       shown(args));
            return NULL;
        }
        s.rate = args->num;
        break;
    case ARGS_COUNT:
        if (has_parens && n > 0) {
            diag_error(b->diag, loc, "%s takes no arguments but min_count (e.g. %s(min_count = 2))",
                       nm, nm);
            return NULL;
        }
        break;
    case ARGS_SIZE_POOL:
        if (n < 1 || n > 2 || (n == 2 && args->next->kind != VAL_NAME)) {
            diag_error(b->diag, loc,
                       "%s takes one argument, its size (e.g. %s(32)), and for a list a "
                       "pooling, mean or sum (e.g. %s(8, mean))",
                       nm, nm, nm);
            return NULL;
        }
        if ((s.units = need_size(b, args, what)) < 0) return NULL;
        if (n == 2) {
            const AstValue *v = args->next;
            if (v->kind == VAL_NAME && strcmp(v->text, "mean") == 0)
                s.pool = POOL_MEAN;
            else if (v->kind == VAL_NAME && strcmp(v->text, "sum") == 0)
                s.pool = POOL_SUM;
            else {
                diag_error(b->diag, v->loc, "unknown pooling '%s' (expected mean or sum)",
                           shown(v));
                return NULL;
            }
        }
        break;
    case ARGS_BOUNDS:
        if (n < 1 || n > 1000) {
            diag_error(b->diag, loc, "%s takes increasing boundaries (e.g. %s(18, 25, 35))", nm,
                       nm);
            return NULL;
        }
        if (!(s.bounds = pool_alloc(b->pool, (size_t)n * sizeof *s.bounds))) return NULL;
        for (const AstValue *v = args; v; v = v->next) {
            if (!need_number(b, v, "a boundary")) return NULL;
            if (s.n_bounds && !(v->num > s.bounds[s.n_bounds - 1])) {
                diag_error(b->diag, v->loc, "%s's boundaries must increase, found '%s' after %g",
                           nm, shown(v), s.bounds[s.n_bounds - 1]);
                return NULL;
            }
            s.bounds[s.n_bounds++] = v->num;
        }
        break;
    }
    AstStage *out = node(b, sizeof *out);
    if (out) *out = s;
    return out;
}

AstStage *ast_stage_options(AstBuilder *b, AstSpan span, AstTok name, AstOption *options)
{
    AstStage *s = ast_stage(b, span, name, NULL, 0);
    if (!s) return NULL;
    if (STAGES[s->kind].args != ARGS_COUNT) {
        diag_error(b->diag, s->loc, "%s takes no named options", STAGE_NAMES[s->kind]);
        return NULL;
    }
    for (AstOption *o = options; o; o = o->next) {
        if (strcmp(o->name, "min_count") != 0) {
            diag_error(b->diag, o->loc, "unknown option '%s' of %s (expected min_count)", o->name,
                       STAGE_NAMES[s->kind]);
            return NULL;
        }
        if (o->value < 1 || o->value != (double)(int64_t)o->value || o->value > 1e9) {
            diag_error(b->diag, o->value_loc, "min_count must be a positive whole number");
            return NULL;
        }
        s->min_count = (int64_t)o->value;
    }
    return s;
}

AstStage *ast_stage_add(AstBuilder *b, AstStage *list, AstStage *stage)
{
    (void)b;
    if (!stage) return list;
    stage->next = list;
    return stage;
}

void ast_chain(AstBuilder *b, ChainKind kind, AstTok name, AstSource *src, AstStage *stages)
{
    if (!src || src->depth > MAX_NESTING) return;
    AstChain *c = node(b, sizeof *c);
    if (!c) return;
    c->kind = kind;
    c->name = name.text;
    c->loc = name.loc;
    collect_refs(b, src, &c->sources);
    c->combine = src->combiner >= 0 ? src : NULL;
    c->is_concat = src->combiner == COMB_CONCAT;
    c->stages = reverse_stages(stages);
    /* the chains written inside it are named after it: user.1, user.2, ... */
    int k = 0;
    for (AstRef *r = c->sources; r; r = r->next) {
        k++;
        if (!r->chain || !r->chain->anon || r->chain->name[0] != '#') continue;
        char nm[256];
        snprintf(nm, sizeof nm, "%s.%d", c->name, k);
        const char *text = pool_strndup(b->pool, nm, strlen(nm));
        if (!text) return;
        r->chain->name = text;
        r->name = text;
    }
    *b->chain_tail = c;
    b->chain_tail = &c->next;
}

/* `experts NAME = SOURCE -> N x STAGE` or `-> N x (STAGE -> STAGE ...)` */
void ast_experts(AstBuilder *b, AstTok name, AstSource *src, AstTok count, AstTok x,
                 AstStage *stages)
{
    if (strcmp(x.text, "x") != 0) {
        diag_error(b->diag, x.loc, "expected 'x' after the number of experts, found '%s'", x.text);
        return;
    }
    AstValue *n = ast_value_number(b, count);
    if (!n) return;
    if (n->kind != VAL_NUMBER || !n->is_int || n->i < 1 || n->i > MAX_EXPERTS) {
        diag_error(b->diag, count.loc, "the number of experts must be a whole number from 1 to %d",
                   MAX_EXPERTS);
        return;
    }
    AstChain **tail = b->chain_tail;
    ast_chain(b, CHAIN_EXPERTS, name, src, stages);
    if (b->chain_tail != tail) (*tail)->n_experts = (int)n->i;
}

/* ---- tasks -------------------------------------------------------------- */

AstMetric *ast_metric(AstBuilder *b, AstSpan span, AstTok name, AstValue *args, int has_parens)
{
    Loc loc = ast_loc(span);
    args = reverse_values(args);
    int kind = find_name(name.text, METRIC_NAMES, COUNT(METRIC_NAMES));
    if (kind < 0) {
        unknown_name(b, name.loc, "metric", name.text, METRIC_NAMES, COUNT(METRIC_NAMES));
        return NULL;
    }
    AstMetric *m = node(b, sizeof *m);
    if (!m) return NULL;
    m->kind = (MtrMetric)kind;
    m->loc = loc;
    if (!mtr_metric_takes_k((unsigned)m->kind)) {
        if (has_parens) {
            diag_error(b->diag, loc, "%s takes no arguments", name.text);
            return NULL;
        }
        return m;
    }
    if (!has_parens) {
        /* top_k alone means the tutorial's list. */
        static const int64_t defaults[] = {1, 5, 10, 50, 100};
        for (int i = 0; i < COUNT(defaults); i++) {
            m->ks[i] = defaults[i];
            m->k_locs[i] = loc;
        }
        m->n_ks = COUNT(defaults);
        return m;
    }
    int ok = 1;
    for (AstValue *v = args; v; v = v->next) {
        if (m->n_ks == COUNT(m->ks)) {
            diag_error(b->diag, v->loc, "top_k takes at most %d values of k", COUNT(m->ks));
            return NULL;
        }
        if (v->kind == VAL_BAD) {
            ok = 0;
        } else if (v->kind != VAL_NUMBER || !v->is_int) {
            diag_error(b->diag, v->loc, "k must be a whole number, found '%s'", shown(v));
            ok = 0;
        }
        m->ks[m->n_ks] = v->i;
        m->k_locs[m->n_ks] = v->loc;
        m->n_ks++;
    }
    return ok ? m : NULL;
}

AstMetric *ast_metric_add(AstBuilder *b, AstMetric *list, AstMetric *m)
{
    (void)b;
    if (!m) return list;
    m->next = list;
    return m;
}

static AstClause *clause(AstBuilder *b, ClauseKind kind, AstSpan kw)
{
    AstClause *c = node(b, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    c->loc = ast_loc(kw);
    return c;
}

AstClause *ast_clause_loss(AstBuilder *b, AstSpan kw, AstTok loss)
{
    AstClause *c = clause(b, CLAUSE_LOSS, kw);
    if (c) c->loss = loss;
    return c;
}

AstClause *ast_clause_metrics(AstBuilder *b, AstSpan kw, AstMetric *metrics)
{
    AstClause *c = clause(b, CLAUSE_METRICS, kw);
    if (c) c->metrics = reverse_metrics(metrics);
    return c;
}

AstClause *ast_clause_weight(AstBuilder *b, AstSpan kw, AstValue *weight)
{
    AstClause *c = clause(b, CLAUSE_WEIGHT, kw);
    if (c) c->weight = weight;
    return c;
}

AstClause *ast_clause_flag(AstBuilder *b, AstSpan kw, ClauseKind kind)
{
    return clause(b, kind, kw);
}

AstClause *ast_clause_logq_counts(AstBuilder *b, AstSpan kw, AstTok key, AstTok column)
{
    if (strcmp(key.text, "counts") != 0) {
        diag_error(b->diag, key.loc, "logq takes one option, counts = COLUMN, found '%s'",
                   key.text);
        return NULL;
    }
    AstClause *c = clause(b, CLAUSE_LOGQ, kw);
    if (c) c->loss = column; /* the counts column's name */
    return c;
}

AstClause *ast_clause_add(AstBuilder *b, AstClause *list, AstClause *c)
{
    (void)b;
    if (!c) return list;
    c->next = list;
    return c;
}

static const char *const CLAUSE_NAMES[CLAUSE_COUNT] = {
    [CLAUSE_LOSS] = "loss",
    [CLAUSE_METRICS] = "metrics",
    [CLAUSE_WEIGHT] = "weight",
    [CLAUSE_SAMPLE] = "sample",
    [CLAUSE_TEMPERATURE] = "temperature",
    [CLAUSE_LOGQ] = "logq",
    [CLAUSE_HITS] = "remove_accidental_hits",
    [CLAUSE_NEGATIVES] = "negatives",
    [CLAUSE_POPULARITY] = "popularity",
};

/* `sample 0.1` and the other clauses written as a name and a value. */
AstClause *ast_clause_option(AstBuilder *b, AstTok name, AstValue *value)
{
    static const char *const named[] = {"sample", "temperature", "negatives", "popularity"};
    static const ClauseKind kinds[] = {CLAUSE_SAMPLE, CLAUSE_TEMPERATURE, CLAUSE_NEGATIVES,
                                       CLAUSE_POPULARITY};
    int k = find_name(name.text, named, COUNT(named));
    if (k < 0) {
        /* a misspelt keyword clause (`los mse`) is suggested too */
        unknown_name(b, name.loc, "task clause", name.text, CLAUSE_NAMES, COUNT(CLAUSE_NAMES));
        return NULL;
    }
    AstClause *c = node(b, sizeof *c);
    if (!c) return NULL;
    c->kind = kinds[k];
    c->loc = name.loc;
    c->weight = value; /* the clause's number */
    return c;
}

void ast_task(AstBuilder *b, AstTok name, AstTok kind, AstSpan args_span, AstRef *args,
              AstClause *clauses)
{
    AstTask *t = node(b, sizeof *t);
    if (!t) return;
    t->name = name.text;
    t->loc = name.loc;
    t->weight = 1.0;
    t->args = reverse_refs(args);
    int k = find_name(kind.text, TASK_NAMES, COUNT(TASK_NAMES));
    if (k < 0) {
        unknown_name(b, kind.loc, "task kind", kind.text, TASK_NAMES, COUNT(TASK_NAMES));
        return;
    }
    t->kind = (TaskKind)k;
    int n = 0;
    for (AstRef *r = t->args; r; r = r->next) n++;
    if (n != 2) {
        diag_error(b->diag, ast_loc(args_span), "%s takes 2 arguments (%s), found %d", kind.text,
                   TASKS[t->kind].args, n);
        return;
    }
    const AstClause *seen[CLAUSE_COUNT] = {NULL};
    t->sample = 1.0;
    t->temperature = 1.0;
    int ok = 1;
    for (AstClause *c = reverse_clauses(clauses); c; c = c->next) {
        if (seen[c->kind]) {
            diag_error(b->diag, c->loc, "'%s' given twice for task '%s'", CLAUSE_NAMES[c->kind],
                       t->name);
            diag_note(b->diag, seen[c->kind]->loc, "first given here");
            ok = 0;
            continue;
        }
        seen[c->kind] = c;
        switch (c->kind) {
        case CLAUSE_LOSS: {
            int l = find_name(c->loss.text, LOSS_NAMES, COUNT(LOSS_NAMES));
            if (l < 0) {
                unknown_name(b, c->loss.loc, "loss", c->loss.text, LOSS_NAMES, COUNT(LOSS_NAMES));
                ok = 0;
            } else {
                t->loss = (LossKind)l;
                t->loss_loc = c->loss.loc;
            }
            break;
        }
        case CLAUSE_METRICS:
            t->metrics = c->metrics;
            break;
        case CLAUSE_WEIGHT:
            if (c->weight && c->weight->kind == VAL_NAME && strcmp(c->weight->text, "auto") == 0) {
                t->weight_auto = 1; /* learned by uncertainty weighting */
                t->weight_loc = c->weight->loc;
                break;
            }
            if (!c->weight || !need_number(b, c->weight, "weight")) {
                ok = 0;
                break;
            }
            t->weight = c->weight->num;
            t->weight_loc = c->weight->loc;
            t->has_weight = 1;
            break;
        case CLAUSE_SAMPLE:
            if (!c->weight || !need_number(b, c->weight, "sample")) {
                ok = 0;
                break;
            }
            t->sample = c->weight->num;
            t->sample_loc = c->weight->loc;
            t->has_sample = 1;
            break;
        case CLAUSE_TEMPERATURE:
            if (!c->weight || !need_number(b, c->weight, "temperature")) {
                ok = 0;
                break;
            }
            t->temperature = c->weight->num;
            t->temperature_loc = c->weight->loc;
            t->has_temperature = 1;
            break;
        case CLAUSE_LOGQ:
            t->logq = 1;
            t->logq_loc = c->loc;
            if (c->loss.text) t->logq_counts = c->loss.text, t->logq_counts_loc = c->loss.loc;
            break;
        case CLAUSE_HITS:
            t->remove_hits = 1;
            t->hits_loc = c->loc;
            break;
        case CLAUSE_NEGATIVES:
            if (!c->weight || !need_number(b, c->weight, "negatives")) {
                ok = 0;
                break;
            }
            if (!(c->weight->num >= 1 && c->weight->num <= 1048576) ||
                c->weight->num != (double)(int64_t)c->weight->num) {
                diag_error(b->diag, c->weight->loc,
                           "negatives takes a whole number from 1 to 1048576, found %g",
                           c->weight->num);
                ok = 0;
                break;
            }
            t->negatives = (int64_t)c->weight->num;
            t->negatives_loc = c->weight->loc;
            break;
        case CLAUSE_POPULARITY:
            if (!c->weight || !need_number(b, c->weight, "popularity")) {
                ok = 0;
                break;
            }
            t->popularity = c->weight->num;
            t->popularity_loc = c->weight->loc;
            t->has_popularity = 1;
            break;
        case CLAUSE_COUNT:
            break;
        }
    }
    if (!ok) return;
    *b->task_tail = t;
    b->task_tail = &t->next;
}

/* ---- train -------------------------------------------------------------- */

AstOption *ast_option(AstBuilder *b, AstTok name, AstValue *value)
{
    if (!value) return NULL;
    if (!need_number(b, value, name.text)) return NULL;
    AstOption *o = node(b, sizeof *o);
    if (!o) return NULL;
    o->name = name.text;
    o->loc = name.loc;
    o->value = value->num;
    o->value_loc = value->loc;
    return o;
}

AstOption *ast_option_add(AstBuilder *b, AstOption *list, AstOption *o)
{
    (void)b;
    if (!o) return list;
    o->next = list;
    return o;
}

AstSetting *ast_setting_optimizer(AstBuilder *b, AstTok name, AstOption *options)
{
    AstSetting *s = node(b, sizeof *s);
    if (!s) return NULL;
    s->is_optimizer = 1;
    s->name = name;
    s->options = reverse_options(options);
    return s;
}

AstSetting *ast_setting_value(AstBuilder *b, AstTok name, AstValue *value)
{
    if (!value) return NULL;
    AstSetting *s = node(b, sizeof *s);
    if (!s) return NULL;
    s->name = name;
    s->value = value;
    return s;
}

AstSetting *ast_setting_call(AstBuilder *b, AstTok name, AstTok word, AstValue *args,
                             AstOption *options)
{
    AstSetting *s = node(b, sizeof *s);
    if (!s) return NULL;
    s->name = name;
    s->word = word;
    s->has_word = 1;
    s->args = args;
    s->options = reverse_options(options);
    return s;
}

AstSetting *ast_setting_target(AstBuilder *b, AstTok name, AstTok target, AstTok word,
                               AstValue *value)
{
    if (!value) return NULL;
    AstSetting *s = node(b, sizeof *s);
    if (!s) return NULL;
    s->name = name;
    s->target = target;
    s->has_target = 1;
    s->word = word;
    s->has_word = 1;
    s->value = value;
    return s;
}

AstSetting *ast_setting_add(AstBuilder *b, AstSetting *list, AstSetting *s)
{
    (void)b;
    if (!s) return list;
    s->next = list;
    return s;
}

/* The word after a setting's name: `decay cosine` (a value that is a name) or
 * `decay exponential(0.9)`. NULL, after an error, when there is none. */
static const char *setting_word(AstBuilder *b, const AstSetting *s, Loc *loc, const char *what)
{
    if (s->has_word && !s->has_target) {
        *loc = s->word.loc;
        return s->word.text;
    }
    if (!s->has_target && s->value && s->value->kind == VAL_NAME) {
        *loc = s->value->loc;
        return s->value->text;
    }
    diag_error(b->diag, s->name.loc, "%s takes %s", s->name.text, what);
    return NULL;
}

/* The train block's lines that are not `NAME number`: decay, early_stop,
 * optimizer_embedding. Returns 0 when s is none of those. */
static int apply_special(AstBuilder *b, AstTrain *t, const AstSetting *s)
{
    const char *n = s->name.text;
    Loc loc;
    if (strcmp(n, "decay") == 0) {
        const char *w = setting_word(b, s, &loc, "a decay: cosine or exponential(r)");
        if (!w) return 1;
        if (t->decay_name) {
            diag_error(b->diag, s->name.loc, "'decay' given twice");
            diag_note(b->diag, t->decay_loc, "first given here");
            return 1;
        }
        if (s->options) {
            diag_error(b->diag, s->options->loc, "decay %s takes a number, not a named option", w);
            return 1;
        }
        t->decay_name = w;
        t->decay_loc = loc;
        t->decay_args = s->args;
        return 1;
    }
    if (strcmp(n, "optimizer_embedding") == 0) {
        const char *w = setting_word(b, s, &loc, "an optimizer: optimizer_embedding adagrad(...)");
        if (!w) return 1;
        if (t->emb_optimizer_name) {
            diag_error(b->diag, s->name.loc, "'optimizer_embedding' given twice");
            diag_note(b->diag, t->emb_optimizer_loc, "first given here");
            return 1;
        }
        if (s->args) {
            diag_error(b->diag, s->args->loc,
                       "optimizer_embedding's options are named: adagrad(lr = 0.05)");
            return 1;
        }
        t->emb_optimizer_name = w;
        t->emb_optimizer_loc = loc;
        t->emb_options = s->options;
        return 1;
    }
    if (strcmp(n, "early_stop") == 0) {
        if (!s->has_target || strcmp(s->word.text, "patience") != 0) {
            diag_error(b->diag, s->has_word ? s->word.loc : s->name.loc,
                       "early_stop is written `early_stop TASK.METRIC patience N`");
            return 1;
        }
        if (t->early_stop) {
            diag_error(b->diag, s->name.loc, "'early_stop' given twice");
            diag_note(b->diag, t->early_stop_loc, "first given here");
            return 1;
        }
        const AstValue *v = s->value;
        if (!need_number(b, v, "patience")) return 1;
        if (!v->is_int) {
            diag_error(b->diag, v->loc, "patience must be a whole number, found '%s'", shown(v));
            return 1;
        }
        t->early_stop = s->target.text;
        t->early_stop_loc = s->target.loc;
        t->value[MTR_KNOB_PATIENCE] = v->num;
        t->given[MTR_KNOB_PATIENCE] = 1;
        t->value_loc[MTR_KNOB_PATIENCE] = v->loc;
        return 1;
    }
    return 0;
}

/* Sets one train setting (settings.def): a whole number for a knob of type i32. */
static void apply_setting(AstBuilder *b, AstTrain *t, const AstSetting *s)
{
    if (apply_special(b, t, s)) return;
    if (s->has_word) {
        diag_error(b->diag, s->name.loc, "train setting '%s' takes a number", s->name.text);
        return;
    }
    int which = find_name(s->name.text, SETTING_NAMES, COUNT(SETTING_NAMES));
    if (which < 0) {
        unknown_name(b, s->name.loc, "train setting", s->name.text, SETTING_NAMES,
                     COUNT(SETTING_NAMES));
        return;
    }
    MtrKnobKind k = SETTING_KNOBS[which];
    const AstValue *v = s->value;
    if (t->given[k]) {
        diag_error(b->diag, s->name.loc, "'%s' given twice", s->name.text);
        diag_note(b->diag, t->value_loc[k], "first given here");
        return;
    }
    if (!need_number(b, v, s->name.text)) return;
    if (mtr_knob_info(k)->type == MTR_KNOB_I32 && !v->is_int) {
        diag_error(b->diag, v->loc, "%s must be a whole number, found '%s'", s->name.text,
                   shown(v));
        return;
    }
    t->value[k] = v->num;
    t->given[k] = 1;
    t->value_loc[k] = v->loc;
}

void ast_train(AstBuilder *b, AstSpan kw, AstSetting *settings)
{
    AstTrain *t = &b->model->train;
    if (t->present) {
        diag_error(b->diag, ast_loc(kw), "a second train block");
        diag_note(b->diag, t->loc, "first train block here");
        return;
    }
    t->present = 1;
    t->loc = ast_loc(kw);
    for (AstSetting *s = reverse_settings(settings); s; s = s->next) {
        if (!s->is_optimizer) {
            apply_setting(b, t, s);
        } else if (t->optimizer_name) {
            diag_error(b->diag, s->name.loc, "optimizer given twice");
            diag_note(b->diag, t->optimizer_loc, "first given here");
        } else {
            t->optimizer_name = s->name.text;
            t->optimizer_loc = s->name.loc;
            t->options = s->options;
        }
    }
}

/* ---- syntax errors ------------------------------------------------------ */

void ast_syntax_error(AstBuilder *b, AstSpan span, int at_eof, const char *const *expected,
                      int n_expected, int more_expected)
{
    Loc loc = ast_loc(span);
    char found[MAX_QUOTED + 8] = "end of file";
    int is_word = 0;
    size_t len;
    const char *line = at_eof ? NULL : diag_source_line(b->diag, loc.line, &len);
    if (line && (size_t)loc.col <= len) {
        size_t from = (size_t)loc.col - 1;
        size_t to = (size_t)loc.end_col - 1 < len ? (size_t)loc.end_col - 1 : len;
        size_t n = to - from > MAX_QUOTED ? MAX_QUOTED : to - from;
        snprintf(found, sizeof found, "'%.*s'", (int)n, line + from);
        unsigned char c = (unsigned char)line[from];
        is_word = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }
    /* A misspelt keyword reads as a name: suggest the keyword. */
    const char *suggest = NULL;
    char word[MAX_QUOTED + 1] = "";
    if (is_word) {
        snprintf(word, sizeof word, "%.*s", (int)(strlen(found) - 2), found + 1);
        for (int i = 0; i < n_expected && !suggest; i++) {
            const char *e = expected[i];
            size_t el = strlen(e);
            if (el < 3 || e[0] != '\'' || e[el - 1] != '\'') continue;
            char kw[32];
            if (el - 2 >= sizeof kw) continue;
            snprintf(kw, sizeof kw, "%.*s", (int)(el - 2), e + 1);
            if (mtr_name_is_close(word, kw)) suggest = e;
        }
    }
    if (more_expected || n_expected == 0 || n_expected > 10) {
        if (suggest)
            diag_error(b->diag, loc, "unexpected %s; did you mean %s?", found, suggest);
        else
            diag_error(b->diag, loc, "unexpected %s", found);
        return;
    }
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; i < n_expected; i++) {
        const char *sep = i == 0 ? "" : i == n_expected - 1 ? " or " : ", ";
        int w = snprintf(list + used, sizeof list - used, "%s%s", sep, expected[i]);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
    }
    if (suggest)
        diag_error(b->diag, loc, "expected %s, found %s; did you mean %s?", list, found, suggest);
    else
        diag_error(b->diag, loc, "expected %s, found %s", list, found);
}

/* ---- names and the dump ------------------------------------------------- */

const char *ast_type_name(AstType t)
{
    return (int)t >= 0 && (int)t < COUNT(TYPE_NAMES) ? TYPE_NAMES[t] : "?";
}

const char *ast_activation_name(Activation a)
{
    return (int)a >= 0 && (int)a < COUNT(ACT_NAMES) ? ACT_NAMES[a] : "?";
}

const char *ast_optimizer_name(OptimizerKind k)
{
    return (int)k >= 0 && (int)k < COUNT(OPTIMIZER_NAMES) ? OPTIMIZER_NAMES[k] : "?";
}

/* Prints the shortest decimal that reads back as exactly x. */
static void put_num(FILE *out, double x)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    fputs(buf, out);
}

static void dump_refs(FILE *out, const AstRef *r, int is_concat)
{
    if (is_concat) fputs("concat(", out);
    for (; r; r = r->next) fprintf(out, "%s%s", r->name, r->next ? ", " : "");
    if (is_concat) fputc(')', out);
}

static void dump_source(FILE *out, const AstSource *s)
{
    if (s->combiner < 0) {
        fputs(s->ref->name, out);
        return;
    }
    fprintf(out, "%s(", COMBINER_NAMES[s->combiner]);
    for (const AstSource *m = s->members; m; m = m->next) {
        dump_source(out, m);
        if (m->next) fputs(", ", out);
    }
    fputc(')', out);
}

void ast_dump(const AstModel *m, FILE *out)
{
    fprintf(out, "model %s\n", m->name);
    for (const AstColumn *c = m->columns; c; c = c->next) {
        fprintf(out, "%s %s : %s%s", c->is_label ? "label" : "input", c->name,
                ast_type_name(c->type), c->is_list ? " list" : "");
        if (c->looked_up) fputs(" lookup", out);
        if (c->is_item) fputs(" item", out);
        fputc('\n', out);
    }
    for (const AstChain *ch = m->chains; ch; ch = ch->next) {
        fprintf(out, "%s %s = ",
                ch->kind == CHAIN_TOWER  ? "tower"
                : ch->kind == CHAIN_HEAD ? "head"
                                         : "experts",
                ch->name);
        if (ch->combine)
            dump_source(out, ch->combine);
        else
            dump_refs(out, ch->sources, 0);
        fprintf(out, " width %lld%s", (long long)ch->width, ch->is_item ? " item" : "");
        if (ch->kind == CHAIN_EXPERTS) fprintf(out, " experts %d", ch->n_experts);
        fputc('\n', out);
        for (const AstStage *s = ch->stages; s; s = s->next) {
            fprintf(out, "  %s", STAGE_NAMES[s->kind]);
            switch (STAGES[s->kind].args) {
            case ARGS_NONE:
                break;
            case ARGS_SIZE:
                fprintf(out, " %lld", (long long)s->units);
                break;
            case ARGS_SIZE_ACT:
                fprintf(out, " %lld -> %lld %s", (long long)s->in_width, (long long)s->units,
                        ast_activation_name(s->act));
                break;
            case ARGS_RATE:
                fputc(' ', out);
                put_num(out, s->rate);
                break;
            case ARGS_COUNT:
                if (s->min_count) fprintf(out, " min_count %lld", (long long)s->min_count);
                break;
            case ARGS_SIZE_POOL:
                fprintf(out, " %lld%s", (long long)s->units,
                        s->pool == POOL_MEAN  ? " mean"
                        : s->pool == POOL_SUM ? " sum"
                                              : "");
                break;
            case ARGS_BOUNDS:
                for (int i = 0; i < s->n_bounds; i++) {
                    fputc(' ', out);
                    put_num(out, s->bounds[i]);
                }
                break;
            }
            fputc('\n', out);
        }
    }
    for (const AstTask *t = m->tasks; t; t = t->next) {
        fprintf(out, "task %s = %s(", t->name, TASK_NAMES[t->kind]);
        dump_refs(out, t->args, 0);
        fprintf(out, ") loss %s metrics",
                t->loss == LOSS_IN_BATCH_SOFTMAX ? "in_batch_softmax" : LOSS_NAMES[t->loss]);
        if (!t->metrics) fputs(" none", out);
        for (const AstMetric *mt = t->metrics; mt; mt = mt->next) {
            fprintf(out, " %s", METRIC_NAMES[mt->kind]);
            if (!mtr_metric_takes_k((unsigned)mt->kind)) continue;
            fputc('(', out);
            for (int i = 0; i < mt->n_ks; i++)
                fprintf(out, "%s%lld", i ? ", " : "", (long long)mt->ks[i]);
            fputc(')', out);
        }
        fputs(" weight ", out);
        put_num(out, t->weight);
        fputc('\n', out);
    }
    const AstTrain *tr = &m->train;
    fprintf(out, "train\n  optimizer %s", ast_optimizer_name(tr->optimizer));
#define X(OPTIMIZER, n, alias, knob, emb, dflt)                                                    \
    if (tr->optimizer == OPT_##OPTIMIZER) {                                                        \
        fputs(" " #n " ", out);                                                                    \
        put_num(out, tr->value[MTR_KNOB_##knob]);                                                  \
    }
#include "optimizer_options.def"
#undef X
    fputc('\n', out);
    for (int i = 0; i < SET_COUNT; i++) {
        if (!SETTING_ALWAYS_THERE[i] && !tr->given[SETTING_KNOBS[i]]) continue;
        fprintf(out, "  %s ", SETTING_NAMES[i]);
        put_num(out, tr->value[SETTING_KNOBS[i]]);
        fputc('\n', out);
    }
    if (tr->emb_optimizer_name && tr->emb_optimizer < OPT_COUNT) {
        fprintf(out, "  optimizer_embedding %s", ast_optimizer_name(tr->emb_optimizer));
#define X(OPTIMIZER, n, alias, knob, emb, dflt)                                                    \
    if (tr->emb_optimizer == OPT_##OPTIMIZER) {                                                    \
        fputs(" " #n " ", out);                                                                    \
        put_num(out, tr->value[MTR_KNOB_##emb]);                                                   \
    }
#include "optimizer_options.def"
#undef X
        fputc('\n', out);
    }
    for (int d = 0; d < DECAY_COUNT; d++) {
        if (!tr->given[DECAYS[d].knob]) continue;
        fprintf(out, "  decay %s ", DECAYS[d].name);
        put_num(out, tr->value[DECAYS[d].knob]);
        fputc('\n', out);
    }
    if (tr->early_stop) {
        fprintf(out, "  early_stop %s patience ", tr->early_stop);
        put_num(out, tr->value[MTR_KNOB_PATIENCE]);
        fputc('\n', out);
    }
}
