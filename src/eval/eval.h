/*
 * eval/eval.h - evaluation of a loaded model, with the figures open_clip
 * reports: zero-shot classification on an ImageFolder tree (top-1 / top-5
 * accuracy) and image-text retrieval on webdataset shards (mean and median
 * rank, R@1/5/10, both ways), and the results as one JSON line.
 *
 * The evaluations take a loaded mc_model (a training run passes the model it
 * has just saved and loaded) and make their own context with the params'
 * thread count.  They never print: progress and skipped images come through
 * optional callbacks, called from the calling thread.  The definitions (how
 * the classifier is built, ranks and ties, what is skipped) are in
 * docs/eval.md.
 */
#ifndef MC_EVAL_EVAL_H
#define MC_EVAL_EVAL_H

#include "core/core.h"

/* ------------------------------------------------------------ parameters */

/* Progress of a stage: "classifier" (prompts encoded), "images" (zero-shot
 * images handled), "retrieval" (shard samples handled; total -1: unknown),
 * "ranks" (similarity rows ranked, both directions).  A nonzero return
 * cancels the evaluation (MC_ERR_INVALID_ARG, "cancelled"). */
typedef int (*mc_eval_progress_fn)(void *user, const char *stage, int64_t done, int64_t total);
/* An image or sample left out: what is its path or "SHARD: KEY", why the reason. */
typedef void (*mc_eval_skip_fn)(void *user, const char *what, const mc_error *why);

#define MC_EVAL_MAX_DECODE_THREADS 16

typedef struct mc_eval_params {
    int batch;                /* images (and texts) per forward pass; default 32 */
    int n_threads;            /* compute threads; 0 (default): one per core */
    int decode_threads;       /* threads decoding the next batch of images while one is encoded
                                 (default 2, at most MC_EVAL_MAX_DECODE_THREADS; 0: decode in
                                 the calling thread) */
    int strict;               /* 1: an image that cannot be decoded, or a shard sample without
                                 an image or a caption, is an error; 0 (default): left out and
                                 counted (n_skipped) */
    const mc_preprocess_params *preprocess;   /* NULL (default): the model's own */
    mc_eval_progress_fn progress;             /* NULL: none */
    void *progress_user;
    mc_eval_skip_fn on_skip;                  /* NULL: none */
    void *skip_user;
} mc_eval_params;

mc_eval_params mc_eval_default_params(void);

/* --------------------------------------------------------------- results */

typedef struct mc_rank_metrics {
    double mean_rank;         /* mean of the 1-based ranks of the matches */
    double median_rank;       /* floor of their median (open_clip: floor(median(rank - 1)) + 1) */
    double r1, r5, r10;       /* fraction of queries whose match ranks within 1, 5, 10 */
} mc_rank_metrics;

typedef struct mc_zeroshot_result {
    int done;                 /* 1 once filled by mc_eval_zeroshot */
    int64_t n_images;         /* images classified */
    int64_t n_skipped;        /* images left out (undecodable) */
    int64_t n_classes, n_templates;
    int top_k;                /* 5, or the class count when smaller */
    int64_t top1_correct, top5_correct;
    double top1, top5;        /* the fractions of n_images */
} mc_zeroshot_result;

typedef struct mc_retrieval_result {
    int done;                 /* 1 once filled by mc_eval_retrieval */
    int64_t n_samples;        /* image-caption pairs evaluated */
    int64_t n_skipped;        /* samples left out (no image or caption, undecodable, bad members) */
    mc_rank_metrics image_to_text, text_to_image;
} mc_retrieval_result;

typedef struct mc_eval_results {
    const char *model;        /* written as "model" when non-NULL (not owned) */
    int64_t epoch;            /* written as "epoch" when >= 0 (default -1) */
    const char *zeroshot_name;/* key prefix of the zero-shot figures; NULL: "imagenet" */
    mc_zeroshot_result zeroshot;
    mc_retrieval_result retrieval;
} mc_eval_results;

/* Empty results: nothing done, epoch -1, no model. */
void mc_eval_results_init(mc_eval_results *r);

/* One JSON object (no line end) with open_clip's keys, in this order:
 * "model", "epoch" (when set), then for a zero-shot result
 * "<name>-zeroshot-val-top1", "-top5", "-num_samples", "-num_classes",
 * "-num_templates", "-num_skipped", then for a retrieval result
 * "image_to_text_mean_rank", "_median_rank", "_R@1", "_R@5", "_R@10", the
 * same for "text_to_image_", "num_samples", "num_skipped".  Numbers are the
 * shortest decimals that read back to the same double.  *out is malloc'd. */
