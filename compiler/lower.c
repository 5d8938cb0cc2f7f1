/* Lowering: checked AST -> module tables and forward graphs.
 *
 * Each program lowers the chains it needs over its own input tensors: the
 * training and evaluation programs over a batch of rows ("batch"), embed_items
 * over every candidate item ("items"). Parameters are model-wide: a chain's
 * embedding table or dense kernel is created once and shared by every program
 * that lowers the chain. Loss weights and optimizer settings become knobs that
 * ops read at run time; nothing is folded into a constant. */
#include "lower.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for a task's description ("ranking, loss mse"). */
#define ABOUT_MAX 128

const MtrProgramKind lower_program_kinds[PROG_COUNT] = {
    [PROG_TRAIN] = MTR_PROG_TRAIN,         [PROG_EVAL] = MTR_PROG_EVAL,
    [PROG_PREDICT] = MTR_PROG_PREDICT,     [PROG_EMBED_ITEMS] = MTR_PROG_EMBED_ITEMS,
    [PROG_RECOMMEND] = MTR_PROG_RECOMMEND,
};

/* One stage's (or a mix's gate's) parameters and knob, shared by every
 * lowering of its chain; keyed by the AstStage or AstSource they belong to. */
typedef struct {
    const void *owner;
    int32_t table, kernel, bias, knob;
    int layer_tag; /* a number for its names, in order of making */
} StageParams;

typedef struct {
    Module *mod;
    const AstModel *ast;
    Lowered *out;
    int32_t sym_batch, sym_items, sym_k;
    StageParams *params;
    uint32_t n_params, cap_params;
    int n_gates; /* mix gates made so far, to number their parameters */
} Lowerer;

/* The state of lowering chains inside one program. */
typedef struct {
    Lowerer *L;
    Graph *g;
    MtrDim rows;
    MtrSource source; /* what feeds the columns it reads: the batch's rows or the items */
    int training;     /* train_step: stages that act only in training (dropout) act */
    const AstChain *chain[64];
    int32_t chain_out[64];
    uint32_t n_chains;
    const AstColumn *column[64];
    int32_t column_in[64];
    uint32_t n_columns;
    int32_t feat_col[64]; /* feature columns read so far, and their inputs */
    int32_t feat_in[64];
    uint32_t n_feat;
    const AstSource *combined[64]; /* combined sources lowered already (an experts block's
                                      input, read again by each gate over it) */
    int32_t combined_out[64];
    uint32_t n_combined;
} Ctx;

static int column_index(const AstModel *m, const AstColumn *c)
{
    int i = 0;
    for (const AstColumn *k = m->columns; k; k = k->next, i++)
        if (k == c) return i;
    return -1;
}

static StageParams *stage_params(Lowerer *L, const void *s)
{
    for (uint32_t i = 0; i < L->n_params; i++)
        if (L->params[i].owner == s) return &L->params[i];
    if (L->n_params == L->cap_params) {
        uint32_t cap = L->cap_params ? 2 * L->cap_params : 16;
        StageParams *p = realloc(L->params, cap * sizeof *p);
        if (!p) {
            module_fail(L->mod, "out of memory");
            return NULL;
        }
        L->params = p;
        L->cap_params = cap;
    }
    StageParams *p = &L->params[L->n_params++];
    *p = (StageParams){s, -1, -1, -1, -1, 0};
    return p;
}

static int32_t param(Lowerer *L, MtrShape shape, MtrInit init, float arg, const char *fmt,
                     const char *chain, int layer)
{
    char name[256];
    snprintf(name, sizeof name, fmt, chain, layer);
    int32_t t = module_tensor(L->mod, name, MTR_ROLE_PARAM, shape);
    if (t >= 0) {
        L->mod->m->tensors[t].init = (uint8_t)init;
        L->mod->m->tensors[t].init_arg = arg;
    }
    return t;
}

/* Sets what the runtime feeds input t. */
static void set_source(Module *mod, int32_t t, MtrSource kind, int32_t column)
{
    mod->m->tensors[t].source = (uint8_t)kind;
    mod->m->tensors[t].source_column = column;
}

/* The program's input tensor for column c: vocabulary ids or numbers. */
static int32_t column_input(Ctx *x, const AstColumn *c)
{
    for (uint32_t i = 0; i < x->n_columns; i++)
        if (x->column[i] == c) return x->column_in[i];
    if (x->n_columns == 64) {
        module_fail(x->L->mod, "more than 64 columns in one program");
        return -1;
    }
    MtrDType dt = c->looked_up ? MTR_DT_I32 : MTR_DT_F32;
    Module *mod = x->L->mod;
    int32_t t = module_tensorf(mod, MTR_ROLE_INPUT, shape_vec(x->rows, dt), "%s.%s",
                               mtr_source_name(x->source), c->name);
    if (t < 0) return -1;
    set_source(mod, t, x->source, column_index(x->L->ast, c));
    x->column[x->n_columns] = c;
    x->column_in[x->n_columns++] = t;
    return t;
}

/* The model column of chain c's feature (made by add_columns). */
static int32_t feature_column(const Ctx *x, const AstChain *c)
{
    return mtr_model_find_column(x->L->mod->m, c->feat.name);
}

/* The program's input tensor for the feature of chain c: (rows) ids, (rows,
 * list) ids padded with -1, or (rows, 1) numbers (normalize). */
static int32_t feature_input(Ctx *x, const AstChain *c)
{
    Module *mod = x->L->mod;
    int32_t col = feature_column(x, c);
    if (col < 0) {
        module_fail(mod, "no column for feature '%s'", c->feat.name);
        return -1;
    }
    for (uint32_t i = 0; i < x->n_feat; i++)
        if (x->feat_col[i] == col) return x->feat_in[i];
    if (x->n_feat == 64) {
        module_fail(mod, "more than 64 features in one program");
        return -1;
    }
    const MtrColumn *mc = &mod->m->columns[col];
    MtrShape sh;
    if (mc->is_list) {
        int32_t sym = module_symbol(mod, MTR_SYM_LIST, col, mc->name);
        sh = (MtrShape){.rank = 2, .dtype = MTR_DT_I32, .dim = {x->rows, dim_sym(sym)}};
    } else if (mc->feature == MTR_FEAT_NORMALIZE) {
        sh = shape_mat(x->rows, dim_const(1));
    } else {
        sh = shape_vec(x->rows, MTR_DT_I32);
    }
    int32_t t =
        module_tensorf(mod, MTR_ROLE_INPUT, sh, "%s.%s", mtr_source_name(x->source), mc->name);
    if (t < 0) return -1;
    set_source(mod, t, x->source, col);
    x->feat_col[x->n_feat] = col;
    x->feat_in[x->n_feat++] = t;
    return t;
}

/* Applies the activation's op (activations.def), if it has one. */
static int32_t activation(Ctx *x, Activation act, int32_t h, const char *name)
{
    OpKind k = ast_activation_op(act);
    if (k == OP_COUNT) return h;
    int32_t in[] = {h};
    return graph_op(x->g, k, in, NULL, 0, NULL, name);
}

