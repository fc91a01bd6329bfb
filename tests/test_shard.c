/*
 * test_shard.c - DataCompDR shard readers: both fixture shards (npz float32
 * and pth.gz bf16) against the expected embeddings; brace expansion as the
 * braceexpand package does it; webdataset's key/extension split; and hostile
 * inputs built here in memory (tar, npz, gzip, records), each of which must
 * be an error, never a crash or a leak.
 */
#include "test.h"

#include "data/shard.h"

#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- bytes */
typedef struct { uint8_t *d; size_t n, cap; } buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d = realloc(b->d, b->cap);
    }
    if (n) memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void put1(buf *b, int c) { uint8_t x = (uint8_t)c; put(b, &x, 1); }
static void put16(buf *b, unsigned v) { put1(b, v & 255); put1(b, (v >> 8) & 255); }
static void put32(buf *b, uint32_t v) { put16(b, v & 0xFFFF); put16(b, v >> 16); }
static void putz(buf *b, size_t n) { for (size_t i = 0; i < n; i++) put1(b, 0); }
static void bfree(buf *b) { free(b->d); b->d = NULL; b->n = b->cap = 0; }

/* ---------------------------------------------------------------- tar */
/* A ustar header; size_field: NULL to write size in octal. */
static void tar_hdr_ex(buf *b, const char *name, uint64_t size, char type, const char *prefix,
                       const uint8_t *size_field, int corrupt_sum) {
    uint8_t h[512];
    memset(h, 0, sizeof h);
    memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
    memcpy(h + 100, "0000644", 7);
    memcpy(h + 108, "0000000", 7);
    memcpy(h + 116, "0000000", 7);
    if (size_field) memcpy(h + 124, size_field, 12);
    else snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    memcpy(h + 136, "00000000000", 11);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    if (prefix) memcpy(h + 345, prefix, strlen(prefix));
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    if (corrupt_sum) sum += 1;
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    put(b, h, 512);
}
static void tar_hdr(buf *b, const char *name, uint64_t size, char type) {
    tar_hdr_ex(b, name, size, type, NULL, NULL, 0);
}
static void tar_data(buf *b, const void *d, size_t n) {
    put(b, d, n);
    putz(b, (512 - n % 512) % 512);
}
static void tar_file(buf *b, const char *name, const void *d, size_t n) {
    tar_hdr(b, name, n, '0');
    tar_data(b, d, n);
}
static void tar_str(buf *b, const char *name, const char *s) { tar_file(b, name, s, strlen(s)); }
static void tar_end(buf *b) { putz(b, 1024); }
static void tar_pax(buf *b, char type, const char *records) {
    tar_hdr(b, "PaxHeader", strlen(records), type);
    tar_data(b, records, strlen(records));
}
/* One pax record "LEN key=value\n" with the right LEN. */
static void pax_rec(char *out, size_t cap, const char *key, const char *val) {
    size_t body = 1 + strlen(key) + 1 + strlen(val) + 1, len = body + 1;
    while (snprintf(NULL, 0, "%zu", len) + body != len) len++;
    snprintf(out, cap, "%zu %s=%s\n", len, key, val);
}

/* Reads every member of an in-memory tar: count of members returned, of
 * refusals; the status of the first fatal error (MC_OK if none). */
typedef struct { int members, refused; mc_status fatal; char names[8][400]; size_t sizes[8]; } tar_result;
static tar_result read_tar(const buf *b, const mc_tar_params *p) {
    tar_result r;
    memset(&r, 0, sizeof r);
    mc_tar *t;
    mc_error err;
    if (mc_tar_open_memory(b->d, b->n, "t.tar", p, &t, &err) != MC_OK) { r.fatal = err.status; return r; }
    for (int guard = 0; guard < 1000; guard++) {
        mc_tar_member m;
        int eof;
        mc_status st = mc_tar_next(t, &m, &eof, &err);
        if (st != MC_OK) {
            if (mc_tar_failed(t)) { r.fatal = st; break; }
            r.refused++;
            continue;
        }
        if (eof) break;
        if (r.members < 8) {
            snprintf(r.names[r.members], sizeof r.names[0], "%s", m.name);
            r.sizes[r.members] = m.size;
        }
        r.members++;
    }
    mc_tar_close(t);
    return r;
}

