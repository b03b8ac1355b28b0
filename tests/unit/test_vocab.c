/*
 * test_vocab.c - the SPM tokenizer against llama.cpp's own test vectors, and
 * small hand-built vocabs for each rule (merge order, ties, byte fallback,
 * unknown token, pieces, BOS, output capacity) and for bad metadata.
 *
 * The llama.cpp vectors are fixtures/data/ggml-vocab-llama-spm.gguf.inp/.out
 * (from llama.cpp's models/ folder): inputs separated by
 * "\n__ggml_vocab_test__\n", one line of space-separated ids per input,
 * tokenized without BOS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "gguf.h"
#include "vocab.h"

#define SP "\xe2\x96\x81" /* U+2581 */
#define SENTINEL 0x5a5a5a5a
#define MAX_IDS 256

/* ---- helpers ---------------------------------------------------------- */

/* $DV_FIXTURES/data/name into buf. */
static void fixture_path(char *buf, size_t cap, const char *name)
{
    const char *dir = getenv("DV_FIXTURES");
    if (!dir || !*dir) dir = "/work/main/fixtures";
    snprintf(buf, cap, "%s/data/%s", dir, name);
}

/* The whole file, NUL-terminated (the NUL not counted in *len). */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Tokenize len bytes of text and compare with want[0..n_want). */
static void check_ids(const struct dv_vocab *v, const char *text, size_t len,
                      bool bos, const int32_t *want, size_t n_want)
{
    int32_t got[MAX_IDS];
    size_t n = 0;
    assert_int_equal(dv_tokenize(v, text, len, bos, got, MAX_IDS, &n), DV_OK);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) assert_int_equal(got[i], want[i]);
}

#define CHECK(v, text, bos, ...)                                           \
    do {                                                                   \
        const int32_t want_[] = {__VA_ARGS__};                             \
        check_ids(v, text, sizeof(text) - 1, bos, want_,                   \
                  sizeof want_ / sizeof want_[0]);                         \
    } while (0)

/* A hand-built token: text (may hold NULs when len is given), score, type. */
struct tok {
    const char *text;
    size_t len; /* 0: strlen(text) */
    float score;
    int32_t type;
};

/* A vocab of the n tokens in t with ids bos, eos, unk (-1: none). */
static struct dv_vocab *make_vocab(const struct tok *t, int32_t n,
                                   int32_t bos, int32_t unk,
                                   bool space_prefix)
{
    const char *texts[64];
    size_t lens[64];
    float scores[64];
    int32_t types[64];
    assert_true(n <= 64);
    for (int32_t i = 0; i < n; i++) {
        texts[i] = t[i].text;
        lens[i] = t[i].len ? t[i].len : strlen(t[i].text);
        scores[i] = t[i].score;
        types[i] = t[i].type;
    }
    struct dv_vocab_desc d = {
        .path = "hand.gguf", .n = n, .tokens = texts, .lens = lens,
        .scores = scores, .types = types, .bos = bos, .eos = -1, .unk = unk,
        .add_bos = true, .add_space_prefix = space_prefix,
    };
    struct dv_vocab *v = NULL;
    assert_int_equal(dv_vocab_from_arrays(&d, &v), DV_OK);
    assert_non_null(v);
    return v;
}

#define N_OF(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

/* ---- llama.cpp's test vectors ----------------------------------------- */

/* Parse one line of space-separated ids into ids; returns the count. */
static size_t parse_ids(const char *line, size_t len, int32_t *ids)
{
    size_t n = 0;
    const char *p = line, *end = line + len;
    while (p < end) {
        char *next;
        long id = strtol(p, &next, 10);
        if (next == p) break;
        assert_true(n < MAX_IDS);
        ids[n++] = (int32_t)id;
        p = next;
    }
    return n;
}

