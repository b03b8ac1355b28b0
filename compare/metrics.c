/*
 * metrics.c - one streaming pass computing metrics.h's figures.
 *
 * This is the hot loop of `diverge compare`. Pairs are taken in blocks
 * of BLK, and a branch-free loop reduces each block to its sums, maxima
 * and counts: with AVX2 a vector loop over 8 pairs at a time (the fast
 * variant assumes finite values and is redone masked when the block
 * turns out to hold a NaN or Inf), else, and for the last n % 8 pairs,
 * a plain C loop. The rare cases are handled per block afterwards: the
 * first index of a maximum is searched for only in a block whose maximum
 * beats the running one, and NaN/Inf are classified only in a block that
 * has one.
 *
 * Guarantees (what the tests check):
 *
 *  - Summation order. Each of the four sums is the plain left-to-right
 *    double sum over the used pairs in flat-index order, exactly as
 *    `for (i...) if (used) s += x[i]` would give it: the four sums live
 *    in the lanes of one vector and every pair is added to it in turn.
 *    The masked vector loop adds +0.0 for a pair that is not used (the
 *    plain loop skips it), which leaves every sum unchanged bit for bit:
 *    a sum that starts at +0.0 can never become -0.0 (x + y is -0.0
 *    only when both are -0.0), and s + +0.0 == s for every other s, inf
 *    and NaN included. Hence the
 *    sums are identical to a naive loop, to the same tensor with its
 *    non-finite pairs removed, and to any split of the tensor into
 *    pieces fed in order with the right `base`; the AVX2 and plain paths
 *    give the same bits.
 *  - Splitting. Nothing else depends on where calls or blocks start
 *    either: counts are integers, maxima are exact, and a maximum only
 *    moves on a strictly larger value, so the first index wins ties as
 *    long as pieces arrive in increasing index order.
 *  - dv_metrics_merge adds the sums of two runs, which rounds differently
 *    from one sequential pass (last bits only); its counts, maxima and
 *    first indices are exactly those of one pass.
 *
 * The price of the sequential sums is one dependent vector add per pair
 * (2 cycles on recent x86); everything else runs beside that chain.
 * Arithmetic is IEEE double without contraction (the project builds with
 * -ffp-contract=off), so each per-pair value is the same in the vector
 * loop, the plain loop and the rescans that look for its index.
 */
#include "metrics.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* The AVX2 loop is written with intrinsics (the compiler does not
 * vectorize the sequential sums or the max reductions without
 * -ffast-math); simpler loops get an AVX2 clone of plain C. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DV_HAVE_AVX2 1
#define DV_AVX2 __attribute__((target("avx2"), always_inline)) inline
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DV_CLONES
#endif

/* Pairs per block: long enough to amortize the per-block bookkeeping,
 * short enough that a rescan rereads data still in L1. */
#define BLK 512

/* ---- per-pair definitions, shared by every path ---- */

static bool is_fin(double v)
{
    return fabs(v) <= DBL_MAX; /* false for NaN too */
}

/* max(|b|, rel_eps), written as _mm256_max_pd computes it. */
static double rel_den(double b, double rel_eps)
{
    double ab = fabs(b);
    return ab > rel_eps ? ab : rel_eps;
}

/* The one non-finite pair that matches (metrics.h): the same infinity
 * on both sides. */
static bool same_inf(double a, double b)
{
    return isinf(b) && a == b;
}

/* The float32 bit pattern on a line where consecutive floats are one
 * apart and -0 sits on +0: the magnitude for a positive sign, its
 * negation for a negative one (a two's-complement negate under the sign
 * mask, the same four operations the vector loop does). */
static int32_t ulp_line(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t s = (uint32_t)0 - (u >> 31);
    return (int32_t)(((u & 0x7fffffffu) ^ s) - s);
}

/* |ia - ib| < 2^32 (the line spans less than that), and unsigned
 * wrap-around makes max - min exact without widening. */
static uint32_t ulp_gap(float a, float b)
{
    int32_t ia = ulp_line(a), ib = ulp_line(b);
    int32_t hi = ia > ib ? ia : ib, lo = ia > ib ? ib : ia;
    return (uint32_t)hi - (uint32_t)lo;
}

uint64_t dv_ulp_distance_f32(float a, float b)
{
    return ulp_gap(a, b);
}

