/* Semantic checks. Stage: third, after parser.y. In: the tree the parser
 * built. Out: the same tree, checked, with every "sema:" field of ast.h
 * filled in, or errors reported through the Diag. */
#ifndef MTR_SEMA_H
#define MTR_SEMA_H

#include "ast.h"

/* Checks the model: names (duplicates, unknown, used before defined, of the
 * wrong sort), chain shapes and widths, tasks, metrics, weights, the train
 * block. Fills columns' looked_up and is_item, stages' in_width, chains'
 * width and is_item, ranking tasks' default loss, and the train block's
 * optimizer with every parameter resolved (Keras defaults). Scratch memory
 * comes from pool. Returns the number of errors found (0: the model is
 * ready for lowering). */
int sema_check(AstModel *m, Pool *pool, Diag *diag);

#endif
