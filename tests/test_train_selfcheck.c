/*
 * test_train_selfcheck.c - SELF-CONSISTENCY ONLY (no PyTorch reference in
 * the test; tools/train_step_reference_oc.py makes one for OpenCLIP models):
 * training two models on a fixed random batch with random teachers (AdamW lr
 * 1e-4 and 5e-5: at the fixture's 1e-3 the first step of these small random
 * models overshoots, e.g. loss 2.96 -> 4.73 for the first, before falling):
 *   v1_vit_causal (mobileclip repo: model.pt + config.json, vit_b16 image
 *   tower, causal base text tower);
 *   oc_mobileclip2_s0 (OpenCLIP: open_clip_model.safetensors +
 *   open_clip_config.json, timm fastvit_mci0, OpenCLIP text transformer).
 * Checks: the loss falls step after step; a state saved after step 1 and
 * resumed gives bit-identical weights after step 2; the state keeps the
 * checkpoint's own tensor names (for the OpenCLIP model its image tower loads
 * through the inference loader and embeds as the trainer does in eval mode);
 * and `train-step-check` (mc_train_check_fixture) runs on a fixture folder of
 * the architecture built in a temp dir, whose expected values are this
 * trainer's own (so it checks that the checker handles the layout and that
 * training is deterministic, not that it matches the reference).
 */
#include "test.h"
#include "mobileclip.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/kernels.h"
#include "train/trainer.h"
#include "train/check.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { N = 4, L = 77, TD = 32 };
/* the OpenCLIP student's learning rate: at 1e-4 its loss on this batch falls
 * for 3 steps, then rises (3.449 2.993 2.777 2.749 2.832 2.897) */
#define LR_OC 5e-5f

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* two 16-d teachers, each L2-normalised */
static void teachers(float *t) {
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 2; k++) {
            float *v = t + i * TD + k * 16;
            double s = 0;
            for (int j = 0; j < 16; j++) { v[j] = frand(); s += (double)v[j] * v[j]; }
            for (int j = 0; j < 16; j++) v[j] = (float)(v[j] / sqrt(s));
        }
}

static void tokens(int64_t *t64, int32_t *t32) {
    for (int i = 0; i < N; i++) {
        int len = 4 + 5 * i;
        for (int j = 0; j < L; j++) {
            int id = j == 0 ? 49406 : j < len ? 300 + (int)((frand() * 0.5f + 0.5f) * 40000) : j == len ? 49407 : 0;
            t64[i * L + j] = id;
            t32[i * L + j] = id;
        }
    }
}

static size_t n_buffers(mc_trainer *t) {
    size_t k = 0;
    for (size_t i = 0; i < mc_trainer_count(t); i++) k += mc_trainer_param(t, i)->m == NULL;
    return k;
}

static void on_report(void *ud, const char *what, double e, double tol, int ok) {
    int *printed = ud;
    if (!ok && (*printed)++ < 20) fprintf(stderr, "  outside: %s err %.3e tol %.3e\n", what, e, tol);
}

/* The image tower of a saved training state, loaded as an inference model
 * (the state's own names; the optimizer moments are outside the tower's
 * prefix), against the trainer's eval-mode features of the same weights. */
static void state_loads_as_model(const char *state, const char *config, mc_trainer *t, const float *px, int S) {
    mc_error err;
    mc_error_clear(&err);
    mc_model_params mp = mc_model_default_params();
    mp.config_path = config;
    mp.load_text_tower = 0;
    mc_model *m = NULL;
    mc_context *ctx = NULL;
    if (mc_model_load(state, &mp, &m, &err) != MC_OK) { CHECK(0, "state as a model: %s", err.message); return; }
    CHECK(mc_context_new(m, NULL, &ctx, &err) == MC_OK, "context: %s", err.message);
    int E = mc_trainer_embed_dim(t);
    float *a = calloc((size_t)N * E + 1, sizeof(float)), *b = calloc((size_t)N * E + 1, sizeof(float));
    CHECK(ctx && mc_encode_image(ctx, px, N, 0, a) == MC_OK, "encode_image on the state");
    mc_trainer_set_eval(t, 1);
    CHECK(mc_trainer_features(t, px, N, NULL, 0, b, NULL, NULL, NULL, &err) == MC_OK, "features: %s", err.message);
    mc_trainer_set_eval(t, 0);
    float e = max_abs_diff(a, b, (size_t)N * E);
    CHECK(e < 1e-4f, "state as a model: image features differ from the trainer's by %.3g", e);
    printf("  the state's image tower loads as an inference model (%d px): max-abs %.2e from the trainer (eval)\n", S, e);
    free(a);
    free(b);
    mc_context_free(ctx);
    mc_model_free(m);
}

