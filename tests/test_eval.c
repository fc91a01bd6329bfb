/*
 * test_eval.c - the evaluation layer (src/eval): ranks against a brute-force
 * double-precision count (ties by index, near ties that float32 cannot tell
 * apart, non-finite scores, several row blocks), open_clip's rank metrics
 * (odd and even medians), template filling and template files, the
 * ImageFolder scan (sorted classes, names, recursion, what is ignored, every
 * error), the JSON line, and both evaluations end to end on a fixture model:
 * the figures must equal those counted here from images and captions
 * encoded one by one, for any batch size and decode-thread count, with
 * undecodable images and incomplete samples skipped and counted (or errors
 * with strict), progress reported and cancellation honoured.
 * The independent oracle through the CLI is tests/test_eval.py.
 */
#include "test.h"

#include "core/json.h"
#include "eval/eval.h"

#include <sys/stat.h>
#include <unistd.h>

#define MODEL "models/oc_mobileclip_b"

static char tmp[] = "/tmp/mc-test-eval-XXXXXX";

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { CHECK(0, "cannot create %s", path); return; }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static void copy_file(const char *from, const char *to) {
    char *d = NULL;
    size_t n = 0;
    if (mc_file_read_all(from, (size_t)1 << 26, &d, &n, NULL) != MC_OK) { CHECK(0, "cannot read %s", from); return; }
    write_file(to, d, n);
    free(d);
}

static const char *tpath(const char *rel) {
    static char bufs[8][4200];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", tmp, rel);
    return b;
}

static void mkdir_t(const char *rel) { mkdir(tpath(rel), 0755); }

/* ================================================================ ranks */

/* 1 + keys scoring higher in double + keys of lower index scoring the same */
static int64_t brute_rank(const float *q, const float *keys, int64_t nk, int d, int64_t t) {
    double st = 0;
    for (int k = 0; k < d; k++) st += (double)q[k] * keys[t * d + k];
    int64_t above = 0;
    for (int64_t j = 0; j < nk; j++) {
        if (j == t) continue;
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)q[k] * keys[j * d + k];
        if (s > st || (s == st && j < t)) above++;
    }
    return 1 + above;
}

static void test_ranks(void) {
    mc_error err;
    int64_t r[4];
    /* ties: keys 0 and 1 are the same vector; key 1 ranks after key 0 */
    float keys[] = {1, 0, 0, 1, 0, 0, 0, 1, 0};
    float q[] = {1, 0, 0, 1, 0, 0, 1, 0, 0};
    int64_t tg[] = {0, 1, 2};
    CHECK(mc_eval_ranks(q, 3, keys, 3, 3, tg, 1, r, &err) == MC_OK, "ranks: %s", err.message);
    CHECK(r[0] == 1 && r[1] == 2 && r[2] == 3, "tie ranks %lld %lld %lld (want 1 2 3)", (long long)r[0],
          (long long)r[1], (long long)r[2]);
    /* a near tie float32 cannot see: (1,1).(1,0) = 1 and (1,1).(1,2^-30) =
     * 1 + 2^-30, both 1.0f; exactly, key 1 is above key 0 */
    float nk[] = {1, 0, 1, 0x1p-30f};
    float nq[] = {1, 1, 1, 1};
    int64_t nt[] = {1, 0};
    CHECK(mc_eval_ranks(nq, 2, nk, 2, 2, nt, 1, r, &err) == MC_OK, "near tie: %s", err.message);
    CHECK(r[0] == 1 && r[1] == 2, "near tie ranks %lld %lld (want 1 2)", (long long)r[0], (long long)r[1]);
    /* identity targets */
    CHECK(mc_eval_ranks(nq, 2, nk, 2, 2, NULL, 1, r, &err) == MC_OK && r[0] == 2 && r[1] == 1,
          "identity targets: %lld %lld", (long long)r[0], (long long)r[1]);
    /* a target scoring NaN ranks last; a NaN elsewhere never ranks above */
    float fk[] = {NAN, 0, 1, 0, 0.5f, 0};
    float fq[] = {1, 0, 1, 0};
    int64_t ft[] = {0, 2};
    CHECK(mc_eval_ranks(fq, 2, fk, 3, 2, ft, 1, r, &err) == MC_OK && r[0] == 3 && r[1] == 2,
          "non-finite: %lld %lld (want 3 2)", (long long)r[0], (long long)r[1]);
    /* errors */
    int64_t bad[] = {3};
    CHECK(mc_eval_ranks(q, 1, keys, 3, 3, bad, 1, r, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "targets key 3"),
          "target out of range: %s", err.message);
    CHECK(mc_eval_ranks(q, 3, keys, 2, 3, NULL, 1, r, &err) == MC_ERR_INVALID_ARG, "more queries than keys");
    CHECK(mc_eval_ranks(q, 1, keys, 0, 3, NULL, 1, r, &err) == MC_ERR_INVALID_ARG, "no keys");

    /* random vectors, several row blocks (2^24 / nk rows each), against brute force */
    const int d = 8;
    const int64_t nkeys = 17000, nqs = 1100;
    test_seed(77);
    float *K = test_rand_buf((size_t)nkeys * d, 1), *Q = test_rand_buf((size_t)nqs * d, 1);
    /* a few exact duplicates of the target among the keys: ties */
    for (int k = 0; k < d; k++) K[(size_t)5 * d + k] = K[(size_t)900 * d + k];
    int64_t *t = malloc(nqs * sizeof *t), *rk = malloc(nqs * sizeof *rk);
    for (int64_t i = 0; i < nqs; i++) t[i] = (i * 7919) % nkeys;
    t[3] = 900;
    t[4] = 5;
    CHECK(mc_eval_ranks(Q, nqs, K, nkeys, d, t, 2, rk, &err) == MC_OK, "random ranks: %s", err.message);
    int wrong = 0;
    for (int64_t i = 0; i < nqs; i++) {
        int64_t b = brute_rank(Q + i * d, K, nkeys, d, t[i]);
        if (b != rk[i] && wrong++ < 3) fprintf(stderr, "query %lld: rank %lld, brute force %lld\n", (long long)i, (long long)rk[i], (long long)b);
    }
    CHECK(wrong == 0, "%d of %lld random ranks differ from brute force", wrong, (long long)nqs);
    free(K);
    free(Q);
    free(t);
    free(rk);
}

