/*
 * bisect.c - the live run of test, reference and oracle in lockstep, the
 * first divergence, the layer split and the verdict (bisect.h). The op
 * replay is replay.c.
 */
#include "bisect.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "arith.h"
#include "dump.h"
#include "engine.h"
#include "error.h"
#include "ops.h"
#include "reader.h"
#include "types.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *dv_replay_role_name(int role)
{
    static const char *names[] = {"view", "ok", "culprit", "diverges alone too",
                                  "propagated", "not dumped", "not replayed"};
    return role >= 0 && role <= DV_ROLE_NOREPLAY ? names[role] : "?";
}

/* ---- capturing a pass ------------------------------------------------------ */

static void capture_clear(struct dv_capture *c)
{
    for (int i = 0; c->t && i < c->n; i++) {
        free(c->t[i].data);
        c->t[i].data = NULL;
    }
}

static void capture_free(struct dv_capture *c)
{
    capture_clear(c);
    free(c->t);
    c->t = NULL;
}

/* A hook that copies every tensor into a capture and passes the pass on
 * to `next` (a dump sink) when there is one. */
struct tap {
    struct dv_capture *cap;
    const struct dv_hook *next;
    bool next_wants;   /* the tensor being handed over */
};

static dv_status tap_begin(void *u, int pass, int pos0, int n, const int32_t *tokens)
{
    struct tap *t = u;
    capture_clear(t->cap);
    t->cap->pos0 = pos0;
    t->cap->n_tokens = n;
    if (t->next && t->next->begin_pass)
        return t->next->begin_pass(t->next->user, pass, pos0, n, tokens);
    return DV_OK;
}

static bool tap_want(void *u, const struct dv_tensor_desc *d)
{
    struct tap *t = u;
    t->next_wants = t->next && t->next->take &&
                    (!t->next->want || t->next->want(t->next->user, d));
    return true;
}

/* A malloc'd copy of a handed-over tensor's values; *count gets their
 * number. NULL when out of memory. */
static void *copy_values(const struct dv_tensor_desc *d, const void *data, int64_t *count)
{
    int64_t n = 1;
    for (int i = 0; i < d->n_dims; i++) n *= d->shape[i];
    const size_t bytes = (size_t)n * (d->type == DV_TYPE_F64 ? 8 : 4);
    void *v = malloc(bytes ? bytes : 1);
    if (v) memcpy(v, data, bytes);
    *count = n;
    return v;
}

static dv_status tap_take(void *u, const struct dv_tensor_desc *d, const void *data)
{
    struct tap *t = u;
    struct dv_capture *c = t->cap;
    if (d->order < 0 || d->order >= c->n)
        return dv_fail(DV_E_RUNTIME, "tensor %s at order %d of %d", d->name, d->order, c->n);
    struct dv_captured *x = &c->t[d->order];
    int64_t count;
    free(x->data);
    if (!(x->data = copy_values(d, data, &count))) return dv_fail(DV_E_NOMEM, "out of memory");
    snprintf(x->name, sizeof x->name, "%s", d->name);
    x->layer = d->layer;
    x->op = d->op;
    x->n_dims = d->n_dims;
    memcpy(x->shape, d->shape, sizeof x->shape);
    x->count = count;
    c->type = d->type;
    return t->next_wants ? t->next->take(t->next->user, d, data) : DV_OK;
}

static dv_status tap_end(void *u, int pass)
{
    struct tap *t = u;
    if (t->next && t->next->end_pass) return t->next->end_pass(t->next->user, pass);
    return DV_OK;
}

/* ---- one backend of the live run -------------------------------------------- */

/* SIDE_EXACT: the float64 run that emulates nothing, beside a reference
 * and oracle that emulate declared arithmetic (its share of each tensor's
 * error widens the limit: compare.h, dv_cmp_allow_declared). */
enum { SIDE_TEST, SIDE_REF, SIDE_ORACLE, SIDE_EXACT, N_SIDES };
static const char *side_file[N_SIDES] = {"test.h5", "ref.h5", "oracle.h5", "exact.h5"};

struct side {
    int kind;                 /* DV_BACKEND_*, -1 absent */
    struct dv_engine *e;
    const struct dv_reader *dump; /* the test side read from a dump (no engine) */
    struct dv_capture cap;
    struct tap tap;
    struct dv_hook hook;
    struct dv_dump_sink sink;
    struct dv_hook dump_hook;
    char path[4096];
};

static dv_status side_open(struct side *s, const struct dv_model *m,
                           const struct dv_bisect_opts *o, int which, int n_batch,
                           const struct dv_arith *ar, const char *inject, char *desc,
                           size_t dcap)
{
    if (which == SIDE_TEST && o->test_dump) { /* its passes come from the file */
        const struct dv_reader *d = o->test_dump;
        s->dump = d;
        snprintf(desc, dcap, "the dump %s: %s on %s", d->path, dv_reader_str(d, "backend"),
                 dv_reader_str(d, "device"));
        s->cap.n = dv_tensors_per_pass((int)m->cfg.n_layer);
        if (!(s->cap.t = calloc((size_t)s->cap.n, sizeof *s->cap.t)))
            return dv_fail(DV_E_NOMEM, "out of memory");
        s->tap = (struct tap){.cap = &s->cap};
        s->hook = (struct dv_hook){.begin_pass = tap_begin, .want = tap_want,
                                   .take = tap_take, .end_pass = tap_end, .user = &s->tap};
        return DV_OK;
    }
    /* the test engine declares its own arithmetic; the reference and the
     * oracle emulate *ar (arith.h), the exact side nothing */
    struct dv_arith a = which == SIDE_TEST ? (struct dv_arith){DV_ACTQ_NONE, DV_ATTNQ_AUTO,
                                                               o->kv_type}
                        : which == SIDE_EXACT ? DV_ARITH_EXACT : *ar;
    struct dv_engine_opts eo = {.n_ctx = o->n_tokens, .n_batch = n_batch,
                                .act_quant = a.act_quant, .attn_quant = a.attn_quant,
                                .kv_type = a.kv_type};
    if (s->kind == DV_BACKEND_LLAMA_CPP) eo.device = o->device;
    if (s->kind == DV_BACKEND_VULKAN) {
        eo.device = o->device;
        eo.validation = o->validation;
        if (which == SIDE_TEST) eo.inject = o->inject.fault, eo.inject_layer = o->inject.layer;
    }
    dv_status st = dv_engine_open(m, s->kind, &eo, &s->e);
    if (st) return st;
    char device[128], driver[256];
    dv_engine_describe(s->e, device, sizeof device, driver, sizeof driver);
    snprintf(desc, dcap, "%s on %s (%s)", dv_backend_name(s->kind), device, driver);
    s->cap.n = dv_tensors_per_pass((int)m->cfg.n_layer);
    if (!(s->cap.t = calloc((size_t)s->cap.n, sizeof *s->cap.t)))
        return dv_fail(DV_E_NOMEM, "out of memory");
    s->tap = (struct tap){.cap = &s->cap};
    if (o->keep_dir) {
        snprintf(s->path, sizeof s->path, "%s/%s", o->keep_dir, side_file[which]);
        const struct dv_backend *be = dv_engine_backend(s->e);
        unsigned flags = be->act_type == DV_TYPE_F64 ? DV_DUMP_FLOAT64 : 0;
        if ((st = dv_dump_create(s->path, be->name, flags, &s->sink.dump))) return st;
        if (o->guard) o->guard(dv_dump_temp_path(s->sink.dump));
        const struct dv_arith a = dv_engine_arith(s->e);
        st = dv_dump_describe(s->sink.dump, m, device, driver, which == SIDE_TEST ? inject : "",
                              &a);
        if (!st) st = dv_dump_engine_attrs(s->sink.dump, s->e);
        if (st) return st;
        static const struct dv_dump_filter all = {0};
        s->sink.filter = &all;
        s->dump_hook = dv_dump_hook(&s->sink);
        s->tap.next = &s->dump_hook;
    }
    s->hook = (struct dv_hook){.begin_pass = tap_begin, .want = tap_want, .take = tap_take,
                               .end_pass = tap_end, .user = &s->tap};
    return DV_OK;
}

