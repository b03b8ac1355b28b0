/*
 * diverge.h - the public C API of libdiverge.
 *
 * diverge finds where a GPU inference engine's numbers leave a trusted
 * reference. This header is the part other programs link against: status
 * codes and error messages now; the dump-writing API (so any engine can write
 * tensors in diverge's HDF5 schema) joins it in a later version.
 *
 * Conventions: every function returns a dv_status; on failure a one-line
 * message naming the file and the problem is kept per thread and read with
 * dv_errmsg(). Nothing here prints or exits.
 */
#ifndef DIVERGE_H
#define DIVERGE_H

#ifdef __cplusplus
extern "C" {
#endif

#define DV_VERSION_MAJOR 0
#define DV_VERSION_MINOR 1
#define DV_VERSION_PATCH 0
#define DV_VERSION_STRING "0.1.0"

/* Status codes. The CLI maps them to exit codes: INPUT and USAGE give 2,
 * IO, NOMEM, DEVICE and RUNTIME give 3. */
typedef enum dv_status {
    DV_OK = 0,
    DV_E_INPUT,   /* a file or value given to us is malformed or inconsistent */
    DV_E_USAGE,   /* the caller asked for something that makes no sense */
    DV_E_IO,      /* reading or writing failed (disk full, permissions) */
    DV_E_NOMEM,   /* an allocation failed */
    DV_E_DEVICE,  /* no usable compute device, or the device failed */
    DV_E_RUNTIME, /* any other failure while running */
    DV_STATUS_COUNT
} dv_status;

/* Short lower-case name of a status ("ok", "input", ...); "?" if out of range. */
const char *dv_status_name(dv_status s);

/* The message of the last failure on this thread. Never NULL; "" when no
 * failure was recorded. The pointer stays valid until the next failure on
 * this thread. */
const char *dv_errmsg(void);

/* The library version as "MAJOR.MINOR.PATCH". */
const char *dv_version(void);

#ifdef __cplusplus
}
#endif
#endif /* DIVERGE_H */
