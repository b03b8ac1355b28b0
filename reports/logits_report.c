/*
 * logits_report.c - a top-k logit diff as text and as JSON.
 *
 * The text reads top to bottom: which dumps and which passes, one block of
 * two lines per position (the reference's top-k over the test's, so a
 * change of order stands out), the summary in the words llama.cpp's
 * `perplexity --kl-divergence` uses, and the positions whose top-1 flips.
 * The JSON carries every figure so that scripts never need the text.
 */
#include "logits_report.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "error.h"
#include "jsonout.h"
#include "term.h"

/* ---- token texts -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[n] (as jansson checks it: no
 * overlong forms, no surrogates, nothing past U+10FFFF), 0 if invalid. */
static int utf8_len(const unsigned char *s, size_t n)
{
    const unsigned char c = s[0];
    int len;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

/* The bytes of token id's text into buf[cap] (llama.cpp's piece; for
 * tokens whose piece is empty, such as <s>, the token as stored); returns
 * the length, or -1 without a vocab or for an id out of range. */
static int token_bytes(const struct dv_vocab *v, int32_t id, char *buf, size_t cap)
{
    if (!v || id < 0) return -1;
    int n = dv_vocab_piece(v, id, buf, cap);
    if (n < 0) return -1;
    if (n >= (int)cap) n = (int)cap - 1; /* cut to what was written */
    if (n == 0) {
        const char *t = dv_vocab_token(v, id);
        snprintf(buf, cap, "%s", t ? t : "");
        n = (int)strlen(buf);
    }
    return n;
}

/* Escape n bytes of s into out[cap] (NUL-terminated). Invalid UTF-8 bytes
 * become the text \xNN. For a terminal (json false) also control bytes
 * (\n, \t, \r, else \xNN), the quote and the backslash, and the text
 * stops after max_cols characters with ".." (0: no limit). For JSON the
 * rest stays as it is (jansson escapes it), NUL aside. Returns the
 * display width in characters (code points). */
static int escape(const char *s, int n, bool json, int max_cols, char *out, size_t cap)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    int cols = 0;
    for (int i = 0; i < n;) {
        char tmp[8];
        int len = utf8_len(u + i, (size_t)(n - i)), w = 1;
        if (len == 0) {
            snprintf(tmp, sizeof tmp, "\\x%02x", u[i]), w = 4, len = 1;
        } else if (len > 1) {
            memcpy(tmp, s + i, (size_t)len), tmp[len] = '\0';
        } else if (u[i] == 0 || (!json && (u[i] < 0x20 || u[i] == 0x7f))) {
            const char *named = u[i] == '\n' ? "\\n" : u[i] == '\t' ? "\\t"
                              : u[i] == '\r' ? "\\r" : NULL;
            if (named) snprintf(tmp, sizeof tmp, "%s", named), w = 2;
            else snprintf(tmp, sizeof tmp, "\\x%02x", u[i]), w = 4;
        } else if (!json && (u[i] == '"' || u[i] == '\\')) {
            snprintf(tmp, sizeof tmp, "\\%c", u[i]), w = 2;
        } else {
            tmp[0] = s[i], tmp[1] = '\0';
        }
        const size_t tl = strlen(tmp);
        if ((max_cols && cols + w > max_cols) || o + tl + 3 > cap) {
            memcpy(out + o, "..", 2), o += 2, cols += 2;
            break;
        }
        memcpy(out + o, tmp, tl);
        o += tl, cols += w, i += len;
    }
    out[o] = '\0';
    return cols;
}