/* Pass p of the test dump through the side's hook, as an engine would hand
 * its tensors over: the tensors of the table it holds, as f32 (a sparse
 * dump leaves the others out). */
static dv_status dump_pass(struct side *s, const struct dv_model *m, int p)
{
    const struct dv_reader *d = s->dump;
    const struct dv_reader_pass *rp = &d->passes[p];
    const struct dv_hook *h = &s->hook;
    dv_status st = h->begin_pass(h->user, p, (int)rp->pos0, (int)rp->n_tokens, rp->tokens);
    for (int t = 0; !st && t < rp->n_tensors; t++) {
        const struct dv_reader_tensor *x = &rp->tensors[t];
        if (!x->known) continue;
        const int i = x->id.layer >= 0 ? dv_tensor_index(x->id.layer, x->id.which)
                                       : (int)m->cfg.n_layer * DV_LT_COUNT + x->id.which;
        float *v = malloc((size_t)(x->n_elems ? x->n_elems : 1) * sizeof *v);
        if (!v) return dv_fail(DV_E_NOMEM, "out of memory");
        st = dv_reader_read(d, p, t, DV_TYPE_F32, v);
        struct dv_tensor_desc desc = {.pass = p, .pos0 = (int)rp->pos0,
                                      .n_tokens = (int)rp->n_tokens, .tokens = rp->tokens,
                                      .name = x->name, .layer = x->id.layer,
                                      .op = x->id.op,
                                      .order = i, .n_dims = x->n_dims, .type = DV_TYPE_F32};
        memcpy(desc.shape, x->shape, sizeof desc.shape);
        if (!st && h->want(h->user, &desc)) st = h->take(h->user, &desc, v);
        free(v);
    }
    return st ? st : h->end_pass(h->user, p);
}

/* Close the engine and commit (ok) or drop the dump. */
static dv_status side_close(struct side *s, bool ok)
{
    dv_status st = DV_OK;
    if (s->sink.dump) st = dv_dump_close(s->sink.dump, ok);
    s->sink.dump = NULL;
    dv_engine_free(s->e);
    s->e = NULL;
    return st;
}

/* ---- judging a pass ----------------------------------------------------------- */

void dv_bisect_row_for(struct dv_cmp_row *w, const struct dv_captured *x, int pass,
                       const struct dv_policy *p)
{
    memset(w, 0, sizeof *w);
    w->max_at.flat = w->bad_at.flat = w->broken_at.flat = -1; /* until judged */
    w->pass = pass;
    snprintf(w->name, sizeof w->name, "%s", x->name);
    w->layer = x->layer;
    snprintf(w->op, sizeof w->op, "%s", dv_op_name(x->op));
    w->n_dims = x->n_dims;
    memcpy(w->shape, x->shape, sizeof w->shape);
    dv_policy_lookup(p, w->name, w->op, &w->tol);
}

static bool same_tensor(const struct dv_captured *a, const struct dv_captured *b)
{
    return a->data && b->data && !strcmp(a->name, b->name) && a->count == b->count;
}

/* Judge tensor i of the pass: false when a side lacks it. */
static bool judge_tensor(struct dv_cmp_row *w, const struct dv_model *m,
                         const struct dv_bisect_opts *o, struct side *sd, int i, int pass)
{
    const struct dv_captured *t = &sd[SIDE_TEST].cap.t[i], *r = &sd[SIDE_REF].cap.t[i];
    const struct dv_captured *orc = sd[SIDE_ORACLE].kind >= 0 ? &sd[SIDE_ORACLE].cap.t[i] : NULL;
    const struct dv_captured *ex = sd[SIDE_EXACT].kind >= 0 ? &sd[SIDE_EXACT].cap.t[i] : NULL;
    if (!same_tensor(t, r)) return false;
    if (orc && !same_tensor(orc, r)) orc = NULL;
    dv_bisect_row_for(w, r, pass, o->policy);
    dv_cmp_judge(w, &m->cfg, sd[SIDE_REF].cap.pos0, t->data, sd[SIDE_TEST].cap.type, r->data,
                 sd[SIDE_REF].cap.type, orc ? orc->data : NULL,
                 orc ? sd[SIDE_ORACLE].cap.type : 0);
    if (orc && ex && same_tensor(ex, r)) { /* the declared arithmetic's share */
        struct dv_metrics d;
        const enum dv_metric_elem er = sd[SIDE_REF].cap.type == DV_TYPE_F64 ? DV_METRIC_F64
                                                                            : DV_METRIC_F32;
        dv_metrics_init(&d);
        dv_metrics_add(&d, r->data, er, ex->data, DV_METRIC_F64, r->count, 0, &w->tol.metric);
        dv_cmp_allow_declared(w, dv_metrics_rel_rms(&d));
    }
    return true;
}

static void to_f32(float *dst, const void *src, int type, int64_t n)
{
    if (type == DV_TYPE_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    const double *d = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)d[i];
}

/* The reference's k_rope and v rows of this pass into the host caches,
 * rounded to the cache type as the reference's own cache holds them (the
 * emitted tensors are the unrounded values). */
