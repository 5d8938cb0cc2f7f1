/* The syntax tree of one .mtr file, as the parser builds it, plus the fields
 * that sema fills in once the model is checked (marked "sema:"). Lowering reads
 * only checked trees. All nodes live in the compilation's Pool (pool.h) and
 * are freed with it. The second half of this header is the parser's side:
 * the builder context and the ast_* calls that grammar actions make. */
#ifndef MTR_AST_H
#define MTR_AST_H

#include "diag.h"
#include "pool.h"

#include <stdint.h>

typedef enum { TY_STRING, TY_INT, TY_FLOAT } AstType;
typedef enum { ACT_LINEAR, ACT_RELU, ACT_TANH, ACT_SIGMOID } Activation;

/* `input NAME : TYPE` or `label NAME : TYPE` */
typedef struct AstColumn {
    const char *name;
    Loc loc;
    AstType type;
    int is_label;
    struct AstColumn *next;
    /* sema: */
    int looked_up; /* some tower looks it up in a vocabulary */
    int is_item;   /* a retrieval task's candidate tower reads it */
} AstColumn;

/* One stage of a chain: `lookup`, `embedding(D)`, `dense(N, act)`. */
typedef enum { STAGE_LOOKUP, STAGE_EMBEDDING, STAGE_DENSE } StageKind;
typedef struct AstStage {
    StageKind kind;
    Loc loc;
    int64_t units; /* embedding's D or dense's N */
    Activation act;
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
typedef enum { CHAIN_TOWER, CHAIN_HEAD } ChainKind;
typedef struct AstChain {
    ChainKind kind;
    const char *name;
    Loc loc;
    AstRef *sources;
    int is_concat;
    AstStage *stages;
    struct AstChain *next;
    /* sema: */
    int64_t width; /* output size */
    int is_item;   /* a retrieval task's candidate reads it (maybe through others) */
} AstChain;

typedef enum { TASK_RANKING, TASK_RETRIEVAL } TaskKind;
typedef enum { LOSS_DEFAULT, LOSS_MSE, LOSS_BCE } LossKind;
typedef enum { METRIC_RMSE, METRIC_MAE, METRIC_AUC, METRIC_TOP_K } MetricKind;

typedef struct AstMetric {
    MetricKind kind;
    Loc loc;
    int n_ks;
    int64_t ks[8];
    Loc k_locs[8];
    struct AstMetric *next;
} AstMetric;

/* `task NAME = ranking(HEAD, LABEL) loss L metrics M... weight W`
 * `task NAME = retrieval(QUERY, CANDIDATE) metrics top_k(...) weight W` */
/* weight is 1.0 when not written (has_weight 0). sema turns LOSS_DEFAULT into
 * LOSS_MSE for ranking; a retrieval task keeps LOSS_DEFAULT, meaning its only
 * loss, in-batch softmax cross-entropy. */
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

typedef enum { OPT_ADAGRAD, OPT_SGD, OPT_ADAM } OptimizerKind;

typedef struct {
    Loc loc;
    int present;
    const char *optimizer_name;
    Loc optimizer_loc;
    AstOption *options;
    /* batch, epochs, seed, split as written (has_* says whether given) */
    int64_t batch, epochs, seed;
    double split;
    int has_batch, has_epochs, has_seed, has_split;
    Loc batch_loc, epochs_loc, seed_loc, split_loc; /* of the values written */
    /* sema: batch, epochs, seed, split hold the defaults (8192, 3, 42, 0.8)
     * where not written; the optimizer and every parameter with Keras's defaults filled in */
    OptimizerKind optimizer;
    double lr, initial_accumulator, epsilon, beta1, beta2;
} AstTrain;

typedef struct {
    const char *name;
    Loc loc;
    AstColumn *columns;
    AstChain *chains;
    AstTask *tasks;
    AstTrain train;
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

/* What a chain reads: one name, or concat(name, ...). */
typedef struct {
    AstRef *refs;
    int is_concat;
    Loc loc;
} AstSource;

/* One clause after a task: loss, metrics or weight. */
typedef enum { CLAUSE_LOSS, CLAUSE_METRICS, CLAUSE_WEIGHT } ClauseKind;
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
AstRef *ast_ref_add(AstBuilder *b, AstRef *list, AstTok name);
AstSource *ast_source_name(AstBuilder *b, AstTok name);
AstSource *ast_source_concat(AstBuilder *b, AstSpan span, AstRef *refs);
AstValue *ast_value_number(AstBuilder *b, AstTok num);
AstValue *ast_value_negative(AstBuilder *b, AstSpan span, AstTok num);
AstValue *ast_value_name(AstBuilder *b, AstTok name);
AstValue *ast_value_add(AstBuilder *b, AstValue *list, AstValue *v);
AstStage *ast_stage(AstBuilder *b, AstSpan span, AstTok name, AstValue *args, int has_parens);
AstStage *ast_stage_add(AstBuilder *b, AstStage *list, AstStage *stage);
void ast_chain(AstBuilder *b, ChainKind kind, AstTok name, AstSource *src, AstStage *stages);
AstMetric *ast_metric(AstBuilder *b, AstSpan span, AstTok name, AstValue *args, int has_parens);
AstMetric *ast_metric_add(AstBuilder *b, AstMetric *list, AstMetric *m);
AstClause *ast_clause_loss(AstBuilder *b, AstSpan kw, AstTok loss);
AstClause *ast_clause_metrics(AstBuilder *b, AstSpan kw, AstMetric *metrics);
AstClause *ast_clause_weight(AstBuilder *b, AstSpan kw, AstValue *weight);
AstClause *ast_clause_add(AstBuilder *b, AstClause *list, AstClause *c);
void ast_task(AstBuilder *b, AstTok name, AstTok kind, AstSpan args_span, AstRef *args,
              AstClause *clauses);
AstOption *ast_option(AstBuilder *b, AstTok name, AstValue *value);
AstOption *ast_option_add(AstBuilder *b, AstOption *list, AstOption *o);
AstSetting *ast_setting_optimizer(AstBuilder *b, AstTok name, AstOption *options);
AstSetting *ast_setting_value(AstBuilder *b, AstTok name, AstValue *value);
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
