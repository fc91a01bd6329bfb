/*
 * test_run.c - training runs (src/run/run.h) on the DataCompDR fixture shard
 * with the train_s0_tiny model:
 *   - the run's first step equals a trainer step made by hand on the
 *     loader's first batch with the fixture's settings (loss and terms bit
 *     for bit, every tensor of the epoch checkpoint bit for bit), and the
 *     trainer itself is the reference's (train-step-check, test_train_step);
 *   - a run resumed from its mid-run checkpoint logs the same losses and ends
 *     with the same tensors as the uninterrupted run;
 *   - a corrupt checkpoint and one of another model are refused, named, and
 *     left unchanged; the run folder loads as a model;
 *   - a repeated small batch is memorised (the loss falls).
 */
#include "test.h"

#include "core/json.h"
#include "data/loader.h"
#include "eval/eval.h"
#include "io/config.h"
#include "run/run.h"
#include "train/check.h"
#include "train/ckpt.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *vocab(void) { return fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"); }

/* The fixture's settings for the shard (24 + 16 wide teachers). */
static mc_run_params base_params(const char *name) {
    mc_run_params p = mc_run_default_params();
    p.train_data = fixture("datacompdr/shards/00000000.tar");
    p.model = fixture("models/train_s0_tiny");
    p.pretrained = fixture("models/train_s0_tiny/init.pt");
    p.dataset_reinforcement = 1;
    p.n_teachers = 2;
    p.teacher_dims[0] = 24;
    p.teacher_dims[1] = 16;
    p.teacher_scales[0] = p.teacher_scales[1] = 100.0f;
    p.loss_weights[0] = 0.25f;
    p.loss_weights[1] = 0.75f;
    p.batch_size = 3;
    p.epochs = 1;
    p.lr = 1e-3f;
    p.beta1 = 0.9f;
    p.beta2 = 0.95f;
    p.eps = 1e-6f;
    p.wd = 0.2f;
    p.warmup = 0;
    p.shuffle_buffer = 0;
    p.workers = 2;
    p.logs = tmpdir;
    p.name = name;
    p.vocab_path = vocab();
    p.log_every_n_steps = 0;
    return p;
}

/* The "loss" field of line `line` (0-based) of a train.jsonl, as text. */
static int log_field(const char *run, int line, const char *key, char *out, size_t cap) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/train.jsonl", tmpdir, run);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[4096];
    int k = 0, found = -1;
    while (fgets(buf, sizeof buf, f)) {
        if (k++ != line) continue;
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\": ", key);
        char *q = strstr(buf, pat);
        if (q) {
            q += strlen(pat);
            size_t n = strcspn(q, ",}");
            if (n >= cap) n = cap - 1;
            memcpy(out, q, n);
            out[n] = 0;
            found = 0;
        }
    }
    fclose(f);
    return found;
}

static int count_lines(const char *run) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/train.jsonl", tmpdir, run);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* Every tensor of two checkpoints equal, bit for bit (names from a). */
static int same_tensors(const char *pa, const char *pb, int skip_optim) {
    mc_checkpoint *a = NULL, *b = NULL;
    mc_error err;
    if (mc_checkpoint_open(pa, &a, &err) != MC_OK || mc_checkpoint_open(pb, &b, &err) != MC_OK) {
        mc_checkpoint_close(a);
        return 0;
    }
    int ok = mc_checkpoint_count(a) > 0;
    for (size_t i = 0; ok && i < mc_checkpoint_count(a); i++) {
        const mc_tensor_info *x = mc_checkpoint_tensor(a, i);
        if (skip_optim && !strncmp(x->name, "optim.", 6)) continue;
        const mc_tensor_info *y = mc_checkpoint_find(b, x->name);
        ok = y && y->nbytes == x->nbytes && !memcmp(x->data, y->data, x->nbytes);
        if (!ok) fprintf(stderr, "  differs: %s\n", x->name);
    }
    mc_checkpoint_close(a);
    mc_checkpoint_close(b);
    return ok;
}

