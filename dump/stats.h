/*
 * stats.h - summary statistics of a tensor's values (min, max, RMS and the
 * NaN/Inf counts), as `diverge info` prints them for a dump and the
 * comparison reports show them next to each tensor.
 */
#ifndef DV_STATS_H
#define DV_STATS_H

#include <stdint.h>

struct dv_stats {
    int64_t n;        /* values looked at */
    int64_t n_finite; /* of which finite */
    int64_t n_nan;    /* NaN */
    int64_t n_inf;    /* +Inf or -Inf */
    double min, max;  /* over the finite values; NaN when there are none */
    double rms;       /* sqrt(mean(x^2)) over the finite values; NaN when none */
};

/* Statistics of x[n] (n >= 0; x may be NULL when n is 0). The sum of
 * squares is accumulated in double and rescaled by max|x| when it would
 * overflow or underflow, so rms is right for any finite values. */
struct dv_stats dv_stats_f64(const double *x, int64_t n);

#endif
