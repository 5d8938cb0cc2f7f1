/* Diagnostics (see diag.h). Stage: used by every front-end stage. In: places
 * and messages. Out: text on the reporter's stream, and an error count. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Source lines longer than this are not quoted: a caret under a megabyte of
 * text helps nobody, and the front end rejects such lines anyway. */
enum { MAX_QUOTED_LINE = 4096 };

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
