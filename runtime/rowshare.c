/* Rows that stay on their rank: see rowshare.h. */
#include "rowshare.h"

#include "data/internal.h"

#include <stdlib.h>
#include <string.h>

struct RowShare {
    const MtrDist *d;
    uint64_t *offsets; /* size + 1: rank r holds global ids [offsets[r], offsets[r + 1]) */
    int64_t *counts;   /* size * size: counts[q * size + r], rows rank q wants from rank r */
    size_t *send, *recv;
    uint64_t *sums; /* ROWSHARE_SUMS from each rank */
    double sent;
};

/* Counters rowshare_sum adds up at a time. */
#define ROWSHARE_SUMS 4

MtrStatus rowshare_new(const MtrDist *d, uint64_t n_local, uint64_t *totals, int n_totals,
                       RowShare **out, MtrError *err)
{
    *out = NULL;
    int n = d->size, k = 1 + n_totals;
    RowShare *rs = calloc(1, sizeof *rs);
    uint64_t *mine = calloc((size_t)k, sizeof *mine), *all = calloc((size_t)(k * n), sizeof *all);
    if (rs) {
        rs->d = d;
        rs->offsets = calloc((size_t)n + 1, sizeof *rs->offsets);
        rs->counts = calloc((size_t)n * (size_t)n, sizeof *rs->counts);
        rs->send = calloc((size_t)n, sizeof *rs->send);
        rs->recv = calloc((size_t)n, sizeof *rs->recv);
        rs->sums = calloc((size_t)n * ROWSHARE_SUMS, sizeof *rs->sums);
    }
    if (!rs || !mine || !all || !rs->offsets || !rs->counts || !rs->send || !rs->recv ||
        !rs->sums) {
        free(mine), free(all);
        rowshare_free(rs);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory sharing the rows among the ranks");
    }
    mine[0] = n_local;
    for (int i = 0; i < n_totals; i++) mine[1 + i] = totals[i];
    d->allgather(d->ctx, mine, (size_t)k * sizeof *mine, all);
    for (int i = 0; i < n_totals; i++) totals[i] = 0;
    for (int r = 0; r < n; r++) {
        rs->offsets[r + 1] = rs->offsets[r] + all[r * k];
        for (int i = 0; i < n_totals; i++) totals[i] += all[r * k + 1 + i];
    }
    free(mine), free(all);
    *out = rs;
    return MTR_OK;
}

void rowshare_free(RowShare *rs)
{
    if (!rs) return;
    free(rs->offsets), free(rs->counts), free(rs->send), free(rs->recv), free(rs->sums);
    free(rs);
}

void rowshare_sum(RowShare *rs, uint64_t *v, int n)
{
    const MtrDist *d = rs->d;
    for (int at = 0; at < n; at += ROWSHARE_SUMS) {
        int k = n - at < ROWSHARE_SUMS ? n - at : ROWSHARE_SUMS;
        d->allgather(d->ctx, v + at, (size_t)k * sizeof *v, rs->sums);
        for (int i = 0; i < k; i++) {
            v[at + i] = 0;
            for (int r = 0; r < d->size; r++) v[at + i] += rs->sums[r * k + i];
        }
    }
}

uint64_t rowshare_rows(const RowShare *rs)
{
    return rs->offsets[rs->d->size];
}

uint64_t rowshare_offset(const RowShare *rs)
{
    return rs->offsets[rs->d->rank];
}

double rowshare_sent(const RowShare *rs)
{
    return rs ? rs->sent : 0.0;
}

/* ---- the summary table */

/* This rank's part of the summary: per column its number of values (u64),
 * then per column and value its rows and training rows (u64 each), then the
 * values, NUL-terminated, then zeros to a multiple of 8 bytes. */
static char *pack_summary(const MtrTable *t, const uint8_t *train, size_t *bytes)
{
    size_t n = (size_t)t->n_columns * 8;
    for (uint32_t c = 0; c < t->n_columns; c++) {
        n += (size_t)t->columns[c].n_values * 16;
        for (uint32_t v = 0; v < t->columns[c].n_values; v++)
            n += strlen(t->columns[c].values[v]) + 1;
    }
    n = (n + 7) / 8 * 8; /* the next rank's part starts aligned for its counts */
    char *b = calloc(n ? n : 1, 1);
    if (!b) return NULL;
    uint64_t *u = (uint64_t *)b;
    for (uint32_t c = 0; c < t->n_columns; c++) *u++ = t->columns[c].n_values;
    for (uint32_t c = 0; c < t->n_columns; c++) {
        const MtrDataColumn *col = &t->columns[c];
        for (uint64_t r = 0; r < t->n_rows; r++) {
            u[2 * (uint64_t)col->codes[r]]++;
            u[2 * (uint64_t)col->codes[r] + 1] += train[r];
        }
        u += 2 * (uint64_t)col->n_values;
    }
    char *s = (char *)u;
    for (uint32_t c = 0; c < t->n_columns; c++)
        for (uint32_t v = 0; v < t->columns[c].n_values; v++) {
            size_t len = strlen(t->columns[c].values[v]) + 1;
            memcpy(s, t->columns[c].values[v], len);
            s += len;
        }
    *bytes = n;
    return b;
}

