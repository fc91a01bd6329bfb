/*
 * data/npz.c - .npy parsing from memory, .npz (zip) reading with stored and
 * deflated members, gzip decompression and .pth.gz reading (see npz.h).
 * Formats: NumPy's NEP 1 (.npy header), PKWARE's APPNOTE (zip, zip64),
 * RFC 1952 (gzip, through zlib).
 */
#include "data/npz.h"
#include "io/ckpt_open.h"
#include "io/torchsave.h"
#include "core/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define NPY_MAX_HEADER 65536
#define NPZ_MAX_ENTRIES 4096

void mc_array_set_free(mc_array_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n; i++) {
        free(set->arrays[i].name);
        free(set->arrays[i].data);
    }
    free(set->arrays);
    set->arrays = NULL;
    set->n = 0;
}

const mc_array *mc_array_set_find(const mc_array_set *set, const char *name) {
    for (size_t i = 0; i < set->n; i++)
        if (!strcmp(set->arrays[i].name, name)) return &set->arrays[i];
    return NULL;
}

static mc_status set_push(mc_array_set *set, mc_array *a, const char *label, mc_error *err) {
    mc_array *na = realloc(set->arrays, (set->n + 1) * sizeof *na);
    if (!na) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label);
    set->arrays = na;
    set->arrays[set->n++] = *a;
    return MC_OK;
}

/* ------------------------------------------------------------ .npy */

typedef struct npy_lex {
    const char *p, *end;
} npy_lex;

static void lex_ws(npy_lex *l) {
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t')) l->p++;
}

/* A quoted string (single or double quotes, no escapes) into out[cap]. */
static int lex_str(npy_lex *l, char *out, size_t cap) {
    lex_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return 0;
    char q = *l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        if (*l->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *l->p++;
    }
    if (l->p >= l->end) return 0;
    l->p++;
    out[n] = 0;
    return 1;
}

static int lex_char(npy_lex *l, char c) {
    lex_ws(l);
    if (l->p < l->end && *l->p == c) { l->p++; return 1; }
    return 0;
}

static int lex_word(npy_lex *l, const char *w) {
    lex_ws(l);
    size_t n = strlen(w);
    if ((size_t)(l->end - l->p) >= n && !memcmp(l->p, w, n)) { l->p += n; return 1; }
    return 0;
}

