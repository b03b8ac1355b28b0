/* shaders.c - SPIR-V of kernels/shaders/ as glslc -mfmt=c writes it. */
#include "shaders.h"

static const uint32_t add_code[] =
#include "add.spv.inc"
    ;
const struct dv_spirv dv_spv_add = {add_code, sizeof add_code};

static const uint32_t silu_mul_code[] =
#include "silu_mul.spv.inc"
    ;
const struct dv_spirv dv_spv_silu_mul = {silu_mul_code, sizeof silu_mul_code};

static const uint32_t rmsnorm_code[] =
#include "rmsnorm.spv.inc"
    ;
const struct dv_spirv dv_spv_rmsnorm = {rmsnorm_code, sizeof rmsnorm_code};

static const uint32_t softmax_code[] =
#include "softmax.spv.inc"
    ;
const struct dv_spirv dv_spv_softmax = {softmax_code, sizeof softmax_code};

static const uint32_t rope_code[] =
#include "rope.spv.inc"
    ;
const struct dv_spirv dv_spv_rope = {rope_code, sizeof rope_code};

static const uint32_t kv_write_code[] =
#include "kv_write.spv.inc"
    ;
const struct dv_spirv dv_spv_kv_write = {kv_write_code, sizeof kv_write_code};

static const uint32_t kq_code[] =
#include "kq.spv.inc"
    ;
const struct dv_spirv dv_spv_kq = {kq_code, sizeof kq_code};

static const uint32_t kqv_code[] =
#include "kqv.spv.inc"
    ;
const struct dv_spirv dv_spv_kqv = {kqv_code, sizeof kqv_code};

static const uint32_t get_rows_code[] =
#include "get_rows.spv.inc"
    ;
const struct dv_spirv dv_spv_get_rows = {get_rows_code, sizeof get_rows_code};

static const uint32_t matmul_code[] =
#include "matmul.spv.inc"
    ;
const struct dv_spirv dv_spv_matmul = {matmul_code, sizeof matmul_code};

static const uint32_t matvec_code[] =
#include "matvec.spv.inc"
    ;
const struct dv_spirv dv_spv_matvec = {matvec_code, sizeof matvec_code};
