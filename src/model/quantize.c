/* ilm_model_quantize: a model file in another type -- bitsandbytes' 4-bit
 * Hugging Face directory (any model this library loads), or a GGUF file
 * requantized to Q8_0 / Q4_0 / Q4_1 (from a GGUF file: its metadata and
 * tokenizer are carried over as they are). */
#include "model/internal.h"
#include "formats/gguf_write.h"
#include "quant/nf4.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *name;
    uint32_t    type, ftype; /* llama.cpp's llama_ftype MOSTLY_* */
} gguf_formats[] = {
    { "q8_0", ILM__DTYPE_Q8_0, 7 },
    { "q4_0", ILM__DTYPE_Q4_0, 2 },
    { "q4_1", ILM__DTYPE_Q4_1, 3 },
};

ilm_status ilm_model_quantize(const char *in, const char *out, const char *config)
{
    ILM__RETURN_IF(!in || !out, ILM_ERR_INVALID_ARG, "ilm_model_quantize: NULL argument");
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "quantize config", &root));
    const char *format = NULL;
    int64_t threads = 0;
    ilm__q4_opts q4;
    cJSON *q = cJSON_Duplicate(root, true);
    if (q) {
        cJSON_DeleteItemFromObjectCaseSensitive(q, "format");
        cJSON_DeleteItemFromObjectCaseSensitive(q, "threads");
    }
    const ilm__jfield f[] = {
        { "format", ILM__J_STRING, &format, true, 0, 0 },
        { "threads", ILM__J_INT, &threads, false, 0, ILM__MAX_THREADS },
        { "blocksize", ILM__J_INT, NULL, false, 0, 1e9 },
        { "double_quant", ILM__J_BOOL, NULL, false, 0, 0 },
    };
    ilm_status st = q ? ilm__json_fields(root, "", f, 4) : ilm__error(ILM_ERR_NOMEM, "out of memory");
    size_t g = sizeof gguf_formats / sizeof *gguf_formats;
    if (st == ILM_OK && (!strcmp(format, "nf4") || !strcmp(format, "fp4"))) {
        cJSON_AddStringToObject(q, "quant_type", format);
        st = ilm__q4_opts_parse(q, "quantize", &q4);
        g = SIZE_MAX; /* 4-bit */
    } else if (st == ILM_OK) {
        for (g = 0; g < sizeof gguf_formats / sizeof *gguf_formats; g++)
            if (!strcmp(format, gguf_formats[g].name)) break;
        if (g == sizeof gguf_formats / sizeof *gguf_formats)
            st = ilm__error(ILM_ERR_CONFIG,
                            "quantize: format '%s' is not one of nf4, fp4, q8_0, q4_0, q4_1", format);
        else if (cJSON_GetArraySize(q) > 0)
            st = ilm__error(ILM_ERR_CONFIG, "quantize: 'blocksize' and 'double_quant' are 4-bit "
                            "settings, not %s's", format);
    }
    /* `format` points into the tree: keep a copy for the messages below. */
    char name[16] = "";
    if (st == ILM_OK) snprintf(name, sizeof name, "%s", format);
    cJSON_Delete(q);
    cJSON_Delete(root);
    ILM__FORWARD(st);

    /* The input must be a model this library loads (checked, mapped only). */
    ilm_model *m = NULL;
    ILM__FORWARD(ilm_model_load(in, NULL, &m));
    m->threads = (int)threads;
    if (g == SIZE_MAX) {
        st = ilm__model_quantize_q4(m, &q4);
        if (st == ILM_OK) st = ilm_model_save(m, out);
    } else if (!m->gguf) {
        st = ilm__error(ILM_ERR_UNSUPPORTED,
                        "quantize: writing %s GGUF from a Hugging Face directory needs its "
                        "tokenizer in GGUF's form, not written yet (llama.cpp's "
                        "convert_hf_to_gguf.py makes a GGUF file this can requantize)",
                        name);
    } else {
        st = ilm__gguf_requantize(m->gguf, out, gguf_formats[g].type, gguf_formats[g].ftype);
    }
    ilm_model_free(m);
    return st;
}
