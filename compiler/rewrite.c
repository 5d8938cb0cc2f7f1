/* Rewrite: fusing the in-batch softmax with the score product that feeds it.
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
    switch (op->kind) {
    case OP_GATHER:
    case OP_BIAS_ADD:
    case OP_RELU:
    case OP_TANH:
    case OP_SIGMOID:
    case OP_CONCAT:
    case OP_SLICE_COLS:
    case OP_ADD:
        return 1;
    case OP_MATMUL: /* rows times a parameter matrix */
        return op->iattr[0] == 0 && m->tensors[op->in[1]].role == MTR_ROLE_PARAM;
    default:
        return 0;
    }
}

/* The one input tensor that t is a function of (with parameters), row by row,
 * when that input is a vector of ids; -1 when t reads no input, several, or
 * numbers, or mixes rows. Then rows of t with equal ids are equal, which the
 * distinct-id form needs. -2 when out of memory: an error, never a reason to
 * choose the other form (the compiled model would depend on the allocator). */
static int32_t sole_id_input(const Graph *g, int32_t t)
{
    const MtrModel *m = g->mod->m;
    int32_t *stack = malloc((g->n_ops * MTR_MAX_IN + 1) * sizeof *stack);
    char *seen = calloc(m->n_tensors, 1);
    int32_t found = -1, n = 0;
    int ok = stack && seen;
    if (ok) stack[n++] = t;
    while (ok && n > 0) {
        int32_t x = stack[--n];
        if (seen[x]) continue;
        seen[x] = 1;
        const MtrTensor *ten = &m->tensors[x];
        if (ten->role == MTR_ROLE_INPUT) {
            ok = (found < 0 || found == x) && ten->dtype == MTR_DT_I32 && ten->rank == 1;
            found = x;
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
    return oom ? -2 : ok ? found : -1;
}

int rewrite_fuse_inbatch_softmax(Graph *g)
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
        int32_t qid = sole_id_input(g, mm.in[0]), cid = sole_id_input(g, mm.in[1]);
        if (qid == -2 || cid == -2) return module_fail(g->mod, "out of memory"), -1;
        int by_ids = qid >= 0 && cid >= 0;
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
