/*
 * types.h - element types of tensors, numbered as ggml and GGUF number them.
 *
 * One enum serves weights (F32 ... Q6_K, as stored in GGUF files) and the
 * plain element types of dumped activations (F32, F64, F16, BF16, I32).
 * Values are the on-disk GGUF type ids, so no mapping table is needed.
 */
#ifndef DV_TYPES_H
#define DV_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diverge.h"

enum dv_type {
    DV_TYPE_F32 = 0,
    DV_TYPE_F16 = 1,
    DV_TYPE_Q4_0 = 2,
    DV_TYPE_Q4_1 = 3,
    DV_TYPE_Q5_0 = 6,
    DV_TYPE_Q5_1 = 7,
    DV_TYPE_Q8_0 = 8,
    DV_TYPE_Q8_1 = 9,
    DV_TYPE_Q2_K = 10,
    DV_TYPE_Q3_K = 11,
    DV_TYPE_Q4_K = 12,
    DV_TYPE_Q5_K = 13,
    DV_TYPE_Q6_K = 14,
    DV_TYPE_Q8_K = 15,
    DV_TYPE_IQ2_XXS = 16,
    DV_TYPE_IQ2_XS = 17,
    DV_TYPE_IQ3_XXS = 18,
    DV_TYPE_IQ1_S = 19,
    DV_TYPE_IQ4_NL = 20,
    DV_TYPE_IQ3_S = 21,
    DV_TYPE_IQ2_S = 22,
    DV_TYPE_IQ4_XS = 23,
    DV_TYPE_I8 = 24,
    DV_TYPE_I16 = 25,
    DV_TYPE_I32 = 26,
    DV_TYPE_I64 = 27,
    DV_TYPE_F64 = 28,
    DV_TYPE_IQ1_M = 29,
    DV_TYPE_BF16 = 30,
    DV_TYPE_TQ1_0 = 34,
    DV_TYPE_TQ2_0 = 35,
    DV_TYPE_MXFP4 = 39,
    DV_TYPE_COUNT = 40
};

/* Block layout of a type: `blck` elements are stored in `size` bytes.
 * `dequant` says whether diverge can turn it into floats. */
struct dv_type_traits {
    const char *name; /* lower case, as llama.cpp prints it: "q4_k" */
    int64_t blck;
    size_t size;
    bool dequant;
};

/* Traits of t, or NULL when t is not a known ggml type id (gaps included). */
const struct dv_type_traits *dv_type_traits(int t);

/* Name of t ("q8_0"), or "?" when unknown. */
const char *dv_type_name(int t);

/* Type id for a name as dv_type_name() prints it (case-insensitive), or -1. */
int dv_type_from_name(const char *name);

/* Bytes taken by a row of n elements of type t, written to *out. Fails with
 * DV_E_INPUT when t is unknown, n is negative or not a multiple of the block
 * size, or the size overflows. Records no file name: callers prefix it. */
dv_status dv_row_size(int t, int64_t n, size_t *out);

#endif
