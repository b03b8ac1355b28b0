/*
 * test_compare.c - alignment, judging and first divergence on real dumps.
 *
 * A clean reference dump of the tiny-f32 fixture (cpu, schedule 3,2,1
 * over 6 tokens) and its cpu-f64 oracle are made once. Each test copies
 * the reference through the public dump API, changing one tensor at one
 * pass (scale a row, swap two heads, add noise of a set size, one NaN) or
 * the structure (drop, add, reshape a tensor, other tokens), and checks
 * that compare names exactly that tensor, pass and position, and nothing
 * when the change is below the policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "compare.h"
#include "compare_report.h"
#include "diverge.h"
#include "dump.h"
#include "engine.h"
#include "fixture.h"
#include "model.h"
#include "policy.h"
#include "reader.h"
#include "../common/testutil.h"
#include "types.h"

static const int32_t toks[] = {1, 5, 9, 13, 17, 21};
static const int sched[] = {3, 2, 1};
#define N_PASS 3

static char ref_path[4096], oracle_path[4096];

/* Run the fixture on `backend` into a dump at path. */
static void make_dump(const char *model, int backend, const char *path)
{
    struct dv_model *m;
    assert_int_equal(dv_model_open(model, &m), DV_OK);
    struct dv_engine_opts o = {.n_ctx = 6, .n_batch = 3, .inject_layer = -1};
    struct dv_engine *e;
    assert_int_equal(dv_engine_open(m, backend, &o, &e), DV_OK);
    struct dv_dump_filter f = {0};
    struct dv_dump_sink sink = {.filter = &f};
    unsigned flags = backend == DV_BACKEND_CPU_F64 ? DV_DUMP_FLOAT64 : 0;
    assert_int_equal(dv_dump_create(path, dv_backend_name(backend), flags, &sink.dump), DV_OK);
    assert_int_equal(dv_dump_describe(sink.dump, m, "test", "test", "", NULL), DV_OK);
    struct dv_hook h = dv_dump_hook(&sink);
    for (int i = 0, pos = 0; i < N_PASS; pos += sched[i++])
        assert_int_equal(dv_engine_forward(e, toks + pos, sched[i], pos, &h), DV_OK);
    assert_int_equal(dv_dump_close(sink.dump, 1), DV_OK);
    dv_engine_free(e);
    dv_model_free(m);
}

static int setup(void **state)
{
    tu_group_setup(state);
    char model[4096];
    snprintf(model, sizeof model, "%s", tu_path(tu_tmp, "tiny-f32.gguf"));
    if (dv_fixture_write("tiny-f32", model)) return -1;
    snprintf(ref_path, sizeof ref_path, "%s", tu_path(tu_tmp, "ref.h5"));
    snprintf(oracle_path, sizeof oracle_path, "%s", tu_path(tu_tmp, "oracle.h5"));
    make_dump(model, DV_BACKEND_CPU, ref_path);
    make_dump(model, DV_BACKEND_CPU_F64, oracle_path);
    return 0;
}

/* ---- copying a dump with one change ------------------------------------ */

/* What to change: the tensor `name` of pass `pass` goes through `edit`
 * (NULL: unchanged), and `name2` through `edit2`; drop it, or give it
 * another shape; add a tensor named `extra`; change token 0 of pass
 * `pass`; renumber every pass by `shift`. The copy is of `src` (NULL: the
 * reference), stored as float64 when `f64`. */
struct change {
    int pass;
    const char *name;
    void (*edit)(float *x, const struct dv_reader_tensor *t, void *arg);
    void *arg;
    const char *name2;
    void (*edit2)(float *x, const struct dv_reader_tensor *t, void *arg);
    bool drop, retoken;
    const char *extra; /* a probe of 3 values, [3] or (extra_2d) [1, 3] */
    bool extra_2d;
    const char *src;
    bool f64;
    int shift;
    void (*edit_all)(float *x, const struct dv_reader_tensor *t, void *arg); /* every tensor */
    const char *act_quant, *kv_type; /* declared arithmetic attributes to set */
    bool undeclared; /* drop the source's declared arithmetic (another engine's dump) */
};

static void copy_attrs(const struct dv_reader *r, dv_dump *d, bool undeclared)
{
    static const char *const reserved[] = {"schema", "schema_version", "tool_version",
                                           "created_utc", "backend"};
    static const char *const arith[] = {"act_quant", "act_quant_types", "kv_type"};
    for (int i = 0; i < r->n_attrs; i++) {
        const struct dv_reader_attr *a = &r->attrs[i];
        bool skip = false;
        for (size_t k = 0; k < sizeof reserved / sizeof reserved[0]; k++)
            skip |= !strcmp(a->key, reserved[k]);
        for (size_t k = 0; undeclared && k < sizeof arith / sizeof arith[0]; k++)
            skip |= !strcmp(a->key, arith[k]);
        if (skip) continue;
        dv_status s = a->kind == DV_ATTR_STR ? dv_dump_set_str(d, a->key, a->str)
                      : a->kind == DV_ATTR_INT ? dv_dump_set_int(d, a->key, a->i)
                                               : dv_dump_set_real(d, a->key, a->r);
        assert_int_equal(s, DV_OK);
    }
}

static void copy_tensor(const struct dv_reader *r, dv_dump *d, int p, int t,
                        const struct change *ch)
{
    const struct dv_reader_tensor *ts = &r->passes[p].tensors[t];
    bool here = r->passes[p].index == ch->pass;
    bool target = here && ch->name && !strcmp(ts->name, ch->name);
    bool target2 = here && ch->name2 && !strcmp(ts->name, ch->name2);
    if (target && ch->drop) return;
    float *x = malloc((size_t)ts->n_elems * sizeof *x);
    assert_non_null(x);
    assert_int_equal(dv_reader_read(r, p, t, DV_TYPE_F32, x), DV_OK);
    if (target && ch->edit) ch->edit(x, ts, ch->arg);
    if (target2 && ch->edit2) ch->edit2(x, ts, ch->arg);
    if (ch->edit_all) ch->edit_all(x, ts, ch->arg);
    assert_int_equal(dv_dump_write(d, ts->name, ts->layer, ts->op, ts->order, ts->n_dims,
                                   ts->shape, DV_DUMP_F32, x), DV_OK);
    free(x);
}

static const char *copy_dump(const char *name, const struct change *ch)
{
    static char out[4096];
    snprintf(out, sizeof out, "%s", tu_path(tu_tmp, name));
    struct dv_reader *r;
    assert_int_equal(dv_reader_open(ch->src ? ch->src : ref_path, &r), DV_OK);
    dv_dump *d;
    assert_int_equal(dv_dump_create(out, "copy", ch->f64 ? DV_DUMP_FLOAT64 : 0, &d), DV_OK);
    copy_attrs(r, d, ch->undeclared);
    if (ch->act_quant) { /* and what it resolves to on the f32 fixture, as a name */
        char types[64];
        snprintf(types, sizeof types, "f32=%s", ch->act_quant);
        assert_int_equal(dv_dump_set_str(d, "act_quant", ch->act_quant), DV_OK);
        assert_int_equal(dv_dump_set_str(d, "act_quant_types", types), DV_OK);
    }
    if (ch->kv_type) assert_int_equal(dv_dump_set_str(d, "kv_type", ch->kv_type), DV_OK);
    for (int p = 0; p < r->n_passes; p++) {
        const struct dv_reader_pass *ps = &r->passes[p];
        int32_t tk[16];
        memcpy(tk, ps->tokens, (size_t)ps->n_tokens * sizeof *tk);
        if (ch->retoken && ps->index == ch->pass) tk[0] += 1;
        assert_int_equal(dv_dump_begin_pass(d, ps->index + ch->shift, ps->pos0, ps->n_tokens, tk),
                         DV_OK);
        for (int t = 0; t < ps->n_tensors; t++) copy_tensor(r, d, p, t, ch);
        if (ch->extra && ps->index == ch->pass) {
            float v[3] = {1, 2, 3};
            int64_t shape[2] = {3, 0};
            if (ch->extra_2d) shape[0] = 1, shape[1] = 3;
            assert_int_equal(dv_dump_write(d, ch->extra, -1, "view", -1, ch->extra_2d ? 2 : 1,
                                           shape, DV_DUMP_F32, v), DV_OK);
        }
    }
    assert_int_equal(dv_dump_close(d, 1), DV_OK);
    dv_reader_free(r);
    return out;
}

