/*
 * test_vkforward.c - the whole forward pass on the Vulkan device against
 * the CPU reference: every fixture and weight type, stories260K and
 * llama.cpp's mini-llama, tensor by tensor, with identical greedy tokens;
 * multi-pass against single pass on the device; bit-identical repeat runs;
 * the layer split (--gpu-layers); and every fault of the fault zoo, which
 * must change its layer's outputs from the expected tensor on and nothing
 * before it.
 *
 * Runs on whatever device the loader offers (lavapipe in CI). No device is
 * a failure with vulkan's one-line reason, not a skip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../common/testutil.h"
#include "fault.h"
#include "gguf.h"
#include "vk.h"

static char *tmp;

static const char *models[] = {
    "tiny-f32",  "tiny-f16",  "tiny-q8_0",  "tiny-q4_0",  "tiny-q4_k",  "tiny-q6_k",
    "small-f32", "small-f16", "small-q8_0", "small-q4_0", "small-q4_k", "small-q6_k",
};

static const char *model_path(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    if (strcmp(name, "mini-llama-q8_0") == 0)
        snprintf(p[k], sizeof p[k], "%s/data/mini-llama-q8_0.gguf", tu_fixtures());
    else
        snprintf(p[k], sizeof p[k], "%s/%s.gguf", tmp, name);
    return p[k];
}

static int setup(void **state)
{
    (void)state;
    struct dv_vk *vk;
    if (dv_vk_open(NULL, false, &vk)) {
        fprintf(stderr, "no Vulkan device for the GPU forward tests: %s\n", dv_errmsg());
        return -1;
    }
    dv_vk_close(vk);
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
    (void)state;
    tu_rmdir(tmp);
    return 0;
}

/* 13 tokens in four passes: a prefill, a multi-token pass with pos0 > 0
 * (past tokens in the cache and a mask over them), two decode steps. */
static const int32_t toks13[] = {1, 45, 17, 100, 33, 42, 7, 200, 3, 99, 150, 11, 60};
static const int sched4[] = {6, 5, 1, 1};

/* GPU vs CPU reference, per tensor NMSE. Both are f32 pipelines; they
 * differ in summation order (tiled matmul and shared-memory trees against
 * sgemm and double-accumulated norms), each op ~u*sqrt(K) relative
 * (u = 6e-8), NMSE ~1e-13 per op, growing through softmax and the layers.
 * Measured on lavapipe: worst 1.3e-11 (small-f16, blk.5.kq_softmax), most
 * models below 1e-11. 1e-9 leaves 75x for a device whose exp, sqrt and
 * fma contraction round differently, and still fails on a real bug: one
 * wrong element in 256 gives NMSE near 4e-3. (Faults too mild for this
 * bound, like rmsnorm-eps, are caught at their own tensor: see
 * test_faults.) */
#define TOL_GPU_VS_REF 1e-9

static double tensor_nmse(const struct tu_tensor *a, const struct tu_tensor *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->pass, b->pass);
    assert_int_equal(a->n, b->n);
    return tu_nmse(a->v, b->v, a->n);
}

static size_t argmax(const double *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

/* Same top-1 token at every position of every pass. */
static void check_same_top1(const struct tu_collect *g, const struct tu_collect *c)
{
    for (int i = 0; i < g->n; i++) {
        if (strcmp(g->t[i].name, "logits")) continue;
        const size_t V = (size_t)g->t[i].shape[1];
        for (int64_t t = 0; t < g->t[i].shape[0]; t++)
            assert_int_equal(argmax(g->t[i].v + t * V, V), argmax(c->t[i].v + t * V, V));
    }
}

static void check_agreement(const char *name)
{
    struct tu_collect g = {0}, c = {0};
    assert_int_equal(tu_run(model_path(name), DV_BACKEND_VULKAN, toks13, sched4, 4, &g), DV_OK);
    assert_int_equal(tu_run(model_path(name), DV_BACKEND_CPU, toks13, sched4, 4, &c), DV_OK);
    assert_int_equal(g.n, c.n); /* the same tensor set, in the same order */
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < g.n; i++) {
        assert_int_equal(g.t[i].order, c.t[i].order);
        const double e = tensor_nmse(&g.t[i], &c.t[i]);
        if (!(e <= worst)) worst = e, worst_name = g.t[i].name;
    }
    printf("  %-16s vulkan vs cpu: %d tensors, worst nmse %.2e (%s)\n", name, g.n, worst,
           worst_name);
    assert_true(worst < TOL_GPU_VS_REF);
    check_same_top1(&g, &c);
    tu_collect_free(&g);
    tu_collect_free(&c);
}

