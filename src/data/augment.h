/*
 * data/augment.h - re-application of the stored image augmentations of a
 * reinforced dataset (DataCompDR, DFNDR: Apple's training/dr/transforms.py).
 *
 * Each sample of such a dataset stores, per augmentation, a "compressed
 * parameter list" (one element of the `param_aug` list in KEY.paug.json):
 * one entry per transform of the generation config that has random
 * parameters, in the fixed order random_resized_crop, random_horizontal_flip,
 * rand_augment, random_erase.  For DataCompDR-12M / -1B this is
 *
 *     [[top, left, height, width], [[op_index, magnitude], [op_index, magnitude]]]
 *
 * Re-applying it to the decoded RGB image gives, byte for byte, the uint8
 * pixels the reference produces with torchvision 0.14 and Pillow 9.4 (the
 * image just before ToTensor): crop, Pillow antialiased resize to
 * size x size, horizontal flip, the RandAugment ops in their stored order
 * (Pillow nearest-neighbour affine/rotate with black fill, ImageEnhance
 * blends, ImageOps LUTs), then random erasing (zeroing a box).
 *
 * Nothing here prints or exits: every function that can fail returns an
 * mc_status and fills the optional mc_error.
 */
#ifndef MC_DATA_AUGMENT_H
#define MC_DATA_AUGMENT_H

#include "core/json.h"

#include <stddef.h>

/* Most RandAugment ops one parameter list may hold (the released data: 2). */
#define MC_AUG_MAX_OPS 16
/* Largest output side mc_aug_reapply accepts. */
#define MC_AUG_MAX_SIZE 8192

/* RandAugment op indices, as RandAugment.op_names of transforms.py orders them. */
typedef enum mc_aug_op {
    MC_AUG_IDENTITY = 0,
    MC_AUG_SHEAR_X,
    MC_AUG_SHEAR_Y,
    MC_AUG_TRANSLATE_X,
    MC_AUG_TRANSLATE_Y,
    MC_AUG_ROTATE,
    MC_AUG_BRIGHTNESS,
    MC_AUG_COLOR,
    MC_AUG_CONTRAST,
    MC_AUG_SHARPNESS,
    MC_AUG_POSTERIZE,
    MC_AUG_SOLARIZE,
    MC_AUG_AUTOCONTRAST,
    MC_AUG_EQUALIZE,
    MC_AUG_OP_COUNT
} mc_aug_op;

/* Name of an op ("ShearX", ...), or "?" when out of range. */
const char *mc_aug_op_name(int op);

/*
 * Which parameterised transforms the generation config had, i.e. which
 * entries a compressed list holds (1 = present).  rand_augment_num_ops is
 * RandAugment's num_ops (the reference applies the first num_ops stored
 * pairs; 0 = apply every stored pair).
 */
typedef struct mc_aug_layout {
    int random_resized_crop;
    int random_horizontal_flip;
    int rand_augment;
    int rand_augment_num_ops;
    int random_erase;
} mc_aug_layout;

/* The DataCompDR / DFNDR layout: random_resized_crop + rand_augment (2 ops). */
mc_aug_layout mc_aug_layout_datacompdr(void);

/*
 * Derives the layout from an augmentation config object as the reference
 * reads it (e.g. the embedding job's config.json: {"random_resized_crop":
 * {...}, "rand_augment": {"enable": true, "p": 1.0}, ...}); entries with
 * "enable": false are dropped.  Transforms whose re-application is not
 * implemented here (resize, random_crop, mixup, cutmix, or RandAugment with
 * another interpolation or fill) are MC_ERR_UNSUPPORTED.
 */
mc_status mc_aug_layout_from_config(const mc_json *config, mc_aug_layout *out, mc_error *err);

/* The layout from a config file: Apple's dataset-reinforcement config
 * (datacompdr12m.json: {"reinforce": {"image_augmentation": {...}}}, what
 * --dataset-reinforcement-config names) or the augmentation object alone. */
mc_status mc_aug_layout_from_file(const char *path, mc_aug_layout *out, mc_error *err);

