/*
 * vocab.c - the llama "spm" (SentencePiece) tokenizer: token table from GGUF
 * metadata, text -> ids, id -> printable text.
 *
 * Tokenizing follows llama.cpp's llm_tokenizer_spm_session step by step, so
 * that ids match llama.cpp's exactly, including its quirks: UTF-8 characters
 * are cut by the lead byte alone (clamped at the end of the text), merges
 * are picked from a priority queue by the score of the merged token (ties:
 * the leftmost pair), stale queue entries are recognised by size only, and
 * characters that never became tokens fall back to <0xXX> byte tokens, then
 * to a 1-byte token, then to the unknown token.
 *
 * Not done here (llama.cpp does it before the SPM step): splitting out
 * user-defined tokens found in the text, and parse_special. Vocabs with
 * user-defined tokens can therefore tokenize differently from llama.cpp.
 */
#include "vocab.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */
#define SPM_SPACE_LEN 3
#define TOKEN_MAX_LEN (1u << 30) /* keeps lengths and pieces inside int */

struct dv_vocab {
    int32_t n;
    char *blob;         /* all token texts, each NUL-terminated */
    size_t *off;        /* [n] offset of token i in blob */
    size_t *len;        /* [n] byte length of token i, NUL not counted */
    float *score;       /* [n] */
    uint8_t *type;      /* [n] enum dv_token_type */
    int32_t *slot;      /* [mask + 1] token id or -1: text -> id, open
                           addressing with linear probing */
    uint64_t mask;
    int32_t byte_tok[256]; /* fallback id of each byte, -1 when none */
    int32_t bos, eos, unk;
    bool add_bos;
    bool add_space_prefix;
};

/* ---- token table ------------------------------------------------------ */

/* FNV-1a: short token texts, so a simple byte hash is enough. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Id of the token whose text is the n bytes at s, or -1. */
static int32_t vocab_find(const struct dv_vocab *v, const char *s, size_t n)
{
    for (uint64_t h = hash_bytes(s, n) & v->mask;; h = (h + 1) & v->mask) {
        int32_t id = v->slot[h];
        if (id < 0) return -1;
        if (v->len[id] == n && memcmp(v->blob + v->off[id], s, n) == 0)
            return id;
    }
}

/* Put token id into the table. Returns -1, or the id already holding the
 * same text (then id is not inserted). The table is never full: it has at
 * least twice as many slots as tokens. */
static int32_t table_insert(struct dv_vocab *v, int32_t id)
{
    const char *s = v->blob + v->off[id];
    uint64_t h = hash_bytes(s, v->len[id]) & v->mask;
    for (;; h = (h + 1) & v->mask) {
        int32_t other = v->slot[h];
        if (other < 0) break;
        if (v->len[other] == v->len[id] &&
            memcmp(v->blob + v->off[other], s, v->len[id]) == 0)
            return other;
    }
    v->slot[h] = id;
    return -1;
}

/* Fill the text -> id table. DV_E_INPUT on a duplicate text: llama.cpp
 * refuses such vocabs too, since one of the ids could never be produced. */
static dv_status build_table(struct dv_vocab *v, const char *path)
{
    for (int32_t i = 0; i < v->n; i++) {
        int32_t other = table_insert(v, i);
        if (other >= 0)
            return dv_fail(DV_E_INPUT,
                           "%s: tokens %d and %d have the same text", path,
                           other, i);
    }
    return DV_OK;
}

/* The byte fallback of llama.cpp's byte_to_token(): "<0xXX>" (upper-case
 * hex), else the 1-byte token, and where llama.cpp would throw, the unknown
 * token (-1 when there is none). */
static void build_byte_table(struct dv_vocab *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char one = (char)b;
        int32_t id = vocab_find(v, name, sizeof name);
        if (id < 0) id = vocab_find(v, &one, 1);
        v->byte_tok[b] = id >= 0 ? id : v->unk;
    }
}

/* ---- construction ----------------------------------------------------- */

void dv_vocab_free(struct dv_vocab *v)
{
    if (!v) return;
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->slot);
    free(v);
}

/* Length of token i of d as stored: empty tokens become "[EMPTY_i]", the
 * name llama.cpp gives them. */
