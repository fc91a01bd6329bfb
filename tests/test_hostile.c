/*
 * test_hostile.c - malformed and malicious checkpoints, written at test time
 * into a temporary folder: truncated and corrupt zips, pickles that name
 * dangerous globals, nest deeply, loop through the memo or describe tensors
 * outside their storage, and broken safetensors headers.  Each must give an
 * error status (never a crash, never an unbounded allocation).  Also checks
 * that well-formed hand-made pickles (strided views, wrappers, protocol 4,
 * bf16, parameters) read correctly.
 */
#include "test.h"

#include "core/core.h"
#include "io/ckpt_open.h"

#include <stdint.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/mc_hostileXXXXXX";

/* ---- a growable byte buffer ---- */
typedef struct { uint8_t *d; size_t n, cap; } buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d = realloc(b->d, b->cap);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void put1(buf *b, int c) { uint8_t x = (uint8_t)c; put(b, &x, 1); }
static void put16(buf *b, unsigned v) { put1(b, v & 255); put1(b, (v >> 8) & 255); }
static void put32(buf *b, uint32_t v) { put16(b, v & 0xFFFF); put16(b, v >> 16); }
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* ---- pickle writer ---- */
static void pk_str(buf *b, const char *s) { put1(b, 'X'); put32(b, (uint32_t)strlen(s)); puts_(b, s); }
static void pk_int(buf *b, int32_t v) { put1(b, 'J'); put32(b, (uint32_t)v); }
static void pk_global(buf *b, const char *mod, const char *name) {
    put1(b, 'c'); puts_(b, mod); put1(b, '\n'); puts_(b, name); put1(b, '\n');
}
static void pk_tuple_ints(buf *b, int n, const int64_t *v) {
    put1(b, '(');
    for (int i = 0; i < n; i++) pk_int(b, (int32_t)v[i]);
    put1(b, 't');
}
/* _rebuild_tensor_v2(('storage', type, key, 'cpu', numel), offset, shape, stride, False, OrderedDict()) */
static void pk_tensor(buf *b, const char *storage, const char *key, int32_t numel, int32_t offset, int ndim,
                      const int64_t *shape, const int64_t *stride) {
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    put1(b, '(');
    put1(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", storage);
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, numel);
    put1(b, 't');
    put1(b, 'Q');
    pk_int(b, offset);
    pk_tuple_ints(b, ndim, shape);
    pk_tuple_ints(b, ndim, stride);
    put1(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    put1(b, ')');
    put1(b, 'R');
    put1(b, 't');
    put1(b, 'R');
}

/* ---- zip writer (stored entries) ---- */
typedef struct { const char *name; const void *data; size_t len; int method; } zentry;

static void zip_build(buf *out, const zentry *e, int n, int pad) {
    uint32_t offs[32];
    for (int i = 0; i < n; i++) {
        if (pad && i > 0) while ((out->n + 30 + strlen(e[i].name)) % 64) put1(out, 0); /* skipped bytes are legal */
        offs[i] = (uint32_t)out->n;
        put32(out, 0x04034b50u); put16(out, 20); put16(out, 0); put16(out, (unsigned)e[i].method);
        put32(out, 0); put32(out, 0);
        put32(out, (uint32_t)e[i].len); put32(out, (uint32_t)e[i].len);
        put16(out, (unsigned)strlen(e[i].name)); put16(out, 0);
        puts_(out, e[i].name);
        put(out, e[i].data, e[i].len);
    }
    uint32_t cd = (uint32_t)out->n;
    for (int i = 0; i < n; i++) {
        put32(out, 0x02014b50u); put16(out, 20); put16(out, 20); put16(out, 0); put16(out, (unsigned)e[i].method);
        put32(out, 0); put32(out, 0);
        put32(out, (uint32_t)e[i].len); put32(out, (uint32_t)e[i].len);
        put16(out, (unsigned)strlen(e[i].name)); put16(out, 0); put16(out, 0); put16(out, 0); put16(out, 0);
        put32(out, 0); put32(out, offs[i]);
        puts_(out, e[i].name);
    }
    uint32_t cd_size = (uint32_t)out->n - cd;
    put32(out, 0x06054b50u); put16(out, 0); put16(out, 0); put16(out, (unsigned)n); put16(out, (unsigned)n);
    put32(out, cd_size); put32(out, cd); put16(out, 0);
}


static void put64(buf *b, uint64_t v) { put32(b, (uint32_t)v); put32(b, (uint32_t)(v >> 32)); }

/* The same archive in zip64 form: offsets in zip64 extra fields, zip64 end records. */
static void zip64_build(buf *out, const zentry *e, int n) {
    uint64_t offs[32];
    for (int i = 0; i < n; i++) {
        offs[i] = out->n;
        put32(out, 0x04034b50u); put16(out, 45); put16(out, 0); put16(out, 0);
        put32(out, 0); put32(out, 0);
        put32(out, (uint32_t)e[i].len); put32(out, (uint32_t)e[i].len);
        put16(out, (unsigned)strlen(e[i].name)); put16(out, 0);
        puts_(out, e[i].name);
        put(out, e[i].data, e[i].len);
    }
    uint64_t cd = out->n;
    for (int i = 0; i < n; i++) {
        put32(out, 0x02014b50u); put16(out, 45); put16(out, 45); put16(out, 0); put16(out, 0);
        put32(out, 0); put32(out, 0);
        put32(out, 0xFFFFFFFFu); put32(out, 0xFFFFFFFFu);
        put16(out, (unsigned)strlen(e[i].name)); put16(out, 28); put16(out, 0); put16(out, 0); put16(out, 0);
        put32(out, 0); put32(out, 0xFFFFFFFFu);
        puts_(out, e[i].name);
        put16(out, 1); put16(out, 24); put64(out, e[i].len); put64(out, e[i].len); put64(out, offs[i]);
    }
    uint64_t cd_size = out->n - cd, z64 = out->n;
    put32(out, 0x06064b50u); put64(out, 44); put16(out, 45); put16(out, 45); put32(out, 0); put32(out, 0);
    put64(out, (uint64_t)n); put64(out, (uint64_t)n); put64(out, cd_size); put64(out, cd);
    put32(out, 0x07064b50u); put32(out, 0); put64(out, z64); put32(out, 1);
    put32(out, 0x06054b50u); put16(out, 0); put16(out, 0); put16(out, 0xFFFF); put16(out, 0xFFFF);
    put32(out, 0xFFFFFFFFu); put32(out, 0xFFFFFFFFu); put16(out, 0);
}

static float storage0[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

/* A torch.save archive: top/data.pkl plus storages "0" (12 floats) and "1" (the same as bf16). */
static void torch_zip(buf *out, const char *top, const buf *pkl) {
    static uint16_t bf[12];
    for (int i = 0; i < 12; i++) bf[i] = mc_f32_to_bf16(storage0[i]);
    char n0[128], n1[128], n2[128], n3[128];
    snprintf(n0, sizeof n0, "%s/data.pkl", top);
    snprintf(n1, sizeof n1, "%s/data/0", top);
    snprintf(n2, sizeof n2, "%s/data/1", top);
    snprintf(n3, sizeof n3, "%s/version", top);
    zentry e[4] = {{n0, pkl->d, pkl->n, 0}, {n1, storage0, sizeof storage0, 0}, {n2, bf, sizeof bf, 0},
                   {n3, "3\n", 2, 0}};
    zip_build(out, e, 4, 1);
}

static const char *write_file(const char *name, const void *d, size_t n) {
    static char path[8][512];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (f) { fwrite(d, 1, n, f); fclose(f); }
    return p;
}

static mc_status open_buf(const buf *b, mc_checkpoint **ck, mc_error *err) {
    const char *p = write_file("case.pt", b->d, b->n);
    mc_status st = mc_checkpoint_open(p, ck, err);
    /* the same bytes through the in-memory path must agree */
    mc_checkpoint *m = NULL;
    mc_error e2;
    mc_status st2 = mc_checkpoint_open_memory(b->d, b->n, "case", &m, &e2);
    CHECK(st == st2, "file (%d) and memory (%d) opens disagree", st, st2);
    mc_checkpoint_close(m);
    return st;
}

static void expect_fail(const char *what, const buf *pkl) {
    buf z = {0};
    torch_zip(&z, "archive", pkl);
    mc_checkpoint *ck = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_status st = open_buf(&z, &ck, &err);
    CHECK(st != MC_OK && ck == NULL && err.message[0], "%s: accepted", what);
    mc_checkpoint_close(ck);
    free(z.d);
}

static mc_status expect_fail_msg(const char *what, const buf *pkl, const char *needle) {
    buf z = {0};
    torch_zip(&z, "archive", pkl);
    mc_checkpoint *ck = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_status st = open_buf(&z, &ck, &err);
    CHECK(st != MC_OK && strstr(err.message, needle), "%s: status %d, message '%s'", what, st, err.message);
    mc_checkpoint_close(ck);
    free(z.d);
    return st;
}

/* A state dict {"w": tensor} with the given view of storage "0". */
static void dict_one(buf *p, const char *storage, const char *key, int32_t numel, int32_t off, int nd,
                     const int64_t *shape, const int64_t *stride) {
    p->n = 0;
    put1(p, 0x80); put1(p, 2);
    put1(p, '}');
    put1(p, '(');
    pk_str(p, "w");
    pk_tensor(p, storage, key, numel, off, nd, shape, stride);
    put1(p, 'u');
    put1(p, '.');
}

static void test_valid_pickles(void) {
    buf p = {0}, z = {0};
    mc_checkpoint *ck = NULL;
    mc_error err;

    /* contiguous [2,3] at offset 3, OrderedDict with BUILD of its _metadata, "module." prefix */
    put1(&p, 0x80); put1(&p, 2);
    pk_global(&p, "collections", "OrderedDict");
    put1(&p, ')'); put1(&p, 'R');
    put1(&p, 'q'); put1(&p, 0);
    put1(&p, '(');
    pk_str(&p, "module.a");
    pk_tensor(&p, "FloatStorage", "0", 12, 3, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    pk_str(&p, "module.t"); /* transposed view: shape [3,2], stride [1,3] */
    pk_tensor(&p, "FloatStorage", "0", 12, 0, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3});
    pk_str(&p, "b16");
    pk_tensor(&p, "BFloat16Storage", "1", 12, 0, 1, (int64_t[]){12}, (int64_t[]){1});
    pk_str(&p, "scalar");
    pk_tensor(&p, "FloatStorage", "0", 12, 11, 0, NULL, NULL);
    pk_str(&p, "empty");
    pk_tensor(&p, "FloatStorage", "0", 12, 0, 2, (int64_t[]){0, 5}, (int64_t[]){5, 1});
    pk_str(&p, "bcast"); /* stride-0 expansion within the storage size */
    pk_tensor(&p, "FloatStorage", "0", 12, 2, 2, (int64_t[]){2, 3}, (int64_t[]){0, 1});
    put1(&p, 'u');
    put1(&p, '}'); /* state {'_metadata': {}} */
    pk_str(&p, "_metadata");
    put1(&p, '}');
    put1(&p, 's');
    put1(&p, 'b');
    put1(&p, '.');
    torch_zip(&z, "my_weights", &p);
    mc_status st = open_buf(&z, &ck, &err);
    CHECK(st == MC_OK, "hand-made state dict: %s", err.message);
    if (ck) {
        CHECK(mc_checkpoint_count(ck) == 6, "count %zu", mc_checkpoint_count(ck));
        const mc_tensor_info *a = mc_checkpoint_find(ck, "a");
        CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 &&
              !memcmp(a->data, storage0 + 3, 6 * 4), "contiguous view at an offset");
        const mc_tensor_info *t = mc_checkpoint_find(ck, "t");
        static const float tt[6] = {0, 3, 1, 4, 2, 5};
        CHECK(t && t->nbytes == 24 && !memcmp(t->data, tt, 24), "transposed view made contiguous");
        const mc_tensor_info *b = mc_checkpoint_find(ck, "b16");
        if (b && b->dtype == MC_DTYPE_BF16) {
            float f[12];
            mc_convert_to_f32(b->dtype, b->data, 12, f);
            CHECK(max_abs_diff(f, storage0, 12) == 0, "bf16 values");
        } else {
            CHECK(0, "bf16 tensor");
        }
        const mc_tensor_info *s = mc_checkpoint_find(ck, "scalar");
        CHECK(s && s->ndim == 0 && s->numel == 1 && *(const float *)s->data == 11, "scalar");
        const mc_tensor_info *e = mc_checkpoint_find(ck, "empty");
        CHECK(e && e->numel == 0 && e->nbytes == 0, "empty tensor");
        const mc_tensor_info *bc = mc_checkpoint_find(ck, "bcast");
        static const float bb[6] = {2, 3, 4, 2, 3, 4};
        CHECK(bc && !memcmp(bc->data, bb, 24), "stride-0 rows");
    }
    mc_checkpoint_close(ck);
    ck = NULL;

    /* protocol 4: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, BINGET; wrapped in
     * {"epoch": 3, "state_dict": {...}} with a _rebuild_parameter */
    p.n = 0; z.n = 0;
    put1(&p, 0x80); put1(&p, 4);
    put1(&p, 0x95); put32(&p, 0); put32(&p, 0);
    put1(&p, '}'); put1(&p, 0x94);                       /* memo 0: outer dict */
    put1(&p, '(');
    put1(&p, 0x8c); put1(&p, 5); puts_(&p, "epoch");
    put1(&p, 'K'); put1(&p, 3);
    put1(&p, 0x8c); put1(&p, 4); puts_(&p, "name");
    put1(&p, 0x8c); put1(&p, 3); puts_(&p, "abc");
    put1(&p, 0x8c); put1(&p, 10); puts_(&p, "state_dict");
    put1(&p, '}'); put1(&p, 0x94);                       /* memo 1 */
    put1(&p, 0x8c); put1(&p, 1); puts_(&p, "w");
    put1(&p, 0x8c); put1(&p, 12); puts_(&p, "torch._utils");
    put1(&p, 0x8c); put1(&p, 18); puts_(&p, "_rebuild_parameter");
    put1(&p, 0x93); put1(&p, 0x94);                      /* memo 2 */
    pk_tensor(&p, "FloatStorage", "0", 12, 0, 1, (int64_t[]){4}, (int64_t[]){1});
    put1(&p, 0x88);
    pk_global(&p, "collections", "OrderedDict"); put1(&p, ')'); put1(&p, 'R');
    put1(&p, 0x87);                                      /* TUPLE3 */
    put1(&p, 'R');
    put1(&p, 's');
    put1(&p, 'u');
    put1(&p, '.');
    torch_zip(&z, "archive", &p);
    st = open_buf(&z, &ck, &err);
    CHECK(st == MC_OK, "protocol 4 wrapped dict: %s", err.message);
    if (ck) {
        const mc_tensor_info *w = mc_checkpoint_find(ck, "w");
        CHECK(mc_checkpoint_count(ck) == 1 && w && w->numel == 4 && !memcmp(w->data, storage0, 16),
              "wrapped parameter");
    }
    mc_checkpoint_close(ck);
    free(p.d);
    free(z.d);
}

static void test_hostile_pickles(void) {
    buf p = {0};
    /* dangerous globals, by GLOBAL and by STACK_GLOBAL */
    static const char *const evil[][2] = {{"os", "system"}, {"builtins", "eval"}, {"posix", "system"},
                                          {"subprocess", "Popen"}, {"builtins", "exec"},
                                          {"torch.storage", "_load_from_bytes"}, {"__builtin__", "getattr"}};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        p.n = 0;
        put1(&p, 0x80); put1(&p, 2);
        pk_global(&p, evil[i][0], evil[i][1]);
        pk_str(&p, "echo pwned");
        put1(&p, 0x85);
        put1(&p, 'R');
        put1(&p, '.');
        char needle[128];
        snprintf(needle, sizeof needle, "%s.%s", evil[i][0], evil[i][1]);
        expect_fail_msg("GLOBAL", &p, needle);
        p.n = 0;
        put1(&p, 0x80); put1(&p, 4);
        put1(&p, 0x8c); put1(&p, (int)strlen(evil[i][0])); puts_(&p, evil[i][0]);
        put1(&p, 0x8c); put1(&p, (int)strlen(evil[i][1])); puts_(&p, evil[i][1]);
        put1(&p, 0x93);
        pk_str(&p, "id");
        put1(&p, 0x85);
        put1(&p, 'R');
        put1(&p, '.');
        expect_fail_msg("STACK_GLOBAL", &p, needle);
    }
    /* a dangerous global nested where a storage type belongs */
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2); put1(&p, '}'); put1(&p, '('); pk_str(&p, "w");
    pk_global(&p, "torch._utils", "_rebuild_tensor_v2");
    put1(&p, '('); put1(&p, '('); pk_str(&p, "storage"); pk_global(&p, "os", "system");
    expect_fail_msg("storage type os.system", &p, "os.system");

    /* deep MARK nesting and deep list nesting */
    size_t n = 100000;
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2);
    for (size_t i = 0; i < n; i++) { put1(&p, '('); put1(&p, ']'); }
    put1(&p, '.');
    expect_fail("100000 MARK/EMPTY_LIST", &p);
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2);
    for (size_t i = 0; i < n; i++) put1(&p, ']');
    for (size_t i = 0; i + 1 < n; i++) put1(&p, 'a');
    put1(&p, '.');
    expect_fail("100000-deep nested lists", &p);
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2);
    for (size_t i = 0; i < n; i++) put1(&p, '}');
    put1(&p, '.');
    expect_fail("100000 dicts on the stack", &p);
    /* stack growth without bound is capped: DUP forever */
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2); put1(&p, ']');
    for (size_t i = 0; i < (1u << 21); i++) put1(&p, '2');
    put1(&p, '.');
    expect_fail("2M DUPs", &p);

    /* values created and dropped: the value count is capped */
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2);
    for (size_t i = 0; i < (1u << 21); i++) { put1(&p, ']'); put1(&p, '0'); }
    put1(&p, '}'); put1(&p, '.');
    expect_fail_msg("2M dropped lists", &p, "pickle values");

    /* memo loops: a list and a dict that hold themselves, a dict of itself many times */
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2);
    put1(&p, '}'); put1(&p, 'q'); put1(&p, 0);
    put1(&p, '(');
    for (int i = 0; i < 200; i++) { char k[16]; snprintf(k, sizeof k, "k%d", i); pk_str(&p, k); put1(&p, 'h'); put1(&p, 0); }
    put1(&p, 'u');
    put1(&p, '.');
    expect_fail("self-referencing dict", &p);
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2);
    put1(&p, '}'); put1(&p, '('); pk_str(&p, "state_dict");
    put1(&p, ']'); put1(&p, 'q'); put1(&p, 1); put1(&p, 'h'); put1(&p, 1); put1(&p, 'a');
    put1(&p, 'u'); put1(&p, '.');
    expect_fail("self-referencing list", &p);
    /* memo misuse */
    static const uint8_t memo_bad[][12] = {
        {0x80, 2, 'h', 5, '.'},                                 /* BINGET of an undefined entry */
        {0x80, 2, ']', 'r', 0xff, 0xff, 0xff, 0xff, '.'},       /* LONG_BINPUT 4G */
        {0x80, 2, 'q', 0, '.'},                                 /* BINPUT on an empty stack */
        {0x80, 2, 'j', 0xff, 0xff, 0xff, 0x7f, '.'},            /* LONG_BINGET far away */
    };
    for (size_t i = 0; i < sizeof memo_bad / sizeof memo_bad[0]; i++) {
        buf q = {(uint8_t *)memo_bad[i], 12, 12};
        expect_fail("memo misuse", &q);
    }
    /* opcode soup */
    static const uint8_t soup[][16] = {
        {0x80, 6, '}', '.'},                     /* protocol 6 */
        {0x80, 2, '}'},                          /* no STOP */
        {'.'},                                   /* STOP on empty stack */
        {0x80, 2, 'R', '.'},                     /* REDUCE on empty stack */
        {0x80, 2, ')', ')', 'R', '.'},           /* REDUCE on a tuple */
        {0x80, 2, 'N', 'N', 'b', '.'},           /* BUILD on None */
        {0x80, 2, ']', 'K', 1, 's', '.'},        /* SETITEM on a list */
        {0x80, 2, '}', 'K', 1, 'a', '.'},        /* APPEND to a dict */
        {0x80, 2, 't', '.'},                     /* TUPLE without MARK */
        {0x80, 2, '(', 'u', '.'},                /* SETITEMS without a dict */
        {0x80, 2, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '}', '.'}, /* 9-byte LONG1 */
        {0x80, 2, 'i', 'o', 's', '\n', '.'},     /* INST (protocol 0) */
        {0x80, 2, 0x81, '.'},                    /* NEWOBJ */
        {0x80, 2, 'X', 0xff, 0xff, 0xff, 0xff, 'a', '.'}, /* string longer than the pickle */
        {0x80, 2, 'c', 'o', 's', '\n', 's', 'y'},          /* truncated GLOBAL */
        {0x80, 2, '}', 'Q', '.'},                /* BINPERSID of a dict */
    };
    for (size_t i = 0; i < sizeof soup / sizeof soup[0]; i++) {
        size_t len = 16;
        while (len > 1 && soup[i][len - 1] == 0) len--;
        buf q = {(uint8_t *)soup[i], len, len};
        expect_fail("opcode soup", &q);
    }

    /* tensors outside their storage */
    dict_one(&p, "FloatStorage", "0", 13, 0, 1, (int64_t[]){13}, (int64_t[]){1});
    expect_fail_msg("storage numel larger than the entry", &p, "claims");
    dict_one(&p, "FloatStorage", "0", 12, 0, 1, (int64_t[]){13}, (int64_t[]){1});
    expect_fail("shape with more elements than the storage", &p);
    dict_one(&p, "FloatStorage", "0", 12, 6, 2, (int64_t[]){2, 4}, (int64_t[]){4, 1});
    expect_fail("offset + shape past the storage", &p);
    dict_one(&p, "FloatStorage", "0", 12, -1, 1, (int64_t[]){2}, (int64_t[]){1});
    expect_fail("negative offset", &p);
    dict_one(&p, "FloatStorage", "0", 12, 0, 2, (int64_t[]){2, 2}, (int64_t[]){-1, 1});
    expect_fail("negative stride", &p);
    dict_one(&p, "FloatStorage", "0", 12, 0, 2, (int64_t[]){3, 3}, (int64_t[]){1, 5});
    expect_fail("strided view past the storage", &p);
    dict_one(&p, "FloatStorage", "0", 12, 0, 2, (int64_t[]){2, 3}, (int64_t[]){0x7fffffff, 1});
    expect_fail("huge stride", &p);
    dict_one(&p, "FloatStorage", "0", 12, 0, 4, (int64_t[]){0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff},
             (int64_t[]){0, 0, 0, 0});
    expect_fail("shape overflowing size_t", &p);
    dict_one(&p, "FloatStorage", "0", 12, 0, 3, (int64_t[]){1000, 1000, 1000}, (int64_t[]){0, 0, 0});
    expect_fail("stride-0 expansion to 1e9 elements", &p);
    dict_one(&p, "FloatStorage", "0", 12, 0, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1},
             (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
    expect_fail("9 dimensions", &p);
    dict_one(&p, "FloatStorage", "7", 12, 0, 1, (int64_t[]){12}, (int64_t[]){1});
    expect_fail_msg("missing storage entry", &p, "not in the archive");
    dict_one(&p, "FloatStorage", "../0", 12, 0, 1, (int64_t[]){12}, (int64_t[]){1});
    expect_fail("storage key with a slash", &p);
    dict_one(&p, "DoubleStorage", "0", 12, 0, 1, (int64_t[]){12}, (int64_t[]){1});
    expect_fail("wrong dtype: 12 doubles in 48 bytes", &p);
    dict_one(&p, "QInt8Storage", "0", 12, 0, 1, (int64_t[]){12}, (int64_t[]){1});
    expect_fail("unknown storage type", &p);
    /* an object with no tensors */
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2); put1(&p, '}'); put1(&p, '.');
    expect_fail("empty dict", &p);
    /* a tensor whose name is not a string */
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2); put1(&p, '}'); put1(&p, '('); put1(&p, 'K'); put1(&p, 1);
    pk_tensor(&p, "FloatStorage", "0", 12, 0, 1, (int64_t[]){2}, (int64_t[]){1});
    put1(&p, 'u'); put1(&p, '.');
    expect_fail("integer tensor name", &p);
    /* the same name twice */
    p.n = 0;
    put1(&p, 0x80); put1(&p, 2); put1(&p, '}'); put1(&p, '(');
    for (int i = 0; i < 2; i++) {
        pk_str(&p, "w");
        pk_tensor(&p, "FloatStorage", "0", 12, 0, 1, (int64_t[]){2}, (int64_t[]){1});
    }
    put1(&p, 'u'); put1(&p, '.');
    expect_fail("duplicate tensor name", &p);
    free(p.d);
}