/* Display width of a UTF-8 string: its code points. */
static int width_of(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* `"text"` for the terminal, padded with spaces to width columns; "" and
 * no padding without a vocab. */
#define TOKEN_COLS 12
static void quoted(const struct dv_vocab *v, int32_t id, int width, char *out, size_t cap)
{
    char raw[256], esc[128];
    int n = token_bytes(v, id, raw, sizeof raw);
    if (n < 0) {
        out[0] = '\0';
        return;
    }
    int w = escape(raw, n, false, TOKEN_COLS, esc, sizeof esc) + 2;
    snprintf(out, cap, "\"%s\"%*s", esc, width > w ? width - w : 0, "");
}

/* ---- text --------------------------------------------------------------- */

static void put_side(FILE *f, const char *label, const struct dv_logits_side *s)
{
    fprintf(f, "%-7s %s: %s", label, s->path, s->backend[0] ? s->backend : "?");
    if (s->device[0]) fprintf(f, " on %s", s->device);
    if (s->inject[0]) fprintf(f, ", fault injected: %s", s->inject);
    fprintf(f, " (%d passes)\n", s->n_passes);
}

static void put_header(FILE *f, const struct dv_logits_result *r, const struct dv_vocab *v,
                       const char *vocab_note)
{
    put_side(f, "test:", &r->test);
    put_side(f, "ref:", &r->ref);
    if (v) fprintf(f, "vocab:  %s (%d tokens)\n", vocab_note, dv_vocab_size(v));
    else fprintf(f, "vocab:  none (%s): token ids only\n", vocab_note);
    fprintf(f, "passes: %d compared, %lld positions:", r->n_passes, (long long)r->n_rows);
    for (int i = 0; i < r->n_passes && i < 8; i++)
        fprintf(f, "%s %lld (pos0 %lld, %lld token%s)", i ? "," : "",
                (long long)r->passes[i].index, (long long)r->passes[i].pos0,
                (long long)r->passes[i].n_tokens, r->passes[i].n_tokens == 1 ? "" : "s");
    fprintf(f, "%s\n", r->n_passes > 8 ? ", ..." : "");
    for (int i = 0; i < r->n_notes; i++)
        fprintf(f, "not compared: pass %lld: %s: %s\n", (long long)r->notes[i].pass,
                dv_logits_note_name(r->notes[i].kind), r->notes[i].detail);
    fprintf(f, "p = softmax(ref logits), q = softmax(test logits); rank: rank in q of p's "
               "top-1; KL(p||q) in nats\n\n");
}

static void put_top(FILE *f, const struct dv_logits_result *r, const struct dv_vocab *v,
                    const struct dv_logit_prob *top)
{
    for (int j = 0; j < r->k; j++) {
        char q[160];
        quoted(v, top[j].id, TOKEN_COLS + 2, q, sizeof q);
        fprintf(f, "  %6d %s%s%.4f", top[j].id, q, q[0] ? " " : "", top[j].p);
    }
}

static void put_nonfinite(FILE *f, const struct dv_logits_row *w)
{
    if (w->n_nan || w->n_posinf)
        fprintf(f, "  logits not finite (%lld NaN, %lld +inf)", (long long)w->n_nan,
                (long long)w->n_posinf);
    else
        fprintf(f, "  logits not finite (every value is -inf)");
}

static bool flipped(const struct dv_logits_row *w)
{
    return w->status != DV_LOGITS_ROW_REF_NONFINITE && !w->same_top1;
}

static void put_row(FILE *f, const struct dv_logits_result *r, const struct dv_vocab *v,
                    const struct dv_logits_row *w, bool color)
{
    char tok[160], rank[16] = "-", kl[16] = "-", dp[16] = "-", pre[256];
    quoted(v, w->token, TOKEN_COLS + 2, tok, sizeof tok);
    if (w->status == DV_LOGITS_ROW_OK) {
        snprintf(rank, sizeof rank, "%d", w->rank);
        snprintf(dp, sizeof dp, "%.3e", w->max_abs_dp);
    }
    if (w->status != DV_LOGITS_ROW_REF_NONFINITE) snprintf(kl, sizeof kl, "%.3e", w->kl);
    const bool flip = flipped(w);
    snprintf(pre, sizeof pre, "%c%4lld %6lld  %6d %s%s%5s  %-10s %-10s", flip ? '*' : ' ',
             (long long)w->pass, (long long)w->pos, w->token, tok, tok[0] ? " " : "", rank,
             kl, dp);
    fprintf(f, "%s%s ref ", DV_TERM_RED(color && flip), pre);
    if (w->status == DV_LOGITS_ROW_REF_NONFINITE) put_nonfinite(f, w);
    else put_top(f, r, v, w->ref_top);
    fprintf(f, "\n%*s test", width_of(pre), "");
    if (w->status == DV_LOGITS_ROW_TEST_NONFINITE) put_nonfinite(f, w);
    else put_top(f, r, v, w->test_top);
    fprintf(f, "%s\n", DV_TERM_RESET(color && flip));
}

static void put_table(FILE *f, const struct dv_logits_result *r, const struct dv_vocab *v,
                      bool color)
{
    /* the widths of put_row's prefix: the input is id [+ space + text] */
    fprintf(f, " %4s %6s  %-*s%5s  %-10s %-10s top-%d: id %sprobability\n", "pass", "pos",
            v ? 6 + 1 + TOKEN_COLS + 2 + 1 : 6, "input", "rank", "KL(p||q)", "max|p-q|", r->k,
            v ? "\"text\" " : "");
    for (int64_t i = 0; i < r->n_rows; i++) put_row(f, r, v, &r->rows[i], color);
    fputc('\n', f);
}

/* A fraction as a percentage: 3 decimals, or 3 significant digits when
 * that would show a non-zero value as 0.000 (f32 noise is far below). */
static const char *pct(double x, char *buf, size_t cap)
{
    x *= 100;
    if (x != 0 && fabs(x) < 0.01) snprintf(buf, cap, "%.3e", x);
    else snprintf(buf, cap, "%.3f", x);
    return buf;
}

/* "pass 1, pos 7" of row i */
static void where(const struct dv_logits_result *r, int64_t i, char *buf, size_t cap)
{
    if (i < 0) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "pass %lld, pos %lld", (long long)r->rows[i].pass,
                  (long long)r->rows[i].pos);
}