static void test_metrics(void) {
    mc_rank_metrics m;
    mc_error err;
    int64_t odd[] = {11, 1, 3, 10, 2};
    CHECK(mc_eval_rank_metrics(odd, 5, &m, &err) == MC_OK, "metrics: %s", err.message);
    CHECK(m.mean_rank == 27.0 / 5 && m.median_rank == 3 && m.r1 == 0.2 && m.r5 == 0.6 && m.r10 == 0.8,
          "odd: mean %g median %g R@1 %g R@5 %g R@10 %g", m.mean_rank, m.median_rank, m.r1, m.r5, m.r10);
    CHECK(odd[0] == 11 && odd[4] == 2, "metrics changed its input");
    int64_t even1[] = {1, 2, 4, 7}, even2[] = {6, 3, 2, 1};
    CHECK(mc_eval_rank_metrics(even1, 4, &m, &err) == MC_OK && m.median_rank == 3, "even median of 2,4: %g", m.median_rank);
    CHECK(mc_eval_rank_metrics(even2, 4, &m, &err) == MC_OK && m.median_rank == 2, "even median of 2,3 (floor): %g", m.median_rank);
    CHECK(m.mean_rank == 3 && m.r1 == 0.25 && m.r5 == 0.75 && m.r10 == 1, "even: mean %g R@1 %g R@5 %g", m.mean_rank, m.r1, m.r5);
    CHECK(mc_eval_rank_metrics(odd, 0, &m, &err) == MC_ERR_INVALID_ARG, "no ranks must fail");
}

/* ============================================================ templates */

static void test_templates(void) {
    char *s = mc_fill_template("a {} and {c}, not {x} or {", "tabby cat");
    CHECK(s && !strcmp(s, "a tabby cat and tabby cat, not {x} or {"), "fill: %s", s ? s : "(null)");
    free(s);
    size_t n;
    const char *const *dt = mc_eval_default_templates(&n);
    CHECK(n >= 3, "default templates: %zu", n);
    for (size_t i = 0; i < n; i++) CHECK(strstr(dt[i], "{}") != NULL, "default template '%s' has no {}", dt[i]);

    char **t;
    mc_error err;
    write_text(tpath("t_ok.txt"), "\n  a photo of a {}.\r\n\nart of the {c}  \n");
    CHECK(mc_eval_templates_load(tpath("t_ok.txt"), &t, &n, &err) == MC_OK, "templates: %s", err.message);
    CHECK(n == 2 && !strcmp(t[0], "a photo of a {}.") && !strcmp(t[1], "art of the {c}"), "templates read: %zu", n);
    mc_eval_strings_free(t, n);
    write_text(tpath("t_bad.txt"), "a photo of a {}.\na photo of nothing\n");
    CHECK(mc_eval_templates_load(tpath("t_bad.txt"), &t, &n, &err) == MC_ERR_FORMAT &&
              strstr(err.message, "template 2") && strstr(err.message, "a photo of nothing"),
          "template without placeholder: %s", err.message);
    write_text(tpath("t_empty.txt"), "\n \n");
    CHECK(mc_eval_templates_load(tpath("t_empty.txt"), &t, &n, &err) == MC_ERR_FORMAT && strstr(err.message, "no templates"),
          "empty templates: %s", err.message);
    CHECK(mc_eval_templates_load(tpath("no_such.txt"), &t, &n, &err) == MC_ERR_IO && strstr(err.message, "no_such.txt"),
          "missing templates: %s", err.message);
}

