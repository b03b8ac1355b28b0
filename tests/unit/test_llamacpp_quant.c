/*
 * test_llamacpp_quant.c - our activation quantizers (core/arith.c) against
 * ggml's own, bit for bit, and our emulated products against ggml's dot
 * products, using the prebuilt llama.cpp release in .deps/llama.cpp/lib
 * (scripts/fetch-llama-cpp). Suite llama.cpp: built only when meson found
 * that release.
 *
 * ggml's reference quantizers (quantize_row_q8_0_ref, _q8_1_ref, _q8_K_ref,
 * ggml_quantize_chunk, ggml_fp32_to_fp16_row/bf16_row) come from
 * libggml-base.so. What the CPU backend runs comes from each CPU build
 * variant libggml-cpu-*.so that this CPU can run (ggml_backend_score() >
 * 0; ggml_backend_load_best loads the best of them): its type traits give
 * from_float of every vec_dot type, the very function mul_mat converts
 * the activations with, and vec_dot, the dot product mul_mat takes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../common/testutil.h"

#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"

#include "arith.h"
#include "engine.h"
#include "quant.h"
#include "types.h"

#ifndef DV_LLAMA_CPP_LIBDIR
#error "DV_LLAMA_CPP_LIBDIR: the directory of libggml-base.so (meson sets it)"
#endif

#define U 0x1p-24 /* unit roundoff of f32 */
enum { N = 256 * 64 }; /* values per test row: 512 q8_0 blocks, 64 q8_K blocks */

typedef void (*row_fn)(const float *, void *, int64_t);
typedef size_t (*chunk_fn)(enum ggml_type, const float *, void *, int64_t, int64_t, int64_t,
                           const float *);
typedef const struct ggml_type_traits_cpu *(*traits_fn)(enum ggml_type);

static void *base; /* libggml-base.so */

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) fail_msg("%s: %s", name, dlerror());
    return p;
}

static int setup(void **state)
{
    base = dlopen(DV_LLAMA_CPP_LIBDIR "/libggml-base.so", RTLD_NOW | RTLD_GLOBAL);
    if (!base) fprintf(stderr, "%s\n", dlerror());
    return base ? 0 : -1;
}

static int teardown(void **state)
{
    dlclose(base);
    return 0;
}

/* ---- inputs ------------------------------------------------------------ */

/* Row `kind` of N values from seed:
 * 0: uniform, the amplitude changing per 32 over nine decades (f16-
 *    subnormal scales), some blocks all zero, one all-equal;
 * 1: ties: each block's maximum 127 * 2^e, the rest multiples of 2^(e-1),
 *    so x / d hits exact halves (round half to even against roundf);
 * 2: near-ties: x = +-amax/2 (63.5 steps in real arithmetic) for random
 *    amax, where 127/amax and 1/(amax/127) round apart and put the
 *    product on either side of the half;
 * 3: a negative maximum in every block, Gaussian-like sums of uniforms. */
static void fill(float *x, int kind, uint32_t seed)
{
    static const float amp[8] = {1.0f, 1000.0f, 0.05f, 1e-6f, 7.0f, 3e-4f, 0.0f, 0.5f};
    uint32_t s = seed;
    float amax = 1.0f;
    for (int i = 0; i < N; i++) {
        const float r = (float)(tu_xorshift32(&s) >> 8) * 0x1p-23f - 1.0f; /* [-1, 1) */
        const int e = (int)(tu_xorshift32(&s) % 20) - 10;
        switch (kind) {
        case 0:
            x[i] = (i / 32) % 97 == 5 ? 0.3f : amp[(i / 32) % 8] * r;
            break;
        case 1:
            x[i] = i % 32 == 0 ? ldexpf(127, e)
                               : ldexpf((float)((int)(tu_xorshift32(&s) % 255) - 127), e - 1);
            break;
        case 2:
            if (i % 32 == 0) amax = ldexpf(1.0f + 0.5f * (r + 1.0f), e);
            x[i] = i % 32 == 0 ? amax : i % 2 ? amax / 2 : -amax / 2;
            break;
        default:
            x[i] = r + (float)(tu_xorshift32(&s) >> 8) * 0x1p-24f - 0.5f;
            if (i % 32 == 7) x[i] = -3.0f;
        }
    }
}

/* ---- quantizers, bit for bit ------------------------------------------- */

/* Quantize the rows of the kinds in mask (bit k: kind k) with ggml's f
 * and ours (type t, variant v), compare the bytes; returns the differing
 * blocks. */
