/* Tests for model.bin (runtime/format.c), the model helpers (model.c), CRC-32
 * and knobs (knobs.c): a small, complete model built by hand round-trips
 * exactly; encoding is deterministic; every truncation, every bit flip of the
 * header and table, thousands of random flips, garbage and hostile counts with
 * valid checksums are refused cleanly; writes are atomic; knobs are checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mtr/crc32.h"
#include "mtr/knobs.h"
#include "mtr/model.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ the test model */

static char *dup(const char *s)
{
    char *p = strdup(s);
    assert_non_null(p);
    return p;
}

static void set_tensor(MtrTensor *t, const char *name, int dtype, int role, int rank, int init,
                       float init_arg, MtrDim d0, MtrDim d1, int source, int column)
{
    t->name = dup(name);
    t->dtype = (uint8_t)dtype;
    t->role = (uint8_t)role;
    t->rank = (uint8_t)rank;
    t->init = (uint8_t)init;
    t->init_arg = init_arg;
    t->dim[0] = rank > 0 ? d0 : (MtrDim){-1, 1};
    t->dim[1] = rank > 1 ? d1 : (MtrDim){-1, 1};
    t->dim[2] = (MtrDim){-1, 1};
    t->source = (uint8_t)source;
    t->source_column = column;
}

static MtrOp make_op(OpKind kind, int32_t a, int32_t b, int32_t c, int32_t o0, int32_t o1)
{
    MtrOp op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    for (int k = 0; k < MTR_MAX_IN; k++) op.in[k] = -1;
    for (int k = 0; k < MTR_MAX_OUT; k++) op.out[k] = -1;
    op.in[0] = a;
    op.in[1] = b;
    op.in[2] = c;
    op.out[0] = o0;
    op.out[1] = o1;
    const OpInfo *info = op_info(kind);
    for (int k = info->n_in; k < MTR_MAX_IN; k++) op.in[k] = -1;
    for (int k = info->n_out; k < MTR_MAX_OUT; k++) op.out[k] = -1;
    return op;
}

enum { SYM_BATCH, SYM_VUSER, SYM_VMOVIE, SYM_ITEMS, N_SYMS };
#define NONE   ((MtrDim){-1, 1})
#define SYM(s) ((MtrDim){(s), 1})
#define K(k)   ((MtrDim){-1, (k)})

