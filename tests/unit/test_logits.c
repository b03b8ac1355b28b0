/*
 * test_logits.c - the top-k logit diff (compare/logits.c) and its text and
 * JSON reports (reports/logits_report.c).
 *
 * Dumps are written with the public writer (float64, so the logits below
 * are stored exactly) over a vocab of 4 whose logits are logs of powers
 * of two: every probability, KL, Δp and summary figure is worked out by
 * hand in the comments next to the checks. Then: equal dumps give KL
 * exactly 0, NaN/Inf handling, pass alignment, the errors, the vocab
 * lookup through model_path + model_sha256, and the reports' escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>

#include "../common/testutil.h"
#include "diverge.h"
#include "dump.h"
#include "gguf.h"
#include "logits.h"
#include "logits_report.h"
#include "reader.h"
#include "vocab.h"

/* Every figure below is a few exp/log away from exact doubles. */
#define TOL 1e-12
#define assert_close(a, b)                                                          \
    do {                                                                            \
        const double a_ = (a), b_ = (b);                                            \
        if (!(fabs(a_ - b_) <= TOL))                                                \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                     \
    } while (0)

/* ---- writing dumps ------------------------------------------------------ */

struct tpass {
    int64_t index, pos0, n;
    const int32_t *tokens;
    const double *logits; /* [n, V]; NULL: an output_norm tensor instead */
};

/* A float64 dump of a 1-layer model with vocab V holding passes ps[np];
 * model_path and sha (may be NULL) go into the root attributes. */
static void write_dump(const char *path, int64_t V, const struct tpass *ps, int np,
                       const char *model_path, const char *sha)
{
    dv_dump *d;
    assert_int_equal(dv_dump_create(path, "test", DV_DUMP_FLOAT64, &d), DV_OK);
    assert_int_equal(dv_dump_set_str(d, "arch", "llama"), DV_OK);
    const char *keys[] = {"n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff"};
    const int64_t vals[] = {V, 8, 1, 2, 2, 16};
    for (int i = 0; i < 6; i++) assert_int_equal(dv_dump_set_int(d, keys[i], vals[i]), DV_OK);
    if (model_path) assert_int_equal(dv_dump_set_str(d, "model_path", model_path), DV_OK);
    if (sha) assert_int_equal(dv_dump_set_str(d, "model_sha256", sha), DV_OK);
    for (int i = 0; i < np; i++) {
        const struct tpass *p = &ps[i];
        assert_int_equal(dv_dump_begin_pass(d, p->index, p->pos0, p->n, p->tokens), DV_OK);
        if (p->logits) {
            const int64_t shape[2] = {p->n, V};
            assert_int_equal(dv_dump_write(d, "logits", -1, NULL, -1, 2, shape, DV_DUMP_F64,
                                           p->logits), DV_OK);
        } else {
            double zeros[64] = {0};
            const int64_t shape[2] = {p->n, 8};
            assert_int_equal(dv_dump_write(d, "output_norm", -1, NULL, -1, 2, shape,
                                           DV_DUMP_F64, zeros), DV_OK);
        }
        assert_int_equal(dv_dump_end_pass(d), DV_OK);
    }
    assert_int_equal(dv_dump_close(d, 1), DV_OK);
}

static struct dv_reader *open_dump(const char *path)
{
    struct dv_reader *r;
    assert_int_equal(dv_reader_open(path, &r), DV_OK);
    return r;
}

/* Compare test.h5 with ref.h5 in tu_tmp with top-k k over pass `pass`. */
static dv_status compare_files(const char *test, const char *ref, int k, int64_t pass,
                               struct dv_logits_result **out)
{
    struct dv_reader *t = open_dump(tu_path(tu_tmp, test)), *r = open_dump(tu_path(tu_tmp, ref));
    struct dv_logits_opts o = {.top_k = k, .pass = pass};
    dv_status s = dv_logits_compare(t, r, &o, out);
    dv_reader_free(t);
    dv_reader_free(r);
    return s;
}

/* ---- the hand-worked pair ---------------------------------------------- */

/* Pass 0 (pos0 0, input token 2): p = (1/2, 1/4, 1/8, 1/8),
 * q = (1/4, 1/2, 1/8, 1/8): the top-1 flips from 0 to 1.
 * Pass 1 (pos0 1, input token 3): the same logits 1, 2, 3, 4 on both. */
