/* mtr.h: the public C API of libmtr, for serving a trained model.bin from
 * another program. Numbers in, numbers out: no printing, no exit, no global
 * state. docs/api.md is the guide; this header is the contract.
 *
 * Threads: the model a handle holds is read-only after mtr_open. A call that
 * runs it (predict, recommend, vectors) works in a session of its own for the
 * length of the call: taken from the handle's pool of idle sessions (guarded
 * by a mutex) or made for it, and put back on return. So any number of threads
 * may call them on one handle at once, and a thread's second call costs no
 * binding. mtr_set_knob changes the handle: do not call it while other
 * threads use the same handle.
 *
 * Errors: every fallible call returns an MtrStatus (MTR_OK = 0) and, when err
 * is not NULL, fills it with the status and a message naming what went wrong
 * (the file, the row, the column, the value). Output arguments are written
 * only on success. */
#ifndef MTR_H
#define MTR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MTR_API __attribute__((visibility("default")))
#else
#define MTR_API
#endif

/* The version of this API (bumped when a declaration here changes). */
#define MTR_API_VERSION 1

typedef enum {
    MTR_OK = 0,
    MTR_E_IO,     /* a file could not be opened, read or written */
    MTR_E_FORMAT, /* model.bin is truncated, corrupt or from an unknown version */
    MTR_E_DATA,   /* a data file is missing, empty or has a malformed record */
    MTR_E_ARG,    /* a bad argument: unknown knob, wrong type, unknown user ... */
    MTR_E_NOMEM,  /* an allocation failed */
    MTR_E_SHAPE,  /* a model's shapes do not bind with the data's sizes */
    MTR_E_STATE,  /* the operation needs a state the model is not in (e.g. untrained) */
} MtrStatus;

typedef struct {
    MtrStatus status;
    char msg[1024];
} MtrError;

/* A short name for a status ("format error"). */
MTR_API const char *mtr_status_name(MtrStatus status);
/* The library's version, e.g. "0.1.0". */
MTR_API const char *mtr_version(void);

/* ---- opening a model */

typedef struct Mtr Mtr; /* an opened model (opaque) */

/* Opens a trained model.bin (validated completely). *out is a new handle that
 * mtr_close releases. An untrained model opens (for listing), but running it
 * fails with MTR_E_STATE. */
MTR_API MtrStatus mtr_open(const char *path, Mtr **out, MtrError *err);
/* The same from len bytes in memory (copied: buf may be freed on return). */
MTR_API MtrStatus mtr_open_buffer(const void *buf, size_t len, Mtr **out, MtrError *err);
/* Releases the handle; NULL is fine. */
MTR_API void mtr_close(Mtr *m);

/* The model's name (from its `model NAME` line). */
MTR_API const char *mtr_name(const Mtr *m);
/* Whether the model holds trained parameters (1) or not (0). */
MTR_API int mtr_trained(const Mtr *m);

/* ---- what the model has. Indices run from 0 to count - 1; a bad index gives
 * NULL, 0 or -1. Strings belong to the handle. */

/* Tasks, in the order of the model source. */
MTR_API int mtr_task_count(const Mtr *m);
MTR_API const char *mtr_task_name(const Mtr *m, int task);
/* The index of the task called name, or -1. */
MTR_API int mtr_task_find(const Mtr *m, const char *name);
enum {
    MTR_TASK_PREDICTS = 1u << 0,   /* mtr_predict gives a number for it (a ranking task) */
    MTR_TASK_VECTORS = 1u << 1,    /* it has item vectors (a retrieval task) */
    MTR_TASK_RECOMMENDS = 1u << 2, /* mtr_recommend and mtr_query_vectors serve it */
};
MTR_API unsigned mtr_task_flags(const Mtr *m, int task);
/* The width of the task's query and item vectors, or 0 when it has none. */
MTR_API int mtr_vector_dim(const Mtr *m, int task);

