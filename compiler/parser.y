/* Parser. Stage: second. In: tokens from lexer.l. Out: the syntax tree in
 * AstBuilder.model. Each action is one call into ast.c, so this file reads as
 * the grammar of the language (docs/dsl.md gives it in EBNF). After a syntax
 * error the parser skips to the next declaration and goes on, so one run
 * reports several mistakes. */
%define api.pure full
%define api.token.prefix {TK_}
%define api.location.type {AstSpan}
%define parse.error custom
%define parse.lac full
%locations
%parse-param {AstBuilder *b}
%lex-param {AstBuilder *b}

%code requires {
#include "ast.h"
}

%code provides {
/* Parses the text the builder was set up with. Returns 0 when the parse
 * succeeded (errors may still have been reported: check the Diag). */
int parser_run(AstBuilder *b);
}

%code {
#include "lexer.h"

#include <limits.h>
#include <string.h>

/* The grammar never nests, so a deep stack means something is wrong;
 * a small limit turns it into an error instead of a crash. */
#define YYMAXDEPTH 1000
#define YYINITDEPTH 64

static int yylex(YYSTYPE *lval, YYLTYPE *lloc, AstBuilder *b);
static void yyerror(YYLTYPE *lloc, AstBuilder *b, const char *msg);
}

%initial-action {
    @$.first_line = @$.last_line = 1;
    @$.first_column = @$.last_column = 1;
}

%union {
    AstTok tok;
    AstRef *ref;
    AstSource *source;
    AstValue *value;
    AstStage *stage;
    AstMetric *metric;
    AstClause *clause;
    AstOption *option;
    AstSetting *setting;
}

%token <tok> MODEL "'model'" INPUT "'input'" LABEL "'label'" TOWER "'tower'"
%token <tok> HEAD "'head'" TASK "'task'" TRAIN "'train'" CONCAT "'concat'"
%token <tok> LOSS "'loss'" METRICS "'metrics'" WEIGHT "'weight'" OPTIMIZER "'optimizer'"
%token <tok> EXPERTS "'experts'" LIST "'list'" LOGQ "'logq'" HITS "'remove_accidental_hits'"
%token <tok> ARROW "'->'" '(' ')' ',' '=' ':' '{' '}' '-'
%token <tok> COMPARE "a comparison"
%token <tok> NAME "a name" NUMBER "a number" STRING "a quoted string"
%token <tok> DOTTED "a dotted name"

%nterm <ref> refs
%nterm <source> source sources member
%nterm <value> value args
%nterm <stage> stage stages stage_list expert_stages
%nterm <metric> metric metrics
%nterm <clause> clause clauses
%nterm <option> option options
%nterm <setting> setting settings

%%

file
    : header decls
    ;

header
    : MODEL NAME                                { ast_model_name(b, $2); }
    | MODEL STRING                              { ast_model_name(b, $2); }
    ;

decls
    : %empty
    | decls decl
    ;

decl
    : INPUT NAME ':' NAME                       { ast_column(b, 0, $2, $4); }
    | INPUT NAME ':' NAME LIST                  { ast_column_list(b, $2, $4, $5); }
    | LABEL NAME ':' NAME                       { ast_column(b, 1, $2, $4); }
    | LABEL NAME '=' NAME COMPARE value         { ast_derived_label(b, $2, $4, $5, $6); }
    | TOWER NAME '=' source stages              { ast_chain(b, CHAIN_TOWER, $2, $4, $5); }
    | HEAD NAME '=' source stages               { ast_chain(b, CHAIN_HEAD, $2, $4, $5); }
    | EXPERTS NAME '=' source ARROW NUMBER NAME expert_stages
                                                { ast_experts(b, $2, $4, $6, $7, $8); }
    | TASK NAME '=' NAME '(' refs ')' clauses   { ast_task(b, $2, $4, @6, $6, $8); }
    | TRAIN '{' settings '}'                    { ast_train(b, @1, $3); }
    | error
    ;

source
    : NAME                                      { $$ = ast_source_name(b, $1); }
    | CONCAT '(' sources ')'                    { $$ = ast_source_combine(b, @$, $1, $3); }
    | NAME '(' sources ')'                      { $$ = ast_source_combine(b, @$, $1, $3); }
    ;
sources
    : member                                    { $$ = ast_source_add(b, NULL, $1); }
    | sources ',' member                        { $$ = ast_source_add(b, $1, $3); }
    ;
member
    : source                                    { $$ = $1; }
    | NAME ARROW stage_list                     { $$ = ast_source_chain(b, @$, $1, $3); }
    ;

refs
    : NAME                                      { $$ = ast_ref_add(b, NULL, $1); }
    | refs ',' NAME                             { $$ = ast_ref_add(b, $1, $3); }
    ;

stages
    : %empty                                    { $$ = NULL; }
    | stages ARROW stage                        { $$ = ast_stage_add(b, $1, $3); }
    ;

expert_stages
    : stage                                     { $$ = ast_stage_add(b, NULL, $1); }
    | '(' stage_list ')'                        { $$ = $2; }
    ;
stage_list
    : stage                                     { $$ = ast_stage_add(b, NULL, $1); }
    | stage_list ARROW stage                    { $$ = ast_stage_add(b, $1, $3); }
    ;
stage
    : NAME                                      { $$ = ast_stage(b, @$, $1, NULL, 0); }
    | NAME '(' args ')'                         { $$ = ast_stage(b, @$, $1, $3, 1); }
    | NAME '(' options ')'                      { $$ = ast_stage_options(b, @$, $1, $3); }
    ;

