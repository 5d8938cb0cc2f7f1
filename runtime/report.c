/* Run reports (runtime stage: train and evaluate, output side). In: losses,
 * metrics, timings. Out: JSON lines, the results table and the progress bar
 * (see report.h). Text is built by pure snprintf-style formatters; the few
 * functions that take a FILE only write what those produce. */
#include "mtr/report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- a bounded text buffer that still counts what did not fit */

typedef struct {
    char *p;
    size_t cap, len; /* len may exceed cap: the length the whole text needs */
} Buf;

static Buf buf_make(char *p, size_t cap)
{
    Buf b = {p, cap, 0};
    if (p && cap > 0) p[0] = '\0';
    return b;
}

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->len < b->cap) {
        size_t room = b->cap - 1 - b->len; /* leave the NUL's byte */
        size_t k = n < room ? n : room;
        memcpy(b->p + b->len, s, k);
        b->p[b->len + k] = '\0';
    }
    b->len += n;
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...)
{
    /* Every format here is a few fields of bounded width (a %.0f of the largest
     * double is 309 digits), so the scratch always holds it: no allocation. */
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t k = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
    buf_put(b, tmp, k);
    b->len += (size_t)n - k;
}

static void buf_pad(Buf *b, char c, size_t n)
{
    for (size_t i = 0; i < n; i++) buf_put(b, &c, 1);
}

/* ---- numbers */

size_t report_format_double(char *buf, size_t cap, double v)
{
    char tmp[40];
    if (!isfinite(v)) {
        snprintf(tmp, sizeof tmp, "null");
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
    }
    Buf b = buf_make(buf, cap);
    buf_put(&b, tmp, strlen(tmp));
    return b.len;
}

size_t report_format_float(char *buf, size_t cap, float v)
{
    char tmp[40];
    if (!isfinite(v)) {
        snprintf(tmp, sizeof tmp, "null");
    } else {
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
            if (strtof(tmp, NULL) == v) break;
        }
    }
    Buf b = buf_make(buf, cap);
    buf_put(&b, tmp, strlen(tmp));
    return b.len;
}

/* ---- JSON lines */

/* The JSON text of byte c inside a string literal; returns its length (<= 6). */
static size_t escape_byte(unsigned char c, char out[8])
{
    switch (c) {
    case '"':
        return (size_t)snprintf(out, 8, "\\\"");
    case '\\':
        return (size_t)snprintf(out, 8, "\\\\");
    case '\b':
        return (size_t)snprintf(out, 8, "\\b");
    case '\f':
        return (size_t)snprintf(out, 8, "\\f");
    case '\n':
        return (size_t)snprintf(out, 8, "\\n");
    case '\r':
        return (size_t)snprintf(out, 8, "\\r");
    case '\t':
        return (size_t)snprintf(out, 8, "\\t");
    default:
        if (c < 0x20) return (size_t)snprintf(out, 8, "\\u%04x", c);
        out[0] = (char)c;
        out[1] = '\0';
        return 1;
    }
}

size_t report_json_quote(char *buf, size_t cap, const char *s)
{
    Buf b = buf_make(buf, cap);
    buf_put(&b, "\"", 1);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        char e[8];
        size_t n = escape_byte(*q, e);
        buf_put(&b, e, n);
    }
    buf_put(&b, "\"", 1);
    return b.len;
}

static void json_write_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        char e[8];
        size_t n = escape_byte(*q, e);
        fwrite(e, 1, n, out);
    }
    fputc('"', out);
}

static void json_key(ReportJson *j, const char *key)
{
    if (j->fields++ > 0) fputc(',', j->out);
    json_write_quoted(j->out, key);
    fputc(':', j->out);
}

void report_json_begin(ReportJson *j, FILE *out, const char *phase)
{
    j->out = out;
    j->fields = 0;
    fputc('{', out);
    if (phase) report_json_str(j, "phase", phase);
}

void report_json_num(ReportJson *j, const char *key, double v)
{
    char tmp[40];
    report_format_double(tmp, sizeof tmp, v);
    json_key(j, key);
    fputs(tmp, j->out);
}

void report_json_f32(ReportJson *j, const char *key, float v)
{
    char tmp[40];
    report_format_float(tmp, sizeof tmp, v);
    json_key(j, key);
    fputs(tmp, j->out);
}

void report_json_int(ReportJson *j, const char *key, int64_t v)
{
    json_key(j, key);
    fprintf(j->out, "%lld", (long long)v);
}

void report_json_str(ReportJson *j, const char *key, const char *s)
{
    json_key(j, key);
    json_write_quoted(j->out, s);
}

