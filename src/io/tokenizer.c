/*
 * io/tokenizer.c - the CLIP byte-level BPE tokenizer: loading and validating
 * the merges file (gzip or plain), finding it, and encoding text exactly as
 * the Python reference does: ftfy repair (src/io/ftfy.c), HTML unescape twice,
 * whitespace collapse, Python-style lower case, the CLIP pre-tokenizer regex
 * (PCRE2), byte-to-unicode mapping and BPE merges by rank.  A loaded
 * tokenizer is read-only, so it may be shared between threads.
 */
#include "io/text_fix.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>
#include <zlib.h>

#define N_MERGES (49152 - 256 - 2)          /* merges used: lines 1..48894 */
#define N_VOCAB (256 + 256 + N_MERGES + 2)  /* 49408 */
#define VOCAB_MAX_BYTES (64u << 20)

typedef struct pair_slot {
    uint64_t key;     /* (left id << 32 | right id) + 1; 0: empty */
    int32_t rank;
    int32_t merged;
} pair_slot;

struct mc_tokenizer {
    pair_slot *pairs;
    size_t pair_mask;
    int32_t byte_id[256];   /* id of the one-character token of each byte */
    pcre2_code *re;
    char *dec;              /* the bytes of every id, one after another ("</w>" kept) */
    uint32_t dec_off[N_VOCAB + 1];
};

/* ------------------------------------------------------------------------ */
/* Byte-to-unicode map                                                       */
/* ------------------------------------------------------------------------ */

/* The printable Latin-1 bytes stand for themselves; the other 68 bytes take
 * the characters from U+0100 on, in byte order.  order[i] is the byte of
 * vocabulary entry i. */
static void byte_unicode(uint32_t cp_of_byte[256], int order[256]) {
    int k = 0, extra = 0;
    for (int b = 0; b < 256; b++) {
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            cp_of_byte[b] = (uint32_t)b;
            order[k++] = b;
        }
    }
    for (int b = 0; b < 256; b++) {
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            cp_of_byte[b] = 256u + (uint32_t)extra++;
            order[k++] = b;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* String -> id map used while loading                                       */
/* ------------------------------------------------------------------------ */

typedef struct str_map {
    const char **keys;
    size_t *lens;
    int32_t *ids;
    size_t mask;
} str_map;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 1099511628211ull; }
    return h;
}

static size_t str_map_slot(const str_map *m, const char *s, size_t n) {
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    while (m->keys[i] && !(m->lens[i] == n && !memcmp(m->keys[i], s, n))) i = (i + 1) & m->mask;
    return i;
}

/* Later entries replace earlier ones, as a Python dict built from a list does. */
static void str_map_put(str_map *m, const char *s, size_t n, int32_t id) {
    size_t i = str_map_slot(m, s, n);
    m->keys[i] = s;
    m->lens[i] = n;
    m->ids[i] = id;
}

static int32_t str_map_get(const str_map *m, const char *s, size_t n) {
    size_t i = str_map_slot(m, s, n);
    return m->keys[i] ? m->ids[i] : -1;
}

