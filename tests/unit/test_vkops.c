/*
 * test_vkops.c - every GPU op of the forward pass against the CPU reference
 * op, through the single-op runner (kernels/vk_ops.h, the forward pass's own
 * pipelines), on whatever device the loader offers (lavapipe in CI). No
 * device is a failure with vulkan's one-line reason, not a skip.
 *
 * Each op runs on seeded random inputs over a grid of shapes with tails
 * (sizes that are not multiples of the tiles or workgroups, N = 1) and is
 * compared with a reference in double (the f64 ops of cpu_ops.h or a plain
 * double loop) and with the f32 reference op the CPU forward pass runs.
 * NMSE = sum((y - ref64)^2) / sum(ref64^2) of the GPU and of the CPU f32 op
 * must both lie within the op's bound (TOL_* below); the worst of each is
 * printed per op. What the GPU must reproduce exactly (get_rows, rope, the
 * kv cache writes, add) is compared bit for bit. Then: reruns give the same
 * bits, each fault of the fault zoo changes exactly the ops it concerns,
 * and the validation layer (DV_VK_VALIDATION=1) reports nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* gsl_randist.h brings gsl_cblas.h, whose cblas_sgemm is declared as
 * OpenBLAS's (cblas.h would clash with it); the build links libgsl
 * without gslcblas, so the call is OpenBLAS's, as in the CPU pass. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_ops.h"
#include "error.h"
#include "model.h"
#include "quant.h"
#include "types.h"
#include "vk.h"
#include "vk_ops.h"

/* ---- tolerances ----------------------------------------------------------
 * U is the f32 unit roundoff: Vulkan requires f32 +, - and * correctly
 * rounded, so each carries a relative error of at most U. Division may be
 * off by 2.5 ulp, inversesqrt by 2 ulp, exp(x) by 3 + 2|x| ulp (Vulkan's
 * "Precision and Operation of SPIR-V Instructions"); one ulp is at most 2U
 * relative. Every bound below must hold on any conforming device, not only
 * on lavapipe, and it holds for the CPU f32 op too (the same f32 math). */
#define U 0x1p-24
#define U2 (U * U)

/* matmul, kq, kqv: an f32 sum of K products rounds K times, each time by
 * up to U of a partial sum that for independent signs has grown like
 * sqrt(k) terms: error variance ~ K^2 U^2 tau^2 / 6 for terms of rms tau,
 * so NMSE ~ K U^2 / 6 times c = sum(term^2) / sum(result^2), the
 * cancellation (c ~ 1 for many outputs; one output of M = N = 1 can sum to
 * near 0, which the terms' rounding does not know about). The bound is
 * TOL_DOT_PER_TERM * K * max(c, 1): 24 times that expectation for the
 * tiled kernel's sequential sum (the matvec's tree of partial sums does
 * better). The worst case, every rounding the same way, is K U relative,
 * K times more in NMSE, and does not happen for random inputs. Real bugs
 * are far above: one wrong output in 1000 gives ~1e-3, an f16 accumulator
 * 3e-7 or more, a dropped K tail 4e-2 (test_faults). */
#define TOL_DOT_PER_TERM (4 * U2)

/* rmsnorm: sum of n squares (no cancellation) in strided f32 partial sums
 * and an 8-level tree, <= (n/256 + 8) U relative; / n (5U), + eps (U),
 * sqrt and 1/x (2 + 2.5 + 2.5 ulp = 14U), then x * scale * w (2U). Half
 * the sum's error passes the root: at n = 2048 the scale of a row is off
 * by <= ((16 + 6) / 2 + 14 + 2) U = 27 U, and every value of the row with
 * it: NMSE <= (27 U)^2 = 729 U^2 ~ 2.6e-12. The rmsnorm-eps fault moves
 * unit-scale rows by NMSE 2.5e-11 (test_faults), far more where mean(x^2)
 * nears eps (the small scale tested here). */
#define TOL_RMSNORM (729 * U2)

/* rope, checked bit for bit against dv_cpu_rope_f32; against f64 each
 * output x0 c - x1 s has terms off by 2U (table value, product) and one
 * rounding: e^2 <= 16 U^2 (t0^2 + t1^2) + 2 U^2 r^2, and a rotation keeps
 * sum(t0^2 + t1^2) = sum(r^2): NMSE <= 18 U^2. */
#define TOL_ROPE (18 * U2)

/* softmax: p = exp(x - max) / sum. x - max rounds (U |d|, d = x - max),
 * exp is within 3 + 2|d| ulp, so e is off by (6 + 5|d|) U; the sum of n
 * positive values by (n/256 + 8) U plus its terms' error, 1/sum by 5U,
 * p = e * inv by U. NMSE weighs p^2: the values that count have |d| < ~2
 * (our scores have sd 3, p falls as e^-d). Worst, d = 2 at n = 1000:
 * (16 + 12 + 16 + 5 + 1) U = 50 U; NMSE <= 2500 U^2 ~ 9e-12. */
#define TOL_SOFTMAX (2500 * U2)

/* silu_mul: g / (1 + exp(-g)) * u. exp(-g) is within (3 + 2|g|) ulp,
 * (6 + 4|g|) U, which reaches silu scaled by e / (1 + e) (e = exp(-g)):
 * damped for g > 0, whole for g < 0 (silu(g) ~ g e^g there). Then 1 + e
 * (U), the division (5U), * u (U). Our g are clamped to |g| <= SILU_G_MAX
 * = 12: every value is within (6 + 48 + 7) U = 61 U, NMSE <= 3721 U^2 ~
 * 1.3e-11. */
#define SILU_G_MAX 12.0f
#define TOL_SILU_MUL (3721 * U2)

/* add: one correctly rounded f32 sum, bit for bit as a + b on the CPU;
 * against f64 that is <= U relative: NMSE <= U^2. get_rows is exact: NMSE
 * 0. */
#define TOL_ADD (1 * U2)

#define SEED 20240611u

/* ---- context: one device and one clean set of kernels for the program ---- */

struct ctx {
    struct dv_vk *vk;     /* NULL without a device; then why says why */
    struct dv_vkops *ops; /* fault 0 */
    gsl_rng *rng;
    char why[512];
};

#define OK(call)                                                                  \
    do {                                                                          \
        dv_status s_ = (call);                                                    \
        if (s_) fail_msg("%s: %s (%s)", #call, dv_status_name(s_), dv_errmsg()); \
    } while (0)

static int group_setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->rng = gsl_rng_alloc(gsl_rng_mt19937))) {
        free(c);
        return -1;
    }
    if (dv_vk_open(NULL, false, &c->vk) || dv_vkops_new(c->vk, DV_FAULT_NONE, &c->ops))
        snprintf(c->why, sizeof c->why, "%s", dv_errmsg());
    else
        printf("device: %s (%s)\n", dv_vk_device_name(c->vk), dv_vk_driver_name(c->vk));
    *state = c;
    return 0;
}

static int group_teardown(void **state)
{
    struct ctx *c = *state;
    dv_vkops_free(c->ops);
    dv_vk_close(c->vk);
    gsl_rng_free(c->rng);
    free(c);
    return 0;
}

