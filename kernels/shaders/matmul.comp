#version 450
// matmul: y[n, m] = sum_k dequant(W[m, k]) * x[n, k], the tiled kernel for
// many tokens (prefill). Interface and faults: matmul_body.glsl.
//
// Dispatch: groups = (ceil(M / DV_MM_BM), ceil(N / DV_MM_BN), 1).
//
// A workgroup owns the DV_MM_BM x DV_MM_BN block of y at rows
// m0 = group.x * BM, tokens n0 = group.y * BN. It walks K in tiles of
// DV_MM_BK: all threads stage the W tile (BM rows x BK, dequantized to f32)
// and the x tile (BN tokens x BK) in shared memory, then every thread adds
// the tile's products into its TM x TN micro-tile of y, kept in registers.
// Thread (tx, ty) owns rows m0 + tx + LX*i and tokens n0 + ty + LY*j: the
// rows are strided so that neighbouring threads read neighbouring shared
// words and write neighbouring y. Each output is an f32 sum over k in
// increasing order, with no atomics: the same inputs give the same bits.
//
// Rows past M, tokens past N and k past K are staged as 0 and never
// written, so any M, N, K works (K a multiple of the type's block).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
#include "matmul_body.glsl"

#define TM 4                   // rows of y per thread
#define TN 4                   // tokens of y per thread
#define LX (DV_MM_BM / TM)     // threads along m
#define LY (DV_MM_BN / TN)     // threads along n
#define LOCAL (LX * LY)
#define KQ (DV_MM_BK / 4)      // groups of 4 k in a tile row
#define W_QUADS (DV_MM_BM * KQ / LOCAL) // groups of 4 weights each thread stages
#define X_QUADS (DV_MM_BN * KQ / LOCAL) // groups of 4 activations each thread stages

#if DV_MM_BM % TM || DV_MM_BN % TN || DV_MM_BK % 4 || (DV_MM_BM * KQ) % LOCAL || \
    (DV_MM_BN * KQ) % LOCAL
#error "matmul.comp: tile sizes must split evenly over the threads"
#endif

layout(local_size_x = LOCAL) in;

// k-major tiles, so the inner loop reads one k-row of each. The +1 column
// spreads the staging stores (a thread writes 4 k-rows of one column) over
// distinct shared-memory banks.
shared float ws[DV_MM_BK][DV_MM_BM + 1]; // ws[k][m]: W[m0 + m, k0 + k]
shared float xs[DV_MM_BK][DV_MM_BN + 1]; // xs[k][n]: x[n0 + n, k0 + k]

// Stage tile k0: W rows m0.. and x tokens n0.. at k0..k0+BK-1. Thread by
// thread, consecutive threads take consecutive groups of 4 along a row,
// so a warp reads contiguous bytes of W and x.
void stage(uint tid, uint m0, uint n0, uint k0)
{
    for (uint i = 0u; i < W_QUADS; i++) {
        const uint v = tid + LOCAL * i, r = v / KQ, q = 4u * (v % KQ);
        vec4 a = vec4(0.0);
        if (m0 + r < p.M && k0 + q < p.K) a = dv_dequant4((m0 + r) * p.row_bytes, k0 + q, p.K);
        ws[q][r] = a.x, ws[q + 1u][r] = a.y, ws[q + 2u][r] = a.z, ws[q + 3u][r] = a.w;
    }
    for (uint i = 0u; i < X_QUADS; i++) {
        const uint v = tid + LOCAL * i, r = v / KQ, q = 4u * (v % KQ);
        const uint xb = p.x_off + (n0 + r) * p.K + k0 + q;
        for (uint c = 0u; c < 4u; c++)
            xs[q + c][r] = (n0 + r < p.N && k0 + q + c < p.K) ? x[xb + c] : 0.0;
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x, tx = tid % LX, ty = tid / LX;
    const uint m0 = gl_WorkGroupID.x * DV_MM_BM, n0 = gl_WorkGroupID.y * DV_MM_BN;
    const uint k_end = dv_k_end();

    float acc[TM][TN];
    for (uint i = 0u; i < TM; i++)
        for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < k_end; k0 += DV_MM_BK) {
        stage(tid, m0, n0, k0);
        barrier(); // the tiles are complete before anyone reads them
        for (uint kk = 0u; kk < DV_MM_BK; kk++) {
            float a[TM], b[TN];
            for (uint i = 0u; i < TM; i++) a[i] = ws[kk][tx + LX * i];
            for (uint j = 0u; j < TN; j++) b[j] = xs[kk][ty + LY * j];
            for (uint i = 0u; i < TM; i++)
                for (uint j = 0u; j < TN; j++) acc[i][j] = dv_acc(acc[i][j], a[i] * b[j]);
        }
        barrier(); // everyone is done reading before the next stage overwrites
    }

    for (uint i = 0u; i < TM; i++) {
        const uint m = m0 + tx + LX * i;
        for (uint j = 0u; j < TN; j++) {
            const uint n = n0 + ty + LY * j;
            if (m < p.M && n < p.N) y[p.y_off + n * p.M + m] = acc[i][j];
        }
    }
}
