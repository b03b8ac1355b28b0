/*
 * test_arith.c - ggml's activation quantizers and the declared-arithmetic
 * tables (core/arith.c).
 *
 * Known blocks worked out by hand from ggml's formulas (arith.c's top
 * comment): exact ties, a 1/d that rounds differently in the two variants,
 * zeros, all-equal values, a negative maximum, f16-subnormal scales, the
 * x86 code's tiny-block rule. Then properties on seeded rows: every value
 * within half a step of its input (with the bound worked out below), the
 * two variants at most one step apart, rounding twice is rounding once,
 * the f64 round trip on the same grid as the f32 one, and the tables.
 * The bit-for-bit comparison with ggml itself is test_llamacpp_quant.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "../common/testutil.h"
#include "arith.h"
#include "engine.h"
#include "error.h"
#include "quant.h"
#include "types.h"

#define SENTINEL 0xa5
#define U 0x1p-24 /* unit roundoff of f32 */

/* Rows with the amplitude changing every 32 values over nine decades
 * (1e-6 .. 1e3, so f16-subnormal scales occur), some blocks all zero. */
static void fill(float *x, int n, uint32_t seed)
{
    static const float amp[8] = {1.0f, 1000.0f, 0.05f, 1e-6f, 7.0f, 3e-4f, 0.0f, 0.5f};
    uint32_t s = seed;
    for (int i = 0; i < n; i++) x[i] = amp[(i / 32) % 8] * tu_rand_signed(&s);
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Quantize one q8_0 block (32 values) with `variant`; the sentinel bytes
 * after it must stay. */
static void q8_0_block(const float *x, int variant, uint16_t *d, int8_t q[32])
{
    uint8_t b[34 + 8];
    memset(b, SENTINEL, sizeof b);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_0, variant, x, b, 32), DV_OK);
    for (int i = 34; i < 42; i++) assert_int_equal(b[i], SENTINEL);
    *d = get_u16(b);
    memcpy(q, b + 2, 32);
}

/* ---- known blocks ------------------------------------------------------ */

/* amax 127: d = 1, 1/d = 1 in both variants, so x * (1/d) = x and the
 * rounding rule alone decides: x86 half to even, ref half away from 0. */
static void test_q8_0_ties(void **state)
{
    float x[32] = {127, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, 4.5f};
    const int8_t x86[9] = {127, 0, 2, 2, 0, -2, -2, 4, 4};
    const int8_t ref[9] = {127, 1, 2, 3, -1, -2, -3, 4, 5};
    uint16_t d;
    int8_t q[32];
    q8_0_block(x, DV_QV_X86, &d, q);
    assert_int_equal(d, 0x3c00); /* f16 1.0 */
    assert_memory_equal(q, x86, 9);
    for (int j = 9; j < 32; j++) assert_int_equal(q[j], 0);
    q8_0_block(x, DV_QV_REF, &d, q);
    assert_int_equal(d, 0x3c00);
    assert_memory_equal(q, ref, 9);
    /* q8_1's s = f16(d * sum): sums 135 (x86) and 136 (ref) */
    uint8_t b[36];
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_1, DV_QV_X86, x, b, 32), DV_OK);
    assert_int_equal(get_u16(b), 0x3c00);
    assert_int_equal(get_u16(b + 2), 0x5838); /* 135 */
    assert_memory_equal(b + 4, x86, 9);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_1, DV_QV_REF, x, b, 32), DV_OK);
    assert_int_equal(get_u16(b + 2), 0x5840); /* 136 */
}

/* amax = 0.34375 and x = -amax/2, exactly -63.5 in real arithmetic: x86's
 * 1/d = 127/amax rounds up (369.45456), ref's 1/(amax/127) down
 * (369.45453), so the products land on either side of the tie. */