static size_t desc_len(const struct dv_vocab_desc *d, int32_t i)
{
    size_t n = d->lens ? d->lens[i] : strlen(d->tokens[i]);
    if (n == 0) n = (size_t)snprintf(NULL, 0, "[EMPTY_%d]", i);
    return n;
}

/* Check d before anything is allocated. */
static dv_status desc_check(const struct dv_vocab_desc *d, const char *path)
{
    if (d->n <= 0 || !d->tokens)
        return dv_fail(DV_E_INPUT, "%s: the vocab has no tokens", path);
    const int32_t ids[3] = {d->bos, d->eos, d->unk};
    static const char *const names[3] = {"bos", "eos", "unknown"};
    for (int k = 0; k < 3; k++)
        if (ids[k] < -1 || ids[k] >= d->n)
            return dv_fail(DV_E_INPUT,
                           "%s: %s token id %d is out of range (vocab of %d)",
                           path, names[k], ids[k], d->n);
    for (int32_t i = 0; i < d->n; i++)
        if (desc_len(d, i) >= TOKEN_MAX_LEN)
            return dv_fail(DV_E_INPUT, "%s: token %d is too long", path, i);
    return DV_OK;
}

/* Allocate v's arrays for d's tokens: blob of `bytes` bytes, table of at
 * least 2n slots (a power of two). NULL when out of memory. */
static struct dv_vocab *vocab_alloc(int32_t n, size_t bytes)
{
    struct dv_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    uint64_t slots = 16;
    while (slots < 2 * (uint64_t)n) slots *= 2;
    v->n = n;
    v->mask = slots - 1;
    v->blob = malloc(bytes);
    v->off = malloc((size_t)n * sizeof *v->off);
    v->len = malloc((size_t)n * sizeof *v->len);
    v->score = malloc((size_t)n * sizeof *v->score);
    v->type = malloc((size_t)n);
    v->slot = malloc(slots * sizeof *v->slot);
    if (!v->blob || !v->off || !v->len || !v->score || !v->type || !v->slot) {
        dv_vocab_free(v);
        return NULL;
    }
    memset(v->slot, 0xff, slots * sizeof *v->slot); /* all -1 */
    return v;
}

/* Copy token texts, scores and types of d into v. */
static void copy_tokens(struct dv_vocab *v, const struct dv_vocab_desc *d)
{
    size_t at = 0;
    for (int32_t i = 0; i < d->n; i++) {
        size_t n = desc_len(d, i);
        size_t given = d->lens ? d->lens[i] : strlen(d->tokens[i]);
        if (given) memcpy(v->blob + at, d->tokens[i], n);
        else snprintf(v->blob + at, n + 1, "[EMPTY_%d]", i);
        v->blob[at + n] = '\0';
        v->off[i] = at;
        v->len[i] = n;
        at += n + 1;
        v->score[i] = d->scores ? d->scores[i] : 0.0f;
        int32_t t = d->types ? d->types[i] : DV_TOKEN_NORMAL;
        /* unknown type values count as undefined, as in llama.cpp */
        v->type[i] = (uint8_t)(t >= 0 && t < DV_TOKEN_TYPE_COUNT
                                   ? t : DV_TOKEN_UNDEFINED);
    }
}

dv_status dv_vocab_from_arrays(const struct dv_vocab_desc *d,
                               struct dv_vocab **out)
{
    *out = NULL;
    const char *path = d->path ? d->path : "vocab";
    dv_status s = desc_check(d, path);
    if (s) return s;
    size_t bytes = 0;
    for (int32_t i = 0; i < d->n; i++) bytes += desc_len(d, i) + 1;
    struct dv_vocab *v = vocab_alloc(d->n, bytes);
    if (!v)
        return dv_fail(DV_E_NOMEM, "%s: out of memory for a vocab of %d",
                       path, d->n);
    copy_tokens(v, d);
    s = build_table(v, path);
    if (s) {
        dv_vocab_free(v);
        return s;
    }
    v->bos = d->bos;
    v->eos = d->eos;
    v->unk = d->unk;
    v->add_bos = d->add_bos;
    v->add_space_prefix = d->add_space_prefix;
    build_byte_table(v);
    *out = v;
    return DV_OK;
}

