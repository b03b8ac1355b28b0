/*
 * engine_stub.c - "another engine": writes diverge dumps through the public
 * API alone (<diverge.h>, linked against the shared libdiverge), the way an
 * engine outside this project would, and checks the API's failure paths.
 *
 * usage: engine_stub DIR
 *
 * Writes DIR/stub.h5 (float32) and DIR/stub64.h5 (float64, compressed) for
 * a made-up one-layer model, two passes each, with table tensors in all
 * four element types and one tensor of the engine's own. DIR/stub.ref
 * lists every value exactly as it was handed to dv_dump_write (hex bits of
 * its element type), so engine_stub_check.py can compare what h5py reads
 * with the inputs converted by numpy, not by this program or the library.
 *
 * Then it runs the failure cases of the API against DIR/err.h5 and
 * DIR/keep.h5 (each on a fresh dump: a failed call makes a dump unusable)
 * and checks that a discarded dump leaves neither the file nor its
 * ".NAME.XXXXXX.part" temporary behind. Exit 0 when every check passed,
 * 1 otherwise (each failed check prints one line on stderr).
 */
#include <diverge.h>

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The made-up model: head_dim = N_EMBD / N_HEAD = 4. */
enum { N_VOCAB = 32, N_EMBD = 8, N_LAYER = 1, N_HEAD = 2, N_HEAD_KV = 1, N_FF = 16, HD = 4 };
/* Width of the engine's own tensor: fused q|k|v of one token (8 + 4 + 4). */
enum { FUSED = N_HEAD * HD + 2 * N_HEAD_KV * HD };
/* Largest tensor of a pass: kq of 3 tokens at pos0 3 would be 2*3*6. */
enum { MAXV = 256 };

static int n_fail;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            n_fail++;                                                          \
            fprintf(stderr, "engine_stub: FAIL line %d: ", __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, " [dv_errmsg: %s]\n", dv_errmsg());                \
        }                                                                      \
    } while (0)

/* ---- the reference file ------------------------------------------------- */

static FILE *ref; /* NULL while writing the second dump: same inputs */

