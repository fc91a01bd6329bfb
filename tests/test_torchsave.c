/*
 * test_torchsave.c - the torch.save writer (io/torchsave.h) and the reference
 * state dict behind 'convert --format pt' (model/state_dict.h).
 *
 * Writer: files of every dtype (0-d float32 and int64 among them, empty
 * tensors whose sizes and strides need the pickle's 8-byte integers, a
 * 75,000-element tensor, a 5-d one, a UTF-8 name), of 2,500 tensors (several
 * SETITEMS batches), with ZIP64 records (forced by a low limit) and with
 * another top folder are read back by our torch.save reader
 * (mc_checkpoint_open): same names in order, dtypes, shapes and bytes, data
 * 64-byte aligned.  The same input gives the same bytes.  Refused before
 * anything is written: no tensors, too many, a name missing, empty, too
 * long, not UTF-8 or given twice, a bad dtype, too many or negative
 * dimensions, sizes that overflow, missing data, a bad folder name; an I/O
 * failure leaves no file and no temporary; an existing file is replaced only
 * by a complete write.
 *
 * State dict: a mobileclip-repo checkpoint gives all its tensors in order; a
 * re-parameterised one, a folded 'convert' file, a wrong config and an
 * unexpected tensor are refused; a training-state file (mc_trainer_save of
 * the train_s0_tiny trainer with changed weights, moments and counters, and
 * the model config in its "mobileclip.config" metadata, as a training run
 * writes it) converts to exactly the trainer's weights and counters, AdamW
 * moments left out, f32 and f16; 'mobileclip convert' writes the same bytes
 * and refuses what the library refuses.
 *
 * With --write-cases DIR it only writes the writer's files and DIR/cases.json
 * (names, dtypes, shapes, strides, sha256 of each tensor's bytes) for
 * tests/test_convert_pt.py, where PyTorch reads them.
 */
#include "core/core.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/download.h"
#include "io/torchsave.h"
#include "model/state_dict.h"
#include "train/ckpt.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIN "build/mobileclip"

static char tmpdir[] = "/tmp/mc-test-torchsave-XXXXXX";

static const char *tpath(const char *name) {
    static char bufs[8][4200];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

/* Files in dir whose name contains ".tmp-" (leftover temporaries). */
static int temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) n++;
    if (d) closedir(d);
    return n;
}

static char *slurp(const char *path, size_t *len) {
    char *s = NULL;
    size_t l = 0;
    if (mc_file_read_all(path, (size_t)1 << 30, &s, &l, NULL)) return NULL;
    if (len) *len = l;
    return s;
}

