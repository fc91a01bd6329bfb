/*
 * serve/b64.c - base64 and data-URL decoding (RFC 4648, RFC 2397).
 */
#include "serve/b64.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t mc_b64_decoded_max(size_t len) { return len / 4 * 3 + (len % 4) * 3 / 4 + 1; }

/* 0..63, or -1 for a character outside both alphabets */
static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

mc_status mc_b64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len, mc_error *err) {
    *out = NULL;
    *out_len = 0;
    if (!s && len) return mc_fail(err, MC_ERR_INVALID_ARG, "base64: NULL input");
    size_t n = len;
    /* padding: at most two '=' at the end, and then the length is a multiple of 4 */
    size_t pad = 0;
    while (n && s[n - 1] == '=' && pad < 2) { n--; pad++; }
    if (pad && len % 4)
        return mc_fail(err, MC_ERR_FORMAT, "base64: padding '=' in a length of %zu (not a multiple of 4)", len);
    if (n % 4 == 1) return mc_fail(err, MC_ERR_FORMAT, "base64: truncated (%zu characters)", n);
    size_t cap = mc_b64_decoded_max(n);
    unsigned char *o = malloc(cap);
    if (!o) return mc_fail(err, MC_ERR_NOMEM, "base64: out of memory for %zu bytes", cap);
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(o);
            if (s[i] == '=')
                return mc_fail(err, MC_ERR_FORMAT, "base64: padding '=' at offset %zu, before the end", i);
            return mc_fail(err, MC_ERR_FORMAT, "base64: invalid character 0x%02x at offset %zu",
                           (unsigned char)s[i], i);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[w++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* the last character's unused low bits must be zero (canonical encoding) */
    if (acc != 0) {
        free(o);
        return mc_fail(err, MC_ERR_FORMAT, "base64: non-zero trailing bits (not a canonical encoding)");
    }
    *out = o;
    *out_len = w;
    return MC_OK;
}

const char *mc_data_url_payload(const char *s, size_t len, size_t *payload_len, mc_error *err) {
    *payload_len = 0;
    if (len < 5 || strncasecmp(s, "data:", 5) != 0) {
        *payload_len = len;
        return s;
    }
    const char *comma = memchr(s, ',', len);
    if (!comma) {
        mc_fail(err, MC_ERR_FORMAT, "data URL without a ',' before its data");
        return NULL;
    }
    const char *meta = s + 5;
    size_t mlen = (size_t)(comma - meta);
    /* the last parameter must be ";base64" */
    if (mlen < 7 || strncasecmp(comma - 7, ";base64", 7) != 0) {
        mc_fail(err, MC_ERR_FORMAT, "data URL is not base64 (expected \"data:image/...;base64,\")");
        return NULL;
    }
    /* the media type: up to the first ';', empty or image/... */
    const char *semi = memchr(meta, ';', mlen);
    size_t tlen = (size_t)(semi - meta);
    if (tlen && (tlen < 6 || strncasecmp(meta, "image/", 6) != 0)) {
        mc_fail(err, MC_ERR_FORMAT, "data URL of media type '%.*s', not an image", (int)(tlen > 64 ? 64 : tlen), meta);
        return NULL;
    }
    *payload_len = len - (size_t)(comma + 1 - s);
    return comma + 1;
}

mc_status mc_data_url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len,
                             mc_error *err) {
    *out = NULL;
    *out_len = 0;
    size_t plen;
    const char *p = mc_data_url_payload(s, len, &plen, err);
    if (!p) return MC_ERR_FORMAT;
    return mc_b64_decode(p, plen, out, out_len, err);
}
