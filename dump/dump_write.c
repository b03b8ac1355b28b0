/*
 * dump_write.c - the dump writer of include/diverge.h: schema diverge-dump
 * v1 through the HDF5 C API, under a temporary name renamed on commit.
 *
 * The temporary file ".NAME.XXXXXX.part" sits beside the destination (so
 * the rename is atomic) and is held with flock(LOCK_EX) for as long as the
 * writer lives. HDF5's own file locking is off for it: our lock is the one
 * that says "a live writer owns this file". dv_dump_create() removes
 * temporary files of the same destination whose lock it can take: their
 * writer died (SIGKILL, power loss) before it could clean up.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diverge.h"
#include "error.h"
#include "h5util.h"
#include "h5vfd.h"
#include "dump.h"
#include "model.h"
#include "outpath.h"
#include "ops.h"
#include "quant.h"
#include "schema.h"
#include "types.h"

_Static_assert((int)DV_DUMP_F32 == (int)DV_TYPE_F32 && (int)DV_DUMP_F16 == (int)DV_TYPE_F16 &&
               (int)DV_DUMP_F64 == (int)DV_TYPE_F64 && (int)DV_DUMP_BF16 == (int)DV_TYPE_BF16,
               "dump element types are ggml (and dv_type) ids");

/* Chunks hold whole token rows, about this many bytes: big enough that
 * per-chunk overhead is noise, small enough that reading one token's rows
 * of a long pass touches little else. */
#define CHUNK_BYTES (1 << 20)
/* deflate level with DV_DUMP_COMPRESS: float mantissas barely compress,
 * and level 1 gets nearly all of what level 9 does at a fraction of the
 * time. */
#define DEFLATE_LEVEL 1

struct dv_dump {
    char *path, *tmp;      /* destination as given (for messages), temporary file */
    char *dest;            /* the file renamed onto: path, or a symlink's target */
    mode_t mode;           /* the dump's permissions: a replaced file's (outpath.h) */
    int fd;                /* the temporary file, flocked */
    struct dv_h5_vfd_ctl vfd; /* HDF5 writes through fd (h5vfd.h) */
    hid_t file, passes, pass;
    unsigned flags;
    bool failed;
    bool have[32];         /* schema attributes set, by dv_schema_attrs index */
    struct dv_config cfg;  /* shape hyperparameters, for the tensor checks */
    int64_t pass_index, pos0, n_tokens, last_order;
    int64_t n_pass_written;
    hid_t dapl;            /* dataset access: no chunk cache */
    float *conv;           /* f16/bf16 -> f32 scratch */
    size_t conv_cap;
};

int dv_dump_api_version(void) { return DV_DUMP_API_VERSION; }

/* Record an HDF5 failure: "PATH: what (reason)". */
static dv_status h5_fail(dv_dump *d, const char *what)
{
    char why[200];
    d->failed = true;
    return dv_fail(DV_E_IO, "%s: %s (%s)", d->path, what, dv_h5_reason(why, sizeof why));
}

/* The outcome of HDF5 calls that returned r: a write the file driver
 * failed (HDF5 was told it worked; h5vfd.c says why), else an HDF5
 * failure, else DV_OK. */
static dv_status h5_check(dv_dump *d, herr_t r, const char *what)
{
    if (d->vfd.err) {
        d->failed = true;
        return dv_fail(DV_E_IO, "%s: %s (%s)", d->path, what, strerror(d->vfd.err));
    }
    return r < 0 ? h5_fail(d, what) : DV_OK;
}

static dv_status usage_fail(dv_dump *d, dv_status s)
{
    d->failed = true;
    return dv_fail_prefix(s, d->path);
}

/* ---- the temporary file ------------------------------------------------ */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Is `name` ".BASE.XXXXXX.part"? */
static bool is_temp_of(const char *name, const char *base)
{
    size_t n = strlen(name), b = strlen(base);
    return n == b + 13 && name[0] == '.' && !strncmp(name + 1, base, b) &&
           name[b + 1] == '.' && !strcmp(name + b + 8, ".part");
}