static const int32_t hw_tok0[] = {2}, hw_tok1[] = {3};
static double hw_ref0[4], hw_test0[4];
static const double hw_same1[4] = {1, 2, 3, 4};

static void write_hand_worked(void)
{
    const double l2 = log(0.5), l4 = log(0.25), l8 = log(0.125);
    const double r0[4] = {l2, l4, l8, l8}, t0[4] = {l4, l2, l8, l8};
    memcpy(hw_ref0, r0, sizeof r0);
    memcpy(hw_test0, t0, sizeof t0);
    const struct tpass ref[] = {{0, 0, 1, hw_tok0, hw_ref0}, {1, 1, 1, hw_tok1, hw_same1}};
    const struct tpass test[] = {{0, 0, 1, hw_tok0, hw_test0}, {1, 1, 1, hw_tok1, hw_same1}};
    write_dump(tu_path(tu_tmp, "hw_ref.h5"), 4, ref, 2, NULL, NULL);
    write_dump(tu_path(tu_tmp, "hw_test.h5"), 4, test, 2, NULL, NULL);
}

static void test_hand_worked(void **state)
{
    (void)state;
    write_hand_worked();
    struct dv_logits_result *res;
    assert_int_equal(compare_files("hw_test.h5", "hw_ref.h5", 2, -1, &res), DV_OK);
    const double ln2 = log(2.0);
    assert_int_equal(res->k, 2);
    assert_int_equal(res->n_vocab, 4);
    assert_int_equal(res->n_passes, 2);
    assert_int_equal(res->n_notes, 0);
    assert_int_equal(res->n_rows, 2);

    const struct dv_logits_row *a = &res->rows[0], *b = &res->rows[1];
    assert_int_equal(a->pass, 0);
    assert_int_equal(a->pos, 0);
    assert_int_equal(a->token, 2);
    assert_int_equal(a->status, DV_LOGITS_ROW_OK);
    /* top-2 of p: 0 (1/2), 1 (1/4); of q: 1 (1/2), 0 (1/4) */
    assert_int_equal(a->ref_top[0].id, 0);
    assert_close(a->ref_top[0].p, 0.5);
    assert_int_equal(a->ref_top[1].id, 1);
    assert_close(a->ref_top[1].p, 0.25);
    assert_int_equal(a->test_top[0].id, 1);
    assert_close(a->test_top[0].p, 0.5);
    assert_int_equal(a->test_top[1].id, 0);
    assert_false(a->same_top1);
    assert_int_equal(a->rank, 2);    /* token 0 is second in q */
    assert_int_equal(a->overlap, 2); /* {0,1} both ways */
    /* KL = 1/2 ln(1/2 / 1/4) + 1/4 ln(1/4 / 1/2) + 0 + 0 = ln2 / 4 */
    assert_close(a->kl, ln2 / 4);
    /* |p-q| = 1/4 for tokens 0 and 1: the first, 0, is named */
    assert_close(a->max_abs_dp, 0.25);
    assert_int_equal(a->max_abs_dp_id, 0);
    assert_close(a->dp, 0.25 - 0.5); /* q(0) - p(0) */

    assert_int_equal(b->pass, 1);
    assert_int_equal(b->pos, 1);
    assert_int_equal(b->token, 3);
    assert_true(b->same_top1);
    assert_int_equal(b->ref_top[0].id, 3);
    assert_int_equal(b->rank, 1);
    assert_true(b->kl == 0.0); /* the same logits: exactly 0 */
    assert_true(b->dp == 0.0);
    assert_true(b->max_abs_dp == 0.0);

    /* KL values {0, ln2/4}: mean ln2/8; sample sd |ln2/4| / sqrt2, over
     * sqrt2: ln2/8. Percentiles by interpolation: median ln2/8, p90
     * 0.9 * ln2/4, p99 0.99 * ln2/4. */
    const struct dv_logits_summary *S = &res->sum;
    assert_int_equal(S->n_positions, 2);
    assert_int_equal(S->n_finite, 2);
    assert_int_equal(S->n_judged, 2);
    assert_int_equal(S->n_same_top1, 1);
    assert_int_equal(S->n_flipped, 1);
    assert_close(S->kl_mean, ln2 / 8);
    assert_close(S->kl_se, ln2 / 8);
    assert_close(S->kl_median, ln2 / 8);
    assert_close(S->kl_p90, 0.9 * ln2 / 4);
    assert_close(S->kl_p99, 0.99 * ln2 / 4);
    assert_close(S->kl_max, ln2 / 4);
    assert_int_equal(S->kl_max_row, 0);
    /* same top-1 1 of 2: 0.5 ± sqrt(0.25 / 1) */
    assert_close(S->same_top1_frac, 0.5);
    assert_close(S->same_top1_se, 0.5);
    assert_close(S->overlap_frac, 1.0); /* (2 + 2) / 2 / k */
    /* dp^2 = {1/16, 0}: RMS sqrt(1/32); se(dp^2) = (1/16)/2 = 1/32, so
     * the RMS's error is 0.5 / sqrt(1/32) * 1/32 */
    assert_close(S->dp_rms, sqrt(1.0 / 32));
    assert_close(S->dp_rms_se, 0.5 / sqrt(1.0 / 32) / 32);
    assert_close(S->max_abs_dp, 0.25);
    assert_int_equal(S->max_abs_dp_row, 0);
    dv_logits_free(res);

    /* k = 1: overlap {0} vs {1} is 0, then 1: mean 1/2 */
    assert_int_equal(compare_files("hw_test.h5", "hw_ref.h5", 1, -1, &res), DV_OK);
    assert_int_equal(res->rows[0].overlap, 0);
    assert_close(res->sum.overlap_frac, 0.5);
    dv_logits_free(res);
    /* k = 3: ties 2 and 3 go to 2 on both sides, so overlap 3 */
    assert_int_equal(compare_files("hw_test.h5", "hw_ref.h5", 3, -1, &res), DV_OK);
    assert_int_equal(res->rows[0].ref_top[2].id, 2);
    assert_int_equal(res->rows[0].test_top[2].id, 2);
    assert_int_equal(res->rows[0].overlap, 3);
    dv_logits_free(res);
    /* k above the vocab is cut to it; --pass 1 alone agrees */
    assert_int_equal(compare_files("hw_test.h5", "hw_ref.h5", 10, 1, &res), DV_OK);
    assert_int_equal(res->k, 4);
    assert_int_equal(res->n_rows, 1);
    assert_int_equal(res->rows[0].pass, 1);
    assert_int_equal(res->sum.n_flipped, 0);
    assert_true(res->sum.kl_max == 0.0);
    dv_logits_free(res);
}

