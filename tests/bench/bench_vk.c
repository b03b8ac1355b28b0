/*
 * bench_vk.c - speed of the Vulkan backend next to the CPU reference, in
 * one run: matmul GFLOP/s per weight type, then whole-model tokens/s.
 *
 * usage: bench_vk [-s SCALE] [-d DEVICE] [-p matmul|model] DIR
 *   DIR     where the fixture models are (written there on first use,
 *           bench_model.h): small-q8_0, small-q4_k, tinyllama-shape-q4_k
 *   -s      multiply time budgets and token counts (default 1, or the
 *           environment variable DV_BENCH_SCALE): the defaults keep the
 *           whole run within a few minutes on lavapipe on 2 cores; use 4 or
 *           more on a real GPU for steadier figures and longer passes
 *   -d      Vulkan device: index or name substring (default as dv_vk_open)
 *   -p      run one part only
 *
 * Matmul: y[N, M] = x[N, K] . W[M, K]^T for the prefill shape (N 512,
 * K 2048, M 2048) and the decode shape (N 1, K 2048, M 5632), weights and
 * activations in device-local memory, FLOPs = 2 N K M. Each case is warmed
 * up once, then repeated until its time budget is spent (at least MM_MIN_REPS,
 * at most MM_MAX_REPS times); the medians of two clocks are printed: the
 * dispatch's GPU timestamps (dv_vk_gpu_ns) and the wall clock around
 * record + submit + wait. Next to them OpenBLAS cblas_sgemm on f32 weights,
 * called as core/cpu_forward.inc calls it. Each Vulkan result is checked on
 * sampled elements against the dequantized weights.
 *
 * Model: for each fixture the vulkan and cpu backends, each opened (timed),
 * given one prefill pass and then single-token decode passes (as many on
 * both; on vulkan until a time budget is spent), wall clock.
 *
 * Figures, not assertions: exit status 1 only when something fails to run
 * or a matmul result is wrong.
 */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_model.h"
#include "engine.h"
#include "model.h"
#include "quant.h"
#include "types.h"
#include "vk.h"
#include "vk_ops.h"

#define MM_BUDGET_S 1.0 /* seconds of timed repetitions per matmul case, x scale */
#define MM_MIN_REPS 3
#define MM_MAX_REPS 200
#define MM_SAMPLES 256 /* y elements checked per Vulkan case */

struct mm_shape {
    const char *name;
    int N, K, M;
};

static const struct mm_shape mm_shapes[] = {
    {"prefill", 512, 2048, 2048},
    {"decode", 1, 2048, 5632},
};

static const int mm_types[] = {DV_TYPE_F32,  DV_TYPE_F16,  DV_TYPE_BF16, DV_TYPE_Q8_0,
                               DV_TYPE_Q4_0, DV_TYPE_Q4_K, DV_TYPE_Q6_K};

/* One model of the second table: token counts before scaling. Decode
 * passes stop early once the vulkan backend has spent DECODE_BUDGET_S x
 * scale on them (at least 2); the cpu backend then runs as many.
 * Measured on lavapipe, 2 cores (shared): tinyllama-shape costs ~1.8 s per
 * prefill token and ~6 s per decode token, so its prefill is one 32-token
 * tile of the matmul kernel (DV_MM_BN: 8 tokens took as long as 32) and its
 * decode stops on the budget; small costs ~16 ms and ~75-160 ms. */
struct model_case {
    const char *fixture;
    int n_prefill, n_decode;
};

static const struct model_case model_cases[] = {
    {"small-q8_0", 128, 16},
    {"small-q4_k", 128, 16},
    {"tinyllama-shape-q4_k", 32, 16},
};

#define DECODE_BUDGET_S 8.0
#define DECODE_MIN 2

struct bench_opts {
    double scale;
    const char *device; /* NULL: dv_vk_open's default */
    const char *dir;
    bool matmul, model;
};

/* The medians of one case. gpu_ms < 0: no timestamps. */
struct mm_result {
    int reps;
    double gpu_ms, wall_ms;
    double max_err; /* largest |y - ref| / sum |x w| over the samples; < 0 unchecked */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[n] (sorts v). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* n values uniform in [-amp, amp) from a fixed-seed xorshift64*. */
static void fill(float *v, size_t n, uint64_t seed, float amp)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        const uint64_t r = s * 0x2545F4914F6CDD1DULL;
        v[i] = amp * (float)((double)(r >> 40) / (double)(1 << 23) - 1.0);
    }
}

