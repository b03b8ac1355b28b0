/*
 * quant.c - half floats and ggml's quantized blocks, to and from f32.
 *
 * Dequantization reproduces ggml's reference dequantize_row_* (ggml-quants.c)
 * bit for bit: the same f32 products and differences in the same order (the
 * project builds with -ffp-contract=off, so none of them is fused). Blocks
 * are packed and at best 2-byte aligned, so multi-byte fields are assembled
 * from bytes, little-endian as GGUF stores them.
 *
 * Quantization makes fixtures. Q8_0 and Q4_0 follow ggml's *_ref quantizers;
 * Q4_K and Q6_K use a simpler min/max scheme whose scales are rounded up, so
 * every value lies inside its sub-block's grid and is off by at most half a
 * step. Stored scales saturate at the largest finite f16 instead of becoming
 * inf, so finite input never dequantizes to inf or NaN.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "error.h"

#define QK 32     /* values per q8_0 / q4_0 block */
#define QK_K 256  /* values per q4_k / q6_k super-block */
#define F16_MAX 65504.0f
#define F16_MAX_BITS 0x7bffu
#define BF16_MAX_BITS 0x7f7fu

/* Block sizes and field offsets in bytes, as ggml-common.h lays them out. */
enum {
    Q8_0_SIZE = 34,
    Q4_0_SIZE = 18,
    Q4_K_SIZE = 144,
    Q4_K_SCALES = 4, /* after f16 d, dmin */
    Q4_K_QS = 16,
    Q6_K_SIZE = 210,
    Q6_K_QH = 128, /* after u8 ql[128] */
    Q6_K_SCALES = 192,
    Q6_K_D = 208,
};

/* ---- bit-level helpers ---- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void store_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static float load_f16(const uint8_t *p) { return dv_f16_to_f32(load_u16(p)); }

/* m >> shift (1 <= shift <= 31), rounded to nearest, ties to even. A carry
 * out of the mantissa moves into the exponent field, which is what IEEE
 * rounding wants (up to and including inf). */
static uint32_t shift_round_even(uint32_t m, int shift)
{
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return q;
}

/* ---- half floats ---- */

float dv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 is exact in f32 */
        float v = (float)mant * 0x1p-24f;
        return bits_f32(sign | f32_bits(v));
    }
    if (exp == 31) {
        /* inf, or a NaN made quiet with its payload kept, as F16C and
         * ggml's software conversion both do */
        const uint32_t quiet = mant ? 0x400000u : 0;
        return bits_f32(sign | 0x7f800000u | quiet | (mant << 13));
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t dv_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u; /* NaN: quiet, as ggml */
    if (a >= 0x47800000u) return sign | 0x7c00u; /* >= 2^16 or inf */
    if (a >= 0x38800000u) /* normal half: rebias 127 -> 15, drop 13 bits */
        return sign | (uint16_t)shift_round_even(a - (112u << 23), 13);
    if (a < 0x33000000u) return sign; /* below 2^-25: rounds to zero */
    /* subnormal half: count units of 2^-24 in 1.m * 2^(e-127) */
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(a >> 23); /* 14 .. 24 */
    return sign | (uint16_t)shift_round_even(m, shift);
}

float dv_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t dv_f32_to_bf16(float f)
{
    /* ggml_compute_fp32_to_bf16: NaN forced quiet, else round half even. */
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

/* ---- dequantization, one row function per type ---- */

typedef void (*dequant_fn)(const uint8_t *src, float *dst, int64_t nb);

static void dequant_f32(const uint8_t *src, float *dst, int64_t nb)
{
    memcpy(dst, src, (size_t)nb * sizeof(float));
}

static void dequant_f16(const uint8_t *src, float *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) dst[i] = load_f16(src + 2 * i);
}

static void dequant_bf16(const uint8_t *src, float *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        dst[i] = dv_bf16_to_f32(load_u16(src + 2 * i));
}

/* x = q * d, as dequantize_row_q8_0. */
static void dequant_q8_0(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += Q8_0_SIZE, y += QK) {
        const float d = load_f16(src);
        const int8_t *qs = (const int8_t *)(src + 2);
        for (int j = 0; j < QK; j++) y[j] = qs[j] * d;
    }
}

/* x = (nibble - 8) * d; low nibbles are values 0..15, high 16..31. */
static void dequant_q4_0(const uint8_t *src, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, src += Q4_0_SIZE, y += QK) {
        const float d = load_f16(src);
        const uint8_t *qs = src + 2;
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = (qs[j] & 0x0f) - 8;
            const int x1 = (qs[j] >> 4) - 8;
            y[j] = (float)x0 * d;
            y[j + QK / 2] = (float)x1 * d;
        }
    }
}

