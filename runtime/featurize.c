/* Features: see featurize.h. Each computation goes through a column's distinct
 * values (tables are dictionary-coded), so a title's words are split once
 * however many ratings it has. */
#include "featurize.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the pieces, tested on their own */

static int is_punct(unsigned char c)
{
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t mtr_feature_tokens(const char *s, char *buf, size_t cap, const char **words,
                          size_t max_words)
{
    size_t n = 0, at = 0;
    int in_word = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && cap > 0; p++) {
        if (is_punct(*p)) continue; /* stripped: "don't" is one word, "dont" */
        if (is_space(*p)) {
            if (in_word) buf[at++] = '\0';
            in_word = 0;
            continue;
        }
        if (!in_word) {
            if (n == max_words || at + 2 > cap) break;
            words[n++] = buf + at;
            in_word = 1;
        }
        if (at + 2 > cap) break;
        buf[at++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    }
    if (in_word && at < cap) buf[at++] = '\0';
    if (in_word && at == cap && cap) buf[cap - 1] = '\0';
    return n;
}

size_t mtr_feature_list(const char *s, char *buf, size_t cap, const char **words, size_t max_words)
{
    size_t n = 0, at = 0;
    const char *p = s;
    while (*p && n < max_words) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            if (at + len + 1 > cap) break;
            memcpy(buf + at, p, len);
            buf[at + len] = '\0';
            words[n++] = buf + at;
            at += len + 1;
        }
        if (!end) break;
        p = end + 1;
    }
    return n;
}

uint64_t mtr_feature_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void mtr_feature_quantiles(float *x, size_t n, uint32_t buckets, float *bounds)
{
    qsort(x, n, sizeof *x, cmp_float);
    for (uint32_t k = 1; k < buckets; k++) {
        size_t at = n ? (size_t)((double)k * (double)n / buckets) : 0;
        bounds[k - 1] = n ? x[at < n ? at : n - 1] : 0.0f;
    }
}

