/*
 * llama_cpp.c - the "llama.cpp" backend: llama.cpp itself runs the pass
 * (its CPU backend, or Vulkan, CUDA, Metal ... as its ggml names them),
 * and its graph's named nodes become diverge's tensors.
 *
 * One llama_context holds the KV cache across passes. A pass rewinds the
 * cache to pos0 (llama_memory_seq_rm) when it overwrites cached positions,
 * decodes its tokens as one batch with every position's logits requested
 * (otherwise llama.cpp keeps only the last token's rows from an unnamed
 * GET_ROWS before the last layer's FFN on), and hands the tensors over
 * after llama_decode returns. ggml's node order is not diverge's (q_rope
 * comes before k, and ggml's scheduler may reorder further), so the
 * wanted tensors are learned before decoding (one round of asks over the
 * table order; want() has no side effects in the hooks diverge has, and a
 * hook that changes its mind later is asked again when the data is handed
 * over), the eval callback asks ggml only for the nodes that are wanted
 * (asking for everything would split the graph at every node and change
 * what runs: fusions, the order of work), copies each into a host buffer
 * converted to diverge's layout (llama_map.h), and the emitter hands them
 * out in diverge's order.
 *
 * Test hook: DIVERGE_LLAMA_CPP_ROPE_BASE=X overrides the RoPE frequency
 * base through the context parameters (a deliberately wrong setting for
 * the tests); the driver description and the dump's attributes say so.
 */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"
#include "error.h"
#include "llama_dl.h"
#include "llama_map.h"
#include "types.h"
#include "vk.h"

#define MAX_ATTRS 16

struct lcpp {
    const struct dv_llama_api *a;
    const struct dv_model *m;
    const struct dv_config *c;
    struct llama_model *model;
    struct llama_context *ctx;
    ggml_backend_dev_t dev;
    ggml_backend_dev_t devs[2]; /* the model's device list, NULL-terminated */
    bool on_cpu;
    bool vk_cpu;  /* a CPU-type Vulkan device (lavapipe), as far as known */
    bool cpu_amx; /* ggml's CPU backend has AMX (cpu_has_amx) */
    ggml_backend_t op_be; /* the device's backend for ops alone (lc_run_op), or NULL */
    int n_batch, n_cached, n_gpu_layers, n_threads, type_kv;
    bool flash, v_rot;
    double rope_base; /* > 0: overridden (test hook) */
    struct llama_batch batch;
    float *logits; /* [n_batch, V] of the last pass */
    /* what a pass captures, by slot (dv_lmap_slot: diverge's order) */
    int n_slots;
    bool *want;     /* [n_slots] asked for, before decoding */
    bool *got;      /* [n_slots] filled by the eval callback */
    bool *seen;     /* [n_slots] a node matched the slot's row this pass */
    size_t *off;    /* [n_slots] offset in arena, in floats */
    float *arena;   /* the converted tensors of the pass */
    size_t arena_cap;
    unsigned char *stage; /* one node's raw bytes */
    size_t stage_cap, stage_max;
    bool skip[DV_LT_COUNT]; /* tensors this configuration does not produce */
    const struct ggml_tensor *pending; /* the node the last ask wanted */
    const struct dv_lmap_row *pending_row[2];
    int pending_slot[2], n_pending;
    struct dv_pass pass;
    dv_status cb_status; /* the first failure inside the callback */
    char cb_msg[512];
    char device[192], driver[512], type_name[16];
    struct dv_backend_attr attrs[MAX_ATTRS];
    int n_attrs;
};

/* ---- the eval callback --------------------------------------------------------- */

/* A failure inside llama_decode: kept, reported when decode returns. */
static void cb_fail(struct lcpp *s, const struct ggml_tensor *t)
{
    if (s->cb_status) return;
    s->cb_status = DV_E_RUNTIME;
    snprintf(s->cb_msg, sizeof s->cb_msg, "llama.cpp node '%.64s' (%s): %s", t->name,
             s->a->ggml_op_name(t->op), dv_errmsg());
}

/* Tensor slot `slot` (dv_lmap_slot) as (layer, which) for the emitter. */
static void slot_tensor(const struct lcpp *s, int slot, int *layer, int *which)
{
    const int n_layer = (int)s->c->n_layer;
    *layer = slot < n_layer * DV_LT_COUNT ? slot / DV_LT_COUNT : -1;
    *which = *layer >= 0 ? slot % DV_LT_COUNT : slot - n_layer * DV_LT_COUNT;
}

/* The diverge shape of slot's tensor in pass p into sh; returns the
 * number of dims, *kind its enum dv_shape_kind. */
static int slot_shape(const struct lcpp *s, int slot, const struct dv_pass *p, int *kind,
                      int64_t sh[4])
{
    int layer, which;
    slot_tensor(s, slot, &layer, &which);
    *kind = layer >= 0 ? dv_layer_tensor_shape(which) : dv_global_tensor_shape(which);
    memset(sh, 0, 4 * sizeof *sh);
    return dv_tensor_shape(*kind, s->c, p->n_tokens, p->pos0 + p->n_tokens, sh);
}

