// dequant.glsl - weight access for the matmul, matvec and get_rows kernels:
// GGUF-packed rows read byte-wise from a uint[] buffer, and per-element
// dequantization of every weight type diverge can decode (f32, f16, bf16,
// q8_0, q4_0, q4_k, q6_k).
//
// Values must be BIT-IDENTICAL to dv_dequant_row() in core/quant.c, which
// reproduces ggml's dequantize_row_*: the same f32 products and differences
// in the same order, none fused (quant.c builds with -ffp-contract=off).
// Every result with two roundings is declared `precise`, so neither glslc
// nor a driver may contract it into an fma. Half floats are decoded from
// their bits (dv_half) rather than with unpackHalf2x16, because Vulkan lets
// that instruction flush f16 subnormals, which quant.c keeps.
//
// What the includer gets (the same in every weight kernel):
//   binding 0       W, the weight rows as bytes, 4 to a uint, little-endian.
//                   Row m starts at byte m * row_bytes (the push constant);
//                   row_bytes is always even but not always a multiple of 4
//                   (a q8_0 block is 34 bytes), so multi-byte fields may
//                   straddle two words. The buffer size must be rounded up
//                   to a multiple of 4 bytes: the last field may share its
//                   word with padding.
//   spec const 0    WTYPE, the ggml type id of W.
//   spec const 1    FAULT, the injected fault; only DV_FAULT_Q4K_SCALE
//                   matters here. Branches on both fold away at pipeline
//                   creation.
//   dv_dequant4(rb, k, K)  elements k..k+3 (k % 4 == 0) of the row at byte
//                   rb, those at or past K as 0.
//   dv_dequant1(rb, k, K)  element k alone (the same code, one lane of it).
//   dv_dequant4_k4(rb, k, K)  dv_dequant4 for K % 4 == 0, fewer loads.
//   q4_k blocks piece by piece (dv_q4_k_head, dv_q4_k_dm, dv_q4_k_values),
//                   for kernels that walk a block themselves (matvec).
//
// A group of 4 elements never crosses a block, a q4_0 half-block, a q4_k
// sub-block or a q6_k scale group (all multiples of 4 and 4-aligned), so
// each group reads its block header once.
#ifndef DV_DEQUANT_GLSL
#define DV_DEQUANT_GLSL

#include "shared.h"

