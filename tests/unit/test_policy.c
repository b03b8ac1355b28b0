/*
 * test_policy.c - the tolerance policy: the built-in values, how a file's
 * "default" and "tensors" entries merge, selectors, null limits, and one
 * test per kind of bad file, each checking the status and that the message
 * names the right line and key path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "policy.h"

/* ---- helpers ---------------------------------------------------------- */

/* $DV_FIXTURES/policies/name into buf. */
static void policy_path(char *buf, size_t cap, const char *name)
{
    const char *dir = getenv("DV_FIXTURES");
    if (!dir || !*dir) dir = "/work/main/fixtures";
    snprintf(buf, cap, "%s/policies/%s", dir, name);
}

static struct dv_policy *parse_ok(const char *text)
{
    struct dv_policy *p = NULL;
    dv_status s = dv_policy_parse(text, strlen(text), "t.json", &p);
    if (s) fail_msg("parse failed: %s", dv_errmsg());
    assert_non_null(p);
    return p;
}

/* Parsing `text` fails with DV_E_INPUT and a message containing `want`. */
static void parse_bad(const char *text, size_t len, const char *want)
{
    struct dv_policy *p = (struct dv_policy *)1;
    dv_status s = dv_policy_parse(text, len, "t.json", &p);
    assert_int_equal(s, DV_E_INPUT);
    assert_null(p);
    if (!strstr(dv_errmsg(), want)) fail_msg("message \"%s\" lacks \"%s\"", dv_errmsg(), want);
}
#define BAD(text, want) parse_bad(text, strlen(text), want)

static struct dv_tolerance lookup(const struct dv_policy *p, const char *name, const char *op)
{
    struct dv_tolerance t;
    memset(&t, 0x5a, sizeof t);
    dv_policy_lookup(p, name, op, &t);
    return t;
}

static void assert_builtin(const struct dv_tolerance *t)
{
    assert_true(t->nmse == 1e-6);
    assert_true(isinf(t->max_abs) && t->max_abs > 0);
    assert_true(isinf(t->max_rel) && t->max_rel > 0);
    assert_true(isinf(t->ulp) && t->ulp > 0);
    assert_true(isinf(t->violations) && t->violations > 0);
    assert_true(isinf(t->cos) && t->cos < 0);
    assert_true(t->metric.atol == 1e-8);
    assert_true(t->metric.rtol == 1e-5);
    assert_true(t->metric.rel_eps == 1e-6);
    assert_true(t->oracle_m == 2);
    assert_true(t->oracle_floor == ldexp(1, -20));
    assert_false(t->ignore);
}

/* ---- the built-in policy -------------------------------------------- */

static void test_builtin(void **state)
{
    (void)state;
    struct dv_policy *p = NULL;
    assert_int_equal(dv_policy_default(&p), DV_OK);
    assert_string_equal(dv_policy_source(p), "built-in");
    const char *names[] = {"blk.0.q", "blk.3.kq_softmax", "logits", "anything"};
    for (int i = 0; i < 4; i++) {
        struct dv_tolerance t = lookup(p, names[i], i ? "softmax" : NULL);
        assert_builtin(&t);
    }
    dv_policy_free(p);

    /* the text is valid JSON that sets every key and no tensors */
    const char *j = dv_policy_builtin_json();
    assert_non_null(strstr(j, "\"oracle_floor\": 9.5367431640625e-07"));
    assert_null(strstr(j, "tensors"));

    /* an empty object is the built-in policy again */
    p = parse_ok("{}");
    struct dv_tolerance t = lookup(p, "blk.0.q", "matmul");
    assert_builtin(&t);
    assert_string_equal(dv_policy_source(p), "t.json");
    dv_policy_free(p);

    /* the obsolete key is gone from the built-in text */
    assert_null(strstr(j, "nonfinite"));
}

/* fixtures/policies/builtin.json is the built-in text, byte for byte (the
 * manual quotes the same). */
static void test_builtin_fixture(void **state)
{
    (void)state;
    char path[4096];
    policy_path(path, sizeof path, "builtin.json");
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, dv_policy_builtin_json());

    struct dv_policy *p = NULL;
    assert_int_equal(dv_policy_load(path, &p), DV_OK);
    assert_string_equal(dv_policy_source(p), path);
    struct dv_tolerance t = lookup(p, "logits", "matmul");
    assert_builtin(&t);
    dv_policy_free(p);
}

/* ---- merging ---------------------------------------------------------- */

