/*
 * dump_sandbox.h - what the two dump harnesses share: telling a crash of
 * the HDF5 library from a crash of ours in a forked child, and reading
 * every part of an opened dump with invariant checks.
 *
 * Why: Debian's HDF5 1.10.8 crashes (SIGSEGV) or loops forever on some
 * corrupt files (tests/integration/dump_fuzz.sh has four of each kind of
 * seed); no check of ours can come before its parsing, which is why the
 * CLI validates a dump in a child first (dv_reader_open_isolated). A
 * fuzzer finds such files within seconds, and HDF5 is not ours to fix. So
 * the harnesses read in a child first, with hooks that look at where the
 * child died (a signal: the interrupted frame and its callers; an ASan
 * report: its stack; an allocation at libFuzzer's limit: its caller): the
 * first frame outside libc and the sanitizer runtime is in libhdf5 (or
 * the zlib/szip it calls): HDF5's crash, the input is skipped; anywhere
 * else (our code), or any other sanitizer report, it is ours: the parent
 * then reads the same file in process and dies there with the full
 * report, which libFuzzer records. A CPU limit hit is judged the same
 * way, by where the loop was when the limit struck (a loop of ours that
 * spends its time in HDF5 calls would pass for HDF5's: a known blind spot).
 */
#ifndef DV_DUMP_SANDBOX_H
#define DV_DUMP_SANDBOX_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <execinfo.h>
#include <hdf5.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <ucontext.h>

#include "fuzz.h"
#include "reader.h"
#include "types.h"

/* Provided by the sanitizer runtimes; absent (NULL) in a plain build. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
extern void __asan_set_error_report_callback(void (*cb)(const char *)) __attribute__((weak));
extern void __sanitizer_symbolize_pc(void *pc, const char *fmt, char *out, size_t size)
    __attribute__((weak));
extern int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *)) __attribute__((weak));

enum { VERDICT_NONE = 0, VERDICT_HDF5 = 'H', VERDICT_OURS = 'O' };
/* Shared with the children (MAP_SHARED): what the last child died of. */
static volatile char *sandbox_verdict;
static long sandbox_hdf5_skips, sandbox_inputs, sandbox_opened;
static char sandbox_path[256]; /* the input as a file (dv_fuzz_named_file) */
static bool sandbox_in_child;
static size_t sandbox_malloc_limit; /* libFuzzer's -malloc_limit_mb, in bytes */

static void sandbox_set(char v)
{
    if (*sandbox_verdict == VERDICT_NONE) *sandbox_verdict = v;
}

static bool module_is_hdf5(const char *f)
{
    return f && (strstr(f, "libhdf5") || strstr(f, "libz.so") || strstr(f, "libsz.so") ||
                 strstr(f, "libaec.so"));
}

/* A frame that says nothing about whose bug it is: libc, the dynamic
 * loader, the sanitizer runtime's interceptors (exported, so named). */
static bool frame_neutral(const Dl_info *di)
{
    const char *f = di->dli_fname, *s = di->dli_sname;
    if (f && (strstr(f, "/libc.so") || strstr(f, "/ld-linux") || strstr(f, "/libpthread")))
        return true;
    return s && (!strncmp(s, "__interceptor_", 14) || !strncmp(s, "__asan", 6) ||
                 !strncmp(s, "__sanitizer", 11) || !strncmp(s, "__ubsan", 7) ||
                 !strncmp(s, "__lsan", 6) || !strcmp(s, "malloc") || !strcmp(s, "calloc") ||
                 !strcmp(s, "realloc") || !strcmp(s, "memcpy") || !strcmp(s, "memmove") ||
                 !strcmp(s, "memset"));
}

