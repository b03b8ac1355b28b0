/*
 * testutil.h - helpers shared by the unit tests: fixture paths, temporary
 * directories, a hook that collects every tensor, and error metrics.
 * Header-only so each test program stays one file plus this.
 */
#ifndef DV_TESTUTIL_H
#define DV_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "fixture.h"

/* xorshift32 (Marsaglia 2003); the state is the caller's, never global. */
static inline uint32_t tu_xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Uniform in [-1, 1), multiples of 2^-23. */
static inline float tu_rand_signed(uint32_t *s)
{
    return (float)(tu_xorshift32(s) >> 8) * 0x1p-23f - 1.0f;
}

static inline const char *tu_fixtures(void)
{
    const char *d = getenv("DV_FIXTURES");
    return d ? d : "fixtures";
}

/* A fresh temporary directory; removed (files inside too) by tu_rmdir. */
static inline char *tu_tmpdir(void)
{
    char *t = strdup("/tmp/dvtest.XXXXXX");
    if (!mkdtemp(t)) {
        free(t);
        return NULL;
    }
    return t;
}

static inline void tu_rmdir(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

/* The temporary directory of a test program, made by tu_group_setup and
 * removed by tu_group_teardown (cmocka group fixtures). */
static char *tu_tmp;

static inline int tu_group_setup(void **state)
{
    (void)state;
    tu_tmp = tu_tmpdir();
    return tu_tmp ? 0 : -1;
}

static inline int tu_group_teardown(void **state)
{
    (void)state;
    tu_rmdir(tu_tmp);
    tu_tmp = NULL;
    return 0;
}

/* Path dir/name in a static rotating buffer. */
static inline const char *tu_path(const char *dir, const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Write fixtures names[n] as tu_tmp/NAME.gguf (a group setup's job);
 * -1 when one fails. */
static inline int tu_write_fixtures(const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char file[64];
        snprintf(file, sizeof file, "%s.gguf", names[i]);
        if (dv_fixture_write(names[i], tu_path(tu_tmp, file))) return -1;
    }
    return 0;
}

/* Every tensor a pass hands out, widened to double. */
struct tu_tensor {
    char name[48];
    int pass, layer, op, order, n_dims, pos0, n_tokens;
    int64_t shape[4];
    size_t n;
    double *v;
};

struct tu_collect {
    struct tu_tensor *t;
    int n, cap;
    const char *only; /* collect just this name when set */
};

static inline bool tu_want(void *user, const struct dv_tensor_desc *d)
{
    struct tu_collect *c = user;
    return !c->only || strcmp(c->only, d->name) == 0;
}

static inline dv_status tu_take(void *user, const struct dv_tensor_desc *d,
                                const void *data)
{
    struct tu_collect *c = user;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->t = realloc(c->t, (size_t)c->cap * sizeof *c->t);
    }
    struct tu_tensor *t = &c->t[c->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", d->name);
    t->pass = d->pass, t->layer = d->layer, t->op = d->op, t->order = d->order;
    t->n_dims = d->n_dims, t->pos0 = d->pos0, t->n_tokens = d->n_tokens;
    t->n = 1;
    for (int i = 0; i < d->n_dims; i++) t->n *= (size_t)(t->shape[i] = d->shape[i]);
    t->v = malloc(t->n * sizeof *t->v);
    for (size_t i = 0; i < t->n; i++)
        t->v[i] = d->type == DV_TYPE_F64 ? ((const double *)data)[i]
                                         : ((const float *)data)[i];
    return DV_OK;
}

static inline struct dv_hook tu_hook(struct tu_collect *c)
{
    return (struct dv_hook){.want = tu_want, .take = tu_take, .user = c};
}

static inline void tu_collect_free(struct tu_collect *c)
{
    for (int i = 0; i < c->n; i++) free(c->t[i].v);
    free(c->t);
    memset(c, 0, sizeof *c);
}

static inline const struct tu_tensor *tu_find(const struct tu_collect *c, int pass,
                                              const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (c->t[i].pass == pass && strcmp(c->t[i].name, name) == 0) return &c->t[i];
    return NULL;
}

/* sum (a-b)^2 / sum b^2 over finite b; infinities must match exactly
 * (masked scores are -inf on both sides) or the result is +inf. */
static inline double tu_nmse(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(b[i]) || isinf(a[i])) {
            if (a[i] != b[i]) return INFINITY;
            continue;
        }
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

static inline double tu_max_abs(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i]) continue; /* also equal infinities */
        double d = fabs(a[i] - b[i]);
        m = d > m || isnan(d) ? d : m;
    }
    return m;
}

/* Open model path and run `sched` (pass sizes) over toks, collecting into c;
 * extra (may be NULL) gives the backend options (device, fault, split). */
static inline dv_status tu_run_with(const char *path, int backend,
                                    const struct dv_engine_opts *extra,
                                    const int32_t *toks, const int *sched, int n_pass,
                                    struct tu_collect *c)
{
    struct dv_model *m;
    dv_status s = dv_model_open(path, &m);
    if (s) return s;
    int n_tok = 0, maxp = 1;
    for (int i = 0; i < n_pass; i++) {
        n_tok += sched[i];
        maxp = sched[i] > maxp ? sched[i] : maxp;
    }
    struct dv_engine *e;
    struct dv_engine_opts o = {0};
    if (extra) o = *extra;
    o.n_ctx = n_tok, o.n_batch = maxp;
    s = dv_engine_open(m, backend, &o, &e);
    struct dv_hook h = tu_hook(c);
    for (int i = 0, pos = 0; !s && i < n_pass; pos += sched[i++])
        s = dv_engine_forward(e, toks + pos, sched[i], pos, &h);
    dv_engine_free(e);
    dv_model_free(m);
    return s;
}

static inline dv_status tu_run(const char *path, int backend, const int32_t *toks,
                               const int *sched, int n_pass, struct tu_collect *c)
{
    return tu_run_with(path, backend, NULL, toks, sched, n_pass, c);
}

#endif