static void put_summary(FILE *f, const struct dv_logits_result *r, const struct dv_vocab *v)
{
    const struct dv_logits_summary *S = &r->sum;
    char at[64], tok[200];
    fprintf(f, "====== summary: %lld positions, %lld with finite logits on both sides ======\n",
            (long long)S->n_positions, (long long)S->n_finite);
    fprintf(f, "Mean    KLD: %11.4e ± %.4e\n", S->kl_mean, S->kl_se);
    fprintf(f, "Median  KLD: %11.4e\n", S->kl_median);
    fprintf(f, "90.0%%   KLD: %11.4e\n", S->kl_p90);
    fprintf(f, "99.0%%   KLD: %11.4e\n", S->kl_p99);
    where(r, S->kl_max_row, at, sizeof at);
    fprintf(f, "Maximum KLD: %11.4e  (%s)\n", S->kl_max, at);
    char a[32], b[32];
    fprintf(f, "Same top-1 : %7s ± %s %%  (%lld of %lld)\n", pct(S->same_top1_frac, a, 32),
            pct(S->same_top1_se, b, 32), (long long)S->n_same_top1, (long long)S->n_judged);
    fprintf(f, "Overlap@%-3d: %7s %%  (mean |top-k(p) ∩ top-k(q)| / k)\n", r->k,
            pct(S->overlap_frac, a, 32));
    fprintf(f, "RMS Δp     : %7s ± %s %%  (Δp = q - p of the reference's top-1)\n",
            pct(S->dp_rms, a, 32), pct(S->dp_rms_se, b, 32));
    where(r, S->max_abs_dp_row, at, sizeof at);
    tok[0] = '\0';
    if (S->max_abs_dp_row >= 0) {
        const struct dv_logits_row *w = &r->rows[S->max_abs_dp_row];
        char q[160];
        quoted(v, w->max_abs_dp_id, 0, q, sizeof q);
        snprintf(tok, sizeof tok, ", token %d%s%s", w->max_abs_dp_id, q[0] ? " " : "", q);
    }
    fprintf(f, "Max |p-q|  : %11.4e  (%s%s)\n", S->max_abs_dp, at, tok);
    if (S->n_test_nonfinite || S->n_ref_nonfinite)
        fprintf(f, "Not finite : %lld positions with test logits NaN/Inf (counted as "
                   "flipped), %lld with reference logits NaN/Inf (not compared)\n",
                (long long)S->n_test_nonfinite, (long long)S->n_ref_nonfinite);
    fputc('\n', f);
}

static void put_flip(FILE *f, const struct dv_logits_result *r, const struct dv_vocab *v,
                     const struct dv_logits_row *w, bool color)
{
    char a[160], b[160];
    fprintf(f, "%s  pass %lld, pos %lld: ", DV_TERM_RED(color), (long long)w->pass,
            (long long)w->pos);
    quoted(v, w->ref_top[0].id, 0, a, sizeof a);
    if (w->status == DV_LOGITS_ROW_TEST_NONFINITE) {
        fprintf(f, "test logits not finite (%lld NaN, %lld +inf); ref top-1 %d %s%sp %.4f",
                (long long)w->n_nan, (long long)w->n_posinf, w->ref_top[0].id, a,
                a[0] ? " " : "", w->ref_top[0].p);
    } else {
        quoted(v, w->test_top[0].id, 0, b, sizeof b);
        fprintf(f, "ref top-1 %d %s%sp %.4f -> test top-1 %d %s%sq %.4f; ref's top-1 at "
                "rank %d in q (q %.4f)", w->ref_top[0].id, a, a[0] ? " " : "",
                w->ref_top[0].p, w->test_top[0].id, b, b[0] ? " " : "", w->test_top[0].p,
                w->rank, w->ref_top[0].p + w->dp);
    }
    fprintf(f, "%s\n", DV_TERM_RESET(color));
}