static int32_t lower_chain(Ctx *x, const AstChain *c);
static int32_t lower_source(Ctx *x, const AstChain *c, const AstSource *src);
static int32_t lower_combined(Ctx *x, const AstChain *c, const AstSource *src);

static int32_t lower_ref(Ctx *x, const AstRef *r)
{
    if (r->chain) return lower_chain(x, r->chain);
    /* A column feeds a chain directly only through lookup -> embedding. */
    return column_input(x, r->column);
}

/* ---- stages: one lower_stage_<name> per row of stages.def ---------------
 * Each gets the chain, the stage, its parameters (made on first use, shared by
 * every program), the stage's number in the chain and the tensor it reads;
 * it returns the tensor it makes, or -1. */
typedef struct {
    Ctx *x;
    const AstChain *c;
    const AstStage *s;
    StageParams *p;
    int layer;
} StageCtx;

static int32_t lower_stage_lookup(const StageCtx *sc, int32_t h)
{
    (void)sc;
    return h; /* the ids are already vocabulary ids: the runtime looks them up at the edge */
}

/* The rows of a feature's embedding table: its vocabulary's (with the
 * out-of-vocabulary row 0), hash's bins, or the buckets with row 0 for a
 * missing number. */
static MtrDim feature_rows(const StageCtx *sc)
{
    Lowerer *L = sc->x->L;
    const AstFeature *f = &sc->c->feat;
    if (f->plain || !f->column) {
        const AstColumn *col = sc->c->sources->column;
        return dim_sym(
            module_symbol(L->mod, MTR_SYM_VOCAB, column_index(L->ast, col), col ? col->name : "?"));
    }
    int32_t fc = feature_column(sc->x, sc->c);
    switch (f->kind) {
    case FEAT_LOOKUP:
        return dim_sym(module_symbol(L->mod, MTR_SYM_VOCAB, fc, f->name));
    case FEAT_HASH:
        return dim_const((int32_t)f->arg);
    case FEAT_DISCRETIZE:
        return dim_const((int32_t)f->arg + 1);
    case FEAT_BUCKETIZE:
        return dim_const(f->n_bounds + 2);
    case FEAT_NORMALIZE:
        break;
    }
    return dim_const(1);
}

static int32_t lower_stage_embedding(const StageCtx *sc, int32_t h)
{
    Lowerer *L = sc->x->L;
    char name[256];
    if (sc->p->table < 0) {
        MtrShape sh = shape_mat(feature_rows(sc), dim_const((int32_t)sc->s->units));
        sc->p->table = param(L, sh, MTR_INIT_UNIFORM, 0.05f, "%s.embedding", sc->c->name, 0);
        if (sc->p->table < 0) return -1;
    }
    int32_t in[] = {sc->p->table, h};
    snprintf(name, sizeof name, "%s.embedded", sc->c->name);
    if (sc->s->pool != POOL_NONE) {
        /* a list of ids a row, pooled: iattr0 1 for the mean, 0 for the sum */
        int32_t attr[MTR_MAX_IATTR] = {sc->s->pool == POOL_MEAN};
        return graph_op(sc->x->g, OP_EMBED_POOL, in, attr, 0, NULL, name);
    }
    return graph_op(sc->x->g, OP_GATHER, in, NULL, 0, NULL, name);
}

/* A feature's other stages are computed from the data before the program
 * runs (runtime/featurize.c): in the graph they pass their input on. */
static int32_t lower_stage_on_host(const StageCtx *sc, int32_t h)
{
    (void)sc;
    return h;
}
#define lower_stage_tokens     lower_stage_on_host
#define lower_stage_hash       lower_stage_on_host
#define lower_stage_discretize lower_stage_on_host
#define lower_stage_bucketize  lower_stage_on_host
#define lower_stage_normalize  lower_stage_on_host

/* dense in an experts block: each expert's kernel (E,I,H) and bias (E,H), one
 * batched product over the block's input (B,I) or its (E,B,I) experts */
static int32_t lower_experts_dense(const StageCtx *sc, int32_t h)
{
    Lowerer *L = sc->x->L;
    const char *cn = sc->c->name;
    int32_t e = sc->c->n_experts, in = (int32_t)sc->s->in_width, out = (int32_t)sc->s->units;
    char name[256];
    if (sc->p->kernel < 0) {
        MtrShape k = {
            .rank = 3, .dtype = MTR_DT_F32, .dim = {dim_const(e), dim_const(in), dim_const(out)}};
        sc->p->kernel = param(L, k, MTR_INIT_GLOROT, 0, "%s.dense%d.kernel", cn, sc->layer);
        sc->p->bias = param(L, shape_mat(dim_const(e), dim_const(out)), MTR_INIT_ZEROS, 0,
                            "%s.dense%d.bias", cn, sc->layer);
        if (sc->p->kernel < 0 || sc->p->bias < 0) return -1;
    }
    int32_t x_in[] = {h, sc->p->kernel, sc->p->bias};
    int32_t attr[MTR_MAX_IATTR] = {e};
    snprintf(name, sizeof name, "%s.dense%d.pre", cn, sc->layer);
    int32_t pre = graph_op(sc->x->g, OP_EXPERT_DENSE, x_in, attr, 0, NULL, name);
    if (pre < 0 || sc->s->act == ACT_LINEAR) return pre;
    snprintf(name, sizeof name, "%s.dense%d.out", cn, sc->layer);
    return activation(sc->x, sc->s->act, pre, name);
}

static int32_t lower_stage_dense(const StageCtx *sc, int32_t h)
{
    Lowerer *L = sc->x->L;
    const char *cn = sc->c->name;
    int layer = sc->layer;
    char name[256];
    if (sc->c->kind == CHAIN_EXPERTS) return lower_experts_dense(sc, h);
    if (sc->p->kernel < 0) {
        MtrShape k =
            shape_mat(dim_const((int32_t)sc->s->in_width), dim_const((int32_t)sc->s->units));
        sc->p->kernel = param(L, k, MTR_INIT_GLOROT, 0, "%s.dense%d.kernel", cn, layer);
        sc->p->bias = param(L, shape_vec(dim_const((int32_t)sc->s->units), MTR_DT_F32),
                            MTR_INIT_ZEROS, 0, "%s.dense%d.bias", cn, layer);
        if (sc->p->kernel < 0 || sc->p->bias < 0) return -1;
    }
    int32_t mm_in[] = {h, sc->p->kernel};
    int32_t no_t[MTR_MAX_IATTR] = {0};
    snprintf(name, sizeof name, "%s.dense%d.mm", cn, layer);
    int32_t mm = graph_op(sc->x->g, OP_MATMUL, mm_in, no_t, 0, NULL, name);
    if (mm < 0) return -1;
    int32_t b_in[] = {mm, sc->p->bias};
    snprintf(name, sizeof name, "%s.dense%d.pre", cn, layer);
    int32_t pre = graph_op(sc->x->g, OP_BIAS_ADD, b_in, NULL, 0, NULL, name);
    if (pre < 0 || sc->s->act == ACT_LINEAR) return pre;
    snprintf(name, sizeof name, "%s.dense%d.out", cn, layer);
    return activation(sc->x, sc->s->act, pre, name);
}

