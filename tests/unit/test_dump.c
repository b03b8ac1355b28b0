/*
 * test_dump.c - the dump writer: fixture runs read back through the reader
 * equal to what the hook received, filters, element-type conversion, the
 * API's rules, commit / discard / stale-temporary handling, and the
 * declared-arithmetic attributes read back (and checked by compare).
 */
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "compare.h"
#include "diverge.h"
#include "dump.h"
#include "ops.h"
#include "quant.h"
#include "reader.h"
#include "../common/testutil.h"
#include "types.h"

static const char *tiny_path(void) { return tu_path(tu_tmp, "tiny.gguf"); }

static int setup(void **state)
{
    if (tu_group_setup(state)) return -1;
    return dv_fixture_write("tiny", tiny_path()) ? -1 : 0;
}

/* ---- a hook feeding both a collector and a dump ------------------------ */

struct both {
    struct dv_hook a, b;
    bool a_wants, b_wants;
};

static dv_status both_begin(void *u, int pass, int pos0, int n, const int32_t *t)
{
    struct both *x = u;
    return x->b.begin_pass(x->b.user, pass, pos0, n, t);
}

static bool both_want(void *u, const struct dv_tensor_desc *d)
{
    struct both *x = u;
    x->a_wants = x->a.want(x->a.user, d);
    x->b_wants = x->b.want(x->b.user, d);
    return x->a_wants || x->b_wants;
}

static dv_status both_take(void *u, const struct dv_tensor_desc *d, const void *data)
{
    struct both *x = u;
    dv_status s = x->a_wants ? x->a.take(x->a.user, d, data) : DV_OK;
    return !s && x->b_wants ? x->b.take(x->b.user, d, data) : s;
}

static dv_status both_end(void *u, int pass)
{
    struct both *x = u;
    return x->b.end_pass(x->b.user, pass);
}

/* Run tiny on `backend` over passes 3,2,1 into `out`, collecting every
 * tensor into c and dumping what f keeps. */
static void run_dump(int backend, const struct dv_dump_filter *f, const char *out,
                     struct tu_collect *c, struct dv_dump_sink *sink)
{
    static const int32_t toks[] = {1, 17, 42, 99, 7, 200};
    static const int sched[] = {3, 2, 1};
    struct dv_model *m;
    assert_int_equal(dv_model_open(tiny_path(), &m), DV_OK);
    struct dv_engine *e;
    struct dv_engine_opts o = {.n_ctx = 6, .n_batch = 3};
    assert_int_equal(dv_engine_open(m, backend, &o, &e), DV_OK);
    *sink = (struct dv_dump_sink){.filter = f};
    unsigned flags = backend == DV_BACKEND_CPU_F64 ? DV_DUMP_FLOAT64 : 0;
    assert_int_equal(dv_dump_create(out, dv_backend_name(backend), flags, &sink->dump), DV_OK);
    assert_int_equal(dv_dump_describe(sink->dump, m, "test-device", "test-driver", "", NULL),
                     DV_OK);
    struct both x = {.a = tu_hook(c), .b = dv_dump_hook(sink)};
    struct dv_hook h = {.begin_pass = both_begin, .want = both_want, .take = both_take,
                        .end_pass = both_end, .user = &x};
    for (int i = 0, pos = 0; i < 3; pos += sched[i++])
        assert_int_equal(dv_engine_forward(e, toks + pos, sched[i], pos, &h), DV_OK);
    assert_int_equal(dv_dump_close(sink->dump, 1), DV_OK);
    dv_engine_free(e);
    dv_model_free(m);
}

/* Every tensor of every pass is in the dump, in execution order, with the
 * hook's shape and bit-identical values (f32 as float, f64 as double). */
