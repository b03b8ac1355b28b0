/*
 * shaders.h - the compute shaders of kernels/shaders/, compiled to SPIR-V
 * by glslc at build time and embedded here (nothing is read at run time).
 */
#ifndef DV_SHADERS_H
#define DV_SHADERS_H

#include <stddef.h>
#include <stdint.h>

struct dv_spirv {
    const uint32_t *code;
    size_t bytes;
};

extern const struct dv_spirv dv_spv_add;
extern const struct dv_spirv dv_spv_silu_mul;
extern const struct dv_spirv dv_spv_rmsnorm;
extern const struct dv_spirv dv_spv_softmax;
extern const struct dv_spirv dv_spv_rope;
extern const struct dv_spirv dv_spv_kv_write;
extern const struct dv_spirv dv_spv_kq;
extern const struct dv_spirv dv_spv_kqv;
extern const struct dv_spirv dv_spv_get_rows;
extern const struct dv_spirv dv_spv_matmul;
extern const struct dv_spirv dv_spv_matvec;

#endif
