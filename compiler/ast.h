/* The syntax tree of one .mtr file, as the parser builds it, plus the fields
 * that sema fills in once the model is checked (marked "sema:"). Lowering reads
 * only checked trees. All nodes live in the compilation's Pool (pool.h) and
 * are freed with it. The second half of this header is the parser's side:
 * the builder context and the ast_* calls that grammar actions make. */
#ifndef MTR_AST_H
#define MTR_AST_H

#include "diag.h"
#include "pool.h"

#include "mtr/model.h"
#include "mtr/ops.h"

#include <stdint.h>

typedef enum { TY_STRING, TY_INT, TY_FLOAT } AstType;

/* ---- the language's registries: one .def file of rows per kind ---------- */

typedef enum {
#define X(E, n, op) ACT_##E,
#include "activations.def"
#undef X
    ACT_COUNT
} Activation;

typedef enum {
#define X(E, n, lo, hi, width, out) COMB_##E,
#include "combiners.def"
#undef X
    COMB_COUNT
} CombinerKind;
typedef enum { CWIDTH_SUM, CWIDTH_SAME, CWIDTH_ONE } CombinerWidth;
typedef enum { COUT_VALUE, COUT_PROBABILITY } CombinerOutput;
typedef struct {
    const char *name;
    int min, max; /* sources taken; max 0: no limit */
    CombinerWidth width;
    CombinerOutput output;
} CombinerInfo;
const CombinerInfo *ast_combiner_info(CombinerKind k);

typedef enum {
#define X(E, n, args, place, width, ex) STAGE_##E,
#include "stages.def"
#undef X
    STAGE_COUNT
} StageKind;
typedef enum {
    ARGS_NONE,
    ARGS_SIZE,
    ARGS_SIZE_ACT,
    ARGS_RATE,
    ARGS_COUNT,
    ARGS_SIZE_POOL,
    ARGS_BOUNDS
} StageArgs;
typedef enum {
    PLACE_INPUT,
    PLACE_IDS,
    PLACE_HIDDEN,
    PLACE_TEXT,
    PLACE_NUMBER,
    PLACE_SCALE
} StagePlace;
/* embedding(D, POOL) over a list of ids */
typedef enum { POOL_NONE, POOL_MEAN, POOL_SUM } StagePool;
typedef enum { WIDTH_SAME, WIDTH_UNITS } StageWidth;
typedef struct {
    const char *name;
    StageArgs args;
    StagePlace place;
    StageWidth width;
    int in_experts; /* it may stand in an experts block */
} StageInfo;

typedef enum {
#define X(E, n, args, reads, loss) TASK_##E,
#include "tasks.def"
#undef X
    TASK_COUNT
} TaskKind;
typedef struct {
    const char *name;
    const char *args;    /* what its two arguments are, for messages */
    MtrOutputRole reads; /* the eval output its metrics read */
    int default_loss;    /* a LossKind */
} TaskInfo;

/* LOSS_DEFAULT: no loss clause was written (sema gives the task's default). */
typedef enum {
    LOSS_DEFAULT,
#define X(E, n, task, op, output, metric, pop) LOSS_##E,
#include "losses.def"
#undef X
    LOSS_COUNT
} LossKind;
typedef enum { OUTPUT_LOGIT, OUTPUT_PROBABILITY } LossOutput;
typedef struct {
    const char *name; /* "" for a loss no clause can name */
    TaskKind task;
    OpKind op;
    LossOutput output;
    int metric;     /* an MtrMetric equal to the loss, or MTR_METRIC_COUNT for none */
    OpKind prob_op; /* the op on a head that gives probabilities, or OP_COUNT */
} LossInfo;

typedef enum {
#define X(E, n) OPT_##E,
#include "optimizers.def"
#undef X
    OPT_COUNT
} OptimizerKind;

/* Learning-rate decays (decays.def), `decay NAME(arg)`. */
typedef struct {
    const char *name;
    MtrKnobKind knob;
    double arg_default; /* NAN: the argument must be given */
} DecayInfo;
typedef enum {
#define X(E, n, knob, dflt) DECAY_##E,
#include "decays.def"
#undef X
    DECAY_COUNT
} DecayKind;
const DecayInfo *ast_decay_info(DecayKind k);

typedef enum {
#define X(E, n, knob, dflt, when) SET_##E,
#include "settings.def"
#undef X
    SET_COUNT
} SettingKind;

