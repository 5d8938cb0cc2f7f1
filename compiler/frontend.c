/* The front end (see frontend.h). Stage: the first three together. In: a path
 * or a text. Out: a checked AstModel, or errors. Checks on the raw bytes
 * come first so that the lexer only ever sees text it can handle. */
#include "frontend.h"

#include "parser.h"
#include "sema.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* Files larger than this are surely not models. */
#define MAX_FILE_SIZE (64L * 1024 * 1024)

static const Loc NO_LOC = {0, 0, 0};

/* Reports the first NUL byte and the first over-long line. Returns 0 when the
 * text is fit for the lexer. */
static int check_bytes(const char *text, size_t len, Diag *diag)
{
    int bad = 0;
    int line = 1, nul_seen = 0, long_seen = 0;
    size_t line_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') {
            size_t n = i - line_start;
            if (n > FRONTEND_MAX_LINE && !long_seen) {
                Loc loc = {line, FRONTEND_MAX_LINE + 1, FRONTEND_MAX_LINE + 2};
                diag_error(diag, loc, "line %d is %zu bytes long (at most %d)", line, n,
                           FRONTEND_MAX_LINE);
                long_seen = bad = 1;
            }
            line++;
            line_start = i + 1;
        } else if (text[i] == '\0' && !nul_seen) {
            size_t col = i - line_start + 1;
            Loc loc = {line, col > FRONTEND_MAX_LINE ? 1 : (int)col,
                       col > FRONTEND_MAX_LINE ? 2 : (int)col + 1};
            diag_error(diag, loc, "the file contains a NUL byte (is it a text file?)");
            nul_seen = bad = 1;
        }
    }
    return bad;
}

AstModel *frontend_parse(const char *name, const char *text, size_t len, Pool *pool, Diag *diag)
{
    if (diag_set_source(diag, name, text, len) != 0) {
        diag_error(diag, NO_LOC, "out of memory");
        return NULL;
    }
    if (len == 0) {
        diag_error(diag, NO_LOC, "the file is empty (a model starts with 'model NAME')");
        return NULL;
    }
    if (len > (size_t)MAX_FILE_SIZE) {
        diag_error(diag, NO_LOC, "the file is too large (%zu bytes)", len);
        return NULL;
    }
    if (check_bytes(text, len, diag)) return NULL;
    AstBuilder b;
    if (ast_builder_init(&b, pool, diag, text, len) < 0) {
        diag_error(diag, NO_LOC, "out of memory");
        return NULL;
    }
    int rc = parser_run(&b);
    if (rc != 0 && diag_errors(diag) == 0) diag_error(diag, NO_LOC, "out of memory");
    if (diag_errors(diag) > 0) return NULL;
    if (sema_check(b.model, pool, diag) > 0 || diag_errors(diag) > 0) return NULL;
    return b.model;
}

AstModel *frontend_load(const char *path, Pool *pool, Diag *diag)
{
    if (diag_set_source(diag, path, NULL, 0) != 0) {
        diag_error(diag, NO_LOC, "out of memory");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error(diag, NO_LOC, "cannot open the file: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        diag_error(diag, NO_LOC, "this is a directory, not a .mtr file");
        fclose(f);
        return NULL;
    }
    /* Read in chunks rather than trusting st_size: pipes and /proc files
     * report 0. */
    size_t cap = st.st_size > 0 && st.st_size < MAX_FILE_SIZE ? (size_t)st.st_size + 1 : 4096;
    char *text = NULL;
    size_t len = 0;
    for (;;) {
        char *bigger = pool_alloc(pool, cap);
        if (!bigger) {
            diag_error(diag, NO_LOC, "out of memory");
            fclose(f);
            return NULL;
        }
        if (len) memcpy(bigger, text, len);
        text = bigger;
        len += fread(text + len, 1, cap - len, f);
        if (len < cap || len > (size_t)MAX_FILE_SIZE) break;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        diag_error(diag, NO_LOC, "cannot read the file");
        return NULL;
    }
    return frontend_parse(path, text, len, pool, diag);
}
