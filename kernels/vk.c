/* vk.c - the Vulkan runtime of vk.h. */
#include "vk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Descriptor sets (dispatches) one recording holds; one more flushes it. */
#define MAX_SETS 4096
#define MAX_BINDINGS 8
/* The staging buffer for uploads and read-backs; larger transfers go in
 * pieces of this size. */
#define STAGING_BYTES ((VkDeviceSize)64 << 20)

struct dv_vk {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t family;
    VkPhysicalDeviceMemoryProperties mem;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorPool desc_pool;
    bool recording;
    int n_sets;           /* descriptor sets of the current recording */
    struct dv_vk_buf staging;
    VkQueryPool queries;  /* two timestamps per dispatch, when timing */
    bool timing;
    double tick_ns;       /* nanoseconds per timestamp tick */
    uint64_t timestamp_mask;
    double gpu_ns;        /* dispatch time summed since dv_vk_gpu_ns() */
    uint64_t ts[2 * MAX_SETS];
    int validation_errors;
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    char driver[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 2];
};

static const char *result_name(VkResult r)
{
    switch (r) {
#define R(x) case x: return #x;
    R(VK_NOT_READY) R(VK_TIMEOUT) R(VK_INCOMPLETE)
    R(VK_ERROR_OUT_OF_HOST_MEMORY) R(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    R(VK_ERROR_INITIALIZATION_FAILED) R(VK_ERROR_DEVICE_LOST)
    R(VK_ERROR_MEMORY_MAP_FAILED) R(VK_ERROR_LAYER_NOT_PRESENT)
    R(VK_ERROR_EXTENSION_NOT_PRESENT) R(VK_ERROR_FEATURE_NOT_PRESENT)
    R(VK_ERROR_INCOMPATIBLE_DRIVER) R(VK_ERROR_TOO_MANY_OBJECTS)
    R(VK_ERROR_FORMAT_NOT_SUPPORTED) R(VK_ERROR_FRAGMENTED_POOL)
    R(VK_ERROR_OUT_OF_POOL_MEMORY) R(VK_ERROR_UNKNOWN)
#undef R
    default: return "VK_ERROR_(unknown)";
    }
}

/* r as a status: out of memory is DV_E_NOMEM, any other failure DV_E_DEVICE. */
static dv_status vk_fail(VkResult r, const char *call)
{
    dv_status s = r == VK_ERROR_OUT_OF_HOST_MEMORY ? DV_E_NOMEM : DV_E_DEVICE;
    return dv_fail(s, "vulkan: %s: %s", call, result_name(r));
}

#define VK_TRY(call)                                                          \
    do {                                                                      \
        VkResult r_ = (call);                                                 \
        if (r_ != VK_SUCCESS) return vk_fail(r_, #call);                      \
    } while (0)

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT sev, VkDebugUtilsMessageTypeFlagsEXT type,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)type;
    struct dv_vk *vk = user;
    if (sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        vk->validation_errors++;
        fprintf(stderr, "vulkan validation: %s\n", data->pMessage);
    }
    return VK_FALSE;
}

static dv_status make_instance(struct dv_vk *vk, bool validation)
{
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "diverge",
                             .apiVersion = VK_API_VERSION_1_2};
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app};
    if (validation) {
        ci.enabledLayerCount = 1, ci.ppEnabledLayerNames = layers;
        ci.enabledExtensionCount = 1, ci.ppEnabledExtensionNames = exts;
    }
    VkResult r = vkCreateInstance(&ci, NULL, &vk->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
        return dv_fail(DV_E_DEVICE, "vulkan: no device (%s); for a CPU device install "
                       "lavapipe: apt-get install mesa-vulkan-drivers", result_name(r));
    if (r == VK_ERROR_LAYER_NOT_PRESENT)
        return dv_fail(DV_E_DEVICE, "vulkan: the validation layer is not installed "
                       "(apt-get install vulkan-validationlayers)");
    if (r != VK_SUCCESS) return vk_fail(r, "vkCreateInstance");
    dv_vk_keep_drivers_resident();
    if (!validation) return DV_OK;
    PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
        vkGetInstanceProcAddr(vk->instance, "vkCreateDebugUtilsMessengerEXT");
    if (!create) return dv_fail(DV_E_DEVICE, "vulkan: no VK_EXT_debug_utils");
    VkDebugUtilsMessengerCreateInfoEXT mi = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message, .pUserData = vk};
    VK_TRY(create(vk->instance, &mi, NULL, &vk->messenger));
    return DV_OK;
}

