/*
 * data/loader.h - the reinforced-training loader: batches of (student
 * images, real caption tokens, synthetic caption tokens, teacher image
 * embeddings, teacher text embeddings, teacher synthetic-text embeddings)
 * from DataCompDR / DFNDR shards, as the reference's preprocess_dr makes
 * them (Apple's open_clip_v2.patch):
 *
 *   - a stored augmentation drawn uniformly (or epoch % A in sequential mode)
 *     and re-applied exactly at the student's size (augment.h);
 *   - the real caption; a synthetic-caption key drawn among the keys of
 *     syn.json matching the regex (anchored at the start, as Python's
 *     re.match), then a caption within it (or epoch % n);
 *   - the matching teacher embedding rows (npz float32 or pth.gz bfloat16,
 *     both layouts), as float32;
 *   - mix-synthetic mode: the real caption replaced by the synthetic one with
 *     probability r, and no second caption batch;
 *   - an optional minimum image side (smaller images are skipped);
 *   - student normalisation (mean, std) into CHW float32.
 *
 * Determinism: every random choice is a function of (seed, epoch, sample
 * key), and the order of samples is a function of (seed, epoch, rank, the
 * shard list): one reader streams the rank's shards in order through the
 * shuffle buffer, and worker threads only decode and augment.  So the
 * batches are the same for any thread count.  Shards are split across ranks
 * as webdataset's split_by_node does (shard i to rank i % world, after a
 * per-epoch shuffle of the list by seed); with `resampled`, each rank draws
 * shards with replacement from the whole list, an endless stream.
 *
 * Errors: a bad sample (or shard) is reported with shard and key; by default
 * it is skipped and counted (mc_loader_stats), with `strict` it ends the
 * loader with that error.
 */
#ifndef MC_DATA_LOADER_H
#define MC_DATA_LOADER_H

#include "data/augment.h"

typedef struct mc_loader mc_loader;

typedef struct mc_loader_params {
    const char *shards;         /* "a/{00000000..00000009}.tar::b/x.tar" (brace lists, '::' joins) */
    const mc_tokenizer *tok;    /* shared, read-only; must outlive the loader */
    const mc_aug_layout *aug;   /* which transforms the stored lists hold; NULL: DataCompDR's */
    int image_size;             /* the student's side (224, 256, ...) */
    mc_interp interp;           /* resize of the crop (bicubic, as open_clip trains) */
    float mean[3], std[3];      /* student normalisation (MobileCLIP: 0 and 1) */
    int batch_size;
    int drop_last;              /* 1 (training): the epoch's last partial batch is dropped */
    uint64_t seed;
    int epoch;                  /* first epoch; mc_loader_set_epoch moves on */
    int rank, world_size;       /* this process's share of the shards (0, 1: all) */
    int workers;                /* decode + augment threads (0: 2) */
    int shuffle_buffer;         /* samples; 0: no shuffling */
    int resampled;              /* draw shards with replacement, endlessly */
    int sample_sequential;      /* augmentation and caption indices epoch % n */
    const char *syn_key_regex;  /* NULL: "^syn_text.*$" */
    int mix_synthetic;          /* replace the real caption with prob. mix_synthetic_ratio */
    float mix_synthetic_ratio;
    int min_image_size;         /* skip images whose short side is below this; 0: off */
    int strict;                 /* a bad sample ends the loader instead of being skipped */
    int context_length;         /* tokens per caption (77) */
    int plain;                  /* plain image-text shards (no reinforcement): image + caption,
                                   a random resized crop (mc_plain_crop), no teacher rows */
} mc_loader_params;

mc_loader_params mc_loader_default_params(void);

typedef struct mc_loader_batch {
    int n;                      /* samples (batch_size, or fewer at an epoch's end) */
    int image_size, context_length, teacher_dim;
    float *pixels;              /* [n, 3, S, S] normalised */
    int32_t *tokens;            /* [n, context_length] real (or mixed-in synthetic) captions */
    int32_t *syn_tokens;        /* [n, context_length]; NULL in mix-synthetic mode */
    float *teacher_image;       /* [n, teacher_dim] */
    float *teacher_text;        /* [n, teacher_dim] */
    float *teacher_syn;         /* [n, teacher_dim]; NULL in mix-synthetic mode */
    char (*keys)[64];           /* [n] sample keys (for logs and tests) */
    int *aug_index;             /* [n] the stored augmentation each image re-applies */
} mc_loader_batch;

typedef struct mc_loader_stats {
    int64_t samples;            /* delivered in batches */
    int64_t skipped;            /* bad samples skipped (not strict) */
    int64_t filtered;           /* below min_image_size */
    int64_t shards_done;
    double wait_s;              /* time mc_loader_next waited for data */
    char last_skip[1024];       /* why the last sample was skipped ("shard: key: reason") */
} mc_loader_stats;

/* Starts the reader and worker threads for params->epoch. */
mc_status mc_loader_open(const mc_loader_params *params, mc_loader **out, mc_error *err);
/* The next batch, valid until the next call (owned by the loader).  *end = 1
 * (batch untouched) when the epoch has no more samples; never for resampled
 * streams.  Errors: the first error of a strict loader, or a shard that
 * cannot be opened at all when none of the epoch's shards could be read. */
mc_status mc_loader_next(mc_loader *l, mc_loader_batch *batch, int *end, mc_error *err);
/* Restarts at the start of another epoch (new shard order and choices). */
mc_status mc_loader_set_epoch(mc_loader *l, int epoch, mc_error *err);
void mc_loader_stats_get(const mc_loader *l, mc_loader_stats *out);
void mc_loader_close(mc_loader *l);

/* The shards of one rank for one epoch, in reading order: the expanded list
 * shuffled by (seed, epoch) and split i % world == rank (not resampled).
 * *out is malloc'd (strings into the loader's list); for tests. */
mc_status mc_loader_rank_shards(const mc_loader *l, int epoch, const char ***out, size_t *n,
                                mc_error *err);

/* The per-sample choices, a pure function of (seed, epoch, key): exposed for
 * tests.  n_aug augmentations; n_syn[i] captions under the i-th matching
 * synthetic key (n_keys keys). */
typedef struct mc_dr_choice {
    int aug;                    /* stored augmentation */
    int syn_key;                /* index among the matching keys */
    int syn_caption;            /* caption within that key */
    int use_syn_as_text;        /* mix-synthetic draw */
} mc_dr_choice;
mc_dr_choice mc_dr_choose(uint64_t seed, int epoch, const char *key, int n_aug, int n_keys, const int *n_syn,
                          int sequential, float mix_ratio);

/* The crop of a plain (not reinforced) sample: torchvision RandomResizedCrop
 * with open_clip's training scale (0.9, 1.0) and ratio (3/4, 4/3), its random
 * numbers a function of (seed, epoch, key) like every other choice. */
mc_aug_params mc_plain_crop(uint64_t seed, int epoch, const char *key, int width, int height);

#endif /* MC_DATA_LOADER_H */