/* Keras LayerNormalization over the last axis: gain (ones) and bias (zeros),
 * epsilon 1e-3 as Keras's default. */
static int32_t lower_stage_layer_norm(const StageCtx *sc, int32_t h)
{
    Lowerer *L = sc->x->L;
    char name[256];
    if (sc->p->kernel < 0) {
        MtrShape w = shape_vec(dim_const((int32_t)sc->s->in_width), MTR_DT_F32);
        sc->p->kernel =
            param(L, w, MTR_INIT_CONST, 1.0f, "%s.layer_norm%d.gain", sc->c->name, sc->layer);
        sc->p->bias =
            param(L, w, MTR_INIT_ZEROS, 0, "%s.layer_norm%d.bias", sc->c->name, sc->layer);
        if (sc->p->kernel < 0 || sc->p->bias < 0) return -1;
    }
    int32_t in[] = {h, sc->p->kernel, sc->p->bias};
    snprintf(name, sizeof name, "%s.layer_norm%d", sc->c->name, sc->layer);
    return graph_op(sc->x->g, OP_LAYER_NORM, in, NULL, 1e-3f, NULL, name);
}

/* Inverted dropout in train_step only (elsewhere the identity): its rate a
 * knob <chain>.dropout<i>.p, its mask hashed from train.seed, the step
 * counter and a salt of its own, so a run is the same at any thread count. */
static int32_t lower_stage_dropout(const StageCtx *sc, int32_t h)
{
    Lowerer *L = sc->x->L;
    char name[256];
    if (!sc->x->training) return h;
    if (sc->p->knob < 0) {
        snprintf(name, sizeof name, "%s.dropout%d.%s", sc->c->name, sc->layer,
                 mtr_knob_info(MTR_KNOB_DROPOUT_P)->name);
        sc->p->knob = module_knob(L->mod, MTR_KNOB_DROPOUT_P, name, sc->s->rate);
    }
    int32_t step = lower_step(L->mod, L->out);
    if (sc->p->knob < 0 || step < 0) return -1;
    int32_t in[] = {h, step};
    int32_t attr[MTR_MAX_IATTR] = {sc->p->knob, L->out->knob_of[MTR_KNOB_SEED],
                                   (int32_t)(sc->p - L->params)};
    snprintf(name, sizeof name, "%s.dropout%d", sc->c->name, sc->layer);
    return graph_op(sc->x->g, OP_DROPOUT, in, attr, 0, NULL, name);
}

typedef int32_t (*StageLowering)(const StageCtx *, int32_t);
static const StageLowering stage_lowerings[STAGE_COUNT] = {
#define X(E, n, args, place, width, ex) [STAGE_##E] = lower_stage_##n,
#include "stages.def"
#undef X
};

static int32_t lower_stage(Ctx *x, const AstChain *c, const AstStage *s, int layer, int32_t h)
{
    StageParams *p = stage_params(x->L, s);
    if (!p) return -1;
    StageCtx sc = {x, c, s, p, layer};
    return stage_lowerings[s->kind](&sc, h);
}

/* ---- combiners: one lower_combine_<name> per row of combiners.def --------
 * Each folds its sources' tensors (n of them, in order) into one. */
typedef int32_t (*CombineLowering)(Ctx *, const AstChain *, const int32_t *, int);

/* Folds the sources pairwise with a two-input op: concat(a, b, c) is
 * concat(concat(a, b), c). */
static int32_t fold(Ctx *x, const AstChain *c, const int32_t *t, int n, OpKind k, const char *what)
{
    char name[256];
    int32_t h = t[0];
    for (int i = 1; i < n && h >= 0; i++) {
        int32_t in[] = {h, t[i]};
        snprintf(name, sizeof name, "%s.%s", c->name, what);
        h = graph_op(x->g, k, in, NULL, 0, NULL, name);
    }
    return h;
}

static int32_t lower_combine_concat(Ctx *x, const AstChain *c, const int32_t *t, int n)
{
    return fold(x, c, t, n, OP_CONCAT, "concat");
}

static int32_t lower_combine_dot(Ctx *x, const AstChain *c, const int32_t *t, int n)
{
    return fold(x, c, t, n, OP_ROW_DOT, "dot");
}

static int32_t lower_combine_sum(Ctx *x, const AstChain *c, const int32_t *t, int n)
{
    return fold(x, c, t, n, OP_ADD, "sum");
}

/* mix(E1, E2, ...): a gate of the chain's own over the blocks' input,
 * dense(E) -> softmax over all E experts of the blocks, and each block's
 * experts mixed by its columns of the gate, the blocks' mixes summed (no
 * stacked copy of the experts). */
static int32_t lower_mix(Ctx *x, const AstChain *c, const AstSource *src, const int32_t *t, int n)
{
    Lowerer *L = x->L;
    char name[256];
    int32_t e = 0;
    const AstChain *first = src->members->ref->chain;
    for (const AstSource *m = src->members; m; m = m->next) e += m->ref->chain->n_experts;
    /* the gate reads what the experts read */
    int32_t gin =
        first->combine ? lower_source(x, first, first->combine) : lower_ref(x, first->sources);
    if (gin < 0) return -1;
    StageParams *p = stage_params(L, src);
    if (!p) return -1;
    if (p->kernel < 0) {
        p->layer_tag = ++L->n_gates;
        MtrShape gs = module_shape(L->mod, gin);
        p->kernel = param(L, shape_mat(gs.dim[1], dim_const(e)), MTR_INIT_GLOROT, 0,
                          "%s.gate%d.kernel", c->name, p->layer_tag);
        p->bias = param(L, shape_vec(dim_const(e), MTR_DT_F32), MTR_INIT_ZEROS, 0, "%s.gate%d.bias",
                        c->name, p->layer_tag);
        if (p->kernel < 0 || p->bias < 0) return -1;
    }
    int32_t mm_in[] = {gin, p->kernel};
    snprintf(name, sizeof name, "%s.gate%d.mm", c->name, p->layer_tag);
    int32_t mm = graph_op(x->g, OP_MATMUL, mm_in, NULL, 0, NULL, name);
    int32_t b_in[] = {mm, p->bias};
    snprintf(name, sizeof name, "%s.gate%d.pre", c->name, p->layer_tag);
    int32_t pre = mm < 0 ? -1 : graph_op(x->g, OP_BIAS_ADD, b_in, NULL, 0, NULL, name);
    int32_t s_in[] = {pre};
    snprintf(name, sizeof name, "%s.gate%d", c->name, p->layer_tag);
    int32_t gate = pre < 0 ? -1 : graph_op(x->g, OP_SOFTMAX, s_in, NULL, 0, NULL, name);
    if (gate < 0) return -1;
    int32_t y = -1, at = 0, k = 0;
    (void)n; /* t holds one block per member */
    for (const AstSource *m = src->members; m; m = m->next, k++) {
        int32_t ek = m->ref->chain->n_experts;
        int32_t m_in[] = {t[k], gate};
        int32_t attr[MTR_MAX_IATTR] = {ek, at, e};
        int last = !m->next;
        /* the last op gives the tensor the chain reads, named as a plain mix */
        if (last && k == 0)
            snprintf(name, sizeof name, "%s.mix%d", c->name, p->layer_tag);
        else
            snprintf(name, sizeof name, "%s.mix%d.%d", c->name, p->layer_tag, k + 1);
        int32_t part = graph_op(x->g, OP_MIX, m_in, attr, 0, NULL, name);
        if (part < 0) return -1;
        if (k > 0) {
            int32_t a_in[] = {y, part};
            if (last)
                snprintf(name, sizeof name, "%s.mix%d", c->name, p->layer_tag);
            else
                snprintf(name, sizeof name, "%s.mix%d.sum%d", c->name, p->layer_tag, k);
            part = graph_op(x->g, OP_ADD, a_in, NULL, 0, NULL, name);
            if (part < 0) return -1;
        }
        y = part;
        at += ek;
    }
    return y;
}

