/*
 * fuzz_dump.c - any bytes as a dump file through the in-process reader
 * (dv_reader_open, dump/reader.c: what a library caller gets), then every
 * tensor read as float and double, in place (spans) and by rows, the
 * results checked against each other (dump_sandbox.h).
 *
 * Each input is read first in a forked child (dump_sandbox.h says why):
 * when HDF5 itself crashes or loops on it, the input is skipped (and kept
 * out of the corpus); otherwise, or when the child died in our code, the
 * same reading runs here, where libFuzzer sees the coverage and any
 * report. A failed open must leave no HDF5 identifier open and give one
 * line naming the file. Seeds: corpus/dump (small dumps diverge wrote).
 */
#include "dump_sandbox.h"

/* Open, read everything, free; the checks of a failed open. */
static void exercise(const char *path)
{
    struct dv_reader *r;
    dv_status s = dv_reader_open(path, &r);
    if (s) {
        DV_FUZZ_CHECK(!r, "failed but set *out");
        DV_FUZZ_CHECK(s == DV_E_INPUT || s == DV_E_NOMEM, "status %s", dv_status_name(s));
        dv_fuzz_check_msg(s, path);
    } else {
        sandbox_opened++;
        read_every_way(r, true);
        dv_reader_free(r);
    }
    ssize_t ids = open_h5_ids();
    DV_FUZZ_CHECK(ids == 0, "%zd HDF5 identifiers left open after %s", ids,
                  s ? "a failed open" : "dv_reader_free");
}

static void report(void)
{
    if (sandbox_path[0]) unlink(sandbox_path);
    fprintf(stderr, "fuzz_dump: %ld of %ld inputs skipped: the HDF5 library crashed or looped "
            "on them; %ld opened\n", sandbox_hdf5_skips, sandbox_inputs, sandbox_opened);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sandbox_init(*argc, *argv);
    atexit(report);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sandbox_path;
    if (dv_fuzz_named_file(data, size, sandbox_path)) return 0;
    sandbox_inputs++;
    *sandbox_verdict = VERDICT_NONE;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sandbox_child();
        /* 1 s of CPU: these small files take milliseconds even under ASan,
         * and every input HDF5 loops on costs this much */
        struct rlimit cpu = {1, 2};
        setrlimit(RLIMIT_CPU, &cpu);
        exercise(path);
        _exit(0);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (pid > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) && *sandbox_verdict == VERDICT_HDF5) {
        sandbox_hdf5_skips++;
        return -1; /* HDF5's bug, not ours: not worth keeping */
    }
    exercise(path); /* clean in the child, or our crash: here it is reported */
    DV_FUZZ_CHECK(pid < 0 || (WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "the child died (status 0x%x) in our code, this process did not", st);
    return 0;
}
