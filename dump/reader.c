/*
 * reader.c - open and validate a diverge-dump file (schema v1, schema.h),
 * list its passes and tensors, read tensors as float or double.
 *
 * Every HDF5 call runs between dv_h5_quiet() and dv_h5_loud(), so HDF5
 * never prints its error stack; every failure becomes one DV_E_INPUT line
 * "PATH: problem". Names and strings from the file are bounded before they
 * are used and escaped before they are shown. Only hard links are followed:
 * a soft or external link could point anywhere (another file, a cycle).
 */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "h5util.h"
#include "types.h"

/* Longest string attribute read, in bytes: far above any path, version or
 * device string, small enough that a hostile file cannot make us allocate
 * much. */
#define MAX_STR 65536
/* Bytes of a member name fetched to show in a message about it. */
#define MAX_LINK 256

/* Where HDF5's 8-byte signature may start: 0, then 512, 1024, 2048, ... */
static const unsigned char h5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* What an error message is about: the file, and the pass being read. */
struct ctx {
    const char *path;
    char pass[24]; /* group name of the pass being read, or "" */
};

static dv_status bad(const struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static dv_status bad(const struct ctx *c, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->pass[0]) return dv_fail(DV_E_INPUT, "%s: pass %s: %s", c->path, c->pass, msg);
    return dv_fail(DV_E_INPUT, "%s: %s", c->path, msg);
}

/* Add "PATH: [pass NNNN: ]" in front of the message a helper recorded. */
static dv_status prefixed(const struct ctx *c, dv_status s)
{
    char pre[1024];
    if (c->pass[0]) snprintf(pre, sizeof pre, "%s: pass %s", c->path, c->pass);
    else snprintf(pre, sizeof pre, "%s", c->path);
    return dv_fail_prefix(s, pre);
}

/* s quoted for a message: bytes outside printable ASCII escaped, at most
 * 64 bytes shown. buf needs 64 * 4 + 8 bytes. */
static const char *shown(const char *s, char buf[264])
{
    size_t o = 0, i = 0;
    buf[o++] = '\'';
    for (; s[i] && i < 64; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch > 0x7e || ch == '\'' || ch == '\\')
            o += (size_t)snprintf(buf + o, 5, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    if (s[i]) o += (size_t)snprintf(buf + o, 4, "...");
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* An attribute name for a message: as is when it is a valid key (all the
 * names this reader asks for are), else quoted and escaped. */
static const char *attr_name(const char *s, char buf[264])
{
    return dv_schema_key_ok(s) ? s : shown(s, buf);
}

/* "cannot read attribute NAME (HDF5's reason)" */
static dv_status unreadable(const struct ctx *c, const char *name)
{
    char nb[264], why[160];
    return bad(c, "cannot read attribute %s (%s)", attr_name(name, nb),
               dv_h5_reason(why, sizeof why));
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case DV_ATTR_STR: return "a string";
    case DV_ATTR_INT: return "an integer";
    default: return "a real number";
    }
}

static const char *class_name(H5T_class_t cl)
{
    switch (cl) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_ARRAY: return "array";
    default: return "unknown";
    }
}

/* ---- attributes -------------------------------------------------------- */

/* A scalar attribute value: kind plus one of str (owned), i, r. */
struct value {
    int kind;
    char *str;
    int64_t i;
    double r;
};

/* A string attribute of file type ft: variable-length or fixed-length, any
 * padding, ASCII or UTF-8 (HDF5 does not convert between character sets,
 * so the memory type takes the file's). */
static dv_status read_str(const struct ctx *c, hid_t aid, hid_t ft,
                          const char *name, struct value *v)
{
    char nb[264];
    H5T_cset_t cset = H5Tget_cset(ft);
    htri_t var = H5Tis_variable_str(ft);
    size_t size = H5Tget_size(ft);
    hid_t mt = cset < 0 || var < 0 ? -1 : H5Tcopy(H5T_C_S1);
    dv_status s = DV_OK;
    if (mt < 0 || H5Tset_cset(mt, cset) < 0) goto fail;
    v->kind = DV_ATTR_STR;
    if (var) {
        char *p = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(aid, mt, &p) < 0) goto fail;
        size_t n = p ? strlen(p) : 0;
        if (n > MAX_STR) s = bad(c, "attribute %s is longer than %d bytes", attr_name(name, nb), MAX_STR);
        else if (!(v->str = strdup(p ? p : ""))) s = dv_fail(DV_E_NOMEM, "out of memory");
        if (p) H5free_memory(p);
    } else {
        if (size == 0 || size > MAX_STR) {
            s = bad(c, "attribute %s is longer than %d bytes", attr_name(name, nb), MAX_STR);
        } else if (!(v->str = calloc(1, size + 1))) {
            s = dv_fail(DV_E_NOMEM, "out of memory");
        } else if (H5Tset_size(mt, size) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0 ||
                   H5Aread(aid, mt, v->str) < 0) {
            goto fail; /* space padding is turned into NULs by the conversion */
        }
    }
    H5Tclose(mt);
    return s;
fail:
    s = unreadable(c, name);
    if (mt >= 0) H5Tclose(mt);
    return s;
}

/* An integer attribute of file type ft, as int64 (unsigned values above
 * INT64_MAX are errors: HDF5's conversion would clip them silently). */
static dv_status read_int(const struct ctx *c, hid_t aid, hid_t ft,
                          const char *name, struct value *v)
{
    char nb[264];
    size_t size = H5Tget_size(ft);
    H5T_sign_t sign = H5Tget_sign(ft);
    v->kind = DV_ATTR_INT;
    if (size == 0 || size > 8 || sign < 0)
        return bad(c, "attribute %s is a %zu-byte integer (at most 8 bytes "
                   "supported)", attr_name(name, nb), size);
    if (sign == H5T_SGN_NONE && size == 8) {
        uint64_t u;
        if (H5Aread(aid, H5T_NATIVE_UINT64, &u) < 0) goto fail;
        if (u > (uint64_t)INT64_MAX)
            return bad(c, "attribute %s = %llu is too large", attr_name(name, nb),
                       (unsigned long long)u);
        v->i = (int64_t)u;
        return DV_OK;
    }
    if (H5Aread(aid, H5T_NATIVE_INT64, &v->i) >= 0) return DV_OK;
fail:
    return unreadable(c, name);
}

