/* Training checkpoints: ilm_trainer_create with "resume" over a checkpoint
 * directory.  A real checkpoint of a tiny model (written once by the
 * library) is laid down as step-00000001, then the input's files (packed,
 * fuzz.h; a plain input is trainer_state.json) replace or join its files:
 * trainer_state.json, optimizer.safetensors, config.json, model.safetensors,
 * COMPLETE.  A trainer that resumes takes one step.  Seeds: the real
 * checkpoint's trainer_state.json, config.json and optimizer.safetensors. */
#include "fuzz.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG                                                                                         \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 2000, "    \
    "\"hidden_size\": 4, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 1, " \
    "\"num_key_value_heads\": 1, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, "            \
    "\"rope_theta\": 10000.0, \"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}"

static char g_root[FUZZ_PATH_MAX], g_step[FUZZ_PATH_MAX], g_config[3 * FUZZ_PATH_MAX];
static uint8_t *g_pristine; /* the real checkpoint, packed */
static size_t g_pristine_n;

static void make_checkpoint(void)
{
    char text[FUZZ_PATH_MAX], corpus[FUZZ_PATH_MAX], cfg[4 * FUZZ_PATH_MAX], first[FUZZ_PATH_MAX];
    static const char lines[] = "The quick brown fox jumps over the lazy dog.\n"
                                "Sphinx of black quartz, judge my vow.\n"
                                "Pack my box with five dozen liquor jugs.\n";
    fuzz_join(text, fuzz_dir(), "x.txt");
    fuzz_write(text, lines, sizeof lines - 1);
    fuzz_join(corpus, fuzz_dir(), "corpus");
    snprintf(cfg, sizeof cfg,
             "{\"inputs\": [\"%s\"], \"output\": \"%s\", \"tokenizer\": \"%s\", \"filter\": false, "
             "\"dedup\": false}",
             text, corpus, fuzz_spm_path(0));
    if (ilm_corpus_build(cfg, NULL, NULL, NULL) != ILM_OK) fuzz_fail("corpus build", ilm_last_error());
    fuzz_join(first, fuzz_dir(), "first");
    fuzz_join(g_root, fuzz_dir(), "ckpt");
    fuzz_join(g_step, g_root, "step-00000001");
    for (int k = 0; k < 2; k++) {
        snprintf(k ? g_config : cfg, sizeof g_config,
                 "{\"data\": \"%s\", \"model_config\": " CONFIG ", \"steps\": 100, \"batch\": 1, "
                 "\"seqlen\": 8, \"seed\": 1, \"checkpoint_dir\": \"%s\", \"resume\": true, \"threads\": 1}",
                 corpus, k ? g_root : first);
    }
    ilm_trainer *t = NULL;
    char *path = NULL;
    if (ilm_trainer_create(cfg, &t) != ILM_OK || ilm_trainer_step(t, NULL) != ILM_OK ||
        ilm_trainer_checkpoint(t, &path) != ILM_OK)
        fuzz_fail("checkpoint", ilm_last_error());
    char pack[FUZZ_PATH_MAX];
    fuzz_join(pack, fuzz_dir(), "pristine.pack");
    if (fuzz_pack_dir(path, pack) != 0) fuzz_fail("pack", pack);
    ilm_free(path);
    ilm_trainer_free(t);
    g_pristine = fuzz_slurp(pack, &g_pristine_n);
    if (!g_pristine) fuzz_fail("read", pack);
}

static void seeds(void)
{
    fuzz_reset_dir(g_root);
    fuzz_unpack(g_step, g_pristine, g_pristine_n, "x");
    static const char *const names[] = { "trainer_state.json", "config.json", "optimizer.safetensors" };
    char pack[FUZZ_PATH_MAX];
    fuzz_join(pack, fuzz_seed_dir(), "checkpoint.pack");
    FILE *f = fopen(pack, "wb");
    for (int k = 0; k < 3; k++) {
        char path[FUZZ_PATH_MAX];
        size_t n = 0;
        fuzz_join(path, g_step, names[k]);
        uint8_t *p = fuzz_slurp(path, &n);
        if (!p) fuzz_fail("read", path);
        fprintf(f, "%s==> %s\n", k ? "\n" : "", names[k]);
        fwrite(p, 1, n, f);
        free(p);
    }
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!fuzz_seed_dir()) fuzz_limit_memory();
    make_checkpoint();
    if (fuzz_seed_dir()) {
        seeds();
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reset_dir(g_root);
    fuzz_unpack(g_step, g_pristine, g_pristine_n, "x");
    fuzz_unpack_over(g_step, data, size, "trainer_state.json");
    ilm_trainer *t = NULL;
    ilm_status s = ilm_trainer_create(g_config, &t);
    if (s == ILM_OK) {
        char *info = NULL;
        if (ilm_trainer_info(t, &info) == ILM_OK) ilm_free(info);
        (void)ilm_trainer_step(t, NULL);
    } else if (t) {
        fuzz_fail("ilm_trainer_create", "*out is set after a failure");
    }
    ilm_trainer_free(t);
    return 0;
}
