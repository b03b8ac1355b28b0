/* stats.c - min, max, RMS, NaN and Inf counts of a double array. */
#include "stats.h"

#include <float.h>
#include <math.h>

struct dv_stats dv_stats_f64(const double *x, int64_t n)
{
    struct dv_stats st = {.n = n > 0 ? n : 0, .min = NAN, .max = NAN, .rms = NAN};
    double lo = INFINITY, hi = -INFINITY, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        if (isnan(v)) {
            st.n_nan++;
        } else if (isinf(v)) {
            st.n_inf++;
        } else {
            st.n_finite++;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            ss += v * v;
        }
    }
    if (!st.n_finite) return st;
    st.min = lo;
    st.max = hi;
    double amax = fmax(fabs(lo), fabs(hi));
    if (isfinite(ss) && (ss >= DBL_MIN || amax == 0)) {
        st.rms = sqrt(ss / (double)st.n_finite);
        return st;
    }
    /* x^2 overflowed (|x| > ~1e154) or underflowed (|x| < ~1e-154):
     * sum (x / amax)^2 instead, which lies in [1, n] */
    double sc = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i])) sc += (x[i] / amax) * (x[i] / amax);
    st.rms = amax * sqrt(sc / (double)st.n_finite);
    return st;
}
