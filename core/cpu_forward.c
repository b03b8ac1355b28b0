/*
 * cpu_forward.c - the CPU reference backends "cpu" (f32) and "cpu-f64".
 *
 * Both are one source, cpu_forward.inc, included twice. They differ in the
 * element type and in how weights are held: the f32 reference dequantizes
 * every matrix once at open (f32 files are used in place from the mapping);
 * the f64 oracle dequantizes a block of rows at a time into a scratch buffer
 * just before each dgemm, so the oracle costs no resident f64 weights
 * (twice the f32 size) and bisect's peak memory stays near the f32 weights.
 *
 * Declared arithmetic (engine opts act_quant, kv_type; arith.h): the f32
 * reference rounds matmul inputs and cache rows exactly as ggml's x86 CPU
 * backend does; the f64 oracle evaluates the same formulas in double
 * (dv_arith_round_f64), so it stays the noise floor of the emulated f32
 * reference rather than of the exact one.
 */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arith.h"
#include "cpu_ops.h"
#include "engine.h"
#include "error.h"
#include "ops.h"
#include "quant.h"

#ifdef _OPENMP
#include <omp.h>
static int dv_thread_count(void) { return omp_get_max_threads(); }
static int dv_thread_index(void) { return omp_get_thread_num(); }
#else
static int dv_thread_count(void) { return 1; }
static int dv_thread_index(void) { return 0; }
#endif

#define DV_CAT2(a, b) a##_##b
#define DV_CAT(a, b) DV_CAT2(a, b)

#define REAL float
#define SUF f32
#define GEMM cblas_sgemm
#define ROUND dv_arith_round_f32
#define EXP expf
#define ACT_TYPE DV_TYPE_F32
#define RESIDENT_WEIGHTS 1
#include "cpu_forward.inc"
#undef REAL
#undef SUF
#undef GEMM
#undef ROUND
#undef EXP
#undef ACT_TYPE
#undef RESIDENT_WEIGHTS

#define REAL double
#define SUF f64
#define GEMM cblas_dgemm
#define ROUND dv_arith_round_f64
#define EXP exp
#define ACT_TYPE DV_TYPE_F64
#define RESIDENT_WEIGHTS 0
#include "cpu_forward.inc"

/* The CPU's model name (from /proc/cpuinfo) and the BLAS build. */
static void cpu_describe(void *impl, char *device, size_t dcap, char *driver,
                         size_t rcap)
{
    snprintf(device, dcap, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v += strspn(v + 1, " \t") + 1;
        snprintf(device, dcap, "%.*s", (int)strcspn(v, "\n"), v);
        break;
    }
    if (f) fclose(f);
    snprintf(driver, rcap, "%s", openblas_get_config()); /* "OpenBLAS 0.3.21 ..." */
    char *end = driver + strlen(driver);
    while (end > driver && end[-1] == ' ') *--end = '\0';
}

const struct dv_backend dv_backend_cpu = {
    .name = "cpu",
    .act_type = DV_TYPE_F32,
    .open = cpu_open_f32,
    .forward = cpu_forward_f32,
    .logits = cpu_logits_f32,
    .free = cpu_free_f32,
    .describe = cpu_describe,
    .run_op = cpu_run_op_f32,
    .forward_from = cpu_forward_layer_f32,
};

const struct dv_backend dv_backend_cpu_f64 = {
    .name = "cpu-f64",
    .act_type = DV_TYPE_F64,
    .open = cpu_open_f64,
    .forward = cpu_forward_f64,
    .logits = cpu_logits_f64,
    .free = cpu_free_f64,
    .describe = cpu_describe,
    .run_op = cpu_run_op_f64,
    .forward_from = cpu_forward_layer_f64,
};
