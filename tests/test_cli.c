/*
 * test_cli.c - end-to-end tests of the command-line tool (build/mobileclip,
 * run through the shell): --help of every command, option errors, options
 * after positionals, 'list', 'embed-image' / 'embed-text' against the
 * reference embeddings (1e-4), skipped and --strict images, 'classify' output
 * format and probabilities, --workers K (the same rows and bitwise the same
 * embeddings as one worker, skipped and --strict images, bad values),
 * 'convert --unfolded' round trips (f32 identical,
 * f16/bf16 within the documented tolerance; the config read from the file's
 * metadata).  The folded default is tested by test_convert.c.
 */
#include "core/core.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIN "build/mobileclip"
#define S0 "models/oc_mobileclip2_b"   /* ViT image tower, OpenCLIP text tower */

static char tmpdir[] = "/tmp/mc-test-cli-XXXXXX";
static char out_path[4200], err_path[4200];
static char *out_text, *err_text;

static char *slurp(const char *path) {
    char *s = NULL;
    size_t len;
    if (mc_file_read_all(path, (size_t)1 << 26, &s, &len, NULL)) return strdup("");
    return s;
}

/* Runs "BIN args" with stdout/stderr captured; returns the exit status. */
static int run(const char *fmt, ...) {
    char args[8192], cmd[32768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "MOBILECLIP_VOCAB='%s' MOBILECLIP_OFFLINE=1 MOBILECLIP_NO_PROGRESS=1 %s %s >%s 2>%s </dev/null",
             fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), BIN, args, out_path, err_path);
    int st = system(cmd);
    free(out_text);
    free(err_text);
    out_text = slurp(out_path);
    err_text = slurp(err_path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const mc_tensor_info *expect(mc_checkpoint *ck, const char *name) {
    const mc_tensor_info *t = ck ? mc_checkpoint_find(ck, name) : NULL;
    CHECK(t && t->dtype == MC_DTYPE_F32, "expected.safetensors lacks %s", name);
    return t;
}

/* parses JSON-array lines of floats into out (rows x d); returns rows */
static int parse_json_rows(const char *text, float *out, int max_rows, int d) {
    int rows = 0;
    const char *p = text;
    while (*p && rows < max_rows) {
        if (*p != '[') return -1;
        p++;
        for (int k = 0; k < d; k++) {
            char *end;
            out[rows * d + k] = strtof(p, &end);
            if (end == p) return -1;
            p = end;
            if (*p == ',') p++;
            while (*p == ' ') p++;
        }
        if (*p != ']') return -1;
        p++;
        if (*p == '\n') p++;
        rows++;
    }
    return *p ? -1 : rows;
}

static void test_help_and_errors(void) {
    static const char *cmds[] = {"embed-image", "embed-text", "classify", "eval", "convert", "list", "report", "index",
                                 "search", "reinforce", "serve"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc = run("%s --help", cmds[i]);
        char want[64];
        snprintf(want, sizeof want, "usage: mobileclip %s", cmds[i]);
        CHECK(rc == 0 && !strncmp(out_text, want, strlen(want)), "%s --help: rc %d, %.60s", cmds[i], rc, out_text);
        rc = run("%s --no-such-option", cmds[i]);
        CHECK(rc != 0 && strstr(err_text, "unknown option"), "%s unknown option: rc %d, %s", cmds[i], rc, err_text);
    }
    int rc = run("--help");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        CHECK(rc == 0 && strstr(out_text, cmds[i]), "main help lacks %s", cmds[i]);
    rc = run("embed-image -m %s", fixture(S0));
    CHECK(rc != 0 && strstr(err_text, "no images"), "embed-image without images: rc %d %s", rc, err_text);
    rc = run("embed-image %s", fixture("images/chelsea.png"));
    CHECK(rc != 0 && strstr(err_text, "no model"), "embed-image without model: rc %d %s", rc, err_text);
    rc = run("embed-image -m no-such-model %s", fixture("images/chelsea.png"));
    CHECK(rc != 0 && strstr(err_text, "no-such-model"), "unknown model: rc %d %s", rc, err_text);
    rc = run("index -m %s %s", fixture(S0), fixture("images"));
    CHECK(rc != 0 && strstr(err_text, "--db"), "index without --db: rc %d %s", rc, err_text);
    rc = run("search --db /nonexistent/photos.db --top 0 cat");
    CHECK(rc != 0 && strstr(err_text, "--top"), "search --top 0: rc %d %s", rc, err_text);
    rc = run("search --db /nonexistent/photos.db cat");
    CHECK(rc != 0 && strstr(err_text, "no such index"), "search of a missing index: rc %d %s", rc, err_text);
    rc = run("serve -m %s --port 70000", fixture(S0));
    CHECK(rc == 2 && strstr(err_text, "--port"), "serve --port 70000: rc %d %s", rc, err_text);
    rc = run("serve -m %s --max-body 0", fixture(S0));
    CHECK(rc == 2 && strstr(err_text, "--max-body"), "serve --max-body 0: rc %d %s", rc, err_text);
    rc = run("serve -m %s --host not-an-address --port 0", fixture(S0));
    CHECK(rc == 1 && strstr(err_text, "not-an-address"), "serve --host not-an-address: rc %d %s", rc, err_text);
    rc = run("embed-image -m %s --batch 0 %s", fixture(S0), fixture("images/chelsea.png"));
    CHECK(rc != 0 && strstr(err_text, "--batch"), "--batch 0: rc %d %s", rc, err_text);
    rc = run("classify -m %s %s", fixture(S0), fixture("images/chelsea.png"));
    CHECK(rc != 0 && strstr(err_text, "no labels"), "classify without labels: rc %d %s", rc, err_text);
    rc = run("reinforce %s -o %s/rf --config x.json", fixture("datacompdr/shards/00000000.tar"), tmpdir);
    CHECK(rc != 0 && strstr(err_text, "--teachers"), "reinforce without teachers: rc %d %s", rc, err_text);
    rc = run("reinforce %s -o %s/rf --teachers a,b --config x.json --num-augs 2 --num-syn 3",
             fixture("datacompdr/shards/00000000.tar"), tmpdir);
    CHECK(rc != 0 && strstr(err_text, "need --captioner"), "reinforce --num-syn alone: rc %d %s", rc, err_text);
    rc = run("convert %s --dtype f8 -o %s/x.safetensors", fixture(S0), tmpdir);
    CHECK(rc != 0 && strstr(err_text, "--dtype"), "bad dtype: rc %d %s", rc, err_text);
}

static void test_list(void) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/cache/MobileCLIP2-S0 && cd %s/cache/MobileCLIP2-S0 && "
             "touch open_clip_model.safetensors open_clip_config.json bpe_simple_vocab_16e6.txt.gz",
             tmpdir, tmpdir);
    CHECK(system(cmd) == 0, "cannot make a fake cache");
    int rc = run("list --urls");   /* the default cache: whatever it holds */
    CHECK(rc == 0, "list failed: %s", err_text);
    rc = run("list");
    snprintf(cmd, sizeof cmd, "env MOBILECLIP_CACHE=%s/cache " BIN " list > %s", tmpdir, out_path);
    CHECK(system(cmd) == 0, "list with a cache failed");
    free(out_text);
    out_text = slurp(out_path);
    static const char *names[] = {"mobileclip_s0", "mobileclip_s1", "mobileclip_s2", "mobileclip_b",
                                  "mobileclip_blt", "MobileCLIP-S1", "MobileCLIP-S2", "MobileCLIP-B",
                                  "MobileCLIP-B-LT", "MobileCLIP2-S0", "MobileCLIP2-S2", "MobileCLIP2-B",
                                  "MobileCLIP2-S3", "MobileCLIP2-S4", "MobileCLIP2-L-14", "ViT-L-14-openai",
                                  "ViT-L-14-datacomp_xl_s13b_b90k", "DFN2B-CLIP-ViT-L-14",
                                  "DFN2B-CLIP-ViT-L-14-39B"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "\n%s ", names[i]);
        const char *line = strstr(out_text, key);
        CHECK(line, "list lacks %s", names[i]);
        if (!line) continue;
        const char *eol = strchr(line + 1, '\n');
        int cached = eol && eol - line > 4 && !strncmp(eol - 3, "yes", 3);
        CHECK(cached == !strcmp(names[i], "MobileCLIP2-S0"), "%s cached=%d", names[i], cached);
    }
    CHECK(strstr(out_text, "MobileCLIP2-S3 ") && strstr(out_text, "768"), "list lacks dims");
}

