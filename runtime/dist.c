/* The data-parallel train step (mtr/dist.h): each rank runs train_step's
 * gradients on its share of the global batch, through an op hook that makes
 * the batch-wide ops (mean losses, the in-batch softmax) mean what they mean
 * for the global batch; then the ranks' partial gradients and losses are
 * gathered and summed in rank order, and every rank runs the same updates.
 * Every buffer is allocated by mtr_dist_step_new; a step allocates nothing. */
#include "mtr/dist.h"

#include "kernels/kern.h"
#include "kernels/xent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One embedding table's sparse gradient: the outputs holding its rows and ids. */
typedef struct {
    int32_t rows, ids; /* tensors */
    int64_t d;         /* row width */
} Sparse;

struct DistStep {
    const MtrDist *d;
    const MtrModel *m;
    MtrSession *s;
    int p;
    int64_t batch, global, lo, hi; /* bound rows; this step's rows and this rank's share */
    int32_t *dense;                /* GRADIENT, LOSS and TASK_LOSS tensors, summed densely */
    uint32_t n_dense;
    int64_t dense_floats;
    float *pack, *pack_all; /* dense_floats, and size times that */
    Sparse *sparse;
    uint32_t n_sparse;
    int32_t *ids_all; /* size * batch */
    float *rows_all;  /* size * batch * widest row */
    uint64_t *keys;   /* size * batch: (id, position) to merge the gathered rows by id */
    int64_t *counts;  /* size: one int64 from each rank */
    size_t *bytes;    /* size: the gathered bytes of each rank */
    /* the in-batch softmax (sized for the widest such op): the gathered
     * candidates and their ids, the distinct queries and candidates (embedding,
     * count, weighted embedding, each row's group), their gradients, the
     * candidates' partial gradient by global row, what the ranks send back of
     * it, and a tile of scores */
    float *c, *qd, *qn, *qw, *cd, *cn, *cw, *g, *h, *dcp, *recv, *tile;
    int32_t *cid, *qa, *ca;
    size_t *rbytes;
    /* the softmax with options or mixed negatives, run whole on every rank:
     * the global batch's queries, candidates, their keys and logq, dq, dc and workspace */
    float *wq, *wc, *wlogq, *wdq, *wdc, *wwork;
    int32_t *wkey;
    float *drop;         /* the global batch's rows of the widest dropout input */
    const void **params; /* every parameter's storage, to tell a penalty on one */
    uint32_t n_params;
    double sent;         /* bytes sent so far */
    double comm_seconds; /* time spent in collectives so far (sending and waiting) */
    int64_t steps;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void mtr_dist_rows(const MtrDist *d, int64_t n, int64_t *lo, int64_t *hi)
{
    if (!d || d->size <= 1) {
        *lo = 0, *hi = n;
        return;
    }
    *lo = n * d->rank / d->size;
    *hi = n * (d->rank + 1) / d->size;
}

static void gather(DistStep *st, const void *mine, size_t n, void *all)
{
    double t0 = now();
    st->d->allgather(st->d->ctx, mine, n, all);
    st->comm_seconds += now() - t0;
    st->sent += (double)n * (st->d->size - 1);
}

/* Gathers st->bytes[r] bytes from each rank r. */
static void gatherv(DistStep *st, const void *mine, void *all)
{
    double t0 = now();
    st->d->allgatherv(st->d->ctx, mine, st->bytes, all);
    st->comm_seconds += now() - t0;
    st->sent += (double)st->bytes[st->d->rank] * (st->d->size - 1);
}

/* Gathers each rank's rows of a (B, width) tensor of `elem`-byte elements. */
static void gather_rows(DistStep *st, const void *mine, int64_t width, size_t elem, void *all)
{
    const MtrDist *d = st->d;
    for (int r = 0; r < d->size; r++) {
        MtrDist one = *d;
        one.rank = r;
        int64_t lo, hi;
        mtr_dist_rows(&one, st->global, &lo, &hi);
        st->bytes[r] = (size_t)((hi - lo) * width) * elem;
    }
    gatherv(st, mine, all);
}

/* The global sum of an int64 over the ranks. */
static int64_t sum_i64(DistStep *st, int64_t mine)
{
    gather(st, &mine, sizeof mine, st->counts);
    int64_t t = 0;
    for (int r = 0; r < st->d->size; r++) t += st->counts[r];
    return t;
}

/* A mean loss (or its gradient) over the global batch's labelled rows: the
 * kernel runs on this rank's rows dividing by the global count, so each row's
 * gradient has the single process's bits. (Dividing by this rank's count and
 * rescaling rounded every row twice; summed over a bias's rows, where the sum
 * cancels to a small total, that moved the parameter by 1e-5 in 10 steps.) */
static void global_mean(DistStep *st, KernelFn fn, const KernelCall *call)
{
    const float *label = call->in[1];
    int64_t n = call->in_shape[1].rows * call->in_shape[1].cols, mine = 0;
    for (int64_t i = 0; i < n; i++) mine += !isnan(label[i]);
    KernelCall g = *call;
    g.mean_rows = sum_i64(st, mine);
    fn(&g);
}

/* The split softmax's room for xent_run (its tiles, H's parts, C's panels), in
 * rows of the global batch. */
#define XENT_TILE_ROWS 64

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* Groups rows 0..n-1 of x (n, w) by id as the distinct-id kernel does
 * (xent_distinct_rows), or with id NULL each row its own group: group[row],
 * each group's count and first row. Returns the number of groups. keys is
 * scratch of n entries. */
static int64_t group_rows(const float *x, const int32_t *id, int64_t n, int64_t w, uint64_t *keys,
                          int32_t *group, float *count, float *xd)
{
    if (id) {
        int32_t *order = (int32_t *)keys; /* n int32 each, in the n uint64 */
        return xent_distinct_rows(x, id, n, w, group, count, xd, order, order + n);
    }
    for (int64_t i = 0; i < n; i++) group[i] = (int32_t)i, count[i] = 1.0f;
    memcpy(xd, x, (size_t)(n * w) * sizeof *xd);
    return n;
}

/* The in-batch softmax of the global batch, split by query rows: every rank
 * gathers all B candidates (and their ids), scores its own query rows against
 * them on distinct ids (the kernel's regrouping, exact up to rounding):
 *   loss_r = sum_a nq_a lse_a - sum_{i in r} q_i.c_i,  dq_i = (P (nc C))_a(i) - c_i,
 *   dc_j  += (P^T (nq Q))_m(j) - [j in r] q_j
 * and the candidates' partial gradients go to the ranks that own their rows,
 * which sum them in rank order. The ranks' losses sum to the global loss. */
static void split_xent(DistStep *st, const KernelCall *call, int with_ids)
{
    const MtrDist *d = st->d;
    int64_t w = call->in_shape[0].cols, b = st->global, lo = st->lo, nl = st->hi - st->lo;
    const float *q = call->in[0];
    gather_rows(st, call->in[1], w, sizeof(float), st->c);
    if (with_ids) gather_rows(st, call->in[3], 1, sizeof(int32_t), st->cid);
    int64_t nq =
        group_rows(q, with_ids ? call->in[2] : NULL, nl, w, st->keys, st->qa, st->qn, st->qd);
    int64_t nc =
        group_rows(st->c, with_ids ? st->cid : NULL, b, w, st->keys, st->ca, st->cn, st->cd);
    xent_weigh(st->qd, st->qn, nq, w, st->qw);
    xent_weigh(st->cd, st->cn, nc, w, st->cw);
    /* the kernels' fused softmax (kernels/xent.h) on this rank's distinct rows */
    XentJob job = {.qd = st->qd,
                   .cd = st->cd,
                   .qw = st->qw,
                   .cw = st->cw,
                   .qn = st->qn,
                   .cn = st->cn,
                   .nq = nq,
                   .nc = nc,
                   .d = w,
                   .g = st->g,
                   .h = st->h};
    double total = nc > 0 ? xent_run(&job, st->tile, XENT_TILE_ROWS * b) : 0.0;
    float *dq = call->out[1], *dc = call->out[2];
    for (int64_t i = 0; i < nl; i++) {
        const float *qi = q + i * w, *ci = st->c + (lo + i) * w, *gi = st->g + st->qa[i] * w;
        double dot = 0.0;
        for (int64_t k = 0; k < w; k++) {
            dot += (double)qi[k] * ci[k];
            dq[i * w + k] = gi[k] - ci[k];
        }
        total -= dot;
    }
    for (int64_t j = 0; j < b; j++) {
        const float *hj = st->h + st->ca[j] * w;
        for (int64_t k = 0; k < w; k++)
            st->dcp[j * w + k] = hj[k] - (j >= lo && j < lo + nl ? q[(j - lo) * w + k] : 0.0f);
    }
    for (int r = 0; r < d->size; r++) {
        MtrDist one = *d;
        one.rank = r;
        int64_t rlo, rhi;
        mtr_dist_rows(&one, b, &rlo, &rhi);
        st->bytes[r] = (size_t)((rhi - rlo) * w) * sizeof(float);
        st->rbytes[r] = (size_t)(nl * w) * sizeof(float);
        if (r != d->rank) st->sent += (double)st->bytes[r];
    }
    double t0 = now();
    d->alltoallv(d->ctx, st->dcp, st->bytes, st->recv, st->rbytes);
    st->comm_seconds += now() - t0;
    for (int64_t e = 0; e < nl * w; e++) {
        float v = st->recv[e];
        for (int r = 1; r < d->size; r++) v += st->recv[(int64_t)r * nl * w + e];
        dc[e] = v;
    }
    *(float *)call->out[0] = (float)total;
}

/* The softmax with options (op 92) or mixed negatives (op 93) runs whole on
 * every rank, as one process runs it: each rank gathers the global batch's
 * queries, candidates, keys and logq (B rows, small), runs the kernel over them
 * (the same bits as one process) and keeps its own rows of dq and dc. The loss
 * and the negatives' gradient, the same on every rank, count on rank 0 only,
 * since the ranks' partial losses and gradients are summed afterwards. The
 * negatives are the same on every rank: drawn from the global counts with the
 * step's seed. */
static void whole_xent(DistStep *st, KernelFn fn, const KernelCall *call, int mixed)
{
    int64_t w = call->in_shape[0].cols, b = st->global, lo = st->lo, nl = st->hi - st->lo;
    int work = mixed ? 4 : 3;
    gather_rows(st, call->in[0], w, sizeof(float), st->wq);
    gather_rows(st, call->in[1], w, sizeof(float), st->wc);
    gather_rows(st, call->in[2], 1, sizeof(int32_t), st->wkey);
    gather_rows(st, call->in[3], 1, sizeof(float), st->wlogq);
    KernelCall g = *call;
    g.in[0] = st->wq, g.in[1] = st->wc, g.in[2] = st->wkey, g.in[3] = st->wlogq;
    for (int k = 0; k < 4; k++) g.in_shape[k].rows = b;
    g.out[1] = st->wdq, g.out[2] = st->wdc, g.out[work] = st->wwork;
    g.out_shape[1].rows = g.out_shape[2].rows = b;
    g.out_shape[work].cols = b;
    fn(&g);
    memcpy(call->out[1], st->wdq + lo * w, (size_t)(nl * w) * sizeof(float));
    memcpy(call->out[2], st->wdc + lo * w, (size_t)(nl * w) * sizeof(float));
    if (st->d->rank == 0) return;
    *(float *)call->out[0] = 0.0f;
    if (mixed) memset(call->out[3], 0, (size_t)kern_numel(call->out_shape[3]) * sizeof(float));
}

/* Dropout draws its mask by element index over the global batch: this rank's
 * rows (of each leading block, e.g. each expert) go where they sit in the
 * global tensor, the kernel runs over all of it, and they come back. */
static void global_dropout(DistStep *st, KernelFn fn, const KernelCall *call)
{
    int64_t nl = st->hi - st->lo, rows = call->in_shape[0].rows, c = call->in_shape[0].cols;
    if (nl <= 0 || rows % nl) { /* no batch axis: every rank draws the same */
        fn(call);
        return;
    }
    int64_t e = rows / nl, b = st->global;
    size_t block = (size_t)(nl * c) * sizeof(float);
    const float *x = call->in[0];
    float *y = call->out[0];
    for (int64_t k = 0; k < e; k++) memcpy(st->drop + (k * b + st->lo) * c, x + k * nl * c, block);
    KernelCall g = *call;
    g.in[0] = g.out[0] = st->drop;
    g.in_shape[0].rows = g.out_shape[0].rows = e * b;
    fn(&g);
    for (int64_t k = 0; k < e; k++) memcpy(y + k * nl * c, st->drop + (k * b + st->lo) * c, block);
}

static int is_param(const DistStep *st, const void *p)
{
    for (uint32_t i = 0; i < st->n_params; i++)
        if (st->params[i] == p) return 1;
    return 0;
}

/* Terms that do not come from the batch's rows (an L2 penalty on a parameter,
 * the + s of a learned loss weight) count on rank 0 only, so that the ranks'
 * partial losses and gradients sum to the global batch's. */
static void rank0_terms(DistStep *st, OpKind kind, KernelFn fn, const KernelCall *call)
{
    fn(call);
    if (st->d->rank == 0) return;
    float *out = call->out[0];
    switch (kind) {
    case OP_SUM_SQUARES:      /* (x) -> () */
    case OP_SUM_SQUARES_GRAD: /* (x, dy) -> dx */
        if (is_param(st, call->in[0]))
            memset(out, 0, (size_t)kern_numel(call->out_shape[0]) * sizeof *out);
        return;
    case OP_UNCERTAINTY: /* (loss, s) -> exp(-s) loss + s */
        out[0] -= *(const float *)call->in[1];
        return;
    case OP_UNCERTAINTY_GRAD: /* (dy, loss, s) -> dloss, ds = (1 - exp(-s) loss) dy */
        *(float *)call->out[1] -= *(const float *)call->in[0];
        return;
    default:
        return;
    }
}

/* The op hook: batch-wide ops take the global batch's meaning; every other op
 * of the gradient half works row by row or sums over rows (partial sums that
 * the ranks add up afterwards), so its kernel runs as it is. */
static void hook(void *ctx, OpKind kind, KernelFn fn, const KernelCall *call)
{
    DistStep *st = ctx;
    switch (kind) {
    case OP_MSE:
    case OP_MSE_GRAD:
    case OP_BCE_LOGITS:
    case OP_BCE_LOGITS_GRAD:
    case OP_BCE_PROB:
    case OP_BCE_PROB_GRAD:
        global_mean(st, fn, call);
        return;
    case OP_INBATCH_SOFTMAX_XENT_QC:
        (void)fn;
        split_xent(st, call, 0);
        return;
    case OP_INBATCH_SOFTMAX_XENT_IDS:
        (void)fn;
        split_xent(st, call, 1);
        return;
    case OP_INBATCH_SOFTMAX_XENT_OPT:
        whole_xent(st, fn, call, 0);
        return;
    case OP_INBATCH_SOFTMAX_XENT_MIXED:
        whole_xent(st, fn, call, 1);
        return;
    case OP_DROPOUT:
    case OP_DROPOUT_GRAD:
        global_dropout(st, fn, call);
        return;
    case OP_SUM_SQUARES:
    case OP_SUM_SQUARES_GRAD:
    case OP_UNCERTAINTY:
    case OP_UNCERTAINTY_GRAD:
        rank0_terms(st, kind, fn, call);
        return;
    default:
        fn(call);
        return;
    }
}

/* Why op `kind` of the gradient half has no data-parallel meaning yet, or NULL. */
static const char *unsupported(const MtrOp *op)
{
    switch (op->kind) {
    case OP_INBATCH_SOFTMAX_XENT:
        return "the in-batch softmax over a (B,B) score matrix (a model compiled with -O0)";
    default:
        return NULL;
    }
}

void mtr_dist_step_free(DistStep *st)
{
    if (!st) return;
    free(st->dense), free(st->pack), free(st->pack_all), free(st->sparse);
    free(st->ids_all), free(st->rows_all), free(st->keys), free(st->counts), free(st->bytes);
    free(st->c), free(st->qd), free(st->qn), free(st->qw), free(st->cd), free(st->cn);
    free(st->cw), free(st->g), free(st->h), free(st->dcp), free(st->recv), free(st->tile);
    free(st->cid), free(st->qa), free(st->ca), free(st->rbytes), free(st->drop), free(st->params);
    free(st->wq), free(st->wc), free(st->wkey), free(st->wlogq), free(st->wdq), free(st->wdc);
    free(st->wwork);
    free(st);
}

static void *alloc_n(int64_t n, size_t elem)
{
    return calloc((size_t)(n > 0 ? n : 1), elem);
}

MtrStatus mtr_dist_step_new(const MtrDist *d, const MtrModel *m, MtrSession *s, int p_train,
                            int64_t batch, DistStep **out, MtrError *err)
{
    *out = NULL;
    DistStep *st = calloc(1, sizeof *st);
    if (!st) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    st->d = d, st->m = m, st->s = s, st->p = p_train, st->batch = batch;
    const MtrProgram *prog = &m->programs[p_train];
    for (uint32_t i = 0; i < prog->update_at; i++) {
        const char *why = unsupported(&prog->ops[i]);
        if (why) {
            mtr_dist_step_free(st);
            return mtr_fail(err, MTR_E_ARG,
                            "train_step op %u (%s): %s cannot yet be trained on %d ranks; run "
                            "it as one process",
                            i, op_info(prog->ops[i].kind)->name, why, d->size);
        }
    }
    st->dense = alloc_n(prog->n_outputs, sizeof *st->dense);
    st->sparse = alloc_n(prog->n_outputs, sizeof *st->sparse);
    st->counts = alloc_n(d->size, sizeof *st->counts);
    st->bytes = alloc_n(d->size, sizeof *st->bytes);
    if (!st->dense || !st->sparse || !st->counts || !st->bytes) goto nomem;
    int64_t widest = 1, xw = 0;
    for (uint32_t g = 0; g < prog->n_outputs; g++) {
        const MtrOutput *o = &prog->outputs[g];
        switch ((MtrOutputRole)o->role) {
        case MTR_OUT_GRADIENT:
        case MTR_OUT_LOSS:
        case MTR_OUT_TASK_LOSS:
            st->dense[st->n_dense++] = o->tensor;
            st->dense_floats += mtr_session_tensor_elems(s, o->tensor, batch);
            break;
        case MTR_OUT_GRADIENT_ROWS:
            for (uint32_t h = 0; h < prog->n_outputs; h++)
                if (prog->outputs[h].role == MTR_OUT_GRADIENT_IDS &&
                    prog->outputs[h].param == o->param) {
                    Sparse *sp = &st->sparse[st->n_sparse++];
                    sp->rows = o->tensor, sp->ids = prog->outputs[h].tensor;
                    sp->d = mtr_session_tensor_elems(s, o->tensor, 1);
                    widest = sp->d > widest ? sp->d : widest;
                }
            break;
        default:
            break;
        }
    }
    int64_t whole_w = 0, whole_work = 0; /* widest op 92/93, and its largest workspace */
    for (uint32_t i = 0; i < prog->update_at; i++) {
        const MtrOp *op = &prog->ops[i];
        int whole =
            op->kind == OP_INBATCH_SOFTMAX_XENT_OPT || op->kind == OP_INBATCH_SOFTMAX_XENT_MIXED;
        if (op->kind != OP_INBATCH_SOFTMAX_XENT_QC && op->kind != OP_INBATCH_SOFTMAX_XENT_IDS &&
            !whole)
            continue;
        int64_t w = mtr_session_tensor_elems(s, op->in[0], 1);
        if (!whole) {
            xw = w > xw ? w : xw;
            continue;
        }
        int32_t work = op->out[op->kind == OP_INBATCH_SOFTMAX_XENT_MIXED ? 4 : 3];
        int64_t n = mtr_session_tensor_elems(s, work, batch);
        whole_w = w > whole_w ? w : whole_w;
        whole_work = n > whole_work ? n : whole_work;
    }
    int64_t drop = 0;
    for (uint32_t i = 0; i < prog->update_at; i++) {
        const MtrOp *op = &prog->ops[i];
        if (op->kind != OP_DROPOUT && op->kind != OP_DROPOUT_GRAD) continue;
        int64_t n = mtr_session_tensor_elems(s, op->in[0], batch);
        drop = n > drop ? n : drop;
    }
    st->params = alloc_n(m->n_tensors, sizeof *st->params);
    st->drop = drop ? alloc_n(drop, sizeof *st->drop) : NULL;
    if (!st->params || (drop && !st->drop)) goto nomem;
    for (uint32_t t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].role == MTR_ROLE_PARAM)
            st->params[st->n_params++] = mtr_session_tensor(s, (int32_t)t);
    st->pack = alloc_n(st->dense_floats, sizeof *st->pack);
    st->pack_all = alloc_n(st->dense_floats * d->size, sizeof *st->pack_all);
    st->ids_all = alloc_n(batch * d->size, sizeof *st->ids_all);
    st->rows_all = alloc_n(batch * d->size * widest, sizeof *st->rows_all);
    st->keys = alloc_n(batch * d->size, sizeof *st->keys);
    if (!st->pack || !st->pack_all || !st->ids_all || !st->rows_all || !st->keys) goto nomem;
    if (xw > 0) {
        int64_t bw = batch * xw, share = batch / d->size + 1;
        st->c = alloc_n(bw, sizeof(float)), st->qd = alloc_n(bw, sizeof(float));
        st->qw = alloc_n(bw, sizeof(float)), st->cd = alloc_n(bw, sizeof(float));
        st->cw = alloc_n(bw, sizeof(float)), st->g = alloc_n(bw, sizeof(float));
        st->h = alloc_n(bw, sizeof(float)), st->dcp = alloc_n(bw, sizeof(float));
        st->qn = alloc_n(batch, sizeof(float)), st->cn = alloc_n(batch, sizeof(float));
        st->cid = alloc_n(batch, sizeof(int32_t)), st->qa = alloc_n(batch, sizeof(int32_t));
        st->ca = alloc_n(batch, sizeof(int32_t)), st->rbytes = alloc_n(d->size, sizeof(size_t));
        st->recv = alloc_n(share * xw * d->size, sizeof(float));
        st->tile = alloc_n(XENT_TILE_ROWS * batch, sizeof(float));
        if (!st->c || !st->qd || !st->qw || !st->cd || !st->cw || !st->g || !st->h || !st->dcp ||
            !st->qn || !st->cn || !st->cid || !st->qa || !st->ca || !st->rbytes || !st->recv ||
            !st->tile)
            goto nomem;
    }
    if (whole_w > 0) {
        st->wq = alloc_n(batch * whole_w, sizeof(float));
        st->wc = alloc_n(batch * whole_w, sizeof(float));
        st->wkey = alloc_n(batch, sizeof(int32_t));
        st->wdq = alloc_n(batch * whole_w, sizeof(float));
        st->wdc = alloc_n(batch * whole_w, sizeof(float));
        st->wlogq = alloc_n(batch, sizeof(float));
        st->wwork = alloc_n(whole_work, sizeof(float));
        if (!st->wq || !st->wc || !st->wkey || !st->wdq || !st->wdc || !st->wlogq || !st->wwork)
            goto nomem;
    }
    *out = st;
    return MTR_OK;
nomem:
    mtr_dist_step_free(st);
    return mtr_fail(err, MTR_E_NOMEM, "out of memory preparing the data-parallel step");
}

