/* Data loading, text: reads a data file whole into memory as UTF-8 (decoding
 * ISO-8859-1 when the bytes are not UTF-8, as in MovieLens's u.item and
 * movies.dat) and makes printable excerpts of records for error messages. */
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int text_is_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned min;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k) return 0;
        unsigned cp = c & (0x3Fu >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + j] & 0x3Fu);
        }
        /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
        i += k + 1;
    }
    return 1;
}

MtrStatus text_latin1_to_utf8(const char *s, size_t n, char **out, size_t *out_len, MtrError *err)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++) extra += (unsigned char)s[i] >= 0x80;
    char *d = malloc(n + extra + 1);
    if (!d) return mtr_fail(err, MTR_E_NOMEM, "out of memory decoding ISO-8859-1 text");
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            d[j++] = (char)c;
        } else {
            d[j++] = (char)(0xC0 | (c >> 6));
            d[j++] = (char)(0x80 | (c & 0x3F));
        }
    }
    d[j] = '\0';
    *out = d;
    *out_len = j;
    return MTR_OK;
}

static MtrStatus read_all(const char *path, char **buf, size_t *len, MtrError *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mtr_fail(err, MTR_E_DATA, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (!b) {
            fclose(f);
            return mtr_fail(err, MTR_E_NOMEM, "%s: out of memory reading the file", path);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        char *bigger = realloc(b, 2 * cap + 1);
        if (!bigger) free(b);
        b = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return mtr_fail(err, MTR_E_DATA, "%s: cannot read the file", path);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return MTR_OK;
}

MtrStatus text_load(const char *path, char **buf, size_t *len, MtrError *err)
{
    char *b = NULL;
    size_t n = 0;
    MtrStatus st = read_all(path, &b, &n, err);
    if (st) return st;
    if (n == 0) {
        free(b);
        return mtr_fail(err, MTR_E_DATA, "%s: the file is empty", path);
    }
    const char *nul = memchr(b, '\0', n);
    if (nul) {
        uint32_t line = 1;
        for (const char *p = b; p < nul; p++) line += *p == '\n';
        free(b);
        return mtr_fail(err, MTR_E_DATA, "%s:%u: a NUL byte in a text file", path, line);
    }
    if (!text_is_utf8(b, n)) {
        char *d;
        size_t dn;
        st = text_latin1_to_utf8(b, n, &d, &dn, err);
        free(b);
        if (st) return st;
        b = d;
        n = dn;
    } else if (n >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0) {
        memmove(b, b + 3, n - 3 + 1);
        n -= 3;
    }
    *buf = b;
    *len = n;
    return MTR_OK;
}

char *text_excerpt(const char *s, size_t n, char *out, size_t cap)
{
    const size_t limit = 60;
    size_t j = 0;
    if (cap == 0) return out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= limit && (c & 0xC0) != 0x80) {
            if (j + 4 <= cap) {
                memcpy(out + j, "...", 3);
                j += 3;
            }
            break;
        }
        char esc[5];
        size_t k;
        if (c == '\t') {
            k = 2, memcpy(esc, "\\t", 2);
        } else if (c == '\r') {
            k = 2, memcpy(esc, "\\r", 2);
        } else if (c == '\n') {
            k = 2, memcpy(esc, "\\n", 2);
        } else if (c < 0x20 || c == 0x7F) {
            k = 4;
            snprintf(esc, sizeof esc, "\\x%02X", c);
        } else {
            k = 1, esc[0] = (char)c;
        }
        if (j + k + 1 > cap) break;
        memcpy(out + j, esc, k);
        j += k;
    }
    out[j] = '\0';
    return out;
}

/* Parses one value: a finite decimal (or hexadecimal) number that fits a float,
 * spaces around it allowed; returns 0 when it is not one. */
int text_parse_number(const char *s, float *out)
{
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return 0;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s) return 0;
    while (*end == ' ' || *end == '\t') end++;
    if (*end || !isfinite(d) || fabs(d) > FLT_MAX) return 0;
    *out = (float)d;
    return 1;
}

/* The byte after the first newline at or after byte pos of f (size bytes),
 * or size when there is none. */
static MtrStatus next_line(FILE *f, const char *path, uint64_t size, uint64_t pos, uint64_t *out,
                           MtrError *err)
{
    if (fseeko(f, (off_t)pos, SEEK_SET) != 0)
        return mtr_fail(err, MTR_E_DATA, "%s: cannot seek: %s", path, strerror(errno));
    char chunk[4096];
    for (;;) {
        size_t r = fread(chunk, 1, sizeof chunk, f);
        const char *nl = r ? memchr(chunk, '\n', r) : NULL;
        if (nl) return *out = pos + (uint64_t)(nl - chunk) + 1, MTR_OK;
        if (r < sizeof chunk) {
            if (ferror(f)) return mtr_fail(err, MTR_E_DATA, "%s: cannot read the file", path);
            return *out = size, MTR_OK;
        }
        pos += r;
    }
}

