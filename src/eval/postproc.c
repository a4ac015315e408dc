/*
 * src/eval/postproc.c -- answer extraction from generated text: the
 * post-processors OpenCompass applies before scoring (first capital, first
 * option, GSM8K), SQuAD's answer normalization, the last number and the
 * first fenced code block.  Also lm-eval's WikiText detokenizer, a text
 * transform that the rolling mode applies before scoring.
 *
 * The references are Python functions over str, so "a character" here is a
 * code point, and the character classes are Python's: whitespace is
 * str.isspace(), an uppercase letter str.isupper(), a word character re's
 * \w (letters, numbers, '_'), a digit re's \d (Unicode Nd).  utf8proc's
 * tables give the same answers as CPython 3.11 on every assigned code point
 * (checked over the whole range when this file was written).  Text that is
 * not valid UTF-8 is first repaired: every byte that does not start a valid
 * sequence becomes U+FFFD, so no input can make a match fail.
 */
#include "eval/eval.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>
#include <utf8proc.h>

static const char *const pp_names[ILM__PP_COUNT] = {
    [ILM__PP_NONE] = "none",
    [ILM__PP_STRIP] = "strip",
    [ILM__PP_FIRST_CAPITAL] = "first_capital",
    [ILM__PP_FIRST_OPTION] = "first_option",
    [ILM__PP_LAST_NUMBER] = "last_number",
    [ILM__PP_GSM8K] = "gsm8k",
    [ILM__PP_GSM8K_GOLD] = "gsm8k_gold",
    [ILM__PP_EM_NORMALIZE] = "em_normalize",
    [ILM__PP_CODE_BLOCK] = "code_block",
    [ILM__PP_WIKITEXT] = "wikitext_detokenizer",
};

bool ilm__postproc_parse(const char *name, ilm__postproc *out)
{
    for (int i = 0; name && i < ILM__PP_COUNT; i++) {
        if (strcmp(name, pp_names[i]) == 0) {
            *out = (ilm__postproc)i;
            return true;
        }
    }
    return false;
}

const char *ilm__postproc_name(ilm__postproc p)
{
    return (unsigned)p < ILM__PP_COUNT ? pp_names[p] : "unknown";
}

/* ---- characters ---------------------------------------------------------- */