/* Scale and min of q4_k sub-block j (0..7) from the 12 packed bytes q:
 * sub-blocks 0..3 keep theirs in the low 6 bits of q[j] and q[j+4];
 * sub-blocks 4..7 have their low 4 bits in q[j+4] and their top 2 bits in
 * the spare top bits of q[j-4] (scale) and q[j] (min). As get_scale_min_k4. */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* One q4_k super-block: 4 chunks of 64 values; in chunk c the low nibbles
 * of qs[32c..32c+31] are sub-block 2c, the high nibbles sub-block 2c+1. */
static void dequant_q4_k_block(const uint8_t *b, float *y)
{
    const float d = load_f16(b);
    const float min = load_f16(b + 2);
    const uint8_t *scales = b + Q4_K_SCALES;
    const uint8_t *q = b + Q4_K_QS;
    for (int is = 0; is < 8; is += 2, q += 32) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        const float d1 = d * sc;
        const float m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc;
        const float m2 = min * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0x0f) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
}

static void dequant_q4_k(const uint8_t *src, float *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        dequant_q4_k_block(src + i * Q4_K_SIZE, dst + i * QK_K);
}

/* One q6_k super-block, in two halves of 128 values. In a half, value
 * 32k + l (k = 0..3) takes its low 4 bits from ql[l] (k = 0, 2) or
 * ql[l + 32] (k = 1, 3), low nibble for k < 2, high nibble for k >= 2, and
 * its top 2 bits from bits 2k..2k+1 of qh[l]. Value v uses scales[v / 16]. */
static void dequant_q6_k_block(const uint8_t *b, float *y)
{
    const float d = load_f16(b + Q6_K_D);
    const uint8_t *ql = b;
    const uint8_t *qh = b + Q6_K_QH;
    const int8_t *sc = (const int8_t *)(b + Q6_K_SCALES);
    for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

static void dequant_q6_k(const uint8_t *src, float *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        dequant_q6_k_block(src + i * Q6_K_SIZE, dst + i * QK_K);
}

static const dequant_fn dequant_fns[DV_TYPE_COUNT] = {
    [DV_TYPE_F32] = dequant_f32,   [DV_TYPE_F16] = dequant_f16,
    [DV_TYPE_BF16] = dequant_bf16, [DV_TYPE_Q8_0] = dequant_q8_0,
    [DV_TYPE_Q4_0] = dequant_q4_0, [DV_TYPE_Q4_K] = dequant_q4_k,
    [DV_TYPE_Q6_K] = dequant_q6_k,
};

/* A bad n is the caller's bug (it should have called dv_row_size), hence
 * DV_E_USAGE; a type we cannot decode is a property of the input file. */
dv_status dv_dequant_row(int t, const void *src, float *dst, int64_t n)
{
    const struct dv_type_traits *tr = dv_type_traits(t);
    if (!tr || !dequant_fns[t])
        return dv_fail(DV_E_INPUT, "cannot dequantize tensor type %s (%d)",
                       dv_type_name(t), t);
    if (n < 0 || n % tr->blck != 0)
        return dv_fail(DV_E_USAGE, "dequantize: %lld values are not whole %s "
                       "blocks of %lld", (long long)n, tr->name,
                       (long long)tr->blck);
    dequant_fns[t](src, dst, n / tr->blck);
    return DV_OK;
}

/* ---- quantization helpers ---- */

/* roundf(v) clamped to [lo, hi]; NaN gives 0 (inside every range used
 * here). Keeps every float -> int conversion defined. */
static int round_clamp(float v, int lo, int hi)
{
    if (v != v) return 0;
    const float r = roundf(v);
    if (r <= (float)lo) return lo;
    if (r >= (float)hi) return hi;
    return (int)r;
}

/* Smallest integer k in [0, max] with k * step >= v (up to f32 rounding),
 * or 0 when step is 0. Rounding a sub-block's scale up this way can only
 * widen its grid, so no value falls outside it. */
static int ceil_units(float v, float step, int max)
{
    if (!(step > 0) || !(v > 0)) return 0;
    const float k = ceilf(v / step);
    return k >= (float)max ? max : (int)k;
}

/* f16 code of a non-negative scale, rounded up so that decoding it gives at
 * least s; saturates at the largest finite f16, NaN gives 0. */
static uint16_t f16_scale_up(float s)
{
    if (!(s > 0)) return 0;
    if (s >= F16_MAX) return F16_MAX_BITS;
    uint16_t h = dv_f32_to_f16(s);
    if (dv_f16_to_f32(h) < s) h++;
    return h;
}

/* ---- quantization, one row function per type ---- */

typedef void (*quant_fn)(const float *src, uint8_t *dst, int64_t nb);

static void quant_f32(const float *src, uint8_t *dst, int64_t nb)
{
    memcpy(dst, src, (size_t)nb * sizeof(float));
}

/* Out-of-range finite values saturate at +-65504 rather than become inf. */
static void quant_f16(const float *src, uint8_t *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        uint16_t h = dv_f32_to_f16(src[i]);
        if ((h & 0x7fffu) == 0x7c00u && isfinite(src[i]))
            h = (uint16_t)((h & 0x8000u) | F16_MAX_BITS);
        store_u16(dst + 2 * i, h);
    }
}