/* Remove temporary files of `base` in dir whose writer is gone. */
static void remove_stale(const char *dir, const char *base)
{
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!is_temp_of(de->d_name, base)) continue;
        int fd = openat(dirfd(dp), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st;
        if (!fstat(fd, &st) && S_ISREG(st.st_mode) && !flock(fd, LOCK_EX | LOCK_NB))
            unlinkat(dirfd(dp), de->d_name, 0);
        close(fd);
    }
    closedir(dp);
}

/* Create and lock the temporary file. A concurrent remove_stale() may
 * unlink it between mkstemps and flock; then try again. */
static dv_status make_temp(dv_dump *d)
{
    char *dir = dir_of(d->dest);
    if (!dir) return dv_fail(DV_E_NOMEM, "out of memory");
    remove_stale(dir, base_of(d->dest));
    free(dir);
    /* the dump gets a replaced file's mode, else a new file's usual one */
    const struct dv_outpath op = {.path = d->dest, .mode = d->mode};
    for (int tries = 0;; tries++) {
        free(d->tmp);
        dv_status s = dv_outpath_mktemp(&op, d->path, &d->tmp, &d->fd);
        if (s) return s;
        struct stat st;
        if (!flock(d->fd, LOCK_EX | LOCK_NB) && !fstat(d->fd, &st) && st.st_nlink > 0)
            return DV_OK;
        close(d->fd);
        d->fd = -1;
        if (tries == 8) return dv_fail(DV_E_IO, "%s: cannot hold a temporary file", d->path);
    }
}

/* ---- attributes ---------------------------------------------------------- */

/* Root attributes may be set twice (the last value wins); objects made
 * by the writer itself get each attribute once, so only the file's root
 * pays for the existence check. */
static herr_t put_attr(hid_t obj, const char *key, hid_t mem, hid_t file_type,
                       const void *v)
{
    if (H5Iget_type(obj) == H5I_FILE && H5Aexists(obj, key) > 0 && H5Adelete(obj, key) < 0)
        return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, key, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, mem, v);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return r;
}

static herr_t put_str(hid_t obj, const char *key, const char *v)
{
    hid_t t = dv_h5_str_type();
    herr_t r = t < 0 ? -1 : put_attr(obj, key, t, t, &v);
    if (t >= 0) H5Tclose(t);
    return r;
}

static herr_t put_int(hid_t obj, const char *key, int64_t v)
{
    return put_attr(obj, key, H5T_NATIVE_INT64, H5T_STD_I64LE, &v);
}

static herr_t put_real(hid_t obj, const char *key, double v)
{
    return put_attr(obj, key, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &v);
}

/* Common checks of dv_dump_set_*: a usable dump before its first pass, a
 * key the caller may set with this kind. Marks schema keys as set. */
static dv_status check_set(dv_dump *d, const char *key, int kind)
{
    if (!d) return dv_fail(DV_E_USAGE, "dv_dump_set_*: no dump");
    if (d->failed) return dv_fail(DV_E_USAGE, "%s: the dump failed earlier", d->path);
    if (!key || !dv_schema_key_ok(key))
        return usage_fail(d, dv_fail(DV_E_USAGE, "attribute key '%s' is not 1..63 of "
                                     "[A-Za-z0-9_.-]", key ? key : "(null)"));
    if (d->n_pass_written || d->pass >= 0)
        return usage_fail(d, dv_fail(DV_E_USAGE, "attribute %s set after the first "
                                     "pass", key));
    int n;
    const struct dv_attr_spec *all = dv_schema_attrs(&n), *a = dv_schema_attr(key);
    if (a && a->reserved)
        return usage_fail(d, dv_fail(DV_E_USAGE, "attribute %s is set by the "
                                     "library", key));
    static const char *const kinds[] = {"a string", "an integer", "a real"};
    if (a && a->kind != kind)
        return usage_fail(d, dv_fail(DV_E_USAGE, "attribute %s is %s", key, kinds[a->kind]));
    if (a) d->have[a - all] = true;
    return DV_OK;
}