static void test_tar(void) {
    buf b = {0};
    char big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (char)('a' + i % 26);
    /* a valid archive: dir, file, symlink, file */
    tar_hdr(&b, "d/", 0, '5');
    tar_file(&b, "d/one.txt", big, 1000);
    tar_hdr(&b, "d/link", 0, '2');
    tar_str(&b, "d/two.json", "{}");
    tar_end(&b);
    tar_result r = read_tar(&b, NULL);
    CHECK(r.fatal == MC_OK && r.members == 2 && r.refused == 0, "valid tar: %d members, fatal %d", r.members, r.fatal);
    CHECK(!strcmp(r.names[0], "d/one.txt") && r.sizes[0] == 1000 && !strcmp(r.names[1], "d/two.json"),
          "valid tar names");
    /* every truncation: never a crash; inside a header or data: an error */
    int trunc_errors = 0, trunc_total = 0;
    for (size_t cut = 1; cut < b.n; cut += 37) {
        buf c = {0};
        put(&c, b.d, cut);
        tar_result t = read_tar(&c, NULL);
        trunc_total++;
        if (t.fatal != MC_OK) trunc_errors++;
        if (cut % 512 != 0 && cut < 512 * 5) CHECK(t.fatal != MC_OK, "truncated at %zu: no error", cut);
        bfree(&c);
    }
    CHECK(trunc_errors > 0, "truncations gave %d errors of %d", trunc_errors, trunc_total);
    {   /* cut inside the data of the first file: an error */
        buf c = {0};
        put(&c, b.d, 512 + 512 + 700);
        CHECK(read_tar(&c, NULL).fatal == MC_ERR_FORMAT, "truncated data not an error");
        bfree(&c);
    }
    bfree(&b);

    /* size past the end */
    tar_hdr(&b, "a.txt", 1 << 20, '0');
    tar_data(&b, "hello", 5);
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "size past end not an error");
    bfree(&b);

    /* bad checksum */
    tar_hdr_ex(&b, "a.txt", 5, '0', NULL, NULL, 1);
    tar_data(&b, "hello", 5);
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "bad checksum not an error");
    bfree(&b);

    /* random garbage header */
    for (int i = 0; i < 512; i++) put1(&b, (i * 7919 + 13) & 255);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "garbage not an error");
    bfree(&b);

    /* bad names: refused, the reader carries on */
    const char *bad_names[] = {"../x.jpg", "/abs.jpg", "a/../b.jpg", "a/..", ".."};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        tar_str(&b, bad_names[i], "x");
        tar_str(&b, "ok.txt", "y");
        tar_end(&b);
        r = read_tar(&b, NULL);
        CHECK(r.fatal == MC_OK && r.refused == 1 && r.members == 1 && !strcmp(r.names[0], "ok.txt"),
              "bad name '%s': refused %d members %d", bad_names[i], r.refused, r.members);
        bfree(&b);
    }
    tar_str(&b, "a..b.txt", "x");   /* dots inside a component are fine */
    tar_str(&b, "x/..y/z.txt", "x");
    tar_end(&b);
    r = read_tar(&b, NULL);
    CHECK(r.members == 2 && r.refused == 0, "benign dotted names refused");
    bfree(&b);
    CHECK(mc_tar_name_ok("a/b.jpg", 7) && !mc_tar_name_ok("a\0b", 3) && !mc_tar_name_ok("", 0),
          "mc_tar_name_ok");

    /* ustar prefix */
    tar_hdr_ex(&b, "file.txt", 2, '0', "some/dir", NULL, 0);
    tar_data(&b, "hi", 2);
    tar_end(&b);
    r = read_tar(&b, NULL);
    CHECK(r.members == 1 && !strcmp(r.names[0], "some/dir/file.txt"), "ustar prefix: '%s'", r.names[0]);
    bfree(&b);

    /* GNU long name */
    char longname[300];
    memset(longname, 'n', sizeof longname);
    memcpy(longname, "deep/", 5);
    strcpy(longname + 290, "/k.txt");
    tar_hdr(&b, "././@LongLink", strlen(longname) + 1, 'L');
    tar_data(&b, longname, strlen(longname) + 1);
    tar_str(&b, "truncated-name", "abc");
    tar_end(&b);
    r = read_tar(&b, NULL);
    CHECK(r.members == 1 && !strcmp(r.names[0], longname) && r.sizes[0] == 3, "GNU long name");
    bfree(&b);
    /* hostile GNU long names: '..', oversized, at the end without a member */
    tar_hdr(&b, "././@LongLink", 12, 'L');
    tar_data(&b, "../evil.txt", 12);
    tar_str(&b, "x", "abc");
    tar_str(&b, "ok.txt", "y");
    tar_end(&b);
    r = read_tar(&b, NULL);
    CHECK(r.refused == 1 && r.members == 1, "GNU long name with '..' not refused");
    bfree(&b);
    tar_hdr(&b, "././@LongLink", 5u << 20, 'L');
    putz(&b, 5u << 20);
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "oversized GNU long name not an error");
    bfree(&b);
    tar_hdr(&b, "././@LongLink", 6, 'L');
    tar_data(&b, "a.txt", 6);
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "dangling GNU long name not an error");
    bfree(&b);

    /* pax: path and size, global headers ignored */
    char rec[700], rec2[100], recs[900];
    pax_rec(rec, sizeof rec, "path", longname);
    pax_rec(rec2, sizeof rec2, "mtime", "1.5");
    snprintf(recs, sizeof recs, "%s%s", rec2, rec);
    tar_pax(&b, 'g', "20 comment=whatever\n");
    tar_pax(&b, 'x', recs);
    tar_str(&b, "short", "abcd");
    pax_rec(rec, sizeof rec, "size", "3");
    tar_pax(&b, 'x', rec);
    tar_hdr(&b, "sized.txt", 0, '0');   /* the ustar size says 0, pax says 3 */
    tar_data(&b, "xyz", 3);
    tar_end(&b);
    r = read_tar(&b, NULL);
    CHECK(r.fatal == MC_OK && r.members == 2 && !strcmp(r.names[0], longname) && r.sizes[0] == 4 &&
          !strcmp(r.names[1], "sized.txt") && r.sizes[1] == 3, "pax path/size: %d members fatal %d",
          r.members, r.fatal);
    bfree(&b);
    /* hostile pax */
    const char *bad_pax[] = {"99 path=a.txt\n", "5 path=a.txt\n", "x path=a\n", "13 patha.txt\n",
                             "14 path=a.txt!", "12 size=-5\n", "16 size=1e9999\n", "8 =abc\n"};
    for (size_t i = 0; i < sizeof bad_pax / sizeof bad_pax[0]; i++) {
        tar_pax(&b, 'x', bad_pax[i]);
        tar_str(&b, "a.txt", "x");
        tar_end(&b);
        CHECK(read_tar(&b, NULL).fatal != MC_OK, "bad pax record %zu accepted", i);
        bfree(&b);
    }
    pax_rec(rec, sizeof rec, "path", "/etc/passwd");
    tar_pax(&b, 'x', rec);
    tar_str(&b, "a.txt", "x");
    tar_end(&b);
    r = read_tar(&b, NULL);
    CHECK(r.refused == 1 && r.members == 0, "pax absolute path not refused");
    bfree(&b);
    pax_rec(rec, sizeof rec, "size", "99999999");
    tar_pax(&b, 'x', rec);
    tar_str(&b, "a.txt", "x");
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "pax size past the end not an error");
    bfree(&b);

    /* numbers: base-256 size, negative, garbage octal */
    uint8_t f256[12] = {0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
    tar_hdr_ex(&b, "b.txt", 0, '0', NULL, f256, 0);
    tar_data(&b, "hello", 5);
    tar_end(&b);
    r = read_tar(&b, NULL);
    CHECK(r.members == 1 && r.sizes[0] == 5, "base-256 size");
    bfree(&b);
    uint8_t fneg[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb};
    tar_hdr_ex(&b, "b.txt", 0, '0', NULL, fneg, 0);
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "negative size accepted");
    bfree(&b);
    uint8_t fhuge[12] = {0x80, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    tar_hdr_ex(&b, "b.txt", 0, '0', NULL, fhuge, 0);
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "huge base-256 size accepted");
    bfree(&b);
    uint8_t fbad[12] = "0000001a000";
    tar_hdr_ex(&b, "b.txt", 0, '0', NULL, fbad, 0);
    tar_end(&b);
    CHECK(read_tar(&b, NULL).fatal == MC_ERR_FORMAT, "non-octal size accepted");
    bfree(&b);

    /* member larger than the limit: refused, the next one read */
    tar_file(&b, "big.bin", big, 1000);
    tar_str(&b, "small.txt", "s");
    tar_end(&b);
    mc_tar_params tp = mc_tar_default_params();
    tp.max_member_size = 100;
    r = read_tar(&b, &tp);
    CHECK(r.refused == 1 && r.members == 1 && !strcmp(r.names[0], "small.txt"), "size limit");

    /* the same from a file, whole and truncated */
    char path[] = "/tmp/mc_shard_tarXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        CHECK(write(fd, b.d, b.n) == (ssize_t)b.n, "write");
        close(fd);
        mc_tar *t;
        mc_error err;
        CHECK(mc_tar_open_file(path, &tp, &t, &err) == MC_OK, "open file");
        mc_tar_member m;
        int eof, n = 0, refused = 0;
        mc_status st;
        while ((st = mc_tar_next(t, &m, &eof, &err)) != MC_OK || !eof) {
            if (st != MC_OK) { if (mc_tar_failed(t)) break; refused++; continue; }
            n++;
        }
        CHECK(n == 1 && refused == 1 && st == MC_OK, "file tar: %d members %d refused", n, refused);
        mc_tar_close(t);
        CHECK(truncate(path, 512 + 300) == 0, "truncate");
        CHECK(mc_tar_open_file(path, NULL, &t, &err) == MC_OK, "open truncated");
        st = mc_tar_next(t, &m, &eof, &err);
        CHECK(st == MC_ERR_FORMAT && mc_tar_failed(t) && strstr(err.message, path), "truncated file: %d %s",
              st, err.message);
        CHECK(mc_tar_next(t, &m, &eof, &err) == MC_ERR_FORMAT, "error not sticky");
        mc_tar_close(t);
        unlink(path);
        CHECK(mc_tar_open_file("/nonexistent/x.tar", NULL, &t, &err) == MC_ERR_IO, "missing file");
    }
    bfree(&b);
}

