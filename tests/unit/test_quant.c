/*
 * test_quant.c - half floats and ggml's block formats (core/quant.c).
 *
 * Conversions are checked against known encodings and, exhaustively, against
 * the IEEE definition; hand-built blocks against values worked out on paper
 * from ggml's layouts; quantize/dequantize round trips on seeded data against
 * the error each format allows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../common/testutil.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "error.h"
#include "quant.h"
#include "types.h"

#define MAX_N 1024           /* values in the longest test row */
#define GUARD 16             /* sentinel bytes after every output buffer */
#define SENTINEL_BYTE 0xa5
#define SENTINEL_F32 -12345.5f

/* ---- helpers ---- */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

/* Deterministic test signal. The amplitude changes every amp_len values;
 * every group of 32 is centred, all positive or all negative in turn, so
 * k-quant sub-blocks meet both signs of the minimum. */
static void fill_signal(float *x, int64_t n, int64_t amp_len, uint32_t seed)
{
    static const float amp[4] = {1.0f, 1000.0f, 0.05f, 7.0f};
    uint32_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        const float a = amp[(i / amp_len) % 4];
        const int64_t g = i / 32;
        const float off = g % 3 == 1 ? a : g % 3 == 2 ? -a : 0.0f;
        x[i] = off + a * tu_rand_signed(&s);
    }
}

/* Dequantize n values of type t from src into y[n]; y must hold n + 1
 * floats, the last being a sentinel the call must not touch. */
static void dequant_checked(int t, const void *src, float *y, int64_t n)
{
    y[n] = SENTINEL_F32;
    assert_int_equal(dv_dequant_row(t, src, y, n), DV_OK);
    assert_int_equal(bits_of(y[n]), bits_of(SENTINEL_F32));
}

/* Quantize x[n] to t into q and back into y[n + 1]. Checks that neither
 * call writes past its buffer and that every output is finite. */
static void round_trip(int t, const float *x, uint8_t *q, float *y, int64_t n)
{
    size_t size;
    assert_true(n <= MAX_N);
    assert_int_equal(dv_row_size(t, n, &size), DV_OK);
    memset(q, SENTINEL_BYTE, size + GUARD);
    assert_int_equal(dv_quant_row(t, x, q, n), DV_OK);
    for (size_t i = size; i < size + GUARD; i++)
        assert_int_equal(q[i], SENTINEL_BYTE);
    dequant_checked(t, q, y, n);
    for (int64_t i = 0; i < n; i++) assert_true(isfinite(y[i]));
}

/* ---- f16 ---- */

