/*
 * test_cpu_ops.c - the reference's attention and matmul ops on their own.
 *
 * dv_cpu_kqv_f16acc against values llama.cpp's Vulkan backend computed on
 * lavapipe (bit for bit);
 * dv_cpu_kq, dv_cpu_kqv and dv_cpu_matmul (f32 and f64) against naive
 * loops in double written here, on seeded random data: several shapes
 * (plain multi-head, GQA, one kv head; T = 1 and T > 1; pos0 = 0 and
 * pos0 > 0), the exact -inf of the causal mask, every weight type, row
 * counts that leave a partial block of streamed rows, and the f64 matmul
 * against the cpu-f64 backend's own q projection.
 *
 * Tolerances are the worst-case rounding bound of a dot product of length
 * K (Higham's gamma_K = K u over the sum of |terms|), doubled, with a few
 * extra roundings for the scale and the final store: they hold for any
 * summation order BLAS picks, while an indexing error (a wrong head, key,
 * row or column) moves a value by a fraction of that sum near
 * 1/sqrt(K) >= 0.03, thousands of times the bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "../common/testutil.h"
#include "cpu_ops.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "types.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* unit roundoff of float and double */
#define U32 0x1p-24
#define U64 0x1p-53

/* |got - want| allowed for a dot product of k terms whose |terms| sum to
 * abs_sum, with u the working precision: 2 (k + 2) u abs_sum (see the top
 * of the file; +2 for the scale's rounding and the store). */
static double dot_bound(int64_t k, double u, double abs_sum)
{
    return 2.0 * (double)(k + 2) * u * abs_sum;
}

static const char *fixtures[] = {"small-f32", "small-q8_0", "small-q4_k"};

static int setup(void **state)
{
    if (tu_group_setup(state)) return -1;
    return tu_write_fixtures(fixtures, sizeof fixtures / sizeof *fixtures);
}

static gsl_rng *rng_new(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    return r;
}

/* n Gaussian values, as double and the same values rounded to float. */
static void fill_gauss(gsl_rng *r, double *d, float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)gsl_ran_gaussian(r, 1.0);
        d[i] = gsl_ran_gaussian(r, 1.0);
    }
}

struct attn_shape {
    int64_t T, pos0, H, Hkv, hd;
};

/* plain MHA, GQA 8/2 and 6/3, one kv head (MQA); single tokens and
 * batches, at the start and deep into the cache; hd 8 and 12 make
 * 1/sqrt(hd) inexact */
static const struct attn_shape shapes[] = {
    {1, 0, 4, 4, 8},  {1, 9, 8, 2, 16},  {5, 0, 8, 2, 16},  {4, 6, 8, 2, 64},
    {7, 3, 6, 3, 32}, {3, 2, 4, 1, 12},  {6, 40, 8, 2, 16}, {1, 0, 1, 1, 4},
};
#define N_SHAPES (sizeof shapes / sizeof *shapes)

/* The cache buffers hold this many rows past n_kv, all NaN: an op that
 * reads beyond key pos0 + T - 1 turns its output into NaN. */
#define SPARE_ROWS 3

/* ---- kq ------------------------------------------------------------------ */

/* att = q k^T / sqrt(hd) in double, from double (f64) or float (f32)
 * inputs, checked element by element: masked keys exactly -inf, others
 * finite and within dot_bound of the naive sum. */
