/* Pooled embeddings: a list of ids a row (a genre list, the words of a title)
 * turned into one vector, the sum or the mean of its ids' rows. Ids are
 * int32; -1 is padding (no id), any other id outside [0, V) reads the
 * out-of-vocabulary row 0, as gather does, so nothing is read or written out
 * of bounds whatever the ids hold. */
#include "kernels/kern.h"

static inline int64_t pool_id(int32_t id, int64_t v)
{
    return id < v ? id : 0; /* id >= -1 here; -1 is skipped by the callers */
}

/* How many ids row i holds (padding excluded). */
static int64_t row_count(const int32_t *ids, int64_t len)
{
    int64_t n = 0;
    for (int64_t j = 0; j < len; j++) n += ids[j] >= 0 || ids[j] < -1;
    return n;
}

static void pool_rows(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *table = call->in[0]; /* (V,D) */
    const int32_t *ids = call->in[1]; /* (B,L) */
    float *y = call->out[0];          /* (B,D) */
    int64_t v = call->in_shape[0].rows, d = call->in_shape[0].cols;
    int64_t len = call->in_shape[1].cols;
    for (int64_t i = lo; i < hi; i++) {
        float *row = y + i * d;
        memset(row, 0, (size_t)d * sizeof *row);
        const int32_t *r = ids + i * len;
        int64_t n = 0;
        for (int64_t j = 0; j < len && v > 0; j++) {
            if (r[j] == -1) continue;
            const float *src = table + pool_id(r[j] < 0 ? 0 : r[j], v) * d;
            for (int64_t k = 0; k < d; k++) row[k] += src[k];
            n++;
        }
        if (call->iattr[0] && n > 1) {
            float inv = 1.0f / (float)n;
            for (int64_t k = 0; k < d; k++) row[k] *= inv;
        }
    }
}

void kernel_embed_pool(const KernelCall *call)
{
    kern_rows(call, call->out_shape[0].rows, call->out_shape[0].cols, 1, pool_rows);
}

/* dtable: each row's dy, scaled by 1/n for the mean, added to its ids' rows
 * in batch order (repeated ids add up). */
void kernel_embed_pool_grad(const KernelCall *call)
{
    const float *dy = call->in[0];    /* (B,D) */
    const int32_t *ids = call->in[1]; /* (B,L) */
    float *y = call->out[0];          /* (V,D) */
    int64_t v = call->out_shape[0].rows, d = call->out_shape[0].cols;
    int64_t b = call->in_shape[0].rows, len = call->in_shape[1].cols;
    memset(y, 0, (size_t)(v * d) * sizeof *y);
    if (v == 0) return;
    for (int64_t i = 0; i < b; i++) {
        const int32_t *r = ids + i * len;
        int64_t n = row_count(r, len);
        float scale = call->iattr[0] && n > 1 ? 1.0f / (float)n : 1.0f;
        const float *src = dy + i * d;
        for (int64_t j = 0; j < len; j++) {
            if (r[j] == -1) continue;
            float *row = y + pool_id(r[j] < 0 ? 0 : r[j], v) * d;
            for (int64_t k = 0; k < d; k++) row[k] += scale * src[k];
        }
    }
}