/* ---- equal dumps --------------------------------------------------------- */

/* Two dumps written separately from the same deterministic logits (a
 * fixed LCG): every KL is exactly 0 and nothing flips. */
static void test_equal_dumps(void **state)
{
    (void)state;
    enum { V = 50, N = 7 };
    static double lg[N * V];
    static const int32_t toks[N] = {1, 5, 9, 13, 17, 21, 25};
    uint32_t x = 12345;
    for (int i = 0; i < N * V; i++) {
        x = x * 1664525u + 1013904223u;
        lg[i] = (double)(x >> 8) / (1 << 24) * 20 - 10;
    }
    const struct tpass ps[] = {{0, 0, 4, toks, lg}, {1, 4, 2, toks + 4, lg + 4 * V},
                               {2, 6, 1, toks + 6, lg + 6 * V}};
    write_dump(tu_path(tu_tmp, "eq_a.h5"), V, ps, 3, NULL, NULL);
    write_dump(tu_path(tu_tmp, "eq_b.h5"), V, ps, 3, NULL, NULL);
    struct dv_logits_result *res;
    assert_int_equal(compare_files("eq_a.h5", "eq_b.h5", 5, -1, &res), DV_OK);
    assert_int_equal(res->n_rows, N);
    for (int i = 0; i < N; i++) {
        const struct dv_logits_row *w = &res->rows[i];
        assert_true(w->kl == 0.0);
        assert_int_equal(w->rank, 1);
        assert_int_equal(w->overlap, 5);
        assert_true(w->max_abs_dp == 0.0);
        for (int j = 0; j < 5; j++) assert_int_equal(w->ref_top[j].id, w->test_top[j].id);
        for (int j = 1; j < 5; j++) assert_true(w->ref_top[j].p <= w->ref_top[j - 1].p);
    }
    assert_int_equal(res->rows[5].pos, 5);
    assert_true(res->sum.kl_mean == 0.0 && res->sum.kl_max == 0.0 && res->sum.kl_se == 0.0);
    assert_true(res->sum.dp_rms == 0.0 && res->sum.dp_rms_se == 0.0);
    assert_true(res->sum.same_top1_frac == 1.0);
    assert_int_equal(res->sum.n_flipped, 0);
    dv_logits_free(res);
}

