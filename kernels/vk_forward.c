/*
 * vk_forward.c - the "vulkan" backend: the whole forward pass on a Vulkan
 * device, with the KV cache in device memory across passes.
 *
 * Each pass is recorded op by op with the functions of vk_ops.h (the same
 * kernels the single-op runner and the kernel verifier run) and hands its
 * tensors to the hook in the order of ops.h. Nothing is read back unless
 * the hook wants it: a wanted tensor submits the work recorded so far and
 * copies that tensor out; a pass the hook wants nothing of is one
 * submission, plus the logits.
 *
 * --gpu-layers N: layers 0..N-1 run here; the residual stream is then read
 * back and the CPU reference (an f32 "cpu" impl with its own cache) runs
 * the remaining layers, output_norm and the logits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "engine.h"
#include "error.h"
#include "fault.h"
#include "gguf.h"
#include "ops.h"
#include "quant.h"
#include "types.h"
#include "vk_ops.h"

struct vk_layer {
    struct dv_vk_buf attn_norm, ffn_norm; /* [d] f32 */
    struct dv_vk_weight wq, wk, wv, wo, gate, up, down;
};

struct vkf {
    const struct dv_model *m;
    const struct dv_config *c;
    int n_ctx, n_batch;
    int gpu_layers;   /* layers on the device */
    int fault_layer;  /* -1: the fault (if any) everywhere */
    struct dv_vk *vk;
    struct dv_vkops *ops;
    struct dv_vk_weight tok_embd, output; /* output unused when tied */
    struct dv_vk_buf output_norm;
    struct vk_layer *layers; /* [gpu_layers] */
    /* activations (B = n_batch) and the cache, device-local */
    struct dv_vk_buf ids;   /* [B] int32 */
    struct dv_vk_buf rope;  /* [2, B, n_rot/2]: cos, then sin */
    struct dv_vk_buf x, xn, q, k, v, att, attn_out, proj, gate, up, logits;
    struct dv_vk_buf kcache, vcache; /* [gpu_layers, n_ctx, Hkv*hd] */
    float *host;      /* read-back of one tensor */
    float *host_tab;  /* rope table before upload */
    float *logits_host; /* [B, V] of the last pass (all-GPU runs) */
    void *cpu;        /* the CPU reference for layers >= gpu_layers, or NULL */
    bool logits_on_cpu;
};

/* ---- open ------------------------------------------------------------------ */

static dv_status weight(struct vkf *s, const struct dv_gguf_tensor *t, struct dv_vk_weight *w)
{
    dv_status st = dv_vk_weight_new(s->vk, t->type, t->ne[1], t->ne[0], t->data, false, w);
    if (!st) return DV_OK;
    char name[80];
    snprintf(name, sizeof name, "tensor %.*s", (int)(t->name.len < 64 ? t->name.len : 64),
             t->name.ptr);
    return dv_fail_prefix(st, name);
}

/* A norm vector as f32 on the device (any type the CPU reads). */
static dv_status vector(struct vkf *s, const struct dv_gguf_tensor *t, struct dv_vk_buf *b)
{
    const int64_t n = t->ne[0];
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) return dv_fail(DV_E_NOMEM, "out of memory");
    dv_status st = dv_dequant_row(t->type, t->data, tmp, n);
    if (!st) st = dv_vk_buf_alloc(s->vk, (VkDeviceSize)n * 4, false, b);
    if (!st) st = dv_vk_upload(s->vk, b, 0, tmp, (VkDeviceSize)n * 4);
    free(tmp);
    return st;
}

static dv_status act(struct vkf *s, struct dv_vk_buf *b, size_t n)
{
    return dv_vk_buf_alloc(s->vk, (VkDeviceSize)(n ? n : 1) * 4, false, b);
}

