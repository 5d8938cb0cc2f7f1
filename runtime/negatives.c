/* Mixed negatives' sampler (negatives.h). */
#include "negatives.h"

#include "mtr/ops.h"
#include "mtr/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t ids_in, logq_in; /* train_step inputs: the drawn ids (N) and their log probability */
    int32_t knob_n, knob_a;  /* how many to draw, the sampler's exponent */
    int64_t cap;             /* N, the rows of the inputs */
    int64_t n_ids;           /* vocabulary ids 1..n_ids are the catalogue */
    double *count;           /* [id] training rows with the id */
    double *cdf;             /* [id - 1] cumulative weight under exponent `built` */
    double built;            /* the exponent cdf was made for (NAN: none yet) */
    int uniform;             /* every id weighs 1 */
} Sampler;

struct Negatives {
    Sampler *s;
    uint32_t n;
};

void negatives_free(Negatives *ng)
{
    if (!ng) return;
    for (uint32_t i = 0; i < ng->n; i++) free(ng->s[i].count), free(ng->s[i].cdf);
    free(ng->s);
    free(ng);
}

MtrStatus negatives_new(const MtrModel *m, int p, const Encoded *e, const uint32_t *rows, int64_t n,
                        Negatives **out, MtrError *err)
{
    *out = NULL;
    const MtrProgram *prog = &m->programs[p];
    uint32_t k = 0;
    for (uint32_t i = 0; i < prog->n_ops; i++)
        k += prog->ops[i].kind == OP_INBATCH_SOFTMAX_XENT_MIXED;
    if (!k) return MTR_OK;
    Negatives *ng = calloc(1, sizeof *ng);
    if (!ng || !(ng->s = calloc(k, sizeof *ng->s))) {
        free(ng);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < prog->n_ops; i++) {
        const MtrOp *op = &prog->ops[i];
        if (op->kind != OP_INBATCH_SOFTMAX_XENT_MIXED) continue;
        Sampler *s = &ng->s[ng->n++];
        s->ids_in = op->in[5], s->logq_in = op->in[6];
        s->knob_n = op->iattr[3], s->knob_a = op->iattr[4];
        s->built = NAN;
        const MtrTensor *t = &m->tensors[s->ids_in];
        int32_t c = t->source_column;
        s->cap = t->dim[0].sym < 0 ? t->dim[0].k : 0;
        const MtrVocab *v = NULL;
        for (uint32_t j = 0; j < m->n_vocabs; j++)
            if (m->vocabs[j].column == c) v = &m->vocabs[j];
        if (!v || v->n == 0 || !e->ids || !e->ids[c] || s->cap <= 0) {
            negatives_free(ng);
            return mtr_fail(err, MTR_E_STATE,
                            "train_step input '%s': mixed negatives need the vocabulary and the "
                            "training ids of column '%s'",
                            t->name,
                            c >= 0 && (uint32_t)c < m->n_columns ? m->columns[c].name : "?");
        }
        s->n_ids = (int64_t)v->n;
        s->count = calloc((size_t)s->n_ids + 1, sizeof *s->count);
        s->cdf = calloc((size_t)s->n_ids, sizeof *s->cdf);
        if (!s->count || !s->cdf) {
            negatives_free(ng);
            return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        }
        for (int64_t r = 0; r < n; r++) {
            int32_t id = e->ids[c][rows[r]];
            if (id > 0 && id <= s->n_ids) s->count[id] += 1.0;
        }
    }
    *out = ng;
    return MTR_OK;
}

/* The cumulative weights count^a over the catalogue (uniform when a = 0 or
 * when no id was counted). */
static void build(Sampler *s, double a)
{
    double total = 0.0, counted = 0.0;
    for (int64_t id = 1; id <= s->n_ids; id++) counted += s->count[id];
    s->uniform = a == 0.0 || counted == 0.0;
    for (int64_t id = 1; id <= s->n_ids; id++) {
        double w = s->uniform ? 1.0 : s->count[id] > 0 ? pow(s->count[id], a) : 0.0;
        total += w;
        s->cdf[id - 1] = total;
    }
    s->built = a;
}

/* The id whose cumulative weight first exceeds x. */
static int64_t find(const Sampler *s, double x)
{
    int64_t lo = 0, hi = s->n_ids - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (s->cdf[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo + 1;
}

void negatives_fill(Negatives *ng, MtrSession *sess, uint64_t seed, uint64_t step)
{
    if (!ng) return;
    for (uint32_t i = 0; i < ng->n; i++) {
        Sampler *s = &ng->s[i];
        double a = mtr_session_knob(sess, s->knob_a), want = mtr_session_knob(sess, s->knob_n);
        if (!(a == s->built)) build(s, a);
        int64_t u = want <= 0 ? 0 : want >= (double)s->cap ? s->cap : (int64_t)want;
        int32_t *ids = mtr_session_tensor(sess, s->ids_in);
        float *logq = mtr_session_tensor(sess, s->logq_in);
        double total = s->cdf[s->n_ids - 1];
        Rng r;
        rng_seed(&r, seed ^ 0x6e65676174697665ull ^ (step + 1) * 0x9e3779b97f4a7c15ull ^ i);
        for (int64_t j = 0; j < s->cap; j++) {
            if (j >= u) {
                ids[j] = 0, logq[j] = 0.0f;
                continue;
            }
            double x = (double)(rng_next(&r) >> 11) * 0x1.0p-53 * total;
            int64_t id = find(s, x);
            double w = s->uniform ? 1.0 : pow(s->count[id], a);
            ids[j] = (int32_t)id;
            logq[j] = (float)log(w / total);
        }
    }
}