/* Compare one input with its expected line; prints and counts a mismatch. */
static int check_vector(const struct dv_vocab *v, int idx, const char *text,
                        size_t len, const char *line, size_t line_len)
{
    int32_t want[MAX_IDS], got[MAX_IDS];
    size_t n_want = parse_ids(line, line_len, want), n_got = 0;
    assert_int_equal(dv_tokenize(v, text, len, false, got, MAX_IDS, &n_got),
                     DV_OK);
    bool same = n_got == n_want &&
                memcmp(got, want, n_got * sizeof got[0]) == 0;
    if (!same)
        print_message("vector %d (%zu bytes): got %zu ids, want %zu (%.*s)\n",
                      idx, len, n_got, n_want,
                      (int)(line_len > 200 ? 200 : line_len), line);
    return same ? 0 : 1;
}

static void test_llama_spm_vectors(void **state)
{
    char path[4096], inp_path[4200], out_path[4200];
    fixture_path(path, sizeof path, "ggml-vocab-llama-spm.gguf");
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    struct dv_gguf *g = NULL;
    struct dv_vocab *v = NULL;
    assert_int_equal(dv_gguf_open(path, &g), DV_OK);
    assert_int_equal(dv_vocab_load(g, &v), DV_OK);
    dv_gguf_free(g); /* the vocab must not borrow from the file */
    assert_int_equal(dv_vocab_size(v), 32000);

    size_t inp_len, out_len;
    char *inp = read_all(inp_path, &inp_len);
    char *out = read_all(out_path, &out_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof sep - 1;
    char *p = inp, *line = out;
    int n_cases = 0, n_bad = 0;
    for (char *s; (s = memmem(p, inp_len - (size_t)(p - inp), sep, sep_len));
         p = s + sep_len) {
        char *nl = memchr(line, '\n', out_len - (size_t)(line - out));
        assert_non_null(nl); /* as many output lines as inputs */
        n_bad += check_vector(v, n_cases, p, (size_t)(s - p), line,
                              (size_t)(nl - line));
        line = nl + 1;
        n_cases++;
    }
    assert_int_equal(p - inp, (ptrdiff_t)inp_len); /* ends with a separator */
    assert_int_equal(line - out, (ptrdiff_t)out_len);
    assert_int_equal(n_cases, 46);
    assert_int_equal(n_bad, 0);
    free(inp);
    free(out);
    dv_vocab_free(v);
}

/* Metadata, BOS and pieces of the real llama vocab. */
static void test_llama_spm_specials(void **state)
{
    char path[4096], buf[32];
    fixture_path(path, sizeof path, "ggml-vocab-llama-spm.gguf");
    struct dv_gguf *g = NULL;
    struct dv_vocab *v = NULL;
    assert_int_equal(dv_gguf_open(path, &g), DV_OK);
    assert_int_equal(dv_vocab_load(g, &v), DV_OK);
    dv_gguf_free(g);
    assert_int_equal(dv_vocab_bos(v), 1);
    assert_int_equal(dv_vocab_eos(v), 2);
    assert_true(dv_vocab_add_bos(v));
    /* ids from the .out file: "Hello world" is 15043 3186 */
    CHECK(v, "Hello world", true, 1, 15043, 3186);
    assert_string_equal(dv_vocab_token(v, 15043), SP "Hello");
    assert_int_equal(dv_vocab_piece(v, 15043, buf, sizeof buf), 6);
    assert_string_equal(buf, " Hello");
    assert_int_equal(dv_vocab_piece(v, 13, buf, sizeof buf), 1); /* <0x0A> */
    assert_string_equal(buf, "\n");
    assert_int_equal(dv_vocab_piece(v, 1, buf, sizeof buf), 0); /* <s> */
    assert_int_equal(dv_vocab_piece(v, 0, buf, sizeof buf), 0); /* <unk> */
    assert_int_equal(dv_vocab_piece(v, 32000, buf, sizeof buf), -1);
    assert_null(dv_vocab_token(v, -1));
    dv_vocab_free(v);
}

/* Pieces of the ids concatenated into buf; returns the length. */
static size_t detokenize(const struct dv_vocab *v, const int32_t *ids,
                         size_t n, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int k = dv_vocab_piece(v, ids[i], buf + len, cap - len);
        assert_true(k >= 0 && (size_t)k < cap - len);
        len += (size_t)k;
    }
    return len;
}