/* Our source folders: a frame in a file under one of them is ours. */
static bool path_is_ours(const char *s)
{
    static const char *const ours[] = {"/core/", "/dump/", "/compare/", "/cli/", "/tests/",
                                       "/fixtures/", "/kernels/", "/reports/"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (strstr(s, ours[i])) return true;
    return false;
}

/* Whose frame is pc: VERDICT_HDF5, VERDICT_OURS or VERDICT_NONE (neutral).
 * In the executable, our code and the sanitizer runtime's internals (its
 * allocator: HDF5 freeing a wild pointer faults inside __asan::Allocator)
 * are told apart by the source file the symbolizer names; when it names
 * none, the frame counts as ours. ret: pc is a return address. */
static char frame_owner(void *pc, bool ret)
{
    Dl_info di;
    if (!dladdr(pc, &di)) return VERDICT_OURS; /* no module: a wild jump, say ours */
    if (module_is_hdf5(di.dli_fname)) return VERDICT_HDF5;
    if (frame_neutral(&di)) return VERDICT_NONE;
    char where[512] = "";
    if (__sanitizer_symbolize_pc)
        __sanitizer_symbolize_pc((char *)pc - (ret ? 1 : 0), "%s|%f", where, sizeof where);
    if (path_is_ours(where)) return VERDICT_OURS;
    if (strstr(where, "compiler-rt/") || strstr(where, "sanitizer") || strstr(where, "|__asan") ||
        strstr(where, "|__interceptor_"))
        return VERDICT_NONE;
    return VERDICT_OURS;
}

/* The owner of the first non-neutral frame of frames[from..n); ours when
 * all are neutral. */
static char frames_owner(void *const *frames, int from, int n)
{
    for (int i = from; i < n; i++) {
        char v = frame_owner(frames[i], true);
        if (v != VERDICT_NONE) return v;
    }
    return VERDICT_OURS;
}

/* A crash or the CPU limit: judge by where the child was interrupted. */
static void sandbox_signal(int sig, siginfo_t *si, void *ucv)
{
    (void)si;
    ucontext_t *uc = ucv;
    void *pc = (void *)uc->uc_mcontext.gregs[REG_RIP];
    void *frames[64];
    int n = backtrace(frames, 64), at = 0;
    /* the walk starts in this handler: begin at the interrupted frame */
    while (at < n && frames[at] != pc) at++;
    char v = frame_owner(pc, false);
    sandbox_set(v != VERDICT_NONE ? v : frames_owner(frames, at + 1, n));
    /* die of the signal, as the child would have without us */
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
}

/* An AddressSanitizer report (HDF5 is not instrumented, but ASan's
 * interceptors and allocator check its memcpy and malloc calls too: a
 * corrupt global heap gives a memcpy-param-overlap in H5HG_read, a
 * corrupt size an allocation-size-too-big in H5C_protect). Judged by the
 * first frame of the report's stack that is in libhdf5 or in our sources
 * (a source file under one of our folders); the runtime's own frames
 * (#0 __interceptor_memcpy, malloc) are neither. */
static void sandbox_report(const char *report)
{
    const char *p = strstr(report, "    #0 ");
    while (p && *p == ' ') {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        if (module_is_hdf5(line)) {
            sandbox_set(VERDICT_HDF5);
            return;
        }
        if (strstr(line, ".c:") && path_is_ours(line)) {
            sandbox_set(VERDICT_OURS);
            return;
        }
        if (!eol || eol[1] != ' ') break; /* the first stack ends at a blank line */
        p = eol + 1;
    }
    sandbox_set(VERDICT_OURS);
}

/* Any other sanitizer report (UBSan, LeakSanitizer): only our code is
 * instrumented, so it is ours. */
static void sandbox_death(void)
{
    sandbox_set(VERDICT_OURS);
}

/* libFuzzer stops the whole run at an allocation of -malloc_limit_mb or
 * more, from wherever it comes; in a child, an HDF5 allocation that large
 * (a size read from a corrupt file) is HDF5's, and the child just ends.
 * Installed before libFuzzer's own hook (sandbox_install_hook), so it
 * runs first. */
static void sandbox_malloc_hook(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (!sandbox_in_child || !sandbox_malloc_limit || size < sandbox_malloc_limit) return;
    void *frames[64];
    int n = backtrace(frames, 64), at = 0;
    /* the allocator's own frames come first: start after its entry point */
    for (int i = 0; i < n && !at; i++) {
        Dl_info di;
        if (!dladdr(frames[i], &di) || !di.dli_sname) continue;
        const char *f = di.dli_sname; /* "malloc" or its alias "__interceptor_malloc" */
        if (!strncmp(f, "__interceptor_", 14)) f += 14;
        if (!strcmp(f, "malloc") || !strcmp(f, "calloc") || !strcmp(f, "realloc") ||
            !strcmp(f, "posix_memalign") || !strcmp(f, "aligned_alloc"))
            at = i + 1;
    }
    sandbox_set(at ? frames_owner(frames, at, n) : VERDICT_OURS);
    _exit(3);
}

/* Once per process, before any fork; argv for libFuzzer's allocation
 * limit (-malloc_limit_mb, else -rss_limit_mb, else its default 2048). */
static void sandbox_init(int argc, char **argv)
{
    sandbox_verdict = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sandbox_verdict == MAP_FAILED) dv_fuzz_fail("mmap: %s", strerror(errno));
    void *warm[1];
    backtrace(warm, 1); /* loads libgcc_s now, not inside a signal handler */
    long mb = 2048, malloc_mb = -1;
    for (int i = 1; i < argc; i++) {
        sscanf(argv[i], "-rss_limit_mb=%ld", &mb);
        sscanf(argv[i], "-malloc_limit_mb=%ld", &malloc_mb);
    }
    if (malloc_mb > 0) mb = malloc_mb;
    sandbox_malloc_limit = mb > 0 ? (size_t)mb << 20 : 0;
    /* Without a sanitizer runtime (the plain replay build) there is no
     * allocation hook: bound the address space of this process and its
     * children instead, so an HDF5 allocation of that size fails (a
     * corrupt string length makes HDF5 ask for 4 GiB, then fill it for
     * seconds; regress/dump/hdf5-vlen-4gib-alloc.h5). Under ASan the
     * shadow memory rules this limit out, and the hook does the job. */
    if (!__sanitizer_install_malloc_and_free_hooks && sandbox_malloc_limit) {
        struct rlimit as = {(rlim_t)sandbox_malloc_limit, (rlim_t)sandbox_malloc_limit};
        setrlimit(RLIMIT_AS, &as);
    }
}

