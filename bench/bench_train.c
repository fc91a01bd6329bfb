/*
 * bench_train.c - training throughput: images/second of one training step
 * (forward of both towers on real and synthetic captions, DR loss, backward,
 * AdamW) on a training fixture folder (default: the tiny train_s0_tiny).
 * Build: make && cc -O2 -fopenmp -Iinclude -Isrc bench/bench_train.c \
 *          build/libmobileclip.a $(pkg-config --libs ...) -lm -o build/bench_train
 * Run:   build/bench_train [FIXTURE_DIR] [STEPS]
 */
#include "train.h"
#include "train_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../shared/fixtures/models/train_s0_tiny";
    int steps = argc > 2 ? atoi(argv[2]) : 3;
    char p[4096];
    mc_error err;
    mc_train_config cfg;
    mc_checkpoint *ex = NULL, *init = NULL;
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (mc_train_config_load(p, &cfg, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    if (mc_checkpoint_open(p, &ex, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    snprintf(p, sizeof p, "%s/init.pt", dir);
    if (mc_checkpoint_open(p, &init, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    mc_dr_loss_params lp;
    mc_adamw_params op;
    int fsteps;
    if (mc_train_fixture_settings(ex, &lp, &op, &cfg.bn_momentum, &fsteps, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    const mc_tensor_info *tr = mc_checkpoint_find(ex, "tokens_real"), *ts = mc_checkpoint_find(ex, "tokens_syn");
    const mc_tensor_info *px = mc_checkpoint_find(ex, "pixels");
    int n = (int)px->shape[0];
    int32_t *a = malloc(tr->numel * 4), *b = malloc(ts->numel * 4);
    for (int64_t i = 0; i < tr->numel; i++) { a[i] = (int32_t)((const int64_t *)tr->data)[i]; b[i] = (int32_t)((const int64_t *)ts->data)[i]; }
    mc_train_batch bt = {n, px->data, a, b, mc_checkpoint_find(ex, "teacher_image")->data,
                         mc_checkpoint_find(ex, "teacher_text_real")->data,
                         mc_checkpoint_find(ex, "teacher_text_syn")->data};
    mc_trainer *t;
    if (mc_trainer_new(&cfg, init, p, &lp, &op, &t, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    mc_train_result res;
    double t0 = now();
    for (int s = 0; s < steps; s++)
        if (mc_trainer_train_step(t, &bt, &res, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    double dt = now() - t0;
    printf("bench_train: %s: %d steps of batch %d at %dx%d: %.3f s/step, %.2f images/s (loss %.5f)\n",
           dir, steps, n, (int)px->shape[2], (int)px->shape[3], dt / steps, n * steps / dt, res.loss);
    mc_trainer_free(t);
    mc_checkpoint_close(init);
    mc_checkpoint_close(ex);
    free(a);
    free(b);
    return 0;
}
