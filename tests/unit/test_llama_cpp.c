/*
 * test_llama_cpp.c - the llama.cpp backend.
 *
 * The node table and the layout conversions (llama_map.h) are pure
 * functions, tested on hand-made tensors: names and their layers, which
 * slot each row fills (every diverge tensor by some row), strided f32,
 * f16 and bf16 sources, the cropping, scaling and masking of the scores,
 * and the refusal (with the destination untouched) of every extent,
 * stride, size and type a node may claim wrongly.
 *
 * Then the backend itself on llama.cpp's CPU device, one thread: the
 * tensors of a 4-pass schedule are the CPU reference's, name for name and
 * in its order, within f32 reordering noise; a rewound cache (pos0 below
 * the cached tokens) equals a fresh run; what llama.cpp refuses or the
 * engine does not offer is DV_E_USAGE; the dump attributes it declares.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../common/testutil.h"
#include "fixture.h"
#include "llama_map.h"

/* ---- the table ------------------------------------------------------------- */

static void test_parse_name(void **state)
{
    (void)state;
    char stem[32];
    int layer;
    assert_true(dv_lmap_parse_name("Qcur-0", stem, sizeof stem, &layer));
    assert_string_equal(stem, "Qcur"), assert_int_equal(layer, 0);
    assert_true(dv_lmap_parse_name("kq_soft_max-31", stem, sizeof stem, &layer));
    assert_string_equal(stem, "kq_soft_max"), assert_int_equal(layer, 31);
    assert_true(dv_lmap_parse_name("result_norm", stem, sizeof stem, &layer));
    assert_string_equal(stem, "result_norm"), assert_int_equal(layer, -1);
    /* not layer numbers: a leading zero, no stem, too many digits */
    assert_true(dv_lmap_parse_name("kq-01", stem, sizeof stem, &layer));
    assert_string_equal(stem, "kq-01"), assert_int_equal(layer, -1);
    assert_true(dv_lmap_parse_name("-3", stem, sizeof stem, &layer));
    assert_int_equal(layer, -1);
    assert_true(dv_lmap_parse_name("x-1234567", stem, sizeof stem, &layer));
    assert_int_equal(layer, -1);
    /* views, empty names and stems that do not fit are not ours */
    assert_false(dv_lmap_parse_name("Qcur-0 (view)", stem, sizeof stem, &layer));
    assert_false(dv_lmap_parse_name("cache_k_l0 (view) (permuted)", stem, sizeof stem, &layer));
    assert_false(dv_lmap_parse_name("", stem, sizeof stem, &layer));
    assert_false(dv_lmap_parse_name("a_very_long_node_name_past_the_cap-3", stem, 8, &layer));
}

/* Every diverge tensor of a 3-layer model is some row's slot, each row
 * fills a distinct (layer, tensor) and the slots are in emission order. */
static void test_rows_cover_every_tensor(void **state)
{
    (void)state;
    enum { L = 3 };
    int n_rows;
    const struct dv_lmap_row *r = dv_lmap_rows(&n_rows);
    assert_true(n_rows >= DV_LT_COUNT + DV_GT_COUNT);
    int hits[L * DV_LT_COUNT + DV_GT_COUNT] = {0};
    assert_int_equal(dv_lmap_n_slots(L), L * DV_LT_COUNT + DV_GT_COUNT);
    for (int i = 0; i < n_rows; i++) {
        assert_true(r[i].stem[0] && r[i].op_name[0]);
        assert_true(r[i].layout >= 0 && r[i].layout < DV_LMAP_LAYOUT_COUNT);
        for (int layer = -1; layer < L + 1; layer++) {
            int slot = dv_lmap_row_slot(&r[i], L, layer);
            if (slot < 0) continue;
            assert_true(slot < dv_lmap_n_slots(L));
            hits[slot]++;
        }
    }
    for (int s = 0; s < dv_lmap_n_slots(L); s++) assert_true(hits[s] >= 1);
    /* emission order: blk.0.attn_in first, logits last */
    assert_int_equal(dv_lmap_slot(L, 0, DV_LT_ATTN_IN), 0);
    assert_int_equal(dv_lmap_slot(L, -1, DV_GT_LOGITS), dv_lmap_n_slots(L) - 1);
    assert_true(dv_lmap_slot(L, 1, DV_LT_Q_ROPE) < dv_lmap_slot(L, 1, DV_LT_KQ));
}