/* ------------------------------------------------------------------------ */
/* Pair ranks                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static const pair_slot *pair_find(const mc_tokenizer *tok, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = (size_t)mix64(key) & tok->pair_mask;
    for (;;) {
        const pair_slot *s = &tok->pairs[i];
        if (s->key == key) return s;
        if (s->key == 0) return NULL;
        i = (i + 1) & tok->pair_mask;
    }
}

static void pair_put(mc_tokenizer *tok, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = (size_t)mix64(key) & tok->pair_mask;
    while (tok->pairs[i].key != 0 && tok->pairs[i].key != key) i = (i + 1) & tok->pair_mask;
    tok->pairs[i].key = key;
    tok->pairs[i].rank = rank;
    tok->pairs[i].merged = merged;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static mc_status read_gz(const char *path, char **out, size_t *len, mc_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return mc_fail(err, MC_ERR_IO, "%s: cannot open the tokenizer vocabulary: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return mc_fail(err, MC_ERR_IO, "%s: the tokenizer vocabulary is not a regular file", path);
    gzFile f = gzopen(path, "rb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot open the tokenizer vocabulary", path);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { gzclose(f); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    for (;;) {
        if (n == cap) {
            if (cap >= VOCAB_MAX_BYTES) {
                free(buf);
                gzclose(f);
                return mc_fail(err, MC_ERR_TOKENIZER, "%s: the vocabulary is larger than %u MiB",
                               path, VOCAB_MAX_BYTES >> 20);
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { free(buf); gzclose(f); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
            buf = nb;
        }
        int r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            mc_fail(err, MC_ERR_TOKENIZER, "%s: corrupt gzip data in the vocabulary: %s", path, msg);
            free(buf);
            gzclose(f);
            return MC_ERR_TOKENIZER;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(f, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        mc_fail(err, MC_ERR_TOKENIZER, "%s: corrupt gzip data in the vocabulary: %s", path, zmsg);
        free(buf);
        gzclose(f);
        return MC_ERR_TOKENIZER;
    }
    gzclose(f);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return MC_OK;
}

/* The reference's pattern, compiled by Python's regex module with IGNORECASE:
 *   <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * Two characters need spelling out for PCRE2 to split the same way:
 * - \s: PCRE2's includes U+180E (Mongolian vowel separator, a format
 *   character since Unicode 6.3), the regex module's does not; so the class
 *   lists the White_Space characters the regex module uses.
 * - U+0345 (combining ypogegrammeni, Mn) case-folds to a Greek iota, so under
 *   IGNORECASE the regex module's negated class rejects it while the letter
 *   class does not take it either: no alternative matches it, and the
 *   reference drops it.  Excluding it from the last class does the same. */
static mc_status compile_regex(mc_tokenizer *tok, mc_error *err) {
    static const char pattern[] =
        "<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
        "[^\\t\\n\\x{0b}\\f\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
        "\\x{205f}\\x{3000}\\x{345}\\p{L}\\p{N}]+";
    int ec;
    PCRE2_SIZE off;
    tok->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &ec, &off, NULL);
    if (!tok->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return mc_fail(err, MC_ERR_INTERNAL, "tokenizer regex: %s", (const char *)msg);
    }
    pcre2_jit_compile(tok->re, PCRE2_JIT_COMPLETE);   /* optional speed-up */
    return MC_OK;
}

void mc_tokenizer_free(mc_tokenizer *tok) {
    if (!tok) return;
    free(tok->pairs);
    free(tok->dec);
    if (tok->re) pcre2_code_free(tok->re);
    free(tok);
}

/* The byte string of every id: each vocabulary character (1 or 2 UTF-8
 * bytes, code points below 0x800) back to the byte it stands for. */
static mc_status build_decoder(mc_tokenizer *tok, char **vocab, const size_t *vocab_len, size_t nv,
                               const uint32_t cp_of_byte[256], mc_error *err) {
    int16_t byte_of_cp[512];
    for (int i = 0; i < 512; i++) byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) byte_of_cp[cp_of_byte[b]] = (int16_t)b;
    size_t total = 0;
    for (size_t i = 0; i < nv; i++) total += vocab_len[i];
    tok->dec = malloc(total ? total : 1);
    if (!tok->dec) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < nv; i++) {
        tok->dec_off[i] = (uint32_t)o;
        const unsigned char *s = (const unsigned char *)vocab[i];
        for (size_t k = 0; k < vocab_len[i];) {
            uint32_t cp = s[k];
            if (cp >= 0xC0 && cp < 0xE0 && k + 1 < vocab_len[i]) {
                cp = ((cp & 0x1Fu) << 6) | (s[k + 1] & 0x3Fu);
                k += 2;
            } else {
                k += 1;
            }
            int b = cp < 512 ? byte_of_cp[cp] : -1;
            if (b < 0) return mc_fail(err, MC_ERR_TOKENIZER, "vocabulary entry %zu holds a character outside the byte map", i);
            tok->dec[o++] = (char)b;
        }
    }
    tok->dec_off[nv] = (uint32_t)o;
    return MC_OK;
}

