/* info_dump.c - `diverge info DUMP.h5`: attributes, passes, tensor table
 * with per-tensor statistics. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "error.h"
#include "reader.h"
#include "stats.h"
#include "types.h"

/* Token ids shown per pass before "...". */
#define SHOW_TOKENS 32

/* s in double quotes, control bytes and quotes escaped, at most max bytes. */
static void put_quoted(const char *s, size_t max)
{
    size_t n = strlen(s);
    putchar('"');
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 32 || ch == 127) printf("\\x%02x", ch);
        else putchar(ch);
    }
    printf(n > max ? "\"..." : "\"");
}

static void put_attrs(const struct dv_reader *r)
{
    int w = 0;
    for (int i = 0; i < r->n_attrs; i++) {
        int n = (int)strlen(r->attrs[i].key);
        w = n > w ? n : w;
    }
    /* the schema's attributes in its order, then the engine's own */
    int n_spec;
    const struct dv_attr_spec *spec = dv_schema_attrs(&n_spec);
    for (int k = 0; k <= n_spec; k++)
        for (int i = 0; i < r->n_attrs; i++) {
            const struct dv_reader_attr *a = &r->attrs[i];
            bool schema_key = dv_schema_attr(a->key) != NULL;
            if (k < n_spec ? strcmp(a->key, spec[k].key) : schema_key) continue;
            printf("  %-*s = ", w, a->key);
            if (a->kind == DV_ATTR_STR) put_quoted(a->str, 200);
            else if (a->kind == DV_ATTR_INT) printf("%" PRId64, a->i);
            else printf("%.9g", a->r);
            putchar('\n');
        }
    const struct dv_config *c = &r->cfg;
    printf("\nconfig (%s): d_model %lld, layers %lld, heads %lld, kv heads %lld, "
           "head_dim %lld, ffn %lld, vocab %lld\n", c->arch, (long long)c->d_model,
           (long long)c->n_layer, (long long)c->n_head, (long long)c->n_head_kv,
           (long long)c->head_dim, (long long)c->n_ff, (long long)c->n_vocab);
}

static void shape_str(const struct dv_reader_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    for (int k = 0; k < t->n_dims && o < cap; k++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", k ? ", " : "[",
                              (long long)t->shape[k]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static const char *stored_name(int bytes)
{
    return bytes == 2 ? "f16" : bytes == 8 ? "f64" : "f32";
}

/* The statistics columns of tensor t of pass p; DV_E_INPUT when its data
 * cannot be read. */
static dv_status put_stats(const struct dv_reader *r, int p, int t)
{
    int64_t n = r->passes[p].tensors[t].n_elems;
    double *x = (uint64_t)n <= SIZE_MAX / sizeof *x ? malloc((size_t)n * sizeof *x) : NULL;
    if (!x) {
        printf("  (too large to read)\n");
        return DV_OK;
    }
    dv_status s = dv_reader_read(r, p, t, DV_TYPE_F64, x);
    if (!s) {
        struct dv_stats st = dv_stats_f64(x, n);
        printf(" %11.4e %11.4e %11.4e %5" PRId64 " %5" PRId64 "\n", st.min, st.max,
               st.rms, st.n_nan, st.n_inf);
    }
    free(x);
    return s;
}

static dv_status put_pass(const struct dv_reader *r, int p)
{
    const struct dv_reader_pass *ps = &r->passes[p];
    printf("\npass %04" PRId64 "  pos0 %" PRId64 "  tokens %" PRId64 ":", ps->index,
           ps->pos0, ps->n_tokens);
    for (int64_t i = 0; i < ps->n_tokens && i < SHOW_TOKENS; i++)
        printf(" %" PRId32, ps->tokens[i]);
    printf(ps->n_tokens > SHOW_TOKENS ? " ...\n" : "\n");
    if (!ps->n_tensors) {
        printf("  (no tensors)\n");
        return DV_OK;
    }
    int wn = 6, wo = 2, ws = 5;
    char shape[96];
    for (int t = 0; t < ps->n_tensors; t++) {
        const struct dv_reader_tensor *ts = &ps->tensors[t];
        shape_str(ts, shape, sizeof shape);
        int a = (int)strlen(ts->name), b = (int)strlen(ts->op), c = (int)strlen(shape);
        wn = a > wn ? a : wn, wo = b > wo ? b : wo, ws = c > ws ? c : ws;
    }
    printf("  %5s  %-*s %5s  %-*s  %-*s  %-4s %11s %11s %11s %5s %5s\n", "order", wn,
           "tensor", "layer", wo, "op", ws, "shape", "type", "min", "max", "rms",
           "nan", "inf");
    for (int t = 0; t < ps->n_tensors; t++) {
        const struct dv_reader_tensor *ts = &ps->tensors[t];
        shape_str(ts, shape, sizeof shape);
        printf("  %5" PRId64 "  %-*s %5d  %-*s  %-*s  %-4s", ts->order, wn, ts->name,
               ts->layer, wo, ts->op, ws, shape, stored_name(ts->stored_bytes));
        fflush(stdout); /* a read error goes to stderr after this line */
        dv_status s = put_stats(r, p, t);
        if (s) {
            putchar('\n');
            return s;
        }
    }
    return DV_OK;
}

int dv_info_dump(const char *path)
{
    struct dv_reader *r;
    dv_status s = dv_reader_open_isolated(path, true, &r);
    if (s) return dv_report(s);
    int n = 0;
    for (int p = 0; p < r->n_passes; p++) n += r->passes[p].n_tensors;
    printf("%s: %s v%" PRId64 ", %d pass%s, %d tensor%s\n\n", path, DV_SCHEMA_NAME,
           dv_reader_attr(r, "schema_version")->i, r->n_passes,
           r->n_passes == 1 ? "" : "es", n, n == 1 ? "" : "s");
    put_attrs(r);
    for (int p = 0; p < r->n_passes && !s; p++) s = put_pass(r, p);
    dv_reader_free(r);
    fflush(stdout);
    return s ? dv_report(s) : DV_EXIT_OK;
}
