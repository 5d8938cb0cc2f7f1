/* Retrieval kernels for evaluation and serving: the rank of each query's true
 * item among all items (for top-k accuracy, as TFRS's FactorizedTopK counts it)
 * and the k best items per row of a score matrix. No gradients. */
#include "kernels/kern.h"

#include "mtr/pool.h"

#include <cblas.h>
#include <float.h>

/* The score every decision rests on: q . x summed in double, in index order.
 * Products of floats are exact in double, so two identical items always get
 * the same score, wherever they sit in the item table. */
static double dot_exact(const float *q, const float *x, int64_t d)
{
    double acc = 0.0;
    for (int64_t k = 0; k < d; k++) acc += (double)q[k] * (double)x[k];
    return acc;
}

static double norm2(const float *x, int64_t d)
{
    return sqrt(dot_exact(x, x, d));
}

/* retrieval_rank tiles, on the stack (kernels do not allocate; some 250 KiB in
 * all): a tile is up to RANK_ROWS queries with at most RANK_DISTINCT distinct
 * ones, whose scores are made RANK_TILE floats at a time (as many items as fit).
 * With the rows sorted by user, a tile holds dozens of users, so the items are
 * packed for sgemm once per tile, not once per hundred rows. The pool splits
 * the rows at multiples of RANK_QB. */
#define RANK_QB       128
#define RANK_ROWS     2048
#define RANK_DISTINCT 64
#define RANK_TILE     (RANK_DISTINCT * 512)

/* One retrieval_rank call's operands, shared by its parts. */
typedef struct {
    const float *query, *items;
    const int32_t *true_row;
    float *rank;
    int64_t b, d, n;
    double xmax, gamma;
} RankJob;

/* Queries of at most this width are packed, so that equal ones are scored once. */
#define RANK_PACK_D 256

/* Counts the scores of row[0..n) above hi (*above) and at or above lo (*reached).
 * Compiled for AVX-512 and AVX2 as well as the baseline, chosen at load time:
 * integer counts of float comparisons, the same on any vector width. */
KERN_CLONES static void count_band(const float *row, int64_t n, float lo, float hi, int32_t *above,
                                   int32_t *reached)
{
    int32_t a = 0, r = 0;
    for (int64_t j = 0; j < n; j++) {
        a += row[j] > hi;
        r += row[j] >= lo;
    }
    *above = a;
    *reached = r;
}

/* The queries of one part, a tile at a time (each part has its own tiles on
 * its own stack; a query's rank does not depend on the split). Within a tile,
 * a query equal to the one before it (bit for bit: the same user, when the
 * rows come sorted by user) reuses its scores, so the products are made once
 * per distinct query; only the counting is per row. */
