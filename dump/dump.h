/*
 * dump.h - diverge's own use of the dump writer: describe a model in the
 * root attributes, choose tensors (--select, --layers, --dump-passes), and
 * a hook that feeds a forward pass straight into the writer.
 *
 * The hook asks before any copy is made: a tensor that the filter leaves
 * out is never copied by a backend (see hook.h).
 */
#ifndef DV_DUMP_H
#define DV_DUMP_H

#include <stdbool.h>
#include <stdint.h>

#include "diverge.h"
#include "hook.h"
#include "model.h"

/* The temporary file a dump writes until it is committed (for a signal
 * handler that must remove it); NULL once renamed. */
const char *dv_dump_temp_path(const dv_dump *d);

/* A set of integers given as ranges "0-3,7,9-10"; empty means all. */
#define DV_RANGES_MAX 64
struct dv_ranges {
    int n;
    int64_t lo[DV_RANGES_MAX], hi[DV_RANGES_MAX];
};
/* Parse "A", "A-B" items separated by commas, lo <= A <= B <= hi.
 * DV_E_USAGE naming `what` for anything else. */
dv_status dv_ranges_parse(const char *s, const char *what, int64_t lo,
                          int64_t hi, struct dv_ranges *out);
bool dv_ranges_has(const struct dv_ranges *r, int64_t v);

/* What a dump keeps. A tensor is kept when its pass is in `passes`, its
 * name matches one of the `select` globs (fnmatch(3); none given: all),
 * and, for tensors of a layer, the layer is in `layers` (tensors outside
 * the layers, output_norm and logits, are not subject to `layers`). */
struct dv_dump_filter {
    const char *const *select;
    int n_select;
    struct dv_ranges layers, passes;
};
bool dv_dump_filter_tensor(const struct dv_dump_filter *f, const char *name,
                           int layer);

/* Root attributes for a run of model m on a backend: arch and
 * hyperparameters, model_path (absolute) and model_sha256, device and
 * driver, inject (fault name, "" for none), and the engine's declared
 * arithmetic (arith.h): act_quant (the mode's name, enum dv_act_quant),
 * act_quant_types (what it resolves to per weight type of m,
 * dv_arith_describe: "f32=none,q8_0=q8_0"), attn_quant (enum
 * dv_attn_quant) and kv_type ("f32", "f16", "q8_0"), from arith (NULL:
 * the exact arithmetic; act_quant -1 is written "unknown"). */
struct dv_arith;
dv_status dv_dump_describe(dv_dump *d, const struct dv_model *m,
                           const char *device, const char *driver,
                           const char *inject, const struct dv_arith *arith);

/* The engine's own facts (dv_engine_attrs: a backend's release, its names
 * for the device ...) as root attributes of d. DV_E_USAGE for a key the
 * schema defines (a backend does not overwrite those) or a malformed
 * one; the writer's failures as dv_dump_set_*. */
struct dv_engine;
dv_status dv_dump_engine_attrs(dv_dump *d, const struct dv_engine *e);

/* A hook writing the tensors f keeps into d (both borrowed). */
struct dv_dump_sink {
    dv_dump *dump;
    const struct dv_dump_filter *filter;
    bool in_pass; /* the current pass is kept */
    int64_t n_passes, n_tensors, n_values; /* written so far */
};
struct dv_hook dv_dump_hook(struct dv_dump_sink *s);

/* SHA-256 of a whole file as 64 lower-case hex digits. DV_E_IO. */
dv_status dv_sha256_file(const char *path, char hex[65]);

#endif
