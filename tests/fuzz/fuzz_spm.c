/* SentencePiece tokenizer.model (protobuf) through ilm_tokenizer_load; a
 * model that loads encodes and decodes a fixed text.  Seeds: the
 * SentencePiece fixtures (tests/fixtures/tokenizer: the trainer's model
 * and the gunzipped tests/fixtures/tokenizer/spm models). */
#include "fuzz.h"

static char g_path[FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    fuzz_join(g_path, fuzz_dir(), "tokenizer.model");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_write(g_path, data, size) != 0) fuzz_fail("write", g_path);
    ilm_tokenizer *t = NULL;
    if (ilm_tokenizer_load(g_path, &t) == ILM_OK) fuzz_use_tokenizer(t);
    else if (t) fuzz_fail("ilm_tokenizer_load", "*out is set after a failure");
    ilm_tokenizer_free(t);
    return 0;
}