/* ---- loading from GGUF ------------------------------------------------ */

/* Arrays decoded from the GGUF metadata; freed with load_free(). */
struct load_arrays {
    const char **tokens; /* [n] borrowed from the mapping */
    size_t *lens;        /* [n] */
    float *scores;       /* [n] or NULL */
    int32_t *types;      /* [n] or NULL */
};

static void load_free(struct load_arrays *a)
{
    free(a->tokens);
    free(a->lens);
    free(a->scores);
    free(a->types);
}

/* Little-endian 32-bit element i of packed GGUF array data (which need not
 * be aligned inside the mapping). */
static uint32_t le32_at(const void *data, uint64_t i)
{
    const unsigned char *p = (const unsigned char *)data + 4 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* tokenizer.ggml.model must be "llama": other models (gpt2 = BPE, t5 = UGM,
 * ...) tokenize by different rules. */
static dv_status check_model(const struct dv_gguf *g)
{
    struct dv_gguf_str m;
    dv_status s = dv_gguf_get_str(g, "tokenizer.ggml.model", &m, true);
    if (s) return s;
    char shown[DV_GGUF_SHOW_BUF]; /* the file's bytes: escaped, one line */
    if (!dv_gguf_str_eq(m, "llama"))
        return dv_fail(DV_E_INPUT,
                       "%s: tokenizer.ggml.model is '%s', only 'llama' "
                       "(SentencePiece) is supported",
                       g->path, dv_gguf_str_show(shown, m));
    return DV_OK;
}

/* tokenizer.ggml.tokens (required) into d->tokens, d->lens, d->n. */
static dv_status read_tokens(const struct dv_gguf *g, struct load_arrays *a,
                             struct dv_vocab_desc *d)
{
    const struct dv_gguf_value *arr = NULL;
    dv_status s = dv_gguf_get_arr(g, "tokenizer.ggml.tokens", DV_GGUF_STRING,
                                  &arr, true);
    if (s) return s;
    uint64_t n = arr->v.arr.n;
    if (n == 0 || n > INT32_MAX)
        return dv_fail(DV_E_INPUT, "%s: tokenizer.ggml.tokens has %llu tokens",
                       g->path, (unsigned long long)n);
    a->tokens = malloc(n * sizeof *a->tokens);
    a->lens = malloc(n * sizeof *a->lens);
    if (!a->tokens || !a->lens)
        return dv_fail(DV_E_NOMEM, "%s: out of memory for %llu tokens",
                       g->path, (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        a->tokens[i] = arr->v.arr.strs[i].ptr;
        a->lens[i] = (size_t)arr->v.arr.strs[i].len;
    }
    d->n = (int32_t)n;
    d->tokens = a->tokens;
    d->lens = a->lens;
    return DV_OK;
}

/* Optional 32-bit array `key` of d->n elements: *out is NULL when absent,
 * else n decoded elements (floats for FLOAT32, int32 otherwise). `elem` is
 * the element type wanted; for scores an INT32 array is accepted too and
 * converted, as llama.cpp does. */
static dv_status read_arr32(const struct dv_gguf *g, const char *key,
                            int elem, int32_t n, void **out)
{
    const struct dv_gguf_value *arr = NULL;
    dv_status s = dv_gguf_get_arr(g, key, DV_GGUF_VTYPE_COUNT, &arr, false);
    if (s || !arr) return s;
    int t = arr->v.arr.type;
    bool int_scores = elem == DV_GGUF_FLOAT32 && t == DV_GGUF_INT32;
    if (t != elem && !int_scores)
        return dv_fail(DV_E_INPUT,
                       "%s: key '%s' is an array of %s, expected %s", g->path,
                       key, dv_gguf_vtype_name(t),
                       dv_gguf_vtype_name(elem));
    if (arr->v.arr.n != (uint64_t)n)
        return dv_fail(DV_E_INPUT,
                       "%s: key '%s' has %llu elements for %d tokens", g->path,
                       key, (unsigned long long)arr->v.arr.n, n);
    uint32_t *dst = malloc((size_t)n * 4);
    if (!dst)
        return dv_fail(DV_E_NOMEM, "%s: out of memory for '%s'", g->path, key);
    for (int32_t i = 0; i < n; i++) {
        uint32_t w = le32_at(arr->v.arr.data, (uint64_t)i);
        if (int_scores) {
            float f = (float)(int32_t)w;
            memcpy(&w, &f, 4);
        }
        dst[i] = w; /* float and int32 bits alike */
    }
    *out = dst;
    return DV_OK;
}

/* Special token id `key`: absent -> dflt when dflt < n, else -1; present ->
 * must be in [0, n). */
static dv_status read_special(const struct dv_gguf *g, const char *key,
                              int32_t dflt, int32_t n, int32_t *out)
{
    int64_t id = INT64_MIN;
    dv_status s = dv_gguf_get_i64(g, key, &id, false);
    if (s) return s;
    if (id == INT64_MIN) {
        *out = dflt < n ? dflt : -1;
        return DV_OK;
    }
    if (id < 0 || id >= n)
        return dv_fail(DV_E_INPUT,
                       "%s: key '%s' is %lld, outside the vocab of %d", g->path,
                       key, (long long)id, n);
    *out = (int32_t)id;
    return DV_OK;
}

/* Scores, types, special ids and flags: everything after the token list. */
static dv_status read_rest(const struct dv_gguf *g, struct load_arrays *a,
                           struct dv_vocab_desc *d)
{
    void *scores = NULL, *types = NULL;
    dv_status s = read_arr32(g, "tokenizer.ggml.scores", DV_GGUF_FLOAT32, d->n,
                             &scores);
    a->scores = scores;
    if (!s) s = read_arr32(g, "tokenizer.ggml.token_type", DV_GGUF_INT32,
                           d->n, &types);
    a->types = types;
    /* llama.cpp's defaults for the "llama" tokenizer model */
    if (!s) s = read_special(g, "tokenizer.ggml.bos_token_id", 1, d->n,
                             &d->bos);
    if (!s) s = read_special(g, "tokenizer.ggml.eos_token_id", 2, d->n,
                             &d->eos);
    if (!s) s = read_special(g, "tokenizer.ggml.unknown_token_id", 0, d->n,
                             &d->unk);
    d->add_bos = true;
    d->add_space_prefix = true;
    if (!s) s = dv_gguf_get_bool(g, "tokenizer.ggml.add_bos_token",
                                 &d->add_bos, false);
    if (!s) s = dv_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix",
                                 &d->add_space_prefix, false);
    d->scores = a->scores;
    d->types = a->types;
    return s;
}

dv_status dv_vocab_load(const struct dv_gguf *g, struct dv_vocab **out)
{
    *out = NULL;
    struct load_arrays a = {0};
    struct dv_vocab_desc d = {.path = g->path, .bos = -1, .eos = -1, .unk = -1};
    dv_status s = check_model(g);
    if (!s) s = read_tokens(g, &a, &d);
    if (!s) s = read_rest(g, &a, &d);
    if (!s) s = dv_vocab_from_arrays(&d, out);
    load_free(&a);
    return s;
}

/* ---- accessors -------------------------------------------------------- */

int32_t dv_vocab_size(const struct dv_vocab *v) { return v->n; }
int32_t dv_vocab_bos(const struct dv_vocab *v) { return v->bos; }
int32_t dv_vocab_eos(const struct dv_vocab *v) { return v->eos; }
bool dv_vocab_add_bos(const struct dv_vocab *v) { return v->add_bos; }

const char *dv_vocab_token(const struct dv_vocab *v, int32_t id)
{
    if (!v || id < 0 || id >= v->n) return NULL;
    return v->blob + v->off[id];
}

/* ---- tokenizing ------------------------------------------------------- */

/* A piece of the text: a UTF-8 character at first, then merged runs.
 * Symbols form a doubly linked list; a merged-away symbol has n == 0. */
struct spm_sym {
    int32_t prev, next; /* -1 at the ends */
    size_t off, n;      /* byte range in the escaped text */
};

/* A candidate merge of adjacent symbols left and right. `size` is their
 * byte length when queued: if either has changed since, the entry is
 * stale. */
struct spm_bigram {
    float score; /* of the merged token */
    int32_t left, right;
    size_t size;
};

struct spm_work {
    const struct dv_vocab *v;
    char *text;               /* [len] escaped text */
    size_t len;
    struct spm_sym *sym;      /* [n_sym] */
    int32_t n_sym;
    struct spm_bigram *heap;  /* [3 * n_sym] binary max-heap */
    size_t n_heap;
};

/* Ids go to out while they fit; n counts them all. */
struct spm_emit {
    int32_t *out;
    size_t cap, n;
};

static void emit(struct spm_emit *e, int32_t id)
{
    if (e->n < e->cap) e->out[e->n] = id;
    e->n++;
}

/* Heap order of llama.cpp's llm_bigram_spm::comparator: higher score first,
 * then the lower left index. */
static bool bigram_before(const struct spm_bigram *a,
                          const struct spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(struct spm_work *w, struct spm_bigram b)
{
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
}

/* Remove and return the top; the heap must not be empty. */
static struct spm_bigram heap_pop(struct spm_work *w)
{
    struct spm_bigram top = w->heap[0];
    struct spm_bigram last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bigram_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

/* Queue the merge of symbols left and right when their joined text is a
 * token. The heap cannot overflow: n_sym - 1 seeds plus 2 per merge, and
 * there are at most n_sym - 1 merges. */
static void try_add_bigram(struct spm_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) return;
    size_t size = w->sym[left].n + w->sym[right].n;
    int32_t id = vocab_find(w->v, w->text + w->sym[left].off, size);
    if (id < 0) return;
    heap_push(w, (struct spm_bigram){w->v->score[id], left, right, size});
}

/* Split the escaped text into UTF-8 characters: the length comes from the
 * lead byte alone (llama.cpp's unicode_len_utf8: continuation bytes count
 * 1), clamped at the end of the text. */
static void split_chars(struct spm_work *w)
{
    static const uint8_t lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                         1, 1, 1, 1, 2, 2, 3, 4};
    size_t off = 0;
    int32_t i = 0;
    while (off < w->len) {
        size_t n = lead_len[(unsigned char)w->text[off] >> 4];
        if (n > w->len - off) n = w->len - off;
        w->sym[i] = (struct spm_sym){i - 1, -1, off, n};
        off += n;
        if (off < w->len) w->sym[i].next = i + 1;
        i++;
    }
    w->n_sym = i;
}

/* Merge the best-scoring adjacent pair until no pair forms a token. */
static void merge_symbols(struct spm_work *w)
{
    for (int32_t i = 1; i < w->n_sym; i++) try_add_bigram(w, i - 1, i);
    while (w->n_heap > 0) {
        struct spm_bigram b = heap_pop(w);
        struct spm_sym *l = &w->sym[b.left], *r = &w->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = b.left;
        try_add_bigram(w, l->prev, b.left);
        try_add_bigram(w, b.left, l->next);
    }
}

/* Emit the ids of the merged symbols: the token of a symbol's text, else
 * its bytes one by one. (llama.cpp's resegment() also consults the merge
 * history, but a merged symbol is always a token, so only single characters
 * reach the byte fallback.) */
static dv_status emit_symbols(const struct spm_work *w, struct spm_emit *e)
{
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        const struct spm_sym *s = &w->sym[i];
        int32_t id = vocab_find(w->v, w->text + s->off, s->n);
        if (id >= 0) {
            emit(e, id);
            continue;
        }
        for (size_t k = 0; k < s->n; k++) {
            unsigned char b = (unsigned char)w->text[s->off + k];
            if (w->v->byte_tok[b] < 0)
                return dv_fail(DV_E_INPUT,
                               "vocab has no token for byte 0x%02X and no "
                               "unknown token", b);
            emit(e, w->v->byte_tok[b]);
        }
    }
    return DV_OK;
}

