/*
 * src/eval/eval.h -- the evaluator's internal pieces (docs/eval.md).
 *
 *   data.c      dataset files (JSONL, CSV, text; .gz) -> a table of string cells
 *   template.c  "{field}" prompt templates rendered from a table row
 *   postproc.c  answer extraction from generated text (OpenCompass's
 *               first-capital / first-option / last-number / GSM8K / EM
 *               normalization / first code block)
 *   metrics.c   per-sample scores and their aggregation with standard
 *               errors (accuracy, exact match, F1, BLEU, ROUGE-L, pass@k)
 *   task.c      task configs parsed and versioned (task.h)
 *   modes.c     rows -> prompts -> token ids; the ppl / gen / rolling modes
 *               over session scoring; metrics from the sample records (run.h)
 *   evaluator.c the ilm_evaluator handle: datasets and subsets, output
 *               files, resume, groups and the summary
 *
 * Every function here reports errors through ilm__error (ILM_ERR_FORMAT
 * naming file and line for bad data, ILM_ERR_CONFIG naming the key for a
 * bad config), never crashes on hostile input and allocates through the
 * library allocator (ilm__malloc / ilm__free).
 */
#ifndef ILM_EVAL_EVAL_H
#define ILM_EVAL_EVAL_H

#include "core/internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- dataset tables (data.c) ------------------------------------------- */

/* A dataset read into memory: n_rows rows of n_cols NUL-terminated UTF-8
 * cells.  Cells of a JSONL row are its values: strings as they are, numbers
 * as the shortest text that reads back to the same double ("4", "0.25";
 * integral values below 1e17 in plain digits), true/false/null as those
 * words, arrays and objects as compact JSON (cJSON's printing).  Every cell
 * is valid UTF-8 without NUL bytes. */
typedef struct ilm__table {
    char   *path;      /* the file it was read from (for messages) */
    size_t  n_cols, n_rows;
    char  **cols;      /* [n_cols] column names */
    char  **cells;     /* [n_rows * n_cols], row-major; they point into text */
    size_t *lines;     /* [n_rows] 1-based line of the file where each row starts */
    char   *text;      /* one allocation holding every cell */
} ilm__table;

typedef struct ilm__table_opts {
    /* "jsonl", "csv", "text" (the whole file as one row of one column,
     * "text"), or NULL: from the name (.jsonl / .csv, after an optional .gz,
     * which is inflated) */
    const char        *format;
    /* CSV: the first row names the columns.  Implied when columns is NULL,
     * so a zeroed ilm__table_opts reads a CSV file with a header. */
    bool               header;
    /* CSV without header: the names of the columns by position (a row with
     * another number of fields is ILM_ERR_FORMAT).  CSV with header: the
     * columns to keep, by their names in the header (the first of equal
     * names; each must be there), every row having the header's number of
     * fields.  JSONL: the keys to keep (each row must have them); NULL keeps
     * every key of the first row, which every later row must then have.  Of
     * duplicate keys in one object the last counts, as in Python's json. */
    const char *const *columns;
    size_t             n_columns;
    /* "text" only: a regular expression (PCRE2 with Unicode classes, as
     * Python's re has them) that splits the file into documents, one row
     * each.  A line it matches (searched for in the line without its line
     * end) starts a document; the lines before the first such line are one
     * too.  A document is its lines joined by "\n": the line end that closes
     * its last line belongs to neither neighbour.  Documents of whitespace
     * only are dropped.  NULL: the whole file is one row. */
    const char        *document_start;
    /* Refuse files larger than this many bytes (after inflating): 0 = 1 GiB.
     * A gzip file is inflated only until it passes the bound. */
    size_t             max_bytes;
} ilm__table_opts;