static void test_q8_0_inverse_scale(void **state)
{
    float x[32] = {0.34375f, -0.171875f};
    uint16_t d;
    int8_t q[32];
    q8_0_block(x, DV_QV_X86, &d, q);
    assert_int_equal(d, 0x198b); /* f16(0.0027066930) = 0.0027065277 */
    assert_int_equal(q[0], 127);
    assert_int_equal(q[1], -64); /* -63.500004 */
    q8_0_block(x, DV_QV_REF, &d, q);
    assert_int_equal(d, 0x198b);
    assert_int_equal(q[1], -63); /* -63.499996 */
}

/* Zeros, all-equal values, a negative maximum, an f16-subnormal scale. */
static void test_q8_0_blocks(void **state)
{
    float x[32] = {0};
    uint16_t d;
    int8_t q[32], zero[32] = {0};
    for (int v = 0; v < DV_QV_COUNT; v++) {
        q8_0_block(x, v, &d, q); /* amax 0: d 0, 1/d taken as 0 */
        assert_int_equal(d, 0);
        assert_memory_equal(q, zero, 32);
    }
    for (int j = 0; j < 32; j++) x[j] = 0.3f; /* x * (127/amax) = 127.0 exactly */
    q8_0_block(x, DV_QV_X86, &d, q);
    assert_int_equal(d, 0x18d6); /* f16(0.3f/127) */
    for (int j = 0; j < 32; j++) assert_int_equal(q[j], 127);
    float neg[32] = {-5, 2.5f, -1.25f, 0.1f}; /* 1/d = 25.4f: 63.5 (a tie), -31.75, 2.54 */
    const int8_t want[4] = {-127, 64, -32, 3};
    for (int v = 0; v < DV_QV_COUNT; v++) {
        q8_0_block(neg, v, &d, q);
        assert_int_equal(d, 0x290a); /* f16(5/127) */
        assert_memory_equal(q, want, 4);
    }
    /* amax 1e-3: d = 7.874e-6, below f16's smallest normal 6.1e-5, stored
     * as the subnormal 132 * 2^-24; the quants use the unrounded 1/d */
    float sub[32] = {1e-3f, -5e-4f, 2.5e-4f, -1e-3f};
    const int8_t wsub[4] = {127, -64, 32, -127};
    for (int v = 0; v < DV_QV_COUNT; v++) {
        q8_0_block(sub, v, &d, q);
        assert_int_equal(d, 0x0084);
        assert_memory_equal(q, wsub, 4);
    }
    float r[32];
    memcpy(r, sub, sizeof r);
    dv_arith_round_f32(DV_TYPE_Q8_0, r, 32);
    assert_true(r[0] == 132 * 0x1p-24f * 127);
    assert_true(r[1] == 132 * 0x1p-24f * -64);
}

/* Below amax = 127 * 2^-128 the x86 code's 127/amax is +inf: x * inf is
 * inf (or NaN for 0), which vcvtps2dq turns into INT32_MIN and the packs
 * into -128; d = f16(amax/127) is 0, so every value rounds to 0. */
static void test_q8_0_tiny_block(void **state)
{
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = j < 16 ? 1e-38f : 0.0f;
    uint16_t d;
    int8_t q[32];
    q8_0_block(x, DV_QV_X86, &d, q);
    assert_int_equal(d, 0);
    for (int j = 0; j < 32; j++) assert_int_equal(q[j], -128);
    dv_arith_round_f32(DV_TYPE_Q8_0, x, 32);
    for (int j = 0; j < 32; j++) assert_true(x[j] == 0.0f);
}

/* One q8_K block: d (f32), 256 quants, 16 bsums. */
struct kblock {
    float d;
    int8_t q[256];
    int16_t bsums[16];
};

static void q8_k_block(const float *x, struct kblock *b)
{
    uint8_t raw[292 + 8];
    memset(raw, SENTINEL, sizeof raw);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_K, DV_QV_X86, x, raw, 256), DV_OK);
    for (int i = 292; i < 300; i++) assert_int_equal(raw[i], SENTINEL);
    uint8_t again[292];
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_K, DV_QV_REF, x, again, 256), DV_OK);
    assert_memory_equal(raw, again, 292); /* x86 runs the reference code */
    memcpy(&b->d, raw, 4);
    memcpy(b->q, raw + 4, 256);
    for (int j = 0; j < 16; j++) b->bsums[j] = (int16_t)get_u16(raw + 260 + 2 * j);
}

