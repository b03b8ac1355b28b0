/*
 * compare_report.c - a comparison as text and as JSON.
 *
 * The text answers three questions in order: which dumps (header), where
 * the numbers part (per-layer table with the first divergence marked),
 * and whether the drift across layers is normal (growth table: the
 * residual's difference next to its ratio to the noise floor). The JSON
 * carries every row so that scripts never need the text.
 */
#include "compare_report.h"
#include "jsonout.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "term.h"

/* ---- shared phrases ------------------------------------------------------- */

static const struct dv_cmp_pass *pass_of(const struct dv_cmp_result *c, const struct dv_cmp_row *w)
{
    return &c->passes[w->pass];
}

/* "pass 1 (pos0 6, 5 tokens), layer 2, blk.2.kq (kq)" */
static void row_title(const struct dv_cmp_result *c, const struct dv_cmp_row *w, char *buf,
                      size_t size)
{
    const struct dv_cmp_pass *ps = pass_of(c, w);
    char layer[32] = "";
    if (w->layer >= 0) snprintf(layer, sizeof layer, "layer %d, ", w->layer);
    snprintf(buf, size, "pass %lld (pos0 %lld, %lld token%s), %s%s (%s)", (long long)ps->index,
             (long long)ps->pos0, (long long)ps->n_tokens, ps->n_tokens == 1 ? "" : "s", layer,
             w->name, w->op);
}

/* "act_quant auto, kv_type f16" of a side, or "undeclared". */
static void arith_of(const struct dv_cmp_side *s, char *buf, size_t size)
{
    if (!s->act_quant[0] && !s->kv_type[0])
        snprintf(buf, size, "undeclared arithmetic");
    else
        snprintf(buf, size, "act_quant %s, attn_quant %s, kv_type %s",
                 s->act_quant[0] ? s->act_quant : "?", s->attn_quant[0] ? s->attn_quant : "?",
                 s->kv_type[0] ? s->kv_type : "?");
}

/* What the declared arithmetic says about a divergence (compare.h's
 * `explained`): "" when the test rounds as the reference does. */
static void declared_why(const struct dv_cmp_result *c, char *buf, size_t size)
{
    buf[0] = 0;
    if (!c->arith_differs) return;
    char t[96], r[96];
    arith_of(&c->test, t, sizeof t);
    arith_of(&c->ref, r, sizeof r);
    if (c->explained)
        snprintf(buf, size, "; explained by declared arithmetic: the test declares %s, the "
                 "reference %s, and every diverged tensor is within the %g that arithmetic "
                 "gives (worst %.3g): judge the rest against a reference that emulates it "
                 "(diverge run --backend cpu and cpu-f64 --act-quant %s --attn-quant %s "
                 "--kv-type %s)", t, r, DV_CMP_DECLARED_BOUND, c->worst_err, c->test.act_quant,
                 c->test.attn_quant[0] ? c->test.attn_quant : "auto", c->test.kv_type);
    else
        snprintf(buf, size, "; the test also declares other arithmetic (%s; the reference "
                 "%s), but that explains errors up to %g, not %.3g", t, r,
                 DV_CMP_DECLARED_BOUND, c->worst_err);
}

