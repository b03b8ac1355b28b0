/*
 * logits.c - top-k logit diff between two dumps (definitions in logits.h).
 *
 * Two steps: line the passes up (index, pos0, n_tokens, tokens; anything
 * else becomes a note), then read one pass's logits from each dump at a
 * time, compare position by position and summarise. All arithmetic is in
 * double; the softmax never materialises p or q, each is exp() of the
 * log-softmax when needed, so nothing the size of the vocab is allocated
 * per position.
 */
#include "logits.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dump.h"
#include "error.h"
#include "gguf.h"
#include "types.h"

static const char *const note_names[DV_LOGITS_NOTE_COUNT] = {
    [DV_LOGITS_ONLY_TEST] = "only-in-test",
    [DV_LOGITS_ONLY_REF] = "only-in-ref",
    [DV_LOGITS_SHAPE_DIFFERS] = "positions-differ",
    [DV_LOGITS_TOKENS_DIFFER] = "tokens-differ",
    [DV_LOGITS_NO_LOGITS] = "no-logits",
};

const char *dv_logits_note_name(int kind)
{
    return kind >= 0 && kind < DV_LOGITS_NOTE_COUNT ? note_names[kind] : "?";
}

static const char *const status_names[DV_LOGITS_ROW_STATUS_COUNT] = {
    [DV_LOGITS_ROW_OK] = "ok",
    [DV_LOGITS_ROW_TEST_NONFINITE] = "test-not-finite",
    [DV_LOGITS_ROW_REF_NONFINITE] = "ref-not-finite",
};

const char *dv_logits_row_status_name(int status)
{
    return status >= 0 && status < DV_LOGITS_ROW_STATUS_COUNT ? status_names[status] : "?";
}

/* ---- one position ------------------------------------------------------ */

/* Token i ranks before token j: larger logit, ties to the smaller id. */
static bool before(const double *x, int64_t i, int64_t j)
{
    return x[i] > x[j] || (x[i] == x[j] && i < j);
}

/* The k best ids of x[V] into ids[k], best first. Insertion into a short
 * sorted list: most tokens lose against the k-th at once, so this is one
 * pass over the vocab. */
static void top_ids(const double *x, int64_t V, int k, int32_t *ids)
{
    int m = 0;
    for (int64_t i = 0; i < V; i++) {
        if (m == k && !before(x, i, ids[m - 1])) continue;
        int at = m < k ? m++ : k - 1;
        while (at > 0 && before(x, i, ids[at - 1])) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = (int32_t)i;
    }
}

/* Whether x[V] is finite as logits.h defines it; counts NaN and +inf,
 * and gives the max and the log of the softmax denominator. */
static bool softmax_prep(const double *x, int64_t V, int64_t *n_nan, int64_t *n_posinf,
                         double *mx, double *log_den)
{
    double m = -INFINITY;
    *n_nan = *n_posinf = 0;
    for (int64_t i = 0; i < V; i++) {
        if (isnan(x[i])) (*n_nan)++;
        else if (x[i] == INFINITY) (*n_posinf)++;
        else if (x[i] > m) m = x[i];
    }
    if (*n_nan || *n_posinf || m == -INFINITY) return false;
    double s = 0;
    for (int64_t i = 0; i < V; i++) s += exp(x[i] - m);
    *mx = m;
    *log_den = log(s);
    return true;
}

static void fill_top(const double *x, double mx, double log_den, const int32_t *ids,
                     int k, struct dv_logit_prob *top)
{
    for (int j = 0; j < k; j++)
        top[j] = (struct dv_logit_prob){ids[j], exp(x[ids[j]] - mx - log_den)};
}

static void invalid_top(int k, struct dv_logit_prob *top)
{
    for (int j = 0; j < k; j++) top[j] = (struct dv_logit_prob){-1, NAN};
}

