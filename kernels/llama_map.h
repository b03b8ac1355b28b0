/*
 * llama_map.h - which node of llama.cpp's LLaMA graph is which diverge
 * tensor, and how its bytes become diverge's layout.
 *
 * DV_LLAMA_MAP is the one table: a row names a ggml node by the name
 * llama.cpp's graph builder gives it (its callback names "stem-L" inside
 * layer L, a bare "stem" outside), its ggml op (names repeat: "Qcur-L" is
 * the MUL_MAT, a RESHAPE and the ROPE), the diverge tensor it is, and the
 * layout conversion. The backend (llama_cpp.c), the unit tests and
 * docs/tensors.md follow the rows; nothing else enumerates them.
 *
 * Names and ops as the llama.cpp of ggml 0.25.1, commit 0ad4a86 (npm
 * node-llama-cpp 3.22.1, scripts/fetch-llama-cpp) builds them in src/models/llama.cpp and src/llama-graph.cpp:
 * llm_graph_context::cb names the node it is given (a later cb on the same
 * node renames it: the FFN's residual add is named "ffn_out-L" and then
 * "l_out-L"), build_norm's weight MUL carries the caller's name, the
 * embedding's GET_ROWS is "embd" (not "inp_embd", the f32 input leaf of
 * the vector-embedding path), and with flash attention "kqv_out-L" is the
 * RESHAPE of the fused FLASH_ATTN_EXT node.
 *
 * Only nodes named by a callback are rows: views ggml makes of them get
 * suffixes ("Qcur-0 (view)", "(permuted)", "(reshaped)") and never match.
 */
#ifndef DV_LLAMA_MAP_H
#define DV_LLAMA_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diverge.h"
#include "ggml.h"
#include "ops.h"

/* Where a row's tensor sits. */
enum dv_lmap_scope {
    DV_LMAP_LAYER,  /* "stem-L" is blk.L.<tensor> */
    DV_LMAP_NEXT,   /* "stem-L" is also blk.(L+1).<tensor> (a view), L+1 < n_layer */
    DV_LMAP_FIRST,  /* "stem" is blk.0.<tensor> */
    DV_LMAP_GLOBAL, /* "stem" is the global <tensor> */
    DV_LMAP_SCOPE_COUNT
};

/* How ggml's ne[] (innermost first) turns into the diverge shape
 * (outermost first). */
enum dv_lmap_layout {
    DV_LMAP_ROWS,   /* ne [X, T]: diverge [T, ...] with the same bytes (X the
                       product of the rest: d, H*hd, F, V) */
    DV_LMAP_HEADS,  /* ne [hd, heads, T]: diverge [T, heads, hd], same bytes */
    DV_LMAP_SCORES, /* ne [n_kv', T, H], n_kv' >= pos0+T (the cache, padded):
                       cropped to [H, T, pos0+T]; llama.cpp's kq is raw q.k
                       (scale and mask live inside its soft_max_ext), so each
                       score is multiplied by kq_scale and keys after the
                       query's position are -inf, diverge's convention */
    DV_LMAP_PROBS,  /* ne [n_kv', T, H]: cropped to [H, T, pos0+T] as is */
    DV_LMAP_LAYOUT_COUNT
};

/*  ggml name        ggml op     scope   diverge tensor         layout */
#define DV_LLAMA_MAP(X)                                                        \
    X("embd",          GET_ROWS, FIRST,  DV_LT_ATTN_IN,     ROWS)              \
    X("attn_norm",     MUL,      LAYER,  DV_LT_ATTN_NORM,   ROWS)              \
    X("Qcur",          MUL_MAT,  LAYER,  DV_LT_Q,           ROWS)              \
    X("Kcur",          MUL_MAT,  LAYER,  DV_LT_K,           ROWS)              \
    X("Vcur",          MUL_MAT,  LAYER,  DV_LT_V,           ROWS)              \
    X("Qcur",          ROPE,     LAYER,  DV_LT_Q_ROPE,      HEADS)             \
    X("Kcur",          ROPE,     LAYER,  DV_LT_K_ROPE,      HEADS)             \
    X("kq",            MUL_MAT,  LAYER,  DV_LT_KQ,          SCORES)            \
    X("kq_soft_max",   SOFT_MAX, LAYER,  DV_LT_KQ_SOFTMAX,  PROBS)             \
    X("kqv_out",       CONT,     LAYER,  DV_LT_ATTN_OUT,    ROWS)              \
    X("kqv_out",       RESHAPE,  LAYER,  DV_LT_ATTN_OUT,    ROWS) /* flash */  \
    X("attn_out",      MUL_MAT,  LAYER,  DV_LT_ATTN_PROJ,   ROWS)              \
    X("ffn_inp",       ADD,      LAYER,  DV_LT_FFN_IN,      ROWS)              \
    X("ffn_norm",      MUL,      LAYER,  DV_LT_FFN_NORM,    ROWS)              \
    X("ffn_gate",      MUL_MAT,  LAYER,  DV_LT_FFN_GATE,    ROWS)              \
    X("ffn_up",        MUL_MAT,  LAYER,  DV_LT_FFN_UP,      ROWS)              \
    X("ffn_swiglu",    GLU,      LAYER,  DV_LT_FFN_ACT,     ROWS)              \
    X("ffn_out",       MUL_MAT,  LAYER,  DV_LT_FFN_OUT,     ROWS)              \
    X("l_out",         ADD,      LAYER,  DV_LT_OUT,         ROWS)              \
    X("l_out",         ADD,      NEXT,   DV_LT_ATTN_IN,     ROWS)              \
    X("result_norm",   MUL,      GLOBAL, DV_GT_OUTPUT_NORM, ROWS)              \
    X("result_output", MUL_MAT,  GLOBAL, DV_GT_LOGITS,      ROWS)