static bool keep_going(int reps, double spent, double budget)
{
    return reps < MM_MAX_REPS && (reps < MM_MIN_REPS || spent < budget);
}

static double gflops(const struct mm_shape *sh, double ms)
{
    return ms > 0 ? 2.0 * sh->N * sh->K * (double)sh->M / (ms * 1e6) : 0.0;
}

/* ---- matmul on the Vulkan device ---------------------------------------- */

/* W[M, K] as GGUF rows of type t into a new malloc'd buffer (*out). */
static dv_status quantize(int t, const float *w, int M, int K, void **out, size_t *row_bytes)
{
    dv_status s = dv_row_size(t, K, row_bytes);
    if (s) return s;
    unsigned char *q = malloc(*row_bytes * (size_t)M);
    if (!q) return DV_E_NOMEM;
    for (int m = 0; m < M && !s; m++)
        s = dv_quant_row(t, w + (size_t)m * K, q + *row_bytes * (size_t)m, K);
    if (s) free(q);
    else *out = q;
    return s;
}

/* Check MM_SAMPLES elements of y (read back) against dot products with the
 * dequantized rows of q, in double. The error is relative to sum |x_k w_k|:
 * the kernel and this reference read the same dequantized values and
 * differ only in the order of K f32 additions, so it stays below K * 2^-24
 * (1.2e-4 for K 2048), far below what a wrong scale or a dropped tile
 * gives. */
static dv_status mm_check(struct dv_vk *vk, const struct mm_shape *sh, int t, const void *q,
                          size_t row_bytes, const float *x, const struct dv_vk_buf *yb,
                          double *max_err)
{
    const size_t ny = (size_t)sh->N * sh->M;
    float *y = malloc(ny * sizeof *y), *w = malloc((size_t)sh->K * sizeof *w);
    dv_status s = y && w ? dv_vk_download(vk, yb, 0, y, ny * sizeof *y) : DV_E_NOMEM;
    *max_err = 0;
    for (int i = 0; i < MM_SAMPLES && !s; i++) {
        const int n = (int)((7919u * (unsigned)i) % (unsigned)sh->N);
        const int m = (int)((104729u * (unsigned)i + 13u) % (unsigned)sh->M);
        s = dv_dequant_row(t, (const unsigned char *)q + row_bytes * (size_t)m, w, sh->K);
        double ref = 0, mag = 0;
        for (int k = 0; k < sh->K; k++) {
            ref += (double)x[(size_t)n * sh->K + k] * w[k];
            mag += fabs((double)x[(size_t)n * sh->K + k] * w[k]);
        }
        const double got = y[(size_t)n * sh->M + m];
        const double err = isfinite(got) ? fabs(got - ref) / (mag > 0 ? mag : 1) : INFINITY;
        if (!(err <= *max_err)) *max_err = err;
    }
    free(y);
    free(w);
    return s;
}

/* Record and submit one matmul, wall time into *wall_ms. */
static dv_status mm_once(struct dv_vkops *ops, const struct dv_vk_weight *w,
                         const struct dv_vk_buf *xb, const struct dv_vk_buf *yb, uint32_t N,
                         double *wall_ms)
{
    struct dv_vk *vk = dv_vkops_vk(ops);
    const double t0 = now();
    dv_status s = dv_vkop_matmul(ops, false, w, (struct dv_vk_t){xb, 0},
                                 (struct dv_vk_t){yb, 0}, N);
    if (!s) s = dv_vk_submit(vk);
    *wall_ms = 1e3 * (now() - t0);
    return s;
}