static void test_f16_known(void **state)
{
    /* Exact both ways: decode(h) == f and encode(f) == h. */
    static const struct { float f; uint16_t h; } exact[] = {
        {1.0f, 0x3c00},         {-2.0f, 0xc000},
        {0.5f, 0x3800},         {65504.0f, 0x7bff},   /* largest finite */
        {0x1p-24f, 0x0001},     /* smallest subnormal */
        {0x3ffp-24f, 0x03ff},   /* largest subnormal */
        {0x1p-14f, 0x0400},     /* smallest normal */
        {0.333251953125f, 0x3555},
        {0.0f, 0x0000},         {-0.0f, 0x8000},
        {INFINITY, 0x7c00},     {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        assert_int_equal(bits_of(dv_f16_to_f32(exact[i].h)),
                         bits_of(exact[i].f));
        assert_int_equal(dv_f32_to_f16(exact[i].f), exact[i].h);
    }
    /* Rounded encodings; "tie" means exactly halfway, which goes to the
     * even code. Steps: 2^-10 just above 1, 2^-24 among subnormals, 32
     * just below 65536 (so 65520 is halfway to 2^16, i.e. inf). */
    static const struct { float f; uint16_t h; } rounded[] = {
        {1.0f + 0x1p-11f, 0x3c00},          /* tie between 3c00, 3c01 */
        {1.0f + 3 * 0x1p-11f, 0x3c02},      /* tie between 3c01, 3c02 */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above the tie */
        {65520.0f, 0x7c00},                  /* tie between 7bff, inf */
        {65519.99609375f, 0x7bff},           /* one f32 ulp below it */
        {-65520.0f, 0xfc00},
        {1e6f, 0x7c00},
        {0x1p-25f, 0x0000},                  /* tie between 0, 2^-24 */
        {0x1.000002p-25f, 0x0001},           /* just above it */
        {-0x1p-26f, 0x8000},
        {0x3p-25f, 0x0002},                  /* 1.5 * 2^-24: tie -> 2 */
        {0x5p-25f, 0x0002},                  /* 2.5 * 2^-24: tie -> 2 */
        {0x7ffp-25f, 0x0400},                /* 1023.5 * 2^-24 -> normal */
        {1e-8f, 0x0000},                     /* below 2^-25 */
        {0.1f, 0x2e66},                      /* 0.0999755859375 */
    };
    for (size_t i = 0; i < sizeof rounded / sizeof rounded[0]; i++)
        assert_int_equal(dv_f32_to_f16(rounded[i].f), rounded[i].h);
}

static bool f16_is_nan(uint16_t h)
{
    return (h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0;
}

static void test_f16_nan(void **state)
{
    assert_true(f16_is_nan(dv_f32_to_f16(NAN)));
    assert_true(f16_is_nan(dv_f32_to_f16(-NAN)));
    assert_true(dv_f32_to_f16(-NAN) & 0x8000u);
    assert_true(f16_is_nan(dv_f32_to_f16(float_of(0x7f800001u)))); /* sNaN */
    assert_true(f16_is_nan(dv_f32_to_f16(float_of(0x7fc00000u))));
    assert_true(isnan(dv_f16_to_f32(0x7e00)));
    assert_true(isnan(dv_f16_to_f32(0x7c01)));
    assert_true(isnan(dv_f16_to_f32(0xfe00)));
    /* A signalling f16 NaN decodes quiet with its payload, as ggml's
     * software path and F16C do: 7c01 -> 7fc00000 | 1 << 13. */
    assert_int_equal(bits_of(dv_f16_to_f32(0x7c01)), 0x7fc02000u);
    assert_int_equal(bits_of(dv_f16_to_f32(0xfd55)), 0xffeaa000u);
}

/* Every f16 code decodes to (-1)^s * 2^(e-15) * (1 + m/1024), or
 * m * 2^-24 for e = 0, and encodes back to itself (NaNs stay NaN). */
static void test_f16_exhaustive_round_trip(void **state)
{
    for (uint32_t h = 0; h < 0x10000u; h++) {
        const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        const float f = dv_f16_to_f32((uint16_t)h);
        if (e == 31 && m != 0) {
            assert_true(isnan(f));
            assert_true(f16_is_nan(dv_f32_to_f16(f)));
            continue;
        }
        float want = e == 0    ? ldexpf((float)m, -24)
                     : e == 31 ? INFINITY
                               : ldexpf((float)(1024 + m), (int)e - 25);
        if (h & 0x8000u) want = -want;
        assert_int_equal(bits_of(f), bits_of(want));
        assert_int_equal(dv_f32_to_f16(f), h);
    }
}

/* For every pair of neighbouring finite f16 values (and 65504 with the
 * 2^16 where inf begins), the exact midpoint goes to the even code and
 * the f32 values either side of it go to the nearer code. */
static void test_f16_exhaustive_ties(void **state)
{
    for (uint32_t h = 0; h < 0x7c00u; h++) {
        const float lo = dv_f16_to_f32((uint16_t)h);
        const float hi = h + 1 == 0x7c00u ? 65536.0f
                                          : dv_f16_to_f32((uint16_t)(h + 1));
        const float mid = lo + (hi - lo) / 2; /* exact: needs 12 bits */
        const uint16_t even = (uint16_t)(h & 1u ? h + 1 : h);
        assert_int_equal(dv_f32_to_f16(mid), even);
        assert_int_equal(dv_f32_to_f16(-mid), even | 0x8000u);
        assert_int_equal(dv_f32_to_f16(nextafterf(mid, 0.0f)), h);
        assert_int_equal(dv_f32_to_f16(nextafterf(mid, INFINITY)), h + 1);
    }
}

/* ---- bf16 ---- */

static void test_bf16_known(void **state)
{
    static const struct { float f; uint16_t h; } exact[] = {
        {1.0f, 0x3f80},       {-2.0f, 0xc000},     {3.140625f, 0x4049},
        {-0.0f, 0x8000},      {INFINITY, 0x7f80},  {-INFINITY, 0xff80},
        {0x1p-133f, 0x0001}, /* smallest subnormal: 2^-126 * 2^-7 */
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        assert_int_equal(bits_of(dv_bf16_to_f32(exact[i].h)),
                         bits_of(exact[i].f));
        assert_int_equal(dv_f32_to_bf16(exact[i].f), exact[i].h);
    }
    /* bf16 keeps 8 significant bits: the step just above 1 is 2^-7. */
    static const struct { float f; uint16_t h; } rounded[] = {
        {1.0f + 0x1p-8f, 0x3f80},              /* tie between 3f80, 3f81 */
        {1.0f + 3 * 0x1p-8f, 0x3f82},          /* tie between 3f81, 3f82 */
        {1.0f + 0x1p-8f + 0x1p-20f, 0x3f81},   /* just above the tie */
        {3.14159265f, 0x4049},
        {FLT_MAX, 0x7f80}, /* past the largest bf16: inf, as ggml */
    };
    for (size_t i = 0; i < sizeof rounded / sizeof rounded[0]; i++)
        assert_int_equal(dv_f32_to_bf16(rounded[i].f), rounded[i].h);
    /* ggml: a NaN keeps its top 16 bits with the quiet bit (64) forced. */
    assert_int_equal(dv_f32_to_bf16(float_of(0x7f800001u)), 0x7fc0);
    assert_int_equal(dv_f32_to_bf16(float_of(0xffc00000u)), 0xffc0);
    assert_int_equal(dv_f32_to_bf16(float_of(0x7fa12345u)), 0x7fe1);
    assert_true(isnan(dv_bf16_to_f32(0x7fc0)));
}

/* Every non-NaN bf16 code survives a round trip; for each neighbouring
 * pair the midpoint (the f32 with only bit 15 set below the code) goes to
 * the even code and the f32 values either side of it to the nearer one. */
static void test_bf16_exhaustive(void **state)
{
    for (uint32_t h = 0; h < 0x10000u; h++) {
        const uint32_t a = h & 0x7fffu;
        if (a > 0x7f80u) continue; /* NaN */
        assert_int_equal(dv_f32_to_bf16(dv_bf16_to_f32((uint16_t)h)), h);
        if (a == 0x7f80u) continue; /* inf has no upper neighbour */
        const uint32_t mid = (h << 16) | 0x8000u;
        const uint16_t even = (uint16_t)(h & 1u ? h + 1 : h);
        assert_int_equal(dv_f32_to_bf16(float_of(mid)), even);
        assert_int_equal(dv_f32_to_bf16(float_of(mid - 1)), h);
        assert_int_equal(dv_f32_to_bf16(float_of(mid + 1)), h + 1);
    }
}

/* ---- dequantization of hand-built blocks ---- */

/* Plain rows, read from an odd address to catch aligned loads. */
static void test_dequant_plain_rows(void **state)
{
    uint8_t buf[1 + 12];
    float y[4 + 1];
    /* f16 little-endian: 3c00 = 1, c000 = -2, 0001 = 2^-24, 7c00 = inf */
    static const uint8_t f16[8] = {0x00, 0x3c, 0x00, 0xc0,
                                   0x01, 0x00, 0x00, 0x7c};
    memcpy(buf + 1, f16, sizeof f16);
    dequant_checked(DV_TYPE_F16, buf + 1, y, 4);
    assert_true(y[0] == 1.0f && y[1] == -2.0f && y[2] == 0x1p-24f);
    assert_true(isinf(y[3]) && y[3] > 0);
    /* bf16: 3f80 = 1, 4049 = 3.140625, 8000 = -0, ff80 = -inf */
    static const uint8_t bf16[8] = {0x80, 0x3f, 0x49, 0x40,
                                    0x00, 0x80, 0x80, 0xff};
    memcpy(buf + 1, bf16, sizeof bf16);
    dequant_checked(DV_TYPE_BF16, buf + 1, y, 4);
    assert_true(y[0] == 1.0f && y[1] == 3.140625f);
    assert_int_equal(bits_of(y[2]), 0x80000000u);
    assert_true(isinf(y[3]) && y[3] < 0);
    static const float f32[3] = {1.5f, -0x1p-149f, 1e30f};
    memcpy(buf + 1, f32, sizeof f32);
    dequant_checked(DV_TYPE_F32, buf + 1, y, 3);
    assert_memory_equal(y, f32, sizeof f32);
}

/* Two q8_0 blocks at an odd address: d = -0.5 (f16 b800) with q from -128
 * to 127, then d = 0 with nonzero q. Expected x = q * -0.5, by hand. */
static void test_dequant_q8_0(void **state)
{
    static const int8_t qs[32] = {
        -128, 127, 0,   1,   -1, 2,   -3,  5,  -8, 13, -21, 34, -55, 89, -100, 126,
        -127, 64,  -64, 32,  -32, 16, -16, 8,  -8, 4,  -4,  3,  7,   11, -99,  50};
    static const float want[32] = {
        64,    -63.5, 0,   -0.5, 0.5, -1, 1.5, -2.5, 4,  -6.5, 10.5, -17,  27.5, -44.5, 50,   -63,
        63.5,  -32,   32,  -16,  16,  -8, 8,   -4,   4,  -2,   2,    -1.5, -3.5, -5.5,  49.5, -25};
    uint8_t buf[1 + 2 * 34];
    float y[64 + 1];
    put_u16(buf + 1, 0xb800);
    memcpy(buf + 3, qs, 32);
    put_u16(buf + 35, 0x0000);
    memcpy(buf + 37, qs, 32);
    dequant_checked(DV_TYPE_Q8_0, buf + 1, y, 64);
    for (int j = 0; j < 32; j++) assert_true(y[j] == want[j]);
    for (int j = 32; j < 64; j++) assert_true(y[j] == 0.0f);
}

/* q4_0 with d = -2 (f16 c000) and byte j = j | (15 - j) << 4, so values
 * 0..15 hold nibble j and 16..31 nibble 15 - j; x = (nibble - 8) * -2. */
static void test_dequant_q4_0(void **state)
{
    static const float want[32] = {
        16,  14,  12,  10, 8, 6, 4, 2, 0,  -2, -4, -6, -8, -10, -12, -14,
        -14, -12, -10, -8, -6, -4, -2, 0, 2, 4,  6,  8,  10, 12,  14,  16};
    uint8_t b[18];
    float y[32 + 1];
    put_u16(b, 0xc000);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    dequant_checked(DV_TYPE_Q4_0, b, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == want[j]);
}

/* Blocks whose f16 scales are zero decode to zeros whatever the quants. */
static void test_dequant_zero_scales(void **state)
{
    static const struct { int t; int64_t n; size_t size; int d_at[2]; } c[] = {
        {DV_TYPE_Q8_0, 32, 34, {0, -1}},  {DV_TYPE_Q4_0, 32, 18, {0, -1}},
        {DV_TYPE_Q4_K, 256, 144, {0, 2}}, {DV_TYPE_Q6_K, 256, 210, {208, -1}},
    };
    uint8_t b[210];
    float y[256 + 1];
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        memset(b, 0x5b, sizeof b);
        for (int k = 0; k < 2; k++)
            if (c[i].d_at[k] >= 0) put_u16(b + c[i].d_at[k], 0x0000);
        dequant_checked(c[i].t, b, y, c[i].n);
        for (int64_t j = 0; j < c[i].n; j++) assert_true(y[j] == 0.0f);
        memset(b, 0, sizeof b);
        dequant_checked(c[i].t, b, y, c[i].n);
        for (int64_t j = 0; j < c[i].n; j++) assert_true(y[j] == 0.0f);
    }
}

/* q4_k with d = -0.5 (f16 b800), dmin = 0.25 (f16 3400) and 6-bit
 *   scales sc = {1, 63, 10, 0, 37, 63, 16, 5}
 *   mins   m  = {0, 2, 63, 7, 48, 1, 63, 32}
 * packed by hand (sub-blocks 4..7 split into low 4 bits in bytes 8..11 and
 * top 2 bits in the spare top bits of bytes 0..7):
 *   byte 0 = 1 | (37>>4)<<6 = 0x81    byte 4 = 0 | (48>>4)<<6 = 0xc0
 *   byte 1 = 63 | (63>>4)<<6 = 0xff   byte 5 = 2 | (1>>4)<<6 = 0x02
 *   byte 2 = 10 | (16>>4)<<6 = 0x4a   byte 6 = 63 | (63>>4)<<6 = 0xff
 *   byte 3 = 0 | (5>>4)<<6 = 0x00     byte 7 = 7 | (32>>4)<<6 = 0x87
 *   bytes 8..11 = (sc & 15) | (m & 15) << 4 = 0x05, 0x1f, 0xf0, 0x05.
 * In each 32-byte chunk, byte 0 = 0xf0, 1 = 0x0f, 2 = 0x11, others 0x88:
 * even sub-blocks (low nibbles) get q = 0, 15, 1, 8, 8, ...; odd ones
 * (high nibbles) q = 15, 0, 1, 8, 8, .... Expected (d*sc)*q - dmin*m for
 * q = 0, 15, 1 and 8, worked out per sub-block; e.g. sub-block 1:
 * d*sc = -31.5, dmin*m = 0.5, so q = 15 gives -472.5 - 0.5 = -473. */
static void test_dequant_q4_k(void **state)
{
    static const uint8_t scales[12] = {0x81, 0xff, 0x4a, 0x00, 0xc0, 0x02,
                                       0xff, 0x87, 0x05, 0x1f, 0xf0, 0x05};
    static const float want[8][4] = {
        /* q=0     q=15     q=1     q=8 */
        {0,       -7.5,    -0.5,   -4},      /* sc 1,  m 0  */
        {-0.5,    -473,    -32,    -252.5},  /* sc 63, m 2  */
        {-15.75,  -90.75,  -20.75, -55.75},  /* sc 10, m 63 */
        {-1.75,   -1.75,   -1.75,  -1.75},   /* sc 0,  m 7  */
        {-12,     -289.5,  -30.5,  -160},    /* sc 37, m 48 */
        {-0.25,   -472.75, -31.75, -252.25}, /* sc 63, m 1  */
        {-15.75,  -135.75, -23.75, -79.75},  /* sc 16, m 63 */
        {-8,      -45.5,   -10.5,  -28},     /* sc 5,  m 32 */
    };
    uint8_t b[144];
    float y[256 + 1];
    put_u16(b, 0xb800);
    put_u16(b + 2, 0x3400);
    memcpy(b + 4, scales, sizeof scales);
    for (int c = 0; c < 4; c++) {
        memset(b + 16 + 32 * c, 0x88, 32);
        b[16 + 32 * c] = 0xf0;
        b[17 + 32 * c] = 0x0f;
        b[18 + 32 * c] = 0x11;
    }
    dequant_checked(DV_TYPE_Q4_K, b, y, 256);
    for (int j = 0; j < 8; j++) {
        for (int l = 0; l < 32; l++) {
            int col = l == 0 ? j % 2 : l == 1 ? 1 - j % 2 : l == 2 ? 2 : 3;
            assert_true(y[32 * j + l] == want[j][col]);
        }
    }
}

/* q6_k with d = -0.25 (f16 b400) and int8 scales
 *   {1, -1, 2, -2, 127, -128, 3, -3, 4, -4, 5, -5, 10, -10, 64, -64},
 * so d*sc = {-0.25, 0.25, -0.5, 0.5, -31.75, 32, -0.75, 0.75, -1, 1, -1.25,
 * 1.25, -2.5, 2.5, -16, 16}; value v uses scale v/16. ql and qh are zero
 * (q6 = 0, x = -32 * d*sc) except, worked out bit by bit:
 *   half 0, l = 0:  ql[0]=f0 ql[32]=0f qh[0]=3c  -> q6 of v 0,32,64,96
 *                   = 0, 63, 63, 0
 *   half 0, l = 17: ql[17]=5a ql[49]=3c qh[17]=c9 -> v 17,49,81,113
 *                   = 26, 44, 5, 51
 *   half 1, l = 0:  ql[64]=0f ql[96]=f0 qh[32]=c3 -> v 128,160,192,224
 *                   = 63, 0, 0, 63
 *   half 1, l = 31: ql[95]=21 ql[127]=87 qh[63]=36 -> v 159,191,223,255
 *                   = 33, 23, 50, 8
 * (e.g. v 81: high nibble of ql[17] = 5, bits 4..5 of qh[17] = 0, q6 = 5;
 * x = 32 * (5 - 32) = -864). */
static void test_dequant_q6_k(void **state)
{
    static const int8_t sc[16] = {1, -1, 2,  -2, 127, -128, 3,  -3,
                                  4, -4, 5, -5, 10,  -10,  64, -64};
    static const float dflt[16] = {8,  -8,  16, -16, 1016, -1024, 24,  -24,
                                   32, -32, 40, -40, 80,   -80,   512, -512};
    static const struct { int v; float x; } special[] = {
        {0, 8},      {32, -15.5}, {64, -984.25}, {96, 24},
        {17, -1.5},  {49, 6},     {81, -864},    {113, 14.25},
        {128, -31},  {160, 40},   {192, 80},     {224, -496},
        {159, 1},    {191, -11.25}, {223, 45},   {255, -384},
    };
    static const struct { int at; uint8_t v; } bytes[] = {
        {0, 0xf0},  {32, 0x0f},  {128 + 0, 0x3c},
        {17, 0x5a}, {49, 0x3c},  {128 + 17, 0xc9},
        {64, 0x0f}, {96, 0xf0},  {128 + 32, 0xc3},
        {95, 0x21}, {127, 0x87}, {128 + 63, 0x36},
    };
    uint8_t b[210] = {0};
    float y[256 + 1];
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        b[bytes[i].at] = bytes[i].v;
    memcpy(b + 192, sc, sizeof sc);
    put_u16(b + 208, 0xb400);
    dequant_checked(DV_TYPE_Q6_K, b, y, 256);
    float want[256];
    for (int v = 0; v < 256; v++) want[v] = dflt[v / 16];
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        want[special[i].v] = special[i].x;
    for (int v = 0; v < 256; v++) assert_true(y[v] == want[v]);
}

/* ---- quantization ---- */

/* ggml's q8_0: d = amax/127 = 1 here (f16 3c00), q = roundf(x), halves
 * away from zero. */
static void test_quant_q8_0_hand(void **state)
{
    float x[32] = {127, -127, 0.49f, 0.5f, -2.5f, 3.7f, -0.51f, 126.5f};
    static const int8_t want[32] = {127, -127, 0, 1, -3, 4, -1, 127};
    uint8_t b[34];
    assert_int_equal(dv_quant_row(DV_TYPE_Q8_0, x, b, 32), DV_OK);
    assert_int_equal(b[0] | b[1] << 8, 0x3c00);
    assert_memory_equal(b + 2, want, 32);
}

/* ggml's q4_0: the first value of largest magnitude, -16, sets
 * d = -16/-8 = 2 (f16 4000); nibble = MIN(15, (int)(x/2 + 8.5)): -16 -> 0,
 * 16 -> 15 (clamped from 16), 0 -> 8, 1 -> 9, 3 -> 10, -3 -> 7,
 * 14.9 -> 15, -1 -> 8; the zeros at 8..31 give 8 (high nibbles). */
static void test_quant_q4_0_hand(void **state)
{
    float x[32] = {-16, 16, 0, 1, 3, -3, 14.9f, -1};
    static const uint8_t want[16] = {0x80, 0x8f, 0x88, 0x89, 0x8a, 0x87,
                                     0x8f, 0x88, 0x88, 0x88, 0x88, 0x88,
                                     0x88, 0x88, 0x88, 0x88};
    uint8_t b[18];
    assert_int_equal(dv_quant_row(DV_TYPE_Q4_0, x, b, 32), DV_OK);
    assert_int_equal(b[0] | b[1] << 8, 0x4000);
    assert_memory_equal(b + 2, want, 16);
}

static float max_abs(const float *x, int n)
{
    float a = 0.0f;
    for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i]));
    return a;
}