static void test_default_and_globs(void **state)
{
    (void)state;
    struct dv_policy *p = parse_ok("{\n"
                                   "  \"version\": 1,\n"
                                   "  \"default\": {\"nmse\": 1e-4, \"atol\": 0, \"cos\": 0.99},\n"
                                   "  \"tensors\": [\n"
                                   "    {\"match\": \"blk.*\", \"nmse\": 1e-3, \"max_abs\": 5,\n"
                                   "     \"oracle_m\": 3},\n"
                                   "    {\"match\": \"blk.1*.kq*\", \"nmse\": 2e-2, \"ulp\": 64,\n"
                                   "     \"nonfinite\": \"any\"}\n"
                                   "  ]\n"
                                   "}\n");
    /* no entry: built-in + default */
    struct dv_tolerance t = lookup(p, "logits", "matmul");
    assert_true(t.nmse == 1e-4);
    assert_true(t.metric.atol == 0);
    assert_true(t.cos == 0.99);
    assert_true(t.metric.rtol == 1e-5); /* untouched built-in */
    assert_true(isinf(t.max_abs));
    assert_true(t.oracle_m == 2);

    /* first entry only (the '*' of a glob crosses dots) */
    t = lookup(p, "blk.0.kq", "kq");
    assert_true(t.nmse == 1e-3);
    assert_true(t.max_abs == 5);
    assert_true(t.oracle_m == 3);
    assert_true(isinf(t.ulp));
    assert_true(t.cos == 0.99);

    /* both: the later entry wins for nmse, the earlier keeps max_abs */
    t = lookup(p, "blk.12.kq_softmax", "softmax");
    assert_true(t.nmse == 2e-2);
    assert_true(t.max_abs == 5);
    assert_true(t.oracle_m == 3);
    assert_true(t.ulp == 64);
    assert_true(t.metric.atol == 0);
    assert_false(t.ignore);

    /* a NULL name matches no "match" entry */
    t = lookup(p, NULL, "softmax");
    assert_true(t.nmse == 1e-4);
    dv_policy_free(p);
}

static void test_op_selector(void **state)
{
    (void)state;
    struct dv_policy *p = parse_ok("{\"tensors\": [\n"
                                   "  {\"op\": \"matmul\", \"violations\": 0.25},\n"
                                   "  {\"match\": \"logits\", \"op\": \"matmul\", \"ignore\": true},\n"
                                   "  {\"match\": \"logits\", \"op\": \"softmax\", \"rtol\": 1}\n"
                                   "]}");
    struct dv_tolerance t = lookup(p, "blk.0.q", "matmul");
    assert_true(t.violations == 0.25);
    assert_false(t.ignore);

    t = lookup(p, "logits", "matmul");
    assert_true(t.violations == 0.25);
    assert_true(t.ignore);
    assert_true(t.metric.rtol == 1e-5);

    /* another op, or no op: op entries do not apply */
    t = lookup(p, "blk.0.attn_norm", "rmsnorm");
    assert_true(isinf(t.violations));
    t = lookup(p, "logits", NULL);
    assert_true(isinf(t.violations));
    assert_false(t.ignore);
    assert_true(t.metric.rtol == 1e-5);
    dv_policy_free(p);
}

static void test_null_limits(void **state)
{
    (void)state;
    struct dv_policy *p = parse_ok("{\"default\": {\"nmse\": 0, \"max_abs\": 1, \"max_rel\": 2,\n"
                                   "  \"ulp\": 3, \"violations\": 1, \"cos\": -1},\n"
                                   " \"tensors\": [{\"match\": \"x\", \"nmse\": null,\n"
                                   "  \"max_abs\": null, \"max_rel\": null, \"ulp\": null,\n"
                                   "  \"violations\": null, \"cos\": null}]}");
    struct dv_tolerance t = lookup(p, "y", NULL);
    assert_true(t.nmse == 0 && t.max_abs == 1 && t.max_rel == 2 && t.ulp == 3);
    assert_true(t.violations == 1 && t.cos == -1);
    t = lookup(p, "x", NULL);
    assert_true(t.nmse == INFINITY && t.max_abs == INFINITY && t.max_rel == INFINITY);
    assert_true(t.ulp == INFINITY && t.violations == INFINITY);
    assert_true(t.cos == -INFINITY);
    dv_policy_free(p);

    /* integers and reals alike; escaped key names are the same keys; the
     * obsolete "nonfinite" of older files is accepted and changes nothing */
    p = parse_ok("{\"default\": {\"oracle_m\": 3, \"rel_eps\": 1, \"n\\u006dse\": 5e-1,"
                 " \"ignore\": true, \"nonfinite\": \"any\"}}");
    t = lookup(p, "z", NULL);
    assert_true(t.oracle_m == 3 && t.metric.rel_eps == 1 && t.nmse == 0.5);
    assert_true(t.ignore);
    struct dv_policy *q = parse_ok("{\"default\": {\"oracle_m\": 3, \"rel_eps\": 1,"
                                   " \"nmse\": 0.5, \"ignore\": true, \"nonfinite\": \"test\"}}");
    struct dv_tolerance u = lookup(q, "z", NULL);
    assert_true(t.nmse == u.nmse && t.max_abs == u.max_abs && t.max_rel == u.max_rel);
    assert_true(t.ulp == u.ulp && t.violations == u.violations && t.cos == u.cos);
    assert_true(t.metric.atol == u.metric.atol && t.metric.rtol == u.metric.rtol);
    assert_true(t.metric.rel_eps == u.metric.rel_eps && t.oracle_m == u.oracle_m);
    assert_true(t.oracle_floor == u.oracle_floor && t.ignore == u.ignore);
    dv_policy_free(q);
    dv_policy_free(p);
}