static void ref_attr(const char *key, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ref_attr(const char *key, const char *kind, const char *fmt, ...)
{
    if (!ref) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(ref, "attr %s %s ", key, kind);
    vfprintf(ref, fmt, ap);
    fputc('\n', ref);
    va_end(ap);
}

/* "tensor NAME LAYER OP ORDER TYPE d0,d1,.. BITS..." with each element's
 * bits in hex at the width of its type. */
static void ref_tensor(const char *name, int layer, const char *op, long long order,
                       int n_dims, const int64_t *shape, enum dv_dump_type type,
                       const void *data, int64_t n)
{
    if (!ref) return;
    static const char *const tn[] = {[DV_DUMP_F32] = "f32", [DV_DUMP_F16] = "f16",
                                     [DV_DUMP_F64] = "f64", [DV_DUMP_BF16] = "bf16"};
    fprintf(ref, "tensor %s %d %s %lld %s ", name, layer, op, order, tn[type]);
    for (int i = 0; i < n_dims; i++) fprintf(ref, "%s%lld", i ? "," : "", (long long)shape[i]);
    for (int64_t i = 0; i < n; i++) {
        if (type == DV_DUMP_F16 || type == DV_DUMP_BF16) {
            fprintf(ref, " %04x", ((const uint16_t *)data)[i]);
        } else if (type == DV_DUMP_F32) {
            uint32_t u;
            memcpy(&u, (const float *)data + i, 4);
            fprintf(ref, " %08x", u);
        } else {
            uint64_t u;
            memcpy(&u, (const double *)data + i, 8);
            fprintf(ref, " %016llx", (unsigned long long)u);
        }
    }
    fputc('\n', ref);
}

/* ---- writing ------------------------------------------------------------ */

/* dv_dump_write plus the reference line; op NULL means the table's op,
 * which the reference names explicitly. */
static int put(dv_dump *d, const char *name, int layer, const char *op,
               const char *table_op, long long order, int n_dims,
               const int64_t *shape, enum dv_dump_type type, const void *data,
               long long *order_seen)
{
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= shape[i];
    dv_status s = dv_dump_write(d, name, layer, op, order, n_dims, shape, type, data);
    CHECK(s == DV_OK, "dv_dump_write %s: %s", name, dv_status_name(s));
    /* order -1 is one more than the last tensor written */
    *order_seen = order < 0 ? *order_seen + 1 : order;
    ref_tensor(name, layer, op ? op : table_op, *order_seen, n_dims, shape, type, data, n);
    return s == DV_OK;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* One pass of the model: tensors in execution order with values that only
 * depend on (pass, element index). Pass 0 names its orders (with gaps),
 * pass 1 lets the library count (order -1). */
static void write_pass(dv_dump *d, int pass, int64_t pos0, int64_t T,
                       const int32_t *tokens)
{
    const int64_t n_kv = pos0 + T;
    dv_status s = dv_dump_begin_pass(d, pass ? -1 : 0, pos0, T, tokens);
    CHECK(s == DV_OK, "dv_dump_begin_pass %d: %s", pass, dv_status_name(s));
    if (ref) {
        fprintf(ref, "pass %d %lld %lld", pass, (long long)pos0, (long long)T);
        for (int64_t t = 0; t < T; t++) fprintf(ref, "%s%d", t ? "," : " ", tokens[t]);
        fputc('\n', ref);
    }
    const bool auto_order = pass == 1;
    long long seen = -1;
#define ORD(k) (auto_order ? -1 : (k))

    /* blk.0.attn_norm [T, d], f32 */
    float norm[MAXV];
    int64_t sh_norm[] = {T, N_EMBD};
    for (int i = 0; i < T * N_EMBD; i++) norm[i] = (float)sin(0.37 * i + 0.1 * pass);
    put(d, "blk.0.attn_norm", 0, NULL, "rmsnorm", ORD(0), 2, sh_norm, DV_DUMP_F32, norm, &seen);

    /* blk.0.q [T, H, hd], f16 bits: signs, exponents and mantissas from the
     * index; pass 0 starts with the smallest subnormal, -0, the largest
     * finite half and the largest subnormal. */
    uint16_t q[MAXV];
    int64_t sh_q[] = {T, N_HEAD, HD};
    for (int i = 0; i < T * N_HEAD * HD; i++)
        q[i] = (uint16_t)((i & 1) << 15 | (10 + (i * 7 + pass) % 12) << 10 | ((i * 0x9b) & 0x3ff));
    if (pass == 0) q[0] = 0x0001, q[1] = 0x8000, q[2] = 0x7bff, q[3] = 0x03ff;
    put(d, "blk.0.q", 0, "matmul", "matmul", ORD(1), 3, sh_q, DV_DUMP_F16, q, &seen);

    /* blk.0.kq [H, T, n_kv], bf16 bits (a float truncated to its top half);
     * keys after the query's position are masked with -inf as in the
     * schema; one bf16 subnormal. */
    uint16_t kq[MAXV];
    int64_t sh_kq[] = {N_HEAD, T, n_kv};
    for (int h = 0; h < N_HEAD; h++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < n_kv; k++) {
                int64_t i = (h * T + t) * n_kv + k;
                kq[i] = k > pos0 + t ? 0xff80
                        : (uint16_t)(f32_bits((float)(3 * sin(0.7 * (double)i + 1))) >> 16);
            }
    kq[(1 * T + 0) * n_kv + 0] = 0x0001;
    put(d, "blk.0.kq", 0, NULL, "kq", ORD(5), 3, sh_kq, DV_DUMP_BF16, kq, &seen);

    /* the engine's own tensor [T, FUSED], f64 values that float32 must
     * round; pass 0 adds -0, an underflow to 0, NaN, +inf, an overflow to
     * inf and a value that rounds to a float32 subnormal. (Values in
     * (FLT_MAX, FLT_MAX + half an ulp) are left out: see the report.) */
    double fused[MAXV];
    int64_t sh_fused[] = {T, FUSED};
    for (int i = 0; i < T * FUSED; i++)
        fused[i] = sin(0.05 * i + pass) * ldexp(1.0, i % 9 - 4);
    if (pass == 0)
        fused[0] = -0.0, fused[1] = 1e-46, fused[2] = NAN, fused[3] = INFINITY,
        fused[4] = 1e39, fused[5] = 1.5e-45;
    put(d, "stub.fused_qkv", 0, "fused_qkv", "fused_qkv", ORD(6), 2, sh_fused,
        DV_DUMP_F64, fused, &seen);

    /* logits [T, V], f64 */
    double logits[MAXV];
    int64_t sh_logits[] = {T, N_VOCAB};
    for (int i = 0; i < T * N_VOCAB; i++) logits[i] = 10 * sin(0.13 * i + pass);
    put(d, "logits", -1, NULL, "matmul", ORD(9), 2, sh_logits, DV_DUMP_F64, logits, &seen);
#undef ORD
    s = dv_dump_end_pass(d);
    CHECK(s == DV_OK, "dv_dump_end_pass %d: %s", pass, dv_status_name(s));
}

/* The model description: the required keys, every optional one, and a
 * few of the engine's own. */
static dv_status describe(dv_dump *d)
{
    static const struct { const char *key; int64_t v; } ints[] = {
        {"n_vocab", N_VOCAB}, {"n_embd", N_EMBD}, {"n_layer", N_LAYER},
        {"n_head", N_HEAD}, {"n_head_kv", N_HEAD_KV}, {"n_ff", N_FF},
        {"head_dim", HD}, {"n_rot", HD}, {"n_ctx_train", 64}, {"stub.seed", 42},
    };
    static const struct { const char *key, *v; } strs[] = {
        {"arch", "llama"}, {"rope_type", "norm"}, {"device", "stub device"},
        {"driver", "stub 1.0"}, {"model_path", "/nonexistent/stub.gguf"},
        {"model_sha256", "0000000000000000000000000000000000000000000000000000000000000000"},
        {"inject", ""}, {"stub.commit", "caf\xc3\xa9 1f2e3d"}, /* UTF-8 */
    };
    static const struct { const char *key; double v; } reals[] = {
        {"rope_freq_base", 10000.0}, {"rms_eps", 1e-5}, {"stub.scale", 0.1},
    };
    dv_status s = DV_OK;
    for (size_t i = 0; !s && i < sizeof strs / sizeof strs[0]; i++) {
        s = dv_dump_set_str(d, strs[i].key, strs[i].v);
        ref_attr(strs[i].key, "str", "%s", strs[i].v);
    }
    for (size_t i = 0; !s && i < sizeof ints / sizeof ints[0]; i++) {
        s = dv_dump_set_int(d, ints[i].key, ints[i].v);
        ref_attr(ints[i].key, "int", "%lld", (long long)ints[i].v);
    }
    for (size_t i = 0; !s && i < sizeof reals / sizeof reals[0]; i++) {
        s = dv_dump_set_real(d, reals[i].key, reals[i].v);
        ref_attr(reals[i].key, "real", "%a", reals[i].v);
    }
    return s;
}

static void write_dump(const char *path, const char *backend, unsigned flags)
{
    static const int32_t tok0[] = {1, 7, 30}, tok1[] = {5};
    dv_dump *d = NULL;
    dv_status s = dv_dump_create(path, backend, flags, &d);
    CHECK(s == DV_OK, "dv_dump_create %s: %s", path, dv_status_name(s));
    if (s) return;
    if (ref) fprintf(ref, "attr backend str %s\n", backend);
    s = describe(d);
    CHECK(s == DV_OK, "describing the model: %s", dv_status_name(s));
    write_pass(d, 0, 0, 3, tok0);
    write_pass(d, 1, 3, 1, tok1);
    s = dv_dump_close(d, 1);
    CHECK(s == DV_OK, "dv_dump_close %s: %s", path, dv_status_name(s));
    CHECK(access(path, R_OK) == 0, "%s does not exist after the commit", path);
}

/* ---- failure paths ------------------------------------------------------- */

/* Temporary files ".BASE.*.part" of path, counted; the first one's name
 * into first (may be NULL). */
static int count_parts(const char *dir, const char *base, char *first, size_t cap)
{
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    size_t b = strlen(base);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        if (len > b + 6 && nm[0] == '.' && !strncmp(nm + 1, base, b) && nm[b + 1] == '.' &&
            !strcmp(nm + len - 5, ".part")) {
            if (!n && first) snprintf(first, cap, "%s", nm);
            n++;
        }
    }
    closedir(dp);
    return n;
}

static dv_status set_required(dv_dump *d)
{
    static const char *const k[] = {"n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff"};
    static const int64_t v[] = {N_VOCAB, N_EMBD, N_LAYER, N_HEAD, N_HEAD_KV, N_FF};
    dv_status s = dv_dump_set_str(d, "arch", "llama");
    for (int i = 0; !s && i < 6; i++) s = dv_dump_set_int(d, k[i], v[i]);
    return s;
}

static const int32_t one_token[] = {3};
static const float zeros[MAXV];

/* Each case drives a fresh dump into one failure and returns the failing
 * call's status; `want` is the message fragment that must name the
 * problem. */
static dv_status case_write_outside_pass(dv_dump *d)
{
    dv_status s = set_required(d);
    if (s) return DV_OK; /* counted as "did not fail" */
    int64_t sh[] = {1, N_EMBD};
    return dv_dump_write(d, "blk.0.attn_norm", 0, NULL, -1, 2, sh, DV_DUMP_F32, zeros);
}

static dv_status case_wrong_shape(dv_dump *d)
{
    if (set_required(d) || dv_dump_begin_pass(d, -1, 0, 1, one_token)) return DV_OK;
    int64_t sh[] = {1, HD, N_HEAD}; /* [T, hd, H]: heads and head dim swapped */
    return dv_dump_write(d, "blk.0.q", 0, NULL, -1, 3, sh, DV_DUMP_F32, zeros);
}

static dv_status case_kq_without_cache(dv_dump *d)
{
    static const int32_t tok[] = {1, 2};
    if (set_required(d) || dv_dump_begin_pass(d, -1, 4, 2, tok)) return DV_OK;
    int64_t sh[] = {N_HEAD, 2, 2}; /* n_kv must be pos0 + T = 6 */
    return dv_dump_write(d, "blk.0.kq", 0, NULL, -1, 3, sh, DV_DUMP_F32, zeros);
}

static dv_status case_wrong_table_op(dv_dump *d)
{
    if (set_required(d) || dv_dump_begin_pass(d, -1, 0, 1, one_token)) return DV_OK;
    int64_t sh[] = {1, N_EMBD};
    return dv_dump_write(d, "blk.0.attn_norm", 0, "layernorm", -1, 2, sh, DV_DUMP_F32, zeros);
}

static dv_status case_bad_element_type(dv_dump *d)
{
    if (set_required(d) || dv_dump_begin_pass(d, -1, 0, 1, one_token)) return DV_OK;
    int64_t sh[] = {1, N_EMBD};
    return dv_dump_write(d, "blk.0.attn_norm", 0, NULL, -1, 2, sh, (enum dv_dump_type)8, zeros);
}

static dv_status case_reserved_key(dv_dump *d)
{
    return dv_dump_set_str(d, "schema", "my-own-schema");
}

static dv_status case_key_of_wrong_kind(dv_dump *d)
{
    return dv_dump_set_str(d, "n_layer", "1");
}

static dv_status case_negative_size(dv_dump *d)
{
    return dv_dump_set_int(d, "n_embd", -8);
}

static dv_status case_pass_before_required(dv_dump *d)
{
    if (dv_dump_set_str(d, "arch", "llama")) return DV_OK;
    return dv_dump_begin_pass(d, -1, 0, 1, one_token);
}

static dv_status case_token_outside_vocab(dv_dump *d)
{
    static const int32_t tok[] = {N_VOCAB};
    if (set_required(d)) return DV_OK;
    return dv_dump_begin_pass(d, -1, 0, 1, tok);
}

static dv_status case_attr_after_pass(dv_dump *d)
{
    if (set_required(d) || dv_dump_begin_pass(d, -1, 0, 1, one_token)) return DV_OK;
    return dv_dump_set_int(d, "n_rot", HD);
}

static const struct {
    const char *what;
    dv_status (*run)(dv_dump *d);
    const char *want; /* in the message */
} cases[] = {
    {"write before begin_pass", case_write_outside_pass, "outside a pass"},
    {"table tensor of the wrong shape", case_wrong_shape, "expected [1, 2, 4]"},
    {"kq not covering pos0 + T keys", case_kq_without_cache, "expected [2, 2, 6]"},
    {"table tensor with another op", case_wrong_table_op, "expected 'rmsnorm'"},
    {"element type outside f32/f16/f64/bf16", case_bad_element_type, "element type 8"},
    {"reserved key", case_reserved_key, "schema"},
    {"key of the wrong kind", case_key_of_wrong_kind, "n_layer"},
    {"negative size", case_negative_size, "n_embd"},
    {"begin_pass before the required attributes", case_pass_before_required, "n_vocab"},
    {"token outside the vocabulary", case_token_outside_vocab, "token 32"},
    {"attribute after the first pass", case_attr_after_pass, "after the first pass"},
};

/* Run every case on dir/err.h5: the failing call returns DV_E_USAGE with a
 * message naming the file and the problem, the dump stays failed (even a
 * correct call fails next), and closing it, with commit or without,
 * leaves nothing on disk. */
static void check_failures(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/err.h5", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dv_dump *d = NULL;
        dv_status s = dv_dump_create(path, "stub", 0, &d);
        CHECK(s == DV_OK, "%s: dv_dump_create: %s", cases[i].what, dv_status_name(s));
        if (s) continue;
        CHECK(count_parts(dir, "err.h5", NULL, 0) == 1, "%s: no temporary file while "
              "writing", cases[i].what);
        s = cases[i].run(d);
        CHECK(s == DV_E_USAGE, "%s: status %s, expected usage", cases[i].what,
              dv_status_name(s));
        CHECK(strstr(dv_errmsg(), path) && strstr(dv_errmsg(), cases[i].want),
              "%s: message does not name %s and '%s'", cases[i].what, path, cases[i].want);
        s = dv_dump_set_str(d, "device", "after the failure");
        CHECK(s != DV_OK, "%s: the dump is still usable after a failure", cases[i].what);
        /* commit on even cases, discard on odd: both must clean up */
        s = dv_dump_close(d, (int)(i % 2 == 0));
        CHECK(i % 2 ? s == DV_OK : s != DV_OK, "%s: dv_dump_close(%d) returned %s",
              cases[i].what, (int)(i % 2 == 0), dv_status_name(s));
        CHECK(access(path, F_OK) != 0, "%s: %s exists after a failed dump", cases[i].what, path);
        CHECK(count_parts(dir, "err.h5", NULL, 0) == 0, "%s: a .err.h5.*.part is left",
              cases[i].what);
    }
}

