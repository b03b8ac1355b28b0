/* engine.c - argument checks and pass bookkeeping shared by all backends. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arith.h"
#include "error.h"
#include "ops.h"

static const struct dv_backend *const backends[DV_BACKEND_COUNT] = {
    [DV_BACKEND_CPU] = &dv_backend_cpu,
    [DV_BACKEND_CPU_F64] = &dv_backend_cpu_f64,
    [DV_BACKEND_VULKAN] = &dv_backend_vulkan,
    [DV_BACKEND_LLAMA_CPP] = &dv_backend_llama_cpp,
};

struct dv_engine {
    const struct dv_backend *be;
    const struct dv_model *model;
    void *impl;
    struct dv_engine_opts opts;
    int n_past;   /* tokens in the cache */
    int n_pass;   /* passes since reset */
    int last_n;   /* tokens of the last pass; 0 before the first */
};

const char *dv_backend_name(int kind)
{
    return (kind >= 0 && kind < DV_BACKEND_COUNT) ? backends[kind]->name : "?";
}

static const char *const act_quant_names[DV_ACTQ_COUNT] = {
    [DV_ACTQ_NONE] = "none", [DV_ACTQ_AUTO] = "auto", [DV_ACTQ_Q8_0] = "q8_0",
    [DV_ACTQ_Q8_1] = "q8_1", [DV_ACTQ_Q8_K] = "q8_K", [DV_ACTQ_F16] = "f16",
    [DV_ACTQ_AMX] = "amx",
};

static const char *const attn_quant_names[DV_ATTNQ_COUNT] = {
    [DV_ATTNQ_AUTO] = "auto", [DV_ATTNQ_NONE] = "none", [DV_ATTNQ_Q] = "q",
    [DV_ATTNQ_QP] = "qp", [DV_ATTNQ_VK] = "vk",
};

const char *dv_attn_quant_name(int m)
{
    return m >= 0 && m < DV_ATTNQ_COUNT ? attn_quant_names[m] : "?";
}

bool dv_arith_is_exact(struct dv_arith a)
{
    return a.act_quant == DV_ACTQ_NONE && a.kv_type == DV_TYPE_F32 &&
           !strcmp(dv_arith_attn_name(a.act_quant, a.attn_quant, a.kv_type), "none");
}

int dv_attn_quant_from_name(const char *s)
{
    for (int k = 0; k < DV_ATTNQ_COUNT; k++)
        if (!strcmp(attn_quant_names[k], s)) return k;
    return -1;
}

const char *dv_act_quant_name(int aq)
{
    return aq >= 0 && aq < DV_ACTQ_COUNT ? act_quant_names[aq] : "?";
}

int dv_act_quant_from_name(const char *s)
{
    for (int k = 0; k < DV_ACTQ_COUNT; k++) /* q8_K and q8_k both */
        if (!strcasecmp(act_quant_names[k], s)) return k;
    return -1;
}

int dv_backend_from_name(const char *s)
{
    for (int k = 0; k < DV_BACKEND_COUNT; k++)
        if (strcmp(backends[k]->name, s) == 0) return k;
    return -1;
}

