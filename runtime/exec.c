/* Exec: binding a model's symbols to sizes, checking every op with the shared
 * shape rules, placing buffers in two arenas, and running programs. All checks
 * happen in mtr_session_new, so that running never fails and kernels never see
 * a shape or pointer they cannot trust. */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include "mtr/exec.h"
#include "mtr/memlimit.h"

#include "mtr/kernels.h"
#include "mtr/plan.h"
#include "mtr/shapes.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    KernelCall *calls; /* one per op, pointers fixed at bind time */
    KernelFn *fns;
    int64_t rows; /* the batch size the shapes in calls are bound for */
    void **act;   /* per tensor: where this program placed an activation, or NULL */
} BoundProgram;

struct MtrSession {
    const MtrModel *m;
    int32_t sym_batch;
    int64_t *values;  /* bound (largest) values of the symbols */
    int64_t *current; /* the same with the batch symbol set to the current rows */
    double *knobs;
    void **ptr;      /* per tensor: long-lived tensors and inputs, which have one place */
    int last_run;    /* the program whose activations mtr_session_tensor returns */
    size_t io_bytes; /* inputs sit at the start of the step arena, the programs after */
    unsigned char *param_arena, *step_arena;
    size_t param_bytes, step_bytes, step_unshared;
    BoundProgram *progs;
    int profiling;
    MtrOpHook hook; /* runs every op instead of its kernel when set (data-parallel ranks) */
    void *hook_ctx;
    double op_seconds[OP_COUNT];
    uint64_t op_calls[OP_COUNT];
};

/* Arenas of at least this many bytes ask for transparent huge pages: a step
 * reads embedding rows and activations all over them, and with 4 KiB pages
 * most of those reads miss the TLB. */
#define HUGE_ARENA_BYTES ((size_t)8 << 20)

static void *arena_new(size_t bytes)
{
    if (bytes == 0) bytes = MTR_ALIGN;
    void *p = aligned_alloc(MTR_ALIGN, bytes);
    if (!p) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_ARENA_BYTES) {
        /* the whole pages inside the block; a refusal (no THP) changes nothing */
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)p + page - 1) / page * page;
        uintptr_t hi = ((uintptr_t)p + bytes) / page * page;
        if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    memset(p, 0, bytes);
    return p;
}

/* A kernel sees a tensor as rows x cols: the last axis is cols, every axis
 * before it is folded into rows. */
static KShape kshape(const MtrTensor *t, const int64_t *values)
{
    MtrShape s = shape_of_tensor(t, values);
    KShape k = {1, 1};
    if (s.rank == 1) k.rows = s.dim[0].k;
    if (s.rank >= 2) {
        k.cols = s.dim[s.rank - 1].k;
        for (int d = 0; d < s.rank - 1; d++) k.rows *= s.dim[d].k;
    }
    return k;
}

/* Checks op i of program p on bound shapes. */
static MtrStatus check_op(const MtrSession *s, const MtrProgram *p, uint32_t i, MtrError *err)
{
    const MtrModel *m = s->m;
    const MtrOp *op = &p->ops[i];
    const OpInfo *info = op_info(op->kind);
    MtrShape in[MTR_MAX_IN], out[MTR_MAX_OUT], want[MTR_MAX_OUT];
    char why[256];
    for (int k = 0; k < info->n_in; k++) in[k] = shape_of_tensor(&m->tensors[op->in[k]], s->values);
    for (int k = 0; k < info->n_out; k++)
        out[k] = want[k] = shape_of_tensor(&m->tensors[op->out[k]], s->values);
    if (shape_infer(op->kind, in, op->iattr, out, why, sizeof why))
        return mtr_fail(err, MTR_E_SHAPE, "program '%s', op %u (%s): %s", p->name, i, info->name,
                        why);
    for (int k = 0; k < info->n_out; k++) {
        if (!shape_eq(&out[k], &want[k])) {
            char a[128], b[128];
            return mtr_fail(
                err, MTR_E_SHAPE, "program '%s', op %u (%s): output '%s' is %s but the op makes %s",
                p->name, i, info->name, m->tensors[op->out[k]].name,
                shape_str(&want[k], NULL, a, sizeof a), shape_str(&out[k], NULL, b, sizeof b));
        }
    }
    /* Knob attributes must name knobs. */
    for (int k = 0; k < info->n_knobs; k++)
        if (op->iattr[k] < 0 || (uint32_t)op->iattr[k] >= m->n_knobs)
            return mtr_fail(err, MTR_E_FORMAT, "program '%s', op %u (%s): knob %d does not exist",
                            p->name, i, info->name, op->iattr[k]);
    return MTR_OK;
}