static void keep_kv(const struct dv_model *m, const struct dv_capture *ref, int kv_type,
                    float *kc, float *vc, int n_ctx)
{
    const int64_t kvd = m->cfg.n_head_kv * m->cfg.head_dim;
    for (int64_t il = 0; il < m->cfg.n_layer; il++) {
        const size_t at = ((size_t)il * (size_t)n_ctx + (size_t)ref->pos0) * (size_t)kvd;
        const struct dv_captured *k = &ref->t[il * DV_LT_COUNT + DV_LT_K_ROPE];
        const struct dv_captured *v = &ref->t[il * DV_LT_COUNT + DV_LT_V];
        if (k->data) to_f32(kc + at, k->data, ref->type, k->count);
        if (v->data) to_f32(vc + at, v->data, ref->type, v->count);
        if (k->data) dv_arith_round_f32(kv_type, kc + at, k->count);
        if (v->data) dv_arith_round_f32(kv_type, vc + at, v->count);
    }
}

/* ---- the layer split ------------------------------------------------------------ */

/* Logits of the reference and oracle per pass, to judge a split run by. */
struct split_ctx {
    const struct dv_model *m;
    const struct dv_bisect_opts *o;
    int n_pass;
    void **ref_logits, **oracle_logits; /* [n_pass] */
    int ref_type, oracle_type;
    int pos0;                           /* of the pass running */
    bool diverged;
    double ratio;
};

static bool split_want(void *u, const struct dv_tensor_desc *d)
{
    (void)u;
    return d->layer < 0 && !strcmp(d->name, "logits");
}

static dv_status split_take(void *u, const struct dv_tensor_desc *d, const void *data)
{
    struct split_ctx *x = u;
    struct dv_cmp_row w;
    struct dv_captured id = {.layer = -1, .op = d->op, .n_dims = d->n_dims};
    snprintf(id.name, sizeof id.name, "%s", d->name);
    memcpy(id.shape, d->shape, sizeof id.shape);
    dv_bisect_row_for(&w, &id, d->pass, x->o->policy);
    dv_cmp_judge(&w, &x->m->cfg, d->pos0, data, d->type, x->ref_logits[d->pass], x->ref_type,
                 x->oracle_logits ? x->oracle_logits[d->pass] : NULL, x->oracle_type);
    x->diverged |= w.status == DV_ROW_DIVERGED;
    if (w.ratio > x->ratio || isnan(x->ratio)) x->ratio = w.ratio;
    return DV_OK;
}

/* Run passes 0..n_pass-1 on the test backend with the first n layers on
 * the device and judge their logits. */
static dv_status split_probe(struct split_ctx *x, int n, struct dv_split_probe *pr)
{
    const struct dv_bisect_opts *o = x->o;
    int max_t = 1;
    for (int i = 0; i < x->n_pass; i++) max_t = o->sched[i] > max_t ? o->sched[i] : max_t;
    struct dv_engine_opts eo = {.n_ctx = o->n_tokens, .n_batch = max_t, .device = o->device,
                                .validation = o->validation, .inject = o->inject.fault,
                                .inject_layer = o->inject.layer, .kv_type = o->kv_type,
                                .gpu_layers = n == 0 ? -1 : n};
    struct dv_engine *e;
    dv_status st = dv_engine_open(x->m, o->test, &eo, &e);
    if (st) return st;
    struct dv_hook h = {.want = split_want, .take = split_take, .user = x};
    x->diverged = false;
    x->ratio = 0;
    int pos = 0;
    for (int i = 0; i < x->n_pass && !st; pos += o->sched[i++])
        st = dv_engine_forward(e, o->tokens + pos, o->sched[i], pos, &h);
    dv_engine_free(e);
    *pr = (struct dv_split_probe){.gpu_layers = n, .diverged = x->diverged, .ratio = x->ratio};
    return st;
}

/* Smallest N in (lo, hi] whose logits diverge, knowing lo agrees and hi
 * diverges. */
static dv_status split_search(struct split_ctx *x, struct dv_bisect_result *r)
{
    int lo = 0, hi = (int)x->m->cfg.n_layer;
    while (hi - lo > 1 && r->n_probes < (int)(sizeof r->probes / sizeof r->probes[0])) {
        const int mid = lo + (hi - lo) / 2;
        struct dv_split_probe *pr = &r->probes[r->n_probes++];
        dv_status st = split_probe(x, mid, pr);
        if (st) return st;
        if (pr->diverged)
            hi = mid;
        else
            lo = mid;
    }
    r->split_first_layer = hi - 1;
    return DV_OK;
}

/* ---- the verdict ------------------------------------------------------------------ */