/* Compare two dumps under the built-in policy (oracle may be NULL). */
static struct dv_cmp_result *compare_paths(const char *test_path, const char *ref,
                                           const char *oracle)
{
    struct dv_reader *a, *b, *o = NULL;
    assert_int_equal(dv_reader_open(test_path, &a), DV_OK);
    assert_int_equal(dv_reader_open(ref, &b), DV_OK);
    if (oracle) assert_int_equal(dv_reader_open(oracle, &o), DV_OK);
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    struct dv_cmp_result *c;
    assert_int_equal(dv_compare(a, b, o, p, &c), DV_OK);
    dv_policy_free(p);
    dv_reader_free(a);
    dv_reader_free(b);
    dv_reader_free(o);
    return c;
}

/* Compare test_path with the reference (and the oracle when asked). */
static struct dv_cmp_result *compare(const char *test_path, bool with_oracle)
{
    return compare_paths(test_path, ref_path, with_oracle ? oracle_path : NULL);
}

/* The first divergence is tensor `name` of pass `pass`, and it is the
 * only diverged row. */
static const struct dv_cmp_row *expect_first(const struct dv_cmp_result *c, int64_t pass,
                                             const char *name)
{
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_DIVERGED);
    assert_true(c->first >= 0);
    const struct dv_cmp_row *w = &c->rows[c->first];
    assert_string_equal(w->name, name);
    assert_int_equal(c->passes[w->pass].index, pass);
    assert_int_equal(c->n_diverged, 1);
    return w;
}

/* ---- edits ----------------------------------------------------------------- */

static void scale_row(float *x, const struct dv_reader_tensor *t, void *arg)
{
    int64_t row = *(int64_t *)arg, n = t->n_elems / t->shape[0];
    for (int64_t i = 0; i < n; i++) x[row * n + i] *= 1.01f;
}

/* Swap heads 0 and 1 of a [T, H, hd] tensor. */
static void swap_heads(float *x, const struct dv_reader_tensor *t, void *arg)
{
    int64_t H = t->shape[1], hd = t->shape[2];
    for (int64_t tok = 0; tok < t->shape[0]; tok++)
        for (int64_t c = 0; c < hd; c++) {
            float *a = &x[(tok * H + 0) * hd + c], *b = &x[(tok * H + 1) * hd + c], v = *a;
            *a = *b;
            *b = v;
        }
}

/* Add Gaussian noise of relative RMS *arg (of the tensor's RMS), seeded. */
static void add_noise(float *x, const struct dv_reader_tensor *t, void *arg)
{
    double rel = *(double *)arg, s2 = 0;
    for (int64_t i = 0; i < t->n_elems; i++) s2 += (double)x[i] * x[i];
    double sigma = rel * sqrt(s2 / (double)t->n_elems);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 1234);
    for (int64_t i = 0; i < t->n_elems; i++) x[i] += (float)gsl_ran_gaussian(rng, sigma);
    gsl_rng_free(rng);
}

/* Multiply every value by 1 + rel g, g Gaussian clamped to [-3, 3] and
 * seeded: relative noise that keeps the mask's -inf. */
static void mul_noise(float *x, const struct dv_reader_tensor *t, void *arg)
{
    double rel = *(double *)arg;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 99);
    for (int64_t i = 0; i < t->n_elems; i++) {
        double g = gsl_ran_gaussian(rng, 1.0);
        x[i] *= (float)(1 + rel * (g < -3 ? -3 : g > 3 ? 3 : g));
    }
    gsl_rng_free(rng);
}

static void put_nan(float *x, const struct dv_reader_tensor *t, void *arg)
{
    x[*(int64_t *)arg] = NAN;
}

static void all_nan(float *x, const struct dv_reader_tensor *t, void *arg)
{
    for (int64_t i = 0; i < t->n_elems; i++) x[i] = NAN;
}

/* A causal mask that reaches one key too far, as an engine with an
 * off-by-one mask computes it: in blk.L.kq [H, T, n_kv] query t sees key
 * pos0 + t + 1 too (a finite score, 0.5, where the schema has -inf) ... */
static void leak_scores(float *x, const struct dv_reader_tensor *t, void *arg)
{
    const int64_t H = t->shape[0], T = t->shape[1], n_kv = t->shape[2], pos0 = n_kv - T;
    for (int64_t h = 0; h < H; h++)
        for (int64_t q = 0; q < T; q++)
            if (pos0 + q + 1 < n_kv) x[(h * T + q) * n_kv + pos0 + q + 1] = 0.5f;
}

/* ... and in blk.L.kq_softmax that key then takes a share (0.1) of the
 * probability instead of 0. */
static void leak_probs(float *x, const struct dv_reader_tensor *t, void *arg)
{
    const int64_t H = t->shape[0], T = t->shape[1], n_kv = t->shape[2], pos0 = n_kv - T;
    for (int64_t h = 0; h < H; h++)
        for (int64_t q = 0; q < T; q++) {
            if (pos0 + q + 1 >= n_kv) continue;
            float *row = &x[(h * T + q) * n_kv];
            for (int64_t k = 0; k < n_kv; k++) row[k] *= 0.9f;
            row[pos0 + q + 1] = 0.1f;
        }
}

/* ---- tests ----------------------------------------------------------------- */

static void test_identical_copy_agrees(void **state)
{
    struct change ch = {.pass = -1};
    struct dv_cmp_result *c = compare(copy_dump("same.h5", &ch), false);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_AGREE);
    assert_int_equal(c->n_diverged, 0);
    assert_int_equal(c->n_missing + c->n_extra + c->n_shape + c->n_skipped, 0);
    /* 3 passes x (2 layers x 18 + output_norm + logits) */
    assert_int_equal(c->n_compared, 3 * (2 * 18 + 2));
    assert_true(c->rows[c->worst].ratio == 0); /* bit-identical copy */
    assert_int_equal(c->first, -1);
    dv_cmp_free(c);
}

static void test_scaled_row(void **state)
{
    int64_t row = 1;
    struct change ch = {.pass = 1, .name = "blk.1.q", .edit = scale_row, .arg = &row};
    struct dv_cmp_result *c = compare(copy_dump("scale.h5", &ch), false);
    const struct dv_cmp_row *w = expect_first(c, 1, "blk.1.q");
    assert_int_equal(w->layer, 1);
    assert_int_equal(w->max_at.token, 1);
    assert_int_equal(w->max_at.pos, 3 + 1); /* pass 1 starts at pos0 3 */
    assert_true(c->layers[1].first_divergence);
    dv_cmp_free(c);
}