dv_status dv_engine_open(const struct dv_model *m, int kind,
                         const struct dv_engine_opts *o, struct dv_engine **out)
{
    *out = NULL;
    if (kind < 0 || kind >= DV_BACKEND_COUNT)
        return dv_fail(DV_E_USAGE, "unknown backend %d", kind);
    struct dv_engine_opts opts = *o;
    if (opts.n_batch == 0) opts.n_batch = opts.n_ctx;
    /* 1 << 20 positions: far beyond any context we can hold in memory, and
     * small enough that H * n_batch * n_ctx products stay in int64. */
    if (opts.n_ctx < 1 || opts.n_ctx > (1 << 20) || opts.n_batch < 1 ||
        opts.n_batch > opts.n_ctx)
        return dv_fail(DV_E_USAGE, "bad context size n_ctx=%d n_batch=%d",
                       opts.n_ctx, opts.n_batch);
    if (opts.act_quant < 0 || opts.act_quant >= DV_ACTQ_COUNT)
        return dv_fail(DV_E_USAGE, "unknown activation quantization mode %d", opts.act_quant);
    if (opts.attn_quant < 0 || opts.attn_quant >= DV_ATTNQ_COUNT)
        return dv_fail(DV_E_USAGE, "unknown attention rounding mode %d", opts.attn_quant);
    if (!dv_arith_kv_ok(opts.kv_type))
        return dv_fail(DV_E_USAGE, "KV cache type %s (%d): f32, f16 or q8_0",
                       dv_type_name(opts.kv_type), opts.kv_type);
    if (opts.attn_quant == DV_ATTNQ_VK && opts.kv_type == DV_TYPE_Q8_0)
        return dv_fail(DV_E_USAGE, "attention rounding vk is ggml-vulkan's as measured with "
                       "f32 and f16 caches, not q8_0");
    if (opts.inject && kind != DV_BACKEND_VULKAN)
        return dv_fail(DV_E_USAGE, "fault injection needs the vulkan backend, not %s",
                       backends[kind]->name);
    if (opts.gpu_layers && kind != DV_BACKEND_VULKAN && kind != DV_BACKEND_LLAMA_CPP)
        return dv_fail(DV_E_USAGE, "a layer split needs the vulkan or llama.cpp backend, "
                       "not %s", backends[kind]->name);
    struct dv_engine *e = calloc(1, sizeof *e);
    if (!e) return dv_fail(DV_E_NOMEM, "out of memory");
    e->be = backends[kind];
    e->model = m;
    e->opts = opts;
    dv_status s = e->be->open(m, &opts, &e->impl);
    if (s) {
        free(e);
        return dv_fail_prefix(s, backends[kind]->name);
    }
    *out = e;
    return DV_OK;
}

void dv_engine_free(struct dv_engine *e)
{
    if (!e) return;
    e->be->free(e->impl);
    free(e);
}

static dv_status check_pass(const struct dv_engine *e, const int32_t *tokens,
                            int n, int pos0)
{
    if (n < 1 || n > e->opts.n_batch)
        return dv_fail(DV_E_USAGE, "a pass of %d tokens (this engine takes "
                       "1..%d)", n, e->opts.n_batch);
    if (pos0 < 0 || pos0 > e->n_past)
        return dv_fail(DV_E_USAGE, "pass at pos0 %d but the cache holds %d "
                       "tokens", pos0, e->n_past);
    if ((int64_t)pos0 + n > e->opts.n_ctx)
        return dv_fail(DV_E_USAGE, "pass at pos0 %d of %d tokens exceeds the "
                       "context of %d", pos0, n, e->opts.n_ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= e->model->cfg.n_vocab)
            return dv_fail(DV_E_USAGE, "token %d (at %d) is not in the "
                           "vocabulary of %lld", tokens[t], t,
                           (long long)e->model->cfg.n_vocab);
    return DV_OK;
}

static dv_status forward(struct dv_engine *e, const int32_t *tokens, int n, int pos0,
                         int layer0, const float *x, const struct dv_hook *hook)
{
    dv_status s = check_pass(e, tokens, n, pos0);
    if (s) return s;
    if (layer0 && (!e->be->forward_from || !x || layer0 < 0 ||
                   layer0 >= e->model->cfg.n_layer))
        return dv_fail(DV_E_USAGE, "the %s backend cannot start a pass at layer %d",
                       e->be->name, layer0);
    struct dv_pass p = {.index = e->n_pass, .pos0 = pos0, .n_tokens = n,
                        .tokens = tokens};
    static const struct dv_hook none = {0};
    if (hook && hook->begin_pass &&
        (s = hook->begin_pass(hook->user, p.index, pos0, n, tokens)))
        return s;
    e->n_pass++;
    e->n_past = pos0 + n;
    e->last_n = 0;
    s = layer0 ? e->be->forward_from(e->impl, &p, hook ? hook : &none, layer0, x)
               : e->be->forward(e->impl, &p, hook ? hook : &none);
    if (s) return s;
    e->last_n = n;
    return hook && hook->end_pass ? hook->end_pass(hook->user, p.index) : DV_OK;
}