/* Every activation an op touches must be placed and alive at that op. */
static MtrStatus check_lifetimes(const MtrModel *m, const MtrProgram *p, const int32_t *life_of,
                                 MtrError *err)
{
    for (uint32_t i = 0; i < p->n_ops; i++) {
        const MtrOp *op = &p->ops[i];
        const OpInfo *info = op_info(op->kind);
        int32_t ts[MTR_MAX_IN + MTR_MAX_OUT];
        int n = 0;
        for (int k = 0; k < info->n_in; k++) ts[n++] = op->in[k];
        for (int k = 0; k < info->n_out; k++) ts[n++] = op->out[k];
        for (int k = 0; k < n; k++) {
            const MtrTensor *t = &m->tensors[ts[k]];
            if (t->role != MTR_ROLE_ACT) continue;
            int32_t l = life_of[ts[k]];
            if (l < 0 || p->lifetimes[l].first > (int32_t)i || p->lifetimes[l].last < (int32_t)i)
                return mtr_fail(err, MTR_E_FORMAT,
                                "program '%s', op %u: tensor '%s' is used outside its lifetime",
                                p->name, i, t->name);
        }
    }
    for (uint32_t l = 0; l < p->n_lifetimes; l++)
        if (m->tensors[p->lifetimes[l].tensor].role != MTR_ROLE_ACT)
            return mtr_fail(err, MTR_E_FORMAT, "program '%s': lifetime of non-activation '%s'",
                            p->name, m->tensors[p->lifetimes[l].tensor].name);
    return MTR_OK;
}

static void bind_shapes(MtrSession *s, int p, int64_t rows)
{
    const MtrModel *m = s->m;
    const MtrProgram *prog = &m->programs[p];
    BoundProgram *bp = &s->progs[p];
    if (s->sym_batch >= 0) s->current[s->sym_batch] = rows;
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        const MtrOp *op = &prog->ops[i];
        const OpInfo *info = op_info(op->kind);
        KernelCall *c = &bp->calls[i];
        for (int k = 0; k < info->n_in; k++)
            c->in_shape[k] = kshape(&m->tensors[op->in[k]], s->current);
        for (int k = 0; k < info->n_out; k++)
            c->out_shape[k] = kshape(&m->tensors[op->out[k]], s->current);
    }
    bp->rows = rows;
}

static MtrStatus bind_program(MtrSession *s, int p, size_t *offsets, int32_t *life_of,
                              MtrError *err)
{
    const MtrModel *m = s->m;
    const MtrProgram *prog = &m->programs[p];
    BoundProgram *bp = &s->progs[p];
    MtrStatus rc;
    for (uint32_t t = 0; t < m->n_tensors; t++) life_of[t] = -1;
    for (uint32_t l = 0; l < prog->n_lifetimes; l++)
        life_of[prog->lifetimes[l].tensor] = (int32_t)l;
    if ((rc = check_lifetimes(m, prog, life_of, err))) return rc;
    for (uint32_t i = 0; i < prog->n_ops; i++)
        if ((rc = check_op(s, prog, i, err))) return rc;

    bp->calls = calloc(prog->n_ops ? prog->n_ops : 1, sizeof *bp->calls);
    bp->fns = calloc(prog->n_ops ? prog->n_ops : 1, sizeof *bp->fns);
    bp->act = calloc(m->n_tensors + 1, sizeof *bp->act);
    if (!bp->calls || !bp->fns || !bp->act)
        return mtr_fail(err, MTR_E_NOMEM, "out of memory binding '%s'", prog->name);
    MtrPlanSizes sz;
    if ((rc = plan_place(m, prog, s->values, offsets, &sz, err))) return rc;
    if (sz.extent > s->step_bytes) s->step_bytes = sz.extent;
    if (sz.unshared > s->step_unshared) s->step_unshared = sz.unshared;
    return MTR_OK;
}

