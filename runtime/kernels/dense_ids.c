/* dense_ids and its backward: a dense layer's product for an input that is a
 * function of one id column (an embedding, or layers over one), made once per
 * distinct id of the batch and copied to the id's rows. At MovieLens 100K's
 * batch of 8192 rows there are some 940 users and 1660 titles, so the rating
 * head's first layer costs a fifth of the plain product. In: x (B,D), w (K,H),
 * ids (B); the part of w used is rows first..first+D (iattr0). */
#include "kernels/kern.h"

/* The work's layout, B rows of floats: a (B,D) block for the distinct rows of
 * x, a (B,H) block (the distinct products forward; the summed dy backward), in
 * the backward a second (B,D) block, then four int32 vectors: each row's
 * group, each group's first row, and two for the sort. */
typedef struct {
    float *xd, *p, *dxd;
    int32_t *group, *first_row, *order, *tmp;
    const int32_t *sorted; /* the rows by id (in batch order within an id), after group_ids */
} IdsWork;

static IdsWork ids_work(float *work, int64_t b, int64_t d, int64_t h, int backward)
{
    IdsWork w;
    w.xd = work;
    w.p = w.xd + b * d;
    w.dxd = w.p + b * h;
    int32_t *ints = (int32_t *)(w.dxd + (backward ? b * d : 0));
    w.group = ints;
    w.first_row = ints + b;
    w.order = ints + 2 * b;
    w.tmp = ints + 3 * b;
    w.sorted = w.order;
    return w;
}

/* Groups rows by their id (compared as they are: a function of the id gives
 * equal rows for equal ids): group[row] for each row, first_row[g] for each
 * group (its first row in batch order, as the stable sort keeps it). Returns
 * the number of groups. O(B) per 8-bit pass, as many passes as the ids need. */
static int64_t group_ids(const int32_t *ids, int64_t b, IdsWork *w)
{
    uint32_t top = 0;
    for (int64_t i = 0; i < b; i++) top |= (uint32_t)ids[i];
    int32_t *order = w->order, *tmp = w->tmp;
    for (int64_t i = 0; i < b; i++) order[i] = (int32_t)i;
    for (int shift = 0; shift < 32 && (top >> shift) != 0; shift += 8) {
        int64_t count[257] = {0};
        for (int64_t i = 0; i < b; i++) count[(((uint32_t)ids[i] >> shift) & 0xffu) + 1]++;
        for (int k = 0; k < 256; k++) count[k + 1] += count[k];
        for (int64_t i = 0; i < b; i++) {
            int32_t r = order[i];
            tmp[count[((uint32_t)ids[r] >> shift) & 0xffu]++] = r;
        }
        int32_t *t = order;
        order = tmp, tmp = t;
    }
    int64_t g = -1;
    for (int64_t i = 0; i < b; i++) {
        int32_t r = order[i];
        if (g < 0 || ids[r] != ids[w->first_row[g]]) w->first_row[++g] = r;
        w->group[r] = (int32_t)g;
    }
    w->sorted = order;
    return g + 1;
}

/* Whether the distinct ids are few enough for the grouped form to pay. The
 * forward makes n products and copies B rows against B products (which cost
 * several copies each): it pays up to n = B/2. The backward sums dy by group
 * (one pass over it) and makes its two products over n rows, where the plain
 * form's two products each pack all of dy: it pays further, measured up to
 * n = 3B/4 (the users of bench/scale.sh 10m, n = 0.55 B: a third less
 * time). With most ids distinct (uniform ids over a large vocabulary) the
 * kernels fall back to the plain product on every row: the same result up to
 * rounding, and the same bytes at a given thread count. */
static int few_ids(int64_t n, int64_t b)
{
    return 2 * n <= b;
}

static int few_ids_backward(int64_t n, int64_t b)
{
    return 4 * n <= 3 * b;
}

/* Each row gets its id's product: dense_ids, whose inputs are x, w, ids. */
static void copy_products(const KernelCall *call, int64_t lo, int64_t hi)
{
    int64_t b = call->in_shape[0].rows, d = call->in_shape[0].cols, h = call->in_shape[1].cols;
    IdsWork w = ids_work(call->out[1], b, d, h, 0);
    float *y = call->out[0]; /* (B,H) */
    for (int64_t i = lo; i < hi; i++)
        memcpy(y + i * h, w.p + (int64_t)w.group[i] * h, (size_t)h * sizeof *y);
}