/* ---- bad files -------------------------------------------------------- */

static void test_bad_syntax(void **state)
{
    (void)state;
    /* a missing comma: jansson's line and column */
    BAD("{\n  \"default\": {\n    \"nmse\": 1e-6\n    \"cos\": 0.9\n  }\n}\n",
        "t.json: line 4, column 9: ");
    BAD("{\"default\": {\"nmse\": NaN}}", "t.json: line 1, column");
    BAD("{\"default\": {\"nmse\": 1e999}}", "real number overflow");
    BAD("{\"default\": {\"nmse\": -Infinity}}", "t.json: line 1, column");
    BAD("{\"default\": {\"nmse\": 1,}}", "t.json: line 1, column");
    BAD("{} {}", "end of file expected");
    /* a duplicate key, even where both values are valid */
    BAD("{\n\"default\": {\n\"nmse\": 1,\n\"nmse\": 2}}", "t.json: line 4, column");
    BAD("{\n\"default\": {\n\"nmse\": 1,\n\"nmse\": 2}}", "duplicate object key");
    /* empty */
    BAD("", "t.json: line 1: empty policy file");
    BAD("  \n\n ", "t.json: line 3: empty policy file");
    parse_bad("{\"a\"\0:1}", 8, "t.json: line 1, column");
    /* jansson's message quotes the bad token, here with its newline: the
     * message stays one line (tests/fuzz/regress/policy) */
    BAD("{\n  \"nms\\\n}\n", "t.json: line 3, column 0: invalid escape near '\"nms\\?'");
    assert_null(strchr(dv_errmsg(), '\n'));
}