static MtrModel *build_model(int trained)
{
    MtrModel *m = mtr_model_new();
    assert_non_null(m);
    m->name = dup("movielens");
    static const char *const syms[N_SYMS] = {"batch", "vocab.user_id", "vocab.movie_title",
                                             "items"};
    m->n_symbols = N_SYMS;
    m->symbols = calloc(N_SYMS, sizeof(char *));
    m->symbol_info = calloc(N_SYMS, sizeof(MtrSymbol));
    for (int i = 0; i < N_SYMS; i++) m->symbols[i] = dup(syms[i]);
    m->symbol_info[SYM_BATCH] = (MtrSymbol){MTR_SYM_BATCH, -1};
    m->symbol_info[SYM_VUSER] = (MtrSymbol){MTR_SYM_VOCAB, 0};
    m->symbol_info[SYM_VMOVIE] = (MtrSymbol){MTR_SYM_VOCAB, 1};
    m->symbol_info[SYM_ITEMS] = (MtrSymbol){MTR_SYM_ITEMS, -1};

    static const struct {
        const char *name;
        int type, kind;
        double v;
    } knobs[] = {{"rating.weight", MTR_KNOB_F32, MTR_KNOB_WEIGHT, 1.0},
                 {"retrieval.weight", MTR_KNOB_F32, MTR_KNOB_WEIGHT, 0.5},
                 {"optimizer.lr", MTR_KNOB_F32, MTR_KNOB_LR, 0.1},
                 {"optimizer.epsilon", MTR_KNOB_F32, MTR_KNOB_EPSILON, 1e-7},
                 {"train.batch", MTR_KNOB_I32, MTR_KNOB_BATCH, 8},
                 {"train.epochs", MTR_KNOB_I32, MTR_KNOB_EPOCHS, 3},
                 {"train.seed", MTR_KNOB_I32, MTR_KNOB_SEED, 42},
                 {"train.split", MTR_KNOB_F32, MTR_KNOB_SPLIT, 0.8}};
    m->n_knobs = 8;
    m->knobs = calloc(8, sizeof(MtrKnob));
    for (int i = 0; i < 8; i++) {
        m->knobs[i].name = dup(knobs[i].name);
        m->knobs[i].type = (uint8_t)knobs[i].type;
        m->knobs[i].kind = (uint16_t)knobs[i].kind;
        m->knobs[i].value = knobs[i].type == MTR_KNOB_F32 ? (double)(float)knobs[i].v : knobs[i].v;
    }

    m->n_columns = 3;
    m->columns = calloc(3, sizeof(MtrColumn));
    m->columns[0] = (MtrColumn){.name = dup("user_id"),
                                .type = MTR_COL_STRING,
                                .lookup = 1,
                                .vocab_sym = SYM_VUSER,
                                .derived_from = -1,
                                .feature_of = -1};
    m->columns[1] = (MtrColumn){.name = dup("movie_title"),
                                .type = MTR_COL_STRING,
                                .lookup = 1,
                                .is_item = 1,
                                .vocab_sym = SYM_VMOVIE,
                                .derived_from = -1,
                                .feature_of = -1};
    m->columns[2] = (MtrColumn){.name = dup("user_rating"),
                                .type = MTR_COL_FLOAT,
                                .is_label = 1,
                                .vocab_sym = -1,
                                .derived_from = -1,
                                .feature_of = -1};

    m->n_tensors = 15;
    m->tensors = calloc(15, sizeof(MtrTensor));
    MtrTensor *t = m->tensors;
    set_tensor(&t[0], "user_id", MTR_DT_I32, MTR_ROLE_INPUT, 1, 0, 0, SYM(SYM_BATCH), NONE,
               MTR_SRC_COLUMN, 0);
    set_tensor(&t[1], "movie_title", MTR_DT_I32, MTR_ROLE_INPUT, 1, 0, 0, SYM(SYM_BATCH), NONE,
               MTR_SRC_COLUMN, 1);
    set_tensor(&t[2], "user_rating", MTR_DT_F32, MTR_ROLE_INPUT, 1, 0, 0, SYM(SYM_BATCH), NONE,
               MTR_SRC_COLUMN, 2);
    set_tensor(&t[3], "user.embedding", MTR_DT_F32, MTR_ROLE_PARAM, 2, MTR_INIT_UNIFORM, 0.05f,
               SYM(SYM_VUSER), K(4), 0, -1);
    set_tensor(&t[4], "movie.embedding", MTR_DT_F32, MTR_ROLE_PARAM, 2, MTR_INIT_UNIFORM, 0.05f,
               SYM(SYM_VMOVIE), K(4), 0, -1);
    set_tensor(&t[5], "rating.dense0.kernel", MTR_DT_F32, MTR_ROLE_PARAM, 2, MTR_INIT_GLOROT, 0,
               K(8), K(1), 0, -1);
    set_tensor(&t[6], "user.embedding.accum", MTR_DT_F32, MTR_ROLE_OPTSTATE, 2, MTR_INIT_CONST,
               0.1f, SYM(SYM_VUSER), K(4), 0, -1);
    set_tensor(&t[7], "user", MTR_DT_F32, MTR_ROLE_ACT, 2, 0, 0, SYM(SYM_BATCH), K(4), 0, -1);
    set_tensor(&t[8], "movie", MTR_DT_F32, MTR_ROLE_ACT, 2, 0, 0, SYM(SYM_BATCH), K(4), 0, -1);
    set_tensor(&t[9], "concat", MTR_DT_F32, MTR_ROLE_ACT, 2, 0, 0, SYM(SYM_BATCH), K(8), 0, -1);
    set_tensor(&t[10], "rating", MTR_DT_F32, MTR_ROLE_ACT, 2, 0, 0, SYM(SYM_BATCH), K(1), 0, -1);
    set_tensor(&t[11], "rating.loss", MTR_DT_F32, MTR_ROLE_ACT, 0, 0, 0, NONE, NONE, 0, -1);
    set_tensor(&t[12], "loss", MTR_DT_F32, MTR_ROLE_ACT, 0, MTR_INIT_KNOB, 2, NONE, NONE, 0, -1);
    set_tensor(&t[13], "item_ids", MTR_DT_I32, MTR_ROLE_INPUT, 1, 0, 0, SYM(SYM_ITEMS), NONE,
               MTR_SRC_ITEMS, 1);
    set_tensor(&t[14], "item_embeddings", MTR_DT_F32, MTR_ROLE_STATE, 2, 0, 0, SYM(SYM_ITEMS),
               (MtrDim){-1, 4}, 0, -1);

    m->n_programs = 2;
    m->programs = calloc(2, sizeof(MtrProgram));
    MtrProgram *p = &m->programs[0];
    p->kind = MTR_PROG_PREDICT;
    p->name = dup("predict");
    p->n_ops = 4;
    p->ops = calloc(4, sizeof(MtrOp));
    p->ops[0] = make_op(OP_GATHER, 3, 0, -1, 7, -1);
    p->ops[1] = make_op(OP_GATHER, 4, 1, -1, 8, -1);
    p->ops[2] = make_op(OP_CONCAT, 7, 8, -1, 9, -1);
    p->ops[3] = make_op(OP_MATMUL, 9, 5, -1, 10, -1);
    p->ops[3].iattr[1] = 0;
    p->n_lifetimes = 4;
    p->lifetimes = calloc(4, sizeof(MtrLifetime));
    p->lifetimes[0] = (MtrLifetime){7, 0, 2, -1};
    p->lifetimes[1] = (MtrLifetime){8, 1, 2, -1};
    p->lifetimes[2] = (MtrLifetime){9, 2, 3, -1};
    p->lifetimes[3] = (MtrLifetime){10, 3, 3, -1};
    p->update_at = p->n_ops;
    p->n_outputs = 1;
    p->outputs = calloc(1, sizeof(MtrOutput));
    p->outputs[0] = (MtrOutput){MTR_OUT_PREDICTION, 0, 10, -1};

    p = &m->programs[1];
    p->kind = MTR_PROG_TRAIN;
    p->name = dup("train_step");
    p->n_ops = 7;
    p->ops = calloc(7, sizeof(MtrOp));
    p->ops[0] = make_op(OP_GATHER, 3, 0, -1, 7, -1);
    p->ops[1] = make_op(OP_GATHER, 4, 1, -1, 8, -1);
    p->ops[2] = make_op(OP_CONCAT, 7, 8, -1, 9, -1);
    p->ops[3] = make_op(OP_MATMUL, 9, 5, -1, 10, -1);
    p->ops[4] = make_op(OP_MSE, 10, 2, -1, 11, -1);
    p->ops[5] = make_op(OP_LOSS_WEIGHT, 11, -1, -1, 12, -1);
    p->ops[5].iattr[0] = 0;
    p->ops[6] = make_op(OP_ADAGRAD_UPDATE, 3, 7, 6, -1, -1);
    p->ops[6].iattr[0] = 2;
    p->ops[6].iattr[1] = 3;
    p->ops[6].fattr[1] = -1.5f;
    p->n_lifetimes = 6;
    p->lifetimes = calloc(6, sizeof(MtrLifetime));
    p->lifetimes[0] = (MtrLifetime){7, 0, 6, -1};
    p->lifetimes[1] = (MtrLifetime){8, 1, 2, -1};
    p->lifetimes[2] = (MtrLifetime){9, 2, 3, -1};
    p->lifetimes[3] = (MtrLifetime){10, 3, 4, -1};
    p->lifetimes[4] = (MtrLifetime){11, 4, 5, -1};
    p->lifetimes[5] = (MtrLifetime){12, 5, 5, 11};
    p->update_at = 6;
    p->n_outputs = 3;
    p->outputs = calloc(3, sizeof(MtrOutput));
    p->outputs[0] = (MtrOutput){MTR_OUT_TASK_LOSS, 0, 11, -1};
    p->outputs[1] = (MtrOutput){MTR_OUT_LOSS, -1, 12, -1};
    p->outputs[2] = (MtrOutput){MTR_OUT_GRADIENT, -1, 7, 3};

    m->n_tasks = 2;
    m->tasks = calloc(2, sizeof(MtrTask));
    MtrTask *tk = &m->tasks[0];
    tk->name = dup("rating");
    tk->about = dup("ranking, loss mse");
    tk->metrics = 1u << MTR_METRIC_RMSE;
    tk->weight_knob = 0;
    tk->label_column = 2;
    tk->loss_metric = MTR_METRIC_MSE;
    tk->sample_knob = -1;
    tk = &m->tasks[1];
    tk->name = dup("retrieval");
    tk->about = dup("retrieval");
    tk->metrics = 1u << MTR_METRIC_TOP_K;
    tk->n_ks = 3;
    tk->ks[0] = 1;
    tk->ks[1] = 5;
    tk->ks[2] = 10;
    tk->weight_knob = 1;
    tk->label_column = -1;
    tk->loss_metric = -1;
    tk->sample_knob = -1;

    if (!trained) return m;
    m->trained = 1;
    m->symbol_values = calloc(N_SYMS, sizeof(int64_t));
    m->symbol_values[SYM_BATCH] = 8;
    m->symbol_values[SYM_VUSER] = 4;
    m->symbol_values[SYM_VMOVIE] = 4;
    m->symbol_values[SYM_ITEMS] = 4;
    m->param_data = calloc(m->n_tensors, sizeof(float *));
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        if (m->tensors[i].role != MTR_ROLE_PARAM && m->tensors[i].role != MTR_ROLE_OPTSTATE)
            continue;
        int64_t n = mtr_tensor_elems(&m->tensors[i], m->symbol_values);
        assert_true(n > 0);
        m->param_data[i] = malloc((size_t)n * sizeof(float));
        for (int64_t k = 0; k < n; k++) m->param_data[i][k] = (float)i * 0.25f - (float)k / 7.0f;
    }
    m->n_vocabs = 2;
    m->vocabs = calloc(2, sizeof(MtrVocab));
    static const char *const users[] = {"1", "2", "42"};
    static const char *const movies[] = {"Amélie (2001)", "Léon (1994)", "東京物語 (1953)"};
    m->vocabs[0].column = 0;
    m->vocabs[0].n = 3;
    m->vocabs[0].words = calloc(3, sizeof(char *));
    m->vocabs[1].column = 1;
    m->vocabs[1].n = 3;
    m->vocabs[1].words = calloc(3, sizeof(char *));
    for (int i = 0; i < 3; i++) {
        m->vocabs[0].words[i] = dup(users[i]);
        m->vocabs[1].words[i] = dup(movies[i]);
    }
    MtrItems *it = &m->items;
    it->n = 4;
    it->labels = calloc(4, sizeof(char *));
    it->labels[0] = dup("Léon (1994)");
    it->labels[1] = dup("Amélie (2001)");
    it->labels[2] = dup("東京物語 (1953)");
    it->labels[3] = dup("Léon (1994)"); /* titles repeat in the item file */
    it->n_columns = 1;
    it->columns = calloc(1, sizeof(int32_t));
    it->columns[0] = 1;
    it->ids = calloc(1, sizeof(int32_t *));
    it->ids[0] = calloc(4, sizeof(int32_t));
    it->ids[0][0] = 2;
    it->ids[0][1] = 1;
    it->ids[0][2] = 3;
    it->ids[0][3] = 2;
    return m;
}

