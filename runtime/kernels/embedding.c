/* Embedding kernels: gather rows of a table by id, and its backward, scatter-add.
 * Ids are int32; an id outside [0, V) stands for the out-of-vocabulary row 0,
 * so these kernels never read or write out of bounds whatever the ids hold. */
#include "kernels/kern.h"

static inline int64_t clamp_id(int32_t id, int64_t v)
{
    return id >= 0 && id < v ? id : 0;
}

/* gather reads a table's rows by id, embedding_grad the gradient's rows in id
 * order: both scattered, the first over tables far larger than the caches.
 * The row FETCH_AHEAD visits later is fetched while this one is used. */
#define FETCH_AHEAD 8

/* gather(table, ids) -> table[ids]. Gradient: dtable = scatter_add(dy, ids, table). */
static void gather_rows(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *table = call->in[0]; /* (V,D) */
    const int32_t *ids = call->in[1]; /* (B) */
    float *y = call->out[0];          /* (B,D) */
    int64_t v = call->in_shape[0].rows, d = call->in_shape[0].cols;
    if (v == 0) { /* no row 0 to fall back on: cannot happen once bound */
        memset(y + lo * d, 0, (size_t)((hi - lo) * d) * sizeof *y);
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        if (i + FETCH_AHEAD < hi)
            kern_prefetch_row(table + clamp_id(ids[i + FETCH_AHEAD], v) * d, d);
        memcpy(y + i * d, table + clamp_id(ids[i], v) * d, (size_t)d * sizeof *y);
    }
}

void kernel_gather(const KernelCall *call)
{
    kern_rows(call, call->out_shape[0].rows, call->out_shape[0].cols, 1, gather_rows);
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

/* embedding_grad(dy, ids, like) -> rows, idx, work: scatter_add's result kept
 * as (distinct ids, their rows). The rows are sorted by id with a stable LSD
 * radix sort (8 bits a pass, as many passes as V's ids need), so each id's rows
 * are summed in batch order from zero, exactly as scatter_add sums them. The
 * cost is O(B D) whatever V. */
void kernel_embedding_grad(const KernelCall *call)
{
    const float *dy = call->in[0];    /* (B,D) */
    const int32_t *ids = call->in[1]; /* (B) */
    float *rows = call->out[0];       /* (B,D) */
    int32_t *idx = call->out[1];      /* (B) */
    int32_t *work = call->out[2];     /* (B,2) */
    int64_t v = call->in_shape[2].rows, d = call->in_shape[0].cols;
    int64_t b = call->in_shape[0].rows;
    int32_t *order = work, *tmp = work + b;
    for (int64_t i = 0; i < b; i++) idx[i] = -1;
    memset(rows, 0, (size_t)(b * d) * sizeof *rows);
    if (v == 0 || b == 0) return;
    for (int64_t i = 0; i < b; i++) order[i] = (int32_t)i;
    for (int shift = 0; shift < 32 && ((uint64_t)(v - 1) >> shift) != 0; shift += 8) {
        int64_t count[257] = {0};
        for (int64_t i = 0; i < b; i++) count[((clamp_id(ids[i], v) >> shift) & 0xff) + 1]++;
        for (int k = 0; k < 256; k++) count[k + 1] += count[k];
        for (int64_t i = 0; i < b; i++) {
            int32_t r = order[i];
            tmp[count[(clamp_id(ids[r], v) >> shift) & 0xff]++] = r;
        }
        memcpy(order, tmp, (size_t)b * sizeof *order);
    }
    int64_t g = -1, last = -1;
    for (int64_t i = 0; i < b; i++) {
        if (i + FETCH_AHEAD < b) kern_prefetch_row(dy + (int64_t)order[i + FETCH_AHEAD] * d, d);
        int32_t r = order[i];
        int64_t id = clamp_id(ids[r], v);
        if (id != last) {
            idx[++g] = (int32_t)id;
            last = id;
        }
        float *row = rows + g * d;
        const float *src = dy + (int64_t)r * d;
        for (int64_t j = 0; j < d; j++) row[j] += src[j];
    }
}
