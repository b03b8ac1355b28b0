#version 450
// matvec: y[n, m] = sum_k dequant(W[m, k]) * x[n, k] for few tokens (decode
// and small batches, N <= DV_MV_MAX_N), where the tiled kernel would leave
// most of its tile empty. Interface and faults: matmul_body.glsl. Correct
// for any M, N, K.
//
// Dispatch: groups = (ceil(M / DV_MV_ROWS), ceil(N / NT), 1), with two
// specialization constants: NT (DV_SPEC_MV_NT, 1..DV_MV_NT) tokens per
// group, and XV (DV_SPEC_MV_XV), set when x_off and K are multiples of 4,
// so that every row of x is 16-byte aligned and read 4 floats at a time.
//
// A workgroup computes the ROWS x NT block of y at rows m0 = group.x * ROWS,
// tokens n0 = group.y * NT. The threads split K; each dequantizes its share
// of the ROWS rows once and multiplies every group of 4 weights with the x
// of all NT tokens, into ROWS x NT f32 sums held in registers. A thread
// works in chunks of 8 groups of 4: for most types the groups at
// k = 4 (t + LOCAL i) for thread t, i = 8c .. 8c + 7; for q4_k 32 weights
// of one block, the thread taking whole blocks t + LOCAL i, so that it
// reads a block's 16-byte header once for 256 weights and the 4 bits of 32
// weights as one 16-byte word. Rows past M and tokens past N (in the last
// groups) compute with row M - 1 and token N - 1 and are not written.
//
// Why this shape: on lavapipe (llvmpipe) the threads of a workgroup run as
// SIMD lanes, and every load from a buffer or from shared memory is a loop
// over the lanes, one scalar load per component: loads, not arithmetic,
// are the cost. So each 4 floats of x are loaded once per thread for all
// ROWS rows, each weight once for all NT tokens, weights come in the
// widest words their alignment allows, and a workgroup is one batch of 8
// lanes, so the final reduction is a few loads. A kernel built for one NT
// spends nothing on absent tokens (the host builds the NT it needs).
//
// Order: each output is an f32 sum in three levels: a thread's products of
// one chunk in a fixed order, then its chunk sums in increasing k, then the
// LOCAL thread sums in a fixed-order tree. One running sum per thread would
// carry a rounding error growing with K / LOCAL (704 terms on TinyLlama's
// ffn_down, K = 5632), as matmul.comp explains. The same inputs give the
// same bits, with no atomics, and as no order depends on NT, on group.y or
// on N, a token's result is the same bits whichever tokens share its
// dispatch.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "shared.h"
#include "matmul_body.glsl"

#define LOCAL 8                 // threads per workgroup: a power of two (the tree)
#define ROWS DV_MV_ROWS
#define RQ (ROWS / 4)           // vec4s of rows

#if ROWS % 4
#error "matvec.comp: DV_MV_ROWS must be a multiple of 4"
#endif

layout(local_size_x = LOCAL) in;
layout(constant_id = DV_SPEC_MV_NT) const uint NT = 1;
layout(constant_id = DV_SPEC_MV_XV) const bool XV = false;

// x as 4-float words, read when XV.
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };

// part[t][j * RQ + q]: thread t's sums for token n0 + j, rows m0 + 4q ..
shared vec4 part[LOCAL][DV_MV_NT * RQ];

// acc[r][j], cs[r][j]: this thread's sum and current chunk's sum for row
// m0 + r, token n0 + j (only j < NT is used).
float acc[ROWS][DV_MV_NT], cs[ROWS][DV_MV_NT];
vec4 xv[DV_MV_NT];   // x of the current 4 k, per token
uint xrow[DV_MV_NT]; // where token n0 + j's row of x starts (clamped to N - 1)

// x[n, k .. k + 3] for the tokens of the group at k (k % 4 == 0); those at
// or past K are 0.
void load_x(uint k)
{
    for (uint j = 0u; j < NT; j++) {
        const uint i = xrow[j] + k;
        if (XV) {
            xv[j] = x4[i >> 2]; // i % 4 == 0, and k + 4 <= K as K % 4 == 0
        } else {
            xv[j] = vec4(0.0);
            for (uint c = 0u; c < 4u; c++)
                if (k + c < p.K) xv[j][c] = x[i + c];
        }
    }
}

void chunk_start()
{
    for (uint r = 0u; r < ROWS; r++)
        for (uint j = 0u; j < NT; j++) cs[r][j] = 0.0;
}

// Row r's 4 weights wv times the x of every token, added to the chunk sums.
void mac(uint r, vec4 wv)
{
    for (uint j = 0u; j < NT; j++) {
        float s = cs[r][j];
        s = dv_acc(s, wv.x * xv[j].x);
        s = dv_acc(s, wv.y * xv[j].y);
        s = dv_acc(s, wv.z * xv[j].z);
        cs[r][j] = dv_acc(s, wv.w * xv[j].w);
    }
}

void chunk_end()
{
    for (uint r = 0u; r < ROWS; r++)
        for (uint j = 0u; j < NT; j++) acc[r][j] = dv_acc(acc[r][j], cs[r][j]);
}

