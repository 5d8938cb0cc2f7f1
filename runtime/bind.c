/* Binding data to a model: see bind.h. */
#include "bind.h"

#include "featurize.h"

#include <errno.h>
#include <float.h>
#include <math.h>
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

static void free_items(MtrItems *it)
{
    for (uint32_t i = 0; it->labels && i < it->n; i++) free(it->labels[i]);
    free(it->labels);
    for (uint32_t c = 0; it->ids && c < it->n_columns; c++) free(it->ids[c]);
    free(it->ids);
    free(it->columns);
    memset(it, 0, sizeof *it);
}

static void free_vocabs(MtrModel *m)
{
    for (uint32_t v = 0; v < m->n_vocabs; v++) mtr_vocab_clear(&m->vocabs[v]);
    free(m->vocabs);
    m->vocabs = NULL;
    m->n_vocabs = 0;
}

static const MtrVocab *vocab_of(const MtrModel *m, int32_t column)
{
    for (uint32_t v = 0; v < m->n_vocabs; v++)
        if (m->vocabs[v].column == column) return &m->vocabs[v];
    return NULL;
}

/* The item column shown when an item is printed: a title if there is one. */
static const MtrDataColumn *label_column(const MtrTable *items)
{
    static const char *const prefer[] = {"movie_title", "title", "item_title", "name"};
    for (size_t i = 0; i < sizeof prefer / sizeof *prefer; i++) {
        const MtrDataColumn *c = mtr_table_column(items, prefer[i]);
        if (c) return c;
    }
    return items->n_columns ? &items->columns[0] : NULL;
}

/* Whether the items keep one id each of column col: a looked-up item column,
 * or a feature of one id (hash, buckets); a list keeps its items' lists with
 * the column (features), and a column read only through features keeps none. */
static int item_column(const MtrColumn *col)
{
    if (!col->is_item) return 0;
    if (col->feature) return !col->is_list;
    return col->lookup;
}

MtrStatus bind_vocabularies(MtrModel *m, const MtrDataset *ds, MtrError *err)
{
    MtrStatus rc = MTR_OK;
    free_vocabs(m);
    free_items(&m->items);
    uint32_t nv = 0;
    for (uint32_t c = 0; c < m->n_columns; c++) nv += m->columns[c].lookup;
    m->vocabs = calloc(nv ? nv : 1, sizeof *m->vocabs);
    if (!m->vocabs) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t c = 0; c < m->n_columns && rc == MTR_OK; c++) {
        const MtrColumn *col = &m->columns[c];
        if (!col->lookup) continue;
        MtrVocab *v = &m->vocabs[m->n_vocabs];
        if (col->feature)
            rc = features_vocab(m, c, ds, v, err);
        else
            rc = mtr_vocab_build(ds, col->name, col->is_item && ds->items.n_rows > 0, v, err);
        if (rc == MTR_OK) {
            v->column = (int32_t)c;
            m->n_vocabs++;
        }
    }
    if (rc || (rc = features_lengths(m, ds, err))) return rc;

    /* Items: every row of the item file, with the candidate columns' ids. */
    MtrItems *it = &m->items;
    const MtrTable *t = &ds->items;
    if (t->n_rows > UINT32_MAX) return mtr_fail(err, MTR_E_DATA, "%s: too many items", t->path);
    it->n = (uint32_t)t->n_rows;
    for (uint32_t c = 0; c < m->n_columns; c++) it->n_columns += item_column(&m->columns[c]);
    it->labels = calloc(it->n ? it->n : 1, sizeof *it->labels);
    it->columns = calloc(it->n_columns ? it->n_columns : 1, sizeof *it->columns);
    it->ids = calloc(it->n_columns ? it->n_columns : 1, sizeof *it->ids);
    if (!it->labels || !it->columns || !it->ids) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    const MtrDataColumn *lc = label_column(t);
    for (uint32_t i = 0; i < it->n; i++) {
        it->labels[i] = dupstr(lc ? lc->values[lc->codes[i]] : "");
        if (!it->labels[i]) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    uint32_t k = 0;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        if (!item_column(&m->columns[c])) continue;
        it->columns[k] = (int32_t)c;
        it->ids[k] = calloc(it->n ? it->n : 1, sizeof *it->ids[k]);
        if (!it->ids[k]) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        const MtrVocab *v = vocab_of(m, (int32_t)c);
        const MtrColumn *col = &m->columns[c];
        if (col->feature && !col->is_list && it->n) {
            MtrVocabIndex *ix = NULL;
            if (v && (rc = mtr_vocab_index_new(v, &ix, err))) return rc;
            rc = features_encode(m, c, t, ix, it->ids[k], NULL, NULL, err);
            mtr_vocab_index_free(ix);
            if (rc) return rc;
        } else if (v && it->n && !col->feature) {
            MtrVocabIndex *ix;
            if ((rc = mtr_vocab_index_new(v, &ix, err))) return rc;
            rc = mtr_vocab_encode(ix, t, m->columns[c].name, it->ids[k], NULL, err);
            mtr_vocab_index_free(ix);
            if (rc) return rc;
        }
        k++;
    }
    return features_items(m, t, err);
}

