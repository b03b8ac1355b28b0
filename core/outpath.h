/*
 * outpath.h - where a file written under a temporary name and renamed
 * goes, decided once for every writer (the dump writer, the GGUF writer,
 * the CLI's reports).
 *
 * A temporary file renamed onto its destination replaces whatever
 * directory entry is there: a symbolic link would become a regular file
 * and /dev/null a regular file too. So the destination is looked at
 * first: a symbolic link is followed (its target is replaced and the link
 * stays), a regular file's mode is kept, a character device or FIFO
 * cannot be replaced (the caller writes it directly or refuses it), and a
 * directory, a block device, a socket or a dangling link are refused.
 */
#ifndef DV_OUTPATH_H
#define DV_OUTPATH_H

#include <sys/types.h>

#include "diverge.h"

enum dv_outpath_kind {
    DV_OUTPATH_NEW,     /* nothing there yet */
    DV_OUTPATH_REGULAR, /* a regular file, to be replaced */
    DV_OUTPATH_STREAM,  /* a character device or a FIFO: write it, never replace it */
    DV_OUTPATH_KIND_COUNT
};

struct dv_outpath {
    char *path;       /* the file to create or replace: a symbolic link's
                         target, else the path given (owned) */
    int kind;         /* enum dv_outpath_kind */
    mode_t mode;      /* the permissions the written file gets: a replaced
                         file's own, else 0666 & ~umask */
    const char *what; /* the kind of file there, for messages: "a FIFO", ... */
};

/* Resolve `path` for writing into *o (free with dv_outpath_free). A
 * directory, a block device, a socket or a symbolic link whose target is
 * missing: DV_E_USAGE "PATH: ..." saying which. DV_E_NOMEM. A path that
 * cannot be examined (permissions) is taken as new: creating the
 * temporary file then reports why. */
dv_status dv_outpath_resolve(const char *path, struct dv_outpath *o);

/* Create the temporary file every writer renames onto o->path:
 * "DIR/.BASE.XXXXXX.part" beside it (so the rename stays in one file
 * system, and a killed writer's leftover is recognisable), opened
 * O_CLOEXEC with o->mode. *tmp (malloc'd, the caller frees it) and *fd
 * on success. A directory that is not there: DV_E_USAGE; any other
 * failure DV_E_IO; both "SHOWN: cannot create a file in DIR: ...". */
dv_status dv_outpath_mktemp(const struct dv_outpath *o, const char *shown, char **tmp,
                            int *fd);

/* Frees o->path; harmless on a zeroed or freed struct. */
void dv_outpath_free(struct dv_outpath *o);

#endif
