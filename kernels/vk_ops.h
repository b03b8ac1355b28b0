/*
 * vk_ops.h - the ops of the GPU forward pass, each recorded as one or two
 * dispatches of the kernels in kernels/shaders/, and the single-op runner.
 *
 * Every path that runs a kernel goes through these functions: the forward
 * pass (vk_forward.c), the single-op runner below (the kernel verifier and
 * bisect replay) and the tests. A kernel is built once per weight type and
 * fault setting, on first use.
 *
 * Tensors are f32 views: a buffer and an offset in floats. Weights keep
 * their GGUF bytes (struct dv_vk_weight). Every op checks that what it
 * touches lies inside its buffers (DV_E_USAGE otherwise).
 */
#ifndef DV_VK_OPS_H
#define DV_VK_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "fault.h"
#include "vk.h"

/* A view of f32 values: buffer b from float offset off. */
struct dv_vk_t {
    const struct dv_vk_buf *b;
    uint32_t off;
};

/* A weight matrix [rows, cols] (GGUF ne[1], ne[0]) in its own type. */
struct dv_vk_weight {
    struct dv_vk_buf buf;
    int type;
    int64_t rows, cols;
    uint32_t row_bytes;
};

/* Is weight type t one the kernels read (f32 f16 bf16 q8_0 q4_0 q4_k q6_k)? */
bool dv_vk_weight_type_ok(int t);
/* Upload rows x cols values of type t (GGUF row-packed bytes) into a
 * device-local buffer (host-visible when host). */
dv_status dv_vk_weight_new(struct dv_vk *vk, int t, int64_t rows, int64_t cols,
                           const void *data, bool host, struct dv_vk_weight *w);
void dv_vk_weight_free(struct dv_vk *vk, struct dv_vk_weight *w);

struct dv_vkops;

/* Kernels on vk (borrowed) with fault `fault` (DV_FAULT_*, 0 for none)
 * available to ops called with faulty = true. */
dv_status dv_vkops_new(struct dv_vk *vk, int fault, struct dv_vkops **out);
void dv_vkops_free(struct dv_vkops *o);
struct dv_vk *dv_vkops_vk(const struct dv_vkops *o);

/* ---- recording ops (faulty: use the kernel with the fault, if the fault
 * concerns this kernel) ---------------------------------------------------- */

/* out[t, cols] = row ids[t] of w, dequantized, t < T (ids: int32 view). */
dv_status dv_vkop_get_rows(struct dv_vkops *o, bool faulty, const struct dv_vk_weight *w,
                           struct dv_vk_t ids, uint32_t T, struct dv_vk_t out);
/* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, T rows of n. */
dv_status dv_vkop_rmsnorm(struct dv_vkops *o, bool faulty, struct dv_vk_t x,
                          struct dv_vk_t w, struct dv_vk_t out, uint32_t T, uint32_t n,
                          float eps);
/* y[N, rows] = x[N, cols] . W^T. */
dv_status dv_vkop_matmul(struct dv_vkops *o, bool faulty, const struct dv_vk_weight *w,
                         struct dv_vk_t x, struct dv_vk_t y, uint32_t N);
/* Rotate x[T, nh, hd] in place by tab (cos[T, n_rot/2], sin[T, n_rot/2]
 * from dv_cpu_rope_table_f32 for positions pos0..); mode DV_ROPE_*. */
dv_status dv_vkop_rope(struct dv_vkops *o, bool faulty, struct dv_vk_t x, struct dv_vk_t tab,
                       uint32_t T, uint32_t nh, uint32_t hd, uint32_t n_rot, int mode,
                       uint32_t pos0, float base);
/* Rows src[T, width] into cache rows pos0 .. pos0 + T - 1. */
dv_status dv_vkop_kv_write(struct dv_vkops *o, bool faulty, struct dv_vk_t src,
                           struct dv_vk_t cache, uint32_t T, uint32_t width, uint32_t pos0);
/* att[H, T, pos0 + T] = masked q . k / sqrt(hd) over the cache k [.., Hkv*hd]. */
dv_status dv_vkop_kq(struct dv_vkops *o, bool faulty, struct dv_vk_t q, struct dv_vk_t k,
                     struct dv_vk_t att, uint32_t T, uint32_t pos0, uint32_t H, uint32_t Hkv,
                     uint32_t hd);
/* Softmax of rows rows of n values, in place. */
dv_status dv_vkop_softmax(struct dv_vkops *o, bool faulty, struct dv_vk_t x, uint32_t rows,
                          uint32_t n);
/* out[T, H*hd] = att[H, T, pos0 + T] . v cache [.., Hkv*hd]. */
dv_status dv_vkop_kqv(struct dv_vkops *o, bool faulty, struct dv_vk_t att, struct dv_vk_t v,
                      struct dv_vk_t out, uint32_t T, uint32_t pos0, uint32_t H, uint32_t Hkv,
                      uint32_t hd);
/* out = a + b; out = silu(a) * b; n values (out may be a or b). */
dv_status dv_vkop_add(struct dv_vkops *o, struct dv_vk_t a, struct dv_vk_t b,
                      struct dv_vk_t out, uint32_t n);
dv_status dv_vkop_silu_mul(struct dv_vkops *o, struct dv_vk_t a, struct dv_vk_t b,
                           struct dv_vk_t out, uint32_t n);

/* ---- the single-op runner: host arrays in, host array out ---------------
 * Each uploads its inputs to host-visible buffers, records the op with the
 * functions above (the forward pass's pipelines), submits, waits and copies
 * the output. Shapes as in the recording ops. */

dv_status dv_vkrun_get_rows(struct dv_vkops *o, bool faulty, int wtype, const void *w,
                            int64_t rows, int64_t cols, const int32_t *ids, int T,
                            float *out);
dv_status dv_vkrun_rmsnorm(struct dv_vkops *o, bool faulty, const float *x, const float *w,
                           int T, int n, float eps, float *out);
dv_status dv_vkrun_matmul(struct dv_vkops *o, bool faulty, int wtype, const void *w,
                          int64_t rows, int64_t cols, const float *x, int N, float *y);
/* x[T, nh, hd] rotated for positions pos0.. into out. */
dv_status dv_vkrun_rope(struct dv_vkops *o, bool faulty, const float *x, int T, int nh,
                        int hd, int n_rot, int mode, int pos0, double base, float *out);
/* Scores with the cache: k_past[pos0, Hkv*hd] (the earlier passes' K),
 * k_new[T, Hkv*hd] written by the kv_write kernel, then kq: att[H, T, pos0+T]. */
dv_status dv_vkrun_kq(struct dv_vkops *o, bool faulty, const float *q, const float *k_past,
                      const float *k_new, int T, int pos0, int H, int Hkv, int hd,
                      float *att);
dv_status dv_vkrun_softmax(struct dv_vkops *o, bool faulty, const float *x, int rows, int n,
                           float *out);
/* Likewise for V: out[T, H*hd]. */
dv_status dv_vkrun_kqv(struct dv_vkops *o, bool faulty, const float *att, const float *v_past,
                       const float *v_new, int T, int pos0, int H, int Hkv, int hd,
                       float *out);
dv_status dv_vkrun_add(struct dv_vkops *o, const float *a, const float *b, int64_t n,
                       float *out);
dv_status dv_vkrun_silu_mul(struct dv_vkops *o, const float *a, const float *b, int64_t n,
                            float *out);

#endif
