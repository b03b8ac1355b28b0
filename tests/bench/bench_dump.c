/*
 * bench_dump.c - what writing a dump costs: the writer against a plain
 * write(2) of the same bytes, with and without compression, and the
 * overhead `diverge run --dump` adds to a forward schedule.
 *
 * usage: bench_dump MODEL.gguf [DIR [PASSES]]
 * DIR is where the files go (default "."): give a directory on the disk
 * real dumps go to, not a tmpfs, since the commit's fsync is part of the
 * cost. PASSES is the schedule (default 32,16,8,4,2,1,1: a prefill, then
 * passes that see a growing KV cache, so blk.L.kq is not trivial).
 *
 * Every figure is the median of REPS runs (best in brackets). The tensors
 * of the schedule are captured once into memory, then written: by the
 * public writer API (dv_dump_create ... dv_dump_close(d, 1), fsync and
 * rename included), and by write(2) in the same per-tensor pieces followed
 * by fsync. MB/s counts tensor payload bytes (1 MB = 1e6 bytes). Figures,
 * not assertions: run with `meson test --benchmark` or by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_model.h"
#include "bench_time.h"
#include "diverge.h"
#include "dump.h"
#include "engine.h"
#include "error.h"
#include "model.h"
#include "ops.h"

/* ---- the captured schedule ---------------------------------------------- */

struct tensor {
    int pass;
    char name[48];
    int layer, op, order, n_dims, type;
    int64_t shape[4];
    size_t bytes;
    void *data; /* [bytes], owned */
};

struct pass {
    int pos0, n_tokens;
    const int32_t *tokens; /* borrowed from the schedule */
};

struct capture {
    struct tensor *t;
    int n, cap;
    struct pass *p;
    int n_pass;
    size_t payload; /* sum of t[i].bytes */
};

static dv_status cap_begin(void *user, int pass, int pos0, int n_tokens,
                           const int32_t *tokens)
{
    struct capture *c = user;
    c->p[pass] = (struct pass){.pos0 = pos0, .n_tokens = n_tokens, .tokens = tokens};
    c->n_pass = pass + 1;
    return DV_OK;
}

static dv_status cap_take(void *user, const struct dv_tensor_desc *d, const void *data)
{
    struct capture *c = user;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 1024;
        struct tensor *t = realloc(c->t, (size_t)cap * sizeof *t);
        if (!t) return dv_fail(DV_E_NOMEM, "out of memory");
        c->t = t;
        c->cap = cap;
    }
    struct tensor *t = &c->t[c->n];
    *t = (struct tensor){.pass = d->pass, .layer = d->layer, .op = d->op,
                         .order = d->order, .n_dims = d->n_dims, .type = d->type};
    snprintf(t->name, sizeof t->name, "%s", d->name);
    t->bytes = d->type == DV_TYPE_F64 ? 8 : 4;
    for (int i = 0; i < d->n_dims; i++) t->bytes *= (size_t)(t->shape[i] = d->shape[i]);
    if (!(t->data = malloc(t->bytes))) return dv_fail(DV_E_NOMEM, "out of memory");
    memcpy(t->data, data, t->bytes);
    c->payload += t->bytes;
    c->n++;
    return DV_OK;
}

static void capture_free(struct capture *c)
{
    for (int i = 0; i < c->n; i++) free(c->t[i].data);
    free(c->t);
    free(c->p);
}

/* ---- the schedule ------------------------------------------------------- */

struct schedule {
    int32_t *tokens; /* [n_tokens] */
    int n_tokens;
    int *len;        /* [n_pass] tokens per pass */
    int n_pass, max_pass;
};