/* What an op's divergence alone usually means. */
static void build_verdict(const struct dv_model *m, struct dv_bisect_result *r)
{
    char *v = r->verdict;
    const size_t cap = sizeof r->verdict;
    if (r->first_pass < 0) {
        snprintf(v, cap, "no divergence above the noise floor over %d passes", r->n_run);
        return;
    }
    const struct dv_bisect_pass *p = &r->passes[r->first_pass];
    size_t n = 0;
#define PUT(...) (n += (size_t)snprintf(v + n, n < cap ? cap - n : 0, __VA_ARGS__))
    if (p->pos0 > 0 && r->earlier_clean)
        PUT("only passes with pos0 > 0 diverge (pass %d, pos0 %d; pass 0 is clean): the "
            "mask or the KV cache. ", r->first_pass, p->pos0);
    else if (r->first_pass == 0)
        PUT("the first pass (pos0 0, no past tokens) already diverges. ");
    const struct dv_cmp_row *f = &r->first;
    PUT("It shows at %s (%s)", f->name, f->op);
    int undumped = 0, noreplay = 0;
    for (int k = 0; k < r->n_ops; k++) {
        undumped += r->ops[k].role == DV_ROLE_UNDUMPED;
        noreplay += r->ops[k].role == DV_ROLE_NOREPLAY;
    }
    if (r->culprit >= 0) {
        const struct dv_replay_op *c = &r->ops[r->culprit];
        const bool same = !strcmp(c->name, f->name);
        PUT("%s: %s %s (rel err %.3g, %.3g x its limit): %s.", same ? " and starts there" : "",
            same ? "the op" : c->name,
            r->from_dump ? "is not what its own inputs in the dump give"
                         : "diverges alone on the test backend with the reference's inputs",
            dv_metrics_rel_rms(&c->iso.m), c->iso.ratio,
            r->by_layer ? "one of the layer's ops (the dump holds only the layers' outputs: "
                          "dump the layer's tensors to name the op)"
                        : dv_op_hint(dv_op_from_name(c->op)));
        if (!same) PUT(" It starts at %s (%s).", c->name, c->op);
        if (r->test_kind == DV_BACKEND_LLAMA_CPP && !r->from_dump)
            PUT(" ggml: %s.", dv_op_ggml(dv_op_from_name(c->op)));
        if (!strcmp(c->op, "matmul") || !strcmp(c->op, "get_rows"))
            PUT(" Weights: %s.", dv_type_name(r->wtype));
    } else if (!r->replayable) {
        PUT(". The op is not isolated: diverge has no single-op entry for %s, so the "
            "tensor where the error first shows is as far as a live bisect gets; bisect a "
            "dump of the same run (diverge run --dump, then bisect --test-dump) to name the "
            "op from the dump's own inputs.", dv_backend_name(r->test_kind));
    } else if (r->n_ops && r->from_dump && undumped == r->n_ops) {
        PUT(": the dump holds too few of the layer's tensors to judge an op on its own "
            "inputs.");
    } else if (r->n_ops) {
        PUT(": no op of %s%d diverges alone with %s, so the error comes in with the "
            "layer's input and is amplified (see the amplification column); look at earlier "
            "layers or at accumulated rounding.",
            r->replay_layer >= 0 ? "layer " : "the output ops", r->replay_layer,
            r->from_dump ? "its own inputs in the dump" : "the reference's inputs");
        if (undumped) PUT(" %d of its ops could not be judged: the dump lacks their output "
                          "or an input.", undumped);
        if (noreplay) PUT(" %d of its ops (the attention products) do not run alone on %s "
                          "yet: a dump of the run, bisected with --test-dump, judges them.",
                          noreplay, dv_backend_name(r->test_kind));
    } else {
        PUT(".");
    }
    if (r->split_run) {
        if (!r->split_logits_diverged)
            PUT(" Layer split: the final logits stay within the noise floor with every "
                "layer on the device, so a black-box logits check would miss this.");
        else if (r->split_first_layer >= (int)m->cfg.n_layer)
            PUT(" Layer split: the logits diverge only with output_norm and logits on "
                "the device.");
        else
            PUT(" Layer split: the logits first diverge with %d layers on the device "
                "(layer %d).", r->split_first_layer + 1, r->split_first_layer);
    }
    if (r->n_all > 1) {
        PUT(" All culprits (ops that diverge alone): ");
        for (int k = 0; k < r->n_all; k++)
            PUT("%s%s (%s, pass %d)", k ? ", " : "", r->all[k].name, r->all[k].op,
                r->all[k].pass);
        PUT("%s.", r->all_truncated ? ", ..." : "");
    }
    if (r->patch_run && !r->n_flips)
        PUT(" Activation patching: no position's top-1 token flips over the schedule.");
    if (r->patch_run && r->n_flips) {
        int same = r->flips[0].layer;
        for (int k = 1; k < r->n_flips; k++)
            if (r->flips[k].layer != same) same = -2;
        PUT(" Activation patching: %d position%s flip%s top-1", r->n_flips,
            r->n_flips == 1 ? "" : "s", r->n_flips == 1 ? "s" : "");
        if (same >= 0)
            PUT("; the reference's residual after layer %d restores %s (layer %d makes the "
                "flip%s).", same, r->n_flips == 1 ? "it" : "every one", same,
                r->n_flips == 1 ? "" : "s");
        else if (same == -1)
            PUT("; no patch up to the last layer restores %s (the last layer or the output "
                "ops make it).", r->n_flips == 1 ? "it" : "them");
        else
            PUT("; the layers that make them differ (see the patching table).");
    }
#undef PUT
}

/* ---- the whole bisection ------------------------------------------------------------ */

void dv_bisect_free(struct dv_bisect_result *r)
{
    if (!r) return;
    free(r->passes);
    free(r->ops);
    free(r);
}

static dv_status make_dir(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return dv_fail(DV_E_USAGE, "--keep-dumps %s: the path is too long", dir);
    /* the parents first, as mkdir -p: "a/b/c" makes a and a/b too */
    for (char *c = p + 1; *c; c++) {
        if (*c != '/' || c[-1] == '/') continue;
        *c = '\0';
        int r = mkdir(p, 0777);
        *c = '/';
        if (r != 0 && errno != EEXIST)
            return dv_fail(errno == ENOTDIR ? DV_E_USAGE : DV_E_IO, "--keep-dumps %s: %s",
                           dir, strerror(errno));
    }
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return DV_OK;
        return dv_fail(DV_E_USAGE, "--keep-dumps %s: not a directory", dir);
    }
    return dv_fail(DV_E_IO, "--keep-dumps %s: %s", dir, strerror(errno));
}

struct run_state {
    struct side sd[N_SIDES];
    struct dv_cmp_row broken;        /* the first broken tensor (name "" if none) */
    int broken_pass;
    float *kc, *vc;                  /* the reference's cache, f32 */
    float *tkc, *tvc;                /* a test dump's own k_rope, v (unrounded) */
    const struct dv_arith *ar;       /* what the reference and oracle emulate */
    int max_t;
    bool *tk_ok, *tv_ok;             /* [n_layer] ... every pass held that layer's */
    void **logits[2];                /* [n_pass] ref and oracle logits */
    struct dv_split_probe live_logits; /* the live run's, all layers on the device */
};

static dv_status keep_logits(struct run_state *rs, int pass)
{
    for (int k = 0; k < 2; k++) {
        const struct side *s = &rs->sd[k ? SIDE_ORACLE : SIDE_REF];
        if (s->kind < 0) continue;
        const struct dv_captured *x = &s->cap.t[s->cap.n - 1];
        const size_t bytes = (size_t)x->count * (s->cap.type == DV_TYPE_F64 ? 8 : 4);
        if (!x->data || !(rs->logits[k][pass] = malloc(bytes)))
            return dv_fail(DV_E_NOMEM, "out of memory");
        memcpy(rs->logits[k][pass], x->data, bytes);
    }
    return DV_OK;
}

/* ---- a sparse test dump: layer by layer ---------------------------------------- */

/* A hook keeping one tensor of the pass (by name: a pass started at a
 * layer numbers its tensors from there). */
struct one {
    char name[32];
    void *data; /* its values, malloc'd */
    int type;
};

static bool one_want(void *u, const struct dv_tensor_desc *d)
{
    return !strcmp(d->name, ((struct one *)u)->name);
}

static dv_status one_take(void *u, const struct dv_tensor_desc *d, const void *data)
{
    struct one *o = u;
    int64_t n;
    free(o->data);
    if (!(o->data = copy_values(d, data, &n))) return dv_fail(DV_E_NOMEM, "out of memory");
    o->type = d->type;
    return DV_OK;
}