/* Read attribute aid (called name) into v: one value (a scalar or a
 * one-element 1-D dataspace) of class string, integer or float. */
static dv_status read_value(const struct ctx *c, hid_t aid, const char *name,
                            struct value *v)
{
    char nb[264];
    memset(v, 0, sizeof *v);
    hid_t space = H5Aget_space(aid), ft = space < 0 ? -1 : H5Aget_type(aid);
    dv_status s = DV_OK;
    if (ft < 0) {
        s = unreadable(c, name);
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    bool one = sc == H5S_SCALAR ||
               (sc == H5S_SIMPLE && H5Sget_simple_extent_ndims(space) == 1 &&
                H5Sget_simple_extent_npoints(space) == 1);
    H5T_class_t cl = H5Tget_class(ft);
    if (!one) {
        s = bad(c, "attribute %s is not a single value", attr_name(name, nb));
    } else if (cl == H5T_STRING) {
        s = read_str(c, aid, ft, name, v);
    } else if (cl == H5T_INTEGER) {
        s = read_int(c, aid, ft, name, v);
    } else if (cl == H5T_FLOAT) {
        v->kind = DV_ATTR_REAL;
        if (H5Aread(aid, H5T_NATIVE_DOUBLE, &v->r) < 0)
            s = unreadable(c, name);
    } else {
        s = bad(c, "attribute %s is of class %s (string, integer or float "
                "expected)", attr_name(name, nb), class_name(cl));
    }
done:
    if (s) free(v->str), v->str = NULL;
    if (space >= 0) H5Sclose(space);
    if (ft >= 0) H5Tclose(ft);
    return s;
}

/* Attribute `name` of object obj into v; *found false (and DV_OK) when the
 * object has no such attribute. */
static dv_status get_attr(const struct ctx *c, hid_t obj, const char *name,
                          struct value *v, bool *found)
{
    char why[160];
    memset(v, 0, sizeof *v);
    htri_t has = H5Aexists(obj, name);
    *found = has > 0;
    if (has < 0)
        return bad(c, "cannot read attribute '%s' (%s)", name, dv_h5_reason(why, sizeof why));
    if (!has) return DV_OK;
    hid_t aid = H5Aopen(obj, name, H5P_DEFAULT);
    if (aid < 0)
        return bad(c, "cannot read attribute '%s' (%s)", name, dv_h5_reason(why, sizeof why));
    dv_status s = read_value(c, aid, name, v);
    H5Aclose(aid);
    return s;
}

/* Required integer attribute of a pass or tensor; `what` names its owner
 * in messages ("" for the pass itself, "tensor X " for a tensor). */
static dv_status get_int(const struct ctx *c, hid_t obj, const char *what,
                         const char *name, int64_t *out)
{
    struct value v;
    bool found = false;
    dv_status s = get_attr(c, obj, name, &v, &found);
    if (s) return s;
    if (!found) return bad(c, "%smissing attribute %s", what, name);
    free(v.str);
    if (v.kind != DV_ATTR_INT)
        return bad(c, "%sattribute %s is %s, expected an integer", what, name,
                   kind_name(v.kind));
    *out = v.i;
    return DV_OK;
}

/* ---- root attributes and the model description --------------------------- */

struct attr_walk {
    const struct ctx *c;
    struct dv_reader *r;
    int cap;
    dv_status s;
};

static struct dv_reader_attr *find_attr(struct dv_reader *r, const char *key)
{
    for (int i = 0; i < r->n_attrs; i++)
        if (!strcmp(r->attrs[i].key, key)) return &r->attrs[i];
    return NULL;
}

static herr_t root_attr_cb(hid_t loc, const char *name, const H5A_info_t *info,
                           void *data)
{
    (void)info;
    struct attr_walk *w = data;
    struct dv_reader *r = w->r;
    char nb[264];
    if (!dv_schema_key_ok(name)) {
        w->s = bad(w->c, "root attribute name %s is not 1..63 bytes of "
                   "[A-Za-z0-9_.-]", shown(name, nb));
        return -1;
    }
    /* HDF5 does not check that names are unique when it reads: a corrupt
     * name can repeat another, and opening by name would then read the
     * first twice and the renamed one never (found by tests/fuzz/fuzz_dump,
     * regress/dump/root-attr-twice.h5) */
    if (find_attr(r, name)) {
        w->s = bad(w->c, "root attribute %s appears twice", shown(name, nb));
        return -1;
    }
    if (r->n_attrs == w->cap) {
        int cap = w->cap ? 2 * w->cap : 32;
        void *p = realloc(r->attrs, (size_t)cap * sizeof *r->attrs);
        if (!p) {
            w->s = dv_fail(DV_E_NOMEM, "out of memory");
            return -1;
        }
        r->attrs = p;
        w->cap = cap;
    }
    hid_t aid = H5Aopen(loc, name, H5P_DEFAULT);
    if (aid < 0) {
        w->s = unreadable(w->c, name);
        return -1;
    }
    struct value v;
    w->s = read_value(w->c, aid, name, &v);
    H5Aclose(aid);
    if (w->s) return -1;
    struct dv_reader_attr *a = &r->attrs[r->n_attrs++];
    memset(a, 0, sizeof *a);
    snprintf(a->key, sizeof a->key, "%s", name);
    a->kind = v.kind;
    a->str = v.str;
    a->i = v.i;
    a->r = v.r;
    return 0;
}

/* "schema" and "schema_version" first: a file that is some other HDF5
 * file, or a newer dump, is told so before anything else is judged. */
static dv_status check_schema(const struct ctx *c, hid_t file)
{
    char sb[264];
    struct value v;
    bool found = false;
    dv_status s = get_attr(c, file, "schema", &v, &found);
    if (s) return s;
    if (!found) return bad(c, "not a diverge dump (no schema attribute)");
    if (v.kind != DV_ATTR_STR)
        return bad(c, "not a diverge dump (schema attribute is not a string)");
    if (strcmp(v.str, DV_SCHEMA_NAME)) {
        s = bad(c, "not a diverge dump (schema attribute is %s)", shown(v.str, sb));
        free(v.str);
        return s;
    }
    free(v.str);
    if ((s = get_attr(c, file, "schema_version", &v, &found))) return s;
    free(v.str);
    if (!found) return bad(c, "missing attribute schema_version");
    if (v.kind != DV_ATTR_INT)
        return bad(c, "attribute schema_version is %s, expected an integer",
                   kind_name(v.kind));
    if (v.i > DV_DUMP_SCHEMA_VERSION)
        return bad(c, "schema version %lld is newer than this diverge reads (%d)",
                   (long long)v.i, DV_DUMP_SCHEMA_VERSION);
    if (v.i < 1) return bad(c, "schema version %lld is not valid", (long long)v.i);
    return DV_OK;
}

/* Every schema attribute of the right kind, then r->cfg from them. */
static dv_status read_config(const struct ctx *c, struct dv_reader *r)
{
    struct dv_config *cfg = &r->cfg;
    int n;
    const struct dv_attr_spec *sp = dv_schema_attrs(&n);
    for (int k = 0; k < n; k++) {
        struct dv_reader_attr *a = find_attr(r, sp[k].key);
        if (!a) {
            if (sp[k].required) return bad(c, "missing attribute %s", sp[k].key);
            continue;
        }
        if (a->kind == DV_ATTR_INT && sp[k].kind == DV_ATTR_REAL) {
            a->kind = DV_ATTR_REAL; /* an integer written for a real: 10000 */
            a->r = (double)a->i;
        }
        if (a->kind != sp[k].kind)
            return bad(c, "attribute %s is %s, expected %s", sp[k].key,
                       kind_name(a->kind), kind_name(sp[k].kind));
        if (a->kind == DV_ATTR_INT) {
            dv_status s = dv_schema_set_hparam(cfg, sp[k].key, a->i, DV_E_INPUT);
            if (s) return prefixed(c, s);
        }
    }
    for (int i = 0; i < r->n_attrs; i++) {
        const struct dv_reader_attr *a = &r->attrs[i];
        dv_status s = a->kind == DV_ATTR_STR ? dv_schema_check_str(a->key, a->str, DV_E_INPUT)
                    : a->kind == DV_ATTR_REAL ? dv_schema_check_real(a->key, a->r, DV_E_INPUT)
                    : DV_OK;
        if (s) return prefixed(c, s);
    }
    const char *arch = find_attr(r, "arch")->str;
    memcpy(cfg->arch, arch, strlen(arch) + 1); /* length checked above */
    dv_status s = dv_schema_finish_config(cfg, DV_E_INPUT);
    if (s) return prefixed(c, s);
    const struct dv_reader_attr *a;
    cfg->rope_mode = DV_ROPE_NORM;
    if ((a = find_attr(r, "rope_type")) && !strcmp(a->str, "neox")) cfg->rope_mode = DV_ROPE_NEOX;
    /* the defaults dv_config_read() uses for a GGUF without these keys */
    cfg->rope_base = (a = find_attr(r, "rope_freq_base")) ? a->r : 10000.0;
    cfg->rms_eps = (a = find_attr(r, "rms_eps")) ? a->r : 1e-5;
    return DV_OK;
}

static dv_status read_root(const struct ctx *c, struct dv_reader *r)
{
    char why[160];
    dv_status s = check_schema(c, (hid_t)r->file);
    if (s) return s;
    struct attr_walk w = {.c = c, .r = r};
    hsize_t idx = 0;
    herr_t e = H5Aiterate2((hid_t)r->file, H5_INDEX_NAME, H5_ITER_NATIVE, &idx,
                           root_attr_cb, &w);
    if (w.s) return w.s;
    if (e < 0)
        return bad(c, "cannot list the root attributes (%s)", dv_h5_reason(why, sizeof why));
    return read_config(c, r);
}

/* ---- groups and their members ------------------------------------------ */

/* Name of member i of group g into buf (cap bytes, NUL-terminated, cut if
 * longer); *len gets its full length. Fails for links other than hard
 * links. */
static dv_status member(const struct ctx *c, hid_t g, H5_index_t ix, const char *gname,
                        hsize_t i, char *buf, size_t cap, size_t *len)
{
    char why[160], nb[264];
    ssize_t n = H5Lget_name_by_idx(g, ".", ix, H5_ITER_INC, i, buf, cap, H5P_DEFAULT);
    if (n < 0) {
        return bad(c, "cannot list %s (%s)", gname, dv_h5_reason(why, sizeof why));
    }
    *len = (size_t)n;
    H5L_info_t li;
    if (H5Lget_info_by_idx(g, ".", ix, H5_ITER_INC, i, &li, H5P_DEFAULT) < 0)
        return bad(c, "cannot list %s (%s)", gname, dv_h5_reason(why, sizeof why));
    if (li.type != H5L_TYPE_HARD)
        return bad(c, "member %s of %s is a soft or external link", shown(buf, nb), gname);
    return DV_OK;
}

/* Open member i of g (a hard link) and check it is an object of `type`. */
static hid_t open_member(const struct ctx *c, hid_t g, H5_index_t ix, hsize_t i,
                         H5I_type_t type, const char *what, const char *name,
                         dv_status *s)
{
    char why[160], nb[264];
    hid_t o = H5Oopen_by_idx(g, ".", ix, H5_ITER_INC, i, H5P_DEFAULT);
    if (o < 0) {
        *s = bad(c, "cannot open %s (%s)", shown(name, nb), dv_h5_reason(why, sizeof why));
        return -1;
    }
    if (H5Iget_type(o) != type) {
        *s = bad(c, "member %s is not %s", shown(name, nb), what);
        H5Oclose(o);
        return -1;
    }
    return o;
}

/* The index to list g's members by: creation order where the group keeps
 * one (the writer's groups do), else names. Listing a new-style group by
 * name makes HDF5 build and sort its whole link table for every single
 * member: quadratic, 5 s for 194 passes of 110 tensors. */
static H5_index_t index_of(hid_t g)
{
    unsigned flags = 0;
    hid_t p = H5Gget_create_plist(g);
    if (p >= 0) {
        if (H5Pget_link_creation_order(p, &flags) < 0) flags = 0;
        H5Pclose(p);
    }
    return flags & H5P_CRT_ORDER_INDEXED ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
}

/* Number of members of group g. */
static dv_status count_members(const struct ctx *c, hid_t g, const char *gname,
                               hsize_t *n)
{
    char why[160];
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0)
        return bad(c, "cannot list %s (%s)", gname, dv_h5_reason(why, sizeof why));
    if (gi.nlinks > (1u << 24))
        return bad(c, "%s has %llu members (at most 2^24)", gname,
                   (unsigned long long)gi.nlinks);
    *n = gi.nlinks;
    return DV_OK;
}