static void test_swapped_heads(void **state)
{
    struct change ch = {.pass = 0, .name = "blk.0.k_rope", .edit = swap_heads};
    struct dv_cmp_result *c = compare(copy_dump("swap.h5", &ch), true);
    const struct dv_cmp_row *w = expect_first(c, 0, "blk.0.k_rope");
    assert_true(w->has_oracle);
    assert_true(w->max_at.head == 0 || w->max_at.head == 1);
    assert_true(w->ratio > 1000);
    dv_cmp_free(c);
}

static void test_noise_above_and_below_the_floor(void **state)
{
    /* relative RMS 1e-4: nmse 1e-8, under the fixed nmse limit 1e-6, but
     * ~100x the oracle's floor for an f32 tensor (err(ref, oracle) is a
     * few 1e-8 here, the limit 2 err + 2^-20 about 1e-6) */
    double big = 1e-4;
    struct change ch = {.pass = 2, .name = "blk.0.ffn_up", .edit = add_noise, .arg = &big};
    const char *path = copy_dump("noise.h5", &ch);
    struct dv_cmp_result *c = compare(path, true);
    const struct dv_cmp_row *w = expect_first(c, 2, "blk.0.ffn_up");
    assert_true(w->err_test > w->limit);
    dv_cmp_free(c);
    c = compare(path, false);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_AGREE); /* below the fixed limit */
    dv_cmp_free(c);
    /* relative RMS 1e-8: below f32 resolution of most values, far below
     * the floor: nothing diverges, with or without the oracle */
    double small = 1e-8;
    ch.arg = &small;
    path = copy_dump("quiet.h5", &ch);
    c = compare(path, true);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_AGREE);
    dv_cmp_free(c);
    /* relative RMS 1e-2: nmse 1e-4, past the fixed limit too */
    double loud = 1e-2;
    ch.arg = &loud;
    c = compare(copy_dump("loud.h5", &ch), false);
    expect_first(c, 2, "blk.0.ffn_up");
    dv_cmp_free(c);
}

static void test_one_nan(void **state)
{
    int64_t at = 7; /* logits [1, V]: token 0, column 7 */
    struct change ch = {.pass = 2, .name = "logits", .edit = put_nan, .arg = &at};
    struct dv_cmp_result *c = compare(copy_dump("nan.h5", &ch), false);
    const struct dv_cmp_row *w = expect_first(c, 2, "logits");
    assert_true(isinf(w->ratio));
    assert_int_equal(w->m.bad_test, 1);
    assert_int_equal(w->bad_at.flat, 7);
    assert_int_equal(w->bad_at.token, 0);
    assert_int_equal(w->bad_at.col, 7);
    assert_int_equal(w->bad_at.pos, 5);
    assert_int_equal(w->layer, -1);
    assert_true(c->layers[c->n_layers - 1].first_divergence);
    dv_cmp_free(c);
}

static void test_missing_extra_and_shape(void **state)
{
    struct change drop = {.pass = 1, .name = "blk.0.v", .drop = true, .extra = "my.probe"};
    struct dv_cmp_result *c = compare(copy_dump("drop.h5", &drop), false);
    assert_int_equal(c->n_missing, 1);
    assert_int_equal(c->n_extra, 1);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_AGREE); /* the rest agrees */
    bool seen_missing = false, seen_extra = false;
    for (int i = 0; i < c->n_rows; i++) {
        seen_missing |= c->rows[i].status == DV_ROW_MISSING && !strcmp(c->rows[i].name, "blk.0.v");
        seen_extra |= c->rows[i].status == DV_ROW_EXTRA && !strcmp(c->rows[i].name, "my.probe");
    }
    assert_true(seen_missing && seen_extra);
    dv_cmp_free(c);

    /* a name outside the table may have any shape: the same probe as
     * [3] in one dump and [1, 3] in the other cannot be compared */
    struct change flat = {.pass = 0, .extra = "my.probe"};
    struct change row = {.pass = 0, .extra = "my.probe", .extra_2d = true};
    char flat_path[4096];
    snprintf(flat_path, sizeof flat_path, "%s", copy_dump("probe1.h5", &flat));
    c = compare_paths(copy_dump("probe2.h5", &row), flat_path, NULL);
    assert_int_equal(c->n_shape, 1);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_DIVERGED);
    const struct dv_cmp_row *w = &c->rows[c->first];
    assert_string_equal(w->name, "my.probe");
    assert_int_equal(w->status, DV_ROW_SHAPE);
    assert_int_equal(w->test_n_dims, 2);
    assert_int_equal(w->n_dims, 1);
    dv_cmp_free(c);
}

static void test_other_tokens_are_not_compared(void **state)
{
    struct change ch = {.pass = 1, .retoken = true};
    struct dv_cmp_result *c = compare(copy_dump("tokens.h5", &ch), false);
    assert_int_equal(c->passes[1].status, DV_PASS_TOKENS);
    assert_int_equal(c->passes[1].first_token_diff, 0);
    assert_int_equal(c->n_pass_mismatch, 1);
    assert_int_equal(c->n_skipped, 2 * 18 + 2);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_INCOMPARABLE);
    dv_cmp_free(c);
}

/* dv_compare with an oracle that is not a float64 dump of the
 * reference's run: DV_E_INPUT, no result, and a message that starts with
 * the oracle's path and says `want`. */
static void expect_refused(const char *test_path, const char *ref, const char *oracle,
                           const char *want)
{
    struct dv_reader *a, *b, *o;
    assert_int_equal(dv_reader_open(test_path, &a), DV_OK);
    assert_int_equal(dv_reader_open(ref, &b), DV_OK);
    assert_int_equal(dv_reader_open(oracle, &o), DV_OK);
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    struct dv_cmp_result *c = NULL;
    assert_int_equal(dv_compare(a, b, o, p, &c), DV_E_INPUT);
    assert_null(c);
    const char *msg = dv_errmsg();
    if (strncmp(msg, oracle, strlen(oracle)) || !strstr(msg, want))
        fail_msg("message \"%s\": expected %s: ...%s...", msg, oracle, want);
    dv_policy_free(p);
    dv_reader_free(a);
    dv_reader_free(b);
    dv_reader_free(o);
}

static void test_oracle_refused(void **state)
{
    char f32[4096], tokens[4096], shifted[4096];
    /* a float32 dump: a copy of the cpu reference (an f32 cpu dump as the
     * oracle made a clean run diverge), or the reference file itself */
    struct change same = {.pass = -1};
    snprintf(f32, sizeof f32, "%s", copy_dump("f32-oracle.h5", &same));
    expect_refused(ref_path, ref_path, f32, "not a float64 oracle dump (backend copy; pass 0 "
                   "blk.0.attn_in is float32)");
    expect_refused(f32, ref_path, ref_path, "the oracle is the reference dump itself");
    /* the test dump itself, even when it is float64 */
    expect_refused(oracle_path, ref_path, oracle_path, "the oracle is the test dump itself");
    /* float64 but another run: other tokens in pass 0; none of the passes */
    struct change tok = {.pass = 0, .retoken = true, .src = oracle_path, .f64 = true};
    snprintf(tokens, sizeof tokens, "%s", copy_dump("other-tokens.h5", &tok));
    expect_refused(ref_path, ref_path, tokens, "pass 0 of the oracle ran other tokens");
    struct change shift = {.pass = -1, .src = oracle_path, .f64 = true, .shift = 10};
    snprintf(shifted, sizeof shifted, "%s", copy_dump("shifted.h5", &shift));
    expect_refused(ref_path, ref_path, shifted, "the oracle has none of the passes of");
    /* a float64 copy of the real oracle is one */
    struct change copy = {.pass = -1, .src = oracle_path, .f64 = true};
    struct dv_cmp_result *c = compare_paths(ref_path, ref_path, copy_dump("f64-copy.h5", &copy));
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_AGREE);
    assert_true(c->has_oracle);
    dv_cmp_free(c);
}

