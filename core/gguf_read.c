/*
 * gguf_read.c - opening and validating GGUF files (v2 and v3, little-endian).
 *
 * The file is mapped read-only and parsed with a cursor whose every read is
 * checked against the bytes left. Counts are checked against the bytes left
 * before anything is allocated, every size product is checked for overflow,
 * and nested arrays are limited in depth, so a hostile file costs at most a
 * few times its own size in memory and ends in a one-line DV_E_INPUT message
 * "PATH: what is wrong", never in a crash. Decoded arrays of strings and
 * nested arrays live in an arena freed by dv_gguf_free().
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

/* Bytes of a name shown in a message before it is cut with "...", and
 * room for them escaped as \xNN, then "..." and a NUL (gguf.h). */
#define SHOW_MAX DV_GGUF_SHOW_MAX
#define SHOW_BUF DV_GGUF_SHOW_BUF

/* Smallest encodings, used to reject absurd counts before allocating:
 * a key/value is a string length, a value type and at least one byte; a
 * tensor info is a name length, n_dims, a type and an offset. */
#define MIN_KV_BYTES (8 + 4 + 1)
#define MIN_TENSOR_INFO_BYTES (8 + 4 + 4 + 8)
#define MIN_ARRAY_BYTES (4 + 8)

/* ---- arena ------------------------------------------------------------- */

/* One allocation of the arena; the payload follows, max-aligned. */
struct chunk {
    struct chunk *next;
    max_align_t payload[];
};

/* What sits behind dv_gguf.arena: the chunk list and the tensors sorted by
 * name, for dv_gguf_find_tensor()'s binary search. */
struct arena {
    struct chunk *chunks;
    const struct dv_gguf_tensor **by_name; /* [n_tensors] */
};

/* Zeroed memory of n elements of size sz owned by the arena, or NULL when n
 * is 0 (so empty arrays cost nothing), the size overflows or malloc fails. */
static void *arena_calloc(struct arena *a, uint64_t n, size_t sz)
{
    size_t bytes;
    if (n == 0 || n > SIZE_MAX ||
        __builtin_mul_overflow((size_t)n, sz, &bytes) ||
        bytes > SIZE_MAX - sizeof(struct chunk))
        return NULL;
    struct chunk *c = calloc(1, sizeof(struct chunk) + bytes);
    if (!c) return NULL;
    c->next = a->chunks;
    a->chunks = c;
    return c->payload;
}