/* The test dump's tensor `name` of pass p as f32, or NULL (not there). */
static float *dump_f32(const struct dv_reader *d, int p, const char *name)
{
    const int t = dv_reader_find_tensor(d, p, name);
    if (t < 0) return NULL;
    float *v = malloc((size_t)(d->passes[p].tensors[t].n_elems + 1) * sizeof *v);
    if (v && dv_reader_read(d, p, t, DV_TYPE_F32, v)) {
        free(v);
        return NULL;
    }
    return v;
}

/* Layer L alone on a fresh engine of `kind` with arithmetic ar: passes
 * 0..fp, each fed the test dump's own blk.(L-1).out (layer 0: the tokens),
 * so that its cache holds what the test's own inputs give; blk.L.out of
 * pass fp into *out (the engine's type), NULL when the dump lacks an input. */
static dv_status layer_alone(const struct dv_model *m, const struct dv_bisect_opts *o,
                             int kind, const struct dv_arith *ar, int L, int fp, int max_t,
                             struct one *out)
{
    struct dv_engine_opts eo = {.n_ctx = o->n_tokens, .n_batch = max_t,
                                .act_quant = ar->act_quant, .attn_quant = ar->attn_quant,
                                .kv_type = ar->kv_type, .cpu_layer0 = L};
    struct dv_engine *e = NULL;
    dv_status st = dv_engine_open(m, kind, &eo, &e);
    *out = (struct one){0};
    snprintf(out->name, sizeof out->name, "blk.%d.out", L);
    const struct dv_hook h = {.want = one_want, .take = one_take, .user = out};
    char prev[32];
    snprintf(prev, sizeof prev, "blk.%d.out", L - 1);
    for (int p = 0, pos = 0; !st && p <= fp; pos += o->sched[p++]) {
        float *x = L > 0 ? dump_f32(o->test_dump, p, prev) : NULL;
        if (L > 0 && !x) { /* not dumped */
            free(out->data);
            out->data = NULL;
            break;
        }
        st = L > 0 ? dv_engine_forward_from(e, o->tokens + pos, o->sched[p], pos, L, x, &h)
                   : dv_engine_forward(e, o->tokens + pos, o->sched[p], pos, &h);
        free(x);
    }
    dv_engine_free(e);
    return st;
}

/* The ops of the first divergent layer are not in the dump (a residual
 * only dump, as output_hidden_states gives): judge every layer up to it
 * instead, each recomputed alone from the test's own input residual by
 * the reference and the oracle; the first whose output is not what its
 * own input gives is where it starts. The live run's last pass is fp. */
static dv_status by_layer(const struct dv_model *m, const struct dv_bisect_opts *o,
                          const struct dv_arith *ar, struct run_state *rs, int max_t,
                          struct dv_bisect_result *r)
{
    const int fp = r->first_pass;
    const int last = r->first.layer >= 0 ? r->first.layer : (int)m->cfg.n_layer - 1;
    free(r->ops);
    r->ops = calloc((size_t)last + 1, sizeof *r->ops);
    r->n_ops = 0, r->culprit = -1, r->by_layer = true;
    if (!r->ops) return dv_fail(DV_E_NOMEM, "out of memory");
    dv_status st = DV_OK;
    for (int L = 0; !st && L <= last; L++) {
        struct dv_replay_op *op = &r->ops[r->n_ops++];
        const int i = dv_tensor_index(L, DV_LT_OUT);
        const struct dv_captured *t = &rs->sd[SIDE_TEST].cap.t[i];
        const struct dv_captured *rf = &rs->sd[SIDE_REF].cap.t[i];
        snprintf(op->name, sizeof op->name, "%s", rf->name);
        snprintf(op->op, sizeof op->op, "layer");
        if (L > 0) snprintf(op->inputs, sizeof op->inputs, "blk.%d.out", L - 1);
        else snprintf(op->inputs, sizeof op->inputs, "token ids");
        op->amp = NAN;
        op->role = DV_ROLE_UNDUMPED;
        if (!judge_tensor(&op->full, m, o, rs->sd, i, fp)) continue; /* no blk.L.out */
        struct one a = {0}, z = {0};
        st = layer_alone(m, o, o->ref, ar, L, fp, max_t, &a);
        if (!st && o->oracle >= 0) st = layer_alone(m, o, o->oracle, ar, L, fp, max_t, &z);
        if (!st && a.data && (o->oracle < 0 || z.data)) {
            op->iso = op->full;
            dv_cmp_judge(&op->iso, &m->cfg, rs->sd[SIDE_REF].cap.pos0, t->data, DV_TYPE_F32,
                         a.data, a.type, z.data, z.type);
            op->role = op->iso.status == DV_ROW_DIVERGED
                           ? (r->culprit < 0 ? DV_ROLE_CULPRIT : DV_ROLE_ALSO)
                           : op->full.status == DV_ROW_DIVERGED ? DV_ROLE_PROPAGATED
                                                                : DV_ROLE_OK;
            if (op->role == DV_ROLE_CULPRIT) r->culprit = r->n_ops - 1;
            if (a.type == DV_TYPE_F32)
                dv_replay_top_diffs(op, &m->cfg, rs->sd[SIDE_REF].cap.pos0, t->data, a.data,
                                    t->count);
            if (L > 0) {
                struct dv_cmp_row w;
                if (judge_tensor(&w, m, o, rs->sd, dv_tensor_index(L - 1, DV_LT_OUT), fp)) {
                    op->in_err = dv_metrics_rel_rms(&w.m);
                    if (op->in_err > 0)
                        op->amp = dv_metrics_rel_rms(&op->full.m) / op->in_err;
                }
            }
        }
        free(a.data), free(z.data);
    }
    return st;
}

/* The ops of layer `layer` of the pass just run, replayed (a live test)
 * or judged on the dump's own inputs, into r's ops. */
/* What feeds and judges the ops of the pass just run (bisect.h): the
 * reference's tensors and cache for a live test, the dump's own for a dump. */
static struct dv_replay_src replay_src(const struct dv_bisect_opts *o, struct run_state *rs)
{
    const bool live = !o->test_dump;
    return (struct dv_replay_src){
        .test = &rs->sd[SIDE_TEST].cap, .ref = &rs->sd[SIDE_REF].cap,
        .oracle = o->oracle >= 0 ? &rs->sd[SIDE_ORACLE].cap : NULL,
        .alone = live ? rs->sd[SIDE_TEST].e : NULL, .ref_e = rs->sd[SIDE_REF].e,
        .floor = o->oracle >= 0 ? rs->sd[SIDE_ORACLE].e : NULL,
        .exact = rs->sd[SIDE_EXACT].kind >= 0 ? rs->sd[SIDE_EXACT].e : NULL,
        .kc = live ? rs->kc : rs->tkc, .vc = live ? rs->vc : rs->tvc,
        .k_ok = live ? NULL : rs->tk_ok, .v_ok = live ? NULL : rs->tv_ok, .n_ctx = o->n_tokens};
}