// q4_k: thread tid takes blocks b = tid + LOCAL i (k_end is K here, a
// multiple of 256). In a block, sub-blocks 2 pr and 2 pr + 1 share
// qs[32 pr .. 32 pr + 31], low and high nibbles; each half hf of it, one
// 16-byte word and a chunk, holds 32 weights: nibble hi of byte 4 v + c is
// the weight at k = 256 b + 64 pr + 16 hf + 32 hi + 4 v + c. The loops over
// pr, hf and the 8 groups of 4 stay loops: unrolled, they multiply the code
// (and llvmpipe's compile time, seconds per kernel) for no speed.
void q4_k_rows(uint tid, uint m0, uint k_end)
{
    for (uint b = tid; 256u * b < k_end; b += LOCAL) {
        uvec4 head[ROWS];
        uint wb[ROWS]; // byte where row m0 + r's block b starts
        for (uint r = 0u; r < ROWS; r++) {
            wb[r] = min(m0 + r, p.M - 1u) * p.row_bytes + DV_Q4_K_BYTES * b;
            head[r] = dv_q4_k_head(wb[r]);
        }
        [[dont_unroll]] for (uint pr = 0u; pr < 4u; pr++) {
            vec2 dm[ROWS][2]; // scales of sub-blocks 2 pr (low nibbles), 2 pr + 1 (high)
            for (uint r = 0u; r < ROWS; r++)
                for (uint hi = 0u; hi < 2u; hi++) dm[r][hi] = dv_q4_k_dm(head[r], 2u * pr + hi);
            [[dont_unroll]] for (uint hf = 0u; hf < 2u; hf++) {
                const uint k0 = 256u * b + 64u * pr + 16u * hf;
                uvec4 qs[ROWS];
                for (uint r = 0u; r < ROWS; r++)
                    qs[r] = w4[(wb[r] + DV_Q4_K_QS + 32u * pr + 16u * hf) >> 4];
                chunk_start();
                [[dont_unroll]] for (uint i = 0u; i < 8u; i++) {
                    const uint hi = i >> 2, v = i & 3u;
                    load_x(k0 + 32u * hi + 4u * v);
                    for (uint r = 0u; r < ROWS; r++)
                        mac(r, dv_q4_k_values(hi == 0u ? dm[r][0] : dm[r][1],
                                              qs[r][v] >> (4u * hi)));
                }
                chunk_end();
            }
        }
    }
}

// Any other type: chunk c of thread tid is the groups of 4 at k = 4 (tid +
// LOCAL i), i = 8c .. 8c + 7, those below k_end. k_end is K or a multiple
// of DV_MM_BK (a multiple of 4), so only an f32/f16/bf16 row of K % 4 != 0
// can end inside a group (dv_dequant4 and load_x give 0 past K). With XV,
// K % 4 == 0: whole groups, aligned words (dv_dequant4_k4).
void any_rows(uint tid, uint m0, uint k_end)
{
    uint rb[ROWS];
    for (uint r = 0u; r < ROWS; r++) rb[r] = min(m0 + r, p.M - 1u) * p.row_bytes;
    for (uint kc = 4u * tid; kc < k_end; kc += 32u * LOCAL) {
        chunk_start();
        [[dont_unroll]] for (uint i = 0u; i < 8u; i++) {
            const uint k = kc + 4u * LOCAL * i;
            if (k >= k_end) break;
            load_x(k);
            for (uint r = 0u; r < ROWS; r++)
                mac(r, XV ? dv_dequant4_k4(rb[r], k, p.K) : dv_dequant4(rb[r], k, p.K));
        }
        chunk_end();
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.x * ROWS, n0 = gl_WorkGroupID.y * NT;

    for (uint r = 0u; r < ROWS; r++)
        for (uint j = 0u; j < NT; j++) acc[r][j] = 0.0;
    for (uint j = 0u; j < NT; j++) xrow[j] = p.x_off + min(n0 + j, p.N - 1u) * p.K;

    if (WTYPE == DV_W_Q4_K) q4_k_rows(tid, m0, dv_k_end());
    else any_rows(tid, m0, dv_k_end());

    for (uint j = 0u; j < NT; j++)
        for (uint q = 0u; q < RQ; q++)
            part[tid][j * RQ + q] = vec4(acc[4u * q][j], acc[4u * q + 1u][j],
                                         acc[4u * q + 2u][j], acc[4u * q + 3u][j]);
    barrier(); // every thread's sums are in shared memory

    // Thread tid adds up the vec4s o = tid + LOCAL i of part over the
    // threads, in registers: a tree, t with t + s for s = LOCAL / 2 .. 1.
    for (uint o = tid; o < NT * RQ; o += LOCAL) {
        vec4 v[LOCAL];
        for (uint t = 0u; t < LOCAL; t++) v[t] = part[t][o];
        for (uint s = LOCAL / 2u; s > 0u; s >>= 1)
            for (uint t = 0u; t < s; t++)
                v[t] = vec4(dv_acc(v[t].x, v[t + s].x), dv_acc(v[t].y, v[t + s].y),
                            dv_acc(v[t].z, v[t + s].z), dv_acc(v[t].w, v[t + s].w));
        const uint n = n0 + o / RQ, m = m0 + 4u * (o % RQ);
        if (n < p.N)
            for (uint c = 0u; c < 4u; c++)
                if (m + c < p.M) y[p.y_off + n * p.M + m + c] = v[0][c];
    }
}
