/*
 * io/download.c - SHA-256 and atomic, checksum-verified downloads over
 * libcurl (download.h).
 */
#include "io/download.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4)                                                      */
/* ------------------------------------------------------------------------ */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + sha_k[i] + w[i];
        uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + mj;
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void mc_sha256_init(mc_sha256 *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->n = 0;
}

void mc_sha256_update(mc_sha256 *s, const void *data, size_t len) {
    const uint8_t *p = data;
    s->len += len;
    if (s->n) {
        size_t take = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->buf + s->n, p, take);
        s->n += take; p += take; len -= take;
        if (s->n < 64) return;
        sha_block(s->h, s->buf);
        s->n = 0;
    }
    for (; len >= 64; p += 64, len -= 64) sha_block(s->h, p);
    memcpy(s->buf, p, len);
    s->n = len;
}

void mc_sha256_final(mc_sha256 *s, uint8_t digest[32]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    mc_sha256_update(s, &pad, 1);
    uint8_t zero = 0;
    while (s->n != 56) mc_sha256_update(s, &zero, 1);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    mc_sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(s->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)s->h[i];
    }
}

static void to_hex(const uint8_t d[32], char hex[65]) {
    static const char *x = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = x[d[i] >> 4];
        hex[2 * i + 1] = x[d[i] & 15];
    }
    hex[64] = 0;
}

void mc_sha256_hex(const void *data, size_t len, char hex[65]) {
    mc_sha256 s;
    uint8_t d[32];
    mc_sha256_init(&s);
    mc_sha256_update(&s, data, len);
    mc_sha256_final(&s, d);
    to_hex(d, hex);
}

mc_status mc_sha256_file(const char *path, char hex[65], mc_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    mc_sha256 s;
    mc_sha256_init(&s);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) mc_sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return mc_fail(err, MC_ERR_IO, "%s: read error", path);
    uint8_t d[32];
    mc_sha256_final(&s, d);
    to_hex(d, hex);
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Downloads                                                                 */
/* ------------------------------------------------------------------------ */

mc_download_params mc_download_default_params(void) {
    mc_download_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;
static void curl_init(void) { curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct dl_state {
    int fd;
    mc_sha256 sha;
    int io_error;
    char etag[80];          /* ETag of the latest response, if a sha256 */
    char linked_etag[80];   /* X-Linked-Etag of any response, if a sha256 */
    const mc_download_params *p;
    int aborted;
} dl_state;

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *user) {
    dl_state *s = user;
    size_t len = size * nmemb, done = 0;
    while (done < len) {
        ssize_t w = write(s->fd, ptr + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            s->io_error = errno;
            return 0;
        }
        done += (size_t)w;
    }
    mc_sha256_update(&s->sha, ptr, len);
    return len;
}

/* Copies a header value that is a 64-digit hex sha256 (quotes and W/ removed)
 * into out, lower-cased; leaves out empty otherwise. */
static void take_sha_value(const char *v, size_t len, char out[80]) {
    out[0] = 0;
    while (len && (*v == ' ' || *v == '\t')) { v++; len--; }
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) len--;
    if (len >= 2 && (v[0] == 'W' || v[0] == 'w') && v[1] == '/') { v += 2; len -= 2; }
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') { v++; len -= 2; }
    if (len != 64) return;
    for (size_t i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)v[i])) return;
    for (size_t i = 0; i < 64; i++) out[i] = (char)tolower((unsigned char)v[i]);
    out[64] = 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user) {
    dl_state *s = user;
    size_t len = size * nitems;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) s->etag[0] = 0;   /* a new response */
    static const char et[] = "etag:", xl[] = "x-linked-etag:";
    if (len > sizeof et - 1 && !strncasecmp(buf, et, sizeof et - 1))
        take_sha_value(buf + sizeof et - 1, len - (sizeof et - 1), s->etag);
    else if (len > sizeof xl - 1 && !strncasecmp(buf, xl, sizeof xl - 1)) {
        char tmp[80];
        take_sha_value(buf + sizeof xl - 1, len - (sizeof xl - 1), tmp);
        if (tmp[0]) memcpy(s->linked_etag, tmp, sizeof tmp);
    }
    return len;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)ultotal; (void)ulnow;
    dl_state *s = user;
    if (s->p->progress &&
        s->p->progress(s->p->user, s->p->label, (int64_t)dlnow, dltotal > 0 ? (int64_t)dltotal : -1)) {
        s->aborted = 1;
        return 1;
    }
    return 0;
}

static void fsync_dir_of(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

mc_status mc_download_file(const char *url, const char *dest, const mc_download_params *params,
                           mc_error *err) {
    mc_download_params dp = params ? *params : mc_download_default_params();
    if (!url || !dest) return mc_fail(err, MC_ERR_INVALID_ARG, "download: no URL or destination");
    pthread_once(&curl_once, curl_init);
    if (curl_init_code != CURLE_OK)
        return mc_fail(err, MC_ERR_NETWORK, "libcurl initialisation failed");

    char tmp[4096];
    /* "<dest>.part-<pid>-XXXXXX": a later run removes it if this process is killed */
    mc_remove_stale_temps(dest);
    int n = snprintf(tmp, sizeof tmp, "%s.part-%ld-XXXXXX", dest, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: path too long", dest);
    dl_state s;
    memset(&s, 0, sizeof s);
    s.p = &dp;
    s.fd = mkstemp(tmp);
    if (s.fd < 0) return mc_fail(err, MC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fchmod(s.fd, 0644);
    mc_sha256_init(&s.sha);

    mc_status st = MC_OK;
    CURL *c = curl_easy_init();
    if (!c) {
        st = mc_fail(err, MC_ERR_NOMEM, "libcurl: cannot create a handle");
        goto fail;
    }
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mobileclip.c/" MC_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, dp.connect_timeout_s > 0 ? dp.connect_timeout_s : 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, dp.low_speed_timeout_s > 0 ? dp.low_speed_timeout_s : 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        if (s.io_error)
            st = mc_fail(err, MC_ERR_IO, "%s: write failed: %s", tmp, strerror(s.io_error));
        else if (s.aborted)
            st = mc_fail(err, MC_ERR_NETWORK, "%s: download cancelled", url);
        else if (cc == CURLE_HTTP_RETURNED_ERROR)
            st = mc_fail(err, MC_ERR_NETWORK, "%s: HTTP status %ld", url, code);
        else
            st = mc_fail(err, MC_ERR_NETWORK, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(cc));
        goto fail;
    }
    if (fsync(s.fd) != 0) {
        st = mc_fail(err, MC_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    uint8_t d[32];
    char got[65];
    mc_sha256_final(&s.sha, d);
    to_hex(d, got);
    const char *want = dp.sha256 ? dp.sha256 : s.linked_etag[0] ? s.linked_etag : s.etag[0] ? s.etag : NULL;
    if (want && strcasecmp(want, got) != 0) {
        st = mc_fail(err, MC_ERR_CHECKSUM, "%s: sha256 %s, expected %s", url, got, want);
        goto fail;
    }
    if (close(s.fd) != 0) {
        s.fd = -1;
        st = mc_fail(err, MC_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    s.fd = -1;
    if (rename(tmp, dest) != 0) {
        st = mc_fail(err, MC_ERR_IO, "%s: cannot rename to %s: %s", tmp, dest, strerror(errno));
        goto fail;
    }
    fsync_dir_of(dest);
    return MC_OK;

fail:
    if (s.fd >= 0) close(s.fd);
    unlink(tmp);
    return st;
}