dv_status dv_engine_forward(struct dv_engine *e, const int32_t *tokens, int n,
                            int pos0, const struct dv_hook *hook)
{
    return forward(e, tokens, n, pos0, 0, NULL, hook);
}

dv_status dv_engine_forward_from(struct dv_engine *e, const int32_t *tokens, int n, int pos0,
                                 int layer0, const float *x, const struct dv_hook *hook)
{
    return forward(e, tokens, n, pos0, layer0, x, hook);
}

int64_t dv_op_call_count(const struct dv_config *cfg, const struct dv_op_call *c)
{
    const int64_t T = c->T, n_kv = (int64_t)c->pos0 + c->T;
    const int64_t H = cfg->n_head, hd = cfg->head_dim;
    switch (c->op) {
    case DV_OP_GET_ROWS: return c->w ? T * c->w->ne[0] : 0;
    case DV_OP_RMSNORM: return T * c->n;
    case DV_OP_MATMUL: return c->w ? T * c->w->ne[1] : 0;
    case DV_OP_ROPE: return T * c->nh * hd;
    case DV_OP_KQ:
    case DV_OP_SOFTMAX: return H * T * n_kv;
    case DV_OP_KQV: return T * H * hd;
    case DV_OP_ADD:
    case DV_OP_SILU_MUL: return c->n;
    default: return 0;
    }
}

bool dv_engine_has_op(const struct dv_engine *e, int op)
{
    return e->be->run_op && op >= 0 && op < DV_OP_COUNT && op != DV_OP_VIEW &&
           (!e->be->has_op || e->be->has_op(e->impl, op));
}

dv_status dv_engine_run_op(struct dv_engine *e, const struct dv_op_call *c, void *y)
{
    if (!dv_engine_has_op(e, c->op))
        return dv_fail(DV_E_USAGE, "the %s backend cannot run op %s alone", e->be->name,
                       dv_op_name(c->op));
    const struct dv_config *cfg = &e->model->cfg;
    const bool need_w = c->op == DV_OP_GET_ROWS || c->op == DV_OP_RMSNORM ||
                        c->op == DV_OP_MATMUL;
    if (c->T < 1 || c->T > e->opts.n_batch || c->pos0 < 0 ||
        (int64_t)c->pos0 + c->T > e->opts.n_ctx || (need_w && !c->w) ||
        (c->op == DV_OP_GET_ROWS && !c->ids) || (c->op != DV_OP_GET_ROWS && !c->a) ||
        ((c->op == DV_OP_ADD || c->op == DV_OP_SILU_MUL || c->op == DV_OP_KQ ||
          c->op == DV_OP_KQV) && !c->b) ||
        ((c->op == DV_OP_KQ || c->op == DV_OP_KQV) && c->pos0 && !c->past) ||
        (c->op == DV_OP_ROPE && (c->nh != cfg->n_head && c->nh != cfg->n_head_kv)) ||
        (c->op == DV_OP_RMSNORM && c->n != c->w->ne[0]) ||
        dv_op_call_count(cfg, c) <= 0)
        return dv_fail(DV_E_USAGE, "op %s alone: bad call (T %d, pos0 %d; the engine holds "
                       "%d tokens a call, %d in all)", dv_op_name(c->op), c->T, c->pos0,
                       e->opts.n_batch, e->opts.n_ctx);
    if (c->op == DV_OP_GET_ROWS)
        for (int t = 0; t < c->T; t++)
            if (c->ids[t] < 0 || c->ids[t] >= c->w->ne[1])
                return dv_fail(DV_E_USAGE, "op get_rows alone: row %d of %lld", c->ids[t],
                               (long long)c->w->ne[1]);
    return e->be->run_op(e->impl, c, y);
}

dv_status dv_engine_logits(struct dv_engine *e, int t, double *out)
{
    if (t < 0 || t >= e->last_n)
        return dv_fail(DV_E_USAGE, "no logits for token %d of the last pass "
                       "(%d tokens)", t, e->last_n);
    e->be->logits(e->impl, t, out);
    return DV_OK;
}

