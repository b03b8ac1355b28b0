/*
 * cmd_run.c - `diverge run`: a forward schedule on one backend, the top
 * tokens of the last pass, and optional greedy generation.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "arith.h"
#include "tokens.h"
#include "dump.h"
#include "commands.h"
#include "engine.h"
#include "error.h"
#include "fault.h"
#include "finite.h"
#include "model.h"
#include "outfile.h"
#include "ops.h"
#include "types.h"
#include "vocab.h"

struct run_opts {
    const char *model, *prompt, *tokens, *passes;
    int backend, generate, top_k;
    int act_quant, attn_quant, kv_type; /* declared arithmetic; kv_type -1: the backend's default */
    bool go_past_bos; /* --no-stop-at-bos */
    const char *dump; /* --dump FILE */
    const char *device, *inject; /* --device, --inject (vulkan); llama.cpp:DEVICE */
    int gpu_layers;              /* engine convention: 0 all, -1 none */
    int flash_attn, n_threads;   /* --flash-attn, --threads (llama.cpp) */
    bool validation;
    bool compress;
    const char *select[64];
    struct dv_dump_filter filter;
};

static void run_help(void)
{
    printf("usage: diverge run MODEL.gguf [--backend cpu|cpu-f64|vulkan|llama.cpp[:DEVICE]]\n"
           "                  [--tokens ID,ID,... | --prompt TEXT] [--passes N,N,...]\n"
           "                  [--generate N] [--top-k K] [--act-quant M] [--kv-type T]\n"
           "                  [--attn-quant A]\n"
           "                  [--dump OUT.h5 [--select GLOB]... [--layers L] [--dump-passes P]\n"
           "                                 [--compress]]\n"
           "                  [--device D] [--gpu-layers N] [--inject F[@L]] [--validation]\n"
           "                  [--flash-attn on|off] [--threads N]\n\n"
           "Run the forward pass and print, for each position of the last pass,\n"
           "the K (default 5) most likely next tokens with their probabilities.\n\n"
           "  --backend B     cpu (f32 reference, default), cpu-f64 (oracle), vulkan\n"
           "                  (the compute kernels on a Vulkan device) or llama.cpp[:DEVICE]\n"
           "                  (llama.cpp itself, loaded at run time, on the ggml device\n"
           "                  DEVICE: CPU, Vulkan0, CUDA0 ...; default: the first GPU\n"
           "                  that is not a CPU-type Vulkan device, else CPU)\n"
           "  --tokens IDS    token ids, comma-separated\n"
           "  --prompt TEXT   text, tokenized with the model's vocab (BOS first)\n"
           "                  without either: BOS alone\n"
           "  --passes LIST   split the tokens into consecutive forward calls on one\n"
           "                  KV cache: 6,5,1 runs 6 tokens at pos0 0, 5 at 6, 1 at 11\n"
           "  --generate N    then greedy-decode N tokens, one call each; stops at EOS\n"
           "                  and at BOS, the story delimiter where llama2.c stops\n"
           "  --no-stop-at-bos  go on past a generated BOS (stop at EOS only)\n"
           "  --top-k K       tokens to list per position (1..100)\n"
           "  --act-quant M   declared arithmetic of the cpu backends: round every\n"
           "                  matmul input as an engine does (llama.cpp's CPU backend\n"
           "                  quantizes it block by block, bit-exact here). none (default,\n"
           "                  exact f32); auto: per weight type as ggml-cpu (q8_0 for\n"
           "                  q8_0/q4_0, q8_K for k-quants, f16 for f16, bf16 for bf16,\n"
           "                  none for f32); amx: auto, but none for f16 (ggml-cpu on a\n"
           "                  CPU with AMX); q8_0, q8_1, q8_K or f16: that, every matmul\n"
           "  --kv-type T     KV cache type: f32 (default; llama.cpp's default is f16),\n"
           "                  f16 or q8_0 (head_dim %% 32 == 0). k_rope and v are dumped\n"
           "                  unrounded; unless --act-quant is none, q is rounded for\n"
           "                  the scores as the cache type's product wants (f16 or q8_0)\n"
           "                  and, with f16, the probabilities for x V (flash attention\n"
           "                  is not emulated). vulkan takes neither option\n"
           "  --attn-quant A  how the attention products round: auto (default: q and\n"
           "                  the probabilities to the cache's type unless --act-quant\n"
           "                  is none, as ggml's CPU), none, q (q only), qp (both) or vk\n"
           "                  (ggml's Vulkan backend as on lavapipe: passes of more than\n"
           "                  one token round q, K, the probabilities and V to f16 and,\n"
           "                  with an f16 cache, sum probabilities x V in f16)\n"
           "  --dump OUT.h5   write every named tensor of every pass to OUT.h5 (HDF5,\n"
           "                  schema diverge-dump(5)); written under a temporary name\n"
           "                  and renamed when complete\n"
           "  --select GLOB   dump only tensors whose name matches GLOB (repeatable,\n"
           "                  e.g. 'blk.*.q_rope')\n"
           "  --layers L      dump only layers L, e.g. 0-3,7 (output_norm and logits\n"
           "                  are outside the layers and stay unless --select drops them)\n"
           "  --dump-passes P dump only forward calls P, e.g. 0,2 (0 is the first)\n"
           "  --compress      byte-shuffle and deflate the dumped tensors\n"
           "vulkan only:\n"
           "  --device D      device index or name substring (else $DV_VK_DEVICE, else\n"
           "                  a discrete GPU, an integrated one, then a CPU device)\n"
           "  --gpu-layers N  the first N layers on the device, the rest, output_norm\n"
           "                  and the logits on the CPU reference; 0: none (also\n"
           "                  llama.cpp, see below)\n"
           "  --inject F[@L]  build the kernels with fault F (all layers, or layer L\n"
           "                  only); recorded in the dump's inject attribute. F is one of:\n");
    for (int f = 1; f < DV_FAULT_COUNT; f++)
        printf("                    %-16s %s\n", dv_fault_name(f), dv_fault_doc(f));
    printf("  --validation    enable the Khronos validation layer (also\n"
           "                  DV_VK_VALIDATION=1); any message fails the run\n"
           "llama.cpp only:\n"
           "  --gpu-layers N  passed on as llama.cpp's n_gpu_layers: the output layer\n"
           "                  and the last N-1 layers on DEVICE (default: all); 0: none\n"
           "  --flash-attn on|off  flash attention (default off: with it on, kq and\n"
           "                  kq_softmax are inside one fused node and not dumped)\n"
           "  --threads N     CPU threads (1..1024; default: llama.cpp's 4, or fewer\n"
           "                  when this process may use fewer CPUs)\n");
}

