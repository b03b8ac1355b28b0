/*
 * compare.c - align two dumps (and an oracle), measure every common
 * tensor in row blocks, judge it, and summarise by layer.
 *
 * The judging rules are in compare.h; this file is the plumbing: which
 * rows exist, reading them block by block into three buffers, and the
 * per-layer tables.
 */
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "ops.h"
#include "schema.h"
#include "types.h"

/* Elements per side read at once: 64 Ki elements (256 KiB of f32) keeps a
 * block of the three sides in L2 while dv_metrics_add walks it. */
#define BLOCK_ELEMS (64 * 1024)

const char *dv_row_status_name(int s)
{
    static const char *const names[] = {"ok", "diverged", "shape", "missing", "extra",
                                        "skipped", "broken"};
    _Static_assert(sizeof names / sizeof names[0] == DV_ROW_STATUS_COUNT, "row names");
    return s >= 0 && s < DV_ROW_STATUS_COUNT ? names[s] : "?";
}

const char *dv_broken_side_name(int s)
{
    static const char *const names[] = {"none", "ref", "oracle", "disagree"};
    _Static_assert(sizeof names / sizeof names[0] == DV_BROKEN_COUNT, "broken names");
    return s >= 0 && s < DV_BROKEN_COUNT ? names[s] : "?";
}

const char *dv_pass_status_name(int s)
{
    static const char *const names[] = {"matched", "schedule", "tokens", "missing",
                                        "extra"};
    _Static_assert(sizeof names / sizeof names[0] == DV_PASS_STATUS_COUNT, "pass names");
    return s >= 0 && s < DV_PASS_STATUS_COUNT ? names[s] : "?";
}

/* ---- growing arrays and buffers ---------------------------------------- */

struct buf {
    void *p;
    size_t cap;
};

static dv_status buf_reserve(struct buf *b, size_t bytes)
{
    if (bytes <= b->cap) return DV_OK;
    void *p = realloc(b->p, bytes);
    if (!p) return dv_fail(DV_E_NOMEM, "out of memory (%zu bytes for a tensor block)", bytes);
    b->p = p;
    b->cap = bytes;
    return DV_OK;
}

static struct dv_cmp_row *add_row(struct dv_cmp_result *c, int *cap)
{
    if (c->n_rows == *cap) {
        int ncap = *cap ? *cap * 2 : 256;
        struct dv_cmp_row *r = realloc(c->rows, (size_t)ncap * sizeof *r);
        if (!r) return NULL;
        c->rows = r;
        *cap = ncap;
    }
    struct dv_cmp_row *w = &c->rows[c->n_rows++];
    memset(w, 0, sizeof *w);
    w->max_at.flat = w->bad_at.flat = w->broken_at.flat = -1;
    return w;
}

/* ---- sides and passes ---------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void fill_side(struct dv_cmp_side *s, const struct dv_reader *r)
{
    copy_str(s->path, sizeof s->path, r->path);
    copy_str(s->backend, sizeof s->backend, dv_reader_str(r, "backend"));
    copy_str(s->device, sizeof s->device, dv_reader_str(r, "device"));
    copy_str(s->model, sizeof s->model, dv_reader_str(r, "model_path"));
    copy_str(s->model_sha256, sizeof s->model_sha256, dv_reader_str(r, "model_sha256"));
    copy_str(s->inject, sizeof s->inject, dv_reader_str(r, "inject"));
    struct dv_reader_arith a;
    dv_reader_arith(r, &a);
    copy_str(s->act_quant, sizeof s->act_quant, a.act_quant);
    copy_str(s->kv_type, sizeof s->kv_type, a.kv_type);
    copy_str(s->act_types, sizeof s->act_types, a.act_quant_types);
    copy_str(s->attn_quant, sizeof s->attn_quant, a.attn_quant);
}

/* Whether two sides both declare their arithmetic and it differs: the
 * attribute whose values differ, or NULL. Activations compare by what
 * they resolve to per weight type (act_quant_types: auto on q8_0 weights
 * is q8_0) when both say; "unknown" (an engine on an unmeasured device)
 * declares nothing. */
static const char *arith_diff(const struct dv_cmp_side *x, const struct dv_cmp_side *y)
{
    if (!strcmp(x->act_quant, "unknown") || !strcmp(y->act_quant, "unknown")) return NULL;
    const bool types = x->act_types[0] && y->act_types[0];
    if (types ? strcmp(x->act_types, y->act_types)
              : x->act_quant[0] && y->act_quant[0] && strcmp(x->act_quant, y->act_quant))
        return types ? "act_quant_types" : "act_quant";
    if (x->attn_quant[0] && y->attn_quant[0] && strcmp(x->attn_quant, y->attn_quant))
        return "attn_quant";
    if (x->kv_type[0] && y->kv_type[0] && strcmp(x->kv_type, y->kv_type)) return "kv_type";
    return NULL;
}

static const char *other_arith(const struct dv_reader *a, const struct dv_reader *b)
{
    struct dv_cmp_side x, y;
    fill_side(&x, a);
    fill_side(&y, b);
    return arith_diff(&x, &y);
}

/* The status of pass a (test) against pass b (reference). */
static int pass_status(const struct dv_reader_pass *a, const struct dv_reader_pass *b,
                       int64_t *first_diff)
{
    *first_diff = -1;
    if (a->pos0 != b->pos0 || a->n_tokens != b->n_tokens) return DV_PASS_SCHEDULE;
    for (int64_t t = 0; t < a->n_tokens; t++)
        if (a->tokens[t] != b->tokens[t]) {
            *first_diff = t;
            return DV_PASS_TOKENS;
        }
    return DV_PASS_MATCHED;
}

/* Whether two paths name the same file (both exist). */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static const char *stored_name(int bytes)
{
    return bytes == 8 ? "float64" : bytes == 4 ? "float32" : bytes == 2 ? "float16" : "?";
}

