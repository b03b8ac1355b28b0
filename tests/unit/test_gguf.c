/*
 * test_gguf.c - the GGUF reader and writer.
 *
 * Round trips through the writer, files assembled byte by byte (GGUF v2,
 * every value type, nested arrays), the committed llama.cpp fixtures, a
 * corpus of broken files derived from a valid one (every truncation, every
 * field set to a bad value), and write failures that must leave an existing
 * file untouched. Inputs are deterministic; temporary files live in a
 * mkdtemp directory removed at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"

/* A call that must succeed. */
#define OK(call) assert_int_equal((call), DV_OK)
/* A call the writer must refuse as a caller error. */
#define USAGE(call) assert_int_equal((call), DV_E_USAGE)

/* ---- temporary directory and files ------------------------------------- */

struct tmp {
    char dir[64];
    char path[128]; /* scratch file inside dir */
};

static int group_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (!t) return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/dv_test_gguf.XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->path, sizeof t->path, "%s/case.gguf", t->dir);
    *state = t;
    return 0;
}

static int group_teardown(void **state)
{
    struct tmp *t = *state;
    DIR *d = opendir(t->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", ".." */
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    int rc = rmdir(t->dir);
    free(t);
    return rc;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Whole file into a malloc'ed buffer; *n receives its size. */
static uint8_t *read_bytes(const char *path, size_t *n)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    assert_true(f && fstat(fileno(f), &st) == 0);
    uint8_t *p = malloc((size_t)st.st_size + 1);
    assert_non_null(p);
    *n = fread(p, 1, (size_t)st.st_size + 1, f);
    fclose(f);
    return p;
}

/* Number of entries in dir whose name ends in ".part" (the writers' temporary files). */
static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) > 5 && !strcmp(e->d_name + strlen(e->d_name) - 5, ".part")) n++;
    closedir(d);
    return n;
}

/* Deterministic bytes (a 32-bit LCG from a fixed seed). */
static void fill_bytes(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
}

/* ---- byte builder for hand-made files ---------------------------------- */

struct bb {
    uint8_t *p;
    size_t n, cap;
};