static int parse_run_opts(int argc, char **argv, struct run_opts *o)
{
    static const struct option opts[] = {
        {"backend", required_argument, 0, 'b'}, {"tokens", required_argument, 0, 't'},
        {"prompt", required_argument, 0, 'p'},  {"passes", required_argument, 0, 'P'},
        {"generate", required_argument, 0, 'g'}, {"top-k", required_argument, 0, 'k'},
        {"dump", required_argument, 0, 'd'},    {"select", required_argument, 0, 's'},
        {"layers", required_argument, 0, 'L'},  {"dump-passes", required_argument, 0, 'D'},
        {"compress", no_argument, 0, 'z'},      {"device", required_argument, 0, 'V'},
        {"gpu-layers", required_argument, 0, 'G'}, {"inject", required_argument, 0, 'I'},
        {"validation", no_argument, 0, 'C'},    {"no-stop-at-bos", no_argument, 0, 'B'},
        {"act-quant", required_argument, 0, 'A'}, {"kv-type", required_argument, 0, 'K'},
        {"attn-quant", required_argument, 0, 'Q'},
        {"flash-attn", required_argument, 0, 'F'}, {"threads", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    bool filtered = false;
    *o = (struct run_opts){.backend = DV_BACKEND_CPU, .top_k = 5, .kv_type = -1};
    int c;
    int64_t v;
    bool vk_opts = false, split_opt = false, llama_opts = false;
    while ((c = getopt_long(argc, argv, "b:t:p:P:g:k:d:s:L:D:zV:G:I:CBF:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (!strncmp(optarg, "llama.cpp:", 10)) { /* llama.cpp:DEVICE */
                if (!optarg[10]) return dv_usage_error("run", "--backend llama.cpp: names no "
                                                       "device (llama.cpp:CPU, llama.cpp:Vulkan0)");
                o->backend = DV_BACKEND_LLAMA_CPP;
                o->device = optarg + 10;
            } else if ((o->backend = dv_backend_from_name(optarg)) < 0) {
                return dv_usage_error("run", "unknown backend '%s' (cpu, cpu-f64, vulkan, "
                                      "llama.cpp[:DEVICE])", optarg);
            }
            break;
        case 't': o->tokens = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'P': o->passes = optarg; break;
        case 'g':
            if (dv_parse_i64(optarg, "--generate", 0, 1 << 16, &v)) return dv_report(DV_E_USAGE);
            o->generate = (int)v;
            break;
        case 'k':
            if (dv_parse_i64(optarg, "--top-k", 1, 100, &v)) return dv_report(DV_E_USAGE);
            o->top_k = (int)v;
            break;
        case 'd': o->dump = optarg; break;
        case 's':
            if (o->filter.n_select == (int)(sizeof o->select / sizeof o->select[0]))
                return dv_usage_error("run", "more than 64 --select globs");
            o->select[o->filter.n_select++] = optarg;
            filtered = true;
            break;
        case 'L':
            if (dv_ranges_parse(optarg, "--layers", 0, INT32_MAX, &o->filter.layers))
                return dv_report(DV_E_USAGE);
            filtered = true;
            break;
        case 'D':
            if (dv_ranges_parse(optarg, "--dump-passes", 0, INT32_MAX, &o->filter.passes))
                return dv_report(DV_E_USAGE);
            filtered = true;
            break;
        case 'z': o->compress = filtered = true; break;
        case 'V': o->device = optarg, vk_opts = true; break;
        case 'G':
            if (dv_parse_i64(optarg, "--gpu-layers", 0, INT32_MAX, &v)) return dv_report(DV_E_USAGE);
            o->gpu_layers = v ? (int)v : -1;
            split_opt = true;
            break;
        case 'I': o->inject = optarg, vk_opts = true; break;
        case 'C': o->validation = vk_opts = true; break;
        case 'F':
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                return dv_usage_error("run", "--flash-attn '%s': on or off", optarg);
            o->flash_attn = !strcmp(optarg, "on");
            llama_opts = true;
            break;
        case 'j':
            if (dv_parse_i64(optarg, "--threads", 1, 1024, &v)) return dv_report(DV_E_USAGE);
            o->n_threads = (int)v;
            llama_opts = true;
            break;
        case 'B': o->go_past_bos = true; break;
        case 'A':
            if (dv_parse_act_quant(optarg, &o->act_quant)) return dv_report(DV_E_USAGE);
            break;
        case 'Q':
            if (dv_parse_attn_quant(optarg, &o->attn_quant)) return dv_report(DV_E_USAGE);
            break;
        case 'K':
            if (dv_parse_kv_type(optarg, &o->kv_type)) return dv_report(DV_E_USAGE);
            break;
        case 'h': run_help(); return -1;
        default: return dv_usage_error("run", "bad option");
        }
    }
    if (optind != argc - 1) return dv_usage_error("run", "give one MODEL");
    if (o->tokens && o->prompt) return dv_usage_error("run", "give --tokens or --prompt, not both");
    if (vk_opts && o->backend != DV_BACKEND_VULKAN)
        return dv_usage_error("run", "--device, --inject and --validation need --backend "
                              "vulkan (llama.cpp takes its device as llama.cpp:DEVICE)");
    if (split_opt && o->backend != DV_BACKEND_VULKAN && o->backend != DV_BACKEND_LLAMA_CPP)
        return dv_usage_error("run", "--gpu-layers needs --backend vulkan or llama.cpp");
    if (llama_opts && o->backend != DV_BACKEND_LLAMA_CPP)
        return dv_usage_error("run", "--flash-attn and --threads need --backend llama.cpp");
    if (filtered && !o->dump)
        return dv_usage_error("run", "--select, --layers, --dump-passes and --compress "
                              "need --dump");
    o->filter.select = o->select;
    o->model = argv[optind];
    if (o->kv_type < 0) o->kv_type = dv_default_kv_type(o->backend);
    return 0;
}

static dv_status get_schedule(const struct run_opts *o, int n_tok, int32_t **sched,
                              int *n_pass)
{
    if (!o->passes) {
        if (!(*sched = malloc(sizeof **sched))) return dv_fail(DV_E_NOMEM, "out of memory");
        (*sched)[0] = n_tok;
        *n_pass = 1;
        return DV_OK;
    }
    dv_status s = dv_parse_i32_list(o->passes, "--passes", 1, INT32_MAX, sched, n_pass);
    if (s) return s;
    int64_t sum = 0;
    for (int i = 0; i < *n_pass; i++) sum += (*sched)[i];
    if (sum != n_tok)
        return dv_fail(DV_E_USAGE, "--passes %s adds up to %lld tokens but there "
                       "are %d", o->passes, (long long)sum, n_tok);
    return DV_OK;
}

/* The printable text of a token, quoted, control bytes escaped, padded to
 * width columns. */
static void put_token(const struct dv_model *m, int32_t id, int width)
{
    char buf[256];
    int n = m->vocab ? dv_vocab_piece(m->vocab, id, buf, sizeof buf) : -1;
    if (n < 0) {
        printf("%-*s", width, "");
        return;
    }
    if (n == 0) /* control tokens print nothing; show what they are */
        snprintf(buf, sizeof buf, "%s", dv_vocab_token(m->vocab, id));
    char q[64];
    size_t o = 0;
    q[o++] = '"';
    for (const char *p = buf; *p && o < sizeof q - 6; p++) {
        unsigned char ch = (unsigned char)*p;
        o += ch < 32 ? (size_t)snprintf(q + o, 6, "\\x%02x", ch) : (q[o] = (char)ch, 1);
    }
    q[o++] = '"';
    q[o] = '\0';
    printf("%-*s", width, q);
}

/* Print what is not finite in one position's logits (c: their census). */
static void put_census(const struct dv_logit_census *c)
{
    printf("%27s not finite: %lld NaN", "", (long long)c->n_nan);
    if (c->n_nan) printf(" (first id %lld)", (long long)c->first_nan);
    printf(", %lld +inf", (long long)c->n_posinf);
    if (c->n_posinf) printf(" (first id %lld)", (long long)c->first_posinf);
    printf(", %lld -inf of %lld logits", (long long)c->n_neginf, (long long)c->n);
    int64_t n_ok = c->n - c->n_nan - c->n_posinf - c->n_neginf;
    if (n_ok) printf("; probabilities over the %lld finite ones", (long long)n_ok);
    putchar('\n');
}

/* softmax(logits) in place (double) over the finite logits, then print
 * the top k. A NaN or +inf has no probability and is never listed (-inf
 * is probability 0); when the logits are not finite (finite.h) a second
 * line counts what is wrong. Returns whether they were finite. */
static bool put_top(const struct dv_model *m, double *p, int64_t V, int k)
{
    struct dv_logit_census c;
    dv_logit_census(p, V, &c);
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < V; i++) mx = isfinite(p[i]) && p[i] > mx ? p[i] : mx;
    /* taken or not a candidate: -1 */
    for (int64_t i = 0; i < V; i++) {
        p[i] = isnan(p[i]) || p[i] == INFINITY || mx == -INFINITY ? -1 : exp(p[i] - mx);
        sum += p[i] >= 0 ? p[i] : 0;
    }
    int r = 0;
    for (; r < k && r < V; r++) {
        int64_t best = -1;
        for (int64_t i = 0; i < V; i++)
            if (p[i] >= 0 && (best < 0 || p[i] > p[best])) best = i;
        if (best < 0) break;
        printf("%s%lld ", r ? "  | " : " -> ", (long long)best);
        put_token(m, (int32_t)best, 0);
        printf(" %.4f", p[best] / sum);
        p[best] = -1;
    }
    printf("%s\n", r ? "" : " -> no finite logit");
    bool bad = dv_logit_census_bad(&c);
    if (bad) put_census(&c);
    return !bad;
}

/* The greedy choice: the largest logit, ties to the smaller id; NaN is
 * never chosen (the caller stops on non-finite logits first). */
static int64_t argmax(const double *x, int64_t n)
{
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++) b = x[i] > x[b] || isnan(x[b]) ? i : b;
    return b;
}

