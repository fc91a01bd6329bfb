/*
 * test_convert.c - 'mobileclip convert' folded export on every fixture model
 * (v1_*, oc_*): the CLI writes f32/f16/bf16 files in a temp folder; each
 * loads through mc_model_load by itself (config from the file's metadata),
 * holds fewer tensors and bytes than the original (no BatchNorm or branch
 * tensors), and gives the original model's embeddings (f32: within 1e-6 of
 * the original, 1e-4 of the reference) or the reference's within the
 * documented f16/bf16 bounds.  Also: re-exporting a folded model gives the
 * same tensors, the export of a model holding its weights pre-packed equals
 * that of one loaded with MC_PREPACK=0 byte for byte, --unfolded keeps the
 * original layout, an unknown layout is refused.  Prints sizes, max-abs errors and load times (not checked).
 */
#include "core/core.h"
#include "io/config.h"
#include "model/model.h"
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BIN "build/mobileclip"
/* bounds on L2-normalised embeddings vs the reference (docs/cli.md) */
#define TOL_F32_ORIG 1e-6f
#define TOL_F32_REF 1e-4f
#define TOL_F16 5e-3f
#define TOL_BF16 3e-2f

static char tmpdir[] = "/tmp/mc-test-convert-XXXXXX";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long long file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

static int run_convert(const char *model, const char *out, const char *extra) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "MOBILECLIP_OFFLINE=1 MOBILECLIP_NO_PROGRESS=1 %s convert '%s' -o '%s' %s >/dev/null 2>%s/stderr </dev/null",
             BIN, model, out, extra, tmpdir);
    int st = system(cmd);
    return st;
}

static mc_model *load(const char *path, double *secs) {
    mc_model_params mp = mc_model_default_params();
    mp.load_tokenizer = 0;
    mc_error err;
    mc_error_clear(&err);
    mc_model *m = NULL;
    double t0 = now_s();
    mc_status st = mc_model_load(path, &mp, &m, &err);
    if (secs) *secs = now_s() - t0;
    CHECK(st == MC_OK, "load %s: %s", path, err.message);
    return m;
}

/* Encodes the fixture's pixels and tokens (L2-normalised) into img / txt. */
static int encode(mc_model *m, const mc_tensor_info *px, const mc_tensor_info *tk, float *img, float *txt) {
    mc_context *ctx = NULL;
    mc_context_params cp = mc_context_default_params();
    if (mc_context_new(m, &cp, &ctx, NULL) != MC_OK) return 0;
    int n_txt = (int)tk->shape[0], L = (int)tk->shape[1];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_txt * L);
    const int64_t *t64 = tk->data;
    for (int i = 0; i < n_txt * L; i++) ids[i] = (int32_t)t64[i];
    int ok = mc_encode_image(ctx, px->data, (int)px->shape[0], 1, img) == MC_OK &&
             mc_encode_text(ctx, ids, n_txt, 1, txt) == MC_OK;
    free(ids);
    mc_context_free(ctx);
    return ok;
}