/* ========================================================== ImageFolder */

static void test_imagefolder(void) {
    mc_imagefolder f;
    mc_error err;
    const char *png = fixture("images/chelsea.png");
    mkdir_t("f1");
    mkdir_t("f1/tabby_cat");
    mkdir_t("f1/tabby_cat/deeper");
    mkdir_t("f1/tabby_cat/deeper/deepest");
    mkdir_t("f1/a_dog");
    mkdir_t("f1/.hidden");
    copy_file(png, tpath("f1/tabby_cat/z.png"));
    copy_file(png, tpath("f1/tabby_cat/deeper/deepest/b.PNG"));
    copy_file(png, tpath("f1/tabby_cat/.dot.png"));
    write_text(tpath("f1/tabby_cat/notes.txt"), "not an image");
    copy_file(png, tpath("f1/a_dog/x.jpg"));          /* a PNG named .jpg: listed (decoding decides) */
    copy_file(png, tpath("f1/.hidden/h.png"));
    copy_file(png, tpath("f1/loose.png"));            /* a file in the root: not a class */
    CHECK(mc_imagefolder_scan(tpath("f1"), NULL, &f, &err) == MC_OK, "scan: %s", err.message);
    CHECK(f.n_classes == 2 && !strcmp(f.class_dirs[0], "a_dog") && !strcmp(f.class_dirs[1], "tabby_cat"),
          "classes: %zu", f.n_classes);
    CHECK(f.n_classes == 2 && !strcmp(f.class_names[0], "a dog") && !strcmp(f.class_names[1], "tabby cat"),
          "class names from folders");
    CHECK(f.n_images == 3, "images: %zu (want 3)", f.n_images);
    if (f.n_images == 3) {
        CHECK(f.labels[0] == 0 && f.labels[1] == 1 && f.labels[2] == 1, "labels %lld %lld %lld",
              (long long)f.labels[0], (long long)f.labels[1], (long long)f.labels[2]);
        CHECK(strstr(f.paths[1], "deeper/deepest/b.PNG") && strstr(f.paths[2], "tabby_cat/z.png"),
              "image order: %s, %s", f.paths[1], f.paths[2]);
    }
    mc_imagefolder_free(&f);

    write_text(tpath("names2.txt"), "good dog\n\n  cat  \n");
    CHECK(mc_imagefolder_scan(tpath("f1"), tpath("names2.txt"), &f, &err) == MC_OK, "scan with names: %s", err.message);
    CHECK(f.n_classes == 2 && !strcmp(f.class_names[0], "good dog") && !strcmp(f.class_names[1], "cat"),
          "class names from file");
    mc_imagefolder_free(&f);
    write_text(tpath("names3.txt"), "dog\ncat\nbird\n");
    CHECK(mc_imagefolder_scan(tpath("f1"), tpath("names3.txt"), &f, &err) == MC_ERR_INVALID_ARG &&
              strstr(err.message, "3 class names") && strstr(err.message, "2 class folders"),
          "too many class names: %s", err.message);
    write_text(tpath("names1.txt"), "dog\n");
    CHECK(mc_imagefolder_scan(tpath("f1"), tpath("names1.txt"), &f, &err) == MC_ERR_INVALID_ARG &&
              strstr(err.message, "1 class names"),
          "too few class names: %s", err.message);
    CHECK(mc_imagefolder_scan(tpath("f1"), tpath("nonames.txt"), &f, &err) == MC_ERR_IO && strstr(err.message, "nonames.txt"),
          "missing class-name file: %s", err.message);

    CHECK(mc_imagefolder_scan(tpath("no_such_dir"), NULL, &f, &err) == MC_ERR_NOT_FOUND && strstr(err.message, "no such folder"),
          "missing root: %s", err.message);
    CHECK(mc_imagefolder_scan(tpath("names1.txt"), NULL, &f, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "not a folder"),
          "root is a file: %s", err.message);
    mkdir_t("f2");
    CHECK(mc_imagefolder_scan(tpath("f2"), NULL, &f, &err) == MC_ERR_NOT_FOUND && strstr(err.message, "no class folders"),
          "no classes: %s", err.message);
    mkdir_t("f2/empty_class");
    mkdir_t("f2/full");
    copy_file(png, tpath("f2/full/a.png"));
    write_text(tpath("f2/empty_class/readme.txt"), "x");
    CHECK(mc_imagefolder_scan(tpath("f2"), NULL, &f, &err) == MC_ERR_NOT_FOUND && strstr(err.message, "'empty_class'") &&
              strstr(err.message, "no images"),
          "empty class: %s", err.message);
}

