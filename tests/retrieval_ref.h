/* The retrieval softmax's plain form and runners of its two option kernels,
 * shared by the kernel tests of inbatch_softmax_xent_opt and _mixed. */
#ifndef MTR_RETRIEVAL_REF_H
#define MTR_RETRIEVAL_REF_H

#include <stdint.h>

/* The options as the kernels read them: temperature, logq, hit removal, and
 * how many of the negatives are used (the mixed kernel only). */
typedef struct {
    double t;
    int logq, hits;
    int64_t u;
} RetrievalOpts;

/* The plain form over the b batch columns and the first o.u of the nn negative
 * rows, every row and column in double: s_ij = q_i.v_j / T - L logq_j, column j
 * left out of row i under H when j != i and its key is key_i; returns the loss
 * and writes dq (b x d), dc (b x d) and dn (nn x d, zero past u). nv, nkey,
 * nlogq and dn may be NULL when nn is 0. */
double retrieval_reference(const float *q, const float *c, const int32_t *key, const float *logq,
                           int64_t b, int64_t d, const float *nv, const int32_t *nkey,
                           const float *nlogq, int64_t nn, RetrievalOpts o, double *dq, double *dc,
                           double *dn);

/* Runs inbatch_softmax_xent_opt with a workspace of `rows` rows of b. */
float retrieval_run_opt(const float *q, const float *c, const int32_t *key, const float *logq,
                        int64_t b, int64_t d, RetrievalOpts o, int64_t rows, float *dq, float *dc);

/* Runs inbatch_softmax_xent_mixed over nn negative rows, with workspaces of
 * `rows` query rows. */
float retrieval_run_mixed(const float *q, const float *c, const int32_t *key, const float *logq,
                          int64_t b, int64_t d, const float *nv, const int32_t *nkey,
                          const float *nlogq, int64_t nn, RetrievalOpts o, int64_t rows, float *dq,
                          float *dc, float *dn);

#endif
