/*
 * bisect_report.c - a bisection as text or JSON (bisect_report.h).
 *
 * "err" is the relative RMS difference to the reference,
 * rms(test - ref) / rms(ref); "ratio" is a tensor's figure over its limit
 * (the oracle's noise floor, or the policy's fixed limits), > 1 diverges.
 */
#include "bisect_report.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "arith.h"
#include "engine.h"
#include "jsonout.h"
#include "term.h"
#include "types.h"

static void fmt_num(char *buf, size_t size, double v)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
    else
        snprintf(buf, size, "%.3g", v);
}

static void header(FILE *f, const struct dv_bisect_header *h, const struct dv_bisect_result *r)
{
    const struct dv_config *c = &h->m->cfg;
    const struct dv_bisect_opts *o = h->o;
    fprintf(f, "model    %s: %s, %lld layers, d_model %lld, %lld heads (%lld kv), vocab %lld, "
            "weights %s\n", h->model_path, c->arch, (long long)c->n_layer,
            (long long)c->d_model, (long long)c->n_head, (long long)c->n_head_kv,
            (long long)c->n_vocab, dv_type_name(r->wtype));
    fprintf(f, "test     %s%s%s\n", r->test_desc, r->inject[0] ? ", inject " : "", r->inject);
    fprintf(f, "ref      %s\n", r->ref_desc);
    fprintf(f, "oracle   %s\n", r->oracle_desc[0] ? r->oracle_desc : "none (the policy's fixed limits)");
    const struct dv_arith *a = &r->arith;
    if (a->act_quant != DV_ACTQ_NONE || a->kv_type != DV_TYPE_F32) {
        char types[256];
        dv_arith_describe(h->m, a->act_quant, types, sizeof types);
        fprintf(f, "arith    the reference and the oracle emulate act-quant %s (%s), attention "
                "rounding %s; KV cache %s on all three%s\n", dv_act_quant_name(a->act_quant),
                types, dv_arith_attn_name(a->act_quant, a->attn_quant, a->kv_type),
                dv_type_name(a->kv_type),
                o->oracle >= 0 ? "; an exact cpu-f64 run gives each tensor its share" : "");
    }
    fprintf(f, "tokens   %d in passes ", o->n_tokens);
    for (int i = 0; i < o->n_pass; i++) fprintf(f, "%s%d", i ? "," : "", o->sched[i]);
    fprintf(f, ":");
    for (int i = 0; i < o->n_tokens && i < 32; i++) fprintf(f, " %d", o->tokens[i]);
    fprintf(f, "%s\n", o->n_tokens > 32 ? " ..." : "");
}

static void pass_table(FILE *f, const struct dv_bisect_result *r, bool color)
{
    fprintf(f, "\n%4s %5s %6s %7s %8s %11s  %s\n", "pass", "pos0", "tokens", "tensors",
            "diverged", "worst ratio", "worst tensor");
    for (int i = 0; i < r->n_pass; i++) {
        const struct dv_bisect_pass *p = &r->passes[i];
        if (p->status == DV_BPASS_NOT_RUN) {
            fprintf(f, "%4d %5d %6d %7s %8s %11s  not run: stopped at the first divergence\n",
                    i, p->pos0, p->n_tokens, "-", "-", "-");
            continue;
        }
        char ratio[32];
        fmt_num(ratio, sizeof ratio, p->worst_ratio);
        const bool bad = p->status == DV_BPASS_DIVERGED;
        fprintf(f, "%4d %5d %6d %7d %s%8d%s %11s  %s%s\n", i, p->pos0, p->n_tokens,
                p->n_tensors, bad ? DV_TERM_RED(color) : "", p->n_diverged,
                bad ? DV_TERM_RESET(color) : "", ratio, p->worst,
                i == r->first_pass ? "  <- first divergent pass" : "");
    }
}

