/* finite.c - NaN and infinity counts for `diverge run` (finite.h). */
#include "finite.h"

#include <math.h>
#include <stdio.h>

#include "ops.h"
#include "types.h"

void dv_logit_census(const double *x, int64_t n, struct dv_logit_census *c)
{
    *c = (struct dv_logit_census){.n = n, .first_nan = -1, .first_posinf = -1};
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            if (!c->n_nan++) c->first_nan = i;
        } else if (isinf(x[i])) {
            if (x[i] < 0) c->n_neginf++;
            else if (!c->n_posinf++) c->first_posinf = i;
        }
    }
}

bool dv_logit_census_bad(const struct dv_logit_census *c)
{
    return c->n_nan || c->n_posinf || c->n_neginf == c->n;
}

static bool watch_want(void *user, const struct dv_tensor_desc *d)
{
    const struct dv_nan_watch *w = user;
    return !w->found;
}

static dv_status watch_take(void *user, const struct dv_tensor_desc *d, const void *data)
{
    struct dv_nan_watch *w = user;
    if (w->found) return DV_OK;
    int64_t n = 1, n_nan = 0, n_inf = 0, first = -1;
    for (int k = 0; k < d->n_dims; k++) n *= d->shape[k];
    const bool mask_ok = d->op == DV_OP_KQ; /* -inf: a masked score */
    for (int64_t i = 0; i < n; i++) {
        double v = d->type == DV_TYPE_F64 ? ((const double *)data)[i]
                                          : ((const float *)data)[i];
        if (isfinite(v) || (mask_ok && v == -INFINITY)) continue;
        if (first < 0) first = i;
        if (isnan(v)) n_nan++;
        else n_inf++;
    }
    if (first < 0) return DV_OK;
    *w = (struct dv_nan_watch){.found = true, .pass = d->pass, .layer = d->layer,
                               .op = d->op, .n_dims = d->n_dims, .n_nan = n_nan,
                               .n_inf = n_inf, .first = first};
    snprintf(w->name, sizeof w->name, "%s", d->name);
    for (int k = 0; k < d->n_dims && k < 4; k++) w->shape[k] = d->shape[k];
    return DV_OK;
}

struct dv_hook dv_nan_watch_hook(struct dv_nan_watch *w)
{
    return (struct dv_hook){.want = watch_want, .take = watch_take, .user = w};
}
