/*
 * ops.h - the one list of ops and of the named tensors a forward pass makes.
 *
 * DV_OP_LIST is the op table: the enum, the name table and (in later
 * modules) the per-backend kernel tables are generated from it, so adding an
 * op means adding one line here and the build names every table that lacks
 * it.
 *
 * DV_LAYER_TENSOR_LIST is design.md's naming table for one layer, in
 * execution order: the suffix of "blk.L.<suffix>", the op that produces it,
 * and its shape kind. The forward pass of every backend calls its hook in
 * exactly this order; dumps and comparisons rely on it.
 */
#ifndef DV_OPS_H
#define DV_OPS_H

#include <stdint.h>

/* Each op, where to look when it diverges alone (the verdict's hint) and
 * the ggml ops llama.cpp's graph computes it with (llama_cpp.c builds the
 * same ones for an op alone).
 *        enum      name        hint; ggml */
#define DV_OP_LIST(X)                                                                    \
    X(GET_ROWS, "get_rows", "the embedding rows are dequantized wrongly", "GET_ROWS")   \
    X(VIEW, "view", "no computation: a tensor seen again", "VIEW")                      \
    X(RMSNORM, "rmsnorm", "the norm: its eps, its mean or its weight", "RMS_NORM, MUL") \
    X(MATMUL, "matmul", "the matrix product: its dequantization, tiling or accumulation", \
      "MUL_MAT")                                                                        \
    X(ROPE, "rope", "RoPE: the pairing of dimensions, the angles or the theta base",    \
      "ROPE")                                                                           \
    X(KQ, "kq", "the attention scores: the causal mask, the 1/sqrt(head_dim) scale, "   \
                "the kv head map or the K cache", "MUL_MAT of the K cache view and q")  \
    X(SOFTMAX, "softmax", "the softmax: its max, sum or normalization", "SOFT_MAX")     \
    X(KQV, "kqv", "probabilities times V: the kv head map or the V cache",              \
      "MUL_MAT of the V cache view and the probabilities")                              \
    X(ADD, "add", "the residual add", "ADD")                                            \
    X(SILU_MUL, "silu_mul", "silu(gate) * up", "GLU (swiglu)")

enum dv_op {
#define DV_X(e, s, hint, ggml) DV_OP_##e,
    DV_OP_LIST(DV_X)
#undef DV_X
    DV_OP_COUNT
};

/* "matmul", ...; "?" when out of range. */
const char *dv_op_name(int op);
/* The op named s, or -1. */
int dv_op_from_name(const char *s);
/* Where to look when op diverges alone; "this op" out of range. */
const char *dv_op_hint(int op);
/* The ggml ops llama.cpp computes op with ("MUL_MAT"); "?" out of range. */
const char *dv_op_ggml(int op);

/* Shape kinds of the named tensors (T = tokens of the pass, d = model width,
 * H/Hkv = heads, hd = head dim, n_kv = pos0 + T, V = vocab, F = ffn width). */
enum dv_shape_kind {
    DV_SHAPE_TD,      /* [T, d] */
    DV_SHAPE_THHD,    /* [T, H, hd] */
    DV_SHAPE_THKVHD,  /* [T, Hkv, hd] */
    DV_SHAPE_HTKV,    /* [H, T, n_kv] */
    DV_SHAPE_THD,     /* [T, H*hd] */
    DV_SHAPE_TF,      /* [T, F] */
    DV_SHAPE_TV,      /* [T, V] */
    DV_SHAPE_KIND_COUNT
};

/* Each tensor's op reads the tensors in0 and in1 of the same layer (NONE:
 * no such input) and the layer's weight W(field of struct dv_layer) or
 * none (NOW); KQ and KQV also read the layer's K or V cache of earlier
 * passes. attn_in reads the previous layer's out (layer 0: the token
 * ids, through the embedding). Replay, attribution and the verifier take
 * an op's inputs from here.
 *        enum        suffix        op        shape   in0         in1        weight */