/* Element i of either type as a double. For the ULP metric it is then
 * rounded to float32: exact for f32 data; an f64 value beyond the float
 * range becomes +-inf, one step past +-FLT_MAX on the line. */
static double elem(const void *p, enum dv_metric_elem t, int64_t i)
{
    return t == DV_METRIC_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* ---- reducing a run of pairs ---- */

/* What a block reduces to. Sums run on from the struct's; the rest
 * covers used pairs of this block only. */
struct span {
    double sum[4];           /* d^2, a^2, b^2, ab: the struct's order */
    double max_abs, max_rel; /* 0 when no pair is used */
    uint32_t ulp_max;
    int64_t used, viol;      /* viol: finite pairs outside tolerance */
};

/* Pairs [from, to) in plain C: the reference the vector loop matches,
 * used for the tail of each block and on CPUs without AVX2. */
static void span_plain(const void *test, enum dv_metric_elem tt, const void *ref,
                       enum dv_metric_elem rt, int64_t from, int64_t to,
                       const struct dv_metric_opts *o, struct span *s)
{
    for (int64_t i = from; i < to; i++) {
        double a = elem(test, tt, i), b = elem(ref, rt, i);
        if (!(is_fin(a) && is_fin(b))) continue; /* the vector loop adds +0.0 */
        double d = a - b, ad = fabs(d);
        double r = ad / rel_den(b, o->rel_eps);
        uint32_t g = ulp_gap((float)a, (float)b);
        s->used++;
        s->viol += ad > o->atol + o->rtol * fabs(b);
        s->max_abs = ad > s->max_abs ? ad : s->max_abs;
        s->max_rel = r > s->max_rel ? r : s->max_rel;
        s->ulp_max = g > s->ulp_max ? g : s->ulp_max;
        s->sum[0] += d * d;
        s->sum[1] += a * a;
        s->sum[2] += b * b;
        s->sum[3] += a * b;
    }
}

#ifdef DV_HAVE_AVX2
/* One side of 8 pairs: the values as double (two halves) and as float32
 * bits for the ULP metric. */
struct oct {
    __m256d lo, hi;
    __m256i f;
};

static DV_AVX2 struct oct oct_load(const void *p, enum dv_metric_elem t, int64_t i)
{
    if (t == DV_METRIC_F32) {
        const float *f = (const float *)p + i;
        return (struct oct){_mm256_cvtps_pd(_mm_loadu_ps(f)), _mm256_cvtps_pd(_mm_loadu_ps(f + 4)),
                            _mm256_loadu_si256((const __m256i *)f)};
    }
    const double *d = (const double *)p + i;
    struct oct x = {_mm256_loadu_pd(d), _mm256_loadu_pd(d + 4), _mm256_setzero_si256()};
    x.f = _mm256_castps_si256(_mm256_set_m128(_mm256_cvtpd_ps(x.hi), _mm256_cvtpd_ps(x.lo)));
    return x;
}

/* Mask an oct to the finite pairs (fin: all ones for a used pair): values
 * become +0.0 elsewhere, and the float bits are rebuilt from the masked
 * values (exact for f32 data) so that they need no mask of their own. */
static DV_AVX2 void oct_mask(struct oct *x, __m256d fin_lo, __m256d fin_hi)
{
    x->lo = _mm256_and_pd(x->lo, fin_lo);
    x->hi = _mm256_and_pd(x->hi, fin_hi);
    x->f = _mm256_castps_si256(_mm256_set_m128(_mm256_cvtpd_ps(x->hi), _mm256_cvtpd_ps(x->lo)));
}

/* All ones where both sides of a pair are finite. */
static DV_AVX2 __m256d both_fin(__m256d a, __m256d b)
{
    const __m256d absm = _mm256_castsi256_pd(_mm256_set1_epi64x(INT64_MAX));
    const __m256d big = _mm256_set1_pd(DBL_MAX);
    return _mm256_and_pd(_mm256_cmp_pd(_mm256_and_pd(a, absm), big, _CMP_LE_OQ),
                         _mm256_cmp_pd(_mm256_and_pd(b, absm), big, _CMP_LE_OQ));
}

/* ulp_line on 8 lanes. */
static DV_AVX2 __m256i oct_line(__m256i u)
{
    __m256i s = _mm256_srai_epi32(u, 31);
    __m256i mag = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    return _mm256_sub_epi32(_mm256_xor_si256(mag, s), s);
}

/* Largest lane of a vector of doubles that holds no NaN. */
static DV_AVX2 double hmax_pd(__m256d v)
{
    __m128d m = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_max_sd(m, _mm_unpackhi_pd(m, m)));
}