static void test_embed(mc_checkpoint *ex) {
    const mc_tensor_info *ie = expect(ex, "image_embeddings"), *te = expect(ex, "text_embeddings"),
                         *ifeat = expect(ex, "image_features");
    if (!ie || !te || !ifeat) return;
    int D = (int)ie->shape[1];
    char npy[4300];
    snprintf(npy, sizeof npy, "%s/img.npy", tmpdir);
    /* options after the positionals, folder-free list, batch 2 */
    int rc = run("embed-image %s %s %s -m %s -o %s --batch 2", fixture("images/chelsea.png"),
                 fixture("images/astronaut.png"), fixture("images/coffee.png"), fixture(S0), npy);
    CHECK(rc == 0, "embed-image -o: rc %d %s", rc, err_text);
    float *got = NULL;
    int nd = 0;
    int64_t shape[MC_MAX_DIMS];
    if (rc == 0 && !mc_npy_read_f32(npy, &got, &nd, shape, NULL)) {
        CHECK(nd == 2 && shape[0] == 3 && shape[1] == D, "npy shape");
        if (nd == 2 && shape[0] == 3 && shape[1] == D) {
            float d = max_abs_diff(got, ie->data, (size_t)3 * D);
            CHECK(d <= 1e-4f, "image embeddings differ by %g", d);
        }
        free(got);
        got = NULL;
        char side[4400];
        snprintf(side, sizeof side, "%s.txt", npy);
        char *s = slurp(side);
        char want[16384];
        snprintf(want, sizeof want, "%s\n%s\n%s\n", fixture("images/chelsea.png"), fixture("images/astronaut.png"),
                 fixture("images/coffee.png"));
        CHECK(!strcmp(s, want), "sidecar: %s", s);
        free(s);
    } else {
        CHECK(0, "no .npy written");
    }

    /* stdout JSON lines, a bad image skipped and reported, raw features */
    float rows[8 * 1024];
    rc = run("embed-image -m %s --no-normalize %s %s %s %s", fixture(S0), fixture("images/chelsea.png"),
             fixture("images/not_an_image.jpg"), fixture("images/astronaut.png"), fixture("images/coffee.png"));
    CHECK(rc == 0, "embed-image with a bad image: rc %d %s", rc, err_text);
    CHECK(strstr(err_text, "skipping") && strstr(err_text, "not_an_image.jpg"), "skip not reported: %s", err_text);
    if (D <= 1024) {
        int n = parse_json_rows(out_text, rows, 8, D);
        CHECK(n == 3, "json rows: %d", n);
        if (n == 3) {
            float d = max_abs_diff(rows, ifeat->data, (size_t)3 * D);
            CHECK(d <= 1e-4f, "image features differ by %g", d);
        }
    }
    snprintf(npy, sizeof npy, "%s/strict.npy", tmpdir);
    rc = run("embed-image -m %s --strict -o %s %s %s", fixture(S0), npy, fixture("images/chelsea.png"),
             fixture("images/not_an_image.jpg"));
    CHECK(rc != 0 && strstr(err_text, "not_an_image.jpg"), "--strict: rc %d %s", rc, err_text);
    CHECK(access(npy, F_OK) != 0, "--strict left an output");

    /* a folder: its images sorted, the bad ones skipped */
    char dir[4300], cmd[32768];
    snprintf(dir, sizeof dir, "%s/imgs", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s/b.png && cp %s %s/a.png && cp %s %s/c.jpg && echo x > %s/notes.txt",
             dir, fixture("images/chelsea.png"), dir, fixture("images/astronaut.png"), dir,
             fixture("images/truncated.jpg"), dir, dir);
    CHECK(system(cmd) == 0, "cannot make an image folder");
    snprintf(npy, sizeof npy, "%s/dir.npy", tmpdir);
    rc = run("embed-image -m %s -o %s %s", fixture(S0), npy, dir);
    char *side = NULL;
    if (rc == 0) {
        char sp[4400];
        snprintf(sp, sizeof sp, "%s.txt", npy);
        side = slurp(sp);
    }
    char want[16384];
    snprintf(want, sizeof want, "%s/a.png\n%s/b.png\n", dir, dir);
    CHECK(rc == 0 && side && (!strcmp(side, want) || strstr(side, "c.jpg")), "folder: rc %d %s %s", rc,
          side ? side : "", err_text);
    free(side);

    /* texts: the reference's four, one of them empty, via positionals and --file */
    rc = run("embed-text -m %s 'a photo of a cat' 'a diagram' 'A photo of a dog.' ''", fixture(S0));
    CHECK(rc == 0, "embed-text: rc %d %s", rc, err_text);
    if (rc == 0 && D <= 1024) {
        int n = parse_json_rows(out_text, rows, 8, D);
        CHECK(n == 4, "text rows %d", n);
        if (n == 4) {
            float d = max_abs_diff(rows, te->data, (size_t)4 * D);
            CHECK(d <= 1e-4f, "text embeddings differ by %g", d);
        }
    }
    char tf[4300];
    snprintf(tf, sizeof tf, "%s/texts.txt", tmpdir);
    FILE *f = fopen(tf, "w");
    if (f) {
        fputs("a diagram\nA photo of a dog.\n\n", f);
        fclose(f);
    }
    snprintf(npy, sizeof npy, "%s/txt.npy", tmpdir);
    rc = run("embed-text 'a photo of a cat' --file %s -m %s -o %s", tf, fixture(S0), npy);
    CHECK(rc == 0, "embed-text --file: rc %d %s", rc, err_text);
    if (rc == 0 && !mc_npy_read_f32(npy, &got, &nd, shape, NULL)) {
        CHECK(nd == 2 && shape[0] == 4 && shape[1] == D, "text npy shape");
        if (nd == 2 && shape[0] == 4 && shape[1] == D) {
            float d = max_abs_diff(got, te->data, (size_t)4 * D);
            CHECK(d <= 1e-4f, "text embeddings (npy) differ by %g", d);
        }
        free(got);
        got = NULL;
    }
}

