/*
 * arith.c - ggml's activation quantizers, their round trips in f32 and
 * f64, and the table of which type each matmul input is rounded to
 * (arith.h).
 *
 * Which quantizer runs on x86 (llama.cpp release of node-llama-cpp 3.22.1,
 * ggml-cpu/arch/x86/quants.c): every CPU build variant with AVX (sandybridge
 * and up; ggml_backend_load_best picks the best one the CPU runs) compiles
 * the AVX/AVX2 quantize_row_q8_0 and quantize_row_q8_1; quantize_row_q8_K
 * is quantize_row_q8_K_ref on x86. The same quantizers serve the other x86
 * paths: AMX kernels (from_float in amx/mmq.cpp: quantize_row_q8_0, _q8_1
 * and quantize_row_q8_K_ref) and the repacked AVX2 kernels for q4_0 and
 * q4_K weights, whose 4-row quantizers (arch/x86/repack.cpp) compute the
 * same d, 1/d and rounding per row (q8_K there picks the positive maximum
 * when +a and -a tie for the largest magnitude: d and q flip sign together,
 * the values are the same). We emulate that x86 arithmetic (DV_QV_X86) and,
 * for files ggml_quantize_chunk writes and the sse42/x64 builds, the
 * reference C code (DV_QV_REF). Tests check both bit for bit against the
 * prebuilt libraries (tests/unit/test_llamacpp_quant.c).
 *
 * Where the two variants part (q8_0, q8_1):
 *   x86: d = amax / 127; 1/d = 127 / amax; q = round half to even (vroundps),
 *        converted by vcvtps2dq (NaN and out-of-range give INT32_MIN) and
 *        narrowed by two saturating packs (int32 -> int16 -> int8); q8_1's
 *        s = f16(d * sum of the int32 quants before narrowing, wrapping).
 *   ref: d = amax / 127; 1/d = 1.0f / d; q = roundf (half away from zero),
 *        converted to int8; s = f16(sum of the int8 quants * d).
 * Only blocks with amax < 127 * 2^-128 (~3.7e-37) make 1/d infinite. The
 * x86 code is defined there (q = -128, d = f16(amax/127) = 0, so the values
 * are 0); the reference's conversion of an infinite roundf to int8 is
 * undefined behaviour in C, and we give 0 (what gcc's code does on x86).
 * q8_K (both): the first value of largest magnitude `max` (signed), iscale
 * = -127 / max, q = min(127, nearest_int(iscale * x)) where nearest_int adds
 * 1.5 * 2^23 and reads the low mantissa bits (round half to even below
 * 2^22; an infinite or NaN product gives a low byte of 0), d = 1 / iscale
 * stored as f32, bsums the sums of 16 quants; amax 0 gives an all-zero
 * block. f16 uses round to nearest even (F16C vcvtps2ph with imm 0, or
 * ggml's software conversion without F16C: the same for every number); bf16
 * ggml_compute_fp32_to_bf16 (round to nearest even, NaN made quiet).
 *
 * The project builds with -ffp-contract=off, so x * (1/d) is a rounded f32
 * product here as in ggml's separate vmulps, never fused.
 */
#include "arith.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "error.h"
#include "quant.h"

#define QK8 32   /* values per q8_0 / q8_1 block */
#define QKK 256  /* values per q8_K block */

enum { Q8_0_BYTES = 34, Q8_1_BYTES = 36, Q8_K_BYTES = 292 };

/* ---- helpers ----------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* vcvtps2dq of an already rounded r: NaN and values outside int32 give
 * the "integer indefinite" INT32_MIN. */
static int32_t cvt_i32(float r)
{
    if (!(r >= -2147483648.0f && r < 2147483648.0f)) return INT32_MIN;
    return (int32_t)r;
}

