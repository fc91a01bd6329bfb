/*
 * io/text_fix.h - internals of the text side of the tokenizer: a growable
 * code point buffer, UTF-8 conversion, the generated code page and HTML
 * entity tables (src/io/unicode_tables.c), the Python-compatible HTML unescape
 * and the ftfy-compatible text repair (src/io/ftfy.c).  Not installed.
 */
#ifndef MC_TEXT_INTERNAL_H
#define MC_TEXT_INTERNAL_H

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

/* A growable array of Unicode code points.  On allocation failure `failed`
 * is set and further appends are dropped; callers check it once at the end. */
typedef struct mc_cpbuf {
    uint32_t *v;
    size_t n;
    size_t cap;
    int failed;
} mc_cpbuf;

void mc_cpbuf_free(mc_cpbuf *b);
void mc_cpbuf_push(mc_cpbuf *b, uint32_t c);
void mc_cpbuf_append(mc_cpbuf *b, const uint32_t *c, size_t n);
/* Moves src into dst (dst's old contents are freed); src becomes empty. */
void mc_cpbuf_move(mc_cpbuf *dst, mc_cpbuf *src);
int mc_cpbuf_equal(const mc_cpbuf *a, const mc_cpbuf *b);

/* Strict UTF-8 decoding (no surrogates, no overlong forms); returns 0 and the
 * byte offset of the first bad sequence in *bad_at when invalid. */
int mc_utf8_decode(const char *s, size_t len, mc_cpbuf *out, size_t *bad_at);
/* Appends the UTF-8 encoding of cps; returns a malloc'd NUL-terminated
 * string (NULL on allocation failure) and its length. */
char *mc_utf8_encode(const uint32_t *cps, size_t n, size_t *len_out);

/* Python's str.isspace(). */
int mc_py_isspace(uint32_t c);

/* Generated tables (src/io/unicode_tables.c). */
#define MC_N_CODEPAGES 10
extern const char *const mc_codepage_names[MC_N_CODEPAGES];
extern const uint16_t mc_codepages[MC_N_CODEPAGES][256];

typedef struct mc_entity {
    const char *name;   /* without the leading '&'; with ';' when the name has one */
    const char *value;  /* UTF-8 */
} mc_entity;
extern const mc_entity mc_html5_entities[];
extern const size_t mc_n_html5_entities;
extern const mc_entity mc_upper_entities[];
extern const size_t mc_n_upper_entities;

/* Python's html.unescape(): named and numeric character references. */
void mc_html_unescape(const mc_cpbuf *in, mc_cpbuf *out);

/* ftfy.fix_text() with its default configuration. */
void mc_ftfy_fix_text(const mc_cpbuf *in, mc_cpbuf *out);

#endif /* MC_TEXT_INTERNAL_H */