bool ilm__py_isspace(uint32_t c)
{
    /* CPython's _PyUnicode_IsWhitespace: bidirectional class WS, B or S, or
     * category Zs.  Unlike Unicode's White_Space it has U+001C..U+001F. */
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t ilm__py_rstrip_len(const char *s, size_t n)
{
    /* Back one code point at a time: from the last byte over at most three
     * continuation bytes to a lead byte; the sequence read forward from
     * there must end exactly at n, else the last byte is not valid UTF-8
     * (U+FFFD to Python, which is not whitespace).  A valid sequence's
     * lead is never a continuation byte, so a forward decode of the whole
     * text meets the same code points. */
    while (n > 0) {
        size_t at = n - 1;
        while (at > 0 && n - at < 4 && ((unsigned char)s[at] & 0xC0) == 0x80) at--;
        size_t i = at;
        uint32_t cp = ilm__utf8_next(s, n, &i);
        if (i != n || !ilm__py_isspace(cp)) break;
        n = at;
    }
    return n;
}

ilm_status ilm__utf8_repair(const char *text, size_t len, ilm__buf *out)
{
    ILM__FORWARD(ilm__buf_reserve(out, len));
    size_t i = 0;
    while (i < len) {
        size_t run = i; /* copy valid runs whole */
        uint32_t cp;
        size_t k;
        while (run < len && (k = ilm__utf8_decode(text + run, len - run, &cp)) != 0) run += k;
        ILM__FORWARD(ilm__buf_append(out, text + i, run - i));
        if (run < len) {
            ILM__FORWARD(ilm__buf_append(out, "\xEF\xBF\xBD", 3));
            run++;
        }
        i = run;
    }
    return ILM_OK;
}

static bool is_word(uint32_t c)
{
    if (c == '_') return true;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* The value of a decimal digit (re's \d, Unicode Nd), or -1.  Unicode
 * assigns Nd only in runs of ten ascending from zero, and adjacent runs
 * each start at a zero, so the value is the position within the run. */
static int digit_value(uint32_t c)
{
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c < 0x80 || utf8proc_category((utf8proc_int32_t)c) != UTF8PROC_CATEGORY_ND) return -1;
    int k = 0;
    while (utf8proc_category((utf8proc_int32_t)(c - (uint32_t)k - 1)) == UTF8PROC_CATEGORY_ND) k++;
    return k % 10;
}

/* [*b, *e) = s without leading and trailing whitespace (str.strip()). */
static void strip_span(const char *s, size_t n, size_t *b, size_t *e)
{
    size_t i = 0, first = n, last = 0;
    while (i < n) {
        size_t at = i;
        if (!ilm__py_isspace(ilm__utf8_next(s, n, &i))) {
            if (first == n) first = at;
            last = i;
        }
    }
    *b = first == n ? 0 : first;
    *e = first == n ? 0 : last;
}

/* ---- first capital ------------------------------------------------------- */

/* OpenCompass first_capital_postprocess: the first character for which
 * str.isupper() holds ("É" counts, as in Python). */
static ilm_status first_capital(const char *s, size_t n, ilm__buf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t at = i;
        uint32_t c = ilm__utf8_next(s, n, &i);
        if (c != 0xFFFD && utf8proc_isupper((utf8proc_int32_t)c))
            return ilm__buf_append(out, s + at, i - at);
    }
    return ILM_OK;
}

/* ---- first option -------------------------------------------------------- */

/* OpenCompass first_option_postprocess(text, options, cushion=True), its
 * current pattern list in its order.  '@' stands for the option class
 * "[{options}]".  Python's \s is spelled out as S (its whitespace is not
 * PCRE2's: it has U+001C..U+001F and U+0085). */
#define WS "\\t-\\r\\x1c-\\x20\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}" \
           "\\x{202f}\\x{205f}\\x{3000}"
#define S  "[" WS "]"
#define NS "[^" WS "]"
static const char *const option_patterns[] = {
    "答案是?" S "*(@)",
    "答案是?" S "*：" S "*(@)",
    "答案是?" S "*:" S "*(@)",
    "答案选项应?该?是" S "*(@)",
    "答案选项应?该?为" S "*(@)",
    "答案应该?是" S "*(@)",
    "答案应该?选" S "*(@)",
    "答案选项为?" S "*：" S "*(@)",
    "答案选项为?" S "+\\(?\\*?\\*?(@)\\*?\\*?\\)?",
    "答案选项是?" S "*:" S "*(@)",
    "答案为" S "*(@)",
    "答案选" S "*(@)",
    "选择?" S "*(@)",
    /* Upstream lacks the comma after '故选?\s*([{options}])', so Python
     * joins it with the next literal into this one pattern; kept so that
     * the answers agree. */
    "故选?" S "*(@)只有选?项?" S "?(@)" S "?是?对",
    "只有选?项?" S "?(@)" S "?是?错",
    "只有选?项?" S "?(@)" S "?不?正确",
    "只有选?项?" S "?(@)" S "?错误",
    "说法不?对选?项?的?是" S "?(@)",
    "说法不?正确选?项?的?是" S "?(@)",
    "说法错误选?项?的?是" S "?(@)",
    "(@)" S "?是正确的",
    "(@)" S "?是正确答案",
    "选项" S "?(@)" S "?正确",
    "所以答" S "?(@)",
    "所以" S "?(@[.。$]?$)",
    "所有" S "?(@[.。$]?$)",
    "[" WS "，：:,](@)[。，,\\.]?$",
    "[" WS "，,：:][故即](@)[。\\.]?$",
    "[" WS "，,：:]因此(@)[。\\.]?$",
    "[是为。]" S "?(@)[。\\.]?$",
    "因此" S "?(@)[。\\.]?$",
    "显然" S "?(@)[。\\.]?$",
    "答案是" S "?(" NS "+)(?:。|$)",
    "答案应该是" S "?(" NS "+)(?:。|$)",
    "答案为" S "?(" NS "+)(?:。|$)",
    "(?i)ANSWER" S "*:" S "*(@)",
    "[Tt]he answer is:?" S "+\\(?(@)\\)?",
    "[Tt]he answer is:?" S "+\\(?\\*?\\*?(@)\\*?\\*?\\)?",
    "[Tt]he answer is option:?" S "+\\(?(@)\\)?",
    "[Tt]he correct answer is:?" S "+\\(?(@)\\)?",
    "[Tt]he correct answer is option:?" S "+\\(?(@)\\)?",
    "[Tt]he correct answer is:?.*?boxed\\{(@)\\}",
    "[Tt]he correct option is:?.*?boxed\\{(@)\\}",
    "[Tt]he correct answer option is:?.*?boxed\\{(@)\\}",
    "[Tt]he answer to the question is:?" S "+\\(?(@)\\)?",
    "^选项" S "?(@)",
    "^(@)" S "?选?项",
    "(" S "|^)@[" WS "。，,：:\\.$]",
    "1." S "?(.*?)$",
    "1." S "?(@)[.。$]?$",
    /* the cushion patterns */
    "(@):",
    "(@)",
};
#undef S
#undef NS
#undef WS

#define N_OPTION_PATTERNS (sizeof option_patterns / sizeof *option_patterns)

/* PCRE2 allocates through the library allocator, as in the tokenizer. */
static void *pcre_alloc(PCRE2_SIZE n, void *user) { (void)user; return ilm__malloc(n); }
static void  pcre_release(void *p, void *user) { (void)user; ilm__free(p); }

typedef struct option_search {
    const char             *text;  /* stripped, valid UTF-8 */
    size_t                  n;
    const char             *cls;   /* "[\x{41}\x{42}...]" */
    const uint32_t         *opts;  /* the option characters, in order */
    size_t                  n_opts;
    pcre2_general_context  *gc;
    pcre2_compile_context  *cc;
    pcre2_match_data       *md;
    ilm__buf                pat;
} option_search;

/* The first option character (in options order) inside [b, e) of the
 * text, or 0. */
static uint32_t option_in(const option_search *o, size_t b, size_t e)
{
    for (size_t k = 0; k < o->n_opts; k++) {
        char u[4];
        size_t ul = ilm__utf8_encode(o->opts[k], u);
        for (size_t i = b; i + ul <= e; i++)
            if (memcmp(o->text + i, u, ul) == 0) return o->opts[k];
    }
    return 0;
}

/* Tries pattern `p`: on a match, *found gets the option its group 1 (or,
 * when that is unset or empty, the whole match) holds first, or 0. */
static ilm_status try_pattern(option_search *o, const char *p, uint32_t *found)
{
    *found = 0;
    o->pat.n = 0;
    for (; *p; p++) {
        ilm_status s = *p == '@' ? ilm__buf_append(&o->pat, o->cls, strlen(o->cls))
                                 : ilm__buf_putc(&o->pat, *p);
        ILM__FORWARD(s);
    }
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)o->pat.p, o->pat.n,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOTALL, &err, &at, o->cc);
    if (!re) {
        ILM__RETURN_IF(err == PCRE2_ERROR_NOMEMORY || err == PCRE2_ERROR_HEAP_FAILED,
                       ILM_ERR_NOMEM, "first_option: out of memory compiling a pattern");
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ilm__error(ILM_ERR_INTERNAL, "first_option: pattern '%s': %s at %zu", o->pat.p,
                          (const char *)msg, (size_t)at);
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)o->text, o->n, 0, PCRE2_NO_UTF_CHECK, o->md, NULL);
    pcre2_code_free(re);
    ILM__RETURN_IF(rc == PCRE2_ERROR_NOMEMORY, ILM_ERR_NOMEM,
                   "first_option: out of memory matching %zu bytes", o->n);
    /* Any other failure (a match, depth or heap limit) is taken as no match. */
    if (rc < 0) return ILM_OK;
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(o->md);
    size_t b = ov[0], e = ov[1];
    if (rc >= 2 && ov[2] != PCRE2_UNSET && ov[3] > ov[2]) {
        b = ov[2];
        e = ov[3];
    }
    *found = option_in(o, b, e);
    return ILM_OK;
}

