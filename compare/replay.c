/*
 * replay.c - bisect's op replay: each op of one layer of one pass alone on
 * the test backend's single-op runner (kernels/vk_ops.h: the very pipelines
 * the GPU forward pass records, built with the test's fault), fed the
 * reference's tensors of that pass as inputs and the reference's KV cache
 * for attention, judged against the reference's output of the op.
 *
 * The op's oracle is the same op in f64 (core/cpu_ops.h: the functions the
 * cpu-f64 forward runs) on the same f32 inputs widened, so the noise floor
 * of an op alone is that of the reference's f32 arithmetic on exactly
 * those inputs: err(alone, oracle) <= m err(ref, oracle) + floor, as
 * `diverge compare` judges whole runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bisect.h"
#include "cpu_ops.h"
#include "error.h"
#include "gguf.h"
#include "ops.h"
#include "quant.h"
#include "types.h"
#include "vk_ops.h"

/* The tensors of the pass: layer tensor lt of layer L is number
 * L * DV_LT_COUNT + lt, output_norm and logits follow the layers. */
struct rp {
    const struct dv_model *m;
    const struct dv_config *c;
    const struct dv_capture *test, *ref, *oracle;
    int layer, pos0, T, n_ctx;
    const int32_t *tokens;
    const float *kc, *vc;
    struct dv_vkops *ops;
    bool faulty;
    float **r32;   /* [n] the reference's tensors as f32, made on demand */
    double **r64;  /* [n] ... widened to f64 */
};

