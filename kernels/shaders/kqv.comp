#version 450
// kqv: probabilities times V, heads concatenated:
// out[t, h*hd + c] = sum_j att[h, t, j] * v[j, kvh*hd + c], j < pos0 + T,
// kvh = h / (H / Hkv). One invocation per output, the sum in order over j.
// Dispatch: (ceil(hd / 64), T, H).
// Fault gqa-map: kv head h % Hkv.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
layout(local_size_x = 64) in;
layout(constant_id = DV_SPEC_FAULT) const uint FAULT = 0;
layout(std430, binding = 0) readonly buffer A { float att[]; };
layout(std430, binding = 1) readonly buffer V { float v[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform Push { DV_PUSH_KQV } p;

void main()
{
    const uint c = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y, h = gl_WorkGroupID.z;
    if (c >= p.hd) return;
    const uint n_kv = p.pos0 + p.T;
    const uint kvh = FAULT == DV_FAULT_GQA_MAP ? h % p.Hkv : h / (p.H / p.Hkv);
    const uint ai = p.att_off + (h * p.T + t) * n_kv;
    const uint vi = p.v_off + kvh * p.hd + c, stride = p.Hkv * p.hd;
    float sum = 0.0;
    for (uint j = 0; j < n_kv; j++) sum += att[ai + j] * v[vi + j * stride];
    o[p.out_off + t * p.H * p.hd + h * p.hd + c] = sum;
}
