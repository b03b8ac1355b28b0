/*
 * fuzz.h - what the libFuzzer harnesses share: the input as a file (our
 * readers take paths), invariant checks that stop the fuzzer, and the
 * fixtures directory.
 *
 * Each harness defines LLVMFuzzerTestOneInput() (and, when it loads
 * something once, LLVMFuzzerInitialize()); with -Dfuzz=true libFuzzer
 * drives them, otherwise replay.c feeds them the committed inputs.
 * Header-only on purpose: every harness is one translation unit plus this.
 */
#ifndef DV_FUZZ_H
#define DV_FUZZ_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "diverge.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: print what and abort(), which libFuzzer records as a
 * crash with the input that did it. */
__attribute__((format(printf, 1, 2), noreturn))
static void dv_fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz invariant: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
#define DV_FUZZ_CHECK(cond, ...) \
    do { if (!(cond)) dv_fuzz_fail(__VA_ARGS__); } while (0)

/* The input as a file: an anonymous memory file (memfd) holding the bytes,
 * named by path ("/proc/self/fd/N", which open(2), mmap(2) and a forked
 * child accept; HDF5 does not: dv_fuzz_named_file). Returns the descriptor to close() after, or
 * -1 (the harness then skips the input: not the code under test's fault). */
static inline int dv_fuzz_file(const uint8_t *data, size_t size, char path[64])
{
    int fd = memfd_create("dv-fuzz", 0);
    if (fd < 0) return -1;
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* The input as a named file, for readers that need a real path (HDF5
 * resolves the real path of what it opens, and "/memfd:..." is none):
 * path gets a per-process file name, in $TMPDIR or else /dev/shm (memory,
 * like a memfd) or /tmp, rewritten for every input. Returns 0, or -1
 * (skip the input). */
static inline int dv_fuzz_named_file(const uint8_t *data, size_t size, char path[256])
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0]) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, 256, "%s/dv-fuzz-%d.input", dir, (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int bad = fwrite(data, 1, size, f) != size;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

/* A failure message must be the one line the library promises: non-empty,
 * no newline, starting with "PREFIX: " when prefix is given. */
static inline void dv_fuzz_check_msg(dv_status s, const char *prefix)
{
    const char *m = dv_errmsg();
    DV_FUZZ_CHECK(m && m[0], "status %s with an empty message", dv_status_name(s));
    DV_FUZZ_CHECK(!strchr(m, '\n'), "message has a newline: '%s'", m);
    if (prefix) {
        size_t n = strlen(prefix);
        DV_FUZZ_CHECK(!strncmp(m, prefix, n) && m[n] == ':',
                      "message does not start with '%s:': '%s'", prefix, m);
    }
}

/* $DV_FIXTURES/data/NAME (the meson test environment and scripts/fuzz set
 * DV_FIXTURES; the build directory's source tree otherwise). */
static inline void dv_fuzz_fixture(char *buf, size_t cap, const char *name)
{
    const char *dir = getenv("DV_FIXTURES");
#ifdef DV_FUZZ_FIXTURES
    if (!dir || !dir[0]) dir = DV_FUZZ_FIXTURES;
#endif
    if (!dir || !dir[0]) dir = "fixtures";
    snprintf(buf, cap, "%s/data/%s", dir, name);
}

/* Fold n bytes into a value the caller keeps, so that every byte of a
 * buffer the library hands out is read (and ASan checks the reads). */
static inline uint32_t dv_fuzz_touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

#endif
