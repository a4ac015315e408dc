/* Task configs and their data through ilm_evaluator_run on a tiny model
 * with a real tokenizer: a packed input of task.json and the data files it
 * names (CSV, JSONL, text; a few-shot file), run with an output directory
 * inside the input's directory, so the predictions, results, summary and
 * resume files are written and read back.  Seeds: one task per mode
 * written by tests/fuzz/seeds.sh; json.dict. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ilm_model *g_model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_limit_memory();
    char dir[FUZZ_PATH_MAX], path[FUZZ_PATH_MAX];
    fuzz_join(dir, fuzz_dir(), "model");
    if (fuzz_tiny_model(dir, 0, 2000) != 0) fuzz_fail("tiny model", ilm_last_error());
    size_t n = 0;
    uint8_t *spm = fuzz_slurp(fuzz_spm_path(0), &n);
    if (!spm) fuzz_fail("tokenizer", fuzz_spm_path(0));
    fuzz_join(path, dir, "tokenizer.model");
    fuzz_write(path, spm, n);
    free(spm);
    if (ilm_model_load(dir, NULL, &g_model) != ILM_OK) fuzz_fail("load", ilm_last_error());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[FUZZ_PATH_MAX], task[FUZZ_PATH_MAX], out[FUZZ_PATH_MAX];
    fuzz_join(dir, fuzz_dir(), "in");
    fuzz_unpack(dir, data, size, "task.json");
    fuzz_join(task, dir, "task.json");
    fuzz_join(out, dir, "out");
    char cfg[3 * FUZZ_PATH_MAX], tasks[FUZZ_PATH_MAX + 8];
    snprintf(cfg, sizeof cfg,
             "{\"data_root\": \"%s\", \"config_dir\": \"%s\", \"out\": \"%s\", \"limit\": 3, "
             "\"context\": 64, \"threads\": 1}",
             dir, dir, out);
    snprintf(tasks, sizeof tasks, "[\"%s\"]", task);
    ilm_evaluator *e = NULL;
    if (ilm_evaluator_create(g_model, cfg, &e) != ILM_OK) fuzz_fail("create", ilm_last_error());
    /* Twice: the second run reads back (or resumes) what the first wrote. */
    for (int k = 0; k < 2; k++) {
        char *res = NULL;
        ilm_status s = ilm_evaluator_run(e, tasks, NULL, NULL, &res);
        if (s == ILM_OK && !res) fuzz_fail("ilm_evaluator_run", "ILM_OK without results");
        if (s != ILM_OK && res) fuzz_fail("ilm_evaluator_run", "results after a failure");
        if (s != ILM_OK && !*ilm_last_error()) fuzz_fail("ilm_evaluator_run", "no message");
        ilm_free(res);
    }
    ilm_evaluator_free(e);
    return 0;
}
