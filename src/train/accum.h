/*
 * train/accum.h - gradient accumulation as open_clip's --accum-freq means it:
 * the contrastive and distillation losses over all K micro-batches together
 * (every sample a negative for every other), with the activations of one
 * micro-batch in memory at a time.
 */
#ifndef MC_TRAIN_ACCUM_H
#define MC_TRAIN_ACCUM_H

#include "train/trainer.h"

/* One optimizer step over k micro-batches b[0..k), as open_clip's
 * train_one_epoch does with accum_freq = k:
 *   1. the features of every micro-batch, without a backward (train mode:
 *      BatchNorm on the micro-batch's statistics, running statistics updated);
 *   2. the loss over the concatenated features (N = sum of b[j].n samples) and
 *      its gradient with respect to every feature and to logit_scale;
 *   3. each micro-batch again, its backward driven by its slice of that
 *      gradient (the same features: the same inputs and batch statistics;
 *      the running statistics update a second time, as in open_clip);
 *   4. the optimizer step on the summed gradient (the full batch's).
 * All micro-batches have synthetic captions or none, and teachers when the
 * loss distills.  res: the loss and terms of the whole batch, lr, gradient
 * norm, times. */
mc_status mc_trainer_train_step_accum(mc_trainer *t, const mc_train_batch *b, int k, mc_train_result *res,
                                      mc_error *err);

/* Data parallelism: the same step spread over `world` processes, each with
 * its own k micro-batches of the same size.  The features of all ranks are
 * gathered (rank after rank), every rank computes the loss of the global
 * batch (the same numbers everywhere: what open_clip's --local-loss
 * --gather-with-grad add up to), drives its own micro-batches' backward with
 * its rows of the gradient, and the gradients are summed over the ranks
 * before the optimizer step, which is then the same on every rank.  The
 * train layer does not communicate itself: the caller provides the two
 * collectives (run/ over dist/). */
typedef struct mc_train_collective {
    void *ud;
    int rank, world;
    /* global [world * n] = every rank's local [n], in rank order */
    mc_status (*allgather)(void *ud, const float *local, size_t n, float *global, mc_error *err);
    /* buf [n] = the sum over ranks, in place */
    mc_status (*allreduce_sum)(void *ud, float *buf, size_t n, mc_error *err);
} mc_train_collective;

/* As mc_trainer_train_step_accum over the ranks of c (c NULL or world 1:
 * exactly mc_trainer_train_step_accum).  Every rank's micro-batches must
 * hold the same number of samples. */
mc_status mc_trainer_train_step_dist(mc_trainer *t, const mc_train_batch *b, int k, const mc_train_collective *c,
                                     mc_train_result *res, mc_error *err);

#endif /* MC_TRAIN_ACCUM_H */