static void test_first_step_by_hand(void) {
    mc_error err;
    mc_error_clear(&err);
    mc_run_params p = base_params("first");
    mc_run_result res;
    mc_status st = mc_run_train(&p, &res, &err);
    CHECK(st == MC_OK, "run: %s", err.message);
    CHECK(res.steps == 1 && res.samples == 3, "one step of 3 samples: %lld, %lld", (long long)res.steps,
          (long long)res.samples);

    /* the same step by hand: the loader's first batch, a trainer from init.pt */
    mc_tokenizer *tok = NULL;
    st = mc_tokenizer_load(vocab(), &tok, &err);
    CHECK(st == MC_OK, "tokenizer: %s", err.message);
    mc_loader_params lp = mc_loader_default_params();
    lp.shards = p.train_data;
    lp.tok = tok;
    lp.image_size = 256;
    lp.batch_size = 3;
    lp.shuffle_buffer = 0;
    lp.workers = 1;
    mc_loader *l = NULL;
    mc_loader_batch b;
    int end = 0;
    st = mc_loader_open(&lp, &l, &err);
    if (st == MC_OK) st = mc_loader_next(l, &b, &end, &err);
    CHECK(st == MC_OK && !end && b.n == 3, "loader: %s", err.message);
    mc_train_config cfg;
    mc_checkpoint *init = NULL;
    mc_trainer *t = NULL;
    st = mc_train_config_load(fixture("models/train_s0_tiny/config.json"), &cfg, &err);
    if (st == MC_OK) st = mc_checkpoint_open(p.pretrained, &init, &err);
    /* the fixture's own settings (expected.safetensors metadata), with the shard's teachers */
    mc_checkpoint *ex = NULL;
    mc_dr_loss_params loss;
    mc_adamw_params op;
    int steps = 0;
    if (st == MC_OK) st = mc_checkpoint_open(fixture("models/train_s0_tiny/expected.safetensors"), &ex, &err);
    if (st == MC_OK) st = mc_train_fixture_settings(ex, &loss, &op, &cfg.bn_momentum, &steps, &err);
    CHECK(st == MC_OK, "fixture settings: %s", err.message);
    CHECK(loss.w_contrastive == p.loss_weights[0] && loss.w_distill == p.loss_weights[1] && op.lr == p.lr &&
              op.beta2 == p.beta2 && op.eps == p.eps && op.weight_decay == p.wd,
          "the run's settings are the fixture's");
    loss.teacher_dims[0] = 24;
    loss.teacher_dims[1] = 16;
    op.total_steps = 1;
    op.warmup_steps = 0;
    if (st == MC_OK) st = mc_trainer_new(&cfg, init, p.pretrained, &loss, &op, &t, &err);
    mc_train_result r;
    memset(&r, 0, sizeof r);
    if (st == MC_OK) {
        mc_train_batch tb = {b.n, b.pixels, b.tokens, b.syn_tokens, b.teacher_image, b.teacher_text, b.teacher_syn};
        st = mc_trainer_train_step(t, &tb, &r, &err);
    }
    CHECK(st == MC_OK, "step by hand: %s", err.message);
    char want[64], got[64];
    snprintf(want, sizeof want, "%.9g", (double)r.loss);
    CHECK(log_field("first", 0, "loss", got, sizeof got) == 0 && !strcmp(want, got), "loss: run %s, by hand %s", got, want);
    const char *names[4] = {"contrastive_real", "distill_real", "contrastive_syn", "distill_syn"};
    for (int k = 0; k < 4; k++) {
        snprintf(want, sizeof want, "%.9g", (double)r.terms[k]);
        CHECK(log_field("first", 0, names[k], got, sizeof got) == 0 && !strcmp(want, got), "%s: run %s, by hand %s",
              names[k], got, want);
    }
    /* every tensor after the step, and the moments */
    char mine[512], theirs[512];
    snprintf(mine, sizeof mine, "%s/by_hand.safetensors", tmpdir);
    snprintf(theirs, sizeof theirs, "%s/first/checkpoints/epoch_1.safetensors", tmpdir);
    CHECK(mc_trainer_save(t, mine, &err) == MC_OK, "save: %s", err.message);
    CHECK(same_tensors(mine, theirs, 0), "the run's checkpoint equals the step by hand, tensor by tensor");
    mc_trainer_free(t);
    mc_checkpoint_close(init);
    mc_checkpoint_close(ex);
    mc_loader_close(l);
    mc_tokenizer_free(tok);

    /* the run folder is a model */
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = vocab();
    mc_model *m = NULL;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/first", tmpdir);
    st = mc_model_load(dir, &mp, &m, &err);
    CHECK(st == MC_OK, "the run folder loads as a model: %s", err.message);
    mc_model_free(m);
    char latest[4400];
    CHECK(mc_config_latest_run_checkpoint(dir, latest, sizeof latest, &err) == MC_OK && !strcmp(latest, theirs),
          "latest checkpoint %s", latest);
}

