/*
 * search/pipeline.h - batched image embedding with decode threads and
 * workers (pipeline.c): items [0, n) in batches of `batch`; each worker owns a
 * context and two batch slots, preparing (reading, decoding) the next batch
 * on its decode threads while it encodes the current one, and takes batches
 * from a shared counter.  What an item is, is the caller's: `prepare` fills
 * its pixels, `consume` takes each encoded batch.  An item's embedding does
 * not depend on the worker count (same batches, thread-count-independent
 * kernels).
 */
#ifndef MC_SEARCH_PIPELINE_H
#define MC_SEARCH_PIPELINE_H

#include "mobileclip.h"

/* What prepare made of an item. */
enum {
    MC_PIPE_ENCODE = 0,   /* pixels filled: encode them */
    MC_PIPE_KEEP,         /* nothing to encode (the caller knows the item already) */
    MC_PIPE_FAILED        /* err says why */
};

typedef struct mc_pipeline {
    const mc_model *model;     /* its image tower encodes */
    mc_context *ctx;           /* workers == 1: encodes in the calling thread (NULL: one is made) */
    const mc_preprocess_params *pp;   /* pp->size: the pixels' side */
    size_t n;                  /* items */
    int batch;                 /* items per forward pass (>= 1) */
    int decode_threads;        /* per worker (1..16) */
    int workers;               /* 1..64 */
    int threads;               /* compute threads over all workers (0: one per core) */
    int normalize;
    /* Called on decode threads, concurrently for different items: fills
     * pixels [3, S, S] of item i and returns MC_PIPE_*; on MC_PIPE_FAILED
     * err (cleared before the call) says why. */
    int (*prepare)(void *user, size_t i, float *pixels, mc_error *err);
    /* Called once per prepared batch, in no set order, serialised by the
     * pipeline's lock: items [first, first + count), their states and errors,
     * and emb [number of MC_PIPE_ENCODE items, D], the embeddings of the
     * encoded items in item order.  A status other than MC_OK (with err set)
     * stops the run (no more batches are handed out) and is returned; batches
     * already being prepared then still come, with emb NULL, so that the
     * caller sees their items' errors (the first bad item in order, say). */
    mc_status (*consume)(void *user, size_t first, size_t count, const int *state, const mc_error *errs,
                         const float *emb, mc_error *err);
    void *user;
} mc_pipeline;

/* Runs every batch (or until consume or an encode fails). */
mc_status mc_pipeline_run(const mc_pipeline *p, mc_error *err);

#endif
