/*
 * cmd_bisect.c - `diverge bisect`: run the GPU backend and the CPU
 * reference live, name the first pass, layer and op where they part
 * (compare/bisect.h) and print the verdict.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "arith.h"
#include "bisect.h"
#include "bisect_report.h"
#include "commands.h"
#include "engine.h"
#include "error.h"
#include "fault.h"
#include "model.h"
#include "outfile.h"
#include "reader.h"
#include "term.h"
#include "types.h"
#include "tokens.h"

struct bisect_cli {
    const char *model, *prompt, *tokens, *passes, *inject, *keep, *policy, *out, *device;
    const char *test_dump, *export_case;
    int test, ref, oracle;
    bool test_given;
    int act_quant, attn_quant, kv_type; /* kv_type -1: the test backend's default */
    bool json, no_split, validation, patch, all_culprits;
    bool arith_given; /* --act-quant or --attn-quant: else the test's declared one */
};

static void bisect_help(void)
{
    printf("usage: diverge bisect MODEL.gguf [--test vulkan] [--ref cpu|cpu-f64]\n"
           "                      [--oracle cpu-f64|none] [--passes N,N,...]\n"
           "                      [--prompt TEXT | --tokens ID,ID,...] [--inject F[@L]]\n"
           "                      [--keep-dumps DIR] [--policy P.json] [--no-layer-split] [--patch]\n"
           "                      [--all-culprits] [--export-case DIR]\n"
           "                      [--format text|json] [-o FILE] [--device D] [--validation]\n"
           "                      [--act-quant M] [--attn-quant A] [--kv-type T]\n"
           "       diverge bisect MODEL.gguf --test-dump TEST.h5 [--ref, --oracle, --policy,\n"
           "                      --keep-dumps, --format, -o, --act-quant, --attn-quant,\n"
           "                      --kv-type, --all-culprits as above]\n\n"
           "Run the test backend, the reference and the oracle live on the same tokens,\n"
           "pass by pass, and stop at the first pass with a tensor beyond the noise\n"
           "floor (where the error shows). Then replay each op of that layer alone on\n"
           "the test backend with the reference's inputs (where it starts), search\n"
           "--gpu-layers for the first layer that makes the final logits diverge, and\n"
           "print a verdict.\n\n"
           "  --test B        the backend under test: vulkan (default; its ops are\n"
           "                  replayed alone) or llama.cpp[:DEVICE] (llama.cpp itself:\n"
           "                  its ops replayed alone as one-op ggml graphs on the device,\n"
           "                  all but the attention products; the reference and oracle\n"
           "                  emulate the arithmetic it declares unless\n"
           "                  --act-quant/--attn-quant say otherwise)\n"
           "  --test-dump F   instead of a live backend, the dump F of any engine's run\n"
           "                  (diverge run --dump, diverge.h, h5py; sparse is fine): its\n"
           "                  passes are the tokens and the schedule, the reference and\n"
           "                  the oracle emulate the arithmetic it declares, and each op\n"
           "                  of the first divergent layer is recomputed from the dump's\n"
           "                  own inputs: an op whose output is not what its inputs give\n"
           "                  is where it starts\n"
           "  --ref B         the reference: cpu (default, f32) or cpu-f64\n"
           "  --oracle B      cpu-f64 (default): noise floor err(test) <= m err(ref) +\n"
           "                  floor; none: the policy's fixed limits\n"
           "  --passes LIST   forward calls on one KV cache (default: about half the\n"
           "                  tokens, the rest but two at pos0 > 0, then two single-token\n"
           "                  steps; 13 tokens give 6,5,1,1)\n"
           "  --tokens IDS    token ids; --prompt TEXT: text tokenized with the model's\n"
           "                  vocab. Neither: BOS and reproducible pseudo-random ids\n"
           "                  (13, or as many as --passes adds up to)\n"
           "  --inject F[@L]  build the test backend's kernels with fault F (see\n"
           "                  diverge run --help), on every layer or layer L only\n"
           "  --keep-dumps D  write D/test.h5, D/ref.h5 and D/oracle.h5 (the passes run)\n"
           "                  for diverge compare and diverge logits\n"
           "  --policy P      tolerance policy (diverge-policy(5)); default built-in\n"
           "  --no-layer-split  skip the --gpu-layers search\n"
           "  --export-case D the culprit as a case: D/case.h5 (its inputs and its output\n"
           "                  as the test gave it, a dump) and D/command, the line that\n"
           "                  judges that op alone again (diverge bisect MODEL\n"
           "                  --test-dump D/case.h5)\n"
           "  --all-culprits  run every pass and judge every op of every divergent pass\n"
           "                  alone: list each op that diverges alone (two independent\n"
           "                  bugs both named), not only the first\n"
           "  --patch         activation patching: for every position whose top-1 token\n"
           "                  the test flips over the whole schedule, the layer whose\n"
           "                  reference output restores it when the test runs on from\n"
           "                  there (vulkan)\n"
           "  --format F      text (default) or json\n"
           "  -o, --output F  write the report to F (complete or not at all)\n"
           "  --device D      Vulkan device index or name substring\n"
           "  --validation    enable the Khronos validation layer\n"
           "  --act-quant M   the arithmetic the test engine declares, emulated by the\n"
           "                  reference and the oracle (see diverge run --help): none\n"
           "                  (default), auto, amx, q8_0, q8_1, q8_K or f16\n"
           "  --attn-quant A  the attention rounding the test declares (diverge run\n"
           "                  --help): auto (default), none, q, qp or vk\n"
           "  --kv-type T     KV cache type of all three engines: f32 (default for\n"
           "                  vulkan, which takes only f32), f16 or q8_0\n\n"
           "Exit status: 0 no divergence above the noise floor, 1 diverged, 2 bad usage\n"
           "or input, 3 device or runtime error.\n");
}