void dv_logits_position(const double *ref, const double *test, int64_t V, int k,
                        struct dv_logit_prob *ref_top, struct dv_logit_prob *test_top,
                        struct dv_logits_row *row)
{
    int32_t ids_r[DV_LOGITS_MAX_K], ids_t[DV_LOGITS_MAX_K];
    double mx, my, lx, ly;
    int64_t rn, ri, tn, ti;
    bool rok = softmax_prep(ref, V, &rn, &ri, &mx, &lx);
    bool tok = softmax_prep(test, V, &tn, &ti, &my, &ly);
    row->same_top1 = false;
    row->rank = row->overlap = 0;
    row->dp = row->max_abs_dp = NAN;
    row->max_abs_dp_id = -1;
    row->n_nan = row->n_posinf = 0;
    if (rok) {
        top_ids(ref, V, k, ids_r);
        fill_top(ref, mx, lx, ids_r, k, ref_top);
    } else {
        invalid_top(k, ref_top);
    }
    if (tok) {
        top_ids(test, V, k, ids_t);
        fill_top(test, my, ly, ids_t, k, test_top);
    } else {
        invalid_top(k, test_top);
    }
    if (!rok) {
        row->status = DV_LOGITS_ROW_REF_NONFINITE;
        row->kl = NAN;
        row->n_nan = rn, row->n_posinf = ri;
        return;
    }
    if (!tok) {
        row->status = DV_LOGITS_ROW_TEST_NONFINITE;
        row->kl = INFINITY;
        row->n_nan = tn, row->n_posinf = ti;
        return;
    }
    row->status = DV_LOGITS_ROW_OK;
    const int32_t a = ids_r[0];
    row->same_top1 = ids_t[0] == a;
    int64_t rank = 1;
    for (int64_t j = 0; j < V; j++) rank += before(test, j, a);
    row->rank = rank > INT32_MAX ? INT32_MAX : (int)rank;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) row->overlap += ids_r[i] == ids_t[j];
    double kl = 0, maxd = -1;
    for (int64_t i = 0; i < V; i++) {
        const double lp = (ref[i] - mx) - lx, lq = (test[i] - my) - ly;
        const double p = exp(lp), q = exp(lq);
        /* p log(p/q) - p + q: the same sum when p and q each sum to 1, but
         * every term is >= 0 (x log(x/y) >= x - y), so rounding cannot make
         * the total negative (p log(p/q) alone gave -1.9e-16 on two nearly
         * equal f32 runs); a term rounded below 0 counts as 0. */
        if (lq == -INFINITY && p > 0)
            kl = INFINITY;
        else if (p > 0 || q > 0) {
            const double term = (p > 0 ? p * (lp - lq) : 0) - p + q;
            kl += term > 0 ? term : 0;
        }
        const double d = fabs(p - q);
        if (d > maxd) maxd = d, row->max_abs_dp_id = (int32_t)i;
    }
    row->kl = kl;
    row->max_abs_dp = maxd;
    row->dp = exp((test[a] - my) - ly) - exp((ref[a] - mx) - lx);
}

/* ---- summary ----------------------------------------------------------- */

double dv_logits_percentile(const double *v, int64_t n, double f)
{
    if (n <= 0) return NAN;
    if (f <= 0) return v[0];
    if (f >= 1) return v[n - 1];
    const double pos = f * (double)(n - 1);
    const int64_t i = (int64_t)pos;
    const double frac = pos - (double)i;
    if (frac == 0 || i + 1 >= n || v[i] == v[i + 1]) return v[i];
    if (isinf(v[i + 1])) return v[i + 1]; /* (1-f) v + f inf is inf, not NaN */
    return v[i] + frac * (v[i + 1] - v[i]);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Mean of x[n] and its standard error (sample sd / sqrt(n); 0 for n < 2,
 * NaN when the mean is not finite). */
static void mean_se(const double *x, int64_t n, double *mean, double *se)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    if (!isfinite(*mean)) {
        *se = NAN;
        return;
    }
    double v = 0;
    for (int64_t i = 0; i < n; i++) v += (x[i] - *mean) * (x[i] - *mean);
    *se = n < 2 ? 0 : sqrt(v / (double)(n - 1) / (double)n);
}

