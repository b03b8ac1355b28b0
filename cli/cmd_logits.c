/*
 * cmd_logits.c - `diverge logits`: the top-k logit diff of a test dump
 * against a reference dump, as text or JSON, on stdout or into a file.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "outfile.h"
#include "commands.h"
#include "error.h"
#include "logits.h"
#include "logits_report.h"
#include "reader.h"
#include "term.h"
#include "vocab.h"

struct logits_opts {
    const char *test, *ref, *model, *out;
    bool json;
    struct dv_logits_opts lo;
};

static void logits_help(void)
{
    printf("usage: diverge logits TEST.h5 REF.h5 [--top-k K] [--pass N] [--model MODEL.gguf]\n"
           "                      [--format text|json] [-o FILE]\n\n"
           "Compare the next-token distributions of two dumps position by position:\n"
           "p = softmax(REF logits), q = softmax(TEST logits), in double. For each\n"
           "position: both top-k lists, the rank in q of p's top-1, overlap@k,\n"
           "KL(p||q), max|p-q|; then the summary llama.cpp's perplexity\n"
           "--kl-divergence prints (mean KL with its standard error, median, 90%%,\n"
           "99%%, max, same top-1 %%, RMS of Δp with Δp = q - p of p's top-1) and\n"
           "the positions whose top-1 flips. Passes are compared when both dumps\n"
           "have them with the same pos0, n_tokens and tokens; others are listed.\n\n"
           "  --top-k K        tokens per list (1..%d, default 10)\n"
           "  --pass N         only pass N (0 is the first forward call)\n"
           "  --model FILE     the GGUF whose vocab gives token texts (default: the\n"
           "                   dump's model_path when its SHA-256 still matches)\n"
           "  --format F       text (default) or json\n"
           "  -o, --output FILE  write the report to FILE (complete or not at all)\n\n"
           "Exit status: 0 every position has the same top-1, 1 some top-1 differs\n"
           "(or the test's logits are NaN/Inf where the reference's are finite),\n"
           "2 bad usage or input (also: reference logits NaN/Inf at some position),\n"
           "3 runtime error.\n", DV_LOGITS_MAX_K);
}

static int parse_logits_opts(int argc, char **argv, struct logits_opts *o)
{
    static const struct option opts[] = {
        {"top-k", required_argument, 0, 'k'}, {"pass", required_argument, 0, 'p'},
        {"model", required_argument, 0, 'm'}, {"format", required_argument, 0, 'f'},
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    *o = (struct logits_opts){.lo = {.top_k = 10, .pass = -1}};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "k:p:m:f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (dv_parse_i64(optarg, "--top-k", 1, DV_LOGITS_MAX_K, &v))
                return dv_report(DV_E_USAGE);
            o->lo.top_k = (int)v;
            break;
        case 'p':
            if (dv_parse_i64(optarg, "--pass", 0, INT32_MAX, &v)) return dv_report(DV_E_USAGE);
            o->lo.pass = v;
            break;
        case 'm': o->model = optarg; break;
        case 'f':
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return dv_usage_error("logits", "unknown format '%s' (text, json)", optarg);
            o->json = !strcmp(optarg, "json");
            break;
        case 'o': o->out = optarg; break;
        case 'h': logits_help(); return -1;
        default: return dv_usage_error("logits", "bad option");
        }
    }
    if (optind != argc - 2) return dv_usage_error("logits", "give TEST.h5 and REF.h5");
    o->test = argv[optind];
    o->ref = argv[optind + 1];
    return 0;
}

static dv_status render(FILE *f, const struct logits_opts *o, const struct dv_logits_result *r,
                        const struct dv_vocab *v, const char *note, bool color)
{
    return o->json ? dv_logits_report_json(f, r, v, note)
                   : dv_logits_report_text(f, r, v, note, color);
}

/* Write the report to o->out, complete or not at all (outfile.h). */
static dv_status write_file(const struct logits_opts *o, const struct dv_logits_result *r,
                            const struct dv_vocab *v, const char *note)
{
    struct dv_outfile out;
    dv_status s = dv_outfile_open(o->out, &out);
    if (s) return s;
    s = render(out.f, o, r, v, note, false);
    if (s) dv_fail_prefix(s, o->out);
    dv_status c = dv_outfile_close(&out, s == DV_OK);
    return s ? s : c;
}

static dv_status run(const struct logits_opts *o, struct dv_logits_result **res)
{
    struct dv_reader *test = NULL, *ref = NULL;
    struct dv_vocab *v = NULL;
    char note[600] = "";
    dv_status s = dv_reader_open_isolated(o->test, false, &test);
    if (!s) s = dv_reader_open_isolated(o->ref, false, &ref);
    if (!s) s = dv_logits_compare(test, ref, &o->lo, res);
    if (!s) s = dv_logits_vocab(test, ref, o->model, (*res)->n_vocab, &v, note, sizeof note);
    if (!s && o->out) {
        s = write_file(o, *res, v, note);
        if (!s)
            printf("wrote %s: %lld positions, %lld flipped top-1\n", o->out,
                   (long long)(*res)->sum.n_judged, (long long)(*res)->sum.n_flipped);
    } else if (!s) {
        s = render(stdout, o, *res, v, note, !o->json && dv_term_color(stdout));
    }
    dv_vocab_free(v);
    dv_reader_free(test);
    dv_reader_free(ref);
    return s;
}

int dv_cmd_logits(int argc, char **argv)
{
    struct logits_opts o;
    int rc = parse_logits_opts(argc, argv, &o);
    if (rc) return rc < 0 ? DV_EXIT_OK : rc;
    const char *inputs[] = {o.test, o.ref, o.model};
    dv_status s = dv_outfile_check_inputs(o.out, inputs, 3);
    if (s) return dv_report(s);
    struct dv_logits_result *res = NULL;
    s = run(&o, &res);
    if (s) {
        dv_logits_free(res);
        return dv_report(s);
    }
    rc = res->sum.n_flipped ? DV_EXIT_DIVERGED : DV_EXIT_OK;
    dv_logits_free(res);
    return rc;
}
