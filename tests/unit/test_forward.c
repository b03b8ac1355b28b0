/*
 * test_forward.c - the CPU reference forward pass, f32 and f64.
 *
 * Cross-checks between the two backends on every fixture and weight type,
 * hand-worked RoPE, the causal mask, attention against a naive double loop,
 * GQA against plain multi-head attention, pass splitting, the hook contract,
 * and real models: llama.cpp's own logits for a Q8_0 GGUF and the greedy
 * text of stories260K.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../common/testutil.h"
#include "cpu_ops.h"
#include "ops.h"
#include "gguf.h"
#include "quant.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static char *tmp;

/* f32 reference vs f64 oracle, per tensor. An f32 dot product of length K
 * has relative error about u*sqrt(K) (u = 6e-8, random-walk rounding), so a
 * matmul with K <= 704 lands near 2e-6 relative, NMSE ~4e-12; softmax and
 * 6 layers of residual growth amplify that by at most a few hundred in
 * NMSE. 1e-8 keeps two orders of margin and still fails on any real bug:
 * one wrong element in 256 of a tensor gives NMSE near 4e-3. */
#define TOL_REF_VS_ORACLE 1e-8

static const char *models[] = {
    "tiny-f32", "tiny-f16", "tiny-q8_0", "tiny-q4_0", "tiny-q4_k",
    "small-f32", "small-f16", "small-q8_0", "small-q4_0", "small-q4_k",
};

static const char *model_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s.gguf", tmp, name);
    return p;
}

static int setup(void **state)
{
    tmp = tu_tmpdir();
    if (!tmp) return -1;
    for (size_t i = 0; i < sizeof models / sizeof *models; i++)
        if (dv_fixture_write(models[i], model_path(models[i]))) return -1;
    char mb[512], tb[512];
    snprintf(mb, sizeof mb, "%s/data/stories260K.bin", tu_fixtures());
    snprintf(tb, sizeof tb, "%s/data/tok512.bin", tu_fixtures());
    return dv_import_llama2c(mb, tb, model_path("stories260K")) ? -1 : 0;
}

static int teardown(void **state)
{
    tu_rmdir(tmp);
    return 0;
}

static const int32_t toks11[] = {1, 45, 17, 100, 33, 42, 7, 200, 3, 99, 150};

static void check_ref_vs_oracle(const char *name)
{
    struct tu_collect a = {0}, b = {0};
    const int sched[] = {6, 5};
    assert_int_equal(tu_run(model_path(name), DV_BACKEND_CPU, toks11, sched, 2, &a), DV_OK);
    assert_int_equal(tu_run(model_path(name), DV_BACKEND_CPU_F64, toks11, sched, 2, &b), DV_OK);
    assert_int_equal(a.n, b.n);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < a.n; i++) {
        assert_string_equal(a.t[i].name, b.t[i].name);
        assert_int_equal(a.t[i].n, b.t[i].n);
        double e = tu_nmse(a.t[i].v, b.t[i].v, a.t[i].n);
        if (!(e <= worst)) worst = e, worst_name = a.t[i].name;
    }
    printf("  %-12s cpu vs cpu-f64: worst nmse %.2e (%s)\n", name, worst, worst_name);
    assert_true(worst < TOL_REF_VS_ORACLE);
    tu_collect_free(&a);
    tu_collect_free(&b);
}

static void test_ref_vs_oracle_fixtures(void **state)
{
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) check_ref_vs_oracle(models[i]);
    check_ref_vs_oracle("stories260K");
}

static double worst_split;

/* NMSE of nr rows of `row` values: a is the split run, b the single one. */
static void assert_rows_close(const double *a, const double *b, size_t row, size_t nr,
                              double tol, const char *name)
{
    double e = tu_nmse(a, b, row * nr);
    if (!(e <= tol)) fail_msg("%s: nmse %g > %g", name, e, tol);
    worst_split = e > worst_split ? e : worst_split;
}