mc_status mc_npy_parse_memory(const void *data, size_t len, const char *label, mc_array *out,
                              mc_error *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *d = data;
    if (len < 10 || memcmp(d, "\x93NUMPY", 6) != 0)
        return mc_fail(err, MC_ERR_FORMAT, "%s: not a .npy array (bad magic)", label);
    size_t hl, off;
    if (d[6] == 1) {
        hl = (size_t)d[8] | ((size_t)d[9] << 8);
        off = 10;
    } else if (d[6] == 2 || d[6] == 3) {
        if (len < 12) return mc_fail(err, MC_ERR_FORMAT, "%s: truncated .npy header", label);
        hl = (size_t)d[8] | ((size_t)d[9] << 8) | ((size_t)d[10] << 16) | ((size_t)d[11] << 24);
        off = 12;
    } else {
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: .npy version %u.%u", label, d[6], d[7]);
    }
    if (hl > NPY_MAX_HEADER || hl > len - off)
        return mc_fail(err, MC_ERR_FORMAT, "%s: .npy header of %zu bytes overruns the data", label, hl);
    npy_lex l = {(const char *)d + off, (const char *)d + off + hl};
    char descr[32] = "";
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0, nd = 0;
    int64_t shape[MC_MAX_DIMS];
    if (!lex_char(&l, '{')) goto bad;
    for (;;) {
        if (lex_char(&l, '}')) break;
        char key[32];
        if (!lex_str(&l, key, sizeof key) || !lex_char(&l, ':')) goto bad;
        if (!strcmp(key, "descr") && !have_descr) {
            if (!lex_str(&l, descr, sizeof descr)) goto bad;
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order") && !have_fortran) {
            if (lex_word(&l, "False")) fortran = 0;
            else if (lex_word(&l, "True")) fortran = 1;
            else goto bad;
            have_fortran = 1;
        } else if (!strcmp(key, "shape") && !have_shape) {
            if (!lex_char(&l, '(')) goto bad;
            for (;;) {
                if (lex_char(&l, ')')) break;
                lex_ws(&l);
                int64_t v = 0;
                const char *s = l.p;
                while (l.p < l.end && *l.p >= '0' && *l.p <= '9') {
                    if (v > ((int64_t)1 << 56)) goto bad;
                    v = v * 10 + (*l.p - '0');
                    l.p++;
                }
                if (l.p == s || nd >= MC_MAX_DIMS) goto bad;
                shape[nd++] = v;
                if (lex_char(&l, ')')) break;
                if (!lex_char(&l, ',')) goto bad;
            }
            /* a 1-tuple needs its comma in Python, "(5)" is an int: reject */
            have_shape = 1;
        } else {
            goto bad;
        }
        if (lex_char(&l, '}')) break;
        if (!lex_char(&l, ',')) goto bad;
    }
    while (l.p < l.end && (*l.p == ' ' || *l.p == '\n' || *l.p == '\t' || *l.p == '\r' || *l.p == 0)) l.p++;
    if (l.p != l.end || !have_descr || !have_fortran || !have_shape) goto bad;
    if (fortran)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: Fortran-order .npy arrays are not supported", label);
    mc_dtype dt;
    size_t es;
    if (!strcmp(descr, "<f4")) { dt = MC_DTYPE_F32; es = 4; }
    else if (!strcmp(descr, "<f2")) { dt = MC_DTYPE_F16; es = 2; }
    else if (!strcmp(descr, "<f8")) { dt = MC_DTYPE_F64; es = 8; }
    else return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: .npy dtype '%s' (only <f4, <f2, <f8)", label, descr);
    size_t numel = 1, nbytes;
    for (int i = 0; i < nd; i++)
        if (!mc_size_mul(numel, (size_t)shape[i], &numel))
            return mc_fail(err, MC_ERR_FORMAT, "%s: .npy shape overflows", label);
    size_t body = len - off - hl;
    if (!mc_size_mul(numel, es, &nbytes) || nbytes != body)
        return mc_fail(err, MC_ERR_FORMAT, "%s: .npy shape needs %zu elements of %zu bytes but %zu "
                       "bytes follow the header", label, numel, es, body);
    float *f = mc_malloc_array(numel ? numel : 1, sizeof(float));
    if (!f) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label);
    mc_convert_to_f32(dt, d + off + hl, numel, f);
    out->stored = dt;
    out->ndim = nd;
    for (int i = 0; i < nd; i++) out->shape[i] = shape[i];
    out->numel = numel;
    out->data = f;
    return MC_OK;
bad:
    return mc_fail(err, MC_ERR_FORMAT, "%s: malformed .npy header", label);
}

/* ------------------------------------------------------------ zip */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* zip64 extended information of a central entry (only the fields that are 0xffffffff). */
static int zip64_fields(const uint8_t *ex, size_t exlen, uint64_t *usize, uint64_t *csize,
                        uint64_t *off) {
    int need_u = *usize == 0xFFFFFFFFu, need_c = *csize == 0xFFFFFFFFu, need_o = *off == 0xFFFFFFFFu;
    size_t p = 0;
    while (p + 4 <= exlen) {
        size_t id = rd16(ex + p), n = rd16(ex + p + 2);
        if (n > exlen - p - 4) return 0;
        if (id == 1) {
            const uint8_t *f = ex + p + 4;
            size_t q = 0;
            if (need_u) { if (q + 8 > n) return 0; *usize = rd64(f + q); q += 8; need_u = 0; }
            if (need_c) { if (q + 8 > n) return 0; *csize = rd64(f + q); q += 8; need_c = 0; }
            if (need_o) { if (q + 8 > n) return 0; *off = rd64(f + q); need_o = 0; }
            break;
        }
        p += 4 + n;
    }
    return !need_u && !need_c && !need_o;
}

/* Inflates a raw deflate stream into exactly usize bytes: more output than
 * declared (a zip bomb or a lie) and less (truncation) are both errors. */