/* Write root attribute key of `kind` from *v (a char *, int64_t or double). */
static dv_status store_root(dv_dump *d, const char *key, int kind, const void *v)
{
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    herr_t r = kind == DV_ATTR_STR ? put_str(d->file, key, *(const char *const *)v)
             : kind == DV_ATTR_INT ? put_int(d->file, key, *(const int64_t *)v)
             : put_real(d->file, key, *(const double *)v);
    dv_h5_loud(&q);
    return h5_check(d, r, "cannot write an attribute");
}

dv_status dv_dump_set_str(dv_dump *d, const char *key, const char *value)
{
    dv_status s = check_set(d, key, DV_ATTR_STR);
    if (s) return s;
    if (!value)
        return usage_fail(d, dv_fail(DV_E_USAGE, "attribute %s: no value", key));
    if ((s = dv_schema_check_str(key, value, DV_E_USAGE))) return usage_fail(d, s);
    if (!strcmp(key, "arch"))
        snprintf(d->cfg.arch, sizeof d->cfg.arch, "%s", value);
    return store_root(d, key, DV_ATTR_STR, &value);
}

dv_status dv_dump_set_int(dv_dump *d, const char *key, int64_t value)
{
    dv_status s = check_set(d, key, DV_ATTR_INT);
    if (s) return s;
    if ((s = dv_schema_set_hparam(&d->cfg, key, value, DV_E_USAGE))) return usage_fail(d, s);
    return store_root(d, key, DV_ATTR_INT, &value);
}

dv_status dv_dump_set_real(dv_dump *d, const char *key, double value)
{
    dv_status s = check_set(d, key, DV_ATTR_REAL);
    if (s) return s;
    if ((s = dv_schema_check_real(key, value, DV_E_USAGE))) return usage_fail(d, s);
    return store_root(d, key, DV_ATTR_REAL, &value);
}

/* ---- create -------------------------------------------------------------- */

static void utc_now(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Create the HDF5 file on the temporary name with the reserved attributes
 * and an empty /passes. */
static dv_status open_h5(dv_dump *d, const char *backend)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    d->vfd = (struct dv_h5_vfd_ctl){.fd = d->fd};
    /* STRONG: closing the file closes every object in it, so the file is
     * complete on disk when H5Fclose returns. The file driver (h5vfd.h)
     * writes through our locked descriptor, so HDF5 takes no lock of its
     * own and no close can fail.
     * V110: the 1.10 file format, whose chunk indexes for datasets of one
     * chunk or a fixed number of chunks take no B-tree (a dump's datasets
     * are mostly small; the v1 B-tree node was ~2 KiB of each). Read by
     * HDF5 >= 1.10: Debian 12's h5py, h5dump and HDFView 3. */
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        dv_h5_vfd_set(fapl, &d->vfd) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return h5_fail(d, "cannot set up HDF5");
    }
    d->file = H5Fcreate(d->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (d->file < 0) return h5_fail(d, "cannot create the HDF5 file");
    char now[32], tool[64];
    utc_now(now);
    snprintf(tool, sizeof tool, "diverge %s", dv_version());
    const char *reserved[][2] = {{"schema", DV_SCHEMA_NAME}, {"tool_version", tool},
                                 {"created_utc", now}, {"backend", backend}};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (put_str(d->file, reserved[i][0], reserved[i][1]) < 0)
            return h5_fail(d, "cannot write an attribute");
    if (put_int(d->file, "schema_version", DV_DUMP_SCHEMA_VERSION) < 0)
        return h5_fail(d, "cannot write an attribute");
    int n;
    const struct dv_attr_spec *all = dv_schema_attrs(&n);
    for (int i = 0; i < n; i++) d->have[i] = all[i].reserved;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl >= 0) {
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
        H5Pset_obj_track_times(gcpl, 0);
    }
    d->passes = gcpl < 0 ? -1 : H5Gcreate2(d->file, "passes", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0) H5Pclose(gcpl);
    return h5_check(d, d->passes < 0 ? -1 : 0, "cannot create /passes");
}