/* One weight type on one shape: upload, warm up, check, time. */
static dv_status mm_vk_case(struct dv_vkops *ops, const struct mm_shape *sh, int t,
                            const float *wf, const float *x, const struct dv_vk_buf *xb,
                            const struct dv_vk_buf *yb, double budget, struct mm_result *r)
{
    struct dv_vk *vk = dv_vkops_vk(ops);
    void *q = NULL;
    size_t row_bytes;
    struct dv_vk_weight w;
    dv_status s = quantize(t, wf, sh->M, sh->K, &q, &row_bytes);
    if (!s) s = dv_vk_weight_new(vk, t, sh->M, sh->K, q, false, &w);
    if (s) {
        free(q);
        return s;
    }
    double wall[MM_MAX_REPS], gpu[MM_MAX_REPS], spent = 0;
    const bool timed = dv_vk_set_timing(vk, true);
    s = mm_once(ops, &w, xb, yb, (uint32_t)sh->N, &wall[0]); /* warm-up: builds the kernel */
    dv_vk_gpu_ns(vk);
    if (!s) s = mm_check(vk, sh, t, q, row_bytes, x, yb, &r->max_err);
    for (r->reps = 0; !s && keep_going(r->reps, spent, budget); r->reps++) {
        s = mm_once(ops, &w, xb, yb, (uint32_t)sh->N, &wall[r->reps]);
        gpu[r->reps] = 1e-6 * dv_vk_gpu_ns(vk);
        spent += 1e-3 * wall[r->reps];
    }
    dv_vk_set_timing(vk, false);
    if (!s) {
        r->wall_ms = median(wall, r->reps);
        r->gpu_ms = timed ? median(gpu, r->reps) : -1;
    }
    dv_vk_weight_free(vk, &w);
    free(q);
    return s;
}

/* OpenBLAS on the same shape with f32 weights: y = x . W^T as the CPU
 * reference's GEMM. */
static void mm_cpu_case(const struct mm_shape *sh, const float *wf, const float *x, float *y,
                        double budget, struct mm_result *r)
{
    double wall[MM_MAX_REPS], spent = 0;
    for (int i = -1; i == -1 || keep_going(i, spent, budget); i++) { /* -1: warm-up */
        const double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh->N, sh->M, sh->K, 1.0f, x,
                    sh->K, wf, sh->K, 0.0f, y, sh->M);
        const double dt = now() - t0;
        if (i < 0) continue;
        wall[i] = 1e3 * dt;
        spent += dt;
        r->reps = i + 1;
    }
    r->wall_ms = median(wall, r->reps);
    r->gpu_ms = -1;
    r->max_err = -1;
}

static void mm_print_header(void)
{
    printf("%-7s %-14s %-5s %-7s %5s %10s %9s %10s %9s %9s\n", "shape", "N x K x M", "type",
           "backend", "reps", "gpu ms", "GFLOP/s", "wall ms", "GFLOP/s", "max err");
}

static void mm_print(const struct mm_shape *sh, const char *type, const char *backend,
                     const struct mm_result *r)
{
    char dims[32], gms[16] = "-", gfl[16] = "-", err[16] = "-";
    snprintf(dims, sizeof dims, "%dx%dx%d", sh->N, sh->K, sh->M);
    if (r->gpu_ms >= 0) {
        snprintf(gms, sizeof gms, "%.3f", r->gpu_ms);
        snprintf(gfl, sizeof gfl, "%.1f", gflops(sh, r->gpu_ms));
    }
    if (r->max_err >= 0) snprintf(err, sizeof err, "%.1e", r->max_err);
    printf("%-7s %-14s %-5s %-7s %5d %10s %9s %10.3f %9.1f %9s\n", sh->name, dims, type, backend,
           r->reps, gms, gfl, r->wall_ms, gflops(sh, r->wall_ms), err);
    fflush(stdout);
}

/* Every weight type, then OpenBLAS, on one shape. Returns nonzero when a
 * case failed or gave a wrong result. */
