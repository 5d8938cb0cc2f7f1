/* Error records: formatting a message into an MtrError. */
#include "mtr/status.h"

#include <stdarg.h>
#include <stdio.h>

MtrStatus mtr_fail(MtrError *err, MtrStatus status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

const char *mtr_status_name(MtrStatus status)
{
    switch (status) {
    case MTR_OK:
        return "ok";
    case MTR_E_IO:
        return "i/o error";
    case MTR_E_FORMAT:
        return "format error";
    case MTR_E_DATA:
        return "data error";
    case MTR_E_ARG:
        return "bad argument";
    case MTR_E_NOMEM:
        return "out of memory";
    case MTR_E_SHAPE:
        return "shape error";
    case MTR_E_STATE:
        return "wrong state";
    }
    return "unknown error";
}