/* Each row gets its base row plus its id's product: dense_ids_acc, whose inputs
 * are base, x, w, ids. */
static void add_products(const KernelCall *call, int64_t lo, int64_t hi)
{
    int64_t b = call->in_shape[1].rows, d = call->in_shape[1].cols, h = call->in_shape[2].cols;
    IdsWork w = ids_work(call->out[1], b, d, h, 0);
    const float *base = call->in[0]; /* (B,H), may be y */
    float *y = call->out[0];         /* (B,H) */
    for (int64_t i = lo; i < hi; i++) {
        const float *p = w.p + (int64_t)w.group[i] * h;
        for (int64_t j = 0; j < h; j++) y[i * h + j] = base[i * h + j] + p[j];
    }
}

/* Each row gets relu(base row + its id's product + b): dense_ids_acc_bias_relu,
 * whose inputs are base, x, w, ids, b; the sums in bias_add's order. Compiled
 * for AVX-512 and AVX2 as well, chosen at load time: the same IEEE operations
 * (nothing contracted), the same bits. */
KERN_CLONES static void add_products_bias_relu(const KernelCall *call, int64_t lo, int64_t hi)
{
    int64_t b = call->in_shape[1].rows, d = call->in_shape[1].cols, h = call->in_shape[2].cols;
    IdsWork w = ids_work(call->out[1], b, d, h, 0);
    const float *base = call->in[0]; /* (B,H), may be y */
    const float *bias = call->in[4]; /* (H) */
    float *y = call->out[0];         /* (B,H) */
    for (int64_t i = lo; i < hi; i++) {
        const float *p = w.p + (int64_t)w.group[i] * h;
        for (int64_t j = 0; j < h; j++) {
            float v = (base[i * h + j] + p[j]) + bias[j];
            y[i * h + j] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* y = relu(y + b) on every row: the plain form's bias and relu after its product. */
static void bias_relu_in_place(const KernelCall *call, int64_t lo, int64_t hi)
{
    const float *bias = call->in[4]; /* (H) */
    float *y = call->out[0];         /* (B,H) */
    int64_t h = call->in_shape[2].cols;
    for (int64_t i = lo; i < hi; i++) {
        for (int64_t j = 0; j < h; j++) {
            float v = y[i * h + j] + bias[j];
            y[i * h + j] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* y (+)= x w[first..first+D): Xd (distinct rows) times that part of w, then
 * each row gets its id's product (added to its base row for dense_ids_acc, and
 * then the bias and relu for dense_ids_acc_bias_relu, when relu is set). */
static void dense_ids_run(const KernelCall *call, int at, int relu)
{
    const float *x = call->in[at];         /* (B,D) */
    const float *wt = call->in[at + 1];    /* (K,H) */
    const int32_t *ids = call->in[at + 2]; /* (B) */
    float *y = call->out[0];               /* (B,H) */
    int64_t b = call->in_shape[at].rows, d = call->in_shape[at].cols,
            h = call->in_shape[at + 1].cols;
    IdsWork w = ids_work(call->out[1], b, d, h, 0);
    if (b == 0 || h == 0) return;
    int64_t n = group_ids(ids, b, &w);
    if (d > 0 && !few_ids(n, b)) {
        if (at && y != call->in[0]) memcpy(y, call->in[0], (size_t)(b * h) * sizeof *y);
        kern_sgemm(0, 0, b, h, d, 1.0f, x, d, wt + (int64_t)call->iattr[0] * h, h, at ? 1.0f : 0.0f,
                   y, h);
        if (relu) kern_rows(call, b, h, 1, bias_relu_in_place);
        return;
    }
    for (int64_t g = 0; g < n; g++)
        memcpy(w.xd + g * d, x + (int64_t)w.first_row[g] * d, (size_t)d * sizeof *x);
    if (d == 0)
        memset(w.p, 0, (size_t)(n * h) * sizeof *w.p);
    else
        kern_sgemm(0, 0, n, h, d, 1.0f, w.xd, d, wt + (int64_t)call->iattr[0] * h, h, 0.0f, w.p, h);
    kern_rows(call, b, h, 1, relu ? add_products_bias_relu : at ? add_products : copy_products);
}

void kernel_dense_ids(const KernelCall *call)
{
    dense_ids_run(call, 0, 0);
}

void kernel_dense_ids_acc(const KernelCall *call)
{
    dense_ids_run(call, 1, 0);
}

void kernel_dense_ids_acc_bias_relu(const KernelCall *call)
{
    dense_ids_run(call, 1, 1);
}

/* The rows of sums that sum_by_group fetches ahead of their turn. */
#define GROUPS_AHEAD 2

/* s[group[r]] = 0 + dy[r] for a group's first row r (first_row), s[group[r]]
 * += dy[r] for the others, in batch order: the sums a cleared s gave (0 + x
 * makes -0 into +0 as they did), without the pass that cleared it. dy streams
 * through once while the sums (n rows of H, a few hundred KiB at the
 * tutorial's sizes) stay in cache. With most ids distinct (4.5 MiB of sums at
 * 10M rows) they do not, and the sum row GROUPS_AHEAD rows later is fetched
 * meanwhile: a fifth less time (0.85 against 1.1 ms, 8192 x 256 into 4470
 * groups). Compiled for AVX-512 and AVX2 as well, chosen at load time: the
 * same float additions in the same order, the same bits. */
KERN_CLONES static void sum_by_group(const float *dy, const int32_t *group,
                                     const int32_t *first_row, int64_t b, int64_t h, float *s)
{
    for (int64_t r = 0; r < b; r++) {
        if (r + GROUPS_AHEAD < b) {
            const float *ahead = s + (int64_t)group[r + GROUPS_AHEAD] * h;
            for (int64_t j = 0; j < h; j += 16) __builtin_prefetch(ahead + j, 1);
        }
        int32_t g = group[r];
        float *sg = s + (int64_t)g * h;
        const float *src = dy + r * h;
        if (first_row[g] == r)
            for (int64_t j = 0; j < h; j++) sg[j] = 0.0f + src[j];
        else
            for (int64_t j = 0; j < h; j++) sg[j] += src[j];
    }
}

/* S = dy summed by id (in batch order, from zero), then dw's part = Xd^T S and
 * dXd = S w_part^T, which goes to each group's first row. */
void kernel_dense_ids_grad(const KernelCall *call)
{
    const float *dy = call->in[0];    /* (B,H) */
    const float *x = call->in[1];     /* (B,D) */
    const float *wt = call->in[2];    /* (K,H) */
    const int32_t *ids = call->in[3]; /* (B) */
    float *dx = call->out[0];         /* (B,D) */
    float *dw = call->out[1];         /* (K,H) */
    int64_t b = call->in_shape[1].rows, d = call->in_shape[1].cols, h = call->in_shape[2].cols;
    int64_t k = call->in_shape[2].rows, first = call->iattr[0];
    IdsWork w = ids_work(call->out[2], b, d, h, 1);
    memset(dx, 0, (size_t)(b * d) * sizeof *dx);
    memset(dw, 0, (size_t)(k * h) * sizeof *dw);
    if (b == 0 || h == 0 || d == 0) return;
    int64_t n = group_ids(ids, b, &w);
    if (!few_ids_backward(n, b)) {
        kern_sgemm(1, 0, d, h, b, 1.0f, x, d, dy, h, 0.0f, dw + first * h, h);
        kern_sgemm(0, 1, b, d, h, 1.0f, dy, h, wt + first * h, h, 0.0f, dx, d);
        return;
    }
    sum_by_group(dy, w.group, w.first_row, b, h, w.p);
    for (int64_t g = 0; g < n; g++)
        memcpy(w.xd + g * d, x + (int64_t)w.first_row[g] * d, (size_t)d * sizeof *x);
    kern_sgemm(1, 0, d, h, n, 1.0f, w.xd, d, w.p, h, 0.0f, dw + first * h, h);
    kern_sgemm(0, 1, n, d, h, 1.0f, w.p, h, wt + first * h, h, 0.0f, w.dxd, d);
    for (int64_t g = 0; g < n; g++)
        memcpy(dx + (int64_t)w.first_row[g] * d, w.dxd + g * d, (size_t)d * sizeof *dx);
}
