/* The in-batch softmax with mixed negatives (Yang et al. 2020): the batch's
 * candidates and U sampled items, shared by every row, in one softmax per
 * query row, with the retrieval options of inbatch_softmax_xent_opt. On the
 * batch's distinct queries, candidates and negatives (retrieval_group.c, the
 * negatives extra columns of the fused softmax) when work and nwork hold its
 * buffers; else the per-row form below: a tile of query rows at a time by
 * sgemm, the tile's scores against the batch in work, against the negatives
 * in nwork. */
#include "kernels/xent.h"

#include <cblas.h>

/* inbatch_softmax_xent_mixed (see ops.def). Per row i, over the columns j < B
 * (the batch's candidates) and u < U (the negatives):
 *   s_ij = q_i . c_j / T - L logq_j,  s_iu = q_i . n_u / T - L nlogq_u,
 *   left out where H and the column's key equals key_i (except j = i);
 *   P = softmax over the kept columns, minus 1 at j = i, 0 where left out;
 *   loss += logsumexp - s_ii; dq_i = (P_i. c + P_iu n) / T; dc += P^T q / T; dn += P^T q / T. */
void kernel_inbatch_softmax_xent_mixed(const KernelCall *call)
{
    const float *q = call->in[0], *c = call->in[1], *nv = call->in[4];
    const int32_t *key = call->in[2], *nkey = call->in[5];
    const float *logq = call->in[3], *nlogq = call->in[6];
    float *loss = call->out[0], *dq = call->out[1], *dc = call->out[2], *dn = call->out[3];
    float *work = call->out[4], *nwork = call->out[5];
    int64_t b = call->in_shape[0].rows, d = call->in_shape[0].cols;
    int64_t nn = call->in_shape[4].rows, rows = call->out_shape[4].rows;
    double t = call->knobs[call->iattr[0]];
    int use_logq = call->knobs[call->iattr[1]] != 0.0;
    int hits = call->knobs[call->iattr[2]] != 0.0;
    double want = call->knobs[call->iattr[3]];
    int64_t u = want <= 0.0 ? 0 : want >= (double)nn ? nn : (int64_t)want;
    memset(dc, 0, (size_t)(b * d) * sizeof *dc);
    memset(dn, 0, (size_t)(nn * d) * sizeof *dn);
    memset(dq, 0, (size_t)(b * d) * sizeof *dq);
    *loss = 0.0f;
    if (b == 0 || d == 0 || rows <= 0) return;
    GroupCall gc = {
        .q = q,
        .c = c,
        .logq = logq,
        .n = nv,
        .nlogq = nlogq,
        .key = key,
        .nkey = nkey,
        .b = b,
        .d = d,
        .u = u,
        .t = t,
        .use_logq = use_logq,
        .hits = hits,
        .space = {work, nwork},
        .space_floats = {kern_numel(call->out_shape[4]), kern_numel(call->out_shape[5])},
        .loss = loss,
        .dq = dq,
        .dc = dc,
        .dn = dn};
    if (retrieval_grouped(&gc) == 0) return; /* 1: it wrote nothing */
    float inv_t = (float)(1.0 / t);
    double total = 0.0;
    for (int64_t r0 = 0; r0 < b; r0 += rows) {
        int64_t n = b - r0 < rows ? b - r0 : rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)b, (int)d, inv_t,
                    q + r0 * d, (int)d, c, (int)d, 0.0f, work, (int)b);
        if (u > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)u, (int)d, inv_t,
                        q + r0 * d, (int)d, nv, (int)d, 0.0f, nwork, (int)u);
        for (int64_t a = 0; a < n; a++) {
            int64_t i = r0 + a;
            float *s = work + a * b, *sn = nwork + a * u;
            if (use_logq) {
                for (int64_t j = 0; j < b; j++) s[j] -= logq[j];
                for (int64_t v = 0; v < u; v++) sn[v] -= nlogq[v];
            }
            double mx = s[i];
            for (int64_t j = 0; j < b; j++)
                if (!(hits && j != i && key[j] == key[i]) && s[j] > mx) mx = s[j];
            for (int64_t v = 0; v < u; v++)
                if (!(hits && nkey[v] == key[i]) && sn[v] > mx) mx = sn[v];
            double sum = 0.0;
            total -= (double)s[i];
            for (int64_t j = 0; j < b; j++) {
                if (hits && j != i && key[j] == key[i]) {
                    s[j] = 0.0f;
                    continue;
                }
                float e = expf((float)((double)s[j] - mx));
                s[j] = e;
                sum += e;
            }
            for (int64_t v = 0; v < u; v++) {
                if (hits && nkey[v] == key[i]) {
                    sn[v] = 0.0f;
                    continue;
                }
                float e = expf((float)((double)sn[v] - mx));
                sn[v] = e;
                sum += e;
            }
            total += mx + log(sum);
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < b; j++) s[j] *= inv;
            for (int64_t v = 0; v < u; v++) sn[v] *= inv;
            s[i] -= 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)b, inv_t, work,
                    (int)b, c, (int)d, 0.0f, dq + r0 * d, (int)d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)b, (int)d, (int)n, inv_t, work,
                    (int)b, q + r0 * d, (int)d, 1.0f, dc, (int)d);
        if (u > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)u, inv_t,
                        nwork, (int)u, nv, (int)d, 1.0f, dq + r0 * d, (int)d);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)u, (int)d, (int)n, inv_t,
                        nwork, (int)u, q + r0 * d, (int)d, 1.0f, dn, (int)d);
        }
    }
    *loss = (float)total;
}