static void vk_free(void *impl)
{
    struct vkf *s = impl;
    if (!s) return;
    if (s->cpu) dv_backend_cpu.free(s->cpu);
    if (s->vk) {
        dv_vk_submit(s->vk); /* nothing may still use the buffers */
        for (int il = 0; s->layers && il < s->gpu_layers; il++) {
            struct vk_layer *l = &s->layers[il];
            dv_vk_buf_free(s->vk, &l->attn_norm), dv_vk_buf_free(s->vk, &l->ffn_norm);
            struct dv_vk_weight *w[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->gate, &l->up,
                                        &l->down};
            for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) dv_vk_weight_free(s->vk, w[i]);
        }
        dv_vk_weight_free(s->vk, &s->tok_embd), dv_vk_weight_free(s->vk, &s->output);
        struct dv_vk_buf *b[] = {&s->output_norm, &s->ids, &s->rope, &s->x, &s->xn, &s->q,
                                 &s->k, &s->v, &s->att, &s->attn_out, &s->proj, &s->gate,
                                 &s->up, &s->logits, &s->kcache, &s->vcache};
        for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) dv_vk_buf_free(s->vk, b[i]);
        dv_vkops_free(s->ops);
        dv_vk_close(s->vk);
    }
    free(s->layers), free(s->host), free(s->host_tab), free(s->logits_host);
    free(s);
}

static dv_status unreadable(const struct dv_gguf_tensor *t)
{
    return dv_fail(DV_E_INPUT, "tensor %.*s: the Vulkan kernels do not read type %s "
                   "(they read f32 f16 bf16 q8_0 q4_0 q4_k q6_k)",
                   (int)(t->name.len < 64 ? t->name.len : 64), t->name.ptr,
                   dv_type_name(t->type));
}

static dv_status check_types(const struct dv_model *m, int n_layers)
{
    for (int il = 0; il < n_layers; il++) {
        const struct dv_layer *l = &m->layers[il];
        const struct dv_gguf_tensor *t[] = {l->wq, l->wk, l->wv, l->wo, l->ffn_gate,
                                            l->ffn_up, l->ffn_down};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (!dv_vk_weight_type_ok(t[i]->type))
                return unreadable(t[i]);
    }
    return DV_OK;
}

static dv_status upload_weights(struct vkf *s)
{
    const struct dv_model *m = s->m;
    dv_status st = weight(s, m->tok_embd, &s->tok_embd);
    s->layers = calloc((size_t)(s->gpu_layers ? s->gpu_layers : 1), sizeof *s->layers);
    if (!st && !s->layers) st = dv_fail(DV_E_NOMEM, "out of memory");
    for (int il = 0; il < s->gpu_layers && !st; il++) {
        const struct dv_layer *ml = &m->layers[il];
        struct vk_layer *l = &s->layers[il];
        st = vector(s, ml->attn_norm, &l->attn_norm);
        if (!st) st = vector(s, ml->ffn_norm, &l->ffn_norm);
        if (!st) st = weight(s, ml->wq, &l->wq);
        if (!st) st = weight(s, ml->wk, &l->wk);
        if (!st) st = weight(s, ml->wv, &l->wv);
        if (!st) st = weight(s, ml->wo, &l->wo);
        if (!st) st = weight(s, ml->ffn_gate, &l->gate);
        if (!st) st = weight(s, ml->ffn_up, &l->up);
        if (!st) st = weight(s, ml->ffn_down, &l->down);
    }
    if (st || s->logits_on_cpu) return st;
    st = vector(s, m->output_norm, &s->output_norm);
    if (!st && m->output != m->tok_embd) st = weight(s, m->output, &s->output);
    return st;
}

