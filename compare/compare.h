/*
 * compare.h - line up two dumps tensor by tensor, measure each pair, judge
 * it with the tolerance policy (and the oracle's noise floor), and find
 * the first divergence.
 *
 * Alignment: passes by index, tensors by (pass, name), rows in the
 * reference's execution order (the test's extra tensors after them). A
 * pass whose schedule (pos0, n_tokens) or token ids differ, a tensor on
 * one side only, or a shape mismatch is recorded on its row and counted;
 * nothing aborts the comparison. Rows with a shape mismatch count as
 * diverged (they cannot agree); rows of a pass that ran other tokens are
 * not compared (the numbers would mean nothing) and make the result
 * incomparable.
 *
 * With an oracle (a cpu-f64 dump of the same run as the reference) each
 * row also gets err_test = rel_rms(test, oracle) and err_ref =
 * rel_rms(ref, oracle) and diverges when err_test > oracle_m * err_ref +
 * oracle_floor (the policy's), instead of by the fixed limits. Rows the
 * oracle lacks fall back to the fixed limits.
 *
 * Every row gets a `ratio`: its figure over its limit (> 1 diverges).
 * Fixed limits: the largest of nmse / limit, max_abs / limit, ... over
 * the limits that are checked; oracle: err_test / (m err_ref + floor).
 * The metrics cover the pairs where both sides are finite.
 *
 * Non-finite values, test a against reference b (metrics.h's mismatch):
 *
 *   b \ a     finite     NaN        +Inf       -Inf
 *   finite    measured   diverges   diverges   diverges
 *   NaN       broken     broken     broken     broken
 *   +Inf      broken     broken     broken     broken
 *   -Inf (*)  diverges   diverges   diverges   agrees (a masked score)
 *
 *   (*) in blk.L.kq (the masked keys), logits (a banned token) and
 *       tensors outside design.md's table (whose meaning diverge does not
 *       know); anywhere else a reference -Inf is broken as well.
 *
 * A non-finite mismatch diverges whatever the limits (ratio +inf; the
 * row says how many and where the first is: bad_at). "Broken" is the
 * reference's fault, not the test's: NaN and +Inf are values no forward
 * pass computes from finite weights, nor -Inf outside (*).
 * The same holds for the oracle, which must also hold its non-finite
 * values exactly where the reference does. A broken row is not judged;
 * any broken row makes the whole comparison an error (DV_VERDICT_BROKEN):
 * nothing can be judged against a reference that is itself wrong.
 */
#ifndef DV_COMPARE_H
#define DV_COMPARE_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "policy.h"
#include "reader.h"

enum dv_row_status {
    DV_ROW_OK,       /* compared, within tolerance (or ignored by policy) */
    DV_ROW_DIVERGED, /* compared, out of tolerance */
    DV_ROW_SHAPE,    /* shapes differ: not compared, counts as diverged */
    DV_ROW_MISSING,  /* in the reference only */
    DV_ROW_EXTRA,    /* in the test only */
    DV_ROW_SKIPPED,  /* its pass ran other tokens or another schedule */
    DV_ROW_BROKEN,   /* the reference or the oracle is broken here (above) */
    DV_ROW_STATUS_COUNT
};
const char *dv_row_status_name(int s);

enum dv_pass_status {
    DV_PASS_MATCHED,   /* same pos0, n_tokens and tokens */
    DV_PASS_SCHEDULE,  /* pos0 or n_tokens differ */
    DV_PASS_TOKENS,    /* same schedule, other token ids */
    DV_PASS_MISSING,   /* in the reference only */
    DV_PASS_EXTRA,     /* in the test only */
    DV_PASS_STATUS_COUNT
};
const char *dv_pass_status_name(int s);

struct dv_cmp_pass {
    int64_t index;             /* the pass number of the dumps */
    int status;                /* enum dv_pass_status */
    int64_t pos0, n_tokens;    /* the reference's (the test's for EXTRA) */
    int64_t test_pos0, test_n_tokens;
    int64_t first_token_diff;  /* DV_PASS_TOKENS: first differing t */
};

/* Where an element sits, from its flat index and the tensor's table
 * shape: token t of the pass (absolute position pos0 + t), head, column
 * (within the head for per-head tensors) and key position (kq rows).
 * Fields that do not apply are -1. */
struct dv_cmp_where {
    int64_t flat;
    int n_dims;
    int64_t index[4];          /* the multi-index */
    int64_t token, pos, head, col, key;
};

/* Which side of a broken row is broken. */
enum dv_broken_side {
    DV_BROKEN_NONE,
    DV_BROKEN_REF,        /* the reference holds NaN/Inf where it cannot */
    DV_BROKEN_ORACLE,     /* the oracle does */
    DV_BROKEN_DISAGREE,   /* the oracle's non-finite values are not the reference's */
    DV_BROKEN_COUNT
};

