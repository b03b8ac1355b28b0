/*
 * quant.h - weight formats: half floats and ggml's quantized blocks.
 *
 * Dequantization is bit-exact with ggml's reference C code (dequantize_row_*
 * in ggml-quants.c) compiled without FMA contraction: every value is the f32
 * result of the same f32 operations in the same order. The project builds
 * with -ffp-contract=off so the compiler cannot fuse them.
 *
 * Block layouts (little-endian, packed):
 *   q8_0  32 values:  f16 d; int8 qs[32]                 x = d*q
 *   q4_0  32 values:  f16 d; u8 qs[16]                   x = d*(nibble-8),
 *                     low nibbles are values 0..15, high nibbles 16..31
 *   q4_k 256 values:  f16 d, dmin; u8 scales[12]; u8 qs[128]
 *                     8 sub-blocks of 32 with 6-bit scale/min each
 *                     x = (d*sc)*q - (dmin*m)
 *   q6_k 256 values:  u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d
 *                     x = (d*sc)*(q6 - 32)
 */
#ifndef DV_QUANT_H
#define DV_QUANT_H

#include <stdint.h>

#include "types.h"

/* IEEE binary16 -> binary32, exact (subnormals, inf, NaN kept). */
float dv_f16_to_f32(uint16_t h);
/* binary32 -> binary16, round to nearest even; overflow gives inf, NaN stays
 * NaN. */
uint16_t dv_f32_to_f16(float f);
/* bfloat16 -> binary32, exact. */
float dv_bf16_to_f32(uint16_t h);
/* binary32 -> bfloat16, round to nearest even as ggml does; NaN stays a quiet
 * NaN. */
uint16_t dv_f32_to_bf16(float f);

/* Dequantize n values of type t from src into dst[n]. n must be a multiple
 * of the block size and dv_type_traits(t)->dequant true; the caller checks
 * (dv_row_size). Returns DV_E_INPUT for a type that cannot be dequantized. */
dv_status dv_dequant_row(int t, const void *src, float *dst, int64_t n);

/* Quantize n floats into type t (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k).
 * n must be a multiple of the block size. dst must hold dv_row_size(t, n)
 * bytes. Used to make fixtures; need not match ggml's quantizer bit for bit,
 * but the result dequantizes within the format's resolution. Returns
 * DV_E_USAGE for other types or a bad n. */
dv_status dv_quant_row(int t, const float *src, void *dst, int64_t n);

#endif