static mc_status build(mc_tokenizer *tok, const char *path, char *text, size_t len, mc_error *err) {
    /* lines[0] is the header; lines[1..N_MERGES] the merges used */
    char **lines = mc_malloc_array(N_MERGES + 1, sizeof *lines);
    size_t *line_len = mc_malloc_array(N_MERGES + 1, sizeof *line_len);
    char **vocab = mc_calloc_array(N_VOCAB, sizeof *vocab);
    size_t *vocab_len = mc_calloc_array(N_VOCAB, sizeof *vocab_len);
    str_map m = {0};
    m.mask = (1u << 17) - 1;
    m.keys = mc_calloc_array(m.mask + 1, sizeof *m.keys);
    m.lens = mc_calloc_array(m.mask + 1, sizeof *m.lens);
    m.ids = mc_calloc_array(m.mask + 1, sizeof *m.ids);
    tok->pair_mask = (1u << 17) - 1;
    tok->pairs = mc_calloc_array(tok->pair_mask + 1, sizeof *tok->pairs);
    mc_status st = MC_OK;
    if (!lines || !line_len || !vocab || !vocab_len || !m.keys || !m.lens || !m.ids || !tok->pairs) {
        st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
        goto done;
    }

    if (memchr(text, 0, len)) {
        st = mc_fail(err, MC_ERR_TOKENIZER, "%s: not a BPE merges file (binary data)", path);
        goto done;
    }
    size_t nl = 0;
    for (char *p = text; nl <= N_MERGES;) {
        char *e = memchr(p, '\n', (size_t)(text + len - p));
        lines[nl] = p;
        line_len[nl] = e ? (size_t)(e - p) : (size_t)(text + len - p);
        nl++;
        if (!e) break;
        p = e + 1;
    }
    int header_ok = 0;
    for (size_t i = 0; nl > 0 && i + 8 <= line_len[0] && !header_ok; i++)
        header_ok = !memcmp(lines[0] + i, "#version", 8);
    if (!header_ok) {
        st = mc_fail(err, MC_ERR_TOKENIZER,
                     "%s: not a CLIP BPE merges file (no \"#version\" header line)", path);
        goto done;
    }
    if (nl < N_MERGES + 1) {
        st = mc_fail(err, MC_ERR_TOKENIZER, "%s: truncated vocabulary: %zu merges, %d needed", path,
                     nl - 1, N_MERGES);
        goto done;
    }

    uint32_t cp_of_byte[256];
    int order[256];
    byte_unicode(cp_of_byte, order);
    size_t nv = 0;
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < 256; i++) {
            uint32_t cp = cp_of_byte[order[i]];
            char *s = malloc(8);
            if (!s) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto done; }
            size_t k;
            char *enc = mc_utf8_encode(&cp, 1, &k);
            if (!enc) { free(s); st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto done; }
            memcpy(s, enc, k);
            free(enc);
            if (w) { memcpy(s + k, "</w>", 4); k += 4; }
            vocab[nv] = s;
            vocab_len[nv] = k;
            nv++;
        }
    }
    for (int i = 0; i < 256; i++) tok->byte_id[order[i]] = i;
    /* merges: "left right" with exactly one space */
    size_t *split = mc_malloc_array(N_MERGES + 1, sizeof *split);
    if (!split) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t i = 1; i <= N_MERGES; i++) {
        const char *l = lines[i];
        size_t n = line_len[i];
        if (n && l[n - 1] == '\r') n--;
        const char *sp = memchr(l, ' ', n);
        if (!sp || sp == l || sp == l + n - 1 || memchr(sp + 1, ' ', (size_t)(l + n - sp - 1))) {
            free(split);
            st = mc_fail(err, MC_ERR_TOKENIZER, "%s: line %zu: a merge must be two symbols separated by a space",
                         path, i + 1);
            goto done;
        }
        split[i] = (size_t)(sp - l);
        char *s = malloc(n);
        if (!s) { free(split); st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto done; }
        memcpy(s, l, split[i]);
        memcpy(s + split[i], sp + 1, n - split[i] - 1);
        vocab[nv] = s;
        vocab_len[nv] = n - 1;
        line_len[i] = n;
        nv++;
    }
    static const char *const special[2] = {"<start_of_text>", "<end_of_text>"};
    for (int i = 0; i < 2; i++) {
        vocab[nv] = strdup(special[i]);
        if (!vocab[nv]) { free(split); st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto done; }
        vocab_len[nv] = strlen(special[i]);
        nv++;
    }
    for (size_t i = 0; i < nv; i++) str_map_put(&m, vocab[i], vocab_len[i], (int32_t)i);
    if (str_map_get(&m, special[0], strlen(special[0])) != MC_TOKEN_SOT ||
        str_map_get(&m, special[1], strlen(special[1])) != MC_TOKEN_EOT) {
        free(split);
        st = mc_fail(err, MC_ERR_TOKENIZER, "%s: unexpected special token ids", path);
        goto done;
    }
    for (size_t i = 1; i <= N_MERGES; i++) {
        const char *l = lines[i];
        size_t a = split[i];
        int32_t left = str_map_get(&m, l, a);
        int32_t right = str_map_get(&m, l + a + 1, line_len[i] - a - 1);
        int32_t merged = str_map_get(&m, vocab[512 + i - 1], vocab_len[512 + i - 1]);
        if (left < 0 || right < 0) {
            free(split);
            st = mc_fail(err, MC_ERR_TOKENIZER, "%s: line %zu: merge of an unknown symbol", path, i + 1);
            goto done;
        }
        pair_put(tok, left, right, (int32_t)(i - 1), merged);
    }
    free(split);
    st = build_decoder(tok, vocab, vocab_len, nv, cp_of_byte, err);