static void rank_part(void *ctx, int part, int parts)
{
    const RankJob *job = ctx;
    const float *query = job->query, *items = job->items;
    int64_t d = job->d, n = job->n, lo, hi, qb;
    int pack = d <= RANK_PACK_D; /* else every row is its own query */
    pool_rows(job->b, RANK_QB, part, parts, &lo, &hi);
    float tile[RANK_TILE];
    float packed[RANK_DISTINCT * RANK_PACK_D];
    double truth[RANK_ROWS];
    float hi_s[RANK_ROWS], lo_s[RANK_ROWS]; /* each query's band, in float */
    int64_t count[RANK_ROWS];
    int32_t which[RANK_ROWS]; /* the row of the tile's scores each query reads */
    for (int64_t q0 = lo; q0 < hi; q0 += qb) {
        int64_t nd = 0; /* distinct queries, packed when d allows */
        for (qb = 0; q0 + qb < hi && qb < RANK_ROWS; qb++) {
            int64_t i = qb;
            const float *q = query + (q0 + i) * d;
            int same =
                pack && nd > 0 && memcmp(packed + (nd - 1) * d, q, (size_t)d * sizeof *q) == 0;
            if (!same && nd == RANK_DISTINCT) break;
            int32_t t = job->true_row[q0 + i];
            count[i] = t >= 0 && t < n ? 0 : -1; /* -1: a miss, never counted */
            truth[i] = count[i] == 0 ? dot_exact(q, items + (int64_t)t * d, d) : 0.0;
            double tol = 2.0 * job->gamma * norm2(q, d) * job->xmax * 1.01 + 4.0 * FLT_MIN;
            /* float bounds rounded outwards: the band only widens */
            hi_s[i] = nextafterf((float)(truth[i] + tol), INFINITY);
            lo_s[i] = nextafterf((float)(truth[i] - tol), -INFINITY);
            if (!same && pack) memcpy(packed + nd * d, q, (size_t)d * sizeof *q);
            which[i] = (int32_t)(same ? nd - 1 : nd++);
        }
        const float *qsrc = pack ? packed : query + q0 * d;
        /* as many items a block as the tile holds for the distinct queries (the
         * scores only screen; the count is exact whatever the blocks) */
        int64_t step = RANK_TILE / nd;
        for (int64_t j0 = 0; j0 < n; j0 += step) {
            int64_t nb = n - j0 < step ? n - j0 : step;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nd, (int)nb, (int)d, 1.0f,
                        qsrc, (int)d, items + j0 * d, (int)d, 0.0f, tile, (int)nb);
            for (int64_t i = 0; i < qb; i++) {
                if (count[i] < 0) continue;
                const float *srow = tile + (int64_t)which[i] * nb;
                float band_hi = hi_s[i], band_lo = lo_s[i];
                int32_t above, reached;
                count_band(srow, nb, band_lo, band_hi, &above, &reached);
                /* The true item scores its own truth, never above it: when it is
                 * the band's only item here, nothing needs scoring again. */
                int64_t t = job->true_row[q0 + i] - j0;
                int self = t >= 0 && t < nb && srow[t] >= band_lo && srow[t] <= band_hi;
                int64_t c = above;
                if (reached - above > self) {
                    const float *q = query + (q0 + i) * d;
                    for (int64_t j = 0; j < nb; j++) {
                        if (srow[j] >= band_lo && srow[j] <= band_hi)
                            c += dot_exact(q, items + (j0 + j) * d, d) > truth[i];
                    }
                }
                count[i] += c;
            }
        }
        for (int64_t i = 0; i < qb; i++) {
            job->rank[q0 + i] = count[i] < 0 ? (float)(n + 1) : (float)(count[i] + 1);
        }
    }
}

/* retrieval_rank(query, items, true_row) -> rank_i = 1 + #{j : q_i . x_j > q_i . x_t},
 * t = true_row[i], scores as dot_exact; a true_row outside [0, N) gives N + 1.
 *
 * Scores are screened in tiles with cblas_sgemm; only items whose sgemm score
 * lies within the error bound of the true score are scored again with
 * dot_exact, so the count is exactly that of dot_exact. Bound: a float dot
 * product of length D in any order (with or without FMA) is within
 * gamma_D |q| |x| of the true value (gamma_D = D u / (1 - D u), u = 2^-24, and
 * Cauchy-Schwarz), dot_exact within far less; so sgemm score s and dot_exact
 * score e differ by at most tol = 2 gamma_D |q| max_j |x_j| (padded).
 * The queries are split into parts of whole tiles on the thread pool. */
void kernel_retrieval_rank(const KernelCall *call)
{
    const float *query = call->in[0];      /* (B,D) */
    const float *items = call->in[1];      /* (N,D) */
    const int32_t *true_row = call->in[2]; /* (B) */
    float *rank = call->out[0];            /* (B) */
    int64_t b = call->in_shape[0].rows, d = call->in_shape[0].cols;
    int64_t n = call->in_shape[1].rows;
    if (b == 0) return;
    if (n == 0 || d == 0) {
        for (int64_t i = 0; i < b; i++) {
            int32_t t = true_row[i];
            rank[i] = t >= 0 && t < n ? 1.0f : (float)(n + 1);
        }
        return;
    }
    double xmax = 0.0;
    for (int64_t j = 0; j < n; j++) {
        double nx = norm2(items + j * d, d);
        xmax = nx > xmax ? nx : xmax;
    }
    double u = ldexp(1.0, -24);
    RankJob job = {
        query, items, true_row, rank, b, d, n, xmax, (double)d * u / (1.0 - (double)d * u)};
    /* parts of whole tiles, each worth some 64k scores */
    int parts = pool_parts(b * n, 1 << 16);
    int64_t tiles = (b + RANK_QB - 1) / RANK_QB;
    if (parts > tiles) parts = (int)tiles;
    int blas = openblas_get_num_threads();
    if (parts > 1) openblas_set_num_threads(1);
    pool_run(rank_part, &job, parts);
    if (parts > 1) openblas_set_num_threads(blas);
}