/* Reads a whole dataset file (opts NULL: all defaults).  Errors:
 * ILM_ERR_IO (cannot read), ILM_ERR_RANGE (larger than max_bytes),
 * ILM_ERR_CONFIG (an unknown format, or none given for a name that does not
 * tell it; a document_start that does not compile, or one for a format
 * other than text), ILM_ERR_INVALID_ARG (n_columns without names), and
 * ILM_ERR_FORMAT naming file, line and what is wrong: a malformed JSON line,
 * a row that is not an object, a missing key, a CSV row with the wrong
 * number of fields, an unterminated quote, invalid UTF-8 or a NUL byte, a
 * corrupt or truncated gzip stream, a file with no rows (a header alone is
 * none).  A UTF-8 BOM is skipped; CRLF and LF line ends are both accepted
 * (and, in CSV, a lone CR, as Python reads it); empty lines of a JSONL file
 * are skipped.  CSV is RFC 4180 as Python's csv.reader reads it with the
 * default dialect: quoted fields may hold commas, newlines (kept as
 * written) and "" for a quote; a quote inside an unquoted field, or after a
 * closing quote, is an ordinary character; blank lines are no rows.
 * Unlike Python, a file that ends inside a quoted field is an error.  On
 * failure *out is left empty (ilm__table_free on it is harmless). */
ilm_status  ilm__table_read(const char *path, const ilm__table_opts *o, ilm__table *out);
/* Frees what the table holds and zeroes it; NULL is a no-op. */
void        ilm__table_free(ilm__table *t);
/* The first column named `name`, or -1. */
long        ilm__table_col(const ilm__table *t, const char *name);
/* The cell of `row` in column `col` (an index from ilm__table_col), or NULL
 * when either is out of range. */
const char *ilm__table_cell(const ilm__table *t, size_t row, long col);

/* ---- prompt templates (template.c) -------------------------------------- */

/* A template is text with slots "{name}" (name: one or more ASCII letters,
 * digits, '_', '-', '.'; "{a.b}" is the one name "a.b", looked up whole);
 * "{{" and "}}" are literal braces, read left to right as Python's
 * str.format reads them ("{{{x}}}" is a brace, x, a brace); any other '{'
 * or '}' -- "{}", "{a b}", "{x", a lone "}" -- is an error (ILM_ERR_CONFIG
 * naming `what` and the byte offset of that brace).  A slot's value comes
 * from `lookup` (name not NUL-terminated: len bytes), which returns NULL for
 * a name it does not know; a NULL lookup knows none.  `what` (NULL:
 * "template") names the template in messages, e.g. "task 'gsm8k' prompt". */
typedef const char *(*ilm__slot_fn)(void *user, const char *name, size_t len);

/* Checks a template's syntax and that `lookup` knows every slot name (a
 * slot with no field is ILM_ERR_CONFIG: "<what>: slot '{x}' names no
 * field").  Run it once per task, before any row is rendered. */
ilm_status ilm__template_check(const char *tmpl, const char *what, ilm__slot_fn lookup,
                               void *user);
/* Appends the rendered template to `out`: the text with each slot replaced
 * by its value (values are not themselves templates).  On failure `out` is
 * as it was before the call. */
ilm_status ilm__template_render(const char *tmpl, const char *what, ilm__slot_fn lookup,
                                void *user, ilm__buf *out);

/* ---- post-processors (postproc.c) --------------------------------------- */

/* Each follows a Python reference over str, so a character is a code point
 * and the classes are Python's (whitespace = str.isspace, \w, \d = Unicode
 * Nd); bytes that are not valid UTF-8 read as U+FFFD, one per byte.  Only
 * ILM_ERR_NOMEM can fail. */