/* ---- single positions and percentiles ----------------------------------- */

static void test_position_ties(void **state)
{
    (void)state;
    struct dv_logit_prob rt[3], tt[3];
    struct dv_logits_row w;
    /* ref ties 1 and 2 at the top: 1 wins (smaller id); the test raises
     * 3 to the same logit as 1 and 2: order 1, 2, 3 - same top-1 */
    const double ref[5] = {1, 3, 3, 0, -INFINITY}, test[5] = {1, 3, 3, 3, -INFINITY};
    dv_logits_position(ref, test, 5, 3, rt, tt, &w);
    assert_int_equal(w.status, DV_LOGITS_ROW_OK);
    assert_int_equal(rt[0].id, 1);
    assert_int_equal(rt[1].id, 2);
    assert_int_equal(rt[2].id, 0);
    assert_int_equal(tt[0].id, 1);
    assert_int_equal(tt[2].id, 3);
    assert_true(w.same_top1);
    assert_int_equal(w.rank, 1);
    assert_int_equal(w.overlap, 2);
    /* -inf on both sides: p = q = 0 there, which adds nothing */
    assert_true(isfinite(w.kl) && w.kl > 0);

    /* the test ranks token 1 below 0, 2 and 3: rank 4 */
    const double test2[5] = {4, 2, 4, 4, 0};
    dv_logits_position(ref, test2, 5, 3, rt, tt, &w);
    assert_int_equal(w.rank, 4);
    assert_false(w.same_top1);
    assert_int_equal(tt[0].id, 0);

    /* p > 0 where the test logit is -inf: KL = +inf, still finite logits */
    const double test3[5] = {1, 3, -INFINITY, 0, 0};
    dv_logits_position(ref, test3, 5, 3, rt, tt, &w);
    assert_int_equal(w.status, DV_LOGITS_ROW_OK);
    assert_true(isinf(w.kl) && w.kl > 0);
}

static void test_percentile(void **state)
{
    (void)state;
    const double v[4] = {1, 2, 3, 4};
    assert_close(dv_logits_percentile(v, 4, 0.5), 2.5);  /* between 2 and 3 */
    assert_close(dv_logits_percentile(v, 4, 0.9), 3.7);  /* at 2.7 */
    assert_close(dv_logits_percentile(v, 4, 0.99), 3.97);
    assert_close(dv_logits_percentile(v, 4, 0), 1);
    assert_close(dv_logits_percentile(v, 4, 1), 4);
    assert_close(dv_logits_percentile(v, 1, 0.9), 1);
    assert_true(isnan(dv_logits_percentile(v, 0, 0.5)));
    const double w[3] = {0, 0, INFINITY};
    assert_true(dv_logits_percentile(w, 3, 0.5) == 0.0);   /* exactly at 0 */
    assert_true(isinf(dv_logits_percentile(w, 3, 0.75)));  /* not NaN */
}

/* ---- NaN and Inf --------------------------------------------------------- */