static dv_status replay_pass_layer(const struct dv_model *m, const struct dv_bisect_opts *o,
                                   struct run_state *rs, int pos, int layer,
                                   struct dv_bisect_result *r)
{
    const struct dv_replay_src src = replay_src(o, rs);
    return dv_replay_layer(m, o, o->tokens + pos, layer, &src, r);
}

/* Where it starts: the first divergent pass (just run), its first
 * divergent layer op by op; a dump too sparse for that, layer by layer. */
static dv_status starts(const struct dv_model *m, const struct dv_bisect_opts *o,
                        struct run_state *rs, int pos, struct dv_bisect_result *r)
{
    const double t1 = now_s();
    r->replay_pass = r->first_pass;
    r->replay_layer = r->first.layer;
    r->earlier_clean = true;
    for (int p = 0; p < r->first_pass; p++)
        r->earlier_clean &= r->passes[p].status == DV_BPASS_CLEAN;
    dv_status st = replay_pass_layer(m, o, rs, pos, r->replay_layer, r);
    bool judged = false;
    for (int k = 0; k < r->n_ops; k++)
        judged |= r->ops[k].role != DV_ROLE_UNDUMPED && r->ops[k].role != DV_ROLE_NONE &&
                  r->ops[k].role != DV_ROLE_NOREPLAY;
    if (!st && o->test_dump && !judged) st = by_layer(m, o, rs->ar, rs, rs->max_t, r);
    r->replay_s += now_s() - t1;
    return st;
}

/* --export-case DIR: the culprit of the first divergent pass (just run)
 * as DIR/case.h5, a dump of its inputs and its output as the test gave it,
 * and DIR/command, the line that judges it again. */
static dv_status export_case(const struct dv_model *m, const struct dv_bisect_opts *o,
                             struct run_state *rs, struct dv_bisect_result *r)
{
    if (r->culprit < 0 || r->by_layer) return DV_OK;
    dv_status st = make_dir(o->export_case);
    char path[4096], cmd[4096 + 64];
    snprintf(path, sizeof path, "%s/case.h5", o->export_case);
    const struct side *t = &rs->sd[SIDE_TEST];
    char device[192] = "", driver[512] = "";
    if (t->e) dv_engine_describe(t->e, device, sizeof device, driver, sizeof driver);
    else snprintf(device, sizeof device, "%s", dv_reader_str(o->test_dump, "device"));
    const char *backend = t->e ? dv_engine_backend(t->e)->name
                               : dv_reader_str(o->test_dump, "backend");
    dv_dump *d = NULL;
    if (!st) st = dv_dump_create(path, backend[0] ? backend : "test", 0, &d);
    if (!st && o->guard) o->guard(dv_dump_temp_path(d));
    if (!st) st = dv_dump_describe(d, m, device, driver, r->inject, rs->ar);
    if (!st) st = dv_dump_set_str(d, "case_op", r->ops[r->culprit].name);
    const struct dv_replay_src src = replay_src(o, rs);
    int idx = -1;
    for (int i = 0; i < rs->sd[SIDE_REF].cap.n; i++)
        if (!strcmp(rs->sd[SIDE_REF].cap.t[i].name, r->ops[r->culprit].name)) idx = i;
    if (!st && idx < 0) st = dv_fail(DV_E_RUNTIME, "export: no tensor %s", r->ops[r->culprit].name);
    if (!st) st = dv_replay_export(m, o, r->first_pass, r->replay_layer, idx, &src, d);
    dv_status c = dv_dump_close(d, !st);
    if (!st) st = c;
    snprintf(cmd, sizeof cmd, "%s/command", o->export_case);
    FILE *f = st ? NULL : fopen(cmd, "w");
    if (!st && !f) st = dv_fail(DV_E_IO, "%s: %s", cmd, strerror(errno));
    if (f) {
        fprintf(f, "diverge bisect %s --test-dump %s\n", o->model_path, path);
        if (fclose(f)) st = dv_fail(DV_E_IO, "%s: %s", cmd, strerror(errno));
    }
    if (!st) snprintf(r->case_path, sizeof r->case_path, "%s", path);
    return st;
}

/* --all-culprits: every op of every layer of pass p (just run) alone; each
 * one that diverges alone joins r->all, unless an earlier pass named it. */
static dv_status collect(const struct dv_model *m, const struct dv_bisect_opts *o,
                         struct run_state *rs, int p, int pos, struct dv_bisect_result *r)
{
    const double t1 = now_s();
    dv_status st = DV_OK;
    for (int L = 0; !st && L <= (int)m->cfg.n_layer; L++) {
        struct dv_bisect_result x = {.replay_pass = p, .culprit = -1};
        const int layer = L < (int)m->cfg.n_layer ? L : -1; /* then the output ops */
        st = replay_pass_layer(m, o, rs, pos, layer, &x);
        for (int k = 0; !st && k < x.n_ops; k++) {
            const struct dv_replay_op *op = &x.ops[k];
            if (op->role != DV_ROLE_CULPRIT && op->role != DV_ROLE_ALSO) continue;
            bool seen = false;
            for (int j = 0; j < r->n_all; j++) seen |= !strcmp(r->all[j].name, op->name);
            if (seen) continue;
            if (r->n_all == DV_PATCH_MAX_FLIPS) {
                r->all_truncated = true;
                continue;
            }
            r->all[r->n_all].pass = p;
            snprintf(r->all[r->n_all].name, sizeof r->all[0].name, "%s", op->name);
            snprintf(r->all[r->n_all].op, sizeof r->all[0].op, "%s", op->op);
            r->all[r->n_all].rel = dv_metrics_rel_rms(&op->iso.m);
            r->all[r->n_all].ratio = op->iso.ratio;
            r->n_all++;
        }
        free(x.ops);
    }
    r->replay_s += now_s() - t1;
    return st;
}

/* Run the schedule until the first pass with a divergence (--all-culprits:
 * every pass), and find where it starts when the test replays. */