int32_t mtr_feature_bucket(const float *bounds, uint32_t n, float x)
{
    uint32_t lo = 0, hi = n; /* the first bound > x */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (bounds[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int32_t)lo + 1;
}

/* ---- splitting a column's values */

typedef struct {
    char buf[4096];
    const char *words[MTR_FEATURE_MAX_LEN];
    size_t n;
} Split;

static void split_value(const MtrColumn *col, const char *v, Split *sp)
{
    if (col->tokens)
        sp->n = mtr_feature_tokens(v, sp->buf, sizeof sp->buf, sp->words, MTR_FEATURE_MAX_LEN);
    else if (col->is_list)
        sp->n = mtr_feature_list(v, sp->buf, sizeof sp->buf, sp->words, MTR_FEATURE_MAX_LEN);
    else {
        sp->words[0] = v;
        sp->n = 1;
    }
}

static const MtrDataColumn *data_column(const MtrModel *m, uint32_t c, const MtrTable *t)
{
    const MtrColumn *col = &m->columns[c];
    if (col->feature_of < 0 || (uint32_t)col->feature_of >= m->n_columns) return NULL;
    return mtr_table_column(t, m->columns[col->feature_of].name);
}

static MtrStatus no_column(const MtrModel *m, uint32_t c, const MtrTable *t, MtrError *err)
{
    const MtrColumn *col = &m->columns[c];
    const char *src = col->feature_of >= 0 && (uint32_t)col->feature_of < m->n_columns
                          ? m->columns[col->feature_of].name
                          : "?";
    return mtr_fail(err, MTR_E_DATA, "%s: no column '%s' (the model's feature '%s' reads it)",
                    t->path ? t->path : "rows", src, col->name);
}

/* Number of rows using each value of dc among rows (every row when NULL). */
static uint64_t *value_counts(const MtrDataColumn *dc, const MtrTable *t, const uint32_t *rows,
                              uint64_t n)
{
    uint64_t *cnt = calloc(dc->n_values + 1, sizeof *cnt);
    if (!cnt) return NULL;
    if (t->counts) { /* a summary table (rowshare.c): the counts of rows held elsewhere */
        memcpy(cnt, t->counts[dc - t->columns], dc->n_values * sizeof *cnt);
        return cnt;
    }
    for (uint64_t i = 0; i < n; i++) cnt[dc->codes[rows ? rows[i] : i]]++;
    return cnt;
}

/* ---- vocabularies and lengths */

typedef struct {
    const char *w;
    uint64_t count;
} Word;

static int cmp_word(const void *a, const void *b)
{
    return strcmp(((const Word *)a)->w, ((const Word *)b)->w);
}

/* Appends the words of every value of dc (weighted by its rows in cnt, or 0)
 * to *all, copying them; updates *max_len. */
static MtrStatus collect(const MtrColumn *col, const MtrDataColumn *dc, const uint64_t *cnt,
                         Word **all, size_t *n, size_t *cap, uint32_t *max_len, MtrError *err)
{
    Split sp;
    for (uint32_t v = 0; v < dc->n_values; v++) {
        split_value(col, dc->values[v], &sp);
        if (sp.n > *max_len) *max_len = (uint32_t)sp.n;
        for (size_t i = 0; i < sp.n; i++) {
            if (*n == *cap) {
                size_t nc = *cap ? 2 * *cap : 1024;
                Word *w = realloc(*all, nc * sizeof *w);
                if (!w) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
                *all = w;
                *cap = nc;
            }
            char *copy = strdup(sp.words[i]);
            if (!copy) return mtr_fail(err, MTR_E_NOMEM, "out of memory");
            (*all)[(*n)++] = (Word){copy, cnt ? cnt[v] : 0};
        }
    }
    return MTR_OK;
}

MtrStatus features_vocab(MtrModel *m, uint32_t c, const MtrDataset *ds, MtrVocab *out,
                         MtrError *err)
{
    MtrColumn *col = &m->columns[c];
    memset(out, 0, sizeof *out);
    out->column = (int32_t)c;
    const MtrDataColumn *a = data_column(m, c, &ds->ratings);
    const MtrDataColumn *b = col->is_item ? data_column(m, c, &ds->items) : NULL;
    if (!a && !b) return no_column(m, c, &ds->ratings, err);
    Word *all = NULL;
    size_t n = 0, cap = 0;
    uint32_t max_len = 1;
    uint64_t *cnt = a ? value_counts(a, &ds->ratings, NULL, ds->ratings.n_rows) : NULL;
    MtrStatus st = a && !cnt ? mtr_fail(err, MTR_E_NOMEM, "out of memory") : MTR_OK;
    if (!st && a) st = collect(col, a, cnt, &all, &n, &cap, &max_len, err);
    if (!st && b) st = collect(col, b, NULL, &all, &n, &cap, &max_len, err);
    free(cnt);
    if (!st) {
        qsort(all, n, sizeof *all, cmp_word);
        /* one word per group of equal ones, kept when seen often enough */
        out->words = calloc(n ? n : 1, sizeof *out->words);
        if (!out->words) st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        uint64_t need = (uint64_t)(col->feature_arg > 0 ? col->feature_arg : 1);
        size_t k = 0;
        for (size_t i = 0; !st && i < n;) {
            size_t j = i;
            uint64_t total = 0;
            for (; j < n && strcmp(all[j].w, all[i].w) == 0; j++) total += all[j].count;
            if (b && total == 0) total = 1; /* an item's own words count once, as one row */
            if (total >= need) {
                out->words[k++] = (char *)all[i].w;
                all[i].w = NULL;
            }
            i = j;
        }
        if (!st) out->n = (uint32_t)k;
    }
    for (size_t i = 0; i < n; i++) free((char *)all[i].w);
    free(all);
    if (!st && col->is_list) col->max_len = max_len > col->max_len ? max_len : col->max_len;
    return st;
}

MtrStatus features_lengths(MtrModel *m, const MtrDataset *ds, MtrError *err)
{
    (void)err;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        MtrColumn *col = &m->columns[c];
        if (!col->feature || !col->is_list || col->lookup) continue;
        uint32_t max_len = 1;
        const MtrTable *ts[2] = {&ds->ratings, &ds->items};
        Split sp;
        for (int k = 0; k < 2; k++) {
            const MtrDataColumn *dc = data_column(m, c, ts[k]);
            for (uint32_t v = 0; dc && v < dc->n_values; v++) {
                split_value(col, dc->values[v], &sp);
                if (sp.n > max_len) max_len = (uint32_t)sp.n;
            }
        }
        col->max_len = max_len;
    }
    return MTR_OK;
}

/* ---- statistics */

/* Parses a feature's number: 1 and *x, 0 for the empty (missing) value, -1
 * when it is not a finite number. */
static int parse_number(const char *s, float *x)
{
    while (is_space((unsigned char)*s)) s++;
    if (!*s) return 0;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    while (is_space((unsigned char)*end)) end++;
    if (*end || errno == ERANGE || !isfinite(d) || fabs(d) > 3.4e38) return -1;
    *x = (float)d;
    return 1;
}