/* ---------------------------------------------------------------- brace expansion */
static int expands_to(const char *pat, const char *const *want, size_t n_want, int shards) {
    char **v;
    size_t n;
    mc_error err;
    mc_status st = shards ? mc_shard_expand(pat, 0, &v, &n, &err) : mc_brace_expand(pat, 0, &v, &n, &err);
    if (st != MC_OK) { fprintf(stderr, "  '%s': %s\n", pat, err.message); return 0; }
    int ok = n == n_want;
    for (size_t i = 0; ok && i < n; i++) ok = !strcmp(v[i], want[i]);
    if (!ok) {
        fprintf(stderr, "  '%s' ->", pat);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " [%s]", v[i]);
        fputc('\n', stderr);
    }
    mc_shard_list_free(v, n);
    return ok;
}
#define EXPANDS(pat, ...)                                                                     \
    do {                                                                                      \
        static const char *const w_[] = {__VA_ARGS__};                                        \
        CHECK(expands_to(pat, w_, sizeof w_ / sizeof w_[0], 0), "braceexpand '%s'", pat);     \
    } while (0)

static void test_brace(void) {
    EXPANDS("item{1..3}", "item1", "item2", "item3");
    EXPANDS("{a..c}", "a", "b", "c");
    EXPANDS("index.html{,.backup}", "index.html", "index.html.backup");
    EXPANDS("python{2.{5..7},3.{2,3}}", "python2.5", "python2.6", "python2.7", "python3.2", "python3.3");
    EXPANDS("{07..10}", "07", "08", "09", "10");
    EXPANDS("{a..g..2}", "a", "c", "e", "g");
    EXPANDS("{4..1}", "4", "3", "2", "1");
    EXPANDS("{2..-1}", "2", "1", "0", "-1");
    EXPANDS("{1\\{2,3}", "1{2", "3");
    EXPANDS("{00000000..00000002}.tar", "00000000.tar", "00000001.tar", "00000002.tar");
    EXPANDS("s/{00..01}/{a,b}", "s/00/a", "s/00/b", "s/01/a", "s/01/b");
    EXPANDS("{1..10..4}", "1", "5", "9");
    EXPANDS("{9..1..-4}", "9", "5", "1");
    EXPANDS("{-01..1}", "-01", "000", "001");
    EXPANDS("{0..2}", "0", "1", "2");
    EXPANDS("plain", "plain");
    EXPANDS("{x}", "{x}");
    EXPANDS("{}", "{}");
    EXPANDS("a{b{c,d}}", "a{bc}", "a{bd}");
    EXPANDS("{c..a}", "c", "b", "a");
    EXPANDS("{Y..b}", "Y", "Z", "a", "b");
    EXPANDS("\\\\", "\\");
    EXPANDS("{,}", "", "");
    {
        char **v;
        size_t n;
        mc_error err;
        CHECK(mc_brace_expand("{1{2,3}", 0, &v, &n, &err) == MC_ERR_INVALID_ARG, "unbalanced accepted");
        CHECK(mc_brace_expand("a}", 0, &v, &n, &err) == MC_ERR_INVALID_ARG, "unbalanced '}' accepted");
        CHECK(mc_brace_expand("{a..c..0}", 0, &v, &n, &err) == MC_ERR_INVALID_ARG, "letter step 0 accepted");
        CHECK(mc_brace_expand("{0..99999999999}", 0, &v, &n, &err) == MC_ERR_INVALID_ARG, "huge range accepted");
        CHECK(mc_brace_expand("{0..999}{0..999}{0..999}", 1000000, &v, &n, &err) == MC_ERR_INVALID_ARG,
              "huge product accepted");
        CHECK(mc_brace_expand("{0..99}", 10, &v, &n, &err) == MC_ERR_INVALID_ARG, "max_count ignored");
        char deep[400];
        memset(deep, '{', 200);
        memset(deep + 200, '}', 200);
        deep[399] = 0;
        deep[398] = '}';
        CHECK(mc_brace_expand(deep, 0, &v, &n, &err) != MC_OK || (mc_shard_list_free(v, n), 1), "deep nesting");
        static const char *const w[] = {"a/0.tar", "a/1.tar", "b/x.tar", "b/y.tar"};
        CHECK(expands_to("a/{0..1}.tar::b/{x,y}.tar", w, 4, 1), "'::' lists");
    }
}

/* ---------------------------------------------------------------- names */
static int split_is(const char *name, const char *key, const char *ext) {
    size_t kl;
    const char *e;
    int ok = mc_wds_split_name(name, &kl, &e);
    if (!key) return !ok;
    return ok && kl == strlen(key) && !strncmp(name, key, kl) && !strcmp(e, ext);
}
static void test_split(void) {
    CHECK(split_is("000000001.jpg", "000000001", "jpg"), "split jpg");
    CHECK(split_is("000000001.url.txt", "000000001", "url.txt"), "split url.txt");
    CHECK(split_is("a/b.c.d", "a/b", "c.d"), "split dirs");
    CHECK(split_is("dir.x/file.pth.gz", "dir.x/file", "pth.gz"), "split dotted dir");
    CHECK(split_is("noext", NULL, NULL), "no ext");
    CHECK(split_is(".hidden", NULL, NULL), "hidden");
    CHECK(split_is("d/.hidden", "d/", "hidden"), "hidden in dir (the regex backtracks)");
    CHECK(split_is("a.b/c", NULL, NULL), "dot only in dir");
    CHECK(split_is("x.", "x", ""), "empty ext");
    CHECK(split_is("a\nb/c.jpg", "a\nb/c", "jpg"), "newline in dir");
}

/* ---------------------------------------------------------------- npz / npy builders */
static void npy(buf *b, const char *descr, const char *fortran, const char *shape, const void *data, size_t n) {
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran, shape);
    size_t total = 10 + (size_t)hl + 1, pad = (64 - total % 64) % 64;
    put(b, "\x93NUMPY\x01\x00", 8);
    put16(b, (unsigned)(hl + pad + 1));
    put(b, hdr, (size_t)hl);
    for (size_t i = 0; i < pad; i++) put1(b, ' ');
    put1(b, '\n');
    put(b, data, n);
}
static void npy_raw_header(buf *b, const char *hdr, const void *data, size_t n) {
    put(b, "\x93NUMPY\x01\x00", 8);
    put16(b, (unsigned)strlen(hdr));
    put(b, hdr, strlen(hdr));
    put(b, data, n);
}

typedef struct { const char *name; const uint8_t *data; size_t len; int deflate; int64_t usize_lie; int crc_lie; } zent;

static void deflate_raw(const uint8_t *src, size_t n, buf *out) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)n) + 16;
    uint8_t *o = malloc(cap);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    put(out, o, cap - z.avail_out);
    deflateEnd(&z);
    free(o);
}

