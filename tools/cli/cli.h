/*
 * tools/cli/ -- the `internlm` command-line tool: one subcommand per stage
 * of the chain, built on the public API only (it is the first user of
 * include/internlm.h, and proves the header is enough).
 */
#ifndef ILM_CLI_H
#define ILM_CLI_H

#include "internlm.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 the library reported an error, 2 bad usage. */
enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
    const char *summary;
} cli_command;

/* Prints "internlm: ILM_ERR_X: <last error>" to stderr; returns CLI_ERROR. */
int cli_fail(ilm_status s);
/* Prints "internlm <cmd>: <message>" and a hint to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...);
/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);
/* Looks up `name` in a NULL-terminated table and runs it; prints the table
 * as help when the name is missing or unknown. */
int cli_dispatch(const char *prog, const cli_command *table, int argc, char **argv);
/* Reads all of `f` into a malloc'd, NUL-terminated buffer of *len bytes;
 * NULL on failure. */
char *cli_read_all(FILE *f, size_t *len);
/* Parses ids separated by spaces, commas or newlines into a malloc'd
 * array of *n; NULL if something there is not an id (0 .. INT32_MAX). */
int32_t *cli_parse_ids(const char *s, size_t *n);
/* A progress callback that draws a one-line bar on stderr when it is a
 * terminal, and stays quiet otherwise. */
int cli_progress(void *user, const char *stage, uint64_t done, uint64_t total);
/* Clears the progress line (when stderr is a terminal). */
void cli_progress_done(void);

/* ilm_model_load with the PEFT LoRA adapter directory `adapter` (NULL:
 * none) applied, as --adapter gives it, over the linears quantized to
 * `quantize` ("nf4", "fp4"; NULL: as stored), as --quantize gives it. */
ilm_status cli_model_load(const char *path, const char *adapter, const char *quantize,
                          ilm_model **m);

/* One line of a plot: n points (x[i], y[i]). */
typedef struct cli_series {
    const char   *name;
    const double *x, *y;
    size_t        n;
} cli_series;
/* Writes an SVG line plot of the series; 0 on success. */
int cli_plot_svg(const char *path, const char *title, const cli_series *s, int n_series);

int cmd_version(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_corpus(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

#endif