/* ---- passes ------------------------------------------------------------ */

/* /passes/NNNN/tokens: integers, [n_tokens], each in [0, n_vocab). */
static dv_status read_tokens(const struct ctx *c, const struct dv_config *cfg,
                             hid_t d, struct dv_reader_pass *p)
{
    char why[160];
    hid_t sp = H5Dget_space(d), ft = sp < 0 ? -1 : H5Dget_type(d);
    dv_status s = DV_OK;
    hsize_t dims[H5S_MAX_RANK];
    int nd = ft < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        s = bad(c, "cannot read tokens (%s)", dv_h5_reason(why, sizeof why));
    } else if (H5Tget_class(ft) != H5T_INTEGER) {
        s = bad(c, "tokens are of class %s (integer expected)", class_name(H5Tget_class(ft)));
    } else if (nd != 1) {
        s = bad(c, "tokens has %d dims (1 expected)", nd);
    } else if (dims[0] != (hsize_t)p->n_tokens) {
        s = bad(c, "tokens has %llu values, n_tokens is %lld",
                (unsigned long long)dims[0], (long long)p->n_tokens);
    } else if (!(p->tokens = malloc((size_t)p->n_tokens * sizeof *p->tokens))) {
        s = dv_fail(DV_E_NOMEM, "out of memory");
    } else if (H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, p->tokens) < 0) {
        s = bad(c, "cannot read tokens (%s)", dv_h5_reason(why, sizeof why));
    } else {
        /* values beyond int32 were clipped by the conversion: still out */
        for (int64_t i = 0; i < p->n_tokens; i++)
            if (p->tokens[i] < 0 || p->tokens[i] >= cfg->n_vocab) {
                s = bad(c, "token %lld is %d, outside the vocabulary (0..%lld)",
                        (long long)i, p->tokens[i], (long long)cfg->n_vocab - 1);
                break;
            }
    }
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    return s;
}

