/* Helpers shared by the cmocka tests: temporary folders, files, and running
 * the built programs. */
#ifndef MTR_TESTUTIL_H
#define MTR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

struct MtrModel;

/* The source tree ($MTR_SOURCE_DIR) and the built binaries ($MTR_BIN_DIR). */
const char *tu_source_dir(void);
const char *tu_bin_dir(void);
/* The MovieLens 100K folder named by $MTR_DATA, or NULL when it is not there. */
const char *tu_data_dir(void);

/* Makes a fresh temporary folder (under $TMPDIR or /tmp); returns a malloc'd path. */
char *tu_tmpdir(void);
/* Removes a folder and everything in it. */
void tu_rmtree(const char *path);
/* Joins a folder and a name into a malloc'd path. */
char *tu_path(const char *dir, const char *name);
/* Writes len bytes to path; returns 0 on success. */
int tu_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file into a malloc'd, NUL-terminated buffer; NULL if missing. */
char *tu_read_file(const char *path, size_t *len);
/* Runs a shell command, capturing stdout and stderr together into a malloc'd
 * string (*output, may be NULL); returns the exit status (or -1). */
int tu_run(const char *cmd, char **output);

/* Compiles .mtr text (name used in messages) into a model, errors on stderr;
 * NULL when it does not compile. The caller frees it with mtr_model_free. */
struct MtrModel *tu_compile(const char *name, const char *text);

/* Schedules graph g (of module mod) as the one program of a model, keeping
 * alive the n `outputs`, frees g, takes the model out of mod into *model and
 * returns a session bound with every symbol at 1 (fails the test otherwise).
 * The caller frees both. */
struct MtrSession *tu_one_program(void *mod, void *g, int kind, const int32_t *outputs, unsigned n,
                                  struct MtrModel **model);

/* The INPUT tensor of program p of m fed from `source` (an MtrSource) of `column`, or -1. */
int tu_find_input(const struct MtrModel *m, int p, int source, const char *column);

/* The dense gradient (n_out floats, zeroed first) that a sparse one stands
 * for: rows[k] (width floats) at row ids[k], for the ids before the first -1
 * of n_ids. Returns -1 when an id lies outside the table, else 0. */
int tu_scatter_rows(const float *rows, const int32_t *ids, int64_t n_ids, int64_t width, float *out,
                    int64_t n_out);

#endif
