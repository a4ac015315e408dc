/* UTF-8 decoding with the strict validity rules of RFC 3629 (no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
#include "core/internal.h"

#include <utf8proc.h>

size_t ilm__utf8_decode(const char *str, size_t n, uint32_t *cp)
{
    const uint8_t *s = (const uint8_t *)str;
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

size_t ilm__utf8_encode(uint32_t cp, char *out)
{
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

ilm_status ilm__utf8proc_map(const char *s, size_t n, int options, char **out, size_t *out_n)
{
    /* What utf8proc_map does, with the buffer from our allocator: the
     * decomposed length first, then decompose, then compose and encode in
     * place (the UTF-8 is never longer than the UTF-32 it comes from). */
    *out = NULL;
    *out_n = 0;
    const utf8proc_uint8_t *in = (const utf8proc_uint8_t *)s;
    const utf8proc_option_t opt = (utf8proc_option_t)options;
    utf8proc_ssize_t r = utf8proc_decompose(in, (utf8proc_ssize_t)n, NULL, 0, opt);
    utf8proc_int32_t *buf = NULL;
    if (r >= 0 && (size_t)r > (SIZE_MAX - 1) / sizeof *buf) r = UTF8PROC_ERROR_OVERFLOW;
    if (r >= 0 && !(buf = ilm__malloc((size_t)r * sizeof *buf + 1))) r = UTF8PROC_ERROR_NOMEM;
    if (r >= 0) r = utf8proc_decompose(in, (utf8proc_ssize_t)n, buf, r, opt);
    if (r >= 0) r = utf8proc_reencode(buf, r, opt);
    if (r < 0) {
        ilm__free(buf);
        return ilm__error(r == UTF8PROC_ERROR_NOMEM ? ILM_ERR_NOMEM : ILM_ERR_RANGE,
                          "unicode normalization of %zu bytes: %s", n, utf8proc_errmsg(r));
    }
    *out = (char *)buf;
    *out_n = (size_t)r;
    return ILM_OK;
}

uint32_t ilm__utf8_next(const char *s, size_t n, size_t *i)
{
    uint32_t cp;
    size_t k = ilm__utf8_decode(s + *i, n - *i, &cp);
    if (k == 0) {
        *i += 1;
        return 0xFFFD;
    }
    *i += k;
    return cp;
}
