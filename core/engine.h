/*
 * engine.h - a backend running a model's forward pass on one KV cache.
 *
 * A backend is a table of functions (struct dv_backend); an engine is one
 * backend bound to a model and a context size. The front (engine.c) checks
 * every argument once, so backends may trust them.
 *
 * Passes continue the cache: dv_engine_forward(e, tokens, n, pos0) puts
 * query t of the pass at absolute position pos0 + t, seeing keys
 * 0 .. pos0 + t. pos0 may rewind (overwrite a suffix of the cache) but not
 * skip ahead of the tokens already cached.
 */
#ifndef DV_ENGINE_H
#define DV_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hook.h"
#include "model.h"

enum dv_backend_kind {
    DV_BACKEND_CPU,     /* f32, OpenBLAS sgemm: the reference */
    DV_BACKEND_CPU_F64, /* f64, BLAS dgemm: the oracle for noise floors */
    DV_BACKEND_VULKAN,  /* f32, compute kernels on a Vulkan device: under test */
    DV_BACKEND_LLAMA_CPP, /* llama.cpp itself (loaded at run time): under test */
    DV_BACKEND_COUNT
};

/* "cpu", "cpu-f64", "vulkan", "llama.cpp"; "?" when out of range. */
const char *dv_backend_name(int kind);
/* The backend named s, or -1. */
int dv_backend_from_name(const char *s);

struct dv_engine_opts {
    int n_ctx;   /* positions the KV cache holds */
    int n_batch; /* most tokens in one pass (<= n_ctx); 0 means n_ctx */
    /* vulkan and llama.cpp (other backends ignore them): */
    const char *device; /* vulkan: index or name substring; NULL: DV_VK_DEVICE
                           or the default. llama.cpp: a ggml device name
                           ("CPU", "Vulkan0"); NULL: the first GPU, else CPU */
    bool validation;    /* vulkan: Khronos validation layer (also DV_VK_VALIDATION=1) */
    int gpu_layers;     /* 0: every layer on the device; N > 0: the first N,
                           the rest on the CPU reference (llama.cpp: passed
                           on as its n_gpu_layers, see llama_cpp.c); -1: none */
    int inject;         /* DV_FAULT_* (kernels/fault.h), 0 none */
    int inject_layer;   /* the fault's layer, -1 every layer */
    /* cpu backends inside a split run only: layers below this one run
     * elsewhere, so their weights are not loaded (0: all) */
    int cpu_layer0;
    /* Declared arithmetic. The cpu backends emulate it (bit-exact to
     * ggml's row quantizers); an engine backend passes kv_type through. */
    int act_quant; /* enum dv_act_quant; 0 (none) by default */
    int attn_quant; /* enum dv_attn_quant; 0 (auto) by default */
    int kv_type;   /* DV_TYPE_F32 (0, default), DV_TYPE_F16 or DV_TYPE_Q8_0 */
    /* llama.cpp only: */
    int flash_attn; /* 0 off (default: the attention core stays visible), 1 on */
    int n_threads;  /* CPU threads; 0: the backend's default */
};

/* How activations are rounded inside matmuls, as an engine declares it:
 * the vector a quantized weight row is multiplied with is first quantized
 * to this type (llama.cpp's CPU backend: vec_dot_type). AUTO picks per
 * weight type what llama.cpp's CPU backend does. */
enum dv_act_quant {
    DV_ACTQ_NONE, /* exact f32 activations */
    DV_ACTQ_AUTO, /* per weight type: q8_0, q8_1, q8_K or f16, as ggml-cpu */
    DV_ACTQ_Q8_0,
    DV_ACTQ_Q8_1,
    DV_ACTQ_Q8_K,
    DV_ACTQ_F16,
    DV_ACTQ_AMX,  /* AUTO, but f16 weights as ggml-cpu's AMX buffer type
                     multiplies them: with f32 activations (CPUs with AMX) */
    DV_ACTQ_COUNT
};
/* How the attention products round their operands, q and K for the
 * scores and the probabilities and V for probabilities x V. AUTO as
 * ggml's CPU backend (q and the probabilities to the cache's vec_dot_type,
 * unless act_quant is none), NONE neither, Q only q, QP both; VK as ggml's
 * Vulkan backend on a device without cooperative matrices or integer dot
 * products (lavapipe, measured bit for bit: arith.h, dv_arith_attn): a
 * pass of one token multiplies the cache's values in f32, a longer pass
 * rounds q, K, the probabilities and V to f16 and, with an f16 cache, sums
 * probabilities x V in f16. */
enum dv_attn_quant {
    DV_ATTNQ_AUTO,
    DV_ATTNQ_NONE,
    DV_ATTNQ_Q,
    DV_ATTNQ_QP,
    DV_ATTNQ_VK,
    DV_ATTNQ_COUNT
};
/* "auto", "none", "q", "qp", "vk"; "?" out of range. */
const char *dv_attn_quant_name(int m);
/* The mode named s, or -1. */
int dv_attn_quant_from_name(const char *s);