static mc_status inflate_exact(const uint8_t *src, size_t csize, uint8_t *dst, size_t usize,
                               const char *label, const char *member, mc_error *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) return mc_fail(err, MC_ERR_NOMEM, "%s: zlib init failed", label);
    const uInt chunk = 1u << 30;
    size_t in_left = csize, out_left = usize;
    const uint8_t *in = src;
    uint8_t extra;
    int over = 0, ret;
    z.next_out = dst;
    for (;;) {
        if (z.avail_in == 0 && in_left) {
            uInt k = in_left > chunk ? chunk : (uInt)in_left;
            z.next_in = (Bytef *)in;
            z.avail_in = k;
            in += k;
            in_left -= k;
        }
        if (z.avail_out == 0) {
            if (out_left) {
                uInt k = out_left > chunk ? chunk : (uInt)out_left;
                z.avail_out = k;
                out_left -= k;
            } else if (!over) {
                z.next_out = &extra;   /* any byte past the declared size is a lie */
                z.avail_out = 1;
                over = 1;
            }
        }
        ret = inflate(&z, Z_NO_FLUSH);
        if (over && z.avail_out == 0) {
            inflateEnd(&z);
            return mc_fail(err, MC_ERR_FORMAT, "%s: %s: inflates past its declared size of %zu bytes "
                           "(zip bomb?)", label, member, usize);
        }
        if (ret == Z_STREAM_END) break;
        if (ret == Z_BUF_ERROR && z.avail_in == 0 && !in_left) break;   /* input exhausted */
        if (ret != Z_OK && ret != Z_BUF_ERROR) break;
    }
    size_t total = (size_t)z.total_out;
    inflateEnd(&z);
    if (ret == Z_STREAM_END && total == usize) return MC_OK;
    if (ret == Z_MEM_ERROR) return mc_fail(err, MC_ERR_NOMEM, "%s: %s: out of memory", label, member);
    if (ret == Z_STREAM_END || ret == Z_BUF_ERROR)
        return mc_fail(err, MC_ERR_FORMAT, "%s: %s: deflate data ends after %zu of %zu declared bytes",
                       label, member, total, usize);
    return mc_fail(err, MC_ERR_FORMAT, "%s: %s: corrupt deflate data", label, member);
}