/* q8_0: with d = amax/127, rounding x/d costs at most d/2; storing d as f16
 * moves it by at most 2^-11 relative, which |q| <= 127 turns into
 * 127*2^-11*d; 1e-4*d covers the f32 roundings of x/d and q*d. */
static void check_q8_0(const float *x, const float *y, int64_t n)
{
    for (int64_t b = 0; b < n; b += 32) {
        const float d = max_abs(x + b, 32) / 127;
        const float tol = d * (0.5f + 127.0f / 2048 + 1e-4f);
        for (int j = 0; j < 32; j++)
            assert_true(fabsf(y[b + j] - x[b + j]) <= tol);
    }
}

/* q4_0: |d| = amax/8; values within 7.5 steps on the side opposite the
 * largest one are off by at most |d|/2, those beyond by up to |d| (nibble
 * 16 clamped to 15); f16 storage of d adds 8*2^-11*|d|, 1e-4*|d| covers
 * f32 rounding. The largest value itself maps to nibble 0, exact up to the
 * f16 rounding of d. */
static void check_q4_0(const float *x, const float *y, int64_t n)
{
    for (int64_t b = 0; b < n; b += 32) {
        const float amax = max_abs(x + b, 32), d = amax / 8;
        const float tol = d * (1.0f + 8.0f / 2048 + 1e-4f);
        int first = -1;
        for (int j = 0; j < 32; j++) {
            assert_true(fabsf(y[b + j] - x[b + j]) <= tol);
            if (first < 0 && fabsf(x[b + j]) == amax) first = j;
        }
        assert_true(fabsf(y[b + first] - x[b + first]) <= amax * 0x1p-11f);
    }
}

