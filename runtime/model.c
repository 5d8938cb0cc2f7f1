/* The in-memory model: allocation, release, lookups by name and element counts.
 * In: nothing (mtrc and format.c fill the structs). Out: a MtrModel that owns
 * every string and array it points to (see mtr/model.h). */
#include "mtr/model.h"
#include "sides.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MtrModel *mtr_model_new(void)
{
    return calloc(1, sizeof(MtrModel));
}

static void free_strings(char **s, uint32_t n)
{
    if (!s) return;
    for (uint32_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

void mtr_model_free(MtrModel *m)
{
    if (!m) return;
    free(m->name);
    free_strings(m->symbols, m->n_symbols);
    free(m->symbol_info);
    if (m->tensors)
        for (uint32_t i = 0; i < m->n_tensors; i++) free(m->tensors[i].name);
    free(m->tensors);
    if (m->programs) {
        for (uint32_t i = 0; i < m->n_programs; i++) {
            free(m->programs[i].name);
            free(m->programs[i].ops);
            free(m->programs[i].lifetimes);
            free(m->programs[i].outputs);
        }
    }
    free(m->programs);
    if (m->knobs)
        for (uint32_t i = 0; i < m->n_knobs; i++) free(m->knobs[i].name);
    free(m->knobs);
    if (m->columns)
        for (uint32_t i = 0; i < m->n_columns; i++) {
            free(m->columns[i].name);
            free(m->columns[i].stats);
            free(m->columns[i].item_lists);
        }
    free(m->columns);
    sides_free(m);
    if (m->tasks)
        for (uint32_t i = 0; i < m->n_tasks; i++) {
            free(m->tasks[i].name);
            free(m->tasks[i].about);
        }
    free(m->tasks);
    free(m->symbol_values);
    if (m->param_data)
        for (uint32_t i = 0; i < m->n_tensors; i++) free(m->param_data[i]);
    free(m->param_data);
    if (m->vocabs)
        for (uint32_t i = 0; i < m->n_vocabs; i++) free_strings(m->vocabs[i].words, m->vocabs[i].n);
    free(m->vocabs);
    free_strings(m->items.labels, m->items.n);
    if (m->items.ids)
        for (uint32_t c = 0; c < m->items.n_columns; c++) free(m->items.ids[c]);
    free(m->items.ids);
    free(m->items.columns);
    free(m);
}

int mtr_model_find_knob(const MtrModel *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_knobs; i++)
        if (m->knobs[i].name && strcmp(m->knobs[i].name, name) == 0) return (int)i;
    return -1;
}

int mtr_model_find_symbol(const MtrModel *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_symbols; i++)
        if (m->symbols[i] && strcmp(m->symbols[i], name) == 0) return (int)i;
    return -1;
}

int mtr_model_find_column(const MtrModel *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_columns; i++)
        if (m->columns[i].name && strcmp(m->columns[i].name, name) == 0) return (int)i;
    return -1;
}

int mtr_model_user_column(const MtrModel *m)
{
    for (uint32_t i = 0; i < m->n_columns; i++)
        if (m->columns[i].is_user) return (int)i;
    return -1;
}

int mtr_model_find_tensor(const MtrModel *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].name && strcmp(m->tensors[i].name, name) == 0) return (int)i;
    return -1;
}

int mtr_model_program(const MtrModel *m, MtrProgramKind kind)
{
    for (uint32_t i = 0; i < m->n_programs; i++)
        if (m->programs[i].kind == kind) return (int)i;
    return -1;
}

int mtr_model_symbol(const MtrModel *m, MtrSymbolKind kind, int32_t column)
{
    for (uint32_t i = 0; m->symbol_info && i < m->n_symbols; i++)
        if (m->symbol_info[i].kind == kind && m->symbol_info[i].column == column) return (int)i;
    return -1;
}

int mtr_model_knob(const MtrModel *m, MtrKnobKind kind)
{
    for (uint32_t i = 0; i < m->n_knobs; i++)
        if (m->knobs[i].kind == kind) return (int)i;
    return -1;
}

int32_t mtr_program_output(const MtrModel *m, int p, MtrOutputRole role, int32_t task)
{
    if (p < 0 || (uint32_t)p >= m->n_programs) return -1;
    const MtrProgram *prog = &m->programs[p];
    for (uint32_t i = 0; i < prog->n_outputs; i++)
        if (prog->outputs[i].role == role && (task < 0 || prog->outputs[i].task == task))
            return prog->outputs[i].tensor;
    return -1;
}

const char *mtr_program_kind_name(unsigned kind)
{
    switch (kind) {
#define X(E, n, id)                                                                                \
    case id:                                                                                       \
        return #n;
#include "mtr/programs.def"
#undef X
    default:
        return "?";
    }
}

const char *mtr_tensor_role_name(unsigned role)
{
    switch (role) {
    case MTR_ROLE_ACT:
        return "act";
    case MTR_ROLE_INPUT:
        return "input";
    case MTR_ROLE_PARAM:
        return "param";
    case MTR_ROLE_OPTSTATE:
        return "optstate";
    case MTR_ROLE_STATE:
        return "state";
    default:
        return "?";
    }
}

const char *mtr_output_role_name(unsigned role)
{
    switch (role) {
#define X(E, n, id, per_task, what)                                                                \
    case id:                                                                                       \
        return #n;
#include "mtr/outputs.def"
#undef X
    default:
        return "?";
    }
}