/* The context of a test, its generator seeded for this test alone (so a
 * test gives the same inputs run alone or after others). */
static struct ctx *need(void **state, unsigned salt)
{
    struct ctx *c = *state;
    if (!c->ops) fail_msg("no Vulkan device for the kernel tests: %s", c->why);
    gsl_rng_set(c->rng, SEED ^ (salt * 0x9e3779b9u));
    return c;
}

static void done(struct ctx *c) { assert_int_equal(dv_vk_validation_errors(c->vk), 0); }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- helpers ------------------------------------------------------------- */

static void fill_normal(gsl_rng *r, float *x, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)gsl_ran_gaussian_ziggurat(r, sd);
}

static double *widen(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *fdup(const float *x, size_t n)
{
    float *d = malloc((n ? n : 1) * sizeof *d);
    assert_non_null(d);
    memcpy(d, x, n * sizeof *d);
    return d;
}

/* Output arrays with guard words on both sides: the runner must write its
 * n floats and nothing around them. */
#define GUARD 8
static const uint32_t guard_bits = 0x7fa11a5au; /* a NaN no op produces */

static float *gnew(size_t n)
{
    float *b = malloc((n + 2 * GUARD) * sizeof *b);
    assert_non_null(b);
    for (size_t i = 0; i < n + 2 * GUARD; i++) memcpy(&b[i], &guard_bits, 4);
    return b + GUARD;
}

static void gfree(float *p, size_t n)
{
    for (size_t i = 0; i < GUARD; i++) {
        uint32_t lo, hi;
        memcpy(&lo, &p[(ptrdiff_t)i - GUARD], 4);
        memcpy(&hi, &p[n + i], 4);
        if (lo != guard_bits || hi != guard_bits)
            fail_msg("a guard word around an output of %zu floats was overwritten", n);
    }
    free(p - GUARD);
}

/* Index of the first of n floats whose bits differ, or -1. */
static long bits_differ(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) return (long)i;
    return -1;
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what)
{
    long i = bits_differ(a, b, n);
    if (i < 0) return;
    uint32_t ba, bb;
    memcpy(&ba, &a[i], 4), memcpy(&bb, &b[i], 4);
    fail_msg("%s: value %ld differs: %.9g vs %.9g (bits %08x vs %08x)", what, i, (double)a[i],
             (double)b[i], ba, bb);
}

/* NMSE of y against ref over n values. Where ref is not finite (-inf of a
 * mask) y must be the same value; elsewhere y must be finite (NaN/Inf:
 * INFINITY). */
static double nmse(const float *y, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i])) {
            if ((double)y[i] != ref[i]) return INFINITY;
            continue;
        }
        if (!isfinite(y[i])) return INFINITY;
        const double d = (double)y[i] - ref[i];
        num += d * d, den += ref[i] * ref[i];
    }
    return den > 0 ? num / den : (num > 0 ? INFINITY : 0);
}

/* The worst NMSE of an op over its cases, GPU and CPU f32, and its time. */
struct worst {
    const char *op;
    double gpu, cpu, ratio; /* ratio: worst GPU NMSE / its bound */
    char gpu_at[96];
    int cases;
    double t0;
};

static struct worst worst_start(const char *op)
{
    return (struct worst){.op = op, .t0 = now()};
}

/* Check one case: both NMSEs within tol, and keep the worst. */
static void worst_check(struct worst *w, const char *at, double gpu, double cpu, double tol)
{
    if (!(gpu <= tol)) fail_msg("%s %s: GPU nmse %.3g > bound %.3g", w->op, at, gpu, tol);
    if (!(cpu <= tol)) fail_msg("%s %s: CPU f32 nmse %.3g > bound %.3g", w->op, at, cpu, tol);
    if (gpu >= w->gpu) w->gpu = gpu, snprintf(w->gpu_at, sizeof w->gpu_at, "%s", at);
    if (cpu > w->cpu) w->cpu = cpu;
    if (tol > 0 && gpu / tol > w->ratio) w->ratio = gpu / tol;
    w->cases++;
}

static void worst_print(const struct worst *w)
{
    printf("  %-13s %4d cases  worst nmse vs f64: GPU %.2e (%s, %.3f of bound)  "
           "CPU-f32 %.2e  %.2f s\n",
           w->op, w->cases, w->gpu, w->gpu_at[0] ? w->gpu_at : "-", w->ratio, w->cpu,
           now() - w->t0);
}

/* Bound of a K-term dot product op (TOL_DOT_PER_TERM) given the sum of the
 * squared terms and of the squared results. */
static double dot_tol(double K, double terms2, double res2)
{
    const double c = res2 > 0 ? terms2 / res2 : INFINITY;
    return TOL_DOT_PER_TERM * K * (c > 1 ? c : 1);
}

/* ---- get_rows ------------------------------------------------------------ */

static const int wtypes[] = {DV_TYPE_F32, DV_TYPE_F16, DV_TYPE_BF16, DV_TYPE_Q8_0,
                             DV_TYPE_Q4_0, DV_TYPE_Q4_K, DV_TYPE_Q6_K};
#define N_WTYPES (int)(sizeof wtypes / sizeof wtypes[0])

/* Row lengths per weight type: whole blocks; for the float types also
 * K < 32, K % 4 != 0 and K not a multiple of DV_MM_BK (the tails). */
static int ks_of(int t, const int **ks)
{
    static const int kf[] = {1, 7, 31, 64, 172, 300};
    static const int k32[] = {32, 96, 320};
    static const int k256[] = {256, 512};
    if (t == DV_TYPE_F32 || t == DV_TYPE_F16 || t == DV_TYPE_BF16) return *ks = kf, 6;
    if (t == DV_TYPE_Q8_0 || t == DV_TYPE_Q4_0) return *ks = k32, 3;
    return *ks = k256, 2;
}

/* rows x K random values of type t: the packed bytes and their dequantized
 * f32 values (the reference's weights). */
static void make_weight(gsl_rng *r, int t, int rows, int K, void **q, float **f)
{
    size_t rb = 0;
    OK(dv_row_size(t, K, &rb));
    float *src = malloc((size_t)rows * (size_t)K * sizeof *src);
    uint8_t *qb = malloc((size_t)rows * rb);
    *f = malloc((size_t)rows * (size_t)K * sizeof **f);
    assert_true(src && qb && *f);
    fill_normal(r, src, (size_t)rows * (size_t)K, 1.0);
    for (int i = 0; i < rows; i++) {
        OK(dv_quant_row(t, src + (size_t)i * K, qb + (size_t)i * rb, K));
        OK(dv_dequant_row(t, qb + (size_t)i * rb, *f + (size_t)i * K, K));
    }
    free(src);
    *q = qb;
}

/* A token's matmul result does not depend on which tokens share its
 * dispatch: matvec's per-output sum order is independent of how many
 * tokens a workgroup takes (NT) and of N, so token n of an N-token call is
 * bit for bit token n run alone (bisect replays ops on other token counts
 * than the forward pass ran them with). N from 2 to DV_MV_MAX_N, the
 * numbers of tokens the matvec kernel takes. */
