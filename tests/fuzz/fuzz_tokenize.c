/* Encoding and decoding arbitrary bytes with real tokenizers loaded once:
 * the InternLM2 tokenizer.model ($ILM_SHARED_DATA, else the trainer's
 * fixture) and a byte-level BPE tokenizer.json (bbpe_llama3 fixture).
 * Byte 0 picks the tokenizer and the flags; the rest is the text.  Checks
 * what the header promises: ids inside the vocabulary, and a streaming
 * decoder's output equal to ilm_tokenizer_decode of the same ids.  The
 * same bytes read as ids are decoded too (ILM_ERR_RANGE for bad ones). */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static ilm_tokenizer *g_tok[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    if (ilm_tokenizer_load(fuzz_spm_path(1), &g_tok[0]) != ILM_OK ||
        ilm_tokenizer_load("tests/fixtures/tokenizer/bbpe_llama3.json", &g_tok[1]) != ILM_OK)
        fuzz_fail("tokenizer", ilm_last_error());
    return 0;
}

/* Decodes ids whole and streamed with the same flags; the two must agree. */
static void decode_both(const ilm_tokenizer *t, const int32_t *ids, size_t n, unsigned flags)
{
    char *whole = NULL;
    size_t len = 0;
    ilm_status s = ilm_tokenizer_decode(t, ids, n, flags, &whole, &len);
    int32_t V = ilm_tokenizer_vocab_size(t);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= ids[i] < 0 || ids[i] >= V;
    if (bad) {
        if (s != ILM_ERR_RANGE) fuzz_fail("decode", "an id outside the vocabulary is not ILM_ERR_RANGE");
        ilm_free(whole);
        return;
    }
    if (s != ILM_OK) {
        if (s != ILM_ERR_NOMEM) fuzz_fail("decode", ilm_last_error());
        return;
    }
    if (whole[len] != 0) fuzz_fail("decode", "the text is not NUL-terminated at *len");
    ilm_detokenizer *d = NULL;
    if (ilm_detokenizer_create(t, flags, &d) != ILM_OK) fuzz_fail("detokenizer", ilm_last_error());
    char *stream = malloc(len + 1);
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *piece = NULL;
        size_t k = 0;
        ilm_status ps = i < n ? ilm_detokenizer_push(d, ids[i], &piece, &k)
                              : ilm_detokenizer_flush(d, &piece, &k);
        if (ps != ILM_OK) fuzz_fail("detokenizer", ilm_last_error());
        if (at + k > len) fuzz_fail("detokenizer", "streams more text than decode gives");
        memcpy(stream + at, piece, k);
        at += k;
    }
    if (at != len || memcmp(stream, whole, len) != 0)
        fuzz_fail("detokenizer", "the streamed text differs from ilm_tokenizer_decode");
    free(stream);
    ilm_detokenizer_free(d);
    ilm_free(whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const ilm_tokenizer *t = g_tok[data[0] & 1];
    unsigned flags = (data[0] >> 1) & 7u, dflags = (data[0] >> 4) & 1u;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ilm_status s = ilm_tokenizer_encode(t, text, n, flags, &ids, &n_ids);
    if (s == ILM_OK) {
        int32_t V = ilm_tokenizer_vocab_size(t);
        for (size_t i = 0; i < n_ids; i++)
            if (ids[i] < 0 || ids[i] >= V) fuzz_fail("encode", "an id outside the vocabulary");
        decode_both(t, ids, n_ids, dflags);
        ilm_free(ids);
    } else if (s != ILM_ERR_NOMEM) {
        fuzz_fail("encode", ilm_last_error());
    }
    /* The bytes as little-endian 24-bit ids around the vocabulary's size. */
    size_t m = n / 3;
    int32_t *raw = malloc((m ? m : 1) * sizeof *raw);
    int32_t V = ilm_tokenizer_vocab_size(t);
    for (size_t i = 0; i < m; i++) {
        uint32_t v = (uint32_t)data[1 + 3 * i] | (uint32_t)data[2 + 3 * i] << 8 |
                     (uint32_t)data[3 + 3 * i] << 16;
        raw[i] = (int32_t)(v % ((uint32_t)V + 2)) - 1; /* -1 .. V */
    }
    decode_both(t, raw, m, dflags);
    free(raw);
    return 0;
}