#define ALL_KINDS 0xf
static int compare_quantizer(row_fn f, int t, int v, unsigned mask)
{
    const struct dv_type_traits *tr = dv_type_traits(t);
    const size_t bytes = (size_t)(N / tr->blck) * tr->size;
    float *x = malloc(N * sizeof *x);
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    int bad = 0;
    for (int kind = 0; kind < 4; kind++) {
        if (!(mask >> kind & 1)) continue;
        fill(x, kind, 1234u + (uint32_t)kind);
        memset(a, 0x5a, bytes), memset(b, 0xa5, bytes);
        f(x, a, N);
        assert_int_equal(dv_arith_quantize_row(t, v, x, b, N), 0);
        for (size_t k = 0; k < bytes / tr->size; k++)
            if (memcmp(a + k * tr->size, b + k * tr->size, tr->size)) {
                if (!bad)
                    printf("  %s variant %d: first differing block %zu of row kind %d\n",
                           tr->name, v, k, kind);
                bad++;
            }
    }
    free(x), free(a), free(b);
    return bad;
}

static void q8_0_chunk(const float *x, void *y, int64_t n)
{
    chunk_fn chunk = (chunk_fn)sym(base, "ggml_quantize_chunk");
    chunk(GGML_TYPE_Q8_0, x, y, 0, 1, n, NULL);
}

/* ggml-quants.c's reference quantizers against DV_QV_REF. */
static void test_reference_quantizers(void **state)
{
    assert_int_equal(compare_quantizer((row_fn)sym(base, "quantize_row_q8_0_ref"), DV_TYPE_Q8_0,
                                       DV_QV_REF, ALL_KINDS), 0);
    assert_int_equal(compare_quantizer(q8_0_chunk, DV_TYPE_Q8_0, DV_QV_REF, ALL_KINDS), 0);
    assert_int_equal(compare_quantizer((row_fn)sym(base, "quantize_row_q8_1_ref"), DV_TYPE_Q8_1,
                                       DV_QV_REF, ALL_KINDS), 0);
    assert_int_equal(compare_quantizer((row_fn)sym(base, "quantize_row_q8_K_ref"), DV_TYPE_Q8_K,
                                       DV_QV_REF, ALL_KINDS), 0);
    assert_int_equal(compare_quantizer((row_fn)sym(base, "ggml_fp32_to_fp16_row"), DV_TYPE_F16,
                                       DV_QV_REF, ALL_KINDS), 0);
    assert_int_equal(compare_quantizer((row_fn)sym(base, "ggml_fp32_to_bf16_row"), DV_TYPE_BF16,
                                       DV_QV_REF, ALL_KINDS), 0);
    /* and the variants do part, so the rows tell them apart: on exact ties
     * (half to even or away from zero) and on near-ties (1/d) */
    for (int kind = 1; kind <= 2; kind++)
        assert_true(compare_quantizer((row_fn)sym(base, "quantize_row_q8_0_ref"), DV_TYPE_Q8_0,
                                      DV_QV_X86, 1u << kind) > 0);
}

/* ---- the CPU backend's build variants ---------------------------------- */

struct variant {
    char name[64];
    void *lib;
    int score;
    traits_fn traits;
};

/* Every libggml-cpu-*.so this CPU runs, opened; returns their count. */
static int open_variants(struct variant *v, int cap)
{
    DIR *d = opendir(DV_LLAMA_CPP_LIBDIR);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < cap;) {
        const size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "libggml-cpu-", 12) || len < 4 || strcmp(e->d_name + len - 3, ".so"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", DV_LLAMA_CPP_LIBDIR, e->d_name);
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        assert_non_null(lib);
        int (*score)(void) = (int (*)(void))sym(lib, "ggml_backend_score");
        const int sc = score();
        if (!sc) { /* needs instructions this CPU lacks */
            printf("  %s: not for this CPU\n", e->d_name);
            dlclose(lib);
            continue;
        }
        ((void (*)(void))sym(lib, "ggml_cpu_init"))();
        snprintf(v[n].name, sizeof v[n].name, "%.*s", (int)(len - 15), e->d_name + 12);
        v[n].lib = lib, v[n].score = sc;
        v[n].traits = (traits_fn)sym(lib, "ggml_get_type_traits_cpu");
        n++;
    }
    closedir(d);
    return n;
}

static void close_variants(struct variant *v, int n)
{
    for (int i = 0; i < n; i++) dlclose(v[i].lib);
}

