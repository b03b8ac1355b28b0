/*
 * cpu_ops.h - the reference ops, in f32 and f64, as the CPU forward runs them.
 *
 * Each op exists twice from one source (cpu_forward.inc included with
 * REAL = float and REAL = double). Reductions (RMSNorm's sum of squares,
 * softmax's sum) accumulate in double in both, as ggml does; matrix products
 * are BLAS sgemm/dgemm. Exposed so tests and the kernel verifier check the
 * very functions the forward pass calls.
 */
#ifndef DV_CPU_OPS_H
#define DV_CPU_OPS_H

#include <stdint.h>

#include "engine.h"

/* out[T, n] = x[T, n] / sqrt(mean(x^2) + eps) * w[n], per row. */
void dv_cpu_rmsnorm_f32(float *out, const float *x, const float *w, int64_t T,
                        int64_t n, double eps);
void dv_cpu_rmsnorm_f64(double *out, const double *x, const double *w,
                        int64_t T, int64_t n, double eps);

/* cos/sin tables [T, n_rot/2] for positions pos0 .. pos0+T-1:
 * angle(t, i) = (pos0 + t) * base^(-2i/n_rot), computed in double. */
void dv_cpu_rope_table_f32(float *cos_t, float *sin_t, int64_t T, int64_t pos0,
                           int64_t n_rot, double base);
void dv_cpu_rope_table_f64(double *cos_t, double *sin_t, int64_t T,
                           int64_t pos0, int64_t n_rot, double base);

/* Rotate x[T, nh, hd] in place: NORM pairs (2i, 2i+1), NEOX pairs
 * (i, i + n_rot/2), i < n_rot/2; dims >= n_rot untouched. */
void dv_cpu_rope_f32(float *x, int64_t T, int64_t nh, int64_t hd,
                     int64_t n_rot, int mode, const float *cos_t,
                     const float *sin_t);
void dv_cpu_rope_f64(double *x, int64_t T, int64_t nh, int64_t hd,
                     int64_t n_rot, int mode, const double *cos_t,
                     const double *sin_t);

/* Softmax of each of n_rows rows of length n, in place; -inf gives exactly 0. */
void dv_cpu_softmax_f32(float *x, int64_t n_rows, int64_t n);
void dv_cpu_softmax_f64(double *x, int64_t n_rows, int64_t n);

/* g[i] = silu(g[i]) * u[i] for n values. */
void dv_cpu_silu_mul_f32(float *g, const float *u, int64_t n);
void dv_cpu_silu_mul_f64(double *g, const double *u, int64_t n);

/* att[H, T, pos0 + T] = q[T, H*hd] . k[pos0 + T, Hkv*hd]^T / sqrt(hd), head h
 * reading kv head h / (H / Hkv), with -inf where key j > pos0 + t (the
 * causal mask): the scores of one layer over its KV cache k. */
void dv_cpu_kq_f32(float *att, const float *q, const float *k, int64_t T, int64_t pos0,
                   int64_t H, int64_t Hkv, int64_t hd);
void dv_cpu_kq_f64(double *att, const double *q, const double *k, int64_t T, int64_t pos0,
                   int64_t H, int64_t Hkv, int64_t hd);

/* out[T, H*hd] = att[H, T, pos0 + T] . v[pos0 + T, Hkv*hd], per head. */
void dv_cpu_kqv_f32(float *out, const float *att, const float *v, int64_t T, int64_t pos0,
                    int64_t H, int64_t Hkv, int64_t hd);
void dv_cpu_kqv_f64(double *out, const double *att, const double *v, int64_t T,
                    int64_t pos0, int64_t H, int64_t Hkv, int64_t hd);

/* dv_cpu_kqv as ggml's Vulkan backend sums it with an f16 accumulator
 * (mul_mm.comp, ACC_TYPE float16_t, without DOT2_F16; measured bit for bit
 * on lavapipe: tests/unit/test_ops.c): att and v hold f16 values; each
 * product is rounded to f16 and added to the f16 sum, rounded again (f32
 * arithmetic on f16 operands rounds each result once, as f16 would); the
 * keys go in blocks of four from 0, each block from its last key to its
 * first (dot_product(vec4): fma(x, fma(y, fma(z, fma(w, acc))))), and the
 * sum is clamped to the f16 range, as the shader does before the store. */
void dv_cpu_kqv_f16acc_f32(float *out, const float *att, const float *v, int64_t T,
                           int64_t pos0, int64_t H, int64_t Hkv, int64_t hd);
void dv_cpu_kqv_f16acc_f64(double *out, const double *att, const double *v, int64_t T,
                           int64_t pos0, int64_t H, int64_t Hkv, int64_t hd);

/* y[T, rows] = x[T, cols] . W^T for a GGUF matrix W [rows = ne[1], cols =
 * ne[0]] of any type, dequantized a block of rows at a time (as the f64
 * oracle's forward does). DV_E_NOMEM. */
dv_status dv_cpu_matmul_f32(float *y, const struct dv_gguf_tensor *w, const float *x,
                            int64_t T);
dv_status dv_cpu_matmul_f64(double *y, const struct dv_gguf_tensor *w, const double *x,
                            int64_t T);

/* The CPU pass from layer layer0 on (the layers, output_norm, logits) of a
 * "cpu" (f32) or "cpu-f64" backend impl, emitting through em: x is the
 * residual stream [T, d] entering layer0, or NULL to start from the
 * embedding (layer0 0). For split runs (vulkan --gpu-layers). */
dv_status dv_cpu_forward_from_f32(void *impl, const struct dv_pass *p, struct dv_emitter *em,
                                  int layer0, const float *x);
dv_status dv_cpu_forward_from_f64(void *impl, const struct dv_pass *p, struct dv_emitter *em,
                                  int layer0, const double *x);

#endif
