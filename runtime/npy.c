/* Export and import (runtime stage: after training). In: a trained MtrModel and
 * a folder. Out: the folder's .npy tensors and text vocabularies (export), or
 * the model's parameters replaced by them (import); npy.h lists the files.
 * Every byte read is validated here, at the edge: magic, version, the header
 * dictionary, the shape against the model, and the data length. */
#include "mtr/npy.h"
#include "mtr/save.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
#define NPY_ALIGN      64
#define NPY_MAX_HEADER (1u << 20) /* far beyond any real header; bounds a hostile one */
#define NPY_MAX_DIM    ((int64_t)1 << 40)

/* ---- small helpers */

static char *path_join(const char *dir, const char *stem, const char *ext)
{
    size_t n = strlen(dir) + strlen(stem) + strlen(ext) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", dir, stem, ext);
    return p;
}

static void shape_text(char out[64], int rank, const int64_t *shape)
{
    if (rank == 0)
        snprintf(out, 64, "()");
    else if (rank == 1)
        snprintf(out, 64, "(%lld,)", (long long)shape[0]);
    else
        snprintf(out, 64, "(%lld, %lld)", (long long)shape[0], (long long)shape[1]);
}

size_t mtr_npy_file_stem(char *buf, size_t cap, const char *name)
{
    size_t n = strlen(name);
    size_t need = n > 0 ? n : 1;
    for (size_t i = 0; i < need && i + 1 < cap; i++) {
        char c = n > 0 ? name[i] : '_';
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || (c == '.' && i > 0);
        buf[i] = ok ? c : '_';
    }
    if (cap > 0) buf[need < cap ? need : cap - 1] = '\0';
    return need;
}

/* The stem of name in a fresh malloc'd string, or NULL when out of memory. */
static char *stem_dup(const char *name)
{
    size_t n = mtr_npy_file_stem(NULL, 0, name);
    char *s = malloc(n + 1);
    if (s) mtr_npy_file_stem(s, n + 1, name);
    return s;
}

/* dir/vocab.<column stem>.txt, malloc'd, or NULL when out of memory. */
static char *vocab_path(const char *dir, const char *column)
{
    char *stem = stem_dup(column);
    if (!stem) return NULL;
    size_t n = strlen(dir) + strlen(stem) + sizeof "/vocab..txt";
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/vocab.%s.txt", dir, stem);
    free(stem);
    return p;
}

static int saved_role(const MtrTensor *t)
{
    return t->role == MTR_ROLE_PARAM || t->role == MTR_ROLE_OPTSTATE;
}

/* The shape of tensor t with m's symbols bound. */
static MtrStatus bound_shape(const MtrModel *m, const MtrTensor *t, int64_t shape[MTR_MAX_RANK],
                             MtrError *err)
{
    if (t->rank > MTR_MAX_RANK)
        return mtr_fail(err, MTR_E_FORMAT, "tensor '%s' has rank %d", t->name, t->rank);
    for (int d = 0; d < t->rank; d++) {
        int64_t v = 1;
        if (t->dim[d].sym >= 0) {
            if ((uint32_t)t->dim[d].sym >= m->n_symbols)
                return mtr_fail(err, MTR_E_FORMAT, "tensor '%s' names symbol %d of %u", t->name,
                                t->dim[d].sym, m->n_symbols);
            v = m->symbol_values[t->dim[d].sym];
        }
        if (v < 0 || t->dim[d].k < 0 || (v > 0 && t->dim[d].k > NPY_MAX_DIM / v))
            return mtr_fail(err, MTR_E_SHAPE, "tensor '%s' has a bad bound extent", t->name);
        shape[d] = v * t->dim[d].k;
    }
    return MTR_OK;
}

