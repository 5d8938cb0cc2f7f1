/* Scheduling and liveness: a program's ops are pruned to those its outputs
 * (and its updates) need, kept in an order where every tensor is written
 * before it is read, and each activation gets its lifetime; an in-place op's
 * output shares its input's buffer when that input dies there. */
#ifndef MTR_SCHEDULE_H
#define MTR_SCHEDULE_H

#include "graph.h"

/* Fills prog (name copied, ops and lifetimes malloc'd) from g. Returns 0, or -1
 * with g->mod->why set. */
int schedule_program(Graph *g, const char *name, const int32_t *outputs, uint32_t n_outputs,
                     MtrProgram *prog);

#endif