struct dv_lmap_row {
    const char *stem;
    int ggml_op;    /* enum ggml_op */
    const char *op_name; /* its name in ggml's op table ("MUL_MAT") */
    int scope;      /* enum dv_lmap_scope */
    int which;      /* enum dv_layer_tensor, or dv_global_tensor for GLOBAL */
    int layout;     /* enum dv_lmap_layout */
};

/* The rows, in the table's order; *n gets their count. */
const struct dv_lmap_row *dv_lmap_rows(int *n);

/* Split a node name "stem-L" (L decimal, no sign, no leading zeros) into
 * stem and *layer, or take a bare "stem" with *layer = -1. Names with a
 * view suffix (" (view)" ...), empty names and stems that do not fit in
 * cap bytes are not ours: returns false. */
bool dv_lmap_parse_name(const char *name, char *stem, size_t cap, int *layer);

/* The slot of a diverge tensor in emission order: layer * DV_LT_COUNT + lt
 * for layer tensors, n_layer * DV_LT_COUNT + gt for the globals. */
int dv_lmap_slot(int n_layer, int layer, int which);
int dv_lmap_n_slots(int n_layer);

/* The slot row r fills for a node of layer `layer` (-1: a bare name), or
 * -1 when the row does not apply (a layer name for a FIRST or GLOBAL row,
 * a bare one for a LAYER row, NEXT of the last layer, a layer outside
 * 0..n_layer-1). */
int dv_lmap_row_slot(const struct dv_lmap_row *r, int n_layer, int layer);

/* A node's data as ggml holds it: `nbytes` bytes from the first element,
 * indexed by nb[] byte strides. */
struct dv_lmap_src {
    int type;          /* DV_TYPE_F32, DV_TYPE_F16 or DV_TYPE_BF16 (ggml ids) */
    int64_t ne[4];
    size_t nb[4];
    const void *data;
    size_t nbytes;
};

/* What the pass expects. */
struct dv_lmap_geom {
    int64_t T;         /* tokens of the pass */
    int64_t pos0;
    int64_t inner;     /* ROWS: X (d, H*hd, Hkv*hd, F or V) */
    int64_t hd, heads; /* HEADS: head dim and heads; SCORES, PROBS: heads = H */
    float kq_scale;    /* SCORES: 1/sqrt(hd) */
};

/* Elements of the converted tensor (its diverge shape's product). */
int64_t dv_lmap_out_elems(int layout, const struct dv_lmap_geom *g);

/* Convert src to f32 in diverge's row-major layout, dst[dv_lmap_out_elems]
 * (see enum dv_lmap_layout). Every value src claims is checked first: the
 * type, ne[] against g (n_kv' >= pos0+T and no larger than 2^24 for
 * SCORES and PROBS, every other extent exact), nb[0] the element size and
 * every addressed byte inside nbytes. DV_E_RUNTIME "ne [a, b, c, d] where
 * [...] was expected" (or the stride or type) otherwise; the caller
 * prefixes the node name. Writes nothing on failure. */
dv_status dv_lmap_convert(const struct dv_lmap_src *src, int layout,
                          const struct dv_lmap_geom *g, float *dst);

/* IEEE half and bfloat16 to float, exactly. */
float dv_lmap_f16(uint16_t h);
float dv_lmap_bf16(uint16_t h);

#endif
