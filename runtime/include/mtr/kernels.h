/* The kernel interface: one function per row of ops.def, kernel_<name>, each
 * called with its tensors already placed and its shapes already bound. Kernels
 * never fail: every shape and index was validated when the model was bound. */
#ifndef MTR_KERNELS_H
#define MTR_KERNELS_H

#include "mtr/ops.h"

#include <stdint.h>

/* A bound tensor shape as kernels see it: the last axis is cols and every axis
 * before it is folded into rows, so a row-wise kernel works on any rank (a
 * rank-3 experts x batch x width tensor is experts*batch rows of width; an op
 * that needs the first axis on its own takes its extent as an attribute).
 * Rank-1 tensors are (n, 1) and scalars (1, 1). */
typedef struct {
    int64_t rows, cols;
} KShape;

typedef struct {
    void *in[MTR_MAX_IN]; /* float * or int32_t *, as the op's row says */
    KShape in_shape[MTR_MAX_IN];
    void *out[MTR_MAX_OUT];
    KShape out_shape[MTR_MAX_OUT];
    int32_t iattr[MTR_MAX_IATTR];
    float fattr[MTR_MAX_FATTR];
    const double *knobs; /* the run's knob values, indexed by knob id */
    int64_t mean_rows;   /* the rows a mean loss divides by; 0: the call's labelled
                          * rows (dist.c gives the global batch's, so that each
                          * rank's rows get the single process's bits) */
} KernelCall;

typedef void (*KernelFn)(const KernelCall *call);

#define X(E, n, id, ni, no, nk, f, bwd, at) void kernel_##n(const KernelCall *call);
#include "mtr/ops.def"
#undef X

/* Returns the kernel of op `kind`. */
KernelFn kernel_for(OpKind kind);

#endif
