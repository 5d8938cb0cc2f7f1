/* Lowering: a checked AstModel becomes a module (columns, symbols, knobs,
 * parameters, tasks) and one forward Graph per program. Sizes that depend on
 * the data or the run are symbols: "batch", "items", "k", "vocab.<column>". */
#ifndef MTR_LOWER_H
#define MTR_LOWER_H

#include "ast.h"
#include "graph.h"

/* The programs lowering builds, each tagged in model.bin with its MtrProgramKind. */
enum { PROG_TRAIN, PROG_EVAL, PROG_PREDICT, PROG_EMBED_ITEMS, PROG_RECOMMEND, PROG_COUNT };
extern const MtrProgramKind lower_program_kinds[PROG_COUNT];

typedef struct {
    Graph prog[PROG_COUNT];
    int present[PROG_COUNT]; /* programs a model may lack (predict without a ranking task) */
    /* Each program's typed outputs: tensors read after it runs, alive to its
     * end (but gradients, which are read at the update boundary). */
    MtrOutput *outputs[PROG_COUNT];
    uint32_t n_outputs[PROG_COUNT];
    int32_t loss; /* train_step's weighted total loss () */
    OptimizerKind optimizer;
    OptimizerKind emb_optimizer;     /* the embedding tables': OPT_COUNT for `optimizer` */
    int32_t knob_of[MTR_KNOB_KINDS]; /* the model-wide knob of each kind, or -1 */
    int32_t step;                    /* the train step counter, or -1 (lower_step) */
} Lowered;

/* Lowers m into mod and out. Returns 0, or -1 with mod->why set. out must be
 * released with lower_free either way. */
int lower_model(const AstModel *m, Module *mod, Lowered *out);
void lower_free(Lowered *l);
/* The train step counter tensor of the model being lowered, made on first use. */
int32_t lower_step(Module *mod, Lowered *out);
/* Adds tensor t to program p's outputs with its role, task (-1 for none) and,
 * for a gradient, its parameter (-1 otherwise). Returns 0 or -1. */
int lower_add_output(Lowered *l, int p, MtrOutputRole role, int32_t task, int32_t t, int32_t param);

#endif