static int backend_arg(const char *s, int *out, bool none_ok)
{
    if (none_ok && !strcmp(s, "none")) return *out = -1, 0;
    return (*out = dv_backend_from_name(s)) < 0 ? -1 : 0;
}

/* 0 to go on, else the exit status (-1: help printed). */
static int parse_bisect_opts(int argc, char **argv, struct bisect_cli *o)
{
    static const struct option opts[] = {
        {"test", required_argument, 0, 'T'},   {"ref", required_argument, 0, 'R'},
        {"oracle", required_argument, 0, 'O'}, {"passes", required_argument, 0, 'P'},
        {"prompt", required_argument, 0, 'p'}, {"tokens", required_argument, 0, 't'},
        {"inject", required_argument, 0, 'I'}, {"keep-dumps", required_argument, 0, 'k'},
        {"policy", required_argument, 0, 'y'}, {"no-layer-split", no_argument, 0, 'n'},
        {"format", required_argument, 0, 'f'}, {"output", required_argument, 0, 'o'},
        {"device", required_argument, 0, 'V'}, {"validation", no_argument, 0, 'C'},
        {"act-quant", required_argument, 0, 'A'}, {"kv-type", required_argument, 0, 'K'},
        {"attn-quant", required_argument, 0, 'Q'}, {"test-dump", required_argument, 0, 'D'},
        {"patch", no_argument, 0, 'X'},       {"export-case", required_argument, 0, 'E'},       {"all-culprits", no_argument, 0, 'U'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    *o = (struct bisect_cli){.test = DV_BACKEND_VULKAN, .ref = DV_BACKEND_CPU,
                             .oracle = DV_BACKEND_CPU_F64, .kv_type = -1};
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'D': o->test_dump = optarg; break;
        case 'X': o->patch = true; break;
        case 'E': o->export_case = optarg; break;
        case 'U': o->all_culprits = true; break;
        case 'T':
            o->test_given = true;
            if (!strncmp(optarg, "llama.cpp:", 10) && optarg[10]) { /* llama.cpp:DEVICE */
                o->test = DV_BACKEND_LLAMA_CPP;
                o->device = optarg + 10;
            } else if (backend_arg(optarg, &o->test, false) ||
                       (o->test != DV_BACKEND_VULKAN && o->test != DV_BACKEND_LLAMA_CPP)) {
                return dv_usage_error("bisect", "--test '%s': vulkan or llama.cpp[:DEVICE]",
                                      optarg);
            }
            break;
        case 'R':
            if (backend_arg(optarg, &o->ref, false) ||
                (o->ref != DV_BACKEND_CPU && o->ref != DV_BACKEND_CPU_F64))
                return dv_usage_error("bisect", "--ref '%s': cpu or cpu-f64", optarg);
            break;
        case 'O':
            if (backend_arg(optarg, &o->oracle, true) ||
                (o->oracle >= 0 && o->oracle != DV_BACKEND_CPU_F64))
                return dv_usage_error("bisect", "--oracle '%s': cpu-f64 or none", optarg);
            break;
        case 'P': o->passes = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 't': o->tokens = optarg; break;
        case 'I': o->inject = optarg; break;
        case 'k': o->keep = optarg; break;
        case 'y': o->policy = optarg; break;
        case 'n': o->no_split = true; break;
        case 'f':
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return dv_usage_error("bisect", "unknown format '%s' (text, json)", optarg);
            o->json = !strcmp(optarg, "json");
            break;
        case 'o': o->out = optarg; break;
        case 'V': o->device = optarg; break;
        case 'C': o->validation = true; break;
        case 'A':
            if (dv_parse_act_quant(optarg, &o->act_quant)) return dv_report(DV_E_USAGE);
            o->arith_given = true;
            break;
        case 'Q':
            if (dv_parse_attn_quant(optarg, &o->attn_quant)) return dv_report(DV_E_USAGE);
            o->arith_given = true;
            break;
        case 'K':
            if (dv_parse_kv_type(optarg, &o->kv_type)) return dv_report(DV_E_USAGE);
            break;
        case 'h': bisect_help(); return -1;
        default: return dv_usage_error("bisect", "bad option");
        }
    }
    if (optind != argc - 1) return dv_usage_error("bisect", "give one MODEL");
    if (o->tokens && o->prompt)
        return dv_usage_error("bisect", "give --tokens or --prompt, not both");
    o->model = argv[optind];
    if (o->patch && (o->test_dump || o->test != DV_BACKEND_VULKAN))
        return dv_usage_error("bisect", "--patch needs a live test backend that starts a pass "
                              "at a layer: vulkan");
    if (o->test_dump && (o->test_given || o->tokens || o->prompt || o->passes || o->inject ||
                         o->device || o->validation || o->no_split))
        return dv_usage_error("bisect", "--test-dump takes its tokens and passes from the "
                              "dump: not with --test, --tokens, --prompt, --passes, --inject, "
                              "--device, --validation or --no-layer-split");
    if (o->kv_type < 0 && !o->test_dump) o->kv_type = dv_default_kv_type(o->test);
    return 0;
}