static void test_nonfinite(void **state)
{
    (void)state;
    enum { V = 4 };
    static const int32_t toks[4] = {0, 1, 2, 3};
    /* positions: 0 fine; 1 test NaN; 2 test +inf; 3 ref NaN */
    const double ref[4 * V] = {0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 1, 0, NAN, 0, 0, 0};
    const double test[4 * V] = {0, 1, 2, 3, 3, NAN, 1, 0, 0, INFINITY, 1, 0, 0, 0, 0, 1};
    const struct tpass pr[] = {{0, 0, 4, toks, ref}}, pt[] = {{0, 0, 4, toks, test}};
    write_dump(tu_path(tu_tmp, "nf_ref.h5"), V, pr, 1, NULL, NULL);
    write_dump(tu_path(tu_tmp, "nf_test.h5"), V, pt, 1, NULL, NULL);
    struct dv_logits_result *res = NULL;
    /* a reference position without a distribution: the reference is
     * broken, never "0 of 0 positions flipped" */
    assert_int_equal(compare_files("nf_test.h5", "nf_ref.h5", 2, -1, &res), DV_E_INPUT);
    assert_null(res);
    assert_non_null(strstr(dv_errmsg(), tu_path(tu_tmp, "nf_ref.h5")));
    assert_non_null(strstr(dv_errmsg(), "pass 0, t=3 (pos 3): the reference logits hold 1 NaN "
                                        "and 0 +inf (1 of 4 positions are so)"));
    /* every reference logit -inf or +inf: the same */
    const double ref_inf[4 * V] = {0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 1, 0,
                                   -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const double ref_pinf[4 * V] = {0, 1, 2, 3, 3, 2, 1, 0, 0, INFINITY, 1, 0, 0, 0, 0, 0};
    const struct tpass pi[] = {{0, 0, 4, toks, ref_inf}}, pp[] = {{0, 0, 4, toks, ref_pinf}};
    write_dump(tu_path(tu_tmp, "nf_ref_inf.h5"), V, pi, 1, NULL, NULL);
    write_dump(tu_path(tu_tmp, "nf_ref_pinf.h5"), V, pp, 1, NULL, NULL);
    assert_int_equal(compare_files("nf_test.h5", "nf_ref_inf.h5", 2, -1, &res), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "pass 0, t=3 (pos 3): the reference logits hold -inf only"));
    assert_int_equal(compare_files("nf_test.h5", "nf_ref_pinf.h5", 2, -1, &res), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "t=2 (pos 2): the reference logits hold 0 NaN and 1 +inf"));
    /* the test's own NaN and +inf are flips against a sound reference */
    const double ref_ok[4 * V] = {0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0};
    const struct tpass po[] = {{0, 0, 4, toks, ref_ok}};
    write_dump(tu_path(tu_tmp, "nf_ref_ok.h5"), V, po, 1, NULL, NULL);
    assert_int_equal(compare_files("nf_test.h5", "nf_ref_ok.h5", 2, -1, &res), DV_OK);
    const struct dv_logits_row *w = res->rows;
    assert_int_equal(w[0].status, DV_LOGITS_ROW_OK);
    assert_true(w[0].kl == 0.0);
    assert_int_equal(w[1].status, DV_LOGITS_ROW_TEST_NONFINITE);
    assert_true(isinf(w[1].kl));
    assert_false(w[1].same_top1);
    assert_int_equal(w[1].n_nan, 1);
    assert_int_equal(w[1].test_top[0].id, -1);
    assert_int_equal(w[1].ref_top[0].id, 0); /* the reference's list stays */
    assert_int_equal(w[2].status, DV_LOGITS_ROW_TEST_NONFINITE);
    assert_int_equal(w[2].n_posinf, 1);
    assert_int_equal(w[3].status, DV_LOGITS_ROW_OK); /* 0 0 0 1 against 1 0 0 0 */
    assert_false(w[3].same_top1);
    /* the summary: KL over the finite positions (0 and 3); three flips
     * out of four judged positions */
    const struct dv_logits_summary *S = &res->sum;
    assert_int_equal(S->n_finite, 2);
    assert_int_equal(S->n_test_nonfinite, 2);
    assert_int_equal(S->n_ref_nonfinite, 0);
    assert_int_equal(S->n_judged, 4);
    assert_int_equal(S->n_flipped, 3);
    assert_true(S->kl_max > 0 && w[0].kl == 0.0);
    assert_close(S->same_top1_frac, 1.0 / 4);
    dv_logits_free(res);

    /* a position whose reference logits are NaN, position by position */
    struct dv_logit_prob r3[2], t3[2];
    struct dv_logits_row row3;
    dv_logits_position(ref + 3 * V, test + 3 * V, V, 2, r3, t3, &row3);
    assert_int_equal(row3.status, DV_LOGITS_ROW_REF_NONFINITE);
    assert_true(isnan(row3.kl));

    /* every test logit -inf: not finite either */
    struct dv_logit_prob rt[2], tt[2];
    struct dv_logits_row row;
    const double r1[V] = {0, 1, 2, 3}, t1[V] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    dv_logits_position(r1, t1, V, 2, rt, tt, &row);
    assert_int_equal(row.status, DV_LOGITS_ROW_TEST_NONFINITE);
    assert_int_equal(row.n_nan + row.n_posinf, 0);
}

