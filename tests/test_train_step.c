/*
 * test_train_step.c - the training fixture train_s0_tiny from init.pt: step-1
 * loss terms, every parameter gradient, parameters and BatchNorm buffers
 * after steps 1 and 2 (tolerances in train/check.h); then save/resume: a
 * state saved after step 1 and resumed gives bit-identical step-2 weights.
 */
#include "test.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/kernels.h"
#include "train/trainer.h"
#include "train/check.h"

#include <stdint.h>
#include <unistd.h>

static int n_bad_printed;
static void on_report(void *ud, const char *what, double e, double tol, int ok) {
    (void)ud;
    if (!ok && n_bad_printed++ < 40) fprintf(stderr, "  outside: %s err %.3e tol %.3e\n", what, e, tol);
}

static void test_fixture(const char *dir) {
    mc_error err;
    mc_error_clear(&err);
    int pass = 0, fail = 0;
    mc_status st = mc_train_check_fixture(dir, NULL, on_report, NULL, &pass, &fail, &err);
    CHECK(st == MC_OK, "train fixture: %s", err.message);
    CHECK(fail == 0, "train fixture: %d comparisons outside tolerance (%d within)", fail, pass);
    /* 4 loss terms + loss, 242 gradients, 2 x 410 state tensors */
    CHECK(pass + fail > 1000, "train fixture: only %d comparisons", pass + fail);
    printf("  fixture: %d comparisons within tolerance, %d outside\n", pass, fail);
}

static int32_t *tok32(const mc_tensor_info *t) {
    int32_t *o = malloc(t->numel * sizeof *o);
    for (int64_t i = 0; i < t->numel; i++) o[i] = (int32_t)((const int64_t *)t->data)[i];
    return o;
}

static void test_resume(const char *dir) {
    char p[4096];
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(mc_train_config_load(p, &cfg, &err) == MC_OK, "config: %s", err.message);
    mc_checkpoint *ex = NULL, *init = NULL;
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    if (mc_checkpoint_open(p, &ex, &err) != MC_OK) { CHECK(0, "%s", err.message); return; }
    snprintf(p, sizeof p, "%s/init.pt", dir);
    if (mc_checkpoint_open(p, &init, &err) != MC_OK) { CHECK(0, "%s", err.message); mc_checkpoint_close(ex); return; }
    mc_dr_loss_params lp;
    mc_adamw_params op;
    int steps;
    CHECK(mc_train_fixture_settings(ex, &lp, &op, &cfg.bn_momentum, &steps, &err) == MC_OK, "%s", err.message);
    int32_t *tr = tok32(mc_checkpoint_find(ex, "tokens_real")), *ts = tok32(mc_checkpoint_find(ex, "tokens_syn"));
    mc_train_batch b = {4, mc_checkpoint_find(ex, "pixels")->data, tr, ts,
                        mc_checkpoint_find(ex, "teacher_image")->data,
                        mc_checkpoint_find(ex, "teacher_text_real")->data,
                        mc_checkpoint_find(ex, "teacher_text_syn")->data};
    mc_trainer *a = NULL, *c = NULL;
    mc_train_result res;
    char state[256];
    snprintf(state, sizeof state, "/tmp/mc_train_state_%d.safetensors", (int)getpid());
    CHECK(mc_trainer_new(&cfg, init, p, &lp, &op, &a, &err) == MC_OK, "trainer: %s", err.message);
    CHECK(mc_trainer_new(&cfg, init, p, &lp, &op, &c, &err) == MC_OK, "trainer: %s", err.message);
    if (a && c) {
        CHECK(mc_trainer_train_step(a, &b, &res, &err) == MC_OK, "step 1: %s", err.message);
        CHECK(mc_trainer_save(a, state, &err) == MC_OK, "save: %s", err.message);
        CHECK(mc_trainer_train_step(a, &b, &res, &err) == MC_OK, "step 2: %s", err.message);
        CHECK(mc_trainer_resume(c, state, &err) == MC_OK, "resume: %s", err.message);
        CHECK(mc_trainer_steps_done(c) == 1, "resumed step %d", mc_trainer_steps_done(c));
        CHECK(mc_trainer_train_step(c, &b, &res, &err) == MC_OK, "resumed step 2: %s", err.message);
        size_t diff = 0;
        for (size_t i = 0; i < mc_trainer_count(a); i++) {
            mc_tparam *x = mc_trainer_param(a, i), *y = mc_trainer_param(c, i);
            if (x->is_counter) { diff += x->count != y->count; continue; }
            diff += memcmp(x->w, y->w, x->n * sizeof(float)) != 0;
            if (x->m) diff += memcmp(x->m, y->m, x->n * sizeof(float)) != 0;
        }
        CHECK(diff == 0, "resume: %zu tensors differ from uninterrupted training", diff);
        unlink(state);
    }
    mc_trainer_free(a);
    mc_trainer_free(c);
    free(tr);
    free(ts);
    mc_checkpoint_close(init);
    mc_checkpoint_close(ex);
}

int main(void) {
    const char *dir = fixture("models/train_s0_tiny");
    test_fixture(dir);
    test_resume(dir);
    return test_summary("test_train_step");
}
