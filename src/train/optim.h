/*
 * train/optim.h - AdamW with the reference's parameter groups, the
 * learning-rate schedule (warm-up + cosine).
 */
#ifndef MC_TRAIN_OPTIM_H
#define MC_TRAIN_OPTIM_H

#include "core/core.h"

typedef struct mc_adamw_params {
    float lr, beta1, beta2, eps, weight_decay;
    float logit_scale_max;    /* clamp of logit_scale after each step (ln 100) */
    float grad_clip;          /* global-norm clipping; 0 = off */
    int warmup_steps;         /* linear warm-up, then cosine to 0 over total_steps */
    int total_steps;          /* 0: constant lr after warm-up */
    int accum_steps;          /* gradient accumulation (micro-batches per step) */
} mc_adamw_params;

mc_adamw_params mc_adamw_default_params(void);
/* The learning rate of 0-based step `step` (warm-up + cosine as open_clip). */
float mc_train_lr_at(const mc_adamw_params *p, int step);
/* The reference's rule: no decay for ndim < 2 or names containing bn, ln, bias, logit_scale. */
int mc_train_param_decays(const char *name, int ndim);
/* One AdamW update of n elements at step t (1-based). */
void mc_adamw_update(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                     float beta2, float eps, float wd, int t);

#endif /* MC_TRAIN_OPTIM_H */