static dv_status alloc_state(struct vkf *s)
{
    const struct dv_config *c = s->c;
    const size_t B = (size_t)s->n_batch, C = (size_t)s->n_ctx, d = (size_t)c->d_model;
    const size_t qd = (size_t)(c->n_head * c->head_dim);
    const size_t kvd = (size_t)(c->n_head_kv * c->head_dim), F = (size_t)c->n_ff;
    const size_t V = (size_t)c->n_vocab, att = (size_t)c->n_head * B * C;
    const size_t cache = (size_t)s->gpu_layers * C * kvd;
    if (cache > ((size_t)1 << 32) || att > ((size_t)1 << 32) || B * V > ((size_t)1 << 32))
        return dv_fail(DV_E_USAGE, "context of %d too large for 32-bit float offsets",
                       s->n_ctx);
    dv_status st = act(s, &s->ids, B);
    if (!st) st = act(s, &s->rope, 2 * B * (size_t)(c->n_rot / 2));
    if (!st) st = act(s, &s->x, B * d);
    if (!st) st = act(s, &s->xn, B * d);
    if (!st) st = act(s, &s->q, B * qd);
    if (!st) st = act(s, &s->k, B * kvd);
    if (!st) st = act(s, &s->v, B * kvd);
    if (!st) st = act(s, &s->att, att);
    if (!st) st = act(s, &s->attn_out, B * qd);
    if (!st) st = act(s, &s->proj, B * d);
    if (!st) st = act(s, &s->gate, B * F);
    if (!st) st = act(s, &s->up, B * F);
    if (!st) st = act(s, &s->logits, B * V);
    if (!st) st = act(s, &s->kcache, cache);
    if (!st) st = act(s, &s->vcache, cache);
    size_t most = att > B * V ? att : B * V;
    most = most > B * F ? most : B * F;
    s->host = malloc(most * sizeof *s->host);
    s->host_tab = malloc((2 * B * (size_t)(c->n_rot / 2) + 1) * sizeof *s->host_tab);
    s->logits_host = malloc(B * V * sizeof *s->logits_host);
    if (!st && (!s->host || !s->host_tab || !s->logits_host))
        st = dv_fail(DV_E_NOMEM, "out of memory");
    return st;
}

static dv_status vk_open(const struct dv_model *m, const struct dv_engine_opts *o, void **impl)
{
    const struct dv_config *c = &m->cfg;
    if (o->gpu_layers < -1 || o->inject < 0 || o->inject >= DV_FAULT_COUNT ||
        o->inject_layer < -1 || o->inject_layer >= c->n_layer)
        return dv_fail(DV_E_USAGE, "bad gpu_layers %d or fault %d@%d", o->gpu_layers,
                       o->inject, o->inject_layer);
    if (o->act_quant != DV_ACTQ_NONE)
        return dv_fail(DV_E_USAGE, "--act-quant %s is for the cpu backends: the Vulkan "
                       "kernels compute in exact f32", dv_act_quant_name(o->act_quant));
    if (o->kv_type != DV_TYPE_F32)
        return dv_fail(DV_E_USAGE, "--kv-type %s is for the cpu backends: the Vulkan kernels "
                       "keep an f32 KV cache", dv_type_name(o->kv_type));
    struct vkf *s = calloc(1, sizeof *s);
    if (!s) return dv_fail(DV_E_NOMEM, "out of memory");
    s->m = m, s->c = c, s->n_ctx = o->n_ctx, s->n_batch = o->n_batch;
    s->gpu_layers = o->gpu_layers == 0 || o->gpu_layers > c->n_layer ? c->n_layer
                    : o->gpu_layers < 0 ? 0 : o->gpu_layers;
    s->logits_on_cpu = s->gpu_layers < c->n_layer;
    s->fault_layer = o->inject ? o->inject_layer : -1;
    dv_status st = check_types(m, s->gpu_layers);
    if (!st && !dv_vk_weight_type_ok(m->tok_embd->type)) st = unreadable(m->tok_embd);
    if (!st && !s->logits_on_cpu && !dv_vk_weight_type_ok(m->output->type))
        st = unreadable(m->output);
    if (!st) st = dv_vk_open(o->device, o->validation, &s->vk);
    if (!st) st = dv_vkops_new(s->vk, o->inject, &s->ops);
    if (!st) st = alloc_state(s);
    if (!st) st = upload_weights(s);
    if (!st && s->logits_on_cpu) {
        /* the CPU never runs the device's layers: it loads only its own */
        struct dv_engine_opts co = {.n_ctx = o->n_ctx, .n_batch = o->n_batch,
                                    .cpu_layer0 = s->gpu_layers};
        st = dv_backend_cpu.open(m, &co, &s->cpu);
    }
    if (st) {
        vk_free(s);
        return st;
    }
    *impl = s;
    return DV_OK;
}

/* ---- the pass -------------------------------------------------------------- */

static struct dv_vk_t at(const struct dv_vk_buf *b, size_t off)
{
    return (struct dv_vk_t){b, (uint32_t)off};
}

