/*
 * test_reader.c - the dump reader (dump/reader.c) and tensor statistics
 * (dump/stats.c).
 *
 * The dumps are written here with the raw HDF5 C API: a second,
 * independent implementation of schema v1 (not the library's writer), so a
 * misreading of the schema on one side shows up as a failure. One valid
 * dump of a tiny model (vocab 32, d 8, 2 layers, 2 heads, 1 kv head, ffn
 * 16) with two passes (pos0 0 with 3 tokens, pos0 3 with 1 token); each
 * variant breaks one thing, and the reader must refuse it with DV_E_INPUT
 * and a message naming the file and the problem. Every open, good or bad,
 * must leave no HDF5 identifier behind. Values are deterministic.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/testutil.h"
#include "ops.h"
#include "reader.h"
#include "stats.h"
#include "types.h"

/* An HDF5 call that must succeed. */
#define H(call) assert_true((call) >= 0)

/* What write_dump() writes: the valid dump, or it with one thing changed. */
enum variant {
    V_VALID,
    V_FIXED_STR,   /* valid: fixed-length ASCII strings, odd integer types */
    V_USERBLOCK,   /* valid: a 512-byte user block before the HDF5 data */
    V_DEFLATE,     /* valid: logits of pass 0 chunked and deflated */
    V_NO_SCHEMA,
    V_BAD_SCHEMA,
    V_VERSION2,
    V_NO_NLAYER,
    V_NLAYER_STR,
    V_NLAYER_ZERO,
    V_NLAYER_ARRAY,
    V_VOCAB_HUGE,  /* n_vocab as uint64 2^64 - 1 */
    V_KV_HEADS,    /* n_head_kv 3 does not divide n_head 2 */
    V_HEAD_DIM,    /* n_head 3 does not divide n_embd 8, no head_dim */
    V_ROPE_TYPE,
    V_BAD_KEY,     /* a root attribute named "has space" */
    V_NO_PASSES,
    V_KQ_SHAPE,    /* blk.1.kq of pass 1 with n_kv 3 instead of 4 */
    V_LAYER,       /* blk.0.attn_norm with layer 1 */
    V_OP,          /* blk.0.attn_norm with op matmul */
    V_EXTRA_LAYER, /* the non-table tensor with layer 2 */
    V_NO_ORDER,
    V_NEG_ORDER,
    V_DUP_ORDER,
    V_LONG_OP,
    V_LONG_NAME,   /* a 70-byte dataset name */
    V_TOKEN_OOV,
    V_TOKENS_LEN,
    V_TOKENS_FLOAT,
    V_NO_TOKENS,
    V_POS0_NEG,
    V_NTOK_ZERO,
    V_SUBGROUP,
    V_SOFT_LINK,
    V_PASS_NAME,
    V_PASS_PADDED, /* a pass group "00001" (not as pass names are written) */
    V_INT_TENSOR,
    V_RANK5,
    V_SCALAR_TENSOR,
    V_COUNT
};

/* ---- writing test dumps with the HDF5 C API ---------------------------- */

/* Deterministic values. fval: float32 tensors; hval: exactly
 * representable in float16 (multiples of 1/8 below 2); dval: float64 that
 * no float32 holds exactly. */
static float fval(int64_t i, int salt) { return (float)(0.1 * (double)(i + 1) * (salt + 1)) - 1.0f; }
static float hval(int64_t i) { return (float)((i * 7) % 23 - 11) / 8.0f; }
static double dval(int64_t i, int salt) { return 1.0 + (double)i * 1e-10 + salt; }

/* A string attribute: variable-length UTF-8 (fixed 0), or fixed-length
 * ASCII with 3 bytes to spare, NUL-padded (fixed 1, as numpy's 'S'
 * strings) or space-padded (fixed 2, as Fortran writes them). */
static void put_str(hid_t loc, const char *key, const char *val, int fixed)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    char buf[128] = {0};
    if (fixed) {
        H(H5Tset_size(t, strlen(val) + 3));
        H(H5Tset_strpad(t, fixed == 2 ? H5T_STR_SPACEPAD : H5T_STR_NULLPAD));
        H(H5Tset_cset(t, H5T_CSET_ASCII));
        snprintf(buf, sizeof buf, "%s%s", val, fixed == 2 ? "   " : "");
    } else { /* as h5py writes a str */
        H(H5Tset_size(t, H5T_VARIABLE));
        H(H5Tset_cset(t, H5T_CSET_UTF8));
    }
    hid_t a = H5Acreate2(loc, key, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H(a);
    H(fixed ? H5Awrite(a, t, buf) : H5Awrite(a, t, &val));
    H(H5Aclose(a));
    H(H5Sclose(sp));
    H(H5Tclose(t));
}

