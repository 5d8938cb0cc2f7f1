/* Autodiff: backward rules (one per op, written in terms of other ops) and the
 * pass that walks a program's forward ops in reverse, accumulating fan-in
 * gradients with add, then appends the optimizer updates. */
#include "autodiff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The name of the gradient of tensor t, "d<name>". */
static const char *dname(Graph *g, int32_t t, char *buf, size_t n)
{
    snprintf(buf, n, "d%s", g->mod->m->tensors[t].name);
    return buf;
}

static int32_t op1(Graph *g, OpKind k, int32_t a, int32_t b, const int32_t *attr, int32_t like)
{
    char name[300];
    int32_t in[] = {a, b, -1};
    return graph_op(g, k, in, attr, 0, NULL, dname(g, like, name, sizeof name));
}

static int not_differentiable(Graph *g, const MtrOp *op)
{
    module_fail(g->mod, "op %s has no gradient, yet a parameter's gradient flows through it",
                op_info(op->kind)->name);
    return -1;
}

int grad_gather(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dtable = scatter_add(dy, ids) into a table of the table's shape */
    if (needs[0]) {
        char name[300];
        int32_t in[] = {dout[0], op->in[1], op->in[0]};
        din[0] =
            graph_op(g, OP_SCATTER_ADD, in, NULL, 0, NULL, dname(g, op->in[0], name, sizeof name));
        if (din[0] < 0) return -1;
    }
    return 0;
}

int grad_embed_pool(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dtable = embed_pool_grad(dy, ids) into a table of the table's shape */
    if (needs[0]) {
        char name[300];
        int32_t in[] = {dout[0], op->in[1], op->in[0]};
        int32_t attr[MTR_MAX_IATTR] = {op->iattr[0]};
        din[0] = graph_op(g, OP_EMBED_POOL_GRAD, in, attr, 0, NULL,
                          dname(g, op->in[0], name, sizeof name));
        if (din[0] < 0) return -1;
    }
    return 0;
}

int grad_prob_product(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                      int32_t *din)
{
    /* da, db from one prob_product_grad op */
    char name[300];
    int32_t in[] = {dout[0], op->in[0], op->in[1]};
    if (graph_op(g, OP_PROB_PRODUCT_GRAD, in, NULL, 0, NULL,
                 dname(g, op->in[0], name, sizeof name)) < 0)
        return -1;
    const MtrOp *back = &g->ops[g->n_ops - 1];
    for (int i = 0; i < 2; i++) {
        if (!needs[i]) continue;
        din[i] = back->out[i];
        if (i > 0 && module_rename(g->mod, din[i], dname(g, op->in[i], name, sizeof name)))
            return -1;
    }
    return 0;
}

/* A backward op with several outputs: its outputs are the inputs' gradients,
 * in order, where needed; the others keep their plain names. */
static int multi_grad(Graph *g, const MtrOp *op, OpKind k, const int32_t *in, const int32_t *iattr,
                      int n_in_grads, const int *needs, int32_t *din)
{
    char name[300];
    if (graph_op(g, k, in, iattr, 0, NULL, dname(g, op->in[0], name, sizeof name)) < 0) return -1;
    const MtrOp *back = &g->ops[g->n_ops - 1];
    for (int i = 0; i < n_in_grads; i++) {
        if (!needs[i]) continue;
        din[i] = back->out[i];
        if (i > 0 && module_rename(g->mod, din[i], dname(g, op->in[i], name, sizeof name)))
            return -1;
    }
    return 0;
}

int grad_expert_dense(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                      int32_t *din)
{
    /* dx, dw, db from one expert_dense_grad */
    int32_t in[] = {dout[0], op->in[0], op->in[1]};
    return multi_grad(g, op, OP_EXPERT_DENSE_GRAD, in, op->iattr, 3, needs, din);
}

int grad_mix(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dex, dgate from one mix_grad */
    int32_t in[] = {dout[0], op->in[0], op->in[1]};
    return multi_grad(g, op, OP_MIX_GRAD, in, op->iattr, 2, needs, din);
}

