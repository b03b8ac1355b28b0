/*
 * gguf.h - reading and writing GGUF files (versions 2 and 3).
 *
 * The reader maps the file read-only and validates everything before handing
 * anything out: every count, string length, array length, dimension, element
 * count, byte size and offset is checked against the file size and for
 * integer overflow, so a hostile file gives a DV_E_INPUT status with a
 * message naming the file and the field, never a crash.
 *
 * Layout (little-endian): magic "GGUF", u32 version, u64 n_tensors,
 * u64 n_kv (v1 used u32 counts: unsupported), then n_kv of
 * {string key, u32 value type, value}, then n_tensors of
 * {string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset},
 * padding to general.alignment (default 32), then the tensor data; each
 * tensor's offset is relative to the start of the data section and must be a
 * multiple of the alignment. A string is u64 length + bytes (no NUL).
 * An array is u32 element type + u64 count + elements (arrays may nest).
 */
#ifndef DV_GGUF_H
#define DV_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

#define DV_GGUF_MAX_DIMS 4
#define DV_GGUF_DEFAULT_ALIGNMENT 32
/* Deepest nesting of arrays the reader accepts (an array of scalars is depth
 * 1). llama.cpp writes none nested; the limit keeps a crafted file from
 * exhausting the stack. */
#define DV_GGUF_MAX_ARRAY_DEPTH 8

enum dv_gguf_vtype {
    DV_GGUF_UINT8 = 0,
    DV_GGUF_INT8 = 1,
    DV_GGUF_UINT16 = 2,
    DV_GGUF_INT16 = 3,
    DV_GGUF_UINT32 = 4,
    DV_GGUF_INT32 = 5,
    DV_GGUF_FLOAT32 = 6,
    DV_GGUF_BOOL = 7,
    DV_GGUF_STRING = 8,
    DV_GGUF_ARRAY = 9,
    DV_GGUF_UINT64 = 10,
    DV_GGUF_INT64 = 11,
    DV_GGUF_FLOAT64 = 12,
    DV_GGUF_VTYPE_COUNT
};

/* "uint8", "string", ... or "?" */
const char *dv_gguf_vtype_name(int vt);

/* A string inside the mapped file: not NUL-terminated. */
struct dv_gguf_str {
    uint64_t len;
    const char *ptr;
};

/* A metadata value. Scalars are decoded into the union; arrays keep their
 * element type and count, and for element types other than STRING and ARRAY
 * `data` points at the packed little-endian elements inside the mapping.
 * Arrays of strings are decoded into `strs`, nested arrays into `items`. */
struct dv_gguf_value {
    enum dv_gguf_vtype type;
    union {
        uint64_t u64; /* UINT8..UINT64 and BOOL (0/1) */
        int64_t i64;  /* INT8..INT64 */
        double f64;   /* FLOAT32, FLOAT64 */
        struct dv_gguf_str str;
        struct {
            enum dv_gguf_vtype type;
            uint64_t n;
            const void *data;                /* scalar elements */
            const struct dv_gguf_str *strs;  /* STRING elements */
            const struct dv_gguf_value *items; /* ARRAY elements */
        } arr;
    } v;
};

struct dv_gguf_kv {
    struct dv_gguf_str key;
    struct dv_gguf_value value;
};

struct dv_gguf_tensor {
    struct dv_gguf_str name;
    uint32_t n_dims;
    int64_t ne[DV_GGUF_MAX_DIMS]; /* ne[0] is the contiguous row length;
                                     unused dims are 1 */
    int type;                     /* enum dv_type */
    uint64_t offset;              /* relative to the data section */
    size_t nbytes;
    const void *data;             /* inside the mapping */
};

struct dv_gguf {
    char *path;
    uint32_t version;
    uint64_t n_kv;
    struct dv_gguf_kv *kv;
    uint64_t n_tensors;
    struct dv_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset; /* file offset of the data section */
    const uint8_t *map;
    size_t size;
    /* private: allocations behind strs/items */
    void *arena;
};

/* Open and validate a GGUF file. On success *out owns the mapping; free it
 * with dv_gguf_free(). On failure returns DV_E_INPUT (malformed or
 * unsupported) or DV_E_NOMEM with a message "PATH: what is wrong" and sets
 * *out to NULL (DV_E_IO only when a readable regular file cannot be
 * stat'ed or mapped). Tensor types must be known ggml types; tensors of types
 * diverge cannot dequantize are still listed. A file without tensors may end
 * right after its header (data_offset is then the file size). */
dv_status dv_gguf_open(const char *path, struct dv_gguf **out);

/* Unmap and free. NULL is a no-op. */
void dv_gguf_free(struct dv_gguf *g);

/* Index of key in g->kv, or -1. */
int64_t dv_gguf_find_key(const struct dv_gguf *g, const char *key);

/* Tensor named name, or NULL. */
const struct dv_gguf_tensor *dv_gguf_find_tensor(const struct dv_gguf *g,
                                                 const char *name);

