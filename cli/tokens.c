/* tokens.c - the token ids a command runs (tokens.h). */
#include "tokens.h"

#include <gsl/gsl_rng.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "error.h"
#include "vocab.h"

dv_status dv_cli_tokens(const char *model, const struct dv_model *m, const char *ids,
                        const char *prompt, int32_t **toks, int *n)
{
    if (ids) return dv_parse_i32_list(ids, "--tokens", 0, INT32_MAX, toks, n);
    if (!m->vocab)
        return dv_fail(DV_E_USAGE, "%s: the model has no tokenizer; give --tokens", model);
    const char *text = prompt ? prompt : "";
    size_t len = strlen(text), cnt = 0;
    dv_tokenize(m->vocab, text, len, true, NULL, 0, &cnt);
    if (cnt == 0) return dv_fail(DV_E_USAGE, "%s: the prompt gives no tokens and "
                                 "the vocab has no BOS; give --tokens", model);
    if (!(*toks = malloc(cnt * sizeof **toks))) return dv_fail(DV_E_NOMEM, "out of memory");
    *n = (int)cnt;
    return dv_tokenize(m->vocab, text, len, true, *toks, cnt, &cnt);
}

dv_status dv_cli_default_tokens(const struct dv_model *m, int n, int32_t **toks)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    *toks = malloc((size_t)(n > 0 ? n : 1) * sizeof **toks);
    if (!rng || !*toks) {
        if (rng) gsl_rng_free(rng);
        return dv_fail(DV_E_NOMEM, "out of memory");
    }
    gsl_rng_set(rng, 1);
    int32_t bos = m->vocab ? dv_vocab_bos(m->vocab) : -1;
    (*toks)[0] = bos >= 0 && bos < m->cfg.n_vocab ? bos : 1 % (int32_t)m->cfg.n_vocab;
    for (int i = 1; i < n; i++)
        (*toks)[i] = (int32_t)gsl_rng_uniform_int(rng, (unsigned long)m->cfg.n_vocab);
    gsl_rng_free(rng);
    return DV_OK;
}