static void sandbox_free_hook(const volatile void *ptr) { (void)ptr; }

/* Hooks run in the order installed, and libFuzzer installs its own before
 * LLVMFuzzerInitialize: ours goes in before main(). (The runtime takes a
 * malloc hook only with a free hook.) */
__attribute__((constructor)) static void sandbox_install_hook(void)
{
    if (__sanitizer_install_malloc_and_free_hooks)
        __sanitizer_install_malloc_and_free_hooks(sandbox_malloc_hook, sandbox_free_hook);
}

/* In a freshly forked child: our handlers on an alternate stack (a stack
 * overflow must reach them too), stderr closed (the parent reports). */
static void sandbox_child(void)
{
    static char altstack[1 << 16];
    sandbox_in_child = true;
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {.sa_sigaction = sandbox_signal, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGXCPU};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(sandbox_death);
    if (__asan_set_error_report_callback) __asan_set_error_report_callback(sandbox_report);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);
}

/* Open HDF5 identifiers of any kind (files, groups, datasets, types,
 * spaces, property lists): none may survive a reader. */
static ssize_t open_h5_ids(void)
{
    return H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
}

/* Every tensor of r read every way the reader offers, checked against
 * each other: whole reads as float and double, the in-place spans, rows.
 * full: beyond the whole reads (which dv_reader_open_isolated's child
 * does too), also spans and rows. */