MtrStatus rowshare_summary(RowShare *rs, const MtrTable *local, const uint32_t *train,
                           uint64_t n_train, MtrTable *out, uint64_t ***train_counts, MtrError *err)
{
    const MtrDist *d = rs->d;
    int n = d->size;
    uint32_t nc = local->n_columns;
    uint64_t lo = rowshare_offset(rs), n_local = local->n_rows;
    memset(out, 0, sizeof *out);
    *train_counts = NULL;
    TableBuilder b;
    memset(&b, 0, sizeof b);
    uint8_t *is_train = calloc(n_local ? n_local : 1, 1);
    size_t *bytes = calloc((size_t)n, sizeof *bytes), mine_bytes = 0;
    uint64_t *sizes = calloc((size_t)n, sizeof *sizes);
    const char **names = calloc(nc ? nc : 1, sizeof *names);
    uint64_t **all = calloc(nc ? nc : 1, sizeof *all), **tr = calloc(nc ? nc : 1, sizeof *tr);
    char *mine = NULL, *every = NULL;
    MtrStatus st = MTR_OK;
    if (!is_train || !bytes || !sizes || !names || !all || !tr) goto nomem;
    for (uint64_t i = 0; i < n_train; i++)
        if (train[i] >= lo && train[i] - lo < n_local) is_train[train[i] - lo] = 1;
    if (!(mine = pack_summary(local, is_train, &mine_bytes))) goto nomem;
    uint64_t mb = mine_bytes, total = 0;
    d->allgather(d->ctx, &mb, sizeof mb, sizes);
    for (int r = 0; r < n; r++) bytes[r] = (size_t)sizes[r], total += sizes[r];
    if (!(every = malloc(total ? total : 1))) goto nomem;
    d->allgatherv(d->ctx, mine, bytes, every);
    for (int r = 0; r < n; r++)
        if (r != d->rank) rs->sent += (double)mine_bytes;
    /* room for every rank's values of each column */
    for (uint32_t c = 0; c < nc; c++) {
        uint64_t most = 0;
        const char *p = every;
        for (int r = 0; r < n; p += bytes[r], r++) most += ((const uint64_t *)p)[c];
        if (!(all[c] = calloc(most + 1, sizeof *all[c])) || !(tr[c] = calloc(most + 1, 8)))
            goto nomem;
        names[c] = local->columns[c].name;
    }
    if ((st = table_begin(&b, local->path, nc, names, err))) goto done;
    /* every rank's values in rank order, each in its first-seen order: the
     * first-seen order of the whole file */
    const char *p = every;
    for (int r = 0; r < n; p += bytes[r], r++) {
        const uint64_t *nv = (const uint64_t *)p, *cnt = nv + nc;
        const char *s = p + 8 * (size_t)nc;
        for (uint32_t c = 0; c < nc; c++) s += 16 * (size_t)nv[c];
        for (uint32_t c = 0; c < nc; c++) {
            for (uint64_t v = 0; v < nv[c]; v++) {
                size_t len = strlen(s);
                uint32_t code;
                if ((st = table_intern(&b, c, s, len, &code, err))) goto done;
                all[c][code] += cnt[2 * v];
                tr[c][code] += cnt[2 * v + 1];
                s += len + 1;
            }
            cnt += 2 * nv[c];
        }
    }
    table_finish(&b, out);
    out->counts = all;
    all = NULL;
    *train_counts = tr;
    tr = NULL;
    goto done;
nomem:
    st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory merging the ranks' values",
                  local->path ? local->path : "the interactions");
done:
    if (st) table_abort(&b);
    for (uint32_t c = 0; c < nc; c++) {
        if (all) free(all[c]);
        if (tr) free(tr[c]);
    }
    free(all), free(tr), free(is_train), free(bytes), free(sizes), free(names), free(mine);
    free(every);
    return st;
}