/* Refuses two saved tensors, or two vocabulary columns, whose names map to one file. */
static MtrStatus check_stems(const MtrModel *m, MtrError *err)
{
    char a[256], b[256];
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        if (!saved_role(&m->tensors[i])) continue;
        if (mtr_npy_file_stem(a, sizeof a, m->tensors[i].name) >= sizeof a - 8)
            return mtr_fail(err, MTR_E_ARG, "tensor name '%s' is too long for a file name",
                            m->tensors[i].name);
        for (uint32_t j = i + 1; j < m->n_tensors; j++) {
            if (!saved_role(&m->tensors[j])) continue;
            mtr_npy_file_stem(b, sizeof b, m->tensors[j].name);
            if (strcmp(a, b) == 0)
                return mtr_fail(err, MTR_E_ARG, "tensors '%s' and '%s' would both be %s.npy",
                                m->tensors[i].name, m->tensors[j].name, a);
        }
    }
    for (uint32_t i = 0; i < m->n_vocabs; i++) {
        int32_t ci = m->vocabs[i].column;
        if (ci < 0 || (uint32_t)ci >= m->n_columns)
            return mtr_fail(err, MTR_E_FORMAT, "vocabulary %u names column %d of %u", i, ci,
                            m->n_columns);
        if (mtr_npy_file_stem(a, sizeof a, m->columns[ci].name) >= sizeof a - 16)
            return mtr_fail(err, MTR_E_ARG, "column name '%s' is too long for a file name",
                            m->columns[ci].name);
        for (uint32_t j = i + 1; j < m->n_vocabs; j++) {
            int32_t cj = m->vocabs[j].column;
            if (cj < 0 || (uint32_t)cj >= m->n_columns) continue; /* reported in its turn */
            mtr_npy_file_stem(b, sizeof b, m->columns[cj].name);
            if (strcmp(a, b) == 0)
                return mtr_fail(err, MTR_E_ARG, "columns '%s' and '%s' would both be vocab.%s.txt",
                                m->columns[ci].name, m->columns[cj].name, a);
        }
    }
    return MTR_OK;
}

/* ---- writing */

static void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* A file written through mtr/save.h: complete and in place, or not at all. */
typedef struct {
    MtrSave save;
    FILE *f;
} AtomicFile;

static MtrStatus atomic_open(AtomicFile *a, const char *path, MtrError *err)
{
    memset(a, 0, sizeof *a);
    MtrStatus st = mtr_save_begin(&a->save, path, err);
    if (st != MTR_OK) return st;
    if (!(a->f = mtr_save_stream(&a->save, err))) {
        mtr_save_abort(&a->save);
        return MTR_E_NOMEM;
    }
    return MTR_OK;
}

/* Puts the file in place when everything was written; otherwise discards it.
 * A write error is reported with its reason by the commit. */
static MtrStatus atomic_close(AtomicFile *a, MtrError *err)
{
    return mtr_save_commit(&a->save, err);
}