static void arena_free(struct arena *a)
{
    if (!a) return;
    while (a->chunks) {
        struct chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
    free(a);
}

/* ---- parser state ------------------------------------------------------ */

struct parser {
    struct dv_gguf *g;
    size_t pos;           /* next byte to read */
    struct arena *arena;
    char what[SHOW_BUF + 64]; /* what is being read, for messages */
};

/* s shown for a message into buf (SHOW_BUF bytes): printable ASCII as is,
 * other bytes as \xNN, cut after SHOW_MAX bytes. Returns buf. */
static const char *show(char *buf, const void *p, uint64_t len)
{
    const unsigned char *s = p;
    size_t n = 0;
    uint64_t shown = len < SHOW_MAX ? len : SHOW_MAX;
    for (uint64_t i = 0; i < shown; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
            buf[n++] = (char)s[i];
        else
            n += (size_t)snprintf(buf + n, 5, "\\x%02x", s[i]);
    }
    if (shown < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static const char *show_str(char *buf, struct dv_gguf_str s)
{
    return show(buf, s.ptr, s.len);
}

const char *dv_gguf_str_show(char *buf, struct dv_gguf_str s)
{
    return show_str(buf, s);
}

/* Record what is being read next (e.g. "key 3 'a.b' value"). */
static void set_what(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_what(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->what, sizeof p->what, fmt, ap);
    va_end(ap);
}

static size_t left(const struct parser *p) { return p->g->size - p->pos; }

/* Fail as truncated when fewer than n bytes are left. */
static dv_status need(const struct parser *p, uint64_t n)
{
    if (n <= left(p)) return DV_OK;
    return dv_fail(DV_E_INPUT,
                   "%s: truncated while reading %s (needs %llu bytes at "
                   "offset %zu, file is %zu bytes)",
                   p->g->path, p->what, (unsigned long long)n, p->pos,
                   p->g->size);
}

/* Little-endian reads; each checks the bytes left first. */
static dv_status rd_bytes(struct parser *p, size_t n, const uint8_t **out)
{
    dv_status s = need(p, n);
    if (s) return s;
    *out = p->g->map + p->pos;
    p->pos += n;
    return DV_OK;
}

static uint64_t le(const uint8_t *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | b[i];
    return v;
}

static dv_status rd_uint(struct parser *p, size_t n, uint64_t *out)
{
    const uint8_t *b;
    dv_status s = rd_bytes(p, n, &b);
    if (s) return s;
    *out = le(b, n);
    return DV_OK;
}

static dv_status rd_u32(struct parser *p, uint32_t *out)
{
    uint64_t v = 0;
    dv_status s = rd_uint(p, 4, &v);
    *out = (uint32_t)v;
    return s;
}

static dv_status rd_u64(struct parser *p, uint64_t *out)
{
    return rd_uint(p, 8, out);
}

/* A string: u64 length, then that many bytes inside the mapping. */
static dv_status rd_str(struct parser *p, struct dv_gguf_str *out)
{
    uint64_t len;
    const uint8_t *b;
    dv_status s = rd_u64(p, &len);
    if (!s) s = need(p, len);
    if (!s) s = rd_bytes(p, (size_t)len, &b);
    if (s) return s;
    *out = (struct dv_gguf_str){.len = len, .ptr = (const char *)b};
    return DV_OK;
}

static dv_status nomem(const struct parser *p)
{
    return dv_fail(DV_E_NOMEM, "%s: out of memory while reading %s",
                   p->g->path, p->what);
}

/* ---- values ------------------------------------------------------------ */

/* Encoded size of a scalar value type; 0 for STRING and ARRAY. */
static size_t scalar_size(int vt)
{
    static const size_t sizes[DV_GGUF_VTYPE_COUNT] = {
        [DV_GGUF_UINT8] = 1,   [DV_GGUF_INT8] = 1,    [DV_GGUF_UINT16] = 2,
        [DV_GGUF_INT16] = 2,   [DV_GGUF_UINT32] = 4,  [DV_GGUF_INT32] = 4,
        [DV_GGUF_FLOAT32] = 4, [DV_GGUF_BOOL] = 1,    [DV_GGUF_UINT64] = 8,
        [DV_GGUF_INT64] = 8,   [DV_GGUF_FLOAT64] = 8,
    };
    return (vt >= 0 && vt < DV_GGUF_VTYPE_COUNT) ? sizes[vt] : 0;
}

const char *dv_gguf_vtype_name(int vt)
{
    static const char *const names[DV_GGUF_VTYPE_COUNT] = {
        [DV_GGUF_UINT8] = "uint8",     [DV_GGUF_INT8] = "int8",
        [DV_GGUF_UINT16] = "uint16",   [DV_GGUF_INT16] = "int16",
        [DV_GGUF_UINT32] = "uint32",   [DV_GGUF_INT32] = "int32",
        [DV_GGUF_FLOAT32] = "float32", [DV_GGUF_BOOL] = "bool",
        [DV_GGUF_STRING] = "string",   [DV_GGUF_ARRAY] = "array",
        [DV_GGUF_UINT64] = "uint64",   [DV_GGUF_INT64] = "int64",
        [DV_GGUF_FLOAT64] = "float64",
    };
    if (vt < 0 || vt >= DV_GGUF_VTYPE_COUNT) return "?";
    return names[vt];
}

/* Decode the scalar at b (little-endian, type vt) into v. */
static void decode_scalar(struct dv_gguf_value *v, int vt, const uint8_t *b)
{
    uint64_t raw = le(b, scalar_size(vt));
    switch (vt) {
    case DV_GGUF_INT8: v->v.i64 = (int8_t)raw; break;
    case DV_GGUF_INT16: v->v.i64 = (int16_t)raw; break;
    case DV_GGUF_INT32: v->v.i64 = (int32_t)raw; break;
    case DV_GGUF_INT64: v->v.i64 = (int64_t)raw; break;
    case DV_GGUF_BOOL: v->v.u64 = raw != 0; break;
    case DV_GGUF_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, sizeof f);
        v->v.f64 = f;
        break;
    }
    case DV_GGUF_FLOAT64: memcpy(&v->v.f64, &raw, sizeof raw); break;
    default: v->v.u64 = raw; break; /* unsigned types */
    }
}

static dv_status parse_value(struct parser *p, struct dv_gguf_value *v,
                             int vt, int depth);

/* Elements of an array whose element type, count and slot v are known. */
static dv_status parse_array_elems(struct parser *p, struct dv_gguf_value *v,
                                   int depth)
{
    uint64_t n = v->v.arr.n;
    int et = v->v.arr.type;
    if (et == DV_GGUF_STRING) {
        struct dv_gguf_str *strs = arena_calloc(p->arena, n, sizeof *strs);
        if (!strs && n) return nomem(p);
        v->v.arr.strs = strs;
        for (uint64_t i = 0; i < n; i++) {
            dv_status s = rd_str(p, &strs[i]);
            if (s) return s;
        }
        return DV_OK;
    }
    struct dv_gguf_value *items = arena_calloc(p->arena, n, sizeof *items);
    if (!items && n) return nomem(p);
    v->v.arr.items = items;
    for (uint64_t i = 0; i < n; i++) {
        dv_status s = parse_value(p, &items[i], DV_GGUF_ARRAY, depth);
        if (s) return s;
    }
    return DV_OK;
}

/* An array (element type, count, elements) at nesting depth `depth`. */
static dv_status parse_array(struct parser *p, struct dv_gguf_value *v,
                             int depth)
{
    uint32_t et;
    uint64_t n;
    if (depth > DV_GGUF_MAX_ARRAY_DEPTH)
        return dv_fail(DV_E_INPUT, "%s: %s: arrays nested deeper than %d",
                       p->g->path, p->what, DV_GGUF_MAX_ARRAY_DEPTH);
    dv_status s = rd_u32(p, &et);
    if (!s) s = rd_u64(p, &n);
    if (s) return s;
    if (et >= DV_GGUF_VTYPE_COUNT)
        return dv_fail(DV_E_INPUT,
                       "%s: %s: array element type %u is out of range (0..%d)",
                       p->g->path, p->what, et, DV_GGUF_VTYPE_COUNT - 1);
    size_t esz = scalar_size((int)et);
    size_t min = esz ? esz : et == DV_GGUF_STRING ? 8 : MIN_ARRAY_BYTES;
    if (n > left(p) / min)
        return dv_fail(DV_E_INPUT,
                       "%s: %s: array of %llu %s elements runs past the end "
                       "of the file (%zu bytes left at offset %zu)",
                       p->g->path, p->what, (unsigned long long)n,
                       dv_gguf_vtype_name((int)et), left(p), p->pos);
    v->v.arr.type = (enum dv_gguf_vtype)et;
    v->v.arr.n = n;
    if (esz) return rd_bytes(p, (size_t)n * esz,
                             (const uint8_t **)&v->v.arr.data);
    return parse_array_elems(p, v, depth);
}

/* A value of type vt (already checked to be in range) into v. */
static dv_status parse_value(struct parser *p, struct dv_gguf_value *v,
                             int vt, int depth)
{
    v->type = (enum dv_gguf_vtype)vt;
    if (vt == DV_GGUF_STRING) return rd_str(p, &v->v.str);
    if (vt == DV_GGUF_ARRAY) return parse_array(p, v, depth + 1);
    const uint8_t *b;
    dv_status s = rd_bytes(p, scalar_size(vt), &b);
    if (s) return s;
    decode_scalar(v, vt, b);
    return DV_OK;
}

/* ---- header and key/values --------------------------------------------- */

/* Magic, version and the two counts. */
static dv_status parse_header(struct parser *p)
{
    struct dv_gguf *g = p->g;
    const uint8_t *magic;
    char buf[SHOW_BUF];
    set_what(p, "the magic");
    dv_status s = rd_bytes(p, 4, &magic);
    if (s) return s;
    if (memcmp(magic, "GGUF", 4) != 0)
        return dv_fail(DV_E_INPUT, "%s: not a GGUF file (magic '%s')",
                       g->path, show(buf, magic, 4));
    set_what(p, "the version");
    if ((s = rd_u32(p, &g->version))) return s;
    uint32_t v = g->version;
    if (v == 1)
        return dv_fail(DV_E_INPUT,
                       "%s: GGUF version 1 is not supported (only 2 and 3)",
                       g->path);
    uint32_t swapped = __builtin_bswap32(v);
    if (swapped >= 1 && swapped <= 3)
        return dv_fail(DV_E_INPUT,
                       "%s: GGUF version 0x%08x looks byte-swapped: "
                       "big-endian GGUF files are not supported",
                       g->path, v);
    if (v != 2 && v != 3)
        return dv_fail(DV_E_INPUT,
                       "%s: unsupported GGUF version %u (only 2 and 3)",
                       g->path, v);
    set_what(p, "the tensor count");
    if ((s = rd_u64(p, &g->n_tensors))) return s;
    set_what(p, "the key/value count");
    return rd_u64(p, &g->n_kv);
}

/* Key i: its name, value type and value. */
static dv_status parse_kv(struct parser *p, uint64_t i)
{
    struct dv_gguf_kv *kv = &p->g->kv[i];
    char name[SHOW_BUF];
    uint32_t vt;
    set_what(p, "key %llu name", (unsigned long long)i);
    dv_status s = rd_str(p, &kv->key);
    if (s) return s;
    show_str(name, kv->key);
    set_what(p, "key %llu '%s' type", (unsigned long long)i, name);
    if ((s = rd_u32(p, &vt))) return s;
    if (vt >= DV_GGUF_VTYPE_COUNT)
        return dv_fail(DV_E_INPUT,
                       "%s: key %llu '%s' has value type %u, out of range "
                       "(0..%d)",
                       p->g->path, (unsigned long long)i, name, vt,
                       DV_GGUF_VTYPE_COUNT - 1);
    set_what(p, "key %llu '%s' value", (unsigned long long)i, name);
    return parse_value(p, &kv->value, (int)vt, 0);
}

static dv_status parse_kvs(struct parser *p)
{
    struct dv_gguf *g = p->g;
    if (g->n_kv > left(p) / MIN_KV_BYTES)
        return dv_fail(DV_E_INPUT,
                       "%s: %llu keys cannot fit in the %zu bytes left",
                       g->path, (unsigned long long)g->n_kv, left(p));
    set_what(p, "the key/value list");
    g->kv = arena_calloc(p->arena, g->n_kv, sizeof *g->kv);
    if (!g->kv && g->n_kv) return nomem(p);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        dv_status s = parse_kv(p, i);
        if (s) return s;
    }
    return DV_OK;
}

