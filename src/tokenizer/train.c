/* ilm_tokenizer_train: learns a SentencePiece-BPE tokenizer from text files
 * and writes it as a tokenizer.model.
 *
 * The corpus is prepared the way sentencepiece's trainer prepares it
 * (trainer_interface.cc), so that a model trained here behaves like one
 * trained there with model_type=bpe, normalization_rule_name=identity,
 * remove_extra_whitespaces=false:
 *
 *  - every line of every input file is a sentence; empty lines, lines longer
 *    than max_sentence_length bytes and lines holding the reserved U+2585
 *    are skipped; input_sentence_size > 0 keeps a uniform sample of that
 *    many lines (reservoir sampling, Philox stream under `seed`);
 *  - normalization is the identity, spaces become "▁" (U+2581) and, with
 *    add_dummy_prefix, a "▁" is put in front; bytes that are not UTF-8 count
 *    as U+FFFD, as sentencepiece's normalizer makes them;
 *  - the meta pieces (<unk>, <s>, </s>, user-defined symbols, byte pieces)
 *    written in the text and NUL bytes are cut out, so no learned piece
 *    contains them;
 *  - the sentence splits into words before each "▁";
 *  - characters are sorted by frequency and kept until character_coverage
 *    of all characters is covered; the rest never join a piece: the encoder
 *    maps them to <unk> or to byte pieces.
 *
 * train_bpe.c then learns the merges.  The vocabulary is laid out as
 * sentencepiece lays it out: <unk> = 0, <s> = 1, </s> = 2, the user-defined
 * symbols, with byte_fallback the 256 pieces <0x00>..<0xFF>, then the merged
 * pieces with scores 0, -1, -2, ... in merge order and the required
 * characters after them, by decreasing frequency, continuing the scores.
 */
#include "tokenizer/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* U+2585, which sentencepiece reserves for unknown characters while it
 * trains: a line containing it is skipped, as there. */
#define RESERVED_UNK_STR "\xe2\x96\x85"

typedef struct train_opts {
    const cJSON *input;        /* array of paths */
    const char  *out;
    int64_t      vocab_size;
    bool         byte_fallback;
    bool         split_digits;
    const cJSON *user_defined; /* array of strings, or NULL */
    double       character_coverage;
    bool         add_dummy_prefix;
    int64_t      max_sentence_length;
    int64_t      input_sentence_size;
    int64_t      seed;
} train_opts;

/* A line kept by the sampler: bytes [off, off + len) of input file `file`. */
typedef struct line_ref {
    uint32_t file;
    uint32_t len;
    size_t   off;
} line_ref;

typedef struct trainer {
    train_opts opts;
    ilm__train_progress progress;

    /* Meta pieces, in vocabulary order; strings are borrowed (literals, the
     * config tree, byte_names). */
    const char **meta;
    size_t       n_meta, n_user;
    char         byte_names[256][7];
    ilm__strmap  meta_ids;
    bool         meta_first[256]; /* first bytes of meta pieces */
    size_t       meta_max_len;

    ilm__mmap *files;
    size_t     n_files;
    uint64_t   total_bytes, done_bytes, next_report;

    /* The distinct words and a hash index over them. */
    ilm__train_words words;
    int32_t  *slot;     /* word index or -1 */
    uint64_t *hash;     /* per word */
    size_t    n_slots;

    ilm__buf norm;      /* one normalized sentence */
    int64_t  n_sentences, n_too_long, n_reserved;
} trainer;

ilm_status ilm__train_report(const ilm__train_progress *p, const char *stage,
                             uint64_t done, uint64_t total)
{
    if (!p || !p->fn) return ILM_OK;
    ILM__RETURN_IF(p->fn(p->user, stage, done, total) != 0, ILM_ERR_CANCELLED,
                   "tokenizer train: cancelled by the progress callback during '%s'", stage);
    return ILM_OK;
}

/* ---- configuration ----------------------------------------------------- */

static ilm_status check_strings(const cJSON *arr, const char *key, bool allow_empty_array)
{
    ILM__RETURN_IF(!allow_empty_array && cJSON_GetArraySize(arr) == 0, ILM_ERR_CONFIG,
                   "config: '%s' must not be empty", key);
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next, i++)
        ILM__RETURN_IF(!cJSON_IsString(v) || !v->valuestring[0], ILM_ERR_CONFIG,
                       "config: '%s[%d]' must be a non-empty string", key, i);
    return ILM_OK;
}