static int parse_schedule(const char *s, int n_vocab, struct schedule *out)
{
    *out = (struct schedule){0};
    for (const char *p = s; *p; p++) out->n_pass += *p == ',';
    out->len = malloc((size_t)++out->n_pass * sizeof *out->len);
    if (!out->len) return -1;
    const char *p = s;
    for (int i = 0; i < out->n_pass; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (v < 1 || v > 1 << 16 || (*end != ',' && *end != '\0')) return -1;
        out->len[i] = (int)v;
        out->n_tokens += (int)v;
        out->max_pass = (int)v > out->max_pass ? (int)v : out->max_pass;
        p = end + 1;
    }
    if (!(out->tokens = malloc((size_t)out->n_tokens * sizeof *out->tokens))) return -1;
    for (int i = 0; i < out->n_tokens; i++)
        out->tokens[i] = (int32_t)((1 + 7919 * i) % n_vocab);
    return 0;
}

/* The whole schedule on a fresh cache; its wall time in *secs. */
static dv_status run_schedule(struct dv_engine *e, const struct schedule *s,
                              const struct dv_hook *h, double *secs)
{
    dv_engine_reset(e);
    double t0 = bench_now();
    dv_status st = DV_OK;
    for (int i = 0, pos = 0; !st && i < s->n_pass; pos += s->len[i++])
        st = dv_engine_forward(e, s->tokens + pos, s->len[i], pos, h);
    *secs = bench_now() - t0;
    return st;
}

/* ---- writing ------------------------------------------------------------ */

/* The model description without dv_dump_describe's SHA-256 of the model
 * file, which is not the writer's cost. */
static dv_status describe(dv_dump *d, const struct dv_config *c)
{
    const struct { const char *k; int64_t v; } ints[] = {
        {"n_vocab", c->n_vocab}, {"n_embd", c->d_model}, {"n_layer", c->n_layer},
        {"n_head", c->n_head}, {"n_head_kv", c->n_head_kv}, {"head_dim", c->head_dim},
        {"n_ff", c->n_ff}, {"n_rot", c->n_rot}};
    dv_status s = dv_dump_set_str(d, "arch", c->arch);
    for (size_t i = 0; !s && i < sizeof ints / sizeof ints[0]; i++)
        s = dv_dump_set_int(d, ints[i].k, ints[i].v);
    if (!s) s = dv_dump_set_real(d, "rope_freq_base", c->rope_base);
    return s;
}

/* The captured tensors through the public writer API, committed. */
static dv_status write_dump(const struct capture *c, const struct dv_config *cfg,
                            const char *path, unsigned flags)
{
    dv_dump *d;
    dv_status s = dv_dump_create(path, "cpu", flags, &d);
    if (s) return s;
    s = describe(d, cfg);
    for (int i = 0, k = 0; !s && i < c->n_pass; i++) {
        const struct pass *p = &c->p[i];
        s = dv_dump_begin_pass(d, i, p->pos0, p->n_tokens, p->tokens);
        for (; !s && k < c->n && c->t[k].pass == i; k++) {
            const struct tensor *t = &c->t[k];
            s = dv_dump_write(d, t->name, t->layer, dv_op_name(t->op), t->order,
                              t->n_dims, t->shape, (enum dv_dump_type)t->type, t->data);
        }
        if (!s) s = dv_dump_end_pass(d);
    }
    dv_status cs = dv_dump_close(d, !s);
    return s ? s : cs;
}

/* The same bytes in the same pieces with write(2), then fsync. */
static dv_status write_plain(const struct capture *c, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return dv_fail(DV_E_IO, "%s: %s", path, strerror(errno));
    for (int i = 0; i < c->n; i++) {
        const char *b = c->t[i].data;
        size_t left = c->t[i].bytes;
        while (left > 0) {
            ssize_t w = write(fd, b, left);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                int err = errno;
                close(fd);
                return dv_fail(DV_E_IO, "%s: %s", path, strerror(err));
            }
            b += w, left -= (size_t)w;
        }
    }
    int r = fsync(fd), err = errno;
    close(fd);
    return r ? dv_fail(DV_E_IO, "%s: %s", path, strerror(err)) : DV_OK;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long long)st.st_size;
}

/* ---- main --------------------------------------------------------------- */

