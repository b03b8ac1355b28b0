/* vk_ops.c - the GPU ops and the single-op runner (vk_ops.h). */
#include "vk_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "error.h"
#include "model.h"
#include "ops.h"
#include "shaders.h"
#include "types.h"

/* Push blocks, one definition with the shaders (shaders/shared.h). */
struct dv_push_matmul { DV_PUSH_MATMUL };
struct dv_push_get_rows { DV_PUSH_GET_ROWS };
struct dv_push_rmsnorm { DV_PUSH_RMSNORM };
struct dv_push_rope { DV_PUSH_ROPE };
struct dv_push_kv_write { DV_PUSH_KV_WRITE };
struct dv_push_kq { DV_PUSH_KQ };
struct dv_push_softmax { DV_PUSH_SOFTMAX };
struct dv_push_kqv { DV_PUSH_KQV };
struct dv_push_binary { DV_PUSH_BINARY };

#define FAULT_BIT(f) (1u << DV_FAULT_##f)

/* The kernels: shader, buffers, push block, the faults built into it and
 * whether it is specialized per weight type. */
#define DV_KERNEL_LIST(X)                                                           \
    X(GET_ROWS, get_rows, 3, struct dv_push_get_rows, FAULT_BIT(Q4K_SCALE), true)   \
    X(MATMUL, matmul, 3, struct dv_push_matmul,                                     \
      FAULT_BIT(MATMUL_K_TAIL) | FAULT_BIT(F16_ACCUM) | FAULT_BIT(Q4K_SCALE), true) \
    X(MATVEC, matvec, 3, struct dv_push_matmul,                                     \
      FAULT_BIT(MATMUL_K_TAIL) | FAULT_BIT(F16_ACCUM) | FAULT_BIT(Q4K_SCALE), true) \
    X(RMSNORM, rmsnorm, 3, struct dv_push_rmsnorm, FAULT_BIT(RMSNORM_EPS), false)   \
    X(ROPE, rope, 2, struct dv_push_rope,                                           \
      FAULT_BIT(ROPE_NEOX_SWAP) | FAULT_BIT(ROPE_BASE), false)                      \
    X(KV_WRITE, kv_write, 2, struct dv_push_kv_write, FAULT_BIT(KV_STALE), false)   \
    X(KQ, kq, 3, struct dv_push_kq,                                                 \
      FAULT_BIT(MASK_NO_PAST) | FAULT_BIT(SOFTMAX_NO_SCALE) | FAULT_BIT(GQA_MAP), false) \
    X(SOFTMAX, softmax, 1, struct dv_push_softmax, 0u, false)                       \
    X(KQV, kqv, 3, struct dv_push_kqv, FAULT_BIT(GQA_MAP), false)                   \
    X(ADD, add, 3, struct dv_push_binary, 0u, false)                                \
    X(SILU_MUL, silu_mul, 3, struct dv_push_binary, 0u, false)

enum kernel_id {
#define DV_X(id, file, nb, push, faults, typed) K_##id,
    DV_KERNEL_LIST(DV_X)
#undef DV_X
    K_COUNT
};

