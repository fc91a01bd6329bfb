/*
 * io/ftfy.c - text repair compatible with Python ftfy.fix_text() in its default
 * configuration, as CLIP-style tokenizers apply it before tokenizing: HTML
 * entities (unless the text looks like HTML), mojibake repair guided by a
 * "badness" heuristic over byte round trips through common single-byte code
 * pages, C1 controls, Latin ligatures, character width, curly quotes, line
 * breaks, terminal escapes, control characters and NFC.  Also owns the code
 * point buffer, strict UTF-8 conversion and Python's html.unescape().
 *
 * The character categories and patterns of the heuristic follow ftfy's
 * published behaviour so that the same text is repaired the same way.
 */
#include "io/text_fix.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------------ */
/* Code point buffers and UTF-8                                             */
/* ------------------------------------------------------------------------ */

void mc_cpbuf_free(mc_cpbuf *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

static int cpbuf_reserve(mc_cpbuf *b, size_t extra) {
    if (b->failed) return 0;
    size_t need;
    if (!mc_size_add(b->n, extra, &need)) { b->failed = 1; return 0; }
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 16;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { b->failed = 1; return 0; }
        cap *= 2;
    }
    uint32_t *v = mc_malloc_array(cap, sizeof *v);
    if (!v) { b->failed = 1; return 0; }
    if (b->n) memcpy(v, b->v, b->n * sizeof *v);
    free(b->v);
    b->v = v;
    b->cap = cap;
    return 1;
}

void mc_cpbuf_push(mc_cpbuf *b, uint32_t c) {
    if (cpbuf_reserve(b, 1)) b->v[b->n++] = c;
}

void mc_cpbuf_append(mc_cpbuf *b, const uint32_t *c, size_t n) {
    if (n && cpbuf_reserve(b, n)) {
        memcpy(b->v + b->n, c, n * sizeof *c);
        b->n += n;
    }
}

void mc_cpbuf_move(mc_cpbuf *dst, mc_cpbuf *src) {
    int failed = dst->failed || src->failed;
    free(dst->v);
    *dst = *src;
    dst->failed = failed;
    memset(src, 0, sizeof *src);
}