/* The variants built without AVX run the reference C quantizers. */
static int variant_of(const char *name)
{
    return !strcmp(name, "x64") || !strcmp(name, "sse42") ? DV_QV_REF : DV_QV_X86;
}

/* from_float of every vec_dot type, in every variant this CPU runs,
 * against ours: the variant ggml_backend_load_best picks (the highest
 * score) is the one llama.cpp computes with here. */
static void test_runtime_quantizers(void **state)
{
    struct variant v[32];
    const int n = open_variants(v, 32);
    assert_true(n > 0);
    int best = 0;
    for (int i = 0; i < n; i++) best = v[i].score > v[best].score ? i : best;
    const struct {
        enum ggml_type g;
        int t;
    } types[] = {{GGML_TYPE_Q8_0, DV_TYPE_Q8_0}, {GGML_TYPE_Q8_1, DV_TYPE_Q8_1},
                 {GGML_TYPE_Q8_K, DV_TYPE_Q8_K}, {GGML_TYPE_F16, DV_TYPE_F16},
                 {GGML_TYPE_BF16, DV_TYPE_BF16}};
    for (int i = 0; i < n; i++) {
        const int qv = variant_of(v[i].name);
        printf("  %-15s score %3d%s: quantizers as DV_QV_%s:", v[i].name, v[i].score,
               i == best ? " (loaded by llama.cpp here)" : "", qv == DV_QV_X86 ? "X86" : "REF");
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
            const struct ggml_type_traits_cpu *tc = v[i].traits(types[k].g);
            assert_non_null(tc->from_float);
            const int bad = compare_quantizer((row_fn)tc->from_float, types[k].t, qv, ALL_KINDS);
            printf(" %s %s", dv_type_name(types[k].t), bad ? "DIFFERS" : "ok");
            assert_int_equal(bad, 0);
        }
        printf("\n");
    }
    close_variants(v, n);
}

/* The tiny-block rule of the x86 code (arith.c): blocks below 127 * 2^-128
 * quantize to d = 0 and quants -128; only the AVX variants define it. */
static void test_runtime_tiny_blocks(void **state)
{
    struct variant v[32];
    const int n = open_variants(v, 32);
    float x[64];
    for (int j = 0; j < 64; j++) x[j] = j % 3 ? 1e-38f * (float)(j % 5) : 0.0f;
    for (int i = 0; i < n; i++) {
        if (variant_of(v[i].name) != DV_QV_X86) continue;
        uint8_t a[72], b[72];
        v[i].traits(GGML_TYPE_Q8_0)->from_float(x, a, 64);
        assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_0, DV_QV_X86, x, b, 64), 0);
        assert_memory_equal(a, b, 68);
        v[i].traits(GGML_TYPE_Q8_1)->from_float(x, a, 64);
        assert_int_equal(dv_arith_quantize_row(DV_TYPE_Q8_1, DV_QV_X86, x, b, 64), 0);
        assert_memory_equal(a, b, 72);
    }
    close_variants(v, n);
}

/* ---- products ---------------------------------------------------------- */

/* ggml's dot of weight row w (type wt, quantized by ggml_quantize_chunk)
 * with x converted by from_float, against the double dot of our
 * dequantized w with x rounded by dv_arith_round_f32, over rows of K.
 * ggml sums d_w d_x isum per block in f32; the emulation multiplies the
 * dequantized values: the same real number before rounding, so they
 * differ by f32 summation at most 4 (K + 1) u sum |terms| (Higham's
 * gamma_K for each of two orders, first order). The terms are |w x|, and
 * for q4_k also the two parts of w = d sc q - dmin m, which ggml sums
 * separately. Returns the worst ratio to that bound; *raw the same with
 * the unrounded x (the rounding must show above the bound). */