static void test_hostile_zips(void) {
    buf p = {0}, z = {0};
    dict_one(&p, "FloatStorage", "0", 12, 0, 1, (int64_t[]){12}, (int64_t[]){1});
    torch_zip(&z, "archive", &p);
    mc_checkpoint *ck = NULL;
    mc_error err;
    CHECK(open_buf(&z, &ck, &err) == MC_OK, "baseline: %s", err.message);
    mc_checkpoint_close(ck);
    /* zip64 form reads the same; cut short it fails */
    {
        zentry e[2] = {{"archive/data.pkl", p.d, p.n, 0}, {"archive/data/0", storage0, sizeof storage0, 0}};
        buf v = {0};
        zip64_build(&v, e, 2);
        ck = NULL;
        mc_status st = open_buf(&v, &ck, &err);
        const mc_tensor_info *t = ck ? mc_checkpoint_find(ck, "w") : NULL;
        CHECK(st == MC_OK && t && t->numel == 12 && !memcmp(t->data, storage0, 48), "zip64: %s", err.message);
        mc_checkpoint_close(ck);
        ck = NULL;
        v.d[v.n - 22 - 20 - 56 + 48] ^= 0x40; /* zip64 directory offset */
        CHECK(open_buf(&v, &ck, &err) == MC_ERR_FORMAT, "zip64 with a bad directory offset");
        free(v.d);
    }
    /* every truncation */
    size_t fails = 0;
    for (size_t len = 0; len < z.n; len++) {
        ck = NULL;
        mc_status st = mc_checkpoint_open_memory(z.d, len, "cut", &ck, &err);
        if (st != MC_OK && ck == NULL) fails++;
        mc_checkpoint_close(ck);
    }
    CHECK(fails == z.n, "%zu of %zu truncations rejected", fails, z.n);
    /* every single-byte corruption of the directory and headers either loads or fails cleanly */
    for (size_t i = 0; i < z.n; i++) {
        uint8_t save = z.d[i];
        z.d[i] ^= 0xA5;
        ck = NULL;
        mc_status st = mc_checkpoint_open_memory(z.d, z.n, "flip", &ck, &err);
        CHECK(st == MC_OK || ck == NULL, "flip");
        mc_checkpoint_close(ck);
        z.d[i] = save;
    }
    /* wrong magic */
    buf w = {0};
    put(&w, z.d, z.n);
    w.d[0] = 'Q';
    CHECK(open_buf(&w, &ck, &err) == MC_ERR_FORMAT, "wrong magic");
    w.n = 0;
    puts_(&w, "PK\3\4 just a header and nothing else");
    CHECK(open_buf(&w, &ck, &err) == MC_ERR_FORMAT, "no end record");
    /* compressed entries are refused clearly */
    {
        zentry e[2] = {{"archive/data.pkl", p.d, p.n, 8}, {"archive/data/0", storage0, sizeof storage0, 0}};
        w.n = 0;
        zip_build(&w, e, 2, 0);
        mc_status st = open_buf(&w, &ck, &err);
        CHECK(st == MC_ERR_UNSUPPORTED && strstr(err.message, "compressed"), "deflated entry: %s", err.message);
    }
    /* no data.pkl; data.pkl two folders deep */
    {
        zentry e[1] = {{"archive/other.pkl", p.d, p.n, 0}};
        w.n = 0;
        zip_build(&w, e, 1, 0);
        CHECK(open_buf(&w, &ck, &err) == MC_ERR_FORMAT, "no data.pkl");
        zentry e2[2] = {{"a/b/data.pkl", p.d, p.n, 0}, {"a/b/data/0", storage0, sizeof storage0, 0}};
        w.n = 0;
        zip_build(&w, e2, 2, 0);
        CHECK(open_buf(&w, &ck, &err) == MC_ERR_FORMAT, "nested data.pkl");
    }
    /* central directory lies: entry offset past the end, size past the end, count too big */
    {
        zentry e[2] = {{"archive/data.pkl", p.d, p.n, 0}, {"archive/data/0", storage0, sizeof storage0, 0}};
        w.n = 0;
        zip_build(&w, e, 2, 0);
        size_t eocd = w.n - 22;
        uint32_t cd = (uint32_t)(w.d[eocd + 16] | w.d[eocd + 17] << 8 | w.d[eocd + 18] << 16 | (uint32_t)w.d[eocd + 19] << 24);
        buf v = {0};
        put(&v, w.d, w.n);
        memset(v.d + cd + 42, 0xF0, 4); /* first entry's local offset */
        CHECK(open_buf(&v, &ck, &err) == MC_ERR_FORMAT, "local offset past the end");
        v.n = 0; put(&v, w.d, w.n);
        memset(v.d + cd + 20, 0x7F, 8); /* sizes */
        CHECK(open_buf(&v, &ck, &err) == MC_ERR_FORMAT, "entry size past the end");
        v.n = 0; put(&v, w.d, w.n);
        v.d[eocd + 10] = 0xF0; v.d[eocd + 11] = 0x7F; /* entry count */
        CHECK(open_buf(&v, &ck, &err) == MC_ERR_FORMAT, "entry count");
        v.n = 0; put(&v, w.d, w.n);
        memset(v.d + eocd + 16, 0xFF, 4); /* zip64 marker without a locator */
        CHECK(open_buf(&v, &ck, &err) == MC_ERR_FORMAT, "zip64 without locator");
        v.n = 0; put(&v, w.d, w.n);
        memset(v.d + eocd + 12, 0x7E, 4); /* directory size */
        CHECK(open_buf(&v, &ck, &err) == MC_ERR_FORMAT, "directory size");
        v.n = 0; put(&v, w.d, w.n);
        memset(v.d + cd + 28, 0xFF, 2); /* name length */
        CHECK(open_buf(&v, &ck, &err) == MC_ERR_FORMAT, "name length");
        free(v.d);
    }
    /* a big-endian archive is refused */
    {
        zentry e[3] = {{"archive/data.pkl", p.d, p.n, 0}, {"archive/data/0", storage0, sizeof storage0, 0},
                       {"archive/byteorder", "big", 3, 0}};
        w.n = 0;
        zip_build(&w, e, 3, 0);
        CHECK(open_buf(&w, &ck, &err) == MC_ERR_UNSUPPORTED, "big-endian");
    }
    /* legacy and garbage */
    w.n = 0;
    put1(&w, 0x80); put1(&w, 2); puts_(&w, "legacy torch.save");
    CHECK(open_buf(&w, &ck, &err) == MC_ERR_UNSUPPORTED, "legacy format");
    w.n = 0;
    CHECK(open_buf(&w, &ck, &err) == MC_ERR_FORMAT, "empty file");
    free(w.d);
    free(p.d);
    free(z.d);
}

