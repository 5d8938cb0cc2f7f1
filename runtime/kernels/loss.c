/* Loss kernels, each forward with its fused gradient: mean squared error,
 * binary cross-entropy on logits, in-batch softmax cross-entropy (the retrieval
 * loss, and the hot spot of training), and loss_weight, which scales a loss by
 * a knob read at run time. Losses are accumulated in double. */
#include "kernels/kern.h"

#include <cblas.h>

/* mse(pred, label) -> mean_i (pred_i - label_i)^2.
 * Gradient: mse_grad(pred, label, dloss) = 2 (pred - label) / B * dloss. */
/* The rows whose label is present: a missing label is NaN, and its row is
 * left out of the loss and its gradient (the mean is over the others). */
static int64_t labelled(const float *label, int64_t b)
{
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
    int64_t n = labelled(label, b);
    *loss = n > 0 ? (float)(acc / (double)n) : 0.0f;
}

void kernel_mse_grad(const KernelCall *call)
{
    const float *pred = call->in[0];           /* (B,1) */
    const float *label = call->in[1];          /* (B) */
    float dloss = *(const float *)call->in[2]; /* () */
    float *dpred = call->out[0];               /* (B,1) */
    int64_t b = call->in_shape[0].rows, n = labelled(label, b);
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
    int64_t n = labelled(label, b);
    *loss = n > 0 ? (float)(acc / (double)n) : 0.0f;
}

void kernel_bce_logits_grad(const KernelCall *call)
{
    const float *logit = call->in[0];          /* (B,1) */
    const float *label = call->in[1];          /* (B) */
    float dloss = *(const float *)call->in[2]; /* () */
    float *dlogit = call->out[0];              /* (B,1) */
    int64_t b = call->in_shape[0].rows, n = labelled(label, b);
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
    int64_t n = labelled(label, b);
    *loss = n > 0 ? (float)(acc / (double)n) : 0.0f;
}

/* bce_prob_grad(p, label, dloss) -> dp = (p - y) / (p (1 - p)) / n * dloss, 0 where p is
 * clamped (the loss is flat there) or the label is missing */
void kernel_bce_prob_grad(const KernelCall *call)
{
    const float *p = call->in[0], *label = call->in[1];
    float dloss = *(const float *)call->in[2];
    float *dp = call->out[0];
    int64_t b = call->in_shape[0].rows, n = labelled(label, b);
    double k = n > 0 ? (double)dloss / (double)n : 0.0;
    for (int64_t i = 0; i < b; i++) {
        double q = p[i];
        dp[i] = isnan(label[i]) || q < PROB_LO || q > 1 - PROB_LO
                    ? 0.0f
                    : (float)((q - label[i]) / (q * (1.0 - q)) * k);
    }
}

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

/* inbatch_softmax_xent_qc(q, c) -> the loss of inbatch_softmax_xent(q c^T) and its
 * gradients for dloss = 1: with P = softmax(q c^T) - I, dq = P c and dc = P^T q.
 * Scores are made R rows at a time in work (R = work's rows), so no (B,B)
 * matrix exists and each block is still in cache when it is exponentiated and
 * multiplied back; dc sums the blocks' contributions. */
void kernel_inbatch_softmax_xent_qc(const KernelCall *call)
{
    const float *q = call->in[0]; /* (B,D) */
    const float *c = call->in[1]; /* (B,D) */
    float *loss = call->out[0];   /* () */
    float *dq = call->out[1];     /* (B,D) */
    float *dc = call->out[2];     /* (B,D) */
    float *work = call->out[3];   /* (R,B) */
    int64_t b = call->in_shape[0].rows, d = call->in_shape[0].cols;
    int64_t rows = call->out_shape[3].rows;
    double total = 0.0;
    if (b == 0 || d == 0) {
        memset(dq, 0, (size_t)(b * d) * sizeof *dq);
        memset(dc, 0, (size_t)(b * d) * sizeof *dc);
        *loss = 0.0f;
        return;
    }
    for (int64_t r0 = 0; r0 < b; r0 += rows) {
        int64_t n = b - r0 < rows ? b - r0 : rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)b, (int)d, 1.0f,
                    q + r0 * d, (int)d, c, (int)d, 0.0f, work, (int)b);
        for (int64_t i = 0; i < n; i++) {
            float *row = work + i * b;
            float diag = row[r0 + i];
            float m = kern_row_max(row, b);
            double sum = kern_row_exp_sum(row, row, b, m);
            total += (double)m + log(sum) - (double)diag;
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < b; j++) row[j] *= inv;
            row[r0 + i] -= 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)b, 1.0f, work,
                    (int)b, c, (int)d, 0.0f, dq + r0 * d, (int)d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)b, (int)d, (int)n, 1.0f, work,
                    (int)b, q + r0 * d, (int)d, r0 == 0 ? 0.0f : 1.0f, dc, (int)d);
    }
    *loss = (float)total;
}

/* Sorts rows 0..n-1 by key (int32 ids; negative ones count as 0), stably, by
 * four 8-bit passes of LSD radix; order receives the rows, tmp is scratch. */
static void sort_by_id(const int32_t *key, int64_t n, int32_t *order, int32_t *tmp)
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

/* Groups rows by id: for each row its group (group[row]), for each group its
 * count and its embedding (the first row's), returning the number of groups,
 * which come in increasing id order. */
static int64_t distinct_rows(const float *x, const int32_t *id, int64_t n, int64_t d,
                             int32_t *group, float *count, float *xd, int32_t *order, int32_t *tmp)
{
    sort_by_id(id, n, order, tmp);
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

    int64_t nq = distinct_rows(q, qid, b, d, qa, qn, qd, order, tmp);
    int64_t nc = distinct_rows(c, cid, b, d, ca, cn, cd, order, tmp);
    for (int64_t a = 0; a < nq; a++)
        for (int64_t k = 0; k < d; k++) qw[a * d + k] = qn[a] * qd[a * d + k];
    for (int64_t m = 0; m < nc; m++)
        for (int64_t k = 0; k < d; k++) cw[m * d + k] = cn[m] * cd[m * d + k];

    double total = 0.0;
    for (int64_t a0 = 0; a0 < nq; a0 += rows) {
        int64_t n = nq - a0 < rows ? nq - a0 : rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nc, (int)d, 1.0f,
                    qd + a0 * d, (int)d, cd, (int)d, 0.0f, scores, (int)nc);
        for (int64_t i = 0; i < n; i++) {
            float *row = scores + i * nc;
            float m = kern_row_max(row, nc);
            for (int64_t j = 0; j < nc; j++) row[j] = kern_expf(row[j] - m);
            double z = 0.0;
            for (int64_t j = 0; j < nc; j++) z += (double)cn[j] * row[j];
            total += (double)qn[a0 + i] * ((double)m + log(z));
            float inv = (float)(1.0 / z);
            for (int64_t j = 0; j < nc; j++) row[j] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)nc, 1.0f,
                    scores, (int)nc, cw, (int)d, 0.0f, gq + a0 * d, (int)d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nc, (int)d, (int)n, 1.0f, scores,
                    (int)nc, qw + a0 * d, (int)d, a0 == 0 ? 0.0f : 1.0f, hc, (int)d);
    }
    for (int64_t i = 0; i < b; i++) {
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