struct dv_cmp_row {
    int pass;                  /* position in dv_cmp_result.passes */
    char name[64];
    int layer;                 /* -1 outside layers */
    char op[32];
    int64_t order;             /* the reference's (the test's for EXTRA) */
    int status;                /* enum dv_row_status */
    int n_dims;
    int64_t shape[4];          /* the reference's (the test's for EXTRA) */
    int64_t test_shape[4];     /* DV_ROW_SHAPE: the test's */
    int test_n_dims;
    struct dv_tolerance tol;
    struct dv_metrics m;       /* test vs reference (OK / DIVERGED rows) */
    bool has_oracle;
    double err_test, err_ref;  /* rel_rms against the oracle */
    double limit;              /* oracle_m * err_ref + oracle_floor */
    double ratio;              /* > 1: diverges (see above) */
    bool has_declared;         /* dv_cmp_add_exact found the row */
    double err_declared;       /* rel_rms(ref, exact): the declared
                                  arithmetic's own share of the gap */
    char why[160];             /* DIVERGED: the failed check, e.g.
                                  "nmse 3.1e-04 > 1e-06"; BROKEN: what */
    struct dv_cmp_where max_at;   /* of max |a-b| (valid when m.n_used) */
    struct dv_cmp_where bad_at;   /* the first non-finite mismatch
                                     (m.mismatch_first; flat -1: none) */
    /* BROKEN rows */
    int broken;                /* enum dv_broken_side */
    int64_t n_broken;          /* values of that side that cannot be */
    struct dv_cmp_where broken_at; /* the first of them */
    double broken_value;       /* its value there (the oracle's for
                                  DISAGREE: the why says both) */
};

/* The layer summaries: the worst row of each layer (over all passes) and
 * the residual stream's growth, measured on blk.L.out (the residual after
 * the layer), its sums pooled over the compared passes. */
struct dv_cmp_layer {
    int layer;                 /* -1: output_norm, logits and others */
    int worst;                 /* row index with the largest ratio, -1 */
    bool first_divergence;     /* the first divergence is in this layer */
    bool has_growth;           /* blk.L.out was compared */
    double ref_rms, diff_rms;  /* sqrt(sum b^2 / n), sqrt(sum d^2 / n) */
    double growth_ratio;       /* the largest ratio of blk.L.out's rows */
};

/* One dump of a comparison. act_quant and kv_type are its declared
 * arithmetic (the attributes of the same names, diverge-dump(5)): how the
 * engine rounds activations inside matmuls and stores the KV cache; ""
 * when the dump does not say. */
struct dv_cmp_side {
    char path[4096];
    char backend[64], device[256], model[4096], model_sha256[72], inject[64];
    char act_quant[32], kv_type[16];
    char act_types[256], attn_quant[8]; /* act_quant_types, attn_quant */
};

struct dv_cmp_result {
    struct dv_cmp_side test, ref, oracle, exact;
    bool has_oracle, has_exact;
    /* The test declares other arithmetic than the reference emulates
     * (both dumps say, and they differ). With a divergence the size that
     * arithmetic gives (every diverged row within DV_CMP_DECLARED_BOUND),
     * `explained` is set and the verdict says so. */
    bool arith_differs, explained;
    double worst_err;          /* the largest rel error of a diverged row */
    char policy[4096];         /* dv_policy_source() */
    int n_passes;
    struct dv_cmp_pass *passes;
    int n_rows;
    struct dv_cmp_row *rows;   /* pass by pass, execution order */
    int n_layers;              /* n_layer + 1 (the last for layer -1) */
    struct dv_cmp_layer *layers;
    int first;                 /* row of the first divergence, or -1 */
    int worst;                 /* compared row with the largest ratio, -1 */
    int first_broken;          /* first BROKEN row, or -1 */
    /* counts */
    int64_t n_compared, n_diverged, n_shape, n_missing, n_extra, n_skipped;
    int64_t n_broken;          /* BROKEN rows (not in n_compared) */
    int64_t n_pass_mismatch;   /* passes not MATCHED */
    double bytes;              /* tensor bytes read from all dumps */
    bool same_model;           /* both carry model_sha256 and they agree */
};

/* Verdicts. BROKEN wins over DIVERGED, which wins over INCOMPARABLE. */
enum dv_verdict {
    DV_VERDICT_AGREE,        /* every compared row OK and something compared */
    DV_VERDICT_DIVERGED,     /* some row DIVERGED or SHAPE */
    DV_VERDICT_INCOMPARABLE, /* no row could be compared, or passes ran other tokens */
    DV_VERDICT_BROKEN,       /* some row BROKEN: the reference (or oracle) is wrong */
    DV_VERDICT_COUNT
};
enum dv_verdict dv_cmp_verdict(const struct dv_cmp_result *c);