static void test_resume(void) {
    mc_error err;
    mc_error_clear(&err);
    /* uninterrupted: two shards (6 samples), 2 steps an epoch, 3 epochs */
    char data[1024];
    snprintf(data, sizeof data, "%s::%s", fixture("datacompdr/shards/00000000.tar"),
             fixture("datacompdr/shards/00000000_bf16.tar"));
    mc_run_params p = base_params("whole");
    p.train_data = data;
    p.epochs = 3;
    p.warmup = 2;
    p.shuffle_buffer = 4;
    p.save_every_n_steps = 1;
    mc_run_result res;
    CHECK(mc_run_train(&p, &res, &err) == MC_OK && res.steps == 6, "whole run: %s", err.message);

    /* the same run stopped (the flag SIGINT sets, raised before the first
     * step: the run stops after step 1 with a checkpoint), then resumed */
    volatile int stop = 1;
    mc_run_params q = p;
    q.name = "parts";
    q.stop = (const volatile int *)&stop;
    CHECK(mc_run_train(&q, &res, &err) == MC_OK && res.interrupted && res.steps == 1, "stopped run: %s (steps %lld)",
          err.message, (long long)res.steps);
    stop = 0;
    q.resume = "latest";
    CHECK(mc_run_train(&q, &res, &err) == MC_OK && !res.interrupted && res.steps == 6, "resumed: %s", err.message);
    CHECK(count_lines("parts") == 6, "6 logged steps, no duplicates: %d", count_lines("parts"));
    for (int i = 0; i < 6; i++) {
        char a[64], b[64];
        const char *keys[3] = {"loss", "grad_norm", "lr"};
        for (int k = 0; k < 3; k++)
            CHECK(log_field("whole", i, keys[k], a, sizeof a) == 0 && log_field("parts", i, keys[k], b, sizeof b) == 0 &&
                      !strcmp(a, b), "step %d %s: %s vs %s", i + 1, keys[k], a, b);
    }
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/whole/checkpoints/epoch_3.safetensors", tmpdir);
    snprintf(pb, sizeof pb, "%s/parts/checkpoints/epoch_3.safetensors", tmpdir);
    CHECK(same_tensors(pa, pb, 0), "the resumed run ends with the same weights and moments");

    /* a run folder that exists needs --resume */
    CHECK(mc_run_train(&p, &res, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "exists"), "existing folder: %s",
          err.message);
    /* resuming a finished run does nothing but remove what a write cut
     * short left behind */
    char stale[512];
    snprintf(stale, sizeof stale, "%s/whole/checkpoints/step_9.safetensors.tmp", tmpdir);
    FILE *sf = fopen(stale, "w");
    if (sf) { fputs("half a file", sf); fclose(sf); }
    p.resume = "latest";
    CHECK(mc_run_train(&p, &res, &err) == MC_OK && res.steps == 6 && count_lines("whole") == 6, "finished run");
    CHECK(access(stale, F_OK) != 0, "the unfinished temporary file is removed");

    /* a corrupt checkpoint is refused, named and left as it is */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/whole/checkpoints/epoch_3.safetensors", tmpdir);
    FILE *f = fopen(bad, "r+b");
    CHECK(f != NULL, "open %s", bad);
    long flip = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        flip = ftell(f) - 100;
        fseek(f, flip, SEEK_SET);
        int c = fgetc(f);
        fseek(f, flip, SEEK_SET);
        fputc(c ^ 0x40, f);
        fclose(f);
    }
    struct stat s0, s1;
    stat(bad, &s0);
    mc_run_params c = p;
    c.name = "whole";
    c.epochs = 4;
    c.resume = bad;
    mc_status st = mc_run_train(&c, &res, &err);
    CHECK(st == MC_ERR_FORMAT && strstr(err.message, "corrupt") && strstr(err.message, "epoch_3"),
          "corrupt checkpoint: %s", err.message);
    stat(bad, &s1);
    CHECK(s0.st_mtime == s1.st_mtime && s0.st_size == s1.st_size, "the corrupt file is left unchanged");
    c.resume = "latest";
    CHECK(mc_run_train(&c, &res, &err) != MC_OK && strstr(err.message, "corrupt"), "latest is the corrupt one: %s",
          err.message);

    /* a checkpoint of another model is refused with the tensor that differs */
    mc_run_params o = base_params("other");
    o.model = fixture("models/v1_mci_base");
    o.pretrained = NULL;
    o.resume = pa;   /* a train_s0_tiny state (mct text tower) for an MCi + base model */
    st = mc_run_train(&o, &res, &err);
    CHECK((st == MC_ERR_MISSING_TENSOR || st == MC_ERR_SHAPE) && strstr(err.message, "another model"),
          "another model: %s", err.message);
}

