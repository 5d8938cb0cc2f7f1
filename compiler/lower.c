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

const char *const lower_program_names[PROG_COUNT] = {
    [PROG_TRAIN] = "train_step",        [PROG_EVAL] = "eval_step",      [PROG_PREDICT] = "predict",
    [PROG_EMBED_ITEMS] = "embed_items", [PROG_RECOMMEND] = "recommend",
};

/* One stage's parameters, shared by every lowering of its chain. */
typedef struct {
    const AstStage *stage;
    int32_t table, kernel, bias;
} StageParams;

typedef struct {
    Module *mod;
    const AstModel *ast;
    int32_t sym_batch, sym_items, sym_k;
    StageParams *params;
    uint32_t n_params, cap_params;
} Lowerer;

/* The state of lowering chains inside one program. */
typedef struct {
    Lowerer *L;
    Graph *g;
    MtrDim rows;
    const char *source; /* "column" or "items" */
    const AstChain *chain[64];
    int32_t chain_out[64];
    uint32_t n_chains;
    const AstColumn *column[64];
    int32_t column_in[64];
    uint32_t n_columns;
} Ctx;

static int column_index(const AstModel *m, const AstColumn *c)
{
    int i = 0;
    for (const AstColumn *k = m->columns; k; k = k->next, i++)
        if (k == c) return i;
    return -1;
}