done:
    if (vocab)
        for (size_t i = 0; i < N_VOCAB; i++) free(vocab[i]);
    free(vocab);
    free(vocab_len);
    free(lines);
    free(line_len);
    free(m.keys);
    free(m.lens);
    free(m.ids);
    return st;
}

mc_status mc_tokenizer_load(const char *vocab_path, mc_tokenizer **out, mc_error *err) {
    if (!out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_tokenizer_load: out is NULL");
    *out = NULL;
    char found[4096];
    if (!vocab_path) {
        mc_status st = mc_tokenizer_find_vocab(NULL, found, sizeof found, err);
        if (st != MC_OK) return st;
        vocab_path = found;
    }
    char *text = NULL;
    size_t len = 0;
    mc_status st = read_gz(vocab_path, &text, &len, err);
    if (st != MC_OK) return st;
    mc_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) { free(text); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    st = build(tok, vocab_path, text, len, err);
    free(text);
    if (st == MC_OK) st = compile_regex(tok, err);
    if (st != MC_OK) { mc_tokenizer_free(tok); return st; }
    *out = tok;
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Finding the vocabulary                                                    */
/* ------------------------------------------------------------------------ */

mc_status mc_tokenizer_find_vocab(const char *near_path, char *path_out, size_t path_cap,
                                  mc_error *err) {
    if (!path_out || path_cap == 0) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_tokenizer_find_vocab: no output buffer");
    char cand[4][4096];
    int nc = 0;
    const char *env = getenv(MC_VOCAB_ENV);
    if (env && *env) snprintf(cand[nc++], sizeof cand[0], "%s", env);
    if (near_path && *near_path) {
        if (mc_path_is_dir(near_path)) {
            snprintf(cand[nc++], sizeof cand[0], "%s/%s", near_path, MC_VOCAB_FILENAME);
        } else {
            const char *slash = strrchr(near_path, '/');
            if (slash) snprintf(cand[nc++], sizeof cand[0], "%.*s/%s", (int)(slash - near_path), near_path,
                                MC_VOCAB_FILENAME);
            else snprintf(cand[nc++], sizeof cand[0], "./%s", MC_VOCAB_FILENAME);
        }
    }
    snprintf(cand[nc++], sizeof cand[0], "./%s", MC_VOCAB_FILENAME);
#ifdef MC_SHARE_DIR
    snprintf(cand[nc++], sizeof cand[0], "%s/%s", MC_SHARE_DIR, MC_VOCAB_FILENAME);
#endif
    for (int i = 0; i < nc; i++) {
        if (mc_path_is_file(cand[i])) {
            if (strlen(cand[i]) + 1 > path_cap)
                return mc_fail(err, MC_ERR_INVALID_ARG, "vocabulary path too long for the buffer");
            memcpy(path_out, cand[i], strlen(cand[i]) + 1);
            return MC_OK;
        }
    }
    char tried[MC_ERROR_MESSAGE_MAX];
    size_t k = 0;
    tried[0] = 0;
    for (int i = 0; i < nc && k < sizeof tried; i++) {
        int w = snprintf(tried + k, sizeof tried - k, "%s%s%s", i ? ", " : "", cand[i],
                         (i == 0 && env && *env) ? " ($" MC_VOCAB_ENV ")" : "");
        if (w < 0) break;
        k += (size_t)w;
    }
    return mc_fail(err, MC_ERR_NOT_FOUND,
                   "tokenizer vocabulary %s not found (tried: %s); set $%s or pass its path",
                   MC_VOCAB_FILENAME, tried, MC_VOCAB_ENV);
}

/* ------------------------------------------------------------------------ */
/* Cleaning                                                                  */
/* ------------------------------------------------------------------------ */

static int is_cased(uint32_t c) {
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return 1;
    if (c == 0xAA || c == 0xBA || (c >= 0x2B0 && c <= 0x2B8) || (c >= 0x2C0 && c <= 0x2C1) ||
        (c >= 0x2E0 && c <= 0x2E4) || c == 0x345 || c == 0x37A || (c >= 0x1D2C && c <= 0x1D6A))
        return 1;
    return utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

static int is_case_ignorable(uint32_t c) {
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0x5E: case 0x60: case 0xA8: case 0xAD: case 0xAF:
    case 0xB4: case 0xB7: case 0xB8: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
        return 1;
    default: break;
    }
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

/* Python's str.lower(): full mapping of U+0130, final sigma, else simple. */
static void py_lower(const mc_cpbuf *in, mc_cpbuf *out) {
    const uint32_t *t = in->v;
    size_t n = in->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = t[i];
        if (c < 0x80) {
            mc_cpbuf_push(out, (c >= 'A' && c <= 'Z') ? c + 32 : c);
        } else if (c == 0x130) {
            mc_cpbuf_push(out, 'i');
            mc_cpbuf_push(out, 0x307);
        } else if (c == 0x3A3) {
            size_t j = i;
            uint32_t p = 0;
            int have = 0;
            while (j > 0) {
                p = t[--j];
                if (!is_case_ignorable(p)) { have = 1; break; }
            }
            int final = have && is_cased(p);
            if (final) {
                for (j = i + 1; j < n && is_case_ignorable(t[j]); j++) {}
                final = j == n || !is_cased(t[j]);
            }
            mc_cpbuf_push(out, final ? 0x3C2 : 0x3C3);
        } else {
            mc_cpbuf_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
    }
}

/* ftfy, HTML unescape twice, strip, collapse whitespace, lower case. */
static mc_status clean_text(const char *text, size_t len, mc_cpbuf *out, mc_error *err) {
    mc_cpbuf a = {0}, b = {0};
    size_t bad_at = 0;
    if (!mc_utf8_decode(text, len, &a, &bad_at)) {
        mc_cpbuf_free(&a);
        return mc_fail(err, MC_ERR_INVALID_ARG, "text is not valid UTF-8 (byte %zu)", bad_at);
    }
    mc_ftfy_fix_text(&a, &b);
    mc_cpbuf_free(&a);
    mc_html_unescape(&b, &a);
    mc_cpbuf_free(&b);
    mc_html_unescape(&a, &b);
    mc_cpbuf_free(&a);
    /* split on whitespace, join with single spaces (this also strips) */
    for (size_t i = 0; i < b.n;) {
        while (i < b.n && mc_py_isspace(b.v[i])) i++;
        if (i == b.n) break;
        if (a.n) mc_cpbuf_push(&a, ' ');
        while (i < b.n && !mc_py_isspace(b.v[i])) mc_cpbuf_push(&a, b.v[i++]);
    }
    if (b.failed) a.failed = 1;
    mc_cpbuf_free(&b);
    py_lower(&a, out);
    if (a.failed) out->failed = 1;
    mc_cpbuf_free(&a);
    if (out->failed) return mc_fail(err, MC_ERR_NOMEM, "out of memory while cleaning text");
    return MC_OK;
}

mc_status mc_tokenizer_clean_n(const char *text, size_t len, char **out, mc_error *err) {
    if (!out || (!text && len)) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_tokenizer_clean: NULL argument");
    *out = NULL;
    mc_cpbuf c = {0};
    mc_status st = clean_text(text ? text : "", len, &c, err);
    if (st == MC_OK) {
        *out = mc_utf8_encode(c.v, c.n, NULL);
        if (!*out) st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
    }
    mc_cpbuf_free(&c);
    return st;
}

mc_status mc_tokenizer_clean(const char *text, char **out, mc_error *err) {
    if (!text) {
        if (out) *out = NULL;
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_tokenizer_clean: text is NULL");
    }
    return mc_tokenizer_clean_n(text, strlen(text), out, err);
}

/* ------------------------------------------------------------------------ */
/* BPE and encoding                                                          */
/* ------------------------------------------------------------------------ */

/* Merges the symbols of one word in place; returns the new count. */
static size_t bpe_word(const mc_tokenizer *tok, int32_t *w, size_t n) {
    while (n > 1) {
        int32_t best = INT32_MAX, first = -1, second = -1, merged = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            const pair_slot *s = pair_find(tok, w[i], w[i + 1]);
            if (s && s->rank < best) {
                best = s->rank;
                first = w[i];
                second = w[i + 1];
                merged = s->merged;
            }
        }
        if (first < 0) break;
        size_t k = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && w[i] == first && w[i + 1] == second) {
                w[k++] = merged;
                i += 2;
            } else {
                w[k++] = w[i++];
            }
        }
        n = k;
    }
    return n;
}