static void check_everything(int backend)
{
    const char *out = tu_path(tu_tmp, backend == DV_BACKEND_CPU ? "all.h5" : "all64.h5");
    struct tu_collect c = {0};
    struct dv_dump_filter f = {0};
    struct dv_dump_sink sink;
    run_dump(backend, &f, out, &c, &sink);

    struct dv_reader *r;
    assert_int_equal(dv_reader_open(out, &r), DV_OK);
    assert_int_equal(r->n_passes, 3);
    assert_int_equal(r->cfg.n_layer, 2);
    assert_string_equal(dv_reader_str(r, "backend"), dv_backend_name(backend));
    assert_string_equal(dv_reader_str(r, "device"), "test-device");
    assert_int_equal(strlen(dv_reader_str(r, "model_sha256")), 64);
    const int per_pass = dv_tensors_per_pass(2);
    assert_int_equal(c.n, 3 * per_pass);
    assert_int_equal(sink.n_tensors, 3 * per_pass);
    static const int pos0[] = {0, 3, 5}, ntok[] = {3, 2, 1};
    for (int p = 0; p < 3; p++) {
        const struct dv_reader_pass *rp = &r->passes[p];
        assert_int_equal(rp->index, p);
        assert_int_equal(rp->pos0, pos0[p]);
        assert_int_equal(rp->n_tokens, ntok[p]);
        assert_int_equal(rp->n_tensors, per_pass);
        for (int t = 0; t < per_pass; t++) {
            const struct dv_reader_tensor *rt = &rp->tensors[t];
            const struct tu_tensor *want = tu_find(&c, p, rt->name);
            assert_non_null(want);
            assert_int_equal(rt->order, t); /* sorted by order = execution */
            assert_int_equal(rt->order, want->order);
            assert_int_equal(rt->layer, want->layer);
            assert_string_equal(rt->op, dv_op_name(want->op));
            assert_true(rt->known);
            assert_int_equal(rt->n_dims, want->n_dims);
            for (int i = 0; i < want->n_dims; i++)
                assert_int_equal(rt->shape[i], want->shape[i]);
            assert_int_equal(rt->stored_bytes, backend == DV_BACKEND_CPU ? 4 : 8);
            double *v = malloc((size_t)rt->n_elems * sizeof *v);
            assert_non_null(v);
            assert_int_equal(dv_reader_read(r, p, t, DV_TYPE_F64, v), DV_OK);
            /* the collector widened the hook's values to double: equal
             * bit for bit, -inf of masked scores included */
            assert_int_equal(memcmp(v, want->v, want->n * sizeof *v), 0);
            free(v);
        }
    }
    dv_reader_free(r);
    tu_collect_free(&c);
}

static void test_everything_f32(void **state) { (void)state; check_everything(DV_BACKEND_CPU); }
static void test_everything_f64(void **state) { (void)state; check_everything(DV_BACKEND_CPU_F64); }

/* --select, --layers and --dump-passes keep exactly what they say. */
static void test_filters(void **state)
{
    (void)state;
    const char *out = tu_path(tu_tmp, "some.h5");
    static const char *const globs[] = {"blk.*.q_rope", "logits"};
    struct dv_dump_filter f = {.select = globs, .n_select = 2};
    assert_int_equal(dv_ranges_parse("1", "layers", 0, 100, &f.layers), DV_OK);
    assert_int_equal(dv_ranges_parse("0,2", "passes", 0, 100, &f.passes), DV_OK);
    struct tu_collect c = {0};
    struct dv_dump_sink sink;
    run_dump(DV_BACKEND_CPU, &f, out, &c, &sink);
    struct dv_reader *r;
    assert_int_equal(dv_reader_open(out, &r), DV_OK);
    assert_int_equal(r->n_passes, 2);
    for (int p = 0; p < 2; p++) {
        assert_int_equal(r->passes[p].index, p * 2);
        assert_int_equal(r->passes[p].n_tensors, 2);
        assert_string_equal(r->passes[p].tensors[0].name, "blk.1.q_rope");
        assert_string_equal(r->passes[p].tensors[1].name, "logits");
        /* orders are the execution indices, not positions in the file */
        assert_int_equal(r->passes[p].tensors[0].order, DV_LT_COUNT + DV_LT_Q_ROPE);
    }
    assert_int_equal(sink.n_passes, 2);
    assert_int_equal(sink.n_tensors, 4);
    dv_reader_free(r);
    tu_collect_free(&c);
}