/* ---- pass alignment and errors ------------------------------------------ */

static void test_alignment(void **state)
{
    (void)state;
    enum { V = 4 };
    static const int32_t ta[3] = {1, 2, 3}, tb[3] = {1, 3, 3};
    static const double lg[3 * V] = {0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 2, 1};
    /* test: 0 ok, 1 other tokens, 2 other pos0, 3 only here, 5 no logits
     * ref:  0 ok, 1,           2,              4 only here, 5 with logits */
    const struct tpass pt[] = {{0, 0, 1, ta, lg}, {1, 1, 2, tb, lg}, {2, 4, 1, ta, lg},
                               {3, 5, 1, ta, lg}, {5, 7, 1, ta, NULL}};
    const struct tpass pr[] = {{0, 0, 1, ta, lg}, {1, 1, 2, ta, lg}, {2, 3, 1, ta, lg},
                               {4, 6, 1, ta, lg}, {5, 7, 1, ta, lg}};
    write_dump(tu_path(tu_tmp, "al_test.h5"), V, pt, 5, NULL, NULL);
    write_dump(tu_path(tu_tmp, "al_ref.h5"), V, pr, 5, NULL, NULL);
    struct dv_logits_result *res;
    assert_int_equal(compare_files("al_test.h5", "al_ref.h5", 2, -1, &res), DV_OK);
    assert_int_equal(res->n_passes, 1);
    assert_int_equal(res->n_rows, 1);
    assert_int_equal(res->n_notes, 5);
    const int want[5][2] = {{1, DV_LOGITS_TOKENS_DIFFER}, {2, DV_LOGITS_SHAPE_DIFFERS},
                            {3, DV_LOGITS_ONLY_TEST}, {4, DV_LOGITS_ONLY_REF},
                            {5, DV_LOGITS_NO_LOGITS}};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(res->notes[i].pass, want[i][0]);
        assert_int_equal(res->notes[i].kind, want[i][1]);
    }
    assert_non_null(strstr(res->notes[0].detail, "position 2: test token 3, ref token 2"));
    assert_non_null(strstr(res->notes[4].detail, "the test dump"));
    assert_string_equal(dv_logits_note_name(DV_LOGITS_ONLY_REF), "only-in-ref");
    assert_string_equal(dv_logits_note_name(DV_LOGITS_NOTE_COUNT), "?");
    dv_logits_free(res);

    /* --pass 1: it exists on both sides but differs, so nothing is left */
    assert_int_equal(compare_files("al_test.h5", "al_ref.h5", 2, 1, &res), DV_E_INPUT);
    assert_null(res);
    assert_non_null(strstr(dv_errmsg(), "no pass with logits in common"));
    assert_non_null(strstr(dv_errmsg(), "tokens-differ"));
    /* --pass 4 is not in the test dump */
    assert_int_equal(compare_files("al_test.h5", "al_ref.h5", 2, 4, &res), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "al_test.h5: no pass 4"));
}

static void test_errors(void **state)
{
    (void)state;
    static const int32_t t[1] = {1};
    static const double l4[4] = {0, 1, 2, 3}, l5[5] = {0, 1, 2, 3, 4};
    const struct tpass p4[] = {{0, 0, 1, t, l4}}, p5[] = {{0, 0, 1, t, l5}};
    const struct tpass none[] = {{0, 0, 1, t, NULL}};
    write_dump(tu_path(tu_tmp, "er_v4.h5"), 4, p4, 1, NULL, NULL);
    write_dump(tu_path(tu_tmp, "er_v5.h5"), 5, p5, 1, NULL, NULL);
    write_dump(tu_path(tu_tmp, "er_none.h5"), 4, none, 1, NULL, NULL);
    struct dv_logits_result *res;
    /* n_vocab differs: both files named */
    assert_int_equal(compare_files("er_v4.h5", "er_v5.h5", 2, -1, &res), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "er_v4.h5"));
    assert_non_null(strstr(dv_errmsg(), "er_v5.h5"));
    /* no logits anywhere: the file named, on either side */
    assert_int_equal(compare_files("er_none.h5", "er_v4.h5", 2, -1, &res), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "er_none.h5: no 'logits' tensor"));
    assert_int_equal(compare_files("er_v4.h5", "er_none.h5", 2, -1, &res), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "er_none.h5: no 'logits' tensor"));
    /* top-k out of range */
    assert_int_equal(compare_files("er_v4.h5", "er_v4.h5", 0, -1, &res), DV_E_USAGE);
    assert_int_equal(compare_files("er_v4.h5", "er_v4.h5", DV_LOGITS_MAX_K + 1, -1, &res),
                     DV_E_USAGE);
    assert_null(res);
}

