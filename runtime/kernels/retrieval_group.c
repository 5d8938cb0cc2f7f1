/* The retrieval softmax with options (temperature, logQ, accidental-hit
 * removal) and mixed negatives, computed on the batch's distinct queries and
 * candidates by the fused softmax of loss.c (xent.h), as
 * inbatch_softmax_xent_ids computes the plain one: scores made a block of
 * rows at a time by sgemm, an online log-sum-exp per row, the gradients by
 * two more sgemm calls; no (B,B) matrix.
 *
 * Rows are grouped by their bytes (queries) or by key, bytes and logq
 * (candidates, and the negatives apart from them, since their logq is the
 * sampler's), so the grouped form is exact up to rounding whatever the
 * inputs. With the distinct queries Q_a (count qn_a) and columns C_g (count
 * cn_g, shift L lq_g), alpha = 1/T, s_ag = alpha Q_a.C_g - L lq_g,
 * Z_a = sum_g cn_g e^(s_ag), E_ag = e^(s_ag) / Z_a:
 *
 * Without hit removal every row of group a has the softmax of Q_a, so
 *   loss = sum_a qn_a log Z_a - sum_i s_ii,  dq_i = alpha (E cw)_a - alpha c_i,
 *   dc_j = alpha (E^T (qn Q))_g(j) - alpha q_j,  dn_u = alpha (E^T (qn Q))_g(u).
 *
 * With it, row i (query group a, key k, own column group g0) leaves out every
 * copy of a column of key k but its own: its Z_i = Z_a (1 - X_i) with
 * X_i = sum_{g of key k} w_g E_ag, w_g = cn_g less 1 for g0 (so X_i is the
 * share of Z_a that row i drops). Its weight rho_i = Z_a / Z_i rescales its
 * softmax: lse_i = log Z_a + log(1 - X_i); dq_i = alpha rho_i ((E cw)_a -
 * sum_{g of key k} w_g E_ag C_g) - alpha c_i; in H = alpha E^T (r Q), with r_a
 * = sum_{i in a} rho_i, every row of key k is then taken out of the columns
 * of key k and each candidate row given back its own term. X_i is found in
 * the softmax's tile by a row hook; the few E_ag of the corrections are made
 * again from a dot product. A subtraction from Z_a loses at most a factor of
 * (the weight left out) / (the weight kept) in relative accuracy: about the
 * count of the row's key in the batch. */
#include "kernels/xent.h"

#include <float.h>

/* Buffers carved from the caller's spaces, 64-byte blocks. */
typedef struct {
    float *p[2];
    int64_t left[2];
} Arena;

static void *take(Arena *a, int64_t floats)
{
    floats = (floats + 15) / 16 * 16;
    for (int k = 0; k < 2; k++) {
        if (a->p[k] && a->left[k] >= floats) {
            float *r = a->p[k];
            a->p[k] += floats;
            a->left[k] -= floats;
            return r;
        }
    }
    return NULL;
}

static int32_t clamp_id(int32_t k)
{
    return k < 0 ? 0 : k;
}

/* Groups rows 0..n-1 of x (n,D): rows with equal sort keys (as
 * xent_sort_by_id orders them), equal key (when key is given), equal aux bits
 * (when aux is given) and equal bytes share a group. Writes group[row], and
 * for each group its count and its first row; groups come in sort-key order.
 * order and tmp are scratch (n each). Returns the number of groups. */
static int64_t group_rows(const float *x, int64_t n, int64_t d, const int32_t *sort,
                          const int32_t *key, const float *aux, int32_t *group, float *cnt,
                          int32_t *first, int32_t *order, int32_t *tmp)
{
    xent_sort_by_id(sort, n, order, tmp);
    int64_t g = 0, run = 0; /* run: the first group of this run of equal sort keys */
    for (int64_t r = 0; r < n; r++) {
        int32_t i = order[r];
        if (r > 0 && clamp_id(sort[i]) != clamp_id(sort[order[r - 1]])) run = g;
        int64_t k = -1;
        for (int64_t h = run; h < g && k < 0; h++) {
            int32_t f = first[h];
            if (key && key[f] != key[i]) continue;
            if (aux && memcmp(aux + f, aux + i, sizeof *aux) != 0) continue;
            if (memcmp(x + (int64_t)f * d, x + (int64_t)i * d, (size_t)d * sizeof *x) == 0) k = h;
        }
        if (k < 0) {
            k = g++;
            first[k] = i;
            cnt[k] = 0.0f;
        }
        cnt[k] += 1.0f;
        group[i] = (int32_t)k;
    }
    return g;
}

/* A row's bytes hashed (FNV-1a), as a non-negative sort key. */
static int32_t row_hash(const float *x, int64_t d)
{
    const unsigned char *p = (const unsigned char *)x;
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < (size_t)d * sizeof *x; k++) h = (h ^ p[k]) * 16777619u;
    return (int32_t)(h >> 1);
}