/* Every byte has a <0xXX> token in the llama vocab, so the pieces of the
 * ids of any valid UTF-8 text give back the text with the space prefix:
 * random strings from a fixed seed mixing words, spaces, multi-byte
 * characters and any ASCII byte including NUL. (Not broken UTF-8: a lead
 * byte before a space swallows part of its U+2581, as in llama.cpp; see
 * test_byte_fallback.) */
static void test_llama_spm_roundtrip(void **state)
{
    static const char *const parts[] = {" ", "  ", "a", "the", "\xc3\xa9",
                                        "\xd0\x91", "\xf0\x9f\xa6\x99",
                                        "\xe6\x88\x91", "\n", "\t", "7", "ing"};
    char path[4096], text[256], back[1024];
    fixture_path(path, sizeof path, "ggml-vocab-llama-spm.gguf");
    struct dv_gguf *g = NULL;
    struct dv_vocab *v = NULL;
    assert_int_equal(dv_gguf_open(path, &g), DV_OK);
    assert_int_equal(dv_vocab_load(g, &v), DV_OK);
    dv_gguf_free(g);
    uint64_t seed = 20240521;
    for (int it = 0; it < 2000; it++) {
        size_t len = 0;
        for (int k = 0; k < 24; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(seed >> 33);
            const char *p = parts[r % 12];
            if (r % 7 == 0) text[len++] = (char)((r >> 8) & 0x7f);
            else while (*p) text[len++] = *p++;
        }
        int32_t ids[MAX_IDS];
        size_t n = 0;
        assert_int_equal(dv_tokenize(v, text, len, false, ids, MAX_IDS, &n),
                         DV_OK);
        size_t back_len = detokenize(v, ids, n, back, sizeof back);
        assert_int_equal(back_len, len + 1);
        assert_int_equal(back[0], ' ');
        assert_memory_equal(back + 1, text, len);
    }
    dv_vocab_free(v);
}

/* ---- hand-built vocabs ------------------------------------------------ */

enum { N = DV_TOKEN_NORMAL, B = DV_TOKEN_BYTE, C = DV_TOKEN_CONTROL,
       U = DV_TOKEN_UNKNOWN, UD = DV_TOKEN_USER_DEFINED };

/* The pair whose merged token scores highest is merged first. */
static void test_merge_order(void **state)
{
    const struct tok t[] = {
        {"a", 0, -10, N}, {"b", 0, -10, N}, {"c", 0, -10, N},
        {"ab", 0, -2, N}, {"bc", 0, -1, N},
    };
    struct dv_vocab *v = make_vocab(t, N_OF(t), -1, -1, false);
    /* bc beats ab although ab is further left */
    CHECK(v, "abc", false, 0, 4);
    dv_vocab_free(v);

    const struct tok t2[] = {
        {"a", 0, -10, N}, {"b", 0, -10, N}, {"c", 0, -10, N},
        {"ab", 0, -1, N}, {"bc", 0, -2, N}, {"abc", 0, -5, N},
    };
    v = make_vocab(t2, N_OF(t2), -1, -1, false);
    /* ab first, then ab+c forms abc */
    CHECK(v, "abc", false, 5);
    CHECK(v, "cab", false, 2, 3);
    dv_vocab_free(v);
}

/* Equal scores: the leftmost pair wins. */
static void test_merge_tie_left(void **state)
{
    const struct tok t[] = {
        {"a", 0, -10, N}, {"b", 0, -10, N}, {"c", 0, -10, N},
        {"ab", 0, -1, N}, {"bc", 0, -1, N}, {"aa", 0, -3, N},
    };
    struct dv_vocab *v = make_vocab(t, N_OF(t), -1, -1, false);
    CHECK(v, "abc", false, 3, 2);
    CHECK(v, "aaa", false, 5, 0);
    CHECK(v, "aaaa", false, 5, 5);
    dv_vocab_free(v);
}