dv_status dv_dump_create(const char *path, const char *backend, unsigned flags,
                         dv_dump **out)
{
    *out = NULL;
    if (!path || !*path || path[strlen(path) - 1] == '/')
        return dv_fail(DV_E_USAGE, "dv_dump_create: '%s' is not a file path",
                       path ? path : "(null)");
    if (!backend || !*backend || !dv_schema_utf8_ok(backend))
        return dv_fail(DV_E_USAGE, "%s: the backend name must be a non-empty "
                       "UTF-8 string", path);
    if (flags & ~(DV_DUMP_FLOAT64 | DV_DUMP_COMPRESS))
        return dv_fail(DV_E_USAGE, "%s: unknown dump flags 0x%x", path, flags);
    if (strlen(base_of(path)) > NAME_MAX - 13)
        return dv_fail(DV_E_USAGE, "%s: the file name is too long", path);
    if ((flags & DV_DUMP_COMPRESS) &&
        (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0 || H5Zfilter_avail(H5Z_FILTER_SHUFFLE) <= 0))
        return dv_fail(DV_E_USAGE, "%s: this HDF5 library has no deflate filter", path);
    struct dv_outpath op;
    dv_status s = dv_outpath_resolve(path, &op);
    if (s) return s;
    if (op.kind == DV_OUTPATH_STREAM) {
        dv_outpath_free(&op);
        return dv_fail(DV_E_USAGE, "%s: is %s; a dump is written to a regular file "
                       "(HDF5 seeks)", path, op.what);
    }
    dv_h5_init();
    dv_dump *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path))) {
        free(d);
        dv_outpath_free(&op);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    d->dest = op.path;
    d->mode = op.mode;
    if (strlen(base_of(d->dest)) > NAME_MAX - 13) {
        dv_dump_close(d, 0);
        return dv_fail(DV_E_USAGE, "%s: the file name of its target is too long", path);
    }
    d->fd = -1;
    d->file = d->passes = d->pass = -1;
    /* Each tensor is written once, whole: caching its chunks only adds a
     * copy of every byte. */
    d->dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (d->dapl >= 0) H5Pset_chunk_cache(d->dapl, 0, 0, 1.0);
    d->flags = flags;
    d->last_order = -1;
    s = make_temp(d);
    if (!s) {
        struct dv_h5_quiet q;
        dv_h5_quiet(&q);
        s = open_h5(d, backend);
        dv_h5_loud(&q);
    }
    if (s) {
        /* keep the message: dv_dump_close records none when discarding */
        dv_dump_close(d, 0);
        return s;
    }
    *out = d;
    return DV_OK;
}

/* ---- passes -------------------------------------------------------------- */

/* The schema's required model attributes are all set. */
static dv_status check_required(dv_dump *d)
{
    int n;
    const struct dv_attr_spec *all = dv_schema_attrs(&n);
    for (int i = 0; i < n; i++)
        if (all[i].required && !d->have[i])
            return usage_fail(d, dv_fail(DV_E_USAGE, "attribute %s was not set "
                                         "before the first pass", all[i].key));
    dv_status s = dv_schema_finish_config(&d->cfg, DV_E_USAGE);
    if (s) return usage_fail(d, s);
    return DV_OK;
}

static dv_status check_usable(const dv_dump *d, const char *fn)
{
    if (!d) return dv_fail(DV_E_USAGE, "%s: no dump", fn);
    if (d->failed) return dv_fail(DV_E_USAGE, "%s: the dump failed earlier", d->path);
    return DV_OK;
}

dv_status dv_dump_end_pass(dv_dump *d)
{
    dv_status s = check_usable(d, "dv_dump_end_pass");
    if (s || d->pass < 0) return s;
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    herr_t r = H5Gclose(d->pass);
    dv_h5_loud(&q);
    d->pass = -1;
    return h5_check(d, r, "cannot close a pass");
}