/* Dense gradients and losses: packed, gathered, summed in rank order, unpacked. */
static void sum_dense(DistStep *st)
{
    int64_t at = 0;
    for (uint32_t i = 0; i < st->n_dense; i++) {
        int64_t n = mtr_session_tensor_elems(st->s, st->dense[i], st->global);
        memcpy(st->pack + at, mtr_session_tensor(st->s, st->dense[i]), (size_t)n * sizeof(float));
        at += n;
    }
    gather(st, st->pack, (size_t)at * sizeof(float), st->pack_all);
    for (int64_t k = 0; k < at; k++) {
        float v = st->pack_all[k];
        for (int r = 1; r < st->d->size; r++) v += st->pack_all[(int64_t)r * at + k];
        st->pack[k] = v;
    }
    at = 0;
    for (uint32_t i = 0; i < st->n_dense; i++) {
        int64_t n = mtr_session_tensor_elems(st->s, st->dense[i], st->global);
        memcpy(mtr_session_tensor(st->s, st->dense[i]), st->pack + at, (size_t)n * sizeof(float));
        at += n;
    }
}

/* An embedding table's sparse gradient: every rank's distinct ids and their
 * rows, merged into the sorted union, rows of one id summed in rank order. */
static void sum_sparse(DistStep *st, const Sparse *sp)
{
    int32_t *ids = mtr_session_tensor(st->s, sp->ids);
    float *rows = mtr_session_tensor(st->s, sp->rows);
    int64_t mine = 0, n_local = st->hi - st->lo;
    while (mine < n_local && ids[mine] >= 0) mine++;
    gather(st, &mine, sizeof mine, st->counts);
    int64_t total = 0;
    for (int r = 0; r < st->d->size; r++) {
        st->bytes[r] = (size_t)st->counts[r] * sizeof(int32_t);
        total += st->counts[r];
    }
    gatherv(st, ids, st->ids_all);
    for (int r = 0; r < st->d->size; r++) st->bytes[r] *= (size_t)sp->d;
    gatherv(st, rows, st->rows_all);
    for (int64_t k = 0; k < total; k++)
        st->keys[k] = (uint64_t)(uint32_t)st->ids_all[k] << 32 | (uint64_t)k;
    qsort(st->keys, (size_t)total, sizeof *st->keys, cmp_u64);
    int64_t n = 0;
    for (int64_t k = 0; k < total; k++) {
        int32_t id = (int32_t)(st->keys[k] >> 32);
        const float *src = st->rows_all + (int64_t)(st->keys[k] & 0xffffffffu) * sp->d;
        if (n > 0 && ids[n - 1] == id) {
            for (int64_t j = 0; j < sp->d; j++) rows[(n - 1) * sp->d + j] += src[j];
        } else {
            ids[n] = id;
            memcpy(rows + n * sp->d, src, (size_t)sp->d * sizeof *rows);
            n++;
        }
    }
    for (int64_t k = n; k < st->global; k++) ids[k] = -1;
    memset(rows + n * sp->d, 0, (size_t)((st->global - n) * sp->d) * sizeof *rows);
}

