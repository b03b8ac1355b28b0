/*
 * gguf_write.c - writing GGUF v3 files that llama.cpp loads.
 *
 * Metadata is encoded into a byte buffer as it is added (keys and values are
 * copied); tensors are only described, their data borrowed from the caller
 * until dv_gguf_writer_write(). Writing streams the header, then each
 * tensor's data straight from the caller's pointer, padded with zeros to the
 * alignment as ggml's gguf writer does (after every tensor, the last one
 * included). The file appears under its name only once complete: it is
 * written to ".NAME.XXXXXX.part" beside it, fsynced and renamed (a symbolic link's
 * target is replaced, a replaced file keeps its mode: outpath.h).
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "outpath.h"

/* llama.cpp keeps tensor names in char[GGML_MAX_NAME = 64], NUL included. */
#define MAX_TENSOR_NAME 63

/* Growable byte buffer; `oom` is sticky so encoders need not check each
 * append, only the caller at the end of a value. */
struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
};

struct wtensor {
    char *name;
    int type;                     /* enum dv_type */
    uint32_t n_dims;
    int64_t ne[DV_GGUF_MAX_DIMS]; /* unused dims are 1 */
    const void *data;             /* borrowed, [nbytes] */
    size_t nbytes;
    uint64_t offset;              /* set by dv_gguf_writer_write() */
};

struct dv_gguf_writer {
    struct buf kv;         /* encoded key/values, in the order added */
    char **keys;           /* [n_kv] copies, for duplicate checks */
    uint64_t n_kv;
    size_t keys_cap;
    struct wtensor *tensors; /* [n_tensors] */
    uint64_t n_tensors;
    size_t tensors_cap;
    uint64_t alignment;
    void (*guard)(const char *tmp); /* told the temporary file's path, or NULL */
};

/* ---- encoding ---------------------------------------------------------- */

static void buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->oom || n == 0) return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* v as n little-endian bytes. */
static void put_le(struct buf *b, uint64_t v, size_t n)
{
    uint8_t bytes[8];
    for (size_t i = 0; i < n; i++) bytes[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, bytes, n);
}

static void put_u32(struct buf *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put_le(b, v, 8); }

static void put_f32(struct buf *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put_u32(b, u);
}

static void put_str(struct buf *b, const char *s, size_t len)
{
    put_u64(b, len);
    buf_put(b, s, len);
}

/* ---- writer object ----------------------------------------------------- */