/* The shape hyperparameters of a and b, the first that differs, or NULL. */
static const char *other_shape(const struct dv_config *a, const struct dv_config *b,
                               int64_t *va, int64_t *vb)
{
    const struct { const char *key; int64_t a, b; } k[] = {
        {"n_vocab", a->n_vocab, b->n_vocab}, {"n_embd", a->d_model, b->d_model},
        {"n_layer", a->n_layer, b->n_layer}, {"n_head", a->n_head, b->n_head},
        {"n_head_kv", a->n_head_kv, b->n_head_kv}, {"head_dim", a->head_dim, b->head_dim},
        {"n_ff", a->n_ff, b->n_ff}, {"n_rot", a->n_rot, b->n_rot},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i].a != k[i].b) {
            *va = k[i].a, *vb = k[i].b;
            return k[i].key;
        }
    return NULL;
}

#define ORACLE_IS "an oracle is a float64 dump of the reference's run: diverge run " \
                  "--backend cpu-f64 with the same model, tokens and --passes"

/* dv_cmp_check_oracle without the arithmetic check: a float64 dump of
 * ref's run. */
static dv_status check_float64_run(const struct dv_reader *o, const struct dv_reader *test,
                                   const struct dv_reader *ref)
{
    if (test && same_file(o->path, test->path))
        return dv_fail(DV_E_INPUT, "%s: the oracle is the test dump itself; " ORACLE_IS,
                       o->path);
    if (same_file(o->path, ref->path))
        return dv_fail(DV_E_INPUT, "%s: the oracle is the reference dump itself; " ORACLE_IS,
                       o->path);
    for (int p = 0; p < o->n_passes; p++)
        for (int t = 0; t < o->passes[p].n_tensors; t++) {
            const struct dv_reader_tensor *x = &o->passes[p].tensors[t];
            if (x->stored_bytes != 8)
                return dv_fail(DV_E_INPUT, "%s: not a float64 oracle dump (backend %s; pass "
                               "%lld %s is %s); " ORACLE_IS, o->path,
                               dv_reader_str(o, "backend"), (long long)o->passes[p].index,
                               x->name, stored_name(x->stored_bytes));
        }
    const char *so = dv_reader_str(o, "model_sha256"), *sr = dv_reader_str(ref, "model_sha256");
    if (so[0] && sr[0] && strcmp(so, sr))
        return dv_fail(DV_E_INPUT, "%s: the oracle ran another model than %s (model_sha256 "
                       "differs)", o->path, ref->path);
    int64_t va, vb;
    const char *key = other_shape(&o->cfg, &ref->cfg, &va, &vb);
    if (key)
        return dv_fail(DV_E_INPUT, "%s: the oracle ran another model than %s (%s %lld, not "
                       "%lld)", o->path, ref->path, key, (long long)va, (long long)vb);
    int common = 0;
    for (int p = 0; p < ref->n_passes; p++) {
        int q = dv_reader_find_pass(o, ref->passes[p].index);
        int64_t diff;
        if (q < 0) continue;
        common++;
        if (pass_status(&o->passes[q], &ref->passes[p], &diff) != DV_PASS_MATCHED)
            return dv_fail(DV_E_INPUT, "%s: pass %lld of the oracle ran other tokens or "
                           "another schedule than %s", o->path,
                           (long long)ref->passes[p].index, ref->path);
    }
    if (!common)
        return dv_fail(DV_E_INPUT, "%s: the oracle has none of the passes of %s", o->path,
                       ref->path);
    return DV_OK;
}

dv_status dv_cmp_check_oracle(const struct dv_reader *o, const struct dv_reader *test,
                              const struct dv_reader *ref)
{
    dv_status s = check_float64_run(o, test, ref);
    if (s) return s;
    const char *arith = other_arith(o, ref);
    if (arith)
        return dv_fail(DV_E_INPUT, "%s: the oracle's %s is %s, the reference's %s: an oracle "
                       "must round as the reference does (diverge run --backend cpu-f64 with "
                       "the reference's --act-quant and --kv-type)", o->path, arith,
                       dv_reader_str(o, arith), dv_reader_str(ref, arith));
    return DV_OK;
}

static dv_status build_passes(struct dv_cmp_result *c, const struct dv_reader *test,
                              const struct dv_reader *ref)
{
    c->passes = calloc((size_t)(test->n_passes + ref->n_passes) + 1, sizeof *c->passes);
    if (!c->passes) return dv_fail(DV_E_NOMEM, "out of memory");
    /* both pass lists are sorted by index: merge them */
    int i = 0, j = 0;
    while (i < test->n_passes || j < ref->n_passes) {
        struct dv_cmp_pass *ps = &c->passes[c->n_passes++];
        const struct dv_reader_pass *a = i < test->n_passes ? &test->passes[i] : NULL;
        const struct dv_reader_pass *b = j < ref->n_passes ? &ref->passes[j] : NULL;
        ps->first_token_diff = -1;
        if (b && (!a || b->index < a->index)) {
            *ps = (struct dv_cmp_pass){b->index, DV_PASS_MISSING, b->pos0, b->n_tokens,
                                       -1, -1, -1};
            j++;
        } else if (!b || a->index < b->index) {
            *ps = (struct dv_cmp_pass){a->index, DV_PASS_EXTRA, a->pos0, a->n_tokens,
                                       a->pos0, a->n_tokens, -1};
            i++;
        } else {
            ps->index = b->index;
            ps->pos0 = b->pos0, ps->n_tokens = b->n_tokens;
            ps->test_pos0 = a->pos0, ps->test_n_tokens = a->n_tokens;
            ps->status = pass_status(a, b, &ps->first_token_diff);
            i++, j++;
        }
        if (ps->status != DV_PASS_MATCHED) c->n_pass_mismatch++;
    }
    return DV_OK;
}

/* ---- where an element is ------------------------------------------------- */