void report_json_metrics(ReportJson *j, const MetricsReport *r)
{
    for (uint32_t i = 0; i < r->n; i++) report_json_num(j, r->entries[i].name, r->entries[i].value);
}

MtrStatus report_json_end(ReportJson *j, const char *what, MtrError *err)
{
    fputs("}\n", j->out);
    if (fflush(j->out) != 0 || ferror(j->out))
        return mtr_fail(err, MTR_E_IO, "%s: could not write a report line", what ? what : "report");
    return MTR_OK;
}

/* ---- results table */

static void table_cell(char out[48], double v)
{
    if (isnan(v))
        snprintf(out, 48, "n/a");
    else if (fabs(v) < 1e15)
        snprintf(out, 48, "%.4f", v);
    else
        snprintf(out, 48, "%.6g", v);
}

size_t report_table_format(char *buf, size_t cap, const ReportRow *rows, size_t n)
{
    return report_table_format_titled(buf, cap, rows, n, "reference");
}

size_t report_table_format_titled(char *buf, size_t cap, const ReportRow *rows, size_t n,
                                  const char *ref_title)
{
    const char *const head[3] = {"metric", "value", ref_title};
    size_t w[3] = {strlen(head[0]), strlen(head[1]), strlen(head[2])};
    int with_ref = 0;
    char cell[48];
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(rows[i].name);
        if (k > w[0]) w[0] = k;
        table_cell(cell, rows[i].value);
        if (strlen(cell) > w[1]) w[1] = strlen(cell);
        if (!isnan(rows[i].ref)) {
            with_ref = 1;
            table_cell(cell, rows[i].ref);
            if (strlen(cell) > w[2]) w[2] = strlen(cell);
        }
    }
    int cols = with_ref ? 3 : 2;
    Buf b = buf_make(buf, cap);

    /* Header and rule: the first column left-aligned, the numbers right-aligned. */
    buf_put(&b, head[0], strlen(head[0]));
    buf_pad(&b, ' ', w[0] - strlen(head[0]));
    for (int c = 1; c < cols; c++) {
        buf_pad(&b, ' ', 2 + w[c] - strlen(head[c]));
        buf_put(&b, head[c], strlen(head[c]));
    }
    buf_put(&b, "\n", 1);
    for (int c = 0; c < cols; c++) {
        if (c > 0) buf_pad(&b, ' ', 2);
        buf_pad(&b, '-', w[c]);
    }
    buf_put(&b, "\n", 1);

    for (size_t i = 0; i < n; i++) {
        const ReportRow *r = &rows[i];
        buf_put(&b, r->name, strlen(r->name));
        buf_pad(&b, ' ', w[0] - strlen(r->name));
        table_cell(cell, r->value);
        buf_pad(&b, ' ', 2 + w[1] - strlen(cell));
        buf_put(&b, cell, strlen(cell));
        if (with_ref) {
            if (isnan(r->ref))
                snprintf(cell, sizeof cell, "-");
            else
                table_cell(cell, r->ref);
            buf_pad(&b, ' ', 2 + w[2] - strlen(cell));
            buf_put(&b, cell, strlen(cell));
        }
        buf_put(&b, "\n", 1);
    }
    return b.len;
}

MtrStatus report_table_print(FILE *out, const ReportRow *rows, size_t n, MtrError *err)
{
    return report_table_print_titled(out, rows, n, "reference", err);
}

MtrStatus report_table_print_titled(FILE *out, const ReportRow *rows, size_t n,
                                    const char *ref_title, MtrError *err)
{
    size_t len = report_table_format_titled(NULL, 0, rows, n, ref_title);
    char *text = malloc(len + 1);
    if (!text) return mtr_fail(err, MTR_E_NOMEM, "report: out of memory for the results table");
    report_table_format_titled(text, len + 1, rows, n, ref_title);
    errno = 0;
    size_t w = fwrite(text, 1, len, out);
    int bad = w != len || fflush(out) != 0;
    int why = errno;
    free(text);
    if (bad)
        return mtr_fail(err, MTR_E_IO, "report: could not write the results table: %s",
                        strerror(why ? why : EIO));
    return MTR_OK;
}

/* ---- progress */

