/* Loss kernels, each forward with its fused gradient: mean squared error,
 * binary cross-entropy on logits, in-batch softmax cross-entropy (the retrieval
 * loss, and the hot spot of training), and loss_weight, which scales a loss by
 * a knob read at run time. Losses are accumulated in double. */
#include "kernels/tiles.h"
#include "kernels/xent.h"

#include "mtr/pool.h"

#include <cblas.h>

/* mse(pred, label) -> mean_i (pred_i - label_i)^2.
 * Gradient: mse_grad(pred, label, dloss) = 2 (pred - label) / B * dloss. */
/* The rows whose label is present: a missing label is NaN, and its row is
 * left out of the loss and its gradient (the mean is over the others); or
 * the count the call gives (call->mean_rows). */
static int64_t labelled(const KernelCall *call, const float *label, int64_t b)
{
    if (call->mean_rows > 0) return call->mean_rows;
    int64_t n = 0;
    for (int64_t i = 0; i < b; i++) n += !isnan(label[i]);
    return n;
}

void kernel_mse(const KernelCall *call)
{
    const float *pred = call->in[0];  /* (B,1) */
    const float *label = call->in[1]; /* (B) */
    float *loss = call->out[0];       /* () */
    int64_t b = call->in_shape[0].rows;
    double acc = 0.0;
    for (int64_t i = 0; i < b; i++) {
        if (isnan(label[i])) continue;
        double d = (double)pred[i] - label[i];
        acc += d * d;
    }
    int64_t n = labelled(call, label, b);
    *loss = n > 0 ? (float)(acc / (double)n) : 0.0f;
}

void kernel_mse_grad(const KernelCall *call)
{
    const float *pred = call->in[0];           /* (B,1) */
    const float *label = call->in[1];          /* (B) */
    float dloss = *(const float *)call->in[2]; /* () */
    float *dpred = call->out[0];               /* (B,1) */
    int64_t b = call->in_shape[0].rows, n = labelled(call, label, b);
    float k = n > 0 ? (float)(2.0 * dloss / (double)n) : 0.0f;
    for (int64_t i = 0; i < b; i++) dpred[i] = isnan(label[i]) ? 0.0f : k * (pred[i] - label[i]);
}

/* bce_logits(logit, label) -> mean_i [max(x,0) - x y + log(1 + e^-|x|)], the
 * stable form of -y log sigmoid(x) - (1-y) log(1 - sigmoid(x)).
 * Gradient: bce_logits_grad(logit, label, dloss) = (sigmoid(x) - y) / B * dloss. */
void kernel_bce_logits(const KernelCall *call)
{
    const float *logit = call->in[0]; /* (B,1) */
    const float *label = call->in[1]; /* (B) */
    float *loss = call->out[0];       /* () */
    int64_t b = call->in_shape[0].rows;
    double acc = 0.0;
    for (int64_t i = 0; i < b; i++) {
        if (isnan(label[i])) continue;
        double x = logit[i], y = label[i];
        acc += (x > 0.0 ? x : 0.0) - x * y + log1p(exp(-fabs(x)));
    }
    int64_t n = labelled(call, label, b);
    *loss = n > 0 ? (float)(acc / (double)n) : 0.0f;
}

void kernel_bce_logits_grad(const KernelCall *call)
{
    const float *logit = call->in[0];          /* (B,1) */
    const float *label = call->in[1];          /* (B) */
    float dloss = *(const float *)call->in[2]; /* () */
    float *dlogit = call->out[0];              /* (B,1) */
    int64_t b = call->in_shape[0].rows, n = labelled(call, label, b);
    float k = n > 0 ? (float)((double)dloss / (double)n) : 0.0f;
    for (int64_t i = 0; i < b; i++) {
        float x = logit[i];
        float z = kern_expf(-fabsf(x));
        float sig = (x >= 0.0f ? 1.0f : z) / (1.0f + z);
        dlogit[i] = isnan(label[i]) ? 0.0f : (sig - label[i]) * k;
    }
}

