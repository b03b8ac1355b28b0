/* schema.c - the diverge-dump v1 schema's attributes, names and checks. */
#include "schema.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "error.h"
#include "ops.h"

static const struct dv_attr_spec attrs[] = {
    /* key               kind         required reserved */
    {"schema",           DV_ATTR_STR,  true,  true},
    {"schema_version",   DV_ATTR_INT,  true,  true},
    {"tool_version",     DV_ATTR_STR,  true,  true},
    {"created_utc",      DV_ATTR_STR,  true,  true},
    {"backend",          DV_ATTR_STR,  true,  true},
    {"device",           DV_ATTR_STR,  false, false},
    {"driver",           DV_ATTR_STR,  false, false},
    {"model_path",       DV_ATTR_STR,  false, false},
    {"model_sha256",     DV_ATTR_STR,  false, false},
    {"inject",           DV_ATTR_STR,  false, false},
    {"act_quant",        DV_ATTR_STR,  false, false},
    {"act_quant_types",  DV_ATTR_STR,  false, false},
    {"kv_type",          DV_ATTR_STR,  false, false},
    {"arch",             DV_ATTR_STR,  true,  false},
    {"n_vocab",          DV_ATTR_INT,  true,  false},
    {"n_embd",           DV_ATTR_INT,  true,  false},
    {"n_layer",          DV_ATTR_INT,  true,  false},
    {"n_head",           DV_ATTR_INT,  true,  false},
    {"n_head_kv",        DV_ATTR_INT,  true,  false},
    {"n_ff",             DV_ATTR_INT,  true,  false},
    {"head_dim",         DV_ATTR_INT,  false, false},
    {"n_rot",            DV_ATTR_INT,  false, false},
    {"n_ctx_train",      DV_ATTR_INT,  false, false},
    {"rope_freq_base",   DV_ATTR_REAL, false, false},
    {"rope_type",        DV_ATTR_STR,  false, false},
    {"rms_eps",          DV_ATTR_REAL, false, false},
};

const struct dv_attr_spec *dv_schema_attrs(int *n)
{
    *n = (int)(sizeof attrs / sizeof attrs[0]);
    return attrs;
}

const struct dv_attr_spec *dv_schema_attr(const char *key)
{
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        if (strcmp(attrs[i].key, key) == 0) return &attrs[i];
    return NULL;
}

bool dv_schema_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 63) return false;
    return strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789_.-") == n;
}

/* Largest sizes a dump may declare: far above any real model, low enough
 * that products of two of them and a token count stay far below 2^63. */
#define MAX_DIM ((int64_t)1 << 24)
#define MAX_LAYERS 4096

dv_status dv_schema_set_hparam(struct dv_config *cfg, const char *key,
                               int64_t v, dv_status fail)
{
    static const struct {
        const char *key;
        size_t off;
        int64_t hi;
    } hp[] = {
        {"n_vocab", offsetof(struct dv_config, n_vocab), MAX_DIM},
        {"n_embd", offsetof(struct dv_config, d_model), MAX_DIM},
        {"n_layer", offsetof(struct dv_config, n_layer), MAX_LAYERS},
        {"n_head", offsetof(struct dv_config, n_head), MAX_DIM},
        {"n_head_kv", offsetof(struct dv_config, n_head_kv), MAX_DIM},
        {"head_dim", offsetof(struct dv_config, head_dim), MAX_DIM},
        {"n_ff", offsetof(struct dv_config, n_ff), MAX_DIM},
        {"n_rot", offsetof(struct dv_config, n_rot), MAX_DIM},
        {"n_ctx_train", offsetof(struct dv_config, n_ctx_train), (int64_t)1 << 31},
    };
    for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++) {
        if (strcmp(key, hp[i].key)) continue;
        if (v < 1 || v > hp[i].hi)
            return dv_fail(fail, "attribute %s = %lld is out of range (1..%lld)",
                           key, (long long)v, (long long)hp[i].hi);
        memcpy((char *)cfg + hp[i].off, &v, sizeof v);
        return DV_OK;
    }
    return DV_OK;
}