/* Type and shape of tensor dataset d into t. */
static dv_status tensor_layout(const struct ctx *c, hid_t d, struct dv_reader_tensor *t,
                               int *n_dims, int64_t shape[DV_SCHEMA_MAX_DIMS])
{
    char why[160];
    hid_t sp = H5Dget_space(d), ft = sp < 0 ? -1 : H5Dget_type(d);
    dv_status s = DV_OK;
    hsize_t dims[H5S_MAX_RANK];
    int nd = ft < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        s = bad(c, "cannot read tensor %s (%s)", t->name, dv_h5_reason(why, sizeof why));
        goto done;
    }
    H5T_class_t cl = H5Tget_class(ft);
    size_t size = H5Tget_size(ft);
    if (cl != H5T_FLOAT || (size != 2 && size != 4 && size != 8)) {
        s = bad(c, "tensor %s is of class %s, %zu bytes (float16, float32 or "
                "float64 expected)", t->name, class_name(cl), size);
    } else {
        t->stored_bytes = (int)size;
        *n_dims = nd;
        for (int i = 0; i < nd && i < DV_SCHEMA_MAX_DIMS; i++)
            shape[i] = dims[i] > (hsize_t)INT64_MAX ? INT64_MAX : (int64_t)dims[i];
    }
done:
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    return s;
}

/* Map the file read-only, for dv_reader_spans; a file that cannot be
 * mapped is read through HDF5 alone. Addresses count from the end of the
 * user block. */
static void map_file(struct dv_reader *r)
{
    hsize_t ub = 0;
    hid_t fcpl = H5Fget_create_plist((hid_t)r->file);
    bool ok = fcpl >= 0 && H5Pget_userblock(fcpl, &ub) >= 0;
    if (fcpl >= 0) H5Pclose(fcpl);
    int fd = ok ? open(r->path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    void *map = MAP_FAILED;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size > ub)
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (fd >= 0) close(fd);
    if (map == MAP_FAILED) return;
    r->map = map;
    r->map_size = (size_t)st.st_size;
    r->map_base = (int64_t)ub;
}

/* Is dataset d stored as plain little-endian IEEE values of t's size,
 * without filters, in chunks (if chunked) that span every dimension but
 * the first, so that each chunk is one run of flat indices? *rows gets
 * the chunk's first dimension (the whole first dimension if contiguous). */
static bool plain_storage(hid_t d, const struct dv_reader_tensor *t, int64_t *rows)
{
    hid_t ft = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
    hid_t le = t->stored_bytes == 4 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
    hid_t native = t->stored_bytes == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    bool ok = ft >= 0 && dcpl >= 0 && t->stored_bytes != 2 && H5Tequal(ft, le) > 0 &&
              H5Tequal(native, le) > 0 && H5Pget_nfilters(dcpl) == 0;
    H5D_layout_t layout = ok ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    *rows = t->shape[0];
    if (layout == H5D_CHUNKED) {
        hsize_t chunk[H5S_MAX_RANK];
        ok = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) == t->n_dims && chunk[0] >= 1;
        for (int i = 1; ok && i < t->n_dims; i++) ok = chunk[i] == (hsize_t)t->shape[i];
        if (ok) *rows = (int64_t)chunk[0];
    } else if (layout != H5D_CONTIGUOUS) {
        ok = false;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ft >= 0) H5Tclose(ft);
    return ok;
}

