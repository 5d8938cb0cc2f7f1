/* Diagnostics: `file:line:col: error: message`, the source line, a caret under
 * the span, and notes that point at related places. Errors are counted; after
 * DIAG_MAX_ERRORS the compiler stops reporting and says so. */
#ifndef MTR_DIAG_H
#define MTR_DIAG_H

#include <stddef.h>
#include "mtr/names.h"

#include <stdio.h>

#define DIAG_MAX_ERRORS 20

/* A span in the source: 1-based line and column of its first character, and
 * of the character just past its end on the same line (end_col). Columns
 * count bytes. A span that runs past its line is underlined to the line's
 * end; line 0 means "no place in the file". */
typedef struct {
    int line, col;
    int end_col;
} Loc;

typedef struct Diag Diag;

/* Returns a reporter that prints to out (e.g. stderr, or a memory stream in
 * tests), or NULL when out of memory. Free it with diag_free. */
Diag *diag_new(FILE *out);

/* Releases the reporter (not its stream). NULL is allowed. */
void diag_free(Diag *d);

/* Names the file being compiled and gives its text, so that messages can
 * quote source lines. The name is copied; the text must stay alive as long
 * as messages may be printed (the front end keeps it in the Pool). text may
 * be NULL when the file could not be read. Returns 0, or -1 when out of
 * memory. */
int diag_set_source(Diag *d, const char *file, const char *text, size_t len);

/* Reports an error at loc (printf-style message, no trailing newline or
 * period). Past DIAG_MAX_ERRORS errors nothing more is printed except, once,
 * a line saying that the compiler stopped. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void diag_error(Diag *d, Loc loc, const char *fmt, ...);

/* Reports a note about the error reported just before (e.g. "first defined
 * here"). Dropped when that error was dropped. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void diag_note(Diag *d, Loc loc, const char *fmt, ...);

/* Errors reported so far (counting those past the limit). */
int diag_errors(const Diag *d);

/* Whether the limit was reached: callers may stop work early. */
int diag_stopped(const Diag *d);

/* The source line `line` (1-based) without its newline: returns its start and
 * stores its length, or returns NULL when there is no such line. */
const char *diag_source_line(const Diag *d, int line, size_t *len);

#endif