bool dv_schema_utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 : (*s & 0xf0) == 0xe0 ? 2
              : (*s & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || (n == 1 && *s < 0xc2)) return false;
        for (s++; n > 0; n--, s++)
            if ((*s & 0xc0) != 0x80) return false;
    }
    return true;
}

dv_status dv_schema_check_str(const char *key, const char *v, dv_status fail)
{
    size_t n = strlen(v);
    if (!dv_schema_utf8_ok(v))
        return dv_fail(fail, "attribute %s is not a UTF-8 string", key);
    if (n > DV_SCHEMA_MAX_STR)
        return dv_fail(fail, "attribute %s is longer than %d bytes", key, DV_SCHEMA_MAX_STR);
    if (!strcmp(key, "arch") && (n == 0 || n >= sizeof ((struct dv_config *)0)->arch))
        return dv_fail(fail, "attribute arch is empty or longer than %zu bytes",
                       sizeof ((struct dv_config *)0)->arch - 1);
    if (!strcmp(key, "rope_type") && strcmp(v, "norm") && strcmp(v, "neox"))
        return dv_fail(fail, "attribute rope_type is '%.40s', expected 'norm' or "
                       "'neox'", v);
    return DV_OK;
}

dv_status dv_schema_check_real(const char *key, double v, dv_status fail)
{
    if (!isfinite(v)) return dv_fail(fail, "attribute %s = %g is not finite", key, v);
    if (!strcmp(key, "rope_freq_base") && !(v > 0))
        return dv_fail(fail, "attribute rope_freq_base = %g is not a positive number", v);
    if (!strcmp(key, "rms_eps") && !(v >= 0))
        return dv_fail(fail, "attribute rms_eps = %g is not a finite number >= 0", v);
    return DV_OK;
}

dv_status dv_schema_finish_config(struct dv_config *cfg, dv_status fail)
{
    if (!cfg->head_dim) {
        if (cfg->d_model % cfg->n_head)
            return dv_fail(fail, "n_embd %lld is not a multiple of n_head %lld (and "
                           "there is no head_dim attribute)", (long long)cfg->d_model,
                           (long long)cfg->n_head);
        cfg->head_dim = cfg->d_model / cfg->n_head;
    }
    if (cfg->n_head % cfg->n_head_kv)
        return dv_fail(fail, "n_head %lld is not a multiple of n_head_kv %lld",
                       (long long)cfg->n_head, (long long)cfg->n_head_kv);
    if (!cfg->n_rot) cfg->n_rot = cfg->head_dim;
    if (cfg->n_rot > cfg->head_dim)
        return dv_fail(fail, "n_rot %lld is larger than head_dim %lld",
                       (long long)cfg->n_rot, (long long)cfg->head_dim);
    return DV_OK;
}

bool dv_schema_op_ok(const char *op)
{
    size_t n = strlen(op);
    if (n == 0 || n >= DV_SCHEMA_MAX_OP) return false;
    for (size_t i = 0; i < n; i++)
        if (op[i] < 0x21 || op[i] > 0x7e) return false;
    return true;
}

bool dv_schema_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= DV_SCHEMA_MAX_NAME) return false;
    if (!strcmp(name, ".") || !strcmp(name, "tokens")) return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x21 || name[i] > 0x7e || name[i] == '/') return false;
    return true;
}

bool dv_schema_lookup(const char *name, int64_t n_layer,
                      struct dv_schema_tensor *out)
{
    for (int g = 0; g < DV_GT_COUNT; g++)
        if (!strcmp(name, dv_global_tensor_name(g))) {
            *out = (struct dv_schema_tensor){-1, g, dv_global_tensor_op(g),
                                             dv_global_tensor_shape(g)};
            return true;
        }
    if (strncmp(name, "blk.", 4)) return false;
    const char *p = name + 4;
    size_t nd = strspn(p, "0123456789");
    if (nd == 0 || nd > 4 || (nd > 1 && p[0] == '0') || p[nd] != '.') return false;
    int layer = atoi(p);
    if (layer >= n_layer) return false;
    for (int lt = 0; lt < DV_LT_COUNT; lt++)
        if (!strcmp(p + nd + 1, dv_layer_tensor_name(lt))) {
            *out = (struct dv_schema_tensor){layer, lt, dv_layer_tensor_op(lt, layer),
                                             dv_layer_tensor_shape(lt)};
            return true;
        }
    return false;
}