void mtr_dist_step_gradients(DistStep *st, int64_t global)
{
    st->global = global;
    mtr_dist_rows(st->d, global, &st->lo, &st->hi);
    mtr_session_set_hook(st->s, hook, st);
    mtr_session_run_gradients(st->s, st->p, st->hi - st->lo);
    mtr_session_set_hook(st->s, NULL, NULL);
    sum_dense(st);
    for (uint32_t i = 0; i < st->n_sparse; i++) sum_sparse(st, &st->sparse[i]);
}

void mtr_dist_step_updates(DistStep *st, int64_t global)
{
    mtr_session_run_updates(st->s, st->p, global);
    st->steps++;
}

void mtr_dist_step_run(DistStep *st, int64_t global)
{
    mtr_dist_step_gradients(st, global);
    mtr_dist_step_updates(st, global);
}

double mtr_dist_step_bytes(const DistStep *st)
{
    return st && st->steps ? st->sent / (double)st->steps : 0.0;
}

double mtr_dist_step_comm_seconds(const DistStep *st)
{
    return st ? st->comm_seconds : 0.0;
}

/* The counts of one task's accumulators, as doubles (exact for counts below
 * 2^53), in a fixed order; with out NULL only their number. */
static int64_t metrics_pack(const MetricsTask *t, double *out)
{
    double v[4 + 1 + MTR_MAX_KS + 2];
    int64_t n = 0;
    v[n++] = (double)t->reg.rows, v[n++] = t->reg.sum_sq, v[n++] = t->reg.sum_abs;
    v[n++] = t->reg.sum_log, v[n++] = (double)t->topk.rows;
    for (uint32_t k = 0; k < MTR_MAX_KS; k++) v[n++] = (double)t->topk.hits[k];
    v[n++] = (double)t->auc.rows, v[n++] = (double)t->auc.n_nan;
    if (out) memcpy(out, v, (size_t)n * sizeof *v);
    return n;
}

