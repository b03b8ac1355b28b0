/*
 * replay.c - bisect's op replay: each op of one layer of one pass alone on
 * the test engine's single-op entry (engine.h, run_op: for vulkan the very
 * pipelines its forward pass records, with its fault), fed the reference's
 * tensors of that pass as the inputs the op table names (ops.h) and the
 * reference's KV cache for attention, judged against the reference's
 * output of the op.
 *
 * The op's oracle is the same op on the oracle engine (cpu-f64: the
 * functions its forward runs, its declared arithmetic) on the same f32
 * inputs widened, so the noise floor of an op alone is that of the
 * reference's f32 arithmetic on exactly those inputs: err(alone, oracle)
 * <= m err(ref, oracle) + floor, as `diverge compare` judges whole runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bisect.h"
#include "cpu_ops.h"
#include "diverge.h"
#include "error.h"
#include "gguf.h"
#include "ops.h"
#include "quant.h"
#include "types.h"

/* The tensors of the pass by index (ops.h, dv_tensor_index). */
struct rp {
    const struct dv_model *m;
    const struct dv_config *c;
    const struct dv_capture *test, *ref, *oracle;
    struct dv_engine *alone;  /* runs the op alone: the test engine; NULL for a dump */
    struct dv_engine *ref_e;  /* a dump's: the reference engine on its inputs */
    struct dv_engine *floor;  /* the oracle engine (cpu-f64), or NULL */
    struct dv_engine *exact;  /* the exact engine under declared arithmetic, or NULL */
    const struct dv_capture *in; /* the side whose tensors feed the ops */
    int layer, pos0, T, n_ctx;
    const int32_t *tokens;
    const float *kc, *vc;
    const bool *k_ok, *v_ok;
    float **r32;   /* [n] the reference's tensors as f32, made on demand */
};

/* Tensor i of the side that feeds the ops, as f32 (NULL when absent). */
static const float *in32(struct rp *x, int i);

static int lt_index(const struct rp *x, int layer, int lt)
{
    (void)x;
    return dv_tensor_index(layer, lt);
}

static int gt_index(const struct rp *x, int gt)
{
    return (int)x->c->n_layer * DV_LT_COUNT + gt;
}

static const float *ref32(struct rp *x, int i)
{
    const struct dv_captured *t = &x->ref->t[i];
    if (!t->data) return NULL;
    if (x->ref->type == DV_TYPE_F32) return t->data;
    if (!x->r32[i] && (x->r32[i] = malloc((size_t)t->count * sizeof(float))))
        for (int64_t j = 0; j < t->count; j++) x->r32[i][j] = (float)((double *)t->data)[j];
    return x->r32[i];
}

static const float *in32(struct rp *x, int i)
{
    if (x->in == x->ref) return ref32(x, i);
    return x->in->t[i].data; /* a dump's capture is f32 */
}

/* The call that makes tensor `out` of the pass, from the inputs the op
 * table names (ops.h), the reference's tensors of the pass and its cache
 * of earlier passes; in[] gets the inputs' indices. DV_E_NOMEM. */
static dv_status op_call(struct rp *x, int out, struct dv_op_call *k, int in[2])
{
    const struct dv_config *c = x->c;
    const int L = x->layer, lt = L >= 0 ? out - lt_index(x, L, 0) : -1;
    const int64_t kvd = c->n_head_kv * c->head_dim;
    dv_tensor_inputs(out, (int)c->n_layer, in);
    *k = (struct dv_op_call){.op = x->ref->t[out].op, .layer = L, .T = x->T, .pos0 = x->pos0,
                             .w = dv_tensor_weight(x->m, out), .ids = x->tokens};
    if (in[0] >= 0 && !(k->a = in32(x, in[0]))) return DV_E_INPUT; /* not dumped */
    if (in[1] >= 0 && !(k->b = in32(x, in[1]))) return DV_E_INPUT;
    if (k->op == DV_OP_RMSNORM) k->n = c->d_model;
    if (k->op == DV_OP_ADD || k->op == DV_OP_SILU_MUL) k->n = x->ref->t[out].count;
    if (k->op == DV_OP_ROPE) k->nh = lt == DV_LT_Q_ROPE ? c->n_head : c->n_head_kv;
    if (k->op == DV_OP_KQ || k->op == DV_OP_KQV) {
        const float *cache = k->op == DV_OP_KQ ? x->kc : x->vc;
        const bool *ok = k->op == DV_OP_KQ ? x->k_ok : x->v_ok;
        if (!cache || (ok && !ok[L])) return DV_E_INPUT; /* a dump without its rows */
        k->past = cache + (size_t)L * (size_t)x->n_ctx * (size_t)kvd;
    }
    return DV_OK;
}