/* 1 if the two files have the same bytes */
static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = !mc_file_read_all(a, (size_t)1 << 26, &x, &nx, NULL) &&
               !mc_file_read_all(b, (size_t)1 << 26, &y, &ny, NULL) && nx == ny && nx > 0 && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* --workers K: the same batches whatever K, each worker on its own context,
 * so the rows and the embeddings are those of one worker, bit for bit. */
static void test_workers(void) {
    char dir[4300], cmd[32768];
    snprintf(dir, sizeof dir, "%s/wimgs", tmpdir);
    static const char *src[] = {"chelsea.png", "astronaut.png", "not_an_image.jpg", "coffee.png", "camera.png",
                                "truncated.jpg", "logo.png", "chelsea_q90.jpg", "hubble_deep_field.jpg"};
    int n = (int)(sizeof src / sizeof src[0]), len = snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    for (int i = 0; i < n; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "images/%s", src[i]);
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " && cp %s %s/%02d_%s", fixture(rel), dir, i, src[i]);
    }
    CHECK(system(cmd) == 0, "cannot make the workers' image folder");
    static const char *models[] = {S0, "models/v1_mci_mct"};   /* ViT and MCi image towers */
    for (int m = 0; m < 2; m++) {
        /* batch 2: 5 batches, some with a bad image, more batches than workers and fewer */
        static const char *cfg[] = {"--workers 1 --threads 1", "--workers 2 --threads 2", "--workers 3 --threads 3",
                                    "--workers 3", "--workers 64 --threads 1"};
        char first[4300], npy[4300];
        for (int c = 0; c < 5; c++) {
            snprintf(npy, sizeof npy, "%s/w%d.npy", tmpdir, c);
            if (c == 0) snprintf(first, sizeof first, "%s", npy);
            int rc = run("embed-image -m %s -b 2 %s -o %s %s", fixture(models[m]), cfg[c], npy, dir);
            CHECK(rc == 0, "%s %s: rc %d %s", models[m], cfg[c], rc, err_text);
            CHECK(strstr(err_text, "skipping") && strstr(err_text, "02_not_an_image.jpg") &&
                  strstr(err_text, "05_truncated.jpg") && strstr(err_text, "embedded 7 of 9"),
                  "%s %s: skips not reported: %s", models[m], cfg[c], err_text);
            if (c == 0) {
                char sp[4400], want[16384];
                snprintf(sp, sizeof sp, "%s.txt", npy);
                char *side = slurp(sp);
                int wl = 0;
                for (int i = 0; i < n; i++)
                    if (i != 2 && i != 5) wl += snprintf(want + wl, sizeof want - (size_t)wl, "%s/%02d_%s\n", dir, i, src[i]);
                CHECK(!strcmp(side, want), "%s workers 1 sidecar: %s", models[m], side);
                free(side);
                continue;
            }
            CHECK(same_file(first, npy), "%s %s: embeddings differ from one worker", models[m], cfg[c]);
            char a[4400], b[4400];
            snprintf(a, sizeof a, "%s.txt", first);
            snprintf(b, sizeof b, "%s.txt", npy);
            CHECK(same_file(a, b), "%s %s: rows differ from one worker", models[m], cfg[c]);
        }
        /* JSON lines on stdout, raw features */
        int rc = run("embed-image -m %s -b 3 --no-normalize %s", fixture(models[m]), dir);
        char *one = strdup(out_text);
        CHECK(rc == 0 && one && *one, "%s JSON, one worker: rc %d %s", models[m], rc, err_text);
        rc = run("embed-image -m %s -b 3 --no-normalize --workers 2 %s", fixture(models[m]), dir);
        CHECK(rc == 0 && one && !strcmp(one, out_text), "%s JSON, 2 workers: rc %d, same %d", models[m], rc,
              one && !strcmp(one, out_text));
        free(one);
        /* --strict: the first bad image in list order, whatever the worker count; nothing written */
        for (int k = 1; k <= 3; k++) {
            snprintf(npy, sizeof npy, "%s/wstrict.npy", tmpdir);
            rc = run("embed-image -m %s -b 2 --strict --workers %d -o %s %s", fixture(models[m]), k, npy, dir);
            CHECK(rc != 0 && strstr(err_text, "02_not_an_image.jpg") && !strstr(err_text, "05_truncated"),
                  "%s --strict --workers %d: rc %d %s", models[m], k, rc, err_text);
            CHECK(access(npy, F_OK) != 0, "--strict --workers %d left an output", k);
        }
    }
    /* classify shares the path */
    int rc = run("classify -m %s --labels 'cat,dog,rocket' -b 2 %s", fixture(S0), dir);
    char *one = strdup(out_text);
    CHECK(rc == 0 && one && strstr(one, "08_hubble"), "classify, one worker: rc %d %s", rc, err_text);
    rc = run("classify -m %s --labels 'cat,dog,rocket' -b 2 --workers 3 %s", fixture(S0), dir);
    CHECK(rc == 0 && one && !strcmp(one, out_text), "classify --workers 3: rc %d, %s", rc, err_text);
    free(one);
    /* bad values */
    static const char *bad[] = {"0", "-1", "65", "x", "2.5"};
    for (int i = 0; i < 5; i++) {
        rc = run("embed-image -m %s --workers %s %s", fixture(S0), bad[i], fixture("images/chelsea.png"));
        CHECK(rc != 0 && strstr(err_text, "--workers"), "--workers %s: rc %d %s", bad[i], rc, err_text);
        rc = run("classify -m %s --labels cat --workers %s %s", fixture(S0), bad[i], fixture("images/chelsea.png"));
        CHECK(rc != 0 && strstr(err_text, "--workers"), "classify --workers %s: rc %d %s", bad[i], rc, err_text);
    }
}