static void check_kq(const struct attn_shape *s, gsl_rng *r, bool f64)
{
    const int64_t T = s->T, pos0 = s->pos0, H = s->H, Hkv = s->Hkv, hd = s->hd;
    const int64_t n_kv = pos0 + T, qd = H * hd, kvd = Hkv * hd, grp = H / Hkv;
    const size_t nq = (size_t)(T * qd), nk = (size_t)((n_kv + SPARE_ROWS) * kvd);
    const size_t na = (size_t)(H * T * n_kv);
    double *qd64 = malloc(nq * sizeof *qd64), *kd64 = malloc(nk * sizeof *kd64);
    float *qf = malloc(nq * sizeof *qf), *kf = malloc(nk * sizeof *kf);
    double *ad = malloc(na * sizeof *ad);
    float *af = malloc(na * sizeof *af);
    fill_gauss(r, qd64, qf, nq);
    fill_gauss(r, kd64, kf, nk);
    for (size_t i = (size_t)(n_kv * kvd); i < nk; i++) kd64[i] = kf[i] = NAN;
    for (size_t i = 0; i < na; i++) ad[i] = af[i] = NAN; /* every element must be written */
    if (f64)
        dv_cpu_kq_f64(ad, qd64, kd64, T, pos0, H, Hkv, hd);
    else
        dv_cpu_kq_f32(af, qf, kf, T, pos0, H, Hkv, hd);
    const double u = f64 ? U64 : U32;
    double worst = 0; /* largest |error| / bound, printed */
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < n_kv; j++) {
                const size_t at = (size_t)((h * T + t) * n_kv + j);
                const double got = f64 ? ad[at] : (double)af[at];
                if (j > pos0 + t) {
                    if (!(isinf(got) && got < 0))
                        fail_msg("T=%lld pos0=%lld h=%lld t=%lld key %lld: %g, not -inf",
                                 (long long)T, (long long)pos0, (long long)h, (long long)t,
                                 (long long)j, got);
                    continue;
                }
                const int64_t g = h / grp;
                double sum = 0, abs_sum = 0;
                for (int64_t i = 0; i < hd; i++) {
                    double a = f64 ? qd64[t * qd + h * hd + i] : qf[t * qd + h * hd + i];
                    double b = f64 ? kd64[j * kvd + g * hd + i] : kf[j * kvd + g * hd + i];
                    sum += a * b;
                    abs_sum += fabs(a * b);
                }
                const double want = sum / sqrt((double)hd);
                const double bound = dot_bound(hd, u, abs_sum / sqrt((double)hd));
                if (!isfinite(got) || !(fabs(got - want) <= bound))
                    fail_msg("%s T=%lld pos0=%lld H=%lld Hkv=%lld hd=%lld h=%lld t=%lld key "
                             "%lld: %.17g, want %.17g (bound %.3g)", f64 ? "f64" : "f32",
                             (long long)T, (long long)pos0, (long long)H, (long long)Hkv,
                             (long long)hd, (long long)h, (long long)t, (long long)j, got,
                             want, bound);
                worst = fmax(worst, fabs(got - want) / bound);
            }
    printf("  kq %s T=%lld pos0=%lld H=%lld Hkv=%lld hd=%lld: worst error %.3f of the bound\n",
           f64 ? "f64" : "f32", (long long)T, (long long)pos0, (long long)H, (long long)Hkv,
           (long long)hd, worst);
    free(qd64), free(kd64), free(qf), free(kf), free(ad), free(af);
}

static void test_kq_naive(void **state)
{
    gsl_rng *r = rng_new(4242);
    for (size_t i = 0; i < N_SHAPES; i++) {
        check_kq(&shapes[i], r, true);
        check_kq(&shapes[i], r, false);
    }
    gsl_rng_free(r);
}

/* ---- kqv ----------------------------------------------------------------- */

/* out = att v per head in double, att uniform probabilities-like values
 * with 0 on masked keys (what softmax leaves there), v Gaussian. */
