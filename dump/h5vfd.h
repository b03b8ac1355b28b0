/*
 * h5vfd.h - the dump writer's HDF5 file driver: sec2 over a descriptor
 * the writer owns, with modes that let H5Fclose() finish after a failure
 * (see h5vfd.c for why).
 */
#ifndef DV_H5VFD_H
#define DV_H5VFD_H

#include <hdf5.h>

enum dv_h5_vfd_mode {
    DV_H5_VFD_WRITE,  /* write; a failure goes to err, HDF5 is told success */
    DV_H5_VFD_DISCARD /* write nothing (after a failure, or to throw away) */
};

struct dv_h5_vfd_ctl {
    int fd;   /* the file, open read-write; borrowed */
    int mode; /* enum dv_h5_vfd_mode; the writer may set DISCARD at any time */
    int err;  /* errno of the first failed write or truncate, 0 if none */
};

/* Make fapl use the driver on ctl (borrowed: must outlive the file). */
herr_t dv_h5_vfd_set(hid_t fapl, struct dv_h5_vfd_ctl *ctl);

#endif