dv_status dv_dump_begin_pass(dv_dump *d, int64_t index, int64_t pos0,
                             int64_t n_tokens, const int32_t *tokens)
{
    dv_status s = check_usable(d, "dv_dump_begin_pass");
    if (!s) s = dv_dump_end_pass(d);
    if (!s && !d->n_pass_written) s = check_required(d);
    if (s) return s;
    if (index < 0) index = d->pass_index + (d->n_pass_written > 0);
    if (d->n_pass_written && index <= d->pass_index)
        return usage_fail(d, dv_fail(DV_E_USAGE, "pass %lld after pass %lld (passes "
                                     "go in order)", (long long)index,
                                     (long long)d->pass_index));
    if (index >= ((int64_t)1 << 31) || pos0 < 0 || n_tokens < 1 || !tokens ||
        pos0 + n_tokens >= ((int64_t)1 << 31))
        return usage_fail(d, dv_fail(DV_E_USAGE, "pass %lld: bad pos0 %lld / "
                                     "n_tokens %lld", (long long)index,
                                     (long long)pos0, (long long)n_tokens));
    for (int64_t t = 0; t < n_tokens; t++)
        if (tokens[t] < 0 || tokens[t] >= d->cfg.n_vocab)
            return usage_fail(d, dv_fail(DV_E_USAGE, "pass %lld: token %d is not in "
                                         "the vocabulary of %lld", (long long)index,
                                         tokens[t], (long long)d->cfg.n_vocab));
    char name[24];
    dv_schema_pass_name(index, name);
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl >= 0) {
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
        H5Pset_obj_track_times(gcpl, 0);
    }
    d->pass = gcpl < 0 ? -1 : H5Gcreate2(d->passes, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0) H5Pclose(gcpl);
    herr_t r = d->pass < 0 ? -1 : 0;
    if (!r) r = put_int(d->pass, "pos0", pos0);
    if (!r) r = put_int(d->pass, "n_tokens", n_tokens);
    hsize_t dim = (hsize_t)n_tokens;
    hid_t sp = r ? -1 : H5Screate_simple(1, &dim, NULL);
    hid_t ds = sp < 0 ? -1 : H5Dcreate2(d->pass, "tokens", H5T_STD_I32LE, sp,
                                        H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    r = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens);
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    dv_h5_loud(&q);
    if ((s = h5_check(d, r, "cannot write a pass"))) return s;
    d->pass_index = index;
    d->pos0 = pos0;
    d->n_tokens = n_tokens;
    d->last_order = -1;
    d->n_pass_written++;
    return DV_OK;
}

/* ---- tensors ------------------------------------------------------------- */

/* Dataset creation properties: chunks of whole token rows (the token axis
 * is dim 1 of [H, T, n_kv] scores, dim 0 otherwise), optional filters. */
