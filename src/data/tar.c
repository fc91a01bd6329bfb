/*
 * data/tar.c - streaming tar reader (see tar.h).  Formats from POSIX.1-2001
 * (ustar, pax) and GNU tar (long names, base-256 numbers); the choices of
 * what counts as a regular member and where a member's data lies follow
 * Python's tarfile, which webdataset reads shards with.
 */
#include "data/tar.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TAR_BLOCK 512

struct mc_tar {
    FILE *f;                  /* file source, or NULL */
    const uint8_t *mem;       /* memory source */
    size_t mem_len;
    char *label;
    mc_tar_params p;
    uint64_t pos;             /* bytes consumed */
    int failed;               /* fatal error seen */
    int ended;                /* end of archive seen */
    mc_error fatal;           /* the fatal error, repeated on later calls */
    uint8_t *buf;             /* current member's data (size + 1 bytes) */
    size_t buf_cap;
    char *name;               /* current member's name */
    size_t name_cap;
    /* pending extended-header state for the next member */
    char *long_name;          /* GNU 'L' */
    size_t long_name_len;
    char *pax_path;           /* pax "path" */
    size_t pax_path_len;
    int has_pax_size;
    uint64_t pax_size;
    int pending;              /* an extended header awaits its member */
};

mc_tar_params mc_tar_default_params(void) {
    mc_tar_params p;
    p.max_member_size = (size_t)1 << 30;
    p.max_header_size = (size_t)1 << 20;
    p.max_name_len = 4096;
    return p;
}

int mc_tar_failed(const mc_tar *t) { return t->failed; }
const char *mc_tar_label(const mc_tar *t) { return t->label; }

int mc_tar_name_ok(const char *name, size_t len) {
    if (len == 0 || name[0] == '/') return 0;
    if (memchr(name, 0, len)) return 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && name[j] != '/') j++;
        if (j - i == 2 && name[i] == '.' && name[i + 1] == '.') return 0;
        i = j + 1;
    }
    return 1;
}

static mc_status tar_new(const char *label, const mc_tar_params *params, mc_tar **out, mc_error *err) {
    mc_tar *t = calloc(1, sizeof *t);
    if (!t || !(t->label = strdup(label))) {
        free(t);
        return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label);
    }
    t->p = params ? *params : mc_tar_default_params();
    if (t->p.max_name_len == 0) t->p.max_name_len = 4096;
    *out = t;
    return MC_OK;
}

mc_status mc_tar_open_file(const char *path, const mc_tar_params *params, mc_tar **out,
                           mc_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    mc_tar *t;
    mc_status st = tar_new(path, params, &t, err);
    if (st != MC_OK) { fclose(f); return st; }
    t->f = f;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    *out = t;
    return MC_OK;
}

mc_status mc_tar_open_memory(const void *data, size_t len, const char *label,
                             const mc_tar_params *params, mc_tar **out, mc_error *err) {
    *out = NULL;
    if (!label) label = "<memory>";
    if (!data && len) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: NULL buffer", label);
    mc_tar *t;
    mc_status st = tar_new(label, params, &t, err);
    if (st != MC_OK) return st;
    t->mem = data;
    t->mem_len = len;
    *out = t;
    return MC_OK;
}

void mc_tar_close(mc_tar *t) {
    if (!t) return;
    if (t->f) fclose(t->f);
    free(t->label);
    free(t->buf);
    free(t->name);
    free(t->long_name);
    free(t->pax_path);
    free(t);
}

uint8_t *mc_tar_take_data(mc_tar *t) {
    uint8_t *b = t->buf;
    t->buf = NULL;
    t->buf_cap = 0;
    return b;
}

/* A fatal error: remembered and repeated. */
static mc_status tfail(mc_tar *t, mc_error *err, mc_status st, const char *fmt, ...) MC_PRINTF(4, 5);
static mc_status tfail(mc_tar *t, mc_error *err, mc_status st, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->failed = 1;
    mc_fail(&t->fatal, st, "%s: %s", t->label, msg);
    if (err) *err = t->fatal;
    return st;
}

/* Reads up to n bytes; returns how many (short only at the end of the data). */
static size_t src_read(mc_tar *t, void *dst, size_t n) {
    size_t got;
    if (t->f) {
        got = fread(dst, 1, n, t->f);
    } else {
        size_t left = t->mem_len - (size_t)t->pos;
        got = n < left ? n : left;
        memcpy(dst, t->mem + t->pos, got);
    }
    t->pos += got;
    return got;
}