size_t report_eta_format(char *buf, size_t cap, double eta)
{
    Buf b = buf_make(buf, cap);
    long long t = eta >= 0 && eta < 1e9 ? (long long)(eta + 0.5) : -1;
    if (t < 0)
        buf_printf(&b, "%s", "");
    else if (t < 60)
        buf_printf(&b, "ETA %lld s", t);
    else if (t < 3600)
        buf_printf(&b, "ETA %lld:%02lld", t / 60, t % 60);
    else
        buf_printf(&b, "ETA %lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    return b.len;
}

/* "[=====>    ]": done * width / total cells filled, a '>' last until complete. */
static void bar(Buf *b, int64_t done, int64_t total, int width)
{
    int64_t filled = 0;
    if (total > 0 && done > 0) filled = done >= total ? width : done * width / total;
    if (filled > width) filled = width;
    buf_put(b, "[", 1);
    if (filled > 0) {
        int complete = total > 0 && done >= total;
        buf_pad(b, '=', (size_t)(complete ? filled : filled - 1));
        if (!complete) buf_put(b, ">", 1);
    }
    buf_pad(b, ' ', (size_t)(width - filled));
    buf_put(b, "]", 1);
}

size_t report_progress_format(char *buf, size_t cap, int epoch, int epochs, int64_t done,
                              int64_t total, int width, double ex_per_s, double loss, double eta)
{
    Buf b = buf_make(buf, cap);
    char e[64];
    buf_printf(&b, "epoch %d/%d ", epoch, epochs);
    bar(&b, done, total, width);
    buf_printf(&b, " %lld/%lld batches  %.0f ex/s  loss %.6g", (long long)done, (long long)total,
               ex_per_s, loss);
    if (report_eta_format(e, sizeof e, eta)) buf_printf(&b, "  %s", e);
    return b.len;
}

size_t report_eval_format(char *buf, size_t cap, int64_t done, int64_t total, int width, double eta)
{
    Buf b = buf_make(buf, cap);
    char e[64];
    buf_printf(&b, "%s", "evaluating ");
    bar(&b, done, total, width);
    buf_printf(&b, " %lld/%lld rows", (long long)done, (long long)total);
    if (report_eta_format(e, sizeof e, eta)) buf_printf(&b, "  %s", e);
    return b.len;
}

size_t report_epoch_format(char *buf, size_t cap, int epoch, int epochs, int64_t batches,
                           double ex_per_s, double loss, double seconds)
{
    Buf b = buf_make(buf, cap);
    buf_printf(&b, "epoch %d/%d  %lld batches  %.0f ex/s  loss %.6g  %.1f s", epoch, epochs,
               (long long)batches, ex_per_s, loss, seconds);
    return b.len;
}

void report_progress_init(ReportProgress *p, FILE *out, int epochs)
{
    p->out = out;
    p->tty = isatty(fileno(out));
    p->epochs = epochs;
    p->width = REPORT_BAR_WIDTH;
    p->shown = 0;
}

/* Writes line over the live one, blanking what a longer previous line left. */
static void redraw(ReportProgress *p, const char *line, size_t len)
{
    fputc('\r', p->out);
    fputs(line, p->out);
    for (size_t i = len; i < p->shown; i++) fputc(' ', p->out);
    p->shown = len;
}

void report_progress_update(ReportProgress *p, int epoch, int64_t done, int64_t total,
                            double ex_per_s, double loss, double eta)
{
    if (!p->tty) return;
    char line[256];
    size_t len = report_progress_format(line, sizeof line, epoch, p->epochs, done, total, p->width,
                                        ex_per_s, loss, eta);
    redraw(p, line, len < sizeof line ? len : sizeof line - 1);
    fflush(p->out);
}

void report_eval_update(ReportProgress *p, int64_t done, int64_t total, double seconds)
{
    if (!p->tty || seconds <= 1.0 || done <= 0) return;
    char line[256];
    double eta = seconds * (double)(total - done) / (double)done;
    size_t len = report_eval_format(line, sizeof line, done, total, p->width, eta);
    redraw(p, line, len < sizeof line ? len : sizeof line - 1);
    fflush(p->out);
}

void report_progress_clear(ReportProgress *p)
{
    if (!p->tty || p->shown == 0) return;
    fputc('\r', p->out);
    for (size_t i = 0; i < p->shown; i++) fputc(' ', p->out);
    fputc('\r', p->out);
    p->shown = 0;
    fflush(p->out);
}

void report_progress_epoch_end(ReportProgress *p, int epoch, int64_t batches, double ex_per_s,
                               double loss, double seconds)
{
    char line[256];
    size_t len =
        report_epoch_format(line, sizeof line, epoch, p->epochs, batches, ex_per_s, loss, seconds);
    if (len >= sizeof line) len = sizeof line - 1;
    if (p->tty)
        redraw(p, line, len);
    else
        fputs(line, p->out);
    fputc('\n', p->out);
    p->shown = 0;
    fflush(p->out);
}

double report_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