void dv_cmp_locate(struct dv_cmp_where *w, int64_t flat, const struct dv_cmp_row *row,
                   const struct dv_config *cfg, int64_t pos0)
{
    memset(w, 0, sizeof *w);
    w->flat = flat;
    w->n_dims = row->n_dims;
    w->token = w->pos = w->head = w->col = w->key = -1;
    if (flat < 0) return;
    int64_t rest = flat;
    for (int i = row->n_dims - 1; i >= 0; i--) {
        w->index[i] = rest % row->shape[i];
        rest /= row->shape[i];
    }
    struct dv_schema_tensor id;
    if (!dv_schema_lookup(row->name, cfg->n_layer, &id)) return;
    const int64_t *ix = w->index;
    switch (id.shape) {
    case DV_SHAPE_TD:
    case DV_SHAPE_TF:
    case DV_SHAPE_TV:
        w->token = ix[0], w->col = ix[1];
        break;
    case DV_SHAPE_THHD:
    case DV_SHAPE_THKVHD:
        w->token = ix[0], w->head = ix[1], w->col = ix[2];
        break;
    case DV_SHAPE_HTKV:
        w->head = ix[0], w->token = ix[1], w->key = ix[2];
        break;
    case DV_SHAPE_THD: {
        int64_t hd = cfg->head_dim > 0 ? cfg->head_dim : 1;
        w->token = ix[0], w->head = ix[1] / hd, w->col = ix[1] % hd;
        break;
    }
    default:
        break;
    }
    if (w->token >= 0) w->pos = pos0 + w->token;
}

void dv_cmp_where_format(const struct dv_cmp_where *w, char *buf, int size)
{
    if (w->flat < 0) {
        snprintf(buf, (size_t)size, "-");
        return;
    }
    int n = 0;
    if (w->token < 0) {
        n += snprintf(buf + n, (size_t)size - n, "[");
        for (int i = 0; i < w->n_dims && n < size; i++)
            n += snprintf(buf + n, (size_t)size - n, "%s%lld", i ? ", " : "",
                          (long long)w->index[i]);
        if (n < size) snprintf(buf + n, (size_t)size - n, "]");
        return;
    }
    char head[32] = "", key[32] = "", col[32] = "";
    if (w->head >= 0) snprintf(head, sizeof head, "h=%lld, ", (long long)w->head);
    if (w->key >= 0) snprintf(key, sizeof key, ", key=%lld", (long long)w->key);
    if (w->col >= 0) snprintf(col, sizeof col, ", col=%lld", (long long)w->col);
    /* kq rows are [head, token, key]: say it in that order */
    if (w->key >= 0)
        snprintf(buf, (size_t)size, "[%st=%lld (pos %lld)%s]", head, (long long)w->token,
                 (long long)w->pos, key);
    else if (w->head >= 0)
        snprintf(buf, (size_t)size, "[t=%lld (pos %lld), %s%s]", (long long)w->token,
                 (long long)w->pos, head[0] ? head : "", col + 2);
    else
        snprintf(buf, (size_t)size, "[t=%lld (pos %lld)%s]", (long long)w->token,
                 (long long)w->pos, col);
}

/* ---- measuring one tensor ------------------------------------------------ */

struct reader_ref {
    const struct dv_reader *r;
    int p, t;
};

static int read_type(const struct dv_reader_tensor *ts)
{
    return ts->stored_bytes == 8 ? DV_TYPE_F64 : DV_TYPE_F32;
}

static enum dv_metric_elem metric_elem(int type)
{
    return type == DV_TYPE_F64 ? DV_METRIC_F64 : DV_METRIC_F32;
}

/* The metrics of one block of n elements at flat index base. */
static void add_block(const void *a, int type_a, const void *b, int type_b, const void *o,
                      int type_o, int64_t n, int64_t base, const struct dv_metric_opts *opts,
                      struct dv_metrics *ab, struct dv_metrics *ao, struct dv_metrics *bo)
{
    dv_metrics_add(ab, a, metric_elem(type_a), b, metric_elem(type_b), n, base, opts);
    if (!o) return;
    dv_metrics_add(ao, a, metric_elem(type_a), o, metric_elem(type_o), n, base, opts);
    dv_metrics_add(bo, b, metric_elem(type_b), o, metric_elem(type_o), n, base, opts);
}

/* Spans per side at most: dumps chunk tensors by runs of token rows,
 * a few per MB; a tensor in more pieces is read instead. */
#define MAX_SPANS 4096

/* One side's values in place, walked in flat order. */
struct walk {
    struct dv_reader_span *span; /* [n] (owned) */
    int n, at;
    int elem; /* bytes per value */
};

/* The pointer to flat index i and how many values follow it in its span
 * (i only grows). */
static const char *walk_at(struct walk *w, int64_t i, int64_t *avail)
{
    while (w->span[w->at].first + w->span[w->at].n <= i) w->at++;
    const struct dv_reader_span *sp = &w->span[w->at];
    *avail = sp->first + sp->n - i;
    return (const char *)sp->data + (i - sp->first) * w->elem;
}

/* Find x's spans (HDF5 calls: not thread-safe) into w, using scratch. */
static bool walk_open(struct walk *w, struct reader_ref x, struct dv_reader_span *scratch)
{
    *w = (struct walk){NULL, 0, 0, x.r->passes[x.p].tensors[x.t].stored_bytes};
    int n = dv_reader_spans(x.r, x.p, x.t, scratch, MAX_SPANS);
    if (n <= 0 || !(w->span = malloc((size_t)n * sizeof *w->span))) return false;
    memcpy(w->span, scratch, (size_t)n * sizeof *w->span);
    w->n = n;
    return true;
}

/* Metrics of test (w[0]) vs ref (w[1]), and of both against the oracle
 * (w[2], when it has spans) over values in place: blocks end at every
 * span boundary, so that the oracle's two comparisons find the block
 * still in cache. Touches no HDF5: runs on any thread. */