/* A failed dump never touches a file already at its destination. */
static void check_keeps_existing(const char *dir)
{
    char path[4096], buf[16] = {0};
    snprintf(path, sizeof path, "%s/keep.h5", dir);
    FILE *f = fopen(path, "w");
    CHECK(f && fputs("keep\n", f) >= 0 && !fclose(f), "cannot write %s", path);
    dv_dump *d = NULL;
    if (dv_dump_create(path, "stub", 0, &d) == DV_OK) {
        CHECK(case_wrong_shape(d) == DV_E_USAGE, "keep.h5: the wrong shape was accepted");
        CHECK(dv_dump_close(d, 1) != DV_OK, "keep.h5: a failed dump was committed");
    }
    f = fopen(path, "r");
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) == 5 && !strcmp(buf, "keep\n"),
          "%s was changed by a failed dump", path);
    if (f) fclose(f);
    CHECK(count_parts(dir, "keep.h5", NULL, 0) == 0, "a .keep.h5.*.part is left");
}

/* A writer killed before closing leaves its temporary file; the next
 * dv_dump_create of the same destination removes it, but never the
 * temporary file of a writer that is still alive. */
static void check_stale_temp(const char *dir)
{
    char path[4096], stale[512] = "", now[512] = "";
    snprintf(path, sizeof path, "%s/stale.h5", dir);
    pid_t pid = fork();
    if (pid == 0) {
        dv_dump *d;
        if (dv_dump_create(path, "stub", 0, &d) == DV_OK) raise(SIGKILL);
        _exit(1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child writer did not die");
    CHECK(count_parts(dir, "stale.h5", stale, sizeof stale) == 1,
          "a killed writer left no temporary file");
    dv_dump *live = NULL, *second = NULL;
    CHECK(dv_dump_create(path, "stub", 0, &live) == DV_OK, "create after a crash");
    CHECK(count_parts(dir, "stale.h5", now, sizeof now) == 1 && strcmp(now, stale),
          "the dead writer's %s was not removed", stale);
    CHECK(dv_dump_create(path, "stub", 0, &second) == DV_OK, "second live writer");
    CHECK(count_parts(dir, "stale.h5", NULL, 0) == 2,
          "a second writer removed the live writer's temporary file");
    CHECK(dv_dump_close(second, 0) == DV_OK && dv_dump_close(live, 0) == DV_OK,
          "discarding the live writers");
    CHECK(count_parts(dir, "stale.h5", NULL, 0) == 0 && access(path, F_OK) != 0,
          "discarded writers left files");
}

/* Calls that need no dump. */
static void check_basics(const char *dir)
{
    CHECK(dv_dump_api_version() == DV_DUMP_API_VERSION, "library API version %d, header %d",
          dv_dump_api_version(), DV_DUMP_API_VERSION);
    CHECK(!strcmp(dv_version(), DV_VERSION_STRING), "library %s, header %s", dv_version(),
          DV_VERSION_STRING);
    CHECK(!strcmp(dv_status_name(DV_E_USAGE), "usage"), "dv_status_name");
    CHECK(dv_dump_close(NULL, 1) == DV_OK, "dv_dump_close(NULL)");
    dv_dump *d = (dv_dump *)&d; /* must be overwritten with NULL on failure */
    char path[4096];
    snprintf(path, sizeof path, "%s/no/such/dir/x.h5", dir);
    dv_status s = dv_dump_create(path, "stub", 0, &d);
    CHECK(s != DV_OK && d == NULL && strstr(dv_errmsg(), path),
          "create in a missing directory: %s", dv_status_name(s));
    CHECK(dv_dump_create(dir, "stub", 99, &d) == DV_E_USAGE, "unknown flags");
    CHECK(dv_dump_create("", "stub", 0, &d) == DV_E_USAGE, "empty path");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: engine_stub DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/stub.ref", dir);
    if (!(ref = fopen(path, "w"))) {
        perror(path);
        return 1;
    }
    fprintf(ref, "# engine_stub: every value handed to dv_dump_write, as hex bits\n");
    snprintf(path, sizeof path, "%s/stub.h5", dir);
    write_dump(path, "stub-engine", 0);
    if (fclose(ref)) n_fail++;
    ref = NULL;
    snprintf(path, sizeof path, "%s/stub64.h5", dir);
    write_dump(path, "stub-engine", DV_DUMP_FLOAT64 | DV_DUMP_COMPRESS);

    check_basics(dir);
    check_failures(dir);
    check_keeps_existing(dir);
    check_stale_temp(dir);
    if (n_fail) fprintf(stderr, "engine_stub: %d checks failed\n", n_fail);
    return n_fail ? 1 : 0;
}
