/* fault.c - names and parsing of the fault zoo (fault.h). */
#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/*        id             name                doc */
#define DV_FAULT_LIST(X)                                                           \
    X(MASK_NO_PAST, "mask-no-past", "kq: the causal mask ignores pos0 (query t sees keys 0..t)") \
    X(ROPE_NEOX_SWAP, "rope-neox-swap", "rope: NORM and NEOX pairings swapped")     \
    X(ROPE_BASE, "rope-base", "rope: theta base 10x the model's")                   \
    X(MATMUL_K_TAIL, "matmul-k-tail", "matmul: the last partial K tile is dropped") \
    X(SOFTMAX_NO_SCALE, "softmax-no-scale", "kq: scores not scaled by 1/sqrt(head_dim)") \
    X(F16_ACCUM, "f16-accum", "matmul: the accumulator is rounded to f16")         \
    X(Q4K_SCALE, "q4k-scale", "q4_k dequantization: a sub-block uses its neighbour's scale") \
    X(GQA_MAP, "gqa-map", "kq, kqv: query head h reads kv head h % n_head_kv")      \
    X(RMSNORM_EPS, "rmsnorm-eps", "rmsnorm: 1/(sqrt(mean) + eps) instead of 1/sqrt(mean + eps)") \
    X(KV_STALE, "kv-stale", "kv cache: rows written at slot t instead of pos0 + t")

static const struct {
    const char *name, *doc;
} faults[DV_FAULT_COUNT] = {
    [DV_FAULT_NONE] = {"none", "no fault"},
#define DV_X(id, n, d) [DV_FAULT_##id] = {n, d},
    DV_FAULT_LIST(DV_X)
#undef DV_X
};

const char *dv_fault_name(int f)
{
    return f >= 0 && f < DV_FAULT_COUNT ? faults[f].name : "?";
}

const char *dv_fault_doc(int f)
{
    return f >= 0 && f < DV_FAULT_COUNT ? faults[f].doc : "?";
}

static dv_status bad(const char *s)
{
    char list[512] = "";
    for (int f = 1; f < DV_FAULT_COUNT; f++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", f > 1 ? ", " : "", faults[f].name);
    }
    return dv_fail(DV_E_USAGE, "unknown fault '%.64s' (NAME or NAME@LAYER, NAME one of %s)",
                   s, list);
}

dv_status dv_inject_parse(const char *s, int n_layer, struct dv_inject *out)
{
    *out = (struct dv_inject){DV_FAULT_NONE, -1};
    const char *at = strchr(s, '@');
    const size_t len = at ? (size_t)(at - s) : strlen(s);
    int f = 1;
    while (f < DV_FAULT_COUNT &&
           (strlen(faults[f].name) != len || strncmp(faults[f].name, s, len) != 0))
        f++;
    if (f == DV_FAULT_COUNT) return bad(s);
    int layer = -1;
    if (at) {
        char *end;
        errno = 0;
        long l = strtol(at + 1, &end, 10);
        if (at[1] < '0' || at[1] > '9' || *end || errno || l >= n_layer)
            return dv_fail(DV_E_USAGE, "fault '%.64s': the layer must be a number "
                           "0..%d", s, n_layer - 1);
        layer = (int)l;
    }
    *out = (struct dv_inject){f, layer};
    return DV_OK;
}

void dv_inject_format(const struct dv_inject *in, char *buf, size_t cap)
{
    if (in->fault <= DV_FAULT_NONE || in->fault >= DV_FAULT_COUNT)
        snprintf(buf, cap, "%s", "");
    else if (in->layer < 0)
        snprintf(buf, cap, "%s", faults[in->fault].name);
    else
        snprintf(buf, cap, "%s@%d", faults[in->fault].name, in->layer);
}