static const struct dv_lmap_row *row(const char *stem, int op, int scope)
{
    int n;
    const struct dv_lmap_row *r = dv_lmap_rows(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].stem, stem) && r[i].ggml_op == op && r[i].scope == scope) return &r[i];
    return NULL;
}

static void test_row_slots(void **state)
{
    (void)state;
    const struct dv_lmap_row *next = row("l_out", GGML_OP_ADD, DV_LMAP_NEXT);
    const struct dv_lmap_row *out = row("l_out", GGML_OP_ADD, DV_LMAP_LAYER);
    const struct dv_lmap_row *embd = row("embd", GGML_OP_GET_ROWS, DV_LMAP_FIRST);
    const struct dv_lmap_row *logits = row("result_output", GGML_OP_MUL_MAT, DV_LMAP_GLOBAL);
    const struct dv_lmap_row *qrope = row("Qcur", GGML_OP_ROPE, DV_LMAP_LAYER);
    assert_non_null(next), assert_non_null(out), assert_non_null(embd);
    assert_non_null(logits), assert_non_null(qrope);
    assert_int_equal(qrope->which, DV_LT_Q_ROPE);
    assert_int_equal(qrope->layout, DV_LMAP_HEADS);
    assert_int_equal(dv_lmap_row_slot(next, 4, 1), dv_lmap_slot(4, 2, DV_LT_ATTN_IN));
    assert_int_equal(dv_lmap_row_slot(next, 4, 3), -1); /* no layer 4 */
    assert_int_equal(dv_lmap_row_slot(out, 4, 3), dv_lmap_slot(4, 3, DV_LT_OUT));
    assert_int_equal(dv_lmap_row_slot(out, 4, 4), -1);
    assert_int_equal(dv_lmap_row_slot(out, 4, -1), -1);
    assert_int_equal(dv_lmap_row_slot(embd, 4, -1), 0);
    assert_int_equal(dv_lmap_row_slot(embd, 4, 0), -1); /* "embd-0" is not it */
    assert_int_equal(dv_lmap_row_slot(logits, 4, -1), dv_lmap_n_slots(4) - 1);
    assert_int_equal(dv_lmap_row_slot(logits, 4, 2), -1);
    /* the MUL_MAT and the ROPE named Qcur are two tensors */
    const struct dv_lmap_row *q = row("Qcur", GGML_OP_MUL_MAT, DV_LMAP_LAYER);
    assert_non_null(q);
    assert_int_equal(q->which, DV_LT_Q);
    assert_null(row("Qcur", GGML_OP_RESHAPE, DV_LMAP_LAYER));
}

/* ---- conversions --------------------------------------------------------------- */

#define SENTINEL 1234.5f

/* The f16 bits of an integer 0 <= v < 2048 (all exact in f16). */
static uint16_t f16_of_int(int v)
{
    if (v == 0) return 0;
    int e = 0;
    while ((v >> (e + 1)) != 0) e++;
    return (uint16_t)((e + 15) << 10 | ((v << (10 - e)) & 0x3ff));
}

/* f16 to f32 by building the f32 bits (another route than the library's
 * ldexp): subnormals are normalized, NaN payloads kept. */
