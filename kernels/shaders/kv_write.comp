#version 450
// kv_write: this pass's K or V rows into the cache at their positions:
// cache[dst_off + (pos0 + t) * width + i] = src[src_off + t * width + i].
// Dispatch: (ceil(T * width / DV_ELEM_LOCAL), 1, 1).
// Fault kv-stale: rows written at slot t, as if pos0 were 0.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
layout(local_size_x = DV_ELEM_LOCAL) in;
layout(constant_id = DV_SPEC_FAULT) const uint FAULT = 0;
layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) writeonly buffer D { float dst[]; };
layout(push_constant) uniform Push { DV_PUSH_KV_WRITE } p;

void main()
{
    const uint g = gl_GlobalInvocationID.x;
    if (g >= p.T * p.width) return;
    const uint t = g / p.width, i = g % p.width;
    const uint slot = FAULT == DV_FAULT_KV_STALE ? t : p.pos0 + t;
    dst[p.dst_off + slot * p.width + i] = src[p.src_off + g];
}