/* The rows, by kind (the kind must be valid). */
const StageInfo *ast_stage_info(StageKind k);
const TaskInfo *ast_task_info(TaskKind k);
const LossInfo *ast_loss_info(LossKind k); /* NULL for LOSS_DEFAULT */
OpKind ast_activation_op(Activation a);    /* OP_COUNT for none */

/* `input NAME : TYPE` or `label NAME : TYPE` */
typedef struct AstColumn {
    const char *name;
    Loc loc;
    AstType type;
    int is_label;
    int is_list; /* `string list` / `int list`: several values a row */
    struct AstColumn *next;
    /* A derived label (`label liked = user_rating >= 4`): the column it reads,
     * its comparison (an MtrCompare) and threshold; from_name NULL otherwise. */
    const char *from_name;
    Loc from_loc;
    int compare;
    double threshold;
    /* sema: */
    int looked_up;          /* some tower looks it up in a vocabulary */
    int is_item;            /* a retrieval task's candidate tower reads it */
    struct AstColumn *from; /* a derived label's column */
} AstColumn;

/* One stage of a chain: `lookup`, `embedding(D)`, `dense(N, act)`, ... */
typedef struct AstStage {
    StageKind kind;
    Loc loc;
    int64_t units; /* its size argument (embedding's D, dense's N) */
    double rate;   /* its rate argument (dropout's p) */
    Activation act;
    StagePool pool;    /* embedding's pooling over a list */
    int64_t min_count; /* lookup(min_count = N); 0 when not written */
    double *bounds;    /* bucketize's boundaries, increasing */
    int n_bounds;
    struct AstStage *next;
    /* sema: */
    int64_t in_width; /* the width this stage reads (dense, embedding: 0) */
} AstStage;

/* A name used as a chain's source, possibly one of several inside concat(...). */
typedef struct AstRef {
    const char *name;
    Loc loc;
    struct AstRef *next;
    /* sema: exactly one of these is set */
    AstColumn *column;
    struct AstChain *chain;
} AstRef;

/* `tower NAME = SOURCE -> stage -> ...` and `head NAME = SOURCE -> stage ...`.
 * SOURCE is one name or concat(name, name, ...). */
/* tower, head, or experts: N experts of the same stages with weights of their
 * own over one source, read only through mix(...) */
typedef enum { CHAIN_TOWER, CHAIN_HEAD, CHAIN_EXPERTS } ChainKind;

/* What a feature computes from its input before any weights: sema fills it
 * for a chain that reads an input (check_feature in sema.c). */
typedef enum {
    FEAT_LOOKUP,     /* ids from a vocabulary of the data */
    FEAT_HASH,       /* ids from a hash, arg bins */
    FEAT_DISCRETIZE, /* ids 1..arg: quantile buckets of the training rows; 0 missing */
    FEAT_BUCKETIZE,  /* ids 1..n_bounds+1 of the explicit bounds; 0 missing */
    FEAT_NORMALIZE   /* a number, (x - mean) / sqrt(var) of the training rows */
} FeatureKind;
typedef struct {
    struct AstColumn *column;
    FeatureKind kind;
    int tokens;  /* the string is split into words first */
    int is_list; /* several ids a row (a list column, or tokens) */
    int64_t arg; /* hash's bins, discretize's buckets, lookup's min_count */
    const double *bounds;
    int n_bounds;
    StagePool pool;
    int plain;        /* `lookup -> embedding(D)` of one value: the column itself */
    const char *name; /* the model column it becomes */
} AstFeature;
typedef struct AstChain {
    ChainKind kind;
    const char *name;
    Loc loc;
    AstRef *sources;           /* every name it reads, in order (the leaves of combine) */
    struct AstSource *combine; /* its combiner, or NULL when it reads one name */
    int is_concat;             /* combine is a concat */
    int n_experts;             /* CHAIN_EXPERTS: how many */
    int anon;                  /* a chain written inside concat(...), named by the parser */
    AstStage *stages;
    struct AstChain *next;
    AstFeature feat; /* sema: when it reads an input (feat.column set) */
    /* sema: */
    int64_t width;      /* output size */
    int is_item;        /* a retrieval task's candidate reads it (maybe through others) */
    int is_probability; /* it gives probabilities: a product, with no stage after it */
} AstChain;