args
    : value                                     { $$ = ast_value_add(b, NULL, $1); }
    | args ',' value                            { $$ = ast_value_add(b, $1, $3); }
    ;

value
    : NUMBER                                    { $$ = ast_value_number(b, $1); }
    | '-' NUMBER                                { $$ = ast_value_negative(b, @$, $2); }
    | NAME                                      { $$ = ast_value_name(b, $1); }
    ;

clauses
    : %empty                                    { $$ = NULL; }
    | clauses clause                            { $$ = ast_clause_add(b, $1, $2); }
    ;

clause
    : LOSS NAME                                 { $$ = ast_clause_loss(b, @1, $2); }
    | METRICS metrics                           { $$ = ast_clause_metrics(b, @1, $2); }
    | WEIGHT value                              { $$ = ast_clause_weight(b, @1, $2); }
    | NAME value                                { $$ = ast_clause_option(b, $1, $2); }
    | LOGQ                                      { $$ = ast_clause_flag(b, @1, CLAUSE_LOGQ); }
    | LOGQ '(' NAME '=' NAME ')'                { $$ = ast_clause_logq_counts(b, @1, $3, $5); }
    | HITS                                      { $$ = ast_clause_flag(b, @1, CLAUSE_HITS); }
    ;

metrics
    : metric                                    { $$ = ast_metric_add(b, NULL, $1); }
    | metrics ',' metric                        { $$ = ast_metric_add(b, $1, $3); }
    ;

metric
    : NAME                                      { $$ = ast_metric(b, @$, $1, NULL, 0); }
    | NAME '(' args ')'                         { $$ = ast_metric(b, @$, $1, $3, 1); }
    ;

settings
    : %empty                                    { $$ = NULL; }
    | settings setting                          { $$ = ast_setting_add(b, $1, $2); }
    ;

setting
    : OPTIMIZER NAME                            { $$ = ast_setting_optimizer(b, $2, NULL); }
    | OPTIMIZER NAME '(' ')'                    { $$ = ast_setting_optimizer(b, $2, NULL); }
    | OPTIMIZER NAME '(' options ')'            { $$ = ast_setting_optimizer(b, $2, $4); }
    | NAME value                                { $$ = ast_setting_value(b, $1, $2); }
    | NAME NAME '(' ')'                         { $$ = ast_setting_call(b, $1, $2, NULL, NULL); }
    | NAME NAME '(' args ')'                    { $$ = ast_setting_call(b, $1, $2, $4, NULL); }
    | NAME NAME '(' options ')'                 { $$ = ast_setting_call(b, $1, $2, NULL, $4); }
    | NAME DOTTED NAME value                    { $$ = ast_setting_target(b, $1, $2, $3, $4); }
    ;

options
    : option                                    { $$ = ast_option_add(b, NULL, $1); }
    | options ',' option                        { $$ = ast_option_add(b, $1, $3); }
    ;

option
    : NAME '=' value                            { $$ = ast_option(b, $1, $3); }
    ;

%%

/* Once the error limit is reached the parser is told the file has ended, so
 * a hopeless file costs no more time. */
static int yylex(YYSTYPE *lval, YYLTYPE *lloc, AstBuilder *b)
{
    if (diag_stopped(b->diag)) return TK_YYEOF;
    return mtr_yylex(lval, lloc, b->scanner);
}

/* Bison calls this only when its stack is exhausted. */
static void yyerror(YYLTYPE *lloc, AstBuilder *b, const char *msg)
{
    (void)msg;
    diag_error(b->diag, ast_loc(*lloc), "nesting too deep");
}

static int yyreport_syntax_error(const yypcontext_t *ctx, AstBuilder *b)
{
    enum { MAX_LISTED = 64 };
    yysymbol_kind_t expected[MAX_LISTED];
    const char *names[MAX_LISTED];
    int total = yypcontext_expected_tokens(ctx, NULL, 0);
    int more = total > MAX_LISTED;
    int listed = more || total < 0 ? 0 : yypcontext_expected_tokens(ctx, expected, MAX_LISTED);
    for (int i = 0; i < listed; i++) names[i] = yysymbol_name(expected[i]);
    yysymbol_kind_t found = yypcontext_token(ctx);
    ast_syntax_error(b, *yypcontext_location(ctx), found == YYSYMBOL_YYEOF, names, listed, more);
    return 0;
}

int parser_run(AstBuilder *b)
{
    /* The text with the two NUL bytes flex needs at its end, scanned in place. */
    char *text = b->len <= INT_MAX - 2 ? pool_alloc(b->pool, b->len + 2) : NULL;
    if (!text) return -1;
    memcpy(text, b->src, b->len);
    text[b->len] = text[b->len + 1] = '\0';
    yyscan_t scanner;
    if (mtr_yylex_init_extra(b, &scanner) != 0) return -1;
    b->scanner = scanner;
    YY_BUFFER_STATE buf = mtr_yy_scan_buffer(text, b->len + 2, scanner);
    if (!buf) {
        mtr_yylex_destroy(scanner);
        b->scanner = NULL;
        return -1;
    }
    int rc = yyparse(b);
    mtr_yy_delete_buffer(buf, scanner);
    mtr_yylex_destroy(scanner);
    b->scanner = NULL;
    return rc;
}
