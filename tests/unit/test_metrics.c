/* test_metrics.c - compare/metrics.h on hand-worked vectors and on a
 * seeded random tensor checked against a naive loop.
 *
 * Every small case is measured twice (see measure()): as given, which
 * takes the plain C loop, and padded with zero pairs to 16, which takes
 * the AVX2 loop where the CPU has it; both must agree field by field. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define F32 DV_METRIC_F32
#define F64 DV_METRIC_F64

/* Exact equality of doubles (NaN equals NaN, -0.0 differs from +0.0). */
#define assert_dbl_eq(x, y)                                                             \
    do {                                                                                \
        double x_ = (x), y_ = (y);                                                      \
        if (!((x_ == y_ && signbit(x_) == signbit(y_)) || (isnan(x_) && isnan(y_)))) { \
            print_error("%s = %.17g, expected %.17g\n", #x, x_, y_);                    \
            fail();                                                                     \
        }                                                                               \
    } while (0)

/* |x - y| <= tol * |y|. */
#define assert_rel(x, y, tol)                                                           \
    do {                                                                                \
        double x_ = (x), y_ = (y);                                                      \
        if (!(fabs(x_ - y_) <= (tol) * fabs(y_))) {                                     \
            print_error("%s = %.17g, expected %.17g (rel %g)\n", #x, x_, y_, (tol));    \
            fail();                                                                     \
        }                                                                               \
    } while (0)

/* Binary-exact tolerances so that borderline cases are exactly on the line. */
static const struct dv_metric_opts OPTS = {.atol = 0.25, .rtol = 0.125, .rel_eps = 1e-3};

/* ---- helpers ---- */

/* Sums, maxima, counts and first indices; n and n_used only if with_n. */
static void assert_same(const struct dv_metrics *x, const struct dv_metrics *y, bool with_n)
{
    if (with_n) {
        assert_int_equal(x->n, y->n);
        assert_int_equal(x->n_used, y->n_used);
    }
    assert_dbl_eq(x->sum_d2, y->sum_d2);
    assert_dbl_eq(x->sum_a2, y->sum_a2);
    assert_dbl_eq(x->sum_b2, y->sum_b2);
    assert_dbl_eq(x->sum_ab, y->sum_ab);
    assert_dbl_eq(x->max_abs, y->max_abs);
    assert_int_equal(x->max_abs_at, y->max_abs_at);
    assert_dbl_eq(x->max_rel, y->max_rel);
    assert_int_equal(x->max_rel_at, y->max_rel_at);
    assert_int_equal(x->ulp_max, y->ulp_max);
    assert_int_equal(x->ulp_max_at, y->ulp_max_at);
    assert_int_equal(x->viol, y->viol);
    assert_int_equal(x->viol_first, y->viol_first);
    assert_int_equal(x->nan_test, y->nan_test);
    assert_int_equal(x->nan_ref, y->nan_ref);
    assert_int_equal(x->inf_test, y->inf_test);
    assert_int_equal(x->inf_ref, y->inf_ref);
    assert_int_equal(x->nan_test_first, y->nan_test_first);
    assert_int_equal(x->nan_ref_first, y->nan_ref_first);
    assert_int_equal(x->inf_test_first, y->inf_test_first);
    assert_int_equal(x->inf_ref_first, y->inf_ref_first);
    assert_int_equal(x->bad_test, y->bad_test);
    assert_int_equal(x->bad_test_first, y->bad_test_first);
    assert_int_equal(x->bad_ref, y->bad_ref);
    assert_int_equal(x->bad_ref_first, y->bad_ref_first);
    assert_int_equal(x->posinf_ref, y->posinf_ref);
    assert_int_equal(x->posinf_ref_first, y->posinf_ref_first);
    assert_int_equal(x->neginf_ref, y->neginf_ref);
    assert_int_equal(x->neginf_ref_first, y->neginf_ref_first);
    assert_int_equal(x->mismatch, y->mismatch);
    assert_int_equal(x->mismatch_first, y->mismatch_first);
    assert_dbl_eq(x->mismatch_test, y->mismatch_test);
    assert_dbl_eq(x->mismatch_ref, y->mismatch_ref);
}

static size_t elem_size(enum dv_metric_elem t)
{
    return t == F32 ? sizeof(float) : sizeof(double);
}

/* Metrics of n <= 8 pairs, at least one used. Also measures them
 * followed by zero pairs up to 16 (a = b = +0.0 adds 0 to every sum, no
 * maximum above 0 and no count), which the vector loop takes, and checks
 * the two agree. */
static struct dv_metrics measure(const void *a, enum dv_metric_elem ta, const void *b,
                                 enum dv_metric_elem tb, int n, const struct dv_metric_opts *o)
{
    assert_true(n <= 8);
    struct dv_metrics m, pad;
    dv_metrics_init(&m);
    dv_metrics_add(&m, a, ta, b, tb, n, 0, o);
    assert_true(m.n_used > 0); /* else the zero pairs would hold the maxima */
    double pa[16] = {0}, pb[16] = {0}; /* all-zero bytes: +0.0 as float and double */
    memcpy(pa, a, (size_t)n * elem_size(ta));
    memcpy(pb, b, (size_t)n * elem_size(tb));
    dv_metrics_init(&pad);
    dv_metrics_add(&pad, pa, ta, pb, tb, 16, 0, o);
    assert_same(&pad, &m, false);
    assert_int_equal(pad.n, 16);
    assert_int_equal(pad.n_used, m.n_used + 16 - n);
    return m;
}

static struct dv_metrics measure_f32(const float *a, const float *b, int n,
                                     const struct dv_metric_opts *o)
{
    return measure(a, F32, b, F32, n, o);
}

/* Everything about NaN/Inf is zero / -1. */
static void assert_all_finite(const struct dv_metrics *m)
{
    assert_int_equal(m->nan_test + m->nan_ref + m->inf_test + m->inf_ref, 0);
    assert_int_equal(m->bad_test + m->bad_ref, 0);
    assert_int_equal(m->nan_test_first, -1);
    assert_int_equal(m->nan_ref_first, -1);
    assert_int_equal(m->inf_test_first, -1);
    assert_int_equal(m->inf_ref_first, -1);
    assert_int_equal(m->bad_test_first, -1);
    assert_int_equal(m->bad_ref_first, -1);
    assert_int_equal(m->mismatch + m->posinf_ref + m->neginf_ref, 0);
    assert_int_equal(m->mismatch_first, -1);
}

/* ---- hand-worked cases ---- */

static void test_simple_f32(void **state)
{
    const float a[] = {1, 2, 3, 4}, b[] = {1, 2.5f, 2, 4};
    struct dv_metrics m = measure_f32(a, b, 4, &OPTS);
    /* d = (0, -0.5, 1, 0) */
    assert_int_equal(m.n, 4);
    assert_int_equal(m.n_used, 4);
    assert_dbl_eq(m.sum_d2, 1.25);        /* 0.25 + 1 */
    assert_dbl_eq(m.sum_a2, 30);          /* 1 + 4 + 9 + 16 */
    assert_dbl_eq(m.sum_b2, 27.25);       /* 1 + 6.25 + 4 + 16 */
    assert_dbl_eq(m.sum_ab, 28);          /* 1 + 5 + 6 + 16 */
    assert_dbl_eq(dv_metrics_rmse(&m), sqrt(0.3125));         /* sqrt(1.25 / 4) */
    assert_dbl_eq(dv_metrics_nmse(&m), 1.25 / 27.25);
    assert_dbl_eq(dv_metrics_rel_rms(&m), sqrt(1.25 / 27.25));
    assert_rel(dv_metrics_cos(&m), 28 / sqrt(30 * 27.25), 1e-15); /* 0.98 */
    assert_rel(dv_metrics_sqnr_db(&m), 10 * log10(21.8), 1e-15);  /* 27.25 / 1.25 */
    assert_dbl_eq(m.max_abs, 1);
    assert_int_equal(m.max_abs_at, 2);
    assert_dbl_eq(m.max_rel, 0.5); /* |d| / |b| = (0, 0.2, 0.5, 0) */
    assert_int_equal(m.max_rel_at, 2);
    /* 3.0f = 0x40400000, 2.0f = 0x40000000; 2.5f = 0x40200000 (0x200000 off) */
    assert_int_equal(m.ulp_max, 0x400000);
    assert_int_equal(m.ulp_max_at, 2);
    /* tol = 0.25 + 0.125 |b|: 0.5 <= 0.5625 at 1, 1 > 0.5 at 2 */
    assert_int_equal(m.viol, 1);
    assert_int_equal(m.viol_first, 2);
    assert_all_finite(&m);
}

/* f64 test with detail below float32 precision against an f32 reference,
 * and the other way round. */
static void test_mixed_types(void **state)
{
    const double t = ldexp(1, -30);
    const double a[] = {1 + t, -3, 0.5};
    const float b[] = {1, -3, 0.75f};
    struct dv_metrics m = measure(a, F64, b, F32, 3, &OPTS);
    /* d = (2^-30, 0, -0.25); 2^-60 + 0.0625 rounds to 0.0625 */
    assert_dbl_eq(m.sum_d2, 0.0625);
    /* (1 + 2^-30)^2 rounds to 1 + 2^-29; then + 9 + 0.25, exact */
    assert_dbl_eq(m.sum_a2, 10.25 + ldexp(1, -29));
    assert_dbl_eq(m.sum_b2, 10.5625);       /* 1 + 9 + 0.5625 */
    assert_dbl_eq(m.sum_ab, 10.375 + t);    /* 1 + 2^-30 + 9 + 0.375 */
    assert_dbl_eq(m.max_abs, 0.25);
    assert_int_equal(m.max_abs_at, 2);
    assert_dbl_eq(m.max_rel, 0.25 / 0.75);
    assert_int_equal(m.max_rel_at, 2);
    /* 1 + 2^-30 rounds to 1.0f: 0 ulp; 0.5f = 0x3f000000, 0.75f = 0x3f400000 */
    assert_int_equal(m.ulp_max, 0x400000);
    assert_int_equal(m.ulp_max_at, 2);
    assert_int_equal(m.viol, 0); /* 0.25 <= 0.25 + 0.125 * 0.75 */

    const float a2[] = {1, -3, 0.75f};
    const double b2[] = {1 + t, -3, 0.5};
    m = measure(a2, F32, b2, F64, 3, &OPTS);
    assert_dbl_eq(m.sum_d2, 0.0625);
    assert_dbl_eq(m.sum_b2, 10.25 + ldexp(1, -29));
    assert_dbl_eq(m.max_rel, 0.5); /* 0.25 / 0.5 */
    assert_int_equal(m.max_rel_at, 2);
    assert_int_equal(m.ulp_max, 0x400000);
}

static void test_zeros_both(void **state)
{
    const float z[] = {0, 0, 0};
    struct dv_metrics m = measure_f32(z, z, 3, &OPTS);
    assert_int_equal(m.n_used, 3);
    assert_dbl_eq(dv_metrics_nmse(&m), 0);
    assert_dbl_eq(dv_metrics_rmse(&m), 0);
    assert_dbl_eq(dv_metrics_cos(&m), 1);
    assert_dbl_eq(dv_metrics_sqnr_db(&m), INFINITY);
    /* a maximum of 0 is reached first by the first used pair */
    assert_dbl_eq(m.max_abs, 0);
    assert_int_equal(m.max_abs_at, 0);
    assert_int_equal(m.ulp_max_at, 0);
    assert_int_equal(m.viol, 0);
    assert_int_equal(m.viol_first, -1);
}

static void test_zero_ref(void **state)
{
    const struct dv_metric_opts o = {.atol = 0, .rtol = 0, .rel_eps = 0.25};
    const float a[] = {0.5f, -2}, b[] = {0, 0};
    struct dv_metrics m = measure_f32(a, b, 2, &o);
    assert_dbl_eq(m.sum_d2, 4.25);
    assert_dbl_eq(dv_metrics_nmse(&m), INFINITY);
    assert_dbl_eq(dv_metrics_rel_rms(&m), INFINITY);
    assert_dbl_eq(dv_metrics_cos(&m), 0);
    assert_dbl_eq(dv_metrics_sqnr_db(&m), -INFINITY);
    assert_dbl_eq(m.max_rel, 8); /* |d| / rel_eps = (2, 8) */
    assert_int_equal(m.max_rel_at, 1);
    assert_dbl_eq(m.max_abs, 2);
    assert_int_equal(m.viol, 2);
}

static void test_denormals(void **state)
{
    const struct dv_metric_opts o = {.atol = 0, .rtol = ldexp(1, -20), .rel_eps = ldexp(1, -140)};
    const float below_min = nextafterf(FLT_MIN, 0); /* 2^-126 - 2^-149 */
    const float a[] = {FLT_TRUE_MIN, 2 * FLT_TRUE_MIN, FLT_MIN};
    const float b[] = {0, FLT_TRUE_MIN, below_min};
    struct dv_metrics m = measure_f32(a, b, 3, &o);
    const double u = ldexp(1, -149); /* FLT_TRUE_MIN: every d is u */
    /* every square and sum below is exact in double (spans < 53 bits) */
    assert_dbl_eq(m.sum_d2, 3 * ldexp(1, -298));
    assert_dbl_eq(m.sum_a2, ldexp(1, -298) + ldexp(1, -296) + ldexp(1, -252));
    assert_dbl_eq(m.sum_b2, ldexp(1, -252) - ldexp(1, -274) + ldexp(1, -297));
    assert_dbl_eq(m.sum_ab, ldexp(1, -252) - ldexp(1, -275) + ldexp(1, -297));
    assert_dbl_eq(m.max_abs, u);
    assert_int_equal(m.max_abs_at, 0); /* a three-way tie */
    assert_dbl_eq(m.max_rel, ldexp(1, -9)); /* u / rel_eps at 0 and 1 */
    assert_int_equal(m.max_rel_at, 0);
    assert_int_equal(m.ulp_max, 1); /* neighbours, all three */
    assert_int_equal(m.ulp_max_at, 0);
    /* tol = 2^-20 |b|: 0 at 0, 2^-169 at 1, about 2^-146 >= u at 2 */
    assert_int_equal(m.viol, 2);
    assert_int_equal(m.viol_first, 0);
}

static void test_ulp_distance(void **state)
{
    assert_int_equal(dv_ulp_distance_f32(FLT_TRUE_MIN, -FLT_TRUE_MIN), 2);
    assert_int_equal(dv_ulp_distance_f32(-FLT_TRUE_MIN, FLT_TRUE_MIN), 2);
    assert_int_equal(dv_ulp_distance_f32(FLT_TRUE_MIN, 0.0f), 1);
    assert_int_equal(dv_ulp_distance_f32(-FLT_TRUE_MIN, -0.0f), 1);
    assert_int_equal(dv_ulp_distance_f32(0.0f, -0.0f), 0);
    assert_int_equal(dv_ulp_distance_f32(1.0f, nextafterf(1.0f, 2.0f)), 1);
    assert_int_equal(dv_ulp_distance_f32(1.0f, nextafterf(1.0f, 0.0f)), 1);
    assert_int_equal(dv_ulp_distance_f32(-1.0f, 1.0f), 2 * (uint64_t)0x3f800000);
    assert_int_equal(dv_ulp_distance_f32(FLT_MAX, INFINITY), 1);
    assert_int_equal(dv_ulp_distance_f32(-FLT_MAX, FLT_MAX), 2 * (uint64_t)0x7f7fffff);

    /* through the metrics, across zero */
    const float a[] = {FLT_TRUE_MIN, 1}, b[] = {-FLT_TRUE_MIN, -1};
    struct dv_metrics m = measure_f32(a, b, 1, &OPTS);
    assert_int_equal(m.ulp_max, 2);
    m = measure_f32(a + 1, b + 1, 1, &OPTS);
    assert_int_equal(m.ulp_max, 0x7f000000);
}

/* An f64 value beyond the float range counts as float +inf for the ULP:
 * one step past FLT_MAX. */
static void test_f64_beyond_float(void **state)
{
    const double a[] = {1e39, -1e39};
    const float b[] = {FLT_MAX, -FLT_MAX};
    struct dv_metrics m = measure(a, F64, b, F32, 2, &OPTS);
    assert_int_equal(m.n_used, 2); /* finite in f64 */
    assert_int_equal(m.ulp_max, 1);
    assert_int_equal(m.ulp_max_at, 0);
    assert_all_finite(&m);
}

static void test_signed_zero(void **state)
{
    const struct dv_metric_opts o = {.atol = 0, .rtol = 0, .rel_eps = 1};
    const float a[] = {0.0f, -0.0f}, b[] = {-0.0f, 0.0f};
    struct dv_metrics m = measure_f32(a, b, 2, &o);
    assert_int_equal(m.ulp_max, 0);
    assert_int_equal(m.viol, 0);
    assert_int_equal(m.viol_first, -1);
    assert_dbl_eq(m.max_abs, 0);
    assert_dbl_eq(m.sum_ab, 0.0); /* +0.0: the products are -0.0 */
    assert_dbl_eq(dv_metrics_cos(&m), 1);
}

static void test_nan_test_only(void **state)
{
    const float a[] = {1, NAN, 2, NAN}, b[] = {1, 3, 2.5f, 4};
    struct dv_metrics m = measure_f32(a, b, 4, &OPTS);
    assert_int_equal(m.nan_test, 2);
    assert_int_equal(m.nan_test_first, 1);
    assert_int_equal(m.nan_ref, 0);
    assert_int_equal(m.bad_test, 2);
    assert_int_equal(m.bad_test_first, 1);
    assert_int_equal(m.bad_ref, 0);
    assert_int_equal(m.bad_ref_first, -1);
    assert_int_equal(m.viol, 2); /* the NaNs; 0.5 <= 0.25 + 0.3125 at 2 */
    assert_int_equal(m.viol_first, 1);
    assert_int_equal(m.n_used, 2);
    /* only pairs 0 and 2 are summed */
    assert_dbl_eq(m.sum_d2, 0.25);
    assert_dbl_eq(m.sum_a2, 5);
    assert_dbl_eq(m.sum_b2, 7.25);
    assert_dbl_eq(m.sum_ab, 6);
    assert_dbl_eq(m.max_abs, 0.5);
    assert_int_equal(m.max_abs_at, 2);
}

static void test_nan_ref_only(void **state)
{
    const float a[] = {1, 2}, b[] = {NAN, 2};
    struct dv_metrics m = measure_f32(a, b, 2, &OPTS);
    assert_int_equal(m.nan_ref, 1);
    assert_int_equal(m.nan_ref_first, 0);
    assert_int_equal(m.nan_test, 0);
    assert_int_equal(m.bad_ref, 1);
    assert_int_equal(m.bad_ref_first, 0);
    assert_int_equal(m.bad_test, 0);
    assert_int_equal(m.viol, 1);
    assert_int_equal(m.n_used, 1);
    assert_dbl_eq(m.sum_b2, 4);
    assert_int_equal(m.max_abs_at, 1);
}

/* NaN facing NaN (any sign) is isclose(equal_nan=True), so no violation,
 * but never a match: a non-finite mismatch of the reference's (bad_ref). */
static void test_nan_both(void **state)
{
    const float a[] = {NAN, 1, -NAN}, b[] = {NAN, 1, NAN};
    struct dv_metrics m = measure_f32(a, b, 3, &OPTS);
    assert_int_equal(m.nan_test, 2);
    assert_int_equal(m.nan_ref, 2);
    assert_int_equal(m.nan_test_first, 0);
    assert_int_equal(m.nan_ref_first, 0);
    assert_int_equal(m.bad_test, 0);
    assert_int_equal(m.bad_ref, 2);
    assert_int_equal(m.bad_ref_first, 0);
    assert_int_equal(m.mismatch, 2);
    assert_int_equal(m.mismatch_first, 0);
    assert_int_equal(m.viol, 0);
    assert_int_equal(m.viol_first, -1);
    assert_int_equal(m.n_used, 1);
    assert_int_equal(m.max_abs_at, 1);
}

/* The -inf of a causal mask on both sides: matched, never summed. */
static void test_neg_inf_both(void **state)
{
    const float a[] = {-INFINITY, 0.5f, -INFINITY}, b[] = {-INFINITY, 0.25f, -INFINITY};
    struct dv_metrics m = measure_f32(a, b, 3, &OPTS);
    assert_int_equal(m.inf_test, 2);
    assert_int_equal(m.inf_ref, 2);
    assert_int_equal(m.inf_test_first, 0);
    assert_int_equal(m.inf_ref_first, 0);
    assert_int_equal(m.bad_test + m.bad_ref + m.mismatch, 0);
    assert_int_equal(m.mismatch_first, -1);
    assert_int_equal(m.neginf_ref, 2);
    assert_int_equal(m.neginf_ref_first, 0);
    assert_int_equal(m.posinf_ref, 0);
    assert_int_equal(m.viol, 0); /* 0.25 <= 0.25 + 0.125 * 0.25 */
    assert_int_equal(m.n_used, 1);
    assert_dbl_eq(m.sum_d2, 0.0625);
    assert_dbl_eq(m.sum_ab, 0.125);
    assert_dbl_eq(m.max_abs, 0.25);
    assert_int_equal(m.max_abs_at, 1);
}

/* A reference Inf the test does not reproduce: bad_ref, not bad_test. */
static void test_inf_mismatch(void **state)
{
    const float a[] = {INFINITY, NAN, 1}, b[] = {-INFINITY, INFINITY, 1};
    struct dv_metrics m = measure_f32(a, b, 3, &OPTS);
    assert_int_equal(m.bad_ref, 2);
    assert_int_equal(m.bad_ref_first, 0);
    assert_int_equal(m.bad_test, 0);
    assert_int_equal(m.viol, 2);
    assert_int_equal(m.viol_first, 0);
    assert_int_equal(m.inf_test, 1);
    assert_int_equal(m.nan_test, 1);
    assert_int_equal(m.nan_test_first, 1);
    assert_int_equal(m.inf_ref, 2);
    assert_int_equal(m.n_used, 1);
}

static void test_inf_vs_finite(void **state)
{
    const float a[] = {1, INFINITY, 3}, b[] = {1, 2, -INFINITY};
    struct dv_metrics m = measure_f32(a, b, 3, &OPTS);
    assert_int_equal(m.bad_test, 1); /* test Inf, reference finite */
    assert_int_equal(m.bad_test_first, 1);
    assert_int_equal(m.bad_ref, 1); /* finite test, reference Inf */
    assert_int_equal(m.bad_ref_first, 2);
    assert_int_equal(m.inf_test_first, 1);
    assert_int_equal(m.inf_ref_first, 2);
    assert_int_equal(m.viol, 2);
    assert_int_equal(m.viol_first, 1);
    assert_int_equal(m.n_used, 1);
    assert_dbl_eq(m.sum_d2, 0);
}

/* Every combination of finite (1.5), NaN, +Inf and -Inf on either side
 * (metrics.h): only finite/finite (used) and the same infinity on both
 * sides are not mismatches; a NaN never matches, not even a NaN. Each
 * pair is measured alone (after a finite pair, so that one is used) and
 * all sixteen together. */
static void test_nonfinite_table(void **state)
{
    const float F = 1.5f, N = NAN, P = INFINITY, M = -INFINITY;
    static const struct {
        float a, b;                 /* test, reference */
        int mis, bad_test, bad_ref, viol;
    } c[] = {
        {F, F, 0, 0, 0, 0}, {F, N, 1, 0, 1, 1}, {F, P, 1, 0, 1, 1}, {F, M, 1, 0, 1, 1},
        {N, F, 1, 1, 0, 1}, {N, N, 1, 0, 1, 0}, {N, P, 1, 0, 1, 1}, {N, M, 1, 0, 1, 1},
        {P, F, 1, 1, 0, 1}, {P, N, 1, 0, 1, 1}, {P, P, 0, 0, 0, 0}, {P, M, 1, 0, 1, 1},
        {M, F, 1, 1, 0, 1}, {M, N, 1, 0, 1, 1}, {M, P, 1, 0, 1, 1}, {M, M, 0, 0, 0, 0},
    };
    enum { NC = sizeof c / sizeof c[0] };
    float a[NC + 1], b[NC + 1];
    a[0] = b[0] = 1;
#define CASE_EQ(x, y)                                                                   \
    do {                                                                                \
        long long x_ = (x), y_ = (y);                                                   \
        if (x_ != y_)                                                                   \
            fail_msg("case %d (test %g, ref %g): %s = %lld, expected %lld", i, c[i].a,  \
                     c[i].b, #x, x_, y_);                                               \
    } while (0)
    for (int i = 0; i < NC; i++) {
        const float pa[2] = {1, c[i].a}, pb[2] = {1, c[i].b};
        struct dv_metrics m = measure_f32(pa, pb, 2, &OPTS);
        CASE_EQ(m.mismatch, c[i].mis);
        CASE_EQ(m.mismatch_first, c[i].mis ? 1 : -1);
        CASE_EQ(m.bad_test, c[i].bad_test);
        CASE_EQ(m.bad_ref, c[i].bad_ref);
        CASE_EQ(m.viol, c[i].viol);
        CASE_EQ(m.n_used, 1 + (c[i].a == F && c[i].b == F));
        CASE_EQ(m.posinf_ref, c[i].b == P);
        CASE_EQ(m.neginf_ref, c[i].b == M);
        CASE_EQ(m.nan_ref, isnan(c[i].b));
        if (c[i].mis) {
            assert_dbl_eq(m.mismatch_test, c[i].a);
            assert_dbl_eq(m.mismatch_ref, c[i].b);
        }
        a[i + 1] = c[i].a, b[i + 1] = c[i].b;
    }
#undef CASE_EQ
    /* all at once, through the block loop (and the vector loop with AVX2) */
    struct dv_metrics m;
    dv_metrics_init(&m);
    dv_metrics_add(&m, a, F32, b, F32, NC + 1, 0, &OPTS);
    assert_int_equal(m.mismatch, 13);
    assert_int_equal(m.bad_test, 3);
    assert_int_equal(m.bad_ref, 10);
    assert_int_equal(m.mismatch, m.bad_test + m.bad_ref);
    assert_int_equal(m.mismatch_first, 2);  /* F vs NaN */
    assert_dbl_eq(m.mismatch_test, 1.5);
    assert_true(isnan(m.mismatch_ref));
    assert_int_equal(m.bad_test_first, 5);  /* NaN vs F */
    assert_int_equal(m.bad_ref_first, 2);
    assert_int_equal(m.posinf_ref, 4);
    assert_int_equal(m.posinf_ref_first, 3);
    assert_int_equal(m.neginf_ref, 4);
    assert_int_equal(m.neginf_ref_first, 4);
    assert_int_equal(m.nan_ref, 4);
    assert_int_equal(m.n_used, 2);
}

/* numpy.isclose(a, b, rtol=0.125, atol=0.5, equal_nan=True), that is
 * |a - b| <= 0.5 + 0.125 |b| with the reference's |b| only:
 *
 *     a      b     |d|     tol     isclose
 *     4.5    4     0.5     1       True
 *     6      4     2       1       False
 *    -4.5   -4     0.5     1       True
 *     9.5    8     1.5     1.5     True   (on the line: <= accepts)
 *    12     10     2       1.75    False  (with |a|, 2 <= 2 would pass)
 *    10     12     2       2       True   (on the line)
 *     0.5    0     0.5     0.5     True   (on the line, atol alone)
 *     0.625  0     0.625   0.5     False
 */
static void test_viol_isclose(void **state)
{
    const struct dv_metric_opts o = {.atol = 0.5, .rtol = 0.125, .rel_eps = 1};
    const float a[] = {4.5f, 6, -4.5f, 9.5f, 12, 10, 0.5f, 0.625f};
    const float b[] = {4, 4, -4, 8, 10, 12, 0, 0};
    struct dv_metrics m = measure_f32(a, b, 8, &o);
    assert_int_equal(m.viol, 3);
    assert_int_equal(m.viol_first, 1);
    /* isclose: True, True (equal_nan), True, False, False */
    const float a2[] = {1, NAN, INFINITY, INFINITY, -INFINITY};
    const float b2[] = {1, NAN, INFINITY, 1e30f, INFINITY};
    m = measure_f32(a2, b2, 5, &o);
    assert_int_equal(m.viol, 2);
    assert_int_equal(m.viol_first, 3);
}

/* Ties keep the first index, within a block and across blocks. */
static void test_positions(void **state)
{
    const struct dv_metric_opts o = {.atol = 0, .rtol = 0, .rel_eps = 1};
    const float a[] = {0, 3, 1, 3, 0}, b[] = {0, 1, 3, 1, 0};
    struct dv_metrics m = measure_f32(a, b, 5, &o);
    assert_dbl_eq(m.max_abs, 2); /* |d| = (0, 2, 2, 2, 0) */
    assert_int_equal(m.max_abs_at, 1);
    assert_dbl_eq(m.max_rel, 2); /* (0, 2, 2/3, 2, 0) */
    assert_int_equal(m.max_rel_at, 1);
    assert_int_equal(m.ulp_max, 0xc00000); /* 3.0f - 1.0f: 0x40400000 - 0x3f800000 */
    assert_int_equal(m.ulp_max_at, 1);

    /* 3000 pairs, the same pair (3, 2) at 700 and 1500 (in other blocks of
     * any size up to 800), then (3.5, 2) at 2900; elsewhere a = b */
    enum { N = 3000 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = y[i] = (float)(i % 7);
    x[700] = x[1500] = 3;
    y[700] = y[1500] = 2;
    dv_metrics_init(&m);
    dv_metrics_add(&m, x, F32, y, F32, 2000, 0, &o);
    assert_dbl_eq(m.max_abs, 1);
    assert_int_equal(m.max_abs_at, 700);
    assert_dbl_eq(m.max_rel, 0.5);
    assert_int_equal(m.max_rel_at, 700);
    assert_int_equal(m.ulp_max, 0x400000); /* 0x40400000 - 0x40000000 */
    assert_int_equal(m.ulp_max_at, 700);
    x[2900] = 3.5f;
    y[2900] = 2;
    dv_metrics_add(&m, x + 2000, F32, y + 2000, F32, N - 2000, 2000, &o);
    assert_dbl_eq(m.max_abs, 1.5);
    assert_int_equal(m.max_abs_at, 2900);
    assert_dbl_eq(m.max_rel, 0.75);
    assert_int_equal(m.max_rel_at, 2900);
    assert_int_equal(m.ulp_max, 0x600000);
    assert_int_equal(m.ulp_max_at, 2900);
    assert_int_equal(m.viol, 3);
    assert_int_equal(m.viol_first, 700);
}

static void test_empty(void **state)
{
    struct dv_metrics m;
    dv_metrics_init(&m);
    dv_metrics_add(&m, NULL, F32, NULL, F64, 0, 0, &OPTS);
    assert_int_equal(m.n, 0);
    assert_int_equal(m.max_abs_at, -1);
    assert_int_equal(m.max_rel_at, -1);
    assert_int_equal(m.ulp_max_at, -1);
    assert_int_equal(m.viol_first, -1);
    assert_all_finite(&m);
    assert_dbl_eq(dv_metrics_rmse(&m), 0);
    assert_dbl_eq(dv_metrics_nmse(&m), 0);
    assert_dbl_eq(dv_metrics_cos(&m), 1);
    assert_dbl_eq(dv_metrics_sqnr_db(&m), INFINITY);
    /* only non-finite pairs (16: the vector loop's): nothing used, the
     * maxima keep -1 */
    float a[16], b[16];
    for (int i = 0; i < 16; i++) {
        a[i] = i % 2 ? -INFINITY : NAN;
        b[i] = i % 2 ? -INFINITY : 1;
    }
    dv_metrics_init(&m);
    dv_metrics_add(&m, a, F32, b, F32, 16, 0, &OPTS);
    assert_int_equal(m.n_used, 0);
    assert_int_equal(m.bad_test, 8);
    assert_int_equal(m.max_abs_at, -1);
    assert_int_equal(m.max_rel_at, -1);
    assert_int_equal(m.ulp_max_at, -1);
    assert_dbl_eq(m.max_abs, 0);
    assert_dbl_eq(m.sum_b2, 0);
    assert_dbl_eq(dv_metrics_rmse(&m), 0);
}

/* ---- a seeded random tensor ---- */

enum { N_RAND = 10000 };

/* Knuth's MMIX LCG: a fixed, portable sequence. */
static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s >> 11; /* 53 bits */
}

/* Reference in [-1, 1) times 2^k, k in [-20, 20), so that magnitudes
 * vary; test = reference plus noise of relative size up to 2^-10, in
 * double (test_d) and rounded to float (test_f); a few NaN/Inf. */
struct rand_data {
    float ref[N_RAND], test_f[N_RAND];
    double test_d[N_RAND];
};

static void rand_fill(struct rand_data *r)
{
    uint64_t s = 20240601;
    for (int i = 0; i < N_RAND; i++) {
        double u = (double)lcg(&s) * 0x1p-52 - 1, v = (double)lcg(&s) * 0x1p-52 - 1;
        int k = (int)(lcg(&s) % 40) - 20;
        r->ref[i] = (float)ldexp(u, k);
        r->test_d[i] = r->ref[i] * (1 + v * 0x1p-10);
        r->test_f[i] = (float)r->test_d[i];
    }
    r->test_f[3] = r->test_d[3] = NAN;          /* bad test */
    for (int i = 2500; i < 2600; i++)          /* a mask across blocks */
        r->ref[i] = r->test_f[i] = (float)(r->test_d[i] = -INFINITY);
    r->ref[5003] = INFINITY;                   /* bad ref */
    r->ref[9998] = r->test_f[9998] = NAN;      /* isclose, but a mismatch */
    r->test_d[9998] = NAN;
}

/* The header's definitions, pair by pair, with doubles in index order. */
static void naive(const double *a, const float *af, const float *b, int64_t n,
                  const struct dv_metric_opts *o, struct dv_metrics *m)
{
    dv_metrics_init(m);
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        m->n++;
        if (isnan(x) && m->nan_test++ == 0) m->nan_test_first = i;
        if (isnan(y) && m->nan_ref++ == 0) m->nan_ref_first = i;
        if (isinf(x) && m->inf_test++ == 0) m->inf_test_first = i;
        if (isinf(y) && m->inf_ref++ == 0) m->inf_ref_first = i;
        if (y == INFINITY && m->posinf_ref++ == 0) m->posinf_ref_first = i;
        if (y == -INFINITY && m->neginf_ref++ == 0) m->neginf_ref_first = i;
        if (!isfinite(x) || !isfinite(y)) {
            bool close = (isnan(x) && isnan(y)) || (isinf(x) && x == y);
            bool match = isinf(x) && x == y;
            if (!close && m->viol++ == 0) m->viol_first = i;
            if (!match && m->mismatch++ == 0)
                m->mismatch_first = i, m->mismatch_test = x, m->mismatch_ref = y;
            if (!isfinite(x) && isfinite(y) && m->bad_test++ == 0) m->bad_test_first = i;
            if (!isfinite(y) && !match && m->bad_ref++ == 0) m->bad_ref_first = i;
            continue;
        }
        double d = x - y, ad = fabs(d), r = ad / fmax(fabs(y), o->rel_eps);
        uint64_t g = dv_ulp_distance_f32(af[i], (float)y);
        m->n_used++;
        m->sum_d2 += d * d;
        m->sum_a2 += x * x;
        m->sum_b2 += y * y;
        m->sum_ab += x * y;
        if (m->max_abs_at < 0 || ad > m->max_abs) m->max_abs = ad, m->max_abs_at = i;
        if (m->max_rel_at < 0 || r > m->max_rel) m->max_rel = r, m->max_rel_at = i;
        if (m->ulp_max_at < 0 || g > m->ulp_max) m->ulp_max = g, m->ulp_max_at = i;
        if (ad > o->atol + o->rtol * fabs(y) && m->viol++ == 0) m->viol_first = i;
    }
}

/* Feed [0, N_RAND) in pieces of the given sizes, in order (the last one,
 * or one that would run past the end, takes the rest). */
static void add_pieces(struct dv_metrics *m, const void *a, enum dv_metric_elem ta,
                       const float *b, const int *sizes, int n_sizes,
                       const struct dv_metric_opts *o)
{
    int64_t at = 0;
    dv_metrics_init(m);
    for (int k = 0; k < n_sizes && at < N_RAND; k++) {
        int64_t len = k == n_sizes - 1 || sizes[k] > N_RAND - at ? N_RAND - at : sizes[k];
        const void *pa = ta == F32 ? (const void *)((const float *)a + at)
                                   : (const void *)((const double *)a + at);
        dv_metrics_add(m, pa, ta, b + at, F32, len, at, o);
        at += len;
    }
}

/* One call, uneven pieces and many small odd pieces (each piece leaves a
 * tail to the plain loop) all give the same struct, bit for bit, equal to
 * the naive loop's; for f32 and f64 test data. */
static void test_blocks(void **state)
{
    const struct dv_metric_opts o = {.atol = 1e-6, .rtol = 9e-4, .rel_eps = 1e-6};
    struct rand_data *r = malloc(sizeof *r);
    assert_non_null(r);
    rand_fill(r);
    double af[N_RAND];
    for (int i = 0; i < N_RAND; i++) af[i] = r->test_f[i];
    const int whole[] = {N_RAND}, uneven[] = {1, 7, 1000, 0};
    int odd[400];
    for (int k = 0; k < 400; k++) odd[k] = 1 + (k * 37) % 61;
    for (int t = 0; t < 2; t++) {
        const void *a = t ? (const void *)r->test_d : (const void *)r->test_f;
        enum dv_metric_elem ta = t ? F64 : F32;
        struct dv_metrics ref, m;
        naive(t ? r->test_d : af, r->test_f, r->ref, N_RAND, &o, &ref);
        assert_int_equal(ref.nan_test, 2); /* 3, and 9998 facing NaN */
        assert_int_equal(ref.bad_test, 1);
        assert_int_equal(ref.inf_ref, 101);
        /* noise up to 2^-10 ~ 9.8e-4 relative: rtol 9e-4 flags some 8% */
        assert_true(ref.viol > 300 && ref.viol < 2000);
        add_pieces(&m, a, ta, r->ref, whole, 1, &o);
        assert_same(&m, &ref, true);
        add_pieces(&m, a, ta, r->ref, uneven, 4, &o);
        assert_same(&m, &ref, true);
        add_pieces(&m, a, ta, r->ref, odd, 400, &o);
        assert_same(&m, &ref, true);
    }
    free(r);
}

/* Removing the non-finite pairs changes no sum and no maximum: the sums
 * skip them in the same order (metrics.c's summation guarantee). */
static void test_nonfinite_removed(void **state)
{
    enum { N = 1200 };
    static float a[N], b[N], ca[N], cb[N];
    uint64_t s = 7;
    int kept = 0;
    for (int i = 0; i < N; i++) {
        a[i] = (float)((double)lcg(&s) * 0x1p-52 - 1);
        b[i] = (float)((double)lcg(&s) * 0x1p-52 - 1);
        if (i % 97 == 5) a[i] = NAN;
        if (i % 89 == 3) b[i] = -INFINITY;
        if (i >= 600 && i < 640) a[i] = b[i] = -INFINITY;
        if (isfinite(a[i]) && isfinite(b[i])) ca[kept] = a[i], cb[kept++] = b[i];
    }
    struct dv_metrics m, c;
    dv_metrics_init(&m);
    dv_metrics_add(&m, a, F32, b, F32, N, 0, &OPTS);
    dv_metrics_init(&c);
    dv_metrics_add(&c, ca, F32, cb, F32, kept, 0, &OPTS);
    assert_int_equal(m.n_used, kept);
    assert_int_equal(c.n_used, kept);
    assert_dbl_eq(m.sum_d2, c.sum_d2);
    assert_dbl_eq(m.sum_a2, c.sum_a2);
    assert_dbl_eq(m.sum_b2, c.sum_b2);
    assert_dbl_eq(m.sum_ab, c.sum_ab);
    assert_dbl_eq(m.max_abs, c.max_abs);
    assert_dbl_eq(m.max_rel, c.max_rel);
    assert_int_equal(m.ulp_max, c.ulp_max);
}

/* Two halves merged, in either order: counts, maxima and firsts exactly
 * as one pass; sums to rounding. Two summation orders of n terms differ
 * by at most about n u sum|x| (u = 2^-53): 10^4 u ~ 1.1e-12. */
static void test_merge(void **state)
{
    const struct dv_metric_opts o = {.atol = 1e-6, .rtol = 9e-4, .rel_eps = 1e-6};
    struct rand_data *r = malloc(sizeof *r);
    assert_non_null(r);
    rand_fill(r);
    struct dv_metrics whole, lo, hi, m, e;
    const int split = 4999; /* odd, inside a block */
    dv_metrics_init(&whole);
    dv_metrics_add(&whole, r->test_f, F32, r->ref, F32, N_RAND, 0, &o);
    dv_metrics_init(&lo);
    dv_metrics_add(&lo, r->test_f, F32, r->ref, F32, split, 0, &o);
    dv_metrics_init(&hi);
    dv_metrics_add(&hi, r->test_f + split, F32, r->ref + split, F32, N_RAND - split, split,
                   &o);
    for (int order = 0; order < 2; order++) {
        m = order ? hi : lo;
        dv_metrics_merge(&m, order ? &lo : &hi);
        struct dv_metrics exact = m;
        exact.sum_d2 = whole.sum_d2;
        exact.sum_a2 = whole.sum_a2;
        exact.sum_b2 = whole.sum_b2;
        exact.sum_ab = whole.sum_ab;
        assert_same(&exact, &whole, true);
        assert_rel(m.sum_d2, whole.sum_d2, 1.2e-12);
        assert_rel(m.sum_a2, whole.sum_a2, 1.2e-12);
        assert_rel(m.sum_b2, whole.sum_b2, 1.2e-12);
        /* sum ab has mixed signs: bound relative to sum |ab| <= sqrt(a2 b2) */
        assert_true(fabs(m.sum_ab - whole.sum_ab) <= 1.2e-12 * sqrt(whole.sum_a2 * whole.sum_b2));
    }
    /* merging an empty accumulation changes nothing, either way round */
    dv_metrics_init(&e);
    m = whole;
    dv_metrics_merge(&m, &e);
    assert_same(&m, &whole, true);
    dv_metrics_merge(&e, &whole);
    assert_same(&e, &whole, true);
    free(r);
}

/* f64 data whose squares overflow: the sums become inf, and what follows
 * is still counted like the naive loop counts it. */
static void test_f64_overflow(void **state)
{
    enum { N = 1100 };
    static double a[N];
    static float b[N], af[N];
    for (int i = 0; i < N; i++) {
        b[i] = (float)(i % 13) - 6;
        a[i] = b[i] + 0.001 * (i % 5);
        af[i] = (float)a[i];
    }
    a[10] = 1e200; /* a^2 overflows; d = 1e200 does not */
    af[10] = INFINITY;
    a[900] = NAN;
    af[900] = NAN;
    struct dv_metrics m, ref;
    dv_metrics_init(&m);
    dv_metrics_add(&m, a, F64, b, F32, N, 0, &OPTS);
    naive(a, af, b, N, &OPTS, &ref);
    assert_dbl_eq(m.sum_a2, INFINITY);
    assert_same(&m, &ref, true);
    assert_int_equal(m.max_abs_at, 10);
    assert_int_equal(m.bad_test_first, 900);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_f32),
        cmocka_unit_test(test_mixed_types),
        cmocka_unit_test(test_zeros_both),
        cmocka_unit_test(test_zero_ref),
        cmocka_unit_test(test_denormals),
        cmocka_unit_test(test_ulp_distance),
        cmocka_unit_test(test_f64_beyond_float),
        cmocka_unit_test(test_signed_zero),
        cmocka_unit_test(test_nan_test_only),
        cmocka_unit_test(test_nan_ref_only),
        cmocka_unit_test(test_nan_both),
        cmocka_unit_test(test_neg_inf_both),
        cmocka_unit_test(test_inf_mismatch),
        cmocka_unit_test(test_inf_vs_finite),
        cmocka_unit_test(test_nonfinite_table),
        cmocka_unit_test(test_viol_isclose),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_nonfinite_removed),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_f64_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