/* Add the span of `n` elements from flat index `first` at file address
 * addr (of `bytes` stored bytes) when it lies inside the mapping and is
 * aligned for its type; false otherwise. */
static bool add_span(const struct dv_reader *r, const struct dv_reader_tensor *t,
                     struct dv_reader_span *sp, int64_t first, int64_t n, haddr_t addr,
                     uint64_t bytes)
{
    uint64_t size = (uint64_t)r->map_size - (uint64_t)r->map_base;
    uint64_t need = (uint64_t)n * (uint64_t)t->stored_bytes;
    if (addr == HADDR_UNDEF || addr > size || bytes > size - addr || need > bytes) return false;
    uint64_t off = addr + (uint64_t)r->map_base;
    if (off % (uint64_t)t->stored_bytes) return false;
    *sp = (struct dv_reader_span){first, n, (const char *)r->map + off};
    return true;
}

static int by_first(const void *a, const void *b)
{
    const struct dv_reader_span *x = a, *y = b;
    return (x->first > y->first) - (x->first < y->first);
}

/* The spans of dataset d: one per chunk (or one when contiguous); true
 * when they cover the tensor exactly. */
static bool dataset_spans(const struct dv_reader *r, hid_t d, const struct dv_reader_tensor *t,
                          struct dv_reader_span *out, int max, int *n_out)
{
    int64_t rows, row = t->n_elems / t->shape[0];
    if (!plain_storage(d, t, &rows)) return false;
    int64_t n_chunks = (t->shape[0] + rows - 1) / rows;
    if (n_chunks > max) return false;
    uint64_t chunk_bytes = (uint64_t)rows * (uint64_t)row * (uint64_t)t->stored_bytes;
    if (rows == t->shape[0] && H5Dget_offset(d) != HADDR_UNDEF) {
        *n_out = 1;
        return add_span(r, t, out, 0, t->n_elems, H5Dget_offset(d), chunk_bytes);
    }
    hid_t fs = H5Dget_space(d);
    hsize_t n = 0;
    bool ok = fs >= 0 && H5Dget_num_chunks(d, fs, &n) >= 0 && n == (hsize_t)n_chunks;
    for (hsize_t i = 0; ok && i < n; i++) {
        hsize_t coord[H5S_MAX_RANK] = {0}, size = 0;
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        ok = H5Dget_chunk_info(d, fs, i, coord, &mask, &addr, &size) >= 0 && mask == 0 &&
             size == chunk_bytes && coord[0] % (hsize_t)rows == 0 &&
             coord[0] < (hsize_t)t->shape[0];
        /* H5Dread finds a chunk by its coordinates, not by this walk of the
         * index, and a corrupt index (a key's last, element-size offset
         * changed) can list a chunk the lookup does not find: HDF5 then
         * reads fill values where the mapping has the stored bytes. Only
         * chunks the lookup finds, with the same size, are mapped (found
         * by tests/fuzz/fuzz_dump, regress/dump/chunk-key-offset.h5). */
        hsize_t looked_up = 0;
        ok = ok && H5Dget_chunk_storage_size(d, coord, &looked_up) >= 0 && looked_up == size;
        int64_t first = ok ? (int64_t)coord[0] * row : 0;
        int64_t cnt = ok ? ((int64_t)coord[0] + rows > t->shape[0] ? t->shape[0] - (int64_t)coord[0]
                                                                    : rows) * row : 0;
        ok = ok && add_span(r, t, &out[i], first, cnt, addr, size);
    }
    if (fs >= 0) H5Sclose(fs);
    if (!ok) return false;
    qsort(out, (size_t)n, sizeof *out, by_first);
    for (hsize_t i = 0; i < n; i++) /* exactly one chunk per run of rows */
        if (out[i].first != (int64_t)i * rows * row) return false;
    *n_out = (int)n;
    return true;
}

int dv_reader_spans(const struct dv_reader *r, int p, int t, struct dv_reader_span *out,
                    int max)
{
    if (!r->map || p < 0 || p >= r->n_passes || t < 0 || t >= r->passes[p].n_tensors)
        return 0;
    const struct dv_reader_pass *ps = &r->passes[p];
    const struct dv_reader_tensor *ts = &ps->tensors[t];
    char pass[24], dpath[128];
    dv_schema_pass_name(ps->index, pass);
    snprintf(dpath, sizeof dpath, "passes/%s/%s", pass, ts->name);
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    hid_t d = H5Dopen2((hid_t)r->file, dpath, H5P_DEFAULT);
    int n = 0;
    bool ok = d >= 0 && dataset_spans(r, d, ts, out, max, &n);
    if (d >= 0) H5Dclose(d);
    dv_h5_loud(&q);
    return ok ? n : 0;
}

/* One tensor dataset d of pass p (its name already checked). */
static dv_status read_tensor(const struct ctx *c, const struct dv_config *cfg,
                             hid_t d, const struct dv_reader_pass *p,
                             struct dv_reader_tensor *t)
{
    char pre[96], sb[264];
    int n_dims = 0;
    int64_t shape[DV_SCHEMA_MAX_DIMS] = {0}, layer, order;
    dv_status s = tensor_layout(c, d, t, &n_dims, shape);
    if (s) return s;
    snprintf(pre, sizeof pre, "tensor %s: ", t->name);
    if ((s = get_int(c, d, pre, "layer", &layer))) return s;
    if ((s = get_int(c, d, pre, "order", &order))) return s;
    if (order < 0) return bad(c, "tensor %s has order %lld (>= 0 expected)", t->name,
                              (long long)order);
    struct value op;
    bool found = false;
    if ((s = get_attr(c, d, "op", &op, &found))) return s;
    if (!found) return bad(c, "%smissing attribute op", pre);
    if (op.kind != DV_ATTR_STR)
        return bad(c, "%sattribute op is %s, expected a string", pre, kind_name(op.kind));
    if (!dv_schema_op_ok(op.str)) {
        s = bad(c, "tensor %s has op %s (1..31 printable ASCII bytes expected)",
                t->name, shown(op.str, sb));
        free(op.str);
        return s;
    }
    memcpy(t->op, op.str, strlen(op.str) + 1);
    free(op.str);
    s = dv_schema_check_tensor(cfg, p->pos0, p->n_tokens, t->name, layer, t->op,
                               n_dims, shape, DV_E_INPUT);
    if (s) return prefixed(c, s);
    t->layer = (int)layer; /* checked against n_layer above */
    t->order = order;
    t->n_dims = n_dims;
    t->n_elems = 1;
    for (int i = 0; i < n_dims; i++) t->n_elems *= t->shape[i] = shape[i];
    t->known = dv_schema_lookup(t->name, cfg->n_layer, &t->id);
    return DV_OK;
}

