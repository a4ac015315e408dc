/* A PEFT LoRA adapter directory (adapter_config.json +
 * adapter_model.safetensors) applied at load to the random LLaMA of
 * tests/fixtures/train/grad_gqa_untied (ilm_model_load's "adapter"), then
 * used and saved merged.  The input is packed (fuzz.h); a plain input is
 * adapter_model.safetensors alone.  Seeds: the peft-made adapters of
 * tests/fixtures/train/lora_*. */
#include "fuzz.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static char g_base[FUZZ_PATH_MAX], g_adapter[FUZZ_PATH_MAX], g_merged[FUZZ_PATH_MAX];
static char *g_config;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    if (!realpath("tests/fixtures/train/grad_gqa_untied", g_base))
        fuzz_fail("base model", "run from the repository root");
    fuzz_join(g_adapter, fuzz_dir(), "adapter");
    fuzz_join(g_merged, fuzz_dir(), "merged");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "adapter", g_adapter);
    g_config = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_unpack(g_adapter, data, size, "adapter_model.safetensors");
    ilm_model *m = NULL;
    if (ilm_model_load(g_base, g_config, &m) == ILM_OK) {
        fuzz_use_model(m);
        fuzz_reset_dir(g_merged);
        (void)ilm_model_save(m, g_merged);
    } else if (m) {
        fuzz_fail("ilm_model_load", "*out is set after a failure");
    }
    ilm_model_free(m);
    return 0;
}
