/* Emit: runs the back half of the compiler (lower, autodiff, schedule) and
 * writes the result as model.bin, or prints it as text, a memory plan or a
 * Graphviz graph. */
#include "emit.h"

#include "autodiff.h"
#include "lower.h"
#include "rewrite.h"
#include "schedule.h"

#include "mtr/plan.h"
#include "mtr/shapes.h"

#include <stdlib.h>
#include <string.h>

EmitOptions emit_defaults(void)
{
    return (EmitOptions){.rewrite = 1, .n_sizes = 0};
}

MtrModel *emit_model(const AstModel *ast, FILE *errs)
{
    EmitOptions o = emit_defaults();
    return emit_model_opts(ast, &o, errs);
}

/* After the sparse rewrite, an embedding table's gradient is the rows and ids
 * its row-wise update reads: its GRADIENT output becomes the pair. */
static int sparse_gradients(Module *mod, Lowered *l)
{
    const Graph *g = &l->prog[PROG_TRAIN];
    uint32_t n = l->n_outputs[PROG_TRAIN];
    for (uint32_t i = 0; i < n; i++) {
        MtrOutput *o = &l->outputs[PROG_TRAIN][i];
        if (o->role != MTR_OUT_GRADIENT) continue;
        for (uint32_t k = 0; k < g->n_ops; k++) {
            const MtrOp *op = &g->ops[k];
            int rows = op->kind == OP_SGD_UPDATE_ROWS || op->kind == OP_ADAGRAD_UPDATE_ROWS ||
                       op->kind == OP_ADAM_UPDATE_ROWS;
            if (!rows || op->in[0] != o->param) continue;
            int32_t param = o->param, ids = op->in[2];
            o->role = MTR_OUT_GRADIENT_ROWS;
            o->tensor = op->in[1];
            if (lower_add_output(l, PROG_TRAIN, MTR_OUT_GRADIENT_IDS, -1, ids, param)) {
                module_fail(mod, "out of memory");
                return -1;
            }
            break;
        }
    }
    return 0;
}

/* Schedules program p and tags it: its typed outputs, and the update boundary
 * (the first update op; every op after it must be an update too). Gradients
 * are not kept alive to the end: they are read at the boundary. */
