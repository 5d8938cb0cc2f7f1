/* Status codes and the error record that libmtr fills instead of exiting:
 * every fallible function returns an MtrStatus and, on failure, leaves a message
 * that names the file and the offset, section or record that went wrong. */
#ifndef MTR_STATUS_H
#define MTR_STATUS_H

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

/* Records a printf-style message in *err (which may be NULL) and returns
 * `status`, so that callers can write `return mtr_fail(err, MTR_E_IO, ...)`. */
MtrStatus mtr_fail(MtrError *err, MtrStatus status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short name for a status ("format error"), for messages. */
const char *mtr_status_name(MtrStatus status);

#endif