void dv_cmp_verdict_line(const struct dv_cmp_result *c, char *buf, int size)
{
    char title[256];
    switch (dv_cmp_verdict(c)) {
    case DV_VERDICT_BROKEN: {
        const struct dv_cmp_row *w = &c->rows[c->first_broken];
        char where[128];
        row_title(c, w, title, sizeof title);
        dv_cmp_where_format(&w->broken_at, where, sizeof where);
        snprintf(buf, (size_t)size, "%s: %s: %s, the first at %s is %g; %lld of %lld tensors "
                 "are broken: nothing to judge the test against",
                 w->broken == DV_BROKEN_REF ? c->ref.path : c->oracle.path, title, w->why,
                 where, w->broken_value, (long long)c->n_broken,
                 (long long)(c->n_broken + c->n_compared));
        break;
    }
    case DV_VERDICT_DIVERGED: {
        row_title(c, &c->rows[c->first], title, sizeof title);
        char shapes[48] = "", why[640] = "";
        if (c->n_shape) snprintf(shapes, sizeof shapes, ", %lld shapes differ", (long long)c->n_shape);
        declared_why(c, why, sizeof why);
        snprintf(buf, (size_t)size, "DIVERGED at %s: %lld of %lld compared tensors past the "
                 "policy%s%s", title, (long long)c->n_diverged, (long long)c->n_compared, shapes,
                 why);
        break;
    }
    case DV_VERDICT_INCOMPARABLE: {
        long long other = 0;
        for (int i = 0; i < c->n_passes; i++)
            other += c->passes[i].status == DV_PASS_SCHEDULE ||
                     c->passes[i].status == DV_PASS_TOKENS;
        if (!c->n_compared)
            snprintf(buf, (size_t)size, "incomparable: the dumps have no tensor in common "
                     "(%lld of %d passes ran other tokens or another schedule)", other,
                     c->n_passes);
        else
            snprintf(buf, (size_t)size, "incomparable: %lld tensors agree, but %lld of %d "
                     "passes ran other tokens or another schedule", (long long)c->n_compared,
                     other, c->n_passes);
        break;
    }
    default: {
        const struct dv_cmp_row *w = &c->rows[c->worst];
        char declared[256] = "", a[96];
        double worst = -1;
        for (int i = 0; i < c->n_rows; i++)
            if (c->rows[i].has_declared && c->rows[i].err_declared > worst)
                worst = c->rows[i].err_declared;
        arith_of(&c->ref, a, sizeof a);
        if (worst >= 0)
            snprintf(declared, sizeof declared, "; the declared arithmetic (%s) alone moves "
                     "tensors up to %.3g from exact", a, worst);
        snprintf(buf, (size_t)size, "agree: %lld tensors within %s (worst %.3g of the "
                 "limit: pass %lld %s)%s", (long long)c->n_compared,
                 c->has_oracle ? "the noise floor" : "the policy's limits", w->ratio,
                 (long long)pass_of(c, w)->index, w->name, declared);
        break;
    }
    }
}

/* ---- text ------------------------------------------------------------------ */

static void side_line(FILE *f, const char *label, const struct dv_cmp_side *s)
{
    fprintf(f, "%-8s %s: %s", label, s->path, s->backend[0] ? s->backend : "?");
    if (s->device[0]) fprintf(f, " on %s", s->device);
    if (s->inject[0]) fprintf(f, ", fault %s", s->inject);
    if (s->act_quant[0] || s->kv_type[0]) {
        char a[96];
        arith_of(s, a, sizeof a);
        fprintf(f, "; %s", a);
    }
    fputc('\n', f);
}

static void header(FILE *f, const struct dv_cmp_result *c)
{
    side_line(f, "test", &c->test);
    side_line(f, "ref", &c->ref);
    if (c->has_oracle) side_line(f, "oracle", &c->oracle);
    if (c->has_exact) side_line(f, "exact", &c->exact);
    fprintf(f, "%-8s %s%s\n", "model", c->ref.model[0] ? c->ref.model : "?",
            c->same_model ? " (both dumps)"
                          : c->test.model_sha256[0] && c->ref.model_sha256[0]
                                ? " (the test ran another model!)" : "");
    if (c->has_oracle)
        fprintf(f, "%-8s %s; a tensor diverges when err(test, oracle) > m err(ref, oracle) "
                "+ floor\n", "policy", c->policy);
    else
        fprintf(f, "%-8s %s; fixed limits against the reference (--oracle gives a "
                "noise floor)\n", "policy", c->policy);
    fprintf(f, "%-8s", "passes");
    for (int i = 0; i < c->n_passes; i++)
        fprintf(f, "%s%lld:%lld+%lld", i ? ", " : " ", (long long)c->passes[i].index,
                (long long)c->passes[i].pos0, (long long)c->passes[i].n_tokens);
    fprintf(f, "  (index:pos0+tokens)\n");
}