static void put_text(const struct dv_model *m, const int32_t *toks, int n)
{
    if (!m->vocab) return;
    printf("text: ");
    bool first = true;
    for (int i = 0; i < n; i++) {
        char buf[256];
        int len = dv_vocab_piece(m->vocab, toks[i], buf, sizeof buf);
        if (len <= 0) continue;
        /* SentencePiece: the space that starts the first word was added */
        fputs(first && buf[0] == ' ' ? buf + 1 : buf, stdout);
        first = false;
    }
    putchar('\n');
}

/* Greedy decoding of up to n_gen tokens after the prompt; stops after
 * EOS, after BOS unless past_bos (llama2.c's run.c ends a story at BOS,
 * the delimiter of its training data), and at logits that are not finite
 * (*bad set, the position printed). The stopping token is listed, as it
 * was generated. *n_calls gets the forward calls it made, for
 * locate_nonfinite(). */
static dv_status generate(struct dv_engine *e, const struct dv_model *m, int32_t *toks,
                          int n_prompt, int n_gen, bool past_bos, double *logits,
                          int last_t, const struct dv_hook *hook, int *n_calls, bool *bad)
{
    int n = n_prompt;
    const int32_t eos = m->vocab ? dv_vocab_eos(m->vocab) : -1;
    const int32_t bos = m->vocab && !past_bos ? dv_vocab_bos(m->vocab) : -1;
    const char *stop = NULL;
    dv_status s = DV_OK;
    *n_calls = 0;
    for (int g = 0; g < n_gen && !s; g++) {
        if ((s = dv_engine_logits(e, g ? 0 : last_t, logits))) break;
        struct dv_logit_census c;
        dv_logit_census(logits, m->cfg.n_vocab, &c);
        if (dv_logit_census_bad(&c)) {
            printf("\ngeneration stopped: the logits at pos %d (token %d) are not finite\n",
                   n - 1, toks[n - 1]);
            put_census(&c);
            *bad = true;
            break;
        }
        toks[n] = (int32_t)argmax(logits, m->cfg.n_vocab);
        if (toks[n] == eos || toks[n] == bos) {
            stop = toks[n++] == eos ? "EOS" : "BOS (the story delimiter; --no-stop-at-bos "
                                              "goes on)";
            break;
        }
        n++;
        s = dv_engine_forward(e, &toks[n - 1], 1, n - 1, hook);
        ++*n_calls;
    }
    if (s) return s;
    printf("\ngenerated %d tokens:", n - n_prompt);
    for (int i = n_prompt; i < n; i++) printf(" %d", toks[i]);
    putchar('\n');
    if (stop) printf("stopped at %s\n", stop);
    put_text(m, toks, n);
    return DV_OK;
}

