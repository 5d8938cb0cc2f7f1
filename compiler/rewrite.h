/* Rewrites: passes that replace a subgraph of a program by a cheaper exact
 * equivalent (the fused softmax before autodiff sees the forward program, the
 * sparse embedding updates after it has appended the updates). */
#ifndef MTR_REWRITE_H
#define MTR_REWRITE_H

#include "graph.h"

#include <stdio.h>

/* Replaces every matmul(q, c^T) whose only reader is inbatch_softmax_xent by
 * one fused op over q and c (inbatch_softmax_xent_ids when each side is a
 * function of one id column, else inbatch_softmax_xent_qc): the same loss and
 * gradients with no (B,B) score matrix. The loss keeps its tensor id. Returns
 * how many were fused, or -1 with g->mod->why set. */
int rewrite_fuse_inbatch_softmax(Graph *g);
/* The same, printing a `note:` to notes (when not NULL) that names the
 * per-row columns when the retrieval towers leave only the blocked form. A
 * tower keeps the distinct-id form when it reads one id and that id's side
 * columns (mtr/sides.def). */
int rewrite_fuse_inbatch_softmax_notes(Graph *g, FILE *notes);

/* Before autodiff: every matmul(concat(a, b, ...), w) with w a parameter,
 * whose concat nothing else reads and whose parts are each a function of one
 * id column (sole_id_input), becomes dense_ids(part 1, w; its rows of w)
 * followed by dense_ids_acc for each other part, adding its product in the
 * same pass: each part's product made once per distinct id, and
 * the backward likewise (dense_ids_grad). The same result up to rounding.
 * The product keeps its tensor id. Returns how many were rewritten, or -1
 * with g->mod->why set. */
int rewrite_dense_over_ids(Graph *g);

/* Before autodiff: every relu that is the only reader of a bias_add's output
 * becomes, with that bias_add, one bias_relu (in the bias_add's place, writing
 * the relu's tensor), whose backward is one bias_relu_grad: relu_grad and the
 * bias's sum_rows in one pass. The same bits; a (B,H) pass fewer each way.
 * A bias_relu whose input only a dense_ids_acc writes and only it reads joins
 * that op too (dense_ids_acc_bias_relu). Returns how many relus were fused. */
int rewrite_bias_relu(Graph *g);

/* After the updates are appended: every sgd_update or adagrad_update whose
 * gradient is only a scatter_add into its own table (an embedding's) gets the
 * gradient as embedding_grad's (distinct ids, their rows) and becomes
 * sgd_update_rows / adagrad_update_rows, so a step's cost no longer depends on
 * the vocabulary size; the result is the same bit for bit. Adam keeps the
 * dense update (Keras semantics: every row's moments decay each step) unless
 * lazy_adam (adam(lazy = 1) in the .mtr), which makes it adam_update_rows
 * (LazyAdam: a different result).
 * Returns how many were rewritten, or -1 with g->mod->why set. */
int rewrite_sparse_embedding_grads(Graph *g, int lazy_adam);

#endif
