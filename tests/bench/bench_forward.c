/*
 * bench_forward.c - prefill and decode speed of the CPU backends.
 *
 * usage: bench_forward MODEL.gguf [PREFILL_TOKENS [DECODE_TOKENS]]
 * For each of cpu, cpu-f64 and vulkan, then llama.cpp's CPU backend with
 * the reference's thread count (the peer), the ratio of the cpu
 * reference's tokens/s to llama.cpp's: the time to open the engine (dequantizing
 * resident weights), one prefill pass of PREFILL tokens (default 16), then
 * DECODE (default 8) single-token passes; tokens/s for both, and the peak
 * resident memory of the process so far. Figures, not assertions: run with
 * `meson test --benchmark` or by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <omp.h>

#include "bench_model.h"
#include "engine.h"
#include "model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Tokens/s of one backend. */
struct speed {
    double prefill, decode;
};

static int bench(const struct dv_model *m, int backend, const char *device, int n_threads,
                 int n_prefill, int n_decode, struct speed *sp)
{
    struct dv_engine *e;
    struct dv_engine_opts o = {.n_ctx = n_prefill + n_decode, .n_batch = n_prefill,
                               .device = device, .n_threads = n_threads};
    double t0 = now();
    if (dv_engine_open(m, backend, &o, &e)) {
        fprintf(stderr, "bench: %s\n", dv_errmsg());
        return 1;
    }
    double t1 = now();
    int32_t *toks = malloc((size_t)(n_prefill + n_decode) * sizeof *toks);
    for (int i = 0; i < n_prefill + n_decode; i++)
        toks[i] = (int32_t)((1 + 7919 * i) % m->cfg.n_vocab);
    dv_status s = dv_engine_forward(e, toks, n_prefill, 0, NULL);
    double t2 = now();
    for (int i = 0; !s && i < n_decode; i++)
        s = dv_engine_forward(e, toks + n_prefill + i, 1, n_prefill + i, NULL);
    double t3 = now();
    if (s) fprintf(stderr, "bench: %s\n", dv_errmsg());
    sp->prefill = n_prefill / (t2 - t1);
    sp->decode = n_decode / (t3 - t2);
    printf("%-8s open %7.2f s | prefill %3d tok %8.3f s %9.1f tok/s | decode %3d tok "
           "%8.3f s %8.2f tok/s | peak RSS %8.0f MiB\n",
           dv_backend_name(backend), t1 - t0, n_prefill, t2 - t1, n_prefill / (t2 - t1),
           n_decode, t3 - t2, n_decode / (t3 - t2), peak_rss_mib());
    free(toks);
    dv_engine_free(e);
    return s != DV_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_forward MODEL.gguf [PREFILL [DECODE]]\n");
        return 2;
    }
    int n_prefill = argc > 2 ? atoi(argv[2]) : 16, n_decode = argc > 3 ? atoi(argv[3]) : 8;
    if (n_prefill < 1 || n_decode < 0) return 2;
    struct dv_model *m;
    if (bench_open_model(argv[1], &m)) {
        fprintf(stderr, "bench: %s\n", dv_errmsg());
        return 2;
    }
    printf("%s: %lld layers, d_model %lld, vocab %lld, f32 weight size %.1f MiB\n", argv[1],
           (long long)m->cfg.n_layer, (long long)m->cfg.d_model, (long long)m->cfg.n_vocab,
           (double)dv_model_f32_bytes(m) / (1 << 20));
    int rc = 0;
    struct speed sp[DV_BACKEND_COUNT] = {0};
    for (int b = 0; b < DV_BACKEND_COUNT; b++)
        if (b != DV_BACKEND_LLAMA_CPP)
            rc |= bench(m, b, NULL, 0, n_prefill, n_decode, &sp[b]);
    /* the peer: llama.cpp's CPU backend on the same GGUF with as many
     * threads as the reference's OpenMP uses (OMP_NUM_THREADS); a build
     * or machine without llama.cpp says so and times nothing */
    const int threads = omp_get_max_threads();
    printf("llama.cpp:CPU with %d thread%s:\n", threads, threads == 1 ? "" : "s");
    if (!bench(m, DV_BACKEND_LLAMA_CPP, "CPU", threads, n_prefill, n_decode,
               &sp[DV_BACKEND_LLAMA_CPP]))
        printf("ratio    cpu reference / llama.cpp CPU: prefill %.3f, decode %.3f (tokens/s)\n",
               sp[DV_BACKEND_CPU].prefill / sp[DV_BACKEND_LLAMA_CPP].prefill,
               sp[DV_BACKEND_CPU].decode / sp[DV_BACKEND_LLAMA_CPP].decode);
    dv_model_free(m);
    return rc;
}