/* The space prefix, ' ' -> U+2581, and no prefix for empty text. */
static void test_space_prefix(void **state)
{
    const struct tok t[] = {
        {"<unk>", 0, 0, U}, {"<s>", 0, 0, C}, {SP, 0, -5, N},
        {"a", 0, -5, N},    {SP "a", 0, -1, N}, {SP SP, 0, -2, N},
    };
    struct dv_vocab *v = make_vocab(t, N_OF(t), 1, 0, true);
    CHECK(v, "a a", false, 4, 4);
    CHECK(v, " a", false, 2, 4); /* "▁▁a": ▁a outscores leftmost ▁▁ */
    int32_t ids[4] = {SENTINEL, SENTINEL};
    size_t n = 99;
    assert_int_equal(dv_tokenize(v, "", 0, false, ids, 4, &n), DV_OK);
    assert_int_equal(n, 0);
    assert_int_equal(dv_tokenize(v, NULL, 0, true, ids, 4, &n), DV_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], SENTINEL);
    dv_vocab_free(v);

    v = make_vocab(t, N_OF(t), 1, 0, false);
    CHECK(v, "a a", false, 3, 4);
    dv_vocab_free(v);
}

/* Characters that are not tokens: <0xXX> tokens, then 1-byte tokens, then
 * the unknown token; invalid UTF-8 is cut by the lead byte. */
static void test_byte_fallback(void **state)
{
    const struct tok t[] = {
        {"<unk>", 0, 0, U}, {"<0xC3>", 0, 0, B}, {"<0x61>", 0, 0, B},
        {"a", 0, -1, N},    {"\xa9", 0, 0, N},   {"<0xE2>", 0, 0, B},
    };
    struct dv_vocab *v = make_vocab(t, N_OF(t), -1, 0, false);
    CHECK(v, "a", false, 3);
    /* "é" = c3 a9: <0xC3>, then the 1-byte token "\xa9" */
    CHECK(v, "\xc3\xa9", false, 1, 4);
    /* "ü" = c3 bc: no token for bc at all -> unknown */
    CHECK(v, "\xc3\xbc", false, 1, 0);
    /* e2 claims 3 bytes: the symbol is "\xe2" "a", and both bytes fall
     * back, so 'a' becomes <0x61>, not the token "a" (as in llama.cpp) */
    CHECK(v, "a\xe2" "a", false, 3, 5, 2);
    /* a lone continuation byte is a character of its own */
    CHECK(v, "\xa9" "a", false, 4, 3);
    /* the space is escaped first, so c3 takes the first byte of U+2581
     * (e2 96 81) and the other two become characters of their own */
    CHECK(v, "\xc3 ", false, 1, 5, 0, 0);
    dv_vocab_free(v);

    /* no unknown token: a byte without a token is an error */
    v = make_vocab(t, N_OF(t), -1, -1, false);
    int32_t ids[8];
    size_t n;
    assert_int_equal(dv_tokenize(v, "\xc3\xbc", 2, false, ids, 8, &n),
                     DV_E_INPUT);
    dv_vocab_free(v);
}

/* Token texts are byte strings: NUL inside a token and inside the text. */
static void test_nul_bytes(void **state)
{
    const struct tok t[] = {
        {"a", 0, -5, N}, {"b", 0, -5, N}, {"\0", 1, -5, N},
        {"a\0", 2, -2, N}, {"a\0b", 3, -1, N},
    };
    struct dv_vocab *v = make_vocab(t, N_OF(t), -1, -1, false);
    const int32_t want[] = {4, 1};
    check_ids(v, "a\0bb", 4, false, want, 2);
    assert_int_equal(memcmp(dv_vocab_token(v, 4), "a\0b", 4), 0);
    dv_vocab_free(v);
}

/* BOS first when asked and when there is one. */
static void test_add_bos(void **state)
{
    const struct tok t[] = {{"<unk>", 0, 0, U}, {"<s>", 0, 0, C},
                            {"x", 0, 0, N}};
    struct dv_vocab *v = make_vocab(t, N_OF(t), 1, 0, false);
    CHECK(v, "x", true, 1, 2);
    CHECK(v, "x", false, 2);
    dv_vocab_free(v);
    v = make_vocab(t, N_OF(t), -1, 0, false);
    assert_int_equal(dv_vocab_bos(v), -1);
    CHECK(v, "x", true, 2);
    dv_vocab_free(v);
}