static int by_order(const void *a, const void *b)
{
    const struct dv_reader_tensor *x = a, *y = b;
    if (x->order != y->order) return x->order > y->order ? 1 : -1;
    return strcmp(x->name, y->name); /* equal orders are an error: name them stably */
}

/* Every member of pass group g: the tokens and the tensors. */
static dv_status read_members(const struct ctx *c, const struct dv_config *cfg,
                              hid_t g, struct dv_reader_pass *p)
{
    char name[MAX_LINK], nb[264];
    hsize_t n = 0;
    dv_status s = count_members(c, g, "the pass group", &n);
    if (s) return s;
    if (n && !(p->tensors = calloc((size_t)n, sizeof *p->tensors)))
        return dv_fail(DV_E_NOMEM, "out of memory");
    bool have_tokens = false;
    const H5_index_t ix = index_of(g);
    for (hsize_t i = 0; i < n && !s; i++) {
        size_t len;
        if ((s = member(c, g, ix, "the pass group", i, name, sizeof name, &len))) break;
        bool tokens = !strcmp(name, "tokens");
        if (!tokens && (len >= DV_SCHEMA_MAX_NAME || !dv_schema_name_ok(name))) {
            s = bad(c, "member %s is not a tensor name (1..63 printable ASCII "
                    "bytes)", shown(name, nb));
            break;
        }
        hid_t d = open_member(c, g, ix, i, H5I_DATASET, "a dataset", name, &s);
        if (d < 0) break;
        if (tokens) {
            have_tokens = true;
            s = read_tokens(c, cfg, d, p);
        } else {
            struct dv_reader_tensor *t = &p->tensors[p->n_tensors++];
            memcpy(t->name, name, len + 1);
            s = read_tensor(c, cfg, d, p, t);
        }
        H5Oclose(d);
    }
    if (s) return s;
    if (!have_tokens) return bad(c, "no tokens dataset");
    if (p->n_tensors) qsort(p->tensors, (size_t)p->n_tensors, sizeof *p->tensors, by_order);
    for (int i = 1; i < p->n_tensors; i++)
        if (p->tensors[i].order == p->tensors[i - 1].order)
            return bad(c, "tensors %s and %s have the same order %lld",
                       p->tensors[i - 1].name, p->tensors[i].name,
                       (long long)p->tensors[i].order);
    return DV_OK;
}

/* Pass group g (index from its name): attributes, tokens, tensors. */
static dv_status read_pass(const struct ctx *c, const struct dv_config *cfg,
                           hid_t g, struct dv_reader_pass *p)
{
    dv_status s = get_int(c, g, "", "pos0", &p->pos0);
    if (!s) s = get_int(c, g, "", "n_tokens", &p->n_tokens);
    if (s) return s;
    const int64_t lim = (int64_t)1 << 31;
    if (p->pos0 < 0 || p->pos0 >= lim)
        return bad(c, "pos0 is %lld (0 .. 2^31 - 1 expected)", (long long)p->pos0);
    if (p->n_tokens < 1 || p->n_tokens >= lim - p->pos0)
        return bad(c, "n_tokens is %lld (>= 1 and pos0 + n_tokens < 2^31 expected)",
                   (long long)p->n_tokens);
    return read_members(c, cfg, g, p);
}