/* 6 tokens then 5 at pos0 6 must give the per-token outputs of one
 * 11-token pass. The math is the same; only the row count BLAS sees
 * differs, and OpenBLAS picks other kernels for other M, so sums are taken
 * in another order (seen: 1.4e-6 absolute in f32). Each order is within
 * u*sqrt(K) of the exact sum, which the ref-vs-oracle test measures at
 * NMSE <= 4e-12 on these models; two of them differ by at most ~4x that.
 * 1e-10 for f32 (1e-24 for f64, u = 1.1e-16) keeps a 25x margin while a
 * cache or mask bug gives NMSE near 1. */
static void check_split(const char *name, int backend)
{
    const double tol = backend == DV_BACKEND_CPU ? 1e-10 : 1e-24;
    struct tu_collect one = {0}, two = {0};
    const int s1[] = {11}, s2[] = {6, 5};
    assert_int_equal(tu_run(model_path(name), backend, toks11, s1, 1, &one), DV_OK);
    assert_int_equal(tu_run(model_path(name), backend, toks11, s2, 2, &two), DV_OK);
    for (int i = 0; i < two.n; i++) {
        const struct tu_tensor *t = &two.t[i];
        const struct tu_tensor *u = tu_find(&one, 0, t->name);
        assert_non_null(u);
        if (t->op == DV_OP_KQ || t->op == DV_OP_SOFTMAX) {
            /* [H, T, n_kv]: row t of head h is row pos0+t of the single
             * pass; gather those rows and compare the whole tensor */
            double *g = malloc(t->n * sizeof *g);
            const int64_t H = t->shape[0], T = t->shape[1], nkv = t->shape[2];
            for (int64_t h = 0; h < H; h++)
                for (int64_t r = 0; r < T; r++)
                    memcpy(g + (h * T + r) * nkv, u->v + (h * 11 + t->pos0 + r) * 11,
                           (size_t)nkv * sizeof *g);
            assert_rows_close(t->v, g, t->n, 1, tol, t->name);
            free(g);
            continue;
        }
        size_t row = t->n / (size_t)t->shape[0];
        assert_rows_close(t->v, u->v + (size_t)t->pos0 * row, row, (size_t)t->n_tokens,
                          tol, t->name);
    }
    printf("  %-12s %s: split vs single worst nmse %.2e\n", name, dv_backend_name(backend),
           worst_split);
    worst_split = 0;
    tu_collect_free(&one);
    tu_collect_free(&two);
}

static void test_split_equals_single(void **state)
{
    check_split("tiny-f32", DV_BACKEND_CPU);
    check_split("small-q4_k", DV_BACKEND_CPU);
    check_split("small-q8_0", DV_BACKEND_CPU_F64);
    check_split("stories260K", DV_BACKEND_CPU);
}

/* Future keys get -inf scores and exactly zero probability. */
static void test_mask(void **state)
{
    struct tu_collect c = {0};
    const int sched[] = {6, 5};
    assert_int_equal(tu_run(model_path("small-f32"), DV_BACKEND_CPU, toks11, sched, 2, &c), DV_OK);
    for (int pass = 0; pass < 2; pass++)
        for (int L = 0; L < 6; L++) {
            char n1[32], n2[32];
            snprintf(n1, sizeof n1, "blk.%d.kq", L);
            snprintf(n2, sizeof n2, "blk.%d.kq_softmax", L);
            const struct tu_tensor *kq = tu_find(&c, pass, n1), *p = tu_find(&c, pass, n2);
            assert_non_null(kq);
            assert_non_null(p);
            const int64_t H = p->shape[0], T = p->shape[1], nkv = p->shape[2];
            assert_int_equal(nkv, p->pos0 + T);
            for (int64_t h = 0; h < H; h++)
                for (int64_t t = 0; t < T; t++) {
                    double sum = 0;
                    for (int64_t j = 0; j < nkv; j++) {
                        double v = p->v[(h * T + t) * nkv + j];
                        if (j > p->pos0 + t) {
                            assert_true(v == 0.0);
                            assert_true(isinf(kq->v[(h * T + t) * nkv + j]));
                        } else {
                            assert_true(v > 0.0);
                        }
                        sum += v;
                    }
                    /* f32 rounding of n_kv <= 11 products: well below 1e-6 */
                    assert_true(fabs(sum - 1.0) < 1e-6);
                }
        }
    tu_collect_free(&c);
}