static ilm_status parse_config(const cJSON *root, train_opts *o)
{
    *o = (train_opts){
        .vocab_size = 0, .byte_fallback = true, .split_digits = true,
        .character_coverage = 0.9995, .add_dummy_prefix = false,
        .max_sentence_length = 4192, .input_sentence_size = 0, .seed = 0,
    };
    const ilm__jfield fields[] = {
        { "input", ILM__J_ARRAY, &o->input, true, 0, 0 },
        { "out", ILM__J_STRING, &o->out, true, 0, 0 },
        { "vocab_size", ILM__J_INT, &o->vocab_size, true, 1, INT32_MAX },
        { "byte_fallback", ILM__J_BOOL, &o->byte_fallback, false, 0, 0 },
        { "split_digits", ILM__J_BOOL, &o->split_digits, false, 0, 0 },
        { "user_defined_symbols", ILM__J_ARRAY, &o->user_defined, false, 0, 0 },
        { "character_coverage", ILM__J_NUMBER, &o->character_coverage, false, 0, 1 },
        { "add_dummy_prefix", ILM__J_BOOL, &o->add_dummy_prefix, false, 0, 0 },
        { "max_sentence_length", ILM__J_INT, &o->max_sentence_length, false, 1, UINT32_MAX },
        { "input_sentence_size", ILM__J_INT, &o->input_sentence_size, false, 0, 1e15 },
        { "seed", ILM__J_INT, &o->seed, false, -9007199254740991.0, 9007199254740991.0 },
    };
    ILM__FORWARD(ilm__json_fields(root, "", fields, sizeof fields / sizeof fields[0]));
    ILM__RETURN_IF(o->character_coverage <= 0, ILM_ERR_CONFIG,
                   "config: 'character_coverage' must be in (0, 1], got %g",
                   o->character_coverage);
    ILM__RETURN_IF(!o->out[0], ILM_ERR_CONFIG, "config: 'out' must not be empty");
    ILM__FORWARD(check_strings(o->input, "input", false));
    if (o->user_defined) ILM__FORWARD(check_strings(o->user_defined, "user_defined_symbols", true));
    return ILM_OK;
}

/* <unk>, <s>, </s>, user-defined symbols, byte pieces: sentencepiece's
 * meta pieces, which come first in the vocabulary and never in a learned
 * piece. */
static ilm_status build_meta(trainer *tr)
{
    size_t n_user = tr->opts.user_defined ? (size_t)cJSON_GetArraySize(tr->opts.user_defined) : 0;
    size_t n = 3 + n_user + (tr->opts.byte_fallback ? 256 : 0);
    tr->meta = ilm__calloc(n, sizeof *tr->meta);
    ILM__RETURN_IF(!tr->meta, ILM_ERR_NOMEM, "tokenizer train: out of memory");
    tr->meta[tr->n_meta++] = "<unk>";
    tr->meta[tr->n_meta++] = "<s>";
    tr->meta[tr->n_meta++] = "</s>";
    if (tr->opts.user_defined)
        for (const cJSON *v = tr->opts.user_defined->child; v; v = v->next)
            tr->meta[tr->n_meta++] = v->valuestring;
    tr->n_user = n_user;
    if (tr->opts.byte_fallback)
        for (int b = 0; b < 256; b++) {
            snprintf(tr->byte_names[b], sizeof tr->byte_names[b], "<0x%02X>", b);
            tr->meta[tr->n_meta++] = tr->byte_names[b];
        }
    for (size_t i = 0; i < tr->n_meta; i++) {
        size_t len = strlen(tr->meta[i]);
        ILM__RETURN_IF(ilm__strmap_get(&tr->meta_ids, tr->meta[i], len) >= 0, ILM_ERR_CONFIG,
                      "config: user-defined symbol '%s' is already a special piece or "
                      "listed twice", tr->meta[i]);
        ILM__FORWARD(ilm__strmap_put(&tr->meta_ids, tr->meta[i], len, (int32_t)i));
        tr->meta_first[(uint8_t)tr->meta[i][0]] = true;
        if (len > tr->meta_max_len) tr->meta_max_len = len;
    }
    return ILM_OK;
}

/* ---- distinct words ---------------------------------------------------- */

