#version 450
// matmul: y[n, m] = sum_k dequant(W[m, k]) * x[n, k], the tiled kernel for
// many tokens (prefill). Interface and faults: matmul_body.glsl.
//
// Dispatch: groups = (ceil(M / DV_MM_BM), ceil(N / DV_MM_BN), 1).
//
// A workgroup owns the DV_MM_BM x DV_MM_BN block of y at rows
// m0 = group.x * BM, tokens n0 = group.y * BN. It walks K in tiles of
// DV_MM_BK: all threads stage the W tile (BM rows x BK, dequantized to f32)
// and the x tile (BN tokens x BK) in shared memory, then each thread adds
// the tile's products into its TM x TN micro-tile of y, kept in registers:
// rows m0 + tx + LX*i, tokens n0 + ty + LY*j (strided, so neighbouring
// threads read neighbouring rows and write neighbouring y).
//
// Both tiles are row-major with 4 k to a vec4: staging stores whole vec4s
// as dv_dequant4 makes them, and the inner loop reads TM + TN vec4s for
// 4 * TM * TN multiply-adds. Few, wide shared-memory loads matter on every
// device, most on llvmpipe (lavapipe), where each load instruction is a
// loop over the SIMD lanes.
//
// Each output is an f32 sum in two levels: the products of one K tile in
// increasing k, then the tile sums in increasing k0, with no atomics: the
// same inputs give the same bits. One running sum over all of K would
// carry a rounding error growing with K (measured on TinyLlama's K = 5632
// ffn_down: 2-3x the CPU reference's error against the f64 oracle, whose
// BLAS keeps several partial sums, so clean runs crossed bisect's noise
// floor); two levels grow with BK + K/BK instead. Rows past M,
// tokens past N and k past K are staged as 0 and never written, so any
// M, N, K works (K a multiple of the type's block).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
#include "matmul_body.glsl"

#define TM 8                   // rows of y per thread
#define TN 4                   // tokens of y per thread
#define LX (DV_MM_BM / TM)     // threads along m
#define LY (DV_MM_BN / TN)     // threads along n
#define LOCAL (LX * LY)
#define KQ (DV_MM_BK / 4)      // vec4s of k in a tile row
#define W_QUADS (DV_MM_BM * KQ / LOCAL) // vec4s of W each thread stages
#define X_QUADS (DV_MM_BN * KQ / LOCAL) // vec4s of x each thread stages

#if DV_MM_BM % TM || DV_MM_BN % TN || DV_MM_BK % 4 || (DV_MM_BM * KQ) % LOCAL || \
    (DV_MM_BN * KQ) % LOCAL
#error "matmul.comp: tile sizes must split evenly over the threads"
#endif

layout(local_size_x = LOCAL) in;

// The +1 vec4 per row puts the rows read together (LX apart in a thread's
// view, 1 apart across threads) in different shared-memory banks.
shared vec4 ws[DV_MM_BM][KQ + 1]; // ws[m][q]: W[m0 + m, k0 + 4q .. 4q+3]
shared vec4 xs[DV_MM_BN][KQ + 1]; // xs[n][q]: x[n0 + n, k0 + 4q .. 4q+3]

// Stage tile k0: W rows m0.. and x tokens n0.. at k0..k0+BK-1. Consecutive
// threads take consecutive vec4s along a row, so a warp reads contiguous
// bytes of W and x.
void stage(uint tid, uint m0, uint n0, uint k0)
{
    for (uint i = 0u; i < W_QUADS; i++) {
        const uint v = tid + LOCAL * i, r = v / KQ, q = v % KQ, k = k0 + 4u * q;
        vec4 a = vec4(0.0);
        if (m0 + r < p.M && k < p.K) a = dv_dequant4((m0 + r) * p.row_bytes, k, p.K);
        ws[r][q] = a;
    }
    for (uint i = 0u; i < X_QUADS; i++) {
        const uint v = tid + LOCAL * i, r = v / KQ, q = v % KQ, k = k0 + 4u * q;
        const uint xb = p.x_off + (n0 + r) * p.K + k;
        vec4 b = vec4(0.0);
        if (n0 + r < p.N)
            for (uint c = 0u; c < 4u; c++)
                if (k + c < p.K) b[c] = x[xb + c];
        xs[r][q] = b;
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x, tx = tid % LX, ty = tid / LX;
    const uint m0 = gl_WorkGroupID.x * DV_MM_BM, n0 = gl_WorkGroupID.y * DV_MM_BN;
    const uint k_end = dv_k_end();

    float acc[TM][TN]; // acc[i][j]: y[n0 + ty + LY*j, m0 + tx + LX*i]
    for (uint i = 0u; i < TM; i++)
        for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < k_end; k0 += DV_MM_BK) {
        stage(tid, m0, n0, k0);
        barrier(); // the tiles are complete before anyone reads them
        float part[TM][TN]; // this K tile's sums
        for (uint i = 0u; i < TM; i++)
            for (uint j = 0u; j < TN; j++) part[i][j] = 0.0;
        for (uint q = 0u; q < KQ; q++) {
            vec4 a[TM], b[TN];
            for (uint i = 0u; i < TM; i++) a[i] = ws[tx + LX * i][q];
            for (uint j = 0u; j < TN; j++) b[j] = xs[ty + LY * j][q];
            for (uint i = 0u; i < TM; i++)
                for (uint j = 0u; j < TN; j++) {
                    float s = part[i][j];
                    s = dv_acc(s, a[i].x * b[j].x);
                    s = dv_acc(s, a[i].y * b[j].y);
                    s = dv_acc(s, a[i].z * b[j].z);
                    part[i][j] = dv_acc(s, a[i].w * b[j].w);
                }
        }
        for (uint i = 0u; i < TM; i++)
            for (uint j = 0u; j < TN; j++) acc[i][j] = dv_acc(acc[i][j], part[i][j]);
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
