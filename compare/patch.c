/*
 * patch.c - activation patching (design.md, Bisect step 4): for every
 * position whose top-1 token the test backend flips, which layer makes the
 * flip?
 *
 * The test backend and the reference run the whole schedule; positions
 * whose top-1 differ are the flips. Then, for L = 1, 2, ..., the test runs
 * the schedule again from layer L on, every pass fed the reference's
 * residual leaving layer L-1 (blk.L-1.out): layers 0..L-1 are the
 * reference's, L.. the test's, on a cache the patched run builds itself.
 * The first L whose run gives a flip back its reference top-1 names layer
 * L-1: replacing it (and what came before) with the reference restores the
 * token, while every smaller L leaves the flip in. A flip that no patch up
 * to the last layer restores comes from the last layer or the output ops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bisect.h"
#include "engine.h"
#include "error.h"
#include "ops.h"
#include "types.h"

/* What one run keeps: the top-1 of every position, and (the reference)
 * the residual leaving every layer of every pass. */
struct keep {
    const struct dv_model *m;
    const struct dv_bisect_opts *o;
    int32_t *top;        /* [n_tokens] */
    float **res;         /* [n_pass * n_layer] blk.L.out as f32, or NULL */
    int pass, pos0;
};

static bool keep_want(void *u, const struct dv_tensor_desc *d)
{
    const struct keep *k = u;
    const size_t n = strlen(d->name);
    return (d->layer < 0 && !strcmp(d->name, "logits")) ||
           (k->res && d->layer >= 0 && n > 4 && !strcmp(d->name + n - 4, ".out"));
}

static dv_status keep_take(void *u, const struct dv_tensor_desc *d, const void *data)
{
    struct keep *k = u;
    const struct dv_config *c = &k->m->cfg;
    const int T = d->n_tokens;
    if (d->layer >= 0) { /* blk.L.out */
        float **r = &k->res[(size_t)d->pass * (size_t)c->n_layer + (size_t)d->layer];
        const int64_t n = (int64_t)T * c->d_model;
        if (!*r && !(*r = malloc((size_t)n * sizeof **r)))
            return dv_fail(DV_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++)
            (*r)[i] = d->type == DV_TYPE_F64 ? (float)((const double *)data)[i]
                                             : ((const float *)data)[i];
        return DV_OK;
    }
    for (int t = 0; t < T; t++) { /* logits: the top-1 of each position */
        int64_t best = 0;
        double bv = 0;
        for (int64_t v = 0; v < c->n_vocab; v++) {
            const int64_t i = (int64_t)t * c->n_vocab + v;
            const double x = d->type == DV_TYPE_F64 ? ((const double *)data)[i]
                                                    : ((const float *)data)[i];
            if (v == 0 || x > bv) bv = x, best = v;
        }
        k->top[d->pos0 + t] = (int32_t)best;
    }
    return DV_OK;
}

/* The schedule on engine e, from layer L (0: the whole pass) fed k's
 * reference residuals `from` of layer L-1. */
static dv_status run_all(struct dv_engine *e, const struct dv_bisect_opts *o, int L,
                         float **from, int n_layer, struct keep *k)
{
    const struct dv_hook h = {.want = keep_want, .take = keep_take, .user = k};
    dv_status st = DV_OK;
    for (int p = 0, pos = 0; !st && p < o->n_pass; pos += o->sched[p++]) {
        k->pass = p, k->pos0 = pos;
        if (L == 0) {
            st = dv_engine_forward(e, o->tokens + pos, o->sched[p], pos, &h);
        } else {
            const float *x = from[(size_t)p * (size_t)n_layer + (size_t)(L - 1)];
            st = x ? dv_engine_forward_from(e, o->tokens + pos, o->sched[p], pos, L, x, &h)
                   : dv_fail(DV_E_RUNTIME, "patching: no reference residual of layer %d",
                             L - 1);
        }
    }
    return st;
}

static dv_status open_test(const struct dv_model *m, const struct dv_bisect_opts *o,
                           int max_t, struct dv_engine **e)
{
    struct dv_engine_opts eo = {.n_ctx = o->n_tokens, .n_batch = max_t, .device = o->device,
                                .validation = o->validation, .inject = o->inject.fault,
                                .inject_layer = o->inject.layer, .kv_type = o->kv_type};
    if (o->test != DV_BACKEND_VULKAN) eo.inject = 0, eo.inject_layer = -1;
    return dv_engine_open(m, o->test, &eo, e);
}

dv_status dv_patch(const struct dv_model *m, const struct dv_bisect_opts *o,
                   const struct dv_arith *ar, struct dv_bisect_result *r)
{
    const int n_layer = (int)m->cfg.n_layer, N = o->n_tokens;
    int max_t = 1;
    for (int p = 0; p < o->n_pass; p++) max_t = o->sched[p] > max_t ? o->sched[p] : max_t;
    struct keep ref = {.m = m, .o = o}, test = {.m = m, .o = o};
    ref.top = calloc((size_t)N, sizeof *ref.top);
    test.top = calloc((size_t)N, sizeof *test.top);
    ref.res = calloc((size_t)o->n_pass * (size_t)n_layer, sizeof *ref.res);
    struct dv_engine *re = NULL, *te = NULL;
    dv_status st = ref.top && test.top && ref.res ? DV_OK
                                                  : dv_fail(DV_E_NOMEM, "out of memory");
    struct dv_engine_opts ro = {.n_ctx = N, .n_batch = max_t, .act_quant = ar->act_quant,
                                .attn_quant = ar->attn_quant, .kv_type = ar->kv_type};
    if (!st) st = dv_engine_open(m, o->ref, &ro, &re);
    if (!st) st = run_all(re, o, 0, NULL, n_layer, &ref);
    if (!st) st = open_test(m, o, max_t, &te);
    if (!st && !dv_engine_backend(te)->forward_from)
        st = dv_fail(DV_E_USAGE, "activation patching needs a test backend that starts a "
                     "pass at a layer; %s does not", dv_engine_backend(te)->name);
    if (!st) st = run_all(te, o, 0, NULL, n_layer, &test);
    dv_engine_free(te), dv_engine_free(re);
    te = NULL;
    /* the flips, in position order */
    r->patch_run = !st;
    for (int i = 0; !st && i < N; i++) {
        if (ref.top[i] == test.top[i]) continue;
        if (r->n_flips == DV_PATCH_MAX_FLIPS) {
            r->flips_truncated = true;
            break;
        }
        int p = 0, pos = 0;
        while (pos + o->sched[p] <= i) pos += o->sched[p++];
        r->flips[r->n_flips++] = (struct dv_patch_flip){
            .pass = p, .pos = i, .ref_top = ref.top[i], .test_top = test.top[i], .layer = -1};
    }
    /* patch from layer L = 1 up until every flip is restored */
    int open = r->n_flips;
    for (int L = 1; !st && open && L < n_layer; L++) {
        for (int i = 0; i < N; i++) test.top[i] = -1;
        st = open_test(m, o, max_t, &te);
        if (!st) st = run_all(te, o, L, ref.res, n_layer, &test);
        dv_engine_free(te);
        te = NULL;
        r->patch_runs++;
        for (int f = 0; !st && f < r->n_flips; f++) {
            struct dv_patch_flip *x = &r->flips[f];
            if (x->layer < 0 && test.top[x->pos] == x->ref_top) x->layer = L - 1, open--;
        }
    }
    for (size_t i = 0; ref.res && i < (size_t)o->n_pass * (size_t)n_layer; i++)
        free(ref.res[i]);
    free(ref.res), free(ref.top), free(test.top);
    return st;
}