/* The values a row of column c holds in a program's input: a list's length, else 1. */
size_t bind_column_width(const MtrColumn *col)
{
    return col->feature && col->is_list && col->max_len ? col->max_len : 1;
}

void bind_encoded_free(const MtrModel *m, Encoded *e)
{
    for (uint32_t c = 0; c < m->n_columns; c++) {
        if (e->ids) free(e->ids[c]);
        if (e->nums) free(e->nums[c]);
        if (e->true_row) free(e->true_row[c]);
        if (e->logq) free(e->logq[c]);
    }
    free(e->ids), free(e->nums), free(e->true_row), free(e->logq);
    memset(e, 0, sizeof *e);
}

/* Does any program read column c (any column when c < 0) through a source of this kind? */
static int column_used(const MtrModel *m, int32_t c, MtrSource kind)
{
    for (uint32_t t = 0; t < m->n_tensors; t++) {
        const MtrTensor *ten = &m->tensors[t];
        if (ten->role == MTR_ROLE_INPUT && ten->source == kind &&
            (c < 0 || ten->source_column == c))
            return 1;
    }
    return 0;
}

/* Does one of the feeds read column c? */
static int fed(const ProgramFeeds *f, int32_t c)
{
    for (uint32_t i = 0; i < f->n; i++)
        if (f->feeds[i].column == c && f->feeds[i].kind != FEED_ITEMS) return 1;
    return 0;
}

/* A derived label's values: 1 where its column compares with the threshold, 0
 * where not, NaN (missing) where the column's value is missing. */
static MtrStatus derive(const MtrModel *m, const MtrTable *t, int32_t c, float *out, MtrError *err)
{
    const MtrColumn *col = &m->columns[c], *from = &m->columns[col->derived_from];
    if (!mtr_table_column(t, from->name))
        return mtr_fail(err, MTR_E_DATA,
                        "%s: no column '%s' (the model's label '%s' is made from it)", t->path,
                        from->name, col->name);
    MtrStatus rc = mtr_table_labels(t, from->name, out, err);
    for (uint64_t r = 0; rc == MTR_OK && r < t->n_rows; r++)
        if (!isnan(out[r])) out[r] = (float)mtr_compare(col->compare, out[r], col->threshold);
    return rc;
}

MtrStatus bind_encode(const MtrModel *m, const MtrTable *t, const ProgramFeeds *only, Encoded *e,
                      MtrError *err)
{
    return bind_encode_ix(m, t, only, NULL, e, err);
}