/* general.alignment, when present: a uint32 power of two. */
static dv_status parse_alignment(struct parser *p)
{
    struct dv_gguf *g = p->g;
    g->alignment = DV_GGUF_DEFAULT_ALIGNMENT;
    int64_t k = dv_gguf_find_key(g, "general.alignment");
    if (k < 0) return DV_OK;
    const struct dv_gguf_value *v = &g->kv[k].value;
    if (v->type != DV_GGUF_UINT32)
        return dv_fail(DV_E_INPUT,
                       "%s: key 'general.alignment' is %s, expected uint32",
                       g->path, dv_gguf_vtype_name(v->type));
    uint64_t a = v->v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return dv_fail(DV_E_INPUT,
                       "%s: general.alignment %llu is not a power of two",
                       g->path, (unsigned long long)a);
    g->alignment = a;
    return DV_OK;
}

/* ---- tensor infos ------------------------------------------------------ */

/* Check t's dims and type and compute its byte size. */
static dv_status tensor_size(struct parser *p, uint64_t i,
                             struct dv_gguf_tensor *t)
{
    const char *path = p->g->path;
    char name[SHOW_BUF];
    show_str(name, t->name);
    int64_t elems = 1;
    size_t bytes;
    for (int d = 0; d < DV_GGUF_MAX_DIMS; d++) {
        if (t->ne[d] < 0)
            return dv_fail(DV_E_INPUT, "%s: tensor %llu '%s': ne[%d] = %lld "
                           "is negative", path, (unsigned long long)i, name,
                           d, (long long)t->ne[d]);
        if (__builtin_mul_overflow(elems, t->ne[d], &elems))
            return dv_fail(DV_E_INPUT, "%s: tensor %llu '%s': element count "
                           "overflows", path, (unsigned long long)i, name);
    }
    if (dv_row_size(t->type, t->ne[0], &bytes)) {
        char pre[SHOW_BUF + 64];
        snprintf(pre, sizeof pre, "%s: tensor %llu '%s'", path,
                 (unsigned long long)i, name);
        return dv_fail_prefix(DV_E_INPUT, pre);
    }
    for (int d = 1; d < DV_GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(bytes, (uint64_t)t->ne[d], &bytes))
            return dv_fail(DV_E_INPUT, "%s: tensor %llu '%s': byte size "
                           "overflows", path, (unsigned long long)i, name);
    t->nbytes = bytes;
    return DV_OK;
}