/* Inputs: the columns a row gives (labels excluded). */
MTR_API int mtr_input_count(const Mtr *m);
MTR_API const char *mtr_input_name(const Mtr *m, int input);
enum { MTR_INPUT_STRING = 1, MTR_INPUT_INT = 2, MTR_INPUT_FLOAT = 3 };
MTR_API int mtr_input_type(const Mtr *m, int input);
/* 1 when the input is an attribute of the candidate item (read from the
 * model's items, not from the rows of mtr_recommend), else 0. */
MTR_API int mtr_input_is_item(const Mtr *m, int input);

/* Knobs: named numbers (loss weights, learning rate, ...). */
MTR_API int mtr_knob_count(const Mtr *m);
MTR_API const char *mtr_knob_name(const Mtr *m, int knob);
MTR_API double mtr_knob_value(const Mtr *m, int knob);
/* Sets knob `name` after the checks of `mtrun --set` (type, range). Changes
 * this handle only, never the file. Not to be called while another thread
 * uses the handle. */
MTR_API MtrStatus mtr_set_knob(Mtr *m, const char *name, double value, MtrError *err);

/* The candidate items (the rows of item vectors and the ids mtr_recommend
 * returns), and the label of each. */
MTR_API int64_t mtr_item_count(const Mtr *m);
MTR_API const char *mtr_item_label(const Mtr *m, int64_t item);

/* ---- running the model on rows */

/* A batch of rows given as text, row-major: values[r * n_columns + c] is the
 * value of column columns[c] in row r (a number is given as its text). Every
 * input the computation reads must be a column; other columns are ignored. */
typedef struct {
    size_t n_rows;
    int n_columns;
    const char *const *columns;
    const char *const *values;
    unsigned flags; /* MTR_ROWS_* */
} MtrRows;
enum {
    /* A value the model's vocabulary lacks uses the out-of-vocabulary row, as
     * in training, instead of failing with MTR_E_ARG naming row and value. */
    MTR_ROWS_UNKNOWN_OK = 1u << 0,
};

/* Every predicting task's output for each row: out[r * mtr_task_count(m) + t]
 * is task t's prediction for row r (a probability for a bce task), NaN for a
 * task that does not predict. out holds n_rows * mtr_task_count(m) floats. */
MTR_API MtrStatus mtr_predict(const Mtr *m, const MtrRows *rows, float *out, MtrError *err);

/* Options of mtr_recommend; NULL or all zeros for the defaults. */
typedef struct {
    /* The retrieval task whose vectors rank the items, or -1 for the one the
     * model's recommend program serves (its first retrieval task). Today only
     * that task can be chosen: another gives MTR_E_ARG (see docs/api.md). */
    int task;
    /* Items not to recommend to each row (e.g. those it has seen): the item
     * indices exclude[exclude_start[r] .. exclude_start[r + 1]) for row r.
     * exclude_start has n_rows + 1 entries; both NULL for none. */
    const size_t *exclude_start;
    const int64_t *exclude;
} MtrRecommendOptions;

/* The k best items for each row (query), best first: ids[r * k + i] is an
 * item index (0 .. mtr_item_count - 1) and scores[r * k + i] its score. When
 * exclusions leave fewer than k items, the rest are -1 and -INFINITY. Requires
 * 1 <= k <= mtr_item_count. */
MTR_API MtrStatus mtr_recommend(const Mtr *m, const MtrRows *rows, int k,
                                const MtrRecommendOptions *opt, int64_t *ids, float *scores,
                                MtrError *err);

/* The query tower's final vectors for each row: out[r * D + j], D =
 * mtr_vector_dim(m, task); the score of item i for row r is their dot product
 * with item i's vector. task -1 is the one recommend serves. */
MTR_API MtrStatus mtr_query_vectors(const Mtr *m, int task, const MtrRows *rows, float *out,
                                    MtrError *err);

/* The candidate tower's final vector for every item: out[i * D + j], with
 * mtr_item_count(m) rows in item order. task -1 is the one recommend serves. */
MTR_API MtrStatus mtr_item_vectors(const Mtr *m, int task, float *out, MtrError *err);

#ifdef __cplusplus
}
#endif

#endif