dv_status dv_gguf_writer_new(struct dv_gguf_writer **out)
{
    if (!out) return dv_fail(DV_E_USAGE, "dv_gguf_writer_new: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return dv_fail(DV_E_NOMEM, "gguf writer: out of memory");
    (*out)->alignment = DV_GGUF_DEFAULT_ALIGNMENT;
    return DV_OK;
}

void dv_gguf_writer_free(struct dv_gguf_writer *w)
{
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (uint64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

void dv_gguf_writer_set_guard(struct dv_gguf_writer *w, void (*guard)(const char *tmp))
{
    if (w) w->guard = guard;
}

/* Room for element n in arr (*cap elements of sz bytes): arr itself, a
 * larger copy (*cap updated), or NULL when out of memory (arr stays valid). */
static void *grow(void *arr, size_t *cap, uint64_t n, size_t sz)
{
    if (n < *cap) return arr;
    size_t c = *cap ? *cap * 2 : 16;
    if (c > SIZE_MAX / sz) return NULL;
    void *q = realloc(arr, c * sz);
    if (q) *cap = c;
    return q;
}

/* Start key/value `key` of type vt: checks the arguments, refuses a repeated
 * key and encodes the key and type. *mark receives the buffer size before,
 * for end_kv() to roll back to. */
static dv_status begin_kv(struct dv_gguf_writer *w, const char *key, int vt,
                          size_t *mark)
{
    if (!w || !key)
        return dv_fail(DV_E_USAGE, "gguf writer: NULL writer or key");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return dv_fail(DV_E_USAGE, "gguf writer: key '%s' set twice", key);
    if (strcmp(key, "general.alignment") == 0 && vt != DV_GGUF_UINT32)
        return dv_fail(DV_E_USAGE,
                       "gguf writer: general.alignment must be uint32");
    *mark = w->kv.n;
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, (uint32_t)vt);
    return DV_OK;
}

/* Finish the key/value begun at mark: keep it, or roll it back when an
 * append ran out of memory. */
static dv_status end_kv(struct dv_gguf_writer *w, const char *key, size_t mark)
{
    char *copy = NULL;
    char **keys = NULL;
    if (!w->kv.oom)
        keys = grow(w->keys, &w->keys_cap, w->n_kv, sizeof *keys);
    if (keys) {
        w->keys = keys;
        copy = strdup(key);
    }
    if (!copy) {
        w->kv.n = mark;
        w->kv.oom = false;
        return dv_fail(DV_E_NOMEM, "gguf writer: out of memory adding '%s'",
                       key);
    }
    w->keys[w->n_kv++] = copy;
    return DV_OK;
}

/* A scalar of vt held in the low n bytes of v. */
static dv_status set_scalar(struct dv_gguf_writer *w, const char *key, int vt,
                            uint64_t v, size_t n)
{
    size_t mark;
    dv_status s = begin_kv(w, key, vt, &mark);
    if (s) return s;
    put_le(&w->kv, v, n);
    return end_kv(w, key, mark);
}

dv_status dv_gguf_writer_set_u32(struct dv_gguf_writer *w, const char *key,
                                 uint32_t v)
{
    bool align = key && strcmp(key, "general.alignment") == 0;
    if (align && (v == 0 || (v & (v - 1)) != 0))
        return dv_fail(DV_E_USAGE, "gguf writer: general.alignment %u is not "
                       "a power of two", v);
    dv_status s = set_scalar(w, key, DV_GGUF_UINT32, v, 4);
    if (!s && align) w->alignment = v;
    return s;
}

dv_status dv_gguf_writer_set_i32(struct dv_gguf_writer *w, const char *key,
                                 int32_t v)
{
    return set_scalar(w, key, DV_GGUF_INT32, (uint32_t)v, 4);
}

dv_status dv_gguf_writer_set_f32(struct dv_gguf_writer *w, const char *key,
                                 float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return set_scalar(w, key, DV_GGUF_FLOAT32, u, 4);
}

dv_status dv_gguf_writer_set_bool(struct dv_gguf_writer *w, const char *key,
                                  bool v)
{
    return set_scalar(w, key, DV_GGUF_BOOL, v ? 1 : 0, 1);
}

dv_status dv_gguf_writer_set_str(struct dv_gguf_writer *w, const char *key,
                                 const char *v)
{
    size_t mark;
    if (!v) return dv_fail(DV_E_USAGE, "gguf writer: key '%s': NULL string",
                           key ? key : "?");
    dv_status s = begin_kv(w, key, DV_GGUF_STRING, &mark);
    if (s) return s;
    put_str(&w->kv, v, strlen(v));
    return end_kv(w, key, mark);
}

/* Start an array value of n elements of type et. */
static dv_status begin_arr(struct dv_gguf_writer *w, const char *key, int et,
                           const void *v, uint64_t n, size_t *mark)
{
    if (n && !v)
        return dv_fail(DV_E_USAGE, "gguf writer: key '%s': NULL array",
                       key ? key : "?");
    dv_status s = begin_kv(w, key, DV_GGUF_ARRAY, mark);
    if (s) return s;
    put_u32(&w->kv, (uint32_t)et);
    put_u64(&w->kv, n);
    return DV_OK;
}

dv_status dv_gguf_writer_set_arr_str(struct dv_gguf_writer *w,
                                     const char *key, const char *const *v,
                                     const size_t *lens, uint64_t n)
{
    size_t mark;
    dv_status s = begin_arr(w, key, DV_GGUF_STRING, v, n, &mark);
    if (s) return s;
    for (uint64_t i = 0; i < n && !w->kv.oom; i++) {
        if (!v[i]) {
            w->kv.n = mark;
            return dv_fail(DV_E_USAGE, "gguf writer: key '%s': string %llu "
                           "is NULL", key, (unsigned long long)i);
        }
        put_str(&w->kv, v[i], lens ? lens[i] : strlen(v[i]));
    }
    return end_kv(w, key, mark);
}

dv_status dv_gguf_writer_set_arr_f32(struct dv_gguf_writer *w,
                                     const char *key, const float *v,
                                     uint64_t n)
{
    size_t mark;
    dv_status s = begin_arr(w, key, DV_GGUF_FLOAT32, v, n, &mark);
    if (s) return s;
    for (uint64_t i = 0; i < n && !w->kv.oom; i++) put_f32(&w->kv, v[i]);
    return end_kv(w, key, mark);
}

dv_status dv_gguf_writer_set_arr_i32(struct dv_gguf_writer *w,
                                     const char *key, const int32_t *v,
                                     uint64_t n)
{
    size_t mark;
    dv_status s = begin_arr(w, key, DV_GGUF_INT32, v, n, &mark);
    if (s) return s;
    for (uint64_t i = 0; i < n && !w->kv.oom; i++)
        put_u32(&w->kv, (uint32_t)v[i]);
    return end_kv(w, key, mark);
}

/* ---- tensors ----------------------------------------------------------- */

/* Check the shape and type of t (name already set) and compute its size. */
static dv_status check_tensor(struct wtensor *t, const int64_t *ne)
{
    const char *fn = "dv_gguf_writer_add_tensor";
    if (t->n_dims < 1 || t->n_dims > DV_GGUF_MAX_DIMS)
        return dv_fail(DV_E_USAGE, "%s: tensor '%s': %u dims (1..%d)", fn,
                       t->name, t->n_dims, DV_GGUF_MAX_DIMS);
    int64_t elems = 1;
    for (uint32_t d = 0; d < DV_GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < t->n_dims ? ne[d] : 1;
        if (t->ne[d] < 0 || __builtin_mul_overflow(elems, t->ne[d], &elems))
            return dv_fail(DV_E_USAGE, "%s: tensor '%s': ne[%u] = %lld is "
                           "negative or makes the size overflow", fn, t->name,
                           d, (long long)t->ne[d]);
    }
    size_t bytes;
    if (dv_row_size(t->type, t->ne[0], &bytes)) {
        char pre[128];
        snprintf(pre, sizeof pre, "%s: tensor '%s'", fn, t->name);
        return dv_fail_prefix(DV_E_USAGE, pre);
    }
    for (int d = 1; d < DV_GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(bytes, (size_t)t->ne[d], &bytes))
            return dv_fail(DV_E_USAGE, "%s: tensor '%s': size overflows", fn,
                           t->name);
    if (bytes && !t->data)
        return dv_fail(DV_E_USAGE, "%s: tensor '%s': data is NULL", fn,
                       t->name);
    t->nbytes = bytes;
    return DV_OK;
}

dv_status dv_gguf_writer_add_tensor(struct dv_gguf_writer *w,
                                    const char *name, int type,
                                    uint32_t n_dims, const int64_t *ne,
                                    const void *data)
{
    const char *fn = "dv_gguf_writer_add_tensor";
    if (!w || !name || !ne)
        return dv_fail(DV_E_USAGE, "%s: NULL writer, name or ne", fn);
    if (strlen(name) > MAX_TENSOR_NAME)
        return dv_fail(DV_E_USAGE, "%s: tensor name '%.64s...' is longer "
                       "than %d bytes", fn, name, MAX_TENSOR_NAME);
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return dv_fail(DV_E_USAGE, "%s: tensor '%s' added twice", fn,
                           name);
    struct wtensor t = {.name = (char *)name, .type = type, .n_dims = n_dims,
                        .data = data};
    dv_status s = check_tensor(&t, ne);
    if (s) return s;
    struct wtensor *ts = grow(w->tensors, &w->tensors_cap, w->n_tensors,
                              sizeof *ts);
    if (ts) w->tensors = ts;
    if (!ts || !(t.name = strdup(name)))
        return dv_fail(DV_E_NOMEM, "%s: out of memory", fn);
    w->tensors[w->n_tensors++] = t;
    return DV_OK;
}

/* ---- writing ----------------------------------------------------------- */

static uint64_t pad_to(uint64_t n, uint64_t a) { return (a - n % a) % a; }

/* Give each tensor its offset in the data section; fails when the total
 * overflows. */
static dv_status assign_offsets(struct dv_gguf_writer *w, const char *path)
{
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        struct wtensor *t = &w->tensors[i];
        t->offset = off;
        if (__builtin_add_overflow(off, (uint64_t)t->nbytes, &off) ||
            __builtin_add_overflow(off, pad_to(off, w->alignment), &off))
            return dv_fail(DV_E_USAGE, "%s: data section size overflows",
                           path);
    }
    return DV_OK;
}

/* Everything before the data section, padding included, into b. */
static void encode_header(const struct dv_gguf_writer *w, struct buf *b)
{
    buf_put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, w->n_tensors);
    put_u64(b, w->n_kv);
    buf_put(b, w->kv.p, w->kv.n);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        put_str(b, t->name, strlen(t->name));
        put_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(b, (uint64_t)t->ne[d]);
        put_u32(b, (uint32_t)t->type);
        put_u64(b, t->offset);
    }
    static const uint8_t zeros[64];
    for (uint64_t k = pad_to(b->n, w->alignment); k > 0;) {
        size_t n = k < sizeof zeros ? (size_t)k : sizeof zeros;
        buf_put(b, zeros, n);
        k -= n;
    }
}