static void first_divergence(FILE *f, const struct dv_bisect_result *r)
{
    const struct dv_cmp_row *w = &r->first;
    const struct dv_bisect_pass *p = &r->passes[r->first_pass];
    char at[96], ratio[32];
    dv_cmp_where_format(&w->max_at, at, sizeof at);
    fmt_num(ratio, sizeof ratio, w->ratio);
    fprintf(f, "\nfirst divergence (where it shows): pass %d (pos0 %d, %d tokens), %s (%s)\n",
            r->first_pass, p->pos0, p->n_tokens, w->name, w->op);
    fprintf(f, "  %s (ratio %s); rel err %.3g, largest |diff| %.3g at %s\n", w->why, ratio,
            dv_metrics_rel_rms(&w->m), w->m.max_abs, at);
    if (w->bad_at.flat >= 0) {
        dv_cmp_where_format(&w->bad_at, at, sizeof at);
        fprintf(f, "  first non-finite mismatch at %s: test %g, ref %g (%lld in the tensor)\n",
                at, w->m.mismatch_test, w->m.mismatch_ref, (long long)w->m.mismatch);
    }
}

static void replay_table(FILE *f, const struct dv_bisect_result *r, bool color)
{
    if (!r->replayable) return; /* the verdict says why */
    const char *test = r->test_desc;
    if (r->by_layer)
        fprintf(f, "\nattribution (where it starts): every layer through the first divergent "
                "one, pass %d, each layer's output against the reference's layer on the "
                "dump's own input (the dump holds no more)\n", r->replay_pass);
    else if (r->from_dump)
        fprintf(f, "\nattribution (where it starts): %s%d of pass %d, each op's output in the "
                "dump against the reference's op on the dump's own inputs\n",
                r->replay_layer >= 0 ? "layer " : "the output ops, ", r->replay_layer,
                r->replay_pass);
    else
        fprintf(f, "\nop replay (where it starts): %s%d of pass %d, each op alone on %.*s "
                "with the reference's inputs\n", r->replay_layer >= 0 ? "layer " :
                "the output ops, ", r->replay_layer, r->replay_pass, (int)strcspn(test, " "),
                test);
    fprintf(f, "  %-20s %-8s %10s %9s %10s %10s %9s  %s\n", "tensor", "op",
            r->from_dump ? "local err" : "alone err", "ratio", "full err", "input err",
            "amplif.", "role");
    for (int k = 0; k < r->n_ops; k++) {
        const struct dv_replay_op *op = &r->ops[k];
        char ae[32] = "-", ar[32] = "-", fe[32] = "-", ie[32] = "-", am[32] = "-";
        if (op->role != DV_ROLE_NONE && op->role != DV_ROLE_UNDUMPED &&
            op->role != DV_ROLE_NOREPLAY) {
            fmt_num(ae, sizeof ae, dv_metrics_rel_rms(&op->iso.m));
            fmt_num(ar, sizeof ar, op->iso.ratio);
            fmt_num(ie, sizeof ie, op->in_err);
        }
        if (op->full.m.n) fmt_num(fe, sizeof fe, dv_metrics_rel_rms(&op->full.m));
        if (op->role != DV_ROLE_UNDUMPED && op->role != DV_ROLE_NOREPLAY)
            fmt_num(am, sizeof am, op->amp);
        const bool hot = op->role == DV_ROLE_CULPRIT || op->role == DV_ROLE_ALSO;
        fprintf(f, "  %-20s %-8s %10s %s%9s%s %10s %10s %9s  %s%s%s\n", op->name, op->op, ae,
                hot ? DV_TERM_RED(color) : "", ar, hot ? DV_TERM_RESET(color) : "", fe, ie, am,
                hot ? DV_TERM_BOLD(color) : "", dv_replay_role_name(op->role),
                hot ? DV_TERM_RESET(color) : "");
    }
    if (r->culprit < 0) return;
    const struct dv_replay_op *c = &r->ops[r->culprit];
    if (!c->n_top) return;
    /* a dump's op is its own output against the reference on its inputs */
    const char *alone = r->from_dump ? " test" : "alone";
    fprintf(f, "  %s %s(inputs: %s), largest |%s - ref|:\n", c->name,
            r->from_dump ? "" : "alone ", c->inputs, r->from_dump ? "test" : "alone");
    for (int k = 0; k < c->n_top; k++) {
        char at[96];
        dv_cmp_where_format(&c->top[k].at, at, sizeof at);
        fprintf(f, "    %-34s %s %12.6g  ref %12.6g\n", at, alone, c->top[k].test,
                c->top[k].ref);
    }
}