static int32_t lower_combine_product(Ctx *x, const AstChain *c, const int32_t *t, int n)
{
    return fold(x, c, t, n, OP_PROB_PRODUCT, "product");
}

/* mix needs its sources' declarations, not only their tensors (lower_mix) */
#define lower_combine_mix NULL

static const CombineLowering combine_lowerings[COMB_COUNT] = {
#define X(E, n, lo, hi, width, out) [COMB_##E] = lower_combine_##n,
#include "combiners.def"
#undef X
};

/* A source of chain c: a name, or a combiner over its sources' tensors. */
static int32_t lower_source(Ctx *x, const AstChain *c, const AstSource *src)
{
    if (src->combiner < 0) return lower_ref(x, src->ref);
    for (uint32_t i = 0; i < x->n_combined; i++)
        if (x->combined[i] == src) return x->combined_out[i];
    int32_t out = lower_combined(x, c, src);
    if (out >= 0 && x->n_combined < 64) {
        x->combined[x->n_combined] = src;
        x->combined_out[x->n_combined++] = out;
    }
    return out;
}

static int32_t lower_combined(Ctx *x, const AstChain *c, const AstSource *src)
{
    int32_t t[64];
    int n = 0;
    for (const AstSource *m = src->members; m; m = m->next) {
        if (n == 64) {
            module_fail(x->L->mod, "'%s': more than 64 sources in one combiner", c->name);
            return -1;
        }
        if ((t[n++] = lower_source(x, c, m)) < 0) return -1;
    }
    if (src->combiner == COMB_MIX) return lower_mix(x, c, src, t, n);
    return combine_lowerings[src->combiner](x, c, t, n);
}

static int32_t lower_chain(Ctx *x, const AstChain *c)
{
    for (uint32_t i = 0; i < x->n_chains; i++)
        if (x->chain[i] == c) return x->chain_out[i];
    int32_t h = c->combine                         ? lower_source(x, c, c->combine)
                : c->feat.column && !c->feat.plain ? feature_input(x, c)
                                                   : lower_ref(x, c->sources);
    if (h < 0) return -1;
    int layer = 1;
    for (const AstStage *s = c->stages; s; s = s->next) {
        h = lower_stage(x, c, s, layer, h);
        if (h < 0) return -1;
        if (ast_stage_info(s->kind)->place == PLACE_HIDDEN) layer++;
    }
    if (x->n_chains == 64) {
        module_fail(x->L->mod, "more than 64 chains in one program");
        return -1;
    }
    x->chain[x->n_chains] = c;
    x->chain_out[x->n_chains++] = h;
    return h;
}

/* The train step counter, a saved () tensor that train_step increments once
 * per step among its updates (autodiff_updates adds the increment). Made on
 * first use; optimizers and stages that need the step share it. */
int32_t lower_step(Module *mod, Lowered *out)
{
    if (out->step >= 0) return out->step;
    out->step = module_tensor(mod, "optimizer.iterations", MTR_ROLE_OPTSTATE, shape_scalar());
    if (out->step >= 0) mod->m->tensors[out->step].init = MTR_INIT_ZEROS;
    return out->step;
}

static void ctx_init(Ctx *x, Lowerer *L, Graph *g, int32_t rows_sym, MtrSource source)
{
    memset(x, 0, sizeof *x);
    x->training = g == &L->out->prog[PROG_TRAIN];
    x->L = L;
    x->g = g;
    x->rows = dim_sym(rows_sym);
    x->source = source;
}

int lower_add_output(Lowered *l, int p, MtrOutputRole role, int32_t task, int32_t t, int32_t param)
{
    MtrOutput *o = realloc(l->outputs[p], (l->n_outputs[p] + 1) * sizeof *o);
    if (!o) return -1;
    o[l->n_outputs[p]++] = (MtrOutput){(uint8_t)role, task, t, param};
    l->outputs[p] = o;
    return 0;
}

/* The first column a chain reads, following its sources down to an input. */
static const AstColumn *chain_column(const AstChain *c)
{
    for (const AstRef *r = c->sources; r; r = r->next) {
        if (r->column) return r->column;
        const AstColumn *k = chain_column(r->chain);
        if (k) return k;
    }
    return NULL;
}

static const MtrFeature FEATURE_KINDS[] = {
    [FEAT_LOOKUP] = MTR_FEAT_LOOKUP,         [FEAT_HASH] = MTR_FEAT_HASH,
    [FEAT_DISCRETIZE] = MTR_FEAT_DISCRETIZE, [FEAT_BUCKETIZE] = MTR_FEAT_BUCKETIZE,
    [FEAT_NORMALIZE] = MTR_FEAT_NORMALIZE,
};

/* A model column for each distinct feature the chains compute (the plain
 * `lookup -> embedding` of one value reads its column as it is). */