/* ---- fetching encoded rows */

/* The arrays of an encoded row, in a fixed order: every column's ids (its
 * width), numbers, item rows and logq, where local has them; 4 bytes each. */
typedef struct {
    void **src, **dst; /* local's array, out's */
    size_t width;
} Part;

static int parts_of(const MtrModel *m, const Encoded *local, Encoded *out, Part *parts)
{
    int n = 0;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        size_t w = bind_column_width(&m->columns[c]);
        if (local->ids && local->ids[c])
            parts[n++] = (Part){(void **)&local->ids[c], (void **)&out->ids[c], w};
        if (local->nums && local->nums[c])
            parts[n++] = (Part){(void **)&local->nums[c], (void **)&out->nums[c], 1};
        if (local->true_row && local->true_row[c])
            parts[n++] = (Part){(void **)&local->true_row[c], (void **)&out->true_row[c], 1};
        if (local->logq && local->logq[c])
            parts[n++] = (Part){(void **)&local->logq[c], (void **)&out->logq[c], 1};
    }
    return n;
}

/* Fills every part's dst (room for n rows, allocated) with the rows of
 * global ids want[0..n) from the ranks that hold them (their parts' src,
 * n_local rows). A collective. */
static MtrStatus fetch(RowShare *rs, const Part *parts, int np, uint64_t n_local,
                       const uint32_t *want, int64_t n, MtrError *err)
{
    const MtrDist *d = rs->d;
    int size = d->size, me = d->rank;
    uint64_t lo = rowshare_offset(rs);
    size_t nrows = (size_t)(n > 0 ? n : 1);
    int64_t *mine = calloc((size_t)size, sizeof *mine), *at = calloc((size_t)size, sizeof *at);
    uint32_t *grp = malloc(nrows * sizeof *grp), *req = malloc(nrows * sizeof *req);
    uint32_t *ids = NULL, *send = NULL, *recv = NULL;
    MtrStatus st = MTR_OK;
    if (!mine || !at || !grp || !req) goto nomem;
    size_t rb = 0; /* 4-byte values a row */
    for (int k = 0; k < np; k++) rb += parts[k].width;
    /* the wanted ids grouped by the rank that holds them, in order within each */
    for (int64_t i = 0; i < n; i++) {
        if (want[i] >= rs->offsets[size]) {
            st = mtr_fail(err, MTR_E_STATE, "row %u is beyond the ranks' %llu rows", want[i],
                          (unsigned long long)rs->offsets[size]);
            goto done;
        }
        int r = 0;
        while (r + 1 < size && want[i] >= rs->offsets[r + 1]) r++;
        mine[r]++;
    }
    for (int r = 1; r < size; r++) at[r] = at[r - 1] + mine[r - 1];
    for (int64_t i = 0; i < n; i++) {
        int r = 0;
        while (r + 1 < size && want[i] >= rs->offsets[r + 1]) r++;
        grp[at[r]] = (uint32_t)i;
        req[at[r]++] = want[i];
    }
    d->allgather(d->ctx, mine, (size_t)size * sizeof *mine, rs->counts);
    int64_t asked = 0; /* rows the others want from this rank */
    for (int q = 0; q < size; q++) asked += rs->counts[q * size + me];
    if (!(ids = malloc((size_t)(asked > 0 ? asked : 1) * sizeof *ids)) ||
        !(send = malloc((size_t)(asked > 0 ? asked : 1) * (rb ? rb : 1) * 4)) ||
        !(recv = malloc(nrows * (rb ? rb : 1) * 4)))
        goto nomem;
    /* the requests: ids to their holders */
    for (int r = 0; r < size; r++) {
        rs->send[r] = (size_t)mine[r] * 4;
        rs->recv[r] = (size_t)rs->counts[r * size + me] * 4;
        if (r != me) rs->sent += (double)rs->send[r];
    }
    d->alltoallv(d->ctx, req, rs->send, ids, rs->recv);
    /* the rows asked for, packed in the order asked */
    uint32_t *o = send;
    for (int64_t i = 0; i < asked; i++) {
        uint64_t row = ids[i] - lo;
        if (ids[i] < lo || row >= n_local) {
            st = mtr_fail(err, MTR_E_STATE, "row %u was asked of the wrong rank", ids[i]);
            goto done;
        }
        for (int k = 0; k < np; k++) {
            memcpy(o, (const uint32_t *)*parts[k].src + row * parts[k].width, parts[k].width * 4);
            o += parts[k].width;
        }
    }
    for (int r = 0; r < size; r++) {
        rs->send[r] = (size_t)rs->counts[r * size + me] * rb * 4;
        rs->recv[r] = (size_t)mine[r] * rb * 4;
        if (r != me) rs->sent += (double)rs->send[r];
    }
    d->alltoallv(d->ctx, send, rs->send, recv, rs->recv);
    const uint32_t *in = recv;
    for (int64_t i = 0; i < n; i++) {
        size_t row = grp[i];
        for (int k = 0; k < np; k++) {
            memcpy((uint32_t *)*parts[k].dst + row * parts[k].width, in, parts[k].width * 4);
            in += parts[k].width;
        }
    }
    goto done;
nomem:
    st =
        mtr_fail(err, MTR_E_NOMEM, "out of memory fetching %lld rows from the ranks", (long long)n);
done:
    free(mine), free(at), free(grp), free(req), free(ids), free(send), free(recv);
    return st;
}