/* The .npy header of an array: pre (magic, version, length) and head. */
static MtrStatus npy_header(const char *path, int is_i32, int rank, const int64_t *shape,
                            unsigned char pre[10], char head[256], size_t *hlen, int64_t *count,
                            MtrError *err)
{
    if (rank < 0 || rank > MTR_MAX_RANK)
        return mtr_fail(err, MTR_E_ARG, "%s: rank %d is not supported (0 to %d)", path, rank,
                        MTR_MAX_RANK);
    *count = 1;
    for (int d = 0; d < rank; d++) {
        if (shape[d] < 0 || shape[d] > NPY_MAX_DIM ||
            (shape[d] > 0 && *count > INT64_MAX / 8 / shape[d]))
            return mtr_fail(err, MTR_E_ARG, "%s: extent %lld is out of range", path,
                            (long long)shape[d]);
        *count *= shape[d];
    }
    char sh[64];
    shape_text(sh, rank, shape);
    int n = snprintf(head, 256, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     is_i32 ? "<i4" : "<f4", sh);
    /* Pad with spaces so that magic, version, length and header fill whole
     * 64-byte blocks, the last byte of the header being '\n'. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (NPY_ALIGN - total % NPY_ALIGN) % NPY_ALIGN;
    *hlen = (size_t)n + pad + 1;
    memset(head + n, ' ', pad);
    head[*hlen - 1] = '\n';

    memcpy(pre, NPY_MAGIC, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)*hlen;
    pre[9] = (unsigned char)(*hlen >> 8);
    return MTR_OK;
}

/* Opens path's new content and writes the array (4-byte elements, float or
 * int32 bits) into it; the caller commits or aborts, so that several files
 * can be put in place together. */
static MtrStatus npy_put(AtomicFile *af, const char *path, const void *data, int is_i32, int rank,
                         const int64_t *shape, MtrError *err)
{
    unsigned char pre[10];
    char head[256];
    size_t hlen = 0;
    int64_t count = 0;
    MtrStatus st = npy_header(path, is_i32, rank, shape, pre, head, &hlen, &count, err);
    if (st != MTR_OK || (st = atomic_open(af, path, err)) != MTR_OK) return st;
    int bad = fwrite(pre, 1, sizeof pre, af->f) != sizeof pre;
    bad = bad || fwrite(head, 1, hlen, af->f) != hlen;
    /* Little-endian bytes whatever the host's order, a block at a time. */
    unsigned char block[4096];
    const unsigned char *src = data;
    for (int64_t i = 0; i < count && !bad;) {
        size_t k = 0;
        for (; k < sizeof block / 4 && i < count; k++, i++) {
            uint32_t v;
            memcpy(&v, src + 4 * i, 4);
            put_u32le(block + 4 * k, v);
        }
        bad = fwrite(block, 4, k, af->f) != k;
    }
    (void)bad; /* a failed fwrite leaves the stream's error flag, which the commit reports */
    return MTR_OK;
}

static MtrStatus npy_write_typed(const char *path, const void *data, int is_i32, int rank,
                                 const int64_t *shape, MtrError *err)
{
    AtomicFile af;
    MtrStatus st = npy_put(&af, path, data, is_i32, rank, shape, err);
    return st != MTR_OK ? st : atomic_close(&af, err);
}

MtrStatus mtr_npy_write(const char *path, const float *data, int rank, const int64_t *shape,
                        MtrError *err)
{
    return npy_write_typed(path, data, 0, rank, shape, err);
}

/* As npy_put, for text: one line per entry. */
static MtrStatus lines_put(AtomicFile *af, const char *path, char *const *lines, uint32_t n,
                           MtrError *err)
{
    MtrStatus st = atomic_open(af, path, err);
    if (st != MTR_OK) return st;
    int bad = 0;
    for (uint32_t i = 0; i < n && !bad; i++)
        bad = fputs(lines[i] ? lines[i] : "", af->f) == EOF || fputc('\n', af->f) == EOF;
    (void)bad; /* a failed fwrite leaves the stream's error flag, which the commit reports */
    return MTR_OK;
}

MtrStatus mtr_text_write_lines(const char *path, char *const *lines, uint32_t n, MtrError *err)
{
    AtomicFile af;
    MtrStatus st = lines_put(&af, path, lines, n, err);
    return st != MTR_OK ? st : atomic_close(&af, err);
}

/* ---- reading */

typedef struct {
    const char *p, *end;
} Cursor;

static void skip_ws(Cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int eat(Cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A Python string literal in ' or " quotes, without escapes; copied into out. */
static int parse_str(Cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int parse_word(Cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    const char *after = c->p + n;
    if (after < c->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z')))
        return 0;
    c->p = after;
    return 1;
}

/* A shape tuple: (), (n,), (a, b) or (a, b,); up to one extent beyond
 * MTR_MAX_RANK read so that a file of a higher rank is reported as such.
 * Returns the rank or -1. */
static int parse_shape(Cursor *c, int64_t shape[MTR_MAX_RANK + 1])
{
    if (!eat(c, '(')) return -1;
    int rank = 0;
    for (;;) {
        skip_ws(c);
        if (eat(c, ')')) return rank;
        if (rank == MTR_MAX_RANK + 1 || c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            v = v * 10 + (*c->p++ - '0');
            if (v > NPY_MAX_DIM) return -1;
        }
        shape[rank++] = v;
        if (eat(c, ',')) continue;
        if (eat(c, ')')) return rank == 1 ? -1 : rank; /* (n) is not a tuple */
        return -1;
    }
}

static uint32_t get_le(const unsigned char *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Reads and validates a whole .npy file of 4-byte elements ('<i4' when
 * want_i32, else '<f4'); *data is malloc'd, host order. */
static MtrStatus npy_load(const char *path, int want_i32, void **data, int *rank,
                          int64_t shape[MTR_MAX_RANK], MtrError *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mtr_fail(err, MTR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    MtrStatus st = MTR_OK;
    char *head = NULL;
    unsigned char *raw = NULL;
    struct stat sb;
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, f);
    if (got < 6 || memcmp(pre, NPY_MAGIC, 6) != 0) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    if (got < 10) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    if ((pre[6] != 1 && pre[6] != 2) || pre[7] != 0) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: .npy version %d.%d is not supported (1.0, 2.0)", path,
                      pre[6], pre[7]);
        goto done;
    }
    size_t lenbytes = pre[6] == 1 ? 2 : 4, preamble = 8 + lenbytes;
    if ((lenbytes == 4 && fread(pre + 10, 1, 2, f) != 2)) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    uint32_t hlen = get_le(pre + 8, (int)lenbytes);
    if (hlen == 0 || hlen > NPY_MAX_HEADER) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: header length %u is out of range", path, hlen);
        goto done;
    }
    head = malloc(hlen);
    if (!head) {
        st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory for the header", path);
        goto done;
    }
    if (fread(head, 1, hlen, f) != hlen) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    if (head[hlen - 1] != '\n') {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: the .npy header does not end with a newline", path);
        goto done;
    }

    /* The header: a Python dict literal with exactly descr, fortran_order, shape. */
    Cursor c = {head, head + hlen - 1};
    char key[32], descr[32] = "";
    int have_descr = 0, have_order = 0, have_shape = 0, r = -1;
    int64_t sh[MTR_MAX_RANK + 1] = {0};
    int ok = eat(&c, '{'), closed = 0;
    while (ok && !(closed = eat(&c, '}'))) {
        ok = parse_str(&c, key, sizeof key) && eat(&c, ':');
        if (!ok) break;
        if (strcmp(key, "descr") == 0 && !have_descr) {
            ok = parse_str(&c, descr, sizeof descr);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (parse_word(&c, "True")) {
                st = mtr_fail(err, MTR_E_FORMAT, "%s: fortran_order True is not supported", path);
                goto done;
            }
            ok = parse_word(&c, "False");
            have_order = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            r = parse_shape(&c, sh);
            ok = r >= 0;
            have_shape = 1;
        } else {
            ok = 0;
        }
        if (ok && !eat(&c, ',')) ok = closed = eat(&c, '}');
        if (closed) break;
    }
    while (ok && c.p < c.end && *c.p == ' ') c.p++;
    if (!ok || !closed || c.p != c.end || !have_descr || !have_order || !have_shape) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: malformed .npy header: %.*s", path,
                      (int)(hlen > 200 ? 200 : hlen - 1), head);
        goto done;
    }
    const char *want = want_i32 ? "<i4" : "<f4";
    if (strcmp(descr, want) != 0) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: descr '%s' is not supported (expected '%s')", path,
                      descr, want);
        goto done;
    }
    if (r > MTR_MAX_RANK) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: rank %d is not supported (at most %d)", path, r,
                      MTR_MAX_RANK);
        goto done;
    }

    int64_t count = 1;
    for (int d = 0; d < r; d++) count *= sh[d]; /* each <= 2^40, at most 2 of them */
    if (count > (int64_t)(SIZE_MAX / 4) || count > INT64_MAX / 4) {
        st = mtr_fail(err, MTR_E_FORMAT, "%s: %lld elements are too many", path, (long long)count);
        goto done;
    }
    if (fstat(fileno(f), &sb) != 0) {
        st = mtr_fail(err, MTR_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    int64_t have = (int64_t)sb.st_size - (int64_t)(preamble + hlen), need = count * 4;
    if (have != need) {
        char shs[64];
        shape_text(shs, r, sh);
        st = mtr_fail(
            err, MTR_E_FORMAT, "%s: %s: shape %s needs %lld data bytes, the file has %lld", path,
            have < need ? "truncated" : "trailing bytes", shs, (long long)need, (long long)have);
        goto done;
    }
    raw = malloc(need > 0 ? (size_t)need : 1);
    if (!raw) {
        st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory for %lld elements", path,
                      (long long)count);
        goto done;
    }
    if (fread(raw, 1, (size_t)need, f) != (size_t)need) {
        st = mtr_fail(err, MTR_E_IO, "%s: read failed", path);
        goto done;
    }
    for (int64_t i = 0; i < count; i++) {
        uint32_t v = get_le(raw + 4 * i, 4);
        memcpy(raw + 4 * i, &v, 4);
    }
    *data = raw;
    raw = NULL;
    *rank = r;
    for (int d = 0; d < r; d++) shape[d] = sh[d];
done:
    free(raw);
    free(head);
    fclose(f);
    return st;
}