static ilm_status first_option(const char *text, size_t len, const char *options, ilm__buf *out)
{
    if (!options) options = "ABCD";
    size_t olen = strlen(options);
    ilm__buf fixed = { 0 }, cls = { 0 };
    uint32_t *opts = ilm__malloc((olen + 1) * sizeof *opts);
    ilm_status s = opts ? ilm__utf8_repair(text, len, &fixed)
                        : ilm__error(ILM_ERR_NOMEM, "first_option: no memory");
    size_t n_opts = 0;
    if (s == ILM_OK) s = ilm__buf_putc(&cls, '[');
    for (size_t i = 0; s == ILM_OK && i < olen;) {
        uint32_t c = ilm__utf8_next(options, olen, &i);
        if (c == 0xFFFD) continue; /* not an option anyone can type */
        opts[n_opts++] = c;
        s = ilm__buf_printf(&cls, "\\x{%x}", (unsigned)c);
    }
    if (s == ILM_OK) s = ilm__buf_putc(&cls, ']');

    option_search o = { 0 };
    if (s == ILM_OK) {
        size_t b, e;
        strip_span(fixed.p ? fixed.p : "", fixed.n, &b, &e);
        o.text = fixed.p ? fixed.p + b : "";
        o.n = e - b;
        o.cls = cls.p;
        o.opts = opts;
        o.n_opts = n_opts;
    }
    /* What a pattern returns is an option found inside the text, so a text
     * without any needs no pattern (and an empty option list finds none). */
    if (s == ILM_OK && n_opts > 0 && option_in(&o, 0, o.n) != 0) {
        o.gc = pcre2_general_context_create(pcre_alloc, pcre_release, NULL);
        o.cc = o.gc ? pcre2_compile_context_create(o.gc) : NULL;
        o.md = o.gc ? pcre2_match_data_create(8, o.gc) : NULL;
        if (!o.cc || !o.md) s = ilm__error(ILM_ERR_NOMEM, "first_option: no memory for PCRE2");
        for (size_t k = 0; s == ILM_OK && k < N_OPTION_PATTERNS; k++) {
            uint32_t found;
            s = try_pattern(&o, option_patterns[k], &found);
            if (s == ILM_OK && found) {
                char u[4];
                s = ilm__buf_append(out, u, ilm__utf8_encode(found, u));
                break;
            }
        }
        pcre2_match_data_free(o.md);
        pcre2_compile_context_free(o.cc);
        pcre2_general_context_free(o.gc);
    }
    ilm__buf_free(&o.pat);
    ilm__buf_free(&cls);
    ilm__buf_free(&fixed);
    ilm__free(opts);
    return s;
}