/* Tensor info i: name, n_dims, ne[], type, offset. */
static dv_status parse_tensor_info(struct parser *p, uint64_t i)
{
    struct dv_gguf_tensor *t = &p->g->tensors[i];
    char name[SHOW_BUF];
    uint32_t u;
    set_what(p, "tensor %llu name", (unsigned long long)i);
    dv_status s = rd_str(p, &t->name);
    if (s) return s;
    show_str(name, t->name);
    set_what(p, "tensor %llu '%s' info", (unsigned long long)i, name);
    if ((s = rd_u32(p, &t->n_dims))) return s;
    if (t->n_dims > DV_GGUF_MAX_DIMS)
        return dv_fail(DV_E_INPUT, "%s: tensor %llu '%s' has %u dims (at most "
                       "%d)", p->g->path, (unsigned long long)i, name,
                       t->n_dims, DV_GGUF_MAX_DIMS);
    for (int d = 0; d < DV_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if ((uint32_t)d < t->n_dims && (s = rd_u64(p, &ne))) return s;
        t->ne[d] = (int64_t)ne;
    }
    if ((s = rd_u32(p, &u))) return s;
    if ((s = rd_u64(p, &t->offset))) return s;
    if (u >= DV_TYPE_COUNT || !dv_type_traits((int)u))
        return dv_fail(DV_E_INPUT, "%s: tensor %llu '%s' has unknown type %u",
                       p->g->path, (unsigned long long)i, name, u);
    t->type = (int)u;
    return tensor_size(p, i, t);
}