const char *mtr_source_name(unsigned source)
{
    switch (source) {
#define X(E, n, id, what)                                                                          \
    case id:                                                                                       \
        return #n;
#include "mtr/sources.def"
#undef X
    default:
        return "?";
    }
}

const char *mtr_symbol_kind_name(unsigned kind)
{
    switch (kind) {
#define X(E, n, id, per_column)                                                                    \
    case id:                                                                                       \
        return #n;
#include "mtr/symbols.def"
#undef X
    default:
        return "?";
    }
}

static const struct {
    const char *name;
    MtrOutputRole reads;
    int takes_k;
} metric_rows[MTR_METRIC_COUNT] = {
#define X(E, n, id, reads, takes_k) [MTR_METRIC_##E] = {#n, MTR_OUT_##reads, takes_k},
#include "mtr/metrics.def"
#undef X
};

const char *mtr_metric_name(unsigned metric)
{
    return metric < MTR_METRIC_COUNT ? metric_rows[metric].name : "?";
}

MtrOutputRole mtr_metric_reads(unsigned metric)
{
    return metric < MTR_METRIC_COUNT ? metric_rows[metric].reads : (MtrOutputRole)0;
}

int mtr_metric_takes_k(unsigned metric)
{
    return metric < MTR_METRIC_COUNT && metric_rows[metric].takes_k;
}

const char *mtr_compare_text(unsigned c)
{
    switch (c) {
#define X(E, text, id)                                                                             \
    case id:                                                                                       \
        return text;
#include "mtr/compares.def"
#undef X
    default:
        return "?";
    }
}

int mtr_compare(unsigned c, double x, double t)
{
    switch ((MtrCompare)c) {
    case MTR_CMP_GE:
        return x >= t;
    case MTR_CMP_GT:
        return x > t;
    case MTR_CMP_LE:
        return x <= t;
    case MTR_CMP_LT:
        return x < t;
    case MTR_CMP_EQ:
        return x == t;
    case MTR_CMP_NE:
        return x != t;
    default:
        return 0;
    }
}

char *mtr_symbol_name_make(const MtrModel *m, uint32_t i)
{
    const MtrSymbol *s = &m->symbol_info[i];
    const char *kind = mtr_symbol_kind_name(s->kind);
    const char *col =
        s->column >= 0 && (uint32_t)s->column < m->n_columns ? m->columns[s->column].name : NULL;
    size_t n = strlen(kind) + (col ? strlen(col) + 1 : 0) + 1;
    char *out = malloc(n);
    if (out) snprintf(out, n, col ? "%s.%s" : "%s", kind, col);
    return out;
}

static const MtrKnobInfo knob_rows[] = {
#define X(E, n, id, type, lo, lo_open, hi, hi_open, scope, run)                                    \
    [id] = {#n, MTR_KNOB_##type, lo, hi, lo_open, hi_open, MTR_SCOPE_##scope, run},
#include "mtr/knobs.def"
#undef X
};

const MtrKnobInfo *mtr_knob_info(unsigned kind)
{
    if (kind >= sizeof knob_rows / sizeof *knob_rows || !knob_rows[kind].name) return NULL;
    return &knob_rows[kind];
}

int mtr_knob_check(unsigned kind, double v, char *rule, size_t n)
{
    const MtrKnobInfo *k = mtr_knob_info(kind);
    if (!k) {
        snprintf(rule, n, "is of an unknown kind %u", kind);
        return -1;
    }
    /* An F32 knob is checked as model.bin stores it: split 1e-50 is 0 there. */
    double stored = v;
    if (k->type == MTR_KNOB_F32 && isfinite(v))
        stored = fabs(v) > FLT_MAX ? copysign(HUGE_VAL, v) : (double)(float)v;
    int lo_ok = k->min_open ? stored > k->min : stored >= k->min;
    int hi_ok = k->max == HUGE_VAL ? stored < HUGE_VAL /* a NaN fails lo_ok already */
                                   : (k->max_open ? stored < k->max : stored <= k->max);
    if (lo_ok && hi_ok) return 0;
    int len;
    if (k->max == HUGE_VAL)
        len = snprintf(rule, n, "must be %s %.10g", k->min_open ? ">" : ">=", k->min);
    else
        len = snprintf(rule, n, "must be in %c%.10g, %.10g%c", k->min_open ? '(' : '[', k->min,
                       k->max, k->max_open ? ')' : ']');
    if (stored != v && len > 0 && (size_t)len < n)
        snprintf(rule + len, n - (size_t)len, " (as a 32-bit float it is %g)", stored);
    return -1;
}

/* Returns -1 for a negative extent, a symbolic extent with no values, or a
 * product that would not fit in int64_t. The symbol index is trusted to be in
 * range of `values` (format.c checks it when it reads a tensor). */
int64_t mtr_tensor_elems(const MtrTensor *t, const int64_t *values)
{
    if (t->rank > MTR_MAX_RANK) return -1;
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        int64_t e = t->dim[i].k;
        if (e < 0) return -1;
        if (t->dim[i].sym >= 0) {
            if (!values) return -1;
            int64_t v = values[t->dim[i].sym];
            if (v < 0) return -1;
            if (v != 0 && e > INT64_MAX / v) return -1;
            e *= v;
        }
        if (e != 0 && n > INT64_MAX / e) return -1;
        n *= e;
    }
    return n;
}
