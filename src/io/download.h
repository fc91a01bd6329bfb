/*
 * io/download.h - downloading a file atomically with a checksum (libcurl),
 * and SHA-256.
 */
#ifndef MC_IO_DOWNLOAD_H
#define MC_IO_DOWNLOAD_H

#include "core/core.h"

/* Called as bytes arrive; total is -1 while unknown.  Return nonzero to abort. */
typedef int (*mc_progress_fn)(void *user, const char *label, int64_t done, int64_t total);

typedef struct mc_download_params {
    mc_progress_fn progress;   /* NULL: none */
    void *user;
    const char *label;         /* passed to progress (e.g. the file name) */
    const char *sha256;        /* expected hex digest; NULL: the server's, when it gives one */
    long connect_timeout_s;    /* 0: 30 s */
    long low_speed_timeout_s;  /* abort when under 1 byte/s for this long; 0: 60 s */
} mc_download_params;

mc_download_params mc_download_default_params(void);

/* Downloads url to dest atomically: into a temporary file in dest's folder,
 * fsync, verify, rename.  On any failure nothing is left at dest or beside it.
 * The checksum is params->sha256 when given, else the server's: the
 * X-Linked-Etag header (Hugging Face LFS files) or an ETag that is a 64-digit
 * hex sha256; with neither, the file is not verified.
 * Errors: MC_ERR_NETWORK (connection, HTTP status >= 400, truncated body),
 * MC_ERR_CHECKSUM, MC_ERR_IO. */
mc_status mc_download_file(const char *url, const char *dest, const mc_download_params *params,
                           mc_error *err);

/* ---- SHA-256 (FIPS 180-4) ---- */

typedef struct mc_sha256 {
    uint32_t h[8];
    uint64_t len;              /* bytes so far */
    uint8_t buf[64];
    size_t n;                  /* bytes in buf */
} mc_sha256;

void mc_sha256_init(mc_sha256 *s);
void mc_sha256_update(mc_sha256 *s, const void *data, size_t len);
void mc_sha256_final(mc_sha256 *s, uint8_t digest[32]);
/* Lower-case hex of the digest of data[0..len), into hex[65]. */
void mc_sha256_hex(const void *data, size_t len, char hex[65]);
/* Hex digest of a file's contents. */
mc_status mc_sha256_file(const char *path, char hex[65], mc_error *err);

#endif /* MC_IO_DOWNLOAD_H */
