/* The in-batch softmax with a retrieval task's options (temperature, logQ
 * correction, accidental-hit removal): the loss and its unit gradients, made
 * a tile of query rows at a time by sgemm, so no (B,B) score matrix exists.
 * Apart from the options it computes what inbatch_softmax_xent_qc does; with
 * T = 1, logq off and hit removal off the two agree to rounding. */
#include "kernels/kern.h"

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

/* Groups the candidate rows by key: group[j] for each row, and for each group
 * its count cn, its logq lq and its vector (the first row's) in cd; returns
 * the number of groups, or -1 when two rows of one key differ (then the
 * grouped form would not be exact). */
static int64_t group_keys(const float *c, const int32_t *key, const float *logq, int64_t b,
                          int64_t d, int32_t *group, float *cn, float *lq, float *cd,
                          int32_t *order, int32_t *first)
{
    (void)order;
    int64_t g = 0;
    /* first[] holds, for each group, its first row; a linear probe over a
     * sorted copy would do too, but keys repeat little in a batch */
    for (int64_t j = 0; j < b; j++) {
        int64_t k = -1;
        /* find j's key among the groups so far: groups are few when keys repeat */
        for (int64_t h = g - 1; h >= 0 && k < 0; h--)
            if (key[first[h]] == key[j]) k = h;
        if (k < 0) {
            k = g++;
            first[k] = (int32_t)j;
            cn[k] = 0.0f;
            lq[k] = logq[j];
            memcpy(cd + k * d, c + j * d, (size_t)d * sizeof *cd);
        } else if (memcmp(cd + k * d, c + j * d, (size_t)d * sizeof *cd) != 0) {
            return -1;
        }
        cn[k] += 1.0f;
        group[j] = (int32_t)k;
    }
    return g;
}

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
    float *tile = work, *cd = work + rows * b, *hc = cd + d * b, *vec = hc + d * b;
    float *cn = vec, *lq = vec + b, *own = vec + 2 * b;
    int32_t *group = (int32_t *)(vec + 3 * b), *order = (int32_t *)(vec + 4 * b);
    int32_t *first = (int32_t *)(vec + 5 * b);
    int64_t nc = group_keys(c, key, logq, b, d, group, cn, lq, cd, order, first);
    if (nc < 0) {
        *loss = (float)per_row(q, c, key, logq, b, d, work, rows, t, use_logq, hits, dq, dc);
        return;
    }
    /* On the distinct candidates m (count cn_m): row i of key k scores
     * s_im = q_i . C_m / T - L lq_m, each m weighing cn_m, except its own key,
     * which weighs 1 under H (the other rows of its key are left out). With
     * e_im = e^(s_im - max), Z_i = sum_m w_im e_im:
     *   loss_i = log Z_i + max - s_ik
     *   dq_i = (sum_m w_im e_im C_m / Z_i - c_i) / T
     *   dc_j = (sum_i E'_im q_i + [H] e_jk/Z_j q_j - q_j) / T,  m = key of j,
     * with E'_im = e_im / Z_i, 0 for (i, its own key) under H. */
    float inv_t = (float)(1.0 / t);
    double total = 0.0;
    memset(hc, 0, (size_t)(nc * d) * sizeof *hc);
    for (int64_t r0 = 0; r0 < b; r0 += rows) {
        int64_t n = b - r0 < rows ? b - r0 : rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nc, (int)d, inv_t,
                    q + r0 * d, (int)d, cd, (int)d, 0.0f, tile, (int)nc);
        for (int64_t a = 0; a < n; a++) {
            int64_t i = r0 + a, k = group[i];
            float *s = tile + a * nc;
            if (use_logq)
                for (int64_t m = 0; m < nc; m++) s[m] -= lq[m];
            double mx = -INFINITY;
            for (int64_t m = 0; m < nc; m++) mx = s[m] > mx ? s[m] : mx;
            double z = 0.0;
            total -= (double)s[k];
            for (int64_t m = 0; m < nc; m++) {
                double e = exp((double)s[m] - mx);
                s[m] = (float)e;
                z += (m == k && hits ? 1.0 : (double)cn[m]) * e;
            }
            total += mx + log(z);
            float inv = (float)(1.0 / z);
            for (int64_t m = 0; m < nc; m++) s[m] *= inv; /* E_im */
            own[i] = s[k];
            if (hits) s[k] = 0.0f; /* E' */
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nc, (int)d, (int)n, inv_t, tile,
                    (int)nc, q + r0 * d, (int)d, 1.0f, hc, (int)d);
        /* W = E' with columns weighted by cn, the own entry by its weight */
        for (int64_t a = 0; a < n; a++) {
            int64_t i = r0 + a, k = group[i];
            float *s = tile + a * nc;
            for (int64_t m = 0; m < nc; m++) s[m] *= cn[m];
            s[k] = hits ? own[i] : cn[k] * own[i];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)nc, inv_t, tile,
                    (int)nc, cd, (int)d, 0.0f, dq + r0 * d, (int)d);
    }
    for (int64_t i = 0; i < b; i++) {
        const float *qi = q + i * d, *ci = c + i * d, *h = hc + (int64_t)group[i] * d;
        float self = hits ? own[i] * inv_t : 0.0f;
        for (int64_t k = 0; k < d; k++) {
            dq[i * d + k] -= ci[k] * inv_t;
            dc[i * d + k] = h[k] + self * qi[k] - qi[k] * inv_t;
        }
    }
    *loss = (float)total;
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