/* iscale = -127/max with max the first value of largest magnitude, signed;
 * nearest_int rounds half to even. */
static void test_q8_k_blocks(void **state)
{
    float x[256] = {2.0f, 1.0f, -1.0f, 0.5f, 1.5f};
    struct kblock b;
    q8_k_block(x, &b); /* iscale -63.5: -63.5 -> -64, 63.5 -> 64, -31.75, -95.25 */
    assert_true(b.d == 1.0f / -63.5f);
    const int8_t w1[5] = {-127, -64, 64, -32, -95};
    assert_memory_equal(b.q, w1, 5);
    assert_int_equal(b.bsums[0], -254);
    for (int j = 1; j < 16; j++) assert_int_equal(b.bsums[j], 0);
    x[0] = -2.0f; /* a negative maximum: iscale +63.5, d > 0 */
    q8_k_block(x, &b);
    assert_true(b.d == 1.0f / 63.5f);
    const int8_t w2[5] = {-127, 64, -64, 32, 95};
    assert_memory_equal(b.q, w2, 5);
    assert_int_equal(b.bsums[0], 0);
    float t[256] = {127.0f, 2.5f, -0.5f, 1.5f}; /* iscale -1: exact ties */
    q8_k_block(t, &b);
    assert_true(b.d == -1.0f);
    const int8_t w3[4] = {-127, -2, 0, -2};
    assert_memory_equal(b.q, w3, 4);
    assert_int_equal(b.bsums[0], -131);
    float two[256] = {-3.0f, 3.0f, 1.5f}; /* -3 comes first: it is the max */
    q8_k_block(two, &b);
    assert_true(b.d > 0);
    assert_int_equal(b.q[0], -127);
    assert_int_equal(b.q[1], 127);
    assert_int_equal(b.q[2], 64);
    float eq[256];
    for (int j = 0; j < 256; j++) eq[j] = 0.3f;
    q8_k_block(eq, &b);
    for (int j = 0; j < 256; j++) assert_int_equal(b.q[j], -127);
    for (int j = 0; j < 16; j++) assert_int_equal(b.bsums[j], -2032);
    float z[256] = {0};
    q8_k_block(z, &b);
    assert_true(b.d == 0.0f && !signbit(b.d));
    for (int j = 0; j < 256; j++) assert_int_equal(b.q[j], 0);
}

static void test_half_types(void **state)
{
    const float x[6] = {1.0f, 65519.0f, 65520.0f, 0x1p-25f, 3 * 0x1p-25f, 1.00390625f};
    uint8_t h[12], bf[12];
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_F16, DV_QV_X86, x, h, 6), DV_OK);
    const uint16_t wh[6] = {0x3c00, 0x7bff, 0x7c00, 0x0000, 0x0002, 0x3c04};
    for (int i = 0; i < 6; i++) assert_int_equal(get_u16(h + 2 * i), wh[i]);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_BF16, DV_QV_REF, x, bf, 6), DV_OK);
    assert_int_equal(get_u16(bf), 0x3f80);
    assert_int_equal(get_u16(bf + 10), 0x3f80); /* 1 + 2^-8: a tie, to even */
}

static void test_bad_arguments(void **state)
{
    float x[64] = {0};
    uint8_t b[128];
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q4_0, DV_QV_X86, x, b, 32), DV_E_USAGE);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_0, DV_QV_X86, x, b, 33), DV_E_USAGE);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_K, DV_QV_X86, x, b, 32), DV_E_USAGE);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_0, DV_QV_COUNT, x, b, 32), DV_E_USAGE);
    assert_int_equal(dv_arith_check_row(DV_TYPE_Q8_K, 192, "x"), DV_E_USAGE);
    assert_int_equal(dv_arith_check_row(DV_TYPE_Q8_0, 192, "x"), DV_OK);
    assert_int_equal(dv_arith_check_row(DV_TYPE_F16, 7, "x"), DV_OK);
    assert_int_equal(dv_arith_check_row(DV_TYPE_F32, 7, "x"), DV_OK);
}