static float f16_ref(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 31) {
        bits = sign | 0x7f800000u | m << 13;
    } else if (e) {
        bits = sign | (e + 112) << 23 | m << 13;
    } else if (!m) {
        bits = sign;
    } else {
        uint32_t k = 0;
        while (!(m & 0x400)) m <<= 1, k++;
        bits = sign | (113 - k) << 23 | (m & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void fill_sentinel(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = SENTINEL;
}

/* ROWS from a source whose rows are padded: ne [3, 2], nb [4, 20]. */
static void test_rows_strided(void **state)
{
    (void)state;
    float src[10];
    for (int i = 0; i < 10; i++) src[i] = (float)i;
    struct dv_lmap_src s = {.type = DV_TYPE_F32, .ne = {3, 2, 1, 1}, .nb = {4, 20, 40, 40},
                            .data = src, .nbytes = sizeof src};
    struct dv_lmap_geom g = {.T = 2, .inner = 3};
    float dst[7];
    fill_sentinel(dst, 7);
    assert_int_equal(dv_lmap_out_elems(DV_LMAP_ROWS, &g), 6);
    assert_int_equal(dv_lmap_convert(&s, DV_LMAP_ROWS, &g, dst), DV_OK);
    const float want[6] = {0, 1, 2, 5, 6, 7};
    assert_memory_equal(dst, want, sizeof want);
    assert_true(dst[6] == SENTINEL);
}

/* HEADS from a permuted view (heads and tokens swapped in memory), f16. */
static void test_heads_permuted_f16(void **state)
{
    (void)state;
    enum { HD = 2, NH = 3, T = 2 };
    /* memory order [T' = heads][tokens][hd]: element (i, h, t) at
     * (h * T + t) * HD + i, value 100 t + 10 h + i */
    uint16_t mem[HD * NH * T];
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < HD; i++) mem[(h * T + t) * HD + i] = f16_of_int(100 * t + 10 * h + i);
    struct dv_lmap_src s = {.type = DV_TYPE_F16, .ne = {HD, NH, T, 1},
                            .nb = {2, 2 * HD * T, 2 * HD, 2 * HD * NH * T},
                            .data = mem, .nbytes = sizeof mem};
    struct dv_lmap_geom g = {.T = T, .hd = HD, .heads = NH};
    float dst[HD * NH * T];
    assert_int_equal(dv_lmap_convert(&s, DV_LMAP_HEADS, &g, dst), DV_OK);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < HD; i++)
                assert_true(dst[(t * NH + h) * HD + i] == (float)(100 * t + 10 * h + i));
}

/* SCORES: a cache padded to 8 cells, pos0 2, 3 queries, 2 heads: cropped
 * to 5 keys, scaled, and -inf after each query's position. */
static void test_scores_crop_scale_mask(void **state)
{
    (void)state;
    enum { KV = 8, T = 3, H = 2, POS0 = 2, N = POS0 + T };
    float src[KV * T * H];
    for (int i = 0; i < KV * T * H; i++) src[i] = (float)(i + 1);
    struct dv_lmap_src s = {.type = DV_TYPE_F32, .ne = {KV, T, H, 1},
                            .nb = {4, 4 * KV, 4 * KV * T, 4 * KV * T * H},
                            .data = src, .nbytes = sizeof src};
    struct dv_lmap_geom g = {.T = T, .pos0 = POS0, .heads = H, .kq_scale = 0.25f};
    float dst[H * T * N];
    assert_int_equal(dv_lmap_out_elems(DV_LMAP_SCORES, &g), H * T * N);
    assert_int_equal(dv_lmap_convert(&s, DV_LMAP_SCORES, &g, dst), DV_OK);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < N; j++) {
                const float got = dst[(h * T + t) * N + j];
                if (j > POS0 + t) assert_true(isinf(got) && got < 0);
                else assert_true(got == src[(h * T + t) * KV + j] * 0.25f);
            }
    /* PROBS: the same crop, values as they are (bf16 source) */
    uint16_t b[KV * T * H];
    for (int i = 0; i < KV * T * H; i++) {
        float v = (float)i / 64;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        b[i] = (uint16_t)(bits >> 16); /* i/64 is exact in bf16 */
    }
    s.type = DV_TYPE_BF16, s.data = b, s.nbytes = sizeof b;
    for (int i = 0; i < 4; i++) s.nb[i] /= 2;
    assert_int_equal(dv_lmap_convert(&s, DV_LMAP_PROBS, &g, dst), DV_OK);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < N; j++)
                assert_true(dst[(h * T + t) * N + j] == (float)((h * T + t) * KV + j) / 64);
}