/* An integer attribute stored as file type ft (H5T_STD_I64LE, ...); a
 * one-element 1-D dataspace instead of a scalar when `vec`. */
static void put_int_as(hid_t loc, const char *key, int64_t v, hid_t ft, bool vec)
{
    hsize_t one = 1;
    hid_t sp = vec ? H5Screate_simple(1, &one, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, key, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    H(a);
    H(H5Awrite(a, H5T_NATIVE_INT64, &v));
    H(H5Aclose(a));
    H(H5Sclose(sp));
}

static void put_int(hid_t loc, const char *key, int64_t v)
{
    put_int_as(loc, key, v, H5T_STD_I64LE, false);
}

static void put_real(hid_t loc, const char *key, double v, hid_t ft)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, key, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    H(a);
    H(H5Awrite(a, H5T_NATIVE_DOUBLE, &v));
    H(H5Aclose(a));
    H(H5Sclose(sp));
}

/* IEEE float16, built as h5py builds it (HDF5 1.10 has no predefined one). */
static hid_t half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H(H5Tset_fields(t, 15, 10, 5, 0, 10));
    H(H5Tset_size(t, 2));
    H(H5Tset_ebias(t, 15));
    return t;
}

/* One tensor dataset: n_dims dims of file type ft, data given as mt; its
 * layer, op (NULL: left out) and order (INT64_MIN: left out). */
struct tensor {
    const char *name;
    int n_dims;
    hsize_t dims[5];
    hid_t ft, mt;
    const void *data;
    int64_t layer;
    const char *op;
    int64_t order;
    bool deflate;
};