static void alignment(FILE *f, const struct dv_cmp_result *c, bool all)
{
    for (int i = 0; i < c->n_passes; i++) {
        const struct dv_cmp_pass *ps = &c->passes[i];
        switch (ps->status) {
        case DV_PASS_SCHEDULE:
            fprintf(f, "pass %lld: schedule differs: test pos0 %lld, %lld tokens; reference "
                    "pos0 %lld, %lld tokens (not compared)\n", (long long)ps->index,
                    (long long)ps->test_pos0, (long long)ps->test_n_tokens,
                    (long long)ps->pos0, (long long)ps->n_tokens);
            break;
        case DV_PASS_TOKENS:
            fprintf(f, "pass %lld: token ids differ from t=%lld on (not compared)\n",
                    (long long)ps->index, (long long)ps->first_token_diff);
            break;
        case DV_PASS_MISSING:
            fprintf(f, "pass %lld: only in the reference\n", (long long)ps->index);
            break;
        case DV_PASS_EXTRA:
            fprintf(f, "pass %lld: only in the test\n", (long long)ps->index);
            break;
        }
    }
    int shown = 0, hidden = 0;
    for (int i = 0; i < c->n_rows; i++) {
        const struct dv_cmp_row *w = &c->rows[i];
        if (w->status != DV_ROW_MISSING && w->status != DV_ROW_EXTRA && w->status != DV_ROW_SHAPE)
            continue;
        if (c->passes[w->pass].status == DV_PASS_MISSING || c->passes[w->pass].status == DV_PASS_EXTRA)
            continue; /* said per pass above */
        if (!all && shown == 10) {
            hidden++;
            continue;
        }
        shown++;
        fprintf(f, "pass %lld %s: %s", (long long)c->passes[w->pass].index, w->name,
                w->status == DV_ROW_MISSING ? "only in the reference\n"
                : w->status == DV_ROW_EXTRA ? "only in the test\n" : "shape differs: test [");
        if (w->status == DV_ROW_SHAPE) {
            for (int d = 0; d < w->test_n_dims; d++)
                fprintf(f, "%s%lld", d ? ", " : "", (long long)w->test_shape[d]);
            fprintf(f, "], reference [");
            for (int d = 0; d < w->n_dims; d++)
                fprintf(f, "%s%lld", d ? ", " : "", (long long)w->shape[d]);
            fprintf(f, "]\n");
        }
    }
    if (hidden) fprintf(f, "... and %d more alignment problems (--all lists them)\n", hidden);
    if (c->n_missing + c->n_extra + c->n_shape + c->n_skipped)
        fprintf(f, "alignment: %lld compared, %lld only in the reference, %lld only in the "
                "test, %lld shapes differ, %lld in passes not compared\n",
                (long long)c->n_compared, (long long)c->n_missing, (long long)c->n_extra,
                (long long)c->n_shape, (long long)c->n_skipped);
}

static void fmt_ratio(char *buf, size_t size, double r)
{
    if (isinf(r))
        snprintf(buf, size, "inf");
    else
        snprintf(buf, size, "%.3g", r);
}