struct ctx {
    const struct dv_model *m;
    struct dv_engine *e;
    struct schedule s;
    struct capture cap;
    char dir[4096], plain[4200], dump[4200], dumpz[4200], hooked[4200];
};

static int fail(const char *what)
{
    fprintf(stderr, "bench_dump: %s: %s\n", what, dv_errmsg());
    return 1;
}

/* Forward alone, forward copying every tensor to memory (the capture). */
static int bench_forward_hooks(struct ctx *x)
{
    double t_none[REPS], t_copy[REPS], best;
    for (int r = 0; r < REPS; r++) {
        if (run_schedule(x->e, &x->s, NULL, &t_none[r])) return fail("forward");
        capture_free(&x->cap); /* keep the last capture */
        x->cap = (struct capture){.p = calloc((size_t)x->s.n_pass, sizeof *x->cap.p)};
        struct dv_hook h = {.begin_pass = cap_begin, .take = cap_take, .user = &x->cap};
        if (!x->cap.p || run_schedule(x->e, &x->s, &h, &t_copy[r])) return fail("capture");
    }
    double m_none = bench_median(t_none, &best);
    printf("forward, no hook                 %8.3f s   [best %.3f s]\n", m_none, best);
    double m_copy = bench_median(t_copy, &best);
    printf("forward, copy hook (capture)     %8.3f s   [best %.3f s]   %+.1f%%\n", m_copy,
           best, 100 * (m_copy - m_none) / m_none);
    printf("captured                         %d passes, %d tensors, %.3f MB payload\n",
           x->cap.n_pass, x->cap.n, (double)x->cap.payload / 1e6);
    return 0;
}

/* Writer vs write(2), plain and compressed, interleaved rep by rep. */
static int bench_writes(struct ctx *x)
{
    double t_plain[REPS], t_dump[REPS], t_z[REPS], b_plain, b_dump, b_z;
    const struct dv_config *cfg = &x->m->cfg;
    for (int r = 0; r < REPS; r++) {
        unlink(x->plain), unlink(x->dump), unlink(x->dumpz);
        double t0 = bench_now();
        if (write_plain(&x->cap, x->plain)) return fail("plain write");
        double t1 = bench_now();
        if (write_dump(&x->cap, cfg, x->dump, 0)) return fail("dump");
        double t2 = bench_now();
        if (write_dump(&x->cap, cfg, x->dumpz, DV_DUMP_COMPRESS)) return fail("dump --compress");
        double t3 = bench_now();
        t_plain[r] = t1 - t0, t_dump[r] = t2 - t1, t_z[r] = t3 - t2;
    }
    const double mb = (double)x->cap.payload / 1e6;
    double m_plain = bench_median(t_plain, &b_plain), m_dump = bench_median(t_dump, &b_dump),
           m_z = bench_median(t_z, &b_z);
    long long sz_plain = file_size(x->plain), sz_dump = file_size(x->dump),
              sz_z = file_size(x->dumpz);
    printf("write(2) + fsync                 %8.1f MB/s [best %.1f]   %.4f s   file %.3f MB\n",
           mb / m_plain, mb / b_plain, m_plain, (double)sz_plain / 1e6);
    printf("dump writer                      %8.1f MB/s [best %.1f]   %.4f s   file %.3f MB\n",
           mb / m_dump, mb / b_dump, m_dump, (double)sz_dump / 1e6);
    printf("dump / plain throughput          %8.1f %%   [best/best %.1f %%] (goal >= 70 %%)\n",
           100 * m_plain / m_dump, 100 * b_plain / b_dump);
    printf("dump file size / payload         %8.3f\n", (double)sz_dump / (double)x->cap.payload);
    printf("dump writer, compressed          %8.1f MB/s [best %.1f]   %.4f s   file %.3f MB\n",
           mb / m_z, mb / b_z, m_z, (double)sz_z / 1e6);
    printf("compression ratio (payload/file) %8.3f\n", (double)x->cap.payload / (double)sz_z);
    return 0;
}

/* The forward schedule as `diverge run --dump` runs it (dv_dump_describe,
 * dv_dump_hook writing everything, commit) against no hook at all. */