static void bb_put(struct bb *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void bb_le(struct bb *b, uint64_t v, size_t n)
{
    uint8_t x[8];
    for (size_t i = 0; i < n; i++) x[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, x, n);
}

static void bb_u32(struct bb *b, uint32_t v) { bb_le(b, v, 4); }
static void bb_u64(struct bb *b, uint64_t v) { bb_le(b, v, 8); }

static void bb_str(struct bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}

static void bb_key(struct bb *b, const char *key, int vt)
{
    bb_str(b, key);
    bb_u32(b, (uint32_t)vt);
}

static void bb_header(struct bb *b, uint32_t version, uint64_t n_tensors,
                      uint64_t n_kv)
{
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

/* Tensor info with n_dims dims; returns the offset of its n_dims field. */
static size_t bb_tensor(struct bb *b, const char *name, uint32_t n_dims,
                        const int64_t *ne, int type, uint64_t offset)
{
    bb_str(b, name);
    size_t at = b->n;
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_u64(b, (uint64_t)ne[d]);
    bb_u32(b, (uint32_t)type);
    bb_u64(b, offset);
    return at;
}

static void bb_pad(struct bb *b, size_t align)
{
    static const uint8_t zero[1];
    while (b->n % align) bb_put(b, zero, 1);
}

/* ---- expectations ------------------------------------------------------ */

/* path must be rejected with DV_E_INPUT, a message naming the file and, when
 * want is not NULL, containing want. */
static void expect_bad_file(const char *path, const char *want,
                            const char *what)
{
    struct dv_gguf *g = (struct dv_gguf *)1;
    dv_status s = dv_gguf_open(path, &g);
    const char *msg = dv_errmsg();
    if (s != DV_E_INPUT || g != NULL || !strstr(msg, path) ||
        (want && !strstr(msg, want)) || strchr(msg, '\n'))
        fail_msg("%s: status %s, message '%s' (wanted input error with '%s')",
                 what, dv_status_name(s), msg, want ? want : "");
}

static void expect_bad(const char *path, const void *p, size_t n,
                       const char *want, const char *what)
{
    write_bytes(path, p, n);
    expect_bad_file(path, want, what);
}

static struct dv_gguf *open_ok(const char *path)
{
    struct dv_gguf *g = NULL;
    dv_status s = dv_gguf_open(path, &g);
    if (s != DV_OK) fail_msg("%s: %s", path, dv_errmsg());
    assert_non_null(g);
    return g;
}

static void assert_str_eq(struct dv_gguf_str s, const char *want)
{
    if (!dv_gguf_str_eq(s, want))
        fail_msg("got '%.*s', want '%s'", (int)(s.len < 200 ? s.len : 200),
                 s.ptr, want);
}

static uint64_t u64_of(const struct dv_gguf *g, const char *key)
{
    uint64_t v = 0;
    if (dv_gguf_get_u64(g, key, &v, true) != DV_OK)
        fail_msg("%s", dv_errmsg());
    return v;
}

static const struct dv_gguf_tensor *tensor_of(const struct dv_gguf *g,
                                              const char *name)
{
    const struct dv_gguf_tensor *t = dv_gguf_find_tensor(g, name);
    if (!t) fail_msg("no tensor '%s'", name);
    return t;
}

static int64_t i64_of(const struct dv_gguf *g, const char *key)
{
    int64_t v = 0;
    if (dv_gguf_get_i64(g, key, &v, true) != DV_OK)
        fail_msg("%s", dv_errmsg());
    return v;
}

/* ---- round trip through the writer ------------------------------------- */

struct rt_tensor {
    const char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[4];
    size_t nbytes; /* as computed by hand from ggml's block sizes */
};

static const struct rt_tensor rt_tensors[] = {
    {"t.f32.1d", DV_TYPE_F32, 1, {5}, 5 * 4},
    {"t.f16.2d", DV_TYPE_F16, 2, {3, 7}, 3 * 7 * 2},
    {"t.q8_0.3d", DV_TYPE_Q8_0, 3, {64, 2, 3}, 2 * 34 * 2 * 3},
    {"t.f32.4d", DV_TYPE_F32, 4, {2, 3, 4, 5}, 2 * 3 * 4 * 5 * 4},
};
#define N_RT (sizeof rt_tensors / sizeof rt_tensors[0])

static const char *const rt_strs[] = {"alpha", "", "with\0nul",
                                      "\xe2\x96\x81x"};
static const size_t rt_lens[] = {5, 0, 8, 4};
static const float rt_f32s[] = {0.5f, -1.25f, 3.0e38f, -0.0f, 1e-30f};
static const int32_t rt_i32s[] = {0, -1, INT32_MIN, INT32_MAX, 42};

static struct dv_gguf_writer *rt_writer(uint8_t *data[N_RT])
{
    struct dv_gguf_writer *w = NULL;
    OK(dv_gguf_writer_new(&w));
    OK(dv_gguf_writer_set_str(w, "general.architecture", "llama"));
    OK(dv_gguf_writer_set_u32(w, "t.u32", 4000000000u));
    OK(dv_gguf_writer_set_i32(w, "t.i32", -123456));
    OK(dv_gguf_writer_set_f32(w, "t.f32", 0.1f));
    OK(dv_gguf_writer_set_bool(w, "t.bool", true));
    OK(dv_gguf_writer_set_arr_str(w, "t.strs", rt_strs, rt_lens, 4));
    OK(dv_gguf_writer_set_arr_str(w, "t.strs0", rt_strs, NULL, 2));
    OK(dv_gguf_writer_set_arr_f32(w, "t.f32s", rt_f32s, 5));
    OK(dv_gguf_writer_set_arr_i32(w, "t.i32s", rt_i32s, 5));
    for (size_t i = 0; i < N_RT; i++) {
        const struct rt_tensor *t = &rt_tensors[i];
        data[i] = malloc(t->nbytes);
        assert_non_null(data[i]);
        fill_bytes(data[i], t->nbytes, 1234u + (uint32_t)i);
        OK(dv_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                     data[i]));
    }
    return w;
}

static void rt_check_kv(const struct dv_gguf *g)
{
    struct dv_gguf_str s;
    double f = 0;
    bool b = false;
    const struct dv_gguf_value *a;
    assert_int_equal(g->n_kv, 9);
    OK(dv_gguf_get_str(g, "general.architecture", &s, true));
    assert_str_eq(s, "llama");
    assert_int_equal(u64_of(g, "t.u32"), 4000000000u);
    assert_true(i64_of(g, "t.i32") == -123456);
    OK(dv_gguf_get_f64(g, "t.f32", &f, true));
    assert_true(f == (double)0.1f);
    OK(dv_gguf_get_bool(g, "t.bool", &b, true));
    assert_true(b);
    OK(dv_gguf_get_arr(g, "t.strs", DV_GGUF_STRING, &a, true));
    assert_int_equal(a->v.arr.n, 4);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(a->v.arr.strs[k].len, rt_lens[k]);
        assert_memory_equal(a->v.arr.strs[k].ptr, rt_strs[k], rt_lens[k]);
    }
    OK(dv_gguf_get_arr(g, "t.strs0", DV_GGUF_STRING, &a, true));
    assert_int_equal(a->v.arr.n, 2);
    assert_str_eq(a->v.arr.strs[0], "alpha");
    assert_str_eq(a->v.arr.strs[1], "");
    OK(dv_gguf_get_arr(g, "t.f32s", DV_GGUF_FLOAT32, &a, true));
    assert_int_equal(a->v.arr.n, 5);
    assert_memory_equal(a->v.arr.data, rt_f32s, sizeof rt_f32s);
    OK(dv_gguf_get_arr(g, "t.i32s", DV_GGUF_INT32, &a, true));
    assert_int_equal(a->v.arr.n, 5);
    assert_memory_equal(a->v.arr.data, rt_i32s, sizeof rt_i32s);
}

static void rt_check_tensors(const struct dv_gguf *g, uint8_t *data[N_RT],
                             uint64_t align)
{
    assert_int_equal(g->alignment, align);
    assert_int_equal(g->data_offset % align, 0);
    assert_int_equal(g->n_tensors, N_RT);
    uint64_t end = 0;
    for (size_t i = 0; i < N_RT; i++) {
        const struct rt_tensor *want = &rt_tensors[i];
        const struct dv_gguf_tensor *t = &g->tensors[i]; /* order kept */
        assert_str_eq(t->name, want->name);
        assert_ptr_equal(dv_gguf_find_tensor(g, want->name), t);
        assert_int_equal(t->type, want->type);
        assert_int_equal(t->n_dims, want->n_dims);
        for (uint32_t d = 0; d < 4; d++)
            assert_true(t->ne[d] == (d < want->n_dims ? want->ne[d] : 1));
        assert_int_equal(t->nbytes, want->nbytes);
        assert_int_equal(t->offset % align, 0);
        assert_true(t->offset >= end); /* no overlap, in order */
        assert_ptr_equal(t->data, g->map + g->data_offset + t->offset);
        assert_memory_equal(t->data, data[i], want->nbytes);
        end = t->offset + t->nbytes;
    }
    /* The last tensor is padded too, as ggml's writer does. */
    assert_int_equal(g->size, g->data_offset + end + (align - end % align) %
                                                          align);
    assert_null(dv_gguf_find_tensor(g, "t.f32"));
    assert_null(dv_gguf_find_tensor(g, ""));
}