static void layer_table(FILE *f, const struct dv_cmp_result *c, bool color)
{
    fprintf(f, "\nper layer: the worst tensor over all passes (ratio: its figure over its "
            "limit; > 1 diverges)\n");
    fprintf(f, "%6s %5s  %-22s %10s %10s %13s %7s %9s\n", "layer", "pass", "tensor", "nmse",
            "max_abs", "cos", "nonfin", "ratio");
    for (int l = 0; l < c->n_layers; l++) {
        const struct dv_cmp_layer *ly = &c->layers[l];
        if (ly->worst < 0) continue;
        const struct dv_cmp_row *w = &c->rows[ly->worst];
        char layer[16], ratio[32];
        if (ly->layer >= 0)
            snprintf(layer, sizeof layer, "%d", ly->layer);
        else
            snprintf(layer, sizeof layer, "out");
        fmt_ratio(ratio, sizeof ratio, w->ratio);
        bool bad = w->status == DV_ROW_DIVERGED || w->status == DV_ROW_SHAPE;
        char mark[96] = "";
        if (ly->first_divergence && ly->worst == c->first)
            snprintf(mark, sizeof mark, "  <- first divergence");
        else if (ly->first_divergence)
            snprintf(mark, sizeof mark, "  <- first divergence: pass %lld %s",
                     (long long)pass_of(c, &c->rows[c->first])->index, c->rows[c->first].name);
        if (w->status == DV_ROW_SHAPE)
            fprintf(f, "%s%6s %5lld  %-22s %10s %10s %13s %7s %9s%s%s\n", DV_TERM_RED(color),
                    layer, (long long)pass_of(c, w)->index, w->name, "shape", "-", "-", "-",
                    ratio, mark, DV_TERM_RESET(color));
        else
            fprintf(f, "%s%6s %5lld  %-22s %10.3g %10.3g %13.9f %7lld %9s%s%s\n",
                    bad ? DV_TERM_RED(color) : "", layer, (long long)pass_of(c, w)->index,
                    w->name, dv_metrics_nmse(&w->m), w->m.max_abs, dv_metrics_cos(&w->m),
                    (long long)w->m.mismatch, ratio, mark, bad ? DV_TERM_RESET(color) : "");
    }
}

static void growth_table(FILE *f, const struct dv_cmp_result *c)
{
    double first = -1;
    bool any = false;
    for (int l = 0; l < c->n_layers; l++) any |= c->layers[l].has_growth;
    if (!any) return;
    fprintf(f, "\nresidual growth: blk.L.out over all passes (x L0: diff rms over the first "
            "layer's)\n");
    fprintf(f, "%6s %11s %11s %11s %9s %9s\n", "layer", "ref rms", "diff rms", "diff/ref",
            "x L0", "ratio");
    for (int l = 0; l < c->n_layers; l++) {
        const struct dv_cmp_layer *ly = &c->layers[l];
        if (!ly->has_growth) continue;
        if (first < 0) first = ly->diff_rms;
        char ratio[32], grow[32];
        fmt_ratio(ratio, sizeof ratio, ly->growth_ratio);
        if (first > 0)
            snprintf(grow, sizeof grow, "%.3g", ly->diff_rms / first);
        else
            snprintf(grow, sizeof grow, "-");
        fprintf(f, "%6d %11.4g %11.4g %11.3g %9s %9s\n", ly->layer, ly->ref_rms, ly->diff_rms,
                ly->ref_rms > 0 ? ly->diff_rms / ly->ref_rms : 0.0, grow, ratio);
    }
}

static void row_line(FILE *f, const struct dv_cmp_result *c, const struct dv_cmp_row *w,
                     bool color)
{
    char ratio[32], where[128];
    fmt_ratio(ratio, sizeof ratio, w->ratio);
    dv_cmp_where_format(&w->max_at, where, sizeof where);
    bool bad = w->status == DV_ROW_DIVERGED || w->status == DV_ROW_SHAPE;
    fprintf(f, "%s%4lld %-22s %-9s %-8s", bad ? DV_TERM_RED(color) : "",
            (long long)pass_of(c, w)->index, w->name, w->op, dv_row_status_name(w->status));
    if (w->status == DV_ROW_OK || w->status == DV_ROW_DIVERGED) {
        fprintf(f, " %10.3g %10.3g %13.9f %7lld %9s", dv_metrics_nmse(&w->m), w->m.max_abs,
                dv_metrics_cos(&w->m), (long long)w->m.mismatch, ratio);
        if (w->has_oracle)
            fprintf(f, " %10.3g %10.3g", w->err_test, w->err_ref);
        else if (c->has_oracle)
            fprintf(f, " %10s %10s", "-", "-");
        if (w->has_declared)
            fprintf(f, " %10.3g", w->err_declared);
        else if (c->has_exact)
            fprintf(f, " %10s", "-");
        fprintf(f, " %s", where);
    }
    if (w->why[0]) fprintf(f, "  %s", w->why);
    fprintf(f, "%s\n", bad ? DV_TERM_RESET(color) : "");
}

