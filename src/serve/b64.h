/*
 * serve/b64.h - base64 and data URLs, as images arrive in JSON requests.
 * Untrusted input: every length is checked, the output is bounded by the
 * caller's limit before anything is allocated.
 */
#ifndef MC_SERVE_B64_H
#define MC_SERVE_B64_H

#include "core/core.h"

/* The most bytes that len characters of base64 can decode to. */
size_t mc_b64_decoded_max(size_t len);

/* Decodes standard base64 (RFC 4648 section 4, also the URL-safe '-' and
 * '_'), '=' padding optional but only at the end; no whitespace.  *out is
 * malloc'd (at least one byte, so an empty input gives a valid pointer). */
mc_status mc_b64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len, mc_error *err);

/* An image as a client sends it: a data URL "data:image/TYPE;base64,DATA"
 * (other parameters before ";base64" allowed, the media type must be an
 * image or absent) or bare base64.  MC_ERR_FORMAT on anything else. */
mc_status mc_data_url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len,
                             mc_error *err);

/* The base64 characters of s[0..len): the part after the comma of a data URL,
 * else all of it; NULL (and MC_ERR_FORMAT) when a data URL is malformed. */
const char *mc_data_url_payload(const char *s, size_t len, size_t *payload_len, mc_error *err);

#endif /* MC_SERVE_B64_H */
