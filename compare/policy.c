/*
 * policy.c - reading and validating tolerance policies (policy.h).
 *
 * jansson parses the text; this file checks the document against the
 * schema and turns it into a base tolerance (built-in values with the
 * file's "default" applied) plus the list of "tensors" entries. jansson
 * keeps no positions of values, so a semantic error is located by
 * locate_line(), which walks the raw text (already known to be valid
 * JSON) along the offending key's path and counts lines.
 */
#include "policy.h"

#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ops.h"

#define POLICY_MAX_BYTES (1u << 20) /* 1 MiB: a policy is a few hundred bytes */

/* ---- the built-in policy -------------------------------------------- */

/* The one place the default tolerances are written down; docs/
 * diverge-policy.5 quotes this text verbatim. Every key is set (the parser
 * checks), so it is also the base every other policy starts from. */
static const char builtin_json[] =
    "{\n"
    "  \"version\": 1,\n"
    "  \"default\": {\n"
    /* relative RMS 1e-3: far above the f32 drift measured through whole
     * models here (worst cpu-vs-vulkan NMSE 1.3e-11 over every fixture), at
     * the level of an f16-sized error (f16 rounding alone is NMSE ~8e-8
     * per op and grows), so f16 accumulation or a wrong op is caught
     * without an oracle; errors smaller than this need --oracle. */
    "    \"nmse\": 1e-6,\n"
    /* reported, not checked: they depend on the tensor's scale (max_abs,
     * max_rel, ulp) and on its length (violations, and the chance of one
     * large outlier), so no single limit fits every tensor. cos likewise
     * (1 - cos is about nmse / 2 for small errors: nmse already says it). */
    "    \"max_abs\": null,\n"
    "    \"max_rel\": null,\n"
    "    \"ulp\": null,\n"
    "    \"violations\": null,\n"
    "    \"cos\": null,\n"
    /* numpy.isclose's defaults, so the violation count is what
     * np.isclose reports. */
    "    \"atol\": 1e-8,\n"
    "    \"rtol\": 1e-5,\n"
    /* max_rel's denominator floor, in the tensor's units: activations here
     * are O(0.01..100); below 1e-6 a value has cancelled and a relative
     * error means nothing. */
    "    \"rel_eps\": 1e-6,\n"
    /* PyTorch's accuracy minifier uses 2 for f32; measured here the clean
     * vulkan-vs-cpu worst ratio err(test,oracle) / (2 err(ref,oracle) +
     * floor) is 0.70 over all fixtures, so 2 leaves room. */
    "    \"oracle_m\": 2,\n"
    /* 2^-20 = 16 f32 units of roundoff (u = 2^-24): covers tensors the
     * reference computes exactly (embedding rows, err(ref,oracle) = 0),
     * where any reordering still adds a few roundings; the weakest fault
     * of the zoo (rmsnorm-eps) sits 3.2x above the resulting limit. */
    "    \"oracle_floor\": 9.5367431640625e-07,\n"
    /* Under declared arithmetic (an exact dump given) the test and the
     * reference each carry that arithmetic's own error against the exact
     * run, e = err(ref, exact). While their inputs agree to f32 noise they
     * round alike but for the odd value near a rounding boundary (one flip
     * moves a tensor of n values by about sqrt(12 / n) e; llama.cpp's CPU
     * with an f16 cache, 2 layers: 0.03 e); every rounding that differs
     * feeds the next layer, so their roundings decorrelate layer by layer
     * towards sqrt(2) e. Measured on llama.cpp's Vulkan backend on lavapipe,
     * whose f16 sums round at every step: 0.06 e after 2 layers, 0.55 e
     * after 5 (stories260K), 0.67 e after 4 (mini-llama), beyond the 0.5
     * this was (taken from the one-flip picture). It must stay below 1: a
     * test that skips the declared rounding is e away from the reference
     * where the rounding starts, and 0.8 still flags it there (1.25 times
     * the limit). A wrong RoPE base, mask or head map is 10 to 100 times e.
     * Deeper models decorrelate further: judge them op by op (bisect). */
    "    \"declared_m\": 0.8,\n"
    /* every tensor counts. */
    "    \"ignore\": false\n"
    "  }\n"
    "}\n";