/* ---- numbers ------------------------------------------------------------- */

/* Appends the digits of [b, e) as ASCII, without the commas. */
static ilm_status put_number(const char *s, size_t b, size_t e, ilm__buf *out)
{
    while (b < e) {
        uint32_t c = ilm__utf8_next(s, e, &b);
        int d = digit_value(c);
        if (d >= 0) ILM__FORWARD(ilm__buf_putc(out, (char)('0' + d)));
        else if (c != ',') ILM__FORWARD(ilm__buf_putc(out, (char)c)); /* '-' or '.' */
    }
    return ILM_OK;
}

/* The end of the run of digits starting at i (i itself when none). */
static size_t digits_end(const char *s, size_t n, size_t i)
{
    while (i < n) {
        size_t j = i;
        if (digit_value(ilm__utf8_next(s, n, &j)) < 0) break;
        i = j;
    }
    return i;
}

/* Whether s[i] starts a digit. */
static bool digit_at(const char *s, size_t n, size_t i)
{
    return i < n && digit_value(ilm__utf8_next(s, n, &i)) >= 0;
}

/* The last match of  -?\d+(?:,\d{3}(?!\d))*(?:\.\d+)?  in [0, n), scanning
 * as re.findall does: [*b, *e), or *b == *e when there is none.  With
 * `commas` false the middle group is left out, which is OpenCompass's
 * gsm8k_postprocess pattern  -?\d+\.\d+|-?\d+. */