/* Reads exactly n bytes or fails as truncated. */
static mc_status src_read_exact(mc_tar *t, void *dst, size_t n, const char *what, mc_error *err) {
    if (src_read(t, dst, n) != n) {
        if (t->f && ferror(t->f))
            return tfail(t, err, MC_ERR_IO, "read error in %s at offset %llu", what,
                         (unsigned long long)t->pos);
        return tfail(t, err, MC_ERR_FORMAT, "truncated archive: %s ends past the end of the data "
                     "(offset %llu)", what, (unsigned long long)t->pos);
    }
    return MC_OK;
}

/* Skips n bytes (data of refused members, padding). */
static mc_status src_skip(mc_tar *t, uint64_t n, const char *what, mc_error *err) {
    if (!t->f) {
        if (n > t->mem_len - t->pos) {
            t->pos = t->mem_len;
            return tfail(t, err, MC_ERR_FORMAT, "truncated archive: %s ends past the end of the data",
                         what);
        }
        t->pos += n;
        return MC_OK;
    }
    uint8_t tmp[16384];
    while (n) {
        size_t k = n < sizeof tmp ? (size_t)n : sizeof tmp;
        mc_status st = src_read_exact(t, tmp, k, what, err);
        if (st != MC_OK) return st;
        n -= k;
    }
    return MC_OK;
}

