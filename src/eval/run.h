/*
 * src/eval/run.h -- what the evaluator's two halves share: the handle, a
 * dataset being run, and the modes (modes.c) that evaluator.c drives.
 */
#ifndef ILM_EVAL_RUN_H
#define ILM_EVAL_RUN_H

#include "eval/task.h"

struct ilm_evaluator {
    const ilm_model     *m;
    const ilm_tokenizer *tok;
    ilm_session         *s;
    char                *config_dir, *data_root, *out, *model_name;
    int64_t              limit, shots, context;
    bool                 add_bos, resume, execute;
    int32_t              prefix_id; /* the context of a document's first token */
};

/* One dataset being run: a task over one subset's table. */
typedef struct ilm__dataset {
    ilm_evaluator   *e;
    const ilm__task *t;
    char            *name;       /* "<task>" or "<task>_<subset>" */
    const char      *subset;
    char            *subset_text;
    ilm__table       test, shots_table;
    bool             has_shots_table;
    char            *ice;        /* the rendered in-context examples */
    size_t          *rows;       /* the test rows to run, in order */
    size_t           n_rows;
} ilm__dataset;

/* A template rendered from row `row` of table `t` (test or few-shot) with
 * the dataset's subset fields ({subset}, {subset_text}); appended to out. */
ilm_status ilm__dataset_render(const ilm__dataset *d, const char *tmpl, const char *what,
                               const ilm__table *t, size_t row, ilm__buf *out);
/* Checks that every slot of `tmpl` (NULL: nothing to check) names a column
 * of `t` or a subset field. */
ilm_status ilm__dataset_check(const ilm__dataset *d, const char *tmpl, const char *what,
                              const ilm__table *t);
/* Runs the task's mode on test row `row`, adding the record to `sample`. */
ilm_status ilm__eval_sample(ilm__dataset *d, size_t row, cJSON *sample);
/* The task's metrics from the samples records, into `metrics`. */
ilm_status ilm__eval_aggregate(const ilm__task *t, const cJSON *samples, cJSON *metrics);
/* The number at `key` of an object, 0 when absent. */
double     ilm__eval_num(const cJSON *o, const char *key);

#endif /* ILM_EVAL_RUN_H */