static int add_feature_columns(Lowerer *L)
{
    MtrModel *m = L->mod->m;
    for (const AstChain *c = L->ast->chains; c; c = c->next) {
        const AstFeature *f = &c->feat;
        if (!f->column || f->plain) continue;
        int32_t have = mtr_model_find_column(m, f->name);
        if (have >= 0) {
            m->columns[have].is_item |= (uint8_t)c->is_item;
            continue;
        }
        MtrColumn mc = {0};
        mc.name = (char *)f->name;
        mc.type = f->kind == FEAT_NORMALIZE ? MTR_COL_FLOAT : MTR_COL_STRING;
        mc.is_item = (uint8_t)c->is_item;
        mc.vocab_sym = -1;
        mc.derived_from = -1;
        mc.feature = (uint8_t)FEATURE_KINDS[f->kind];
        mc.tokens = (uint8_t)f->tokens;
        mc.is_list = (uint8_t)f->is_list;
        mc.feature_of = column_index(L->ast, f->column);
        mc.feature_arg = (int32_t)(f->kind == FEAT_BUCKETIZE ? f->n_bounds : f->arg);
        mc.lookup = f->kind == FEAT_LOOKUP;
        if (f->kind == FEAT_BUCKETIZE) {
            /* explicit boundaries are the model's own statistics from the start */
            mc.n_stats = (uint32_t)f->n_bounds;
            mc.stats = malloc((size_t)f->n_bounds * sizeof *mc.stats);
            if (!mc.stats) {
                module_fail(L->mod, "out of memory");
                return -1;
            }
            for (int i = 0; i < f->n_bounds; i++) mc.stats[i] = (float)f->bounds[i];
        }
        int32_t idx = module_column(L->mod, &mc);
        if (idx < 0) {
            free(mc.stats);
            return -1;
        }
        if (mc.lookup)
            m->columns[idx].vocab_sym = module_symbol(L->mod, MTR_SYM_VOCAB, idx, mc.name);
    }
    return 0;
}

static int add_columns(Lowerer *L)
{
    int32_t index = 0;
    for (const AstColumn *c = L->ast->columns; c; c = c->next, index++) {
        MtrColumn mc = {0};
        mc.name = (char *)c->name;
        mc.type = c->type == TY_STRING ? MTR_COL_STRING
                  : c->type == TY_INT  ? MTR_COL_INT
                                       : MTR_COL_FLOAT;
        mc.is_label = (uint8_t)c->is_label;
        mc.lookup = (uint8_t)c->looked_up;
        mc.is_item = (uint8_t)c->is_item;
        mc.vocab_sym = -1;
        mc.derived_from = c->from ? column_index(L->ast, c->from) : -1;
        mc.compare = (uint8_t)(c->from ? c->compare : MTR_CMP_NONE);
        mc.threshold = c->from ? (float)c->threshold : 0.0f;
        if (c->looked_up) mc.vocab_sym = module_symbol(L->mod, MTR_SYM_VOCAB, index, c->name);
        if (module_column(L->mod, &mc) < 0) return -1;
    }
    if (add_feature_columns(L) < 0) return -1;
    if (L->ast->user_column) { /* sema's choice (mark_user) */
        int32_t u = mtr_model_find_column(L->mod->m, L->ast->user_column);
        MtrColumn *uc = u >= 0 ? &L->mod->m->columns[u] : NULL;
        if (uc && uc->lookup && !uc->is_item && !uc->is_label) uc->is_user = 1;
    }
    return 0;
}

/* A model-wide knob, named by its row. */
static int32_t model_knob(Module *mod, MtrKnobKind kind, double value)
{
    return module_knob(mod, kind, mtr_knob_info(kind)->name, value);
}

/* The optimizer's options (optimizer_options.def) and the train settings
 * (settings.def), each a model-wide knob with the value sema resolved. */
