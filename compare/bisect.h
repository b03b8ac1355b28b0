/*
 * bisect.h - from "the GPU output is wrong" to the pass, layer and op where
 * it starts (design.md, Bisect).
 *
 * 1. Live run: the test backend (vulkan), the reference (cpu) and the
 *    oracle (cpu-f64) run the same pass schedule in lockstep, each on its
 *    own KV cache. After each pass every tensor is judged as `diverge
 *    compare` judges it (dv_cmp_judge: the oracle's noise floor, or the
 *    policy's fixed limits without an oracle). The run stops after the
 *    first pass with a divergent tensor: where the error shows.
 * 2. Op replay: each op of that layer (or of output_norm/logits) runs alone
 *    on the test backend's single-op runner (kernels/vk_ops.h, the kernels
 *    of the forward pass, built with the same fault), fed the reference's
 *    exact inputs of that pass, the reference's KV cache included, and is
 *    judged against the reference op's output with the op run in f64 on
 *    the same inputs as its oracle. The first op that diverges alone is the
 *    culprit: where the error starts. Each op also gets its error in the
 *    full run, its inputs' error there and their ratio (amplification).
 * 3. Layer split (black-box): binary search on --gpu-layers N (layers
 *    0..N-1 on the device, the rest on the CPU) for the smallest N whose
 *    final logits diverge, over the passes up to the first divergent one.
 */
#ifndef DV_BISECT_H
#define DV_BISECT_H

#include <stdbool.h>
#include <stdint.h>

#include "compare.h"
#include "diverge.h"
#include "engine.h"
#include "fault.h"
#include "model.h"
#include "policy.h"

struct dv_reader;

struct dv_bisect_opts {
    const char *model_path;     /* for the dumps' attributes */
    int test, ref, oracle;      /* DV_BACKEND_*; oracle -1: none */
    /* Instead of a live test backend: a dump of an engine's run (any
     * engine: diverge.h, h5py), whose passes are the schedule (tokens and
     * sched must be its own). Its ops are attributed from its own inputs
     * (replay.c) rather than replayed. Borrowed. */
    const struct dv_reader *test_dump;
    const int32_t *tokens;      /* [n_tokens] */
    int n_tokens;
    const int32_t *sched;       /* [n_pass] tokens per forward call */
    int n_pass;
    struct dv_inject inject;    /* the test backend's fault (fault 0: none) */
    int act_quant;              /* the reference's and oracle's enum dv_act_quant */
    int attn_quant;             /* theirs, enum dv_attn_quant */
    bool arith_from_test;       /* instead: what the test engine declares
                                   (dv_engine_arith; unknown: exact) */
    int kv_type;                /* every engine's KV cache type (DV_TYPE_F32 ...) */
    const char *device;         /* vulkan device selection, NULL default */
    bool validation;
    const struct dv_policy *policy;
    const char *keep_dir;       /* write test.h5, ref.h5, oracle.h5 here */
    bool layer_split;           /* run the --gpu-layers search */
    bool patch;                 /* activation patching over the whole schedule */
    const char *export_case;    /* write the culprit's case into this directory */
    bool all_culprits;          /* run every pass and judge every op of every
                                   divergent pass alone: every culprit */
    void (*guard)(const char *tmp); /* told each dump's temporary path, or NULL */
};

enum dv_bisect_pass_status {
    DV_BPASS_CLEAN,    /* every tensor within its limit */
    DV_BPASS_DIVERGED, /* some tensor out of its limit */
    DV_BPASS_NOT_RUN,  /* after the first divergent pass */
};

struct dv_bisect_pass {
    int pos0, n_tokens, status;
    int n_tensors, n_diverged;
    double worst_ratio;     /* the largest ratio of the pass */
    char worst[64];         /* its tensor */
};

enum dv_replay_role {
    DV_ROLE_NONE,       /* a view: no op of its own, not replayed */
    DV_ROLE_OK,         /* agrees alone and in the full run */
    DV_ROLE_CULPRIT,    /* the first op that diverges alone */
    DV_ROLE_ALSO,       /* diverges alone too, after the culprit */
    DV_ROLE_PROPAGATED, /* diverges in the full run only: its inputs did */
    DV_ROLE_UNDUMPED,   /* a test dump lacks the op's output or an input */
    DV_ROLE_NOREPLAY,   /* the test backend cannot run this op alone */
};

