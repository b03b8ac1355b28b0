#version 450
// add: out = a + b over n floats (the residual add).
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
    if (i < p.n) c[p.out_off + i] = a[p.a_off + i] + b[p.b_off + i];
}
