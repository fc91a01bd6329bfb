/*
 * io/torchsave.c - the torch.save writer (torchsave.h): a protocol-2 pickle
 * of an OrderedDict of tensors, written opcode by opcode, and the zip
 * container around it (stored entries, data aligned to 64 bytes, CRC-32,
 * ZIP64 where the 32-bit fields do not suffice), written atomically.
 *
 * The pickle uses only opcodes that PyTorch 1.13's weights_only unpickler
 * accepts (PROTO, GLOBAL, BINPUT/BINGET, EMPTY_TUPLE, MARK, TUPLE, REDUCE,
 * SETITEMS, BINUNICODE, BININT1/BININT2/BININT, LONG1, NEWFALSE, BINPERSID,
 * STOP) and only the globals it allows (collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, the torch.<T>Storage classes).
 */
#include "io/torchsave.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------ byte buffer */

typedef struct tbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} tbuf;

static void put(tbuf *b, const void *d, size_t n) {
    if (b->oom) return;
    if (n > b->cap - b->n) {
        size_t need;
        if (!mc_size_add(b->n, n, &need)) { b->oom = 1; return; }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) { cap = need; break; }
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put1(tbuf *b, uint8_t c) { put(b, &c, 1); }

static void le(uint8_t *d, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) d[i] = (uint8_t)(v >> (8 * i));
}

/* ----------------------------------------------------------------- pickle */

/* Pickle opcodes (the protocol's definition). */
enum {
    OP_PROTO = 0x80, OP_GLOBAL = 'c', OP_BINPUT = 'q', OP_BINGET = 'h', OP_EMPTY_TUPLE = ')',
    OP_MARK = '(', OP_TUPLE = 't', OP_REDUCE = 'R', OP_SETITEMS = 'u', OP_BINUNICODE = 'X',
    OP_BININT1 = 'K', OP_BININT2 = 'M', OP_BININT = 'J', OP_LONG1 = 0x8a, OP_NEWFALSE = 0x89,
    OP_BINPERSID = 'Q', OP_STOP = '.'
};

/* Memo slots of the values used again and again. */
enum { MEMO_ODICT, MEMO_REBUILD, MEMO_STORAGE, MEMO_CPU, MEMO_TYPE0 };

static const char *const storage_class[MC_DTYPE_COUNT] = {
    [MC_DTYPE_F32] = "FloatStorage", [MC_DTYPE_F16] = "HalfStorage",  [MC_DTYPE_BF16] = "BFloat16Storage",
    [MC_DTYPE_F64] = "DoubleStorage", [MC_DTYPE_I64] = "LongStorage", [MC_DTYPE_I32] = "IntStorage",
    [MC_DTYPE_I16] = "ShortStorage", [MC_DTYPE_I8] = "CharStorage",   [MC_DTYPE_U8] = "ByteStorage",
    [MC_DTYPE_BOOL] = "BoolStorage",
};

typedef struct pickler {
    tbuf b;
    uint8_t memo_set[MEMO_TYPE0 + MC_DTYPE_COUNT];
} pickler;

/* A non-negative integer in the shortest form. */
static void pk_int(pickler *pk, uint64_t v) {
    uint8_t d[10];
    if (v < 0x100) {
        d[0] = OP_BININT1, d[1] = (uint8_t)v;
        put(&pk->b, d, 2);
    } else if (v < 0x10000) {
        d[0] = OP_BININT2;
        le(d + 1, v, 2);
        put(&pk->b, d, 3);
    } else if (v < 0x80000000u) {
        d[0] = OP_BININT;
        le(d + 1, v, 4);
        put(&pk->b, d, 5);
    } else { /* LONG1: little-endian two's complement, a zero byte above a set top bit */
        int n = 0;
        for (uint64_t x = v; x; x >>= 8) n++;
        le(d + 2, v, n);
        if (d[2 + n - 1] & 0x80) d[2 + n++] = 0;
        d[0] = OP_LONG1, d[1] = (uint8_t)n;
        put(&pk->b, d, (size_t)n + 2);
    }
}