MtrStatus bind_encode_ix(const MtrModel *m, const MtrTable *t, const ProgramFeeds *only,
                         MtrVocabIndex *const *ixs, Encoded *e, MtrError *err)
{
    MtrStatus rc = MTR_OK;
    memset(e, 0, sizeof *e);
    e->n_rows = t->n_rows;
    size_t rows = t->n_rows ? t->n_rows : 1;
    e->ids = calloc(m->n_columns + 1, sizeof *e->ids);
    e->nums = calloc(m->n_columns + 1, sizeof *e->nums);
    e->true_row = calloc(m->n_columns + 1, sizeof *e->true_row);
    if (!e->ids || !e->nums || !e->true_row) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t c = 0; c < m->n_columns && rc == MTR_OK; c++) {
        const MtrColumn *col = &m->columns[c];
        int needed = only ? fed(only, (int32_t)c)
                          : column_used(m, (int32_t)c, MTR_SRC_COLUMN) || col->is_label ||
                                column_used(m, (int32_t)c, MTR_SRC_TRUE_ROW) ||
                                column_used(m, (int32_t)c, MTR_SRC_LOGQ_COUNTS);
        if (!needed) continue;
        if (col->derived_from >= 0) { /* made below from the column it compares */
            if (!(e->nums[c] = malloc(rows * sizeof *e->nums[c])))
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            rc = derive(m, t, (int32_t)c, e->nums[c], err);
            continue;
        }
        if (col->feature) { /* computed from its data column (featurize.c) */
            const MtrVocab *v = vocab_of(m, (int32_t)c);
            MtrVocabIndex *ix = NULL;
            uint64_t oov = 0;
            if (col->lookup && !v)
                return mtr_fail(err, MTR_E_STATE, "no vocabulary for column '%s'", col->name);
            if (col->feature == MTR_FEAT_NORMALIZE)
                e->nums[c] = malloc(rows * sizeof *e->nums[c]);
            else
                e->ids[c] = malloc(rows * bind_column_width(col) * sizeof *e->ids[c]);
            if (!e->nums[c] && !e->ids[c]) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            if (v && (rc = mtr_vocab_index_new(v, &ix, err))) return rc;
            rc =
                features_encode(m, c, t, ix, e->ids[c], e->nums[c], col->lookup ? &oov : NULL, err);
            mtr_vocab_index_free(ix);
            e->oov += oov;
            continue;
        }
        if (!mtr_table_column(t, col->name))
            return mtr_fail(err, MTR_E_DATA, "%s: no column '%s' (the model's %s)", t->path,
                            col->name, col->is_label ? "label" : "input");
        if (col->lookup) {
            const MtrVocab *v = vocab_of(m, (int32_t)c);
            MtrVocabIndex *ix;
            uint64_t oov = 0;
            if (!v) return mtr_fail(err, MTR_E_STATE, "no vocabulary for column '%s'", col->name);
            if (!(e->ids[c] = malloc(rows * sizeof *e->ids[c])))
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            if (ixs && ixs[c]) {
                rc = mtr_vocab_encode(ixs[c], t, col->name, e->ids[c], &oov, err);
            } else {
                if ((rc = mtr_vocab_index_new(v, &ix, err))) return rc;
                rc = mtr_vocab_encode(ix, t, col->name, e->ids[c], &oov, err);
                mtr_vocab_index_free(ix);
            }
            e->oov += oov;
        } else {
            if (!(e->nums[c] = malloc(rows * sizeof *e->nums[c])))
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            /* an empty label is a missing one: NaN, left out of its task's loss */
            rc = col->is_label ? mtr_table_labels(t, col->name, e->nums[c], err)
                               : mtr_table_numbers(t, col->name, e->nums[c], err);
        }
    }
    if (rc) return rc;
    /* Retrieval keys: each row's item, as the first item row with its id. */
    for (uint32_t c = 0; c < m->n_columns; c++) {
        if (only || !column_used(m, (int32_t)c, MTR_SRC_TRUE_ROW)) continue;
        const MtrVocab *v = vocab_of(m, (int32_t)c);
        int32_t ic = -1;
        for (uint32_t k = 0; k < m->items.n_columns; k++)
            if (m->items.columns[k] == (int32_t)c) ic = (int32_t)k;
        if (!v || ic < 0 || !e->ids[c])
            return mtr_fail(err, MTR_E_STATE, "column '%s' is not an item attribute",
                            m->columns[c].name);
        int32_t *first = malloc((v->n + 1) * sizeof *first);
        if (!first || !(e->true_row[c] = malloc(rows * sizeof *e->true_row[c]))) {
            free(first);
            return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        }
        for (uint32_t w = 0; w <= v->n; w++) first[w] = -1;
        for (uint32_t i = m->items.n; i-- > 0;) {
            int32_t id = m->items.ids[ic][i];
            if (id >= 0 && (uint32_t)id <= v->n) first[id] = (int32_t)i;
        }
        for (uint64_t r = 0; r < t->n_rows; r++) {
            int32_t id = e->ids[c][r];
            e->true_row[c][r] = id > 0 && (uint32_t)id <= v->n ? first[id] : -1;
        }
        free(first);
    }
    return MTR_OK;
}