/* Finite values that round past the largest bf16 saturate there. */
static void quant_bf16(const float *src, uint8_t *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        uint16_t h = dv_f32_to_bf16(src[i]);
        if ((h & 0x7fffu) == 0x7f80u && isfinite(src[i]))
            h = (uint16_t)((h & 0x8000u) | BF16_MAX_BITS);
        store_u16(dst + 2 * i, h);
    }
}

/* As quantize_row_q8_0_ref: d = amax/127, q = round(x/d). d is capped at
 * the largest f16 (ggml would store inf); q is clamped to match. */
static void quant_q8_0(const float *x, uint8_t *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK, b += Q8_0_SIZE) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127;
        if (d > F16_MAX) d = F16_MAX;
        const float id = d ? 1.0f / d : 0.0f;
        store_u16(b, dv_f32_to_f16(d));
        for (int j = 0; j < QK; j++)
            b[2 + j] = (uint8_t)(int8_t)round_clamp(x[j] * id, -127, 127);
    }
}

/* ggml's MIN(15, (int8_t)(v + 8.5f)): truncation is floor here because
 * v >= -8 up to rounding; the lower clamp only guards odd input. */
static uint8_t q4_0_nibble(float v)
{
    const float t = v + 8.5f;
    if (!(t >= 0.0f)) return 0;
    if (t >= 15.0f) return 15;
    return (uint8_t)t;
}

/* As quantize_row_q4_0_ref: d = -(value of largest magnitude)/8, so that
 * value maps to nibble 0; |d| is capped at the largest f16. */
static void quant_q4_0(const float *x, uint8_t *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK, b += Q4_0_SIZE) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8;
        if (fabsf(d) > F16_MAX) d = copysignf(F16_MAX, d);
        const float id = d ? 1.0f / d : 0.0f;
        store_u16(b, dv_f32_to_f16(d));
        for (int j = 0; j < QK / 2; j++) {
            const uint8_t lo = q4_0_nibble(x[j] * id);
            const uint8_t hi = q4_0_nibble(x[j + QK / 2] * id);
            b[2 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* Pack 6-bit scales ls[8] and mins lm[8] into 12 bytes, the inverse of
 * scale_min_k4(). */
static void pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *q)
{
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t)((ls[j + 4] & 0x0f) | ((lm[j + 4] & 0x0f) << 4));
    }
}

/* Grid of q4_k sub-block j: x = step*q - off, q in 0..15. lo[j] <= 0 is
 * the sub-block minimum clamped as ggml does, hi[j] its maximum. */
struct q4k_grid {
    float lo[8], hi[8];
    uint8_t ls[8], lm[8]; /* 6-bit scale and min */
};

/* Choose dmin, d and the 6-bit mins and scales, all rounded up so that
 * -dmin*lm <= lo and -dmin*lm + 15*d*ls >= hi. Writes d and dmin. */
static void q4_k_scales(struct q4k_grid *g, uint8_t *b)
{
    float max_min = 0.0f, max_scale = 0.0f, scale[8];
    for (int j = 0; j < 8; j++) max_min = fmaxf(max_min, -g->lo[j]);
    const uint16_t dmin_h = f16_scale_up(max_min / 63);
    const float dmin = dv_f16_to_f32(dmin_h);
    for (int j = 0; j < 8; j++) {
        g->lm[j] = (uint8_t)ceil_units(-g->lo[j], dmin, 63);
        scale[j] = fmaxf(0.0f, (g->hi[j] + dmin * g->lm[j]) / 15);
        max_scale = fmaxf(max_scale, scale[j]);
    }
    const uint16_t d_h = f16_scale_up(max_scale / 63);
    const float d = dv_f16_to_f32(d_h);
    for (int j = 0; j < 8; j++)
        g->ls[j] = (uint8_t)ceil_units(scale[j], d, 63);
    store_u16(b, d_h);
    store_u16(b + 2, dmin_h);
}

/* Simplified q4_k quantizer: per sub-block min/max grid (see q4_k_scales),
 * then each value to the nearest point of its grid, computed with the
 * stored (rounded) scales exactly as the dequantizer will use them. */