MtrStatus mtr_npy_read(const char *path, float **data, int *rank, int64_t shape[MTR_MAX_RANK],
                       MtrError *err)
{
    void *p = NULL;
    MtrStatus st = npy_load(path, 0, &p, rank, shape, err);
    if (st == MTR_OK) *data = p;
    return st;
}

/* ---- folders */

/* Creates dir and its parents when missing. */
static MtrStatus make_dirs(const char *dir, MtrError *err)
{
    char *p = strdup(dir);
    if (!p) return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            MtrStatus st = mtr_fail(err, MTR_E_IO, "%s: cannot create: %s", p, strerror(errno));
            free(p);
            return st;
        }
        *s = '/';
    }
    free(p);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return mtr_fail(err, MTR_E_IO, "%s: cannot create: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mtr_fail(err, MTR_E_IO, "%s: not a folder", dir);
    return MTR_OK;
}

static MtrStatus check_text(const char *what, char *const *lines, uint32_t n, MtrError *err)
{
    for (uint32_t i = 0; i < n; i++)
        if (lines[i] && strpbrk(lines[i], "\r\n"))
            return mtr_fail(err, MTR_E_ARG, "%s: entry %u holds a line break; cannot export it",
                            what, i + 1);
    return MTR_OK;
}

static MtrStatus need_trained(const MtrModel *m, const char *doing, MtrError *err)
{
    if (!m->symbol_values)
        return mtr_fail(err, MTR_E_STATE,
                        "%s needs a trained model (one with bound sizes); '%s' has none: train "
                        "it first",
                        doing, m->name ? m->name : "the model");
    return MTR_OK;
}