/* A test that declares 8-bit activations and an f16 cache against a
 * reference that emulates neither: a gap of rel 1e-2 on every tensor is
 * the size that arithmetic gives (explained, still diverged); a gap of
 * 0.2 is not; the same gap with the same declaration is a plain
 * divergence. */
static void test_declared_arithmetic(void **state)
{
    char ref_decl[4096], test_small[4096], test_big[4096], test_same[4096];
    struct change r = {.pass = -1, .act_quant = "none", .kv_type = "f32"};
    snprintf(ref_decl, sizeof ref_decl, "%s", copy_dump("ref-decl.h5", &r));
    double small = 1e-2, big = 0.2;
    struct change t = {.pass = -1, .edit_all = mul_noise, .arg = &small, .act_quant = "auto",
                       .kv_type = "f16"};
    snprintf(test_small, sizeof test_small, "%s", copy_dump("decl-small.h5", &t));
    t.arg = &big;
    snprintf(test_big, sizeof test_big, "%s", copy_dump("decl-big.h5", &t));
    t.arg = &small, t.act_quant = "none", t.kv_type = "f32";
    snprintf(test_same, sizeof test_same, "%s", copy_dump("decl-same.h5", &t));

    struct dv_cmp_result *c = compare_paths(test_small, ref_decl, NULL);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_DIVERGED);
    assert_true(c->arith_differs && c->explained);
    assert_true(c->worst_err > 5e-3 && c->worst_err < 2e-2);
    char line[1024];
    dv_cmp_verdict_line(c, line, sizeof line);
    assert_non_null(strstr(line, "explained by declared arithmetic"));
    assert_non_null(strstr(line, "--act-quant auto"));
    assert_non_null(strstr(line, "--kv-type f16"));
    dv_cmp_free(c);

    c = compare_paths(test_big, ref_decl, NULL);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_DIVERGED);
    assert_true(c->arith_differs && !c->explained && c->worst_err > 0.1);
    dv_cmp_verdict_line(c, line, sizeof line);
    assert_non_null(strstr(line, "not 0.2"));
    dv_cmp_free(c);

    c = compare_paths(test_same, ref_decl, NULL);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_DIVERGED);
    assert_false(c->arith_differs || c->explained);
    dv_cmp_free(c);
    /* undeclared on one side (another engine's dump; diverge's own dumps
     * always declare): nothing is claimed */
    struct change u = {.pass = -1, .undeclared = true};
    c = compare_paths(test_small, copy_dump("undeclared.h5", &u), NULL);
    assert_false(c->arith_differs || c->explained);
    dv_cmp_free(c);
}

/* The oracle must round as the reference does; --exact must round not
 * at all, and gives each row err(ref, exact). */
static void test_oracle_arithmetic_and_exact(void **state)
{
    char ref_decl[4096], oracle_decl[4096], oracle_q8[4096];
    struct change r = {.pass = -1, .act_quant = "q8_0", .kv_type = "f16"};
    snprintf(ref_decl, sizeof ref_decl, "%s", copy_dump("ref-q8.h5", &r));
    struct change o = {.pass = -1, .src = oracle_path, .f64 = true, .act_quant = "none",
                       .kv_type = "f16"};
    snprintf(oracle_decl, sizeof oracle_decl, "%s", copy_dump("oracle-none.h5", &o));
    expect_refused(ref_decl, ref_decl, oracle_decl, "the oracle's act_quant_types is f32=none, "
                   "the reference's f32=q8_0");
    o.act_quant = "q8_0";
    snprintf(oracle_q8, sizeof oracle_q8, "%s", copy_dump("oracle-q8.h5", &o));
    struct dv_cmp_result *c = compare_paths(ref_path, ref_decl, oracle_q8);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_AGREE);

    struct dv_reader *ref, *exact;
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    assert_int_equal(dv_reader_open(ref_decl, &ref), DV_OK);
    /* an emulating dump is not exact */
    assert_int_equal(dv_reader_open(oracle_q8, &exact), DV_OK);
    assert_int_equal(dv_cmp_add_exact(c, ref, exact, p), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "not an exact dump (act_quant q8_0"));
    dv_reader_free(exact);
    /* the f64 oracle (no declaration) is: err_declared = rel_rms(ref, oracle),
     * the reference's f32 rounding here */
    assert_int_equal(dv_reader_open(oracle_path, &exact), DV_OK);
    assert_int_equal(dv_cmp_add_exact(c, ref, exact, p), DV_OK);
    assert_true(c->has_exact);
    struct dv_cmp_result *d = compare_paths(ref_decl, oracle_path, NULL);
    assert_int_equal(d->n_rows, c->n_rows);
    int with = 0;
    for (int i = 0; i < c->n_rows; i++) {
        const struct dv_cmp_row *w = &c->rows[i];
        if (!w->has_declared) continue;
        with++;
        assert_string_equal(w->name, d->rows[i].name);
        assert_true(w->err_declared == dv_metrics_rel_rms(&d->rows[i].m));
        assert_true(w->err_declared >= 0 && w->err_declared < 1e-5); /* f32 rounding */
    }
    assert_int_equal(with, c->n_compared);
    dv_cmp_free(d);
    dv_reader_free(exact);
    dv_reader_free(ref);
    dv_policy_free(p);
    dv_cmp_free(c);
}

/* A causal mask one key too far: at blk.0.kq the test is finite where
 * the reference has -inf, and that is the first divergence (it used to
 * be blk.0.kq_softmax, one tensor late), named with its first position. */
static void test_leaked_mask(void **state)
{
    struct change ch = {.pass = 0, .name = "blk.0.kq", .edit = leak_scores,
                        .name2 = "blk.0.kq_softmax", .edit2 = leak_probs};
    const char *path = copy_dump("leak.h5", &ch);
    for (int with = 0; with < 2; with++) {
        struct dv_cmp_result *c = compare(path, with);
        assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_DIVERGED);
        const struct dv_cmp_row *w = &c->rows[c->first];
        assert_string_equal(w->name, "blk.0.kq");
        assert_int_equal(c->passes[w->pass].index, 0);
        assert_int_equal(w->status, DV_ROW_DIVERGED);
        assert_true(isinf(w->ratio));
        /* pass 0: 3 tokens at pos0 0, so queries 0 and 1 of each of the
         * 4 heads see one key too many */
        assert_int_equal(w->m.mismatch, 8);
        assert_int_equal(w->m.bad_ref, 8);
        assert_int_equal(w->m.bad_test, 0);
        assert_true(w->m.mismatch_test == 0.5 && w->m.mismatch_ref == -INFINITY);
        assert_int_equal(w->bad_at.flat, 1);
        assert_int_equal(w->bad_at.head, 0);
        assert_int_equal(w->bad_at.token, 0);
        assert_int_equal(w->bad_at.pos, 0);
        assert_int_equal(w->bad_at.key, 1);
        assert_non_null(strstr(w->why, "8 values where the reference is -inf"));
        /* the metrics cover the finite pairs only: the rest is identical */
        assert_true(w->m.max_abs == 0 && w->m.n_used == w->m.n - 4 * 3);
        assert_int_equal(c->n_diverged, 2); /* and kq_softmax, which it moves */
        dv_cmp_free(c);
    }
}

/* A reference or oracle with NaN where a forward pass has numbers is
 * never agreement: every row is broken and so is the verdict; a test of
 * NaN against a finite reference diverges at its first tensor. */