/* Test vs reference (vs oracle) of capture tensor i in the full run. */
static void full_row(struct rp *x, const struct dv_bisect_opts *o, int i, int pass,
                     struct dv_cmp_row *w)
{
    const struct dv_captured *r = &x->ref->t[i];
    dv_bisect_row_for(w, r, pass, o->policy);
    const struct dv_captured *t = &x->test->t[i];
    const struct dv_captured *orc = x->oracle ? &x->oracle->t[i] : NULL;
    if (!t->data || !r->data) return;
    dv_cmp_judge(w, x->c, x->pos0, t->data, x->test->type, r->data, x->ref->type,
                 orc && orc->data ? orc->data : NULL, x->oracle ? x->oracle->type : 0);
}

/* The three largest |alone - ref| of the op's output. */
void dv_replay_top_diffs(struct dv_replay_op *op, const struct dv_config *c, int pos0,
                         const float *y, const float *r, int64_t n)
{
    op->n_top = 0;
    for (int k = 0; k < 3; k++) {
        int64_t best = -1;
        double bd = 0;
        for (int64_t i = 0; i < n; i++) {
            const double dd = fabs((double)y[i] - (double)r[i]);
            if (!(dd > bd)) continue; /* NaN-safe: equal -inf pairs give NaN */
            bool taken = false;
            for (int j = 0; j < op->n_top; j++) taken |= op->top[j].at.flat == i;
            if (!taken) bd = dd, best = i;
        }
        if (best < 0) break;
        dv_cmp_locate(&op->top[op->n_top].at, best, &op->iso, c, pos0);
        op->top[op->n_top].test = y[best];
        op->top[op->n_top].ref = r[best];
        op->n_top++;
    }
}

static void input_names(struct rp *x, const int in[2], int lt, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; k < 2 && in[k] >= 0; k++)
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", k ? ", " : "",
                              x->ref->t[in[k]].name);
    if (lt == DV_LT_KQ || lt == DV_LT_ATTN_OUT)
        snprintf(buf + n, n < cap ? cap - n : 0, ", %s cache", lt == DV_LT_KQ ? "k" : "v");
    if (lt == DV_LT_ATTN_IN && x->layer == 0) snprintf(buf, cap, "token ids");
}

