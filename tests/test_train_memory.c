/*
 * test_train_memory.c - training memory: gradient checkpointing gives the
 * numbers of a plain run bit for bit (losses, every weight, BatchNorm
 * running statistics and counters, after two steps) on the training fixture
 * train_s0_tiny (MCi0 + mct: RepMixer and attention blocks with BatchNorm)
 * and on the OpenCLIP ViT fixture oc_mobileclip_b (timm vit_base_mci_224:
 * transformer blocks in both towers); and the activation memory of a step,
 * by the trainer's own count (mc_trainer_memory, exact and deterministic),
 * stays under stated bounds, with and without checkpointing.
 */
#include "test.h"
#include "train/check.h"
#include "train/trainer.h"

#include <stdint.h>

/* train_s0_tiny at batch 4, the fixture's batch (one step; its 256 x 256
 * stem, which is not checkpointed, holds most of it).  Measured with the
 * lifetimes of train/trainer.c: 74.5 MB plain, 45.0 MB checkpointed, of the
 * 219.8 MB that a step makes in all (what the tape held when it kept every
 * tensor and gradient to the end of the step).  The bounds leave room for
 * small changes but not for a lost lifetime (an activation or a gradient
 * kept to the end of the step). */
#define TINY_PLAIN_MB 80.0
#define TINY_CKPT_MB 50.0
#define TINY_PLAIN_OF_MADE 0.4     /* plain peak / all made */
#define TINY_CKPT_OF_PLAIN 0.7     /* checkpointed peak / plain peak */

static int32_t *tok32(const mc_tensor_info *t, int64_t n) {
    int32_t *o = malloc((size_t)n * sizeof *o + 4);
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)((const int64_t *)t->data)[i];
    return o;
}

typedef struct run {
    float loss[2];
    mc_trainer *t;
    double peak_mb, made_mb;
} run;

/* Two training steps of a fresh trainer on the batch, plain or checkpointed. */
static int two_steps(const mc_train_config *cfg, const mc_checkpoint *ck, const char *path,
                     const mc_dr_loss_params *lp, const mc_adamw_params *op, const mc_train_batch *b,
                     int ckpt, run *r) {
    mc_error err;
    mc_error_clear(&err);
    memset(r, 0, sizeof *r);
    if (mc_trainer_new(cfg, ck, path, lp, op, &r->t, &err) != MC_OK) {
        CHECK(0, "%s: trainer: %s", path, err.message);
        return -1;
    }
    mc_trainer_set_grad_checkpointing(r->t, ckpt);
    for (int s = 0; s < 2; s++) {
        mc_train_result res;
        memset(&res, 0, sizeof res);
        if (mc_trainer_train_step(r->t, b, &res, &err) != MC_OK) {
            CHECK(0, "%s: step %d (checkpointing %d): %s", path, s + 1, ckpt, err.message);
            return -1;
        }
        r->loss[s] = res.loss;
        if (s == 0) {
            mc_train_memory m;
            mc_trainer_memory(r->t, &m);
            r->peak_mb = m.peak_bytes / 1048576.0;
            r->made_mb = m.made_bytes / 1048576.0;
        }
    }
    return 0;
}

/* Bit for bit: losses, weights, buffers and counters of the two runs. */
static void compare(const char *name, const run *a, const run *c) {
    CHECK(memcmp(a->loss, c->loss, sizeof a->loss) == 0, "%s: losses %.9g %.9g vs checkpointed %.9g %.9g", name,
          a->loss[0], a->loss[1], c->loss[0], c->loss[1]);
    size_t diff = 0, n = mc_trainer_count(a->t), moved = 0;
    const char *first = NULL;
    CHECK(n == mc_trainer_count(c->t) && n > 0, "%s: %zu tensors vs %zu", name, n, mc_trainer_count(c->t));
    for (size_t i = 0; i < n && n == mc_trainer_count(c->t); i++) {
        mc_tparam *x = mc_trainer_param(a->t, i), *y = mc_trainer_param(c->t, i);
        int d = x->is_counter ? x->count != y->count : memcmp(x->w, y->w, x->n * sizeof(float)) != 0;
        if (d && !first) first = x->name;
        diff += d;
        moved += x->is_counter && x->count == 2;   /* BatchNorm counted once per step */
    }
    CHECK(diff == 0, "%s: %zu of %zu tensors differ with checkpointing (first: %s)", name, diff, n,
          first ? first : "-");
    printf("  %s: %zu tensors equal bit for bit after 2 steps (%zu BatchNorm counters at 2), losses %.6f %.6f\n",
           name, n, moved, a->loss[0], a->loss[1]);
}