/* bench on a fixture model: one well-formed line per (tower, thread count,
 * batch), with and without concurrent contexts. */
static int bench_lines(const char *text, int contexts) {
    int n = 0;
    for (const char *l = strstr(text, "bench model="); l; l = strstr(l + 1, "bench model=")) {
        if (strstr(l, "peak_rss_mb=") && strstr(l, "peak_rss_mb=") < strchr(l, '\n')) continue;
        char tower[16];
        int batch = 0, threads = 0, k = 1;
        double ms_min = -1, ms_med = -1, gf = -1, pr = -1;
        const char *t = strstr(l, " tower=");
        int ok = t && sscanf(t, " tower=%15s batch=%d threads=%d", tower, &batch, &threads) == 3;
        const char *c = strstr(l, " contexts=");
        if (c && c < strchr(l, '\n')) ok &= sscanf(c, " contexts=%d", &k) == 1;
        const char *m = strstr(l, " ms_min=");
        ok &= m && sscanf(m, " ms_min=%lf ms_median=%lf gflops=%lf peak_ratio=%lf", &ms_min, &ms_med, &gf, &pr) == 4;
        CHECK(ok && k == contexts && ms_min > 0 && ms_med >= ms_min && gf > 0 && pr > 0, "bad bench line: %.200s", l);
        n++;
    }
    return n;
}

