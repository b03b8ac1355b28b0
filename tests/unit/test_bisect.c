/*
 * test_bisect.c - dv_bisect() on the tiny and small fixtures: a clean run
 * finds nothing, faults are named at their pass, layer and op, the op
 * replay of a clean layer agrees everywhere, the layer split finds the
 * fault's layer, kept dumps are complete and readable.
 *
 * The Vulkan device is whatever the loader offers (lavapipe in CI); with
 * none, the test fails saying so (dv_bisect returns DV_E_DEVICE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bisect.h"
#include "engine.h"
#include "fault.h"
#include "fixture.h"
#include "gguf.h"
#include "model.h"
#include "ops.h"
#include "policy.h"
#include "reader.h"
#include "../common/testutil.h"

static const int32_t sched[] = {3, 2, 1, 1};
static const int32_t toks[] = {1, 5, 9, 13, 17, 21, 25};

struct ctx {
    struct dv_model *m;
    struct dv_policy *policy;
};

/* Open fixture `name` (written to the group's temporary directory). */
static struct dv_model *fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", tu_tmp, name);
    if (access(path, F_OK) != 0) assert_int_equal(dv_fixture_write(name, path), DV_OK);
    struct dv_model *m;
    assert_int_equal(dv_model_open(path, &m), DV_OK);
    return m;
}

static struct dv_bisect_result *bisect(struct dv_model *m, const char *inject, int oracle,
                                       const char *keep, bool split)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    struct dv_bisect_opts o = {.model_path = "fixture", .test = DV_BACKEND_VULKAN,
                               .ref = DV_BACKEND_CPU, .oracle = oracle, .tokens = toks,
                               .n_tokens = 7, .sched = sched, .n_pass = 4,
                               .inject = {DV_FAULT_NONE, -1}, .policy = p,
                               .keep_dir = keep, .layer_split = split};
    if (inject)
        assert_int_equal(dv_inject_parse(inject, (int)m->cfg.n_layer, &o.inject), DV_OK);
    struct dv_bisect_result *r = NULL;
    dv_status s = dv_bisect(m, &o, &r);
    if (s) fail_msg("dv_bisect: %s", dv_errmsg());
    dv_policy_free(p);
    return r;
}

static void test_clean(void **state)
{
    (void)state;
    struct dv_model *m = fixture("small-q8_0");
    struct dv_bisect_result *r = bisect(m, NULL, DV_BACKEND_CPU_F64, NULL, true);
    assert_int_equal(r->first_pass, -1);
    assert_int_equal(r->n_run, 4);
    assert_int_equal(r->n_ops, 0);
    assert_false(r->split_run); /* nothing to search */
    const int per_pass = dv_tensors_per_pass((int)m->cfg.n_layer);
    for (int p = 0; p < 4; p++) {
        assert_int_equal(r->passes[p].status, DV_BPASS_CLEAN);
        assert_int_equal(r->passes[p].n_tensors, per_pass);
        assert_int_equal(r->passes[p].n_diverged, 0);
        /* below 1 by the margin the noise floor rule leaves; the clean
         * fixtures peak near 0.6 */
        assert_true(r->passes[p].worst_ratio < 1);
    }
    assert_non_null(strstr(r->verdict, "no divergence above the noise floor"));
    dv_bisect_free(r);
    dv_model_free(m);
}

/* kv-stale@1 on tiny: pass 0 (pos0 0) cannot see it; pass 1 reads the
 * misplaced K in blk.1.kq; replayed alone kq diverges; every op before it
 * agrees alone and in the full run; the split names layer 1. */
static void test_kv_stale(void **state)
{
    (void)state;
    struct dv_model *m = fixture("tiny-f32");
    struct dv_bisect_result *r = bisect(m, "kv-stale@1", DV_BACKEND_CPU_F64, NULL, true);
    assert_int_equal(r->first_pass, 1);
    assert_int_equal(r->n_run, 2);
    assert_int_equal(r->passes[0].status, DV_BPASS_CLEAN);
    assert_int_equal(r->passes[2].status, DV_BPASS_NOT_RUN);
    assert_true(r->earlier_clean);
    assert_string_equal(r->first.name, "blk.1.kq");
    assert_int_equal(r->replay_layer, 1);
    assert_int_equal(r->n_ops, DV_LT_COUNT);
    assert_true(r->culprit >= 0);
    assert_string_equal(r->ops[r->culprit].name, "blk.1.kq");
    for (int k = 0; k < r->culprit; k++) {
        assert_true(r->ops[k].role == DV_ROLE_OK || r->ops[k].role == DV_ROLE_NONE);
        if (r->ops[k].role == DV_ROLE_OK) assert_true(r->ops[k].iso.ratio <= 1);
    }
    assert_int_equal(r->ops[DV_LT_ATTN_IN].role, DV_ROLE_NONE); /* a view at layer 1 */
    assert_int_equal(r->ops[DV_LT_KQ_SOFTMAX].role, DV_ROLE_PROPAGATED);
    /* the culprit's top differences are sorted and lie in pass 1's keys */
    const struct dv_replay_op *c = &r->ops[r->culprit];
    assert_true(c->n_top > 0);
    for (int k = 0; k < c->n_top; k++) {
        assert_true(c->top[k].at.key >= 0 && c->top[k].at.key < 5);
        assert_int_equal(c->top[k].at.pos, 3 + c->top[k].at.token);
        if (k)
            assert_true(fabs(c->top[k].test - c->top[k].ref) <=
                        fabs(c->top[k - 1].test - c->top[k - 1].ref));
    }
    /* amplification: the culprit's full-run error over its inputs' */
    assert_true(c->amp > 1e3);
    assert_true(r->split_run && r->split_logits_diverged);
    assert_int_equal(r->split_first_layer, 1);
    assert_non_null(strstr(r->verdict, "only passes with pos0 > 0 diverge"));
    dv_bisect_free(r);
    dv_model_free(m);
}

