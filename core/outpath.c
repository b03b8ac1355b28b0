/* outpath.c - resolving an output destination before writing (outpath.h). */
#include "outpath.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"

static const char *kind_of(mode_t m)
{
    if (S_ISREG(m)) return "a regular file";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

static mode_t new_file_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

dv_status dv_outpath_resolve(const char *path, struct dv_outpath *o)
{
    *o = (struct dv_outpath){.kind = DV_OUTPATH_NEW, .mode = new_file_mode(),
                             .what = "a new file"};
    struct stat lst, st;
    const bool there = lstat(path, &lst) == 0;
    const bool link = there && S_ISLNK(lst.st_mode);
    if (link && stat(path, &st) != 0)
        return dv_fail(DV_E_USAGE, "%s: a symbolic link to a missing file (%s); "
                       "not written through", path, strerror(errno));
    if (there && !link) st = lst;
    if (there && (S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode)))
        return dv_fail(DV_E_USAGE, "%s: is %s, not a file to write", path, kind_of(st.st_mode));
    if (there && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
        o->kind = DV_OUTPATH_STREAM;
        o->what = kind_of(st.st_mode);
    } else if (there && S_ISREG(st.st_mode)) {
        o->kind = DV_OUTPATH_REGULAR;
        o->what = kind_of(st.st_mode);
        o->mode = st.st_mode & 0777; /* not set-id bits */
    }
    /* the target of a link is what gets replaced; a device is opened
     * through the link as it is */
    o->path = link && o->kind == DV_OUTPATH_REGULAR ? realpath(path, NULL) : strdup(path);
    if (!o->path)
        return dv_fail(errno == ENOMEM ? DV_E_NOMEM : DV_E_IO, "%s: cannot resolve the "
                       "symbolic link: %s", path, strerror(errno));
    return DV_OK;
}

void dv_outpath_free(struct dv_outpath *o)
{
    free(o->path);
    o->path = NULL;
}

dv_status dv_outpath_mktemp(const struct dv_outpath *o, const char *shown, char **tmp,
                            int *fd)
{
    *tmp = NULL, *fd = -1;
    char *d = strdup(o->path), *b = strdup(o->path);
    /* dirname("m.gguf") is ".": the template can be longer than the path */
    const char *dir = d ? dirname(d) : NULL, *base = b ? basename(b) : NULL;
    size_t n = dir && base ? strlen(dir) + strlen(base) + sizeof "/..XXXXXX.part" : 0;
    char *t = n ? malloc(n) : NULL;
    if (!t) {
        free(d), free(b);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    snprintf(t, n, "%s/.%s.XXXXXX.part", dir, base);
    int f = mkostemps(t, 5, O_CLOEXEC);
    if (f < 0) {
        int e = errno;
        dv_status s = dv_fail(e == ENOENT || e == ENOTDIR ? DV_E_USAGE : DV_E_IO,
                              "%s: cannot create a file in %s: %s", shown, dir, strerror(e));
        free(d), free(b), free(t);
        return s;
    }
    free(d), free(b);
    fchmod(f, o->mode); /* mkostemps makes 0600 */
    *tmp = t, *fd = f;
    return DV_OK;
}
