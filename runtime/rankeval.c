/* Per-user ranking evaluation (see rankeval.h). For each test user: score
 * every candidate item (the model's query of the user's first test row against
 * the item vectors, or the items' training counts), drop the items the user has
 * in the training rows when asked, order by score (ties: the lower item row
 * first), keep each item key once (ml-100k has 1682 items but 1664 titles),
 * and compare the first k keys with the keys of the user's test rows. */
#include "rankeval.h"

#include "mtr/exec.h"

#include <stdlib.h>
#include <string.h>

int32_t rankeval_user_column(const MtrModel *m)
{
    return mtr_model_user_column(m);
}

const char *rankeval_no_user =
    "the model names no user column (its retrieval query tower looks up no id; or model.bin "
    "was compiled before mtrc recorded the user: compile the .mtr again)";

static int wants_lists(const MtrTask *t)
{
    static const MtrMetric per_user[] = {MTR_METRIC_RECALL, MTR_METRIC_NDCG, MTR_METRIC_MAP,
                                         MTR_METRIC_HIT_RATE, MTR_METRIC_COVERAGE};
    for (size_t i = 0; i < sizeof per_user / sizeof *per_user; i++)
        if (t->metrics >> per_user[i] & 1u) return 1;
    return 0;
}

int rankeval_wanted(const Metrics *ms, uint32_t t, const RankevalInput *in)
{
    if (t >= ms->n_tasks || ms->tasks[t].reads != MTR_OUT_RANK) return 0;
    return wants_lists(ms->tasks[t].task) || in->exclude_seen || in->scorer == RANKEVAL_POPULARITY;
}

typedef struct {
    float score;
    int32_t item;
} Scored;

/* Best first: the higher score, then the lower item row. */
static int scored_cmp(const void *pa, const void *pb)
{
    const Scored *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return (a->item > b->item) - (a->item < b->item);
}

