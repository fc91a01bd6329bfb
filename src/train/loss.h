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

/* The rows [r0, r0 + n) of the same loss over a batch of G samples, as
 * open_clip's --local-loss computes it on one rank: image r0 + i against every
 * text and text r0 + i against every image (labels r0 + i), the sums divided
 * by 2 G, so that the terms of the blocks of a partition of [0, G) add up to
 * the whole batch's.  img, txt, t_img, t_txt hold all G rows; the gradients
 * accumulate into all G rows of d_img, d_txt (a row outside the block gets
 * its part as a column of the block's rows).  r0 = 0, n = G is
 * mc_train_dr_loss. */
void mc_train_dr_loss_rows(const mc_dr_loss_params *p, const float *img, const float *txt, int G, int e,
                           int r0, int n, const float *t_img, const float *t_txt, float logit_scale_raw,
                           float terms[2], float *d_img, float *d_txt, float *d_scale);

#endif /* MC_TRAIN_LOSS_H */