static void test_ranges(void **state)
{
    (void)state;
    struct dv_ranges r;
    assert_int_equal(dv_ranges_parse("0-3,7,9-9", "x", 0, 10, &r), DV_OK);
    assert_int_equal(r.n, 3);
    assert_true(dv_ranges_has(&r, 0) && dv_ranges_has(&r, 3) && dv_ranges_has(&r, 7));
    assert_false(dv_ranges_has(&r, 4) || dv_ranges_has(&r, 8) || dv_ranges_has(&r, 10));
    static const char *const bad[] = {"", ",", "1,", "-1", "3-1", "1-", "a", "1-11",
                                      "1 ", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(dv_ranges_parse(bad[i], "x", 0, 10, &r), DV_E_USAGE);
    struct dv_ranges all = {0};
    assert_true(dv_ranges_has(&all, 12345));
}

/* ---- the API on a made-up model ---------------------------------------- */

static dv_dump *new_dump(const char *path)
{
    dv_dump *d;
    assert_int_equal(dv_dump_create(path, "test", 0, &d), DV_OK);
    assert_int_equal(dv_dump_set_str(d, "arch", "llama"), DV_OK);
    static const char *const k[] = {"n_vocab", "n_embd", "n_layer", "n_head",
                                    "n_head_kv", "n_ff"};
    static const int64_t v[] = {32, 8, 1, 2, 1, 16};
    for (int i = 0; i < 6; i++) assert_int_equal(dv_dump_set_int(d, k[i], v[i]), DV_OK);
    return d;
}

/* No ".NAME.*.part" file of `name` in tu_tmp. */
static int count_temps(const char *name)
{
    DIR *dp = opendir(tu_tmp);
    int n = 0;
    struct dirent *de;
    size_t len = strlen(name);
    while (dp && (de = readdir(dp)))
        n += de->d_name[0] == '.' && !strncmp(de->d_name + 1, name, len) &&
             strstr(de->d_name, ".part") != NULL;
    if (dp) closedir(dp);
    return n;
}

/* f16 and bf16 inputs widen exactly; f64 inputs round to the nearest
 * float32 in a float32 dump; order -1 numbers tensors in write order. */
static void test_types(void **state)
{
    (void)state;
    const char *out = tu_path(tu_tmp, "types.h5");
    dv_dump *d = new_dump(out);
    static const int32_t toks[] = {3, 4};
    assert_int_equal(dv_dump_begin_pass(d, -1, 0, 2, toks), DV_OK);
    const int64_t shape[] = {2, 8};
    float f[16];
    double g[16];
    uint16_t h[16], b[16];
    for (int i = 0; i < 16; i++) {
        f[i] = (float)sin(i + 0.5);
        g[i] = i == 15 ? (double)FLT_MAX + ldexp(1, 102) /* rounds to FLT_MAX */
                       : cos(i + 0.25);
        h[i] = dv_f32_to_f16(f[i]);
        b[i] = dv_f32_to_bf16(f[i]);
    }
    assert_int_equal(dv_dump_write(d, "blk.0.attn_in", 0, NULL, -1, 2, shape, DV_DUMP_F16, h), DV_OK);
    assert_int_equal(dv_dump_write(d, "blk.0.attn_norm", 0, NULL, -1, 2, shape, DV_DUMP_BF16, b), DV_OK);
    assert_int_equal(dv_dump_write(d, "blk.0.out", 0, "add", 17, 2, shape, DV_DUMP_F64, g), DV_OK);
    assert_int_equal(dv_dump_write(d, "engine.extra", -1, "custom", -1, 2, shape, DV_DUMP_F32, f), DV_OK);
    assert_int_equal(dv_dump_close(d, 1), DV_OK);

    struct dv_reader *r;
    assert_int_equal(dv_reader_open(out, &r), DV_OK);
    const struct dv_reader_pass *p = &r->passes[0];
    assert_int_equal(p->n_tensors, 4);
    static const int64_t orders[] = {0, 1, 17, 18};
    float v[16];
    for (int t = 0; t < 4; t++) {
        assert_int_equal(p->tensors[t].order, orders[t]);
        assert_int_equal(dv_reader_read(r, 0, t, DV_TYPE_F32, v), DV_OK);
        for (int i = 0; i < 16; i++) {
            float want = t == 0 ? dv_f16_to_f32(h[i]) : t == 1 ? dv_bf16_to_f32(b[i])
                       : t == 2 ? (float)g[i] : f[i];
            assert_true(v[i] == want);
        }
    }
    assert_false(p->tensors[3].known);
    assert_string_equal(p->tensors[3].op, "custom");
    assert_string_equal(p->tensors[0].op, "get_rows"); /* op NULL: the table's */
    dv_reader_free(r);
}

/* Each misuse fails with DV_E_USAGE and poisons the dump; close(…, 0)
 * then leaves neither the destination nor a temporary file. */
static void test_misuse(void **state)
{
    (void)state;
    const char *out = tu_path(tu_tmp, "misuse.h5");
    static const int32_t toks[] = {1, 2, 3};
    const int64_t good[] = {3, 8}, bad[] = {3, 9}, kq_bad[] = {2, 3, 4};
    const float data[64] = {0};
    enum { WRITE_OUTSIDE, BAD_SHAPE, BAD_KQ, RESERVED, KIND, EARLY_PASS, BAD_LAYER,
           BAD_OP, DUP, ORDER, TOKEN, NAME, TYPE, LATE_ATTR, LONG_ARCH, NEG_BASE,
           BIG_ROT, OP_SPACE, BLK_RANGE, BLK_ZERO, N_CASES };
    /* cases that fail before any pass is begun */
    const unsigned early = 1u << WRITE_OUTSIDE | 1u << RESERVED | 1u << KIND |
                           1u << EARLY_PASS | 1u << TOKEN | 1u << LONG_ARCH |
                           1u << NEG_BASE | 1u << BIG_ROT;
    for (int k = 0; k < N_CASES; k++) {
        dv_dump *d;
        if (k == EARLY_PASS) {
            assert_int_equal(dv_dump_create(out, "test", 0, &d), DV_OK);
            assert_int_equal(dv_dump_set_str(d, "arch", "llama"), DV_OK);
            assert_int_equal(dv_dump_begin_pass(d, -1, 0, 3, toks), DV_E_USAGE);
            assert_non_null(strstr(dv_errmsg(), "n_vocab"));
        } else {
            d = new_dump(out);
        }
        if (!(early >> k & 1))
            assert_int_equal(dv_dump_begin_pass(d, -1, 0, 3, toks), DV_OK);
        dv_status s = DV_OK;
        switch (k) {
        case WRITE_OUTSIDE: s = dv_dump_write(d, "blk.0.out", 0, NULL, -1, 2, good, DV_DUMP_F32, data); break;
        case BAD_SHAPE: s = dv_dump_write(d, "blk.0.out", 0, NULL, -1, 2, bad, DV_DUMP_F32, data); break;
        case BAD_KQ: s = dv_dump_write(d, "blk.0.kq", 0, NULL, -1, 3, kq_bad, DV_DUMP_F32, data); break;
        case RESERVED: s = dv_dump_set_str(d, "schema", "mine"); break;
        case KIND: s = dv_dump_set_str(d, "n_layer", "2"); break;
        case EARLY_PASS: s = DV_E_USAGE; break;
        case BAD_LAYER: s = dv_dump_write(d, "blk.0.out", 1, NULL, -1, 2, good, DV_DUMP_F32, data); break;
        case BAD_OP: s = dv_dump_write(d, "blk.0.out", 0, "matmul", -1, 2, good, DV_DUMP_F32, data); break;
        case DUP:
            assert_int_equal(dv_dump_write(d, "x", 0, "y", -1, 2, good, DV_DUMP_F32, data), DV_OK);
            s = dv_dump_write(d, "x", 0, "y", -1, 2, good, DV_DUMP_F32, data);
            break;
        case ORDER:
            assert_int_equal(dv_dump_write(d, "x", 0, "y", 5, 2, good, DV_DUMP_F32, data), DV_OK);
            s = dv_dump_write(d, "z", 0, "y", 5, 2, good, DV_DUMP_F32, data);
            break;
        case TOKEN: {
            static const int32_t oov[] = {1, 32, 3};
            s = dv_dump_begin_pass(d, -1, 0, 3, oov);
            break;
        }
        case NAME: s = dv_dump_write(d, "a/b", 0, "y", -1, 2, good, DV_DUMP_F32, data); break;
        case TYPE: s = dv_dump_write(d, "x", 0, "y", -1, 2, good, (enum dv_dump_type)2, data); break;
        case LATE_ATTR: s = dv_dump_set_str(d, "device", "late"); break;
        case LONG_ARCH: s = dv_dump_set_str(d, "arch", "an-architecture-name-of-40-bytes-long!!"); break;
        case NEG_BASE: s = dv_dump_set_real(d, "rope_freq_base", -1); break;
        case BIG_ROT: /* n_rot > head_dim (8 / 2 = 4) shows at the first pass */
            assert_int_equal(dv_dump_set_int(d, "n_rot", 8), DV_OK);
            s = dv_dump_begin_pass(d, -1, 0, 3, toks);
            break;
        case OP_SPACE: s = dv_dump_write(d, "x", 0, "a b", -1, 2, good, DV_DUMP_F32, data); break;
        case BLK_RANGE: s = dv_dump_write(d, "blk.7.x", 0, "y", -1, 2, good, DV_DUMP_F32, data); break;
        case BLK_ZERO: s = dv_dump_write(d, "blk.00.x", 0, "y", -1, 2, good, DV_DUMP_F32, data); break;
        }
        assert_int_equal(s, DV_E_USAGE);
        assert_non_null(strstr(dv_errmsg(), "misuse.h5"));
        /* poisoned: even a good call fails now, and commit refuses */
        assert_int_not_equal(dv_dump_end_pass(d), DV_OK);
        assert_int_not_equal(dv_dump_close(d, 1), DV_OK);
        assert_int_equal(access(out, F_OK), -1);
        assert_int_equal(count_temps("misuse.h5"), 0);
    }
    assert_int_equal(dv_dump_close(NULL, 1), DV_OK);
}

static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint64_t h = 1469598103934665603ull;
    int ch;
    while ((ch = fgetc(f)) != EOF) h = (h ^ (unsigned)ch) * 1099511628211ull;
    fclose(f);
    return h;
}