static void measure_mapped(struct walk w[3], int64_t total, const struct dv_metric_opts *opts,
                           struct dv_metrics *ab, struct dv_metrics *ao, struct dv_metrics *bo)
{
    int ta = w[0].elem == 8 ? DV_TYPE_F64 : DV_TYPE_F32;
    int tb = w[1].elem == 8 ? DV_TYPE_F64 : DV_TYPE_F32;
    int to = w[2].elem == 4 ? DV_TYPE_F32 : DV_TYPE_F64;
    dv_metrics_init(ab);
    dv_metrics_init(ao);
    dv_metrics_init(bo);
    for (int i = 0; i < 3; i++) w[i].at = 0;
    for (int64_t i = 0; i < total;) {
        int64_t n = total - i < BLOCK_ELEMS ? total - i : BLOCK_ELEMS, avail;
        const char *pa = walk_at(&w[0], i, &avail);
        n = avail < n ? avail : n;
        const char *pb = walk_at(&w[1], i, &avail);
        n = avail < n ? avail : n;
        const char *po = NULL;
        if (w[2].n) {
            po = walk_at(&w[2], i, &avail);
            n = avail < n ? avail : n;
        }
        add_block(pa, ta, pb, tb, po, to, n, i, opts, ab, ao, bo);
        i += n;
    }
}

/* Metrics of test vs ref, and of both against the oracle when o.r,
 * read through HDF5 in row blocks. */
static dv_status measure(struct reader_ref a, struct reader_ref b, struct reader_ref o,
                         const struct dv_metric_opts *opts, struct buf bufs[3],
                         struct dv_metrics *ab, struct dv_metrics *ao,
                         struct dv_metrics *bo, double *bytes)
{
    const struct dv_reader_tensor *ta = &a.r->passes[a.p].tensors[a.t];
    const struct dv_reader_tensor *tb = &b.r->passes[b.p].tensors[b.t];
    const struct dv_reader_tensor *to = o.r ? &o.r->passes[o.p].tensors[o.t] : NULL;
    int type_a = read_type(ta), type_b = read_type(tb), type_o = to ? read_type(to) : 0;
    dv_metrics_init(ab);
    dv_metrics_init(ao);
    dv_metrics_init(bo);
    *bytes += (double)ta->n_elems * ta->stored_bytes + (double)tb->n_elems * tb->stored_bytes +
              (to ? (double)to->n_elems * to->stored_bytes : 0);
    int64_t rows = tb->shape[0], row_elems = tb->n_elems / rows;
    int64_t block_rows = row_elems >= BLOCK_ELEMS ? 1 : BLOCK_ELEMS / row_elems;
    size_t block_bytes = (size_t)(block_rows * row_elems) * 8;
    dv_status s = DV_OK;
    for (int i = 0; i < 3 && !s; i++) s = buf_reserve(&bufs[i], block_bytes);
    for (int64_t r0 = 0; r0 < rows && !s; r0 += block_rows) {
        int64_t nr = rows - r0 < block_rows ? rows - r0 : block_rows;
        s = dv_reader_read_rows(a.r, a.p, a.t, type_a, r0, nr, bufs[0].p);
        if (!s) s = dv_reader_read_rows(b.r, b.p, b.t, type_b, r0, nr, bufs[1].p);
        if (!s && to) s = dv_reader_read_rows(o.r, o.p, o.t, type_o, r0, nr, bufs[2].p);
        if (!s)
            add_block(bufs[0].p, type_a, bufs[1].p, type_b, to ? bufs[2].p : NULL, type_o,
                      nr * row_elems, r0 * row_elems, opts, ab, ao, bo);
    }
    return s;
}

/* ---- judging ------------------------------------------------------------- */

/* value / limit for an upper limit: 0 when unchecked, +inf past a zero limit. */
static double over(double value, double limit)
{
    if (isinf(limit)) return 0;
    if (limit <= 0) return value > 0 ? INFINITY : 0;
    return value / limit;
}

/* Raise w->ratio to r, naming the check in w->why when it becomes the worst. */
static void consider(struct dv_cmp_row *w, double r, const char *fmt, double value,
                     double limit)
{
    if (!(r > w->ratio)) return;
    w->ratio = r;
    snprintf(w->why, sizeof w->why, fmt, value, limit);
}

static void judge_fixed(struct dv_cmp_row *w)
{
    const struct dv_tolerance *t = &w->tol;
    const struct dv_metrics *m = &w->m;
    consider(w, over(dv_metrics_nmse(m), t->nmse), "nmse %.3g > %.3g", dv_metrics_nmse(m),
             t->nmse);
    consider(w, over(m->max_abs, t->max_abs), "max_abs %.3g > %.3g", m->max_abs, t->max_abs);
    consider(w, over(m->max_rel, t->max_rel), "max_rel %.3g > %.3g", m->max_rel, t->max_rel);
    consider(w, over((double)m->ulp_max, t->ulp), "ulp_max %.0f > %.0f", (double)m->ulp_max,
             t->ulp);
    double frac = m->n ? (double)m->viol / (double)m->n : 0;
    consider(w, over(frac, t->violations), "violations %.3g > %.3g of the values", frac,
             t->violations);
    if (!isinf(t->cos)) {
        double c = dv_metrics_cos(m);
        consider(w, over(1 - c, 1 - t->cos), "cos %.9g < %.9g", c, t->cos);
    }
}

/* The oracle rule on row w; ao and bo (test and reference against the
 * oracle) NULL: w's err_test and err_ref as they are (a new limit). */
static void judge_oracle(struct dv_cmp_row *w, const struct dv_metrics *ao,
                         const struct dv_metrics *bo)
{
    w->has_oracle = true;
    if (ao) w->err_test = ao->mismatch ? INFINITY : dv_metrics_rel_rms(ao);
    if (bo) w->err_ref = dv_metrics_rel_rms(bo);
    w->limit = w->tol.oracle_m * w->err_ref + w->tol.oracle_floor +
               (w->has_declared ? w->tol.declared_m * w->err_declared : 0);
    double r = over(w->err_test, w->limit);
    consider(w, r, "err vs oracle %.3g > limit %.3g", w->err_test, w->limit);
}

