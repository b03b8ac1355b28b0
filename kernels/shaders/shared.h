/*
 * shared.h - what the host (C) and the shaders (GLSL) must agree on, in one
 * file both compile: push-constant blocks, specialization constant ids,
 * fault numbers and tile sizes.
 *
 * A push block is a field list macro. The host declares
 *     struct dv_push_matmul { DV_PUSH_MATMUL };
 * (size-checked in vk_ops.c), a shader
 *     layout(push_constant) uniform Push { DV_PUSH_MATMUL } p;
 * Fields are 32-bit only (DV_U32, DV_I32, DV_F32), so std430 push layout
 * and C layout are the same: consecutive 4-byte fields.
 */
#ifndef DV_SHADERS_SHARED_H
#define DV_SHADERS_SHARED_H

#ifdef VULKAN /* glslc */
#define DV_U32 uint
#define DV_I32 int
#define DV_F32 float
#else
#include <stdint.h>
#define DV_U32 uint32_t
#define DV_I32 int32_t
#define DV_F32 float
#endif

/* Specialization constant ids, the same in every kernel that has them. */
#define DV_SPEC_WTYPE 0 /* weight type: ggml type id (DV_TYPE_*) */
#define DV_SPEC_FAULT 1 /* injected fault: DV_FAULT_* or 0 */
#define DV_SPEC_MV_NT 2 /* matvec: tokens per workgroup, 1..DV_MV_NT */
#define DV_SPEC_MV_XV 3 /* matvec: 1 when x rows are 16-byte aligned */

/* Faults (design.md's fault zoo). 0 = none; a kernel built with another
 * value behaves exactly as with 0. */
#define DV_FAULT_NONE 0
#define DV_FAULT_MASK_NO_PAST 1    /* kq: mask ignores pos0 */
#define DV_FAULT_ROPE_NEOX_SWAP 2  /* rope: the other pairing */
#define DV_FAULT_ROPE_BASE 3       /* rope: theta base x 10 */
#define DV_FAULT_MATMUL_K_TAIL 4   /* matmul: last partial K tile dropped */
#define DV_FAULT_SOFTMAX_NO_SCALE 5 /* kq: no 1/sqrt(hd) */
#define DV_FAULT_F16_ACCUM 6       /* matmul: accumulator rounded to f16 */
#define DV_FAULT_Q4K_SCALE 7       /* q4_k dequant: scale of the wrong sub-block */
#define DV_FAULT_GQA_MAP 8         /* kq, kqv: kv head h % Hkv for h / group */
#define DV_FAULT_RMSNORM_EPS 9     /* rmsnorm: 1/(sqrt(mean) + eps) */
#define DV_FAULT_KV_STALE 10       /* kv_write: rows at t, not pos0 + t */
#define DV_FAULT_COUNT 11

/* matmul: y[N, M] = x[N, K] . W[M, K]^T, W rows of row_bytes bytes of the
 * weight type. Offsets are in floats. */
#define DV_PUSH_MATMUL                                                      \
    DV_U32 M; DV_U32 N; DV_U32 K; DV_U32 row_bytes;                         \
    DV_U32 x_off; DV_U32 y_off;

/* get_rows: out[t, K] = dequant(W row ids[ids_off + t]) for t < T. */
#define DV_PUSH_GET_ROWS                                                    \
    DV_U32 K; DV_U32 row_bytes; DV_U32 T; DV_U32 ids_off; DV_U32 out_off;

/* rmsnorm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, rows of n. */
#define DV_PUSH_RMSNORM                                                     \
    DV_U32 n; DV_U32 T; DV_U32 x_off; DV_U32 out_off; DV_F32 eps;

/* rope, in place on x[T, nh, hd]: pairs rotated by tab (cos[T, n_rot/2]
 * then sin[T, n_rot/2], from tab_off); mode 0 NORM, 1 NEOX (DV_ROPE_*); base and pos0
 * are only read by the rope-base fault, which computes its own angles. */
#define DV_PUSH_ROPE                                                        \
    DV_U32 T; DV_U32 nh; DV_U32 hd; DV_U32 n_rot; DV_U32 mode;              \
    DV_U32 pos0; DV_U32 x_off; DV_U32 tab_off; DV_F32 base;

/* kv_write: cache[dst_off + (pos0 + t) * width + i] = src[src_off + t * width + i]. */
#define DV_PUSH_KV_WRITE                                                    \
    DV_U32 T; DV_U32 width; DV_U32 pos0; DV_U32 src_off; DV_U32 dst_off;

/* kq: att[h, t, j] = q[t, h] . k[j, h / (H / Hkv)] * scale, -inf for
 * j > pos0 + t; q [T, H*hd], k cache [n_ctx, Hkv*hd], att [H, T, pos0 + T]. */
#define DV_PUSH_KQ                                                          \
    DV_U32 T; DV_U32 pos0; DV_U32 H; DV_U32 Hkv; DV_U32 hd;                 \
    DV_U32 q_off; DV_U32 k_off; DV_U32 att_off; DV_F32 scale;

/* softmax of rows rows of n floats, in place. */
#define DV_PUSH_SOFTMAX DV_U32 rows; DV_U32 n; DV_U32 off;

/* kqv: out[t, h*hd + c] = sum_j att[h, t, j] v[j, kvh(h)*hd + c]. */
#define DV_PUSH_KQV                                                         \
    DV_U32 T; DV_U32 pos0; DV_U32 H; DV_U32 Hkv; DV_U32 hd;                 \
    DV_U32 att_off; DV_U32 v_off; DV_U32 out_off;

/* silu_mul: out = silu(a) * b;  add: out = a + b; n floats. */
#define DV_PUSH_BINARY DV_U32 n; DV_U32 a_off; DV_U32 b_off; DV_U32 out_off;

/* Workgroup geometry the host dispatches with (see matmul.comp). */
#define DV_MM_BM 64 /* rows of W per workgroup (tiled) */
#define DV_MM_BN 32 /* tokens per workgroup (tiled) */
#define DV_MM_BK 32 /* K per shared-memory tile: the "K tile" */
#define DV_MV_ROWS 16 /* rows of W per workgroup (matvec, N small) */
#define DV_MV_NT 8 /* most tokens per workgroup (matvec) */
/* The host uses matvec for N <= this. On lavapipe it is the faster
 * kernel at every N up to here, for every weight type: at 64 tokens it
 * runs 0.3x (q4_k) to 0.8x (q6_k) the tiled kernel's instructions. Past
 * it the tiled kernel, built for prefill on GPUs, takes over. */
#define DV_MV_MAX_N 64
#define DV_ROWS_LOCAL 256 /* threads of row kernels (rmsnorm, softmax) */
#define DV_ELEM_LOCAL 256 /* threads of elementwise kernels */

#endif