static void read_every_way(const struct dv_reader *r, bool full)
{
    for (int p = 0; p < r->n_passes; p++) {
        const struct dv_reader_pass *ps = &r->passes[p];
        DV_FUZZ_CHECK(p == 0 || ps->index > r->passes[p - 1].index, "passes not sorted");
        DV_FUZZ_CHECK(dv_reader_find_pass(r, ps->index) == p, "pass %lld not found",
                      (long long)ps->index);
        DV_FUZZ_CHECK(ps->n_tokens >= 1 && ps->tokens, "pass without tokens");
        for (int64_t i = 0; i < ps->n_tokens; i++)
            DV_FUZZ_CHECK(ps->tokens[i] >= 0 && ps->tokens[i] < r->cfg.n_vocab,
                          "token %d of a vocab of %lld", ps->tokens[i], (long long)r->cfg.n_vocab);
        for (int t = 0; t < ps->n_tensors; t++) {
            const struct dv_reader_tensor *ts = &ps->tensors[t];
            DV_FUZZ_CHECK(t == 0 || ts->order > ps->tensors[t - 1].order, "tensors not by order");
            DV_FUZZ_CHECK(dv_reader_find_tensor(r, p, ts->name) == t, "tensor %s not found", ts->name);
            int64_t e = 1;
            DV_FUZZ_CHECK(ts->n_dims >= 1 && ts->n_dims <= 4, "%d dims", ts->n_dims);
            for (int k = 0; k < ts->n_dims; k++) e *= ts->shape[k];
            DV_FUZZ_CHECK(e == ts->n_elems && e >= 1, "%lld elements, shape says %lld",
                          (long long)ts->n_elems, (long long)e);
            DV_FUZZ_CHECK(ts->stored_bytes == 2 || ts->stored_bytes == 4 || ts->stored_bytes == 8,
                          "stored as %d bytes", ts->stored_bytes);
            float *f = malloc((size_t)e * sizeof *f);
            double *d = malloc((size_t)e * sizeof *d);
            DV_FUZZ_CHECK(f && d, "out of memory for %lld elements", (long long)e);
            dv_status sf = dv_reader_read(r, p, t, DV_TYPE_F32, f);
            if (sf) dv_fuzz_check_msg(sf, r->path);
            if (!full || sf) {
                free(f), free(d);
                continue;
            }
            dv_status sd = dv_reader_read(r, p, t, DV_TYPE_F64, d);
            DV_FUZZ_CHECK(!sd, "read as float but not as double: %s", dv_errmsg());
            struct dv_reader_span sp[8];
            int n = dv_reader_spans(r, p, t, sp, 8);
            int64_t next = 0;
            for (int i = 0; i < n; i++) { /* in place: the same bits HDF5 reads */
                DV_FUZZ_CHECK(sp[i].first == next && sp[i].n >= 1, "spans leave a gap");
                const void *want = ts->stored_bytes == 4 ? (const void *)(f + next)
                                                          : (const void *)(d + next);
                DV_FUZZ_CHECK(!memcmp(sp[i].data, want, (size_t)sp[i].n * (size_t)ts->stored_bytes),
                              "%s: span %d differs from what HDF5 reads", ts->name, i);
                next += sp[i].n;
            }
            DV_FUZZ_CHECK(n == 0 || next == e, "spans cover %lld of %lld", (long long)next,
                          (long long)e);
            /* the first and the last row alone: the same values */
            int64_t row = e / ts->shape[0], last = ts->shape[0] - 1;
            float *rows = malloc((size_t)row * sizeof *rows);
            DV_FUZZ_CHECK(rows, "out of memory");
            DV_FUZZ_CHECK(!dv_reader_read_rows(r, p, t, DV_TYPE_F32, 0, 1, rows) &&
                          !memcmp(rows, f, (size_t)row * sizeof *f),
                          "%s: row 0 read alone differs", ts->name);
            DV_FUZZ_CHECK(!dv_reader_read_rows(r, p, t, DV_TYPE_F32, last, 1, rows) &&
                          !memcmp(rows, f + last * row, (size_t)row * sizeof *f),
                          "%s: the last row read alone differs", ts->name);
            DV_FUZZ_CHECK(dv_reader_read_rows(r, p, t, DV_TYPE_F32, ts->shape[0], 1, rows) ==
                          DV_E_USAGE, "a row past the end was read");
            free(rows);
            free(f), free(d);
        }
    }
    for (int i = 0; i < r->n_attrs; i++) {
        const struct dv_reader_attr *a = &r->attrs[i];
        DV_FUZZ_CHECK(dv_reader_attr(r, a->key) == a, "attribute %s not found", a->key);
        if (a->kind == DV_ATTR_STR) DV_FUZZ_CHECK(a->str, "string attribute without a string");
    }
}

#endif