static void test_matmul_batch_invariant(void **state)
{
    struct ctx *c = need(state, 97);
    static const int types[] = {DV_TYPE_F32, DV_TYPE_Q8_0, DV_TYPE_Q4_K};
    const int M = 37, K = 512, NMAX = DV_MV_MAX_N;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        void *w;
        float *wf;
        make_weight(c->rng, types[i], M, K, &w, &wf);
        float *x = malloc((size_t)NMAX * K * sizeof *x), *y = malloc((size_t)NMAX * M * sizeof *y);
        float *y1 = malloc((size_t)M * sizeof *y1);
        assert_true(x && y && y1);
        fill_normal(c->rng, x, (size_t)NMAX * K, 1.0);
        static const int Ns[] = {2, 5, 8, 9, 13, 16, 17, 33, DV_MV_MAX_N};
        for (size_t j = 0; j < sizeof Ns / sizeof Ns[0]; j++) {
            const int N = Ns[j];
            OK(dv_vkrun_matmul(c->ops, false, types[i], w, M, K, x, N, y));
            for (int n = 0; n < N; n += N > 4 ? N / 3 : 1) {
                OK(dv_vkrun_matmul(c->ops, false, types[i], w, M, K, x + (size_t)n * K, 1, y1));
                if (memcmp(y1, y + (size_t)n * M, (size_t)M * sizeof *y1))
                    fail_msg("%s: token %d of %d differs from the token alone",
                             dv_type_name(types[i]), n, N);
            }
        }
        free(x), free(y), free(y1), free(w), free(wf);
    }
    done(c);
}

/* Values random rows never hold, bit for bit too: subnormals (real f16
 * and bf16 weights have them; Vulkan lets unpackHalf2x16 flush them, so
 * dequant.glsl decodes halves by hand), signed zeros, the largest finite
 * values, infinities and a quiet NaN with a payload. K = 11: a tail. */
static void check_get_rows_specials(struct ctx *c)
{
    static const uint32_t f32[] = {0x00000000, 0x80000000, 0x00000001, 0x807fffff,
                                   0x00800000, 0x7f7fffff, 0xff7fffff, 0x7f800000,
                                   0xff800000, 0x7fc12345, 0x3f800000};
    static const uint16_t f16[] = {0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff,
                                   0xfbff, 0x7c00, 0xfc00, 0x7e55, 0x3c00};
    static const uint16_t bf16[] = {0x0000, 0x8000, 0x0001, 0x807f, 0x0080, 0x7f7f,
                                    0xff7f, 0x7f80, 0xff80, 0x7fc5, 0x3f80};
    static const struct { int t; const void *row; } rows[] = {
        {DV_TYPE_F32, f32}, {DV_TYPE_F16, f16}, {DV_TYPE_BF16, bf16}};
    enum { K = 11 };
    for (int i = 0; i < 3; i++) {
        const int32_t id = 0;
        float want[K], *out = gnew(K);
        OK(dv_dequant_row(rows[i].t, rows[i].row, want, K));
        OK(dv_vkrun_get_rows(c->ops, false, rows[i].t, rows[i].row, 1, K, &id, 1, out));
        char at[64];
        snprintf(at, sizeof at, "get_rows %s special values", dv_type_name(rows[i].t));
        assert_same_bits(out, want, K, at);
        gfree(out, K);
    }
}

/* out[t] = dequantized row ids[t], bit for bit with dv_dequant_row. */
static void test_get_rows(void **state)
{
    struct ctx *c = need(state, 1);
    struct worst w = worst_start("get_rows");
    enum { ROWS = 9 };
    for (int ti = 0; ti < N_WTYPES; ti++) {
        const int t = wtypes[ti], *ks;
        const int nk = ks_of(t, &ks);
        for (int ki = 0; ki < nk; ki++) {
            const int K = ks[ki];
            void *q;
            float *f;
            make_weight(c->rng, t, ROWS, K, &q, &f);
            for (int T = 1; T <= 5; T += 4) {
                int32_t ids[5];
                for (int i = 0; i < T; i++) ids[i] = (int32_t)gsl_rng_uniform_int(c->rng, ROWS);
                ids[T - 1] = ROWS - 1; /* the last row: the end of the buffer */
                float *out = gnew((size_t)T * K), *want = malloc((size_t)T * K * sizeof *want);
                assert_non_null(want);
                OK(dv_vkrun_get_rows(c->ops, false, t, q, ROWS, K, ids, T, out));
                for (int i = 0; i < T; i++) memcpy(want + (size_t)i * K, f + (size_t)ids[i] * K,
                                                   (size_t)K * sizeof *want);
                char at[96];
                snprintf(at, sizeof at, "%s K %d T %d", dv_type_name(t), K, T);
                assert_same_bits(out, want, (size_t)T * K, at);
                double *ref = widen(want, (size_t)T * K);
                worst_check(&w, at, nmse(out, ref, (size_t)T * K), 0, 0);
                free(ref), free(want);
                gfree(out, (size_t)T * K);
            }
            free(q), free(f);
        }
    }
    check_get_rows_specials(c);
    worst_print(&w);
    done(c);
}

/* ---- rmsnorm ------------------------------------------------------------- */

static void test_rmsnorm(void **state)
{
    struct ctx *c = need(state, 2);
    struct worst w = worst_start("rmsnorm");
    static const int ns[] = {1, 64, 172, 257, 2048};
    static const double scales[] = {1.0, 3e-3}; /* 3e-3: mean(x^2) ~ eps matters */
    const float eps = 1e-5f;
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
        for (int T = 1; T <= 3; T += 2)
            for (int si = 0; si < 2; si++) {
                const int n = ns[ni];
                const size_t nx = (size_t)T * n;
                float *x = malloc(nx * sizeof *x), *wt = malloc((size_t)n * sizeof *wt);
                float *cpu = malloc(nx * sizeof *cpu), *y = gnew(nx), *y2 = gnew(nx);
                double *ref = malloc(nx * sizeof *ref);
                assert_true(x && wt && cpu && ref);
                fill_normal(c->rng, x, nx, scales[si]);
                for (int i = 0; i < n; i++)
                    wt[i] = (float)(1.0 + gsl_ran_gaussian_ziggurat(c->rng, 0.1));
                OK(dv_vkrun_rmsnorm(c->ops, false, x, wt, T, n, eps, y));
                OK(dv_vkrun_rmsnorm(c->ops, false, x, wt, T, n, eps, y2));
                assert_same_bits(y, y2, nx, "rmsnorm rerun");
                dv_cpu_rmsnorm_f32(cpu, x, wt, T, n, eps);
                double *xd = widen(x, nx), *wd = widen(wt, (size_t)n);
                dv_cpu_rmsnorm_f64(ref, xd, wd, T, n, eps);
                char at[96];
                snprintf(at, sizeof at, "n %d T %d scale %g", n, T, scales[si]);
                worst_check(&w, at, nmse(y, ref, nx), nmse(cpu, ref, nx), TOL_RMSNORM);
                free(x), free(wt), free(cpu), free(ref), free(xd), free(wd);
                gfree(y, nx), gfree(y2, nx);
            }
    worst_print(&w);
    done(c);
}