static int bench_run_dump(struct ctx *x)
{
    double t_none[REPS], t_dump[REPS], t_desc[REPS], best;
    struct dv_dump_filter all = {0};
    for (int r = 0; r < REPS; r++) {
        if (run_schedule(x->e, &x->s, NULL, &t_none[r])) return fail("forward");
        unlink(x->hooked);
        double t0 = bench_now();
        struct dv_dump_sink sink = {.filter = &all};
        struct dv_hook h = dv_dump_hook(&sink);
        dv_status s = dv_dump_create(x->hooked, "cpu", 0, &sink.dump);
        if (!s)
            s = dv_dump_describe(sink.dump, x->m, "bench", "bench", "", NULL);
        t_desc[r] = bench_now() - t0;
        double t_fwd = 0;
        if (!s) s = run_schedule(x->e, &x->s, &h, &t_fwd);
        dv_status c = dv_dump_close(sink.dump, !s);
        t_dump[r] = bench_now() - t0;
        if (s || c) return fail("forward with the dump hook");
    }
    double m_none = bench_median(t_none, &best);
    printf("forward, no hook (interleaved)   %8.3f s   [best %.3f s]\n", m_none, best);
    double m_dump = bench_median(t_dump, &best);
    printf("forward + dump (run --dump)      %8.3f s   [best %.3f s]\n", m_dump, best);
    double m_desc = bench_median(t_desc, &best);
    printf("dump overhead                    %8.1f %%   %.3f s (of which create + describe,\n"
           "                                            SHA-256 of the model: %.3f s)\n",
           100 * (m_dump - m_none) / m_none, m_dump - m_none, m_desc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: bench_dump MODEL.gguf [DIR [PASSES]]\n");
        return 2;
    }
    struct ctx x = {0};
    struct dv_model *m;
    if (bench_open_model(argv[1], &m)) return fail(argv[1]);
    x.m = m;
    const char *sched = argc > 3 ? argv[3] : "32,16,8,4,2,1,1";
    if (parse_schedule(sched, (int)m->cfg.n_vocab, &x.s)) {
        fprintf(stderr, "bench_dump: bad schedule '%s'\n", sched);
        return 2;
    }
    snprintf(x.dir, sizeof x.dir, "%s/bench_dump.XXXXXX", argc > 2 ? argv[2] : ".");
    if (!mkdtemp(x.dir)) {
        fprintf(stderr, "bench_dump: %s: %s\n", x.dir, strerror(errno));
        return 1;
    }
    snprintf(x.plain, sizeof x.plain, "%s/plain.bin", x.dir);
    snprintf(x.dump, sizeof x.dump, "%s/dump.h5", x.dir);
    snprintf(x.dumpz, sizeof x.dumpz, "%s/dump-z.h5", x.dir);
    snprintf(x.hooked, sizeof x.hooked, "%s/run.h5", x.dir);
    struct dv_engine_opts eo = {.n_ctx = x.s.n_tokens, .n_batch = x.s.max_pass};
    int rc = dv_engine_open(m, DV_BACKEND_CPU, &eo, &x.e) ? fail("engine") : 0;
    if (!rc) {
        printf("%s: %lld layers, d_model %lld, vocab %lld; schedule %s (%d tokens), "
               "cpu backend; in %s; median of %d [best]\n", argv[1],
               (long long)m->cfg.n_layer, (long long)m->cfg.d_model,
               (long long)m->cfg.n_vocab, sched, x.s.n_tokens, x.dir, REPS);
        rc = bench_forward_hooks(&x);
    }
    if (!rc) rc = bench_writes(&x);
    if (!rc) rc = bench_run_dump(&x);
    unlink(x.plain), unlink(x.dump), unlink(x.dumpz), unlink(x.hooked);
    rmdir(x.dir);
    capture_free(&x.cap);
    free(x.s.tokens), free(x.s.len);
    dv_engine_free(x.e);
    dv_model_free(m);
    return rc;
}