/* The default schedule for n tokens: about half, the rest but two at
 * pos0 > 0, then two single tokens (6,5,1,1 for 13); fewer tokens give
 * fewer passes. */
static dv_status default_schedule(int n, int32_t **sched, int *n_pass)
{
    if (!(*sched = malloc(4 * sizeof **sched))) return dv_fail(DV_E_NOMEM, "out of memory");
    int32_t *s = *sched;
    if (n >= 4) {
        s[0] = (n - 2 + 1) / 2, s[1] = n - 2 - s[0], s[2] = s[3] = 1, *n_pass = 4;
    } else if (n == 3) {
        s[0] = 2, s[1] = 1, *n_pass = 2;
    } else {
        for (int i = 0; i < n; i++) s[i] = 1;
        *n_pass = n;
    }
    return DV_OK;
}

static dv_status get_run(const struct bisect_cli *o, const struct dv_model *m,
                         int32_t **toks, int *n_tok, int32_t **sched, int *n_pass)
{
    dv_status s = DV_OK;
    if (o->passes && (s = dv_parse_i32_list(o->passes, "--passes", 1, 1 << 20, sched, n_pass)))
        return s;
    int64_t sum = 0;
    for (int i = 0; o->passes && i < *n_pass; i++) sum += (*sched)[i];
    if (o->tokens || o->prompt)
        s = dv_cli_tokens(o->model, m, o->tokens, o->prompt, toks, n_tok);
    else
        s = dv_cli_default_tokens(m, *n_tok = o->passes ? (int)(sum < (1 << 20) ? sum : 1 << 20)
                                                        : 13, toks);
    if (s) return s;
    if (!o->passes) return default_schedule(*n_tok, sched, n_pass);
    if (sum != *n_tok)
        return dv_fail(DV_E_USAGE, "--passes %s adds up to %lld tokens but there are %d",
                       o->passes, (long long)sum, *n_tok);
    return DV_OK;
}

