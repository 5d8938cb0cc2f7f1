/* The op table as C: the enum, each op's stored id, arity and flags, all expanded
 * from ops.def so that nothing is kept in step by hand. Shared by mtrc and libmtr. */
#ifndef MTR_OPS_H
#define MTR_OPS_H

#include <stdint.h>

#define MTR_MAX_IN    7 /* the widest op (inbatch_softmax_xent_mixed) reads seven tensors */
#define MTR_MAX_OUT   6 /* inbatch_softmax_xent_mixed: loss, three gradients, two scratches */
#define MTR_MAX_IATTR 8
#define MTR_MAX_FATTR 2

enum {
    OPF_DIFF = 1u << 0,          /* has a backward rule */
    OPF_INPLACE = 1u << 1,       /* an output of in[0]'s shape may share its buffer */
    OPF_UPDATE = 1u << 2,        /* writes its inputs in place */
    OPF_ROWWISE = 1u << 3,       /* output row r depends only on input rows r (and parameters) */
    OPF_ROWWISE_FIRST = 1u << 4, /* the same in in[0], the others parameters, iattr0 0 */
};

typedef enum {
#define X(E, n, id, ni, no, nk, f, bwd, at) OP_##E,
#include "mtr/ops.def"
#undef X
    OP_COUNT
} OpKind;

typedef struct {
    const char *name;
    uint16_t id; /* the number stored in model.bin */
    uint8_t n_in, n_out;
    uint8_t n_knobs; /* leading integer attributes that are knob ids */
    uint32_t flags;
    const char *attrs; /* its other attributes' names: "transpose_a transpose_b", "|epsilon" */
} OpInfo;

/* Returns the row of op `kind` (kind < OP_COUNT). */
const OpInfo *op_info(OpKind kind);

/* Maps a stored id back to its op; returns 0 and sets *kind, or -1 if no op has
 * that id (a model.bin from a newer or corrupt writer). */
int op_from_id(uint16_t id, OpKind *kind);

/* Finds an op by its lower-case name; returns -1 when there is none. */
int op_from_name(const char *name, OpKind *kind);

#endif
