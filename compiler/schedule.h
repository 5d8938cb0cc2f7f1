/* Scheduling and liveness: a program's ops are pruned to those its outputs
 * (and its updates) need, kept in an order where every tensor is written
 * before it is read, and each activation gets its lifetime; an in-place op's
 * output shares its input's buffer when that input dies there. */
#ifndef MTR_SCHEDULE_H
#define MTR_SCHEDULE_H

#include "graph.h"

/* Fills prog (its kind and name, ops and lifetimes malloc'd) from g, keeping
 * alive to the end the `outputs` tensors. Returns 0, or -1 with g->mod->why set. */
int schedule_program(Graph *g, MtrProgramKind kind, const int32_t *outputs, uint32_t n_outputs,
                     MtrProgram *prog);

#endif
