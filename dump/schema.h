/*
 * schema.h - the diverge-dump schema, version 1 (docs/diverge-dump.5):
 * which root attributes exist, which tensor names are the table's, and
 * the checks a tensor must pass. The writer and the reader both call these,
 * so what one writes the other accepts.
 */
#ifndef DV_SCHEMA_H
#define DV_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "diverge.h"
#include "model.h"

#define DV_SCHEMA_NAME "diverge-dump"
#define DV_SCHEMA_MAX_NAME 64 /* bytes of a tensor name, with the NUL */
#define DV_SCHEMA_MAX_DIMS 4
#define DV_SCHEMA_MAX_OP 32     /* bytes of an op name, with the NUL */
#define DV_SCHEMA_MAX_STR 65536 /* bytes of a string attribute */

enum dv_attr_kind { DV_ATTR_STR, DV_ATTR_INT, DV_ATTR_REAL };

/* One root attribute the schema defines. */
struct dv_attr_spec {
    const char *key;
    int kind;      /* enum dv_attr_kind */
    bool required; /* the reader rejects a file without it */
    bool reserved; /* set by the writer itself, not through dv_dump_set_* */
};

/* The schema's root attributes, `n` of them. */
const struct dv_attr_spec *dv_schema_attrs(int *n);
/* The spec of `key`, or NULL for an extra (engine-defined) key. */
const struct dv_attr_spec *dv_schema_attr(const char *key);
/* Keys are 1..63 bytes of [A-Za-z0-9_.-]. */
bool dv_schema_key_ok(const char *key);

/* Fill the shape-relevant fields of cfg (n_vocab, d_model, n_layer,
 * n_head, n_head_kv, head_dim, n_ff) from root attribute `key`, checking
 * its range; returns `fail` with a message naming the key when out of
 * range. Other keys are ignored (DV_OK). */
dv_status dv_schema_set_hparam(struct dv_config *cfg, const char *key,
                               int64_t value, dv_status fail);

/* Is s well-formed UTF-8 (no overlong 2-byte forms)? */
bool dv_schema_utf8_ok(const char *s);

/* Value checks of string and real root attributes: every string UTF-8 and at most
 * DV_SCHEMA_MAX_STR bytes, arch 1..31 bytes, rope_type "norm" or "neox";
 * reals finite, rope_freq_base > 0, rms_eps >= 0. `fail` with a message
 * naming the key. */
dv_status dv_schema_check_str(const char *key, const char *value, dv_status fail);
dv_status dv_schema_check_real(const char *key, double value, dv_status fail);

/* After the integer attributes went through dv_schema_set_hparam (fields
 * not given are 0): default head_dim (n_embd / n_head, which must divide)
 * and n_rot (head_dim), and check n_head_kv divides n_head and
 * n_rot <= head_dim. */
dv_status dv_schema_finish_config(struct dv_config *cfg, dv_status fail);

/* Op names: 1..31 printable ASCII bytes (no spaces). */
bool dv_schema_op_ok(const char *op);

/* A tensor name of design.md's table, resolved against n_layer layers. */
struct dv_schema_tensor {
    int layer; /* -1 for output_norm and logits */
    int which; /* enum dv_layer_tensor, or dv_global_tensor when layer < 0 */
    int op;    /* enum dv_op */
    int shape; /* enum dv_shape_kind */
};
/* true when name is "blk.L.<suffix>" (L decimal, no leading zeros,
 * L < n_layer) or a global name of the table. */
bool dv_schema_lookup(const char *name, int64_t n_layer,
                      struct dv_schema_tensor *out);

/* Dataset names: 1..63 printable ASCII bytes, no '/', not "." or
 * "tokens" (the pass's token ids). */
bool dv_schema_name_ok(const char *name);

/* Check one tensor of a pass (pos0, n_tokens) against cfg: a table name
 * must have the table's layer, op and shape; any other name needs a layer
 * in -1 .. n_layer - 1 and a valid op; a name "blk.L.<anything>" must
 * have layer L, written without leading zeros, below n_layer. Every tensor has 1..4 dims,
 * each >= 1, and fewer than 2^40 elements. On failure returns `fail`
 * with a message naming the tensor (no file name). */
dv_status dv_schema_check_tensor(const struct dv_config *cfg, int64_t pos0,
                                 int64_t n_tokens, const char *name,
                                 int64_t layer, const char *op, int n_dims,
                                 const int64_t *shape, dv_status fail);

/* Group name of pass `index` ("0000", "0001", ..., "12345"). */
void dv_schema_pass_name(int64_t index, char buf[24]);
/* Parse a pass group name: digits only, at least 4, value < 2^31 and
 * written as dv_schema_pass_name would. -1 when it is not one. */
int64_t dv_schema_pass_index(const char *name);

#endif