/* Rows 0..n-1's groups' first rows' vectors, copied to xd (groups,D), and
 * scaled by the counts into xw when given. */
static void gather(const float *x, int64_t d, const int32_t *first, const float *cnt, int64_t g,
                   float *xd, float *xw)
{
    for (int64_t a = 0; a < g; a++) {
        memcpy(xd + a * d, x + (int64_t)first[a] * d, (size_t)d * sizeof *xd);
        if (xw)
            for (int64_t k = 0; k < d; k++) xw[a * d + k] = cnt[a] * xd[a * d + k];
    }
}

/* What the hit-removal hooks read and write. */
typedef struct {
    const int32_t *key, *ca;      /* (B): rows' keys and column groups */
    const int32_t *mstart, *mrow; /* the rows of each query group, by key */
    const int32_t *gkey;          /* (ncol): each column group's key */
    const int32_t *runlo, *runhi; /* (ncb): the batch groups of g's sort key */
    const int32_t *nlo, *nhi;     /* (ncb): the negative groups of g's sort key (columns) */
    const float *cn, *cd;
    float *rho, *own, *corr; /* (B), (B), (B,D): see hits_row */
    int32_t *direct;         /* (B): corr holds the kept sum instead */
    double *r;               /* (nq): sum of rho over the group's rows */
    int64_t d;
} Hits;

/* Runs body with g each column group that row i leaves out copies of: those
 * of its key (its own group among them, of which it keeps its own copy). */
#define EACH_LEFT_OUT(h, i, g, body)                                                               \
    do {                                                                                           \
        int32_t g0_ = (h)->ca[i], k_ = (h)->key[i];                                                \
        for (int pass_ = 0; pass_ < 2; pass_++) {                                                  \
            int32_t lo_ = pass_ ? (h)->nlo[g0_] : (h)->runlo[g0_];                                 \
            int32_t hi_ = pass_ ? (h)->nhi[g0_] : (h)->runhi[g0_];                                 \
            for (int32_t g = lo_; g < hi_; g++)                                                    \
                if ((h)->gkey[g] == k_) body                                                       \
        }                                                                                          \
    } while (0)

/* Row hook: for each row i of query group a, from the tile's softmax e:
 * X_i (the share of Z_a its left-out copies hold), rho_i = 1 / (1 - X_i), its
 * own column's share own_i = rho_i e_g0, and corr_i = sum w_g e_g C_g over its
 * left-out groups (w_g = cn_g, less 1 for g0), which dq_i loses; or, when it
 * leaves out more than half of Z_a, the sum over the columns it keeps (then
 * direct_i = 1), so that the error stays within twice the plain form's. */
static double hits_row(const XentJob *job, int64_t a, const float *e, double lse)
{
    const Hits *h = job->ctx;
    int64_t d = h->d;
    double total = 0.0, r = 0.0;
    for (int32_t m = h->mstart[a]; m < h->mstart[a + 1]; m++) {
        int32_t i = h->mrow[m], g0 = h->ca[i];
        float *corr = h->corr + (int64_t)i * d;
        memset(corr, 0, (size_t)d * sizeof *corr);
        double x = 0.0;
        EACH_LEFT_OUT(h, i, g, {
            float w = h->cn[g] - (float)(g == g0);
            x += (double)w * e[g];
            for (int64_t k = 0; k < d; k++) corr[k] += w * e[g] * h->cd[(int64_t)g * d + k];
        });
        double keep = 1.0 - x;
        if (keep < 0.5) {
            /* most of Z_a left out: the kept share and corr's complement summed
             * directly, rather than as a difference that would lose digits */
            keep = 0.0;
            memset(corr, 0, (size_t)d * sizeof *corr);
            for (int64_t g = 0; g < job->nc; g++) {
                float w = h->cn[g];
                EACH_LEFT_OUT(h, i, l, {
                    if (l == g) w = (float)(g == g0);
                });
                if (w == 0.0f) continue;
                keep += (double)w * e[g];
                for (int64_t k = 0; k < d; k++) corr[k] += w * e[g] * h->cd[g * d + k];
            }
            h->direct[i] = 1;
        } else {
            h->direct[i] = 0;
        }
        /* keep >= e[g0] exactly; rounding must not take it below */
        if (keep < (double)e[g0]) keep = (double)e[g0];
        if (!(keep > DBL_MIN)) keep = DBL_MIN;
        h->rho[i] = (float)(1.0 / keep);
        h->own[i] = (float)(e[g0] / keep);
        r += 1.0 / keep;
        total += lse + log(keep);
    }
    h->r[a] = r;
    return total;
}

