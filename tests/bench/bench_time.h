/*
 * bench_time.h - the benchmarks' clock and their median of REPS runs.
 */
#ifndef DV_BENCH_TIME_H
#define DV_BENCH_TIME_H

#include <stdlib.h>
#include <time.h>

/* Runs per figure; the median is reported, the best in brackets. */
#define REPS 5

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and minimum of t[REPS] (sorts t). */
static inline double bench_median(double *t, double *best)
{
    qsort(t, REPS, sizeof *t, bench_cmp_double);
    *best = t[0];
    return t[REPS / 2];
}

#endif