static void check_kqv(const struct attn_shape *s, gsl_rng *r, bool f64)
{
    const int64_t T = s->T, pos0 = s->pos0, H = s->H, Hkv = s->Hkv, hd = s->hd;
    const int64_t n_kv = pos0 + T, qd = H * hd, kvd = Hkv * hd, grp = H / Hkv;
    const size_t na = (size_t)(H * T * n_kv), nv = (size_t)((n_kv + SPARE_ROWS) * kvd);
    const size_t no = (size_t)(T * qd);
    double *ad = malloc(na * sizeof *ad), *vd = malloc(nv * sizeof *vd);
    float *af = malloc(na * sizeof *af), *vf = malloc(nv * sizeof *vf);
    double *od = malloc(no * sizeof *od);
    float *of = malloc(no * sizeof *of);
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < n_kv; j++) {
                const size_t at = (size_t)((h * T + t) * n_kv + j);
                ad[at] = j > pos0 + t ? 0 : gsl_rng_uniform(r);
                af[at] = j > pos0 + t ? 0 : (float)gsl_rng_uniform(r);
            }
    fill_gauss(r, vd, vf, nv);
    for (size_t i = (size_t)(n_kv * kvd); i < nv; i++) vd[i] = vf[i] = NAN;
    for (size_t i = 0; i < no; i++) od[i] = of[i] = NAN; /* every element must be written */
    if (f64)
        dv_cpu_kqv_f64(od, ad, vd, T, pos0, H, Hkv, hd);
    else
        dv_cpu_kqv_f32(of, af, vf, T, pos0, H, Hkv, hd);
    const double u = f64 ? U64 : U32;
    double worst = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < hd; i++) {
                const int64_t g = h / grp;
                double sum = 0, abs_sum = 0;
                for (int64_t j = 0; j < n_kv; j++) {
                    const size_t at = (size_t)((h * T + t) * n_kv + j);
                    double a = f64 ? ad[at] : af[at];
                    double b = f64 ? vd[j * kvd + g * hd + i] : vf[j * kvd + g * hd + i];
                    sum += a * b;
                    abs_sum += fabs(a * b);
                }
                const size_t at = (size_t)(t * qd + h * hd + i);
                const double got = f64 ? od[at] : (double)of[at];
                const double bound = dot_bound(n_kv, u, abs_sum);
                if (!isfinite(got) || !(fabs(got - sum) <= bound))
                    fail_msg("%s T=%lld pos0=%lld H=%lld Hkv=%lld hd=%lld t=%lld h=%lld i=%lld: "
                             "%.17g, want %.17g (bound %.3g)", f64 ? "f64" : "f32",
                             (long long)T, (long long)pos0, (long long)H, (long long)Hkv,
                             (long long)hd, (long long)t, (long long)h, (long long)i, got, sum,
                             bound);
                worst = fmax(worst, fabs(got - sum) / bound);
            }
    printf("  kqv %s T=%lld pos0=%lld H=%lld Hkv=%lld hd=%lld: worst error %.3f of the bound\n",
           f64 ? "f64" : "f32", (long long)T, (long long)pos0, (long long)H, (long long)Hkv,
           (long long)hd, worst);
    free(ad), free(vd), free(af), free(vf), free(od), free(of);
}

static void test_kqv_naive(void **state)
{
    gsl_rng *r = rng_new(777);
    for (size_t i = 0; i < N_SHAPES; i++) {
        check_kqv(&shapes[i], r, true);
        check_kqv(&shapes[i], r, false);
    }
    gsl_rng_free(r);
}

/* ---- matmul -------------------------------------------------------------- */

/* Rows of t dequantized as dv_dequant_row gives them, widened to double
 * ([rows, cols]). */
static double *dequant_matrix(const struct dv_gguf_tensor *t)
{
    const int64_t rows = t->ne[1], cols = t->ne[0];
    size_t rb;
    assert_int_equal(dv_row_size(t->type, cols, &rb), DV_OK);
    double *w = malloc((size_t)(rows * cols) * sizeof *w);
    float *tmp = malloc((size_t)cols * sizeof *tmp);
    for (int64_t r = 0; r < rows; r++) {
        assert_int_equal(dv_dequant_row(t->type, (const uint8_t *)t->data + (size_t)r * rb,
                                         tmp, cols), DV_OK);
        for (int64_t c = 0; c < cols; c++) w[r * cols + c] = tmp[c];
    }
    free(tmp);
    return w;
}

/* y = x W^T for W = t, in f64 and in f32 from the same (float-valued) x,
 * against the naive double product: element by element within dot_bound
 * of K = cols terms. */