/* A discarded dump leaves the previous file as it was; a committed one
 * replaces it. */
static void test_commit_discard(void **state)
{
    (void)state;
    const char *out = tu_path(tu_tmp, "prev.h5");
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fputs("the previous file\n", f);
    fclose(f);
    uint64_t before = file_hash(out);
    static const int32_t toks[] = {1};
    dv_dump *d = new_dump(out);
    assert_int_equal(dv_dump_begin_pass(d, -1, 0, 1, toks), DV_OK);
    assert_int_equal(count_temps("prev.h5"), 1);
    assert_int_equal(dv_dump_close(d, 0), DV_OK);
    assert_int_equal(file_hash(out), before);
    assert_int_equal(count_temps("prev.h5"), 0);

    d = new_dump(out);
    assert_int_equal(dv_dump_close(d, 1), DV_OK); /* no pass: still valid */
    assert_int_not_equal(file_hash(out), before);
    struct dv_reader *r;
    assert_int_equal(dv_reader_open(out, &r), DV_OK);
    assert_int_equal(r->n_passes, 0);
    dv_reader_free(r);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0666 & ~mask);
}

/* A temporary left by a dead writer goes at the next create for the same
 * destination; one a live writer holds (flock) stays; other files stay. */
static void test_stale_temps(void **state)
{
    (void)state;
    const char *out = tu_path(tu_tmp, "stale.h5");
    const char *dead = tu_path(tu_tmp, ".stale.h5.AbC123.part");
    const char *live = tu_path(tu_tmp, ".stale.h5.XyZ789.part");
    const char *other = tu_path(tu_tmp, ".other.h5.AbC123.part");
    const char *paths[] = {dead, live, other};
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = open(paths[i], O_CREAT | O_WRONLY, 0600);
        assert_true(fds[i] >= 0);
    }
    assert_int_equal(flock(fds[1], LOCK_EX), 0);
    close(fds[0]), close(fds[2]);
    dv_dump *d;
    assert_int_equal(dv_dump_create(out, "test", 0, &d), DV_OK);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(dv_dump_close(d, 0), DV_OK);
    close(fds[1]);
    unlink(live), unlink(other);
}