/* Points every op's call at its tensors once the arenas exist. */
static void wire_program(MtrSession *s, int p, const size_t *offsets)
{
    const MtrModel *m = s->m;
    const MtrProgram *prog = &m->programs[p];
    BoundProgram *bp = &s->progs[p];
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        const MtrOp *op = &prog->ops[i];
        const OpInfo *info = op_info(op->kind);
        KernelCall *c = &bp->calls[i];
        int32_t ts[MTR_MAX_IN + MTR_MAX_OUT];
        for (int k = 0; k < info->n_in; k++) ts[k] = op->in[k];
        for (int k = 0; k < info->n_out; k++) ts[info->n_in + k] = op->out[k];
        for (int k = 0; k < info->n_in + info->n_out; k++) {
            int32_t t = ts[k];
            uint8_t role = m->tensors[t].role;
            void *ptr = s->ptr[t];
            if (role == MTR_ROLE_ACT) ptr = bp->act[t] = s->step_arena + s->io_bytes + offsets[t];
            if (k < info->n_in)
                c->in[k] = ptr;
            else
                c->out[k - info->n_in] = ptr;
        }
        memcpy(c->iattr, op->iattr, sizeof c->iattr);
        memcpy(c->fattr, op->fattr, sizeof c->fattr);
        c->knobs = s->knobs;
        bp->fns[i] = kernel_for(op->kind);
    }
    bind_shapes(s, p, s->sym_batch >= 0 ? s->values[s->sym_batch] : 1);
}

MtrStatus mtr_session_new(const MtrModel *m, const int64_t *symbol_values, MtrSession **out,
                          MtrError *err)
{
    return mtr_session_new_for(m, symbol_values, NULL, out, err);
}

/* Whether program p is of one of the wanted kinds (all when wanted is NULL). */
static int wanted(const MtrModel *m, uint32_t p, const MtrProgramKind *kinds)
{
    if (!kinds) return 1;
    for (; *kinds; kinds++)
        if (*kinds == m->programs[p].kind) return 1;
    return 0;
}

