/*
 * logits.h - top-k logit diff between two dumps: how far the test's
 * next-token distribution is from the reference's, position by position,
 * and summarised as llama.cpp's `perplexity --kl-divergence` does.
 *
 * Per position (pass, t; absolute position pos0 + t), with x the reference
 * logits and y the test logits (both widened to double):
 *
 *   lp = x - max x - log sum exp(x - max x)   log-softmax, p = exp(lp)
 *   lq = the same for y,                                   q = exp(lq)
 *   KL(p||q)  sum_i p_i (lp_i - lq_i); terms with p_i = 0 add 0, a term
 *             with p_i > 0 and q_i = 0 (a -inf test logit) makes it +inf.
 *             Equal logits give exactly 0.
 *   top-k     the k tokens of largest logit, best first; ties go to the
 *             smaller id. Ordered by the logits themselves, not by p or q,
 *             so probabilities that round to the same double stay ordered.
 *   rank      1-based rank in the test's order of the reference's top-1
 *             (1: same top-1)
 *   overlap   |topk(p) intersect topk(q)|, 0..k
 *   max|p-q|  max_i |p_i - q_i| and the first token reaching it
 *   dp        q(a) - p(a), a the reference's top-1. llama.cpp's Δp uses
 *             the probability of the text's next token; a dump does not
 *             say which token is right, so the reference's choice stands
 *             in for it.
 *
 * A side's logits are "finite" when no value is NaN or +inf and at least
 * one is above -inf (-inf alone is a legal logit: probability 0, as a
 * logit bias of -inf gives). A position whose test logits are not finite
 * while the reference's are counts as a flipped top-1 with KL = +inf and
 * is left out of every KL, dp and overlap figure; one whose reference
 * logits are not finite has nothing to be compared against: the
 * reference is broken, and dv_logits_compare refuses it (so its rows and
 * summary never hold one; dv_logits_position still says so).
 *
 * Summary over the positions where both sides are finite (n = n_finite):
 *
 *   kl_mean ± kl_se    mean, and the standard error of the mean: sample
 *                      standard deviation / sqrt(n) (0 when n < 2)
 *   kl_median, kl_p90, kl_p99
 *                      percentiles by linear interpolation between the
 *                      closest ranks of the sorted values: value at
 *                      fraction f is v[i] + (f (n-1) - i) (v[i+1] - v[i]),
 *                      i = floor(f (n-1)) (llama.cpp's and numpy's
 *                      default; the median of an even count is the mean of
 *                      the middle two)
 *   kl_max             and the row where it is
 *   dp_rms ± dp_rms_se sqrt(mean dp^2), error 0.5 / rms * se(dp^2)
 *   overlap_frac       mean overlap / k
 *   max_abs_dp         the largest max|p-q| and its row
 *
 * and over the judged positions (finite ones plus those with non-finite
 * test logits): same_top1_frac ± sqrt(f (1-f) / (n-1)), and the flips.
 */
#ifndef DV_LOGITS_H
#define DV_LOGITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diverge.h"
#include "reader.h"
#include "vocab.h"

/* Largest --top-k. */
#define DV_LOGITS_MAX_K 100

/* Why a pass was not compared. */
enum dv_logits_note_kind {
    DV_LOGITS_ONLY_TEST,      /* the pass is not in the reference dump */
    DV_LOGITS_ONLY_REF,       /* the pass is not in the test dump */
    DV_LOGITS_SHAPE_DIFFERS,  /* pos0 or n_tokens differ */
    DV_LOGITS_TOKENS_DIFFER,  /* same positions, other input tokens */
    DV_LOGITS_NO_LOGITS,      /* a side has no logits tensor in this pass */
    DV_LOGITS_NOTE_COUNT
};
/* "only-in-test", ... or "?" */
const char *dv_logits_note_name(int kind);

struct dv_logits_note {
    int64_t pass;       /* pass index (group name) */
    int kind;           /* enum dv_logits_note_kind */
    char detail[160];   /* one phrase, e.g. "pos0 6 vs 5" */
};

/* What one position's comparison came to. */
enum dv_logits_row_status {
    DV_LOGITS_ROW_OK,             /* both finite: every figure is valid */
    DV_LOGITS_ROW_TEST_NONFINITE, /* test not finite, reference finite */
    DV_LOGITS_ROW_REF_NONFINITE,  /* reference not finite: not compared */
    DV_LOGITS_ROW_STATUS_COUNT
};
/* "ok", "test-not-finite", "ref-not-finite" or "?" */
const char *dv_logits_row_status_name(int status);

struct dv_logit_prob {
    int32_t id;
    double p;           /* probability on that side */
};