/* A destination in a missing directory, or a directory, fails at create
 * with a message naming it; so do a bad backend name and unknown flags. */
static void test_bad_destination(void **state)
{
    (void)state;
    dv_dump *d = (dv_dump *)&d;
    assert_int_equal(dv_dump_create(tu_path(tu_tmp, "no/such/dir/x.h5"), "t", 0, &d), DV_E_USAGE);
    assert_null(d);
    assert_non_null(strstr(dv_errmsg(), "no/such/dir"));
    assert_int_equal(dv_dump_create(tu_tmp, "t", 0, &d), DV_E_USAGE);
    assert_non_null(strstr(dv_errmsg(), "directory"));
    assert_int_equal(dv_dump_create("x.h5", "", 0, &d), DV_E_USAGE);
    assert_int_equal(dv_dump_create("x.h5", "t", 0x100, &d), DV_E_USAGE);
}

/* DV_DUMP_COMPRESS: same values back, a smaller file for compressible data. */
static void test_compress(void **state)
{
    (void)state;
    const char *names[] = {"plain.h5", "packed.h5"};
    off_t size[2];
    static float z[64 * 8];
    for (int i = 0; i < 64 * 8; i++) z[i] = (float)(i % 7);
    static int32_t toks[64];
    for (int k = 0; k < 2; k++) {
        const char *out = tu_path(tu_tmp, names[k]);
        dv_dump *d;
        assert_int_equal(dv_dump_create(out, "t", k ? DV_DUMP_COMPRESS : 0, &d), DV_OK);
        assert_int_equal(dv_dump_set_str(d, "arch", "llama"), DV_OK);
        static const char *const key[] = {"n_vocab", "n_embd", "n_layer", "n_head",
                                          "n_head_kv", "n_ff"};
        static const int64_t val[] = {32, 8, 1, 2, 1, 16};
        for (int i = 0; i < 6; i++) assert_int_equal(dv_dump_set_int(d, key[i], val[i]), DV_OK);
        assert_int_equal(dv_dump_begin_pass(d, 0, 0, 64, toks), DV_OK);
        const int64_t shape[] = {64, 8};
        assert_int_equal(dv_dump_write(d, "blk.0.out", 0, NULL, -1, 2, shape, DV_DUMP_F32, z), DV_OK);
        assert_int_equal(dv_dump_close(d, 1), DV_OK);
        struct stat st;
        assert_int_equal(stat(out, &st), 0);
        size[k] = st.st_size;
        struct dv_reader *r;
        assert_int_equal(dv_reader_open(out, &r), DV_OK);
        float v[64 * 8];
        assert_int_equal(dv_reader_read(r, 0, 0, DV_TYPE_F32, v), DV_OK);
        assert_memory_equal(v, z, sizeof z);
        dv_reader_free(r);
    }
    assert_true(size[1] < size[0]);
}

