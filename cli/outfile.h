/*
 * outfile.h - a report file written under a temporary name and renamed
 * onto its destination only when complete, so a failed or interrupted
 * run never leaves a half report (or destroys the previous one). The
 * destination is resolved first (outpath.h): a symbolic link's target is
 * replaced and the link kept, a replaced file keeps its mode, and a
 * character device or FIFO (/dev/null, /dev/stdout on a pipe) is written
 * directly, since it cannot be replaced.
 */
#ifndef DV_OUTFILE_H
#define DV_OUTFILE_H

#include <stdio.h>

#include "diverge.h"

struct dv_outfile {
    FILE *f;          /* write here */
    char *path;       /* the destination as given (NULL: stdout) */
    char *dest;       /* the file renamed onto: path, or a symbolic link's target */
    char *tmp;        /* ".NAME.XXXXXX.part" beside dest; NULL: f is path itself */
};

/* path NULL, "-" or "/dev/stdout": stdout itself. Otherwise create the temporary file in the
 * destination's directory, or open a device or FIFO for writing.
 * DV_E_USAGE naming the path for a destination that cannot be written
 * (outpath.h) or whose directory does not exist, DV_E_IO when creating
 * the file fails otherwise. */
dv_status dv_outfile_open(const char *path, struct dv_outfile *o);

/* commit: flush, fsync and rename onto the destination (DV_E_IO when
 * any of that fails, the temporary file removed); otherwise remove the
 * temporary file. A device or FIFO is flushed and closed. Frees o's
 * strings in every case. */
dv_status dv_outfile_close(struct dv_outfile *o, int commit);

/* An output must not replace one of the command's inputs: DV_E_USAGE
 * "OUT: is the input IN ..." when out names the same file (device and
 * inode, through links) as one of inputs[n] (NULL entries skipped). An
 * output that does not exist yet is no input. */
dv_status dv_outfile_check_inputs(const char *out, const char *const *inputs, int n);

#endif