/* The geometry of slot's tensor in the current pass. */
static struct dv_lmap_geom geom(const struct lcpp *s, int slot)
{
    int64_t sh[4];
    int kind;
    const int n = slot_shape(s, slot, &s->pass, &kind, sh);
    struct dv_lmap_geom g = {.T = s->pass.n_tokens, .pos0 = s->pass.pos0, .inner = 1,
                             .kq_scale = 1.0f / sqrtf((float)s->c->head_dim)};
    for (int i = 1; i < n; i++) g.inner *= sh[i];
    g.heads = kind == DV_SHAPE_HTKV ? sh[0] : sh[1];
    g.hd = n == 3 ? sh[2] : 0;
    return g;
}

/* Ask phase: is t a wanted tensor's node? Only the first node matching a
 * slot's row counts. */
static bool cb_ask(struct lcpp *s, struct ggml_tensor *t)
{
    s->n_pending = 0;
    char stem[32];
    int layer, n_rows;
    if (s->cb_status || !dv_lmap_parse_name(t->name, stem, sizeof stem, &layer)) return false;
    const struct dv_lmap_row *r = dv_lmap_rows(&n_rows);
    for (int i = 0; i < n_rows && s->n_pending < 2; i++) {
        if ((int)t->op != r[i].ggml_op || strcmp(stem, r[i].stem)) continue;
        const int slot = dv_lmap_row_slot(&r[i], (int)s->c->n_layer, layer);
        if (slot < 0 || s->seen[slot]) continue; /* not the first such node */
        s->seen[slot] = true;
        if (!s->want[slot]) continue;
        s->pending_row[s->n_pending] = &r[i];
        s->pending_slot[s->n_pending++] = slot;
    }
    s->pending = s->n_pending ? t : NULL;
    return s->n_pending > 0;
}

/* Data phase: copy t to the host and convert it into its slots. */
static dv_status take(struct lcpp *s, struct ggml_tensor *t)
{
    const struct ggml_backend_buffer *buf = t->view_src ? t->view_src->buffer : t->buffer;
    const size_t nbytes = s->a->ggml_nbytes(t);
    if (!buf || !t->data || nbytes == 0 || nbytes > s->stage_max)
        return dv_fail(DV_E_RUNTIME, "%zu bytes%s (at most %zu expected)", nbytes,
                       buf && t->data ? "" : " and no data", s->stage_max);
    if (nbytes > s->stage_cap) { /* grows to the largest node once */
        unsigned char *p = realloc(s->stage, nbytes);
        if (!p) return dv_fail(DV_E_NOMEM, "out of memory");
        s->stage = p, s->stage_cap = nbytes;
    }
    s->a->ggml_backend_tensor_get(t, s->stage, 0, nbytes);
    struct dv_lmap_src src = {.type = (int)t->type, .data = s->stage, .nbytes = nbytes};
    memcpy(src.ne, t->ne, sizeof src.ne);
    memcpy(src.nb, t->nb, sizeof src.nb);
    for (int k = 0; k < s->n_pending; k++) {
        const int slot = s->pending_slot[k];
        const struct dv_lmap_geom g = geom(s, slot);
        dv_status st = dv_lmap_convert(&src, s->pending_row[k]->layout, &g,
                                       s->arena + s->off[slot]);
        if (st) return st;
        s->got[slot] = true;
    }
    return DV_OK;
}

/* ggml_backend_sched_eval_callback. A false answer to the data call
 * would stop the rest of the graph split, so failures are kept instead. */
static bool on_eval(struct ggml_tensor *t, bool ask, void *user)
{
    struct lcpp *s = user;
    if (ask) return cb_ask(s, t);
    if (t == s->pending && !s->cb_status && take(s, t)) cb_fail(s, t);
    return true;
}

/* ---- open ------------------------------------------------------------------------ */

static void lc_free(void *impl)
{
    struct lcpp *s = impl;
    if (!s) return;
    if (s->op_be) s->a->ggml_backend_free(s->op_be);
    if (s->batch.token) s->a->llama_batch_free(s->batch);
    if (s->ctx) s->a->llama_free(s->ctx);
    if (s->model) s->a->llama_model_free(s->model);
    free(s->logits), free(s->want), free(s->got), free(s->seen), free(s->off);
    free(s->arena), free(s->stage);
    free(s);
}

/* Is ggml device d lavapipe or another CPU-type Vulkan device? Known only
 * when diverge made them visible (llama_dl.c). */
static bool vk_on_cpu(const struct dv_llama_api *a, ggml_backend_dev_t d)
{
    int idx;
    char tail;
    return a->vk_env_ours &&
           sscanf(a->ggml_backend_dev_name(d), "Vulkan%d%c", &idx, &tail) == 1 && idx >= 0 &&
           idx < a->n_vk && a->vk_types[idx] == VK_PHYSICAL_DEVICE_TYPE_CPU;
}

