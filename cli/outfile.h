/*
 * outfile.h - a report file written under a temporary name and renamed
 * onto its destination only when complete, so a failed or interrupted
 * run never leaves a half report (or destroys the previous one).
 */
#ifndef DV_OUTFILE_H
#define DV_OUTFILE_H

#include <stdio.h>

#include "diverge.h"

struct dv_outfile {
    FILE *f;          /* write here */
    char *path;       /* the destination (NULL: stdout) */
    char *tmp;        /* ".NAME.XXXXXX.part" beside it */
};

/* path NULL or "-": stdout. Otherwise create the temporary file in the
 * destination's directory. DV_E_IO naming the path when that fails. */
dv_status dv_outfile_open(const char *path, struct dv_outfile *o);

/* commit: flush, fsync and rename onto the destination (DV_E_IO when
 * any of that fails, the temporary file removed); otherwise remove the
 * temporary file. Frees o's strings in every case. */
dv_status dv_outfile_close(struct dv_outfile *o, int commit);

#endif