static int by_index(const void *a, const void *b)
{
    const struct dv_reader_pass *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

static dv_status read_passes(struct ctx *c, struct dv_reader *r)
{
    char why[160], name[MAX_LINK], nb[264];
    hid_t file = (hid_t)r->file;
    htri_t has = H5Lexists(file, "passes", H5P_DEFAULT);
    if (has < 0) return bad(c, "cannot look for /passes (%s)", dv_h5_reason(why, sizeof why));
    if (!has) return bad(c, "no /passes group");
    H5L_info_t li;
    if (H5Lget_info(file, "passes", &li, H5P_DEFAULT) < 0)
        return bad(c, "cannot look for /passes (%s)", dv_h5_reason(why, sizeof why));
    if (li.type != H5L_TYPE_HARD) return bad(c, "/passes is a soft or external link");
    hid_t g = H5Oopen(file, "passes", H5P_DEFAULT);
    if (g < 0) return bad(c, "cannot open /passes (%s)", dv_h5_reason(why, sizeof why));
    dv_status s = DV_OK;
    hsize_t n = 0;
    if (H5Iget_type(g) != H5I_GROUP) s = bad(c, "/passes is not a group");
    if (!s) s = count_members(c, g, "/passes", &n);
    if (!s && n && !(r->passes = calloc((size_t)n, sizeof *r->passes)))
        s = dv_fail(DV_E_NOMEM, "out of memory");
    const H5_index_t ix = s ? H5_INDEX_NAME : index_of(g);
    for (hsize_t i = 0; i < n && !s; i++) {
        size_t len;
        if ((s = member(c, g, ix, "/passes", i, name, sizeof name, &len))) break;
        int64_t index = len < sizeof c->pass ? dv_schema_pass_index(name) : -1;
        if (index < 0) {
            s = bad(c, "member %s of /passes is not named as a pass (0000, "
                    "0001, ...)", shown(name, nb));
            break;
        }
        hid_t pg = open_member(c, g, ix, i, H5I_GROUP, "a group", name, &s);
        if (pg < 0) break;
        struct dv_reader_pass *p = &r->passes[r->n_passes++];
        p->index = index;
        memcpy(c->pass, name, len + 1);
        s = read_pass(c, &r->cfg, pg, p);
        c->pass[0] = '\0';
        H5Oclose(pg);
    }
    H5Oclose(g);
    if (s) return s;
    if (r->n_passes) qsort(r->passes, (size_t)r->n_passes, sizeof *r->passes, by_index);
    return DV_OK;
}

/* ---- opening ------------------------------------------------------------ */

/* Whether path is an HDF5 file at all (the signature at 0, 512, 1024, ...),
 * before HDF5 gets to say something less clear. */
static dv_status check_signature(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return dv_fail(DV_E_INPUT, "%s: %s", path, strerror(errno));
    unsigned char sig[8];
    bool found = false;
    int err = 0;
    for (long off = 0; !found; off = off ? 2 * off : 512) {
        if (fseek(f, off, SEEK_SET) != 0) break;
        size_t got = fread(sig, 1, sizeof sig, f);
        if (got < sizeof sig) {
            err = ferror(f) ? errno : 0;
            break;
        }
        found = !memcmp(sig, h5_signature, sizeof sig);
        if (off >= (1L << 40)) break;
    }
    fclose(f);
    if (err) return dv_fail(DV_E_INPUT, "%s: %s", path, strerror(err));
    if (!found) return dv_fail(DV_E_INPUT, "%s: not an HDF5 file", path);
    return DV_OK;
}

static dv_status open_file(const char *path, hid_t *out)
{
    char why[160];
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return dv_fail(DV_E_INPUT, "%s: cannot open as HDF5 (%s)", path,
                       dv_h5_reason(why, sizeof why));
#if H5_VERSION_GE(1, 10, 7)
    /* no lock: a reader must work on read-only media and shared mounts */
    H5Pset_file_locking(fapl, 0, 1);
#endif
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    dv_status s = DV_OK;
    if (f < 0) /* before H5Pclose, which clears the error stack */
        s = dv_fail(DV_E_INPUT, "%s: cannot open as HDF5 (%s)", path,
                    dv_h5_reason(why, sizeof why));
    H5Pclose(fapl);
    *out = f;
    return s;
}

dv_status dv_reader_open(const char *path, struct dv_reader **out)
{
    *out = NULL;
    dv_h5_init();
    dv_status s = check_signature(path);
    if (s) return s;
    struct dv_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    r->file = -1;
    struct ctx c = {.path = path};
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    hid_t f = -1;
    s = open_file(path, &f);
    if (!s) {
        r->file = f;
        s = read_root(&c, r);
    }
    if (!s) s = read_passes(&c, r);
    if (!s) map_file(r);
    dv_h5_loud(&q);
    if (s) {
        dv_reader_free(r);
        return s;
    }
    *out = r;
    return DV_OK;
}

/* Validate in a child process first: HDF5 1.10 can crash (not fail) on
 * some corrupt files, e.g. a damaged attribute table or global heap, and
 * no check of ours can come before its parsing. The child reports a
 * failure's message through a pipe; a child that dies is a corrupt file. */
/* Read every tensor of r once (into a scratch buffer), as the child's
 * check of the data. */
static dv_status read_all(const struct dv_reader *r)
{
    int64_t most = 0;
    for (int p = 0; p < r->n_passes; p++)
        for (int t = 0; t < r->passes[p].n_tensors; t++)
            most = r->passes[p].tensors[t].n_elems > most ? r->passes[p].tensors[t].n_elems : most;
    float *buf = most && (uint64_t)most <= SIZE_MAX / sizeof *buf ? malloc((size_t)most * sizeof *buf) : NULL;
    if (most && !buf) return dv_fail(DV_E_NOMEM, "%s: out of memory", r->path);
    dv_status s = DV_OK;
    for (int p = 0; !s && p < r->n_passes; p++)
        for (int t = 0; !s && t < r->passes[p].n_tensors; t++)
            s = dv_reader_read(r, p, t, DV_TYPE_F32, buf);
    free(buf);
    return s;
}

dv_status dv_reader_open_isolated(const char *path, bool with_data,
                                  struct dv_reader **out)
{
    *out = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) return dv_reader_open(path, out);
    /* The CPU time the check may take: 5 s plus 1 s per MiB of file. The
     * cost is per tensor (about 0.25 ms to validate and read one; a run
     * of 21340 small tensors in 54 MB took 5 s), and a tensor takes at
     * least ~500 bytes of file: twice that rate at most. */
    struct stat st_file;
    long long cpu_limit = 5 + (stat(path, &st_file) ? 0 : (long long)(st_file.st_size >> 20));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return dv_reader_open(path, out);
    }
    if (pid == 0) {
        close(fds[0]);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2); /* a crash report is not our message */
        /* HDF5 can also loop forever on a corrupt file: bound the CPU */
        struct rlimit cpu = {(rlim_t)cpu_limit, (rlim_t)cpu_limit + 1};
        setrlimit(RLIMIT_CPU, &cpu);
        struct dv_reader *r;
        dv_status s = dv_reader_open(path, &r);
        if (!s && with_data) s = read_all(r);
        if (s) {
            const char *m = dv_errmsg();
            for (size_t off = 0, n = strlen(m); off < n;) {
                ssize_t w = write(fds[1], m + off, n - off);
                if (w <= 0) break;
                off += (size_t)w;
            }
        }
        _exit(s ? 10 + (int)s : 0);
    }
    close(fds[1]);
    char msg[1024];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fds[0], msg + got, sizeof msg - 1 - got);
        if (n > 0 && (got += (size_t)n) < sizeof msg - 1) continue;
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    msg[got] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return dv_reader_open(path, out);
    if (WIFEXITED(st) && WEXITSTATUS(st) > 10 && WEXITSTATUS(st) < 10 + DV_STATUS_COUNT)
        return dv_fail((dv_status)(WEXITSTATUS(st) - 10), "%s", msg);
    if (WIFSIGNALED(st) && (WTERMSIG(st) == SIGXCPU || WTERMSIG(st) == SIGKILL))
        return dv_fail(DV_E_INPUT, "%s: the HDF5 library did not finish reading it "
                       "in %lld s of CPU time: the file is corrupt", path, cpu_limit);
    if (WIFSIGNALED(st))
        return dv_fail(DV_E_INPUT, "%s: the HDF5 library crashed reading it (signal "
                       "%d): the file is corrupt", path, WTERMSIG(st));
    return dv_fail(DV_E_INPUT, "%s: the HDF5 library failed reading it (exit status "
                   "%d): the file is corrupt", path, WEXITSTATUS(st));
}

