/* Knobs from text and model descriptions. In: "KEY=VALUE" strings (from the
 * command line) and a model. Out: the model's knob values changed after the
 * value has been checked against the knob's type and range, a model.bin
 * rewritten in place atomically, or a human-readable summary of a model. */
#include "mtr/knobs.h"
#include "mtr/names.h"
#include "mtr/save.h"
#include "mtr/report.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static MtrStatus unknown_key(const MtrModel *m, const char *key, MtrError *err)
{
    int best = -1, best_d = 1 << 30;
    for (uint32_t i = 0; i < m->n_knobs; i++) {
        int d = mtr_name_distance(key, m->knobs[i].name);
        if (mtr_name_is_close(key, m->knobs[i].name) && d < best_d) {
            best_d = d;
            best = (int)i;
        }
    }
    if (m->n_knobs == 0)
        return mtr_fail(err, MTR_E_ARG, "unknown knob '%s' (the model has no knobs)", key);
    if (best >= 0)
        return mtr_fail(err, MTR_E_ARG, "unknown knob '%s'; did you mean '%s'?", key,
                        m->knobs[best].name);
    return mtr_fail(err, MTR_E_ARG, "unknown knob '%s' (`mtrun MODEL info` lists the knobs)", key);
}

MtrStatus mtr_knob_assign(MtrModel *m, const char *key_eq_value, MtrError *err)
{
    const char *eq = strchr(key_eq_value, '=');
    if (!eq || eq == key_eq_value)
        return mtr_fail(err, MTR_E_ARG, "'%s': expected KEY=VALUE", key_eq_value);
    size_t klen = (size_t)(eq - key_eq_value);
    char key[256];
    if (klen >= sizeof key) return mtr_fail(err, MTR_E_ARG, "knob name too long");
    memcpy(key, key_eq_value, klen);
    key[klen] = '\0';
    const char *text = eq + 1;
    int k = mtr_model_find_knob(m, key);
    if (k < 0) return unknown_key(m, key, err);
    MtrKnob *knob = &m->knobs[k];
    const MtrKnobInfo *info = mtr_knob_info(knob->kind);
    if (info && !info->run)
        return mtr_fail(err, MTR_E_ARG,
                        "knob '%s' shapes the compiled program; change it in the .mtr file and "
                        "compile again",
                        key);
    double v;
    char *end;
    errno = 0;
    if (knob->type == MTR_KNOB_I32) {
        long long x = strtoll(text, &end, 10);
        if (end == text || *end != '\0' || *text == ' ' || *text == '\t')
            return mtr_fail(err, MTR_E_ARG, "knob '%s' is an integer; '%s' is not", key, text);
        if (errno == ERANGE || x < INT32_MIN || x > INT32_MAX)
            return mtr_fail(err, MTR_E_ARG, "knob '%s': %s does not fit in 32 bits", key, text);
        v = (double)x;
    } else {
        double x = strtod(text, &end);
        if (end == text || *end != '\0' || *text == ' ' || *text == '\t')
            return mtr_fail(err, MTR_E_ARG, "knob '%s' is a number; '%s' is not", key, text);
        if (!isfinite(x) || fabs(x) > FLT_MAX)
            return mtr_fail(err, MTR_E_ARG, "knob '%s': %s is not a finite 32-bit float", key,
                            text);
        v = (double)(float)x;
    }
    char rule[64];
    if (mtr_knob_check(knob->kind, v, rule, sizeof rule))
        return mtr_fail(err, MTR_E_ARG, "knob '%s' %s, got %s", key, rule, text);
    knob->value = v;
    return MTR_OK;
}

typedef struct {
    int n;
    char **assignments;
} Assignments;

static MtrStatus assign_all(MtrModel *m, void *ctx, MtrError *err)
{
    const Assignments *as = ctx;
    MtrStatus s = MTR_OK;
    for (int i = 0; i < as->n && s == MTR_OK; i++) s = mtr_knob_assign(m, as->assignments[i], err);
    return s;
}

MtrStatus mtr_model_set_file(const char *path, int n, char **assignments, MtrError *err)
{
    Assignments as = {n, assignments};
    return mtr_model_change_file(path, assign_all, &as, err);
}

static const char *dtype_name(uint8_t t)
{
    return t == MTR_DT_I32 ? "i32" : "f32";
}

static void print_shape(const MtrModel *m, const MtrTensor *t, FILE *out)
{
    fputc('(', out);
    for (int d = 0; d < t->rank && d < MTR_MAX_RANK; d++) {
        const MtrDim *dim = &t->dim[d];
        if (d) fputs(", ", out);
        if (dim->sym < 0) {
            fprintf(out, "%d", dim->k);
        } else {
            if (dim->k != 1) fprintf(out, "%d*", dim->k);
            fputs((uint32_t)dim->sym < m->n_symbols ? m->symbols[dim->sym] : "?", out);
        }
    }
    if (t->rank == 1) fputc(',', out);
    fputc(')', out);
}

static const char *col_type(uint8_t t)
{
    return t == MTR_COL_STRING  ? "string"
           : t == MTR_COL_INT   ? "int"
           : t == MTR_COL_FLOAT ? "float"
                                : "?";
}

