/*
 * model.h - a LLaMA-family model: hyperparameters and weights of a GGUF file.
 *
 * The weights stay in the file's mapping in their stored type; backends
 * dequantize what they need. Validation happens once, here: after
 * dv_model_open() succeeds every tensor exists with the shape and a type the
 * backends can read, and every hyperparameter is consistent.
 */
#ifndef DV_MODEL_H
#define DV_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "vocab.h"

enum dv_rope_mode {
    DV_ROPE_NORM, /* adjacent pairs (2i, 2i+1): arch llama */
    DV_ROPE_NEOX, /* pairs (i, i + n_rot/2): GPT-NeoX, qwen2, ... */
    DV_ROPE_MODE_COUNT
};
const char *dv_rope_mode_name(int mode);

struct dv_config {
    char arch[32];
    int64_t n_vocab;   /* rows of token_embd */
    int64_t d_model;   /* embedding_length */
    int64_t n_layer;   /* block_count */
    int64_t n_head;    /* attention.head_count */
    int64_t n_head_kv; /* attention.head_count_kv (default n_head) */
    int64_t head_dim;  /* d_model / n_head */
    int64_t n_ff;      /* feed_forward_length */
    int64_t n_rot;     /* rope.dimension_count (default head_dim) */
    int64_t n_ctx_train; /* context_length */
    double rope_base;  /* rope.freq_base (default 10000) */
    double rms_eps;    /* attention.layer_norm_rms_epsilon (as stored, f32) */
    int rope_mode;     /* enum dv_rope_mode */
    bool tied;         /* no output.weight: logits use token_embd */
};

/* Weight tensors of one layer, borrowed from the GGUF. Shapes in ne order
 * (ne[0] contiguous): norms [d]; q [d, H*hd]; k, v [d, Hkv*hd];
 * o [H*hd, d]; gate, up [d, F]; down [F, d]. */
struct dv_layer {
    const struct dv_gguf_tensor *attn_norm, *wq, *wk, *wv, *wo;
    const struct dv_gguf_tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down;
};

struct dv_model {
    char *path;
    struct dv_gguf *gguf;      /* owned */
    struct dv_vocab *vocab;    /* owned; NULL when the file has none */
    struct dv_config cfg;
    const struct dv_gguf_tensor *tok_embd;    /* [d, V] */
    const struct dv_gguf_tensor *output_norm; /* [d] */
    const struct dv_gguf_tensor *output;      /* [d, V]; == tok_embd if tied */
    struct dv_layer *layers;                  /* [n_layer] */
};

/* Open a GGUF model and validate it. DV_E_INPUT "PATH: ..." naming the key or
 * tensor that is missing or wrong. A file without tokenizer metadata is
 * fine (vocab stays NULL: token ids work, text does not); tokenizer metadata
 * that is malformed or disagrees with the embedding is an error. */
dv_status dv_model_open(const char *path, struct dv_model **out);
void dv_model_free(struct dv_model *m);

/* Read and check the config of g (used by dv_model_open; exposed for tests
 * and `diverge info`). */
dv_status dv_config_read(const struct dv_gguf *g, struct dv_config *cfg);

/* Bytes the model's weights take as f32 (the size goals are stated in it). */
uint64_t dv_model_f32_bytes(const struct dv_model *m);

#endif