/* vpackssdw then vpacksswb: signed saturation to int8. */
static int8_t sat_i8(int32_t v)
{
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

/* The two's complement value of the low 32 bits of u (vpaddd wraps). */
static int32_t wrap_i32(uint32_t u)
{
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* The two's complement value of the low byte of v: C's conversion of an
 * int to int8_t as gcc defines it (modulo 256). */
static int8_t low_i8(int32_t v)
{
    const int b = (int)((uint32_t)v & 0xffu);
    return (int8_t)(b >= 128 ? b - 256 : b);
}

/* ggml's nearest_int: add 1.5 * 2^23 so the sum's low mantissa bits hold
 * the rounded integer (half to even, |v| < 2^22), then read them. */
static int32_t nearest_int_magic(float v)
{
    const float t = v + 12582912.0f;
    return (int32_t)(f32_bits(t) & 0x007fffffu) - 0x00400000;
}

/* x rounded to a binary format with p fraction bits, smallest normal
 * exponent emin and largest finite value maxfin, to nearest even, in one
 * rounding from double; overflow gives inf. */
static double round_format(double x, int p, int emin, double maxfin)
{
    if (x == 0 || !isfinite(x)) return x;
    int e;
    frexp(x, &e); /* |x| in [2^(e-1), 2^e) */
    int lead = e - 1 < emin ? emin : e - 1;
    const double r = ldexp(nearbyint(ldexp(x, p - lead)), lead - p);
    return fabs(r) > maxfin ? copysign(INFINITY, x) : r;
}

static double f16_of_double(double x) { return round_format(x, 10, -14, 65504.0); }
static double bf16_of_double(double x) { return round_format(x, 7, -126, 0x1.fep127); }

/* ---- q8_0 / q8_1 blocks, f32 ------------------------------------------ */

struct q8_block {
    uint16_t d;    /* f16 scale */
    uint16_t s;    /* q8_1 only: f16(d * sum of the quants) */
    int8_t q[QK8];
};

static float amax_of(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

/* quantize_row_q8_0 / _q8_1 as ggml-cpu's AVX code computes them. */
static void q8_block_x86(const float *x, struct q8_block *b)
{
    const float amax = amax_of(x, QK8);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    uint32_t sum = 0;
    for (int j = 0; j < QK8; j++) {
        const int32_t v = cvt_i32(rintf(x[j] * id));
        sum += (uint32_t)v;
        b->q[j] = sat_i8(v);
    }
    b->d = dv_f32_to_f16(d);
    b->s = dv_f32_to_f16(d * (float)wrap_i32(sum));
}

/* quantize_row_q8_0_ref / _q8_1_ref. */
static void q8_block_ref(const float *x, struct q8_block *b)
{
    const float amax = amax_of(x, QK8);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK8; j++) {
        const float r = roundf(x[j] * id);
        /* |r| <= 127 whenever 1/d is finite; see the top comment */
        b->q[j] = r >= -128.0f && r <= 127.0f ? (int8_t)r : 0;
        sum += b->q[j];
    }
    b->d = dv_f32_to_f16(d);
    b->s = dv_f32_to_f16((float)sum * d);
}

/* ---- q8_K blocks, f32 -------------------------------------------------- */

struct q8k_block {
    float d;
    int8_t q[QKK];
    int16_t bsums[QKK / 16];
};

/* quantize_row_q8_K_ref (what x86 runs). */
static void q8k_block(const float *x, struct q8k_block *b)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QKK; j++) {
        const float a = fabsf(x[j]);
        if (a > amax) amax = a, max = x[j];
    }
    memset(b, 0, sizeof *b);
    if (amax == 0.0f) return;
    const float iscale = -127.0f / max;
    for (int j = 0; j < QKK; j++) {
        const int32_t v = nearest_int_magic(iscale * x[j]);
        b->q[j] = low_i8(v < 127 ? v : 127);
    }
    for (int j = 0; j < QKK / 16; j++) {
        int sum = 0;
        for (int i = 0; i < 16; i++) sum += b->q[16 * j + i];
        b->bsums[j] = (int16_t)sum;
    }
    b->d = 1.0f / iscale;
}

/* ---- rows of blocks ---------------------------------------------------- */

static bool act_type_ok(int t)
{
    return t == DV_TYPE_Q8_0 || t == DV_TYPE_Q8_1 || t == DV_TYPE_Q8_K || t == DV_TYPE_F16 ||
           t == DV_TYPE_BF16;
}

static void store_q8k(uint8_t *p, const struct q8k_block *b)
{
    const uint32_t d = f32_bits(b->d);
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(d >> (8 * k));
    memcpy(p + 4, b->q, QKK);
    for (int j = 0; j < QKK / 16; j++) put_u16(p + 4 + QKK + 2 * j, (uint16_t)b->bsums[j]);
}