/* One op of the replayed layer. */
struct dv_replay_op {
    char name[64];          /* "blk.2.kq" */
    char op[16];            /* "kq" */
    char inputs[96];        /* "blk.2.q_rope, blk.2.k_rope, k cache" */
    int role;               /* enum dv_replay_role */
    struct dv_cmp_row full; /* the test's tensor of the full run vs the reference */
    struct dv_cmp_row iso;  /* the op alone on the test backend vs the reference */
    double in_err;          /* largest rel_rms(test, ref) of its inputs in the full run */
    double amp;             /* rel_rms of full.m over in_err; NaN when in_err is 0 */
    int n_top;
    struct {                /* the largest |alone - ref| of iso */
        struct dv_cmp_where at;
        double test, ref;
    } top[3];
};

/* A position whose top-1 the test flips, and the layer that makes it
 * (patch.c). */
struct dv_patch_flip {
    int pass, pos;          /* its pass, its absolute position */
    int32_t ref_top, test_top;
    int layer;              /* the reference's blk.layer.out restores it; -1: no
                               patch up to the last layer does (the last layer
                               or the output ops) */
};
#define DV_PATCH_MAX_FLIPS 64

struct dv_split_probe {
    int gpu_layers;         /* layers on the device */
    bool diverged;          /* some pass's logits diverge */
    double ratio;           /* the largest logits ratio */
};

struct dv_bisect_result {
    int n_pass;                /* the schedule's passes */
    int n_run;                 /* passes run: through the first divergent one */
    struct dv_bisect_pass *passes;
    int first_pass;            /* -1: no divergence */
    struct dv_cmp_row first;   /* the first divergent tensor (where it shows) */
    bool earlier_clean;        /* every pass before first_pass was clean */
    int replay_layer;          /* -1: output_norm/logits */
    int replay_pass;
    int n_ops;
    struct dv_replay_op *ops;  /* the replayed layer's ops, in execution order */
    int culprit;               /* index in ops, -1: none diverges alone */
    /* layer split */
    bool split_run;
    bool split_logits_diverged; /* with every layer on the device */
    int split_first_layer;      /* the first layer whose move to the device
                                   makes the logits diverge; n_layer: output
                                   ops; -1 unknown */
    int n_probes;
    struct dv_split_probe probes[40];
    /* --all-culprits: every op that diverges alone, first pass each */
    int n_all;
    bool all_truncated;
    struct {
        int pass;
        char name[64], op[16];
        double rel, ratio;  /* alone: rel_rms and ratio to its limit */
    } all[DV_PATCH_MAX_FLIPS];
    /* activation patching */
    bool patch_run;
    int n_flips;                /* positions whose top-1 the test flips */
    bool flips_truncated;       /* more than DV_PATCH_MAX_FLIPS */
    struct dv_patch_flip flips[DV_PATCH_MAX_FLIPS];
    int patch_runs;             /* patched runs of the schedule */
    /* what ran */
    char test_desc[512], ref_desc[512], oracle_desc[512];
    char inject[64];
    int wtype;                 /* the model's main weight type (blk.0 wq) */
    double run_s, replay_s, split_s, patch_s;
    char verdict[1024];
    int test_kind;             /* o->test */
    bool replayable;           /* the test backend has a single-op runner */
    bool from_dump;            /* the test is a dump: ops judged on its own inputs */
    bool by_layer;             /* ... too sparse for that: ops are whole layers
                                  (blk.L.out, op "layer"), each judged on the
                                  test's own input residual */
    char test_dump[256];       /* its path */
    char case_path[4096];      /* the case written (--export-case), "" if none */
    struct dv_arith arith;     /* what the reference and oracle emulated */
};

