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

#endif