/* attn_out recomputed from q_rope, k_rope and v with three plain loops in
 * double, including the GQA head map h -> h / (H / Hkv). The oracle does
 * the same math through dgemm, so they agree to double rounding: 1e-12
 * relative is far above that and far below any indexing error. */
static void test_attention_naive(void **state)
{
    struct tu_collect c = {0};
    const int sched[] = {6, 5};
    assert_int_equal(tu_run(model_path("tiny-f32"), DV_BACKEND_CPU_F64, toks11, sched, 2, &c), DV_OK);
    const int H = 4, Hkv = 2, hd = 16;
    static double K[11][2][16], Vc[11][2][16];
    for (int pass = 0; pass < 2; pass++) {
        const struct tu_tensor *q = tu_find(&c, pass, "blk.1.q_rope");
        const struct tu_tensor *k = tu_find(&c, pass, "blk.1.k_rope");
        const struct tu_tensor *v = tu_find(&c, pass, "blk.1.v");
        const struct tu_tensor *o = tu_find(&c, pass, "blk.1.attn_out");
        assert_non_null(o);
        const int T = q->n_tokens, pos0 = q->pos0;
        memcpy(&K[pos0], k->v, k->n * sizeof(double));
        memcpy(&Vc[pos0], v->v, v->n * sizeof(double));
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                double sc[11], mx = -INFINITY, sum = 0;
                const int g = h / (H / Hkv), n = pos0 + t + 1;
                for (int j = 0; j < n; j++) {
                    sc[j] = 0;
                    for (int i = 0; i < hd; i++) sc[j] += q->v[(t * H + h) * hd + i] * K[j][g][i];
                    sc[j] /= sqrt((double)hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < n; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int j = 0; j < n; j++) acc += sc[j] / sum * Vc[j][g][i];
                    double got = o->v[t * H * hd + h * hd + i];
                    assert_true(fabs(got - acc) <= 1e-12 * (1 + fabs(acc)));
                }
            }
    }
    tu_collect_free(&c);
}

/* Write tiny-f32 again with every kv head duplicated for the query heads
 * that read it (n_head_kv = n_head): plain multi-head attention. */
static void write_mha_copy(const char *src, const char *dst)
{
    struct dv_model *m;
    assert_int_equal(dv_model_open(src, &m), DV_OK);
    const struct dv_config *c = &m->cfg;
    struct dv_gguf_writer *w;
    assert_int_equal(dv_gguf_writer_new(&w), DV_OK);
    assert_int_equal(dv_fixture_llama_meta(w, "mha", (int)c->n_layer, (int)c->d_model,
                                           (int)c->n_head, (int)c->n_head, (int)c->n_ff,
                                           256, 0), DV_OK);
    const int64_t d = c->d_model, hd = c->head_dim, grp = c->n_head / c->n_head_kv;
    float *big[16] = {0};
    int nb = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const struct dv_gguf_tensor *t = &m->gguf->tensors[i];
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        bool kv = strstr(name, "attn_k.") || strstr(name, "attn_v.");
        if (!kv) {
            assert_int_equal(dv_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data), DV_OK);
            continue;
        }
        float *e = big[nb++] = malloc((size_t)(d * c->n_head * hd) * sizeof(float));
        const float *old = t->data;
        for (int64_t h = 0; h < c->n_head; h++)
            memcpy(e + h * hd * d, old + (h / grp) * hd * d, (size_t)(hd * d) * sizeof(float));
        int64_t ne[2] = {d, c->n_head * hd};
        assert_int_equal(dv_gguf_writer_add_tensor(w, name, DV_TYPE_F32, 2, ne, e), DV_OK);
    }
    assert_int_equal(dv_gguf_writer_write(w, dst), DV_OK);
    dv_gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(big[i]);
    dv_model_free(m);
}