#define DV_LAYER_TENSOR_LIST(X)                                                          \
    X(ATTN_IN, "attn_in", VIEW, TD, NONE, NONE, NOW) /* layer 0: GET_ROWS */            \
    X(ATTN_NORM, "attn_norm", RMSNORM, TD, ATTN_IN, NONE, W(attn_norm))                 \
    X(Q, "q", MATMUL, THHD, ATTN_NORM, NONE, W(wq))                                     \
    X(K, "k", MATMUL, THKVHD, ATTN_NORM, NONE, W(wk))                                   \
    X(V, "v", MATMUL, THKVHD, ATTN_NORM, NONE, W(wv))                                   \
    X(Q_ROPE, "q_rope", ROPE, THHD, Q, NONE, NOW)                                       \
    X(K_ROPE, "k_rope", ROPE, THKVHD, K, NONE, NOW)                                     \
    X(KQ, "kq", KQ, HTKV, Q_ROPE, K_ROPE, NOW)                                          \
    X(KQ_SOFTMAX, "kq_softmax", SOFTMAX, HTKV, KQ, NONE, NOW)                           \
    X(ATTN_OUT, "attn_out", KQV, THD, KQ_SOFTMAX, V, NOW)                               \
    X(ATTN_PROJ, "attn_proj", MATMUL, TD, ATTN_OUT, NONE, W(wo))                        \
    X(FFN_IN, "ffn_in", ADD, TD, ATTN_IN, ATTN_PROJ, NOW)                               \
    X(FFN_NORM, "ffn_norm", RMSNORM, TD, FFN_IN, NONE, W(ffn_norm))                     \
    X(FFN_GATE, "ffn_gate", MATMUL, TF, FFN_NORM, NONE, W(ffn_gate))                    \
    X(FFN_UP, "ffn_up", MATMUL, TF, FFN_NORM, NONE, W(ffn_up))                          \
    X(FFN_ACT, "ffn_act", SILU_MUL, TF, FFN_GATE, FFN_UP, NOW)                          \
    X(FFN_OUT, "ffn_out", MATMUL, TD, FFN_ACT, NONE, W(ffn_down))                       \
    X(OUT, "out", ADD, TD, FFN_IN, FFN_OUT, NOW)

enum dv_layer_tensor {
#define DV_X(e, s, op, sh, i0, i1, w) DV_LT_##e,
    DV_LAYER_TENSOR_LIST(DV_X)
#undef DV_X
    DV_LT_COUNT
};

/* Tensors outside the layers, after the last one: output_norm reads the
 * last layer's out and the model's output_norm, logits output_norm and
 * the output matrix. */
#define DV_GLOBAL_TENSOR_LIST(X)                                             \
    X(OUTPUT_NORM, "output_norm", RMSNORM, TD)                              \
    X(LOGITS, "logits", MATMUL, TV)

enum dv_global_tensor {
#define DV_X(e, s, op, sh) DV_GT_##e,
    DV_GLOBAL_TENSOR_LIST(DV_X)
#undef DV_X
    DV_GT_COUNT
};

/* Suffix ("q_rope") of a layer tensor, or "?". */
const char *dv_layer_tensor_name(int lt);
/* The op producing layer tensor lt at layer `layer` (ATTN_IN is GET_ROWS at
 * layer 0, a VIEW of the previous layer's output elsewhere). */
int dv_layer_tensor_op(int lt, int layer);
int dv_layer_tensor_shape(int lt);
const char *dv_global_tensor_name(int gt);
int dv_global_tensor_op(int gt);
int dv_global_tensor_shape(int gt);

/* Number of named tensors one forward pass of n_layer layers produces. */
int dv_tensors_per_pass(int n_layer);

/* Tensors of a pass by index (execution order): layer tensor lt of layer
 * L is L * DV_LT_COUNT + lt, output_norm and logits follow the layers. */
static inline int dv_tensor_index(int layer, int lt) { return layer * DV_LT_COUNT + lt; }
/* The indices of the tensors tensor i's op reads (in[k] = -1: none; the
 * embedding and the caches are not tensors of the pass). */
void dv_tensor_inputs(int i, int n_layer, int in[2]);
struct dv_model;
struct dv_gguf_tensor;
/* The weight tensor i's op reads (embedding, norm vector or matrix), NULL
 * for none. */
const struct dv_gguf_tensor *dv_tensor_weight(const struct dv_model *m, int i);

#endif
