/*
 * policy.h - the tolerance policy: when a tensor counts as diverging.
 *
 * A policy is a JSON document (read with jansson):
 *
 *   {
 *     "version": 1,                      optional; 1 if present
 *     "default": { KEY: VALUE, ... },    overrides the built-in defaults
 *     "tensors": [                       per-tensor overrides, in order
 *       { "match": "blk.*.kq_softmax",   fnmatch(3) glob on the tensor name
 *         "op": "softmax",               optional: the tensor's op too
 *         KEY: VALUE, ... }
 *     ]
 *   }
 *
 * A tensor's tolerance is the built-in default, then the file's "default",
 * then every "tensors" entry that matches it (all its selectors), later
 * entries winning key by key. KEYs (null = not checked, for the limits):
 *
 *   nmse, max_abs, max_rel, ulp    upper limits on the metrics of
 *                                  compare/metrics.h against the reference
 *   cos                            lower limit on the cosine
 *   violations                     upper limit on the fraction of pairs
 *                                  failing isclose(atol, rtol)
 *   atol, rtol, rel_eps            the metrics' parameters
 *   oracle_m, oracle_floor         the noise-floor rule (below)
 *   declared_m                     with an exact dump: the limit grows by
 *                                  declared_m * rel_rms(ref, exact)
 *   ignore                         true: reported, never diverges
 *   nonfinite                      obsolete: "test" or "any" is accepted
 *                                  (older files load) and has no effect
 *
 * Without an oracle a tensor diverges when a limit is passed. With an
 * oracle (a cpu-f64 dump of the same run) the limits are not used: a
 * tensor diverges when rel_rms(test, oracle) > oracle_m *
 * rel_rms(ref, oracle) + oracle_floor. In both modes a non-finite
 * mismatch (compare.h) diverges whatever the limits; no key changes that
 * (the old "nonfinite": "test" let a finite test value stand where the
 * reference is -inf, which hid a causal mask that reaches too far).
 * Unknown keys, wrong types and out-of-range values are errors.
 */
#ifndef DV_POLICY_H
#define DV_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "diverge.h"
#include "metrics.h"

/* One tensor's tolerance. An unchecked upper limit is +INFINITY, an
 * unchecked lower limit (cos) -INFINITY: the comparisons then never fire. */
struct dv_tolerance {
    double nmse, max_abs, max_rel, ulp, violations; /* upper limits */
    double cos;                                     /* lower limit */
    struct dv_metric_opts metric;                   /* atol, rtol, rel_eps */
    double oracle_m, oracle_floor;
    double declared_m; /* share of err(ref, exact) allowed on top (compare --exact) */
    bool ignore;
};

struct dv_policy;

/* The built-in policy (dv_policy_builtin_json() parsed). */
dv_status dv_policy_default(struct dv_policy **out);

/* Read and validate a policy file. DV_E_INPUT with one line
 * "PATH: line N: key 'tensors[2].nmse': expected a number >= 0 or null"
 * (syntax errors: "PATH: line N, column C: <jansson's message>"). */
dv_status dv_policy_load(const char *path, struct dv_policy **out);

/* The same from memory; `name` stands for the path in messages. */
dv_status dv_policy_parse(const char *text, size_t len, const char *name,
                          struct dv_policy **out);

void dv_policy_free(struct dv_policy *p);

/* The tolerance of tensor `name` produced by op `op` (NULL: only entries
 * without an "op" selector can match). */
void dv_policy_lookup(const struct dv_policy *p, const char *name, const char *op,
                      struct dv_tolerance *out);

/* "built-in" or the path the policy was read from (borrowed). */
const char *dv_policy_source(const struct dv_policy *p);

/* The built-in policy as JSON text, the one the manual documents. */
const char *dv_policy_builtin_json(void);

#endif