/* a ranks before b: a higher key, or an equal key and a lower index. NaN ranks
 * below everything (its key is -inf and it loses ties to a real -inf). */
static int ranks_before(float sa, int32_t ia, float sb, int32_t ib)
{
    float ka = sa != sa ? -INFINITY : sa, kb = sb != sb ? -INFINITY : sb;
    if (ka != kb) return ka > kb;
    if ((sa != sa) != (sb != sb)) return sb != sb;
    return ia < ib;
}

/* A row's best so far, as a heap whose root is its worst entry (every parent
 * ranks after its children), so a new score is tested against the root alone.
 * Puts (s, i) at slot p of a heap of `size` and moves it down to its place. */
static void heap_down(float *sc, int32_t *ix, int64_t size, int64_t p, float s, int32_t i)
{
    for (int64_t c = 2 * p + 1; c < size; p = c, c = 2 * p + 1) {
        if (c + 1 < size && ranks_before(sc[c], ix[c], sc[c + 1], ix[c + 1])) c++;
        if (!ranks_before(s, i, sc[c], ix[c])) break;
        sc[p] = sc[c];
        ix[p] = ix[c];
    }
    sc[p] = s;
    ix[p] = i;
}

static void top_k_row(const float *row, int64_t n, int64_t k, int32_t *ix, float *sc)
{
    int64_t have = 0;
    for (int64_t j = 0; j < n; j++) {
        float s = row[j];
        if (have == k) {
            if (ranks_before(s, (int32_t)j, sc[0], ix[0])) heap_down(sc, ix, k, 0, s, (int32_t)j);
            continue;
        }
        int64_t p = have++; /* the new leaf, moved up past better parents */
        while (p > 0) {
            int64_t up = (p - 1) / 2;
            if (!ranks_before(sc[up], ix[up], s, (int32_t)j)) break;
            sc[p] = sc[up];
            ix[p] = ix[up];
            p = up;
        }
        sc[p] = s;
        ix[p] = (int32_t)j;
    }
    /* the worst to the end, one at a time: best first */
    for (int64_t end = have - 1; end > 0; end--) {
        float s = sc[end];
        int32_t i = ix[end];
        sc[end] = sc[0];
        ix[end] = ix[0];
        heap_down(sc, ix, end, 0, s, i);
    }
}

typedef struct {
    const float *scores;
    int32_t *index;
    float *best;
    int64_t b, n, k;
} TopKJob;

static void top_k_part(void *ctx, int part, int parts)
{
    const TopKJob *job = ctx;
    int64_t lo, hi;
    pool_rows(job->b, 1, part, parts, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const float *row = job->scores + i * job->n;
        int32_t *ix = job->index + i * job->k;
        float *sc = job->best + i * job->k;
        top_k_row(row, job->n, job->k, ix, sc);
    }
}

/* top_k(scores) -> the K highest of each row, descending, ties to the lower
 * index. Each row keeps its best K so far in a heap in the output itself, then
 * sorts them: O(N log K) whatever the scores' order (keeping them sorted by
 * insertion took 21.9 s against 1.4 s for 256 x 100k ascending scores at
 * K = 1000, and no less at K = 10). Rows are split into parts on the pool. */
void kernel_top_k(const KernelCall *call)
{
    TopKJob job = {call->in[0],
                   call->out[0],
                   call->out[1],
                   call->in_shape[0].rows,
                   call->in_shape[0].cols,
                   call->out_shape[0].cols};
    if (job.k <= 0 || job.b <= 0) return;
    int parts = pool_parts(job.b * job.n, 1 << 16);
    if (parts > job.b) parts = (int)job.b;
    pool_run(top_k_part, &job, parts);
}