/* ------------------------------------------------------------ deep compare */

static void assert_same_str(const char *a, const char *b)
{
    assert_string_equal(a ? a : "", b ? b : "");
}

static void assert_same_model(const MtrModel *a, const MtrModel *b)
{
    assert_same_str(a->name, b->name);
    assert_int_equal(a->n_symbols, b->n_symbols);
    for (uint32_t i = 0; i < a->n_symbols; i++) {
        assert_same_str(a->symbols[i], b->symbols[i]);
        assert_int_equal(a->symbol_info[i].kind, b->symbol_info[i].kind);
        assert_int_equal(a->symbol_info[i].column, b->symbol_info[i].column);
    }
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (uint32_t i = 0; i < a->n_tensors; i++) {
        const MtrTensor *x = &a->tensors[i], *y = &b->tensors[i];
        assert_same_str(x->name, y->name);
        assert_int_equal(x->source, y->source);
        assert_int_equal(x->source_column, y->source_column);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->role, y->role);
        assert_int_equal(x->rank, y->rank);
        assert_int_equal(x->init, y->init);
        assert_true(x->init_arg == y->init_arg);
        for (int d = 0; d < x->rank; d++) {
            assert_int_equal(x->dim[d].sym, y->dim[d].sym);
            assert_int_equal(x->dim[d].k, y->dim[d].k);
        }
    }
    assert_int_equal(a->n_programs, b->n_programs);
    for (uint32_t p = 0; p < a->n_programs; p++) {
        const MtrProgram *x = &a->programs[p], *y = &b->programs[p];
        assert_same_str(x->name, y->name);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->update_at, y->update_at);
        assert_int_equal(x->n_outputs, y->n_outputs);
        for (uint32_t i = 0; i < x->n_outputs; i++) {
            assert_int_equal(x->outputs[i].role, y->outputs[i].role);
            assert_int_equal(x->outputs[i].task, y->outputs[i].task);
            assert_int_equal(x->outputs[i].tensor, y->outputs[i].tensor);
            assert_int_equal(x->outputs[i].param, y->outputs[i].param);
        }
        assert_int_equal(x->n_ops, y->n_ops);
        for (uint32_t i = 0; i < x->n_ops; i++) {
            const MtrOp *o = &x->ops[i], *q = &y->ops[i];
            const OpInfo *info = op_info(o->kind);
            assert_int_equal(o->kind, q->kind);
            for (int k = 0; k < info->n_in; k++) assert_int_equal(o->in[k], q->in[k]);
            for (int k = 0; k < info->n_out; k++) assert_int_equal(o->out[k], q->out[k]);
            for (int k = 0; k < MTR_MAX_IATTR; k++) assert_int_equal(o->iattr[k], q->iattr[k]);
            assert_memory_equal(o->fattr, q->fattr, sizeof o->fattr);
        }
        assert_int_equal(x->n_lifetimes, y->n_lifetimes);
        assert_memory_equal(x->lifetimes, y->lifetimes, x->n_lifetimes * sizeof(MtrLifetime));
    }
    assert_int_equal(a->n_knobs, b->n_knobs);
    for (uint32_t i = 0; i < a->n_knobs; i++) {
        assert_same_str(a->knobs[i].name, b->knobs[i].name);
        assert_int_equal(a->knobs[i].type, b->knobs[i].type);
        assert_int_equal(a->knobs[i].kind, b->knobs[i].kind);
        assert_true(a->knobs[i].value == b->knobs[i].value);
    }
    assert_int_equal(a->n_columns, b->n_columns);
    for (uint32_t i = 0; i < a->n_columns; i++) {
        const MtrColumn *x = &a->columns[i], *y = &b->columns[i];
        assert_same_str(x->name, y->name);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->is_label, y->is_label);
        assert_int_equal(x->lookup, y->lookup);
        assert_int_equal(x->is_item, y->is_item);
        assert_int_equal(x->vocab_sym, y->vocab_sym);
    }
    assert_int_equal(a->n_tasks, b->n_tasks);
    for (uint32_t i = 0; i < a->n_tasks; i++) {
        const MtrTask *x = &a->tasks[i], *y = &b->tasks[i];
        assert_same_str(x->name, y->name);
        assert_same_str(x->about, y->about);
        assert_int_equal(x->metrics, y->metrics);
        assert_int_equal(x->n_ks, y->n_ks);
        for (uint32_t k = 0; k < x->n_ks; k++) assert_int_equal(x->ks[k], y->ks[k]);
        assert_int_equal(x->weight_knob, y->weight_knob);
        assert_int_equal(x->label_column, y->label_column);
    }
    assert_int_equal(!!a->trained, !!b->trained);
    if (!a->trained) return;
    assert_memory_equal(a->symbol_values, b->symbol_values, a->n_symbols * sizeof(int64_t));
    for (uint32_t i = 0; i < a->n_tensors; i++) {
        assert_int_equal(a->param_data[i] == NULL, b->param_data[i] == NULL);
        if (!a->param_data[i]) continue;
        int64_t n = mtr_tensor_elems(&a->tensors[i], a->symbol_values);
        assert_memory_equal(a->param_data[i], b->param_data[i], (size_t)n * sizeof(float));
    }
    assert_int_equal(a->n_vocabs, b->n_vocabs);
    for (uint32_t v = 0; v < a->n_vocabs; v++) {
        assert_int_equal(a->vocabs[v].column, b->vocabs[v].column);
        assert_int_equal(a->vocabs[v].n, b->vocabs[v].n);
        for (uint32_t i = 0; i < a->vocabs[v].n; i++)
            assert_same_str(a->vocabs[v].words[i], b->vocabs[v].words[i]);
    }
    assert_int_equal(a->items.n, b->items.n);
    assert_int_equal(a->items.n_columns, b->items.n_columns);
    for (uint32_t i = 0; i < a->items.n; i++)
        assert_same_str(a->items.labels[i], b->items.labels[i]);
    for (uint32_t c = 0; c < a->items.n_columns; c++) {
        assert_int_equal(a->items.columns[c], b->items.columns[c]);
        assert_memory_equal(a->items.ids[c], b->items.ids[c], a->items.n * sizeof(int32_t));
    }
}