/* ================================================================= JSON */

static void test_json(void) {
    mc_eval_results r;
    mc_eval_results_init(&r);
    char *s;
    mc_error err;
    CHECK(mc_eval_results_json(&r, &s, &err) == MC_OK && !strcmp(s, "{}"), "empty results: %s", s);
    free(s);
    r.model = "dir/\"quoted\"\\m";
    r.epoch = 3;
    r.zeroshot_name = "imagenetv2";
    r.zeroshot.done = 1;
    r.zeroshot.top1 = 1.0 / 3;
    r.zeroshot.top5 = 1.0;
    r.zeroshot.n_images = 12;
    r.zeroshot.n_classes = 7;
    r.zeroshot.n_templates = 2;
    r.zeroshot.n_skipped = 1;
    r.retrieval.done = 1;
    r.retrieval.n_samples = 10;
    r.retrieval.image_to_text = (mc_rank_metrics){5.5, 4, 0.1, 0.5, 1};
    r.retrieval.text_to_image = (mc_rank_metrics){12345.25, 7, 0.3, 0.7, 0.9};
    CHECK(mc_eval_results_json(&r, &s, &err) == MC_OK, "json: %s", err.message);
    CHECK(!strncmp(s, "{\"model\": \"dir/\\\"quoted\\\"\\\\m\", \"epoch\": 3, \"imagenetv2-zeroshot-val-top1\": 0.3333333333333333, "
                      "\"imagenetv2-zeroshot-val-top5\": 1.0, ", strlen("{\"model\": \"dir/\\\"quoted\\\"\\\\m\", \"epoch\": 3, "
                      "\"imagenetv2-zeroshot-val-top1\": 0.3333333333333333, \"imagenetv2-zeroshot-val-top5\": 1.0, ")),
          "json text: %s", s);
    CHECK(strstr(s, "\"image_to_text_median_rank\": 4.0, \"image_to_text_R@1\": 0.1, ") != NULL, "json ranks: %s", s);
    mc_json *j = NULL;
    CHECK(mc_json_parse(s, strlen(s), &j, &err) == MC_OK, "json does not parse: %s (%s)", err.message, s);
    if (j) {
        static const char *keys[] = {"model", "epoch", "imagenetv2-zeroshot-val-top1", "imagenetv2-zeroshot-val-top5",
                                     "imagenetv2-zeroshot-val-num_samples", "imagenetv2-zeroshot-val-num_classes",
                                     "imagenetv2-zeroshot-val-num_templates", "imagenetv2-zeroshot-val-num_skipped",
                                     "image_to_text_mean_rank", "image_to_text_median_rank", "image_to_text_R@1",
                                     "image_to_text_R@5", "image_to_text_R@10", "text_to_image_mean_rank",
                                     "text_to_image_median_rank", "text_to_image_R@1", "text_to_image_R@5",
                                     "text_to_image_R@10", "num_samples", "num_skipped"};
        CHECK(j->type == MC_JSON_OBJECT && j->len == sizeof keys / sizeof keys[0], "json keys: %zu", j->len);
        for (size_t i = 0; i < sizeof keys / sizeof keys[0] && i < j->len; i++)
            CHECK(!strcmp(j->keys[i], keys[i]), "key %zu: %s (want %s)", i, j->keys[i], keys[i]);
        CHECK(mc_json_number(mc_json_get(j, "imagenetv2-zeroshot-val-top1"), 0) == 1.0 / 3, "top1 does not read back");
        CHECK(mc_json_number(mc_json_get(j, "text_to_image_mean_rank"), 0) == 12345.25, "mean rank does not read back");
        CHECK(mc_json_number(mc_json_get(j, "text_to_image_R@10"), 0) == 0.9, "R@10 does not read back");
        CHECK(!strcmp(mc_json_str(mc_json_get(j, "model"), ""), "dir/\"quoted\"\\m"), "model string");
        mc_json_free(j);
    }
    free(s);
}

