#version 450
// matvec: y[n, m] = sum_k dequant(W[m, k]) * x[n, k] for few tokens (decode,
// N <= DV_MV_MAX_N), where the tiled kernel would leave most of its tile
// empty. Interface and faults: matmul_body.glsl. Correct for any N.
//
// Dispatch: groups = (ceil(M / DV_MV_ROWS), N, 1): one token per group.
//
// A workgroup computes DV_MV_ROWS rows of y for token n = group.y. The
// threads split K: thread t takes the groups of 4 at k = 4 (t + LOCAL i),
// so a warp reads contiguous bytes of each row, loads each group of x once
// for all the rows, and keeps one f32 partial sum per row. The partial
// sums then meet in a fixed-order tree in shared memory: the same inputs
// give the same bits, with no atomics.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
#include "matmul_body.glsl"

#define LOCAL 64 // threads per workgroup: a power of two (the tree)

layout(local_size_x = LOCAL) in;

shared float part[DV_MV_ROWS][LOCAL]; // part[r][t]: thread t's sum for row m0 + r

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.x * DV_MV_ROWS, n = gl_WorkGroupID.y;
    const uint k_end = dv_k_end(), xb = p.x_off + n * p.K;

    float acc[DV_MV_ROWS];
    for (uint r = 0u; r < DV_MV_ROWS; r++) acc[r] = 0.0;

    for (uint k = 4u * tid; k < k_end; k += 4u * LOCAL) {
        // k_end is K or a multiple of DV_MM_BK (a multiple of 4), so only
        // an f32/f16/bf16 row of K % 4 != 0 can end inside this group.
        vec4 xv = vec4(0.0);
        for (uint c = 0u; c < 4u; c++)
            if (k + c < p.K) xv[c] = x[xb + k + c];
        for (uint r = 0u; r < DV_MV_ROWS; r++) {
            if (m0 + r >= p.M) break; // the same for every thread
            const vec4 wv = dv_dequant4((m0 + r) * p.row_bytes, k, p.K);
            acc[r] = dv_acc(acc[r], wv.x * xv.x);
            acc[r] = dv_acc(acc[r], wv.y * xv.y);
            acc[r] = dv_acc(acc[r], wv.z * xv.z);
            acc[r] = dv_acc(acc[r], wv.w * xv.w);
        }
    }

    for (uint r = 0u; r < DV_MV_ROWS; r++) part[r][tid] = acc[r];
    barrier(); // every partial sum is in shared memory
    for (uint s = LOCAL / 2u; s > 0u; s >>= 1) {
        if (tid < s)
            for (uint r = 0u; r < DV_MV_ROWS; r++)
                part[r][tid] = dv_acc(part[r][tid], part[r][tid + s]);
        barrier(); // this level of the tree is complete
    }
    if (tid < DV_MV_ROWS && m0 + tid < p.M) y[p.y_off + n * p.M + m0 + tid] = part[tid][0];
}