/* ------------------------------------------------------------ helpers */

static void encode(const MtrModel *m, uint8_t **buf, size_t *len)
{
    MtrError err = {0};
    MtrStatus s = mtr_model_encode(m, buf, len, &err);
    if (s != MTR_OK) fail_msg("encode: %s", err.msg);
}

static uint8_t *encoded_model(int trained, size_t *len)
{
    MtrModel *m = build_model(trained);
    uint8_t *buf;
    encode(m, &buf, len);
    mtr_model_free(m);
    return buf;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes every section CRC and the header CRC, as a forger would. */
static void fix_crcs(uint8_t *buf, size_t len)
{
    if (len < 24) return;
    uint32_t n = rd32(buf + 12);
    if (n > 64 || 24 + 24 * (size_t)n > len) return;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = buf + 24 + 24 * i;
        uint64_t off = rd64(e + 8), size = rd64(e + 16);
        if (off <= len && size <= len - off) wr32(e + 4, mtr_crc32(buf + off, (size_t)size));
    }
    uint32_t crc = mtr_crc32_update(0, buf, 20);
    crc = mtr_crc32_update(crc, buf + 24, 24 * (size_t)n);
    wr32(buf + 20, crc);
}

/* The file offset and size of section `kind` (1 strings .. 12 items). */
static size_t section_at(const uint8_t *buf, uint32_t kind, size_t *size)
{
    uint32_t n = rd32(buf + 12);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = buf + 24 + 24 * i;
        if (rd32(e) == kind) {
            *size = (size_t)rd64(e + 16);
            return (size_t)rd64(e + 8);
        }
    }
    fail_msg("no section %u", kind);
    return 0;
}

