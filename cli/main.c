/*
 * main.c - the diverge program: git-style subcommands.
 *
 * Exit status: 0 agree, 1 diverged / gate failed, 2 bad usage or bad input,
 * 3 device or runtime error.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"run", dv_cmd_run, "run a model's forward pass and print the top tokens"},
    {"info", dv_cmd_info, "describe a GGUF model or a dump: metadata, tensors"},
    {"fixture", dv_cmd_fixture, "write a deterministic fixture model as GGUF"},
    {"import-llama2c", dv_cmd_import_llama2c, "convert a llama2.c export to GGUF"},
    {"compare", dv_cmd_compare, "the first tensor where a test dump leaves a reference dump"},
    {"logits", dv_cmd_logits, "top-k logit diff of a test dump against a reference"},
    {"bisect", dv_cmd_bisect, "run GPU and reference live: the pass, layer and op where they part"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: diverge COMMAND [ARGS]\n\n"
               "diverge finds where a GPU inference engine's numbers leave a\n"
               "trusted CPU reference. Commands:\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'diverge COMMAND --help' describes one command; man diverge(1).\n"
               "Exit status: 0 agree, 1 diverged, 2 bad usage or input, 3 runtime error.\n");
}

int main(int argc, char **argv)
{
    /* A write past RLIMIT_FSIZE then fails with EFBIG, which the writers
     * report and clean up after, instead of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return DV_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return DV_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("diverge %s\n", dv_version());
        return DV_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "diverge: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return DV_EXIT_USAGE;
}