static dv_status summarise(struct dv_logits_result *res)
{
    struct dv_logits_summary *S = &res->sum;
    *S = (struct dv_logits_summary){.n_positions = res->n_rows, .kl_max_row = -1,
                                    .max_abs_dp_row = -1};
    for (int64_t i = 0; i < res->n_rows; i++) {
        const struct dv_logits_row *r = &res->rows[i];
        S->n_finite += r->status == DV_LOGITS_ROW_OK;
        S->n_test_nonfinite += r->status == DV_LOGITS_ROW_TEST_NONFINITE;
        S->n_ref_nonfinite += r->status == DV_LOGITS_ROW_REF_NONFINITE;
        S->n_same_top1 += r->same_top1;
    }
    S->n_judged = S->n_finite + S->n_test_nonfinite;
    S->n_flipped = S->n_judged - S->n_same_top1;
    const double f = S->n_judged ? (double)S->n_same_top1 / (double)S->n_judged : NAN;
    S->same_top1_frac = f;
    S->same_top1_se = S->n_judged > 1 ? sqrt(f * (1 - f) / (double)(S->n_judged - 1))
                                      : S->n_judged ? 0 : NAN;
    S->kl_mean = S->kl_se = S->kl_median = S->kl_p90 = S->kl_p99 = S->kl_max = NAN;
    S->overlap_frac = S->dp_rms = S->dp_rms_se = S->max_abs_dp = NAN;
    const int64_t n = S->n_finite;
    if (n == 0) return DV_OK;
    double *kl = malloc((size_t)n * sizeof *kl), *dp2 = malloc((size_t)n * sizeof *dp2);
    if (!kl || !dp2) {
        free(kl), free(dp2);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    double overlap = 0;
    int64_t m = 0;
    for (int64_t i = 0; i < res->n_rows; i++) {
        const struct dv_logits_row *r = &res->rows[i];
        if (r->status != DV_LOGITS_ROW_OK) continue;
        kl[m] = r->kl;
        dp2[m++] = r->dp * r->dp;
        overlap += r->overlap;
        if (S->kl_max_row < 0 || r->kl > S->kl_max) S->kl_max = r->kl, S->kl_max_row = i;
        if (S->max_abs_dp_row < 0 || r->max_abs_dp > S->max_abs_dp)
            S->max_abs_dp = r->max_abs_dp, S->max_abs_dp_row = i;
    }
    S->overlap_frac = overlap / (double)n / res->k;
    mean_se(kl, n, &S->kl_mean, &S->kl_se);
    double ms, ms_se;
    mean_se(dp2, n, &ms, &ms_se);
    S->dp_rms = sqrt(ms);
    S->dp_rms_se = S->dp_rms > 0 ? 0.5 / S->dp_rms * ms_se : 0;
    qsort(kl, (size_t)n, sizeof *kl, cmp_double);
    S->kl_median = dv_logits_percentile(kl, n, 0.5);
    S->kl_p90 = dv_logits_percentile(kl, n, 0.9);
    S->kl_p99 = dv_logits_percentile(kl, n, 0.99);
    free(kl), free(dp2);
    return DV_OK;
}

/* ---- lining the passes up ---------------------------------------------- */

/* A pass to compare: positions in each reader's arrays. */
struct pair {
    int pt, pr;  /* pass positions */
    int tt, tr;  /* logits tensor positions */
};

static dv_status add_note(struct dv_logits_result *res, int64_t pass, int kind,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static dv_status add_note(struct dv_logits_result *res, int64_t pass, int kind,
                          const char *fmt, ...)
{
    struct dv_logits_note *n = realloc(res->notes, (size_t)(res->n_notes + 1) * sizeof *n);
    if (!n) return dv_fail(DV_E_NOMEM, "out of memory");
    res->notes = n;
    n += res->n_notes++;
    n->pass = pass;
    n->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->detail, sizeof n->detail, fmt, ap);
    va_end(ap);
    return DV_OK;
}

/* Whether passes pt of test and pr of ref can be compared; a note when not. */
static dv_status check_pair(const struct dv_reader *test, const struct dv_reader *ref,
                            struct pair *pp, struct dv_logits_result *res, bool *ok)
{
    const struct dv_reader_pass *a = &test->passes[pp->pt], *b = &ref->passes[pp->pr];
    *ok = false;
    if (a->pos0 != b->pos0 || a->n_tokens != b->n_tokens)
        return add_note(res, a->index, DV_LOGITS_SHAPE_DIFFERS,
                        "test has pos0 %lld, %lld tokens; ref pos0 %lld, %lld tokens",
                        (long long)a->pos0, (long long)a->n_tokens, (long long)b->pos0,
                        (long long)b->n_tokens);
    for (int64_t t = 0; t < a->n_tokens; t++)
        if (a->tokens[t] != b->tokens[t])
            return add_note(res, a->index, DV_LOGITS_TOKENS_DIFFER,
                            "position %lld: test token %d, ref token %d",
                            (long long)(a->pos0 + t), a->tokens[t], b->tokens[t]);
    pp->tt = dv_reader_find_tensor(test, pp->pt, "logits");
    pp->tr = dv_reader_find_tensor(ref, pp->pr, "logits");
    if (pp->tt < 0 || pp->tr < 0)
        return add_note(res, a->index, DV_LOGITS_NO_LOGITS, "no logits in %s",
                        pp->tt < 0 && pp->tr < 0 ? "either dump"
                        : pp->tt < 0             ? "the test dump"
                                                 : "the reference dump");
    *ok = true;
    return DV_OK;
}

static bool has_logits(const struct dv_reader *r)
{
    for (int p = 0; p < r->n_passes; p++)
        if (dv_reader_find_tensor(r, p, "logits") >= 0) return true;
    return false;
}

/* Merge-walk both pass lists (sorted by index) into pairs and notes. */
static dv_status align(const struct dv_reader *test, const struct dv_reader *ref,
                       int64_t only, struct dv_logits_result *res, struct pair **out,
                       int *n_out)
{
    struct pair *pairs = calloc((size_t)test->n_passes + 1, sizeof *pairs);
    if (!pairs) return dv_fail(DV_E_NOMEM, "out of memory");
    int n = 0, i = 0, j = 0;
    dv_status s = DV_OK;
    while (!s && (i < test->n_passes || j < ref->n_passes)) {
        const int64_t a = i < test->n_passes ? test->passes[i].index : INT64_MAX;
        const int64_t b = j < ref->n_passes ? ref->passes[j].index : INT64_MAX;
        const int64_t idx = a < b ? a : b;
        if (only >= 0 && idx != only) {
            i += a == idx, j += b == idx;
            continue;
        }
        if (a != b) {
            s = a < b ? add_note(res, a, DV_LOGITS_ONLY_TEST, "not in %s", ref->path)
                      : add_note(res, b, DV_LOGITS_ONLY_REF, "not in %s", test->path);
            i += a < b, j += b < a;
            continue;
        }
        bool ok;
        pairs[n] = (struct pair){.pt = i++, .pr = j++};
        if (!(s = check_pair(test, ref, &pairs[n], res, &ok)) && ok) n++;
    }
    if (s) {
        free(pairs);
        return s;
    }
    *out = pairs;
    *n_out = n;
    return DV_OK;
}

/* Check what must hold before anything is compared. */
static dv_status preflight(const struct dv_reader *test, const struct dv_reader *ref,
                           const struct dv_logits_opts *o)
{
    if (o->top_k < 1 || o->top_k > DV_LOGITS_MAX_K)
        return dv_fail(DV_E_USAGE, "top-k %d is not in 1..%d", o->top_k, DV_LOGITS_MAX_K);
    if (test->cfg.n_vocab != ref->cfg.n_vocab)
        return dv_fail(DV_E_INPUT, "%s: n_vocab %lld, but %s has n_vocab %lld: the "
                       "logits cannot be compared", test->path, (long long)test->cfg.n_vocab,
                       ref->path, (long long)ref->cfg.n_vocab);
    const struct dv_reader *rs[2] = {test, ref};
    for (int i = 0; i < 2; i++) {
        if (o->pass >= 0 && dv_reader_find_pass(rs[i], o->pass) < 0)
            return dv_fail(DV_E_INPUT, "%s: no pass %lld (it has %d passes)", rs[i]->path,
                           (long long)o->pass, rs[i]->n_passes);
        if (!has_logits(rs[i]))
            return dv_fail(DV_E_INPUT, "%s: no 'logits' tensor in any pass (dumped with "
                           "a --select that leaves it out?)", rs[i]->path);
    }
    return DV_OK;
}

/* ---- the comparison ---------------------------------------------------- */

static char *dup_attr(const struct dv_reader *r, const char *key)
{
    return strdup(dv_reader_str(r, key));
}

static dv_status describe(const struct dv_reader *r, struct dv_logits_side *side)
{
    side->path = strdup(r->path);
    side->backend = dup_attr(r, "backend");
    side->device = dup_attr(r, "device");
    side->inject = dup_attr(r, "inject");
    side->n_passes = r->n_passes;
    if (!side->path || !side->backend || !side->device || !side->inject)
        return dv_fail(DV_E_NOMEM, "out of memory");
    return DV_OK;
}

/* Read pass pp of both dumps and compare its positions into rows. */
static dv_status compare_pass(const struct dv_reader *test, const struct dv_reader *ref,
                              const struct pair *pp, double *xt, double *xr,
                              struct dv_logits_result *res)
{
    dv_status s = dv_reader_read(test, pp->pt, pp->tt, DV_TYPE_F64, xt);
    if (!s) s = dv_reader_read(ref, pp->pr, pp->tr, DV_TYPE_F64, xr);
    if (s) return s;
    const struct dv_reader_pass *P = &ref->passes[pp->pr];
    const int64_t V = res->n_vocab;
    for (int64_t t = 0; t < P->n_tokens; t++) {
        struct dv_logits_row *row = &res->rows[res->n_rows];
        const int64_t k = res->k;
        row->ref_top = res->tops_ + 2 * k * res->n_rows;
        row->test_top = row->ref_top + k;
        row->pass = P->index;
        row->pos = P->pos0 + t;
        row->t = (int32_t)t;
        row->token = P->tokens[t];
        dv_logits_position(xr + t * V, xt + t * V, V, res->k, row->ref_top, row->test_top,
                           row);
        res->n_rows++;
    }
    return DV_OK;
}

static dv_status no_pass_left(const struct dv_logits_result *res,
                              const struct dv_reader *test, const struct dv_reader *ref)
{
    if (res->n_notes == 0)
        return dv_fail(DV_E_INPUT, "%s and %s: no pass in common", test->path, ref->path);
    const struct dv_logits_note *n = &res->notes[0];
    return dv_fail(DV_E_INPUT, "%s and %s: no pass with logits in common (pass %lld: "
                   "%s: %s%s)", test->path, ref->path, (long long)n->pass,
                   dv_logits_note_name(n->kind), n->detail,
                   res->n_notes > 1 ? ", and more" : "");
}

static dv_status run_compare(const struct dv_reader *test, const struct dv_reader *ref,
                             const struct dv_logits_opts *o, struct dv_logits_result *res)
{
    res->n_vocab = ref->cfg.n_vocab;
    res->k = o->top_k < res->n_vocab ? o->top_k : (int)res->n_vocab;
    dv_status s = describe(test, &res->test);
    if (!s) s = describe(ref, &res->ref);
    struct pair *pairs = NULL;
    int n_pairs = 0;
    if (!s) s = align(test, ref, o->pass, res, &pairs, &n_pairs);
    if (s) return s;
    if (n_pairs == 0) {
        free(pairs);
        return no_pass_left(res, test, ref);
    }
    int64_t n_rows = 0, max_tok = 0;
    for (int i = 0; i < n_pairs; i++) {
        const int64_t nt = ref->passes[pairs[i].pr].n_tokens;
        n_rows += nt;
        max_tok = nt > max_tok ? nt : max_tok;
    }
    const size_t vals = (size_t)max_tok * (size_t)res->n_vocab;
    double *xt = malloc(vals * sizeof *xt), *xr = malloc(vals * sizeof *xr);
    res->passes = calloc((size_t)n_pairs, sizeof *res->passes);
    res->rows = calloc((size_t)n_rows, sizeof *res->rows);
    res->tops_ = malloc((size_t)n_rows * 2 * (size_t)res->k * sizeof *res->tops_);
    if (!xt || !xr || !res->passes || !res->rows || !res->tops_)
        s = dv_fail(DV_E_NOMEM, "out of memory (%lld logits per pass)", (long long)vals);
    for (int i = 0; !s && i < n_pairs; i++) {
        const struct dv_reader_pass *P = &ref->passes[pairs[i].pr];
        res->passes[res->n_passes++] = (struct dv_logits_pass){P->index, P->pos0, P->n_tokens};
        s = compare_pass(test, ref, &pairs[i], xt, xr, res);
    }
    free(xt), free(xr), free(pairs);
    return s ? s : summarise(res);
}

/* A reference position without a distribution (logits.h): the reference
 * is broken there, and nothing can be judged against it. */
static dv_status refuse_ref(const struct dv_logits_result *res, const struct dv_reader *ref)
{
    for (int64_t i = 0; i < res->n_rows; i++) {
        const struct dv_logits_row *w = &res->rows[i];
        if (w->status != DV_LOGITS_ROW_REF_NONFINITE) continue;
        char what[96];
        if (w->n_nan || w->n_posinf)
            snprintf(what, sizeof what, "%lld NaN and %lld +inf", (long long)w->n_nan,
                     (long long)w->n_posinf);
        else
            snprintf(what, sizeof what, "-inf only");
        return dv_fail(DV_E_INPUT, "%s: pass %lld, t=%d (pos %lld): the reference logits hold "
                       "%s (%lld of %lld positions are so): a reference must give every "
                       "position a distribution; nothing to judge the test against",
                       ref->path, (long long)w->pass, w->t, (long long)w->pos, what,
                       (long long)res->sum.n_ref_nonfinite, (long long)res->n_rows);
    }
    return DV_OK;
}

dv_status dv_logits_compare(const struct dv_reader *test, const struct dv_reader *ref,
                            const struct dv_logits_opts *o,
                            struct dv_logits_result **out)
{
    *out = NULL;
    dv_status s = preflight(test, ref, o);
    if (s) return s;
    struct dv_logits_result *res = calloc(1, sizeof *res);
    if (!res) return dv_fail(DV_E_NOMEM, "out of memory");
    if ((s = run_compare(test, ref, o, res)) || (s = refuse_ref(res, ref))) {
        dv_logits_free(res);
        return s;
    }
    *out = res;
    return DV_OK;
}

static void free_side(struct dv_logits_side *s)
{
    free(s->path), free(s->backend), free(s->device), free(s->inject);
}

void dv_logits_free(struct dv_logits_result *r)
{
    if (!r) return;
    free_side(&r->test), free_side(&r->ref);
    free(r->passes), free(r->notes), free(r->rows), free(r->tops_);
    free(r);
}

/* ---- the vocab --------------------------------------------------------- */

/* Load the vocab of GGUF path; DV_E_INPUT when it has none or its size is
 * not n_vocab. */
static dv_status load_vocab(const char *path, int64_t n_vocab, struct dv_vocab **out)
{
    struct dv_gguf *g;
    dv_status s = dv_gguf_open(path, &g);
    if (s) return s;
    s = dv_vocab_load(g, out);
    dv_gguf_free(g);
    if (s) return s;
    if (dv_vocab_size(*out) != n_vocab) {
        int32_t n = dv_vocab_size(*out);
        dv_vocab_free(*out);
        *out = NULL;
        return dv_fail(DV_E_INPUT, "%s: its vocab has %d tokens, the dumps' logits %lld",
                       path, n, (long long)n_vocab);
    }
    return DV_OK;
}

/* The vocab of dump r's model_path when it is the file r was made with;
 * why gets the reason when not. */
static void vocab_from_dump(const struct dv_reader *r, int64_t n_vocab,
                            struct dv_vocab **out, char *why, size_t cap)
{
    const char *path = dv_reader_str(r, "model_path");
    const char *want = dv_reader_str(r, "model_sha256");
    struct stat st;
    char sha[65];
    if (!path[0]) {
        snprintf(why, cap, "%s records no model_path", r->path);
    } else if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, cap, "model file not found: %s", path);
    } else if (!want[0]) {
        snprintf(why, cap, "%s records no model_sha256 to check %s against", r->path, path);
    } else if (dv_sha256_file(path, sha)) {
        snprintf(why, cap, "%s", dv_errmsg());
    } else if (strcmp(sha, want) != 0) {
        snprintf(why, cap, "%s has changed since the dump (SHA-256 differs)", path);
    } else if (load_vocab(path, n_vocab, out)) {
        snprintf(why, cap, "%s", dv_errmsg());
    } else {
        snprintf(why, cap, "%s", path);
    }
}

dv_status dv_logits_vocab(const struct dv_reader *test, const struct dv_reader *ref,
                          const char *model, int64_t n_vocab, struct dv_vocab **out,
                          char *why, size_t cap)
{
    *out = NULL;
    if (model) {
        dv_status s = load_vocab(model, n_vocab, out);
        if (!s) snprintf(why, cap, "%s", model);
        return s;
    }
    vocab_from_dump(ref, n_vocab, out, why, cap);
    if (*out || !test) return DV_OK;
    /* the test's model may be another copy of the same file */
    char why2[512];
    if (strcmp(dv_reader_str(test, "model_path"), dv_reader_str(ref, "model_path")) != 0) {
        vocab_from_dump(test, n_vocab, out, why2, sizeof why2);
        if (*out) snprintf(why, cap, "%s", why2);
    }
    return DV_OK;
}
