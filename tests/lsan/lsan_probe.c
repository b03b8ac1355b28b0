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
 */
#include <stdio.h>
#include <string.h>

#include "vk.h"

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
    fprintf(stderr, "usage: lsan_probe lavapipe|driver|driver-unpinned|plant\n");
    return 2;
}