static void all_rows(FILE *f, const struct dv_cmp_result *c, bool color)
{
    fprintf(f, "\nevery tensor\n%4s %-22s %-9s %-8s %10s %10s %13s %7s %9s", "pass", "tensor",
            "op", "status", "nmse", "max_abs", "cos", "nonfin", "ratio");
    if (c->has_oracle) fprintf(f, " %10s %10s", "err_test", "err_ref");
    if (c->has_exact) fprintf(f, " %10s", "declared");
    fprintf(f, " max_abs at\n");
    for (int i = 0; i < c->n_rows; i++) row_line(f, c, &c->rows[i], color);
}

/* The two residuals (compare.h): what the declared arithmetic moves
 * (err(ref, exact)) and what is left of the test (err(test, ref)), at
 * their worst and at the logits of the last compared pass. */
static void declared_table(FILE *f, const struct dv_cmp_result *c)
{
    if (!c->has_exact) return;
    int worst_d = -1, worst_t = -1, logits = -1;
    for (int i = 0; i < c->n_rows; i++) {
        const struct dv_cmp_row *w = &c->rows[i];
        if (!w->has_declared) continue;
        if (worst_d < 0 || w->err_declared > c->rows[worst_d].err_declared) worst_d = i;
        double e = dv_metrics_rel_rms(&w->m);
        if (worst_t < 0 || e > dv_metrics_rel_rms(&c->rows[worst_t].m)) worst_t = i;
        if (!strcmp(w->name, "logits")) logits = i;
    }
    if (worst_d < 0) return;
    char a[96];
    arith_of(&c->ref, a, sizeof a);
    fprintf(f, "\ndeclared arithmetic (%s) against exact float64, and the test against it "
            "(rel rms)\n", a);
    fprintf(f, "%-28s %-22s %11s\n", "residual", "where", "rel rms");
    const struct { const char *what; int row; bool declared; } r[] = {
        {"err(ref, exact)  declared", worst_d, true},
        {"err(ref, exact)  declared", logits, true},
        {"err(test, ref)   left", worst_t, false},
        {"err(test, ref)   left", logits, false},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        if (r[i].row < 0) continue;
        const struct dv_cmp_row *w = &c->rows[r[i].row];
        char where[96];
        snprintf(where, sizeof where, "pass %lld %s", (long long)pass_of(c, w)->index, w->name);
        fprintf(f, "%-28s %-22s %11.3g\n", r[i].what, where,
                r[i].declared ? w->err_declared : dv_metrics_rel_rms(&w->m));
    }
}

static void first_divergence(FILE *f, const struct dv_cmp_result *c)
{
    if (c->first < 0) return;
    const struct dv_cmp_row *w = &c->rows[c->first];
    char title[256], where[128];
    row_title(c, w, title, sizeof title);
    fprintf(f, "\nfirst divergence: %s\n  %s\n", title, w->why);
    if (w->bad_at.flat >= 0) {
        dv_cmp_where_format(&w->bad_at, where, sizeof where);
        fprintf(f, "  first non-finite mismatch at %s: test %g, ref %g (%lld in the tensor)\n",
                where, w->m.mismatch_test, w->m.mismatch_ref, (long long)w->m.mismatch);
    }
    if (w->status == DV_ROW_DIVERGED && w->m.n_used) {
        char finite[64] = "";
        if (w->m.n_used < w->m.n)
            snprintf(finite, sizeof finite, " (of the %lld pairs finite on both sides)",
                     (long long)w->m.n_used);
        dv_cmp_where_format(&w->max_at, where, sizeof where);
        fprintf(f, "  largest |test - ref| %.4g at %s%s; nmse %.3g, cos %.9f, max_rel %.3g, "
                "ulp_max %llu, %lld of %lld values outside isclose\n", w->m.max_abs, where,
                finite, dv_metrics_nmse(&w->m), dv_metrics_cos(&w->m), w->m.max_rel,
                (unsigned long long)w->m.ulp_max, (long long)w->m.viol, (long long)w->m.n);
    }
    if (w->has_oracle)
        fprintf(f, "  err(test, oracle) %.3g, err(ref, oracle) %.3g, limit %.3g = %g x %.3g + "
                "%.3g\n", w->err_test, w->err_ref, w->limit, w->tol.oracle_m, w->err_ref,
                w->tol.oracle_floor);
}