dv_status dv_arith_quantize_row(int t, int variant, const float *x, void *dst, int64_t n)
{
    if (!act_type_ok(t) || variant < 0 || variant >= DV_QV_COUNT)
        return dv_fail(DV_E_USAGE, "no activation quantizer for type %s, variant %d",
                       dv_type_name(t), variant);
    const struct dv_type_traits *tr = dv_type_traits(t);
    if (n < 0 || n % tr->blck)
        return dv_fail(DV_E_USAGE, "quantize: %lld values are not whole %s blocks of %lld",
                       (long long)n, tr->name, (long long)tr->blck);
    uint8_t *p = dst;
    if (t == DV_TYPE_F16 || t == DV_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++)
            put_u16(p + 2 * i, t == DV_TYPE_F16 ? dv_f32_to_f16(x[i]) : dv_f32_to_bf16(x[i]));
    } else if (t == DV_TYPE_Q8_K) {
        for (int64_t i = 0; i < n; i += QKK, p += Q8_K_BYTES) {
            struct q8k_block b;
            q8k_block(x + i, &b);
            store_q8k(p, &b);
        }
    } else {
        const bool q81 = t == DV_TYPE_Q8_1;
        for (int64_t i = 0; i < n; i += QK8, p += q81 ? Q8_1_BYTES : Q8_0_BYTES) {
            struct q8_block b;
            if (variant == DV_QV_X86) q8_block_x86(x + i, &b);
            else q8_block_ref(x + i, &b);
            put_u16(p, b.d);
            if (q81) put_u16(p + 2, b.s);
            memcpy(p + (q81 ? 4 : 2), b.q, QK8);
        }
    }
    return DV_OK;
}

void dv_arith_round_f32(int t, float *x, int64_t n)
{
    switch (t) {
    case DV_TYPE_F16:
        for (int64_t i = 0; i < n; i++) x[i] = dv_f16_to_f32(dv_f32_to_f16(x[i]));
        break;
    case DV_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) x[i] = dv_bf16_to_f32(dv_f32_to_bf16(x[i]));
        break;
    case DV_TYPE_Q8_0:
    case DV_TYPE_Q8_1: /* the same values: q8_1's s only enters q4_1/q5_1 dots */
        for (int64_t i = 0; i < n; i += QK8) {
            struct q8_block b;
            q8_block_x86(x + i, &b);
            const float d = dv_f16_to_f32(b.d);
            for (int j = 0; j < QK8; j++) x[i + j] = d * (float)b.q[j];
        }
        break;
    case DV_TYPE_Q8_K:
        for (int64_t i = 0; i < n; i += QKK) {
            struct q8k_block b;
            q8k_block(x + i, &b);
            for (int j = 0; j < QKK; j++) x[i + j] = b.d * (float)b.q[j];
        }
        break;
    default: /* DV_TYPE_F32: exact */
        break;
    }
}

/* ---- the same formulas in double --------------------------------------- */

/* q8_0 / q8_1 values of x[32] in place: the x86 formulas in double, d
 * rounded once to f16. */
static void q8_round_f64(double *x)
{
    double amax = 0.0;
    for (int j = 0; j < QK8; j++) amax = fabs(x[j]) > amax ? fabs(x[j]) : amax;
    const double d = f16_of_double(amax / 127.0);
    const double id = amax != 0.0 ? 127.0 / amax : 0.0;
    for (int j = 0; j < QK8; j++) {
        const double r = nearbyint(x[j] * id);
        const double q = !(r >= -128.0) ? -128.0 : r > 127.0 ? 127.0 : r; /* NaN: -128 */
        x[j] = d * q;
    }
}

/* q8_K values of x[256] in place: d = 1/iscale rounded to f32 (the
 * format's d), q rounded half to even, at most 127. */
static void q8k_round_f64(double *x)
{
    double amax = 0.0, max = 0.0;
    for (int j = 0; j < QKK; j++)
        if (fabs(x[j]) > amax) amax = fabs(x[j]), max = x[j];
    if (amax == 0.0) {
        memset(x, 0, QKK * sizeof *x);
        return;
    }
    const double iscale = -127.0 / max;
    const double d = (double)(float)(1.0 / iscale);
    for (int j = 0; j < QKK; j++) {
        const double r = nearbyint(iscale * x[j]);
        x[j] = d * (isfinite(r) ? (r < 127.0 ? r : 127.0) : 0.0);
    }
}