static void zip(buf *b, const zent *e, int n) {
    uint32_t offs[16], crcs[16], csz[16];
    for (int i = 0; i < n; i++) {
        buf c = {0};
        if (e[i].deflate) deflate_raw(e[i].data, e[i].len, &c);
        else put(&c, e[i].data, e[i].len);
        crcs[i] = (uint32_t)crc32(0, e[i].data, (uInt)e[i].len) + (uint32_t)e[i].crc_lie;
        csz[i] = (uint32_t)c.n;
        offs[i] = (uint32_t)b->n;
        uint32_t us = e[i].usize_lie ? (uint32_t)e[i].usize_lie : (uint32_t)e[i].len;
        put32(b, 0x04034b50); put16(b, 20); put16(b, 0); put16(b, e[i].deflate ? 8 : 0);
        put16(b, 0); put16(b, 0); put32(b, crcs[i]); put32(b, csz[i]); put32(b, us);
        put16(b, (unsigned)strlen(e[i].name)); put16(b, 0);
        put(b, e[i].name, strlen(e[i].name));
        put(b, c.d, c.n);
        bfree(&c);
    }
    uint32_t cd = (uint32_t)b->n;
    for (int i = 0; i < n; i++) {
        uint32_t us = e[i].usize_lie ? (uint32_t)e[i].usize_lie : (uint32_t)e[i].len;
        int z64 = e[i].usize_lie < 0;
        put32(b, 0x02014b50); put16(b, 20); put16(b, 20); put16(b, 0); put16(b, e[i].deflate ? 8 : 0);
        put16(b, 0); put16(b, 0); put32(b, crcs[i]); put32(b, csz[i]); put32(b, z64 ? 0xFFFFFFFFu : us);
        put16(b, (unsigned)strlen(e[i].name)); put16(b, z64 ? 12 : 0); put16(b, 0); put16(b, 0); put16(b, 0);
        put32(b, 0); put32(b, offs[i]);
        put(b, e[i].name, strlen(e[i].name));
        if (z64) { put16(b, 1); put16(b, 8); put32(b, 0); put32(b, 0x100); }   /* 2^40 bytes */
    }
    uint32_t cdl = (uint32_t)b->n - cd;
    put32(b, 0x06054b50); put16(b, 0); put16(b, 0); put16(b, (unsigned)n); put16(b, (unsigned)n);
    put32(b, cdl); put32(b, cd); put16(b, 0);
}

static mc_status npz_status(const buf *b, mc_array_set *out, mc_error *err) {
    return mc_npz_read_memory(b->d, b->n, "t.npz", 0, out, err);
}

static void test_npz(void) {
    float v[6] = {1, -2, 3.5f, 4, 5, 6};
    buf a = {0}, z = {0};
    mc_array_set set;
    mc_error err;
    /* valid: stored f4, deflated f8 and f2 */
    npy(&a, "<f4", "False", "(2, 3)", v, sizeof v);
    double dv[3] = {0.5, -1.25, 2};
    buf a8 = {0};
    npy(&a8, "<f8", "False", "(3,)", dv, sizeof dv);
    uint16_t hv[2] = {0x3c00, 0xc000};   /* 1, -2 */
    buf a2 = {0};
    npy(&a2, "<f2", "False", "(1, 2)", hv, sizeof hv);
    zent ok[] = {{"image_emb.npy", a.d, a.n, 0, 0, 0}, {"x_emb.npy", a8.d, a8.n, 1, 0, 0},
                 {"h.npy", a2.d, a2.n, 1, 0, 0}, {"readme.txt", (const uint8_t *)"hi", 2, 0, 0, 0}};
    zip(&z, ok, 4);
    mc_status st = npz_status(&z, &set, &err);
    CHECK(st == MC_OK && set.n == 3, "valid npz: %d %s", st, st ? err.message : "");
    if (st == MC_OK) {
        const mc_array *x = mc_array_set_find(&set, "image_emb");
        CHECK(x && x->ndim == 2 && x->shape[0] == 2 && x->shape[1] == 3 && x->stored == MC_DTYPE_F32 &&
              !memcmp(x->data, v, sizeof v), "image_emb values");
        x = mc_array_set_find(&set, "x_emb");
        CHECK(x && x->ndim == 1 && x->stored == MC_DTYPE_F64 && x->data[1] == -1.25f, "f8 converted");
        x = mc_array_set_find(&set, "h");
        CHECK(x && x->stored == MC_DTYPE_F16 && x->data[0] == 1.0f && x->data[1] == -2.0f, "f2 converted");
        mc_array_set_free(&set);
    }
    /* every truncation of the valid npz is an error */
    int bad = 0;
    for (size_t cut = 0; cut < z.n; cut += 7) {
        buf c = {0};
        put(&c, z.d, cut);
        if (npz_status(&c, &set, &err) != MC_OK) bad++;
        else mc_array_set_free(&set);
        bfree(&c);
    }
    CHECK(bad == (int)((z.n + 6) / 7), "truncated npz accepted (%d of %zu errors)", bad, (z.n + 6) / 7);
    bfree(&z);

    /* zip bomb: declares 100 bytes, inflates to 16 MiB */
    size_t bomb_n = 16u << 20;
    uint8_t *zeros = calloc(1, bomb_n);
    memcpy(zeros, a.d, a.n);
    zent bomb[] = {{"image_emb.npy", zeros, bomb_n, 1, 100, 0}};
    zip(&z, bomb, 1);
    st = npz_status(&z, &set, &err);
    CHECK(st == MC_ERR_FORMAT && strstr(err.message, "declared size"), "zip bomb: %d %s", st, err.message);
    bfree(&z);
    /* declares more than it inflates to */
    zent shortm[] = {{"image_emb.npy", a.d, a.n, 1, (int64_t)a.n + 10, 0}};
    zip(&z, shortm, 1);
    CHECK(npz_status(&z, &set, &err) == MC_ERR_FORMAT, "short inflate accepted");
    bfree(&z);
    /* huge declared sizes: 4 GiB - 16 and zip64 2^40 */
    zent huge[] = {{"image_emb.npy", zeros, 1000, 1, 0xFFFFFFF0LL, 0}};
    zip(&z, huge, 1);
    st = npz_status(&z, &set, &err);
    CHECK(st == MC_ERR_NOMEM, "huge declared size: %d %s", st, err.message);
    bfree(&z);
    zent huge64[] = {{"image_emb.npy", zeros, 1000, 1, -1, 0}};
    zip(&z, huge64, 1);
    st = npz_status(&z, &set, &err);
    CHECK(st == MC_ERR_NOMEM, "zip64 huge declared size: %d %s", st, err.message);
    bfree(&z);
    free(zeros);
    /* CRC mismatch, stored and deflated */
    for (int dfl = 0; dfl < 2; dfl++) {
        zent crc[] = {{"image_emb.npy", a.d, a.n, dfl, 0, 1}};
        zip(&z, crc, 1);
        st = npz_status(&z, &set, &err);
        CHECK(st == MC_ERR_FORMAT && strstr(err.message, "CRC"), "CRC mismatch (%d): %d", dfl, st);
        bfree(&z);
    }
    /* corrupt deflate data */
    {
        zent e1[] = {{"image_emb.npy", a.d, a.n, 1, 0, 0}};
        zip(&z, e1, 1);
        for (size_t i = 43; i < 60 && i < z.n; i++) z.d[i] ^= 0x5a;
        st = npz_status(&z, &set, &err);
        CHECK(st != MC_OK, "corrupt deflate accepted");
        if (st == MC_OK) mc_array_set_free(&set);
        bfree(&z);
    }
    /* duplicate members */
    zent dup[] = {{"a.npy", a.d, a.n, 0, 0, 0}, {"a.npy", a.d, a.n, 0, 0, 0}};
    zip(&z, dup, 2);
    CHECK(npz_status(&z, &set, &err) == MC_ERR_FORMAT, "duplicate npz member accepted");
    bfree(&z);
    /* bad .npy contents */
    struct { const char *descr, *fortran, *shape; size_t bytes; mc_status want; } cases[] = {
        {"<i4", "False", "(2, 3)", 24, MC_ERR_UNSUPPORTED},
        {">f4", "False", "(2, 3)", 24, MC_ERR_UNSUPPORTED},
        {"<f4", "True", "(2, 3)", 24, MC_ERR_UNSUPPORTED},
        {"<f4", "False", "(2, 4)", 24, MC_ERR_FORMAT},
        {"<f4", "False", "(2, 3)", 20, MC_ERR_FORMAT},
        {"<f4", "False", "(99999999999, 99999999999)", 24, MC_ERR_FORMAT},
        {"<f4", "False", "(2 3)", 24, MC_ERR_FORMAT},
        {"<f4", "False", "[2, 3]", 24, MC_ERR_FORMAT},
        {"<f4", "Maybe", "(2, 3)", 24, MC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf n = {0};
        float pad[8] = {0};
        npy(&n, cases[i].descr, cases[i].fortran, cases[i].shape, pad, cases[i].bytes);
        mc_array arr;
        st = mc_npy_parse_memory(n.d, n.n, "t.npy", &arr, &err);
        CHECK(st == cases[i].want, "npy case %zu: %d (%s)", i, st, err.message);
        if (st == MC_OK) free(arr.data);
        zent e1[] = {{"image_emb.npy", n.d, n.n, 1, 0, 0}};
        zip(&z, e1, 1);
        CHECK(npz_status(&z, &set, &err) == cases[i].want, "npz case %zu", i);
        bfree(&z);
        bfree(&n);
    }
    const char *bad_headers[] = {
        "{'descr': '<f4', 'shape': (2,), }\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}\n",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk\n",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}\n",
        "", "{", "garbage"};
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        buf n = {0};
        float two[2] = {1, 2};
        npy_raw_header(&n, bad_headers[i], two, sizeof two);
        mc_array arr;
        st = mc_npy_parse_memory(n.d, n.n, "t.npy", &arr, &err);
        CHECK(st == MC_ERR_FORMAT, "bad npy header %zu: %d", i, st);
        if (st == MC_OK) free(arr.data);
        bfree(&n);
    }
    {   /* version 2 header, and a wrong magic */
        buf n = {0};
        const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
        float two[2] = {1, 2};
        put(&n, "\x93NUMPY\x02\x00", 8);
        put32(&n, (uint32_t)strlen(h));
        put(&n, h, strlen(h));
        put(&n, two, sizeof two);
        mc_array arr;
        st = mc_npy_parse_memory(n.d, n.n, "t.npy", &arr, &err);
        CHECK(st == MC_OK && arr.shape[0] == 2 && arr.data[1] == 2.0f, "npy v2: %d", st);
        if (st == MC_OK) free(arr.data);
        n.d[1] = 'X';
        CHECK(mc_npy_parse_memory(n.d, n.n, "t.npy", &arr, &err) == MC_ERR_FORMAT, "bad magic");
        n.d[1] = 'N';
        n.d[8] = 0xff; n.d[9] = 0xff; n.d[10] = 0xff; n.d[11] = 0x7f;
        CHECK(mc_npy_parse_memory(n.d, n.n, "t.npy", &arr, &err) == MC_ERR_FORMAT, "huge header length");
        bfree(&n);
    }
    bfree(&a);
    bfree(&a8);
    bfree(&a2);
}