static void test_roundtrip(void **state)
{
    struct tmp *t = *state;
    uint8_t *data[N_RT];
    struct dv_gguf_writer *w = rt_writer(data);
    /* An existing file is replaced. */
    write_bytes(t->path, "old", 3);
    OK(dv_gguf_writer_write(w, t->path));
    struct dv_gguf *g = open_ok(t->path);
    assert_int_equal(g->version, 3);
    rt_check_kv(g);
    rt_check_tensors(g, data, 32);
    dv_gguf_free(g);
    /* general.alignment set by the caller moves every offset. */
    USAGE(dv_gguf_writer_set_u32(w, "general.alignment", 3));
    USAGE(dv_gguf_writer_set_i32(w, "general.alignment", 64));
    OK(dv_gguf_writer_set_u32(w, "general.alignment", 256));
    OK(dv_gguf_writer_write(w, t->path));
    g = open_ok(t->path);
    rt_check_tensors(g, data, 256);
    dv_gguf_free(g);
    dv_gguf_writer_free(w);
    for (size_t i = 0; i < N_RT; i++) free(data[i]);
    assert_int_equal(count_tmp_files(t->dir), 0);
}

/* ---- getters ----------------------------------------------------------- */

static void expect_getter_error(dv_status s, const char *path,
                                const char *key, const char *want)
{
    const char *msg = dv_errmsg();
    if (s != DV_E_INPUT || !strstr(msg, path) || !strstr(msg, key) ||
        !strstr(msg, want))
        fail_msg("%s: status %s, message '%s' (wanted '%s')", key,
                 dv_status_name(s), msg, want);
}

static void test_getters(void **state)
{
    struct tmp *t = *state;
    uint8_t *data[N_RT];
    struct dv_gguf_writer *w = rt_writer(data);
    OK(dv_gguf_writer_write(w, t->path));
    struct dv_gguf *g = open_ok(t->path);
    uint64_t u = 77;
    int64_t i = 77;
    double f = 77;
    bool b = false;
    struct dv_gguf_str s = {0};
    const struct dv_gguf_value *a = NULL;
    /* Missing keys: defaults stay unless required. */
    OK(dv_gguf_get_u64(g, "no.such", &u, false));
    assert_int_equal(u, 77);
    expect_getter_error(dv_gguf_get_u64(g, "no.such", &u, true), t->path,
                        "no.such", "missing");
    OK(dv_gguf_get_i64(g, "no.such", &i, false));
    OK(dv_gguf_get_f64(g, "no.such", &f, false));
    OK(dv_gguf_get_bool(g, "no.such", &b, false));
    OK(dv_gguf_get_str(g, "no.such", &s, false));
    OK(dv_gguf_get_arr(g, "no.such", 0, &a, false));
    assert_true(i == 77 && f == 77 && !b && s.ptr == NULL && a == NULL);
    /* Wrong types name the key, the actual and the expected type. */
    expect_getter_error(dv_gguf_get_u64(g, "t.i32", &u, true), t->path,
                        "t.i32", "int32 -123456");
    expect_getter_error(dv_gguf_get_u64(g, "t.f32", &u, true), t->path,
                        "t.f32", "float32, expected an unsigned integer");
    expect_getter_error(dv_gguf_get_bool(g, "t.u32", &b, true), t->path,
                        "t.u32", "uint32, expected bool");
    expect_getter_error(dv_gguf_get_f64(g, "t.u32", &f, true), t->path,
                        "t.u32", "expected float32 or float64");
    expect_getter_error(dv_gguf_get_str(g, "t.strs", &s, true), t->path,
                        "t.strs", "array, expected string");
    expect_getter_error(dv_gguf_get_arr(g, "t.strs", DV_GGUF_INT32, &a, true),
                        t->path, "t.strs", "array of string");
    expect_getter_error(dv_gguf_get_arr(g, "t.bool", DV_GGUF_VTYPE_COUNT, &a,
                                        true), t->path, "t.bool", "bool");
    /* Integer conversions that fit are fine. */
    OK(dv_gguf_get_i64(g, "t.u32", &i, true));
    assert_true(i == 4000000000LL);
    OK(dv_gguf_get_arr(g, "t.f32s", DV_GGUF_VTYPE_COUNT, &a, true));
    assert_int_equal(a->v.arr.type, DV_GGUF_FLOAT32);
    assert_string_equal(dv_gguf_vtype_name(DV_GGUF_FLOAT64), "float64");
    assert_string_equal(dv_gguf_vtype_name(13), "?");
    assert_string_equal(dv_gguf_vtype_name(-1), "?");
    dv_gguf_free(g);
    dv_gguf_free(NULL);
    dv_gguf_writer_free(w);
    dv_gguf_writer_free(NULL);
    for (size_t k = 0; k < N_RT; k++) free(data[k]);
}

/* ---- hand-made files --------------------------------------------------- */

/* A GGUF v2 file (same layout as v3 for little-endian files). */
static void test_v2_handmade(void **state)
{
    struct tmp *t = *state;
    struct bb b = {0};
    uint8_t data[16];
    fill_bytes(data, sizeof data, 7);
    bb_header(&b, 2, 1, 2);
    bb_key(&b, "general.architecture", DV_GGUF_STRING);
    bb_str(&b, "llama");
    bb_key(&b, "v2.count", DV_GGUF_UINT32);
    bb_u32(&b, 7);
    bb_tensor(&b, "w", 2, (const int64_t[]){4, 2}, DV_TYPE_F16, 0);
    bb_pad(&b, 32);
    size_t data_at = b.n;
    bb_put(&b, data, sizeof data);
    write_bytes(t->path, b.p, b.n);
    struct dv_gguf *g = open_ok(t->path);
    struct dv_gguf_str s;
    assert_int_equal(g->version, 2);
    OK(dv_gguf_get_str(g, "general.architecture", &s, true));
    assert_str_eq(s, "llama");
    assert_int_equal(u64_of(g, "v2.count"), 7);
    assert_int_equal(g->data_offset, data_at);
    const struct dv_gguf_tensor *w = tensor_of(g, "w");
    assert_int_equal(w->type, DV_TYPE_F16);
    assert_true(w->ne[0] == 4 && w->ne[1] == 2 && w->ne[2] == 1);
    assert_int_equal(w->nbytes, 16);
    assert_memory_equal(w->data, data, 16);
    dv_gguf_free(g);
    free(b.p);
}

