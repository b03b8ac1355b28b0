/*
 * llama_dl.h - llama.cpp, loaded at run time.
 *
 * diverge does not link libllama: dv_llama_load() dlopens
 * $DIVERGE_LLAMA_CPP_LIBDIR/libllama.so (else the libdir the build found,
 * DV_LLAMA_CPP_LIBDIR), resolves every function the backend calls into a
 * table of typed pointers, points llama.cpp's and ggml's logs at a
 * function that keeps the last error line and prints nothing, and loads
 * ggml's backends from the same directory (ggml_backend_load_all_from_path:
 * the best CPU variant for this machine, Vulkan, CUDA ... whatever is
 * there). ggml's backend registry is per process, so this happens once per
 * process and the libraries stay loaded until it exits.
 */
#ifndef DV_LLAMA_DL_H
#define DV_LLAMA_DL_H

#include <stdbool.h>
#include <stddef.h>

#include "diverge.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

/* Every llama.cpp and ggml function the backend calls. */
#define DV_LLAMA_FUNCS(X)                                                      \
    X(llama_backend_init) X(llama_log_set) X(llama_model_default_params)       \
    X(llama_context_default_params) X(llama_model_load_from_file)              \
    X(llama_model_free) X(llama_init_from_model) X(llama_free) X(llama_n_ctx)  \
    X(llama_model_n_layer) X(llama_model_n_embd) X(llama_model_n_head)         \
    X(llama_model_n_head_kv) X(llama_model_get_vocab) X(llama_vocab_n_tokens)  \
    X(llama_batch_init) X(llama_batch_free) X(llama_decode)                    \
    X(llama_get_logits_ith) X(llama_get_memory) X(llama_memory_seq_rm)         \
    X(ggml_log_set) X(ggml_version) X(ggml_commit) X(ggml_op_name)             \
    X(ggml_nbytes) X(ggml_backend_load_all_from_path) X(ggml_backend_dev_count) \
    X(ggml_backend_dev_get) X(ggml_backend_dev_name)                           \
    X(ggml_backend_dev_description) X(ggml_backend_dev_type)                   \
    X(ggml_backend_dev_backend_reg) X(ggml_backend_reg_name)                   \
    X(ggml_backend_reg_get_proc_address)                                       \
    X(ggml_backend_tensor_get)                                                 \
    /* one op alone (llama_cpp.c, lc_run_op) */                                \
    X(ggml_init) X(ggml_free) X(ggml_tensor_overhead) X(ggml_graph_overhead)   \
    X(ggml_new_tensor) X(ggml_get_rows) X(ggml_rms_norm) X(ggml_mul)           \
    X(ggml_mul_mat) X(ggml_rope_ext) X(ggml_soft_max_ext) X(ggml_add)          \
    X(ggml_swiglu_split) X(ggml_new_graph) X(ggml_build_forward_expand)        \
    X(ggml_backend_dev_init) X(ggml_backend_free)                              \
    X(ggml_backend_alloc_ctx_tensors) X(ggml_backend_buffer_free)              \
    X(ggml_backend_tensor_set) X(ggml_backend_graph_compute)

#define DV_LLAMA_MAX_VK 16

struct dv_llama_api {
#define DV_X(f) __typeof__(&f) f;
    DV_LLAMA_FUNCS(DV_X)
#undef DV_X
    char libdir[512];  /* where the libraries came from */
    char release[128]; /* libdir/../STAMP (scripts/fetch-llama-cpp), else "" */
    /* GGML_VK_VISIBLE_DEVICES was unset and set here to every physical
     * device, so ggml's VulkanN is the loader's device N, whose
     * VkPhysicalDeviceType is vk_types[N] (N < n_vk) */
    bool vk_env_ours;
    int n_vk;
    int vk_types[DV_LLAMA_MAX_VK];
};

/* Load llama.cpp (see above) and return its table (*out, valid until the
 * process exits). DV_E_DEVICE with one line naming the path and the
 * problem when a library cannot be loaded, a function is missing, or the
 * library's ggml op table disagrees with the headers this diverge was
 * built with. A failed load is tried again on the next call. */
dv_status dv_llama_load(const struct dv_llama_api **out);

/* The last line llama.cpp or ggml logged at error level since the last
 * dv_llama_log_clear(), into buf ("" when none). */
void dv_llama_log_last(char *buf, size_t cap);
void dv_llama_log_clear(void);

#endif