/* Tile hook: row a's weights for H. Every row of the group counts rho_i
 * e_ag in column g, except in the columns of its own key (its own term is
 * given back afterwards): so e_ag becomes e_ag (r_a - R_ag), R_ag the sum of
 * rho over the group's rows of g's key. A column done is marked by its sign
 * (a softmax is never negative) until the end. */
static void hits_mask(const XentJob *job, int64_t a0, int64_t n, float *tile)
{
    const Hits *h = job->ctx;
    int64_t nc = job->nc;
    for (int64_t a = a0; a < a0 + n; a++) {
        float *e = tile + (a - a0) * nc;
        double r = h->r[a];
        for (int32_t m = h->mstart[a]; m < h->mstart[a + 1]; m++) {
            int32_t i = h->mrow[m];
            double rk = 0.0; /* the rows of i's key: contiguous, as mrow is by key */
            for (int32_t l = m;
                 l >= h->mstart[a] && clamp_id(h->key[h->mrow[l]]) == clamp_id(h->key[i]); l--)
                rk += h->key[h->mrow[l]] == h->key[i] ? h->rho[h->mrow[l]] : 0.0;
            for (int32_t l = m + 1;
                 l < h->mstart[a + 1] && clamp_id(h->key[h->mrow[l]]) == clamp_id(h->key[i]); l++)
                rk += h->key[h->mrow[l]] == h->key[i] ? h->rho[h->mrow[l]] : 0.0;
            EACH_LEFT_OUT(h, i, g, {
                if (!signbit(e[g])) e[g] = -(float)((double)e[g] * (r - rk));
            });
        }
        float rf = (float)r;
        for (int64_t g = 0; g < nc; g++) e[g] = signbit(e[g]) ? -e[g] : e[g] * rf;
    }
}

static double dot_d(const float *x, const float *y, int64_t d)
{
    double acc = 0.0;
    for (int64_t k = 0; k < d; k++) acc += (double)x[k] * y[k];
    return acc;
}