layout(constant_id = DV_SPEC_WTYPE) const uint WTYPE = 0;
layout(constant_id = DV_SPEC_FAULT) const uint FAULT = 0;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
// The same buffer 8 and 16 bytes at a time, for fields known to be so
// aligned: one load instead of two or four (each load is a loop over the
// SIMD lanes on llvmpipe, where their number is what counts).
layout(std430, binding = 0) readonly buffer W2 { uvec2 w2[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };

// Weight type ids, as core/types.h (and GGUF) number them.
const uint DV_W_F32 = 0u;
const uint DV_W_F16 = 1u;
const uint DV_W_Q4_0 = 2u;
const uint DV_W_Q8_0 = 8u;
const uint DV_W_Q4_K = 12u;
const uint DV_W_Q6_K = 14u;
const uint DV_W_BF16 = 30u;

// Block sizes in bytes and field offsets, as core/quant.c lays them out.
const uint DV_Q8_0_BYTES = 34u; // f16 d; int8 qs[32]
const uint DV_Q4_0_BYTES = 18u; // f16 d; u8 qs[16]
const uint DV_Q4_K_BYTES = 144u; // f16 d, dmin; u8 scales[12]; u8 qs[128]
const uint DV_Q4_K_SCALES = 4u;
const uint DV_Q4_K_QS = 16u;
const uint DV_Q6_K_BYTES = 210u; // u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d
const uint DV_Q6_K_QH = 128u;
const uint DV_Q6_K_SCALES = 192u;
const uint DV_Q6_K_D = 208u;

// ---- bytes ----

uint dv_w_byte(uint b)
{
    return (w[b >> 2] >> ((b & 3u) << 3)) & 0xffu;
}

// 16 bits at an even byte offset: always inside one word.
uint dv_w_u16(uint b)
{
    return (w[b >> 2] >> ((b & 2u) << 3)) & 0xffffu;
}

// 32 bits at an even byte offset: one word, or the top half of one and the
// bottom half of the next. Only words holding a wanted byte are read.
uint dv_w_u32(uint b)
{
    const uint lo = w[b >> 2];
    if ((b & 2u) == 0u) return lo;
    return (lo >> 16) | (w[(b >> 2) + 1u] << 16);
}

// Byte c (0..3) of a 32-bit word, sign-extended: an int8 field.
int dv_i8(uint word, uint c)
{
    return bitfieldExtract(int(word), int(c << 3), 8);
}

// IEEE binary16 bits -> f32, exact, as dv_f16_to_f32: subnormals kept,
// NaN made quiet with its payload.
float dv_half(uint h)
{
    const uint sign = (h & 0x8000u) << 16;
    const uint e = h & 0x7c00u, m = h & 0x3ffu;
    if (e == 0u) // zero or subnormal: m * 2^-24 is exact and a normal f32
        return uintBitsToFloat(sign | floatBitsToUint(float(m) * uintBitsToFloat(0x33800000u)));
    if (e == 0x7c00u) // inf or NaN
        return uintBitsToFloat(sign | 0x7f800000u | (m != 0u ? 0x400000u : 0u) | (m << 13));
    return uintBitsToFloat(sign | (((h & 0x7fffu) << 13) + (112u << 23))); // rebias 15 -> 127
}

// ---- one function per type: elements k..k+3 of the row at byte rb ----

vec4 dv_dq4_f32(uint rb, uint k, uint K)
{
    const uint i = (rb >> 2) + k; // f32 rows are 4K bytes: word-aligned
    if (k + 4u <= K) return uintBitsToFloat(uvec4(w[i], w[i + 1u], w[i + 2u], w[i + 3u]));
    vec4 v = vec4(0.0);
    for (uint c = 0u; c < 4u; c++)
        if (k + c < K) v[c] = uintBitsToFloat(w[i + c]);
    return v;
}

// Four 16-bit fields (f16 or bf16 elements k..k+3) at byte b; a row of
// odd K is only 2-aligned, and fields at or past K read as 0.
uvec4 dv_w_u16x4(uint b, uint k, uint K)
{
    if (k + 4u <= K) {
        const uint lo = dv_w_u32(b), hi = dv_w_u32(b + 4u);
        return uvec4(lo & 0xffffu, lo >> 16, hi & 0xffffu, hi >> 16);
    }
    uvec4 h = uvec4(0u);
    for (uint c = 0u; c < 4u; c++)
        if (k + c < K) h[c] = dv_w_u16(b + 2u * c);
    return h;
}

vec4 dv_f16x4(uvec4 h)
{
    return vec4(dv_half(h.x), dv_half(h.y), dv_half(h.z), dv_half(h.w));
}

vec4 dv_dq4_f16(uint rb, uint k, uint K)
{
    return dv_f16x4(dv_w_u16x4(rb + 2u * k, k, K));
}

vec4 dv_dq4_bf16(uint rb, uint k, uint K)
{
    return uintBitsToFloat(dv_w_u16x4(rb + 2u * k, k, K) << 16);
}

// x = q * d (dequantize_row_q8_0).
vec4 dv_dq4_q8_0(uint rb, uint k)
{
    const uint base = rb + DV_Q8_0_BYTES * (k >> 5);
    const float d = dv_half(dv_w_u16(base));
    const uint q = dv_w_u32(base + 2u + (k & 31u));
    return vec4(dv_i8(q, 0u), dv_i8(q, 1u), dv_i8(q, 2u), dv_i8(q, 3u)) * d;
}

// x = (nibble - 8) * d; byte j holds element j (low nibble) and j + 16
// (high nibble) (dequantize_row_q4_0).
vec4 dv_dq4_q4_0(uint rb, uint k)
{
    const uint base = rb + DV_Q4_0_BYTES * (k >> 5);
    const uint j = k & 31u;
    const float d = dv_half(dv_w_u16(base));
    const uint q = dv_w_u32(base + 2u + (j & 15u)) >> (j >= 16u ? 4u : 0u);
    const ivec4 n = ivec4(q & 15u, (q >> 8) & 15u, (q >> 16) & 15u, (q >> 24) & 15u);
    return vec4(n - 8) * d;
}

// 6-bit scale (x) and min (y) of q4_k sub-block j (0..7), as
// get_scale_min_k4, from the block's 12 scale bytes s (3 words,
// little-endian): sub-blocks 0..3 keep theirs in the low 6 bits of
// scales[j] and scales[j + 4]; 4..7 their low 4 bits in scales[j + 4],
// their top 2 bits in the spare bits of scales[j - 4] (scale) and
// scales[j] (min). Bytes j & 3, + 4, + 8 are the same byte of each word.
uvec2 dv_q4_k_scale_min(uvec3 s, uint j)
{
    const uint sh = (j & 3u) << 3;
    const uint a = (s.x >> sh) & 0xffu, b = (s.y >> sh) & 0xffu, c = (s.z >> sh) & 0xffu;
    if (j < 4u) return uvec2(a & 63u, b & 63u);
    return uvec2((c & 15u) | ((a >> 6) << 4), (c >> 4) | ((b >> 6) << 4));
}

// A q4_k block's first 16 bytes, one uvec4: f16 d | dmin << 16, then the
// 12 scale bytes. A block starts 16-byte aligned: rows are whole blocks of
// 144 = 9 * 16 bytes, and the buffer starts aligned.
uvec4 dv_q4_k_head(uint base)
{
    return w4[base >> 4];
}

// The two products of dequantize_row_q4_k for sub-block j of the block
// with header h: d * sc (x) and dmin * m (y), each rounded once.
// Fault q4k-scale: sub-block j takes the scale (not the min) of j ^ 1.
vec2 dv_q4_k_dm(uvec4 h, uint j)
{
    uvec2 sm = dv_q4_k_scale_min(h.yzw, j);
    if (FAULT == DV_FAULT_Q4K_SCALE) sm.x = dv_q4_k_scale_min(h.yzw, j ^ 1u).x;
    precise const float d1 = dv_half(h.x & 0xffffu) * float(sm.x);
    precise const float m1 = dv_half(h.x >> 16) * float(sm.y);
    return vec2(d1, m1);
}

// x = d1 * q - m1 for the low nibbles of the 4 bytes of q (dm from
// dv_q4_k_dm), two roundings kept apart.
vec4 dv_q4_k_values(vec2 dm, uint q)
{
    const vec4 n = vec4(q & 15u, (q >> 8) & 15u, (q >> 16) & 15u, (q >> 24) & 15u);
    precise const vec4 x = dm.x * n - dm.y;
    return x;
}

// x = (d * sc) * q - (dmin * m) (dequantize_row_q4_k). Sub-block s = j / 32
// is the low nibbles of qs[32 (s/2) ..] when s is even, the high nibbles
// when odd. The header is one 16-byte load and qs one aligned word: a
// group of 4 costs two loads (llvmpipe runs each load as a loop over its
// SIMD lanes, so their number is what counts there).
vec4 dv_dq4_q4_k(uint rb, uint k)
{
    const uint base = rb + DV_Q4_K_BYTES * (k >> 8);
    const uint j = k & 255u, s = j >> 5;
    const vec2 dm = dv_q4_k_dm(dv_q4_k_head(base), s);
    const uint q = w[(base + DV_Q4_K_QS + 32u * (s >> 1) + (j & 31u)) >> 2];
    return dv_q4_k_values(dm, q >> ((s & 1u) << 2));
}

// x = (d * sc) * (q6 - 32) (dequantize_row_q6_k). The 256 values are two
// halves of 128; in half h, value 32 kq + l (kq = 0..3) has its low 4 bits
// in ql[64 h + l + 32 (kq & 1)] (high nibble when kq >= 2), its top 2 bits
// at bit 2 kq of qh[32 h + l], and scale scales[8 h + l / 16 + 2 kq].
vec4 dv_dq4_q6_k(uint rb, uint k)
{
    const uint base = rb + DV_Q6_K_BYTES * (k >> 8);
    const uint j = k & 255u, h = j >> 7, kq = (j >> 5) & 3u, l = j & 31u;
    const uint ql = dv_w_u32(base + 64u * h + 32u * (kq & 1u) + l) >> ((kq >> 1) << 2);
    const uint qh = dv_w_u32(base + DV_Q6_K_QH + 32u * h + l) >> (2u * kq);
    const ivec4 q = ivec4((ql & 15u) | ((qh & 3u) << 4),
                          ((ql >> 8) & 15u) | (((qh >> 8) & 3u) << 4),
                          ((ql >> 16) & 15u) | (((qh >> 16) & 3u) << 4),
                          ((ql >> 24) & 15u) | (((qh >> 24) & 3u) << 4)) - 32;
    const int sc = dv_i8(dv_w_byte(base + DV_Q6_K_SCALES + 8u * h + (l >> 4) + 2u * kq), 0u);
    const float d = dv_half(dv_w_u16(base + DV_Q6_K_D));
    precise const vec4 x = d * float(sc) * vec4(q);
    return x;
}

// ---- the type switch (on a spec constant: one branch survives) ----

// Elements k..k+3 (k % 4 == 0) of the row at byte rb of a row of K
// elements; those at or past K are 0. Only f32, f16 and bf16 rows can end
// inside a group of 4 (quantized K is a multiple of 32). Another WTYPE
// gives zeros: the host never builds one.
vec4 dv_dequant4(uint rb, uint k, uint K)
{
    if (WTYPE == DV_W_F32) return dv_dq4_f32(rb, k, K);
    if (WTYPE == DV_W_F16) return dv_dq4_f16(rb, k, K);
    if (WTYPE == DV_W_BF16) return dv_dq4_bf16(rb, k, K);
    if (WTYPE == DV_W_Q8_0) return dv_dq4_q8_0(rb, k);
    if (WTYPE == DV_W_Q4_0) return dv_dq4_q4_0(rb, k);
    if (WTYPE == DV_W_Q4_K) return dv_dq4_q4_k(rb, k);
    if (WTYPE == DV_W_Q6_K) return dv_dq4_q6_k(rb, k);
    return vec4(0.0);
}

// dv_dequant4 where K % 4 == 0: no group of 4 ends past K, and those of
// the float types are aligned words (f32 rows 16-byte, f16 and bf16 rows
// 8-byte aligned), one load each instead of two to four. The same values.
vec4 dv_dequant4_k4(uint rb, uint k, uint K)
{
    if (WTYPE == DV_W_F32) return uintBitsToFloat(w4[(rb >> 4) + (k >> 2)]);
    if (WTYPE == DV_W_F16 || WTYPE == DV_W_BF16) {
        const uvec2 q = w2[(rb >> 3) + (k >> 2)];
        const uvec4 h = uvec4(q.x & 0xffffu, q.x >> 16, q.y & 0xffffu, q.y >> 16);
        return WTYPE == DV_W_F16 ? dv_f16x4(h) : uintBitsToFloat(h << 16);
    }
    return dv_dequant4(rb, k, K);
}

// Element k (< K) of the row at byte rb: one lane of dv_dequant4, so the
// two can never disagree.
float dv_dequant1(uint rb, uint k, uint K)
{
    return dv_dequant4(rb, k & ~3u, K)[k & 3u];
}

#endif
