/*
 * tokens.h - the token ids a command runs: --tokens, --prompt, or a
 * default.
 */
#ifndef DV_CLI_TOKENS_H
#define DV_CLI_TOKENS_H

#include <stdint.h>

#include "model.h"

/* ids (comma-separated, checked below INT32_MAX) or the prompt tokenized
 * with the model's vocab (BOS first); neither: BOS alone. `model` names
 * the file in messages. Free *toks with free(). */
dv_status dv_cli_tokens(const char *model, const struct dv_model *m, const char *ids,
                        const char *prompt, int32_t **toks, int *n);

/* n reproducible token ids for runs that are given none: BOS (or 1
 * without a vocab) and then ids drawn uniformly from [0, n_vocab) by GSL's
 * MT19937 seeded with 1, the same on every machine. */
dv_status dv_cli_default_tokens(const struct dv_model *m, int n, int32_t **toks);

#endif
