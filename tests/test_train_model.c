/*
 * test_train_model.c - the train-mode (unfused, taped) model in eval mode
 * against the PyTorch reference outputs of the inference fixtures
 * (v1_mci_mct, v1_mci_base, v1_vit_causal): image/text features and
 * embeddings within 1e-4 max-abs.  This checks the train-mode forward of the
 * MCi and vit_b16 image towers and the mct, base and causal base text towers
 * independently of the folded inference path.
 */
#include "test.h"
#include "train.h"

#include <stdint.h>

static void l2rows(float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)x[i * d + k] * x[i * d + k];
        double r = 1.0 / fmax(sqrt(s), 1e-12);
        for (int k = 0; k < d; k++) x[i * d + k] = (float)(x[i * d + k] * r);
    }
}

static void cmp(const char *model, const char *what, const mc_checkpoint *ex, const float *got,
                size_t n) {
    const mc_tensor_info *r = mc_checkpoint_find(ex, what);
    CHECK(r && r->dtype == MC_DTYPE_F32 && (size_t)r->numel == n, "%s: reference '%s' missing or of another size",
          model, what);
    if (!r || (size_t)r->numel != n) return;
    float e = max_abs_diff(got, r->data, n);
    CHECK(e <= 1e-4f, "%s %s: max-abs %.3g > 1e-4", model, what, e);
    printf("  %-14s %-17s max-abs %.2e\n", model, what, e);
}

static void test_eval(const char *name) {
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", fixture(name));
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (mc_train_config_load(p, &cfg, &err) != MC_OK) { CHECK(0, "%s: config: %s", name, err.message); return; }
    mc_checkpoint *ex = NULL, *ck = NULL;
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    if (mc_checkpoint_open(p, &ex, &err) != MC_OK) { CHECK(0, "%s: %s", name, err.message); return; }
    snprintf(p, sizeof p, "%s/model.pt", dir);
    if (mc_checkpoint_open(p, &ck, &err) != MC_OK) { CHECK(0, "%s: %s", name, err.message); mc_checkpoint_close(ex); return; }
    const mc_tensor_info *px = mc_checkpoint_find(ex, "pixels"), *tk = mc_checkpoint_find(ex, "tokens");
    CHECK(px && tk && px->ndim == 4 && tk->ndim == 2 && tk->dtype == MC_DTYPE_I64, "%s: inputs", name);
    mc_dr_loss_params lp = {0};
    mc_adamw_params op = mc_adamw_default_params();
    mc_trainer *t = NULL;
    if (px && tk && mc_trainer_new(&cfg, ck, p, &lp, &op, &t, &err) == MC_OK) {
        int ni = (int)px->shape[0], nt = (int)tk->shape[0], L = (int)tk->shape[1];
        cfg.image_size = (int)px->shape[2];
        CHECK(cfg.image_size == (int)px->shape[3] && L == cfg.context_length, "%s: input sizes", name);
        int E = mc_trainer_embed_dim(t);
        CHECK(E > 0, "%s: embed dim", name);
        int32_t *tok = malloc(sizeof *tok * tk->numel);
        for (int64_t i = 0; i < tk->numel; i++) tok[i] = (int32_t)((const int64_t *)tk->data)[i];
        float *fi = calloc((size_t)ni * E + 1, 4), *ft = calloc((size_t)nt * E + 1, 4);
        mc_trainer_set_eval(t, 1);
        mc_tparam *rm = NULL;
        for (size_t i = 0; i < mc_trainer_count(t) && !rm; i++)
            if (strstr(mc_trainer_param(t, i)->name, "running_mean")) rm = mc_trainer_param(t, i);
        float rm0 = rm ? rm->w[0] : 0;
        mc_status st = mc_trainer_features(t, px->data, ni, tok, nt, fi, ft, NULL, NULL, &err);
        CHECK(st == MC_OK, "%s: forward: %s", name, err.message);
        if (st == MC_OK) {
            CHECK(!rm || rm->w[0] == rm0, "%s: eval forward changed a running mean", name);
            cmp(name, "image_features", ex, fi, (size_t)ni * E);
            cmp(name, "text_features", ex, ft, (size_t)nt * E);
            l2rows(fi, ni, E);
            l2rows(ft, nt, E);
            cmp(name, "image_embeddings", ex, fi, (size_t)ni * E);
            cmp(name, "text_embeddings", ex, ft, (size_t)nt * E);
        }
        free(fi); free(ft); free(tok);
    } else {
        CHECK(0, "%s: trainer: %s", name, err.message);
    }
    mc_trainer_free(t);
    mc_checkpoint_close(ck);
    mc_checkpoint_close(ex);
}

int main(void) {
    test_eval("models/v1_mci_mct");
    test_eval("models/v1_mci_base");
    test_eval("models/v1_vit_causal");
    return test_summary("test_train_model");
}
