/* A corpus directory: corpus.json, token shards (docs/formats.md) and a
 * tokenizer, from a packed input (fuzz.h; a plain input is corpus.json),
 * through ilm_corpus_open, ilm_corpus_num_documents, ilm_corpus_document
 * and ilm_corpus_info.  Seeds: a corpus built by the library from text,
 * and one with a hand-written masked (SFT) shard and no tokenizer. */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char g_dir[FUZZ_PATH_MAX];

static void wr(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Two documents (3 and 2 tokens) with a loss mask, vocabulary 300. */
static void masked_seed(void)
{
    static const uint16_t ids[5] = { 1, 7, 299, 5, 2 };
    static const uint8_t mask[5] = { 0, 1, 1, 0, 1 };
    uint8_t f[64 + 3 * 8 + 5 * 3] = { 0 };
    memcpy(f, "ILMSHARD", 8);
    wr(f + 8, 1, 4), wr(f + 12, 1, 4), wr(f + 16, 300, 4), wr(f + 20, 2, 4);
    wr(f + 24, 5, 8), wr(f + 32, 2, 8), wr(f + 48, sizeof f, 8);
    wr(f + 64 + 8, 3, 8), wr(f + 64 + 16, 5, 8);
    for (int i = 0; i < 5; i++) wr(f + 88 + 2 * i, ids[i], 2);
    memcpy(f + 98, mask, 5);
    wr(f + 40, crc32(crc32(0, Z_NULL, 0), f + 64, sizeof f - 64), 4);
    static const char manifest[] = "==> corpus.json\n{\"format\": \"ilm-corpus\", \"version\": 1, "
                                   "\"mode\": \"sft\", \"tokenizer\": \"\", \"vocab_size\": 300, "
                                   "\"shards\": [{\"file\": \"shard-00000.shard\", \"documents\": 2, \"tokens\": 5}]}"
                                   "\n==> shard-00000.shard\n";
    uint8_t buf[sizeof manifest - 1 + sizeof f];
    memcpy(buf, manifest, sizeof manifest - 1);
    memcpy(buf + sizeof manifest - 1, f, sizeof f);
    fuzz_seed("masked.pack", buf, sizeof buf);
}

static void seeds(void)
{
    char text[FUZZ_PATH_MAX], cfg[3 * FUZZ_PATH_MAX], out[FUZZ_PATH_MAX];
    fuzz_join(text, fuzz_dir(), "x.txt");
    static const char lines[] = "The quick brown fox jumps over the lazy dog.\n"
                                "Sphinx of black quartz, judge my vow.\n0123456789\n";
    fuzz_write(text, lines, sizeof lines - 1);
    fuzz_join(out, fuzz_dir(), "corpus");
    snprintf(cfg, sizeof cfg,
             "{\"inputs\": [\"%s\"], \"output\": \"%s\", \"tokenizer\": \"%s\", \"filter\": false, "
             "\"dedup\": false, \"shard_tokens\": 16}",
             text, out, fuzz_spm_path(0));
    if (ilm_corpus_build(cfg, NULL, NULL, NULL) != ILM_OK) fuzz_fail("corpus build", ilm_last_error());
    char pack[FUZZ_PATH_MAX];
    fuzz_join(pack, fuzz_seed_dir(), "text.pack");
    if (fuzz_pack_dir(out, pack) != 0) fuzz_fail("pack", pack);
    masked_seed();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (fuzz_seed_dir()) {
        seeds();
        exit(0);
    }
    fuzz_limit_memory();
    fuzz_join(g_dir, fuzz_dir(), "corpus");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_unpack(g_dir, data, size, "corpus.json");
    ilm_corpus *c = NULL;
    if (ilm_corpus_open(g_dir, &c) != ILM_OK) {
        if (c) fuzz_fail("ilm_corpus_open", "*out is set after a failure");
        return 0;
    }
    /* Shards are verified before their first document is handed out: a
     * corrupt one is ILM_ERR_FORMAT with a message there, never bad ids. */
    uint64_t n = ilm_corpus_num_documents(c);
    for (uint64_t i = 0; i < n && i < 64; i++) {
        int32_t *ids = NULL;
        uint8_t *mask = NULL;
        size_t len = 0;
        const ilm_status st = ilm_corpus_document(c, i, &ids, &mask, &len);
        if (st != ILM_OK && (st != ILM_ERR_FORMAT || !*ilm_last_error()))
            fuzz_fail("document", ilm_last_error());
        ilm_free(ids);
        ilm_free(mask);
        if (st != ILM_OK) break;
    }
    int32_t *ids = NULL;
    size_t len = 0;
    if (ilm_corpus_document(c, n, &ids, NULL, &len) != ILM_ERR_RANGE) fuzz_fail("document", "past the end");
    char *info = NULL;
    if (ilm_corpus_info(c, &info) == ILM_OK) ilm_free(info);
    ilm_corpus_free(c);
    return 0;
}
