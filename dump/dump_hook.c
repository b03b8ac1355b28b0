/* dump_hook.c - filters, model description and the hook into the writer. */
#include "dump.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arith.h"
#include "engine.h"
#include "error.h"
#include "ops.h"
#include "schema.h"

dv_status dv_ranges_parse(const char *s, const char *what, int64_t lo,
                          int64_t hi, struct dv_ranges *out)
{
    out->n = 0;
    const char *p = s;
    for (;;) {
        int64_t a, b;
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9') goto bad;
        a = strtoll(p, &end, 10);
        b = a;
        if (*end == '-') {
            if (end[1] < '0' || end[1] > '9') goto bad;
            b = strtoll(end + 1, &end, 10);
        }
        if (errno || a < lo || b > hi || a > b) goto bad;
        if (out->n == DV_RANGES_MAX)
            return dv_fail(DV_E_USAGE, "%s '%s': more than %d ranges", what, s,
                           DV_RANGES_MAX);
        out->lo[out->n] = a;
        out->hi[out->n++] = b;
        if (*end == '\0') return DV_OK;
        if (*end != ',') goto bad;
        p = end + 1;
    }
bad:
    return dv_fail(DV_E_USAGE, "%s '%s': expected ranges like 0-3,7 within %lld..%lld",
                   what, s, (long long)lo, (long long)hi);
}

bool dv_ranges_has(const struct dv_ranges *r, int64_t v)
{
    if (r->n == 0) return true;
    for (int i = 0; i < r->n; i++)
        if (v >= r->lo[i] && v <= r->hi[i]) return true;
    return false;
}

bool dv_dump_filter_tensor(const struct dv_dump_filter *f, const char *name,
                           int layer)
{
    if (layer >= 0 && !dv_ranges_has(&f->layers, layer)) return false;
    if (f->n_select == 0) return true;
    for (int i = 0; i < f->n_select; i++)
        if (fnmatch(f->select[i], name, 0) == 0) return true;
    return false;
}

dv_status dv_sha256_file(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv_fail(DV_E_IO, "%s: %s", path, strerror(errno));
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    enum { BUF = 1 << 20 };
    uint8_t *buf = malloc(BUF);
    ssize_t n = buf ? 0 : -1;
    while (buf && (n = read(fd, buf, BUF)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        sha256_update(&ctx, (size_t)n, buf);
    }
    int err = errno;
    close(fd);
    free(buf);
    if (!buf) return dv_fail(DV_E_NOMEM, "out of memory");
    if (n < 0) return dv_fail(DV_E_IO, "%s: %s", path, strerror(err));
    uint8_t dig[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof dig, dig);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) sprintf(hex + 2 * i, "%02x", dig[i]);
    return DV_OK;
}

dv_status dv_dump_describe(dv_dump *d, const struct dv_model *m,
                           const char *device, const char *driver,
                           const char *inject, const struct dv_arith *arith)
{
    const struct dv_arith a = arith ? *arith : DV_ARITH_EXACT;
    const struct dv_config *c = &m->cfg;
    char sha[65];
    dv_status s = dv_sha256_file(m->path, sha);
    if (s) return s;
    char types[512] = "unknown";
    if (a.act_quant >= 0) dv_arith_describe(m, a.act_quant, types, sizeof types);
    char *abs = realpath(m->path, NULL);
    const struct { const char *k; const char *v; } strs[] = {
        {"arch", c->arch}, {"rope_type", c->rope_mode == DV_ROPE_NEOX ? "neox" : "norm"},
        {"model_path", abs ? abs : m->path}, {"model_sha256", sha},
        {"device", device ? device : ""}, {"driver", driver ? driver : ""},
        {"inject", inject ? inject : ""},
        {"act_quant", a.act_quant >= 0 ? dv_act_quant_name(a.act_quant) : "unknown"},
        {"act_quant_types", types},
        {"attn_quant", a.act_quant >= 0 ? dv_arith_attn_name(a.act_quant, a.attn_quant, a.kv_type)
                                        : "unknown"},
        {"kv_type", dv_type_name(a.kv_type)}};
    const struct { const char *k; int64_t v; } ints[] = {
        {"n_vocab", c->n_vocab}, {"n_embd", c->d_model}, {"n_layer", c->n_layer},
        {"n_head", c->n_head}, {"n_head_kv", c->n_head_kv}, {"head_dim", c->head_dim},
        {"n_ff", c->n_ff}, {"n_rot", c->n_rot}, {"n_ctx_train", c->n_ctx_train}};
    for (size_t i = 0; !s && i < sizeof strs / sizeof strs[0]; i++)
        s = dv_dump_set_str(d, strs[i].k, strs[i].v);
    for (size_t i = 0; !s && i < sizeof ints / sizeof ints[0]; i++)
        s = dv_dump_set_int(d, ints[i].k, ints[i].v);
    if (!s) s = dv_dump_set_real(d, "rope_freq_base", c->rope_base);
    if (!s) s = dv_dump_set_real(d, "rms_eps", c->rms_eps);
    free(abs);
    return s;
}

dv_status dv_dump_engine_attrs(dv_dump *d, const struct dv_engine *e)
{
    int n;
    const struct dv_backend_attr *a = dv_engine_attrs(e, &n);
    dv_status s = DV_OK;
    for (int i = 0; !s && i < n; i++) {
        if (!a[i].key || !dv_schema_key_ok(a[i].key) || dv_schema_attr(a[i].key))
            return dv_fail(DV_E_USAGE, "backend attribute '%.64s' is not an engine key",
                           a[i].key ? a[i].key : "(null)");
        switch (a[i].kind) {
        case DV_BATTR_STR: s = dv_dump_set_str(d, a[i].key, a[i].str ? a[i].str : ""); break;
        case DV_BATTR_INT: s = dv_dump_set_int(d, a[i].key, a[i].i); break;
        case DV_BATTR_REAL: s = dv_dump_set_real(d, a[i].key, a[i].r); break;
        default: s = dv_fail(DV_E_USAGE, "backend attribute %s: kind %d", a[i].key, a[i].kind);
        }
    }
    return s;
}

static dv_status sink_begin(void *user, int pass, int pos0, int n_tokens,
                            const int32_t *tokens)
{
    struct dv_dump_sink *s = user;
    s->in_pass = dv_ranges_has(&s->filter->passes, pass);
    s->n_passes += s->in_pass;
    return s->in_pass ? dv_dump_begin_pass(s->dump, pass, pos0, n_tokens, tokens) : DV_OK;
}

static bool sink_want(void *user, const struct dv_tensor_desc *t)
{
    struct dv_dump_sink *s = user;
    return s->in_pass && dv_dump_filter_tensor(s->filter, t->name, t->layer);
}

static dv_status sink_take(void *user, const struct dv_tensor_desc *t, const void *data)
{
    struct dv_dump_sink *s = user;
    dv_status st = dv_dump_write(s->dump, t->name, t->layer, dv_op_name(t->op),
                                 t->order, t->n_dims, t->shape,
                                 (enum dv_dump_type)t->type, data);
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->shape[i];
    s->n_tensors += !st;
    s->n_values += st ? 0 : n;
    return st;
}

static dv_status sink_end(void *user, int pass)
{
    struct dv_dump_sink *s = user;
    return s->in_pass ? dv_dump_end_pass(s->dump) : DV_OK;
}

struct dv_hook dv_dump_hook(struct dv_dump_sink *s)
{
    return (struct dv_hook){.begin_pass = sink_begin, .want = sink_want,
                            .take = sink_take, .end_pass = sink_end, .user = s};
}