static int add_train_knobs(Lowerer *L, Lowered *out)
{
    const AstTrain *t = &L->ast->train;
    Module *mod = L->mod;
    out->optimizer = t->optimizer;
    for (size_t k = 0; k < MTR_KNOB_KINDS; k++) out->knob_of[k] = -1;
#define X(OPT, n, alias, knob, emb, dflt)                                                          \
    if (t->optimizer == OPT_##OPT)                                                                 \
        out->knob_of[MTR_KNOB_##knob] = model_knob(mod, MTR_KNOB_##knob, t->value[MTR_KNOB_##knob]);
#include "optimizer_options.def"
#undef X
#define SETTING_ALWAYS 1
#define SETTING_GIVEN  0
#define X(E, n, knob, dflt, when)                                                                  \
    if (SETTING_##when || t->given[MTR_KNOB_##knob])                                               \
        out->knob_of[MTR_KNOB_##knob] = model_knob(mod, MTR_KNOB_##knob, t->value[MTR_KNOB_##knob]);
#include "settings.def"
#undef X
    /* The rest of the train block (optimizer_embedding's options, decay,
     * early_stop, patience): each model-wide knob it gives. */
    out->emb_optimizer = t->emb_optimizer_name ? t->emb_optimizer : OPT_COUNT;
    for (size_t k = 0; k < MTR_KNOB_KINDS; k++) {
        const MtrKnobInfo *info = mtr_knob_info((MtrKnobKind)k);
        if (info && info->scope == MTR_SCOPE_MODEL && t->given[k] && out->knob_of[k] < 0)
            out->knob_of[k] = model_knob(mod, (MtrKnobKind)k, t->value[k]);
    }
    return mod->failed ? -1 : 0;
}

/* The programs a task lowers into, and what lowering has made so far. */
typedef struct {
    Lowerer *L;
    Ctx *train, *eval, *pred, *items, *rec;
    Lowered *out;
    int first_retrieval; /* recommend serves the first retrieval task */
} Progs;

/* ---- tasks: one lower_task_<name> per row of tasks.def ------------------
 * Each lowers its task into the programs, lists its typed outputs, and returns
 * its unweighted loss in train_step (or -1); lower_model weighs and sums them. */

/* A ranking task: its loss in training, the prediction in evaluation and predict. */
static int32_t lower_task_ranking(Progs *P, const AstTask *t, int32_t task, MtrTask *mt)
{
    Lowerer *L = P->L;
    const AstChain *head = t->args->chain;
    const AstColumn *label = t->args->next->column;
    const LossInfo *loss_row = ast_loss_info(t->loss);
    char name[256];
    snprintf(mt->about, ABOUT_MAX, "ranking, loss %s", loss_row->name);
    mt->label_column = column_index(L->ast, label);

    int32_t p = lower_chain(P->train, head);
    int32_t y = column_input(P->train, label);
    if (p < 0 || y < 0) return -1;
    int32_t in[] = {p, y};
    snprintf(name, sizeof name, "%s.loss", t->name);
    /* A head that gives probabilities (a product) has its loss read them as such. */
    OpKind loss_op = head->is_probability ? loss_row->prob_op : loss_row->op;
    if (loss_op == OP_COUNT) {
        module_fail(L->mod, "task '%s': loss %s has no form for probabilities", t->name,
                    loss_row->name);
        return -1;
    }
    int32_t loss = graph_op(P->train->g, loss_op, in, NULL, 0, NULL, name);
    if (loss < 0) return -1;

    /* Evaluation and predict report probabilities for a logistic head. */
    P->out->present[PROG_PREDICT] = 1;
    Ctx *views[] = {P->eval, P->pred};
    int progs[] = {PROG_EVAL, PROG_PREDICT};
    for (int v = 0; v < 2; v++) {
        int32_t h = lower_chain(views[v], head);
        if (h < 0) return -1;
        if (loss_row->output == OUTPUT_PROBABILITY && !head->is_probability) {
            int32_t s_in[] = {h};
            snprintf(name, sizeof name, "%s.probability", t->name);
            if ((h = graph_op(views[v]->g, OP_SIGMOID, s_in, NULL, 0, NULL, name)) < 0) return -1;
        }
        if (lower_add_output(P->out, progs[v], MTR_OUT_PREDICTION, task, h, -1)) return -1;
    }
    return loss; /* the runtime compares predictions with labels it read itself */
}

/* Mixed negatives (`negatives N`): the runtime feeds train_step N sampled
 * vocabulary ids of the candidate's key column (source negatives) and the log
 * of their sampling probability (negatives_logq); the candidate tower is
 * lowered a second time over those N rows, sharing its parameters, and
 * inbatch_softmax_xent_mixed scores them beside the batch's candidates. The
 * tower may read only its key column: the runtime knows no other column of
 * an item it did not read from a row. */
static int32_t lower_mixed_negatives(Progs *P, const AstTask *t, int32_t q, int32_t c, int32_t ids,
                                     int32_t logq, int32_t *knobs)
{
    Lowerer *L = P->L;
    Module *mod = L->mod;
    char name[256];
    const AstChain *cand = t->args->next->chain;
    const AstColumn *key = chain_column(cand);
    Ctx neg;
    ctx_init(&neg, L, P->train->g, L->sym_batch, MTR_SRC_NEGATIVES);
    neg.rows = dim_const((int32_t)t->negatives);
    int32_t nc = lower_chain(&neg, cand);
    if (nc < 0) return -1;
    if (neg.n_feat || neg.n_columns != 1 || neg.column[0] != key)
        return module_fail(mod,
                           "task '%s': negatives need a candidate tower that reads only its "
                           "key column '%s'",
                           t->name, key->name),
               -1;
    int32_t nkey = neg.column_in[0];
    int32_t nlogq =
        module_tensorf(mod, MTR_ROLE_INPUT, shape_vec(dim_const((int32_t)t->negatives), MTR_DT_F32),
                       "negatives_logq.%s", key->name);
    if (nlogq < 0) return -1;
    set_source(mod, nlogq, MTR_SRC_NEG_LOGQ, column_index(L->ast, key));
    snprintf(name, sizeof name, "%s.negatives", t->name);
    if ((knobs[3] = module_knob(mod, MTR_KNOB_NEGATIVES, name, (double)t->negatives)) < 0)
        return -1;
    snprintf(name, sizeof name, "%s.popularity", t->name);
    if ((knobs[4] = module_knob(mod, MTR_KNOB_POPULARITY, name, t->popularity)) < 0) return -1;
    int32_t in[] = {q, c, ids, logq, nc, nkey, nlogq};
    snprintf(name, sizeof name, "%s.loss", t->name);
    int32_t loss = graph_op(P->train->g, OP_INBATCH_SOFTMAX_XENT_MIXED, in, knobs, 0, NULL, name);
    if (loss < 0) return -1;
    static const char *const what[] = {"dquery_unit", "dcandidate_unit", "dnegative_unit",
                                       "workspace", "negatives_workspace"};
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof name, "%s.%s", t->name, what[k]);
        if (module_rename(mod, loss + 1 + k, name)) return -1;
    }
    return loss;
}

/* A retrieval task with options (temperature, logq, remove_accidental_hits):
 * one inbatch_softmax_xent_opt over the query and candidate rows, the
 * candidate's key ids and their logq, each option a knob of the task (those
 * not written start off: temperature 1, logq 0, remove_accidental_hits 0). */
static int32_t lower_retrieval_options(Progs *P, const AstTask *t, int32_t q, int32_t c)
{
    Lowerer *L = P->L;
    Module *mod = L->mod;
    char name[256];
    const AstColumn *key = chain_column(t->args->next->chain);
    if (!key) return module_fail(mod, "task '%s': its candidate reads no column", t->name), -1;
    int32_t ids = column_input(P->train, key);
    int32_t logq = module_tensorf(mod, MTR_ROLE_INPUT, shape_vec(dim_sym(L->sym_batch), MTR_DT_F32),
                                  "logq.%s", key->name);
    if (ids < 0 || logq < 0) return -1;
    if (t->logq_column) /* logq(counts = COLUMN): the probabilities from that column */
        set_source(mod, logq, MTR_SRC_LOGQ_COUNTS, column_index(L->ast, t->logq_column));
    else
        set_source(mod, logq, MTR_SRC_LOGQ, column_index(L->ast, key));
    static const MtrKnobKind kinds[3] = {MTR_KNOB_TEMPERATURE, MTR_KNOB_LOGQ,
                                         MTR_KNOB_ACCIDENTAL_HITS};
    double values[3] = {t->temperature, t->logq, t->remove_hits};
    int32_t knobs[MTR_MAX_IATTR] = {0};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s.%s", t->name, mtr_knob_info(kinds[k])->name);
        if ((knobs[k] = module_knob(mod, kinds[k], name, values[k])) < 0) return -1;
    }
    if (t->negatives) return lower_mixed_negatives(P, t, q, c, ids, logq, knobs);
    int32_t in[] = {q, c, ids, logq};
    snprintf(name, sizeof name, "%s.loss", t->name);
    int32_t loss = graph_op(P->train->g, OP_INBATCH_SOFTMAX_XENT_OPT, in, knobs, 0, NULL, name);
    if (loss < 0) return -1;
    static const char *const what[] = {"dquery_unit", "dcandidate_unit", "workspace"};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s.%s", t->name, what[k]);
        if (module_rename(mod, loss + 1 + k, name)) return -1;
    }
    return loss;
}

/* A retrieval task: in-batch softmax in training, ranks against every item in
 * evaluation, the item embeddings in embed_items, top k in recommend. */
