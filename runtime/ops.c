/* The op table's data: one OpInfo per row of ops.def. */
#include "mtr/ops.h"

#include <string.h>

/* A row's bwd column sets OPF_DIFF: GRAD has a backward rule, NONE has none. */
#define BWD_FLAG_GRAD OPF_DIFF
#define BWD_FLAG_NONE 0u

static const OpInfo op_table[OP_COUNT] = {
#define X(E, n, i, ni, no, nk, f, bwd, at) [OP_##E] = {#n, i, ni, no, nk, (f) | BWD_FLAG_##bwd, at},
#include "mtr/ops.def"
#undef X
};

const OpInfo *op_info(OpKind kind)
{
    return &op_table[kind];
}

int op_from_id(uint16_t id, OpKind *kind)
{
    for (int k = 0; k < OP_COUNT; k++) {
        if (op_table[k].id == id) {
            *kind = (OpKind)k;
            return 0;
        }
    }
    return -1;
}

int op_from_name(const char *name, OpKind *kind)
{
    for (int k = 0; k < OP_COUNT; k++) {
        if (strcmp(op_table[k].name, name) == 0) {
            *kind = (OpKind)k;
            return 0;
        }
    }
    return -1;
}
