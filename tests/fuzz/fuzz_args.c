/*
 * fuzz_args.c - any bytes as a command-line value for the number parsers:
 * --tokens and --passes (dv_parse_i32_list, cli/args.c), --layers and
 * --dump-passes (dv_ranges_parse, dump/dump_hook.c), and single numbers
 * (dv_parse_i64: --top-k, --generate, --pass, --gpu-layers).
 *
 * Input: byte 0 picks the bounds (the CLI's own and some edge cases); the
 * rest, up to its first NUL as argv would give it, is the value, copied
 * into a buffer of exactly that length + 1. Checked against independent
 * definitions: a list is accepted exactly when every comma-separated item
 * is a whole number within bounds, each value equals dv_parse_i64 of its
 * item, and accepted ranges are ordered, within bounds and at most
 * DV_RANGES_MAX.
 */
#include "fuzz.h"

#include <limits.h>

#include "args.h"
#include "dump.h"

static const struct {
    int64_t lo, hi;
} bounds[] = {
    {0, INT32_MAX},         /* --tokens, --layers, --dump-passes, --pass */
    {1, 1 << 20},           /* bisect --passes */
    {1, INT32_MAX},         /* run --passes */
    {1, 100},               /* --top-k */
    {0, 1 << 16},           /* --generate */
    {INT32_MIN, INT32_MAX}, /* the widest an i32 list allows */
    {-5, 5},
    {7, 7},
};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])

/* A refusal names the option first. (It quotes the value as given, so a
 * value with a newline gives a message with one: the user typed it.) */
static void check_msg(const char *what)
{
    const char *m = dv_errmsg();
    DV_FUZZ_CHECK(!strncmp(m, what, strlen(what)), "message does not name %s: '%s'", what, m);
}

/* dv_parse_i64 of s[0..n) as a C string. */
static dv_status parse_item(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *v)
{
    char *item = strndup(s, n);
    DV_FUZZ_CHECK(item, "out of memory");
    dv_status st = dv_parse_i64(item, "--item", lo, hi, v);
    free(item);
    return st;
}

static void check_i64(const char *s, int64_t lo, int64_t hi)
{
    int64_t v = 12345;
    dv_status st = dv_parse_i64(s, "--n", lo, hi, &v);
    if (st) {
        DV_FUZZ_CHECK(st == DV_E_USAGE && v == 12345, "failure changed *out or is %s",
                      dv_status_name(st));
        check_msg("--n");
        return;
    }
    DV_FUZZ_CHECK(v >= lo && v <= hi, "%lld outside %lld..%lld", (long long)v, (long long)lo,
                  (long long)hi);
    /* what was accepted is a number: printing it back gives the same value */
    char back[32];
    snprintf(back, sizeof back, "%lld", (long long)v);
    int64_t w;
    DV_FUZZ_CHECK(!dv_parse_i64(back, "--n", lo, hi, &w) && w == v, "'%s' does not read back", back);
}

static void check_list(const char *s, int32_t lo, int32_t hi)
{
    int32_t *v = NULL;
    int n = -1;
    dv_status st = dv_parse_i32_list(s, "--tokens", lo, hi, &v, &n);
    if (st) check_msg("--tokens"); /* before parse_item() replaces the message */
    /* the definition: every comma-separated item is a number in bounds */
    size_t items = 0;
    bool all_ok = true;
    for (const char *p = s;; items++) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        int64_t x;
        if (parse_item(p, len, lo, hi, &x)) all_ok = false;
        else if (!st) DV_FUZZ_CHECK(v[items] == x, "item %zu: %d, dv_parse_i64 says %lld", items,
                                    v[items], (long long)x);
        if (!c) break;
        p = c + 1;
    }
    items++;
    DV_FUZZ_CHECK(!st == all_ok, "list %s though its items are %s", st ? "refused" : "accepted",
                  all_ok ? "all fine" : "not");
    if (st) {
        DV_FUZZ_CHECK(st == DV_E_USAGE && !v && n == -1, "failure set the outputs or is %s",
                      dv_status_name(st));
        return;
    }
    DV_FUZZ_CHECK((size_t)n == items, "%d values for %zu items", n, items);
    free(v);
}

static void check_ranges(const char *s, int64_t lo, int64_t hi)
{
    struct dv_ranges r;
    dv_status st = dv_ranges_parse(s, "--layers", lo, hi, &r);
    if (st) {
        DV_FUZZ_CHECK(st == DV_E_USAGE, "status %s", dv_status_name(st));
        check_msg("--layers");
        return;
    }
    DV_FUZZ_CHECK(r.n >= 1 && r.n <= DV_RANGES_MAX, "%d ranges", r.n);
    size_t commas = 0;
    for (const char *p = s; *p; p++) commas += *p == ',';
    DV_FUZZ_CHECK((size_t)r.n == commas + 1, "%d ranges from %zu commas", r.n, commas);
    for (int i = 0; i < r.n; i++) {
        DV_FUZZ_CHECK(lo <= r.lo[i] && r.lo[i] <= r.hi[i] && r.hi[i] <= hi,
                      "range %lld-%lld within %lld..%lld", (long long)r.lo[i], (long long)r.hi[i],
                      (long long)lo, (long long)hi);
        DV_FUZZ_CHECK(dv_ranges_has(&r, r.lo[i]) && dv_ranges_has(&r, r.hi[i]), "ends not members");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const int64_t lo = bounds[data[0] % N_BOUNDS].lo, hi = bounds[data[0] % N_BOUNDS].hi;
    /* argv strings end at their first NUL */
    const char *text = (const char *)data + 1;
    size_t len = strnlen(text, size - 1);
    char *s = malloc(len + 1);
    DV_FUZZ_CHECK(s, "out of memory");
    memcpy(s, text, len);
    s[len] = '\0';
    check_i64(s, lo, hi);
    check_list(s, (int32_t)(lo < INT32_MIN ? INT32_MIN : lo), (int32_t)(hi > INT32_MAX ? INT32_MAX : hi));
    check_ranges(s, lo, hi);
    free(s);
    return 0;
}
