/*
 * metrics.h - how far a test tensor a is from a reference tensor b.
 *
 * One streaming pass over the element pairs, accumulated in double, in
 * blocks of any size (a tensor read piece by piece gives the same result
 * as read whole, bit for bit, as long as the pieces arrive in order).
 * Definitions (b = reference, a = test, d = a - b, sums over the *used*
 * pairs: both a and b finite):
 *
 *   rmse     sqrt(sum d^2 / n_used)                     (0 when n_used = 0)
 *   nmse     sum d^2 / sum b^2: the reference's energy is the denominator;
 *            0 when both sums are 0, +inf when only sum b^2 is 0
 *   rel_rms  sqrt(nmse): relative RMS error, the noise floor's unit
 *   cos      sum ab / sqrt(sum a^2 * sum b^2); 1 when both are all zero,
 *            0 when exactly one is
 *   sqnr_db  10 log10(sum b^2 / sum d^2); +inf when sum d^2 = 0,
 *            -inf when sum b^2 = 0 < sum d^2
 *   max_abs  max |d| and the first flat index reaching it
 *   max_rel  max |d| / max(|b|, rel_eps), rel_eps from the options (an
 *            absolute value in the tensor's units, so a reference of exact
 *            zeros gives |d| / rel_eps instead of a division by zero)
 *   ulp_max  the largest distance in units in the last place of float32:
 *            both values rounded to float32 (exact for f32 data), mapped
 *            to a monotone integer line (+0 and -0 are the same point,
 *            so 1 ulp across zero is the distance between the smallest
 *            subnormals of each sign: 2), and subtracted
 *   viol     pairs that fail numpy.isclose(a, b, rtol, atol, equal_nan=True):
 *            |d| > atol + rtol |b| for finite pairs; a non-finite value
 *            facing anything but the same non-finite value (inf = inf of
 *            the same sign, NaN = NaN) also counts
 *
 * Non-finite values are never summed. A pair with a non-finite side is
 * either matched or a non-finite mismatch:
 *
 *   matched   the same infinity on both sides (+inf/+inf, -inf/-inf: the
 *             -inf of a causal mask): neither used nor counted as bad
 *   mismatch  everything else: NaN on either side (NaN facing NaN too: a
 *             NaN is never a value to agree on), exactly one side +-Inf,
 *             or opposite infinities
 *
 * `mismatch` counts the mismatches, with the first flat index and the
 * pair found there (`mismatch_test`, `mismatch_ref`); they split into
 * `bad_test`, the test NaN/Inf where the reference is finite, and
 * `bad_ref`, the reference NaN/Inf where the test differs from it
 * (mismatch = bad_test + bad_ref). Also counted, each with its first
 * index: NaN and +-Inf on each side, and the reference's +Inf and -Inf
 * apart (what compare.c needs to tell a masked score from a broken
 * reference).
 *
 * Flat indices are row-major over the whole tensor (the caller passes the
 * index of each block's first element). Every "first index" is -1 when
 * nothing was seen; ties keep the smallest index.
 */
#ifndef DV_METRICS_H
#define DV_METRICS_H

#include <stdint.h>

/* Parameters of the metrics that have one (from the tolerance policy). */
struct dv_metric_opts {
    double atol;    /* allclose absolute tolerance, >= 0 */
    double rtol;    /* allclose relative tolerance, >= 0 */
    double rel_eps; /* max_rel denominator floor, > 0 */
};

struct dv_metrics {
    int64_t n;                  /* pairs seen */
    int64_t n_used;             /* pairs with both sides finite */
    double sum_d2, sum_a2, sum_b2, sum_ab; /* over used pairs */
    double max_abs;             /* 0 when n_used = 0 */
    int64_t max_abs_at;
    double max_rel;
    int64_t max_rel_at;
    uint64_t ulp_max;
    int64_t ulp_max_at;
    int64_t viol;
    int64_t viol_first;
    int64_t nan_test, nan_ref, inf_test, inf_ref;
    int64_t nan_test_first, nan_ref_first, inf_test_first, inf_ref_first;
    int64_t posinf_ref, neginf_ref;         /* the reference's +Inf and -Inf apart */
    int64_t posinf_ref_first, neginf_ref_first;
    int64_t mismatch, mismatch_first;       /* non-finite mismatches */
    double mismatch_test, mismatch_ref;     /* the pair at mismatch_first (0 when none) */
    int64_t bad_test, bad_test_first;
    int64_t bad_ref, bad_ref_first;
};

/* Element types of the blocks handed to dv_metrics_add (the dump
 * reader's: core/types.h DV_TYPE_F32 / DV_TYPE_F64). */
enum dv_metric_elem { DV_METRIC_F32, DV_METRIC_F64 };

/* Start an empty accumulation. */
void dv_metrics_init(struct dv_metrics *m);

/* Add n pairs: test[i] and ref[i] (of the given element types) are the
 * elements at flat indices base + i. Blocks must arrive in increasing
 * index order for the "first index" fields to mean first. */
void dv_metrics_add(struct dv_metrics *m, const void *test, enum dv_metric_elem test_type,
                    const void *ref, enum dv_metric_elem ref_type, int64_t n,
                    int64_t base, const struct dv_metric_opts *o);

/* Fold src (later or earlier indices) into dst, as if dst had seen src's
 * pairs too: sums add, maxima keep the larger value (the smaller index on
 * ties), counts add, firsts keep the smaller index (and the mismatch pair
 * goes with its index). */
void dv_metrics_merge(struct dv_metrics *dst, const struct dv_metrics *src);

/* The derived figures defined above. */
double dv_metrics_rmse(const struct dv_metrics *m);
double dv_metrics_nmse(const struct dv_metrics *m);
double dv_metrics_rel_rms(const struct dv_metrics *m);
double dv_metrics_cos(const struct dv_metrics *m);
double dv_metrics_sqnr_db(const struct dv_metrics *m);

/* ULP distance between two finite floats as defined above. */
uint64_t dv_ulp_distance_f32(float a, float b);

#endif