static StageParams *stage_params(Lowerer *L, const AstStage *s)
{
    for (uint32_t i = 0; i < L->n_params; i++)
        if (L->params[i].stage == s) return &L->params[i];
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
    *p = (StageParams){s, -1, -1, -1};
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

/* Sets what the runtime feeds input t: "kind:column". */
static int set_source(Module *mod, int32_t t, const char *kind, const char *column)
{
    MtrTensor *ten = &mod->m->tensors[t];
    size_t n = strlen(kind) + strlen(column) + 2;
    char *s = malloc(n);
    if (!s) {
        module_fail(mod, "out of memory");
        return -1;
    }
    snprintf(s, n, "%s:%s", kind, column);
    free(ten->source);
    ten->source = s;
    return 0;
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
    int32_t t =
        module_tensorf(mod, MTR_ROLE_INPUT, shape_vec(x->rows, dt), "%s.%s", x->source, c->name);
    if (t < 0 || set_source(mod, t, x->source, c->name)) return -1;
    x->column[x->n_columns] = c;
    x->column_in[x->n_columns++] = t;
    return t;
}

static int32_t activation(Ctx *x, Activation act, int32_t h, const char *name)
{
    OpKind k;
    switch (act) {
    case ACT_RELU:
        k = OP_RELU;
        break;
    case ACT_TANH:
        k = OP_TANH;
        break;
    case ACT_SIGMOID:
        k = OP_SIGMOID;
        break;
    default:
        return h;
    }
    int32_t in[] = {h};
    return graph_op(x->g, k, in, NULL, 0, NULL, name);
}

static int32_t lower_chain(Ctx *x, const AstChain *c);

static int32_t lower_ref(Ctx *x, const AstRef *r)
{
    if (r->chain) return lower_chain(x, r->chain);
    /* A column feeds a chain directly only through lookup -> embedding. */
    return column_input(x, r->column);
}

static int32_t lower_stage(Ctx *x, const AstChain *c, const AstStage *s, int layer, int32_t h)
{
    Lowerer *L = x->L;
    StageParams *p = stage_params(L, s);
    char name[256];
    if (!p) return -1;
    switch (s->kind) {
    case STAGE_LOOKUP:
        return h; /* the ids are already vocabulary ids: the runtime looks them up at the edge */
    case STAGE_EMBEDDING: {
        if (p->table < 0) {
            const AstColumn *col = c->sources->column;
            char vname[256];
            snprintf(vname, sizeof vname, "vocab.%s", col ? col->name : "?");
            int32_t sym = module_symbol(L->mod, vname);
            MtrShape sh = shape_mat(dim_sym(sym), dim_const((int32_t)s->units));
            p->table = param(L, sh, MTR_INIT_UNIFORM, 0.05f, "%s.embedding", c->name, 0);
            if (p->table < 0) return -1;
        }
        int32_t in[] = {p->table, h};
        snprintf(name, sizeof name, "%s.embedded", c->name);
        return graph_op(x->g, OP_GATHER, in, NULL, 0, NULL, name);
    }
    case STAGE_DENSE: {
        if (p->kernel < 0) {
            MtrShape k = shape_mat(dim_const((int32_t)s->in_width), dim_const((int32_t)s->units));
            p->kernel = param(L, k, MTR_INIT_GLOROT, 0, "%s.dense%d.kernel", c->name, layer);
            p->bias = param(L, shape_vec(dim_const((int32_t)s->units), MTR_DT_F32), MTR_INIT_ZEROS,
                            0, "%s.dense%d.bias", c->name, layer);
            if (p->kernel < 0 || p->bias < 0) return -1;
        }
        int32_t mm_in[] = {h, p->kernel};
        int32_t no_t[MTR_MAX_IATTR] = {0};
        snprintf(name, sizeof name, "%s.dense%d.mm", c->name, layer);
        int32_t mm = graph_op(x->g, OP_MATMUL, mm_in, no_t, 0, NULL, name);
        if (mm < 0) return -1;
        int32_t b_in[] = {mm, p->bias};
        snprintf(name, sizeof name, "%s.dense%d.pre", c->name, layer);
        int32_t pre = graph_op(x->g, OP_BIAS_ADD, b_in, NULL, 0, NULL, name);
        if (pre < 0 || s->act == ACT_LINEAR) return pre;
        snprintf(name, sizeof name, "%s.dense%d.out", c->name, layer);
        return activation(x, s->act, pre, name);
    }
    }
    return -1;
}

static int32_t lower_chain(Ctx *x, const AstChain *c)
{
    for (uint32_t i = 0; i < x->n_chains; i++)
        if (x->chain[i] == c) return x->chain_out[i];
    int32_t h = -1;
    char name[256];
    for (const AstRef *r = c->sources; r; r = r->next) {
        int32_t t = lower_ref(x, r);
        if (t < 0) return -1;
        if (h < 0) {
            h = t;
            continue;
        }
        int32_t in[] = {h, t};
        snprintf(name, sizeof name, "%s.concat", c->name);
        if ((h = graph_op(x->g, OP_CONCAT, in, NULL, 0, NULL, name)) < 0) return -1;
    }
    int layer = 1;
    for (const AstStage *s = c->stages; s; s = s->next) {
        h = lower_stage(x, c, s, layer, h);
        if (h < 0) return -1;
        if (s->kind == STAGE_DENSE) layer++;
    }
    if (x->n_chains == 64) {
        module_fail(x->L->mod, "more than 64 chains in one program");
        return -1;
    }
    x->chain[x->n_chains] = c;
    x->chain_out[x->n_chains++] = h;
    return h;
}

static void ctx_init(Ctx *x, Lowerer *L, Graph *g, int32_t rows_sym, const char *source)
{
    memset(x, 0, sizeof *x);
    x->L = L;
    x->g = g;
    x->rows = dim_sym(rows_sym);
    x->source = source;
}

int lower_add_output(Lowered *l, int p, int32_t t)
{
    int32_t *o = realloc(l->outputs[p], (l->n_outputs[p] + 1) * sizeof *o);
    if (!o) return -1;
    o[l->n_outputs[p]++] = t;
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

static int add_columns(Lowerer *L)
{
    for (const AstColumn *c = L->ast->columns; c; c = c->next) {
        MtrColumn mc = {0};
        mc.name = (char *)c->name;
        mc.type = c->type == TY_STRING ? MTR_COL_STRING
                  : c->type == TY_INT  ? MTR_COL_INT
                                       : MTR_COL_FLOAT;
        mc.is_label = (uint8_t)c->is_label;
        mc.lookup = (uint8_t)c->looked_up;
        mc.is_item = (uint8_t)c->is_item;
        mc.vocab_sym = -1;
        if (c->looked_up) {
            char name[256];
            snprintf(name, sizeof name, "vocab.%s", c->name);
            mc.vocab_sym = module_symbol(L->mod, name);
        }
        if (module_column(L->mod, &mc) < 0) return -1;
    }
    return 0;
}

static int add_optimizer_knobs(Lowerer *L, Lowered *out)
{
    const AstTrain *t = &L->ast->train;
    Module *mod = L->mod;
    out->optimizer = t->optimizer;
    out->knob_lr = module_knob(mod, "optimizer.lr", MTR_KNOB_F32, t->lr);
    out->knob_eps = out->knob_beta1 = out->knob_beta2 = out->knob_init_acc = -1;
    if (t->optimizer == OPT_ADAGRAD) {
        out->knob_init_acc =
            module_knob(mod, "optimizer.initial_accumulator", MTR_KNOB_F32, t->initial_accumulator);
        out->knob_eps = module_knob(mod, "optimizer.epsilon", MTR_KNOB_F32, t->epsilon);
    } else if (t->optimizer == OPT_ADAM) {
        out->knob_beta1 = module_knob(mod, "optimizer.beta1", MTR_KNOB_F32, t->beta1);
        out->knob_beta2 = module_knob(mod, "optimizer.beta2", MTR_KNOB_F32, t->beta2);
        out->knob_eps = module_knob(mod, "optimizer.epsilon", MTR_KNOB_F32, t->epsilon);
    }
    module_knob(mod, "train.batch", MTR_KNOB_I32, (double)t->batch);
    module_knob(mod, "train.epochs", MTR_KNOB_I32, (double)t->epochs);
    module_knob(mod, "train.seed", MTR_KNOB_I32, (double)t->seed);
    module_knob(mod, "train.split", MTR_KNOB_F32, t->split);
    return mod->failed ? -1 : 0;
}

/* A ranking task: loss in training, the prediction in evaluation and predict. */
static int lower_ranking(Lowerer *L, const AstTask *t, Ctx *train, Ctx *eval, Ctx *pred,
                         MtrTask *mt, Lowered *out, int32_t *weighted)
{
    const AstChain *head = t->args->chain;
    const AstColumn *label = t->args->next->column;
    char name[256];
    int bce = t->loss == LOSS_BCE;
    mt->loss = bce ? MTR_LOSS_BCE : MTR_LOSS_MSE;
    mt->label_column = column_index(L->ast, label);

    int32_t p = lower_chain(train, head);
    int32_t y = column_input(train, label);
    if (p < 0 || y < 0) return -1;
    int32_t in[] = {p, y};
    snprintf(name, sizeof name, "%s.loss", t->name);
    mt->loss_tensor = graph_op(train->g, bce ? OP_BCE_LOGITS : OP_MSE, in, NULL, 0, NULL, name);
    if (mt->loss_tensor < 0) return -1;
    int32_t w_in[] = {mt->loss_tensor};
    int32_t w_attr[MTR_MAX_IATTR] = {mt->weight_knob};
    snprintf(name, sizeof name, "%s.weighted_loss", t->name);
    *weighted = graph_op(train->g, OP_LOSS_WEIGHT, w_in, w_attr, 0, NULL, name);
    if (*weighted < 0 || lower_add_output(out, PROG_TRAIN, mt->loss_tensor)) return -1;

    /* Evaluation and predict report probabilities for a logistic head. */
    Ctx *views[] = {eval, pred};
    int progs[] = {PROG_EVAL, PROG_PREDICT};
    for (int v = 0; v < 2; v++) {
        int32_t h = lower_chain(views[v], head);
        if (h < 0) return -1;
        if (bce) {
            int32_t s_in[] = {h};
            snprintf(name, sizeof name, "%s.probability", t->name);
            if ((h = graph_op(views[v]->g, OP_SIGMOID, s_in, NULL, 0, NULL, name)) < 0) return -1;
        }
        if (lower_add_output(out, progs[v], h)) return -1;
        if (v == 0) mt->eval_tensor = h;
    }
    return 0; /* the runtime compares predictions with labels it read itself */
}

/* A retrieval task: in-batch softmax in training, ranks against every item in
 * evaluation, the item embeddings in embed_items, top k in recommend. */
static int lower_retrieval(Lowerer *L, const AstTask *t, Ctx *train, Ctx *eval, Ctx *items,
                           Ctx *rec, int first, MtrTask *mt, Lowered *out, int32_t *weighted)
{
    const AstChain *query = t->args->chain, *cand = t->args->next->chain;
    Module *mod = L->mod;
    char name[256];
    mt->loss = MTR_LOSS_SOFTMAX;
    mt->label_column = -1;
    if (L->sym_items < 0) {
        L->sym_items = module_symbol(mod, "items");
        L->sym_k = module_symbol(mod, "k");
        items->rows = dim_sym(L->sym_items);
    }

    int32_t q = lower_chain(train, query), c = lower_chain(train, cand);
    if (q < 0 || c < 0) return -1;
    int32_t s_in[] = {q, c};
    int32_t bt[MTR_MAX_IATTR] = {0, 1};
    snprintf(name, sizeof name, "%s.scores", t->name);
    int32_t scores = graph_op(train->g, OP_MATMUL, s_in, bt, 0, NULL, name);
    if (scores < 0) return -1;
    int32_t x_in[] = {scores};
    snprintf(name, sizeof name, "%s.loss", t->name);
    mt->loss_tensor = graph_op(train->g, OP_INBATCH_SOFTMAX_XENT, x_in, NULL, 0, NULL, name);
    if (mt->loss_tensor < 0) return -1;
    int32_t w_in[] = {mt->loss_tensor};
    int32_t w_attr[MTR_MAX_IATTR] = {mt->weight_knob};
    snprintf(name, sizeof name, "%s.weighted_loss", t->name);
    *weighted = graph_op(train->g, OP_LOSS_WEIGHT, w_in, w_attr, 0, NULL, name);
    if (*weighted < 0 || lower_add_output(out, PROG_TRAIN, mt->loss_tensor)) return -1;

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
    if (lower_add_output(out, PROG_EMBED_ITEMS, state)) return -1;

    const AstColumn *key = chain_column(cand);
    int32_t qe = lower_chain(eval, query);
    int32_t row = module_tensorf(mod, MTR_ROLE_INPUT, shape_vec(dim_sym(L->sym_batch), MTR_DT_I32),
                                 "true_row.%s", key ? key->name : "?");
    if (qe < 0 || row < 0 || set_source(mod, row, "true_row", key ? key->name : "?")) return -1;
    int32_t r_in[] = {qe, state, row};
    snprintf(name, sizeof name, "%s.rank", t->name);
    mt->eval_tensor = graph_op(eval->g, OP_RETRIEVAL_RANK, r_in, NULL, 0, NULL, name);
    if (mt->eval_tensor < 0 || lower_add_output(out, PROG_EVAL, mt->eval_tensor)) return -1;

    if (!first) return 0; /* recommend serves the first retrieval task */
    int32_t qr = lower_chain(rec, query);
    if (qr < 0) return -1;
    int32_t sc_in[] = {qr, state};
    int32_t sc = graph_op(rec->g, OP_MATMUL, sc_in, bt, 0, NULL, "recommend.scores");
    if (sc < 0) return -1;
    MtrShape decl[2];
    decl[0] = (MtrShape){
        .rank = 2, .dtype = MTR_DT_I32, .dim = {dim_sym(L->sym_batch), dim_sym(L->sym_k)}};
    decl[1] = shape_mat(dim_sym(L->sym_batch), dim_sym(L->sym_k));
    int32_t k_in[] = {sc};
    int32_t idx = graph_op(rec->g, OP_TOP_K, k_in, NULL, 0, decl, "recommend.index");
    if (idx < 0) return -1;
    out->present[PROG_RECOMMEND] = 1;
    out->present[PROG_EMBED_ITEMS] = 1;
    if (lower_add_output(out, PROG_RECOMMEND, idx) ||
        lower_add_output(out, PROG_RECOMMEND, idx + 1))
        return -1;
    return 0;
}

int lower_model(const AstModel *m, Module *mod, Lowered *out)
{
    Lowerer L = {.mod = mod, .ast = m};
    memset(out, 0, sizeof *out);
    for (int p = 0; p < PROG_COUNT; p++) graph_init(&out->prog[p], mod);
    out->present[PROG_TRAIN] = out->present[PROG_EVAL] = 1;

    L.sym_batch = module_symbol(mod, "batch");
    L.sym_items = L.sym_k = -1; /* made by the first retrieval task: others read no items */
    if (add_columns(&L)) goto fail;

    /* Knobs: each task's weight first, then the optimizer, then the run. */
    for (const AstTask *t = m->tasks; t; t = t->next) {
        char name[256];
        snprintf(name, sizeof name, "%s.weight", t->name);
        module_knob(mod, name, MTR_KNOB_F32, t->has_weight ? t->weight : 1.0);
    }
    if (add_optimizer_knobs(&L, out)) goto fail;

    Ctx train, eval, pred, items, rec;
    ctx_init(&train, &L, &out->prog[PROG_TRAIN], L.sym_batch, "column");
    ctx_init(&eval, &L, &out->prog[PROG_EVAL], L.sym_batch, "column");
    ctx_init(&pred, &L, &out->prog[PROG_PREDICT], L.sym_batch, "column");
    ctx_init(&items, &L, &out->prog[PROG_EMBED_ITEMS], L.sym_items, "items");
    ctx_init(&rec, &L, &out->prog[PROG_RECOMMEND], L.sym_batch, "column");

    int32_t total = -1;
    int knob = 0, first_retrieval = 1;
    for (const AstTask *t = m->tasks; t; t = t->next, knob++) {
        MtrTask mt = {0};
        mt.name = (char *)t->name;
        mt.kind = t->kind == TASK_RANKING ? MTR_TASK_RANKING : MTR_TASK_RETRIEVAL;
        mt.weight_knob = knob;
        for (const AstMetric *me = t->metrics; me; me = me->next) {
            switch (me->kind) {
            case METRIC_RMSE:
                mt.metrics |= MTR_METRIC_RMSE;
                break;
            case METRIC_MAE:
                mt.metrics |= MTR_METRIC_MAE;
                break;
            case METRIC_AUC:
                mt.metrics |= MTR_METRIC_AUC;
                break;
            case METRIC_TOP_K:
                mt.metrics |= MTR_METRIC_TOPK;
                mt.n_ks = (uint32_t)me->n_ks;
                for (int i = 0; i < me->n_ks && i < MTR_MAX_KS; i++) mt.ks[i] = (int32_t)me->ks[i];
                break;
            }
        }
        int32_t weighted = -1;
        int rc;
        if (t->kind == TASK_RANKING) {
            rc = lower_ranking(&L, t, &train, &eval, &pred, &mt, out, &weighted);
            out->present[PROG_PREDICT] = 1;
        } else {
            rc = lower_retrieval(&L, t, &train, &eval, &items, &rec, first_retrieval, &mt, out,
                                 &weighted);
            first_retrieval = 0;
        }
        if (rc || module_task(mod, &mt) < 0) goto fail;
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
    /* The runtime finds the total by its name, "loss". */
    free(mod->m->tensors[total].name);
    if (!(mod->m->tensors[total].name = malloc(5))) goto fail;
    memcpy(mod->m->tensors[total].name, "loss", 5);
    out->loss = total;
    if (lower_add_output(out, PROG_TRAIN, total)) goto fail;
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