/* Mean of the "loss" of lines [a, b). */
static double mean_loss(const char *run, int a, int b) {
    double s = 0;
    char v[64];
    for (int i = a; i < b; i++) s += log_field(run, i, "loss", v, sizeof v) == 0 ? atof(v) : NAN;
    return s / (b - a);
}

/* --accum-freq 2 with micro-batches of 3 against one batch of 6: the two
 * fixture shards hold the same 3 samples (and the same per-key choices), so
 * the micro-batches are identical and BatchNorm's batch statistics of one
 * equal those of the batch of 6; open_clip's accumulation (the loss over
 * all 6 together) then gives the same losses and weights up to float
 * rounding.  Averaging independent micro-batches would not: their
 * contrastive losses have 3 candidates, the batch of 6 has 6. */
static void test_accum(void) {
    mc_error err;
    mc_error_clear(&err);
    char data[1024];
    snprintf(data, sizeof data, "%s::%s", fixture("datacompdr/shards/00000000.tar"),
             fixture("datacompdr/shards/00000000_bf16.tar"));
    mc_run_params p = base_params("batch6");
    p.train_data = data;
    p.batch_size = 6;
    p.epochs = 2;
    mc_run_result res;
    CHECK(mc_run_train(&p, &res, &err) == MC_OK && res.steps == 2, "batch 6: %s", err.message);
    mc_run_params q = p;
    q.name = "accum2";
    q.batch_size = 3;
    q.accum_freq = 2;
    CHECK(mc_run_train(&q, &res, &err) == MC_OK && res.steps == 2, "accum 2: %s", err.message);
    const char *keys[5] = {"loss", "contrastive_real", "distill_real", "contrastive_syn", "distill_syn"};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 5; k++) {
            char a[64], b[64];
            CHECK(log_field("batch6", i, keys[k], a, sizeof a) == 0 && log_field("accum2", i, keys[k], b, sizeof b) == 0 &&
                      fabs(atof(a) - atof(b)) <= 2e-6 * fabs(atof(a)),
                  "step %d %s: batch 6 %s, accumulated %s", i + 1, keys[k], a, b);
        }
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/batch6/checkpoints/epoch_2.safetensors", tmpdir);
    snprintf(pb, sizeof pb, "%s/accum2/checkpoints/epoch_2.safetensors", tmpdir);
    mc_checkpoint *a = NULL, *b = NULL;
    CHECK(mc_checkpoint_open(pa, &a, &err) == MC_OK && mc_checkpoint_open(pb, &b, &err) == MC_OK, "open: %s", err.message);
    double worst = 0;
    size_t compared = 0, n_el = 0, n_far = 0;
    for (size_t i = 0; a && b && i < mc_checkpoint_count(a); i++) {
        const mc_tensor_info *x = mc_checkpoint_tensor(a, i), *y = mc_checkpoint_find(b, x->name);
        /* parameters only: the running statistics update twice per step in
         * open_clip's accumulation, and with 3 samples instead of 6 */
        if (x->dtype != MC_DTYPE_F32 || strstr(x->name, "running_") || !strncmp(x->name, "optim.", 6)) continue;
        if (!y || y->nbytes != x->nbytes) { worst = INFINITY; break; }
        const float *u = x->data, *v = y->data;
        for (int64_t j = 0; j < x->numel; j++) {
            double d = fabs((double)u[j] - v[j]);
            if (d > worst) worst = d;
            n_far += d > 1e-6;
            n_el++;
        }
        compared++;
    }
    /* AdamW moves an element by about lr whatever its gradient's size, so an
     * element whose gradient is at the level of float rounding can differ by
     * up to 2 lr after 2 steps; the rest must agree */
    fprintf(stderr, "accum: %zu of %zu weights differ by more than 1e-6 (worst %g)\n", n_far, n_el, worst);
    CHECK(compared > 100 && worst <= 2 * 2 * p.lr && n_far * 1000 < n_el,
          "weights after 2 steps: %zu tensors, %zu of %zu elements differ by more than 1e-6, worst %g", compared, n_far,
          n_el, worst);
    mc_checkpoint_close(a);
    mc_checkpoint_close(b);
}