static void last_number(const char *s, size_t n, bool commas, size_t *b, size_t *e)
{
    *b = *e = 0;
    size_t i = 0;
    while (i < n) {
        size_t start = i, j = i;
        if (s[j] == '-') j++;
        if (!digit_at(s, n, j)) {
            ilm__utf8_next(s, n, &i);
            continue;
        }
        j = digits_end(s, n, j);
        while (commas && j < n && s[j] == ',') {
            size_t m = j + 1, after3 = j;
            int count = 0; /* ,\d{3}(?!\d): exactly three digits */
            while (count < 4 && digit_at(s, n, m)) {
                ilm__utf8_next(s, n, &m);
                if (++count == 3) after3 = m;
            }
            if (count != 3) break;
            j = after3;
        }
        if (j < n && s[j] == '.' && digit_at(s, n, j + 1)) j = digits_end(s, n, j + 1);
        *b = start;
        *e = j;
        i = j;
    }
}

static ilm_status last_number_pp(const char *text, size_t len, ilm__buf *out)
{
    size_t b, e;
    last_number(text, len, true, &b, &e);
    return put_number(text, b, e, out);
}

/* OpenCompass gsm8k_postprocess: the text before the first "Question:", its
 * last number by  -?\d+\.\d+|-?\d+,  or "NULL" when it has none.  The
 * number is then written as OpenCompass's Gsm8kEvaluator compares it
 * (float(pred) against int(gold)), so that plain string equality with the
 * gold gives the same verdict: ASCII digits, leading zeros and a fraction of
 * zeros dropped ("018.00" -> "18", "-0" -> "0"). */
static ilm_status gsm8k(const char *text, size_t len, ilm__buf *out)
{
    const char *q = memmem(text, len, "Question:", 9);
    size_t n = q ? (size_t)(q - text) : len;
    size_t b, e;
    last_number(text, n, false, &b, &e);
    if (b == e) return ilm__buf_append(out, "NULL", 4);

    ilm__buf num = { 0 };
    ilm_status s = put_number(text, b, e, &num);
    if (s == ILM_OK) {
        const char *p = num.p, *end = num.p + num.n;
        bool neg = *p == '-';
        if (neg) p++;
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *int_end = dot ? dot : end;
        if (dot) {
            const char *f = dot + 1;
            while (f < end && *f == '0') f++;
            if (f == end) end = dot; /* only zeros after the point */
        }
        while (p + 1 < int_end && *p == '0') p++;
        bool zero = (size_t)(end - p) == 1 && *p == '0';
        if (neg && !zero) s = ilm__buf_putc(out, '-');
        if (s == ILM_OK) s = ilm__buf_append(out, p, (size_t)(end - p));
    }
    ilm__buf_free(&num);
    return s;
}

