/* A Hugging Face model directory: config.json, model.safetensors or
 * model.safetensors.index.json with its shards, tokenizer files; the input
 * is packed (fuzz.h), a plain input is model.safetensors alone.  Seeds:
 * tiny LLaMA and InternLM2 models saved by the library, the LLaMA in
 * bitsandbytes' NF4 layout (with its quantization_config), the same split
 * in two shards with an index, and the safetensors fixtures. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_model[FUZZ_PATH_MAX];

/* The tiny model's directory split into two shards by the index: the
 * library writes one file, so the seed copies it into both shards; each
 * tensor is then found in the shard the index names. */
static void seeds(void)
{
    char dir[FUZZ_PATH_MAX], path[FUZZ_PATH_MAX], out[FUZZ_PATH_MAX];
    for (int k = 0; k < 2; k++) {
        fuzz_join(dir, fuzz_dir(), k ? "internlm2" : "llama");
        if (fuzz_tiny_model(dir, k, 32) != 0) fuzz_fail("tiny model", ilm_last_error());
        snprintf(out, sizeof out, "%s/%s.pack", fuzz_seed_dir(), k ? "internlm2" : "llama");
        if (fuzz_pack_dir(dir, out) != 0) fuzz_fail("pack", out);
    }
    /* The LLaMA quantized to NF4 at load and saved: bitsandbytes' keys. */
    fuzz_join(dir, fuzz_dir(), "llama");
    fuzz_join(path, fuzz_dir(), "llama_nf4");
    ilm_model *q = NULL;
    if (ilm_model_load(dir, "{\"quantize\": {\"quant_type\": \"nf4\"}}", &q) != ILM_OK ||
        ilm_model_save(q, path) != ILM_OK)
        fuzz_fail("nf4 model", ilm_last_error());
    ilm_model_free(q);
    snprintf(out, sizeof out, "%s/llama_nf4.pack", fuzz_seed_dir());
    if (fuzz_pack_dir(path, out) != 0) fuzz_fail("pack", out);
    fuzz_join(path, dir, "model.safetensors");
    size_t n = 0;
    uint8_t *st = fuzz_slurp(path, &n);
    if (!st || n < 8) fuzz_fail("read", path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st[i];
    /* The index maps every tensor name of the header alternately to the two
     * shard files. */
    char *hdr = strndup((const char *)st + 8, (size_t)hlen);
    fuzz_join(out, fuzz_dir(), "index.json");
    FILE *f = fopen(out, "w");
    fprintf(f, "{\"metadata\": {\"total_size\": %zu}, \"weight_map\": {", n);
    int first = 1, which = 0;
    for (char *p = hdr; (p = strstr(p, "\"model.")) != NULL;) {
        char *e = strchr(p + 1, '"');
        fprintf(f, "%s%.*s: \"model-0000%d-of-00002.safetensors\"", first ? "" : ", ", (int)(e - p + 1), p,
                1 + which);
        which ^= 1;
        first = 0;
        p = e + 1;
    }
    fprintf(f, "}}");
    fclose(f);
    size_t cn = 0, in = 0;
    fuzz_join(path, dir, "config.json");
    uint8_t *cfg = fuzz_slurp(path, &cn);
    uint8_t *index = fuzz_slurp(out, &in);
    snprintf(path, sizeof path, "%s/sharded.pack", fuzz_seed_dir());
    FILE *g = fopen(path, "wb");
    fprintf(g, "==> model.safetensors.index.json\n");
    fwrite(index, 1, in, g);
    fprintf(g, "\n==> config.json\n");
    fwrite(cfg, 1, cn, g);
    for (int s = 1; s <= 2; s++) {
        fprintf(g, "\n==> model-0000%d-of-00002.safetensors\n", s);
        fwrite(st, 1, n, g);
    }
    fclose(g);
    free(hdr), free(st), free(cfg), free(index);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (fuzz_seed_dir()) {
        seeds();
        exit(0);
    }
    fuzz_limit_memory();
    fuzz_join(g_model, fuzz_dir(), "model");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_unpack(g_model, data, size, "model.safetensors");
    ilm_model *m = NULL;
    if (ilm_model_load(g_model, NULL, &m) == ILM_OK) fuzz_use_model(m);
    else if (m) fuzz_fail("ilm_model_load", "*out is set after a failure");
    ilm_model_free(m);
    return 0;
}