/* One stored augmentation, decompressed.  has_X = 0: X absent or stored as
 * null (randomly skipped at generation), so it is not applied. */
typedef struct mc_aug_params {
    /* RandomResizedCrop box in original-image pixels (torchvision i, j, h, w). */
    int has_crop;
    int crop_top, crop_left, crop_h, crop_w;
    /* RandomHorizontalFlip decision (the stored bool). */
    int has_flip;
    int flip;
    /* RandAugment (op index, magnitude) pairs, applied in order. */
    int has_randaug;
    int n_ops;
    int op[MC_AUG_MAX_OPS];
    double mag[MC_AUG_MAX_OPS];
    /* RandomErasing as transforms.py stores it: (x, y, h, w) with x the first
     * row, y the first column; x == -1 means nothing erased.  Otherwise rows
     * x:x+h and columns y:y+w (Python slice semantics, negative values count
     * from the end) are set to 0. */
    int has_erase;
    long long erase_x, erase_y, erase_h, erase_w;
} mc_aug_params;

/*
 * Parses one compressed parameter list (a JSON array, an element of
 * param_aug) as Compose.decompress reads it for the given layout (NULL: the
 * DataCompDR layout).  Stricter than the reference: the list must hold
 * exactly one entry per transform of the layout, op indices must be in
 * 0..13, magnitudes finite and sensible, crop sizes positive; anything else
 * is MC_ERR_FORMAT with a message naming the offending part.
 */
mc_status mc_aug_parse(const mc_json *entry, const mc_aug_layout *layout, mc_aug_params *out,
                       mc_error *err);

/*
 * Parses a whole KEY.paug.json document ({"param_aug": <list>} where the
 * list may also be given as a JSON string holding it, as the released shards
 * do).  On success *out is a malloc'd array of *n parameter sets (free()
 * it); on failure *out is NULL and *n is 0.
 */
mc_status mc_aug_parse_paug(const char *text, size_t len, const mc_aug_layout *layout,
                            mc_aug_params **out, size_t *n, mc_error *err);

/*
 * Re-applies p to the decoded RGB image `in` (Pillow's decode, no EXIF
 * transpose, as webdataset's decoder gives it): crop the box (which must lie
 * inside the image), resize it to size x size with Pillow's antialiased
 * resampling (interp: the student's, bicubic for open_clip training), flip,
 * the RandAugment ops, erasing.  Without a stored crop the image keeps its
 * own size and `size` is unused.  out receives a new uint8 RGB HWC image
 * owned by the caller (mc_image_free); on failure out is empty.
 */
mc_status mc_aug_reapply(const mc_image *in, const mc_aug_params *p, int size, mc_interp interp,
                         mc_image *out, mc_error *err);

/* ---- the building blocks, on an RGB image in place (tests use them) ---- */

/* One RandAugment op as torchvision's _apply_op does it on a PIL RGB image
 * (NEAREST interpolation, fill 0), with the stored magnitude. */
mc_status mc_aug_apply_op(mc_image *img, int op, double magnitude, mc_error *err);

/* Pillow's transpose(FLIP_LEFT_RIGHT). */
mc_status mc_aug_hflip(mc_image *img, mc_error *err);

/* transforms.py's RandomErasing re-application: zero rows x:x+h, columns
 * y:y+w with Python slice semantics; x == -1 does nothing. */
mc_status mc_aug_erase(mc_image *img, long long x, long long y, long long h, long long w,
                       mc_error *err);

/* Pillow's nearest-neighbour Image.transform(size, AFFINE, a) onto an image
 * of the same size (output pixel (x, y) samples input (a0 x + a1 y + a2,
 * a3 x + a4 y + a5) at pixel centres; outside is black), with Pillow 9.4's
 * three code paths (pure scale/translation, 16.16 fixed point, double). */
mc_status mc_aug_affine_nearest(mc_image *img, const double a[6], mc_error *err);

#endif /* MC_DATA_AUGMENT_H */