/* ---------------------------------------------------------------- gzip */
static void gzip_buf(const void *src, size_t n, buf *out) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    uint8_t *o = malloc(cap);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    put(out, o, cap - z.avail_out);
    deflateEnd(&z);
    free(o);
}

static void test_gzip(void) {
    mc_error err;
    uint8_t *out;
    size_t ol;
    buf g = {0};
    const char *msg = "hello, gzip world";
    gzip_buf(msg, strlen(msg), &g);
    CHECK(mc_gunzip_memory(g.d, g.n, "t.gz", 0, &out, &ol, &err) == MC_OK && ol == strlen(msg) &&
          !memcmp(out, msg, ol), "gunzip");
    free(out);
    /* concatenated members and zero padding */
    buf g2 = {0};
    put(&g2, g.d, g.n);
    put(&g2, g.d, g.n);
    putz(&g2, 10);
    CHECK(mc_gunzip_memory(g2.d, g2.n, "t.gz", 0, &out, &ol, &err) == MC_OK && ol == 2 * strlen(msg),
          "concatenated gzip");
    free(out);
    put(&g2, "junk", 4);
    CHECK(mc_gunzip_memory(g2.d, g2.n, "t.gz", 0, &out, &ol, &err) == MC_ERR_FORMAT, "trailing junk accepted");
    bfree(&g2);
    /* every truncation fails */
    int bad = 0, total = 0;
    for (size_t cut = 0; cut < g.n; cut++, total++) {
        if (mc_gunzip_memory(g.d, cut, "t.gz", 0, &out, &ol, &err) != MC_OK) bad++;
        else free(out);
    }
    CHECK(bad == total, "truncated gzip accepted (%d of %d)", bad, total);
    /* garbage */
    uint8_t garbage[200];
    for (int i = 0; i < 200; i++) garbage[i] = (uint8_t)(i * 37 + 11);
    garbage[0] = 0x1f; garbage[1] = 0x8b;
    CHECK(mc_gunzip_memory(garbage, sizeof garbage, "t.gz", 0, &out, &ol, &err) == MC_ERR_FORMAT, "garbage gzip");
    CHECK(mc_gunzip_memory(garbage + 2, 100, "t.gz", 0, &out, &ol, &err) == MC_ERR_FORMAT, "no magic");
    /* corrupt CRC */
    g.d[g.n - 6] ^= 1;
    CHECK(mc_gunzip_memory(g.d, g.n, "t.gz", 0, &out, &ol, &err) == MC_ERR_FORMAT, "gzip CRC");
    bfree(&g);
    /* bomb: 64 MiB of zeros, bounded at 1 MiB */
    size_t bn = 64u << 20;
    uint8_t *zeros = calloc(1, bn);
    gzip_buf(zeros, bn, &g);
    free(zeros);
    CHECK(mc_gunzip_memory(g.d, g.n, "t.gz", 1u << 20, &out, &ol, &err) == MC_ERR_NOMEM, "gzip bomb");
    /* a valid gzip of something that is not a torch.save zip */
    mc_array_set set;
    CHECK(mc_pthgz_read_memory(g.d, g.n, "t.pth.gz", 1u << 20, &set, &err) != MC_OK, "pth.gz bomb");
    bfree(&g);
    gzip_buf(garbage, sizeof garbage, &g);
    CHECK(mc_pthgz_read_memory(g.d, g.n, "t.pth.gz", 0, &set, &err) != MC_OK, "pth.gz of garbage");
    bfree(&g);
}

/* ---------------------------------------------------------------- fixtures */
static mc_checkpoint *expected;

static int close_bf16(const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float tol = fabsf(want[i]) * (1.0f / 256.0f) + 1e-30f;
        if (!(fabsf(got[i] - want[i]) <= tol)) return 0;
    }
    return 1;
}

