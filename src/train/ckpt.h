/*
 * train/ckpt.h - training-state checkpoints: weights, BatchNorm buffers,
 * AdamW moments and the step count, in one safetensors file.
 */
#ifndef MC_TRAIN_CKPT_H
#define MC_TRAIN_CKPT_H

#include "train/trainer.h"

/* Training state: weights and BatchNorm buffers under their own names,
 * AdamW moments under "optim.exp_avg.<name>" / "optim.exp_avg_sq.<name>",
 * the step count in the metadata ("step"). */
mc_status mc_trainer_save(const mc_trainer *t, const char *path, mc_error *err);
mc_status mc_trainer_resume(mc_trainer *t, const char *path, mc_error *err);

#endif /* MC_TRAIN_CKPT_H */
