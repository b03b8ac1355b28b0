/* shaders.c - SPIR-V of kernels/shaders/ as glslc -mfmt=c writes it. */
#include "shaders.h"

static const uint32_t add_code[] =
#include "add.spv.inc"
    ;

const struct dv_spirv dv_spv_add = {add_code, sizeof add_code};
