#version 450
// rmsnorm: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w for each row t.
// One workgroup per row: each thread sums the squares of a strided slice,
// then a fixed-order tree in shared memory (deterministic) gives the sum.
// Dispatch: (T, 1, 1).
// Fault rmsnorm-eps: 1 / (sqrt(mean) + eps), eps outside the root.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
layout(local_size_x = DV_ROWS_LOCAL) in;
layout(constant_id = DV_SPEC_FAULT) const uint FAULT = 0;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform Push { DV_PUSH_RMSNORM } p;

shared float part[DV_ROWS_LOCAL];

void main()
{
    const uint t = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    const uint xr = p.x_off + t * p.n, orow = p.out_off + t * p.n;
    float ss = 0.0;
    for (uint i = tid; i < p.n; i += DV_ROWS_LOCAL) ss += x[xr + i] * x[xr + i];
    part[tid] = ss;
    barrier(); // every partial sum is in shared memory
    for (uint s = DV_ROWS_LOCAL / 2; s > 0; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier(); // this level of the tree is complete
    }
    const float mean = part[0] / float(p.n);
    float scale;
    if (FAULT == DV_FAULT_RMSNORM_EPS)
        scale = 1.0 / (sqrt(mean) + p.eps);
    else
        scale = 1.0 / sqrt(mean + p.eps);
    for (uint i = tid; i < p.n; i += DV_ROWS_LOCAL) {
        precise float v = x[xr + i] * scale;
        o[orow + i] = v * w[i];
    }
}