static void test_agreement_fixtures(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) check_agreement(models[i]);
}

static void test_agreement_real_models(void **state)
{
    (void)state;
    check_agreement("stories260K");
    check_agreement("mini-llama-q8_0");
}

/* Greedy decoding of stories260K: the same 40 tokens on both backends. */
static void greedy(int backend, int32_t *toks, int n_prompt, int n_gen)
{
    struct dv_model *m;
    assert_int_equal(dv_model_open(model_path("stories260K"), &m), DV_OK);
    struct dv_engine *e;
    struct dv_engine_opts o = {.n_ctx = n_prompt + n_gen, .n_batch = n_prompt};
    assert_int_equal(dv_engine_open(m, backend, &o, &e), DV_OK);
    double *logits = malloc((size_t)m->cfg.n_vocab * sizeof *logits);
    assert_int_equal(dv_engine_forward(e, toks, n_prompt, 0, NULL), DV_OK);
    for (int n = n_prompt; n < n_prompt + n_gen; n++) {
        assert_int_equal(dv_engine_logits(e, n == n_prompt ? n_prompt - 1 : 0, logits), DV_OK);
        toks[n] = (int32_t)argmax(logits, (size_t)m->cfg.n_vocab);
        assert_int_equal(dv_engine_forward(e, &toks[n], 1, n, NULL), DV_OK);
    }
    free(logits);
    dv_engine_free(e);
    dv_model_free(m);
}

static void test_stories_greedy(void **state)
{
    (void)state;
    int32_t a[48] = {1, 403, 407, 261, 378}, b[48] = {1, 403, 407, 261, 378};
    greedy(DV_BACKEND_VULKAN, a, 5, 40);
    greedy(DV_BACKEND_CPU, b, 5, 40);
    assert_memory_equal(a, b, sizeof a);
}

/* Multi-pass on the device equals one pass over the same tokens: rows of
 * token tensors ([T, ...]) of each pass against the same rows of the single
 * pass. The decode passes use the matvec kernel, the others the tiled one:
 * same sums in another order, hence the same tolerance as GPU vs CPU. */
static void test_split_equals_single(void **state)
{
    (void)state;
    const char *names[] = {"small-q4_k", "stories260K"};
    for (size_t k = 0; k < 2; k++) {
        struct tu_collect a = {0}, b = {0};
        const int one[] = {13};
        assert_int_equal(tu_run(model_path(names[k]), DV_BACKEND_VULKAN, toks13, sched4, 4, &a),
                         DV_OK);
        assert_int_equal(tu_run(model_path(names[k]), DV_BACKEND_VULKAN, toks13, one, 1, &b),
                         DV_OK);
        double worst = 0;
        int checked = 0;
        for (int i = 0; i < a.n; i++) {
            const struct tu_tensor *x = &a.t[i];
            if (x->shape[0] != x->n_tokens || x->n_dims < 2) continue; /* kq: [H, T, n_kv] */
            const struct tu_tensor *y = tu_find(&b, 0, x->name);
            assert_non_null(y);
            const size_t row = x->n / (size_t)x->n_tokens;
            const double e = tu_nmse(x->v, y->v + (size_t)x->pos0 * row, x->n);
            worst = e > worst ? e : worst;
            checked++;
        }
        printf("  %-16s vulkan split 6,5,1,1 vs single pass: %d tensors, worst nmse %.2e\n",
               names[k], checked, worst);
        assert_true(worst < TOL_GPU_VS_REF);
        tu_collect_free(&a);
        tu_collect_free(&b);
    }
}

