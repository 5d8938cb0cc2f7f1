/* Diagnostics (see diag.h). Stage: used by every front-end stage. In: places
 * and messages. Out: text on the reporter's stream, and an error count. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Source lines longer than this are not quoted: a caret under a megabyte of
 * text helps nobody, and the front end rejects such lines anyway. */
enum { MAX_QUOTED_LINE = 4096, MAX_SUGGEST_LEN = 64 };

struct Diag {
    FILE *out;
    char *file;
    const char *text;
    size_t len;
    int errors;
    int dropping; /* the last error was past the limit: drop its notes too */
};

Diag *diag_new(FILE *out)
{
    Diag *d = calloc(1, sizeof(Diag));
    if (!d) return NULL;
    d->out = out;
    return d;
}

void diag_free(Diag *d)
{
    if (!d) return;
    free(d->file);
    free(d);
}

int diag_set_source(Diag *d, const char *file, const char *text, size_t len)
{
    free(d->file);
    d->file = file ? strdup(file) : NULL;
    d->text = text;
    d->len = text ? len : 0;
    return file && !d->file ? -1 : 0;
}

const char *diag_source_line(const Diag *d, int line, size_t *len)
{
    if (!d->text || line < 1) return NULL;
    const char *p = d->text, *end = d->text + d->len;
    for (int i = 1; i < line; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return NULL;
        p = nl + 1;
    }
    if (p == end && line > 1 && p[-1] == '\n') {
        /* The place just past a final newline: an empty last line. */
        *len = 0;
        return p;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (n > 0 && p[n - 1] == '\r') n--;
    *len = n;
    return p;
}

/* Prints the quoted line and the caret line under loc. */
static void show_span(Diag *d, Loc loc)
{
    size_t n;
    const char *line = diag_source_line(d, loc.line, &n);
    if (!line || n > MAX_QUOTED_LINE) return;
    fprintf(d->out, "%.*s\n", (int)n, line);
    size_t col = loc.col < 1 ? 0 : (size_t)(loc.col - 1);
    if (col > n) col = n;
    size_t end = loc.end_col < 1 ? 0 : (size_t)(loc.end_col - 1);
    if (end > n) end = n;
    /* Tabs are copied so that the caret lines up whatever the tab width. */
    for (size_t i = 0; i < col; i++) fputc(line[i] == '\t' ? '\t' : ' ', d->out);
    fputc('^', d->out);
    for (size_t i = col + 1; i < end; i++) fputc('~', d->out);
    fputc('\n', d->out);
}

static void report(Diag *d, Loc loc, const char *kind, const char *fmt, va_list ap)
{
    const char *file = d->file ? d->file : "<input>";
    if (loc.line > 0)
        fprintf(d->out, "%s:%d:%d: %s: ", file, loc.line, loc.col, kind);
    else
        fprintf(d->out, "%s: %s: ", file, kind);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    if (loc.line > 0) show_span(d, loc);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...)
{
    d->errors++;
    if (d->errors > DIAG_MAX_ERRORS) {
        if (d->errors == DIAG_MAX_ERRORS + 1)
            fprintf(d->out, "%s: error: too many errors (%d), stopping here\n",
                    d->file ? d->file : "<input>", DIAG_MAX_ERRORS);
        d->dropping = 1;
        return;
    }
    d->dropping = 0;
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "error", fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...)
{
    if (d->dropping) return;
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "note", fmt, ap);
    va_end(ap);
}

int diag_errors(const Diag *d)
{
    return d->errors;
}

int diag_stopped(const Diag *d)
{
    return d->errors > DIAG_MAX_ERRORS;
}

int diag_distance(const char *a, const char *b)
{
    /* Levenshtein with adjacent transpositions ("rl" for "lr" is one typo). */
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX_SUGGEST_LEN || lb > MAX_SUGGEST_LEN) return 1 << 20;
    int rows[3][MAX_SUGGEST_LEN + 1];
    int *older = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int best = sub < del ? sub : del;
            best = best < ins ? best : ins;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                older[j - 2] + 1 < best)
                best = older[j - 2] + 1;
            cur[j] = best;
        }
        int *t = older;
        older = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

int diag_is_close(const char *name, const char *candidate)
{
    size_t n = strlen(name);
    /* One edit for short names, about a third of the name for long ones;
     * never so many that any short name would match. */
    int limit = n <= 3 ? 1 : (int)(n + 2) / 3;
    int dist = diag_distance(name, candidate);
    return dist > 0 && dist <= limit && (size_t)dist < n;
}