/* The non-finite mismatches of a row as its reason: the test's own
 * NaN/Inf where the reference is finite, and the reference's infinities
 * the test does not reproduce (a masked score the test computed). */
static void why_mismatch(struct dv_cmp_row *w)
{
    const struct dv_metrics *m = &w->m;
    const long long bt = m->bad_test, br = m->bad_ref;
    if (bt && !br)
        snprintf(w->why, sizeof w->why, "%lld NaN/Inf in the test where the reference is "
                 "finite (of its %lld NaN and %lld Inf)", bt, (long long)m->nan_test,
                 (long long)m->inf_test);
    else if (!bt) /* in a row that is not broken the reference's only Inf is -inf */
        snprintf(w->why, sizeof w->why, "%lld value%s where the reference is -inf and the "
                 "test is not", br, br == 1 ? "" : "s");
    else
        snprintf(w->why, sizeof w->why, "%lld non-finite mismatches: %lld NaN/Inf in the "
                 "test where the reference is finite, %lld where the reference is -inf and "
                 "the test is not", (long long)m->mismatch, bt, br);
}

/* Where a reference -inf can be right (compare.h): the scores' masked
 * keys, logits, and names outside the table. */
static bool neginf_ok(const struct dv_cmp_row *w, int64_t n_layer)
{
    struct dv_schema_tensor id;
    if (!dv_schema_lookup(w->name, n_layer, &id)) return true;
    return id.op == DV_OP_KQ || (id.layer < 0 && id.which == DV_GT_LOGITS);
}

/* The values of m's reference side no forward pass gives in this tensor
 * (compare.h): their count, the first one's index and value. */
static int64_t impossible(const struct dv_metrics *m, bool ninf_ok, int64_t *first,
                          double *value)
{
    const int64_t at[3] = {m->nan_ref_first, m->posinf_ref_first,
                           ninf_ok ? -1 : m->neginf_ref_first};
    const double val[3] = {NAN, INFINITY, -INFINITY};
    *first = -1;
    for (int i = 0; i < 3; i++)
        if (at[i] >= 0 && (*first < 0 || at[i] < *first)) *first = at[i], *value = val[i];
    return m->nan_ref + m->posinf_ref + (ninf_ok ? 0 : m->neginf_ref);
}

/* "12 NaN, 3 +Inf" of what m's reference side holds that it cannot. */
static void impossible_counts(const struct dv_metrics *m, bool ninf_ok, char *buf, size_t cap)
{
    const int64_t n[3] = {m->nan_ref, m->posinf_ref, ninf_ok ? 0 : m->neginf_ref};
    const char *what[3] = {"NaN", "+Inf", "-Inf"};
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < 3; i++)
        if (n[i] && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, "%s%lld %s", o ? ", " : "", (long long)n[i],
                                  what[i]);
}

/* Mark w BROKEN when the reference, or the oracle (bo: the reference
 * against it), holds what it cannot (compare.h). */
static bool judge_broken(struct dv_cmp_row *w, const struct dv_config *cfg, int64_t pos0,
                         const struct dv_metrics *bo, bool with_oracle)
{
    const bool ninf = neginf_ok(w, cfg->n_layer);
    int64_t first;
    double value = NAN;
    char counts[96];
    if ((w->n_broken = impossible(&w->m, ninf, &first, &value))) {
        w->broken = DV_BROKEN_REF;
        impossible_counts(&w->m, ninf, counts, sizeof counts);
        snprintf(w->why, sizeof w->why, "the reference holds %s where a forward pass "
                 "cannot", counts);
    } else if (with_oracle && (w->n_broken = impossible(bo, ninf, &first, &value))) {
        w->broken = DV_BROKEN_ORACLE;
        impossible_counts(bo, ninf, counts, sizeof counts);
        snprintf(w->why, sizeof w->why, "the oracle holds %s where a forward pass cannot",
                 counts);
    } else if (with_oracle && bo->mismatch) {
        w->broken = DV_BROKEN_DISAGREE;
        w->n_broken = bo->mismatch;
        first = bo->mismatch_first;
        value = bo->mismatch_ref;
        snprintf(w->why, sizeof w->why, "the oracle and the reference disagree on %lld "
                 "non-finite values (the first: oracle %g, reference %g)",
                 (long long)bo->mismatch, bo->mismatch_ref, bo->mismatch_test);
    } else {
        return false;
    }
    w->broken_value = value;
    w->status = DV_ROW_BROKEN;
    w->ratio = NAN;
    dv_cmp_locate(&w->broken_at, first, w, cfg, pos0);
    return true;
}

/* Decide a measured row: a broken reference or oracle first, then the
 * oracle rule or the fixed limits, then the non-finite mismatches, which
 * diverge whatever the limits. */
static void judge(struct dv_cmp_row *w, const struct dv_config *cfg, int64_t pos0,
                  const struct dv_metrics *ao, const struct dv_metrics *bo, bool with_oracle)
{
    const struct dv_metrics *m = &w->m;
    w->ratio = 0;
    w->why[0] = 0;
    w->broken = DV_BROKEN_NONE;
    w->n_broken = 0;
    w->broken_at.flat = -1;
    if (judge_broken(w, cfg, pos0, bo, with_oracle)) return;
    if (with_oracle)
        judge_oracle(w, ao, bo);
    else
        judge_fixed(w);
    if (m->mismatch) {
        w->ratio = INFINITY;
        why_mismatch(w);
    }
    w->status = w->ratio > 1 && !w->tol.ignore ? DV_ROW_DIVERGED : DV_ROW_OK;
    if (!(w->ratio > 1)) w->why[0] = 0; /* the reason of a failure only */
    if (w->ratio > 1 && w->tol.ignore) snprintf(w->why, sizeof w->why, "ignored by the policy");
}

/* ---- rows ---------------------------------------------------------------- */