static void pk_str(pickler *pk, const char *s, size_t len) {
    uint8_t d[5] = {OP_BINUNICODE};
    le(d + 1, len, 4);
    put(&pk->b, d, 5);
    put(&pk->b, s, len);
}

/* Pushes memo slot's value with BINGET when it is defined (returns 1); else returns 0
 * and the caller writes the value, then pk_memo_put. */
static int pk_memo_get(pickler *pk, int slot) {
    if (!pk->memo_set[slot]) return 0;
    uint8_t d[2] = {OP_BINGET, (uint8_t)slot};
    put(&pk->b, d, 2);
    return 1;
}

static void pk_memo_put(pickler *pk, int slot) {
    uint8_t d[2] = {OP_BINPUT, (uint8_t)slot};
    put(&pk->b, d, 2);
    pk->memo_set[slot] = 1;
}

static void pk_global(pickler *pk, int slot, const char *module, const char *name) {
    if (pk_memo_get(pk, slot)) return;
    put1(&pk->b, OP_GLOBAL);
    put(&pk->b, module, strlen(module));
    put1(&pk->b, '\n');
    put(&pk->b, name, strlen(name));
    put1(&pk->b, '\n');
    pk_memo_put(pk, slot);
}

static void pk_memo_str(pickler *pk, int slot, const char *s) {
    if (pk_memo_get(pk, slot)) return;
    pk_str(pk, s, strlen(s));
    pk_memo_put(pk, slot);
}

/* A tuple of non-negative integers. */
static void pk_int_tuple(pickler *pk, int n, const uint64_t *v) {
    if (n == 0) { put1(&pk->b, OP_EMPTY_TUPLE); return; }
    put1(&pk->b, OP_MARK);
    for (int i = 0; i < n; i++) pk_int(pk, v[i]);
    put1(&pk->b, OP_TUPLE);
}

/* OrderedDict(): the class called with no arguments. */
static void pk_empty_odict(pickler *pk) {
    pk_global(pk, MEMO_ODICT, "collections", "OrderedDict");
    put1(&pk->b, OP_EMPTY_TUPLE);
    put1(&pk->b, OP_REDUCE);
}

/* torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()),
 * storage = persistent_load(('storage', torch.<T>Storage, key, 'cpu', numel)). */
static void pk_tensor(pickler *pk, const mc_st_entry *e, size_t key, uint64_t numel, const uint64_t *stride) {
    pk_global(pk, MEMO_REBUILD, "torch._utils", "_rebuild_tensor_v2");
    put1(&pk->b, OP_MARK);
    put1(&pk->b, OP_MARK);
    pk_memo_str(pk, MEMO_STORAGE, "storage");
    pk_global(pk, MEMO_TYPE0 + (int)e->dtype, "torch", storage_class[e->dtype]);
    char k[24];
    int kl = snprintf(k, sizeof k, "%zu", key);
    pk_str(pk, k, (size_t)kl);
    pk_memo_str(pk, MEMO_CPU, "cpu");
    pk_int(pk, numel);
    put1(&pk->b, OP_TUPLE);
    put1(&pk->b, OP_BINPERSID);
    pk_int(pk, 0);
    uint64_t size[MC_MAX_DIMS];
    for (int d = 0; d < e->ndim; d++) size[d] = (uint64_t)e->shape[d];
    pk_int_tuple(pk, e->ndim, size);
    pk_int_tuple(pk, e->ndim, stride);
    put1(&pk->b, OP_NEWFALSE);
    pk_empty_odict(pk);
    put1(&pk->b, OP_TUPLE);
    put1(&pk->b, OP_REDUCE);
}