static int lt_index(const struct rp *x, int layer, int lt)
{
    return layer * DV_LT_COUNT + lt;
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

/* The f32 inputs the test op gets, widened: what the oracle op reads. */
static const double *ref64(struct rp *x, int i)
{
    const float *f = ref32(x, i);
    const int64_t n = x->ref->t[i].count;
    if (f && !x->r64[i] && (x->r64[i] = malloc((size_t)n * sizeof(double))))
        for (int64_t j = 0; j < n; j++) x->r64[i][j] = (double)f[j];
    return x->r64[i];
}

/* A norm vector (any type) as f32 and f64. */
static dv_status norm_vec(const struct dv_gguf_tensor *t, float **f, double **d)
{
    const int64_t n = t->ne[0];
    *f = malloc((size_t)n * sizeof **f);
    *d = malloc((size_t)n * sizeof **d);
    if (!*f || !*d) return dv_fail(DV_E_NOMEM, "out of memory");
    dv_status st = dv_dequant_row(t->type, t->data, *f, n);
    for (int64_t i = 0; i < n; i++) (*d)[i] = (*f)[i];
    return st;
}

/* The reference's cache of the layer, positions 0..pos0-1 of earlier
 * passes then this pass's rows `now` (index i), as f64 [(pos0+T), kvd]. */
static double *cache64(struct rp *x, const float *cache, int i)
{
    const int64_t kvd = x->c->n_head_kv * x->c->head_dim, past = (int64_t)x->pos0 * kvd;
    const float *now = ref32(x, i);
    double *d = malloc((size_t)(past + x->T * kvd) * sizeof *d);
    if (!d || !now) {
        free(d);
        return NULL;
    }
    const float *base = cache + (size_t)x->layer * (size_t)x->n_ctx * (size_t)kvd;
    for (int64_t j = 0; j < past; j++) d[j] = base[j];
    for (int64_t j = 0; j < x->T * kvd; j++) d[past + j] = now[j];
    return d;
}

/* Run the op that makes tensor `out` alone: y (f32, test backend) and z
 * (f64, the oracle; NULL without oracle). `in` gets its input tensors'
 * indices (-1 ends), `what` their names for the report. */
static dv_status run_op(struct rp *x, int out, float *y, double *z, int in[3])
{
    const struct dv_config *c = x->c;
    const int T = x->T, pos0 = x->pos0, L = x->layer;
    const int64_t d = c->d_model, H = c->n_head, Hkv = c->n_head_kv, hd = c->head_dim;
    const int64_t F = c->n_ff;
    struct dv_vkops *o = x->ops;
    const bool f = x->faulty;
    in[0] = in[1] = in[2] = -1;
    const struct dv_gguf_tensor *w = NULL, *norm = NULL;
    int lt = -1, gt = -1;
    if (L >= 0)
        lt = out - lt_index(x, L, 0);
    else
        gt = out - gt_index(x, 0);
    dv_status st = DV_OK;

    /* matmuls: which weight reads which input */
    int mm_in = -1;
    if (L >= 0) {
        const struct dv_layer *ml = &x->m->layers[L];
        switch (lt) {
        case DV_LT_Q: w = ml->wq, mm_in = DV_LT_ATTN_NORM; break;
        case DV_LT_K: w = ml->wk, mm_in = DV_LT_ATTN_NORM; break;
        case DV_LT_V: w = ml->wv, mm_in = DV_LT_ATTN_NORM; break;
        case DV_LT_ATTN_PROJ: w = ml->wo, mm_in = DV_LT_ATTN_OUT; break;
        case DV_LT_FFN_GATE: w = ml->ffn_gate, mm_in = DV_LT_FFN_NORM; break;
        case DV_LT_FFN_UP: w = ml->ffn_up, mm_in = DV_LT_FFN_NORM; break;
        case DV_LT_FFN_OUT: w = ml->ffn_down, mm_in = DV_LT_FFN_ACT; break;
        case DV_LT_ATTN_NORM: norm = ml->attn_norm, in[0] = lt_index(x, L, DV_LT_ATTN_IN); break;
        case DV_LT_FFN_NORM: norm = ml->ffn_norm, in[0] = lt_index(x, L, DV_LT_FFN_IN); break;
        default: break;
        }
        if (mm_in >= 0) in[0] = lt_index(x, L, mm_in);
    } else if (gt == DV_GT_LOGITS) {
        w = x->m->output, in[0] = gt_index(x, DV_GT_OUTPUT_NORM);
    } else {
        norm = x->m->output_norm, in[0] = lt_index(x, (int)c->n_layer - 1, DV_LT_OUT);
    }

    if (w) { /* y = x W^T */
        const float *a = ref32(x, in[0]);
        const double *a64 = z ? ref64(x, in[0]) : NULL;
        if (!a || (z && !a64)) return dv_fail(DV_E_NOMEM, "out of memory");
        st = dv_vkrun_matmul(o, f, w->type, w->data, w->ne[1], w->ne[0], a, T, y);
        if (!st && z) st = dv_cpu_matmul_f64(z, w, a64, T);
        return st;
    }
    if (norm) {
        const float *a = ref32(x, in[0]);
        const double *a64 = z ? ref64(x, in[0]) : NULL;
        float *wf = NULL;
        double *wd = NULL;
        st = norm_vec(norm, &wf, &wd);
        if (!st && (!a || (z && !a64))) st = dv_fail(DV_E_NOMEM, "out of memory");
        if (!st) st = dv_vkrun_rmsnorm(o, f, a, wf, T, (int)d, (float)c->rms_eps, y);
        if (!st && z) dv_cpu_rmsnorm_f64(z, a64, wd, T, d, c->rms_eps);
        free(wf), free(wd);
        return st;
    }

    const int64_t n_kv = pos0 + T, kvd = Hkv * hd;
    switch (lt) {
    case DV_LT_ATTN_IN: { /* layer 0: the embedding rows */
        const struct dv_gguf_tensor *e = x->m->tok_embd;
        st = dv_vkrun_get_rows(o, f, e->type, e->data, e->ne[1], e->ne[0], x->tokens, T, y);
        for (int t = 0; !st && z && t < T; t++) {
            size_t rb = 0;
            dv_row_size(e->type, e->ne[0], &rb);
            float *row = malloc((size_t)d * sizeof *row);
            if (!row) return dv_fail(DV_E_NOMEM, "out of memory");
            st = dv_dequant_row(e->type, (const uint8_t *)e->data + (size_t)x->tokens[t] * rb,
                                row, d);
            for (int64_t i = 0; i < d; i++) z[t * d + i] = row[i];
            free(row);
        }
        return st;
    }
    case DV_LT_Q_ROPE:
    case DV_LT_K_ROPE: {
        const int64_t nh = lt == DV_LT_Q_ROPE ? H : Hkv;
        in[0] = lt_index(x, L, lt == DV_LT_Q_ROPE ? DV_LT_Q : DV_LT_K);
        const float *a = ref32(x, in[0]);
        if (!a) return dv_fail(DV_E_NOMEM, "out of memory");
        st = dv_vkrun_rope(o, f, a, T, (int)nh, (int)hd, (int)c->n_rot, c->rope_mode, pos0,
                           c->rope_base, y);
        if (!st && z) {
            const int64_t half = c->n_rot / 2;
            double *tab = malloc((size_t)(2 * T * (half ? half : 1)) * sizeof *tab);
            const double *a64 = ref64(x, in[0]);
            if (!tab || !a64) {
                free(tab);
                return dv_fail(DV_E_NOMEM, "out of memory");
            }
            dv_cpu_rope_table_f64(tab, tab + T * half, T, pos0, c->n_rot, c->rope_base);
            memcpy(z, a64, (size_t)(T * nh * hd) * sizeof *z);
            dv_cpu_rope_f64(z, T, nh, hd, c->n_rot, c->rope_mode, tab, tab + T * half);
            free(tab);
        }
        return st;
    }
    case DV_LT_KQ:
    case DV_LT_ATTN_OUT: {
        const bool kq = lt == DV_LT_KQ;
        in[0] = lt_index(x, L, kq ? DV_LT_Q_ROPE : DV_LT_KQ_SOFTMAX);
        in[1] = lt_index(x, L, kq ? DV_LT_K_ROPE : DV_LT_V);
        const float *a = ref32(x, in[0]), *now = ref32(x, in[1]);
        const float *past = (kq ? x->kc : x->vc) + (size_t)L * (size_t)x->n_ctx * (size_t)kvd;
        if (!a || !now) return dv_fail(DV_E_NOMEM, "out of memory");
        st = kq ? dv_vkrun_kq(o, f, a, past, now, T, pos0, (int)H, (int)Hkv, (int)hd, y)
                : dv_vkrun_kqv(o, f, a, past, now, T, pos0, (int)H, (int)Hkv, (int)hd, y);
        if (!st && z) {
            double *cache = cache64(x, kq ? x->kc : x->vc, in[1]);
            const double *a64 = ref64(x, in[0]);
            if (!cache || !a64) {
                free(cache);
                return dv_fail(DV_E_NOMEM, "out of memory");
            }
            if (kq)
                dv_cpu_kq_f64(z, a64, cache, T, pos0, H, Hkv, hd);
            else
                dv_cpu_kqv_f64(z, a64, cache, T, pos0, H, Hkv, hd);
            free(cache);
        }
        return st;
    }
    case DV_LT_KQ_SOFTMAX: {
        in[0] = lt_index(x, L, DV_LT_KQ);
        const float *a = ref32(x, in[0]);
        if (!a) return dv_fail(DV_E_NOMEM, "out of memory");
        st = dv_vkrun_softmax(o, f, a, (int)(H * T), (int)n_kv, y);
        if (!st && z) {
            const double *a64 = ref64(x, in[0]);
            if (!a64) return dv_fail(DV_E_NOMEM, "out of memory");
            memcpy(z, a64, (size_t)(H * T * n_kv) * sizeof *z);
            dv_cpu_softmax_f64(z, H * T, n_kv);
        }
        return st;
    }
    case DV_LT_FFN_IN:
    case DV_LT_OUT:
    case DV_LT_FFN_ACT: {
        const bool act = lt == DV_LT_FFN_ACT;
        const int64_t n = act ? T * F : T * d;
        in[0] = lt_index(x, L, act ? DV_LT_FFN_GATE : lt == DV_LT_OUT ? DV_LT_FFN_IN
                                                                       : DV_LT_ATTN_IN);
        in[1] = lt_index(x, L, act ? DV_LT_FFN_UP : lt == DV_LT_OUT ? DV_LT_FFN_OUT
                                                                     : DV_LT_ATTN_PROJ);
        const float *a = ref32(x, in[0]), *b = ref32(x, in[1]);
        if (!a || !b) return dv_fail(DV_E_NOMEM, "out of memory");
        st = act ? dv_vkrun_silu_mul(o, a, b, n, y) : dv_vkrun_add(o, a, b, n, y);
        if (!st && z) {
            const double *a64 = ref64(x, in[0]), *b64 = ref64(x, in[1]);
            if (!a64 || !b64) return dv_fail(DV_E_NOMEM, "out of memory");
            memcpy(z, a64, (size_t)n * sizeof *z);
            if (act)
                dv_cpu_silu_mul_f64(z, b64, n);
            else
                for (int64_t i = 0; i < n; i++) z[i] += b64[i];
        }
        return st;
    }
    default:
        return dv_fail(DV_E_RUNTIME, "replay: no op for tensor %d", out);
    }
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
static void top_diffs(struct rp *x, struct dv_replay_op *op, const float *y, const float *r,
                      int64_t n)
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
        dv_cmp_locate(&op->top[op->n_top].at, best, &op->iso, x->c, x->pos0);
        op->top[op->n_top].test = y[best];
        op->top[op->n_top].ref = r[best];
        op->n_top++;
    }
}