mc_status mc_npz_read_memory(const void *data, size_t len, const char *label, size_t max_bytes,
                             mc_array_set *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    if (!label) label = "<npz>";
    if (!max_bytes) max_bytes = MC_ARRAY_MAX_BYTES;
    const uint8_t *d = data;
    if (len < 22) return mc_fail(err, MC_ERR_FORMAT, "%s: truncated .npz (not a zip archive)", label);
    size_t lim = len > 22 + 65535 ? len - 22 - 65535 : 0, eocd = (size_t)-1;
    for (size_t p = len - 22 + 1; p-- > lim;)
        if (rd32(d + p) == 0x06054b50u && p + 22 + rd16(d + p + 20) <= len) { eocd = p; break; }
    if (eocd == (size_t)-1)
        return mc_fail(err, MC_ERR_FORMAT, "%s: no zip end-of-central-directory record (not a .npz, "
                       "or truncated)", label);
    uint64_t n_entries = rd16(d + eocd + 10), cd_size = rd32(d + eocd + 12), cd_off = rd32(d + eocd + 16);
    if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < 20 || rd32(d + eocd - 20) != 0x07064b50u)
            return mc_fail(err, MC_ERR_FORMAT, "%s: zip64 archive without its locator", label);
        uint64_t z64 = rd64(d + eocd - 20 + 8);
        if (z64 > len || len - z64 < 56 || rd32(d + z64) != 0x06064b50u)
            return mc_fail(err, MC_ERR_FORMAT, "%s: bad zip64 end-of-central-directory record", label);
        n_entries = rd64(d + z64 + 32);
        cd_size = rd64(d + z64 + 40);
        cd_off = rd64(d + z64 + 48);
    }
    if (cd_off > len || cd_size > len - cd_off)
        return mc_fail(err, MC_ERR_FORMAT, "%s: zip central directory lies outside the data", label);
    if (n_entries > NPZ_MAX_ENTRIES || n_entries > cd_size / 46)
        return mc_fail(err, MC_ERR_FORMAT, "%s: zip claims %llu entries in %llu directory bytes", label,
                       (unsigned long long)n_entries, (unsigned long long)cd_size);
    const uint8_t *cd = d + cd_off;
    size_t p = 0, total = 0;
    mc_status st = MC_OK;
    for (uint64_t i = 0; i < n_entries && st == MC_OK; i++) {
        if (cd_size - p < 46 || rd32(cd + p) != 0x02014b50u) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: bad zip central directory entry %llu", label,
                         (unsigned long long)i);
            break;
        }
        unsigned flags = rd16(cd + p + 8), method = rd16(cd + p + 10);
        uint32_t crc = rd32(cd + p + 16);
        uint64_t csize = rd32(cd + p + 20), usize = rd32(cd + p + 24), loff = rd32(cd + p + 42);
        size_t nl = rd16(cd + p + 28), xl = rd16(cd + p + 30), cl = rd16(cd + p + 32);
        if (cd_size - p - 46 < nl + xl + cl) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: zip central directory entry %llu overruns", label,
                         (unsigned long long)i);
            break;
        }
        const char *name = (const char *)cd + p + 46;
        char member[256];
        snprintf(member, sizeof member, "%.*s", (int)(nl < 200 ? nl : 200), name);
        for (char *c = member; *c; c++)
            if ((unsigned char)*c < 32 || (unsigned char)*c >= 127) *c = '?';
        if (!zip64_fields(cd + p + 46 + nl, xl, &usize, &csize, &loff)) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: bad zip64 field", label, member);
            break;
        }
        p += 46 + nl + xl + cl;
        if (nl < 4 || memcmp(name + nl - 4, ".npy", 4) != 0) continue;   /* not an array */
        if (flags & 1) { st = mc_fail(err, MC_ERR_UNSUPPORTED, "%s: %s: encrypted", label, member); break; }
        if (method != 0 && method != 8) {
            st = mc_fail(err, MC_ERR_UNSUPPORTED, "%s: %s: zip compression method %u (only stored and "
                         "deflated)", label, member, method);
            break;
        }
        if (usize > max_bytes || total + usize > max_bytes) {
            st = mc_fail(err, MC_ERR_NOMEM, "%s: %s: declares %llu uncompressed bytes (at most %zu per "
                         ".npz)", label, member, (unsigned long long)usize, max_bytes);
            break;
        }
        total += (size_t)usize;
        if (loff > len || len - loff < 30 || rd32(d + loff) != 0x04034b50u) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: bad zip local header", label, member);
            break;
        }
        const uint8_t *lh = d + loff;
        size_t lnl = rd16(lh + 26), lxl = rd16(lh + 28);
        uint64_t start = loff + 30 + lnl + lxl;
        if (lnl != nl || start > len || memcmp(lh + 30, name, nl) != 0 || rd16(lh + 8) != method) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: zip local header disagrees with the central "
                         "directory", label, member);
            break;
        }
        if (csize > len - start) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: compressed data lies past the end of the .npz",
                         label, member);
            break;
        }
        if (method == 0 && csize != usize) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: stored member with different sizes", label, member);
            break;
        }
        for (size_t k = 0; k < out->n; k++)
            if (strlen(out->arrays[k].name) == nl - 4 && !memcmp(out->arrays[k].name, name, nl - 4)) {
                st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: duplicate member", label, member);
                break;
            }
        if (st != MC_OK) break;
        const uint8_t *raw = d + start;
        uint8_t *buf = NULL;
        if (method == 8) {
            buf = malloc(usize ? (size_t)usize : 1);
            if (!buf) { st = mc_fail(err, MC_ERR_NOMEM, "%s: %s: out of memory", label, member); break; }
            st = inflate_exact(raw, (size_t)csize, buf, (size_t)usize, label, member, err);
            if (st != MC_OK) { free(buf); break; }
            raw = buf;
        }
        uLong c = crc32(0L, Z_NULL, 0);
        for (size_t q = 0; q < usize;) {
            uInt k = usize - q > (1u << 30) ? (1u << 30) : (uInt)(usize - q);
            c = crc32(c, raw + q, k);
            q += k;
        }
        if ((uint32_t)c != crc) {
            free(buf);
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: CRC mismatch", label, member);
            break;
        }
        char lbl[600];
        snprintf(lbl, sizeof lbl, "%s: %s", label, member);
        mc_array a;
        st = mc_npy_parse_memory(raw, (size_t)usize, lbl, &a, err);
        free(buf);
        if (st != MC_OK) break;
        a.name = malloc(nl - 4 + 1);
        if (!a.name) { free(a.data); st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label); break; }
        memcpy(a.name, name, nl - 4);
        a.name[nl - 4] = 0;
        if (memchr(name, 0, nl - 4)) {
            free(a.name);
            free(a.data);
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s: NUL in member name", label, member);
            break;
        }
        st = set_push(out, &a, label, err);
        if (st != MC_OK) { free(a.name); free(a.data); }
    }
    if (st != MC_OK) mc_array_set_free(out);
    return st;
}