MtrStatus mtr_session_new_for(const MtrModel *m, const int64_t *symbol_values,
                              const MtrProgramKind *programs, MtrSession **out, MtrError *err)
{
    MtrStatus rc = MTR_OK;
    *out = NULL;
    MtrSession *s = calloc(1, sizeof *s);
    size_t *offsets = NULL;
    int32_t *life_of = NULL;
    if (!s) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    s->m = m;
    s->sym_batch = mtr_model_symbol(m, MTR_SYM_BATCH, -1);
    s->values = calloc(m->n_symbols + 1, sizeof *s->values);
    s->current = calloc(m->n_symbols + 1, sizeof *s->current);
    s->knobs = calloc(m->n_knobs + 1, sizeof *s->knobs);
    s->ptr = calloc(m->n_tensors + 1, sizeof *s->ptr);
    s->progs = calloc(m->n_programs + 1, sizeof *s->progs);
    offsets = calloc(m->n_tensors + 1, sizeof *offsets);
    life_of = calloc(m->n_tensors + 1, sizeof *life_of);
    if (!s->values || !s->current || !s->knobs || !s->ptr || !s->progs || !offsets || !life_of) {
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        if (symbol_values[i] <= 0 || symbol_values[i] > INT32_MAX) {
            rc = mtr_fail(err, MTR_E_SHAPE, "size '%s' = %lld is out of range", m->symbols[i],
                          (long long)symbol_values[i]);
            goto fail;
        }
        s->values[i] = s->current[i] = symbol_values[i];
    }
    for (uint32_t i = 0; i < m->n_knobs; i++) s->knobs[i] = m->knobs[i].value;
    /* Every bound extent must fit the 32 bits shapes and BLAS calls use. */
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        for (int d = 0; d < ten->rank; d++) {
            MtrDim dim = ten->dim[d];
            int64_t v = (int64_t)dim.k * (dim.sym < 0 ? 1 : s->values[dim.sym]);
            if (dim.k < 1 || v > INT32_MAX) {
                rc = mtr_fail(err, MTR_E_SHAPE, "tensor '%s': extent %d is %lld, out of range",
                              ten->name, d + 1, (long long)v);
                goto fail;
            }
        }
    }

    /* The long-lived arena: parameters, optimizer state, kept state. */
    size_t param_off = 0;
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        uint8_t role = m->tensors[t].role;
        if (role != MTR_ROLE_PARAM && role != MTR_ROLE_OPTSTATE && role != MTR_ROLE_STATE) continue;
        size_t b = plan_tensor_bytes(&m->tensors[t], s->values);
        if (b == 0 || param_off > SIZE_MAX - b) {
            rc = mtr_fail(err, MTR_E_SHAPE, "tensor '%s' has no size or overflows",
                          m->tensors[t].name);
            goto fail;
        }
        offsets[t] = param_off;
        param_off += b;
    }
    s->param_bytes = param_off;
    if (!(s->param_arena = arena_new(param_off))) {
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory: cannot allocate %zu bytes of parameters",
                      param_off);
        goto fail;
    }
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        uint8_t role = m->tensors[t].role;
        if (role == MTR_ROLE_PARAM || role == MTR_ROLE_OPTSTATE || role == MTR_ROLE_STATE)
            s->ptr[t] = s->param_arena + offsets[t];
    }

    /* The step arena: first every input, each with one place shared by all
     * programs (callers fill them by tensor), then the programs' activations,
     * each program placed from the same offset, sized for the largest. */
    size_t io_off = 0;
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        if (m->tensors[t].role != MTR_ROLE_INPUT) continue;
        size_t b = plan_tensor_bytes(&m->tensors[t], s->values);
        if (b == 0 || io_off > SIZE_MAX / 2 - b) {
            rc = mtr_fail(err, MTR_E_SHAPE, "input '%s' has no size or overflows",
                          m->tensors[t].name);
            goto fail;
        }
        offsets[t] = io_off;
        io_off += b;
    }
    s->io_bytes = io_off;
    size_t *prog_offsets =
        calloc((size_t)(m->n_tensors + 1) * (m->n_programs + 1), sizeof *prog_offsets);
    if (!prog_offsets) {
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t p = 0; p < m->n_programs && rc == MTR_OK; p++)
        if (wanted(m, p, programs))
            rc = bind_program(s, (int)p, prog_offsets + (size_t)p * m->n_tensors, life_of, err);
    if (rc == MTR_OK && s->step_bytes > SIZE_MAX - s->io_bytes)
        rc = mtr_fail(err, MTR_E_SHAPE, "the step arena's size overflows");
    if (rc == MTR_OK) s->step_bytes += s->io_bytes;
    if (rc == MTR_OK && !(s->step_arena = arena_new(s->step_bytes)))
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory: cannot allocate a step arena of %zu bytes",
                      s->step_bytes);
    for (uint32_t t = 0; rc == MTR_OK && t < m->n_tensors; t++)
        if (m->tensors[t].role == MTR_ROLE_INPUT) s->ptr[t] = s->step_arena + offsets[t];
    if (rc == MTR_OK)
        for (uint32_t p = 0; p < m->n_programs; p++)
            if (s->progs[p].calls) wire_program(s, (int)p, prog_offsets + (size_t)p * m->n_tensors);
    free(prog_offsets);
    /* OpenBLAS takes its buffers on the first product and hangs if it cannot. */
    if (rc == MTR_OK)
        rc = mtr_memlimit_check_blas(openblas_get_num_threads(), s->param_bytes + s->step_bytes,
                                     err);
    if (rc) goto fail;
    free(offsets);
    free(life_of);
    *out = s;
    return MTR_OK;