static void st_file(buf *b, uint64_t hlen_override, const char *header, size_t data_len) {
    b->n = 0;
    uint64_t hl = hlen_override ? hlen_override : strlen(header);
    for (int i = 0; i < 8; i++) put1(b, (int)((hl >> (8 * i)) & 255));
    puts_(b, header);
    for (size_t i = 0; i < data_len; i++) put1(b, 0);
}

static void test_hostile_safetensors(void) {
    buf b = {0};
    mc_checkpoint *ck = NULL;
    mc_error err;
    st_file(&b, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    CHECK(open_buf(&b, &ck, &err) == MC_OK, "baseline safetensors: %s", err.message);
    mc_checkpoint_close(ck);
    ck = NULL;
    size_t fails = 0, total = b.n;
    for (size_t len = 0; len < total; len++) {
        if (mc_checkpoint_open_memory(b.d, len, "cut", &ck, &err) != MC_OK) fails++;
        mc_checkpoint_close(ck);
        ck = NULL;
    }
    CHECK(fails == total, "%zu of %zu safetensors truncations rejected", fails, total);
    static const struct { uint64_t hl; const char *h; size_t data; const char *what; } cases[] = {
        {(uint64_t)1 << 62, "{}", 0, "absurd header length"},
        {0xFFFFFFFFFFFFFFFFull, "{}", 0, "header length 2^64-1"},
        {200, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "header longer than file"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "offsets past the end"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "negative offset"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "reversed offsets"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "shape needs more bytes"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlapping tensors"},
        {0, "{\"a\":{\"dtype\":\"Q8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "unknown dtype"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "negative dimension"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         "shape overflowing size_t"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "fractional dimension"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "one offset"},
        {0, "{\"a\":[1,2]}", 0, "tensor entry not an object"},
        {0, "[1,2,3]", 0, "header not an object"},
        {0, "{\"__metadata__\":{\"k\":5}}", 0, "metadata value not a string"},
        {0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "duplicate name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_file(&b, cases[i].hl, cases[i].h, cases[i].data);
        ck = NULL;
        mc_error_clear(&err);
        mc_status st = open_buf(&b, &ck, &err);
        CHECK(st != MC_OK && ck == NULL, "safetensors %s: accepted", cases[i].what);
        mc_checkpoint_close(ck);
    }
    /* deep JSON nesting in the header */
    b.n = 0;
    size_t depth = 100000;
    for (int i = 0; i < 8; i++) put1(&b, (int)(((uint64_t)(2 * depth + 1) >> (8 * i)) & 255));
    put1(&b, '{');
    for (size_t i = 0; i < depth; i++) put1(&b, '[');
    for (size_t i = 0; i < depth; i++) put1(&b, ']');
    CHECK(open_buf(&b, &ck, &err) == MC_ERR_FORMAT, "deep header nesting");
    free(b.d);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_valid_pickles();
    test_hostile_pickles();
    test_hostile_zips();
    test_hostile_safetensors();
    char p[600];
    snprintf(p, sizeof p, "%s/case.pt", tmpdir);
    remove(p);
    rmdir(tmpdir);
    return test_summary("test_hostile");
}
