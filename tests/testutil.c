/* Test helpers: see testutil.h. */
#include "testutil.h"

#include "emit.h"
#include "frontend.h"
#include "schedule.h"

#include "mtr/exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_source_dir(void)
{
    const char *d = getenv("MTR_SOURCE_DIR");
    return d ? d : ".";
}

const char *tu_bin_dir(void)
{
    const char *d = getenv("MTR_BIN_DIR");
    return d ? d : "build/bin";
}

const char *tu_data_dir(void)
{
    static char path[4096];
    const char *d = getenv("MTR_DATA");
    if (!d || !*d) return NULL;
    snprintf(path, sizeof path, "%s/u.data", d);
    return access(path, R_OK) == 0 ? d : NULL;
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/mtr-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) return NULL;
    return strdup(tmpl);
}

void tu_rmtree(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int tu_run(const char *cmd, char **output)
{
    size_t n = strlen(cmd) + 16;
    char *full = malloc(n);
    if (!full) return -1;
    snprintf(full, n, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len, p)) > 0) {
        len += r;
        if (len == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) break;
            buf = bigger;
            cap *= 2;
        }
    }
    int status = pclose(p);
    if (buf) buf[len] = '\0';
    if (output)
        *output = buf;
    else
        free(buf);
    if (status == -1 || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

struct MtrModel *tu_compile(const char *name, const char *text)
{
    Pool *pool = pool_new();
    Diag *diag = diag_new(stderr);
    AstModel *ast = pool && diag ? frontend_parse(name, text, strlen(text), pool, diag) : NULL;
    MtrModel *m = ast ? emit_model(ast, stderr) : NULL;
    diag_free(diag);
    pool_free(pool);
    return m;
}

int tu_find_input(const struct MtrModel *m, int p, int source, const char *column)
{
    const MtrProgram *prog = &m->programs[p];
    int c = mtr_model_find_column(m, column);
    for (uint32_t i = 0; i < prog->n_ops; i++)
        for (int k = 0; k < op_info(prog->ops[i].kind)->n_in; k++) {
            int32_t t = prog->ops[i].in[k];
            if (m->tensors[t].role == MTR_ROLE_INPUT && m->tensors[t].source == source &&
                m->tensors[t].source_column == c)
                return t;
        }
    return -1;
}

struct MtrSession *tu_one_program(void *mod_, void *g_, int kind, const int32_t *outputs,
                                  unsigned n, struct MtrModel **model)
{
    Module *mod = mod_;
    Graph *g = g_;
    MtrProgram prog;
    memset(&prog, 0, sizeof prog);
    if (schedule_program(g, (MtrProgramKind)kind, outputs, n, &prog) != 0) {
        fprintf(stderr, "schedule_program: %s\n", mod->why);
        abort();
    }
    graph_free(g);
    MtrModel *m = module_take(mod);
    if (!m || !(m->programs = calloc(1, sizeof *m->programs))) abort();
    m->programs[0] = prog;
    m->n_programs = 1;
    MtrSession *s = NULL;
    MtrError err = {0};
    int64_t ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1;
    if (m->n_symbols > 64 || mtr_session_new(m, ones, &s, &err) != MTR_OK) {
        fprintf(stderr, "mtr_session_new: %s\n", err.msg);
        abort();
    }
    *model = m;
    return s;
}

int tu_scatter_rows(const float *rows, const int32_t *ids, int64_t n_ids, int64_t width, float *out,
                    int64_t n_out)
{
    memset(out, 0, (size_t)n_out * sizeof *out);
    for (int64_t k = 0; k < n_ids && ids[k] >= 0; k++) {
        if ((int64_t)(ids[k] + 1) * width > n_out) return -1;
        for (int64_t j = 0; j < width; j++) out[ids[k] * width + j] += rows[k * width + j];
    }
    return 0;
}