static dv_status no_device(const struct dv_llama_api *a, const char *want)
{
    char list[768] = "";
    size_t o = 0;
    const size_t n = a->ggml_backend_dev_count();
    for (size_t i = 0; i < n && o < sizeof list; i++) {
        ggml_backend_dev_t d = a->ggml_backend_dev_get(i);
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s (%.80s)", i ? ", " : "",
                              a->ggml_backend_dev_name(d), a->ggml_backend_dev_description(d));
    }
    return dv_fail(DV_E_USAGE, "no device '%.64s'; this llama.cpp has %s", want,
                   n ? list : "no devices");
}

/* The device named `want` (as ggml names it, any case), or by default the
 * first GPU that is not a CPU-type Vulkan device, else the CPU. */
static dv_status pick_device(const struct dv_llama_api *a, const char *want,
                             ggml_backend_dev_t *out)
{
    const size_t n = a->ggml_backend_dev_count();
    ggml_backend_dev_t cpu = NULL;
    *out = NULL;
    for (size_t i = 0; i < n && !*out; i++) {
        ggml_backend_dev_t d = a->ggml_backend_dev_get(i);
        const enum ggml_backend_dev_type t = a->ggml_backend_dev_type(d);
        if (want && *want) {
            if (!strcasecmp(a->ggml_backend_dev_name(d), want)) *out = d;
        } else if ((t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) &&
                   !vk_on_cpu(a, d)) {
            *out = d;
        }
        if (t == GGML_BACKEND_DEVICE_TYPE_CPU && !cpu) cpu = d;
    }
    if (!*out && want && *want) return no_device(a, want);
    if (!*out) *out = cpu;
    return *out ? DV_OK : dv_fail(DV_E_DEVICE, "llama.cpp has no CPU device");
}

/* The test hook's RoPE base, 0 when DIVERGE_LLAMA_CPP_ROPE_BASE is unset. */
static dv_status rope_override(double *base)
{
    const char *v = getenv("DIVERGE_LLAMA_CPP_ROPE_BASE");
    *base = 0;
    if (!v || !*v) return DV_OK;
    char *end;
    *base = strtod(v, &end);
    if (*end || !isfinite(*base) || *base <= 0 || *base > 1e30)
        return dv_fail(DV_E_USAGE, "DIVERGE_LLAMA_CPP_ROPE_BASE='%.32s' is not a positive "
                       "number", v);
    return DV_OK;
}

/* Check the options and work out what goes to llama.cpp. */
static dv_status settle(struct lcpp *s, const struct dv_engine_opts *o)
{
    const int n_layer = (int)s->c->n_layer;
    if (o->kv_type != DV_TYPE_F32 && o->kv_type != DV_TYPE_F16 && o->kv_type != DV_TYPE_Q8_0)
        return dv_fail(DV_E_USAGE, "KV cache type %s: f32, f16 or q8_0",
                       dv_type_name(o->kv_type));
    if (o->flash_attn < 0 || o->flash_attn > 1 || o->n_threads < 0 || o->n_threads > 4096 ||
        o->gpu_layers < -1)
        return dv_fail(DV_E_USAGE, "bad flash_attn %d, n_threads %d or gpu_layers %d",
                       o->flash_attn, o->n_threads, o->gpu_layers);
    if (s->on_cpu && o->gpu_layers)
        return dv_fail(DV_E_USAGE, "a layer split needs a GPU device, not the CPU");
    /* llama.cpp's n_gpu_layers: the output layer and the last N-1 layers */
    s->n_gpu_layers = s->on_cpu || o->gpu_layers < 0 ? 0
                      : o->gpu_layers == 0 || o->gpu_layers > n_layer ? n_layer + 1
                                                                      : o->gpu_layers;
    s->type_kv = o->kv_type;
    s->flash = o->flash_attn == 1;
    s->n_threads = o->n_threads;
    /* llama-kv-cache.cpp: a quantized V cache of heads that are multiples
     * of 64 is stored Hadamard-rotated, and "kqv_out-L" is named before
     * the rotation is undone: that node is not diverge's attn_out */
    const char *no_rot = getenv("LLAMA_ATTN_ROT_DISABLE");
    s->v_rot = o->kv_type == DV_TYPE_Q8_0 && s->c->head_dim % 64 == 0 &&
               !(no_rot && atoi(no_rot));
    s->skip[DV_LT_KQ] = s->skip[DV_LT_KQ_SOFTMAX] = s->flash; /* one fused node */
    s->skip[DV_LT_ATTN_OUT] = s->v_rot;
    return rope_override(&s->rope_base);
}