/* Too small an output: DV_E_USAGE, the full count, ids up to cap. */
static void test_cap_too_small(void **state)
{
    const struct tok t[] = {{"<s>", 0, 0, C}, {"x", 0, 0, N}, {"y", 0, 0, N}};
    struct dv_vocab *v = make_vocab(t, N_OF(t), 0, -1, false);
    int32_t ids[4] = {SENTINEL, SENTINEL, SENTINEL, SENTINEL};
    size_t n = 0;
    assert_int_equal(dv_tokenize(v, "xyx", 3, true, ids, 2, &n), DV_E_USAGE);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    assert_int_equal(ids[2], SENTINEL);
    assert_int_equal(dv_tokenize(v, "xyx", 3, false, NULL, 0, &n), DV_E_USAGE);
    assert_int_equal(n, 3);
    assert_int_equal(dv_tokenize(v, "xyx", 3, false, ids, 3, &n), DV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[3], SENTINEL);
    dv_vocab_free(v);
}

/* Pieces: ▁ -> ' ', <0x0A> -> '\n', control and unknown -> "", user-defined
 * as stored, truncation keeps the full length and a NUL. */
static void test_pieces(void **state)
{
    const struct tok t[] = {
        {"<unk>", 0, 0, U},    {"<s>", 0, 0, C},       {SP "a" SP, 0, 0, N},
        {"<0x0A>", 0, 0, B},   {SP "u", 0, 0, UD},     {"", 0, 0, N},
        {"<0xZZ>", 0, 0, B},   {"z", 0, 0, DV_TOKEN_UNUSED},
    };
    struct dv_vocab *v = make_vocab(t, N_OF(t), 1, 0, true);
    char buf[16];
    assert_int_equal(dv_vocab_piece(v, 2, buf, sizeof buf), 3);
    assert_string_equal(buf, " a ");
    assert_int_equal(dv_vocab_piece(v, 3, buf, sizeof buf), 1);
    assert_string_equal(buf, "\n");
    assert_int_equal(dv_vocab_piece(v, 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(dv_vocab_piece(v, 1, buf, sizeof buf), 0);
    assert_int_equal(dv_vocab_piece(v, 4, buf, sizeof buf), 4);
    assert_string_equal(buf, SP "u");
    assert_int_equal(dv_vocab_piece(v, 6, buf, sizeof buf), 6);
    assert_string_equal(buf, "<0xZZ>");
    assert_int_equal(dv_vocab_piece(v, 7, buf, sizeof buf), 0);
    /* an empty token gets llama.cpp's name for it */
    assert_string_equal(dv_vocab_token(v, 5), "[EMPTY_5]");
    buf[2] = 'X';
    assert_int_equal(dv_vocab_piece(v, 2, buf, 2), 3);
    assert_string_equal(buf, " ");
    assert_int_equal(buf[2], 'X');
    assert_int_equal(dv_vocab_piece(v, 2, NULL, 0), 3);
    assert_int_equal(dv_vocab_piece(v, 8, buf, sizeof buf), -1);
    assert_string_equal(dv_vocab_token(v, 2), SP "a" SP);
    dv_vocab_free(v);
}

/* from_arrays refuses duplicates and out-of-range ids. */
static void test_bad_arrays(void **state)
{
    const char *texts[] = {"a", "b", "a"};
    struct dv_vocab_desc d = {.path = "dup.gguf", .n = 3, .tokens = texts,
                              .bos = -1, .eos = -1, .unk = -1};
    struct dv_vocab *v = (struct dv_vocab *)&d;
    assert_int_equal(dv_vocab_from_arrays(&d, &v), DV_E_INPUT);
    assert_null(v);
    assert_non_null(strstr(dv_errmsg(), "dup.gguf"));
    d.n = 2;
    d.eos = 2;
    assert_int_equal(dv_vocab_from_arrays(&d, &v), DV_E_INPUT);
    assert_non_null(strstr(dv_errmsg(), "eos"));
    d.eos = -1;
    assert_int_equal(dv_vocab_from_arrays(&d, &v), DV_OK);
    dv_vocab_free(v);
    dv_vocab_free(NULL);
}

/* ---- vocabs written as GGUF ------------------------------------------- */

/* What a test GGUF file holds. The zero value is a valid file with only
 * the model and the tokens; each field adds or breaks one thing. */
struct file_spec {
    const char *model;   /* NULL: "llama" */
    bool no_model;       /* leave out tokenizer.ggml.model */
    bool no_tokens;      /* leave out tokenizer.ggml.tokens */
    int n_scores;        /* 0: no scores */
    bool scores_as_i32;  /* scores written as int32 (llama.cpp takes it) */
    int n_types;         /* 0: no token_type */
    bool types_as_f32;   /* token_type written as float32 (a wrong type) */
    int64_t bos;         /* 0: no bos_token_id */
    int flags;           /* 0: no add_* keys, 1: both false, 2: both true */
};

static const char *const file_tokens[] = {"<unk>", "<s>", "</s>", SP, "a",
                                          SP "a", "<0x62>"};
#define FILE_N 7
/* one element more than tokens, for the length-mismatch cases */
static const float file_scores[FILE_N + 1] = {0, 0, 0, -3, -4, -1, 0, 0};
static const int32_t file_types[FILE_N + 1] = {U, C, C, N, N, N, B, N};

/* Write spec as a GGUF file at path. */
static void write_spec(const char *path, const struct file_spec *s)
{
    struct dv_gguf_writer *w = NULL;
    assert_int_equal(dv_gguf_writer_new(&w), DV_OK);
    if (!s->no_model)
        assert_int_equal(dv_gguf_writer_set_str(w, "tokenizer.ggml.model",
                                                s->model ? s->model : "llama"),
                         DV_OK);
    if (!s->no_tokens)
        assert_int_equal(dv_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                                    file_tokens, NULL, FILE_N),
                         DV_OK);
    if (s->n_scores > 0 && s->scores_as_i32)
        assert_int_equal(dv_gguf_writer_set_arr_i32(w, "tokenizer.ggml.scores",
                                                    file_types,
                                                    (uint64_t)s->n_scores),
                         DV_OK);
    else if (s->n_scores > 0)
        assert_int_equal(dv_gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores",
                                                    file_scores,
                                                    (uint64_t)s->n_scores),
                         DV_OK);
    if (s->n_types > 0 && s->types_as_f32)
        assert_int_equal(dv_gguf_writer_set_arr_f32(
                             w, "tokenizer.ggml.token_type", file_scores,
                             (uint64_t)s->n_types), DV_OK);
    else if (s->n_types > 0)
        assert_int_equal(dv_gguf_writer_set_arr_i32(
                             w, "tokenizer.ggml.token_type", file_types,
                             (uint64_t)s->n_types), DV_OK);
    if (s->bos > 0)
        assert_int_equal(dv_gguf_writer_set_u32(
                             w, "tokenizer.ggml.bos_token_id",
                             (uint32_t)s->bos), DV_OK);
    if (s->flags > 0) {
        bool on = s->flags == 2;
        assert_int_equal(dv_gguf_writer_set_bool(
                             w, "tokenizer.ggml.add_bos_token", on), DV_OK);
        assert_int_equal(dv_gguf_writer_set_bool(
                             w, "tokenizer.ggml.add_space_prefix", on), DV_OK);
    }
    assert_int_equal(dv_gguf_writer_write(w, path), DV_OK);
    dv_gguf_writer_free(w);
}