static void split_line(FILE *f, const struct dv_bisect_result *r, int n_layer)
{
    fprintf(f, "\nlayer split (--gpu-layers N, final logits of passes 0-%d):", r->n_run - 1);
    for (int k = 0; k < r->n_probes; k++) {
        char ratio[32];
        fmt_num(ratio, sizeof ratio, r->probes[k].ratio);
        fprintf(f, "%s N=%d %s (%s)", k ? "," : "", r->probes[k].gpu_layers,
                r->probes[k].diverged ? "diverges" : "agrees", ratio);
    }
    if (!r->split_logits_diverged)
        fprintf(f, "\n  the logits agree with every layer on the device\n");
    else if (r->split_first_layer >= n_layer)
        fprintf(f, "\n  -> only output_norm and logits on the device make them diverge\n");
    else
        fprintf(f, "\n  -> layer %d is the first whose move to the device makes them diverge\n",
                r->split_first_layer);
}

/* text after `lead`, wrapped at 78 columns, continuation lines indented. */
static void wrapped(FILE *f, const char *lead, const char *text)
{
    int col = fprintf(f, "%s", lead);
    const char *p = text;
    while (*p) {
        const size_t w = strcspn(p, " ");
        if (col > 2 && col + 1 + (int)w > 78) {
            fprintf(f, "\n  ");
            col = 2;
        } else if (p != text) {
            fputc(' ', f);
            col++;
        }
        col += fprintf(f, "%.*s", (int)w, p);
        p += w;
        while (*p == ' ') p++;
    }
    fputc('\n', f);
}

/* Activation patching: each flipped position and the layer that makes it. */
static void patch_table(FILE *f, const struct dv_bisect_result *r)
{
    fprintf(f, "\nactivation patching (the test from layer L on, fed the reference's "
            "blk.L-1.out; %d patched run%s): %d position%s flip top-1%s\n", r->patch_runs,
            r->patch_runs == 1 ? "" : "s", r->n_flips, r->n_flips == 1 ? "" : "s",
            r->flips_truncated ? " (the first ones listed)" : "");
    if (!r->n_flips) return;
    fprintf(f, "  %4s %5s %9s %9s  %s\n", "pass", "pos", "ref top", "test top",
            "made by (restored by the reference's residual after it)");
    for (int k = 0; k < r->n_flips; k++) {
        const struct dv_patch_flip *x = &r->flips[k];
        fprintf(f, "  %4d %5d %9d %9d  ", x->pass, x->pos, x->ref_top, x->test_top);
        if (x->layer >= 0) fprintf(f, "layer %d\n", x->layer);
        else fprintf(f, "the last layer or the output ops (no patch restores it)\n");
    }
}