/* ------------------------------------------------------------ gzip, .pth.gz */

mc_status mc_gunzip_memory(const void *data, size_t len, const char *label, size_t max_bytes,
                           uint8_t **out, size_t *out_len, mc_error *err) {
    *out = NULL;
    *out_len = 0;
    if (!label) label = "<gzip>";
    if (!max_bytes) max_bytes = MC_ARRAY_MAX_BYTES;
    const uint8_t *d = data;
    if (len < 18 || d[0] != 0x1f || d[1] != 0x8b)
        return mc_fail(err, MC_ERR_FORMAT, "%s: not a gzip stream", label);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + 15) != Z_OK) return mc_fail(err, MC_ERR_NOMEM, "%s: zlib init failed", label);
    size_t cap = len * 4 < 65536 ? 65536 : len * 4, n = 0;
    if (cap > max_bytes + 1) cap = max_bytes + 1;
    uint8_t *buf = malloc(cap);
    if (!buf) { inflateEnd(&z); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label); }
    size_t in_pos = 0;
    mc_status st = MC_OK;
    for (;;) {
        if (z.avail_in == 0 && in_pos < len) {
            uInt k = len - in_pos > (1u << 30) ? (1u << 30) : (uInt)(len - in_pos);
            z.next_in = (Bytef *)(d + in_pos);
            z.avail_in = k;
            in_pos += k;
        }
        if (n == cap) {
            if (cap > max_bytes) {
                st = mc_fail(err, MC_ERR_NOMEM, "%s: decompresses to more than %zu bytes", label, max_bytes);
                break;
            }
            size_t nc = cap > (max_bytes + 1) / 2 ? max_bytes + 1 : cap * 2;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) { st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label); break; }
            buf = nb;
            cap = nc;
        }
        size_t room = cap - n;
        z.next_out = buf + n;
        z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before_out = z.avail_out;
        int ret = inflate(&z, Z_NO_FLUSH);
        n += before_out - z.avail_out;
        if (n > max_bytes) {
            st = mc_fail(err, MC_ERR_NOMEM, "%s: decompresses to more than %zu bytes", label, max_bytes);
            break;
        }
        if (ret == Z_STREAM_END) {
            /* the rest of the input: nothing, zero padding, or another gzip member */
            const uint8_t *r = z.next_in, *end = d + len;
            while (r < end && *r == 0) r++;
            if (r == end) break;
            if (end - r < 2 || r[0] != 0x1f || r[1] != 0x8b) {
                st = mc_fail(err, MC_ERR_FORMAT, "%s: trailing garbage after the gzip stream", label);
                break;
            }
            inflateReset(&z);
            z.next_in = (Bytef *)r;
            size_t left = (size_t)(end - r);
            z.avail_in = left > (1u << 30) ? (1u << 30) : (uInt)left;
            in_pos = (size_t)(r - d) + z.avail_in;
            continue;
        }
        if (ret == Z_BUF_ERROR) {
            if (z.avail_in == 0 && in_pos >= len) {
                st = mc_fail(err, MC_ERR_FORMAT, "%s: truncated gzip stream", label);
                break;
            }
            continue;
        }
        if (ret == Z_MEM_ERROR) { st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label); break; }
        if (ret != Z_OK) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: corrupt gzip data (%s)", label, z.msg ? z.msg : "?");
            break;
        }
    }
    inflateEnd(&z);
    if (st != MC_OK) { free(buf); return st; }
    *out = buf;
    *out_len = n;
    return MC_OK;
}