static void check_matmul(const struct dv_gguf_tensor *t, int64_t T, gsl_rng *r,
                         const char *what)
{
    const int64_t rows = t->ne[1], cols = t->ne[0];
    double *w = dequant_matrix(t);
    const size_t nx = (size_t)(T * cols), ny = (size_t)(T * rows);
    double *xd = malloc(nx * sizeof *xd), *yd = malloc(ny * sizeof *yd);
    float *xf = malloc(nx * sizeof *xf), *yf = malloc(ny * sizeof *yf);
    for (size_t i = 0; i < nx; i++) xd[i] = xf[i] = (float)gsl_ran_gaussian(r, 1.0);
    for (size_t i = 0; i < ny; i++) yd[i] = yf[i] = NAN; /* every element must be written */
    assert_int_equal(dv_cpu_matmul_f64(yd, t, xd, T), DV_OK);
    assert_int_equal(dv_cpu_matmul_f32(yf, t, xf, T), DV_OK);
    double worst64 = 0, worst32 = 0;
    for (int64_t tk = 0; tk < T; tk++)
        for (int64_t row = 0; row < rows; row++) {
            double sum = 0, abs_sum = 0;
            for (int64_t c = 0; c < cols; c++) {
                double p = xd[tk * cols + c] * w[row * cols + c];
                sum += p;
                abs_sum += fabs(p);
            }
            const size_t at = (size_t)(tk * rows + row);
            const double b64 = dot_bound(cols, U64, abs_sum), b32 = dot_bound(cols, U32, abs_sum);
            if (!(fabs(yd[at] - sum) <= b64) || !(fabs(yf[at] - sum) <= b32))
                fail_msg("%s [%lld x %lld] %s T=%lld t=%lld row %lld: f64 %.17g f32 %.9g, "
                         "want %.17g (bounds %.3g, %.3g)", what, (long long)rows,
                         (long long)cols, dv_type_name(t->type), (long long)T, (long long)tk,
                         (long long)row, yd[at], (double)yf[at], sum, b64, b32);
            worst64 = fmax(worst64, fabs(yd[at] - sum) / b64);
            worst32 = fmax(worst32, fabs(yf[at] - sum) / b32);
        }
    printf("  matmul %-10s %-5s [%5lld x %4lld] T=%lld: worst error f64 %.4f, f32 %.4f of the "
           "bound\n", what, dv_type_name(t->type), (long long)rows, (long long)cols,
           (long long)T, worst64, worst32);
    free(w), free(xd), free(yd), free(xf), free(yf);
}

/* Weights of the fixtures in their file types. Streamed blocks are
 * 1 MiB / (cols * sizeof): with cols 256, 512 rows in f64 and 1024 in f32;
 * with cols 704, 186 and 372. ffn_gate (704 rows) and ffn_down (256 rows,
 * 704 cols) end on a partial block in f64, output (2048 rows) is exactly
 * 4 blocks in f64 and 2 in f32, wk (64 rows) one partial block. (The
 * q4_k fixture stores ffn_down, 704 wide, as q4_0: k-quants need
 * multiples of 256.) */
static void test_matmul_fixture_weights(void **state)
{
    gsl_rng *r = rng_new(99);
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.gguf", fixtures[i]);
        struct dv_model *m;
        assert_int_equal(dv_model_open(tu_path(tu_tmp, name), &m), DV_OK);
        const struct dv_layer *l = &m->layers[0];
        check_matmul(l->wq, 5, r, "wq");
        check_matmul(l->wk, 1, r, "wk");
        check_matmul(l->ffn_gate, 3, r, "ffn_gate");
        check_matmul(l->ffn_down, 4, r, "ffn_down");
        check_matmul(m->output, 2, r, "output");
        dv_model_free(m);
    }
    gsl_rng_free(r);
}

/* A matrix made here: [rows, cols] of random weights quantized to type. */
struct made {
    struct dv_gguf_tensor t;
    void *data;
};

static void make_matrix(struct made *mk, int type, int64_t rows, int64_t cols, gsl_rng *r)
{
    size_t rb;
    assert_int_equal(dv_row_size(type, cols, &rb), DV_OK);
    const size_t bytes = (rb * (size_t)rows + 63) / 64 * 64;
    mk->data = aligned_alloc(64, bytes);
    float *row = malloc((size_t)cols * sizeof *row);
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t c = 0; c < cols; c++) row[c] = (float)gsl_ran_gaussian(r, 0.05);
        assert_int_equal(dv_quant_row(type, row, (uint8_t *)mk->data + (size_t)i * rb, cols),
                         DV_OK);
    }
    free(row);
    memset(&mk->t, 0, sizeof mk->t);
    mk->t.name = (struct dv_gguf_str){.len = 4, .ptr = "made"};
    mk->t.n_dims = 2;
    mk->t.ne[0] = cols, mk->t.ne[1] = rows, mk->t.ne[2] = mk->t.ne[3] = 1;
    mk->t.type = type;
    mk->t.nbytes = rb * (size_t)rows;
    mk->t.data = mk->data;
}