static double product_ratio(const struct variant *v, enum ggml_type gt, int wt, int at,
                            int K, uint32_t seed, double *raw)
{
    chunk_fn chunk = (chunk_fn)sym(base, "ggml_quantize_chunk");
    const struct ggml_type_traits_cpu *tw = v->traits(gt), *ta = v->traits(tw->vec_dot_type);
    size_t wb = 0, ab = 0;
    assert_int_equal(dv_row_size(wt, K, &wb), 0);
    assert_int_equal(dv_row_size(at, K, &ab), 0);
    float *w = malloc((size_t)K * 4), *x = malloc((size_t)K * 4), *xr = malloc((size_t)K * 4);
    float *wd = malloc((size_t)K * 4), *p1 = malloc((size_t)K * 4), *p2 = malloc((size_t)K * 4);
    uint8_t *wq = malloc(wb), *xq = malloc(ab), *tmp = malloc(wb);
    uint32_t s = seed;
    double worst = 0;
    *raw = 0;
    for (int row = 0; row < 256; row++) {
        for (int i = 0; i < K; i++) { /* x: an outlier 10x the rest in every 32 */
            w[i] = ((float)(tu_xorshift32(&s) >> 8) * 0x1p-23f - 1.0f) * 0.05f;
            x[i] = ((float)(tu_xorshift32(&s) >> 8) * 0x1p-23f - 1.0f) * (i % 32 ? 1.0f : 10.0f);
        }
        chunk(gt, w, wq, 0, 1, K, NULL);
        assert_int_equal(dv_dequant_row(wt, wq, wd, K), 0);
        memcpy(p1, wd, (size_t)K * 4), memset(p2, 0, (size_t)K * 4);
        if (wt == DV_TYPE_Q4_K) /* the parts: dmin = 0 (d sc q), then d = 0 (-dmin m) */
            for (int part = 0; part < 2; part++) {
                memcpy(tmp, wq, wb);
                for (size_t b = 0; b < wb / 144; b++) memset(tmp + 144 * b + 2 * (1 - part), 0, 2);
                assert_int_equal(dv_dequant_row(wt, tmp, part ? p2 : p1, K), 0);
            }
        ta->from_float(x, xq, K);
        memcpy(xr, x, (size_t)K * 4);
        dv_arith_round_f32(at, xr, K);
        float got;
        tw->vec_dot(K, &got, 0, wq, 0, xq, 0, 1);
        double dot = 0, dot_raw = 0, mag = 0;
        for (int i = 0; i < K; i++) {
            dot += (double)wd[i] * xr[i];
            dot_raw += (double)wd[i] * x[i];
            mag += (fabs((double)p1[i]) + fabs((double)p2[i])) * fabs((double)xr[i]);
        }
        const double bound = 4 * (double)(K + 1) * U * mag;
        worst = fmax(worst, fabs(got - dot) / bound);
        *raw = fmax(*raw, fabs(got - dot_raw) / bound);
    }
    free(w), free(x), free(xr), free(wd), free(p1), free(p2), free(wq), free(xq), free(tmp);
    return worst;
}

/* Every weight type diverge reads, in the variant llama.cpp loads here:
 * ggml's dot is our emulated product to f32 summation noise. */
static void test_products(void **state)
{
    struct variant v[32];
    const int n = open_variants(v, 32);
    int best = 0;
    for (int i = 0; i < n; i++) best = v[i].score > v[best].score ? i : best;
    const struct {
        enum ggml_type g;
        int t;
    } w[] = {{GGML_TYPE_Q8_0, DV_TYPE_Q8_0}, {GGML_TYPE_Q4_0, DV_TYPE_Q4_0},
             {GGML_TYPE_Q4_K, DV_TYPE_Q4_K}, {GGML_TYPE_Q6_K, DV_TYPE_Q6_K},
             {GGML_TYPE_F16, DV_TYPE_F16},   {GGML_TYPE_BF16, DV_TYPE_BF16}};
    for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
        const int at = dv_arith_act_type(DV_ACTQ_AUTO, w[k].t, 256, 256);
        assert_int_equal((int)v[best].traits(w[k].g)->vec_dot_type, at); /* the same table */
        double raw;
        const double r = product_ratio(&v[best], w[k].g, w[k].t, at, 256, 77u + (uint32_t)k, &raw);
        printf("  %s: %s . %s: emulated %.3f, unrounded %.3g (x the f32 bound)\n", v[best].name,
               dv_type_name(w[k].t), dv_type_name(at), r, raw);
        assert_true(r <= 1);
        /* 8-bit activations with an outlier per block move a dot ~1e-3 of
         * sum |w x|, far above the bound (6e-5 for K = 256); f16 and bf16
         * roundings are of the bound's own size, so only their bits are
         * checked (above) */
        if (at != DV_TYPE_F16 && at != DV_TYPE_BF16) assert_true(raw > 10);
    }
    close_variants(v, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_quantizers),
        cmocka_unit_test(test_runtime_quantizers),
        cmocka_unit_test(test_runtime_tiny_blocks),
        cmocka_unit_test(test_products),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
