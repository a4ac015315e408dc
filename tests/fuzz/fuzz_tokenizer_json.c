/* Hugging Face tokenizer files: a directory with tokenizer.json and
 * tokenizer_config.json (packed input, fuzz.h; a plain input is
 * tokenizer.json alone), through ilm_tokenizer_load on the directory.
 * Seeds: the byte-level BPE fixtures (tests/fixtures/tokenizer/bbpe_*.json)
 * and one with a tokenizer_config.json. */
#include "fuzz.h"

static char g_dir[FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    fuzz_join(g_dir, fuzz_dir(), "tok");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_unpack(g_dir, data, size, "tokenizer.json");
    ilm_tokenizer *t = NULL;
    if (ilm_tokenizer_load(g_dir, &t) == ILM_OK) fuzz_use_tokenizer(t);
    else if (t) fuzz_fail("ilm_tokenizer_load", "*out is set after a failure");
    ilm_tokenizer_free(t);
    return 0;
}
