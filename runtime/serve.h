/* Serving, the parts that mtrun's serve commands (serve.c) and the public C API
 * (api.c) share: where a trained model's serving programs and outputs are, and
 * running a table of rows through them in batches, each call on a session of
 * its own (so one model serves several threads). Internal to libmtr. */
#ifndef MTR_SERVE_H
#define MTR_SERVE_H

#include "bind.h"

#define SERVE_MAX_TASKS 64

/* The programs and tensors serving reads. serve_outputs is the one place that
 * finds them in a model: by program and tensor names today, by the typed
 * outputs of format version 2 later. */
typedef struct {
    int predict;                           /* program, or -1 (no ranking task) */
    int n_pred;                            /* ranking tasks, in task order */
    int32_t pred[SERVE_MAX_TASKS];         /* each one's prediction (batch, 1) in predict */
    int32_t pred_task[SERVE_MAX_TASKS];    /* its task index */
    int recommend, embed_items;            /* programs, or -1 (no retrieval task) */
    int32_t rec_task;                      /* the retrieval task recommend serves, or -1 */
    int32_t index, score;                  /* recommend's (batch, k) item rows and scores */
    int32_t query;                         /* recommend's query vectors (batch, D), or -1 */
    uint32_t query_ops;                    /* the ops of recommend that compute them */
    int32_t item_vectors[SERVE_MAX_TASKS]; /* per task: its (items, D) vectors, or -1 */
} ServeOutputs;

void serve_outputs(const MtrModel *m, ServeOutputs *o);
/* The same, with recommend serving retrieval task `task` (-1: the first). */
void serve_outputs_for(const MtrModel *m, int32_t task, ServeOutputs *o);

/* Checks that m can recommend k items: it has the programs, it is trained,
 * and 1 <= k <= its item count. */
MtrStatus serve_check_recommend(const MtrModel *m, const ServeOutputs *o, int64_t k, MtrError *err);

/* A table of rows bound for program p: encoded once, and a session sized for
 * batches of up to `batch` rows (and, for recommend, with the item vectors
 * computed). */
typedef struct {
    const MtrTable *t; /* the rows (borrowed), or filled: with the model's features filled in */
    MtrTable filled;
    int p;
    Encoded e;
    ProgramFeeds feeds;
    MtrSession *s;
    int own_session; /* serve_close frees s */
    uint32_t *rows;
    int64_t batch;
} ServeRun;

/* Flags of serve_open. */
enum {
    SERVE_STRICT = 1, /* a value the vocabulary lacks is an error (else the OOV row, counted) */
};

/* A session for program p of m (trained) for batches of up to `batch` rows
 * and top k (1 when unused), its parameters loaded; for the recommend
 * program, embed_items is bound and run too. The caller frees it. */
MtrStatus serve_session(const MtrModel *m, const ServeOutputs *o, int p, int64_t batch, int64_t k,
                        MtrSession **s, MtrError *err);

/* Encodes t for program p (ixs: ready vocabulary indexes per column, or NULL)
 * to run in session s (borrowed, from serve_session with batch >= `batch`).
 * The features the model holds for t's user and item (its side tables) are
 * filled in where t lacks their columns; then t must hold every other input
 * column p reads (an error names the first one missing); extra columns are
 * ignored. */
MtrStatus serve_bind(const MtrModel *m, int p, const MtrTable *t, int64_t batch, unsigned flags,
                     MtrVocabIndex *const *ixs, MtrSession *s, ServeRun *r, MtrError *err);

/* serve_bind with a session of its own, sized for batches of at most `most` rows. */
MtrStatus serve_open(const MtrModel *m, const ServeOutputs *o, int p, const MtrTable *t,
                     int64_t most, int64_t k, unsigned flags, ServeRun *r, MtrError *err);
/* Feeds rows [off, off + n) (n <= batch) and runs the first n_ops ops of the
 * program (its op count for all of them). */
void serve_run(const MtrModel *m, ServeRun *r, int64_t off, int64_t n, uint32_t n_ops);
void serve_close(const MtrModel *m, ServeRun *r);

/* Runs embed_items once and copies task's item vectors (items x D floats) to
 * out; *dim receives D. out NULL: only *dim is set. */
MtrStatus serve_item_vectors(const MtrModel *m, const ServeOutputs *o, int task, float *out,
                             int64_t *dim, MtrError *err);

/* The query vectors of the task recommend serves for every row of t: out
 * holds t->n_rows x D floats (D = serve_width(m, o->query)). Runs in session
 * s (a recommend session for batches of `batch` rows, as serve_bind takes),
 * or, with s NULL, in one of its own for batches of at most `batch` rows. */
MtrStatus serve_query_vectors(const MtrModel *m, const ServeOutputs *o, const MtrTable *t,
                              unsigned flags, MtrVocabIndex *const *ixs, MtrSession *s,
                              int64_t batch, float *out, MtrError *err);

/* Items that share a label (ml-100k: 1682 items, 1664 titles) are listed
 * once, at the best ranked of them. first[i] is the lowest item carrying item
 * i's label; repeats counts the items that are not their label's first. */
typedef struct {
    uint32_t *first;
    uint32_t repeats;
} ServeLabels;

MtrStatus serve_labels(const MtrModel *m, ServeLabels *l, MtrError *err);
void serve_labels_free(ServeLabels *l);

/* How deep to rank a row so that its first k listable items are among the
 * ranked: an item is passed over for being excluded (at most n_excluded of
 * them) or for repeating a listed label (at most l->repeats in all), so
 * k + n_excluded + repeats items always hold them. At most n_items. */
int64_t serve_rank_depth(const ServeLabels *l, uint32_t n_items, int64_t k, uint64_t n_excluded);

/* Picks, from a row's ranking of its best kb items (idx, best first), the
 * first k that are not excluded (exclude[item] set; exclude may be NULL) and
 * whose label is not listed yet: their positions in idx, out[0..returned). */
int serve_distinct_items(const MtrModel *m, const ServeLabels *l, const int32_t *idx, int64_t kb,
                         int k, const uint8_t *exclude, int32_t *out);

/* The width D of a tensor (its last extent) with m's sizes bound. */
int64_t serve_width(const MtrModel *m, int32_t t);

#endif
