/*
 * train/pool.h - the buffers of a training step (activations saved for the
 * backward pass, gradients of activations, attention probabilities): handed
 * out by size and given back when their lifetime ends, then handed out again
 * to the next request of the same size, so that a step reuses the memory of
 * the tensors that died before it and a steady training loop maps no new
 * pages.  Blocks of 2 MiB and more are mapped on their own, 2 MiB aligned,
 * with transparent huge pages requested (Linux), which makes the first
 * touch of a fresh block (the first step) cheap.
 */
#ifndef MC_TRAIN_POOL_H
#define MC_TRAIN_POOL_H

#include <stddef.h>

typedef struct mc_pool_blk mc_pool_blk;

#define MC_POOL_BUCKETS 256

typedef struct mc_pool {
    mc_pool_blk *all;                    /* every block, in use or not */
    mc_pool_blk *free[MC_POOL_BUCKETS];  /* blocks not in use, by size */
    size_t held;                         /* bytes of all blocks */
    size_t live, peak_live;              /* bytes in use now, and the most at once */
} mc_pool;

/* A buffer of n floats (zeroed when zero is set), or NULL when memory is
 * short; *blk names it for mc_pool_put. */
float *mc_pool_get(mc_pool *p, size_t n, int zero, mc_pool_blk **blk);
/* Gives a buffer back (blk NULL: nothing). */
void mc_pool_put(mc_pool *p, mc_pool_blk *blk);
/* Gives every buffer back (the end of a micro-batch); the blocks stay. */
void mc_pool_put_all(mc_pool *p);
/* Returns every block to the system. */
void mc_pool_release(mc_pool *p);

#endif /* MC_TRAIN_POOL_H */
