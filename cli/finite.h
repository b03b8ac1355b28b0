/*
 * finite.h - NaN and infinity in `diverge run`: a census of one
 * position's logits, and a hook that finds the first tensor of a run that
 * holds a non-finite value (where a broken kernel's NaN first appears).
 */
#ifndef DV_CLI_FINITE_H
#define DV_CLI_FINITE_H

#include <stdbool.h>
#include <stdint.h>

#include "hook.h"

/* The non-finite values of one vector of logits; first_* are indices,
 * -1 when there is none. */
struct dv_logit_census {
    int64_t n, n_nan, n_posinf, n_neginf;
    int64_t first_nan, first_posinf;
};

/* Count x[n]'s NaNs and infinities into *c. */
void dv_logit_census(const double *x, int64_t n, struct dv_logit_census *c);

/* Logits are not finite when a value is NaN or +inf, or when none is above
 * -inf (-inf alone is a legal logit: probability 0), as diverge logits
 * judges them. */
bool dv_logit_census_bad(const struct dv_logit_census *c);

/* The first tensor, in execution order over every pass a hook sees, that
 * holds a NaN or an infinity. The -inf of the causal mask in kq is legal
 * and does not count there (NaN and +inf do). */
struct dv_nan_watch {
    bool found;
    int pass, layer, op;
    char name[48];
    int n_dims;
    int64_t shape[4];
    int64_t n_nan, n_inf; /* counts over that tensor */
    int64_t first;        /* flat row-major index of its first non-finite value */
};

/* A hook filling w (borrowed; zero it first). It asks for every tensor
 * until one is found, then for none, so a device backend stops reading
 * tensors back once the answer is known. */
struct dv_hook dv_nan_watch_hook(struct dv_nan_watch *w);

#endif