static void test_bench(void) {
    int rc = run("bench -m %s --tower both --batch 1,2 --threads 1,2 --runs 2 --warmup 0 --gemm-size 64",
                 fixture(S0));
    CHECK(rc == 0, "bench failed: %s", err_text);
    CHECK(strstr(out_text, "machine cpu=") && strstr(out_text, "sgemm_gflops_t2="), "no machine line: %s", out_text);
    CHECK(bench_lines(out_text, 1) == 8, "expected 8 bench lines: %s", out_text);
    rc = run("bench -m %s --tower image --batch 2 --threads 1 --contexts 3 --runs 2 --warmup 1 --gemm-size 64",
             fixture(S0));
    CHECK(rc == 0, "bench --contexts failed: %s", err_text);
    CHECK(strstr(out_text, "sgemm_gflops_t3="), "peak not on 3 threads: %s", out_text);
    CHECK(bench_lines(out_text, 3) == 1, "expected 1 bench line with contexts=3: %s", out_text);
    rc = run("bench -m %s --contexts 0", fixture(S0));
    CHECK(rc != 0 && strstr(err_text, "--contexts"), "bench --contexts 0 accepted: %d %s", rc, err_text);
}

static void test_classify(mc_checkpoint *ex) {
    const mc_tensor_info *ie = expect(ex, "image_embeddings"), *te = expect(ex, "text_embeddings"),
                         *ls = expect(ex, "logit_scale");
    if (!ie || !te || !ls) return;
    int D = (int)ie->shape[1];
    /* template "{}" makes each label's classifier exactly its text's embedding */
    int rc = run("classify -m %s --template '{}' --labels 'a photo of a cat, a diagram' --labels 'A photo of a dog.' "
                 "%s %s --top 2", fixture(S0), fixture("images/chelsea.png"), fixture("images/coffee.png"));
    CHECK(rc == 0, "classify: rc %d %s", rc, err_text);
    if (rc) return;
    double scale = exp(((const float *)ls->data)[0]);
    if (scale > 100) scale = 100;
    const char *labels[3] = {"a photo of a cat", "a diagram", "A photo of a dog."};
    const int img_idx[2] = {0, 2};
    const char *img_name[2] = {"images/chelsea.png", "images/coffee.png"};
    char *p = out_text;
    for (int i = 0; i < 2; i++) {
        double lg[3], mx = -1e30, sum = 0, pr[3];
        for (int l = 0; l < 3; l++) {
            double dot = 0;
            for (int k = 0; k < D; k++)
                dot += (double)((const float *)ie->data)[img_idx[i] * D + k] * ((const float *)te->data)[l * D + k];
            lg[l] = scale * dot;
            if (lg[l] > mx) mx = lg[l];
        }
        for (int l = 0; l < 3; l++) sum += (pr[l] = exp(lg[l] - mx));
        for (int l = 0; l < 3; l++) pr[l] /= sum;
        char *eol = strchr(p, '\n');
        CHECK(eol && !strncmp(p, fixture(img_name[i]), (size_t)(eol - p)), "classify path line: %.80s", p);
        if (!eol) return;
        p = eol + 1;
        double prev = 2;
        for (int k = 0; k < 2; k++) {
            char *tab = strchr(p, '\t');
            eol = strchr(p, '\n');
            CHECK(tab && eol && tab < eol, "classify line format: %.80s", p);
            if (!tab || !eol || tab > eol) return;
            int l = -1;
            for (int j = 0; j < 3; j++)
                if ((size_t)(tab - p) == strlen(labels[j]) && !strncmp(p, labels[j], (size_t)(tab - p))) l = j;
            double v = strtod(tab + 1, NULL);
            CHECK(l >= 0, "unknown label in: %.80s", p);
            if (l >= 0) CHECK(fabs(v - pr[l]) <= 1e-3, "prob of %s: %f, expected %f", labels[l], v, pr[l]);
            CHECK(v <= prev, "not sorted");
            prev = v;
            p = eol + 1;
        }
        CHECK(*p == '\n', "no blank line after an image");
        p++;
    }
    CHECK(*p == 0, "trailing output: %.80s", p);

    /* default template, labels file */
    char lf[4300];
    snprintf(lf, sizeof lf, "%s/labels.txt", tmpdir);
    FILE *f = fopen(lf, "w");
    if (f) {
        fputs("cat\n\ndog\nbird\n", f);
        fclose(f);
    }
    rc = run("classify -m %s --labels-file %s %s", fixture(S0), lf, fixture("images/chelsea.png"));
    CHECK(rc == 0, "classify --labels-file: rc %d %s", rc, err_text);
    int lines = 0;
    double total = 0;
    for (char *q = strchr(out_text, '\n'); q && q[1] && q[1] != '\n'; q = strchr(q + 1, '\n')) {
        char *tab = strchr(q + 1, '\t');
        if (tab) total += strtod(tab + 1, NULL);
        lines++;
    }
    CHECK(lines == 3 && fabs(total - 1.0) < 1e-4, "3 labels, probabilities sum %f (%d lines)", total, lines);
}