/* Every dequantizable fixture type at cols 1280 (rows dequantized in two
 * pieces of 1024 and 256 values): blocks of 204 rows in f32 and 102 in
 * f64, so 300 rows end on a partial block of 96 in both. */
static void test_matmul_partial_blocks(void **state)
{
    const int types[] = {DV_TYPE_F32, DV_TYPE_F16, DV_TYPE_BF16, DV_TYPE_Q8_0,
                         DV_TYPE_Q4_0, DV_TYPE_Q4_K, DV_TYPE_Q6_K};
    gsl_rng *r = rng_new(2024);
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        struct made mk;
        make_matrix(&mk, types[i], 300, 1280, r);
        check_matmul(&mk.t, 1, r, "made");
        check_matmul(&mk.t, 7, r, "made");
        free(mk.data);
    }
    gsl_rng_free(r);
}

/* Blocks of rows are fixed by the shape, not by the thread count: one
 * thread and four give the same bits. */
static void test_matmul_threads_bit_identical(void **state)
{
#ifdef _OPENMP
    gsl_rng *r = rng_new(5);
    struct made mk;
    make_matrix(&mk, DV_TYPE_Q4_K, 300, 1280, r);
    const int64_t T = 3, n = 300 * T;
    double xd[3 * 1280], a[3 * 300], b[3 * 300];
    float xf[3 * 1280], af[3 * 300], bf[3 * 300];
    for (int i = 0; i < 3 * 1280; i++) xd[i] = xf[i] = (float)gsl_ran_gaussian(r, 1.0);
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    assert_int_equal(dv_cpu_matmul_f64(a, &mk.t, xd, T), DV_OK);
    assert_int_equal(dv_cpu_matmul_f32(af, &mk.t, xf, T), DV_OK);
    omp_set_num_threads(4);
    assert_int_equal(dv_cpu_matmul_f64(b, &mk.t, xd, T), DV_OK);
    assert_int_equal(dv_cpu_matmul_f32(bf, &mk.t, xf, T), DV_OK);
    omp_set_num_threads(before);
    assert_memory_equal(a, b, (size_t)n * sizeof *a);
    assert_memory_equal(af, bf, (size_t)n * sizeof *af);
    free(mk.data);
    gsl_rng_free(r);
#else
    fail_msg("built without OpenMP");
#endif
}

/* The op is what the oracle's forward runs: layer 0's q recomputed from
 * its attn_norm. Both are dgemm over the same dequantized rows, but the
 * pass streams wq in blocks sized by the model's widest matrix (n_ff) and
 * the op by wq's own width, so OpenBLAS may see other block shapes; a
 * relative 1e-13 of the tensor's largest value is ~1000 double roundings
 * of a 256-term dot, while a wrong row or column is off by O(1). */
static void test_matmul_matches_oracle_q(void **state)
{
    const char *path = tu_path(tu_tmp, "small-q4_k.gguf");
    const int32_t toks[] = {1, 17, 300, 42, 1999};
    const int sched[] = {5};
    struct tu_collect c = {0};
    assert_int_equal(tu_run(path, DV_BACKEND_CPU_F64, toks, sched, 1, &c), DV_OK);
    const struct tu_tensor *xn = tu_find(&c, 0, "blk.0.attn_norm");
    const struct tu_tensor *q = tu_find(&c, 0, "blk.0.q");
    assert_non_null(xn);
    assert_non_null(q);
    struct dv_model *m;
    assert_int_equal(dv_model_open(path, &m), DV_OK);
    double *y = malloc(q->n * sizeof *y);
    assert_int_equal(dv_cpu_matmul_f64(y, m->layers[0].wq, xn->v, 5), DV_OK);
    double scale = 0;
    for (size_t i = 0; i < q->n; i++) scale = fmax(scale, fabs(q->v[i]));
    const double diff = tu_max_abs(y, q->v, q->n);
    printf("  matmul vs cpu-f64 blk.0.q: max |diff| %.3g (largest |q| %.3g)\n", diff, scale);
    assert_true(diff <= 1e-13 * scale);
    free(y);
    dv_model_free(m);
    tu_collect_free(&c);
}