static ilm_status words_rehash(trainer *tr)
{
    size_t n = tr->n_slots ? tr->n_slots * 2 : 1024;
    int32_t *slot = ilm__malloc(n * sizeof *slot);
    ILM__RETURN_IF(!slot, ILM_ERR_NOMEM, "tokenizer train: out of memory");
    memset(slot, 0xff, n * sizeof *slot);
    for (size_t w = 0; w < tr->words.n; w++) {
        size_t j = tr->hash[w] & (n - 1);
        while (slot[j] >= 0) j = (j + 1) & (n - 1);
        slot[j] = (int32_t)w;
    }
    ilm__free(tr->slot);
    tr->slot = slot;
    tr->n_slots = n;
    return ILM_OK;
}

static ilm_status words_grow(trainer *tr)
{
    ilm__train_words *w = &tr->words;
    size_t cap = w->cap ? w->cap * 2 : 1024;
    ILM__RETURN_IF(cap > INT32_MAX, ILM_ERR_RANGE, "tokenizer train: more than 2^31 distinct words");
    size_t   *off = ilm__realloc(w->off, cap * sizeof *off);
    if (off) w->off = off;
    uint32_t *len = ilm__realloc(w->len, cap * sizeof *len);
    if (len) w->len = len;
    int64_t  *freq = ilm__realloc(w->freq, cap * sizeof *freq);
    if (freq) w->freq = freq;
    uint64_t *hash = ilm__realloc(tr->hash, cap * sizeof *hash);
    if (hash) tr->hash = hash;
    ILM__RETURN_IF(!off || !len || !freq || !hash, ILM_ERR_NOMEM, "tokenizer train: out of memory");
    w->cap = cap;
    return ILM_OK;
}

/* Counts one occurrence of the word s[0..n). */
static ilm_status count_word(trainer *tr, const char *s, size_t n)
{
    if (n == 0) return ILM_OK;
    ilm__train_words *w = &tr->words;
    if (2 * (w->n + 1) > tr->n_slots) ILM__FORWARD(words_rehash(tr));
    uint64_t h = ilm__hash_bytes(s, n);
    size_t j = h & (tr->n_slots - 1);
    for (; tr->slot[j] >= 0; j = (j + 1) & (tr->n_slots - 1)) {
        int32_t k = tr->slot[j];
        if (tr->hash[k] == h && w->len[k] == n && memcmp(w->text.p + w->off[k], s, n) == 0) {
            w->freq[k]++;
            return ILM_OK;
        }
    }
    if (w->n == w->cap) ILM__FORWARD(words_grow(tr));
    size_t off = w->text.n;
    ILM__FORWARD(ilm__buf_append(&w->text, s, n));
    w->off[w->n] = off;
    w->len[w->n] = (uint32_t)n;
    w->freq[w->n] = 1;
    tr->hash[w->n] = h;
    tr->slot[j] = (int32_t)w->n;
    w->n++;
    return ILM_OK;
}

/* ---- sentences --------------------------------------------------------- */

/* Length of the longest meta piece at s (n bytes left), or 0. */
static size_t match_meta(const trainer *tr, const char *s, size_t n)
{
    size_t max = tr->meta_max_len < n ? tr->meta_max_len : n;
    for (size_t len = max; len > 0; len--)
        if (ilm__strmap_get(&tr->meta_ids, s, len) >= 0) return len;
    return 0;
}

/* Normalizes one line into tr->norm: "▁" for spaces, U+FFFD for bytes that
 * are not UTF-8, a NUL for each cut (NUL, meta piece). */
static ilm_status normalize(trainer *tr, const char *s, size_t n)
{
    ilm__buf *b = &tr->norm;
    b->n = 0;
    if (tr->opts.add_dummy_prefix) ILM__FORWARD(ilm__buf_append(b, ILM__WS_STR, 3));
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        size_t m = tr->meta_first[c] ? match_meta(tr, s + i, n - i) : 0;
        if (m) {
            ILM__FORWARD(ilm__buf_putc(b, '\0'));
            i += m;
        } else if (c == ' ') {
            ILM__FORWARD(ilm__buf_append(b, ILM__WS_STR, 3));
            i++;
        } else {
            uint32_t cp;
            size_t k = ilm__utf8_decode(s + i, n - i, &cp);
            if (k == 0) {
                ILM__FORWARD(ilm__buf_append(b, "\xef\xbf\xbd", 3));
                i++;
            } else {
                ILM__FORWARD(ilm__buf_append(b, s + i, k));
                i += k;
            }
        }
    }
    return ILM_OK;
}