/* ---- vocab and reports --------------------------------------------------- */

/* The text of a report rendered into memory (free() it). */
static char *render(const struct dv_logits_result *res, const struct dv_vocab *v,
                    const char *note, bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    dv_status s = json ? dv_logits_report_json(f, res, v, note)
                       : dv_logits_report_text(f, res, v, note, false);
    assert_int_equal(s, DV_OK);
    fclose(f);
    return buf;
}

/* A dump of tiny's vocab size (256) pointing at tiny.gguf: the vocab is
 * used when the SHA-256 matches, else not, with the reason. */
static void test_vocab(void **state)
{
    (void)state;
    char gguf[512]; /* tu_path's buffers rotate */
    snprintf(gguf, sizeof gguf, "%s", tu_path(tu_tmp, "tiny.gguf"));
    assert_int_equal(dv_fixture_write("tiny", gguf), DV_OK);
    char sha[65];
    assert_int_equal(dv_sha256_file(gguf, sha), DV_OK);
    static const int32_t t[2] = {1, 2};
    static double lg[2 * 256];
    for (int i = 0; i < 2 * 256; i++) lg[i] = (i % 256) == 40 + i / 256 ? 5 : 0;
    const struct tpass p[] = {{0, 0, 2, t, lg}};
    write_dump(tu_path(tu_tmp, "vo_good.h5"), 256, p, 1, gguf, sha);
    write_dump(tu_path(tu_tmp, "vo_sha.h5"), 256, p, 1, gguf, "00");
    write_dump(tu_path(tu_tmp, "vo_gone.h5"), 256, p, 1, tu_path(tu_tmp, "gone.gguf"), sha);
    struct dv_reader *good = open_dump(tu_path(tu_tmp, "vo_good.h5"));
    struct dv_reader *bad = open_dump(tu_path(tu_tmp, "vo_sha.h5"));
    struct dv_reader *gone = open_dump(tu_path(tu_tmp, "vo_gone.h5"));
    struct dv_vocab *v;
    char why[512];
    assert_int_equal(dv_logits_vocab(NULL, good, NULL, 256, &v, why, sizeof why), DV_OK);
    assert_non_null(v);
    assert_string_equal(why, gguf);
    dv_vocab_free(v);
    assert_int_equal(dv_logits_vocab(NULL, bad, NULL, 256, &v, why, sizeof why), DV_OK);
    assert_null(v);
    assert_non_null(strstr(why, "SHA-256 differs"));
    assert_int_equal(dv_logits_vocab(NULL, gone, NULL, 256, &v, why, sizeof why), DV_OK);
    assert_null(v);
    assert_non_null(strstr(why, "model file not found"));
    /* the test dump's model_path when the reference's is not usable */
    assert_int_equal(dv_logits_vocab(good, gone, NULL, 256, &v, why, sizeof why), DV_OK);
    assert_non_null(v);
    dv_vocab_free(v);
    /* --model: used as given; a wrong size is an error naming it */
    assert_int_equal(dv_logits_vocab(NULL, bad, gguf, 256, &v, why, sizeof why), DV_OK);
    assert_non_null(v);
    dv_vocab_free(v);
    assert_int_equal(dv_logits_vocab(NULL, bad, gguf, 300, &v, why, sizeof why), DV_E_INPUT);
    assert_null(v);
    assert_non_null(strstr(dv_errmsg(), "tiny.gguf"));
    dv_reader_free(good), dv_reader_free(bad), dv_reader_free(gone);
}

/* The reports of the hand-worked pair: the text names the flip, the JSON
 * parses and carries every position, the summary and the flip. */