static dv_status live_run(const struct dv_model *m, const struct dv_bisect_opts *o,
                          struct run_state *rs, struct dv_bisect_result *r)
{
    int pos = 0;
    for (int p = 0; p < o->n_pass; pos += o->sched[p++]) {
        struct dv_bisect_pass *bp = &r->passes[p];
        for (int k = 0; k < N_SIDES; k++) {
            if (rs->sd[k].kind < 0) continue;
            dv_status st = rs->sd[k].dump ? dump_pass(&rs->sd[k], m, p)
                                          : dv_engine_forward(rs->sd[k].e, o->tokens + pos,
                                                              o->sched[p], pos, &rs->sd[k].hook);
            if (st) return st;
        }
        bp->status = DV_BPASS_CLEAN;
        bp->worst_ratio = 0;
        for (int i = 0; i < rs->sd[SIDE_REF].cap.n; i++) {
            struct dv_cmp_row w;
            if (!judge_tensor(&w, m, o, rs->sd, i, p)) continue;
            bp->n_tensors++;
            if (w.ratio > bp->worst_ratio || !bp->worst[0]) {
                bp->worst_ratio = w.ratio;
                snprintf(bp->worst, sizeof bp->worst, "%s", w.name);
            }
            if (w.status == DV_ROW_BROKEN) { /* not the test's doing: see dv_bisect */
                if (!rs->broken.name[0]) rs->broken = w, rs->broken_pass = p;
                continue;
            }
            if (!strcmp(w.name, "logits")) {
                rs->live_logits.diverged |= w.status == DV_ROW_DIVERGED;
                if (w.ratio > rs->live_logits.ratio) rs->live_logits.ratio = w.ratio;
            }
            if (w.status != DV_ROW_DIVERGED) continue;
            bp->n_diverged++;
            if (r->first_pass < 0) r->first = w, r->first_pass = p;
        }
        if (!bp->n_tensors)
            return dv_fail(DV_E_RUNTIME, "pass %d: no tensor to compare", p);
        keep_kv(m, &rs->sd[SIDE_REF].cap, o->kv_type, rs->kc, rs->vc, o->n_tokens);
        if (rs->tkc) { /* the reference engine rounds them as its cache would */
            for (int il = 0; il < (int)m->cfg.n_layer; il++) {
                rs->tk_ok[il] &= rs->sd[SIDE_TEST].cap.t[dv_tensor_index(il, DV_LT_K_ROPE)].data != NULL;
                rs->tv_ok[il] &= rs->sd[SIDE_TEST].cap.t[dv_tensor_index(il, DV_LT_V)].data != NULL;
            }
            keep_kv(m, &rs->sd[SIDE_TEST].cap, DV_TYPE_F32, rs->tkc, rs->tvc, o->n_tokens);
        }
        dv_status st = keep_logits(rs, p);
        if (st) return st;
        if (rs->broken.name[0]) { /* nothing after this pass can be judged */
            r->n_run = p + 1;
            return DV_OK;
        }
        if (bp->n_diverged) bp->status = DV_BPASS_DIVERGED;
        if (p == r->first_pass && r->replayable && (st = starts(m, o, rs, pos, r))) return st;
        if (p == r->first_pass && o->export_case && (st = export_case(m, o, rs, r))) return st;
        if (o->all_culprits && bp->n_diverged && r->replayable &&
            (st = collect(m, o, rs, p, pos, r)))
            return st;
        if (r->first_pass >= 0 && !o->all_culprits) {
            r->n_run = p + 1;
            return DV_OK;
        }
    }
    r->n_run = o->n_pass;
    return DV_OK;
}

/* A reference or oracle that computes NaN/Inf where a forward pass cannot
 * leaves nothing to judge the test against: bad input (the model, or the
 * backend itself), never "clean". */
static dv_status broken_run(const struct dv_bisect_opts *o, const struct run_state *rs,
                            const struct dv_bisect_result *r)
{
    const struct dv_cmp_row *w = &rs->broken;
    const struct dv_bisect_pass *p = &r->passes[rs->broken_pass];
    char at[96];
    dv_cmp_where_format(&w->broken_at, at, sizeof at);
    const bool ref = w->broken == DV_BROKEN_REF;
    return dv_fail(DV_E_INPUT, "%s: the %s %s is broken at pass %d (pos0 %d, %d tokens), %s "
                   "(%s): %s, the first at %s is %g; nothing to bisect against (the model or "
                   "that backend is wrong)", o->model_path,
                   dv_backend_name(ref ? o->ref : o->oracle), ref ? "reference" : "oracle",
                   rs->broken_pass, p->pos0, p->n_tokens, w->name, w->op, w->why, at,
                   w->broken_value);
}

static dv_status check_opts(const struct dv_model *m, const struct dv_bisect_opts *o)
{
    int64_t sum = 0;
    for (int i = 0; i < o->n_pass; i++) sum += o->sched[i];
    if (o->n_pass < 1 || sum != o->n_tokens || o->n_tokens < 1)
        return dv_fail(DV_E_USAGE, "the pass schedule adds up to %lld tokens but there are %d",
                       (long long)sum, o->n_tokens);
    for (int i = 0; i < o->n_tokens; i++)
        if (o->tokens[i] < 0 || o->tokens[i] >= m->cfg.n_vocab)
            return dv_fail(DV_E_USAGE, "token %d is not below the vocab size %lld",
                           o->tokens[i], (long long)m->cfg.n_vocab);
    if (!o->test_dump && o->test != DV_BACKEND_VULKAN && o->test != DV_BACKEND_LLAMA_CPP)
        return dv_fail(DV_E_USAGE, "--test: vulkan or llama.cpp");
    const struct dv_reader *d = o->test_dump;
    if (d && d->n_passes != o->n_pass)
        return dv_fail(DV_E_USAGE, "%s holds %d passes, the schedule %d", d->path,
                       d->n_passes, o->n_pass);
    for (int p = 0, pos = 0; d && p < o->n_pass; pos += o->sched[p++]) {
        const struct dv_reader_pass *rp = &d->passes[p];
        if (rp->pos0 != pos || rp->n_tokens != o->sched[p] ||
            memcmp(rp->tokens, o->tokens + pos, (size_t)o->sched[p] * sizeof *o->tokens))
            return dv_fail(DV_E_USAGE, "%s: pass %d is not the schedule's (pos0 %lld, %lld "
                           "tokens)", d->path, p, (long long)rp->pos0,
                           (long long)rp->n_tokens);
    }
    if (o->ref != DV_BACKEND_CPU && o->ref != DV_BACKEND_CPU_F64)
        return dv_fail(DV_E_USAGE, "--ref: cpu or cpu-f64");
    if (o->patch && o->test_dump)
        return dv_fail(DV_E_USAGE, "activation patching needs a live test backend, not a dump");
    if (o->oracle >= 0 && o->oracle != DV_BACKEND_CPU_F64)
        return dv_fail(DV_E_USAGE, "--oracle: cpu-f64 or none");
    return DV_OK;
}