static void test_all_nan(void **state)
{
    char nan_ref[4096], nan_oracle[4096];
    struct change ch = {.pass = -1, .edit_all = all_nan};
    snprintf(nan_ref, sizeof nan_ref, "%s", copy_dump("nan-ref.h5", &ch));
    const int per_pass = 2 * 18 + 2;
    for (int with = 0; with < 2; with++) {
        struct dv_cmp_result *c = compare_paths(ref_path, nan_ref, with ? oracle_path : NULL);
        assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_BROKEN);
        assert_int_equal(c->n_broken, N_PASS * per_pass);
        assert_int_equal(c->n_compared, 0);
        assert_int_equal(c->first_broken, 0);
        const struct dv_cmp_row *w = &c->rows[0];
        assert_string_equal(w->name, "blk.0.attn_in");
        assert_int_equal(w->status, DV_ROW_BROKEN);
        assert_int_equal(w->broken, DV_BROKEN_REF);
        assert_int_equal(w->n_broken, 3 * 64);
        assert_int_equal(w->broken_at.flat, 0);
        assert_int_equal(w->broken_at.token, 0);
        assert_int_equal(w->broken_at.col, 0);
        assert_true(isnan(w->broken_value));
        assert_non_null(strstr(w->why, "the reference holds 192 NaN"));
        dv_cmp_free(c);
    }
    /* the oracle all NaN, the reference fine */
    struct change och = {.pass = -1, .edit_all = all_nan, .src = oracle_path, .f64 = true};
    snprintf(nan_oracle, sizeof nan_oracle, "%s", copy_dump("nan-oracle.h5", &och));
    struct dv_cmp_result *c = compare_paths(ref_path, ref_path, nan_oracle);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_BROKEN);
    assert_int_equal(c->n_broken, N_PASS * per_pass);
    assert_int_equal(c->rows[c->first_broken].broken, DV_BROKEN_ORACLE);
    assert_non_null(strstr(c->rows[0].why, "the oracle holds 192 NaN"));
    dv_cmp_free(c);
    /* the test all NaN: diverged from the first tensor on */
    c = compare_paths(nan_ref, ref_path, oracle_path);
    assert_int_equal(dv_cmp_verdict(c), DV_VERDICT_DIVERGED);
    assert_int_equal(c->first, 0);
    assert_int_equal(c->n_diverged, N_PASS * per_pass);
    assert_int_equal(c->rows[0].m.bad_test, 3 * 64);
    assert_int_equal(c->rows[0].bad_at.flat, 0);
    dv_cmp_free(c);
}

static void test_where_format(void **state)
{
    char buf[128];
    struct dv_cmp_where w = {.flat = 5, .n_dims = 3, .index = {1, 0, 3}, .token = 0, .pos = 6,
                             .head = 1, .col = -1, .key = 3};
    dv_cmp_where_format(&w, buf, sizeof buf);
    assert_string_equal(buf, "[h=1, t=0 (pos 6), key=3]");
    w = (struct dv_cmp_where){.flat = 9, .n_dims = 3, .index = {2, 1, 4}, .token = 2, .pos = 8,
                              .head = 1, .col = 4, .key = -1};
    dv_cmp_where_format(&w, buf, sizeof buf);
    assert_string_equal(buf, "[t=2 (pos 8), h=1, col=4]");
    w = (struct dv_cmp_where){.flat = 9, .n_dims = 2, .index = {2, 4}, .token = -1, .pos = -1,
                              .head = -1, .col = -1, .key = -1};
    dv_cmp_where_format(&w, buf, sizeof buf);
    assert_string_equal(buf, "[2, 4]");
}

/* ---- dv_cmp_judge: one tensor in memory ----------------------------------- */

/* The shapes of the tiny fixture: 2 layers, 4 heads of 16 (2 kv heads). */
static const struct dv_config judge_cfg = {.n_vocab = 256, .d_model = 64, .n_layer = 2,
                                           .n_head = 4, .n_head_kv = 2, .head_dim = 16,
                                           .n_ff = 192, .n_rot = 16};

/* blk.0.q [T, H, hd] of a pass of 3 tokens at pos0 5 */
#define JT 3
#define JH 4
#define JD 16
#define JN (JT * JH * JD)
#define JPOS0 5

/* A row as dv_cmp_judge's caller fills it: name, layer, op, shape and the
 * tolerance policy p gives the tensor. */
static void row_init(struct dv_cmp_row *w, const struct dv_policy *p, const char *name,
                     int layer, const char *op, int n_dims, const int64_t *shape)
{
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->layer = layer;
    snprintf(w->op, sizeof w->op, "%s", op);
    w->n_dims = n_dims;
    memcpy(w->shape, shape, (size_t)n_dims * sizeof *shape);
    dv_policy_lookup(p, name, op, &w->tol);
}

static void q_row(struct dv_cmp_row *w, const struct dv_policy *p)
{
    const int64_t shape[3] = {JT, JH, JD};
    row_init(w, p, "blk.0.q", 0, "matmul", 3, shape);
}

/* The oracle's values (Gaussian, seeded) and the reference's: the same
 * rounded to float, as a cpu dump holds a cpu-f64 one. */
static void judge_data(double *oracle, float *ref, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (int i = 0; i < JN; i++) ref[i] = (float)(oracle[i] = gsl_ran_gaussian(r, 1.0));
    gsl_rng_free(r);
}

/* test[i] = ref[i] (1 + rel g_i), g standard Gaussian (seeded). */
static void rel_noise(float *test, const float *ref, double rel, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (int i = 0; i < JN; i++) test[i] = (float)(ref[i] * (1 + rel * gsl_ran_gaussian(r, 1.0)));
    gsl_rng_free(r);
}

/* sqrt(sum (a - b)^2 / sum b^2) in double, a as float or double. */
static double rel_rms_f(const float *a, const double *b, int n)
{
    double d2 = 0, b2 = 0;
    for (int i = 0; i < n; i++) d2 += (a[i] - b[i]) * (a[i] - b[i]), b2 += b[i] * b[i];
    return sqrt(d2 / b2);
}

/* Flat index of element (t, h, col) of a [JT, JH, JD] tensor. */
static int q_at(int t, int h, int col) { return (t * JH + h) * JD + col; }

static void test_judge_identical(void **state)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    double oracle[JN], wide[JN];
    float ref[JN], test[JN];
    judge_data(oracle, ref, 11);
    memcpy(test, ref, sizeof test);
    struct dv_cmp_row w;
    /* fixed limits: nothing differs, every figure is 0 */
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_OK);
    assert_true(w.ratio == 0);
    assert_false(w.has_oracle);
    assert_int_equal(w.m.n, JN);
    assert_int_equal(w.m.n_used, JN);
    assert_true(w.m.max_abs == 0);
    assert_string_equal(w.why, "");
    /* an oracle equal to the reference: both errors 0, ratio 0 */
    for (int i = 0; i < JN; i++) wide[i] = ref[i];
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, wide, DV_TYPE_F64);
    assert_int_equal(w.status, DV_ROW_OK);
    assert_true(w.has_oracle);
    assert_true(w.err_test == 0 && w.err_ref == 0 && w.ratio == 0);
    /* the real oracle: err_test = err_ref = e (float rounding) and the
     * ratio e / (m e + floor) stays under 1/m = 1/2 whatever e is */
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, oracle,
                 DV_TYPE_F64);
    assert_int_equal(w.status, DV_ROW_OK);
    assert_true(w.err_ref > 0 && w.err_test == w.err_ref);
    assert_true(w.ratio < 1 / w.tol.oracle_m);
    dv_policy_free(p);
}

/* Relative noise 1e-2 against an oracle: err_test ~1e-2, the limit
 * 2 err_ref + 2^-20 ~1e-6, so ratio ~1e4. One element pushed by 1.0
 * (the noise moves none by more than ~0.05) is where max_at must point. */