/* Every claim a node can get wrong is refused and nothing is written. */
static void test_convert_refuses(void **state)
{
    (void)state;
    float src[64] = {0};
    const struct dv_lmap_src good = {.type = DV_TYPE_F32, .ne = {4, 2, 1, 1},
                                     .nb = {4, 16, 32, 32}, .data = src, .nbytes = 32};
    const struct dv_lmap_geom g = {.T = 2, .inner = 4, .hd = 2, .heads = 2};
    float dst[16];
    struct dv_lmap_src s = good;
    fill_sentinel(dst, 16);
    assert_int_equal(dv_lmap_convert(&s, DV_LMAP_ROWS, &g, dst), DV_OK);
    struct dv_lmap_src bad[8];
    for (int i = 0; i < 8; i++) bad[i] = good;
    bad[0].ne[1] = 3;                 /* a token too many */
    bad[1].ne[0] = 5;                 /* a wider row */
    bad[2].ne[2] = 2;                 /* an extra dimension */
    bad[3].nb[0] = 2;                 /* element stride of f32 must be 4 */
    bad[4].nbytes = 31;               /* the last element is outside */
    bad[5].type = DV_TYPE_Q8_0;       /* not a float type */
    bad[6].nb[1] = SIZE_MAX - 8;      /* strides that overflow */
    bad[7].data = NULL;
    static const char *const says[8] = {"ne [4, 3, 1, 1] where [4, 2, 1, 1]", "ne [5, 2",
                                        "ne [4, 2, 2, 1]", "element stride 2",
                                        "reach byte 32 of 31", "type q8_0", "overflow",
                                        "reach byte"};
    for (int i = 0; i < 8; i++) {
        fill_sentinel(dst, 16);
        assert_int_equal(dv_lmap_convert(&bad[i], DV_LMAP_ROWS, &g, dst), DV_E_RUNTIME);
        for (int k = 0; k < 16; k++) assert_true(dst[k] == SENTINEL);
        if (!strstr(dv_errmsg(), says[i])) fail_msg("case %d: '%s'", i, dv_errmsg());
    }
    /* the cropped layouts: fewer keys than pos0 + T, or absurdly many */
    const struct dv_lmap_geom gs = {.T = 2, .pos0 = 3, .heads = 1, .kq_scale = 1};
    struct dv_lmap_src k = {.type = DV_TYPE_F32, .ne = {4, 2, 1, 1}, .nb = {4, 16, 32, 32},
                            .data = src, .nbytes = sizeof src};
    assert_int_equal(dv_lmap_convert(&k, DV_LMAP_SCORES, &gs, dst), DV_E_RUNTIME);
    assert_non_null(strstr(dv_errmsg(), ">= 5"));
    k.ne[0] = ((int64_t)1 << 24) + 1;
    assert_int_equal(dv_lmap_convert(&k, DV_LMAP_PROBS, &gs, dst), DV_E_RUNTIME);
    assert_int_equal(dv_lmap_convert(&good, DV_LMAP_LAYOUT_COUNT, &g, dst), DV_E_RUNTIME);
}