MtrStatus bind_feeds(const MtrModel *m, int p, ProgramFeeds *out, MtrError *err)
{
    const MtrProgram *prog = &m->programs[p];
    memset(out, 0, sizeof *out);
    out->feeds = calloc(m->n_tensors + 1, sizeof *out->feeds);
    if (!out->feeds) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        const MtrOp *op = &prog->ops[i];
        for (int k = 0; k < op_info(op->kind)->n_in; k++) {
            int32_t t = op->in[k];
            const MtrTensor *ten = &m->tensors[t];
            if (ten->role != MTR_ROLE_INPUT) continue;
            int seen = 0;
            for (uint32_t f = 0; f < out->n; f++) seen |= out->feeds[f].tensor == t;
            if (seen) continue;
            int32_t c = ten->source_column;
            Feed f = {t, FEED_IDS, c, 1};
            if (c < 0 || (uint32_t)c >= m->n_columns) goto bad;
            switch ((MtrSource)ten->source) {
            case MTR_SRC_COLUMN:
                f.kind = m->columns[c].feature
                             ? (m->columns[c].feature == MTR_FEAT_NORMALIZE ? FEED_NUMS : FEED_IDS)
                         : m->columns[c].lookup ? FEED_IDS
                                                : FEED_NUMS;
                break;
            case MTR_SRC_ITEMS:
                if (!m->columns[c].is_item) goto bad;
                f.kind = FEED_ITEMS;
                break;
            case MTR_SRC_TRUE_ROW:
                if (!m->columns[c].is_item) goto bad;
                f.kind = FEED_TRUE_ROW;
                break;
            case MTR_SRC_LOGQ:
                if (!m->columns[c].lookup) goto bad;
                f.kind = FEED_LOGQ;
                break;
            case MTR_SRC_LOGQ_COUNTS:
                if (m->columns[c].lookup || m->columns[c].feature || m->columns[c].is_list ||
                    m->columns[c].type == MTR_COL_STRING)
                    goto bad;
                f.kind = FEED_LOGQ;
                break;
            case MTR_SRC_NEGATIVES:
            case MTR_SRC_NEG_LOGQ:
                if (!m->columns[c].lookup || m->columns[c].feature) goto bad;
                f.kind = ten->source == MTR_SRC_NEGATIVES ? FEED_NEG_IDS : FEED_NEG_LOGQ;
                break;
            default:
                goto bad;
            }
            uint8_t want = f.kind == FEED_NUMS || f.kind == FEED_LOGQ || f.kind == FEED_NEG_LOGQ
                               ? MTR_DT_F32
                               : MTR_DT_I32;
            /* a list is (rows, its length), a normalized number (rows, 1) */
            uint8_t rank = m->columns[c].feature && (m->columns[c].is_list ||
                                                     m->columns[c].feature == MTR_FEAT_NORMALIZE)
                               ? 2
                               : 1;
            if (ten->dtype != want || ten->rank != rank) goto bad;
            f.width = (int32_t)bind_column_width(&m->columns[c]);
            out->feeds[out->n++] = f;
            continue;
        bad:
            bind_feeds_free(out);
            return mtr_fail(err, MTR_E_FORMAT,
                            "program '%s': input '%s' has source %s of column %d, which does "
                            "not fit",
                            prog->name, ten->name, mtr_source_name(ten->source), c);
        }
    }
    return MTR_OK;
}

void bind_feeds_free(ProgramFeeds *f)
{
    free(f->feeds);
    memset(f, 0, sizeof *f);
}

