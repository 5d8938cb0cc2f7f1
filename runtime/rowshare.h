/* Rows that stay on their rank (docs/distributed.md, "Reading data at
 * scale"): under data-parallel ranks each rank keeps only the interactions it
 * read (its part of the file) and encodes only those. What the single process
 * learns from every row comes from small collectives instead:
 *   - global row ids: rank r's rows are [offset_r, offset_r + n_r), offset_r
 *     the exclusive prefix sum of the ranks' row counts, so that global id =
 *     the row's index in the table one process reads;
 *   - a summary table: each column's distinct values in the whole file's
 *     first-seen order with their row counts (over every row, and over the
 *     training rows), merged from every rank's; vocabularies, min_count and
 *     the features' statistics (normalize's mean and variance, discretize's
 *     exact quantiles, from each distinct value's count) are computed on it
 *     exactly as on the whole table;
 *   - the encoded rows a rank needs (its shares of an epoch's batches, or
 *     evaluation rows) fetched from their owners: an all-to-all of the global
 *     ids wanted, then one of the encoded rows (4 bytes a value), so no rank
 *     ever holds the text or the table of another's rows.
 * Internal to libmtr. */
#ifndef MTR_ROWSHARE_H
#define MTR_ROWSHARE_H

#include "bind.h"
#include "mtr/data.h"
#include "mtr/dist.h"

typedef struct RowShare RowShare;

/* Starts row sharing on d for this rank's n_local rows: the ranks' counts are
 * gathered (a collective). totals[0..n_totals) are this rank's counters,
 * replaced by their sums over the ranks. */
MtrStatus rowshare_new(const MtrDist *d, uint64_t n_local, uint64_t *totals, int n_totals,
                       RowShare **out, MtrError *err);
void rowshare_free(RowShare *rs);
/* Rows of every rank, and the global id of this rank's first row. */
uint64_t rowshare_rows(const RowShare *rs);
uint64_t rowshare_offset(const RowShare *rs);
/* Replaces v[0..n) by their sums over the ranks (a collective). */
void rowshare_sum(RowShare *rs, uint64_t *v, int n);
/* Bytes this rank has sent to the others by rowshare_fetch so far. */
double rowshare_sent(const RowShare *rs);

/* The summary table of local, this rank's rows: every column's values of
 * every rank, merged in the whole file's first-seen order, with out->counts
 * their rows over every rank; *train_counts (same shape, the caller frees each
 * column and the array) their rows among the global ids train[0..n_train). A
 * collective. */
MtrStatus rowshare_summary(RowShare *rs, const MtrTable *local, const uint32_t *train,
                           uint64_t n_train, MtrTable *out, uint64_t ***train_counts,
                           MtrError *err);

/* Fills *out (freed with bind_encoded_free) with the rows of global ids
 * want[0..n), in that order, each from the rank that holds it in local (this
 * rank's rows, encoded with m). Every rank calls it at once (each with its own
 * want), since the rows travel by all-to-all. */
MtrStatus rowshare_fetch(RowShare *rs, const MtrModel *m, const Encoded *local,
                         const uint32_t *want, int64_t n, Encoded *out, MtrError *err);

/* The same for one column of ids: out[i] = the id of global row want[i],
 * local[0..n_local) this rank's rows' ids. A collective. */
MtrStatus rowshare_fetch_ids(RowShare *rs, const int32_t *local, uint64_t n_local,
                             const uint32_t *want, int64_t n, int32_t *out, MtrError *err);

/* Fills *out (freed with bind_encoded_free) with every rank's rows, in
 * global id order: one all-gather of each encoded column, straight into out
 * (the ranks' rows are consecutive global ids in rank order). A collective. */
MtrStatus rowshare_gather_all(RowShare *rs, const MtrModel *m, const Encoded *local, Encoded *out,
                              MtrError *err);

#endif
