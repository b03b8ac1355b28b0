/* ops.c - name tables generated from the op and tensor lists in ops.h. */
#include "ops.h"

#include <stddef.h>
#include <string.h>

#include "model.h"

static const char *const op_names[DV_OP_COUNT] = {
#define DV_X(e, s, hint, ggml) [DV_OP_##e] = s,
    DV_OP_LIST(DV_X)
#undef DV_X
};
static const char *const op_hints[DV_OP_COUNT] = {
#define DV_X(e, s, hint, ggml) [DV_OP_##e] = hint,
    DV_OP_LIST(DV_X)
#undef DV_X
};
static const char *const op_ggml[DV_OP_COUNT] = {
#define DV_X(e, s, hint, ggml) [DV_OP_##e] = ggml,
    DV_OP_LIST(DV_X)
#undef DV_X
};

const char *dv_op_ggml(int op)
{
    return (op >= 0 && op < DV_OP_COUNT) ? op_ggml[op] : "?";
}

const char *dv_op_hint(int op)
{
    return (op >= 0 && op < DV_OP_COUNT) ? op_hints[op] : "this op";
}

const char *dv_op_name(int op)
{
    return (op >= 0 && op < DV_OP_COUNT) ? op_names[op] : "?";
}

int dv_op_from_name(const char *s)
{
    for (int i = 0; i < DV_OP_COUNT; i++)
        if (strcmp(op_names[i], s) == 0) return i;
    return -1;
}

#define DV_LT_NONE (-1)
#define W(f) ((ptrdiff_t)offsetof(struct dv_layer, f))
#define NOW ((ptrdiff_t)-1)
static const struct {
    const char *name;
    int op, shape, in[2];
    ptrdiff_t w; /* offset of the weight in struct dv_layer, or -1 */
} layer_tensors[DV_LT_COUNT] = {
#define DV_X(e, s, o, sh, i0, i1, wt) \
    [DV_LT_##e] = {s, DV_OP_##o, DV_SHAPE_##sh, {DV_LT_##i0, DV_LT_##i1}, wt},
    DV_LAYER_TENSOR_LIST(DV_X)
#undef DV_X
};
#undef W
#undef NOW
static const struct {
    const char *name;
    int op, shape;
} global_tensors[DV_GT_COUNT] = {
#define DV_X(e, s, o, sh) [DV_GT_##e] = {s, DV_OP_##o, DV_SHAPE_##sh},
    DV_GLOBAL_TENSOR_LIST(DV_X)
#undef DV_X
};

const char *dv_layer_tensor_name(int lt)
{
    return (lt >= 0 && lt < DV_LT_COUNT) ? layer_tensors[lt].name : "?";
}

int dv_layer_tensor_op(int lt, int layer)
{
    if (lt < 0 || lt >= DV_LT_COUNT) return -1;
    if (lt == DV_LT_ATTN_IN && layer == 0) return DV_OP_GET_ROWS;
    return layer_tensors[lt].op;
}

int dv_layer_tensor_shape(int lt)
{
    return (lt >= 0 && lt < DV_LT_COUNT) ? layer_tensors[lt].shape : -1;
}

const char *dv_global_tensor_name(int gt)
{
    return (gt >= 0 && gt < DV_GT_COUNT) ? global_tensors[gt].name : "?";
}

int dv_global_tensor_op(int gt)
{
    return (gt >= 0 && gt < DV_GT_COUNT) ? global_tensors[gt].op : -1;
}

int dv_global_tensor_shape(int gt)
{
    return (gt >= 0 && gt < DV_GT_COUNT) ? global_tensors[gt].shape : -1;
}

int dv_tensors_per_pass(int n_layer) { return n_layer * DV_LT_COUNT + DV_GT_COUNT; }

void dv_tensor_inputs(int i, int n_layer, int in[2])
{
    in[0] = in[1] = -1;
    const int first_global = n_layer * DV_LT_COUNT;
    if (i < 0 || i >= first_global + DV_GT_COUNT) return;
    if (i >= first_global) { /* output_norm <- the last out; logits <- output_norm */
        const int gt = i - first_global;
        in[0] = gt == DV_GT_OUTPUT_NORM ? dv_tensor_index(n_layer - 1, DV_LT_OUT)
                                        : first_global + DV_GT_OUTPUT_NORM;
        return;
    }
    const int L = i / DV_LT_COUNT, lt = i % DV_LT_COUNT;
    if (lt == DV_LT_ATTN_IN) {
        if (L > 0) in[0] = dv_tensor_index(L - 1, DV_LT_OUT);
        return;
    }
    for (int k = 0; k < 2; k++)
        if (layer_tensors[lt].in[k] >= 0) in[k] = dv_tensor_index(L, layer_tensors[lt].in[k]);
}

const struct dv_gguf_tensor *dv_tensor_weight(const struct dv_model *m, int i)
{
    const int n_layer = (int)m->cfg.n_layer, first_global = n_layer * DV_LT_COUNT;
    if (i < 0 || i >= first_global + DV_GT_COUNT) return NULL;
    if (i >= first_global) return i - first_global == DV_GT_OUTPUT_NORM ? m->output_norm
                                                                        : m->output;
    const int L = i / DV_LT_COUNT, lt = i % DV_LT_COUNT;
    if (lt == DV_LT_ATTN_IN) return L == 0 ? m->tok_embd : NULL;
    if (layer_tensors[lt].w < 0) return NULL;
    return *(const struct dv_gguf_tensor *const *)((const char *)&m->layers[L] +
                                                   layer_tensors[lt].w);
}