/* A probability kept inside [1e-7, 1 - 1e-7], where its logs are finite. */
#define PROB_LO 1e-7

/* bce_prob(p, label) -> mean over the labelled rows of -(y log p + (1 - y) log(1 - p)) */
void kernel_bce_prob(const KernelCall *call)
{
    const float *p = call->in[0];     /* (B,1) probabilities */
    const float *label = call->in[1]; /* (B) */
    float *loss = call->out[0];       /* () */
    int64_t b = call->in_shape[0].rows;
    double acc = 0.0;
    for (int64_t i = 0; i < b; i++) {
        if (isnan(label[i])) continue;
        double q = p[i] < PROB_LO ? PROB_LO : p[i] > 1 - PROB_LO ? 1 - PROB_LO : (double)p[i];
        acc -= label[i] * log(q) + (1.0 - label[i]) * log(1.0 - q);
    }
    int64_t n = labelled(call, label, b);
    *loss = n > 0 ? (float)(acc / (double)n) : 0.0f;
}

/* bce_prob_grad(p, label, dloss) -> dp = (p - y) / (p (1 - p)) / n * dloss, 0 where p is
 * clamped (the loss is flat there) or the label is missing */
void kernel_bce_prob_grad(const KernelCall *call)
{
    const float *p = call->in[0], *label = call->in[1];
    float dloss = *(const float *)call->in[2];
    float *dp = call->out[0];
    int64_t b = call->in_shape[0].rows, n = labelled(call, label, b);
    double k = n > 0 ? (double)dloss / (double)n : 0.0;
    for (int64_t i = 0; i < b; i++) {
        double q = p[i];
        dp[i] = isnan(label[i]) || q < PROB_LO || q > 1 - PROB_LO
                    ? 0.0f
                    : (float)((q - label[i]) / (q * (1.0 - q)) * k);
    }
}

/* Independent accumulators per reduction, so that a row sum vectorises
 * without reassociating float sums (gcc will not do that by itself). */
#define XENT_LANES 8

/* inbatch_softmax_xent(s) -> loss = sum_i [logsumexp(s_i) - s_ii] (row i's true
 * item is column i) and dunit = softmax(s) - I, the gradient of the loss for
 * dloss = 1 (the backward scales it by dloss). Row by row: the max, the diagonal
 * and the exps are taken before the row is overwritten, so dunit may be s. */
void kernel_inbatch_softmax_xent(const KernelCall *call)
{
    const float *s = call->in[0]; /* (B,B) */
    float *loss = call->out[0];   /* () */
    float *dunit = call->out[1];  /* (B,B), may be s */
    int64_t b = call->in_shape[0].rows, n = call->in_shape[0].cols;
    double total = 0.0;
    for (int64_t i = 0; i < b; i++) {
        const float *row = s + i * n;
        float *out = dunit + i * n;
        float diag = row[i];
        float m = kern_row_max(row, n);
        double sum = kern_row_exp_sum(row, out, n, m);
        total += (double)m + log(sum) - (double)diag;
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++) out[j] *= inv;
        out[i] -= 1.0f;
    }
    *loss = (float)total;
}

/* loss_weight(x) -> knob[iattr0] * x. Gradient: dx = knob[iattr0] * dy. */
void kernel_loss_weight(const KernelCall *call)
{
    const float *x = call->in[0]; /* () (any shape is accepted) */
    float *y = call->out[0];      /* x's shape */
    float w = (float)call->knobs[call->iattr[0]];
    int64_t n = kern_numel(call->in_shape[0]);
    for (int64_t i = 0; i < n; i++) y[i] = w * x[i];
}