dv_status dv_logits_report_text(FILE *f, const struct dv_logits_result *r,
                                const struct dv_vocab *v, const char *vocab_note,
                                bool color)
{
    put_header(f, r, v, vocab_note);
    put_table(f, r, v, color);
    put_summary(f, r, v);
    const int64_t nf = r->sum.n_flipped;
    fprintf(f, "%sflipped top-1: %lld of %lld positions%s%s\n", DV_TERM_BOLD(color && nf),
            (long long)nf, (long long)r->sum.n_judged, nf ? "" : " (none)",
            DV_TERM_RESET(color && nf));
    for (int64_t i = 0; i < r->n_rows; i++)
        if (flipped(&r->rows[i])) put_flip(f, r, v, &r->rows[i], color);
    if (fflush(f) != 0 || ferror(f)) return dv_fail(DV_E_IO, "writing the report failed");
    return DV_OK;
}

/* ---- JSON --------------------------------------------------------------- */

/* The token's text as a JSON string, or null without a vocab. */
static json_t *jtext(const struct dv_vocab *v, int32_t id)
{
    char raw[256], esc[1024];
    int n = token_bytes(v, id, raw, sizeof raw);
    if (n < 0) return json_null();
    escape(raw, n, true, 0, esc, sizeof esc);
    return json_string(esc);
}

static json_t *jside(const struct dv_logits_side *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i}", "path", s->path, "backend", s->backend,
                     "device", s->device, "inject", s->inject, "n_passes", s->n_passes);
}

