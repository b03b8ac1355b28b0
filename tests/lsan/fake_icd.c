/*
 * fake_icd.c - the smallest Vulkan driver the loader accepts, with the one
 * habit that made lavapipe look leaky: a cache allocated with realloc and
 * kept only in a static pointer, never freed.
 *
 * lsan.sh loads it through VK_ICD_FILENAMES (fake_icd.json) so the test
 * does not depend on what a given Mesa release keeps in its statics: with
 * the driver kept resident the cache is reachable and LeakSanitizer is
 * quiet; without, the loader's dlclose at vkDestroyInstance unmaps the
 * static and the cache is reported from "<unknown module>", the report a
 * fresh Debian 12 machine showed with lavapipe 22.3.6.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

#define LOADER_MAGIC 0x01CDC0DEu /* first word of every dispatchable object */

struct fake_instance {
    uintptr_t loader_magic;
};

static void *cache; /* the driver's cache: only this static points at it */

static VKAPI_ATTR VkResult VKAPI_CALL fake_create_instance(
    const VkInstanceCreateInfo *ci, const VkAllocationCallbacks *alloc, VkInstance *out)
{
    (void)ci, (void)alloc;
    void *grown = realloc(cache, 256);
    if (!grown) return VK_ERROR_OUT_OF_HOST_MEMORY;
    cache = grown;
    memset(cache, 0, 256);
    struct fake_instance *inst = calloc(1, sizeof *inst);
    if (!inst) return VK_ERROR_OUT_OF_HOST_MEMORY;
    inst->loader_magic = LOADER_MAGIC;
    *out = (VkInstance)inst;
    return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL fake_destroy_instance(VkInstance inst,
                                                       const VkAllocationCallbacks *alloc)
{
    (void)alloc;
    free(inst);
}

static VKAPI_ATTR VkResult VKAPI_CALL fake_enumerate_extensions(
    const char *layer, uint32_t *count, VkExtensionProperties *props)
{
    (void)layer, (void)props;
    *count = 0;
    return VK_SUCCESS;
}

static VKAPI_ATTR VkResult VKAPI_CALL fake_enumerate_devices(
    VkInstance inst, uint32_t *count, VkPhysicalDevice *devs)
{
    (void)inst, (void)devs;
    *count = 0;
    return VK_SUCCESS;
}

/* Every other instance-level entry point: the loader insists on finding
 * the core ones, and with no physical device none is ever called. (Global
 * ones, inst == NULL, are NULL: the loader would call those.) */
static VKAPI_ATTR void VKAPI_CALL fake_never_called(void) { abort(); }

VKAPI_ATTR VkResult VKAPI_CALL vk_icdNegotiateLoaderICDInterfaceVersion(uint32_t *version)
{
    if (*version > 5) *version = 5;
    return VK_SUCCESS;
}

VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vk_icdGetInstanceProcAddr(VkInstance inst,
                                                                  const char *name)
{
    static const struct {
        const char *name;
        PFN_vkVoidFunction fn;
    } table[] = {
        {"vkCreateInstance", (PFN_vkVoidFunction)fake_create_instance},
        {"vkDestroyInstance", (PFN_vkVoidFunction)fake_destroy_instance},
        {"vkEnumerateInstanceExtensionProperties", (PFN_vkVoidFunction)fake_enumerate_extensions},
        {"vkEnumeratePhysicalDevices", (PFN_vkVoidFunction)fake_enumerate_devices},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(name, table[i].name) == 0) return table[i].fn;
    return inst ? (PFN_vkVoidFunction)fake_never_called : NULL;
}
