/* Mixed negatives (`negatives N` on a retrieval task): each train step draws
 * up to N vocabulary ids of the candidate's key column from the whole
 * catalogue, uniformly or with probability proportional to count^A (the
 * training rows' counts), and feeds them with the log of their probability to
 * train_step's inbatch_softmax_xent_mixed. Seeded by the run's seed and the
 * step: reruns draw the same ids. */
#ifndef MTR_NEGATIVES_H
#define MTR_NEGATIVES_H

#include "bind.h"
#include "mtr/exec.h"
#include "mtr/model.h"

typedef struct Negatives Negatives;

/* The samplers of train program p's mixed-negative ops, counting ids over
 * rows[0..n) of e; *out is NULL when the program has none. */
MtrStatus negatives_new(const MtrModel *m, int p, const Encoded *e, const uint32_t *rows, int64_t n,
                        Negatives **out, MtrError *err);
/* Draws step `step`'s negatives into the session's inputs (the knobs as the
 * session holds them now). */
void negatives_fill(Negatives *ng, MtrSession *s, uint64_t seed, uint64_t step);
void negatives_free(Negatives *ng);

#endif