/* OpenCompass gsm8k_dataset_postprocess: text.split('#### ')[1] with the
 * commas removed, i.e. what lies between the first "#### " and the next one
 * (or the end); surrounding whitespace is stripped too, as int() in the
 * evaluator ignores it.  "" when there is no "#### " (where Python raises). */
static ilm_status gsm8k_gold(const char *text, size_t len, ilm__buf *out)
{
    const char *h = memmem(text, len, "#### ", 5);
    if (!h) return ILM_OK;
    const char *p = h + 5;
    size_t rest = len - (size_t)(p - text);
    const char *h2 = memmem(p, rest, "#### ", 5);
    size_t n = h2 ? (size_t)(h2 - p) : rest, b, e;
    strip_span(p, n, &b, &e);
    for (size_t i = b; i < e; i++)
        if (p[i] != ',') ILM__FORWARD(ilm__buf_putc(out, p[i]));
    return ILM_OK;
}

/* ---- SQuAD normalization ------------------------------------------------- */

/* SQuAD's normalize_answer (evaluate-v1.1.py): lower(), drop the ASCII
 * punctuation of string.punctuation, replace the words a / an / the (re's
 * \b(a|an|the)\b) with a space, and join str.split() with single spaces.
 * Lower case is str.lower(): utf8proc's simple mapping, plus U+0130, which
 * Python lowers to "i" + U+0307. */
