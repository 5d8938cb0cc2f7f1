/* Execution: a model bound to sizes, its buffers placed once in two arenas
 * (parameters, optimizer state and long-lived state in one; inputs and
 * activations in the other, reused across ops by lifetime), and its programs
 * run op by op. Nothing is allocated after mtr_session_new. */
#ifndef MTR_EXEC_H
#define MTR_EXEC_H

#include "mtr/kernels.h"
#include "mtr/model.h"
#include "mtr/rng.h"

#include <stddef.h>
#include <stdint.h>

typedef struct MtrSession MtrSession;

/* Binds every symbol of m to symbol_values[i] (the largest value each will
 * take, e.g. the batch size), checks every op's shapes and types with the
 * shared shape rules, and places all buffers. m must outlive the session. */
MtrStatus mtr_session_new(const MtrModel *m, const int64_t *symbol_values, MtrSession **out,
                          MtrError *err);
/* The same, binding only the programs of the kinds in `programs` (a list ended
 * by 0; kinds the model lacks are skipped): the step arena is then as large as
 * those need, and only they can be run. NULL binds every program. */
MtrStatus mtr_session_new_for(const MtrModel *m, const int64_t *symbol_values,
                              const MtrProgramKind *programs, MtrSession **out, MtrError *err);
void mtr_session_free(MtrSession *s);

/* The run's knob values (n_knobs of them); starts as the model's. */
void mtr_session_set_knob(MtrSession *s, int knob, double value);
double mtr_session_knob(const MtrSession *s, int knob);

/* Fills parameters and optimizer state by their init rules, drawing from rng. */
void mtr_session_init_params(MtrSession *s, Rng *rng);
/* Copies m->param_data into the session (shapes must match the bound sizes). */
MtrStatus mtr_session_load_params(MtrSession *s, const MtrModel *m, MtrError *err);
/* Copies the session's parameters and optimizer state into m->param_data and
 * records the bound sizes in m->symbol_values; marks m trained. */
MtrStatus mtr_session_store_params(const MtrSession *s, MtrModel *m, MtrError *err);

/* The storage of tensor t (inputs to fill, outputs to read, parameters). */
void *mtr_session_tensor(MtrSession *s, int32_t t);
/* Its element count with the batch symbol bound to `rows`. */
int64_t mtr_session_tensor_elems(const MtrSession *s, int32_t t, int64_t rows);

/* Runs program p with the batch symbol bound to rows (1 <= rows <= its bound
 * value). Never fails: everything was checked when the session was made. */
void mtr_session_run(MtrSession *s, int p, int64_t rows);
/* The same in two halves, split at the program's update boundary: first every
 * op up to it (the loss and all gradients, readable through the GRADIENT
 * outputs), then the updates. A runtime that sums gradients across processes
 * or clips them acts between the two. */
void mtr_session_run_gradients(MtrSession *s, int p, int64_t rows);
void mtr_session_run_updates(MtrSession *s, int p, int64_t rows);
/* An op hook, when set, runs every op in place of its kernel: it is given the
 * op's kind, its kernel and its bound call, and must leave the op's outputs as
 * the kernel's meaning requires (a data-parallel rank uses it to make a loss
 * over the global batch out of its share of the rows; runtime/dist.c). NULL
 * (the default) runs the kernels directly. Profiling does not time hooked ops. */
typedef void (*MtrOpHook)(void *ctx, OpKind kind, KernelFn fn, const KernelCall *call);
void mtr_session_set_hook(MtrSession *s, MtrOpHook hook, void *ctx);
/* Runs only the first n_ops ops of program p (n_ops <= its op count): a
 * tensor written by op n_ops - 1 then still holds its value, even one whose
 * buffer a later op would reuse (serving reads a query vector this way). */
void mtr_session_run_ops(MtrSession *s, int p, int64_t rows, uint32_t n_ops);

/* Profiling: when on, every op's kernel is timed and the seconds summed per
 * op kind (no allocation; two clock reads per op). */
void mtr_session_profile(MtrSession *s, int on);
/* Seconds spent in ops of `kind` since profiling was turned on, and how many ran. */
double mtr_session_profile_seconds(const MtrSession *s, OpKind kind, uint64_t *calls);

/* Sizes for reports: the step arena, the long-lived arena, and what the step
 * arena would need if no two buffers shared memory. */
typedef struct {
    size_t step_arena, param_arena, step_unshared;
} MtrArenaSizes;
MtrArenaSizes mtr_session_sizes(const MtrSession *s);

#endif
