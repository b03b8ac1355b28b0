/*
 * arith.h - declared arithmetic: how an engine rounds what enters a matrix
 * product, emulated bit for bit so the CPU reference can compute the same.
 *
 * llama.cpp's CPU backend does not multiply a quantized weight row with the
 * f32 activation row: it first converts the activation row to the weight
 * type's vec_dot_type (q8_0, q8_1, q8_K, f16 or bf16; type_traits_cpu in
 * ggml-cpu.c) and takes the dot product in that format. It also keeps the
 * KV cache in f16 by default, so the attention products (whose first
 * operand is the cache) round q and the softmax probabilities to f16.
 * Against an exact f32 reference that is an NMSE of ~1e-4 on every tensor.
 * This module gives the reference the same rounding:
 *
 *   - the row quantizers, byte for byte as ggml writes the blocks, in two
 *     variants: DV_QV_X86, what ggml's x86 CPU backend runs (every build
 *     variant from sandybridge up: the AVX/AVX2 quantize_row_q8_0 and
 *     _q8_1 of ggml-cpu/arch/x86/quants.c; q8_K is quantize_row_q8_K_ref
 *     there), and DV_QV_REF, ggml's reference C code (ggml-quants.c
 *     quantize_row_*_ref; also what the sse42 and x64 builds run). They
 *     differ in 1/d (x86: 127/amax; ref: 1/(amax/127), not always the same
 *     f32), in ties (x86 rounds half to even; ref roundf, half away from
 *     zero) and in blocks below 2^-121 (see arith.c);
 *   - the round trip the forward pass uses: quantize a row with the x86
 *     variant and dequantize it back (dv_arith_round_f32), and the same
 *     formulas evaluated in double for the f64 oracle (dv_arith_round_f64);
 *   - which type a matmul input is rounded to under a mode (enum
 *     dv_act_quant, engine.h) and a KV cache type.
 *
 * The emulated product is the exact-arithmetic value of what ggml computes:
 * ggml sums d_x * d_w * isum per block (an integer dot of the quants), the
 * reference sums the products of the dequantized values; both are the same
 * real number before f32 rounding, so they differ by f32 summation order
 * only: |error| <= ~2 K u sum |w x| for a row of K (u = 2^-24), the size of
 * the f32 reference's own noise, five orders below the rounding emulated.
 */
#ifndef DV_ARITH_H
#define DV_ARITH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "types.h"

/* Which of ggml's row quantizers (see above). */
enum dv_qvariant {
    DV_QV_X86, /* ggml-cpu on x86 with AVX: what llama.cpp runs there */
    DV_QV_REF, /* ggml-quants.c *_ref (and the sse42/x64 CPU builds) */
    DV_QV_COUNT
};

/* Quantize n floats x into blocks of type t (DV_TYPE_Q8_0, Q8_1, Q8_K,
 * F16, BF16), byte for byte as ggml's quantizer `variant` writes them
 * (ggml-common.h layouts: q8_0 f16 d, int8 qs[32]; q8_1 f16 d, f16 s,
 * int8 qs[32]; q8_K f32 d, int8 qs[256], int16 bsums[16]; little-endian).
 * dst holds dv_row_size(t, n) bytes. F16 and BF16 have one variant (RNE;
 * NaN becomes the canonical quiet NaN). DV_E_USAGE for another type or
 * variant, or n not a multiple of the block size. */
dv_status dv_arith_quantize_row(int t, int variant, const float *x, void *dst, int64_t n);

/* x[n] in place to the values of type t's round trip: quantized with the
 * x86 variant and dequantized as ggml does (q8_0/q8_1: f16(d) * q, exact;
 * q8_K: d * q rounded to f32; f16, bf16: round to nearest even). t is
 * DV_TYPE_F32 (nothing to do) or a type above, and n a multiple of its
 * block size (dv_arith_check_row): the caller checks. */
void dv_arith_round_f32(int t, float *x, int64_t n);