/* Logits were not finite: run the same forward calls again from an empty
 * cache (sched[n_pass], then n_gen single tokens after the schedule's)
 * with a hook that finds the first tensor holding a NaN or an infinity,
 * and print it. Backends are deterministic, so the second run computes
 * the same values. */
static dv_status locate_nonfinite(struct dv_engine *e, const int32_t *toks,
                                  const int32_t *sched, int n_pass, int n_gen)
{
    struct dv_nan_watch w = {0};
    struct dv_hook h = dv_nan_watch_hook(&w);
    dv_status s = DV_OK;
    int pos = 0;
    dv_engine_reset(e);
    for (int i = 0; !s && !w.found && i < n_pass; pos += sched[i++])
        s = dv_engine_forward(e, toks + pos, sched[i], pos, &h);
    for (int g = 0; !s && !w.found && g < n_gen; g++, pos++)
        s = dv_engine_forward(e, toks + pos, 1, pos, &h);
    if (s) return s;
    if (!w.found) {
        printf("  a second run of the same calls holds no NaN or infinity in any tensor\n");
        return DV_OK;
    }
    char shape[64] = "[";
    for (int k = 0, o = 1; k < w.n_dims; k++)
        o += snprintf(shape + o, sizeof shape - (size_t)o, k ? ", %lld" : "%lld",
                      (long long)w.shape[k]);
    strncat(shape, "]", sizeof shape - strlen(shape) - 1);
    printf("  it first appears in pass %d, %s (%s, %s): %lld NaN, %lld inf, the first at "
           "flat index %lld\n", w.pass, w.name, dv_op_name(w.op), shape,
           (long long)w.n_nan, (long long)w.n_inf, (long long)w.first);
    return DV_OK;
}