/* The llama.cpp model and context for s's settings. */
static dv_status make_context(struct lcpp *s, const struct dv_engine_opts *o)
{
    const struct dv_llama_api *a = s->a;
    struct llama_model_params mp = a->llama_model_default_params();
    s->devs[0] = s->on_cpu ? NULL : s->dev;
    mp.devices = s->devs;
    mp.n_gpu_layers = s->n_gpu_layers;
    mp.load_mode = LLAMA_LOAD_MODE_MMAP;
    dv_llama_log_clear();
    if (!(s->model = a->llama_model_load_from_file(s->m->path, mp))) {
        dv_llama_log_last(s->cb_msg, sizeof s->cb_msg);
        return dv_fail(DV_E_RUNTIME, "cannot load %s: %s", s->m->path,
                       s->cb_msg[0] ? s->cb_msg : "(no message)");
    }
    struct llama_context_params cp = a->llama_context_default_params();
    cp.n_ctx = (uint32_t)o->n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t)o->n_batch; /* one decode, one graph */
    cp.n_seq_max = 1;
    cp.type_k = cp.type_v = (enum ggml_type)s->type_kv;
    cp.flash_attn_type = s->flash ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                                  : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.op_offload = !s->on_cpu;
    if (s->n_threads) {
        cp.n_threads = cp.n_threads_batch = s->n_threads;
    } else { /* llama.cpp's default (4), but not more than the CPUs we may use */
        cpu_set_t set;
        const int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
        if (n > 0 && n < cp.n_threads) cp.n_threads = cp.n_threads_batch = n;
    }
    s->n_threads = cp.n_threads;
    if (s->rope_base > 0) cp.rope_freq_base = (float)s->rope_base;
    cp.cb_eval = on_eval;
    cp.cb_eval_user_data = s;
    cp.no_perf = true;
    if (!(s->ctx = a->llama_init_from_model(s->model, cp))) {
        dv_llama_log_last(s->cb_msg, sizeof s->cb_msg);
        /* a quantized cache is refused without flash attention (V) or
         * for heads its blocks do not divide: the caller's choice, said in
         * llama.cpp's words */
        const bool usage = s->type_kv == DV_TYPE_Q8_0;
        return dv_fail(usage ? DV_E_USAGE : DV_E_RUNTIME, "cannot make a context: %s",
                       s->cb_msg[0] ? s->cb_msg : "(no message)");
    }
    return DV_OK;
}

/* llama.cpp must see the model diverge sees. */
static dv_status check_config(const struct lcpp *s)
{
    const struct dv_llama_api *a = s->a;
    const struct dv_config *c = s->c;
    const int64_t got[] = {a->llama_model_n_layer(s->model), a->llama_model_n_embd(s->model),
                           a->llama_model_n_head(s->model), a->llama_model_n_head_kv(s->model),
                           a->llama_vocab_n_tokens(a->llama_model_get_vocab(s->model))};
    const int64_t want[] = {c->n_layer, c->d_model, c->n_head, c->n_head_kv, c->n_vocab};
    static const char *const what[] = {"layers", "n_embd", "heads", "kv heads", "vocab"};
    for (size_t i = 0; i < sizeof got / sizeof got[0]; i++)
        if (got[i] != want[i])
            return dv_fail(DV_E_INPUT, "%s: llama.cpp reads %lld %s where diverge reads %lld",
                           s->m->path, (long long)got[i], what[i], (long long)want[i]);
    return DV_OK;
}

static dv_status alloc_state(struct lcpp *s)
{
    const struct dv_config *c = s->c;
    const size_t B = (size_t)s->n_batch, V = (size_t)c->n_vocab;
    s->n_slots = dv_lmap_n_slots((int)c->n_layer);
    const size_t n = (size_t)s->n_slots;
    s->logits = malloc(B * V * sizeof *s->logits);
    s->want = calloc(n, sizeof *s->want);
    s->got = calloc(n, sizeof *s->got);
    s->seen = calloc(n, sizeof *s->seen);
    s->off = calloc(n, sizeof *s->off);
    /* the largest node a pass may hand us: scores over the whole (padded)
     * cache, or the widest row; anything larger is refused */
    size_t wide = (size_t)(c->d_model > c->n_ff ? c->d_model : c->n_ff);
    wide = wide > V ? wide : V;
    wide = wide > (size_t)(c->n_head * c->head_dim) ? wide : (size_t)(c->n_head * c->head_dim);
    const size_t scores = (size_t)c->n_head * B * (size_t)s->a->llama_n_ctx(s->ctx);
    s->stage_max = 4 * (scores > B * wide ? scores : B * wide);
    s->batch = s->a->llama_batch_init((int32_t)B, 0, 1);
    if (!s->logits || !s->want || !s->got || !s->seen || !s->off || !s->batch.token)
        return dv_fail(DV_E_NOMEM, "out of memory");
    return DV_OK;
}

static void describe_run(struct lcpp *s);

