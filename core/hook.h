/*
 * hook.h - how a forward pass hands its named tensors out.
 *
 * Every backend calls the hook once per tensor of design.md's naming table,
 * in execution order (see ops.h). Ask-then-receive, as ggml's eval callback:
 * the pass first asks want() with the tensor's description; only when it
 * says yes does take() get the data, so a backend that would have to copy
 * (a GPU) copies nothing for unwanted tensors.
 */
#ifndef DV_HOOK_H
#define DV_HOOK_H

#include <stdbool.h>
#include <stdint.h>

#include "diverge.h"

struct dv_tensor_desc {
    int pass;               /* forward call index since the engine's reset */
    int pos0;               /* tokens already in the KV cache */
    int n_tokens;           /* tokens of this pass */
    const int32_t *tokens;  /* [n_tokens], borrowed */
    const char *name;       /* "blk.3.q_rope", "logits" */
    int layer;              /* -1 outside layers */
    int op;                 /* enum dv_op */
    int order;              /* execution index within the pass, from 0 */
    int n_dims;
    int64_t shape[4];       /* row-major, outermost first */
    int type;               /* DV_TYPE_F32 or DV_TYPE_F64 */
};

struct dv_hook {
    /* Called at the start of every pass, before any tensor. May be NULL. */
    dv_status (*begin_pass)(void *user, int pass, int pos0, int n_tokens,
                            const int32_t *tokens);
    /* Does the hook want this tensor? NULL means yes to all. */
    bool (*want)(void *user, const struct dv_tensor_desc *d);
    /* The tensor's data, row-major with d->shape, valid only during the
     * call (borrowed). A status other than DV_OK stops the pass and is
     * returned by the forward call. May be NULL (then want() is not asked). */
    dv_status (*take)(void *user, const struct dv_tensor_desc *d,
                      const void *data);
    /* Called after the pass's last tensor when the pass succeeded. May
     * be NULL. A failure is returned by the forward call. */
    dv_status (*end_pass)(void *user, int pass);
    void *user;
};

#endif