/* Rank of a device type for the default choice: lower is preferred. */
static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static uint32_t compute_family(VkPhysicalDevice p)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, NULL);
    VkQueueFamilyProperties q[32];
    if (n > 32) n = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, q);
    for (uint32_t i = 0; i < n; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) return i;
    return UINT32_MAX;
}

static dv_status pick_device(struct dv_vk *vk, const char *select)
{
    uint32_t n = 0;
    VK_TRY(vkEnumeratePhysicalDevices(vk->instance, &n, NULL));
    if (n == 0)
        return dv_fail(DV_E_DEVICE, "vulkan: no device; for a CPU device install "
                       "lavapipe: apt-get install mesa-vulkan-drivers");
    VkPhysicalDevice devs[16];
    if (n > 16) n = 16;
    VkResult r = vkEnumeratePhysicalDevices(vk->instance, &n, devs);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return vk_fail(r, "vkEnumeratePhysicalDevices");
    if (!select || !*select) select = getenv("DV_VK_DEVICE");
    int best = -1, best_rank = 99;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        if (compute_family(devs[i]) == UINT32_MAX || p.apiVersion < VK_API_VERSION_1_2) continue;
        bool match;
        if (select && *select && strspn(select, "0123456789") == strlen(select))
            match = (uint32_t)atoi(select) == i;
        else if (select && *select)
            match = strstr(p.deviceName, select) != NULL;
        else
            match = type_rank(p.deviceType) < best_rank;
        if (match && (select && *select ? best < 0 : true)) {
            best = (int)i;
            best_rank = type_rank(p.deviceType);
        }
    }
    if (best < 0)
        return dv_fail(DV_E_DEVICE, "vulkan: no Vulkan 1.2 compute device%s%s%s among %u",
                       select && *select ? " matches '" : "", select && *select ? select : "",
                       select && *select ? "'" : "", n);
    vk->phys = devs[best];
    vk->family = compute_family(vk->phys);
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &drv};
    vkGetPhysicalDeviceProperties2(vk->phys, &p2);
    snprintf(vk->name, sizeof vk->name, "%s", p2.properties.deviceName);
    snprintf(vk->driver, sizeof vk->driver, "%s %s", drv.driverName, drv.driverInfo);
    vkGetPhysicalDeviceMemoryProperties(vk->phys, &vk->mem);
    return DV_OK;
}

static dv_status make_device(struct dv_vk *vk)
{
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                  .queueFamilyIndex = vk->family, .queueCount = 1,
                                  .pQueuePriorities = &prio};
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi};
    VK_TRY(vkCreateDevice(vk->phys, &di, NULL, &vk->device));
    vkGetDeviceQueue(vk->device, vk->family, 0, &vk->queue);
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = vk->family};
    VK_TRY(vkCreateCommandPool(vk->device, &pi, NULL, &vk->cmd_pool));
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = vk->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VK_TRY(vkAllocateCommandBuffers(vk->device, &ai, &vk->cmd));
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_TRY(vkCreateFence(vk->device, &fi, NULL, &vk->fence));
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, MAX_SETS * MAX_BINDINGS};
    VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = MAX_SETS, .poolSizeCount = 1,
                                      .pPoolSizes = &ps};
    VK_TRY(vkCreateDescriptorPool(vk->device, &dpi, NULL, &vk->desc_pool));
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &nq, NULL);
    VkQueueFamilyProperties q[32];
    if (nq > 32) nq = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &nq, q);
    const uint32_t bits = vk->family < nq ? q[vk->family].timestampValidBits : 0;
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(vk->phys, &p);
    if (bits && p.limits.timestampPeriod > 0) { /* else no per-op timing */
        vk->tick_ns = p.limits.timestampPeriod;
        vk->timestamp_mask = bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
        VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                     .queryCount = 2 * MAX_SETS};
        VK_TRY(vkCreateQueryPool(vk->device, &qpi, NULL, &vk->queries));
    }
    return DV_OK;
}