/* "none", "auto", "q8_0", "q8_1", "q8_K", "f16", "amx"; "?" out of range. */
const char *dv_act_quant_name(int aq);
/* The mode named s, or -1. */
int dv_act_quant_from_name(const char *s);

/* What one forward call computes. */
struct dv_pass {
    int index; /* passes since the last reset, from 0 */
    int pos0;
    int n_tokens;
    const int32_t *tokens; /* borrowed */
};

/* Declared arithmetic as a dump records it (act_quant, attn_quant and
 * kv_type attributes, diverge-dump(5)). act_quant -1: not known (an engine
 * backend on a device whose rounding diverge has not measured). */
struct dv_arith {
    int act_quant;  /* enum dv_act_quant, -1 unknown */
    int attn_quant; /* enum dv_attn_quant */
    int kv_type;    /* DV_TYPE_F32, DV_TYPE_F16, DV_TYPE_Q8_0 */
};
/* The exact arithmetic: none, none, f32. */
#define DV_ARITH_EXACT ((struct dv_arith){DV_ACTQ_NONE, DV_ATTNQ_NONE, DV_TYPE_F32})
/* Does a round nothing (exact activations, f32 cache, attention "none")? */
bool dv_arith_is_exact(struct dv_arith a);

/* One backend fact (struct dv_backend's attrs). Keys are 1..63 bytes of
 * [A-Za-z0-9_.-] and never a key of the dump schema. */
enum dv_battr_kind { DV_BATTR_STR, DV_BATTR_INT, DV_BATTR_REAL, DV_BATTR_KIND_COUNT };
struct dv_backend_attr {
    const char *key;
    int kind;        /* enum dv_battr_kind */
    const char *str; /* DV_BATTR_STR */
    int64_t i;       /* DV_BATTR_INT */
    double r;        /* DV_BATTR_REAL */
};

/* One op of the forward pass, alone (struct dv_backend's run_op): the
 * inputs as f32 host arrays, in the layouts of design.md's tensors.
 *   GET_ROWS  w: the embedding, ids[T]                    -> [T, cols]
 *   RMSNORM   a [T, n], w: the norm vector [n]            -> [T, n]
 *   MATMUL    a [T, cols], w [rows, cols]                 -> [T, rows]
 *   ROPE      a [T, nh, head_dim] at positions pos0..      -> the same
 *   KQ        a = q_rope [T, H*hd], past [pos0, Hkv*hd] (the cache rows of
 *             earlier passes, as their k_rope), b = k_rope [T, Hkv*hd]
 *                                                          -> [H, T, pos0+T]
 *   SOFTMAX   a = the scores [H, T, pos0+T]                -> the same
 *   KQV       a = the probabilities, past and b as for KQ but of v
 *                                                          -> [T, H*hd]
 *   ADD, SILU_MUL  a, b [n]                                -> [n]
 * The backend computes it as its forward pass computes that op (the same
 * kernels, its declared arithmetic, its fault at `layer`). */
struct dv_op_call {
    int op;            /* enum dv_op */
    int layer;         /* the op's layer, -1 outside the layers */
    int T, pos0;
    const float *a, *b, *past;
    const struct dv_gguf_tensor *w;
    const int32_t *ids;
    int64_t n;         /* RMSNORM row width; ADD, SILU_MUL values */
    int64_t nh;        /* ROPE heads */
};

/* A backend: designated-initializer table, as ggml's backend interface. */
struct dv_backend {
    const char *name;
    int act_type; /* element type of activations and hooked tensors */
    dv_status (*open)(const struct dv_model *m, const struct dv_engine_opts *o,
                      void **impl);
    dv_status (*forward)(void *impl, const struct dv_pass *p,
                         const struct dv_hook *h);
    /* logits of token t of the last pass, widened to double, into out[V] */
    void (*logits)(void *impl, int t, double *out);
    void (*free)(void *impl);
    /* The device and driver this backend runs on, for dump attributes
     * ("AMD EPYC 7763", "OpenBLAS 0.3.21 ..."). */
    void (*describe)(void *impl, char *device, size_t dcap, char *driver,
                     size_t rcap);
    /* Optional (NULL: none): facts only this backend knows (an engine's
     * release, its own names for the device and the cache types), for the
     * dump's root attributes. Returns the array and sets *n; array and
     * strings belong to impl and live as long as it. */
    const struct dv_backend_attr *(*attrs)(void *impl, int *n);
    /* The arithmetic the engine is known to compute (struct dv_arith),
     * for an engine diverge does not write; NULL: what the options say
     * (the cpu backends emulate them, vulkan computes exact f32). */
    void (*arith)(void *impl, struct dv_arith *a);
    /* Optional (NULL: the backend cannot run an op alone): op c into y
     * (act_type values; c->T must not exceed the engine's n_batch nor
     * pos0 + T its n_ctx). DV_E_USAGE for an op it has no kernel for. */
    dv_status (*run_op)(void *impl, const struct dv_op_call *c, void *y);
    /* Optional (NULL: every op): can run_op run op (enum dv_op)? */
    bool (*has_op)(void *impl, int op);
    /* Optional: a pass from layer layer0 on, its input residual x [T, d]
     * (f32) given instead of the layers below (which it neither runs nor
     * caches); layer0 0 with x NULL is forward. */
    dv_status (*forward_from)(void *impl, const struct dv_pass *p, const struct dv_hook *h,
                              int layer0, const float *x);
};

