/*
 * vk.h - the Vulkan runtime: one device, its compute queue, buffers,
 * compute kernels (SPIR-V embedded in the library) and command recording.
 *
 * Work is recorded as it is asked for (dispatches, copies) and runs at
 * dv_vk_submit(), which waits for the queue (a fence), or before any host
 * transfer. Each dispatch binds its buffers through a descriptor set from
 * a pool reset per recording, and every command is followed by a memory
 * barrier, so each sees the writes of the ones before it. Every VkResult failure is
 * DV_E_DEVICE with "vulkan: CALL: VK_ERROR_...".
 */
#ifndef DV_VK_H
#define DV_VK_H

#include <stdbool.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "diverge.h"

struct dv_vk;

/* Open a device. select: NULL (then the environment variable
 * DV_VK_DEVICE, then the first discrete GPU, integrated GPU, virtual GPU,
 * CPU device in that order), a decimal index into the loader's list, or a
 * substring of the device name ("llvmpipe", "H100"). validation (or the
 * environment variable DV_VK_VALIDATION=1): enable
 * VK_LAYER_KHRONOS_validation; any message it reports makes later calls
 * fail. DV_E_DEVICE "vulkan: no device ..." with how to get lavapipe when
 * there is no loader or no device. */
dv_status dv_vk_open(const char *select, bool validation, struct dv_vk **out);
void dv_vk_close(struct dv_vk *vk);

/* Mark every Vulkan driver and layer now loaded (dlopen RTLD_NODELETE)
 * so the loader's dlclose at vkDestroyInstance leaves it mapped until the
 * process exits; dv_vk_open does this after creating its instance. Without
 * it a driver's static caches become unreachable at vkDestroyInstance and
 * LeakSanitizer reports them as our leaks (vk_resident.c says why this is
 * the fix and not a suppression). Returns how many modules it marked. */
int dv_vk_keep_drivers_resident(void);

/* The physical devices the loader lists, in its order (the order ggml's
 * Vulkan backend numbers them in): their count in *n, the types of the
 * first `cap` in types[]. A bare instance is created for this and
 * destroyed (its drivers kept resident, as dv_vk_open does). No loader or
 * no driver: *n = 0 and DV_OK; DV_E_DEVICE when enumeration fails. */
dv_status dv_vk_device_types(VkPhysicalDeviceType *types, int cap, int *n);

/* "llvmpipe (LLVM 15.0.6, 256 bits)"; "Mesa 22.3.6" style driver info. */
const char *dv_vk_device_name(const struct dv_vk *vk);
const char *dv_vk_driver_name(const struct dv_vk *vk);
/* Messages the validation layer reported so far. */
int dv_vk_validation_errors(const struct dv_vk *vk);

struct dv_vk_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map; /* host pointer when host visible, else NULL */
};

/* A storage buffer of size bytes, zeroed; host: host-visible and coherent
 * (for uploads and read-back), else device-local (zeroed by a recorded
 * fill). */
dv_status dv_vk_buf_alloc(struct dv_vk *vk, VkDeviceSize size, bool host,
                          struct dv_vk_buf *b);
void dv_vk_buf_free(struct dv_vk *vk, struct dv_vk_buf *b);

/* A compute pipeline with n_bufs storage buffers at bindings 0.., push
 * constants of push_size bytes (a multiple of 4, <= 128) and n_spec
 * 32-bit specialization constants with ids 0... */
struct dv_vk_kernel {
    VkShaderModule module;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    int n_bufs;
    uint32_t push_size;
};
dv_status dv_vk_kernel_new(struct dv_vk *vk, const uint32_t *spv, size_t spv_bytes,
                           int n_bufs, uint32_t push_size, const uint32_t *spec,
                           int n_spec, struct dv_vk_kernel *k);
void dv_vk_kernel_free(struct dv_vk *vk, struct dv_vk_kernel *k);

/* Start a recording explicitly (optional: dispatches and copies start one);
 * DV_E_USAGE while one is open. */
dv_status dv_vk_begin(struct dv_vk *vk);
/* Record one dispatch of k over groups[3] workgroups with bufs[k->n_bufs]
 * and push[k->push_size]. Recording starts by itself; a full recording
 * (4096 dispatches) is submitted first. */
dv_status dv_vk_dispatch(struct dv_vk *vk, const struct dv_vk_kernel *k,
                         const struct dv_vk_buf *const *bufs, const void *push,
                         const uint32_t groups[3]);
/* Record a buffer-to-buffer copy (bounds-checked). */
dv_status dv_vk_copy(struct dv_vk *vk, const struct dv_vk_buf *src, VkDeviceSize src_off,
                     const struct dv_vk_buf *dst, VkDeviceSize dst_off, VkDeviceSize bytes);
/* Submit what was recorded and wait for it (nothing recorded: DV_OK). */
dv_status dv_vk_submit(struct dv_vk *vk);

/* Host <-> buffer transfers: submit queued work first, then copy through a
 * staging buffer (directly when the buffer is host-visible). */
dv_status dv_vk_upload(struct dv_vk *vk, const struct dv_vk_buf *dst, VkDeviceSize off,
                       const void *src, VkDeviceSize bytes);
dv_status dv_vk_download(struct dv_vk *vk, const struct dv_vk_buf *src, VkDeviceSize off,
                         void *dst, VkDeviceSize bytes);

/* Per-dispatch timestamps (turn on between submissions): false when the
 * queue has no timestamps. dv_vk_gpu_ns returns the summed dispatch time
 * since the last call and restarts it. */
bool dv_vk_set_timing(struct dv_vk *vk, bool on);
double dv_vk_gpu_ns(struct dv_vk *vk);

#endif
