/* Rewrites: passes that replace a subgraph of a forward program by a cheaper
 * exact equivalent, before autodiff sees it. */
#ifndef MTR_REWRITE_H
#define MTR_REWRITE_H

#include "graph.h"

/* Replaces every matmul(q, c^T) whose only reader is inbatch_softmax_xent by
 * one fused op over q and c (inbatch_softmax_xent_ids when each side is a
 * function of one id column, else inbatch_softmax_xent_qc): the same loss and
 * gradients with no (B,B) score matrix. The loss keeps its tensor id. Returns
 * how many were fused, or -1 with g->mod->why set. */
int rewrite_fuse_inbatch_softmax(Graph *g);

#endif
