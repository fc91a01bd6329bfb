/*
 * model/binder.h - binding checkpoint tensors to model weights by name.
 *
 * A model's weights live in one arena (few large allocations, freed at
 * once).  A binder walks a checkpoint: mc_bind() copies a tensor, converted to
 * float32, into the arena after checking its exact shape, and marks it used;
 * mc_binder_finish() reports any tensor under the bound prefixes that nothing
 * used.  Errors are sticky: after the first, every call returns NULL, so a
 * loader can bind a whole block and check once.  Messages name the file and
 * the tensor ("model.pt: tensor 'x.weight' has shape [4, 3], expected [4, 5]").
 * A bound tensor holding NaN (or an infinity, unless allow_inf) is refused:
 * it would only ever give NaN embeddings.  Names that a loader peeked at or
 * bound optionally and did not find are remembered, so that an unused tensor
 * is reported with the missing sibling it was meant to go with ("unexpected
 * tensor 'ln_1.bias' ... 'ln_1.weight' is missing").
 */
#ifndef MC_BINDER_H
#define MC_BINDER_H

#include "core/arena.h"
#include "io/checkpoint.h"

typedef struct mc_binder {
    const mc_checkpoint *ckpt;
    const char *path;      /* for messages */
    mc_arena *arena;
    uint8_t *used;         /* one flag per checkpoint tensor */
    mc_error *err;
    mc_status status;      /* first error, sticky */
    int64_t n_params;      /* elements bound so far */
    int allow_inf;         /* infinities are values (a -inf attention mask), not damage */
    struct mc_binder_misses *misses;   /* names looked for and not found, for hints */
} mc_binder;

mc_status mc_binder_init(mc_binder *b, const mc_checkpoint *ckpt, const char *path, mc_arena *arena,
                         mc_error *err);
void mc_binder_free(mc_binder *b);

/* Tensor by printf-formatted name, or NULL (no error): to discover depths/widths. */
const mc_tensor_info *mc_binder_peek(const mc_binder *b, const char *fmt, ...) MC_PRINTF(2, 3);

/* 1 if any tensor's name starts with the printf-formatted prefix: to count
 * blocks by all their tensors, so that a block missing one is still counted
 * and the missing tensor is named. */
int mc_binder_has_prefix(const mc_binder *b, const char *fmt, ...) MC_PRINTF(2, 3);

/* Binds a tensor of exactly the given shape (ndim dims from `shape`) as float32.
 * Returns NULL (and sets the sticky error) when missing or mis-shaped. */
float *mc_bind(mc_binder *b, int ndim, const int64_t *shape, const char *fmt, ...) MC_PRINTF(4, 5);
/* Shorthands for 1-, 2- and 4-d tensors. */
float *mc_bind1(mc_binder *b, int64_t d0, const char *fmt, ...) MC_PRINTF(3, 4);
float *mc_bind2(mc_binder *b, int64_t d0, int64_t d1, const char *fmt, ...) MC_PRINTF(4, 5);
float *mc_bind4(mc_binder *b, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
    MC_PRINTF(6, 7);
/* Optional tensor: NULL without error when absent, error when mis-shaped. */
float *mc_bind_opt(mc_binder *b, int ndim, const int64_t *shape, const char *fmt, ...) MC_PRINTF(4, 5);
/* Marks a tensor as used without binding it (e.g. BatchNorm num_batches_tracked). */
void mc_binder_skip(mc_binder *b, const char *fmt, ...) MC_PRINTF(2, 3);

/* Fails with MC_ERR_UNEXPECTED_TENSOR if a tensor whose name starts with one
 * of the prefixes was not used (prefixes NULL-terminated; NULL = all). */
mc_status mc_binder_finish(mc_binder *b, const char *const *prefixes);

#endif /* MC_BINDER_H */