static void check_shard(const char *rel, int bf16) {
    const char *path = fixture(rel);
    mc_shard_params p = mc_shard_default_params();
    p.strict = 1;
    mc_shard_reader *r;
    mc_error err;
    mc_status st = mc_shard_open(path, &p, &r, &err);
    CHECK(st == MC_OK, "%s: %s", rel, st ? err.message : "");
    if (st != MC_OK) return;
    int n = 0;
    mc_dr_record *rec;
    while ((st = mc_shard_next(r, &rec, &err)) == MC_OK && rec) {
        char want_key[16];
        snprintf(want_key, sizeof want_key, "%09d", n);
        CHECK(!strcmp(rec->key, want_key), "%s: key %s", rel, rec->key);
        CHECK(rec->image && rec->image_size > 1000 && !strcmp(rec->image_ext, "jpg") && rec->image[0] == 0xff &&
              rec->image[1] == 0xd8, "%s: image", rel);
        CHECK(rec->caption && rec->caption_len > 0 && strlen(rec->caption) == rec->caption_len, "%s: caption", rel);
        CHECK(rec->url && !strncmp(rec->url, "http", 4), "%s: url", rel);
        CHECK(rec->meta && rec->meta->type == MC_JSON_OBJECT, "%s: json", rel);
        CHECK(rec->n_syn == 1 && !strcmp(rec->syn[0].key, "syn_text") && rec->syn[0].n == 5 &&
              strlen(rec->syn[0].captions[4]) > 0, "%s: syn", rel);
        CHECK(rec->n_aug == 30 && rec->paug_was_string, "%s: %zu augmentations", rel, rec->n_aug);
        const mc_json *a0 = &rec->aug[0];
        CHECK(a0->type == MC_JSON_ARRAY && a0->len == 2 && a0->items[0].type == MC_JSON_ARRAY &&
              a0->items[0].len == 4 && a0->items[1].len == 2, "%s: aug[0] shape", rel);
        CHECK(!strcmp(rec->emb_ext, bf16 ? "pth.gz" : "npz") && rec->layout == MC_DR_LAYOUT_DATACOMPDR &&
              rec->dim == 40, "%s: layout", rel);
        CHECK(rec->image_emb->rows == 30 && rec->image_emb->dim == 40 && rec->text_emb->rows == 6 &&
              rec->text_emb->dim == 40, "%s: shapes", rel);
        CHECK(rec->image_emb->stored == (bf16 ? MC_DTYPE_BF16 : MC_DTYPE_F32), "%s: dtype", rel);
        char name[64];
        snprintf(name, sizeof name, "%s/image_emb", rec->key);
        const mc_tensor_info *ie = expected ? mc_checkpoint_find(expected, name) : NULL;
        snprintf(name, sizeof name, "%s/text_emb", rec->key);
        const mc_tensor_info *te = expected ? mc_checkpoint_find(expected, name) : NULL;
        CHECK(ie && te && ie->numel == 1200 && te->numel == 240, "%s: expected tensors for %s", rel, rec->key);
        if (ie && te && ie->numel == 1200 && te->numel == 240) {
            const float *wi = ie->data, *wt = te->data;
            if (bf16) {
                CHECK(close_bf16(rec->image_emb->data, wi, 1200), "%s %s: image_emb", rel, rec->key);
                CHECK(close_bf16(rec->text_emb->data, wt, 240), "%s %s: text_emb", rel, rec->key);
            } else {
                CHECK(!memcmp(rec->image_emb->data, wi, 1200 * 4), "%s %s: image_emb", rel, rec->key);
                CHECK(!memcmp(rec->text_emb->data, wt, 240 * 4), "%s %s: text_emb", rel, rec->key);
            }
            const float *s2 = mc_dr_syn_embedding(rec, "syn_text", 2, &err);
            CHECK(s2 == rec->text_emb->data + 3 * 40, "%s: syn embedding row", rel);
            CHECK(mc_dr_syn_embedding(rec, NULL, 4, &err) == rec->text_emb->data + 5 * 40, "%s: syn row 4", rel);
            CHECK(!mc_dr_syn_embedding(rec, "syn_text", 5, &err) && err.status == MC_ERR_INVALID_ARG,
                  "%s: syn out of range", rel);
            CHECK(!mc_dr_syn_embedding(rec, "nope", 0, &err) && err.status == MC_ERR_NOT_FOUND, "%s: syn key", rel);
        }
        mc_dr_record_free(rec);
        n++;
    }
    CHECK(st == MC_OK && n == 3, "%s: %d records (%s)", rel, n, st ? err.message : "");
    const mc_shard_stats *s = mc_shard_reader_stats(r);
    CHECK(s->samples == 3 && s->skipped == 0 && s->members == 21 && s->members_ignored == 0, "%s: stats", rel);
    mc_shard_close(r);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void time_shards(void) {
    const char *rels[2] = {"datacompdr/shards/00000000.tar", "datacompdr/shards/00000000_bf16.tar"};
    for (int k = 0; k < 2; k++) {
        int reps = 20, n = 0;
        double t0 = now_s();
        for (int i = 0; i < reps; i++) {
            mc_shard_reader *r;
            mc_error err;
            if (mc_shard_open(fixture(rels[k]), NULL, &r, &err) != MC_OK) break;
            mc_dr_record *rec;
            while (mc_shard_next(r, &rec, &err) == MC_OK && rec) { n++; mc_dr_record_free(rec); }
            mc_shard_close(r);
        }
        double dt = now_s() - t0;
        printf("timing: %s: %d records in %.1f ms, %.3f ms per sample\n", rels[k], n, dt * 1e3,
               n ? dt * 1e3 / n : 0.0);
    }
}

/* ---------------------------------------------------------------- records from hand-made shards */
/* A sample with A augmentations, text rows T, D dims; flags change one thing. */
enum { S_OK = 0, S_NO_PAUG, S_PAUG_NUMBER, S_PAUG_LIST, S_PAUG_BAD_STRING, S_ROWS, S_DIM, S_TEXT_ROWS,
       S_DFNDR, S_DFNDR_MISSING, S_DUP, S_UPPER, S_NO_IMAGE, S_BAD_SYN };

static void sample(buf *tarb, const char *key, int kind) {
    char name[128];
    int A = 3, D = 4, T = 3;
    const char *syn = "{\"syn_text\": [\"one\", \"two\"]}";
    if (kind == S_DFNDR || kind == S_DFNDR_MISSING) { T = 1; syn = "{\"syn_text_dfn\": [\"one\", \"two\"]}"; }
    if (kind == S_BAD_SYN) syn = "{\"syn_text\": [\"one\", 2]}";
    snprintf(name, sizeof name, "%s.%s", key, kind == S_UPPER ? "JPG" : "jpg");
    if (kind != S_NO_IMAGE) tar_str(tarb, name, "\xff\xd8 not really a jpeg");
    snprintf(name, sizeof name, "%s.txt", key);
    tar_str(tarb, name, "a caption");
    if (kind == S_DUP) tar_str(tarb, name, "a second caption");
    snprintf(name, sizeof name, "%s.syn.json", key);
    tar_str(tarb, name, syn);
    snprintf(name, sizeof name, "%s.paug.json", key);
    const char *paug = "{\"param_aug\": \"[[[1, 2, 3, 4], [[0, 0.0], [6, 0.27]]], [[1, 2, 3, 4], [[0, 0.0], [6, 0.27]]], [[1, 2, 3, 4], [[0, 0.0], [6, 0.27]]]]\"}";
    if (kind == S_PAUG_NUMBER) paug = "{\"param_aug\": 5}";
    if (kind == S_PAUG_LIST) paug = "{\"param_aug\": [[[1, 2, 3, 4], [[0, 0.0], [6, 0.27]]], [[1, 2, 3, 4], null], 7]}";
    if (kind == S_PAUG_BAD_STRING) paug = "{\"param_aug\": \"{not json\"}";
    if (kind != S_NO_PAUG) tar_str(tarb, name, paug);
    /* the npz */
    float img[3 * 4], txt[3 * 5], syn2[2 * 4];
    for (int i = 0; i < 12; i++) img[i] = (float)i;
    for (int i = 0; i < 15; i++) txt[i] = 100.0f + (float)i;
    for (int i = 0; i < 8; i++) syn2[i] = 200.0f + (float)i;
    buf a = {0}, t = {0}, s = {0}, z = {0};
    char shape[32];
    snprintf(shape, sizeof shape, "(%d, %d)", kind == S_ROWS ? 2 : A, D);
    npy(&a, "<f4", "False", shape, img, (size_t)(kind == S_ROWS ? 2 : A) * D * 4);
    int td = kind == S_DIM ? 5 : D, tr = kind == S_TEXT_ROWS ? 2 : T;
    snprintf(shape, sizeof shape, "(%d, %d)", tr, td);
    npy(&t, "<f4", "False", shape, txt, (size_t)tr * td * 4);
    npy(&s, "<f4", "False", "(2, 4)", syn2, sizeof syn2);
    zent e[] = {{"image_emb.npy", a.d, a.n, 1, 0, 0}, {"text_emb.npy", t.d, t.n, 0, 0, 0},
                {"syn_text_dfn_emb.npy", s.d, s.n, 1, 0, 0}};
    zip(&z, e, kind == S_DFNDR ? 3 : 2);
    snprintf(name, sizeof name, "%s.npz", key);
    tar_file(tarb, name, z.d, z.n);
    bfree(&a); bfree(&t); bfree(&s); bfree(&z);
}

static void test_records(void) {
    struct { int kind; mc_skip_reason why; } cases[] = {
        {S_NO_PAUG, MC_SKIP_MISSING}, {S_PAUG_NUMBER, MC_SKIP_DECODE}, {S_PAUG_BAD_STRING, MC_SKIP_DECODE},
        {S_ROWS, MC_SKIP_SHAPE}, {S_DIM, MC_SKIP_SHAPE}, {S_TEXT_ROWS, MC_SKIP_SHAPE},
        {S_DFNDR_MISSING, MC_SKIP_SHAPE}, {S_DUP, MC_SKIP_DUPLICATE}, {S_NO_IMAGE, MC_SKIP_MISSING},
        {S_BAD_SYN, MC_SKIP_DECODE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b = {0};
        sample(&b, "k0", S_OK);
        sample(&b, "k1", cases[i].kind);
        sample(&b, "k2", S_OK);
        tar_end(&b);
        for (int strict = 0; strict < 2; strict++) {
            mc_shard_params p = mc_shard_default_params();
            p.strict = strict;
            mc_shard_reader *r;
            mc_error err;
            CHECK(mc_shard_open_memory(b.d, b.n, "mem.tar", &p, &r, &err) == MC_OK, "open memory");
            mc_dr_record *rec;
            int n = 0;
            mc_status st;
            char keys[64] = "";
            while ((st = mc_shard_next(r, &rec, &err)) == MC_OK && rec) {
                strcat(keys, rec->key);
                n++;
                mc_dr_record_free(rec);
            }
            const mc_shard_stats *s = mc_shard_reader_stats(r);
            if (!strict) {
                CHECK(st == MC_OK && n == 2 && !strcmp(keys, "k0k2") && s->skipped == 1 &&
                      s->skipped_by[cases[i].why] == 1, "case %zu: skip: %d records %s, skipped %llu, reason %s (%s)",
                      i, n, keys, (unsigned long long)s->skipped, mc_skip_reason_name(cases[i].why),
                      s->last_skip.message);
                CHECK(strstr(s->last_skip.message, "mem.tar") && strstr(s->last_skip.message, "k1"),
                      "case %zu: message names shard and key: %s", i, s->last_skip.message);
            } else {
                CHECK(st != MC_OK && n == 1 && strstr(err.message, "k1"), "case %zu strict: %d, %d records: %s",
                      i, st, n, err.message);
            }
            mc_shard_close(r);
        }
        bfree(&b);
    }
    /* good variants: param_aug as a real list; DFNDR layout; upper-case extension */
    buf b = {0};
    sample(&b, "p", S_PAUG_LIST);
    sample(&b, "d", S_DFNDR);
    sample(&b, "u", S_UPPER);
    tar_end(&b);
    mc_shard_params p = mc_shard_default_params();
    p.strict = 1;
    mc_shard_reader *r;
    mc_error err;
    mc_dr_record *rec;
    CHECK(mc_shard_open_memory(b.d, b.n, "mem.tar", &p, &r, &err) == MC_OK, "open");
    CHECK(mc_shard_next(r, &rec, &err) == MC_OK && rec, "list paug: %s", err.message);
    if (rec) {
        CHECK(rec->n_aug == 3 && !rec->paug_was_string && rec->aug[1].items[1].type == MC_JSON_NULL &&
              rec->aug[2].type == MC_JSON_NUMBER, "paug list elements");
        mc_dr_record_free(rec);
    }
    CHECK(mc_shard_next(r, &rec, &err) == MC_OK && rec, "dfndr: %s", err.message);
    if (rec) {
        CHECK(rec->layout == MC_DR_LAYOUT_DFNDR && rec->syn[0].emb && rec->syn[0].emb->rows == 2, "dfndr layout");
        const float *e = mc_dr_syn_embedding(rec, "syn_text_dfn", 1, &err);
        CHECK(e && e[0] == 204.0f, "dfndr syn row");
        mc_dr_record_free(rec);
    }
    CHECK(mc_shard_next(r, &rec, &err) == MC_OK && rec, "upper: %s", err.message);
    if (rec) {
        CHECK(!strcmp(rec->image_ext, "jpg"), "upper-case extension lowered");
        mc_dr_record_free(rec);
    }
    CHECK(mc_shard_next(r, &rec, &err) == MC_OK && !rec, "end");
    mc_shard_close(r);
    /* a corrupt archive after one good sample: the shard ends, counted */
    size_t good = b.n;
    bfree(&b);
    sample(&b, "g", S_OK);
    good = b.n;
    sample(&b, "h", S_OK);
    b.d[good + 100] ^= 0x40;   /* checksum of h's first header */
    tar_end(&b);
    mc_shard_params dp = mc_shard_default_params();
    CHECK(mc_shard_open_memory(b.d, b.n, "mem.tar", &dp, &r, &err) == MC_OK, "open");
    int n = 0;
    mc_status st;
    while ((st = mc_shard_next(r, &rec, &err)) == MC_OK && rec) { n++; mc_dr_record_free(rec); }
    CHECK(st == MC_OK && n == 1 && mc_shard_reader_stats(r)->skipped_by[MC_SKIP_SHARD] == 1, "corrupt shard counted");
    mc_shard_close(r);
    CHECK(mc_shard_open_memory(b.d, b.n, "mem.tar", &p, &r, &err) == MC_OK, "open");
    n = 0;
    while ((st = mc_shard_next(r, &rec, &err)) == MC_OK && rec) { n++; mc_dr_record_free(rec); }
    CHECK(st == MC_ERR_FORMAT && n == 1 && strstr(err.message, "checksum"), "corrupt shard strict: %s", err.message);
    mc_shard_close(r);
    /* every truncation of a hand-made shard: no crash, no leak */
    for (size_t cut = 0; cut < b.n; cut += 97) {
        if (mc_shard_open_memory(b.d, cut, "cut.tar", &dp, &r, &err) != MC_OK) continue;
        while (mc_shard_next(r, &rec, &err) == MC_OK && rec) mc_dr_record_free(rec);
        mc_shard_close(r);
    }
    bfree(&b);
    /* a pth.gz fixture member cut short, and its bytes flipped */
    size_t tn = 0;
    char *tarc = NULL;
    CHECK(mc_file_read_all(fixture("datacompdr/shards/00000000_bf16.tar"), (size_t)64 << 20, &tarc, &tn, &err) == MC_OK,
          "read bf16 shard: %s", err.message);
    uint8_t *tarbytes = (uint8_t *)tarc;
    if (tarbytes) {
        mc_tar *t;
        CHECK(mc_tar_open_memory(tarbytes, tn, "bf16", NULL, &t, &err) == MC_OK, "tar");
        mc_tar_member m;
        int eof;
        while (mc_tar_next(t, &m, &eof, &err) == MC_OK && !eof) {
            size_t l = strlen(m.name);
            if (l < 7 || strcmp(m.name + l - 7, ".pth.gz")) continue;
            mc_array_set set;
            CHECK(mc_pthgz_read_memory(m.data, m.size, m.name, 0, &set, &err) == MC_OK && set.n == 2, "pth.gz");
            mc_array_set_free(&set);
            int bad = 0;
            for (size_t cut = 0; cut < m.size; cut += 53)
                if (mc_pthgz_read_memory(m.data, cut, m.name, 0, &set, &err) != MC_OK) bad++;
                else mc_array_set_free(&set);
            CHECK(bad == (int)((m.size + 52) / 53), "truncated pth.gz accepted");
            break;
        }
        mc_tar_close(t);
        free(tarbytes);
    }
}

/* The writers (what 'mobileclip reinforce' writes), read back by the readers. */
static void test_writers(void) {
    mc_error err;
    mc_error_clear(&err);
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, -7}, t[4] = {0.25f, 0.5f, -1, 2};
    mc_st_entry e[2] = {{"image_emb", MC_DTYPE_F32, 2, {3, 2}, a}, {"text_emb", MC_DTYPE_F32, 2, {2, 2}, t}};
    uint8_t *out = NULL;
    size_t len = 0;
    CHECK(mc_npz_write_memory(e, 2, &out, &len, &err) == MC_OK, "npz write: %s", err.message);
    mc_array_set set = {0};
    CHECK(out && mc_npz_read_memory(out, len, "w.npz", 0, &set, &err) == MC_OK, "npz read back: %s", err.message);
    const mc_array *ia = mc_array_set_find(&set, "image_emb"), *ta = mc_array_set_find(&set, "text_emb");
    CHECK(ia && ia->ndim == 2 && ia->shape[0] == 3 && ia->shape[1] == 2 && !memcmp(ia->data, a, sizeof a) &&
              ta && ta->shape[0] == 2 && !memcmp(ta->data, t, sizeof t),
          "npz round trip");
    mc_array_set_free(&set);
    free(out);
    /* bf16 pth.gz */
    uint16_t ab[6], tb[4];
    for (int i = 0; i < 6; i++) ab[i] = mc_f32_to_bf16(a[i]);
    for (int i = 0; i < 4; i++) tb[i] = mc_f32_to_bf16(t[i]);
    e[0].dtype = e[1].dtype = MC_DTYPE_BF16;
    e[0].data = ab;
    e[1].data = tb;
    CHECK(mc_pthgz_write_memory(e, 2, &out, &len, &err) == MC_OK, "pth.gz write: %s", err.message);
    memset(&set, 0, sizeof set);
    CHECK(out && mc_pthgz_read_memory(out, len, "w.pth.gz", 0, &set, &err) == MC_OK, "pth.gz read back: %s", err.message);
    ia = mc_array_set_find(&set, "image_emb");
    CHECK(ia && ia->stored == MC_DTYPE_BF16 && ia->numel == 6 && ia->data[2] == 3.5f && ia->data[1] == -2.0f,
          "pth.gz round trip");
    mc_array_set_free(&set);
    free(out);
    /* a bad dtype or shape is refused */
    e[0].dtype = MC_DTYPE_I32;
    CHECK(mc_npz_write_memory(e, 1, &out, &len, &err) == MC_ERR_INVALID_ARG && !out, "npz of int32 accepted");
    /* tar: short and long (ustar prefix) names, read back; unsafe names refused */
    char *tbuf = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&tbuf, &tlen);
    char longname[200];
    memset(longname, 'd', 120);
    longname[120] = '/';
    memset(longname + 121, 'f', 60);
    memcpy(longname + 181, ".txt", 5);
    CHECK(mc_tar_write_member(f, "w.tar", "k1.txt", "hello", 5, &err) == MC_OK, "tar write: %s", err.message);
    CHECK(mc_tar_write_member(f, "w.tar", longname, "x", 1, &err) == MC_OK, "tar long name: %s", err.message);
    CHECK(mc_tar_write_member(f, "w.tar", "k2.bin", "", 0, &err) == MC_OK, "tar empty member");
    CHECK(mc_tar_write_member(f, "w.tar", "../evil.txt", "x", 1, &err) == MC_ERR_INVALID_ARG, "'..' name written");
    CHECK(mc_tar_write_member(f, "w.tar", "/abs.txt", "x", 1, &err) == MC_ERR_INVALID_ARG, "absolute name written");
    CHECK(mc_tar_write_end(f, "w.tar", &err) == MC_OK, "tar end");
    fclose(f);
    CHECK(tlen % 512 == 0 && tlen == 512 * 7, "tar size %zu", tlen);
    mc_tar *tr = NULL;
    if (mc_tar_open_memory(tbuf, tlen, "w.tar", NULL, &tr, &err) == MC_OK) {
        const char *want[3] = {"k1.txt", longname, "k2.bin"};
        size_t sizes[3] = {5, 1, 0};
        int n = 0, eof = 0;
        mc_tar_member m;
        while (mc_tar_next(tr, &m, &eof, &err) == MC_OK && !eof) {
            CHECK(n < 3 && !strcmp(m.name, want[n]) && m.size == sizes[n], "member %d: %s (%zu)", n, m.name, m.size);
            n++;
        }
        CHECK(n == 3 && eof, "tar read back %d members", n);
        mc_tar_close(tr);
    } else {
        CHECK(0, "tar open: %s", err.message);
    }
    free(tbuf);
}

int main(void) {
    mc_error err;
    if (mc_checkpoint_open(fixture("datacompdr/expected_reinforcements.safetensors"), &expected, &err) != MC_OK) {
        CHECK(0, "expected reinforcements: %s", err.message);
        expected = NULL;
    }
    test_tar();
    test_brace();
    test_split();
    test_npz();
    test_gzip();
    test_records();
    test_writers();
    check_shard("datacompdr/shards/00000000.tar", 0);
    check_shard("datacompdr/shards/00000000_bf16.tar", 1);
    time_shards();
    mc_checkpoint_close(expected);
    return test_summary("test_shard");
}
