/* Side tables kept in the model (model.bin's columns section, "sides"): what
 * a known user's features and an item's features are, learned from the
 * training rows, so that serving needs only the user id and the item.
 * Internal to libmtr. */
#ifndef MTR_SIDES_H
#define MTR_SIDES_H

#include "mtr/data.h"
#include "mtr/model.h"

/* Replaces m's side tables with those of t: for the user key (the first input
 * data column that is not an item attribute) and the item key (the first item
 * attribute), the other input data columns of the same side whose value is a
 * function of the key in every row of t (for the item key, of items, the
 * candidate items, when it has the key column; items may be NULL). */
MtrStatus sides_learn(MtrModel *m, const MtrTable *t, const MtrTable *items, MtrError *err);

/* A copy of t in *out with the columns the model holds filled in: for each
 * side table whose key t has, the side's columns t lacks (a column t has
 * wins: an override), by each row's key. A row whose key the side lacks gets
 * the empty value; with strict, that is an error naming the key and the first
 * column that has no value. *out is freed by mtr_table_free, also on error. */
MtrStatus sides_fill(const MtrModel *m, const MtrTable *t, int strict, MtrTable *out,
                     MtrError *err);

void sides_free(MtrModel *m);

#endif