int dv_cmp_report_text(FILE *f, const struct dv_cmp_result *c, bool all, bool color)
{
    header(f, c);
    alignment(f, c, all);
    layer_table(f, c, color);
    growth_table(f, c);
    if (all) all_rows(f, c, color);
    declared_table(f, c);
    first_divergence(f, c);
    char verdict[1024];
    dv_cmp_verdict_line(c, verdict, sizeof verdict);
    enum dv_verdict v = dv_cmp_verdict(c);
    fprintf(f, "\n%s%s%s\n", v == DV_VERDICT_AGREE ? DV_TERM_GREEN(color) : DV_TERM_RED(color),
            verdict, DV_TERM_RESET(color));
    fflush(f);
    return ferror(f) ? -1 : 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static json_t *jside(const struct dv_cmp_side *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "path", s->path,
                     "backend", s->backend, "device", s->device, "model", s->model,
                     "model_sha256", s->model_sha256, "inject", s->inject, "act_quant",
                     s->act_quant, "act_quant_types", s->act_types, "attn_quant",
                     s->attn_quant, "kv_type", s->kv_type);
}

static json_t *jrow(const struct dv_cmp_result *c, const struct dv_cmp_row *w)
{
    const struct dv_cmp_pass *ps = pass_of(c, w);
    json_t *o = json_pack("{s:I, s:I, s:I, s:s, s:i, s:s, s:I, s:s, s:o}", "pass",
                          (json_int_t)ps->index, "pos0", (json_int_t)ps->pos0, "n_tokens",
                          (json_int_t)ps->n_tokens, "name", w->name, "layer", w->layer, "op",
                          w->op, "order", (json_int_t)w->order, "status",
                          dv_row_status_name(w->status), "shape", dv_jshape(w->n_dims, w->shape));
    if (w->status == DV_ROW_SHAPE)
        json_object_set_new(o, "test_shape", dv_jshape(w->test_n_dims, w->test_shape));
    if (w->status == DV_ROW_OK || w->status == DV_ROW_DIVERGED || w->status == DV_ROW_BROKEN) {
        json_object_set_new(o, "metrics", dv_jmetrics(&w->m));
        json_object_set_new(o, "max_abs_at", dv_jwhere(&w->max_at));
        json_object_set_new(o, "nonfinite_at", dv_jwhere(&w->bad_at));
        json_object_set_new(o, "nonfinite", dv_jnonfinite(w));
        json_object_set_new(o, "broken", dv_jbroken(w));
        json_object_set_new(o, "tolerance", dv_jtolerance(&w->tol));
        json_object_set_new(o, "oracle", w->has_oracle
            ? json_pack("{s:o, s:o, s:o}", "err_test", dv_jnum(w->err_test), "err_ref",
                        dv_jnum(w->err_ref), "limit", dv_jnum(w->limit))
            : json_null());
        json_object_set_new(o, "err_declared", w->has_declared ? dv_jnum(w->err_declared)
                                                               : json_null());
    }
    if (w->status != DV_ROW_MISSING && w->status != DV_ROW_EXTRA &&
        w->status != DV_ROW_SKIPPED && w->status != DV_ROW_BROKEN)
        json_object_set_new(o, "ratio", dv_jnum(w->ratio));
    json_object_set_new(o, "why", json_string(w->why));
    return o;
}

