/*
 * serve/pool.h - the encoder pool: worker threads sharing one loaded model,
 * each with its own mc_context, taking texts and images from one queue.  A
 * worker takes up to max_batch items of one kind at once, from as many
 * queued requests as it needs, so concurrent requests share forward passes.
 */
#ifndef MC_SERVE_POOL_H
#define MC_SERVE_POOL_H

#include "core/core.h"

typedef struct mc_pool mc_pool;

typedef struct mc_pool_params {
    int n_workers;            /* worker threads, each with a context (default 1) */
    int threads_per_worker;   /* compute threads of each context (default 1) */
    int max_batch;            /* items per forward pass (default 8; 1: no batching) */
    int warm_up;              /* 1 (default): each worker runs one full batch per tower first */
} mc_pool_params;

mc_pool_params mc_pool_default_params(void);

mc_status mc_pool_new(const mc_model *model, const mc_pool_params *params, mc_pool **out, mc_error *err);
/* Finishes the queued work, joins the workers, frees the contexts. */
void mc_pool_free(mc_pool *pool);

typedef enum mc_pool_kind { MC_POOL_TEXT = 0, MC_POOL_IMAGE } mc_pool_kind;

/* Encodes n texts (data: int32 token ids [n, context_length]) or images
 * (float32 pixels [n, 3, S, S], preprocessed) into out [n, embed_dim],
 * L2-normalised; blocks until done.  When the items have not all been
 * started within timeout_s seconds (0: no limit) the rest are withdrawn,
 * *timed_out is set and MC_ERR_IO returned. */
mc_status mc_pool_encode(mc_pool *pool, mc_pool_kind kind, const void *data, int n, float *out,
                         double timeout_s, int *timed_out, mc_error *err);

typedef struct mc_pool_stats {
    int64_t passes;           /* forward passes run */
    int64_t items;            /* items encoded */
    int64_t shared_passes;    /* passes that held items of more than one request */
    int max_batch_seen;
} mc_pool_stats;

void mc_pool_get_stats(mc_pool *pool, mc_pool_stats *stats);

#endif /* MC_SERVE_POOL_H */
