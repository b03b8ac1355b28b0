#version 450
// rope, in place on x[T, nh, hd]: one invocation per (token, head, pair).
// NORM (mode 0) pairs (2i, 2i+1), NEOX (mode 1) pairs (i, i + n_rot/2),
// i < n_rot/2, rotated by the angle (pos0 + t) * base^(-2i/n_rot) whose
// cos and sin the host tabulates in double (tab: cos[T, n_rot/2] then
// sin[T, n_rot/2]), as the CPU reference does. Dims >= n_rot stay.
// Dispatch: (ceil(T * nh * n_rot/2 / DV_ELEM_LOCAL), 1, 1).
// Faults: rope-neox-swap uses the other pairing; rope-base computes its
// own angles in float with the base times 10.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
layout(local_size_x = DV_ELEM_LOCAL) in;
layout(constant_id = DV_SPEC_FAULT) const uint FAULT = 0;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Tab { float tab[]; };
layout(push_constant) uniform Push { DV_PUSH_ROPE } p;

void main()
{
    const uint half_rot = p.n_rot / 2;
    const uint g = gl_GlobalInvocationID.x;
    if (g >= p.T * p.nh * half_rot) return;
    const uint i = g % half_rot, h = (g / half_rot) % p.nh, t = g / (half_rot * p.nh);
    bool neox = p.mode == 1; // DV_ROPE_NEOX
    if (FAULT == DV_FAULT_ROPE_NEOX_SWAP) neox = !neox;
    const uint base = p.x_off + (t * p.nh + h) * p.hd;
    const uint ia = base + (neox ? i : 2 * i), ib = base + (neox ? i + half_rot : 2 * i + 1);
    float c = tab[p.tab_off + t * half_rot + i];
    float s = tab[p.tab_off + (p.T + t) * half_rot + i];
    if (FAULT == DV_FAULT_ROPE_BASE) {
        float a = float(p.pos0 + t) * pow(p.base * 10.0, -2.0 * float(i) / float(p.n_rot));
        c = cos(a);
        s = sin(a);
    }
    const float x0 = x[ia], x1 = x[ib];
    precise float a0 = x0 * c, b0 = x1 * s, a1 = x0 * s, b1 = x1 * c;
    x[ia] = a0 - b0;
    x[ib] = a1 + b1;
}
