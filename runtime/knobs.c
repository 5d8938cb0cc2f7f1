/* Knobs from text and model descriptions. In: "KEY=VALUE" strings (from the
 * command line) and a model. Out: the model's knob values changed after the
 * value has been checked against the knob's type and range, a model.bin
 * rewritten in place atomically, or a human-readable summary of a model. */
#include "mtr/knobs.h"
#include "mtr/save.h"
#include "mtr/report.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Edit distance between a and b (insert, delete, substitute), capped for long
 * names: used only to suggest a knob name. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 255) na = 255;
    if (nb > 255) nb = 255;
    size_t prev[256], cur[256];
    for (size_t j = 0; j <= nb; j++) prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (nb + 1) * sizeof prev[0]);
    }
    return prev[nb];
}

static MtrStatus unknown_key(const MtrModel *m, const char *key, MtrError *err)
{
    int best = -1;
    size_t best_d = (size_t)-1;
    for (uint32_t i = 0; i < m->n_knobs; i++) {
        size_t d = edit_distance(key, m->knobs[i].name);
        if (d < best_d) {
            best_d = d;
            best = (int)i;
        }
    }
    if (best < 0)
        return mtr_fail(err, MTR_E_ARG, "unknown knob '%s' (the model has no knobs)", key);
    /* A suggestion only when it is close: a third of the name may differ. */
    if (best_d * 3 <= strlen(m->knobs[best].name) + 2)
        return mtr_fail(err, MTR_E_ARG, "unknown knob '%s'; did you mean '%s'?", key,
                        m->knobs[best].name);
    return mtr_fail(err, MTR_E_ARG, "unknown knob '%s' (`mtrun MODEL info` lists the knobs)", key);
}

/* The knob's allowed range, from its name; returns NULL when in range, else
 * the rule it breaks. */
static const char *range_error(const char *name, double v)
{
    if (strcmp(name, "train.batch") == 0 && !(v > 0)) return "must be > 0";
    if (strcmp(name, "train.epochs") == 0 && !(v >= 0)) return "must be >= 0";
    if (strcmp(name, "train.seed") == 0 && !(v >= 0)) return "must be >= 0";
    if (strcmp(name, "train.split") == 0 && !(v > 0 && v < 1)) return "must be in (0, 1)";
    if (ends_with(name, ".weight") && !(v >= 0)) return "must be >= 0";
    if ((ends_with(name, ".lr") || strcmp(name, "lr") == 0) && !(v > 0)) return "must be > 0";
    if (ends_with(name, ".epsilon") && !(v > 0)) return "must be > 0";
    if (ends_with(name, ".initial_accumulator") && !(v >= 0)) return "must be >= 0";
    if ((ends_with(name, ".beta1") || ends_with(name, ".beta2")) && !(v >= 0 && v < 1))
        return "must be in [0, 1)";
    return NULL;
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
    const char *rule = range_error(key, v);
    if (rule) return mtr_fail(err, MTR_E_ARG, "knob '%s' %s, got %s", key, rule, text);
    knob->value = v;
    return MTR_OK;
}

/* The file stays locked from before the read until the new one is in place,
 * so that concurrent sets on one file apply one after the other. */
MtrStatus mtr_model_set_file(const char *path, int n, char **assignments, MtrError *err)
{
    MtrModel *m;
    MtrSave save;
    MtrStatus s = mtr_save_lock(&save, path, err);
    if (s != MTR_OK) return s;
    if ((s = mtr_model_read(path, &m, err)) != MTR_OK) {
        mtr_save_abort(&save);
        return s;
    }
    for (int i = 0; i < n && s == MTR_OK; i++) s = mtr_knob_assign(m, assignments[i], err);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (s == MTR_OK) s = mtr_model_encode(m, &buf, &len, err);
    if (s == MTR_OK) s = mtr_save_begin(&save, path, err);
    if (s == MTR_OK && (s = mtr_save_write(&save, buf, len, err)) == MTR_OK)
        s = mtr_save_commit(&save, err);
    mtr_save_abort(&save);
    free(buf);
    mtr_model_free(m);
    return s;
}

static const char *dtype_name(uint8_t t)
{
    return t == MTR_DT_I32 ? "i32" : "f32";
}

static const char *role_name(uint8_t r)
{
    switch (r) {
    case MTR_ROLE_ACT:
        return "activation";
    case MTR_ROLE_INPUT:
        return "input";
    case MTR_ROLE_PARAM:
        return "param";
    case MTR_ROLE_OPTSTATE:
        return "optimizer state";
    case MTR_ROLE_STATE:
        return "state";
    }
    return "?";
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

static const char *task_kind(uint8_t k)
{
    return k == MTR_TASK_RANKING ? "ranking" : k == MTR_TASK_RETRIEVAL ? "retrieval" : "?";
}

static const char *loss_name(uint8_t l)
{
    return l == MTR_LOSS_MSE       ? "mse"
           : l == MTR_LOSS_BCE     ? "bce"
           : l == MTR_LOSS_SOFTMAX ? "softmax"
                                   : "?";
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
    fprintf(out, "  %-20s %s, loss %s", t->name, task_kind(t->kind), loss_name(t->loss));
    if (t->label_column >= 0 && (uint32_t)t->label_column < m->n_columns)
        fprintf(out, ", label %s", m->columns[t->label_column].name);
    fputs(", metrics", out);
    if (t->metrics & MTR_METRIC_RMSE) fputs(" rmse", out);
    if (t->metrics & MTR_METRIC_MAE) fputs(" mae", out);
    if (t->metrics & MTR_METRIC_AUC) fputs(" auc", out);
    if (t->metrics & MTR_METRIC_TOPK) {
        fputs(" top_k(", out);
        for (uint32_t k = 0; k < t->n_ks && k < MTR_MAX_KS; k++)
            fprintf(out, "%s%d", k ? ", " : "", t->ks[k]);
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
        fprintf(out, "  %-28s %s %-16s ", t->name, dtype_name(t->dtype), role_name(t->role));
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
    }
}