/* ------------------------------------------------------------- validation */

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (n - i - 1 < k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

static int name_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One tensor's element count and byte size, and its contiguous strides
 * (torch's: stride[d] = stride[d+1] * max(size[d+1], 1)). */
static mc_status tensor_layout(const char *path, const mc_st_entry *e, size_t i, uint64_t *numel,
                               size_t *nbytes, uint64_t *stride, mc_error *err) {
    *numel = 0;
    *nbytes = 0;
    if ((unsigned)e->dtype >= MC_DTYPE_COUNT)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor '%s' has an unknown dtype %d", path, e->name,
                       (int)e->dtype);
    if (e->ndim < 0 || e->ndim > MC_MAX_DIMS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor '%s' has %d dimensions (0 to %d)", path, e->name,
                       e->ndim, MC_MAX_DIMS);
    size_t cnt = 1;
    uint64_t st = 1;
    for (int d = e->ndim - 1; d >= 0; d--) {
        if (e->shape[d] < 0)
            return mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor '%s' has a negative dimension", path, e->name);
        stride[d] = st;
        uint64_t m = e->shape[d] > 1 ? (uint64_t)e->shape[d] : 1;
        if (!mc_size_mul(cnt, (size_t)e->shape[d], &cnt) || __builtin_mul_overflow(st, m, &st) ||
            st > (uint64_t)INT64_MAX)
            return mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor '%s': its size overflows", path, e->name);
    }
    if (!mc_size_mul(cnt, mc_dtype_size(e->dtype), nbytes) || *nbytes > (size_t)INT64_MAX)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor '%s': its size overflows", path, e->name);
    if (*nbytes && !e->data)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor %zu ('%s') has no data", path, i, e->name);
    *numel = cnt;
    return MC_OK;
}

static mc_status check_entries(const char *path, const mc_st_entry *entries, size_t n, mc_error *err) {
    if (n == 0) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: no tensors to write", path);
    if (n > MC_TORCHSAVE_MAX_TENSORS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: %zu tensors (at most %d)", path, n, MC_TORCHSAVE_MAX_TENSORS);
    const char **names = mc_malloc_array(n, sizeof *names);
    if (!names) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    mc_status st = MC_OK;
    for (size_t i = 0; i < n && st == MC_OK; i++) {
        const char *nm = entries[i].name;
        size_t len = nm ? strnlen(nm, MC_TORCHSAVE_MAX_NAME + 1) : 0;
        if (!nm || !len)
            st = mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor %zu has no name", path, i);
        else if (len > MC_TORCHSAVE_MAX_NAME)
            st = mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor %zu: name of more than %d bytes ('%.40s...')", path,
                         i, MC_TORCHSAVE_MAX_NAME, nm);
        else if (!utf8_ok((const unsigned char *)nm, len))
            st = mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor %zu: name is not UTF-8", path, i);
        names[i] = nm;
    }
    if (st == MC_OK) {
        qsort(names, n, sizeof *names, name_ptr_cmp);
        for (size_t i = 1; i < n && st == MC_OK; i++)
            if (!strcmp(names[i - 1], names[i]))
                st = mc_fail(err, MC_ERR_INVALID_ARG, "%s: tensor '%s' is given twice", path, names[i]);
    }
    free(names);
    return st;
}

static int archive_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 100 || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* -------------------------------------------------------------------- zip */

#define ZIP_ALIGN 64
#define ZIP_PAD_ID 0x4246u          /* the extra-field id torch's writer pads with ("FB") */
#define ZIP_DOS_DATE 0x0021u        /* 1980-01-01: fixed, so the same input gives the same bytes */

typedef struct zip_rec {
    char name[160];
    uint64_t off, size;
    uint32_t crc;
} zip_rec;

typedef struct zipw {
    FILE *f;
    uint64_t off;
    uint64_t lim;             /* values above go to ZIP64 fields */
    int failed;               /* a write failed (errno kept) */
    int err_no;
    int zip64;                /* some record needed ZIP64 */
    zip_rec *recs;
    size_t n;
} zipw;

static void zw_put(zipw *z, const void *d, size_t n) {
    if (z->failed || n == 0) return;
    if (fwrite(d, 1, n, z->f) != n) {
        z->failed = 1;
        z->err_no = errno ? errno : EIO;
        return;
    }
    z->off += n;
}

static uint32_t crc_of(const uint8_t *d, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, d, k);
        d += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* One stored entry: local header (ZIP64 sizes when needed, padding so the data
 * starts on a ZIP_ALIGN boundary), then the data. */
static void zw_entry(zipw *z, zip_rec *r, const void *data, size_t size) {
    r->off = z->off;
    r->size = size;
    r->crc = crc_of(data, size);
    size_t nl = strlen(r->name);
    int big = size > z->lim;
    if (big) z->zip64 = 1;
    uint64_t base = z->off + 30 + nl + (big ? 20 : 0);
    unsigned pad = (unsigned)((ZIP_ALIGN - base % ZIP_ALIGN) % ZIP_ALIGN);
    if (pad && pad < 4) pad += ZIP_ALIGN;
    uint8_t h[30 + 20 + ZIP_ALIGN + 4];
    le(h, 0x04034b50u, 4);
    le(h + 4, big ? 45 : 20, 2);                 /* version needed */
    le(h + 6, 0, 2);                             /* flags */
    le(h + 8, 0, 2);                             /* stored */
    le(h + 10, 0, 2);                            /* time */
    le(h + 12, ZIP_DOS_DATE, 2);
    le(h + 14, r->crc, 4);
    le(h + 18, big ? 0xFFFFFFFFu : size, 4);     /* compressed size */
    le(h + 22, big ? 0xFFFFFFFFu : size, 4);     /* size */
    le(h + 26, nl, 2);
    le(h + 28, (big ? 20 : 0) + pad, 2);
    zw_put(z, h, 30);
    zw_put(z, r->name, nl);
    size_t x = 0;
    if (big) {
        le(h, 0x0001, 2), le(h + 2, 16, 2), le(h + 4, size, 8), le(h + 12, size, 8);
        x = 20;
    }
    if (pad) {
        le(h + x, ZIP_PAD_ID, 2), le(h + x + 2, pad - 4, 2);
        memset(h + x + 4, 'Z', pad - 4);
        x += pad;
    }
    zw_put(z, h, x);
    zw_put(z, data, size);
    z->n++;
}

/* The central directory, then the ZIP64 end records when needed, then the end record. */
static void zw_finish(zipw *z) {
    uint64_t cd_off = z->off;
    uint8_t h[46 + 28];
    for (size_t i = 0; i < z->n; i++) {
        const zip_rec *r = &z->recs[i];
        size_t nl = strlen(r->name);
        int big = r->size > z->lim, far = r->off > z->lim;
        if (big || far) z->zip64 = 1;
        unsigned xl = (big || far) ? 4u + 8u * (2u * (unsigned)big + (unsigned)far) : 0;
        unsigned ver = (big || far) ? 45 : 20;
        le(h, 0x02014b50u, 4);
        le(h + 4, ver, 2);                       /* made by (MS-DOS attributes) */
        le(h + 6, ver, 2);                       /* needed */
        le(h + 8, 0, 2);
        le(h + 10, 0, 2);
        le(h + 12, 0, 2);
        le(h + 14, ZIP_DOS_DATE, 2);
        le(h + 16, r->crc, 4);
        le(h + 20, big ? 0xFFFFFFFFu : r->size, 4);
        le(h + 24, big ? 0xFFFFFFFFu : r->size, 4);
        le(h + 28, nl, 2);
        le(h + 30, xl, 2);
        le(h + 32, 0, 2);                        /* comment */
        le(h + 34, 0, 2);                        /* disk */
        le(h + 36, 0, 2);                        /* internal attributes */
        le(h + 38, 0, 4);                        /* external attributes */
        le(h + 42, far ? 0xFFFFFFFFu : r->off, 4);
        zw_put(z, h, 46);
        zw_put(z, r->name, nl);
        if (xl) {
            size_t k = 4;
            le(h, 0x0001, 2), le(h + 2, xl - 4, 2);
            if (big) le(h + k, r->size, 8), le(h + k + 8, r->size, 8), k += 16;
            if (far) le(h + k, r->off, 8), k += 8;
            zw_put(z, h, k);
        }
    }
    uint64_t cd_size = z->off - cd_off;
    if (z->n >= 0xFFFF || cd_off > z->lim || cd_size > z->lim) z->zip64 = 1;
    if (z->zip64) {
        uint64_t z64 = z->off;
        uint8_t r[56 + 20];
        le(r, 0x06064b50u, 4);
        le(r + 4, 44, 8);                        /* size of the rest of the record */
        le(r + 12, 45, 2);
        le(r + 14, 45, 2);
        le(r + 16, 0, 4);                        /* this disk */
        le(r + 20, 0, 4);                        /* disk of the directory */
        le(r + 24, z->n, 8);
        le(r + 32, z->n, 8);
        le(r + 40, cd_size, 8);
        le(r + 48, cd_off, 8);
        le(r + 56, 0x07064b50u, 4);              /* locator */
        le(r + 60, 0, 4);
        le(r + 64, z64, 8);
        le(r + 72, 1, 4);                        /* disks */
        zw_put(z, r, sizeof r);
    }
    uint8_t e[22];
    le(e, 0x06054b50u, 4);
    le(e + 4, 0, 2);
    le(e + 6, 0, 2);
    le(e + 8, z->zip64 ? 0xFFFFu : z->n, 2);
    le(e + 10, z->zip64 ? 0xFFFFu : z->n, 2);
    le(e + 12, z->zip64 ? 0xFFFFFFFFu : cd_size, 4);
    le(e + 16, z->zip64 ? 0xFFFFFFFFu : cd_off, 4);
    le(e + 20, 0, 2);
    zw_put(z, e, sizeof e);
}

/* ------------------------------------------------------------------ write */

/* A new temporary file beside path (O_EXCL, mode 0666 less the umask). */
static int open_temp(const char *path, char *tmp, size_t cap) {
    for (int attempt = 0; attempt < 100; attempt++) {
        if (mc_temp_name(path, tmp, cap) != 0) { errno = ENAMETOOLONG; return -1; }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

/* fsync of the folder holding path, so that the rename is durable. */
static int fsync_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && (errno == EINVAL || errno == ENOTSUP)) rc = 0; /* folders some filesystems cannot sync */
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Writes the archive of entries[0..n) to the open stream f (name labels
 * messages); z_failed/e_out report a write error of the stream. */
static mc_status write_archive(FILE *f, const char *name, const mc_st_entry *entries, size_t n,
                               const mc_torchsave_params *params, int *write_ok, int *e_out, mc_error *err) {
    const char *top = params && params->archive_name ? params->archive_name : "archive";
    *write_ok = 0;
    *e_out = 0;
    /* the pickle, and each tensor's byte size */
    size_t *nbytes = mc_malloc_array(n, sizeof *nbytes);
    zip_rec *recs = mc_calloc_array(n + 3, sizeof *recs);
    pickler pk;
    memset(&pk, 0, sizeof pk);
    mc_status st = MC_OK;
    if (!nbytes || !recs) { st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", name); goto out; }
    put1(&pk.b, OP_PROTO);
    put1(&pk.b, 2);
    pk_empty_odict(&pk);
    for (size_t i = 0; i < n; i++) {
        uint64_t numel, stride[MC_MAX_DIMS];
        if ((st = tensor_layout(name, &entries[i], i, &numel, &nbytes[i], stride, err)) != MC_OK) goto out;
        if (i % 1000 == 0) put1(&pk.b, OP_MARK);
        pk_str(&pk, entries[i].name, strlen(entries[i].name));
        pk_tensor(&pk, &entries[i], i, numel, stride);
        if (i % 1000 == 999 || i == n - 1) put1(&pk.b, OP_SETITEMS);
    }
    put1(&pk.b, OP_STOP);
    if (pk.b.oom) { st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", name); goto out; }

    zipw z = {.f = f, .lim = params && params->zip64_above ? params->zip64_above : 0xFFFFFFFEu, .recs = recs};
    static const char byteorder[] = "little", version[] = "3\n";
    snprintf(recs[0].name, sizeof recs[0].name, "%s/data.pkl", top);
    zw_entry(&z, &recs[0], pk.b.p, pk.b.n);
    snprintf(recs[1].name, sizeof recs[1].name, "%s/byteorder", top);
    zw_entry(&z, &recs[1], byteorder, sizeof byteorder - 1);
    for (size_t i = 0; i < n && !z.failed; i++) {
        snprintf(recs[2 + i].name, sizeof recs[2 + i].name, "%s/data/%zu", top, i);
        zw_entry(&z, &recs[2 + i], entries[i].data, nbytes[i]);
    }
    snprintf(recs[n + 2].name, sizeof recs[n + 2].name, "%s/version", top);
    zw_entry(&z, &recs[n + 2], version, sizeof version - 1);
    zw_finish(&z);
    *write_ok = !z.failed;
    *e_out = z.err_no;
out:
    free(pk.b.p);
    free(recs);
    free(nbytes);
    return st;
}

/* The checks both writers make before writing anything. */
static mc_status check_request(const char *name, const mc_st_entry *entries, size_t n,
                               const mc_torchsave_params *params, mc_error *err) {
    if (!entries && n) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: no tensors given", name);
    const char *top = params && params->archive_name ? params->archive_name : "archive";
    if (!archive_name_ok(top))
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: archive folder name '%.40s' is not a plain name", name, top);
    return check_entries(name, entries, n, err);
}

mc_status mc_torchsave_write(const char *path, const mc_st_entry *entries, size_t n,
                             const mc_torchsave_params *params, mc_error *err) {
    if (!path || !*path) return mc_fail(err, MC_ERR_INVALID_ARG, "torch.save writer: no output path");
    mc_status st = check_request(path, entries, n, params, err);
    if (st != MC_OK) return st;
    /* the archive, into a temporary file */
    char tmp[4200];
    int fd = open_temp(path, tmp, sizeof tmp);
    if (fd < 0) return mc_fail(err, MC_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        st = mc_fail(err, MC_ERR_IO, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return st;
    }
    int ok = 0, e = 0;
    st = write_archive(f, path, entries, n, params, &ok, &e, err);
    if (st != MC_OK) {
        fclose(f);
        unlink(tmp);
        return st;
    }
    if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) ok = 0, e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        return mc_fail(err, MC_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    if (fsync_parent(path) != 0)
        return mc_fail(err, MC_ERR_IO, "%s: written, but syncing its folder failed: %s", path, strerror(errno));
    return MC_OK;
}

mc_status mc_torchsave_write_memory(const mc_st_entry *entries, size_t n, const mc_torchsave_params *params,
                                    uint8_t **out, size_t *out_len, mc_error *err) {
    if (!out || !out_len) return mc_fail(err, MC_ERR_INVALID_ARG, "torch.save writer: no output buffer");
    *out = NULL;
    *out_len = 0;
    mc_status st = check_request("<memory>", entries, n, params, err);
    if (st != MC_OK) return st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return mc_fail(err, MC_ERR_NOMEM, "torch.save writer: out of memory");
    int ok = 0, e = 0;
    st = write_archive(f, "<memory>", entries, n, params, &ok, &e, err);
    if (fclose(f) != 0) ok = 0;
    if (st == MC_OK && !ok) st = mc_fail(err, MC_ERR_NOMEM, "torch.save writer: out of memory");
    if (st != MC_OK) {
        free(buf);
        return st;
    }
    *out = (uint8_t *)buf;
    *out_len = len;
    return MC_OK;
}
