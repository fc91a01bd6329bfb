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
 * its own k micro-batches of the same size (N samples in all; the global
 * batch is G = world x N, rank r's samples are rows r N .. r N + N - 1).  The
 * features (and teacher rows) of all ranks are gathered, rank after rank, and
 * the loss is open_clip's distributed one, as its two flags choose:
 *   - local_loss 0: every rank computes the loss of the whole global batch
 *     (G x G logits); local_loss 1: rank r only its own rows (its images
 *     against every text and its texts against every image, N x G logits,
 *     divided by 2 G), and the logged loss is the sum over the ranks: the
 *     global batch's loss either way;
 *   - gather_with_grad 1: the gradient flows back through the gather to the
 *     rank that computed each feature (with local_loss, the feature
 *     gradients are summed over the ranks: a reduce-scatter), so the step is
 *     the exact gradient of the global batch's loss, as one process at batch
 *     G computes it; gather_with_grad 0: each rank keeps only the gradient of
 *     its own loss with respect to its own features, and the parameter
 *     gradients are averaged over the ranks as PyTorch DDP does (without
 *     local_loss that is the exact gradient divided by world; with it, the
 *     cross-rank terms are left out).
 * Each rank then drives its own micro-batches' backward with its rows of the
 * feature gradient, and the parameter gradients are summed over the ranks in
 * buckets of at most MC_TRAIN_GRAD_BUCKET_FLOATS floats (one bucket of extra
 * memory, not a copy of every gradient) before the optimizer step, which is
 * then the same on every rank.  The train layer does not communicate itself:
 * the caller provides the collectives (run/ over dist/). */
typedef struct mc_train_collective {
    void *ud;
    int rank, world;
    int local_loss, gather_with_grad;   /* open_clip's --local-loss, --gather-with-grad */
    /* global [world * n] = every rank's local [n], in rank order */
    mc_status (*allgather)(void *ud, const float *local, size_t n, float *global, mc_error *err);
    /* buf [n] = the sum over ranks, in place */
    mc_status (*allreduce_sum)(void *ud, float *buf, size_t n, mc_error *err);
    /* local [n] = the sum over ranks of their global [rank * n .. rank * n + n) */
    mc_status (*reduce_scatter_sum)(void *ud, const float *global, size_t n, float *local, mc_error *err);
} mc_train_collective;

/* The largest gradient bucket of one all-reduce: 25 MB of floats, PyTorch DDP's default. */
#define MC_TRAIN_GRAD_BUCKET_FLOATS ((size_t)25 << 18)

/* As mc_trainer_train_step_accum over the ranks of c (c NULL or world 1:
 * exactly mc_trainer_train_step_accum).  Every rank's micro-batches must
 * hold the same number of samples. */
mc_status mc_trainer_train_step_dist(mc_trainer *t, const mc_train_batch *b, int k, const mc_train_collective *c,
                                     mc_train_result *res, mc_error *err);

#endif /* MC_TRAIN_ACCUM_H */