/* Ask the hook about the next tensor; when it wants it, run what is
 * recorded and hand it n floats of v. */
static dv_status emit(struct vkf *s, struct dv_emitter *em, int layer, int which,
                      struct dv_vk_t v)
{
    if (!dv_emitter_ask(em, layer, which)) return DV_OK;
    size_t n = 1;
    for (int i = 0; i < em->desc.n_dims; i++) n *= (size_t)em->desc.shape[i];
    dv_status st = dv_vk_download(s->vk, v.b, (VkDeviceSize)v.off * 4, s->host,
                                  (VkDeviceSize)n * 4);
    return st ? st : dv_emitter_take(em, s->host);
}

static dv_status layer_pass(struct vkf *s, struct dv_emitter *em, int il, uint32_t T,
                            uint32_t pos0)
{
    const struct dv_config *c = s->c;
    const struct vk_layer *l = &s->layers[il];
    struct dv_vkops *o = s->ops;
    const bool f = s->fault_layer < 0 || s->fault_layer == il;
    const uint32_t d = (uint32_t)c->d_model, H = (uint32_t)c->n_head;
    const uint32_t Hkv = (uint32_t)c->n_head_kv, hd = (uint32_t)c->head_dim;
    const uint32_t kvd = Hkv * hd, F = (uint32_t)c->n_ff;
    const size_t cache_off = (size_t)il * (size_t)s->n_ctx * kvd;
    const struct dv_vk_t x = at(&s->x, 0), xn = at(&s->xn, 0), q = at(&s->q, 0);
    const struct dv_vk_t k = at(&s->k, 0), v = at(&s->v, 0), att = at(&s->att, 0);
    const struct dv_vk_t ao = at(&s->attn_out, 0), proj = at(&s->proj, 0);
    const struct dv_vk_t gate = at(&s->gate, 0), up = at(&s->up, 0);
    const struct dv_vk_t kc = at(&s->kcache, cache_off), vc = at(&s->vcache, cache_off);
    dv_status st;
#define STEP(call, lt, view)                                                     \
    do {                                                                         \
        if ((st = (call)) || (st = emit(s, em, il, DV_LT_##lt, (view)))) return st; \
    } while (0)

    if ((st = emit(s, em, il, DV_LT_ATTN_IN, x))) return st;
    /* attention: n = rmsnorm(x); q, k, v projections */
    STEP(dv_vkop_rmsnorm(o, f, x, at(&l->attn_norm, 0), xn, T, d, (float)c->rms_eps),
         ATTN_NORM, xn);
    STEP(dv_vkop_matmul(o, f, &l->wq, xn, q, T), Q, q);
    STEP(dv_vkop_matmul(o, f, &l->wk, xn, k, T), K, k);
    STEP(dv_vkop_matmul(o, f, &l->wv, xn, v, T), V, v);
    /* rotate q and k by their positions, then k and v into the cache */
    STEP(dv_vkop_rope(o, f, q, at(&s->rope, 0), T, H, hd, (uint32_t)c->n_rot, c->rope_mode,
                      pos0, (float)c->rope_base), Q_ROPE, q);
    STEP(dv_vkop_rope(o, f, k, at(&s->rope, 0), T, Hkv, hd, (uint32_t)c->n_rot, c->rope_mode,
                      pos0, (float)c->rope_base), K_ROPE, k);
    if ((st = dv_vkop_kv_write(o, f, k, kc, T, kvd, pos0))) return st;
    if ((st = dv_vkop_kv_write(o, f, v, vc, T, kvd, pos0))) return st;
    /* scaled, masked scores over the cache, softmax, times V */
    STEP(dv_vkop_kq(o, f, q, kc, att, T, pos0, H, Hkv, hd), KQ, att);
    STEP(dv_vkop_softmax(o, f, att, H * T, pos0 + T), KQ_SOFTMAX, att);
    STEP(dv_vkop_kqv(o, f, att, vc, ao, T, pos0, H, Hkv, hd), ATTN_OUT, ao);
    STEP(dv_vkop_matmul(o, f, &l->wo, ao, proj, T), ATTN_PROJ, proj);
    /* h = x + Wo attn */
    STEP(dv_vkop_add(o, x, proj, x, T * d), FFN_IN, x);
    /* FFN: out = h + Wdown (silu(Wgate m) * Wup m), m = rmsnorm(h) */
    STEP(dv_vkop_rmsnorm(o, f, x, at(&l->ffn_norm, 0), xn, T, d, (float)c->rms_eps),
         FFN_NORM, xn);
    STEP(dv_vkop_matmul(o, f, &l->gate, xn, gate, T), FFN_GATE, gate);
    STEP(dv_vkop_matmul(o, f, &l->up, xn, up, T), FFN_UP, up);
    STEP(dv_vkop_silu_mul(o, gate, up, gate, T * F), FFN_ACT, gate);
    STEP(dv_vkop_matmul(o, f, &l->down, gate, proj, T), FFN_OUT, proj);
    STEP(dv_vkop_add(o, x, proj, x, T * d), OUT, x);
#undef STEP
    return DV_OK;
}

/* A pass from layer layer0 on: x (f32 [T, d]) is the residual entering it
 * (layer0 > 0), else the embedding of the tokens. */
static dv_status vk_forward_at(void *impl, const struct dv_pass *p, const struct dv_hook *h,
                               int layer0, const float *x)
{
    struct vkf *s = impl;
    const struct dv_config *c = s->c;
    const uint32_t T = (uint32_t)p->n_tokens, pos0 = (uint32_t)p->pos0;
    const size_t half = (size_t)(c->n_rot / 2);
    struct dv_emitter em;
    dv_emitter_init(&em, h, p, c, DV_TYPE_F32);
    if (layer0 > 0 && s->gpu_layers < c->n_layer)
        return dv_fail(DV_E_USAGE, "a pass from layer %d needs every layer on the device",
                       layer0);
    if (s->gpu_layers == 0) return dv_cpu_forward_from_f32(s->cpu, p, &em, 0, NULL);

    /* this pass's token ids and rope table (the CPU reference's table) */
    dv_cpu_rope_table_f32(s->host_tab, s->host_tab + T * half, T, pos0, c->n_rot,
                          c->rope_base);
    dv_status st = dv_vk_upload(s->vk, &s->ids, 0, p->tokens, (VkDeviceSize)T * 4);
    if (!st) st = dv_vk_upload(s->vk, &s->rope, 0, s->host_tab, (VkDeviceSize)(2 * T * half) * 4);
    /* embedding: x[t] = token_embd[tokens[t]] (layer 0's op), or the
     * residual handed in */
    const bool f0 = s->fault_layer < 0 || s->fault_layer == 0;
    if (!st && layer0 > 0)
        st = dv_vk_upload(s->vk, &s->x, 0, x, (VkDeviceSize)T * (VkDeviceSize)c->d_model * 4);
    else if (!st)
        st = dv_vkop_get_rows(s->ops, f0, &s->tok_embd, at(&s->ids, 0), T, at(&s->x, 0));
    for (int il = layer0; il < s->gpu_layers && !st; il++) st = layer_pass(s, &em, il, T, pos0);
    if (st) return st;

    const size_t d = (size_t)c->d_model, V = (size_t)c->n_vocab;
    if (s->logits_on_cpu) { /* the rest on the CPU reference, from the residual */
        st = dv_vk_download(s->vk, &s->x, 0, s->host, (VkDeviceSize)(T * d) * 4);
        return st ? st : dv_cpu_forward_from_f32(s->cpu, p, &em, s->gpu_layers, s->host);
    }
    /* final norm and logits (outside layers: faulty only when unrestricted) */
    const bool fg = s->fault_layer < 0;
    const struct dv_vk_weight *out = s->m->output == s->m->tok_embd ? &s->tok_embd : &s->output;
    st = dv_vkop_rmsnorm(s->ops, fg, at(&s->x, 0), at(&s->output_norm, 0), at(&s->xn, 0), T,
                         (uint32_t)d, (float)c->rms_eps);
    if (!st) st = emit(s, &em, -1, DV_GT_OUTPUT_NORM, at(&s->xn, 0));
    if (!st) st = dv_vkop_matmul(s->ops, fg, out, at(&s->xn, 0), at(&s->logits, 0), T);
    if (!st) st = dv_vk_download(s->vk, &s->logits, 0, s->logits_host, (VkDeviceSize)(T * V) * 4);
    if (!st && dv_emitter_ask(&em, -1, DV_GT_LOGITS)) st = dv_emitter_take(&em, s->logits_host);
    return st;
}

static dv_status vk_forward(void *impl, const struct dv_pass *p, const struct dv_hook *h)
{
    return vk_forward_at(impl, p, h, 0, NULL);
}

static void vk_logits(void *impl, int t, double *out)
{
    struct vkf *s = impl;
    if (s->logits_on_cpu) {
        dv_backend_cpu.logits(s->cpu, t, out);
        return;
    }
    const int64_t V = s->c->n_vocab;
    for (int64_t i = 0; i < V; i++) out[i] = (double)s->logits_host[t * V + i];
}

static void vk_describe(void *impl, char *device, size_t dcap, char *driver, size_t rcap)
{
    struct vkf *s = impl;
    snprintf(device, dcap, "%s", dv_vk_device_name(s->vk));
    snprintf(driver, rcap, "%s", dv_vk_driver_name(s->vk));
}

/* One op alone on the single-op runner (vk_ops.h): the pipelines this
 * engine's forward pass records, with its fault where the forward pass
 * would use it (the op's layer, or everywhere). */
static dv_status vk_run_op(void *impl, const struct dv_op_call *k, void *out)
{
    struct vkf *s = impl;
    const struct dv_config *c = s->c;
    struct dv_vkops *o = s->ops;
    const bool f = k->layer >= 0 ? s->fault_layer < 0 || s->fault_layer == k->layer
                                 : s->fault_layer < 0;
    const int T = k->T, pos0 = k->pos0, H = (int)c->n_head, Hkv = (int)c->n_head_kv;
    const int hd = (int)c->head_dim;
    const struct dv_gguf_tensor *w = k->w;
    float *y = out;
    switch ((enum dv_op)k->op) {
    case DV_OP_GET_ROWS:
        return dv_vkrun_get_rows(o, f, w->type, w->data, w->ne[1], w->ne[0], k->ids, T, y);
    case DV_OP_RMSNORM: {
        float *nv = malloc((size_t)k->n * sizeof *nv);
        if (!nv) return dv_fail(DV_E_NOMEM, "out of memory");
        dv_status st = dv_dequant_row(w->type, w->data, nv, k->n);
        if (!st) st = dv_vkrun_rmsnorm(o, f, k->a, nv, T, (int)k->n, (float)c->rms_eps, y);
        free(nv);
        return st;
    }
    case DV_OP_MATMUL:
        return dv_vkrun_matmul(o, f, w->type, w->data, w->ne[1], w->ne[0], k->a, T, y);
    case DV_OP_ROPE:
        return dv_vkrun_rope(o, f, k->a, T, (int)k->nh, hd, (int)c->n_rot, c->rope_mode, pos0,
                             c->rope_base, y);
    case DV_OP_KQ: return dv_vkrun_kq(o, f, k->a, k->past, k->b, T, pos0, H, Hkv, hd, y);
    case DV_OP_SOFTMAX: return dv_vkrun_softmax(o, f, k->a, H * T, pos0 + T, y);
    case DV_OP_KQV: return dv_vkrun_kqv(o, f, k->a, k->past, k->b, T, pos0, H, Hkv, hd, y);
    case DV_OP_ADD: return dv_vkrun_add(o, k->a, k->b, k->n, y);
    case DV_OP_SILU_MUL: return dv_vkrun_silu_mul(o, k->a, k->b, k->n, y);
    case DV_OP_VIEW:
    case DV_OP_COUNT:
        break;
    }
    return dv_fail(DV_E_USAGE, "op %s alone: no kernel", dv_op_name(k->op));
}

const struct dv_backend dv_backend_vulkan = {
    .name = "vulkan",
    .act_type = DV_TYPE_F32,
    .open = vk_open,
    .forward = vk_forward,
    .logits = vk_logits,
    .free = vk_free,
    .describe = vk_describe,
    .run_op = vk_run_op,
    .forward_from = vk_forward_at,
};
