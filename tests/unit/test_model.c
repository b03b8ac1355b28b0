/*
 * test_model.c - model config and weight validation.
 *
 * Each broken model is a small GGUF written here with one thing wrong; the
 * error must be DV_E_INPUT and name the file and the key or tensor.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../common/testutil.h"
#include "gguf.h"
#include "model.h"


/* What to break in a 1-layer model d=8, 2 heads, 1 kv head, ffn 16, vocab 4. */
struct variant {
    const char *skip_key;    /* metadata key left out */
    const char *skip_tensor; /* tensor left out */
    const char *bad_tensor;  /* tensor written with ne0 + 1... as [9, ...] */
    int n_head, n_head_kv, n_rot, d;
    const char *arch;
    int q_type; /* type of attn_q */
};

static float zeros[64 * 64];

static void put_u32(struct dv_gguf_writer *w, const struct variant *v, const char *k, uint32_t x)
{
    if (!v->skip_key || strcmp(v->skip_key, k)) assert_int_equal(dv_gguf_writer_set_u32(w, k, x), DV_OK);
}

static void put_tensor(struct dv_gguf_writer *w, const struct variant *v, const char *name,
                       int64_t ne0, int64_t ne1)
{
    if (v->skip_tensor && !strcmp(v->skip_tensor, name)) return;
    if (v->bad_tensor && !strcmp(v->bad_tensor, name)) ne0 += 32;
    int64_t ne[2] = {ne0, ne1 ? ne1 : 1};
    int type = strstr(name, "attn_q") ? v->q_type : DV_TYPE_F32;
    assert_int_equal(dv_gguf_writer_add_tensor(w, name, type, ne1 ? 2 : 1, ne, zeros), DV_OK);
}

static const char *write_variant(const struct variant *v)
{
    static char path[512];
    static int k;
    snprintf(path, sizeof path, "%s/m%d.gguf", tu_tmp, k++);
    struct dv_gguf_writer *w;
    assert_int_equal(dv_gguf_writer_new(&w), DV_OK);
    if (!v->skip_key || strcmp(v->skip_key, "general.architecture"))
        assert_int_equal(dv_gguf_writer_set_str(w, "general.architecture", v->arch ? v->arch : "llama"), DV_OK);
    const int d = v->d ? v->d : 32, H = v->n_head ? v->n_head : 2;
    const int Hkv = v->n_head_kv ? v->n_head_kv : 1, hd = d / H;
    put_u32(w, v, "llama.embedding_length", (uint32_t)d);
    put_u32(w, v, "llama.block_count", 1);
    put_u32(w, v, "llama.feed_forward_length", 32);
    put_u32(w, v, "llama.attention.head_count", (uint32_t)H);
    put_u32(w, v, "llama.attention.head_count_kv", (uint32_t)Hkv);
    if (v->n_rot) put_u32(w, v, "llama.rope.dimension_count", (uint32_t)v->n_rot);
    put_tensor(w, v, "token_embd.weight", d, 4);
    put_tensor(w, v, "blk.0.attn_norm.weight", d, 0);
    put_tensor(w, v, "blk.0.attn_q.weight", d, H * hd);
    put_tensor(w, v, "blk.0.attn_k.weight", d, Hkv * hd);
    put_tensor(w, v, "blk.0.attn_v.weight", d, Hkv * hd);
    put_tensor(w, v, "blk.0.attn_output.weight", H * hd, d);
    put_tensor(w, v, "blk.0.ffn_norm.weight", d, 0);
    put_tensor(w, v, "blk.0.ffn_gate.weight", d, 32);
    put_tensor(w, v, "blk.0.ffn_up.weight", d, 32);
    put_tensor(w, v, "blk.0.ffn_down.weight", 32, d);
    put_tensor(w, v, "output_norm.weight", d, 0);
    assert_int_equal(dv_gguf_writer_write(w, path), DV_OK);
    dv_gguf_writer_free(w);
    return path;
}

static void expect_error(const struct variant *v, const char *needle)
{
    const char *p = write_variant(v);
    struct dv_model *m = (void *)1;
    assert_int_equal(dv_model_open(p, &m), DV_E_INPUT);
    assert_null(m);
    const char *msg = dv_errmsg();
    if (!strstr(msg, needle) || !strstr(msg, p))
        fail_msg("message '%s' lacks '%s' or the path", msg, needle);
}

static void test_valid_and_tied(void **state)
{
    struct variant v = {0};
    struct dv_model *m;
    assert_int_equal(dv_model_open(write_variant(&v), &m), DV_OK);
    assert_true(m->cfg.tied);
    assert_ptr_equal(m->output, m->tok_embd);
    assert_int_equal(m->cfg.head_dim, 16);
    assert_int_equal(m->cfg.n_rot, 16);
    assert_int_equal(m->cfg.n_vocab, 4);
    assert_int_equal(m->cfg.rope_mode, DV_ROPE_NORM);
    assert_true(m->cfg.rope_base == 10000.0);
    assert_null(m->vocab);
    dv_model_free(m);
    dv_model_free(NULL);
}

static void test_bad_configs(void **state)
{
    expect_error(&(struct variant){.skip_key = "llama.block_count"}, "llama.block_count");
    expect_error(&(struct variant){.skip_key = "general.architecture"}, "general.architecture");
    expect_error(&(struct variant){.arch = "gpt2"}, "gpt2");
    /* the file's name for it, escaped: the message stays one line */
    expect_error(&(struct variant){.arch = "ll\nama"}, "architecture 'll\\x0aama' is not");
    assert_null(strchr(dv_errmsg(), '\n'));
    expect_error(&(struct variant){.n_head = 3, .d = 32}, "head_count");     /* 32 % 3 */
    expect_error(&(struct variant){.n_head = 4, .n_head_kv = 3}, "head_count_kv");
    expect_error(&(struct variant){.n_rot = 18}, "rope.dimension_count");   /* > hd 16 */
    expect_error(&(struct variant){.n_rot = 7}, "rope.dimension_count");    /* odd */
    expect_error(&(struct variant){.skip_tensor = "blk.0.ffn_up.weight"}, "blk.0.ffn_up.weight");
    expect_error(&(struct variant){.skip_tensor = "output_norm.weight"}, "output_norm.weight");
    expect_error(&(struct variant){.bad_tensor = "blk.0.attn_k.weight"}, "blk.0.attn_k.weight");
    expect_error(&(struct variant){.bad_tensor = "blk.0.attn_output.weight"}, "attn_output");
    expect_error(&(struct variant){.q_type = DV_TYPE_I32}, "cannot dequantize");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_tied),
        cmocka_unit_test(test_bad_configs),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