dv_status dv_vk_open(const char *select, bool validation, struct dv_vk **out)
{
    *out = NULL;
    struct dv_vk *vk = calloc(1, sizeof *vk);
    if (!vk) return dv_fail(DV_E_NOMEM, "out of memory");
    const char *env = getenv("DV_VK_VALIDATION");
    dv_status s = make_instance(vk, validation || (env && strcmp(env, "1") == 0));
    if (!s) s = pick_device(vk, select);
    if (!s) s = make_device(vk);
    if (s) {
        dv_vk_close(vk);
        return s;
    }
    *out = vk;
    return DV_OK;
}

void dv_vk_close(struct dv_vk *vk)
{
    if (!vk) return;
    if (vk->device) {
        vkDeviceWaitIdle(vk->device);
        dv_vk_buf_free(vk, &vk->staging);
        if (vk->queries) vkDestroyQueryPool(vk->device, vk->queries, NULL);
        if (vk->desc_pool) vkDestroyDescriptorPool(vk->device, vk->desc_pool, NULL);
        if (vk->fence) vkDestroyFence(vk->device, vk->fence, NULL);
        if (vk->cmd_pool) vkDestroyCommandPool(vk->device, vk->cmd_pool, NULL);
        vkDestroyDevice(vk->device, NULL);
    }
    if (vk->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy = (PFN_vkDestroyDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(vk->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(vk->instance, vk->messenger, NULL);
    }
    if (vk->instance) vkDestroyInstance(vk->instance, NULL);
    free(vk);
}

dv_status dv_vk_device_types(VkPhysicalDeviceType *types, int cap, int *n)
{
    *n = 0;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "diverge",
                             .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app};
    VkInstance inst;
    VkResult r = vkCreateInstance(&ci, NULL, &inst);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
        return DV_OK; /* no driver: no device */
    if (r != VK_SUCCESS) return vk_fail(r, "vkCreateInstance");
    dv_vk_keep_drivers_resident();
    uint32_t count = 0;
    r = vkEnumeratePhysicalDevices(inst, &count, NULL);
    VkPhysicalDevice devs[64];
    uint32_t got = count < 64 ? count : 64;
    if (r == VK_SUCCESS && got) r = vkEnumeratePhysicalDevices(inst, &got, devs);
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
        for (uint32_t i = 0; i < got && (int)i < cap; i++) {
            VkPhysicalDeviceProperties p;
            vkGetPhysicalDeviceProperties(devs[i], &p);
            types[i] = p.deviceType;
        }
        *n = (int)count;
    }
    vkDestroyInstance(inst, NULL);
    return r == VK_SUCCESS || r == VK_INCOMPLETE ? DV_OK
                                                  : vk_fail(r, "vkEnumeratePhysicalDevices");
}

const char *dv_vk_device_name(const struct dv_vk *vk) { return vk->name; }
const char *dv_vk_driver_name(const struct dv_vk *vk) { return vk->driver; }
int dv_vk_validation_errors(const struct dv_vk *vk) { return vk->validation_errors; }

static dv_status begin(struct dv_vk *vk);
static void barrier(struct dv_vk *vk);

/* ---- buffers --------------------------------------------------------------- */

static int memory_type(const struct dv_vk *vk, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < vk->mem.memoryTypeCount; i++)
        if ((bits >> i & 1) && (vk->mem.memoryTypes[i].propertyFlags & want) == want)
            return (int)i;
    return -1;
}