/* The same in double for the f64 oracle: the same formulas (amax, d =
 * amax/127, 1/d = 127/amax, round half to even, saturation) in double; the
 * values the format stores keep the format's precision (d rounded once to
 * f16 for q8_0/q8_1, to f32 for q8_K; the quants int8), the dequantized
 * value d * q is exact. So the oracle rounds to the same grid as the f32
 * reference; at a near-tie it may pick the other neighbour, as a more
 * exact input would. */
void dv_arith_round_f64(int t, double *x, int64_t n);

/* The type a matmul input is rounded to for a weight matrix of type wtype
 * and shape [rows, cols] (GGUF ne[1], ne[0]) under mode aq: DV_TYPE_F32
 * (kept exact) or one of the types above. AUTO is ggml-cpu's vec_dot_type
 * of wtype (f32 weights: exact); AMX the same but f32 for the f16 matrices
 * ggml-cpu's AMX buffer type takes (rows % 32 == 0, cols % 16 == 0); Q8_0,
 * Q8_1, Q8_K and F16 apply to every weight matmul whatever its type; NONE:
 * exact. */
int dv_arith_act_type(int aq, int wtype, int64_t rows, int64_t cols);

/* How one pass's attention products round (dv_arith_attn): the type each
 * operand enters its product as (DV_TYPE_F32: as computed for q and the
 * probabilities, as the cache holds them for K and V; else the type it is
 * rounded to), and whether probabilities x V is summed in f16
 * (dv_cpu_kqv_f16acc). */
struct dv_attn_round {
    int q, k; /* the scores */
    int p, v; /* probabilities x V */
    bool acc_f16;
};

/* The attention rounding of a pass of T tokens under modes aq and attnq
 * with a KV cache of type kv (DV_TYPE_F32, F16 or Q8_0).
 *   AUTO, NONE, Q, QP (ggml's CPU backend): q to the cache's vec_dot_type
 *   (f32 -> exact, f16 -> f16, q8_0 -> q8_0 per head row: head_dim % 32 ==
 *   0), the probabilities to f16 with an f16 cache (llama.cpp takes a q8_0
 *   V cache only with flash attention, which keeps them f32); AUTO rounds
 *   both unless aq is NONE, Q only q, QP both, NONE neither. K and V enter
 *   as the cache holds them.
 *   VK (ggml's Vulkan backend without cooperative matrices or integer dot
 *   products, ggml_vk_mul_mat): T == 1 takes the matrix-vector kernels
 *   (mul_mat_vec_p021, _nc), which read q and the probabilities as f32 and
 *   sum in f32; T > 1 takes mul_mm on f16 copies of q, K and V (permuted
 *   views are converted, the cache's f32 too) and of the probabilities,
 *   with an f32 sum for the scores (their product asks for f32 precision)
 *   and, when the V cache is f16, an f16 sum for probabilities x V. */
struct dv_attn_round dv_arith_attn(int aq, int attnq, int kv, int64_t T);
/* What the attention products round in effect, as a dump records it:
 * "none", "q" (q only), "qp" (q and the probabilities) or "vk"; modes that
 * round the same (auto, or qp with a q8_0 cache) give the same name. */
const char *dv_arith_attn_name(int aq, int attnq, int kv);

/* Can rows of n values be rounded to type t (n a multiple of its block
 * size)? DV_E_USAGE naming `what` and the mode when not. */
dv_status dv_arith_check_row(int t, int64_t n, const char *what);

/* Check everything a CPU backend needs for mode aq and cache type kv on
 * model m: aq and kv in range, every weight matmul's row length a multiple
 * of its activation type's block, head_dim % 32 == 0 for a q8_0 cache.
 * DV_E_USAGE with one line naming the tensor or the mismatch. */
dv_status dv_arith_check(const struct dv_model *m, int aq, int kv);

/* Whether t is a KV cache type this module can emulate (F32, F16, Q8_0). */
bool dv_arith_kv_ok(int t);

/* What mode aq resolves to on m's weight matmuls, one item per weight type
 * present (ascending type id): "WTYPE=ATYPE" joined by commas, ATYPE
 * "none" for exact, e.g. "f32=none,q4_k=q8_k,q6_k=q8_k". Truncated to cap
 * (always NUL-terminated). */
void dv_arith_describe(const struct dv_model *m, int aq, char *buf, size_t cap);

#endif