static ilm_status em_normalize(const char *text, size_t len, ilm__buf *out)
{
    static const char punct[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    ilm__buf low = { 0 };
    ilm_status s = ilm__buf_reserve(&low, len);
    for (size_t i = 0; s == ILM_OK && i < len;) {
        uint32_t c = ilm__utf8_next(text, len, &i);
        if (c == 0x130) {
            s = ilm__buf_append(&low, "i\xCC\x87", 3);
            continue;
        }
        c = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        if (c < 0x80 && c != 0 && strchr(punct, (int)c)) continue;
        char u[4];
        s = ilm__buf_append(&low, u, ilm__utf8_encode(c, u));
    }
    /* Word runs that are articles become spaces; then the whitespace runs
     * (now including those spaces) become single spaces between words. */
    bool wrote = false, sep = false;
    for (size_t i = 0; s == ILM_OK && i < low.n;) {
        size_t at = i;
        uint32_t c = ilm__utf8_next(low.p, low.n, &i);
        if (ilm__py_isspace(c)) {
            sep = true;
            continue;
        }
        if (is_word(c)) {
            while (i < low.n) {
                size_t j = i;
                if (!is_word(ilm__utf8_next(low.p, low.n, &j))) break;
                i = j;
            }
            size_t w = i - at;
            const char *p = low.p + at;
            if ((w == 1 && p[0] == 'a') || (w == 2 && memcmp(p, "an", 2) == 0) ||
                (w == 3 && memcmp(p, "the", 3) == 0)) {
                sep = true;
                continue;
            }
        }
        if (sep && wrote) s = ilm__buf_putc(out, ' ');
        if (s == ILM_OK) s = ilm__buf_append(out, low.p + at, i - at);
        sep = false;
        wrote = true;
    }
    ilm__buf_free(&low);
    return s;
}

/* ---- code blocks ----------------------------------------------------------- */

/* OpenCompass humaneval_postprocess_v2 (as released, 0.5.x): the first
 * match of ```\w*\n(.*?)``` (re.DOTALL), else the whole text; then
 * str.lstrip(). */
static ilm_status code_block(const char *s, size_t n, ilm__buf *out)
{
    size_t b = 0, e = n;
    for (size_t i = 0; i + 3 <= n; i++) {
        if (memcmp(s + i, "```", 3) != 0) continue;
        size_t j = i + 3;
        while (j < n) {
            size_t k = j;
            if (!is_word(ilm__utf8_next(s, n, &k))) break;
            j = k;
        }
        if (j >= n || s[j] != '\n') continue;
        const char *close = memmem(s + j + 1, n - (j + 1), "```", 3);
        /* No closing fence after this opening means none after any later
         * one either: the text has no block. */
        if (close) {
            b = j + 1;
            e = (size_t)(close - s);
        }
        break;
    }
    while (b < e) {
        size_t k = b;
        if (!ilm__py_isspace(ilm__utf8_next(s, e, &k))) break;
        b = k;
    }
    return ilm__buf_append(out, s + b, e - b);
}

/* ---- the WikiText detokenizer --------------------------------------------- */

/* Python's s.replace(from, to): every non-overlapping occurrence, left to
 * right.  Byte-wise search gives the same matches as over code points,
 * since a valid UTF-8 needle can only match at a code point boundary. */
static ilm_status replace_all(const ilm__buf *in, const char *from, const char *to, ilm__buf *out)
{
    size_t fl = strlen(from), tl = strlen(to), i = 0;
    out->n = 0;
    ILM__FORWARD(ilm__buf_reserve(out, in->n));
    for (;;) {
        const char *at = memmem(in->p + i, in->n - i, from, fl);
        size_t j = at ? (size_t)(at - in->p) : in->n;
        ILM__FORWARD(ilm__buf_append(out, in->p + i, j - i));
        if (!at) return ILM_OK;
        ILM__FORWARD(ilm__buf_append(out, to, tl));
        i = j + fl;
    }
}

/* re.sub(r"O\s*([^C]*?)\s*C", r"O\1C", s) for the ASCII delimiters O and C:
 * each O with a C after it, up to the first such C, loses the whitespace
 * (str.isspace, so newlines too) just inside both delimiters; the scan
 * goes on after the C.  An O with no C after it matches nothing, and then
 * neither does any later O. */
static ilm_status strip_pairs(const ilm__buf *in, char open, char close, ilm__buf *out)
{
    size_t i = 0;
    out->n = 0;
    ILM__FORWARD(ilm__buf_reserve(out, in->n));
    for (;;) {
        const char *o = memchr(in->p + i, open, in->n - i);
        const char *c = o ? memchr(o + 1, close, in->n - (size_t)(o + 1 - in->p)) : NULL;
        if (!c) return ilm__buf_append(out, in->p + i, in->n - i);
        size_t b = (size_t)(o + 1 - in->p), e = (size_t)(c - in->p);
        while (b < e) {
            size_t k = b;
            if (!ilm__py_isspace(ilm__utf8_next(in->p, e, &k))) break;
            b = k;
        }
        e = b + ilm__py_rstrip_len(in->p + b, e - b);
        ILM__FORWARD(ilm__buf_append(out, in->p + i, (size_t)(o + 1 - in->p) - i));
        ILM__FORWARD(ilm__buf_append(out, in->p + b, e - b));
        ILM__FORWARD(ilm__buf_putc(out, close));
        i = (size_t)(c + 1 - in->p);
    }
}

/* re.sub(r"/' [0-9]/", r"/'[0-9]/", s): the replacement is the literal
 * text "/'[0-9]/" (lm-eval's pattern, kept as it is). */
static ilm_status slash_digits(const ilm__buf *in, ilm__buf *out)
{
    size_t i = 0;
    out->n = 0;
    ILM__FORWARD(ilm__buf_reserve(out, in->n));
    while (i < in->n) {
        const char *at = memmem(in->p + i, in->n - i, "/' ", 3);
        size_t j = at ? (size_t)(at - in->p) : in->n;
        bool hit = at && j + 5 <= in->n && in->p[j + 3] >= '0' && in->p[j + 3] <= '9' &&
                   in->p[j + 4] == '/';
        size_t upto = hit ? j : at ? j + 1 : in->n;
        ILM__FORWARD(ilm__buf_append(out, in->p + i, upto - i));
        if (hit) ILM__FORWARD(ilm__buf_append(out, "/'[0-9]/", 8));
        i = hit ? j + 5 : upto;
    }
    return ILM_OK;
}

/* lm-eval's wikitext_detokenizer (lm_eval/tasks/wikitext/preprocess_wikitext.py,
 * 0.4.13), step by step in its order; each step reads the previous one's
 * result. */
static ilm_status wikitext_detok(const char *text, size_t len, ilm__buf *out)
{
    static const char *const before[][2] = {
        { "s '", "s'" },
    };
    static const char *const middle[][2] = {
        { " @-@ ", "-" }, { " @,@ ", "," }, { " @.@ ", "." }, { " : ", ": " }, { " ; ", "; " },
        { " . ", ". " },  { " ! ", "! " },  { " ? ", "? " },  { " , ", ", " },
    };
    static const char pairs[][2] = {
        { '(', ')' }, { '[', ']' }, { '{', '}' }, { '"', '"' }, { '\'', '\'' }
    };
    static const char *const after[][2] = {
        { "= = = =", "====" }, { "= = =", "===" }, { "= =", "==" },  { " \xC2\xB0 ", "\xC2\xB0" },
        { " \n", "\n" },       { "\n ", "\n" },    { " N ", " 1 " }, { " 's", "'s" },
    };
    ilm__buf a = { 0 }, b = { 0 };
    ilm__buf *cur = &a, *next = &b, *t;
    ilm_status s = ilm__buf_append(&a, text, len);
#define STEP(call)                                                                                 \
    do {                                                                                           \
        if (s == ILM_OK) s = (call);                                                               \
        t = cur, cur = next, next = t;                                                             \
    } while (0)
    for (size_t i = 0; i < sizeof before / sizeof *before; i++)
        STEP(replace_all(cur, before[i][0], before[i][1], next));
    STEP(slash_digits(cur, next));
    for (size_t i = 0; i < sizeof middle / sizeof *middle; i++)
        STEP(replace_all(cur, middle[i][0], middle[i][1], next));
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        STEP(strip_pairs(cur, pairs[i][0], pairs[i][1], next));
    for (size_t i = 0; i < sizeof after / sizeof *after; i++)
        STEP(replace_all(cur, after[i][0], after[i][1], next));
#undef STEP
    if (s == ILM_OK) s = ilm__buf_append(out, cur->p, cur->n);
    ilm__buf_free(&a);
    ilm__buf_free(&b);
    return s;
}

/* ---- dispatch ------------------------------------------------------------ */

ilm_status ilm__postproc_apply(ilm__postproc p, const char *text, size_t len,
                               const char *options, ilm__buf *out)
{
    if (!text) len = 0, text = "";
    /* Start `out` as a string even when nothing is appended. */
    ILM__FORWARD(ilm__buf_reserve(out, 0));
    switch (p) {
    case ILM__PP_NONE: return ilm__buf_append(out, text, len);
    case ILM__PP_STRIP: {
        size_t b, e;
        strip_span(text, len, &b, &e);
        return ilm__buf_append(out, text + b, e - b);
    }
    case ILM__PP_FIRST_CAPITAL: return first_capital(text, len, out);
    case ILM__PP_FIRST_OPTION: return first_option(text, len, options, out);
    case ILM__PP_LAST_NUMBER: return last_number_pp(text, len, out);
    case ILM__PP_GSM8K: return gsm8k(text, len, out);
    case ILM__PP_GSM8K_GOLD: return gsm8k_gold(text, len, out);
    case ILM__PP_EM_NORMALIZE: return em_normalize(text, len, out);
    case ILM__PP_CODE_BLOCK: return code_block(text, len, out);
    case ILM__PP_WIKITEXT: return wikitext_detok(text, len, out);
    case ILM__PP_COUNT: break;
    }
    return ilm__error(ILM_ERR_INTERNAL, "post-processor %d does not exist", (int)p);
}