/* q4_k: sub-block j spans [lo, hi] with lo = min(min x, 0). Let R = max
 * over the super-block of hi - lo and M = max of -lo. The quantizer rounds
 * dmin (M/63), each 6-bit min, d and each 6-bit scale up, so the grid of
 * 16 points covers [lo, hi] with a step below
 *   B = (R + 1.001*M/63)/15  plus one d <= 1.001*B/63,
 * and every value is within half a step: err <= 0.5*B*(1 + 1.001/63) =
 * 0.508*B; 0.51*B leaves room for f32 rounding. Where d or dmin are f16
 * subnormals, rounding up adds up to 2^-24 each instead of 0.1%. */
static void check_q4_k(const float *x, const float *y, int64_t n)
{
    for (int64_t b = 0; b < n; b += 256) {
        float R = 0.0f, M = 0.0f;
        for (int j = 0; j < 8; j++) {
            float lo = 0.0f, hi = x[b + 32 * j];
            for (int l = 0; l < 32; l++) {
                lo = fminf(lo, x[b + 32 * j + l]);
                hi = fmaxf(hi, x[b + 32 * j + l]);
            }
            R = fmaxf(R, hi - lo);
            M = fmaxf(M, -lo);
        }
        const float B = (R + 1.001f * M / 63 + 0x1p-24f) / 15;
        for (int i = 0; i < 256; i++)
            assert_true(fabsf(y[b + i] - x[b + i]) <= 0.51f * B + 0x1p-24f);
    }
}