/* ---- matmul -------------------------------------------------------------- */

static const int mm_M[] = {1, 5, 64, 65, 172, 300};
/* N: matvec with 1..DV_MV_NT tokens per group, whole and partial groups,
 * then the tiled kernel (DV_MV_MAX_N + 1) */
static const int mm_N[] = {1, 2, 4, 5, 9, 33, DV_MV_MAX_N, DV_MV_MAX_N + 1};
enum { MM_MAXM = 300, MM_MAXN = DV_MV_MAX_N + 1 };

/* y = x W^T for one weight type over the M x N x K grid: GPU (twice: the
 * same bits; N <= DV_MV_MAX_N runs the matvec kernel, more the tiled one),
 * CPU sgemm on the dequantized weights, and the double sum. */
static void check_matmul(void **state, int t)
{
    struct ctx *c = need(state, 100 + (unsigned)t);
    char op[32];
    snprintf(op, sizeof op, "matmul %s", dv_type_name(t));
    struct worst w = worst_start(op);
    const int *ks;
    const int nk = ks_of(t, &ks);
    for (int ki = 0; ki < nk; ki++) {
        const int K = ks[ki];
        void *q;
        float *wf, *x = malloc((size_t)MM_MAXN * K * sizeof *x);
        double *ref = malloc((size_t)MM_MAXN * MM_MAXM * sizeof *ref);
        double *terms2 = malloc((size_t)MM_MAXN * MM_MAXM * sizeof *terms2);
        assert_true(x && ref && terms2);
        make_weight(c->rng, t, MM_MAXM, K, &q, &wf);
        fill_normal(c->rng, x, (size_t)MM_MAXN * K, 1.0);
        /* outputs do not depend on M and N: one reference for the grid */
        for (int n = 0; n < MM_MAXN; n++)
            for (int m = 0; m < MM_MAXM; m++) {
                double s = 0, s2 = 0;
                for (int k = 0; k < K; k++) {
                    const double p = (double)wf[(size_t)m * K + k] * x[(size_t)n * K + k];
                    s += p, s2 += p * p;
                }
                ref[n * MM_MAXM + m] = s, terms2[n * MM_MAXM + m] = s2;
            }
        for (size_t mi = 0; mi < sizeof mm_M / sizeof *mm_M; mi++)
            for (size_t ni = 0; ni < sizeof mm_N / sizeof *mm_N; ni++) {
                const int M = mm_M[mi], N = mm_N[ni];
                const size_t ny = (size_t)N * M;
                float *y = gnew(ny), *y2 = gnew(ny), *cpu = malloc(ny * sizeof *cpu);
                double *r = malloc(ny * sizeof *r);
                assert_true(cpu && r);
                OK(dv_vkrun_matmul(c->ops, false, t, q, M, K, x, N, y));
                OK(dv_vkrun_matmul(c->ops, false, t, q, M, K, x, N, y2));
                char at[96];
                snprintf(at, sizeof at, "M %d N %d K %d", M, N, K);
                assert_same_bits(y, y2, ny, at);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, K, 1, x, K, wf, K,
                            0, cpu, M);
                double t2 = 0, r2 = 0;
                for (int n = 0; n < N; n++)
                    for (int m = 0; m < M; m++) {
                        r[(size_t)n * M + m] = ref[n * MM_MAXM + m];
                        t2 += terms2[n * MM_MAXM + m];
                        r2 += ref[n * MM_MAXM + m] * ref[n * MM_MAXM + m];
                    }
                worst_check(&w, at, nmse(y, r, ny), nmse(cpu, r, ny), dot_tol(K, t2, r2));
                gfree(y, ny), gfree(y2, ny), free(cpu), free(r);
            }
        free(q), free(wf), free(x), free(ref), free(terms2);
    }
    worst_print(&w);
    done(c);
}

#define MATMUL_TEST(T) \
    static void test_matmul_##T(void **state) { check_matmul(state, DV_TYPE_##T); }
MATMUL_TEST(F32)
MATMUL_TEST(F16)
MATMUL_TEST(BF16)
MATMUL_TEST(Q8_0)
MATMUL_TEST(Q4_0)
MATMUL_TEST(Q4_K)
MATMUL_TEST(Q6_K)

/* ---- rope ---------------------------------------------------------------- */

/* x[T, nh, hd] rotated: bit for bit with dv_cpu_rope_f32 on the table of
 * dv_cpu_rope_table_f32 (the shader does the same two products and one
 * add or subtract per output); NMSE against the f64 op and table. */
static void check_rope(void **state, int mode)
{
    struct ctx *c = need(state, 3 + (unsigned)mode);
    struct worst w = worst_start(mode == DV_ROPE_NEOX ? "rope neox" : "rope norm");
    static const int hds[] = {8, 64, 72}, pos0s[] = {0, 7, 1000};
    const int nh = 3;
    const double base = 10000.0;
    for (int hi = 0; hi < 3; hi++)
        for (int rot = 0; rot < 2; rot++)
            for (int pi = 0; pi < 3; pi++)
                for (int T = 1; T <= 5; T += 4) {
                    const int hd = hds[hi], n_rot = rot ? hd : hd / 2, pos0 = pos0s[pi];
                    const size_t nx = (size_t)T * nh * hd, nt = (size_t)T * (n_rot / 2);
                    float *x = malloc(nx * sizeof *x), *y = gnew(nx);
                    assert_non_null(x);
                    fill_normal(c->rng, x, nx, 1.0);
                    OK(dv_vkrun_rope(c->ops, false, x, T, nh, hd, n_rot, mode, pos0, base, y));
                    float *cpu = fdup(x, nx), *cs = malloc(2 * nt * sizeof *cs);
                    double *ref = widen(x, nx), *cd = malloc(2 * nt * sizeof *cd);
                    assert_true(cs && cd);
                    dv_cpu_rope_table_f32(cs, cs + nt, T, pos0, n_rot, base);
                    dv_cpu_rope_f32(cpu, T, nh, hd, n_rot, mode, cs, cs + nt);
                    dv_cpu_rope_table_f64(cd, cd + nt, T, pos0, n_rot, base);
                    dv_cpu_rope_f64(ref, T, nh, hd, n_rot, mode, cd, cd + nt);
                    char at[96];
                    snprintf(at, sizeof at, "hd %d n_rot %d pos0 %d T %d", hd, n_rot, pos0, T);
                    assert_same_bits(y, cpu, nx, at);
                    worst_check(&w, at, nmse(y, ref, nx), nmse(cpu, ref, nx), TOL_ROPE);
                    free(x), free(cpu), free(cs), free(ref), free(cd);
                    gfree(y, nx);
                }
    worst_print(&w);
    done(c);
}

static void test_rope_norm(void **state) { check_rope(state, DV_ROPE_NORM); }
static void test_rope_neox(void **state) { check_rope(state, DV_ROPE_NEOX); }

/* ---- attention: kv_write, kq, softmax, kqv -------------------------------- */

