/*
 * bench_bisect.c - wall time and peak memory of `diverge bisect`.
 *
 * usage: bench_bisect DIR [NAME ...]   (default: small-q8_0 and
 *        tinyllama-shape-q4_k; DIR/NAME.gguf is written first if missing)
 *
 * Each case runs dv_bisect() (what the command runs) in a child process,
 * so that its peak resident set (getrusage ru_maxrss: heap, the device's
 * buffers on a CPU device such as lavapipe, and the mapped model pages it
 * touched) is its own. Cases: a clean run (all four passes of 6,5,1,1, no
 * replay) and kv-stale@2 (stops after pass 1, replays layer 2, searches
 * --gpu-layers). The goal (issue 6): tinyllama-shape under 60 s and peak
 * memory under 2.5x the model's weights in f32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_model.h"
#include "bench_time.h"
#include "bisect.h"
#include "engine.h"
#include "gguf.h"

static double f32_weight_bytes(const struct dv_model *m)
{
    double n = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        double e = 1;
        for (uint32_t d = 0; d < m->gguf->tensors[i].n_dims; d++) e *= (double)m->gguf->tensors[i].ne[d];
        n += e;
    }
    return 4 * n;
}

/* One bisection in this process; prints its figures. */
static int run_case(const char *path, const char *inject)
{
    struct dv_model *m;
    dv_status s = dv_model_open(path, &m);
    if (s) return 2;
    static const int32_t sched[] = {6, 5, 1, 1};
    int32_t toks[13];
    for (int i = 0; i < 13; i++) toks[i] = 1 + i;
    struct dv_policy *policy;
    if (dv_policy_default(&policy)) return 2;
    struct dv_bisect_opts o = {.model_path = path, .test = DV_BACKEND_VULKAN,
                               .ref = DV_BACKEND_CPU, .oracle = DV_BACKEND_CPU_F64,
                               .tokens = toks, .n_tokens = 13, .sched = sched, .n_pass = 4,
                               .inject = {DV_FAULT_NONE, -1}, .policy = policy,
                               .layer_split = true};
    if (inject && dv_inject_parse(inject, (int)m->cfg.n_layer, &o.inject)) return 2;
    struct dv_bisect_result *r;
    const double t0 = bench_now();
    s = dv_bisect(m, &o, &r);
    const double wall = bench_now() - t0;
    if (s) {
        fprintf(stderr, "bench_bisect: %s\n", dv_errmsg());
        return 3;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double peak = (double)ru.ru_maxrss * 1024, w = f32_weight_bytes(m);
    printf("%-22s %-12s %8.2f s  (run %.2f, replay %.2f, split %.2f)  peak %7.0f MB = "
           "%.2fx f32 weights (%.0f MB)  %s\n",
           strrchr(path, '/') ? strrchr(path, '/') + 1 : path, inject ? inject : "clean", wall,
           r->run_s, r->replay_s, r->split_s, peak / 1e6, peak / w, w / 1e6,
           r->first_pass >= 0 ? "diverged" : "clean");
    fflush(stdout);
    dv_bisect_free(r);
    dv_policy_free(policy);
    dv_model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_bisect DIR [FIXTURE ...]\n");
        return 2;
    }
    static const char *defaults[] = {"small-q8_0", "tinyllama-shape-q4_k"};
    const int n = argc > 2 ? argc - 2 : 2;
    int rc = 0;
    printf("bisect, passes 6,5,1,1 (13 tokens), vulkan vs cpu with the cpu-f64 oracle\n");
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.gguf", argv[1], argc > 2 ? argv[2 + i] : defaults[i]);
        struct dv_model *m;
        if (bench_open_model(path, &m)) {
            fprintf(stderr, "bench_bisect: %s\n", dv_errmsg());
            return 2;
        }
        dv_model_free(m);
        static const char *cases[] = {NULL, "kv-stale@2"};
        for (int c = 0; c < 2; c++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) _exit(run_case(path, cases[c]));
            int st = 0;
            if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) rc = 1;
        }
    }
    return rc;
}