/* The layer split, when there is one. vulkan: the first N layers on the
 * device, the rest on the cpu reference. llama.cpp: its n_gpu_layers N
 * counts the output layer, then layers from the last one down. */
static void put_split(const struct run_opts *o, const struct dv_config *c)
{
    const long long L = (long long)c->n_layer, n = o->gpu_layers;
    if (o->backend == DV_BACKEND_LLAMA_CPP && n > 0 && n <= L) {
        if (n == 1) printf("split    llama.cpp n_gpu_layers 1: the output layer on the device, "
                           "every layer on the CPU\n");
        else printf("split    llama.cpp n_gpu_layers %lld: layers %lld-%lld and the output on "
                    "the device, 0-%lld on the CPU\n", n, L + 1 - n, L - 1, L - n);
        return;
    }
    if (o->backend == DV_BACKEND_LLAMA_CPP && n < 0)
        printf("split    llama.cpp n_gpu_layers 0: everything on the CPU\n");
    if (o->backend != DV_BACKEND_VULKAN) return;
    if (n > 0 && n < L)
        printf("split    layers 0-%lld on the device, %lld-%lld on the cpu reference\n",
               n - 1, n, L - 1);
    if (n < 0) printf("split    every layer on the cpu reference\n");
}

/* Create the dump (temporary file guarded against signals) and describe
 * the model and the backend in its attributes. */
