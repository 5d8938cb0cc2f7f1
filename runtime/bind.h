/* Binding data to a model: vocabularies and items taken from the data (or from
 * a trained model), every column the model reads encoded once into flat arrays,
 * and for each program the list of input tensors with where their values come
 * from. Internal to libmtr. */
#ifndef MTR_BIND_H
#define MTR_BIND_H

#include "mtr/data.h"
#include "mtr/exec.h"
#include "mtr/model.h"

/* The model's columns for one table of rows: ids for looked-up columns,
 * numbers for the others, and each retrieval key's item row. */
typedef struct {
    uint64_t n_rows;
    int32_t **ids;      /* [column][row] vocabulary id (a list: [row * length + i]), or NULL */
    float **nums;       /* [column][row] value, or NULL */
    int32_t **true_row; /* [column][row] first item with that id (-1 none), or NULL */
    float **logq;       /* [column][row] log of the id's share of the training rows, or NULL */
    uint64_t oov;       /* values that fell to row 0 */
} Encoded;

/* FEED_NEG_IDS and FEED_NEG_LOGQ (mixed negatives) are filled by the sampler
 * (negatives.h) each step, not by bind_feed. */
typedef enum {
    FEED_IDS,
    FEED_NUMS,
    FEED_TRUE_ROW,
    FEED_ITEMS,
    FEED_LOGQ,
    FEED_NEG_IDS,
    FEED_NEG_LOGQ
} FeedKind;

typedef struct {
    int32_t tensor;
    FeedKind kind;
    int32_t column;
    int32_t width; /* values a row: a list feature's length, else 1 */
} Feed;

struct ProgramFeeds {
    Feed *feeds;
    uint32_t n;
};

/* Replaces m's vocabularies and items with ones built from ds. */
MtrStatus bind_vocabularies(MtrModel *m, const MtrDataset *ds, MtrError *err);

typedef struct ProgramFeeds ProgramFeeds;

/* Encodes table t with m's vocabularies and items: every column a program
 * reads and every label, or, with only, just the columns those feeds read
 * (serving: no labels needed). */
MtrStatus bind_encode(const MtrModel *m, const MtrTable *t, const ProgramFeeds *only, Encoded *out,
                      MtrError *err);
/* The same with ready vocabulary indexes: ixs[c] for column c (n_columns
 * entries, NULL entries built on the fly), or ixs NULL. */
MtrStatus bind_encode_ix(const MtrModel *m, const MtrTable *t, const ProgramFeeds *only,
                         MtrVocabIndex *const *ixs, Encoded *out, MtrError *err);
void bind_encoded_free(const MtrModel *m, Encoded *e);
/* The values a row of column col holds in Encoded.ids: a list's length, else 1. */
size_t bind_column_width(const MtrColumn *col);

/* Fills the logq of every column a program reads with source LOGQ, in train
 * and in test (which may be train): log(count / n) of each row's id, counted
 * over train's rows[0..n) (an id never seen there counts 1). */
MtrStatus bind_logq(const MtrModel *m, Encoded *train, const uint32_t *rows, int64_t n,
                    Encoded *test, MtrError *err);

/* Lists program p's input tensors and their sources. */
MtrStatus bind_feeds(const MtrModel *m, int p, ProgramFeeds *out, MtrError *err);
void bind_feeds_free(ProgramFeeds *f);

/* Copies rows[0..n) of e into the program's input tensors (items feeds copy
 * every item). Never allocates. */
void bind_feed(MtrSession *s, const MtrModel *m, const ProgramFeeds *f, const Encoded *e,
               const uint32_t *rows, int64_t n);

/* The symbol values for running m with the given batch and top k: vocabulary
 * sizes and the item count from m's vocabularies and items. values has
 * m->n_symbols entries. */
MtrStatus bind_sizes(const MtrModel *m, int64_t batch, int64_t k, int64_t *values, MtrError *err);

/* Checks every value of the columns m reads as numbers, or as int ids, in the
 * rows of t: a number that is not one, an int that is not an integer, a label
 * of a bce task that is not 0 or 1. Each is an MTR_E_DATA error naming the
 * file and line (row, for rows not from a file), the column and the value;
 * under skip_bad the rows are dropped instead and counted in *skipped. */
MtrStatus bind_check_rows(const MtrModel *m, MtrTable *t, int skip_bad, uint64_t *skipped,
                          MtrError *err);

/* The names of m's item columns, NULL-terminated, for the readers of generic
 * files without an items file (MtrDataOptions.item_columns). The caller frees
 * the array (not the names, which are m's); NULL when out of memory. */
const char **bind_item_columns(const MtrModel *m);

#endif
