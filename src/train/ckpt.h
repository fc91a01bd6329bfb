/*
 * train/ckpt.h - training-state checkpoints: weights, BatchNorm buffers,
 * AdamW moments and the step count, in one safetensors file.
 */
#ifndef MC_TRAIN_CKPT_H
#define MC_TRAIN_CKPT_H

#include "io/safetensors.h"
#include "train/trainer.h"

/* Training state: weights and BatchNorm buffers under their own names,
 * AdamW moments under "optim.exp_avg.<name>" / "optim.exp_avg_sq.<name>",
 * metadata "format" ("mobileclip.c training state"), "step" and
 * "data_crc32" (CRC-32 of the tensor bytes in file order), plus the caller's
 * extra metadata.  Atomic: temporary file, fsync, rename, folder fsync. */
mc_status mc_trainer_save_meta(const mc_trainer *t, const char *path, const mc_meta_kv *extra,
                               size_t n_extra, mc_error *err);
mc_status mc_trainer_save(const mc_trainer *t, const char *path, mc_error *err);
/* Restores a state.  Checks first, changes nothing on error: the format
 * metadata, every tensor of the trainer present with its dtype and shape (a
 * state of another model names the first tensor that differs), and the CRC
 * when the file has one (a corrupt file is refused). */
mc_status mc_trainer_resume(mc_trainer *t, const char *path, mc_error *err);
/* The same from an open checkpoint (path names it in messages). */
mc_status mc_trainer_resume_open(mc_trainer *t, const mc_checkpoint *ck, const char *path, mc_error *err);

#endif /* MC_TRAIN_CKPT_H */
