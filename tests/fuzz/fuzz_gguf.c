/*
 * fuzz_gguf.c - any bytes as a GGUF file: the reader (core/gguf_read.c),
 * then what `diverge info` and loading a model do with it: the config
 * (core/model.c), the tokenizer (core/vocab.c), the tensor bindings, a
 * dequantized row of every tensor.
 *
 * Beyond "no crash, no leak, no UB", the reader's promises are checked:
 * every string, array and tensor it hands out lies inside the mapping,
 * tensor offsets are aligned, and a failure is one line naming the file.
 * Seeds: corpus/gguf (small fixtures and cut/patched copies of them).
 */
#include "fuzz.h"

#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "types.h"
#include "vocab.h"

static uint32_t sink; /* keeps the reads of dv_fuzz_touch() */

/* p .. p + n lies inside g's mapping. */
static bool inside(const struct dv_gguf *g, const void *p, uint64_t n)
{
    const uint8_t *b = p;
    return n == 0 || (b >= g->map && b <= g->map + g->size && n <= (uint64_t)(g->map + g->size - b));
}

static size_t vtype_size(int t)
{
    static const size_t sz[DV_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t >= 0 && t < DV_GGUF_VTYPE_COUNT ? sz[t] : 0;
}

static void walk_str(const struct dv_gguf *g, struct dv_gguf_str s)
{
    DV_FUZZ_CHECK(inside(g, s.ptr, s.len), "string of %llu bytes outside the file",
                  (unsigned long long)s.len);
    sink ^= dv_fuzz_touch(s.ptr, (size_t)s.len);
}

static void walk_value(const struct dv_gguf *g, const struct dv_gguf_value *v, int depth)
{
    DV_FUZZ_CHECK(depth <= DV_GGUF_MAX_ARRAY_DEPTH, "arrays nested %d deep", depth);
    DV_FUZZ_CHECK(v->type >= 0 && v->type < DV_GGUF_VTYPE_COUNT, "value type %d", v->type);
    if (v->type == DV_GGUF_STRING) walk_str(g, v->v.str);
    if (v->type != DV_GGUF_ARRAY) return;
    int et = v->v.arr.type;
    DV_FUZZ_CHECK(et >= 0 && et < DV_GGUF_VTYPE_COUNT, "array element type %d", et);
    for (uint64_t i = 0; et == DV_GGUF_STRING && i < v->v.arr.n; i++)
        walk_str(g, v->v.arr.strs[i]);
    for (uint64_t i = 0; et == DV_GGUF_ARRAY && i < v->v.arr.n; i++)
        walk_value(g, &v->v.arr.items[i], depth + 1);
    if (et != DV_GGUF_STRING && et != DV_GGUF_ARRAY) {
        uint64_t bytes = v->v.arr.n * vtype_size(et); /* n <= file size: no overflow */
        DV_FUZZ_CHECK(inside(g, v->v.arr.data, bytes), "array of %llu %s outside the file",
                      (unsigned long long)v->v.arr.n, dv_gguf_vtype_name(et));
        sink ^= dv_fuzz_touch(v->v.arr.data, (size_t)bytes);
    }
}

/* Everything dv_gguf_open() hands out, read once. */
static void walk(const struct dv_gguf *g)
{
    DV_FUZZ_CHECK(g->alignment > 0 && g->data_offset <= g->size, "alignment %llu, data at %llu of %zu",
                  (unsigned long long)g->alignment, (unsigned long long)g->data_offset, g->size);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        walk_str(g, g->kv[i].key);
        walk_value(g, &g->kv[i].value, 0);
        char key[256];
        struct dv_gguf_str k = g->kv[i].key;
        if (k.len < sizeof key && !memchr(k.ptr, 0, (size_t)k.len)) {
            memcpy(key, k.ptr, (size_t)k.len);
            key[k.len] = '\0';
            DV_FUZZ_CHECK(dv_gguf_find_key(g, key) == (int64_t)i, "lookup of key '%s'", key);
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct dv_gguf_tensor *t = &g->tensors[i];
        walk_str(g, t->name);
        DV_FUZZ_CHECK(t->n_dims <= DV_GGUF_MAX_DIMS && dv_type_traits(t->type),
                      "tensor with %u dims of type %d", t->n_dims, t->type);
        DV_FUZZ_CHECK(t->offset % g->alignment == 0, "tensor offset %llu misaligned",
                      (unsigned long long)t->offset);
        DV_FUZZ_CHECK(inside(g, t->data, t->nbytes), "tensor data outside the file");
        size_t row;
        if (dv_row_size(t->type, t->ne[0], &row) == DV_OK) {
            uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
            DV_FUZZ_CHECK(rows == 0 || t->nbytes / rows == row, "tensor nbytes %zu != %llu rows of %zu",
                          t->nbytes, (unsigned long long)rows, row);
        }
        /* the first bytes of each tensor, not all: big files are slow */
        sink ^= dv_fuzz_touch(t->data, t->nbytes < 4096 ? t->nbytes : 4096);
        /* names are unique (the reader rejects twins): the lookup finds this one */
        char name[256];
        if (t->name.len < sizeof name && !memchr(t->name.ptr, 0, (size_t)t->name.len)) {
            memcpy(name, t->name.ptr, (size_t)t->name.len);
            name[t->name.len] = '\0';
            DV_FUZZ_CHECK(dv_gguf_find_tensor(g, name) == t, "lookup of tensor '%s'", name);
        }
    }
}

/* The typed getters on keys a model has, whatever their stored types. */
static void getters(const struct dv_gguf *g)
{
    static const char *const keys[] = {
        "general.architecture", "general.alignment", "llama.block_count",
        "llama.rope.freq_base", "tokenizer.ggml.tokens", "tokenizer.ggml.add_bos_token",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        uint64_t u;
        int64_t x;
        double f;
        bool b;
        struct dv_gguf_str s;
        const struct dv_gguf_value *a;
        if (dv_gguf_get_u64(g, keys[i], &u, true)) dv_fuzz_check_msg(DV_E_INPUT, g->path);
        if (dv_gguf_get_i64(g, keys[i], &x, false)) dv_fuzz_check_msg(DV_E_INPUT, g->path);
        if (dv_gguf_get_f64(g, keys[i], &f, false)) dv_fuzz_check_msg(DV_E_INPUT, g->path);
        if (dv_gguf_get_bool(g, keys[i], &b, false)) dv_fuzz_check_msg(DV_E_INPUT, g->path);
        if (!dv_gguf_get_str(g, keys[i], &s, true)) walk_str(g, s);
        else dv_fuzz_check_msg(DV_E_INPUT, g->path);
        if (dv_gguf_get_arr(g, keys[i], DV_GGUF_VTYPE_COUNT, &a, false))
            dv_fuzz_check_msg(DV_E_INPUT, g->path);
    }
}

/* A vocab read from the file: tokenize a fixed text, print every piece. */
static void use_vocab(const struct dv_vocab *v)
{
    static const char text[] = "Hello world, \xe2\x96\x81 caf\xc3\xa9 \xff<s>";
    int32_t ids[256];
    size_t n = 0;
    int32_t V = dv_vocab_size(v);
    DV_FUZZ_CHECK(V > 0, "vocab of %d tokens", V);
    dv_status s = dv_tokenize(v, text, sizeof text - 1, true, ids, 256, &n);
    DV_FUZZ_CHECK(s == DV_OK || (s == DV_E_USAGE && n > 256), "dv_tokenize: %s", dv_errmsg());
    for (size_t i = 0; i < n && i < 256; i++)
        DV_FUZZ_CHECK(ids[i] >= 0 && ids[i] < V, "token id %d of %d", ids[i], V);
    char piece[64];
    for (int32_t id = 0; id < V && id < 4096; id++) {
        int len = dv_vocab_piece(v, id, piece, sizeof piece);
        DV_FUZZ_CHECK(len >= 0, "no piece for id %d of %d", id, V);
        DV_FUZZ_CHECK(strlen(piece) <= (size_t)len, "piece longer than its length");
        DV_FUZZ_CHECK(dv_vocab_token(v, id), "no token text for id %d", id);
    }
    DV_FUZZ_CHECK(dv_vocab_piece(v, V, piece, sizeof piece) == -1, "piece for id V");
    DV_FUZZ_CHECK(dv_vocab_piece(v, -1, piece, sizeof piece) == -1, "piece for id -1");
}

/* Dequantize the first row of every tensor a backend would read. */
static void use_model(const struct dv_model *m)
{
    DV_FUZZ_CHECK(m->tok_embd && m->output_norm && m->output && m->layers, "model half bound");
    sink ^= (uint32_t)dv_model_f32_bytes(m);
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const struct dv_gguf_tensor *t = &m->gguf->tensors[i];
        const struct dv_type_traits *tr = dv_type_traits(t->type);
        size_t row;
        if (!tr || !tr->dequant || t->ne[0] > (1 << 16) || dv_row_size(t->type, t->ne[0], &row) ||
            row > t->nbytes)
            continue;
        float *dst = malloc((size_t)t->ne[0] * sizeof *dst + 1);
        DV_FUZZ_CHECK(dst, "out of memory");
        DV_FUZZ_CHECK(dv_dequant_row(t->type, t->data, dst, t->ne[0]) == DV_OK,
                      "cannot dequantize a %s row the model accepted", dv_type_name(t->type));
        sink ^= dv_fuzz_touch(dst, (size_t)t->ne[0] * sizeof *dst);
        free(dst);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = dv_fuzz_file(data, size, path);
    if (fd < 0) return 0;
    /* what `diverge info` reads */
    struct dv_gguf *g;
    dv_status s = dv_gguf_open(path, &g);
    if (s) {
        DV_FUZZ_CHECK(!g, "dv_gguf_open failed but set *out");
        DV_FUZZ_CHECK(s == DV_E_INPUT || s == DV_E_NOMEM, "dv_gguf_open: %s", dv_status_name(s));
        dv_fuzz_check_msg(s, path);
    } else {
        walk(g);
        getters(g);
        struct dv_config cfg;
        if (dv_config_read(g, &cfg)) dv_fuzz_check_msg(DV_E_INPUT, path);
        struct dv_vocab *v;
        if (dv_gguf_find_key(g, "tokenizer.ggml.tokens") >= 0) {
            if (dv_vocab_load(g, &v) == DV_OK) {
                use_vocab(v);
                dv_vocab_free(v);
            } else {
                dv_fuzz_check_msg(DV_E_INPUT, path);
            }
        }
        dv_gguf_free(g);
    }
    /* what every command that runs a model does */
    struct dv_model *m;
    dv_status sm = dv_model_open(path, &m);
    if (sm == DV_OK) {
        DV_FUZZ_CHECK(s == DV_OK, "a model opens where its GGUF did not");
        use_model(m);
        if (m->vocab) use_vocab(m->vocab);
        dv_model_free(m);
    } else {
        DV_FUZZ_CHECK(!m, "dv_model_open failed but set *out");
        dv_fuzz_check_msg(sm, path);
    }
    close(fd);
    return 0;
}