static void print_task(const MtrModel *m, const MtrTask *t, FILE *out)
{
    fprintf(out, "  %-20s %s", t->name, t->about && *t->about ? t->about : "task");
    if (t->label_column >= 0 && (uint32_t)t->label_column < m->n_columns)
        fprintf(out, ", label %s", m->columns[t->label_column].name);
    fputs(", metrics", out);
    for (unsigned k = 0; k < MTR_METRIC_COUNT; k++) {
        if (!(t->metrics >> k & 1u)) continue;
        fprintf(out, " %s", mtr_metric_name(k));
        if (!mtr_metric_takes_k(k)) continue;
        fputc('(', out);
        for (uint32_t i = 0; i < t->n_ks && i < MTR_MAX_KS; i++)
            fprintf(out, "%s%d", i ? ", " : "", t->ks[i]);
        fputc(')', out);
    }
    if (t->weight_knob >= 0 && (uint32_t)t->weight_knob < m->n_knobs)
        fprintf(out, ", weight %s = %g", m->knobs[t->weight_knob].name,
                m->knobs[t->weight_knob].value);
    fputc('\n', out);
}

void mtr_model_print_info(const MtrModel *m, FILE *out)
{
    fprintf(out, "model %s (model.bin format version %d)\n", m->name ? m->name : "",
            MTR_FORMAT_VERSION);
    fprintf(out, "trained: %s\n", m->trained ? "yes" : "no");
    fprintf(out, "programs:\n");
    for (uint32_t p = 0; p < m->n_programs; p++)
        fprintf(out, "  %-20s %u ops, %u buffer lifetimes\n", m->programs[p].name,
                m->programs[p].n_ops, m->programs[p].n_lifetimes);
    fprintf(out, "knobs:\n");
    for (uint32_t i = 0; i < m->n_knobs; i++) {
        const MtrKnob *k = &m->knobs[i];
        /* The shortest text that reads back as the same f32: 0.1, not 0.100000001. */
        char v[48];
        if (k->type == MTR_KNOB_I32)
            snprintf(v, sizeof v, "%lld", (long long)k->value);
        else
            report_format_float(v, sizeof v, (float)k->value);
        fprintf(out, "  %-30s = %-12s %s\n", k->name, v, k->type == MTR_KNOB_I32 ? "i32" : "f32");
    }
    fprintf(out, "parameters:\n");
    int64_t total = 0;
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const MtrTensor *t = &m->tensors[i];
        if (t->role != MTR_ROLE_PARAM && t->role != MTR_ROLE_OPTSTATE) continue;
        fprintf(out, "  %-28s %s %-16s ", t->name, dtype_name(t->dtype),
                mtr_tensor_role_name(t->role));
        print_shape(m, t, out);
        if (m->trained && m->symbol_values) {
            int64_t n = mtr_tensor_elems(t, m->symbol_values);
            fputs(" = (", out);
            for (int d = 0; d < t->rank && d < MTR_MAX_RANK; d++) {
                int64_t e = t->dim[d].k;
                if (t->dim[d].sym >= 0) e *= m->symbol_values[t->dim[d].sym];
                fprintf(out, "%s%lld", d ? ", " : "", (long long)e);
            }
            fprintf(out, "%s), %lld elements", t->rank == 1 ? "," : "", (long long)n);
            if (n > 0) total += n;
        }
        fputc('\n', out);
    }
    if (m->trained) fprintf(out, "  total %lld elements\n", (long long)total);
    fprintf(out, "columns:\n");
    for (uint32_t i = 0; i < m->n_columns; i++) {
        const MtrColumn *c = &m->columns[i];
        fprintf(out, "  %-20s %s%s%s%s\n", c->name, col_type(c->type), c->is_label ? ", label" : "",
                c->lookup ? ", looked up" : "", c->is_item ? ", item attribute" : "");
        if (c->derived_from >= 0 && (uint32_t)c->derived_from < m->n_columns)
            fprintf(out, "  %-20s = %s %s %g\n", "", m->columns[c->derived_from].name,
                    mtr_compare_text(c->compare), (double)c->threshold);
    }
    fprintf(out, "tasks:\n");
    for (uint32_t i = 0; i < m->n_tasks; i++) print_task(m, &m->tasks[i], out);
    if (m->trained) {
        if (m->symbol_values) {
            fprintf(out, "bound sizes:\n");
            for (uint32_t i = 0; i < m->n_symbols; i++)
                fprintf(out, "  %-20s = %lld\n", m->symbols[i], (long long)m->symbol_values[i]);
        }
        fprintf(out, "vocabularies:\n");
        for (uint32_t v = 0; v < m->n_vocabs; v++) {
            int32_t c = m->vocabs[v].column;
            fprintf(out, "  %-20s %u words\n",
                    c >= 0 && (uint32_t)c < m->n_columns ? m->columns[c].name : "?",
                    m->vocabs[v].n);
        }
        fprintf(out, "items: %u\n", m->items.n);
        /* what serving fills in from the key alone (sides.c) */
        for (uint32_t i = 0; i < m->n_sides; i++) {
            const MtrSideTable *st = &m->sides[i];
            fprintf(out, "%s features kept: %u, with", m->columns[st->key].name, st->n_rows);
            for (uint32_t c = 0; c < st->n_columns; c++)
                fprintf(out, "%s %s", c ? "," : "", m->columns[st->columns[c]].name);
            fputc('\n', out);
        }
    }
}
