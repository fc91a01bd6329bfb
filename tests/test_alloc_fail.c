/*
 * test_alloc_fail.c - what happens when memory runs out, as SQLite tests it:
 * the program is linked with -Wl,--wrap for malloc, calloc, realloc,
 * aligned_alloc, posix_memalign and strdup, so that every allocation the
 * library (and this test) makes goes through a counter, and the N-th one
 * fails.  Each operation below runs once to count its allocations, then for
 * every N up to that count with allocation N and every later one failing
 * ("memory is gone"): it must return an error status or, where the code can
 * do without the memory, succeed; never crash; and leak nothing (the ASan
 * build of this test runs under LeakSanitizer).
 * Operations: loading every fixture model, tokenizing, decoding every
 * fixture image, reading both DataCompDR shards (records and embeddings),
 * re-applying stored augmentations.
 */
#include "test.h"

#include "data/augment.h"
#include "data/shard.h"
#include "mobileclip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
char *__real_strdup(const char *s);

static long g_count;       /* allocations so far */
static long g_fail_at;     /* 0: none fails */
static long g_failed;      /* allocations refused */

static int refuse(void) {
    g_count++;
    if (g_fail_at && g_count >= g_fail_at) {   /* this one and every later one: "memory is gone" */
        g_failed++;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n) { return refuse() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return refuse() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return refuse() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { return refuse() ? NULL : __real_aligned_alloc(a, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { return refuse() ? ENOMEM : __real_posix_memalign(p, a, n); }
char *__wrap_strdup(const char *s) {
    if (refuse()) return NULL;
    size_t n = strlen(s) + 1;
    char *d = __real_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Runs per operation at most (MC_ALLOC_RUNS in the environment raises it). */
static long MAX_RUNS = 1000;

typedef int (*op_fn)(void *arg);   /* 0: success, 1: an error status came back */

/* Runs op once to count its allocations, then with allocation N failing for
 * every N in 1..count, or, past max_runs, for the first max_runs / 2 of them
 * and max_runs / 2 more spread evenly over the rest (the last included). */
static void exhaust(const char *name, op_fn op, void *arg, long max_runs) {
    g_fail_at = 0;
    g_count = 0;
    int rc = op(arg);
    long total = g_count;
    CHECK(rc == 0, "%s: fails with all the memory it wants", name);
    long runs = 0, errors = 0, recovered = 0, head = total <= max_runs ? total : max_runs / 2;
    long rest = total - head, spread = total <= max_runs ? 0 : max_runs - head;
    for (long i = 0; i < head + spread; i++) {
        long n = i < head ? i + 1 : head + (rest * (i - head + 1)) / spread;
        g_count = 0;
        g_failed = 0;
        g_fail_at = n;
        rc = op(arg);
        g_fail_at = 0;
        runs++;
        if (rc != 0) errors++;
        else if (g_failed) recovered++;   /* a refused allocation the code could do without */
    }
    CHECK(errors + recovered == runs, "%s: %ld of %ld runs accounted for", name, errors + recovered, runs);
    printf("%-30s %6ld allocations, %s%ld runs with the N-th failing: %ld errors, %ld recoveries, no crash\n", name,
           total, total <= max_runs ? "every N: " : "sampled N: ", runs, errors, recovered);
    fflush(stdout);
}

/* ---- operations ---- */

static int op_model(void *arg) {
    mc_model_params mp = mc_model_default_params();
    mp.load_tokenizer = 0;   /* the tokenizer has its own run */
    mc_model *m = NULL;
    mc_error err;
    mc_status st = mc_model_load((const char *)arg, &mp, &m, &err);
    mc_model_free(m);
    return st != MC_OK;
}

static int op_tokenize(void *arg) {
    mc_tokenizer *tok = NULL;
    mc_error err;
    if (mc_tokenizer_load(fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &tok, &err) != MC_OK) return 1;
    int32_t ids[MC_CONTEXT_LENGTH];
    mc_status st = mc_tokenizer_encode(tok, (const char *)arg, MC_CONTEXT_LENGTH, ids, &err);
    mc_tokenizer_free(tok);
    return st != MC_OK;
}

static int op_image(void *arg) {
    mc_image img = {0};
    mc_error err;
    mc_status st = mc_image_load((const char *)arg, 1, &img, &err);
    mc_image_free(&img);
    return st != MC_OK;
}

static int op_shard(void *arg) {
    mc_shard_reader *r = NULL;
    mc_error err;
    mc_shard_params sp = mc_shard_default_params();
    sp.strict = 1;
    if (mc_shard_open((const char *)arg, &sp, &r, &err) != MC_OK) return 1;
    int rc = 0, n = 0;
    for (;;) {
        mc_dr_record *rec = NULL;
        if (mc_shard_next(r, &rec, &err) != MC_OK) { rc = 1; break; }
        if (!rec) break;
        n++;
        /* re-apply the first stored augmentation of each sample */
        mc_image img = {0}, out = {0};
        mc_aug_params p;
        mc_aug_layout layout = mc_aug_layout_datacompdr();
        if (mc_image_load_memory(rec->image, rec->image_size, 0, &img, &err) != MC_OK ||
            mc_aug_parse(&rec->aug[0], &layout, &p, &err) != MC_OK ||
            mc_aug_reapply(&img, &p, 64, MC_INTERP_BICUBIC, &out, &err) != MC_OK)
            rc = 1;
        mc_image_free(&img);
        mc_image_free(&out);
        mc_dr_record_free(rec);
        if (rc) break;
    }
    mc_shard_close(r);
    return rc || n != 3;
}

int main(void) {
    if (getenv("MC_ALLOC_RUNS")) MAX_RUNS = atol(getenv("MC_ALLOC_RUNS"));
    static const char *const models[] = {"models/v1_mci_mct", "models/v1_vit_causal", "models/oc_mobileclip_s1",
                                         "models/oc_mobileclip2_s3", "models/oc_mobileclip2_l14"};
    char path[4096];
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        snprintf(path, sizeof path, "%s", fixture(models[i]));
        char name[64];
        snprintf(name, sizeof name, "load %s", models[i] + 7);
        exhaust(name, op_model, path, MAX_RUNS);
    }
    exhaust("tokenize", op_tokenize, "Hello, World! &amp; caf\xc3\xa9 \xf0\x9f\x98\x80 don't", MAX_RUNS);
    static const char *const images[] = {"chelsea.png", "logo.png", "foo3x5x4indexed.png", "camera.png",
                                         "hubble_deep_field.jpg", "chelsea_cmyk.jpg", "chelsea_exif_rot6.jpg"};
    for (size_t i = 0; i < sizeof images / sizeof *images; i++) {
        char rel[128], name[64];
        snprintf(rel, sizeof rel, "images/%s", images[i]);
        snprintf(path, sizeof path, "%s", fixture(rel));
        snprintf(name, sizeof name, "decode %s", images[i]);
        exhaust(name, op_image, path, MAX_RUNS);
    }
    snprintf(path, sizeof path, "%s", fixture("datacompdr/shards/00000000.tar"));
    exhaust("shard npz + augment", op_shard, path, MAX_RUNS);
    snprintf(path, sizeof path, "%s", fixture("datacompdr/shards/00000000_bf16.tar"));
    exhaust("shard pth.gz + augment", op_shard, path, MAX_RUNS);
    return test_summary("test_alloc_fail");
}