void bind_feed(MtrSession *s, const MtrModel *m, const ProgramFeeds *f, const Encoded *e,
               const uint32_t *rows, int64_t n)
{
    for (uint32_t i = 0; i < f->n; i++) {
        const Feed *fd = &f->feeds[i];
        void *dst = mtr_session_tensor(s, fd->tensor);
        switch (fd->kind) {
        case FEED_IDS: {
            int32_t *d = dst;
            const int32_t *src = e->ids[fd->column];
            size_t w = (size_t)fd->width;
            if (w == 1)
                for (int64_t r = 0; r < n; r++) d[r] = src[rows[r]];
            else
                for (int64_t r = 0; r < n; r++) memcpy(d + r * w, src + rows[r] * w, w * sizeof *d);
            break;
        }
        case FEED_NUMS: {
            float *d = dst;
            const float *src = e->nums[fd->column];
            for (int64_t r = 0; r < n; r++) d[r] = src[rows[r]];
            break;
        }
        case FEED_TRUE_ROW: {
            int32_t *d = dst;
            const int32_t *src = e->true_row[fd->column];
            for (int64_t r = 0; r < n; r++) d[r] = src[rows[r]];
            break;
        }
        case FEED_LOGQ: {
            float *d = dst;
            const float *src = e->logq ? e->logq[fd->column] : NULL;
            for (int64_t r = 0; r < n; r++) d[r] = src ? src[rows[r]] : 0.0f;
            break;
        }
        case FEED_ITEMS: {
            int32_t *d = dst;
            const MtrColumn *col = &m->columns[fd->column];
            if (col->feature && col->is_list) { /* the items' lists, kept with the model */
                if (col->item_lists && col->n_item_lists == m->items.n)
                    memcpy(d, col->item_lists, (size_t)m->items.n * fd->width * sizeof *d);
                else
                    for (size_t j = 0; j < (size_t)m->items.n * fd->width; j++) d[j] = -1;
                break;
            }
            for (uint32_t k = 0; k < m->items.n_columns; k++)
                if (m->items.columns[k] == fd->column)
                    memcpy(d, m->items.ids[k], (size_t)m->items.n * sizeof *d);
            break;
        }
        case FEED_NEG_IDS: /* drawn per step by the sampler (negatives.h) */
        case FEED_NEG_LOGQ:
            break;
        }
    }
}

MtrStatus bind_sizes(const MtrModel *m, int64_t batch, int64_t k, int64_t *values, MtrError *err)
{
    for (uint32_t i = 0; i < m->n_symbols; i++) {
        const MtrSymbol *sym = &m->symbol_info[i];
        const char *what = "rows";
        switch ((MtrSymbolKind)sym->kind) {
        case MTR_SYM_BATCH:
            values[i] = batch;
            break;
        case MTR_SYM_ITEMS:
            /* A model whose programs read no items needs none. */
            values[i] = m->items.n ? m->items.n : !column_used(m, -1, MTR_SRC_ITEMS);
            what = "items";
            break;
        case MTR_SYM_K:
            values[i] = k;
            break;
        case MTR_SYM_LIST:
            values[i] = (int64_t)bind_column_width(&m->columns[sym->column]);
            break;
        case MTR_SYM_VOCAB: {
            const MtrVocab *v = vocab_of(m, sym->column);
            if (!v) return mtr_fail(err, MTR_E_STATE, "no vocabulary for size '%s'", m->symbols[i]);
            values[i] = (int64_t)v->n + 1;
            break;
        }
        default:
            return mtr_fail(err, MTR_E_FORMAT, "size '%s' is of an unknown kind %u", m->symbols[i],
                            sym->kind);
        }
        if (values[i] <= 0)
            return mtr_fail(err, MTR_E_DATA, "size '%s' is %lld: the data has no %s", m->symbols[i],
                            (long long)values[i], what);
    }
    return MTR_OK;
}

const char **bind_item_columns(const MtrModel *m)
{
    const char **names = calloc(m->n_columns + 1, sizeof *names);
    if (!names) return NULL;
    uint32_t n = 0;
    for (uint32_t c = 0; c < m->n_columns; c++)
        if (m->columns[c].is_item) names[n++] = m->columns[c].name;
    return names;
}

/* ---- checking the values of typed columns */

/* Is s a finite number that fits a float (spaces around allowed)? */
static int is_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    *out = v;
    return end != s && *end == '\0' && errno != ERANGE && isfinite(v) && fabs(v) <= FLT_MAX;
}