fail:
    free(offsets);
    free(life_of);
    mtr_session_free(s);
    return rc;
}

void mtr_session_free(MtrSession *s)
{
    if (!s) return;
    for (uint32_t p = 0; s->progs && p < s->m->n_programs; p++) {
        free(s->progs[p].calls);
        free(s->progs[p].fns);
        free(s->progs[p].act);
    }
    free(s->progs);
    free(s->values);
    free(s->current);
    free(s->knobs);
    free(s->ptr);
    free(s->param_arena);
    free(s->step_arena);
    free(s);
}

void mtr_session_set_knob(MtrSession *s, int knob, double value)
{
    s->knobs[knob] = value;
}

double mtr_session_knob(const MtrSession *s, int knob)
{
    return s->knobs[knob];
}

void mtr_session_init_params(MtrSession *s, Rng *rng)
{
    const MtrModel *m = s->m;
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        if (ten->role != MTR_ROLE_PARAM && ten->role != MTR_ROLE_OPTSTATE) continue;
        float *x = s->ptr[t];
        int64_t n = mtr_tensor_elems(ten, s->values);
        KShape k = kshape(ten, s->values);
        float limit = ten->init_arg;
        switch (ten->init) {
        case MTR_INIT_GLOROT: {
            /* fan in and out: the last two axes (an experts block's kernel is E of them) */
            float fan_in = ten->rank == 3 ? (float)k.rows / (float)ten->dim[0].k : (float)k.rows;
            limit = sqrtf(6.0f / (fan_in + (float)k.cols));
        } /* fall through */
        case MTR_INIT_UNIFORM:
            for (int64_t i = 0; i < n; i++) x[i] = (2.0f * rng_float(rng) - 1.0f) * limit;
            break;
        case MTR_INIT_CONST:
            for (int64_t i = 0; i < n; i++) x[i] = ten->init_arg;
            break;
        case MTR_INIT_KNOB: {
            int knob = (int)ten->init_arg;
            float v = knob >= 0 && (uint32_t)knob < m->n_knobs ? (float)s->knobs[knob] : 0.0f;
            for (int64_t i = 0; i < n; i++) x[i] = v;
            break;
        }
        default:
            memset(x, 0, (size_t)n * sizeof *x);
            break;
        }
    }
}

MtrStatus mtr_session_load_params(MtrSession *s, const MtrModel *m, MtrError *err)
{
    if (!m->trained || !m->param_data || !m->symbol_values)
        return mtr_fail(err, MTR_E_STATE, "the model holds no trained parameters");
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        if (ten->role != MTR_ROLE_PARAM && ten->role != MTR_ROLE_OPTSTATE) continue;
        int64_t have = mtr_tensor_elems(ten, m->symbol_values);
        int64_t want = mtr_tensor_elems(ten, s->values);
        if (!m->param_data[t] || have != want)
            return mtr_fail(err, MTR_E_SHAPE,
                            "parameter '%s' has %lld elements, the bound sizes need %lld",
                            ten->name, (long long)have, (long long)want);
        memcpy(s->ptr[t], m->param_data[t], (size_t)want * sizeof(float));
    }
    return MTR_OK;
}