/* One key of every scalar type, then nested arrays. */
static void build_all_vtypes(struct bb *b)
{
    bb_header(b, 3, 0, 15);
    bb_key(b, "k.u8", DV_GGUF_UINT8), bb_le(b, 200, 1);
    bb_key(b, "k.i8", DV_GGUF_INT8), bb_le(b, (uint8_t)-100, 1);
    bb_key(b, "k.u16", DV_GGUF_UINT16), bb_le(b, 60000, 2);
    bb_key(b, "k.i16", DV_GGUF_INT16), bb_le(b, (uint16_t)-30000, 2);
    bb_key(b, "k.u32", DV_GGUF_UINT32), bb_u32(b, 4000000000u);
    bb_key(b, "k.i32", DV_GGUF_INT32), bb_u32(b, (uint32_t)-2000000000);
    bb_key(b, "k.f32", DV_GGUF_FLOAT32), bb_u32(b, 0x3fc00000u); /* 1.5 */
    bb_key(b, "k.bool", DV_GGUF_BOOL), bb_le(b, 1, 1);
    bb_key(b, "k.str", DV_GGUF_STRING), bb_str(b, "h\xc3\xa9llo");
    bb_key(b, "k.u64", DV_GGUF_UINT64), bb_u64(b, (1ull << 63) + 5);
    bb_key(b, "k.i64", DV_GGUF_INT64), bb_u64(b, (uint64_t)-(1ll << 40));
    /* -0.1 as an IEEE double */
    bb_key(b, "k.f64", DV_GGUF_FLOAT64), bb_u64(b, 0xbfb999999999999aull);
    /* [[1, 2, 3] as u16, [] as i64, ["a", "bc"]] */
    bb_key(b, "k.nested", DV_GGUF_ARRAY);
    bb_u32(b, DV_GGUF_ARRAY), bb_u64(b, 3);
    bb_u32(b, DV_GGUF_UINT16), bb_u64(b, 3);
    bb_le(b, 1, 2), bb_le(b, 2, 2), bb_le(b, 3, 2);
    bb_u32(b, DV_GGUF_INT64), bb_u64(b, 0);
    bb_u32(b, DV_GGUF_STRING), bb_u64(b, 2), bb_str(b, "a"), bb_str(b, "bc");
    bb_key(b, "k.bools", DV_GGUF_ARRAY);
    bb_u32(b, DV_GGUF_BOOL), bb_u64(b, 2), bb_le(b, 0, 1), bb_le(b, 1, 1);
    bb_key(b, "k.empty", DV_GGUF_ARRAY), bb_u32(b, DV_GGUF_UINT8);
    bb_u64(b, 0);
}

static void check_all_scalars(const struct dv_gguf *g, const char *path)
{
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    bool b = false;
    struct dv_gguf_str s;
    assert_int_equal(u64_of(g, "k.u8"), 200);
    assert_int_equal(u64_of(g, "k.u16"), 60000);
    assert_int_equal(u64_of(g, "k.u32"), 4000000000u);
    assert_true(u64_of(g, "k.u64") == (1ull << 63) + 5);
    assert_true(i64_of(g, "k.i8") == -100);
    assert_true(i64_of(g, "k.i16") == -30000);
    assert_true(i64_of(g, "k.i32") == -2000000000);
    assert_true(i64_of(g, "k.i64") == -(1ll << 40));
    assert_true(i64_of(g, "k.u8") == 200);
    expect_getter_error(dv_gguf_get_i64(g, "k.u64", &i, true), path, "k.u64",
                        "too large");
    expect_getter_error(dv_gguf_get_u64(g, "k.i8", &u, true), path, "k.i8",
                        "-100");
    expect_getter_error(dv_gguf_get_bool(g, "k.u8", &b, true), path, "k.u8",
                        "expected bool");
    OK(dv_gguf_get_f64(g, "k.f32", &f, true));
    assert_true(f == 1.5);
    OK(dv_gguf_get_f64(g, "k.f64", &f, true));
    assert_true(f == -0.1);
    OK(dv_gguf_get_bool(g, "k.bool", &b, true));
    assert_true(b);
    OK(dv_gguf_get_str(g, "k.str", &s, true));
    assert_str_eq(s, "h\xc3\xa9llo");
}

static void check_nested(const struct dv_gguf *g)
{
    const struct dv_gguf_value *a;
    OK(dv_gguf_get_arr(g, "k.nested", DV_GGUF_ARRAY, &a, true));
    assert_int_equal(a->v.arr.n, 3);
    const struct dv_gguf_value *it = a->v.arr.items;
    assert_int_equal(it[0].type, DV_GGUF_ARRAY);
    assert_int_equal(it[0].v.arr.type, DV_GGUF_UINT16);
    assert_int_equal(it[0].v.arr.n, 3);
    assert_memory_equal(it[0].v.arr.data, "\1\0\2\0\3\0", 6);
    assert_int_equal(it[1].v.arr.type, DV_GGUF_INT64);
    assert_int_equal(it[1].v.arr.n, 0);
    assert_int_equal(it[2].v.arr.type, DV_GGUF_STRING);
    assert_int_equal(it[2].v.arr.n, 2);
    assert_str_eq(it[2].v.arr.strs[0], "a");
    assert_str_eq(it[2].v.arr.strs[1], "bc");
    OK(dv_gguf_get_arr(g, "k.bools", DV_GGUF_BOOL, &a, true));
    assert_int_equal(a->v.arr.n, 2);
    assert_memory_equal(a->v.arr.data, "\0\1", 2);
    OK(dv_gguf_get_arr(g, "k.empty", DV_GGUF_UINT8, &a, true));
    assert_int_equal(a->v.arr.n, 0);
}

