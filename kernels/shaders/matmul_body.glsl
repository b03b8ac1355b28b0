// matmul_body.glsl - what matmul.comp (tiled, prefill) and matvec.comp
// (N small, decode) share: the interface
//     y[y_off + n*M + m] = sum_k dequant(W[m, k]) * x[x_off + n*K + k]
// for m < M, n < N, and the two matmul faults, so that both kernels inject
// them the same way.
//
// Bindings: 0 = W (dequant.glsl), 1 = x (float[]), 2 = y (float[]).
// Push: DV_PUSH_MATMUL. Spec constants: 0 WTYPE, 1 FAULT (dequant.glsl).
#ifndef DV_MATMUL_BODY_GLSL
#define DV_MATMUL_BODY_GLSL

#include "shared.h"
#include "dequant.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { DV_PUSH_MATMUL } p;

// Where the K loop stops. Fault matmul-k-tail: the last partial K tile
// (k >= K - K % DV_MM_BK) is dropped, in matvec as in matmul.
uint dv_k_end()
{
    if (FAULT == DV_FAULT_MATMUL_K_TAIL) return p.K - p.K % DV_MM_BK;
    return p.K;
}

// acc + prod, the one accumulation step of both kernels (products and
// partial sums alike). Fault f16-accum: the sum is rounded to f16 each time.
float dv_acc(float acc, float prod)
{
    if (FAULT == DV_FAULT_F16_ACCUM)
        return unpackHalf2x16(packHalf2x16(vec2(acc + prod, 0.0))).x;
    return acc + prod;
}

#endif
