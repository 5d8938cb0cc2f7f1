/* Status codes and the error record that libmtr fills instead of exiting:
 * every fallible function returns an MtrStatus and, on failure, leaves a message
 * that names the file and the offset, section or record that went wrong. */
#ifndef MTR_STATUS_H
#define MTR_STATUS_H

/* MtrStatus and MtrError are the public API's (mtr.h): one definition. */
#include "mtr.h"

/* Records a printf-style message in *err (which may be NULL) and returns
 * `status`, so that callers can write `return mtr_fail(err, MTR_E_IO, ...)`. */
MtrStatus mtr_fail(MtrError *err, MtrStatus status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mtr_status_name (a short name for a status) is declared in mtr.h. */

#endif
