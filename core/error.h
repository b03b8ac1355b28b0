/*
 * error.h - recording failures inside the library.
 *
 * Library code never prints. A failing function records one line with
 * dv_fail() and returns its status; the CLI prints dv_errmsg().
 */
#ifndef DV_ERROR_H
#define DV_ERROR_H

#include "diverge.h"

/* Record a printf-style message for this thread and return s, so callers can
 * write `return dv_fail(DV_E_INPUT, "%s: bad magic", path);`. */
dv_status dv_fail(dv_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the current message with "prefix: " (to add context on the way up). */
dv_status dv_fail_prefix(dv_status s, const char *prefix);

#endif
