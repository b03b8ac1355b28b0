#version 450
// softmax of each row of n floats, in place: e = exp(x - max), e / sum(e).
// One workgroup per row; max and sum by fixed-order shared-memory trees.
// -inf (masked) gives exactly 0. Dispatch: (rows, 1, 1).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
layout(local_size_x = DV_ROWS_LOCAL) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(push_constant) uniform Push { DV_PUSH_SOFTMAX } p;

shared float part[DV_ROWS_LOCAL];

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint r = p.off + gl_WorkGroupID.x * p.n;
    float m = uintBitsToFloat(0xff800000u); // -inf
    for (uint j = tid; j < p.n; j += DV_ROWS_LOCAL) m = max(m, x[r + j]);
    part[tid] = m;
    barrier();
    for (uint s = DV_ROWS_LOCAL / 2; s > 0; s >>= 1) {
        if (tid < s) part[tid] = max(part[tid], part[tid + s]);
        barrier();
    }
    const float mx = part[0];
    barrier(); // everyone has read the max before part is reused
    float sum = 0.0;
    for (uint j = tid; j < p.n; j += DV_ROWS_LOCAL) {
        float e = exp(x[r + j] - mx);
        x[r + j] = e;
        sum += e;
    }
    part[tid] = sum;
    barrier();
    for (uint s = DV_ROWS_LOCAL / 2; s > 0; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    const float inv = 1.0 / part[0];
    for (uint j = tid; j < p.n; j += DV_ROWS_LOCAL) x[r + j] *= inv;
}