mc_status mc_pthgz_read_memory(const void *data, size_t len, const char *label, size_t max_bytes,
                               mc_array_set *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    if (!label) label = "<pth.gz>";
    uint8_t *raw;
    size_t rl;
    mc_status st = mc_gunzip_memory(data, len, label, max_bytes, &raw, &rl, err);
    if (st != MC_OK) return st;
    mc_checkpoint *ck;
    st = mc_checkpoint_open_memory(raw, rl, label, &ck, err);
    free(raw);
    if (st != MC_OK) return st;
    size_t n = mc_checkpoint_count(ck);
    for (size_t i = 0; i < n && st == MC_OK; i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        if (t->dtype != MC_DTYPE_F32 && t->dtype != MC_DTYPE_F16 && t->dtype != MC_DTYPE_BF16 &&
            t->dtype != MC_DTYPE_F64)
            continue;   /* not an embedding */
        mc_array a;
        memset(&a, 0, sizeof a);
        a.stored = t->dtype;
        a.ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) a.shape[k] = t->shape[k];
        a.numel = (size_t)t->numel;
        a.name = strdup(t->name);
        a.data = mc_malloc_array(a.numel ? a.numel : 1, sizeof(float));
        if (!a.name || !a.data) {
            free(a.name);
            free(a.data);
            st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label);
            break;
        }
        mc_convert_to_f32(t->dtype, t->data, a.numel, a.data);
        st = set_push(out, &a, label, err);
        if (st != MC_OK) { free(a.name); free(a.data); }
    }
    mc_checkpoint_close(ck);
    if (st != MC_OK) mc_array_set_free(out);
    return st;
}

/* ------------------------------------------------------------------ writing */

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} membuf;

