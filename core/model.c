/* model.c - LLaMA hyperparameters and weight tensors from a GGUF file. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Architectures whose tensors and keys follow llama's, with their RoPE. */
static const struct {
    const char *arch;
    int rope_mode;
} arch_table[] = {
    {"llama", DV_ROPE_NORM},
};

const char *dv_rope_mode_name(int mode)
{
    switch (mode) {
    case DV_ROPE_NORM: return "norm";
    case DV_ROPE_NEOX: return "neox";
    default: return "?";
    }
}

/* Get integer key "<arch>.<suffix>" into *out; must be in [lo, hi]. */
static dv_status get_hp(const struct dv_gguf *g, const char *arch,
                        const char *suffix, int64_t *out, bool required,
                        int64_t lo, int64_t hi)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    dv_status s = dv_gguf_get_i64(g, key, out, required);
    if (s) return s;
    if (*out < lo || *out > hi)
        return dv_fail(DV_E_INPUT, "%s: key '%s' is %lld, expected %lld..%lld",
                       g->path, key, (long long)*out, (long long)lo,
                       (long long)hi);
    return DV_OK;
}

static dv_status get_fp(const struct dv_gguf *g, const char *arch,
                        const char *suffix, double *out, double lo, double hi)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    dv_status s = dv_gguf_get_f64(g, key, out, false);
    if (s) return s;
    if (!(*out >= lo && *out <= hi)) /* also rejects NaN */
        return dv_fail(DV_E_INPUT, "%s: key '%s' is %g, expected %g..%g",
                       g->path, key, *out, lo, hi);
    return DV_OK;
}

static dv_status read_arch(const struct dv_gguf *g, struct dv_config *c)
{
    struct dv_gguf_str a;
    dv_status s = dv_gguf_get_str(g, "general.architecture", &a, true);
    if (s) return s;
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++) {
        if (dv_gguf_str_eq(a, arch_table[i].arch)) {
            snprintf(c->arch, sizeof c->arch, "%s", arch_table[i].arch);
            c->rope_mode = arch_table[i].rope_mode;
            return DV_OK;
        }
    }
    /* shown escaped: the name is the file's, newlines and all (found by
     * tests/fuzz/fuzz_gguf, regress/gguf/arch-newline.gguf) */
    char shown[DV_GGUF_SHOW_BUF];
    return dv_fail(DV_E_INPUT,
                   "%s: architecture '%s' is not supported (diverge runs "
                   "llama-family models: llama)",
                   g->path, dv_gguf_str_show(shown, a));
}

/* Limits: generous for real models, small enough that products of two of
 * them cannot overflow int64 and buffers stay addressable. */
#define DV_MAX_DIM (1 << 20)
#define DV_MAX_LAYERS 4096

dv_status dv_config_read(const struct dv_gguf *g, struct dv_config *c)
{
    memset(c, 0, sizeof *c);
    dv_status s = read_arch(g, c);
    const char *a = c->arch;
    if (!s) s = get_hp(g, a, "embedding_length", &c->d_model, true, 1, DV_MAX_DIM);
    if (!s) s = get_hp(g, a, "block_count", &c->n_layer, true, 1, DV_MAX_LAYERS);
    if (!s) s = get_hp(g, a, "feed_forward_length", &c->n_ff, true, 1, DV_MAX_DIM);
    if (!s) s = get_hp(g, a, "attention.head_count", &c->n_head, true, 1, 4096);
    c->n_head_kv = c->n_head;
    if (!s) s = get_hp(g, a, "attention.head_count_kv", &c->n_head_kv, false, 1, 4096);
    c->n_ctx_train = 2048;
    if (!s) s = get_hp(g, a, "context_length", &c->n_ctx_train, false, 1, 1 << 24);
    if (s) return s;
    if (c->d_model % c->n_head != 0)
        return dv_fail(DV_E_INPUT,
                       "%s: %s.embedding_length %lld is not a multiple of "
                       "%s.attention.head_count %lld",
                       g->path, a, (long long)c->d_model, a, (long long)c->n_head);
    c->head_dim = c->d_model / c->n_head;
    if (c->n_head % c->n_head_kv != 0)
        return dv_fail(DV_E_INPUT,
                       "%s: %s.attention.head_count %lld is not a multiple of "
                       "%s.attention.head_count_kv %lld",
                       g->path, a, (long long)c->n_head, a,
                       (long long)c->n_head_kv);
    int64_t key_len = c->head_dim;
    s = get_hp(g, a, "attention.key_length", &key_len, false, 1, DV_MAX_DIM);
    if (!s && key_len != c->head_dim)
        return dv_fail(DV_E_INPUT,
                       "%s: %s.attention.key_length %lld differs from "
                       "embedding_length / head_count = %lld (unsupported)",
                       g->path, a, (long long)key_len, (long long)c->head_dim);
    c->n_rot = c->head_dim;
    if (!s) s = get_hp(g, a, "rope.dimension_count", &c->n_rot, false, 0, c->head_dim);
    if (!s && c->n_rot % 2 != 0)
        return dv_fail(DV_E_INPUT, "%s: %s.rope.dimension_count %lld is odd",
                       g->path, a, (long long)c->n_rot);
    c->rope_base = 10000.0;
    if (!s) s = get_fp(g, a, "rope.freq_base", &c->rope_base, 1e-3, 1e12);
    c->rms_eps = 1e-5;
    if (!s) s = get_fp(g, a, "attention.layer_norm_rms_epsilon", &c->rms_eps, 0.0, 1.0);
    return s;
}