/* Replay one op: tensor i of the pass. */
static dv_status replay_op(struct rp *x, const struct dv_bisect_opts *o, int i, int pass,
                           struct dv_replay_op *op)
{
    const struct dv_captured *r = &x->ref->t[i];
    snprintf(op->name, sizeof op->name, "%s", r->name);
    snprintf(op->op, sizeof op->op, "%s", dv_op_name(r->op));
    full_row(x, o, i, pass, &op->full);
    op->amp = NAN;
    op->role = DV_ROLE_OK;
    const int lt = x->layer >= 0 ? i - lt_index(x, x->layer, 0) : -1;
    if (r->op == DV_OP_VIEW) { /* blk.L.attn_in, L > 0: the previous layer's out */
        op->role = DV_ROLE_NONE;
        snprintf(op->inputs, sizeof op->inputs, "blk.%d.out", x->layer - 1);
        return DV_OK;
    }
    /* live: y is the op alone on the test backend, judged against the
     * reference's output rf; a dump: y is the test's own output, rf the
     * reference engine's op on the test's own inputs */
    const bool dump = !x->alone;
    float *buf = malloc((size_t)r->count * sizeof *buf);
    double *z = x->floor ? malloc((size_t)r->count * sizeof *z) : NULL;
    const float *y = dump ? in32(x, i) : buf, *rf = dump ? buf : ref32(x, i);
    if (!buf || (x->floor && !z) || (!dump && !rf)) {
        free(buf), free(z);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    struct dv_op_call k;
    int in[2];
    dv_status st = y ? op_call(x, i, &k, in) : DV_E_INPUT;
    if (st == DV_E_INPUT && dump) { /* the dump lacks the output or an input */
        op->role = DV_ROLE_UNDUMPED;
        free(buf), free(z);
        return DV_OK;
    }
    if (!st && dv_op_call_count(x->c, &k) != r->count)
        st = dv_fail(DV_E_RUNTIME, "replay of %s: %lld values, the op makes %lld", r->name,
                     (long long)r->count, (long long)dv_op_call_count(x->c, &k));
    if (!st && !dump && !dv_engine_has_op(x->alone, k.op)) { /* no such op alone */
        op->role = DV_ROLE_NOREPLAY;
        free(buf), free(z);
        return DV_OK;
    }
    if (!st) st = dv_engine_run_op(dump ? x->ref_e : x->alone, &k, buf);
    if (!st && z) st = dv_engine_run_op(x->floor, &k, z);
    double e_decl = -1; /* the declared arithmetic's share: rf against the exact op */
    if (!st && x->exact) {
        double *ze = malloc((size_t)r->count * sizeof *ze);
        st = ze ? dv_engine_run_op(x->exact, &k, ze) : dv_fail(DV_E_NOMEM, "out of memory");
        if (!st) {
            struct dv_metrics d;
            dv_metrics_init(&d);
            dv_metrics_add(&d, rf, DV_METRIC_F32, ze, DV_METRIC_F64, r->count, 0,
                           &op->full.tol.metric);
            e_decl = dv_metrics_rel_rms(&d);
        }
        free(ze);
    }
    if (!st) {
        input_names(x, in, lt, op->inputs, sizeof op->inputs);
        op->iso = op->full;
        dv_cmp_judge(&op->iso, x->c, x->pos0, y, DV_TYPE_F32, rf, DV_TYPE_F32, z,
                     DV_TYPE_F64);
        if (e_decl >= 0) dv_cmp_allow_declared(&op->iso, e_decl);
        dv_replay_top_diffs(op, x->c, x->pos0, y, rf, r->count);
        op->in_err = 0;
        for (int k2 = 0; k2 < 2 && in[k2] >= 0; k2++) {
            struct dv_cmp_row w;
            full_row(x, o, in[k2], pass, &w);
            const double e = dv_metrics_rel_rms(&w.m);
            if (e > op->in_err || isnan(e)) op->in_err = e;
        }
        if (op->in_err > 0) op->amp = dv_metrics_rel_rms(&op->full.m) / op->in_err;
    }
    free(buf), free(z);
    return st;
}

/* The replay state of layer `layer` of the pass src holds. */
static struct rp rp_of(const struct dv_model *m, const struct dv_replay_src *src, int layer,
                       const int32_t *tokens)
{
    const struct dv_capture *ref = src->ref;
    return (struct rp){.m = m, .c = &m->cfg, .test = src->test, .ref = ref,
                       .oracle = src->oracle, .alone = src->alone, .ref_e = src->ref_e,
                       .floor = src->floor, .exact = src->exact,
                       .in = src->alone ? ref : src->test, .layer = layer, .pos0 = ref->pos0,
                       .T = ref->n_tokens, .n_ctx = src->n_ctx, .tokens = tokens,
                       .kc = src->kc, .vc = src->vc, .k_ok = src->k_ok, .v_ok = src->v_ok};
}

dv_status dv_replay_layer(const struct dv_model *m, const struct dv_bisect_opts *o,
                          const int32_t *tokens, int layer, const struct dv_replay_src *src,
                          struct dv_bisect_result *r)
{
    const struct dv_capture *ref = src->ref;
    struct rp x = rp_of(m, src, layer, tokens);
    const int first = layer >= 0 ? lt_index(&x, layer, 0) : gt_index(&x, 0);
    const int count = layer >= 0 ? DV_LT_COUNT : DV_GT_COUNT;
    x.r32 = calloc((size_t)ref->n, sizeof *x.r32);
    r->ops = calloc((size_t)count, sizeof *r->ops);
    dv_status st = x.r32 && r->ops ? DV_OK : dv_fail(DV_E_NOMEM, "out of memory");
    for (int k = 0; !st && k < count; k++) {
        st = replay_op(&x, o, first + k, r->replay_pass, &r->ops[k]);
        r->n_ops = k + 1;
    }
    /* roles: the first op diverging alone starts it; ops that diverge in
     * the full run only carry what came in */
    for (int k = 0; !st && k < r->n_ops; k++) {
        struct dv_replay_op *op = &r->ops[k];
        if (op->role == DV_ROLE_NONE || op->role == DV_ROLE_UNDUMPED ||
            op->role == DV_ROLE_NOREPLAY)
            continue;
        if (op->iso.status == DV_ROW_BROKEN) { /* the live run checked the reference */
            st = dv_fail(DV_E_RUNTIME, "replay of %s: %s", op->name, op->iso.why);
            break;
        }
        if (op->iso.status == DV_ROW_DIVERGED) {
            op->role = r->culprit < 0 ? DV_ROLE_CULPRIT : DV_ROLE_ALSO;
            if (r->culprit < 0) r->culprit = k;
        } else {
            op->role = op->full.status == DV_ROW_DIVERGED ? DV_ROLE_PROPAGATED : DV_ROLE_OK;
        }
    }
    for (int i = 0; x.r32 && i < ref->n; i++) free(x.r32[i]);
    free(x.r32);
    return st;
}

/* ---- a case: the culprit alone, as a dump -------------------------------------- */

/* Tensor i of the pass (its name and shape from the reference's capture)
 * into the open pass of d. */
static dv_status put(dv_dump *d, const struct dv_captured *id, int64_t order, const float *v)
{
    return dv_dump_write(d, id->name, id->layer, dv_op_name(id->op), order, id->n_dims,
                         id->shape, DV_DUMP_F32, v);
}

/* The cache rows of layer L at pass q (positions pos .. pos + T - 1) of
 * the side that fed the ops, as its k_rope or v tensor of that pass. */
static dv_status put_cache(dv_dump *d, const struct dv_config *c, const float *cache,
                           int n_ctx, int L, int lt, int pos, int T)
{
    const int64_t kvd = c->n_head_kv * c->head_dim;
    const int64_t shape[3] = {T, c->n_head_kv, c->head_dim};
    const float *rows = cache + ((size_t)L * (size_t)n_ctx + (size_t)pos) * (size_t)kvd;
    char name[48];
    snprintf(name, sizeof name, "blk.%d.%s", L, dv_layer_tensor_name(lt));
    return dv_dump_write(d, name, L, NULL, dv_tensor_index(L, lt), 3, shape, DV_DUMP_F32, rows);
}

dv_status dv_replay_export(const struct dv_model *m, const struct dv_bisect_opts *o,
                           int pass, int layer, int tensor, const struct dv_replay_src *src,
                           dv_dump *d)
{
    const struct dv_config *c = &m->cfg;
    const struct dv_capture *ref = src->ref;
    int pos = 0;
    for (int p = 0; p < pass; p++) pos += o->sched[p];
    struct rp x = rp_of(m, src, layer, o->tokens + pos);
    x.r32 = calloc((size_t)ref->n, sizeof *x.r32);
    const struct dv_captured *id = &ref->t[tensor];
    float *y = malloc((size_t)(id->count ? id->count : 1) * sizeof *y);
    dv_status st = x.r32 && y ? DV_OK : dv_fail(DV_E_NOMEM, "out of memory");
    struct dv_op_call k;
    int in[2] = {-1, -1};
    if (!st && (st = op_call(&x, tensor, &k, in)) == DV_E_INPUT)
        st = dv_fail(DV_E_RUNTIME, "export of %s: an input is missing", id->name);
    /* the op's output as the test gave it: alone on the test backend, or
     * the dump's own */
    if (!st && src->alone) st = dv_engine_run_op(src->alone, &k, y);
    if (!st && !src->alone) memcpy(y, in32(&x, tensor), (size_t)id->count * sizeof *y);
    const bool cache = k.op == DV_OP_KQ || k.op == DV_OP_KQV;
    const int clt = k.op == DV_OP_KQ ? DV_LT_K_ROPE : DV_LT_V;
    for (int p = 0, q0 = 0; !st && p <= pass; q0 += o->sched[p++]) {
        st = dv_dump_begin_pass(d, p, q0, o->sched[p], o->tokens + q0);
        if (!st && p < pass && cache) /* the earlier passes' rows of the cache */
            st = put_cache(d, c, k.op == DV_OP_KQ ? src->kc : src->vc, src->n_ctx, layer, clt,
                           q0, o->sched[p]);
        if (!st && p < pass && !cache) { /* a pass holds a tensor: its embedding rows */
            const struct dv_captured *e = &ref->t[0];
            const int64_t shape[2] = {o->sched[p], c->d_model};
            float *rows = malloc((size_t)(shape[0] * shape[1]) * sizeof *rows);
            struct dv_op_call g = {.op = DV_OP_GET_ROWS, .layer = 0, .T = o->sched[p],
                                   .pos0 = q0, .w = m->tok_embd, .ids = o->tokens + q0};
            st = rows ? dv_engine_run_op(src->ref_e, &g, rows)
                      : dv_fail(DV_E_NOMEM, "out of memory");
            if (!st) st = dv_dump_write(d, e->name, 0, NULL, 0, 2, shape, DV_DUMP_F32, rows);
            free(rows);
        }
        for (int j = 0; !st && p == pass && j < 2; j++)
            if (in[j] >= 0) st = put(d, &ref->t[in[j]], in[j], in32(&x, in[j]));
        if (!st && p == pass) st = put(d, id, tensor, y);
        if (!st) st = dv_dump_end_pass(d);
    }
    for (int i = 0; x.r32 && i < ref->n; i++) free(x.r32[i]);
    free(x.r32), free(y);
    return st;
}