/* ---- properties on seeded rows ----------------------------------------- */

enum { N = 32 * 256 }; /* 256 q8_0 blocks, 32 q8_K blocks */

/* Every q8_0 value within half a step of its input. With d* = amax/127
 * exact, 1/d and x * (1/d) each rounded (ref: 1/(fl(amax/127)), one more
 * rounding), |x * 127/amax - q| <= 1/2 + 3 * 127 u (1 + u), so
 * |x - d* q| <= d* (1/2 + 400 u); the stored d16 adds |d* - d16| |q|. */
static void test_q8_0_within_half_step(void **state)
{
    static float x[N];
    fill(x, N, 11);
    static uint8_t b[N / 32 * 34];
    for (int v = 0; v < DV_QV_COUNT; v++) {
        assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_0, v, x, b, N), DV_OK);
        for (int i = 0; i < N / 32; i++) {
            double amax = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[32 * i + j]));
            const double dx = amax / 127, d16 = dv_f16_to_f32(get_u16(b + 34 * i));
            for (int j = 0; j < 32; j++) {
                const int q = (int8_t)b[34 * i + 2 + j];
                const double err = fabs(x[32 * i + j] - d16 * q);
                assert_true(err <= dx * (0.5 + 400 * U) + fabs(dx - d16) * abs(q));
            }
        }
    }
}

/* q8_K: d = fl(1/iscale) is the step; value fl(d q). The same analysis
 * with one more rounding for d and one for d q: |x - v| <= |d| (1/2 +
 * 800 u), far below a step and far above the roundings. */
static void test_q8_k_within_half_step(void **state)
{
    static float x[N], r[N];
    fill(x, N, 12);
    memcpy(r, x, sizeof r);
    dv_arith_round_f32(DV_TYPE_Q8_K, r, N);
    for (int i = 0; i < N / 256; i++) {
        double amax = 0;
        for (int j = 0; j < 256; j++) amax = fmax(amax, fabs(x[256 * i + j]));
        const double step = amax / 127;
        for (int j = 0; j < 256; j++)
            assert_true(fabs(x[256 * i + j] - r[256 * i + j]) <= step * (0.5 + 800 * U));
    }
}

/* The two variants share d; their quants differ by at most one step, and
 * rarely: only where x * (1/d) is within a few ulps of a half. */
static void test_variants_one_step_apart(void **state)
{
    static float x[N];
    fill(x, N, 13);
    static uint8_t a[N / 32 * 34], b[N / 32 * 34];
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_0, DV_QV_X86, x, a, N), DV_OK);
    assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_0, DV_QV_REF, x, b, N), DV_OK);
    int n_diff = 0;
    for (int i = 0; i < N / 32; i++) {
        assert_int_equal(get_u16(a + 34 * i), get_u16(b + 34 * i));
        for (int j = 0; j < 32; j++) {
            const int qa = (int8_t)a[34 * i + 2 + j], qb = (int8_t)b[34 * i + 2 + j];
            assert_true(abs(qa - qb) <= 1);
            n_diff += qa != qb;
        }
    }
    /* a product within 2 ulps (of ~64) of a half: chance ~2 * 2^-17 per
     * value, about 0.1 of N; 8 allows for blocks of exact values */
    assert_true(n_diff <= 8);
}

/* Rounding a rounded row again changes nothing: the row's largest value
 * is d16 * 127 and its quants come back exactly (q8_0: the same bytes). */
static void test_round_twice(void **state)
{
    static float x[N], r[N];
    fill(x, N, 14);
    const int types[] = {DV_TYPE_Q8_0, DV_TYPE_Q8_K, DV_TYPE_F16, DV_TYPE_BF16};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        memcpy(r, x, sizeof r);
        dv_arith_round_f32(types[k], r, N);
        static float r2[N];
        memcpy(r2, r, sizeof r2);
        dv_arith_round_f32(types[k], r2, N);
        int n_moved = 0;
        for (int i = 0; i < N; i++) n_moved += r2[i] != r[i];
        /* q8_K recomputes d = 1/iscale from a rounded maximum: d may move
         * by an ulp, the quants do not; every other type is exact */
        if (types[k] != DV_TYPE_Q8_K) assert_int_equal(n_moved, 0);
        for (int i = 0; i < N; i++) assert_true(fabsf(r2[i] - r[i]) <= fabsf(r[i]) * 4 * U);
    }
}