/* Same weights, so the same numbers: every K/V row is computed from the same
 * weights and inputs, only copied to more heads. Bit-identical expected. */
static void test_gqa_equals_mha(void **state)
{
    const char *mha = tu_path(tmp, "tiny-mha.gguf");
    write_mha_copy(model_path("tiny-f32"), mha);
    struct tu_collect a = {0}, b = {0};
    const int sched[] = {6, 5};
    a.only = b.only = "logits";
    assert_int_equal(tu_run(model_path("tiny-f32"), DV_BACKEND_CPU_F64, toks11, sched, 2, &a), DV_OK);
    assert_int_equal(tu_run(mha, DV_BACKEND_CPU_F64, toks11, sched, 2, &b), DV_OK);
    assert_int_equal(a.n, 2);
    assert_int_equal(b.n, 2);
    for (int i = 0; i < 2; i++) assert_true(tu_max_abs(a.t[i].v, b.t[i].v, a.t[i].n) == 0.0);
    tu_collect_free(&a);
    tu_collect_free(&b);
}

/* Worked by hand: hd = n_rot = 4, base 10000, position 1. NORM rotates the
 * pairs (0,1) by 1 rad and (2,3) by 10000^(-2/4) = 0.01 rad; NEOX the pairs
 * (0,2) and (1,3) by the same angles. x = (1, 0, 0, 1). */
static void test_rope_by_hand(void **state)
{
    const double c1 = 0.5403023058681398, s1 = 0.8414709848078965;
    const double c2 = 0.9999500004166653, s2 = 0.009999833334166664;
    double cs[2], sn[2];
    dv_cpu_rope_table_f64(cs, sn, 1, 1, 4, 10000.0);
    double x[4] = {1, 0, 0, 1};
    dv_cpu_rope_f64(x, 1, 1, 4, 4, DV_ROPE_NORM, cs, sn);
    const double norm[4] = {c1, s1, -s2, c2};
    for (int i = 0; i < 4; i++) assert_true(fabs(x[i] - norm[i]) < 1e-15);
    double y[4] = {1, 0, 0, 1};
    dv_cpu_rope_f64(y, 1, 1, 4, 4, DV_ROPE_NEOX, cs, sn);
    const double neox[4] = {c1, -s2, s1, c2};
    for (int i = 0; i < 4; i++) assert_true(fabs(y[i] - neox[i]) < 1e-15);
    /* f32: cos/sin rounded to float, then one multiply-add: 2 ulp */
    float cf[2], sf[2], z[4] = {1, 0, 0, 1};
    dv_cpu_rope_table_f32(cf, sf, 1, 1, 4, 10000.0);
    dv_cpu_rope_f32(z, 1, 1, 4, 4, DV_ROPE_NORM, cf, sf);
    for (int i = 0; i < 4; i++) assert_true(fabs(z[i] - norm[i]) < 2.4e-7);
    /* n_rot 2 < hd: only the first pair turns; position 0 is the identity */
    double w[4] = {1, 2, 3, 4};
    dv_cpu_rope_table_f64(cs, sn, 1, 1, 2, 10000.0);
    dv_cpu_rope_f64(w, 1, 1, 4, 2, DV_ROPE_NORM, cs, sn);
    assert_true(fabs(w[0] - (c1 - 2 * s1)) < 1e-15 && fabs(w[1] - (s1 + 2 * c1)) < 1e-15);
    assert_true(w[2] == 3 && w[3] == 4);
    dv_cpu_rope_table_f64(cs, sn, 1, 0, 4, 10000.0);
    double v[4] = {1, 2, 3, 4};
    dv_cpu_rope_f64(v, 1, 1, 4, 4, DV_ROPE_NEOX, cs, sn);
    assert_true(v[0] == 1 && v[1] == 2 && v[2] == 3 && v[3] == 4);
}