/* The fused in-batch softmax, shared by both fused forms. Rows Q (nq,D) score
 * columns C (nc,D); column j weighs cn_j (1 when cn is NULL), row a weighs qn_a.
 * With Z_a = sum_j cn_j e^(Q_a . C_j) and E_aj = e^(Q_a . C_j) / Z_a:
 *   lse = sum_a qn_a log Z_a,  G = E (cn C) = E cw,  H = E^T (qn Q) = E^T qw.
 * The scores are made a block of rows at a time by sgemm into a tile that
 * stays in cache (XENT_TILE_FLOATS), exponentiated in place (kern_expf, with
 * each row's max taken first), and multiplied back by two more sgemm calls,
 * G's rows written and H accumulated; so the cost is the three products plus
 * one exp per score, and no (nq,nc) matrix exists. Where the CPU has AVX-512
 * and D is a multiple of 32, the three products are tiles.h's and the softmax
 * xent_avx512.c's instead, reading C from panels made once per call (a
 * third less time at D = 32: sgemm repacked C for every tile); there, unless
 * a hook must see E, the tile keeps e^(s - max) and 1/Z_a scales G's row a
 * and qw's row a for H instead (scale_late: one pass over the tile less),
 * and each row's max comes out of the score product (tiles_abt_max) unless a
 * shift follows it: another pass less. The rows are split into parts run on
 * the thread pool: each part has its own tile and (after the
 * first) its own H, summed in part order afterwards, so the result depends on
 * the number of parts only. */
#define XENT_TILE_FLOATS (256 * 1024) /* 1 MiB of scores: a core's L2 here (Zen 4) */

/* Weighted sum of p[0..n) (w NULL: unweighted) in double, in XENT_LANES lanes.
 * Inlined into softmax_row, so that each of its clones sums on its own vectors. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline double
lane_sum(const float *p, const float *w, int64_t n)
{
    double acc[XENT_LANES] = {0.0};
    int64_t j = 0;
    if (w) {
        for (; j + XENT_LANES <= n; j += XENT_LANES)
            for (int l = 0; l < XENT_LANES; l++) acc[l] += (double)(w[j + l] * p[j + l]);
        for (; j < n; j++) acc[0] += (double)(w[j] * p[j]);
    } else {
        for (; j + XENT_LANES <= n; j += XENT_LANES)
            for (int l = 0; l < XENT_LANES; l++) acc[l] += p[j + l];
        for (; j < n; j++) acc[0] += p[j];
    }
    double sum = 0.0;
    for (int l = 0; l < XENT_LANES; l++) sum += acc[l];
    return sum;
}

/* One row of scores becomes its softmax, e^(s_j - lse) with lse = log sum_j
 * cn_j e^(s_j); returns lse. Compiled for AVX-512 and AVX2 as well as the
 * baseline, chosen at load time: the same IEEE operations on wider vectors
 * (no FMA is enabled, so nothing is contracted), hence the same bits. */
KERN_CLONES static double softmax_row(float *row, int64_t nc, const float *cn)
{
    float m = kern_row_max(row, nc);
    for (int64_t j = 0; j < nc; j++) row[j] = kern_expf(row[j] - m);
    double z = lane_sum(row, cn, nc);
    float inv = (float)(1.0 / z);
    for (int64_t j = 0; j < nc; j++) row[j] *= inv;
    return (double)m + log(z);
}

