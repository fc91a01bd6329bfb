/*
 * reinforce/sampler.h - drawing fresh augmentation parameters as the
 * reference generator does (Apple's training/dr/transforms.py over
 * torchvision 0.14): RandomResizedCrop's get_params, RandomHorizontalFlip,
 * RandAugment's op and signed magnitude, from a seeded generator whose
 * stream is a function of (seed, shard, sample key); and writing them in the
 * reference's compressed form, the param_aug entries of KEY.paug.json.
 */
#ifndef MC_REINFORCE_SAMPLER_H
#define MC_REINFORCE_SAMPLER_H

#include "data/augment.h"

/* The image augmentation of a reinforcement config (Apple's
 * datacompdr12m.json "reinforce.image_augmentation", or the object alone). */
typedef struct mc_rf_aug_config {
    mc_aug_layout layout;
    int size;                 /* random_resized_crop.size: the teachers' input side */
    mc_interp interp;         /* random_resized_crop.interpolation (torchvision default bilinear) */
    double scale[2];          /* random_resized_crop.scale, default (0.08, 1.0) */
    double ratio[2];          /* random_resized_crop.ratio, default (3/4, 4/3) */
    double flip_p;            /* random_horizontal_flip.p, default 0.5 */
    int ra_num_ops;           /* rand_augment.num_ops, default 2 */
    int ra_magnitude;         /* rand_augment.magnitude, default 9 */
    int ra_bins;              /* rand_augment.num_magnitude_bins, default 31 */
    double ra_p;              /* rand_augment.p, default 1.0 */
    float mean[3], std[3];    /* normalize (absent: mean 0, std 1) */
} mc_rf_aug_config;

/* Parses a config's text; label names it in errors.  A config the
 * generator cannot run (no random_resized_crop, random_erase, or what
 * mc_aug_layout_from_config refuses) is MC_ERR_UNSUPPORTED naming the part. */
mc_status mc_rf_aug_config_parse(const char *text, size_t len, const char *label, mc_rf_aug_config *out,
                                 mc_error *err);

/* A splitmix64 stream. */
typedef struct mc_rf_rng {
    uint64_t state;
} mc_rf_rng;

/* Seeds the stream of one sample from (seed, shard name, key). */
void mc_rf_rng_seed(mc_rf_rng *r, uint64_t seed, const char *shard, const char *key);
/* Uniform in [a, b). */
double mc_rf_uniform(mc_rf_rng *r, double a, double b);
/* Uniform integer in [0, n), n >= 1. */
uint64_t mc_rf_randint(mc_rf_rng *r, uint64_t n);

/* The RandAugment magnitude of op at the config's bin, as torchvision's
 * _augmentation_space computes it in float32 for a size x size image;
 * *is_signed: whether the op takes a random sign. */
double mc_rf_magnitude(const mc_rf_aug_config *c, int op, int *is_signed);

/* Draws one augmentation for an image of w x h pixels: the crop box in
 * original pixels, the flip, the RandAugment ops (or none when skipped with
 * probability 1 - p). */
void mc_rf_sample(const mc_rf_aug_config *c, int w, int h, mc_rf_rng *rng, mc_aug_params *out);

/* Appends p's compressed parameter list as JSON to buf (Python's json.dumps
 * spelling: floats in their shortest round-trip form with ".0" when whole,
 * true/false, null for a skipped RandAugment).  Returns the length the text
 * needs (as snprintf). */
size_t mc_rf_compress_json(const mc_rf_aug_config *c, const mc_aug_params *p, char *buf, size_t cap);

/* A double as Python's repr() writes it ("0.26999998092651367", "7.0",
 * "-30.45317268371582", "1e-05"); returns the length (as snprintf). */
int mc_rf_format_double(double v, char *buf, size_t cap);

#endif /* MC_REINFORCE_SAMPLER_H */