/* RMSNorm of (3, 4): mean square 12.5 -> x / sqrt(12.5 + eps) * w. */
static void test_rmsnorm_by_hand(void **state)
{
    const double x[2] = {3, 4}, w[2] = {1, 2};
    double out[2];
    dv_cpu_rmsnorm_f64(out, x, w, 1, 2, 0.0);
    assert_true(fabs(out[0] - 3 / sqrt(12.5)) < 1e-15);
    assert_true(fabs(out[1] - 8 / sqrt(12.5)) < 1e-15);
    double p[3] = {0, log(3.0), -INFINITY};
    dv_cpu_softmax_f64(p, 1, 3);
    assert_true(fabs(p[0] - 0.25) < 1e-15 && fabs(p[1] - 0.75) < 1e-15 && p[2] == 0.0);
    double g[2] = {0, 1}, u[2] = {5, 2};
    dv_cpu_silu_mul_f64(g, u, 2);
    assert_true(g[0] == 0.0 && fabs(g[1] - 2 / (1 + exp(-1.0))) < 1e-15);
}

static double *read_logits(const char *name, int elem)
{
    char p[512];
    snprintf(p, sizeof p, "%s/data/%s", tu_fixtures(), name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    double *v = malloc(5 * 32000 * sizeof *v);
    assert_int_equal(fseek(f, 1024, SEEK_SET), 0);
    for (int i = 0; i < 5 * 32000; i++) {
        if (elem == 4) {
            float x;
            assert_int_equal(fread(&x, 4, 1, f), 1);
            v[i] = x;
        } else {
            assert_int_equal(fread(&v[i], 8, 1, f), 1);
        }
    }
    fclose(f);
    return v;
}

static int argmax(const double *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

/* A GGUF written and quantized by llama.cpp, with logits computed by
 * llama.cpp and by an independent float64 implementation. */
static void test_mini_llama_logits(void **state)
{
    char p[512];
    snprintf(p, sizeof p, "%s/data/mini-llama-q8_0.gguf", tu_fixtures());
    const int32_t toks[5] = {1, 9038, 2501, 263, 931};
    const int sched[1] = {5};
    struct tu_collect a = {0}, b = {0};
    a.only = b.only = "logits";
    assert_int_equal(tu_run(p, DV_BACKEND_CPU, toks, sched, 1, &a), DV_OK);
    assert_int_equal(tu_run(p, DV_BACKEND_CPU_F64, toks, sched, 1, &b), DV_OK);
    double *exact = read_logits("mini-llama-q8_0.f64-logits.bin", 8);
    double *lcpp = read_logits("mini-llama-q8_0.llamacpp-logits.bin", 4);
    double e32 = tu_nmse(a.t[0].v, exact, 5 * 32000);
    double e64 = tu_nmse(b.t[0].v, exact, 5 * 32000);
    double el = tu_nmse(a.t[0].v, lcpp, 5 * 32000);
    printf("  mini-llama nmse vs f64 file: cpu %.2e, cpu-f64 %.2e; cpu vs llama.cpp %.2e\n",
           e32, e64, el);
    /* The data README: an exact f32 reference sits near 1e-13 from the f64
     * logits; 1e-11 allows a 100x worse but still correct f32 order. */
    assert_true(e32 < 1e-11);
    /* Both sides are f64 on the same exactly dequantized weights: only
     * summation order differs, ~1e-16 relative, NMSE ~1e-30. */
    assert_true(e64 < 1e-24);
    /* llama.cpp quantizes activations to 8 bits inside Q8_0 dots: NMSE
     * 1.3e-4 in the README; the same top-1 everywhere. */
    assert_true(el < 1e-3);
    for (int t = 0; t < 5; t++)
        assert_int_equal(argmax(a.t[0].v + t * 32000, 32000), argmax(lcpp + t * 32000, 32000));
    free(exact), free(lcpp);
    tu_collect_free(&a);
    tu_collect_free(&b);
}

/* Greedy decoding from BOS: the text llama2.c's own program prints. */
static void test_stories_greedy(void **state)
{
    const char *want = "Once upon a time, there was a little girl named Lily. She "
                       "loved to play outside in the park.";
    /* diverge's own backends; llama.cpp has its own tests (llama_cpp.sh) */
    static const int own[] = {DV_BACKEND_CPU, DV_BACKEND_CPU_F64, DV_BACKEND_VULKAN};
    for (size_t k = 0; k < sizeof own / sizeof own[0]; k++) {
        const int backend = own[k];
        struct dv_model *m;
        assert_int_equal(dv_model_open(model_path("stories260K"), &m), DV_OK);
        assert_non_null(m->vocab);
        struct dv_engine *e;
        struct dv_engine_opts o = {.n_ctx = 64, .n_batch = 1};
        assert_int_equal(dv_engine_open(m, backend, &o, &e), DV_OK);
        double logits[512];
        int32_t tok = 1;
        char text[1024] = "";
        size_t len = 0;
        for (int pos = 0; pos < 63 && len < strlen(want) + 1; pos++) {
            assert_int_equal(dv_engine_forward(e, &tok, 1, pos, NULL), DV_OK);
            assert_int_equal(dv_engine_logits(e, 0, logits), DV_OK);
            tok = argmax(logits, 512);
            char piece[64];
            int n = dv_vocab_piece(m->vocab, tok, piece, sizeof piece);
            assert_true(n >= 0);
            memcpy(text + len, piece, (size_t)n + 1);
            len += (size_t)n;
        }
        assert_memory_equal(text + 1, want, strlen(want)); /* skip the word-start space */
        dv_engine_free(e);
        dv_model_free(m);
    }
}

/* The oracle splits its products among threads by fixed row blocks: the
 * thread count must not change a single bit. */
static void test_threads_bit_identical(void **state)
{
#ifdef _OPENMP
    struct tu_collect a = {0}, b = {0};
    const int sched[] = {6, 5};
    omp_set_num_threads(1);
    assert_int_equal(tu_run(model_path("small-q4_k"), DV_BACKEND_CPU_F64, toks11, sched, 2, &a), DV_OK);
    omp_set_num_threads(3);
    assert_int_equal(tu_run(model_path("small-q4_k"), DV_BACKEND_CPU_F64, toks11, sched, 2, &b), DV_OK);
    omp_set_num_threads(1);
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++) assert_memory_equal(a.t[i].v, b.t[i].v, a.t[i].n * sizeof(double));
    tu_collect_free(&a);
    tu_collect_free(&b);
#else
    fail_msg("built without OpenMP");
#endif
}

static int n_takes;
static bool want_none(void *u, const struct dv_tensor_desc *d) { return false; }
static dv_status count_take(void *u, const struct dv_tensor_desc *d, const void *p)
{
    n_takes++;
    return DV_OK;
}
static dv_status fail_take(void *u, const struct dv_tensor_desc *d, const void *p)
{
    return strcmp(d->name, "blk.1.v") == 0 ? DV_E_IO : DV_OK;
}

/* Names, order and ops of the hook calls; want() false means no take(). */
static void test_hook_contract(void **state)
{
    struct tu_collect c = {0};
    const int sched[] = {6, 5};
    assert_int_equal(tu_run(model_path("tiny-q8_0"), DV_BACKEND_CPU, toks11, sched, 2, &c), DV_OK);
    const int per = dv_tensors_per_pass(2);
    assert_int_equal(c.n, 2 * per);
    for (int i = 0; i < c.n; i++) {
        const struct tu_tensor *t = &c.t[i];
        assert_int_equal(t->order, i % per);
        assert_int_equal(t->pass, i / per);
        int k = i % per, L = k / DV_LT_COUNT;
        char want[48];
        if (k < 2 * DV_LT_COUNT)
            snprintf(want, sizeof want, "blk.%d.%s", L, dv_layer_tensor_name(k % DV_LT_COUNT));
        else
            snprintf(want, sizeof want, "%s", dv_global_tensor_name(k - 2 * DV_LT_COUNT));
        assert_string_equal(t->name, want);
        assert_int_equal(t->layer, k < 2 * DV_LT_COUNT ? L : -1);
    }
    assert_int_equal(tu_find(&c, 0, "blk.0.attn_in")->op, DV_OP_GET_ROWS);
    assert_int_equal(tu_find(&c, 0, "blk.1.attn_in")->op, DV_OP_VIEW);
    /* attn_in of layer 1 is layer 0's output */
    assert_true(tu_max_abs(tu_find(&c, 1, "blk.1.attn_in")->v, tu_find(&c, 1, "blk.0.out")->v, 5 * 64) == 0);
    tu_collect_free(&c);

    struct dv_model *m;
    struct dv_engine *e;
    assert_int_equal(dv_model_open(model_path("tiny-q8_0"), &m), DV_OK);
    struct dv_engine_opts o = {.n_ctx = 16};
    assert_int_equal(dv_engine_open(m, DV_BACKEND_CPU, &o, &e), DV_OK);
    struct dv_hook none = {.want = want_none, .take = count_take};
    n_takes = 0;
    assert_int_equal(dv_engine_forward(e, toks11, 3, 0, &none), DV_OK);
    assert_int_equal(n_takes, 0);
    struct dv_hook failing = {.take = fail_take};
    assert_int_equal(dv_engine_forward(e, toks11, 3, 3, &failing), DV_E_IO);
    dv_engine_free(e);
    dv_model_free(m);
}

/* Bad pass arguments are refused before anything runs. */
static void test_engine_arguments(void **state)
{
    struct dv_model *m;
    struct dv_engine *e;
    assert_int_equal(dv_model_open(model_path("tiny-f32"), &m), DV_OK);
    struct dv_engine_opts bad = {.n_ctx = 0};
    assert_int_equal(dv_engine_open(m, DV_BACKEND_CPU, &bad, &e), DV_E_USAGE);
    assert_int_equal(dv_engine_open(m, 99, &bad, &e), DV_E_USAGE);
    struct dv_engine_opts o = {.n_ctx = 8, .n_batch = 4};
    assert_int_equal(dv_engine_open(m, DV_BACKEND_CPU_F64, &o, &e), DV_OK);
    const int32_t t[6] = {1, 2, 3, 4, 5, 6}, oob[1] = {256}, neg[1] = {-1};
    double lg[256];
    assert_int_equal(dv_engine_logits(e, 0, lg), DV_E_USAGE);
    assert_int_equal(dv_engine_forward(e, t, 5, 0, NULL), DV_E_USAGE); /* > n_batch */
    assert_int_equal(dv_engine_forward(e, t, 0, 0, NULL), DV_E_USAGE);
    assert_int_equal(dv_engine_forward(e, t, 2, 1, NULL), DV_E_USAGE); /* hole */
    assert_int_equal(dv_engine_forward(e, oob, 1, 0, NULL), DV_E_USAGE);
    assert_int_equal(dv_engine_forward(e, neg, 1, 0, NULL), DV_E_USAGE);
    assert_int_equal(dv_engine_forward(e, t, 4, 0, NULL), DV_OK);
    assert_int_equal(dv_engine_forward(e, t, 4, 4, NULL), DV_OK);
    assert_int_equal(dv_engine_forward(e, t, 1, 8, NULL), DV_E_USAGE); /* full */
    assert_int_equal(dv_engine_logits(e, 3, lg), DV_OK);
    assert_int_equal(dv_engine_logits(e, 4, lg), DV_E_USAGE);
    assert_int_equal(dv_engine_forward(e, t, 2, 2, NULL), DV_OK); /* rewind */
    assert_int_equal(dv_engine_n_past(e), 4);
    dv_engine_free(e);
    dv_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_by_hand),
        cmocka_unit_test(test_rmsnorm_by_hand),
        cmocka_unit_test(test_ref_vs_oracle_fixtures),
        cmocka_unit_test(test_split_equals_single),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_attention_naive),
        cmocka_unit_test(test_gqa_equals_mha),
        cmocka_unit_test(test_mini_llama_logits),
        cmocka_unit_test(test_stories_greedy),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_hook_contract),
        cmocka_unit_test(test_engine_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
