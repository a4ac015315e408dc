/* train_model: calls ilm_tokenizer_train with a JSON config given on the
 * command line and prints the wall time, so that train_reference.py can
 * drive the trainer before (and without) the CLI.
 *
 *   cc -Iinclude tools/reference/train_model.c -Llib -linternlm -o build/train_model
 *   build/train_model '{"input": ["a.txt"], "out": "m.model", "vocab_size": 4000}'
 */
#include <internlm.h>

#include <stdio.h>
#include <time.h>

static int progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user, (void)stage, (void)done, (void)total;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CONFIG_JSON\n", argv[0]);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ilm_status st = ilm_tokenizer_train(argv[1], progress, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != ILM_OK) {
        fprintf(stderr, "%s: %s\n", ilm_status_str(st), ilm_last_error());
        return 1;
    }
    printf("%.3f\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
