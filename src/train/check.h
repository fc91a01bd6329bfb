/*
 * train/check.h - checking the trainer against a training fixture folder
 * (see train/check.c).
 */
#ifndef MC_TRAIN_CHECK_H
#define MC_TRAIN_CHECK_H

#include "train/trainer.h"

/* Called once per comparison: what (e.g. "step1/grad/<name>"), the error
 * (max-abs difference), the tolerance, and whether it passed. */
typedef void (*mc_train_report_fn)(void *ud, const char *what, double err, double tol, int ok);

/* Reads the loss/optimizer settings from expected.safetensors metadata. */
mc_status mc_train_fixture_settings(const mc_checkpoint *expected, mc_dr_loss_params *loss,
                                    mc_adamw_params *opt, float *bn_momentum, int *steps,
                                    mc_error *err);

/* Runs the fixture in dir: its config (open_clip_config.json or config.json),
 * init.pt or init.safetensors (init_path overrides it when non-NULL) and
 * expected.safetensors: the step-1 train-mode features when present (1e-4 of
 * max(1, max|ref|)), step-1 loss and terms (1e-5 relative), every gradient
 * element (within max(1e-4 of the reference's max-abs, sqrt(n) 2^-24
 * sum|terms|)), parameters and buffers after each step (1e-5, relative above
 * 1).  Counts passes and failures. */
mc_status mc_train_check_fixture(const char *dir, const char *init_path, mc_train_report_fn fn,
                                 void *ud, int *n_pass, int *n_fail, mc_error *err);

#endif