/* The tokens and schedule of a test dump: its passes, which must run one
 * after the other from position 0. */
static dv_status dump_run(const struct dv_reader *d, int32_t **toks, int *n_tok,
                          int32_t **sched, int *n_pass)
{
    int64_t total = 0;
    for (int p = 0; p < d->n_passes; p++) {
        const struct dv_reader_pass *rp = &d->passes[p];
        if (rp->index != p || rp->pos0 != total)
            return dv_fail(DV_E_INPUT, "%s: pass %lld starts at pos0 %lld, not %lld: bisect "
                           "takes one schedule of passes from position 0", d->path,
                           (long long)rp->index, (long long)rp->pos0, (long long)total);
        total += rp->n_tokens;
    }
    if (d->n_passes < 1 || total < 1 || total > (1 << 20))
        return dv_fail(DV_E_INPUT, "%s: no passes to bisect", d->path);
    *toks = malloc((size_t)total * sizeof **toks);
    *sched = malloc((size_t)d->n_passes * sizeof **sched);
    if (!*toks || !*sched) return dv_fail(DV_E_NOMEM, "out of memory");
    for (int p = 0; p < d->n_passes; p++) {
        const struct dv_reader_pass *rp = &d->passes[p];
        memcpy(*toks + rp->pos0, rp->tokens, (size_t)rp->n_tokens * sizeof **toks);
        (*sched)[p] = (int32_t)rp->n_tokens;
    }
    *n_tok = (int)total, *n_pass = d->n_passes;
    return DV_OK;
}

/* A test dump of model m, and the arithmetic it declares for the
 * reference and the oracle to emulate (unknown or absent: exact; the
 * options, when given, win). */
static dv_status dump_open(const struct bisect_cli *o, const struct dv_model *m,
                           struct dv_reader **d, struct dv_bisect_opts *bo)
{
    dv_status s = dv_reader_open(o->test_dump, d);
    if (s) return s;
    const struct dv_config *a = &(*d)->cfg, *b = &m->cfg;
    if (a->n_layer != b->n_layer || a->d_model != b->d_model || a->n_head != b->n_head ||
        a->n_head_kv != b->n_head_kv || a->head_dim != b->head_dim || a->n_ff != b->n_ff ||
        a->n_vocab != b->n_vocab)
        return dv_fail(DV_E_INPUT, "%s is a dump of another model (%lld layers, d_model "
                       "%lld, vocab %lld; %s has %lld, %lld, %lld)", o->test_dump,
                       (long long)a->n_layer, (long long)a->d_model, (long long)a->n_vocab,
                       o->model, (long long)b->n_layer, (long long)b->d_model,
                       (long long)b->n_vocab);
    struct dv_reader_arith ar;
    dv_reader_arith(*d, &ar);
    const int aq = dv_act_quant_from_name(ar.act_quant);
    const int attn = dv_attn_quant_from_name(ar.attn_quant);
    const int kv = dv_type_from_name(ar.kv_type);
    if (!o->arith_given && aq >= 0) {
        bo->act_quant = aq;
        bo->attn_quant = attn >= 0 ? attn : DV_ATTNQ_AUTO;
    }
    if (o->kv_type < 0) bo->kv_type = aq >= 0 && dv_arith_kv_ok(kv) ? kv : DV_TYPE_F32;
    return DV_OK;
}