/* ====================================================== end to end: zero-shot */

typedef struct cb_log {
    int calls, skips, cancel_at;
    int64_t last_done, last_total;
    char stage[32], skipped[3][2200];
} cb_log;

static int log_progress(void *user, const char *stage, int64_t done, int64_t total) {
    cb_log *l = user;
    l->calls++;
    snprintf(l->stage, sizeof l->stage, "%s", stage);
    l->last_done = done;
    l->last_total = total;
    return l->cancel_at && l->calls >= l->cancel_at;
}

static void log_skip(void *user, const char *what, const mc_error *why) {
    cb_log *l = user;
    if (l->skips < 3) snprintf(l->skipped[l->skips], sizeof l->skipped[0], "%s | %s", what, why->message);
    l->skips++;
}

static float *embed_file(mc_context *ctx, const mc_model_info *info, const char *path, float *emb) {
    size_t plane = (size_t)3 * info->image_size * info->image_size;
    float *px = malloc(plane * sizeof *px);
    mc_error err;
    int ok = mc_image_preprocess_file(path, &info->preprocess, px, &err) == MC_OK &&
             mc_encode_image(ctx, px, 1, 1, emb) == MC_OK;
    free(px);
    return ok ? emb : NULL;
}

static void test_zeroshot(const mc_model *model) {
    static const char *imgs[][2] = {
        {"dog/a.png", "chelsea.png"}, {"dog/b.png", "astronaut.png"}, {"fish/c.png", "coffee.png"},
        {"fish/d.png", "camera.png"}, {"fish/e.jpg", "truncated.jpg"}, {"hat/f.png", "logo.png"},
        {"moon/g.jpg", "hubble_deep_field.jpg"}, {"rocket/h.png", "tall_40x900.png"},
        {"shoe/i.png", "foo3x5x4indexed.png"}, {"shoe/j.jpg", "chelsea_gray.jpg"}, {"tree/k.png", "one_pixel.png"},
    };
    static const char *classes[] = {"dog", "fish", "hat", "moon", "rocket", "shoe", "tree"};
    const size_t n_img = sizeof imgs / sizeof imgs[0], C = sizeof classes / sizeof classes[0];
    mkdir_t("zs");
    for (size_t c = 0; c < C; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "zs/%s", classes[c]);
        mkdir_t(rel);
    }
    char rel[128], src[128];
    for (size_t i = 0; i < n_img; i++) {
        snprintf(rel, sizeof rel, "zs/%s", imgs[i][0]);
        snprintf(src, sizeof src, "images/%s", imgs[i][1]);
        copy_file(fixture(src), tpath(rel));
    }
    write_text(tpath("zs_templates.txt"), "a photo of a {}.\n{c}, drawn\n");
    const char *templates[] = {"a photo of a {}.", "{c}, drawn"};

    /* the expected figures, counted here from images encoded one by one */
    mc_model_info info;
    mc_model_get_info(model, &info);
    const int D = info.embed_dim;
    mc_error err;
    mc_eval_params p = mc_eval_default_params();
    p.n_threads = 2;
    float *cls = malloc(C * D * sizeof *cls), *e = malloc(D * sizeof *e);
    CHECK(mc_eval_classifier(model, classes, C, templates, 2, &p, cls, &err) == MC_OK, "classifier: %s", err.message);
    mc_context *ctx;
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = 2;
    CHECK(mc_context_new(model, &cp, &ctx, &err) == MC_OK, "context: %s", err.message);
    int64_t want1 = 0, want5 = 0, good = 0;
    for (size_t i = 0; i < n_img; i++) {
        snprintf(rel, sizeof rel, "zs/%s", imgs[i][0]);
        if (!embed_file(ctx, &info, tpath(rel), e)) continue;
        size_t label = 0;
        while (strncmp(imgs[i][0], classes[label], strlen(classes[label])) || imgs[i][0][strlen(classes[label])] != '/') label++;
        int64_t r = brute_rank(e, cls, (int64_t)C, D, (int64_t)label);
        want1 += r <= 1;
        want5 += r <= 5;
        good++;
    }
    mc_context_free(ctx);
    CHECK(good == 10, "%lld of 11 images encoded (want 10)", (long long)good);
    CHECK(want1 < want5 && want5 < good, "the fixture does not separate top-1 (%lld), top-5 (%lld) and all (%lld)",
          (long long)want1, (long long)want5, (long long)good);

    static const int batches[] = {1, 3, 32}, decoders[] = {0, 1, 3};
    cb_log log;
    for (int v = 0; v < 3; v++) {
        memset(&log, 0, sizeof log);
        p.batch = batches[v];
        p.decode_threads = decoders[v];
        p.progress = log_progress;
        p.progress_user = &log;
        p.on_skip = log_skip;
        p.skip_user = &log;
        mc_zeroshot_result z;
        CHECK(mc_eval_zeroshot(model, tpath("zs"), NULL, tpath("zs_templates.txt"), &p, &z, &err) == MC_OK,
              "zero-shot (batch %d): %s", p.batch, err.message);
        CHECK(z.done && z.n_images == good && z.n_skipped == 1 && z.n_classes == 7 && z.n_templates == 2 && z.top_k == 5,
              "batch %d: %lld images, %lld skipped, %lld classes", p.batch, (long long)z.n_images, (long long)z.n_skipped,
              (long long)z.n_classes);
        CHECK(z.top1_correct == want1 && z.top5_correct == want5, "batch %d: top-1 %lld top-5 %lld (want %lld %lld)",
              p.batch, (long long)z.top1_correct, (long long)z.top5_correct, (long long)want1, (long long)want5);
        CHECK(z.top1 == (double)want1 / good && z.top5 == (double)want5 / good, "batch %d: fractions", p.batch);
        CHECK(!strcmp(log.stage, "images") && log.last_done == 11 && log.last_total == 11, "progress: %s %lld/%lld",
              log.stage, (long long)log.last_done, (long long)log.last_total);
        CHECK(log.skips == 1 && strstr(log.skipped[0], "fish/e.jpg") && strstr(log.skipped[0], "truncated"),
              "skip report: %d, %s", log.skips, log.skipped[0]);
    }
    /* strict: the undecodable image is the error */
    p.strict = 1;
    mc_zeroshot_result z;
    CHECK(mc_eval_zeroshot(model, tpath("zs"), NULL, NULL, &p, &z, &err) != MC_OK && strstr(err.message, "fish/e.jpg"),
          "strict: %s", err.message);
    p.strict = 0;
    /* cancelled by the progress callback */
    memset(&log, 0, sizeof log);
    log.cancel_at = 2;
    p.progress_user = &log;
    p.skip_user = &log;
    p.batch = 2;
    CHECK(mc_eval_zeroshot(model, tpath("zs"), NULL, NULL, &p, &z, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "cancelled") &&
              !z.done, "cancel: %s", err.message);
    /* the class names file must match the folders */
    write_text(tpath("zs_names.txt"), "a\nb\nc\n");
    CHECK(mc_eval_zeroshot(model, tpath("zs"), tpath("zs_names.txt"), NULL, &p, &z, &err) == MC_ERR_INVALID_ARG &&
              strstr(err.message, "3 class names") && strstr(err.message, "7 class folders"),
          "class names mismatch: %s", err.message);
    /* only undecodable images */
    mkdir_t("zs_bad");
    mkdir_t("zs_bad/x");
    copy_file(fixture("images/not_an_image.jpg"), tpath("zs_bad/x/a.jpg"));
    p.progress = NULL;
    p.on_skip = NULL;
    CHECK(mc_eval_zeroshot(model, tpath("zs_bad"), NULL, NULL, &p, &z, &err) == MC_ERR_IMAGE && strstr(err.message, "none of its 1 images") &&
              z.n_skipped == 1, "all undecodable: %s", err.message);
    /* fewer than five classes: top-k is clipped to the class count */
    mkdir_t("zs_two");
    mkdir_t("zs_two/cat");
    mkdir_t("zs_two/rocket");
    copy_file(fixture("images/chelsea.png"), tpath("zs_two/cat/a.png"));
    copy_file(fixture("images/astronaut.png"), tpath("zs_two/rocket/b.png"));
    CHECK(mc_eval_zeroshot(model, tpath("zs_two"), NULL, NULL, &p, &z, &err) == MC_OK && z.top_k == 2 && z.top5 == 1.0 &&
              z.n_templates == 6 && z.n_images == 2, "two classes: %s, top-%d %g", err.message, z.top_k, z.top5);
    p.batch = 0;
    CHECK(mc_eval_zeroshot(model, tpath("zs"), NULL, NULL, &p, &z, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "batch"),
          "batch 0: %s", err.message);
    free(cls);
    free(e);
}