static int32_t lower_task_retrieval(Progs *P, const AstTask *t, int32_t task, MtrTask *mt)
{
    Lowerer *L = P->L;
    Ctx *train = P->train, *eval = P->eval, *items = P->items, *rec = P->rec;
    Lowered *out = P->out;
    const AstChain *query = t->args->chain, *cand = t->args->next->chain;
    Module *mod = L->mod;
    char name[256];
    snprintf(mt->about, ABOUT_MAX, "retrieval, loss in-batch softmax");
    mt->label_column = -1;
    if (L->sym_items < 0) {
        L->sym_items = module_symbol(mod, MTR_SYM_ITEMS, -1, NULL);
        L->sym_k = module_symbol(mod, MTR_SYM_K, -1, NULL);
        items->rows = dim_sym(L->sym_items);
    }

    int32_t q = lower_chain(train, query), c = lower_chain(train, cand);
    if (q < 0 || c < 0) return -1;
    int32_t bt[MTR_MAX_IATTR] = {0, 1};
    int32_t loss = t->has_temperature || t->logq || t->remove_hits || t->negatives
                       ? lower_retrieval_options(P, t, q, c)
                       : -1;
    if (loss < 0 && !(t->has_temperature || t->logq || t->remove_hits || t->negatives)) {
        int32_t s_in[] = {q, c};
        snprintf(name, sizeof name, "%s.scores", t->name);
        int32_t scores = graph_op(train->g, OP_MATMUL, s_in, bt, 0, NULL, name);
        if (scores < 0) return -1;
        int32_t x_in[] = {scores};
        snprintf(name, sizeof name, "%s.loss", t->name);
        loss = graph_op(train->g, ast_loss_info(t->loss)->op, x_in, NULL, 0, NULL, name);
    }
    if (loss < 0) return -1;

    /* The candidate tower over every item, kept between programs. */
    int32_t width = (int32_t)cand->width;
    int32_t state =
        module_tensorf(mod, MTR_ROLE_STATE, shape_mat(dim_sym(L->sym_items), dim_const(width)),
                       "%s.item_embeddings", t->name);
    Graph *ig = items->g;
    uint32_t before = ig->n_ops;
    int32_t ci = lower_chain(items, cand);
    if (state < 0 || ci < 0) return -1;
    if (ig->n_ops > before && ig->ops[ig->n_ops - 1].out[0] == ci) {
        /* Computed just now: its last op writes straight into the kept buffer,
         * and later chains over it (another task's candidate) read that. */
        ig->ops[ig->n_ops - 1].out[0] = state;
        for (uint32_t i = 0; i < items->n_chains; i++)
            if (items->chain_out[i] == ci) items->chain_out[i] = state;
    } else {
        /* Already computed for another task (the same candidate, or a tower
         * it reads): copy it, all its columns, into this task's buffer. */
        int32_t in[] = {ci};
        int32_t cols[MTR_MAX_IATTR] = {0, width};
        snprintf(name, sizeof name, "%s.item_copy", t->name);
        if (graph_op(ig, OP_SLICE_COLS, in, cols, 0, NULL, name) < 0) return -1;
        ig->ops[ig->n_ops - 1].out[0] = state;
    }
    if (lower_add_output(out, PROG_EMBED_ITEMS, MTR_OUT_ITEM_VECTORS, task, state, -1)) return -1;

    const AstColumn *key = chain_column(cand);
    int32_t qe = lower_chain(eval, query);
    int32_t row = module_tensorf(mod, MTR_ROLE_INPUT, shape_vec(dim_sym(L->sym_batch), MTR_DT_I32),
                                 "true_row.%s", key ? key->name : "?");
    if (qe < 0 || row < 0) return -1;
    set_source(mod, row, MTR_SRC_TRUE_ROW, column_index(L->ast, key));
    int32_t r_in[] = {qe, state, row};
    snprintf(name, sizeof name, "%s.rank", t->name);
    int32_t rank = graph_op(eval->g, OP_RETRIEVAL_RANK, r_in, NULL, 0, NULL, name);
    if (rank < 0 || lower_add_output(out, PROG_EVAL, MTR_OUT_RANK, task, rank, -1)) return -1;

    /* recommend serves every retrieval task: the first under the names
     * "recommend.*", the others under "<task>.recommend.*" (mtrun --task) */
    int first = P->first_retrieval;
    P->first_retrieval = 0;
    char prefix[200] = "";
    if (!first) snprintf(prefix, sizeof prefix, "%s.", t->name);
    int32_t qr = lower_chain(rec, query);
    if (qr < 0) return -1;
    int32_t sc_in[] = {qr, state};
    snprintf(name, sizeof name, "%srecommend.scores", prefix);
    int32_t sc = graph_op(rec->g, OP_MATMUL, sc_in, bt, 0, NULL, name);
    if (sc < 0) return -1;
    MtrShape decl[2];
    decl[0] = (MtrShape){
        .rank = 2, .dtype = MTR_DT_I32, .dim = {dim_sym(L->sym_batch), dim_sym(L->sym_k)}};
    decl[1] = shape_mat(dim_sym(L->sym_batch), dim_sym(L->sym_k));
    int32_t k_in[] = {sc};
    snprintf(name, sizeof name, "%srecommend.index", prefix);
    int32_t idx = graph_op(rec->g, OP_TOP_K, k_in, NULL, 0, decl, name);
    snprintf(name, sizeof name, "%srecommend.score", prefix);
    if (idx < 0 || module_rename(mod, idx + 1, name)) return -1;
    out->present[PROG_RECOMMEND] = 1;
    out->present[PROG_EMBED_ITEMS] = 1;
    if (lower_add_output(out, PROG_RECOMMEND, MTR_OUT_TOP_INDEX, task, idx, -1) ||
        lower_add_output(out, PROG_RECOMMEND, MTR_OUT_TOP_SCORE, task, idx + 1, -1))
        return -1;
    return loss;
}

typedef int32_t (*TaskLowering)(Progs *, const AstTask *, int32_t, MtrTask *);
static const TaskLowering task_lowerings[TASK_COUNT] = {
#define X(E, n, args, reads, loss) [TASK_##E] = lower_task_##n,
#include "tasks.def"
#undef X
};

/* Adds k to the task's increasing k list unless it is there (or the list is full). */
static void merge_k(MtrTask *mt, int32_t k)
{
    uint32_t at = 0;
    while (at < mt->n_ks && mt->ks[at] < k) at++;
    if ((at < mt->n_ks && mt->ks[at] == k) || mt->n_ks >= MTR_MAX_KS) return;
    memmove(&mt->ks[at + 1], &mt->ks[at], (mt->n_ks - at) * sizeof *mt->ks);
    mt->ks[at] = k;
    mt->n_ks++;
}

/* Lowers task t (number `task`): its own lowering, then its weighted loss. */

static int32_t lower_task(Progs *P, const AstTask *t, int32_t task, MtrTask *mt)
{
    char name[256];
    int metric = ast_loss_info(t->loss)->metric;
    mt->loss_metric = metric < MTR_METRIC_COUNT ? metric : -1;
    mt->sample_knob = -1;
    if (t->has_sample) {
        snprintf(name, sizeof name, "%s.%s", t->name, mtr_knob_info(MTR_KNOB_SAMPLE)->name);
        if ((mt->sample_knob = module_knob(P->L->mod, MTR_KNOB_SAMPLE, name, t->sample)) < 0)
            return -1;
    }
    int32_t loss = task_lowerings[t->kind](P, t, task, mt);
    if (loss < 0 || lower_add_output(P->out, PROG_TRAIN, MTR_OUT_TASK_LOSS, task, loss, -1))
        return -1;
    if (t->weight_auto) {
        /* exp(-s) loss + s, s the task's log-variance, learned (Kendall et al. 2018) */
        int32_t s = param(P->L, shape_vec(dim_const(1), MTR_DT_F32), MTR_INIT_ZEROS, 0,
                          "%s.log_variance", t->name, 0);
        int32_t u_in[] = {loss, s};
        snprintf(name, sizeof name, "%s.uncertain_loss", t->name);
        if (s < 0 ||
            (loss = graph_op(P->train->g, OP_UNCERTAINTY, u_in, NULL, 0, NULL, name)) < 0 ||
            lower_add_output(P->out, PROG_TRAIN, MTR_OUT_LOG_VARIANCE, task, s, -1))
            return -1;
    }
    int32_t w_in[] = {loss};
    int32_t w_attr[MTR_MAX_IATTR] = {mt->weight_knob};
    snprintf(name, sizeof name, "%s.weighted_loss", t->name);
    return graph_op(P->train->g, OP_LOSS_WEIGHT, w_in, w_attr, 0, NULL, name);
}