static void test_convert(mc_checkpoint *ex) {
    const mc_tensor_info *ie = expect(ex, "image_embeddings"), *te = expect(ex, "text_embeddings");
    if (!ie || !te) return;
    int D = (int)ie->shape[1];
    static const char *dts[] = {"f32", "f16", "bf16"};
    /* documented tolerances on L2-normalised embeddings (docs/cli.md) */
    static const float tol[] = {1e-6f, 1e-2f, 5e-2f};
    mc_checkpoint *orig = NULL;
    CHECK(!mc_checkpoint_open(fixture(S0 "/open_clip_model.safetensors"), &orig, NULL), "open original");
    if (!orig) return;
    for (int t = 0; t < 3; t++) {
        char out[4300];
        snprintf(out, sizeof out, "%s/conv_%s.safetensors", tmpdir, dts[t]);
        int rc = run("convert %s -o %s --dtype %s --unfolded", fixture(S0), out, dts[t]);
        CHECK(rc == 0, "convert %s: rc %d %s", dts[t], rc, err_text);
        if (rc) continue;
        mc_checkpoint *ck = NULL;
        CHECK(!mc_checkpoint_open(out, &ck, NULL), "converted file does not open");
        if (!ck) continue;
        CHECK(mc_checkpoint_count(ck) == mc_checkpoint_count(orig), "tensor count");
        const char *cfg = mc_checkpoint_metadata(ck, "mobileclip.config");
        char *cfg_orig = slurp(fixture(S0 "/open_clip_config.json"));
        CHECK(cfg && !strcmp(cfg, cfg_orig), "config metadata");
        free(cfg_orig);
        float worst = 0;
        int dtype_ok = 1;
        for (size_t i = 0; i < mc_checkpoint_count(orig); i++) {
            const mc_tensor_info *a = mc_checkpoint_tensor(orig, i);
            const mc_tensor_info *b = mc_checkpoint_find(ck, a->name);
            if (!b || b->numel != a->numel) { worst = INFINITY; break; }
            if (a->dtype != MC_DTYPE_F32) continue;
            if (b->dtype != (t == 0 ? MC_DTYPE_F32 : t == 1 ? MC_DTYPE_F16 : MC_DTYPE_BF16)) dtype_ok = 0;
            float *x = malloc((size_t)a->numel * sizeof *x);
            mc_convert_to_f32(b->dtype, b->data, (size_t)a->numel, x);
            for (int64_t k = 0; k < a->numel; k++) {
                float va = ((const float *)a->data)[k];
                float rel = fabsf(x[k] - va) / (fabsf(va) > 1e-4f ? fabsf(va) : 1e-4f);
                if (rel > worst) worst = rel;
            }
            free(x);
        }
        float wt = t == 0 ? 0.0f : t == 1 ? 1e-3f : 8e-3f;
        CHECK(worst <= wt && dtype_ok, "%s tensors: relative error %g, dtype ok %d", dts[t], worst, dtype_ok);
        mc_checkpoint_close(ck);

        /* embeddings from the converted file */
        float rows[8 * 1024];
        /* no config beside it: the loader takes the one in the metadata */
        rc = run("embed-image -m %s %s %s %s", out, fixture("images/chelsea.png"), fixture("images/astronaut.png"), fixture("images/coffee.png"));
        CHECK(rc == 0, "embed-image from %s: rc %d %s", dts[t], rc, err_text);
        if (rc == 0 && D <= 1024 && parse_json_rows(out_text, rows, 8, D) == 3) {
            float d = max_abs_diff(rows, ie->data, (size_t)3 * D);
            CHECK(d <= (t == 0 ? 1e-4f : tol[t]), "%s image embeddings differ by %g", dts[t], d);
        }
        rc = run("embed-text -m %s 'a photo of a cat' 'a diagram' 'A photo of a dog.' ''", out);
        CHECK(rc == 0, "embed-text from %s: rc %d %s", dts[t], rc, err_text);
        if (rc == 0 && D <= 1024 && parse_json_rows(out_text, rows, 8, D) == 4) {
            float d = max_abs_diff(rows, te->data, (size_t)4 * D);
            CHECK(d <= (t == 0 ? 1e-4f : tol[t]), "%s text embeddings differ by %g", dts[t], d);
        }
    }
    mc_checkpoint_close(orig);
}

