/*
 * run/run.h - a training run: what `mobileclip train` drives.
 *
 * A run lives in a folder LOGS/NAME/:
 *   params.json          the settings of the run (written when it starts)
 *   train.jsonl          one JSON object per optimizer step (mc_run_step's fields)
 *   results.jsonl        one JSON object per evaluation (zero-shot, retrieval)
 *   report.html          plots of the two logs (run/report.h), after every checkpoint
 *   checkpoints/         training states (train/ckpt.h) with the run's position:
 *                          epoch_N.safetensors     after epoch N (--save-frequency)
 *                          epoch_latest.safetensors after every epoch (--save-most-recent)
 *                          step_N.safetensors      every --save-every-n-steps steps (the two
 *                                                  most recent are kept)
 * Every file is written atomically (temporary file, fsync, rename, folder
 * fsync).  Each checkpoint's metadata holds the model's configuration, so
 * that the file (or the run folder) loads in every inference command.
 *
 * Exactness.  The batches are a function of (seed, epoch, shard list, rank)
 * (data/loader.h), the step is deterministic for a given thread count, and a
 * checkpoint stores the step, the epoch and the batches consumed in it.  A
 * resumed run re-reads the epoch's first batches without training on them
 * (the data side costs about 1% of a step) and then continues with the very
 * batches the uninterrupted run saw: its losses are bit-identical, provided
 * the same settings and thread count.
 */
#ifndef MC_RUN_RUN_H
#define MC_RUN_RUN_H

#include "dist/dist.h"
#include "train/trainer.h"

#define MC_RUN_MAX_TEACHERS 8

typedef struct mc_run_step {
    int64_t step;               /* optimizer steps done (1-based after the step) */
    int64_t total_steps;
    int epoch;                  /* 0-based epoch of this step */
    int epochs;
    int64_t step_in_epoch;      /* 1-based */
    int64_t steps_per_epoch;
    int64_t samples;            /* samples seen by the run so far */
    float lr, loss, contrastive_loss, distill_loss, logit_scale, grad_norm;
    float terms[4];             /* contrastive real, distill real, contrastive syn, distill syn */
    double images_per_s;        /* of this step, data wait included */
    double data_wait;           /* seconds this step waited for its batches */
    double t_forward, t_loss, t_backward, t_optim, t_teacher;   /* seconds */
    double t_comm;              /* of forward + backward: waiting in collectives (ranks) */
} mc_run_step;

typedef struct mc_run_callbacks {
    void *ud;
    /* A one-line note for the user (resuming, checkpoint saved, evaluation, ...). */
    void (*note)(void *ud, const char *msg);
    /* After every optimizer step. */
    void (*step)(void *ud, const mc_run_step *s);
    /* Long work that is not a step (fast-forwarding the data, evaluation). */
    void (*progress)(void *ud, const char *what, int64_t done, int64_t total);
} mc_run_callbacks;

typedef struct mc_run_params {
    /* data */
    const char *train_data;       /* shards: brace lists, '::' joins */
    int64_t train_num_samples;    /* samples per epoch; 0: one pass over the shards (counted) */
    int dataset_resampled;        /* draw shards with replacement (needs train_num_samples) */
    int batch_size;               /* samples per micro-batch */
    int epochs;
    int workers;                  /* loader threads */
    int shuffle_buffer;           /* samples; 0: read in order */
    uint64_t seed;
    int min_image_size;
    /* dataset reinforcement */
    int dataset_reinforcement;
    const char *dr_config;        /* --dataset-reinforcement-config (augmentation layout) */
    int mix_synthetic;
    float mix_synthetic_ratio;
    const char *syn_text_key_regex;
    int sample_sequential;
    /* distillation */
    int n_teachers;
    int teacher_dims[MC_RUN_MAX_TEACHERS];     /* 0 (n_teachers 0): from the shards, one teacher */
    float teacher_scales[MC_RUN_MAX_TEACHERS];
    float loss_weights[2];        /* contrastive, distillation */
    const char *distill_models[MC_RUN_MAX_TEACHERS];   /* online teachers (models this engine loads) */
    int n_distill_models;
    /* optimizer */
    float lr, wd, beta1, beta2, eps;   /* beta2, eps < 0: open_clip's defaults for the model name */
    int warmup;
    float grad_clip_norm;
    int accum_freq;
    int grad_checkpointing;       /* blocks re-run in the backward pass (mc_trainer_set_grad_checkpointing) */
    /* data parallelism (open_clip's flags; train/accum.h): each rank the loss of its own
     * rows only; gradients back through the feature gather (0: each rank's own features
     * only, parameter gradients averaged over the ranks as PyTorch DDP does) */
    int local_loss, gather_with_grad;
    /* model */
    const char *model;            /* official name or a folder with config.json / open_clip_config.json */
    const char *pretrained;       /* starting weights; NULL: the folder's checkpoint, or a seeded
                                     random initialisation for an official name */
    /* the run */
    const char *logs;             /* default "./logs" */
    const char *name;             /* default: date and time, model, lr, batch */
    const char *resume;           /* NULL, "latest" or a checkpoint path */
    int save_frequency;           /* epochs between epoch_N checkpoints (0: none) */
    int save_most_recent;
    int save_every_n_steps;       /* mid-epoch checkpoints (0: none) */
    int log_every_n_steps;        /* notes to the user (train.jsonl has every step) */
    const char *imagenet_val;     /* ImageFolder tree for zero-shot evaluation */
    const char *eval_classnames, *eval_templates;
    const char *retrieval_data;   /* image-text shards for retrieval evaluation */
    int zeroshot_frequency;       /* epochs between evaluations (0: none) */
    int threads;                  /* OpenMP threads (0: the default) */
    const char *vocab_path;       /* NULL: mc_tokenizer_find_vocab */
    const char *command_line;     /* stored in params.json */
    const volatile int *stop;     /* set (e.g. by a signal handler): save a checkpoint and return */
    mc_dist *dist;                /* data-parallel ranks (NULL: one process).  Rank r reads the
                                     shards i with i % world == r of each epoch's shard order;
                                     batch_size is per rank; rank 0 writes the run folder; the
                                     checkpoints must be on a file system every rank reads */
    mc_run_callbacks cb;
} mc_run_params;

mc_run_params mc_run_default_params(void);

typedef struct mc_run_result {
    int interrupted;              /* *stop was seen; a checkpoint was saved */
    int64_t steps;                /* optimizer steps done by the run in all */
    int64_t samples;
    float last_loss;
    char folder[4096];            /* LOGS/NAME */
    char last_checkpoint[4400];
} mc_run_result;

/* Runs (or resumes) a training run. */
mc_status mc_run_train(const mc_run_params *p, mc_run_result *out, mc_error *err);

#endif /* MC_RUN_RUN_H */