static dv_status start_dump(const struct run_opts *o, const struct dv_model *m,
                            const struct dv_engine *e, const char *inject,
                            struct dv_dump_sink *sink)
{
    const struct dv_backend *be = dv_engine_backend(e);
    unsigned flags = (be->act_type == DV_TYPE_F64 ? DV_DUMP_FLOAT64 : 0) |
                     (o->compress ? DV_DUMP_COMPRESS : 0);
    dv_status s = dv_dump_create(o->dump, be->name, flags, &sink->dump);
    if (s) return s;
    dv_guard_temp(dv_dump_temp_path(sink->dump));
    char device[192], driver[512];
    dv_engine_describe(e, device, sizeof device, driver, sizeof driver);
    const struct dv_arith a = dv_engine_arith(e);
    s = dv_dump_describe(sink->dump, m, device, driver, inject, &a);
    return s ? s : dv_dump_engine_attrs(sink->dump, e);
}

/* Commit the dump when everything before went well, else discard it. */
static dv_status finish_dump(const struct run_opts *o, struct dv_dump_sink *sink,
                             dv_status s)
{
    dv_status c = dv_dump_close(sink->dump, s == DV_OK);
    dv_guard_temp(NULL);
    sink->dump = NULL;
    if (s) return s;
    if (c) return c;
    printf("\ndump     %s: %lld passes, %lld tensors, %.3f MB of values\n", o->dump,
           (long long)sink->n_passes, (long long)sink->n_tensors,
           (double)sink->n_values * (o->backend == DV_BACKEND_CPU_F64 ? 8 : 4) / 1e6);
    return DV_OK;
}

/* Run o's schedule, print the top tokens and generate; *bad set when
 * logits it reports are not finite. */
