/* Embedding kernels: gather rows of a table by id, and its backward, scatter-add.
 * Ids are int32; an id outside [0, V) stands for the out-of-vocabulary row 0,
 * so these kernels never read or write out of bounds whatever the ids hold. */
#include "kernels/kern.h"

static inline int64_t clamp_id(int32_t id, int64_t v)
{
    return id >= 0 && id < v ? id : 0;
}

/* gather(table, ids) -> table[ids]. Gradient: dtable = scatter_add(dy, ids, table). */
void kernel_gather(const KernelCall *call)
{
    const float *table = call->in[0]; /* (V,D) */
    const int32_t *ids = call->in[1]; /* (B) */
    float *y = call->out[0];          /* (B,D) */
    int64_t v = call->in_shape[0].rows, d = call->in_shape[0].cols;
    int64_t b = call->out_shape[0].rows;
    if (v == 0) { /* no row 0 to fall back on: cannot happen once bound */
        memset(y, 0, (size_t)(b * d) * sizeof *y);
        return;
    }
    for (int64_t i = 0; i < b; i++) {
        memcpy(y + i * d, table + clamp_id(ids[i], v) * d, (size_t)d * sizeof *y);
    }
}

/* scatter_add(dy, ids, like) -> zeros of like's shape, then dy's row i added to
 * row ids[i] (repeated ids add up). like is only a shape; it is not read. */
void kernel_scatter_add(const KernelCall *call)
{
    const float *dy = call->in[0];    /* (B,D) */
    const int32_t *ids = call->in[1]; /* (B) */
    float *y = call->out[0];          /* (V,D) */
    int64_t v = call->out_shape[0].rows, d = call->out_shape[0].cols;
    int64_t b = call->in_shape[0].rows;
    memset(y, 0, (size_t)(v * d) * sizeof *y);
    if (v == 0) return;
    for (int64_t i = 0; i < b; i++) {
        float *row = y + clamp_id(ids[i], v) * d;
        const float *src = dy + i * d;
        for (int64_t j = 0; j < d; j++) row[j] += src[j];
    }
}