static void shape_str(int n, const int64_t *s, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

dv_status dv_schema_check_tensor(const struct dv_config *cfg, int64_t pos0,
                                 int64_t n_tokens, const char *name,
                                 int64_t layer, const char *op, int n_dims,
                                 const int64_t *shape, dv_status fail)
{
    char got[96], want[96];
    if (n_dims < 1 || n_dims > DV_SCHEMA_MAX_DIMS)
        return dv_fail(fail, "tensor %s has %d dims (1..4 allowed)", name, n_dims);
    int64_t elems = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 1 || shape[i] > (((int64_t)1 << 40) - 1) / elems) {
            shape_str(n_dims, shape, got, sizeof got);
            return dv_fail(fail, "tensor %s has shape %s (every dim >= 1, fewer "
                           "than 2^40 elements)", name, got);
        }
        elems *= shape[i];
    }
    if (op && !dv_schema_op_ok(op))
        return dv_fail(fail, "tensor %s has op '%.40s' (1..31 printable ASCII bytes "
                       "expected)", name, op);
    /* "blk.L.*": L is the layer, canonical and in range, for any suffix */
    size_t nd = strncmp(name, "blk.", 4) ? 0 : strspn(name + 4, "0123456789");
    if (nd && name[4 + nd] == '.') {
        int64_t l = nd > 6 ? INT64_MAX : strtoll(name + 4, NULL, 10);
        if (nd > 1 && name[4] == '0')
            return dv_fail(fail, "tensor %s: layer number with a leading zero", name);
        if (l >= cfg->n_layer)
            return dv_fail(fail, "tensor %s: the model has %lld layers", name,
                           (long long)cfg->n_layer);
        if (layer != l)
            return dv_fail(fail, "tensor %s has layer %lld, expected %lld", name,
                           (long long)layer, (long long)l);
    }
    struct dv_schema_tensor t;
    if (!dv_schema_lookup(name, cfg->n_layer, &t)) {
        if (layer < -1 || layer >= cfg->n_layer)
            return dv_fail(fail, "tensor %s has layer %lld (the model has %lld layers)",
                           name, (long long)layer, (long long)cfg->n_layer);
        if (!op)
            return dv_fail(fail, "tensor %s has no op", name);
        return DV_OK;
    }
    if (layer != t.layer)
        return dv_fail(fail, "tensor %s has layer %lld, expected %d", name,
                       (long long)layer, t.layer);
    if (op && strcmp(op, dv_op_name(t.op)))
        return dv_fail(fail, "tensor %s has op '%s', expected '%s'", name, op,
                       dv_op_name(t.op));
    int64_t ws[4];
    int wn = dv_tensor_shape(t.shape, cfg, (int)n_tokens, (int)(pos0 + n_tokens), ws);
    bool same = wn == n_dims;
    for (int i = 0; same && i < n_dims; i++) same = ws[i] == shape[i];
    if (!same) {
        shape_str(n_dims, shape, got, sizeof got);
        shape_str(wn, ws, want, sizeof want);
        return dv_fail(fail, "tensor %s has shape %s, expected %s for a pass of "
                       "%lld token%s at pos0 %lld", name, got, want, (long long)n_tokens,
                       n_tokens == 1 ? "" : "s", (long long)pos0);
    }
    return DV_OK;
}

void dv_schema_pass_name(int64_t index, char buf[24])
{
    snprintf(buf, 24, "%04lld", (long long)index);
}

int64_t dv_schema_pass_index(const char *name)
{
    size_t n = strlen(name);
    if (n < 4 || n > 10 || strspn(name, "0123456789") != n) return -1;
    int64_t v = strtoll(name, NULL, 10);
    char canon[24];
    dv_schema_pass_name(v, canon);
    return v < ((int64_t)1 << 31) && !strcmp(canon, name) ? v : -1;
}