/* The f64 round trip rounds to the same grid: f16 and bf16 of a float are
 * the same single rounding; q8_0 and q8_K values agree with the f32 ones
 * up to the rounding of the scale (f16(amax/127) from double can be one
 * f16 ulp off the f16 of fl(amax/127), q8_K's f32 d one ulp), except at
 * near-ties, where they are one step apart. */
static void test_f64_same_grid(void **state)
{
    static float x[N], r[N];
    static double y[N];
    fill(x, N, 15);
    const int types[] = {DV_TYPE_F16, DV_TYPE_BF16, DV_TYPE_Q8_0, DV_TYPE_Q8_K};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int bl = types[k] == DV_TYPE_Q8_K ? 256 : types[k] == DV_TYPE_Q8_0 ? 32 : 1;
        memcpy(r, x, sizeof r);
        for (int i = 0; i < N; i++) y[i] = x[i];
        dv_arith_round_f32(types[k], r, N);
        dv_arith_round_f64(types[k], y, N);
        int n_step = 0;
        for (int i = 0; i < N; i++) {
            if (bl == 1) { /* a float's f16 or bf16: exactly the same rounding */
                assert_true(y[i] == (double)r[i]);
                continue;
            }
            /* scale: 2^-10 relative (an f16 ulp of d, twice); else a step */
            if (fabs(y[i] - r[i]) <= fabs(r[i]) * 0x1p-10) continue;
            n_step++;
            double amax = 0;
            for (int j = i / bl * bl; j < i / bl * bl + bl; j++) amax = fmax(amax, fabs(x[j]));
            assert_true(fabs(y[i] - r[i]) <= amax / 127 * (1 + 0x1p-9));
        }
        assert_true(n_step <= 8); /* near-ties only, as above */
    }
    /* f16 and bf16 from double agree with the f32 conversions over a sweep
     * of the whole float range (every 4099th bit pattern, NaN skipped) */
    for (uint64_t u = 0; u < 0x100000000u; u += 4099) {
        float f;
        const uint32_t bits = (uint32_t)u;
        memcpy(&f, &bits, 4);
        if (isnan(f)) continue;
        double h = f, bh = f;
        float fh = f, fb = f;
        dv_arith_round_f64(DV_TYPE_F16, &h, 1);
        dv_arith_round_f64(DV_TYPE_BF16, &bh, 1);
        dv_arith_round_f32(DV_TYPE_F16, &fh, 1);
        dv_arith_round_f32(DV_TYPE_BF16, &fb, 1);
        assert_true(h == (double)fh && bh == (double)fb);
    }
}

/* ---- tables ------------------------------------------------------------ */