static bool same_bits(const struct tu_tensor *a, const struct tu_tensor *b)
{
    return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof *a->v) == 0;
}

/* Two runs give the same bits: no atomics, fixed reduction orders. */
static void test_bit_identical_runs(void **state)
{
    (void)state;
    const char *names[] = {"small-q4_k", "small-f16", "stories260K"};
    for (size_t k = 0; k < 3; k++) {
        struct tu_collect a = {0}, b = {0};
        assert_int_equal(tu_run(model_path(names[k]), DV_BACKEND_VULKAN, toks13, sched4, 4, &a),
                         DV_OK);
        assert_int_equal(tu_run(model_path(names[k]), DV_BACKEND_VULKAN, toks13, sched4, 4, &b),
                         DV_OK);
        assert_int_equal(a.n, b.n);
        for (int i = 0; i < a.n; i++)
            if (!same_bits(&a.t[i], &b.t[i])) fail_msg("%s pass %d differs between runs",
                                                       a.t[i].name, a.t[i].pass);
        tu_collect_free(&a);
        tu_collect_free(&b);
    }
}

/* --gpu-layers N: layers below N are the device's bits, the rest the CPU
 * reference's arithmetic on them; -1 (none) is the CPU reference exactly. */
static void test_gpu_layers(void **state)
{
    (void)state;
    const char *name = model_path("small-q8_0");
    struct tu_collect full = {0}, split = {0}, none = {0}, cpu = {0};
    const struct dv_engine_opts three = {.gpu_layers = 3}, zero = {.gpu_layers = -1};
    assert_int_equal(tu_run(name, DV_BACKEND_VULKAN, toks13, sched4, 4, &full), DV_OK);
    assert_int_equal(tu_run_with(name, DV_BACKEND_VULKAN, &three, toks13, sched4, 4, &split),
                     DV_OK);
    assert_int_equal(tu_run_with(name, DV_BACKEND_VULKAN, &zero, toks13, sched4, 4, &none),
                     DV_OK);
    assert_int_equal(tu_run(name, DV_BACKEND_CPU, toks13, sched4, 4, &cpu), DV_OK);
    assert_int_equal(split.n, full.n);
    assert_int_equal(none.n, cpu.n);
    for (int i = 0; i < split.n; i++) {
        const struct tu_tensor *t = &split.t[i];
        /* blk.3.attn_in is layer 2's output, still the device's */
        if (t->layer >= 0 && (t->layer < 3 || (t->layer == 3 && strstr(t->name, "attn_in"))))
            assert_true(same_bits(t, &full.t[i]));
        assert_true(tensor_nmse(t, &cpu.t[i]) < TOL_GPU_VS_REF);
    }
    for (int i = 0; i < none.n; i++) assert_true(same_bits(&none.t[i], &cpu.t[i]));
    check_same_top1(&split, &cpu);
    tu_collect_free(&full), tu_collect_free(&split), tu_collect_free(&none);
    tu_collect_free(&cpu);
}

/* The fault zoo: on a model whose weights the fault concerns, the first
 * tensor in execution order (over all passes) that differs from the clean
 * device run is `first` in pass `pass`; nothing of an earlier layer ever
 * differs; the logits change; and at `first` the faulty run's distance to
 * the CPU reference is over 100x the clean run's (the fault stands out of
 * f32 noise where it starts, even when, like rmsnorm-eps, it moves the
 * logits by little more than that noise). */
struct fault_case {
    const char *fault; /* NAME or NAME@L */
    const char *model;
    int pass;          /* where it first shows */
    const char *first; /* "blk.L.suffix" */
};