static MtrStatus bad_number(const MtrModel *m, uint32_t c, const MtrTable *t,
                            const MtrDataColumn *dc, uint32_t code, MtrError *err)
{
    uint64_t r = 0;
    while (r < t->n_rows && dc->codes[r] != code) r++;
    const char *src = m->columns[m->columns[c].feature_of].name;
    if (t->lines && r < t->n_rows)
        return mtr_fail(err, MTR_E_DATA, "%s:%u: %s is not a number (found '%.60s')", t->path,
                        t->lines[r], src, dc->values[code]);
    return mtr_fail(err, MTR_E_DATA, "%s: row %llu: %s is not a number (found '%.60s')",
                    t->path ? t->path : "rows", (unsigned long long)r + 1, src, dc->values[code]);
}

MtrStatus features_adapt(MtrModel *m, const MtrTable *t, const uint32_t *rows, uint64_t n,
                         MtrError *err)
{
    if (!rows) n = t->n_rows;
    for (uint32_t c = 0; c < m->n_columns; c++) {
        MtrColumn *col = &m->columns[c];
        if (col->feature != MTR_FEAT_NORMALIZE && col->feature != MTR_FEAT_DISCRETIZE) continue;
        const MtrDataColumn *dc = data_column(m, c, t);
        if (!dc) return no_column(m, c, t, err);
        float *num = malloc((dc->n_values + 1) * sizeof *num);
        signed char *ok = malloc(dc->n_values + 1);
        uint64_t *cnt = value_counts(dc, t, rows, n);
        MtrStatus st = !num || !ok || !cnt ? mtr_fail(err, MTR_E_NOMEM, "out of memory") : MTR_OK;
        for (uint32_t v = 0; !st && v < dc->n_values; v++)
            if ((ok[v] = (signed char)parse_number(dc->values[v], &num[v])) < 0)
                st = bad_number(m, c, t, dc, v, err);
        uint32_t n_stats = col->feature == MTR_FEAT_NORMALIZE ? 2 : (uint32_t)col->feature_arg - 1;
        float *stats = st ? NULL : calloc(n_stats ? n_stats : 1, sizeof *stats);
        if (!st && !stats) st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
        if (!st && col->feature == MTR_FEAT_NORMALIZE) {
            /* mean and (population) variance in double, as Normalization.adapt */
            double sum = 0, sq = 0, k = 0;
            for (uint32_t v = 0; v < dc->n_values; v++)
                if (ok[v] == 1 && cnt[v]) {
                    sum += (double)num[v] * (double)cnt[v];
                    k += (double)cnt[v];
                }
            double mean = k > 0 ? sum / k : 0;
            for (uint32_t v = 0; v < dc->n_values; v++)
                if (ok[v] == 1 && cnt[v]) sq += (num[v] - mean) * (num[v] - mean) * (double)cnt[v];
            stats[0] = (float)mean;
            stats[1] = (float)(k > 0 ? sq / k : 1);
        } else if (!st) {
            uint64_t k = 0;
            for (uint32_t v = 0; v < dc->n_values; v++) k += ok[v] == 1 ? cnt[v] : 0;
            float *x = malloc((k ? k : 1) * sizeof *x);
            if (!x) {
                st = mtr_fail(err, MTR_E_NOMEM, "out of memory");
            } else {
                uint64_t at = 0;
                for (uint32_t v = 0; v < dc->n_values; v++)
                    for (uint64_t j = 0; ok[v] == 1 && j < cnt[v]; j++) x[at++] = num[v];
                mtr_feature_quantiles(x, (size_t)k, (uint32_t)col->feature_arg, stats);
                free(x);
            }
        }
        free(num);
        free(ok);
        free(cnt);
        if (st) {
            free(stats);
            return st;
        }
        free(col->stats);
        col->stats = stats;
        col->n_stats = n_stats;
    }
    return MTR_OK;
}

/* ---- values */

/* The ids of one value into out[0..len), -1 padded. */
static void value_ids(const MtrColumn *col, const MtrVocabIndex *ix, const char *v, int32_t *out,
                      uint32_t len, uint64_t *oov)
{
    Split sp;
    split_value(col, v, &sp);
    uint32_t n = sp.n < len ? (uint32_t)sp.n : len;
    for (uint32_t i = 0; i < n; i++) {
        const char *w = sp.words[i];
        int32_t id;
        if (col->feature == MTR_FEAT_HASH) {
            id = (int32_t)(mtr_feature_hash(w, strlen(w)) % (uint64_t)col->feature_arg);
        } else {
            id = ix ? mtr_vocab_id(ix, w) : 0;
            if (id == 0 && oov) (*oov)++;
        }
        out[i] = id;
    }
    for (uint32_t i = n; i < len; i++) out[i] = -1;
}