typedef enum ilm__postproc {
    ILM__PP_NONE,          /* the text as generated, byte for byte             */
    ILM__PP_STRIP,         /* leading and trailing whitespace removed
                              (str.strip())                                    */
    ILM__PP_FIRST_CAPITAL, /* the first uppercase letter (str.isupper(), so
                              "É" too: OpenCompass's first_capital_postprocess),
                              or ""                                            */
    ILM__PP_FIRST_OPTION,  /* the first option letter an answer pattern finds
                              (OpenCompass's first_option_postprocess with its
                              cushion, zh + en patterns tried in order on the
                              stripped text; the option found first in
                              `options` order inside the pattern's group 1, or
                              its whole match when group 1 is empty), or ""    */
    ILM__PP_LAST_NUMBER,   /* the last match of
                              -?\d+(,\d{3}(?!\d))*(\.\d+)?, in ASCII digits
                              and without the commas ("-1,234.5" ->
                              "-1234.5"), or ""                                */
    ILM__PP_GSM8K,         /* a GSM8K prediction, OpenCompass's
                              gsm8k_postprocess: the last number (-?\d+\.\d+ or
                              -?\d+, commas not taken) before "Question:", or
                              "NULL"; written in ASCII digits without leading
                              zeros or an all-zero fraction ("18.00" -> "18"),
                              so that string equality with the gold agrees
                              with OpenCompass's Gsm8kEvaluator.is_equal
                              (|float(pred) - int(gold)| < 1e-6)               */
    ILM__PP_GSM8K_GOLD,    /* a GSM8K reference answer, OpenCompass's
                              gsm8k_dataset_postprocess: what lies between the
                              first "#### " and the next (or the end), commas
                              removed, stripped; "" when there is no "#### "   */
    ILM__PP_EM_NORMALIZE,  /* SQuAD's normalize_answer: lower case, the ASCII
                              punctuation removed, the words a/an/the replaced
                              by spaces, whitespace runs made single spaces and
                              trimmed                                          */
    ILM__PP_CODE_BLOCK,    /* the body of the first ``` fenced block whose
                              fence line is ``` and word characters only, else
                              the text; then leading whitespace removed
                              (OpenCompass 0.5's humaneval_postprocess_v2)     */
    ILM__PP_WIKITEXT,      /* lm-eval's wikitext_detokenizer: " @-@ " -> "-",
                              " , " -> ", ", whitespace inside paired brackets
                              and quotes removed, "= =" -> "==" and the rest of
                              its steps, in its order (a transform of a whole
                              document, for the rolling mode's "preprocess")   */
    ILM__PP_COUNT
} ilm__postproc;

/* The post-processor named `name` ("first_capital", "first_option",
 * "last_number", "gsm8k", "gsm8k_gold", "em_normalize", "code_block",
 * "wikitext_detokenizer", "strip", "none"); false for an unknown name. */
bool ilm__postproc_parse(const char *name, ilm__postproc *out);
/* The name of `p` ("unknown" outside the enum). */
const char *ilm__postproc_name(ilm__postproc p);
/* Applies `p` to `text` (len bytes; it may hold NULs) and appends the
 * result to `out` (which is NUL-terminated even when nothing is appended).
 * `options` is the option characters for FIRST_OPTION, in UTF-8 ("ABCD";
 * NULL: "ABCD"; each is taken literally, so "A-D" is three options), ignored
 * otherwise.  ILM_ERR_NOMEM is the only failure. */
ilm_status ilm__postproc_apply(ilm__postproc p, const char *text, size_t len,
                               const char *options, ilm__buf *out);

/* Helpers that metrics.c shares.  Python's str.isspace() for one code
 * point: what str.split() and str.strip() take for whitespace. */
bool ilm__py_isspace(uint32_t cp);
/* The length of s[0, n) without its trailing whitespace: Python's
 * str.rstrip() of the text decoded with errors="replace", so U+00A0 and
 * U+3000 go too and a byte that is not valid UTF-8 stays. */
size_t ilm__py_rstrip_len(const char *s, size_t n);
/* Appends `text` to `out` with every byte that does not start a valid UTF-8
 * sequence replaced by U+FFFD. */
ilm_status ilm__utf8_repair(const char *text, size_t len, ilm__buf *out);

/* ---- metrics (metrics.c) ------------------------------------------------ */

/* Per-sample scores, each in [0, 1] (BLEU and ROUGE-L are reported x 100
 * by the aggregation, as OpenCompass and lm-eval do).  Texts are
 * NUL-terminated UTF-8 (invalid bytes read as U+FFFD). */