/* A fault at layer 0 of pass 0: the embedding's q4_k sub-block scale. */
static void test_q4k_scale_first_pass(void **state)
{
    (void)state;
    struct dv_model *m = fixture("small-q4_k");
    struct dv_bisect_result *r = bisect(m, "q4k-scale", DV_BACKEND_CPU_F64, NULL, false);
    assert_int_equal(r->first_pass, 0);
    assert_string_equal(r->first.name, "blk.0.attn_in");
    assert_string_equal(r->ops[r->culprit].name, "blk.0.attn_in");
    assert_string_equal(r->ops[r->culprit].op, "get_rows");
    assert_false(r->split_run);
    assert_non_null(strstr(r->verdict, "the first pass"));
    dv_bisect_free(r);
    dv_model_free(m);
}

/* Without the oracle the fixed limits judge, and a gross fault is still
 * found; the op replay then has no f64 ops. */
static void test_no_oracle(void **state)
{
    (void)state;
    struct dv_model *m = fixture("tiny-q8_0");
    struct dv_bisect_result *r = bisect(m, NULL, -1, NULL, false);
    assert_int_equal(r->first_pass, -1);
    dv_bisect_free(r);
    r = bisect(m, "gqa-map", -1, NULL, false);
    assert_int_equal(r->first_pass, 0);
    assert_string_equal(r->ops[r->culprit].name, "blk.0.kq");
    assert_false(r->ops[r->culprit].iso.has_oracle);
    dv_bisect_free(r);
    dv_model_free(m);
}

/* --keep-dumps: three complete dumps of the passes run. */
static void test_keep_dumps(void **state)
{
    (void)state;
    struct dv_model *m = fixture("tiny-f32");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kept", tu_tmp);
    struct dv_bisect_result *r = bisect(m, "mask-no-past", DV_BACKEND_CPU_F64, dir, false);
    assert_int_equal(r->first_pass, 1);
    static const char *files[] = {"test.h5", "ref.h5", "oracle.h5"};
    for (int i = 0; i < 3; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        struct dv_reader *d;
        assert_int_equal(dv_reader_open(path, &d), DV_OK);
        assert_int_equal(d->n_passes, 2); /* through the first divergent pass */
        assert_int_equal(d->passes[1].n_tensors, dv_tensors_per_pass((int)m->cfg.n_layer));
        dv_reader_free(d);
    }
    dv_bisect_free(r);
    dv_model_free(m);
}

/* tiny-f32 with every weight NaN (the data section overwritten in place):
 * the reference computes NaN from the first tensor on. */
static const char *nan_model(void)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/nan-f32.gguf", tu_tmp);
    assert_int_equal(dv_fixture_write("tiny-f32", path), DV_OK);
    struct dv_gguf *g;
    assert_int_equal(dv_gguf_open(path, &g), DV_OK);
    const uint64_t at = g->data_offset, size = g->size;
    for (uint64_t i = 0; i < g->n_tensors; i++) assert_int_equal(g->tensors[i].type, DV_TYPE_F32);
    dv_gguf_free(g);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)at, SEEK_SET), 0);
    const float nan = NAN;
    for (uint64_t i = at; i + 4 <= size; i += 4) assert_int_equal(fwrite(&nan, 4, 1, f), 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* A model whose reference computes NaN is never "clean": dv_bisect fails
 * with DV_E_INPUT naming the model, the reference, the first pass and
 * tensor and position, and the kept dumps hold the pass it ran. */
static void test_nan_model(void **state)
{
    (void)state;
    const char *path = nan_model();
    struct dv_model *m;
    assert_int_equal(dv_model_open(path, &m), DV_OK);
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kept-nan", tu_tmp);
    const int oracles[2] = {-1, DV_BACKEND_CPU_F64};
    for (int k = 0; k < 2; k++) {
        struct dv_bisect_opts o = {.model_path = path, .test = DV_BACKEND_VULKAN,
                                   .ref = DV_BACKEND_CPU, .oracle = oracles[k], .tokens = toks,
                                   .n_tokens = 7, .sched = sched, .n_pass = 4,
                                   .inject = {DV_FAULT_NONE, -1}, .policy = p,
                                   .keep_dir = k ? dir : NULL, .layer_split = true};
        struct dv_bisect_result *r = NULL;
        assert_int_equal(dv_bisect(m, &o, &r), DV_E_INPUT);
        assert_null(r);
        const char *msg = dv_errmsg();
        if (strncmp(msg, path, strlen(path)) ||
            !strstr(msg, "the cpu reference is broken at pass 0 (pos0 0, 3 tokens), "
                         "blk.0.attn_in (get_rows): the reference holds 192 NaN") ||
            !strstr(msg, "the first at [t=0 (pos 0), col=0] is nan"))
            fail_msg("message: %s", msg);
    }
    char kept[600];
    snprintf(kept, sizeof kept, "%s/ref.h5", dir);
    struct dv_reader *d;
    assert_int_equal(dv_reader_open(kept, &d), DV_OK);
    assert_int_equal(d->n_passes, 1);
    dv_reader_free(d);
    dv_policy_free(p);
    dv_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_kv_stale),
        cmocka_unit_test(test_q4k_scale_first_pass),
        cmocka_unit_test(test_no_oracle),
        cmocka_unit_test(test_keep_dumps),
        cmocka_unit_test(test_nan_model),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