/* Decodes and expects failure with a message containing `needle` (or any). */
static void expect_refused(const uint8_t *buf, size_t len, const char *needle)
{
    MtrError err = {0};
    MtrModel *m = NULL;
    MtrStatus s = mtr_model_decode(buf, len, "model.bin", &m, &err);
    if (s == MTR_OK) {
        mtr_model_free(m);
        fail_msg("a corrupt model (%zu bytes) was accepted", len);
    }
    assert_null(m);
    assert_int_equal(s, MTR_E_FORMAT);
    assert_non_null(strstr(err.msg, "model.bin: section '"));
    if (needle && !strstr(err.msg, needle)) fail_msg("'%s' not in '%s'", needle, err.msg);
}

/* Decodes whatever comes; success or a clean error, never a crash. */
static void decode_any(const uint8_t *buf, size_t len)
{
    MtrError err = {0};
    MtrModel *m = NULL;
    MtrStatus s = mtr_model_decode(buf, len, "model.bin", &m, &err);
    if (s == MTR_OK) {
        uint8_t *again;
        size_t n;
        encode(m, &again, &n);
        free(again);
        mtr_model_free(m);
    } else {
        assert_null(m);
        assert_true(err.msg[0] != '\0');
    }
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ------------------------------------------------------------ tests */

static void test_crc32_check_value(void **state)
{
    (void)state;
    assert_int_equal(mtr_crc32("123456789", 9), 0xCBF43926u);
    assert_int_equal(mtr_crc32("", 0), 0);
    uint32_t c = mtr_crc32_update(0, "1234", 4);
    assert_int_equal(mtr_crc32_update(c, "56789", 5), 0xCBF43926u);
}

static void test_tensor_elems(void **state)
{
    (void)state;
    MtrTensor t;
    memset(&t, 0, sizeof t);
    t.rank = 2;
    t.dim[0] = (MtrDim){0, 2};
    t.dim[1] = (MtrDim){-1, 32};
    int64_t v[1] = {1683};
    assert_int_equal(mtr_tensor_elems(&t, v), 2 * 1683 * 32);
    assert_int_equal(mtr_tensor_elems(&t, NULL), -1);
    v[0] = INT64_MAX / 3;
    assert_int_equal(mtr_tensor_elems(&t, v), -1);
    t.rank = 0;
    assert_int_equal(mtr_tensor_elems(&t, v), 1);
}

static void roundtrip(int trained)
{
    MtrModel *m = build_model(trained);
    uint8_t *buf, *buf2;
    size_t len, len2;
    encode(m, &buf, &len);
    encode(m, &buf2, &len2);
    assert_int_equal(len, len2); /* deterministic */
    assert_memory_equal(buf, buf2, len);
    free(buf2);
    MtrModel *back = NULL;
    MtrError err = {0};
    if (mtr_model_decode(buf, len, "model.bin", &back, &err) != MTR_OK) fail_msg("%s", err.msg);
    assert_same_model(m, back);
    encode(back, &buf2, &len2); /* and the decoded model encodes to the same bytes */
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    assert_int_equal(mtr_model_find_knob(back, "train.split"), 7);
    assert_int_equal(mtr_model_program(back, MTR_PROG_TRAIN), 1);
    assert_int_equal(mtr_model_find_symbol(back, "items"), 3);
    assert_int_equal(mtr_model_find_column(back, "user_rating"), 2);
    assert_int_equal(mtr_model_find_tensor(back, "loss"), 12);
    assert_int_equal(mtr_model_find_tensor(back, "nope"), -1);
    print_message("model.bin (%s): %zu bytes\n", trained ? "trained" : "untrained", len);
    free(buf);
    free(buf2);
    mtr_model_free(back);
    mtr_model_free(m);
}

static void test_roundtrip_untrained(void **state)
{
    (void)state;
    roundtrip(0);
}

static void test_roundtrip_trained(void **state)
{
    (void)state;
    roundtrip(1);
}

/* A side table (format.md, "sides") survives a round trip; one naming a
 * label is refused; a file without one reads as none. */
static void test_sides(void **state)
{
    (void)state;
    MtrModel *m = build_model(1);
    uint8_t *plain, *buf, *buf2;
    size_t plain_len, len, len2;
    encode(m, &plain, &plain_len);
    m->sides = calloc(1, sizeof *m->sides);
    m->n_sides = 1;
    MtrSideTable *st = &m->sides[0];
    st->key = 0;
    st->n_columns = 1;
    st->columns = malloc(sizeof *st->columns);
    st->columns[0] = 1;
    st->n_rows = 2;
    st->values = calloc(4, sizeof *st->values);
    const char *vals[] = {"u1", "Alpha", "u2", ""};
    for (int i = 0; i < 4; i++) st->values[i] = strdup(vals[i]);
    encode(m, &buf, &len);
    assert_true(len > plain_len);
    MtrModel *back = NULL;
    MtrError err = {0};
    if (mtr_model_decode(buf, len, "model.bin", &back, &err) != MTR_OK) fail_msg("%s", err.msg);
    assert_int_equal(back->n_sides, 1);
    assert_int_equal(back->sides[0].key, 0);
    assert_int_equal(back->sides[0].n_rows, 2);
    assert_int_equal(back->sides[0].columns[0], 1);
    for (int i = 0; i < 4; i++) assert_string_equal(back->sides[0].values[i], vals[i]);
    encode(back, &buf2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf2);
    mtr_model_free(back);
    back = NULL;
    for (size_t n = 0; n < len; n++) { /* every cut refused, never read past */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        expect_refused(cut, n, NULL);
        free(cut);
    }
    free(buf);
    st->columns[0] = mtr_model_find_column(m, "user_rating"); /* a label */
    encode(m, &buf, &len);
    expect_refused(buf, len, "side table 0 names column");
    free(buf);
    if (mtr_model_decode(plain, plain_len, "model.bin", &back, &err) != MTR_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(back->n_sides, 0);
    mtr_model_free(back);
    free(plain);
    mtr_model_free(m);
}

static void test_truncation(void **state)
{
    (void)state;
    for (int trained = 0; trained < 2; trained++) {
        size_t len;
        uint8_t *buf = encoded_model(trained, &len);
        for (size_t n = 0; n < len; n++) {
            /* A copy of exactly n bytes, so ASan sees any read past the end. */
            uint8_t *cut = malloc(n ? n : 1);
            memcpy(cut, buf, n);
            expect_refused(cut, n, NULL);
            free(cut);
        }
        free(buf);
    }
}

static void test_header_and_table_bit_flips(void **state)
{
    (void)state;
    for (int trained = 0; trained < 2; trained++) {
        size_t len;
        uint8_t *buf = encoded_model(trained, &len);
        size_t covered = 24 + 24 * (size_t)rd32(buf + 12);
        for (size_t bit = 0; bit < covered * 8; bit++) {
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            expect_refused(buf, len, NULL);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        free(buf);
    }
}

static void test_random_bit_flips(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = encoded_model(1, &len);
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 5000; i++) {
        size_t bit = (size_t)(rng_next(&seed) % (len * 8));
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        expect_refused(buf, len, NULL);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* A flip inside a section names that section. */
    size_t size, off = section_at(buf, 4, &size);
    buf[off + 9] ^= 4;
    expect_refused(buf, len, "section 'tensors'");
    free(buf);
}

static void test_garbage(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(rng_next(&seed) % 600);
        uint8_t *g = malloc(n ? n : 1);
        for (size_t k = 0; k < n; k++) g[k] = (uint8_t)rng_next(&seed);
        if (i % 2 && n >= 24) { /* a valid header over a random table and body */
            memcpy(g, "MTRMODEL", 8);
            wr32(g + 8, MTR_FORMAT_VERSION);
            wr32(g + 12, (uint32_t)(rng_next(&seed) % 14));
            wr32(g + 16, (uint32_t)(rng_next(&seed) % 2));
            fix_crcs(g, n);
        }
        expect_refused(g, n, NULL);
        free(g);
    }
    static const uint8_t empty[1] = {0};
    expect_refused(empty, 0, "section 'header'");
    size_t len;
    uint8_t *buf = encoded_model(0, &len);
    buf[0] = 'X';
    expect_refused(buf, len, "bad magic");
    buf[0] = 'M';
    wr32(buf + 8, 99);
    fix_crcs(buf, len);
    expect_refused(buf, len, "format version 99");
    wr32(buf + 8, 1); /* a model.bin from before typed outputs */
    fix_crcs(buf, len);
    expect_refused(buf, len, "compile the .mtr again with mtrc");
    wr32(buf + 8, MTR_FORMAT_VERSION);
    wr32(buf + 24, 77); /* unknown section kind */
    fix_crcs(buf, len);
    expect_refused(buf, len, "unknown section kind 77");
    wr32(buf + 24, 1);
    wr32(buf + 24 + 24, 1); /* strings twice */
    fix_crcs(buf, len);
    expect_refused(buf, len, "duplicated");
    wr32(buf + 24 + 24, 2);
    uint8_t *e = buf + 24 + 24; /* model section overlapping the strings */
    wr32(e + 8, (uint32_t)rd64(e + 8) - 8);
    fix_crcs(buf, len);
    expect_refused(buf, len, "overlap");
    free(buf);
}

static void test_zero_byte_file(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "empty.bin");
    assert_int_equal(tu_write_file(path, "", 0), 0);
    MtrModel *m = NULL;
    MtrError err = {0};
    assert_int_equal(mtr_model_read(path, &m, &err), MTR_E_FORMAT);
    assert_null(m);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(mtr_model_read("/nonexistent/model.bin", &m, &err), MTR_E_IO);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* Sets the u32 at the start of section `kind` (+ delta) and fixes the CRCs. */
static void forge(uint8_t *buf, size_t len, uint32_t kind, size_t delta, uint32_t v,
                  const char *needle)
{
    size_t size, off = section_at(buf, kind, &size);
    uint8_t *copy = malloc(len);
    memcpy(copy, buf, len);
    wr32(copy + off + delta, v);
    fix_crcs(copy, len);
    expect_refused(copy, len, needle);
    free(copy);
}

static void test_hostile_counts(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = encoded_model(1, &len);
    forge(buf, len, 3, 0, 0xFFFFFFFFu, "section 'symbols'");
    forge(buf, len, 4, 0, 0xFFFFFFFFu, "section 'tensors'");
    forge(buf, len, 4, 0, 1u << 28, "section 'tensors'");
    forge(buf, len, 5, 0, 0xFFFFFFFFu, "section 'programs'");
    forge(buf, len, 5, 8, 0x7FFFFFFFu, "section 'programs'"); /* n_ops of the first */
    forge(buf, len, 5, 12, 0xFFFFFFFFu, "section 'programs'");
    forge(buf, len, 6, 0, 0xFFFFFFFFu, "section 'knobs'");
    forge(buf, len, 7, 0, 0xFFFFFFFFu, "section 'columns'");
    forge(buf, len, 8, 0, 0xFFFFFFFFu, "section 'tasks'");
    forge(buf, len, 9, 0, 0xFFFFFFFFu, "section 'bindings'");
    forge(buf, len, 9, 12, 0xFFFFFFFFu, "section 'bindings'"); /* a negative value */
    forge(buf, len, 10, 0, 0xFFFFFFFFu, "section 'params'");
    forge(buf, len, 10, 16, 0xFFFFFFFFu, "section 'params'"); /* element count */
    forge(buf, len, 11, 0, 0xFFFFFFFFu, "section 'vocabs'");
    forge(buf, len, 11, 8, 0xFFFFFFFFu, "section 'vocabs'"); /* words */
    forge(buf, len, 12, 0, 0xFFFFFFFFu, "section 'items'");
    forge(buf, len, 12, 4, 0xFFFFFFFFu, "section 'items'");
    forge(buf, len, 2, 0, 0xFFFFFF00u, "section 'model'"); /* name outside the strings */
    /* A string table with no NUL at its end. */
    size_t ssize, soff = section_at(buf, 1, &ssize);
    uint8_t *copy = malloc(len);
    memcpy(copy, buf, len);
    memset(copy + soff, 'x', ssize);
    fix_crcs(copy, len);
    expect_refused(copy, len, "NUL");
    free(copy);
    free(buf);
}

/* Every aligned u32 of every section set to awkward values, with valid CRCs:
 * the decoder's own checks must catch what the checksum no longer does. */
static void test_forged_fields(void **state)
{
    (void)state;
    static const uint32_t values[] = {0, 1, 2, 0xFFFFFFFFu, 0x7FFFFFFFu, 0x80000000u, 1000};
    size_t len;
    uint8_t *buf = encoded_model(1, &len);
    uint8_t *copy = malloc(len);
    size_t start = 24 + 24 * (size_t)rd32(buf + 12);
    for (size_t at = start; at + 4 <= len; at += 4) {
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            memcpy(copy, buf, len);
            wr32(copy + at, values[v]);
            fix_crcs(copy, len);
            decode_any(copy, len);
        }
    }
    for (size_t at = start; at < len; at++) { /* and every byte inverted */
        memcpy(copy, buf, len);
        copy[at] ^= 0xFF;
        fix_crcs(copy, len);
        decode_any(copy, len);
    }
    free(copy);
    free(buf);
}

/* The contract of roles: what the runtime trusts about typed outputs and the
 * update boundary is checked on load. */
static void expect_model_refused(MtrModel *m, const char *needle)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    MtrError err = {0};
    assert_int_equal(mtr_model_encode(m, &buf, &len, &err), MTR_OK);
    expect_refused(buf, len, needle);
    free(buf);
    mtr_model_free(m);
}