/* One model folder: cfg_name / ckpt_name inside fixture folder rel, image size S. */
static void run_case(const char *rel, const char *cfg_name, const char *ckpt_name, int S, float lr) {
    char src[4096], p[4200], q[4200], state[512], dir[256];
    if (!realpath(fixture(rel), src)) {
        CHECK(0, "no fixture %s", rel);
        return;
    }
    printf("%s:\n", rel);
    snprintf(dir, sizeof dir, "/tmp/mc_selfcheck_%d", (int)getpid());
    mkdir(dir, 0700);
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    snprintf(p, sizeof p, "%s/%s", src, cfg_name);
    CHECK(mc_train_config_load(p, &cfg, &err) == MC_OK, "config: %s", err.message);
    CHECK(cfg.image_size == S, "%s: image size %d, expected %d", rel, cfg.image_size, S);
    snprintf(q, sizeof q, "%s/%s", dir, cfg_name);
    CHECK(symlink(p, q) == 0, "symlink config");
    char config_path[4200];
    snprintf(config_path, sizeof config_path, "%s", p);
    snprintf(p, sizeof p, "%s/%s", src, ckpt_name);
    snprintf(q, sizeof q, "%s/init.pt", dir);   /* the checker opens any checkpoint format by content */
    CHECK(symlink(p, q) == 0, "symlink init");
    mc_checkpoint *init = NULL;
    if (mc_checkpoint_open(p, &init, &err) != MC_OK) { CHECK(0, "%s", err.message); return; }

    static float px[N * 3 * 256 * 256], ti[N * TD], tr[N * TD], ts[N * TD];
    static int64_t r64[N * L], s64[N * L];
    static int32_t r32[N * L], s32[N * L];
    for (size_t i = 0; i < (size_t)N * 3 * S * S; i++) px[i] = frand() * 0.5f + 0.5f;
    teachers(ti); teachers(tr); teachers(ts);
    tokens(r64, r32); tokens(s64, s32);
    mc_train_batch b = {N, px, r32, s32, ti, tr, ts};

    mc_dr_loss_params lp = {0};
    lp.n_teachers = 2;
    lp.teacher_dims[0] = lp.teacher_dims[1] = 16;
    lp.teacher_scales[0] = lp.teacher_scales[1] = 100.0f;
    lp.w_contrastive = 0.25f;
    lp.w_distill = lp.lambda = 0.75f;
    mc_adamw_params op = mc_adamw_default_params();
    op.lr = lr; op.beta1 = 0.9f; op.beta2 = 0.95f; op.eps = 1e-6f; op.weight_decay = 0.2f;
    cfg.bn_momentum = 0.1f;

    mc_trainer *a = NULL, *c = NULL;
    CHECK(mc_trainer_new(&cfg, init, p, &lp, &op, &a, &err) == MC_OK, "trainer: %s", err.message);
    CHECK(mc_trainer_new(&cfg, init, p, &lp, &op, &c, &err) == MC_OK, "trainer: %s", err.message);
    if (!a || !c) goto out;

    /* step 1 with the gradients kept for the fixture, then the states */
    size_t np = mc_trainer_count(a);
    mc_st_entry *e = calloc(3 * np + 8, sizeof *e);
    char (*names)[600] = calloc(3 * np + 8, sizeof *names);
    float **copies = calloc(3 * np + 8, sizeof *copies);
    int64_t *counts = calloc(2 * np + 1, sizeof *counts);
    size_t ne = 0, nc = 0;
    mc_train_result res;
    float losses[7], terms1[4];
    CHECK(mc_trainer_forward_backward(a, &b, &res, &err) == MC_OK, "step 1: %s", err.message);
    losses[0] = res.loss;
    memcpy(terms1, res.terms, sizeof terms1);
    for (size_t i = 0; i < np; i++) {
        mc_tparam *t = mc_trainer_param(a, i);
        if (!t->g) continue;
        snprintf(names[ne], sizeof names[ne], "step1/grad/%s", t->name);
        copies[nc] = malloc(t->n * sizeof(float));
        memcpy(copies[nc], t->g, t->n * sizeof(float));
        e[ne] = (mc_st_entry){names[ne], MC_DTYPE_F32, t->ndim, {0}, copies[nc++]};
        memcpy(e[ne].shape, t->shape, sizeof e[ne].shape);
        ne++;
    }
    CHECK(mc_trainer_step(a, &res, &err) == MC_OK, "step 1: %s", err.message);
    snprintf(state, sizeof state, "%s/state1.safetensors", dir);
    CHECK(mc_trainer_save(a, state, &err) == MC_OK, "save: %s", err.message);
    for (int s = 1; s <= 6; s++) {
        if (s <= 2)   /* states after steps 1 and 2 */
            for (size_t i = 0; i < np; i++) {
                mc_tparam *t = mc_trainer_param(a, i);
                snprintf(names[ne], sizeof names[ne], "step%d/state/%s", s, t->name);
                e[ne].name = names[ne];
                e[ne].ndim = t->ndim;
                memcpy(e[ne].shape, t->shape, sizeof e[ne].shape);
                if (t->is_counter) {
                    counts[(s - 1) * np + i] = t->count;
                    e[ne].dtype = MC_DTYPE_I64;
                    e[ne].data = &counts[(s - 1) * np + i];
                } else {
                    copies[nc] = malloc(t->n * sizeof(float));
                    memcpy(copies[nc], t->w, t->n * sizeof(float));
                    e[ne].dtype = MC_DTYPE_F32;
                    e[ne].data = copies[nc++];
                }
                ne++;
            }
        if (s == 6) break;
        CHECK(mc_trainer_train_step(a, &b, &res, &err) == MC_OK, "step %d: %s", s + 1, err.message);
        losses[s] = res.loss;
    }
    printf("  loss over 6 steps on a fixed batch:");
    for (int s = 0; s < 6; s++) printf(" %.5f", losses[s]);
    printf("\n");
    for (int s = 1; s < 6; s++)
        CHECK(losses[s] < losses[s - 1], "loss did not fall at step %d: %.6f -> %.6f", s + 1, losses[s - 1], losses[s]);

    /* resume after step 1: step 2 bit-identical to the uninterrupted run's (the step2 states above) */
    CHECK(mc_trainer_resume(c, state, &err) == MC_OK, "resume: %s", err.message);
    CHECK(mc_trainer_train_step(c, &b, &res, &err) == MC_OK, "resumed step 2: %s", err.message);
    size_t diff = 0, cmpd = 0;
    for (size_t k = 0; k < ne; k++) {
        if (strncmp(e[k].name, "step2/state/", 12)) continue;
        mc_tparam *t = mc_trainer_find(c, e[k].name + 12);
        if (!t) { diff++; continue; }
        cmpd++;
        if (t->is_counter) diff += t->count != *(const int64_t *)e[k].data;
        else diff += memcmp(t->w, e[k].data, t->n * sizeof(float)) != 0;
    }
    CHECK(cmpd == np && diff == 0, "resume: %zu of %zu tensors differ from uninterrupted training", diff, cmpd);
    printf("  resume after step 1: %zu tensors after step 2 bit-identical\n", cmpd - diff);
    /* the state file holds the checkpoint's own names */
    mc_checkpoint *sck = NULL;
    if (mc_checkpoint_open(state, &sck, &err) == MC_OK) {
        size_t own = 0;
        for (size_t i = 0; i < mc_checkpoint_count(init); i++)
            own += mc_checkpoint_find(sck, mc_checkpoint_tensor(init, i)->name) != NULL;
        CHECK(own == np && mc_checkpoint_count(sck) == np + 2 * (size_t)(np - (size_t)n_buffers(a)),
              "state: %zu of the checkpoint's %zu names, %zu tensors", own, np, mc_checkpoint_count(sck));
        mc_checkpoint_close(sck);
    } else {
        CHECK(0, "state: %s", err.message);
    }
    if (mc_trainer_layout(a) == MC_TRAIN_LAYOUT_OPENCLIP) {
        mc_trainer *d = NULL;
        CHECK(mc_trainer_new(&cfg, init, p, &lp, &op, &d, &err) == MC_OK, "trainer: %s", err.message);
        CHECK(d && mc_trainer_resume(d, state, &err) == MC_OK, "resume: %s", err.message);
        if (d) state_loads_as_model(state, config_path, d, px, S);
        mc_trainer_free(d);
    }

    /* the fixture folder: inputs, settings, this trainer's own step-1 figures */
    int64_t s4[4] = {N, 3, S, S};
    e[ne++] = (mc_st_entry){"pixels", MC_DTYPE_F32, 4, {s4[0], s4[1], s4[2], s4[3]}, px};
    e[ne++] = (mc_st_entry){"tokens_real", MC_DTYPE_I64, 2, {N, L}, r64};
    e[ne++] = (mc_st_entry){"tokens_syn", MC_DTYPE_I64, 2, {N, L}, s64};
    e[ne++] = (mc_st_entry){"teacher_image", MC_DTYPE_F32, 2, {N, TD}, ti};
    e[ne++] = (mc_st_entry){"teacher_text_real", MC_DTYPE_F32, 2, {N, TD}, tr};
    e[ne++] = (mc_st_entry){"teacher_text_syn", MC_DTYPE_F32, 2, {N, TD}, ts};
    e[ne++] = (mc_st_entry){"step1/loss", MC_DTYPE_F32, 0, {0}, &losses[0]};
    e[ne++] = (mc_st_entry){"step1/loss_terms", MC_DTYPE_F32, 1, {4}, terms1};
    char opt_json[200];
    snprintf(opt_json, sizeof opt_json, "{\"name\": \"adamw\", \"lr\": %.9g, \"betas\": [0.9, 0.95], "
             "\"eps\": 1e-6, \"weight_decay\": 0.2, \"steps\": 2}", (double)lr);
    mc_meta_kv meta[4] = {
        {(char *)"teacher_dims", (char *)"[16, 16]"},
        {(char *)"distill_logit_scale", (char *)"[100, 100]"},
        {(char *)"loss_weights", (char *)"[0.25, 0.75]"},
        {(char *)"optimizer_json", opt_json}};
    snprintf(q, sizeof q, "%s/expected.safetensors", dir);
    CHECK(mc_safetensors_write(q, e, ne, meta, 4, &err) == MC_OK, "write fixture: %s", err.message);
    int pass = 0, fail = 0, printed = 0;
    mc_status st = mc_train_check_fixture(dir, NULL, on_report, &printed, &pass, &fail, &err);
    CHECK(st == MC_OK, "train-step-check: %s", err.message);
    CHECK(fail == 0 && pass > 2 * (int)np, "train-step-check on the %s folder: %d within, %d outside", rel, pass, fail);
    printf("  train-step-check on a folder of this architecture (own figures): %d within, %d outside\n", pass, fail);
    unlink(q);
    for (size_t i = 0; i < nc; i++) free(copies[i]);
    free(copies); free(names); free(e); free(counts);
out:
    unlink(state);
    snprintf(q, sizeof q, "%s/%s", dir, cfg_name); unlink(q);
    snprintf(q, sizeof q, "%s/init.pt", dir); unlink(q);
    rmdir(dir);
    mc_trainer_free(a);
    mc_trainer_free(c);
    mc_checkpoint_close(init);
}

int main(void) {
    run_case("models/v1_vit_causal", "config.json", "model.pt", 224, 1e-4f);
    run_case("models/oc_mobileclip2_s0", "open_clip_config.json", "open_clip_model.safetensors", 256, LR_OC);
    return test_summary("test_train_selfcheck");
}
