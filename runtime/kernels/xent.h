/* The fused in-batch softmax's core, shared by the kernels of loss.c (the
 * _qc and _ids forms) and of retrieval_opt.c and retrieval_mixed.c (the
 * retrieval options and mixed negatives, through retrieval_group.c): the
 * blocked, threaded softmax product over distinct rows and columns, and the
 * radix sort that groups rows by id. Private to runtime/kernels, and to
 * runtime/dist.c, whose split softmax runs xent_run on its own rows. */
#ifndef MTR_XENT_H
#define MTR_XENT_H

#include "kernels/kern.h"

/* The most parts a fused softmax is split into. */
#define POOL_MAX_PARTS 64

typedef struct XentJob XentJob;

/* A row hook (see XentJob.row): called once per row a of Q, in the part that
 * owns a, with e = that row's softmax (normalised by Z_a, the column weights
 * cn applied in Z_a only) and lse = log Z_a; returns the row's share of the
 * job's total (the default is qn_a lse). It may write qw's row a, which the
 * part reads after it. */
typedef double (*XentRowFn)(const XentJob *job, int64_t a, const float *e, double lse);

/* A tile hook (see XentJob.mask): called with the tile's rows a0..a0+n-1 of
 * softmax after G is made from them and before H is: it may change them, so
 * that H = alpha T^T qw is made with its own weights. */
typedef void (*XentTileFn)(const XentJob *job, int64_t a0, int64_t n, float *tile);

/* The fused in-batch softmax (loss.c): rows Q (nq,D) score columns C (nc,D)
 * as alpha Q_a . C_j - shift_j (shift NULL: none; alpha 0 means 1); column j
 * weighs cn_j (NULL: 1), row a weighs qn_a (NULL: 1). With Z_a = sum_j cn_j
 * e^(s_aj) and E_aj = e^(s_aj) / Z_a:
 *   total = sum_a qn_a log Z_a,  g = alpha E cw,  h = alpha E^T qw
 * (the hooks may change the total's terms and H's weights). */
struct XentJob {
    const float *qd, *cd, *qw, *cw, *qn, *cn;
    const float *shift;      /* (nc) subtracted from each score, or NULL */
    float alpha;             /* the scores' (and g's, h's) scale; 0: 1 */
    XentRowFn row;           /* or NULL */
    XentTileFn mask;         /* or NULL */
    void *ctx;               /* the hook's */
    int64_t nq, nc, d, rows; /* rows: the tile's rows */
    float *g, *h;            /* (nq,D) and (nc,D) */
    float *space;            /* the parts' (rows,nc) tiles, one after another */
    float *hparts;           /* after them, (nc,D) of H for each part but the first */
    float *panels;           /* after them, C in panels (tiles_panels_rows) when
                              * the tiles use tiles.h's products, else NULL */
    int scale_late;          /* 1/Z_a scales G's and qw's rows, not the tile's (xent_run) */
    double lse[POOL_MAX_PARTS];
};

/* Runs the job on `space` (space_floats floats, at least nc): chooses the
 * parts and the tile's rows that fit, runs the parts, and sums H and the
 * totals in part order. Returns the total. */
double xent_run(XentJob *job, float *space, int64_t space_floats);

/* Whether xent_run uses tiles.h's products and xent_fast_softmax (AVX-512,
 * D a multiple of 32) rather than sgemm and softmax_row. */
int xent_fast_usable(int64_t d);
/* softmax_row's work with AVX-512 (row becomes its softmax, cn weighs Z's
 * terms; returns log Z), and its exp alone (for the tests). With inv_z set,
 * the row keeps e^(s_j - max) and *inv_z gets 1/Z's factor for it. max, when
 * set, is the row's max already known (tiles_abt_max's; read before *inv_z
 * is written, so the two may be the same float). */
double xent_fast_softmax(float *row, int64_t nc, const float *cn, float *inv_z, const float *max);
void xent_fast_exp(const float *x, int64_t n, float *y);

/* Groups rows by id: for each row its group (group[row]), for each group its
 * count and its embedding (the first row's), returning the number of groups,
 * which come in increasing id order (negative ids count as 0). order and tmp
 * are scratch, n each. */
int64_t xent_distinct_rows(const float *x, const int32_t *id, int64_t n, int64_t d, int32_t *group,
                           float *count, float *xd, int32_t *order, int32_t *tmp);

/* w = each row of x (n, d) times its count: the rows' weights in G and H. */
void xent_weigh(const float *x, const float *count, int64_t n, int64_t d, float *w);

/* Sorts rows 0..n-1 by key (int32 ids; negative ones count as 0), stably;
 * order receives the rows, tmp is scratch (n each). */
void xent_sort_by_id(const int32_t *key, int64_t n, int32_t *order, int32_t *tmp);

/* The retrieval softmax with options on distinct rows (retrieval_group.c):
 * queries q (B,D) grouped by their bytes, candidates c (B,D) by key, bytes
 * and logq, and the first u rows of n (N,D) (the mixed negatives, nkey, nlogq)
 * likewise, as extra columns shared by the batch; the scores as
 * inbatch_softmax_xent_opt and _mixed define them. Carves its buffers from
 * the two spaces given (either may be empty); returns 0 when done (loss, dq,
 * dc and dn written), 1 when they are too small for this batch's groups
 * (nothing written: the caller computes it row by row). */
typedef struct {
    const float *q, *c, *logq, *n, *nlogq;
    const int32_t *key, *nkey;
    int64_t b, d, u; /* u: the negatives used */
    double t;
    int use_logq, hits;
    float *space[2];
    int64_t space_floats[2];
    float *loss, *dq, *dc, *dn;
} GroupCall;

int retrieval_grouped(const GroupCall *gc);

#endif
