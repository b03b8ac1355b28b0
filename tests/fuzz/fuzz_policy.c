/*
 * fuzz_policy.c - any bytes as a tolerance policy file (compare/policy.c):
 * jansson's parse, the schema checks, the line locator that walks the raw
 * text, then lookups of real tensor names and ops.
 *
 * The text is exactly as long as the input, not NUL-terminated, as
 * dv_policy_load() hands it over. Checked: a failure is one line
 * "fuzz.json: line N..."; every tolerance a lookup returns is within the
 * ranges diverge-policy(5) documents (a NaN or a negative limit would
 * silently pass or fail every tensor).
 */
#include "fuzz.h"

#include <math.h>

#include "ops.h"
#include "policy.h"

static void check_tol(const struct dv_tolerance *t, const char *name)
{
    const double up[] = {t->nmse, t->max_abs, t->max_rel, t->ulp, t->metric.atol,
                         t->metric.rtol, t->oracle_floor};
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++)
        DV_FUZZ_CHECK(up[i] >= 0, "%s: limit %zu is %g", name, i, up[i]); /* NaN fails too */
    DV_FUZZ_CHECK(t->violations >= 0 && (t->violations <= 1 || isinf(t->violations)),
                  "%s: violations %g", name, t->violations);
    DV_FUZZ_CHECK((t->cos >= -1 && t->cos <= 1) || t->cos == -INFINITY, "%s: cos %g", name, t->cos);
    DV_FUZZ_CHECK(t->metric.rel_eps > 0 && isfinite(t->metric.rel_eps), "%s: rel_eps %g", name,
                  t->metric.rel_eps);
    DV_FUZZ_CHECK(t->oracle_m >= 1 && isfinite(t->oracle_m), "%s: oracle_m %g", name, t->oracle_m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dv_policy *p;
    dv_status s = dv_policy_parse((const char *)data, size, "fuzz.json", &p);
    if (s) {
        DV_FUZZ_CHECK(!p, "failed but set *out");
        DV_FUZZ_CHECK(s == DV_E_INPUT || s == DV_E_NOMEM, "status %s", dv_status_name(s));
        dv_fuzz_check_msg(s, "fuzz.json");
        DV_FUZZ_CHECK(!strncmp(dv_errmsg(), "fuzz.json: line ", 16) ||
                      !strcmp(dv_errmsg(), "fuzz.json: policy file larger than 1 MiB"),
                      "no line number: '%s'", dv_errmsg());
        return 0;
    }
    DV_FUZZ_CHECK(!strcmp(dv_policy_source(p), "fuzz.json"), "source '%s'", dv_policy_source(p));
    static const char *const names[] = {
        "token_embd", "blk.0.attn_norm", "blk.12.kq_softmax", "blk.3.ffn_out",
        "output_norm", "logits", "", "[", "blk.*",
    };
    struct dv_tolerance t;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        dv_policy_lookup(p, names[i], NULL, &t);
        check_tol(&t, names[i]);
        for (int op = 0; op < DV_OP_COUNT; op++) {
            dv_policy_lookup(p, names[i], dv_op_name(op), &t);
            check_tol(&t, names[i]);
        }
    }
    dv_policy_lookup(p, NULL, NULL, &t);
    check_tol(&t, "(no name)");
    dv_policy_free(p);
    return 0;
}