static json_t *jpasses(const struct dv_cmp_result *c)
{
    json_t *a = json_array();
    for (int i = 0; i < c->n_passes; i++) {
        const struct dv_cmp_pass *p = &c->passes[i];
        json_array_append_new(a, json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "index",
            (json_int_t)p->index, "status", dv_pass_status_name(p->status), "pos0",
            (json_int_t)p->pos0, "n_tokens", (json_int_t)p->n_tokens, "test_pos0",
            (json_int_t)p->test_pos0, "test_n_tokens", (json_int_t)p->test_n_tokens,
            "first_token_diff", (json_int_t)p->first_token_diff));
    }
    return a;
}

static json_t *jlayers(const struct dv_cmp_result *c)
{
    json_t *a = json_array();
    for (int l = 0; l < c->n_layers; l++) {
        const struct dv_cmp_layer *ly = &c->layers[l];
        if (ly->worst < 0 && !ly->has_growth) continue;
        json_t *o = json_pack("{s:i, s:b}", "layer", ly->layer, "first_divergence",
                              ly->first_divergence);
        json_object_set_new(o, "worst", ly->worst < 0 ? json_null() : json_pack(
            "{s:i, s:s}", "row", ly->worst, "name", c->rows[ly->worst].name));
        json_object_set_new(o, "growth", !ly->has_growth ? json_null() : json_pack(
            "{s:o, s:o, s:o}", "ref_rms", dv_jnum(ly->ref_rms), "diff_rms", dv_jnum(ly->diff_rms),
            "ratio", dv_jnum(ly->growth_ratio)));
        json_array_append_new(a, o);
    }
    return a;
}

int dv_cmp_report_json(FILE *f, const struct dv_cmp_result *c)
{
    static const char *const verdicts[] = {"agree", "diverged", "incomparable", "broken"};
    _Static_assert(sizeof verdicts / sizeof verdicts[0] == DV_VERDICT_COUNT, "verdicts");
    char line[1024];
    dv_cmp_verdict_line(c, line, sizeof line);
    json_t *rows = json_array();
    for (int i = 0; i < c->n_rows; i++) json_array_append_new(rows, jrow(c, &c->rows[i]));
    json_t *root = json_pack("{s:s, s:i, s:o, s:o, s:o, s:s}", "schema", "diverge-compare",
                             "version", 1, "test", jside(&c->test), "ref", jside(&c->ref),
                             "oracle", c->has_oracle ? jside(&c->oracle) : json_null(),
                             "policy", c->policy);
    json_object_set_new(root, "exact", c->has_exact ? jside(&c->exact) : json_null());
    json_object_set_new(root, "declared", json_pack("{s:b, s:b, s:o, s:f}", "differs",
                        c->arith_differs, "explained", c->explained, "worst_err",
                        dv_jnum(c->worst_err), "bound", DV_CMP_DECLARED_BOUND));
    json_object_set_new(root, "passes", jpasses(c));
    json_object_set_new(root, "tensors", rows);
    json_object_set_new(root, "layers", jlayers(c));
    json_object_set_new(root, "first_divergence", c->first < 0 ? json_null()
                                                  : json_integer(c->first));
    json_object_set_new(root, "worst", c->worst < 0 ? json_null() : json_integer(c->worst));
    json_object_set_new(root, "summary", json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "compared", (json_int_t)c->n_compared,
        "diverged", (json_int_t)c->n_diverged, "shape", (json_int_t)c->n_shape, "missing",
        (json_int_t)c->n_missing, "extra", (json_int_t)c->n_extra, "skipped",
        (json_int_t)c->n_skipped, "pass_mismatches", (json_int_t)c->n_pass_mismatch,
        "broken", (json_int_t)c->n_broken));
    json_object_set_new(root, "verdict", json_string(verdicts[dv_cmp_verdict(c)]));
    json_object_set_new(root, "verdict_line", json_string(line));
    int rc = json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    fputc('\n', f);
    fflush(f);
    return rc || ferror(f) ? -1 : 0;
}
