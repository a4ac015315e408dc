/* config.json alone: a model directory whose config.json is the input and
 * whose weights are a fixed, valid model.safetensors (the gqa_tied model
 * fixture), so the input reaches every check of config against tensors.
 * Seeds: the config.json files of tests/fixtures/formats and
 * tests/fixtures/model. */
#include "fuzz.h"

#include <stdlib.h>

static char g_model[FUZZ_PATH_MAX], g_config[FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    fuzz_join(g_model, fuzz_dir(), "model");
    fuzz_reset_dir(g_model);
    size_t n = 0;
    uint8_t *st = fuzz_slurp("tests/fixtures/model/gqa_tied/model.safetensors", &n);
    char path[FUZZ_PATH_MAX];
    fuzz_join(path, g_model, "model.safetensors");
    if (!st || fuzz_write(path, st, n) != 0) fuzz_fail("model fixture", "run from the repository root");
    free(st);
    fuzz_join(g_config, g_model, "config.json");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_write(g_config, data, size) != 0) fuzz_fail("write", g_config);
    ilm_model *m = NULL;
    if (ilm_model_load(g_model, NULL, &m) == ILM_OK) fuzz_use_model(m);
    else if (m) fuzz_fail("ilm_model_load", "*out is set after a failure");
    ilm_model_free(m);
    return 0;
}