static void fill_row(struct dv_cmp_row *w, int pass, const struct dv_reader_tensor *ts, int status)
{
    w->pass = pass;
    copy_str(w->name, sizeof w->name, ts->name);
    w->layer = ts->layer;
    copy_str(w->op, sizeof w->op, ts->op);
    w->order = ts->order;
    w->status = status;
    w->n_dims = ts->n_dims;
    memcpy(w->shape, ts->shape, sizeof w->shape);
}

static bool same_shape(const struct dv_reader_tensor *a, const struct dv_reader_tensor *b)
{
    if (a->n_dims != b->n_dims) return false;
    for (int i = 0; i < a->n_dims; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

struct ctx {
    struct dv_cmp_result *c;
    const struct dv_reader *test, *ref, *oracle;
    const struct dv_policy *policy;
    struct buf bufs[3];
    struct dv_reader_span *scratch; /* [MAX_SPANS] */
    struct job *jobs;               /* rows measured in place, later */
    int n_jobs, jobs_cap;
    int cap;
};

/* A row whose values every side has in place: measured after the
 * alignment, in parallel (one row per thread at a time, so each row's
 * figures do not depend on the number of threads). */
struct job {
    int row;
    bool has_oracle;
    int64_t pos0;
    struct walk w[3];
};

static void job_free(struct job *j)
{
    for (int i = 0; i < 3; i++) free(j->w[i].span);
}

/* Judge row w from its metrics and say where its worst value is. */
static void finish_row(struct dv_cmp_row *w, const struct dv_config *cfg, int64_t pos0,
                       const struct dv_metrics *ao, const struct dv_metrics *bo,
                       bool with_oracle)
{
    judge(w, cfg, pos0, ao, bo, with_oracle);
    if (w->m.n_used) dv_cmp_locate(&w->max_at, w->m.max_abs_at, w, cfg, pos0);
    dv_cmp_locate(&w->bad_at, w->m.mismatch_first, w, cfg, pos0);
}

void dv_cmp_judge(struct dv_cmp_row *w, const struct dv_config *cfg, int64_t pos0,
                  const void *test, int test_type, const void *ref, int ref_type,
                  const void *oracle, int oracle_type)
{
    int64_t n = 1;
    for (int i = 0; i < w->n_dims; i++) n *= w->shape[i];
    struct dv_metrics ao, bo;
    dv_metrics_init(&w->m);
    dv_metrics_init(&ao);
    dv_metrics_init(&bo);
    add_block(test, test_type, ref, ref_type, oracle, oracle_type, n, 0, &w->tol.metric,
              &w->m, &ao, &bo);
    finish_row(w, cfg, pos0, &ao, &bo, oracle != NULL);
}

/* Queue row `row` to be measured in place when every side allows it. */
static bool try_job(struct ctx *x, int row, struct reader_ref a, struct reader_ref b,
                    struct reader_ref o, int64_t pos0)
{
    if (x->n_jobs == x->jobs_cap) {
        int ncap = x->jobs_cap ? 2 * x->jobs_cap : 256;
        struct job *j = realloc(x->jobs, (size_t)ncap * sizeof *j);
        if (!j) return false;
        x->jobs = j;
        x->jobs_cap = ncap;
    }
    struct job *j = &x->jobs[x->n_jobs];
    memset(j, 0, sizeof *j);
    j->row = row, j->has_oracle = o.r != NULL, j->pos0 = pos0;
    bool ok = walk_open(&j->w[0], a, x->scratch) && walk_open(&j->w[1], b, x->scratch) &&
              (!o.r || walk_open(&j->w[2], o, x->scratch));
    if (!ok) {
        job_free(j);
        return false;
    }
    x->n_jobs++;
    const struct dv_reader_tensor *ta = &a.r->passes[a.p].tensors[a.t];
    const struct dv_reader_tensor *tb = &b.r->passes[b.p].tensors[b.t];
    x->c->bytes += (double)ta->n_elems * ta->stored_bytes +
                   (double)tb->n_elems * tb->stored_bytes;
    if (o.r) x->c->bytes += (double)tb->n_elems * o.r->passes[o.p].tensors[o.t].stored_bytes;
    return true;
}

static void run_jobs(struct ctx *x)
{
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < x->n_jobs; i++) {
        struct job *j = &x->jobs[i];
        struct dv_cmp_row *w = &x->c->rows[j->row];
        struct dv_metrics ao, bo;
        int64_t total = 1;
        for (int d = 0; d < w->n_dims; d++) total *= w->shape[d];
        measure_mapped(j->w, total, &w->tol.metric, &w->m, &ao, &bo);
        finish_row(w, &x->ref->cfg, j->pos0, &ao, &bo, j->has_oracle);
    }
}

/* Compare tensor tb (position t of reference pass p) with the test's. */
static dv_status compare_tensor(struct ctx *x, int cp, int pa, int pb, int t)
{
    const struct dv_reader_tensor *tb = &x->ref->passes[pb].tensors[t];
    struct dv_cmp_row *w = add_row(x->c, &x->cap);
    if (!w) return dv_fail(DV_E_NOMEM, "out of memory");
    fill_row(w, cp, tb, DV_ROW_MISSING);
    int st = pa < 0 ? DV_PASS_MISSING : x->c->passes[cp].status;
    if (st == DV_PASS_SCHEDULE || st == DV_PASS_TOKENS) w->status = DV_ROW_SKIPPED;
    int ta = pa >= 0 && st == DV_PASS_MATCHED ? dv_reader_find_tensor(x->test, pa, tb->name) : -1;
    if (ta < 0) return DV_OK;
    const struct dv_reader_tensor *tta = &x->test->passes[pa].tensors[ta];
    if (!same_shape(tta, tb)) {
        w->status = DV_ROW_SHAPE;
        w->test_n_dims = tta->n_dims;
        memcpy(w->test_shape, tta->shape, sizeof w->test_shape);
        w->ratio = INFINITY;
        snprintf(w->why, sizeof w->why, "shape differs from the reference's");
        return DV_OK;
    }
    dv_policy_lookup(x->policy, tb->name, tb->op, &w->tol);
    struct reader_ref a = {x->test, pa, ta}, b = {x->ref, pb, t}, o = {NULL, -1, -1};
    if (x->oracle) {
        int po = dv_reader_find_pass(x->oracle, x->ref->passes[pb].index);
        int to = po < 0 ? -1 : dv_reader_find_tensor(x->oracle, po, tb->name);
        if (to >= 0 && same_shape(&x->oracle->passes[po].tensors[to], tb))
            o = (struct reader_ref){x->oracle, po, to};
    }
    int64_t pos0 = x->ref->passes[pb].pos0;
    if (try_job(x, (int)(w - x->c->rows), a, b, o, pos0)) return DV_OK;
    struct dv_metrics ao, bo;
    dv_status s = measure(a, b, o, &w->tol.metric, x->bufs, &w->m, &ao, &bo, &x->c->bytes);
    if (s) return s;
    finish_row(w, &x->ref->cfg, pos0, &ao, &bo, o.r != NULL);
    return DV_OK;
}

static dv_status compare_pass(struct ctx *x, int cp)
{
    const struct dv_cmp_pass *ps = &x->c->passes[cp];
    int pa = dv_reader_find_pass(x->test, ps->index), pb = dv_reader_find_pass(x->ref, ps->index);
    dv_status s = DV_OK;
    for (int t = 0; pb >= 0 && t < x->ref->passes[pb].n_tensors && !s; t++)
        s = compare_tensor(x, cp, pa, pb, t);
    /* the test's tensors the reference lacks, in the test's order */
    for (int t = 0; pa >= 0 && t < x->test->passes[pa].n_tensors && !s; t++) {
        const struct dv_reader_tensor *ta = &x->test->passes[pa].tensors[t];
        if (pb >= 0 && dv_reader_find_tensor(x->ref, pb, ta->name) >= 0) continue;
        struct dv_cmp_row *w = add_row(x->c, &x->cap);
        if (!w) return dv_fail(DV_E_NOMEM, "out of memory");
        fill_row(w, cp, ta, DV_ROW_EXTRA);
    }
    return s;
}

/* ---- summaries ----------------------------------------------------------- */

static void count_rows(struct dv_cmp_result *c)
{
    c->first = c->worst = c->first_broken = -1;
    for (int i = 0; i < c->n_rows; i++) {
        const struct dv_cmp_row *w = &c->rows[i];
        switch (w->status) {
        case DV_ROW_OK: c->n_compared++; break;
        case DV_ROW_DIVERGED: c->n_compared++, c->n_diverged++; break;
        case DV_ROW_SHAPE: c->n_shape++; break;
        case DV_ROW_MISSING: c->n_missing++; break;
        case DV_ROW_EXTRA: c->n_extra++; break;
        case DV_ROW_SKIPPED: c->n_skipped++; break;
        case DV_ROW_BROKEN:
            if (c->first_broken < 0) c->first_broken = i;
            c->n_broken++;
            break;
        }
        bool diverged = w->status == DV_ROW_DIVERGED || w->status == DV_ROW_SHAPE;
        if (diverged && c->first < 0) c->first = i;
        bool compared = w->status == DV_ROW_OK || w->status == DV_ROW_DIVERGED;
        if (compared && (c->worst < 0 || w->ratio > c->rows[c->worst].ratio)) c->worst = i;
    }
}

/* The relative error a diverged row is judged by. */
static double row_err(const struct dv_cmp_row *w)
{
    return w->has_oracle ? w->err_test : dv_metrics_rel_rms(&w->m);
}

/* Whether the test's declared arithmetic differs from the reference's and
 * explains the divergence (compare.h). */
static void explain(struct dv_cmp_result *c)
{
    const struct dv_cmp_side *t = &c->test, *r = &c->ref;
    c->arith_differs = arith_diff(t, r) != NULL;
    c->worst_err = 0;
    bool small = true;
    for (int i = 0; i < c->n_rows; i++) {
        const struct dv_cmp_row *w = &c->rows[i];
        if (w->status == DV_ROW_SHAPE) small = false;
        if (w->status != DV_ROW_DIVERGED) continue;
        double e = row_err(w);
        if (w->m.mismatch || !(e <= DV_CMP_DECLARED_BOUND)) small = false;
        if (e > c->worst_err || isnan(e)) c->worst_err = e;
    }
    c->explained = c->arith_differs && (c->n_diverged || c->n_shape) && small;
}

static dv_status summarise_layers(struct dv_cmp_result *c, int n_layer)
{
    c->n_layers = n_layer + 1;
    c->layers = calloc((size_t)c->n_layers, sizeof *c->layers);
    if (!c->layers) return dv_fail(DV_E_NOMEM, "out of memory");
    double *sum_b2 = calloc((size_t)c->n_layers * 3, sizeof *sum_b2);
    if (!sum_b2) return dv_fail(DV_E_NOMEM, "out of memory");
    double *sum_d2 = sum_b2 + c->n_layers, *n_used = sum_d2 + c->n_layers;
    for (int l = 0; l < c->n_layers; l++) {
        c->layers[l].layer = l < n_layer ? l : -1;
        c->layers[l].worst = -1;
    }
    for (int i = 0; i < c->n_rows; i++) {
        const struct dv_cmp_row *w = &c->rows[i];
        int l = w->layer >= 0 && w->layer < n_layer ? w->layer : n_layer;
        struct dv_cmp_layer *ly = &c->layers[l];
        bool diverged = w->status == DV_ROW_DIVERGED || w->status == DV_ROW_SHAPE;
        bool compared = w->status == DV_ROW_OK || w->status == DV_ROW_DIVERGED;
        if (i == c->first) ly->first_divergence = true;
        if ((compared || diverged) && (ly->worst < 0 || w->ratio > c->rows[ly->worst].ratio))
            ly->worst = i;
        char out_name[64];
        snprintf(out_name, sizeof out_name, "blk.%d.out", w->layer);
        if (!compared || strcmp(w->name, out_name)) continue;
        ly->has_growth = true;
        sum_b2[l] += w->m.sum_b2, sum_d2[l] += w->m.sum_d2, n_used[l] += (double)w->m.n_used;
        if (w->ratio > ly->growth_ratio) ly->growth_ratio = w->ratio;
    }
    for (int l = 0; l < c->n_layers; l++)
        if (n_used[l] > 0) {
            c->layers[l].ref_rms = sqrt(sum_b2[l] / n_used[l]);
            c->layers[l].diff_rms = sqrt(sum_d2[l] / n_used[l]);
        }
    free(sum_b2);
    return DV_OK;
}

enum dv_verdict dv_cmp_verdict(const struct dv_cmp_result *c)
{
    if (c->n_broken) return DV_VERDICT_BROKEN;
    if (c->n_diverged || c->n_shape) return DV_VERDICT_DIVERGED;
    if (!c->n_compared || c->n_skipped) return DV_VERDICT_INCOMPARABLE;
    return DV_VERDICT_AGREE;
}

void dv_cmp_free(struct dv_cmp_result *c)
{
    if (!c) return;
    free(c->passes);
    free(c->rows);
    free(c->layers);
    free(c);
}

dv_status dv_compare(const struct dv_reader *test, const struct dv_reader *ref,
                     const struct dv_reader *oracle, const struct dv_policy *p,
                     struct dv_cmp_result **out)
{
    *out = NULL;
    if (oracle) {
        dv_status s = dv_cmp_check_oracle(oracle, test, ref);
        if (s) return s;
    }
    struct dv_cmp_result *c = calloc(1, sizeof *c);
    if (!c) return dv_fail(DV_E_NOMEM, "out of memory");
    fill_side(&c->test, test);
    fill_side(&c->ref, ref);
    if (oracle) fill_side(&c->oracle, oracle);
    c->has_oracle = oracle != NULL;
    copy_str(c->policy, sizeof c->policy, dv_policy_source(p));
    c->same_model = c->test.model_sha256[0] && !strcmp(c->test.model_sha256, c->ref.model_sha256);
    struct ctx x = {.c = c, .test = test, .ref = ref, .oracle = oracle, .policy = p,
                    .scratch = malloc(MAX_SPANS * sizeof(struct dv_reader_span))};
    dv_status s = x.scratch ? build_passes(c, test, ref) : dv_fail(DV_E_NOMEM, "out of memory");
    for (int i = 0; i < c->n_passes && !s; i++) s = compare_pass(&x, i);
    if (!s) run_jobs(&x);
    for (int i = 0; i < x.n_jobs; i++) job_free(&x.jobs[i]);
    for (int i = 0; i < 3; i++) free(x.bufs[i].p);
    free(x.jobs);
    free(x.scratch);
    if (!s) {
        count_rows(c);
        explain(c);
        s = summarise_layers(c, ref->cfg.n_layer);
    }
    if (s) {
        dv_cmp_free(c);
        return s;
    }
    *out = c;
    return DV_OK;
}

void dv_cmp_allow_declared(struct dv_cmp_row *w, double e)
{
    w->has_declared = true;
    w->err_declared = e;
    if (!w->has_oracle || w->m.mismatch ||
        (w->status != DV_ROW_OK && w->status != DV_ROW_DIVERGED))
        return;
    w->ratio = 0;
    w->why[0] = 0;
    judge_oracle(w, NULL, NULL);
    w->status = w->ratio > 1 && !w->tol.ignore ? DV_ROW_DIVERGED : DV_ROW_OK;
    if (!(w->ratio > 1)) w->why[0] = 0;
    if (w->ratio > 1 && w->tol.ignore) snprintf(w->why, sizeof w->why, "ignored by the policy");
}

dv_status dv_cmp_add_exact(struct dv_cmp_result *c, const struct dv_reader *ref,
                           const struct dv_reader *exact, const struct dv_policy *p)
{
    dv_status s = check_float64_run(exact, NULL, ref);
    if (s) return s;
    struct dv_reader_arith a;
    dv_reader_arith(exact, &a);
    if ((a.act_quant[0] && strcmp(a.act_quant, "none")) ||
        (a.kv_type[0] && strcmp(a.kv_type, "f32")) ||
        (a.attn_quant[0] && strcmp(a.attn_quant, "none")))
        return dv_fail(DV_E_INPUT, "%s: not an exact dump (act_quant %s, kv_type %s): run "
                       "diverge run --backend cpu-f64 without --act-quant and --kv-type",
                       exact->path, a.act_quant, a.kv_type);
    /* the reference against the exact dump is a comparison of its own */
    struct dv_cmp_result *d = NULL;
    if ((s = dv_compare(ref, exact, NULL, p, &d))) return s;
    for (int i = 0; i < c->n_rows; i++) {
        struct dv_cmp_row *w = &c->rows[i];
        if (w->status != DV_ROW_OK && w->status != DV_ROW_DIVERGED) continue;
        int64_t index = c->passes[w->pass].index;
        for (int j = 0; j < d->n_rows; j++) {
            const struct dv_cmp_row *v = &d->rows[j];
            if (d->passes[v->pass].index != index || strcmp(v->name, w->name)) continue;
            if (v->status == DV_ROW_OK || v->status == DV_ROW_DIVERGED) {
                w->has_declared = true;
                w->err_declared = dv_metrics_rel_rms(&v->m);
            }
            break;
        }
    }
    dv_cmp_free(d);
    fill_side(&c->exact, exact);
    c->has_exact = true;
    /* judge again with the declared arithmetic's allowance (policy.h's
     * declared_m), and count again */
    for (int i = 0; i < c->n_rows; i++)
        if (c->rows[i].has_declared) dv_cmp_allow_declared(&c->rows[i], c->rows[i].err_declared);
    c->n_compared = c->n_diverged = c->n_shape = c->n_missing = 0;
    c->n_extra = c->n_skipped = c->n_broken = 0;
    count_rows(c);
    explain(c);
    free(c->layers);
    c->layers = NULL;
    return summarise_layers(c, ref->cfg.n_layer);
}