static void test_bad_semantics(void **state)
{
    (void)state;
    BAD("{\n  \"version\": 1,\n  \"default\": {\n    \"nmse\": 1e-6,\n    \"bogus\": 1\n  }\n}\n",
        "t.json: line 5: key 'default.bogus': unknown key");
    BAD("{\"version\": 1, \"extra\": {}}", "t.json: line 1: key 'extra': unknown key");
    BAD("{\"default\": {\"match\": \"x\"}}", "line 1: key 'default.match': unknown key");

    /* wrong type nested in an entry */
    BAD("{\n \"tensors\": [\n  {\"match\": \"a\", \"nmse\": 1},\n  {\"match\": \"b\",\n"
        "   \"nmse\": \"small\"}\n ]\n}",
        "t.json: line 5: key 'tensors[1].nmse': expected a number >= 0 or null, not a string");

    /* out of range */
    BAD("{\n\"default\": {\n\"oracle_m\": 0.5}}",
        "t.json: line 3: key 'default.oracle_m': expected a number >= 1, not 0.5");
    BAD("{\"default\": {\"violations\": 1.5}}", "key 'default.violations': expected a number from 0 to 1");
    BAD("{\"default\": {\"cos\": 1.01}}", "key 'default.cos': expected a number from -1 to 1");
    BAD("{\"default\": {\"nmse\": -1}}", "key 'default.nmse': expected a number >= 0 or null, not -1");
    BAD("{\"default\": {\"rel_eps\": 0}}", "key 'default.rel_eps': expected a number > 0");
    BAD("{\"default\": {\"atol\": null}}", "key 'default.atol': expected a number >= 0, not null");
    BAD("{\"default\": {\"oracle_floor\": -1e-9}}", "key 'default.oracle_floor'");

    /* enumerations and booleans */
    BAD("{\n\"tensors\": [\n{\"op\": \"add\",\n \"nonfinite\": \"some\"}]}",
        "t.json: line 4: key 'tensors[0].nonfinite': expected \"test\" or \"any\", not \"some\"");
    BAD("{\"default\": {\"nonfinite\": 1}}", "key 'default.nonfinite'");
    BAD("{\"default\": {\n\"ignore\": 1}}", "t.json: line 2: key 'default.ignore': expected true or false");
    BAD("{\"default\": {\"ignore\": \"true\"}}", "key 'default.ignore'");

    /* selectors */
    BAD("{\"tensors\": [\n{\"match\": \"a\"},\n{\"op\": \"matmult\"}]}",
        "t.json: line 3: key 'tensors[1].op': unknown op \"matmult\" (one of get_rows,");
    BAD("{\"tensors\": [{\"op\": 3}]}", "key 'tensors[0].op'");
    BAD("{\"tensors\": [{\"match\": \"\"}]}", "key 'tensors[0].match': expected a non-empty string");
    BAD("{\"tensors\": [{\"match\": [\"a\"]}]}", "key 'tensors[0].match'");
    BAD("{\"tensors\": [{\"match\": \"blk.[0-3.q\"}]}",
        "key 'tensors[0].match': the glob \"blk.[0-3.q\" has a '[' without its ']'");
    BAD("{\"tensors\": [{\"match\": \"blk\\\\\"}]}", "key 'tensors[0].match': the glob");
    BAD("{\"tensors\": [\n{\"match\": \"a\"},\n\n{\"nmse\": 1}]}",
        "t.json: line 4: key 'tensors[1]': an entry needs \"match\" or \"op\"");

    /* structure */
    BAD("{\"version\": 2}", "t.json: line 1: key 'version': unsupported version 2");
    BAD("{\"version\": \"1\"}", "key 'version': expected the integer 1");
    BAD("{\"version\": 1.0}", "key 'version': expected the integer 1");
    BAD("{\n\"tensors\": {}}", "t.json: line 2: key 'tensors': expected an array");
    BAD("{\"default\": []}", "key 'default': expected an object");
    BAD("{\"tensors\": [{\"op\": \"add\"},\n 7]}", "t.json: line 2: key 'tensors[1]': expected an object");
    BAD("[{}]", "t.json: line 1: expected a JSON object at the top level, not an array");
    BAD("\n\n 42", "t.json: line 3: expected a JSON object at the top level, not a number");
    BAD("\"x\"", "top level, not a string");
}

/* The locator must not be fooled by brackets, quotes and escapes inside
 * strings, by the same key at other depths, or by escaped key names. */
static void test_locator(void **state)
{
    (void)state;
    BAD("{\"tensors\": [\n"
        "  {\"match\": \"a{[\\\"}]\", \"op\": \"add\", \"nmse\": 1},\n"
        "  {\"match\": \"b]}\\\\\\\\\", \"nmse\": 2},\n"
        "  {\"op\": \"kq\", \"nmse\": 3, \"ulp\": [1,\n"
        "   {\"x\": \"]\"}]}\n"
        "]}",
        "t.json: line 4: key 'tensors[2].ulp': expected a number >= 0 or null, not an array");
    BAD("{\"tensors\": [{\"op\": \"add\", \"nmse\": 1}],\n"
        " \"default\": {\"ulp\": 1, \"nmse\": 2,\n"
        "\n"
        "  \"nmse\\u0000\": 1}}",
        "t.json: line 4, column 14: NUL byte in object key"); /* jansson's */
    BAD("{\"tensors\": [{\"op\": \"add\", \"nmse\": 1}],\n"
        " \"default\": {\"ulp\": 1, \"nmse\": 2,\n"
        "\n"
        "  \"nms\\u0065x\\n\": 1}}",
        "t.json: line 4: key 'default.nmsex?': unknown key");
    BAD("{\"tensors\": [{\"op\": \"add\"}, {\"op\": \"add\"}, {\"op\": \"add\"},\n"
        "{\"op\": \"add\"}, {\"op\": \"add\"}, {\"op\": \"add\"}, {\"op\": \"add\"},\n"
        "{\"op\": \"add\"}, {\"op\": \"add\"}, {\"op\": \"add\"},\n"
        "  {\"op\": \"add\", \"cos\": 2}]}",
        "t.json: line 4: key 'tensors[10].cos'");
    /* a long unknown key is cut in the message */
    char text[512];
    snprintf(text, sizeof text, "{\"%0200d\": 1}", 0);
    BAD(text, "key '000000000000000000000000000000000000000000000000...': unknown key");
}

