/*
 * model/state_dict.h - a checkpoint's model as the reference PyTorch code's
 * state dict: its original (unfused, training-branch) tensors under the names
 * of its layout (mobileclip repo: image_encoder.*, text_encoder.*,
 * logit_scale; OpenCLIP: visual.*, text.* / transformer.*, ...), with what is
 * not a model weight left out, checked by binding them as mc_model_load does;
 * and that state dict written as a torch.save file ('mobileclip convert
 * --format pt', io/torchsave.h) that the reference's unfused model loads with
 * torch.load(weights_only=True) and load_state_dict(strict=True).
 */
#ifndef MC_MODEL_STATE_DICT_H
#define MC_MODEL_STATE_DICT_H

#include "io/config.h"
#include "io/safetensors.h"

/* The prefix of a training-state file's AdamW moments (train/ckpt.h), left out. */
#define MC_STATE_DICT_OPTIM_PREFIX "optim."

/* The tensors of ck that make up the model cfg describes, in ck's order:
 * *entries (malloc'd, the caller frees it; names and data point into ck, so
 * valid while ck is open), *n of them; *n_left_out (may be NULL) counts the
 * training-state tensors left out ("optim.*").  Errors:
 *   MC_ERR_UNSUPPORTED  ck holds fused weights: a file written by 'convert'
 *                       in its folded layout (metadata mobileclip.layout =
 *                       "folded"), or the reference's re-parameterised model
 *                       (a '.reparam_conv.' or '.lkb_reparam.' tensor): the
 *                       train-time branches the unfused model needs are gone;
 *   the binding's errors when the rest is not exactly that model (a missing,
 *   mis-shaped or unexpected tensor). */
mc_status mc_state_dict_reference(const mc_checkpoint *ck, const mc_config *cfg, mc_st_entry **entries,
                                  size_t *n, size_t *n_left_out, mc_error *err);

/* Writes the reference state dict of the checkpoint at ckpt_path (model cfg)
 * to out_path as a torch.save file: floating-point tensors in float_dtype
 * (MC_DTYPE_F32, F16 or BF16; rounding to nearest even), integer tensors
 * (BatchNorm num_batches_tracked) as they are.  *n_written and *n_left_out
 * (each may be NULL) receive the counts.  out_path is replaced atomically; on
 * failure it is left as it was. */
mc_status mc_state_dict_save_pt(const char *ckpt_path, const mc_config *cfg, const char *out_path,
                                mc_dtype float_dtype, size_t *n_written, size_t *n_left_out, mc_error *err);

#endif /* MC_MODEL_STATE_DICT_H */
