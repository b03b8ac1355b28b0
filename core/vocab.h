/*
 * vocab.h - SentencePiece-style (llama "spm") tokenizer from GGUF metadata.
 *
 * Reads tokenizer.ggml.model == "llama", tokenizer.ggml.tokens, .scores,
 * .token_type, .bos_token_id, .eos_token_id, .unknown_token_id,
 * .add_bos_token, .add_space_prefix, and tokenizes exactly as llama.cpp's
 * llm_tokenizer_spm: a space is prefixed (add_space_prefix, default true;
 * not for empty text), spaces become U+2581, the text is split into UTF-8
 * characters, and adjacent symbols are merged greedily by highest score of
 * the merged piece (ties: leftmost first); characters left that are not
 * tokens fall back to <0xXX> byte tokens, then to the unknown token.
 */
#ifndef DV_VOCAB_H
#define DV_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/* token_type values, as llama.cpp defines them */
enum dv_token_type {
    DV_TOKEN_UNDEFINED = 0,
    DV_TOKEN_NORMAL = 1,
    DV_TOKEN_UNKNOWN = 2,
    DV_TOKEN_CONTROL = 3,
    DV_TOKEN_USER_DEFINED = 4,
    DV_TOKEN_UNUSED = 5,
    DV_TOKEN_BYTE = 6,
    DV_TOKEN_TYPE_COUNT
};

struct dv_vocab;

/* Load the vocab of g. Returns DV_E_INPUT "PATH: ..." when the tokenizer
 * metadata is absent or inconsistent (array lengths differ, ids out of
 * range, unsupported tokenizer model). The vocab copies what it needs and
 * does not borrow from g. */
dv_status dv_vocab_load(const struct dv_gguf *g, struct dv_vocab **out);
void dv_vocab_free(struct dv_vocab *v);

/* A vocab from plain arrays: what dv_vocab_load() builds on once it has read
 * the metadata, and how tests build small vocabs by hand. Not part of the
 * public API. */
struct dv_vocab_desc {
    const char *path;            /* names the source in messages; may be NULL */
    int32_t n;                   /* number of tokens, > 0 */
    const char *const *tokens;   /* [n] token texts (any bytes) */
    const size_t *lens;          /* [n] byte lengths, or NULL: NUL-terminated */
    const float *scores;         /* [n] or NULL: all 0 */
    const int32_t *types;        /* [n] enum dv_token_type, or NULL: normal */
    int32_t bos, eos, unk;       /* -1 when none, else < n */
    bool add_bos;
    bool add_space_prefix;
};

/* Build a vocab from d, copying everything (nothing in d is kept). Empty
 * tokens are renamed "[EMPTY_i]" as llama.cpp does. DV_E_INPUT "PATH: ..."
 * when n <= 0, a special id is out of range or two tokens have the same
 * text; DV_E_NOMEM when an allocation fails. *out is NULL on failure. */
dv_status dv_vocab_from_arrays(const struct dv_vocab_desc *d,
                               struct dv_vocab **out);

int32_t dv_vocab_size(const struct dv_vocab *v);
int32_t dv_vocab_bos(const struct dv_vocab *v); /* -1 when none */
int32_t dv_vocab_eos(const struct dv_vocab *v); /* -1 when none */
bool dv_vocab_add_bos(const struct dv_vocab *v);

/* Tokenize len bytes of text. With add_bos and a BOS id, BOS comes first.
 * Writes up to cap ids to out and the full count to *n (call with cap 0 to
 * size). DV_E_USAGE when cap is too small (ids written up to cap). */
dv_status dv_tokenize(const struct dv_vocab *v, const char *text, size_t len,
                      bool add_bos, int32_t *out, size_t cap, size_t *n);

/* The text of token id as it should be printed (llama.cpp's token_to_piece
 * without `special`): U+2581 becomes a space in normal tokens, <0xXX> byte
 * tokens become that byte, user-defined tokens print as stored, control,
 * unknown, unused and undefined tokens give "". Writes at
 * most cap-1 bytes plus a NUL into buf and returns the byte length (without
 * NUL) of the piece; -1 when id is out of range. */
int dv_vocab_piece(const struct dv_vocab *v, int32_t id, char *buf,
                   size_t cap);

/* The raw token string (with U+2581, as stored), NUL-terminated, or NULL. */
const char *dv_vocab_token(const struct dv_vocab *v, int32_t id);

#endif