static void input_names(struct rp *x, const int in[3], int lt, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; k < 3 && in[k] >= 0; k++)
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
    float *y = malloc((size_t)r->count * sizeof *y);
    double *z = o->oracle >= 0 ? malloc((size_t)r->count * sizeof *z) : NULL;
    const float *rf = ref32(x, i);
    if (!y || (o->oracle >= 0 && !z) || !rf) {
        free(y), free(z);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    int in[3];
    dv_status st = run_op(x, i, y, z, in);
    if (!st) {
        input_names(x, in, lt, op->inputs, sizeof op->inputs);
        op->iso = op->full;
        dv_cmp_judge(&op->iso, x->c, x->pos0, y, DV_TYPE_F32, rf, DV_TYPE_F32, z,
                     DV_TYPE_F64);
        top_diffs(x, op, y, rf, r->count);
        op->in_err = 0;
        for (int k = 0; k < 3 && in[k] >= 0; k++) {
            struct dv_cmp_row w;
            full_row(x, o, in[k], pass, &w);
            const double e = dv_metrics_rel_rms(&w.m);
            if (e > op->in_err || isnan(e)) op->in_err = e;
        }
        if (op->in_err > 0) op->amp = dv_metrics_rel_rms(&op->full.m) / op->in_err;
    }
    free(y), free(z);
    return st;
}

