/*
 * test_run_op.c - every backend's single-op entry (engine.h, run_op)
 * computes what its own forward pass computes.
 *
 * A forward run of three passes (6, 5, 1 tokens: a prefill, a pass with
 * past tokens, a decode step) hands out every tensor; then each op of each
 * pass runs alone on the same engine, fed the tensors its op reads (the op
 * table, ops.h) and the cache rows of earlier passes (their k_rope and v),
 * and must give the forward pass's values bit for bit: the same kernels
 * on the same f32 inputs, the declared arithmetic included (cpu with an f16
 * cache, 8-bit activations and ggml-vulkan's attention rounding), the
 * fault of a faulty vulkan engine included. cpu-f64 takes f32 inputs, so
 * its ops are compared within float32 input rounding instead.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/testutil.h"
#include "engine.h"
#include "error.h"
#include "fault.h"
#include "fixture.h"
#include "model.h"
#include "ops.h"
#include "types.h"

enum { N_PASS = 3, N_TOK = 12 };
static const int sched[N_PASS] = {6, 5, 1};
static const int32_t toks[N_TOK] = {1, 7, 3, 9, 2, 11, 5, 4, 8, 6, 10, 12};

static const char *fixtures[] = {"tiny-f32", "tiny-f16", "tiny-q8_0", "tiny-q4_k"};

static int setup(void **state)
{
    if (tu_group_setup(state)) return -1;
    return tu_write_fixtures(fixtures, sizeof fixtures / sizeof *fixtures);
}

/* The tensor `index` of pass p in c (by execution order), or NULL. */
static const struct tu_tensor *at(const struct tu_collect *c, int p, int index)
{
    for (int i = 0; i < c->n; i++)
        if (c->t[i].pass == p && c->t[i].order == index) return &c->t[i];
    return NULL;
}

static float *narrow(const struct tu_tensor *t)
{
    float *f = malloc((t->n ? t->n : 1) * sizeof *f);
    for (size_t i = 0; f && i < t->n; i++) f[i] = (float)t->v[i];
    return f;
}

/* The cache rows of layer L before pass p: the k_rope (or v) of passes
 * 0..p-1, concatenated. */
static float *past_rows(const struct tu_collect *c, int p, int L, int lt, size_t *n)
{
    size_t total = 0;
    for (int q = 0; q < p; q++) total += at(c, q, dv_tensor_index(L, lt))->n;
    float *f = malloc((total ? total : 1) * sizeof *f), *o = f;
    for (int q = 0; f && q < p; q++) {
        const struct tu_tensor *t = at(c, q, dv_tensor_index(L, lt));
        for (size_t i = 0; i < t->n; i++) *o++ = (float)t->v[i];
    }
    *n = total;
    return f;
}

/* Run every op of the collected run alone on e; exact: bit for bit,
 * else within rel (max |diff| over max |value|). Returns the ops run;
 * every op of the op table but the view must be among them (a new op
 * without its test here fails). */
static int check_ops(struct dv_engine *e, const struct dv_model *m,
                     const struct tu_collect *c, int act_type, bool exact, double rel)
{
    int per_op[DV_OP_COUNT] = {0};
    const struct dv_config *cfg = &m->cfg;
    const int n_per = dv_tensors_per_pass((int)cfg->n_layer);
    int ran = 0;
    for (int p = 0, pos = 0; p < N_PASS; pos += sched[p++]) {
        for (int i = 0; i < n_per; i++) {
            const struct tu_tensor *out = at(c, p, i);
            assert_non_null(out);
            if (out->op == DV_OP_VIEW) continue;
            const int L = out->layer, lt = L >= 0 ? i - dv_tensor_index(L, 0) : -1;
            int in[2];
            dv_tensor_inputs(i, (int)cfg->n_layer, in);
            float *a = in[0] >= 0 ? narrow(at(c, p, in[0])) : NULL;
            float *b = in[1] >= 0 ? narrow(at(c, p, in[1])) : NULL;
            float *past = NULL;
            size_t n_past = 0;
            struct dv_op_call k = {.op = out->op, .layer = L, .T = sched[p], .pos0 = pos,
                                   .a = a, .b = b, .w = dv_tensor_weight(m, i),
                                   .ids = toks + pos};
            if (k.op == DV_OP_RMSNORM) k.n = cfg->d_model;
            if (k.op == DV_OP_ADD || k.op == DV_OP_SILU_MUL) k.n = (int64_t)out->n;
            if (k.op == DV_OP_ROPE) k.nh = lt == DV_LT_Q_ROPE ? cfg->n_head : cfg->n_head_kv;
            if (k.op == DV_OP_KQ || k.op == DV_OP_KQV)
                k.past = past = past_rows(c, p, L, k.op == DV_OP_KQ ? DV_LT_K_ROPE : DV_LT_V,
                                          &n_past);
            assert_int_equal(dv_op_call_count(cfg, &k), (int64_t)out->n);
            void *y = malloc(out->n * (act_type == DV_TYPE_F64 ? 8 : 4));
            dv_status s = dv_engine_run_op(e, &k, y);
            if (s) fail_msg("pass %d %s: %s", p, out->name, dv_errmsg());
            double worst = 0, scale = 0;
            for (size_t j = 0; j < out->n; j++) {
                const double v = act_type == DV_TYPE_F64 ? ((double *)y)[j]
                                                         : (double)((float *)y)[j];
                if (v == out->v[j]) continue; /* equal infinities too */
                if (exact) fail_msg("pass %d %s[%zu]: alone %.9g, forward %.9g", p, out->name,
                                    j, v, out->v[j]);
                worst = fmax(worst, fabs(v - out->v[j]));
            }
            for (size_t j = 0; j < out->n; j++)
                if (isfinite(out->v[j])) scale = fmax(scale, fabs(out->v[j]));
            if (!exact && !(worst <= rel * scale))
                fail_msg("pass %d %s: max |alone - forward| %.3g over max |value| %.3g", p,
                         out->name, worst, scale);
            free(a), free(b), free(past), free(y);
            ran++;
            per_op[out->op]++;
        }
    }
    for (int op = 0; op < DV_OP_COUNT; op++)
        if (op != DV_OP_VIEW && !per_op[op]) fail_msg("op %s never ran alone", dv_op_name(op));
    return ran;
}