static uint64_t pad_of(uint64_t size) { return (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK; }

/* A numeric header field: octal (optional leading/trailing spaces, ends at
 * a NUL) or GNU base-256 (first byte 0x80 positive, 0xff negative). */
static int parse_num(const uint8_t *f, size_t n, uint64_t *out) {
    if (f[0] == 0x80 || f[0] == 0xff) {
        if (f[0] == 0xff) return 0;                    /* negative */
        uint64_t v = 0;
        for (size_t i = 1; i < n; i++) {
            if (v >> 55) return 0;                     /* would overflow 63 bits */
            v = (v << 8) | f[i];
        }
        *out = v;
        return 1;
    }
    size_t end = 0;
    while (end < n && f[end]) end++;
    size_t i = 0;
    while (i < end && f[i] == ' ') i++;
    uint64_t v = 0;
    while (i < end && f[i] >= '0' && f[i] <= '7') {
        if (v >> 60) return 0;
        v = v * 8 + (uint64_t)(f[i] - '0');
        i++;
    }
    while (i < end && f[i] == ' ') i++;
    if (i != end) return 0;
    *out = v;
    return 1;
}

static size_t nts_len(const uint8_t *f, size_t n) {
    size_t k = 0;
    while (k < n && f[k]) k++;
    return k;
}

static mc_status set_str(char **dst, size_t *dst_len, const void *src, size_t len) {
    char *s = malloc(len + 1);
    if (!s) return MC_ERR_NOMEM;
    memcpy(s, src, len);
    s[len] = 0;
    free(*dst);
    *dst = s;
    if (dst_len) *dst_len = len;
    return MC_OK;
}

static void clear_pending(mc_tar *t) {
    free(t->long_name);
    t->long_name = NULL;
    t->long_name_len = 0;
    free(t->pax_path);
    t->pax_path = NULL;
    t->pax_path_len = 0;
    t->has_pax_size = 0;
    t->pending = 0;
}

/* Parses pax records "LEN key=value\n" filling d[0..n).  global: validate only. */
static mc_status parse_pax(mc_tar *t, const uint8_t *d, size_t n, int global, uint64_t at,
                           mc_error *err) {
    size_t p = 0;
    while (p < n) {
        if (d[p] == 0) {                               /* NUL padding ends the records */
            for (size_t q = p; q < n; q++)
                if (d[q]) return tfail(t, err, MC_ERR_FORMAT, "bad pax header at offset %llu: "
                                       "data after NUL padding", (unsigned long long)at);
            break;
        }
        size_t q = p, len = 0;
        while (q < n && d[q] >= '0' && d[q] <= '9') {
            if (len > n) break;
            len = len * 10 + (size_t)(d[q] - '0');
            q++;
        }
        if (q == p || q >= n || d[q] != ' ' || len > n - p || len < (q - p) + 4 ||
            d[p + len - 1] != '\n')
            return tfail(t, err, MC_ERR_FORMAT, "bad pax header record at offset %llu",
                         (unsigned long long)at);
        const uint8_t *key = d + q + 1, *rec_end = d + p + len - 1;
        const uint8_t *eq = memchr(key, '=', (size_t)(rec_end - key));
        if (!eq || eq == key)
            return tfail(t, err, MC_ERR_FORMAT, "bad pax header record (no key=value) at offset %llu",
                         (unsigned long long)at);
        size_t klen = (size_t)(eq - key);
        const uint8_t *val = eq + 1;
        size_t vlen = (size_t)(rec_end - val);
        if (!global) {
            if (klen == 4 && !memcmp(key, "path", 4)) {
                if (set_str(&t->pax_path, &t->pax_path_len, val, vlen) != MC_OK)
                    return tfail(t, err, MC_ERR_NOMEM, "out of memory");
            } else if (klen == 4 && !memcmp(key, "size", 4)) {
                uint64_t v = 0;
                if (vlen == 0 || vlen > 19)
                    return tfail(t, err, MC_ERR_FORMAT, "bad pax size at offset %llu",
                                 (unsigned long long)at);
                for (size_t i = 0; i < vlen; i++) {
                    if (val[i] < '0' || val[i] > '9')
                        return tfail(t, err, MC_ERR_FORMAT, "bad pax size at offset %llu",
                                     (unsigned long long)at);
                    v = v * 10 + (uint64_t)(val[i] - '0');
                }
                t->pax_size = v;
                t->has_pax_size = 1;
            }
        }
        p += len;
    }
    return MC_OK;
}

/* Grows the member buffer to hold n + 1 bytes. */
static int buf_reserve(mc_tar *t, size_t n) {
    if (n + 1 <= t->buf_cap) return 1;
    uint8_t *b = realloc(t->buf, n + 1);
    if (!b) return 0;
    t->buf = b;
    t->buf_cap = n + 1;
    return 1;
}

/* Reads a member's data of size bytes into t->buf, growing as data arrives
 * so that a hostile size cannot allocate more than the archive holds. */
static mc_status read_data(mc_tar *t, uint64_t size, const char *what, mc_error *err) {
    size_t have = 0, n = (size_t)size;
    while (have < n) {
        size_t cap = t->buf_cap ? t->buf_cap - 1 : 0;
        if (have == cap) {
            size_t grow = cap < 65536 ? 65536 : cap * 2;
            if (grow > n) grow = n;
            if (!buf_reserve(t, grow)) return tfail(t, err, MC_ERR_NOMEM, "out of memory for %s", what);
            cap = t->buf_cap - 1;
        }
        size_t k = cap - have < n - have ? cap - have : n - have;
        mc_status st = src_read_exact(t, t->buf + have, k, what, err);
        if (st != MC_OK) return st;
        have += k;
    }
    if (!buf_reserve(t, n)) return tfail(t, err, MC_ERR_NOMEM, "out of memory for %s", what);
    t->buf[n] = 0;
    return src_skip(t, pad_of(size), what, err);
}

mc_status mc_tar_next(mc_tar *t, mc_tar_member *m, int *eof, mc_error *err) {
    memset(m, 0, sizeof *m);
    *eof = 0;
    if (t->failed) {
        if (err) *err = t->fatal;
        return t->fatal.status;
    }
    if (t->ended) { *eof = 1; return MC_OK; }
    for (;;) {
        uint8_t h[TAR_BLOCK];
        uint64_t at = t->pos;
        size_t got = src_read(t, h, TAR_BLOCK);
        if (got == 0) {
            if (t->f && ferror(t->f))
                return tfail(t, err, MC_ERR_IO, "read error at offset %llu", (unsigned long long)at);
            if (t->pending)
                return tfail(t, err, MC_ERR_FORMAT, "truncated archive: extended header at the end "
                             "without its member");
            t->ended = 1;
            *eof = 1;
            return MC_OK;
        }
        if (got < TAR_BLOCK)
            return tfail(t, err, MC_ERR_FORMAT, "truncated archive: partial header at offset %llu",
                         (unsigned long long)at);
        int zero = 1;
        for (int i = 0; i < TAR_BLOCK && zero; i++) zero = h[i] == 0;
        if (zero) {
            if (t->pending)
                return tfail(t, err, MC_ERR_FORMAT, "extended header at offset %llu followed by the "
                             "end-of-archive marker", (unsigned long long)at);
            t->ended = 1;
            *eof = 1;
            return MC_OK;
        }
        /* checksum: the header's bytes with the checksum field as spaces */
        uint64_t want;
        if (!parse_num(h + 148, 8, &want))
            return tfail(t, err, MC_ERR_FORMAT, "bad header checksum field at offset %llu "
                         "(not a tar archive?)", (unsigned long long)at);
        uint64_t usum = 0;
        int64_t ssum = 0;
        for (int i = 0; i < TAR_BLOCK; i++) {
            uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
            usum += c;
            ssum += (int8_t)c;
        }
        if (want != usum && (int64_t)want != ssum)
            return tfail(t, err, MC_ERR_FORMAT, "header checksum mismatch at offset %llu "
                         "(stored %llu, computed %llu)", (unsigned long long)at,
                         (unsigned long long)want, (unsigned long long)usum);
        uint64_t size;
        if (!parse_num(h + 124, 12, &size))
            return tfail(t, err, MC_ERR_FORMAT, "bad size field in header at offset %llu",
                         (unsigned long long)at);
        char type = (char)h[156];
        if (!t->f && size > (uint64_t)(t->mem_len - t->pos))
            return tfail(t, err, MC_ERR_FORMAT, "member at offset %llu declares %llu bytes, past the "
                         "end of the archive", (unsigned long long)at, (unsigned long long)size);
        if (type == 'L' || type == 'K' || type == 'x' || type == 'X' || type == 'g') {
            if (size > t->p.max_header_size)
                return tfail(t, err, MC_ERR_FORMAT, "extended header at offset %llu is %llu bytes "
                             "(at most %zu)", (unsigned long long)at, (unsigned long long)size,
                             t->p.max_header_size);
            mc_status st = read_data(t, size, "extended header", err);
            if (st != MC_OK) return st;
            if (type == 'L') {
                size_t nl = nts_len(t->buf, (size_t)size);
                if (set_str(&t->long_name, &t->long_name_len, t->buf, nl) != MC_OK)
                    return tfail(t, err, MC_ERR_NOMEM, "out of memory");
                t->pending = 1;
            } else if (type == 'K') {
                t->pending = 1;
            } else {
                st = parse_pax(t, t->buf, (size_t)size, type == 'g', at, err);
                if (st != MC_OK) return st;
                if (type != 'g') t->pending = 1;
            }
            continue;
        }
        /* the member's name: pax path, GNU long name, or ustar prefix/name */
        const char *name;
        size_t name_len;
        char ustar[257];
        if (t->pax_path) {
            name = t->pax_path;
            name_len = t->pax_path_len;
        } else if (t->long_name) {
            name = t->long_name;
            name_len = t->long_name_len;
        } else {
            size_t nl = nts_len(h, 100), pl = 0;
            if (!memcmp(h + 257, "ustar\0", 6)) pl = nts_len(h + 345, 155);
            if (pl) {
                memcpy(ustar, h + 345, pl);
                ustar[pl] = '/';
                memcpy(ustar + pl + 1, h, nl);
                name_len = pl + 1 + nl;
            } else {
                memcpy(ustar, h, nl);
                name_len = nl;
            }
            ustar[name_len] = 0;
            name = ustar;
        }
        if (t->has_pax_size) size = t->pax_size;
        if (!t->f && size > (uint64_t)(t->mem_len - t->pos))
            return tfail(t, err, MC_ERR_FORMAT, "member at offset %llu declares %llu bytes, past the "
                         "end of the archive", (unsigned long long)at, (unsigned long long)size);
        int regular = type == '0' || type == '\0' || type == '7';
        if (type == '\0' && name_len && name[name_len - 1] == '/') regular = 0;  /* old-style directory */
        int known_other = type >= '1' && type <= '6';
        if (type == 'S') {
            clear_pending(t);
            return tfail(t, err, MC_ERR_UNSUPPORTED, "GNU sparse member at offset %llu",
                         (unsigned long long)at);
        }
        if (!regular) {
            /* links, devices, directories, FIFOs carry no data (as Python's
             * tarfile reads them); unknown types are skipped with their data */
            clear_pending(t);
            if (!known_other) {
                mc_status st = src_skip(t, size + pad_of(size), "member data", err);
                if (st != MC_OK) return st;
            }
            continue;
        }
        int name_ok = name_len <= t->p.max_name_len && mc_tar_name_ok(name, name_len);
        if (!name_ok || size > t->p.max_member_size) {
            char shown[160];
            size_t sl = name_len < sizeof shown - 1 ? name_len : sizeof shown - 1;
            for (size_t i = 0; i < sl; i++) shown[i] = (name[i] >= 32 && name[i] < 127) ? name[i] : '?';
            shown[sl] = 0;
            clear_pending(t);
            mc_status st = src_skip(t, size + pad_of(size), "member data", err);
            if (st != MC_OK) return st;
            if (!name_ok)
                return mc_fail(err, MC_ERR_FORMAT, "%s: member '%s%s' at offset %llu refused: %s",
                               t->label, shown, name_len > sl ? "..." : "", (unsigned long long)at,
                               name_len > t->p.max_name_len ? "name too long"
                               : "empty, absolute, '..' or NUL in its name");
            return mc_fail(err, MC_ERR_FORMAT, "%s: member '%s' at offset %llu refused: %llu bytes "
                           "(at most %zu)", t->label, shown, (unsigned long long)at,
                           (unsigned long long)size, t->p.max_member_size);
        }
        if (name_len + 1 > t->name_cap) {
            char *nn = realloc(t->name, name_len + 1);
            if (!nn) return tfail(t, err, MC_ERR_NOMEM, "out of memory");
            t->name = nn;
            t->name_cap = name_len + 1;
        }
        memcpy(t->name, name, name_len);
        t->name[name_len] = 0;
        clear_pending(t);
        mc_status st = read_data(t, size, t->name, err);
        if (st != MC_OK) return st;
        m->name = t->name;
        m->data = t->buf;
        m->size = (size_t)size;
        m->header_offset = at;
        return MC_OK;
    }
}

/* ------------------------------------------------------------------ writing */

static void tar_octal(char *dst, size_t width, uint64_t v) {
    /* width - 1 octal digits and a NUL, zero-padded */
    dst[width - 1] = 0;
    for (size_t i = width - 1; i > 0; i--) {
        dst[i - 1] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

mc_status mc_tar_write_member(FILE *f, const char *label, const char *name, const void *data, size_t size,
                              mc_error *err) {
    size_t len = name ? strlen(name) : 0;
    if (!mc_tar_name_ok(name ? name : "", len))
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: member name '%s' is not a plain relative name", label,
                       name ? name : "");
    if ((uint64_t)size >= ((uint64_t)1 << 33))
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: member '%s' of %zu bytes is too large for ustar", label, name, size);
    char h[512];
    memset(h, 0, sizeof h);
    if (len <= 100) {
        memcpy(h, name, len);
    } else {
        /* prefix (up to 155) '/' name (up to 100) */
        const char *cut = NULL;
        for (const char *p = name; *p; p++)
            if (*p == '/' && (size_t)(p - name) <= 155 && len - (size_t)(p - name) - 1 <= 100 && p > name) cut = p;
        if (!cut) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: member name '%s' is too long for ustar", label, name);
        memcpy(h + 345, name, (size_t)(cut - name));
        memcpy(h, cut + 1, len - (size_t)(cut - name) - 1);
    }
    tar_octal(h + 100, 8, 0644);
    tar_octal(h + 108, 8, 0);
    tar_octal(h + 116, 8, 0);
    tar_octal(h + 124, 12, (uint64_t)size);
    tar_octal(h + 136, 12, 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += (unsigned char)h[i];
    tar_octal(h + 148, 7, sum);
    h[155] = ' ';
    static const char zeros[512];
    size_t pad = (512 - size % 512) % 512;
    if (fwrite(h, 1, 512, f) != 512 || (size && fwrite(data, 1, size, f) != size) ||
        (pad && fwrite(zeros, 1, pad, f) != pad))
        return mc_fail(err, MC_ERR_IO, "%s: writing member '%s' failed", label, name);
    return MC_OK;
}

mc_status mc_tar_write_end(FILE *f, const char *label, mc_error *err) {
    static const char zeros[1024];
    if (fwrite(zeros, 1, sizeof zeros, f) != sizeof zeros)
        return mc_fail(err, MC_ERR_IO, "%s: writing the end of the archive failed", label);
    return MC_OK;
}
