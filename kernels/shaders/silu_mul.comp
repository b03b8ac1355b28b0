#version 450
// silu_mul: out = silu(a) * b = a / (1 + exp(-a)) * b over n floats (the
// FFN's gate times up), rounded step by step as the CPU reference does.
// Dispatch: (ceil(n / DV_ELEM_LOCAL), 1, 1).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
layout(local_size_x = DV_ELEM_LOCAL) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer C { float c[]; };
layout(push_constant) uniform Push { DV_PUSH_BINARY } p;

void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i >= p.n) return;
    float g = a[p.a_off + i];
    precise float s = g / (1.0 + exp(-g));
    c[p.out_off + i] = s * b[p.b_off + i];
}