const char *dv_policy_builtin_json(void) { return builtin_json; }

/* ---- the keys ----------------------------------------------------- */

enum key_kind {
    K_UPPER,     /* number >= 0, or null = +INFINITY */
    K_FRACTION,  /* number in [0, 1], or null = +INFINITY */
    K_COS,       /* number in [-1, 1], or null = -INFINITY */
    K_NONNEG,    /* number >= 0 */
    K_POSITIVE,  /* number > 0 */
    K_AT_LEAST1, /* number >= 1 */
    K_OBSOLETE,  /* "test" or "any": accepted, has no effect (policy.h) */
    K_BOOL,      /* true or false */
};

static const struct key_def {
    const char *name;
    enum key_kind kind;
    size_t off; /* of the field in struct dv_tolerance */
} keys[] = {
    {"nmse", K_UPPER, offsetof(struct dv_tolerance, nmse)},
    {"max_abs", K_UPPER, offsetof(struct dv_tolerance, max_abs)},
    {"max_rel", K_UPPER, offsetof(struct dv_tolerance, max_rel)},
    {"ulp", K_UPPER, offsetof(struct dv_tolerance, ulp)},
    {"violations", K_FRACTION, offsetof(struct dv_tolerance, violations)},
    {"cos", K_COS, offsetof(struct dv_tolerance, cos)},
    {"atol", K_NONNEG, offsetof(struct dv_tolerance, metric.atol)},
    {"rtol", K_NONNEG, offsetof(struct dv_tolerance, metric.rtol)},
    {"rel_eps", K_POSITIVE, offsetof(struct dv_tolerance, metric.rel_eps)},
    {"oracle_m", K_AT_LEAST1, offsetof(struct dv_tolerance, oracle_m)},
    {"oracle_floor", K_NONNEG, offsetof(struct dv_tolerance, oracle_floor)},
    {"declared_m", K_NONNEG, offsetof(struct dv_tolerance, declared_m)},
    {"nonfinite", K_OBSOLETE, 0},
    {"ignore", K_BOOL, offsetof(struct dv_tolerance, ignore)},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* Bits of the keys that mean something (all but the obsolete ones). */
static unsigned live_keys(void)
{
    unsigned m = 0;
    for (size_t i = 0; i < N_KEYS; i++) m |= (unsigned)(keys[i].kind != K_OBSOLETE) << i;
    return m;
}

static const char *const expectation[] = {
    [K_UPPER] = "a number >= 0 or null",
    [K_FRACTION] = "a number from 0 to 1 or null",
    [K_COS] = "a number from -1 to 1 or null",
    [K_NONNEG] = "a number >= 0",
    [K_POSITIVE] = "a number > 0",
    [K_AT_LEAST1] = "a number >= 1",
    [K_OBSOLETE] = "\"test\" or \"any\"",
    [K_BOOL] = "true or false",
};

/* Some keys set to values; `set` has bit i for keys[i]. */
struct override {
    unsigned set;
    struct dv_tolerance tol;
};

struct entry {
    char *match; /* glob, or NULL */
    char *op;    /* op name, or NULL */
    struct override ov;
};

struct dv_policy {
    char *source;
    struct dv_tolerance base; /* built-in values + the file's "default" */
    size_t n_entries;
    struct entry *entries;
};

static void apply(struct dv_tolerance *t, const struct override *ov)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!(ov->set & (1u << i))) continue;
        char *dst = (char *)t + keys[i].off;
        const char *src = (const char *)&ov->tol + keys[i].off;
        switch (keys[i].kind) {
        case K_OBSOLETE: break;
        case K_BOOL: memcpy(dst, src, sizeof(bool)); break;
        default: memcpy(dst, src, sizeof(double)); break;
        }
    }
}

/* ---- locating a key in the raw text ------------------------------- */

/* One step of a path into the document: an object member by key, or an
 * array element by index (key == NULL). */
struct step {
    const char *key;
    size_t index;
};

static size_t skip_ws(const char *t, size_t n, size_t i)
{
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
    return i;
}