/* The kv_write kernel alone on views with offsets: rows pos0.. of the
 * cache become src bit for bit, every other word stays. */
static void check_kv_write(struct ctx *c, int T, int pos0, int width)
{
    const uint32_t so = 3, co = 5;
    const size_t ns = (size_t)T * width, nc = (size_t)(pos0 + T + 2) * width + co + 7;
    struct dv_vk_buf src, cache;
    OK(dv_vk_buf_alloc(c->vk, (ns + so) * 4, true, &src));
    OK(dv_vk_buf_alloc(c->vk, nc * 4, true, &cache));
    fill_normal(c->rng, src.map, ns + so, 1.0);
    fill_normal(c->rng, cache.map, nc, 1.0);
    float *want = fdup(cache.map, nc);
    memcpy(want + co + (size_t)pos0 * width, (float *)src.map + so, ns * 4);
    OK(dv_vkop_kv_write(c->ops, false, (struct dv_vk_t){&src, so}, (struct dv_vk_t){&cache, co},
                        (uint32_t)T, (uint32_t)width, (uint32_t)pos0));
    OK(dv_vk_submit(c->vk));
    char at[64];
    snprintf(at, sizeof at, "kv_write T %d pos0 %d width %d", T, pos0, width);
    assert_same_bits(cache.map, want, nc, at);
    free(want);
    dv_vk_buf_free(c->vk, &src), dv_vk_buf_free(c->vk, &cache);
}

static const int att_pos0[] = {0, 3, 17}, att_T[] = {1, 6}, att_hd[] = {8, 64, 72};
static const int att_heads[][2] = {{4, 4}, {4, 2}, {8, 1}};

/* One attention case and its inputs: q [T, H*hd]; the cache kc / vc
 * [n_kv, Hkv*hd], rows < pos0 from earlier passes, then this pass's rows
 * (which the runner writes with kv_write). */
struct att_case {
    int T, pos0, H, Hkv, hd, n_kv, kvd;
    char at[96];
};

/* Case i of the grid pos0 x T x heads x hd. */
enum { N_ATT_CASES = 3 * 2 * 3 * 3 };
static struct att_case att_case(int i)
{
    struct att_case a = {.hd = att_hd[i % 3], .H = att_heads[i / 3 % 3][0],
                         .Hkv = att_heads[i / 3 % 3][1], .T = att_T[i / 9 % 2],
                         .pos0 = att_pos0[i / 18]};
    a.n_kv = a.pos0 + a.T, a.kvd = a.Hkv * a.hd;
    snprintf(a.at, sizeof a.at, "pos0 %d T %d H/Hkv %d/%d hd %d", a.pos0, a.T, a.H, a.Hkv,
             a.hd);
    return a;
}

/* att[H, T, n_kv] = q . k / sqrt(hd) masked, with this pass's K
 * written into the cache by kv_write; -inf exactly where j > pos0 + t. */
static void test_kq(void **state)
{
    struct ctx *c = need(state, 5);
    struct worst w = worst_start("kq");
    for (int ci = 0; ci < N_ATT_CASES; ci++) {
        const struct att_case a = att_case(ci);
        const size_t nq = (size_t)a.T * a.H * a.hd, na = (size_t)a.H * a.T * a.n_kv;
        float *q = malloc(nq * sizeof *q), *kc = malloc((size_t)a.n_kv * a.kvd * sizeof *kc);
        float *y = gnew(na), *y2 = gnew(na), *cpu = malloc(na * sizeof *cpu);
        double *ref = malloc(na * sizeof *ref);
        assert_true(q && kc && cpu && ref);
        fill_normal(c->rng, q, nq, 1.0);
        fill_normal(c->rng, kc, (size_t)a.n_kv * a.kvd, 1.0);
        const float *k_new = kc + (size_t)a.pos0 * a.kvd;
        OK(dv_vkrun_kq(c->ops, false, q, kc, k_new, a.T, a.pos0, a.H, a.Hkv, a.hd, y));
        OK(dv_vkrun_kq(c->ops, false, q, kc, k_new, a.T, a.pos0, a.H, a.Hkv, a.hd, y2));
        assert_same_bits(y, y2, na, a.at);
        /* the f32 reference as the CPU pass computes it (attn_scores) */
        const int grp = a.H / a.Hkv;
        const float scale = (float)(1.0 / sqrt((double)a.hd));
        for (int h = 0; h < a.H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.T, a.n_kv, a.hd, scale,
                        q + h * a.hd, a.H * a.hd, kc + (h / grp) * a.hd, a.kvd, 0,
                        cpu + (size_t)h * a.T * a.n_kv, a.n_kv);
        double t2 = 0, r2 = 0;
        const double sd = 1.0 / sqrt((double)a.hd);
        for (int h = 0; h < a.H; h++)
            for (int t = 0; t < a.T; t++)
                for (int j = 0; j < a.n_kv; j++) {
                    const size_t i = ((size_t)h * a.T + t) * a.n_kv + j;
                    if (j > a.pos0 + t) { /* after query t: masked */
                        if (y[i] != -INFINITY)
                            fail_msg("kq %s: att[%d,%d,%d] = %g, the mask wants -inf", a.at, h,
                                     t, j, (double)y[i]);
                        ref[i] = -INFINITY, cpu[i] = -INFINITY;
                        continue;
                    }
                    const float *qr = q + ((size_t)t * a.H + h) * a.hd;
                    const float *kr = kc + (size_t)j * a.kvd + (size_t)(h / grp) * a.hd;
                    double s = 0;
                    for (int e = 0; e < a.hd; e++) {
                        const double p = (double)qr[e] * kr[e] * sd;
                        s += p, t2 += p * p;
                    }
                    ref[i] = s, r2 += s * s;
                    if (!isfinite(y[i]))
                        fail_msg("kq %s: att[%d,%d,%d] = %g, the mask wants a score", a.at, h,
                                 t, j, (double)y[i]);
                }
        /* hd products, the scale's rounding and the product with it */
        worst_check(&w, a.at, nmse(y, ref, na), nmse(cpu, ref, na), dot_tol(a.hd + 2, t2, r2));
        check_kv_write(c, a.T, a.pos0, a.kvd);
        free(q), free(kc), free(cpu), free(ref);
        gfree(y, na), gfree(y2, na);
    }
    worst_print(&w);
    done(c);
}

/* Rows of n scores, some with masked (-inf) entries, which must come out
 * exactly 0. */
