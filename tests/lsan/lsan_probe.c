/*
 * lsan_probe.c - one process per LeakSanitizer case of lsan.sh.
 *
 *   lsan_probe lavapipe         open and close a real device: no report
 *   lsan_probe driver           a raw instance of whatever driver the
 *                               loader finds, kept resident: no report
 *   lsan_probe driver-unpinned  the same without dv_vk_keep_drivers_resident:
 *                               a driver's static cache is reported
 *   lsan_probe plant            a dv_vk handle dropped without dv_vk_close:
 *                               our leak, reported with dv_vk_open's stack
 *   lsan_probe llama DEV M.gguf a llama.cpp engine on ggml device DEV, one
 *                               pass, freed: no report (with the llama.cpp
 *                               suppressions, tests/lsan/llama_cpp.supp)
 *   lsan_probe llama-plant DEV M.gguf  the same engine dropped without
 *                               dv_engine_free: ours is still reported,
 *                               with dv_engine_open's stack, under those
 *                               suppressions
 */
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "vk.h"

static int llama(const char *dev, const char *path, bool plant)
{
    struct dv_model *m;
    struct dv_engine *e;
    struct dv_engine_opts o = {.n_ctx = 4, .n_batch = 4, .device = dev, .n_threads = 1};
    const int32_t toks[4] = {1, 2, 3, 4};
    dv_status s = dv_model_open(path, &m);
    if (!s) s = dv_engine_open(m, DV_BACKEND_LLAMA_CPP, &o, &e);
    if (!s) s = dv_engine_forward(e, toks, 4, 0, NULL);
    if (s) {
        fprintf(stderr, "lsan_probe: %s\n", dv_errmsg());
        return 1;
    }
    printf("llama.cpp pass done\n");
    if (!plant) dv_engine_free(e);
    e = NULL; /* plant: the only pointer to the engine is gone */
    dv_model_free(m);
    return 0;
}

static int raw_instance(bool resident)
{
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    VkInstance inst;
    VkResult r = vkCreateInstance(&ci, NULL, &inst);
    if (r != VK_SUCCESS) {
        fprintf(stderr, "lsan_probe: vkCreateInstance: %d\n", (int)r);
        return 1;
    }
    if (resident) printf("resident modules: %d\n", dv_vk_keep_drivers_resident());
    vkDestroyInstance(inst, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "driver") == 0) return raw_instance(true);
    if (strcmp(mode, "driver-unpinned") == 0) return raw_instance(false);
    if ((strcmp(mode, "llama") == 0 || strcmp(mode, "llama-plant") == 0) && argc > 3)
        return llama(argv[2], argv[3], strcmp(mode, "llama-plant") == 0);
    struct dv_vk *vk;
    if (strcmp(mode, "lavapipe") == 0 || strcmp(mode, "plant") == 0) {
        dv_status s = dv_vk_open(NULL, false, &vk);
        if (s) {
            fprintf(stderr, "lsan_probe: %s\n", dv_errmsg());
            return 1;
        }
        printf("device: %s\n", dv_vk_device_name(vk));
        if (strcmp(mode, "lavapipe") == 0) dv_vk_close(vk);
        vk = NULL; /* plant: the only pointer to the handle is gone */
        return 0;
    }
    fprintf(stderr, "usage: lsan_probe lavapipe|driver|driver-unpinned|plant\n"
                    "       lsan_probe llama|llama-plant DEVICE MODEL.gguf\n");
    return 2;
}