dv_status dv_vk_buf_alloc(struct dv_vk *vk, VkDeviceSize size, bool host,
                          struct dv_vk_buf *b)
{
    memset(b, 0, sizeof *b);
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = size ? size : 4,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VK_TRY(vkCreateBuffer(vk->device, &bi, NULL, &b->buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->device, b->buf, &req);
    VkMemoryPropertyFlags want = host ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                        VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                      : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    int t = memory_type(vk, req.memoryTypeBits, want);
    if (t < 0) {
        dv_vk_buf_free(vk, b);
        return dv_fail(DV_E_DEVICE, "vulkan: no %s memory type for a buffer",
                       host ? "host-visible" : "device-local");
    }
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = req.size, .memoryTypeIndex = (uint32_t)t};
    VkResult r = vkAllocateMemory(vk->device, &ai, NULL, &b->mem);
    if (r == VK_SUCCESS) r = vkBindBufferMemory(vk->device, b->buf, b->mem, 0);
    if (r == VK_SUCCESS && host) r = vkMapMemory(vk->device, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
    if (r != VK_SUCCESS) {
        dv_vk_buf_free(vk, b);
        return vk_fail(r, "allocating buffer memory");
    }
    b->size = size;
    /* zeroed, so that nothing reads what an earlier user left there */
    if (host) {
        memset(b->map, 0, (size_t)req.size);
        return DV_OK;
    }
    dv_status s = vk->recording ? DV_OK : begin(vk);
    if (s) return s;
    vkCmdFillBuffer(vk->cmd, b->buf, 0, VK_WHOLE_SIZE, 0);
    barrier(vk);
    return DV_OK;
}

void dv_vk_buf_free(struct dv_vk *vk, struct dv_vk_buf *b)
{
    /* recorded work (at least this buffer's zero fill) may still use it; a
     * failure here was already or will be reported by the caller's path */
    if (vk->recording && b->buf) (void)dv_vk_submit(vk);
    if (b->map) vkUnmapMemory(vk->device, b->mem);
    if (b->buf) vkDestroyBuffer(vk->device, b->buf, NULL);
    if (b->mem) vkFreeMemory(vk->device, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

/* ---- kernels ----------------------------------------------------------- */

dv_status dv_vk_kernel_new(struct dv_vk *vk, const uint32_t *spv, size_t spv_bytes,
                           int n_bufs, uint32_t push_size, const uint32_t *spec,
                           int n_spec, struct dv_vk_kernel *k)
{
    memset(k, 0, sizeof *k);
    if (n_bufs < 1 || n_bufs > MAX_BINDINGS || push_size % 4 || push_size > 128 ||
        n_spec < 0 || n_spec > 16)
        return dv_fail(DV_E_USAGE, "vulkan: kernel with %d buffers, %u push bytes, "
                       "%d constants", n_bufs, push_size, n_spec);
    k->n_bufs = n_bufs;
    k->push_size = push_size;
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = spv_bytes, .pCode = spv};
    VK_TRY(vkCreateShaderModule(vk->device, &mi, NULL, &k->module));
    VkDescriptorSetLayoutBinding b[MAX_BINDINGS];
    for (int i = 0; i < n_bufs; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = (uint32_t)i,
                                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = (uint32_t)n_bufs, .pBindings = b};
    VK_TRY(vkCreateDescriptorSetLayout(vk->device, &li, NULL, &k->set_layout));
    VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1, .pSetLayouts = &k->set_layout,
                                      .pushConstantRangeCount = push_size ? 1 : 0,
                                      .pPushConstantRanges = &pr};
    VK_TRY(vkCreatePipelineLayout(vk->device, &pli, NULL, &k->layout));
    VkSpecializationMapEntry me[16];
    for (int i = 0; i < n_spec; i++)
        me[i] = (VkSpecializationMapEntry){(uint32_t)i, (uint32_t)(4 * i), 4};
    VkSpecializationInfo si = {(uint32_t)n_spec, me, (size_t)n_spec * 4, spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = k->module,
                  .pName = "main", .pSpecializationInfo = n_spec ? &si : NULL},
        .layout = k->layout};
    VK_TRY(vkCreateComputePipelines(vk->device, VK_NULL_HANDLE, 1, &ci, NULL, &k->pipeline));
    return DV_OK;
}