static dv_status bisect(const struct bisect_cli *o, const struct dv_model *m, int *exit_code)
{
    int32_t *toks = NULL, *sched = NULL;
    int n_tok = 0, n_pass = 0;
    struct dv_policy *policy = NULL;
    struct dv_bisect_result *r = NULL;
    struct dv_bisect_opts bo = {.model_path = o->model, .test = o->test, .ref = o->ref,
                                .oracle = o->oracle, .device = o->device,
                                .validation = o->validation, .keep_dir = o->keep,
                                .act_quant = o->act_quant, .attn_quant = o->attn_quant,
                                .kv_type = o->kv_type,
                                .arith_from_test = !o->arith_given &&
                                                   o->test == DV_BACKEND_LLAMA_CPP,
                                .layer_split = !o->no_split, .guard = dv_guard_temp,
                                .patch = o->patch, .all_culprits = o->all_culprits,
                                .export_case = o->export_case,
                                .inject = {DV_FAULT_NONE, -1}};
    struct dv_reader *dump = NULL;
    dv_status s = DV_OK;
    if (o->test_dump) {
        s = dump_open(o, m, &dump, &bo);
        if (!s) s = dump_run(dump, &toks, &n_tok, &sched, &n_pass);
        bo.test_dump = dump, bo.layer_split = false;
    } else {
        s = get_run(o, m, &toks, &n_tok, &sched, &n_pass);
    }
    if (!s && o->inject) s = dv_inject_parse(o->inject, (int)m->cfg.n_layer, &bo.inject);
    if (!s) s = o->policy ? dv_policy_load(o->policy, &policy) : dv_policy_default(&policy);
    struct dv_outfile out = {0};
    /* open the report first: a bad -o path fails before minutes of work */
    if (!s) s = dv_outfile_open(o->out, &out);
    if (!s) {
        bo.tokens = toks, bo.n_tokens = n_tok, bo.sched = sched, bo.n_pass = n_pass;
        bo.policy = policy;
        s = dv_bisect(m, &bo, &r);
        int rc = -1;
        if (!s) {
            struct dv_bisect_header h = {.model_path = o->model, .m = m, .o = &bo};
            rc = o->json ? dv_bisect_report_json(out.f, &h, r)
                         : dv_bisect_report_text(out.f, &h, r,
                                                 !o->out && dv_term_color(stdout));
            *exit_code = r->first_pass >= 0 ? DV_EXIT_DIVERGED : DV_EXIT_OK;
        }
        dv_status c = dv_outfile_close(&out, !s && rc == 0);
        if (!s && rc) s = dv_fail(DV_E_IO, "%s: cannot write the report", o->out ? o->out : "stdout");
        if (!s) s = c;
    }
    dv_bisect_free(r);
    dv_policy_free(policy);
    dv_reader_free(dump);
    free(toks), free(sched);
    return s;
}

/* Neither the report nor a kept dump (the names dv_bisect writes in
 * --keep-dumps DIR) may replace the model or the policy. */
static dv_status check_outputs(const struct bisect_cli *o)
{
    const char *inputs[] = {o->model, o->policy};
    dv_status s = dv_outfile_check_inputs(o->out, inputs, 2);
    static const char *const kept[] = {"test.h5", "ref.h5", "oracle.h5"};
    for (int i = 0; !s && o->keep && i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", o->keep, kept[i]);
        s = dv_outfile_check_inputs(path, inputs, 2);
    }
    for (int i = 0; !s && o->export_case && i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", o->export_case, i ? "command" : "case.h5");
        s = dv_outfile_check_inputs(path, inputs, 2);
        if (!s && o->test_dump && !i) {
            const char *dump[] = {o->test_dump};
            s = dv_outfile_check_inputs(path, dump, 1);
        }
    }
    return s;
}

int dv_cmd_bisect(int argc, char **argv)
{
    struct bisect_cli o;
    int rc = parse_bisect_opts(argc, argv, &o);
    if (rc) return rc < 0 ? DV_EXIT_OK : rc;
    dv_status s = check_outputs(&o);
    if (s) return dv_report(s);
    struct dv_model *m;
    s = dv_model_open(o.model, &m);
    if (s) return dv_report(s);
    int code = DV_EXIT_OK;
    s = bisect(&o, m, &code);
    dv_model_free(m);
    return s ? dv_report(s) : code;
}