/* Does the CPU backend ggml loaded (one build per x86 level) have AMX?
 * Then its AMX buffer type multiplies f16 weights with f32 activations
 * (act_quant amx). Its features list says so (ggml-cpu.cpp). */
static bool cpu_has_amx(const struct dv_llama_api *a)
{
    for (size_t i = 0; i < a->ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = a->ggml_backend_dev_get(i);
        if (a->ggml_backend_dev_type(d) != GGML_BACKEND_DEVICE_TYPE_CPU) continue;
        ggml_backend_reg_t reg = a->ggml_backend_dev_backend_reg(d);
        ggml_backend_get_features_t get =
            reg ? (ggml_backend_get_features_t)a->ggml_backend_reg_get_proc_address(
                      reg, "ggml_backend_get_features")
                : NULL;
        for (const struct ggml_backend_feature *f = get ? get(reg) : NULL; f && f->name; f++)
            if (!strcmp(f->name, "AMX_INT8") && f->value && strcmp(f->value, "0")) return true;
        return false;
    }
    return false;
}

static dv_status lc_open(const struct dv_model *m, const struct dv_engine_opts *o, void **impl)
{
    const struct dv_llama_api *a;
    dv_status st = dv_llama_load(&a);
    if (st) return st;
    struct lcpp *s = calloc(1, sizeof *s);
    if (!s) return dv_fail(DV_E_NOMEM, "out of memory");
    s->a = a, s->m = m, s->c = &m->cfg, s->n_batch = o->n_batch;
    st = pick_device(a, o->device, &s->dev);
    if (!st) {
        s->on_cpu = a->ggml_backend_dev_type(s->dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
        s->vk_cpu = vk_on_cpu(a, s->dev);
        s->cpu_amx = cpu_has_amx(a);
        st = settle(s, o);
    }
    if (!st) st = make_context(s, o);
    if (!st) st = check_config(s);
    if (!st) st = alloc_state(s);
    if (st) {
        lc_free(s);
        return st;
    }
    describe_run(s);
    *impl = s;
    return DV_OK;
}

/* ---- the pass ---------------------------------------------------------------------- */

/* Before decoding: what the hook wants, and room for it in the arena. */
static dv_status plan(struct lcpp *s, const struct dv_pass *p, const struct dv_hook *h)
{
    struct dv_emitter em;
    dv_emitter_init(&em, h, p, s->c, DV_TYPE_F32);
    size_t total = 0;
    for (int slot = 0; slot < s->n_slots; slot++) {
        int layer, which;
        slot_tensor(s, slot, &layer, &which);
        const bool produced = layer < 0 || !s->skip[which];
        s->want[slot] = dv_emitter_ask(&em, layer, which) && produced;
        s->got[slot] = false, s->seen[slot] = 0, s->off[slot] = total;
        if (s->want[slot]) {
            int64_t sh[4], e = 1;
            int kind;
            const int n = slot_shape(s, slot, p, &kind, sh);
            for (int i = 0; i < n; i++) e *= sh[i];
            total += (size_t)e;
        }
    }
    if (total > s->arena_cap) { /* grows with the cache; never per tensor */
        float *na = realloc(s->arena, total * sizeof *na);
        if (!na) return dv_fail(DV_E_NOMEM, "out of memory for %zu captured values", total);
        s->arena = na, s->arena_cap = total;
    }
    return DV_OK;
}

/* The row that names slot's tensor, for messages. */
static const struct dv_lmap_row *slot_row(const struct lcpp *s, int slot)
{
    int n;
    const struct dv_lmap_row *r = dv_lmap_rows(&n);
    for (int i = 0; i < n; i++)
        for (int layer = -1; layer < (int)s->c->n_layer; layer++)
            if (dv_lmap_row_slot(&r[i], (int)s->c->n_layer, layer) == slot) return &r[i];
    return NULL;
}

/* After decoding: every tensor, in diverge's order. */
static dv_status hand_over(struct lcpp *s, const struct dv_pass *p, const struct dv_hook *h)
{
    struct dv_emitter em;
    dv_emitter_init(&em, h, p, s->c, DV_TYPE_F32);
    for (int slot = 0; slot < s->n_slots; slot++) {
        int layer, which;
        slot_tensor(s, slot, &layer, &which);
        if (!dv_emitter_ask(&em, layer, which)) continue;
        if (s->got[slot]) {
            dv_status st = dv_emitter_take(&em, s->arena + s->off[slot]);
            if (st) return st;
        } else if (s->want[slot]) { /* asked for, and the graph had no such node */
            const struct dv_lmap_row *r = slot_row(s, slot);
            return dv_fail(DV_E_RUNTIME, "%s: no node '%s%s' (%s) in llama.cpp's graph",
                           em.name, r ? r->stem : "?", r && r->scope != DV_LMAP_FIRST &&
                           r->scope != DV_LMAP_GLOBAL ? "-L" : "", r ? r->op_name : "?");
        }
        /* else not produced in this configuration, or wanted only now */
    }
    return DV_OK;
}

/* Decode the pass's tokens, every position an output. */
static dv_status decode(struct lcpp *s, const struct dv_pass *p)
{
    const struct dv_llama_api *a = s->a;
    if (p->pos0 < s->n_cached &&
        !a->llama_memory_seq_rm(a->llama_get_memory(s->ctx), 0, p->pos0, -1))
        return dv_fail(DV_E_RUNTIME, "cannot drop cached positions from %d", p->pos0);
    s->n_cached = p->pos0 + p->n_tokens; /* what a failed decode may have touched */
    struct llama_batch *b = &s->batch;
    b->n_tokens = p->n_tokens;
    for (int t = 0; t < p->n_tokens; t++) {
        b->token[t] = p->tokens[t];
        b->pos[t] = p->pos0 + t;
        b->n_seq_id[t] = 1;
        b->seq_id[t][0] = 0;
        b->logits[t] = 1;
    }
    s->cb_status = DV_OK;
    dv_llama_log_clear();
    const int32_t r = a->llama_decode(s->ctx, *b);
    if (s->cb_status) return dv_fail(s->cb_status, "%s", s->cb_msg);
    if (r != 0) {
        char line[256];
        dv_llama_log_last(line, sizeof line);
        return dv_fail(DV_E_RUNTIME, "llama_decode returned %d%s%s", (int)r,
                       line[0] ? ": " : "", line);
    }
    const size_t V = (size_t)s->c->n_vocab;
    for (int t = 0; t < p->n_tokens; t++) {
        const float *l = a->llama_get_logits_ith(s->ctx, t);
        if (!l) return dv_fail(DV_E_RUNTIME, "llama.cpp has no logits for token %d", t);
        memcpy(s->logits + (size_t)t * V, l, V * sizeof *l);
    }
    return DV_OK;
}

static dv_status lc_forward(void *impl, const struct dv_pass *p, const struct dv_hook *h)
{
    struct lcpp *s = impl;
    s->pass = *p;
    dv_status st = plan(s, p, h);
    if (!st) st = decode(s, p);
    return st ? st : hand_over(s, p, h);
}

static void lc_logits(void *impl, int t, double *out)
{
    const struct lcpp *s = impl;
    const int64_t V = s->c->n_vocab;
    for (int64_t i = 0; i < V; i++) out[i] = (double)s->logits[t * V + i];
}

/* ---- description ------------------------------------------------------------------ */

static void add_str(struct lcpp *s, const char *key, const char *v)
{
    if (s->n_attrs < MAX_ATTRS && v)
        s->attrs[s->n_attrs++] = (struct dv_backend_attr){.key = key, .kind = DV_BATTR_STR,
                                                          .str = v};
}

static void add_int(struct lcpp *s, const char *key, int64_t v)
{
    if (s->n_attrs < MAX_ATTRS)
        s->attrs[s->n_attrs++] = (struct dv_backend_attr){.key = key, .kind = DV_BATTR_INT,
                                                          .i = v};
}

static void describe_run(struct lcpp *s)
{
    const struct dv_llama_api *a = s->a;
    ggml_backend_reg_t reg = a->ggml_backend_dev_backend_reg(s->dev);
    const char *backend = reg ? a->ggml_backend_reg_name(reg) : "?";
    snprintf(s->device, sizeof s->device, "%s: %s", a->ggml_backend_dev_name(s->dev),
             a->ggml_backend_dev_description(s->dev));
    int o = snprintf(s->driver, sizeof s->driver, "llama.cpp, ggml %s (commit %s)%s%s, "
                     "ggml backend %s", a->ggml_version(), a->ggml_commit(),
                     a->release[0] ? ", " : "", a->release, backend);
    if (s->rope_base > 0 && o > 0 && (size_t)o < sizeof s->driver)
        snprintf(s->driver + o, sizeof s->driver - (size_t)o, ", RoPE base overridden to %g "
                 "(DIVERGE_LLAMA_CPP_ROPE_BASE)", s->rope_base);
    snprintf(s->type_name, sizeof s->type_name, "%s", dv_type_name(s->type_kv));
    add_str(s, "llama_cpp_release", a->release[0] ? a->release : NULL);
    add_str(s, "llama_cpp_libdir", a->libdir);
    add_str(s, "ggml_version", a->ggml_version());
    add_str(s, "ggml_commit", a->ggml_commit());
    add_str(s, "ggml_device", a->ggml_backend_dev_name(s->dev));
    add_str(s, "ggml_device_description", a->ggml_backend_dev_description(s->dev));
    add_str(s, "ggml_backend", backend);
    add_str(s, "llama_cpp_type_k", s->type_name);
    add_str(s, "llama_cpp_type_v", s->type_name);
    add_str(s, "llama_cpp_flash_attn", s->flash ? "on" : "off");
    add_int(s, "llama_cpp_n_gpu_layers", s->n_gpu_layers);
    add_int(s, "llama_cpp_n_threads", s->n_threads);
    if (s->rope_base > 0 && s->n_attrs < MAX_ATTRS)
        s->attrs[s->n_attrs++] = (struct dv_backend_attr){
            .key = "llama_cpp_rope_base_override", .kind = DV_BATTR_REAL, .r = s->rope_base};
}

static void lc_describe(void *impl, char *device, size_t dcap, char *driver, size_t rcap)
{
    const struct lcpp *s = impl;
    snprintf(device, dcap, "%s", s->device);
    snprintf(driver, rcap, "%s", s->driver);
}

/* ggml-vulkan multiplies a weight matrix with at most this many tokens in
 * its matrix-vector kernels, which read the activations as f32 and sum in
 * f32 (mul_mat_vec_max_cols, ggml_vk_mul_mat); wider products take mul_mm,
 * whose f16 variants round the activations and sum in f16. */
#define VK_MATVEC_MAX_COLS 8

/* What llama.cpp computes on its device, as measured with this release
 * (tests/integration/llama_cpp.sh, tests/unit/test_cpu_ops.c): ggml's CPU
 * backend rounds the second operand of every product to its vec_dot_type
 * (act_quant auto, attention as the cache type wants), except f16 weights
 * on a CPU with AMX (act_quant amx). Its Vulkan backend
 * on lavapipe (the CPU-type device measured; it has f16 arithmetic but no
 * cooperative matrices or integer dot products) multiplies the weights of
 * passes of up to 8 tokens in f32 and rounds the attention products as
 * attn_quant vk says, with an f32 or f16 cache and without flash
 * attention. Other devices, a q8_0 cache, flash attention, longer passes
 * and a model split between two devices: unknown. */
static void lc_arith(void *impl, struct dv_arith *a)
{
    const struct lcpp *s = impl;
    const int full = (int)s->c->n_layer + 1;
    a->kv_type = s->type_kv;
    a->attn_quant = DV_ATTNQ_AUTO;
    a->act_quant = -1;
    if (s->on_cpu || s->n_gpu_layers == 0) {
        a->act_quant = s->cpu_amx ? DV_ACTQ_AMX : DV_ACTQ_AUTO;
    } else if (s->vk_cpu && s->n_gpu_layers == full && !s->flash &&
               s->type_kv != DV_TYPE_Q8_0 && s->n_batch <= VK_MATVEC_MAX_COLS) {
        a->act_quant = DV_ACTQ_NONE;
        a->attn_quant = DV_ATTNQ_VK;
    }
}

/* ---- one op alone: a one-op ggml graph on the run's device ---------------- */

/* A tensor of ctx: type t, ggml's ne (innermost first). */
static struct ggml_tensor *lc_tensor(const struct dv_llama_api *a, struct ggml_context *ctx,
                                     int t, int n, int64_t ne0, int64_t ne1, int64_t ne2)
{
    const int64_t ne[3] = {ne0, ne1, ne2};
    return a->ggml_new_tensor(ctx, (enum ggml_type)t, n, ne);
}

/* The attention products need the cache views as llama.cpp makes them:
 * not built. */
static bool lc_has_op(void *impl, int op)
{
    return op != DV_OP_KQ && op != DV_OP_KQV;
}

/* Op k alone on the ggml device the run uses, as llama.cpp's graph builds
 * it (llama-graph.cpp, the llama models): rms_norm times the norm weight,
 * mul_mat of the model's weight in its own type (a copy of the GGUF
 * bytes, in a plain device buffer: no repacked layout), rope_ext with the
 * model's RoPE parameters (and the test hook's base), soft_max_ext of the
 * scaled, masked scores, add, swiglu_split, get_rows (lc_has_op). */
static dv_status lc_run_op(void *impl, const struct dv_op_call *k, void *out)
{
    struct lcpp *s = impl;
    const struct dv_llama_api *a = s->a;
    const struct dv_config *c = s->c;
    const int64_t T = k->T, H = c->n_head, hd = c->head_dim, n_kv = (int64_t)k->pos0 + k->T;
    const struct dv_gguf_tensor *w = k->w;
    if (!s->op_be && !(s->op_be = a->ggml_backend_dev_init(s->dev, NULL)))
        return dv_fail(DV_E_DEVICE, "llama.cpp: cannot start %s for an op alone", s->device);
    struct ggml_init_params ip = {.mem_size = 16 * a->ggml_tensor_overhead() +
                                              a->ggml_graph_overhead(),
                                  .mem_buffer = NULL, .no_alloc = true};
    struct ggml_context *ctx = a->ggml_init(ip);
    if (!ctx) return dv_fail(DV_E_NOMEM, "llama.cpp: no ggml context");
    struct ggml_tensor *in[3] = {NULL, NULL, NULL}, *y = NULL;
    const void *data[3] = {k->a, k->b, NULL};
    int32_t *pos = NULL;
    switch ((enum dv_op)k->op) {
    case DV_OP_GET_ROWS:
        in[0] = lc_tensor(a, ctx, w->type, 2, w->ne[0], w->ne[1], 1);
        in[1] = lc_tensor(a, ctx, GGML_TYPE_I32, 1, T, 1, 1);
        data[0] = w->data, data[1] = k->ids;
        y = a->ggml_get_rows(ctx, in[0], in[1]);
        break;
    case DV_OP_RMSNORM:
        in[0] = lc_tensor(a, ctx, GGML_TYPE_F32, 2, k->n, T, 1);
        in[1] = lc_tensor(a, ctx, w->type, 1, w->ne[0], 1, 1);
        data[1] = w->data;
        y = a->ggml_mul(ctx, a->ggml_rms_norm(ctx, in[0], c->rms_eps), in[1]);
        break;
    case DV_OP_MATMUL:
        in[0] = lc_tensor(a, ctx, w->type, 2, w->ne[0], w->ne[1], 1);
        in[1] = lc_tensor(a, ctx, GGML_TYPE_F32, 2, w->ne[0], T, 1);
        data[0] = w->data, data[1] = k->a;
        y = a->ggml_mul_mat(ctx, in[0], in[1]);
        break;
    case DV_OP_ROPE:
        in[0] = lc_tensor(a, ctx, GGML_TYPE_F32, 3, hd, k->nh, T);
        in[1] = lc_tensor(a, ctx, GGML_TYPE_I32, 1, T, 1, 1);
        if (!(pos = malloc((size_t)T * sizeof *pos))) break;
        for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(k->pos0 + t);
        data[1] = pos;
        y = a->ggml_rope_ext(ctx, in[0], in[1], NULL, (int)c->n_rot,
                             c->rope_mode == DV_ROPE_NEOX ? GGML_ROPE_TYPE_NEOX : 0,
                             (int)c->n_ctx_train,
                             (float)(s->rope_base > 0 ? s->rope_base : c->rope_base), 1.0f,
                             0.0f, 1.0f, 32.0f, 1.0f);
        break;
    case DV_OP_SOFTMAX:
        in[0] = lc_tensor(a, ctx, GGML_TYPE_F32, 3, n_kv, T, H);
        y = a->ggml_soft_max_ext(ctx, in[0], NULL, 1.0f, 0.0f);
        break;
    case DV_OP_ADD:
    case DV_OP_SILU_MUL:
        in[0] = lc_tensor(a, ctx, GGML_TYPE_F32, 1, k->n, 1, 1);
        in[1] = lc_tensor(a, ctx, GGML_TYPE_F32, 1, k->n, 1, 1);
        y = k->op == DV_OP_ADD ? a->ggml_add(ctx, in[0], in[1])
                               : a->ggml_swiglu_split(ctx, in[0], in[1]);
        break;
    case DV_OP_KQ:
    case DV_OP_KQV:
    case DV_OP_VIEW:
    case DV_OP_COUNT:
        break;
    }
    dv_status st = y ? DV_OK : dv_fail(DV_E_NOMEM, "llama.cpp: cannot build op %s",
                                       dv_op_name(k->op));
    struct ggml_cgraph *gf = y ? a->ggml_new_graph(ctx) : NULL;
    ggml_backend_buffer_t buf = NULL;
    if (!st && gf) {
        a->ggml_build_forward_expand(gf, y);
        if (!(buf = a->ggml_backend_alloc_ctx_tensors(ctx, s->op_be)))
            st = dv_fail(DV_E_NOMEM, "llama.cpp: cannot allocate op %s", dv_op_name(k->op));
    }
    for (int i = 0; !st && i < 3 && in[i]; i++)
        a->ggml_backend_tensor_set(in[i], data[i], 0, a->ggml_nbytes(in[i]));
    if (!st && a->ggml_backend_graph_compute(s->op_be, gf) != GGML_STATUS_SUCCESS)
        st = dv_fail(DV_E_DEVICE, "llama.cpp: op %s failed on %s", dv_op_name(k->op),
                     s->device);
    if (!st) a->ggml_backend_tensor_get(y, out, 0, a->ggml_nbytes(y));
    if (buf) a->ggml_backend_buffer_free(buf);
    a->ggml_free(ctx);
    free(pos);
    return st;
}

static const struct dv_backend_attr *lc_attrs(void *impl, int *n)
{
    struct lcpp *s = impl;
    *n = s->n_attrs;
    return s->attrs;
}

const struct dv_backend dv_backend_llama_cpp = {
    .name = "llama.cpp",
    .act_type = DV_TYPE_F32,
    .open = lc_open,
    .forward = lc_forward,
    .logits = lc_logits,
    .free = lc_free,
    .describe = lc_describe,
    .attrs = lc_attrs,
    .arith = lc_arith,
    .run_op = lc_run_op,
    .has_op = lc_has_op,
};
