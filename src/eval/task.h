/*
 * src/eval/task.h -- a task config, parsed and checked (docs/eval.md).
 *
 * task.c turns a task's JSON into an ilm__task: strictly validated (an
 * unknown key or a wrong type is ILM_ERR_CONFIG naming the task and the
 * key), with its version: a short hash of the config as run.
 */
#ifndef ILM_EVAL_TASK_H
#define ILM_EVAL_TASK_H

#include "eval/eval.h"

typedef enum ilm__task_mode { ILM__MODE_PPL, ILM__MODE_GEN, ILM__MODE_ROLLING } ilm__task_mode;

/* ppl: how a candidate is scored.  CONTINUATION is lm-eval's: the
 * candidate's log-likelihood after the prompt (acc, acc_norm, acc_bytes).
 * WHOLE is OpenCompass's PPLInferencer: the mean token cross-entropy of
 * prompt + candidate after the in-context examples; lowest wins (acc). */
typedef enum ilm__reduction { ILM__RED_CONTINUATION, ILM__RED_WHOLE } ilm__reduction;

typedef enum ilm__metric {
    ILM__METRIC_ACCURACY, ILM__METRIC_EXACT_MATCH, ILM__METRIC_F1, ILM__METRIC_BLEU,
    ILM__METRIC_ROUGE_L, ILM__METRIC_PASS_AT_1
} ilm__metric;

typedef struct ilm__task {
    cJSON      *root;         /* the config as given (owned) */
    char       *name;
    char       *source;       /* the file it came from, or "tasks[i]" (messages) */
    char        version[8];   /* 6 hex digits */
    /* reader */
    const char *path, *fewshot_path, *format; /* format: NULL (by name), "jsonl", "csv", "text" */
    bool        header, header_set;
    const char *document_start; /* text: the regex a document's first line matches, or NULL */
    char      **columns;      /* borrowed from root */
    size_t      n_columns;
    char      **subsets;      /* owned; NULL when the task has none */
    size_t      n_subsets;
    bool        subsets_all;  /* "subsets": "*": every file the path pattern matches */
    int64_t     range_begin, range_end; /* rows [begin, end); end -1 = all */
    /* prompt */
    const char *preamble;     /* "header" template: before the examples */
    const char *prompt;
    bool        chat;
    int64_t     shots;        /* few-shot examples */
    int64_t    *shot_ids;     /* fixed example rows (owned), or NULL: the first `shots` */
    size_t      n_shot_ids;
    const char *shot_template, *shot_separator;
    ilm__task_mode mode;
    /* ppl */
    char      **labels, **choices; /* [n_choices], borrowed */
    size_t      n_choices;
    const char *gold;
    ilm__reduction reduction;
    /* gen */
    int64_t     max_tokens;
    const cJSON *stop;        /* array of strings or NULL */
    ilm__postproc pp, gold_pp;
    const char *options;      /* first_option's letters */
    ilm__metric metric;
    const char *program;      /* a program to run with {completion}, or NULL */
    const char *interpreter;  /* "python3" */
    double      timeout;      /* seconds per program */
    /* rolling */
    const char *text;         /* the document template */
    ilm__postproc preprocess; /* applied to the document before it is encoded; its words and
                                 bytes are counted before (lm-eval's wikitext) */
    int64_t     window;       /* tokens predicted per window; 0 = the context - 1 */
} ilm__task;

/* Parses `json` (taking ownership of it in every case) as the task named
 * `name` from `source`; `shots` >= 0 replaces its few-shot count. */
ilm_status ilm__task_parse(cJSON *json, const char *name, const char *source, int64_t shots,
                           ilm__task *t);
void       ilm__task_free(ilm__task *t);
const char *ilm__task_mode_name(ilm__task_mode m);
const char *ilm__metric_name(ilm__metric m);

#endif /* ILM_EVAL_TASK_H */
