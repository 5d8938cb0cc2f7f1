/* Rewrites: fusing the in-batch softmax with the score product that feeds it
 * (below), a dense layer over a concat of id functions (rewrite_dense_over_ids),
 * bias_add and relu (rewrite_bias_relu), the sparse embedding updates.
 *
 *   scores = matmul(q, c; 0, 1)            (B,B)
 *   loss, dunit = inbatch_softmax_xent(scores)
 * becomes, when nothing else reads scores or dunit,
 *   loss, dq, dc, work = inbatch_softmax_xent_ids(q, c, qid, cid)
 * if q and c are each a function of one id column (then rows with equal ids
 * are equal, and the softmax is computed exactly on the distinct ids: at
 * MovieLens 100K's batch of 8192, some 940 users by 1660 titles instead of
 * 8192 by 8192), or else
 *   loss, dq, dc, work = inbatch_softmax_xent_qc(q, c)
 * which makes the scores a block of rows at a time. Either way no (B,B)
 * matrix is kept. */
#include "rewrite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int readers(const Graph *g, int32_t t)
{
    int n = 0;
    for (uint32_t i = 0; i < g->n_ops; i++)
        for (int k = 0; k < op_info(g->ops[i].kind)->n_in; k++) n += g->ops[i].in[k] == t;
    return n;
}

/* The index of the op writing t, or -1. */
static int64_t writer(const Graph *g, int32_t t)
{
    for (uint32_t i = 0; i < g->n_ops; i++)
        for (int k = 0; k < op_info(g->ops[i].kind)->n_out; k++)
            if (g->ops[i].out[k] == t) return i;
    return -1;
}

/* Whether row r of op's output depends only on row r of its batch inputs (and
 * on parameters), so that equal input rows give equal output rows. */
static int rowwise(const MtrModel *m, const MtrOp *op)
{
    uint32_t flags = op_info(op->kind)->flags;
    if (flags & OPF_ROWWISE) return 1;
    if (!(flags & OPF_ROWWISE_FIRST) || op->iattr[0] != 0) return 0;
    for (int k = 1; k < op_info(op->kind)->n_in; k++)
        if (m->tensors[op->in[k]].role != MTR_ROLE_PARAM) return 0;
    return 1;
}

