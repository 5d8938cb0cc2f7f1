/* The graph type: building the module's tables and a program's op list. Every
 * op appended is checked by its shape rule, so a graph is well-shaped by
 * construction. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Grows *arr (of elem-sized items, *cap of them) to hold at least need. */
static int grow(void *arr, uint32_t *cap, uint32_t need, size_t elem)
{
    void **p = arr;
    if (need <= *cap) return 0;
    uint32_t c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *p = q;
    *cap = c;
    return 0;
}

void module_fail(Module *mod, const char *fmt, ...)
{
    if (mod->failed) return;
    mod->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mod->why, sizeof mod->why, fmt, ap);
    va_end(ap);
}

int module_init(Module *mod, const char *model_name)
{
    memset(mod, 0, sizeof *mod);
    mod->m = mtr_model_new();
    if (!mod->m || !(mod->m->name = dupstr(model_name))) {
        mtr_model_free(mod->m);
        mod->m = NULL;
        module_fail(mod, "out of memory");
        return -1;
    }
    return 0;
}

MtrModel *module_take(Module *mod)
{
    MtrModel *m = mod->m;
    if (mod->failed) {
        mtr_model_free(m);
        m = NULL;
    }
    mod->m = NULL;
    return m;
}

int32_t module_symbol(Module *mod, MtrSymbolKind kind, int32_t column, const char *column_name)
{
    MtrModel *m = mod->m;
    int found = mtr_model_symbol(m, kind, column);
    if (found >= 0) return found;
    char name[300];
    if (column >= 0)
        snprintf(name, sizeof name, "%s.%s", mtr_symbol_kind_name(kind), column_name);
    else
        snprintf(name, sizeof name, "%s", mtr_symbol_kind_name(kind));
    if (grow(&m->symbols, &mod->cap_symbols, m->n_symbols + 1, sizeof *m->symbols) ||
        grow(&m->symbol_info, &mod->cap_symbol_info, m->n_symbols + 1, sizeof *m->symbol_info) ||
        !(m->symbols[m->n_symbols] = dupstr(name))) {
        module_fail(mod, "out of memory");
        return -1;
    }
    m->symbol_info[m->n_symbols] = (MtrSymbol){(uint8_t)kind, column};
    return (int32_t)m->n_symbols++;
}

int32_t module_knob(Module *mod, MtrKnobKind kind, const char *name, double value)
{
    MtrModel *m = mod->m;
    const MtrKnobInfo *info = mtr_knob_info(kind);
    if (grow(&m->knobs, &mod->cap_knobs, m->n_knobs + 1, sizeof *m->knobs) ||
        !(m->knobs[m->n_knobs].name = dupstr(name))) {
        module_fail(mod, "out of memory");
        return -1;
    }
    m->knobs[m->n_knobs].type = info ? info->type : MTR_KNOB_F32;
    m->knobs[m->n_knobs].kind = (uint16_t)kind;
    m->knobs[m->n_knobs].value = value;
    return (int32_t)m->n_knobs++;
}

int32_t module_column(Module *mod, const MtrColumn *c)
{
    MtrModel *m = mod->m;
    if (grow(&m->columns, &mod->cap_columns, m->n_columns + 1, sizeof *m->columns)) {
        module_fail(mod, "out of memory");
        return -1;
    }
    MtrColumn *dst = &m->columns[m->n_columns];
    *dst = *c;
    if (!(dst->name = dupstr(c->name))) {
        module_fail(mod, "out of memory");
        return -1;
    }
    return (int32_t)m->n_columns++;
}

int32_t module_task(Module *mod, const MtrTask *t)
{
    MtrModel *m = mod->m;
    if (grow(&m->tasks, &mod->cap_tasks, m->n_tasks + 1, sizeof *m->tasks)) {
        module_fail(mod, "out of memory");
        return -1;
    }
    MtrTask *dst = &m->tasks[m->n_tasks];
    *dst = *t;
    dst->about = NULL;
    if (!(dst->name = dupstr(t->name)) || !(dst->about = dupstr(t->about ? t->about : ""))) {
        free(dst->name), free(dst->about); /* not counted yet: freed here */
        dst->name = dst->about = NULL;
        module_fail(mod, "out of memory");
        return -1;
    }
    return (int32_t)m->n_tasks++;
}

int32_t module_tensor(Module *mod, const char *name, MtrRole role, MtrShape shape)
{
    MtrModel *m = mod->m;
    if (mod->failed) return -1;
    if (grow(&m->tensors, &mod->cap_tensors, m->n_tensors + 1, sizeof *m->tensors)) {
        module_fail(mod, "out of memory");
        return -1;
    }
    MtrTensor *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = dupstr(name);
    t->source_column = -1;
    if (!t->name) {
        module_fail(mod, "out of memory");
        return -1;
    }
    t->dtype = shape.dtype;
    t->role = (uint8_t)role;
    t->rank = shape.rank;
    for (int i = 0; i < MTR_MAX_RANK; i++) t->dim[i] = i < shape.rank ? shape.dim[i] : dim_const(1);
    return (int32_t)m->n_tensors++;
}

