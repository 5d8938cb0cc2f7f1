/* The in-memory model: allocation, release, lookups by name and element counts.
 * In: nothing (mtrc and format.c fill the structs). Out: a MtrModel that owns
 * every string and array it points to (see mtr/model.h). */
#include "mtr/model.h"

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
    if (m->tensors) {
        for (uint32_t i = 0; i < m->n_tensors; i++) {
            free(m->tensors[i].name);
            free(m->tensors[i].source);
        }
    }
    free(m->tensors);
    if (m->programs) {
        for (uint32_t i = 0; i < m->n_programs; i++) {
            free(m->programs[i].name);
            free(m->programs[i].ops);
            free(m->programs[i].lifetimes);
        }
    }
    free(m->programs);
    if (m->knobs)
        for (uint32_t i = 0; i < m->n_knobs; i++) free(m->knobs[i].name);
    free(m->knobs);
    if (m->columns)
        for (uint32_t i = 0; i < m->n_columns; i++) free(m->columns[i].name);
    free(m->columns);
    if (m->tasks)
        for (uint32_t i = 0; i < m->n_tasks; i++) free(m->tasks[i].name);
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

int mtr_model_find_program(const MtrModel *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_programs; i++)
        if (m->programs[i].name && strcmp(m->programs[i].name, name) == 0) return (int)i;
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

int mtr_model_find_tensor(const MtrModel *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].name && strcmp(m->tensors[i].name, name) == 0) return (int)i;
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
