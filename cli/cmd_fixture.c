/* cmd_fixture.c - `diverge fixture` and `diverge import-llama2c`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "fixture.h"
#include "outfile.h"

/* One line per fixture shape, its name first (what --list prints). */
static void fixture_list(void)
{
    size_t n;
    const struct dv_fixture_spec *sp = dv_fixture_specs(&n);
    for (size_t i = 0; i < n; i++)
        printf("  %-16s %2d layers, d %4d, %2d heads, %d kv heads, ffn %4d, "
               "vocab %5d%s: %s\n", sp[i].name, sp[i].n_layer, sp[i].d_model,
               sp[i].n_head, sp[i].n_head_kv, sp[i].n_ff, sp[i].n_vocab,
               sp[i].tied ? ", tied" : "", sp[i].purpose);
}

static void fixture_help(void)
{
    printf("usage: diverge fixture NAME[-TYPE] -o OUT.gguf\n"
           "       diverge fixture --list\n\n"
           "Write a deterministic LLaMA model (same bytes on every run).\n"
           "TYPE is the type of the weight matrices: f32 (default), f16, q8_0,\n"
           "q4_0, q4_k, q6_k; norms stay f32; rows that do not split into the\n"
           "type's blocks fall back (q4_k -> q4_0 -> f16, q6_k -> q8_0 -> f16).\n\n"
           "Fixtures:\n");
    fixture_list();
}

int dv_cmd_fixture(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"list", no_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'l': fixture_list(); return DV_EXIT_OK;
        case 'h': fixture_help(); return DV_EXIT_OK;
        default: return dv_usage_error("fixture", "bad option");
        }
    }
    if (optind != argc - 1) return dv_usage_error("fixture", "give one fixture NAME");
    if (!out) return dv_usage_error("fixture", "give the output file with -o");
    dv_status s = dv_fixture_write_guarded(argv[optind], out, dv_guard_temp);
    if (s) return dv_report(s);
    printf("wrote %s (%s)\n", out, argv[optind]);
    return DV_EXIT_OK;
}

int dv_cmd_import_llama2c(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h':
            printf("usage: diverge import-llama2c MODEL.bin TOKENIZER.bin -o OUT.gguf\n\n"
                   "Convert a llama2.c \"legacy\" export (7 int32 header, f32 weights)\n"
                   "and its tokenizer.bin into a GGUF llama model with f32 weights.\n");
            return DV_EXIT_OK;
        default: return dv_usage_error("import-llama2c", "bad option");
        }
    }
    if (optind != argc - 2)
        return dv_usage_error("import-llama2c", "give MODEL.bin and TOKENIZER.bin");
    if (!out) return dv_usage_error("import-llama2c", "give the output file with -o");
    dv_status s = dv_outfile_check_inputs(out, (const char *const *)argv + optind, 2);
    if (!s) s = dv_import_llama2c_guarded(argv[optind], argv[optind + 1], out, dv_guard_temp);
    if (s) return dv_report(s);
    printf("wrote %s\n", out);
    return DV_EXIT_OK;
}