MtrStatus mtr_export_dir(const MtrModel *m, const char *dir, MtrError *err)
{
    MtrStatus st = need_trained(m, "export", err);
    if (st != MTR_OK) return st;
    if ((st = check_stems(m, err)) != MTR_OK) return st;
    for (uint32_t i = 0; i < m->n_tensors; i++)
        if (saved_role(&m->tensors[i]) && (!m->param_data || !m->param_data[i]))
            return mtr_fail(err, MTR_E_STATE, "export: tensor '%s' has no trained values",
                            m->tensors[i].name);
    for (uint32_t i = 0; i < m->n_vocabs; i++)
        if ((st = check_text(m->columns[m->vocabs[i].column].name, m->vocabs[i].words,
                             m->vocabs[i].n, err)) != MTR_OK)
            return st;
    if ((st = check_text("items", m->items.labels, m->items.n, err)) != MTR_OK) return st;
    if ((st = make_dirs(dir, err)) != MTR_OK) return st;

    /* Every file is written aside first and put in place only when all of
     * them were written, so a failed export leaves the folder as it was. */
    uint32_t cap = m->n_tensors + m->n_vocabs + 1, n_open = 0;
    AtomicFile *files = calloc(cap, sizeof *files);
    if (!files) return mtr_fail(err, MTR_E_NOMEM, "export: out of memory");
    for (uint32_t i = 0; i < m->n_tensors && st == MTR_OK; i++) {
        const MtrTensor *t = &m->tensors[i];
        if (!saved_role(t)) continue;
        int64_t shape[MTR_MAX_RANK];
        if ((st = bound_shape(m, t, shape, err)) != MTR_OK) break;
        char *stem = stem_dup(t->name);
        char *path = stem ? path_join(dir, stem, ".npy") : NULL;
        if (!path)
            st = mtr_fail(err, MTR_E_NOMEM, "export: out of memory");
        else if ((st = npy_put(&files[n_open], path, m->param_data[i], t->dtype == MTR_DT_I32,
                               t->rank, shape, err)) == MTR_OK)
            n_open++;
        free(path);
        free(stem);
    }
    for (uint32_t i = 0; i < m->n_vocabs && st == MTR_OK; i++) {
        char *path = vocab_path(dir, m->columns[m->vocabs[i].column].name);
        if (!path)
            st = mtr_fail(err, MTR_E_NOMEM, "export: out of memory");
        else if ((st = lines_put(&files[n_open], path, m->vocabs[i].words, m->vocabs[i].n, err)) ==
                 MTR_OK)
            n_open++;
        free(path);
    }
    if (st == MTR_OK && m->items.n > 0) {
        char *path = path_join(dir, "items", ".txt");
        if (!path)
            st = mtr_fail(err, MTR_E_NOMEM, "export: out of memory");
        else if ((st = lines_put(&files[n_open], path, m->items.labels, m->items.n, err)) == MTR_OK)
            n_open++;
        free(path);
    }
    /* A commit only does I/O (flush, fsync, link): past here only a failing
     * disk can leave some files new and others old. */
    for (uint32_t i = 0; i < n_open; i++) {
        if (st == MTR_OK)
            st = atomic_close(&files[i], err);
        else
            mtr_save_abort(&files[i].save);
    }
    free(files);
    return st;
}