typedef struct AstMetric {
    MtrMetric kind; /* metrics.def, shared with the runtime */
    Loc loc;
    int n_ks;
    int64_t ks[8];
    Loc k_locs[8];
    struct AstMetric *next;
} AstMetric;

/* `task NAME = ranking(HEAD, LABEL) loss L metrics M... weight W`
 * `task NAME = retrieval(QUERY, CANDIDATE) metrics top_k(...) weight W` */
/* weight is 1.0 when not written (has_weight 0). sema turns LOSS_DEFAULT into
 * the task kind's default loss (tasks.def). */
typedef struct AstTask {
    const char *name;
    Loc loc;
    TaskKind kind;
    AstRef *args; /* two */
    LossKind loss;
    Loc loss_loc;
    AstMetric *metrics;
    double weight;
    Loc weight_loc;
    int has_weight;
    int weight_auto; /* `weight auto`: a log-variance learned beside the model (Kendall et al.) */
    double sample;   /* the share of training rows whose label it trains on; 1 when not written */
    Loc sample_loc;
    int has_sample;
    /* retrieval options (docs/dsl.md): each a knob of the task */
    double temperature; /* 1 when not written */
    Loc temperature_loc, logq_loc, hits_loc;
    int has_temperature, logq, remove_hits;
    int64_t negatives; /* mixed negatives per batch (`negatives N`), 0 when not written */
    double popularity; /* their sampler's exponent (`popularity A`), 0: uniform */
    Loc negatives_loc, popularity_loc;
    int has_popularity;
    const char *logq_counts; /* `logq(counts = COLUMN)`: the column's name, else NULL */
    Loc logq_counts_loc;
    const struct AstColumn *logq_column; /* sema: that column */
    struct AstTask *next;
} AstTask;

/* `name = number` inside optimizer(...) */
typedef struct AstOption {
    const char *name;
    Loc loc;
    double value;
    Loc value_loc;
    struct AstOption *next;
} AstOption;

/* The train block. Its settings and the optimizer's options are model-wide
 * knobs, kept by knob kind (knobs.def): value[k] as written (given[k] says
 * whether, loc[k] where); sema fills in every default (settings.def, and
 * Keras's for the optimizer's options, optimizer_options.def). */
typedef struct {
    Loc loc;
    int present;
    const char *optimizer_name;
    Loc optimizer_loc;
    AstOption *options;
    double value[MTR_KNOB_KINDS];
    int given[MTR_KNOB_KINDS];
    Loc value_loc[MTR_KNOB_KINDS];
    /* `optimizer_embedding NAME(options)`: the embedding tables' own optimizer */
    const char *emb_optimizer_name;
    Loc emb_optimizer_loc;
    AstOption *emb_options;
    /* `decay NAME` or `decay NAME(args)` (decays.def) */
    const char *decay_name;
    Loc decay_loc;
    const struct AstValue *decay_args;
    /* `early_stop TASK.METRIC patience N` (the patience is value[MTR_KNOB_PATIENCE]) */
    const char *early_stop;
    Loc early_stop_loc;
    /* sema: */
    OptimizerKind optimizer;
    OptimizerKind emb_optimizer; /* OPT_COUNT: the embedding tables use `optimizer` */
} AstTrain;

typedef struct {
    const char *name;
    Loc loc;
    AstColumn *columns;
    AstChain *chains;
    AstTask *tasks;
    AstTrain train;
    /* sema: the model column that names a row's user (mark_user), or NULL */
    const char *user_column;
} AstModel;

/* ---- the parser's side ------------------------------------------------- */

/* Bison's location type (api.location.type): the first character and the
 * place just past the last one, both 1-based. */
typedef struct {
    int first_line, first_column;
    int last_line, last_column;
} AstSpan;

/* A token's value: its text (in the Pool; a string's text is unescaped) and
 * its place. */
typedef struct {
    const char *text;
    Loc loc;
} AstTok;

/* A number or a name written as an argument or a value: `32`, `-0.5`, `relu`. */
typedef enum { VAL_NUMBER, VAL_NAME, VAL_BAD } AstValueKind;
typedef struct AstValue {
    AstValueKind kind;
    Loc loc;
    const char *text; /* as written (a name, or the digits) */
    double num;       /* VAL_NUMBER */
    int64_t i;        /* VAL_NUMBER when is_int */
    int is_int;       /* written without '.' or exponent, and fits in int64 */
    struct AstValue *next;
} AstValue;

