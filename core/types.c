/* types.c - the block layouts of ggml's tensor types. */
#include "types.h"

#include <stdio.h>
#include <strings.h>

#include "error.h"

/* Sizes follow ggml's block structs (ggml-common.h): e.g. Q4_K is
 * 2 f16 + 12 bytes of 6-bit scales + 128 bytes of nibbles = 144 bytes. */
static const struct dv_type_traits traits[DV_TYPE_COUNT] = {
    [DV_TYPE_F32] = {"f32", 1, 4, true},
    [DV_TYPE_F16] = {"f16", 1, 2, true},
    [DV_TYPE_Q4_0] = {"q4_0", 32, 18, true},
    [DV_TYPE_Q4_1] = {"q4_1", 32, 20, false},
    [DV_TYPE_Q5_0] = {"q5_0", 32, 22, false},
    [DV_TYPE_Q5_1] = {"q5_1", 32, 24, false},
    [DV_TYPE_Q8_0] = {"q8_0", 32, 34, true},
    [DV_TYPE_Q8_1] = {"q8_1", 32, 36, false},
    [DV_TYPE_Q2_K] = {"q2_k", 256, 84, false},
    [DV_TYPE_Q3_K] = {"q3_k", 256, 110, false},
    [DV_TYPE_Q4_K] = {"q4_k", 256, 144, true},
    [DV_TYPE_Q5_K] = {"q5_k", 256, 176, false},
    [DV_TYPE_Q6_K] = {"q6_k", 256, 210, true},
    [DV_TYPE_Q8_K] = {"q8_k", 256, 292, false},
    [DV_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66, false},
    [DV_TYPE_IQ2_XS] = {"iq2_xs", 256, 74, false},
    [DV_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98, false},
    [DV_TYPE_IQ1_S] = {"iq1_s", 256, 50, false},
    [DV_TYPE_IQ4_NL] = {"iq4_nl", 32, 18, false},
    [DV_TYPE_IQ3_S] = {"iq3_s", 256, 110, false},
    [DV_TYPE_IQ2_S] = {"iq2_s", 256, 82, false},
    [DV_TYPE_IQ4_XS] = {"iq4_xs", 256, 136, false},
    [DV_TYPE_I8] = {"i8", 1, 1, false},
    [DV_TYPE_I16] = {"i16", 1, 2, false},
    [DV_TYPE_I32] = {"i32", 1, 4, false},
    [DV_TYPE_I64] = {"i64", 1, 8, false},
    [DV_TYPE_F64] = {"f64", 1, 8, false},
    [DV_TYPE_IQ1_M] = {"iq1_m", 256, 56, false},
    [DV_TYPE_BF16] = {"bf16", 1, 2, true},
    [DV_TYPE_TQ1_0] = {"tq1_0", 256, 54, false},
    [DV_TYPE_TQ2_0] = {"tq2_0", 256, 66, false},
    [DV_TYPE_MXFP4] = {"mxfp4", 32, 17, false},
};

const struct dv_type_traits *dv_type_traits(int t)
{
    if (t < 0 || t >= DV_TYPE_COUNT || traits[t].name == NULL) return NULL;
    return &traits[t];
}

const char *dv_type_name(int t)
{
    const struct dv_type_traits *tr = dv_type_traits(t);
    return tr ? tr->name : "?";
}

int dv_type_from_name(const char *name)
{
    for (int t = 0; t < DV_TYPE_COUNT; t++)
        if (traits[t].name && strcasecmp(traits[t].name, name) == 0) return t;
    return -1;
}

dv_status dv_row_size(int t, int64_t n, size_t *out)
{
    const struct dv_type_traits *tr = dv_type_traits(t);
    if (!tr) return dv_fail(DV_E_INPUT, "unknown tensor type %d", t);
    if (n < 0 || n % tr->blck != 0)
        return dv_fail(DV_E_INPUT,
                       "row of %lld elements is not a whole number of %s "
                       "blocks of %lld",
                       (long long)n, tr->name, (long long)tr->blck);
    uint64_t blocks = (uint64_t)(n / tr->blck);
    if (blocks > SIZE_MAX / tr->size)
        return dv_fail(DV_E_INPUT, "row of %lld %s elements overflows",
                       (long long)n, tr->name);
    *out = (size_t)blocks * tr->size;
    return DV_OK;
}