static void test_all_vtypes_nested(void **state)
{
    struct tmp *t = *state;
    struct bb b = {0};
    build_all_vtypes(&b);
    write_bytes(t->path, b.p, b.n);
    struct dv_gguf *g = open_ok(t->path);
    assert_int_equal(g->n_kv, 15);
    assert_int_equal(g->n_tensors, 0);
    check_all_scalars(g, t->path);
    check_nested(g);
    dv_gguf_free(g);
    free(b.p);
}

/* A key holding `depth` arrays nested in one another around one u8. */
static void build_nested(struct bb *b, int depth)
{
    bb_header(b, 3, 0, 1);
    bb_key(b, "deep", DV_GGUF_ARRAY);
    for (int d = 1; d < depth; d++) bb_u32(b, DV_GGUF_ARRAY), bb_u64(b, 1);
    bb_u32(b, DV_GGUF_UINT8), bb_u64(b, 1), bb_le(b, 9, 1);
}

static void test_nesting_limit(void **state)
{
    struct tmp *t = *state;
    struct bb b = {0};
    build_nested(&b, DV_GGUF_MAX_ARRAY_DEPTH);
    write_bytes(t->path, b.p, b.n);
    struct dv_gguf *g = open_ok(t->path);
    const struct dv_gguf_value *v = &g->kv[0].value;
    for (int d = 1; d < DV_GGUF_MAX_ARRAY_DEPTH; d++) v = v->v.arr.items;
    assert_int_equal(v->v.arr.type, DV_GGUF_UINT8);
    assert_int_equal(*(const uint8_t *)v->v.arr.data, 9);
    dv_gguf_free(g);
    b.n = 0;
    build_nested(&b, DV_GGUF_MAX_ARRAY_DEPTH + 1);
    expect_bad(t->path, b.p, b.n, "nested deeper", "depth limit + 1");
    b.n = 0;
    build_nested(&b, 100000); /* a depth bomb */
    expect_bad(t->path, b.p, b.n, "nested deeper", "depth bomb");
    free(b.p);
}

/* ---- the committed fixtures -------------------------------------------- */

/* Open fixtures/data/NAME ($DV_FIXTURES or the checkout's fixtures). */
static struct dv_gguf *open_fixture(const char *name)
{
    const char *d = getenv("DV_FIXTURES");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/data/%s",
             d && *d ? d : "/work/main/fixtures", name);
    return open_ok(path);
}

static void check_mini_llama_tensors(const struct dv_gguf *g)
{
    /* token_embd, output_norm, output + 9 per block */
    assert_int_equal(g->n_tensors, 3 + 4 * 9);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct dv_gguf_tensor *t = &g->tensors[i];
        bool norm = memmem(t->name.ptr, t->name.len, "norm", 4) != NULL;
        assert_int_equal(t->type, norm ? DV_TYPE_F32 : DV_TYPE_Q8_0);
        assert_int_equal(t->n_dims, norm ? 1 : 2);
        assert_int_equal(t->offset % g->alignment, 0);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        assert_ptr_equal(dv_gguf_find_tensor(g, name), t);
    }
    const struct dv_gguf_tensor *t = tensor_of(g, "output.weight");
    assert_true(t->ne[0] == 128 && t->ne[1] == 32000);
    assert_int_equal(t->nbytes, 128 / 32 * 34 * 32000);
    t = tensor_of(g, "blk.3.ffn_down.weight");
    assert_true(t->ne[0] == 352 && t->ne[1] == 128);
    t = tensor_of(g, "output_norm.weight");
    assert_true(t->ne[0] == 128 && t->nbytes == 512);
    assert_null(dv_gguf_find_tensor(g, "blk.4.ffn_down.weight"));
}

static void check_llama_vocab(const struct dv_gguf *g)
{
    const struct dv_gguf_value *a;
    struct dv_gguf_str s;
    OK(dv_gguf_get_str(g, "tokenizer.ggml.model", &s, true));
    assert_str_eq(s, "llama");
    OK(dv_gguf_get_arr(g, "tokenizer.ggml.tokens", DV_GGUF_STRING, &a, true));
    assert_int_equal(a->v.arr.n, 32000);
    assert_str_eq(a->v.arr.strs[0], "<unk>");
    assert_str_eq(a->v.arr.strs[1], "<s>");
    assert_str_eq(a->v.arr.strs[2], "</s>");
    assert_str_eq(a->v.arr.strs[3], "<0x00>");
    OK(dv_gguf_get_arr(g, "tokenizer.ggml.scores", DV_GGUF_FLOAT32, &a, true));
    assert_int_equal(a->v.arr.n, 32000);
    assert_int_equal(u64_of(g, "tokenizer.ggml.bos_token_id"), 1);
    assert_int_equal(u64_of(g, "tokenizer.ggml.eos_token_id"), 2);
}

static void test_fixture_mini_llama(void **state)
{
    struct dv_gguf *g = open_fixture("mini-llama-q8_0.gguf");
    struct dv_gguf_str s;
    double eps = 0;
    assert_int_equal(g->version, 3);
    OK(dv_gguf_get_str(g, "general.architecture", &s, true));
    assert_str_eq(s, "llama");
    assert_int_equal(u64_of(g, "llama.embedding_length"), 128);
    assert_int_equal(u64_of(g, "llama.block_count"), 4);
    assert_int_equal(u64_of(g, "llama.attention.head_count"), 8);
    assert_int_equal(u64_of(g, "llama.attention.head_count_kv"), 4);
    assert_int_equal(u64_of(g, "llama.feed_forward_length"), 352);
    assert_int_equal(dv_gguf_get_f64(g, "llama.attention.layer_norm_rms_"
                                     "epsilon", &eps, true), 0);
    assert_true(eps > 0 && eps < 1e-3);
    check_llama_vocab(g);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->data_offset % 32, 0);
    check_mini_llama_tensors(g);
    dv_gguf_free(g);
}