mc_status mc_tokenizer_encode_n(const mc_tokenizer *tok, const char *text, size_t len,
                                int context_length, int32_t *ids_out, mc_error *err) {
    if (!tok || !ids_out || (!text && len))
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_tokenizer_encode: NULL argument");
    if (context_length < 1)
        return mc_fail(err, MC_ERR_INVALID_ARG, "context length must be at least 1 (got %d)", context_length);
    mc_cpbuf c = {0};
    mc_status st = clean_text(text ? text : "", len, &c, err);
    if (st != MC_OK) { mc_cpbuf_free(&c); return st; }
    size_t slen;
    char *s = mc_utf8_encode(c.v, c.n, &slen);
    mc_cpbuf_free(&c);
    if (!s) return mc_fail(err, MC_ERR_NOMEM, "out of memory");

    size_t ctx = (size_t)context_length;
    memset(ids_out, 0, ctx * sizeof *ids_out);
    size_t n_ids = 0;
    ids_out[n_ids++] = MC_TOKEN_SOT;   /* may be overwritten by EOT when ctx == 1 */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(tok->re, NULL);
    int32_t *word = mc_malloc_array(slen + 1, sizeof *word);
    if (!md || !word) {
        pcre2_match_data_free(md);
        free(word);
        free(s);
        return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    }
    PCRE2_SIZE pos = 0;
    int more = 1;   /* 0 once ctx ids are collected: the rest would be cut */
    while (more && pos < slen) {
        int rc = pcre2_match(tok->re, (PCRE2_SPTR)s, slen, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) break;   /* PCRE2_ERROR_NOMATCH: only whitespace is left */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        pos = b > a ? b : a + 1;
        if (b <= a) continue;
        const char *piece = s + a;
        size_t plen = b - a;
        size_t nw;
        if (plen == 15 && !memcmp(piece, "<start_of_text>", 15)) {
            word[0] = MC_TOKEN_SOT;
            nw = 1;
        } else if (plen == 13 && !memcmp(piece, "<end_of_text>", 13)) {
            word[0] = MC_TOKEN_EOT;
            nw = 1;
        } else {
            for (size_t i = 0; i < plen; i++) word[i] = tok->byte_id[(uint8_t)piece[i]];
            word[plen - 1] += 256;   /* the last symbol carries "</w>" */
            nw = bpe_word(tok, word, plen);
        }
        for (size_t i = 0; i < nw; i++) {
            if (n_ids == ctx) { more = 0; break; }
            ids_out[n_ids++] = word[i];
        }
    }
    pcre2_match_data_free(md);
    free(word);
    free(s);
    if (n_ids < ctx) ids_out[n_ids] = MC_TOKEN_EOT;
    else ids_out[ctx - 1] = MC_TOKEN_EOT;
    return MC_OK;
}