static void test_tables(void **state)
{
    /* auto: ggml-cpu's vec_dot_type (type_traits_cpu in ggml-cpu.c); amx
     * the same but f32 for the f16 matrices the AMX buffer type takes */
    const int w[] = {DV_TYPE_F32, DV_TYPE_F16, DV_TYPE_BF16, DV_TYPE_Q8_0, DV_TYPE_Q4_0,
                     DV_TYPE_Q4_1, DV_TYPE_Q4_K, DV_TYPE_Q6_K, DV_TYPE_IQ4_XS, DV_TYPE_IQ4_NL};
    const int a[] = {DV_TYPE_F32, DV_TYPE_F16, DV_TYPE_BF16, DV_TYPE_Q8_0, DV_TYPE_Q8_0,
                     DV_TYPE_Q8_1, DV_TYPE_Q8_K, DV_TYPE_Q8_K, DV_TYPE_Q8_K, DV_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        assert_int_equal(dv_arith_act_type(DV_ACTQ_AUTO, w[i], 64, 64), a[i]);
        assert_int_equal(dv_arith_act_type(DV_ACTQ_AMX, w[i], 64, 64),
                         w[i] == DV_TYPE_F16 ? DV_TYPE_F32 : a[i]);
        assert_int_equal(dv_arith_act_type(DV_ACTQ_NONE, w[i], 64, 64), DV_TYPE_F32);
        assert_int_equal(dv_arith_act_type(DV_ACTQ_Q8_1, w[i], 64, 64), DV_TYPE_Q8_1);
        assert_int_equal(dv_arith_act_type(DV_ACTQ_F16, w[i], 64, 64), DV_TYPE_F16);
    }
    /* AMX takes rows % 32 == 0 and cols % 16 == 0 only */
    assert_int_equal(dv_arith_act_type(DV_ACTQ_AMX, DV_TYPE_F16, 48, 64), DV_TYPE_F16);
    assert_int_equal(dv_arith_act_type(DV_ACTQ_AMX, DV_TYPE_F16, 64, 40), DV_TYPE_F16);
    assert_int_equal(dv_act_quant_from_name("amx"), DV_ACTQ_AMX);
    const int F32 = DV_TYPE_F32, F16 = DV_TYPE_F16, Q8 = DV_TYPE_Q8_0;
    /* {aq, attnq, kv, T} -> {q, k, p, v, acc_f16}, and the name a dump records */
    static const struct {
        int aq, attnq, kv, T;
        struct dv_attn_round r;
        const char *name;
    } cases[] = {
        /* ggml's CPU: the cache's vec_dot_type, unless act_quant is none */
        {DV_ACTQ_AUTO, DV_ATTNQ_AUTO, DV_TYPE_F16, 5, {F16, F32, F16, F32, false}, "qp"},
        {DV_ACTQ_AUTO, DV_ATTNQ_AUTO, DV_TYPE_Q8_0, 5, {Q8, F32, F32, F32, false}, "q"},
        {DV_ACTQ_AUTO, DV_ATTNQ_AUTO, DV_TYPE_F32, 5, {F32, F32, F32, F32, false}, "none"},
        {DV_ACTQ_NONE, DV_ATTNQ_AUTO, DV_TYPE_F16, 5, {F32, F32, F32, F32, false}, "none"},
        {DV_ACTQ_F16, DV_ATTNQ_AUTO, DV_TYPE_F16, 1, {F16, F32, F16, F32, false}, "qp"},
        /* the explicit modes, whatever act_quant says */
        {DV_ACTQ_NONE, DV_ATTNQ_Q, DV_TYPE_F16, 5, {F16, F32, F32, F32, false}, "q"},
        {DV_ACTQ_NONE, DV_ATTNQ_QP, DV_TYPE_F16, 5, {F16, F32, F16, F32, false}, "qp"},
        {DV_ACTQ_AUTO, DV_ATTNQ_NONE, DV_TYPE_F16, 5, {F32, F32, F32, F32, false}, "none"},
        {DV_ACTQ_NONE, DV_ATTNQ_Q, DV_TYPE_F32, 5, {F32, F32, F32, F32, false}, "none"},
        /* ggml's Vulkan: f32 matrix-vector products for one token, f16
         * copies for more, summed in f16 only with an f16 V cache */
        {DV_ACTQ_NONE, DV_ATTNQ_VK, DV_TYPE_F16, 1, {F32, F32, F32, F32, false}, "vk"},
        {DV_ACTQ_NONE, DV_ATTNQ_VK, DV_TYPE_F16, 2, {F16, F16, F16, F16, true}, "vk"},
        {DV_ACTQ_NONE, DV_ATTNQ_VK, DV_TYPE_F32, 1, {F32, F32, F32, F32, false}, "vk"},
        {DV_ACTQ_NONE, DV_ATTNQ_VK, DV_TYPE_F32, 6, {F16, F16, F16, F16, false}, "vk"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct dv_attn_round r = dv_arith_attn(cases[i].aq, cases[i].attnq, cases[i].kv,
                                                     cases[i].T);
        const struct dv_attn_round *e = &cases[i].r;
        if (r.q != e->q || r.k != e->k || r.p != e->p || r.v != e->v ||
            r.acc_f16 != e->acc_f16)
            fail_msg("case %zu: q %d k %d p %d v %d acc_f16 %d", i, r.q, r.k, r.p, r.v,
                     r.acc_f16);
        assert_string_equal(dv_arith_attn_name(cases[i].aq, cases[i].attnq, cases[i].kv),
                            cases[i].name);
    }
    assert_int_equal(dv_attn_quant_from_name("vk"), DV_ATTNQ_VK);
    assert_true(dv_arith_kv_ok(DV_TYPE_F16) && !dv_arith_kv_ok(DV_TYPE_Q4_0));
    assert_int_equal(dv_act_quant_from_name("q8_k"), DV_ACTQ_Q8_K);
    assert_int_equal(dv_act_quant_from_name("q8_K"), DV_ACTQ_Q8_K);
    assert_int_equal(dv_act_quant_from_name("q4_0"), -1);
}

/* What the checks say on fixtures: tiny has head_dim 16 and rows of 64
 * and 192, small head_dim 32. */
static void test_model_checks(void **state)
{
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    const char *tiny = tu_path(dir, "tiny.gguf"), *small = tu_path(dir, "small.gguf");
    assert_int_equal(dv_fixture_write("tiny-q8_0", tiny), DV_OK);
    assert_int_equal(dv_fixture_write("small-q4_k", small), DV_OK);
    struct dv_model *m;
    assert_int_equal(dv_model_open(tiny, &m), DV_OK);
    assert_int_equal(dv_arith_check(m, DV_ACTQ_AUTO, DV_TYPE_F16), DV_OK);
    assert_int_equal(dv_arith_check(m, DV_ACTQ_AUTO, DV_TYPE_Q8_0), DV_E_USAGE);
    assert_non_null(strstr(dv_errmsg(), "head_dim 16"));
    assert_int_equal(dv_arith_check(m, DV_ACTQ_Q8_K, DV_TYPE_F32), DV_E_USAGE);
    assert_non_null(strstr(dv_errmsg(), "blk.0.attn_q.weight"));
    assert_int_equal(dv_arith_check(m, DV_ACTQ_COUNT, DV_TYPE_F32), DV_E_USAGE);
    assert_int_equal(dv_arith_check(m, DV_ACTQ_NONE, DV_TYPE_Q4_0), DV_E_USAGE);
    char s[128];
    dv_arith_describe(m, DV_ACTQ_AUTO, s, sizeof s);
    assert_string_equal(s, "q8_0=q8_0");
    dv_arith_describe(m, DV_ACTQ_NONE, s, sizeof s);
    assert_string_equal(s, "q8_0=none");
    dv_arith_describe(m, DV_ACTQ_F16, s, 5); /* cut, still a string */
    assert_string_equal(s, "q8_0");
    dv_model_free(m);
    assert_int_equal(dv_model_open(small, &m), DV_OK);
    assert_int_equal(dv_arith_check(m, DV_ACTQ_AUTO, DV_TYPE_Q8_0), DV_OK);
    dv_arith_describe(m, DV_ACTQ_AUTO, s, sizeof s);
    printf("  small-q4_k under auto: %s\n", s);
    assert_non_null(strstr(s, "q4_k=q8_k"));
    dv_model_free(m);
    tu_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0_ties),
        cmocka_unit_test(test_q8_0_inverse_scale),
        cmocka_unit_test(test_q8_0_blocks),
        cmocka_unit_test(test_q8_0_tiny_block),
        cmocka_unit_test(test_q8_k_blocks),
        cmocka_unit_test(test_half_types),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_q8_0_within_half_step),
        cmocka_unit_test(test_q8_k_within_half_step),
        cmocka_unit_test(test_variants_one_step_apart),
        cmocka_unit_test(test_round_twice),
        cmocka_unit_test(test_f64_same_grid),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_model_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