int mc_cpbuf_equal(const mc_cpbuf *a, const mc_cpbuf *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

/* Decodes one UTF-8 sequence at s[0..len); returns its length or 0. */
static size_t utf8_one(const uint8_t *s, size_t len, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t k;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { k = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (len < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return k;
}

int mc_utf8_decode(const char *s, size_t len, mc_cpbuf *out, size_t *bad_at) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = utf8_one(p + i, len - i, &cp);
        if (!k) {
            if (bad_at) *bad_at = i;
            return 0;
        }
        mc_cpbuf_push(out, cp);
        i += k;
    }
    return 1;
}

static size_t utf8_put(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

char *mc_utf8_encode(const uint32_t *cps, size_t n, size_t *len_out) {
    size_t cap;
    if (!mc_size_mul(n, 4, &cap) || !mc_size_add(cap, 1, &cap)) return NULL;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += utf8_put(cps[i], s + k);
    s[k] = 0;
    if (len_out) *len_out = k;
    return s;
}

int mc_py_isspace(uint32_t c) {
    if (c <= 0x20) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        return 1;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

/* Python's re \w for str patterns: letters, digits and numbers, '_'. */
static int py_isword(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

/* ------------------------------------------------------------------------ */
/* Python html.unescape()                                                    */
/* ------------------------------------------------------------------------ */

static const mc_entity *entity_find(const mc_entity *tab, size_t n, const char *name, size_t len) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *k = tab[mid].name;
        int c = strncmp(k, name, len);
        if (c == 0) c = k[len] ? 1 : 0;
        if (c == 0) return &tab[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static void push_utf8(mc_cpbuf *out, const char *s) {
    const uint8_t *p = (const uint8_t *)s;
    size_t len = strlen(s);
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = utf8_one(p + i, len - i, &cp);
        if (!k) return;   /* the tables are valid UTF-8 */
        mc_cpbuf_push(out, cp);
        i += k;
    }
}

static const uint16_t win1252_80[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178};

/* Python's handling of a numeric reference: returns 0 for "drop it". */
static int numeric_ref(uint64_t num, int overflow, uint32_t *out) {
    if (overflow || num > 0x10FFFF || (num >= 0xD800 && num <= 0xDFFF)) { *out = 0xFFFD; return 1; }
    if (num == 0) { *out = 0xFFFD; return 1; }
    if (num == 0x0D) { *out = 0x0D; return 1; }
    if (num >= 0x80 && num <= 0x9F) { *out = win1252_80[num - 0x80]; return 1; }
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
        (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
        (num & 0xFFFE) == 0xFFFE)
        return 0;
    *out = (uint32_t)num;
    return 1;
}

static int is_hex(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static unsigned hex_val(uint32_t c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Tries a reference at in[i] == '&'; appends its replacement and returns
 * the number of code points consumed, or 0 when none matches there. */
static size_t unescape_at(const uint32_t *t, size_t n, size_t i, mc_cpbuf *out) {
    size_t j = i + 1;
    if (j < n && t[j] == '#') {
        j++;
        int hex = 0;
        if (j < n && (t[j] == 'x' || t[j] == 'X')) { hex = 1; j++; }
        size_t start = j;
        uint64_t num = 0;
        int overflow = 0;
        while (j < n && (hex ? is_hex(t[j]) : (t[j] >= '0' && t[j] <= '9'))) {
            unsigned d = hex ? hex_val(t[j]) : t[j] - '0';
            if (num > (UINT64_MAX - d) / (hex ? 16 : 10)) overflow = 1;
            else num = num * (hex ? 16 : 10) + d;
            j++;
        }
        if (j == start) return 0;
        if (j < n && t[j] == ';') j++;
        uint32_t cp;
        if (numeric_ref(num, overflow, &cp)) mc_cpbuf_push(out, cp);
        return j - i;
    }
    /* named: [^\t\n\f <&#;]{1,32};? */
    size_t start = j;
    while (j < n && j - start < 32) {
        uint32_t c = t[j];
        if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
            c == ';')
            break;
        j++;
    }
    if (j == start) return 0;
    if (j < n && t[j] == ';') j++;
    size_t len = j - start;
    char name[40];
    for (size_t k = 0; k < len; k++) {
        uint32_t c = t[start + k];
        if (c >= 0x80) {
            /* names are ASCII: only a shorter prefix can match */
            len = k;
            break;
        }
        name[k] = (char)c;
    }
    size_t full = j - start;
    if (len == full) {
        const mc_entity *e = entity_find(mc_html5_entities, mc_n_html5_entities, name, len);
        if (e) { push_utf8(out, e->value); return j - i; }
    }
    /* the longest prefix of at least 2 characters that is a name */
    size_t x = full - 1 < len ? full - 1 : len;
    for (; x > 1; x--) {
        const mc_entity *e = entity_find(mc_html5_entities, mc_n_html5_entities, name, x);
        if (e) {
            push_utf8(out, e->value);
            return 1 + x;   /* the rest is copied as it is */
        }
    }
    return 0;
}

void mc_html_unescape(const mc_cpbuf *in, mc_cpbuf *out) {
    const uint32_t *t = in->v;
    size_t n = in->n;
    for (size_t i = 0; i < n;) {
        if (t[i] == '&') {
            size_t k = unescape_at(t, n, i, out);
            if (k) { i += k; continue; }
            /* Python's regex: no match at this '&'; copy it */
        }
        mc_cpbuf_push(out, t[i]);
        i++;
    }
}

/* ------------------------------------------------------------------------ */
/* Character categories of the mojibake heuristic                           */
/* ------------------------------------------------------------------------ */

enum {
    K_COMMON = 1 << 0,   /* common in many contexts: NBSP, dashes, ellipsis, ... */
    K_C1 = 1 << 1,       /* C1 controls */
    K_BAD = 1 << 2,      /* almost only seen in mojibake */
    K_LAW = 1 << 3,      /* pilcrow, section sign */
    K_CUR = 1 << 4,      /* currency signs */
    K_START = 1 << 5,    /* opening punctuation and similar */
    K_END = 1 << 6,      /* closing punctuation and similar */
    K_NUM = 1 << 7,      /* numeric symbols */
    K_KAO = 1 << 8,      /* letters used in emoticons */
    K_UPACC = 1 << 9,    /* accented capitals */
    K_LOACC = 1 << 10,   /* accented small letters */
    K_UPCOM = 1 << 11,   /* Greek / Cyrillic capitals, thorn */
    K_LOCOM = 1 << 12,   /* Greek / Cyrillic small letters */
    K_BOX = 1 << 13,     /* box drawing and blocks */
};

typedef struct cls_range {
    uint32_t lo, hi;
    uint32_t mask;
} cls_range;

static const cls_range cls_table[] = {
    {0x0080, 0x009F, K_C1},
    {0x00A0, 0x00A0, K_COMMON},
    {0x00A1, 0x00A1, K_START},
    {0x00A2, 0x00A3, K_CUR},
    {0x00A4, 0x00A4, K_BAD},
    {0x00A5, 0x00A5, K_CUR},
    {0x00A6, 0x00A6, K_BAD},
    {0x00A7, 0x00A7, K_LAW},
    {0x00A8, 0x00A8, K_BAD},
    {0x00A9, 0x00A9, K_START},
    {0x00AA, 0x00AA, K_BAD},
    {0x00AB, 0x00AB, K_START},
    {0x00AC, 0x00AC, K_BAD},
    {0x00AD, 0x00AD, K_COMMON},
    {0x00AE, 0x00AE, K_END},
    {0x00AF, 0x00AF, K_BAD},
    {0x00B0, 0x00B0, K_KAO},
    {0x00B1, 0x00B3, K_NUM},
    {0x00B4, 0x00B4, K_COMMON},
    {0x00B5, 0x00B5, K_NUM},
    {0x00B6, 0x00B6, K_LAW},
    {0x00B7, 0x00B7, K_COMMON},
    {0x00B8, 0x00B8, K_BAD},
    {0x00B9, 0x00B9, K_NUM},
    {0x00BA, 0x00BA, K_BAD},
    {0x00BB, 0x00BB, K_END},
    {0x00BC, 0x00BE, K_NUM},
    {0x00BF, 0x00BF, K_START},
    {0x00C0, 0x00D1, K_UPACC},
    {0x00D2, 0x00D6, K_KAO},
    {0x00D7, 0x00D7, K_NUM},
    {0x00D8, 0x00D8, K_UPACC},
    {0x00D9, 0x00DB, K_KAO},
    {0x00DC, 0x00DC, K_KAO|K_UPACC},
    {0x00DD, 0x00DD, K_UPACC},
    {0x00DE, 0x00DE, K_UPCOM},
    {0x00DF, 0x00F1, K_LOACC},
    {0x00F2, 0x00F6, K_KAO},
    {0x00F7, 0x00F7, K_NUM},
    {0x00F8, 0x00FB, K_KAO},
    {0x00FC, 0x00FC, K_KAO|K_LOACC},
    {0x0100, 0x0100, K_UPACC},
    {0x0101, 0x0101, K_LOACC},
    {0x0102, 0x0102, K_UPACC},
    {0x0103, 0x0103, K_LOACC},
    {0x0104, 0x0104, K_UPACC},
    {0x0105, 0x0105, K_LOACC},
    {0x0106, 0x0106, K_UPACC},
    {0x0107, 0x0107, K_LOACC},
    {0x010C, 0x010C, K_UPACC},
    {0x010D, 0x010D, K_LOACC},
    {0x010E, 0x010E, K_UPACC},
    {0x010F, 0x010F, K_LOACC},
    {0x0110, 0x0110, K_UPACC},
    {0x0111, 0x0111, K_LOACC},
    {0x0112, 0x0112, K_UPACC},
    {0x0113, 0x0113, K_LOACC},
    {0x0116, 0x0116, K_UPACC},
    {0x0117, 0x0117, K_LOACC},
    {0x0118, 0x0118, K_UPACC},
    {0x0119, 0x0119, K_LOACC},
    {0x011A, 0x011A, K_UPACC},
    {0x011B, 0x011B, K_LOACC},
    {0x011E, 0x011E, K_UPACC},
    {0x011F, 0x011F, K_LOACC},
    {0x0122, 0x0122, K_UPACC},
    {0x0123, 0x0123, K_LOACC},
    {0x012A, 0x012A, K_UPACC},
    {0x012B, 0x012B, K_LOACC},
    {0x012F, 0x012F, K_LOACC},
    {0x0130, 0x0130, K_UPACC},
    {0x0136, 0x0136, K_UPACC},
    {0x0137, 0x0137, K_LOACC},
    {0x0139, 0x0139, K_UPACC},
    {0x013A, 0x013A, K_LOACC},
    {0x013B, 0x013B, K_UPACC},
    {0x013C, 0x013C, K_LOACC},
    {0x013D, 0x013D, K_UPACC},
    {0x013E, 0x013E, K_LOACC},
    {0x0141, 0x0141, K_UPACC},
    {0x0142, 0x0142, K_LOACC},
    {0x0143, 0x0143, K_UPACC},
    {0x0145, 0x0145, K_UPACC},
    {0x0147, 0x0147, K_UPACC},
    {0x014C, 0x014C, K_KAO},
    {0x0150, 0x0150, K_KAO},
    {0x0152, 0x0152, K_UPACC},
    {0x0153, 0x0153, K_LOACC},
    {0x0155, 0x0155, K_LOACC},
    {0x0158, 0x0158, K_UPACC},
    {0x015A, 0x015A, K_UPACC},
    {0x015B, 0x015B, K_LOACC},
    {0x015E, 0x015E, K_UPACC},
    {0x015F, 0x015F, K_LOACC},
    {0x0160, 0x0160, K_UPACC},
    {0x0161, 0x0161, K_LOACC},
    {0x0162, 0x0162, K_UPACC},
    {0x0164, 0x0164, K_UPACC},
    {0x0165, 0x0165, K_LOACC},
    {0x016A, 0x016A, K_KAO},
    {0x016E, 0x016E, K_UPACC},
    {0x0170, 0x0170, K_UPACC},
    {0x0172, 0x0172, K_KAO},
    {0x0178, 0x0179, K_UPACC},
    {0x017A, 0x017A, K_LOACC},
    {0x017B, 0x017B, K_UPACC},
    {0x017C, 0x017C, K_LOACC},
    {0x017D, 0x017D, K_UPACC},
    {0x017E, 0x017E, K_LOACC},
    {0x0192, 0x0192, K_BAD},
    {0x02C6, 0x02C7, K_BAD},
    {0x02D8, 0x02D8, K_BAD},
    {0x02DB, 0x02DC, K_BAD},
    {0x02DD, 0x02DD, K_END},
    {0x0384, 0x0385, K_START},
    {0x0386, 0x0386, K_UPCOM},
    {0x0388, 0x038A, K_UPCOM},
    {0x038C, 0x038C, K_UPCOM},
    {0x038E, 0x038F, K_UPCOM},
    {0x0391, 0x03AB, K_UPCOM},
    {0x03AC, 0x03C9, K_LOCOM},
    {0x0401, 0x042F, K_UPCOM},
    {0x0430, 0x045F, K_LOCOM},
    {0x0490, 0x0490, K_UPACC},
    {0x0491, 0x0491, K_LOACC},
    {0x2013, 0x2015, K_COMMON},
    {0x2018, 0x2018, K_START},
    {0x2019, 0x2019, K_COMMON},
    {0x201A, 0x201A, K_START},
    {0x201C, 0x201C, K_START},
    {0x201D, 0x201D, K_END},
    {0x201E, 0x201E, K_START},
    {0x2020, 0x2021, K_BAD},
    {0x2022, 0x2022, K_START},
    {0x2026, 0x2026, K_COMMON},
    {0x2030, 0x2030, K_BAD},
    {0x2039, 0x2039, K_START},
    {0x203A, 0x203A, K_END},
    {0x2044, 0x2044, K_NUM},
    {0x20A7, 0x20A7, K_CUR},
    {0x20AC, 0x20AC, K_CUR},
    {0x2116, 0x2116, K_NUM},
    {0x2122, 0x2122, K_END},
    {0x2202, 0x2202, K_NUM},
    {0x2206, 0x2206, K_NUM},
    {0x220F, 0x220F, K_NUM},
    {0x2211, 0x2211, K_NUM},
    {0x221A, 0x221A, K_NUM},
    {0x221E, 0x221E, K_NUM},
    {0x2229, 0x2229, K_NUM},
    {0x222B, 0x222B, K_NUM},
    {0x2248, 0x2248, K_NUM},
    {0x2260, 0x2261, K_NUM},
    {0x2264, 0x2265, K_NUM},
    {0x2310, 0x2310, K_BAD},
    {0x2502, 0x2502, K_BOX},
    {0x250C, 0x250C, K_BOX},
    {0x2510, 0x2510, K_BOX},
    {0x2518, 0x2518, K_BOX},
    {0x251C, 0x251C, K_BOX},
    {0x2524, 0x2524, K_BOX},
    {0x252C, 0x252C, K_BOX},
    {0x253C, 0x253C, K_BOX},
    {0x2550, 0x256C, K_BOX},
    {0x2580, 0x2580, K_BOX},
    {0x2584, 0x2584, K_BOX},
    {0x2588, 0x2588, K_BOX},
    {0x258C, 0x258C, K_BOX},
    {0x2590, 0x2593, K_BOX},
    {0x25CA, 0x25CA, K_BAD},
    {0xF8FF, 0xF8FF, K_START},
    {0xFB01, 0xFB02, K_LOACC},
    {0xFFFD, 0xFFFD, K_BAD},
};

static uint32_t cls(uint32_t c) {
    if (c < 0x80) return 0;
    size_t lo = 0, hi = sizeof cls_table / sizeof cls_table[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < cls_table[mid].lo) hi = mid;
        else if (c > cls_table[mid].hi) lo = mid + 1;
        else return cls_table[mid].mask;
    }
    return 0;
}

#define K_PUNCTISH (K_LOACC | K_UPACC | K_BOX | K_START | K_END | K_CUR | K_NUM | K_LAW)

static int is_lower_ascii(uint32_t c) { return c >= 'a' && c <= 'z'; }
static int is_alpha_ascii(uint32_t c) { return is_lower_ascii(c) || (c >= 'A' && c <= 'Z'); }
static int in_str(uint32_t c, const uint32_t *set) {
    for (; *set; set++)
        if (*set == c) return 1;
    return 0;
}

/* Does one of the heuristic's patterns match at t[i]? */
static int bad_at(const uint32_t *t, size_t n, size_t i) {
    uint32_t a = t[i], ka = cls(a);
    if (ka & K_C1) return 1;
    if (i + 1 >= n) return 0;
    uint32_t b = t[i + 1], kb = cls(b);
    uint32_t c = i + 2 < n ? t[i + 2] : 0, kc = i + 2 < n ? cls(c) : 0;
    int has_c = i + 2 < n;

    if ((ka & (K_BAD | K_PUNCTISH)) && (kb & K_BAD)) return 1;
    if (is_alpha_ascii(a) && (kb & (K_LOCOM | K_UPCOM)) && has_c && (kc & K_BAD)) return 1;
    if ((ka & K_BAD) && (kb & K_PUNCTISH)) return 1;
    if ((ka & (K_LOACC | K_LOCOM | K_BOX | K_END | K_CUR | K_NUM)) && (kb & K_UPACC)) return 1;
    if ((ka & (K_BOX | K_END | K_CUR | K_NUM)) && (kb & K_LOACC)) return 1;
    if ((ka & (K_LOACC | K_BOX | K_END)) && (kb & K_CUR)) return 1;
    if (mc_py_isspace(a) && (kb & K_UPACC) && has_c && (kc & K_CUR)) return 1;
    if ((ka & (K_UPACC | K_BOX)) && (kb & (K_NUM | K_LAW))) return 1;
    if ((ka & (K_LOACC | K_UPACC | K_BOX | K_CUR | K_END)) && (kb & K_START) && has_c && (kc & K_NUM))
        return 1;
    if ((ka & (K_LOACC | K_UPACC | K_CUR | K_NUM | K_BOX | K_LAW)) && (kb & K_END) && has_c &&
        (kc & K_START))
        return 1;
    if ((ka & (K_CUR | K_NUM | K_BOX)) && (kb & K_START)) return 1;
    if (is_lower_ascii(a) && (kb & K_UPACC) && has_c && (kc & (K_START | K_CUR))) return 1;
    if ((ka & K_BOX) && (kb & K_KAO)) return 1;
    if ((ka & (K_LOACC | K_UPACC | K_CUR | K_NUM | K_START | K_END | K_LAW)) && (kb & K_BOX)) return 1;
    if ((ka & K_BOX) && (kb & K_END)) return 1;
    if ((ka & (K_LOACC | K_UPACC)) && (kb & (K_START | K_END)) && has_c && py_isword(c)) return 1;
    if ((a == 0x152 || a == 0x153) && !is_alpha_ascii(b)) return 1;
    if ((ka & K_UPACC) && b == 0xB0) return 1;
    if (a == 0xC2 || a == 0xC3 || a == 0xCE || a == 0xD0) {
        static const uint32_t s[] = {0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0,
                                     0xAD, 0xAE, 0xA9, 0xB0, 0xB7, 0xBB, 0x2013, 0x2014, 0xB4, 0};
        if ((kb & (K_START | K_END)) || in_str(b, s)) return 1;
    }
    if (a == 0xD7 && (b == 0xB2 || b == 0xB3)) return 1;
    if ((a == 0xD8 || a == 0xD9) && has_c && i + 3 < n) {
        static const uint32_t s[] = {0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB, 0};
        uint32_t d = t[i + 3], kd = cls(d);
        uint32_t m = K_COMMON | K_CUR | K_BAD | K_NUM | K_START;
        if (((kb & m) || in_str(b, s)) && (c == 0xD8 || c == 0xD9) && ((kd & m) || in_str(d, s)))
            return 1;
    }
    if (a == 0xE0) {
        static const uint32_t s[] = {0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE, 0};
        if (in_str(b, s)) return 1;
    }
    if (a == 0x221A) {
        static const uint32_t s[] = {0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264,
                                     0x2265, 0xA5, 0xB5, 0xF8, 0};
        if (in_str(b, s)) return 1;
    }
    if (a == 0x2248 && (b == 0xB0 || b == 0xA2)) return 1;
    if (a == 0x201A) {
        static const uint32_t s[] = {0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB, 0x2020,
                                     0xB0, 0xA2, 0x3C0, 0};
        if (b == 0xC4 && has_c && in_str(c, s)) return 1;
        if ((b == 0xE2 || b == 0xF3) && has_c && (c == 0xE0 || c == 0xE4 || c == 0xB0 || c == 0xEA))
            return 1;
    }
    if (a == 0x432 && b == 0x402) return 1;
    if ((a == 0x412 || a == 0x413 || a == 0x420 || a == 0x421) && has_c) {
        if (((kb & (K_C1 | K_BAD | K_START | K_END | K_CUR)) || b == 0xB0 || b == 0xB5) &&
            (c == 0x412 || c == 0x413 || c == 0x420 || c == 0x421))
            return 1;
    }
    if (a == 0x413 && i + 5 < n && b == 0x45E && c == 0x412 && t[i + 3] == 0x402 &&
        t[i + 4] == 0x412 && t[i + 5] != '\n') {
        if (i + 6 < n && (is_alpha_ascii(t[i + 6]) || t[i + 6] == ' ')) return 1;
    }
    if (a == 0xC3 && (b == 0xA0 || b == 0xA1)) return 1;
    if (is_lower_ascii(a)) {
        if ((b == 0xC3 || b == 0xC2) && has_c && c == ' ') return 1;
        if (mc_py_isspace(b) && has_c && (c == 0xC3 || c == 0xC2) && i + 3 < n && t[i + 3] == ' ')
            return 1;
    }
    if (i == 0 && (a == 0xC3 || a == 0xC2) && b == ' ') return 1;
    if ((is_lower_ascii(a) || a == '.' || a == ',' || a == '?' || a == '!' || (ka & K_END)) &&
        b == 0xC2 && has_c && (c == ' ' || (kc & (K_START | K_END))))
        return 1;
    if (a == 0x3B2 && b == 0x20AC && has_c) {
        static const uint32_t s[] = {0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0, 0};
        if (in_str(c, s)) return 1;
    }
    if ((a == 0x392 || a == 0x393 || a == 0x39E || a == 0x39F) && has_c) {
        if (((kb & (K_C1 | K_BAD | K_START | K_END | K_CUR)) || b == 0xB0) &&
            (c == 0x392 || c == 0x393 || c == 0x39E || c == 0x39F))
            return 1;
    }
    if (a == 0x101 && b == 0x20AC) return 1;
    return 0;
}

static int is_bad(const uint32_t *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (bad_at(t, n, i)) return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Code pages and the UTF-8 clue sets                                       */
/* ------------------------------------------------------------------------ */

enum { CP_LATIN1 = 0, CP_SLOPPY1252 = 1, CP_MACROMAN = 8, CP_FIRST_NONSLOPPY = 7 };
#define N_SAFE_PAGES 7   /* latin-1 and the windows pages: the clue sets come from these */

enum { CLUE_FIRST2 = 1, CLUE_FIRST3 = 2, CLUE_FIRST4 = 4, CLUE_CONT = 8, CLUE_STRICT = 16 };

typedef struct clue_entry {
    uint32_t cp;
    uint32_t mask;
} clue_entry;

static clue_entry clue_tab[N_SAFE_PAGES * 256 + 64];
static size_t clue_n;
static pthread_once_t clue_once = PTHREAD_ONCE_INIT;

static int clue_cmp(const void *a, const void *b) {
    uint32_t x = ((const clue_entry *)a)->cp, y = ((const clue_entry *)b)->cp;
    return x < y ? -1 : x > y;
}

static void clue_add(uint32_t cp, uint32_t mask) {
    for (size_t i = 0; i < clue_n; i++)
        if (clue_tab[i].cp == cp) { clue_tab[i].mask |= mask; return; }
    clue_tab[clue_n].cp = cp;
    clue_tab[clue_n].mask = mask;
    clue_n++;
}

static void clue_build(void) {
    for (uint32_t c = 0x80; c < 0xC0; c++) clue_add(c, CLUE_CONT | CLUE_STRICT);
    clue_add(' ', CLUE_CONT);
    for (int p = 0; p < N_SAFE_PAGES; p++) {
        for (int b = 0x80; b < 0x100; b++) {
            uint32_t c = mc_codepages[p][b];
            uint32_t m = 0;
            if (b < 0xC0) {
                m = CLUE_CONT;
                /* dashes, quotes, bullet and ellipsis often stand for themselves */
                if (!(c >= 0x2013 && c <= 0x2015) && c != 0x2018 && c != 0x2019 && c != 0x201A &&
                    !(c >= 0x201C && c <= 0x201E) && c != 0x2022 && c != 0x2026)
                    m |= CLUE_STRICT;
            } else if (b >= 0xC2 && b <= 0xDF) m = CLUE_FIRST2;
            else if (b >= 0xE0 && b <= 0xEF) m = CLUE_FIRST3;
            else if (b == 0xF0 || b == 0xF3) m = CLUE_FIRST4;
            if (m) clue_add(c, m);
        }
    }
    qsort(clue_tab, clue_n, sizeof clue_tab[0], clue_cmp);
}

static uint32_t clue(uint32_t c) {
    if (c < 0x80) return c == ' ' ? CLUE_CONT : 0;
    pthread_once(&clue_once, clue_build);
    clue_entry key = {c, 0};
    const clue_entry *e = bsearch(&key, clue_tab, clue_n, sizeof clue_tab[0], clue_cmp);
    return e ? e->mask : 0;
}

/* The byte that code page p encodes c as, or -1. */
static int page_encode(int p, uint32_t c) {
    if (c < 0x80 && c != 0x1A) return (int)c;
    if (mc_codepages[p][0x1A] == c) return 0x1A;
    for (int b = 0x80; b < 0x100; b++)
        if (mc_codepages[p][b] == c) return b;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Byte-level fixes applied between encoding and decoding                   */
/* ------------------------------------------------------------------------ */

typedef struct bytebuf {
    uint8_t *v;
    size_t n, cap;
    int failed;
} bytebuf;

static void bb_push(bytebuf *b, uint8_t c) {
    if (b->failed) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint8_t *v = realloc(b->v, cap);
        if (!v) { b->failed = 1; return; }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = c;
}

static int cont_byte(uint8_t c) { return c >= 0x80 && c <= 0xBF; }
static int cont_no85a0(uint8_t c) { return cont_byte(c) && c != 0x85 && c != 0xA0; }

/* Length of a match of the "space that was a no-break space" pattern at s[i]. */
static size_t altered_at(const uint8_t *s, size_t n, size_t i) {
    uint8_t a = s[i];
    if (i + 1 < n && (a == 0xC2 || a == 0xC3 || a == 0xC5 || a == 0xCE || a == 0xD0 || a == 0xD9) &&
        s[i + 1] == ' ')
        return 2;
    if (i + 2 < n) {
        if ((a == 0xE2 || a == 0xE3) && s[i + 1] == ' ' && cont_no85a0(s[i + 2])) return 3;
        if (a >= 0xE0 && a <= 0xE3 && cont_no85a0(s[i + 1]) && s[i + 2] == ' ') return 3;
    }
    if (a == 0xF0 && i + 3 < n) {
        const uint8_t *q = s + i + 1;
        if (q[0] == ' ' && cont_byte(q[1]) && cont_byte(q[2])) return 4;
        if (cont_byte(q[0]) && q[1] == ' ' && cont_byte(q[2])) return 4;
        if (cont_byte(q[0]) && cont_byte(q[1]) && q[2] == ' ') return 4;
    }
    return 0;
}

static int altered_search(const bytebuf *b) {
    for (size_t i = 0; i < b->n; i++)
        if (altered_at(b->v, b->n, i)) return 1;
    return 0;
}

static int starts_with(const uint8_t *s, size_t n, const char *w) {
    size_t k = strlen(w);
    return n >= k && !memcmp(s, w, k);
}

static void restore_byte_a0(bytebuf *b) {
    bytebuf o = {0};
    /* "\xc3 " stands for "à " unless followed by what makes a Portuguese word */
    for (size_t i = 0; i < b->n; i++) {
        if (b->v[i] == 0xC3 && i + 1 < b->n && b->v[i + 1] == ' ') {
            const uint8_t *r = b->v + i + 2;
            size_t rn = b->n - i - 2;
            if (!(starts_with(r, rn, " ") || starts_with(r, rn, "quele") || starts_with(r, rn, "quela") ||
                  starts_with(r, rn, "quilo") || starts_with(r, rn, "s "))) {
                bb_push(&o, 0xC3);
                bb_push(&o, 0xA0);
                bb_push(&o, ' ');
                i++;
                continue;
            }
        }
        bb_push(&o, b->v[i]);
    }
    for (size_t i = 0; i < o.n;) {
        size_t k = altered_at(o.v, o.n, i);
        if (k) {
            for (size_t j = i; j < i + k; j++)
                if (o.v[j] == ' ') o.v[j] = 0xA0;
            i += k;
        } else {
            i++;
        }
    }
    if (b->failed || o.failed) o.failed = 1;
    free(b->v);
    *b = o;
}

/* Length of a lossy-sequence match at s[i] (0x1A stands for a lost byte). */
static size_t lossy_at(const uint8_t *s, size_t n, size_t i) {
#define IS_Q(c) ((c) == 0x1A || (c) == '?')
#define IS_L(c) ((c) == 0x1A || cont_byte(c))
#define IS_QL(c) ((c) == 0x1A || (c) == '?' || cont_byte(c))
    uint8_t a = s[i];
    size_t r = n - i;
    const uint8_t *q = s + i;
    if (a >= 0xC2 && a <= 0xDF && r >= 2 && q[1] == 0x1A) return 2;
    if ((a == 0xC2 || a == 0xC3) && r >= 2 && q[1] == '?') return 2;
    if (a == 0xED && r >= 6 && q[1] >= 0xA0 && q[1] <= 0xAF && q[3] == 0xED && q[4] >= 0xB0 &&
        q[4] <= 0xBF) {
        if (IS_Q(q[2]) && IS_QL(q[5])) return 6;
        if (IS_QL(q[2]) && IS_Q(q[5])) return 6;
    }
    if (a >= 0xE0 && a <= 0xEF && r >= 3) {
        if (IS_Q(q[1]) && IS_L(q[2])) return 3;
        if (IS_L(q[1]) && IS_Q(q[2])) return 3;
    }
    if (a >= 0xF0 && a <= 0xF4 && r >= 4) {
        if (IS_Q(q[1]) && IS_L(q[2]) && IS_L(q[3])) return 4;
        if (IS_L(q[1]) && IS_Q(q[2]) && IS_L(q[3])) return 4;
        if (IS_L(q[1]) && IS_L(q[2]) && IS_Q(q[3])) return 4;
    }
    if (a == 0x1A) return 1;
    return 0;
#undef IS_Q
#undef IS_L
#undef IS_QL
}

static void replace_lossy_sequences(bytebuf *b) {
    bytebuf o = {0};
    for (size_t i = 0; i < b->n;) {
        size_t k = lossy_at(b->v, b->n, i);
        if (k) {
            bb_push(&o, 0xEF);
            bb_push(&o, 0xBF);
            bb_push(&o, 0xBD);
            i += k;
        } else {
            bb_push(&o, b->v[i++]);
        }
    }
    if (b->failed) o.failed = 1;
    free(b->v);
    *b = o;
}

/* UTF-8 decoding, optionally accepting Java's C0 80 and CESU-8 surrogate pairs. */
static int decode_utf8_bytes(const bytebuf *b, int variants, mc_cpbuf *out) {
    const uint8_t *s = b->v;
    size_t n = b->n;
    for (size_t i = 0; i < n;) {
        if (variants) {
            if (s[i] == 0xC0 && i + 1 < n && s[i + 1] == 0x80) {
                mc_cpbuf_push(out, 0);
                i += 2;
                continue;
            }
            if (s[i] == 0xED && i + 5 < n && s[i + 1] >= 0xA0 && s[i + 1] <= 0xAF && cont_byte(s[i + 2]) &&
                s[i + 3] == 0xED && s[i + 4] >= 0xB0 && s[i + 4] <= 0xBF && cont_byte(s[i + 5])) {
                uint32_t cp = (((uint32_t)s[i + 1] & 0x0F) << 16) + (((uint32_t)s[i + 2] & 0x3F) << 10) +
                              (((uint32_t)s[i + 4] & 0x0F) << 6) + ((uint32_t)s[i + 5] & 0x3F) + 0x10000;
                mc_cpbuf_push(out, cp);
                i += 6;
                continue;
            }
        }
        uint32_t cp;
        size_t k = utf8_one(s + i, n - i, &cp);
        if (!k) return 0;
        mc_cpbuf_push(out, cp);
        i += k;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Mojibake repair                                                          */
/* ------------------------------------------------------------------------ */

static void fix_encoding(const uint32_t *t, size_t n, mc_cpbuf *out);

/* The end of a run of UTF-8-looking sequences starting at t[i], or i. */
static size_t detector_at(const uint32_t *t, size_t n, size_t i) {
    if (i > 0 && (clue(t[i - 1]) & CLUE_STRICT)) return i;
    size_t p = i;
    for (;;) {
        uint32_t m = p < n ? clue(t[p]) : 0;
        if ((m & CLUE_FIRST2) && p + 1 < n && (clue(t[p + 1]) & CLUE_CONT)) { p += 2; continue; }
        if ((m & CLUE_FIRST3) && p + 2 < n && (clue(t[p + 1]) & CLUE_CONT) &&
            (clue(t[p + 2]) & CLUE_CONT)) { p += 3; continue; }
        if ((m & CLUE_FIRST4) && p + 3 < n && (clue(t[p + 1]) & CLUE_CONT) &&
            (clue(t[p + 2]) & CLUE_CONT) && (clue(t[p + 3]) & CLUE_CONT)) { p += 4; continue; }
        break;
    }
    return p;
}

static int detector_search(const uint32_t *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (detector_at(t, n, i) > i) return 1;
    return 0;
}

static void decode_inconsistent_utf8(const uint32_t *t, size_t n, mc_cpbuf *out) {
    for (size_t i = 0; i < n;) {
        size_t e = detector_at(t, n, i);
        if (e > i) {
            if (e - i < n && is_bad(t + i, e - i)) fix_encoding(t + i, e - i, out);
            else mc_cpbuf_append(out, t + i, e - i);
            i = e;
        } else {
            mc_cpbuf_push(out, t[i++]);
        }
    }
}

static void fix_c1_controls(const uint32_t *t, size_t n, mc_cpbuf *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t c = t[i];
        mc_cpbuf_push(out, c >= 0x80 && c <= 0x9F ? mc_codepages[CP_SLOPPY1252][c] : c);
    }
}

/* One step of the repair; returns 1 and fills out when the text changed. */
static int fix_encoding_step(const uint32_t *t, size_t n, mc_cpbuf *out) {
    if (n == 0) return 0;
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = t[i] < 0x80;
    if (ascii || !is_bad(t, n)) return 0;

    int possible[MC_N_CODEPAGES] = {0};
    for (int p = 0; p < MC_N_CODEPAGES; p++) {
        bytebuf b = {0};
        int ok = 1;
        for (size_t i = 0; i < n && ok; i++) {
            int byte = page_encode(p, t[i]);
            if (byte < 0) ok = 0;
            else bb_push(&b, (uint8_t)byte);
        }
        if (!ok || b.failed) { free(b.v); continue; }
        possible[p] = 1;
        int sloppy = p >= 1 && p < CP_FIRST_NONSLOPPY;
        if (p != CP_MACROMAN && altered_search(&b)) restore_byte_a0(&b);
        if (sloppy) replace_lossy_sequences(&b);
        int variants = 0;
        for (size_t i = 0; i < b.n; i++)
            if (b.v[i] == 0xED || b.v[i] == 0xC0) { variants = 1; break; }
        mc_cpbuf dec = {0};
        int good = !b.failed && decode_utf8_bytes(&b, variants, &dec);
        free(b.v);
        if (good) {
            mc_cpbuf_move(out, &dec);
            return 1;
        }
        mc_cpbuf_free(&dec);
    }

    if (detector_search(t, n)) {
        mc_cpbuf fixed = {0};
        decode_inconsistent_utf8(t, n, &fixed);
        if (!(fixed.n == n && !memcmp(fixed.v, t, n * sizeof *t))) {
            mc_cpbuf_move(out, &fixed);
            return 1;
        }
        mc_cpbuf_free(&fixed);
    }

    if (possible[CP_LATIN1]) {
        /* Latin-1 bytes read as strict Windows-1252 (its five holes fail) */
        mc_cpbuf fixed = {0};
        int ok = 1, changed = 0;
        for (size_t i = 0; i < n && ok; i++) {
            uint32_t c = t[i];
            if (c >= 0x80 && c <= 0x9F) {
                uint32_t w = mc_codepages[CP_SLOPPY1252][c];
                if (w == c) ok = 0;
                else { c = w; changed = 1; }
            }
            mc_cpbuf_push(&fixed, c);
        }
        if (ok && changed) {
            mc_cpbuf_move(out, &fixed);
            return 1;
        }
        mc_cpbuf_free(&fixed);
    }

    for (size_t i = 0; i < n; i++) {
        if (t[i] >= 0x80 && t[i] <= 0x9F) {
            fix_c1_controls(t, n, out);
            return 1;
        }
    }
    return 0;
}

static void fix_encoding(const uint32_t *t, size_t n, mc_cpbuf *out) {
    mc_cpbuf cur = {0};
    mc_cpbuf_append(&cur, t, n);
    for (int guard = 0; guard < 64 && !cur.failed; guard++) {
        mc_cpbuf next = {0};
        if (!fix_encoding_step(cur.v, cur.n, &next)) { mc_cpbuf_free(&next); break; }
        int same = mc_cpbuf_equal(&cur, &next);
        mc_cpbuf_move(&cur, &next);
        if (same) break;
    }
    mc_cpbuf_append(out, cur.v, cur.n);
    if (cur.failed) out->failed = 1;
    mc_cpbuf_free(&cur);
}

/* ------------------------------------------------------------------------ */
/* The other fixes                                                          */
/* ------------------------------------------------------------------------ */

static int is_alnum_ascii(uint32_t c) { return is_alpha_ascii(c) || (c >= '0' && c <= '9'); }

/* ftfy's entity step: "&name;" / "&#num;" with 1..24 letters or digits. */
static void unescape_entities(const uint32_t *t, size_t n, mc_cpbuf *out) {
    for (size_t i = 0; i < n;) {
        if (t[i] == '&') {
            size_t j = i + 1;
            int numeric = j < n && t[j] == '#';
            if (numeric) j++;
            size_t s = j;
            while (j < n && is_alnum_ascii(t[j])) j++;
            size_t len = j - s;
            if (len >= 1 && len <= 24 && j < n && t[j] == ';') {
                size_t end = j + 1;
                char name[32];
                size_t nl = 0;
                for (size_t k = i + 1; k < end; k++) name[nl++] = (char)t[k];
                const mc_entity *e = NULL;
                if (!numeric) {
                    e = entity_find(mc_html5_entities, mc_n_html5_entities, name, nl);
                    if (!e) e = entity_find(mc_upper_entities, mc_n_upper_entities, name, nl);
                }
                if (e) {
                    push_utf8(out, e->value);
                    i = end;
                    continue;
                }
                if (numeric) {
                    mc_cpbuf seg = {0}, dec = {0};
                    mc_cpbuf_append(&seg, t + i, end - i);
                    mc_html_unescape(&seg, &dec);
                    int has_semi = 0;
                    for (size_t k = 0; k < dec.n; k++) has_semi |= dec.v[k] == ';';
                    mc_cpbuf_append(out, has_semi ? seg.v : dec.v, has_semi ? seg.n : dec.n);
                    if (seg.failed || dec.failed) out->failed = 1;
                    mc_cpbuf_free(&seg);
                    mc_cpbuf_free(&dec);
                    i = end;
                    continue;
                }
                mc_cpbuf_append(out, t + i, end - i);
                i = end;
                continue;
            }
        }
        mc_cpbuf_push(out, t[i++]);
    }
}

static int is_py_decimal(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
}

/* ESC [ (digits or ;)* letter */
static void remove_terminal_escapes(const uint32_t *t, size_t n, mc_cpbuf *out) {
    for (size_t i = 0; i < n;) {
        if (t[i] == 0x1B && i + 1 < n && t[i + 1] == '[') {
            size_t j = i + 2;
            while (j < n && (is_py_decimal(t[j]) || t[j] == ';')) j++;
            if (j < n && is_alpha_ascii(t[j])) { i = j + 1; continue; }
        }
        mc_cpbuf_push(out, t[i++]);
    }
}

static void push_str(mc_cpbuf *out, const char *ascii_or_utf8) { push_utf8(out, ascii_or_utf8); }

static int fix_ligature(uint32_t c, mc_cpbuf *out) {
    const char *r = NULL;
    switch (c) {
    case 0x132: r = "IJ"; break;
    case 0x133: r = "ij"; break;
    case 0x149: r = "\xCA\xBCn"; break;           /* modifier apostrophe + n */
    case 0x1F1: r = "DZ"; break;
    case 0x1F2: r = "Dz"; break;
    case 0x1F3: r = "dz"; break;
    case 0x1C4: r = "D\xC5\xBD"; break;           /* D + Z caron */
    case 0x1C5: r = "D\xC5\xBE"; break;
    case 0x1C6: r = "d\xC5\xBE"; break;
    case 0x1C7: r = "LJ"; break;
    case 0x1C8: r = "Lj"; break;
    case 0x1C9: r = "lj"; break;
    case 0x1CA: r = "NJ"; break;
    case 0x1CB: r = "Nj"; break;
    case 0x1CC: r = "nj"; break;
    case 0xFB00: r = "ff"; break;
    case 0xFB01: r = "fi"; break;
    case 0xFB02: r = "fl"; break;
    case 0xFB03: r = "ffi"; break;
    case 0xFB04: r = "ffl"; break;
    case 0xFB05: r = "\xC5\xBFt"; break;          /* long s + t */
    case 0xFB06: r = "st"; break;
    default: return 0;
    }
    push_str(out, r);
    return 1;
}

/* NFKC of one code point, appended to out; returns 0 when it does not change. */
static int nfkc_char(uint32_t c, mc_cpbuf *out) {
    char in[8];
    size_t k = utf8_put(c, in);
    in[k] = 0;
    utf8proc_uint8_t *r = utf8proc_NFKC((const utf8proc_uint8_t *)in);
    if (!r) return 0;
    int changed = strcmp((const char *)r, in) != 0;
    if (changed) push_utf8(out, (const char *)r);
    free(r);
    return changed;
}

/* Ligatures, character width, curly quotes and line breaks, in that order
 * (each is a per-character map; line breaks also join "\r\n"). */
static void fix_chars(const uint32_t *t, size_t n, mc_cpbuf *out) {
    mc_cpbuf a = {0}, b = {0};
    for (size_t i = 0; i < n; i++)
        if (!fix_ligature(t[i], &a)) mc_cpbuf_push(&a, t[i]);
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = a.v[i];
        if (c == 0x3000) mc_cpbuf_push(&b, ' ');
        else if (c >= 0xFF01 && c < 0xFFF0) { if (!nfkc_char(c, &b)) mc_cpbuf_push(&b, c); }
        else mc_cpbuf_push(&b, c);
    }
    for (size_t i = 0; i < b.n; i++) {
        uint32_t c = b.v[i];
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        if (c == '\r' && i + 1 < b.n && b.v[i + 1] == '\n') continue;
        if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
        mc_cpbuf_push(out, c);
    }
    if (a.failed || b.failed) out->failed = 1;
    mc_cpbuf_free(&a);
    mc_cpbuf_free(&b);
}

static int is_removed_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static void nfc(const uint32_t *t, size_t n, mc_cpbuf *out) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = t[i] < 0x80;
    if (ascii) { mc_cpbuf_append(out, t, n); return; }
    size_t len;
    char *s = mc_utf8_encode(t, n, &len);
    utf8proc_uint8_t *r = NULL;
    if (s) utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &r,
                        UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    free(s);
    if (!r) { out->failed = 1; return; }
    push_utf8(out, (const char *)r);
    free(r);
}

/* One segment: the fixes in ftfy's order, repeated until nothing changes. */
static void fix_segment(const uint32_t *t, size_t n, int unescape, mc_cpbuf *out) {
    mc_cpbuf cur = {0};
    mc_cpbuf_append(&cur, t, n);
    for (int guard = 0; guard < 16 && !cur.failed; guard++) {
        mc_cpbuf a = {0}, b = {0};
        if (unescape) unescape_entities(cur.v, cur.n, &a);
        else mc_cpbuf_append(&a, cur.v, cur.n);
        fix_encoding(a.v, a.n, &b);
        mc_cpbuf_free(&a);
        fix_c1_controls(b.v, b.n, &a);
        mc_cpbuf_free(&b);
        fix_chars(a.v, a.n, &b);
        mc_cpbuf_free(&a);
        remove_terminal_escapes(b.v, b.n, &a);
        mc_cpbuf_free(&b);
        for (size_t i = 0; i < a.n; i++)
            if (!is_removed_control(a.v[i])) mc_cpbuf_push(&b, a.v[i]);
        if (a.failed) b.failed = 1;
        mc_cpbuf_free(&a);
        nfc(b.v, b.n, &a);
        if (b.failed) a.failed = 1;
        mc_cpbuf_free(&b);
        int same = mc_cpbuf_equal(&a, &cur);
        mc_cpbuf_move(&cur, &a);
        if (same) break;
    }
    mc_cpbuf_append(out, cur.v, cur.n);
    if (cur.failed) out->failed = 1;
    mc_cpbuf_free(&cur);
}

#define MAX_SEGMENT 1000000

void mc_ftfy_fix_text(const mc_cpbuf *in, mc_cpbuf *out) {
    const uint32_t *t = in->v;
    size_t n = in->n;
    int unescape = 1;   /* "auto": off from the first segment that holds a '<' on */
    for (size_t pos = 0; pos < n;) {
        size_t end = pos;
        while (end < n && t[end] != '\n') end++;
        end = end < n ? end + 1 : n;
        if (end - pos > MAX_SEGMENT) end = pos + MAX_SEGMENT;
        for (size_t i = pos; i < end && unescape; i++)
            if (t[i] == '<') unescape = 0;
        fix_segment(t + pos, end - pos, unescape, out);
        pos = end;
    }
}