static void test_tiny_s0(void) {
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", fixture("models/train_s0_tiny"));
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (mc_train_config_load(p, &cfg, &err) != MC_OK) { CHECK(0, "config: %s", err.message); return; }
    mc_checkpoint *ex = NULL, *init = NULL;
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    if (mc_checkpoint_open(p, &ex, &err) != MC_OK) { CHECK(0, "%s", err.message); return; }
    snprintf(p, sizeof p, "%s/init.pt", dir);
    if (mc_checkpoint_open(p, &init, &err) != MC_OK) { CHECK(0, "%s", err.message); mc_checkpoint_close(ex); return; }
    mc_dr_loss_params lp;
    mc_adamw_params op;
    int steps;
    CHECK(mc_train_fixture_settings(ex, &lp, &op, &cfg.bn_momentum, &steps, &err) == MC_OK, "%s", err.message);
    const mc_tensor_info *tr = mc_checkpoint_find(ex, "tokens_real"), *ts = mc_checkpoint_find(ex, "tokens_syn");
    int32_t *r32 = tok32(tr, tr->numel), *s32 = tok32(ts, ts->numel);
    int n = (int)tr->shape[0];
    mc_train_batch b = {n, mc_checkpoint_find(ex, "pixels")->data, r32, s32,
                        mc_checkpoint_find(ex, "teacher_image")->data,
                        mc_checkpoint_find(ex, "teacher_text_real")->data,
                        mc_checkpoint_find(ex, "teacher_text_syn")->data};
    run plain, ck;
    if (two_steps(&cfg, init, p, &lp, &op, &b, 0, &plain) == 0 && two_steps(&cfg, init, p, &lp, &op, &b, 1, &ck) == 0) {
        compare("train_s0_tiny", &plain, &ck);
        printf("  train_s0_tiny batch %d: activation peak %.1f MB plain, %.1f MB checkpointed (bounds %.0f, %.0f); "
               "%.1f MB made in a step\n", n, plain.peak_mb, ck.peak_mb, TINY_PLAIN_MB, TINY_CKPT_MB, plain.made_mb);
        CHECK(plain.peak_mb > 0 && plain.peak_mb <= TINY_PLAIN_MB, "train_s0_tiny: plain step holds %.1f MB (bound %.0f)",
              plain.peak_mb, TINY_PLAIN_MB);
        CHECK(ck.peak_mb > 0 && ck.peak_mb <= TINY_CKPT_MB, "train_s0_tiny: checkpointed step holds %.1f MB (bound %.0f)",
              ck.peak_mb, TINY_CKPT_MB);
        CHECK(plain.peak_mb <= TINY_PLAIN_OF_MADE * plain.made_mb, "train_s0_tiny: plain step holds %.1f MB of the "
              "%.1f MB it made (bound %.0f%%)", plain.peak_mb, plain.made_mb, 100 * TINY_PLAIN_OF_MADE);
        CHECK(ck.peak_mb <= TINY_CKPT_OF_PLAIN * plain.peak_mb, "train_s0_tiny: checkpointed %.1f MB, plain %.1f MB "
              "(bound %.0f%%)", ck.peak_mb, plain.peak_mb, 100 * TINY_CKPT_OF_PLAIN);
    }
    mc_trainer_free(plain.t);
    mc_trainer_free(ck.t);
    free(r32);
    free(s32);
    mc_checkpoint_close(init);
    mc_checkpoint_close(ex);
}

static void test_oc_vit(void) {
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", fixture("models/oc_mobileclip_b"));
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    if (mc_train_config_load(dir, &cfg, &err) != MC_OK) { CHECK(0, "oc_mobileclip_b: config: %s", err.message); return; }
    mc_checkpoint *ex = NULL, *ck = NULL;
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    if (mc_checkpoint_open(p, &ex, &err) != MC_OK) { CHECK(0, "%s", err.message); return; }
    snprintf(p, sizeof p, "%s/open_clip_model.safetensors", dir);
    if (mc_checkpoint_open(p, &ck, &err) != MC_OK) { CHECK(0, "%s", err.message); mc_checkpoint_close(ex); return; }
    const mc_tensor_info *px = mc_checkpoint_find(ex, "pixels"), *tk = mc_checkpoint_find(ex, "tokens");
    if (!px || !tk || px->ndim != 4 || tk->ndim != 2 || tk->dtype != MC_DTYPE_I64) {
        CHECK(0, "oc_mobileclip_b: pixels / tokens");
    } else {
        cfg.image_size = (int)px->shape[2];
        int n = (int)(px->shape[0] < tk->shape[0] ? px->shape[0] : tk->shape[0]);
        int32_t *tok = tok32(tk, (int64_t)n * tk->shape[1]);
        CHECK(n >= 2, "oc_mobileclip_b: a batch of %d", n);
        mc_dr_loss_params lp = {0};
        lp.w_contrastive = 1.0f;    /* plain CLIP: one caption batch, no teachers */
        mc_adamw_params op = mc_adamw_default_params();
        mc_train_batch b = {n, px->data, tok, NULL, NULL, NULL, NULL};
        run plain, c;
        if (two_steps(&cfg, ck, p, &lp, &op, &b, 0, &plain) == 0 && two_steps(&cfg, ck, p, &lp, &op, &b, 1, &c) == 0) {
            compare("oc_mobileclip_b", &plain, &c);
            CHECK(c.peak_mb < plain.peak_mb, "oc_mobileclip_b: checkpointed %.2f MB, plain %.2f MB", c.peak_mb,
                  plain.peak_mb);
        }
        mc_trainer_free(plain.t);
        mc_trainer_free(c.t);
        free(tok);
    }
    mc_checkpoint_close(ck);
    mc_checkpoint_close(ex);
}

int main(void) {
    test_tiny_s0();
    test_oc_vit();
    return test_summary("test_train_memory");
}