/* i at the opening quote; returns the index after the closing one. */
static size_t skip_string(const char *t, size_t n, size_t i)
{
    for (i++; i < n && t[i] != '"'; i++)
        if (t[i] == '\\') i++; /* the escaped character can't end the string */
    return i < n ? i + 1 : n;
}

/* i at the first byte of any value; returns the index after it (for a
 * number or literal: the index of the ',', '}' or ']' that follows).
 * Strings are skipped whole, so brackets inside them do not count. */
static size_t skip_value(const char *t, size_t n, size_t i)
{
    int depth = 0;
    while (i < n) {
        char c = t[i];
        if (c == '"') {
            i = skip_string(t, n, i);
        } else if (c == '{' || c == '[') {
            depth++, i++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return i; /* a scalar's enclosing container ends */
            depth--, i++;
        } else if (c == ',' && depth == 0) {
            return i; /* a scalar's end */
        } else {
            i++;
        }
        /* a string, or the container the value opened, just ended */
        if (depth == 0 && (c == '"' || c == '}' || c == ']')) return i;
    }
    return i;
}

/* Does the string literal t[0..n) (quotes included) decode to key? jansson
 * decodes it, so escapes mean exactly what they meant to the parser. */
static bool literal_is(const char *t, size_t n, const char *key)
{
    json_error_t e;
    json_t *s = json_loadb(t, n, JSON_DECODE_ANY, &e);
    bool same = s && json_is_string(s) && json_string_length(s) == strlen(key) &&
                memcmp(json_string_value(s), key, strlen(key)) == 0;
    json_decref(s);
    return same;
}

/* The line (1-based) of the thing at the end of `path` in the valid JSON
 * text t[0..n): of the key for an object member, of the value for an array
 * element, of the top-level value for an empty path. If a step is not
 * found (it always is, the path comes from the parsed document) the line of
 * the deepest container reached is returned. */
static int locate_line(const char *t, size_t n, const struct step *path, int n_steps)
{
    size_t i = skip_ws(t, n, 0), at = i;
    for (int s = 0; s < n_steps && i < n && (t[i] == '{' || t[i] == '['); s++) {
        bool object = t[i] == '{', found = false;
        i = skip_ws(t, n, i + 1);
        for (size_t k = 0; i < n && t[i] != '}' && t[i] != ']'; k++) {
            size_t member = i; /* the key, or the element */
            bool hit;
            if (object) {
                size_t end = skip_string(t, n, i);
                hit = path[s].key && literal_is(t + i, end - i, path[s].key);
                i = skip_ws(t, n, end);     /* at ':' */
                i = skip_ws(t, n, i + 1);   /* at the value */
            } else {
                hit = !path[s].key && k == path[s].index;
            }
            if (hit) {
                at = member, found = true;
                break; /* i is at the member's value: descend */
            }
            i = skip_ws(t, n, skip_value(t, n, i));
            if (i < n && t[i] == ',') i = skip_ws(t, n, i + 1);
        }
        if (!found) break;
    }
    int line = 1;
    for (size_t j = 0; j < at && j < n; j++) line += t[j] == '\n';
    return line;
}

/* ---- validation ---------------------------------------------------- */

struct ctx {
    const char *text;
    size_t len;
    const char *name;
};

/* "tensors[2].nmse": the path written for people. Keys are the decoded
 * ones, control bytes shown as '?', long keys cut at a character boundary. */
static void format_path(char *buf, size_t cap, const struct step *path, int n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int s = 0; s < n && o + 1 < cap; s++) {
        if (!path[s].key) {
            o += (size_t)snprintf(buf + o, cap - o, "[%zu]", path[s].index);
            continue;
        }
        if (s > 0) buf[o++] = '.';
        size_t klen = strlen(path[s].key), cut = klen > 48 ? 48 : klen;
        while (cut < klen && cut > 0 && ((unsigned char)path[s].key[cut] & 0xC0) == 0x80)
            cut--;
        for (size_t j = 0; j < cut && o + 1 < cap; j++) {
            unsigned char c = (unsigned char)path[s].key[j];
            buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
        if (cut < klen) o += (size_t)snprintf(buf + o, cap > o ? cap - o : 0, "...");
        if (o >= cap) o = cap - 1;
        buf[o] = '\0';
    }
    if (o >= cap) o = cap - 1;
    buf[o] = '\0';
}

