/*
 * train/loss.h - the multi-modal reinforced training loss: CLIP contrastive
 * loss plus distillation from a teacher ensemble, with its gradients.
 */
#ifndef MC_TRAIN_LOSS_H
#define MC_TRAIN_LOSS_H

#include "core/core.h"

typedef struct mc_dr_loss_params {
    int n_teachers;
    int teacher_dims[8];
    float teacher_scales[8];  /* softmax temperature per teacher (e.g. 100) */
    float lambda;             /* distillation weight; contrastive gets 1 - lambda */
    float w_contrastive;      /* explicit weights (default 1-lambda, lambda) */
    float w_distill;
} mc_dr_loss_params;

/* One caption batch: img, txt [b, e] L2-normalised student embeddings;
 * t_img, t_txt [b, sum(teacher_dims)] teacher embeddings; logit_scale_raw is
 * the parameter (before exp).  terms[0] = weighted contrastive loss,
 * terms[1] = weighted distillation loss.  Gradients accumulate (+=) into
 * d_img, d_txt [b, e] and *d_scale (any may be NULL). */
void mc_train_dr_loss(const mc_dr_loss_params *p, const float *img, const float *txt, int b, int e,
                      const float *t_img, const float *t_txt, float logit_scale_raw,
                      float terms[2], float *d_img, float *d_txt, float *d_scale);

#endif /* MC_TRAIN_LOSS_H */
