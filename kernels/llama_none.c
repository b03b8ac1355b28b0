/*
 * llama_none.c - the "llama.cpp" backend of a diverge built without
 * llama.cpp (-Dllama_cpp=disabled, or no llama.cpp where the build
 * looked). The name stays known, so `--backend llama.cpp` gets one line
 * saying why it cannot run (DV_E_DEVICE) instead of "unknown backend";
 * open never succeeds, so nothing else of it runs.
 */
#include <stdio.h>

#include "engine.h"
#include "error.h"
#include "types.h"

static dv_status none_open(const struct dv_model *m, const struct dv_engine_opts *o,
                           void **impl)
{
    (void)m, (void)o;
    *impl = NULL;
    return dv_fail(DV_E_DEVICE, "this diverge was built without llama.cpp (%s)",
                   DV_LLAMA_CPP_WHY);
}

static dv_status none_forward(void *impl, const struct dv_pass *p, const struct dv_hook *h)
{
    (void)impl, (void)p, (void)h;
    return dv_fail(DV_E_DEVICE, "this diverge was built without llama.cpp");
}

static void none_logits(void *impl, int t, double *out) { (void)impl, (void)t, (void)out; }
static void none_free(void *impl) { (void)impl; }

static void none_describe(void *impl, char *device, size_t dcap, char *driver, size_t rcap)
{
    (void)impl;
    snprintf(device, dcap, "none");
    snprintf(driver, rcap, "built without llama.cpp");
}

const struct dv_backend dv_backend_llama_cpp = {
    .name = "llama.cpp",
    .act_type = DV_TYPE_F32,
    .open = none_open,
    .forward = none_forward,
    .logits = none_logits,
    .free = none_free,
    .describe = none_describe,
};