/* Names a folded file must not hold: BatchNorm statistics and train-time branches. */
static int is_unfolded_name(const char *n) {
    static const char *const bad[] = {"running_mean", "running_var", "num_batches_tracked", ".bn.", "rbr_conv",
                                      "rbr_scale", "rbr_skip", "conv_kxk", "conv_scale", ".identity.",
                                      "lkb_origin", "large_conv", "small_conv", "token_mixer.mixer",
                                      "token_mixer.norm", "layer_scale_1", "layer_scale_2", ".pe.", "pos_enc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strstr(n, bad[i])) return 1;
    return 0;
}

/* Exports m again and compares with the tensors of the file it was loaded from. */
static void check_reexport(mc_model *m, const char *path, const char *cs) {
    mc_st_entry *e = NULL;
    mc_meta_kv *meta = NULL;
    size_t n = 0, nm = 0;
    mc_error err;
    CHECK(mc_model_export(m, &e, &n, &meta, &nm, &err) == MC_OK, "%s: re-export: %s", cs, err.message);
    mc_checkpoint *ck = NULL;
    CHECK(mc_checkpoint_open(path, &ck, NULL) == MC_OK, "%s: reopen", cs);
    if (e && ck) {
        size_t same = 0;
        for (size_t i = 0; i < n; i++) {
            const mc_tensor_info *t = mc_checkpoint_find(ck, e[i].name);
            if (t && t->dtype == MC_DTYPE_F32 && !memcmp(t->data, e[i].data, t->nbytes)) same++;
        }
        CHECK(n == mc_checkpoint_count(ck) && same == n, "%s: re-export gives %zu of %zu tensors equal (file %zu)",
              cs, same, n, mc_checkpoint_count(ck));
    }
    mc_checkpoint_close(ck);
    free(e);
    free(meta);
}

/* A float32 model holds its GEMM weights only pre-packed (src/kernels/lowp.h); its
 * export unpacks them and must equal, byte for byte, the export of the same
 * checkpoint loaded with MC_PREPACK=0 (plain matrices). */
static void check_export_prepacked(mc_model *m, const char *dir, const char *cs) {
    setenv("MC_PREPACK", "0", 1);
    mc_model *plain = load(dir, NULL);
    unsetenv("MC_PREPACK");
    mc_st_entry *e1 = NULL, *e2 = NULL;
    mc_meta_kv *m1 = NULL, *m2 = NULL;
    size_t n1 = 0, n2 = 0, k1 = 0, k2 = 0;
    mc_error err;
    CHECK(m && mc_model_export(m, &e1, &n1, &m1, &k1, &err) == MC_OK, "%s: export (pre-packed)", cs);
    CHECK(plain && mc_model_export(plain, &e2, &n2, &m2, &k2, &err) == MC_OK, "%s: export (MC_PREPACK=0)", cs);
    size_t same = 0;
    for (size_t i = 0; i < n1 && n1 == n2; i++) {
        size_t bytes = 4;
        for (int d = 0; d < e1[i].ndim; d++) bytes *= (size_t)e1[i].shape[d];
        if (!strcmp(e1[i].name, e2[i].name) && e1[i].ndim == e2[i].ndim &&
            !memcmp(e1[i].shape, e2[i].shape, sizeof e1[i].shape) && !memcmp(e1[i].data, e2[i].data, bytes))
            same++;
    }
    CHECK(n1 > 0 && n1 == n2 && same == n1, "%s: pre-packed export has %zu of %zu tensors equal to MC_PREPACK=0's (%zu)",
          cs, same, n1, n2);
    free(e1), free(e2), free(m1), free(m2);
    mc_model_free(plain);
}

static void run_case(const char *cs) {
    char dir[2048], ex_path[2100], ckpt[4096], out[2100];
    snprintf(dir, sizeof dir, "%s", fixture("models/"));
    strncat(dir, cs, sizeof dir - strlen(dir) - 1);
    snprintf(ex_path, sizeof ex_path, "%s/expected.safetensors", dir);
    mc_checkpoint *ex = NULL;
    if (mc_checkpoint_open(ex_path, &ex, NULL) != MC_OK) {
        CHECK(0, "%s: no expected.safetensors", cs);
        return;
    }
    const mc_tensor_info *px = mc_checkpoint_find(ex, "pixels"), *tk = mc_checkpoint_find(ex, "tokens");
    const mc_tensor_info *ie = mc_checkpoint_find(ex, "image_embeddings"), *te = mc_checkpoint_find(ex, "text_embeddings");
    CHECK(px && tk && ie && te, "%s: expected.safetensors lacks pixels/tokens/embeddings", cs);
    if (!px || !tk || !ie || !te) { mc_checkpoint_close(ex); return; }
    size_t n_img = (size_t)px->shape[0], n_txt = (size_t)tk->shape[0], D = (size_t)ie->shape[1];
    float *oi = malloc(n_img * D * 4), *ot = malloc(n_txt * D * 4), *fi = malloc(n_img * D * 4),
          *ft = malloc(n_txt * D * 4);

    double t_orig = 0;
    mc_model *orig = load(dir, &t_orig);
    mc_model_info info;
    mc_model_get_info(orig, &info);
    int ok = orig && encode(orig, px, tk, oi, ot);
    CHECK(ok, "%s: original encode", cs);
    check_export_prepacked(orig, dir, cs);
    /* the original checkpoint's size and tensor count */
    mc_config cfg;
    long long orig_bytes = -1;
    size_t orig_tensors = 0, orig_unfolded = 0;
    if (mc_config_resolve(dir, NULL, NULL, &cfg, ckpt, sizeof ckpt, NULL) == MC_OK) {
        orig_bytes = file_size(ckpt);
        mc_checkpoint *ck = NULL;
        if (mc_checkpoint_open(ckpt, &ck, NULL) == MC_OK) orig_tensors = mc_checkpoint_count(ck);
        for (size_t i = 0; i < orig_tensors; i++) orig_unfolded += is_unfolded_name(mc_checkpoint_tensor(ck, i)->name);
        mc_checkpoint_close(ck);
    }
    /* best of 3 loads (timing only) */
    for (int r = 0; r < 2; r++) {
        double s;
        mc_model_free(load(dir, &s));
        if (s < t_orig) t_orig = s;
    }
    CHECK(orig_bytes > 0 && orig_tensors > 0, "%s: original checkpoint not found", cs);

    static const char *const dts[] = {"f32", "f16", "bf16"};
    for (int t = 0; t < 3 && ok; t++) {
        snprintf(out, sizeof out, "%s/%s_%s.safetensors", tmpdir, cs, dts[t]);
        char extra[64];
        snprintf(extra, sizeof extra, "--dtype %s", dts[t]);
        int rc = run_convert(dir, out, extra);
        CHECK(rc == 0, "%s: convert --dtype %s failed", cs, dts[t]);
        if (rc) continue;
        mc_checkpoint *ck = NULL;
        CHECK(mc_checkpoint_open(out, &ck, NULL) == MC_OK, "%s: converted file does not open", cs);
        if (!ck) continue;
        const char *layout = mc_checkpoint_metadata(ck, "mobileclip.layout");
        CHECK(layout && !strcmp(layout, "folded"), "%s: layout %s", cs, layout ? layout : "(none)");
        CHECK(mc_checkpoint_metadata(ck, "mobileclip.config") != NULL, "%s: no config in the metadata", cs);
        size_t n = mc_checkpoint_count(ck), bad = 0, wrong_dtype = 0;
        mc_dtype want = t == 0 ? MC_DTYPE_F32 : t == 1 ? MC_DTYPE_F16 : MC_DTYPE_BF16;
        for (size_t i = 0; i < n; i++) {
            const mc_tensor_info *ti = mc_checkpoint_tensor(ck, i);
            if (is_unfolded_name(ti->name)) {
                if (!bad) fprintf(stderr, "%s: unfolded tensor %s\n", cs, ti->name);
                bad++;
            }
            /* logit_scale (one scalar, exponentiated) stays float32 */
            if (ti->dtype != (strcmp(ti->name, "logit_scale") ? want : MC_DTYPE_F32)) wrong_dtype++;
        }
        mc_checkpoint_close(ck);
        CHECK(bad == 0 && wrong_dtype == 0, "%s %s: %zu unfolded tensors, %zu of another dtype", cs, dts[t], bad,
              wrong_dtype);
        long long bytes = file_size(out);
        /* a checkpoint with branches or BatchNorms to fold gets smaller; one without
         * (a patch-embedding ViT with OpenCLIP text) keeps its tensors, plus the metadata */
        if (orig_unfolded) {
            CHECK(n < orig_tensors, "%s: %zu tensors, original %zu", cs, n, orig_tensors);
            if (t == 0) CHECK(bytes < orig_bytes, "%s: f32 file %lld bytes, original %lld", cs, bytes, orig_bytes);
        } else {
            CHECK(n == orig_tensors, "%s: %zu tensors, original %zu (nothing to fold)", cs, n, orig_tensors);
            if (t == 0) CHECK(bytes < orig_bytes + 8192, "%s: f32 file %lld bytes, original %lld", cs, bytes, orig_bytes);
        }

        /* loads by itself (no config beside it) and embeds */
        double t_fold = 0;
        mc_model *fm = load(out, &t_fold);
        if (!fm) continue;
        for (int r = 0; r < 2 && t == 0; r++) {
            double s;
            mc_model_free(load(out, &s));
            if (s < t_fold) t_fold = s;
        }
        mc_model_info fi_info;
        mc_model_get_info(fm, &fi_info);
        CHECK(fi_info.embed_dim == info.embed_dim && fi_info.image_size == info.image_size &&
                  !strcmp(fi_info.family, info.family) &&
                  (orig_unfolded ? fi_info.n_params < info.n_params : fi_info.n_params == info.n_params) &&
                  fi_info.logit_scale == info.logit_scale,
              "%s %s: model info differs (params %lld vs %lld)", cs, dts[t], (long long)fi_info.n_params,
              (long long)info.n_params);
        int eok = encode(fm, px, tk, fi, ft);
        CHECK(eok, "%s %s: encode", cs, dts[t]);
        if (eok) {
            float d_orig = fmaxf(max_abs_diff(fi, oi, n_img * D), max_abs_diff(ft, ot, n_txt * D));
            float d_ref = fmaxf(max_abs_diff(fi, ie->data, n_img * D), max_abs_diff(ft, te->data, n_txt * D));
            float bound = t == 0 ? TOL_F32_REF : t == 1 ? TOL_F16 : TOL_BF16;
            if (t == 0) CHECK(d_orig <= TOL_F32_ORIG, "%s f32: embeddings differ from the original by %g", cs, d_orig);
            CHECK(d_ref <= bound, "%s %s: embeddings differ from the reference by %g (bound %g)", cs, dts[t], d_ref,
                  bound);
            printf("%-20s %-4s tensors %4zu (orig %4zu) bytes %9lld (orig %9lld) params %9lld (orig %9lld) "
                   "max-abs vs orig %.2e vs ref %.2e",
                   cs, dts[t], n, orig_tensors, bytes, orig_bytes, (long long)fi_info.n_params,
                   (long long)info.n_params, d_orig, d_ref);
            if (t == 0) printf("  load %.1f ms (orig %.1f ms)", t_fold * 1e3, t_orig * 1e3);
            printf("\n");
        }
        if (t == 0) check_reexport(fm, out, cs);
        mc_model_free(fm);
    }
    mc_model_free(orig);
    mc_checkpoint_close(ex);
    free(oi), free(ot), free(fi), free(ft);
}

/* --unfolded keeps the original tensors; a file with an unknown layout is refused. */
static void test_unfolded_and_layout(void) {
    const char *dir = fixture("models/v1_mci_mct");
    char out[2100];
    snprintf(out, sizeof out, "%s/unfolded.safetensors", tmpdir);
    CHECK(run_convert(dir, out, "--unfolded") == 0, "convert --unfolded");
    mc_checkpoint *ck = NULL;
    if (mc_checkpoint_open(out, &ck, NULL) == MC_OK) {
        const char *layout = mc_checkpoint_metadata(ck, "mobileclip.layout");
        CHECK(layout && !strcmp(layout, "original"), "--unfolded layout %s", layout ? layout : "(none)");
        CHECK(mc_checkpoint_find(ck, "image_encoder.model.patch_embed.0.rbr_conv.0.bn.running_mean") != NULL,
              "--unfolded lost the train-time branches");
        mc_checkpoint_close(ck);
        mc_model *m = load(out, NULL);   /* config from the metadata, layout original */
        mc_model_free(m);
    } else {
        CHECK(0, "--unfolded file does not open");
    }

    char bogus[2100];
    snprintf(bogus, sizeof bogus, "%s/bogus.safetensors", tmpdir);
    float one = 0.0f;
    mc_st_entry e = {.name = "logit_scale", .dtype = MC_DTYPE_F32, .ndim = 0, .data = &one};
    char *cfg = NULL;
    size_t len = 0;
    CHECK(mc_file_read_all(fixture("models/v1_mci_mct/config.json"), 1 << 20, &cfg, &len, NULL) == MC_OK, "config");
    mc_meta_kv kv[2] = {{"mobileclip.layout", "sideways"}, {"mobileclip.config", cfg}};
    CHECK(mc_safetensors_write(bogus, &e, 1, kv, 2, NULL) == MC_OK, "write bogus file");
    mc_model_params mp = mc_model_default_params();
    mp.load_tokenizer = 0;
    mc_model *m = NULL;
    mc_error err;
    CHECK(mc_model_load(bogus, &mp, &m, &err) == MC_ERR_UNSUPPORTED && strstr(err.message, "sideways"),
          "unknown layout: %s", err.message);
    mc_model_free(m);
    free(cfg);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    CHECK(access(BIN, X_OK) == 0, "%s not built (run from the project root)", BIN);
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    setenv("MOBILECLIP_VOCAB", fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), 1);
    DIR *d = opendir(fixture("models"));
    CHECK(d != NULL, "no fixture models folder");
    char *names[64];
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) && n < 64)
        if (!strncmp(de->d_name, "v1_", 3) || !strncmp(de->d_name, "oc_", 3)) names[n++] = strdup(de->d_name);
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    CHECK(n >= 10, "only %d fixture models (v1_*, oc_*)", n);
    for (int i = 0; i < n; i++) {
        run_case(names[i]);
        free(names[i]);
    }
    test_unfolded_and_layout();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    return test_summary("test_convert");
}