static int emit_program(Module *mod, Lowered *l, int p, MtrProgram *prog)
{
    uint32_t n = l->n_outputs[p], n_keep = 0;
    int32_t *keep = malloc((n + 1) * sizeof *keep);
    MtrOutput *outs = malloc((n + 1) * sizeof *outs);
    if (!keep || !outs) {
        free(keep), free(outs);
        module_fail(mod, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (l->outputs[p][i].role != MTR_OUT_GRADIENT) keep[n_keep++] = l->outputs[p][i].tensor;
    int rc = schedule_program(&l->prog[p], lower_program_kinds[p], keep, n_keep, prog);
    free(keep);
    if (rc) {
        free(outs);
        return -1;
    }
    if (n) memcpy(outs, l->outputs[p], n * sizeof *outs);
    prog->outputs = outs;
    prog->n_outputs = n;
    prog->update_at = prog->n_ops;
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        int update = (op_info(prog->ops[i].kind)->flags & OPF_UPDATE) != 0;
        if (update && prog->update_at == prog->n_ops) prog->update_at = i;
        if (!update && prog->update_at < i) {
            module_fail(mod, "%s: op %u (%s) comes after the first update", prog->name, i,
                        op_info(prog->ops[i].kind)->name);
            return -1;
        }
    }
    return 0;
}

MtrModel *emit_model_opts(const AstModel *ast, const EmitOptions *opts, FILE *errs)
{
    Module mod;
    Lowered l;
    int32_t *grads = NULL;
    uint32_t n_grads = 0;
    if (module_init(&mod, ast->name)) {
        fprintf(errs, "mtrc: error: out of memory\n");
        return NULL;
    }
    int rc = lower_model(ast, &mod, &l);
    Graph *train = &l.prog[PROG_TRAIN];
    if (rc == 0 && opts->rewrite && rewrite_fuse_inbatch_softmax_notes(train, errs) < 0) rc = -1;
    /* the forward programs too: evaluation runs the same head on the test rows */
    for (int p = 0; p < PROG_COUNT && rc == 0 && opts->rewrite; p++)
        if ((p == PROG_TRAIN || p == PROG_EVAL || p == PROG_PREDICT) && l.present[p] &&
            rewrite_dense_over_ids(&l.prog[p]) < 0)
            rc = -1;
    for (int p = 0; p < PROG_COUNT && rc == 0 && opts->rewrite; p++)
        if (l.present[p]) rewrite_bias_relu(&l.prog[p]);
    if (rc == 0) rc = autodiff_backward(train, l.loss, &grads, &n_grads);
    if (rc == 0) rc = autodiff_updates(train, &l, grads, n_grads);
    int32_t lazy = rc == 0 ? l.knob_of[MTR_KNOB_LAZY] : -1;
    if (rc == 0 && opts->rewrite &&
        rewrite_sparse_embedding_grads(train, lazy >= 0 && mod.m->knobs[lazy].value != 0) < 0)
        rc = -1;
    if (rc == 0 && sparse_gradients(&mod, &l)) rc = -1;
    free(grads);

    MtrModel *m = mod.m;
    if (rc == 0) {
        m->programs = calloc(PROG_COUNT, sizeof *m->programs);
        if (!m->programs) module_fail(&mod, "out of memory");
        for (int p = 0; p < PROG_COUNT && !mod.failed; p++) {
            if (!l.present[p]) continue;
            if (emit_program(&mod, &l, p, &m->programs[m->n_programs]) == 0) m->n_programs++;
        }
    }
    lower_free(&l);
    if (mod.failed) fprintf(errs, "mtrc: error: %s\n", mod.why);
    return module_take(&mod);
}

int emit_file(const AstModel *ast, const char *out_path, FILE *errs)
{
    EmitOptions o = emit_defaults();
    return emit_file_opts(ast, &o, out_path, errs);
}

int emit_file_opts(const AstModel *ast, const EmitOptions *opts, const char *out_path, FILE *errs)
{
    MtrModel *m = emit_model_opts(ast, opts, errs);
    if (!m) return 1;
    MtrError err = {0};
    MtrStatus rc = mtr_model_write(m, out_path, &err);
    mtr_model_free(m);
    if (rc) {
        fprintf(errs, "mtrc: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static const char *tensor_shape(const MtrModel *m, int32_t t, char *buf, size_t n)
{
    MtrShape s = shape_of_tensor(&m->tensors[t], NULL);
    return shape_str(&s, m->symbols, buf, n);
}

/* An op's attributes, named by its row (ops.def): the knob ones by the knob's
 * name (knob=rating.weight), then each named integer and float attribute that
 * is set (transpose_b=1, epsilon=0.001). */
static void dump_attrs(const MtrModel *m, const MtrOp *op, FILE *out)
{
    const OpInfo *info = op_info(op->kind);
    for (int k = 0; k < info->n_knobs; k++)
        fprintf(out, "%s%s", k ? "," : " knob=", m->knobs[op->iattr[k]].name);
    const char *p = info->attrs;
    int i = info->n_knobs, f = 0, floats = 0;
    while (*p) {
        if (*p == '|' || *p == ' ') {
            floats |= *p == '|';
            p++;
            continue;
        }
        size_t len = strcspn(p, " |");
        if (floats && f < MTR_MAX_FATTR && op->fattr[f] != 0)
            fprintf(out, " %.*s=%g", (int)len, p, op->fattr[f]);
        else if (!floats && i < MTR_MAX_IATTR && op->iattr[i] != 0)
            fprintf(out, " %.*s=%d", (int)len, p, op->iattr[i]);
        floats ? f++ : i++;
        p += len;
    }
}

void emit_dump_model_graph(const MtrModel *m, FILE *out)
{
    char sh[128];
    fprintf(out, "model %s\n\nsymbols:", m->name);
    for (uint32_t i = 0; i < m->n_symbols; i++) fprintf(out, " %s", m->symbols[i]);
    fprintf(out, "\n\nknobs:\n");
    for (uint32_t i = 0; i < m->n_knobs; i++)
        fprintf(out, "  %-32s %s %g\n", m->knobs[i].name,
                m->knobs[i].type == MTR_KNOB_I32 ? "i32" : "f32", m->knobs[i].value);
    fprintf(out, "\nparameters and state:\n");
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        if (ten->role < MTR_ROLE_PARAM) continue;
        fprintf(out, "  %-40s %-9s %s\n", ten->name, mtr_tensor_role_name(ten->role),
                tensor_shape(m, (int32_t)t, sh, sizeof sh));
    }
    for (uint32_t p = 0; p < m->n_programs; p++) {
        const MtrProgram *prog = &m->programs[p];
        fprintf(out, "\nprogram %s (%u ops)\n", prog->name, prog->n_ops);
        for (uint32_t i = 0; i < prog->n_ops; i++) {
            const MtrOp *op = &prog->ops[i];
            if (i == prog->update_at)
                fprintf(out, "  ---  update boundary: every gradient is computed above, every "
                             "update is below\n");
            const OpInfo *info = op_info(op->kind);
            fprintf(out, "  %3u  ", i);
            for (int k = 0; k < info->n_out; k++)
                fprintf(out, "%s%s", k ? ", " : "", m->tensors[op->out[k]].name);
            fprintf(out, "%s%s(", info->n_out ? " = " : "", info->name);
            for (int k = 0; k < info->n_in; k++)
                fprintf(out, "%s%s", k ? ", " : "", m->tensors[op->in[k]].name);
            fprintf(out, ")");
            dump_attrs(m, op, out);
            if (info->n_out) fprintf(out, "  %s", tensor_shape(m, op->out[0], sh, sizeof sh));
            fprintf(out, "\n");
        }
        fprintf(out, "  outputs:\n");
        for (uint32_t i = 0; i < prog->n_outputs; i++) {
            const MtrOutput *o = &prog->outputs[i];
            fprintf(out, "    %-12s %s", mtr_output_role_name(o->role), m->tensors[o->tensor].name);
            if (o->task >= 0) fprintf(out, "  task %s", m->tasks[o->task].name);
            if (o->param >= 0) fprintf(out, "  of %s", m->tensors[o->param].name);
            fputc('\n', out);
        }
    }
}

/* Sizes for a plan printed at compile time: the batch as asked, the others as
 * given with --size, else round defaults (the runtime binds the real ones). */
static int64_t plan_size(const EmitOptions *o, const char *sym, long batch)
{
    for (int i = 0; i < o->n_sizes; i++)
        if (strcmp(o->size_names[i], sym) == 0) return o->size_values[i];
    if (strcmp(sym, "batch") == 0) return batch;
    if (strcmp(sym, "k") == 0) return 10;
    return 1000;
}

static int dump_plan(const MtrModel *m, const EmitOptions *o, long batch, FILE *out, FILE *errs)
{
    int64_t *values = calloc(m->n_symbols + 1, sizeof *values);
    size_t *offsets = calloc(m->n_tensors + 1, sizeof *offsets);
    if (!values || !offsets) {
        free(values), free(offsets);
        fprintf(errs, "mtrc: error: out of memory\n");
        return 1;
    }
    for (int i = 0; i < o->n_sizes; i++) {
        if (mtr_model_find_symbol(m, o->size_names[i]) < 0) {
            fprintf(errs,
                    "mtrc: error: --size %s: the model has no size of that name (see the "
                    "'sizes:' line of --dump plan)\n",
                    o->size_names[i]);
            free(values), free(offsets);
            return 1;
        }
    }
    fprintf(out, "sizes:");
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        values[i] = plan_size(o, m->symbols[i], batch);
        fprintf(out, " %s=%lld", m->symbols[i], (long long)values[i]);
    }
    fprintf(out, "\n");
    size_t params = 0;
    for (uint32_t t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].role >= MTR_ROLE_PARAM)
            params += plan_tensor_bytes(&m->tensors[t], values);
    size_t arena = 0, sum = 0;
    int rc = 0;
    for (uint32_t p = 0; p < m->n_programs && rc == 0; p++) {
        const MtrProgram *prog = &m->programs[p];
        MtrPlanSizes sz;
        MtrError err = {0};
        if (plan_place(m, prog, values, offsets, &sz, &err)) {
            fprintf(errs, "mtrc: error: %s\n", err.msg);
            rc = 1;
            break;
        }
        fprintf(out, "\nprogram %s: %u buffers, arena %.1f MiB, sum of buffers %.1f MiB\n",
                prog->name, sz.n_buffers, sz.extent / 1048576.0, sz.unshared / 1048576.0);
        fprintf(out, "  %-44s %5s %5s %12s %12s\n", "tensor", "first", "last", "bytes", "offset");
        for (uint32_t l = 0; l < prog->n_lifetimes; l++) {
            const MtrLifetime *lt = &prog->lifetimes[l];
            fprintf(out, "  %-44s %5d %5d %12zu %12zu%s%s\n", m->tensors[lt->tensor].name,
                    lt->first, lt->last, plan_tensor_bytes(&m->tensors[lt->tensor], values),
                    offsets[lt->tensor], lt->alias >= 0 ? "  shares " : "",
                    lt->alias >= 0 ? m->tensors[lt->alias].name : "");
        }
        if (sz.extent > arena) arena = sz.extent;
        if (sz.unshared > sum) sum = sz.unshared;
    }
    if (rc == 0)
        fprintf(out,
                "\nstep arena: %.1f MiB (largest program), its buffers unshared: %.1f MiB\n"
                "parameter arena: %.2f MiB\n",
                arena / 1048576.0, sum / 1048576.0, params / 1048576.0);
    free(values), free(offsets);
    return rc;
}

static void dump_dot(const MtrModel *m, FILE *out)
{
    fprintf(out, "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n",
            m->name);
    for (uint32_t p = 0; p < m->n_programs; p++) {
        const MtrProgram *prog = &m->programs[p];
        fprintf(out, "  subgraph \"cluster_%s\" {\n    label=\"%s\";\n", prog->name, prog->name);
        for (uint32_t i = 0; i < prog->n_ops; i++)
            fprintf(out, "    \"%s/%u\" [shape=box, label=\"%s\"];\n", prog->name, i,
                    op_info(prog->ops[i].kind)->name);
        /* An edge from each op to the ops that read what it wrote. */
        for (uint32_t i = 0; i < prog->n_ops; i++) {
            const MtrOp *a = &prog->ops[i];
            for (uint32_t j = i + 1; j < prog->n_ops; j++) {
                const MtrOp *b = &prog->ops[j];
                for (int o = 0; o < op_info(a->kind)->n_out; o++)
                    for (int k = 0; k < op_info(b->kind)->n_in; k++)
                        if (a->out[o] == b->in[k])
                            fprintf(out, "    \"%s/%u\" -> \"%s/%u\" [label=\"%s\"];\n", prog->name,
                                    i, prog->name, j, m->tensors[a->out[o]].name);
            }
        }
        fprintf(out, "  }\n");
    }
    fprintf(out, "}\n");
}

int emit_dump(const AstModel *ast, const char *what, long batch, FILE *out, FILE *errs)
{
    EmitOptions o = emit_defaults();
    return emit_dump_opts(ast, &o, what, batch, out, errs);
}

int emit_dump_opts(const AstModel *ast, const EmitOptions *opts, const char *what, long batch,
                   FILE *out, FILE *errs)
{
    if (strcmp(what, "graph") && strcmp(what, "plan") && strcmp(what, "dot")) {
        fprintf(errs, "mtrc: error: unknown dump '%s' (expected graph, plan or dot)\n", what);
        return 1;
    }
    MtrModel *m = emit_model_opts(ast, opts, errs);
    if (!m) return 1;
    int rc = 0;
    if (strcmp(what, "graph") == 0)
        emit_dump_model_graph(m, out);
    else if (strcmp(what, "plan") == 0)
        rc = dump_plan(m, opts, batch > 0 ? batch : 8192, out, errs);
    else
        dump_dot(m, out);
    mtr_model_free(m);
    return rc;
}