static json_t *jtop(const struct dv_logits_result *r, const struct dv_vocab *v,
                    const struct dv_logit_prob *top, bool valid)
{
    if (!valid) return json_null();
    json_t *a = json_array();
    for (int j = 0; a && j < r->k; j++)
        if (json_array_append_new(a, json_pack("{s:i, s:o, s:o}", "id", top[j].id, "text",
                                               jtext(v, top[j].id), "p", dv_jnum(top[j].p)))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *jrow(const struct dv_logits_result *r, const struct dv_vocab *v,
                    const struct dv_logits_row *w)
{
    const bool ok = w->status == DV_LOGITS_ROW_OK;
    return json_pack(
        "{s:I, s:I, s:i, s:i, s:o, s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, "
        "s:o, s:o}",
        "pass", (json_int_t)w->pass, "pos", (json_int_t)w->pos, "t", w->t, "token", w->token,
        "token_text", jtext(v, w->token), "status", dv_logits_row_status_name(w->status),
        "same_top1", w->same_top1, "rank", ok ? json_integer(w->rank) : json_null(),
        "overlap", ok ? json_integer(w->overlap) : json_null(), "kl", dv_jnum(w->kl), "dp",
        dv_jnum(w->dp), "max_abs_dp", dv_jnum(w->max_abs_dp), "max_abs_dp_token",
        ok ? json_integer(w->max_abs_dp_id) : json_null(), "max_abs_dp_text",
        ok ? jtext(v, w->max_abs_dp_id) : json_null(), "n_nan", (json_int_t)w->n_nan,
        "n_posinf", (json_int_t)w->n_posinf, "ref_top",
        jtop(r, v, w->ref_top, w->status != DV_LOGITS_ROW_REF_NONFINITE), "test_top",
        jtop(r, v, w->test_top, w->status != DV_LOGITS_ROW_TEST_NONFINITE));
}

static json_t *jsummary(const struct dv_logits_result *r)
{
    const struct dv_logits_summary *S = &r->sum;
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, "
        "s:o, s:o, s:o, s:o, s:I}",
        "n_positions", (json_int_t)S->n_positions, "n_finite", (json_int_t)S->n_finite,
        "n_test_nonfinite", (json_int_t)S->n_test_nonfinite, "n_ref_nonfinite",
        (json_int_t)S->n_ref_nonfinite, "n_judged", (json_int_t)S->n_judged, "n_same_top1",
        (json_int_t)S->n_same_top1, "n_flipped", (json_int_t)S->n_flipped, "same_top1_frac",
        dv_jnum(S->same_top1_frac), "same_top1_se", dv_jnum(S->same_top1_se), "kl_mean",
        dv_jnum(S->kl_mean), "kl_se", dv_jnum(S->kl_se), "kl_median", dv_jnum(S->kl_median), "kl_p90",
        dv_jnum(S->kl_p90), "kl_p99", dv_jnum(S->kl_p99), "kl_max", dv_jnum(S->kl_max), "kl_max_row",
        (json_int_t)S->kl_max_row, "overlap_frac", dv_jnum(S->overlap_frac), "dp_rms",
        dv_jnum(S->dp_rms), "dp_rms_se", dv_jnum(S->dp_rms_se), "max_abs_dp", dv_jnum(S->max_abs_dp),
        "max_abs_dp_row", (json_int_t)S->max_abs_dp_row);
}

static json_t *jflip(const struct dv_logits_result *r, const struct dv_vocab *v,
                     const struct dv_logits_row *w)
{
    const bool bad = w->status == DV_LOGITS_ROW_TEST_NONFINITE;
    return json_pack("{s:I, s:I, s:s, s:i, s:o, s:o, s:o, s:o}", "pass", (json_int_t)w->pass,
                     "pos", (json_int_t)w->pos,
                     "reason", bad ? "test logits not finite" : "top-1 differs",
                     "ref_top1", w->ref_top[0].id, "ref_top1_text", jtext(v, w->ref_top[0].id),
                     "test_top1", bad ? json_null() : json_integer(w->test_top[0].id),
                     "test_top1_text", bad ? json_null() : jtext(v, w->test_top[0].id),
                     "rank", bad ? json_null() : json_integer(w->rank));
}

/* The arrays of the report: positions, flips, passes compared, passes
 * not compared (new references; NULL returned when any of it fails). */
static json_t *jlists(const struct dv_logits_result *r, const struct dv_vocab *v,
                      json_t **rows, json_t **flips, json_t **passes, json_t **notes)
{
    *rows = json_array(), *flips = json_array(), *passes = json_array(), *notes = json_array();
    bool bad = !*rows || !*flips || !*passes || !*notes;
    for (int64_t i = 0; !bad && i < r->n_rows; i++) {
        bad |= json_array_append_new(*rows, jrow(r, v, &r->rows[i])) != 0;
        if (flipped(&r->rows[i])) bad |= json_array_append_new(*flips, jflip(r, v, &r->rows[i])) != 0;
    }
    for (int i = 0; !bad && i < r->n_passes; i++)
        bad |= json_array_append_new(*passes, json_pack("{s:I, s:I, s:I}", "index",
                                     (json_int_t)r->passes[i].index, "pos0",
                                     (json_int_t)r->passes[i].pos0, "n_tokens",
                                     (json_int_t)r->passes[i].n_tokens)) != 0;
    for (int i = 0; !bad && i < r->n_notes; i++)
        bad |= json_array_append_new(*notes, json_pack("{s:I, s:s, s:s}", "pass",
                                     (json_int_t)r->notes[i].pass, "kind",
                                     dv_logits_note_name(r->notes[i].kind), "detail",
                                     r->notes[i].detail)) != 0;
    return bad ? NULL : *rows;
}

static const char *const definitions =
    "p = softmax(ref logits), q = softmax(test logits), in double. kl: sum p (log p - log q) "
    "from log-softmax. rank: 1-based rank in q of p's top-1. overlap: |top-k(p) & top-k(q)|. "
    "dp: q(a) - p(a), a = p's top-1 (llama.cpp uses the text's next token). max_abs_dp: "
    "max |p - q|. kl_se: sample sd / sqrt(n). Percentiles: linear interpolation between "
    "closest ranks (value at f*(n-1) of the sorted values; llama.cpp's and numpy's). "
    "same_top1_se: sqrt(f (1-f) / (n-1)). dp_rms_se: 0.5 / rms * se(dp^2).";

dv_status dv_logits_report_json(FILE *f, const struct dv_logits_result *r,
                                const struct dv_vocab *v, const char *vocab_note)
{
    json_t *rows, *flips, *passes, *notes;
    json_t *root = NULL;
    if (jlists(r, v, &rows, &flips, &passes, &notes)) {
        root = json_pack("{s:s, s:i, s:o, s:o, s:I, s:i, s:{s:b, s:s}, s:s, s:O, s:O, s:O, "
                         "s:o, s:O}",
                         "schema", "diverge-logits", "version", 1, "test", jside(&r->test),
                         "ref", jside(&r->ref), "n_vocab", (json_int_t)r->n_vocab, "top_k",
                         r->k, "vocab", "used", v != NULL, "note", vocab_note, "definitions",
                         definitions, "passes", passes, "not_compared", notes, "positions",
                         rows, "summary", jsummary(r), "flipped", flips);
    }
    json_decref(rows), json_decref(flips), json_decref(passes), json_decref(notes);
    if (!root) return dv_fail(DV_E_NOMEM, "building the JSON report failed (out of memory)");
    int rc = json_dumpf(root, f, JSON_INDENT(1));
    json_decref(root);
    if (rc != 0 || fputc('\n', f) == EOF || fflush(f) != 0 || ferror(f))
        return dv_fail(DV_E_IO, "writing the report failed");
    return DV_OK;
}
