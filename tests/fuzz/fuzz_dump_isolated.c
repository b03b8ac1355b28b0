/*
 * fuzz_dump_isolated.c - any bytes as a dump file through the path the
 * CLI takes (`diverge info`, compare, logits): dv_reader_open_isolated
 * (dump/reader.c), which validates and reads every tensor in a child
 * first, then opens in process; then every tensor read here, which that
 * child's check promises is safe.
 *
 * The library forks the child itself, so this harness hooks fork
 * (pthread_atfork) to put dump_sandbox.h's handlers into it. An HDF5
 * crash or endless loop in the child must come back as DV_E_INPUT
 * "PATH: the HDF5 library ..." (the input is then kept out of the
 * corpus); a death in our code in the child is reproduced here in
 * process, where libFuzzer reports it. No HDF5 identifier may stay open.
 */
#include <pthread.h>

#include "dump_sandbox.h"

static bool in_isolated; /* the fork about to happen is the library's */

static void child_hook(void)
{
    if (in_isolated) sandbox_child();
}

static void report(void)
{
    if (sandbox_path[0]) unlink(sandbox_path);
    fprintf(stderr, "fuzz_dump_isolated: %ld of %ld inputs: the HDF5 library crashed or "
            "looped in the isolated check; %ld opened\n", sandbox_hdf5_skips, sandbox_inputs,
            sandbox_opened);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sandbox_init(*argc, *argv);
    pthread_atfork(NULL, NULL, child_hook);
    atexit(report);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sandbox_path;
    if (dv_fuzz_named_file(data, size, sandbox_path)) return 0;
    sandbox_inputs++;
    *sandbox_verdict = VERDICT_NONE;
    struct dv_reader *r;
    in_isolated = true;
    dv_status s = dv_reader_open_isolated(path, true, &r);
    in_isolated = false;
    const char v = *sandbox_verdict;
    int ret = 0;
    if (v == VERDICT_OURS) {
        /* the child died in our code: the same reading here shows where */
        DV_FUZZ_CHECK(s, "the isolated check died in our code, yet the open succeeded");
        struct dv_reader *again;
        if (dv_reader_open(path, &again) == DV_OK) {
            read_every_way(again, false);
            dv_reader_free(again);
        }
        dv_fuzz_fail("the isolated check died in our code (%s), the same reading here did not",
                     dv_errmsg());
    }
    if (s) {
        DV_FUZZ_CHECK(!r, "failed but set *out");
        DV_FUZZ_CHECK(s == DV_E_INPUT || s == DV_E_NOMEM, "status %s", dv_status_name(s));
        dv_fuzz_check_msg(s, path);
        if (v == VERDICT_HDF5) {
            DV_FUZZ_CHECK(strstr(dv_errmsg(), ": the HDF5 library "),
                          "an HDF5 crash reported as '%s'", dv_errmsg());
            sandbox_hdf5_skips++;
            ret = -1;
        }
    } else {
        DV_FUZZ_CHECK(v == VERDICT_NONE, "the child died but the open succeeded");
        sandbox_opened++;
        read_every_way(r, false);
        dv_reader_free(r);
    }
    ssize_t ids = open_h5_ids();
    DV_FUZZ_CHECK(ids == 0, "%zd HDF5 identifiers left open", ids);
    return ret;
}
