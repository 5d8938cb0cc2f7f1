/* Features: the columns a model computes from the data before a program reads
 * them (docs/dsl.md, "Features"): the words of a string, the values of a list,
 * vocabulary or hashed ids, quantile or explicit buckets, normalized numbers.
 * What they learn from the data (vocabularies, list lengths, means and
 * variances, quantiles) is kept in the model (model.bin's columns and
 * vocabularies), never trained. Internal to libmtr. */
#ifndef MTR_FEATURIZE_H
#define MTR_FEATURIZE_H

#include "mtr/data.h"
#include "mtr/model.h"

#include <stddef.h>
#include <stdint.h>

/* The most words or values one row of a list feature holds; longer rows are
 * cut (the first ones kept). */
#define MTR_FEATURE_MAX_LEN 64

/* Splits s into the words TextVectorization's default standardization gives:
 * lower case (ASCII letters), ASCII punctuation removed, split on whitespace.
 * The words are written NUL-separated into buf (cap bytes) and words[i]
 * points at each; returns how many (at most max_words). */
size_t mtr_feature_tokens(const char *s, char *buf, size_t cap, const char **words,
                          size_t max_words);
/* Splits a `|`-separated list s the same way (empty values dropped). */
size_t mtr_feature_list(const char *s, char *buf, size_t cap, const char **words, size_t max_words);
/* The stable 64-bit hash of hash(N): FNV-1a over the bytes of s. */
uint64_t mtr_feature_hash(const char *s, size_t len);
/* The N - 1 boundaries of N quantile buckets of values x[0..n) (sorted in
 * place): boundary k is the value at rank floor(k n / N). */
void mtr_feature_quantiles(float *x, size_t n, uint32_t buckets, float *bounds);
/* The id of number x among increasing bounds[0..n): 1 + how many are <= x. */
int32_t mtr_feature_bucket(const float *bounds, uint32_t n, float x);

/* Column c's vocabulary (a LOOKUP feature column): the sorted distinct words
 * of its data column in the interactions (and the items for an item column),
 * those seen fewer than min_count times in the interactions dropped; also
 * sets the column's max_len when it is a list. */
MtrStatus features_vocab(MtrModel *m, uint32_t c, const MtrDataset *ds, MtrVocab *out,
                         MtrError *err);
/* The list lengths of every list feature column that is not looked up. */
MtrStatus features_lengths(MtrModel *m, const MtrDataset *ds, MtrError *err);
/* Learns each feature column's statistics (normalize's mean and variance,
 * discretize's boundaries) from rows[0..n) of t (every row when rows is NULL). */
MtrStatus features_adapt(MtrModel *m, const MtrTable *t, const uint32_t *rows, uint64_t n,
                         MtrError *err);
/* Computes feature column c for every row of t: ids (t->n_rows, or n_rows x
 * max_len for a list, -1 padded) or nums (t->n_rows). ix: the column's
 * vocabulary index for a LOOKUP feature. Adds out-of-vocabulary ids to *oov. */
MtrStatus features_encode(const MtrModel *m, uint32_t c, const MtrTable *t, const MtrVocabIndex *ix,
                          int32_t *ids, float *nums, uint64_t *oov, MtrError *err);
/* Fills the items' lists of every list feature column of the items (from
 * the item table), kept in the model with the items. */
MtrStatus features_items(MtrModel *m, const MtrTable *items, MtrError *err);

#endif