/* Splits the normalized sentence into words: one starts at each "▁" and
 * after each cut. */
static ilm_status count_sentence(trainer *tr, const char *s, size_t n)
{
    ILM__FORWARD(normalize(tr, s, n));
    const char *p = tr->norm.p;
    size_t len = tr->norm.n, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\0') {
            ILM__FORWARD(count_word(tr, p + start, i - start));
            start = i + 1;
        } else if (i > start && i + 3 <= len && memcmp(p + i, ILM__WS_STR, 3) == 0) {
            ILM__FORWARD(count_word(tr, p + start, i - start));
            start = i;
        }
    }
    ILM__FORWARD(count_word(tr, p + start, len - start));
    tr->n_sentences++;
    return ILM_OK;
}

/* Whether the line is a sentence to train on (see the file comment). */
static bool keep_line(trainer *tr, const char *s, size_t n)
{
    if (n == 0) return false;
    if ((int64_t)n > tr->opts.max_sentence_length) {
        tr->n_too_long++;
        return false;
    }
    if (memmem(s, n, RESERVED_UNK_STR, 3)) {
        tr->n_reserved++;
        return false;
    }
    return true;
}

static ilm_status report_bytes(trainer *tr, uint64_t done)
{
    tr->done_bytes = done;
    if (done < tr->next_report) return ILM_OK;
    tr->next_report = done + (1u << 20);
    return ilm__train_report(&tr->progress, "count", done, tr->total_bytes);
}

/* Reads every line of every input.  Without sampling each kept line is
 * counted at once; with sampling the reservoir keeps line references and
 * they are counted at the end. */
static ilm_status read_corpus(trainer *tr)
{
    const cJSON *input = tr->opts.input;
    tr->n_files = (size_t)cJSON_GetArraySize(input);
    tr->files = ilm__calloc(tr->n_files, sizeof *tr->files);
    ILM__RETURN_IF(!tr->files, ILM_ERR_NOMEM, "tokenizer train: out of memory");
    size_t i = 0;
    for (const cJSON *v = input->child; v; v = v->next, i++) {
        ILM__FORWARD(ilm__mmap_open(v->valuestring, &tr->files[i]));
        tr->total_bytes += tr->files[i].size;
    }

    const int64_t k = tr->opts.input_sentence_size;
    line_ref *sample = NULL;
    size_t cap = 0;
    int64_t n_seen = 0, n_sample = 0;
    ilm__rng rng;
    ilm__rng_init(&rng, (uint64_t)tr->opts.seed, 0x7472616eu /* "tran" */);
    ilm_status st = ILM_OK;
    uint64_t base = 0;
    for (size_t f = 0; f < tr->n_files && st == ILM_OK; f++) {
        const char *d = (const char *)tr->files[f].data;
        size_t size = tr->files[f].size;
        for (size_t pos = 0; pos < size && st == ILM_OK;) {
            const char *nl = memchr(d + pos, '\n', size - pos);
            size_t end = nl ? (size_t)(nl - d) : size;
            size_t start = pos, n = end - pos;
            pos = end + 1;
            if (!keep_line(tr, d + start, n)) continue;
            line_ref line = { (uint32_t)f, (uint32_t)n, start }; /* n <= max_sentence_length */
            if (k == 0) {
                st = count_sentence(tr, d + line.off, line.len);
            } else if (n_sample < k) {
                if ((size_t)n_sample == cap) {
                    cap = cap ? 2 * cap : 1024;
                    line_ref *ns = ilm__realloc(sample, cap * sizeof *ns);
                    if (!ns) st = ilm__error(ILM_ERR_NOMEM, "tokenizer train: out of memory");
                    else sample = ns;
                }
                if (st == ILM_OK) sample[n_sample++] = line;
                n_seen++;
            } else {
                /* Reservoir sampling (Vitter's algorithm R): after t lines
                 * each of them is in the sample with probability k / t. */
                uint64_t j = ilm__rng_u64(&rng) % (uint64_t)(n_seen + 1);
                if (j < (uint64_t)k) sample[j] = line;
                n_seen++;
            }
            if (st == ILM_OK) st = report_bytes(tr, base + pos);
        }
        base += size;
    }
    for (int64_t j = 0; j < n_sample && st == ILM_OK; j++)
        st = count_sentence(tr, (const char *)tr->files[sample[j].file].data + sample[j].off,
                            sample[j].len);
    ilm__free(sample);
    if (st == ILM_OK) st = ilm__train_report(&tr->progress, "count", tr->total_bytes, tr->total_bytes);
    return st;
}

