/* Buffer placement: given a program's lifetimes and bound sizes, an offset for
 * every buffer in one arena such that buffers alive at the same time never
 * overlap. Used by the runtime at bind time and by `mtrc --dump plan`. */
#ifndef MTR_PLAN_H
#define MTR_PLAN_H

#include "mtr/model.h"

#include <stddef.h>

#define MTR_ALIGN 64 /* every buffer starts on a cache line */

typedef struct {
    size_t extent;   /* bytes the arena needs for this program */
    size_t unshared; /* bytes if every buffer had memory of its own */
    uint32_t n_buffers;
} MtrPlanSizes;

/* Places program p's inputs (alive for the whole program) and activations.
 * offsets has m->n_tensors entries: those of the program's INPUT and ACT
 * tensors are set, the others left alone. values binds the symbols. Returns
 * MTR_OK, or an error if a size overflows or a lifetime is inconsistent. */
MtrStatus plan_place(const MtrModel *m, const MtrProgram *p, const int64_t *values, size_t *offsets,
                     MtrPlanSizes *sizes, MtrError *err);

/* Bytes of tensor t with symbols bound, rounded up to MTR_ALIGN; 0 on overflow. */
size_t plan_tensor_bytes(const MtrTensor *t, const int64_t *values);

#endif