int32_t module_tensorf(Module *mod, MtrRole role, MtrShape shape, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return module_tensor(mod, name, role, shape);
}

MtrShape module_shape(const Module *mod, int32_t t)
{
    return shape_of_tensor(&mod->m->tensors[t], NULL);
}

int module_rename(Module *mod, int32_t t, const char *name)
{
    char *copy = dupstr(name);
    if (!copy) {
        module_fail(mod, "out of memory");
        return -1;
    }
    free(mod->m->tensors[t].name);
    mod->m->tensors[t].name = copy;
    return 0;
}

void graph_init(Graph *g, Module *mod)
{
    memset(g, 0, sizeof *g);
    g->mod = mod;
}

void graph_free(Graph *g)
{
    free(g->ops);
    g->ops = NULL;
    g->n_ops = g->cap_ops = 0;
}

static MtrOp *append(Graph *g, OpKind kind, const int32_t *in, const int32_t *iattr)
{
    if (grow(&g->ops, &g->cap_ops, g->n_ops + 1, sizeof *g->ops)) {
        module_fail(g->mod, "out of memory");
        return NULL;
    }
    MtrOp *op = &g->ops[g->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    for (int i = 0; i < MTR_MAX_IN; i++) op->in[i] = -1;
    for (int i = 0; i < MTR_MAX_OUT; i++) op->out[i] = -1;
    for (int i = 0; i < op_info(kind)->n_in; i++) op->in[i] = in[i];
    if (iattr) memcpy(op->iattr, iattr, sizeof op->iattr);
    return op;
}

/* Runs op's shape rule on the current input shapes; fills out[]. */
static int infer(Graph *g, OpKind kind, const int32_t *in, const int32_t *iattr, MtrShape *out)
{
    MtrShape ins[MTR_MAX_IN];
    int32_t zero[MTR_MAX_IATTR] = {0};
    char why[256];
    for (int i = 0; i < op_info(kind)->n_in; i++) {
        if (in[i] < 0) {
            module_fail(g->mod, "%s: input %d is missing", op_info(kind)->name, i + 1);
            return -1;
        }
        ins[i] = module_shape(g->mod, in[i]);
    }
    if (shape_infer(kind, ins, iattr ? iattr : zero, out, why, sizeof why)) {
        module_fail(g->mod, "%s: %s", op_info(kind)->name, why);
        return -1;
    }
    return 0;
}

int32_t graph_op(Graph *g, OpKind kind, const int32_t *in, const int32_t *iattr, float fattr0,
                 const MtrShape *declared, const char *name)
{
    if (g->mod->failed) return -1;
    const OpInfo *info = op_info(kind);
    MtrShape out[MTR_MAX_OUT] = {0};
    for (int i = 0; declared && i < info->n_out; i++) out[i] = declared[i];
    if (infer(g, kind, in, iattr, out)) return -1;
    int32_t ids[MTR_MAX_OUT];
    for (int i = 0; i < info->n_out; i++) {
        ids[i] = i == 0 ? module_tensor(g->mod, name, MTR_ROLE_ACT, out[i])
                        : module_tensorf(g->mod, MTR_ROLE_ACT, out[i], "%s_%d", name, i + 1);
        if (ids[i] < 0) return -1;
    }
    MtrOp *op = append(g, kind, in, iattr);
    if (!op) return -1;
    op->fattr[0] = fattr0;
    for (int i = 0; i < info->n_out; i++) op->out[i] = ids[i];
    return ids[0];
}

int graph_op_to(Graph *g, OpKind kind, const int32_t *in, const int32_t *out, const int32_t *iattr)
{
    if (g->mod->failed) return -1;
    const OpInfo *info = op_info(kind);
    MtrShape shapes[MTR_MAX_OUT] = {0};
    for (int i = 0; i < info->n_out; i++) shapes[i] = module_shape(g->mod, out[i]);
    if (infer(g, kind, in, iattr, shapes)) return -1;
    for (int i = 0; i < info->n_out; i++) {
        MtrShape want = module_shape(g->mod, out[i]);
        if (!shape_eq(&shapes[i], &want)) {
            module_fail(g->mod, "%s: output %d does not have the shape of tensor '%s'", info->name,
                        i + 1, g->mod->m->tensors[out[i]].name);
            return -1;
        }
    }
    MtrOp *op = append(g, kind, in, iattr);
    if (!op) return -1;
    for (int i = 0; i < info->n_out; i++) op->out[i] = out[i];
    return 0;
}

MtrShape shape_scalar(void)
{
    return (MtrShape){.rank = 0, .dtype = MTR_DT_F32, .dim = {{-1, 1}, {-1, 1}}};
}

MtrShape shape_vec(MtrDim n, MtrDType dt)
{
    return (MtrShape){.rank = 1, .dtype = (uint8_t)dt, .dim = {n, {-1, 1}}};
}

MtrShape shape_mat(MtrDim r, MtrDim c)
{
    return (MtrShape){.rank = 2, .dtype = MTR_DT_F32, .dim = {r, c}};
}

MtrDim dim_const(int32_t k)
{
    return (MtrDim){-1, k};
}

MtrDim dim_sym(int32_t sym)
{
    return (MtrDim){sym, 1};
}