/* Fail with "NAME: line N: key 'PATH': what" (no key part for the top
 * level). Control bytes of quoted values in `what` become '?': the
 * message stays one line. */
static dv_status bad(const struct ctx *c, const struct step *path, int n, const char *what)
{
    char where[256], text[512];
    format_path(where, sizeof where, path, n);
    snprintf(text, sizeof text, "%s", what);
    for (char *q = text; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
    int line = locate_line(c->text, c->len, path, n);
    if (n == 0) return dv_fail(DV_E_INPUT, "%s: line %d: %s", c->name, line, text);
    return dv_fail(DV_E_INPUT, "%s: line %d: key '%s': %s", c->name, line, where, text);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* One tolerance key's value into ov. */
static dv_status read_key(const struct ctx *c, const struct step *path, int n, size_t ki,
                          const json_t *v, struct override *ov)
{
    const struct key_def *k = &keys[ki];
    char what[160];
    void *dst = (char *)&ov->tol + k->off;
    bool type_ok;
    switch (k->kind) {
    case K_OBSOLETE: type_ok = json_is_string(v); break;
    case K_BOOL: type_ok = json_is_boolean(v); break;
    case K_UPPER:
    case K_FRACTION:
    case K_COS: type_ok = json_is_number(v) || json_is_null(v); break;
    default: type_ok = json_is_number(v); break;
    }
    if (!type_ok) {
        snprintf(what, sizeof what, "expected %s, not %s", expectation[k->kind], type_name(v));
        return bad(c, path, n, what);
    }
    if (k->kind == K_OBSOLETE) {
        /* still checked, so that a typo in an old file is still an error */
        const char *s = json_string_value(v);
        if (strcmp(s, "test") && strcmp(s, "any")) {
            snprintf(what, sizeof what, "expected %s, not \"%.40s%s\"", expectation[k->kind], s,
                     strlen(s) > 40 ? "..." : "");
            return bad(c, path, n, what);
        }
    } else if (k->kind == K_BOOL) {
        bool b = json_is_true(v);
        memcpy(dst, &b, sizeof b);
    } else {
        double x;
        if (json_is_null(v)) {
            x = k->kind == K_COS ? -INFINITY : INFINITY;
        } else {
            x = json_number_value(v); /* always finite: jansson refuses overflow */
            bool ok = isfinite(x);
            switch (k->kind) {
            case K_UPPER:
            case K_NONNEG: ok = ok && x >= 0; break;
            case K_FRACTION: ok = ok && x >= 0 && x <= 1; break;
            case K_COS: ok = ok && x >= -1 && x <= 1; break;
            case K_POSITIVE: ok = ok && x > 0; break;
            case K_AT_LEAST1: ok = ok && x >= 1; break;
            default: break;
            }
            if (!ok) {
                snprintf(what, sizeof what, "expected %s, not %.17g", expectation[k->kind], x);
                return bad(c, path, n, what);
            }
        }
        memcpy(dst, &x, sizeof x);
    }
    ov->set |= 1u << ki;
    return DV_OK;
}

/* An fnmatch(3) pattern problem (flags 0), or NULL. glibc takes a '['
 * without its ']' literally and a trailing '\' as no match; both are
 * almost certainly typos, so they are refused. */
static const char *glob_problem(const char *g)
{
    for (size_t i = 0; g[i]; i++) {
        if (g[i] == '\\') {
            if (!g[++i]) return "ends with an unescaped '\\'";
        } else if (g[i] == '[') {
            size_t j = i + 1;
            if (g[j] == '!' || g[j] == '^') j++;
            if (g[j] == ']') j++; /* a leading ']' is a member */
            while (g[j] && g[j] != ']') j++;
            if (!g[j]) return "has a '[' without its ']'";
            i = j;
        }
    }
    int r = fnmatch(g, "", 0);
    return (r == 0 || r == FNM_NOMATCH) ? NULL : "is not a valid fnmatch(3) pattern";
}

/* The members of a "default" object (entry == NULL) or of a "tensors"
 * entry. path[0..n) is the object's path; one more step is room for keys. */
static dv_status read_object(const struct ctx *c, struct step *path, int n, const json_t *obj,
                             struct override *ov, struct entry *entry)
{
    const char *key;
    json_t *v;
    char what[512];
    json_object_foreach((json_t *)obj, key, v) {
        path[n] = (struct step){key, 0};
        size_t ki = 0;
        while (ki < N_KEYS && strcmp(keys[ki].name, key)) ki++;
        if (ki < N_KEYS) {
            dv_status s = read_key(c, path, n + 1, ki, v, ov);
            if (s) return s;
        } else if (entry && (!strcmp(key, "match") || !strcmp(key, "op"))) {
            bool is_match = key[0] == 'm';
            const char *str = json_is_string(v) ? json_string_value(v) : NULL;
            if (!str || !*str)
                return bad(c, path, n + 1,
                           is_match ? "expected a non-empty string (an fnmatch(3) glob)"
                                    : "expected an op name (a string)");
            if (is_match) {
                const char *problem = glob_problem(str);
                if (problem) {
                    snprintf(what, sizeof what, "the glob \"%.80s\" %s", str, problem);
                    return bad(c, path, n + 1, what);
                }
            } else if (dv_op_from_name(str) < 0) {
                int o = snprintf(what, sizeof what, "unknown op \"%.40s\" (one of", str);
                for (int i = 0; i < DV_OP_COUNT && o < (int)sizeof what; i++)
                    o += snprintf(what + o, sizeof what - (size_t)o, "%s %s",
                                  i ? "," : "", dv_op_name(i));
                if (o < (int)sizeof what) snprintf(what + o, sizeof what - (size_t)o, ")");
                return bad(c, path, n + 1, what);
            }
            char *copy = strdup(str);
            if (!copy) return dv_fail(DV_E_NOMEM, "%s: out of memory", c->name);
            free(is_match ? entry->match : entry->op);
            *(is_match ? &entry->match : &entry->op) = copy;
        } else {
            return bad(c, path, n + 1,
                       entry ? "unknown key (expected match, op or a tolerance key)"
                             : "unknown key (expected a tolerance key)");
        }
    }
    return DV_OK;
}

/* Validate the document and fill p (whose base holds the built-in values
 * or, for the built-in policy itself, garbage every key overwrites).
 * *dflt_set tells which keys "default" set. */
static dv_status read_doc(const struct ctx *c, const json_t *root, struct dv_policy *p,
                          unsigned *dflt_set)
{
    struct step path[4] = {{0}};
    const char *key;
    json_t *v;
    *dflt_set = 0;
    if (!json_is_object(root)) {
        char what[96];
        snprintf(what, sizeof what, "expected a JSON object at the top level, not %s",
                 type_name(root));
        return bad(c, path, 0, what);
    }
    json_object_foreach((json_t *)root, key, v) {
        path[0] = (struct step){key, 0};
        if (!strcmp(key, "version")) {
            if (!json_is_integer(v)) return bad(c, path, 1, "expected the integer 1");
            if (json_integer_value(v) != 1) {
                char what[96];
                snprintf(what, sizeof what, "unsupported version %lld (this diverge reads 1)",
                         (long long)json_integer_value(v));
                return bad(c, path, 1, what);
            }
        } else if (!strcmp(key, "default")) {
            if (!json_is_object(v)) return bad(c, path, 1, "expected an object");
            struct override ov = {0};
            dv_status s = read_object(c, path, 1, v, &ov, NULL);
            if (s) return s;
            apply(&p->base, &ov);
            *dflt_set = ov.set;
        } else if (!strcmp(key, "tensors")) {
            if (!json_is_array(v)) return bad(c, path, 1, "expected an array");
            size_t n = json_array_size(v);
            if (n == 0) continue;
            p->entries = calloc(n, sizeof *p->entries);
            if (!p->entries) return dv_fail(DV_E_NOMEM, "%s: out of memory", c->name);
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                struct entry *en = &p->entries[p->n_entries++];
                path[1] = (struct step){NULL, i};
                if (!json_is_object(e)) return bad(c, path, 2, "expected an object");
                dv_status s = read_object(c, path, 2, e, &en->ov, en);
                if (s) return s;
                if (!en->match && !en->op)
                    return bad(c, path, 2, "an entry needs \"match\" or \"op\"");
            }
        } else {
            return bad(c, path, 1, "unknown key (expected version, default or tensors)");
        }
    }
    return DV_OK;
}

/* Parse `text` into a new policy whose base starts as *base (NULL: the
 * document must set every key, as the built-in one does). */
static dv_status parse_with_base(const char *text, size_t len, const char *name,
                                 const struct dv_tolerance *base, struct dv_policy **out)
{
    struct ctx c = {text, len, name};
    if (len > POLICY_MAX_BYTES)
        return dv_fail(DV_E_INPUT, "%s: policy file larger than 1 MiB", name);
    size_t i = skip_ws(text, len, 0);
    if (i == len) {
        int line = 1;
        for (size_t j = 0; j < len; j++) line += text[j] == '\n';
        return dv_fail(DV_E_INPUT, "%s: line %d: empty policy file (expected a JSON object)",
                       name, line);
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        /* jansson quotes the offending token ("invalid escape near
         * '"a\<newline>'"), raw bytes and all: control bytes become '?'
         * so the message stays one line (found by tests/fuzz/fuzz_policy) */
        for (char *q = je.text; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
        return dv_fail(DV_E_INPUT, "%s: line %d, column %d: %s", name, je.line, je.column,
                       je.text);
    }

    struct dv_policy *p = calloc(1, sizeof *p);
    dv_status s = p ? DV_OK : dv_fail(DV_E_NOMEM, "%s: out of memory", name);
    if (!s && !(p->source = strdup(name))) s = dv_fail(DV_E_NOMEM, "%s: out of memory", name);
    unsigned dflt_set = 0;
    if (!s) {
        if (base) p->base = *base;
        s = read_doc(&c, root, p, &dflt_set);
    }
    if (!s && !base && (dflt_set != live_keys() || p->n_entries))
        s = dv_fail(DV_E_RUNTIME, "%s: the built-in policy must set every key but the obsolete "
                                  "ones in \"default\" and have no \"tensors\"", name);
    json_decref(root);
    if (s) {
        dv_policy_free(p);
        return s;
    }
    *out = p;
    return DV_OK;
}

/* ---- public functions ---------------------------------------------- */

dv_status dv_policy_parse(const char *text, size_t len, const char *name,
                          struct dv_policy **out)
{
    *out = NULL;
    struct dv_policy *builtin;
    dv_status s = parse_with_base(builtin_json, strlen(builtin_json), "built-in", NULL, &builtin);
    if (s) return s;
    s = parse_with_base(text, len, name, &builtin->base, out);
    dv_policy_free(builtin);
    return s;
}

dv_status dv_policy_default(struct dv_policy **out)
{
    return dv_policy_parse(builtin_json, strlen(builtin_json), "built-in", out);
}

dv_status dv_policy_load(const char *path, struct dv_policy **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dv_fail(DV_E_INPUT, "%s: cannot read policy: %s", path, strerror(errno));
    /* one byte more than the limit tells a file above it */
    char *buf = malloc(POLICY_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return dv_fail(DV_E_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, POLICY_MAX_BYTES + 1, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    dv_status s;
    if (err)
        s = dv_fail(DV_E_INPUT, "%s: cannot read policy: %s", path, strerror(err));
    else if (n > POLICY_MAX_BYTES)
        s = dv_fail(DV_E_INPUT, "%s: policy file larger than 1 MiB", path);
    else
        s = dv_policy_parse(buf, n, path, out);
    free(buf);
    return s;
}

void dv_policy_free(struct dv_policy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_entries; i++) {
        free(p->entries[i].match);
        free(p->entries[i].op);
    }
    free(p->entries);
    free(p->source);
    free(p);
}

void dv_policy_lookup(const struct dv_policy *p, const char *name, const char *op,
                      struct dv_tolerance *out)
{
    *out = p->base;
    for (size_t i = 0; i < p->n_entries; i++) {
        const struct entry *e = &p->entries[i];
        if (e->match && (!name || fnmatch(e->match, name, 0) != 0)) continue;
        if (e->op && (!op || strcmp(e->op, op) != 0)) continue;
        apply(out, &e->ov);
    }
}

const char *dv_policy_source(const struct dv_policy *p) { return p->source; }