MtrStatus features_encode(const MtrModel *m, uint32_t c, const MtrTable *t, const MtrVocabIndex *ix,
                          int32_t *ids, float *nums, uint64_t *oov, MtrError *err)
{
    const MtrColumn *col = &m->columns[c];
    const MtrDataColumn *dc = data_column(m, c, t);
    if (!dc) return no_column(m, c, t, err);
    uint32_t len = col->is_list ? (col->max_len ? col->max_len : 1) : 1;
    int numeric = col->feature == MTR_FEAT_NORMALIZE || col->feature == MTR_FEAT_DISCRETIZE ||
                  col->feature == MTR_FEAT_BUCKETIZE;
    /* each distinct value once, then copied to its rows */
    int32_t *vid = numeric ? NULL : malloc(((size_t)dc->n_values + 1) * len * sizeof *vid);
    float *vnum = numeric ? malloc((dc->n_values + 1) * sizeof *vnum) : NULL;
    uint64_t *cnt = oov ? value_counts(dc, t, NULL, t->n_rows) : NULL;
    if ((numeric ? !vnum : !vid) || (oov && !cnt)) {
        free(vid), free(vnum), free(cnt);
        return mtr_fail(err, MTR_E_NOMEM, "out of memory");
    }
    for (uint32_t v = 0; v < dc->n_values; v++) {
        if (!numeric) {
            uint64_t miss = 0;
            value_ids(col, ix, dc->values[v], vid + (size_t)v * len, len, &miss);
            if (oov) *oov += miss * cnt[v];
            continue;
        }
        float x = 0;
        int got = parse_number(dc->values[v], &x);
        if (got < 0) {
            free(vid), free(vnum), free(cnt);
            return bad_number(m, c, t, dc, v, err);
        }
        if (col->feature == MTR_FEAT_NORMALIZE) {
            float mean = col->n_stats >= 2 ? col->stats[0] : 0;
            float sd = col->n_stats >= 2 ? sqrtf(col->stats[1]) : 1;
            if (sd < 1e-7f) sd = 1e-7f;             /* Keras: max(sqrt(var), epsilon) */
            vnum[v] = got ? (x - mean) / sd : 0.0f; /* missing: the mean */
        } else {
            vnum[v] = got ? (float)mtr_feature_bucket(col->stats, col->n_stats, x) : 0.0f;
        }
    }
    for (uint64_t r = 0; r < t->n_rows; r++) {
        uint32_t v = dc->codes[r];
        if (col->feature == MTR_FEAT_NORMALIZE)
            nums[r] = vnum[v];
        else if (numeric)
            ids[r] = (int32_t)vnum[v];
        else
            memcpy(ids + r * len, vid + (size_t)v * len, len * sizeof *ids);
    }
    free(vid), free(vnum), free(cnt);
    return MTR_OK;
}

MtrStatus features_items(MtrModel *m, const MtrTable *items, MtrError *err)
{
    for (uint32_t c = 0; c < m->n_columns; c++) {
        MtrColumn *col = &m->columns[c];
        free(col->item_lists);
        col->item_lists = NULL;
        col->n_item_lists = 0;
        if (!col->feature || !col->is_list || !col->is_item) continue;
        uint32_t len = col->max_len ? col->max_len : 1;
        size_t n = items->n_rows ? items->n_rows : 1;
        if (!(col->item_lists = malloc(n * len * sizeof *col->item_lists)))
            return mtr_fail(err, MTR_E_NOMEM, "out of memory");
        col->n_item_lists = (uint32_t)items->n_rows;
        MtrVocabIndex *ix = NULL;
        const MtrVocab *voc = NULL;
        for (uint32_t v = 0; v < m->n_vocabs; v++)
            if (m->vocabs[v].column == (int32_t)c) voc = &m->vocabs[v];
        MtrStatus st = voc ? mtr_vocab_index_new(voc, &ix, err) : MTR_OK;
        if (!st) st = features_encode(m, c, items, ix, col->item_lists, NULL, NULL, err);
        mtr_vocab_index_free(ix);
        if (st) return st;
    }
    return MTR_OK;
}