static void test_roles_checked(void **state)
{
    (void)state;
    MtrModel *m = build_model(0);
    m->programs[1].update_at = 5; /* loss_weight, not an update, after the boundary */
    expect_model_refused(m, "after the update boundary is not an update");
    m = build_model(0);
    m->programs[1].outputs[2].param = 7; /* a gradient of an activation */
    expect_model_refused(m, "parameter 7");
    m = build_model(0);
    m->programs[1].outputs[0].task = 9;
    expect_model_refused(m, "task 9 out of range");
    m = build_model(0);
    m->programs[0].kind = 77;
    expect_model_refused(m, "unknown kind 77");
    m = build_model(0);
    m->programs[0].kind = MTR_PROG_TRAIN; /* two train_steps */
    expect_model_refused(m, "appears twice");
    m = build_model(0);
    m->knobs[4].value = 0; /* train.batch below its row's minimum */
    expect_model_refused(m, "must be in [1, 16777216]");
    m = build_model(0);
    m->knobs[4].kind = MTR_KNOB_LR; /* an f32 kind on an i32 knob */
    expect_model_refused(m, "its kind");
    m = build_model(0);
    m->tensors[0].source = 0; /* an input nothing feeds */
    expect_model_refused(m, "has source 0");
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_atomic_write(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    MtrModel *m = build_model(1);
    MtrError err = {0};
    char *missing = tu_path(dir, "no/such/folder/model.bin");
    assert_int_equal(mtr_model_write(m, missing, &err), MTR_E_IO);
    assert_int_equal(count_entries(dir), 0);

    char *path = tu_path(dir, "model.bin");
    assert_int_equal(mtr_model_write(m, path, &err), MTR_OK);
    assert_int_equal(count_entries(dir), 1);
    MtrModel *back = NULL;
    if (mtr_model_read(path, &back, &err) != MTR_OK) fail_msg("%s", err.msg);
    assert_same_model(m, back);
    mtr_model_free(back);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((st.st_mode & 0777) == 0644);

    size_t before_len, after_len;
    char *before = tu_read_file(path, &before_len);
    m->knobs[0].value = NAN; /* encoding fails */
    assert_int_not_equal(mtr_model_write(m, path, &err), MTR_OK);
    m->knobs[0].value = 1.0;
    char *sub = tu_path(dir, "sub");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(mtr_model_write(m, sub, &err), MTR_E_IO); /* a folder is not replaced */
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(count_entries(dir), 2);
    char *after = tu_read_file(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
    free(sub);
    free(path);
    free(missing);
    mtr_model_free(m);
    tu_rmtree(dir);
    free(dir);
}

static void expect_assign(MtrModel *m, const char *text, MtrStatus want, const char *needle)
{
    MtrError err = {0};
    MtrStatus s = mtr_knob_assign(m, text, &err);
    if (s != want) fail_msg("'%s': status %d, expected %d (%s)", text, s, want, err.msg);
    if (needle && !strstr(err.msg, needle))
        fail_msg("'%s': '%s' not in '%s'", text, needle, err.msg);
}

static void test_knob_assign(void **state)
{
    (void)state;
    MtrModel *m = build_model(0);
    expect_assign(m, "retrieval.weight=0", MTR_OK, NULL);
    assert_true(m->knobs[1].value == 0.0);
    expect_assign(m, "optimizer.lr=0.05", MTR_OK, NULL);
    assert_true(m->knobs[2].value == (double)0.05f);
    expect_assign(m, "train.batch=4096", MTR_OK, NULL);
    assert_true(m->knobs[4].value == 4096);
    expect_assign(m, "train.epochs=0", MTR_OK, NULL);
    expect_assign(m, "train.seed=7", MTR_OK, NULL);
    expect_assign(m, "train.split=0.9", MTR_OK, NULL);
    expect_assign(m, "rating.weight=1e-3", MTR_OK, NULL);

    expect_assign(m, "retrieval.wieght=1", MTR_E_ARG, "did you mean 'retrieval.weight'");
    expect_assign(m, "optimiser.lr=1", MTR_E_ARG, "did you mean 'optimizer.lr'");
    expect_assign(m, "train.batch=0.5", MTR_E_ARG, "integer");
    expect_assign(m, "train.batch=abc", MTR_E_ARG, "integer");
    expect_assign(m, "train.batch=", MTR_E_ARG, "integer");
    expect_assign(m, "train.batch=99999999999", MTR_E_ARG, "32 bits");
    expect_assign(m, "train.batch=0", MTR_E_ARG, "[1, 16777216]");
    expect_assign(m, "train.batch=-8", MTR_E_ARG, "[1, 16777216]");
    expect_assign(m, "train.batch=16777217", MTR_E_ARG, "[1, 16777216]"); /* mtrc's limit too */
    expect_assign(m, "train.epochs=-1", MTR_E_ARG, "[0, 1000000]");
    expect_assign(m, "train.seed=-7", MTR_E_ARG,
                  "[0, 2147483647]");                            /* docs/dsl.md: a seed is >= 0 */
    expect_assign(m, "nosuch=1", MTR_E_ARG, "mtrun MODEL info"); /* nothing close: no guess */
    expect_assign(m, "train.split=1", MTR_E_ARG, "(0, 1)");
    expect_assign(m, "train.split=0", MTR_E_ARG, "(0, 1)");
    expect_assign(m, "rating.weight=-0.1", MTR_E_ARG, ">= 0");
    expect_assign(m, "rating.weight=nan", MTR_E_ARG, "finite");
    expect_assign(m, "rating.weight=inf", MTR_E_ARG, "finite");
    expect_assign(m, "rating.weight=1e39", MTR_E_ARG, "finite");
    expect_assign(m, "rating.weight=x", MTR_E_ARG, "number");
    expect_assign(m, "rating.weight=1.0x", MTR_E_ARG, "number");
    expect_assign(m, "optimizer.lr=0", MTR_E_ARG, "> 0");
    expect_assign(m, "optimizer.epsilon=-1", MTR_E_ARG, "> 0");
    expect_assign(m, "rating.weight", MTR_E_ARG, "KEY=VALUE");
    expect_assign(m, "=1", MTR_E_ARG, "KEY=VALUE");
    /* Nothing changed by the refusals. */
    assert_true(m->knobs[0].value == (double)1e-3f);
    assert_true(m->knobs[4].value == 4096);
    mtr_model_free(m);
}

static void test_set_file(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *path = tu_path(dir, "model.bin");
    MtrModel *m = build_model(1);
    MtrError err = {0};
    assert_int_equal(mtr_model_write(m, path, &err), MTR_OK);
    char *ok[] = {"retrieval.weight=0", "train.epochs=5"};
    if (mtr_model_set_file(path, 2, ok, &err) != MTR_OK) fail_msg("%s", err.msg);
    MtrModel *back = NULL;
    assert_int_equal(mtr_model_read(path, &back, &err), MTR_OK);
    assert_true(back->knobs[1].value == 0.0);
    assert_true(back->knobs[5].value == 5);
    back->knobs[1].value = m->knobs[1].value;
    back->knobs[5].value = m->knobs[5].value;
    assert_same_model(m, back); /* nothing else changed */
    mtr_model_free(back);

    size_t before_len, after_len;
    char *before = tu_read_file(path, &before_len);
    char *bad[] = {"rating.weight=2", "train.batch=0.5"};
    assert_int_equal(mtr_model_set_file(path, 2, bad, &err), MTR_E_ARG);
    assert_non_null(strstr(err.msg, "train.batch"));
    char *after = tu_read_file(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    assert_int_equal(count_entries(dir), 1);
    free(before);
    free(after);
    mtr_model_free(m);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_print_info(void **state)
{
    (void)state;
    MtrModel *m = build_model(1);
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    assert_non_null(f);
    mtr_model_print_info(m, f);
    fclose(f);
    static const char *const want[] = {"model movielens",
                                       "format version 2",
                                       "trained: yes",
                                       "train_step",
                                       "7 ops",
                                       "train.batch",
                                       "i32",
                                       "(vocab.user_id, 4) = (4, 4), 16 elements",
                                       "user_rating",
                                       "top_k(1, 5, 10)",
                                       "items: 4",
                                       "3 words"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i])) fail_msg("'%s' not in:\n%s", want[i], text);
    free(text);
    mtr_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_check_value),
        cmocka_unit_test(test_tensor_elems),
        cmocka_unit_test(test_roundtrip_untrained),
        cmocka_unit_test(test_roundtrip_trained),
        cmocka_unit_test(test_sides),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_header_and_table_bit_flips),
        cmocka_unit_test(test_random_bit_flips),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_zero_byte_file),
        cmocka_unit_test(test_hostile_counts),
        cmocka_unit_test(test_forged_fields),
        cmocka_unit_test(test_roles_checked),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_knob_assign),
        cmocka_unit_test(test_set_file),
        cmocka_unit_test(test_print_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