static void quant_q4_k_block(const float *x, uint8_t *b)
{
    struct q4k_grid g;
    for (int j = 0; j < 8; j++) {
        g.lo[j] = 0.0f;
        g.hi[j] = x[32 * j];
        for (int l = 0; l < 32; l++) {
            g.lo[j] = fminf(g.lo[j], x[32 * j + l]);
            g.hi[j] = fmaxf(g.hi[j], x[32 * j + l]);
        }
    }
    q4_k_scales(&g, b);
    pack_scales_k4(g.ls, g.lm, b + Q4_K_SCALES);
    const float d = load_f16(b), dmin = load_f16(b + 2);
    uint8_t *qs = b + Q4_K_QS;
    memset(qs, 0, QK_K / 2);
    for (int j = 0; j < 8; j++) {
        const float step = d * g.ls[j];
        const float off = dmin * g.lm[j];
        for (int l = 0; l < 32; l++) {
            const float v = x[32 * j + l] + off;
            const int q = step ? round_clamp(v / step, 0, 15) : 0;
            qs[32 * (j / 2) + l] |= (uint8_t)(q << (4 * (j % 2)));
        }
    }
}

static void quant_q4_k(const float *src, uint8_t *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        quant_q4_k_block(src + i * QK_K, dst + i * Q4_K_SIZE);
}

/* Pack 256 6-bit values L (0..63) into ql[128], qh[64], the inverse of the
 * layout described at dequant_q6_k_block(). */
static void pack_q6_k(const uint8_t *L, uint8_t *ql, uint8_t *qh)
{
    for (int n = 0; n < QK_K; n += 128, L += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((L[l] & 0x0f) | ((L[l + 64] & 0x0f) << 4));
            ql[l + 32] = (uint8_t)((L[l + 32] & 0x0f) | ((L[l + 96] & 0x0f) << 4));
            qh[l] = (uint8_t)((L[l] >> 4) | ((L[l + 32] >> 4) << 2) |
                              ((L[l + 64] >> 4) << 4) | ((L[l + 96] >> 4) << 6));
        }
    }
}

/* Simplified q6_k quantizer: sub-block j of 16 gets step d*sc[j] >=
 * amax_j/31 (sc rounded up), so every value fits in -31..31 steps and is
 * off by at most half a step; d = max(amax_j/31)/127, rounded up. */
static void quant_q6_k_block(const float *x, uint8_t *b)
{
    float scale[16], max_scale = 0.0f;
    for (int j = 0; j < 16; j++) {
        float amax = 0.0f;
        for (int l = 0; l < 16; l++) amax = fmaxf(amax, fabsf(x[16 * j + l]));
        scale[j] = amax / 31;
        max_scale = fmaxf(max_scale, scale[j]);
    }
    const uint16_t d_h = f16_scale_up(max_scale / 127);
    const float d = dv_f16_to_f32(d_h);
    int8_t *sc = (int8_t *)(b + Q6_K_SCALES);
    uint8_t L[QK_K];
    for (int j = 0; j < 16; j++) {
        sc[j] = (int8_t)ceil_units(scale[j], d, 127);
        const float step = d * sc[j];
        for (int l = 0; l < 16; l++) {
            const int q = step ? round_clamp(x[16 * j + l] / step, -32, 31) : 0;
            L[16 * j + l] = (uint8_t)(q + 32);
        }
    }
    pack_q6_k(L, b, b + Q6_K_QH);
    store_u16(b + Q6_K_D, d_h);
}

static void quant_q6_k(const float *src, uint8_t *dst, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        quant_q6_k_block(src + i * QK_K, dst + i * Q6_K_SIZE);
}

static const quant_fn quant_fns[DV_TYPE_COUNT] = {
    [DV_TYPE_F32] = quant_f32,   [DV_TYPE_F16] = quant_f16,
    [DV_TYPE_BF16] = quant_bf16, [DV_TYPE_Q8_0] = quant_q8_0,
    [DV_TYPE_Q4_0] = quant_q4_0, [DV_TYPE_Q4_K] = quant_q4_k,
    [DV_TYPE_Q6_K] = quant_q6_k,
};

dv_status dv_quant_row(int t, const float *src, void *dst, int64_t n)
{
    const struct dv_type_traits *tr = dv_type_traits(t);
    if (!tr || !quant_fns[t])
        return dv_fail(DV_E_USAGE, "cannot quantize to tensor type %s (%d)",
                       dv_type_name(t), t);
    if (n < 0 || n % tr->blck != 0)
        return dv_fail(DV_E_USAGE, "quantize: %lld values are not whole %s "
                       "blocks of %lld", (long long)n, tr->name,
                       (long long)tr->blck);
    quant_fns[t](src, dst, n / tr->blck);
    return DV_OK;
}
