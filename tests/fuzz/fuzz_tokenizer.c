/*
 * fuzz_tokenizer.c - any bytes as `--prompt` text (invalid UTF-8, NULs,
 * U+2581, "<s>" included) through the SentencePiece tokenizer
 * (core/vocab.c) of two real vocabs: stories260K's 512 tokens (imported
 * from fixtures/data/tok512.bin as the CLI's importer does) and llama's
 * 32000 (fixtures/data/ggml-vocab-llama-spm.gguf). Both are loaded once.
 *
 * Input: byte 0 picks the vocab (bit 0) and BOS (bit 1); the rest is the
 * text, exactly as long as the input (ASan sees any read past it).
 * Checked: sizing and filling calls agree, a too-small buffer is refused
 * with the ids that fit, ids are in range, BOS comes first when asked,
 * every piece prints, and for valid UTF-8 without U+2581 or unknown and
 * control tokens, the pieces spell the text again (plus the prefixed
 * space), as llama.cpp's decoding of its own tokens does.
 */
#include "fuzz.h"

#include <stdbool.h>

#include "fixture.h"
#include "gguf.h"
#include "vocab.h"

enum { V_STORIES, V_LLAMA, V_COUNT };
static struct dv_vocab *vocabs[V_COUNT];
static bool space_prefix[V_COUNT]; /* the vocab prefixes a space to text */

static struct dv_vocab *load_gguf_vocab(const char *path)
{
    struct dv_gguf *g;
    struct dv_vocab *v = NULL;
    if (dv_gguf_open(path, &g) == DV_OK) {
        if (dv_vocab_load(g, &v)) v = NULL;
        dv_gguf_free(g);
    }
    if (!v) dv_fuzz_fail("cannot load the vocab of %s: %s", path, dv_errmsg());
    return v;
}

/* Pieces of ids[0..n) concatenated into a new buffer; *len its length;
 * *plain: no token printed as "" (unknown, control, unused). */
static char *decode(const struct dv_vocab *v, const int32_t *ids, size_t n, size_t *len,
                    bool *plain)
{
    size_t cap = 64, used = 0;
    char *out = malloc(cap);
    DV_FUZZ_CHECK(out, "out of memory");
    *plain = true;
    for (size_t i = 0; i < n; i++) {
        char piece[16];
        int k = dv_vocab_piece(v, ids[i], piece, sizeof piece);
        DV_FUZZ_CHECK(k >= 0, "no piece for id %d", ids[i]);
        DV_FUZZ_CHECK(strlen(piece) <= (size_t)k && strlen(piece) < sizeof piece,
                      "piece of id %d: %zu bytes written, length %d", ids[i], strlen(piece), k);
        if (k == 0) *plain = false;
        while (used + (size_t)k + 1 > cap) DV_FUZZ_CHECK(out = realloc(out, cap *= 2), "out of memory");
        if ((size_t)k < sizeof piece) memcpy(out + used, piece, (size_t)k);
        else DV_FUZZ_CHECK(dv_vocab_piece(v, ids[i], out + used, (size_t)k + 1) == k,
                           "piece of id %d changed length", ids[i]);
        used += (size_t)k;
    }
    *len = used;
    return out;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char model[4096], tok[4096], path[4096];
    dv_fuzz_fixture(model, sizeof model, "stories260K.bin");
    dv_fuzz_fixture(tok, sizeof tok, "tok512.bin");
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/dv-fuzz-stories-%d.gguf", tmp && tmp[0] ? tmp : "/tmp",
             (int)getpid());
    if (dv_import_llama2c(model, tok, path)) dv_fuzz_fail("import: %s", dv_errmsg());
    vocabs[V_STORIES] = load_gguf_vocab(path);
    unlink(path);
    dv_fuzz_fixture(path, sizeof path, "ggml-vocab-llama-spm.gguf");
    vocabs[V_LLAMA] = load_gguf_vocab(path);
    for (int i = 0; i < V_COUNT; i++) {
        int32_t ids[8];
        size_t n, len;
        bool plain;
        if (dv_tokenize(vocabs[i], "a", 1, false, ids, 8, &n)) dv_fuzz_fail("tokenize 'a'");
        char *s = decode(vocabs[i], ids, n, &len, &plain);
        space_prefix[i] = len == 2 && !memcmp(s, " a", 2);
        free(s);
    }
    return 0;
}

/* Whether s[0..n) is valid UTF-8 (shortest forms, no surrogates). */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xc2)) return false;
        uint32_t cp = k == 1 ? c : c & (0x7f >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
            (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += k;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const int which = data[0] & 1 ? V_LLAMA : V_STORIES;
    const bool add_bos = data[0] & 2;
    const struct dv_vocab *v = vocabs[which];
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    const int32_t V = dv_vocab_size(v), bos = dv_vocab_bos(v);

    size_t n = 0;
    dv_status s = dv_tokenize(v, text, len, add_bos, NULL, 0, &n);
    DV_FUZZ_CHECK(n == 0 ? s == DV_OK : s == DV_E_USAGE, "sizing call: status %s for %zu ids",
                  dv_status_name(s), n);
    DV_FUZZ_CHECK(n >= (size_t)(add_bos && bos >= 0) + (len > 0), "%zu ids for %zu bytes", n, len);
    /* at most one id per byte of the text with its spaces escaped (3 bytes
     * each) and the prefixed one, plus BOS */
    DV_FUZZ_CHECK(n <= 3 * (len + 1) + 1, "%zu ids for %zu bytes", n, len);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    DV_FUZZ_CHECK(ids, "out of memory");
    size_t n2 = 0;
    DV_FUZZ_CHECK(dv_tokenize(v, text, len, add_bos, ids, n, &n2) == DV_OK && n2 == n,
                  "filling call: %zu ids, sizing said %zu", n2, n);
    for (size_t i = 0; i < n; i++) DV_FUZZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d of %d", ids[i], V);
    if (add_bos && bos >= 0) DV_FUZZ_CHECK(ids[0] == bos, "first id %d, BOS %d", ids[0], bos);
    if (n > 1) { /* one id short: refused, the ids that fit written */
        int32_t *part = malloc(n * sizeof *part);
        DV_FUZZ_CHECK(part, "out of memory");
        part[n - 1] = -7;
        DV_FUZZ_CHECK(dv_tokenize(v, text, len, add_bos, part, n - 1, &n2) == DV_E_USAGE && n2 == n,
                      "a buffer one id short was not refused");
        DV_FUZZ_CHECK(!memcmp(part, ids, (n - 1) * sizeof *ids) && part[n - 1] == -7,
                      "a short buffer got other ids, or one past its end");
        free(part);
    }
    const size_t skip = add_bos && bos >= 0 ? 1 : 0;
    size_t dlen;
    bool plain;
    char *back = decode(v, ids + skip, n - skip, &dlen, &plain);
    if (plain && len > 0 && valid_utf8((const unsigned char *)text, len) &&
        !memmem(text, len, "\xe2\x96\x81", 3)) {
        const size_t pre = space_prefix[which];
        DV_FUZZ_CHECK(dlen == len + pre && (!pre || back[0] == ' ') && !memcmp(back + pre, text, len),
                      "%s vocab: the pieces of %zu ids do not spell the %zu-byte text",
                      which == V_LLAMA ? "llama" : "stories260K", n - skip, len);
    }
    free(back);
    free(ids);
    return 0;
}