/* Sets out up as an encoded table of n rows with local's columns (their
 * buffers not yet allocated) and returns its parts, or NULL when out of
 * memory (out then holds what bind_encoded_free frees). */
static Part *encoded_shell(const MtrModel *m, const Encoded *local, uint64_t n, Encoded *out)
{
    size_t cols = m->n_columns + 1;
    memset(out, 0, sizeof *out);
    out->n_rows = n;
    out->oov = local->oov;
    Part *parts = calloc(4 * cols, sizeof *parts);
    out->ids = calloc(cols, sizeof *out->ids);
    out->nums = calloc(cols, sizeof *out->nums);
    out->true_row = calloc(cols, sizeof *out->true_row);
    if (local->logq) out->logq = calloc(cols, sizeof *out->logq);
    if (!parts || !out->ids || !out->nums || !out->true_row || (local->logq && !out->logq)) {
        free(parts);
        return NULL;
    }
    return parts;
}

MtrStatus rowshare_fetch(RowShare *rs, const MtrModel *m, const Encoded *local,
                         const uint32_t *want, int64_t n, Encoded *out, MtrError *err)
{
    size_t nrows = (size_t)(n > 0 ? n : 1);
    Part *parts = encoded_shell(m, local, (uint64_t)n, out);
    MtrStatus st = MTR_OK;
    if (!parts) {
        st = mtr_fail(err, MTR_E_NOMEM, "out of memory fetching %lld rows", (long long)n);
    } else {
        int np = parts_of(m, local, out, parts);
        for (int k = 0; k < np && !st; k++)
            if (!(*parts[k].dst = malloc(nrows * parts[k].width * 4)))
                st = mtr_fail(err, MTR_E_NOMEM, "out of memory fetching %lld rows", (long long)n);
        if (!st) st = fetch(rs, parts, np, local->n_rows, want, n, err);
    }
    if (st) bind_encoded_free(m, out);
    free(parts);
    return st;
}

MtrStatus rowshare_fetch_ids(RowShare *rs, const int32_t *local, uint64_t n_local,
                             const uint32_t *want, int64_t n, int32_t *out, MtrError *err)
{
    void *src = (void *)(uintptr_t)local, *dst = out;
    Part one = {&src, &dst, 1};
    return fetch(rs, &one, 1, n_local, want, n, err);
}

MtrStatus rowshare_gather_all(RowShare *rs, const MtrModel *m, const Encoded *local, Encoded *out,
                              MtrError *err)
{
    const MtrDist *d = rs->d;
    uint64_t n = rowshare_rows(rs);
    Part *parts = encoded_shell(m, local, n, out);
    MtrStatus st = MTR_OK;
    if (!parts) {
        st = mtr_fail(err, MTR_E_NOMEM, "out of memory gathering %llu rows", (unsigned long long)n);
        goto done;
    }
    int np = parts_of(m, local, out, parts);
    for (int k = 0; k < np && !st; k++) {
        size_t w = parts[k].width * 4;
        if (!(*parts[k].dst = malloc((n ? n : 1) * w))) {
            st = mtr_fail(err, MTR_E_NOMEM, "out of memory gathering %llu rows",
                          (unsigned long long)n);
            break;
        }
        for (int r = 0; r < d->size; r++)
            rs->send[r] = (size_t)(rs->offsets[r + 1] - rs->offsets[r]) * w;
        d->allgatherv(d->ctx, *parts[k].src, rs->send, *parts[k].dst);
        rs->sent += (double)rs->send[d->rank] * (d->size - 1);
    }
done:
    if (st) bind_encoded_free(m, out);
    free(parts);
    return st;
}