/* ====================================================== end to end: retrieval */

typedef struct tarbuf { uint8_t *d; size_t n; } tarbuf;

static void tar_add(tarbuf *t, const char *name, const void *data, size_t size) {
    size_t padded = (size + 511) / 512 * 512;
    t->d = realloc(t->d, t->n + 512 + padded);
    uint8_t *h = t->d + t->n;
    memset(h, 0, 512 + padded);
    memcpy(h, name, strlen(name));
    memcpy(h + 100, "0000644", 7);
    memcpy(h + 108, "0000000", 7);
    memcpy(h + 116, "0000000", 7);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    memcpy(h + 136, "00000000000", 11);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    memcpy(h + 512, data, size);
    t->n += 512 + padded;
}

static void tar_add_file(tarbuf *t, const char *name, const char *path) {
    char *d = NULL;
    size_t n = 0;
    if (mc_file_read_all(path, (size_t)1 << 26, &d, &n, NULL) != MC_OK) { CHECK(0, "cannot read %s", path); return; }
    tar_add(t, name, d, n);
    free(d);
}

static void tar_write(tarbuf *t, const char *path) {
    t->d = realloc(t->d, t->n + 1024);
    memset(t->d + t->n, 0, 1024);
    write_file(path, t->d, t->n + 1024);
    free(t->d);
    t->d = NULL;
    t->n = 0;
}

