/* Data loading, vocabularies: builds a column's vocabulary (its distinct values,
 * sorted bytewise; id 0 is out-of-vocabulary, word i has id i + 1), indexes a
 * vocabulary with an open-addressing hash for id lookups, and encodes a whole
 * column to ids through its dictionary (one lookup per distinct value). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct MtrVocabIndex {
    char *const *words; /* borrowed from the vocabulary */
    uint32_t n;
    StrHash hash;
};

static int cmp_word(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Builds into *out the sorted distinct values of column name in ds->ratings
 * and, when from_items is set, in ds->items too (a table without the column
 * adds nothing, but at least one must have it). out->column is set to -1 for
 * the caller to fill. Errors: MTR_E_ARG when no table has the column. */
MtrStatus mtr_vocab_build(const MtrDataset *ds, const char *name, int from_items, MtrVocab *out,
                          MtrError *err)
{
    memset(out, 0, sizeof *out);
    out->column = -1;
    const MtrDataColumn *a = mtr_table_column(&ds->ratings, name);
    const MtrDataColumn *b = from_items ? mtr_table_column(&ds->items, name) : NULL;
    if (!a && !b)
        return mtr_fail(err, MTR_E_ARG, "%s: no column '%s' to build a vocabulary from",
                        ds->ratings.path ? ds->ratings.path : ds->dir, name);
    uint64_t total = (uint64_t)(a ? a->n_values : 0) + (b ? b->n_values : 0);
    if (total >= UINT32_MAX) return mtr_fail(err, MTR_E_DATA, "vocabulary '%s' too large", name);
    char **all = malloc((total ? total : 1) * sizeof *all);
    if (!all) return mtr_fail(err, MTR_E_NOMEM, "out of memory building vocabulary '%s'", name);
    uint32_t n = 0;
    if (a) memcpy(all, a->values, a->n_values * sizeof *all), n += a->n_values;
    if (b) memcpy(all + n, b->values, b->n_values * sizeof *all), n += b->n_values;
    qsort(all, n, sizeof *all, cmp_word);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (k == 0 || strcmp(all[k - 1], all[i]) != 0) all[k++] = all[i];
    out->words = calloc(k ? k : 1, sizeof *out->words);
    if (!out->words) {
        free(all);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory building vocabulary '%s'", name);
    }
    for (uint32_t i = 0; i < k; i++) {
        if (!(out->words[i] = strdup(all[i]))) {
            free(all);
            out->n = i;
            mtr_vocab_clear(out);
            return mtr_fail(err, MTR_E_NOMEM, "out of memory building vocabulary '%s'", name);
        }
    }
    out->n = k;
    free(all);
    return MTR_OK;
}

/* Frees the vocabulary's words and leaves it empty (column kept). */
void mtr_vocab_clear(MtrVocab *v)
{
    if (!v) return;
    for (uint32_t i = 0; v->words && i < v->n; i++) free(v->words[i]);
    free(v->words);
    v->words = NULL;
    v->n = 0;
}

/* Indexes v's words into a new *out (freed with mtr_vocab_index_free); v must
 * outlive the index, which borrows its words. Errors: MTR_E_DATA when a word
 * appears twice (a vocabulary from a damaged file), MTR_E_NOMEM. */
MtrStatus mtr_vocab_index_new(const MtrVocab *v, MtrVocabIndex **out, MtrError *err)
{
    *out = NULL;
    MtrVocabIndex *ix = calloc(1, sizeof *ix);
    if (!ix) return mtr_fail(err, MTR_E_NOMEM, "out of memory indexing a vocabulary");
    ix->words = v->words;
    ix->n = v->n;
    for (uint32_t i = 0; i < v->n; i++) {
        const char *w = v->words[i];
        uint32_t hv = hash_string(w, strlen(w));
        MtrStatus st = MTR_OK;
        if (hash_find(&ix->hash, ix->words, w, hv) != HASH_NONE)
            st = mtr_fail(err, MTR_E_DATA, "vocabulary word '%.200s' appears twice", w);
        else
            st = hash_insert(&ix->hash, hv, i, err);
        if (st) {
            mtr_vocab_index_free(ix);
            return st;
        }
    }
    *out = ix;
    return MTR_OK;
}

void mtr_vocab_index_free(MtrVocabIndex *ix)
{
    if (!ix) return;
    hash_free(&ix->hash);
    free(ix);
}

/* Returns word's id (1..n), or 0 when it is not in the vocabulary. */
int32_t mtr_vocab_id(const MtrVocabIndex *ix, const char *word)
{
    uint32_t k = hash_find(&ix->hash, ix->words, word, hash_string(word, strlen(word)));
    return k == HASH_NONE ? 0 : (int32_t)k + 1;
}

/* Writes the id of column name's value for each of t's rows into ids
 * (t->n_rows entries), looking each distinct value up once; *n_oov (may be
 * NULL) gets the number of rows mapped to 0. Errors: MTR_E_ARG without the
 * column, MTR_E_NOMEM. */
MtrStatus mtr_vocab_encode(const MtrVocabIndex *ix, const MtrTable *t, const char *name,
                           int32_t *ids, uint64_t *n_oov, MtrError *err)
{
    const MtrDataColumn *col = mtr_table_column(t, name);
    if (!col) return mtr_fail(err, MTR_E_ARG, "%s: no column '%s'", t->path, name);
    int32_t *map = malloc((col->n_values ? col->n_values : 1) * sizeof *map);
    if (!map) return mtr_fail(err, MTR_E_NOMEM, "out of memory encoding column '%s'", name);
    for (uint32_t v = 0; v < col->n_values; v++) map[v] = mtr_vocab_id(ix, col->values[v]);
    uint64_t oov = 0;
    for (uint64_t r = 0; r < t->n_rows; r++) {
        ids[r] = map[col->codes[r]];
        oov += ids[r] == 0;
    }
    free(map);
    if (n_oov) *n_oov = oov;
    return MTR_OK;
}
