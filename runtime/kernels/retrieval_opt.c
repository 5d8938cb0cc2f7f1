/* The in-batch softmax with a retrieval task's options (temperature, logQ
 * correction, accidental-hit removal): the loss and its unit gradients, made
 * a tile of query rows at a time by sgemm, so no (B,B) score matrix exists:
 * on the batch's distinct queries and candidates (retrieval_group.c) when the
 * workspace holds their buffers, else row by row (per_row). Apart from the
 * options it computes what inbatch_softmax_xent_qc does; with T = 1, logq off
 * and hit removal off the two agree to rounding. */
#include "kernels/xent.h"

#include <cblas.h>

/* inbatch_softmax_xent_opt (see ops.def). Per row i of a tile:
 *   s_ij = q_i . c_j / T - L logq_j, left out (weight 0) where H, j != i and
 *   key_j == key_i; P_ij = e^(s_ij) / sum_k e^(s_ik) - [j == i], 0 where left out;
 *   loss += logsumexp_j s_ij - s_ii;  dq_i = sum_j P_ij c_j / T;  dc_j += P_ij q_i / T.
 * Sums are in double; the tile's P overwrites its scores in work. */
/* The per-row form, any candidates: row i's scores over all b columns. */
static double per_row(const float *q, const float *c, const int32_t *key, const float *logq,
                      int64_t b, int64_t d, float *work, int64_t rows, double t, int use_logq,
                      int hits, float *dq, float *dc);

void kernel_inbatch_softmax_xent_opt(const KernelCall *call)
{
    const float *q = call->in[0], *c = call->in[1]; /* (B,D) each */
    const int32_t *key = call->in[2];               /* (B) */
    const float *logq = call->in[3];                /* (B) */
    float *loss = call->out[0], *dq = call->out[1], *dc = call->out[2];
    float *work = call->out[3]; /* (R+2D+6,B) */
    int64_t b = call->in_shape[0].rows, d = call->in_shape[0].cols;
    int64_t rows = call->out_shape[3].rows - 2 * d - 6;
    double t = call->knobs[call->iattr[0]];
    int use_logq = call->knobs[call->iattr[1]] != 0.0;
    int hits = call->knobs[call->iattr[2]] != 0.0;
    if (b == 0 || d == 0 || rows <= 0) {
        memset(dq, 0, (size_t)(b * d) * sizeof *dq);
        memset(dc, 0, (size_t)(b * d) * sizeof *dc);
        *loss = 0.0f;
        return;
    }
    GroupCall gc = {.q = q,
                    .c = c,
                    .logq = logq,
                    .key = key,
                    .b = b,
                    .d = d,
                    .t = t,
                    .use_logq = use_logq,
                    .hits = hits,
                    .space = {work, NULL},
                    .space_floats = {kern_numel(call->out_shape[3]), 0},
                    .loss = loss,
                    .dq = dq,
                    .dc = dc};
    if (retrieval_grouped(&gc) == 0) return;
    *loss = (float)per_row(q, c, key, logq, b, d, work, rows, t, use_logq, hits, dq, dc);
}

static double per_row(const float *q, const float *c, const int32_t *key, const float *logq,
                      int64_t b, int64_t d, float *work, int64_t rows, double t, int use_logq,
                      int hits, float *dq, float *dc)
{
    memset(dc, 0, (size_t)(b * d) * sizeof *dc);
    float inv_t = (float)(1.0 / t);
    double total = 0.0;
    for (int64_t r0 = 0; r0 < b; r0 += rows) {
        int64_t n = b - r0 < rows ? b - r0 : rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)b, (int)d, inv_t,
                    q + r0 * d, (int)d, c, (int)d, 0.0f, work, (int)b);
        for (int64_t a = 0; a < n; a++) {
            int64_t i = r0 + a;
            float *s = work + a * b;
            if (use_logq)
                for (int64_t j = 0; j < b; j++) s[j] -= logq[j];
            double m = -INFINITY;
            for (int64_t j = 0; j < b; j++) {
                if (hits && j != i && key[j] == key[i]) continue;
                m = s[j] > m ? s[j] : m;
            }
            double sum = 0.0;
            for (int64_t j = 0; j < b; j++) {
                if (hits && j != i && key[j] == key[i]) {
                    s[j] = 0.0f;
                    continue;
                }
                double e = exp((double)s[j] - m);
                if (j == i) total -= (double)s[j];
                s[j] = (float)e;
                sum += e;
            }
            total += m + log(sum);
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < b; j++) s[j] *= inv;
            s[i] -= 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)b, inv_t, work,
                    (int)b, c, (int)d, 0.0f, dq + r0 * d, (int)d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)b, (int)d, (int)n, inv_t, work,
                    (int)b, q + r0 * d, (int)d, 1.0f, dc, (int)d);
    }
    return total;
}
