/* Rewrite: fusing the in-batch softmax with the score product that feeds it.
 *
 *   scores = matmul(q, c; 0, 1)            (B,B)
 *   loss, dunit = inbatch_softmax_xent(scores)
 * becomes
 *   loss, dq, dc, work = inbatch_softmax_xent_qc(q, c)
 *
 * when nothing else reads scores or dunit. Memory falls from a (B,B) matrix to
 * an (R,B) block, and each block is exponentiated while still in cache. */
#include "rewrite.h"

#include <stdio.h>
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
        int32_t in[] = {mm.in[0], mm.in[1]};
        int32_t first = graph_op(g, OP_INBATCH_SOFTMAX_XENT_QC, in, NULL, 0, NULL, base);
        if (first < 0) return -1;
        MtrOp f = g->ops[g->n_ops - 1];
        static const char *const what[] = {"dquery_unit", "dcandidate_unit", "score_rows"};
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