static dv_status parse_tensor_infos(struct parser *p)
{
    struct dv_gguf *g = p->g;
    if (g->n_tensors > left(p) / MIN_TENSOR_INFO_BYTES)
        return dv_fail(DV_E_INPUT,
                       "%s: %llu tensors cannot fit in the %zu bytes left",
                       g->path, (unsigned long long)g->n_tensors, left(p));
    set_what(p, "the tensor list");
    g->tensors = arena_calloc(p->arena, g->n_tensors, sizeof *g->tensors);
    if (!g->tensors && g->n_tensors) return nomem(p);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        dv_status s = parse_tensor_info(p, i);
        if (s) return s;
    }
    return DV_OK;
}

/* Place the data section after the header and every tensor inside it. */
static dv_status place_data(struct parser *p)
{
    struct dv_gguf *g = p->g;
    uint64_t a = g->alignment, end = p->pos;
    uint64_t start = end + (a - end % a) % a;
    if (start > g->size) {
        /* A file without tensors may end right after its header. */
        if (g->n_tensors == 0) start = g->size;
        else
            return dv_fail(DV_E_INPUT, "%s: data section would start at "
                           "offset %llu, past the end of the file (%zu bytes)",
                           g->path, (unsigned long long)start, g->size);
    }
    g->data_offset = start;
    uint64_t data_size = g->size - start;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct dv_gguf_tensor *t = &g->tensors[i];
        char name[SHOW_BUF];
        show_str(name, t->name);
        if (t->offset % a != 0)
            return dv_fail(DV_E_INPUT, "%s: tensor %llu '%s': offset %llu is "
                           "not a multiple of the alignment %llu", g->path,
                           (unsigned long long)i, name,
                           (unsigned long long)t->offset,
                           (unsigned long long)a);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return dv_fail(DV_E_INPUT, "%s: tensor %llu '%s': data [offset "
                           "%llu, %zu bytes] runs past the end of the file "
                           "(data section is %llu bytes)", g->path,
                           (unsigned long long)i, name,
                           (unsigned long long)t->offset, t->nbytes,
                           (unsigned long long)data_size);
        t->data = g->map + start + t->offset;
    }
    return DV_OK;
}