/* Run the schedule on backend kind with options o, then every op alone. */
static void run_and_check(const char *fixture, int kind, struct dv_engine_opts o, bool exact,
                          double rel)
{
    char name[64];
    snprintf(name, sizeof name, "%s.gguf", fixture);
    struct dv_model *m;
    assert_int_equal(dv_model_open(tu_path(tu_tmp, name), &m), DV_OK);
    o.n_ctx = N_TOK, o.n_batch = 6;
    struct dv_engine *e;
    dv_status s = dv_engine_open(m, kind, &o, &e);
    if (s) fail_msg("%s on %s: %s", fixture, dv_backend_name(kind), dv_errmsg());
    struct tu_collect c = {0};
    struct dv_hook h = tu_hook(&c);
    for (int p = 0, pos = 0; p < N_PASS; pos += sched[p++])
        assert_int_equal(dv_engine_forward(e, toks + pos, sched[p], pos, &h), DV_OK);
    const int ran = check_ops(e, m, &c, dv_engine_backend(e)->act_type, exact, rel);
    printf("  %s on %s: %d ops alone as in the forward pass\n", fixture, dv_backend_name(kind),
           ran);
    tu_collect_free(&c);
    dv_engine_free(e);
    dv_model_free(m);
}

static void test_cpu_exact(void **state)
{
    (void)state;
    run_and_check("tiny-q8_0", DV_BACKEND_CPU, (struct dv_engine_opts){0}, true, 0);
    run_and_check("tiny-f16", DV_BACKEND_CPU, (struct dv_engine_opts){0}, true, 0);
}

/* declared arithmetic: 8-bit activations, an f16 cache, ggml's CPU or
 * ggml-vulkan's attention rounding */
static void test_cpu_declared(void **state)
{
    (void)state;
    run_and_check("tiny-q8_0", DV_BACKEND_CPU,
                  (struct dv_engine_opts){.act_quant = DV_ACTQ_AUTO, .kv_type = DV_TYPE_F16},
                  true, 0);
    run_and_check("tiny-q4_k", DV_BACKEND_CPU,
                  (struct dv_engine_opts){.attn_quant = DV_ATTNQ_VK, .kv_type = DV_TYPE_F16},
                  true, 0);
}

/* the f64 ops read the float32-rounded inputs: 2^-22 relative covers that
 * rounding amplified by one op (softmax, rmsnorm: O(1) condition) */
static void test_cpu_f64(void **state)
{
    (void)state;
    run_and_check("tiny-q8_0", DV_BACKEND_CPU_F64, (struct dv_engine_opts){0}, false, 0x1p-22);
}

static void test_vulkan(void **state)
{
    (void)state;
    run_and_check("tiny-q4_k", DV_BACKEND_VULKAN, (struct dv_engine_opts){0}, true, 0);
    /* with a fault in layer 1 the op alone is the faulty kernel there */
    run_and_check("tiny-f32", DV_BACKEND_VULKAN,
                  (struct dv_engine_opts){.inject = DV_FAULT_ROPE_BASE, .inject_layer = 1},
                  true, 0);
}

/* bad calls: one line, DV_E_USAGE */
static void test_bad_calls(void **state)
{
    (void)state;
    struct dv_model *m;
    assert_int_equal(dv_model_open(tu_path(tu_tmp, "tiny-f32.gguf"), &m), DV_OK);
    struct dv_engine *e;
    struct dv_engine_opts o = {.n_ctx = 8, .n_batch = 4};
    assert_int_equal(dv_engine_open(m, DV_BACKEND_CPU, &o, &e), DV_OK);
    float a[64 * 4] = {0}, y[1024];
    struct dv_op_call k = {.op = DV_OP_MATMUL, .T = 5, .a = a, .w = m->layers[0].wq};
    assert_int_equal(dv_engine_run_op(e, &k, y), DV_E_USAGE); /* T > n_batch */
    k.T = 1, k.w = NULL;
    assert_int_equal(dv_engine_run_op(e, &k, y), DV_E_USAGE); /* no weight */
    k = (struct dv_op_call){.op = DV_OP_GET_ROWS, .T = 1, .w = m->tok_embd,
                            .ids = (const int32_t[]){(int32_t)m->cfg.n_vocab}};
    assert_int_equal(dv_engine_run_op(e, &k, y), DV_E_USAGE); /* row out of range */
    k = (struct dv_op_call){.op = DV_OP_KQ, .T = 1, .pos0 = 8, .a = a, .b = a, .past = a};
    assert_int_equal(dv_engine_run_op(e, &k, y), DV_E_USAGE); /* past the context */
    dv_engine_free(e);
    dv_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_exact),   cmocka_unit_test(test_cpu_declared),
        cmocka_unit_test(test_cpu_f64),     cmocka_unit_test(test_vulkan),
        cmocka_unit_test(test_bad_calls),
    };
    return cmocka_run_group_tests(tests, setup, tu_group_teardown);
}