/* The text with the space prefix added and every ' ' as U+2581; the caller
 * frees it. NULL when out of memory. */
static char *escape_text(const struct dv_vocab *v, const char *text,
                         size_t len, size_t *out_len)
{
    char *t = malloc(3 * (len + 1));
    if (!t) return NULL;
    size_t n = 0;
    if (v->add_space_prefix) {
        memcpy(t, SPM_SPACE, SPM_SPACE_LEN);
        n = SPM_SPACE_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(t + n, SPM_SPACE, SPM_SPACE_LEN);
            n += SPM_SPACE_LEN;
        } else {
            t[n++] = text[i];
        }
    }
    *out_len = n;
    return t;
}

/* Tokenize len > 0 bytes of text, appending to e. */
static dv_status spm_tokenize(const struct dv_vocab *v, const char *text,
                              size_t len, struct spm_emit *e)
{
    /* symbol indices are int32_t, and the escaped text is <= 3 (len + 1) */
    if (len > (INT32_MAX - 3) / 3)
        return dv_fail(DV_E_USAGE, "dv_tokenize: text of %zu bytes is too long",
                       len);
    struct spm_work w = {.v = v};
    w.text = escape_text(v, text, len, &w.len);
    w.sym = malloc(w.len * sizeof *w.sym);
    w.heap = malloc(3 * w.len * sizeof *w.heap);
    dv_status s = DV_OK;
    if (!w.text || !w.sym || !w.heap) {
        s = dv_fail(DV_E_NOMEM, "dv_tokenize: out of memory for %zu bytes",
                    len);
    } else {
        split_chars(&w);
        merge_symbols(&w);
        s = emit_symbols(&w, e);
    }
    free(w.text);
    free(w.sym);
    free(w.heap);
    return s;
}