static void test_judge_noise_with_oracle(void **state)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    double oracle[JN];
    float ref[JN], test[JN];
    judge_data(oracle, ref, 12);
    rel_noise(test, ref, 1e-2, 13);
    const int spike = q_at(2, 3, 5);
    test[spike] += 1.0f;
    int argmax = 0; /* the largest |test - ref|, found here independently */
    for (int i = 1; i < JN; i++)
        if (fabs((double)test[i] - ref[i]) > fabs((double)test[argmax] - ref[argmax])) argmax = i;
    assert_int_equal(argmax, spike);
    struct dv_cmp_row w;
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, oracle,
                 DV_TYPE_F64);
    assert_int_equal(w.status, DV_ROW_DIVERGED);
    assert_true(w.has_oracle);
    /* the figures recomputed here: the same double sums of 192 terms, up
     * to their order (192 u = 2e-14 relative); 1e-12 leaves 50x */
    const double et = rel_rms_f(test, oracle, JN), er = rel_rms_f(ref, oracle, JN);
    const double limit = w.tol.oracle_m * er + w.tol.oracle_floor;
    assert_true(fabs(w.err_test - et) <= 1e-12 * et);
    assert_true(fabs(w.err_ref - er) <= 1e-12 * er);
    assert_true(fabs(w.limit - limit) <= 1e-12 * limit);
    assert_true(fabs(w.ratio - et / limit) <= 1e-12 * (et / limit));
    assert_true(w.ratio > 1000);
    assert_non_null(strstr(w.why, "oracle"));
    /* where: token 2 of the pass (position 7), head 3, column 5 */
    assert_int_equal(w.max_at.flat, spike);
    assert_int_equal(w.max_at.n_dims, 3);
    assert_int_equal(w.max_at.index[0], 2);
    assert_int_equal(w.max_at.index[1], 3);
    assert_int_equal(w.max_at.index[2], 5);
    assert_int_equal(w.max_at.token, 2);
    assert_int_equal(w.max_at.pos, JPOS0 + 2);
    assert_int_equal(w.max_at.head, 3);
    assert_int_equal(w.max_at.col, 5);
    assert_int_equal(w.max_at.key, -1);
    assert_int_equal(w.m.max_abs_at, spike);
    dv_policy_free(p);
}

/* A NaN the test makes where the reference is finite: always diverged,
 * ratio +inf, with and without the oracle; a reference NaN only under
 * nonfinite "any". */
static void test_judge_nan(void **state)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    double oracle[JN];
    float ref[JN], test[JN];
    judge_data(oracle, ref, 14);
    memcpy(test, ref, sizeof test);
    const int at = q_at(1, 0, 9);
    test[at] = NAN;
    for (int with = 0; with < 2; with++) {
        struct dv_cmp_row w;
        q_row(&w, p);
        dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32,
                     with ? oracle : NULL, DV_TYPE_F64);
        assert_int_equal(w.status, DV_ROW_DIVERGED);
        assert_true(isinf(w.ratio) && w.ratio > 0);
        assert_int_equal(w.m.bad_test, 1);
        assert_int_equal(w.m.nan_test, 1);
        assert_int_equal(w.m.n_used, JN - 1);
        assert_int_equal(w.bad_at.flat, at);
        assert_int_equal(w.bad_at.token, 1);
        assert_int_equal(w.bad_at.pos, JPOS0 + 1);
        assert_int_equal(w.bad_at.head, 0);
        assert_int_equal(w.bad_at.col, 9);
        if (with) assert_true(isinf(w.err_test));
    }
    /* the NaN in the reference instead: the reference is broken, not
     * judged, with or without the oracle */
    for (int with = 0; with < 2; with++) {
        struct dv_cmp_row w;
        q_row(&w, p);
        dv_cmp_judge(&w, &judge_cfg, JPOS0, ref, DV_TYPE_F32, test, DV_TYPE_F32,
                     with ? oracle : NULL, DV_TYPE_F64);
        assert_int_equal(w.status, DV_ROW_BROKEN);
        assert_int_equal(w.broken, DV_BROKEN_REF);
        assert_int_equal(w.n_broken, 1);
        assert_int_equal(w.broken_at.flat, at);
        assert_int_equal(w.broken_at.token, 1);
        assert_int_equal(w.broken_at.head, 0);
        assert_int_equal(w.broken_at.col, 9);
        assert_true(isnan(w.broken_value));
        assert_string_equal(w.why, "the reference holds 1 NaN where a forward pass cannot");
    }
    dv_policy_free(p);
}

/* Without an oracle the policy's fixed limits judge: the built-in nmse
 * 1e-6 (relative noise r gives nmse ~r^2), or any limit a policy sets. */
static void test_judge_fixed_limits(void **state)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    double oracle[JN];
    float ref[JN], test[JN];
    judge_data(oracle, ref, 15);
    double wide_ref[JN];
    for (int i = 0; i < JN; i++) wide_ref[i] = ref[i];
    struct dv_cmp_row w;
    /* noise 1e-4: nmse ~1e-8, ratio ~1e-2 of the limit */
    rel_noise(test, ref, 1e-4, 16);
    q_row(&w, p);
    assert_true(w.tol.nmse == 1e-6 && isinf(w.tol.max_abs)); /* the built-in policy */
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    const double e = rel_rms_f(test, wide_ref, JN), nmse = e * e;
    assert_int_equal(w.status, DV_ROW_OK);
    /* nmse recomputed here: the same double sums up to their order; a
     * square root and a square add 2 u, all far under 1e-12 */
    assert_true(fabs(w.ratio - nmse / w.tol.nmse) <= 1e-12 * (nmse / w.tol.nmse));
    assert_true(w.ratio > 1e-3 && w.ratio < 0.1);
    assert_string_equal(w.why, "");
    /* the same test against the oracle: the floor (~1e-6 relative) is
     * 100x under its 1e-4 error, so it diverges there */
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, oracle,
                 DV_TYPE_F64);
    assert_int_equal(w.status, DV_ROW_DIVERGED);
    assert_true(w.ratio > 10);
    /* noise 1e-2: nmse ~1e-4, ratio ~100 */
    rel_noise(test, ref, 1e-2, 17);
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_DIVERGED);
    assert_true(w.ratio > 10 && w.ratio < 1000);
    assert_true(strncmp(w.why, "nmse", 4) == 0);
    dv_policy_free(p);
    /* a policy of max_abs 0.125 alone: one value off by exactly 0.25
     * (ref 1, test 1.25: exact in float) gives ratio exactly 2 */
    static const char pol[] = "{\"default\": {\"nmse\": null, \"max_abs\": 0.125}}";
    assert_int_equal(dv_policy_parse(pol, strlen(pol), "max_abs.json", &p), DV_OK);
    memcpy(test, ref, sizeof test);
    const int at = q_at(0, 2, 15);
    ref[at] = 1.0f, test[at] = 1.25f;
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_DIVERGED);
    assert_true(w.ratio == 2.0);
    assert_true(strncmp(w.why, "max_abs", 7) == 0);
    assert_int_equal(w.max_at.flat, at);
    assert_int_equal(w.max_at.token, 0);
    assert_int_equal(w.max_at.head, 2);
    assert_int_equal(w.max_at.col, 15);
    dv_policy_free(p);
}

/* Scores [H, T, n_kv] with the causal mask: -inf on both sides is
 * neither used nor bad; the worst element is named by head, token, key. */