struct dv_logits_row {
    int64_t pass;       /* pass index */
    int64_t pos;        /* absolute position pos0 + t */
    int32_t t;          /* query index inside the pass */
    int32_t token;      /* input token at pos */
    int status;         /* enum dv_logits_row_status */
    /* [k] each, best first (into the result's arrays). ref_top is valid
     * unless the reference is not finite, test_top unless the test is not;
     * an invalid list holds id -1, p NaN. */
    struct dv_logit_prob *ref_top, *test_top;
    bool same_top1;     /* false for TEST_NONFINITE (a flip) */
    int rank;           /* valid when OK, else 0 */
    int overlap;        /* valid when OK, else 0 */
    double kl;          /* +inf for TEST_NONFINITE, NaN for REF_NONFINITE */
    double dp;          /* q(a) - p(a); NaN unless OK */
    double max_abs_dp;  /* NaN unless OK */
    int32_t max_abs_dp_id;
    int64_t n_nan, n_posinf; /* in the non-finite side's logits */
};

struct dv_logits_summary {
    int64_t n_positions;       /* rows */
    int64_t n_finite;          /* both finite: n of the KL, dp, overlap figures */
    int64_t n_test_nonfinite;
    int64_t n_ref_nonfinite;
    int64_t n_judged;          /* n_finite + n_test_nonfinite */
    int64_t n_same_top1;       /* among the judged */
    int64_t n_flipped;         /* n_judged - n_same_top1 */
    double same_top1_frac, same_top1_se;  /* NaN when n_judged = 0 */
    /* NaN when n_finite = 0; rows are indices into rows[] (-1 then) */
    double kl_mean, kl_se, kl_median, kl_p90, kl_p99, kl_max;
    int64_t kl_max_row;
    double overlap_frac;
    double dp_rms, dp_rms_se;
    double max_abs_dp;
    int64_t max_abs_dp_row;
};

/* One side of the comparison, from its root attributes (owned copies). */
struct dv_logits_side {
    char *path, *backend, *device, *inject;
    int n_passes;
};

struct dv_logits_pass {
    int64_t index, pos0, n_tokens;
};

struct dv_logits_result {
    int k;                          /* top-k length (min of asked, n_vocab) */
    int64_t n_vocab;
    struct dv_logits_side test, ref;
    int n_passes;                   /* passes compared */
    struct dv_logits_pass *passes;  /* [n_passes], by index */
    int n_notes;
    struct dv_logits_note *notes;   /* [n_notes], passes not compared */
    int64_t n_rows;
    struct dv_logits_row *rows;     /* [n_rows], pass by pass, t ascending */
    struct dv_logits_summary sum;
    /* private: storage behind rows[].ref_top / test_top */
    struct dv_logit_prob *tops_;
};

struct dv_logits_opts {
    int top_k;      /* 1..DV_LOGITS_MAX_K */
    int64_t pass;   /* only this pass index; -1: every pass in common */
};

/* Compare the logits of every pass the two dumps have in common (same
 * index, pos0, n_tokens and tokens), reading one pass at a time. Both
 * readers are borrowed. Passes that differ or are missing on one side
 * become notes, not failures. Fails with DV_E_INPUT when n_vocab differs
 * (naming both files), when a dump has no logits tensor in any pass
 * (naming it), when o->pass is not in a dump, when no pass is left to
 * compare (the message says why), or when a position of the reference
 * has logits that are not finite (naming the reference, the first such
 * position and what it holds); DV_E_USAGE for a top_k out of range;
 * DV_E_NOMEM; DV_E_INPUT from the reader when data cannot be read. *out
 * is NULL on failure; free it with dv_logits_free(). */
dv_status dv_logits_compare(const struct dv_reader *test, const struct dv_reader *ref,
                            const struct dv_logits_opts *o,
                            struct dv_logits_result **out);
void dv_logits_free(struct dv_logits_result *r);

/* The per-position figures above for one position: ref[V] and test[V]
 * are logits, k <= V, ref_top[k] and test_top[k] receive the lists. Sets
 * every field of *row except pass, pos, t and token. Exposed for tests. */
void dv_logits_position(const double *ref, const double *test, int64_t V, int k,
                        struct dv_logit_prob *ref_top, struct dv_logit_prob *test_top,
                        struct dv_logits_row *row);

/* Percentile at fraction f in [0, 1] of v[n] sorted ascending (linear
 * interpolation as defined above; +inf values handled). NaN when n = 0. */
double dv_logits_percentile(const double *v, int64_t n, double f);

/* The vocab to print token texts with. model (may be NULL): a GGUF to
 * load; a failure to load it, or a vocab whose size is not n_vocab, is an
 * error (DV_E_INPUT naming the file). Without model: the dump's
 * model_path attribute (the reference's, then the test's; test may be
 * NULL), used only when the file exists and its SHA-256 equals the dump's
 * model_sha256; when none is usable *out is NULL, DV_OK is returned and
 * why[cap] says why ("model file not found: PATH"). On success why holds
 * the path used. Free the vocab with dv_vocab_free(). */
dv_status dv_logits_vocab(const struct dv_reader *test, const struct dv_reader *ref,
                          const char *model, int64_t n_vocab, struct dv_vocab **out,
                          char *why, size_t cap);

#endif