/* Known half-precision values, then every bit pattern against f16_ref. */
static void test_f16_exact(void **state)
{
    (void)state;
    static const struct { uint16_t h; float f; } known[] = {
        {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x7bff, 65504.0f}, {0x0001, 0x1p-24f},
        {0x03ff, 0x3ffp-24f}, {0x0400, 0x1p-14f}, {0x3555, 0x1.554p-2f},
        {0x7c00, INFINITY}, {0xfc00, -INFINITY}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        assert_true(dv_lmap_f16(known[i].h) == known[i].f);
    assert_true(signbit(dv_lmap_f16(0x8000)) && dv_lmap_f16(0x8000) == 0);
    assert_true(isnan(dv_lmap_f16(0x7e00)) && isnan(dv_lmap_f16(0xfc01)));
    assert_int_equal(f16_of_int(1000), 0x63d0);
    for (uint32_t h = 0; h < 65536; h++) {
        const float want = f16_ref((uint16_t)h), got = dv_lmap_f16((uint16_t)h);
        if (isnan(want)) assert_true(isnan(got));
        else assert_memory_equal(&got, &want, 4); /* signed zeros too */
    }
}

/* ---- the backend on llama.cpp's CPU ------------------------------------------------ */

static char *tmp;
static const int32_t toks13[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
static const int sched4[4] = {6, 5, 1, 1};
static const struct dv_engine_opts on_cpu = {.device = "CPU", .n_threads = 1};

static int setup(void **state)
{
    (void)state;
    tmp = tu_tmpdir();
    return tmp && !dv_fixture_write("tiny-f32", tu_path(tmp, "tiny-f32.gguf")) &&
                   !dv_fixture_write("small-f32", tu_path(tmp, "small-f32.gguf"))
               ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmdir(tmp);
    return 0;
}

/* The reference's tensors, name for name and in order; llama.cpp does the
 * same f32 arithmetic in another order, so they agree to rounding: nmse
 * about 1e-13 (seen); a wrong layout, scale or mask gives nmse near 1. */
static void test_matches_reference(void **state)
{
    (void)state;
    struct tu_collect a = {0}, b = {0};
    const char *path = tu_path(tmp, "tiny-f32.gguf");
    assert_int_equal(tu_run_with(path, DV_BACKEND_LLAMA_CPP, &on_cpu, toks13, sched4, 4, &a),
                     DV_OK);
    assert_int_equal(tu_run(path, DV_BACKEND_CPU, toks13, sched4, 4, &b), DV_OK);
    assert_int_equal(a.n, 4 * dv_tensors_per_pass(2));
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        assert_string_equal(a.t[i].name, b.t[i].name);
        assert_int_equal(a.t[i].pass, b.t[i].pass);
        assert_int_equal(a.t[i].order, b.t[i].order);
        assert_int_equal(a.t[i].op, b.t[i].op);
        assert_int_equal(a.t[i].n, b.t[i].n);
        const double e = tu_nmse(a.t[i].v, b.t[i].v, a.t[i].n);
        if (!(e < 1e-10)) fail_msg("pass %d %s: nmse %g", a.t[i].pass, a.t[i].name, e);
    }
    tu_collect_free(&a);
    tu_collect_free(&b);
}

/* logits of every position of every pass of e's last... into out[n][V] */
static void run_logits(struct dv_engine *e, const int32_t *t, int n, int pos0, double *out,
                       int V)
{
    assert_int_equal(dv_engine_forward(e, t, n, pos0, NULL), DV_OK);
    for (int i = 0; i < n; i++) assert_int_equal(dv_engine_logits(e, i, out + i * V), DV_OK);
}

/* A pass below the cached tokens overwrites them (llama_memory_seq_rm):
 * 6 tokens, then 3 others at pos0 3, is a run of 0 1 2 and the others;
 * and a reset engine repeats itself bit for bit. */
static void test_rewind(void **state)
{
    (void)state;
    struct dv_model *m;
    assert_int_equal(dv_model_open(tu_path(tmp, "tiny-f32.gguf"), &m), DV_OK);
    const int V = (int)m->cfg.n_vocab;
    struct dv_engine *e;
    struct dv_engine_opts o = on_cpu;
    o.n_ctx = 8, o.n_batch = 6;
    assert_int_equal(dv_engine_open(m, DV_BACKEND_LLAMA_CPP, &o, &e), DV_OK);
    double *x = malloc(6 * (size_t)V * sizeof *x), *y = malloc(6 * (size_t)V * sizeof *y);
    const int32_t first[6] = {1, 20, 30, 40, 50, 60}, other[3] = {70, 80, 90};
    const int32_t fresh[6] = {1, 20, 30, 70, 80, 90};
    run_logits(e, first, 6, 0, x, V);
    run_logits(e, other, 3, 3, x, V);
    dv_engine_reset(e);
    run_logits(e, fresh, 6, 0, y, V);
    /* positions 3..5: the same math on other batch shapes, f32 rounding */
    assert_true(tu_nmse(x, y + 3 * V, 3 * (size_t)V) < 1e-10);
    dv_engine_reset(e);
    run_logits(e, fresh, 6, 0, x, V);
    assert_memory_equal(x, y, 6 * (size_t)V * sizeof *x);
    free(x), free(y);
    dv_engine_free(e);
    dv_model_free(m);
}

static dv_status try_open(const char *model, const struct dv_engine_opts *extra)
{
    struct dv_model *m;
    if (dv_model_open(tu_path(tmp, model), &m)) return DV_E_INPUT;
    struct dv_engine_opts o = *extra;
    o.n_ctx = 16, o.n_batch = 4;
    struct dv_engine *e = NULL;
    dv_status s = dv_engine_open(m, DV_BACKEND_LLAMA_CPP, &o, &e);
    dv_engine_free(e);
    dv_model_free(m);
    return s;
}

static void test_refusals(void **state)
{
    (void)state;
    const char *tiny = "tiny-f32.gguf", *small = "small-f32.gguf";
    struct dv_engine_opts o = on_cpu;
    o.kv_type = DV_TYPE_Q8_0; /* quantized V needs flash attention */
    assert_int_equal(try_open(small, &o), DV_E_USAGE);
    assert_non_null(strstr(dv_errmsg(), "flash_attn"));
    o.flash_attn = 1;
    if (try_open(small, &o)) fail_msg("%s", dv_errmsg());
    /* q8_0 blocks of 32 do not divide tiny's heads of 16 */
    assert_int_equal(try_open(tiny, &o), DV_E_USAGE);
    assert_non_null(strstr(dv_errmsg(), "does not divide"));
    o = on_cpu, o.kv_type = DV_TYPE_F64;
    assert_int_equal(try_open(tiny, &o), DV_E_USAGE);
    o = on_cpu, o.gpu_layers = 1; /* nothing to offload to */
    assert_int_equal(try_open(tiny, &o), DV_E_USAGE);
    o = on_cpu, o.inject = 1;
    assert_int_equal(try_open(tiny, &o), DV_E_USAGE);
    o = on_cpu, o.device = "no-such-device";
    assert_int_equal(try_open(tiny, &o), DV_E_USAGE);
    assert_non_null(strstr(dv_errmsg(), "CPU ("));
}

/* Flash attention: kq and kq_softmax are inside one fused node and are
 * not handed out; attn_out is (its reshape). */
static void test_flash_attn(void **state)
{
    (void)state;
    struct tu_collect a = {0};
    struct dv_engine_opts o = on_cpu;
    o.flash_attn = 1;
    assert_int_equal(tu_run_with(tu_path(tmp, "tiny-f32.gguf"), DV_BACKEND_LLAMA_CPP, &o,
                                 toks13, sched4, 4, &a), DV_OK);
    assert_int_equal(a.n, 4 * (dv_tensors_per_pass(2) - 2 * 2));
    assert_null(tu_find(&a, 0, "blk.0.kq"));
    assert_null(tu_find(&a, 3, "blk.1.kq_softmax"));
    assert_non_null(tu_find(&a, 1, "blk.1.attn_out"));
    tu_collect_free(&a);
}

static const struct dv_backend_attr *attr(const struct dv_backend_attr *a, int n,
                                          const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(a[i].key, key)) return &a[i];
    return NULL;
}