/* Run the bisection of model m. DV_E_USAGE for bad options; DV_E_INPUT
 * when the reference or the oracle computes NaN/Inf where a forward pass
 * cannot (a broken row, compare.h; the model is bad: there is nothing to
 * judge the test against, and that is never "clean"), naming the model,
 * the pass, the tensor and the first position (kept dumps stay, complete
 * up to that pass); DV_E_DEVICE and others for runtime failures. Free
 * with dv_bisect_free(). */
dv_status dv_bisect(const struct dv_model *m, const struct dv_bisect_opts *o,
                    struct dv_bisect_result **out);
void dv_bisect_free(struct dv_bisect_result *r);

const char *dv_replay_role_name(int role);

/* ---- inside the module (bisect.c, replay.c) ------------------------------ */

/* One tensor of a pass as a backend handed it over. */
struct dv_captured {
    char name[48];
    int layer, op, n_dims;
    int64_t shape[4];
    int64_t count;         /* values */
    void *data;            /* NULL until taken */
};

/* A pass's tensors by execution order. */
struct dv_capture {
    int n;                 /* tensors per pass */
    int type;              /* DV_TYPE_F32 or DV_TYPE_F64 */
    int pos0, n_tokens;
    struct dv_captured *t; /* [n] */
};

/* A row for captured tensor x of pass `pass`: its identity (name, layer,
 * op, shape) and its tolerance from policy p, ready for dv_cmp_judge. */
void dv_bisect_row_for(struct dv_cmp_row *w, const struct dv_captured *x, int pass,
                       const struct dv_policy *p);

/* Where the ops of one layer come from and how they are judged. */
struct dv_replay_src {
    const struct dv_capture *test, *ref, *oracle; /* the pass; oracle NULL without */
    /* A live test backend: each op runs alone on `alone` (the test engine)
     * fed the reference's tensors and cache, judged against the
     * reference's output. A test dump (alone NULL): the test's own output
     * is judged against the reference engine `ref_e` run on the test's own
     * tensors and cache. `floor` (the oracle engine, NULL without) runs the
     * same op for the noise floor. */
    struct dv_engine *alone, *ref_e, *floor;
    /* the exact cpu-f64 engine beside a reference that emulates declared
     * arithmetic (its share widens each op's limit, as in the live run), or
     * NULL */
    struct dv_engine *exact;
    /* the cache of every layer [n_layer, n_ctx, kvd] (f32) of the side
     * that feeds the ops, positions < pos0 from earlier passes */
    const float *kc, *vc;
    const bool *k_ok, *v_ok; /* [n_layer]: the cache of that layer is whole
                                (a sparse dump may lack rows); NULL: all are */
    int n_ctx;
};

/* Activation patching (patch.c) into r->flips: the whole schedule on the
 * test backend and the reference (emulating ar), then patched runs.
 * DV_E_USAGE when the test backend cannot start a pass at a layer. */
dv_status dv_patch(const struct dv_model *m, const struct dv_bisect_opts *o,
                   const struct dv_arith *ar, struct dv_bisect_result *r);

/* The culprit's case into d (a dump, described, no pass written): passes
 * 0..pass with the tokens of the schedule; at `pass` tensor `tensor`'s
 * op inputs (the side that fed it) and its output as the test gave it
 * (alone on src->alone, or the test dump's), before it the cache rows the
 * op reads (KQ, KQV) or the embedding rows. `diverge bisect MODEL
 * --test-dump` of it judges that op on those inputs again. */
dv_status dv_replay_export(const struct dv_model *m, const struct dv_bisect_opts *o,
                           int pass, int layer, int tensor, const struct dv_replay_src *src,
                           dv_dump *d);

/* op's three largest |y - r| over n values, located in op->iso's tensor. */
void dv_replay_top_diffs(struct dv_replay_op *op, const struct dv_config *c, int pos0,
                         const float *y, const float *r, int64_t n);

/* Fill r->ops, r->culprit for layer `layer` (-1: output_norm and logits)
 * of the pass, the op by op judgement of where it starts. */
dv_status dv_replay_layer(const struct dv_model *m, const struct dv_bisect_opts *o,
                          const int32_t *tokens, int layer, const struct dv_replay_src *src,
                          struct dv_bisect_result *r);

#endif