dv_status dv_bisect(const struct dv_model *m, const struct dv_bisect_opts *o,
                    struct dv_bisect_result **out)
{
    *out = NULL;
    dv_status st = check_opts(m, o);
    if (st) return st;
    struct dv_bisect_result *r = calloc(1, sizeof *r);
    struct run_state rs = {0};
    if (!r || !(r->passes = calloc((size_t)o->n_pass, sizeof *r->passes))) {
        free(r);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    r->first_pass = r->replay_pass = -1;
    r->culprit = r->split_first_layer = -1;
    r->n_pass = o->n_pass;
    r->test_kind = o->test;
    r->wtype = m->layers[0].wq->type;
    dv_inject_format(&o->inject, r->inject, sizeof r->inject);
    int pos = 0, max_t = 1;
    for (int i = 0; i < o->n_pass; pos += o->sched[i++]) {
        r->passes[i] = (struct dv_bisect_pass){.pos0 = pos, .n_tokens = o->sched[i],
                                               .status = DV_BPASS_NOT_RUN};
        max_t = o->sched[i] > max_t ? o->sched[i] : max_t;
    }
    int kinds[N_SIDES] = {o->test, o->ref, o->oracle, -1};
    char exact_desc[512];
    char *descs[N_SIDES] = {r->test_desc, r->ref_desc, r->oracle_desc, exact_desc};
    const size_t kvn = (size_t)m->cfg.n_layer * (size_t)o->n_tokens *
                       (size_t)(m->cfg.n_head_kv * m->cfg.head_dim);
    rs.kc = calloc(kvn ? kvn : 1, sizeof *rs.kc);
    rs.vc = calloc(kvn ? kvn : 1, sizeof *rs.vc);
    rs.logits[0] = calloc((size_t)o->n_pass, sizeof(void *));
    rs.logits[1] = calloc((size_t)o->n_pass, sizeof(void *));
    if (o->test_dump) {
        rs.tkc = calloc(kvn ? kvn : 1, sizeof *rs.tkc);
        rs.tvc = calloc(kvn ? kvn : 1, sizeof *rs.tvc);
        rs.tk_ok = malloc((size_t)m->cfg.n_layer * sizeof *rs.tk_ok);
        rs.tv_ok = malloc((size_t)m->cfg.n_layer * sizeof *rs.tv_ok);
        for (int il = 0; rs.tk_ok && rs.tv_ok && il < (int)m->cfg.n_layer; il++)
            rs.tk_ok[il] = rs.tv_ok[il] = true;
        r->from_dump = true;
        snprintf(r->test_dump, sizeof r->test_dump, "%s", o->test_dump->path);
    }
    if (!rs.kc || !rs.vc || !rs.logits[0] || !rs.logits[1] ||
        (o->test_dump && (!rs.tkc || !rs.tvc || !rs.tk_ok || !rs.tv_ok)))
        st = dv_fail(DV_E_NOMEM, "out of memory");
    if (!st && o->keep_dir) st = make_dir(o->keep_dir);
    for (int k = 0; k < N_SIDES; k++) rs.sd[k].kind = kinds[k];
    const double t0 = now_s();
    struct dv_arith ar = {o->act_quant, o->attn_quant, o->kv_type};
    if (!st) st = side_open(&rs.sd[SIDE_TEST], m, o, SIDE_TEST, max_t, &ar, r->inject,
                            descs[SIDE_TEST], sizeof r->test_desc);
    if (!st && o->arith_from_test) { /* emulate what the test engine declares */
        ar = dv_engine_arith(rs.sd[SIDE_TEST].e);
        if (ar.act_quant < 0) ar = (struct dv_arith){DV_ACTQ_NONE, DV_ATTNQ_NONE, ar.kv_type};
    }
    r->arith = ar;
    /* emulated arithmetic, judged by an oracle: the exact run beside them */
    if (o->oracle >= 0 && !dv_arith_is_exact(ar))
        rs.sd[SIDE_EXACT].kind = kinds[SIDE_EXACT] = DV_BACKEND_CPU_F64;
    for (int k = SIDE_REF; k < N_SIDES && !st; k++)
        if (kinds[k] >= 0)
            st = side_open(&rs.sd[k], m, o, k, max_t, &ar, r->inject, descs[k],
                           sizeof r->test_desc);
    /* any test backend with a single-op entry replays (engine.h, run_op);
     * a test dump's ops are judged on its own inputs */
    r->replayable = o->test_dump ||
                    (rs.sd[SIDE_TEST].e && dv_engine_backend(rs.sd[SIDE_TEST].e)->run_op);
    rs.ar = &ar, rs.max_t = max_t;
    if (!st) st = live_run(m, o, &rs, r);
    /* the kept dumps hold the passes run, complete when the live run was:
     * a broken reference keeps them too (they show what broke) */
    const bool keep = st == DV_OK;
    r->run_s = now_s() - t0;
    if (!st && rs.broken.name[0]) st = broken_run(o, &rs, r);
    if (!st) r->run_s -= r->replay_s; /* the live run's own time */

    for (int k = 0; k < N_SIDES; k++) {
        dv_status c = side_close(&rs.sd[k], keep);
        if (!st) st = c;
    }
    if (!st && r->first_pass >= 0 && o->layer_split && r->replayable && !o->test_dump &&
        o->test == DV_BACKEND_VULKAN) {
        const double t2 = now_s();
        r->split_run = true;
        struct split_ctx x = {.m = m, .o = o, .n_pass = r->n_run, .ref_logits = rs.logits[0],
                              .oracle_logits = o->oracle >= 0 ? rs.logits[1] : NULL,
                              .ref_type = o->ref == DV_BACKEND_CPU_F64 ? DV_TYPE_F64
                                                                        : DV_TYPE_F32,
                              .oracle_type = DV_TYPE_F64};
        /* every layer on the device is the live run: its logits decide for
         * N = n_layer without another run */
        rs.live_logits.gpu_layers = (int)m->cfg.n_layer;
        r->probes[r->n_probes++] = rs.live_logits;
        r->split_logits_diverged = rs.live_logits.diverged;
        if (r->split_logits_diverged) st = split_search(&x, r);
        r->split_s = now_s() - t2;
    }
    if (!st && o->patch) {
        const double t3 = now_s();
        st = dv_patch(m, o, &ar, r);
        r->patch_s = now_s() - t3;
    }
    if (!st) build_verdict(m, r);
    for (int k = 0; k < N_SIDES; k++) capture_free(&rs.sd[k].cap);
    for (int k = 0; k < 2; k++)
        for (int p = 0; rs.logits[k] && p < o->n_pass; p++) free(rs.logits[k][p]);
    free(rs.logits[0]), free(rs.logits[1]);
    free(rs.kc), free(rs.vc), free(rs.tkc), free(rs.tvc), free(rs.tk_ok), free(rs.tv_ok);
    if (st) {
        dv_bisect_free(r);
        return st;
    }
    *out = r;
    return DV_OK;
}
