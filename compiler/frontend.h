/* The front end in one call: a .mtr file in, a checked AstModel out. */
#ifndef MTR_FRONTEND_H
#define MTR_FRONTEND_H

#include "ast.h"
#include "diag.h"
#include "pool.h"

#include <stddef.h>

/* Longest accepted source line, in bytes (without its newline). */
#define FRONTEND_MAX_LINE 4096

/* Reads the file at path, parses and checks it. Returns the checked model
 * (in pool, freed with it), or NULL after reporting every error through diag
 * (which must not have been used for another file): a file that cannot be
 * read, a directory, an empty file, a NUL byte, a line longer than
 * FRONTEND_MAX_LINE, syntax and semantic errors. Sema runs only when the
 * file parsed cleanly, so one mistake does not cascade. */
AstModel *frontend_load(const char *path, Pool *pool, Diag *diag);

/* The same on text already in memory (len bytes, kept alive by the caller
 * while diag may print); name is what messages call the file. */
AstModel *frontend_parse(const char *name, const char *text, size_t len, Pool *pool, Diag *diag);

#endif