/* One pass of model on backend under declared arithmetic (aq, kv) into
 * out, attributes by dv_dump_describe. */
static void arith_dump(const char *model, int backend, int aq, int kv, const char *out)
{
    static const int32_t toks[] = {1, 17, 42};
    struct dv_model *m;
    assert_int_equal(dv_model_open(model, &m), DV_OK);
    struct dv_engine *e;
    struct dv_engine_opts o = {.n_ctx = 3, .act_quant = aq, .kv_type = kv};
    assert_int_equal(dv_engine_open(m, backend, &o, &e), DV_OK);
    struct dv_dump_filter f = {0};
    struct dv_dump_sink sink = {.filter = &f};
    unsigned flags = backend == DV_BACKEND_CPU_F64 ? DV_DUMP_FLOAT64 : 0;
    assert_int_equal(dv_dump_create(out, dv_backend_name(backend), flags, &sink.dump), DV_OK);
    const struct dv_arith a = {aq, DV_ATTNQ_AUTO, kv};
    assert_int_equal(dv_dump_describe(sink.dump, m, "d", "r", "", &a), DV_OK);
    struct dv_hook h = dv_dump_hook(&sink);
    assert_int_equal(dv_engine_forward(e, toks, 3, 0, &h), DV_OK);
    assert_int_equal(dv_dump_close(sink.dump, 1), DV_OK);
    dv_engine_free(e);
    dv_model_free(m);
}

/* The declared arithmetic goes into the root attributes and back out
 * through dv_reader_arith; an oracle that declares other arithmetic than
 * its reference is refused; a dump that declares nothing is not. */