static const struct fault_case fault_cases[] = {
    {"mask-no-past@2", "small-f32", 1, "blk.2.kq"},   /* needs pos0 > 0 */
    {"rope-neox-swap@1", "small-f32", 0, "blk.1.q_rope"},
    {"rope-neox-swap", "tiny-q8_0", 0, "blk.0.q_rope"}, /* every layer */
    {"rope-base@3", "small-q8_0", 0, "blk.3.q_rope"},
    {"matmul-k-tail@2", "stories260K", 0, "blk.2.ffn_out"}, /* K = 172 = 5*32 + 12 */
    {"softmax-no-scale@1", "small-q4_0", 0, "blk.1.kq"},
    {"f16-accum@2", "small-f16", 0, "blk.2.q"},
    {"q4k-scale@1", "small-q4_k", 0, "blk.1.q"},
    {"q4k-scale@0", "small-q4_k", 0, "blk.0.attn_in"}, /* the q4_k embedding */
    {"gqa-map@4", "small-q8_0", 0, "blk.4.kq"},         /* 8 heads, 2 kv heads */
    {"rmsnorm-eps@1", "tiny-f32", 0, "blk.1.attn_norm"},
    {"kv-stale@2", "small-q6_k", 1, "blk.2.kq"},       /* needs pos0 > 0 */
};

static void check_fault(const struct fault_case *fc)
{
    const char *path = model_path(fc->model);
    struct dv_model *m;
    assert_int_equal(dv_model_open(path, &m), DV_OK);
    struct dv_inject inj;
    assert_int_equal(dv_inject_parse(fc->fault, (int)m->cfg.n_layer, &inj), DV_OK);
    dv_model_free(m);
    const struct dv_engine_opts o = {.inject = inj.fault, .inject_layer = inj.layer};
    struct tu_collect clean = {0}, bad = {0}, ref = {0};
    assert_int_equal(tu_run(path, DV_BACKEND_VULKAN, toks13, sched4, 4, &clean), DV_OK);
    assert_int_equal(tu_run_with(path, DV_BACKEND_VULKAN, &o, toks13, sched4, 4, &bad), DV_OK);
    assert_int_equal(tu_run(path, DV_BACKEND_CPU, toks13, sched4, 4, &ref), DV_OK);
    assert_int_equal(clean.n, bad.n);
    int first = -1;
    double logits_nmse = 0;
    for (int i = 0; i < bad.n; i++) {
        const struct tu_tensor *t = &bad.t[i];
        if (same_bits(t, &clean.t[i])) continue;
        if (first < 0) first = i;
        if (inj.layer >= 0 && t->layer >= 0 && t->layer < inj.layer)
            fail_msg("%s: %s (layer %d) changed in pass %d", fc->fault, t->name, t->layer,
                     t->pass);
        if (strcmp(t->name, "logits") == 0) {
            const double e = tensor_nmse(t, &clean.t[i]);
            logits_nmse = e > logits_nmse ? e : logits_nmse;
        }
    }
    assert_true(first >= 0);
    const double e_bad = tensor_nmse(&bad.t[first], &ref.t[first]);
    const double e_clean = tensor_nmse(&clean.t[first], &ref.t[first]);
    printf("  %-20s %-12s first differs: pass %d %-16s nmse to cpu %.1e (clean %.1e), "
           "logits %.1e\n", fc->fault, fc->model, bad.t[first].pass, bad.t[first].name, e_bad,
           e_clean, logits_nmse);
    assert_string_equal(bad.t[first].name, fc->first);
    assert_int_equal(bad.t[first].pass, fc->pass);
    assert_true(e_bad > 100 * e_clean);
    assert_true(logits_nmse > 0); /* the output changes */
    tu_collect_free(&clean);
    tu_collect_free(&bad);
    tu_collect_free(&ref);
}

