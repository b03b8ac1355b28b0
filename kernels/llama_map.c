/* llama_map.c - the llama.cpp node table of llama_map.h and the layout
 * conversions; pure functions, no llama.cpp library needed. */
#include "llama_map.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "types.h"

static const struct dv_lmap_row rows[] = {
#define DV_X(stem, op, scope, which, layout)                                  \
    {stem, GGML_OP_##op, #op, DV_LMAP_##scope, which, DV_LMAP_##layout},
    DV_LLAMA_MAP(DV_X)
#undef DV_X
};

const struct dv_lmap_row *dv_lmap_rows(int *n)
{
    *n = (int)(sizeof rows / sizeof rows[0]);
    return rows;
}

bool dv_lmap_parse_name(const char *name, char *stem, size_t cap, int *layer)
{
    size_t n = strlen(name);
    if (n == 0 || strchr(name, ' ')) return false; /* views: "Qcur-0 (view)" */
    const char *dash = strrchr(name, '-');
    size_t digits = dash ? strspn(dash + 1, "0123456789") : 0;
    bool numbered = dash && dash > name && digits > 0 && dash[1 + digits] == '\0' &&
                    (digits == 1 || dash[1] != '0') && digits <= 6;
    size_t len = numbered ? (size_t)(dash - name) : n;
    if (len >= cap) return false;
    memcpy(stem, name, len);
    stem[len] = '\0';
    *layer = -1;
    if (numbered) {
        int v = 0;
        for (size_t i = 0; i < digits; i++) v = v * 10 + (dash[1 + i] - '0');
        *layer = v;
    }
    return true;
}

int dv_lmap_n_slots(int n_layer) { return n_layer * DV_LT_COUNT + DV_GT_COUNT; }

int dv_lmap_slot(int n_layer, int layer, int which)
{
    return layer >= 0 ? layer * DV_LT_COUNT + which : n_layer * DV_LT_COUNT + which;
}

int dv_lmap_row_slot(const struct dv_lmap_row *r, int n_layer, int layer)
{
    switch (r->scope) {
    case DV_LMAP_LAYER:
        return layer >= 0 && layer < n_layer ? dv_lmap_slot(n_layer, layer, r->which) : -1;
    case DV_LMAP_NEXT:
        return layer >= 0 && layer + 1 < n_layer ? dv_lmap_slot(n_layer, layer + 1, r->which)
                                                 : -1;
    case DV_LMAP_FIRST: return layer < 0 && n_layer > 0 ? dv_lmap_slot(n_layer, 0, r->which) : -1;
    case DV_LMAP_GLOBAL: return layer < 0 ? dv_lmap_slot(n_layer, -1, r->which) : -1;
    default: return -1;
    }
}

float dv_lmap_f16(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 0x3ff;
    float v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexpf((float)m, -24); /* zero and subnormals */
    else v = ldexpf((float)(m | 0x400), (int)e - 25);
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits |= sign;
    if (e == 31 && m) bits |= (uint32_t)m << 13; /* keep the payload */
    memcpy(&v, &bits, 4);
    return v;
}

float dv_lmap_bf16(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* The extents ggml's ne[] must have (want[0] is the least for the cropped
 * layouts). */
static void expected_ne(int layout, const struct dv_lmap_geom *g, int64_t want[4])
{
    want[3] = 1;
    switch (layout) {
    case DV_LMAP_ROWS: want[0] = g->inner, want[1] = g->T, want[2] = 1; break;
    case DV_LMAP_HEADS: want[0] = g->hd, want[1] = g->heads, want[2] = g->T; break;
    default: want[0] = g->pos0 + g->T, want[1] = g->T, want[2] = g->heads; break;
    }
}

int64_t dv_lmap_out_elems(int layout, const struct dv_lmap_geom *g)
{
    int64_t w[4];
    expected_ne(layout, g, w);
    return w[0] * w[1] * w[2] * w[3];
}

static size_t elem_size(int type)
{
    return type == DV_TYPE_F32 ? 4 : type == DV_TYPE_F16 || type == DV_TYPE_BF16 ? 2 : 0;
}

/* Every extent and stride src claims, against what the layout needs. */
static dv_status check_src(const struct dv_lmap_src *s, int layout, const int64_t want[4])
{
    const size_t es = elem_size(s->type);
    if (!es) return dv_fail(DV_E_RUNTIME, "type %s (id %d), not f32, f16 or bf16",
                            dv_type_name(s->type), s->type);
    const bool crop = layout == DV_LMAP_SCORES || layout == DV_LMAP_PROBS;
    bool ok = crop ? s->ne[0] >= want[0] && s->ne[0] <= ((int64_t)1 << 24) : s->ne[0] == want[0];
    for (int i = 1; i < 4; i++) ok = ok && s->ne[i] == want[i];
    if (!ok)
        return dv_fail(DV_E_RUNTIME, "ne [%lld, %lld, %lld, %lld] where [%s%lld, %lld, %lld, "
                       "%lld] was expected", (long long)s->ne[0], (long long)s->ne[1],
                       (long long)s->ne[2], (long long)s->ne[3], crop ? ">= " : "",
                       (long long)want[0], (long long)want[1], (long long)want[2],
                       (long long)want[3]);
    if (s->nb[0] != es)
        return dv_fail(DV_E_RUNTIME, "element stride %zu for a %zu-byte type", s->nb[0], es);
    /* the last addressed byte, without overflow: each term is checked */
    size_t end = es;
    for (int i = 0; i < 4; i++) {
        const size_t k = (size_t)(s->ne[i] - 1);
        if (k && s->nb[i] > (SIZE_MAX - end) / k)
            return dv_fail(DV_E_RUNTIME, "strides overflow");
        end += k * s->nb[i];
    }
    if (end > s->nbytes || !s->data)
        return dv_fail(DV_E_RUNTIME, "strides [%zu, %zu, %zu, %zu] reach byte %zu of %zu",
                       s->nb[0], s->nb[1], s->nb[2], s->nb[3], end, s->nbytes);
    return DV_OK;
}

static float load(const unsigned char *p, int type)
{
    if (type == DV_TYPE_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return type == DV_TYPE_F16 ? dv_lmap_f16(h) : dv_lmap_bf16(h);
}

dv_status dv_lmap_convert(const struct dv_lmap_src *src, int layout,
                          const struct dv_lmap_geom *g, float *dst)
{
    if (layout < 0 || layout >= DV_LMAP_LAYOUT_COUNT)
        return dv_fail(DV_E_RUNTIME, "unknown layout %d", layout);
    int64_t w[4];
    expected_ne(layout, g, w);
    dv_status st = check_src(src, layout, w);
    if (st) return st;
    const unsigned char *base = src->data;
    const bool scores = layout == DV_LMAP_SCORES;
    size_t o = 0;
    for (int64_t i3 = 0; i3 < w[3]; i3++)
        for (int64_t i2 = 0; i2 < w[2]; i2++)
            for (int64_t i1 = 0; i1 < w[1]; i1++) {
                const unsigned char *row = base + (size_t)i3 * src->nb[3] +
                                           (size_t)i2 * src->nb[2] + (size_t)i1 * src->nb[1];
                for (int64_t i0 = 0; i0 < w[0]; i0++) {
                    float v = load(row + (size_t)i0 * src->nb[0], src->type);
                    /* SCORES: i0 is the key, i1 the query (at pos0 + i1) */
                    if (scores) v = i0 > g->pos0 + i1 ? -INFINITY : v * g->kq_scale;
                    dst[o++] = v;
                }
            }
    return DV_OK;
}