/* What is wrong with value s of column c (of m), in words, or NULL when it is fine. */
static const char *value_error(const MtrModel *m, int32_t c, const char *s, char *buf, size_t cap)
{
    const MtrColumn *col = &m->columns[c];
    double v = 0;
    int num = is_number(s, &v);
    /* An empty label (or column a derived label reads) is a missing one. */
    int label_like = col->is_label;
    for (uint32_t d = 0; d < m->n_columns; d++) label_like |= m->columns[d].derived_from == c;
    if (label_like && !col->lookup && s[0] == '\0') return NULL;
    if (col->type == MTR_COL_INT && (!num || v != floor(v) || fabs(v) > 2147483647.0)) {
        snprintf(buf, cap, "%s is an int %s, but this is not an integer", col->name,
                 col->is_label ? "label" : "input");
        return buf;
    }
    if (col->lookup) return NULL; /* ids: any text */
    if (!num) {
        snprintf(buf, cap, "%s is not a number", col->name);
        return buf;
    }
    /* A task trained by log loss (bce) learns probabilities of 0/1 labels. */
    for (uint32_t t = 0; t < m->n_tasks; t++)
        if (m->tasks[t].label_column == c && m->tasks[t].loss_metric == MTR_METRIC_LOG_LOSS &&
            v != 0 && v != 1) {
            snprintf(buf, cap, "%s is the label of task '%s' (%s): it must be 0 or 1", col->name,
                     m->tasks[t].name, m->tasks[t].about ? m->tasks[t].about : "log loss");
            return buf;
        }
    return NULL;
}

MtrStatus bind_check_rows(const MtrModel *m, MtrTable *t, int skip_bad, uint64_t *skipped,
                          MtrError *err)
{
    uint8_t *keep = malloc(t->n_rows ? t->n_rows : 1);
    if (!keep) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    memset(keep, 1, t->n_rows ? t->n_rows : 1);
    uint64_t bad = 0;
    MtrStatus st = MTR_OK;
    char why[512];
    for (uint32_t c = 0; c < m->n_columns && st == MTR_OK; c++) {
        const MtrColumn *col = &m->columns[c];
        const MtrDataColumn *dc = mtr_table_column(t, col->name);
        if (!dc || (col->lookup && col->type != MTR_COL_INT)) continue;
        /* a column read only through features: featurize.c checks its values */
        int via_feature = 0;
        for (uint32_t d = 0; d < m->n_columns; d++)
            via_feature |= m->columns[d].feature && m->columns[d].feature_of == (int32_t)c;
        if (via_feature && !col->is_label && !col->lookup) continue;
        /* Each distinct value once, then the rows that hold a bad one. */
        uint8_t *ok = malloc(dc->n_values ? dc->n_values : 1);
        if (!ok) {
            st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
            break;
        }
        for (uint32_t v = 0; v < dc->n_values; v++)
            ok[v] = value_error(m, (int32_t)c, dc->values[v], why, sizeof why) == NULL;
        for (uint64_t r = 0; r < t->n_rows; r++) {
            if (ok[dc->codes[r]]) continue;
            if (!skip_bad) {
                const char *v = dc->values[dc->codes[r]];
                value_error(m, (int32_t)c, v, why, sizeof why);
                if (t->lines)
                    st = mtr_fail(err, MTR_E_DATA, "%s:%u: %s (found '%.80s')", t->path,
                                  t->lines[r], why, v);
                else
                    st = mtr_fail(err, MTR_E_DATA, "%s: row %llu: %s (found '%.80s')", t->path,
                                  (unsigned long long)r + 1, why, v);
                break;
            }
            bad += keep[r];
            keep[r] = 0;
        }
        free(ok);
    }
    if (st == MTR_OK && bad) st = mtr_table_keep_rows(t, keep, err);
    if (st == MTR_OK && skipped) *skipped += bad;
    free(keep);
    return st;
}

/* The key column of the items whose counts column c holds: the ids input of
 * the in-batch softmax that reads c's logq_counts input; -1 if none. */
static int32_t counts_key(const MtrModel *m, int32_t c)
{
    for (uint32_t p = 0; p < m->n_programs; p++)
        for (uint32_t i = 0; i < m->programs[p].n_ops; i++) {
            const MtrOp *op = &m->programs[p].ops[i];
            if (op->kind != OP_INBATCH_SOFTMAX_XENT_OPT &&
                op->kind != OP_INBATCH_SOFTMAX_XENT_MIXED)
                continue;
            const MtrTensor *lq = &m->tensors[op->in[3]];
            if (lq->source == MTR_SRC_LOGQ_COUNTS && lq->source_column == c)
                return m->tensors[op->in[2]].source_column;
        }
    return -1;
}