/* A fresh directory for one test's files; removed by tmp_done(). */
static void tmp_dir(char *dir, size_t cap)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, cap, "%s/test_vocab.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
}

static void tmp_done(const char *dir, const char *path)
{
    unlink(path);
    rmdir(dir);
}

/* Write spec, open it and load its vocab: the status of dv_vocab_load. */
static dv_status load_spec(const struct file_spec *s, struct dv_vocab **v,
                           char *path, size_t cap)
{
    char dir[512];
    tmp_dir(dir, sizeof dir);
    snprintf(path, cap, "%s/vocab.gguf", dir);
    write_spec(path, s);
    struct dv_gguf *g = NULL;
    assert_int_equal(dv_gguf_open(path, &g), DV_OK);
    dv_status st = dv_vocab_load(g, v);
    dv_gguf_free(g);
    tmp_done(dir, path);
    return st;
}

/* Defaults: no scores (all 0), no types (all normal), llama's special ids,
 * add_bos and add_space_prefix true. */
static void test_file_defaults(void **state)
{
    const struct file_spec s = {0};
    struct dv_vocab *v = NULL;
    char path[600], buf[8];
    assert_int_equal(load_spec(&s, &v, path, sizeof path), DV_OK);
    assert_int_equal(dv_vocab_size(v), FILE_N);
    assert_int_equal(dv_vocab_bos(v), 1);
    assert_int_equal(dv_vocab_eos(v), 2);
    assert_true(dv_vocab_add_bos(v));
    CHECK(v, "a", true, 1, 5);
    /* untyped, "<s>" is normal and prints as itself */
    assert_int_equal(dv_vocab_piece(v, 1, buf, sizeof buf), 3);
    dv_vocab_free(v);
}

