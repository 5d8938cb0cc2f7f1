/* Shape rules, one per op (shape_<name>, expanded from ops.def), shared by the
 * compiler and the runtime: the compiler runs them on symbolic extents while
 * lowering; the runtime runs them again on bound extents (every symbol replaced
 * by its number) to check a loaded model before any kernel sees it. */
#ifndef MTR_SHAPES_H
#define MTR_SHAPES_H

#include "mtr/model.h"

#include <stddef.h>

typedef struct {
    uint8_t rank;  /* 0 scalar, 1 vector, 2 matrix */
    uint8_t dtype; /* MtrDType */
    MtrDim dim[MTR_MAX_RANK];
} MtrShape;

/* Extents are equal when they are the same symbol times the same factor. */
int shape_dim_eq(MtrDim a, MtrDim b);
int shape_eq(const MtrShape *a, const MtrShape *b);
/* A readable form such as "(batch, 32) f32", written into buf. */
const char *shape_str(const MtrShape *s, char *const *symbols, char *buf, size_t n);

/* Infers the output shapes of op `kind` from its input shapes and attributes.
 * out[] holds the declared output shapes on entry (ops such as fill and top_k
 * take extents from them) and the inferred ones on return. Returns 0, or -1
 * with a reason in why. */
typedef int (*ShapeRule)(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why,
                         size_t n);
#define X(E, n, id, ni, no, nk, f, bwd, at)                                                        \
    int shape_##n(const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why, size_t wn);
#include "mtr/ops.def"
#undef X

int shape_infer(OpKind kind, const MtrShape *in, const int32_t *iattr, MtrShape *out, char *why,
                size_t n);

/* The shape of tensor t with symbols left symbolic (values NULL) or bound. */
MtrShape shape_of_tensor(const MtrTensor *t, const int64_t *values);

#endif