static void test_judge_masked_scores(void **state)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    enum { H = 4, T = 3, NKV = JPOS0 + T, N = H * T * NKV };
    float ref[N], test[N];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 18);
    int n_masked = 0;
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < NKV; j++) {
                bool masked = j > JPOS0 + t;
                ref[(h * T + t) * NKV + j] = masked ? -INFINITY : (float)gsl_ran_gaussian(r, 1.0);
                n_masked += masked;
            }
    gsl_rng_free(r);
    memcpy(test, ref, sizeof test);
    const int64_t shape[3] = {H, T, NKV};
    struct dv_cmp_row w;
    row_init(&w, p, "blk.1.kq", 1, "kq", 3, shape);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_OK);
    assert_true(w.ratio == 0);
    assert_int_equal(w.m.n_used, N - n_masked);
    assert_int_equal(w.m.bad_test + w.m.bad_ref, 0);
    const int at = (2 * T + 1) * NKV + 4; /* head 2, token 1, key 4 */
    test[at] += 0.5f;
    row_init(&w, p, "blk.1.kq", 1, "kq", 3, shape);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_DIVERGED);
    assert_int_equal(w.max_at.flat, at);
    assert_int_equal(w.max_at.head, 2);
    assert_int_equal(w.max_at.token, 1);
    assert_int_equal(w.max_at.pos, JPOS0 + 1);
    assert_int_equal(w.max_at.key, 4);
    assert_int_equal(w.max_at.col, -1);
    /* a mask the test lost (finite where the reference has -inf): a
     * non-finite mismatch, so diverged, named by head, token and key; an
     * old policy's "nonfinite": "test" does not hide it */
    static const char old[] = "{\"default\": {\"nonfinite\": \"test\"}}";
    struct dv_policy *pols[2] = {p, NULL};
    assert_int_equal(dv_policy_parse(old, strlen(old), "old.json", &pols[1]), DV_OK);
    const int lost = (1 * T + 0) * NKV + JPOS0 + 1; /* head 1, token 0, key pos0 + 1 */
    for (int k = 0; k < 2; k++) {
        memcpy(test, ref, sizeof test);
        test[lost] = 0.25f;
        row_init(&w, pols[k], "blk.1.kq", 1, "kq", 3, shape);
        dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
        assert_int_equal(w.status, DV_ROW_DIVERGED);
        assert_true(isinf(w.ratio));
        assert_int_equal(w.m.mismatch, 1);
        assert_int_equal(w.m.bad_ref, 1);
        assert_true(w.m.mismatch_test == 0.25 && w.m.mismatch_ref == -INFINITY);
        assert_int_equal(w.bad_at.flat, lost);
        assert_int_equal(w.bad_at.head, 1);
        assert_int_equal(w.bad_at.token, 0);
        assert_int_equal(w.bad_at.pos, JPOS0);
        assert_int_equal(w.bad_at.key, JPOS0 + 1);
        assert_string_equal(w.why, "1 value where the reference is -inf and the test is not");
    }
    dv_policy_free(pols[1]);
    /* a -inf the test adds diverges too */
    memcpy(test, ref, sizeof test);
    test[0] = -INFINITY; /* head 0, token 0, key 0: never masked */
    row_init(&w, p, "blk.1.kq", 1, "kq", 3, shape);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_DIVERGED);
    assert_true(isinf(w.ratio));
    assert_int_equal(w.bad_at.flat, 0);
    assert_int_equal(w.bad_at.key, 0);
    dv_policy_free(p);
}

/* Scores [H, T, n_kv] (-inf at the masked keys) or, for the probabilities
 * kq_softmax, 0 there (seeded). */
static void scores(float *x, int H, int T, int n_kv, bool probs, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < n_kv; j++)
                x[(h * T + t) * n_kv + j] = j > n_kv - T + t ? (probs ? 0.0f : -INFINITY)
                                                             : (float)gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
}

/* Every combination of finite, NaN, +Inf and -Inf at one position, test
 * (a) against reference (b), in blk.1.kq (where a reference -inf is a
 * masked score) and in blk.1.kq_softmax (where it cannot be), with and
 * without an oracle that holds the reference's values: the table of
 * compare.h. A finite pair there is the reference's own value. */
static void test_judge_nonfinite_table(void **state)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    enum { H = 4, T = 3, NKV = JPOS0 + T, N = H * T * NKV };
    enum { OK, DIV, BRK };
    static const int want_kq[4][4] = {
        /* test:  finite NaN  +Inf -Inf      reference: */
        {OK, DIV, DIV, DIV},              /* finite */
        {BRK, BRK, BRK, BRK},             /* NaN */
        {BRK, BRK, BRK, BRK},             /* +Inf */
        {DIV, DIV, DIV, OK},              /* -Inf: a masked score */
    };
    const int64_t shape[3] = {H, T, NKV};
    const int at = (2 * T + 1) * NKV + 3; /* head 2, token 1, key 3: not masked */
    float ref[N], test[N];
    double wide[N];
    for (int probs = 0; probs < 2; probs++)
        for (int b = 0; b < 4; b++)
            for (int a = 0; a < 4; a++)
                for (int with = 0; with < 2; with++) {
                    scores(ref, H, T, NKV, probs, 20);
                    const float v[4] = {ref[at], NAN, INFINITY, -INFINITY};
                    memcpy(test, ref, sizeof test);
                    test[at] = v[a], ref[at] = v[b];
                    for (int i = 0; i < N; i++) wide[i] = ref[i];
                    int want = want_kq[b][a];
                    if (probs && b == 3) want = BRK; /* no -inf in probabilities */
                    struct dv_cmp_row w;
                    row_init(&w, p, probs ? "blk.1.kq_softmax" : "blk.1.kq", 1,
                             probs ? "softmax" : "kq", 3, shape);
                    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32,
                                 with ? wide : NULL, DV_TYPE_F64);
                    const int st[3] = {DV_ROW_OK, DV_ROW_DIVERGED, DV_ROW_BROKEN};
                    if (w.status != st[want])
                        fail_msg("%s: test %g, reference %g, oracle %d: %s, expected %s",
                                 w.name, v[a], v[b], with, dv_row_status_name(w.status),
                                 dv_row_status_name(st[want]));
                    const struct dv_cmp_where *where = want == BRK ? &w.broken_at : &w.bad_at;
                    if (want == OK) {
                        assert_int_equal(w.bad_at.flat, -1);
                        assert_true(w.ratio == 0);
                        continue;
                    }
                    if (want == DIV) {
                        assert_true(isinf(w.ratio) && w.ratio > 0);
                        assert_int_equal(w.m.mismatch, 1);
                    } else {
                        assert_int_equal(w.broken, DV_BROKEN_REF);
                        assert_int_equal(w.n_broken, 1);
                    }
                    assert_int_equal(where->flat, at);
                    assert_int_equal(where->head, 2);
                    assert_int_equal(where->token, 1);
                    assert_int_equal(where->pos, JPOS0 + 1);
                    assert_int_equal(where->key, 3);
                }
    dv_policy_free(p);
}

/* The oracle must be finite where the reference is, and -inf where it
 * is: NaN (or +Inf, or -inf in the probabilities) in it is broken, and a
 * -inf in one of them only is a disagreement; the test is not judged. */