static void xent_part(void *ctx, int part, int parts)
{
    XentJob *job = ctx;
    int64_t lo, hi, nc = job->nc, d = job->d;
    pool_rows(job->nq, job->rows, part, parts, &lo, &hi);
    float *tile = job->space + part * job->rows * (nc + (job->scale_late ? d + 1 : 0));
    float *qs = tile + job->rows * nc, *inv_z = qs + job->rows * d; /* scale_late's */
    float *h = part == 0 ? job->h : job->hparts + (part - 1) * nc * d;
    double lse = 0.0;
    float alpha = job->alpha != 0.0f ? job->alpha : 1.0f;
    /* the rows' max comes with the scores (into inv_z's room) when nothing
     * shifts them afterwards */
    int max_known = job->scale_late && !job->shift;
    int first = 1;
    for (int64_t a0 = lo; a0 < hi; a0 += job->rows) {
        int64_t n = hi - a0 < job->rows ? hi - a0 : job->rows;
        if (max_known)
            tiles_abt_max(n, nc, d, alpha, job->qd + a0 * d, d, job->panels, tile, nc, inv_z);
        else if (job->panels)
            tiles_abt(n, nc, d, alpha, job->qd + a0 * d, d, job->panels, 0, tile, nc);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nc, (int)d, alpha,
                        job->qd + a0 * d, (int)d, job->cd, (int)d, 0.0f, tile, (int)nc);
        for (int64_t i = 0; i < n; i++) {
            float *row = tile + i * nc;
            if (job->shift)
                for (int64_t j = 0; j < nc; j++) row[j] -= job->shift[j];
            double l = job->panels
                           ? xent_fast_softmax(row, nc, job->cn, job->scale_late ? inv_z + i : NULL,
                                               max_known ? inv_z + i : NULL)
                           : softmax_row(row, nc, job->cn);
            if (job->row)
                lse += job->row(job, a0 + i, row, l);
            else
                lse += (job->qn ? (double)job->qn[a0 + i] : 1.0) * l;
        }
        float *g = job->g + a0 * d;
        const float *qw = job->qw + a0 * d;
        if (job->panels)
            tiles_ab(n, d, nc, alpha, tile, nc, job->cw, d, 0, g, d);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)nc, alpha,
                        tile, (int)nc, job->cw, (int)d, 0.0f, g, (int)d);
        if (job->scale_late) {
            for (int64_t i = 0; i < n; i++)
                for (int64_t k = 0; k < d; k++) {
                    g[i * d + k] *= inv_z[i];
                    qs[i * d + k] = inv_z[i] * qw[i * d + k];
                }
            qw = qs;
        }
        if (job->mask) job->mask(job, a0, n, tile);
        if (job->panels)
            tiles_atb(nc, d, n, alpha, tile, nc, qw, d, !first, h, d);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nc, (int)d, (int)n, alpha,
                        tile, (int)nc, qw, (int)d, first ? 0.0f : 1.0f, h, (int)d);
        first = 0;
    }
    if (first) memset(h, 0, (size_t)(nc * d) * sizeof *h);
    job->lse[part] = lse;
}

/* Runs the job on `space` (space_floats floats): chooses the parts and the
 * tile's rows that fit, runs the parts, and sums H and the lse in part order.
 * Returns sum_a qn_a log Z_a. */
double xent_run(XentJob *job, float *space, int64_t space_floats)
{
    int64_t nc = job->nc, d = job->d;
    int parts = pool_parts(job->nq * nc, 1 << 16); /* 64k scores: ~0.1 ms a part */
    if (parts > POOL_MAX_PARTS) parts = POOL_MAX_PARTS;
    int64_t rows = 0;
    /* C in panels for the AVX-512 products, when there is room for it and
     * still a tile of 8 rows (their block) */
    int64_t ct_floats = xent_fast_usable(d) ? tiles_panels_floats(nc, d) : 0;
    if (space_floats < ct_floats + 8 * (nc + d + 1)) ct_floats = 0;
    space_floats -= ct_floats;
    /* With the AVX-512 softmax and no hooks to see E, the tile keeps
     * e^(s - max) and 1/Z scales G's rows and qw's rows for H instead: a pass
     * over the tile less. Each part then also holds its rows of scaled qw and
     * of 1/Z. */
    job->scale_late = ct_floats && !job->row && !job->mask;
    int64_t row_floats = nc + (job->scale_late ? d + 1 : 0);
    for (; parts >= 1; parts--) {
        /* each part: rows * row_floats, and nc * d of H after the first */
        int64_t avail = (space_floats - (int64_t)(parts - 1) * nc * d) / parts;
        rows = avail / row_floats;
        if (rows >= 1) break;
    }
    if (parts < 1) parts = 1, rows = 1; /* the shape rule gives at least one row */
    int64_t cap = XENT_TILE_FLOATS / nc;
    rows = rows < cap ? rows : cap < 1 ? 1 : cap;
    int64_t per = (job->nq + parts - 1) / parts;
    rows = rows < per ? rows : per < 1 ? 1 : per;
    job->rows = rows;
    job->space = space;
    job->hparts = space + parts * rows * row_floats;
    job->panels = NULL;
    if (ct_floats) {
        job->panels = job->hparts + (int64_t)(parts - 1) * nc * d;
        tiles_panels_rows(job->cd, d, nc, d, job->panels);
    }
    int blas = openblas_get_num_threads();
    if (parts > 1) openblas_set_num_threads(1);
    pool_run(xent_part, job, parts);
    if (parts > 1) openblas_set_num_threads(blas);
    double lse = job->lse[0];
    for (int p = 1; p < parts; p++) {
        const float *hp = job->hparts + (p - 1) * nc * d;
        for (int64_t k = 0; k < nc * d; k++) job->h[k] += hp[k];
        lse += job->lse[p];
    }
    return lse;
}