static void test_files(void **state)
{
    (void)state;
    struct dv_policy *p = (struct dv_policy *)1;
    assert_int_equal(dv_policy_load("/nonexistent/policy.json", &p), DV_E_INPUT);
    assert_null(p);
    assert_string_equal(dv_errmsg(),
                        "/nonexistent/policy.json: cannot read policy: No such file or directory");

    /* larger than 1 MiB: in memory and on disk */
    size_t big = (1u << 20) + 1;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, ' ', big);
    buf[0] = '{';
    buf[big - 1] = '}';
    parse_bad(buf, big, "t.json: policy file larger than 1 MiB");
    /* exactly 1 MiB is fine */
    buf[big - 2] = '}';
    struct dv_policy *q = NULL;
    assert_int_equal(dv_policy_parse(buf, big - 1, "t.json", &q), DV_OK);
    dv_policy_free(q);
    buf[big - 2] = ' ';

    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/dv_policy_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, big), (ssize_t)big);
    close(fd);
    assert_int_equal(dv_policy_load(path, &p), DV_E_INPUT);
    char want[4200];
    snprintf(want, sizeof want, "%s: policy file larger than 1 MiB", path);
    assert_string_equal(dv_errmsg(), want);

    /* a bad file on disk names its path */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("{\n  \"default\": {\n    \"oracle_m\": 0\n  }\n}\n", f);
    fclose(f);
    assert_int_equal(dv_policy_load(path, &p), DV_E_INPUT);
    snprintf(want, sizeof want, "%s: line 3: key 'default.oracle_m': expected a number >= 1, not 0",
             path);
    assert_string_equal(dv_errmsg(), want);
    unlink(path);
    free(buf);

    /* a directory */
    assert_int_equal(dv_policy_load("/", &p), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "/: cannot read policy: "));

    dv_policy_free(NULL);
}

/* ---- the example files ---------------------------------------------- */

static struct dv_policy *load_fixture(const char *name)
{
    char path[4096];
    policy_path(path, sizeof path, name);
    struct dv_policy *p = NULL;
    if (dv_policy_load(path, &p)) fail_msg("%s", dv_errmsg());
    assert_string_equal(dv_policy_source(p), path);
    return p;
}

static void test_examples(void **state)
{
    (void)state;
    struct dv_policy *p = load_fixture("example.json");
    struct dv_tolerance t = lookup(p, "blk.0.attn_norm", "rmsnorm");
    assert_true(t.nmse == 1e-6 && t.cos == 0.9999 && isinf(t.violations));
    t = lookup(p, "blk.7.kq_softmax", "softmax");
    assert_true(t.nmse == 1e-4 && t.max_abs == 0.01);
    t = lookup(p, "blk.7.ffn_up", "matmul");
    assert_true(t.violations == 0.001 && t.nmse == 1e-6);
    t = lookup(p, "logits", "matmul");
    assert_true(t.violations == 0.001);
    t = lookup(p, "blk.0.attn_in", "get_rows");
    assert_true(t.ignore);
    t = lookup(p, "blk.1.attn_in", "view");
    assert_false(t.ignore);
    dv_policy_free(p);

    p = load_fixture("oracle.json");
    t = lookup(p, "blk.2.kq_softmax", "softmax");
    assert_true(t.oracle_m == 2 && t.oracle_floor == 1e-5);
    t = lookup(p, "blk.12.kq_softmax", "softmax");
    assert_true(t.oracle_m == 4 && t.oracle_floor == 1e-5);
    t = lookup(p, "blk.12.q", "matmul");
    assert_true(t.oracle_m == 4 && t.oracle_floor == 1e-6);
    assert_true(t.nmse == 1e-6);
    dv_policy_free(p);

    p = load_fixture("f16-engine.json");
    t = lookup(p, "blk.0.q", "matmul");
    assert_true(t.nmse == 1e-4);
    dv_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin),
        cmocka_unit_test(test_builtin_fixture),
        cmocka_unit_test(test_default_and_globs),
        cmocka_unit_test(test_op_selector),
        cmocka_unit_test(test_null_limits),
        cmocka_unit_test(test_bad_syntax),
        cmocka_unit_test(test_bad_semantics),
        cmocka_unit_test(test_locator),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