static void test_attrs(void **state)
{
    (void)state;
    struct dv_model *m;
    assert_int_equal(dv_model_open(tu_path(tmp, "tiny-f32.gguf"), &m), DV_OK);
    struct dv_engine *e;
    struct dv_engine_opts o = on_cpu;
    o.n_ctx = 4, o.n_batch = 4, o.kv_type = DV_TYPE_F16;
    assert_int_equal(dv_engine_open(m, DV_BACKEND_LLAMA_CPP, &o, &e), DV_OK);
    int n;
    const struct dv_backend_attr *a = dv_engine_attrs(e, &n);
    const char *want[][2] = {{"ggml_device", "CPU"}, {"ggml_backend", "CPU"},
                             {"llama_cpp_type_k", "f16"}, {"llama_cpp_type_v", "f16"},
                             {"llama_cpp_flash_attn", "off"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct dv_backend_attr *x = attr(a, n, want[i][0]);
        assert_non_null(x);
        assert_int_equal(x->kind, DV_BATTR_STR);
        assert_string_equal(x->str, want[i][1]);
    }
    const struct dv_backend_attr *ver = attr(a, n, "ggml_version"), *th = attr(a, n, "llama_cpp_n_threads");
    assert_non_null(ver), assert_non_null(th);
    assert_true(ver->str[0] >= '0' && ver->str[0] <= '9');
    assert_int_equal(th->i, 1);
    assert_null(attr(a, n, "llama_cpp_rope_base_override"));
    dv_engine_free(e);
    dv_model_free(m);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_rows_cover_every_tensor),
        cmocka_unit_test(test_row_slots),
        cmocka_unit_test(test_rows_strided),
        cmocka_unit_test(test_heads_permuted_f16),
        cmocka_unit_test(test_scores_crop_scale_mask),
        cmocka_unit_test(test_convert_refuses),
        cmocka_unit_test(test_f16_exact),
    };
    const struct CMUnitTest backend[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_rewind),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_flash_attn),
        cmocka_unit_test(test_attrs),
    };
    int rc = cmocka_run_group_tests_name("llama_map", pure, NULL, NULL);
    return rc | cmocka_run_group_tests_name("llama_cpp backend", backend, setup, teardown);
}