/* Compare test against ref (and the oracle, may be NULL) under policy p.
 * Reads every common tensor once from each dump (row blocks, not whole
 * tensors). The readers and the policy are borrowed. DV_E_INPUT when a
 * tensor cannot be read, or when the oracle is not a float64 oracle dump
 * of the reference's run (see dv_cmp_check_oracle). A broken reference is
 * not an error here: it is the result's verdict. Free the result with
 * dv_cmp_free(). */
dv_status dv_compare(const struct dv_reader *test, const struct dv_reader *ref,
                     const struct dv_reader *oracle, const struct dv_policy *p,
                     struct dv_cmp_result **out);
void dv_cmp_free(struct dv_cmp_result *c);

/* The largest relative rms error (err vs the oracle, or sqrt(nmse) vs
 * the reference under fixed limits) that declared arithmetic explains
 * when the reference does not emulate it. Measured: llama.cpp's CPU
 * backend (8-bit activations, f16 KV cache) against the exact f64 logits
 * of llama.cpp-written files gives 0.011 (q8_0) to 0.017 (q4_k_m) on
 * logits; on diverge's two-layer fixtures the worst tensor reaches 0.055
 * (tiny-q8_0) to 0.064 (tiny-q4_k). 0.15 leaves room for deeper models,
 * while a wrong RoPE base, mask or head map gives errors of order 1. */
#define DV_CMP_DECLARED_BOUND 0.15

/* Judge row w (already judged against an oracle) again with the declared
 * arithmetic's allowance: err_declared = e = rel_rms(ref, exact), the
 * limit m err_ref + floor + declared_m e (policy.h). A row with a
 * non-finite mismatch or without an oracle stays as it is. */
void dv_cmp_allow_declared(struct dv_cmp_row *w, double e);

/* Attach to c (a comparison against ref) the declared arithmetic's own
 * error: exact is a float64 dump of ref's run that emulates nothing
 * (diverge run --backend cpu-f64 without --act-quant/--kv-type); each
 * compared row gets err_declared = rel_rms(ref, exact). The exact dump is
 * checked as an oracle is (dv_cmp_check_oracle) and must declare no
 * rounding. DV_E_INPUT with one line naming the file otherwise. */
dv_status dv_cmp_add_exact(struct dv_cmp_result *c, const struct dv_reader *ref,
                           const struct dv_reader *exact, const struct dv_policy *p);

/* Whether `oracle` can be the oracle of a comparison of test against
 * ref: not the test's or the reference's file itself, every tensor stored
 * as float64, the reference's model (model_sha256 when both dumps carry
 * one, and always the same shapes: n_vocab, n_embd, n_layer, heads,
 * head_dim, n_ff), and the reference's run: at least one pass in common,
 * and every pass they share with the same pos0, n_tokens and tokens,
 * and the reference's declared arithmetic (act_quant, kv_type) when
 * both say: an oracle that rounds otherwise measures another floor.
 * DV_E_INPUT with one line "ORACLE: what is wrong" otherwise. */
dv_status dv_cmp_check_oracle(const struct dv_reader *oracle, const struct dv_reader *test,
                              const struct dv_reader *ref);

/* "none", "ref", "oracle", "disagree"; "?" out of range. */
const char *dv_broken_side_name(int side);
/* Measure and judge one tensor held in memory (bisect's live runs and op
 * replays) exactly as dv_compare judges a row: the caller fills row's
 * name, layer, op, n_dims, shape and tol (dv_policy_lookup); test, ref and
 * oracle (NULL: the policy's fixed limits) hold the tensor's values as
 * DV_TYPE_F32 or DV_TYPE_F64. cfg (n_layer, head_dim) and the pass's pos0
 * place the worst element. Sets status (OK, DIVERGED or BROKEN), m,
 * ratio, why, max_at, bad_at and, for BROKEN, the broken_* fields. */
void dv_cmp_judge(struct dv_cmp_row *row, const struct dv_config *cfg, int64_t pos0,
                  const void *test, int test_type, const void *ref, int ref_type,
                  const void *oracle, int oracle_type);

/* Where flat index `flat` of row's tensor sits (token, position, head,
 * column, key) in a pass at pos0 of a model with cfg's shapes. */
void dv_cmp_locate(struct dv_cmp_where *w, int64_t flat, const struct dv_cmp_row *row,
                   const struct dv_config *cfg, int64_t pos0);

/* Format where `w` points for a row as "[t=3 (pos 9), h=2, col=17]" (or
 * the multi-index for tensors outside the table). */
void dv_cmp_where_format(const struct dv_cmp_where *w, char *buf, int size);

#endif
