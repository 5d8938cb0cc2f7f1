/* Arena placement: buffers (tensors grouped by in-place aliasing) are placed
 * largest first at the lowest offset that overlaps no buffer alive at the same
 * time. Inputs are alive from before the first op to after the last. */
#include "mtr/plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t tensor;      /* the root tensor of the group */
    int32_t first, last; /* op positions, -1 .. n_ops for inputs */
    size_t bytes, offset;
} Buffer;

size_t plan_tensor_bytes(const MtrTensor *t, const int64_t *values)
{
    int64_t n = mtr_tensor_elems(t, values);
    if (n < 0 || (uint64_t)n > (SIZE_MAX - MTR_ALIGN) / 4) return 0;
    size_t b = (size_t)n * 4;
    return (b + MTR_ALIGN - 1) / MTR_ALIGN * MTR_ALIGN;
}

static int by_size_desc(const void *a, const void *b)
{
    const Buffer *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x->tensor < y->tensor ? -1 : (x->tensor > y->tensor);
}

static int by_offset(const void *a, const void *b)
{
    const Buffer *const *x = a, *const *y = b;
    return (*x)->offset < (*y)->offset ? -1 : ((*x)->offset > (*y)->offset);
}

MtrStatus plan_place(const MtrModel *m, const MtrProgram *p, const int64_t *values, size_t *offsets,
                     MtrPlanSizes *sizes, MtrError *err)
{
    uint32_t nt = m->n_tensors;
    int32_t *group = malloc(nt * sizeof *group);     /* tensor -> buffer index */
    int32_t *life = malloc(nt * sizeof *life);       /* tensor -> lifetime index */
    int32_t *root_of = malloc(nt * sizeof *root_of); /* tensor -> its group's root tensor */
    Buffer *buf = malloc((nt ? nt : 1) * sizeof *buf);
    Buffer **placed = malloc((nt ? nt : 1) * sizeof *placed);
    MtrStatus rc = MTR_OK;
    uint32_t nb = 0;
    memset(sizes, 0, sizeof *sizes);
    if (!group || !life || !root_of || !buf || !placed) {
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory placing program '%s'", p->name);
        goto done;
    }
    for (uint32_t t = 0; t < nt; t++) group[t] = life[t] = -1;
    for (uint32_t i = 0; i < p->n_lifetimes; i++) life[p->lifetimes[i].tensor] = (int32_t)i;

    /* Inputs: one buffer each, alive throughout. */
    for (uint32_t i = 0; i < p->n_ops; i++) {
        const MtrOp *op = &p->ops[i];
        for (int k = 0; k < op_info(op->kind)->n_in; k++) {
            int32_t t = op->in[k];
            if (m->tensors[t].role != MTR_ROLE_INPUT || group[t] >= 0) continue;
            group[t] = (int32_t)nb;
            root_of[t] = t;
            buf[nb++] =
                (Buffer){t, -1, (int32_t)p->n_ops, plan_tensor_bytes(&m->tensors[t], values), 0};
        }
    }
    /* Activations: follow each alias chain to its root (bounded: a cycle is corrupt). */
    for (uint32_t i = 0; i < p->n_lifetimes; i++) {
        const MtrLifetime *lt = &p->lifetimes[i];
        int32_t root = lt->tensor;
        uint32_t hops = 0;
        while (life[root] >= 0 && p->lifetimes[life[root]].alias >= 0 && hops++ <= p->n_lifetimes)
            root = p->lifetimes[life[root]].alias;
        if (hops > p->n_lifetimes || life[root] < 0) {
            rc =
                mtr_fail(err, MTR_E_FORMAT,
                         "program '%s': tensor '%s' shares the buffer of a tensor with no lifetime",
                         p->name, m->tensors[lt->tensor].name);
            goto done;
        }
        if (group[root] < 0) {
            group[root] = (int32_t)nb;
            buf[nb++] = (Buffer){root, lt->first, lt->last, 0, 0};
        }
        Buffer *b = &buf[group[root]];
        group[lt->tensor] = group[root];
        root_of[lt->tensor] = root;
        if (lt->first < b->first) b->first = lt->first;
        if (lt->last > b->last) b->last = lt->last;
        size_t bytes = plan_tensor_bytes(&m->tensors[lt->tensor], values);
        if (bytes > b->bytes) b->bytes = bytes;
    }
    for (uint32_t i = 0; i < nb; i++) {
        if (buf[i].bytes == 0) {
            rc = mtr_fail(err, MTR_E_SHAPE, "program '%s': tensor '%s' has no size or overflows",
                          p->name, m->tensors[buf[i].tensor].name);
            goto done;
        }
    }

    qsort(buf, nb, sizeof *buf, by_size_desc);
    for (uint32_t i = 0; i < nb; i++) {
        uint32_t np = 0;
        for (uint32_t j = 0; j < i; j++)
            if (buf[j].first <= buf[i].last && buf[i].first <= buf[j].last) placed[np++] = &buf[j];
        qsort(placed, np, sizeof *placed, by_offset);
        size_t off = 0;
        for (uint32_t j = 0; j < np; j++) {
            if (placed[j]->offset >= off + buf[i].bytes) break;
            size_t end = placed[j]->offset + placed[j]->bytes;
            if (end > off) off = end;
        }
        buf[i].offset = off;
        if (off + buf[i].bytes > sizes->extent) sizes->extent = off + buf[i].bytes;
        sizes->unshared += buf[i].bytes;
    }
    sizes->n_buffers = nb;
    /* Each tensor takes the offset of its group's root; life[] is reused to
     * hold each root's buffer position after sorting. */
    for (uint32_t i = 0; i < nb; i++) life[buf[i].tensor] = (int32_t)i;
    for (uint32_t t = 0; t < nt; t++)
        if (group[t] >= 0) offsets[t] = buf[life[root_of[t]]].offset;
done:
    free(group), free(life), free(root_of), free(buf), free(placed);
    return rc;
}