extern const struct dv_backend dv_backend_cpu;
extern const struct dv_backend dv_backend_cpu_f64;
extern const struct dv_backend dv_backend_vulkan;
/* kernels/llama_cpp.c, or kernels/llama_none.c in a build without it
 * (whose open fails with DV_E_DEVICE saying so). */
extern const struct dv_backend dv_backend_llama_cpp;

struct dv_engine;

/* Bind backend `kind` to model m (borrowed: must outlive the engine) with
 * the context of o. Allocates every buffer now; forward calls allocate
 * nothing. DV_E_USAGE for a bad kind or sizes, DV_E_NOMEM. */
dv_status dv_engine_open(const struct dv_model *m, int kind,
                         const struct dv_engine_opts *o,
                         struct dv_engine **out);
void dv_engine_free(struct dv_engine *e);

/* The values op c outputs (struct dv_op_call), for model config cfg; 0 for
 * an op that has no output of its own (VIEW) or bad sizes. */
int64_t dv_op_call_count(const struct dv_config *cfg, const struct dv_op_call *c);
/* dv_engine_forward from layer layer0 on, fed x [n, d] as the residual
 * stream entering it (struct dv_backend's forward_from): DV_E_USAGE when
 * the backend cannot. */
dv_status dv_engine_forward_from(struct dv_engine *e, const int32_t *tokens, int n, int pos0,
                                 int layer0, const float *x, const struct dv_hook *hook);
/* Can e run op (enum dv_op) alone (run_op, has_op)? */
bool dv_engine_has_op(const struct dv_engine *e, int op);
/* Run op c alone on e (struct dv_backend's run_op): DV_E_USAGE when the
 * backend has no single-op entry, or the call is out of e's sizes. */
dv_status dv_engine_run_op(struct dv_engine *e, const struct dv_op_call *c, void *y);

/* Run one pass. tokens[n] must be ids < n_vocab, 1 <= n <= n_batch,
 * pos0 <= cached tokens, pos0 + n <= n_ctx; otherwise DV_E_USAGE (nothing
 * changes). hook may be NULL. A hook failure is returned as is; the cache
 * then holds an unspecified state for positions >= pos0. */
dv_status dv_engine_forward(struct dv_engine *e, const int32_t *tokens, int n,
                            int pos0, const struct dv_hook *hook);

/* Logits of token t (0 <= t < n of the last pass) into out[n_vocab]. */
dv_status dv_engine_logits(struct dv_engine *e, int t, double *out);

/* Forget the cache and restart pass numbering. */
void dv_engine_reset(struct dv_engine *e);

/* Tokens in the cache (pos0 + n of the last pass). */
int dv_engine_n_past(const struct dv_engine *e);
const struct dv_backend *dv_engine_backend(const struct dv_engine *e);
/* The backend's device and driver descriptions (see struct dv_backend). */
void dv_engine_describe(const struct dv_engine *e, char *device, size_t dcap,
                        char *driver, size_t rcap);
/* The arithmetic engine e computes (struct dv_backend's arith). */
struct dv_arith dv_engine_arith(const struct dv_engine *e);

/* The backend's own facts (struct dv_backend's attrs), borrowed from the
 * engine; *n = 0 and NULL for a backend without any. */
const struct dv_backend_attr *dv_engine_attrs(const struct dv_engine *e, int *n);

/* ---- for backends: handing tensors to the hook ------------------------ */

/* Shape of a tensor of shape kind `kind` (enum dv_shape_kind) in a pass of
 * T tokens with n_kv cached positions; returns the number of dims. */
int dv_tensor_shape(int kind, const struct dv_config *c, int T, int n_kv,
                    int64_t shape[4]);

/* Builds each tensor's description (name, op, order, shape) in execution
 * order and asks the hook about it. `which` is an enum dv_layer_tensor for
 * layer >= 0, an enum dv_global_tensor for layer -1. */
struct dv_emitter {
    const struct dv_hook *hook;
    const struct dv_config *cfg;
    struct dv_tensor_desc desc;
    char name[48];
    int order;
};
void dv_emitter_init(struct dv_emitter *em, const struct dv_hook *h,
                     const struct dv_pass *p, const struct dv_config *c,
                     int type);
/* Describe the next tensor and ask the hook: true if it wants the data. */
bool dv_emitter_ask(struct dv_emitter *em, int layer, int which);
/* Hand the data of the tensor just asked about. */
dv_status dv_emitter_take(struct dv_emitter *em, const void *data);
/* Ask, and hand data over when wanted (for backends with host data). */
dv_status dv_emit(struct dv_emitter *em, int layer, int which,
                  const void *data);

#endif