static void test_retrieval(const mc_model *model) {
    /* two shards; sample 3 has no caption, sample 7 an undecodable image */
    static const char *smp[][3] = {
        {"s/000", "chelsea.png", "a cat on a rug"}, {"s/001", "astronaut.png", "an astronaut"},
        {"s/002", "coffee.png", "a cup of coffee"}, {"s/003", "camera.png", NULL},
        {"s/004", "logo.png", "a logo"}, {"s/005", "hubble_deep_field.jpg", "galaxies far away"},
        {"s/006", "tall_40x900.png", "a tall thin picture"}, {"s/007", "truncated.jpg", "broken"},
        {"s/008", "foo3x5x4indexed.png", "a tiny palette image"}, {"s/009", "one_pixel.png", "a single pixel"},
        {"s/010", "chelsea_gray.jpg", "a grey cat"}, {"s/011", "camera.png", "a man with a camera"},
        {"s/012", "chelsea_exif_rot6.jpg", "a cat turned on its side"},
    };
    const size_t n = sizeof smp / sizeof smp[0];
    tarbuf t = {0};
    char name[64], src[128];
    for (size_t i = 0; i < n; i++) {
        const char *ext = strrchr(smp[i][1], '.') + 1;
        snprintf(name, sizeof name, "%s.%s", smp[i][0], ext);
        snprintf(src, sizeof src, "images/%s", smp[i][1]);
        tar_add_file(&t, name, fixture(src));
        if (smp[i][2]) {
            snprintf(name, sizeof name, "%s.txt", smp[i][0]);
            tar_add(&t, name, smp[i][2], strlen(smp[i][2]));
        }
        if (i == 6) tar_write(&t, tpath("r-0.tar"));
    }
    tar_write(&t, tpath("r-1.tar"));

    mc_model_info info;
    mc_model_get_info(model, &info);
    const int D = info.embed_dim;
    mc_error err;
    float *img = malloc(n * D * sizeof *img), *txt = malloc(n * D * sizeof *txt);
    mc_context *ctx;
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = 2;
    CHECK(mc_context_new(model, &cp, &ctx, &err) == MC_OK, "context: %s", err.message);
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(src, sizeof src, "images/%s", smp[i][1]);
        if (!smp[i][2] || !embed_file(ctx, &info, fixture(src), img + good * D)) continue;
        int32_t ids[MC_CONTEXT_LENGTH];
        CHECK(mc_tokenizer_encode(mc_model_tokenizer(model), smp[i][2], info.context_length, ids, &err) == MC_OK &&
                  mc_encode_text(ctx, ids, 1, 1, txt + good * D) == MC_OK, "caption %zu", i);
        good++;
    }
    mc_context_free(ctx);
    CHECK(good == 11, "%zu usable samples (want 11)", good);
    int64_t *ri = malloc(good * sizeof *ri), *rt = malloc(good * sizeof *rt);
    for (size_t i = 0; i < good; i++) {
        ri[i] = brute_rank(img + i * D, txt, (int64_t)good, D, (int64_t)i);
        rt[i] = brute_rank(txt + i * D, img, (int64_t)good, D, (int64_t)i);
    }
    mc_rank_metrics wi, wt;
    mc_eval_rank_metrics(ri, (int64_t)good, &wi, &err);
    mc_eval_rank_metrics(rt, (int64_t)good, &wt, &err);
    CHECK(wi.r1 < wi.r5 && wi.r5 < wi.r10 && wi.r10 < 1, "the fixture does not separate i2t R@1 %g R@5 %g R@10 %g",
          wi.r1, wi.r5, wi.r10);

    mc_eval_params p = mc_eval_default_params();
    p.n_threads = 2;
    static const int batches[] = {1, 4, 64}, decoders[] = {2, 0, 16};
    cb_log log;
    for (int v = 0; v < 3; v++) {
        memset(&log, 0, sizeof log);
        p.batch = batches[v];
        p.decode_threads = decoders[v];
        p.progress = log_progress;
        p.progress_user = &log;
        p.on_skip = log_skip;
        p.skip_user = &log;
        mc_retrieval_result r;
        char spec[4300];
        snprintf(spec, sizeof spec, "%s/r-{0..1}.tar", tmp);
        CHECK(mc_eval_retrieval(model, spec, &p, &r, &err) == MC_OK, "retrieval (batch %d): %s", p.batch, err.message);
        CHECK(r.done && r.n_samples == (int64_t)good && r.n_skipped == 2, "batch %d: %lld samples, %lld skipped", p.batch,
              (long long)r.n_samples, (long long)r.n_skipped);
        CHECK(!memcmp(&r.image_to_text, &wi, sizeof wi) && !memcmp(&r.text_to_image, &wt, sizeof wt),
              "batch %d: i2t mean %g R@1 %g / %g, t2i mean %g / %g", p.batch, r.image_to_text.mean_rank, r.image_to_text.r1,
              wi.r1, r.text_to_image.mean_rank, wt.mean_rank);
        CHECK(!strcmp(log.stage, "ranks") && log.last_done == 2 * (int64_t)good && log.last_total == 2 * (int64_t)good,
              "progress: %s %lld/%lld", log.stage, (long long)log.last_done, (long long)log.last_total);
        CHECK(log.skips == 2 && strstr(log.skipped[0], "s/003") && strstr(log.skipped[0], "no caption") &&
                  strstr(log.skipped[1], "s/007") && strstr(log.skipped[1], "truncated"),
              "skip reports: %d: %s; %s", log.skips, log.skipped[0], log.skipped[1]);
    }
    mc_retrieval_result r;
    p.progress = NULL;
    p.on_skip = NULL;
    p.strict = 1;
    CHECK(mc_eval_retrieval(model, tpath("r-0.tar"), &p, &r, &err) == MC_ERR_NOT_FOUND && strstr(err.message, "s/003") &&
              strstr(err.message, "no caption"), "strict, no caption: %s", err.message);
    CHECK(mc_eval_retrieval(model, tpath("r-1.tar"), &p, &r, &err) != MC_OK && strstr(err.message, "s/007"),
          "strict, undecodable: %s", err.message);
    p.strict = 0;
    CHECK(mc_eval_retrieval(model, tpath("r-9.tar"), &p, &r, &err) == MC_ERR_IO && strstr(err.message, "r-9.tar"),
          "missing shard: %s", err.message);
    tarbuf e = {0};
    tar_add(&e, "x/000.txt", "only a caption", 14);
    tar_write(&e, tpath("r-empty.tar"));
    CHECK(mc_eval_retrieval(model, tpath("r-empty.tar"), &p, &r, &err) == MC_ERR_NOT_FOUND &&
              strstr(err.message, "no sample with an image and a caption") && r.n_skipped == 1,
          "no usable sample: %s", err.message);
    CHECK(mc_eval_retrieval(model, "a/{1..", &p, &r, &err) != MC_OK, "bad brace pattern must fail");
    free(img);
    free(txt);
    free(ri);
    free(rt);
}

int main(void) {
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_ranks();
    test_metrics();
    test_templates();
    test_imagefolder();
    test_json();

    setenv(MC_VOCAB_ENV, fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), 0);
    mc_model_params mp = mc_model_default_params();
    mc_model *model = NULL;
    mc_error err;
    CHECK(mc_model_load(fixture(MODEL), &mp, &model, &err) == MC_OK, "load %s: %s", MODEL, err.message);
    if (model) {
        test_zeroshot(model);
        test_retrieval(model);
        mc_model_free(model);
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
    return test_summary("test_eval");
}