static void test_fixture_vocab(void **state)
{
    struct dv_gguf *g = open_fixture("ggml-vocab-llama-spm.gguf");
    assert_int_equal(g->n_tensors, 0);
    /* written without padding after the header: the data section is empty */
    assert_int_equal(g->data_offset, g->size);
    check_llama_vocab(g);
    dv_gguf_free(g);
}

/* ---- broken files ------------------------------------------------------ */

/* Fields of the base file that the corpus overwrites. */
enum field {
    F_MAGIC, F_VERSION, F_NT, F_NKV, F_KEY0_LEN, F_KV0_TYPE, F_STR_LEN,
    F_ALIGN_TYPE, F_ALIGN, F_ARR_ETYPE, F_ARR_N, F_KEY3_LAST, F_NEST_N,
    F_INNER_ETYPE, F_T0_NDIMS, F_T0_NE0, F_T0_NE1, F_T0_TYPE, F_T1_NAME,
    F_T1_NE0, F_T1_OFF, F_COUNT
};

/* A valid file with two tensors whose data ends exactly at the end of the
 * file, so that every shorter length is broken. off[] receives the offset
 * of each field. */
static void build_base(struct bb *b, size_t off[F_COUNT])
{
    uint8_t data[64 + 34];
    off[F_MAGIC] = 0, off[F_VERSION] = 4, off[F_NT] = 8, off[F_NKV] = 16;
    bb_header(b, 3, 2, 5);
    off[F_KEY0_LEN] = b->n;
    bb_key(b, "general.architecture", DV_GGUF_STRING);
    off[F_KV0_TYPE] = b->n - 4, off[F_STR_LEN] = b->n;
    bb_str(b, "llama");
    bb_key(b, "general.alignment", DV_GGUF_UINT32);
    off[F_ALIGN_TYPE] = b->n - 4, off[F_ALIGN] = b->n;
    bb_u32(b, 32);
    bb_key(b, "test.arr1", DV_GGUF_ARRAY);
    off[F_ARR_ETYPE] = b->n, off[F_ARR_N] = b->n + 4;
    bb_u32(b, DV_GGUF_UINT32), bb_u64(b, 3);
    bb_u32(b, 1), bb_u32(b, 2), bb_u32(b, 3);
    bb_key(b, "test.arr2", DV_GGUF_ARRAY);
    off[F_KEY3_LAST] = b->n - 5, off[F_NEST_N] = b->n + 4;
    bb_u32(b, DV_GGUF_ARRAY), bb_u64(b, 2);
    off[F_INNER_ETYPE] = b->n;
    bb_u32(b, DV_GGUF_INT8), bb_u64(b, 2), bb_le(b, 0xfffe, 2);
    bb_u32(b, DV_GGUF_STRING), bb_u64(b, 1), bb_str(b, "x");
    bb_key(b, "test.flag", DV_GGUF_BOOL), bb_le(b, 1, 1);
    off[F_T0_NDIMS] = bb_tensor(b, "a", 2, (const int64_t[]){8, 2},
                                DV_TYPE_F32, 0);
    off[F_T0_NE0] = off[F_T0_NDIMS] + 4, off[F_T0_NE1] = off[F_T0_NE0] + 8;
    off[F_T0_TYPE] = off[F_T0_NE1] + 8;
    off[F_T1_NAME] = b->n + 8;
    size_t nd = bb_tensor(b, "b", 1, (const int64_t[]){32}, DV_TYPE_Q8_0, 64);
    off[F_T1_NE0] = nd + 4, off[F_T1_OFF] = nd + 4 + 8 + 4;
    bb_pad(b, 32);
    fill_bytes(data, sizeof data, 99);
    bb_put(b, data, sizeof data);
}

struct mutation {
    const char *what;
    enum field field;
    int width; /* bytes overwritten, little-endian */
    uint64_t value;
    const char *want; /* in the message */
};