void dv_vk_kernel_free(struct dv_vk *vk, struct dv_vk_kernel *k)
{
    if (k->pipeline) vkDestroyPipeline(vk->device, k->pipeline, NULL);
    if (k->layout) vkDestroyPipelineLayout(vk->device, k->layout, NULL);
    if (k->set_layout) vkDestroyDescriptorSetLayout(vk->device, k->set_layout, NULL);
    if (k->module) vkDestroyShaderModule(vk->device, k->module, NULL);
    memset(k, 0, sizeof *k);
}

/* ---- recording ----------------------------------------------------------- */

static dv_status begin(struct dv_vk *vk)
{
    VK_TRY(vkResetDescriptorPool(vk->device, vk->desc_pool, 0));
    VK_TRY(vkResetCommandBuffer(vk->cmd, 0));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vkBeginCommandBuffer(vk->cmd, &bi));
    if (vk->timing) vkCmdResetQueryPool(vk->cmd, vk->queries, 0, 2 * MAX_SETS);
    vk->recording = true;
    vk->n_sets = 0;
    return DV_OK;
}

/* Every write before it (shader or transfer) is visible to every read or
 * write after it (shader, transfer or host). */
static void barrier(struct dv_vk *vk)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
                                           VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT |
                                           VK_ACCESS_TRANSFER_WRITE_BIT |
                                           VK_ACCESS_HOST_READ_BIT};
    const VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                                    VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(vk->cmd, st, st | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL,
                         0, NULL);
}

dv_status dv_vk_begin(struct dv_vk *vk)
{
    if (vk->recording) return dv_fail(DV_E_USAGE, "vulkan: dv_vk_begin while recording");
    return begin(vk);
}

dv_status dv_vk_dispatch(struct dv_vk *vk, const struct dv_vk_kernel *k,
                         const struct dv_vk_buf *const *bufs, const void *push,
                         const uint32_t groups[3])
{
    dv_status s = DV_OK;
    if (vk->recording && vk->n_sets == MAX_SETS) s = dv_vk_submit(vk);
    if (!s && !vk->recording) s = begin(vk);
    if (s) return s;
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = vk->desc_pool,
                                      .descriptorSetCount = 1,
                                      .pSetLayouts = &k->set_layout};
    VkDescriptorSet set;
    VK_TRY(vkAllocateDescriptorSets(vk->device, &ai, &set));
    VkDescriptorBufferInfo bi[MAX_BINDINGS];
    VkWriteDescriptorSet w[MAX_BINDINGS];
    for (int i = 0; i < k->n_bufs; i++) {
        bi[i] = (VkDescriptorBufferInfo){bufs[i]->buf, 0, VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                      .dstSet = set, .dstBinding = (uint32_t)i,
                                      .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &bi[i]};
    }
    vkUpdateDescriptorSets(vk->device, (uint32_t)k->n_bufs, w, 0, NULL);
    vkCmdBindPipeline(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->pipeline);
    vkCmdBindDescriptorSets(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, 1, &set,
                            0, NULL);
    if (k->push_size)
        vkCmdPushConstants(vk->cmd, k->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, k->push_size,
                           push);
    const uint32_t q = 2 * (uint32_t)vk->n_sets;
    if (vk->timing)
        vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, vk->queries, q);
    vkCmdDispatch(vk->cmd, groups[0], groups[1], groups[2]);
    if (vk->timing)
        vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, vk->queries, q + 1);
    vk->n_sets++;
    barrier(vk);
    return DV_OK;
}

