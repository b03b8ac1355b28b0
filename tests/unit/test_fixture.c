/*
 * test_fixture.c - the fixture generator and the llama2.c importer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../common/testutil.h"
#include "gguf.h"
#include "vocab.h"


static bool same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        same = x == y;
        if (x == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Generated twice, byte-identical, for every type. */
static void test_deterministic(void **state)
{
    const char *types[] = {"tiny",      "tiny-f16",   "tiny-q8_0", "tiny-q4_0",
                           "tiny-q4_k", "small-q4_k", "small-q6_k"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        assert_int_equal(dv_fixture_write(types[i], tu_path(tu_tmp, "a.gguf")), DV_OK);
        assert_int_equal(dv_fixture_write(types[i], tu_path(tu_tmp, "b.gguf")), DV_OK);
        assert_true(same_bytes(tu_path(tu_tmp, "a.gguf"), tu_path(tu_tmp, "b.gguf")));
    }
}

static void test_names(void **state)
{
    const struct dv_fixture_spec *sp;
    int t;
    assert_int_equal(dv_fixture_parse("small-q4_k", &sp, &t), DV_OK);
    assert_string_equal(sp->name, "small");
    assert_int_equal(t, DV_TYPE_Q4_K);
    assert_int_equal(dv_fixture_parse("tinyllama-shape-q8_0", &sp, &t), DV_OK);
    assert_int_equal(sp->n_layer, 22);
    assert_int_equal(t, DV_TYPE_Q8_0);
    assert_int_equal(dv_fixture_parse("tiny-q6_k", &sp, &t), DV_OK);
    assert_int_equal(t, DV_TYPE_Q6_K);
    assert_int_equal(dv_fixture_parse("tiny-q5_k", &sp, &t), DV_E_USAGE);
    assert_int_equal(dv_fixture_parse("huge", &sp, &t), DV_E_USAGE);
    assert_int_equal(dv_fixture_parse("tinyx", &sp, &t), DV_E_USAGE);
}

/* Types as asked, with the documented fallback for rows that do not split
 * into blocks: small's ffn_down rows are 704 long, not a multiple of 256. */
static void test_types_and_shapes(void **state)
{
    const char *p = tu_path(tu_tmp, "s.gguf");
    assert_int_equal(dv_fixture_write("small-q4_k", p), DV_OK);
    struct dv_model *m;
    assert_int_equal(dv_model_open(p, &m), DV_OK);
    assert_int_equal(m->layers[0].wq->type, DV_TYPE_Q4_K);
    assert_int_equal(m->layers[0].ffn_down->type, DV_TYPE_Q4_0);
    assert_int_equal(m->layers[0].attn_norm->type, DV_TYPE_F32);
    assert_false(m->cfg.tied);
    assert_int_equal(m->cfg.n_head_kv, 2);
    assert_non_null(m->vocab);
    assert_int_equal(dv_vocab_size(m->vocab), 2048);
    size_t n = 0;
    int32_t ids[16];
    assert_int_equal(dv_tokenize(m->vocab, "Once upon a time", 16, true, ids, 16, &n), DV_OK);
    assert_int_equal(n, 5); /* BOS + the four word pieces */
    dv_model_free(m);
    assert_int_equal(dv_fixture_write("small-q6_k", p), DV_OK);
    assert_int_equal(dv_model_open(p, &m), DV_OK);
    assert_int_equal(m->layers[0].wq->type, DV_TYPE_Q6_K);
    assert_int_equal(m->layers[0].ffn_down->type, DV_TYPE_Q8_0); /* q6_k -> q8_0 */
    dv_model_free(m);
}

static dv_status keep_rms(void *u, const struct dv_tensor_desc *d, const void *data)
{
    double *rms = u;
    if (d->layer < 0 || strcmp(strrchr(d->name, '.'), ".out") != 0) return DV_OK;
    const float *x = data;
    double ss = 0;
    int64_t n = d->shape[0] * d->shape[1];
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return DV_E_RUNTIME;
        ss += (double)x[i] * x[i];
    }
    rms[d->layer] = sqrt(ss / (double)n);
    return DV_OK;
}

/* Activations look trained: the residual RMS grows layer by layer. */
static void test_residual_growth(void **state)
{
    const char *p = tu_path(tu_tmp, "g.gguf");
    assert_int_equal(dv_fixture_write("small-q8_0", p), DV_OK);
    struct dv_model *m;
    struct dv_engine *e;
    assert_int_equal(dv_model_open(p, &m), DV_OK);
    struct dv_engine_opts o = {.n_ctx = 8};
    assert_int_equal(dv_engine_open(m, DV_BACKEND_CPU, &o, &e), DV_OK);
    double rms[6] = {0};
    struct dv_hook h = {.take = keep_rms, .user = rms};
    const int32_t toks[8] = {1, 300, 400, 500, 600, 700, 800, 900};
    assert_int_equal(dv_engine_forward(e, toks, 8, 0, &h), DV_OK);
    for (int L = 1; L < 6; L++) assert_true(rms[L] > rms[L - 1]);
    assert_true(rms[5] > 1.2 && rms[5] < 100);
    dv_engine_free(e);
    dv_model_free(m);
}

static void test_import_llama2c(void **state)
{
    char mb[512], tb[512];
    snprintf(mb, sizeof mb, "%s/data/stories260K.bin", tu_fixtures());
    snprintf(tb, sizeof tb, "%s/data/tok512.bin", tu_fixtures());
    const char *out = tu_path(tu_tmp, "st.gguf");
    assert_int_equal(dv_import_llama2c(mb, tb, out), DV_OK);
    struct dv_model *m;
    assert_int_equal(dv_model_open(out, &m), DV_OK);
    const struct dv_config *c = &m->cfg;
    assert_int_equal(c->d_model, 64);
    assert_int_equal(c->n_ff, 172);
    assert_int_equal(c->n_layer, 5);
    assert_int_equal(c->n_head, 8);
    assert_int_equal(c->n_head_kv, 4);
    assert_int_equal(c->n_vocab, 512);
    assert_true(c->tied);
    assert_string_equal(dv_vocab_token(m->vocab, 1), "<s>");
    assert_string_equal(dv_vocab_token(m->vocab, 259), "\xe2\x96\x81t");
    dv_model_free(m);
    /* the model with the wrong tokenizer or a cut file */
    assert_int_equal(dv_import_llama2c(mb, mb, out), DV_E_INPUT);
    const char *cut = tu_path(tu_tmp, "cut.bin");
    FILE *in = fopen(mb, "rb"), *o2 = fopen(cut, "wb");
    char buf[4096];
    for (int i = 0; i < 100; i++) {
        assert_int_equal(fread(buf, 1, sizeof buf, in), sizeof buf);
        fwrite(buf, 1, sizeof buf, o2);
    }
    fclose(in), fclose(o2);
    assert_int_equal(dv_import_llama2c(cut, tb, out), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), cut));
    assert_int_equal(dv_import_llama2c(tu_path(tu_tmp, "nope.bin"), tb, out), DV_E_INPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_types_and_shapes),
        cmocka_unit_test(test_residual_growth),
        cmocka_unit_test(test_import_llama2c),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