static dv_status run(const struct run_opts *o, struct dv_model *m, int32_t **toks,
                     bool *bad)
{
    int n_tok = 0, n_pass = 0;
    int32_t *sched = NULL;
    struct dv_engine *e = NULL;
    double *logits = malloc((size_t)m->cfg.n_vocab * sizeof *logits);
    dv_status s = logits ? dv_cli_tokens(o->model, m, o->tokens, o->prompt, toks, &n_tok) : dv_fail(DV_E_NOMEM, "out of memory");
    int32_t *grown = s ? NULL : realloc(*toks, (size_t)(n_tok + o->generate) * sizeof **toks);
    if (!s && !grown) s = dv_fail(DV_E_NOMEM, "out of memory");
    if (!s) *toks = grown;
    if (!s) s = get_schedule(o, n_tok, &sched, &n_pass);
    int max_pass = 1;
    for (int i = 0; !s && i < n_pass; i++) max_pass = sched[i] > max_pass ? sched[i] : max_pass;
    struct dv_inject inj = {DV_FAULT_NONE, -1};
    char inject[64] = "";
    if (!s && o->inject && !(s = dv_inject_parse(o->inject, (int)m->cfg.n_layer, &inj)))
        dv_inject_format(&inj, inject, sizeof inject);
    struct dv_engine_opts eo = {.n_ctx = n_tok + o->generate, .n_batch = max_pass,
                                .device = o->device, .validation = o->validation,
                                .gpu_layers = o->gpu_layers, .inject = inj.fault,
                                .inject_layer = inj.layer, .act_quant = o->act_quant,
                                .attn_quant = o->attn_quant,
                                .kv_type = o->kv_type, .flash_attn = o->flash_attn,
                                .n_threads = o->n_threads};
    if (!s) s = dv_engine_open(m, o->backend, &eo, &e);
    struct dv_dump_sink sink = {.filter = &o->filter};
    struct dv_hook dump_hook = dv_dump_hook(&sink);
    const struct dv_hook *hook = NULL;
    if (!s && o->dump && !(s = start_dump(o, m, e, inject, &sink))) hook = &dump_hook;
    if (!s) {
        const struct dv_config *c = &m->cfg;
        printf("model    %s: %s, %lld layers, d_model %lld, %lld heads (%lld kv), "
               "vocab %lld\nbackend  %s", o->model, c->arch, (long long)c->n_layer,
               (long long)c->d_model, (long long)c->n_head, (long long)c->n_head_kv,
               (long long)c->n_vocab, dv_backend_name(o->backend));
        char device[192], driver[512];
        dv_engine_describe(e, device, sizeof device, driver, sizeof driver);
        printf(" on %s (%s)\n", device, driver);
        put_split(o, c);
        if (inject[0]) printf("inject   %s: %s\n", inject, dv_fault_doc(inj.fault));
        const struct dv_arith a = dv_engine_arith(e);
        if (a.act_quant != DV_ACTQ_NONE || a.kv_type != DV_TYPE_F32 ||
            (a.attn_quant != DV_ATTNQ_AUTO && a.attn_quant != DV_ATTNQ_NONE)) {
            char types[256] = "unknown";
            if (a.act_quant >= 0) dv_arith_describe(m, a.act_quant, types, sizeof types);
            printf("arith    act-quant %s (%s), attn-quant %s, kv cache %s\n",
                   a.act_quant >= 0 ? dv_act_quant_name(a.act_quant) : "unknown", types,
                   dv_attn_quant_name(a.attn_quant), dv_type_name(a.kv_type));
        }
        printf("tokens  ");
        for (int i = 0; i < n_tok; i++) printf(" %d", (*toks)[i]);
        printf(" (%d)\n", n_tok);
    }
    int pos = 0;
    for (int i = 0; !s && i < n_pass; pos += sched[i++])
        s = dv_engine_forward(e, *toks + pos, sched[i], pos, hook);
    const int last = n_pass ? sched[n_pass - 1] : 0, pos0 = pos - last;
    if (!s) printf("\npass %d of %d (pos0 %d, %d tokens): top %d next tokens per position\n",
                   n_pass - 1, n_pass, pos0, last, o->top_k);
    int n_bad = 0, n_calls = 0;
    for (int t = 0; !s && t < last; t++) {
        printf("  pos %3d  %6d ", pos0 + t, (*toks)[pos0 + t]);
        put_token(m, (*toks)[pos0 + t], 10);
        if (!(s = dv_engine_logits(e, t, logits)))
            n_bad += !put_top(m, logits, m->cfg.n_vocab, o->top_k);
    }
    *bad = n_bad > 0;
    if (!s && o->generate && n_bad)
        printf("\ngeneration not run: the logits are not finite\n");
    if (!s && o->generate && !n_bad)
        s = generate(e, m, *toks, n_tok, o->generate, o->go_past_bos, logits, last - 1, hook,
                     &n_calls, bad);
    /* a dump with NaN in it is the evidence: commit it all the same */
    if (sink.dump) s = finish_dump(o, &sink, s);
    if (!s && *bad) {
        if (n_bad)
            printf("\nNOT FINITE: the logits of %d of %d positions hold NaN or +inf\n",
                   n_bad, last);
        else
            printf("\nNOT FINITE: the logits of a generated position hold NaN or +inf\n");
        s = locate_nonfinite(e, *toks, sched, n_pass, n_calls);
    }
    dv_engine_free(e);
    free(sched), free(logits);
    return s;
}

int dv_cmd_run(int argc, char **argv)
{
    struct run_opts o;
    int rc = parse_run_opts(argc, argv, &o);
    if (rc) return rc < 0 ? DV_EXIT_OK : rc;
    dv_status s = dv_outfile_check_inputs(o.dump, &o.model, 1);
    if (s) return dv_report(s);
    struct dv_model *m;
    s = dv_model_open(o.model, &m);
    if (s) return dv_report(s);
    int32_t *toks = NULL;
    bool bad = false;
    s = run(&o, m, &toks, &bad);
    free(toks);
    dv_model_free(m);
    return s ? dv_report(s) : bad ? DV_EXIT_DIVERGED : DV_EXIT_OK;
}