static void test_softmax(void **state)
{
    struct ctx *c = need(state, 6);
    struct worst w = worst_start("softmax");
    static const int ns[] = {1, 2, 255, 256, 257, 1000};
    enum { ROWS = 4 };
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
        const int n = ns[ni];
        const size_t nx = (size_t)ROWS * n;
        float *x = malloc(nx * sizeof *x), *y = gnew(nx), *y2 = gnew(nx);
        assert_non_null(x);
        fill_normal(c->rng, x, nx, 3.0);
        for (int j = 0; j < n; j++) {
            x[n + j] += 50.0f;                            /* row 1: far from 0 */
            if (j > n / 2) x[2 * n + j] = -INFINITY;      /* row 2: a causal tail */
            if (j && gsl_rng_uniform(c->rng) < 0.3) x[3 * n + j] = -INFINITY; /* row 3 */
        }
        OK(dv_vkrun_softmax(c->ops, false, x, ROWS, n, y));
        OK(dv_vkrun_softmax(c->ops, false, x, ROWS, n, y2));
        char at[96];
        snprintf(at, sizeof at, "n %d", n);
        assert_same_bits(y, y2, nx, at);
        float *cpu = fdup(x, nx);
        double *ref = widen(x, nx);
        dv_cpu_softmax_f32(cpu, ROWS, n);
        dv_cpu_softmax_f64(ref, ROWS, n);
        for (size_t i = 0; i < nx; i++)
            if (x[i] == -INFINITY && (y[i] != 0.0f || signbit(y[i])))
                fail_msg("softmax %s: masked value %zu gives %g, not 0", at, i, (double)y[i]);
        worst_check(&w, at, nmse(y, ref, nx), nmse(cpu, ref, nx), TOL_SOFTMAX);
        free(x), free(cpu), free(ref);
        gfree(y, nx), gfree(y2, nx);
    }
    worst_print(&w);
    done(c);
}

/* out[T, H*hd] = probabilities . V, with this pass's V written by
 * kv_write; the probabilities are a masked softmax, as in the pass. */