static void test_arith_attributes(void **state)
{
    const char *model = tu_path(tu_tmp, "tiny-q8_0.gguf");
    assert_int_equal(dv_fixture_write("tiny-q8_0", model), DV_OK);
    char ref[512], orc[512], exact[512];
    snprintf(ref, sizeof ref, "%s", tu_path(tu_tmp, "arith-ref.h5"));
    snprintf(orc, sizeof orc, "%s", tu_path(tu_tmp, "arith-oracle.h5"));
    snprintf(exact, sizeof exact, "%s", tu_path(tu_tmp, "arith-exact.h5"));
    arith_dump(model, DV_BACKEND_CPU, DV_ACTQ_AUTO, DV_TYPE_F16, ref);
    arith_dump(model, DV_BACKEND_CPU_F64, DV_ACTQ_AUTO, DV_TYPE_F16, orc);
    arith_dump(model, DV_BACKEND_CPU_F64, DV_ACTQ_NONE, DV_TYPE_F32, exact);
    struct dv_reader *r, *o, *x;
    assert_int_equal(dv_reader_open(ref, &r), DV_OK);
    assert_int_equal(dv_reader_open(orc, &o), DV_OK);
    assert_int_equal(dv_reader_open(exact, &x), DV_OK);
    struct dv_reader_arith ar, ao, ax;
    dv_reader_arith(r, &ar), dv_reader_arith(o, &ao), dv_reader_arith(x, &ax);
    assert_true(ar.declared && ax.declared);
    assert_string_equal(ar.act_quant, "auto");
    assert_string_equal(ar.act_quant_types, "q8_0=q8_0");
    assert_string_equal(ar.kv_type, "f16");
    assert_string_equal(ax.act_quant, "none");
    assert_string_equal(ax.act_quant_types, "q8_0=none");
    assert_string_equal(ax.kv_type, "f32");
    assert_true(ao.declared);
    assert_string_equal(ao.act_quant_types, ar.act_quant_types);
    assert_int_equal(dv_cmp_check_oracle(o, NULL, r), DV_OK);
    assert_int_equal(dv_cmp_check_oracle(x, NULL, r), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "the oracle's act_quant_types is q8_0=none, the "
                                        "reference's q8_0=q8_0"));
    dv_reader_free(o);
    /* written without dv_dump_describe: declares nothing, refuses nothing */
    const char *bare = tu_path(tu_tmp, "arith-bare.h5");
    dv_dump *d;
    assert_int_equal(dv_dump_create(bare, "other-engine", DV_DUMP_FLOAT64, &d), DV_OK);
    assert_int_equal(dv_dump_set_str(d, "arch", "llama"), DV_OK);
    static const char *const key[] = {"n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv",
                                      "n_ff"};
    const int64_t val[] = {r->cfg.n_vocab, r->cfg.d_model, r->cfg.n_layer, r->cfg.n_head,
                           r->cfg.n_head_kv, r->cfg.n_ff};
    for (int i = 0; i < 6; i++) assert_int_equal(dv_dump_set_int(d, key[i], val[i]), DV_OK);
    assert_int_equal(dv_dump_begin_pass(d, 0, 0, 3, r->passes[0].tokens), DV_OK);
    const struct dv_reader_tensor *t = &r->passes[0].tensors[0];
    double *v = calloc((size_t)t->n_elems, sizeof *v);
    assert_int_equal(dv_dump_write(d, t->name, t->layer, t->op, t->order, t->n_dims, t->shape,
                                   DV_DUMP_F64, v), DV_OK);
    assert_int_equal(dv_dump_close(d, 1), DV_OK);
    free(v);
    assert_int_equal(dv_reader_open(bare, &o), DV_OK);
    dv_reader_arith(o, &ao);
    assert_false(ao.declared);
    assert_string_equal(ao.act_quant, "");
    assert_string_equal(ao.kv_type, "");
    assert_int_equal(dv_cmp_check_oracle(o, NULL, r), DV_OK);
    dv_reader_free(o), dv_reader_free(r), dv_reader_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_everything_f32),
        cmocka_unit_test(test_everything_f64),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_commit_discard),
        cmocka_unit_test(test_stale_temps),
        cmocka_unit_test(test_bad_destination),
        cmocka_unit_test(test_compress),
        cmocka_unit_test(test_arith_attributes),
    };
    return cmocka_run_group_tests(tests, setup, tu_group_teardown);
}
