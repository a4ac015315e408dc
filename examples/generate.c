/* Chat with a model from C: load it, render one user message with the
 * model's chat template, and stream the reply.
 *
 *   cc generate.c $(pkg-config --cflags --libs libinternlm) -o generate
 *   ./generate SmolLM2-135M-Instruct.Q4_1.gguf "What is the capital of France?"
 */
#include <internlm.h>
#include <stdio.h>
#include <string.h>

static int print(void *user, const char *text, size_t len)
{
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop the generation */
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL QUESTION\n", argv[0]);
        return 2;
    }
    ilm_model *model = NULL;
    ilm_session *session = NULL;
    char messages[4096];
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ilm_status s = ilm_model_load(argv[1], NULL, &model);
    if (s == ILM_OK) s = ilm_session_create(model, "{\"context\": 1024}", &session);
    /* A real program would build this JSON with a JSON library. */
    snprintf(messages, sizeof messages, "[{\"role\": \"user\", \"content\": \"%s\"}]", argv[2]);
    /* The conversation's ids: the template's markers are control tokens,
     * the question is plain text whatever it holds. */
    if (s == ILM_OK) s = ilm_chat_encode(model, messages, &ids, &n_ids);
    if (s == ILM_OK) s = ilm_session_eval(session, ids, n_ids, NULL);
    if (s == ILM_OK)
        s = ilm_session_generate(session, NULL, "{\"temperature\": 0.7, \"seed\": 1}", print, NULL, NULL);
    printf("\n");
    if (s != ILM_OK) fprintf(stderr, "%s: %s\n", ilm_status_str(s), ilm_last_error());
    ilm_free(ids);
    ilm_session_free(session);
    ilm_model_free(model);
    return s == ILM_OK ? 0 : 1;
}