static void test_kqv(void **state)
{
    struct ctx *c = need(state, 7);
    struct worst w = worst_start("kqv");
    for (int ci = 0; ci < N_ATT_CASES; ci++) {
        const struct att_case a = att_case(ci);
        const size_t na = (size_t)a.H * a.T * a.n_kv, no = (size_t)a.T * a.H * a.hd;
        float *att = malloc(na * sizeof *att), *vc = malloc((size_t)a.n_kv * a.kvd * sizeof *vc);
        float *y = gnew(no), *y2 = gnew(no), *cpu = malloc(no * sizeof *cpu);
        double *ref = malloc(no * sizeof *ref);
        assert_true(att && vc && cpu && ref);
        fill_normal(c->rng, att, na, 2.0);
        for (int r = 0; r < a.H * a.T; r++) /* row r is token r % T: mask its future */
            for (int j = a.pos0 + r % a.T + 1; j < a.n_kv; j++)
                att[(size_t)r * a.n_kv + j] = -INFINITY;
        dv_cpu_softmax_f32(att, a.H * a.T, a.n_kv);
        fill_normal(c->rng, vc, (size_t)a.n_kv * a.kvd, 1.0);
        const float *v_new = vc + (size_t)a.pos0 * a.kvd;
        OK(dv_vkrun_kqv(c->ops, false, att, vc, v_new, a.T, a.pos0, a.H, a.Hkv, a.hd, y));
        OK(dv_vkrun_kqv(c->ops, false, att, vc, v_new, a.T, a.pos0, a.H, a.Hkv, a.hd, y2));
        assert_same_bits(y, y2, no, a.at);
        const int grp = a.H / a.Hkv;
        for (int h = 0; h < a.H; h++) /* as the CPU pass (attn_values) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.T, a.hd, a.n_kv, 1,
                        att + (size_t)h * a.T * a.n_kv, a.n_kv, vc + (h / grp) * a.hd, a.kvd,
                        0, cpu + h * a.hd, a.H * a.hd);
        double t2 = 0, r2 = 0;
        for (int t = 0; t < a.T; t++)
            for (int h = 0; h < a.H; h++)
                for (int e = 0; e < a.hd; e++) {
                    double s = 0;
                    for (int j = 0; j < a.n_kv; j++) {
                        const double p = (double)att[((size_t)h * a.T + t) * a.n_kv + j] *
                                         vc[(size_t)j * a.kvd + (size_t)(h / grp) * a.hd + e];
                        s += p, t2 += p * p;
                    }
                    ref[((size_t)t * a.H + h) * a.hd + e] = s, r2 += s * s;
                }
        worst_check(&w, a.at, nmse(y, ref, no), nmse(cpu, ref, no), dot_tol(a.n_kv, t2, r2));
        check_kv_write(c, a.T, a.pos0, a.kvd);
        free(att), free(vc), free(cpu), free(ref);
        gfree(y, no), gfree(y2, no);
    }
    worst_print(&w);
    done(c);
}

/* ---- elementwise ------------------------------------------------------------ */

static const int elem_n[] = {1, 255, 256, 257, 1000, 4099};

static void test_add(void **state)
{
    struct ctx *c = need(state, 8);
    struct worst w = worst_start("add");
    for (size_t i = 0; i < sizeof elem_n / sizeof *elem_n; i++) {
        const int n = elem_n[i];
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *y = gnew(n);
        float *cpu = malloc(n * sizeof *cpu);
        double *ref = malloc(n * sizeof *ref);
        assert_true(a && b && cpu && ref);
        fill_normal(c->rng, a, n, 1.0);
        fill_normal(c->rng, b, n, 30.0);
        OK(dv_vkrun_add(c->ops, a, b, (int64_t)n, y));
        for (int j = 0; j < n; j++) cpu[j] = a[j] + b[j], ref[j] = (double)a[j] + b[j];
        char at[96];
        snprintf(at, sizeof at, "n %d", n);
        assert_same_bits(y, cpu, n, at);
        worst_check(&w, at, nmse(y, ref, n), nmse(cpu, ref, n), TOL_ADD);
        free(a), free(b), free(cpu), free(ref);
        gfree(y, n);
    }
    worst_print(&w);
    done(c);
}

static void test_silu_mul(void **state)
{
    struct ctx *c = need(state, 9);
    struct worst w = worst_start("silu_mul");
    for (size_t i = 0; i < sizeof elem_n / sizeof *elem_n; i++) {
        const int n = elem_n[i];
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *y = gnew(n);
        float *y2 = gnew(n);
        assert_true(a && b);
        fill_normal(c->rng, a, n, 3.0);
        fill_normal(c->rng, b, n, 1.0);
        for (int j = 0; j < n; j++) a[j] = fmaxf(-SILU_G_MAX, fminf(SILU_G_MAX, a[j]));
        OK(dv_vkrun_silu_mul(c->ops, a, b, (int64_t)n, y));
        OK(dv_vkrun_silu_mul(c->ops, a, b, (int64_t)n, y2));
        char at[96];
        snprintf(at, sizeof at, "n %d", n);
        assert_same_bits(y, y2, n, at);
        float *cpu = fdup(a, n);
        double *ref = widen(a, n), *bd = widen(b, n);
        dv_cpu_silu_mul_f32(cpu, b, (int64_t)n);
        dv_cpu_silu_mul_f64(ref, bd, (int64_t)n);
        worst_check(&w, at, nmse(y, ref, n), nmse(cpu, ref, n), TOL_SILU_MUL);
        free(a), free(b), free(cpu), free(ref), free(bd);
        gfree(y, n), gfree(y2, n);
    }
    worst_print(&w);
    done(c);
}

/* ---- faults ------------------------------------------------------------------ */

/* Probes: one op on fixed inputs each; `family` the faults built into its
 * kernels (vk_ops.c's table), `changes` those of them that must change
 * this output. Every other fault must leave it bit for bit as the clean
 * kernels (fault 0) give it, with faulty true or false. */
enum probe_id {
    P_ROWS_Q4K, P_ROWS_F32,
    P_MV_F32_TAIL, P_MM_F32_TAIL, P_MV_F32, P_MM_F32, P_MV_Q4K, P_MM_Q4K,
    P_RMSNORM, P_ROPE_NORM, P_ROPE_NEOX, P_ROPE_AT0,
    P_KQ_AT0, P_KQ_GQA, P_KQ_MHA, P_KQ_MQA, P_SOFTMAX,
    P_KQV_AT0, P_KQV_GQA, P_KQV_MHA, P_KQV_MQA, P_ADD, P_SILU_MUL, P_COUNT
};

#define F(x) (1u << DV_FAULT_##x)
#define FAM_ROWS F(Q4K_SCALE)
#define FAM_MM (F(MATMUL_K_TAIL) | F(F16_ACCUM) | F(Q4K_SCALE))
#define FAM_ROPE (F(ROPE_NEOX_SWAP) | F(ROPE_BASE))
#define FAM_KQ (F(MASK_NO_PAST) | F(SOFTMAX_NO_SCALE) | F(GQA_MAP) | F(KV_STALE))
#define FAM_KQV (F(GQA_MAP) | F(KV_STALE))
#define KQ_PAST (F(MASK_NO_PAST) | F(SOFTMAX_NO_SCALE) | F(KV_STALE))

static const struct probe {
    const char *name;
    int wtype, K, N;     /* matmul, get_rows; K: n of rmsnorm, softmax, add */
    int pos0, H, Hkv, T; /* rope (H = heads), kq, kqv */
    int mode;
    uint32_t family, changes;
} probes[P_COUNT] = {
    [P_ROWS_Q4K] = {"get_rows q4_k", DV_TYPE_Q4_K, 256, .family = FAM_ROWS,
                    .changes = F(Q4K_SCALE)},
    [P_ROWS_F32] = {"get_rows f32", DV_TYPE_F32, 300, .family = FAM_ROWS},
    /* K % DV_MM_BK != 0: a K tail exists; matvec (N <= DV_MV_MAX_N) and tiled */
    [P_MV_F32_TAIL] = {"matvec f32 K 300", DV_TYPE_F32, 300, 2, .family = FAM_MM,
                       .changes = F(F16_ACCUM) | F(MATMUL_K_TAIL)},
    [P_MM_F32_TAIL] = {"matmul f32 K 300", DV_TYPE_F32, 300, DV_MV_MAX_N + 1, .family = FAM_MM,
                       .changes = F(F16_ACCUM) | F(MATMUL_K_TAIL)},
    [P_MV_F32] = {"matvec f32 K 256", DV_TYPE_F32, 256, 2, .family = FAM_MM,
                  .changes = F(F16_ACCUM)},
    [P_MM_F32] = {"matmul f32 K 256", DV_TYPE_F32, 256, DV_MV_MAX_N + 1, .family = FAM_MM,
                  .changes = F(F16_ACCUM)},
    [P_MV_Q4K] = {"matvec q4_k", DV_TYPE_Q4_K, 256, 2, .family = FAM_MM,
                  .changes = F(F16_ACCUM) | F(Q4K_SCALE)},
    [P_MM_Q4K] = {"matmul q4_k", DV_TYPE_Q4_K, 256, DV_MV_MAX_N + 1, .family = FAM_MM,
                  .changes = F(F16_ACCUM) | F(Q4K_SCALE)},
    [P_RMSNORM] = {"rmsnorm n 257", .K = 257, .family = F(RMSNORM_EPS),
                   .changes = F(RMSNORM_EPS)},
    [P_ROPE_NORM] = {"rope norm pos0 7", .pos0 = 7, .H = 3, .T = 5, .mode = DV_ROPE_NORM,
                     .family = FAM_ROPE, .changes = FAM_ROPE},
    [P_ROPE_NEOX] = {"rope neox pos0 7", .pos0 = 7, .H = 3, .T = 5, .mode = DV_ROPE_NEOX,
                     .family = FAM_ROPE, .changes = FAM_ROPE},
    /* position 0 only: every angle is 0, any pairing or base is the identity */
    [P_ROPE_AT0] = {"rope norm pos0 0 T 1", .pos0 = 0, .H = 3, .T = 1, .mode = DV_ROPE_NORM,
                    .family = FAM_ROPE},
    [P_KQ_AT0] = {"kq pos0 0 4/2", .pos0 = 0, .H = 4, .Hkv = 2, .T = 6, .family = FAM_KQ,
                  .changes = F(SOFTMAX_NO_SCALE) | F(GQA_MAP)},
    [P_KQ_GQA] = {"kq pos0 3 4/2", .pos0 = 3, .H = 4, .Hkv = 2, .T = 6, .family = FAM_KQ,
                  .changes = KQ_PAST | F(GQA_MAP)},
    [P_KQ_MHA] = {"kq pos0 3 4/4", .pos0 = 3, .H = 4, .Hkv = 4, .T = 6, .family = FAM_KQ,
                  .changes = KQ_PAST},
    [P_KQ_MQA] = {"kq pos0 3 8/1", .pos0 = 3, .H = 8, .Hkv = 1, .T = 6, .family = FAM_KQ,
                  .changes = KQ_PAST},
    [P_SOFTMAX] = {"softmax n 257", .K = 257},
    [P_KQV_AT0] = {"kqv pos0 0 4/2", .pos0 = 0, .H = 4, .Hkv = 2, .T = 6, .family = FAM_KQV,
                   .changes = F(GQA_MAP)},
    [P_KQV_GQA] = {"kqv pos0 3 4/2", .pos0 = 3, .H = 4, .Hkv = 2, .T = 6, .family = FAM_KQV,
                   .changes = F(GQA_MAP) | F(KV_STALE)},
    [P_KQV_MHA] = {"kqv pos0 3 4/4", .pos0 = 3, .H = 4, .Hkv = 4, .T = 6, .family = FAM_KQV,
                   .changes = F(KV_STALE)},
    [P_KQV_MQA] = {"kqv pos0 3 8/1", .pos0 = 3, .H = 8, .Hkv = 1, .T = 6, .family = FAM_KQV,
                   .changes = F(KV_STALE)},
    [P_ADD] = {"add", .K = 1000},
    [P_SILU_MUL] = {"silu_mul", .K = 1000},
};

/* Does fault f run probe p? The weight kernels (get_rows, matmul, matvec:
 * a family within FAM_MM) only under their own faults: on lavapipe each
 * takes 0.2 to 0.9 s to build, the others ~0.03 s, and each fault's kernel
 * set is built anew. Every other probe runs under every fault. */
static bool probe_under(const struct probe *p, int f)
{
    return !(p->family & FAM_MM) || (p->family >> f & 1);
}

/* PR_MAX: the largest input, x of the tiled probes (DV_MV_MAX_N + 1 tokens of K 300) */
enum { PR_HD = 16, PR_ROWS = 40, PR_MAX = (DV_MV_MAX_N + 1) * 300 };

/* Inputs shared by the probes: big enough for each. */
struct probe_in {
    void *w[2];   /* PR_ROWS x 300 f32, x 256 q4_k */
    float *wf[2]; /* their dequantized values (unused here) */
    float *a, *b; /* PR_MAX values each */
};

static size_t probe_n_out(const struct probe *p)
{
    switch (p - probes) {
    case P_ROWS_Q4K: case P_ROWS_F32: return 3 * (size_t)p->K;
    case P_RMSNORM: case P_SOFTMAX: return 2 * (size_t)p->K;
    case P_ROPE_NORM: case P_ROPE_NEOX: case P_ROPE_AT0: return (size_t)p->T * p->H * PR_HD;
    case P_KQ_AT0: case P_KQ_GQA: case P_KQ_MHA: case P_KQ_MQA:
        return (size_t)p->H * p->T * (p->pos0 + p->T);
    case P_KQV_AT0: case P_KQV_GQA: case P_KQV_MHA: case P_KQV_MQA:
        return (size_t)p->T * p->H * PR_HD;
    case P_ADD: case P_SILU_MUL: return (size_t)p->K;
    default: return (size_t)p->N * PR_ROWS; /* matmul */
    }
}

static int probe_w(int t) { return t == DV_TYPE_Q4_K; }

static dv_status probe_run(struct dv_vkops *o, bool faulty, const struct probe_in *in,
                           const struct probe *p, float *out)
{
    static const int32_t ids[3] = {5, 0, PR_ROWS - 1};
    switch (p - probes) {
    case P_ROWS_Q4K: case P_ROWS_F32:
        return dv_vkrun_get_rows(o, faulty, p->wtype, in->w[probe_w(p->wtype)], PR_ROWS, p->K,
                                 ids, 3, out);
    case P_RMSNORM: return dv_vkrun_rmsnorm(o, faulty, in->a, in->b, 2, p->K, 1e-5f, out);
    case P_ROPE_NORM: case P_ROPE_NEOX: case P_ROPE_AT0:
        return dv_vkrun_rope(o, faulty, in->a, p->T, p->H, PR_HD, PR_HD, p->mode, p->pos0,
                             10000.0, out);
    case P_KQ_AT0: case P_KQ_GQA: case P_KQ_MHA: case P_KQ_MQA:
        return dv_vkrun_kq(o, faulty, in->a, in->b, in->b + p->pos0 * p->Hkv * PR_HD, p->T,
                           p->pos0, p->H, p->Hkv, PR_HD, out);
    case P_SOFTMAX: return dv_vkrun_softmax(o, faulty, in->a, 2, p->K, out);
    case P_KQV_AT0: case P_KQV_GQA: case P_KQV_MHA: case P_KQV_MQA:
        return dv_vkrun_kqv(o, faulty, in->a, in->b, in->b + p->pos0 * p->Hkv * PR_HD, p->T,
                            p->pos0, p->H, p->Hkv, PR_HD, out);
    case P_ADD: return dv_vkrun_add(o, in->a, in->b, p->K, out);
    case P_SILU_MUL: return dv_vkrun_silu_mul(o, in->a, in->b, p->K, out);
    default:
        return dv_vkrun_matmul(o, faulty, p->wtype, in->w[probe_w(p->wtype)], PR_ROWS, p->K,
                               in->a, p->N, out);
    }
}

/* Each fault changes the probes it concerns (faulty = true) and nothing
 * else; with faulty = false every probe is bit for bit the clean one. */
static void test_faults(void **state)
{
    struct ctx *c = need(state, 10);
    const double t0 = now();
    struct probe_in in;
    static const int pw[2][2] = {{DV_TYPE_F32, 300}, {DV_TYPE_Q4_K, 256}};
    for (int i = 0; i < 2; i++)
        make_weight(c->rng, pw[i][0], PR_ROWS, pw[i][1], &in.w[i], &in.wf[i]);
    in.a = malloc(PR_MAX * sizeof *in.a), in.b = malloc(PR_MAX * sizeof *in.b);
    assert_true(in.a && in.b);
    fill_normal(c->rng, in.a, PR_MAX, 1.0);
    for (int i = 0; i < PR_MAX; i++) in.b[i] = fabsf(in.a[(i * 7919) % PR_MAX]) + 0.5f;
    float *clean[P_COUNT], *y = gnew(PR_MAX);
    for (int i = 0; i < P_COUNT; i++) {
        clean[i] = gnew(probe_n_out(&probes[i]));
        OK(probe_run(c->ops, false, &in, &probes[i], clean[i]));
    }
    for (int f = 1; f < DV_FAULT_COUNT; f++) {
        struct dv_vkops *fo = NULL;
        OK(dv_vkops_new(c->vk, f, &fo));
        int changed = 0, ran = 0;
        double least = INFINITY; /* the smallest change, as NMSE against clean */
        const char *least_at = "-";
        for (int i = 0; i < P_COUNT; i++) {
            const struct probe *p = &probes[i];
            const size_t n = probe_n_out(p);
            if (!probe_under(p, f)) continue;
            ran++;
            OK(probe_run(fo, false, &in, p, y));
            if (bits_differ(y, clean[i], n) >= 0)
                fail_msg("fault %s, faulty = false: %s differs from the clean kernels",
                         dv_fault_name(f), p->name);
            OK(probe_run(fo, true, &in, p, y));
            const bool want = p->changes >> f & 1, got = bits_differ(y, clean[i], n) >= 0;
            if (want != got)
                fail_msg("fault %s: %s %s", dv_fault_name(f), p->name,
                         want ? "is unchanged, the fault should change it"
                              : "changed, the fault does not concern it");
            changed += got;
            if (got) {
                double *ref = widen(clean[i], n);
                const double e = nmse(y, ref, n);
                if (e <= least) least = e, least_at = p->name;
                free(ref);
            }
        }
        printf("  fault %-17s changes %2d of %2d probes, the least by nmse %.2e (%s)\n",
               dv_fault_name(f), changed, ran, least, least_at);
        dv_vkops_free(fo);
    }
    for (int i = 0; i < P_COUNT; i++) gfree(clean[i], probe_n_out(&probes[i]));
    gfree(y, PR_MAX);
    for (int i = 0; i < 2; i++) free(in.w[i]), free(in.wf[i]);
    free(in.a), free(in.b);
    printf("  faults: %.2f s\n", now() - t0);
    done(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_rows),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_matmul_F32),
        cmocka_unit_test(test_matmul_F16),
        cmocka_unit_test(test_matmul_BF16),
        cmocka_unit_test(test_matmul_Q8_0),
        cmocka_unit_test(test_matmul_Q4_0),
        cmocka_unit_test(test_matmul_Q4_K),
        cmocka_unit_test(test_matmul_Q6_K),
        cmocka_unit_test(test_matmul_batch_invariant),
        cmocka_unit_test(test_rope_norm),
        cmocka_unit_test(test_rope_neox),
        cmocka_unit_test(test_kq),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_kqv),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_silu_mul),
        cmocka_unit_test(test_faults),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