static int mm_shape_run(struct dv_vkops *ops, const struct mm_shape *sh, double budget)
{
    struct dv_vk *vk = dv_vkops_vk(ops);
    const size_t nw = (size_t)sh->M * sh->K, nx = (size_t)sh->N * sh->K,
                 ny = (size_t)sh->N * sh->M;
    float *wf = malloc(nw * sizeof *wf), *x = malloc(nx * sizeof *x),
          *y = malloc(ny * sizeof *y);
    struct dv_vk_buf xb = {0}, yb = {0};
    dv_status s = wf && x && y ? DV_OK : DV_E_NOMEM;
    int rc = 0;
    if (!s) {
        fill(wf, nw, 1, 0.05f); /* about the spread of trained projection weights */
        fill(x, nx, 2, 1.0f);
        s = dv_vk_buf_alloc(vk, nx * sizeof *x, false, &xb);
    }
    if (!s) s = dv_vk_buf_alloc(vk, ny * sizeof *y, false, &yb);
    if (!s) s = dv_vk_upload(vk, &xb, 0, x, nx * sizeof *x);
    for (size_t i = 0; i < sizeof mm_types / sizeof *mm_types && !s; i++) {
        struct mm_result r;
        s = mm_vk_case(ops, sh, mm_types[i], wf, x, &xb, &yb, budget, &r);
        if (s) break;
        mm_print(sh, dv_type_name(mm_types[i]), "vulkan", &r);
        if (r.max_err > 1.2e-4) { /* K * 2^-24, see mm_check */
            fprintf(stderr, "bench: %s %s matmul: wrong result (error %.2g)\n", sh->name,
                    dv_type_name(mm_types[i]), r.max_err);
            rc = 1;
        }
    }
    if (!s) {
        struct mm_result r;
        mm_cpu_case(sh, wf, x, y, budget, &r);
        mm_print(sh, "f32", "openblas", &r);
    }
    if (s) fprintf(stderr, "bench: %s matmul: %s\n", sh->name, dv_errmsg());
    dv_vk_buf_free(vk, &xb);
    dv_vk_buf_free(vk, &yb);
    free(wf);
    free(x);
    free(y);
    return rc | (s != DV_OK);
}

static int mm_run(const struct bench_opts *o)
{
    struct dv_vk *vk;
    struct dv_vkops *ops;
    if (dv_vk_open(o->device, false, &vk)) {
        fprintf(stderr, "bench: %s\n", dv_errmsg());
        return 1;
    }
    if (dv_vkops_new(vk, 0, &ops)) {
        fprintf(stderr, "bench: %s\n", dv_errmsg());
        dv_vk_close(vk);
        return 1;
    }
    const double budget = MM_BUDGET_S * o->scale;
    printf("\n== matmul: y[N,M] = x[N,K] . W[M,K]^T, GFLOP/s = 2*N*K*M / time ==\n"
           "vulkan: %s | driver %s\n"
           "  weights (dv_vk_weight_new) and x, y in device-local memory; one warm-up, then\n"
           "  repetitions for %.1f s (%d..%d); medians. gpu = the dispatch's timestamps\n"
           "  (dv_vk_gpu_ns); wall = CLOCK_MONOTONIC around record + submit + fence wait.\n"
           "  max err: |y - ref| / sum|x w| on %d sampled elements (limit 1.2e-4)\n"
           "openblas: cblas_sgemm RowMajor NoTrans x Trans, f32 weights, %d threads, wall\n",
           dv_vk_device_name(vk), dv_vk_driver_name(vk), budget, MM_MIN_REPS, MM_MAX_REPS,
           MM_SAMPLES, openblas_get_num_threads());
    mm_print_header();
    int rc = 0;
    for (size_t i = 0; i < sizeof mm_shapes / sizeof *mm_shapes; i++)
        rc |= mm_shape_run(ops, &mm_shapes[i], budget);
    dv_vkops_free(ops);
    dv_vk_close(vk);
    return rc;
}

/* ---- whole model ---------------------------------------------------------- */

/* Open backend `kind` on m, one prefill pass, then up to *n_decode single
 * tokens, stopping after DECODE_MIN once budget seconds are spent (budget
 * 0: all); *n_decode gets the count run. */
static int model_backend(const struct dv_model *m, const char *fixture, int kind,
                         const struct bench_opts *o, int n_prefill, int *n_decode,
                         double budget)
{
    struct dv_engine *e;
    struct dv_engine_opts eo = {.n_ctx = n_prefill + *n_decode, .n_batch = n_prefill,
                                .device = o->device};
    const double t0 = now();
    if (dv_engine_open(m, kind, &eo, &e)) {
        fprintf(stderr, "bench: %s %s: %s\n", fixture, dv_backend_name(kind), dv_errmsg());
        return 1;
    }
    const double t1 = now();
    int32_t *toks = malloc((size_t)(n_prefill + *n_decode) * sizeof *toks);
    dv_status s = toks ? DV_OK : DV_E_NOMEM;
    for (int i = 0; !s && i < n_prefill + *n_decode; i++)
        toks[i] = (int32_t)((1 + 7919 * i) % m->cfg.n_vocab);
    if (!s) s = dv_engine_forward(e, toks, n_prefill, 0, NULL);
    const double t2 = now();
    int n = 0;
    for (; !s && n < *n_decode && (budget <= 0 || n < DECODE_MIN || now() - t2 < budget); n++)
        s = dv_engine_forward(e, toks + n_prefill + n, 1, n_prefill + n, NULL);
    const double t3 = now();
    *n_decode = n;
    if (s) fprintf(stderr, "bench: %s %s: %s\n", fixture, dv_backend_name(kind), dv_errmsg());
    else
        printf("%-21s %-7s %7.2f %7d %8.3f %9.1f %6d %8.3f %8.2f\n", fixture,
               dv_backend_name(kind), t1 - t0, n_prefill, t2 - t1, n_prefill / (t2 - t1), n,
               t3 - t2, n > 0 ? n / (t3 - t2) : 0.0);
    fflush(stdout);
    free(toks);
    dv_engine_free(e);
    return s != DV_OK;
}

