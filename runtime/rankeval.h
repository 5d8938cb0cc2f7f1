/* Per-user ranking evaluation (runtime stage: evaluate), internal to libmtr.
 * In: a session whose eval_step and embed_items have the trained parameters,
 * the test rows ordered by user, and the training rows. Out: each retrieval
 * task's per-user lists (recall, ndcg, map, hit_rate, coverage) and, when the
 * items a user has in the training rows are excluded or the scorer is item
 * popularity, its top_k counts, all in a Metrics set. */
#ifndef MTR_RANKEVAL_H
#define MTR_RANKEVAL_H

#include "bind.h"
#include "mtr/dist.h"
#include "mtr/metrics.h"

typedef enum {
    RANKEVAL_MODEL,      /* the model's scores: query . item vectors */
    RANKEVAL_POPULARITY, /* each item's count in the training rows (the baseline) */
} RankevalScorer;

typedef struct {
    MtrSession *s;             /* holds eval_step and the item vectors (embed_items run) */
    int p_eval;                /* the eval_step program */
    const ProgramFeeds *feeds; /* its feeds */
    const Encoded *test;
    const uint32_t *test_rows; /* ordered by user */
    int64_t n_test;
    const Encoded *train;
    const uint32_t *train_rows;
    int64_t n_train;
    int64_t batch;    /* rows the session is bound for */
    int exclude_seen; /* leave out the items each user has in the training rows */
    RankevalScorer scorer;
    /* Ranks whose training rows are split among them (rowshare.h), or NULL:
     * the popularity scorer's counts are then summed over the ranks, every
     * rank calling the pass with its own train rows (a collective). */
    const MtrDist *dist;
} RankevalInput;

/* The looked-up column that names a row's user (the query's id), or -1: the
 * first looked-up input that is neither a label nor an item attribute. */
int32_t rankeval_user_column(const MtrModel *m);
/* Why a model without a user column cannot be evaluated per user. */
extern const char *rankeval_no_user;

/* Whether task t of ms needs the per-user pass: it asks for a per-user
 * metric, or in->exclude_seen, or the scorer is popularity. */
int rankeval_wanted(const Metrics *ms, uint32_t t, const RankevalInput *in);
/* Whether task t asks for a per-user metric (recall, ndcg, map, hit_rate,
 * coverage), which needs every test row of a user on one rank. */
int rankeval_lists(const MtrTask *t);

/* Runs the pass for every retrieval task of m that wants it, filling ms
 * (lists, and top_k counts when items are excluded or popularity scores).
 * Without a user column nothing is done. MTR_E_NOMEM on allocation failure. */
MtrStatus rankeval_run(const MtrModel *m, const RankevalInput *in, Metrics *ms, MtrError *err);

#endif