int retrieval_grouped(const GroupCall *gc)
{
    int64_t b = gc->b, d = gc->d, u = gc->u;
    Arena ar = {{gc->space[0], gc->space[1]}, {gc->space_floats[0], gc->space_floats[1]}};
    int64_t most = b > u ? b : u;
    int32_t *qh = take(&ar, b), *qa = take(&ar, b), *ca = take(&ar, b), *corder = take(&ar, b);
    int32_t *gn = take(&ar, u), *order = take(&ar, most), *tmp = take(&ar, most);
    int32_t *qfirst = take(&ar, b), *cfirst = take(&ar, b + u);
    float *qn = take(&ar, b), *cn = take(&ar, b + u), *shift = take(&ar, b + u);
    int32_t *gkey = take(&ar, b + u);
    if (!qh || !qa || !ca || !corder || !order || !tmp || !qfirst || !cfirst || !qn || !cn ||
        !shift || !gkey || (u > 0 && !gn))
        return 1;
    for (int64_t i = 0; i < b; i++) qh[i] = row_hash(gc->q + i * d, d);
    int64_t nq = group_rows(gc->q, b, d, qh, NULL, NULL, qa, qn, qfirst, order, tmp);
    const float *lqa = gc->use_logq ? gc->logq : NULL, *nlqa = gc->use_logq ? gc->nlogq : NULL;
    int64_t ncb = group_rows(gc->c, b, d, gc->key, gc->key, lqa, ca, cn, cfirst, order, tmp);
    memcpy(corder, order, (size_t)b * sizeof *order);
    int64_t ncn = u > 0 ? group_rows(gc->n, u, d, gc->nkey, gc->nkey, nlqa, gn, cn + ncb,
                                     cfirst + ncb, order, tmp)
                        : 0;
    int64_t ncol = ncb + ncn;
    for (int64_t g = 0; g < ncol; g++) {
        int32_t f = cfirst[g];
        gkey[g] = g < ncb ? gc->key[f] : gc->nkey[f];
        shift[g] = !gc->use_logq ? 0.0f : g < ncb ? gc->logq[f] : gc->nlogq[f];
    }
    float *qd = take(&ar, nq * d), *qw = gc->hits ? qd : take(&ar, nq * d);
    float *g_ = take(&ar, nq * d);
    float *cd = take(&ar, ncol * d), *cw = take(&ar, ncol * d), *h_ = take(&ar, ncol * d);
    if (!qd || !qw || !g_ || !cd || !cw || !h_) return 1;
    Hits hs = {0};
    if (gc->hits) {
        int32_t *mstart = take(&ar, nq + 1), *mrow = take(&ar, b);
        int32_t *runlo = take(&ar, ncb), *runhi = take(&ar, ncb);
        int32_t *nlo = take(&ar, ncb), *nhi = take(&ar, ncb);
        float *rho = take(&ar, b), *own = take(&ar, b);
        int32_t *direct = take(&ar, b);
        double *r = take(&ar, 2 * nq);
        if (!mstart || !mrow || !runlo || !runhi || !nlo || !nhi || !rho || !own || !direct || !r)
            return 1;
        /* the rows of each query group, by counting, in the candidates' key order */
        memset(mstart, 0, (size_t)(nq + 1) * sizeof *mstart);
        for (int64_t i = 0; i < b; i++) mstart[qa[i] + 1]++;
        for (int64_t a = 0; a < nq; a++) mstart[a + 1] += mstart[a];
        for (int64_t k = 0; k < b; k++) mrow[mstart[qa[corder[k]]]++] = corder[k];
        for (int64_t a = nq; a > 0; a--) mstart[a] = mstart[a - 1];
        mstart[0] = 0;
        /* the runs of equal sort keys among the batch's groups, and the
         * negatives' groups of the same sort key (both come sorted) */
        int64_t lo = 0, nl = ncb;
        for (int64_t g = 0; g < ncb; g++) {
            int32_t k = clamp_id(gkey[g]);
            if (g > 0 && k != clamp_id(gkey[g - 1])) lo = g;
            runlo[g] = (int32_t)lo;
            while (nl < ncol && clamp_id(gkey[nl]) < k) nl++;
            int64_t nh = nl;
            while (nh < ncol && clamp_id(gkey[nh]) == k) nh++;
            nlo[g] = (int32_t)nl, nhi[g] = (int32_t)nh;
        }
        for (int64_t g = ncb - 1, hi = ncb; g >= 0; g--) {
            if (g + 1 < ncb && clamp_id(gkey[g + 1]) != clamp_id(gkey[g])) hi = g + 1;
            runhi[g] = (int32_t)hi;
        }
        hs = (Hits){gc->key, ca, mstart, mrow, gkey,   runlo,  runhi, nlo, nhi,
                    cn,      cd, rho,    own,  gc->dq, direct, r,     d};
    }
    /* the tiles: the larger of what is left */
    int k = ar.left[1] > ar.left[0] ? 1 : 0;
    int64_t room = ar.left[k];
    if (room < ncol * (nq < 8 ? nq : 8)) return 1;

    gather(gc->q, d, qfirst, qn, nq, qd, gc->hits ? NULL : qw);
    for (int64_t g = 0; g < ncol; g++) {
        const float *src =
            g < ncb ? gc->c + (int64_t)cfirst[g] * d : gc->n + (int64_t)cfirst[g] * d;
        memcpy(cd + g * d, src, (size_t)d * sizeof *cd);
        for (int64_t j = 0; j < d; j++) cw[g * d + j] = cn[g] * cd[g * d + j];
    }
    float alpha = (float)(1.0 / gc->t);
    XentJob job = {.qd = qd,
                   .cd = cd,
                   .qw = qw,
                   .cw = cw,
                   .qn = qn,
                   .cn = cn,
                   .shift = gc->use_logq ? shift : NULL,
                   .alpha = alpha,
                   .row = gc->hits ? hits_row : NULL,
                   .mask = gc->hits ? hits_mask : NULL,
                   .ctx = &hs,
                   .nq = nq,
                   .nc = ncol,
                   .d = d,
                   .g = g_,
                   .h = h_};
    double total = xent_run(&job, ar.p[k], room);
    /* dq_i = rho_i (G_a - alpha corr_i) - alpha c_i (corr_i is in dq's row i
     * under hit removal); dc_j = H_g(j) + alpha own_j q_j - alpha q_j */
    float *dq = gc->dq, *dc = gc->dc;
    for (int64_t i = 0; i < b; i++) {
        const float *qi = gc->q + i * d, *ci = gc->c + i * d, *ga = g_ + (int64_t)qa[i] * d;
        const float *hc = h_ + (int64_t)ca[i] * d;
        total -= dot_d(qi, ci, d) / gc->t - (gc->use_logq ? (double)shift[ca[i]] : 0.0);
        if (gc->hits) {
            float rho = hs.rho[i], self = hs.own[i] * alpha;
            for (int64_t j = 0; j < d; j++) {
                float kept = hs.direct[i] ? alpha * dq[i * d + j] : ga[j] - alpha * dq[i * d + j];
                dq[i * d + j] = rho * kept - alpha * ci[j];
                dc[i * d + j] = hc[j] + (self - alpha) * qi[j];
            }
        } else {
            for (int64_t j = 0; j < d; j++) {
                dq[i * d + j] = ga[j] - alpha * ci[j];
                dc[i * d + j] = hc[j] - alpha * qi[j];
            }
        }
    }
    if (gc->dn) {
        for (int64_t v = 0; v < u; v++)
            memcpy(gc->dn + v * d, h_ + (ncb + gn[v]) * d, (size_t)d * sizeof *gc->dn);
    }
    *gc->loss = (float)total;
    return 0;
}
