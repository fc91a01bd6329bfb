/*
 * train/pool.h - the buffers of a training step (activations saved for the
 * backward pass, gradients of activations, attention probabilities): handed
 * out when a tensor is made and given back when its lifetime ends, from a
 * few large chunks (best fit, neighbours merged), so that the memory of dead
 * tensors serves the next ones, the chunks stay about as large as the most
 * a step holds at once, and a steady training loop maps no new pages.  The
 * chunks are 2 MiB aligned with transparent huge pages requested (Linux),
 * which makes their first touch (the first step) cheap.
 */
#ifndef MC_TRAIN_POOL_H
#define MC_TRAIN_POOL_H

#include <stddef.h>

typedef struct mc_pool_blk mc_pool_blk;

typedef struct mc_pool {
    struct chunk *all;                   /* the chunks */
    size_t held;                         /* bytes of all chunks */
    size_t touched;                      /* of those, below each chunk's high-water mark:
                                            about what is resident */
    size_t live, peak_live;              /* bytes in use now, and the most at once */
    size_t made, peak_made;              /* bytes handed out since the last mc_pool_put_all,
                                            and the most between two */
} mc_pool;

/* A buffer of n floats (zeroed when zero is set), or NULL when memory is
 * short; *blk names it for mc_pool_put. */
float *mc_pool_get(mc_pool *p, size_t n, int zero, mc_pool_blk **blk);
/* Gives a buffer back (blk NULL: nothing). */
void mc_pool_put(mc_pool *p, mc_pool_blk *blk);
/* Gives every buffer back (the end of a micro-batch; every mc_pool_blk of
 * it is invalid afterwards); the chunks stay. */
void mc_pool_put_all(mc_pool *p);
/* Returns every block to the system. */
void mc_pool_release(mc_pool *p);

#endif /* MC_TRAIN_POOL_H */