static const struct mutation corpus[] = {
    {"wrong magic", F_MAGIC, 4, 0x64636261, "not a GGUF file (magic 'abcd')"},
    {"binary magic", F_MAGIC, 4, 0x0a00ff47, "magic 'G\\xff\\x00\\x0a'"},
    {"version 1", F_VERSION, 4, 1, "version 1 is not supported"},
    {"version 4", F_VERSION, 4, 4, "version 4"},
    {"version 0", F_VERSION, 4, 0, "version 0"},
    {"byte-swapped v3", F_VERSION, 4, 0x03000000, "byte-swapped"},
    {"byte-swapped v2", F_VERSION, 4, 0x02000000, "big-endian"},
    {"absurd n_tensors", F_NT, 8, 1ull << 62, "tensors cannot fit"},
    {"n_tensors -1", F_NT, 8, UINT64_MAX, "tensors cannot fit"},
    {"absurd n_kv", F_NKV, 8, 1ull << 62, "keys cannot fit"},
    {"n_kv one too many", F_NKV, 8, 6, NULL},
    {"n_tensors one too many", F_NT, 8, 3, NULL},
    {"key length past end", F_KEY0_LEN, 8, 1ull << 63, "reading key 0 name"},
    {"string length past end", F_STR_LEN, 8, 1ull << 63, "needs 922337203"},
    {"string length -1", F_STR_LEN, 8, UINT64_MAX, "truncated"},
    {"vtype 13", F_KV0_TYPE, 4, 13, "'general.architecture' has value type 13"},
    {"value type ~0", F_KV0_TYPE, 4, 0xFFFFFFFF, "value type 4294967295"},
    {"array element type 13", F_ARR_ETYPE, 4, 13, "element type 13"},
    {"array element type ~0", F_ARR_ETYPE, 4, 0xFFFFFFFF, "out of range"},
    {"array count past end", F_ARR_N, 8, 1ull << 62, "runs past the end"},
    {"nested count past end", F_NEST_N, 8, 1ull << 40, "runs past the end"},
    {"inner element type 13", F_INNER_ETYPE, 4, 13, "element type 13"},
    {"alignment 0", F_ALIGN, 4, 0, "alignment 0 is not a power of two"},
    {"alignment 3", F_ALIGN, 4, 3, "alignment 3 is not a power of two"},
    {"alignment as int32", F_ALIGN_TYPE, 4, DV_GGUF_INT32, "expected uint32"},
    {"duplicate key", F_KEY3_LAST, 1, '1', "'test.arr1' appears twice"},
    {"n_dims 5", F_T0_NDIMS, 4, 5, "has 5 dims"},
    {"n_dims ~0", F_T0_NDIMS, 4, 0xFFFFFFFF, "dims"},
    {"negative ne", F_T0_NE1, 8, (uint64_t)-1, "ne[1] = -1 is negative"},
    {"ne0 huge", F_T0_NE0, 8, 1ull << 62, "overflows"},
    {"ne product overflow", F_T0_NE1, 8, 1ull << 61, "overflows"},
    {"unknown type in a gap", F_T0_TYPE, 4, 4, "unknown type 4"},
    {"unknown type 1000", F_T0_TYPE, 4, 1000, "unknown type 1000"},
    {"unknown type ~0", F_T0_TYPE, 4, 0xFFFFFFFF, "unknown type"},
    {"duplicate tensor", F_T1_NAME, 1, 'a', "tensor name 'a' appears twice"},
    {"ne0 not whole blocks", F_T1_NE0, 8, 33, "blocks of 32"},
    {"data past end", F_T1_NE0, 8, 64, "runs past the end of the file"},
    {"offset past end", F_T1_OFF, 8, 1 << 20, "[offset 1048576, 34 bytes]"},
    {"offset overflow", F_T1_OFF, 8, UINT64_MAX - 31, "runs past the end"},
    {"misaligned offset", F_T1_OFF, 8, 33, "not a multiple of the alignment"},
};

static void test_base_is_valid(void **state)
{
    struct tmp *t = *state;
    struct bb b = {0};
    size_t off[F_COUNT];
    build_base(&b, off);
    write_bytes(t->path, b.p, b.n);
    struct dv_gguf *g = open_ok(t->path);
    assert_int_equal(g->n_kv, 5);
    assert_int_equal(g->n_tensors, 2);
    assert_int_equal(g->tensors[1].offset + g->tensors[1].nbytes,
                     g->size - g->data_offset);
    dv_gguf_free(g);
    free(b.p);
}

static void test_corrupt_fields(void **state)
{
    struct tmp *t = *state;
    struct bb b = {0};
    size_t off[F_COUNT];
    build_base(&b, off);
    uint8_t *copy = malloc(b.n);
    assert_non_null(copy);
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        const struct mutation *m = &corpus[i];
        memcpy(copy, b.p, b.n);
        for (int k = 0; k < m->width; k++)
            copy[off[m->field] + (size_t)k] = (uint8_t)(m->value >> (8 * k));
        expect_bad(t->path, copy, b.n, m->want, m->what);
    }
    free(copy);
    free(b.p);
}

/* Every prefix of the base file is broken. */
static void test_truncated_everywhere(void **state)
{
    struct tmp *t = *state;
    struct bb b = {0};
    size_t off[F_COUNT];
    char what[64];
    build_base(&b, off);
    for (size_t n = 0; n < b.n; n++) {
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", n, b.n);
        expect_bad(t->path, b.p, n, NULL, what);
    }
    /* One within the key list names the key and the sizes. */
    expect_bad(t->path, b.p, off[F_ALIGN] + 2, "truncated while reading key 1 "
               "'general.alignment' value (needs 4 bytes", "key 1 value");
    free(b.p);
}

static void test_odd_files(void **state)
{
    struct tmp *t = *state;
    char path[256];
    expect_bad(t->path, "", 0, "empty", "empty file");
    expect_bad(t->path, "GGU", 3, "truncated while reading the magic",
               "3 bytes");
    expect_bad(t->path, "GGUF\3\0\0", 7, "truncated while reading the version",
               "7 bytes");
    snprintf(path, sizeof path, "%s/does-not-exist.gguf", t->dir);
    expect_bad_file(path, "cannot open", "missing file");
    expect_bad_file(t->dir, "not a regular file", "directory");
}

/* Names with unprintable bytes are escaped and long ones cut. */
static void test_unprintable_names(void **state)
{
    struct tmp *t = *state;
    struct bb b = {0};
    char name[301];
    memset(name, 'n', 300);
    name[0] = '\x01', name[1] = '\n', name[2] = '\xff', name[300] = '\0';
    bb_header(&b, 3, 1, 0);
    bb_tensor(&b, name, 1, (const int64_t[]){4}, 1000, 0);
    write_bytes(t->path, b.p, b.n);
    expect_bad_file(t->path, "tensor 0 '\\x01\\x0a\\xffnnn", "bad name");
    const char *msg = dv_errmsg();
    assert_non_null(strstr(msg, "...'"));
    assert_true(strlen(msg) < strlen(t->path) + 200);
    free(b.p);
}

/* ---- the writer -------------------------------------------------------- */