static void test_reports(void **state)
{
    (void)state;
    write_hand_worked();
    struct dv_logits_result *res;
    assert_int_equal(compare_files("hw_test.h5", "hw_ref.h5", 2, -1, &res), DV_OK);
    char *text = render(res, NULL, "model file not found: /x.gguf", false);
    assert_non_null(strstr(text, "vocab:  none (model file not found: /x.gguf)"));
    assert_non_null(strstr(text, "Same top-1 :  50.000 ± 50.000 %  (1 of 2)"));
    assert_non_null(strstr(text, "flipped top-1: 1 of 2 positions"));
    assert_non_null(strstr(text, "pass 0, pos 0: ref top-1 0 p 0.5000 -> test top-1 1 q 0.5000"));
    assert_non_null(strstr(text, "\n*   0      0 ")); /* the flipped row is marked */
    free(text);

    char *js = render(res, NULL, "none", true);
    json_error_t e;
    json_t *root = json_loads(js, 0, &e);
    if (!root) fail_msg("JSON does not parse: %s (line %d)", e.text, e.line);
    assert_string_equal(json_string_value(json_object_get(root, "schema")), "diverge-logits");
    json_t *pos = json_object_get(root, "positions");
    assert_int_equal(json_array_size(pos), 2);
    json_t *p0 = json_array_get(pos, 0);
    assert_int_equal(json_integer_value(json_object_get(p0, "rank")), 2);
    assert_close(json_real_value(json_object_get(p0, "kl")), log(2.0) / 4);
    assert_int_equal(json_array_size(json_object_get(p0, "ref_top")), 2);
    assert_true(json_is_null(json_object_get(p0, "token_text")));
    json_t *S = json_object_get(root, "summary");
    assert_close(json_real_value(json_object_get(S, "kl_mean")), log(2.0) / 8);
    assert_int_equal(json_integer_value(json_object_get(S, "n_flipped")), 1);
    json_t *fl = json_object_get(root, "flipped");
    assert_int_equal(json_array_size(fl), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(fl, 0), "test_top1")), 1);
    json_decref(root);
    free(js);
    dv_logits_free(res);
}

/* Token texts with control bytes, quotes and invalid UTF-8 come out
 * escaped for the terminal and as valid JSON strings. */
static void test_escaping(void **state)
{
    (void)state;
    const char *toks[4] = {"<s>", "a\nb", "q\"\\", "\xff" "x"};
    const int32_t types[4] = {DV_TOKEN_CONTROL, DV_TOKEN_NORMAL, DV_TOKEN_NORMAL,
                              DV_TOKEN_NORMAL};
    struct dv_vocab_desc d = {.n = 4, .tokens = toks, .types = types, .bos = 0, .eos = -1,
                              .unk = -1};
    struct dv_vocab *v;
    assert_int_equal(dv_vocab_from_arrays(&d, &v), DV_OK);
    static const int32_t t[1] = {1};
    static const double r[4] = {0, 1, 2, 3}, q[4] = {0, 3, 2, 1};
    const struct tpass pr[] = {{0, 0, 1, t, r}}, pt[] = {{0, 0, 1, t, q}};
    write_dump(tu_path(tu_tmp, "es_ref.h5"), 4, pr, 1, NULL, NULL);
    write_dump(tu_path(tu_tmp, "es_test.h5"), 4, pt, 1, NULL, NULL);
    struct dv_logits_result *res;
    assert_int_equal(compare_files("es_test.h5", "es_ref.h5", 4, -1, &res), DV_OK);
    char *text = render(res, v, "vocab.gguf", false);
    assert_non_null(strstr(text, "\"a\\nb\""));
    assert_non_null(strstr(text, "\"q\\\"\\\\\""));
    assert_non_null(strstr(text, "\"\\xffx\""));
    assert_non_null(strstr(text, "\"<s>\""));
    free(text);
    char *js = render(res, v, "vocab.gguf", true);
    json_t *root = json_loads(js, 0, NULL);
    assert_non_null(root);
    json_t *top = json_object_get(json_array_get(json_object_get(root, "positions"), 0),
                                  "ref_top");
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 0), "text")),
                        "\\xffx");
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 1), "text")),
                        "q\"\\");
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 2), "text")),
                        "a\nb");
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 3), "text")),
                        "<s>");
    json_decref(root);
    free(js);
    dv_logits_free(res);
    dv_vocab_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_worked),
        cmocka_unit_test(test_equal_dumps),
        cmocka_unit_test(test_position_ties),
        cmocka_unit_test(test_percentile),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_reports),
        cmocka_unit_test(test_escaping),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
