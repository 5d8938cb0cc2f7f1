/* The runtime kernel table: op kind -> kernel_<name>, expanded from ops.def, so a
 * row without its kernel is a link error. */
#include "mtr/kernels.h"

static const KernelFn kernel_table[OP_COUNT] = {
#define X(E, n, id, ni, no, nk, f, bwd, at) [OP_##E] = kernel_##n,
#include "mtr/ops.def"
#undef X
};

KernelFn kernel_for(OpKind kind)
{
    return kernel_table[kind];
}