/* Typed getters. Each returns DV_E_INPUT with "PATH: key 'K' ..." when the key
 * is missing (only for the *_req forms: the plain forms return DV_OK and leave
 * *out untouched when missing, so defaults work) or holds the wrong type.
 * Integer getters accept any integer type whose value fits. */
dv_status dv_gguf_get_u64(const struct dv_gguf *g, const char *key,
                          uint64_t *out, bool required);
dv_status dv_gguf_get_i64(const struct dv_gguf *g, const char *key,
                          int64_t *out, bool required);
dv_status dv_gguf_get_f64(const struct dv_gguf *g, const char *key,
                          double *out, bool required); /* float32 or 64 */
dv_status dv_gguf_get_bool(const struct dv_gguf *g, const char *key,
                           bool *out, bool required);
dv_status dv_gguf_get_str(const struct dv_gguf *g, const char *key,
                          struct dv_gguf_str *out, bool required);
/* An array value with element type `elem` (DV_GGUF_VTYPE_COUNT: any). */
dv_status dv_gguf_get_arr(const struct dv_gguf *g, const char *key, int elem,
                          const struct dv_gguf_value **out, bool required);

/* True when s equals the C string c. */
bool dv_gguf_str_eq(struct dv_gguf_str s, const char *c);

/* Bytes of a file's string shown in a message before it is cut with "...",
 * and the room dv_gguf_str_show() needs (each byte as \xNN at worst). */
#define DV_GGUF_SHOW_MAX 48
#define DV_GGUF_SHOW_BUF (DV_GGUF_SHOW_MAX * 4 + 8)

/* s as it may appear in a one-line message: printable ASCII as is, other
 * bytes (newlines, NULs, UTF-8) as \xNN, cut after DV_GGUF_SHOW_MAX bytes
 * with "...". Writes buf (DV_GGUF_SHOW_BUF bytes) and returns it. */
const char *dv_gguf_str_show(char *buf, struct dv_gguf_str s);

/* ---- writer ---------------------------------------------------------- */

struct dv_gguf_writer;

/* A new empty GGUF v3 file description (alignment 32). */
dv_status dv_gguf_writer_new(struct dv_gguf_writer **out);
void dv_gguf_writer_free(struct dv_gguf_writer *w);

/* Metadata, written in the order added. Keys and strings are copied. */
dv_status dv_gguf_writer_set_u32(struct dv_gguf_writer *w, const char *key,
                                 uint32_t v);
dv_status dv_gguf_writer_set_i32(struct dv_gguf_writer *w, const char *key,
                                 int32_t v);
dv_status dv_gguf_writer_set_f32(struct dv_gguf_writer *w, const char *key,
                                 float v);
dv_status dv_gguf_writer_set_bool(struct dv_gguf_writer *w, const char *key,
                                  bool v);
dv_status dv_gguf_writer_set_str(struct dv_gguf_writer *w, const char *key,
                                 const char *v);
/* Arrays: strings (n NUL-terminated or, when lens != NULL, lens[i] bytes),
 * float32, int32. Copied. */
dv_status dv_gguf_writer_set_arr_str(struct dv_gguf_writer *w,
                                     const char *key, const char *const *v,
                                     const size_t *lens, uint64_t n);
dv_status dv_gguf_writer_set_arr_f32(struct dv_gguf_writer *w,
                                     const char *key, const float *v,
                                     uint64_t n);
dv_status dv_gguf_writer_set_arr_i32(struct dv_gguf_writer *w,
                                     const char *key, const int32_t *v,
                                     uint64_t n);

/* A tensor of type `type` with n_dims dims ne[] (ne[0] contiguous). `data`
 * holds dv_row_size(type, ne[0]) * ne[1] * ... bytes and is borrowed: it
 * must stay valid until dv_gguf_writer_write() returns. */
dv_status dv_gguf_writer_add_tensor(struct dv_gguf_writer *w,
                                    const char *name, int type,
                                    uint32_t n_dims, const int64_t *ne,
                                    const void *data);

/* guard (NULL: none) is told the temporary file's path as soon as it
 * exists and NULL once it is renamed or removed, so that a program can
 * remove it when a signal ends the process mid-write (the CLI's
 * dv_guard_temp). A library installs no signal handler itself. */
void dv_gguf_writer_set_guard(struct dv_gguf_writer *w, void (*guard)(const char *tmp));

/* Write the file: to ".NAME.XXXXXX.part" in the same directory, fsync, then
 * rename over path, so a failure never leaves a partial file under path and
 * never touches an existing one. A symbolic link at path is followed (its
 * target replaced, the link kept); a replaced file keeps its mode
 * (outpath.h). DV_E_USAGE when path is a directory, device, FIFO, socket
 * or dangling link, or its directory does not exist; DV_E_IO with a
 * message on other failures. */
dv_status dv_gguf_writer_write(struct dv_gguf_writer *w, const char *path);

#endif