static void test_writer_usage(void **state)
{
    struct dv_gguf_writer *w = NULL;
    float d[64] = {0};
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    OK(dv_gguf_writer_new(&w));
    OK(dv_gguf_writer_set_u32(w, "k", 1));
    USAGE(dv_gguf_writer_set_i32(w, "k", 1));
    assert_non_null(strstr(dv_errmsg(), "'k' set twice"));
    const int64_t ne[] = {32, 2}, ne33[] = {33}, neg[] = {4, -1};
    OK(dv_gguf_writer_add_tensor(w, "t", DV_TYPE_F32, 2, ne, d));
    USAGE(dv_gguf_writer_add_tensor(w, "t", DV_TYPE_F32, 1, ne, d));
    USAGE(dv_gguf_writer_add_tensor(w, "u", 4, 1, ne, d));
    USAGE(dv_gguf_writer_add_tensor(w, "u", DV_TYPE_Q8_0, 1, ne33, d));
    assert_non_null(strstr(dv_errmsg(), "blocks of 32"));
    USAGE(dv_gguf_writer_add_tensor(w, "u", DV_TYPE_F32, 5, ne, d));
    USAGE(dv_gguf_writer_add_tensor(w, "u", DV_TYPE_F32, 2, neg, d));
    USAGE(dv_gguf_writer_add_tensor(w, long_name, DV_TYPE_F32, 1, ne, d));
    USAGE(dv_gguf_writer_add_tensor(w, "u", DV_TYPE_F32, 1, ne, NULL));
    USAGE(dv_gguf_writer_set_str(w, "s", NULL));
    USAGE(dv_gguf_writer_write(w, NULL));
    dv_gguf_writer_free(w);
}

static void test_writer_missing_dir(void **state)
{
    struct tmp *t = *state;
    char path[256];
    struct dv_gguf_writer *w = NULL;
    snprintf(path, sizeof path, "%s/no/such/dir/m.gguf", t->dir);
    OK(dv_gguf_writer_new(&w));
    OK(dv_gguf_writer_set_str(w, "general.architecture", "x"));
    /* a bad argument (exit status 2), as for a dump */
    assert_int_equal(dv_gguf_writer_write(w, path), DV_E_USAGE);
    assert_non_null(strstr(dv_errmsg(), path));
    assert_non_null(strstr(dv_errmsg(), "No such file or directory"));
    dv_gguf_writer_free(w);
}

/* In a child limited to 4 KiB files (SIGXFSZ ignored, so write() fails with
 * EFBIG), writing 64 KiB over path must fail with DV_E_IO. Exit code 0 when
 * it does. */
static int child_write_too_big(const char *path)
{
    struct rlimit rl = {.rlim_cur = 4096, .rlim_max = 4096};
    static uint8_t data[64 * 1024];
    struct dv_gguf_writer *w = NULL;
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 2;
    fill_bytes(data, sizeof data, 5);
    if (dv_gguf_writer_new(&w) != DV_OK ||
        dv_gguf_writer_add_tensor(w, "big", DV_TYPE_F32, 1,
                                  (const int64_t[]){sizeof data / 4},
                                  data) != DV_OK)
        return 3;
    dv_status s = dv_gguf_writer_write(w, path);
    dv_gguf_writer_free(w);
    if (s != DV_E_IO) return 4;
    if (!strstr(dv_errmsg(), path) || !strstr(dv_errmsg(), "File too large"))
        return 5;
    return 0;
}

static void test_writer_failure_keeps_file(void **state)
{
    struct tmp *t = *state;
    uint8_t old[1000];
    fill_bytes(old, sizeof old, 3);
    write_bytes(t->path, old, sizeof old);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_write_too_big(t->path));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    size_t n = 0;
    uint8_t *now = read_bytes(t->path, &n);
    assert_int_equal(n, sizeof old);
    assert_memory_equal(now, old, sizeof old);
    free(now);
    assert_int_equal(count_tmp_files(t->dir), 0);
}

/* What the writer told its guard: the calls, and whether the file named
 * existed at the time. */
static struct {
    int n_calls, n_existed;
    char path[256];
    bool last_null;
} guard_log;

static void guard_record(const char *tmp)
{
    guard_log.n_calls++;
    guard_log.last_null = !tmp;
    if (!tmp) return;
    snprintf(guard_log.path, sizeof guard_log.path, "%s", tmp);
    guard_log.n_existed += access(tmp, F_OK) == 0;
}

/* The guard hears of the temporary file while it exists (so a signal
 * handler could remove it), then NULL once it is renamed. */
static void test_writer_guard(void **state)
{
    struct tmp *t = *state;
    struct dv_gguf_writer *w = NULL;
    float d[32] = {1};
    memset(&guard_log, 0, sizeof guard_log);
    OK(dv_gguf_writer_new(&w));
    OK(dv_gguf_writer_add_tensor(w, "t", DV_TYPE_F32, 1, (const int64_t[]){32}, d));
    dv_gguf_writer_set_guard(w, guard_record);
    OK(dv_gguf_writer_write(w, t->path));
    dv_gguf_writer_free(w);
    assert_int_equal(guard_log.n_calls, 2);
    assert_int_equal(guard_log.n_existed, 1);
    assert_true(guard_log.last_null);
    /* beside the destination, under the writers' one temporary name */
    assert_int_equal(strncmp(guard_log.path, t->dir, strlen(t->dir)), 0);
    assert_non_null(strstr(guard_log.path, ".part"));
    assert_int_equal(access(guard_log.path, F_OK), -1); /* renamed */
    assert_int_equal(count_tmp_files(t->dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_v2_handmade),
        cmocka_unit_test(test_all_vtypes_nested),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_fixture_mini_llama),
        cmocka_unit_test(test_fixture_vocab),
        cmocka_unit_test(test_base_is_valid),
        cmocka_unit_test(test_corrupt_fields),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_odd_files),
        cmocka_unit_test(test_unprintable_names),
        cmocka_unit_test(test_writer_usage),
        cmocka_unit_test(test_writer_missing_dir),
        cmocka_unit_test(test_writer_failure_keeps_file),
        cmocka_unit_test(test_writer_guard),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