static void test_faults(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fault_cases / sizeof *fault_cases; i++)
        check_fault(&fault_cases[i]);
    /* every fault of the zoo has a case */
    for (int f = 1; f < DV_FAULT_COUNT; f++) {
        bool found = false;
        for (size_t i = 0; i < sizeof fault_cases / sizeof *fault_cases; i++)
            found |= strncmp(fault_cases[i].fault, dv_fault_name(f),
                             strlen(dv_fault_name(f))) == 0;
        if (!found) fail_msg("fault %s has no test case", dv_fault_name(f));
    }
}

/* A fault that cannot act leaves every bit alone: matmul-k-tail where every
 * K is a multiple of the K tile, q4k-scale without q4_k weights. */
static void test_faults_inert(void **state)
{
    (void)state;
    const struct {
        const char *fault, *model;
    } cases[] = {{"matmul-k-tail", "small-f32"}, {"q4k-scale", "small-q8_0"}};
    for (size_t k = 0; k < 2; k++) {
        struct dv_inject inj;
        assert_int_equal(dv_inject_parse(cases[k].fault, 6, &inj), DV_OK);
        const struct dv_engine_opts o = {.inject = inj.fault, .inject_layer = inj.layer};
        struct tu_collect clean = {0}, bad = {0};
        const char *path = model_path(cases[k].model);
        assert_int_equal(tu_run(path, DV_BACKEND_VULKAN, toks13, sched4, 4, &clean), DV_OK);
        assert_int_equal(tu_run_with(path, DV_BACKEND_VULKAN, &o, toks13, sched4, 4, &bad),
                         DV_OK);
        for (int i = 0; i < bad.n; i++) assert_true(same_bits(&bad.t[i], &clean.t[i]));
        tu_collect_free(&clean);
        tu_collect_free(&bad);
    }
}

/* Options that need the device are refused elsewhere; bad values fail. */
static void test_options(void **state)
{
    (void)state;
    struct dv_model *m;
    assert_int_equal(dv_model_open(model_path("tiny-f32"), &m), DV_OK);
    struct dv_engine *e = NULL;
    struct dv_engine_opts o = {.n_ctx = 4, .inject = DV_FAULT_KV_STALE, .inject_layer = -1};
    assert_int_equal(dv_engine_open(m, DV_BACKEND_CPU, &o, &e), DV_E_USAGE);
    o.inject_layer = 2; /* tiny has layers 0 and 1 */
    assert_int_equal(dv_engine_open(m, DV_BACKEND_VULKAN, &o, &e), DV_E_USAGE);
    o = (struct dv_engine_opts){.n_ctx = 4, .device = "no-such-device"};
    assert_int_equal(dv_engine_open(m, DV_BACKEND_VULKAN, &o, &e), DV_E_DEVICE);
    assert_non_null(strstr(dv_errmsg(), "no-such-device"));
    struct dv_inject inj;
    assert_int_equal(dv_inject_parse("kv-stale@x", 2, &inj), DV_E_USAGE);
    assert_int_equal(dv_inject_parse("kv-stale@2", 2, &inj), DV_E_USAGE);
    assert_int_equal(dv_inject_parse("kv-stal", 2, &inj), DV_E_USAGE);
    assert_int_equal(dv_inject_parse("kv-stale@1", 2, &inj), DV_OK);
    assert_int_equal(inj.fault, DV_FAULT_KV_STALE);
    assert_int_equal(inj.layer, 1);
    char buf[32];
    dv_inject_format(&inj, buf, sizeof buf);
    assert_string_equal(buf, "kv-stale@1");
    dv_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_agreement_fixtures),
        cmocka_unit_test(test_agreement_real_models),
        cmocka_unit_test(test_stories_greedy),
        cmocka_unit_test(test_split_equals_single),
        cmocka_unit_test(test_bit_identical_runs),
        cmocka_unit_test(test_gpu_layers),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_faults_inert),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
