/*
 * h5vfd.c - an HDF5 file driver over a descriptor the writer owns, so
 * that closing an HDF5 file never fails.
 *
 * Why: HDF5 1.10.8 (Debian 12) frees a file whose H5Fclose() failed (a
 * flush or the closing truncate hit ENOSPC or EFBIG) but keeps its ID;
 * the library's exit handler then closes it again and crashes
 * (HDFGroup/hdf5#2291, fixed in 1.14.1); a failed H5Dclose() leaks
 * chunk-cache memory the same way ("HDF5: infinite loop closing
 * library" at exit). So HDF5 never sees a failed write: this driver is
 * sec2 (pread, pwrite, ftruncate) that keeps the first write or truncate
 * failure in ctl->err, reports success, and writes nothing more (the
 * dump is lost anyway); the writer checks ctl->err after its HDF5 calls.
 * DISCARD mode, set by the writer before closing a file it throws away,
 * writes nothing from the start.
 */
#include "h5vfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    H5FD_t pub;
    int fd;                   /* a dup of ctl->fd, closed with the file */
    struct dv_h5_vfd_ctl *ctl; /* borrowed from the writer */
    haddr_t eoa, eof;
    dev_t dev;
    ino_t ino;
} vfd_t;

static hid_t vfd_id = H5I_INVALID_HID;

/* Push "what: errno = N, error message = '...'" (dv_h5_reason finds it). */
static herr_t sys_fail(const char *fn, int line, hid_t minor, const char *what, int err)
{
    H5Epush2(H5E_DEFAULT, __FILE__, fn, (unsigned)line, H5E_ERR_CLS, H5E_VFL, minor,
             "%s: errno = %d, error message = '%s'", what, err, strerror(err));
    return -1;
}

static void *fapl_copy(const void *p)
{
    struct dv_h5_vfd_ctl **c = malloc(sizeof *c);
    if (c) *c = *(struct dv_h5_vfd_ctl *const *)p;
    return c;
}

static herr_t fapl_free(void *p)
{
    free(p);
    return 0;
}

static void *fapl_get(H5FD_t *f) { return fapl_copy(&((vfd_t *)f)->ctl); }

static H5FD_t *vfd_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    (void)name, (void)maxaddr;
    struct dv_h5_vfd_ctl *const *info = H5Pget_driver_info(fapl);
    if (!info || !*info) {
        H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_VFL,
                 H5E_BADVALUE, "no descriptor for the dump driver");
        return NULL;
    }
    vfd_t *f = calloc(1, sizeof *f);
    struct stat st;
    if (!f) return NULL;
    f->ctl = *info;
    f->fd = fcntl(f->ctl->fd, F_DUPFD_CLOEXEC, 0);
    if (f->fd < 0 || ((flags & H5F_ACC_TRUNC) && ftruncate(f->fd, 0)) || fstat(f->fd, &st)) {
        sys_fail(__func__, __LINE__, H5E_CANTOPENFILE, "open", errno);
        if (f->fd >= 0) close(f->fd);
        free(f);
        return NULL;
    }
    f->eof = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return &f->pub;
}

static herr_t vfd_close(H5FD_t *p)
{
    vfd_t *f = (vfd_t *)p;
    close(f->fd); /* a dup: the writer's descriptor and its flock stay */
    free(f);
    return 0;
}

static int vfd_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const vfd_t *x = (const vfd_t *)a, *y = (const vfd_t *)b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static herr_t vfd_query(const H5FD_t *f, unsigned long *flags)
{
    (void)f;
    /* what sec2 declares: metadata and small raw data gathered into
     * larger writes, data sieving */
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA |
             H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_AGGREGATE_SMALLDATA |
             H5FD_FEAT_POSIX_COMPAT_HANDLE;
    return 0;
}

static haddr_t get_eoa(const H5FD_t *f, H5FD_mem_t t) { (void)t; return ((const vfd_t *)f)->eoa; }
static haddr_t get_eof(const H5FD_t *f, H5FD_mem_t t) { (void)t; return ((const vfd_t *)f)->eof; }

static herr_t set_eoa(H5FD_t *f, H5FD_mem_t t, haddr_t a)
{
    (void)t;
    ((vfd_t *)f)->eoa = a;
    return 0;
}

static herr_t get_handle(H5FD_t *f, hid_t fapl, void **h)
{
    (void)fapl;
    *h = &((vfd_t *)f)->fd;
    return 0;
}

static herr_t vfd_read(H5FD_t *p, H5FD_mem_t t, hid_t dxpl, haddr_t addr, size_t n, void *buf)
{
    (void)t, (void)dxpl;
    vfd_t *f = (vfd_t *)p;
    char *b = buf;
    while (n > 0) {
        ssize_t r = pread(f->fd, b, n, (off_t)addr);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return sys_fail(__func__, __LINE__, H5E_READERROR, "read", errno);
        if (r == 0) { /* past the end of the file: zeros, as sec2 */
            memset(b, 0, n);
            break;
        }
        b += r, addr += (haddr_t)r, n -= (size_t)r;
    }
    return 0;
}

/* Keep the first failure for the writer; from now on write nothing. */
static herr_t latch(vfd_t *f, int err)
{
    if (!f->ctl->err) f->ctl->err = err;
    f->ctl->mode = DV_H5_VFD_DISCARD;
    return 0;
}

static herr_t vfd_write(H5FD_t *p, H5FD_mem_t t, hid_t dxpl, haddr_t addr, size_t n,
                        const void *buf)
{
    (void)t, (void)dxpl;
    vfd_t *f = (vfd_t *)p;
    if (f->ctl->mode == DV_H5_VFD_DISCARD) return 0;
    const char *b = buf;
    while (n > 0) {
        ssize_t w = pwrite(f->fd, b, n, (off_t)addr);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return latch(f, errno);
        b += w, addr += (haddr_t)w, n -= (size_t)w;
    }
    if (addr > f->eof) f->eof = addr;
    return 0;
}

static herr_t vfd_truncate(H5FD_t *p, hid_t dxpl, hbool_t closing)
{
    (void)dxpl, (void)closing;
    vfd_t *f = (vfd_t *)p;
    if (f->ctl->mode == DV_H5_VFD_DISCARD || f->eoa == f->eof) return 0;
    if (ftruncate(f->fd, (off_t)f->eoa)) return latch(f, errno);
    f->eof = f->eoa;
    return 0;
}

static const H5FD_class_t vfd_class = {
    .name = "diverge-fd",
    .maxaddr = (haddr_t)INT64_MAX,
    .fc_degree = H5F_CLOSE_STRONG,
    .fapl_size = sizeof(struct dv_h5_vfd_ctl *),
    .fapl_get = fapl_get,
    .fapl_copy = fapl_copy,
    .fapl_free = fapl_free,
    .open = vfd_open,
    .close = vfd_close,
    .cmp = vfd_cmp,
    .query = vfd_query,
    .get_eoa = get_eoa,
    .set_eoa = set_eoa,
    .get_eof = get_eof,
    .get_handle = get_handle,
    .read = vfd_read,
    .write = vfd_write,
    .truncate = vfd_truncate,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

herr_t dv_h5_vfd_set(hid_t fapl, struct dv_h5_vfd_ctl *ctl)
{
    if (vfd_id < 0 || H5Iis_valid(vfd_id) <= 0) vfd_id = H5FDregister(&vfd_class);
    if (vfd_id < 0) return -1;
    return H5Pset_driver(fapl, vfd_id, &ctl);
}