mc_status mc_eval_results_json(const mc_eval_results *r, char **out, mc_error *err);

/* ------------------------------------------------------------ zero-shot */

/* An ImageFolder tree as torchvision reads it: each sub-folder of root is a
 * class (sorted by name, byte order; names starting with '.' are ignored),
 * its images are the files with an image extension (.jpg .jpeg .png .webp,
 * and .bmp .ppm .pgm .tif .tiff, which torchvision lists and which then fail
 * to decode), case-insensitive, found recursively (symbolic links followed),
 * sorted by path. */
typedef struct mc_imagefolder {
    size_t n_classes;
    char **class_dirs;        /* folder names, sorted */
    char **class_names;       /* the names prompts use: the folder's with '_' as ' ', or the file's */
    size_t n_images;
    char **paths;             /* by class, then by path */
    int64_t *labels;          /* class index of each image */
} mc_imagefolder;

/* Scans root.  classnames_path (NULL: from the folder names) is a text file
 * of class names, one a line in the folders' sorted order (surrounding blanks
 * trimmed, empty lines ignored); its count must equal the folder count.
 * Errors: root missing or not a folder, no class folder, a class folder
 * without images, a class-name count that differs. */
mc_status mc_imagefolder_scan(const char *root, const char *classnames_path, mc_imagefolder *out,
                              mc_error *err);
void mc_imagefolder_free(mc_imagefolder *f);

/* Our built-in prompt templates ({} for the class name); *n receives the count. */
const char *const *mc_eval_default_templates(size_t *n);
/* Reads templates, one a line (surrounding blanks trimmed, empty lines
 * ignored); each must hold "{}" or "{c}" where the class name goes. */
mc_status mc_eval_templates_load(const char *path, char ***out, size_t *n, mc_error *err);
void mc_eval_strings_free(char **s, size_t n);

/* The zero-shot classifier, as open_clip builds it: for each class, every
 * template filled in and encoded (L2-normalised), the mean over templates
 * (in double), L2-normalised again; out is float32 [n_classes, embed_dim]. */
mc_status mc_eval_classifier(const mc_model *model, const char *const *class_names, size_t n_classes,
                             const char *const *templates, size_t n_templates,
                             const mc_eval_params *params, float *out, mc_error *err);

/* Zero-shot top-1 / top-5 accuracy on the ImageFolder tree at root, class
 * names and templates as above (templates_path NULL: the built-in set). */
mc_status mc_eval_zeroshot(const mc_model *model, const char *root, const char *classnames_path,
                           const char *templates_path, const mc_eval_params *params,
                           mc_zeroshot_result *out, mc_error *err);

/* ------------------------------------------------------------ retrieval */

/* Image-text retrieval on webdataset shards (spec: a shard list as
 * mc_shard_expand takes it, "a/{000..009}.tar::b.tar").  A sample is an image
 * member (jpg, jpeg, png or webp) and its caption ("txt"); each image's match
 * is its own caption and each caption's its own image. */
mc_status mc_eval_retrieval(const mc_model *model, const char *shards, const mc_eval_params *params,
                            mc_retrieval_result *out, mc_error *err);

/* ----------------------------------------------------------- the ranking */

/* For each query i (q [nq, d]), the 1-based rank of key target[i] (NULL:
 * key i) among keys [nk, d] by dot product: 1 + the keys scoring strictly
 * higher + the keys of lower index scoring the same.  Scores come from a
 * float32 GEMM; a key within that GEMM's error bound of the target's score
 * is compared again in double, so ranks are those of the exact products.  A
 * target whose score is not finite ranks last (nk); other non-finite scores
 * are never above it.  n_threads: 0, one per core. */
mc_status mc_eval_ranks(const float *q, int64_t nq, const float *keys, int64_t nk, int d,
                        const int64_t *target, int n_threads, int64_t *ranks_out, mc_error *err);

/* open_clip's metrics of n ranks (n >= 1). */
mc_status mc_eval_rank_metrics(const int64_t *ranks, int64_t n, mc_rank_metrics *out, mc_error *err);

#endif /* MC_EVAL_EVAL_H */