/* inbatch_softmax_xent_qc(q, c) -> the loss of inbatch_softmax_xent(q c^T) and its
 * gradients for dloss = 1: with P = softmax(q c^T) - I, dq = P c and dc = P^T q;
 * the blocked, threaded product above with every weight 1 (work holds the tiles
 * and H's parts), then the diagonal's terms. */
void kernel_inbatch_softmax_xent_qc(const KernelCall *call)
{
    const float *q = call->in[0]; /* (B,D) */
    const float *c = call->in[1]; /* (B,D) */
    float *loss = call->out[0];   /* () */
    float *dq = call->out[1];     /* (B,D) */
    float *dc = call->out[2];     /* (B,D) */
    float *work = call->out[3];   /* (R,B) */
    int64_t b = call->in_shape[0].rows, d = call->in_shape[0].cols;
    if (b == 0 || d == 0) {
        memset(dq, 0, (size_t)(b * d) * sizeof *dq);
        memset(dc, 0, (size_t)(b * d) * sizeof *dc);
        *loss = 0.0f;
        return;
    }
    XentJob job = {.qd = q, .cd = c, .qw = q, .cw = c, .nq = b, .nc = b, .d = d, .g = dq, .h = dc};
    double total = xent_run(&job, work, kern_numel(call->out_shape[3]));
    for (int64_t i = 0; i < b; i++) {
        const float *qi = q + i * d, *ci = c + i * d;
        double dot = 0.0;
        for (int64_t k = 0; k < d; k++) dot += (double)qi[k] * ci[k];
        total -= dot;
        for (int64_t k = 0; k < d; k++) {
            dq[i * d + k] -= ci[k];
            dc[i * d + k] -= qi[k];
        }
    }
    *loss = (float)total;
}

/* Sorts rows 0..n-1 by key (int32 ids; negative ones count as 0), stably, by
 * four 8-bit passes of LSD radix; order receives the rows, tmp is scratch. */
void xent_sort_by_id(const int32_t *key, int64_t n, int32_t *order, int32_t *tmp)
{
    for (int64_t i = 0; i < n; i++) order[i] = (int32_t)i;
    for (int shift = 0; shift < 32; shift += 8) {
        int64_t count[257] = {0};
        for (int64_t i = 0; i < n; i++) {
            uint32_t k = key[i] < 0 ? 0u : (uint32_t)key[i];
            count[((k >> shift) & 0xffu) + 1]++;
        }
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        for (int64_t i = 0; i < n; i++) {
            int32_t row = order[i];
            uint32_t k = key[row] < 0 ? 0u : (uint32_t)key[row];
            tmp[count[(k >> shift) & 0xffu]++] = row;
        }
        memcpy(order, tmp, (size_t)n * sizeof *order);
    }
}

void xent_weigh(const float *x, const float *count, int64_t n, int64_t d, float *w)
{
    for (int64_t a = 0; a < n; a++)
        for (int64_t k = 0; k < d; k++) w[a * d + k] = count[a] * x[a * d + k];
}

int64_t xent_distinct_rows(const float *x, const int32_t *id, int64_t n, int64_t d, int32_t *group,
                           float *count, float *xd, int32_t *order, int32_t *tmp)
{
    xent_sort_by_id(id, n, order, tmp);
    int64_t g = -1;
    int32_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t row = order[i];
        int32_t k = id[row] < 0 ? 0 : id[row];
        if (g < 0 || k != last) {
            g++;
            last = k;
            count[g] = 0.0f;
            memcpy(xd + g * d, x + (int64_t)row * d, (size_t)d * sizeof *xd);
        }
        count[g] += 1.0f;
        group[row] = (int32_t)g;
    }
    return g + 1;
}