int grad_dense_ids(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx, dw from one dense_ids_grad (dx at each id's first row; ids have none) */
    if (needs[2]) {
        module_fail(g->mod, "dense_ids: ids have no gradient");
        return -1;
    }
    int32_t in[] = {dout[0], op->in[0], op->in[1], op->in[2]};
    if (multi_grad(g, op, OP_DENSE_IDS_GRAD, in, op->iattr, 2, needs, din)) return -1;
    char name[300];
    snprintf(name, sizeof name, "d%s.work", g->mod->m->tensors[op->in[0]].name);
    return module_rename(g->mod, g->ops[g->n_ops - 1].out[2], name);
}

int grad_dense_ids_acc(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                       int32_t *din)
{
    /* dbase = dy; dx, dw from one dense_ids_grad, as for dense_ids */
    if (needs[3]) {
        module_fail(g->mod, "dense_ids_acc: ids have no gradient");
        return -1;
    }
    if (needs[0]) din[0] = dout[0];
    if (!needs[1] && !needs[2]) return 0;
    char name[300];
    int32_t in[] = {dout[0], op->in[1], op->in[2], op->in[3]};
    if (graph_op(g, OP_DENSE_IDS_GRAD, in, op->iattr, 0, NULL,
                 dname(g, op->in[1], name, sizeof name)) < 0)
        return -1;
    const MtrOp *back = &g->ops[g->n_ops - 1];
    if (needs[1]) din[1] = back->out[0];
    if (needs[2]) din[2] = back->out[1];
    if (module_rename(g->mod, back->out[1], dname(g, op->in[2], name, sizeof name))) return -1;
    snprintf(name, sizeof name, "d%s.work", g->mod->m->tensors[op->in[1]].name);
    return module_rename(g->mod, back->out[2], name);
}

int grad_uncertainty(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dloss, ds from one uncertainty_grad */
    int32_t in[] = {dout[0], op->in[0], op->in[1]};
    return multi_grad(g, op, OP_UNCERTAINTY_GRAD, in, NULL, 2, needs, din);
}

int grad_sum_squares(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = 2 x dy */
    if (needs[0] && (din[0] = op1(g, OP_SUM_SQUARES_GRAD, op->in[0], dout[0], NULL, op->in[0])) < 0)
        return -1;
    return 0;
}

int grad_stack(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* each block gets its own experts of dy */
    int32_t total = op->iattr[0] + op->iattr[1];
    int32_t at[2][MTR_MAX_IATTR] = {{0, op->iattr[0], total}, {op->iattr[0], op->iattr[1], total}};
    for (int i = 0; i < 2; i++) {
        if (!needs[i]) continue;
        char name[300];
        int32_t in[] = {dout[0]};
        din[i] = graph_op(g, OP_TAKE, in, at[i], 0, NULL, dname(g, op->in[i], name, sizeof name));
        if (din[i] < 0) return -1;
    }
    return 0;
}

int grad_row_dot(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* da = dy * b row by row, db = dy * a */
    if (needs[0] && (din[0] = op1(g, OP_ROW_SCALE, op->in[1], dout[0], NULL, op->in[0])) < 0)
        return -1;
    if (needs[1] && (din[1] = op1(g, OP_ROW_SCALE, op->in[0], dout[0], NULL, op->in[1])) < 0)
        return -1;
    return 0;
}

int grad_row_scale(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = dy * s row by row, ds = the rows' dot products of dy and x */
    if (needs[0] && (din[0] = op1(g, OP_ROW_SCALE, dout[0], op->in[1], NULL, op->in[0])) < 0)
        return -1;
    if (needs[1] && (din[1] = op1(g, OP_ROW_DOT, dout[0], op->in[0], NULL, op->in[1])) < 0)
        return -1;
    return 0;
}

int grad_concat(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* each input gets its own columns of dy */
    int32_t wa = module_shape(g->mod, op->in[0]).dim[1].k;
    int32_t wb = module_shape(g->mod, op->in[1]).dim[1].k;
    int32_t at[2][MTR_MAX_IATTR] = {{0, wa}, {wa, wb}};
    for (int i = 0; i < 2; i++) {
        if (!needs[i]) continue;
        char name[300];
        int32_t in[] = {dout[0]};
        din[i] =
            graph_op(g, OP_SLICE_COLS, in, at[i], 0, NULL, dname(g, op->in[i], name, sizeof name));
        if (din[i] < 0) return -1;
    }
    return 0;
}

int grad_matmul(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* C = op(A) op(B): dA and dB are products of dC with the other operand,
     * transposed so that each lands in its operand's own layout. */
    int ta = op->iattr[0], tb = op->iattr[1];
    int32_t a = op->in[0], b = op->in[1], dc = dout[0];
    if (needs[0]) {
        int32_t at[MTR_MAX_IATTR] = {0};
        if (!ta) {
            at[0] = 0, at[1] = !tb; /* dA = dC op(B)^T */
            din[0] = op1(g, OP_MATMUL, dc, b, at, a);
        } else {
            at[0] = tb, at[1] = 1; /* dA = op(B) dC^T */
            din[0] = op1(g, OP_MATMUL, b, dc, at, a);
        }
        if (din[0] < 0) return -1;
    }
    if (needs[1]) {
        int32_t at[MTR_MAX_IATTR] = {0};
        if (!tb) {
            at[0] = !ta, at[1] = 0; /* dB = op(A)^T dC */
            din[1] = op1(g, OP_MATMUL, a, dc, at, b);
        } else {
            at[0] = 1, at[1] = ta; /* dB = dC^T op(A) */
            din[1] = op1(g, OP_MATMUL, dc, a, at, b);
        }
        if (din[1] < 0) return -1;
    }
    return 0;
}

int grad_bias_add(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = dy; db = the column sums of dy */
    if (needs[0]) din[0] = dout[0];
    if (needs[1] && (din[1] = op1(g, OP_SUM_ROWS, dout[0], -1, NULL, op->in[1])) < 0) return -1;
    return 0;
}

int grad_bias_relu(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = dy * (y > 0), db = its column sums, from one bias_relu_grad (y the output) */
    int32_t in[] = {dout[0], op->out[0]};
    return multi_grad(g, op, OP_BIAS_RELU_GRAD, in, NULL, 2, needs, din);
}

int grad_dense_ids_acc_bias_relu(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                                 int32_t *din)
{
    /* dpre, db from bias_relu_grad (y the output); dbase, dx, dw from dpre as for dense_ids_acc */
    char name[300];
    snprintf(name, sizeof name, "d%s.pre", g->mod->m->tensors[op->out[0]].name);
    int32_t in[] = {dout[0], op->out[0]};
    if (graph_op(g, OP_BIAS_RELU_GRAD, in, NULL, 0, NULL, name) < 0) return -1;
    int32_t dpre = g->ops[g->n_ops - 1].out[0], db = g->ops[g->n_ops - 1].out[1];
    if (module_rename(g->mod, db, dname(g, op->in[4], name, sizeof name))) return -1;
    if (needs[4]) din[4] = db;
    return grad_dense_ids_acc(g, op, &dpre, needs, din);
}

/* An activation: dx = act_grad(dy, y), y being the forward output. */
static int act_grad(Graph *g, OpKind k, const MtrOp *op, const int32_t *dout, const int *needs,
                    int32_t *din)
{
    if (needs[0] && (din[0] = op1(g, k, dout[0], op->out[0], NULL, op->in[0])) < 0) return -1;
    return 0;
}

int grad_relu(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    return act_grad(g, OP_RELU_GRAD, op, dout, needs, din);
}
int grad_tanh(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    return act_grad(g, OP_TANH_GRAD, op, dout, needs, din);
}
int grad_sigmoid(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    return act_grad(g, OP_SIGMOID_GRAD, op, dout, needs, din);
}
int grad_softmax(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    return act_grad(g, OP_SOFTMAX_GRAD, op, dout, needs, din);
}
int grad_gelu(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = gelu_grad(dy, x): gelu's derivative is a function of x, not of y */
    if (needs[0] && (din[0] = op1(g, OP_GELU_GRAD, dout[0], op->in[0], NULL, op->in[0])) < 0)
        return -1;
    return 0;
}

/* A pointwise loss: dpred = loss_grad(pred, label, dloss). */
static int loss_grad(Graph *g, OpKind k, const MtrOp *op, const int32_t *dout, const int *needs,
                     int32_t *din)
{
    if (needs[1]) {
        module_fail(g->mod, "%s: gradients with respect to a label are not supported",
                    op_info(op->kind)->name);
        return -1;
    }
    if (!needs[0]) return 0;
    char name[300];
    int32_t in[] = {op->in[0], op->in[1], dout[0]};
    din[0] = graph_op(g, k, in, NULL, 0, NULL, dname(g, op->in[0], name, sizeof name));
    return din[0] < 0 ? -1 : 0;
}

int grad_mse(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    return loss_grad(g, OP_MSE_GRAD, op, dout, needs, din);
}
int grad_bce_logits(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    return loss_grad(g, OP_BCE_LOGITS_GRAD, op, dout, needs, din);
}

int grad_bce_prob(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    return loss_grad(g, OP_BCE_PROB_GRAD, op, dout, needs, din);
}

int grad_inbatch_softmax_xent(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                              int32_t *din)
{
    /* dscores = (softmax - I) * dloss, the fused op having left softmax - I in out[1] */
    if (dout[1] >= 0) {
        module_fail(g->mod, "inbatch_softmax_xent: its second output is not differentiable");
        return -1;
    }
    if (needs[0] && (din[0] = op1(g, OP_SCALE, op->out[1], dout[0], NULL, op->in[0])) < 0)
        return -1;
    return 0;
}

int grad_inbatch_softmax_xent_qc(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                                 int32_t *din)
{
    /* dq = dq_unit * dloss, dc = dc_unit * dloss (the op made the unit gradients) */
    for (int k = 1; k < 4; k++)
        if (dout[k] >= 0) {
            module_fail(g->mod, "inbatch_softmax_xent_qc: only its loss is differentiable");
            return -1;
        }
    for (int i = 0; i < 2; i++)
        if (needs[i] && (din[i] = op1(g, OP_SCALE, op->out[1 + i], dout[0], NULL, op->in[i])) < 0)
            return -1;
    return 0;
}

int grad_inbatch_softmax_xent_opt(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                                  int32_t *din)
{
    if (needs[2] || needs[3]) {
        module_fail(g->mod, "inbatch_softmax_xent_opt: keys and logq have no gradient");
        return -1;
    }
    return grad_inbatch_softmax_xent_qc(g, op, dout, needs, din);
}

int grad_inbatch_softmax_xent_mixed(Graph *g, const MtrOp *op, const int32_t *dout,
                                    const int *needs, int32_t *din)
{
    if (needs[2] || needs[3] || needs[5] || needs[6]) {
        module_fail(g->mod, "inbatch_softmax_xent_mixed: keys and logq have no gradient");
        return -1;
    }
    for (int k = 1; k < 6; k++)
        if (dout[k] >= 0) {
            module_fail(g->mod, "inbatch_softmax_xent_mixed: only its loss is differentiable");
            return -1;
        }
    /* dq, dc, dn: the op's unit gradients times dloss */
    static const int of[3][2] = {{0, 1}, {1, 2}, {4, 3}};
    for (int i = 0; i < 3; i++)
        if (needs[of[i][0]] && (din[of[i][0]] = op1(g, OP_SCALE, op->out[of[i][1]], dout[0], NULL,
                                                    op->in[of[i][0]])) < 0)
            return -1;
    return 0;
}

int grad_inbatch_softmax_xent_ids(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs,
                                  int32_t *din)
{
    if (needs[2] || needs[3]) {
        module_fail(g->mod, "inbatch_softmax_xent_ids: ids have no gradient");
        return -1;
    }
    return grad_inbatch_softmax_xent_qc(g, op, dout, needs, din);
}

int grad_scale(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = dy * s; s is a loss gradient, never a function of the parameters */
    if (needs[1]) return not_differentiable(g, op);
    if (needs[0] && (din[0] = op1(g, OP_SCALE, dout[0], op->in[1], NULL, op->in[0])) < 0) return -1;
    return 0;
}

int grad_loss_weight(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = w * dy, w the same knob */
    if (needs[0] && (din[0] = op1(g, OP_LOSS_WEIGHT, dout[0], -1, op->iattr, op->in[0])) < 0)
        return -1;
    return 0;
}

int grad_add(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    (void)g, (void)op;
    /* da = db = dy */
    if (needs[0]) din[0] = dout[0];
    if (needs[1]) din[1] = dout[0];
    return 0;
}

int grad_sum_all(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = dy everywhere */
    if (needs[0] && (din[0] = op1(g, OP_BROADCAST, dout[0], op->in[0], NULL, op->in[0])) < 0)
        return -1;
    return 0;
}

int grad_layer_norm(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx, dgain, dbias from one layer_norm_grad op, which reads the row statistics
     * the forward kept (out[1], out[2]) rather than computing them again */
    if (dout[1] >= 0 || dout[2] >= 0) {
        module_fail(g->mod, "layer_norm: its row statistics are not differentiable");
        return -1;
    }
    char name[300];
    int32_t in[] = {dout[0], op->in[0], op->in[1], op->out[1], op->out[2]};
    if (graph_op(g, OP_LAYER_NORM_GRAD, in, NULL, 0, NULL, dname(g, op->in[0], name, sizeof name)) <
        0)
        return -1;
    const MtrOp *back = &g->ops[g->n_ops - 1];
    for (int i = 0; i < 3; i++) {
        if (!needs[i]) continue;
        din[i] = back->out[i];
        if (i > 0 && module_rename(g->mod, din[i], dname(g, op->in[i], name, sizeof name)))
            return -1;
    }
    return 0;
}

int grad_dropout(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din)
{
    /* dx = dropout_grad(dy, step) with the same p, seed and salt: the same mask */
    if (needs[1]) return not_differentiable(g, op);
    if (needs[0] &&
        (din[0] = op1(g, OP_DROPOUT_GRAD, dout[0], op->in[1], op->iattr, op->in[0])) < 0)
        return -1;
    return 0;
}

typedef int (*GradRule)(Graph *, const MtrOp *, const int32_t *, const int *, int32_t *);
/* Rows that say NONE (backward and update ops) have no rule. */
#define GRAD_RULE_GRAD(n) grad_##n
#define GRAD_RULE_NONE(n) NULL
static const GradRule grad_rules[OP_COUNT] = {
#define X(E, n, id, ni, no, nk, f, bwd, at) [OP_##E] = GRAD_RULE_##bwd(n),
#include "mtr/ops.def"
#undef X
};

/* Renames tensor x to d<t>.<part> when it still carries the plain name d<t>. */
static int name_part(Graph *g, int32_t x, int32_t t, int part)
{
    char plain[300], name[320];
    dname(g, t, plain, sizeof plain);
    if (strcmp(g->mod->m->tensors[x].name, plain) != 0) return 0;
    snprintf(name, sizeof name, "%s.%d", plain, part);
    return module_rename(g->mod, x, name);
}

/* Adds gradient contribution d to grads[t], summing fan-in with add: the sum
 * is d<t> and the contributions d<t>.1, d<t>.2, ... (parts[t] counts them). */
static int accumulate(Graph *g, int32_t *grads, int *parts, int32_t t, int32_t d)
{
    if (grads[t] < 0) {
        grads[t] = d;
        parts[t] = 1;
        return 0;
    }
    if (parts[t] == 1 && name_part(g, grads[t], t, 1)) return -1;
    if (name_part(g, d, t, ++parts[t])) return -1;
    char name[300];
    int32_t in[] = {grads[t], d};
    grads[t] = graph_op(g, OP_ADD, in, NULL, 0, NULL, dname(g, t, name, sizeof name));
    return grads[t] < 0 ? -1 : 0;
}

int autodiff_backward(Graph *g, int32_t loss, int32_t **grads_out, uint32_t *n_grads)
{
    const MtrModel *m = g->mod->m;
    uint32_t n = m->n_tensors, n_fwd = g->n_ops;
    int32_t *grads = malloc(n * sizeof *grads);
    int *parts = calloc(n, sizeof *parts);
    char *requires = calloc(n, 1);
    if (!grads || !requires || !parts) {
        free(grads);
        free(parts);
        free(requires);
        module_fail(g->mod, "out of memory");
        return -1;
    }
    for (uint32_t t = 0; t < n; t++) {
        grads[t] = -1;
        requires[t] = m->tensors[t].role == MTR_ROLE_PARAM;
    }
    /* A tensor needs a gradient when it depends on a parameter. */
    for (uint32_t i = 0; i < n_fwd; i++) {
        const MtrOp *op = &g->ops[i];
        int any = 0;
        for (int k = 0; k < op_info(op->kind)->n_in; k++) any |= requires[op->in[k]];
        for (int k = 0; k < op_info(op->kind)->n_out; k++) requires[op->out[k]] = (char)any;
    }
    int rc = 0;
    MtrShape one = shape_scalar();
    grads[loss] = graph_op(g, OP_FILL, NULL, NULL, 1.0f, &one, "dloss");
    if (grads[loss] < 0) rc = -1;
    for (uint32_t i = n_fwd; rc == 0 && i-- > 0;) {
        MtrOp op = g->ops[i]; /* a copy: appending may move g->ops */
        const OpInfo *info = op_info(op.kind);
        int32_t dout[MTR_MAX_OUT], din[MTR_MAX_IN];
        int needs[MTR_MAX_IN] = {0}, any_out = 0, any_in = 0;
        for (int k = 0; k < MTR_MAX_OUT; k++) dout[k] = -1;
        for (int k = 0; k < MTR_MAX_IN; k++) din[k] = -1;
        for (int k = 0; k < info->n_out; k++) any_out |= (dout[k] = grads[op.out[k]]) >= 0;
        for (int k = 0; k < info->n_in; k++) any_in |= needs[k] = requires[op.in[k]];
        if (!any_out || !any_in) continue;
        if (dout[0] < 0 && info->n_out > 1) {
            module_fail(g->mod, "%s: only its first output can carry a gradient", info->name);
            rc = -1;
            break;
        }
        if (!grad_rules[op.kind] ? not_differentiable(g, &op)
                                 : grad_rules[op.kind](g, &op, dout, needs, din)) {
            rc = -1;
            break;
        }
        for (int k = 0; k < info->n_in && rc == 0; k++)
            if (needs[k] && din[k] >= 0) rc = accumulate(g, grads, parts, op.in[k], din[k]);
    }
    free(requires);
    free(parts);
    if (rc) {
        free(grads);
        return -1;
    }
    *grads_out = grads;
    *n_grads = n;
    return 0;
}

static int32_t state_like(Graph *g, int32_t p, const char *what, MtrInit init, float arg)
{
    Module *mod = g->mod;
    int32_t t = module_tensorf(mod, MTR_ROLE_OPTSTATE, module_shape(mod, p), "%s.%s",
                               mod->m->tensors[p].name, what);
    if (t >= 0) {
        mod->m->tensors[t].init = (uint8_t)init;
        mod->m->tensors[t].init_arg = arg;
    }
    return t;
}

/* Whether parameter p is an embedding table: a gather reads it. */
static int is_table(const Graph *g, int32_t p)
{
    for (uint32_t i = 0; i < g->n_ops; i++)
        if (g->ops[i].kind == OP_GATHER && g->ops[i].in[0] == p) return 1;
    return 0;
}

/* Appends the update of parameter p by optimizer opt, whose options are the
 * knobs kn[] of the kinds LR, EPSILON, INITIAL_ACCUMULATOR, BETA1, BETA2
 * (the main optimizer's, or optimizer_embedding's). */
static int update_param(Graph *g, OptimizerKind opt, int32_t p, int32_t grad, int32_t step,
                        const int32_t kn[5])
{
    int32_t attr[MTR_MAX_IATTR] = {kn[0], kn[1]};
    switch (opt) {
    case OPT_SGD: {
        int32_t in[] = {p, grad};
        return graph_op_to(g, OP_SGD_UPDATE, in, NULL, attr);
    }
    case OPT_ADAGRAD: {
        int32_t acc = state_like(g, p, "accumulator", MTR_INIT_KNOB, (float)kn[2]);
        int32_t in[] = {p, grad, acc};
        return acc < 0 ? -1 : graph_op_to(g, OP_ADAGRAD_UPDATE, in, NULL, attr);
    }
    case OPT_ADAM: {
        int32_t mm = state_like(g, p, "m", MTR_INIT_ZEROS, 0);
        int32_t vv = state_like(g, p, "v", MTR_INIT_ZEROS, 0);
        int32_t in[] = {p, grad, mm, vv, step};
        int32_t at[MTR_MAX_IATTR] = {kn[0], kn[3], kn[4], kn[1]};
        return mm < 0 || vv < 0 ? -1 : graph_op_to(g, OP_ADAM_UPDATE, in, NULL, at);
    }
    default:
        module_fail(g->mod, "optimizer %d has no update rule", (int)opt);
        return -1;
    }
}

int autodiff_updates(Graph *g, Lowered *l, const int32_t *grads, uint32_t n_grads)
{
    Module *mod = g->mod;
    int32_t step = l->step;
    if ((l->optimizer == OPT_ADAM || l->emb_optimizer == OPT_ADAM) &&
        (step = lower_step(mod, l)) < 0)
        return -1;
    if (step >= 0) {
        int32_t in[] = {step};
        if (graph_op_to(g, OP_STEP_INC, in, NULL, NULL)) return -1;
    }
    const int32_t *k = l->knob_of;
    const int32_t main_knobs[5] = {k[MTR_KNOB_LR], k[MTR_KNOB_EPSILON],
                                   k[MTR_KNOB_INITIAL_ACCUMULATOR], k[MTR_KNOB_BETA1],
                                   k[MTR_KNOB_BETA2]};
    const int32_t emb_knobs[5] = {k[MTR_KNOB_EMB_LR], k[MTR_KNOB_EMB_EPSILON],
                                  k[MTR_KNOB_EMB_INITIAL_ACCUMULATOR], k[MTR_KNOB_EMB_BETA1],
                                  k[MTR_KNOB_EMB_BETA2]};
    for (uint32_t p = 0; p < n_grads; p++) {
        if (mod->m->tensors[p].role != MTR_ROLE_PARAM || grads[p] < 0) continue;
        if (lower_add_output(l, PROG_TRAIN, MTR_OUT_GRADIENT, -1, grads[p], (int32_t)p)) {
            module_fail(mod, "out of memory");
            return -1;
        }
        /* optimizer_embedding, when given, updates the embedding tables */
        int emb = l->emb_optimizer != OPT_COUNT && is_table(g, (int32_t)p);
        if (update_param(g, emb ? l->emb_optimizer : l->optimizer, (int32_t)p, grads[p], step,
                         emb ? emb_knobs : main_knobs))
            return -1;
    }
    return mod->failed ? -1 : 0;
}