/* q6_k: sub-block j of 16 gets a step d*sc >= amax_j/31 (rounded up), so
 * no value is clamped and each is within half a step; the step exceeds
 * amax_j/31 by at most one d <= 1.001*A/(31*127), A the largest amax_j of
 * the super-block, or by one f16 subnormal step 2^-24 where d is that
 * small. 1.0001 covers f32 rounding. */
static void check_q6_k(const float *x, const float *y, int64_t n)
{
    for (int64_t b = 0; b < n; b += 256) {
        const float A = max_abs(x + b, 256);
        for (int j = 0; j < 16; j++) {
            const float amax = max_abs(x + b + 16 * j, 16);
            const float tol =
                0.5f * ((amax + 1.001f * A / 127) / 31 + 0x1p-24f) * 1.0001f;
            for (int l = 0; l < 16; l++)
                assert_true(fabsf(y[b + 16 * j + l] - x[b + 16 * j + l]) <= tol);
        }
    }
}

/* f16 rounds to nearest: relative error <= 2^-11 in the normal range,
 * absolute <= 2^-25 (half the subnormal step) below 2^-14. */
static void check_f16(const float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        assert_true(fabsf(y[i] - x[i]) <= fmaxf(fabsf(x[i]) * 0x1p-11f, 0x1p-25f));
}

