/* The retrieval softmax's plain form and its option kernels' runners (retrieval_ref.h). */
#include "retrieval_ref.h"

#include "kernels/kern.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The plain form over the b + u columns (u = 0: inbatch_softmax_xent_opt's). */
double retrieval_reference(const float *q, const float *c, const int32_t *key, const float *logq,
                           int64_t b, int64_t d, const float *nv, const int32_t *nkey,
                           const float *nlogq, int64_t nn, RetrievalOpts o, double *dq, double *dc,
                           double *dn)
{
    int64_t m = b + o.u;
    double loss = 0.0, *s = calloc((size_t)m, sizeof *s), *p = calloc((size_t)m, sizeof *p);
    memset(dq, 0, (size_t)(b * d) * sizeof *dq);
    memset(dc, 0, (size_t)(b * d) * sizeof *dc);
    if (nn > 0) memset(dn, 0, (size_t)(nn * d) * sizeof *dn);
    for (int64_t i = 0; i < b; i++) {
        double mx = -INFINITY, z = 0.0;
        for (int64_t j = 0; j < m; j++) {
            const float *v = j < b ? c + j * d : nv + (j - b) * d;
            double dot = 0.0;
            for (int64_t k = 0; k < d; k++) dot += (double)q[i * d + k] * v[k];
            s[j] = dot / o.t - (o.logq ? (j < b ? logq[j] : nlogq[j - b]) : 0.0);
            int out = o.hits && j != i && (j < b ? key[j] : nkey[j - b]) == key[i];
            p[j] = out ? -1.0 : 0.0;
            if (!out && s[j] > mx) mx = s[j];
        }
        for (int64_t j = 0; j < m; j++) {
            p[j] = p[j] < 0 ? 0.0 : exp(s[j] - mx);
            z += p[j];
        }
        loss += mx + log(z) - s[i];
        for (int64_t j = 0; j < m; j++) {
            p[j] = p[j] / z - (j == i);
            const float *v = j < b ? c + j * d : nv + (j - b) * d;
            double *dv = j < b ? dc + j * d : dn + (j - b) * d;
            for (int64_t k = 0; k < d; k++) {
                dq[i * d + k] += p[j] * v[k] / o.t;
                dv[k] += p[j] * q[i * d + k] / o.t;
            }
        }
    }
    free(s), free(p);
    return loss;
}

/* inbatch_softmax_xent_opt with a workspace of `rows` rows of b (the shape
 * rule gives 256 + 2D + 6). */
float retrieval_run_opt(const float *q, const float *c, const int32_t *key, const float *logq,
                        int64_t b, int64_t d, RetrievalOpts o, int64_t rows, float *dq, float *dc)
{
    float *work = calloc((size_t)(rows * b), sizeof *work);
    float loss = 0.0f;
    double knobs[3] = {o.t, o.logq, o.hits};
    KernelCall call = {0};
    call.in[0] = (void *)q, call.in[1] = (void *)c, call.in[2] = (void *)key;
    call.in[3] = (void *)logq;
    call.in_shape[0] = (KShape){b, d}, call.in_shape[1] = (KShape){b, d};
    call.in_shape[2] = (KShape){b, 1}, call.in_shape[3] = (KShape){b, 1};
    call.out[0] = &loss, call.out[1] = dq, call.out[2] = dc, call.out[3] = work;
    call.out_shape[0] = (KShape){1, 1}, call.out_shape[1] = (KShape){b, d};
    call.out_shape[2] = (KShape){b, d}, call.out_shape[3] = (KShape){rows, b};
    call.iattr[0] = 0, call.iattr[1] = 1, call.iattr[2] = 2;
    call.knobs = knobs;
    kernel_inbatch_softmax_xent_opt(&call);
    free(work);
    return loss;
}

/* inbatch_softmax_xent_mixed with workspaces of `rows` rows (the shape rule gives 256). */
float retrieval_run_mixed(const float *q, const float *c, const int32_t *key, const float *logq,
                          int64_t b, int64_t d, const float *nv, const int32_t *nkey,
                          const float *nlogq, int64_t nn, RetrievalOpts o, int64_t rows, float *dq,
                          float *dc, float *dn)
{
    float *work = calloc((size_t)(rows * b), sizeof *work);
    float *nwork = calloc((size_t)(rows * nn + 1), sizeof *nwork);
    float loss = 0.0f;
    double knobs[5] = {o.t, o.logq, o.hits, (double)o.u, 0.0};
    KernelCall call = {0};
    call.in[0] = (void *)q, call.in[1] = (void *)c, call.in[2] = (void *)key;
    call.in[3] = (void *)logq, call.in[4] = (void *)nv, call.in[5] = (void *)nkey;
    call.in[6] = (void *)nlogq;
    call.in_shape[0] = (KShape){b, d}, call.in_shape[1] = (KShape){b, d};
    call.in_shape[2] = (KShape){b, 1}, call.in_shape[3] = (KShape){b, 1};
    call.in_shape[4] = (KShape){nn, d}, call.in_shape[5] = (KShape){nn, 1};
    call.in_shape[6] = (KShape){nn, 1};
    call.out[0] = &loss, call.out[1] = dq, call.out[2] = dc, call.out[3] = dn;
    call.out[4] = work, call.out[5] = nwork;
    call.out_shape[0] = (KShape){1, 1}, call.out_shape[1] = (KShape){b, d};
    call.out_shape[2] = (KShape){b, d}, call.out_shape[3] = (KShape){nn, d};
    call.out_shape[4] = (KShape){rows, b}, call.out_shape[5] = (KShape){rows, nn};
    for (int k = 0; k < 5; k++) call.iattr[k] = k;
    call.knobs = knobs;
    kernel_inbatch_softmax_xent_mixed(&call);
    free(work), free(nwork);
    return loss;
}