void dv_arith_round_f64(int t, double *x, int64_t n)
{
    switch (t) {
    case DV_TYPE_F16:
        for (int64_t i = 0; i < n; i++) x[i] = f16_of_double(x[i]);
        break;
    case DV_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) x[i] = bf16_of_double(x[i]);
        break;
    case DV_TYPE_Q8_0:
    case DV_TYPE_Q8_1:
        for (int64_t i = 0; i < n; i += QK8) q8_round_f64(x + i);
        break;
    case DV_TYPE_Q8_K:
        for (int64_t i = 0; i < n; i += QKK) q8k_round_f64(x + i);
        break;
    default:
        break;
    }
}

/* ---- which type, where -------------------------------------------------- */

/* ggml-cpu's vec_dot_type per weight type (type_traits_cpu, ggml-cpu.c). */
static int vec_dot_type(int wtype)
{
    switch (wtype) {
    case DV_TYPE_F32: return DV_TYPE_F32;
    case DV_TYPE_F16: return DV_TYPE_F16;
    case DV_TYPE_BF16: return DV_TYPE_BF16;
    case DV_TYPE_Q4_0:
    case DV_TYPE_Q5_0:
    case DV_TYPE_Q8_0:
    case DV_TYPE_IQ4_NL:
    case DV_TYPE_MXFP4: return DV_TYPE_Q8_0;
    case DV_TYPE_Q4_1:
    case DV_TYPE_Q5_1:
    case DV_TYPE_Q8_1: return DV_TYPE_Q8_1;
    default: return DV_TYPE_Q8_K; /* k-quants, iq2/iq3/iq1, iq4_xs, tq1_0, tq2_0 */
    }
}

int dv_arith_act_type(int aq, int wtype, int64_t rows, int64_t cols)
{
    switch (aq) {
    /* ggml-cpu converts the activations to vec_dot_type before the product
     * (llamafile's sgemm takes f16 weights on x86 only with f16
     * activations: sgemm.cpp, tinyBLAS); so do the attention products */
    case DV_ACTQ_AUTO: return vec_dot_type(wtype);
    /* ggml-cpu/amx: the AMX buffer type takes contiguous f16 matrices of
     * rows % 32 == 0 (TILE_N * 2) and cols % 16 == 0 and multiplies them
     * with the f32 activations (an AVX-512 kernel; measured on a Xeon with
     * AMX: llama.cpp's CPU on tiny-f16 matches the exact product, 2e-4 away
     * from the f16-rounded one); the quantized types it takes quantize the
     * activations to vec_dot_type as without it */
    case DV_ACTQ_AMX:
        return wtype == DV_TYPE_F16 && rows % 32 == 0 && cols % 16 == 0 ? DV_TYPE_F32
                                                                        : vec_dot_type(wtype);
    case DV_ACTQ_Q8_0: return DV_TYPE_Q8_0;
    case DV_ACTQ_Q8_1: return DV_TYPE_Q8_1;
    case DV_ACTQ_Q8_K: return DV_TYPE_Q8_K;
    case DV_ACTQ_F16: return DV_TYPE_F16;
    default: return DV_TYPE_F32;
    }
}

struct dv_attn_round dv_arith_attn(int aq, int attnq, int kv, int64_t T)
{
    struct dv_attn_round r = {DV_TYPE_F32, DV_TYPE_F32, DV_TYPE_F32, DV_TYPE_F32, false};
    if (attnq == DV_ATTNQ_VK) {
        if (T > 1) r = (struct dv_attn_round){DV_TYPE_F16, DV_TYPE_F16, DV_TYPE_F16,
                                              DV_TYPE_F16, kv == DV_TYPE_F16};
        return r;
    }
    const bool round_q = attnq == DV_ATTNQ_AUTO ? aq != DV_ACTQ_NONE : attnq != DV_ATTNQ_NONE;
    const bool round_p = attnq == DV_ATTNQ_AUTO ? aq != DV_ACTQ_NONE : attnq == DV_ATTNQ_QP;
    if (round_q) r.q = vec_dot_type(kv);
    if (round_p && kv == DV_TYPE_F16) r.p = DV_TYPE_F16;
    return r;
}