static void put_tensor(hid_t g, const struct tensor *t)
{
    hid_t sp = t->n_dims ? H5Screate_simple(t->n_dims, t->dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (t->deflate) {
        H(H5Pset_chunk(dcpl, t->n_dims, t->dims));
        H(H5Pset_deflate(dcpl, 6));
    }
    hid_t d = H5Dcreate2(g, t->name, t->ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H(d);
    H(H5Dwrite(d, t->mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data));
    put_int_as(d, "layer", t->layer, H5T_STD_I32LE, false);
    if (t->op) put_str(d, "op", t->op, 0);
    if (t->order != INT64_MIN) put_int(d, "order", t->order);
    H(H5Dclose(d));
    H(H5Pclose(dcpl));
    H(H5Sclose(sp));
}

static void put_tokens(hid_t g, hid_t ft, hsize_t n, const int32_t *tok)
{
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(g, "tokens", ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H(d);
    H(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tok));
    H(H5Dclose(d));
    H(H5Sclose(sp));
}

/* The data of the valid dump: [T, 8] float16 and float32, [2, T, n_kv]
 * float32, [T, 32] float64, [4] float32 (the extra tensor). */
static float attn_in[24], attn_norm[24], kq0[18], kq1[8], probe[4];
static double logits0[96], logits1[32];

static void fill_data(void)
{
    for (int i = 0; i < 24; i++) attn_in[i] = hval(i), attn_norm[i] = fval(i, 1);
    for (int i = 0; i < 18; i++) kq0[i] = fval(i, 2);
    kq0[2] = -INFINITY; /* a masked score, as the forward pass writes them */
    for (int i = 0; i < 8; i++) kq1[i] = fval(i, 3);
    for (int i = 0; i < 4; i++) probe[i] = fval(i, 4);
    for (int i = 0; i < 96; i++) logits0[i] = dval(i, 0);
    for (int i = 0; i < 32; i++) logits1[i] = dval(i, 1);
}

static void root_attrs(hid_t f, enum variant v)
{
    int fx = v == V_FIXED_STR;
    if (v != V_NO_SCHEMA) put_str(f, "schema", v == V_BAD_SCHEMA ? "other-dump" : "diverge-dump", fx);
    put_int(f, "schema_version", v == V_VERSION2 ? 2 : 1);
    put_str(f, "tool_version", "test", fx);
    put_str(f, "created_utc", "2024-01-02T03:04:05Z", 2 * fx);
    put_str(f, "backend", "cpu", fx);
    put_str(f, "arch", "llama", fx);
    put_str(f, "inject", "", fx);
    if (v == V_VOCAB_HUGE) {
        uint64_t huge = UINT64_MAX;
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "n_vocab", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H(H5Awrite(a, H5T_NATIVE_UINT64, &huge));
        H(H5Aclose(a));
        H(H5Sclose(sp));
    } else if (fx) put_int_as(f, "n_vocab", 32, H5T_STD_U64BE, true);
    else put_int(f, "n_vocab", 32);
    put_int_as(f, "n_embd", 8, fx ? H5T_STD_U8LE : H5T_STD_I64LE, false);
    if (v == V_NLAYER_STR) put_str(f, "n_layer", "2", 0);
    else if (v == V_NLAYER_ZERO) put_int(f, "n_layer", 0);
    else if (v == V_NLAYER_ARRAY) {
        hsize_t two = 2;
        int64_t vals[2] = {2, 2};
        hid_t sp = H5Screate_simple(1, &two, NULL);
        hid_t a = H5Acreate2(f, "n_layer", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H(H5Awrite(a, H5T_NATIVE_INT64, vals));
        H(H5Aclose(a));
        H(H5Sclose(sp));
    } else if (v != V_NO_NLAYER) put_int_as(f, "n_layer", 2, H5T_STD_I32BE, fx);
    put_int(f, "n_head", v == V_HEAD_DIM ? 3 : 2);
    put_int(f, "n_head_kv", v == V_KV_HEADS ? 3 : 1);
    put_int(f, "n_ff", 16);
    put_int(f, "rope_freq_base", 10000); /* an integer where a real is due */
    put_real(f, "rms_eps", 1e-5, H5T_IEEE_F32LE);
    put_str(f, "rope_type", v == V_ROPE_TYPE ? "gptj" : "neox", fx);
    put_str(f, "engine.note", "extra key", fx);
    put_real(f, "engine.scale", 0.5, H5T_IEEE_F64BE);
    if (v == V_BAD_KEY) put_int(f, "has space", 1);
}

static void pass0(hid_t passes, enum variant v)
{
    hid_t g = H5Gcreate2(passes, v == V_PASS_PADDED ? "00000" : "0000", H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT);
    H(g);
    put_int(g, "pos0", v == V_POS0_NEG ? -1 : 0);
    put_int(g, "n_tokens", v == V_NTOK_ZERO ? 0 : 3);
    int32_t tok[3] = {1, 5, v == V_TOKEN_OOV ? 32 : 31};
    if (v == V_TOKENS_FLOAT) put_tokens(g, H5T_IEEE_F32LE, 3, tok);
    else if (v != V_NO_TOKENS) put_tokens(g, H5T_STD_I64LE, v == V_TOKENS_LEN ? 2 : 3, tok);
    hid_t half = half_type();
    /* written out of execution order: the reader sorts by `order` */
    put_tensor(g, &(struct tensor){"logits", 2, {3, 32}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                   logits0, -1, "matmul", 40, v == V_DEFLATE});
    put_tensor(g, &(struct tensor){"blk.1.kq", 3, {2, 3, 3}, H5T_IEEE_F32LE,
                                   H5T_NATIVE_FLOAT, kq0, 1, "kq", 20, false});
    put_tensor(g, &(struct tensor){"blk.0.attn_norm", 2, {3, 8}, H5T_IEEE_F32BE,
                                   H5T_NATIVE_FLOAT, attn_norm, v == V_LAYER ? 1 : 0,
                                   v == V_OP ? "matmul" : "rmsnorm", 1, false});
    put_tensor(g, &(struct tensor){"blk.0.attn_in", 2, {3, 8}, half, H5T_NATIVE_FLOAT,
                                   attn_in, 0, "get_rows", 0, false});
    struct tensor pr = {"probe.scale", 1, {4}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, probe,
                        v == V_EXTRA_LAYER ? 2 : 0, "custom", 2, false};
    if (v == V_NO_ORDER) pr.order = INT64_MIN;
    if (v == V_NEG_ORDER) pr.order = -2;
    if (v == V_DUP_ORDER) pr.order = 1;
    if (v == V_LONG_OP) pr.op = "an_op_name_longer_than_thirty_one_bytes";
    if (v == V_LONG_NAME)
        pr.name = "probe.a_name_that_is_much_longer_than_the_sixty_three_bytes_allowed";
    if (v == V_INT_TENSOR) pr.ft = H5T_STD_I32LE;
    if (v == V_RANK5) pr.n_dims = 5, memcpy(pr.dims, (hsize_t[5]){1, 1, 1, 1, 4}, sizeof pr.dims);
    if (v == V_SCALAR_TENSOR) pr.n_dims = 0;
    put_tensor(g, &pr);
    if (v == V_SUBGROUP) H(H5Gclose(H5Gcreate2(g, "sub", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    if (v == V_SOFT_LINK) H(H5Lcreate_soft("/passes/0000/logits", g, "alias", H5P_DEFAULT, H5P_DEFAULT));
    H(H5Tclose(half));
    H(H5Gclose(g));
}

static void pass1(hid_t passes, enum variant v)
{
    hid_t g = H5Gcreate2(passes, "0001", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H(g);
    put_int(g, "pos0", 3);
    put_int_as(g, "n_tokens", 1, H5T_STD_U16LE, false);
    int32_t tok[1] = {7};
    put_tokens(g, H5T_STD_I32LE, 1, tok);
    put_tensor(g, &(struct tensor){"blk.1.kq", 3, {2, 1, v == V_KQ_SHAPE ? 3 : 4},
                                   H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, kq1, 1, "kq", 20, false});
    put_tensor(g, &(struct tensor){"logits", 2, {1, 32}, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                   logits1, -1, "matmul", 40, false});
    H(H5Gclose(g));
}

/* Write variant v as tu_tmp/NAME; returns its path (static buffer). */
static const char *write_dump(enum variant v, const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tu_tmp, name);
    fill_data();
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (v == V_USERBLOCK) H(H5Pset_userblock(fcpl, 512));
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H(f);
    root_attrs(f, v);
    if (v != V_NO_PASSES) {
        hid_t passes = H5Gcreate2(f, "passes", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H(passes);
        pass1(passes, v); /* pass 1 first: the reader sorts by index */
        pass0(passes, v);
        if (v == V_PASS_NAME)
            H(H5Gclose(H5Gcreate2(passes, "pass1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
        H(H5Gclose(passes));
    }
    H(H5Fclose(f));
    H(H5Pclose(fcpl));
    return path;
}

/* ---- identifier leak checks -------------------------------------------- */

/* Files, groups, datasets, attributes and named types are counted by
 * H5Fget_obj_count. Transient datatypes, dataspaces and property lists are
 * not, and H5Inmembers refuses library types; but HDF5 numbers the
 * identifiers of a type consecutively, the type in the top bits (H5Ipkg.h
 * in 1.10 and 1.12: the serial in the low 56 bits), so those opened since
 * a mark can be probed one by one with H5Iis_valid. */
#define ID_BITS 56

struct ids {
    ssize_t objs;   /* H5Fget_obj_count of everything */
    hid_t mark[3];  /* a fresh datatype, dataspace and property list id */
};

static hid_t probe_id(int k)
{
    hid_t id = k == 0 ? H5Tcopy(H5T_NATIVE_INT) : k == 1 ? H5Screate(H5S_SCALAR)
                                                          : H5Pcreate(H5P_FILE_ACCESS);
    static const H5I_type_t type[3] = {H5I_DATATYPE, H5I_DATASPACE, H5I_GENPROP_LST};
    H(id);
    assert_int_equal(id >> ID_BITS, type[k]); /* the numbering is as assumed */
    H(k == 0 ? H5Tclose(id) : k == 1 ? H5Sclose(id) : H5Pclose(id));
    return id;
}

static struct ids mark_ids(void)
{
    struct ids m = {.objs = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL)};
    for (int k = 0; k < 3; k++) m.mark[k] = probe_id(k);
    return m;
}

/* Identifiers opened since mark m and still open, by kind; objs: the
 * change in H5Fget_obj_count. */
static void open_since(struct ids m, ssize_t *objs, int *transient)
{
    *objs = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) - m.objs;
    *transient = 0;
    for (int k = 0; k < 3; k++)
        for (hid_t id = m.mark[k] + 1, end = probe_id(k); id < end; id++)
            *transient += H5Iis_valid(id) > 0;
}

static void assert_no_new_ids(struct ids m)
{
    ssize_t objs;
    int transient;
    open_since(m, &objs, &transient);
    assert_int_equal(objs, 0);
    assert_int_equal(transient, 0);
}

/* ---- the valid dump ------------------------------------------------------ */

static void check_tensor(const struct dv_reader_tensor *t, const char *name, int layer,
                         const char *op, int64_t order, int n_dims, const int64_t *shape,
                         int bytes)
{
    assert_string_equal(t->name, name);
    assert_int_equal(t->layer, layer);
    assert_string_equal(t->op, op);
    assert_int_equal(t->order, order);
    assert_int_equal(t->n_dims, n_dims);
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) assert_int_equal(t->shape[i], shape[i]), n *= shape[i];
    assert_int_equal(t->n_elems, n);
    assert_int_equal(t->stored_bytes, bytes);
}

/* Tensor `name` of pass position p read as float and as double equals
 * want[] (given as float or double, `is_double`) exactly. */
static void check_values(const struct dv_reader *r, int p, const char *name,
                         const void *want, bool is_double)
{
    int t = dv_reader_find_tensor(r, p, name);
    assert_true(t >= 0);
    int64_t n = r->passes[p].tensors[t].n_elems;
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    assert_int_equal(dv_reader_read(r, p, t, DV_TYPE_F32, f), DV_OK);
    assert_int_equal(dv_reader_read(r, p, t, DV_TYPE_F64, d), DV_OK);
    for (int64_t i = 0; i < n; i++) {
        double w = is_double ? ((const double *)want)[i] : ((const float *)want)[i];
        assert_true(d[i] == w);
        assert_true(f[i] == (float)w);
    }
    free(f);
    free(d);
}

static void check_valid(const char *path)
{
    struct ids before = mark_ids();
    struct dv_reader *r;
    assert_int_equal(dv_reader_open(path, &r), DV_OK);
    assert_string_equal(r->path, path);
    /* attributes: all of them, extra keys included, in some order */
    assert_int_equal(r->n_attrs, 18);
    assert_string_equal(dv_reader_str(r, "schema"), "diverge-dump");
    assert_string_equal(dv_reader_str(r, "created_utc"), "2024-01-02T03:04:05Z");
    assert_string_equal(dv_reader_str(r, "engine.note"), "extra key");
    assert_string_equal(dv_reader_str(r, "inject"), "");
    assert_string_equal(dv_reader_str(r, "no.such.key"), "");
    assert_string_equal(dv_reader_str(r, "n_vocab"), ""); /* not a string */
    assert_null(dv_reader_attr(r, "device"));
    const struct dv_reader_attr *a = dv_reader_attr(r, "schema_version");
    assert_true(a && a->kind == DV_ATTR_INT && a->i == 1);
    a = dv_reader_attr(r, "rope_freq_base"); /* stored as an integer */
    assert_true(a && a->kind == DV_ATTR_REAL && a->r == 10000.0);
    a = dv_reader_attr(r, "rms_eps");
    assert_true(a && a->kind == DV_ATTR_REAL && a->r == (double)1e-5f);
    a = dv_reader_attr(r, "engine.scale");
    assert_true(a && a->kind == DV_ATTR_REAL && a->r == 0.5);
    /* the model description */
    const struct dv_config *c = &r->cfg;
    assert_string_equal(c->arch, "llama");
    assert_int_equal(c->n_vocab, 32);
    assert_int_equal(c->d_model, 8);
    assert_int_equal(c->n_layer, 2);
    assert_int_equal(c->n_head, 2);
    assert_int_equal(c->n_head_kv, 1);
    assert_int_equal(c->head_dim, 4);
    assert_int_equal(c->n_ff, 16);
    assert_int_equal(c->n_rot, 4);
    assert_int_equal(c->rope_mode, DV_ROPE_NEOX);
    assert_true(c->rope_base == 10000.0 && c->rms_eps == (double)1e-5f);
    /* passes, sorted by index */
    assert_int_equal(r->n_passes, 2);
    const struct dv_reader_pass *p0 = &r->passes[0], *p1 = &r->passes[1];
    assert_int_equal(p0->index, 0);
    assert_int_equal(p1->index, 1);
    assert_int_equal(dv_reader_find_pass(r, 1), 1);
    assert_int_equal(dv_reader_find_pass(r, 2), -1);
    assert_true(p0->pos0 == 0 && p0->n_tokens == 3 && p1->pos0 == 3 && p1->n_tokens == 1);
    assert_true(p0->tokens[0] == 1 && p0->tokens[1] == 5 && p0->tokens[2] == 31);
    assert_int_equal(p1->tokens[0], 7);
    /* tensors, sorted by order */
    assert_int_equal(p0->n_tensors, 5);
    check_tensor(&p0->tensors[0], "blk.0.attn_in", 0, "get_rows", 0, 2, (int64_t[]){3, 8}, 2);
    check_tensor(&p0->tensors[1], "blk.0.attn_norm", 0, "rmsnorm", 1, 2, (int64_t[]){3, 8}, 4);
    check_tensor(&p0->tensors[2], "probe.scale", 0, "custom", 2, 1, (int64_t[]){4}, 4);
    check_tensor(&p0->tensors[3], "blk.1.kq", 1, "kq", 20, 3, (int64_t[]){2, 3, 3}, 4);
    check_tensor(&p0->tensors[4], "logits", -1, "matmul", 40, 2, (int64_t[]){3, 32}, 8);
    assert_int_equal(p1->n_tensors, 2);
    check_tensor(&p1->tensors[0], "blk.1.kq", 1, "kq", 20, 3, (int64_t[]){2, 1, 4}, 4);
    check_tensor(&p1->tensors[1], "logits", -1, "matmul", 40, 2, (int64_t[]){1, 32}, 8);
    /* table names are resolved, others are not */
    const struct dv_reader_tensor *t = &p0->tensors[3];
    assert_true(t->known && t->id.layer == 1 && t->id.which == DV_LT_KQ && t->id.op == DV_OP_KQ);
    assert_true(p0->tensors[4].known && p0->tensors[4].id.which == DV_GT_LOGITS);
    assert_false(p0->tensors[2].known);
    assert_int_equal(dv_reader_find_tensor(r, 0, "probe.scale"), 2);
    assert_int_equal(dv_reader_find_tensor(r, 1, "probe.scale"), -1);
    assert_int_equal(dv_reader_find_tensor(r, 5, "logits"), -1);
    /* values */
    check_values(r, 0, "blk.0.attn_in", attn_in, false); /* float16 */
    check_values(r, 0, "blk.0.attn_norm", attn_norm, false);
    check_values(r, 0, "blk.1.kq", kq0, false);
    check_values(r, 0, "probe.scale", probe, false);
    check_values(r, 0, "logits", logits0, true);
    check_values(r, 1, "blk.1.kq", kq1, false);
    check_values(r, 1, "logits", logits1, true);
    /* while open: the file and nothing else */
    ssize_t objs;
    int transient;
    open_since(before, &objs, &transient);
    assert_int_equal(objs, 1);
    assert_int_equal(transient, 0);
    dv_reader_free(r);
    assert_no_new_ids(before);
}

static void test_valid(void **state)
{
    (void)state;
    check_valid(write_dump(V_VALID, "valid.h5"));
}

static void test_fixed_strings(void **state)
{
    (void)state;
    check_valid(write_dump(V_FIXED_STR, "fixed.h5"));
}

static void test_userblock(void **state)
{
    (void)state;
    check_valid(write_dump(V_USERBLOCK, "userblock.h5"));
}

static void test_deflate(void **state)
{
    (void)state;
    check_valid(write_dump(V_DEFLATE, "deflate.h5"));
}

/* ---- broken dumps ------------------------------------------------------- */

/* Opening path must fail with DV_E_INPUT, name the file and say `needle`,
 * and leave no identifier open. */
static void expect_bad(const char *path, const char *needle)
{
    struct ids before = mark_ids();
    static struct dv_reader dummy;
    struct dv_reader *r = &dummy; /* must be reset to NULL */
    dv_status s = dv_reader_open(path, &r);
    const char *msg = dv_errmsg();
    if (s != DV_E_INPUT || strncmp(msg, path, strlen(path)) || !strstr(msg, needle))
        fail_msg("%s: got status %d, message \"%s\"; expected one saying \"%s\"", path,
                 (int)s, msg, needle);
    print_message("%s\n", msg);
    assert_null(r);
    assert_null(strchr(msg, '\n'));
    assert_no_new_ids(before);
}

static void test_bad_dumps(void **state)
{
    (void)state;
    static const struct {
        enum variant v;
        const char *needle;
    } cases[] = {
        {V_NO_SCHEMA, ": not a diverge dump (no schema attribute)"},
        {V_BAD_SCHEMA, ": not a diverge dump (schema attribute is 'other-dump')"},
        {V_VERSION2, ": schema version 2 is newer than this diverge reads (1)"},
        {V_NO_NLAYER, ": missing attribute n_layer"},
        {V_NLAYER_STR, ": attribute n_layer is a string, expected an integer"},
        {V_NLAYER_ZERO, ": attribute n_layer = 0 is out of range"},
        {V_NLAYER_ARRAY, ": attribute n_layer is not a single value"},
        {V_VOCAB_HUGE, ": attribute n_vocab = 18446744073709551615 is too large"},
        {V_KV_HEADS, ": n_head 2 is not a multiple of n_head_kv 3"},
        {V_HEAD_DIM, ": n_embd 8 is not a multiple of n_head 3"},
        {V_ROPE_TYPE, ": attribute rope_type is 'gptj', expected 'norm' or 'neox'"},
        {V_BAD_KEY, ": root attribute name 'has space' is not"},
        {V_NO_PASSES, ": no /passes group"},
        {V_KQ_SHAPE, ": pass 0001: tensor blk.1.kq has shape [2, 1, 3], expected [2, 1, 4]"},
        {V_LAYER, ": pass 0000: tensor blk.0.attn_norm has layer 1, expected 0"},
        {V_OP, ": pass 0000: tensor blk.0.attn_norm has op 'matmul', expected 'rmsnorm'"},
        {V_EXTRA_LAYER, ": pass 0000: tensor probe.scale has layer 2 (the model has 2 layers)"},
        {V_NO_ORDER, ": pass 0000: tensor probe.scale: missing attribute order"},
        {V_NEG_ORDER, ": pass 0000: tensor probe.scale has order -2"},
        {V_DUP_ORDER, ": pass 0000: tensors blk.0.attn_norm and probe.scale have the same order 1"},
        {V_LONG_OP, ": pass 0000: tensor probe.scale has op 'an_op_name_longer"},
        {V_LONG_NAME, ": pass 0000: member 'probe.a_name_that_is_much_longer_than_the_sixty_three_bytes_allo...' is not a tensor name"},
        {V_TOKEN_OOV, ": pass 0000: token 2 is 32, outside the vocabulary (0..31)"},
        {V_TOKENS_LEN, ": pass 0000: tokens has 2 values, n_tokens is 3"},
        {V_TOKENS_FLOAT, ": pass 0000: tokens are of class float"},
        {V_NO_TOKENS, ": pass 0000: no tokens dataset"},
        {V_POS0_NEG, ": pass 0000: pos0 is -1"},
        {V_NTOK_ZERO, ": pass 0000: n_tokens is 0"},
        {V_SUBGROUP, ": pass 0000: member 'sub' is not a dataset"},
        {V_SOFT_LINK, ": pass 0000: member 'alias' of the pass group is a soft or external link"},
        {V_PASS_NAME, ": member 'pass1' of /passes is not named as a pass"},
        {V_PASS_PADDED, ": member '00000' of /passes is not named as a pass"},
        {V_INT_TENSOR, ": pass 0000: tensor probe.scale is of class integer, 4 bytes"},
        {V_RANK5, ": pass 0000: tensor probe.scale has 5 dims (1..4 allowed)"},
        {V_SCALAR_TENSOR, ": pass 0000: tensor probe.scale has 0 dims (1..4 allowed)"},
    };
    _Static_assert(sizeof cases / sizeof cases[0] == V_COUNT - V_NO_SCHEMA, "a case per variant");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%d.h5", (int)cases[i].v);
        expect_bad(write_dump(cases[i].v, name), cases[i].needle);
    }
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void test_not_dumps(void **state)
{
    (void)state;
    char path[512];
    /* a valid dump cut in half: HDF5 sees the end of file missing */
    snprintf(path, sizeof path, "%s", write_dump(V_VALID, "cut.h5"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    expect_bad(path, ": cannot open as HDF5 (truncated file: eof = ");
    /* only the signature and a little more */
    assert_int_equal(truncate(path, 20), 0);
    expect_bad(path, ": cannot open as HDF5 (");
    snprintf(path, sizeof path, "%s/empty.h5", tu_tmp);
    write_bytes(path, "", 0);
    expect_bad(path, ": not an HDF5 file");
    snprintf(path, sizeof path, "%s/text.h5", tu_tmp);
    write_bytes(path, "hello, this is not HDF5\n", 24);
    expect_bad(path, ": not an HDF5 file");
    snprintf(path, sizeof path, "%s/missing.h5", tu_tmp);
    expect_bad(path, ": No such file or directory");
    snprintf(path, sizeof path, "%s/dir.h5", tu_tmp);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_bad(path, ": Is a directory");
}

/* Data damaged after the structure was read: dv_reader_open succeeds,
 * dv_reader_read reports the tensor. */
static void test_corrupt_data(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s", write_dump(V_DEFLATE, "corrupt.h5"));
    /* where the one deflated chunk of pass 0's logits lies */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    H(f);
    hid_t d = H5Dopen2(f, "/passes/0000/logits", H5P_DEFAULT);
    H(d);
    haddr_t addr;
    hsize_t size;
    hid_t sp = H5Dget_space(d);
    H(H5Dget_chunk_info(d, sp, 0, NULL, NULL, &addr, &size));
    H(H5Sclose(sp));
    H(H5Dclose(d));
    H(H5Fclose(f));
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)addr, SEEK_SET), 0);
    for (hsize_t i = 0; i < size; i++) fputc(0xa5, fp);
    assert_int_equal(fclose(fp), 0);

    struct ids before = mark_ids();
    struct dv_reader *r;
    assert_int_equal(dv_reader_open(path, &r), DV_OK);
    int t = dv_reader_find_tensor(r, 0, "logits");
    double out[96];
    assert_int_equal(dv_reader_read(r, 0, t, DV_TYPE_F64, out), DV_E_INPUT);
    char want[600];
    snprintf(want, sizeof want, "%s: pass 0000: cannot read logits (", path);
    assert_non_null(strstr(dv_errmsg(), want));
    /* the other tensors still read */
    check_values(r, 0, "blk.1.kq", kq0, false);
    dv_reader_free(r);
    assert_no_new_ids(before);
}

static void test_read_usage(void **state)
{
    (void)state;
    struct dv_reader *r;
    assert_int_equal(dv_reader_open(write_dump(V_VALID, "usage.h5"), &r), DV_OK);
    double out[96];
    assert_int_equal(dv_reader_read(r, 2, 0, DV_TYPE_F64, out), DV_E_USAGE);
    assert_int_equal(dv_reader_read(r, 0, 5, DV_TYPE_F64, out), DV_E_USAGE);
    assert_int_equal(dv_reader_read(r, -1, 0, DV_TYPE_F64, out), DV_E_USAGE);
    assert_int_equal(dv_reader_read(r, 0, 0, DV_TYPE_F16, out), DV_E_USAGE);
    dv_reader_free(r);
    dv_reader_free(NULL);
}

/* ---- statistics ----------------------------------------------------------- */

static void test_stats(void **state)
{
    (void)state;
    double x[] = {1, -2, NAN, 3, INFINITY, -INFINITY, -1};
    struct dv_stats s = dv_stats_f64(x, 7);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.n_finite, 4);
    assert_int_equal(s.n_nan, 1);
    assert_int_equal(s.n_inf, 2);
    assert_true(s.min == -2 && s.max == 3);
    assert_true(fabs(s.rms - sqrt(15.0 / 4.0)) < 1e-15);
    /* no finite values, and no values at all */
    s = dv_stats_f64(x + 4, 2);
    assert_true(s.n_finite == 0 && s.n_inf == 2 && isnan(s.min) && isnan(s.max) && isnan(s.rms));
    s = dv_stats_f64(NULL, 0);
    assert_true(s.n == 0 && isnan(s.rms));
    /* squares that overflow or underflow a double */
    double big[] = {3e200, -4e200}, tiny[] = {3e-200, 4e-200}, zero[] = {0, -0.0};
    s = dv_stats_f64(big, 2);
    assert_true(fabs(s.rms / 1e200 - sqrt(12.5)) < 1e-12);
    s = dv_stats_f64(tiny, 2);
    assert_true(fabs(s.rms / 1e-200 - sqrt(12.5)) < 1e-12);
    s = dv_stats_f64(zero, 2);
    assert_true(s.rms == 0 && s.min == 0 && s.max == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_fixed_strings),
        cmocka_unit_test(test_userblock),
        cmocka_unit_test(test_deflate),
        cmocka_unit_test(test_bad_dumps),
        cmocka_unit_test(test_not_dumps),
        cmocka_unit_test(test_corrupt_data),
        cmocka_unit_test(test_read_usage),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