/* What a chain reads: one name (ref), or a combiner (combiners.def) over
 * sources: concat(a, b), dot(user, movie), sum(dot(user, movie), ubias). */
typedef struct AstSource {
    int combiner; /* a CombinerKind, or -1 for a name */
    AstRef *ref;  /* the name, when combiner < 0 */
    struct AstSource *members, *next;
    Loc loc;
    int depth; /* 1 for a name, 1 + its deepest source's for a combiner */
    /* sema: */
    int64_t width;
} AstSource;

/* One clause after a task: loss, metrics, weight, or a named option (sample). */
typedef enum {
    CLAUSE_LOSS,
    CLAUSE_METRICS,
    CLAUSE_WEIGHT,
    CLAUSE_SAMPLE,
    CLAUSE_TEMPERATURE, /* retrieval: `temperature T` */
    CLAUSE_LOGQ,        /* retrieval: `logq` */
    CLAUSE_HITS,        /* retrieval: `remove_accidental_hits` */
    CLAUSE_NEGATIVES,   /* retrieval: `negatives N` */
    CLAUSE_POPULARITY,  /* retrieval: `popularity A` after negatives */
    CLAUSE_COUNT
} ClauseKind;
typedef struct AstClause {
    ClauseKind kind;
    Loc loc; /* the keyword */
    AstTok loss;
    AstMetric *metrics;
    AstValue *weight;
    struct AstClause *next;
} AstClause;

/* One line of a train block: `optimizer NAME(options)` or `NAME value`. */
typedef struct AstSetting {
    int is_optimizer;
    AstTok name; /* the optimizer's or the setting's */
    AstOption *options;
    AstValue *value;
    /* `NAME WORD(args or options)` (decay, optimizer_embedding) and
     * `NAME TASK.METRIC WORD value` (early_stop) */
    AstTok word, target;
    AstValue *args;
    int has_word, has_target;
    struct AstSetting *next;
} AstSetting;

/* The state of one parse: where nodes go, where errors go, the model being
 * built, and the scanner's position (the lexer keeps no globals). */
typedef struct {
    Pool *pool;
    Diag *diag;
    AstModel *model;
    void *scanner;
    const char *src; /* the whole text, for quoting tokens in messages */
    size_t len;
    int line, col;        /* where the scanner is */
    AstSpan comment;      /* where the open block comment began */
    AstColumn **col_tail; /* append points keep source order in O(1) */
    AstChain **chain_tail;
    AstTask **task_tail;
    int n_anon; /* anonymous chains made so far */
    int oom;
    /* Memory for the scanner's own records (lexer.l), which must not fail. */
    _Alignas(16) char flex_mem[1024];
    size_t flex_used;
} AstBuilder;

/* Prepares b to build a model from text (len bytes, kept by the caller).
 * Returns 0, or -1 when out of memory. */
int ast_builder_init(AstBuilder *b, Pool *pool, Diag *diag, const char *text, size_t len);

/* Lexer side: advance the position over a matched token and set its span;
 * make a token's value; report a bad token. */
void ast_lex_step(AstBuilder *b, AstSpan *span, const char *text, size_t len);
AstTok ast_tok(AstBuilder *b, AstSpan span, const char *text, size_t len);
AstTok ast_tok_string(AstBuilder *b, AstSpan span, const char *text, size_t len);
typedef enum { LEX_BAD_NUMBER, LEX_UNTERMINATED_STRING, LEX_BAD_CHAR } LexError;
void ast_lex_error(AstBuilder *b, AstSpan span, LexError what, const char *text, size_t len);
void ast_comment_open(AstBuilder *b, AstSpan span);
void ast_comment_unterminated(AstBuilder *b);

/* Parser side, one call per grammar action. Lists arrive newest first (the
 * *_add calls prepend, which keeps left recursion O(1)); the consumer puts
 * them in source order. Calls that find a mistake report it and return NULL
 * or leave the model unchanged; every call accepts NULL pieces. */
Loc ast_loc(AstSpan s);
void ast_model_name(AstBuilder *b, AstTok name);
void ast_column(AstBuilder *b, int is_label, AstTok name, AstTok type);
/* `input NAME : TYPE list` */
void ast_column_list(AstBuilder *b, AstTok name, AstTok type, AstTok list);
/* `INPUT -> stage -> ...` written as a member of concat(...): an anonymous
 * tower, read by name like any other (ast_chain names it after its reader) */