/* The flags and scores as written. */
static void test_file_flags(void **state)
{
    const struct file_spec s = {.n_scores = FILE_N, .n_types = FILE_N,
                                .bos = 2, .flags = 1};
    struct dv_vocab *v = NULL;
    char path[600], buf[8];
    assert_int_equal(load_spec(&s, &v, path, sizeof path), DV_OK);
    assert_int_equal(dv_vocab_bos(v), 2);
    assert_false(dv_vocab_add_bos(v));
    CHECK(v, "a a", true, 2, 4, 5); /* no prefix */
    CHECK(v, "b", false, 6);        /* byte fallback */
    assert_int_equal(dv_vocab_piece(v, 1, buf, sizeof buf), 0);
    dv_vocab_free(v);
}

/* int32 scores are accepted and converted to float, as llama.cpp does. */
static void test_file_int_scores(void **state)
{
    const struct file_spec s = {.n_scores = FILE_N, .scores_as_i32 = true};
    struct dv_vocab *v = NULL;
    char path[600];
    assert_int_equal(load_spec(&s, &v, path, sizeof path), DV_OK);
    CHECK(v, "a a", false, 5, 5);
    dv_vocab_free(v);
}

/* Bad metadata: DV_E_INPUT with a message naming the file. */
static void test_file_bad(void **state)
{
    static const struct {
        struct file_spec spec;
        const char *says;
    } cases[] = {
        {{.no_tokens = true}, "tokenizer.ggml.tokens"},
        {{.n_scores = FILE_N - 1}, "scores"},
        {{.n_types = FILE_N + 1}, "token_type"},
        {{.n_types = FILE_N, .types_as_f32 = true}, "token_type"},
        {{.bos = FILE_N}, "bos_token_id"},
        {{.model = "gpt2"}, "gpt2"},
        {{.model = "sp\nm\xff"}, "tokenizer.ggml.model is 'sp\\x0am\\xff'"},
        {{.no_model = true}, "tokenizer.ggml.model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int dummy;
        struct dv_vocab *v = (struct dv_vocab *)&dummy; /* must become NULL */
        char path[600];
        assert_int_equal(load_spec(&cases[i].spec, &v, path, sizeof path),
                         DV_E_INPUT);
        assert_null(v);
        const char *msg = dv_errmsg();
        if (!strstr(msg, path) || !strstr(msg, cases[i].says) || strchr(msg, '\n'))
            fail_msg("case %zu: message '%s' lacks '%s' or '%s', or is not one line", i, msg,
                     path, cases[i].says);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_spm_vectors),
        cmocka_unit_test(test_llama_spm_specials),
        cmocka_unit_test(test_llama_spm_roundtrip),
        cmocka_unit_test(test_merge_order),
        cmocka_unit_test(test_merge_tie_left),
        cmocka_unit_test(test_space_prefix),
        cmocka_unit_test(test_byte_fallback),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_add_bos),
        cmocka_unit_test(test_cap_too_small),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_bad_arrays),
        cmocka_unit_test(test_file_defaults),
        cmocka_unit_test(test_file_flags),
        cmocka_unit_test(test_file_int_scores),
        cmocka_unit_test(test_file_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
