/* The compiler's back half, from a checked tree to model.bin: lower, autodiff,
 * schedule, liveness, emit. */
#ifndef MTR_EMIT_H
#define MTR_EMIT_H

#include "ast.h"
#include "mtr/model.h"

#include <stdio.h>

/* Choices of how to compile. */
#define EMIT_MAX_SIZES 16

typedef struct {
    int rewrite; /* run the rewrite passes (fused in-batch softmax); 1 by default */
    /* Sizes for --dump plan (symbol name = value); symbols not given are 1000
     * (vocabularies, items) or 10 (k). */
    int n_sizes;
    char size_names[EMIT_MAX_SIZES][64];
    long size_values[EMIT_MAX_SIZES];
} EmitOptions;

/* The defaults: every rewrite on. */
EmitOptions emit_defaults(void);

/* Builds the complete MtrModel (programs, lifetimes, knobs, tasks) for a
 * checked model. Returns NULL and prints why to errs on failure. */
MtrModel *emit_model(const AstModel *m, FILE *errs);
MtrModel *emit_model_opts(const AstModel *m, const EmitOptions *opts, FILE *errs);

/* Compiles a checked model and writes it to out_path atomically.
 * Returns 0, or 1 after printing the error to errs (no file is written). */
int emit_file(const AstModel *m, const char *out_path, FILE *errs);
int emit_file_opts(const AstModel *m, const EmitOptions *opts, const char *out_path, FILE *errs);

/* Prints a view of the compiled model: "graph" (readable ops per program),
 * "plan" (lifetimes and, for the given batch, arena size next to the sum of
 * buffers) or "dot" (Graphviz). Returns 0, or 1 after printing the error. */
int emit_dump(const AstModel *m, const char *what, long batch, FILE *out, FILE *errs);
int emit_dump_opts(const AstModel *m, const EmitOptions *opts, const char *what, long batch,
                   FILE *out, FILE *errs);

/* The "graph" view of a model already built (or decoded from model.bin). */
void emit_dump_model_graph(const MtrModel *m, FILE *out);

#endif
