/* outfile.c - reports written to a temporary name, then renamed. */
#include "outfile.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "error.h"

dv_status dv_outfile_open(const char *path, struct dv_outfile *o)
{
    *o = (struct dv_outfile){stdout, NULL, NULL};
    if (!path || !strcmp(path, "-")) return DV_OK;
    char *d = strdup(path), *b = strdup(path);
    size_t n = strlen(path) + 32;
    o->tmp = malloc(n);
    o->path = strdup(path);
    if (!d || !b || !o->tmp || !o->path) {
        free(d), free(b), free(o->tmp), free(o->path);
        *o = (struct dv_outfile){NULL, NULL, NULL};
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    snprintf(o->tmp, n, "%s/.%s.XXXXXX.part", dirname(d), basename(b));
    free(d), free(b);
    int fd = mkstemps(o->tmp, 5);
    /* mkstemps makes the file 0600; a report gets the usual 0666 - umask */
    mode_t um = umask(0);
    umask(um);
    if (fd >= 0) fchmod(fd, 0666 & ~um);
    o->f = fd < 0 ? NULL : fdopen(fd, "w");
    if (!o->f) {
        int e = errno;
        if (fd >= 0) close(fd), unlink(o->tmp);
        dv_status s = dv_fail(DV_E_IO, "%s: cannot write: %s", path, strerror(e));
        free(o->tmp), free(o->path);
        *o = (struct dv_outfile){NULL, NULL, NULL};
        return s;
    }
    dv_guard_temp(o->tmp);
    return DV_OK;
}

dv_status dv_outfile_close(struct dv_outfile *o, int commit)
{
    dv_status s = DV_OK;
    if (!o->path) {
        if (fflush(stdout) && commit) s = dv_fail(DV_E_IO, "stdout: %s", strerror(errno));
        return s;
    }
    int bad = fflush(o->f) || ferror(o->f) || fsync(fileno(o->f));
    int e = errno;
    bad |= fclose(o->f) != 0;
    if (commit && !bad && rename(o->tmp, o->path)) bad = 1, e = errno;
    if (commit && bad) s = dv_fail(DV_E_IO, "%s: cannot write: %s", o->path, strerror(e));
    if (!commit || bad) unlink(o->tmp);
    dv_guard_temp(NULL);
    free(o->tmp), free(o->path);
    *o = (struct dv_outfile){NULL, NULL, NULL};
    return s;
}
