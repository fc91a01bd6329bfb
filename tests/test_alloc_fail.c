/*
 * test_alloc_fail.c - what happens when memory runs out, as SQLite tests it:
 * the program is linked with -Wl,--wrap for malloc, calloc, realloc,
 * aligned_alloc, posix_memalign and strdup, so that every allocation the
 * library (and this test) makes goes through a counter, and the N-th one
 * fails.  Each operation below runs twice (the first run fills what persists
 * between calls: the kernels' thread-local scratch) to count its allocations,
 * then for every N up to that count with allocation N and every later one failing
 * ("memory is gone"): it must return an error status or, where the code can
 * do without the memory, succeed; never crash; and leak nothing (the ASan
 * build of this test runs under LeakSanitizer).  Every N up to 1,000; past
 * that the first 500 and 500 more spread evenly over the rest (MC_ALLOC_RUNS
 * raises the bound: MC_ALLOC_RUNS=1000000 runs every N, minutes under ASan).
 * Operations: loading every fixture model, tokenizing, decoding every
 * fixture image, reading both DataCompDR shards (records and embeddings),
 * re-applying stored augmentations, and training the fixture train_s0_tiny:
 * opening init.pt and making the trainer, a step, saving the training state,
 * resuming from it.  An argument runs only the operations whose name starts
 * with it (test_alloc_fail train).
 */
#include "test.h"

#include "data/augment.h"
#include "data/shard.h"
#include "kernels/threads.h"
#include "mobileclip.h"
#include "train/check.h"
#include "train/ckpt.h"
#include "train/trainer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
char *__real_strdup(const char *s);

static long g_count;       /* allocations so far */
static long g_fail_at;     /* 0: none fails */
static long g_failed;      /* allocations refused */
static int g_paused;       /* set while an operation prepares what it needs: not counted, never refused */