/* Find tensor `name`, check it has exactly the dims ne0 x ne1 (ne1 = 0:
 * a vector) and a type diverge can dequantize. */
static dv_status need(const struct dv_gguf *g, const char *name, int64_t ne0,
                      int64_t ne1, const struct dv_gguf_tensor **out)
{
    const struct dv_gguf_tensor *t = dv_gguf_find_tensor(g, name);
    if (!t) return dv_fail(DV_E_INPUT, "%s: tensor '%s' is missing", g->path, name);
    uint32_t nd = ne1 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && (ne1 ? t->ne[1] == ne1 : true);
    for (uint32_t i = nd; i < DV_GGUF_MAX_DIMS; i++) ok = ok && t->ne[i] == 1;
    if (!ok)
        return dv_fail(DV_E_INPUT,
                       "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], "
                       "expected [%lld, %lld] from the model config",
                       g->path, name, (long long)t->ne[0], (long long)t->ne[1],
                       (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
                       (long long)(ne1 ? ne1 : 1));
    const struct dv_type_traits *tr = dv_type_traits(t->type);
    if (!tr || !tr->dequant)
        return dv_fail(DV_E_INPUT,
                       "%s: tensor '%s' has type %s, which diverge cannot "
                       "dequantize (f32 f16 bf16 q8_0 q4_0 q4_k q6_k)",
                       g->path, name, dv_type_name(t->type));
    *out = t;
    return DV_OK;
}

static dv_status bind_layer(const struct dv_gguf *g, const struct dv_config *c,
                            int64_t il, struct dv_layer *l)
{
    const int64_t d = c->d_model, F = c->n_ff;
    const int64_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    const struct {
        const char *suffix;
        int64_t ne0, ne1;
        const struct dv_gguf_tensor **dst;
    } want[] = {
        {"attn_norm", d, 0, &l->attn_norm}, {"attn_q", d, qd, &l->wq},
        {"attn_k", d, kvd, &l->wk},         {"attn_v", d, kvd, &l->wv},
        {"attn_output", qd, d, &l->wo},     {"ffn_norm", d, 0, &l->ffn_norm},
        {"ffn_gate", d, F, &l->ffn_gate},   {"ffn_up", d, F, &l->ffn_up},
        {"ffn_down", F, d, &l->ffn_down},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)il,
                 want[i].suffix);
        dv_status s = need(g, name, want[i].ne0, want[i].ne1, want[i].dst);
        if (s) return s;
    }
    return DV_OK;
}

static dv_status bind_tensors(struct dv_model *m)
{
    const struct dv_gguf *g = m->gguf;
    struct dv_config *c = &m->cfg;
    const struct dv_gguf_tensor *te = dv_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return dv_fail(DV_E_INPUT, "%s: tensor 'token_embd.weight' is missing", g->path);
    c->n_vocab = te->ne[1];
    if (c->n_vocab < 1 || c->n_vocab > (1 << 24))
        return dv_fail(DV_E_INPUT, "%s: token_embd.weight has %lld rows (vocab), "
                       "expected 1..%d", g->path, (long long)c->n_vocab, 1 << 24);
    dv_status s = need(g, "token_embd.weight", c->d_model, c->n_vocab, &m->tok_embd);
    if (!s) s = need(g, "output_norm.weight", c->d_model, 0, &m->output_norm);
    if (s) return s;
    c->tied = dv_gguf_find_tensor(g, "output.weight") == NULL;
    if (c->tied) m->output = m->tok_embd;
    else if ((s = need(g, "output.weight", c->d_model, c->n_vocab, &m->output)))
        return s;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return dv_fail(DV_E_NOMEM, "%s: out of memory", g->path);
    for (int64_t il = 0; il < c->n_layer && !s; il++)
        s = bind_layer(g, c, il, &m->layers[il]);
    return s;
}

/* The tokenizer is optional; a vocab that disagrees with the embedding is
 * not (it would print the wrong text for every id). */
static dv_status bind_vocab(struct dv_model *m)
{
    if (dv_gguf_find_key(m->gguf, "tokenizer.ggml.tokens") < 0) return DV_OK;
    dv_status s = dv_vocab_load(m->gguf, &m->vocab);
    if (s) return s;
    if (dv_vocab_size(m->vocab) != m->cfg.n_vocab)
        return dv_fail(DV_E_INPUT,
                       "%s: tokenizer has %d tokens but token_embd.weight has "
                       "%lld rows", m->path, dv_vocab_size(m->vocab),
                       (long long)m->cfg.n_vocab);
    return DV_OK;
}

dv_status dv_model_open(const char *path, struct dv_model **out)
{
    *out = NULL;
    struct dv_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return dv_fail(DV_E_NOMEM, "%s: out of memory", path);
    }
    dv_status s = dv_gguf_open(path, &m->gguf);
    if (!s) s = dv_config_read(m->gguf, &m->cfg);
    if (!s) s = bind_tensors(m);
    if (!s) s = bind_vocab(m);
    if (s) {
        dv_model_free(m);
        return s;
    }
    *out = m;
    return DV_OK;
}

void dv_model_free(struct dv_model *m)
{
    if (!m) return;
    dv_vocab_free(m->vocab);
    dv_gguf_free(m->gguf);
    free(m->layers);
    free(m->path);
    free(m);
}

uint64_t dv_model_f32_bytes(const struct dv_model *m)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const struct dv_gguf_tensor *t = &m->gguf->tensors[i];
        uint64_t e = 1;
        for (int k = 0; k < DV_GGUF_MAX_DIMS; k++) e *= (uint64_t)t->ne[k];
        n += e * 4;
    }
    return n;
}