/* ---- duplicates and lookup --------------------------------------------- */

static int str_cmp(struct dv_gguf_str a, struct dv_gguf_str b)
{
    size_t n = a.len < b.len ? (size_t)a.len : (size_t)b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c) return c;
    return (a.len > b.len) - (a.len < b.len);
}

static int tensor_ptr_cmp(const void *x, const void *y)
{
    const struct dv_gguf_tensor *a = *(const struct dv_gguf_tensor *const *)x;
    const struct dv_gguf_tensor *b = *(const struct dv_gguf_tensor *const *)y;
    return str_cmp(a->name, b->name);
}

static int kv_ptr_cmp(const void *x, const void *y)
{
    const struct dv_gguf_kv *a = *(const struct dv_gguf_kv *const *)x;
    const struct dv_gguf_kv *b = *(const struct dv_gguf_kv *const *)y;
    return str_cmp(a->key, b->key);
}

/* Sort the tensors by name (kept for lookups) and reject duplicates. */
static dv_status index_tensors(struct parser *p)
{
    struct dv_gguf *g = p->g;
    const struct dv_gguf_tensor **idx;
    char name[SHOW_BUF];
    set_what(p, "the tensor index");
    idx = arena_calloc(p->arena, g->n_tensors, sizeof *idx);
    if (!idx && g->n_tensors) return nomem(p);
    for (uint64_t i = 0; i < g->n_tensors; i++) idx[i] = &g->tensors[i];
    if (g->n_tensors) qsort(idx, g->n_tensors, sizeof *idx, tensor_ptr_cmp);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (str_cmp(idx[i - 1]->name, idx[i]->name) == 0)
            return dv_fail(DV_E_INPUT, "%s: tensor name '%s' appears twice",
                           g->path, show_str(name, idx[i]->name));
    p->arena->by_name = idx;
    return DV_OK;
}

static dv_status check_duplicate_keys(struct parser *p)
{
    struct dv_gguf *g = p->g;
    char name[SHOW_BUF];
    if (g->n_kv < 2) return DV_OK;
    const struct dv_gguf_kv **idx = calloc(g->n_kv, sizeof *idx);
    if (!idx) return nomem(p);
    for (uint64_t i = 0; i < g->n_kv; i++) idx[i] = &g->kv[i];
    qsort(idx, g->n_kv, sizeof *idx, kv_ptr_cmp);
    dv_status s = DV_OK;
    for (uint64_t i = 1; i < g->n_kv && !s; i++)
        if (str_cmp(idx[i - 1]->key, idx[i]->key) == 0)
            s = dv_fail(DV_E_INPUT, "%s: key '%s' appears twice", g->path,
                        show_str(name, idx[i]->key));
    free(idx);
    return s;
}

