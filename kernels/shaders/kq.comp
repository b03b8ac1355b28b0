#version 450
// kq: scaled, masked attention scores over the KV cache.
// att[h, t, j] = (q[t, h] . k[j, kvh]) * scale for j <= pos0 + t, -inf for
// later keys (the causal mask); kvh = h / (H / Hkv) (GQA); n_kv = pos0 + T.
// One invocation per score, the dot product in order over hd.
// Dispatch: (ceil(n_kv / 64), T, H).
// Faults: mask-no-past masks j > t (ignores pos0); softmax-no-scale drops
// the 1/sqrt(hd); gqa-map reads kv head h % Hkv.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
layout(local_size_x = 64) in;
layout(constant_id = DV_SPEC_FAULT) const uint FAULT = 0;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) writeonly buffer A { float att[]; };
layout(push_constant) uniform Push { DV_PUSH_KQ } p;

void main()
{
    const uint j = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y, h = gl_WorkGroupID.z;
    const uint n_kv = p.pos0 + p.T;
    if (j >= n_kv) return;
    const uint kvh = FAULT == DV_FAULT_GQA_MAP ? h % p.Hkv : h / (p.H / p.Hkv);
    const uint last = FAULT == DV_FAULT_MASK_NO_PAST ? t : p.pos0 + t;
    float r;
    if (j > last) {
        r = uintBitsToFloat(0xff800000u); // -inf
    } else {
        const uint qi = p.q_off + (t * p.H + h) * p.hd;
        const uint ki = p.k_off + (j * p.Hkv + kvh) * p.hd;
        float dot = 0.0;
        for (uint c = 0; c < p.hd; c++) dot += q[qi + c] * k[ki + c];
        r = FAULT == DV_FAULT_SOFTMAX_NO_SCALE ? dot : dot * p.scale;
    }
    att[p.att_off + (h * p.T + t) * n_kv + j] = r;
}