int dv_bisect_report_text(FILE *f, const struct dv_bisect_header *h,
                          const struct dv_bisect_result *r, bool color)
{
    header(f, h, r);
    pass_table(f, r, color);
    if (r->first_pass >= 0) {
        first_divergence(f, r);
        replay_table(f, r, color);
        if (r->split_run) split_line(f, r, (int)h->m->cfg.n_layer);
    }
    if (r->patch_run) patch_table(f, r);
    if (r->case_path[0])
        fprintf(f, "\ncase     %s: %s alone, its inputs and its output as the test gave it; "
                "judge it again with diverge bisect %s --test-dump %s\n", r->case_path,
                r->ops[r->culprit].name, h->model_path, r->case_path);
    if (r->n_all || (r->first_pass >= 0 && h->o->all_culprits)) {
        fprintf(f, "\nall culprits (every op that diverges alone, first pass each%s): %d\n",
                r->all_truncated ? "; the first ones" : "", r->n_all);
        for (int k = 0; k < r->n_all; k++)
            fprintf(f, "  pass %d  %-20s %-8s rel err %.3g, %.3g x its limit\n",
                    r->all[k].pass, r->all[k].name, r->all[k].op, r->all[k].rel,
                    r->all[k].ratio);
    }
    const bool bad = r->first_pass >= 0;
    fprintf(f, "\n%s", bad ? DV_TERM_RED(color) : DV_TERM_GREEN(color));
    wrapped(f, bad ? "DIVERGED: " : "clean: ", r->verdict);
    fprintf(f, "%s", DV_TERM_RESET(color));
    fprintf(f, "time     live run %.2f s, op replay %.2f s, layer split %.2f s", r->run_s,
            r->replay_s, r->split_s);
    if (r->patch_run) fprintf(f, ", patching %.2f s", r->patch_s);
    fputc('\n', f);
    fflush(f);
    return ferror(f) ? -1 : 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static json_t *jrow(const struct dv_cmp_row *w)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "tensor", w->name,
                          "layer", w->layer, "op", w->op, "status",
                          dv_row_status_name(w->status), "rel_err",
                          dv_jnum(dv_metrics_rel_rms(&w->m)), "ratio", dv_jnum(w->ratio),
                          "max_abs", dv_jnum(w->m.max_abs), "max_abs_at",
                          dv_jwhere(&w->max_at), "why", w->why);
    json_object_set_new(o, "oracle", w->has_oracle
        ? json_pack("{s:o, s:o, s:o}", "err_test", dv_jnum(w->err_test), "err_ref",
                    dv_jnum(w->err_ref), "limit", dv_jnum(w->limit))
        : json_null());
    json_object_set_new(o, "nonfinite_at", dv_jwhere(&w->bad_at));
    json_object_set_new(o, "nonfinite", dv_jnonfinite(w));
    return o;
}

static json_t *jops(const struct dv_bisect_result *r)
{
    json_t *a = json_array();
    for (int k = 0; k < r->n_ops; k++) {
        const struct dv_replay_op *op = &r->ops[k];
        json_t *top = json_array();
        for (int j = 0; j < op->n_top; j++)
            json_array_append_new(top, json_pack("{s:o, s:o, s:o}", "at",
                dv_jwhere(&op->top[j].at), "alone", dv_jnum(op->top[j].test), "ref",
                dv_jnum(op->top[j].ref)));
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}",
            "tensor", op->name, "op", op->op, "inputs", op->inputs, "role",
            dv_replay_role_name(op->role), "alone",
            op->role == DV_ROLE_NONE ? json_null() : jrow(&op->iso), "full", jrow(&op->full),
            "input_err", op->role == DV_ROLE_NONE ? json_null() : dv_jnum(op->in_err),
            "amplification", dv_jnum(op->amp), "top", top));
    }
    return a;
}

static json_t *jsplit(const struct dv_bisect_result *r)
{
    if (!r->split_run) return json_null();
    json_t *probes = json_array();
    for (int k = 0; k < r->n_probes; k++)
        json_array_append_new(probes, json_pack("{s:i, s:b, s:o}", "gpu_layers",
            r->probes[k].gpu_layers, "diverged", r->probes[k].diverged, "ratio",
            dv_jnum(r->probes[k].ratio)));
    return json_pack("{s:b, s:o, s:o}", "logits_diverged", r->split_logits_diverged,
                     "first_layer", r->split_logits_diverged ? json_integer(r->split_first_layer)
                                                             : json_null(),
                     "probes", probes);
}