dv_status dv_tokenize(const struct dv_vocab *v, const char *text, size_t len,
                      bool add_bos, int32_t *out, size_t cap, size_t *n)
{
    if (!v || !n || (!text && len > 0) || (!out && cap > 0))
        return dv_fail(DV_E_USAGE, "dv_tokenize: NULL argument");
    struct spm_emit e = {out, cap, 0};
    if (add_bos && v->bos >= 0) emit(&e, v->bos);
    /* llama.cpp makes no fragment of empty text: no space prefix either */
    dv_status s = len > 0 ? spm_tokenize(v, text, len, &e) : DV_OK;
    *n = e.n;
    if (s) return s;
    if (e.n > cap)
        return dv_fail(DV_E_USAGE, "dv_tokenize: %zu ids do not fit in %zu",
                       e.n, cap);
    return DV_OK;
}

/* ---- pieces ----------------------------------------------------------- */

/* Bytes written to buf while they fit (keeping room for the NUL); n counts
 * them all. */
struct piece_out {
    char *buf;
    size_t cap, n;
};

static void piece_put(struct piece_out *p, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++, p->n++)
        if (p->n + 1 < p->cap) p->buf[p->n] = s[i];
}

/* The text with every U+2581 turned back into a space. */
static void put_unescaped(struct piece_out *p, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= SPM_SPACE_LEN &&
            memcmp(s + i, SPM_SPACE, SPM_SPACE_LEN) == 0) {
            piece_put(p, " ", 1);
            i += SPM_SPACE_LEN;
        } else {
            piece_put(p, s + i++, 1);
        }
    }
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xXX>" token text, or -1 when s is not one. */
static int byte_token_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

int dv_vocab_piece(const struct dv_vocab *v, int32_t id, char *buf,
                   size_t cap)
{
    if (buf && cap > 0) buf[0] = '\0';
    if (!v || id < 0 || id >= v->n) return -1;
    struct piece_out p = {buf, buf ? cap : 0, 0};
    const char *s = v->blob + v->off[id];
    size_t len = v->len[id];
    int byte;
    switch (v->type[id]) {
    case DV_TOKEN_NORMAL:
        put_unescaped(&p, s, len);
        break;
    case DV_TOKEN_USER_DEFINED:
        piece_put(&p, s, len);
        break;
    case DV_TOKEN_BYTE:
        byte = byte_token_value(s, len);
        if (byte >= 0) {
            char c = (char)byte;
            piece_put(&p, &c, 1);
        } else {
            put_unescaped(&p, s, len); /* malformed: print what it says */
        }
        break;
    default: /* control, unknown, unused, undefined: nothing */
        break;
    }
    if (p.cap > 0) p.buf[p.n < p.cap ? p.n : p.cap - 1] = '\0';
    return (int)p.n;
}
