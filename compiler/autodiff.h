/* Reverse-mode differentiation at compile time: appends to a program the ops
 * that compute every parameter's gradient of a scalar loss, then the
 * optimizer's update ops. All gradients are computed before any update, so a
 * data-parallel runtime could sum them across processes in between. */
#ifndef MTR_AUTODIFF_H
#define MTR_AUTODIFF_H

#include "graph.h"
#include "lower.h"

/* Appends the backward ops of g's forward ops for d(loss). On return grads
 * (n_tensors entries as they were on entry, malloc'd, the caller frees) maps
 * each forward tensor to its gradient tensor or -1. Returns 0, or -1 with
 * g->mod->why set. */
int autodiff_backward(Graph *g, int32_t loss, int32_t **grads, uint32_t *n_grads);

/* Appends the optimizer's state tensors and update ops for every parameter
 * that has a gradient, and lists each (parameter, gradient) pair among
 * train_step's outputs (role GRADIENT). Returns 0 or -1. */
int autodiff_updates(Graph *g, Lowered *l, const int32_t *grads, uint32_t n_grads);

/* The backward rule of each op whose row says GRAD, expanded from ops.def:
 * given the op and the gradients of its outputs (dout, -1 where none), appends
 * ops and sets din[i] for each input i with needs[i] set. Returns 0 or -1.
 * A GRAD row without its rule is a link error. */
#define GRAD_DECL_GRAD(n)                                                                          \
    int grad_##n(Graph *g, const MtrOp *op, const int32_t *dout, const int *needs, int32_t *din);
#define GRAD_DECL_NONE(n)
#define X(E, n, id, ni, no, nk, f, bwd, at) GRAD_DECL_##bwd(n)
#include "mtr/ops.def"
#undef X

#endif
