/* error.c - the per-thread error message behind dv_errmsg(). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char dv_msg[1024];

dv_status dv_fail(dv_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dv_msg, sizeof dv_msg, fmt, ap);
    va_end(ap);
    return s;
}

dv_status dv_fail_prefix(dv_status s, const char *prefix)
{
    /* shift the message right by "prefix: ", dropping what no longer fits */
    size_t p = strlen(prefix) + 2, n = strlen(dv_msg);
    if (p >= sizeof dv_msg) p = sizeof dv_msg - 1;
    if (n > sizeof dv_msg - 1 - p) n = sizeof dv_msg - 1 - p;
    memmove(dv_msg + p, dv_msg, n);
    dv_msg[p + n] = '\0';
    memcpy(dv_msg, prefix, p - 2);
    memcpy(dv_msg + p - 2, ": ", 2);
    return s;
}

const char *dv_errmsg(void) { return dv_msg; }

const char *dv_status_name(dv_status s)
{
    static const char *const names[DV_STATUS_COUNT] = {
        [DV_OK] = "ok",         [DV_E_INPUT] = "input",
        [DV_E_USAGE] = "usage", [DV_E_IO] = "io",
        [DV_E_NOMEM] = "nomem", [DV_E_DEVICE] = "device",
        [DV_E_RUNTIME] = "runtime",
    };
    if ((unsigned)s >= DV_STATUS_COUNT) return "?";
    return names[s];
}

const char *dv_version(void) { return DV_VERSION_STRING; }
