/* args.c - strict parsing of command-line values and error reporting. */
#include "args.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"
#include "types.h"

int dv_exit_code(dv_status s)
{
    switch (s) {
    case DV_OK: return DV_EXIT_OK;
    case DV_E_INPUT:
    case DV_E_USAGE: return DV_EXIT_USAGE;
    default: return DV_EXIT_RUNTIME;
    }
}

int dv_report(dv_status s)
{
    fprintf(stderr, "diverge: %s\n", dv_errmsg());
    return dv_exit_code(s);
}

int dv_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "diverge %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'diverge %s --help'.\n", cmd);
    va_end(ap);
    return DV_EXIT_USAGE;
}

dv_status dv_parse_i64(const char *s, const char *what, int64_t lo, int64_t hi,
                       int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE || v < lo || v > hi)
        return dv_fail(DV_E_USAGE, "%s: '%s' is not a whole number in %lld..%lld",
                       what, s, (long long)lo, (long long)hi);
    *out = v;
    return DV_OK;
}

dv_status dv_parse_i32_list(const char *s, const char *what, int32_t lo,
                            int32_t hi, int32_t **out, int *n)
{
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *v = malloc((size_t)cap * sizeof *v);
    char *copy = strdup(s);
    if (!v || !copy) {
        free(v), free(copy);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    int k = 0;
    dv_status st = DV_OK;
    char *item = copy;
    /* strtok would skip empty items; walk commas by hand to reject them */
    for (char *p = copy;; p++) {
        if (*p != ',' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        int64_t x;
        if ((st = dv_parse_i64(item, what, lo, hi, &x))) break;
        v[k++] = (int32_t)x;
        if (c == '\0') break;
        item = p + 1;
    }
    free(copy);
    if (st) {
        free(v);
        return st;
    }
    *out = v;
    *n = k;
    return DV_OK;
}

dv_status dv_parse_act_quant(const char *s, int *out)
{
    if ((*out = dv_act_quant_from_name(s)) >= 0) return DV_OK;
    return dv_fail(DV_E_USAGE, "--act-quant '%s': none, auto, amx, q8_0, q8_1, q8_K or f16", s);
}

dv_status dv_parse_attn_quant(const char *s, int *out)
{
    if ((*out = dv_attn_quant_from_name(s)) >= 0) return DV_OK;
    return dv_fail(DV_E_USAGE, "--attn-quant '%s': auto, none, q, qp or vk", s);
}

dv_status dv_parse_kv_type(const char *s, int *out)
{
    const int t = dv_type_from_name(s);
    if (t == DV_TYPE_F32 || t == DV_TYPE_F16 || t == DV_TYPE_Q8_0) return *out = t, DV_OK;
    return dv_fail(DV_E_USAGE, "--kv-type '%s': f32, f16 or q8_0", s);
}

int dv_default_kv_type(int backend)
{
    const int llama_cpp = dv_backend_from_name("llama.cpp"); /* -1 when not built in */
    return llama_cpp >= 0 && backend == llama_cpp ? DV_TYPE_F16 : DV_TYPE_F32;
}

enum { GUARD_MAX = 4 };
static char guard_path[GUARD_MAX][PATH_MAX];
static volatile sig_atomic_t guard_armed; /* paths guarded */

static void guard_handler(int sig)
{
    for (int i = 0; i < guard_armed; i++) unlink(guard_path[i]); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

void dv_guard_temp(const char *tmp)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    const int n = guard_armed;
    guard_armed = 0;
    if (!tmp) return;
    if (strlen(tmp) >= sizeof guard_path[0] || n == GUARD_MAX) {
        guard_armed = n; /* cannot guard this one; keep the others */
        return;
    }
    memcpy(guard_path[n], tmp, strlen(tmp) + 1);
    struct sigaction sa = {.sa_handler = guard_handler};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* leave signals the caller's parent ignored (nohup) ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
    guard_armed = n + 1;
}