const char *dv_arith_attn_name(int aq, int attnq, int kv)
{
    if (attnq == DV_ATTNQ_VK) return "vk";
    const struct dv_attn_round r = dv_arith_attn(aq, attnq, kv, 2);
    if (r.q == DV_TYPE_F32) return "none";
    return r.p == DV_TYPE_F32 ? "q" : "qp";
}

bool dv_arith_kv_ok(int t)
{
    return t == DV_TYPE_F32 || t == DV_TYPE_F16 || t == DV_TYPE_Q8_0;
}

dv_status dv_arith_check_row(int t, int64_t n, const char *what)
{
    const struct dv_type_traits *tr = dv_type_traits(t);
    if (!tr || n % tr->blck == 0) return DV_OK;
    return dv_fail(DV_E_USAGE, "%s: rows of %lld values do not split into %s blocks of %lld",
                   what, (long long)n, tr->name, (long long)tr->blck);
}

/* The matmul weights of m, in forward order; *n gets their count (at most
 * 7 per layer plus the output). */
static int weights_of(const struct dv_model *m, int64_t il, const struct dv_gguf_tensor **w)
{
    if (il == m->cfg.n_layer) {
        w[0] = m->output;
        return 1;
    }
    const struct dv_layer *l = &m->layers[il];
    const struct dv_gguf_tensor *ws[7] = {l->wq, l->wk, l->wv, l->wo, l->ffn_gate, l->ffn_up,
                                          l->ffn_down};
    memcpy(w, ws, sizeof ws);
    return 7;
}

dv_status dv_arith_check(const struct dv_model *m, int aq, int kv)
{
    if (aq < 0 || aq >= DV_ACTQ_COUNT)
        return dv_fail(DV_E_USAGE, "unknown activation quantization mode %d", aq);
    if (!dv_arith_kv_ok(kv))
        return dv_fail(DV_E_USAGE, "KV cache type %s: f32, f16 or q8_0", dv_type_name(kv));
    const struct dv_config *c = &m->cfg;
    if (kv == DV_TYPE_Q8_0 && c->head_dim % QK8)
        return dv_fail(DV_E_USAGE, "a q8_0 KV cache needs head_dim %% 32 == 0 (q8_0 blocks "
                       "must not cross heads, as llama.cpp requires); this model has "
                       "head_dim %lld", (long long)c->head_dim);
    for (int64_t il = 0; il <= c->n_layer; il++) {
        const struct dv_gguf_tensor *w[7];
        const int n = weights_of(m, il, w);
        for (int i = 0; i < n; i++) {
            const int at = dv_arith_act_type(aq, w[i]->type, w[i]->ne[1], w[i]->ne[0]);
            char what[160];
            snprintf(what, sizeof what, "act-quant %s on %.*s", dv_act_quant_name(aq),
                     (int)(w[i]->name.len < 96 ? w[i]->name.len : 96), w[i]->name.ptr);
            dv_status s = dv_arith_check_row(at, w[i]->ne[0], what);
            if (s) return s;
        }
    }
    return DV_OK;
}

void dv_arith_describe(const struct dv_model *m, int aq, char *buf, size_t cap)
{
    int at[DV_TYPE_COUNT]; /* per weight type, from its first matrix; -1 unseen */
    for (int t = 0; t < DV_TYPE_COUNT; t++) at[t] = -1;
    for (int64_t il = 0; il <= m->cfg.n_layer; il++) {
        const struct dv_gguf_tensor *w[7];
        const int n = weights_of(m, il, w);
        for (int i = 0; i < n; i++)
            if (w[i]->type >= 0 && w[i]->type < DV_TYPE_COUNT && at[w[i]->type] < 0)
                at[w[i]->type] = dv_arith_act_type(aq, w[i]->type, w[i]->ne[1], w[i]->ne[0]);
    }
    size_t o = 0;
    if (cap) buf[0] = '\0';
    for (int t = 0; t < DV_TYPE_COUNT; t++) {
        if (at[t] < 0) continue;
        const int k = snprintf(buf + o, o < cap ? cap - o : 0, "%s%s=%s", o ? "," : "",
                               dv_type_name(t), at[t] == DV_TYPE_F32 ? "none"
                                                                    : dv_type_name(at[t]));
        o += k > 0 ? (size_t)k : 0;
    }
}
