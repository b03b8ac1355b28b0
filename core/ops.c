/* ops.c - name tables generated from the op and tensor lists in ops.h. */
#include "ops.h"

#include <string.h>

static const char *const op_names[DV_OP_COUNT] = {
#define DV_X(e, s) [DV_OP_##e] = s,
    DV_OP_LIST(DV_X)
#undef DV_X
};

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

static const struct {
    const char *name;
    int op, shape;
} layer_tensors[DV_LT_COUNT] = {
#define DV_X(e, s, o, sh) [DV_LT_##e] = {s, DV_OP_##o, DV_SHAPE_##sh},
    DV_LAYER_TENSOR_LIST(DV_X)
#undef DV_X
}, global_tensors[DV_GT_COUNT] = {
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