/* ---- kqv summed in f16, as ggml-vulkan -------------------------------------- */

/* One query of layer 0 in the second pass (pos0 6, 5 tokens) of llama.cpp's
 * Vulkan backend on lavapipe (llvmpipe, Mesa 22.3.6), tiny-f32 with an f16
 * cache (diverge run --backend llama.cpp:Vulkan0 --tokens 1,...,13 --passes
 * 6,5,1,1 --dump): its probabilities over the 11 keys of the cache (the
 * last 4 masked), three columns of V as the cache holds them, and the
 * attn_out values the backend wrote. The keys in their own order, or an
 * exact sum rounded once, give other values: 0.495361328125,
 * 0.163818359375, -0.55712890625 in key order. */
static void test_kqv_f16acc_llama_cpp_vulkan(void **state)
{
    (void)state;
    enum { N = 11, HD = 3 };
    static const float p[N] = {0x1.4864ap-2f, 0x1.8ebe0ap-3f, 0x1.27aba6p-5f, 0x1.6f09ap-3f,
                               0x1.0c9f34p-2f, 0x1.138e32p-9f, 0x1.3ef0fap-8f, 0, 0, 0, 0};
    static const float vcol[HD][N] = {
        {-0.59228515625f, 2.931640625f, -1.2685546875f, 1.2783203125f, -0.278564453125f,
         0.058349609375f, 0.8310546875f, -0.0694580078125f, -0.83056640625f, -0.68408203125f,
         -0.70703125f},
        {0.896484375f, 0.6943359375f, -0.421630859375f, -0.08172607421875f, -0.84033203125f,
         -0.299072265625f, -1.7109375f, 0.8994140625f, 0.1456298828125f, 1.162109375f,
         -1.400390625f},
        {-1.0224609375f, 0.890625f, 1.126953125f, -0.97021484375f, -1.0078125f,
         1.1787109375f, -1.5859375f, 0.384521484375f, -1.8505859375f, 0.2685546875f,
         0.8193359375f},
    };
    static const float want[HD] = {0.494873046875f, 0.1634521484375f, -0.5576171875f};
    float att[N], v[N * HD], out[HD];
    double attd[N], vd[N * HD], outd[HD];
    for (int j = 0; j < N; j++) {
        att[j] = dv_f16_to_f32(dv_f32_to_f16(p[j])); /* the probabilities enter as f16 */
        attd[j] = att[j];
        for (int e = 0; e < HD; e++) vd[j * HD + e] = v[j * HD + e] = vcol[e][j];
    }
    /* one head, one query at position 10 over keys 0..10 */
    dv_cpu_kqv_f16acc_f32(out, att, v, 1, 10, 1, 1, HD);
    dv_cpu_kqv_f16acc_f64(outd, attd, vd, 1, 10, 1, 1, HD);
    for (int e = 0; e < HD; e++) {
        assert_true(out[e] == want[e]);
        assert_true(outd[e] == (double)want[e]);
    }
    /* a sum past the f16 range is clamped to it, as the shader stores it */
    float big_p[2] = {1, 1}, big_v[2] = {60000, 60000}, big;
    dv_cpu_kqv_f16acc_f32(&big, big_p, big_v, 1, 1, 1, 1, 1);
    assert_true(big == 65504.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kq_naive),
        cmocka_unit_test(test_kqv_naive),
        cmocka_unit_test(test_kqv_f16acc_llama_cpp_vulkan),
        cmocka_unit_test(test_matmul_fixture_weights),
        cmocka_unit_test(test_matmul_partial_blocks),
        cmocka_unit_test(test_matmul_threads_bit_identical),
        cmocka_unit_test(test_matmul_matches_oracle_q),
    };
    return cmocka_run_group_tests(tests, setup, tu_group_teardown);
}