static void test_memorise(void) {
    mc_error err;
    mc_error_clear(&err);
    /* plain CLIP on the same 3 samples every epoch (fresh crops): the
     * contrastive loss goes towards 0 (measured 2.18 -> 0.002 in 15 steps) */
    mc_run_params p = base_params("memorise");
    p.dataset_reinforcement = 0;
    p.n_teachers = 0;
    p.loss_weights[0] = 1;
    p.loss_weights[1] = 0;
    p.epochs = 10;
    p.save_frequency = 0;
    mc_run_result res;
    CHECK(mc_run_train(&p, &res, &err) == MC_OK && res.steps == 10, "memorise: %s", err.message);
    double first = mean_loss("memorise", 0, 1), last = mean_loss("memorise", 7, 10);
    CHECK(last < 0.1 * first, "plain: the same 3 samples every epoch: loss %g -> %g", first, last);
    char path[512];
    snprintf(path, sizeof path, "%s/memorise/checkpoints/epoch_10.safetensors", tmpdir);
    CHECK(access(path, F_OK) == 0, "the last epoch is saved even with --save-frequency 0");
    /* reinforced: the distillation term has a floor (the teachers' entropy)
     * and the stored augmentation changes every epoch; the loss still falls
     * (measured 4.20 -> about 2.4) */
    mc_run_params q = base_params("memorise_dr");
    q.epochs = 12;
    q.save_frequency = 0;
    CHECK(mc_run_train(&q, &res, &err) == MC_OK && res.steps == 12, "memorise dr: %s", err.message);
    first = mean_loss("memorise_dr", 0, 1), last = mean_loss("memorise_dr", 9, 12);
    CHECK(last < 0.75 * first, "reinforced: loss %g -> %g", first, last);
}