static int same_file(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

/* Runs the CLI with stderr into tmpdir/stderr; returns the exit status. */
static int run_cli(const char *fmt, ...) {
    char args[8192], cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "MOBILECLIP_OFFLINE=1 MOBILECLIP_NO_PROGRESS=1 %s %s >/dev/null 2>%s </dev/null", BIN,
             args, tpath("stderr"));
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int stderr_has(const char *needle) {
    char *s = slurp(tpath("stderr"), NULL);
    int has = s && strstr(s, needle);
    free(s);
    return has;
}

/* ------------------------------------------------------- the writer's cases */

#define MAX_CASE 32
typedef struct wcase {
    mc_st_entry e[MAX_CASE];
    void *bufs[MAX_CASE];
    size_t n;
} wcase;

static size_t nbytes_of(const mc_st_entry *e) {
    size_t n = mc_dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    return n;
}

static void add(wcase *c, const char *name, mc_dtype dt, int ndim, const int64_t *shape) {
    mc_st_entry *e = &c->e[c->n];
    e->name = name;
    e->dtype = dt;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    size_t nb = nbytes_of(e);
    uint8_t *p = malloc(nb ? nb : 1);
    for (size_t j = 0; j < nb; j++)
        p[j] = dt == MC_DTYPE_BOOL ? (uint8_t)(j % 2) : (uint8_t)(c->n * 31 + j * 7 + 1);
    if (dt == MC_DTYPE_I64 && nb == 8) { int64_t v = 7; memcpy(p, &v, 8); }
    if (dt == MC_DTYPE_F32 && ndim == 0) { float v = 4.6052f; memcpy(p, &v, 4); }
    c->bufs[c->n] = p;
    e->data = nb ? p : NULL;
    c->n++;
}

static void case_free(wcase *c) {
    for (size_t i = 0; i < c->n; i++) free(c->bufs[i]);
    memset(c, 0, sizeof *c);
}

/* Every dtype, 0-d tensors, empty tensors with large sizes and strides
 * (pickled as LONG1), a 75,000-element tensor (BININT numel), 5-d, UTF-8. */
static void kinds(wcase *c) {
    memset(c, 0, sizeof *c);
    add(c, "logit_scale", MC_DTYPE_F32, 0, NULL);
    add(c, "bn.num_batches_tracked", MC_DTYPE_I64, 0, NULL);
    add(c, "w.weight", MC_DTYPE_F32, 3, (int64_t[]){2, 3, 4});
    add(c, "half", MC_DTYPE_F16, 1, (int64_t[]){5});
    add(c, "bfloat", MC_DTYPE_BF16, 2, (int64_t[]){3, 2});
    add(c, "double", MC_DTYPE_F64, 1, (int64_t[]){3});
    add(c, "i32", MC_DTYPE_I32, 1, (int64_t[]){4});
    add(c, "i16", MC_DTYPE_I16, 1, (int64_t[]){3});
    add(c, "i8", MC_DTYPE_I8, 1, (int64_t[]){5});
    add(c, "u8", MC_DTYPE_U8, 1, (int64_t[]){7});
    add(c, "flags", MC_DTYPE_BOOL, 1, (int64_t[]){4});
    add(c, "empty", MC_DTYPE_F32, 2, (int64_t[]){0, 5});
    add(c, "empty.wide", MC_DTYPE_F32, 2, (int64_t[]){0, (int64_t)1 << 33});
    add(c, "empty.long", MC_DTYPE_I64, 2, (int64_t[]){2147483653LL, 0});
    add(c, "big", MC_DTYPE_F32, 2, (int64_t[]){300, 250});
    add(c, "five.d", MC_DTYPE_F32, 5, (int64_t[]){1, 2, 1, 3, 2});
    add(c, "ünïcödé.näme", MC_DTYPE_F32, 1, (int64_t[]){1});
}

/* torch's contiguous strides. */
static void strides(const mc_st_entry *e, int64_t *st) {
    int64_t s = 1;
    for (int d = e->ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= e->shape[d] > 1 ? e->shape[d] : 1;
    }
}

/* Reads path back with our reader and compares it with e[0..n). */
static void check_read_back(const char *label, const char *path, const mc_st_entry *e, size_t n) {
    mc_checkpoint *ck = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_checkpoint_open(path, &ck, &err);
    CHECK(st == MC_OK, "%s: read back: %s", label, err.message);
    if (st != MC_OK) return;
    CHECK(mc_checkpoint_format(ck) == MC_FORMAT_TORCH_ZIP, "%s: format", label);
    CHECK(mc_checkpoint_count(ck) == n, "%s: %zu tensors read back, %zu written", label, mc_checkpoint_count(ck), n);
    size_t bad = 0, misaligned = 0;
    for (size_t i = 0; i < n && i < mc_checkpoint_count(ck); i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        int ok = !strcmp(t->name, e[i].name) && t->dtype == e[i].dtype && t->ndim == e[i].ndim &&
                 t->nbytes == nbytes_of(&e[i]);
        for (int d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == e[i].shape[d];
        if (ok && t->nbytes) ok = !memcmp(t->data, e[i].data, t->nbytes);
        if (!ok && bad++ < 3) fprintf(stderr, "%s: tensor %zu ('%s') differs\n", label, i, e[i].name);
        if (t->nbytes && (uintptr_t)t->data % 64) misaligned++;
    }
    CHECK(bad == 0, "%s: %zu tensors differ", label, bad);
    CHECK(misaligned == 0, "%s: %zu tensors' data not 64-byte aligned", label, misaligned);
    mc_checkpoint_close(ck);
}

static int file_has(const char *path, const void *pat, size_t len) {
    size_t n = 0;
    char *s = slurp(path, &n);
    int found = 0;
    for (size_t i = 0; s && i + len <= n && !found; i++) found = !memcmp(s + i, pat, len);
    free(s);
    return found;
}

static void test_write_read(void) {
    wcase c;
    kinds(&c);
    mc_error err;
    mc_error_clear(&err);
    const char *p1 = tpath("kinds.pt"), *p2 = tpath("kinds2.pt");
    CHECK(mc_torchsave_write(p1, c.e, c.n, NULL, &err) == MC_OK, "write kinds: %s", err.message);
    check_read_back("kinds", p1, c.e, c.n);
    CHECK(file_has(p1, "archive/data.pkl", 16) && file_has(p1, "archive/version", 15) &&
          file_has(p1, "archive/byteorder", 17), "kinds: archive/ entries");
    CHECK(!file_has(p1, "PK\x06\x06", 4), "kinds: no ZIP64 record in a small file");
    CHECK(mc_torchsave_write(p2, c.e, c.n, NULL, &err) == MC_OK, "write kinds again: %s", err.message);
    CHECK(same_file(p1, p2), "the same state dict gives the same bytes");

    /* ZIP64 fields for everything past 100 bytes (sizes, offsets, the directory) */
    mc_torchsave_params zp = {NULL, 100};
    const char *pz = tpath("zip64.pt");
    CHECK(mc_torchsave_write(pz, c.e, c.n, &zp, &err) == MC_OK, "write zip64: %s", err.message);
    check_read_back("zip64", pz, c.e, c.n);
    CHECK(file_has(pz, "PK\x06\x06", 4) && file_has(pz, "PK\x06\x07", 4), "zip64: ZIP64 end records");

    mc_torchsave_params np = {"model", 0};
    const char *pn = tpath("named.pt");
    CHECK(mc_torchsave_write(pn, c.e, c.n, &np, &err) == MC_OK, "write named: %s", err.message);
    check_read_back("named", pn, c.e, c.n);
    CHECK(file_has(pn, "model/data.pkl", 14), "named: model/ entries");
    case_free(&c);

    /* 2,500 tensors: several SETITEMS batches, memo reuse */
    size_t nm = 2500;
    mc_st_entry *e = calloc(nm, sizeof *e);
    char (*names)[32] = calloc(nm, sizeof *names);
    float *vals = malloc(nm * 3 * sizeof(float));
    for (size_t i = 0; i < nm * 3; i++) vals[i] = (float)i * 0.25f - 100.0f;
    for (size_t i = 0; i < nm; i++) {
        snprintf(names[i], sizeof names[i], "layer.%zu.w", i);
        e[i] = (mc_st_entry){names[i], MC_DTYPE_F32, 1, {(int64_t)(i % 3 + 1)}, vals + 3 * i};
    }
    const char *pm = tpath("many.pt");
    CHECK(mc_torchsave_write(pm, e, nm, NULL, &err) == MC_OK, "write many: %s", err.message);
    check_read_back("many", pm, e, nm);
    free(e);
    free(names);
    free(vals);
}

/* One refused input: the status, and nothing written (no file, no temporary). */
static void refused(const char *label, const mc_st_entry *e, size_t n, const mc_torchsave_params *p,
                    mc_status want) {
    const char *path = tpath("refused.pt");
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_torchsave_write(path, e, n, p, &err);
    CHECK(st == want, "%s: status %d, expected %d (%s)", label, st, want, err.message);
    CHECK(err.message[0], "%s: no message", label);
    CHECK(!exists(path), "%s: a file was left", label);
    CHECK(temporaries(tmpdir) == 0, "%s: a temporary was left", label);
}

static void test_refusals(void) {
    static float x[4];
    mc_st_entry ok = {"x", MC_DTYPE_F32, 1, {4}, x};
    mc_st_entry e[2];
    refused("no tensors", &ok, 0, NULL, MC_ERR_INVALID_ARG);
    refused("NULL entries", NULL, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].name = NULL;
    refused("NULL name", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].name = "";
    refused("empty name", e, 1, NULL, MC_ERR_INVALID_ARG);
    char *longname = malloc(MC_TORCHSAVE_MAX_NAME + 2);
    memset(longname, 'a', MC_TORCHSAVE_MAX_NAME + 1);
    longname[MC_TORCHSAVE_MAX_NAME + 1] = 0;
    e[0] = ok, e[0].name = longname;
    refused("name too long", e, 1, NULL, MC_ERR_INVALID_ARG);
    longname[MC_TORCHSAVE_MAX_NAME] = 0; /* exactly the limit: fine */
    mc_error err;
    CHECK(mc_torchsave_write(tpath("longname.pt"), e, 1, NULL, &err) == MC_OK, "name at the limit: %s", err.message);
    check_read_back("longname", tpath("longname.pt"), e, 1);
    free(longname);
    static const char *bad_utf8[] = {"a\xff", "\xc0\xaf", "\xed\xa0\x80", "x\xe2\x82", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        e[0] = ok, e[0].name = bad_utf8[i];
        refused("name not UTF-8", e, 1, NULL, MC_ERR_INVALID_ARG);
    }
    e[0] = ok, e[1] = ok;
    refused("name twice", e, 2, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].dtype = MC_DTYPE_COUNT;
    refused("bad dtype", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].dtype = (mc_dtype)-1;
    refused("negative dtype", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].ndim = MC_MAX_DIMS + 1;
    refused("too many dims", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].ndim = -1;
    refused("negative ndim", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].shape[0] = -4;
    refused("negative dim", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = (mc_st_entry){"huge", MC_DTYPE_F32, 2, {(int64_t)1 << 40, (int64_t)1 << 40}, x};
    refused("elements overflow", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = (mc_st_entry){"huge", MC_DTYPE_F64, 1, {(int64_t)1 << 61}, x};
    refused("bytes overflow", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = (mc_st_entry){"huge", MC_DTYPE_F32, 3, {(int64_t)1 << 40, (int64_t)1 << 40, 0}, x};
    refused("strides overflow", e, 1, NULL, MC_ERR_INVALID_ARG);
    e[0] = ok, e[0].data = NULL;
    refused("no data", e, 1, NULL, MC_ERR_INVALID_ARG);
    static const char *bad_top[] = {"", "a/b", "..", ".", "sp ace"};
    for (size_t i = 0; i < sizeof bad_top / sizeof *bad_top; i++) {
        mc_torchsave_params p = {bad_top[i], 0};
        refused("bad folder name", &ok, 1, &p, MC_ERR_INVALID_ARG);
    }
    size_t nt = MC_TORCHSAVE_MAX_TENSORS + 1;
    mc_st_entry *many = calloc(nt, sizeof *many);
    for (size_t i = 0; i < nt; i++) many[i] = ok;
    refused("too many tensors", many, nt, NULL, MC_ERR_INVALID_ARG);
    free(many);

    /* I/O: no folder; a folder in the way of the rename (its temporary removed) */
    mc_error_clear(&err);
    CHECK(mc_torchsave_write("/nonexistent-mc-dir/x.pt", &ok, 1, NULL, &err) == MC_ERR_IO, "no folder: %s",
          err.message);
    const char *dir = tpath("adir");
    mkdir(dir, 0700);
    char inner[4300];
    snprintf(inner, sizeof inner, "%s/keep", dir);
    FILE *f = fopen(inner, "w");
    if (f) fclose(f);
    CHECK(mc_torchsave_write(dir, &ok, 1, NULL, &err) == MC_ERR_IO, "rename onto a folder: %s", err.message);
    CHECK(temporaries(tmpdir) == 0, "rename failure left a temporary");
    unlink(inner);
    rmdir(dir);

    /* an existing file: replaced by a complete write, untouched by a refused one */
    const char *p = tpath("existing.pt");
    f = fopen(p, "w");
    if (f) { fputs("old", f); fclose(f); }
    e[0] = ok, e[1] = ok;
    CHECK(mc_torchsave_write(p, e, 2, NULL, &err) == MC_ERR_INVALID_ARG, "refused over an existing file");
    size_t len = 0;
    char *s = slurp(p, &len);
    CHECK(s && len == 3 && !memcmp(s, "old", 3), "a refused write changed the existing file");
    free(s);
    CHECK(mc_torchsave_write(p, &ok, 1, NULL, &err) == MC_OK, "replace: %s", err.message);
    check_read_back("replaced", p, &ok, 1);
    CHECK(temporaries(tmpdir) == 0, "temporaries left");
}

/* ----------------------------------------------------- the reference state dict */

static mc_status load_config(const char *path, mc_config *cfg) {
    mc_error err;
    mc_status st = mc_config_load_file(path, cfg, &err);
    CHECK(st == MC_OK, "config %s: %s", path, err.message);
    return st;
}

static void test_state_dict(void) {
    mc_config cfg, vit_cfg;
    if (load_config(fixture("models/v1_mci_mct/config.json"), &cfg) ||
        load_config(fixture("models/v1_vit_causal/config.json"), &vit_cfg))
        return;
    mc_error err;
    mc_error_clear(&err);
    mc_checkpoint *ck = NULL;
    if (mc_checkpoint_open(fixture("models/v1_mci_mct/model.pt"), &ck, &err)) {
        CHECK(0, "%s", err.message);
        return;
    }
    mc_st_entry *e = NULL;
    size_t n = 0, left = 99;
    CHECK(mc_state_dict_reference(ck, &cfg, &e, &n, &left, &err) == MC_OK, "v1_mci_mct: %s", err.message);
    CHECK(n == mc_checkpoint_count(ck) && n == 407 && left == 0, "v1_mci_mct: %zu tensors, %zu left out", n, left);
    size_t order = 0;
    for (size_t i = 0; i < n; i++) order += strcmp(e[i].name, mc_checkpoint_tensor(ck, i)->name) != 0;
    CHECK(order == 0, "v1_mci_mct: %zu tensors out of order", order);

    /* a wrong config: a missing tensor */
    mc_st_entry *e2 = NULL;
    size_t n2 = 0;
    mc_status st = mc_state_dict_reference(ck, &vit_cfg, &e2, &n2, NULL, &err);
    CHECK(st == MC_ERR_MISSING_TENSOR && !e2 && !n2, "wrong config: status %d (%s)", st, err.message);

    /* an unexpected tensor beside the model's */
    mc_st_entry *x = calloc(n + 1, sizeof *x);
    memcpy(x, e, n * sizeof *x);
    static float junk[3];
    x[n] = (mc_st_entry){"image_encoder.junk", MC_DTYPE_F32, 1, {3}, junk};
    CHECK(mc_safetensors_write(tpath("junk.safetensors"), x, n + 1, NULL, 0, &err) == MC_OK, "%s", err.message);
    mc_checkpoint *cj = NULL;
    if (mc_checkpoint_open(tpath("junk.safetensors"), &cj, &err) == MC_OK) {
        st = mc_state_dict_reference(cj, &cfg, &e2, &n2, NULL, &err);
        CHECK(st == MC_ERR_UNEXPECTED_TENSOR && strstr(err.message, "image_encoder.junk"),
              "unexpected tensor: status %d (%s)", st, err.message);
        mc_checkpoint_close(cj);
    }
    /* a folded 'convert' file */
    mc_meta_kv folded = {"mobileclip.layout", "folded"};
    CHECK(mc_safetensors_write(tpath("folded.safetensors"), x, n, &folded, 1, &err) == MC_OK, "%s", err.message);
    if (mc_checkpoint_open(tpath("folded.safetensors"), &cj, &err) == MC_OK) {
        st = mc_state_dict_reference(cj, &cfg, &e2, &n2, NULL, &err);
        CHECK(st == MC_ERR_UNSUPPORTED && strstr(err.message, "folded"), "folded: status %d (%s)", st, err.message);
        mc_checkpoint_close(cj);
    }
    free(x);
    free(e);
    mc_checkpoint_close(ck);

    /* the reference's re-parameterised model */
    if (mc_checkpoint_open(fixture("models/v1_mci_mct/model_reparameterized.pt"), &ck, &err) == MC_OK) {
        st = mc_state_dict_reference(ck, &cfg, &e2, &n2, NULL, &err);
        CHECK(st == MC_ERR_UNSUPPORTED && strstr(err.message, "reparam"), "reparameterized: status %d (%s)", st,
              err.message);
        mc_checkpoint_close(ck);
    } else {
        CHECK(0, "%s", err.message);
    }
    st = mc_state_dict_save_pt(fixture("models/v1_mci_mct/model_reparameterized.pt"), &cfg, tpath("r.pt"),
                               MC_DTYPE_F32, NULL, NULL, &err);
    CHECK(st == MC_ERR_UNSUPPORTED && !exists(tpath("r.pt")), "save_pt of a re-parameterised model: %d", st);
    st = mc_state_dict_save_pt(fixture("models/v1_mci_mct/model.pt"), &cfg, tpath("r.pt"), MC_DTYPE_F64, NULL,
                               NULL, &err);
    CHECK(st == MC_ERR_INVALID_ARG && !exists(tpath("r.pt")), "save_pt to f64: %d", st);

    /* the CLI refuses the same */
    CHECK(run_cli("convert %s --config %s --format pt -o %s", fixture("models/v1_mci_mct/model_reparameterized.pt"),
                  fixture("models/v1_mci_mct/config.json"), tpath("cli_r.pt")) != 0 &&
              stderr_has("re-parameterised") && !exists(tpath("cli_r.pt")),
          "CLI: a re-parameterised model is refused");
    CHECK(run_cli("convert %s --config %s --format pt -o %s", tpath("folded.safetensors"),
                  fixture("models/v1_mci_mct/config.json"), tpath("cli_f.pt")) != 0 &&
              stderr_has("folded") && !exists(tpath("cli_f.pt")),
          "CLI: a folded file is refused");
    CHECK(run_cli("convert %s --format torchscript -o %s", fixture("models/v1_mci_mct"), tpath("cli_x.pt")) != 0 &&
              stderr_has("--format") && !exists(tpath("cli_x.pt")),
          "CLI: an unknown --format is refused");
}

/* A trainer's state saved as a training run saves it, converted. */
static void test_training_state(void) {
    mc_error err;
    mc_error_clear(&err);
    const char *cfg_path = fixture("models/train_s0_tiny/config.json");
    mc_train_config tcfg;
    mc_checkpoint *init = NULL;
    if (mc_train_config_load(cfg_path, &tcfg, &err) ||
        mc_checkpoint_open(fixture("models/train_s0_tiny/init.pt"), &init, &err)) {
        CHECK(0, "train_s0_tiny: %s", err.message);
        mc_checkpoint_close(init);
        return;
    }
    mc_dr_loss_params lp = {0};
    lp.n_teachers = 1;
    lp.teacher_dims[0] = 16;
    lp.teacher_scales[0] = 100.0f;
    mc_adamw_params op = mc_adamw_default_params();
    mc_trainer *t = NULL;
    mc_status st = mc_trainer_new(&tcfg, init, fixture("models/train_s0_tiny/init.pt"), &lp, &op, &t, &err);
    CHECK(st == MC_OK, "trainer: %s", err.message);
    mc_checkpoint_close(init);
    if (st != MC_OK) return;
    /* weights, moments and counters unlike init.pt's */
    size_t np = mc_trainer_count(t), n_moments = 0;
    for (size_t i = 0; i < np; i++) {
        mc_tparam *p = mc_trainer_param(t, i);
        if (p->is_counter) { p->count = 5 + (int64_t)i; continue; }
        for (size_t k = 0; k < p->n; k++) p->w[k] += 0.001f * (float)((k + i) % 7) - 0.003f;
        if (p->m) {
            for (size_t k = 0; k < p->n; k++) p->m[k] = 1.0f + (float)k, p->v[k] = 2.0f;
            n_moments += 2;
        }
    }
    mc_trainer_set_step(t, 3);
    const char *raw = tpath("state_raw.safetensors"), *state = tpath("state.safetensors");
    CHECK(mc_trainer_save(t, raw, &err) == MC_OK, "save: %s", err.message);
    /* the training run's file: the same, with the model config in its metadata */
    char *cfg_text = NULL;
    size_t cfg_len = 0;
    mc_checkpoint *ck = NULL;
    if (mc_file_read_all(cfg_path, 1 << 20, &cfg_text, &cfg_len, &err) || mc_checkpoint_open(raw, &ck, &err)) {
        CHECK(0, "%s", err.message);
        free(cfg_text);
        mc_trainer_free(t);
        return;
    }
    size_t nt = mc_checkpoint_count(ck);
    mc_st_entry *e = calloc(nt, sizeof *e);
    for (size_t i = 0; i < nt; i++) {
        const mc_tensor_info *ti = mc_checkpoint_tensor(ck, i);
        e[i] = (mc_st_entry){ti->name, ti->dtype, ti->ndim, {0}, ti->data};
        memcpy(e[i].shape, ti->shape, sizeof e[i].shape);
    }
    mc_meta_kv meta[3] = {{"step", "3"}, {"format", "mobileclip.c training state"}, {"mobileclip.config", cfg_text}};
    CHECK(mc_safetensors_write(state, e, nt, meta, 3, &err) == MC_OK, "%s", err.message);
    free(e);
    mc_checkpoint_close(ck);
    free(cfg_text);
    CHECK(nt == np + n_moments, "state file: %zu tensors, expected %zu", nt, np + n_moments);

    mc_config cfg;
    st = mc_config_resolve(state, NULL, NULL, &cfg, NULL, 0, &err);
    CHECK(st == MC_OK, "config from the state's metadata: %s", err.message);
    for (int half = 0; half < 2 && st == MC_OK; half++) {
        const char *out = tpath(half ? "state16.pt" : "state.pt");
        size_t nw = 0, nl = 0;
        st = mc_state_dict_save_pt(state, &cfg, out, half ? MC_DTYPE_F16 : MC_DTYPE_F32, &nw, &nl, &err);
        CHECK(st == MC_OK, "convert the training state: %s", err.message);
        CHECK(nw == np && nl == n_moments, "%zu written (expected %zu), %zu left out (expected %zu)", nw, np, nl,
              n_moments);
        if (st != MC_OK || mc_checkpoint_open(out, &ck, &err) != MC_OK) { CHECK(0, "%s", err.message); break; }
        CHECK(mc_checkpoint_count(ck) == np, "read back %zu tensors", mc_checkpoint_count(ck));
        size_t bad = 0;
        for (size_t i = 0; i < np && i < mc_checkpoint_count(ck); i++) {
            mc_tparam *p = mc_trainer_param(t, i);
            const mc_tensor_info *ti = mc_checkpoint_tensor(ck, i);
            int ok = !strcmp(ti->name, p->name) && ti->ndim == p->ndim && !strstr(ti->name, "optim.");
            for (int d = 0; ok && d < p->ndim; d++) ok = ti->shape[d] == p->shape[d];
            if (ok && p->is_counter) {
                ok = ti->dtype == MC_DTYPE_I64 && !memcmp(ti->data, &p->count, 8);
            } else if (ok && !half) {
                ok = ti->dtype == MC_DTYPE_F32 && !memcmp(ti->data, p->w, p->n * sizeof(float));
            } else if (ok) {
                ok = ti->dtype == MC_DTYPE_F16;
                for (size_t k = 0; ok && k < p->n; k++) ok = ((const uint16_t *)ti->data)[k] == mc_f32_to_f16(p->w[k]);
            }
            if (!ok && bad++ < 3) fprintf(stderr, "state%s: tensor '%s' differs\n", half ? " f16" : "", p->name);
        }
        CHECK(bad == 0, "training state%s: %zu tensors differ from the trainer's", half ? " (f16)" : "", bad);
        const mc_tensor_info *ls = mc_checkpoint_find(ck, "logit_scale");
        CHECK(ls && ls->ndim == 0, "logit_scale stays 0-d");
        mc_checkpoint_close(ck);
    }

    /* the CLI: the same bytes; the config from --config when the file has none */
    CHECK(run_cli("convert %s -o %s", state, tpath("cli_state.pt")) == 0 && stderr_has("left out"),
          "CLI convert of the training state (.pt output means --format pt)");
    CHECK(same_file(tpath("cli_state.pt"), tpath("state.pt")), "CLI and library write the same bytes");
    CHECK(run_cli("convert %s --format pt -o %s", raw, tpath("cli_raw.pt")) != 0 && !exists(tpath("cli_raw.pt")),
          "CLI: a state without a config is refused");
    CHECK(run_cli("convert %s --config %s --format pt -o %s", raw, cfg_path, tpath("cli_raw.pt")) == 0 &&
              same_file(tpath("cli_raw.pt"), tpath("state.pt")),
          "CLI: a state with --config");
    mc_trainer_free(t);
}

/* ------------------------------------------------------------- cases for torch */

static const char *torch_dtype(mc_dtype d) {
    static const char *const names[MC_DTYPE_COUNT] = {
        [MC_DTYPE_F32] = "float32", [MC_DTYPE_F16] = "float16", [MC_DTYPE_BF16] = "bfloat16",
        [MC_DTYPE_F64] = "float64", [MC_DTYPE_I64] = "int64",   [MC_DTYPE_I32] = "int32",
        [MC_DTYPE_I16] = "int16",   [MC_DTYPE_I8] = "int8",     [MC_DTYPE_U8] = "uint8",
        [MC_DTYPE_BOOL] = "bool"};
    return names[d];
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void manifest_file(FILE *f, const char *file, int torch_reads, const wcase *c, int first) {
    fprintf(f, "%s{\"file\": \"%s\", \"torch\": %s, \"tensors\": [", first ? "" : ", ", file,
            torch_reads ? "true" : "false");
    for (size_t i = 0; i < c->n; i++) {
        const mc_st_entry *e = &c->e[i];
        int64_t st[MC_MAX_DIMS];
        strides(e, st);
        char hex[65];
        mc_sha256_hex(e->data ? e->data : "", nbytes_of(e), hex);
        fprintf(f, "%s{\"name\": ", i ? ", " : "");
        json_str(f, e->name);
        fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", torch_dtype(e->dtype));
        for (int d = 0; d < e->ndim; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)e->shape[d]);
        fprintf(f, "], \"stride\": [");
        for (int d = 0; d < e->ndim; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)st[d]);
        fprintf(f, "], \"sha256\": \"%s\"}", hex);
    }
    fprintf(f, "]}");
}

static int write_cases(const char *dir) {
    wcase c;
    kinds(&c);
    char path[4200];
    mc_error err;
    mc_torchsave_params zp = {NULL, 100};
    snprintf(path, sizeof path, "%s/kinds.pt", dir);
    int rc = mc_torchsave_write(path, c.e, c.n, NULL, &err) != MC_OK;
    snprintf(path, sizeof path, "%s/zip64.pt", dir);
    rc |= mc_torchsave_write(path, c.e, c.n, &zp, &err) != MC_OK;
    snprintf(path, sizeof path, "%s/cases.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || rc) {
        fprintf(stderr, "test_torchsave: cannot write the cases into %s\n", dir);
        if (f) fclose(f);
        case_free(&c);
        return 1;
    }
    /* zip64.pt: the ZIP64 fields are forced on a small file, where an offset
     * field of 0xFFFFFFFF points past its end: PyTorch's reader (miniz)
     * checks that before reading the ZIP64 field, so only zipfile reads it */
    fprintf(f, "{\"files\": [");
    manifest_file(f, "kinds.pt", 1, &c, 1);
    manifest_file(f, "zip64.pt", 0, &c, 0);
    fprintf(f, "]}\n");
    case_free(&c);
    return fclose(f) != 0;
}

/* mc_temp_name / mc_remove_stale_temps: the temporaries of a writer that no
 * longer runs are removed, a running one's (this process, pid 1) and other
 * files are kept. */
static void test_stale_temps(void) {
    pid_t child = fork();
    if (child == 0) _exit(0);
    CHECK(child > 0, "fork");
    if (child <= 0) return;
    waitpid(child, NULL, 0);   /* its pid now names no process */
    char dest[4200], p[4300];
    snprintf(dest, sizeof dest, "%s/stale.safetensors", tmpdir);
    const char *fmt[] = {"%s.tmp-%ld-3", "%s.part-%ld-Ab12Cd", "%s.tmp-%ld"};   /* the dead writer's */
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, fmt[i], dest, (long)child);
        fclose(fopen(p, "w"));
    }
    const char *keep[] = {".tmp-1-0", ".part-1-xyz", ".tmp-x-1", ".tmp", ".tmpl-5"};   /* a live pid or not ours */
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s%s", dest, keep[i]);
        fclose(fopen(p, "w"));
    }
    snprintf(p, sizeof p, "%s.tmp-%ld-0", dest, (long)getpid());   /* this process's own */
    fclose(fopen(p, "w"));
    char tmp[4400];
    CHECK(mc_temp_name(dest, tmp, sizeof tmp) == 0, "temp name");
    char want[4400];
    snprintf(want, sizeof want, "%s.tmp-%ld-", dest, (long)getpid());
    CHECK(!strncmp(tmp, want, strlen(want)), "temp name '%s'", tmp);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, fmt[i], dest, (long)child);
        CHECK(access(p, F_OK) != 0, "the dead writer's %s was kept", p);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s%s", dest, keep[i]);
        CHECK(access(p, F_OK) == 0, "%s was removed", p);
        remove(p);
    }
    snprintf(p, sizeof p, "%s.tmp-%ld-0", dest, (long)getpid());
    CHECK(access(p, F_OK) == 0, "this process's own temporary was removed");
    remove(p);
    CHECK(mc_remove_stale_temps(dest) == 0, "nothing left to remove");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-cases")) return write_cases(argv[2]);
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_torchsave");
    }
    test_write_read();
    test_refusals();
    test_state_dict();
    test_training_state();
    test_stale_temps();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("test_torchsave");
}