static hid_t make_dcpl(const dv_dump *d, const char *name, int n_dims,
                       const hsize_t *dims, size_t elem)
{
    struct dv_schema_tensor t;
    int tok_axis = dv_schema_lookup(name, d->cfg.n_layer, &t) &&
                   t.shape == DV_SHAPE_HTKV ? 1 : 0;
    if (tok_axis >= n_dims) tok_axis = 0;
    hsize_t chunk[4];
    size_t row = elem;
    for (int i = 0; i < n_dims; i++) {
        chunk[i] = i < tok_axis ? 1 : dims[i];
        if (i > tok_axis) row *= dims[i];
    }
    /* as few chunks as fit the budget, of equal rows: the last one is
     * stored full size, so 512 rows of 372 would waste 232 */
    hsize_t rows = row >= CHUNK_BYTES ? 1 : CHUNK_BYTES / row;
    hsize_t n_chunks = (dims[tok_axis] + rows - 1) / rows;
    chunk[tok_axis] = (dims[tok_axis] + n_chunks - 1) / n_chunks;
    /* HDF5 chunks are limited to 4 GiB; rows of a real model are far
     * smaller, and a larger row is cut into pieces of the last dim. */
    for (int i = n_dims - 1; i > tok_axis; i--) {
        uint64_t bytes = elem;
        for (int j = 0; j < n_dims; j++) bytes *= chunk[j];
        if (bytes < ((uint64_t)1 << 31)) break;
        chunk[i] = chunk[i] / (bytes >> 30) ? chunk[i] / (bytes >> 30) : 1;
    }
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    if (p < 0) return p;
    /* no modification times: they cost a message per object, and without
     * them the same run gives the same bytes but for created_utc */
    if (H5Pset_obj_track_times(p, 0) < 0 || H5Pset_chunk(p, n_dims, chunk) < 0 ||
        ((d->flags & DV_DUMP_COMPRESS) &&
         (H5Pset_shuffle(p) < 0 || H5Pset_deflate(p, DEFLATE_LEVEL) < 0))) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

/* data as H5Dwrite should get it: f32 and f64 as they are when the file
 * stores them (or f32 widened exactly by HDF5 into a float64 file);
 * f16/bf16 widened, and f64 rounded, to f32 here. (HDF5's own double to
 * float conversion makes values between FLT_MAX and FLT_MAX + half an ulp
 * inf, where IEEE rounding gives FLT_MAX.) */
static const void *mem_data(dv_dump *d, int type, const void *data, int64_t n,
                            hid_t *mem)
{
    const bool f64 = d->flags & DV_DUMP_FLOAT64;
    if (type == DV_TYPE_F32) return *mem = H5T_NATIVE_FLOAT, data;
    if (type == DV_TYPE_F64 && f64) return *mem = H5T_NATIVE_DOUBLE, data;
    if ((size_t)n > d->conv_cap) {
        float *p = realloc(d->conv, (size_t)n * sizeof *p);
        if (!p) return NULL;
        d->conv = p;
        d->conv_cap = (size_t)n;
    }
    if (type == DV_TYPE_F64)
        for (int64_t i = 0; i < n; i++) d->conv[i] = (float)((const double *)data)[i];
    else
        dv_dequant_row(type, data, d->conv, n);
    *mem = H5T_NATIVE_FLOAT;
    return d->conv;
}

dv_status dv_dump_write(dv_dump *d, const char *name, int layer, const char *op,
                        int64_t order, int n_dims, const int64_t *shape,
                        enum dv_dump_type type, const void *data)
{
    dv_status s = check_usable(d, "dv_dump_write");
    if (s) return s;
    if (d->pass < 0)
        return usage_fail(d, dv_fail(DV_E_USAGE, "dv_dump_write outside a pass"));
    if (!name || !dv_schema_name_ok(name))
        return usage_fail(d, dv_fail(DV_E_USAGE, "'%s' is not a tensor name "
                                     "(1..63 printable bytes, no '/', not 'tokens')",
                                     name ? name : "(null)"));
    if (type != DV_DUMP_F32 && type != DV_DUMP_F64 && type != DV_DUMP_F16 &&
        type != DV_DUMP_BF16)
        return usage_fail(d, dv_fail(DV_E_USAGE, "tensor %s: element type %d is not "
                                     "f32, f64, f16 or bf16", name, (int)type));
    if (!shape || !data)
        return usage_fail(d, dv_fail(DV_E_USAGE, "tensor %s: no shape or data", name));
    struct dv_schema_tensor t;
    bool known = dv_schema_lookup(name, d->cfg.n_layer, &t);
    if (!op && known) op = dv_op_name(t.op);
    s = dv_schema_check_tensor(&d->cfg, d->pos0, d->n_tokens, name, layer, op, n_dims,
                               shape, DV_E_USAGE);
    if (s) return usage_fail(d, s);
    if (order < 0) order = d->last_order + 1;
    if (order <= d->last_order)
        return usage_fail(d, dv_fail(DV_E_USAGE, "tensor %s: order %lld after %lld "
                                     "(tensors go in execution order)", name,
                                     (long long)order, (long long)d->last_order));
    hsize_t dims[4];
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= shape[i], dims[i] = (hsize_t)shape[i];
    hid_t mem;
    const void *buf = mem_data(d, type, data, n, &mem);
    if (!buf) return usage_fail(d, dv_fail(DV_E_NOMEM, "out of memory"));

    const bool f64 = d->flags & DV_DUMP_FLOAT64;
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    hid_t sp = H5Screate_simple(n_dims, dims, NULL);
    hid_t dcpl = sp < 0 ? -1 : make_dcpl(d, name, n_dims, dims, f64 ? 8 : 4);
    hid_t ds = dcpl < 0 ? -1 : H5Dcreate2(d->pass, name, f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE,
                                          sp, H5P_DEFAULT, dcpl, d->dapl);
    if (ds < 0 && dcpl >= 0 && H5Lexists(d->pass, name, H5P_DEFAULT) > 0) {
        H5Pclose(dcpl);
        H5Sclose(sp);
        dv_h5_loud(&q);
        return usage_fail(d, dv_fail(DV_E_USAGE, "tensor %s written twice in pass "
                                     "%lld", name, (long long)d->pass_index));
    }
    herr_t r = ds < 0 ? -1 : H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (!r) r = put_int(ds, "layer", layer);
    if (!r) r = put_str(ds, "op", op);
    if (!r) r = put_int(ds, "order", order);
    if (ds >= 0 && H5Dclose(ds) < 0) r = -1;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    dv_h5_loud(&q);
    if ((s = h5_check(d, r, "cannot write a tensor"))) return s;
    d->last_order = order;
    return DV_OK;
}

/* ---- close --------------------------------------------------------------- */

static dv_status sync_dir(const char *path)
{
    char *dir = dir_of(path);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(dir);
    if (fd < 0) return DV_OK; /* the rename happened; durability is best effort */
    fsync(fd);
    close(fd);
    return DV_OK;
}

static dv_status commit(dv_dump *d)
{
    dv_status s = dv_dump_end_pass(d);
    if (!s && !d->n_pass_written) s = check_required(d);
    if (s) return s;
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    herr_t r = H5Gclose(d->passes);
    d->passes = -1;
    /* After a failed flush, close without writing: the close itself must
     * not fail (h5vfd.c says why). */
    if (r >= 0 && H5Fflush(d->file, H5F_SCOPE_GLOBAL) < 0) r = -1;
    if (r < 0) d->vfd.mode = DV_H5_VFD_DISCARD;
    if (H5Fclose(d->file) < 0) r = -1;
    d->file = -1;
    dv_h5_loud(&q);
    if ((s = h5_check(d, r, "cannot finish the file"))) return s;
    if (fsync(d->fd))
        return d->failed = true, dv_fail(DV_E_IO, "%s: %s", d->path, strerror(errno));
    if (rename(d->tmp, d->dest))
        return d->failed = true, dv_fail(DV_E_IO, "%s: cannot rename %s onto it: %s",
                                         d->path, d->tmp, strerror(errno));
    free(d->tmp);
    d->tmp = NULL; /* renamed: nothing to remove */
    return sync_dir(d->dest);
}

dv_status dv_dump_close(dv_dump *d, int commit_it)
{
    if (!d) return DV_OK;
    dv_status s = DV_OK;
    if (commit_it) s = d->failed ? dv_fail(DV_E_USAGE, "%s: the dump failed earlier; "
                                           "not committed", d->path) : commit(d);
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    /* not committed: nothing more to write, and so nothing can fail */
    d->vfd.mode = DV_H5_VFD_DISCARD;
    if (d->pass >= 0) H5Gclose(d->pass);
    if (d->passes >= 0) H5Gclose(d->passes);
    if (d->file >= 0) H5Fclose(d->file);
    dv_h5_loud(&q);
    if (d->dapl >= 0) H5Pclose(d->dapl);
    if (d->tmp) unlink(d->tmp);
    if (d->fd >= 0) close(d->fd); /* releases the lock after the unlink */
    free(d->tmp);
    free(d->path);
    free(d->dest);
    free(d->conv);
    free(d);
    return s;
}

const char *dv_dump_temp_path(const dv_dump *d) { return d ? d->tmp : NULL; }