static void metrics_unpack(MetricsTask *t, const double *v)
{
    int64_t n = 0;
    t->reg.rows = (int64_t)v[n++], t->reg.sum_sq = v[n++], t->reg.sum_abs = v[n++];
    t->reg.sum_log = v[n++], t->topk.rows = (int64_t)v[n++];
    for (uint32_t k = 0; k < MTR_MAX_KS; k++) t->topk.hits[k] = (int64_t)v[n++];
    n++; /* the AUC's rows come with its pairs */
    t->auc.n_nan = (int64_t)v[n++];
}

MtrStatus mtr_dist_metrics_sum(const MtrDist *d, Metrics *ms, MtrError *err)
{
    if (!d || d->size <= 1 || ms->n_tasks == 0) return MTR_OK;
    MetricsTask probe = {0};
    int64_t per = metrics_pack(&probe, NULL), n = per * ms->n_tasks;
    double *mine = malloc((size_t)n * sizeof *mine);
    double *all = malloc((size_t)(n * d->size) * sizeof *all);
    size_t *bytes = malloc((size_t)d->size * sizeof *bytes);
    MtrStatus rc = MTR_OK;
    if (!mine || !all || !bytes) {
        rc = mtr_fail(err, MTR_E_NOMEM, "out of memory summing the ranks' metrics");
        goto done;
    }
    for (uint32_t t = 0; t < ms->n_tasks; t++) metrics_pack(&ms->tasks[t], mine + t * per);
    d->allgather(d->ctx, mine, (size_t)n * sizeof *mine, all);
    for (int64_t k = 0; k < n; k++) {
        double v = all[k];
        for (int r = 1; r < d->size; r++) v += all[(int64_t)r * n + k];
        mine[k] = v;
    }
    for (uint32_t t = 0; t < ms->n_tasks; t++) {
        MetricsTask *mt = &ms->tasks[t];
        metrics_unpack(mt, mine + t * per);
        if (!mt->auc.pairs) continue;
        int64_t total = 0;
        for (int r = 0; r < d->size; r++) {
            int64_t rows = (int64_t)all[(int64_t)r * n + t * per + per - 2];
            bytes[r] = (size_t)rows * sizeof *mt->auc.pairs;
            total += rows;
        }
        if (total > mt->auc.capacity) {
            rc = mtr_fail(err, MTR_E_ARG, "the ranks' %lld AUC rows exceed the %lld room",
                          (long long)total, (long long)mt->auc.capacity);
            goto done;
        }
        /* each rank's own pairs move aside, then every rank's arrive in rank order */
        MetricsScored *own = malloc(bytes[d->rank] ? bytes[d->rank] : 1);
        if (!own) {
            rc = mtr_fail(err, MTR_E_NOMEM, "out of memory summing the ranks' metrics");
            goto done;
        }
        memcpy(own, mt->auc.pairs, bytes[d->rank]);
        d->allgatherv(d->ctx, own, bytes, mt->auc.pairs);
        free(own);
        mt->auc.rows = total;
    }
done:
    free(mine), free(all), free(bytes);
    return rc;
}