int dv_bisect_report_json(FILE *f, const struct dv_bisect_header *h,
                          const struct dv_bisect_result *r)
{
    const struct dv_bisect_opts *o = h->o;
    json_t *tokens = json_array(), *sched = json_array(), *passes = json_array();
    for (int i = 0; i < o->n_tokens; i++) json_array_append_new(tokens, json_integer(o->tokens[i]));
    for (int i = 0; i < o->n_pass; i++) json_array_append_new(sched, json_integer(o->sched[i]));
    static const char *status[] = {"clean", "diverged", "not run"};
    for (int i = 0; i < r->n_pass; i++) {
        const struct dv_bisect_pass *p = &r->passes[i];
        json_array_append_new(passes, json_pack("{s:i, s:i, s:i, s:s, s:i, s:i, s:o, s:s}",
            "index", i, "pos0", p->pos0, "n_tokens", p->n_tokens, "status", status[p->status],
            "n_tensors", p->n_tensors, "n_diverged", p->n_diverged, "worst_ratio",
            p->status == DV_BPASS_NOT_RUN ? json_null() : dv_jnum(p->worst_ratio),
            "worst_tensor", p->worst));
    }
    json_t *first = json_null(), *replay = json_null();
    if (r->first_pass >= 0) {
        first = jrow(&r->first);
        json_object_set_new(first, "pass", json_integer(r->first_pass));
        json_object_set_new(first, "pos0", json_integer(r->passes[r->first_pass].pos0));
        replay = json_pack("{s:i, s:i, s:o, s:o}", "pass", r->replay_pass, "layer",
                           r->replay_layer, "culprit",
                           r->culprit >= 0 ? json_string(r->ops[r->culprit].name) : json_null(),
                           "ops", jops(r));
    }
    json_t *root = json_pack(
        "{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:b,"
        " s:{s:f, s:f, s:f}}",
        "schema", "diverge-bisect", "version", 1, "model", h->model_path, "weights",
        dv_type_name(r->wtype), "test", r->test_desc, "ref", r->ref_desc, "oracle",
        r->oracle_desc, "inject", r->inject, "tokens", tokens, "passes_schedule", sched,
        "passes", passes, "first_divergence", first, "replay", replay, "layer_split",
        jsplit(r), "verdict", r->verdict, "diverged", r->first_pass >= 0, "seconds", "run",
        r->run_s, "replay", r->replay_s, "split", r->split_s);
    if (!root) return -1;
    json_object_set_new(root, "replayable", json_boolean(r->replayable));
    json_t *all = json_array();
    for (int k = 0; k < r->n_all; k++)
        json_array_append_new(all, json_pack("{s:i, s:s, s:s, s:o, s:o}", "pass",
                                              r->all[k].pass, "tensor", r->all[k].name, "op",
                                              r->all[k].op, "rel_err", dv_jnum(r->all[k].rel),
                                              "ratio", dv_jnum(r->all[k].ratio)));
    json_object_set_new(root, "all_culprits", h->o->all_culprits ? all : json_null());
    json_object_set_new(root, "case", r->case_path[0] ? json_string(r->case_path) : json_null());
    if (!h->o->all_culprits) json_decref(all);
    if (r->patch_run) {
        json_t *fl = json_array();
        for (int k = 0; k < r->n_flips; k++) {
            const struct dv_patch_flip *x = &r->flips[k];
            json_array_append_new(fl, json_pack("{s:i, s:i, s:i, s:i, s:o}", "pass", x->pass,
                                                 "pos", x->pos, "ref_top", x->ref_top,
                                                 "test_top", x->test_top, "layer",
                                                 x->layer >= 0 ? json_integer(x->layer)
                                                               : json_null()));
        }
        json_object_set_new(root, "patching", json_pack("{s:i, s:b, s:o}", "runs",
                                                        r->patch_runs, "truncated",
                                                        r->flips_truncated, "flips", fl));
    } else {
        json_object_set_new(root, "patching", json_null());
    }
    json_object_set_new(root, "test_dump", r->from_dump ? json_string(r->test_dump)
                                                        : json_null());
    json_object_set_new(root, "attribution", json_string(!r->from_dump ? "replay"
                                                         : r->by_layer ? "layers" : "ops"));
    char types[256];
    const struct dv_arith *a = &r->arith;
    dv_arith_describe(h->m, a->act_quant, types, sizeof types);
    json_object_set_new(root, "arith", json_pack("{s:s, s:s, s:s, s:s}", "act_quant",
                                                 dv_act_quant_name(a->act_quant),
                                                 "act_quant_types", types, "attn_quant",
                                                 dv_arith_attn_name(a->act_quant, a->attn_quant,
                                                                    a->kv_type),
                                                 "kv_type", dv_type_name(a->kv_type)));
    int rc = json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    fputc('\n', f);
    fflush(f);
    return rc || ferror(f) ? -1 : 0;
}