/* ---- characters -------------------------------------------------------- */

typedef struct char_count {
    uint32_t cp;
    int64_t  count;
} char_count;

static int by_count(const void *x, const void *y)
{
    const char_count *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return a->cp < b->cp ? -1 : a->cp > b->cp;
}

/* The required characters: the most frequent ones until
 * character_coverage of all characters is covered.  The coverage is
 * compared in float, as sentencepiece does. */
static ilm_status required_chars(trainer *tr, uint32_t **out, size_t *n_out)
{
    ilm__u64map idx = { 0 };
    char_count *cc = NULL;
    size_t n = 0, cap = 0;
    int64_t all = 0;
    ilm_status st = ILM_OK;
    const ilm__train_words *w = &tr->words;
    for (size_t i = 0; i < w->n && st == ILM_OK; i++) {
        const char *s = w->text.p + w->off[i];
        for (size_t j = 0; j < w->len[i] && st == ILM_OK;) {
            uint32_t cp;
            size_t k = ilm__utf8_decode(s + j, w->len[i] - j, &cp);
            if (k == 0) { k = 1; cp = 0xFFFD; }
            j += k;
            int32_t at = ilm__u64map_get(&idx, cp);
            if (at < 0) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    char_count *ncc = ilm__realloc(cc, cap * sizeof *ncc);
                    if (!ncc) { st = ilm__error(ILM_ERR_NOMEM, "tokenizer train: out of memory"); break; }
                    cc = ncc;
                }
                at = (int32_t)n;
                cc[n++] = (char_count){ cp, 0 };
                st = ilm__u64map_put(&idx, cp, at);
            }
            cc[at].count += w->freq[i];
            all += w->freq[i];
        }
    }
    ilm__u64map_free(&idx);
    uint32_t *req = st == ILM_OK ? ilm__malloc((n + 1) * sizeof *req) : NULL;
    if (st == ILM_OK && !req) st = ilm__error(ILM_ERR_NOMEM, "tokenizer train: out of memory");
    size_t n_req = 0;
    if (st == ILM_OK) {
        qsort(cc, n, sizeof *cc, by_count);
        int64_t acc = 0;
        for (size_t i = 0; i < n; i++) {
            float coverage = all ? (float)(1.0 * (double)acc / (double)all) : 1.0f;
            if (coverage >= (float)tr->opts.character_coverage) break;
            acc += cc[i].count;
            req[n_req++] = cc[i].cp;
        }
        *out = req;
        *n_out = n_req;
    } else {
        ilm__free(req);
    }
    ilm__free(cc);
    return st;
}

/* ---- the output -------------------------------------------------------- */

static ilm_status build_tokenizer(const trainer *tr, const ilm__bpe_result *r,
                                  ilm_tokenizer **out)
{
    *out = NULL;
    ilm_tokenizer *t = NULL;
    ILM__FORWARD(ilm__tok_new(ILM__TOK_SPM_BPE, &t));
    *out = t;
    int32_t n_vocab = (int32_t)tr->n_meta + r->n;
    ILM__FORWARD(ilm__tok_vocab_resize(t, n_vocab));
    const char *what = "tokenizer train";
    for (size_t i = 0; i < tr->n_meta; i++) {
        uint8_t type = i == 0 ? ILM__PIECE_UNKNOWN
                     : i < 3 ? ILM__PIECE_CONTROL
                     : i < 3 + tr->n_user ? ILM__PIECE_USER_DEFINED : ILM__PIECE_BYTE;
        ILM__FORWARD(ilm__tok_set_piece(t, (int32_t)i, tr->meta[i], strlen(tr->meta[i]), 0.0f,
                                       type, what));
    }
    for (int32_t i = 0; i < r->n; i++)
        ILM__FORWARD(ilm__tok_set_piece(t, (int32_t)tr->n_meta + i, r->piece[i], r->len[i],
                                       -(float)i, ILM__PIECE_NORMAL, what));
    t->unk_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    t->pad_id = -1;
    ilm__spm *s = &t->spm;
    s->add_dummy_prefix = tr->opts.add_dummy_prefix;
    s->remove_extra_whitespaces = false;
    s->escape_whitespaces = true;
    s->treat_whitespace_as_suffix = false;
    s->byte_fallback = tr->opts.byte_fallback;
    s->split_digits = tr->opts.split_digits;
    s->normalizer_name = ilm__strdup("identity");
    ILM__RETURN_IF(!s->normalizer_name, ILM_ERR_NOMEM, "tokenizer train: out of memory");
    return ilm__spm_finish(t);
}