static void mb_put(membuf *b, const void *d, size_t n) {
    if (b->oom || !n) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void mb_u16(membuf *b, unsigned v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    mb_put(b, x, 2);
}

static void mb_u32(membuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    mb_put(b, x, 4);
}

static const char *npy_descr(mc_dtype d, size_t *es) {
    switch (d) {
    case MC_DTYPE_F32: *es = 4; return "<f4";
    case MC_DTYPE_F16: *es = 2; return "<f2";
    case MC_DTYPE_F64: *es = 8; return "<f8";
    default: return NULL;
    }
}

mc_status mc_npz_write_memory(const mc_st_entry *entries, size_t n, uint8_t **out, size_t *out_len,
                              mc_error *err) {
    *out = NULL;
    *out_len = 0;
    if (n == 0 || n > 1000) return mc_fail(err, MC_ERR_INVALID_ARG, "npz writer: %zu arrays", n);
    membuf b = {0};
    uint32_t *crcs = calloc(n, sizeof *crcs), *offs = calloc(n, sizeof *offs), *sizes = calloc(n, sizeof *sizes);
    mc_status st = MC_OK;
    if (!crcs || !offs || !sizes) { st = mc_fail(err, MC_ERR_NOMEM, "npz writer: out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        const mc_st_entry *e = &entries[i];
        size_t es = 0, count = 0, bytes;
        const char *descr = npy_descr(e->dtype, &es);
        uint8_t hdr[MC_NPY_HEADER_MAX];
        int hl = descr ? mc_npy_header(hdr, sizeof hdr, descr, e->ndim, e->shape, &count) : 0;
        size_t name_len = e->name ? strlen(e->name) : 0;
        if (hl <= 0 || !name_len || name_len > 200 || !mc_size_mul(count, es, &bytes) ||
            bytes > 0xFFFFFFFFu - (size_t)hl || b.n > 0xFFFFFFFFu - 4096 - bytes || (count && !e->data)) {
            st = mc_fail(err, MC_ERR_INVALID_ARG, "npz writer: array '%s': bad name, dtype, shape or size",
                         e->name ? e->name : "");
            goto out;
        }
        uLong c = crc32(0L, Z_NULL, 0);
        c = crc32(c, hdr, (uInt)hl);
        if (bytes) c = crc32(c, e->data, (uInt)bytes);
        crcs[i] = (uint32_t)c;
        sizes[i] = (uint32_t)(hl + bytes);
        offs[i] = (uint32_t)b.n;
        mb_u32(&b, 0x04034b50);
        mb_u16(&b, 20);          /* version needed */
        mb_u16(&b, 0);           /* flags */
        mb_u16(&b, 0);           /* stored */
        mb_u16(&b, 0);           /* time */
        mb_u16(&b, 0x21);        /* date: 1980-01-01 */
        mb_u32(&b, crcs[i]);
        mb_u32(&b, sizes[i]);
        mb_u32(&b, sizes[i]);
        mb_u16(&b, (unsigned)(name_len + 4));
        mb_u16(&b, 0);
        mb_put(&b, e->name, name_len);
        mb_put(&b, ".npy", 4);
        mb_put(&b, hdr, (size_t)hl);
        mb_put(&b, e->data, bytes);
    }
    size_t cd_start = b.n;
    for (size_t i = 0; i < n; i++) {
        size_t name_len = strlen(entries[i].name);
        mb_u32(&b, 0x02014b50);
        mb_u16(&b, 20);          /* made by */
        mb_u16(&b, 20);
        mb_u16(&b, 0);
        mb_u16(&b, 0);
        mb_u16(&b, 0);
        mb_u16(&b, 0x21);
        mb_u32(&b, crcs[i]);
        mb_u32(&b, sizes[i]);
        mb_u32(&b, sizes[i]);
        mb_u16(&b, (unsigned)(name_len + 4));
        mb_u16(&b, 0);           /* extra */
        mb_u16(&b, 0);           /* comment */
        mb_u16(&b, 0);           /* disk */
        mb_u16(&b, 0);           /* internal attributes */
        mb_u32(&b, 0644u << 16); /* external attributes */
        mb_u32(&b, offs[i]);
        mb_put(&b, entries[i].name, name_len);
        mb_put(&b, ".npy", 4);
    }
    size_t cd_size = b.n - cd_start;
    mb_u32(&b, 0x06054b50);
    mb_u16(&b, 0);
    mb_u16(&b, 0);
    mb_u16(&b, (unsigned)n);
    mb_u16(&b, (unsigned)n);
    mb_u32(&b, (uint32_t)cd_size);
    mb_u32(&b, (uint32_t)cd_start);
    mb_u16(&b, 0);
    if (b.oom) { st = mc_fail(err, MC_ERR_NOMEM, "npz writer: out of memory"); goto out; }
    *out = b.p;
    *out_len = b.n;
    b.p = NULL;
out:
    free(b.p);
    free(crcs);
    free(offs);
    free(sizes);
    return st;
}

mc_status mc_gzip_memory(const void *data, size_t len, int level, uint8_t **out, size_t *out_len, mc_error *err) {
    *out = NULL;
    *out_len = 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return mc_fail(err, MC_ERR_NOMEM, "gzip: cannot start the compressor");
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    uint8_t *buf = malloc(cap);
    if (!buf || len > 0xFFFFFFFFu) {
        deflateEnd(&z);
        free(buf);
        return mc_fail(err, buf ? MC_ERR_INVALID_ARG : MC_ERR_NOMEM, "gzip: %zu bytes: out of memory or too large", len);
    }
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t produced = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return mc_fail(err, MC_ERR_INTERNAL, "gzip: compression did not finish");
    }
    *out = buf;
    *out_len = produced;
    return MC_OK;
}

mc_status mc_pthgz_write_memory(const mc_st_entry *entries, size_t n, uint8_t **out, size_t *out_len,
                                mc_error *err) {
    uint8_t *zip = NULL;
    size_t zip_len = 0;
    *out = NULL;
    *out_len = 0;
    mc_status st = mc_torchsave_write_memory(entries, n, NULL, &zip, &zip_len, err);
    if (st == MC_OK) st = mc_gzip_memory(zip, zip_len, 6, out, out_len, err);
    free(zip);
    return st;
}
