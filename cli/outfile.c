/* outfile.c - reports written to a temporary name, then renamed. */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "error.h"
#include "outpath.h"

static void outfile_free(struct dv_outfile *o)
{
    free(o->path), free(o->dest), free(o->tmp);
    *o = (struct dv_outfile){NULL, NULL, NULL, NULL};
}

/* A device or FIFO: opened as it is, no temporary file, nothing renamed. */
static dv_status open_stream(struct dv_outfile *o)
{
    int fd = open(o->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    o->f = fd < 0 ? NULL : fdopen(fd, "w");
    if (o->f) return DV_OK;
    dv_status s = dv_fail(DV_E_IO, "%s: cannot write: %s", o->path, strerror(errno));
    if (fd >= 0) close(fd);
    outfile_free(o);
    return s;
}

dv_status dv_outfile_open(const char *path, struct dv_outfile *o)
{
    *o = (struct dv_outfile){stdout, NULL, NULL, NULL};
    /* /dev/stdout is our stdout as it is, as a shell's redirection takes
     * it: a file that stdout appends to is appended to, not replaced */
    if (!path || !strcmp(path, "-") || !strcmp(path, "/dev/stdout")) return DV_OK;
    struct dv_outpath op;
    dv_status s = dv_outpath_resolve(path, &op);
    if (s) {
        *o = (struct dv_outfile){NULL, NULL, NULL, NULL};
        return s;
    }
    o->path = strdup(path);
    o->dest = op.path;
    if (!o->path) {
        outfile_free(o);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    if (op.kind == DV_OUTPATH_STREAM) return open_stream(o);
    int fd;
    s = dv_outpath_mktemp(&op, path, &o->tmp, &fd);
    o->f = s ? NULL : fdopen(fd, "w");
    if (!s && !o->f) {
        s = dv_fail(DV_E_IO, "%s: cannot write: %s", path, strerror(errno));
        close(fd), unlink(o->tmp);
    }
    if (s) {
        outfile_free(o);
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
    /* a device or FIFO is not fsynced (a pipe cannot be) and not renamed */
    int bad = fflush(o->f) || ferror(o->f) || (o->tmp && fsync(fileno(o->f)));
    int e = errno;
    bad |= fclose(o->f) != 0;
    if (commit && !bad && o->tmp && rename(o->tmp, o->dest)) bad = 1, e = errno;
    if (commit && bad) s = dv_fail(DV_E_IO, "%s: cannot write: %s", o->path, strerror(e));
    if (o->tmp && (!commit || bad)) unlink(o->tmp);
    if (o->tmp) dv_guard_temp(NULL);
    outfile_free(o);
    return s;
}

dv_status dv_outfile_check_inputs(const char *out, const char *const *inputs, int n)
{
    struct stat so, si;
    if (!out || !strcmp(out, "-") || stat(out, &so) != 0) return DV_OK;
    for (int i = 0; i < n; i++)
        if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return dv_fail(DV_E_USAGE, "%s: the output would replace the input %s; give another output file",
                           out, inputs[i]);
    return DV_OK;
}
