/* Schedule: dead-op pruning, a written-before-read check, lifetimes and
 * in-place aliasing for one program. The op order is the order lowering and
 * autodiff appended them (a topological order by construction: forward, then
 * backward in reverse, then updates after every gradient). */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

static int is_output(const int32_t *outputs, uint32_t n, int32_t t)
{
    for (uint32_t i = 0; i < n; i++)
        if (outputs[i] == t) return 1;
    return 0;
}

int schedule_program(Graph *g, MtrProgramKind kind, const int32_t *outputs, uint32_t n_outputs,
                     MtrProgram *prog)
{
    Module *mod = g->mod;
    const MtrModel *m = mod->m;
    uint32_t nt = m->n_tensors;
    memset(prog, 0, sizeof *prog);
    char *live = calloc(nt, 1), *keep = calloc(g->n_ops + 1, 1);
    int32_t *first = malloc(nt * sizeof *first), *last = malloc(nt * sizeof *last);
    int32_t *alias = malloc(nt * sizeof *alias);
    const char *name = mtr_program_kind_name(kind);
    size_t name_len = strlen(name) + 1;
    prog->kind = (uint8_t)kind;
    prog->name = malloc(name_len);
    if (!live || !keep || !first || !last || !alias || !prog->name) {
        module_fail(mod, "out of memory");
        goto fail;
    }
    memcpy(prog->name, name, name_len);

    /* Keep an op if it updates state or writes something still needed. */
    for (uint32_t i = 0; i < n_outputs; i++) live[outputs[i]] = 1;
    for (uint32_t i = g->n_ops; i-- > 0;) {
        const MtrOp *op = &g->ops[i];
        const OpInfo *info = op_info(op->kind);
        int needed = (info->flags & OPF_UPDATE) != 0;
        for (int k = 0; k < info->n_out; k++) needed |= live[op->out[k]];
        if (!needed) continue;
        keep[i] = 1;
        for (int k = 0; k < info->n_in; k++) live[op->in[k]] = 1;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->n_ops; i++) n += keep[i];
    prog->ops = malloc((n ? n : 1) * sizeof *prog->ops);
    if (!prog->ops) {
        module_fail(mod, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < g->n_ops; i++)
        if (keep[i]) prog->ops[prog->n_ops++] = g->ops[i];

    /* Lifetimes of activations: written at first, read last at last. */
    for (uint32_t t = 0; t < nt; t++) first[t] = last[t] = alias[t] = -1;
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        const MtrOp *op = &prog->ops[i];
        const OpInfo *info = op_info(op->kind);
        for (int k = 0; k < info->n_in; k++) {
            int32_t t = op->in[k];
            if (m->tensors[t].role != MTR_ROLE_ACT) continue;
            if (first[t] < 0) {
                module_fail(mod, "%s: tensor '%s' is read before it is written", name,
                            m->tensors[t].name);
                goto fail;
            }
            last[t] = (int32_t)i;
        }
        for (int k = 0; k < info->n_out; k++) {
            int32_t t = op->out[k];
            if (m->tensors[t].role != MTR_ROLE_ACT) continue;
            if (first[t] >= 0) {
                module_fail(mod, "%s: tensor '%s' is written twice", name, m->tensors[t].name);
                goto fail;
            }
            first[t] = last[t] = (int32_t)i;
        }
    }
    /* Outputs stay alive to the last op: nothing after it can overwrite them. */
    for (uint32_t i = 0; i < n_outputs; i++)
        if (m->tensors[outputs[i]].role == MTR_ROLE_ACT && first[outputs[i]] >= 0)
            last[outputs[i]] = (int32_t)prog->n_ops - 1;

    /* In place: an output of the input's shape takes the input's buffer when
     * the input dies at this op. */
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        const MtrOp *op = &prog->ops[i];
        const OpInfo *info = op_info(op->kind);
        if (!(info->flags & OPF_INPLACE)) continue;
        int32_t src = op->in[0];
        if (m->tensors[src].role != MTR_ROLE_ACT || last[src] != (int32_t)i ||
            is_output(outputs, n_outputs, src))
            continue;
        MtrShape s = module_shape(mod, src);
        for (int k = 0; k < info->n_out; k++) {
            int32_t t = op->out[k];
            MtrShape o = module_shape(mod, t);
            if (m->tensors[t].role == MTR_ROLE_ACT && shape_eq(&s, &o)) {
                alias[t] = src;
                break;
            }
        }
    }

    uint32_t nl = 0;
    for (uint32_t t = 0; t < nt; t++) nl += first[t] >= 0;
    prog->lifetimes = malloc((nl ? nl : 1) * sizeof *prog->lifetimes);
    if (!prog->lifetimes) {
        module_fail(mod, "out of memory");
        goto fail;
    }
    for (uint32_t t = 0; t < nt; t++)
        if (first[t] >= 0)
            prog->lifetimes[prog->n_lifetimes++] =
                (MtrLifetime){(int32_t)t, first[t], last[t], alias[t]};

    free(live), free(keep), free(first), free(last), free(alias);
    return 0;
fail:
    free(live), free(keep), free(first), free(last), free(alias);
    free(prog->name), free(prog->ops), free(prog->lifetimes);
    memset(prog, 0, sizeof *prog);
    return -1;
}
