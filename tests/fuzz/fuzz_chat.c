/* Chat messages JSON through ilm_chat_apply, with each built-in template:
 * tiny models made once, InternLM2 and LLaMA with a tokenizer_config.json
 * whose chat_template selects ChatML, LLaMA-2 or LLaMA-3.  Seeds: message
 * arrays written by tests/fuzz/seeds.sh; json.dict. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ilm_model *g_models[4];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    static const char *tmpl[4] = { NULL, "{{'<|im_start|>'}}", "{{'[INST]'}}",
                                   "{{'<|start_header_id|>'}}" };
    static const char *want[4] = { "internlm2", "chatml", "llama2", "llama3" };
    for (int k = 0; k < 4; k++) {
        char dir[FUZZ_PATH_MAX], name[16];
        snprintf(name, sizeof name, "m%d", k);
        fuzz_join(dir, fuzz_dir(), name);
        if (fuzz_tiny_model(dir, k == 0, 2000) != 0) fuzz_fail("tiny model", ilm_last_error());
        if (tmpl[k]) {
            char path[FUZZ_PATH_MAX], json[128];
            fuzz_join(path, dir, "tokenizer_config.json");
            snprintf(json, sizeof json, "{\"chat_template\": \"%s\"}", tmpl[k]);
            fuzz_write(path, json, strlen(json));
        }
        if (ilm_model_load(dir, NULL, &g_models[k]) != ILM_OK) fuzz_fail("load", ilm_last_error());
        if (strcmp(ilm_model_chat_template(g_models[k]), want[k]) != 0)
            fuzz_fail("chat template", ilm_model_chat_template(g_models[k]));
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size + 1);
    memcpy(json, data, size);
    json[size] = 0;
    for (int k = 0; k < 4; k++) {
        char *prompt = NULL;
        ilm_status s = ilm_chat_apply(g_models[k], json, &prompt);
        if (s == ILM_OK && !prompt) fuzz_fail("ilm_chat_apply", "ILM_OK without a prompt");
        if (s != ILM_OK && prompt) fuzz_fail("ilm_chat_apply", "a prompt after a failure");
        ilm_free(prompt);
    }
    free(json);
    return 0;
}