void dv_reader_free(struct dv_reader *r)
{
    if (!r) return;
    if (r->map) munmap(r->map, r->map_size);
    if (r->file >= 0) {
        struct dv_h5_quiet q;
        dv_h5_quiet(&q);
        H5Fclose((hid_t)r->file);
        dv_h5_loud(&q);
    }
    for (int i = 0; i < r->n_attrs; i++) free(r->attrs[i].str);
    free(r->attrs);
    for (int i = 0; i < r->n_passes; i++) {
        free(r->passes[i].tokens);
        free(r->passes[i].tensors);
    }
    free(r->passes);
    free(r->path);
    free(r);
}

/* ---- lookups and reading ------------------------------------------------ */

const struct dv_reader_attr *dv_reader_attr(const struct dv_reader *r, const char *key)
{
    for (int i = 0; i < r->n_attrs; i++)
        if (!strcmp(r->attrs[i].key, key)) return &r->attrs[i];
    return NULL;
}

const char *dv_reader_str(const struct dv_reader *r, const char *key)
{
    const struct dv_reader_attr *a = dv_reader_attr(r, key);
    return a && a->kind == DV_ATTR_STR ? a->str : "";
}

int dv_reader_find_pass(const struct dv_reader *r, int64_t index)
{
    int lo = 0, hi = r->n_passes - 1; /* sorted by index */
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (r->passes[mid].index == index) return mid;
        if (r->passes[mid].index < index) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int dv_reader_find_tensor(const struct dv_reader *r, int p, const char *name)
{
    if (p < 0 || p >= r->n_passes) return -1;
    const struct dv_reader_pass *ps = &r->passes[p];
    for (int i = 0; i < ps->n_tensors; i++)
        if (!strcmp(ps->tensors[i].name, name)) return i;
    return -1;
}

dv_status dv_reader_read(const struct dv_reader *r, int p, int t, int type, void *out)
{
    if (p < 0 || p >= r->n_passes || t < 0 || t >= r->passes[p].n_tensors)
        return dv_fail(DV_E_USAGE, "%s: no tensor %d of pass position %d", r->path, t, p);
    return dv_reader_read_rows(r, p, t, type, 0, r->passes[p].tensors[t].shape[0], out);
}

/* Select rows [row0, row0 + n_rows) of the outermost dimension in the
 * file space sp and make the matching memory space; -1 on failure. */
static hid_t select_rows(hid_t sp, const struct dv_reader_tensor *ts, int64_t row0,
                         int64_t n_rows)
{
    hsize_t start[4] = {0}, count[4];
    for (int i = 0; i < ts->n_dims; i++) count[i] = (hsize_t)ts->shape[i];
    start[0] = (hsize_t)row0;
    count[0] = (hsize_t)n_rows;
    if (H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0) return -1;
    return H5Screate_simple(ts->n_dims, count, NULL);
}

dv_status dv_reader_read_rows(const struct dv_reader *r, int p, int t, int type,
                              int64_t row0, int64_t n_rows, void *out)
{
    if (p < 0 || p >= r->n_passes || t < 0 || t >= r->passes[p].n_tensors)
        return dv_fail(DV_E_USAGE, "%s: no tensor %d of pass position %d", r->path, t, p);
    if (type != DV_TYPE_F32 && type != DV_TYPE_F64)
        return dv_fail(DV_E_USAGE, "%s: tensors are read as f32 or f64, not %s",
                       r->path, dv_type_name(type));
    const struct dv_reader_pass *ps = &r->passes[p];
    const struct dv_reader_tensor *ts = &ps->tensors[t];
    if (row0 < 0 || n_rows < 1 || row0 > ts->shape[0] - n_rows)
        return dv_fail(DV_E_USAGE, "%s: rows %lld..+%lld outside %s", r->path,
                       (long long)row0, (long long)n_rows, ts->name);
    bool whole = row0 == 0 && n_rows == ts->shape[0];
    char pass[24], dpath[128], why[160];
    dv_schema_pass_name(ps->index, pass);
    snprintf(dpath, sizeof dpath, "passes/%s/%s", pass, ts->name);
    struct dv_h5_quiet q;
    dv_h5_quiet(&q);
    dv_status s = DV_OK;
    hid_t d = H5Dopen2((hid_t)r->file, dpath, H5P_DEFAULT);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hid_t msp = -1;
    if (sp < 0) {
        s = dv_fail(DV_E_INPUT, "%s: pass %s: cannot read %s (%s)", r->path, pass,
                    ts->name, dv_h5_reason(why, sizeof why));
    } else if (H5Sget_simple_extent_npoints(sp) != ts->n_elems) {
        s = dv_fail(DV_E_INPUT, "%s: pass %s: cannot read %s (its shape changed "
                    "since the file was opened)", r->path, pass, ts->name);
    } else if (!whole && (msp = select_rows(sp, ts, row0, n_rows)) < 0) {
        s = dv_fail(DV_E_INPUT, "%s: pass %s: cannot select rows of %s (%s)", r->path,
                    pass, ts->name, dv_h5_reason(why, sizeof why));
    } else if (H5Dread(d, type == DV_TYPE_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE,
                       whole ? H5S_ALL : msp, whole ? H5S_ALL : sp, H5P_DEFAULT,
                       out) < 0) {
        s = dv_fail(DV_E_INPUT, "%s: pass %s: cannot read %s (%s)", r->path, pass,
                    ts->name, dv_h5_reason(why, sizeof why));
    }
    if (msp >= 0) H5Sclose(msp);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    dv_h5_loud(&q);
    return s;
}