/* Adds knob * sum(x^2) for x in xs (n of them) to the total loss. */
static int32_t add_penalty(Lowerer *L, Graph *g, int32_t total, const int32_t *xs, int n,
                           int32_t knob, const char *what)
{
    char name[256];
    for (int i = 0; i < n && total >= 0; i++) {
        int32_t in[] = {xs[i]};
        snprintf(name, sizeof name, "%s.%s", L->mod->m->tensors[xs[i]].name, what);
        int32_t sq = graph_op(g, OP_SUM_SQUARES, in, NULL, 0, NULL, name);
        int32_t w_in[] = {sq};
        int32_t w_attr[MTR_MAX_IATTR] = {knob};
        int32_t pen = sq < 0 ? -1 : graph_op(g, OP_LOSS_WEIGHT, w_in, w_attr, 0, NULL, name);
        int32_t a_in[] = {total, pen};
        total = pen < 0 ? -1 : graph_op(g, OP_ADD, a_in, NULL, 0, NULL, "loss_sum");
    }
    return total;
}

/* The train block's L2 terms, when it gives them (Keras's L2: l * sum(x^2)):
 * l2_dense over every dense kernel (experts' and gates' too, not biases);
 * l2_embedding over the embedding rows each batch looks up (as TF's
 * regularizers on looked-up rows: a row counts once per time it is read). */
static int32_t add_l2(Lowerer *L, Ctx *train, int32_t total)
{
    const int32_t *k = L->out->knob_of;
    int32_t xs[256];
    int n = 0;
    if (k[MTR_KNOB_L2_DENSE] >= 0) {
        for (uint32_t i = 0; i < L->n_params && n < 256; i++) {
            int32_t t = L->params[i].kernel;
            if (t >= 0 && L->mod->m->tensors[t].init == MTR_INIT_GLOROT) xs[n++] = t;
        }
        total = add_penalty(L, train->g, total, xs, n, k[MTR_KNOB_L2_DENSE], "l2");
    }
    n = 0;
    if (total >= 0 && k[MTR_KNOB_L2_EMBEDDING] >= 0) {
        uint32_t n_ops = train->g->n_ops;
        for (uint32_t i = 0; i < n_ops && n < 256; i++)
            if (train->g->ops[i].kind == OP_GATHER) xs[n++] = train->g->ops[i].out[0];
        total = add_penalty(L, train->g, total, xs, n, k[MTR_KNOB_L2_EMBEDDING], "l2");
    }
    return total;
}

int lower_model(const AstModel *m, Module *mod, Lowered *out)
{
    Lowerer L = {.mod = mod, .ast = m, .out = out};
    memset(out, 0, sizeof *out);
    out->step = -1;
    for (int p = 0; p < PROG_COUNT; p++) graph_init(&out->prog[p], mod);
    out->present[PROG_TRAIN] = out->present[PROG_EVAL] = 1;

    L.sym_batch = module_symbol(mod, MTR_SYM_BATCH, -1, NULL);
    L.sym_items = L.sym_k = -1; /* made by the first retrieval task: others read no items */
    if (add_columns(&L)) goto fail;

    /* Knobs: each task's weight first, then the optimizer, then the run. */
    for (const AstTask *t = m->tasks; t; t = t->next) {
        char name[256];
        snprintf(name, sizeof name, "%s.%s", t->name, mtr_knob_info(MTR_KNOB_WEIGHT)->name);
        module_knob(mod, MTR_KNOB_WEIGHT, name, t->has_weight ? t->weight : 1.0);
    }
    if (add_train_knobs(&L, out)) goto fail;

    Ctx train, eval, pred, items, rec;
    ctx_init(&train, &L, &out->prog[PROG_TRAIN], L.sym_batch, MTR_SRC_COLUMN);
    ctx_init(&eval, &L, &out->prog[PROG_EVAL], L.sym_batch, MTR_SRC_COLUMN);
    ctx_init(&pred, &L, &out->prog[PROG_PREDICT], L.sym_batch, MTR_SRC_COLUMN);
    ctx_init(&items, &L, &out->prog[PROG_EMBED_ITEMS], L.sym_items, MTR_SRC_ITEMS);
    ctx_init(&rec, &L, &out->prog[PROG_RECOMMEND], L.sym_batch, MTR_SRC_COLUMN);

    int32_t total = -1;
    int knob = 0;
    Progs P = {&L, &train, &eval, &pred, &items, &rec, out, 1};
    for (const AstTask *t = m->tasks; t; t = t->next, knob++) {
        MtrTask mt = {0};
        char about[ABOUT_MAX] = "";
        mt.name = (char *)t->name;
        mt.about = about;
        mt.weight_knob = knob;
        for (const AstMetric *me = t->metrics; me; me = me->next) {
            mt.metrics |= 1u << me->kind;
            if (!mtr_metric_takes_k((unsigned)me->kind)) continue;
            /* A task's k-taking metrics share one list: the union of their k values
             * (sema keeps it within MTR_MAX_KS). */
            for (int i = 0; i < me->n_ks; i++) merge_k(&mt, (int32_t)me->ks[i]);
        }
        int32_t weighted = lower_task(&P, t, knob, &mt);
        if (weighted < 0 || module_task(mod, &mt) < 0) goto fail;
        if (total < 0) {
            total = weighted;
        } else {
            int32_t in[] = {total, weighted};
            if ((total = graph_op(train.g, OP_ADD, in, NULL, 0, NULL, "loss_sum")) < 0) goto fail;
        }
    }
    if (total < 0) {
        module_fail(mod, "the model has no task");
        goto fail;
    }
    if ((total = add_l2(&L, &train, total)) < 0) goto fail;
    if (module_rename(mod, total, "loss")) goto fail;
    out->loss = total;
    if (lower_add_output(out, PROG_TRAIN, MTR_OUT_LOSS, -1, total, -1)) goto fail;
    free(L.params);
    return mod->failed ? -1 : 0;
fail:
    free(L.params);
    if (!mod->failed) module_fail(mod, "out of memory");
    return -1;
}

void lower_free(Lowered *l)
{
    for (int p = 0; p < PROG_COUNT; p++) {
        graph_free(&l->prog[p]);
        free(l->outputs[p]);
        l->outputs[p] = NULL;
    }
}