mc_status mc_tokenizer_encode(const mc_tokenizer *tok, const char *text, int context_length,
                              int32_t *ids_out, mc_error *err) {
    if (!text) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_tokenizer_encode: text is NULL");
    return mc_tokenizer_encode_n(tok, text, strlen(text), context_length, ids_out, err);
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (Python's decoder:
 * shortest form, no surrogates, at most U+10FFFF). */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < need; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return need;
}

/* How many bytes Python's "replace" error handler folds into one U+FFFD:
 * the longest prefix of a valid sequence (at least 1). */
static size_t utf8_invalid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    size_t k = 1;
    if (k < n && k < need && s[k] >= lo && s[k] <= hi) {
        k++;
        while (k < n && k < need && s[k] >= 0x80 && s[k] <= 0xBF) k++;
    }
    return k;
}

mc_status mc_tokenizer_decode(const mc_tokenizer *tok, const int32_t *ids, int n, char **text_out, mc_error *err) {
    *text_out = NULL;
    if (!tok || (!ids && n > 0) || n < 0) return mc_fail(err, MC_ERR_INVALID_ARG, "tokenizer decode: bad arguments");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= N_VOCAB)
            return mc_fail(err, MC_ERR_INVALID_ARG, "token id %d at %d is outside the vocabulary of %d", (int)ids[i], i,
                           N_VOCAB);
        total += tok->dec_off[ids[i] + 1] - tok->dec_off[ids[i]];
    }
    unsigned char *raw = malloc(total + 1);
    char *out = malloc(total * 3 + 1);   /* an invalid byte becomes 3 bytes (U+FFFD) at most */
    if (!raw || !out) { free(raw); free(out); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        uint32_t a = tok->dec_off[ids[i]], b = tok->dec_off[ids[i] + 1];
        memcpy(raw + o, tok->dec + a, b - a);
        o += b - a;
    }
    /* "</w>" -> " " over the joined bytes, as the reference replaces it in the text */
    size_t w = 0;
    for (size_t k = 0; k < o;) {
        if (k + 4 <= o && !memcmp(raw + k, "</w>", 4)) { raw[w++] = ' '; k += 4; }
        else raw[w++] = raw[k++];
    }
    size_t q = 0;
    for (size_t k = 0; k < w;) {
        size_t v = utf8_valid_len(raw + k, w - k);
        if (v) { memcpy(out + q, raw + k, v); q += v; k += v; continue; }
        k += utf8_invalid_len(raw + k, w - k);
        memcpy(out + q, "\xEF\xBF\xBD", 3);
        q += 3;
    }
    out[q] = 0;
    free(raw);
    *text_out = out;
    return MC_OK;
}
