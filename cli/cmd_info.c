/* cmd_info.c - `diverge info FILE`: a GGUF model's metadata, config and
 * tensor table, or a dump's attributes and tensors (info_dump.c). */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"

/* s's first max bytes into out[cap] (cap >= 4 max + 1), quotes,
 * backslashes and control bytes escaped, so that a crafted file's strings
 * never reach the terminal as escape sequences. Returns whether s was
 * longer than max. */
static bool escape_str(char *out, size_t cap, struct dv_gguf_str s, size_t max)
{
    size_t n = s.len < max ? (size_t)s.len : max, o = 0;
    for (size_t i = 0; i < n && o + 5 <= cap; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch == '"' || ch == '\\') o += (size_t)snprintf(out + o, cap - o, "\\%c", ch);
        else if (ch < 32 || ch == 127) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else out[o++] = (char)ch;
    }
    out[o] = '\0';
    return n < s.len;
}

/* Print s quoted and escaped, at most max (<= 80) bytes of it. */
static void put_str(struct dv_gguf_str s, size_t max)
{
    char buf[4 * 80 + 1];
    bool cut = escape_str(buf, sizeof buf, s, max);
    printf("\"%s\"%s", buf, cut ? "..." : "");
}

static void put_scalar_elem(int type, const uint8_t *p)
{
    uint64_t u = 0;
    int64_t i = 0;
    switch (type) {
    case DV_GGUF_UINT8: case DV_GGUF_BOOL: printf("%u", p[0]); return;
    case DV_GGUF_INT8: printf("%d", (int8_t)p[0]); return;
    case DV_GGUF_UINT16: memcpy(&u, p, 2); printf("%" PRIu64, u); return;
    case DV_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); printf("%d", v); return; }
    case DV_GGUF_UINT32: memcpy(&u, p, 4); printf("%" PRIu64, u); return;
    case DV_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); printf("%d", v); return; }
    case DV_GGUF_UINT64: memcpy(&u, p, 8); printf("%" PRIu64, u); return;
    case DV_GGUF_INT64: memcpy(&i, p, 8); printf("%" PRId64, i); return;
    case DV_GGUF_FLOAT32: { float f; memcpy(&f, p, 4); printf("%g", f); return; }
    case DV_GGUF_FLOAT64: { double f; memcpy(&f, p, 8); printf("%g", f); return; }
    default: printf("?");
    }
}

static size_t scalar_size(int type)
{
    static const size_t sz[DV_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type >= 0 && type < DV_GGUF_VTYPE_COUNT ? sz[type] : 0;
}

static void put_value(const struct dv_gguf_value *v)
{
    enum { SHOW = 6 };
    switch (v->type) {
    case DV_GGUF_STRING: put_str(v->v.str, 80); return;
    case DV_GGUF_FLOAT32: case DV_GGUF_FLOAT64: printf("%g", v->v.f64); return;
    case DV_GGUF_INT8: case DV_GGUF_INT16: case DV_GGUF_INT32: case DV_GGUF_INT64:
        printf("%" PRId64, v->v.i64); return;
    case DV_GGUF_BOOL: printf(v->v.u64 ? "true" : "false"); return;
    case DV_GGUF_ARRAY: break;
    default: printf("%" PRIu64, v->v.u64); return;
    }
    printf("[%s x %" PRIu64 "]", dv_gguf_vtype_name(v->v.arr.type), v->v.arr.n);
    uint64_t n = v->v.arr.n < SHOW ? v->v.arr.n : SHOW;
    for (uint64_t k = 0; k < n; k++) {
        printf(k ? ", " : " ");
        if (v->v.arr.type == DV_GGUF_STRING) put_str(v->v.arr.strs[k], 24);
        else if (v->v.arr.type == DV_GGUF_ARRAY) printf("[...]");
        else put_scalar_elem(v->v.arr.type, (const uint8_t *)v->v.arr.data +
                                                k * scalar_size(v->v.arr.type));
    }
    if (v->v.arr.n > SHOW) printf(", ...");
}

static void put_config(const struct dv_gguf *g)
{
    struct dv_config c;
    if (dv_config_read(g, &c) != DV_OK) {
        printf("\nconfig: not a model diverge can run (%s)\n", dv_errmsg());
        return;
    }
    printf("\nconfig (%s): d_model %lld, layers %lld, heads %lld, kv heads %lld, "
           "head_dim %lld, ffn %lld, n_rot %lld, rope %s base %g, rms_eps %g, "
           "context %lld\n", c.arch, (long long)c.d_model, (long long)c.n_layer,
           (long long)c.n_head, (long long)c.n_head_kv, (long long)c.head_dim,
           (long long)c.n_ff, (long long)c.n_rot, dv_rope_mode_name(c.rope_mode),
           c.rope_base, c.rms_eps, (long long)c.n_ctx_train);
}

static void put_tensors(const struct dv_gguf *g)
{
    printf("\n%-32s %-6s %-24s %12s %12s\n", "tensor", "type", "shape (ne)",
           "offset", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct dv_gguf_tensor *t = &g->tensors[i];
        char shape[64];
        int o = 0;
        for (uint32_t k = 0; k < t->n_dims; k++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, k ? ", %lld" : "[%lld",
                          (long long)t->ne[k]);
        snprintf(shape + o, sizeof shape - (size_t)o, t->n_dims ? "]" : "[]");
        /* the whole name (llama.cpp's limit is 63 bytes), escaped */
        char name[4 * 64 + 4];
        if (escape_str(name, sizeof name - 3, t->name, 64)) strcat(name, "...");
        printf("%-32s %-6s %-24s %12" PRIu64 " %12zu\n", name, dv_type_name(t->type), shape,
               t->offset, t->nbytes);
    }
}

/* An HDF5 file by its signature at offset 0 (where diverge and h5py put
 * it; HDF5 also allows 512, 1024, ..., which the GGUF reader then reports
 * as a bad magic). */
static bool is_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool yes = fread(b, 1, sizeof b, f) == sizeof b && !memcmp(b, sig, sizeof b);
    fclose(f);
    return yes;
}

int dv_cmd_info(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: diverge info FILE\n\n"
               "FILE.gguf: print the model's metadata, the config diverge reads\n"
               "from it, and its tensor table.\n"
               "FILE.h5 (a dump, diverge-dump(5)): print its attributes, then for\n"
               "each pass its tokens and its tensors in execution order, with\n"
               "shape, stored type, min, max, RMS and the NaN and Inf counts.\n"
               "The kind of file is told by its contents, not its name.\n");
        return DV_EXIT_OK;
    }
    if (argc != 2) return dv_usage_error("info", "give one FILE");
    if (is_hdf5(argv[1])) return dv_info_dump(argv[1]);
    struct dv_gguf *g;
    dv_status s = dv_gguf_open(argv[1], &g);
    if (s) return dv_report(s);
    printf("%s: GGUF v%u, %" PRIu64 " metadata keys, %" PRIu64 " tensors, "
           "alignment %" PRIu64 ", data at %" PRIu64 "\n\n", argv[1], g->version,
           g->n_kv, g->n_tensors, g->alignment, g->data_offset);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        printf("  ");
        put_str(g->kv[i].key, 64);
        printf(" = ");
        put_value(&g->kv[i].value);
        putchar('\n');
    }
    put_config(g);
    put_tensors(g);
    dv_gguf_free(g);
    return DV_EXIT_OK;
}
