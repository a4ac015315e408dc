/* GGUF: ilm_model_load and ilm_tokenizer_load on a GGUF file.  Seeds: the
 * GGUF fixtures (tests/fixtures/formats, tests/fixtures/gguf). */
#include "fuzz.h"

static char g_path[FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    fuzz_join(g_path, fuzz_dir(), "model.gguf");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_write(g_path, data, size) != 0) fuzz_fail("write", g_path);
    ilm_model *m = NULL;
    if (ilm_model_load(g_path, NULL, &m) == ILM_OK) fuzz_use_model(m);
    else if (m) fuzz_fail("ilm_model_load", "*out is set after a failure");
    ilm_model_free(m);
    ilm_tokenizer *t = NULL;
    if (ilm_tokenizer_load(g_path, &t) == ILM_OK) fuzz_use_tokenizer(t);
    ilm_tokenizer_free(t);
    return 0;
}