/* bf16 rounds to nearest: relative error <= 2^-8 (test values are far
 * from bf16's subnormals). */

static void check_bf16(const float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        assert_true(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-8f);
}

static void check_f32(const float *x, const float *y, int64_t n)
{
    assert_memory_equal(x, y, (size_t)n * sizeof(float));
}

typedef void (*check_fn)(const float *x, const float *y, int64_t n);

static const struct { int t; check_fn check; } formats[] = {
    {DV_TYPE_F32, check_f32},   {DV_TYPE_F16, check_f16},
    {DV_TYPE_BF16, check_bf16}, {DV_TYPE_Q8_0, check_q8_0},
    {DV_TYPE_Q4_0, check_q4_0}, {DV_TYPE_Q4_K, check_q4_k},
    {DV_TYPE_Q6_K, check_q6_k},
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

/* Seeded signals, amplitude changing per 32 values (mixed within k-quant
 * super-blocks) and per 256 (one amplitude per super-block, where the
 * k-quant bounds are tight). */
static void test_quant_round_trip(void **state)
{
    static float x[MAX_N], y[MAX_N + 1];
    static uint8_t q[MAX_N * 4 + GUARD];
    static const int64_t amp_len[2] = {32, 256};
    for (int k = 0; k < 2; k++) {
        fill_signal(x, MAX_N, amp_len[k], 0x9e3779b9u + (uint32_t)k);
        for (size_t f = 0; f < N_FORMATS; f++) {
            round_trip(formats[f].t, x, q, y, MAX_N);
            formats[f].check(x, y, MAX_N);
        }
    }
}

/* All-zero input gives zero scales (no 0/0) and zeros back. */
static void test_quant_zero_blocks(void **state)
{
    static float x[512], y[512 + 1];
    static uint8_t q[512 * 4 + GUARD];
    for (size_t f = 0; f < N_FORMATS; f++) {
        round_trip(formats[f].t, x, q, y, 512);
        for (int i = 0; i < 512; i++) assert_true(y[i] == 0.0f);
    }
    /* stored scales: q8_0 d at 0, q4_k d and dmin at 0 and 2, q6_k d at 208 */
    round_trip(DV_TYPE_Q8_0, x, q, y, 32);
    assert_true(q[0] == 0 && q[1] == 0);
    round_trip(DV_TYPE_Q4_K, x, q, y, 256);
    assert_true(q[0] == 0 && q[1] == 0 && q[2] == 0 && q[3] == 0);
    round_trip(DV_TYPE_Q6_K, x, q, y, 256);
    assert_true(q[208] == 0 && q[209] == 0);
}

/* One huge value among small ones: within f16's range the format bounds
 * still hold (the small values just lose their resolution). */
static void test_quant_one_huge_value(void **state)
{
    static float x[512], y[512 + 1];
    static uint8_t q[512 * 4 + GUARD];
    uint32_t s = 12345;
    for (int i = 0; i < 512; i++) x[i] = tu_rand_signed(&s);
    x[5] = 30000.0f;
    x[300] = -20000.0f;
    for (size_t f = 0; f < N_FORMATS; f++) {
        round_trip(formats[f].t, x, q, y, 512);
        formats[f].check(x, y, 512);
    }
}

/* Values beyond what the f16 scales can express saturate: outputs stay
 * finite and keep their sign. */
static void test_quant_beyond_range(void **state)
{
    static float x[512], y[512 + 1];
    static uint8_t q[512 * 4 + GUARD];
    uint32_t s = 777;
    for (int i = 0; i < 512; i++) x[i] = tu_rand_signed(&s);
    x[7] = FLT_MAX;
    x[200] = -FLT_MAX;
    x[400] = 1e30f;
    for (size_t f = 0; f < N_FORMATS; f++) {
        round_trip(formats[f].t, x, q, y, 512);
        assert_true(y[7] > 0.0f && y[200] < 0.0f && y[400] > 0.0f);
    }
    round_trip(DV_TYPE_F16, x, q, y, 512);
    assert_true(y[7] == 65504.0f && y[200] == -65504.0f);
    round_trip(DV_TYPE_BF16, x, q, y, 512);
    assert_true(y[7] == dv_bf16_to_f32(0x7f7f) && y[400] == dv_bf16_to_f32(0x714a));
}

/* NaN and inf input are garbage in, but must not crash or overrun. */
static void test_quant_non_finite_input(void **state)
{
    static float x[256], y[256 + 1];
    static uint8_t q[256 * 4 + GUARD];
    for (int i = 0; i < 256; i++)
        x[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
    for (size_t f = 0; f < N_FORMATS; f++) {
        size_t size;
        assert_int_equal(dv_row_size(formats[f].t, 256, &size), DV_OK);
        memset(q, SENTINEL_BYTE, size + GUARD);
        assert_int_equal(dv_quant_row(formats[f].t, x, q, 256), DV_OK);
        for (size_t i = size; i < size + GUARD; i++)
            assert_int_equal(q[i], SENTINEL_BYTE);
        dequant_checked(formats[f].t, q, y, 256);
    }
}

/* ---- argument checks ---- */

static void test_quant_bad_args(void **state)
{
    static const struct { int t; int64_t n; } bad[] = {
        {DV_TYPE_Q4_1, 32}, {DV_TYPE_Q5_K, 256}, {DV_TYPE_I32, 4},
        {4, 32},            {-1, 32},            {DV_TYPE_COUNT, 32},
        {DV_TYPE_Q8_0, 33}, {DV_TYPE_Q4_0, 16},  {DV_TYPE_Q4_K, 128},
        {DV_TYPE_Q6_K, 257}, {DV_TYPE_Q8_0, -32}, {DV_TYPE_F32, -1},
    };
    float x[512] = {0};
    uint8_t q[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(q, SENTINEL_BYTE, sizeof q);
        dv_fail(DV_OK, "%s", "");
        assert_int_equal(dv_quant_row(bad[i].t, x, q, bad[i].n), DV_E_USAGE);
        assert_true(dv_errmsg()[0] != '\0');
        for (size_t k = 0; k < sizeof q; k++) assert_int_equal(q[k], SENTINEL_BYTE);
    }
}

static void test_dequant_bad_args(void **state)
{
    static const struct { int t; int64_t n; dv_status want; } bad[] = {
        {DV_TYPE_Q4_1, 32, DV_E_INPUT},  {DV_TYPE_Q5_K, 256, DV_E_INPUT},
        {DV_TYPE_I32, 4, DV_E_INPUT},    {4, 32, DV_E_INPUT},
        {-1, 32, DV_E_INPUT},            {99, 32, DV_E_INPUT},
        {DV_TYPE_Q8_0, 33, DV_E_USAGE},  {DV_TYPE_Q6_K, 255, DV_E_USAGE},
        {DV_TYPE_Q4_K, -256, DV_E_USAGE},
    };
    uint8_t src[512] = {0};
    float y[4];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        y[0] = SENTINEL_F32;
        dv_fail(DV_OK, "%s", "");
        assert_int_equal(dv_dequant_row(bad[i].t, src, y, bad[i].n), bad[i].want);
        assert_true(dv_errmsg()[0] != '\0');
        assert_true(y[0] == SENTINEL_F32);
    }
}

/* Row sizes follow ggml's block structs: q8_0 2+32, q4_0 2+16,
 * q4_k 2+2+12+128, q6_k 128+64+16+2 bytes. */
static void test_row_size(void **state)
{
    static const struct { int t; int64_t n; size_t bytes; } ok[] = {
        {DV_TYPE_F32, 7, 28},     {DV_TYPE_F16, 7, 14},
        {DV_TYPE_BF16, 7, 14},    {DV_TYPE_Q8_0, 64, 68},
        {DV_TYPE_Q4_0, 64, 36},   {DV_TYPE_Q4_K, 512, 288},
        {DV_TYPE_Q6_K, 256, 210}, {DV_TYPE_Q8_0, 0, 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t got = 0;
        assert_int_equal(dv_row_size(ok[i].t, ok[i].n, &got), DV_OK);
        assert_int_equal(got, ok[i].bytes);
    }
    static const struct { int t; int64_t n; } bad[] = {
        {DV_TYPE_Q8_0, 33},  {DV_TYPE_Q4_0, 16},    {DV_TYPE_Q4_K, 100},
        {DV_TYPE_Q6_K, 257}, {DV_TYPE_F32, -1},     {DV_TYPE_Q8_0, -32},
        {4, 32},             {DV_TYPE_COUNT, 1},    {-1, 1},
        {DV_TYPE_F32, INT64_MAX}, /* 4 * (2^63 - 1) bytes overflows */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t got = 12345;
        assert_int_equal(dv_row_size(bad[i].t, bad[i].n, &got), DV_E_INPUT);
        assert_int_equal(got, 12345);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_known),
        cmocka_unit_test(test_f16_nan),
        cmocka_unit_test(test_f16_exhaustive_round_trip),
        cmocka_unit_test(test_f16_exhaustive_ties),
        cmocka_unit_test(test_bf16_known),
        cmocka_unit_test(test_bf16_exhaustive),
        cmocka_unit_test(test_dequant_plain_rows),
        cmocka_unit_test(test_dequant_q8_0),
        cmocka_unit_test(test_dequant_q4_0),
        cmocka_unit_test(test_dequant_zero_scales),
        cmocka_unit_test(test_dequant_q4_k),
        cmocka_unit_test(test_dequant_q6_k),
        cmocka_unit_test(test_quant_q8_0_hand),
        cmocka_unit_test(test_quant_q4_0_hand),
        cmocka_unit_test(test_quant_round_trip),
        cmocka_unit_test(test_quant_zero_blocks),
        cmocka_unit_test(test_quant_one_huge_value),
        cmocka_unit_test(test_quant_beyond_range),
        cmocka_unit_test(test_quant_non_finite_input),
        cmocka_unit_test(test_quant_bad_args),
        cmocka_unit_test(test_dequant_bad_args),
        cmocka_unit_test(test_row_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