AstSource *ast_source_chain(AstBuilder *b, AstSpan span, AstTok name, AstStage *stages);
/* a stage with options: lookup(min_count = 2) */
AstStage *ast_stage_options(AstBuilder *b, AstSpan span, AstTok name, AstOption *options);
AstRef *ast_ref_add(AstBuilder *b, AstRef *list, AstTok name);
AstSource *ast_source_name(AstBuilder *b, AstTok name);
AstSource *ast_source_combine(AstBuilder *b, AstSpan span, AstTok name, AstSource *members);
AstSource *ast_source_add(AstBuilder *b, AstSource *list, AstSource *src);
AstValue *ast_value_number(AstBuilder *b, AstTok num);
AstValue *ast_value_negative(AstBuilder *b, AstSpan span, AstTok num);
AstValue *ast_value_name(AstBuilder *b, AstTok name);
AstValue *ast_value_add(AstBuilder *b, AstValue *list, AstValue *v);
AstStage *ast_stage(AstBuilder *b, AstSpan span, AstTok name, AstValue *args, int has_parens);
AstStage *ast_stage_add(AstBuilder *b, AstStage *list, AstStage *stage);
void ast_chain(AstBuilder *b, ChainKind kind, AstTok name, AstSource *src, AstStage *stages);
void ast_experts(AstBuilder *b, AstTok name, AstSource *src, AstTok count, AstTok x,
                 AstStage *stages);
AstMetric *ast_metric(AstBuilder *b, AstSpan span, AstTok name, AstValue *args, int has_parens);
AstMetric *ast_metric_add(AstBuilder *b, AstMetric *list, AstMetric *m);
AstClause *ast_clause_loss(AstBuilder *b, AstSpan kw, AstTok loss);
AstClause *ast_clause_metrics(AstBuilder *b, AstSpan kw, AstMetric *metrics);
AstClause *ast_clause_weight(AstBuilder *b, AstSpan kw, AstValue *weight);
/* A clause that is one keyword (`logq`, `remove_accidental_hits`). */
AstClause *ast_clause_flag(AstBuilder *b, AstSpan kw, ClauseKind kind);
/* `logq(counts = COLUMN)`: key must be `counts`; the column is kept in the clause's loss token. */
AstClause *ast_clause_logq_counts(AstBuilder *b, AstSpan kw, AstTok key, AstTok column);
AstClause *ast_clause_option(AstBuilder *b, AstTok name, AstValue *value);
void ast_derived_label(AstBuilder *b, AstTok name, AstTok from, AstTok compare, AstValue *value);
AstClause *ast_clause_add(AstBuilder *b, AstClause *list, AstClause *c);
void ast_task(AstBuilder *b, AstTok name, AstTok kind, AstSpan args_span, AstRef *args,
              AstClause *clauses);
AstOption *ast_option(AstBuilder *b, AstTok name, AstValue *value);
AstOption *ast_option_add(AstBuilder *b, AstOption *list, AstOption *o);
AstSetting *ast_setting_optimizer(AstBuilder *b, AstTok name, AstOption *options);
AstSetting *ast_setting_value(AstBuilder *b, AstTok name, AstValue *value);
AstSetting *ast_setting_call(AstBuilder *b, AstTok name, AstTok word, AstValue *args,
                             AstOption *options);
AstSetting *ast_setting_target(AstBuilder *b, AstTok name, AstTok target, AstTok word,
                               AstValue *value);
AstSetting *ast_setting_add(AstBuilder *b, AstSetting *list, AstSetting *s);
void ast_train(AstBuilder *b, AstSpan kw, AstSetting *settings);

/* Reports a syntax error at span: found is the token's description (NULL for
 * end of file), expected the names of the tokens that would have fitted. */
void ast_syntax_error(AstBuilder *b, AstSpan span, int at_eof, const char *const *expected,
                      int n_expected, int more_expected);

/* Writes the checked model as stable, readable text (mtrc --dump ast). */
void ast_dump(const AstModel *m, FILE *out);

/* Names, for messages and dumps. */
const char *ast_type_name(AstType t);
const char *ast_activation_name(Activation a);
const char *ast_optimizer_name(OptimizerKind k);

#endif
