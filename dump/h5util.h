/*
 * h5util.h - small helpers around the HDF5 C API shared by the dump
 * writer and reader: keep HDF5 from printing its error stack, and turn
 * that stack into a short reason for our one-line messages.
 */
#ifndef DV_H5UTIL_H
#define DV_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

/* Call before the first HDF5 call of the process: keeps HDF5 from
 * registering its atexit clean-up, which in 1.10.8 can crash or report
 * "infinite loop closing library" after a file it could not fully parse
 * (a corrupt dump given to the reader); the operating system frees what
 * it would have. (The writer's files cannot fail to close: h5vfd.h.) A
 * no-op when the host program used HDF5 first. */
void dv_h5_init(void);

/* Silence HDF5's automatic error printing for the calling thread until
 * dv_h5_loud() restores what the host program had. */
struct dv_h5_quiet {
    H5E_auto2_t fn;
    void *data;
};
void dv_h5_quiet(struct dv_h5_quiet *q);
void dv_h5_loud(const struct dv_h5_quiet *q);

/* A short reason for the first HDF5 failure since dv_h5_quiet (or, when
 * none was seen, the current error stack): the system error ("File too
 * large") when an I/O call failed, else the innermost description
 * ("truncated file: eof = ..."). Never NULL. */
const char *dv_h5_reason(char *buf, size_t cap);

/* A variable-length UTF-8 string type (close with H5Tclose). */
hid_t dv_h5_str_type(void);

#endif