/* The start of part k of `parts` of a file of `size` bytes: 0 for the first
 * part, size past the last, else the start of the first line that begins at
 * or after byte k * size / parts (the byte after the first newline at or after
 * the byte before it). Starts never decrease with k, so the parts cut the file
 * into whole lines, each in exactly one part. */
static MtrStatus part_start(FILE *f, const char *path, uint64_t size, int k, int parts,
                            uint64_t *out, MtrError *err)
{
    if (k <= 0) return *out = 0, MTR_OK;
    if (k >= parts) return *out = size, MTR_OK;
    uint64_t p = (uint64_t)parts, q = (uint64_t)k;
    uint64_t off = size / p * q + size % p * q / p; /* floor(size * k / parts), no overflow */
    /* an offset of 0 (a file of fewer bytes than parts) counts as 1, so that
     * the first part always holds the first line (a header) */
    return next_line(f, path, size, off ? off - 1 : 0, out, err);
}

MtrStatus mtr_data_part(const char *path, int part, int parts, uint64_t *lo, uint64_t *hi,
                        MtrError *err)
{
    if (parts < 1 || part < 0 || part >= parts)
        return mtr_fail(err, MTR_E_ARG, "%s: no part %d of %d", path, part, parts);
    FILE *f = fopen(path, "rb");
    if (!f) return mtr_fail(err, MTR_E_DATA, "%s: cannot open: %s", path, strerror(errno));
    MtrStatus st = MTR_OK;
    uint64_t size = 0;
    if (fseeko(f, 0, SEEK_END) != 0 || ftello(f) < 0)
        st = mtr_fail(err, MTR_E_DATA, "%s: cannot seek: %s", path, strerror(errno));
    else
        size = (uint64_t)ftello(f);
    if (!st) st = part_start(f, path, size, part, parts, lo, err);
    if (!st) st = part_start(f, path, size, part + 1, parts, hi, err);
    fclose(f);
    return st;
}

/* Reads bytes [lo, hi) of f into b + n (cap bytes there at least). */
static MtrStatus read_span(FILE *f, const char *path, uint64_t lo, uint64_t hi, char *b,
                           MtrError *err)
{
    if (hi <= lo) return MTR_OK;
    if (fseeko(f, (off_t)lo, SEEK_SET) != 0 || fread(b, 1, (size_t)(hi - lo), f) != hi - lo)
        return mtr_fail(err, MTR_E_DATA, "%s: cannot read the file", path);
    return MTR_OK;
}

MtrStatus text_load_part(const char *path, const MtrDist *d, int header, char **buf, size_t *len,
                         uint32_t *first_line, MtrError *err)
{
    *first_line = 0;
    if (!d || d->size <= 1) return text_load(path, buf, len, err);
    uint64_t lo, hi, head = 0;
    MtrStatus st = mtr_data_part(path, d->rank, d->size, &lo, &hi, err);
    if (st) return st;
    FILE *f = fopen(path, "rb");
    if (!f) return mtr_fail(err, MTR_E_DATA, "%s: cannot open: %s", path, strerror(errno));
    /* a part after the first starts with the file's header line, when it has one */
    if (header && lo > 0 && (st = next_line(f, path, lo, 0, &head, err))) goto out;
    char *b = malloc((size_t)(head + hi - lo) + 1);
    if (!b) {
        st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory reading the file", path);
        goto out;
    }
    if ((st = read_span(f, path, 0, head, b, err)) ||
        (st = read_span(f, path, lo, hi, b + head, err))) {
        free(b);
        goto out;
    }
    size_t n = (size_t)(head + hi - lo);
    b[n] = '\0';
    /* the line of the whole file the part starts on: the newlines of the
     * parts before it, summed (every rank counts its own) */
    uint64_t mine = 0, *all = malloc((size_t)d->size * sizeof *all);
    if (!all) {
        free(b);
        st = mtr_fail(err, MTR_E_NOMEM, "%s: out of memory reading the file", path);
        goto out;
    }
    for (const char *p = b + head; (p = memchr(p, '\n', (size_t)(b + n - p))); p++) mine++;
    d->allgather(d->ctx, &mine, sizeof mine, all);
    uint64_t line = 1;
    for (int r = 0; r < d->rank; r++) line += all[r];
    free(all);
    if (line >= UINT32_MAX) {
        free(b);
        st = mtr_fail(err, MTR_E_DATA, "%s: too many lines", path);
        goto out;
    }
    if (lo > 0) *first_line = (uint32_t)line;
    if (memchr(b, '\0', n)) {
        free(b);
        st = mtr_fail(err, MTR_E_DATA, "%s: a NUL byte in a text file", path);
        goto out;
    }
    if (!text_is_utf8(b, n)) {
        char *dec;
        size_t dn;
        st = text_latin1_to_utf8(b, n, &dec, &dn, err);
        free(b);
        if (st) goto out;
        b = dec;
        n = dn;
    } else if (n >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0) {
        memmove(b, b + 3, n - 3 + 1);
        n -= 3;
    }
    *buf = b;
    *len = n;
out:
    fclose(f);
    return st;
}
