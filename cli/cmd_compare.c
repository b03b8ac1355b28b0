/*
 * cmd_compare.c - `diverge compare TEST.h5 REF.h5`: the first place two
 * dumps part ways, and whether the difference is f32 noise.
 *
 * Exit status: 0 agree, 1 diverged (or some passes could not be compared),
 * 2 bad usage or input (also: the dumps have no tensor in common, an
 * oracle that is not the reference's run in float64, or a reference or
 * oracle with NaN/Inf where a forward pass has numbers), 3 runtime error.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "compare.h"
#include "compare_report.h"
#include "error.h"
#include "outfile.h"
#include "policy.h"
#include "reader.h"
#include "term.h"

struct compare_opts {
    const char *test, *ref, *oracle, *exact, *policy, *out;
    bool json, all, print_policy;
};

static void compare_help(void)
{
    printf("usage: diverge compare TEST.h5 REF.h5 [--oracle ORACLE.h5] [--exact EXACT.h5]\n"
           "                       [--policy P.json] [--format text|json] [--all] [-o FILE]\n"
           "       diverge compare --print-policy\n\n"
           "Line up two dumps tensor by tensor (pass by pass, in execution order),\n"
           "measure each pair and name the first tensor where the test leaves the\n"
           "reference.\n\n"
           "  --oracle O.h5   a cpu-f64 dump of the reference's run (float64, same model,\n"
           "                  tokens and passes): each tensor's noise floor is the\n"
           "                  reference's own error against it, and a tensor diverges\n"
           "                  when err(test, oracle) > m err(ref, oracle) + floor (m, floor\n"
           "                  from the policy). When the reference emulates an engine's\n"
           "                  declared arithmetic (--act-quant, --kv-type), so must the\n"
           "                  oracle\n"
           "  --exact E.h5    a cpu-f64 dump of the same run that emulates nothing: each\n"
           "                  tensor also gets err(ref, exact), the declared arithmetic's\n"
           "                  own share of the gap, next to what is left, err(test, ref)\n"
           "  --policy P      tolerance policy (JSON, diverge-policy(5)); default: the\n"
           "                  built-in one (--print-policy shows it)\n"
           "  --format F      text (default) or json (every tensor, for programs)\n"
           "  --all           text: list every tensor, not only the per-layer worst\n"
           "  -o, --output F  write the report to F (complete or not at all)\n\n"
           "A value that is NaN or +-Inf on one side and not the same on the other\n"
           "diverges (a -inf of the causal mask against a finite score too); the metrics\n"
           "cover the values finite on both sides.\n\n"
           "Exit status: 0 agree, 1 diverged (or passes ran other tokens), 2 bad usage\n"
           "or input (also: no tensor in common, an oracle that is not the reference's\n"
           "run in float64, a reference or oracle holding NaN/Inf where a forward pass\n"
           "has numbers), 3 runtime error. A divergence of the size the test's declared\n"
           "arithmetic gives (its dump declares other act_quant/kv_type than the\n"
           "reference's) still exits 1; the verdict says so and how to emulate it.\n"
           "Colours only on a terminal and never with\n"
           "NO_COLOR set.\n");
}

/* 0 to go on, else the exit status (-1: help printed). */
static int parse_compare_opts(int argc, char **argv, struct compare_opts *o)
{
    static const struct option opts[] = {
        {"oracle", required_argument, 0, 'O'}, {"policy", required_argument, 0, 'p'},
        {"exact", required_argument, 0, 'E'},
        {"format", required_argument, 0, 'f'}, {"all", no_argument, 0, 'a'},
        {"print-policy", no_argument, 0, 'P'}, {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    *o = (struct compare_opts){0};
    int c;
    while ((c = getopt_long(argc, argv, "O:E:p:f:aPo:h", opts, NULL)) != -1) {
        switch (c) {
        case 'O': o->oracle = optarg; break;
        case 'E': o->exact = optarg; break;
        case 'p': o->policy = optarg; break;
        case 'f':
            if (!strcmp(optarg, "json")) o->json = true;
            else if (strcmp(optarg, "text"))
                return dv_usage_error("compare", "unknown format '%s' (text, json)", optarg);
            break;
        case 'a': o->all = true; break;
        case 'P': o->print_policy = true; break;
        case 'o': o->out = optarg; break;
        case 'h': compare_help(); return -1;
        default: return dv_usage_error("compare", "bad option");
        }
    }
    if (o->print_policy) return optind == argc ? 0
        : dv_usage_error("compare", "--print-policy takes no files");
    if (optind != argc - 2) return dv_usage_error("compare", "give TEST.h5 and REF.h5");
    o->test = argv[optind];
    o->ref = argv[optind + 1];
    return 0;
}

static int exit_for(const struct dv_cmp_result *c)
{
    switch (dv_cmp_verdict(c)) {
    case DV_VERDICT_AGREE: return DV_EXIT_OK;
    case DV_VERDICT_DIVERGED: return DV_EXIT_DIVERGED;
    default: return c->n_compared ? DV_EXIT_DIVERGED : DV_EXIT_USAGE;
    }
}

static int run_compare(const struct compare_opts *o, struct dv_reader *rd[4],
                       struct dv_policy **policy)
{
    dv_status s = o->policy ? dv_policy_load(o->policy, policy) : dv_policy_default(policy);
    const char *paths[4] = {o->test, o->ref, o->oracle, o->exact};
    for (int i = 0; i < 4 && !s; i++)
        if (paths[i]) s = dv_reader_open_isolated(paths[i], false, &rd[i]);
    struct dv_cmp_result *c = NULL;
    if (!s) s = dv_compare(rd[0], rd[1], rd[2], *policy, &c);
    if (!s && rd[3]) s = dv_cmp_add_exact(c, rd[1], rd[3], *policy);
    if (s) dv_cmp_free(c), c = NULL;
    if (s) return dv_report(s);
    if (dv_cmp_verdict(c) == DV_VERDICT_BROKEN) { /* bad input: the line names the file */
        char line[1024];
        dv_cmp_verdict_line(c, line, sizeof line);
        fprintf(stderr, "diverge: %s\n", line);
        dv_cmp_free(c);
        return DV_EXIT_USAGE;
    }
    if (!c->n_compared && !c->n_shape) {
        char line[512];
        dv_cmp_verdict_line(c, line, sizeof line);
        fprintf(stderr, "diverge: %s and %s: %s\n", o->test, o->ref, line);
        dv_cmp_free(c);
        return DV_EXIT_USAGE;
    }
    struct dv_outfile out;
    s = dv_outfile_open(o->out, &out);
    if (!s) {
        int rc = o->json ? dv_cmp_report_json(out.f, c)
                         : dv_cmp_report_text(out.f, c, o->all, !o->out && dv_term_color(stdout));
        s = dv_outfile_close(&out, rc == 0);
        if (!s && rc) s = dv_fail(DV_E_IO, "cannot write the report");
    }
    int code = s ? dv_report(s) : exit_for(c);
    dv_cmp_free(c);
    return code;
}

int dv_cmd_compare(int argc, char **argv)
{
    struct compare_opts o;
    int rc = parse_compare_opts(argc, argv, &o);
    if (rc) return rc < 0 ? DV_EXIT_OK : rc;
    if (o.print_policy) {
        fputs(dv_policy_builtin_json(), stdout);
        return DV_EXIT_OK;
    }
    const char *inputs[] = {o.test, o.ref, o.oracle, o.exact, o.policy};
    dv_status s = dv_outfile_check_inputs(o.out, inputs, 5);
    if (s) return dv_report(s);
    struct dv_reader *rd[4] = {NULL, NULL, NULL, NULL};
    struct dv_policy *policy = NULL;
    rc = run_compare(&o, rd, &policy);
    for (int i = 0; i < 4; i++) dv_reader_free(rd[i]);
    dv_policy_free(policy);
    return rc;
}