/* Whether data column `col` is a side column of `key` (mtr/sides.def). */
static int side_of(const char *key, const char *col)
{
    static const char *const rows[][2] = {
#define X(k, c) {#k, #c},
#include "mtr/sides.def"
#undef X
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (strcmp(rows[i][0], key) == 0 && strcmp(rows[i][1], col) == 0) return 1;
    return 0;
}

/* The data column an input tensor reads (a feature's own column). */
static int32_t data_column(const MtrModel *m, const MtrTensor *ten)
{
    int32_t c = ten->source_column;
    if (c < 0 || (uint32_t)c >= m->n_columns) return -1;
    return m->columns[c].feature ? m->columns[c].feature_of : c;
}

/* The input tensor of ids that t is a function of (with parameters), row by
 * row: its one input, or (unless only_one) the one plain id input among several whose others
 * all read that id's own column or its side columns (mtr/sides.def, a feature
 * joined on an id is a function of that id). Then rows of t with equal ids
 * are equal, which the distinct-id form needs. -1 when there is no such
 * input: t reads no input, mixes rows, or reads a per-row column, whose
 * names are then appended to why (when given). -2 when out of memory: an
 * error, never a reason to choose the other form (the compiled model would
 * depend on the allocator). */
static int32_t sole_id_input(const Graph *g, int32_t t, int only_one, char *why, size_t why_cap)
{
    const MtrModel *m = g->mod->m;
    int32_t *stack = malloc((g->n_ops * MTR_MAX_IN + 1) * sizeof *stack);
    char *seen = calloc(m->n_tensors, 1);
    int32_t inputs[64];
    int n_inputs = 0, n = 0;
    int ok = stack && seen;
    if (ok) stack[n++] = t;
    while (ok && n > 0) {
        int32_t x = stack[--n];
        if (seen[x]) continue;
        seen[x] = 1;
        const MtrTensor *ten = &m->tensors[x];
        if (ten->role == MTR_ROLE_INPUT) {
            if (n_inputs == 64)
                ok = 0;
            else
                inputs[n_inputs++] = x;
            continue;
        }
        int64_t w = writer(g, x);
        if (w < 0) continue; /* a parameter */
        const MtrOp *op = &g->ops[w];
        if (!rowwise(m, op)) {
            ok = 0;
            break;
        }
        for (int k = 0; k < op_info(op->kind)->n_in; k++)
            if (!seen[op->in[k]]) stack[n++] = op->in[k];
    }
    int oom = !stack || !seen;
    free(stack);
    free(seen);
    if (oom) return -2;
    if (!ok || n_inputs == 0 || (only_one && n_inputs > 1)) return -1;
    /* the key: a plain id vector (a looked-up column read as it is) of which
     * every other input reads the column itself or a side column */
    int best = -1, best_bad = n_inputs + 1;
    for (int i = 0; i < n_inputs; i++) {
        const MtrTensor *ten = &m->tensors[inputs[i]];
        int32_t c = ten->source_column;
        /* Never a feature column: lookup(min_count = N) maps every rare value
         * to the one out-of-vocabulary id, whose rows then differ in their
         * side columns, so grouping rows by it would not be exact. A plain
         * lookup's vocabulary holds every value of the training folder. */
        if (ten->dtype != MTR_DT_I32 || ten->rank != 1 || c < 0 || (uint32_t)c >= m->n_columns ||
            m->columns[c].feature)
            continue;
        int bad = 0;
        for (int j = 0; j < n_inputs; j++) {
            int32_t dc = data_column(m, &m->tensors[inputs[j]]);
            bad += j != i && !(dc >= 0 && (strcmp(m->columns[dc].name, m->columns[c].name) == 0 ||
                                           side_of(m->columns[c].name, m->columns[dc].name)));
        }
        if (bad < best_bad) best = i, best_bad = bad;
    }
    if (best < 0) return -1;
    if (best_bad == 0) return inputs[best];
    const char *kname = m->columns[m->tensors[inputs[best]].source_column].name;
    for (int j = 0; why && j < n_inputs; j++) {
        int32_t dc = data_column(m, &m->tensors[inputs[j]]);
        const char *cname = dc >= 0 ? m->columns[dc].name : "?";
        if (j == best || (dc >= 0 && (strcmp(cname, kname) == 0 || side_of(kname, cname))))
            continue;
        size_t used = strlen(why);
        int32_t sc = m->tensors[inputs[j]].source_column;
        const MtrColumn *jc = sc >= 0 && (uint32_t)sc < m->n_columns ? &m->columns[sc] : NULL;
        if (jc && jc->feature == MTR_FEAT_LOOKUP && jc->feature_arg > 1)
            snprintf(why + used, why_cap - used,
                     "%s'%s' (lookup(min_count = %d): its rare values share one id)",
                     used ? ", " : "", cname, (int)jc->feature_arg);
        else
            snprintf(why + used, why_cap - used, "%s'%s'", used ? ", " : "", cname);
    }
    return -1;
}

int rewrite_fuse_inbatch_softmax(Graph *g)
{
    return rewrite_fuse_inbatch_softmax_notes(g, NULL);
}

int rewrite_fuse_inbatch_softmax_notes(Graph *g, FILE *notes)
{
    int fused = 0;
    for (uint32_t i = 0; i < g->n_ops; i++) {
        MtrOp x = g->ops[i];
        if (x.kind != OP_INBATCH_SOFTMAX_XENT) continue;
        int64_t j = writer(g, x.in[0]);
        if (j < 0) continue;
        MtrOp mm = g->ops[j];
        if (mm.kind != OP_MATMUL || mm.iattr[0] != 0 || mm.iattr[1] != 1) continue;
        if (readers(g, x.in[0]) != 1 || readers(g, x.out[1]) != 0) continue;

        /* Build the fused op at the end (shapes checked by its rule), then
         * move it to the product's place and drop the softmax. */
        char base[256];
        const char *loss_name = g->mod->m->tensors[x.out[0]].name;
        size_t len = strlen(loss_name);
        if (len > 5 && strcmp(loss_name + len - 5, ".loss") == 0) len -= 5;
        snprintf(base, sizeof base, "%.*s.inbatch_loss", (int)len, loss_name);
        char why[512] = "";
        int32_t qid = sole_id_input(g, mm.in[0], 0, why, sizeof why);
        int32_t cid = sole_id_input(g, mm.in[1], 0, why, sizeof why);
        if (qid == -2 || cid == -2) return module_fail(g->mod, "out of memory"), -1;
        int by_ids = qid >= 0 && cid >= 0;
        if (!by_ids && notes && why[0])
            fprintf(notes,
                    "mtrc: note: %.*s: the retrieval towers read the per-row column%s %s, so "
                    "the in-batch softmax is computed in the blocked form "
                    "(inbatch_softmax_xent_qc), exact but slower than on distinct ids\n",
                    (int)len, loss_name, strchr(why, ',') ? "s" : "", why);
        int32_t in[] = {mm.in[0], mm.in[1], qid, cid};
        int32_t first =
            graph_op(g, by_ids ? OP_INBATCH_SOFTMAX_XENT_IDS : OP_INBATCH_SOFTMAX_XENT_QC, in, NULL,
                     0, NULL, base);
        if (first < 0) return -1;
        MtrOp f = g->ops[g->n_ops - 1];
        static const char *const what[] = {"dquery_unit", "dcandidate_unit", "workspace"};
        for (int k = 0; k < 3; k++) {
            snprintf(base, sizeof base, "%.*s.%s", (int)len, loss_name, what[k]);
            if (module_rename(g->mod, f.out[1 + k], base)) return -1;
        }
        g->n_ops--;
        /* The fused op's own scalar loss tensor is replaced by the old one, so
         * tasks and later ops keep pointing at it. */
        f.out[0] = x.out[0];
        g->ops[j] = f;
        memmove(&g->ops[i], &g->ops[i + 1], (g->n_ops - i - 1) * sizeof *g->ops);
        g->n_ops--;
        i--;
        fused++;
    }
    return fused;
}

/* The most parts a dense layer over a concat is split into. */
#define MAX_PARTS 16

/* Appends the leaves of t to part (with their first columns in col): t itself,
 * or when t is a concat that nothing else reads, the leaves of its two inputs.
 * Returns the new count, or -1 when there are more than MAX_PARTS or a width
 * is not a constant. */
static int concat_parts(const Graph *g, int32_t t, int32_t at, int32_t *part, int32_t *col, int n)
{
    int64_t w = writer(g, t);
    if (w >= 0 && g->ops[w].kind == OP_CONCAT && readers(g, t) == 1) {
        int32_t a = g->ops[w].in[0], b = g->ops[w].in[1];
        MtrShape sa = module_shape(g->mod, a);
        if (sa.rank != 2 || sa.dim[1].sym >= 0) return -1;
        n = concat_parts(g, a, at, part, col, n);
        return n < 0 ? -1 : concat_parts(g, b, at + sa.dim[1].k, part, col, n);
    }
    if (n >= MAX_PARTS) return -1;
    part[n] = t, col[n] = at;
    return n + 1;
}

/* Removes op i, shifting the later ones down. */
static void drop_op(Graph *g, uint32_t i)
{
    memmove(&g->ops[i], &g->ops[i + 1], (g->n_ops - i - 1) * sizeof *g->ops);
    g->n_ops--;
}

int rewrite_dense_over_ids(Graph *g)
{
    const MtrModel *m = g->mod->m;
    int done = 0;
    for (uint32_t j = 0; j < g->n_ops; j++) {
        MtrOp mm = g->ops[j];
        if (mm.kind != OP_MATMUL || mm.iattr[0] != 0 || mm.iattr[1] != 0) continue;
        if (m->tensors[mm.in[1]].role != MTR_ROLE_PARAM) continue;
        int32_t part[MAX_PARTS], col[MAX_PARTS], ids[MAX_PARTS];
        int n = concat_parts(g, mm.in[0], 0, part, col, 0);
        if (n < 2) continue;
        MtrShape ws = module_shape(g->mod, mm.in[1]);
        if (ws.dim[1].sym >= 0) continue;
        int ok = 1;
        for (int p = 0; p < n && ok; p++) {
            MtrShape ps = module_shape(g->mod, part[p]);
            /* one input only: two rows with the out-of-vocabulary id may
             * differ in a side feature (a cold-start user in predict --file) */
            ids[p] = sole_id_input(g, part[p], 1, NULL, 0);
            if (ids[p] == -2) return module_fail(g->mod, "out of memory"), -1;
            ok = ids[p] >= 0 && ps.rank == 2 && ps.dim[1].sym < 0 && ps.dim[1].k > 0;
        }
        if (!ok) continue;

        /* The new ops go at the end, then take the product's place: the
         * first part's dense_ids, then each other part's dense_ids_acc adding
         * its products in the same pass; the last writes the product's own
         * tensor (so bias_add and the rest keep reading it). */
        const char *base = m->tensors[mm.out[0]].name;
        uint32_t start = g->n_ops;
        int32_t sum = -1;
        for (int p = 0; p < n; p++) {
            char name[300];
            snprintf(name, sizeof name, "%s.part%d", base, p + 1);
            int32_t in[] = {sum, part[p], mm.in[1], ids[p]}, at[MTR_MAX_IATTR] = {col[p]};
            sum = p == 0 ? graph_op(g, OP_DENSE_IDS, in + 1, at, 0, NULL, name)
                         : graph_op(g, OP_DENSE_IDS_ACC, in, at, 0, NULL, name);
            if (sum < 0) return -1;
            snprintf(name, sizeof name, "%s.part%d.work", base, p + 1);
            if (module_rename(g->mod, g->ops[g->n_ops - 1].out[1], name)) return -1;
        }
        g->ops[g->n_ops - 1].out[0] = mm.out[0];
        uint32_t k = g->n_ops - start;
        MtrOp *fresh = malloc(k * sizeof *fresh);
        if (!fresh) return module_fail(g->mod, "out of memory"), -1;
        memcpy(fresh, &g->ops[start], k * sizeof *fresh);
        g->n_ops = start;
        /* room for k ops in the product's place (the graph held them a moment ago) */
        memmove(&g->ops[j + k], &g->ops[j + 1], (g->n_ops - j - 1) * sizeof *g->ops);
        memcpy(&g->ops[j], fresh, k * sizeof *fresh);
        g->n_ops += k - 1;
        free(fresh);
        /* the concats are read by nothing now */
        for (uint32_t i = 0; i < j;) {
            if (g->ops[i].kind == OP_CONCAT && readers(g, g->ops[i].out[0]) == 0) {
                drop_op(g, i);
                j--;
            } else {
                i++;
            }
        }
        j += k - 1;
        done++;
    }
    return done;
}

int rewrite_bias_relu(Graph *g)
{
    int done = 0;
    for (uint32_t j = 0; j < g->n_ops; j++) {
        if (g->ops[j].kind != OP_RELU) continue;
        int32_t pre = g->ops[j].in[0];
        int64_t i = writer(g, pre);
        if (i < 0 || g->ops[i].kind != OP_BIAS_ADD || readers(g, pre) != 1) continue;
        /* bias_add's place and inputs, relu's output (so its readers keep it) */
        MtrOp f = g->ops[i];
        f.kind = OP_BIAS_RELU;
        f.out[0] = g->ops[j].out[0];
        g->ops[i] = f;
        drop_op(g, j);
        j--;
        done++;
    }
    /* a bias_relu over the last part of a dense layer over ids: one pass */
    for (uint32_t j = 0; j < g->n_ops; j++) {
        if (g->ops[j].kind != OP_BIAS_RELU) continue;
        int32_t pre = g->ops[j].in[0];
        int64_t i = writer(g, pre);
        if (i < 0 || g->ops[i].kind != OP_DENSE_IDS_ACC || readers(g, pre) != 1) continue;
        MtrOp f = g->ops[i];
        f.kind = OP_DENSE_IDS_ACC_BIAS_RELU;
        f.in[4] = g->ops[j].in[1];
        f.out[0] = g->ops[j].out[0];
        g->ops[i] = f;
        drop_op(g, j);
        j--;
    }
    return done;
}

/* The row-wise form of a dense update, or OP_COUNT. Adam's dense (Keras)
 * semantics decay every row's moments each step, so it has a row-wise form
 * only when the lazy variant is asked for. */
static OpKind rows_update(OpKind dense, int lazy_adam)
{
    switch (dense) {
    case OP_SGD_UPDATE:
        return OP_SGD_UPDATE_ROWS;
    case OP_ADAGRAD_UPDATE:
        return OP_ADAGRAD_UPDATE_ROWS;
    case OP_ADAM_UPDATE:
        return lazy_adam ? OP_ADAM_UPDATE_ROWS : OP_COUNT;
    default:
        return OP_COUNT;
    }
}

int rewrite_sparse_embedding_grads(Graph *g, int lazy_adam)
{
    int done = 0;
    for (uint32_t u = 0; u < g->n_ops; u++) {
        MtrOp up = g->ops[u];
        OpKind rows_kind = rows_update(up.kind, lazy_adam);
        if (rows_kind == OP_COUNT) continue;
        int32_t grad = up.in[1];
        int64_t w = writer(g, grad);
        if (w < 0 || g->ops[w].kind != OP_SCATTER_ADD || readers(g, grad) != 1) continue;
        MtrOp sc = g->ops[w];
        if (sc.in[2] != up.in[0]) continue; /* a table's gradient updates that table */

        /* embedding_grad built at the end, then moved to scatter_add's place */
        char base[300];
        snprintf(base, sizeof base, "%s.rows", g->mod->m->tensors[grad].name);
        int32_t in[] = {sc.in[0], sc.in[1], sc.in[2]};
        if (graph_op(g, OP_EMBEDDING_GRAD, in, NULL, 0, NULL, base) < 0) return -1;
        MtrOp eg = g->ops[--g->n_ops];
        static const char *const what[] = {"ids", "work"};
        for (int k = 0; k < 2; k++) {
            snprintf(base, sizeof base, "%s.%s", g->mod->m->tensors[grad].name, what[k]);
            if (module_rename(g->mod, eg.out[1 + k], base)) return -1;
        }
        g->ops[w] = eg;
        MtrOp ru = up;
        ru.kind = rows_kind;
        ru.in[1] = eg.out[0];
        ru.in[2] = eg.out[1];
        /* the state after param and the gradient's two tensors: accum, or m, v, step */
        for (int k = 2; k < op_info(up.kind)->n_in; k++) ru.in[k + 1] = up.in[k];
        char why[256];
        MtrShape ins[MTR_MAX_IN], outs[MTR_MAX_OUT];
        for (int k = 0; k < op_info(rows_kind)->n_in; k++) ins[k] = module_shape(g->mod, ru.in[k]);
        if (shape_infer(rows_kind, ins, ru.iattr, outs, why, sizeof why)) {
            module_fail(g->mod, "%s: %s", op_info(rows_kind)->name, why);
            return -1;
        }
        g->ops[u] = ru;
        done++;
    }
    return done;
}