static DV_AVX2 uint32_t hmax_epu32(__m256i w)
{
    __m128i v = _mm_max_epu32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    v = _mm_max_epu32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_max_epu32(v, _mm_shuffle_epi32(v, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(v);
}

static DV_AVX2 int64_t hsum_epi64(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

/* The running reductions of the vector loop. */
struct lanes {
    __m256d acc;         /* sum d^2, a^2, b^2, ab */
    __m256d mabs, mrel;  /* lane-wise maxima */
    __m256i viol, used;  /* lane-wise counts (used: masked loop only) */
    __m256i mulp;
};

/* Add 4 pairs' terms to acc pair by pair: transpose the four term
 * vectors so that each holds one pair, then four dependent adds. */
static DV_AVX2 __m256d quad_sum(__m256d acc, __m256d d, __m256d a, __m256d b)
{
    __m256d dd = _mm256_mul_pd(d, d), aa = _mm256_mul_pd(a, a);
    __m256d bb = _mm256_mul_pd(b, b), ab = _mm256_mul_pd(a, b);
    __m256d t0 = _mm256_unpacklo_pd(dd, aa), t1 = _mm256_unpackhi_pd(dd, aa);
    __m256d t2 = _mm256_unpacklo_pd(bb, ab), t3 = _mm256_unpackhi_pd(bb, ab);
    acc = _mm256_add_pd(acc, _mm256_permute2f128_pd(t0, t2, 0x20));
    acc = _mm256_add_pd(acc, _mm256_permute2f128_pd(t1, t3, 0x20));
    acc = _mm256_add_pd(acc, _mm256_permute2f128_pd(t0, t2, 0x31));
    return _mm256_add_pd(acc, _mm256_permute2f128_pd(t1, t3, 0x31));
}

/* Everything but the ULP for 4 pairs (masked ones are +0.0 on both
 * sides, which yields 0 everywhere and no violation as atol >= 0). */
static DV_AVX2 void quad_step(struct lanes *l, __m256d a, __m256d b,
                              const struct dv_metric_opts *o)
{
    const __m256d absm = _mm256_castsi256_pd(_mm256_set1_epi64x(INT64_MAX));
    __m256d d = _mm256_sub_pd(a, b), ad = _mm256_and_pd(d, absm);
    __m256d ab = _mm256_and_pd(b, absm);
    __m256d r = _mm256_div_pd(ad, _mm256_max_pd(ab, _mm256_set1_pd(o->rel_eps)));
    __m256d tol = _mm256_add_pd(_mm256_set1_pd(o->atol),
                                _mm256_mul_pd(_mm256_set1_pd(o->rtol), ab));
    __m256d out = _mm256_cmp_pd(ad, tol, _CMP_GT_OQ);
    l->viol = _mm256_sub_epi64(l->viol, _mm256_castpd_si256(out));
    l->mabs = _mm256_max_pd(l->mabs, ad); /* exact: no NaN, no -0.0 */
    l->mrel = _mm256_max_pd(l->mrel, r);
    l->acc = quad_sum(l->acc, d, a, b);
}

/* span_plain on pairs [0, n & ~7), 8 at a time, without branches.
 * masked = false assumes every value is finite (the caller checks the
 * sums afterwards, see span_run); masked = true sets pairs with a
 * non-finite side to a = b = +0.0, which makes every term +0.0 and every
 * maximized value 0 (the rescans look at used pairs only). Always
 * inlined with constant arguments, so each variant is its own loop. */
static DV_AVX2 int64_t span_avx2(const void *test, enum dv_metric_elem tt, const void *ref,
                                 enum dv_metric_elem rt, int64_t n, bool masked,
                                 const struct dv_metric_opts *o, struct span *s)
{
    struct lanes l = {_mm256_loadu_pd(s->sum), _mm256_setzero_pd(), _mm256_setzero_pd(),
                      _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        struct oct x = oct_load(test, tt, i), y = oct_load(ref, rt, i);
        if (masked) {
            __m256d fin_lo = both_fin(x.lo, y.lo), fin_hi = both_fin(x.hi, y.hi);
            l.used = _mm256_sub_epi64(l.used, _mm256_castpd_si256(fin_lo));
            l.used = _mm256_sub_epi64(l.used, _mm256_castpd_si256(fin_hi));
            oct_mask(&x, fin_lo, fin_hi);
            oct_mask(&y, fin_lo, fin_hi);
        }
        quad_step(&l, x.lo, y.lo, o);
        quad_step(&l, x.hi, y.hi, o);
        __m256i lx = oct_line(x.f), ly = oct_line(y.f);
        __m256i g = _mm256_sub_epi32(_mm256_max_epi32(lx, ly), _mm256_min_epi32(lx, ly));
        l.mulp = _mm256_max_epu32(l.mulp, g);
    }
    _mm256_storeu_pd(s->sum, l.acc);
    s->max_abs = hmax_pd(l.mabs);
    s->max_rel = hmax_pd(l.mrel);
    s->ulp_max = hmax_epu32(l.mulp);
    s->viol = hsum_epi64(l.viol);
    s->used = masked ? hsum_epi64(l.used) : i;
    return i;
}

/* span_avx2 for each pair of element types and mode, specialized. */
__attribute__((target("avx2")))
static int64_t span_avx2_any(const void *test, enum dv_metric_elem tt, const void *ref,
                             enum dv_metric_elem rt, int64_t n, bool masked,
                             const struct dv_metric_opts *o, struct span *s)
{
    const enum dv_metric_elem F = DV_METRIC_F32, D = DV_METRIC_F64;
    if (masked) {
        if (tt == F && rt == F) return span_avx2(test, F, ref, F, n, true, o, s);
        if (tt == F && rt == D) return span_avx2(test, F, ref, D, n, true, o, s);
        if (tt == D && rt == F) return span_avx2(test, D, ref, F, n, true, o, s);
        return span_avx2(test, D, ref, D, n, true, o, s);
    }
    if (tt == F && rt == F) return span_avx2(test, F, ref, F, n, false, o, s);
    if (tt == F && rt == D) return span_avx2(test, F, ref, D, n, false, o, s);
    if (tt == D && rt == F) return span_avx2(test, D, ref, F, n, false, o, s);
    return span_avx2(test, D, ref, D, n, false, o, s);
}

/* Whether the sums of a^2 and b^2 are finite (see span_run). */
static bool sums_fin(const struct span *s)
{
    return is_fin(s->sum[1]) && is_fin(s->sum[2]);
}
#endif

/* Reduce a block: the vector loop where it runs, the plain loop for the
 * rest (after the vector loop's pairs, so the sums keep their order).
 * The fast vector loop ignores NaN/Inf; every pair was finite iff the
 * sums of a^2 and b^2 are still finite afterwards (they only grow, and
 * NaN or Inf on either side makes its square NaN or Inf), else the block
 * is done again masked. Sums already infinite (f64 data whose squares
 * overflow) cannot tell, so those blocks go masked directly, as do the
 * ones the caller expects to need it. */
static void span_run(const void *test, enum dv_metric_elem tt, const void *ref,
                     enum dv_metric_elem rt, int64_t n, bool expect_nonfinite,
                     const struct dv_metric_opts *o, struct span *s)
{
    int64_t done = 0;
#ifdef DV_HAVE_AVX2
    if (__builtin_cpu_supports("avx2")) {
        bool masked = expect_nonfinite || !sums_fin(s);
        struct span fast = *s;
        if (!masked) {
            done = span_avx2_any(test, tt, ref, rt, n, false, o, &fast);
            masked = !sums_fin(&fast);
        }
        if (masked)
            done = span_avx2_any(test, tt, ref, rt, n, true, o, s);
        else
            *s = fast;
    }
#endif
    span_plain(test, tt, ref, rt, done, n, o, s);
}

/* ---- rare paths: where a maximum or a first occurrence is ---- */

/* A block's pairs, for the rescans. */
struct pairs {
    const void *test, *ref;
    enum dv_metric_elem tt, rt;
    int64_t n;
};

/* The maxima a rescan looks for: bits of `want`. */
enum { W_ABS = 1, W_REL = 2, W_ULP = 4 };

/* First used pair (block index) whose value equals each wanted block
 * maximum, in one pass. The values are recomputed by the same
 * operations as in the loops, so equality is exact and every wanted
 * maximum is found. */
static void first_reaching(const struct pairs *p, unsigned want, const struct span *s,
                           const struct dv_metric_opts *o, int64_t at[3])
{
    for (int64_t i = 0; i < p->n && want; i++) {
        double a = elem(p->test, p->tt, i), b = elem(p->ref, p->rt, i);
        if (!(is_fin(a) && is_fin(b))) continue;
        double ad = fabs(a - b);
        unsigned hit = (ad == s->max_abs ? W_ABS : 0u) |
                       (want & W_REL && ad / rel_den(b, o->rel_eps) == s->max_rel ? W_REL : 0u) |
                       (want & W_ULP && ulp_gap((float)a, (float)b) == s->ulp_max ? W_ULP : 0u);
        hit &= want;
        for (int j = 0; j < 3; j++)
            if (hit >> j & 1) at[j] = i;
        want &= ~hit;
    }
}

/* Fold a block's maxima into the running ones. A maximum moves on a
 * strictly larger value only (ties keep the earlier index), or when it
 * has no index yet (the first used pair defines it, even at 0). */
static void fold_maxima(struct dv_metrics *m, const struct pairs *p, int64_t base,
                        const struct span *s, const struct dv_metric_opts *o)
{
    if (s->used == 0) return;
    unsigned want = (m->max_abs_at < 0 || s->max_abs > m->max_abs ? W_ABS : 0u) |
                    (m->max_rel_at < 0 || s->max_rel > m->max_rel ? W_REL : 0u) |
                    (m->ulp_max_at < 0 || s->ulp_max > m->ulp_max ? W_ULP : 0u);
    if (!want) return;
    int64_t at[3] = {0, 0, 0};
    first_reaching(p, want, s, o, at);
    if (want & W_ABS) {
        m->max_abs = s->max_abs;
        m->max_abs_at = base + at[0];
    }
    if (want & W_REL) {
        m->max_rel = s->max_rel;
        m->max_rel_at = base + at[1];
    }
    if (want & W_ULP) {
        m->ulp_max = s->ulp_max;
        m->ulp_max_at = base + at[2];
    }
}

/* The per-pair counts, in one order for counting and first indices. */
enum { C_NAN_T, C_NAN_R, C_INF_T, C_INF_R, C_PINF_R, C_NINF_R, C_MIS, C_BAD_T, C_BAD_R,
       C_VIOL, C_COUNT };

static unsigned flag(bool set, int j)
{
    return (unsigned)set << j;
}

/* Which counts a pair adds to, by metrics.h's rules. */
static unsigned pair_flags(double a, double b, const struct dv_metric_opts *o)
{
    bool fa = is_fin(a), fb = is_fin(b);
    if (fa && fb) return flag(fabs(a - b) > o->atol + o->rtol * fabs(b), C_VIOL);
    bool match = same_inf(a, b), close = match || (isnan(a) && isnan(b));
    return flag(isnan(a), C_NAN_T) | flag(isnan(b), C_NAN_R) | flag(isinf(a), C_INF_T) |
           flag(isinf(b), C_INF_R) | flag(b == INFINITY, C_PINF_R) |
           flag(b == -INFINITY, C_NINF_R) | flag(!match, C_MIS) | flag(!fa && fb, C_BAD_T) |
           flag(!fb && !match, C_BAD_R) | flag(!close, C_VIOL);
}

/* Counts of a block with a non-finite value; add[C_VIOL] gets the
 * non-finite violations (the finite ones are the span's). pair_flags'
 * rules without branches, so that the compiler vectorizes the loop: a
 * causal mask puts -inf in half the blocks of some tensors. Two counts
 * follow from the others (a mismatch is bad_test or bad_ref, never both;
 * an Inf is +Inf or -Inf), and a block's counts fit in 32 bits (BLK):
 * fewer and narrower accumulators keep the vector loop in registers. */
DV_CLONES
static void count_nonfinite(const struct pairs *p, int64_t add[C_COUNT])
{
    int32_t c[C_COUNT] = {0};
    for (int64_t i = 0; i < p->n; i++) {
        double a = elem(p->test, p->tt, i), b = elem(p->ref, p->rt, i);
        bool na = isnan(a), nb = isnan(b), ia = isinf(a), ib = isinf(b);
        bool fa = !(na | ia), fb = !(nb | ib);
        bool match = ib & (a == b), close = match | (na & nb);
        c[C_NAN_T] += na;
        c[C_NAN_R] += nb;
        c[C_INF_T] += ia;
        c[C_INF_R] += ib;
        c[C_NINF_R] += ib & (b < 0);
        c[C_BAD_T] += !fa & fb;
        c[C_BAD_R] += !fb & !match;
        c[C_VIOL] += !(fa & fb) & !close;
    }
    c[C_PINF_R] = c[C_INF_R] - c[C_NINF_R];
    c[C_MIS] = c[C_BAD_T] + c[C_BAD_R];
    for (int j = 0; j < C_COUNT; j++) add[j] += c[j];
}

/* Set each first index in `want` (bit j: first[j]) at the block's
 * earliest pair with that flag, and the pair of the first mismatch. */
static void set_firsts(struct dv_metrics *m, const struct pairs *p, int64_t base,
                       unsigned want, int64_t *const first[C_COUNT],
                       const struct dv_metric_opts *o)
{
    for (int64_t i = 0; i < p->n && want; i++) {
        double a = elem(p->test, p->tt, i), b = elem(p->ref, p->rt, i);
        unsigned f = pair_flags(a, b, o) & want;
        for (int j = 0; j < C_COUNT; j++)
            if (f >> j & 1) *first[j] = base + i;
        if (f >> C_MIS & 1) m->mismatch_test = a, m->mismatch_ref = b;
        want &= ~f;
    }
}

/* Counts and first indices of a block. Only blocks with a non-finite
 * value are classified, and only blocks with a count whose first index
 * is still unset are read again. */
static void fold_counts(struct dv_metrics *m, const struct pairs *p, int64_t base,
                        const struct span *s, const struct dv_metric_opts *o)
{
    int64_t add[C_COUNT] = {[C_VIOL] = s->viol};
    if (s->used < p->n) count_nonfinite(p, add);
    int64_t *const count[C_COUNT] = {&m->nan_test, &m->nan_ref, &m->inf_test, &m->inf_ref,
                                     &m->posinf_ref, &m->neginf_ref, &m->mismatch,
                                     &m->bad_test, &m->bad_ref, &m->viol};
    int64_t *const first[C_COUNT] = {&m->nan_test_first, &m->nan_ref_first,
                                     &m->inf_test_first, &m->inf_ref_first,
                                     &m->posinf_ref_first, &m->neginf_ref_first,
                                     &m->mismatch_first, &m->bad_test_first,
                                     &m->bad_ref_first, &m->viol_first};
    unsigned want = 0;
    for (int j = 0; j < C_COUNT; j++) {
        *count[j] += add[j];
        if (add[j] > 0 && *first[j] < 0) want |= 1u << j;
    }
    if (want) set_firsts(m, p, base, want, first, o);
}

/* ---- the API ---- */

void dv_metrics_init(struct dv_metrics *m)
{
    *m = (struct dv_metrics){
        .max_abs_at = -1, .max_rel_at = -1, .ulp_max_at = -1, .viol_first = -1,
        .nan_test_first = -1, .nan_ref_first = -1, .inf_test_first = -1,
        .inf_ref_first = -1, .posinf_ref_first = -1, .neginf_ref_first = -1,
        .mismatch_first = -1, .bad_test_first = -1, .bad_ref_first = -1,
    };
}

static const void *elem_ptr(const void *p, enum dv_metric_elem t, int64_t i)
{
    return t == DV_METRIC_F32 ? (const void *)((const float *)p + i)
                              : (const void *)((const double *)p + i);
}

void dv_metrics_add(struct dv_metrics *m, const void *test, enum dv_metric_elem test_type,
                    const void *ref, enum dv_metric_elem ref_type, int64_t n,
                    int64_t base, const struct dv_metric_opts *o)
{
    bool nonfinite = false; /* in the last block: NaN/Inf come in runs (masks) */
    for (int64_t off = 0; off < n; off += BLK) {
        struct pairs p = {elem_ptr(test, test_type, off), elem_ptr(ref, ref_type, off),
                          test_type, ref_type, n - off < BLK ? n - off : BLK};
        struct span s = {.sum = {m->sum_d2, m->sum_a2, m->sum_b2, m->sum_ab}};
        span_run(p.test, p.tt, p.ref, p.rt, p.n, nonfinite, o, &s);
        nonfinite = s.used < p.n;
        m->sum_d2 = s.sum[0];
        m->sum_a2 = s.sum[1];
        m->sum_b2 = s.sum[2];
        m->sum_ab = s.sum[3];
        fold_maxima(m, &p, base + off, &s, o);
        fold_counts(m, &p, base + off, &s, o);
        m->n += p.n;
        m->n_used += s.used;
    }
}

/* Keep the larger of two maxima, the smaller index on ties; an index of
 * -1 means that side has no value. */
static void merge_max_d(double *v, int64_t *at, double sv, int64_t sat)
{
    if (sat < 0) return;
    if (*at < 0 || sv > *v || (sv == *v && sat < *at)) {
        *v = sv;
        *at = sat;
    }
}

static void merge_max_u(uint64_t *v, int64_t *at, uint64_t sv, int64_t sat)
{
    if (sat < 0) return;
    if (*at < 0 || sv > *v || (sv == *v && sat < *at)) {
        *v = sv;
        *at = sat;
    }
}

static void merge_first(int64_t *dst, int64_t src)
{
    if (src >= 0 && (*dst < 0 || src < *dst)) *dst = src;
}

void dv_metrics_merge(struct dv_metrics *dst, const struct dv_metrics *src)
{
    dst->n += src->n;
    dst->n_used += src->n_used;
    dst->sum_d2 += src->sum_d2;
    dst->sum_a2 += src->sum_a2;
    dst->sum_b2 += src->sum_b2;
    dst->sum_ab += src->sum_ab;
    merge_max_d(&dst->max_abs, &dst->max_abs_at, src->max_abs, src->max_abs_at);
    merge_max_d(&dst->max_rel, &dst->max_rel_at, src->max_rel, src->max_rel_at);
    merge_max_u(&dst->ulp_max, &dst->ulp_max_at, src->ulp_max, src->ulp_max_at);
    dst->viol += src->viol;
    dst->nan_test += src->nan_test;
    dst->nan_ref += src->nan_ref;
    dst->inf_test += src->inf_test;
    dst->inf_ref += src->inf_ref;
    dst->posinf_ref += src->posinf_ref;
    dst->neginf_ref += src->neginf_ref;
    dst->mismatch += src->mismatch;
    dst->bad_test += src->bad_test;
    dst->bad_ref += src->bad_ref;
    if (src->mismatch_first >= 0 &&
        (dst->mismatch_first < 0 || src->mismatch_first < dst->mismatch_first)) {
        dst->mismatch_test = src->mismatch_test;
        dst->mismatch_ref = src->mismatch_ref;
    }
    merge_first(&dst->mismatch_first, src->mismatch_first);
    merge_first(&dst->posinf_ref_first, src->posinf_ref_first);
    merge_first(&dst->neginf_ref_first, src->neginf_ref_first);
    merge_first(&dst->viol_first, src->viol_first);
    merge_first(&dst->nan_test_first, src->nan_test_first);
    merge_first(&dst->nan_ref_first, src->nan_ref_first);
    merge_first(&dst->inf_test_first, src->inf_test_first);
    merge_first(&dst->inf_ref_first, src->inf_ref_first);
    merge_first(&dst->bad_test_first, src->bad_test_first);
    merge_first(&dst->bad_ref_first, src->bad_ref_first);
}

/* ---- derived figures ---- */

double dv_metrics_rmse(const struct dv_metrics *m)
{
    return m->n_used > 0 ? sqrt(m->sum_d2 / (double)m->n_used) : 0.0;
}

double dv_metrics_nmse(const struct dv_metrics *m)
{
    if (m->sum_b2 == 0.0) return m->sum_d2 == 0.0 ? 0.0 : INFINITY;
    return m->sum_d2 / m->sum_b2;
}

double dv_metrics_rel_rms(const struct dv_metrics *m)
{
    return sqrt(dv_metrics_nmse(m));
}

/* The norms are taken apart (sqrt(a2) * sqrt(b2)) so that the product of
 * two large or two tiny sums cannot overflow or underflow; rounding can
 * still push a perfect match a hair past 1, hence the clamp (a lower
 * limit on cos must not depend on which side of 1 the last bit lands). */
double dv_metrics_cos(const struct dv_metrics *m)
{
    bool za = m->sum_a2 == 0.0, zb = m->sum_b2 == 0.0;
    if (za || zb) return za && zb ? 1.0 : 0.0;
    double c = m->sum_ab / (sqrt(m->sum_a2) * sqrt(m->sum_b2));
    return c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
}

double dv_metrics_sqnr_db(const struct dv_metrics *m)
{
    if (m->sum_d2 == 0.0) return INFINITY;
    if (m->sum_b2 == 0.0) return -INFINITY;
    return 10.0 * log10(m->sum_b2 / m->sum_d2);
}