static int before(float sa, int32_t ia, float sb, int32_t ib)
{
    return sa > sb || (sa == sb && ia < ib);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The task's pass: where its ranking reads from, and its scratch. */
typedef struct {
    int32_t op, query, items, key_col, key_ix, n_keys;
    int64_t d;
} RankTask;

static int find_task(const MtrModel *m, const RankevalInput *in, int32_t rank, RankTask *rt)
{
    const MtrProgram *p = &m->programs[in->p_eval];
    rt->op = -1;
    for (uint32_t i = 0; i < p->n_ops && rt->op < 0; i++)
        if (p->ops[i].kind == OP_RETRIEVAL_RANK && p->ops[i].out[0] == rank) rt->op = (int32_t)i;
    if (rt->op < 0) return 0;
    const MtrOp *op = &p->ops[rt->op];
    rt->query = op->in[0];
    rt->items = op->in[1];
    rt->key_col = -1;
    for (uint32_t f = 0; f < in->feeds->n; f++)
        if (in->feeds->feeds[f].tensor == op->in[2] && in->feeds->feeds[f].kind == FEED_TRUE_ROW)
            rt->key_col = in->feeds->feeds[f].column;
    if (rt->key_col < 0) return 0;
    rt->key_ix = -1;
    for (uint32_t k = 0; k < m->items.n_columns; k++)
        if (m->items.columns[k] == rt->key_col) rt->key_ix = (int32_t)k;
    rt->n_keys = -1;
    for (uint32_t v = 0; v < m->n_vocabs; v++)
        if (m->vocabs[v].column == rt->key_col) rt->n_keys = (int32_t)m->vocabs[v].n + 1;
    const MtrTensor *q = &m->tensors[rt->query];
    rt->d = q->rank ? q->dim[q->rank - 1].k : 1;
    if (q->rank && q->dim[q->rank - 1].sym >= 0) return 0; /* a data-sized width: not a query */
    return rt->key_ix >= 0 && rt->n_keys > 0 && in->test->true_row &&
           in->test->true_row[rt->key_col] && in->test->ids[rt->key_col];
}

typedef struct {
    int32_t *seen_start, *seen; /* CSR by user id of the keys in the training rows */
    int32_t n_users;
    float *pop;     /* [key] training count (popularity scorer) */
    Scored *order;  /* (N) */
    float *scores;  /* (N) */
    int64_t *stamp; /* [key] the last user group that listed it */
    int32_t *top, *rel;
    int32_t *kpos;   /* [key] its place in the popularity ranking's kept list, or -1 */
    int32_t n_kept;  /* that list's length (order[0..n_kept)) */
    uint32_t *first; /* a chunk of groups' first rows */
    int64_t *gstart; /* their start in test_rows */
} Scratch;

static void scratch_free(Scratch *s)
{
    free(s->seen_start), free(s->seen), free(s->pop), free(s->order), free(s->scores);
    free(s->stamp), free(s->top), free(s->rel), free(s->first), free(s->gstart);
    free(s->kpos);
    memset(s, 0, sizeof *s);
}

static int seen_has(const Scratch *s, int32_t user, int32_t key)
{
    if (!s->seen || user < 0 || user >= s->n_users) return 0;
    int32_t lo = s->seen_start[user], hi = s->seen_start[user + 1];
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (s->seen[mid] == key) return 1;
        if (s->seen[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static MtrStatus scratch_new(const MtrModel *m, const RankevalInput *in, const RankTask *rt,
                             int32_t uc, int32_t kmax, Scratch *s, MtrError *err)
{
    memset(s, 0, sizeof *s);
    size_t n = m->items.n ? m->items.n : 1;
    int64_t batch = in->batch > 0 ? in->batch : 1;
    int64_t most_rows = in->n_test > 0 ? in->n_test : 1;
    s->order = malloc(n * sizeof *s->order);
    s->scores = malloc(n * sizeof *s->scores);
    s->stamp = malloc((size_t)rt->n_keys * sizeof *s->stamp);
    s->top = malloc((size_t)(kmax > 0 ? kmax : 1) * sizeof *s->top);
    s->rel = malloc((size_t)most_rows * sizeof *s->rel);
    s->first = malloc((size_t)batch * sizeof *s->first);
    s->gstart = malloc((size_t)(batch + 1) * sizeof *s->gstart);
    if (!s->order || !s->scores || !s->stamp || !s->top || !s->rel || !s->first || !s->gstart)
        goto nomem;
    for (int32_t k = 0; k < rt->n_keys; k++) s->stamp[k] = -1;
    const int32_t *tu = in->train->ids ? in->train->ids[uc] : NULL;
    const int32_t *tk = in->train->ids ? in->train->ids[rt->key_col] : NULL;
    if (in->scorer == RANKEVAL_POPULARITY) {
        if (!(s->pop = calloc((size_t)rt->n_keys, sizeof *s->pop))) goto nomem;
        if (!(s->kpos = malloc((size_t)rt->n_keys * sizeof *s->kpos))) goto nomem;
        for (int64_t i = 0; tk && i < in->n_train; i++) {
            int32_t k = tk[in->train_rows[i]];
            if (k >= 0 && k < rt->n_keys) s->pop[k] += 1.0f;
        }
    }
    if (in->exclude_seen && tu && tk) {
        int32_t users = 0;
        for (int64_t i = 0; i < in->n_train; i++)
            users = tu[in->train_rows[i]] + 1 > users ? tu[in->train_rows[i]] + 1 : users;
        s->n_users = users;
        s->seen_start = calloc((size_t)users + 2, sizeof *s->seen_start);
        s->seen = malloc((size_t)(in->n_train > 0 ? in->n_train : 1) * sizeof *s->seen);
        if (!s->seen_start || !s->seen) goto nomem;
        for (int64_t i = 0; i < in->n_train; i++) {
            int32_t u = tu[in->train_rows[i]];
            if (u >= 0) s->seen_start[u + 2]++;
        }
        for (int32_t u = 0; u < users; u++) s->seen_start[u + 2] += s->seen_start[u + 1];
        for (int64_t i = 0; i < in->n_train; i++) {
            int32_t u = tu[in->train_rows[i]];
            if (u >= 0) s->seen[s->seen_start[u + 1]++] = tk[in->train_rows[i]];
        }
        for (int32_t u = 0; u < users; u++)
            qsort(s->seen + s->seen_start[u], (size_t)(s->seen_start[u + 1] - s->seen_start[u]),
                  sizeof *s->seen, cmp_i32);
    }
    return MTR_OK;
nomem:
    scratch_free(s);
    return mtr_fail(err, MTR_E_NOMEM, "out of memory for the per-user evaluation");
}

/* Each key once, at its best item: the kept entries of order[0..n) move to
 * its front, in order; returns their number. */
static int32_t keep_keys(const RankTask *rt, const int32_t *item_key, Scratch *s, int32_t n,
                         int64_t group)
{
    int32_t kept = 0;
    for (int32_t j = 0; j < n; j++) {
        int32_t key = item_key[s->order[j].item];
        if (key < 0 || key >= rt->n_keys || s->stamp[key] == group) continue;
        s->stamp[key] = group;
        s->order[kept++] = s->order[j];
    }
    return kept;
}

/* Popularity scores are the same for every user, so the items are ranked
 * once (order[0..n_kept): each key at its best item, kpos[key] its place), and
 * a user's list is that ranking without the user's own keys (excluding a key
 * drops all its items, so what is kept of the rest does not change). */
static void popular_ranking(const MtrModel *m, const RankTask *rt, Scratch *s)
{
    const int32_t *item_key = m->items.ids[rt->key_ix];
    for (uint32_t i = 0; i < m->items.n; i++) s->order[i] = (Scored){s->scores[i], (int32_t)i};
    qsort(s->order, m->items.n, sizeof *s->order, scored_cmp);
    s->n_kept = keep_keys(rt, item_key, s, (int32_t)m->items.n, -3);
    for (int32_t k = 0; k < rt->n_keys; k++) s->kpos[k] = -1, s->stamp[k] = -1;
    for (int32_t j = 0; j < s->n_kept; j++) s->kpos[item_key[s->order[j].item]] = j;
}

/* The keys other than `key` (item t's) in the user's popularity list that rank
 * before item t: the kept entries before it (a prefix, found by bisection),
 * less its own key's and the user's excluded keys' entries among them. */
static int64_t popular_before(const RankevalInput *in, const RankTask *rt, const Scratch *s,
                              int32_t user, int32_t key, int32_t t)
{
    int32_t lo = 0, hi = s->n_kept;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (before(s->order[mid].score, s->order[mid].item, s->scores[t], t))
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t n = lo;
    if (key >= 0 && key < rt->n_keys && s->kpos[key] >= 0 && s->kpos[key] < lo) n--;
    if (in->exclude_seen && s->seen && user >= 0 && user < s->n_users) {
        for (int32_t i = s->seen_start[user]; i < s->seen_start[user + 1]; i++) {
            int32_t k = s->seen[i];
            if (i > s->seen_start[user] && k == s->seen[i - 1]) continue; /* sorted: once each */
            if (k != key && k >= 0 && k < rt->n_keys && s->kpos[k] >= 0 && s->kpos[k] < lo) n--;
        }
    }
    return n;
}

/* One user group: rows test_rows[g0..g1), scores in s->scores. */
static void rank_user(const MtrModel *m, const RankevalInput *in, const RankTask *rt,
                      MetricsTask *mt, Scratch *s, int64_t group, int64_t g0, int64_t g1,
                      int32_t user, int32_t kmax, int redo_topk)
{
    const int32_t *item_key = m->items.ids[rt->key_ix];
    const int32_t *true_row = in->test->true_row[rt->key_col];
    int popular = in->scorer == RANKEVAL_POPULARITY;
    int32_t kept = 0, n_top = 0;
    if (popular) { /* the one ranking, without the user's own keys */
        for (int32_t j = 0; j < s->n_kept && n_top < kmax; j++) {
            int32_t key = item_key[s->order[j].item];
            if (!(in->exclude_seen && seen_has(s, user, key))) s->top[n_top++] = key;
        }
    } else {
        int32_t n = 0;
        for (uint32_t i = 0; i < m->items.n; i++) {
            if (in->exclude_seen && seen_has(s, user, item_key[i])) continue;
            s->order[n++] = (Scored){s->scores[i], (int32_t)i};
        }
        qsort(s->order, (size_t)n, sizeof *s->order, scored_cmp);
        kept = keep_keys(rt, item_key, s, n, group);
        n_top = kept < kmax ? kept : kmax;
        for (int32_t j = 0; j < n_top; j++) s->top[j] = item_key[s->order[j].item];
    }
    int32_t n_rel = 0;
    for (int64_t r = g0; r < g1; r++) {
        uint32_t row = in->test_rows[r];
        int32_t t = true_row[row];
        if (t < 0 || (uint32_t)t >= m->items.n) {
            if (redo_topk) mt->unrankable++;
            continue;
        }
        int32_t key = item_key[t];
        if (redo_topk) {
            /* 1 + the listed keys (other than its own) ranking before it */
            int64_t rank = 1;
            if (popular) {
                rank += popular_before(in, rt, s, user, key, t);
            } else {
                for (int32_t j = 0; j < kept; j++)
                    rank += item_key[s->order[j].item] != key &&
                            before(s->order[j].score, s->order[j].item, s->scores[t], t);
            }
            for (uint32_t i = 0; i < mt->topk.n_ks; i++) mt->topk.hits[i] += rank <= mt->topk.ks[i];
            mt->topk.rows++;
        }
        if (in->exclude_seen && seen_has(s, user, key)) continue;
        int dup = 0;
        for (int32_t j = 0; j < n_rel && !dup; j++) dup = s->rel[j] == key;
        if (!dup) s->rel[n_rel++] = key;
    }
    if (mt->lists.best) metrics_lists_add_user(&mt->lists, s->top, n_top, s->rel, n_rel);
}

static MtrStatus run_task(const MtrModel *m, const RankevalInput *in, MetricsTask *mt,
                          const RankTask *rt, int32_t uc, MtrError *err)
{
    const MtrTask *t = mt->task;
    int32_t kmax = t->n_ks ? t->ks[t->n_ks - 1] : 0;
    Scratch s;
    MtrStatus rc = scratch_new(m, in, rt, uc, kmax, &s, err);
    if (rc) return rc;
    if (wants_lists(t)) {
        /* the catalogue: the distinct keys among the candidates */
        int64_t catalogue = 0;
        for (uint32_t i = 0; i < m->items.n; i++) {
            int32_t key = m->items.ids[rt->key_ix][i];
            if (key < 0 || key >= rt->n_keys || s.stamp[key] == -2) continue;
            s.stamp[key] = -2;
            catalogue++;
        }
        for (int32_t k = 0; k < rt->n_keys; k++) s.stamp[k] = -1;
        rc = metrics_lists_init(&mt->lists, t->ks, t->n_ks, rt->n_keys, catalogue, err);
    }
    int redo_topk = in->exclude_seen || in->scorer == RANKEVAL_POPULARITY;
    if (redo_topk) {
        metrics_topk_reset(&mt->topk);
        mt->unrankable = 0;
    }
    if (in->scorer == RANKEVAL_POPULARITY) {
        const int32_t *key = m->items.ids[rt->key_ix];
        for (uint32_t i = 0; i < m->items.n; i++)
            s.scores[i] = key[i] >= 0 && key[i] < rt->n_keys ? s.pop[key[i]] : 0.0f;
        popular_ranking(m, rt, &s);
    }
    const int32_t *uid = in->test->ids[uc];
    int64_t batch = in->batch > 0 ? in->batch : 1, group = 0;
    for (int64_t r = 0; rc == MTR_OK && r < in->n_test;) {
        /* a chunk of up to `batch` user groups */
        int64_t nb = 0;
        while (r < in->n_test && nb < batch) {
            s.gstart[nb] = r;
            s.first[nb] = in->test_rows[r];
            int32_t u = uid[in->test_rows[r]];
            while (r < in->n_test && uid[in->test_rows[r]] == u) r++;
            nb++;
        }
        s.gstart[nb] = r;
        const float *q = NULL, *x = NULL;
        if (in->scorer == RANKEVAL_MODEL) {
            bind_feed(in->s, m, in->feeds, in->test, s.first, nb);
            mtr_session_run_ops(in->s, in->p_eval, nb, (uint32_t)rt->op + 1);
            q = mtr_session_tensor(in->s, rt->query);
            x = mtr_session_tensor(in->s, rt->items);
        }
        for (int64_t g = 0; g < nb; g++, group++) {
            if (in->scorer != RANKEVAL_POPULARITY) {
                const float *qg = q + g * rt->d;
                for (uint32_t i = 0; i < m->items.n; i++) {
                    const float *xi = x + (int64_t)i * rt->d;
                    double acc = 0.0;
                    for (int64_t k = 0; k < rt->d; k++) acc += (double)qg[k] * (double)xi[k];
                    s.scores[i] = (float)acc;
                }
            }
            rank_user(m, in, rt, mt, &s, group, s.gstart[g], s.gstart[g + 1], uid[s.first[g]], kmax,
                      redo_topk);
        }
    }
    scratch_free(&s);
    return rc;
}

MtrStatus rankeval_run(const MtrModel *m, const RankevalInput *in, Metrics *ms, MtrError *err)
{
    int32_t uc = rankeval_user_column(m);
    if (uc < 0) {
        for (uint32_t t = 0; t < ms->n_tasks; t++)
            if (rankeval_wanted(ms, t, in))
                return mtr_fail(err, MTR_E_ARG, "per-user metrics of task '%s': %s",
                                ms->tasks[t].task->name, rankeval_no_user);
        return MTR_OK;
    }
    if (!in->test->ids || !in->test->ids[uc]) return MTR_OK;
    for (uint32_t t = 0; t < ms->n_tasks; t++) {
        if (!rankeval_wanted(ms, t, in)) continue;
        RankTask rt;
        if (!find_task(m, in, ms->tasks[t].tensor, &rt)) continue;
        if (in->exclude_seen && (!in->train->ids || !in->train->ids[uc])) continue;
        MtrStatus rc = run_task(m, in, &ms->tasks[t], &rt, uc, err);
        if (rc) return rc;
    }
    return MTR_OK;
}