/* logq(counts = COLUMN): each row's logq is log(count / total), total the sum
 * over the distinct items of the training rows of each one's count (its
 * first training row's value); a count <= 0 counts as 1. */
static MtrStatus bind_logq_counts(const MtrModel *m, Encoded *train, const uint32_t *rows,
                                  int64_t n, Encoded *test, MtrError *err)
{
    for (uint32_t c = 0; c < m->n_columns; c++) {
        if (!column_used(m, (int32_t)c, MTR_SRC_LOGQ_COUNTS)) continue;
        int32_t k = counts_key(m, (int32_t)c);
        const MtrVocab *v = k >= 0 ? vocab_of(m, k) : NULL;
        if (!v || !train->ids || !train->ids[k] || !train->nums || !train->nums[c])
            return mtr_fail(err, MTR_E_STATE, "logq(counts = %s): no item ids or counts to read",
                            m->columns[c].name);
        size_t ids = (size_t)v->n + 1;
        char *seen = calloc(ids, 1);
        if (!seen) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        double total = 0.0;
        for (int64_t i = 0; i < n; i++) {
            int32_t id = train->ids[k][rows[i]];
            if (id < 0 || (size_t)id >= ids || seen[id]) continue;
            seen[id] = 1;
            float cnt = train->nums[c][rows[i]];
            total += cnt > 0 ? cnt : 1.0;
        }
        free(seen);
        if (total <= 0) total = 1.0;
        Encoded *both[2] = {train, test};
        for (int j = 0; j < 2; j++) {
            Encoded *e = both[j];
            if (j == 1 && e == train) break;
            if (!e->logq && !(e->logq = calloc(m->n_columns + 1, sizeof *e->logq)))
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            free(e->logq[c]);
            if (!(e->logq[c] = malloc((e->n_rows ? e->n_rows : 1) * sizeof *e->logq[c])))
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            for (uint64_t r = 0; r < e->n_rows; r++) {
                float cnt = e->nums && e->nums[c] ? e->nums[c][r] : 1.0f;
                e->logq[c][r] = (float)log((cnt > 0 ? cnt : 1.0) / total);
            }
        }
    }
    return MTR_OK;
}

MtrStatus bind_logq(const MtrModel *m, Encoded *train, const uint32_t *rows, int64_t n,
                    Encoded *test, MtrError *err)
{
    MtrStatus rc = bind_logq_counts(m, train, rows, n, test, err);
    if (rc) return rc;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        if (!column_used(m, (int32_t)c, MTR_SRC_LOGQ) || !train->ids || !train->ids[c]) continue;
        const MtrVocab *v = vocab_of(m, (int32_t)c);
        size_t ids = v ? (size_t)v->n + 1 : 1;
        Encoded *both[2] = {train, test};
        for (int k = 0; k < 2; k++) {
            Encoded *e = both[k];
            if (k == 1 && e == train) break;
            if (!e->logq && !(e->logq = calloc(m->n_columns + 1, sizeof *e->logq)))
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            free(e->logq[c]);
            if (!(e->logq[c] = malloc((e->n_rows ? e->n_rows : 1) * sizeof *e->logq[c])))
                return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        }
        double *count = calloc(ids, sizeof *count);
        if (!count) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            int32_t id = train->ids[c][rows[i]];
            if (id >= 0 && (size_t)id < ids) count[id] += 1.0;
        }
        double total = n > 0 ? (double)n : 1.0;
        for (int k = 0; k < 2; k++) {
            Encoded *e = both[k];
            if (k == 1 && e == train) break;
            for (uint64_t r = 0; r < e->n_rows; r++) {
                int32_t id = e->ids && e->ids[c] ? e->ids[c][r] : -1;
                double cnt = id >= 0 && (size_t)id < ids && count[id] > 0 ? count[id] : 1.0;
                e->logq[c][r] = (float)log(cnt / total);
            }
        }
        free(count);
    }
    return MTR_OK;
}