static void test_judge_broken_oracle(void **state)
{
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    enum { H = 4, T = 3, NKV = JPOS0 + T, N = H * T * NKV };
    const int64_t shape[3] = {H, T, NKV};
    const int at = (3 * T + 2) * NKV + 6;     /* head 3, token 2, key 6: not masked */
    const int masked = (0 * T + 0) * NKV + 7; /* head 0, token 0, key 7 > pos0 + 0 */
    float ref[N];
    double wide[N];
    static const struct {
        bool probs;
        int pos;
        double value;
        int side;
    } c[] = {
        {false, at, NAN, DV_BROKEN_ORACLE},
        {false, at, INFINITY, DV_BROKEN_ORACLE},
        {true, at, -INFINITY, DV_BROKEN_ORACLE},
        {false, at, -INFINITY, DV_BROKEN_DISAGREE}, /* -inf, where the reference has a score */
        {false, masked, 0.5, DV_BROKEN_DISAGREE},   /* a score, where the reference has -inf */
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        scores(ref, H, T, NKV, c[k].probs, 21);
        for (int i = 0; i < N; i++) wide[i] = ref[i];
        wide[c[k].pos] = c[k].value;
        struct dv_cmp_row w;
        row_init(&w, p, c[k].probs ? "blk.0.kq_softmax" : "blk.0.kq", 0,
                 c[k].probs ? "softmax" : "kq", 3, shape);
        dv_cmp_judge(&w, &judge_cfg, JPOS0, ref, DV_TYPE_F32, ref, DV_TYPE_F32, wide,
                     DV_TYPE_F64);
        if (w.status != DV_ROW_BROKEN || w.broken != c[k].side)
            fail_msg("case %zu: %s (%s), expected broken (%s)", k, dv_row_status_name(w.status),
                     dv_broken_side_name(w.broken), dv_broken_side_name(c[k].side));
        assert_int_equal(w.n_broken, 1);
        assert_int_equal(w.broken_at.flat, c[k].pos);
        assert_true(w.broken_value == c[k].value || (isnan(c[k].value) && isnan(w.broken_value)));
        assert_non_null(strstr(w.why, "oracle"));
        if (c[k].side == DV_BROKEN_DISAGREE) {
            char want[96];
            snprintf(want, sizeof want, "(the first: oracle %g, reference %g)", c[k].value,
                     ref[c[k].pos]);
            assert_non_null(strstr(w.why, want));
        }
    }
    dv_policy_free(p);
}

/* A tensor the policy ignores: a non-finite mismatch is reported, not a
 * divergence; a broken reference is still broken (the policy speaks for
 * the test, not for the reference). */
static void test_judge_ignored(void **state)
{
    static const char pol[] = "{\"tensors\": [{\"match\": \"blk.0.q\", \"ignore\": true}]}";
    struct dv_policy *p;
    assert_int_equal(dv_policy_parse(pol, strlen(pol), "ignore.json", &p), DV_OK);
    double oracle[JN];
    float ref[JN], test[JN];
    judge_data(oracle, ref, 22);
    memcpy(test, ref, sizeof test);
    test[5] = INFINITY;
    struct dv_cmp_row w;
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, test, DV_TYPE_F32, ref, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_OK);
    assert_int_equal(w.m.mismatch, 1);
    assert_int_equal(w.bad_at.flat, 5);
    assert_string_equal(w.why, "ignored by the policy");
    q_row(&w, p);
    dv_cmp_judge(&w, &judge_cfg, JPOS0, ref, DV_TYPE_F32, test, DV_TYPE_F32, NULL, 0);
    assert_int_equal(w.status, DV_ROW_BROKEN);
    dv_policy_free(p);
}

/* dv_cmp_judge on a tensor read from the dumps gives dv_compare's row
 * for it: the same sums in the same order, so the same bits. */
static void test_judge_equals_compare(void **state)
{
    double rel = 1e-4;
    struct change ch = {.pass = 2, .name = "blk.0.ffn_up", .edit = add_noise, .arg = &rel};
    const char *path = copy_dump("judge.h5", &ch);
    struct dv_cmp_result *c = compare(path, true);
    const struct dv_cmp_row *want = expect_first(c, 2, "blk.0.ffn_up");
    struct dv_reader *a, *b, *o;
    assert_int_equal(dv_reader_open(path, &a), DV_OK);
    assert_int_equal(dv_reader_open(ref_path, &b), DV_OK);
    assert_int_equal(dv_reader_open(oracle_path, &o), DV_OK);
    int pa = dv_reader_find_pass(a, 2), pb = dv_reader_find_pass(b, 2);
    int po = dv_reader_find_pass(o, 2);
    int ta = dv_reader_find_tensor(a, pa, "blk.0.ffn_up");
    int tb = dv_reader_find_tensor(b, pb, "blk.0.ffn_up");
    int to = dv_reader_find_tensor(o, po, "blk.0.ffn_up");
    assert_true(ta >= 0 && tb >= 0 && to >= 0);
    const struct dv_reader_tensor *t = &b->passes[pb].tensors[tb];
    float *xa = malloc((size_t)t->n_elems * sizeof *xa), *xb = malloc((size_t)t->n_elems * sizeof *xb);
    double *xo = malloc((size_t)t->n_elems * sizeof *xo);
    assert_int_equal(dv_reader_read(a, pa, ta, DV_TYPE_F32, xa), DV_OK);
    assert_int_equal(dv_reader_read(b, pb, tb, DV_TYPE_F32, xb), DV_OK);
    assert_int_equal(dv_reader_read(o, po, to, DV_TYPE_F64, xo), DV_OK);
    struct dv_policy *p;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    struct dv_cmp_row w;
    row_init(&w, p, t->name, t->layer, t->op, t->n_dims, t->shape);
    dv_cmp_judge(&w, &b->cfg, b->passes[pb].pos0, xa, DV_TYPE_F32, xb, DV_TYPE_F32, xo,
                 DV_TYPE_F64);
    assert_int_equal(w.status, want->status);
    assert_true(w.ratio == want->ratio);
    assert_true(w.err_test == want->err_test && w.err_ref == want->err_ref);
    assert_true(w.limit == want->limit);
    assert_string_equal(w.why, want->why);
    assert_int_equal(w.max_at.flat, want->max_at.flat);
    assert_int_equal(w.max_at.token, want->max_at.token);
    assert_int_equal(w.max_at.pos, want->max_at.pos);
    assert_int_equal(w.max_at.col, want->max_at.col);
    assert_int_equal(w.m.n, want->m.n);
    assert_true(w.m.sum_d2 == want->m.sum_d2);
    free(xa), free(xb), free(xo);
    dv_policy_free(p);
    dv_reader_free(a);
    dv_reader_free(b);
    dv_reader_free(o);
    dv_cmp_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_copy_agrees),
        cmocka_unit_test(test_scaled_row),
        cmocka_unit_test(test_swapped_heads),
        cmocka_unit_test(test_noise_above_and_below_the_floor),
        cmocka_unit_test(test_one_nan),
        cmocka_unit_test(test_missing_extra_and_shape),
        cmocka_unit_test(test_other_tokens_are_not_compared),
        cmocka_unit_test(test_oracle_refused),
        cmocka_unit_test(test_leaked_mask),
        cmocka_unit_test(test_declared_arithmetic),
        cmocka_unit_test(test_oracle_arithmetic_and_exact),
        cmocka_unit_test(test_all_nan),
        cmocka_unit_test(test_where_format),
        cmocka_unit_test(test_judge_identical),
        cmocka_unit_test(test_judge_noise_with_oracle),
        cmocka_unit_test(test_judge_nan),
        cmocka_unit_test(test_judge_fixed_limits),
        cmocka_unit_test(test_judge_masked_scores),
        cmocka_unit_test(test_judge_nonfinite_table),
        cmocka_unit_test(test_judge_broken_oracle),
        cmocka_unit_test(test_judge_ignored),
        cmocka_unit_test(test_judge_equals_compare),
    };
    return cmocka_run_group_tests(tests, setup, tu_group_teardown);
}
