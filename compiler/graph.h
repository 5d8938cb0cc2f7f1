/* The compiler's one graph type. A Module is the model being built (the
 * MtrModel that emit writes: its tensor table, symbols, knobs, columns and
 * tasks are model-wide); a Graph is one program's ops, in order, over the
 * module's tensors. Lowering appends forward ops, autodiff appends backward
 * and update ops, schedule prunes and orders them and computes lifetimes. */
#ifndef MTR_GRAPH_H
#define MTR_GRAPH_H

#include "mtr/model.h"
#include "mtr/shapes.h"

#include <stdarg.h>

typedef struct {
    MtrModel *m;
    uint32_t cap_tensors, cap_symbols, cap_symbol_info, cap_knobs, cap_columns, cap_tasks,
        cap_programs;
    int failed;
    char why[512]; /* the first failure: out of memory or a shape rule's reason */
} Module;

typedef struct {
    Module *mod;
    MtrOp *ops;
    uint32_t n_ops, cap_ops;
} Graph;

/* Starts an empty module (m owned by it until module_take). Returns 0 or -1. */
int module_init(Module *mod, const char *model_name);
/* Hands the built model to the caller (NULL if anything failed) and resets mod. */
MtrModel *module_take(Module *mod);
void module_fail(Module *mod, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the symbol of this kind (and column, -1 for none), appending it
 * when new; column_name names the column for its printed name. -1 on failure. */
int32_t module_symbol(Module *mod, MtrSymbolKind kind, int32_t column, const char *column_name);
/* Appends a knob of this kind (its type from knobs.def) and returns its index (-1 on failure). */
int32_t module_knob(Module *mod, MtrKnobKind kind, const char *name, double value);
/* Appends a column / task and returns its index (-1 on failure). */
int32_t module_column(Module *mod, const MtrColumn *c);
int32_t module_task(Module *mod, const MtrTask *t);

/* Appends a tensor (name copied) and returns its id (-1 on failure). */
int32_t module_tensor(Module *mod, const char *name, MtrRole role, MtrShape shape);
int32_t module_tensorf(Module *mod, MtrRole role, MtrShape shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
MtrShape module_shape(const Module *mod, int32_t t);
/* Renames tensor t. Returns 0 or -1. */
int module_rename(Module *mod, int32_t t, const char *name);

void graph_init(Graph *g, Module *mod);
void graph_free(Graph *g);

/* Appends op `kind` over inputs `in` (op_info(kind)->n_in of them) with
 * attributes iattr (may be NULL) and fattr0, creating its outputs as ACT
 * tensors named `name` (a second output is `name` + "_2"), their shapes from
 * the op's shape rule (`declared` gives extents for fill and top_k; may be
 * NULL). Returns out[0]'s id, or -1 after module_fail. */
int32_t graph_op(Graph *g, OpKind kind, const int32_t *in, const int32_t *iattr, float fattr0,
                 const MtrShape *declared, const char *name);
/* Appends an op whose outputs already exist (updates, which have none, and
 * retargeted outputs). Returns 0 or -1. */
int graph_op_to(Graph *g, OpKind kind, const int32_t *in, const int32_t *out, const int32_t *iattr);

/* Shape helpers. */
MtrShape shape_scalar(void);
MtrShape shape_vec(MtrDim n, MtrDType dt);
MtrShape shape_mat(MtrDim r, MtrDim c);
MtrDim dim_const(int32_t k);
MtrDim dim_sym(int32_t sym);

#endif