/* ---- open / free ------------------------------------------------------- */

/* Map g->path read-only into g->map / g->size. */
static dv_status map_file(struct dv_gguf *g)
{
    struct stat st;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(g->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return dv_fail(DV_E_INPUT, "%s: cannot open: %s", g->path,
                       strerror(errno));
    dv_status s = DV_OK;
    if (fstat(fd, &st) != 0)
        s = dv_fail(DV_E_IO, "%s: cannot stat: %s", g->path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = dv_fail(DV_E_INPUT, "%s: not a regular file", g->path);
    else if (st.st_size == 0)
        s = dv_fail(DV_E_INPUT, "%s: empty file, not a GGUF file", g->path);
    else if ((uint64_t)st.st_size > SIZE_MAX)
        s = dv_fail(DV_E_INPUT, "%s: too large to map", g->path);
    if (!s) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            s = dv_fail(DV_E_IO, "%s: cannot map: %s", g->path,
                        strerror(errno));
        else
            g->map = m, g->size = (size_t)st.st_size;
    }
    close(fd);
    return s;
}

static dv_status parse_all(struct parser *p)
{
    dv_status s = parse_header(p);
    if (!s) s = parse_kvs(p);
    if (!s) s = check_duplicate_keys(p);
    if (!s) s = parse_alignment(p);
    if (!s) s = parse_tensor_infos(p);
    if (!s) s = index_tensors(p);
    if (!s) s = place_data(p);
    return s;
}

dv_status dv_gguf_open(const char *path, struct dv_gguf **out)
{
    if (!out) return dv_fail(DV_E_USAGE, "dv_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return dv_fail(DV_E_USAGE, "dv_gguf_open: path is NULL");
    struct dv_gguf *g = calloc(1, sizeof *g);
    struct arena *a = calloc(1, sizeof *a);
    char *dup = strdup(path);
    if (!g || !a || !dup) {
        free(g), free(a), free(dup);
        return dv_fail(DV_E_NOMEM, "%s: out of memory", path);
    }
    g->path = dup;
    g->arena = a;
    struct parser p = {.g = g, .arena = a};
    dv_status s = map_file(g);
    if (!s) s = parse_all(&p);
    if (s) {
        dv_gguf_free(g);
        return s;
    }
    *out = g;
    return DV_OK;
}

void dv_gguf_free(struct dv_gguf *g)
{
    if (!g) return;
    if (g->map) munmap((void *)g->map, g->size);
    arena_free(g->arena);
    free(g->path);
    free(g);
}

/* ---- lookups and getters ----------------------------------------------- */

bool dv_gguf_str_eq(struct dv_gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

int64_t dv_gguf_find_key(const struct dv_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (dv_gguf_str_eq(g->kv[i].key, key)) return (int64_t)i;
    return -1;
}

const struct dv_gguf_tensor *dv_gguf_find_tensor(const struct dv_gguf *g,
                                                 const char *name)
{
    const struct arena *a = g->arena;
    struct dv_gguf_str want = {.len = strlen(name), .ptr = name};
    uint64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = str_cmp(a->by_name[mid]->name, want);
        if (c == 0) return a->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* The value of key, or NULL: then DV_E_INPUT in *s when required. */
static const struct dv_gguf_value *lookup(const struct dv_gguf *g,
                                          const char *key, bool required,
                                          dv_status *s)
{
    int64_t k = dv_gguf_find_key(g, key);
    *s = DV_OK;
    if (k >= 0) return &g->kv[k].value;
    if (required)
        *s = dv_fail(DV_E_INPUT, "%s: key '%s' is missing", g->path, key);
    return NULL;
}

static dv_status wrong_type(const struct dv_gguf *g, const char *key,
                            const struct dv_gguf_value *v, const char *want)
{
    return dv_fail(DV_E_INPUT, "%s: key '%s' is %s, expected %s", g->path, key,
                   dv_gguf_vtype_name(v->type), want);
}

static bool is_unsigned(int vt)
{
    return vt == DV_GGUF_UINT8 || vt == DV_GGUF_UINT16 ||
           vt == DV_GGUF_UINT32 || vt == DV_GGUF_UINT64;
}

static bool is_signed(int vt)
{
    return vt == DV_GGUF_INT8 || vt == DV_GGUF_INT16 ||
           vt == DV_GGUF_INT32 || vt == DV_GGUF_INT64;
}

dv_status dv_gguf_get_u64(const struct dv_gguf *g, const char *key,
                          uint64_t *out, bool required)
{
    dv_status s;
    const struct dv_gguf_value *v = lookup(g, key, required, &s);
    if (!v) return s;
    if (is_unsigned(v->type)) *out = v->v.u64;
    else if (!is_signed(v->type))
        return wrong_type(g, key, v, "an unsigned integer");
    else if (v->v.i64 < 0)
        return dv_fail(DV_E_INPUT, "%s: key '%s' is %s %lld, expected an "
                       "unsigned integer", g->path, key,
                       dv_gguf_vtype_name(v->type), (long long)v->v.i64);
    else *out = (uint64_t)v->v.i64;
    return DV_OK;
}

dv_status dv_gguf_get_i64(const struct dv_gguf *g, const char *key,
                          int64_t *out, bool required)
{
    dv_status s;
    const struct dv_gguf_value *v = lookup(g, key, required, &s);
    if (!v) return s;
    if (is_signed(v->type)) *out = v->v.i64;
    else if (!is_unsigned(v->type))
        return wrong_type(g, key, v, "an integer");
    else if (v->v.u64 > INT64_MAX)
        return dv_fail(DV_E_INPUT, "%s: key '%s' is uint64 %llu, too large "
                       "for int64", g->path, key,
                       (unsigned long long)v->v.u64);
    else *out = (int64_t)v->v.u64;
    return DV_OK;
}

dv_status dv_gguf_get_f64(const struct dv_gguf *g, const char *key,
                          double *out, bool required)
{
    dv_status s;
    const struct dv_gguf_value *v = lookup(g, key, required, &s);
    if (!v) return s;
    if (v->type != DV_GGUF_FLOAT32 && v->type != DV_GGUF_FLOAT64)
        return wrong_type(g, key, v, "float32 or float64");
    *out = v->v.f64;
    return DV_OK;
}

dv_status dv_gguf_get_bool(const struct dv_gguf *g, const char *key,
                           bool *out, bool required)
{
    dv_status s;
    const struct dv_gguf_value *v = lookup(g, key, required, &s);
    if (!v) return s;
    if (v->type != DV_GGUF_BOOL) return wrong_type(g, key, v, "bool");
    *out = v->v.u64 != 0;
    return DV_OK;
}

dv_status dv_gguf_get_str(const struct dv_gguf *g, const char *key,
                          struct dv_gguf_str *out, bool required)
{
    dv_status s;
    const struct dv_gguf_value *v = lookup(g, key, required, &s);
    if (!v) return s;
    if (v->type != DV_GGUF_STRING) return wrong_type(g, key, v, "string");
    *out = v->v.str;
    return DV_OK;
}

dv_status dv_gguf_get_arr(const struct dv_gguf *g, const char *key, int elem,
                          const struct dv_gguf_value **out, bool required)
{
    dv_status s;
    const struct dv_gguf_value *v = lookup(g, key, required, &s);
    if (!v) return s;
    if (v->type != DV_GGUF_ARRAY) return wrong_type(g, key, v, "array");
    if (elem != DV_GGUF_VTYPE_COUNT && (int)v->v.arr.type != elem)
        return dv_fail(DV_E_INPUT, "%s: key '%s' is an array of %s, expected "
                       "an array of %s", g->path, key,
                       dv_gguf_vtype_name(v->v.arr.type),
                       dv_gguf_vtype_name(elem));
    *out = v;
    return DV_OK;
}