dv_status dv_vk_submit(struct dv_vk *vk)
{
    if (!vk->recording) return DV_OK;
    vk->recording = false;
    VK_TRY(vkEndCommandBuffer(vk->cmd));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                       .pCommandBuffers = &vk->cmd};
    VK_TRY(vkResetFences(vk->device, 1, &vk->fence));
    VK_TRY(vkQueueSubmit(vk->queue, 1, &si, vk->fence));
    VK_TRY(vkWaitForFences(vk->device, 1, &vk->fence, VK_TRUE, UINT64_MAX));
    if (vk->validation_errors)
        return dv_fail(DV_E_DEVICE, "vulkan: the validation layer reported %d problems",
                       vk->validation_errors);
    if (vk->timing && vk->n_sets) {
        uint64_t *ts = vk->ts;
        VK_TRY(vkGetQueryPoolResults(vk->device, vk->queries, 0, 2 * (uint32_t)vk->n_sets,
                                     sizeof vk->ts, ts, sizeof ts[0],
                                     VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
        for (int i = 0; i < vk->n_sets; i++)
            vk->gpu_ns += (double)((ts[2 * i + 1] - ts[2 * i]) & vk->timestamp_mask) *
                          vk->tick_ns;
    }
    return DV_OK;
}

bool dv_vk_set_timing(struct dv_vk *vk, bool on)
{
    vk->timing = on && vk->queries && !vk->recording;
    vk->gpu_ns = 0;
    return vk->timing;
}

double dv_vk_gpu_ns(struct dv_vk *vk)
{
    double t = vk->gpu_ns;
    vk->gpu_ns = 0;
    return t;
}

dv_status dv_vk_copy(struct dv_vk *vk, const struct dv_vk_buf *src, VkDeviceSize src_off,
                     const struct dv_vk_buf *dst, VkDeviceSize dst_off, VkDeviceSize bytes)
{
    if (src_off > src->size || bytes > src->size - src_off || dst_off > dst->size ||
        bytes > dst->size - dst_off)
        return dv_fail(DV_E_USAGE, "vulkan: copy of %llu bytes out of bounds",
                       (unsigned long long)bytes);
    if (!bytes) return DV_OK;
    dv_status s = vk->recording ? DV_OK : begin(vk);
    if (s) return s;
    VkBufferCopy c = {src_off, dst_off, bytes};
    vkCmdCopyBuffer(vk->cmd, src->buf, dst->buf, 1, &c);
    barrier(vk);
    return DV_OK;
}

static dv_status staging(struct dv_vk *vk)
{
    return vk->staging.buf ? DV_OK : dv_vk_buf_alloc(vk, STAGING_BYTES, true, &vk->staging);
}

dv_status dv_vk_upload(struct dv_vk *vk, const struct dv_vk_buf *dst, VkDeviceSize off,
                       const void *src, VkDeviceSize bytes)
{
    if (off > dst->size || bytes > dst->size - off)
        return dv_fail(DV_E_USAGE, "vulkan: upload of %llu bytes out of bounds",
                       (unsigned long long)bytes);
    dv_status s = dv_vk_submit(vk); /* queued work may still read dst */
    if (!s && dst->map) memcpy((char *)dst->map + off, src, bytes);
    if (s || dst->map) return s;
    if ((s = staging(vk))) return s;
    for (VkDeviceSize done = 0; done < bytes && !s; done += STAGING_BYTES) {
        const VkDeviceSize n = bytes - done < STAGING_BYTES ? bytes - done : STAGING_BYTES;
        memcpy(vk->staging.map, (const char *)src + done, n);
        s = dv_vk_copy(vk, &vk->staging, 0, dst, off + done, n);
        if (!s) s = dv_vk_submit(vk);
    }
    return s;
}

dv_status dv_vk_download(struct dv_vk *vk, const struct dv_vk_buf *src, VkDeviceSize off,
                         void *dst, VkDeviceSize bytes)
{
    if (off > src->size || bytes > src->size - off)
        return dv_fail(DV_E_USAGE, "vulkan: read-back of %llu bytes out of bounds",
                       (unsigned long long)bytes);
    dv_status s = src->map ? dv_vk_submit(vk) : staging(vk);
    if (!s && src->map) memcpy(dst, (const char *)src->map + off, bytes);
    if (s || src->map) return s;
    for (VkDeviceSize done = 0; done < bytes && !s; done += STAGING_BYTES) {
        const VkDeviceSize n = bytes - done < STAGING_BYTES ? bytes - done : STAGING_BYTES;
        s = dv_vk_copy(vk, src, off + done, &vk->staging, 0, n);
        if (!s) s = dv_vk_submit(vk);
        if (!s) memcpy((char *)dst + done, vk->staging.map, n);
    }
    return s;
}