#define DV_X(id, file, nb, push, faults, typed)                                     \
    _Static_assert(sizeof(push) % 4 == 0 && sizeof(push) <= 128, #push " size");
DV_KERNEL_LIST(DV_X)
#undef DV_X

static const struct {
    const struct dv_spirv *spv;
    int n_bufs;
    uint32_t push_size;
    uint32_t faults;
    bool typed;
} kernels[K_COUNT] = {
#define DV_X(id, file, nb, push, faults, typed) \
    [K_##id] = {&dv_spv_##file, nb, sizeof(push), faults, typed},
    DV_KERNEL_LIST(DV_X)
#undef DV_X
};

/* The kernel of every op of the op table (ops.h): an op without one here
 * (K_<op> undeclared) fails the build. A view computes nothing. */
#define K_VIEW K_COUNT
static const int op_kernel[DV_OP_COUNT] __attribute__((unused)) = {
#define DV_X(e, s, hint, ggml) [DV_OP_##e] = K_##e,
    DV_OP_LIST(DV_X)
#undef DV_X
};
#undef K_VIEW
_Static_assert(sizeof op_kernel / sizeof op_kernel[0] == DV_OP_COUNT, "one kernel per op");

/* Weight types the kernels read, in the order of the pipeline slots. */
static const int wtypes[] = {DV_TYPE_F32, DV_TYPE_F16, DV_TYPE_BF16, DV_TYPE_Q8_0,
                             DV_TYPE_Q4_0, DV_TYPE_Q4_K, DV_TYPE_Q6_K};
#define N_WTYPES (int)(sizeof wtypes / sizeof wtypes[0])

struct dv_vkops {
    struct dv_vk *vk;
    int fault;
    struct dv_vk_kernel k[K_COUNT][N_WTYPES][2]; /* [kernel][type][faulty] */
    /* matvec, per its specialization: [tokens per group - 1][x aligned][type][faulty] */
    struct dv_vk_kernel mv[DV_MV_NT][2][N_WTYPES][2];
};

static int wslot(int t)
{
    for (int i = 0; i < N_WTYPES; i++)
        if (wtypes[i] == t) return i;
    return -1;
}

bool dv_vk_weight_type_ok(int t) { return wslot(t) >= 0; }

dv_status dv_vkops_new(struct dv_vk *vk, int fault, struct dv_vkops **out)
{
    *out = NULL;
    if (fault < 0 || fault >= DV_FAULT_COUNT)
        return dv_fail(DV_E_USAGE, "vulkan: no fault number %d", fault);
    struct dv_vkops *o = calloc(1, sizeof *o);
    if (!o) return dv_fail(DV_E_NOMEM, "out of memory");
    o->vk = vk;
    o->fault = fault;
    *out = o;
    return DV_OK;
}

void dv_vkops_free(struct dv_vkops *o)
{
    if (!o) return;
    for (int k = 0; k < K_COUNT; k++)
        for (int t = 0; t < N_WTYPES; t++)
            for (int f = 0; f < 2; f++)
                if (o->k[k][t][f].pipeline) dv_vk_kernel_free(o->vk, &o->k[k][t][f]);
    struct dv_vk_kernel *mv = &o->mv[0][0][0][0];
    for (size_t i = 0; i < sizeof o->mv / sizeof *mv; i++)
        if (mv[i].pipeline) dv_vk_kernel_free(o->vk, &mv[i]);
    free(o);
}

struct dv_vk *dv_vkops_vk(const struct dv_vkops *o) { return o->vk; }

/* The pipeline of kernel id for weight type wtype (untyped kernels: any),
 * with the fault when faulty and the fault concerns the kernel; matvec
 * also specialized for nt tokens per workgroup (1..DV_MV_NT) and xv, x
 * rows 16-byte aligned (the other kernels: nt 0). */
static dv_status kernel(struct dv_vkops *o, enum kernel_id id, int wtype, bool faulty,
                        uint32_t nt, bool xv, const struct dv_vk_kernel **out)
{
    const int slot = kernels[id].typed ? wslot(wtype) : 0;
    if (slot < 0)
        return dv_fail(DV_E_INPUT, "vulkan: no kernel for weight type %s", dv_type_name(wtype));
    const bool f = faulty && (kernels[id].faults >> o->fault & 1);
    struct dv_vk_kernel *k = id == K_MATVEC ? &o->mv[nt - 1][xv][slot][f] : &o->k[id][slot][f];
    if (!k->pipeline) {
        const uint32_t spec[4] = {kernels[id].typed ? (uint32_t)wtype : 0,
                                  f ? (uint32_t)o->fault : 0, nt, xv};
        dv_status s = dv_vk_kernel_new(o->vk, kernels[id].spv->code, kernels[id].spv->bytes,
                                       kernels[id].n_bufs, kernels[id].push_size, spec,
                                       id == K_MATVEC ? 4 : 2, k);
        if (s) return s;
    }
    *out = k;
    return DV_OK;
}

/* Does view v hold n floats from its offset? */
static bool fits(struct dv_vk_t v, uint64_t n)
{
    return v.b && ((uint64_t)v.off + n) * 4 <= v.b->size;
}

static uint32_t cdiv(uint64_t a, uint32_t b) { return (uint32_t)((a + b - 1) / b); }

/* Dispatch kernel id (matvec: specialized as nt, xv; see kernel()). */
static dv_status run_spec(struct dv_vkops *o, enum kernel_id id, int wtype, bool faulty,
                          uint32_t nt, bool xv, const struct dv_vk_buf *const *bufs,
                          const void *push, uint32_t gx, uint32_t gy, uint32_t gz)
{
    const struct dv_vk_kernel *k = NULL;
    dv_status s = kernel(o, id, wtype, faulty, nt, xv, &k);
    if (s) return s;
    if (!gx || !gy || !gz) return DV_OK; /* nothing to compute */
    const uint32_t groups[3] = {gx, gy, gz};
    return dv_vk_dispatch(o->vk, k, bufs, push, groups);
}

static dv_status run(struct dv_vkops *o, enum kernel_id id, int wtype, bool faulty,
                     const struct dv_vk_buf *const *bufs, const void *push, uint32_t gx,
                     uint32_t gy, uint32_t gz)
{
    return run_spec(o, id, wtype, faulty, 0, false, bufs, push, gx, gy, gz);
}

static dv_status out_of_bounds(const char *op)
{
    return dv_fail(DV_E_USAGE, "vulkan: %s would read or write outside its buffers", op);
}

/* ---- weights ------------------------------------------------------------- */

dv_status dv_vk_weight_new(struct dv_vk *vk, int t, int64_t rows, int64_t cols,
                           const void *data, bool host, struct dv_vk_weight *w)
{
    memset(w, 0, sizeof *w);
    size_t rb = 0;
    if (!dv_vk_weight_type_ok(t))
        return dv_fail(DV_E_INPUT, "the Vulkan kernels do not read weight type %s",
                       dv_type_name(t));
    dv_status s = dv_row_size(t, cols, &rb);
    if (s) return s;
    if (rows < 1 || rb > UINT32_MAX / 2 || (uint64_t)rows > ((uint64_t)1 << 32) / rb)
        return dv_fail(DV_E_INPUT, "weight of %lld x %lld %s is too large for one buffer",
                       (long long)rows, (long long)cols, dv_type_name(t));
    const VkDeviceSize bytes = (VkDeviceSize)rows * rb;
    /* whole 32-bit words: the kernels read bytes out of words */
    s = dv_vk_buf_alloc(vk, (bytes + 3) & ~(VkDeviceSize)3, host, &w->buf);
    if (!s) s = dv_vk_upload(vk, &w->buf, 0, data, bytes);
    if (s) {
        dv_vk_buf_free(vk, &w->buf);
        return s;
    }
    w->type = t, w->rows = rows, w->cols = cols, w->row_bytes = (uint32_t)rb;
    return DV_OK;
}

void dv_vk_weight_free(struct dv_vk *vk, struct dv_vk_weight *w)
{
    dv_vk_buf_free(vk, &w->buf);
}

/* ---- ops ------------------------------------------------------------------- */

dv_status dv_vkop_get_rows(struct dv_vkops *o, bool faulty, const struct dv_vk_weight *w,
                           struct dv_vk_t ids, uint32_t T, struct dv_vk_t out)
{
    if (!fits(ids, T) || !fits(out, (uint64_t)T * w->cols)) return out_of_bounds("get_rows");
    struct dv_push_get_rows p = {(uint32_t)w->cols, w->row_bytes, T, ids.off, out.off};
    const struct dv_vk_buf *b[] = {&w->buf, ids.b, out.b};
    return run(o, K_GET_ROWS, w->type, faulty, b, &p, cdiv((uint64_t)w->cols, DV_ELEM_LOCAL),
               T, 1);
}

dv_status dv_vkop_rmsnorm(struct dv_vkops *o, bool faulty, struct dv_vk_t x,
                          struct dv_vk_t w, struct dv_vk_t out, uint32_t T, uint32_t n,
                          float eps)
{
    if (!fits(x, (uint64_t)T * n) || !fits(w, n) || !fits(out, (uint64_t)T * n))
        return out_of_bounds("rmsnorm");
    struct dv_push_rmsnorm p = {n, T, x.off, out.off, eps};
    const struct dv_vk_buf *b[] = {x.b, w.b, out.b};
    return run(o, K_RMSNORM, 0, faulty, b, &p, T, 1, 1);
}

dv_status dv_vkop_matmul(struct dv_vkops *o, bool faulty, const struct dv_vk_weight *w,
                         struct dv_vk_t x, struct dv_vk_t y, uint32_t N)
{
    const uint32_t M = (uint32_t)w->rows, K = (uint32_t)w->cols;
    if (!fits(x, (uint64_t)N * K) || !fits(y, (uint64_t)N * M)) return out_of_bounds("matmul");
    struct dv_push_matmul p = {M, N, K, w->row_bytes, x.off, y.off};
    const struct dv_vk_buf *b[] = {&w->buf, x.b, y.b};
    if (N && N <= DV_MV_MAX_N) {
        /* few tokens: matvec, in groups of at most DV_MV_NT tokens, as even
         * as can be (13 tokens: 2 of 7), the kernel built for that many
         * (no work for absent tokens). x rows that are not 16-byte aligned
         * (K % 4 != 0: tiny f32/f16/bf16 rows, in tests) take one token
         * per group: one more kernel per type, not DV_MV_NT more. */
        const bool xv = x.off % 4 == 0 && K % 4 == 0;
        const uint32_t groups = xv ? cdiv(N, DV_MV_NT) : N, nt = cdiv(N, groups);
        return run_spec(o, K_MATVEC, w->type, faulty, nt, xv, b, &p, cdiv(M, DV_MV_ROWS),
                        groups, 1);
    }
    return run(o, K_MATMUL, w->type, faulty, b, &p, cdiv(M, DV_MM_BM), cdiv(N, DV_MM_BN), 1);
}

dv_status dv_vkop_rope(struct dv_vkops *o, bool faulty, struct dv_vk_t x, struct dv_vk_t tab,
                       uint32_t T, uint32_t nh, uint32_t hd, uint32_t n_rot, int mode,
                       uint32_t pos0, float base)
{
    if (n_rot > hd || n_rot % 2 || !fits(x, (uint64_t)T * nh * hd) ||
        !fits(tab, (uint64_t)T * n_rot))
        return out_of_bounds("rope");
    struct dv_push_rope p = {T, nh, hd, n_rot, (uint32_t)mode, pos0, x.off, tab.off, base};
    const struct dv_vk_buf *b[] = {x.b, tab.b};
    return run(o, K_ROPE, 0, faulty, b, &p, cdiv((uint64_t)T * nh * (n_rot / 2), DV_ELEM_LOCAL),
               1, 1);
}

dv_status dv_vkop_kv_write(struct dv_vkops *o, bool faulty, struct dv_vk_t src,
                           struct dv_vk_t cache, uint32_t T, uint32_t width, uint32_t pos0)
{
    if (!fits(src, (uint64_t)T * width) || !fits(cache, (uint64_t)(pos0 + T) * width))
        return out_of_bounds("kv_write");
    struct dv_push_kv_write p = {T, width, pos0, src.off, cache.off};
    const struct dv_vk_buf *b[] = {src.b, cache.b};
    return run(o, K_KV_WRITE, 0, faulty, b, &p, cdiv((uint64_t)T * width, DV_ELEM_LOCAL), 1, 1);
}

static bool heads_ok(uint32_t H, uint32_t Hkv) { return Hkv && H && H % Hkv == 0; }

dv_status dv_vkop_kq(struct dv_vkops *o, bool faulty, struct dv_vk_t q, struct dv_vk_t k,
                     struct dv_vk_t att, uint32_t T, uint32_t pos0, uint32_t H, uint32_t Hkv,
                     uint32_t hd)
{
    const uint64_t n_kv = (uint64_t)pos0 + T;
    if (!heads_ok(H, Hkv) || !fits(q, (uint64_t)T * H * hd) ||
        !fits(k, n_kv * Hkv * hd) || !fits(att, (uint64_t)H * T * n_kv))
        return out_of_bounds("kq");
    struct dv_push_kq p = {T, pos0, H, Hkv, hd, q.off, k.off, att.off,
                           (float)(1.0 / sqrt((double)hd))};
    const struct dv_vk_buf *b[] = {q.b, k.b, att.b};
    return run(o, K_KQ, 0, faulty, b, &p, cdiv(n_kv, 64), T, H);
}

dv_status dv_vkop_softmax(struct dv_vkops *o, bool faulty, struct dv_vk_t x, uint32_t rows,
                          uint32_t n)
{
    if (!fits(x, (uint64_t)rows * n)) return out_of_bounds("softmax");
    struct dv_push_softmax p = {rows, n, x.off};
    const struct dv_vk_buf *b[] = {x.b};
    return run(o, K_SOFTMAX, 0, faulty, b, &p, rows, 1, 1);
}

dv_status dv_vkop_kqv(struct dv_vkops *o, bool faulty, struct dv_vk_t att, struct dv_vk_t v,
                      struct dv_vk_t out, uint32_t T, uint32_t pos0, uint32_t H, uint32_t Hkv,
                      uint32_t hd)
{
    const uint64_t n_kv = (uint64_t)pos0 + T;
    if (!heads_ok(H, Hkv) || !fits(att, (uint64_t)H * T * n_kv) ||
        !fits(v, n_kv * Hkv * hd) || !fits(out, (uint64_t)T * H * hd))
        return out_of_bounds("kqv");
    struct dv_push_kqv p = {T, pos0, H, Hkv, hd, att.off, v.off, out.off};
    const struct dv_vk_buf *b[] = {att.b, v.b, out.b};
    return run(o, K_KQV, 0, faulty, b, &p, cdiv(hd, 64), T, H);
}

static dv_status binary(struct dv_vkops *o, enum kernel_id id, struct dv_vk_t a,
                        struct dv_vk_t b, struct dv_vk_t out, uint32_t n)
{
    if (!fits(a, n) || !fits(b, n) || !fits(out, n)) return out_of_bounds("add/silu_mul");
    struct dv_push_binary p = {n, a.off, b.off, out.off};
    const struct dv_vk_buf *bufs[] = {a.b, b.b, out.b};
    return run(o, id, 0, false, bufs, &p, cdiv(n, DV_ELEM_LOCAL), 1, 1);
}

dv_status dv_vkop_add(struct dv_vkops *o, struct dv_vk_t a, struct dv_vk_t b,
                      struct dv_vk_t out, uint32_t n)
{
    return binary(o, K_ADD, a, b, out, n);
}

dv_status dv_vkop_silu_mul(struct dv_vkops *o, struct dv_vk_t a, struct dv_vk_t b,
                           struct dv_vk_t out, uint32_t n)
{
    return binary(o, K_SILU_MUL, a, b, out, n);
}

/* ---- the single-op runner ------------------------------------------------ */

/* Host-visible buffers of the runner's one call, freed together. */
struct scratch {
    struct dv_vk *vk;
    struct dv_vk_buf b[4];
    int n;
};

/* A buffer of n floats (at least one), filled from src[n_src] if given. */
static dv_status scratch_buf(struct scratch *sc, const void *src, uint64_t n_src, uint64_t n,
                             struct dv_vk_t *v)
{
    struct dv_vk_buf *b = &sc->b[sc->n];
    if (n > (UINT64_C(1) << 32)) return dv_fail(DV_E_USAGE, "vulkan: runner tensor too large");
    dv_status s = dv_vk_buf_alloc(sc->vk, (n ? n : 1) * 4, true, b);
    if (s) return s;
    sc->n++;
    memset(b->map, 0, (size_t)(n ? n : 1) * 4);
    if (src && n_src) memcpy(b->map, src, (size_t)n_src * 4);
    *v = (struct dv_vk_t){b, 0};
    return DV_OK;
}

/* Run what was recorded, copy n floats of v to out, free the buffers. */
static dv_status scratch_end(struct scratch *sc, dv_status s, struct dv_vk_t v, float *out,
                             uint64_t n)
{
    if (!s) s = dv_vk_submit(sc->vk);
    if (!s && v.b) memcpy(out, v.b->map, (size_t)n * 4);
    while (sc->n) dv_vk_buf_free(sc->vk, &sc->b[--sc->n]);
    return s;
}

dv_status dv_vkrun_get_rows(struct dv_vkops *o, bool faulty, int wtype, const void *w,
                            int64_t rows, int64_t cols, const int32_t *ids, int T, float *out)
{
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= rows)
            return dv_fail(DV_E_USAGE, "get_rows: id %d of %lld rows", ids[t], (long long)rows);
    struct dv_vk_weight wt;
    dv_status s = dv_vk_weight_new(o->vk, wtype, rows, cols, w, true, &wt);
    if (s) return s;
    struct scratch sc = {o->vk, {{0}}, 0};
    struct dv_vk_t vi, vo = {0};
    s = scratch_buf(&sc, ids, (uint64_t)T, (uint64_t)T, &vi);
    if (!s) s = scratch_buf(&sc, NULL, 0, (uint64_t)T * (uint64_t)cols, &vo);
    if (!s) s = dv_vkop_get_rows(o, faulty, &wt, vi, (uint32_t)T, vo);
    s = scratch_end(&sc, s, vo, out, (uint64_t)T * (uint64_t)cols);
    dv_vk_weight_free(o->vk, &wt);
    return s;
}

dv_status dv_vkrun_rmsnorm(struct dv_vkops *o, bool faulty, const float *x, const float *w,
                           int T, int n, float eps, float *out)
{
    struct scratch sc = {o->vk, {{0}}, 0};
    const uint64_t nx = (uint64_t)T * (uint64_t)n;
    struct dv_vk_t vx, vw, vo = {0};
    dv_status s = scratch_buf(&sc, x, nx, nx, &vx);
    if (!s) s = scratch_buf(&sc, w, (uint64_t)n, (uint64_t)n, &vw);
    if (!s) s = scratch_buf(&sc, NULL, 0, nx, &vo);
    if (!s) s = dv_vkop_rmsnorm(o, faulty, vx, vw, vo, (uint32_t)T, (uint32_t)n, eps);
    return scratch_end(&sc, s, vo, out, nx);
}

dv_status dv_vkrun_matmul(struct dv_vkops *o, bool faulty, int wtype, const void *w,
                          int64_t rows, int64_t cols, const float *x, int N, float *y)
{
    struct dv_vk_weight wt;
    dv_status s = dv_vk_weight_new(o->vk, wtype, rows, cols, w, true, &wt);
    if (s) return s;
    struct scratch sc = {o->vk, {{0}}, 0};
    struct dv_vk_t vx, vy = {0};
    s = scratch_buf(&sc, x, (uint64_t)N * (uint64_t)cols, (uint64_t)N * (uint64_t)cols, &vx);
    if (!s) s = scratch_buf(&sc, NULL, 0, (uint64_t)N * (uint64_t)rows, &vy);
    if (!s) s = dv_vkop_matmul(o, faulty, &wt, vx, vy, (uint32_t)N);
    s = scratch_end(&sc, s, vy, y, (uint64_t)N * (uint64_t)rows);
    dv_vk_weight_free(o->vk, &wt);
    return s;
}

dv_status dv_vkrun_rope(struct dv_vkops *o, bool faulty, const float *x, int T, int nh,
                        int hd, int n_rot, int mode, int pos0, double base, float *out)
{
    if (T < 1 || n_rot < 2 || n_rot > hd || n_rot % 2)
        return dv_fail(DV_E_USAGE, "rope: n_rot %d with head dim %d", n_rot, hd);
    struct scratch sc = {o->vk, {{0}}, 0};
    const uint64_t nx = (uint64_t)T * (uint64_t)nh * (uint64_t)hd;
    const uint64_t nt = (uint64_t)T * (uint64_t)n_rot;
    struct dv_vk_t vx = {0}, vt;
    dv_status s = scratch_buf(&sc, x, nx, nx, &vx);
    if (!s) s = scratch_buf(&sc, NULL, 0, nt, &vt);
    if (!s) {
        float *tab = vt.b->map;
        dv_cpu_rope_table_f32(tab, tab + nt / 2, T, pos0, n_rot, base);
        s = dv_vkop_rope(o, faulty, vx, vt, (uint32_t)T, (uint32_t)nh, (uint32_t)hd,
                         (uint32_t)n_rot, mode, (uint32_t)pos0, (float)base);
    }
    return scratch_end(&sc, s, vx, out, nx);
}

/* The cache of one layer for the runner: past rows, then this pass's rows
 * written by the kv_write kernel, as the forward pass writes them. */
static dv_status runner_cache(struct dv_vkops *o, bool faulty, struct scratch *sc,
                              const float *past, const float *cur, int T, int pos0, int width,
                              struct dv_vk_t *cache)
{
    struct dv_vk_t vc;
    const uint64_t np = (uint64_t)pos0 * (uint64_t)width;
    const uint64_t nc = (uint64_t)T * (uint64_t)width;
    dv_status s = scratch_buf(sc, past, np, np + nc, cache);
    if (!s) s = scratch_buf(sc, cur, nc, nc, &vc);
    if (!s) s = dv_vkop_kv_write(o, faulty, vc, *cache, (uint32_t)T, (uint32_t)width,
                                 (uint32_t)pos0);
    return s;
}

dv_status dv_vkrun_kq(struct dv_vkops *o, bool faulty, const float *q, const float *k_past,
                      const float *k_new, int T, int pos0, int H, int Hkv, int hd, float *att)
{
    struct scratch sc = {o->vk, {{0}}, 0};
    const uint64_t nq = (uint64_t)T * (uint64_t)H * (uint64_t)hd;
    const uint64_t na = (uint64_t)H * (uint64_t)T * (uint64_t)(pos0 + T);
    struct dv_vk_t vk, vq, va = {0};
    dv_status s = runner_cache(o, faulty, &sc, k_past, k_new, T, pos0, Hkv * hd, &vk);
    if (!s) s = scratch_buf(&sc, q, nq, nq, &vq);
    if (!s) s = scratch_buf(&sc, NULL, 0, na, &va);
    if (!s) s = dv_vkop_kq(o, faulty, vq, vk, va, (uint32_t)T, (uint32_t)pos0, (uint32_t)H,
                           (uint32_t)Hkv, (uint32_t)hd);
    return scratch_end(&sc, s, va, att, na);
}

dv_status dv_vkrun_softmax(struct dv_vkops *o, bool faulty, const float *x, int rows, int n,
                           float *out)
{
    struct scratch sc = {o->vk, {{0}}, 0};
    const uint64_t nx = (uint64_t)rows * (uint64_t)n;
    struct dv_vk_t vx = {0};
    dv_status s = scratch_buf(&sc, x, nx, nx, &vx);
    if (!s) s = dv_vkop_softmax(o, faulty, vx, (uint32_t)rows, (uint32_t)n);
    return scratch_end(&sc, s, vx, out, nx);
}

dv_status dv_vkrun_kqv(struct dv_vkops *o, bool faulty, const float *att, const float *v_past,
                       const float *v_new, int T, int pos0, int H, int Hkv, int hd, float *out)
{
    struct scratch sc = {o->vk, {{0}}, 0};
    const uint64_t na = (uint64_t)H * (uint64_t)T * (uint64_t)(pos0 + T);
    const uint64_t no = (uint64_t)T * (uint64_t)H * (uint64_t)hd;
    struct dv_vk_t vv, va, vo = {0};
    dv_status s = runner_cache(o, faulty, &sc, v_past, v_new, T, pos0, Hkv * hd, &vv);
    if (!s) s = scratch_buf(&sc, att, na, na, &va);
    if (!s) s = scratch_buf(&sc, NULL, 0, no, &vo);
    if (!s) s = dv_vkop_kqv(o, faulty, va, vv, vo, (uint32_t)T, (uint32_t)pos0, (uint32_t)H,
                            (uint32_t)Hkv, (uint32_t)hd);
    return scratch_end(&sc, s, vo, out, no);
}

static dv_status run_binary(struct dv_vkops *o, enum kernel_id id, const float *a,
                            const float *b, int64_t n, float *out)
{
    struct scratch sc = {o->vk, {{0}}, 0};
    struct dv_vk_t va, vb, vo = {0};
    dv_status s = scratch_buf(&sc, a, (uint64_t)n, (uint64_t)n, &va);
    if (!s) s = scratch_buf(&sc, b, (uint64_t)n, (uint64_t)n, &vb);
    if (!s) s = scratch_buf(&sc, NULL, 0, (uint64_t)n, &vo);
    if (!s) s = binary(o, id, va, vb, vo, (uint32_t)n);
    return scratch_end(&sc, s, vo, out, (uint64_t)n);
}

dv_status dv_vkrun_add(struct dv_vkops *o, const float *a, const float *b, int64_t n,
                       float *out)
{
    return run_binary(o, K_ADD, a, b, n, out);
}

dv_status dv_vkrun_silu_mul(struct dv_vkops *o, const float *a, const float *b, int64_t n,
                            float *out)
{
    return run_binary(o, K_SILU_MUL, a, b, n, out);
}