static int model_run(const struct bench_opts *o)
{
    printf("\n== whole model: tokens/s, wall clock (CLOCK_MONOTONIC) ==\n"
           "  open: dv_engine_open (weight upload or dequantization); prefill: one pass of\n"
           "  the tokens; decode: single-token passes after it, up to %.0f s on vulkan\n"
           "  (at least %d), as many on cpu; each pass includes the logits.\n"
           "  cpu: OpenBLAS %d threads, weights dequantized to f32 at open\n",
           DECODE_BUDGET_S * o->scale, DECODE_MIN, openblas_get_num_threads());
    printf("%-21s %-7s %7s %7s %8s %9s %6s %8s %8s\n", "model", "backend", "open s",
           "prefill", "s", "tok/s", "decode", "s", "tok/s");
    int rc = 0;
    for (size_t i = 0; i < sizeof model_cases / sizeof *model_cases; i++) {
        const struct model_case *mc = &model_cases[i];
        char *path;
        if (asprintf(&path, "%s/%s.gguf", o->dir, mc->fixture) < 0) return 1;
        struct dv_model *m;
        const double t0 = now();
        const dv_status s = bench_open_model(path, &m);
        if (now() - t0 > 1.0) fprintf(stderr, "bench: %s ready in %.1f s\n", path, now() - t0);
        free(path);
        if (s) {
            fprintf(stderr, "bench: %s\n", dv_errmsg());
            rc = 1;
            continue;
        }
        /* prefill + decode within the model's trained context */
        const int n_ctx = (int)m->cfg.n_ctx_train;
        int n_decode = (int)(mc->n_decode * o->scale + 0.5);
        int n_prefill = (int)(mc->n_prefill * o->scale + 0.5);
        if (n_decode > n_ctx / 4) n_decode = n_ctx / 4;
        if (n_prefill > n_ctx - n_decode) n_prefill = n_ctx - n_decode;
        if (n_prefill < 1) n_prefill = 1;
        rc |= model_backend(m, mc->fixture, DV_BACKEND_VULKAN, o, n_prefill, &n_decode,
                            DECODE_BUDGET_S * o->scale);
        rc |= model_backend(m, mc->fixture, DV_BACKEND_CPU, o, n_prefill, &n_decode, 0);
        dv_model_free(m);
    }
    return rc;
}

/* ---- main ------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: bench_vk [-s SCALE] [-d DEVICE] [-p matmul|model] DIR\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *env = getenv("DV_BENCH_SCALE");
    struct bench_opts o = {.scale = env ? atof(env) : 1.0, .matmul = true, .model = true};
    for (int c; (c = getopt(argc, argv, "s:d:p:")) != -1;) {
        if (c == 's') o.scale = atof(optarg);
        else if (c == 'd') o.device = optarg;
        else if (c == 'p' && !strcmp(optarg, "matmul")) o.model = false;
        else if (c == 'p' && !strcmp(optarg, "model")) o.matmul = false;
        else return usage();
    }
    if (optind != argc - 1 || !(o.scale > 0)) return usage();
    o.dir = argv[optind];
    printf("bench_vk: scale %g (-s or DV_BENCH_SCALE)\n", o.scale);
    const double t0 = now();
    int rc = 0;
    if (o.matmul) rc |= mm_run(&o);
    if (o.model) rc |= model_run(&o);
    printf("\ntotal %.1f s\n", now() - t0);
    return rc;
}