/* 1 when pred equals ref byte for byte (callers normalize first). */
double ilm__metric_exact(const char *pred, const char *ref);
/* SQuAD token F1 (evaluate-v1.1.py's f1_score) of the two texts after
 * em_normalize, split on whitespace: 2PR / (P + R) over the multiset of
 * common tokens; 0 when none are common, so also when both are empty
 * (SQuAD 2.0's script would give 1 there).  0 when out of memory. */
double ilm__metric_f1(const char *pred, const char *ref);
/* ROUGE-L F-measure (beta 1) as rouge-score's RougeScorer(["rougeL"]) gives
 * it without stemming: its default tokenizer lower-cases (str.lower()),
 * replaces every character outside [a-z0-9] by a space and keeps the
 * [a-z0-9]+ runs, so other scripts give no tokens; 0 when either text has
 * no token.  The LCS costs O(tokens(pred) x tokens(ref)) time.  0 when out
 * of memory. */
double ilm__metric_rouge_l(const char *pred, const char *ref);
/* Unbiased pass@k of n samples with c correct: 1 - C(n-c, k) / C(n, k)
 * (Chen et al. 2021, computed as their product form); 1 when n - c < k,
 * 0 when c <= 0 or k <= 0; c above n counts as n. */
double ilm__metric_pass_at_k(int n, int c, int k);

/* Corpus BLEU (Papineni et al. 2002) as sacrebleu.corpus_bleu computes it by
 * default: 13a tokenization, 4-grams, one reference per prediction, sums of
 * the per-sample n-gram matches, totals and lengths, brevity penalty, and
 * its default smoothing "exp" (mteval-v13a's: the k-th order with no match
 * counts as 1 / (2^k x total)); 0 when no n-gram matches at all or the
 * prediction side has no 4-gram; result x 100.  Zero-initialise, accumulate
 * with ilm__bleu_add, then compute once. */
typedef struct ilm__bleu {
    double match[4], total[4], pred_len, ref_len;
} ilm__bleu;
/* Adds one (pred, ref) pair's statistics; ILM_ERR_NOMEM is the only
 * failure (b is then unchanged). */
ilm_status ilm__bleu_add(ilm__bleu *b, const char *pred, const char *ref);
double     ilm__bleu_score(const ilm__bleu *b);

/* Mean and standard error of per-sample scores, as lm-eval reports them:
 * stderr = sample standard deviation (n - 1 denominator) / sqrt(n); mean 0
 * for n = 0, stderr 0 for n < 2. */
void ilm__mean_stderr(const double *x, size_t n, double *mean, double *stderr_);

/* ---- running generated programs (exec.c) -------------------------------- */

typedef struct ilm__exec_opts {
    double timeout_s;    /* wall clock; the CPU limit is one second more */
    size_t memory_bytes; /* RLIMIT_AS */
    size_t file_bytes;   /* RLIMIT_FSIZE */
} ilm__exec_opts;

typedef struct ilm__exec_result {
    bool   passed;           /* exited with status 0 in time */
    bool   timed_out;        /* killed, with its process group, at the timeout */
    bool   network_isolated; /* ran in its own network namespace */
    int    exit_code;        /* -1 unless it exited */
    int    signal;           /* the signal that ended it, or 0 */
    double seconds;
} ilm__exec_result;

/* 10 s, 2 GiB of address space, 16 MiB files. */
void ilm__exec_defaults(ilm__exec_opts *o);
/* Runs `program` (len bytes) with `interpreter` ("python3", looked up in
 * PATH) as `interpreter program` in a fresh empty temporary directory, in
 * its own process group, with the limits of `o`, no stdin, its output
 * discarded, and no network where the kernel allows a network namespace
 * (r->network_isolated says).  A failing, crashing or timed-out program is
 * ILM_OK with r->passed false; ILM_ERR_UNSUPPORTED when the interpreter
 * cannot be run, ILM_ERR_IO when the sandbox cannot be set up. */
ilm_status ilm__exec_program(const char *interpreter, const char *program, size_t len,
                             const ilm__exec_opts *o, ilm__exec_result *r);

#endif /* ILM_EVAL_EVAL_H */