static void test_modes(void) {
    mc_error err;
    mc_error_clear(&err);
    mc_run_result res;
    /* plain CLIP on the same shard: no teachers, one caption batch */
    mc_run_params p = base_params("plain");
    p.dataset_reinforcement = 0;
    p.n_teachers = 0;
    p.loss_weights[0] = 1;
    p.loss_weights[1] = 0;
    p.epochs = 2;
    CHECK(mc_run_train(&p, &res, &err) == MC_OK && res.steps == 2, "plain: %s", err.message);
    char v[64];
    CHECK(log_field("plain", 0, "distill_loss", v, sizeof v) == 0 && atof(v) == 0, "plain: no distillation (%s)", v);
    CHECK(log_field("plain", 0, "contrastive_syn", v, sizeof v) == 0 && atof(v) == 0, "plain: no synthetic batch");
    CHECK(log_field("plain", 0, "contrastive_real", v, sizeof v) == 0 && atof(v) > 0, "plain: a contrastive loss");
    /* plain with a distillation weight and no teachers is refused */
    p.name = "plain2";
    p.loss_weights[1] = 0.5f;
    CHECK(mc_run_train(&p, &res, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "teachers"), "%s", err.message);
    /* mix-synthetic: one caption batch with teachers */
    mc_run_params m = base_params("mix");
    m.mix_synthetic = 1;
    m.mix_synthetic_ratio = 0.5f;
    CHECK(mc_run_train(&m, &res, &err) == MC_OK && res.steps == 1, "mix-synthetic: %s", err.message);
    CHECK(log_field("mix", 0, "distill_syn", v, sizeof v) == 0 && atof(v) == 0, "mix: no second batch");
    CHECK(log_field("mix", 0, "distill_real", v, sizeof v) == 0 && atof(v) > 0, "mix: distillation");
    /* online teachers: two fixture models embed the batch during training
     * (32 + 32 wide), replacing the stored embeddings */
    mc_run_params o = base_params("online");
    o.dataset_reinforcement = 0;
    o.n_teachers = 0;
    o.n_distill_models = 2;
    o.distill_models[0] = fixture("models/v1_mci_mct");
    o.distill_models[1] = fixture("models/v1_mci_base");
    o.epochs = 2;
    CHECK(mc_run_train(&o, &res, &err) == MC_OK && res.steps == 2, "online teachers: %s", err.message);
    CHECK(log_field("online", 1, "distill_real", v, sizeof v) == 0 && atof(v) > 0, "online: distillation (%s)", v);
    CHECK(log_field("online", 1, "time_teachers", v, sizeof v) == 0 && atof(v) > 0, "online: teacher time logged");
    /* a teacher of another image size is refused */
    mc_run_params o2 = o;
    o2.name = "online2";
    o2.distill_models[1] = fixture("models/v1_vit_causal");
    mc_status st = mc_run_train(&o2, &res, &err);
    CHECK(st == MC_ERR_UNSUPPORTED && strstr(err.message, "image size"), "teacher size: %s", err.message);
    /* a student in the OpenCLIP layout (MobileCLIP2-S0: timm fastvit_mci0 + the
     * OpenCLIP text transformer), its own names kept: the run folder loads */
    mc_run_params oc = base_params("openclip");
    oc.model = fixture("models/oc_mobileclip2_s0");
    oc.pretrained = NULL;   /* the folder's open_clip_model.safetensors */
    oc.dataset_reinforcement = 0;
    oc.n_teachers = 0;
    oc.loss_weights[0] = 1;
    oc.loss_weights[1] = 0;
    CHECK(mc_run_train(&oc, &res, &err) == MC_OK && res.steps == 1, "OpenCLIP-layout student: %s", err.message);
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = vocab();
    mc_model *om = NULL;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/openclip", tmpdir);
    CHECK(mc_model_load(dir, &mp, &om, &err) == MC_OK, "the OpenCLIP run loads as a model: %s", err.message);
    mc_model_info info;
    if (om) mc_model_get_info(om, &info);
    CHECK(om && !strcmp(info.family, "open_clip"), "family %s", om ? info.family : "-");
    mc_model_free(om);
    /* teacher widths that do not add up to the shard's */
    mc_run_params w = base_params("widths");
    w.teacher_dims[0] = 20;
    CHECK(mc_run_train(&w, &res, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "40 wide"), "%s", err.message);
}