static int refuse(void) {
    if (g_paused) return 0;
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
/* Only the operations whose name starts with this (the program's argument). */
static const char *g_only = "";

typedef int (*op_fn)(void *arg);   /* 0: success, 1: an error status came back */

/* Runs op twice, counting the allocations of the second run, then with
 * allocation N failing for every N in 1..count, or, past max_runs, for the
 * first max_runs / 2 of them and max_runs / 2 more spread evenly over the rest
 * (the last included). */
static void exhaust(const char *name, op_fn op, void *arg, long max_runs) {
    if (strncmp(name, g_only, strlen(g_only)) != 0) return;
    g_fail_at = 0;
    int rc = op(arg);   /* once to fill what persists between calls (the kernels' thread-local scratch) */
    g_count = 0;
    rc |= op(arg);
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

/* Training with train_s0_tiny, in four operations so that each one's
 * allocations get their own runs: opening init.pt and making the trainer;
 * one step (on a fresh trainer made with the counter paused: a failed step
 * may leave a trainer half updated); saving the training state of a trainer
 * after one step; resuming that trainer from its own saved state (a failed
 * resume changes nothing; a successful one sets the same state again).  The
 * settings, batch, trainer and state are made once; 64-pixel images and two
 * samples keep each step short (the towers take any size that the stride
 * divides). */
typedef struct {
    char init[4096], state[256], out[256];
    mc_train_config cfg;
    mc_dr_loss_params lp;
    mc_adamw_params op;
    mc_checkpoint *ckpt;
    mc_trainer *trainer;   /* after one step, saved to state */
    float *pixels, *teacher[3];
    int32_t *tokens[2];
    mc_train_batch batch;
} train_case;

static int train_case_init(train_case *tc, const char *dir) {
    char p[4096];
    mc_error err;
    memset(tc, 0, sizeof *tc);
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (mc_train_config_load(p, &tc->cfg, &err) != MC_OK) return 1;
    snprintf(tc->init, sizeof tc->init, "%s/init.pt", dir);
    /* tmpfs where there is one: the saves' fsyncs cost nothing there */
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tc->state, sizeof tc->state, "%s/mc_alloc_fail_state_%d.safetensors", tmp, (int)getpid());
    snprintf(tc->out, sizeof tc->out, "%s/mc_alloc_fail_out_%d.safetensors", tmp, (int)getpid());
    mc_checkpoint *ex = NULL;
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    if (mc_checkpoint_open(p, &ex, &err) != MC_OK) return 1;
    int steps, rc = 0;
    if (mc_train_fixture_settings(ex, &tc->lp, &tc->op, &tc->cfg.bn_momentum, &steps, &err) != MC_OK) rc = 1;
    const int n = 2, S = 64, L = tc->cfg.context_length;
    tc->cfg.image_size = S;
    static const char *const tok_names[2] = {"tokens_real", "tokens_syn"};
    static const char *const teacher_names[3] = {"teacher_image", "teacher_text_real", "teacher_text_syn"};
    for (int k = 0; k < 2 && !rc; k++) {
        const mc_tensor_info *t = mc_checkpoint_find(ex, tok_names[k]);
        if (!t || t->ndim != 2 || t->shape[1] != L || t->shape[0] < n) { rc = 1; break; }
        tc->tokens[k] = malloc((size_t)n * L * sizeof(int32_t));
        for (int i = 0; i < n * L; i++) tc->tokens[k][i] = (int32_t)((const int64_t *)t->data)[i];
    }
    for (int k = 0; k < 3 && !rc; k++) {   /* the first n rows of [N, sum(dims)] */
        const mc_tensor_info *t = mc_checkpoint_find(ex, teacher_names[k]);
        if (!t || t->ndim != 2 || t->shape[0] < n) { rc = 1; break; }
        size_t bytes = (size_t)n * t->shape[1] * sizeof(float);
        tc->teacher[k] = malloc(bytes);
        memcpy(tc->teacher[k], t->data, bytes);
    }
    mc_checkpoint_close(ex);
    if (rc) return 1;
    size_t np = (size_t)n * 3 * S * S;
    tc->pixels = malloc(np * sizeof(float));
    for (size_t i = 0; i < np; i++) tc->pixels[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    tc->batch = (mc_train_batch){n, tc->pixels, tc->tokens[0], tc->tokens[1], tc->teacher[0], tc->teacher[1],
                                 tc->teacher[2]};
    mc_train_result res;
    memset(&res, 0, sizeof res);
    if (mc_checkpoint_open(tc->init, &tc->ckpt, &err) != MC_OK ||
        mc_trainer_new(&tc->cfg, tc->ckpt, tc->init, &tc->lp, &tc->op, &tc->trainer, &err) != MC_OK ||
        mc_trainer_train_step(tc->trainer, &tc->batch, &res, &err) != MC_OK ||
        mc_trainer_save(tc->trainer, tc->state, &err) != MC_OK)
        rc = 1;
    return rc;
}

static void train_case_free(train_case *tc) {
    mc_trainer_free(tc->trainer);
    mc_checkpoint_close(tc->ckpt);
    free(tc->pixels);
    for (int k = 0; k < 3; k++) free(tc->teacher[k]);
    for (int k = 0; k < 2; k++) free(tc->tokens[k]);
    unlink(tc->state);
    unlink(tc->out);
}

static int op_train_new(void *arg) {
    train_case *tc = arg;
    mc_error err;
    mc_checkpoint *init = NULL;
    mc_trainer *t = NULL;
    int rc = mc_checkpoint_open(tc->init, &init, &err) != MC_OK ||
             mc_trainer_new(&tc->cfg, init, tc->init, &tc->lp, &tc->op, &t, &err) != MC_OK;
    mc_trainer_free(t);
    mc_checkpoint_close(init);
    return rc;
}

static int op_train_step(void *arg) {
    train_case *tc = arg;
    mc_error err;
    mc_trainer *t = NULL;
    mc_train_result res;
    memset(&res, 0, sizeof res);
    g_paused = 1;
    int rc = mc_trainer_new(&tc->cfg, tc->ckpt, tc->init, &tc->lp, &tc->op, &t, &err) != MC_OK;
    g_paused = 0;
    if (rc) {   /* not an outcome of the counted operation */
        CHECK(0, "train: a trainer with every allocation granted: %s", err.message);
        return 1;
    }
    rc = mc_trainer_train_step(t, &tc->batch, &res, &err) != MC_OK;
    g_paused = 1;
    mc_trainer_free(t);
    g_paused = 0;
    return rc;
}

static int op_train_save(void *arg) {
    train_case *tc = arg;
    mc_error err;
    return mc_trainer_save(tc->trainer, tc->out, &err) != MC_OK;
}

static int op_train_resume(void *arg) {
    train_case *tc = arg;
    mc_error err;
    return mc_trainer_resume(tc->trainer, tc->state, &err) != MC_OK || mc_trainer_steps_done(tc->trainer) != 1;
}

int main(int argc, char **argv) {
    if (argc > 1) g_only = argv[1];
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
    train_case tc;
    mc_kernels_set_threads(1);   /* the counter is not atomic: one thread allocates */
    int ready = train_case_init(&tc, fixture("models/train_s0_tiny")) == 0;
    CHECK(ready, "train_s0_tiny: settings, batch, a trainer after one step and its saved state");
    if (ready) {
        exhaust("train: init.pt + trainer", op_train_new, &tc, MAX_RUNS);
        exhaust("train: step", op_train_step, &tc, MAX_RUNS);
        exhaust("train: save state", op_train_save, &tc, MAX_RUNS);
        exhaust("train: resume state", op_train_resume, &tc, MAX_RUNS);
    }
    train_case_free(&tc);
    return test_summary("test_alloc_fail");
}
