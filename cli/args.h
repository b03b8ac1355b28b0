/*
 * args.h - command-line plumbing shared by the subcommands: strict number
 * parsing, status -> exit code, and the one error line.
 */
#ifndef DV_ARGS_H
#define DV_ARGS_H

#include <stdint.h>
#include <stdio.h>

#include "diverge.h"

/* Exit statuses (design.md): agree, diverged, bad usage/input, runtime. */
enum { DV_EXIT_OK = 0, DV_EXIT_DIVERGED = 1, DV_EXIT_USAGE = 2, DV_EXIT_RUNTIME = 3 };

/* Exit code for a status: INPUT/USAGE 2, other failures 3. */
int dv_exit_code(dv_status s);

/* Print "diverge: <dv_errmsg()>" to stderr and return dv_exit_code(s). */
int dv_report(dv_status s);

/* Print "diverge CMD: MSG\nTry 'diverge CMD --help'." and return 2. */
int dv_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse a whole decimal integer in [lo, hi]; DV_E_USAGE naming `what`. */
dv_status dv_parse_i64(const char *s, const char *what, int64_t lo, int64_t hi,
                       int64_t *out);

/* Parse "1,2,3" into a new array of int32 in [lo, hi]; *n gets the count.
 * DV_E_USAGE for empty items, junk or values out of range. Free with free(). */
dv_status dv_parse_i32_list(const char *s, const char *what, int32_t lo,
                            int32_t hi, int32_t **out, int *n);

/* --act-quant NAME into *out (enum dv_act_quant, engine.h): none, auto,
 * q8_0, q8_1, q8_K (also q8_k) or f16. DV_E_USAGE naming them otherwise. */
dv_status dv_parse_act_quant(const char *s, int *out);

/* --attn-quant NAME into *out (enum dv_attn_quant, engine.h): auto, none,
 * q, qp or vk. DV_E_USAGE naming them otherwise. */
dv_status dv_parse_attn_quant(const char *s, int *out);

/* --kv-type NAME into *out: DV_TYPE_F32, DV_TYPE_F16 or DV_TYPE_Q8_0 for
 * f32, f16, q8_0. DV_E_USAGE naming them otherwise. */
dv_status dv_parse_kv_type(const char *s, int *out);

/* The KV cache type of a backend when --kv-type is not given: the
 * engine's own default, f16 for "llama.cpp" (llama.cpp's default cache),
 * f32 for cpu, cpu-f64 and vulkan. */
int dv_default_kv_type(int backend);

/* While a file is being written under a temporary name: remove `tmp` if
 * SIGINT, SIGTERM or SIGHUP arrives, then die of the signal as usual.
 * Each call adds a path (up to 4); NULL disarms them all. (SIGKILL cannot be caught: the next writer to the same
 * destination removes what it leaves; see dv_dump_create.) */
void dv_guard_temp(const char *tmp);

#endif