/* Evaluation at epoch ends: results.jsonl holds, per evaluated epoch, the
 * figures mc_eval gives on that epoch's checkpoint. */
static void test_eval_during_training(void) {
    mc_error err;
    mc_error_clear(&err);
    char tree[512], cls[600], src[PATH_MAX + 64], dst[700];
    snprintf(tree, sizeof tree, "%s/imagefolder", tmpdir);
    const char *classes[3] = {"cat", "person", "cup"};
    const char *images[3][2] = {{"chelsea.png", "chelsea_q90.jpg"}, {"astronaut.png", "camera.png"},
                                {"coffee.png", "hubble_deep_field.jpg"}};
    mkdir(tree, 0755);
    for (int c = 0; c < 3; c++) {
        snprintf(cls, sizeof cls, "%s/%s", tree, classes[c]);
        mkdir(cls, 0755);
        for (int i = 0; i < 2; i++) {
            char abs[PATH_MAX];
            if (!realpath(fixture("images"), abs)) abs[0] = 0;
            snprintf(src, sizeof src, "%s/%s", abs, images[c][i]);
            snprintf(dst, sizeof dst, "%s/%s", cls, images[c][i]);
            CHECK(symlink(src, dst) == 0, "symlink %s", dst);
        }
    }
    mc_run_params p = base_params("evaluated");
    p.epochs = 2;
    p.imagenet_val = tree;
    p.retrieval_data = fixture("datacompdr/shards/00000000.tar");
    p.zeroshot_frequency = 1;
    mc_run_result res;
    CHECK(mc_run_train(&p, &res, &err) == MC_OK && res.steps == 2, "run with evaluation: %s", err.message);
    char path[512];
    snprintf(path, sizeof path, "%s/evaluated/results.jsonl", tmpdir);
    char *text = NULL;
    size_t len = 0;
    CHECK(mc_file_read_all(path, 1 << 20, &text, &len, &err) == MC_OK, "results.jsonl: %s", err.message);
    int lines = 0;
    for (size_t i = 0; text && i < len; i++) lines += text[i] == '\n';
    CHECK(lines == 2, "one evaluation per epoch: %d lines", lines);
    /* the second line against mc_eval on the epoch-2 checkpoint */
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = vocab();
    mc_model *m = NULL;
    snprintf(path, sizeof path, "%s/evaluated/checkpoints/epoch_2.safetensors", tmpdir);
    CHECK(mc_model_load(path, &mp, &m, &err) == MC_OK, "load: %s", err.message);
    mc_eval_params ep = mc_eval_default_params();
    mc_eval_results er;
    mc_eval_results_init(&er);
    er.epoch = 2;
    CHECK(m && mc_eval_zeroshot(m, tree, NULL, NULL, &ep, &er.zeroshot, &err) == MC_OK, "zeroshot: %s", err.message);
    CHECK(m && mc_eval_retrieval(m, p.retrieval_data, &ep, &er.retrieval, &err) == MC_OK, "retrieval: %s", err.message);
    char *json = NULL;
    CHECK(mc_eval_results_json(&er, &json, &err) == MC_OK, "json");
    const char *second = text ? strchr(text, '\n') : NULL;
    CHECK(second && json && strstr(second + 1, json + 1) != NULL, "epoch 2's figures: %s\nin results.jsonl: %s",
          json ? json : "", second ? second + 1 : "");
    CHECK(er.zeroshot.n_images == 6 && er.zeroshot.n_classes == 3 && er.retrieval.n_samples == 3,
          "evaluated 6 images of 3 classes and 3 pairs");
    free(json);
    free(text);
    mc_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mc_test_run_%d", (int)getpid());
    mkdir(tmpdir, 0755);
    test_first_step_by_hand();
    test_resume();
    test_accum();
    test_memorise();
    test_modes();
    test_eval_during_training();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (!t_fail && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("test_run");
}
