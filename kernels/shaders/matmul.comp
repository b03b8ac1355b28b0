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
// the tile's products into its micro-tile of y, kept in registers: TM rows
// (m0 + tid + LOCAL*i) by all BN tokens, 4 tokens to a vec4.
//
// Why every thread takes all tokens: at each k the threads read different
// words of the W tile (neighbours, no bank conflict) but the SAME words of
// the x tile, a broadcast. GPUs serve that in one access, and llvmpipe
// (lavapipe) turns a uniform load into one scalar load where a varying one
// costs a loop over the SIMD lanes, so the inner loop does TM * BN
// multiply-adds for TM varying and BN / 4 uniform vec4 loads.
//
// Each output is an f32 sum over k in increasing order, with no atomics:
// the same inputs give the same bits. Rows past M, tokens past N and k
// past K are staged as 0 and never written, so any M, N, K works (K a
// multiple of the type's block).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
#include "matmul_body.glsl"

#define TM 1                     // rows of y per thread
#define LOCAL (DV_MM_BM / TM)    // threads per workgroup
#define BN4 (DV_MM_BN / 4)       // vec4s of tokens in a tile row
#define KQ (DV_MM_BK / 4)        // groups of 4 k in a tile row
#define W_QUADS (DV_MM_BM * KQ / LOCAL) // groups of 4 weights each thread stages
#define X_QUADS (DV_MM_BN * KQ / LOCAL) // groups of 4 activations each thread stages

#if DV_MM_BM % TM || DV_MM_BN % 4 || DV_MM_BK % 4 || (DV_MM_BM * KQ) % LOCAL || \
    (DV_MM_BN * KQ) % LOCAL
#error "matmul.comp: tile sizes must split evenly over the threads"
#endif

layout(local_size_x = LOCAL) in;

// k-major tiles: the inner loop reads one k-row of each. The +1 column
// spreads the staging stores (a thread writes 4 k-rows of one column) over
// distinct shared-memory banks.
shared float ws[DV_MM_BK][DV_MM_BM + 1]; // ws[k][m]: W[m0 + m, k0 + k]
shared vec4 xs[DV_MM_BK][BN4];          // xs[k][j][c]: x[n0 + 4j + c, k0 + k]

// Stage tile k0: W rows m0.. and x tokens n0.. at k0..k0+BK-1. Consecutive
// threads take consecutive groups of 4 k along a row, so a warp reads
// contiguous bytes of W and x.
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
            xs[q + c][r >> 2][r & 3u] = (n0 + r < p.N && k0 + q + c < p.K) ? x[xb + c] : 0.0;
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.x * DV_MM_BM, n0 = gl_WorkGroupID.y * DV_MM_BN;
    const uint k_end = dv_k_end();

    vec4 acc[TM][BN4]; // acc[i][j][c]: y[n0 + 4j + c, m0 + tid + LOCAL*i]
    for (uint i = 0u; i < TM; i++)
        for (uint j = 0u; j < BN4; j++) acc[i][j] = vec4(0.0);

    for (uint k0 = 0u; k0 < k_end; k0 += DV_MM_BK) {
        stage(tid, m0, n0, k0);
        barrier(); // the tiles are complete before anyone reads them
        for (uint kk = 0u; kk < DV_MM_BK; kk++) {
            for (uint i = 0u; i < TM; i++) {
                const float a = ws[kk][tid + LOCAL * i];
                for (uint j = 0u; j < BN4; j++) acc[i][j] = dv_acc4(acc[i][j], a * xs[kk][j]);
            }
        }
        barrier(); // everyone is done reading before the next stage overwrites
    }

    for (uint i = 0u; i < TM; i++) {
        const uint m = m0 + tid + LOCAL * i;
        if (m >= p.M) continue;
        for (uint j = 0u; j < BN4; j++)
            for (uint c = 0u; c < 4u; c++) {
                const uint n = n0 + 4u * j + c;
                if (n < p.N) y[p.y_off + n * p.M + m] = acc[i][j][c];
            }
    }
}