dv_status dv_replay_layer(const struct dv_model *m, const struct dv_bisect_opts *o,
                          const int32_t *tokens, int layer, const struct dv_capture *test,
                          const struct dv_capture *ref, const struct dv_capture *oracle,
                          const float *kc, const float *vc, int n_ctx,
                          struct dv_bisect_result *r)
{
    struct rp x = {.m = m, .c = &m->cfg, .test = test, .ref = ref, .oracle = oracle,
                   .layer = layer, .pos0 = ref->pos0, .T = ref->n_tokens, .n_ctx = n_ctx,
                   .tokens = tokens, .kc = kc, .vc = vc};
    x.faulty = o->inject.fault && (layer >= 0 ? o->inject.layer < 0 || o->inject.layer == layer
                                              : o->inject.layer < 0);
    const int first = layer >= 0 ? lt_index(&x, layer, 0) : gt_index(&x, 0);
    const int count = layer >= 0 ? DV_LT_COUNT : DV_GT_COUNT;
    x.r32 = calloc((size_t)ref->n, sizeof *x.r32);
    x.r64 = calloc((size_t)ref->n, sizeof *x.r64);
    r->ops = calloc((size_t)count, sizeof *r->ops);
    dv_status st = x.r32 && x.r64 && r->ops ? DV_OK : dv_fail(DV_E_NOMEM, "out of memory");
    struct dv_vk *vk = NULL;
    if (!st) st = dv_vk_open(o->device, o->validation, &vk);
    if (!st) st = dv_vkops_new(vk, o->inject.fault, &x.ops);
    for (int k = 0; !st && k < count; k++) {
        st = replay_op(&x, o, first + k, r->replay_pass, &r->ops[k]);
        r->n_ops = k + 1;
    }
    /* roles: the first op diverging alone starts it; ops that diverge in
     * the full run only carry what came in */
    for (int k = 0; !st && k < r->n_ops; k++) {
        struct dv_replay_op *op = &r->ops[k];
        if (op->role == DV_ROLE_NONE) continue;
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
    dv_vkops_free(x.ops);
    dv_vk_close(vk);
    for (int i = 0; i < ref->n; i++) {
        if (x.r32 && x.r32[i]) free(x.r32[i]);
        if (x.r64 && x.r64[i]) free(x.r64[i]);
    }
    free(x.r32), free(x.r64);
    return st;
}
