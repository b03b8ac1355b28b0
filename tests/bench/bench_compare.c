/*
 * bench_compare.c - how fast `diverge compare` reads and measures dumps,
 * next to single-thread memcpy bandwidth measured in the same run.
 *
 * usage: bench_compare MODEL_A.gguf MODEL_B.gguf [DIR [PASSES]]
 *
 * Both models (fixtures of the same shape and different weight types,
 * so every tensor really differs) run PASSES (default 512: one prefill,
 * whose kq tensors carry the causal mask's -inf) on the CPU reference
 * into DIR/bench-compare-{a,b}.h5, plus a cpu-f64 oracle of B. Then the
 * comparison runs REPS times on dumps already in the page cache (one
 * untimed run first). GB/s counts the tensor bytes read from the dumps
 * (1 GB = 1e9 bytes); memcpy GB/s counts the bytes copied, single thread,
 * 256 MiB buffers (larger than any cache). Goal: compare at least half of
 * memcpy. Figures, not assertions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "bench_model.h"
#include "bench_time.h"
#include "compare.h"
#include "diverge.h"
#include "dump.h"
#include "engine.h"
#include "error.h"
#include "policy.h"
#include "reader.h"

static int die(dv_status s)
{
    fprintf(stderr, "bench_compare: %s\n", dv_errmsg());
    return s ? 1 : 0;
}

/* Run model m on `backend` over the schedule into path. */
static dv_status make_dump(struct dv_model *m, int backend, const int *sched, int n_pass,
                           const char *path)
{
    int n_tok = 0, maxp = 1;
    for (int i = 0; i < n_pass; i++) n_tok += sched[i], maxp = sched[i] > maxp ? sched[i] : maxp;
    int32_t *toks = malloc((size_t)n_tok * sizeof *toks);
    if (!toks) return dv_fail(DV_E_NOMEM, "out of memory");
    for (int i = 0; i < n_tok; i++) toks[i] = (int32_t)(1 + (i * 7919) % (m->cfg.n_vocab - 1));
    struct dv_engine_opts o = {.n_ctx = n_tok, .n_batch = maxp, .inject_layer = -1};
    struct dv_engine *e = NULL;
    struct dv_dump_filter f = {0};
    struct dv_dump_sink sink = {.filter = &f};
    dv_status s = dv_engine_open(m, backend, &o, &e);
    if (!s) s = dv_dump_create(path, dv_backend_name(backend),
                               backend == DV_BACKEND_CPU_F64 ? DV_DUMP_FLOAT64 : 0, &sink.dump);
    if (!s) s = dv_dump_describe(sink.dump, m, "bench", "bench", "", NULL);
    struct dv_hook h = dv_dump_hook(&sink);
    for (int i = 0, pos = 0; !s && i < n_pass; pos += sched[i++])
        s = dv_engine_forward(e, toks + pos, sched[i], pos, &h);
    dv_status c = sink.dump ? dv_dump_close(sink.dump, s == DV_OK) : DV_OK;
    dv_engine_free(e);
    free(toks);
    return s ? s : c;
}

static dv_status make_dumps(const char *model_a, const char *model_b, const char *dir,
                            const char *passes, char paths[3][4096])
{
    int sched[64], n_pass = 0;
    for (const char *p = passes; *p && n_pass < 64; p++) {
        sched[n_pass++] = atoi(p);
        while (p[1] && p[1] != ',') p++;
        if (p[1] == ',') p++;
    }
    const char *models[3] = {model_a, model_b, model_b};
    const char *names[3] = {"a", "b", "oracle"};
    for (int i = 0; i < 3; i++) {
        snprintf(paths[i], 4096, "%s/bench-compare-%s.h5", dir, names[i]);
        struct dv_model *m;
        dv_status s = bench_open_model(models[i], &m);
        if (!s) s = make_dump(m, i == 2 ? DV_BACKEND_CPU_F64 : DV_BACKEND_CPU, sched, n_pass,
                              paths[i]);
        dv_model_free(m);
        if (s) return s;
    }
    return DV_OK;
}

/* Median GB/s of dv_compare over REPS timed runs (one untimed first). */
static dv_status time_compare(struct dv_reader *rd[3], bool oracle, double *gbs,
                              double *best_gbs, double *mb)
{
    struct dv_policy *p;
    dv_status s = dv_policy_default(&p);
    double t[REPS];
    for (int r = -1; r < REPS && !s; r++) {
        struct dv_cmp_result *c;
        double t0 = bench_now();
        s = dv_compare(rd[0], rd[1], oracle ? rd[2] : NULL, p, &c);
        if (s) break;
        double dt = bench_now() - t0;
        *mb = c->bytes / 1e6;
        if (r >= 0) t[r] = c->bytes / dt / 1e9;
        dv_cmp_free(c);
    }
    dv_policy_free(p);
    if (s) return s;
    /* median of rates: sort ascending, best is the largest */
    double lo;
    *gbs = bench_median(t, &lo);
    *best_gbs = t[REPS - 1];
    return DV_OK;
}

static double memcpy_gbs(double *best)
{
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    *best = 0;
    if (!a || !b) {
        free(a), free(b);
        return 0;
    }
    memset(a, 1, n);
    memset(b, 2, n);
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = bench_now();
        memcpy(b, a, n);
        t[r] = (double)n / (bench_now() - t0) / 1e9;
        a[r] = b[n - 1 - (size_t)r]; /* keep the copies observable */
    }
    volatile char sink = b[12345];
    (void)sink;
    free(a), free(b);
    double lo;
    double med = bench_median(t, &lo);
    *best = t[REPS - 1];
    return med;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_compare MODEL_A.gguf MODEL_B.gguf [DIR [PASSES]]\n");
        return 2;
    }
    const char *dir = argc > 3 ? argv[3] : ".", *passes = argc > 4 ? argv[4] : "512";
    char paths[3][4096];
    dv_status s = make_dumps(argv[1], argv[2], dir, passes, paths);
    struct dv_reader *rd[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3 && !s; i++) s = dv_reader_open(paths[i], &rd[i]);
    double gbs = 0, best = 0, mb = 0, ogbs = 0, obest = 0, omb = 0, pgbs = 0, pbest = 0;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    if (!s) s = time_compare(rd, false, &gbs, &best, &mb);
    if (!s) s = time_compare(rd, true, &ogbs, &obest, &omb);
    omp_set_num_threads(threads);
    if (!s) s = time_compare(rd, false, &pgbs, &pbest, &mb);
    for (int i = 0; i < 3; i++) dv_reader_free(rd[i]);
    if (s) return die(s);
    double mbest, mc = memcpy_gbs(&mbest);
    printf("compare %s vs %s, passes %s (median of %d, best in brackets)\n", argv[1], argv[2],
           passes, REPS);
    printf("  compare, 1 thread         %8.1f MB  %6.2f GB/s (%.2f)\n", mb, gbs, best);
    printf("  compare + oracle, 1 thr.  %8.1f MB  %6.2f GB/s (%.2f)\n", omb, ogbs, obest);
    printf("  compare, %2d threads       %8.1f MB  %6.2f GB/s (%.2f)\n", threads, mb, pgbs,
           pbest);
    printf("  memcpy, 1 thread                     %6.2f GB/s (%.2f)\n", mc, mbest);
    printf("  compare / memcpy: 1 thread %.2f, %d threads %.2f (goal >= 0.5)\n",
           mc > 0 ? gbs / mc : 0, threads, mc > 0 ? pgbs / mc : 0);
    return 0;
}