/* Checks that a text file, if present, holds exactly lines[0..n-1], one a line. */
static MtrStatus check_lines(const char *path, char *const *lines, uint32_t n, MtrError *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return MTR_OK;
        return mtr_fail(err, MTR_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    MtrStatus st = MTR_OK;
    size_t cap = 256, len;
    char *line = malloc(cap);
    uint32_t i = 0;
    int ch = 0;
    while (line && st == MTR_OK) {
        len = 0;
        while ((ch = fgetc(f)) != EOF && ch != '\n') {
            if (len + 1 >= cap) {
                char *bigger = realloc(line, cap * 2);
                if (!bigger) break;
                line = bigger;
                cap *= 2;
            }
            line[len++] = (char)ch;
        }
        if (ch != EOF && ch != '\n') {
            st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory for line %u", path, i + 1);
            break;
        }
        line[len] = '\0';
        if (ch == EOF && len == 0) break;
        if (i >= n)
            st = mtr_fail(err, MTR_E_DATA, "%s:%u: more lines than the model's %u", path, i + 1, n);
        else if (strcmp(line, lines[i] ? lines[i] : "") != 0)
            st = mtr_fail(err, MTR_E_DATA, "%s:%u: '%s' differs from the model's '%s'", path, i + 1,
                          line, lines[i] ? lines[i] : "");
        i++;
        if (ch == EOF) break;
    }
    if (!line)
        st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory", path);
    else if (st == MTR_OK && i < n)
        st = mtr_fail(err, MTR_E_DATA, "%s: %u lines, the model has %u", path, i, n);
    free(line);
    fclose(f);
    return st;
}

MtrStatus mtr_import_dir(MtrModel *m, const char *dir, MtrError *err)
{
    MtrStatus st = need_trained(m, "import", err);
    if (st != MTR_OK) return st;
    if ((st = check_stems(m, err)) != MTR_OK) return st;

    for (uint32_t i = 0; i < m->n_vocabs && st == MTR_OK; i++) {
        char *path = vocab_path(dir, m->columns[m->vocabs[i].column].name);
        if (!path)
            st = mtr_fail(err, MTR_E_NOMEM, "import: out of memory");
        else
            st = check_lines(path, m->vocabs[i].words, m->vocabs[i].n, err);
        free(path);
    }
    if (st == MTR_OK && m->items.n > 0) {
        char *path = path_join(dir, "items", ".txt");
        if (!path)
            st = mtr_fail(err, MTR_E_NOMEM, "import: out of memory");
        else
            st = check_lines(path, m->items.labels, m->items.n, err);
        free(path);
    }
    if (st != MTR_OK) return st;

    /* Read everything aside first; m changes only once all of it is valid. */
    float **fresh = calloc(m->n_tensors ? m->n_tensors : 1, sizeof *fresh);
    float **table = m->param_data;
    if (!fresh) return mtr_fail(err, MTR_E_NOMEM, "import: out of memory");
    if (!table && !(table = calloc(m->n_tensors ? m->n_tensors : 1, sizeof *table))) {
        free(fresh);
        return mtr_fail(err, MTR_E_NOMEM, "import: out of memory");
    }
    for (uint32_t i = 0; i < m->n_tensors && st == MTR_OK; i++) {
        const MtrTensor *t = &m->tensors[i];
        if (!saved_role(t)) continue;
        int64_t want[MTR_MAX_RANK] = {0}, got[MTR_MAX_RANK] = {0};
        int rank = 0;
        void *data = NULL;
        if ((st = bound_shape(m, t, want, err)) != MTR_OK) break;
        char *stem = stem_dup(t->name);
        char *path = stem ? path_join(dir, stem, ".npy") : NULL;
        if (!path)
            st = mtr_fail(err, MTR_E_NOMEM, "import: out of memory");
        else
            st = npy_load(path, t->dtype == MTR_DT_I32, &data, &rank, got, err);
        int same = rank == t->rank;
        for (int d = 0; same && d < rank; d++) same = got[d] == want[d];
        if (st == MTR_OK && !same) {
            char ws[64], gs[64];
            shape_text(ws, t->rank, want);
            shape_text(gs, rank, got);
            st = mtr_fail(err, MTR_E_SHAPE, "%s: shape %s does not match tensor '%s', which is %s",
                          path, gs, t->name, ws);
            free(data);
            data = NULL;
        }
        fresh[i] = data;
        free(path);
        free(stem);
    }
    if (st != MTR_OK) {
        for (uint32_t i = 0; i < m->n_tensors; i++) free(fresh[i]);
        free(fresh);
        if (table != m->param_data) free(table);
        return st;
    }
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        if (!saved_role(&m->tensors[i])) continue;
        free(table[i]);
        table[i] = fresh[i];
    }
    free(fresh);
    m->param_data = table;
    m->trained = 1;
    return MTR_OK;
}
