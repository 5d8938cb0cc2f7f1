/* Run reports (runtime stage: train and evaluate, output side). In: losses,
 * metrics and timings. Out: three forms of the same figures:
 *   - JSON lines, one object per line, for programs: keys in the order written,
 *     "phase" first; numbers in the shortest form that reads back to the same
 *     value (at most %.9g for a float, %.17g for a double), integers exact,
 *     NaN and infinities as null; strings escaped per RFC 8259.
 *   - a results table for people: (metric, value[, reference]) in plain ASCII.
 *   - a progress bar: redrawn in place with \r when the stream is a terminal,
 *     otherwise silent until the epoch ends and then one line per epoch.
 * The text of every line comes from a pure formatting function (buffer in,
 * length out, snprintf-style) so tests can check it byte for byte. */
#ifndef MTR_REPORT_H
#define MTR_REPORT_H

#include "mtr/metrics.h"
#include "mtr/status.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- numbers */

/* Format v in the shortest %g form that strtod (strtof) reads back to exactly v;
 * "null" for NaN and infinities. Like snprintf: returns the length the text
 * needs, writes at most cap bytes including the NUL. Reads back correctly only
 * in the "C" numeric locale (the runtime never calls setlocale). */
size_t report_format_double(char *buf, size_t cap, double v);
size_t report_format_float(char *buf, size_t cap, float v);

/* ---- JSON lines */

typedef struct {
    FILE *out;
    int fields; /* written so far on this line */
} ReportJson;

/* Starts a line: {"phase":"<phase>" (phase may be NULL: then just "{"). */
void report_json_begin(ReportJson *j, FILE *out, const char *phase);
/* Each adds ,"key":value; keys and strings are escaped. */
void report_json_num(ReportJson *j, const char *key, double v);
void report_json_f32(ReportJson *j, const char *key, float v);
void report_json_int(ReportJson *j, const char *key, int64_t v);
void report_json_str(ReportJson *j, const char *key, const char *s);
/* Adds every entry of a metrics report, in its order. */
void report_json_metrics(ReportJson *j, const MetricsReport *r);
/* Ends the line with "}\n" and flushes; MTR_E_IO when any write of the line
 * failed (the message names `what`, e.g. the file's path; may be NULL). */
MtrStatus report_json_end(ReportJson *j, const char *what, MtrError *err);
/* Writes s as a JSON string literal, quotes included, into buf (snprintf-style).
 * Escapes " \ and control characters; other bytes (UTF-8) pass through. */
size_t report_json_quote(char *buf, size_t cap, const char *s);

/* ---- results table */

typedef struct {
    const char *name;
    double value;
    double ref; /* a reference figure shown beside the value; NaN for none */
} ReportRow;

/* Formats the table: a header (metric, value, and reference when any row has
 * one), a rule of dashes, then one line per row. Names are left-aligned, numbers
 * right-aligned with four decimals ("n/a" for NaN, "-" for no reference);
 * columns are two spaces apart; no trailing spaces. snprintf-style. */
size_t report_table_format(char *buf, size_t cap, const ReportRow *rows, size_t n);
/* Formats and writes the table; MTR_E_NOMEM or MTR_E_IO on failure. */
MtrStatus report_table_print(FILE *out, const ReportRow *rows, size_t n, MtrError *err);
/* The same with the third column titled ref_title ("baseline") instead. */
size_t report_table_format_titled(char *buf, size_t cap, const ReportRow *rows, size_t n,
                                  const char *ref_title);
MtrStatus report_table_print_titled(FILE *out, const ReportRow *rows, size_t n,
                                    const char *ref_title, MtrError *err);

/* ---- progress */

#define REPORT_BAR_WIDTH 30

typedef struct {
    FILE *out;
    int tty;      /* draw the live bar; set by report_progress_init from isatty */
    int epochs;   /* for "epoch e/E" */
    int width;    /* bar cells */
    size_t shown; /* the length of the live line on screen, to blank leftovers */
} ReportProgress;

/* "epoch 1/3 [=====>    ] 6/10 batches  41234 ex/s  loss 69812.3  ETA 1:05": the
 * bar has width cells, done * width / total of them filled, the last filled one
 * a '>' until the epoch is complete; the estimated seconds left of the run
 * follow when eta >= 0 (report_eta_format). snprintf-style. */
size_t report_progress_format(char *buf, size_t cap, int epoch, int epochs, int64_t done,
                              int64_t total, int width, double ex_per_s, double loss, double eta);
/* "ETA 12 s", "ETA 1:05" (minutes), "ETA 2:03:04" (hours); "" for eta < 0. */
size_t report_eta_format(char *buf, size_t cap, double eta);
/* "evaluating [====>     ] 12000/20000 rows  ETA 3 s": an evaluation pass. */
size_t report_eval_format(char *buf, size_t cap, int64_t done, int64_t total, int width,
                          double eta);
/* "epoch 1/3  10 batches  41234 ex/s  loss 69812.3  1.9 s": the epoch's summary. */
size_t report_epoch_format(char *buf, size_t cap, int epoch, int epochs, int64_t batches,
                           double ex_per_s, double loss, double seconds);

/* Prepares a progress display on out (stderr, usually) for a run of `epochs`. */
void report_progress_init(ReportProgress *p, FILE *out, int epochs);
/* Redraws the live line (terminal only; nothing otherwise). */
void report_progress_update(ReportProgress *p, int epoch, int64_t done, int64_t total,
                            double ex_per_s, double loss, double eta);
/* An evaluation pass that has run `seconds` so far and done `done` of `total`
 * rows: drawn on a terminal once it has run longer than a second (short
 * passes stay silent); nothing otherwise. */
void report_eval_update(ReportProgress *p, int64_t done, int64_t total, double seconds);
/* Blanks the live line, if one is drawn (after an evaluation pass). */
void report_progress_clear(ReportProgress *p);
/* Ends an epoch: on a terminal, replaces the live line by the summary and moves
 * to a new line; otherwise writes the summary line. */
void report_progress_epoch_end(ReportProgress *p, int epoch, int64_t batches, double ex_per_s,
                               double loss, double seconds);

/* Seconds on a monotonic clock, for rates and durations. */
double report_clock(void);

#endif