/* inbatch_softmax_xent_ids(q, c, qid, cid): the loss and unit gradients of
 * inbatch_softmax_xent(q c^T) on distinct ids. With Q, C the distinct rows, nq
 * and nc their counts and E = row-softmax of Q C^T weighted by nc:
 *   loss = sum_a nq_a lse_a - sum_i q_i.c_i
 *   dq_i = (E (nc C))_{a(i)} - c_i,   dc_j = (E^T (nq Q))_{m(j)} - q_j
 * which is the B x B computation regrouped, exact up to rounding. */
void kernel_inbatch_softmax_xent_ids(const KernelCall *call)
{
    const float *q = call->in[0], *c = call->in[1];       /* (B,D) each */
    const int32_t *qid = call->in[2], *cid = call->in[3]; /* (B) */
    float *loss = call->out[0], *dq = call->out[1], *dc = call->out[2];
    float *work = call->out[3]; /* (R+6D+6, B) */
    int64_t b = call->in_shape[0].rows, d = call->in_shape[0].cols;
    int64_t rows = call->out_shape[3].rows - 6 * d - 6;
    if (b == 0 || d == 0) {
        memset(dq, 0, (size_t)(b * d) * sizeof *dq);
        memset(dc, 0, (size_t)(b * d) * sizeof *dc);
        *loss = 0.0f;
        return;
    }
    /* The work rows, each b floats wide: scores, then six (b,d) blocks, then six vectors. */
    float *scores = work;
    float *qd = work + rows * b, *cd = qd + d * b, *qw = cd + d * b, *cw = qw + d * b;
    float *gq = cw + d * b, *hc = gq + d * b;
    float *vec = hc + d * b;
    int32_t *qa = (int32_t *)vec, *ca = (int32_t *)(vec + b), *order = (int32_t *)(vec + 2 * b);
    int32_t *tmp = (int32_t *)(vec + 3 * b);
    float *qn = vec + 4 * b, *cn = vec + 5 * b;

    int64_t nq = xent_distinct_rows(q, qid, b, d, qa, qn, qd, order, tmp);
    int64_t nc = xent_distinct_rows(c, cid, b, d, ca, cn, cd, order, tmp);
    xent_weigh(qd, qn, nq, d, qw);
    xent_weigh(cd, cn, nc, d, cw);

    XentJob job = {.qd = qd,
                   .cd = cd,
                   .qw = qw,
                   .cw = cw,
                   .qn = qn,
                   .cn = cn,
                   .nq = nq,
                   .nc = nc,
                   .d = d,
                   .g = gq,
                   .h = hc};
    double total = xent_run(&job, scores, rows * b);
    /* each row reads its user's row of G and its item's of H, scattered over
     * some 0.5 MiB each that the tiles have pushed out of the caches: the rows
     * GH_AHEAD rows on are fetched meanwhile */
    enum { GH_AHEAD = 8 };
    for (int64_t i = 0; i < b; i++) {
        if (i + GH_AHEAD < b) {
            kern_prefetch_row(gq + (int64_t)qa[i + GH_AHEAD] * d, d);
            kern_prefetch_row(hc + (int64_t)ca[i + GH_AHEAD] * d, d);
        }
        const float *qi = q + i * d, *ci = c + i * d;
        double dot = 0.0;
        for (int64_t k = 0; k < d; k++) dot += (double)qi[k] * ci[k];
        total -= dot;
        const float *g = gq + (int64_t)qa[i] * d, *h = hc + (int64_t)ca[i] * d;
        for (int64_t k = 0; k < d; k++) {
            dq[i * d + k] = g[k] - ci[k];
            dc[i * d + k] = h[k] - qi[k];
        }
    }
    *loss = (float)total;
}