static ilm_status train(trainer *tr)
{
    ILM__FORWARD(build_meta(tr));
    ILM__FORWARD(read_corpus(tr));
    if (tr->n_too_long)
        ilm__log(ILM_LOG_INFO, "tokenizer train: skipped %lld lines longer than %lld bytes",
                 (long long)tr->n_too_long, (long long)tr->opts.max_sentence_length);
    ILM__RETURN_IF(tr->words.n == 0, ILM_ERR_CONFIG,
                   "tokenizer train: the input holds no usable sentences (%lld too long)",
                   (long long)tr->n_too_long);

    uint32_t *chars = NULL;
    size_t n_chars = 0;
    ILM__FORWARD(required_chars(tr, &chars, &n_chars));
    int64_t need = (int64_t)tr->n_meta + (int64_t)n_chars;
    if (tr->opts.vocab_size < need) {
        ilm__free(chars);
        return ilm__error(ILM_ERR_CONFIG,
                          "tokenizer train: vocab_size %lld is too small: the special pieces "
                          "(%zu) and the required characters (%zu) need %lld; raise vocab_size "
                          "or lower character_coverage", (long long)tr->opts.vocab_size,
                          tr->n_meta, n_chars, (long long)need);
    }
    int32_t n_merges = (int32_t)(tr->opts.vocab_size - need);
    ilm__bpe_result r;
    ilm_status st = ilm__bpe_learn(&tr->words, chars, n_chars, n_merges, tr->opts.split_digits,
                                   tr->meta, tr->n_meta, &tr->progress, &r);
    ilm__free(chars);
    ILM__FORWARD(st);
    if (r.n_merged < n_merges) {
        st = ilm__error(ILM_ERR_CONFIG,
                        "tokenizer train: vocab_size %lld is too large for this corpus: it "
                        "yields at most %lld pieces", (long long)tr->opts.vocab_size,
                        (long long)(need + r.n_merged));
    }
    ilm_tokenizer *t = NULL;
    if (st == ILM_OK) st = ilm__train_report(&tr->progress, "merge", (uint64_t)n_merges,
                                             (uint64_t)n_merges);
    if (st == ILM_OK) st = build_tokenizer(tr, &r, &t);
    if (st == ILM_OK) st = ilm__spm_write_model(t, tr->opts.out);
    ilm_tokenizer_free(t);
    ilm__bpe_result_free(&r);
    return st;
}

static void trainer_free(trainer *tr)
{
    for (size_t i = 0; i < tr->n_files; i++) ilm__mmap_close(&tr->files[i]);
    ilm__free(tr->files);
    ilm__free(tr->meta);
    ilm__strmap_free(&tr->meta_ids);
    ilm__buf_free(&tr->words.text);
    ilm__free(tr->words.off);
    ilm__free(tr->words.len);
    ilm__free(tr->words.freq);
    ilm__free(tr->slot);
    ilm__free(tr->hash);
    ilm__buf_free(&tr->norm);
}

ilm_status ilm_tokenizer_train(const char *config, ilm_progress_fn progress, void *user)
{
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "config", &root));
    trainer *tr = ilm__calloc(1, sizeof *tr);
    ilm_status st = tr ? parse_config(root, &tr->opts)
                       : ilm__error(ILM_ERR_NOMEM, "tokenizer train: out of memory");
    if (st == ILM_OK) {
        tr->progress = (ilm__train_progress){ progress, user };
        st = train(tr);
    }
    if (tr) trainer_free(tr);
    ilm__free(tr);
    cJSON_Delete(root);
    return st;
}