void dv_engine_reset(struct dv_engine *e)
{
    e->n_past = 0;
    e->n_pass = 0;
    e->last_n = 0;
}

int dv_engine_n_past(const struct dv_engine *e) { return e->n_past; }
const struct dv_backend *dv_engine_backend(const struct dv_engine *e) { return e->be; }

/* ---- hook emission, shared by every backend ---------------------------- */

int dv_tensor_shape(int kind, const struct dv_config *c, int T, int n_kv,
                    int64_t shape[4])
{
    const int64_t H = c->n_head, Hkv = c->n_head_kv, hd = c->head_dim;
    switch (kind) {
    case DV_SHAPE_TD: shape[0] = T, shape[1] = c->d_model; return 2;
    case DV_SHAPE_THHD: shape[0] = T, shape[1] = H, shape[2] = hd; return 3;
    case DV_SHAPE_THKVHD: shape[0] = T, shape[1] = Hkv, shape[2] = hd; return 3;
    case DV_SHAPE_HTKV: shape[0] = H, shape[1] = T, shape[2] = n_kv; return 3;
    case DV_SHAPE_THD: shape[0] = T, shape[1] = H * hd; return 2;
    case DV_SHAPE_TF: shape[0] = T, shape[1] = c->n_ff; return 2;
    case DV_SHAPE_TV: shape[0] = T, shape[1] = c->n_vocab; return 2;
    default: return 0;
    }
}

void dv_emitter_init(struct dv_emitter *em, const struct dv_hook *h,
                     const struct dv_pass *p, const struct dv_config *c,
                     int type)
{
    memset(em, 0, sizeof *em);
    em->hook = h;
    em->desc.pass = p->index;
    em->desc.pos0 = p->pos0;
    em->desc.n_tokens = p->n_tokens;
    em->desc.tokens = p->tokens;
    em->desc.type = type;
    em->desc.name = em->name;
    em->cfg = c;
}

bool dv_emitter_ask(struct dv_emitter *em, int layer, int which)
{
    struct dv_tensor_desc *d = &em->desc;
    int shape_kind;
    if (layer >= 0) {
        snprintf(em->name, sizeof em->name, "blk.%d.%s", layer,
                 dv_layer_tensor_name(which));
        d->op = dv_layer_tensor_op(which, layer);
        shape_kind = dv_layer_tensor_shape(which);
    } else {
        snprintf(em->name, sizeof em->name, "%s", dv_global_tensor_name(which));
        d->op = dv_global_tensor_op(which);
        shape_kind = dv_global_tensor_shape(which);
    }
    d->layer = layer;
    d->order = em->order++;
    memset(d->shape, 0, sizeof d->shape);
    d->n_dims = dv_tensor_shape(shape_kind, em->cfg, d->n_tokens,
                                d->pos0 + d->n_tokens, d->shape);
    if (!em->hook->take) return false;
    return em->hook->want ? em->hook->want(em->hook->user, d) : true;
}

dv_status dv_emitter_take(struct dv_emitter *em, const void *data)
{
    return em->hook->take(em->hook->user, &em->desc, data);
}

dv_status dv_emit(struct dv_emitter *em, int layer, int which, const void *data)
{
    return dv_emitter_ask(em, layer, which) ? dv_emitter_take(em, data) : DV_OK;
}

void dv_engine_describe(const struct dv_engine *e, char *device, size_t dcap,
                        char *driver, size_t rcap)
{
    e->be->describe(e->impl, device, dcap, driver, rcap);
}

struct dv_arith dv_engine_arith(const struct dv_engine *e)
{
    struct dv_arith a = {e->opts.act_quant, e->opts.attn_quant, e->opts.kv_type};
    if (e->be->arith) e->be->arith(e->impl, &a);
    return a;
}

const struct dv_backend_attr *dv_engine_attrs(const struct dv_engine *e, int *n)
{
    *n = 0;
    if (!e->be->attrs) return NULL;
    const struct dv_backend_attr *a = e->be->attrs(e->impl, n);
    if (!a || *n < 0) *n = 0;
    return *n ? a : NULL;
}