/* n bytes from p to fd, across short writes and EINTR; sets errno on
 * failure. */
static bool write_all(int fd, const void *p, size_t n)
{
    const uint8_t *q = p;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t r = write(fd, q, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = EIO;
            return false;
        }
        q += r;
        n -= (size_t)r;
    }
    return true;
}

static bool write_zeros(int fd, uint64_t n)
{
    static const uint8_t zeros[4096];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (!write_all(fd, zeros, k)) return false;
        n -= k;
    }
    return true;
}

/* Header, then each tensor's data and padding, to fd. */
static bool write_body(const struct dv_gguf_writer *w, int fd,
                       const struct buf *hdr)
{
    if (!write_all(fd, hdr->p, hdr->n)) return false;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        if (!write_all(fd, t->data, t->nbytes) ||
            !write_zeros(fd, pad_to(t->nbytes, w->alignment)))
            return false;
    }
    return true;
}

/* Flush the directory holding path so the rename survives a crash. Best
 * effort: the file itself is already complete and fsynced. */
static void sync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir) d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Fill fd (made with the destination's mode, dv_outpath_mktemp): header
 * and tensors, fsync. Returns the step that failed (errno tells why) or
 * NULL. */
static const char *fill_file(const struct dv_gguf_writer *w, int fd,
                             const struct buf *hdr)
{
    if (!write_body(w, fd, hdr)) return "write";
    if (fsync(fd) != 0) return "fsync";
    return NULL;
}

/* Write hdr and the tensors to a new temporary file beside the destination
 * (outpath.h: path, or its target when it is a symbolic link), then rename
 * it over the destination. On failure the temporary file is removed and
 * path is left as it was. */
static dv_status commit(const struct dv_gguf_writer *w, const char *path,
                        const struct buf *hdr)
{
    struct dv_outpath op;
    dv_status s = dv_outpath_resolve(path, &op);
    if (s) return s;
    if (op.kind == DV_OUTPATH_STREAM) {
        dv_outpath_free(&op);
        return dv_fail(DV_E_USAGE, "%s: is %s; a GGUF file is written to a regular "
                       "file", path, op.what);
    }
    char *tmp;
    int fd;
    s = dv_outpath_mktemp(&op, path, &tmp, &fd);
    if (s) {
        dv_outpath_free(&op);
        return s;
    }
    if (w->guard) w->guard(tmp);
    const char *step = fill_file(w, fd, hdr);
    int err = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        err = errno;
    }
    if (!step && rename(tmp, op.path) != 0) {
        step = "rename";
        err = errno;
    }
    if (step) {
        unlink(tmp);
        s = dv_fail(DV_E_IO, "%s: cannot %s %s: %s", path, step, tmp,
                    strerror(err));
    } else {
        sync_dir(op.path);
    }
    if (w->guard) w->guard(NULL);
    free(tmp);
    dv_outpath_free(&op);
    return s;
}

dv_status dv_gguf_writer_write(struct dv_gguf_writer *w, const char *path)
{
    if (!w || !path)
        return dv_fail(DV_E_USAGE, "dv_gguf_writer_write: NULL writer or path");
    dv_status s = assign_offsets(w, path);
    if (s) return s;
    struct buf hdr = {0};
    encode_header(w, &hdr);
    if (hdr.oom) s = dv_fail(DV_E_NOMEM, "%s: out of memory", path);
    else s = commit(w, path, &hdr);
    free(hdr.p);
    return s;
}
