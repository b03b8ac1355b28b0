#version 450
// get_rows: out[t, i] = dequant(W row ids[ids_off + t], element i), the
// embedding lookup, for rows of any weight type. Bit-identical to
// dv_dequant_row() (dequant.glsl says how). One thread per element.
//
// Dispatch: groups = (ceil(K / DV_ELEM_LOCAL), T, 1); token t = group.y.
// The ids must be valid rows of W: the kernel cannot know how many W has.
// Spec constants: 0 WTYPE, 1 FAULT (only q4k-scale changes anything).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
#include "dequant.glsl"

layout(local_size_x = DV_ELEM_LOCAL) in;
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform Push { DV_PUSH_GET_ROWS } p;

void main()
{
    const uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (i >= p.K) return;
    const uint rb = uint(ids[p.ids_off + t]) * p.row_bytes;
    o[p.out_off + t * p.K + i] = dv_dequant1(rb, i, p.K);
}
