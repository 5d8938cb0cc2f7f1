/* Data loading, records: splits an in-memory text into records and fields, for
 * CSV and TSV (quoted fields with separators, doubled quotes and line breaks
 * inside), and for MovieLens's unquoted '\t', '|' and "::" files. In: a buffer
 * and a separator; out: one record at a time, fields copied into a scratch
 * buffer that grows with the longest record (no fixed line length). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void csv_init(CsvReader *r, const char *buf, size_t len, const char *sep, int quotes)
{
    memset(r, 0, sizeof *r);
    r->buf = buf;
    r->len = len;
    r->line = 1;
    r->sep = sep;
    r->sep_len = strlen(sep);
    r->quotes = quotes;
}

void csv_free(CsvReader *r)
{
    free(r->fields);
    free(r->lens);
    free(r->offs);
    free(r->scratch);
    r->fields = NULL;
    r->lens = r->offs = NULL;
    r->scratch = NULL;
}

/* The end of the line starting at pos: *eol is the '\n' (or len), the return
 * value the end of its content, a final '\r' excluded. */
static size_t line_end(const CsvReader *r, size_t pos, size_t *eol)
{
    const char *nl = memchr(r->buf + pos, '\n', r->len - pos);
    size_t e = nl ? (size_t)(nl - r->buf) : r->len;
    *eol = e;
    if (e > pos && r->buf[e - 1] == '\r') e--;
    return e;
}

static int reserve_scratch(CsvReader *r, size_t need)
{
    if (need <= r->scratch_cap) return 1;
    size_t cap = r->scratch_cap ? r->scratch_cap : 256;
    while (cap < need) cap *= 2;
    char *s = realloc(r->scratch, cap);
    if (!s) return 0;
    r->scratch = s;
    r->scratch_cap = cap;
    return 1;
}

static int add_field(CsvReader *r, size_t off, size_t len)
{
    if (r->n_fields == r->fields_cap) {
        uint32_t cap = r->fields_cap ? 2 * r->fields_cap : 16;
        char **f = realloc(r->fields, cap * sizeof *f);
        if (f) r->fields = f;
        size_t *l = realloc(r->lens, cap * sizeof *l);
        if (l) r->lens = l;
        size_t *o = realloc(r->offs, cap * sizeof *o);
        if (o) r->offs = o;
        if (!f || !l || !o) return 0;
        r->fields_cap = cap;
    }
    r->offs[r->n_fields] = off;
    r->lens[r->n_fields] = len;
    r->n_fields++;
    return 1;
}

static int is_sep(const CsvReader *r, size_t i, size_t end)
{
    return i + r->sep_len <= end && memcmp(r->buf + i, r->sep, r->sep_len) == 0;
}

/* Gives up on a badly quoted record: the reader resumes after its first line. */
static int bad_quote(CsvReader *r, const char *what, size_t first_ce, size_t first_eol)
{
    r->error = what;
    r->rec_end = first_ce;
    r->pos = first_eol < r->len ? first_eol + 1 : r->len;
    r->line = r->rec_line + 1;
    return -1;
}

int csv_next(CsvReader *r)
{
    size_t eol, ce;
    r->n_fields = 0;
    r->error = NULL;
    for (;;) { /* skip blank lines */
        if (r->pos >= r->len) return 0;
        ce = line_end(r, r->pos, &eol);
        if (ce > r->pos) break;
        r->pos = eol < r->len ? eol + 1 : r->len;
        r->line++;
    }
    const size_t first_ce = ce, first_eol = eol;
    r->rec_line = r->line;
    r->rec_start = r->pos;
    /* a field's copy is never longer than its text, and each gains one NUL */
    if (!reserve_scratch(r, ce - r->rec_start + 2)) return -2;
    size_t i = r->pos, out = 0;
    for (;;) {
        size_t start = out;
        if (r->quotes && i < ce && r->buf[i] == '"') {
            i++;
            for (;;) {
                if (i >= ce) {
                    if (eol >= r->len)
                        return bad_quote(r, "a quoted field is not closed", first_ce, first_eol);
                    /* the quoted field goes on over the line break, which it keeps */
                    size_t brk = eol + 1 - ce;
                    memcpy(r->scratch + out, r->buf + ce, brk);
                    out += brk;
                    i = eol + 1;
                    r->line++;
                    ce = line_end(r, i, &eol);
                    if (!reserve_scratch(r, ce - r->rec_start + 2)) return -2;
                    continue;
                }
                char c = r->buf[i];
                if (c == '"') {
                    if (i + 1 < ce && r->buf[i + 1] == '"') {
                        r->scratch[out++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                r->scratch[out++] = c;
                i++;
            }
            if (i < ce && !is_sep(r, i, ce))
                return bad_quote(r, "text after a closing quote", first_ce, first_eol);
        } else {
            size_t j = i;
            for (;;) {
                const char *p = memchr(r->buf + j, r->sep[0], ce - j);
                if (!p) {
                    j = ce;
                    break;
                }
                j = (size_t)(p - r->buf);
                if (is_sep(r, j, ce)) break;
                j++;
            }
            memcpy(r->scratch + out, r->buf + i, j - i);
            out += j - i;
            i = j;
        }
        r->scratch[out++] = '\0';
        if (!add_field(r, start, out - 1 - start)) return -2;
        if (i < ce) {
            i += r->sep_len; /* at a separator; a final one leaves an empty field */
            continue;
        }
        break;
    }
    for (uint32_t f = 0; f < r->n_fields; f++) r->fields[f] = r->scratch + r->offs[f];
    r->rec_end = ce;
    r->pos = eol < r->len ? eol + 1 : r->len;
    r->line++;
    return 1;
}

char *csv_excerpt(const CsvReader *r, char *out, size_t cap)
{
    return text_excerpt(r->buf + r->rec_start, r->rec_end - r->rec_start, out, cap);
}