MtrStatus mtr_session_store_params(const MtrSession *s, MtrModel *m, MtrError *err)
{
    if (!m->param_data && !(m->param_data = calloc(m->n_tensors + 1, sizeof *m->param_data)))
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    if (!m->symbol_values &&
        !(m->symbol_values = calloc(m->n_symbols + 1, sizeof *m->symbol_values)))
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        if (ten->role != MTR_ROLE_PARAM && ten->role != MTR_ROLE_OPTSTATE) continue;
        int64_t n = mtr_tensor_elems(ten, s->values);
        float *copy = malloc((size_t)n * sizeof *copy);
        if (!copy) return mtr_fail(err, MTR_E_NOMEM, "out of memory saving '%s'", ten->name);
        memcpy(copy, s->ptr[t], (size_t)n * sizeof *copy);
        free(m->param_data[t]);
        m->param_data[t] = copy;
    }
    memcpy(m->symbol_values, s->values, m->n_symbols * sizeof *m->symbol_values);
    m->trained = 1;
    return MTR_OK;
}

void *mtr_session_tensor(MtrSession *s, int32_t t)
{
    if (s->ptr[t]) return s->ptr[t];
    /* An activation: where the last program run placed it, else wherever a
     * program that has it did. */
    if (s->progs[s->last_run].act && s->progs[s->last_run].act[t])
        return s->progs[s->last_run].act[t];
    for (uint32_t p = 0; p < s->m->n_programs; p++)
        if (s->progs[p].act && s->progs[p].act[t]) return s->progs[p].act[t];
    return NULL;
}

int64_t mtr_session_tensor_elems(const MtrSession *s, int32_t t, int64_t rows)
{
    const MtrTensor *ten = &s->m->tensors[t];
    int64_t n = 1;
    for (int i = 0; i < ten->rank; i++) {
        MtrDim d = ten->dim[i];
        n *= d.k * (d.sym < 0 ? 1 : d.sym == s->sym_batch ? rows : s->values[d.sym]);
    }
    return n;
}

/* Runs ops [from, to) of program p, bound for `rows`. */
static void run_ops(MtrSession *s, int p, int64_t rows, uint32_t from, uint32_t to)
{
    BoundProgram *bp = &s->progs[p];
    const MtrProgram *prog = &s->m->programs[p];
    assert(bp->calls && "the program was not bound in this session");
    assert(from <= to && to <= prog->n_ops);
    if (bp->rows != rows) bind_shapes(s, p, rows);
    s->last_run = p;
    if (s->hook) {
        for (uint32_t i = from; i < to; i++)
            s->hook(s->hook_ctx, prog->ops[i].kind, bp->fns[i], &bp->calls[i]);
        return;
    }
    if (!s->profiling) {
        for (uint32_t i = from; i < to; i++) bp->fns[i](&bp->calls[i]);
        return;
    }
    for (uint32_t i = from; i < to; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        bp->fns[i](&bp->calls[i]);
        clock_gettime(CLOCK_MONOTONIC, &b);
        OpKind k = prog->ops[i].kind;
        s->op_seconds[k] += (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        s->op_calls[k]++;
    }
}

void mtr_session_run_ops(MtrSession *s, int p, int64_t rows, uint32_t n_ops)
{
    run_ops(s, p, rows, 0, n_ops);
}

void mtr_session_run(MtrSession *s, int p, int64_t rows)
{
    run_ops(s, p, rows, 0, s->m->programs[p].n_ops);
}

void mtr_session_run_gradients(MtrSession *s, int p, int64_t rows)
{
    run_ops(s, p, rows, 0, s->m->programs[p].update_at);
}

void mtr_session_run_updates(MtrSession *s, int p, int64_t rows)
{
    const MtrProgram *prog = &s->m->programs[p];
    run_ops(s, p, rows, prog->update_at, prog->n_ops);
}

void mtr_session_set_hook(MtrSession *s, MtrOpHook hook, void *ctx)
{
    s->hook = hook;
    s->hook_ctx = ctx;
}

void mtr_session_profile(MtrSession *s, int on)
{
    s->profiling = on;
}

double mtr_session_profile_seconds(const MtrSession *s, OpKind kind, uint64_t *calls)
{
    if (calls) *calls = s->op_calls[kind];
    return s->op_seconds[kind];
}

MtrArenaSizes mtr_session_sizes(const MtrSession *s)
{
    return (MtrArenaSizes){s->step_bytes, s->param_bytes, s->step_unshared};
}