/* caption: greedy captions of the fixture images equal the reference's greedy
   tokens (the CLI preprocesses the image files as the reference did). */
static void test_caption(void) {
    mc_checkpoint *ex = NULL;
    char cap[4096];   /* fixture() rotates through a few static buffers: keep a copy */
    snprintf(cap, sizeof cap, "%s", fixture("datacompdr/captioner"));
    CHECK(!mc_checkpoint_open(fixture("datacompdr/captioner/expected.safetensors"), &ex, NULL), "captioner fixture missing");
    const mc_tensor_info *g = ex ? mc_checkpoint_find(ex, "greedy_tokens") : NULL;
    CHECK(g && g->dtype == MC_DTYPE_I64 && g->ndim == 2, "greedy_tokens missing");
    if (g) {
        static const char *imgs[] = {"chelsea.png", "astronaut.png", "coffee.png"};
        int G = (int)g->shape[1];
        for (int i = 0; i < 3 && i < g->shape[0]; i++) {
            int rc = run("caption -m %s --generation-type greedy --min-seq-len 0 --seq-len %d --json %s/images/%s", cap,
                         G + 1, fixtures_dir(), imgs[i]);
            CHECK(rc == 0, "caption %s: exit %d: %s", imgs[i], rc, err_text ? err_text : "");
            const char *t = out_text ? strstr(out_text, "\"tokens\": [[") : NULL;
            CHECK(t && strstr(out_text, "\"captions\": [\""), "caption --json output: %s", out_text ? out_text : "");
            if (!t) continue;
            t += strlen("\"tokens\": [[");
            const int64_t *want = (const int64_t *)g->data + (size_t)i * G;
            int bad = 0;
            for (int j = 0; j < G; j++) {
                char *end;
                long v = strtol(t, &end, 10);
                if (end == t) { bad++; break; }
                if (want[j] != 0 && v != want[j]) bad++;
                t = end + strspn(end, ", ");
            }
            CHECK(bad == 0, "caption %s: greedy tokens differ from the reference: %s", imgs[i], out_text);
        }
    }
    mc_checkpoint_close(ex);
    CHECK(run("caption %s/images/chelsea.png", fixtures_dir()) == 1 && strstr(err_text, "-m"), "caption without -m");
    CHECK(run("caption -m %s --generation-type sample %s/images/chelsea.png", cap, fixtures_dir()) == 1 &&
              strstr(err_text, "generation-type"), "caption with a bad --generation-type: %s", err_text);
    CHECK(run("caption -m %s --seq-len 5 --min-seq-len 5 %s/images/chelsea.png", cap, fixtures_dir()) == 1 &&
              strstr(err_text, "min_seq_len"), "caption with min_seq_len = seq_len: %s", err_text);
    /* five top_p captions, reproducible by seed */
    CHECK(run("caption -m %s --generation-type top_p --top-p 0.9 --fixed-output-length --num 5 --seed 3 %s/images/coffee.png",
              cap, fixtures_dir()) == 0, "caption top_p: %s", err_text);
    char *first = out_text ? strdup(out_text) : NULL;
    int lines = 0;
    for (const char *q = first; q && *q; q++) lines += *q == '\n';
    CHECK(lines == 5, "caption --num 5 printed %d lines", lines);
    run("caption -m %s --generation-type top_p --top-p 0.9 --fixed-output-length --num 5 --seed 3 %s/images/coffee.png", cap,
        fixtures_dir());
    CHECK(first && out_text && !strcmp(first, out_text), "caption top_p with one seed differs between runs:\n%s\n%s", first ? first : "", out_text ? out_text : "");
    free(first);
}

int main(void) {
    CHECK(access(BIN, X_OK) == 0, "%s not built (run from the project root)", BIN);
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    snprintf(out_path, sizeof out_path, "%s/stdout", tmpdir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmpdir);
    mc_checkpoint *ex = NULL;
    CHECK(!mc_checkpoint_open(fixture(S0 "/expected.safetensors"), &ex, NULL), "fixture %s missing",
          fixture(S0 "/expected.safetensors"));
    test_help_and_errors();
    test_list();
    test_bench();
    test_caption();
    if (ex) {
        test_embed(ex);
        test_workers();
        test_classify(ex);
        test_convert(ex);
    }
    mc_checkpoint_close(ex);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    free(out_text);
    free(err_text);
    return test_summary("test_cli");
}
